//! `frugal bench http`: the service per cleanup strategy, as a separate process, under load.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::Context as _;
use frugal_http::{bench, BenchConfig, BenchReport, BenchRow, Measure, Strategy};

use crate::ranges;

/// Arguments of `frugal bench http`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A short run: 100 connections, 2 s per run after 0.5 s of warm-up.
    #[arg(long)]
    quick: bool,
    /// Connections, 1 to 1,000,000 [default: 10000, or 100 with --quick].
    #[arg(short = 'c', long, allow_hyphen_values = true,
          value_parser = ranges::count::<u64>(1, ranges::MAX_CONNECTIONS, ranges::CONNECTIONS_WHY))]
    connections: Option<u64>,
    /// Measured duration of each run, 100ms to 1day [default: 10s, or 2s with --quick].
    #[arg(short = 'd', long, allow_hyphen_values = true,
          value_parser = ranges::duration(ranges::MIN_RUN, ranges::MAX_RUN, ranges::RUN_WHY))]
    duration: Option<Duration>,
    /// Warm-up of each run, 0s to 1h [default: 2s, or 500ms with --quick].
    #[arg(long, allow_hyphen_values = true,
          value_parser = ranges::duration(Duration::ZERO, ranges::MAX_WARMUP, ranges::WARMUP_WHY))]
    warmup: Option<Duration>,
    /// Rate of the constant-rate runs, requests per second above 0 and at most 10,000,000
    /// [default: half the first closed-loop throughput].
    #[arg(long, allow_hyphen_values = true,
          value_parser = ranges::real(0.0, false, ranges::MAX_RATE, ranges::RATE_WHY))]
    rate: Option<f64>,
    /// Strategies to compare (comma-separated) [default: all].
    #[arg(long, value_delimiter = ',')]
    strategies: Vec<Strategy>,
    /// CPU burned per request by the server, microseconds of thread CPU time, not wall-clock
    /// time (`frugal serve --work-us`), 0 to 1,000,000.
    #[arg(long, allow_hyphen_values = true,
          value_parser = ranges::count::<u64>(0, ranges::MAX_WORK_US, ranges::WORK_WHY))]
    work_us: Option<u64>,
    /// Response body size of the server (`frugal serve --response-bytes`), 0 to 64 MiB.
    #[arg(long, allow_hyphen_values = true,
          value_parser = ranges::count::<usize>(0, ranges::MAX_RESPONSE_BYTES, ranges::RESPONSE_WHY))]
    response_bytes: Option<usize>,
    /// Server worker threads (`frugal serve --workers`), 1 to 1024 [default: all CPUs].
    #[arg(long, allow_hyphen_values = true,
          value_parser = ranges::count::<usize>(1, ranges::MAX_THREADS, ranges::THREADS_WHY))]
    workers: Option<usize>,
    /// Load-generator threads, 1 to 1024 [default: all CPUs].
    #[arg(short = 't', long, allow_hyphen_values = true,
          value_parser = ranges::count::<usize>(1, ranges::MAX_THREADS, ranges::THREADS_WHY))]
    threads: Option<usize>,
    /// Write the report as JSON to this file.
    #[arg(long, value_parser = ranges::output_file)]
    json: Option<PathBuf>,
    /// Rounds: every strategy runs once per round, alternating, each on a fresh server; the
    /// summary gives the median and range over the rounds (1 to 100).
    #[arg(short = 'r', long, default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    repeats: u32,
    /// Fail (exit status 1, after the report) when any run's error rate is above this
    /// percentage, as `frugal load --max-error-rate` (0 to 100, a trailing % is allowed).
    #[arg(long, default_value = "1%", value_parser = crate::load::parse_percent)]
    max_error_rate: f64,
}

