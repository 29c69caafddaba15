//! The counter columns of `bench defer`: hardware counters in-process when the PMU is there, otherwise valgrind's
//! simulation of one operation function, run in a re-executed child.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use frugal_counters::{Event, Measurement};

use super::{ops, Config, CounterSource, OpCounters, Scenario, SimCommand, Strategy};
use crate::Error;

/// The hardware events per operation.
const HW_EVENTS: [Event; 5] = [
    Event::Instructions,
    Event::Branches,
    Event::BranchMisses,
    Event::L1DcacheLoadMisses,
    Event::Cycles,
];

/// How the counter columns will be filled.
pub(crate) enum Plan {
    /// The PMU counts instructions on this machine.
    Hardware,
    /// No PMU: valgrind simulates the operation in a child.
    Simulated(SimCommand),
}

/// Picks the plan: hardware if `instructions` can be counted, else simulation if configured.
pub(crate) fn plan(config: &Config) -> Option<Plan> {
    if hardware_available() {
        return Some(Plan::Hardware);
    }
    config.sim.clone().map(Plan::Simulated)
}

/// True when counters must be simulated: no hardware `instructions` counter here.
pub(crate) fn needs_simulation() -> bool {
    !hardware_available()
}

fn hardware_available() -> bool {
    crate::sim::pmu_counts(Event::Instructions)
}

/// Why the counter columns are empty.
pub(crate) fn why_none(config: &Config) -> String {
    if config.sim.is_none() {
        "no hardware PMU on this machine (perf_event_open: ENOENT for hardware events) and \
         simulation was skipped"
            .to_owned()
    } else {
        "no hardware counters and no simulation available".to_owned()
    }
}

impl Plan {
    pub(crate) fn source(&self) -> CounterSource {
        match self {
            Plan::Hardware => CounterSource::Hardware,
            Plan::Simulated(_) => CounterSource::Simulated,
        }
    }

    pub(crate) fn note(&self) -> Option<String> {
        match self {
            Plan::Hardware => None,
            Plan::Simulated(_) => Some(
                "no hardware PMU on this machine (perf_event_open: ENOENT for hardware events): \
                 instructions, branches and L1d misses are simulated by valgrind \
                 (callgrind, cache geometry from sysfs) for the measured function only; \
                 * marks simulated values"
                    .to_owned(),
            ),
        }
    }

    /// Counters per operation of one (strategy, scenario).
    pub(crate) fn measure(
        &self,
        config: &Config,
        strategy: Strategy,
        scenario: Scenario,
    ) -> Result<Option<OpCounters>, Error> {
        match self {
            Plan::Hardware => Ok(hardware(config, strategy, scenario)),
            Plan::Simulated(cmd) => simulated(cmd, config, strategy, scenario),
        }
    }
}

fn hardware(config: &Config, strategy: Strategy, scenario: Scenario) -> Option<OpCounters> {
    let op = ops::lookup(strategy, scenario)?;
    let env = ops::Env::new();
    let seed = Cell::new(0u64);
    let mut m = Measurement::new(&HW_EVENTS).ok()?;
    let iters = if config.quick { 1_000 } else { 10_000 };
    let report = m
        .run(iters, config.samples as usize, || {
            let s = seed.get();
            seed.set(s + 1);
            op(&env, s)
        })
        .ok()?;
    let get = |e| report.per_op(e).map(|s| s.median);
    Some(OpCounters {
        source: CounterSource::Hardware,
        instructions: get(Event::Instructions),
        branches: get(Event::Branches),
        branch_misses: get(Event::BranchMisses),
        l1d_misses: get(Event::L1DcacheLoadMisses),
        cycles: get(Event::Cycles),
        estimated_cycles: None,
    })
}

fn simulated(
    cmd: &SimCommand,
    config: &Config,
    strategy: Strategy,
    scenario: Scenario,
) -> Result<Option<OpCounters>, Error> {
    let iters = config.sim_iters;
    let args = [
        strategy.key().to_owned(),
        scenario.key().to_owned(),
        iters.to_string(),
    ];
    let function = format!("*defer_bench::ops::{}", ops::symbol(strategy, scenario));
    let run = cmd.simulate(&args, &function).map_err(sim_error)?;
    let per_op = run.counts.per_op(iters);
    Ok(Some(OpCounters::simulated(&per_op)))
}

fn sim_error(e: frugal_counters::Error) -> Error {
    Error::Child {
        command: "valgrind (simulated counters)".to_owned(),
        message: format!("{e}; pass --no-sim to skip simulated counters"),
    }
}

/// Counters for every pair, in order. Simulations run on up to two worker threads (each is a
/// valgrind child); `progress` is called on the calling thread as results come in.
pub(crate) fn measure_all(
    plan: &Plan,
    config: &Config,
    pairs: &[(Strategy, Scenario)],
    progress: &mut dyn FnMut(String),
) -> Result<Vec<Option<OpCounters>>, Error> {
    let mut results: Vec<Option<OpCounters>> = vec![None; pairs.len()];
    if let Plan::Hardware = plan {
        for (slot, &(strategy, scenario)) in results.iter_mut().zip(pairs) {
            progress(format!("hardware counters {strategy} / {scenario}"));
            *slot = plan.measure(config, strategy, scenario)?;
        }
        return Ok(results);
    }
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 2);
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let tx = tx.clone();
            let next = &next;
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(strategy, scenario)) = pairs.get(i) else {
                    break;
                };
                let result = plan.measure(config, strategy, scenario);
                let failed = result.is_err();
                if tx.send((i, result)).is_err() || failed {
                    // Stop taking work after a failure: the first error is reported.
                    next.store(pairs.len(), Ordering::Relaxed);
                    break;
                }
            });
        }
        drop(tx);
        let mut first_error = None;
        for (i, result) in rx {
            let (strategy, scenario) = pairs[i];
            progress(format!("simulated counters {strategy} / {scenario}"));
            match result {
                Ok(c) => results[i] = c,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    })?;
    Ok(results)
}
