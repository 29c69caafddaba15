//! What every subcommand does with its report: the terminal text to stdout, JSON to a file.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Writes `text` to stdout and flushes it (a closed pipe surfaces as `BrokenPipe`, which `main`
/// turns into exit 0).
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Writes `report` as pretty JSON, with a final newline, to `path`.
pub fn write_json<T: serde::Serialize>(path: &Path, report: &T) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report).context("cannot serialize the report")?;
    std::fs::write(path, json + "\n").with_context(|| format!("cannot write {}", path.display()))
}
