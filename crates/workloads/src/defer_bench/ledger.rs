//! The ledger rows of chapters 1 and 2, judged from a [`DeferReport`] and, when task memory
//! was measured, a [`TasksReport`] (`frugal bench defer --claims`). The claim types and the
//! way a rule is applied live in [`crate::claims`].

use super::{CounterSource, DeferReport, Row};
use crate::claims::{Claim, Draft, Verdict};
use crate::tasks::{TaskKind, TasksReport};

fn go_missing(report: &DeferReport) -> String {
    format!(
        "the Go benchmark did not run ({}): {}",
        report.go.status,
        report.go.message.as_deref().unwrap_or("no details")
    )
}

/// Builds the ledger from a defer report and, if measured, a tasks report.
pub fn claims(defer: &DeferReport, tasks: Option<&TasksReport>) -> Vec<Claim> {
    let mut out = Vec::new();
    out.extend(task_claims(tasks));
    out.push(zero_alloc_go(defer));
    out.push(zero_alloc_chain(defer));
    out.push(record_size(defer));
    out.push(pool_allocs_go(defer));
    out.push(pool_allocs_chain(defer));
    out.push(
        Draft {
            id: "2.3-deferpool-classes",
            section: "2.3",
            claim: "the runtime keeps `var deferpool [5]*_defer`, size classes 8/16/32/64/128 B",
            article_value: "5 size classes",
            rule: "a statement about Go's runtime source, not a measurable quantity",
        }
        .unmeasurable(
            "go runtime source",
            "a source-level claim that no benchmark can observe; Go's sources show 5 classes by \
         argument size only in Go 1.5-1.17 and a single record class since 1.18 (see the \
         2.1-record-size row for the record size actually allocated)",
        ),
    );
    out.push(
        Draft {
            id: "2.3-gc-pause",
            section: "2.3",
            claim: "per million defers the pool cuts GC pause growth from +12.7 ms to +0.04 ms",
            article_value: "+12.7 ms -> +0.04 ms",
            rule: "needs GC pause measurement",
        }
        .unmeasurable(
            "go runtime",
            "the Go benchmark reports time and allocations, not GC pauses; the Rust strategies \
         have no garbage collector at all",
        ),
    );
    out.extend(branch_claims_24(defer));
    out.extend(batch_claims_33(defer));
    out
}

