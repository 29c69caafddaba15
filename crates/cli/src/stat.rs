//! `frugal stat`: count a command's events like `perf stat`, or simulate them with `--sim`.
//!
//! The terminal table goes to stderr (as perf stat's does) so the command's own stdout stays
//! clean; `--json` / `--csv` go to stdout, or to `-o FILE`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use frugal_counters::sim::{self, SimRun, Simulator};
use frugal_counters::{
    stat_command, CounterStatus, Error, Event, Scope, Source, StatOptions, StatReport, Summary,
};

/// Arguments of `frugal stat`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  frugal stat -- ls -l\n  frugal stat -r 5 -e \
                        task-clock,page-faults -- ./a.out\n  frugal stat --sim --json -- ./a.out"
)]
pub struct Args {
    /// Events to count, comma-separated perf names (default: perf stat's default set).
    #[arg(short = 'e', long = "events", value_name = "EVENTS")]
    events: Option<String>,
    /// Run the command N times (1 to 10,000); report mean ± relative standard error and
    /// min/median/max.
    #[arg(short = 'r', long = "repeat", value_name = "N", default_value_t = 1, allow_hyphen_values = true,
          value_parser = crate::ranges::count::<usize>(1, 10_000, "at least one run; more runs belong in a script"))]
    repeat: usize,
    /// Print JSON (to stdout, or to --output).
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV (to stdout, or to --output).
    #[arg(long)]
    csv: bool,
    /// Write the report to FILE instead of stdout/stderr.
    #[arg(short = 'o', long = "output", value_name = "FILE", value_parser = crate::ranges::output_file)]
    output: Option<PathBuf>,
    /// Simulate instead of counting: valgrind cachegrind with cache and branch simulation.
    #[arg(long)]
    sim: bool,
    /// The command to run and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    command: Vec<OsString>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Table,
    Json,
    Csv,
}

/// Runs `frugal stat`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let format = if args.json {
        Format::Json
    } else if args.csv {
        Format::Csv
    } else {
        Format::Table
    };
    let (program, rest) = args
        .command
        .split_first()
        .context("missing the command to run after `--`")?;
    let events = match &args.events {
        Some(list) => Event::parse_list(list).map_err(|e| crate::ranges::usage(e.to_string()))?,
        None => Event::DEFAULT.to_vec(),
    };

    if args.sim {
        if args.events.is_some() {
            return Err(crate::ranges::usage(
                "-e selects hardware counters; --sim always reports the simulated set \
                 (instructions, cache and branch misses): drop -e",
            ));
        }
        if args.repeat != 1 {
            return Err(crate::ranges::usage(
                "--sim is deterministic, one run is enough: drop -r",
            ));
        }
        let simulator = match Simulator::new() {
            Ok(simulator) => simulator,
            Err(err) => return start_failure(err),
        };
        // Before the run, so they are seen even if valgrind then fails.
        for note in simulator.notes() {
            eprintln!("frugal stat: {note}");
        }
        let run = match simulator.run_command(program, rest) {
            Ok(run) => run,
            Err(err) => return start_failure(err),
        };
        let text = match format {
            Format::Table => sim_table(&run),
            Format::Json => serde_json::to_string_pretty(&sim_json(&run))? + "\n",
            Format::Csv => sim_csv(&run),
        };
        emit(&args.output, format, &text)?;
        return Ok(exit_code(run.exit_code));
    }

    let options = StatOptions {
        events,
        repeats: args.repeat,
    };
    let report = match stat_command(program, rest, &options) {
        Ok(report) => report,
        Err(err) => return start_failure(err),
    };
    let text = match format {
        Format::Table => table(&report),
        Format::Json => serde_json::to_string_pretty(&stat_json(&report))? + "\n",
        Format::Csv => csv(&report),
    };
    emit(&args.output, format, &text)?;
    Ok(exit_code(report.exit_code))
}

/// A command that could not start exits like a shell (127 / 126); other errors propagate.
fn start_failure(err: Error) -> anyhow::Result<ExitCode> {
    match err.shell_exit_code() {
        Some(code) => {
            eprintln!("frugal stat: {err}");
            Ok(ExitCode::from(code))
        }
        None => Err(err.into()),
    }
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn emit(output: &Option<PathBuf>, format: Format, text: &str) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
        }
        None if format == Format::Table => {
            std::io::stderr().write_all(text.as_bytes())?;
            Ok(())
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            Ok(())
        }
    }
}

fn quoted_command(command: &[String]) -> String {
    command.join(" ")
}

