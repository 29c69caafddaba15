//! The misuse table: every subcommand with each numeric flag at 0, negative, not a number and
//! absurdly large, and every file argument missing, unreadable, a directory, empty or binary.
//!
//! Whatever the mistake: no panic, nothing on stdout (no result printed as if measured), exit
//! status 2 for a usage error and 1 for a runtime error, and one clear line saying what is wrong.
//! Every case is bounded: a command that starts running instead of refusing is killed and fails
//! the test.
//!
//! The numeric flags here are hand-picked per subcommand (every subcommand has some); the unit
//! tests in `crates/cli/src/main.rs` walk `Cli::command()` and check every value-taking flag of
//! every subcommand at parse time, so a new flag is covered without editing this table.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::{frugal, output_within};

/// What kind of value a flag takes, which decides the bad values tried.
#[derive(Clone, Copy)]
enum Kind {
    /// A whole number.
    Count,
    /// A real number.
    Real,
    /// A duration (`10s`).
    Duration,
    /// A size in bytes (`64M`).
    Size,
    /// `FAMILY=X`.
    PerfFactor,
}

/// One numeric flag: the command line before it, the flag, its kind, whether 0 is valid, and the
/// arguments after it (a positional the subcommand needs).
struct Flag {
    before: &'static [&'static str],
    flag: &'static str,
    kind: Kind,
    zero_ok: bool,
    after: &'static [&'static str],
}

const fn flag(before: &'static [&'static str], flag: &'static str, kind: Kind) -> Flag {
    Flag {
        before,
        flag,
        kind,
        zero_ok: false,
        after: &[],
    }
}

const fn zero_ok(before: &'static [&'static str], flag: &'static str, kind: Kind) -> Flag {
    Flag {
        before,
        flag,
        kind,
        zero_ok: true,
        after: &[],
    }
}

const STAT: &[&str] = &["stat"];
const TASKS: &[&str] = &["bench", "tasks"];
const HTTP: &[&str] = &["bench", "http", "--quick"];
const IO: &[&str] = &["bench", "io", "--file", "/nonexistent-frugal-dir/x.dat"];
const SERVE: &[&str] = &["serve"];
const LOAD: &[&str] = &["load", "http://127.0.0.1:9/"];
const RIGHTSIZE: &[&str] = &["rightsize", "--demo"];
const RS_PROM: &[&str] = &["rightsize", "--prometheus", "http://127.0.0.1:9"];
const TRACE: &[&str] = &["trace"];
const LOCALITY: &[&str] = &["bench", "locality", "--no-sim"];
const FLEET: &[&str] = &["bench", "fleet"];
const REPORT: &[&str] = &["report", "--quick"];

