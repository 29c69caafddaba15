//! `frugal bench http`: the service per cleanup strategy, as a separate process, under load.
//!
//! The server runs as a child process (one process cannot hold both ends of 10,000
//! connections under a 20,000 open-file limit), the load generator runs here. For each
//! strategy: a closed-loop run (maximum throughput) and a constant-rate run below saturation,
//! with the server's CPU time per request and resident memory read from `/proc/PID`.
//!
//! One run per strategy cannot be judged on a shared machine (39,676 against 42,872 req/s says
//! nothing when two runs of the same strategy differ as much). The whole comparison is repeated
//! ([`BenchConfig::repeats`]), the strategies alternating — in order, then in reverse order, so
//! that a drift of the machine during the benchmark weighs on every strategy alike — and each
//! strategy gets a median and a min–max spread per measure ([`BenchSummary`]), and
//! [`BenchReport::within_noise`] says whether the strategies differ by more than their runs do.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::child::{ServerProcess, ServerStderr};
use crate::load_report::{ErrorCounts, LoadReport};
use crate::loadgen::{load, LoadConfig, Progress};
use frugal_output::Summary;

use crate::procfs::proc_stat;
use crate::strategy::Strategy;
use crate::Error;

/// Settings of the benchmark.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BenchConfig {
    /// Strategies to compare, in order.
    pub strategies: Vec<Strategy>,
    /// Connections of each run.
    pub connections: u64,
    /// Measured duration of each run.
    pub duration: Duration,
    /// Warm-up of each run.
    pub warmup: Duration,
    /// Rate of the constant-rate runs; `None` = `rate_fraction` of the first closed-loop run.
    pub rate: Option<f64>,
    /// Fraction of the first closed-loop throughput used as the constant rate.
    pub rate_fraction: f64,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Load-generator threads (`None` = all CPUs).
    pub threads: Option<usize>,
    /// Rounds: each round runs every strategy once (both modes), on a fresh server.
    pub repeats: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            strategies: Strategy::ALL.to_vec(),
            connections: 10_000,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            rate: None,
            rate_fraction: 0.5,
            timeout: Duration::from_secs(10),
            threads: None,
            repeats: 3,
        }
    }
}

/// One run of one strategy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchRow {
    /// The server's cleanup strategy.
    pub strategy: Strategy,
    /// The round (0-based) this run belongs to.
    pub round: usize,
    /// `"closed-loop"` or `"constant-rate"`.
    pub mode: &'static str,
    /// Successful responses per second.
    pub achieved_rps: f64,
    /// The asked rate (constant-rate runs).
    pub target_rps: Option<f64>,
    /// Median latency, ns (corrected in constant-rate runs); `None` when no request succeeded.
    pub p50_ns: Option<u64>,
    /// 99th percentile, ns (corrected in constant-rate runs); `None` when no request succeeded.
    pub p99_ns: Option<u64>,
    /// 99.9th percentile, ns (corrected in constant-rate runs); `None` when no request
    /// succeeded.
    pub p999_ns: Option<u64>,
    /// Failed requests by kind.
    pub errors: ErrorCounts,
    /// Server CPU seconds (user + system) during the measured window.
    pub server_cpu_s: f64,
    /// Server CPU microseconds per successful request in the measured window.
    pub server_cpu_us_per_request: f64,
    /// Server resident memory at the end of the run, bytes.
    pub server_rss_bytes: u64,
    /// The full load report.
    pub load: LoadReport,
}

/// The benchmark's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// Connections of each run.
    pub connections: u64,
    /// Measured seconds of each run.
    pub duration_s: f64,
    /// Warm-up seconds of each run.
    pub warmup_s: f64,
    /// Rate used by the constant-rate runs.
    pub constant_rate_rps: f64,
    /// The server's command line (after the executable).
    pub server_args: Vec<String>,
    /// Rounds run.
    pub repeats: usize,
    /// One row per round, strategy and mode, in the order run.
    pub rows: Vec<BenchRow>,
    /// Per strategy and mode: medians and spreads over the rounds.
    pub summary: Vec<BenchSummary>,
}