/// `1234567` -> `1,234,567`.
fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// A count as perf prints it: task-clock in msec, others grouped integers.
fn count_text(event: Event, value: f64) -> String {
    if event == Event::TaskClock {
        format!("{:.2} msec", value / 1e6)
    } else {
        grouped(value)
    }
}

fn table(report: &StatReport) -> String {
    let mut out = String::new();
    let runs = report.runs.len();
    let _ = writeln!(
        out,
        "\n Performance counter stats for '{}'{}:\n",
        quoted_command(&report.command),
        if report.repeats_requested > runs {
            format!(" ({runs} of {} runs)", report.repeats_requested)
        } else if runs > 1 {
            format!(" ({runs} runs)")
        } else {
            String::new()
        }
    );
    let mut notes: Vec<String> = Vec::new();
    for stat in &report.events {
        let event = stat.event;
        let (value, unit) = match (&stat.status, &stat.count) {
            (CounterStatus::Counting { .. }, Some(count)) => {
                let text = count_text(event, count.mean);
                match text.split_once(' ') {
                    Some((v, u)) => (v.to_owned(), u.to_owned()),
                    None => (text, String::new()),
                }
            }
            (CounterStatus::Counting { .. }, None) => ("<not counted>".to_owned(), String::new()),
            (CounterStatus::Unsupported { .. }, _) => ("<not supported>".to_owned(), String::new()),
            (CounterStatus::Failed { message }, _) => {
                notes.push(format!("{event}: {message}"));
                ("<failed>".to_owned(), String::new())
            }
        };
        let mut line = format!("{value:>18} {unit:<4} {:<24}", event.name());
        if let Some(metric) = report.metrics.iter().find(|m| m.event == event) {
            let _ = write!(line, " # {:>8.3} {:<22}", metric.value, metric.description);
        } else if let (Some(count), Some(clock)) = (&stat.count, task_clock_mean(report)) {
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
                    count.rel_stderr_pct(),
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
        if let CounterStatus::Counting {
            scope: Scope::UserOnly,
            ..
        } = stat.status
        {
            let _ = write!(line, "  (user only)");
        }
        if let CounterStatus::Counting {
            source: Source::Getrusage,
            ..
        } = stat.status
        {
            let _ = write!(line, "  (from getrusage)");
            notes.push(
                "context-switches come from getrusage: kernel counting is not allowed, and a \
                 user-only perf counter would read 0"
                    .to_owned(),
            );
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let wall = &report.wall_time_ns;
    let _ = writeln!(out);
    if runs > 1 {
        let _ = writeln!(
            out,
            "{:>18.9} +- {:.9} seconds time elapsed  ( +- {:>5.2}% )  min {:.9} median {:.9} \
             max {:.9}",
            wall.mean / 1e9,
            wall.stddev / (runs as f64).sqrt() / 1e9,
            wall.rel_stderr_pct(),
            wall.min / 1e9,
            wall.median / 1e9,
            wall.max / 1e9
        );
    } else {
        let _ = writeln!(out, "{:>18.9} seconds time elapsed", wall.mean / 1e9);
    }
    if report.runs.len() < report.repeats_requested {
        notes.push(format!(
            "stopped after run {} of {}: the command exited with status {}",
            report.runs.len(),
            report.repeats_requested,
            report.exit_code
        ));
    }
    if report.hardware_unsupported {
        notes.push(
            "hardware events are not supported on this machine (perf_event_open gives ENOENT: no \
             PMU, typical of VMs); run `frugal stat --sim -- CMD` for simulated counts"
                .to_owned(),
        );
    }
    let _ = writeln!(out);
    for note in notes {
        let _ = writeln!(out, " note: {note}");
    }
    out
}

fn task_clock_mean(report: &StatReport) -> Option<f64> {
    report
        .events
        .iter()
        .find(|e| e.event == Event::TaskClock)
        .and_then(|e| e.count.as_ref())
        .map(|s| s.mean)
}

fn summary_json(summary: &Summary) -> serde_json::Value {
    serde_json::json!({
        "mean": summary.mean,
        "min": summary.min,
        "median": summary.median,
        "max": summary.max,
        "stddev": summary.stddev,
        "rel_stderr_pct": summary.rel_stderr_pct(),
        "samples": summary.samples,
    })
}

fn status_name(status: &CounterStatus) -> &'static str {
    match status {
        CounterStatus::Counting { .. } => "counting",
        CounterStatus::Unsupported { .. } => "unsupported",
        CounterStatus::Failed { .. } => "failed",
    }
}

fn stat_json(report: &StatReport) -> serde_json::Value {
    let events: Vec<_> = report
        .events
        .iter()
        .map(|e| {
            serde_json::json!({
                "event": e.event.name(),
                "key": e.event.key(),
                "unit": e.event.unit(),
                "kind": e.event.kind(),
                "status": e.status,
                "count": e.count.as_ref().map(summary_json),
                "running_pct": e.running_pct,
            })
        })
        .collect();
    let metrics: Vec<_> = report
        .metrics
        .iter()
        .map(|m| {
            serde_json::json!({"key": m.key, "description": m.description, "value": m.value,
                               "event": m.event.name()})
        })
        .collect();
    let runs: Vec<_> = report
        .runs
        .iter()
        .map(|r| {
            let counts: serde_json::Map<String, serde_json::Value> = report
                .events
                .iter()
                .zip(&r.values)
                .map(|(e, v)| {
                    (
                        e.event.key().to_owned(),
                        serde_json::json!(v.map(|v| v.count)),
                    )
                })
                .collect();
            serde_json::json!({"wall_time_ns": r.wall_time_ns, "exit_code": r.exit_code,
                               "counts": counts})
        })
        .collect();
    serde_json::json!({
        "mode": "perf",
        "simulated": false,
        "command": report.command,
        "repeats_requested": report.repeats_requested,
        "exit_code": report.exit_code,
        "wall_time_ns": summary_json(&report.wall_time_ns),
        "events": events,
        "metrics": metrics,
        "runs": runs,
        "hardware_unsupported": report.hardware_unsupported,
        "hint": report.hardware_unsupported.then_some(
            "hardware events are not supported here; use `frugal stat --sim` for simulated counts"),
    })
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

const CSV_HEADER: &str = "event,key,unit,status,simulated,count,count_min,count_median,\
                          count_max,count_stddev,rel_stderr_pct,running_pct\n";

fn csv(report: &StatReport) -> String {
    let mut out = String::from(CSV_HEADER);
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut row = |name: &str, key: &str, unit: &str, status: &str, s: Option<&Summary>, run| {
        let _ = writeln!(
            out,
            "{},{},{},{},false,{},{},{},{},{},{},{}",
            csv_field(name),
            key,
            unit,
            status,
            opt(s.map(|s| s.mean)),
            opt(s.map(|s| s.min)),
            opt(s.map(|s| s.median)),
            opt(s.map(|s| s.max)),
            opt(s.map(|s| s.stddev)),
            opt(s.map(|s| s.rel_stderr_pct())),
            opt(run),
        );
    };
    for e in &report.events {
        let event = e.event;
        row(
            event.name(),
            event.key(),
            event.unit(),
            status_name(&e.status),
            e.count.as_ref(),
            e.running_pct,
        );
    }
    row(
        "wall-time",
        "wall_time_ns",
        "ns",
        "counting",
        Some(&report.wall_time_ns),
        None,
    );
    for m in &report.metrics {
        let value = Summary::from_samples(vec![m.value]);
        row(m.description, m.key, "", "derived", Some(&value), None);
    }
    out
}

/// The simulated figures: (name, key, value).
fn sim_rows(run: &SimRun) -> Vec<(&'static str, &'static str, u64)> {
    let c = &run.counts;
    vec![
        ("instructions", "instructions", c.instructions),
        ("I1-read-misses", "i1_read_misses", c.i1_read_misses),
        ("data-reads", "data_reads", c.data_reads),
        ("D1-read-misses", "d1_read_misses", c.d1_read_misses),
        ("data-writes", "data_writes", c.data_writes),
        ("D1-write-misses", "d1_write_misses", c.d1_write_misses),
        (
            "LL-instruction-read-misses",
            "ll_instruction_read_misses",
            c.ll_instruction_read_misses,
        ),
        (
            "LL-data-read-misses",
            "ll_data_read_misses",
            c.ll_data_read_misses,
        ),
        (
            "LL-data-write-misses",
            "ll_data_write_misses",
            c.ll_data_write_misses,
        ),
        (
            "conditional-branches",
            "conditional_branches",
            c.conditional_branches,
        ),
        (
            "conditional-mispredicts",
            "conditional_mispredicts",
            c.conditional_mispredicts,
        ),
        (
            "indirect-branches",
            "indirect_branches",
            c.indirect_branches,
        ),
        (
            "indirect-mispredicts",
            "indirect_mispredicts",
            c.indirect_mispredicts,
        ),
        ("estimated-cycles", "estimated_cycles", run.estimated_cycles),
    ]
}

fn pct(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| 100.0 * num as f64 / den as f64)
}

fn sim_metrics(run: &SimRun) -> Vec<(&'static str, &'static str, Option<f64>)> {
    let c = &run.counts;
    vec![
        (
            "d1_miss_pct",
            "% of data accesses miss D1",
            pct(
                c.d1_read_misses + c.d1_write_misses,
                c.data_reads + c.data_writes,
            ),
        ),
        (
            "ll_miss_pct",
            "% of all accesses miss LL",
            pct(c.ll_misses(), c.instructions + c.data_reads + c.data_writes),
        ),
        (
            "branch_mispredict_pct",
            "% of branches mispredicted",
            pct(c.branch_mispredicts(), c.branches()),
        ),
        (
            "estimated_ipc",
            "instructions per estimated cycle",
            (run.estimated_cycles > 0).then(|| c.instructions as f64 / run.estimated_cycles as f64),
        ),
    ]
}

/// The cache model line of the table.
fn geometry_text(geometry: Option<&sim::CacheGeometry>) -> String {
    let Some(g) = geometry else {
        return "cache model: valgrind's auto-detection (sysfs gave none; see the warning above)"
            .to_owned();
    };
    let adjusted = match &g.ll_reported {
        Some(reported) => format!(" (sysfs: {reported}; adjusted for valgrind)"),
        None => String::new(),
    };
    format!(
        "cache model from sysfs: I1 {}, D1 {}, LL (L{}) {}{adjusted}",
        g.i1, g.d1, g.ll_level, g.ll
    )
}

fn sim_table(run: &SimRun) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n SIMULATED counts for '{}' (valgrind {}; not hardware counters)",
        quoted_command(&run.command),
        run.tool
    );
    let _ = writeln!(out, " {}\n", geometry_text(run.geometry.as_ref()));
    for (name, _, value) in sim_rows(run) {
        let _ = writeln!(
            out,
            "{:>18}   {name:<28} (simulated)",
            grouped(value as f64)
        );
    }
    let _ = writeln!(out);
    for (_, description, value) in sim_metrics(run) {
        if let Some(value) = value {
            let _ = writeln!(out, "{value:>18.3}   {description} (simulated)");
        }
    }
    let _ = writeln!(
        out,
        "\n estimated-cycles = {} (a rough model, not a measurement)",
        run.cycle_formula
    );
    let _ = writeln!(
        out,
        "{:>18.9} seconds time elapsed under valgrind (slowed down; not the real run time)\n",
        run.wall_time_ns as f64 / 1e9
    );
    out
}

