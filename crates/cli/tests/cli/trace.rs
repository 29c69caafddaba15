//! `frugal trace` end to end: exact counts of `frugal-trace-demo` (USDT probes) and of a Go
//! program (uprobes), attaching by PID, and the errors — with no bpftrace process left behind.
//!
//! Tracing needs root and bpftrace (scripts/deps.sh installs it; CI runs as root). Without
//! root the tracing tests check the non-root error instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{frugal, tempdir, KillOnDrop as Reaped, FRUGAL, HEAVY, TRACE};

/// The tests of this file run one at a time: with several bpftrace sessions at once on a
/// loaded 2-core machine, one bpftrace aborted at exit ("Could not clear map") in a CI
/// rehearsal. Nor do they run beside the tests that load the machine ([`HEAVY`]): attaching
/// by PID waits a fixed moment for bpftrace to attach, as it did when this file ran alone.
fn serial() -> (MutexGuard<'static, ()>, MutexGuard<'static, ()>) {
    (TRACE.lock(), HEAVY.lock())
}

const DEMO: &str = env!("CARGO_BIN_EXE_frugal-trace-demo");

/// Root (all capabilities), as CI runs.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether tracing can run here; if not, says why on stderr (the test then checks the error).
fn can_trace() -> bool {
    if !is_root() {
        eprintln!("not root: checking the non-root error instead of tracing");
        return false;
    }
    true
}

/// Processes whose command line contains `needle` and whose program is bpftrace.
fn bpftrace_processes(needle: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_bpftrace = args.first().is_some_and(|a| a.ends_with("bpftrace"));
        (is_bpftrace && args.iter().any(|a| a.contains(needle))).then_some(pid)
    })
    .collect()
}

fn assert_no_bpftrace_left(needle: &str) {
    // bpftrace is waited for before frugal exits; allow the kernel a moment to reap it.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = bpftrace_processes(needle);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "bpftrace processes left behind: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn trace_json(args: &[&str], cmd: &[&str]) -> (Value, Output) {
    let dir = tempdir();
    let json = dir.path().join("trace.json");
    let mut c = frugal();
    c.arg("trace").args(args).arg("--json").arg(&json);
    if !cmd.is_empty() {
        c.arg("--").args(cmd);
    }
    let out = c.output().expect("the frugal binary runs");
    assert!(
        out.status.success(),
        "frugal trace {args:?} failed: {}\nstdout:\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let text = std::fs::read_to_string(&json).expect("the JSON report was written");
    (serde_json::from_str(&text).expect("the report parses"), out)
}

fn u(v: &Value, path: &[&str]) -> u64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a number: {v}"))
}

fn hist(v: &Value, name: &str) -> Vec<(u64, u64, u64)> {
    v[name]
        .as_array()
        .unwrap_or_else(|| panic!("{name} is not an array"))
        .iter()
        .map(|b| (u(b, &["min"]), u(b, &["max"]), u(b, &["count"])))
        .filter(|b| b.2 > 0)
        .collect()
}

