//! `frugal bench fleet` end to end on a tiny fleet: it starts VictoriaMetrics, fills it, measures
//! both paths in child processes and writes JSON. No timing is asserted: only that both paths
//! ran, saw every workload, agree on the savings, and that pushdown received fewer bytes.

use crate::util::{frugal, HEAVY};

#[test]
fn bench_fleet_measures_both_paths_and_writes_json() {
    let _heavy = HEAVY.lock();
    assert!(
        std::path::Path::new("/usr/bin/victoria-metrics").exists(),
        "/usr/bin/victoria-metrics is missing: run scripts/deps.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("fleet.json");
    let csv = dir.path().join("fleet.csv");
    let out = frugal()
        .args(["bench", "fleet", "--workloads", "4", "--days", "0.5"])
        .args(["--repeats", "1", "--json"])
        .arg(&json)
        .arg("--csv")
        .arg(&csv)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("pushdown vs pull"), "{text}");
    assert!(text.contains("same fleet savings"), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        assert_eq!(r["workloads"], 4, "{r}");
        assert!(r["peak_rss_bytes"].as_u64().unwrap() > 0);
        // The engine was started here: its CPU time during the run is known (a tiny fleet's
        // runs may take less than the 10 ms the kernel counts in).
        assert!(r["engine_cpu_s"].as_f64().is_some_and(|c| c >= 0.0), "{r}");
    }
    assert!(report["engine_cpu_s"][0]["median"].as_f64().is_some());
    let bytes = |m: &str| {
        runs.iter().find(|r| r["mode"] == m).unwrap()["bytes"]
            .as_u64()
            .unwrap()
    };
    assert!(bytes("push") < bytes("pull"), "{runs:?}");
    assert_eq!(report["points_per_metric"], 4 * (43_200 / 15 + 1));
    assert_eq!(report["schema"], "frugal-bench-fleet");
    assert_eq!(report["savings_agree"], true);
    // One run: median, min and max are that run's.
    let push = runs.iter().find(|r| r["mode"] == "push").unwrap();
    assert_eq!(report["push"][1]["median"], push["bytes"].as_f64().unwrap());
    // The CSV: one row per run, raw numbers.
    let csv = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "mode,wall_s,bytes,requests,workloads,peak_rss_bytes,engine_cpu_s,total_monthly_savings_usd"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[1..].iter().all(|l| l.split(',').nth(4) == Some("4")),
        "{csv}"
    );
}

#[test]
fn bench_fleet_takes_the_common_output_options() {
    // The grammar, checked without running a benchmark: clap refuses what it does not know.
    let help = frugal()
        .args(["bench", "fleet", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--format",
        "--json",
        "--csv",
        "--markdown",
        "--quiet",
        "--color",
    ] {
        assert!(text.contains(option), "{option} missing:\n{text}");
    }
}