fn task_claims(tasks: Option<&TasksReport>) -> Vec<Claim> {
    let goroutine = Draft {
        id: "1-goroutines-100k",
        section: "1",
        claim: "100,000 goroutines take about 200 MB",
        article_value: "~200 MB",
        rule: "holds if resident memory (RSS + kernel stacks + page tables) at 100k is within \
               0.5x..1.5x of 200 MB",
    };
    let threads = Draft {
        id: "1-threads-100k",
        section: "1",
        claim: "100,000 Linux threads take more than 100 GB",
        article_value: "> 100 GB",
        rule: "holds if resident memory (RSS + kernel stacks + page tables) at 100k exceeds 100 GB",
    };
    let stack = Draft {
        id: "1-thread-stack-1mb",
        section: "1",
        claim: "a POSIX thread reserves a 1 MB stack by default",
        article_value: "1 MB",
        rule: "holds if the VmSize delta per default pthread is within 0.9..1.2 MiB",
    };
    let Some(tasks) = tasks else {
        let why = "task memory was not measured in this run: use `frugal bench defer --claims` \
                   (which runs it) or `frugal bench tasks`";
        return vec![
            goroutine.unmeasurable("goroutines", why),
            threads.unmeasurable("threads", why),
            stack.unmeasurable("threads", why),
        ];
    };
    const GB: f64 = 1e9;
    const MB: f64 = 1e6;
    let mut out = Vec::new();
    let too_few = |row: &crate::tasks::TaskRow| {
        format!(
            "only {} {} started, fewer than the {} from which figures are scaled to 100k",
            row.started,
            row.kind,
            crate::tasks::MIN_EXTRAPOLATION_TASKS
        )
    };
    out.push(match tasks.row(TaskKind::Goroutine) {
        None => goroutine.unmeasurable(
            "goroutines",
            format!(
                "goroutines were not measured: {}",
                tasks.go.message.as_deref().unwrap_or(&tasks.go.status)
            ),
        ),
        Some(row) if row.rss_at_100k_bytes.is_none() => {
            goroutine.unmeasurable("goroutines", too_few(row))
        }
        Some(row) => {
            let v = row.rss_at_100k_bytes.unwrap_or_default();
            goroutine.done(
                format!("goroutines, {} started", row.started),
                Some((
                    format!(
                        "{:.0} MB resident at 100k ({:.2} KiB per goroutine)",
                        v / MB,
                        v / 100_000.0 / 1024.0
                    ),
                    v,
                )),
                Verdict::of((0.5 * 200.0 * MB..=1.5 * 200.0 * MB).contains(&v)),
                row.note.clone().unwrap_or_default(),
            )
        }
    });
    out.push(
        match tasks
            .row(TaskKind::ThreadPthreadDefault)
            .or(tasks.row(TaskKind::Thread))
        {
            Some(row) if row.rss_at_100k_bytes.is_none() => {
                threads.unmeasurable("threads", too_few(row))
            }
            Some(row) => {
                let v = row.rss_at_100k_bytes.unwrap_or_default();
                let mut why = format!(
                    "virtual (stack reservations): {:.1} GB at 100k; the article's figure \
                 multiplies a virtual reservation, resident is what costs RAM",
                    row.vm_at_100k_bytes.unwrap_or_default() / GB
                );
                if let Some(stop) = &row.stopped_by {
                    why.push_str(&format!("; stopped at {} threads: {stop}", row.started));
                }
                threads.done(
                    format!("{} threads, {} started", row.kind, row.started),
                    Some((
                        format!(
                            "{:.2} GB resident at 100k ({:.1} KiB per thread incl. kernel stack)",
                            v / GB,
                            v / 100_000.0 / 1024.0
                        ),
                        v,
                    )),
                    Verdict::of(v > 100.0 * GB),
                    why,
                )
            }
            None => threads.unmeasurable("threads", "threads were not measured in this run"),
        },
    );
    out.push(match tasks.row(TaskKind::ThreadPthreadDefault) {
        Some(row) => {
            let v = row.vm_per_task_bytes;
            let mib = v / 1024.0 / 1024.0;
            stack.done(
                "glibc default pthread stack",
                Some((
                    format!("{mib:.2} MiB reserved per thread (VmSize delta)"),
                    v,
                )),
                Verdict::of((0.9..=1.2).contains(&mib)),
                format!(
                    "glibc's default stack is RLIMIT_STACK ({} here); Rust's std uses 2 MiB",
                    tasks
                        .limits
                        .rlimit_stack_bytes
                        .map_or("unlimited".to_owned(), |b| format!("{} KiB", b / 1024))
                ),
            )
        }
        None => stack.unmeasurable("threads", "the pthread-default row was not measured"),
    });
    out
}

fn zero_alloc_go(report: &DeferReport) -> Claim {
    let draft = Draft {
        id: "2.1-zero-alloc-go",
        section: "2.1",
        claim: "Go defer records live in the stack frame: zero heap allocation",
        article_value: "0 allocations",
        rule: "holds if every go-defer row shows 0 allocs/op",
    };
    let rows: Vec<&Row> = report
        .rows
        .iter()
        .filter(|r| r.strategy == "go-defer" && r.allocs_per_op.is_some())
        .collect();
    if rows.is_empty() {
        return draft.unmeasurable("go-defer", go_missing(report));
    }
    let worst = rows
        .iter()
        .max_by(|a, b| {
            a.allocs_per_op
                .unwrap_or(0.0)
                .total_cmp(&b.allocs_per_op.unwrap_or(0.0))
        })
        .expect("rows is not empty");
    let per_defer = worst.allocs_per_op.unwrap_or(0.0) / f64::from(worst.defers_per_op.max(1));
    let detail: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {}", r.scenario, r.allocs_per_op.unwrap_or(0.0)))
        .collect();
    draft.done(
        "go-defer, all scenarios",
        Some((
            format!("allocs/op: {}", detail.join(", ")),
            worst.allocs_per_op.unwrap_or(0.0),
        )),
        Verdict::of(worst.allocs_per_op == Some(0.0)),
        format!(
            "open-coded defers (<= 8, outside loops) allocate nothing; worst: {} with {per_defer:.2} \
             allocations per defer",
            worst.scenario
        ),
    )
}