/// Every numeric flag of every subcommand.
fn flags() -> Vec<Flag> {
    use Kind::*;
    let mut stat_r = flag(STAT, "-r", Count);
    stat_r.after = &["--", "true"];
    // A target, so that an accepted value would start tracing (and fail the time limit).
    let trace = |f: &'static str, kind: Kind| Flag {
        after: &["--", "true"],
        ..flag(TRACE, f, kind)
    };
    let mut fleet_end = flag(FLEET, "--end", Count);
    fleet_end.after = &["--url", "http://127.0.0.1:9"];
    let mut hdr_interval = flag(LOAD, "--hdr-interval", Duration);
    hdr_interval.after = &["--hdr-log", "/nonexistent-frugal-dir/x.hlog"];
    vec![
        stat_r,
        flag(TRACE, "--pid", Count),
        trace("--duration", Duration),
        trace("--interval", Duration),
        flag(LOCALITY, "--sizes", Size),
        flag(LOCALITY, "--thp-size", Size),
        flag(FLEET, "--workloads", Count),
        flag(FLEET, "--days", Real),
        flag(FLEET, "--interval", Duration),
        flag(FLEET, "--repeats", Count),
        flag(FLEET, "--timeout", Duration),
        fleet_end,
        flag(REPORT, "--rps", Real),
        flag(HTTP, "-r", Count),
        zero_ok(HTTP, "--max-error-rate", Real),
        zero_ok(IO, "--seed", Count),
        zero_ok(SERVE, "--release-us", Count),
        flag(SERVE, "--send-timeout", Duration),
        zero_ok(LOAD, "--max-error-rate", Real),
        hdr_interval,
        flag(RIGHTSIZE, "--top", Count),
        flag(RS_PROM, "--pushdown-max-steps", Count),
        flag(RS_PROM, "--max-response-mib", Count),
        flag(TASKS, "-n", Count),
        flag(HTTP, "-c", Count),
        flag(HTTP, "-d", Duration),
        zero_ok(HTTP, "--warmup", Duration),
        flag(HTTP, "--rate", Real),
        zero_ok(HTTP, "--work-us", Count),
        zero_ok(HTTP, "--response-bytes", Count),
        flag(HTTP, "--workers", Count),
        flag(HTTP, "-t", Count),
        flag(IO, "--size", Size),
        flag(IO, "--qd", Count),
        flag(IO, "--bs", Size),
        flag(IO, "-d", Duration),
        zero_ok(SERVE, "--work-us", Count),
        zero_ok(SERVE, "--hold-ms", Count),
        zero_ok(SERVE, "--response-bytes", Count),
        flag(SERVE, "--workers", Count),
        flag(SERVE, "--lease-pool", Count),
        flag(SERVE, "--deadline", Duration),
        flag(SERVE, "--header-timeout", Duration),
        flag(LOAD, "-c", Count),
        flag(LOAD, "-d", Duration),
        flag(LOAD, "--rate", Real),
        zero_ok(LOAD, "--warmup", Duration),
        flag(LOAD, "--timeout", Duration),
        flag(LOAD, "-t", Count),
        flag(RS_PROM, "--since", Duration),
        flag(RS_PROM, "--step", Duration),
        flag(RS_PROM, "--prometheus-timeout", Duration),
        flag(RIGHTSIZE, "--percentile", Real),
        zero_ok(RIGHTSIZE, "--headroom", Real),
        zero_ok(RIGHTSIZE, "--memory-headroom", Real),
        flag(RIGHTSIZE, "--sla", Real),
        flag(RIGHTSIZE, "--latency-target-ms", Real),
        zero_ok(RIGHTSIZE, "--min-hours", Real),
        flag(RIGHTSIZE, "--min-windows", Count),
        flag(RIGHTSIZE, "--verify-duration", Duration),
        zero_ok(RIGHTSIZE, "--verify-warmup", Duration),
        flag(RIGHTSIZE, "--perf-factor", PerfFactor),
    ]
}

/// The bad values of a kind: (label, value, is it the zero case).
fn bad_values(kind: Kind) -> Vec<(&'static str, String, bool)> {
    let (zero, negative, nan, huge) = match kind {
        Kind::Count => ("0", "-5", "NaN", "99999999999999999999"),
        Kind::Real => ("0", "-5", "NaN", "1e300"),
        Kind::Duration => ("0s", "-5s", "NaN", "99999999999d"),
        Kind::Size => ("0", "-5", "NaN", "99999999999G"),
        Kind::PerfFactor => ("m7g=0", "m7g=-5", "m7g=NaN", "m7g=1e300"),
    };
    vec![
        ("zero", zero.to_owned(), true),
        ("negative", negative.to_owned(), false),
        ("not a number", nan.to_owned(), false),
        ("absurdly large", huge.to_owned(), false),
    ]
}

/// What a run of `frugal` did.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `frugal args`, killing it (and failing) if it has not exited within `limit`: a misuse
/// must be refused at once, not measured.
fn run(args: &[String], limit: Duration) -> Outcome {
    let out = output_within(frugal().args(args), limit).unwrap_or_else(|| {
        panic!(
            "`frugal {}` ran for {limit:?} instead of refusing",
            args.join(" ")
        )
    });
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

/// The lines that say something (clap's closing hint aside).
fn message_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("For more information, try"))
        .collect()
}

/// Checks the rules for one refused invocation; returns a description of what is wrong, if
/// anything.
fn check(args: &[String], want_code: i32, want_text: &[&str]) -> Option<String> {
    let out = run(args, Duration::from_secs(20));
    let shown = format!(
        "`frugal {}`: exit {:?}\n  stdout: {:?}\n  stderr: {:?}",
        args.join(" "),
        out.code,
        out.stdout,
        out.stderr
    );
    let lines = message_lines(&out.stderr);
    let problem = if out.stderr.contains("panicked") || out.code == Some(101) {
        Some("panicked")
    } else if out.code != Some(want_code) {
        Some("wrong exit status")
    } else if !out.stdout.is_empty() {
        Some("printed a result")
    } else if lines.len() != 1 {
        Some("not one line")
    } else if !(lines[0].starts_with("error: ") || lines[0].starts_with("frugal: error: ")) {
        Some("the line is not an error")
    } else if !want_text.iter().any(|t| lines[0].contains(t)) {
        Some("the line does not say what is wrong")
    } else if lines[0].len() > 500 {
        // `report --rps 1e300` once echoed the number in three hundred digits.
        Some("a line of more than 500 characters")
    } else if lines[0].contains("'-- -") {
        Some("suggests `-- VALUE`, which makes the value a positional argument")
    } else {
        None
    };
    problem.map(|p| format!("{p}: {shown}"))
}

