//! Load from many generators: two `frugal load --hdr-log` processes against one `frugal serve`,
//! merged with `frugal load merge`, beside one process with the same total connections and rate;
//! logs that were not recorded together (runs in sequence, the same file twice) are refused.
//!
//! Bounded: constant rate, 3 s measured each, a server on 127.0.0.1 port 0 killed on drop. The
//! check that merged percentiles equal those of the union of the raw samples is the unit test
//! `merged_percentiles_are_those_of_the_union_of_the_samples` in frugal-workloads (raw samples are
//! not visible from here); this test checks the processes' own reports against the merge.

use std::process::{Command, Stdio};

use std::time::Duration;

use crate::http::{Answer, FakeServer};
use crate::util::{output_within, Server, FRUGAL, HEAVY, PATIENCE};

fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn two_generators_merged_match_one_and_their_own_reports() {
    let _heavy = HEAVY.lock();
    let server = Server::start(&["--work-us", "200"]);
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let load = |conns: &str, rate: &str, name: &str| {
        Command::new(FRUGAL)
            .args(["load", &url, "-c", conns, "-d", "3s", "--warmup", "500ms"])
            .args(["--rate", rate, "-q", "--json"])
            .arg(p(&format!("{name}.json")))
            .arg("--hdr-log")
            .arg(p(&format!("{name}.hlog")))
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    // Two generators at the same time, each half the connections and half the rate.
    let (mut a, mut b) = (load("8", "200", "a"), load("8", "200", "b"));
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    assert!(load("16", "400", "one").wait().unwrap().success());

    let out = Command::new(FRUGAL)
        .args(["load", "merge", "--json"])
        .arg(p("merged.json"))
        .arg(p("a.hlog"))
        .arg(p("b.hlog"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 generators merged"), "{text}");
    let merged = json(&p("merged.json"));
    let (ja, jb, one) = (json(&p("a.json")), json(&p("b.json")), json(&p("one.json")));
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap();
    // The merge keeps the window in which both were measuring; two processes spawned together
    // start within half an interval of each other on an idle machine, and then nothing is left
    // out. On a loaded machine one may start later: then the merge trimmed, and says so.
    let trimmed: f64 = merged["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["trimmed_s"].as_f64().unwrap())
        .sum();
    let logged: u64 = merged["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["requests_ok"].as_u64().unwrap())
        .sum();
    assert_eq!(n(&merged, "requests_ok"), logged);
    if trimmed > 0.0 {
        assert!(text.contains("merged over the"), "{text}");
        assert!(n(&merged, "requests_ok") < n(&ja, "requests_ok") + n(&jb, "requests_ok"));
        return;
    }
    // Every response and error of both generators, no more, no fewer.
    assert_eq!(
        n(&merged, "requests_ok"),
        n(&ja, "requests_ok") + n(&jb, "requests_ok")
    );
    let errors = |v: &serde_json::Value| {
        ["connect", "timeout", "status", "reset", "other"]
            .iter()
            .map(|k| v["errors"][k].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(n(&merged, "errors"), errors(&ja) + errors(&jb));
    // Throughput summed; at a constant rate it matches the single process's (the schedule, not
    // the machine's speed, sets it).
    let rps = merged["achieved_rps"].as_f64().unwrap();
    let sum = ja["achieved_rps"].as_f64().unwrap() + jb["achieved_rps"].as_f64().unwrap();
    assert!(
        (rps - sum).abs() <= 0.02 * sum,
        "merged {rps} vs summed {sum}"
    );
    let single = one["achieved_rps"].as_f64().unwrap();
    assert!(
        (rps - single).abs() <= 0.1 * single,
        "merged {rps} vs one process {single}"
    );
    // A quantile of the union of two samples lies between the two samples' quantiles: checked
    // for the corrected and uncorrected p99.
    for (m, g) in [
        ("latency_ns", "latency_ns"),
        ("latency_corrected_ns", "latency_corrected_ns"),
    ] {
        let p99 = merged[m]["p99"].as_u64().unwrap() as f64;
        let (x, y) = (
            ja[g]["p99"].as_u64().unwrap() as f64,
            jb[g]["p99"].as_u64().unwrap() as f64,
        );
        // 0.1%: the histograms' resolution (3 significant digits).
        assert!(
            p99 >= x.min(y) * 0.999 && p99 <= x.max(y) * 1.001,
            "{m}: merged p99 {p99} outside [{x}, {y}]"
        );
    }
}

/// Two runs one after the other share no time: their sum is a load the service never saw.
/// Merging them fails and names each file's span; the same file twice is a usage error.
#[test]
fn logs_not_recorded_together_are_refused() {
    let server = Server::start(&["--work-us", "0"]);
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    for name in ["first", "second"] {
        let status = Command::new(FRUGAL)
            .args(["load", &url, "-c", "2", "-d", "1s", "--warmup", "0s"])
            .args(["--rate", "100", "-q", "--hdr-log"])
            .arg(p(&format!("{name}.hlog")))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
    let merge = |files: &[&str]| {
        let mut cmd = Command::new(FRUGAL);
        cmd.args(["load", "merge"]);
        cmd.args(files.iter().map(|f| p(f)));
        output_within(&mut cmd, PATIENCE).expect("merge ends")
    };
    let out = merge(&["first.hlog", "second.hlog"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not recorded at the same time"), "{err}");
    assert!(
        err.contains("first.hlog 20") && err.contains("second.hlog 20"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing printed as if merged");

    let out = merge(&["first.hlog", "first.hlog"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("are the same file"), "{err}");
    assert!(out.stdout.is_empty(), "nothing printed as if merged");
}

/// Two generators whose every request failed (the service answers 503): the merge has no
/// latency to report. It prints none (null in JSON, empty in CSV, "not measured" in the table),
/// says why, and exits 1, as `frugal load` itself does.
#[test]
fn a_merge_without_a_successful_request_measured_nothing_and_fails() {
    let server = FakeServer::start(|_, _| {
        Answer::After(
            Duration::ZERO,
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n",
        )
    });
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let load = |name: &str| {
        Command::new(FRUGAL)
            .args(["load", &url, "-c", "2", "-d", "1s", "--warmup", "0s"])
            .args(["--rate", "50", "-q", "--hdr-log"])
            .arg(p(name))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (load("a.hlog"), load("b.hlog"));
    // Each generator fails on its own: no successful response.
    assert_eq!(a.wait().unwrap().code(), Some(1));
    assert_eq!(b.wait().unwrap().code(), Some(1));

    let mut cmd = Command::new(FRUGAL);
    cmd.args(["load", "merge", "--json"])
        .arg(p("merged.json"))
        .arg("--csv")
        .arg(p("merged.csv"))
        .arg(p("a.hlog"))
        .arg(p("b.hlog"));
    let out = output_within(&mut cmd, PATIENCE).expect("merge ends");
    let (text, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{text}{err}");
    assert!(
        err.contains("no successful request in the merged window"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        text.contains("not measured: no successful request"),
        "{text}"
    );
    assert!(!text.contains(" ms"), "no latency printed: {text}");

    let merged = json(&p("merged.json"));
    assert_eq!(merged["requests_ok"], 0, "{merged}");
    assert!(merged["errors"].as_u64().unwrap() > 0, "{merged}");
    assert!(merged["latency_ns"].is_null(), "{merged}");
    assert!(merged["latency_corrected_ns"].is_null(), "{merged}");

    let csv = std::fs::read_to_string(p("merged.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = csv.lines().last().unwrap().split(',').collect();
    assert_eq!(row[0], "merged", "{csv}");
    for (h, cell) in header.iter().zip(&row) {
        if h.starts_with("latency_") || h.starts_with("corrected_") {
            assert!(cell.is_empty(), "{h} = {cell:?}: {csv}");
        }
    }
}
