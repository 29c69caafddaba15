//! Counting a whole command, like `perf stat -- CMD`.
//!
//! How a child is counted from `exec`: before spawning, the calling thread opens its counters on
//! *itself*, disabled, with `inherit` and `enable_on_exec`. The child (forked by this thread)
//! inherits them disabled, and the kernel enables them when it `exec`s the command; every
//! thread and process the command starts inherits them in turn. The parent never `exec`s, so its
//! own copy never counts. When the children exit, the kernel folds their counts into the parent's
//! counters, which we read after `wait`. No code runs between `fork` and `exec` (std's spawn does
//! the fork), so there is no `unsafe` here.

use std::ffi::OsString;
use std::process::Command;
use std::time::Instant;

use crate::counters::Mode;
use crate::{CounterSet, CounterStatus, Error, Event, EventKind, Summary, Value};

/// What to count and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatOptions {
    /// Events to count (perf's default set if you start from [`StatOptions::default`]).
    pub events: Vec<Event>,
    /// How many times to run the command (`-r N`); at least 1.
    pub repeats: usize,
}

impl Default for StatOptions {
    fn default() -> Self {
        StatOptions {
            events: Event::DEFAULT.to_vec(),
            repeats: 1,
        }
    }
}

/// The counts of one run of the command.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunCounts {
    /// Wall-clock nanoseconds from spawn to the end of `wait`.
    pub wall_time_ns: u64,
    /// The exit status as a shell reports it (128 + N for death by signal N).
    pub exit_code: i32,
    /// One value per event of the report (`None` if the event is not counting or never ran).
    pub values: Vec<Option<Value>>,
}

/// One event over all runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EventStat {
    /// The event.
    pub event: Event,
    /// Counting, unsupported on this machine, or failed.
    pub status: CounterStatus,
    /// Scaled counts over the runs; `None` unless counting.
    pub count: Option<Summary>,
    /// Lowest share of time the counter was on the PMU over the runs, in percent.
    pub running_pct: Option<f64>,
}

/// A derived metric, such as instructions per cycle.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Metric {
    /// Key with unit, e.g. `ipc`, `branch_miss_pct`, `cpus_utilized`.
    pub key: &'static str,
    /// What `perf stat` prints beside the count, e.g. `insn per cycle`.
    pub description: &'static str,
    /// The value (from the mean counts).
    pub value: f64,
    /// The event whose line the metric belongs to.
    pub event: Event,
}

/// The result of [`stat_command`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatReport {
    /// The command and its arguments (lossy UTF-8).
    pub command: Vec<String>,
    /// Every event over all runs, in the requested order.
    pub events: Vec<EventStat>,
    /// Wall time over the runs, in nanoseconds.
    pub wall_time_ns: Summary,
    /// Derived metrics (only those whose inputs were counted).
    pub metrics: Vec<Metric>,
    /// The runs, in order.
    pub runs: Vec<RunCounts>,
    /// Runs requested (`-r`); fewer ran if one exited non-zero.
    pub repeats_requested: usize,
    /// The exit status of the last run (the first one that failed, if any).
    pub exit_code: i32,
    /// True when some requested hardware event is unsupported on this machine.
    pub hardware_unsupported: bool,
}

