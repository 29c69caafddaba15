//! `frugal stat` end to end: exit statuses, messages, unsupported events, simulation.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::util::frugal;

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("running frugal");
    (
        status.code().expect("frugal exits normally"),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The counters crate's deterministic C workload, compiled once.
fn busy() -> &'static PathBuf {
    static BUSY: OnceLock<PathBuf> = OnceLock::new();
    BUSY.get_or_init(|| fixture("busy", &[]))
}

/// The counters crate's two-thread page-touching workload, compiled once.
fn threads() -> &'static PathBuf {
    static THREADS: OnceLock<PathBuf> = OnceLock::new();
    THREADS.get_or_init(|| fixture("threads", &["-pthread"]))
}

/// Compiles the counters crate's C fixture `NAME.c` with `flags` into the tests' directory.
fn fixture(name: &str, flags: &[&str]) -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("frugal-stat-{name}"));
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../counters/tests/fixtures/{name}.c"));
    let status = Command::new("cc")
        .arg("-O1")
        .args(flags)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("a C compiler `cc` is needed to build the test workload");
    assert!(status.success(), "compiling {} failed", src.display());
    exe
}

/// `frugal stat --json -e page-faults -- CMD...`: the mean page-fault count.
fn page_faults(cmd: &mut Command) -> f64 {
    let (code, json, stderr) = run(cmd);
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["events"][0]["event"], "page-faults", "{json}");
    json["events"][0]["count"]["mean"]
        .as_f64()
        .unwrap_or_else(|| panic!("no page-fault count: {json}"))
}

#[test]
fn threads_and_forked_children_are_counted() {
    let stat = || {
        let mut cmd = frugal();
        cmd.args(["stat", "--json", "-e", "page-faults", "--"]);
        cmd
    };
    // Two threads each touch 3000 fresh pages; the main thread touches none of them.
    let faults = page_faults(stat().arg(threads()).arg("3000"));
    assert!(faults >= 6000.0, "two threads x 3000 pages: {faults}");
    // sh forks two children that each touch 2000 pages: counters follow the forks.
    let busy = busy().to_string_lossy().into_owned();
    let script = format!("{busy} 1000 2000 0; {busy} 1000 2000 0");
    let faults = page_faults(stat().args(["sh", "-c", &script]));
    assert!(
        faults >= 4000.0,
        "two forked children x 2000 pages: {faults}"
    );
}

fn pmu_present() -> bool {
    // Ask perf itself, independently of our code: `perf stat -e cycles` says "<not supported>"
    // when the kernel gives ENOENT.
    let out = Command::new("perf")
        .args(["stat", "-x,", "-e", "cycles", "--", "true"])
        .output()
        .expect("`perf` is needed (scripts/deps.sh installs linux-perf)");
    !String::from_utf8_lossy(&out.stderr).contains("<not supported>")
}

#[test]
fn child_exit_status_is_propagated() {
    let (code, _, _) = run(frugal().args(["stat", "--", "sh", "-c", "exit 3"]));
    assert_eq!(code, 3);
    let (code, _, _) = run(frugal().args(["stat", "-r", "2", "--", "true"]));
    assert_eq!(code, 0);
}

#[test]
fn unknown_command_is_127_with_a_clear_message() {
    let (code, _, stderr) = run(frugal().args(["stat", "--", "frugal-no-such-command-xyz"]));
    assert_eq!(code, 127, "{stderr}");
    assert!(
        stderr.contains("frugal-no-such-command-xyz: command not found"),
        "{stderr}"
    );
    let not_executable = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let (code, _, stderr) = run(frugal().arg("stat").arg("--").arg(&not_executable));
    assert_eq!(code, 126, "{stderr}");
}

#[test]
fn unknown_event_lists_the_known_ones() {
    let (code, _, stderr) = run(frugal().args(["stat", "-e", "cycles,bogus-misses", "--", "true"]));
    assert_ne!(code, 0);
    assert!(stderr.contains("unknown event `bogus-misses`"), "{stderr}");
    assert!(
        stderr.contains("L1-dcache-load-misses") && stderr.contains("task-clock"),
        "{stderr}"
    );
}

