//! `frugal load` (being built).

use std::process::ExitCode;

/// Arguments of `frugal load`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `frugal load`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`frugal load` is not available in this build yet")
}
