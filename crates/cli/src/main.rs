//! `frugal` — what does resource cleanup cost in hardware, and how small a machine does my service
//! really need?
//!
//! The binary is thin: it parses the command line, calls one of the library crates and renders the
//! typed report as a terminal table, JSON, CSV or HTML. Each subcommand lives in its own module.

#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[allow(unsafe_code)] // the counting global allocator: `GlobalAlloc` is an unsafe trait
mod alloc_count;
mod bench;
mod load;
mod output;
mod rightsize;
mod serve;
mod stat;
mod trace;

/// Command-line interface of `frugal`.
#[derive(Debug, Parser)]
#[command(name = "frugal", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Count hardware and software events of a command, like `perf stat` (simulated with --sim).
    Stat(stat::Args),
    /// Run an experiment: defer cost, task memory, HTTP service.
    #[command(subcommand)]
    Bench(bench::Command),
    /// Run the HTTP service whose per-request cleanup strategy is selectable.
    Serve(serve::Args),
    /// Drive an HTTP server with N connections, closed-loop or at a constant rate.
    Load(load::Args),
    /// Recommend a cheaper instance type from utilization data, with risk and savings.
    Rightsize(rightsize::Args),
    /// Count a process's defers with bpftrace (USDT probes, or Go's runtime with --go).
    Trace(trace::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Stat(args) => stat::run(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Serve(args) => serve::run(args),
        Command::Load(args) => load::run(args),
        Command::Rightsize(args) => rightsize::run(args),
        Command::Trace(args) => trace::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                // A closed pipe (`frugal ... | head`) is the reader's choice, not our failure.
                return ExitCode::SUCCESS;
            }
            eprintln!("frugal: error: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// True when the error chain contains an `EPIPE` I/O error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
