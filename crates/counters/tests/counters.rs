//! Integration tests of frugal-counters through its public API.
//!
//! Some tests compare with `perf stat` and valgrind, which scripts/deps.sh installs; they compile
//! a small C workload (tests/fixtures/busy.c) with the system C compiler.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

mod common;

use common::{busy, compile_fixture};
use frugal_counters::sim::{self, SimCounts};
use frugal_counters::{
    stat_command, CounterSet, CounterStatus, Error, Event, Measurement, StatOptions,
};

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// Unwraps a result of the library, failing with its own message rather than a `Debug` dump:
/// for a refused `perf_event_open` that message names /proc/sys/kernel/perf_event_paranoid, its
/// value and the fix (run as root, or `sysctl -w kernel.perf_event_paranoid=2`).
trait OrExplain<T> {
    fn or_explain(self) -> T;
}

impl<T> OrExplain<T> for Result<T, Error> {
    #[track_caller]
    fn or_explain(self) -> T {
        self.unwrap_or_else(|err| panic!("{err}"))
    }
}

/// Whether this machine can count `cycles` (user space only, as allowed by
/// `perf_event_paranoid` <= 2), asked of the kernel directly (not through our code). No PMU
/// reads as `ENOENT`, `EOPNOTSUPP` or `ENODEV`, as the library classifies it; a refusal fails
/// the test with the knob, its value and the fix.
fn pmu_present() -> bool {
    let opened = perf_event::Builder::new(perf_event::events::Hardware::CPU_CYCLES)
        .exclude_kernel(true)
        .exclude_hv(true)
        .build();
    match opened {
        Ok(_) => true,
        Err(e) => match e.raw_os_error() {
            Some(libc::ENOENT | libc::EOPNOTSUPP | libc::ENODEV) => false,
            Some(libc::EACCES | libc::EPERM) => panic!(
                "perf_event_open(cycles) refused ({e}): {} is {}; these tests need it at 2 or \
                 lower, or root: run `sudo sysctl -w kernel.perf_event_paranoid=2` or run the \
                 tests as root",
                frugal_counters::PARANOID_PATH,
                std::fs::read_to_string(frugal_counters::PARANOID_PATH)
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_else(|r| format!("unreadable ({r})"))
            ),
            _ => panic!("unexpected perf_event_open error for cycles: {e}"),
        },
    }
}

#[test]
fn hardware_events_are_unsupported_or_counted_never_zero() {
    let events = [Event::Cycles, Event::Instructions, Event::TaskClock];
    let report = Measurement::new(&events)
        .or_explain()
        .run(100, 5, || {
            (0..1000u64).map(std::hint::black_box).sum::<u64>()
        })
        .or_explain();
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
        .or_explain()
        .run(4, 8, || {
            // 40 MiB is above glibc's largest mmap threshold, so every call maps fresh memory;
            // touching pages 2 MiB apart faults PAGES times even with transparent huge pages.
            let mut v = vec![0u8; 40 << 20];
            for i in 0..PAGES {
                v[i * HUGE_PAGE] = 1;
            }
            v.len()
        })
        .or_explain();
    let faults = report.per_op(Event::PageFaults).unwrap();
    assert_eq!(faults.samples.len(), 8);
    // Every sample, the first included: page-faults must count from the start (it once shared
    // a group with task-clock and missed the faults before the thread's next context switch).
    assert!(
        faults.samples.iter().all(|&f| f >= PAGES as f64),
        "{faults:?}"
    );
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
        .or_explain()
        .run(1, 200, || ())
        .or_explain();
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
    let mut set =
        CounterSet::open(&[Event::TaskClock, Event::PageFaults, Event::Cycles]).or_explain();
    assert_eq!(set.events().len(), 3);
    let a = set.read().or_explain();
    let b = set.read().or_explain();
    let deltas = b.since(&a);
    assert!(deltas[0].is_some() && deltas[1].is_some());
    assert_eq!(deltas[2].is_some(), pmu_present());
    // task-clock leads a group of its own, the other software events share one; the hardware
    // group exists only with a PMU.
    assert_eq!(set.group_count(), if pmu_present() { 3 } else { 2 });
}

