//! `frugal stat`: count a command's events like `perf stat`, or simulate them with `--sim`.
//!
//! The reports ([`StatReport`], [`SimReport`]) render themselves in `frugal-counters`; this file
//! is the command line. perf's conventions hold: the terminal table goes to stderr so the
//! command's own stdout stays clean, `-o FILE` writes the chosen format to FILE instead, and
//! `-x SEP` gives CSV with SEP between fields. The rest is frugal's one grammar: `--format`,
//! `--json [FILE]`, `--csv [FILE]`, `--markdown FILE`, `-q`, `--color`.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use frugal_counters::sim::{SimReport, Simulator};
use frugal_counters::{stat_command, Error, Event, StatOptions, StatReport};
use frugal_output::{Render, Style};
use serde::Serialize;

use crate::output::{Color, Format};

/// Arguments of `frugal stat`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The table goes to stderr, as perf stat's does, so the command's own \
                        stdout stays clean; JSON, CSV and Markdown go to stdout; -o FILE writes \
                        the chosen format to FILE instead.\n\nExamples:\n  frugal stat -- ls -l\n  \
                        frugal stat -r 5 -e task-clock,page-faults -- ./a.out\n  frugal stat \
                        -x ';' -- ./a.out\n  frugal stat --json run.json --csv run.csv -- \
                        ./a.out\n  frugal stat --sim --json -- ./a.out"
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
    /// Simulate instead of counting: valgrind cachegrind with cache and branch simulation.
    #[arg(long)]
    sim: bool,
    /// What to print: the table (on stderr, as perf stat), or json, csv, markdown (on stdout).
    #[arg(long, value_enum, help_heading = "Output", allow_hyphen_values = true)]
    format: Option<Format>,
    /// JSON (versioned schema): with FILE, also write it there; without, print it instead of
    /// the table (to stdout, or to -o).
    #[arg(long, value_name = "FILE", num_args = 0..=1, help_heading = "Output",
          value_parser = crate::ranges::output_file)]
    json: Option<Option<PathBuf>>,
    /// CSV (one row per event, wall time and metric): with FILE, also write it there; without,
    /// print it instead of the table (to stdout, or to -o).
    #[arg(long, value_name = "FILE", num_args = 0..=1, help_heading = "Output",
          value_parser = crate::ranges::output_file)]
    csv: Option<Option<PathBuf>>,
    /// Also write the report as Markdown to FILE.
    #[arg(long, value_name = "FILE", help_heading = "Output",
          value_parser = crate::ranges::output_file)]
    markdown: Option<PathBuf>,
    /// CSV with SEP between fields, as `perf stat -x SEP` (one ASCII character; also used by
    /// --csv FILE).
    #[arg(short = 'x', long = "field-separator", value_name = "SEP", help_heading = "Output",
          allow_hyphen_values = true, value_parser = separator)]
    separator: Option<u8>,
    /// Write the chosen format to FILE instead of stdout (stderr for the table).
    #[arg(short = 'o', long = "output", value_name = "FILE", help_heading = "Output",
          value_parser = crate::ranges::output_file)]
    output: Option<PathBuf>,
    /// No notes on stderr (the simulator's set-up notes); the report itself is still printed.
    #[arg(short = 'q', long, help_heading = "Output")]
    quiet: bool,
    /// Colour the table.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = Color::Auto,
          allow_hyphen_values = true, help_heading = "Output")]
    color: Color,
    /// The command to run and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// `-x SEP`: one ASCII character, not a quote or a line break.
fn separator(s: &str) -> Result<u8, String> {
    match s.as_bytes() {
        [b'"' | b'\n' | b'\r'] => Err(format!("{s:?} cannot separate CSV fields")),
        [b] if b.is_ascii() => Ok(*b),
        _ => Err(format!(
            "the separator must be one ASCII character, as perf's -x (got {s:?})"
        )),
    }
}

impl Args {
    /// The format of the main output: `--format`, or what `--json`/`--csv` without a file or
    /// `-x` ask for; two different answers are a usage error.
    fn main_format(&self) -> anyhow::Result<Format> {
        let asked = [
            self.format.map(|f| ("--format", f)),
            matches!(self.json, Some(None)).then_some(("--json", Format::Json)),
            matches!(self.csv, Some(None)).then_some(("--csv", Format::Csv)),
            self.separator.map(|_| ("-x", Format::Csv)),
        ];
        let mut chosen: Option<(&str, Format)> = None;
        for (flag, format) in asked.into_iter().flatten() {
            match chosen {
                Some((first, f)) if f != format => {
                    return Err(crate::ranges::usage(format!(
                        "{first} and {flag} ask for two different outputs; give a FILE to one \
                         of them (--json FILE, --csv FILE) or drop one"
                    )));
                }
                Some(_) => {}
                None => chosen = Some((flag, format)),
            }
        }
        Ok(chosen.map_or(Format::Table, |(_, f)| f))
    }
}

