//! The one command grammar for reports, and the one progress style.
//!
//! Every command that produces a report flattens [`OutputArgs`] into its arguments and ends with
//! [`emit`]:
//!
//! - stdout gets the report in `--format table|json|csv|markdown` (a terminal table by default,
//!   coloured on a terminal unless `NO_COLOR` is set or `--color never`);
//! - `--json FILE`, `--csv FILE`, `--markdown FILE` also write files, several at once (as
//!   hyperfine's `--export-*`); the files are written before stdout, so a closed pipe never
//!   loses them;
//! - `-q/--quiet` turns off progress displays and notes on stderr.
//!
//! Progress ([`bar`], [`spinner`], [`timed`]) goes to stderr, only on a terminal, in one style:
//! what is running, how far, time left.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use frugal_output::{ColorChoice, Render, Style};
use serde::Serialize;

/// What `--format` puts on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    #[default]
    Table,
    /// The versioned JSON document (the same as `--json FILE`).
    Json,
    /// One row per measurement (the same as `--csv FILE`).
    Csv,
    /// Headings, pipe tables and notes (the same as `--markdown FILE`).
    Markdown,
    /// The self-contained HTML page: only `rightsize` accepts it (the old spelling of
    /// `rightsize --html FILE`; see [`format_or_html`]), no other command parses it.
    #[value(skip)]
    Html,
}

/// `--format` for a report with an HTML page: the formats, and `html` (hidden from `--help`).
pub fn format_or_html(s: &str) -> Result<Format, String> {
    use clap::ValueEnum as _;
    if s.eq_ignore_ascii_case("html") {
        return Ok(Format::Html);
    }
    Format::from_str(s, true).map_err(|_| {
        format!("invalid value {s:?}: expected one of table, json, csv, markdown (or html)")
    })
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Color {
    /// On a terminal, unless NO_COLOR is set or TERM=dumb.
    #[default]
    Auto,
    /// Always (for `less -R`).
    Always,
    /// Never.
    Never,
}

impl From<Color> for ColorChoice {
    fn from(c: Color) -> ColorChoice {
        match c {
            Color::Auto => ColorChoice::Auto,
            Color::Always => ColorChoice::Always,
            Color::Never => ColorChoice::Never,
        }
    }
}

/// The output options every report-producing command takes.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// What to print on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table, allow_hyphen_values = true)]
    pub format: Format,
    /// Also write the report as JSON (versioned schema) to FILE (`-`: to stdout, the table then
    /// to stderr).
    #[arg(long, value_name = "FILE", value_parser = crate::ranges::output_file)]
    pub json: Option<PathBuf>,
    /// Also write the report as CSV (one row per measurement) to FILE.
    #[arg(long, value_name = "FILE", value_parser = crate::ranges::output_file)]
    pub csv: Option<PathBuf>,
    /// Also write the report as Markdown to FILE.
    #[arg(long, value_name = "FILE", value_parser = crate::ranges::output_file)]
    pub markdown: Option<PathBuf>,
    /// No progress display and no notes on stderr.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Colour the terminal table.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = Color::Auto,
          allow_hyphen_values = true)]
    pub color: Color,
}

impl OutputArgs {
    /// The style for the table on stdout.
    pub fn stdout_style(&self) -> Style {
        Style::for_stdout(self.color.into())
    }

    /// The style for text on stderr.
    pub fn stderr_style(&self) -> Style {
        Style::for_stderr(self.color.into())
    }
}

/// Writes `report` to the files asked for, then to stdout in `--format`.
///
/// `-` as a file (`--json -`, `--csv -`, `--markdown -`) means stdout: that form goes to stdout and
/// the terminal table to stderr (the old `bench defer --json -`, kept for scripts).
pub fn emit<R: Render + Serialize>(out: &OutputArgs, report: &R) -> anyhow::Result<()> {
    emit_to(out, report, None, None)
}

