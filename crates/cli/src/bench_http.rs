//! `frugal bench http`: the service per cleanup strategy, as a separate process, under load.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::Context as _;
use frugal_workloads::http::{bench, BenchConfig, BenchRow, Strategy};

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
        "frugal bench http: {} connections, {:?} per run after {:?} warm-up; server = separate process",
        config.connections, config.duration, config.warmup
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
    Ok(ExitCode::SUCCESS)
}

fn header() -> String {
    format!(
        "{:<13} {:<13} {:>10} {:>10} {:>10} {:>10} {:>7} {:>11} {:>9}",
        "strategy", "mode", "req/s", "p50", "p99", "p99.9", "errors", "cpu µs/req", "rss MiB"
    )
}

fn ms(ns: u64) -> String {
    format!("{:.2} ms", ns as f64 / 1e6)
}

fn line(r: &BenchRow) -> String {
    format!(
        "{:<13} {:<13} {:>10.0} {:>10} {:>10} {:>10} {:>7} {:>11.1} {:>9.1}",
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
