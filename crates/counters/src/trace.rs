//! The report of `frugal trace`: defer counts from bpftrace ([`crate::bpftrace`]) per interval
//! and in total, with the target's perf counters beside them, and how it renders.
//!
//! While tracing, each interval prints as one line ([`interval_header`], [`Interval::line`]);
//! at the end the totals are the report's [`Render::document`]; its CSV is the interval rows
//! (raw counts, not rates) and its JSON its `serde` form (schema `frugal-trace`).
//!
//! ```
//! use frugal_counters::trace::{Interval, TraceReport};
//! use frugal_output::{Render, Style};
//!
//! let mut iv = Interval { t_s: 1.0, dt_s: 1.0, ..Interval::default() };
//! iv.counts.insert("registered".to_owned(), 1200);
//! assert!(iv.line(false).contains("1200"));
//! let report = TraceReport { binary: "demo".into(), mode: "usdt", duration_s: 1.0,
//!                            intervals: vec![iv], ..TraceReport::default() };
//! assert!(report.document().to_text(&Style::plain()).starts_with("total over 1.0s, demo (usdt):"));
//! assert_eq!(report.csv_table().unwrap().to_csv().lines().nth(1), Some("1,1,1200"));
//! ```

use std::collections::{BTreeMap, BTreeSet};

use frugal_output::{Document, Render, Table};
use serde::Serialize;

use crate::bpftrace::{Bucket, Calibration};

/// What `--go` cannot count, printed with its totals.
pub const GO_NOTE: &str = "Go open-codes up to 8 defers per function (none in a loop) since Go \
1.14: those call no runtime function and no uprobe sees them; counted are defers in loops \
(runtime.deferproc), stack records (runtime.deferprocStack), deferreturn calls and panics";

/// Counts of one interval.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Interval {
    /// Seconds since the probes were attached, at the end of the interval.
    pub t_s: f64,
    /// Length of the interval in seconds (the last one may be short).
    pub dt_s: f64,
    /// `frugal_defer` counts of the interval (probe maps, `i_` prefix dropped); `run` derived.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, u64>,
    /// Go runtime function calls of the interval, by function.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub go: BTreeMap<String, u64>,
    /// The target's perf counters over the interval: a number, or why there is none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, CounterValue>,
}

/// One perf counter over an interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CounterValue {
    /// The count (task-clock in ns).
    Count(u64),
    /// `<not supported>` or `<failed>`, and why.
    Missing {
        /// `not supported` or `failed`.
        status: &'static str,
        /// The kernel's reason.
        reason: String,
    },
}

/// Defer counts in total.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Defers {
    /// Deferred calls registered.
    pub registered: u64,
    /// Deferred calls run (at scope exit or through `run_now`).
    pub run: u64,
    /// Deferred calls cancelled through their handle.
    pub cancelled: u64,
    /// Deferred calls run early through their handle.
    pub run_now: u64,
    /// Of the registered, stored inline in the scope's frame: registered − pooled − heap (the
    /// scopes' exit counts; attached to a running process, scopes entered before the probes
    /// were attached make this approximate).
    pub inline: u64,
    /// Of the registered, stored in the pool (from the scopes' exit counts).
    pub pooled: u64,
    /// Of the registered, in a heap block of their own.
    pub heap: u64,
    /// Pool blocks taken from the free list.
    pub pool_hits: u64,
    /// Pool blocks allocated.
    pub pool_misses: u64,
}

/// Go runtime defer activity.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GoReport {
    /// Runtime functions probed (those the binary has).
    pub functions: Vec<String>,
    /// Calls per function in total.
    pub calls: BTreeMap<String, u64>,
    /// Calls per function and calling function, most first.
    pub callers: Vec<GoCaller>,
    /// What the counts cannot see.
    pub note: String,
}

/// Calls of one runtime function from one caller.
#[derive(Debug, Clone, Serialize)]
pub struct GoCaller {
    /// The runtime function.
    pub function: String,
    /// The calling function (symbol).
    pub caller: String,
    /// Calls.
    pub count: u64,
}

