//! `frugal bench defer`: what a deferred cleanup costs, strategy by strategy.
//!
//! Six Rust strategies — manual cleanup, the `frugal_defer::defer!` block guard, `scopeguard`,
//! the function-scoped chain with its records inline, the same chain forced to overflow into
//! its thread-local pool, and the naive `Vec<Box<dyn FnOnce()>>` — are measured in six
//! [`Scenario`]s, and, when a Go toolchain is on `PATH`, an equivalent Go benchmark runs beside
//! them (manual, `defer`, `defer` of a call without arguments, a `[]func()` list).
//!
//! Per operation (one call of the function that registers and runs the cleanups) the engine
//! reports wall time (median and spread over repeated samples), heap allocations and bytes (when
//! the caller installed a counting allocator, see [`AllocProbe`]), and instructions, branches,
//! branch misses and L1d misses — from the hardware PMU when the machine has one, otherwise
//! simulated by valgrind through `frugal-counters` and marked [`CounterSource::Simulated`].
//!
//! # Example
//! ```no_run
//! use frugal_workloads::defer_bench::{self, Config};
//!
//! let config = Config::quick();
//! let report = defer_bench::run(&config, &mut |_progress| {}).unwrap();
//! for row in &report.rows {
//!     println!("{} {} {:?}", row.strategy, row.scenario, row.time_ns.as_ref().map(|t| t.median));
//! }
//! ```
//!
//! # JSON schema
//! [`DeferReport`] serializes (serde, field names as below, `null` for absent values) as:
//!
//! ```text
//! {
//!   "schema_version": 1,
//!   "quick": bool,
//!   "machine": { "cpu": str, "cores": u32, "kernel": str },
//!   "counter_source": "hardware" | "simulated" | "none",
//!   "counter_note": str | null,
//!   "alloc_counting": bool,
//!   "rows": [ {
//!       "lang": "rust" | "go",
//!       "strategy": str,            // e.g. "manual", "guard", "chain-inline", "go-defer"
//!       "scenario": str,            // "one" | "straight8" | "loop8" | "loop64" | "touch" | "panic"
//!       "defers_per_op": u32,
//!       "time_ns": { "n": usize, "min": f64, "p25": f64, "median": f64, "p75": f64,
//!                    "max": f64, "mean": f64, "stddev": f64, "samples": [f64],
//!                    "iters_per_sample": u64 } | null,     // crate::sim::Timing
//!       "allocs_per_op": f64 | null, "alloc_bytes_per_op": f64 | null,
//!       "counters": { "source": "hardware" | "simulated", "instructions": f64 | null,
//!                     "branches": f64 | null, "branch_misses": f64 | null,
//!                     "l1d_misses": f64 | null, "cycles": f64 | null,
//!                     "estimated_cycles": f64 | null } | null,
//!       "note": str | null
//!   } ],
//!   "go": { "status": "ran" | "not-installed" | "failed" | "skipped", "version": str | null,
//!           "message": str | null, "simulated": str | null },
//!   "claims": [ Claim ]             // see crate::claims::Claim, filled from ledger::claims
//! }
//! ```
//! All per-operation figures are per call of the measured function, so a row of `loop64`
//! covers 64 deferred calls; divide by `defers_per_op` for per-defer figures.

mod counters;
mod go;
pub mod ledger;
mod ops;
mod render;

use std::fmt;
use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use go::{parse_go_bench, GoBenchLine};
pub use render::{WithLedger, LEDGER_HEADING};

use crate::claims::Claim;
pub use crate::sim::{CounterSource, Machine, Progress, SimCommand, Timing};
use crate::Error;

/// Schema version of [`DeferReport`]; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// How the cleanup is registered and run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The cleanup is called by hand at the end (and, on the panic path, by catch-and-rethrow).
    Manual,
    /// `frugal_defer::defer!` block guards (in loops: one `frugal_defer::guard` owning the batch).
    Guard,
    /// `scopeguard::defer!` (in loops: one `scopeguard::guard` owning the batch).
    Scopeguard,
    /// `frugal_defer::scope` with records stored inline in the caller's frame.
    ChainInline,
    /// `frugal_defer` chain with a tiny inline area, so records overflow into the pool.
    ChainOverflow,
    /// `Vec<Box<dyn FnOnce()>>` run in reverse: one heap allocation per defer.
    BoxVec,
}

