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
mod ranges;
mod report;
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
    /// The main job: run the experiments and join them into one page, from cleanup cost to dollars.
    Report(report::Args),
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
        Command::Report(args) => report::run(args),
        Command::Trace(args) => trace::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                // A closed pipe (`frugal ... | head`) is the reader's choice, not our failure.
                return ExitCode::SUCCESS;
            }
            eprintln!("frugal: error: {}", one_line(&err));
            // Usage errors found after parsing exit like clap's own: 2.
            let usage = err.downcast_ref::<ranges::UsageError>().is_some();
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// The error chain on one line, `outer: cause: cause`, each cause once: a message that already
/// quotes its cause (as many library errors do) is not followed by the cause again.
fn one_line(err: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut last = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !last.is_empty() && last.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
        last = text;
    }
    out
}

/// True when the error chain contains an `EPIPE` I/O error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::one_line;

    /// An error that quotes its source in its message and also returns it from `source()`.
    #[derive(Debug)]
    struct Quoting(std::io::Error);

    impl std::fmt::Display for Quoting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot read a.csv: {}; check the path", self.0)
        }
    }

    impl std::error::Error for Quoting {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn the_os_cause_is_printed_once() {
        let os = || std::io::Error::from_raw_os_error(2);
        let quoted = anyhow::Error::new(Quoting(os())).context("rightsize failed");
        assert_eq!(
            one_line(&quoted),
            "rightsize failed: cannot read a.csv: No such file or directory (os error 2); check the path"
        );
        let chained = anyhow::Error::new(os()).context("cannot read a.csv");
        assert_eq!(
            one_line(&chained),
            "cannot read a.csv: No such file or directory (os error 2)"
        );
    }
}
