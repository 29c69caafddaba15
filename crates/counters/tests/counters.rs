//! Integration tests of frugal-counters through its public API.
//!
//! Some tests compare with `perf stat` and valgrind, which scripts/deps.sh installs; they compile
//! a small C workload (tests/fixtures/busy.c) with the system C compiler.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use frugal_counters::sim::{self, SimCounts};
use frugal_counters::{
    stat_command, CounterSet, CounterStatus, Error, Event, Measurement, StatOptions,
};

/// Compiles tests/fixtures/busy.c once per test binary.
fn busy() -> &'static PathBuf {
    static BUSY: OnceLock<PathBuf> = OnceLock::new();
    BUSY.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let exe = dir.join("frugal-counters-busy");
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/busy.c");
        let status = Command::new("cc")
            .args(["-O1", "-o"])
            .arg(&exe)
            .arg(&src)
            .status()
            .expect("a C compiler `cc` is needed to build the test workload");
        assert!(status.success(), "compiling {} failed", src.display());
        exe
    })
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// Whether this machine can count `cycles`, asked of the kernel directly (not through our code).
fn pmu_present() -> bool {
    match perf_event::Builder::new(perf_event::events::Hardware::CPU_CYCLES).build() {
        Ok(_) => true,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => false,
        Err(e) => panic!("unexpected perf_event_open error for cycles: {e}"),
    }
}

#[test]
fn hardware_events_are_unsupported_or_counted_never_zero() {
    let events = [Event::Cycles, Event::Instructions, Event::TaskClock];
    let report = Measurement::new(&events)
        .unwrap()
        .run(100, 5, || {
            (0..1000u64).map(std::hint::black_box).sum::<u64>()
        })
        .unwrap();
    let cycles = report.event(Event::Cycles).unwrap();
    if pmu_present() {
        assert!(cycles.status.is_counting());
        assert!(report.per_op(Event::Instructions).unwrap().median > 100.0);
    } else {
        assert!(
            matches!(cycles.status, CounterStatus::Unsupported { .. }),
            "{:?}",
            cycles.status
        );
        assert!(
            cycles.per_op.is_none(),
            "unsupported must not read as a number"
        );
        assert!(report.per_op(Event::Instructions).is_none());
    }
    // The software event in the same measurement is unaffected by the hardware group.
    assert!(report.per_op(Event::TaskClock).unwrap().median > 0.0);
}

#[test]
fn measurement_counts_page_faults_per_op() {
    const PAGES: usize = 16;
    const HUGE_PAGE: usize = 2 << 20;
    let report = Measurement::new(&[Event::PageFaults, Event::TaskClock])
        .unwrap()
        .run(4, 8, || {
            // 40 MiB is above glibc's largest mmap threshold, so every call maps fresh memory;
            // touching pages 2 MiB apart faults PAGES times even with transparent huge pages.
            let mut v = vec![0u8; 40 << 20];
            for i in 0..PAGES {
                v[i * HUGE_PAGE] = 1;
            }
            v.len()
        })
        .unwrap();
    let faults = report.per_op(Event::PageFaults).unwrap();
    assert_eq!(faults.samples.len(), 8);
    assert!(faults.median >= PAGES as f64, "{faults:?}");
    assert!(report.wall_time_ns_per_op.median > 0.0);
    // JSON for the benchmark report has units in field names.
    let json = serde_json::to_string(&report).unwrap();
    assert!(
        json.contains("wall_time_ns_per_op") && json.contains("running_pct"),
        "{json}"
    );
}

#[test]
fn read_cost_is_subtracted() {
    // An empty closure costs (almost) nothing once the read cost is subtracted.
    let report = Measurement::new(&[Event::TaskClock])
        .unwrap()
        .run(1, 200, || ())
        .unwrap();
    let task_clock = report.event(Event::TaskClock).unwrap();
    let overhead = task_clock.read_overhead_per_sample.unwrap();
    assert!(overhead > 0.0, "reading the counters costs task-clock time");
    let per_op = task_clock.per_op.as_ref().unwrap();
    assert!(
        per_op.median < overhead,
        "median {} must be below the read overhead {overhead}",
        per_op.median
    );
}

#[test]
fn counter_set_reads_each_group_once() {
    let mut set = CounterSet::open(&[Event::TaskClock, Event::PageFaults, Event::Cycles]).unwrap();
    assert_eq!(set.events().len(), 3);
    let a = set.read().unwrap();
    let b = set.read().unwrap();
    let deltas = b.since(&a);
    assert!(deltas[0].is_some() && deltas[1].is_some());
    assert_eq!(deltas[2].is_some(), pmu_present());
    // Software events share one group; the hardware group exists only with a PMU.
    assert_eq!(set.group_count(), if pmu_present() { 2 } else { 1 });
}

#[test]
fn child_exit_status_and_start_failures() {
    let options = StatOptions {
        events: vec![Event::TaskClock],
        repeats: 3,
    };
    let report = stat_command("sh".as_ref(), &os(&["-c", "exit 3"]), &options).unwrap();
    assert_eq!(report.exit_code, 3);
    assert_eq!(
        report.runs.len(),
        1,
        "repeats stop at the first failing run"
    );

    let err = stat_command("frugal-no-such-command".as_ref(), &[], &options).unwrap_err();
    assert_eq!(err.shell_exit_code(), Some(127));
    assert!(err.to_string().contains("command not found"), "{err}");

    let not_exec = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/busy.c");
    let err = stat_command(not_exec.as_os_str(), &[], &options).unwrap_err();
    assert_eq!(err.shell_exit_code(), Some(126), "{err}");
}