/// One strategy in one mode, over the rounds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchSummary {
    /// The strategy.
    pub strategy: Strategy,
    /// `"closed-loop"` or `"constant-rate"`.
    pub mode: &'static str,
    /// Runs summarized.
    pub runs: usize,
    /// Successful responses per second, over the rounds.
    pub achieved_rps: Summary,
    /// 99th percentile latency, ns (corrected in constant-rate runs), over the rounds.
    pub p99_ns: Summary,
    /// Server CPU microseconds per successful request, over the rounds (`None` when /proc gave
    /// nothing).
    pub server_cpu_us_per_request: Option<Summary>,
    /// Failed requests over all rounds.
    pub errors: u64,
}

/// A measure the strategies are compared on (see [`BenchReport::within_noise`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Measure {
    /// Successful responses per second.
    Throughput,
    /// Server CPU time per successful request.
    CpuPerRequest,
}

/// How the strategies' medians compare with their run-to-run spread, for one mode and measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Noise {
    /// Largest median minus smallest median, over the strategies.
    pub between: f64,
    /// Largest range (max − min) of any one strategy's runs.
    pub within: f64,
}

impl Noise {
    /// `true` when the strategies differ by no more than one strategy's runs differ among
    /// themselves: the comparison cannot rank them.
    pub fn is_noise(&self) -> bool {
        self.between <= self.within
    }
}

impl BenchReport {
    /// Compares the strategies on `measure` in `mode`: `None` with fewer than two strategies or
    /// fewer than two rounds (no spread to compare with), or without the measure.
    pub fn within_noise(&self, mode: &str, measure: Measure) -> Option<Noise> {
        if self.repeats < 2 {
            return None;
        }
        let spreads: Vec<&Summary> = self
            .summary
            .iter()
            .filter(|s| s.mode == mode)
            .map(|s| match measure {
                Measure::Throughput => Some(&s.achieved_rps),
                Measure::CpuPerRequest => s.server_cpu_us_per_request.as_ref(),
            })
            .collect::<Option<_>>()?;
        if spreads.len() < 2 {
            return None;
        }
        let medians = spreads.iter().map(|s| s.median);
        let hi = medians.clone().fold(f64::MIN, f64::max);
        let lo = medians.fold(f64::MAX, f64::min);
        let within = spreads.iter().map(|s| s.max - s.min).fold(0.0, f64::max);
        Some(Noise {
            between: hi - lo,
            within,
        })
    }
}

fn summarize(strategies: &[Strategy], rows: &[BenchRow]) -> Vec<BenchSummary> {
    let mut out = Vec::new();
    for &strategy in strategies {
        for mode in ["closed-loop", "constant-rate"] {
            let runs: Vec<&BenchRow> = rows
                .iter()
                .filter(|r| r.strategy == strategy && r.mode == mode)
                .collect();
            let (Some(achieved_rps), Some(p99_ns)) = (
                Summary::of(runs.iter().map(|r| r.achieved_rps)),
                // Runs without a successful response have no latency (their errors count).
                Summary::of(runs.iter().filter_map(|r| r.p99_ns).map(|v| v as f64)),
            ) else {
                continue;
            };
            out.push(BenchSummary {
                strategy,
                mode,
                runs: runs.len(),
                achieved_rps,
                p99_ns,
                server_cpu_us_per_request: Summary::of(
                    runs.iter().map(|r| r.server_cpu_us_per_request),
                ),
                errors: runs.iter().map(|r| r.errors.total()).sum(),
            });
        }
    }
    out
}

/// How long a started server has to print its address.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(15);

/// Starts one strategy's server. Its stderr is kept, not shown: its shutdown lines would break
/// into the progress bar; a server that fails to start is quoted in the error.
fn start_server(mut command: Command, strategy: Strategy) -> Result<ServerProcess, Error> {
    command.args(["--strategy", strategy.name(), "--addr", "127.0.0.1:0"]);
    ServerProcess::start(command, ServerStderr::Keep, SERVER_START_TIMEOUT)
}

