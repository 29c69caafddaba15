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

use frugal_output::{Document, Render, Table, Tone};

use crate::counters::Mode;
use crate::{CounterSet, CounterStatus, Error, Event, EventKind, Scope, Source, Summary, Value};

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
///
/// In JSON the event is spelled out: `"event"` (perf's name), `"key"` (snake_case with the unit),
/// `"unit"` and `"kind"`; the count carries `rel_stderr_pct` beside the summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EventStat {
    /// The event.
    #[serde(flatten, serialize_with = "event_fields")]
    pub event: Event,
    /// Counting, unsupported on this machine, or failed.
    pub status: CounterStatus,
    /// Scaled counts over the runs; `None` unless counting.
    #[serde(serialize_with = "opt_summary_with_stderr")]
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

/// The result of [`stat_command`]: `frugal stat`'s report.
///
/// It renders itself ([`frugal_output::Render`]) as `perf stat` prints: counts, derived metrics,
/// elapsed time and notes; as CSV with one row per event, wall time and metric; its JSON is its
/// `serde` form (schema `frugal-stat`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatReport {
    /// The command and its arguments (lossy UTF-8).
    pub command: Vec<String>,
    /// Every event over all runs, in the requested order.
    pub events: Vec<EventStat>,
    /// Wall time over the runs, in nanoseconds.
    #[serde(serialize_with = "summary_with_stderr")]
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

/// `EventStat::event` in JSON: perf's name, the key with its unit, the unit and the kind.
fn event_fields<S: serde::Serializer>(event: &Event, s: S) -> Result<S::Ok, S::Error> {
    #[derive(serde::Serialize)]
    struct Fields {
        event: &'static str,
        key: &'static str,
        unit: &'static str,
        kind: EventKind,
    }
    serde::Serialize::serialize(
        &Fields {
            event: event.name(),
            key: event.key(),
            unit: event.unit(),
            kind: event.kind(),
        },
        s,
    )
}

/// A summary with perf's `( +- x% )` beside it: `{...summary, "rel_stderr_pct": x}`.
#[derive(serde::Serialize)]
struct WithStderr<'a> {
    #[serde(flatten)]
    summary: &'a Summary,
    rel_stderr_pct: f64,
}

fn summary_with_stderr<S: serde::Serializer>(summary: &Summary, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(
        &WithStderr {
            summary,
            rel_stderr_pct: summary.rel_stderr_percent(),
        },
        s,
    )
}

fn opt_summary_with_stderr<S: serde::Serializer>(
    summary: &Option<Summary>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match summary {
        Some(summary) => summary_with_stderr(summary, s),
        None => s.serialize_none(),
    }
}

/// A count rounded as perf prints it (`{:.0}`: half to even) with thousands separators.
pub(crate) fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let body = digits
        .parse::<u64>()
        .map_or(digits, frugal_output::units::thousands);
    if value < 0.0 {
        format!("-{body}")
    } else {
        body
    }
}

/// A count as perf prints it: task-clock in msec, others grouped integers.
fn count_text(event: Event, value: f64) -> String {
    if event == Event::TaskClock {
        format!("{:.2} msec", value / 1e6)
    } else {
        grouped(value)
    }
}

impl StatReport {
    fn task_clock_mean(&self) -> Option<f64> {
        self.events
            .iter()
            .find(|e| e.event == Event::TaskClock)
            .and_then(|e| e.count.as_ref())
            .map(|s| s.mean)
    }

    /// One event's line of the table, its tone, and the notes it raises.
    fn event_line(&self, stat: &EventStat, notes: &mut Vec<String>) -> (String, Tone) {
        use std::fmt::Write as _;
        let runs = self.runs.len();
        let event = stat.event;
        let (value, unit, tone) = match (&stat.status, &stat.count) {
            (CounterStatus::Counting { .. }, Some(count)) => {
                let text = count_text(event, count.mean);
                match text.split_once(' ') {
                    Some((v, u)) => (v.to_owned(), u.to_owned(), Tone::Plain),
                    None => (text, String::new(), Tone::Plain),
                }
            }
            (CounterStatus::Counting { .. }, None) => {
                ("<not counted>".to_owned(), String::new(), Tone::Dim)
            }
            (CounterStatus::Unsupported { .. }, _) => {
                ("<not supported>".to_owned(), String::new(), Tone::Dim)
            }
            (CounterStatus::Failed { message }, _) => {
                notes.push(format!("{event}: {message}"));
                ("<failed>".to_owned(), String::new(), Tone::Bad)
            }
        };
        let mut line = format!("{value:>18} {unit:<4} {:<24}", event.name());
        if let Some(metric) = self.metrics.iter().find(|m| m.event == event) {
            let _ = write!(line, " # {:>8.3} {:<22}", metric.value, metric.description);
        } else if let (Some(count), Some(clock)) = (&stat.count, self.task_clock_mean()) {
            if event != Event::TaskClock && clock > 0.0 {
                let rate = count.mean / (clock / 1e9);
                let (rate, unit) = if rate >= 1e6 {
                    (rate / 1e6, "M/sec")
                } else if rate >= 1e3 {
                    (rate / 1e3, "K/sec")
                } else {
                    (rate, "/sec")
                };
                let _ = write!(line, " # {rate:>8.3} {unit:<22}");
            }
        }
        if let Some(count) = &stat.count {
            if runs > 1 {
                let _ = write!(
                    line,
                    " ( +- {:>5.2}% )  min {} median {} max {}",
                    count.rel_stderr_percent(),
                    count_text(event, count.min),
                    count_text(event, count.median),
                    count_text(event, count.max)
                );
            }
        }
        if let Some(pct) = stat.running_pct {
            if pct < 99.995 {
                let _ = write!(line, "  ({pct:.2}%)");
            }
        }
        if let CounterStatus::Counting { scope, source } = stat.status {
            if scope == Scope::UserOnly {
                line.push_str("  (user only)");
            }
            if source == Source::Getrusage {
                line.push_str("  (from getrusage)");
                notes.push(
                    "context-switches come from getrusage: kernel counting is not allowed, and a \
                     user-only perf counter would read 0"
                        .to_owned(),
                );
            }
        }
        (line.trim_end().to_owned(), tone)
    }
}