fn strings(parts: &[&[&str]]) -> Vec<String> {
    parts
        .iter()
        .flat_map(|p| p.iter().map(|s| s.to_string()))
        .collect()
}

#[test]
fn every_numeric_flag_refuses_zero_negative_nan_and_huge_values() {
    let mut failures = Vec::new();
    let mut cases = 0;
    for f in flags() {
        for (label, value, is_zero) in bad_values(f.kind) {
            if is_zero && f.zero_ok {
                continue;
            }
            cases += 1;
            let args = strings(&[f.before, &[f.flag, &value], f.after]);
            // Every range message says "must be"; a block size that is a size but not a power
            // of two says so.
            if let Some(problem) = check(&args, 2, &["must be", "power of two"]) {
                failures.push(format!("{} {label}: {problem}", f.flag));
            }
        }
    }
    assert!(cases > 220, "only {cases} cases");
    assert!(
        failures.is_empty(),
        "{} of {cases} misuses handled wrongly:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The kinds of bad file, made in `dir`.
fn bad_files(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let empty = dir.join("empty.csv");
    std::fs::write(&empty, b"").unwrap();
    let binary = dir.join("binary.dat");
    // Not UTF-8, NUL bytes, no line structure: 8 KiB of a fixed pseudo-random sequence.
    let mut x: u32 = 0x1234_5678;
    let bytes: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(&binary, bytes).unwrap();
    vec![
        ("missing", dir.join("missing.csv")),
        // Reading /proc/self/mem at offset 0 fails (EIO) even for root, for whom a mode-000 file
        // is readable.
        ("unreadable", PathBuf::from("/proc/self/mem")),
        ("a directory", dir.to_path_buf()),
        ("empty", empty),
        ("binary", binary),
    ]
}

#[test]
fn every_file_argument_refuses_bad_files_with_one_line() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut failures = Vec::new();
    for (what, path) in bad_files(dir.path()) {
        let p = path.to_str().expect("utf-8 path").to_owned();
        // Input files: runtime errors (exit 1) naming the problem.
        let mut inputs: Vec<(Vec<String>, &[&str])> = vec![
            (
                strings(&[&["rightsize"], &[&p]]),
                &[
                    "cannot read",
                    "empty file",
                    "unknown column",
                    "invalid UTF-8",
                    "line 1",
                ],
            ),
            (
                strings(&[&["rightsize", "--demo", "--catalog"], &[&p]]),
                &[
                    "cannot read",
                    "catalog",
                    "stream did not contain valid UTF-8",
                ],
            ),
        ];
        // load merge's logs and report --from's directory: the one line names the file (each
        // kind of bad file has its own message).
        let named: &[&str] = &[&p];
        inputs.push((strings(&[&["load", "merge"], &[&p]]), named));
        inputs.push((strings(&[&["report", "--from"], &[&p]]), named));
        // trace's command: none of these is a program, a usage error (exit 2) naming it.
        if let Some(problem) = check(&strings(&[&["trace", "--"], &[&p]]), 2, named) {
            failures.push(format!("{what}: {problem}"));
        }
        // bench io creates a missing file and reads any bytes: only the others are misuse.
        if matches!(what, "unreadable" | "a directory" | "empty") {
            inputs.push((
                strings(&[&["bench", "io", "-d", "100ms", "--file"], &[&p]]),
                &["not a regular file", "holds 0 bytes"],
            ));
        }
        for (args, text) in inputs {
            if let Some(problem) = check(&args, 1, text) {
                failures.push(format!("{what}: {problem}"));
            }
        }
    }
    // Output files: a directory, or a file in a missing directory, is refused before anything
    // runs (exit 2).
    let d = dir.path().to_str().unwrap().to_owned();
    let nowhere = dir
        .path()
        .join("missing-dir/out.json")
        .to_str()
        .unwrap()
        .to_owned();
    for out in [&d, &nowhere] {
        let cases: Vec<Vec<String>> = vec![
            strings(&[&["stat", "-o"], &[out], &["--", "true"]]),
            strings(&[&["bench", "defer", "--quick", "--json"], &[out]]),
            strings(&[&["bench", "tasks", "-n", "10", "--json"], &[out]]),
            strings(&[&["bench", "http", "--quick", "--json"], &[out]]),
            strings(&[&["bench", "io", "--json"], &[out]]),
            strings(&[&["load", "http://127.0.0.1:9/", "--json"], &[out]]),
            strings(&[&["rightsize", "--demo", "-o"], &[out]]),
            strings(&[&["rightsize", "--write-sample"], &[out]]),
        ];
        for args in cases {
            if let Some(problem) = check(&args, 2, &["is a directory", "does not exist"]) {
                failures.push(format!("output: {problem}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} file misuses handled wrongly:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn usage_errors_found_after_parsing_exit_2() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("x.dat");
    let f = file.to_str().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            strings(&[&["bench", "io", "--size", "1000", "--file", f]]),
            "smaller than one block",
        ),
        (
            strings(&[&["stat", "-e", "bogus-event", "--", "true"]]),
            "unknown event",
        ),
        (
            strings(&[&["stat", "--sim", "-r", "2", "--", "true"]]),
            "drop -r",
        ),
        // Unknown names: usage errors listing the valid ones.
        (
            strings(&[&["bench", "tasks", "--kind", "fibers", "-n", "10"]]),
            "is not a task kind; it must be one of: tokio-sleep",
        ),
        (
            strings(&[&["bench", "defer", "--quick", "--strategy", "manual,foo"]]),
            "is not a strategy; it must be one of: manual",
        ),
        (
            strings(&[&["bench", "defer", "--quick", "--scenario", "foo"]]),
            "is not a scenario; it must be one of: one",
        ),
        (
            strings(&[&["bench", "locality", "--quick", "--patterns", "foo"]]),
            "is not a pattern; it must be one of: seq",
        ),
        // In range at parse time, beyond the memory here: refused before allocating.
        (
            strings(&[&["bench", "locality", "--no-sim", "--sizes", "64T"]]),
            "larger than the memory available",
        ),
        (
            strings(&[&["rightsize", "--demo", "--perf-factor", "nofamily"]]),
            "FAMILY=X",
        ),
        (
            strings(&[&["rightsize", "--demo", "--start", "yesterday"]]),
            "neither RFC 3339",
        ),
    ];
    let mut failures = Vec::new();
    for (args, text) in cases {
        if let Some(problem) = check(&args, 2, &[text]) {
            failures.push(problem);
        }
    }
    assert!(!file.exists(), "a refused bench io left {f} behind");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rightsize_with_nothing_to_analyse_fails_and_strict_fails_on_warnings() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut csv = String::from("timestamp,workload,instance_type,cpu_cores,memory_bytes\n");
    for i in 0..20 {
        // CPU in percent on a 4-vCPU type: impossible, the only workload is skipped.
        csv += &format!(
            "{},pct,m7i.xlarge,{},1000000000\n",
            1_714_521_600 + i * 300,
            20 + i
        );
    }
    let pct = dir.path().join("pct.csv");
    std::fs::write(&pct, &csv).unwrap();
    let out = run(
        &strings(&[&["rightsize"], &[pct.to_str().unwrap()]]),
        Duration::from_secs(20),
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("percent instead of cores"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("no workload could be analysed"),
        "{}",
        out.stderr
    );

    // Rows out of order: sorted with a warning (exit 0), an error with --strict.
    let mut rows: Vec<String> = (0..20)
        .map(|i| format!("{},api,m7i.xlarge,0.5,1000000000", 1_714_521_600 + i * 300))
        .collect();
    rows.reverse();
    let back = dir.path().join("back.csv");
    std::fs::write(
        &back,
        format!(
            "timestamp,workload,instance_type,cpu_cores,memory_bytes\n{}\n",
            rows.join("\n")
        ),
    )
    .unwrap();
    let b = back.to_str().unwrap();
    let out = run(&strings(&[&["rightsize", b]]), Duration::from_secs(20));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("sorted by timestamp"), "{}", out.stderr);
    assert!(out.stdout.contains("api"));
    let out = run(
        &strings(&[&["rightsize", "--strict", b]]),
        Duration::from_secs(20),
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains("--strict"), "{}", out.stderr);
}
