//! `frugal bench io` end to end: a 1-second run on a small file at QD 4.

use std::path::Path;

use frugal_workloads::io::{IoMode, IoReport};

use crate::util::frugal;

fn bench_io(file: &Path, json: &Path, extra: &[&str]) -> (IoReport, String) {
    let out = frugal()
        .args([
            "bench", "io", "--size", "4M", "--qd", "4", "-d", "1s", "--file",
        ])
        .arg(file)
        .arg("--json")
        .arg(json)
        .args(extra)
        .output()
        .expect("the frugal binary runs");
    assert!(
        out.status.success(),
        "frugal bench io failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let report: IoReport = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    (report, stdout)
}

fn assert_sane(report: &IoReport) {
    assert!(report.ops > 0);
    assert_eq!(report.bytes, report.ops * 4096);
    assert_eq!(report.queue_depth, 4);
    assert!(report.iops > 0.0);
    let l = &report.latency_ns;
    assert!(
        l.min <= l.p50 && l.p50 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max,
        "{l:?}"
    );
    let cpu = report.cpu.expect("getrusage works on Linux");
    assert!(cpu.cpu_ns_per_io >= 0.0);
}

#[test]
fn one_second_direct_run_creates_the_file_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("io.dat");
    let (report, stdout) = bench_io(&file, &dir.path().join("io.json"), &[]);
    assert!(report.file_created);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 4 << 20);
    assert!(report.direct_requested);
    // Direct, or buffered with the fallback said out loud.
    let fallback = report.notes.iter().any(|n| n.starts_with("FALLBACK"));
    assert_eq!(
        report.mode == IoMode::Buffered,
        fallback,
        "{:?}",
        report.notes
    );
    assert_sane(&report);
    assert!(stdout.contains("frugal io_uring"), "{stdout}");
}

#[test]
fn buffered_run_says_the_page_cache_may_serve_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (report, stdout) = bench_io(
        &dir.path().join("io.dat"),
        &dir.path().join("io.json"),
        &["--buffered"],
    );
    assert_eq!(report.mode, IoMode::Buffered);
    assert!(!report.direct_requested);
    assert_sane(&report);
    assert!(stdout.contains("page cache"), "{stdout}");
}

#[test]
fn tmpfs_direct_run_reports_what_happened() {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("skipped: no /dev/shm");
        return;
    }
    let dir = tempfile::tempdir_in(shm).unwrap();
    let (report, stdout) = bench_io(&dir.path().join("io.dat"), &dir.path().join("io.json"), &[]);
    assert_sane(&report);
    match report.mode {
        // Before Linux 6.6 tmpfs refuses O_DIRECT: the fallback must be marked.
        IoMode::Buffered => assert!(stdout.contains("FALLBACK: O_DIRECT refused"), "{stdout}"),
        // Since 6.6 it accepts O_DIRECT, but the data is in memory: say so.
        IoMode::Direct => assert!(stdout.contains("tmpfs accepts O_DIRECT"), "{stdout}"),
    }
}

#[test]
fn compare_fio_without_fio_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("io.json");
    let out = frugal()
        .args(["bench", "io", "--size", "1M", "--qd", "2", "-d", "100ms"])
        .args(["--compare-fio", "--buffered", "--file"])
        .arg(dir.path().join("io.dat"))
        .arg("--json")
        .arg(&json)
        .env("PATH", "")
        .output()
        .expect("the frugal binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("apt-get install -y fio"), "{stdout}");
    let report: IoReport = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert!(report.fio.is_none());
}
