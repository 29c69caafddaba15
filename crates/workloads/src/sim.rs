//! What the counting experiments share: where counter figures come from ([`CounterSource`]),
//! the machine they ran on ([`Machine`]), progress reports ([`Progress`]), and the simulation
//! plumbing — the command that re-executes this binary under valgrind ([`SimCommand`]), the
//! check for a hardware PMU, and the two-thread pool the valgrind children run on.
//!
//! A leaf: `defer_bench` and `locality` use it; it uses neither.

use std::ffi::OsString;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use frugal_counters::sim::{SimRun, Simulator};
use frugal_counters::{Event, Measurement};
use serde::{Deserialize, Serialize};

/// Where the counter columns came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CounterSource {
    /// The hardware PMU (perf_event_open).
    Hardware,
    /// valgrind's cache and branch simulation (cachegrind/callgrind): a model, not this CPU.
    Simulated,
    /// No counters: no PMU and simulation unavailable or skipped.
    None,
}

/// The machine the numbers come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name from /proc/cpuinfo.
    pub cpu: String,
    /// Online CPUs.
    pub cores: u32,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads this machine's description.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Machine { cpu, cores, kernel }
    }
}

/// Progress of a run, for a progress bar.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Steps done.
    pub done: u64,
    /// Steps in total.
    pub total: u64,
    /// What runs now.
    pub label: String,
}

/// How to get simulated counters: re-run a program (this binary) under valgrind.
///
/// The engine appends its own arguments — `STRATEGY SCENARIO ITERS` for
/// [`defer_bench`](crate::defer_bench) (the program must then call
/// [`defer_bench::run_op`](crate::defer_bench::run_op)), `PATTERN SIZE_BYTES ACCESSES` for
/// [`locality`](crate::locality) (then [`locality::sim_child`](crate::locality::sim_child)).
#[derive(Debug, Clone)]
pub struct SimCommand {
    /// The program and leading arguments.
    pub argv: Vec<String>,
}

impl SimCommand {
    /// Runs the program with `args` appended under valgrind, collecting the functions matching
    /// `function` (a callgrind `--toggle-collect` pattern).
    pub(crate) fn simulate(
        &self,
        args: &[String],
        function: &str,
    ) -> Result<SimRun, frugal_counters::Error> {
        let (exe, leading) = self.argv.split_first().ok_or_else(|| {
            frugal_counters::Error::InvalidInput("empty re-exec command".to_owned())
        })?;
        let args: Vec<OsString> = leading.iter().chain(args).map(OsString::from).collect();
        Simulator::new()?.run_function(Path::new(exe), &args, function)
    }
}

/// True when the hardware PMU counts `event` on this machine.
pub(crate) fn pmu_counts(event: Event) -> bool {
    Measurement::new(&[event])
        .map(|mut m| m.counters().status().iter().all(|s| s.is_counting()))
        .unwrap_or(false)
}

/// Maps `f` over `items` on up to two threads (simulations are child processes, one per core),
/// keeping the order.
pub(crate) fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 2);
    let next = AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                // Relaxed: the counter only hands out distinct indices; the scope's join
                // publishes the slots.
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                *slots[i]
                    .lock()
                    .expect("no worker panics while holding a slot") = Some(r);
            });
        }
    });
    slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .expect("no worker panicked")
                .expect("every item was mapped")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_map_keeps_the_order() {
        let items: Vec<u32> = (0..50).collect();
        assert_eq!(
            parallel_map(&items, |x| x * 2),
            (0..50).map(|x| x * 2).collect::<Vec<_>>()
        );
        assert!(parallel_map(&[] as &[u32], |x| *x).is_empty());
    }

    #[test]
    fn an_empty_command_is_refused() {
        let err = SimCommand { argv: vec![] }
            .simulate(&[], "*f*")
            .unwrap_err();
        assert!(err.to_string().contains("empty re-exec command"), "{err}");
    }
}
