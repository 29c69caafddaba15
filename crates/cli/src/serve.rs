//! `frugal serve`: the HTTP service whose per-request cleanup strategy is selectable.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use frugal_http::{serve, ServeConfig, Strategy};

use crate::ranges;

/// Arguments of `frugal serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to bind (port 0 picks a free port; the bound one is printed).
    #[arg(long, default_value = "127.0.0.1:0", allow_hyphen_values = true)]
    addr: SocketAddr,
    /// How each request releases its buffer and its lease: manual, guard, chain, chain-cancel,
    /// async-chain.
    #[arg(long, default_value = "manual", allow_hyphen_values = true)]
    strategy: Strategy,
    /// CPU burned per request, in microseconds of the handling thread's CPU time
    /// (CLOCK_THREAD_CPUTIME_ID), not wall-clock time: preemption, time-slicing and cgroup
    /// throttling do not count, so fewer CPUs really mean less capacity. 0 to 1,000,000.
    #[arg(long, default_value_t = ServeConfig::default().work_us, allow_hyphen_values = true,
          value_parser = ranges::count::<u64>(0, ranges::MAX_WORK_US, ranges::WORK_WHY))]
    work_us: u64,
    /// Milliseconds each request holds its lease waiting before its CPU work: simulates a slow
    /// downstream call (e.g. a database query) made while holding the lease. The wait ends
    /// early when the client goes away (the request is then cancelled, no work is done). A
    /// holding request takes no thread. On SIGTERM/SIGINT holds end at once and their requests
    /// answer normally. 0 = no hold. Meant for tests and demonstrations. 0 to 600,000.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true,
          value_parser = ranges::count::<u64>(0, 600_000, "at most 10 minutes: a longer hold is a hung request"))]
    hold_ms: u64,
    /// async-chain: microseconds of simulated reset each request's async cleanup awaits before
    /// returning the lease (tokio's timer rounds up to whole milliseconds; 0 = one yield), 0 to
    /// 10,000,000.
    #[arg(long, default_value_t = ServeConfig::default().release_us, allow_hyphen_values = true,
          value_parser = ranges::count::<u64>(0, 10_000_000, "at most 10 s: a longer reset is a hung connection"))]
    release_us: u64,
    /// Deferred calls each request registers besides releasing its buffer and its lease, 0 to
    /// 1,000 (article 4.2 compares 0 with 10). Each one closes a per-request span, as a
    /// handler's `defer span.End()` would: it captures the moment the request's cleanup scope
    /// opened, and at exit reads the clock and adds the span's length to
    /// frugal_request_spans_seconds_total (and counts in frugal_defers_run_total). chain and
    /// chain-cancel register them in the request's defer chain, async-chain in its async
    /// scope, guard holds one guard per call, manual makes the same calls explicitly after the
    /// work.
    #[arg(long, default_value_t = ServeConfig::default().extra_defers, allow_hyphen_values = true,
          value_parser = ranges::count::<usize>(0, ranges::MAX_EXTRA_DEFERS, ranges::EXTRA_DEFERS_WHY))]
    extra_defers: usize,
    /// Response body size in bytes, 0 to 64 MiB.
    #[arg(long, default_value_t = ServeConfig::default().response_bytes, allow_hyphen_values = true,
          value_parser = ranges::count::<usize>(0, ranges::MAX_RESPONSE_BYTES, ranges::RESPONSE_WHY))]
    response_bytes: usize,
    /// Tokio worker threads, 1 to 1024 [default: the CPUs this process may run on].
    #[arg(long, allow_hyphen_values = true,
          value_parser = ranges::count::<usize>(1, ranges::MAX_THREADS, ranges::THREADS_WHY))]
    workers: Option<usize>,
    /// Size of the bounded lease pool (think database connections), 1 to 1,000,000.
    #[arg(long, default_value_t = ServeConfig::default().lease_pool_size, allow_hyphen_values = true,
          value_parser = ranges::count::<usize>(1, 1_000_000, "a pool of zero leases answers nothing; a million is beyond any database"))]
    lease_pool: usize,
    /// Request deadline: a lease not obtained by then is answered 503. 1ms to 1h.
    #[arg(long, default_value = "2s", allow_hyphen_values = true,
          value_parser = ranges::duration(ranges::MIN_TIMEOUT, ranges::MAX_TIMEOUT, ranges::TIMEOUT_WHY))]
    deadline: Duration,
    /// Time a client has to send a request head (slow-client guard); also how long an idle
    /// keep-alive connection stays open. 1ms to 1h.
    #[arg(long, default_value = "10s", allow_hyphen_values = true,
          value_parser = ranges::duration(ranges::MIN_TIMEOUT, ranges::MAX_TIMEOUT, ranges::TIMEOUT_WHY))]
    header_timeout: Duration,
    /// A connection whose answer makes no progress for this long (the client stopped reading)
    /// is closed, like nginx's send_timeout. 1ms to 1h.
    #[arg(long, default_value = "60s", allow_hyphen_values = true,
          value_parser = ranges::duration(ranges::MIN_TIMEOUT, ranges::MAX_TIMEOUT, ranges::TIMEOUT_WHY))]
    send_timeout: Duration,
}

/// Runs `frugal serve`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = ServeConfig::with_strategy(args.strategy);
    config.addr = args.addr;
    config.work_us = args.work_us;
    config.hold = Duration::from_millis(args.hold_ms);
    config.release_us = args.release_us;
    config.extra_defers = args.extra_defers;
    config.response_bytes = args.response_bytes;
    config.workers = args.workers;
    config.lease_pool_size = args.lease_pool.max(1);
    config.deadline = args.deadline;
    config.header_timeout = args.header_timeout;
    config.send_timeout = args.send_timeout;
    let mut print_error = None;
    serve(config, |addr| {
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, "listening on http://{addr}").and_then(|()| out.flush()) {
            print_error = Some(e);
        }
    })
    .context("frugal serve failed")?;
    if let Some(e) = print_error {
        return Err(e).context("cannot print the listening address");
    }
    Ok(ExitCode::SUCCESS)
}