/// Runs the benchmark. `server` is the command that starts `frugal serve` with any extra
/// flags; `--strategy` and `--addr` are appended per strategy. `on_row` sees each row as it is
/// measured (for live output).
pub fn bench(
    config: &BenchConfig,
    server: impl Fn() -> Command,
    mut on_row: impl FnMut(&BenchRow),
) -> Result<BenchReport, Error> {
    let server_args: Vec<String> = server()
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut rows = Vec::new();
    let mut rate = config.rate;
    let repeats = config.repeats.max(1);
    for round in 0..repeats {
        // Alternate the order (forwards, backwards, ...): a drift of the machine during the
        // benchmark then weighs on every strategy alike.
        let mut order = config.strategies.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        for strategy in order {
            let (closed, constant) = bench_one(config, &server, strategy, round, &mut rate)?;
            on_row(&closed);
            rows.push(closed);
            on_row(&constant);
            rows.push(constant);
        }
    }
    let summary = summarize(&config.strategies, &rows);
    Ok(BenchReport {
        connections: config.connections,
        duration_s: config.duration.as_secs_f64(),
        warmup_s: config.warmup.as_secs_f64(),
        constant_rate_rps: rate.unwrap_or(0.0),
        server_args,
        repeats,
        rows,
        summary,
    })
}

/// One round of one strategy on a fresh server: its closed-loop run, then its constant-rate
/// run (at `rate`, set from the very first closed-loop run when not given).
fn bench_one(
    config: &BenchConfig,
    server: &impl Fn() -> Command,
    strategy: Strategy,
    round: usize,
    rate: &mut Option<f64>,
) -> Result<(BenchRow, BenchRow), Error> {
    let child = start_server(server(), strategy)?;
    let pid = child.pid();
    let mut load_config = LoadConfig::new(child.url().clone());
    load_config.connections = config.connections;
    load_config.duration = config.duration;
    load_config.warmup = config.warmup;
    load_config.timeout = config.timeout;
    load_config.threads = config.threads;
    let closed = measure(&load_config, strategy, round, pid)?;
    let constant_rate = *rate.get_or_insert(closed.achieved_rps * config.rate_fraction);
    load_config.rate = Some(constant_rate.max(1.0));
    let constant = measure(&load_config, strategy, round, pid)?;
    drop(child);
    Ok((closed, constant))
}

fn measure(
    config: &LoadConfig,
    strategy: Strategy,
    round: usize,
    pid: u32,
) -> Result<BenchRow, Error> {
    // Sample the server's CPU time when the measured window opens, from a helper thread.
    let progress = Arc::new(Progress::default());
    let sampler = {
        let (progress, warmup) = (Arc::clone(&progress), config.warmup);
        std::thread::spawn(move || loop {
            if let Some(start) = progress.started() {
                std::thread::sleep((start + warmup).saturating_duration_since(Instant::now()));
                return proc_stat(Some(pid));
            }
            if progress.finished() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        })
    };
    let report = load(config, Some(progress));
    let after = proc_stat(Some(pid));
    let before = sampler.join().expect("the sampler does not panic");
    let report = report?;
    let cpu = match (before, after) {
        (Some(b), Some(a)) => a.cpu_seconds - b.cpu_seconds,
        _ => f64::NAN,
    };
    let latency = report.latency_corrected_ns.or(report.latency_ns);
    Ok(BenchRow {
        strategy,
        round,
        mode: report.mode.name(),
        achieved_rps: report.achieved_rps,
        target_rps: report.target_rps,
        p50_ns: latency.map(|l| l.p50),
        p99_ns: latency.map(|l| l.p99),
        p999_ns: latency.map(|l| l.p999),
        errors: report.errors,
        server_cpu_s: cpu,
        server_cpu_us_per_request: cpu * 1e6 / report.requests_ok.max(1) as f64,
        server_rss_bytes: after.map_or(0, |a| a.resident_memory_bytes),
        load: report,
    })
}

/// Milliseconds with two decimals (the benchmark's latency unit).
fn ms(ns: f64) -> String {
    format!("{:.2} ms", ns / 1e6)
}

/// A run's latency, or `-` when no request succeeded (nothing was measured).
fn latency_ms(ns: Option<u64>) -> String {
    ns.map_or(frugal_output::units::MISSING.to_owned(), |v| ms(v as f64))
}