#[test]
fn hardware_events_are_unsupported_here_never_zero() {
    let (code, table, _) = {
        let (c, out, err) = run(frugal().args(["stat", "-e", "task-clock,cycles", "--", "true"]));
        (c, err, out)
    };
    assert_eq!(code, 0);
    let (_, json, _) =
        run(frugal().args(["stat", "--json", "-e", "task-clock,cycles", "--", "true"]));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let cycles = &json["events"][1];
    assert_eq!(cycles["event"], "cycles");
    let cycles_line = table.lines().find(|l| l.contains("cycles")).unwrap();
    if pmu_present() {
        assert_eq!(cycles["status"]["state"], "counting");
        assert!(cycles["count"]["mean"].as_f64().unwrap() > 0.0);
        assert!(!cycles_line.contains("<not supported>"), "{table}");
    } else {
        assert_eq!(cycles["status"]["state"], "unsupported");
        assert!(
            cycles["count"].is_null(),
            "unsupported must not be a number: {cycles}"
        );
        assert!(cycles_line.contains("<not supported>"), "{table}");
        assert!(
            table.contains("frugal stat --sim"),
            "the table points at --sim: {table}"
        );
        assert_eq!(json["hardware_unsupported"], true);
    }
    // Software events count regardless.
    assert_eq!(json["events"][0]["key"], "task_clock_ns");
    assert!(json["events"][0]["count"]["mean"].as_f64().unwrap() > 0.0);
}

