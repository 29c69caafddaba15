//! Our software counts agree with `perf stat` on the same command.
//!
//! Its own test binary, so no other test of this crate competes for the CPU while it runs (cargo
//! runs test binaries one after another). Needs `perf` (scripts/deps.sh installs linux-perf) and
//! a C compiler for tests/fixtures/busy.c.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use frugal_counters::{stat_command, Event, StatOptions};

fn busy() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("frugal-counters-busy-perf");
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/busy.c");
    let status = Command::new("cc")
        .args(["-O1", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("a C compiler `cc` is needed to build the test workload");
    assert!(status.success(), "compiling {} failed", src.display());
    exe
}

/// Runs `perf stat -x, -e task-clock,page-faults CMD` and returns (task-clock ns, page-faults).
fn perf_stat(cmd: &[String]) -> (f64, f64) {
    let out = Command::new("perf")
        .args(["stat", "-x,", "-e", "task-clock,page-faults", "--"])
        .args(cmd)
        .output()
        .expect("`perf` is needed (scripts/deps.sh installs linux-perf)");
    assert!(out.status.success(), "perf stat failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stderr);
    let mut task_clock = None;
    let mut faults = None;
    // CSV lines: value,unit,event,run time,run %,...
    for line in text.lines() {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() < 3 {
            continue;
        }
        let value: Option<f64> = fields[0].parse().ok();
        match (fields[2], fields[1]) {
            ("task-clock", "msec") => task_clock = value.map(|ms| ms * 1e6),
            ("page-faults", _) => faults = value,
            _ => {}
        }
    }
    (
        task_clock.unwrap_or_else(|| panic!("no task-clock in perf output: {text}")),
        faults.unwrap_or_else(|| panic!("no page-faults in perf output: {text}")),
    )
}

fn ours(cmd: &[String]) -> (f64, f64) {
    let options = StatOptions {
        events: vec![Event::TaskClock, Event::PageFaults],
        repeats: 1,
    };
    let args: Vec<OsString> = cmd[1..].iter().map(OsString::from).collect();
    // The library's message names perf_event_paranoid, its value and the fix if it is refused.
    let report = stat_command(cmd[0].as_ref(), &args, &options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.exit_code, 0);
    let count = |i: usize| report.events[i].count.as_ref().unwrap().mean;
    (count(0), count(1))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn software_counts_agree_with_perf_stat() {
    // A deterministic command: a fixed CPU-bound loop (~50-100 ms), then 4000 page faults.
    let cmd = vec![
        busy().to_string_lossy().into_owned(),
        "40000000".to_owned(),
        "4000".to_owned(),
    ];
    let (mut clock_ratios, mut ours_faults, mut perf_faults) = (vec![], vec![], vec![]);
    let mut log = Vec::new();
    // Paired runs, alternating which tool goes first, so load and CPU-frequency phases of a
    // shared machine hit both tools alike. On a loaded machine the CPU time of the same work
    // moves between phases (48 ms, then 77 ms: frequency, steal, a neighbour's cache traffic),
    // and a pair that straddles a phase change disagrees by 10-30% either way; pairs within one
    // phase agree to 1%. So: a third of the pairs must agree within 5% (a systematic error of
    // more than 5% fails every pair), and the median pair within 15% (no gross error).
    for pair in 0..9 {
        let ((oc, of), (pc, pf)) = if pair % 2 == 0 {
            let o = ours(&cmd);
            (o, perf_stat(&cmd))
        } else {
            let p = perf_stat(&cmd);
            (ours(&cmd), p)
        };
        clock_ratios.push(oc / pc);
        ours_faults.push(of);
        perf_faults.push(pf);
        log.push(format!(
            "ours {oc:.0} ns / {of} faults, perf {pc:.0} ns / {pf} faults"
        ));
    }
    let agreeing = clock_ratios
        .iter()
        .filter(|r| (*r - 1.0).abs() <= 0.05)
        .count();
    let ratio = median(clock_ratios.clone());
    assert!(
        agreeing * 3 >= clock_ratios.len() && (ratio - 1.0).abs() <= 0.15,
        "task-clock ours/perf: {agreeing} of {} pairs within 5%, median {ratio:.3}:\n{}",
        clock_ratios.len(),
        log.join("\n")
    );
    let (of, pf) = (median(ours_faults), median(perf_faults));
    assert!(
        (of - pf).abs() <= 0.01 * pf,
        "page-faults: ours {of}, perf {pf}:\n{}",
        log.join("\n")
    );
}