/// Runs `program args...` `options.repeats` times (stopping at the first non-zero exit) and
/// counts each run from its `exec`, including every thread and child process it starts.
///
/// The command inherits stdin, stdout and stderr. A command that cannot start gives
/// [`Error::Spawn`] (see [`Error::shell_exit_code`] for 127 / 126).
///
/// ```
/// use frugal_counters::{stat_command, Event, StatOptions};
///
/// let options = StatOptions { events: vec![Event::TaskClock, Event::PageFaults], repeats: 2 };
/// let report = stat_command("true".as_ref(), &[], &options)?;
/// assert_eq!(report.exit_code, 0);
/// assert!(report.events[1].count.as_ref().unwrap().median > 0.0); // exec faults pages in
/// # Ok::<(), frugal_counters::Error>(())
/// ```
pub fn stat_command(
    program: &std::ffi::OsStr,
    args: &[OsString],
    options: &StatOptions,
) -> Result<StatReport, Error> {
    if options.repeats == 0 {
        return Err(Error::InvalidInput(
            "repeat count must be at least 1".to_owned(),
        ));
    }
    let mut runs: Vec<RunCounts> = Vec::new();
    let mut status: Vec<CounterStatus> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    for _ in 0..options.repeats {
        let mut counters = CounterSet::open_mode(&options.events, Mode::ChildrenFromExec)?;
        events = counters.events().to_vec();
        status = counters.status().to_vec();
        let before = counters.read()?;
        let start = Instant::now();
        let mut child =
            Command::new(program)
                .args(args)
                .spawn()
                .map_err(|source| Error::Spawn {
                    program: program.to_string_lossy().into_owned(),
                    source,
                })?;
        let exit = child.wait().map_err(|source| Error::Wait {
            program: program.to_string_lossy().into_owned(),
            source,
        })?;
        let wall_time_ns = start.elapsed().as_nanos() as u64;
        let after = counters.read()?;
        drop(counters);
        let exit_code = shell_code(exit);
        runs.push(RunCounts {
            wall_time_ns,
            exit_code,
            values: after.since(&before),
        });
        if exit_code != 0 {
            break;
        }
    }

    let event_stats: Vec<EventStat> = events
        .iter()
        .zip(status)
        .enumerate()
        .map(|(i, (&event, status))| {
            let values: Vec<Value> = runs.iter().filter_map(|r| r.values[i]).collect();
            let count = (!values.is_empty() && status.is_counting())
                .then(|| Summary::from_samples(values.iter().map(|v| v.count).collect()));
            let running_pct = values.iter().map(|v| v.running_pct).reduce(f64::min);
            EventStat {
                event,
                status,
                count,
                running_pct,
            }
        })
        .collect();
    let wall_time_ns = Summary::from_samples(runs.iter().map(|r| r.wall_time_ns as f64).collect());
    let metrics = derive_metrics(&event_stats, wall_time_ns.mean);
    let hardware_unsupported = event_stats.iter().any(|e| {
        e.event.kind() == EventKind::Hardware
            && matches!(e.status, CounterStatus::Unsupported { .. })
    });
    let command = std::iter::once(program)
        .chain(args.iter().map(|a| a.as_os_str()))
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    Ok(StatReport {
        command,
        events: event_stats,
        wall_time_ns,
        metrics,
        exit_code: runs.last().map_or(0, |r| r.exit_code),
        runs,
        repeats_requested: options.repeats,
        hardware_unsupported,
    })
}

/// The exit status as a shell reports it: the code, or 128 + signal.
fn shell_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    }
}

/// perf stat's derived metrics, from the mean counts.
pub(crate) fn derive_metrics(events: &[EventStat], wall_time_ns: f64) -> Vec<Metric> {
    let mean = |e: Event| {
        events
            .iter()
            .find(|s| s.event == e)
            .and_then(|s| s.count.as_ref())
            .map(|s| s.mean)
    };
    let mut metrics = Vec::new();
    let mut ratio = |event, key, description, num: Option<f64>, den: Option<f64>, scale| {
        if let (Some(n), Some(d)) = (num, den) {
            if d > 0.0 {
                metrics.push(Metric {
                    key,
                    description,
                    value: scale * n / d,
                    event,
                });
            }
        }
    };
    let task_clock = mean(Event::TaskClock);
    let cycles = mean(Event::Cycles);
    let instructions = mean(Event::Instructions);
    let wall = (wall_time_ns > 0.0).then_some(wall_time_ns);
    ratio(
        Event::TaskClock,
        "cpus_utilized",
        "CPUs utilized",
        task_clock,
        wall,
        1.0,
    );
    ratio(Event::Cycles, "ghz", "GHz", cycles, task_clock, 1.0);
    ratio(
        Event::Instructions,
        "ipc",
        "insn per cycle",
        instructions,
        cycles,
        1.0,
    );
    ratio(
        Event::Instructions,
        "cpi",
        "cycles per insn",
        cycles,
        instructions,
        1.0,
    );
    ratio(
        Event::BranchMisses,
        "branch_miss_pct",
        "of all branches",
        mean(Event::BranchMisses),
        mean(Event::Branches),
        100.0,
    );
    ratio(
        Event::L1DcacheLoadMisses,
        "l1_dcache_load_miss_pct",
        "of all L1-dcache accesses",
        mean(Event::L1DcacheLoadMisses),
        mean(Event::L1DcacheLoads),
        100.0,
    );
    ratio(
        Event::LlcLoadMisses,
        "llc_load_miss_pct",
        "of all LL-cache accesses",
        mean(Event::LlcLoadMisses),
        mean(Event::LlcLoads),
        100.0,
    );
    metrics
}
