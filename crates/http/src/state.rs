//! The service's settings and the state every connection shares: the pools, the counters,
//! and the request's work section (the CPU burn, filling the response). A leaf of the service:
//! the strategies ([`crate::release`]) and the server ([`crate::server`]) use it; it uses
//! neither.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::resources::{BufferPool, Lease, LeasePool};
use crate::strategy::Strategy;

/// Settings of the service. `Default` gives the values `frugal serve` uses without flags.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct ServeConfig {
    /// Address to bind; port 0 picks a free port.
    pub addr: SocketAddr,
    /// How requests release their resources.
    pub strategy: Strategy,
    /// CPU burned per request, in microseconds of the handling thread's own CPU time
    /// (`CLOCK_THREAD_CPUTIME_ID`), not of the wall clock: time the thread spends preempted,
    /// time-sliced with other requests or throttled by a cgroup CPU quota does not count, so a
    /// server given fewer CPUs really has less capacity. Busy work, not sleep; 1 ms or more runs
    /// under `tokio::task::block_in_place` so that it does not stall the worker's other tasks.
    pub work_us: u64,
    /// Before its CPU work, each request holds its lease this long, waiting: a slow downstream
    /// call (think a database query) made while holding the lease. The wait ends early when the
    /// request is cancelled (the client went away: reset, or ended its side of the connection),
    /// like a call that honours Go's request context; the request then does no CPU work and
    /// answers 503. The wait is asynchronous, as an async driver's call is: it holds a lease and
    /// a buffer but no thread, so any number of holding requests leaves the service able to
    /// answer `/healthz` and to shut down (an earlier version blocked a thread per hold and
    /// wedged beyond tokio's 512 blocking threads). Zero (the default) skips it. On shutdown
    /// (SIGTERM/SIGINT) every hold ends at once and its request goes on to answer normally, so
    /// that held requests finish within the grace period. Tests use a long hold to keep
    /// requests in flight for as long as they need, whatever the machine's speed.
    pub hold: Duration,
    /// `async-chain` only: the simulated reset that each request's async cleanup awaits before
    /// it returns the lease, in microseconds (a `tokio::time::sleep`, whose timer rounds up to
    /// whole milliseconds; 0, the default, is one `yield_now`: an await that completes after
    /// the task was rescheduled once).
    pub release_us: u64,
    /// Deferred calls each request registers besides its two releases (`frugal serve
    /// --extra-defers`): each closes a per-request span (`State::close_span`: it reads the
    /// clock and adds the time since the request's cleanup scope opened to
    /// `frugal_request_spans_seconds_total`, and counts itself in `frugal_defers_run_total`),
    /// as a handler's `defer span.End()` or `defer metrics.ObserveSince(start)` would. The
    /// chain strategies register them in the request's scope (`chain`, `chain-cancel`: the
    /// `frugal_defer::scope` chain; `async-chain`: its async scope), `guard` holds one guard
    /// per call, `manual` writes the same calls out after the work. 0 (the default) adds none.
    pub extra_defers: usize,
    /// Response body size in bytes.
    pub response_bytes: usize,
    /// Tokio worker threads; `None` = `std::thread::available_parallelism()`.
    pub workers: Option<usize>,
    /// Size of the bounded lease pool.
    pub lease_pool_size: usize,
    /// Idle buffers kept by the buffer pool.
    pub buffer_pool_size: usize,
    /// Deadline of a request: a lease not obtained by then is answered 503.
    pub deadline: Duration,
    /// A client must send a request head within this time of starting it (slow-client guard).
    pub header_timeout: Duration,
    /// On SIGINT/SIGTERM, how long in-flight requests get to finish.
    pub shutdown_grace: Duration,
    /// A connection whose writes make no progress for this long (the client stopped reading)
    /// is closed, like nginx's `send_timeout` (60 s by default there too). An idle keep-alive
    /// connection is closed after [`header_timeout`](Self::header_timeout): hyper's head timer
    /// also runs while it waits for the next request.
    pub send_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            strategy: Strategy::Manual,
            work_us: 10,
            hold: Duration::ZERO,
            release_us: 0,
            extra_defers: 0,
            response_bytes: 128,
            workers: None,
            lease_pool_size: 128,
            buffer_pool_size: 1024,
            deadline: Duration::from_secs(2),
            header_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            send_timeout: Duration::from_secs(60),
        }
    }
}

impl ServeConfig {
    /// A default configuration with this strategy.
    pub fn with_strategy(strategy: Strategy) -> Self {
        ServeConfig {
            strategy,
            ..ServeConfig::default()
        }
    }
}

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: ServeConfig,
    pub(crate) buffers: BufferPool,
    pub(crate) leases: LeasePool,
    pub(crate) metrics: Metrics,
    /// Fired when the service stops accepting: holds end early (see [`ServeConfig::hold`]).
    pub(crate) stopping: CancellationToken,
}