fn zero_alloc_chain(report: &DeferReport) -> Claim {
    let draft = Draft {
        id: "2.1-zero-alloc-chain",
        section: "2.1",
        claim: "defer records need no heap allocation (our chain, inline and overflowing)",
        article_value: "0 allocations",
        rule: "holds if every chain-inline and chain-overflow row outside the panic path shows \
               0 allocs/op (steady state, after warm-up); panic rows are reported, not judged: \
               unwinding allocates exception objects in every strategy",
    };
    if !report.alloc_counting {
        return draft.unmeasurable("rust chain", "allocation counting was not installed");
    }
    let rows: Vec<&Row> = report
        .rows
        .iter()
        .filter(|r| r.strategy.starts_with("chain-") && r.allocs_per_op.is_some())
        .collect();
    if rows.is_empty() {
        return draft.unmeasurable("rust chain", "no chain rows were measured in this run");
    }
    let normal: f64 = rows
        .iter()
        .filter(|r| r.scenario != "panic")
        .filter_map(|r| r.allocs_per_op)
        .sum();
    let panic_rows: Vec<String> = rows
        .iter()
        .filter(|r| r.scenario == "panic")
        .filter_map(|r| Some(format!("{} {}", r.strategy, r.allocs_per_op?)))
        .collect();
    let panic_text = match (
        panic_rows.is_empty(),
        report.row("manual", "panic").and_then(|r| r.allocs_per_op),
    ) {
        (false, Some(manual)) => format!(
            "; panic path allocs/op: {} (manual catch-and-rethrow: {manual})",
            panic_rows.join(", ")
        ),
        (false, None) => format!("; panic path allocs/op: {}", panic_rows.join(", ")),
        (true, _) => String::new(),
    };
    draft.done(
        "rust chain-inline + chain-overflow",
        Some((
            format!(
                "{normal} allocs/op summed over {} non-panic rows{panic_text}",
                rows.iter().filter(|r| r.scenario != "panic").count()
            ),
            normal,
        )),
        Verdict::of(normal == 0.0),
        "records live in the caller's frame or in the thread-local pool's reused blocks",
    )
}

fn record_size(report: &DeferReport) -> Claim {
    let draft = Draft {
        id: "2.1-record-size",
        section: "2.1",
        claim: "a runtime._defer record is 24 bytes",
        article_value: "24 B",
        rule: "bytes per heap allocation of go-defer-no-capture loop64 (a loop of defers whose \
               only possible allocations are records) equals 24",
    };
    let Some(row) = report.row("go-defer-no-capture", "loop64") else {
        return draft.unmeasurable("go-defer-no-capture loop64", go_missing(report));
    };
    let closures = report
        .row("go-defer", "loop64")
        .and_then(|r| Some(r.alloc_bytes_per_op? / r.allocs_per_op.filter(|&n| n > 0.0)?))
        .map_or(String::new(), |b| {
            format!(
                "; the {b:.0} B per allocation that go-defer loop64 shows is the closure capturing \
                 the deferred call's arguments, not a record"
            )
        });
    match (row.alloc_bytes_per_op, row.allocs_per_op) {
        (Some(bytes), Some(n)) if n > 0.0 => {
            let size = bytes / n;
            draft.done(
                "go-defer-no-capture loop64 (heap records)",
                Some((format!("{size:.0} B per allocated record"), size)),
                Verdict::of((size - 24.0).abs() < 0.5),
                format!("records that reached the heap{closures}"),
            )
        }
        _ => draft.unmeasurable(
            "go-defer-no-capture loop64",
            format!(
                "records never reached the heap in steady state (they come from the per-P pool), \
                 so their size is not visible to -benchmem; Go's sources give 48 B (1.22+) or \
                 72 B (1.19){closures}"
            ),
        ),
    }
}

fn per_million(row: &Row) -> Option<f64> {
    let a = row.allocs_per_op?;
    Some(a / f64::from(row.defers_per_op.max(1)) * 1e6)
}