/// What tracing cost the target: its probe hits per second times what one hit costs, measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overhead {
    /// Probe hits during the trace (every probe firing, counted by bpftrace).
    pub probe_hits: u64,
    /// Probe hits per second of the trace.
    pub probe_hits_per_s: f64,
    /// What one hit costs the traced thread, ns (from [`Overhead::calibration`]); `None` when
    /// it could not be measured ([`Overhead::method`] says why).
    pub ns_per_hit: Option<f64>,
    /// `probe_hits_per_s × ns_per_hit`: the target's CPU time per second spent in probe hits,
    /// in CPUs (1.0 = one CPU busy with nothing else).
    pub cpus: Option<f64>,
    /// `probe_hits × ns_per_hit` over the target's task-clock during the trace: the share of
    /// its CPU time that went to probe hits (a cross-check of the calibration: a target that
    /// does nothing but fire probes comes out near 1).
    pub share_of_target_cpu: Option<f64>,
    /// How `ns_per_hit` was obtained, or why it was not.
    pub method: String,
    /// The calibration's raw timings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
}

impl Overhead {
    /// `hits` probe hits over `seconds`, costed by `calibration` (or not, and `why`).
    pub fn new(
        hits: u64,
        seconds: f64,
        calibration: Result<Calibration, String>,
        method: &str,
    ) -> Overhead {
        let per_s = if seconds > 0.0 {
            hits as f64 / seconds
        } else {
            0.0
        };
        match calibration {
            Ok(c) => Overhead {
                probe_hits: hits,
                probe_hits_per_s: per_s,
                ns_per_hit: Some(c.ns_per_hit),
                cpus: Some(per_s * c.ns_per_hit / 1e9),
                share_of_target_cpu: None,
                method: method.to_owned(),
                calibration: Some(c),
            },
            Err(why) => Overhead {
                probe_hits: hits,
                probe_hits_per_s: per_s,
                method: format!("the cost per hit could not be measured: {why}"),
                ..Overhead::default()
            },
        }
    }
}

impl Overhead {
    /// Sets [`Overhead::share_of_target_cpu`] from the target's task-clock over the trace.
    pub fn with_target_cpu(mut self, task_clock_ns: Option<u64>) -> Overhead {
        if let (Some(ns), Some(tc)) = (self.ns_per_hit, task_clock_ns.filter(|&t| t > 0)) {
            self.share_of_target_cpu = Some(self.probe_hits as f64 * ns / tc as f64);
        }
        self
    }
}

/// The report of `frugal trace`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TraceReport {
    /// The binary whose probes were traced.
    pub binary: String,
    /// `usdt` or `go`.
    pub mode: &'static str,
    /// Seconds from attach to the end of the trace.
    pub duration_s: f64,
    /// Defer counts (USDT mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defers: Option<Defers>,
    /// Scopes ended (USDT mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<u64>,
    /// Panics caught by scopes (USDT mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub panics: Option<u64>,
    /// Defers registered per scope (log2 buckets, exact counts).
    pub chain_length_hist: Vec<Bucket>,
    /// Duration of each deferred call in ns, probe to probe (log2 buckets).
    pub call_ns_hist: Vec<Bucket>,
    /// Per interval.
    pub intervals: Vec<Interval>,
    /// Go runtime defer activity (`--go`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub go: Option<GoReport>,
    /// Perf counters in total over the trace.
    pub counters: BTreeMap<String, CounterValue>,
    /// What tracing cost the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overhead: Option<Overhead>,
    /// Notes: what could not be measured, and why.
    pub notes: Vec<String>,
}

/// The header of the live interval lines (`go`: the Go runtime columns).
pub fn interval_header(go: bool) -> String {
    if go {
        return format!(
            "{:>7} {:>12} {:>14} {:>12} {:>10}  {:>10} {:>8}\n",
            "t", "deferproc/s", "deferprocStk/s", "deferret/s", "gopanic/s", "task-clock", "cycles"
        );
    }
    format!(
        "{:>7} {:>11} {:>11} {:>10} {:>11} {:>11} {:>8}  {:>10} {:>8} {:>8} {:>15}\n",
        "t",
        "defers/s",
        "run/s",
        "scopes/s",
        "pool hit/s",
        "pool miss/s",
        "panics/s",
        "task-clock",
        "ctx-sw",
        "cycles",
        "LLC-load-misses"
    )
}

