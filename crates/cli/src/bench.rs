//! `frugal bench ...`: the experiments.

use std::process::ExitCode;

#[path = "bench_defer.rs"]
pub(crate) mod bench_defer;
#[path = "bench_fleet.rs"]
mod bench_fleet;
#[path = "bench_http.rs"]
mod bench_http;
#[path = "bench_io.rs"]
mod bench_io;
#[path = "bench_locality.rs"]
pub(crate) mod bench_locality;
#[path = "bench_tasks.rs"]
mod bench_tasks;

/// The experiments.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// What a deferred cleanup costs: strategies x scenarios, Go beside Rust, the claims ledger.
    Defer(bench_defer::Args),
    /// Memory per concurrent task: tokio tasks, OS threads, goroutines (article chapter 1).
    Tasks(bench_tasks::Args),
    /// The HTTP service per cleanup strategy under load: throughput, tail latency, CPU, memory.
    Http(bench_http::Args),
    /// Random 4 KiB reads at queue depth 64 through io_uring, fio beside it (article 2.5).
    Io(bench_io::Args),
    /// Rightsizing a synthetic fleet: engine-side statistics (pushdown) against pulling samples.
    Fleet(bench_fleet::Args),
    /// Memory locality: access patterns x working sets, cache/TLB misses, huge pages, NUMA
    /// (article chapter 3).
    Locality(bench_locality::Args),
}

/// Runs one experiment.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Defer(args) => bench_defer::run(args),
        Command::Tasks(args) => bench_tasks::run(args),
        Command::Http(args) => bench_http::run(args),
        Command::Io(args) => bench_io::run(args),
        Command::Fleet(args) => bench_fleet::run(args),
        Command::Locality(args) => bench_locality::run(args),
    }
}