#[test]
fn child_exit_status_and_start_failures() {
    let options = StatOptions {
        events: vec![Event::TaskClock],
        repeats: 3,
    };
    let report = stat_command("sh".as_ref(), &os(&["-c", "exit 3"]), &options).or_explain();
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
    let exe = compile_fixture("threads");
    let options = StatOptions {
        events: vec![Event::PageFaults],
        repeats: 1,
    };
    let report = stat_command(exe.as_os_str(), &os(&["3000"]), &options).or_explain();
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
    let report = stat_command("sh".as_ref(), &os(&["-c", &script]), &options).or_explain();
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
    let simulator = sim::Simulator::new().or_explain();
    let args = os(&["200000", "10", "4"]);
    let a = simulator
        .run_command(busy().as_os_str(), &args)
        .or_explain();
    let b = simulator
        .run_command(busy().as_os_str(), &args)
        .or_explain();
    assert_eq!(a.exit_code, 4);
    assert_eq!(a.counts, b.counts, "two simulated runs must agree");
    assert!(a.simulated);

    let mut cmd = Command::new("valgrind");
    cmd.args(["--tool=cachegrind", "--cache-sim=yes", "--branch-sim=yes"])
        .args(simulator.valgrind_cache_args())
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
    let simulator = sim::Simulator::new().or_explain();
    let counts = |ops: u64| -> SimCounts {
        let name = format!("sim_child_{ops}");
        let args = os(&[&name, "--exact", "--test-threads=1", "--nocapture"]);
        let run = simulator
            .run_function(&exe, &args, "*sim_region_under_test*")
            .or_explain();
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

/// Writes a sysfs-style cache directory: (level, type, size, ways), 64 B lines.
fn fake_sysfs(caches: &[(u32, &str, &str, u32)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (i, (level, kind, size, ways)) in caches.iter().enumerate() {
        let d = dir.path().join(format!("index{i}"));
        std::fs::create_dir(&d).unwrap();
        for (name, value) in [
            ("level", level.to_string()),
            ("type", kind.to_string()),
            ("size", size.to_string()),
            ("ways_of_associativity", ways.to_string()),
            ("coherency_line_size", "64".to_owned()),
        ] {
            std::fs::write(d.join(name), format!("{value}\n")).unwrap();
        }
    }
    dir
}

#[test]
fn valgrind_accepts_an_adjusted_non_power_of_two_last_level() {
    // A Xeon's 35.75 MiB 11-way L3 (53,248 sets): valgrind rejects it as given.
    let dir = fake_sysfs(&[
        (1, "Data", "48K", 12),
        (1, "Instruction", "32K", 8),
        (2, "Unified", "2048K", 16),
        (3, "Unified", "36608K", 11),
    ]);
    let geometry = sim::CacheGeometry::from_dir(dir.path()).or_explain();
    let reported = geometry.ll_reported.expect("the L3 needs adjusting");
    assert_eq!((reported.size_bytes, reported.ways), (36_608 * 1024, 11));
    assert_eq!((geometry.ll.size_bytes, geometry.ll.ways), (36 << 20, 18));
    let valgrind = std::env::var_os(sim::VALGRIND_ENV).unwrap_or_else(|| "valgrind".into());
    let simulator = sim::Simulator::with(
        which(&valgrind).expect("valgrind on PATH (scripts/deps.sh)"),
        Some(geometry),
    );
    assert!(
        simulator
            .notes()
            .iter()
            .any(|n| n.contains("35.75 MiB 11-way") && n.contains("36 MiB 18-way")),
        "{:?}",
        simulator.notes()
    );
    let run = simulator.run_command("true".as_ref(), &[]).or_explain();
    assert_eq!(run.exit_code, 0);
    assert!(run.counts.instructions > 0);
    assert_eq!(run.notes, simulator.notes());
}

/// `name` on `PATH` (or as given, if it is a path).
fn which(name: &std::ffi::OsStr) -> Option<PathBuf> {
    let path = PathBuf::from(name);
    if path.components().count() > 1 {
        return Some(path);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

#[test]
fn valgrind_missing_says_how_to_install() {
    // Whatever sysfs says (or lacks): this test is about valgrind missing.
    let err = sim::Simulator::with(
        PathBuf::from("/nonexistent/valgrind"),
        sim::CacheGeometry::from_sysfs().ok(),
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
