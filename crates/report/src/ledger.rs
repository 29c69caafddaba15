//! The claims ledger, complete: the rows `frugal bench defer --claims` (and `bench locality`)
//! already compute, plus the article's remaining numeric claims — chapter 1 (binary size,
//! context switch), 2.5 (the fio table), 4.1 (the service table), 4.2 (LLC and DRAM with
//! defers) and 4.3 (the step-down matrix) — each measured here, or said to be not measurable
//! with the reason, with the rule that decides the verdict and the command that reproduces it.

use serde::{Deserialize, Serialize};

use frugal_rightsize::{analyze, parse_csv, Catalog, Config, SeriesSet};
use frugal_workloads::chapter1::{ContextSwitch, GcPauses, GoBinary};
use frugal_workloads::claims::{Claim, Verdict};
use frugal_workloads::defer_bench::DeferReport;
use frugal_workloads::io::IoReport;
use frugal_workloads::llc::LlcReport;

use crate::service::ServiceSummary;

/// What the chapter-1 measurements found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chapter1 {
    /// The Go HTTP server binary, when a Go toolchain was there.
    pub go_binary: Option<GoBinary>,
    /// Why there is no Go figure, when there is none.
    pub go_note: Option<String>,
    /// Size of this `frugal` binary (the Rust service is one of its subcommands), bytes.
    pub frugal_binary_bytes: Option<u64>,
    /// The context-switch ping-pong.
    pub context_switch: Option<ContextSwitch>,
    /// The Go service's GC pauses under load.
    pub gc: Option<GcPauses>,
    /// Why there is no GC figure, when there is none.
    pub gc_note: Option<String>,
}

/// A ledger row with the command that reproduces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerRow {
    /// The claim and its verdict.
    #[serde(flatten)]
    pub claim: Claim,
    /// The command that measures it again.
    pub command: String,
}

fn claim(
    id: &str,
    section: &str,
    text: &str,
    article_value: &str,
    subject: &str,
    rule: &str,
) -> Claim {
    Claim {
        id: id.to_owned(),
        section: section.to_owned(),
        claim: text.to_owned(),
        article_value: article_value.to_owned(),
        subject: subject.to_owned(),
        measured: None,
        measured_value: None,
        rule: rule.to_owned(),
        verdict: Verdict::NotMeasurable,
        why: String::new(),
    }
}

fn judged(mut c: Claim, measured: String, value: f64, holds: bool, why: String) -> Claim {
    c.measured = Some(measured);
    c.measured_value = Some(value);
    c.verdict = if holds {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold
    };
    c.why = why;
    c
}

fn unmeasurable(mut c: Claim, why: impl Into<String>) -> Claim {
    c.why = why.into();
    c
}

const MIB: f64 = 1024.0 * 1024.0;