#[test]
fn demo_counts_are_exact() {
    let _serial = serial();
    if !can_trace() {
        return not_root_error();
    }
    let rounds = 5;
    let dir = tempfile::tempdir().expect("a temporary directory can be created");
    let csv = dir.path().join("intervals.csv");
    let csv_arg = csv.to_str().expect("a UTF-8 temp path");
    // A wait that no other test uses marks this test's bpftrace.
    let (r, out) = trace_json(
        &["--interval", "200ms", "--csv", csv_arg],
        &[DEMO, "--rounds", &rounds.to_string(), "--wait-ms", "301"],
    );
    assert_eq!(r["schema"], "frugal-trace");
    // The demo's doc table: per round 209 defers in 7 scopes (14 inline), 1 cancelled, 1 run
    // early, 2 panics caught, 6 pool segments: 3 misses in the first round (an empty pool),
    // hits for the rest.
    assert_eq!(u(&r, &["defers", "registered"]), 209 * rounds);
    assert_eq!(u(&r, &["defers", "cancelled"]), rounds);
    assert_eq!(u(&r, &["defers", "run_now"]), rounds);
    assert_eq!(u(&r, &["defers", "run"]), 208 * rounds);
    assert_eq!(u(&r, &["scopes"]), 7 * rounds);
    assert_eq!(u(&r, &["panics"]), 2 * rounds);
    assert_eq!(u(&r, &["defers", "pool_misses"]), 3);
    assert_eq!(u(&r, &["defers", "pool_hits"]), 6 * rounds - 3);
    assert_eq!(u(&r, &["defers", "pooled"]), 195 * rounds);
    assert_eq!(u(&r, &["defers", "inline"]), 14 * rounds);
    assert_eq!(u(&r, &["defers", "heap"]), 0);
    // What tracing cost: every probe hit counted — per round 209 registrations, 209 call
    // starts and 209 call ends, 1 cancel, 1 run_now, 7 scope exits, 6 pool blocks, 2 panics —
    // and a cost per hit measured by the calibration (a trap costs something: never 0).
    assert_eq!(u(&r, &["overhead", "probe_hits"]), 644 * rounds, "{r}");
    let ns = r["overhead"]["ns_per_hit"]
        .as_f64()
        .unwrap_or_else(|| panic!("the cost per hit was measured: {}", r["overhead"]));
    assert!(ns > 0.0, "{}", r["overhead"]);
    // Cross-checked against the target's own CPU time (task-clock is a software counter).
    assert!(
        r["overhead"]["share_of_target_cpu"]
            .as_f64()
            .is_some_and(|s| s > 0.0),
        "{}",
        r["overhead"]
    );
    assert_eq!(
        r["overhead"]["calibration"]["traced_cpu_ns"]
            .as_array()
            .map(Vec::len),
        Some(5)
    );
    assert_eq!(
        hist(&r, "chain_length_hist"),
        [
            (1, 1, rounds),
            (2, 3, 2 * rounds),
            (4, 7, 2 * rounds),
            (64, 127, rounds),
            (128, 255, rounds)
        ]
    );
    // Every record's exit is timed (the cancelled and the early-run one's too). `call_start`
    // and `call_end` fire only in the run loop that a scope picks when their USDT semaphore is
    // set: these counts prove that bpftrace set it.
    let timed: u64 = hist(&r, "call_ns_hist").iter().map(|b| b.2).sum();
    assert_eq!(timed, 209 * rounds);
    // Intervals add up to the totals (the last one closes at the end).
    let intervals = r["intervals"].as_array().expect("intervals");
    assert!(!intervals.is_empty());
    let sum: u64 = intervals
        .iter()
        .map(|i| i["counts"]["registered"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        sum <= 209 * rounds,
        "intervals never count more than the total"
    );
    // --csv FILE: the interval rows, raw counts.
    let csv = std::fs::read_to_string(&csv).expect("the CSV was written");
    let header: Vec<&str> = csv.lines().next().unwrap_or("").split(',').collect();
    assert_eq!(header[..2], ["t_s", "dt_s"], "{csv}");
    let col = header
        .iter()
        .position(|h| *h == "registered")
        .expect("a registered column");
    let csv_sum: u64 = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(col).unwrap_or("").parse().unwrap_or(0))
        .sum();
    assert_eq!(csv.lines().count(), intervals.len() + 1, "{csv}");
    assert_eq!(csv_sum, sum, "{csv}");
    // The demo's own view agrees.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let own: Value = stdout
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("the demo printed its JSON line");
    assert_eq!(u(&own, &["registered"]), 209 * rounds);
    assert_eq!(u(&own, &["pool_misses"]), 3);
    // The traced run loop ran every deferred call exactly once, panics and all: the demo's sum
    // is the untraced one.
    let untraced = Command::new(DEMO)
        .args(["--rounds", &rounds.to_string()])
        .output()
        .expect("the demo runs");
    let untraced: Value = serde_json::from_slice(&untraced.stdout).expect("the demo's JSON");
    assert_eq!(own["sum"], untraced["sum"]);
    assert!(stdout.contains("defers/s"), "the interval table:\n{stdout}");
    assert!(
        stdout.contains("tracing cost: ") && stdout.contains("µs per hit"),
        "the totals say what tracing cost:\n{stdout}"
    );
    // Software counters are counted; hardware ones are a number or say why not, never a
    // silent zero.
    assert!(r["counters"]["task_clock_ns"].as_u64().is_some());
    for hw in ["cycles", "llc_load_misses"] {
        let c = &r["counters"][hw];
        assert!(
            c.as_u64().is_some() || c["status"] == "not supported" || c["status"] == "failed",
            "{hw}: {c}"
        );
    }
    assert_no_bpftrace_left("--wait-ms");
}