fn pool_allocs_go(report: &DeferReport) -> Claim {
    let draft = Draft {
        id: "2.3-pool-allocs-go",
        section: "2.3",
        claim: "Go's defer pool cuts allocations from 1,000,000 to ~3,200 per million defers",
        article_value: "~3,200 per 1,000,000",
        rule: "holds if a loop of defers without captured arguments (go-defer-no-capture loop64) \
               allocates at most 6,400 times per million defers",
    };
    let with_args = report
        .row("go-defer", "loop64")
        .and_then(per_million)
        .map_or(String::new(), |v| {
            format!(
                "; with arguments (go-defer loop64) {v:.0} allocations per million defers: each \
                 deferred call's closure escapes to the heap, the pool does not help there"
            )
        });
    match report
        .row("go-defer-no-capture", "loop64")
        .and_then(per_million)
    {
        Some(v) => draft.done(
            "go-defer-no-capture loop64",
            Some((format!("{v:.0} record allocations per million defers"), v)),
            Verdict::of(v <= 6_400.0),
            format!(
                "defers in a loop are not open-coded; records come from the per-P pool{with_args}"
            ),
        ),
        None => draft.unmeasurable("go-defer-no-capture loop64", go_missing(report)),
    }
}

fn pool_allocs_chain(report: &DeferReport) -> Claim {
    let draft = Draft {
        id: "2.3-pool-allocs-chain",
        section: "2.3",
        claim: "a defer pool cuts allocations to ~3,200 per million defers (our overflow pool)",
        article_value: "~3,200 per 1,000,000",
        rule: "holds if chain-overflow loop64 allocates at most 6,400 times per million defers",
    };
    match report
        .row("chain-overflow", "loop64")
        .and_then(|r| per_million(r).map(|v| (r, v)))
    {
        Some((_, v)) => draft.done(
            "rust chain-overflow loop64",
            Some((
                format!("{v:.0} allocations per million defers (steady state)"),
                v,
            )),
            Verdict::of(v <= 6_400.0),
            "overflowing records come from a thread-local pool of reusable blocks",
        ),
        None => draft.unmeasurable(
            "rust chain-overflow loop64",
            "not measured in this run (or allocation counting off)",
        ),
    }
}

fn rate(row: Option<&Row>) -> Option<(f64, f64, f64)> {
    let c = row?.counters.as_ref()?;
    let (b, m) = (c.branches?, c.branch_misses?);
    (b > 0.0).then(|| (m / b * 100.0, b, m))
}

fn counters_missing(report: &DeferReport) -> String {
    report
        .counter_note
        .clone()
        .unwrap_or_else(|| "no counters in this run".to_owned())
}

fn source_word(report: &DeferReport) -> &'static str {
    match report.counter_source {
        CounterSource::Hardware => "hardware",
        CounterSource::Simulated => "simulated",
        CounterSource::None => "none",
    }
}

/// The (baseline, defer) pair for the 2.4 claims: Go's open-coded defer when Go rows carry
/// counters, else our block guard; plus a context line about the other.
fn pair_24(report: &DeferReport) -> Option<(&Row, &Row, String)> {
    let counted = |strategy: &str| report.row(strategy, "one").filter(|r| r.counters.is_some());
    let go = counted("go-manual").zip(counted("go-defer"));
    let rust = counted("manual").zip(counted("guard"));
    let instr = |r: &Row| {
        r.counters
            .as_ref()
            .and_then(|c| c.instructions)
            .unwrap_or(0.0)
    };
    match (go, rust) {
        (Some((m, d)), rust) => {
            let context = rust.map_or(String::new(), |(rm, rg)| {
                format!(
                    "Rust guard vs manual: {:.1} -> {:.1} instructions",
                    instr(rm),
                    instr(rg)
                )
            });
            Some((m, d, context))
        }
        (None, Some((m, g))) => Some((
            m,
            g,
            "Go rows carry no counters in this run; measured on the Rust guard instead".to_owned(),
        )),
        (None, None) => None,
    }
}

