//! `frugal bench defer` end to end: the binary runs, writes a report that parses back, and the
//! numbers obey what the mechanisms guarantee (no wall-clock thresholds).

use std::process::Command;

use frugal_workloads::claims::Verdict;
use frugal_workloads::defer_bench::{CounterSource, DeferReport};

use crate::util::{frugal, tempdir, HEAVY};

fn run_json(args: &[&str]) -> DeferReport {
    let _heavy = HEAVY.lock();
    let dir = tempdir();
    let path = dir.path().join("report.json");
    let out = frugal()
        .args(["bench", "defer"])
        .args(args)
        .arg("--json")
        .arg(&path)
        .output()
        .expect("the frugal binary runs");
    assert!(
        out.status.success(),
        "frugal bench defer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ns/op"), "no table on stdout:\n{stdout}");
    let text = std::fs::read_to_string(&path).expect("the report was written");
    let report: DeferReport = serde_json::from_str(&text).expect("the report parses");
    // Round trip: what we write is what we read.
    let again: DeferReport =
        serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    assert_eq!(report, again);
    report
}

#[test]
fn quick_run_end_to_end() {
    let report = run_json(&["--quick", "--no-sim"]);
    assert!(report.quick);
    assert!(report.alloc_counting);
    assert_eq!(report.schema_version, 1);
    let rust: Vec<_> = report.rows.iter().filter(|r| r.lang == "rust").collect();
    assert_eq!(rust.len(), 36, "6 strategies x 6 scenarios");
    for row in &rust {
        let time = row.time_ns.as_ref().expect("every Rust row is timed");
        assert!(time.median > 0.0 && time.min <= time.median && time.median <= time.max);
        assert!(row.allocs_per_op.is_some());
    }
    // The chain never allocates in steady state, inline or overflowing into its pool (the
    // panic path allocates the unwinder's exception objects, in every strategy).
    for row in rust.iter().filter(|r| r.strategy.starts_with("chain-")) {
        if row.scenario != "panic" {
            assert_eq!(
                row.allocs_per_op,
                Some(0.0),
                "{} {} allocates",
                row.strategy,
                row.scenario
            );
        }
    }
    // The naive closure list allocates once per deferred call at least.
    let boxed = report.row("box-vec", "loop64").unwrap();
    assert!(boxed.allocs_per_op.unwrap() >= 64.0);
    // Guards and manual cleanup never allocate outside the panic path.
    for s in ["manual", "guard", "scopeguard"] {
        assert_eq!(
            report.row(s, "loop64").unwrap().allocs_per_op,
            Some(0.0),
            "{s}"
        );
    }
    // --no-sim: counters come from the PMU if there is one, never from simulation.
    assert_ne!(report.counter_source, CounterSource::Simulated);
    // Go rows appear exactly when Go ran.
    let go_rows = report.rows.iter().filter(|r| r.lang == "go").count();
    match report.go.status.as_str() {
        "ran" => {
            assert!(go_rows >= 18, "{go_rows} Go rows");
            let open_coded = report.row("go-defer", "one").unwrap();
            assert_eq!(open_coded.allocs_per_op, Some(0.0));
        }
        "not-installed" => {
            assert_eq!(go_rows, 0);
            assert!(report
                .go
                .message
                .as_deref()
                .unwrap()
                .contains("apt-get install golang-go"));
        }
        other => panic!("unexpected Go status {other}: {:?}", report.go.message),
    }
    // The ledger is always there; its verdicts follow the measured values.
    let chain = report
        .claims
        .iter()
        .find(|c| c.id == "2.1-zero-alloc-chain")
        .expect("the ledger has the chain's zero-allocation claim");
    assert_eq!(chain.verdict, Verdict::Holds);
}

#[test]
fn simulated_counters_for_a_subset() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("valgrind is not installed; skipping (scripts/deps.sh installs it)");
        return;
    }
    // The quick profile simulates a subset that includes manual and guard in scenario one.
    let report = run_json(&[
        "--quick",
        "--no-go",
        "--strategy",
        "manual,guard",
        "--scenario",
        "one",
    ]);
    assert_eq!(report.rows.len(), 2);
    assert_ne!(report.counter_source, CounterSource::None);
    for row in &report.rows {
        let c = row.counters.as_ref().expect("counters were taken");
        let instructions = c.instructions.expect("instructions are counted");
        assert!(instructions > 0.0, "{}: {instructions}", row.strategy);
        assert!(c.branches.is_some() && c.l1d_misses.is_some());
    }
}

#[test]
fn rejects_unknown_names() {
    let out = frugal()
        .args(["bench", "defer", "--quick", "--strategy", "nope"])
        .output()
        .unwrap();
    // A usage error (exit 2) that lists the valid names.
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`nope` is not a strategy; it must be one of: manual, guard"),
        "{stderr}"
    );
}
