//! `frugal rightsize` end to end: the demo, the formats, malformed input, catalogs, the article
//! policy and `--verify`.

use std::process::Output;

fn frugal(args: &[&str]) -> Output {
    crate::util::frugal()
        .arg("rightsize")
        .args(args)
        .output()
        .expect("the frugal binary runs")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn no_arguments_analyses_the_labelled_synthetic_sample() {
    let out = frugal(&[]);
    let text = stdout(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("SYNTHETIC sample"));
    assert!(text.starts_with("SYNTHETIC SAMPLE DATA"), "{text}");
    assert!(text.contains("checkout-api    m7i.xlarge"), "{text}");
    assert!(text.contains("as of 2026-07-20"));
    assert!(text.contains("M/M/c"));
    assert!(text.contains("DISAGREE: the article steps down to m7i.xlarge"));
}

#[test]
fn every_format_renders() {
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&frugal(&["--demo", "--format", "json"]))).unwrap();
    assert_eq!(json["synthetic"], true);
    assert_eq!(json["prices"]["price_date"], "2026-07-20");
    assert_eq!(json["recommendations"].as_array().unwrap().len(), 5);
    let csv = stdout(&frugal(&["--demo", "--format", "csv"]));
    assert_eq!(csv.lines().count(), 6);
    assert!(csv.starts_with("workload,source,current_type,finding,"));
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("r.html");
    stdout(&frugal(&[
        "--demo",
        "--format",
        "html",
        "-o",
        html.to_str().unwrap(),
    ]));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.ends_with("</html>\n"));
    assert_eq!(
        page.matches("<svg").count(),
        10,
        "a CPU and a memory plot each"
    );
    assert!(!page.contains("<script"), "self-contained, static");
}

#[test]
fn sample_file_round_trip_and_article_policy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sample.csv");
    stdout(&frugal(&["--write-sample", path.to_str().unwrap()]));
    let text = stdout(&frugal(&[path.to_str().unwrap()]));
    assert!(
        !text.contains("SYNTHETIC SAMPLE DATA"),
        "a file is not labelled as the demo"
    );
    assert!(text.contains("report-batch    m7i.2xlarge"), "{text}");
    let article = stdout(&frugal(&[path.to_str().unwrap(), "--policy", "article"]));
    // The article's step for report-batch lands at 94% of 4 vCPUs: above the ceiling, high risk.
    let line = article
        .lines()
        .find(|l| l.starts_with("report-batch"))
        .unwrap();
    assert!(
        line.contains("m7i.xlarge") && line.contains("94%  3 high"),
        "{line}"
    );
}

