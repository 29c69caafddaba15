//! The service's counters and their rendering in the Prometheus text format.
//!
//! Why hand-written rather than the `prometheus` or `metrics` crates: the counters sit on the
//! measured path — every request of every strategy updates them — so they are plain relaxed
//! atomics in one struct, with no registry, no label lookup (the one label, the strategy, is
//! fixed per process) and no lock. The text format is a few lines per metric (`# HELP`,
//! `# TYPE`, `name{labels} value`), written only when `/metrics` is scraped; a crate would add a
//! registry lookup or a hash per update and a dependency tree for what a `write!` does.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::procfs;
use crate::resources::{BufferPool, LeasePool};
use crate::strategy::Strategy;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS_S: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Answered 200.
    Ok,
    /// No lease within the deadline: 503.
    LeaseTimeout,
    /// The client went away (or the server shut down) before the answer.
    Cancelled,
}

/// Counters shared by all connections; every field is an independent relaxed atomic (a scrape
/// may see one counter a request ahead of another, as Prometheus allows).
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    ok: AtomicU64,
    lease_timeouts: AtomicU64,
    cancelled: AtomicU64,
    other: AtomicU64,
    /// One counter per bound of [`BUCKETS_S`], then one for the latencies above the last bound:
    /// the histogram's `+Inf` bucket and `_count` are their sum, so they can never be lower than
    /// a finite bucket, however the relaxed loads interleave with concurrent records.
    buckets: [AtomicU64; BUCKETS_S.len() + 1],
    latency_sum_ns: AtomicU64,
    pub(crate) in_flight: AtomicI64,
    pub(crate) connections_open: AtomicI64,
    pub(crate) connections_total: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
    pub(crate) accept_fd_exhausted: AtomicU64,
    /// Cleanup actions run (releases of buffers and leases, and the extra deferred calls of
    /// `--extra-defers`), whatever the strategy.
    pub(crate) defers_run: AtomicU64,
    /// Summed length of the per-request spans the extra deferred calls closed, nanoseconds.
    pub(crate) span_ns: AtomicU64,
    /// Leases released because the request was cancelled: by a cleanup bound to the
    /// cancellation (`chain-cancel`), or by the cancelled async scope's spawned cleanup
    /// (`async-chain`).
    pub(crate) leases_released_on_cancel: AtomicU64,
}

impl Metrics {
    /// Records one finished work request.
    pub(crate) fn record(&self, outcome: Outcome, latency: Duration) {
        match outcome {
            Outcome::Ok => &self.ok,
            Outcome::LeaseTimeout => &self.lease_timeouts,
            Outcome::Cancelled => &self.cancelled,
        }
        .fetch_add(1, Relaxed);
        let secs = latency.as_secs_f64();
        let i = BUCKETS_S
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS_S.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.latency_sum_ns
            .fetch_add(latency.as_nanos() as u64, Relaxed);
    }

    /// Records a request to a path that does no work (`/metrics`, `/healthz`).
    pub(crate) fn record_other(&self) {
        self.other.fetch_add(1, Relaxed);
    }