impl Interval {
    fn counter_cell(&self, key: &str) -> String {
        match self.counters.get(key) {
            Some(CounterValue::Count(v)) if key == "task_clock_ns" => {
                format!("{:.0} ms", *v as f64 / 1e6)
            }
            Some(CounterValue::Count(v)) => v.to_string(),
            Some(CounterValue::Missing { status, .. }) => format!("<{status}>"),
            None => "-".to_owned(),
        }
    }

    /// The interval as one live line under [`interval_header`]: rates per second.
    pub fn line(&self, go: bool) -> String {
        let per_s = |n: u64| (n as f64 / self.dt_s.max(1e-3)).round() as u64;
        let c = |k: &str| per_s(self.counts.get(k).copied().unwrap_or(0));
        if go {
            let g = |k: &str| per_s(self.go.get(k).copied().unwrap_or(0));
            return format!(
                "{:>6.1}s {:>12} {:>14} {:>12} {:>10}  {:>10} {:>8}\n",
                self.t_s,
                g("runtime.deferproc"),
                g("runtime.deferprocStack"),
                g("runtime.deferreturn"),
                g("runtime.gopanic"),
                self.counter_cell("task_clock_ns"),
                self.counter_cell("cycles")
            );
        }
        format!(
            "{:>6.1}s {:>11} {:>11} {:>10} {:>11} {:>11} {:>8}  {:>10} {:>8} {:>8} {:>15}\n",
            self.t_s,
            c("registered"),
            c("run"),
            c("scopes"),
            c("pool_hits"),
            c("pool_misses"),
            c("panics"),
            self.counter_cell("task_clock_ns"),
            self.counter_cell("context_switches"),
            self.counter_cell("cycles"),
            self.counter_cell("llc_load_misses")
        )
    }
}

/// A histogram as `title:` and one `#` bar per non-empty bucket; nothing when empty.
fn hist(doc: &mut Document, title: &str, hist: &[Bucket]) {
    let total: u64 = hist.iter().map(|b| b.count).sum();
    if total == 0 {
        return;
    }
    doc.line(format!("{title}:"));
    let max = hist.iter().map(|b| b.count).max().unwrap_or(1).max(1);
    for b in hist.iter().filter(|b| b.count > 0) {
        let bar = "#".repeat(((b.count * 40).div_ceil(max)) as usize);
        doc.line(format!(
            "  [{:>8}, {:>8}] {:>10} {bar}",
            b.min, b.max, b.count
        ));
    }
}

impl Render for TraceReport {
    const SCHEMA: &'static str = "frugal-trace";
    /// 2: `overhead` (probe hits and what they cost), `defers.inline`.
    const VERSION: u32 = 2;