impl Strategy {
    /// Every strategy, in table order.
    pub const ALL: [Strategy; 6] = [
        Strategy::Manual,
        Strategy::Guard,
        Strategy::Scopeguard,
        Strategy::ChainInline,
        Strategy::ChainOverflow,
        Strategy::BoxVec,
    ];

    /// The name used on the command line, in tables and in JSON.
    pub fn key(self) -> &'static str {
        match self {
            Strategy::Manual => "manual",
            Strategy::Guard => "guard",
            Strategy::Scopeguard => "scopeguard",
            Strategy::ChainInline => "chain-inline",
            Strategy::ChainOverflow => "chain-overflow",
            Strategy::BoxVec => "box-vec",
        }
    }

    fn symbol_suffix(self) -> &'static str {
        match self {
            Strategy::Manual => "manual",
            Strategy::Guard => "guard",
            Strategy::Scopeguard => "scopeguard",
            Strategy::ChainInline => "chain_inline",
            Strategy::ChainOverflow => "chain_overflow",
            Strategy::BoxVec => "boxvec",
        }
    }

    /// Parses a [`Strategy::key`].
    pub fn parse(name: &str) -> Result<Strategy, Error> {
        Strategy::ALL
            .into_iter()
            .find(|s| s.key() == name)
            .ok_or_else(|| Error::UnknownName {
                what: "strategy",
                name: name.to_owned(),
                expected: Strategy::ALL.map(Strategy::key).join(", "),
            })
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// What one measured operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// One resource, one deferred cleanup per call.
    One,
    /// Eight resources acquired in straight-line code, eight deferred cleanups.
    Straight8,
    /// Eight cleanups registered in a loop (the loop count is opaque to the compiler).
    Loop8,
    /// Sixty-four cleanups registered in a loop.
    Loop64,
    /// Sixteen cleanups in a loop, each writing a pseudo-random cache line of an 8 MiB buffer.
    Touch,
    /// Four cleanups, then a panic that unwinds through them and is caught by the caller.
    Panic,
}

impl Scenario {
    /// Every scenario, in table order.
    pub const ALL: [Scenario; 6] = [
        Scenario::One,
        Scenario::Straight8,
        Scenario::Loop8,
        Scenario::Loop64,
        Scenario::Touch,
        Scenario::Panic,
    ];

    /// The name used on the command line, in tables and in JSON.
    pub fn key(self) -> &'static str {
        match self {
            Scenario::One => "one",
            Scenario::Straight8 => "straight8",
            Scenario::Loop8 => "loop8",
            Scenario::Loop64 => "loop64",
            Scenario::Touch => "touch",
            Scenario::Panic => "panic",
        }
    }

    /// Deferred calls per operation.
    pub fn defers(self) -> u32 {
        match self {
            Scenario::One => 1,
            Scenario::Straight8 | Scenario::Loop8 => 8,
            Scenario::Loop64 => 64,
            Scenario::Touch => ops::TOUCH_DEFERS as u32,
            Scenario::Panic => ops::PANIC_DEFERS as u32,
        }
    }

    /// Parses a [`Scenario::key`].
    pub fn parse(name: &str) -> Result<Scenario, Error> {
        Scenario::ALL
            .into_iter()
            .find(|s| s.key() == name)
            .ok_or_else(|| Error::UnknownName {
                what: "scenario",
                name: name.to_owned(),
                expected: Scenario::ALL.map(Scenario::key).join(", "),
            })
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// Heap allocation totals of the current thread, read from a counting global allocator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocSnapshot {
    /// Allocations (including reallocations) so far.
    pub count: u64,
    /// Bytes requested so far.
    pub bytes: u64,
}

/// Reads the current thread's allocation totals. The binary that installs a counting
/// `#[global_allocator]` passes one in [`Config::alloc_probe`]; without it allocation columns are
/// `null`.
pub type AllocProbe = fn() -> AllocSnapshot;

