//! `frugal serve` (being built).

use std::process::ExitCode;

/// Arguments of `frugal serve`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `frugal serve`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`frugal serve` is not available in this build yet")
}