    /// The totals: defers and storage (or Go runtime calls and callers), histograms, the
    /// target's perf counters, notes.
    fn document(&self) -> Document {
        let mut doc = Document::new(format!(
            "total over {:.1}s, {} ({}):",
            self.duration_s, self.binary, self.mode
        ));
        if let Some(d) = &self.defers {
            doc.line(format!(
                "  defers registered {}, run {}, cancelled {} (run early {}); scopes {}; panics \
                 caught {}",
                d.registered,
                d.run,
                d.cancelled,
                d.run_now,
                self.scopes.unwrap_or(0),
                self.panics.unwrap_or(0)
            ));
            doc.line(format!(
                "  storage: inline {}, pooled {}, heap {}; pool blocks: {} hits, {} misses",
                d.inline, d.pooled, d.heap, d.pool_hits, d.pool_misses
            ));
        }
        if let Some(g) = &self.go {
            for f in &g.functions {
                doc.line(format!("  {f}: {}", g.calls.get(f).copied().unwrap_or(0)));
            }
            for c in g.callers.iter().take(10) {
                doc.line(format!(
                    "    {:>10}  {} <- {}",
                    c.count, c.function, c.caller
                ));
            }
            doc.note(&g.note);
        }
        hist(
            &mut doc,
            "chain length (defers per scope)",
            &self.chain_length_hist,
        );
        hist(
            &mut doc,
            "deferred call duration (ns, probe to probe, includes the probes' own cost)",
            &self.call_ns_hist,
        );
        if !self.counters.is_empty() {
            let cells: Vec<String> = self
                .counters
                .iter()
                .map(|(k, v)| match v {
                    CounterValue::Count(n) => format!("{k} {n}"),
                    CounterValue::Missing { status, .. } => format!("{k} <{status}>"),
                })
                .collect();
            doc.line(format!(
                "  perf counters of the target: {}",
                cells.join(", ")
            ));
        }
        if let Some(o) = &self.overhead {
            let cost = match (o.ns_per_hit, o.cpus) {
                (Some(ns), Some(cpus)) => format!(
                    " × {:.2} µs per hit ≈ {:.0} ms of the target's CPU time per second ({:.1}% \
                     of one CPU){}",
                    ns / 1e3,
                    cpus * 1e3,
                    cpus * 100.0,
                    o.calibration
                        .as_ref()
                        .filter(|c| c.ns_per_hit_range.0 < c.ns_per_hit_range.1)
                        .map(|c| format!(
                            "; calibration runs {:.2}–{:.2} µs per hit",
                            c.ns_per_hit_range.0 / 1e3,
                            c.ns_per_hit_range.1 / 1e3
                        ))
                        .unwrap_or_default()
                ),
                _ => String::new(),
            };
            doc.line(format!(
                "  tracing cost: {} probe hits ({:.0}/s){cost}",
                o.probe_hits, o.probe_hits_per_s
            ));
            if let Some(share) = o.share_of_target_cpu {
                doc.line(format!(
                    "  probe hits × cost per hit = {:.0}% of the target's task-clock over the trace",
                    share * 100.0
                ));
            }
            doc.note(format!("tracing cost: {}", o.method));
        }
        for n in &self.notes {
            doc.note(n);
        }
        doc
    }

    /// One row per interval: `t_s`, `dt_s`, then the raw counts of the interval (defer probe
    /// counts, Go runtime calls by function, the target's perf counters by key; empty = not
    /// counted).
    fn csv_table(&self) -> Option<Table> {
        let keys = |f: fn(&Interval) -> Vec<&String>| -> Vec<String> {
            let set: BTreeSet<&String> = self.intervals.iter().flat_map(f).collect();
            set.into_iter().cloned().collect()
        };
        let counts = keys(|iv| iv.counts.keys().collect());
        let go = keys(|iv| iv.go.keys().collect());
        let counters = keys(|iv| iv.counters.keys().collect());
        let headers = ["t_s".to_owned(), "dt_s".to_owned()]
            .into_iter()
            .chain(counts.iter().cloned())
            .chain(go.iter().cloned())
            .chain(counters.iter().cloned());
        let mut t = Table::numeric(headers);
        for iv in &self.intervals {
            let cell = |v: Option<&u64>| v.map(u64::to_string).unwrap_or_default();
            let row = [iv.t_s.to_string(), iv.dt_s.to_string()]
                .into_iter()
                .chain(counts.iter().map(|k| cell(iv.counts.get(k))))
                .chain(go.iter().map(|k| cell(iv.go.get(k))))
                .chain(counters.iter().map(|k| match iv.counters.get(k) {
                    Some(CounterValue::Count(n)) => n.to_string(),
                    _ => String::new(),
                }));
            t.row(row);
        }
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use frugal_output::Style;

    fn report() -> TraceReport {
        let mut iv = Interval {
            t_s: 0.5,
            dt_s: 0.5,
            ..Interval::default()
        };
        iv.counts.insert("registered".into(), 100);
        iv.counts.insert("run".into(), 99);
        iv.counters
            .insert("task_clock_ns".into(), CounterValue::Count(250_000_000));
        iv.counters.insert(
            "cycles".into(),
            CounterValue::Missing {
                status: "not supported",
                reason: "no PMU".into(),
            },
        );
        TraceReport {
            binary: "/bin/demo".into(),
            mode: "usdt",
            duration_s: 0.5,
            defers: Some(Defers {
                registered: 100,
                run: 99,
                cancelled: 1,
                inline: 40,
                pooled: 60,
                ..Defers::default()
            }),
            scopes: Some(4),
            panics: Some(0),
            chain_length_hist: vec![
                Bucket {
                    min: 1,
                    max: 1,
                    count: 2,
                },
                Bucket {
                    min: 2,
                    max: 3,
                    count: 1,
                },
            ],
            counters: iv.counters.clone(),
            intervals: vec![iv],
            notes: vec!["cycles <not supported>".into()],
            ..TraceReport::default()
        }
    }

    #[test]
    fn live_line_shows_rates() {
        let r = report();
        let line = r.intervals[0].line(false);
        assert!(
            line.starts_with("   0.5s         200         198          0 "),
            "{line}"
        );
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            words[7..],
            ["250", "ms", "-", "<not", "supported>", "-"],
            "{line}"
        );
        assert!(interval_header(false).contains("defers/s"));
    }