fn sim_json(run: &SimRun) -> serde_json::Value {
    let counts: serde_json::Map<String, serde_json::Value> = sim_rows(run)
        .into_iter()
        .map(|(_, key, value)| (key.to_owned(), serde_json::json!(value)))
        .collect();
    let metrics: serde_json::Map<String, serde_json::Value> = sim_metrics(run)
        .into_iter()
        .map(|(key, _, value)| (key.to_owned(), serde_json::json!(value)))
        .collect();
    serde_json::json!({
        "mode": "simulated",
        "simulated": true,
        "tool": run.tool,
        "command": run.command,
        "exit_code": run.exit_code,
        "counts": counts,
        "metrics": metrics,
        "cycle_formula": run.cycle_formula,
        "cache_geometry": run.geometry,
        "notes": run.notes,
        "wall_time_under_valgrind_ns": run.wall_time_ns,
    })
}

fn sim_csv(run: &SimRun) -> String {
    let mut out = String::from(CSV_HEADER);
    for (name, key, value) in sim_rows(run) {
        let _ = writeln!(out, "{name},{key},,simulated,true,{value},,,,,,");
    }
    for (key, description, value) in sim_metrics(run) {
        if let Some(value) = value {
            let _ = writeln!(
                out,
                "{},{key},,derived,true,{value},,,,,,",
                csv_field(description)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping() {
        assert_eq!(grouped(0.0), "0");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(grouped(1000.0), "1,000");
        assert_eq!(grouped(1234567.4), "1,234,567");
        assert_eq!(grouped(-1234.0), "-1,234");
    }

    #[test]
    fn adjusted_geometry_is_shown() {
        let level = |size_bytes, ways| sim::CacheLevel {
            size_bytes,
            ways,
            line_bytes: 64,
        };
        let reported = level(36_608 * 1024, 11);
        let g = sim::CacheGeometry {
            i1: level(32 * 1024, 8),
            d1: level(48 * 1024, 12),
            ll: reported.adjusted_for_valgrind(),
            ll_level: 3,
            ll_reported: Some(reported),
        };
        let text = geometry_text(Some(&g));
        assert!(
            text.contains("LL (L3) 36 MiB 18-way 64 B lines (sysfs: 35.75 MiB 11-way"),
            "{text}"
        );
        assert!(geometry_text(None).contains("auto-detection"));
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