/// What to run and how long.
#[derive(Debug, Clone)]
pub struct Config {
    /// The quick profile (CI): fewer and shorter samples.
    pub quick: bool,
    /// Strategies to measure.
    pub strategies: Vec<Strategy>,
    /// Scenarios to measure.
    pub scenarios: Vec<Scenario>,
    /// Timed samples per row.
    pub samples: u32,
    /// Target wall time of one sample.
    pub sample_time: Duration,
    /// Allocation counter, if the binary has one.
    pub alloc_probe: Option<AllocProbe>,
    /// Re-exec command for simulated counters; `None` skips simulation when the PMU is absent.
    pub sim: Option<SimCommand>,
    /// Operations per simulated run.
    pub sim_iters: u64,
    /// Simulate only these pairs (each simulation is a valgrind run of a few seconds); `None`
    /// simulates every measured pair.
    pub sim_only: Option<Vec<(Strategy, Scenario)>>,
    /// Run the Go benchmark when `go` is on PATH.
    pub go: bool,
    /// Simulate only these Go rows (`go-...` strategy, scenario); `None`: every Go row.
    pub go_sim_only: Option<Vec<(&'static str, &'static str)>>,
}

impl Config {
    /// The quick profile: about 10 seconds with simulation, for CI.
    pub fn quick() -> Config {
        Config {
            quick: true,
            strategies: Strategy::ALL.to_vec(),
            scenarios: Scenario::ALL.to_vec(),
            samples: 9,
            sample_time: Duration::from_millis(4),
            alloc_probe: None,
            sim: None,
            sim_iters: 1_000,
            sim_only: Some(vec![
                (Strategy::Manual, Scenario::One),
                (Strategy::Guard, Scenario::One),
                (Strategy::Guard, Scenario::Loop64),
                (Strategy::ChainInline, Scenario::Loop64),
            ]),
            go: true,
            go_sim_only: Some(vec![
                ("go-manual", "one"),
                ("go-defer", "one"),
                ("go-defer", "loop64"),
                ("go-defer-no-capture", "loop64"),
            ]),
        }
    }

    /// The full profile: about two minutes including Go and simulation.
    pub fn full() -> Config {
        Config {
            quick: false,
            samples: 31,
            sample_time: Duration::from_millis(15),
            sim_iters: 2_000,
            sim_only: None,
            go_sim_only: None,
            ..Config::quick()
        }
    }
}

/// Counter values per operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpCounters {
    /// Hardware or simulated.
    pub source: CounterSource,
    /// Instructions retired (simulated: executed).
    pub instructions: Option<f64>,
    /// Conditional branches (simulated: conditional + indirect).
    pub branches: Option<f64>,
    /// Branch mispredictions.
    pub branch_misses: Option<f64>,
    /// L1 data-cache misses (reads + writes).
    pub l1d_misses: Option<f64>,
    /// Cycles (hardware only).
    pub cycles: Option<f64>,
    /// Simulated only: a cycle *estimate* from a fixed formula
    /// (`frugal_counters::sim::CYCLE_FORMULA`), a model rather than a measurement.
    pub estimated_cycles: Option<f64>,
}

impl OpCounters {
    /// Per-operation counts simulated by valgrind (Rust ops and Go benchmarks alike).
    pub fn simulated(per_op: &frugal_counters::sim::SimPerOp) -> Self {
        OpCounters {
            source: CounterSource::Simulated,
            instructions: Some(per_op.instructions),
            branches: Some(per_op.branches),
            branch_misses: Some(per_op.branch_mispredicts),
            l1d_misses: Some(per_op.d1_read_misses + per_op.d1_write_misses),
            cycles: None,
            estimated_cycles: Some(per_op.estimated_cycles),
        }
    }
}

/// One line of the table: a strategy in a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// `rust` or `go`.
    pub lang: String,
    /// Strategy name (Rust: [`Strategy::key`]; Go: `go-manual`, `go-defer`,
    /// `go-defer-no-capture`, `go-func-slice`).
    pub strategy: String,
    /// Scenario name ([`Scenario::key`]).
    pub scenario: String,
    /// Deferred calls per operation.
    pub defers_per_op: u32,
    /// Wall time per operation.
    pub time_ns: Option<Timing>,
    /// Heap allocations per operation.
    pub allocs_per_op: Option<f64>,
    /// Heap bytes per operation.
    pub alloc_bytes_per_op: Option<f64>,
    /// Counters per operation.
    pub counters: Option<OpCounters>,
    /// Anything the reader must know about this row.
    pub note: Option<String>,
}