/// Chapter 1: the binary size and the context switch.
pub fn chapter1_claims(ch1: Option<&Chapter1>) -> Vec<LedgerRow> {
    let mut out = Vec::new();
    let size = claim(
        "1-go-binary-size",
        "1",
        "a Go HTTP service builds into a single static binary of only 12 MB",
        "12 MB",
        "net/http hello service, `CGO_ENABLED=0 go build`",
        "holds when the default build is within a factor 1.5 of 12 MB (8–18 MB)",
    );
    out.push(LedgerRow {
        claim: match ch1.and_then(|c| c.go_binary.as_ref()) {
            Some(b) => {
                let mb = b.size_bytes as f64 / 1e6;
                let frugal = ch1
                    .and_then(|c| c.frugal_binary_bytes)
                    .map(|f| {
                        format!(
                            "; for scale, this whole `frugal` binary (every experiment, the \
                             service, debug line tables) is {:.1} MB",
                            f as f64 / 1e6
                        )
                    })
                    .unwrap_or_default();
                judged(
                    size,
                    format!(
                        "{mb:.1} MB ({:.1} MiB); {:.1} MB stripped (-s -w); {}",
                        b.size_bytes as f64 / MIB,
                        b.stripped_bytes as f64 / 1e6,
                        b.go_version
                    ),
                    mb,
                    (8.0..=18.0).contains(&mb),
                    format!(
                        "static (no libc) as the article says; the size depends on the Go \
                         release and on symbols{frugal}"
                    ),
                )
            }
            None => unmeasurable(
                size,
                ch1.and_then(|c| c.go_note.clone())
                    .unwrap_or_else(|| "chapter-1 measurements did not run".to_owned()),
            ),
        },
        command: "frugal report (step chapter1; needs `go` on PATH)".to_owned(),
    });
    let cs = claim(
        "1-context-switch",
        "1",
        "a Linux thread context switch costs about 1–2 µs",
        "~1–2 µs",
        "two threads pinned to one CPU, ping-pong over a Unix socket pair",
        "holds when the cheaper of the two measured hand-overs (our ping-pong's median, `perf \
         bench sched pipe`) lies within 0.5–4 µs (the article's range, ×/÷ 2)",
    );
    out.push(LedgerRow {
        claim: match ch1.and_then(|c| c.context_switch.as_ref()) {
            Some(s) => {
                let us = s.median_ns / 1e3;
                let (lo, hi) = s
                    .samples_ns
                    .iter()
                    .fold((f64::INFINITY, 0.0f64), |(lo, hi), &x| {
                        (lo.min(x), hi.max(x))
                    });
                let perf = s
                    .perf_bench_usecs_per_op
                    .map(|p| {
                        format!(
                            "; `perf bench sched pipe -T` pinned: {:.2} µs per switch",
                            p / 2.0
                        )
                    })
                    .unwrap_or_else(|| "; perf not installed, no cross-check".to_owned());
                // Both figures are a switch plus the syscalls that hand over (socket or pipe):
                // the cheaper one is the tighter measure of the switch, and judging on it keeps
                // a run-to-run wobble of one of them from flipping the verdict.
                let cheaper = s.perf_bench_usecs_per_op.map_or(us, |p| us.min(p / 2.0));
                judged(
                    cs,
                    format!(
                        "{us:.2} µs per switch (median of {}, range {:.2}–{:.2}){perf}",
                        s.samples_ns.len(),
                        lo / 1e3,
                        hi / 1e3
                    ),
                    cheaper,
                    (0.5..=4.0).contains(&cheaper),
                    if s.pinned {
                        format!(
                            "judged on {cheaper:.2} µs; each hand-over on one CPU is a switch plus \
                             a read and a write, so both figures are upper bounds on the switch \
                             itself"
                        )
                    } else {
                        format!(
                            "judged on {cheaper:.2} µs; threads could not be pinned: the figures \
                             include cross-CPU wake-ups"
                        )
                    },
                )
            }
            None => unmeasurable(cs, "the ping-pong did not run"),
        },
        command: "frugal report (step chapter1)".to_owned(),
    });
    let gc = claim(
        "1-go-gc-stw",
        "1",
        "Go 1.22+'s GC keeps stop-the-world pauses steadily in the hundred-microsecond range",
        "~100 µs STW",
        "the chapter-1 Go HTTP service under closed-loop load, GODEBUG=gctrace=1 (sweep and \
         mark termination of every cycle; 32 KiB of garbage per request)",
        "holds when the 99th percentile of stop-the-world phases is below 1 ms",
    );
    out.push(LedgerRow {
        claim: match ch1.and_then(|c| c.gc.as_ref()) {
            Some(g) => judged(
                gc,
                format!(
                    "median {:.0} µs, p99 {:.0} µs, max {:.0} µs over {} cycles ({} phases) at \
                     {:.0} req/s; {}",
                    g.median_us,
                    g.p99_us,
                    g.max_us,
                    g.cycles,
                    g.pauses_us.len(),
                    g.rps,
                    g.go_version
                ),
                g.p99_us,
                g.p99_us < 1000.0,
                "wall-clock phases as gctrace prints them, with the load generator on the same \
                 cores: the scheduler can stretch a phase, which is what the maximum shows"
                    .to_owned(),
            ),
            None => unmeasurable(
                gc,
                ch1.and_then(|c| c.gc_note.clone())
                    .unwrap_or_else(|| "chapter-1 measurements did not run".to_owned()),
            ),
        },
        command: "frugal report (step chapter1; needs `go` on PATH)".to_owned(),
    });
    out.push(LedgerRow {
        claim: unmeasurable(
            claim(
                "1-thread-p99",
                "1",
                "with 100k Linux threads the typical p99 latency exceeds 1 ms",
                "> 1 ms",
                "a thread-per-connection service at 100k threads",
                "needs a thread-per-connection server holding 100k threads",
            ),
            "frugal's service is async (tokio); this machine's vm.max_map_count caps Rust threads \
             near 15k (see the 100k-threads row), so a 100k-thread server cannot run here",
        ),
        command: "frugal bench tasks -n 100000".to_owned(),
    });
    // Article 4.1's table: the GC pause of its Go service before and after batching defers.
    let pause = claim(
        "4.1-gc-pause",
        "4.1",
        "aggregating a Go handler's defers cuts the service's GC pause from 1.8 ms to 0.4 ms",
        "GC pause 1.8 → 0.4 ms",
        "the article's Go service, before and after `batchDefer`",
        "needs the article's service (its handlers and their defers) in Go; not published",
    );
    let context = match ch1.and_then(|c| c.gc.as_ref()) {
        Some(g) => format!(
            "; for scale, the chapter-1 Go HTTP service ({}) stops the world for median {:.0} µs, \
             p99 {:.0} µs at {:.0} req/s with 32 KiB of garbage per request — the article's \
             \"before\" is {:.1}× that p99",
            g.go_version,
            g.median_us,
            g.p99_us,
            g.rps,
            1800.0 / g.p99_us.max(1.0)
        ),
        None => String::new(),
    };
    out.push(LedgerRow {
        claim: unmeasurable(
            pause,
            format!(
                "the article's service is not published, and frugal's service is Rust (no GC); \
                 what batching changes in Go is measured per defer in `frugal bench defer` \
                 (go-batch-defer: allocations and ns per defer){context}"
            ),
        ),
        command: "frugal bench defer --claims; frugal report (step chapter1)".to_owned(),
    });
    out
}