#[test]
fn child_counts_include_threads() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let exe = dir.join("frugal-counters-threads");
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/threads.c");
    let status = Command::new("cc")
        .args(["-O1", "-pthread", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .unwrap();
    assert!(status.success());
    let options = StatOptions {
        events: vec![Event::PageFaults],
        repeats: 1,
    };
    let report = stat_command(exe.as_os_str(), &os(&["3000"]), &options).unwrap();
    assert_eq!(report.exit_code, 0);
    let faults = report.events[0].count.as_ref().unwrap().mean;
    assert!(
        faults >= 6000.0,
        "two threads touching 3000 pages each: {faults}"
    );
}

#[test]
fn child_counts_include_grandchildren() {
    // The page faults of a grandchild (sh -> busy) are counted: counters are inherited.
    let busy = busy().to_string_lossy().into_owned();
    let options = StatOptions {
        events: vec![Event::PageFaults, Event::ContextSwitches],
        repeats: 1,
    };
    let script = format!("{busy} 1000 2000 0; {busy} 1000 2000 0");
    let report = stat_command("sh".as_ref(), &os(&["-c", &script]), &options).unwrap();
    let faults = report.events[0].count.as_ref().unwrap().mean;
    assert!(
        faults >= 4000.0,
        "two children touching 2000 pages each: {faults}"
    );
    // Context switches are counted with the kernel included (or via getrusage), so a command
    // that forks and waits twice has some.
    let switches = report.events[1].count.as_ref().unwrap().mean;
    assert!(switches >= 1.0, "{switches}");
}

/// Parses valgrind's own `I refs:` line from its stderr.
fn valgrind_own_irefs(stderr: &str) -> u64 {
    // `==1234== I   refs:      1,953,486`
    let line = stderr
        .lines()
        .filter_map(|l| l.split_once("== ").map(|(_, rest)| rest.trim_start()))
        .find(|rest| rest.starts_with("I ") && rest.contains("refs:"))
        .unwrap_or_else(|| panic!("no `I refs:` in valgrind output: {stderr}"));
    let digits: String = line
        .split("refs:")
        .nth(1)
        .unwrap()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

#[test]
fn simulation_matches_valgrind_and_is_deterministic() {
    let simulator = sim::Simulator::new().unwrap();
    let args = os(&["200000", "10", "4"]);
    let a = simulator.run_command(busy().as_os_str(), &args).unwrap();
    let b = simulator.run_command(busy().as_os_str(), &args).unwrap();
    assert_eq!(a.exit_code, 4);
    assert_eq!(a.counts, b.counts, "two simulated runs must agree");
    assert!(a.simulated);

    let mut cmd = Command::new("valgrind");
    cmd.args(["--tool=cachegrind", "--cache-sim=yes", "--branch-sim=yes"])
        .args(simulator.geometry().valgrind_args())
        .arg("--cachegrind-out-file=/dev/null")
        .arg(busy())
        .args(&args);
    let out = cmd.output().unwrap();
    let own = valgrind_own_irefs(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(a.counts.instructions, own);
    assert!(a.counts.conditional_branches > 200_000);
}

#[inline(never)]
fn sim_region_under_test(n: u64) -> u64 {
    let mut acc = 0u64;
    for i in 0..n {
        acc = std::hint::black_box(acc.wrapping_mul(31) ^ i);
    }
    acc
}

/// Bodies the simulated copy of this test binary runs (no-ops in a normal test run).
#[test]
fn sim_child_1000() {
    if sim::is_sim_child() {
        println!("result {}", sim_region_under_test(1000));
    }
}

/// See [`sim_child_1000`].
#[test]
fn sim_child_3000() {
    if sim::is_sim_child() {
        println!("result {}", sim_region_under_test(3000));
    }
}

#[test]
fn region_simulation_counts_only_the_function() {
    let exe = std::env::current_exe().unwrap();
    let simulator = sim::Simulator::new().unwrap();
    let counts = |ops: u64| -> SimCounts {
        let name = format!("sim_child_{ops}");
        let args = os(&[&name, "--exact", "--test-threads=1", "--nocapture"]);
        let run = simulator
            .run_function(&exe, &args, "*sim_region_under_test*")
            .unwrap();
        assert!(run.stdout.unwrap().contains("result"));
        run.counts
    };
    let small = counts(1000);
    let large = counts(3000);
    // Only the region is collected: the cost grows with the work inside it, and the per-op
    // figure of the extra 2000 ops is a handful of instructions (not the test harness).
    let extra = (large.instructions - small.instructions) as f64 / 2000.0;
    assert!((2.0..100.0).contains(&extra), "{extra} instructions per op");
    assert!(small.instructions < 200_000, "{small:?}");
    let args = os(&["sim_child_1000", "--exact", "--test-threads=1"]);
    let err = simulator
        .run_function(&exe, &args, "*no_such_function_anywhere*")
        .unwrap_err();
    assert!(err.to_string().contains("inline(never)"), "{err}");
}

#[test]
fn valgrind_missing_says_how_to_install() {
    let err = sim::Simulator::with(
        PathBuf::from("/nonexistent/valgrind"),
        sim::CacheGeometry::from_sysfs().unwrap(),
    )
    .run_command("true".as_ref(), &[])
    .unwrap_err();
    assert!(matches!(err, Error::ValgrindMissing { .. }), "{err:?}");
    assert!(
        err.to_string().contains("apt-get install valgrind"),
        "{err}"
    );
}

#[test]
fn unknown_event_lists_known_ones() {
    let err = Event::parse_list("cycles,cash-misses").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cash-misses") && msg.contains("LLC-load-misses"),
        "{msg}"
    );
}