/// Outcome of the Go side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoSection {
    /// `ran`, `not-installed`, `failed` or `skipped`.
    pub status: String,
    /// `go version` output.
    pub version: Option<String>,
    /// What happened, or how to get Go.
    pub message: Option<String>,
    /// Whether simulated counters were taken for Go rows, and if not, why.
    pub simulated: Option<String>,
}

/// The result of `frugal bench defer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeferReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Quick profile?
    pub quick: bool,
    /// Where it ran.
    pub machine: Machine,
    /// Source of the counter columns of the Rust rows.
    pub counter_source: CounterSource,
    /// Why counters are simulated or absent.
    pub counter_note: Option<String>,
    /// Whether allocation columns were measured.
    pub alloc_counting: bool,
    /// The table.
    pub rows: Vec<Row>,
    /// The Go side.
    pub go: GoSection,
    /// The claims ledger (filled by the caller from [`ledger::claims`]; empty if not asked for).
    pub claims: Vec<Claim>,
}

impl DeferReport {
    /// The row of `strategy` in `scenario`, if measured.
    pub fn row(&self, strategy: &str, scenario: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.strategy == strategy && r.scenario == scenario)
    }
}

/// Runs one operation `iters` times in this process: the body of the re-executed child that
/// valgrind simulates (see [`SimCommand`]).
pub fn run_op(strategy: Strategy, scenario: Scenario, iters: u64) -> Result<(), Error> {
    let op = ops::lookup(strategy, scenario).ok_or_else(|| Error::Child {
        command: format!("{strategy}/{scenario}"),
        message: "this pair is not measured".to_owned(),
    })?;
    let env = ops::Env::new();
    for i in 0..iters {
        black_box(op)(&env, black_box(i));
    }
    check_leak(&env, strategy, scenario)
}

fn check_leak(env: &ops::Env, strategy: Strategy, scenario: Scenario) -> Result<(), Error> {
    match env.open() {
        0 => Ok(()),
        open => Err(Error::Leak {
            strategy: strategy.key().to_owned(),
            scenario: scenario.key().to_owned(),
            open,
        }),
    }
}

/// Times one operation: calibrates the iterations per sample, then takes `samples` samples.
fn time_op(op: ops::Op, env: &ops::Env, config: &Config, seed: &mut u64) -> Timing {
    let mut iters: u64 = 1;
    loop {
        let start = Instant::now();
        for i in 0..iters {
            black_box(op)(env, black_box(*seed + i));
        }
        *seed += iters;
        if start.elapsed() >= config.sample_time / 2 || iters >= 1 << 30 {
            break;
        }
        iters *= 2;
    }
    let mut samples = Vec::with_capacity(config.samples as usize);
    for _ in 0..config.samples {
        let start = Instant::now();
        for i in 0..iters {
            black_box(op)(env, black_box(*seed + i));
        }
        *seed += iters;
        samples.push(start.elapsed().as_nanos() as f64 / iters as f64);
    }
    Timing::from_samples(samples, iters)
}

/// Allocations per operation in steady state (after the timing warmed any pool up).
fn count_allocs(op: ops::Op, env: &ops::Env, probe: AllocProbe, seed: &mut u64) -> (f64, f64) {
    const OPS: u64 = 1000;
    let before = probe();
    for i in 0..OPS {
        black_box(op)(env, black_box(*seed + i));
    }
    let after = probe();
    *seed += OPS;
    (
        (after.count - before.count) as f64 / OPS as f64,
        (after.bytes - before.bytes) as f64 / OPS as f64,
    )
}

