//! `frugal` — what does resource cleanup cost in hardware, and how small a machine does my service
//! really need?
//!
//! The binary is thin: it parses the command line, calls one of the library crates and renders the
//! typed report as a terminal table, JSON, CSV or HTML. Each subcommand lives in its own module.

#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

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
#[command(name = "frugal", version, about, long_about = None, propagate_version = true,
          after_help = EXIT_CODES)]
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
    /// Print a shell completion script: `frugal completions bash > /etc/bash_completion.d/frugal`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (frugal.1), or write one page per command to DIR.
    Man {
        /// Write frugal.1, frugal-bench.1, frugal-bench-defer.1, ... to DIR instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

/// The exit statuses, for `--help` and the man page.
const EXIT_CODES: &str = "\
Output (every command that produces a report): a table on stdout; --format table|json|csv|markdown;
--json FILE, --csv FILE, --markdown FILE (and --html FILE where the report has one) to also write
files, several at once; -q for no progress; --color auto|always|never (NO_COLOR is honoured).

Exit status:
  0    success
  1    runtime error, or a run that measured nothing, or a check that failed (load's error
       rate, rightsize --strict, a failed report step); the message says which
  2    usage error: an unknown flag, a value out of range, a file argument that cannot be used
  126  frugal stat: the command is not executable; 127: it was not found (as a shell)
  other  frugal stat returns the measured command's own exit status";

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
        Command::Completions { shell } => completions(shell),
        Command::Man { dir } => man(dir.as_deref()),
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

/// `frugal completions SHELL`: the script on stdout.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "frugal", &mut script);
    output::print(&String::from_utf8_lossy(&script))?;
    Ok(ExitCode::SUCCESS)
}

/// `frugal man [--dir DIR]`: frugal.1 on stdout, or every command's page written to DIR.
fn man(dir: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    let cmd = Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("cannot write the man pages to {}", dir.display()))?;
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .context("cannot render the man page")?;
            output::print(&String::from_utf8_lossy(&page))?;
        }
    }
    Ok(ExitCode::SUCCESS)
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
    use super::Cli;
    use clap::CommandFactory;

    /// clap's own consistency checks over every command and flag (duplicate names, conflicts
    /// naming unknown arguments, bad defaults, ...).
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn completions_and_man_pages_name_every_command() {
        let commands = [
            "stat",
            "bench",
            "serve",
            "load",
            "rightsize",
            "report",
            "trace",
        ];
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
            clap_complete::Shell::PowerShell,
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "frugal", &mut out);
            let script = String::from_utf8(out).unwrap();
            for c in commands {
                assert!(script.contains(c), "{shell:?} completion lacks {c}");
            }
        }
        let dir = tempfile::tempdir().unwrap();
        clap_mangen::generate_to(Cli::command(), dir.path()).unwrap();
        let page = std::fs::read_to_string(dir.path().join("frugal-bench-defer.1")).unwrap();
        assert!(page.contains(".TH frugal-bench-defer 1"), "{page}");
        let top = std::fs::read_to_string(dir.path().join("frugal.1")).unwrap();
        assert!(
            top.contains("Exit status"),
            "the exit codes are in the man page"
        );
    }

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
