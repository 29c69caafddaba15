//! `frugal stat` (being built).

use std::process::ExitCode;

/// Arguments of `frugal stat`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `frugal stat`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`frugal stat` is not available in this build yet")
}