/// Section 2.5: the fio table (throughput at QD 64; CPI and L1 miss rate need a PMU).
pub fn io_claims(io: Option<&IoReport>, pmu: bool) -> Vec<LedgerRow> {
    let command = "frugal bench io --qd 64 --direct --compare-fio".to_owned();
    let tput = claim(
        "2.5-fio-throughput",
        "2.5",
        "4 KiB random reads at queue depth 64 (fio, libaio) give 2.14–2.31 MB/s",
        "2.14 MB/s (Xeon), 2.31 MB/s (EPYC)",
        "io_uring, O_DIRECT, 4 KiB, QD 64 on this machine's disk",
        "holds when our throughput is within a factor 2 of 2.2 MB/s",
    );
    let mut out = vec![LedgerRow {
        claim: match io {
            Some(r) => {
                let mbs = r.bytes as f64 / (r.wall_time_ns.max(1) as f64 / 1e9) / 1e6;
                judged(
                    tput,
                    format!(
                        "{mbs:.1} MB/s ({:.0} IOPS) at QD {}, {:?}",
                        r.iops, r.queue_depth, r.mode
                    ),
                    mbs,
                    (1.1..=4.4).contains(&mbs),
                    "2.2 MB/s at 4 KiB is about 550 IOPS — a single spinning disk, not a server \
                     CPU's limit at QD 64; the article's figure cannot be a CPU-bound throughput"
                        .to_owned(),
                )
            }
            None => unmeasurable(tput, "bench io did not run"),
        },
        command: command.clone(),
    }];
    let cpi = claim(
        "2.5-cpi-l1",
        "2.5",
        "under that load CPI is 1.87 (Xeon) / 2.04 (EPYC) and the L1d miss rate 12.3% / 9.6%",
        "CPI 1.87 / 2.04; L1d miss 12.3% / 9.6%",
        "the I/O loop's CPU",
        "needs cycles and L1d counters of the CPU running the reads",
    );
    out.push(LedgerRow {
        claim: unmeasurable(
            cpi,
            if pmu {
                "this report does not count hardware events for the I/O loop; run `frugal stat -e \
                 cycles,instructions,L1-dcache-load-misses -- frugal bench io` on this machine"
            } else {
                "no hardware PMU here (perf_event_open gives ENOENT for cycles): CPI and L1 miss \
                 rates cannot be counted, and valgrind cannot simulate io_uring's kernel side"
            },
        ),
        command: "frugal stat -e cycles,instructions,L1-dcache-load-misses -- frugal bench io"
            .to_owned(),
    });
    out
}

