//! How a [`DeferReport`] shows itself: the strategies × scenarios table with its notes and the
//! Go line; with [`WithLedger`], the task-memory table and the claims ledger after it
//! (`frugal bench defer --claims`).

use frugal_output::units::opt_fixed;
use frugal_output::{Align, Cell, Document, Render, Table, Tone};
use serde::Serialize;

use super::{CounterSource, DeferReport, Row, SCHEMA_VERSION};
use crate::claims::Ledger;
use crate::tasks::TasksReport;

/// The heading of the claims ledger under `bench defer --claims`.
pub const LEDGER_HEADING: &str = "claims ledger (article vs this machine)";

impl Render for DeferReport {
    const SCHEMA: &'static str = "frugal-bench-defer";
    const VERSION: u32 = SCHEMA_VERSION;

    fn document(&self) -> Document {
        let m = &self.machine;
        let mut doc = Document::new(format!(
            "frugal bench defer{}: {} ({} cores), Linux {}",
            if self.quick { " --quick" } else { "" },
            m.cpu,
            m.cores,
            m.kernel
        ));
        let counters = match self.counter_source {
            CounterSource::Hardware => "hardware (PMU)",
            CounterSource::Simulated => "SIMULATED by valgrind (no PMU here)",
            CounterSource::None => "none",
        };
        doc.line(format!(
            "per op = one call registering and running all its defers; ns: median ± half IQR; \
             counters: {counters}"
        ));
        if cfg!(debug_assertions) {
            doc.toned(
                "  warning: this is a debug build, timings and counts are not representative; \
                 build with `cargo build --release`",
                Tone::Warn,
            );
        }
        if let Some(note) = &self.counter_note {
            doc.note(note);
        }
        let mut table = Table::new(
            [
                "scenario", "strategy", "ns/op", "±%", "ns/defer", "instr", "branch", "br-miss",
                "L1d-miss", "allocs", "bytes",
            ]
            .into_iter()
            .enumerate()
            .map(|(i, h)| (h, if i < 2 { Align::Left } else { Align::Right })),
        );
        let mut notes: Vec<String> = Vec::new();
        for scenario in self.scenarios() {
            for row in self.rows.iter().filter(|r| r.scenario == scenario) {
                table.row(row_cells(row, &mut notes));
            }
        }
        doc.table(table);
        for (i, note) in notes.iter().enumerate() {
            doc.line(format!("  [{}] {note}", i + 1));
        }
        let go = &self.go;
        match go.status.as_str() {
            "ran" => doc.line(format!(
                "Go: {} ({}); {}",
                go.version.as_deref().unwrap_or("?"),
                go.message.as_deref().unwrap_or(""),
                go.simulated.as_deref().unwrap_or("")
            )),
            _ => doc.line(format!(
                "Go: {}: {}",
                go.status,
                go.message.as_deref().unwrap_or("")
            )),
        };
        doc
    }

    /// One row per (strategy, scenario), raw numbers per operation; empty = not measured.
    fn csv_table(&self) -> Option<Table> {
        let mut t = Table::numeric([
            "lang",
            "strategy",
            "scenario",
            "defers_per_op",
            "ns_per_op_median",
            "ns_per_op_p25",
            "ns_per_op_p75",
            "ns_per_op_min",
            "ns_per_op_max",
            "samples",
            "iters_per_sample",
            "allocs_per_op",
            "alloc_bytes_per_op",
            "counter_source",
            "instructions_per_op",
            "branches_per_op",
            "branch_misses_per_op",
            "l1d_misses_per_op",
            "cycles_per_op",
            "estimated_cycles_per_op",
        ]);
        let o = |x: Option<f64>| x.map_or(String::new(), |x| x.to_string());
        for r in &self.rows {
            let time = r.time_ns.as_ref();
            let c = r.counters.as_ref();
            t.row([
                r.lang.clone(),
                r.strategy.clone(),
                r.scenario.clone(),
                r.defers_per_op.to_string(),
                o(time.map(|t| t.median)),
                o(time.map(|t| t.p25)),
                o(time.map(|t| t.p75)),
                o(time.map(|t| t.min)),
                o(time.map(|t| t.max)),
                time.map_or(String::new(), |t| t.n.to_string()),
                time.map_or(String::new(), |t| t.iters_per_sample.to_string()),
                o(r.allocs_per_op),
                o(r.alloc_bytes_per_op),
                c.map_or(String::new(), |c| source_key(c.source).to_owned()),
                o(c.and_then(|c| c.instructions)),
                o(c.and_then(|c| c.branches)),
                o(c.and_then(|c| c.branch_misses)),
                o(c.and_then(|c| c.l1d_misses)),
                o(c.and_then(|c| c.cycles)),
                o(c.and_then(|c| c.estimated_cycles)),
            ]);
        }
        Some(t)
    }
}

impl DeferReport {
    /// The scenarios of the rows, in first-seen order.
    fn scenarios(&self) -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        for r in &self.rows {
            if !v.contains(&r.scenario.as_str()) {
                v.push(&r.scenario);
            }
        }
        v
    }
}

fn source_key(source: CounterSource) -> &'static str {
    match source {
        CounterSource::Hardware => "hardware",
        CounterSource::Simulated => "simulated",
        CounterSource::None => "none",
    }
}

