//! `frugal bench ...`: the experiments.

use std::process::ExitCode;

pub(crate) mod defer;
mod fleet;
mod http;
mod io;
pub(crate) mod llc;
pub(crate) mod locality;
mod tasks;

/// The experiments.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// What a deferred cleanup costs: strategies x scenarios, Go beside Rust, the claims ledger.
    Defer(defer::Args),
    /// Memory per concurrent task: tokio tasks, OS threads, goroutines (article chapter 1).
    Tasks(tasks::Args),
    /// The HTTP service per cleanup strategy under load: throughput, tail latency, CPU, memory.
    Http(http::Args),
    /// Random 4 KiB reads at queue depth 64 through io_uring, fio beside it (article 2.5).
    Io(io::Args),
    /// Rightsizing a synthetic fleet: engine-side statistics (pushdown) against pulling samples.
    Fleet(fleet::Args),
    /// Memory locality: access patterns x working sets, cache/TLB misses, huge pages, NUMA
    /// (article chapter 3).
    Locality(locality::Args),
    /// The service's last-level cache misses per request, 0 vs 10 extra deferred calls,
    /// simulated under valgrind (article 4.2).
    Llc(llc::Args),
}

/// Runs one experiment.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Defer(args) => defer::run(args),
        Command::Tasks(args) => tasks::run(args),
        Command::Http(args) => http::run(args),
        Command::Io(args) => io::run(args),
        Command::Fleet(args) => fleet::run(args),
        Command::Locality(args) => locality::run(args),
        Command::Llc(args) => llc::run(args),
    }
}