/// The check when tracing is not possible: a non-root user gets the capability error.
fn not_root_error() {
    let out = frugal()
        .args(["trace", "--", DEMO])
        .output()
        .expect("the frugal binary runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs root") || err.contains("bpftrace not found"),
        "{err}"
    );
}

#[test]
fn non_root_is_told_which_capability() {
    let _serial = serial();
    if !is_root() {
        return not_root_error();
    }
    // Root: run frugal as `nobody` (setpriv, util-linux).
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("setpriv missing: skipping the non-root check");
        return;
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(FRUGAL)
        .args(["trace", "--", "/bin/true"])
        .output()
        .expect("setpriv runs");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CAP_BPF") && err.contains("root"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn missing_bpftrace_names_the_package() {
    let _serial = serial();
    let empty = tempfile::tempdir().expect("a temporary directory can be created");
    let out = frugal()
        .args(["trace", "--", DEMO])
        .env("PATH", empty.path())
        .env_remove("FRUGAL_BPFTRACE")
        .output()
        .expect("the frugal binary runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apt-get install bpftrace"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn too_old_bpftrace_is_named() {
    let _serial = serial();
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("a temporary directory can be created");
    let fake = dir.path().join("bpftrace");
    std::fs::write(&fake, "#!/bin/sh\necho 'bpftrace v0.9.4'\n").expect("the script is written");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755))
        .expect("the script is made executable");
    let out = frugal()
        .args(["trace", "--", DEMO])
        .env("FRUGAL_BPFTRACE", &fake)
        .output()
        .expect("the frugal binary runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0.9.4 is too old"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn usage_errors_exit_2() {
    let _serial = serial();
    for args in [
        &["trace"][..],
        &["trace", "--interval", "0s", "--", DEMO],
        &["trace", "--", DEMO, "two words"],
        &["trace", "--pid", "1", "--", DEMO],
    ] {
        let out = frugal()
            .args(args)
            .output()
            .expect("the frugal binary runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}

/// A command after `--` that is not a program (a directory, a file without an execute bit, a
/// path or a name that does not exist) is a usage error, said in one line, before bpftrace is
/// started: a stand-in bpftrace that leaves a mark when run proves it was not.
#[test]
fn commands_that_are_not_programs_exit_2_before_bpftrace() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("a temporary directory can be created");
    let mark = dir.path().join("bpftrace-ran");
    let fake = dir.path().join("bpftrace");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ntouch '{}'\necho 'bpftrace v0.20.0'\n",
            mark.display()
        ),
    )
    .expect("the script is written");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755))
        .expect("the script is made executable");
    let plain = dir.path().join("notes.txt");
    std::fs::write(&plain, "not a program\n").expect("the file is written");
    let empty_path = tempfile::tempdir().expect("a temporary directory can be created");
    let (d, f) = (
        dir.path().display().to_string(),
        plain.display().to_string(),
    );
    let text = dir.path().join("notes.sh");
    std::fs::write(&text, "echo no #! line, not ELF\n").expect("the file is written");
    std::fs::set_permissions(&text, std::fs::Permissions::from_mode(0o755))
        .expect("the file is made executable");
    let t = text.display().to_string();
    let cases: [(&str, &str); 6] = [
        (&d, "is a directory, not a program"),
        (&f, "is not executable"),
        (
            &t,
            "is not a program: neither an ELF binary nor a #! script",
        ),
        ("/nonexistent/program", "/nonexistent/program: no such file"),
        (
            "frugal-no-such-program",
            "frugal-no-such-program: not found on PATH",
        ),
        // A name on PATH that is only a file without an execute bit.
        ("notes.txt", "not found on PATH as a program; "),
    ];
    for (program, expected) in cases {
        let path = if program == "notes.txt" {
            dir.path()
        } else {
            empty_path.path()
        };
        let out = frugal()
            .args(["trace", "--", program, "arg"])
            .env("FRUGAL_BPFTRACE", &fake)
            .env("PATH", path)
            .output()
            .expect("the frugal binary runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{program}: {err}");
        assert!(err.contains(expected), "{program}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(!mark.exists(), "{program}: bpftrace was started");
    }
}

#[test]
fn bad_targets_are_one_line_errors() {
    let _serial = serial();
    if !can_trace() {
        return not_root_error();
    }
    let cases: [(&[&str], &str); 3] = [
        // The largest PID there can be (a larger one is a usage error, exit 2).
        (&["--pid", "4194303"], "no process with PID"),
        (
            &["--", "/bin/true"],
            "built without frugal-defer's `usdt` feature",
        ),
        (&["--go", "--", "/bin/true"], "not a Go binary"),
    ];
    for (args, expected) in cases {
        let out = frugal()
            .arg("trace")
            .args(args)
            .output()
            .expect("the frugal binary runs");
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        // Root is told neither to run as root nor, for a binary that is not Go, to add --go.
        assert!(!err.contains("run as root"), "{args:?}: {err}");
        if !args.contains(&"--go") {
            assert!(!err.contains("--go"), "{args:?}: {err}");
        }
    }
}

#[test]
fn attach_by_pid_and_detach_cleanly() {
    let _serial = serial();
    if !can_trace() {
        return not_root_error();
    }
    let mut demo = Reaped(
        Command::new(DEMO)
            .args(["--seconds", "30"])
            .stdout(Stdio::null())
            .spawn()
            .expect("the demo starts"),
    );
    let pid = demo.0.id().to_string();
    let (r, _) = trace_json(&["--pid", &pid, "--duration", "2s"], &[]);
    assert!(u(&r, &["defers", "registered"]) > 0, "{r}");
    assert!(u(&r, &["scopes"]) > 0);
    assert!(
        demo.0.try_wait().expect("try_wait works").is_none(),
        "the traced process keeps running after the trace"
    );
    assert_no_bpftrace_left(&pid);

    // Stopped by a signal instead of --duration: frugal passes it on to bpftrace, prints the
    // totals, and leaves no bpftrace behind.
    let dir = tempfile::tempdir().expect("a temporary directory can be created");
    let json = dir.path().join("t.json");
    let tracer = frugal()
        .args(["trace", "--pid", &pid, "--interval", "200ms", "--json"])
        .arg(&json)
        .stdout(Stdio::piped())
        .spawn()
        .expect("frugal starts");
    let mut tracer = Reaped(tracer);
    // Attached once the first interval line is out (the header comes with it): a fixed wait
    // was too short when the machine was loaded (attaching took bpftrace over 2 s).
    let stdout = tracer.0.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first = lines.next();
        let _ = tx.send(first.map(|l| l.unwrap_or_default()));
        // Keep draining, so that frugal never blocks on a full pipe.
        lines.for_each(drop);
    });
    let first = rx
        .recv_timeout(crate::util::PATIENCE)
        .expect("frugal trace attaches and prints an interval within the patience");
    assert!(
        first.as_deref().is_some_and(|l| l.contains("defers/s")),
        "{first:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let killed = Command::new("kill")
        .args(["-TERM", &tracer.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tracer.0.wait().expect("frugal ends");
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(&json).expect("the report was written");
    let r: Value = serde_json::from_str(&text).expect("the report parses");
    assert!(u(&r, &["defers", "registered"]) > 0, "{r}");
    assert_no_bpftrace_left(&pid);
    assert!(demo.0.try_wait().expect("try_wait works").is_none());
}

#[test]
fn pid_that_exits_during_the_trace_is_an_error() {
    let _serial = serial();
    if !can_trace() {
        return not_root_error();
    }
    let mut demo = Reaped(
        Command::new(DEMO)
            .args(["--seconds", "4"])
            .stdout(Stdio::null())
            .spawn()
            .expect("the demo starts"),
    );
    let pid = demo.0.id().to_string();
    // Reap the demo as soon as it exits, so that its PID disappears from /proc.
    let waiter = std::thread::spawn(move || {
        let _ = demo.0.wait();
        demo
    });
    let out = frugal()
        .args(["trace", "--pid", &pid, "--duration", "60s"])
        .output()
        .expect("the frugal binary runs");
    drop(waiter.join());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exited after"), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("defers registered"),
        "totals still printed:\n{stdout}"
    );
    assert_no_bpftrace_left(&pid);
}

/// Builds the Go program of tests/cli/go-defers, or `None` when no Go toolchain is installed.
fn build_go_program(dir: &Path) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/go-defers");
    let bin = dir.join("godefers");
    let mut go = Command::new("go");
    go.current_dir(&src)
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .env("GOFLAGS", "-mod=mod");
    if std::env::var_os("HOME").is_none() {
        go.env("GOCACHE", dir.join("gocache"))
            .env("GOPATH", dir.join("gopath"));
    }
    match go.output() {
        Err(_) => {
            eprintln!("no Go toolchain on PATH (scripts/deps.sh installs golang-go): skipping");
            None
        }
        Ok(out) => {
            assert!(
                out.status.success(),
                "go build failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(bin)
        }
    }
}

#[test]
fn go_loop_defers_are_counted() {
    let _serial = serial();
    if !can_trace() {
        return not_root_error();
    }
    let dir = tempfile::tempdir().expect("a temporary directory can be created");
    let Some(bin) = build_go_program(dir.path()) else {
        return;
    };
    let rounds: u64 = 500;
    let bin_s = bin.to_str().expect("a UTF-8 temp path");
    // Without --go: the binary is known to be Go, and the error says to add it.
    let out = frugal()
        .args(["trace", "--", bin_s, "1", "0"])
        .output()
        .expect("the frugal binary runs");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is a Go program") && err.contains("add --go"),
        "{err}"
    );
    let (r, out) = trace_json(&["--go"], &[bin_s, &rounds.to_string(), "200"]);
    let callers = r["go"]["callers"].as_array().expect("callers");
    let from = |function: &str, caller: &str| -> u64 {
        callers
            .iter()
            .filter(|c| c["function"] == function && c["caller"] == caller)
            .map(|c| u(c, &["count"]))
            .sum()
    };
    // An entry uprobe also fires when a call restarts the function after growing the
    // goroutine's stack (morestack): at most a few extra hits per goroutine.
    let loop_defers = from("runtime.deferproc", "main.loopDefers");
    assert!(
        (10 * rounds..=10 * rounds + 3).contains(&loop_defers),
        "10 loop defers per round: {loop_defers}; {r}"
    );
    let panics = from("runtime.gopanic", "main.panicky");
    assert!((rounds..=rounds + 3).contains(&panics), "{panics}");
    // The open-coded defer of openCoded() calls no runtime function.
    assert_eq!(from("runtime.deferproc", "main.openCoded"), 0);
    assert_eq!(from("runtime.deferprocStack", "main.openCoded"), 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("open-codes"),
        "the note is printed:\n{stdout}"
    );
    assert_no_bpftrace_left(bin_s);
}