impl BenchReport {
    /// The noise statements under the summary table, one per compared measure.
    fn noise_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (mode, measure, what) in [
            ("closed-loop", Measure::Throughput, "closed-loop throughput"),
            (
                "closed-loop",
                Measure::CpuPerRequest,
                "closed-loop CPU per request",
            ),
            (
                "constant-rate",
                Measure::CpuPerRequest,
                "constant-rate CPU per request",
            ),
        ] {
            match self.within_noise(mode, measure) {
                Some(noise) if noise.is_noise() => out.push(format!(
                    "{what}: the strategies' medians differ by {:.1}, no more than one \
                     strategy's own runs do ({:.1}): within run-to-run noise, no ranking",
                    noise.between, noise.within
                )),
                Some(noise) => out.push(format!(
                    "{what}: the strategies' medians differ by {:.1}, more than any strategy's \
                     own runs do ({:.1})",
                    noise.between, noise.within
                )),
                None if self.repeats < 2 => {
                    out.push(format!(
                        "{what}: one round, no spread: differences cannot be told from noise \
                         (use -r 3 or more)"
                    ));
                    break;
                }
                None => {}
            }
        }
        out
    }
}

impl frugal_output::Render for BenchReport {
    const SCHEMA: &'static str = "frugal-bench-http";
    const VERSION: u32 = 1;

    fn document(&self) -> frugal_output::Document {
        use frugal_output::{Align, Document, Table, Tone};
        let r = self;
        let mut doc = Document::new(format!(
            "frugal bench http: {} connections, {} s per run after {} s warm-up, {} rounds \
             (strategies alternating); server = separate process",
            r.connections, r.duration_s, r.warmup_s, r.repeats
        ));
        let mut runs = Table::new([
            ("round", Align::Left),
            ("strategy", Align::Left),
            ("mode", Align::Left),
            ("req/s", Align::Right),
            ("p50", Align::Right),
            ("p99", Align::Right),
            ("p99.9", Align::Right),
            ("errors", Align::Right),
            ("cpu µs/req", Align::Right),
            ("rss MiB", Align::Right),
        ]);
        for row in &r.rows {
            runs.row([
                (row.round + 1).to_string(),
                row.strategy.name().to_owned(),
                row.mode.to_owned(),
                format!("{:.0}", row.achieved_rps),
                latency_ms(row.p50_ns),
                latency_ms(row.p99_ns),
                latency_ms(row.p999_ns),
                row.errors.total().to_string(),
                format!("{:.1}", row.server_cpu_us_per_request),
                format!("{:.1}", row.server_rss_bytes as f64 / (1024.0 * 1024.0)),
            ]);
        }
        doc.table(runs);
        doc.line(format!(
            "constant-rate runs at {:.0} req/s; latency percentiles of constant-rate runs are \
             corrected for coordinated omission (from the intended send time)",
            r.constant_rate_rps
        ));
        doc.blank();
        doc.heading(format!("median (min–max) over {} rounds:", r.repeats));
        let mut summary = Table::new([
            ("strategy", Align::Left),
            ("mode", Align::Left),
            ("req/s", Align::Right),
            ("p99", Align::Right),
            ("cpu µs/req", Align::Right),
        ]);
        let range = |median: String, min: String, max: String| format!("{median} ({min}–{max})");
        for s in &r.summary {
            let rps = range(
                format!("{:.0}", s.achieved_rps.median),
                format!("{:.0}", s.achieved_rps.min),
                format!("{:.0}", s.achieved_rps.max),
            );
            // The median as the rows show it (whole nanoseconds), the range in ms.
            let p99 = range(
                ms(s.p99_ns.median.trunc()),
                format!("{:.2}", s.p99_ns.min / 1e6),
                format!("{:.2}", s.p99_ns.max / 1e6),
            );
            let cpu = s.server_cpu_us_per_request.as_ref().map_or(
                frugal_output::units::MISSING.to_owned(),
                |c| {
                    range(
                        format!("{:.1}", c.median),
                        format!("{:.1}", c.min),
                        format!("{:.1}", c.max),
                    )
                },
            );
            summary.row([
                s.strategy.name().to_owned(),
                s.mode.to_owned(),
                rps,
                p99,
                cpu,
            ]);
        }
        doc.table(summary);
        for line in r.noise_lines() {
            doc.line(line);
        }
        let errors: u64 = r.rows.iter().map(|r| r.errors.total()).sum();
        if errors > 0 {
            doc.toned(
                format!(
                    "warning: {errors} requests failed; see the JSON for kinds (a timeout or \
                     reset at 10k connections usually means the machine is overloaded: lower -c \
                     or the rate)"
                ),
                Tone::Warn,
            );
        }
        doc
    }

