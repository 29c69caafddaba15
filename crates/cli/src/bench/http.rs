//! `frugal bench http`: the service per cleanup strategy, as a separate process, under load.

use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::Context as _;
use frugal_http::{bench, BenchConfig, Strategy};

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
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
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
    /// Rounds: every strategy runs once per round, alternating, each on a fresh server; the
    /// summary gives the median and range over the rounds (1 to 100).
    #[arg(short = 'r', long, default_value_t = 3, allow_hyphen_values = true,
          value_parser = ranges::count::<u32>(1, 100, "one round has no spread to judge a difference by; more than 100 belong in a script"))]
    repeats: u32,
    /// Fail (exit status 1, after the report) when any run's error rate is above this
    /// percentage, as `frugal load --max-error-rate` (0 to 100, a trailing % is allowed).
    #[arg(long, default_value = "1%", allow_hyphen_values = true,
          value_parser = ranges::percent(ranges::ERROR_RATE_WHY))]
    max_error_rate: f64,
    #[command(flatten)]
    output: crate::output::OutputArgs,
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
    // One step per run: every strategy, both modes, every round.
    let runs = config.strategies.len() * 2 * config.repeats;
    let bar = crate::output::bar(runs as u64, args.output.quiet);
    bar.set_message(format!(
        "{} connections, {:?} + {:?} warm-up per run",
        config.connections, config.duration, config.warmup
    ));
    let report = bench(&config, server, |row| {
        bar.inc(1);
        bar.set_message(format!(
            "round {} {} {}: {:.0} req/s",
            row.round + 1,
            row.strategy,
            row.mode,
            row.achieved_rps
        ));
    });
    bar.finish_and_clear();
    let report = report?;
    crate::output::emit(&args.output, &report)?;
    let failed: Vec<String> = report
        .rows
        .iter()
        .filter_map(|r| {
            r.load
                .failure(args.max_error_rate)
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