#[test]
fn json_and_csv_carry_units_in_field_names() {
    let (code, json, _) = run(frugal().args(["stat", "--json", "-r", "3", "--", "true"]));
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["wall_time_ns"]["samples"].as_array().unwrap().len(), 3);
    assert!(json["events"][0]["running_pct"].as_f64().unwrap() > 99.0);
    assert!(json["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["key"] == "cpus_utilized"));

    let (code, csv, _) = run(frugal().args(["stat", "--csv", "-e", "page-faults", "--", "true"]));
    assert_eq!(code, 0);
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(
        header.contains("count") && header.contains("running_pct"),
        "{header}"
    );
    let faults = lines.next().unwrap();
    assert!(
        faults.starts_with("page-faults,page_faults,,counting,false,"),
        "{faults}"
    );
    assert!(csv.contains("wall-time,wall_time_ns,ns,"), "{csv}");
}

#[test]
fn x_separator_gives_perf_like_csv() {
    let (code, csv, _) = run(frugal().args(["stat", "-x", ";", "-e", "page-faults", "--", "true"]));
    assert_eq!(code, 0);
    let mut lines = csv.lines();
    assert!(
        lines.next().unwrap().starts_with("event;key;unit;status;"),
        "{csv}"
    );
    let faults = lines.next().unwrap();
    assert!(
        faults.starts_with("page-faults;page_faults;;counting;false;"),
        "{faults}"
    );
    assert!(!csv.contains(','), "no comma anywhere: {csv}");
    let (code, _, stderr) = run(frugal().args(["stat", "-x", ";;", "--", "true"]));
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn json_and_csv_files_at_once_and_the_table_still_on_stderr() {
    let dir = tempfile::tempdir().expect("a temporary directory can be created");
    let (json, csv) = (dir.path().join("s.json"), dir.path().join("s.csv"));
    let (code, stdout, stderr) = run(frugal()
        .args(["stat", "-e", "task-clock,page-faults", "--json"])
        .arg(&json)
        .arg("--csv")
        .arg(&csv)
        .args(["--", "true"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("Performance counter stats for 'true'"),
        "{stderr}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(json["schema"], "frugal-stat");
    assert_eq!(json["events"][1]["event"], "page-faults");
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert!(
        csv.contains("\npage-faults,page_faults,,counting,false,"),
        "{csv}"
    );

    // -o takes the chosen format; two formats for stdout are a usage error.
    let out = dir.path().join("s.md");
    let (code, stdout, stderr) = run(frugal()
        .args(["stat", "--format", "markdown", "-o"])
        .arg(&out)
        .args(["--", "true"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.is_empty() && !stderr.contains("Performance"),
        "{stderr}"
    );
    let md = std::fs::read_to_string(&out).unwrap();
    assert!(
        md.starts_with("# Performance counter stats for 'true':"),
        "{md}"
    );
    let (code, _, stderr) = run(frugal().args(["stat", "--json", "--csv", "--", "true"]));
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn format_markdown_prints_to_stdout() {
    let (code, md, stderr) = run(frugal().args(["stat", "--format", "markdown", "--", "true"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        md.starts_with("# Performance counter stats for 'true':\n"),
        "{md}"
    );
    assert!(md.contains("task-clock"), "{md}");
    assert!(!stderr.contains("Performance counter stats"), "{stderr}");
}

#[test]
fn colour_only_when_asked() {
    let table = |cmd: &mut Command| {
        let (code, _, stderr) = run(cmd);
        assert_eq!(code, 0, "{stderr}");
        stderr
    };
    let never = table(frugal().args(["stat", "--color", "never", "--", "true"]));
    assert!(!never.contains('\x1b'), "{never:?}");
    let no_color = table(frugal().env("NO_COLOR", "1").args(["stat", "--", "true"]));
    assert!(!no_color.contains('\x1b'), "{no_color:?}");
    let always = table(
        frugal()
            .env_remove("NO_COLOR")
            .args(["stat", "--color", "always", "--", "true"]),
    );
    assert!(always.contains("\x1b["), "{always:?}");
}

/// valgrind's own `I refs:` figure for the same command.
fn valgrind_irefs(json: &serde_json::Value, args: &[&str]) -> u64 {
    let geometry = &json["cache_geometry"];
    let spec = |level: &str| {
        let l = &geometry[level];
        format!("{},{},{}", l["size_bytes"], l["ways"], l["line_bytes"])
    };
    // `null` when sysfs had no geometry and valgrind auto-detected it: pass none either.
    let cache_args = if geometry.is_null() {
        vec![]
    } else {
        vec![
            format!("--I1={}", spec("i1")),
            format!("--D1={}", spec("d1")),
            format!("--LL={}", spec("ll")),
        ]
    };
    let out = Command::new("valgrind")
        .args(["--tool=cachegrind", "--cache-sim=yes", "--branch-sim=yes"])
        .args(cache_args)
        .arg("--cachegrind-out-file=/dev/null")
        .arg(busy())
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .filter_map(|l| l.split_once("== ").map(|(_, rest)| rest.trim_start()))
        .find(|rest| rest.starts_with("I ") && rest.contains("refs:"))
        .unwrap_or_else(|| panic!("no `I refs:` line: {stderr}"));
    line.split("refs:")
        .nth(1)
        .unwrap()
        .replace([',', ' '], "")
        .parse()
        .unwrap()
}

#[test]
fn sim_matches_valgrind_exactly_and_repeats() {
    let args = ["100000", "8", "5"];
    let sim = || {
        let (code, out, _) = run(frugal()
            .args(["stat", "--sim", "--json", "--"])
            .arg(busy())
            .args(args));
        assert_eq!(code, 5, "the simulated command's exit status is propagated");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let a = sim();
    let b = sim();
    assert_eq!(a["simulated"], true);
    assert_eq!(a["counts"], b["counts"], "two simulated runs agree");
    let ours = a["counts"]["instructions"].as_u64().unwrap();
    assert_eq!(ours, valgrind_irefs(&a, &args));
    assert_eq!(a["schema"], "frugal-stat-sim");
    assert!(a["estimated_cycles"].as_u64().unwrap() >= ours);

    let (code, _, table) = run(frugal()
        .args(["stat", "--sim", "--"])
        .arg(busy())
        .args(args));
    assert_eq!(code, 5);
    assert!(
        table.contains("SIMULATED") && table.contains("(simulated)"),
        "{table}"
    );
}

#[test]
fn sim_without_valgrind_says_how_to_install() {
    let (code, _, stderr) = run(frugal()
        .env("FRUGAL_VALGRIND", "/nonexistent/valgrind")
        .args(["stat", "--sim", "--", "true"]));
    assert_ne!(code, 0);
    assert!(stderr.contains("apt-get install valgrind"), "{stderr}");
}