/// Section 4.1: the article's `batchDefer`, as written, against Go's native `defer`.
pub fn batch_defer_claims(defer: Option<&DeferReport>) -> Vec<LedgerRow> {
    let c = claim(
        "4.1-batch-defer",
        "4.1",
        "aggregating defers with batchDefer (sync.Pool-cached slice) cuts the average defer \
         cost from 127 ns to 38 ns",
        "127 ns → 38 ns per defer",
        "go-defer vs go-batch-defer (the article's code as written), 8 defers in a loop",
        "holds when batchDefer's ns per defer is at most half of native defer's in the same run",
    );
    let per_defer = |d: &DeferReport, strategy: &str| {
        let row = d.row(strategy, "loop8")?;
        Some(row.time_ns.as_ref()?.median / f64::from(row.defers_per_op.max(1)))
    };
    let row = match defer.map(|d| (d, per_defer(d, "go-defer"), per_defer(d, "go-batch-defer"))) {
        Some((d, Some(native), Some(batch))) => {
            let allocs = d
                .row("go-batch-defer", "loop8")
                .and_then(|r| r.allocs_per_op)
                .map_or_else(String::new, |a| format!(", {a:.0} allocations per call"));
            judged(
                c,
                format!(
                    "native {native:.1} ns, batchDefer {batch:.1} ns per defer (×{:.1}{allocs})",
                    batch / native
                ),
                batch / native,
                batch <= native * 0.5,
                "as written, batchDefer builds a new sync.Pool on every call (the pool is never \
                 reused: each Put registers a new pool with the runtime), runs the cleanups in \
                 registration order instead of LIFO, and runs them when batchDefer returns — so \
                 it must itself be deferred"
                    .to_owned(),
            )
        }
        Some((d, _, _)) => unmeasurable(
            c,
            format!(
                "the Go benchmark did not run ({}): {}",
                d.go.status,
                d.go.message.as_deref().unwrap_or("no details")
            ),
        ),
        None => unmeasurable(c, "bench defer did not run"),
    };
    vec![LedgerRow {
        claim: row,
        command: "frugal bench defer --claims (Go rows need `go` on PATH)".to_owned(),
    }]
}

/// Section 4.1: the service table (p99 by cleanup strategy).
pub fn service_claims(service: Option<&ServiceSummary>) -> Vec<LedgerRow> {
    let c = claim(
        "4.1-service-p99",
        "4.1",
        "aggregating a handler's defers cuts the service's p99 from 42.1 ms to 28.3 ms (−33%)",
        "p99 42.1 → 28.3 ms",
        "frugal serve per cleanup strategy, constant rate, corrected p99",
        "with three runs or more per strategy, holds when the slowest strategy's median p99 is \
         ≥ 1.3× the fastest's and their run-to-run ranges do not overlap",
    );
    let lines: Vec<_> = service
        .map(|s| {
            s.strategies
                .iter()
                .filter_map(|l| Some((l.strategy.clone(), l.p99_ms.clone()?)))
                .collect()
        })
        .unwrap_or_default();
    // Tail latency of short runs on a shared machine swings by several times: judge only with
    // three runs or more per strategy (the full profile).
    let judged_claim = if lines.len() >= 2 && lines.iter().any(|(_, r)| r.n < 3) {
        let all: Vec<String> = lines
            .iter()
            .map(|(s, r)| format!("{s} {:.2} ms", r.median))
            .collect();
        let mut c = unmeasurable(
            c,
            "fewer than three runs per strategy: the difference between strategies cannot be \
             told from run-to-run noise (the full report, or `frugal bench http -r 3`, judges it)",
        );
        c.measured = Some(format!(
            "p99 by strategy, {} run(s) each: {}",
            lines[0].1.n,
            all.join(", ")
        ));
        c
    } else if lines.len() >= 2 {
        let (lo, hi) = crate::stats::lowest_and_highest(&lines).expect("two or more");
        let ratio = hi.1.median / lo.1.median.max(1e-9);
        let separated = hi.1.min > lo.1.max;
        let all: Vec<String> = lines
            .iter()
            .map(|(s, r)| format!("{s} {:.2} ms", r.median))
            .collect();
        judged(
            c,
            format!("p99 by strategy: {} (ratio {ratio:.2})", all.join(", ")),
            ratio,
            ratio >= 1.3 && separated,
            format!(
                "{} runs per strategy; the ranges of the fastest and slowest {}",
                lines[0].1.n,
                if separated {
                    "do not overlap"
                } else {
                    "overlap"
                }
            ),
        )
    } else {
        unmeasurable(c, "the service benchmark did not measure two strategies")
    };
    let mut out = vec![LedgerRow {
        claim: judged_claim,
        command: "frugal bench http".to_owned(),
    }];
    let rate = claim(
        "4.1-defers-per-second",
        "4.1",
        "aggregating defers cuts the service's deferred calls from 214k to 18.6k per second",
        "214k → 18.6k defers/s",
        "the article's Go service, before and after `batchDefer`",
        "a source-level check: what batching changes in the count",
    );
    out.push(LedgerRow {
        claim: unmeasurable(
            rate,
            "a count, not a cost: a batch registers one deferred call that runs N functions, so \
             deferred calls per second fall by the batch size (≈11.5× here) by construction while \
             the functions run as often as before; what a batch costs per function is measured \
             in `frugal bench defer` (go-batch-defer beside go-defer), and frugal's service runs \
             a fixed number of deferred calls per request per strategy (`frugal trace --pid` \
             counts them live)",
        ),
        command: "frugal bench defer --claims; frugal trace --pid PID".to_owned(),
    });
    out
}