fn branch_claims_24(report: &DeferReport) -> Vec<Claim> {
    let rate_claim = Draft {
        id: "2.4-mispredict-rate",
        section: "2.4",
        claim: "a defer raises the branch misprediction rate from 0.2% (manual) to 3.7%",
        article_value: "0.2% -> 3.7%",
        rule: "holds if the defer's miss rate exceeds manual's by at least 1.75 percentage \
               points (half the article's +3.5), scenario one",
    };
    let instr_claim = Draft {
        id: "2.4-extra-instructions",
        section: "2.4",
        claim: "a defer adds 12 instructions over manual cleanup",
        article_value: "+12 instructions",
        rule: "holds if defer minus manual instructions per call (scenario one) is 6..24",
    };
    let Some((manual, deferred, context)) = pair_24(report) else {
        return vec![
            rate_claim.unmeasurable("manual vs defer, scenario one", counters_missing(report)),
            instr_claim.unmeasurable("manual vs defer, scenario one", counters_missing(report)),
        ];
    };
    let subject = format!(
        "{} vs {}, scenario one ({})",
        manual.strategy,
        deferred.strategy,
        source_word(report)
    );
    let mut out = Vec::new();
    match (rate(Some(manual)), rate(Some(deferred))) {
        (Some((rm, ..)), Some((rd, ..))) => out.push(rate_claim.done(
            subject.clone(),
            Some((format!("{rm:.2}% -> {rd:.2}%"), rd - rm)),
            Verdict::of(rd - rm >= 1.75),
            context.clone(),
        )),
        _ => out.push(rate_claim.unmeasurable(
            &subject,
            "a row executed no branches, so it has no misprediction rate",
        )),
    }
    let instr = |r: &Row| r.counters.as_ref().and_then(|c| c.instructions);
    match (instr(manual), instr(deferred)) {
        (Some(m), Some(d)) => out.push(instr_claim.done(
            subject,
            Some((
                format!("{m:.1} -> {d:.1} instructions/call ({:+.1})", d - m),
                d - m,
            )),
            Verdict::of((6.0..=24.0).contains(&(d - m))),
            context,
        )),
        _ => out.push(instr_claim.unmeasurable(&subject, counters_missing(report))),
    }
    out
}