fn row_cells(row: &Row, notes: &mut Vec<String>) -> Vec<Cell> {
    let time = row.time_ns.as_ref();
    let c = row.counters.as_ref();
    let mut strategy = row.strategy.clone();
    if let Some(note) = &row.note {
        let idx = match notes.iter().position(|n| n == note) {
            Some(i) => i,
            None => {
                notes.push(note.clone());
                notes.len() - 1
            }
        };
        strategy.push_str(&format!(" [{}]", idx + 1));
    }
    // Simulated counts carry a star and are dimmed: a model, not this CPU.
    let sim = |v: Option<f64>| {
        let s = opt_fixed(v, 1);
        match (c.map(|c| c.source), v) {
            (Some(CounterSource::Simulated), Some(_)) => Cell::new(format!("{s}*"), Tone::Dim),
            _ => Cell::from(s),
        }
    };
    vec![
        Cell::from(row.scenario.clone()),
        Cell::from(strategy),
        Cell::from(opt_fixed(time.map(|t| t.median), 1)),
        Cell::from(opt_fixed(time.map(|t| t.spread_percent()), 0)),
        Cell::from(opt_fixed(
            time.map(|t| t.median / f64::from(row.defers_per_op.max(1))),
            2,
        )),
        sim(c.and_then(|c| c.instructions)),
        sim(c.and_then(|c| c.branches)),
        sim(c.and_then(|c| c.branch_misses)),
        sim(c.and_then(|c| c.l1d_misses)),
        Cell::from(opt_fixed(row.allocs_per_op, 2)),
        Cell::from(opt_fixed(row.alloc_bytes_per_op, 0)),
    ]
}

/// `frugal bench defer --claims`: the defer report, then the task memory measured for the
/// ledger, then the ledger (the report's `claims`). Its JSON is the defer report's.
#[derive(Debug, Clone, Copy)]
pub struct WithLedger<'a> {
    /// The report (its `claims` filled).
    pub report: &'a DeferReport,
    /// Task memory, when it was measured.
    pub tasks: Option<&'a TasksReport>,
}

impl Serialize for WithLedger<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.report.serialize(s)
    }
}

impl Render for WithLedger<'_> {
    const SCHEMA: &'static str = DeferReport::SCHEMA;
    const VERSION: u32 = DeferReport::VERSION;

    fn document(&self) -> Document {
        let mut doc = self.report.document();
        if let Some(tasks) = self.tasks {
            doc.blank().append(tasks.document());
        }
        Ledger::new(LEDGER_HEADING, &self.report.claims).append_to(&mut doc);
        doc
    }

    fn csv_table(&self) -> Option<Table> {
        self.report.csv_table()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{GoSection, Machine, Timing};
    use super::*;
    use frugal_output::units::MISSING;

    fn report() -> DeferReport {
        let row = |strategy: &str, note: Option<&str>| Row {
            lang: "rust".to_owned(),
            strategy: strategy.to_owned(),
            scenario: "loop8".to_owned(),
            defers_per_op: 8,
            time_ns: Some(Timing::from_samples(vec![10.0, 12.0, 14.0], 100)),
            allocs_per_op: Some(0.0),
            alloc_bytes_per_op: None,
            counters: None,
            note: note.map(str::to_owned),
        };
        DeferReport {
            schema_version: 1,
            quick: true,
            machine: Machine {
                cpu: "cpu".to_owned(),
                cores: 2,
                kernel: "6.1".to_owned(),
            },
            counter_source: CounterSource::None,
            counter_note: None,
            alloc_counting: true,
            rows: vec![row("guard", Some("one guard")), row("manual", None)],
            go: GoSection {
                status: "skipped".to_owned(),
                version: None,
                message: Some("not run (--no-go)".to_owned()),
                simulated: None,
            },
            claims: Vec::new(),
        }
    }

    #[test]
    fn table_keeps_the_numbers_and_notes() {
        let text = report().document().to_text(&frugal_output::Style::plain());
        assert!(text.starts_with("frugal bench defer --quick: cpu (2 cores), Linux 6.1\n"));
        let line = text
            .lines()
            .find(|l| l.starts_with("loop8     guard [1]"))
            .unwrap();
        let cells: Vec<&str> = line.split_whitespace().collect();
        // ns/op median, ±% (half IQR / median), ns/defer, then no counters, allocs, bytes.
        assert_eq!(
            &cells[3..],
            ["12.0", "8", "1.50", "-", "-", "-", "-", "0.00", MISSING]
        );
        assert!(text.contains("  [1] one guard\n"));
        assert!(text.ends_with("Go: skipped: not run (--no-go)\n"));
    }

    #[test]
    fn csv_is_raw_and_the_ledger_follows_the_table() {
        let r = report();
        let csv = r.csv_table().unwrap().to_csv();
        let mut lines = csv.lines();
        assert!(lines
            .next()
            .unwrap()
            .starts_with("lang,strategy,scenario,defers_per_op,ns_per_op_median"));
        assert_eq!(
            lines.next().unwrap(),
            "rust,guard,loop8,8,12,11,13,10,14,3,100,0,,,,,,,,"
        );
        let doc = WithLedger {
            report: &r,
            tasks: None,
        }
        .document();
        let text = doc.to_text(&frugal_output::Style::plain());
        assert!(text.contains(&format!("\n\n{LEDGER_HEADING}\n")));
        let json = serde_json::to_value(WithLedger {
            report: &r,
            tasks: None,
        })
        .unwrap();
        assert_eq!(json, serde_json::to_value(&r).unwrap());
    }
}
