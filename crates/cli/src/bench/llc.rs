//! `frugal bench llc`: the service's last-level cache misses per request with 0 and 10 extra
//! deferred calls (article 4.2), simulated under valgrind (cachegrind), or counted by the PMU
//! where there is one.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use frugal_http::Strategy;
use frugal_workloads::llc::{self, Config, LlcReport};

use crate::ranges;

/// Arguments of `frugal bench llc`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Runs `frugal serve` under valgrind's cachegrind (cache geometry from sysfs) for each strategy and
extra-defers count, twice: answering N and 2N requests from a client in this process on
loopback, then SIGTERM. Per request = (totals of the 2N run - totals of the N run) / N, so the
service's start-up and shut-down cancel. Every count is simulated; the service's throughput
(for the implied DRAM read bandwidth) is measured natively. Needs valgrind
(apt-get install valgrind).

Where the PMU counts LLC-loads and LLC-load-misses, the hardware counts instead: the service
runs natively and every thread of it is counted across N requests after a warm-up (written,
but never run on a machine with a PMU so far).")]
pub struct Args {
    /// The quick profile: N = 200 requests on one connection, 1 s throughput runs (the
    /// default is N = 2,000 over 64 connections, 3 s throughput runs).
    #[arg(long)]
    quick: bool,
    /// N: requests of the short run (the long run sends 2N), 1 to 100,000 [default: 2000, or
    /// 200 with --quick].
    #[arg(short = 'n', long, allow_hyphen_values = true,
          value_parser = ranges::count::<u64>(1, MAX_REQUESTS, REQUESTS_WHY))]
    requests: Option<u64>,
    /// Keep-alive connections the requests go over in turn, one in flight at a time, 1 to
    /// 1,000 and at most N [default: 64, or 1 with --quick].
    #[arg(short = 'c', long, allow_hyphen_values = true,
          value_parser = ranges::count::<u64>(1, 1000, "every connection is accepted and served under valgrind"))]
    connections: Option<u64>,
    /// Extra deferred calls per request to compare (comma-separated, each 0 to 1,000;
    /// `frugal serve --extra-defers`).
    #[arg(long, value_delimiter = ',', default_value = "0,10", allow_hyphen_values = true,
          value_parser = ranges::count::<usize>(0, ranges::MAX_EXTRA_DEFERS, ranges::EXTRA_DEFERS_WHY))]
    defers: Vec<usize>,
    /// Strategies to measure (comma-separated: manual, guard, chain, chain-cancel,
    /// async-chain).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "chain,manual",
        allow_hyphen_values = true
    )]
    strategies: Vec<Strategy>,
    /// Duration of each native throughput run (the rate the implied DRAM bandwidth is
    /// computed at), 100ms to 1day [default: 3s, or 1s with --quick].
    #[arg(long, allow_hyphen_values = true,
          value_parser = ranges::duration(ranges::MIN_RUN, ranges::MAX_RUN, ranges::RUN_WHY))]
    rate_duration: Option<Duration>,
    #[command(flatten)]
    output: crate::output::OutputArgs,
}

/// Most requests of a short run.
const MAX_REQUESTS: u64 = 100_000;
/// Why [`MAX_REQUESTS`].
const REQUESTS_WHY: &str =
    "every request runs under valgrind, about fifty times slower than natively; the long run sends twice as many";

/// Runs `frugal bench llc`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = config(args.quick)?;
    config.requests = args.requests.unwrap_or(config.requests);
    config.connections = args.connections.unwrap_or(config.connections);
    if config.connections > config.requests {
        return Err(ranges::usage(format!(
            "--connections {} is more than the {} requests: every connection must carry one",
            config.connections, config.requests
        )));
    }
    config.extra_defers = dedup(args.defers);
    config.strategies = dedup(args.strategies);
    config.rate_duration = args.rate_duration.unwrap_or(config.rate_duration);
    let report = measure(&config, args.output.quiet)?;
    crate::output::emit(&args.output, &report)?;
    Ok(ExitCode::SUCCESS)
}

/// The profile's configuration, the service being this executable's `serve`.
pub(crate) fn config(quick: bool) -> anyhow::Result<Config> {
    let exe = std::env::current_exe().context("cannot find the path of this executable")?;
    let argv = vec![exe.to_string_lossy().into_owned(), "serve".to_owned()];
    Ok(if quick {
        Config::quick(argv)
    } else {
        Config::full(argv)
    })
}

/// Runs the measurement with a progress bar.
fn measure(config: &Config, quiet: bool) -> anyhow::Result<LlcReport> {
    let bar = crate::output::bar(1, quiet);
    let report = llc::run(config, &mut |p| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(p.label);
    });
    bar.finish_and_clear();
    Ok(report?)
}

/// The values in their first order, each once.
fn dedup<T: PartialEq>(values: Vec<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}