/// [`emit`], plus `html`: the report's HTML page to that file (`--html FILE`, for reports that
/// have one), and `stdout_file`: what would go to stdout written to that file instead (the old
/// `rightsize -o FILE`).
pub fn emit_to<R: Render + Serialize>(
    out: &OutputArgs,
    report: &R,
    html: Option<&Path>,
    stdout_file: Option<&Path>,
) -> anyhow::Result<()> {
    let is_dash = |p: &Option<PathBuf>| p.as_deref() == Some(Path::new("-"));
    let mut stdout_format = out.format;
    for (path, format) in [
        (&out.json, Format::Json),
        (&out.csv, Format::Csv),
        (&out.markdown, Format::Markdown),
    ] {
        if is_dash(path) {
            stdout_format = format;
        }
    }
    let to_file = |p: &Option<PathBuf>| p.clone().filter(|p| p != Path::new("-"));
    if let Some(path) = to_file(&out.json) {
        write_file(&path, &json(report)?)?;
    }
    if let Some(path) = to_file(&out.csv) {
        write_file(&path, &csv(report)?)?;
    }
    if let Some(path) = to_file(&out.markdown) {
        write_file(&path, &report.document().to_markdown())?;
    }
    if let Some(path) = html {
        write_file(path, &html_page(report)?)?;
    }
    if stdout_format != out.format && out.format == Format::Table && !out.quiet {
        eprint!("{}", report.document().to_text(&out.stderr_style()));
    }
    let style = match stdout_file {
        Some(_) => Style::plain(),
        None => out.stdout_style(),
    };
    let text = match stdout_format {
        Format::Table => report.document().to_text(&style),
        Format::Json => json(report)?,
        Format::Csv => csv(report)?,
        Format::Markdown => report.document().to_markdown(),
        Format::Html => html_page(report)?,
    };
    match stdout_file {
        Some(path) => write_file(path, &text),
        None => Ok(print(&text)?),
    }
}

/// The report's HTML page, or a usage error naming the forms it has.
fn html_page<R: Render>(report: &R) -> anyhow::Result<String> {
    report.html_page().ok_or_else(|| {
        crate::ranges::usage(format!(
            "the {} report has no HTML form; use --format table, json, csv or markdown",
            R::SCHEMA
        ))
    })
}

/// The report's versioned JSON, pretty, with a final newline.
pub fn json<R: Render + Serialize>(report: &R) -> anyhow::Result<String> {
    report.to_json().context("cannot serialize the report")
}

/// The report's CSV table.
pub fn csv<R: Render>(report: &R) -> anyhow::Result<String> {
    report
        .csv_table()
        .map(|t| t.to_csv())
        .ok_or_else(|| crate::ranges::usage(format!("the {} report has no CSV form", R::SCHEMA)))
}

/// Writes `text` to `path`.
pub fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes `text` to stdout and flushes it (a closed pipe surfaces as `BrokenPipe`, which `main`
/// turns into exit 0).
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Writes `report` as pretty JSON, with a final newline, to `path` (for reports that are not
/// [`Render`]: the children's one-line results and the report directory's files).
pub fn write_json<T: serde::Serialize>(path: &Path, report: &T) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report).context("cannot serialize the report")?;
    write_file(path, &(json + "\n"))
}

/// The one progress template: what runs, how far, time left.
const TEMPLATE: &str =
    "{spinner:.green} {msg:<38!} [{bar:30.cyan/blue}] {percent:>3}% {elapsed_precise} (ETA {eta})";

/// A progress bar of `len` steps on stderr; hidden when `quiet` or stderr is not a terminal.
pub fn bar(len: u64, quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(TEMPLATE)
            .expect("the progress template is valid")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A spinner for work of unknown length; hidden when `quiet` or stderr is not a terminal.
pub fn spinner(msg: impl Into<String>, quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner:.green} {msg} {elapsed_precise}")
            .expect("the spinner template is valid"),
    );
    bar.set_message(msg.into());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A bar for a run of known wall time (a load test, a timed benchmark): it fills by itself
/// from a background thread until [`Timed::finish`] or drop.
pub struct Timed {
    bar: indicatif::ProgressBar,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts a [`Timed`] bar for `total` wall time showing `msg`.
pub fn timed(total: Duration, msg: impl Into<String>, quiet: bool) -> Timed {
    use std::sync::atomic::{AtomicBool, Ordering};
    let millis = total.as_millis().max(1) as u64;
    let bar = bar(millis, quiet);
    bar.set_message(msg.into());
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let thread = (!bar.is_hidden()).then(|| {
        let (bar, stop) = (bar.clone(), stop.clone());
        let start = Instant::now();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                bar.set_position((start.elapsed().as_millis() as u64).min(millis));
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    });
    Timed { bar, stop, thread }
}

impl Timed {
    /// Stops and clears the bar.
    pub fn finish(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        self.stop_thread();
    }
}