/// The rule of the 4.2 row.
pub const LLC_RULE: &str = "holds if 10 extra deferred calls per request raise chain's \
    LL load-miss rate (simulated where there is no PMU) by at least 30% relative (the article: +67%) and add at least \
    one LL miss (64 B of DRAM reads) per request; smaller changes are within the noise of the \
    N/2N difference";

/// Article 4.2: LLC miss rate and DRAM read bandwidth with 10 defers per request, from `bench
/// llc` (the service under cachegrind, 0 vs 10 extra deferred calls per request). `skipped`:
/// why the step did not run, when it did not.
pub fn llc_claims(llc: Option<&LlcReport>, pmu: bool, skipped: Option<&str>) -> Vec<LedgerRow> {
    let simulated = llc.is_none_or(|r| r.simulated);
    let c = claim(
        "4.2-llc-dram",
        "4.2",
        "10 defers per request raise the LLC miss rate from 8.2% to 13.7% and DRAM reads from \
         4.1 to 6.9 GB/s",
        "LLC 8.2% → 13.7% (+67%); DRAM 4.1 → 6.9 GB/s",
        &format!(
            "frugal serve (chain; manual beside it), 0 vs 10 extra deferred calls per request, \
             {}",
            if simulated {
                "simulated LL (cachegrind)"
            } else {
                "the PMU's LLC-loads and LLC-load-misses"
            }
        ),
        LLC_RULE,
    );
    let command = "frugal bench llc".to_owned();
    let no_uncore = if pmu && !simulated {
        "DRAM bandwidth needs the memory controller's uncore counters, which frugal does not \
         open: the bandwidth here is implied by the LL misses"
    } else {
        "no PMU here: the hardware LLC miss rate and the DRAM bandwidth (uncore counters) are \
         not measurable on this machine; these figures are valgrind's simulation of its caches"
    };
    let Some(report) = llc else {
        let why = match skipped {
            Some(reason) => format!("bench llc did not run: {reason}; {no_uncore}"),
            None => format!("bench llc did not run; {no_uncore}"),
        };
        return vec![LedgerRow {
            claim: unmeasurable(c, why),
            command,
        }];
    };
    let effects = report.effects();
    let Some(chain) = effects
        .iter()
        .find(|e| e.strategy == "chain" && e.to_defers >= 10)
    else {
        return vec![LedgerRow {
            claim: unmeasurable(
                c,
                "bench llc did not measure chain with 0 and 10 extra deferred calls",
            ),
            command,
        }];
    };
    let pct = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{:.3}%", r * 100.0));
    let gbps = |b: Option<f64>| b.map_or("-".to_owned(), |b| format!("{:.4} GB/s", b / 1e9));
    let describe = |e: &frugal_workloads::llc::Effect| {
        let bytes = |d: usize| {
            report.row(&e.strategy, d).map_or("-".to_owned(), |r| {
                format!("{:.1}", r.per_request.ll_miss_bytes)
            })
        };
        format!(
            "{} {} → {} defers: LL load-miss rate {} → {}, LL misses/request {:+.2}, \
             instructions/request {:+.0}, LL-miss bytes/request {} → {}, implied DRAM read {} → {}",
            e.strategy,
            e.from_defers,
            e.to_defers,
            pct(e.ll_load_miss_rate.0),
            pct(e.ll_load_miss_rate.1),
            e.ll_misses_added,
            e.instructions_added,
            bytes(e.from_defers),
            bytes(e.to_defers),
            gbps(e.dram_read_bytes_per_s.0),
            gbps(e.dram_read_bytes_per_s.1),
        )
    };
    let mut measured = format!(
        "{}: {}",
        if simulated { "simulated" } else { "PMU" },
        describe(chain)
    );
    for e in effects.iter().filter(|e| e.strategy != "chain") {
        measured.push_str("; ");
        measured.push_str(&describe(e));
    }
    let rise = chain.ll_load_miss_rate_rise;
    let holds = rise.is_some_and(|r| r >= 0.30) && chain.ll_misses_added >= 1.0;
    let value = rise.map_or(0.0, |r| r * 100.0);
    let base = chain.ll_load_miss_rate.0.unwrap_or(0.0);
    let why = format!(
        "{} and {} requests per run over {} connection(s), {}; with no extra defers {} of the \
         data reads that reach the last level miss it (the service's steady working \
         set {} there); measured value: the rate's relative rise, in percent; {no_uncore}",
        report.requests,
        2 * report.requests,
        report.connections,
        report.cache,
        pct(Some(base)),
        if base < 0.01 { "fits" } else { "does not fit" },
    );
    vec![LedgerRow {
        claim: judged(c, measured, value, holds, why),
        command,
    }]
}