    /// One row per strategy × mode × round, raw numbers (requests per second, nanoseconds,
    /// CPU seconds and microseconds, bytes); empty cells for what was not measured.
    fn csv_table(&self) -> Option<frugal_output::Table> {
        let mut t = frugal_output::Table::numeric([
            "round",
            "strategy",
            "mode",
            "target_rps",
            "achieved_rps",
            "p50_ns",
            "p99_ns",
            "p999_ns",
            "errors_connect",
            "errors_timeout",
            "errors_status",
            "errors_reset",
            "errors_other",
            "server_cpu_s",
            "server_cpu_us_per_request",
            "server_rss_bytes",
        ]);
        let finite = |x: f64| {
            if x.is_finite() {
                x.to_string()
            } else {
                String::new()
            }
        };
        for r in &self.rows {
            let e = &r.errors;
            t.row([
                r.round.to_string(),
                r.strategy.name().to_owned(),
                r.mode.to_owned(),
                r.target_rps.map_or(String::new(), |x| x.to_string()),
                r.achieved_rps.to_string(),
                r.p50_ns.map_or(String::new(), |v| v.to_string()),
                r.p99_ns.map_or(String::new(), |v| v.to_string()),
                r.p999_ns.map_or(String::new(), |v| v.to_string()),
                e.connect.to_string(),
                e.timeout.to_string(),
                e.status.to_string(),
                e.reset.to_string(),
                e.other.to_string(),
                finite(r.server_cpu_s),
                finite(r.server_cpu_us_per_request),
                r.server_rss_bytes.to_string(),
            ]);
        }
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_take_the_median_and_range() {
        let s = Summary::of([3.0, 1.0, 2.0]).expect("values");
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Summary::of([4.0, 1.0, 2.0, 3.0]).expect("values");
        assert_eq!(s.median, 2.5);
        assert!((s.relative_half_range() - 0.6).abs() < 1e-12);
        assert_eq!(Summary::of([f64::NAN]), None);
    }

    #[test]
    fn noise_compares_medians_with_the_widest_range() {
        // Three rounds: min, median, max.
        let spread = |median: f64, min: f64, max: f64| {
            Summary::of([min, median, max]).expect("three numbers")
        };
        let summary = |strategy, rps| BenchSummary {
            strategy,
            mode: "closed-loop",
            runs: 3,
            achieved_rps: rps,
            p99_ns: spread(1.0, 1.0, 1.0),
            server_cpu_us_per_request: None,
            errors: 0,
        };
        let mut report = BenchReport {
            connections: 1,
            duration_s: 1.0,
            warmup_s: 0.0,
            constant_rate_rps: 1.0,
            server_args: Vec::new(),
            repeats: 3,
            rows: Vec::new(),
            summary: vec![
                summary(Strategy::Manual, spread(100.0, 90.0, 110.0)),
                summary(Strategy::Chain, spread(115.0, 112.0, 118.0)),
            ],
        };
        let noise = report
            .within_noise("closed-loop", Measure::Throughput)
            .expect("two strategies, three rounds");
        assert_eq!((noise.between, noise.within), (15.0, 20.0));
        assert!(noise.is_noise());
        let text = frugal_output::Render::document(&report).to_text(&frugal_output::Style::plain());
        assert!(text.contains("median (min–max) over 3 rounds:"), "{text}");
        assert!(
            text.contains("100 (90–110)") && text.contains("115 (112–118)"),
            "{text}"
        );
        assert!(
            text.contains(
                "closed-loop throughput: the strategies' medians differ by 15.0, no more"
            ),
            "{text}"
        );
        report.summary[1].achieved_rps = spread(150.0, 148.0, 152.0);
        let noise = report
            .within_noise("closed-loop", Measure::Throughput)
            .expect("comparable");
        assert!(!noise.is_noise());
        // Without the measure, or with one round, there is nothing to say.
        assert_eq!(
            report.within_noise("closed-loop", Measure::CpuPerRequest),
            None
        );
        report.repeats = 1;
        assert_eq!(
            report.within_noise("closed-loop", Measure::Throughput),
            None
        );
    }
}