/// Runs the experiment. `progress` is called before each step.
pub fn run(config: &Config, progress: &mut dyn FnMut(Progress)) -> Result<DeferReport, Error> {
    let pairs: Vec<(Strategy, Scenario)> = config
        .scenarios
        .iter()
        .flat_map(|&sc| config.strategies.iter().map(move |&st| (st, sc)))
        .filter(|&(st, sc)| ops::lookup(st, sc).is_some())
        .collect();
    let counters_plan = counters::plan(config);
    // Hardware counters are cheap: every pair. Simulation: the configured subset.
    let counted: Vec<(Strategy, Scenario)> = match (&counters_plan, &config.sim_only) {
        (Some(counters::Plan::Simulated(_)), Some(only)) => {
            pairs.iter().copied().filter(|p| only.contains(p)).collect()
        }
        _ => pairs.clone(),
    };
    let go_steps = u64::from(config.go);
    let total = pairs.len() as u64
        + if counters_plan.is_some() {
            counted.len() as u64
        } else {
            0
        }
        + go_steps;
    let mut done = 0;
    let mut step = |label: String, done: &mut u64| {
        progress(Progress {
            done: *done,
            total,
            label,
        });
        *done += 1;
    };

    let env = ops::Env::new();
    let mut seed = 1;
    // Warm up (CPU frequency, caches, the pool) so the first row is not penalized.
    let warm = Instant::now();
    while warm.elapsed() < config.sample_time * 10 && !pairs.is_empty() {
        for &(strategy, scenario) in &pairs {
            let op = ops::lookup(strategy, scenario).expect("pairs were filtered on lookup");
            black_box(op)(&env, black_box(seed));
            seed += 1;
        }
    }
    let mut rows = Vec::new();
    for &(strategy, scenario) in &pairs {
        step(format!("rust {strategy} / {scenario}"), &mut done);
        let op = ops::lookup(strategy, scenario).expect("pairs were filtered on lookup");
        let time = time_op(op, &env, config, &mut seed);
        let allocs = config
            .alloc_probe
            .map(|probe| count_allocs(op, &env, probe, &mut seed));
        check_leak(&env, strategy, scenario)?;
        rows.push(Row {
            lang: "rust".to_owned(),
            strategy: strategy.key().to_owned(),
            scenario: scenario.key().to_owned(),
            defers_per_op: scenario.defers(),
            time_ns: Some(time),
            allocs_per_op: allocs.map(|a| a.0),
            alloc_bytes_per_op: allocs.map(|a| a.1),
            counters: None,
            note: row_note(strategy, scenario),
        });
    }

    let (counter_source, counter_note) = match &counters_plan {
        Some(plan) => {
            let counters =
                counters::measure_all(plan, config, &counted, &mut |label| step(label, &mut done))?;
            for (pair, c) in counted.iter().zip(counters) {
                if let Some(i) = pairs.iter().position(|p| p == pair) {
                    rows[i].counters = c;
                }
            }
            let mut note = plan.note();
            if counted.len() < pairs.len() {
                if let Some(note) = &mut note {
                    note.push_str(&format!(
                        "; quick profile: simulated {} of {} rows (run without --quick for all)",
                        counted.len(),
                        pairs.len()
                    ));
                }
            }
            (plan.source(), note)
        }
        None => (CounterSource::None, Some(counters::why_none(config))),
    };

    let go = if config.go {
        step("go test -bench".to_owned(), &mut done);
        let (section, go_rows) = go::run(config)?;
        rows.extend(go_rows);
        section
    } else {
        GoSection {
            status: "skipped".to_owned(),
            version: None,
            message: Some("not run (--no-go)".to_owned()),
            simulated: None,
        }
    };

    Ok(DeferReport {
        schema_version: SCHEMA_VERSION,
        quick: config.quick,
        machine: Machine::detect(),
        counter_source,
        counter_note,
        alloc_counting: config.alloc_probe.is_some(),
        rows,
        go,
        claims: Vec::new(),
    })
}

fn row_note(strategy: Strategy, scenario: Scenario) -> Option<String> {
    match (strategy, scenario) {
        (
            Strategy::Guard | Strategy::Scopeguard,
            Scenario::Loop8 | Scenario::Loop64 | Scenario::Touch,
        ) => Some(
            "one guard owns the whole batch (a block guard cannot outlive its iteration)"
                .to_owned(),
        ),
        (Strategy::Manual, Scenario::Panic) => {
            Some("manual cleanup on unwind needs catch_unwind + resume_unwind".to_owned())
        }
        (_, Scenario::Panic) => Some("includes unwinding and catch_unwind".to_owned()),
        _ => None,
    }
}