/// One row of the article's step-down matrix, run through both rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDown {
    /// The current type.
    pub current: String,
    /// Mean CPU utilization of the synthetic series.
    pub mean_utilization: f64,
    /// The article's target type.
    pub article_target: String,
    /// The article's risk label.
    pub article_risk: String,
    /// Where the article's own rule (one step down if mean < 35%) ends.
    pub article_rule_target: String,
    /// Our recommendation.
    pub ours: Option<String>,
    /// Our risk 0–4 of the article's target.
    pub our_risk_of_article_target: Option<u8>,
    /// Our projected CPU utilization (P99.5 of 5-minute maxima) on the article's target.
    pub projected_utilization: Option<f64>,
}

/// Risk labels of `frugal rightsize`.
pub fn risk_label(r: u8) -> &'static str {
    ["very low", "low", "medium", "high", "very high"][usize::from(r.min(4))]
}

/// 14 days of 5-minute samples on `current` with a daily cycle whose peak is `peak_ratio` ×
/// the mean, deterministic.
fn synthetic_csv(current: &str, vcpus: f64, mean_util: f64, peak_ratio: f64) -> String {
    let mut csv = String::from("timestamp,workload,instance_type,cpu_cores,memory_bytes\n");
    let mean = mean_util * vcpus;
    let amp = peak_ratio - 1.0;
    let start = 1_714_521_600i64;
    for i in 0..(14 * 288) {
        let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
        // A small deterministic ripple so windows differ.
        let ripple = 0.02 * ((i * 7919) % 13) as f64 / 13.0 - 0.01;
        let cpu = mean * (1.0 + amp * phase.sin() + ripple);
        csv += &format!(
            "{},{current},{current},{cpu:.4},2147483648\n",
            start + i * 300
        );
    }
    csv
}

/// Runs the article's two step-down rows through `frugal rightsize` (both rules).
pub fn step_down_matrix() -> Vec<StepDown> {
    let catalog = Catalog::embedded();
    [
        ("c7i.xlarge", 4.0, 0.28, "c7i.large", "low"),
        ("m7i.2xlarge", 8.0, 0.12, "m7i.large", "medium"),
    ]
    .into_iter()
    .filter_map(|(current, vcpus, util, target, risk)| {
        let mut set = SeriesSet::new();
        parse_csv(
            "step-down",
            synthetic_csv(current, vcpus, util, 1.6).as_bytes(),
            &mut set,
        )
        .ok()?;
        let report = analyze(&set.into_series(), &catalog, &Config::default());
        let rec = report.recommendations.into_iter().next()?;
        let on_target = rec
            .candidates
            .iter()
            .find(|p| p.instance_type == target)
            .or(rec
                .recommended
                .as_ref()
                .filter(|p| p.instance_type == target));
        Some(StepDown {
            current: current.to_owned(),
            mean_utilization: util,
            article_target: target.to_owned(),
            article_risk: risk.to_owned(),
            article_rule_target: rec
                .article
                .as_ref()
                .map_or_else(|| "-".to_owned(), |a| a.instance_type.clone()),
            ours: rec.recommended.as_ref().map(|p| p.instance_type.clone()),
            our_risk_of_article_target: on_target.map(|p| p.risk),
            projected_utilization: on_target.map(|p| p.cpu_utilization),
        })
    })
    .collect()
}