impl State {
    pub(crate) fn take_buffer(&self) -> Vec<u8> {
        self.buffers.take()
    }

    pub(crate) fn release_buffer(&self, buf: Vec<u8>) {
        self.metrics.defers_run.fetch_add(1, Relaxed);
        self.buffers.put(buf);
    }

    pub(crate) fn release_lease(&self, lease: Lease) {
        self.metrics.defers_run.fetch_add(1, Relaxed);
        self.leases.release(lease);
    }

    /// One of a request's extra deferred calls ([`ServeConfig::extra_defers`]): closes the
    /// request's span opened at `opened` — reads the clock, adds the span's length to the
    /// span-time counter — and counts itself as a cleanup action run.
    pub(crate) fn close_span(&self, opened: Instant) {
        let ns = u64::try_from(opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.metrics.span_ns.fetch_add(ns, Relaxed);
        self.metrics.defers_run.fetch_add(1, Relaxed);
    }

    /// The request's work section, run while it holds its lease, after the hold (see
    /// [`ServeConfig::hold`], awaited by `strategy::handle` before the strategy runs: a cleanup
    /// scope cannot span an `.await`): burn `work_us` of thread CPU time, fill the buffer and
    /// copy it into the response body. `None` when a hold was configured and the request was
    /// cancelled by the time it ended (nothing is burned then). Without a hold nothing is
    /// cancellable: a quick request whose client half-closed still gets its answer. The work
    /// section never sees the lease.
    pub(crate) fn work(&self, buf: &mut Vec<u8>, cancelled: &CancellationToken) -> Option<Bytes> {
        if !self.config.hold.is_zero() && cancelled.is_cancelled() {
            return None;
        }
        Some(self.produce(buf))
    }

    /// The work section after the hold: burn `work_us` of CPU, fill the buffer, copy it out.
    pub(crate) fn produce(&self, buf: &mut Vec<u8>) -> Bytes {
        let us = self.config.work_us;
        if us >= BLOCKING_WORK_US {
            // Work this long would stall the worker's other tasks and, when the worker was the
            // one polling the I/O driver, every socket: hand the worker over first.
            tokio::task::block_in_place(|| burn_cpu(us));
        } else {
            burn_cpu(us);
        }
        const PATTERN: &[u8; 64] =
            b"frugal: what does cleanup cost? how small can the machine be??\n\n";
        while buf.len() < self.config.response_bytes {
            let n = (self.config.response_bytes - buf.len()).min(PATTERN.len());
            buf.extend_from_slice(&PATTERN[..n]);
        }
        Bytes::copy_from_slice(buf)
    }

    /// Waits [`ServeConfig::hold`] unless `cancelled` fires first (`false`) or the service
    /// stops (`true`: the request goes on and answers). Asynchronous: a holding request takes
    /// no thread.
    pub(crate) async fn hold(&self, cancelled: &CancellationToken) -> bool {
        let hold = self.config.hold;
        if hold.is_zero() {
            return true;
        }
        tokio::select! {
            biased;
            () = cancelled.cancelled() => false,
            () = self.stopping.cancelled() => true,
            () = tokio::time::sleep(hold) => true,
        }
    }
}

/// CPU work of at least this many microseconds runs under `block_in_place`.
const BLOCKING_WORK_US: u64 = 1000;

/// CPU time consumed so far by the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    // The kernel gives non-negative seconds and nanoseconds below 1e9 for this clock.
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Busy work until the calling thread has consumed `us` microseconds of CPU time (an LCG the
/// optimizer cannot remove). Timed by the thread's CPU clock, not the wall clock: while the
/// thread is preempted, shares its CPU with other busy threads or is throttled by a cgroup
/// quota, its CPU clock stands still and the work goes on, so `us` is the CPU a request costs,
/// whatever the load (the clock reads themselves, a system call each, count as work too).
fn burn_cpu(us: u64) {
    if us == 0 {
        return;
    }
    let end = thread_cpu_time() + Duration::from_micros(us);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    loop {
        for _ in 0..256 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
        }
        if thread_cpu_time() >= end {
            break;
        }
    }
    std::hint::black_box(x);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_cpu_consumes_the_threads_cpu_time() {
        // A lower bound only: the thread's CPU clock must have advanced by the work asked for
        // (however long that took on the wall clock).
        let before = thread_cpu_time();
        burn_cpu(20_000);
        assert!(thread_cpu_time() - before >= Duration::from_millis(20));
    }
}