    /// Renders everything in the Prometheus text exposition format (version 0.0.4).
    pub(crate) fn render(
        &self,
        strategy: Strategy,
        buffers: &BufferPool,
        leases: &LeasePool,
    ) -> String {
        let mut out = String::with_capacity(4096);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, String)]| {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        metric(
            "frugal_http_requests_total",
            "counter",
            "Requests finished, by outcome.",
            &[
                (r#"{outcome="ok"}"#, self.ok.load(Relaxed).to_string()),
                (
                    r#"{outcome="lease_timeout"}"#,
                    self.lease_timeouts.load(Relaxed).to_string(),
                ),
                (
                    r#"{outcome="cancelled"}"#,
                    self.cancelled.load(Relaxed).to_string(),
                ),
                (r#"{outcome="other"}"#, self.other.load(Relaxed).to_string()),
            ],
        );
        let mut cumulative = 0;
        let mut hist: Vec<(String, String)> = BUCKETS_S
            .iter()
            .zip(&self.buckets)
            .map(|(bound, count)| {
                cumulative += count.load(Relaxed);
                (
                    format!(r#"_bucket{{le="{bound}"}}"#),
                    cumulative.to_string(),
                )
            })
            .collect();
        // The overflow bucket completes the cumulative sum: `+Inf` and `_count` are the total.
        let count = cumulative + self.buckets[BUCKETS_S.len()].load(Relaxed);
        hist.push((r#"_bucket{le="+Inf"}"#.to_owned(), count.to_string()));
        let sum = self.latency_sum_ns.load(Relaxed) as f64 / 1e9;
        let name = "frugal_http_request_duration_seconds";
        metric_histogram(&mut out, name, &hist, sum, count);
        let gauge = "gauge";
        let counter = "counter";
        one(
            &mut out,
            "frugal_http_requests_in_flight",
            gauge,
            "Work requests being handled.",
            self.in_flight.load(Relaxed).to_string(),
        );
        one(
            &mut out,
            "frugal_http_connections_open",
            gauge,
            "Client connections open.",
            self.connections_open.load(Relaxed).to_string(),
        );
        one(
            &mut out,
            "frugal_http_connections_total",
            counter,
            "Client connections accepted.",
            self.connections_total.load(Relaxed).to_string(),
        );
        one(
            &mut out,
            "frugal_http_accept_errors_total",
            counter,
            "Failed accept calls (any cause).",
            self.accept_errors.load(Relaxed).to_string(),
        );
        one(
            &mut out,
            "frugal_http_accept_fd_exhausted_total",
            counter,
            "Accept calls that failed for lack of file descriptors (EMFILE/ENFILE).",
            self.accept_fd_exhausted.load(Relaxed).to_string(),
        );
        one(
            &mut out,
            "frugal_pool_buffers_in_use",
            gauge,
            "Buffers taken from the pool and not yet returned.",
            buffers.in_use().to_string(),
        );
        one(
            &mut out,
            "frugal_pool_buffers_idle",
            gauge,
            "Buffers waiting in the pool.",
            buffers.idle().to_string(),
        );
        one(
            &mut out,
            "frugal_pool_buffers_allocated_total",
            counter,
            "Buffers allocated because the pool was empty.",
            buffers.allocated().to_string(),
        );
        one(
            &mut out,
            "frugal_pool_buffers_released_total",
            counter,
            "Buffers given back to the pool.",
            buffers.released().to_string(),
        );
        one(
            &mut out,
            "frugal_pool_leases_released_total",
            counter,
            "Leases given back to the pool.",
            leases.released().to_string(),
        );
        one(
            &mut out,
            "frugal_pool_leases_released_on_cancel_total",
            counter,
            "Leases given back because their request was cancelled (chain-cancel: at that moment; async-chain: by the cancelled scope's spawned cleanup).",
            self.leases_released_on_cancel.load(Relaxed).to_string(),
        );
        one(
            &mut out,
            "frugal_pool_leases_size",
            gauge,
            "Size of the bounded lease pool.",
            leases.size().to_string(),
        );
        one(
            &mut out,
            "frugal_pool_leases_in_use",
            gauge,
            "Leases held by requests.",
            leases.in_use().to_string(),
        );
        one(
            &mut out,
            "frugal_pool_lease_waits_total",
            counter,
            "Lease requests that had to wait.",
            leases.waits().to_string(),
        );
        one(
            &mut out,
            "frugal_pool_lease_wait_seconds_total",
            counter,
            "Time spent waiting for leases.",
            leases.wait_seconds().to_string(),
        );
        one(
            &mut out,
            "frugal_pool_lease_timeouts_total",
            counter,
            "Lease waits that hit the request deadline.",
            leases.timeouts().to_string(),
        );
        one(
            &mut out,
            "frugal_defers_run_total",
            counter,
            "Cleanup actions run (buffer and lease releases, extra deferred calls) by the \
             cleanup strategy.",
            self.defers_run.load(Relaxed).to_string(),
        );
        one(
            &mut out,
            "frugal_request_spans_seconds_total",
            counter,
            "Summed length of the per-request spans closed by the extra deferred calls \
             (frugal serve --extra-defers).",
            (self.span_ns.load(Relaxed) as f64 / 1e9).to_string(),
        );
        let _ = writeln!(
            out,
            "# HELP frugal_cleanup_strategy_info The cleanup strategy in use.\n\
             # TYPE frugal_cleanup_strategy_info gauge\n\
             frugal_cleanup_strategy_info{{strategy=\"{}\"}} 1",
            strategy.name()
        );
        if let Some(stat) = procfs::proc_stat(None) {
            one(
                &mut out,
                "process_cpu_seconds_total",
                counter,
                "Total user and system CPU time spent in seconds.",
                stat.cpu_seconds.to_string(),
            );
            one(
                &mut out,
                "process_resident_memory_bytes",
                gauge,
                "Resident memory size in bytes.",
                stat.resident_memory_bytes.to_string(),
            );
        }
        if let Some(fds) = procfs::open_fds() {
            one(
                &mut out,
                "process_open_fds",
                gauge,
                "Number of open file descriptors.",
                fds.to_string(),
            );
        }
        out
    }
}

fn one(out: &mut String, name: &str, kind: &str, help: &str, value: String) {
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

fn metric_histogram(out: &mut String, name: &str, buckets: &[(String, String)], sum: f64, n: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} Latency of work requests, from the request head to the answer.\n\
         # TYPE {name} histogram"
    );
    for (suffix, value) in buckets {
        let _ = writeln!(out, "{name}{suffix} {value}");
    }
    let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {n}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_histogram() {
        let m = Metrics::default();
        m.record(Outcome::Ok, Duration::from_micros(50));
        m.record(Outcome::Ok, Duration::from_millis(3));
        m.record(Outcome::Cancelled, Duration::from_secs(60));
        let text = m.render(Strategy::Manual, &BufferPool::new(1, 1), &LeasePool::new(4));
        assert!(text.contains("frugal_http_request_duration_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("frugal_http_request_duration_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("frugal_http_request_duration_seconds_bucket{le=\"10\"} 2\n"));
        assert!(text.contains("frugal_http_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("frugal_http_request_duration_seconds_count 3\n"));
        assert!(text.contains("frugal_http_requests_total{outcome=\"cancelled\"} 1\n"));
        assert!(text.contains("frugal_pool_leases_size 4\n"));
        assert!(text.contains("process_resident_memory_bytes "));
    }

    #[test]
    fn histogram_stays_monotonic_under_concurrent_records() {
        let m = Metrics::default();
        std::thread::scope(|scope| {
            let recorder = scope.spawn(|| {
                for i in 0..20_000u64 {
                    // Spread over the buckets and the overflow.
                    m.record(Outcome::Ok, Duration::from_micros((i * 7919) % 20_000_000));
                }
            });
            while !recorder.is_finished() {
                let text = m.render(Strategy::Manual, &BufferPool::new(1, 1), &LeasePool::new(1));
                let values: Vec<u64> = text
                    .lines()
                    .filter(|l| l.starts_with("frugal_http_request_duration_seconds_bucket"))
                    .map(|l| {
                        l.rsplit(' ')
                            .next()
                            .and_then(|v| v.parse().ok())
                            .expect("a count")
                    })
                    .collect();
                assert_eq!(values.len(), BUCKETS_S.len() + 1);
                assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
                let count = text
                    .lines()
                    .find_map(|l| l.strip_prefix("frugal_http_request_duration_seconds_count "))
                    .and_then(|v| v.parse::<u64>().ok())
                    .expect("a count");
                assert_eq!(Some(&count), values.last());
            }
        });
    }
}