/// Runs `frugal stat`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let format = args.main_format()?;
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
        if !args.quiet {
            for note in simulator.notes() {
                eprintln!("frugal stat: {note}");
            }
        }
        let run = match simulator.run_command(program, rest) {
            Ok(run) => run,
            Err(err) => return start_failure(err),
        };
        let exit = run.exit_code;
        emit(&args, format, &SimReport::new(run))?;
        return Ok(exit_code(exit));
    }

    let options = StatOptions {
        events,
        repeats: args.repeat,
    };
    let report: StatReport = match stat_command(program, rest, &options) {
        Ok(report) => report,
        Err(err) => return start_failure(err),
    };
    emit(&args, format, &report)?;
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

/// The report's CSV with `-x`'s separator (`,` without).
fn csv<R: Render>(args: &Args, report: &R) -> anyhow::Result<String> {
    let table = report.csv_table().context("the report has no CSV form")?;
    Ok(table.to_csv_with(args.separator.unwrap_or(b',')))
}

/// Writes the files asked for, then the report in `format` to `-o FILE`, or to stderr (the
/// table, as perf stat) or stdout (the other formats).
fn emit<R: Render + Serialize>(args: &Args, format: Format, report: &R) -> anyhow::Result<()> {
    if let Some(Some(path)) = &args.json {
        crate::output::write_file(path, &crate::output::json(report)?)?;
    }
    if let Some(Some(path)) = &args.csv {
        crate::output::write_file(path, &csv(args, report)?)?;
    }
    if let Some(path) = &args.markdown {
        crate::output::write_file(path, &report.document().to_markdown())?;
    }
    let table = |style: &Style| format!("\n{}", report.document().to_text(style));
    match (&args.output, format) {
        (Some(path), format) => {
            let text = match format {
                Format::Table => table(&Style::plain()),
                other => text(args, other, report)?,
            };
            crate::output::write_file(path, &text)
        }
        (None, Format::Table) => {
            let text = table(&Style::for_stderr(args.color.into()));
            std::io::stderr()
                .write_all(text.as_bytes())
                .context("cannot write the table to stderr")
        }
        (None, other) => Ok(crate::output::print(&text(args, other, report)?)?),
    }
}

/// The report in a format other than the table.
fn text<R: Render + Serialize>(args: &Args, format: Format, report: &R) -> anyhow::Result<String> {
    match format {
        Format::Json => crate::output::json(report),
        Format::Csv => csv(args, report),
        Format::Markdown => Ok(report.document().to_markdown()),
        Format::Table => unreachable!("the table is written by emit"),
        Format::Html => Err(crate::ranges::usage(
            "frugal stat has no HTML form; use --format table, json, csv or markdown",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        Cli::try_parse_from(std::iter::once("stat").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn json_and_csv_take_an_optional_file() {
        let a = parse(&["--json", "--", "true"]).unwrap();
        assert!(matches!(a.json, Some(None)));
        assert_eq!(a.main_format().unwrap(), Format::Json);
        let a = parse(&["--json", "r.json", "--csv", "r.csv", "--", "true"]).unwrap();
        assert_eq!(a.json, Some(Some(PathBuf::from("r.json"))));
        assert_eq!(a.csv, Some(Some(PathBuf::from("r.csv"))));
        assert_eq!(a.main_format().unwrap(), Format::Table);
        let a = parse(&["--csv", "-e", "page-faults", "--", "true"]).unwrap();
        assert!(matches!(a.csv, Some(None)));
        assert_eq!(a.events.as_deref(), Some("page-faults"));
    }

    #[test]
    fn two_stdout_formats_are_a_usage_error() {
        let a = parse(&["--json", "--csv", "--", "true"]).unwrap();
        assert!(a.main_format().is_err());
        let a = parse(&["--format", "json", "-x", ";", "--", "true"]).unwrap();
        assert!(a.main_format().is_err());
        let a = parse(&["--format", "csv", "-x", ";", "--csv", "--", "true"]).unwrap();
        assert_eq!(a.main_format().unwrap(), Format::Csv);
        assert_eq!(a.separator, Some(b';'));
    }

    #[test]
    fn separators_are_one_ascii_character() {
        assert_eq!(separator(","), Ok(b','));
        assert_eq!(separator("\t"), Ok(b'\t'));
        assert!(separator("").is_err());
        assert!(separator(";;").is_err());
        assert!(separator("\"").is_err());
        assert!(separator("é").is_err());
    }
}