fn batch_claims_33(report: &DeferReport) -> Vec<Claim> {
    let cycles = Draft {
        id: "3.3-batched-cycles",
        section: "3.3",
        claim: "batched cleanup cuts cycles per call from 42.3 to 29.1",
        article_value: "42.3 -> 29.1 cycles/call (-31%)",
        rule: "holds if one-by-one (chain-inline loop64) -> batched (guard loop64) cuts cycles \
               per deferred call by at least 15%",
    };
    let mispredict = Draft {
        id: "3.3-batched-mispredict",
        section: "3.3",
        claim: "batched cleanup cuts branch mispredictions from 18.7% to 3.2%",
        article_value: "18.7% -> 3.2%",
        rule: "holds if one-by-one (chain-inline loop64) mispredicts >= 9.35% and batched \
               (guard loop64) <= 6.4% (within 2x of the article)",
    };
    let one_by_one = report.row("chain-inline", "loop64");
    let batched = report.row("guard", "loop64");
    let per_call = |r: Option<&Row>, f: fn(&Row) -> Option<f64>| {
        r.and_then(|r| f(r).map(|v| v / f64::from(r.defers_per_op.max(1))))
    };
    let ns = |r: &Row| r.time_ns.as_ref().map(|t| t.median);
    let cyc = |r: &Row| r.counters.as_ref().and_then(|c| c.cycles);
    let time_context = match (per_call(one_by_one, ns), per_call(batched, ns)) {
        (Some(a), Some(b)) => format!(
            "time per deferred call: one-by-one {a:.2} ns -> batched {b:.2} ns ({:+.0}%)",
            (b - a) / a * 100.0
        ),
        _ => "no chain-inline/guard loop64 rows in this run".to_owned(),
    };
    let mut out = Vec::new();
    match (per_call(one_by_one, cyc), per_call(batched, cyc)) {
        (Some(a), Some(b)) if a > 0.0 => out.push(cycles.done(
            "rust chain-inline vs guard, loop64 (hardware)",
            Some((format!("{a:.1} -> {b:.1} cycles/call"), (a - b) / a * 100.0)),
            Verdict::of((a - b) / a >= 0.15),
            time_context,
        )),
        _ => out.push(cycles.unmeasurable(
            "rust chain-inline vs guard, loop64",
            format!("cycles need a hardware PMU (valgrind does not model cycles); {time_context}"),
        )),
    }
    match (rate(one_by_one), rate(batched)) {
        (Some((a, ..)), Some((b, ..))) => out.push(mispredict.done(
            format!(
                "rust chain-inline vs guard, loop64 ({})",
                source_word(report)
            ),
            Some((format!("{a:.2}% -> {b:.2}%"), a)),
            Verdict::of(a >= 9.35 && b <= 6.4),
            "records run one by one through an indirect call each; a batch loop is one \
             predictable loop",
        )),
        _ => out.push(mispredict.unmeasurable(
            "rust chain-inline vs guard, loop64",
            counters_missing(report),
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defer_bench::{GoSection, Machine, OpCounters, Timing};

    fn row(strategy: &str, scenario: &str, defers: u32, allocs: f64, bytes: f64) -> Row {
        Row {
            lang: if strategy.starts_with("go-") {
                "go"
            } else {
                "rust"
            }
            .to_owned(),
            strategy: strategy.to_owned(),
            scenario: scenario.to_owned(),
            defers_per_op: defers,
            time_ns: Some(Timing::from_samples(vec![10.0, 11.0], 100)),
            allocs_per_op: Some(allocs),
            alloc_bytes_per_op: Some(bytes),
            counters: None,
            note: None,
        }
    }

    fn report(rows: Vec<Row>) -> DeferReport {
        DeferReport {
            schema_version: 1,
            quick: true,
            machine: Machine {
                cpu: "test".to_owned(),
                cores: 1,
                kernel: "test".to_owned(),
            },
            counter_source: CounterSource::Simulated,
            counter_note: None,
            alloc_counting: true,
            rows,
            go: GoSection {
                status: "ran".to_owned(),
                version: None,
                message: None,
                simulated: None,
            },
            claims: Vec::new(),
        }
    }

    fn find<'a>(claims: &'a [Claim], id: &str) -> &'a Claim {
        claims.iter().find(|c| c.id == id).unwrap()
    }

    #[test]
    fn verdicts_follow_the_numbers() {
        let claims = super::claims(
            &report(vec![
                row("go-defer", "one", 1, 0.0, 0.0),
                row("go-defer", "loop64", 64, 64.0, 64.0 * 24.0),
                row("go-defer-no-capture", "loop64", 64, 0.2, 0.2 * 48.0),
                row("chain-inline", "loop64", 64, 0.0, 0.0),
                row("chain-overflow", "loop64", 64, 0.0, 0.0),
            ]),
            None,
        );
        assert_eq!(
            find(&claims, "2.1-zero-alloc-go").verdict,
            Verdict::DoesNotHold
        );
        assert_eq!(
            find(&claims, "2.1-zero-alloc-chain").verdict,
            Verdict::Holds
        );
        let size = find(&claims, "2.1-record-size");
        assert!((size.measured_value.unwrap() - 48.0).abs() < 1e-9);
        assert_eq!(size.verdict, Verdict::DoesNotHold);
        let pool = find(&claims, "2.3-pool-allocs-go");
        assert_eq!(pool.measured_value, Some(0.2 / 64.0 * 1e6));
        assert_eq!(pool.verdict, Verdict::Holds);
        assert!(pool.why.contains("1000000 allocations per million"));
        assert_eq!(
            find(&claims, "2.3-pool-allocs-chain").verdict,
            Verdict::Holds
        );
        assert_eq!(
            find(&claims, "1-threads-100k").verdict,
            Verdict::NotMeasurable
        );
        assert_eq!(
            find(&claims, "3.3-batched-cycles").verdict,
            Verdict::NotMeasurable
        );
    }

    #[test]
    fn branch_rates_from_counters() {
        let with = |strategy: &str, branches: f64, misses: f64| {
            let mut r = row(strategy, "loop64", 64, 0.0, 0.0);
            r.counters = Some(OpCounters {
                source: CounterSource::Simulated,
                instructions: Some(1000.0),
                branches: Some(branches),
                branch_misses: Some(misses),
                l1d_misses: Some(0.0),
                cycles: None,
                estimated_cycles: None,
            });
            r
        };
        let claims = super::claims(
            &report(vec![
                with("chain-inline", 100.0, 20.0),
                with("guard", 100.0, 3.0),
            ]),
            None,
        );
        let c = find(&claims, "3.3-batched-mispredict");
        assert_eq!(c.verdict, Verdict::Holds);
        assert_eq!(c.measured_value, Some(20.0));
        let claims = super::claims(
            &report(vec![
                with("chain-inline", 100.0, 1.0),
                with("guard", 100.0, 1.0),
            ]),
            None,
        );
        assert_eq!(
            find(&claims, "3.3-batched-mispredict").verdict,
            Verdict::DoesNotHold
        );
    }

    #[test]
    fn missing_go_is_not_measurable() {
        let mut r = report(vec![]);
        r.go.status = "not-installed".to_owned();
        let claims = super::claims(&r, None);
        let c = find(&claims, "2.1-zero-alloc-go");
        assert_eq!(c.verdict, Verdict::NotMeasurable);
        assert!(c.why.contains("not-installed"));
    }
}
