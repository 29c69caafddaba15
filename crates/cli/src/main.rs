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
       rate, rightsize --strict, a failed report step); the message says which. An input
       file that cannot be read (missing, unreadable, a directory, empty, malformed) is a
       runtime error, as in curl, grep and perf
  2    usage error, found before anything runs: an unknown flag, a value out of range or
       an unknown name (the message lists the valid ones), an output file that is a
       directory or in a directory that does not exist
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

    /// Flags that take free text, where a value starting with `-` is not a number the range
    /// parsers would refuse but text: `--query-cpu -5` is a (bad) PromQL expression, and
    /// letting these take hyphen values would make `--query-cpu --demo` swallow the flag.
    /// Path arguments are recognised by their type (clap's value hint) and need no entry.
    const FREE_TEXT: &[(&str, &str)] = &[
        ("stat", "--events"),
        ("rightsize", "--prometheus"),
        ("rightsize", "--query-cpu"),
        ("rightsize", "--query-memory"),
        ("rightsize", "--query-instances"),
        ("rightsize", "--query-rps"),
        ("rightsize", "--query-latency"),
        ("rightsize", "--workload-label"),
        ("rightsize", "--instance-type"),
        ("rightsize", "--instance-type-label"),
        ("rightsize", "--verify-workload"),
        ("rightsize", "--workload"),
        ("bench fleet", "--url"),
    ];

    /// Numeric flags where 0 is valid, each with its meaning.
    const ZERO_OK: &[(&str, &str)] = &[
        ("serve", "--work-us"),        // no CPU work per request
        ("serve", "--hold-ms"),        // no hold
        ("serve", "--release-us"),     // one yield instead of a timed reset
        ("serve", "--response-bytes"), // an empty body
        ("serve", "--extra-defers"),   // no extra deferred calls (the baseline)
        ("bench llc", "--defers"),     // the baseline of the comparison
        ("load", "--warmup"),          // no warm-up
        ("load", "--max-error-rate"),  // no failed request allowed
        ("bench http", "--warmup"),
        ("bench http", "--work-us"),
        ("bench http", "--response-bytes"),
        ("bench http", "--max-error-rate"),
        ("bench io", "--seed"),             // any seed
        ("rightsize", "--headroom"),        // size for the percentile itself
        ("rightsize", "--memory-headroom"), // size for the peak itself
        ("rightsize", "--min-hours"),       // no minimum
        ("rightsize", "--verify-warmup"),   // no warm-up
    ];

    /// Every value-taking, visible, named argument of every (sub)command: the command's path
    /// (`bench http`), the flag as typed (`--rate`, or `-x` without a long name), the argument.
    fn value_flags() -> Vec<(String, String, clap::Arg)> {
        fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String, clap::Arg)>) {
            for arg in cmd.get_arguments() {
                if arg.is_positional() || arg.is_hide_set() || !arg.get_action().takes_values() {
                    continue;
                }
                let flag = match (arg.get_long(), arg.get_short()) {
                    (Some(long), _) => format!("--{long}"),
                    (None, Some(short)) => format!("-{short}"),
                    (None, None) => continue,
                };
                out.push((path.to_owned(), flag, arg.clone()));
            }
            for sub in cmd.get_subcommands() {
                let path = format!("{path} {}", sub.get_name()).trim().to_owned();
                walk(sub, &path, out);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut out = Vec::new();
        walk(&cmd, "", &mut out);
        out
    }

    fn is_path(arg: &clap::Arg) -> bool {
        matches!(
            arg.get_value_hint(),
            clap::ValueHint::AnyPath | clap::ValueHint::FilePath | clap::ValueHint::DirPath
        )
    }

    /// `frugal PATH FLAG VALUE`, parsed (nothing runs). A value the flag accepts is `Ok`, also
    /// when a check after parsing fails (the arguments the command requires are not given):
    /// values are parsed before those checks.
    fn parse(path: &str, flag: &str, value: &str) -> Result<(), clap::Error> {
        use clap::error::ErrorKind::*;
        let argv = std::iter::once("frugal")
            .chain(path.split_whitespace())
            .chain([flag, value]);
        match Cli::command().try_get_matches_from(argv) {
            Err(e) if matches!(e.kind(), InvalidValue | ValueValidation | UnknownArgument) => {
                Err(e)
            }
            _ => Ok(()),
        }
    }

    /// `-5` after any flag that takes a value (paths and free text aside) reaches the flag's
    /// value parser: the error names the flag and says what is wrong with the value, instead of
    /// clap's "unexpected argument '-5'" and its advice to write `-- -5` (which would make -5 a
    /// positional argument). A new flag without `allow_hyphen_values` fails here.
    #[test]
    fn a_negative_value_reaches_every_flags_parser() {
        let mut failures = Vec::new();
        let mut checked = 0;
        for (path, flag, arg) in value_flags() {
            if is_path(&arg) || FREE_TEXT.contains(&(path.as_str(), flag.as_str())) {
                continue;
            }
            checked += 1;
            let err = match parse(&path, &flag, "-5") {
                Ok(()) => continue, // -5 reached the parser and is a valid value
                Err(err) => err,
            };
            let text = err.to_string();
            use clap::error::ErrorKind::*;
            let ok = matches!(err.kind(), InvalidValue | ValueValidation)
                && text.contains(&format!("'{flag}"));
            if !ok {
                failures.push(format!("frugal {path} {flag} -5: {:?}: {text}", err.kind()));
            }
        }
        assert!(checked > 80, "only {checked} flags found");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        for (path, flag) in FREE_TEXT {
            assert!(
                value_flags().iter().any(|(p, f, _)| p == path && f == flag),
                "FREE_TEXT names {path} {flag}, which does not exist"
            );
        }
    }

    /// The bad values tried for a numeric flag of this value type: zero, negative, not a
    /// number, absurdly large. `None`: not a numeric flag.
    fn bad_values(arg: &clap::Arg) -> Option<[&'static str; 4]> {
        use std::any::TypeId;
        let id = arg.get_value_parser().type_id();
        // (`u8` is `stat -x`'s separator character, not a number.)
        let whole = [
            TypeId::of::<u16>(),
            TypeId::of::<u32>(),
            TypeId::of::<u64>(),
            TypeId::of::<usize>(),
            TypeId::of::<i32>(),
            TypeId::of::<i64>(),
        ];
        if whole.iter().any(|t| id == *t) {
            Some(["0", "-5", "NaN", "99999999999999999999"])
        } else if id == TypeId::of::<f64>() {
            Some(["0", "-5", "NaN", "1e300"])
        } else if id == TypeId::of::<std::time::Duration>() {
            Some(["0s", "-5s", "NaN", "99999999999d"])
        } else if id == TypeId::of::<(String, f64)>() {
            Some(["m7g=0", "m7g=-5", "m7g=NaN", "m7g=1e300"])
        } else {
            None
        }
    }

    /// The misuse table, generated: every numeric flag of every subcommand (found by its value
    /// type) refuses zero (unless [`ZERO_OK`] says what 0 means), a negative value, a
    /// non-number and an absurdly large one, at parse time (exit 2), with one line that names
    /// the flag, states the range ("must be ...") and does not echo a 300-digit number. A new
    /// numeric flag is covered without editing this test; `tests/cli/misuse.rs` runs the
    /// binary for a hand-picked table of the same.
    #[test]
    fn every_numeric_flag_states_its_range() {
        let mut failures = Vec::new();
        let mut flags = 0;
        let mut zero_ok_seen = Vec::new();
        for (path, flag, arg) in value_flags() {
            let Some(values) = bad_values(&arg) else {
                continue;
            };
            flags += 1;
            let zero_ok = ZERO_OK.contains(&(path.as_str(), flag.as_str()));
            for (i, value) in values.into_iter().enumerate() {
                let case = format!("frugal {path} {flag} {value}");
                match parse(&path, &flag, value) {
                    Ok(()) if i == 0 && zero_ok => zero_ok_seen.push((path.clone(), flag.clone())),
                    Ok(()) => failures.push(format!("{case}: accepted")),
                    Err(_) if i == 0 && zero_ok => {
                        failures.push(format!("{case}: refused, but ZERO_OK lists it"))
                    }
                    Err(err) => {
                        let text = err.to_string();
                        let lines: Vec<&str> = text
                            .lines()
                            .filter(|l| {
                                !l.trim().is_empty() && !l.starts_with("For more information")
                            })
                            .collect();
                        let fine = err.kind() == clap::error::ErrorKind::ValueValidation
                            && lines.len() == 1
                            && lines[0].contains(&format!("'{flag}"))
                            && lines[0].contains("must be")
                            && lines[0].len() < 400;
                        if !fine {
                            failures.push(format!("{case}: {:?}: {text}", err.kind()));
                        }
                    }
                }
            }
        }
        assert!(flags > 60, "only {flags} numeric flags found");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        for (path, flag) in ZERO_OK {
            assert!(
                zero_ok_seen.iter().any(|(p, f)| p == path && f == flag),
                "ZERO_OK names {path} {flag}, which is not a numeric flag taking 0"
            );
        }
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