impl Render for StatReport {
    const SCHEMA: &'static str = "frugal-stat";
    const VERSION: u32 = 1;

    /// `perf stat`'s layout: a header line, one line per event (count, unit, name, `#` metric
    /// or rate, `( +- x% )` and min/median/max over several runs, annotations), the elapsed
    /// time, then notes.
    fn document(&self) -> Document {
        let runs = self.runs.len();
        let mut doc = Document::new(format!(
            " Performance counter stats for '{}'{}:",
            self.command.join(" "),
            if self.repeats_requested > runs {
                format!(" ({runs} of {} runs)", self.repeats_requested)
            } else if runs > 1 {
                format!(" ({runs} runs)")
            } else {
                String::new()
            }
        ));
        doc.blank();
        let mut notes: Vec<String> = Vec::new();
        for stat in &self.events {
            let (line, tone) = self.event_line(stat, &mut notes);
            doc.toned(line, tone);
        }
        doc.blank();
        let wall = &self.wall_time_ns;
        if runs > 1 {
            doc.line(format!(
                "{:>18.9} +- {:.9} seconds time elapsed  ( +- {:>5.2}% )  min {:.9} median {:.9} \
                 max {:.9}",
                wall.mean / 1e9,
                wall.stddev / (runs as f64).sqrt() / 1e9,
                wall.rel_stderr_percent(),
                wall.min / 1e9,
                wall.median / 1e9,
                wall.max / 1e9
            ));
        } else {
            doc.line(format!("{:>18.9} seconds time elapsed", wall.mean / 1e9));
        }
        if runs < self.repeats_requested {
            notes.push(format!(
                "stopped after run {runs} of {}: the command exited with status {}",
                self.repeats_requested, self.exit_code
            ));
        }
        if self.hardware_unsupported {
            notes.push(
                "hardware events are not supported on this machine (perf_event_open gives ENOENT: \
                 no PMU, typical of VMs); run `frugal stat --sim -- CMD` for simulated counts"
                    .to_owned(),
            );
        }
        doc.blank();
        for note in notes {
            doc.toned(format!(" note: {note}"), Tone::Dim);
        }
        doc
    }

    /// One row per event, then wall time, then each derived metric; raw numbers (task-clock
    /// and wall time in ns), empty where not counted.
    fn csv_table(&self) -> Option<Table> {
        let mut t = Table::numeric(CSV_COLUMNS);
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let mut row =
            |name: &str, key: &str, unit: &str, status: &str, s: Option<&Summary>, run| {
                t.row([
                    name.to_owned(),
                    key.to_owned(),
                    unit.to_owned(),
                    status.to_owned(),
                    "false".to_owned(),
                    opt(s.map(|s| s.mean)),
                    opt(s.map(|s| s.min)),
                    opt(s.map(|s| s.median)),
                    opt(s.map(|s| s.max)),
                    opt(s.map(|s| s.stddev)),
                    opt(s.map(|s| s.rel_stderr_percent())),
                    opt(run),
                ]);
            };
        for e in &self.events {
            let status = match e.status {
                CounterStatus::Counting { .. } => "counting",
                CounterStatus::Unsupported { .. } => "unsupported",
                CounterStatus::Failed { .. } => "failed",
            };
            let event = e.event;
            row(
                event.name(),
                event.key(),
                event.unit(),
                status,
                e.count.as_ref(),
                e.running_pct,
            );
        }
        row(
            "wall-time",
            "wall_time_ns",
            "ns",
            "counting",
            Some(&self.wall_time_ns),
            None,
        );
        for m in &self.metrics {
            let value = Summary::from_samples(vec![m.value]);
            row(m.description, m.key, "", "derived", Some(&value), None);
        }
        Some(t)
    }
}

