//! `frugal bench ...`: the experiments.

use std::process::ExitCode;

/// The experiments.
#[derive(Debug, clap::Subcommand)]
pub enum Command {}

/// Runs one experiment.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {}
}
