//! `frugal rightsize` (being built).

use std::process::ExitCode;

/// Arguments of `frugal rightsize`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `frugal rightsize`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`frugal rightsize` is not available in this build yet")
}