    #[test]
    fn totals_keep_their_lines() {
        let text = report().document().to_text(&Style::plain());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "total over 0.5s, /bin/demo (usdt):");
        assert_eq!(
            lines[1],
            "  defers registered 100, run 99, cancelled 1 (run early 0); scopes 4; panics caught 0"
        );
        assert_eq!(
            lines[2],
            "  storage: inline 40, pooled 60, heap 0; pool blocks: 0 hits, 0 misses"
        );
        assert_eq!(lines[3], "chain length (defers per scope):");
        assert_eq!(
            lines[4],
            "  [       1,        1]          2 ########################################"
        );
        assert_eq!(
            lines[6],
            "  perf counters of the target: cycles <not supported>, task_clock_ns 250000000"
        );
        assert_eq!(lines[7], "  note: cycles <not supported>");
    }

    #[test]
    fn the_tracing_cost_is_hits_times_the_calibrated_cost() {
        let calibration = Calibration {
            hits_per_run: 1_000,
            untraced_cpu_ns: vec![100_000],
            traced_cpu_ns: vec![2_600_000],
            ns_per_hit: 2_500.0,
            ns_per_hit_range: (2_500.0, 2_500.0),
        };
        let mut r = report();
        r.duration_s = 2.0;
        r.overhead = Some(Overhead::new(
            200_000,
            2.0,
            Ok(calibration),
            "calibrated on this machine",
        ));
        r.overhead = r.overhead.map(|o| o.with_target_cpu(Some(1_000_000_000)));
        let o = r.overhead.as_ref().unwrap();
        assert_eq!(o.probe_hits_per_s, 100_000.0);
        assert!((o.share_of_target_cpu.unwrap() - 0.5).abs() < 1e-12);
        assert!((o.cpus.unwrap() - 0.25).abs() < 1e-12);
        let text = r.document().to_text(&Style::plain());
        assert!(
            text.contains(
                "  tracing cost: 200000 probe hits (100000/s) × 2.50 µs per hit ≈ 250 ms of the \
                 target's CPU time per second (25.0% of one CPU)"
            ),
            "{text}"
        );
        assert!(
            text.contains("note: tracing cost: calibrated on this machine"),
            "{text}"
        );
        assert!(text.contains("= 50% of the target's task-clock"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["defers"]["inline"], 40);
        assert_eq!(json["overhead"]["ns_per_hit"], 2500.0);
        // Not measured: the hits are still counted, and the reason says why.
        let o = Overhead::new(10, 1.0, Err("no bpftrace".into()), "unused");
        assert_eq!(o.cpus, None);
        assert!(o.method.contains("could not be measured: no bpftrace"));
    }

    #[test]
    fn csv_is_the_interval_rows() {
        let csv = report().csv_table().unwrap().to_csv();
        assert_eq!(
            csv,
            "t_s,dt_s,registered,run,cycles,task_clock_ns\n0.5,0.5,100,99,,250000000\n"
        );
    }
}