/// Runs `frugal bench http`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = BenchConfig::default();
    if args.quick {
        config.connections = 100;
        config.duration = Duration::from_secs(2);
        config.warmup = Duration::from_millis(500);
    }
    config.connections = args.connections.unwrap_or(config.connections).max(1);
    config.duration = args.duration.unwrap_or(config.duration);
    config.warmup = args.warmup.unwrap_or(config.warmup);
    config.rate = args.rate;
    config.threads = args.threads;
    config.repeats = args.repeats as usize;
    if !args.strategies.is_empty() {
        config.strategies = args.strategies.clone();
    }
    let exe = std::env::current_exe().context("cannot find the frugal executable")?;
    let server = || {
        let mut cmd = Command::new(&exe);
        cmd.arg("serve");
        if let Some(w) = args.work_us {
            cmd.args(["--work-us", &w.to_string()]);
        }
        if let Some(b) = args.response_bytes {
            cmd.args(["--response-bytes", &b.to_string()]);
        }
        if let Some(w) = args.workers {
            cmd.args(["--workers", &w.to_string()]);
        }
        cmd
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "frugal bench http: {} connections, {:?} per run after {:?} warm-up, {} rounds \
         (strategies alternating); server = separate process",
        config.connections, config.duration, config.warmup, config.repeats
    )?;
    writeln!(out, "{}", header())?;
    let report = bench(&config, server, |row| {
        // A failed write shows up again below, where it is handled.
        let _ = writeln!(std::io::stdout(), "{}", line(row));
    })?;
    writeln!(
        out,
        "constant-rate runs at {:.0} req/s; latency percentiles of constant-rate runs are \
         corrected for coordinated omission (from the intended send time)",
        report.constant_rate_rps
    )?;
    writeln!(out)?;
    out.write_all(summary(&report).as_bytes())?;
    let errors: u64 = report.rows.iter().map(|r| r.errors.total()).sum();
    if errors > 0 {
        writeln!(
            out,
            "warning: {errors} requests failed; see the JSON for kinds (a timeout or reset at 10k \
             connections usually means the machine is overloaded: lower -c or the rate)"
        )?;
    }
    if let Some(path) = &args.json {
        crate::output::write_json(path, &report)?;
    }
    out.flush()?;
    let failed: Vec<String> = report
        .rows
        .iter()
        .filter_map(|r| {
            crate::load::failure(&r.load, args.max_error_rate)
                .map(|why| format!("{} {} round {}: {why}", r.strategy, r.mode, r.round + 1))
        })
        .collect();
    if let Some(first) = failed.first() {
        eprintln!(
            "frugal bench http: {} of {} runs failed; first: {first}",
            failed.len(),
            report.rows.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Medians and ranges per strategy, then whether the strategies differ beyond the noise.
fn summary(report: &BenchReport) -> String {
    let mut out = format!(
        "median (min–max) over {} rounds:\n{:<13} {:<13} {:>24} {:>26} {:>22}\n",
        report.repeats, "strategy", "mode", "req/s", "p99", "cpu µs/req"
    );
    let range = |median: String, min: String, max: String| format!("{median} ({min}–{max})");
    for s in &report.summary {
        let rps = range(
            format!("{:.0}", s.achieved_rps.median),
            format!("{:.0}", s.achieved_rps.min),
            format!("{:.0}", s.achieved_rps.max),
        );
        let p99 = range(
            ms(s.p99_ns.median as u64),
            format!("{:.2}", s.p99_ns.min / 1e6),
            format!("{:.2}", s.p99_ns.max / 1e6),
        );
        let cpu = s.server_cpu_us_per_request.map_or("n/a".to_owned(), |c| {
            range(
                format!("{:.1}", c.median),
                format!("{:.1}", c.min),
                format!("{:.1}", c.max),
            )
        });
        out += &format!(
            "{:<13} {:<13} {rps:>24} {p99:>26} {cpu:>22}\n",
            s.strategy.name(),
            s.mode
        );
    }
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
        match report.within_noise(mode, measure) {
            Some(noise) if noise.is_noise() => {
                out += &format!(
                    "{what}: the strategies' medians differ by {:.1}, no more than one \
                     strategy's own runs do ({:.1}): within run-to-run noise, no ranking\n",
                    noise.between, noise.within
                );
            }
            Some(noise) => {
                out += &format!(
                    "{what}: the strategies' medians differ by {:.1}, more than any strategy's \
                     own runs do ({:.1})\n",
                    noise.between, noise.within
                );
            }
            None if report.repeats < 2 => {
                out += &format!(
                    "{what}: one round, no spread: differences cannot be told from noise \
                     (use -r 3 or more)\n"
                );
                break;
            }
            None => {}
        }
    }
    out
}

fn header() -> String {
    format!(
        "{:<5} {:<13} {:<13} {:>10} {:>10} {:>10} {:>10} {:>7} {:>11} {:>9}",
        "round",
        "strategy",
        "mode",
        "req/s",
        "p50",
        "p99",
        "p99.9",
        "errors",
        "cpu µs/req",
        "rss MiB"
    )
}

fn ms(ns: u64) -> String {
    format!("{:.2} ms", ns as f64 / 1e6)
}

fn line(r: &BenchRow) -> String {
    format!(
        "{:<5} {:<13} {:<13} {:>10.0} {:>10} {:>10} {:>10} {:>7} {:>11.1} {:>9.1}",
        r.round + 1,
        r.strategy.name(),
        r.mode,
        r.achieved_rps,
        ms(r.p50_ns),
        ms(r.p99_ns),
        ms(r.p999_ns),
        r.errors.total(),
        r.server_cpu_us_per_request,
        r.server_rss_bytes as f64 / (1024.0 * 1024.0)
    )
}