#[test]
fn malformed_input_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(
        &path,
        "timestamp,workload,instance_type,cpu_cores,memory_bytes\n1714521600,a,m7i.large,0.5,100\n1714521900,a,m7i.large,NaN,100\n",
    )
    .unwrap();
    let out = frugal(&[path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        format!(
            "frugal: error: {}: line 3: cpu_cores `NaN` is not a finite number",
            path.display()
        )
    );
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    let out = frugal(&[empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty file"));
    let out = frugal(&[dir.path().join("missing.csv").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn catalog_override_and_perf_factor() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d.csv");
    let mut csv = String::from("timestamp,workload,instance_type,cpu_cores,memory_bytes\n");
    for i in 0..36 * 12 {
        csv += &format!(
            "{},svc,m7i.xlarge,0.6,1000000000\n",
            1_714_521_600 + i * 300
        );
    }
    std::fs::write(&data, csv).unwrap();
    let catalog = dir.path().join("cat.json");
    std::fs::write(
        &catalog,
        r#"{"price_date": "2025-01-01", "source": "test prices",
            "instances": [{"name": "t3.small", "family": "m7i", "vcpus": 2, "memory_gib": 2, "usd_per_hour": 0.02}]}"#,
    )
    .unwrap();
    let text = stdout(&frugal(&[
        data.to_str().unwrap(),
        "--catalog",
        catalog.to_str().unwrap(),
    ]));
    assert!(
        text.contains("svc       m7i.xlarge") && text.contains("t3.small"),
        "{text}"
    );
    assert!(
        text.contains("test prices, region us-east-1, as of 2025-01-01"),
        "{text}"
    );
    // A slower family (half the work per vCPU) needs twice the vCPUs: 0.6 cores -> 1.2 on m7g.
    let json = stdout(&frugal(&[
        data.to_str().unwrap(),
        "--allow-arch-change",
        "--perf-factor",
        "m7g=0.5",
        "--format",
        "json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let m7g = v["recommendations"][0]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["instance_type"] == "m7g.large")
        .unwrap()
        .clone();
    assert!(
        (m7g["cpu_cores"].as_f64().unwrap() - 1.2).abs() < 1e-9,
        "{m7g}"
    );
    let out = frugal(&["--demo", "--perf-factor", "z9=2"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown family z9"));
}

/// Runs the real service confined to 2 and then 1 CPU under constant-rate load (short runs).
#[test]
fn verify_replays_current_and_candidate() {
    let out = frugal(&[
        "--demo",
        "--verify",
        "--verify-workload",
        "checkout-api",
        "--verify-duration",
        "1s",
        "--verify-warmup",
        "500ms",
        "--format",
        "json",
    ]);
    // The replay servers' own lines (shutdown messages) stay out of the output.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("frugal serve:"), "{err}");
    let json = stdout(&out);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let recs = v["recommendations"].as_array().unwrap();
    let checkout = recs
        .iter()
        .find(|r| r["workload"] == "checkout-api")
        .unwrap();
    let ver = &checkout["verification"];
    // The CPU count the replay itself saw (its allowed CPUs), not this test's guess.
    let machine = ver["machine_cpus"].as_u64().unwrap() as usize;
    let symmetric = ver["symmetric"].as_bool().unwrap();
    // m7i.xlarge (4 vCPU) -> m7i.large (2 vCPU), planned by the library's own function.
    match frugal_rightsize::plan_replay(4, 2, machine, symmetric) {
        Ok((k_cur, cand)) if ver["verdict"]["verdict"] != "not-run" => {
            assert_eq!(ver["current"]["cpus"].as_f64(), Some(k_cur as f64), "{ver}");
            assert_eq!(ver["candidate"]["cpus"].as_f64(), Some(cand), "{ver}");
            if machine >= 2 {
                assert_eq!(
                    ver["load_generator_cpu"].is_u64(),
                    symmetric,
                    "a reserved load-generator CPU exactly when the runs are symmetric: {ver}"
                );
            }
            assert!(!ver["arrangement"].as_str().unwrap().is_empty(), "{ver}");
            let target = ver["latency_target_ms"].as_f64().unwrap();
            assert!(target.is_finite() && target > 0.0, "{ver}");
            for run in ["current", "candidate"] {
                let m = &ver[run];
                assert!(m["requests_ok"].as_u64().unwrap() > 0, "{run}: {ver}");
                let p99 = m["p99_ms"].as_f64().unwrap();
                assert!(p99.is_finite() && p99 > 0.0, "{run} p99: {ver}");
                let p50 = m["p50_ms"].as_f64().unwrap();
                assert!(
                    p50.is_finite() && p50 > 0.0 && p50 <= p99,
                    "{run} p50: {ver}"
                );
                let fraction = m["sla_fraction"].as_f64().unwrap();
                assert!((0.0..=1.0).contains(&fraction), "{run} fraction: {ver}");
                // pass follows from the reported numbers: SLA fraction, errors, achieved rate.
                let (ok, errors) = (
                    m["requests_ok"].as_u64().unwrap(),
                    m["errors"].as_u64().unwrap(),
                );
                let target_rps = m["target_rps"].as_f64().unwrap();
                assert!(target_rps >= 1.0 && target_rps.fract() == 0.0, "{ver}");
                let achieved = m["achieved_rps"].as_f64().unwrap();
                let expected = fraction >= 0.995
                    && errors as f64 <= 0.005 * (ok + errors) as f64
                    && achieved >= 0.95 * target_rps;
                // JSON may round the last bit: judge only away from the thresholds.
                let on_edge =
                    (fraction - 0.995).abs() < 1e-9 || (achieved - 0.95 * target_rps).abs() < 1e-6;
                if !on_edge {
                    assert_eq!(m["pass"].as_bool(), Some(expected), "{run}: {ver}");
                }
            }
            let expected = if ver["candidate"]["pass"] == true {
                "pass"
            } else {
                "fail"
            };
            assert_eq!(ver["verdict"]["verdict"], expected, "{ver}");
        }
        Ok(_) => {
            // Not run only when a needed cgroup quota could not be set: it says so.
            let why = ver["verdict"]["why"].as_str().unwrap();
            assert!(why.contains("cgroup CPU quota"), "{ver}");
        }
        Err(_) => assert_eq!(ver["verdict"]["verdict"], "not-run", "{ver}"),
    }
    // Workloads not selected are not replayed.
    let batch = recs
        .iter()
        .find(|r| r["workload"] == "report-batch")
        .unwrap();
    assert!(batch["verification"].is_null());
}