/// The CSV columns of `frugal stat` and `frugal stat --sim` (one schema for both).
pub(crate) const CSV_COLUMNS: [&str; 12] = [
    "event",
    "key",
    "unit",
    "status",
    "simulated",
    "count",
    "count_min",
    "count_median",
    "count_max",
    "count_stddev",
    "rel_stderr_pct",
    "running_pct",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;
    use frugal_output::Style;

    #[test]
    fn grouping_rounds_as_perf() {
        assert_eq!(grouped(0.0), "0");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(grouped(1000.0), "1,000");
        assert_eq!(grouped(1234567.4), "1,234,567");
        assert_eq!(grouped(-1234.0), "-1,234");
        assert_eq!(grouped(2.5), "2", "half to even, as printf");
    }

    fn report(runs: usize) -> StatReport {
        let counting = CounterStatus::Counting {
            scope: Scope::UserAndKernel,
            source: Source::Perf,
        };
        let faults: Vec<f64> = (0..runs).map(|i| 1000.0 + 10.0 * i as f64).collect();
        let events = vec![
            EventStat {
                event: Event::TaskClock,
                status: counting.clone(),
                count: Some(Summary::from_samples(vec![2e6; runs])),
                running_pct: Some(100.0),
            },
            EventStat {
                event: Event::PageFaults,
                status: counting,
                count: Some(Summary::from_samples(faults)),
                running_pct: Some(100.0),
            },
            EventStat {
                event: Event::Cycles,
                status: CounterStatus::Unsupported {
                    reason: "No such file or directory (os error 2)".to_owned(),
                },
                count: None,
                running_pct: None,
            },
        ];
        let wall = Summary::from_samples(vec![4e6; runs]);
        let metrics = derive_metrics(&events, wall.mean);
        StatReport {
            command: vec!["true".to_owned()],
            events,
            wall_time_ns: wall,
            metrics,
            runs: (0..runs)
                .map(|_| RunCounts {
                    wall_time_ns: 4_000_000,
                    exit_code: 0,
                    values: vec![
                        Value::scaled(2_000_000, 1, 1),
                        Value::scaled(1000, 1, 1),
                        None,
                    ],
                })
                .collect(),
            repeats_requested: runs,
            exit_code: 0,
            hardware_unsupported: true,
        }
    }

    #[test]
    fn table_keeps_perfs_layout() {
        let text = report(1).document().to_text(&Style::plain());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], " Performance counter stats for 'true':");
        assert_eq!(lines[1], "");
        assert_eq!(
            lines[2],
            "              2.00 msec task-clock               #    0.500 CPUs utilized"
        );
        assert_eq!(
            lines[3],
            "             1,000      page-faults              #  500.000 K/sec"
        );
        assert_eq!(lines[4], "   <not supported>      cycles");
        assert_eq!(lines[6], "       0.004000000 seconds time elapsed");
        assert!(lines[8].starts_with(" note: hardware events are not supported"));
        let three = report(3).document().to_text(&Style::plain());
        assert!(three.contains("'true' (3 runs):"), "{three}");
        assert!(
            three.contains("( +-  0.57% )  min 1,000 median 1,010 max 1,020"),
            "{three}"
        );
    }

    #[test]
    fn csv_has_one_row_per_event_wall_time_and_metric() {
        let csv = report(1).csv_table().unwrap().to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(
            lines[2],
            "page-faults,page_faults,,counting,false,1000,1000,1000,1000,0,0,100"
        );
        assert_eq!(lines[3], "cycles,cycles,,unsupported,false,,,,,,,");
        assert!(lines[4].starts_with("wall-time,wall_time_ns,ns,counting,false,4000000,"));
        assert!(lines[5].starts_with("CPUs utilized,cpus_utilized,,derived,false,0.5,"));
    }

    #[test]
    fn json_spells_out_events_and_errors() {
        let json = serde_json::to_value(report(2)).unwrap();
        let faults = &json["events"][1];
        assert_eq!(faults["event"], "page-faults");
        assert_eq!(faults["key"], "page_faults");
        assert_eq!(faults["kind"], "software");
        assert_eq!(faults["status"]["state"], "counting");
        assert_eq!(faults["count"]["n"], 2);
        let stderr = faults["count"]["rel_stderr_pct"].as_f64().unwrap();
        assert!((stderr - 100.0 * 7.0710678 / 2f64.sqrt() / 1005.0).abs() < 1e-4);
        assert!(json["events"][2]["count"].is_null());
        assert_eq!(json["wall_time_ns"]["rel_stderr_pct"], 0.0);
        assert_eq!(json["metrics"][0]["key"], "cpus_utilized");
    }
}