/// Section 4.3: each step-down row as a claim.
pub fn step_down_claims(rows: &[StepDown]) -> Vec<LedgerRow> {
    rows.iter()
        .map(|r| {
            let c = claim(
                &format!("4.3-step-down-{}", r.current),
                "4.3",
                &format!(
                    "{} at {:.0}% mean CPU steps down to {} at {} risk",
                    r.current,
                    r.mean_utilization * 100.0,
                    r.article_target,
                    r.article_risk
                ),
                &format!(
                    "{} → {}, risk {}",
                    r.current, r.article_target, r.article_risk
                ),
                "14 days of 5-minute samples, daily cycle peaking at 1.6 × the mean (synthetic)",
                "holds when our risk of the article's target is at most the article's label \
                 (low = 1, medium = 2)",
            );
            let claim = match r.our_risk_of_article_target {
                Some(risk) => {
                    let allowed = if r.article_risk == "low" { 1 } else { 2 };
                    judged(
                        c,
                        format!(
                            "risk {} ({}): P99.5 CPU projects to {:.0}% of {}; our pick: {}; the \
                             article's own rule ends on {}",
                            risk,
                            risk_label(risk),
                            r.projected_utilization.unwrap_or(f64::NAN) * 100.0,
                            r.article_target,
                            r.ours.as_deref().unwrap_or("keep"),
                            r.article_rule_target
                        ),
                        f64::from(risk),
                        risk <= allowed,
                        "a mean says nothing about peaks: the verdict depends on the load's \
                         shape, stated in the subject"
                            .to_owned(),
                    )
                }
                None => unmeasurable(c, "the article's target is not a cheaper catalog type"),
            };
            LedgerRow {
                claim,
                command: "frugal report (step rightsize; synthetic series as stated)".to_owned(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_down_rows_come_from_the_model() {
        let rows = step_down_matrix();
        assert_eq!(rows.len(), 2);
        for r in &rows {
            assert!(r.our_risk_of_article_target.is_some(), "{r:?}");
        }
        // The article's own rule takes one step, not two, on m7i.2xlarge.
        assert_eq!(rows[1].article_rule_target, "m7i.xlarge");
        let claims = step_down_claims(&rows);
        assert!(claims
            .iter()
            .all(|c| c.claim.verdict != Verdict::NotMeasurable));
    }

    #[test]
    fn missing_measurements_are_not_measurable_with_a_reason() {
        for row in chapter1_claims(None)
            .into_iter()
            .chain(io_claims(None, false))
            .chain(service_claims(None))
            .chain(llc_claims(None, false, Some("no valgrind")))
        {
            assert_eq!(row.claim.verdict, Verdict::NotMeasurable);
            assert!(!row.claim.why.is_empty());
        }
    }

    /// A `bench llc` report with chain's per-request figures for 0 and 10 extra defers.
    fn llc_report(rates: (f64, f64), ll_misses: (f64, f64)) -> LlcReport {
        use frugal_workloads::llc::{Counts, LlcRow, PerRequest, Run};
        let row = |defers: usize, rate: f64, misses: f64| {
            let run = Run {
                requests: 100,
                counts: Counts::default(),
                wall_time_under_valgrind_ns: 0,
            };
            LlcRow {
                strategy: "chain".to_owned(),
                extra_defers: defers,
                short: run.clone(),
                long: run,
                per_request: PerRequest {
                    instructions: 17_000.0 + 140.0 * defers as f64,
                    ll_misses: misses,
                    ll_load_miss_rate: Some(rate),
                    ll_miss_bytes: misses * 64.0,
                    ..PerRequest::default()
                },
                native_rps: Some(50_000.0),
                rate_error: None,
                dram_read_bytes_per_s: Some(misses * 64.0 * 50_000.0),
            }
        };
        LlcReport {
            simulated: true,
            source: frugal_workloads::sim::CounterSource::Simulated,
            tool: "cachegrind".to_owned(),
            method: String::new(),
            requests: 100,
            connections: 1,
            cache: "LL 8 MiB".to_owned(),
            line_bytes: 64,
            notes: Vec::new(),
            server_args: Vec::new(),
            rate_duration_s: 1.0,
            machine: frugal_workloads::sim::Machine::detect(),
            pmu: false,
            rows: vec![row(0, rates.0, ll_misses.0), row(10, rates.1, ll_misses.1)],
            wall_time_s: 1.0,
        }
    }

    #[test]
    fn the_llc_rule_needs_a_relative_rise_and_real_misses() {
        let verdict = |r: &LlcReport| llc_claims(Some(r), false, None)[0].claim.verdict;
        // The article's case: 8.2% → 13.7%, and many more misses per request.
        assert_eq!(
            verdict(&llc_report((0.082, 0.137), (40.0, 70.0))),
            Verdict::Holds
        );
        // The same rise on a tiny rate that adds no whole miss per request is noise.
        assert_eq!(
            verdict(&llc_report((0.0001, 0.0002), (0.01, 0.03))),
            Verdict::DoesNotHold
        );
        // No misses either way (what the simulation shows here).
        let none = llc_claims(Some(&llc_report((0.0, 0.0), (0.0, 0.0))), false, None);
        assert_eq!(none[0].claim.verdict, Verdict::DoesNotHold);
        assert!(none[0]
            .claim
            .measured
            .as_deref()
            .unwrap()
            .starts_with("simulated: chain"));
        assert!(none[0].claim.why.contains("not measurable on this machine"));
        // Skipped: not measurable, with the step's reason.
        let skipped = llc_claims(None, false, Some("no valgrind"));
        assert_eq!(skipped[0].claim.verdict, Verdict::NotMeasurable);
        assert!(skipped[0].claim.why.contains("no valgrind"));
    }

    #[test]
    fn binary_size_rule_is_applied_to_the_measurement() {
        let mut ch1 = Chapter1 {
            go_binary: Some(GoBinary {
                go_version: "go1.27".to_owned(),
                size_bytes: 7_500_000,
                stripped_bytes: 5_000_000,
            }),
            go_note: None,
            frugal_binary_bytes: None,
            context_switch: None,
            gc: None,
            gc_note: None,
        };
        let v = |ch1: &Chapter1| chapter1_claims(Some(ch1))[0].claim.verdict;
        assert_eq!(v(&ch1), Verdict::DoesNotHold);
        ch1.go_binary.as_mut().unwrap().size_bytes = 12_000_000;
        assert_eq!(v(&ch1), Verdict::Holds);
    }

    /// A ping-pong median at the rule's edge (4.003 µs, as measured once) does not decide the
    /// verdict when `perf bench sched pipe` measured the same hand-over cheaper.
    #[test]
    fn context_switch_is_judged_on_the_cheaper_hand_over() {
        let cs = |median_ns: f64, perf: Option<f64>| Chapter1 {
            go_binary: None,
            go_note: None,
            frugal_binary_bytes: None,
            context_switch: Some(ContextSwitch {
                round_trips: 1000,
                pinned: true,
                samples_ns: vec![median_ns - 10.0, median_ns, median_ns + 50.0],
                median_ns,
                perf_bench_usecs_per_op: perf,
            }),
            gc: None,
            gc_note: None,
        };
        let row = |ch1: &Chapter1| chapter1_claims(Some(ch1))[1].claim.clone();
        let r = row(&cs(4003.0, Some(4.9)));
        assert_eq!(r.verdict, Verdict::Holds, "{r:?}");
        assert_eq!(r.measured_value, Some(2.45));
        assert_eq!(row(&cs(4003.0, None)).verdict, Verdict::DoesNotHold);
        assert_eq!(row(&cs(9000.0, Some(18.0))).verdict, Verdict::DoesNotHold);
        assert_eq!(row(&cs(1500.0, Some(9.0))).verdict, Verdict::Holds);
    }
}
