//! What the counting experiments share: wall time per operation over repeated samples
//! ([`Timing`]), where counter figures come from ([`CounterSource`]), the machine they ran on
//! ([`Machine`]), progress reports ([`Progress`]), and the simulation
//! plumbing — the command that re-executes this binary under valgrind ([`SimCommand`]), the
//! check for a hardware PMU, and the two-thread pool the valgrind children run on.
//!
//! A leaf: `defer_bench` and `locality` use it; it uses neither.

use std::ffi::OsString;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use frugal_counters::sim::{SimRun, Simulator};
use frugal_counters::{Event, Measurement};
use frugal_output::Summary;
use serde::{Deserialize, Serialize};

/// Wall time per operation over repeated samples, in nanoseconds: the workspace's one sample
/// summary ([`Summary`], whose fields it derefs to) and how many operations each sample timed.
///
/// In JSON the summary's fields and `iters_per_sample` sit side by side:
/// `{ "n", "min", "p25", "median", "p75", "max", "mean", "stddev", "samples",
/// "iters_per_sample" }`. Files written before `n`, `mean` and `stddev` existed still load:
/// those are computed from `samples`.
///
/// ```
/// let t = frugal_workloads::sim::Timing::from_samples(vec![3.0, 1.0, 2.0], 1000);
/// assert_eq!((t.median, t.iters_per_sample), (2.0, 1000));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "TimingFile")]
pub struct Timing {
    /// The samples (ns per operation) and their statistics.
    #[serde(flatten)]
    pub summary: Summary,
    /// Operations timed per sample.
    pub iters_per_sample: u64,
}

impl Timing {
    /// Summarizes samples (ns per operation, in the order taken). No samples give zeros.
    pub fn from_samples(samples: Vec<f64>, iters_per_sample: u64) -> Timing {
        Timing {
            summary: Summary::from_samples(samples),
            iters_per_sample,
        }
    }
}

impl std::ops::Deref for Timing {
    type Target = Summary;

    fn deref(&self) -> &Summary {
        &self.summary
    }
}

/// A [`Timing`] as files hold it, old ones (without `n`, `mean`, `stddev`) included.
#[derive(Deserialize)]
struct TimingFile {
    median: f64,
    p25: f64,
    p75: f64,
    min: f64,
    max: f64,
    iters_per_sample: u64,
    samples: Vec<f64>,
    n: Option<usize>,
    mean: Option<f64>,
    stddev: Option<f64>,
}

impl From<TimingFile> for Timing {
    fn from(f: TimingFile) -> Timing {
        // The order statistics are kept as written; what an old file lacks comes from its
        // samples.
        let from_samples = Summary::from_samples(f.samples.clone());
        Timing {
            summary: Summary {
                n: f.n.unwrap_or(from_samples.n),
                min: f.min,
                p25: f.p25,
                median: f.median,
                p75: f.p75,
                max: f.max,
                mean: f.mean.unwrap_or(from_samples.mean),
                stddev: f.stddev.unwrap_or(from_samples.stddev),
                samples: f.samples,
            },
            iters_per_sample: f.iters_per_sample,
        }
    }
}

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
    fn timing_summarizes_and_round_trips() {
        let t = Timing::from_samples(vec![5.0, 1.0, 3.0, 2.0, 4.0], 10);
        assert_eq!(
            (t.median, t.p25, t.p75, t.min, t.max),
            (3.0, 2.0, 4.0, 1.0, 5.0)
        );
        assert_eq!(t.samples, vec![5.0, 1.0, 3.0, 2.0, 4.0]);
        assert!((t.spread_percent() - 100.0 / 3.0).abs() < 1e-9);
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["iters_per_sample"], 10);
        assert_eq!(json["median"], 3.0);
        assert_eq!(json["n"], 5);
        let back: Timing = serde_json::from_value(json).unwrap();
        assert_eq!(back, t);
        assert_eq!(Timing::from_samples(vec![], 1).median, 0.0);
    }

    #[test]
    fn old_timings_without_n_mean_stddev_load() {
        let old = r#"{"median": 2.0, "p25": 1.5, "p75": 2.5, "min": 1.0, "max": 3.0,
                      "iters_per_sample": 64, "samples": [1.0, 2.0, 3.0]}"#;
        let t: Timing = serde_json::from_str(old).unwrap();
        assert_eq!(
            (t.n, t.mean, t.stddev, t.iters_per_sample),
            (3, 2.0, 1.0, 64)
        );
        assert_eq!((t.p25, t.p75), (1.5, 2.5));
    }

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
