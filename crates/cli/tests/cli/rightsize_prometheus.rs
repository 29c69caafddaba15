//! `frugal rightsize --prometheus` against real engines — Prometheus (Debian's `prometheus`
//! package, which also ships `promtool`) and VictoriaMetrics (Debian's `victoria-metrics`, single
//! node) — and against fake servers that fail in the ways real ones do.
//!
//! Each real server is started by the test on 127.0.0.1 with a free port and a temporary storage
//! directory, fed with the same synthetic fleet (Prometheus beforehand by `promtool tsdb
//! create-blocks-from openmetrics`, VictoriaMetrics through its import API), bounded in time and
//! killed when the test ends. Without the binaries the tests fail: run scripts/deps.sh.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::util::{free_port, KillOnDrop};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";
const VICTORIA: &str = "/usr/bin/victoria-metrics";

fn frugal(args: &[&str]) -> Output {
    crate::util::frugal()
        .arg("rightsize")
        .args(args)
        .output()
        .expect("the frugal binary runs")
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

/// 36 hours of 30-second samples for two jobs, as OpenMetrics.
///
/// `api` uses 0.4 cores plus 0.4 in a 15-minute burst every 3 hours; `worker` a steady 1.5 cores.
fn openmetrics(start: i64, end: i64) -> String {
    let mut out = String::new();
    out += "# TYPE process_cpu_seconds counter\n";
    for (job, itype) in [("api", "m7i.xlarge"), ("worker", "c7i.2xlarge")] {
        let mut total = 0.0;
        let mut t = start;
        while t <= end {
            let cores = if job == "api" {
                0.4 + if (t - start) % 10_800 < 900 { 0.4 } else { 0.0 }
            } else {
                1.5
            };
            total += cores * 30.0;
            out += &format!(
                "process_cpu_seconds_total{{job=\"{job}\",instance_type=\"{itype}\"}} {total} {t}\n"
            );
            t += 30;
        }
    }
    out += "# TYPE process_resident_memory_bytes gauge\n";
    for (job, itype, gib) in [("api", "m7i.xlarge", 3u64), ("worker", "c7i.2xlarge", 10)] {
        let mut t = start;
        while t <= end {
            out += &format!(
                "process_resident_memory_bytes{{job=\"{job}\",instance_type=\"{itype}\"}} {} {t}\n",
                gib << 30
            );
            t += 30;
        }
    }
    out += "# EOF\n";
    out
}

fn start_prometheus(dir: &Path, start: i64, end: i64) -> (KillOnDrop, u16) {
    start_prometheus_with(dir, &openmetrics(start, end))
}

fn start_prometheus_with(dir: &Path, openmetrics: &str) -> (KillOnDrop, u16) {
    assert!(
        Path::new(PROMETHEUS).exists() && Path::new(PROMTOOL).exists(),
        "{PROMETHEUS} or {PROMTOOL} is missing: run scripts/deps.sh (it installs Debian's \
         `prometheus` package; CI does this)"
    );
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let om = dir.join("input.om");
    std::fs::write(&om, openmetrics).unwrap();
    let out = Command::new(PROMTOOL)
        .args(["tsdb", "create-blocks-from", "openmetrics", "-q"])
        .arg(&om)
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1m\n").unwrap();
    // The port is chosen by binding and releasing it, so another test of this binary may take it
    // before Prometheus binds it: then Prometheus exits saying so and we retry on a new port.
    let log_path = dir.join("prometheus.log");
    for attempt in 1..=5 {
        let port = free_port();
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=30d")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut guard = KillOnDrop(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = guard.0.try_wait().unwrap() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                assert!(
                    log.contains("address already in use") && attempt < 5,
                    "prometheus exited ({status}) on attempt {attempt}; log: {log}"
                );
                break; // port taken: next attempt
            }
            if http_get(port, "/-/ready")
                .is_some_and(|r| r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200"))
            {
                return (guard, port);
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not become ready in 60 s; log: {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    unreachable!("the last attempt returns or panics")
}

#[test]
fn real_prometheus_end_to_end() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let end = (now - 3 * 3600) / 3600 * 3600;
    let start = end - 36 * 3600;
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = start_prometheus(dir.path(), start, end);
    let url = format!("http://127.0.0.1:{port}");
    let (s, e) = (start.to_string(), end.to_string());

    // Default process preset, pulling every sample; 10-second steps over 36 h = 12,961 points
    // per series, more than Prometheus's 11,000 limit: the range must be split or Prometheus
    // refuses the query.
    let out = frugal(&[
        "--no-pushdown",
        "--prometheus",
        &url,
        "--instance-type",
        "m7i.xlarge",
        "--start",
        &s,
        "--end",
        &e,
        "--step",
        "10s",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let recs = report["recommendations"].as_array().unwrap();
    assert_eq!(recs.len(), 2);
    let api = recs.iter().find(|r| r["workload"] == "api").unwrap();
    assert_eq!(api["instance_type"], "m7i.xlarge");
    let usage = &api["usage"];
    assert!(usage["span_hours"].as_f64().unwrap() > 34.0, "{usage}");
    assert!(usage["windows"].as_u64().unwrap() > 400, "{usage}");
    let mean = usage["mean_cpu_cores"].as_f64().unwrap();
    assert!(
        (0.42..0.5).contains(&mean),
        "mean {mean}: 0.4 + 0.4 x 1/12 = 0.433 expected"
    );
    let p = usage["percentile_cpu_cores"].as_f64().unwrap();
    assert!(
        (0.75..0.85).contains(&p),
        "P99.5 {p}: the bursts reach 0.8 cores"
    );
    assert_eq!(
        usage["peak_memory_bytes"].as_f64().unwrap(),
        (3u64 << 30) as f64
    );
    assert_eq!(api["finding"], "over-provisioned");

    // Custom query keeping the instance_type label: the type comes from the series.
    let out = frugal(&[
        "--prometheus",
        &url,
        "--start",
        &s,
        "--end",
        &e,
        "--format",
        "csv",
        "--query-cpu",
        "avg by (job, instance_type) (rate(process_cpu_seconds_total[2m]))",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(
        csv.lines()
            .any(|l| l.starts_with("worker,") && l.contains(",c7i.2xlarge,")),
        "{csv}"
    );

    // A query Prometheus rejects: a clear message and a non-zero exit.
    let out = frugal(&[
        "--prometheus",
        &url,
        "--instance-type",
        "m7i.large",
        "--start",
        &s,
        "--end",
        &e,
        "--query-cpu",
        "rate(",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("query failed (HTTP 400 Bad Request, bad_data)"),
        "{err}"
    );

    // No instance type anywhere.
    let out = frugal(&["--prometheus", &url, "--start", &s, "--end", &e]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --instance-type"));
}

#[test]
fn unreachable_prometheus_is_a_clear_error() {
    let port = free_port(); // bound and released: nothing listens there now
    let url = format!("http://127.0.0.1:{port}");
    let out = frugal(&[
        "--prometheus",
        &url,
        "--instance-type",
        "m7i.large",
        "--since",
        "1h",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("prometheus at {url}: cannot query")),
        "{err}"
    );
    assert!(err.contains("check the URL"), "{err}");
}

#[test]
fn slow_prometheus_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and never answer, for at most 20 s.
    let holder = std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let mut held = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && held.is_empty() {
            if let Ok((s, _)) = listener.accept() {
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_secs(3));
    });
    let url = format!("http://127.0.0.1:{port}");
    let out = frugal(&[
        "--prometheus",
        &url,
        "--instance-type",
        "m7i.large",
        "--since",
        "1h",
        "--prometheus-timeout",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no answer within 1s"), "{err}");
    holder.join().unwrap();
}

#[test]
fn non_prometheus_answer_is_a_clear_error() {
    // A proxy's login page where the API should be.
    let (port, server) = fake_server(1, |_| {
        let body = "<html>login</html>";
        format!(
            "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    });
    let url = format!("http://127.0.0.1:{port}");
    let out = frugal(&[
        "--prometheus",
        &url,
        "--instance-type",
        "m7i.large",
        "--since",
        "1h",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("502") && err.contains("not Prometheus API JSON"),
        "{err}"
    );
    server.join().unwrap();
}

/// Unix seconds: a 36-hour range ending a few hours ago, on an hour boundary.
fn recent_range() -> (i64, i64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let end = (now - 3 * 3600) / 3600 * 3600;
    (end - 36 * 3600, end)
}

/// One synthetic gauge sample: (metric, labels, value, Unix s).
type Point = (&'static str, String, String, i64);

/// The synthetic fleet: four healthy workloads (gauges `fleet_cpu_cores`, `fleet_memory_bytes`)
/// and the misbehaving series of the bad-input findings (`bad_*`, `multi_cpu_cores`), every 30 s.
fn fleet(start: i64, end: i64) -> Vec<Point> {
    let mut out = Vec::new();
    let healthy: [(&str, &str, f64); 4] = [
        ("api", "m7i.xlarge", 3.0),
        ("worker", "c7i.2xlarge", 10.0),
        ("batch", "r7i.large", 12.0),
        ("cache", "m7i.large", 7.5),
    ];
    let mut i = 0u64;
    let mut t = start;
    while t <= end {
        let noise = (i * 7919 % 101) as f64 / 100.0; // deterministic, 0..1
        for (job, itype, gib) in healthy {
            let cpu = match job {
                "api" => 0.4 + if (t - start) % 10_800 < 900 { 0.4 } else { 0.0 } + 0.05 * noise,
                "worker" => 1.5 + 0.3 * ((t - start) as f64 / 3600.0).sin(),
                "batch" => 1.45 + 0.25 * noise,
                _ => 0.1 + 0.02 * noise,
            };
            let labels = format!("job=\"{job}\",instance_type=\"{itype}\"");
            out.push(("fleet_cpu_cores", labels.clone(), format!("{cpu}"), t));
            let mem = gib * (1u64 << 30) as f64 * (0.9 + 0.1 * noise);
            out.push(("fleet_memory_bytes", labels.clone(), format!("{mem}"), t));
            // 4 ms of CPU per request; p99 latency 20-30 ms.
            out.push(("fleet_rps", labels.clone(), format!("{}", cpu / 0.004), t));
            let latency = 20.0 + 10.0 * noise;
            out.push(("fleet_latency_ms", labels, format!("{latency}"), t));
        }
        let it = "instance_type=\"m7i.large\"";
        let gb = format!("{}", 2u64 << 30);
        // Half the values NaN, 2% +Inf, at 30 and at 60 s steps.
        let partial = if i % 4 < 2 {
            "NaN".to_owned()
        } else if i % 50 < 2 {
            "+Inf".to_owned()
        } else {
            "0.5".to_owned()
        };
        for (job, cpu, mem) in [
            ("good", "0.5".to_owned(), true),
            ("nan", "NaN".to_owned(), true),
            ("partial", partial, true),
            ("nomem", "0.5".to_owned(), false),
        ] {
            let labels = format!("job=\"{job}\",{it}");
            out.push(("bad_cpu_cores", labels.clone(), cpu, t));
            if mem {
                out.push(("bad_memory_bytes", labels, gb.clone(), t));
            }
        }
        out.push(("bad_cpu_cores", it.to_owned(), "0.5".to_owned(), t)); // no job label
        let memonly = format!("job=\"memonly\",{it}"); // memory, no CPU
        out.push(("bad_memory_bytes", memonly, gb.clone(), t));
        for (inst, cpu) in [("a", "1.9"), ("b", "0.5"), ("c", "0.2")] {
            let labels = format!("job=\"api\",instance=\"{inst}\",{it}");
            out.push(("multi_cpu_cores", labels, cpu.to_owned(), t));
        }
        t += 30;
        i += 1;
    }
    out
}

fn fleet_openmetrics(points: &[Point]) -> String {
    let mut by_metric: std::collections::BTreeMap<&str, Vec<&Point>> = Default::default();
    for p in points {
        by_metric.entry(p.0).or_default().push(p);
    }
    let mut out = String::new();
    for (metric, list) in by_metric {
        out += &format!("# TYPE {metric} gauge\n");
        // OpenMetrics wants each series' samples together, in time order.
        let mut sorted = list;
        sorted.sort_by(|a, b| a.1.cmp(&b.1).then(a.3.cmp(&b.3)));
        for (m, l, v, t) in sorted {
            out += &format!("{m}{{{l}}} {v} {t}\n");
        }
    }
    out += "# EOF\n";
    out
}

/// The healthy part of the fleet as frugal's CSV input.
fn fleet_csv(points: &[Point]) -> String {
    let mut rows: std::collections::BTreeMap<(String, i64), [String; 5]> = Default::default();
    for (m, l, v, t) in points {
        if !m.starts_with("fleet_") {
            continue;
        }
        let job = l.split('"').nth(1).unwrap().to_owned();
        let itype = l.split('"').nth(3).unwrap().to_owned();
        let e = rows.entry((job, *t)).or_default();
        e[0] = itype;
        let column = match *m {
            "fleet_cpu_cores" => 1,
            "fleet_memory_bytes" => 2,
            "fleet_rps" => 3,
            _ => 4,
        };
        e[column] = v.clone();
    }
    let mut out = String::from(
        "timestamp,workload,instance_type,cpu_cores,memory_bytes,requests_per_second,latency_p99_ms\n",
    );
    for ((job, t), [itype, cpu, mem, rps, latency]) in rows {
        out += &format!("{t},{job},{itype},{cpu},{mem},{rps},{latency}\n");
    }
    out
}

fn http_post(port: u16, path: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

/// Starts VictoriaMetrics (single node) and imports `points` through its Prometheus text API.
fn start_victoria(dir: &Path, points: &[Point]) -> (KillOnDrop, u16) {
    assert!(
        Path::new(VICTORIA).exists(),
        "{VICTORIA} is missing: run scripts/deps.sh (it installs Debian's `victoria-metrics` \
         package; CI does this)"
    );
    let log_path = dir.join("victoria.log");
    for attempt in 1..=5 {
        let port = free_port();
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(VICTORIA)
            .arg(format!(
                "-storageDataPath={}",
                dir.join(format!("vm{attempt}")).display()
            ))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg("-retentionPeriod=1y")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut guard = KillOnDrop(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let ready = loop {
            if let Some(status) = guard.0.try_wait().unwrap() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                assert!(
                    log.contains("address already in use") && attempt < 5,
                    "victoria-metrics exited ({status}) on attempt {attempt}; log: {log}"
                );
                break false;
            }
            if http_get(port, "/health").is_some_and(|r| r.contains(" 200 ")) {
                break true;
            }
            assert!(
                Instant::now() < deadline,
                "victoria-metrics did not become ready in 60 s; log: {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        if !ready {
            continue;
        }
        let mut body = String::new();
        for (m, l, v, t) in points {
            body += &format!("{m}{{{l}}} {v} {}\n", t * 1000);
        }
        let answer = http_post(port, "/api/v1/import/prometheus", body.as_bytes());
        assert!(answer.contains(" 204 "), "import failed: {answer}");
        let flushed = http_get(port, "/internal/force_flush").unwrap_or_default();
        assert!(flushed.contains(" 200 "), "flush failed: {flushed}");
        return (guard, port);
    }
    unreachable!("the last attempt returns or panics")
}

fn frugal_json(args: &[&str]) -> serde_json::Value {
    let out = frugal(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn by_workload(
    report: &serde_json::Value,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    report["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["workload"].as_str().unwrap().to_owned(), r.clone()))
        .collect()
}

/// Same recommendation and finding, statistics within 1%.
fn assert_agree(what: &str, a: &serde_json::Value, b: &serde_json::Value) {
    let (a, b) = (by_workload(a), by_workload(b));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}: workloads"
    );
    for (name, ra) in &a {
        let rb = &b[name];
        assert_eq!(ra["finding"], rb["finding"], "{what}: {name} finding");
        assert_eq!(ra["ours"], rb["ours"], "{what}: {name} recommendation");
        assert_eq!(ra["instance_type"], rb["instance_type"], "{what}: {name}");
        for key in [
            "service.cpu_seconds_per_request",
            "service.peak_rps",
            "service.median_latency_p99_ms",
            "service.target_ms",
            "mean_cpu_cores",
            "percentile_cpu_cores",
            "max_cpu_cores",
            "peak_memory_bytes",
            "span_hours",
            "windows",
            "samples",
        ] {
            let get = |r: &serde_json::Value| {
                let mut v = &r["usage"];
                for part in key.split('.') {
                    v = &v[part];
                }
                v.as_f64()
                    .unwrap_or_else(|| panic!("{what}: {name} has no {key}: {}", r["usage"]))
            };
            let (x, y) = (get(ra), get(rb));
            assert!(
                (x - y).abs() <= 0.01 * x.abs().max(y.abs()),
                "{what}: {name} {key}: {x} vs {y}"
            );
        }
    }
}

const FLEET_QUERIES: [&str; 12] = [
    "--query-cpu",
    "fleet_cpu_cores",
    "--query-memory",
    "fleet_memory_bytes",
    "--query-instances",
    "count by (job) (fleet_memory_bytes)",
    "--workload-label",
    "job",
    "--query-rps",
    "fleet_rps",
    "--query-latency",
    "fleet_latency_ms",
];

#[test]
fn engines_and_paths_agree_with_the_csv_path() {
    let (start, end) = recent_range();
    let points = fleet(start, end);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("fleet.csv");
    std::fs::write(&csv, fleet_csv(&points)).unwrap();
    let prom_dir = dir.path().join("prom");
    let vm_dir = dir.path().join("vm");
    std::fs::create_dir_all(&prom_dir).unwrap();
    std::fs::create_dir_all(&vm_dir).unwrap();
    let (_prom, prom_port) = start_prometheus_with(&prom_dir, &fleet_openmetrics(&points));
    let (_vm, vm_port) = start_victoria(&vm_dir, &points);

    let reference = frugal_json(&[csv.to_str().unwrap(), "--format", "json"]);
    let recs = by_workload(&reference);
    assert_eq!(recs.len(), 4);
    assert_eq!(recs["api"]["finding"], "over-provisioned");
    assert_eq!(recs["batch"]["finding"], "under-provisioned");
    let (s, e) = (start.to_string(), end.to_string());
    for (engine, port) in [("prometheus", prom_port), ("victoria-metrics", vm_port)] {
        let url = format!("http://127.0.0.1:{port}");
        let base = [
            "--prometheus",
            url.as_str(),
            "--start",
            &s,
            "--end",
            &e,
            "--step",
            "30s",
            "--format",
            "json",
        ];
        for extra in [
            &[][..],
            &["--no-pushdown"][..],
            // Several chunks: the percentile then comes from the engine's 5-minute maxima.
            &["--pushdown-max-steps", "500"][..],
        ] {
            let mut args: Vec<&str> = base.to_vec();
            args.extend(FLEET_QUERIES);
            args.extend(extra);
            let report = frugal_json(&args);
            assert_agree(&format!("{engine} {extra:?}"), &reference, &report);
        }
    }
}

#[test]
fn bad_prometheus_input_is_reported_never_silently_dropped() {
    let (start, end) = recent_range();
    let points = fleet(start, end);
    let dir = tempfile::tempdir().unwrap();
    let (_prom, port) = start_prometheus_with(dir.path(), &fleet_openmetrics(&points));
    let url = format!("http://127.0.0.1:{port}");
    let (s, e) = (start.to_string(), end.to_string());
    let base = ["--prometheus", url.as_str(), "--start", &s, "--end", &e];
    let run = |extra: &[&str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(extra);
        frugal(&args)
    };
    for path in [&[][..], &["--no-pushdown"][..]] {
        let bad = |extra: &[&str]| {
            let mut args = vec![
                "--query-cpu",
                "bad_cpu_cores",
                "--query-memory",
                "bad_memory_bytes",
            ];
            args.extend(path);
            args.extend(extra);
            run(&args)
        };
        // Every format: the skipped workloads with their reasons, the summary line, exit 0
        // (two workloads could be analysed).
        let out = bad(&["--format", "json"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{path:?}: {err}");
        assert!(
            err.contains("6 workloads: 2 analysed") && err.contains("4 skipped"),
            "{path:?}: {err} {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["summary"]["skipped"], 4);
        let recs = by_workload(&report);
        assert_eq!(recs["good"]["finding"], "over-provisioned", "{path:?}");
        let reason = |w: &str| recs[w]["reason"].as_str().unwrap_or("").to_owned();
        assert!(
            reason("nan").contains("no usable value"),
            "{path:?}: {recs:?}"
        );
        assert!(
            reason("memonly").contains("the memory query has this workload but the CPU query"),
            "{path:?}: {}",
            reason("memonly")
        );
        assert!(
            reason("nomem").contains("memory query returned no"),
            "{path:?}: {}",
            reason("nomem")
        );
        let unnamed = recs
            .keys()
            .find(|k| k.contains("instance_type"))
            .expect("the series without a job label is a row");
        assert!(reason(unnamed).contains("without the workload label job"));
        // Half the values NaN and 2% +Inf: analysed, and the drop is counted in a note.
        let partial = &recs["partial"];
        assert_eq!(partial["finding"], "over-provisioned", "{path:?}");
        let notes = partial["notes"].to_string();
        assert!(notes.contains("dropped"), "{path:?}: {notes}");
        let mean = partial["usage"]["mean_cpu_cores"].as_f64().unwrap();
        assert!(
            (mean - 0.5).abs() < 1e-9,
            "only the finite 0.5 values count: {mean}"
        );

        let table = String::from_utf8(bad(&[]).stdout).unwrap();
        assert!(
            table.contains("nomem") && table.contains("memory query returned no"),
            "{table}"
        );
        let csv = String::from_utf8(bad(&["--format", "csv"]).stdout).unwrap();
        assert!(
            csv.lines().any(|l| l.starts_with("nan,")
                && l.contains("skipped")
                && l.contains("no usable value")),
            "{csv}"
        );
        let html = String::from_utf8(bad(&["--format", "html"]).stdout).unwrap();
        assert!(
            html.contains("no usable value") && html.contains("4 skipped"),
            "{path:?}"
        );

        // Nothing could be analysed: exit 1, still the report with the reason.
        let mut args = vec![
            "--query-cpu",
            "bad_cpu_cores{job=\"nan\"}",
            "--query-memory",
            "bad_memory_bytes",
        ];
        args.extend(path);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{path:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("no usable value"));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no workload could be analysed"));

        // Three series for one workload: an error naming the label that differs.
        let mut args = vec![
            "--query-cpu",
            "multi_cpu_cores",
            "--query-memory",
            "bad_memory_bytes",
        ];
        args.extend(path);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{path:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("3 series for workload api, differing in instance"),
            "{path:?}: {err}"
        );

        // No series has the workload label: an error, not an empty table.
        let mut args = vec!["--query-cpu", "bad_cpu_cores", "--workload-label", "team"];
        args.extend(path);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{path:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("has the workload label team"),
            "{path:?}: {err}"
        );
    }
}

/// VictoriaMetrics answers pushdown in MetricsQL (`aggr_over_time`, one evaluation for several
/// statistics); a workload with +Inf values takes the second, filtered query: its mean counts
/// only the usable values and the drop is noted, in one chunk and in several.
#[test]
fn victoria_metrics_pushdown_filters_unusable_values() {
    let (start, end) = recent_range();
    let points = fleet(start, end);
    let dir = tempfile::tempdir().unwrap();
    let (_vm, port) = start_victoria(dir.path(), &points);
    let url = format!("http://127.0.0.1:{port}");
    let (s, e) = (start.to_string(), end.to_string());
    for extra in [&[][..], &["--pushdown-max-steps", "500"][..]] {
        let mut args = vec![
            "--prometheus",
            url.as_str(),
            "--start",
            &s,
            "--end",
            &e,
            "--step",
            "30s",
            "--query-cpu",
            "bad_cpu_cores",
            "--query-memory",
            "bad_memory_bytes",
            "--format",
            "json",
        ];
        args.extend(extra);
        let out = frugal(&args);
        assert!(
            out.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let recs = by_workload(&report);
        for job in ["good", "partial"] {
            assert_eq!(recs[job]["finding"], "over-provisioned", "{extra:?}: {job}");
            let mean = recs[job]["usage"]["mean_cpu_cores"].as_f64().unwrap();
            assert!((mean - 0.5).abs() < 1e-9, "{extra:?}: {job} mean {mean}");
            let max = recs[job]["usage"]["max_cpu_cores"].as_f64().unwrap();
            assert!((max - 0.5).abs() < 1e-9, "{extra:?}: {job} max {max}");
        }
        let notes = recs["partial"]["notes"].to_string();
        assert!(notes.contains("dropped"), "{extra:?}: {notes}");
        assert!(!recs["good"]["notes"].to_string().contains("dropped"));
        let reason = recs["nomem"]["reason"].as_str().unwrap_or("");
        assert!(reason.contains("memory query returned no"), "{reason}");
        // Memory +Inf where the CPU is +Inf: the peak is the highest finite value.
        let memory = ["--query-memory", "bad_memory_bytes * bad_cpu_cores * 2"];
        let (i, _) = args
            .iter()
            .enumerate()
            .find(|(_, a)| **a == "--query-memory")
            .unwrap();
        args.splice(i..i + 2, memory);
        let report = frugal_json(&args);
        let peak = by_workload(&report)["partial"]["usage"]["peak_memory_bytes"].as_f64();
        assert_eq!(peak, Some(f64::from(2u32 << 30)), "{extra:?}");
    }
}

/// A fake engine: answers every request with 200 and the JSON `answer(request line)`, for at
/// most `max` requests or 20 s; returns the request lines it saw.
fn fake_engine(
    max: usize,
    answer: impl Fn(&str) -> String + Send + 'static,
) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    fake_server(max, move |line| {
        let body = answer(line);
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    })
}

/// A fake server on a loopback port: answers every request (one a connection) with the whole
/// HTTP response `respond(request line)`, for at most `max` requests or 20 s; returns the
/// request lines it saw. Non-blocking accepts with a deadline: if frugal never connects, the
/// thread still ends.
fn fake_server(
    max: usize,
    respond: impl Fn(&str) -> String + Send + 'static,
) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while seen.len() < max && Instant::now() < deadline {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = vec![0u8; 16 << 10];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            let line = req.lines().next().unwrap_or("").to_owned();
            let _ = s.write_all(respond(&line).as_bytes());
            seen.push(line);
        }
        seen
    });
    (port, handle)
}

fn matrix(series: &[(&str, &str)], start: i64, n: usize) -> String {
    let list: Vec<String> = series
        .iter()
        .map(|(labels, value)| {
            let values: Vec<String> = (0..n)
                .map(|i| format!("[{},\"{value}\"]", start + 60 * i as i64))
                .collect();
            format!(
                "{{\"metric\":{{{labels}}},\"values\":[{}]}}",
                values.join(",")
            )
        })
        .collect();
    format!(
        "{{\"status\":\"success\",\"data\":{{\"resultType\":\"matrix\",\"result\":[{}]}}}}",
        list.join(",")
    )
}

#[test]
fn pull_checks_labels_on_the_first_chunk() {
    // 20 days at 60 s: three chunks per query. The first answer has two series for job=api.
    let (start, end) = (1_700_000_000i64, 1_700_000_000 + 20 * 86_400);
    let (port, server) = fake_engine(10, move |_| {
        matrix(
            &[
                ("\"job\":\"api\",\"pod\":\"a\"", "1.9"),
                ("\"job\":\"api\",\"pod\":\"b\"", "0.01"),
            ],
            start,
            10,
        )
    });
    let url = format!("http://127.0.0.1:{port}");
    let (s, e) = (start.to_string(), end.to_string());
    let out = frugal(&[
        "--prometheus",
        &url,
        "--no-pushdown",
        "--instance-type",
        "m7i.large",
        "--start",
        &s,
        "--end",
        &e,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2 series for workload api, differing in pod"),
        "{err}"
    );
    drop(out);
    // Unblock the server: it stops after 20 s or 10 requests; count what it saw.
    let _ = TcpStream::connect(("127.0.0.1", port));
    let seen = server.join().unwrap();
    let requests: Vec<&String> = seen.iter().filter(|l| !l.is_empty()).collect();
    assert_eq!(requests.len(), 1, "stopped after the first chunk: {seen:?}");
}

#[test]
fn unparsable_values_and_oversized_answers() {
    let start = 1_700_000_000i64;
    // Values that are not numbers: the workload is skipped with the reason, and with nothing
    // else to analyse the exit status is 1.
    // Three queries (CPU, memory, instances), all answered with the same series.
    let (port, server) = fake_engine(3, move |_| matrix(&[("\"job\":\"api\"", "n/a")], start, 10));
    let url = format!("http://127.0.0.1:{port}");
    let (s, e) = (start.to_string(), (start + 3600).to_string());
    let args = [
        "--prometheus",
        &url,
        "--no-pushdown",
        "--instance-type",
        "m7i.large",
        "--start",
        &s,
        "--end",
        &e,
        "--format",
        "json",
    ];
    let out = frugal(&args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reason = report["recommendations"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("10 of 10: 10 not a number"), "{reason}");
    let _ = server.join();

    // An answer larger than --max-response-mib is abandoned with a clear message.
    let big = matrix(&[("\"job\":\"api\"", "0.5")], start, 60_000);
    assert!(big.len() > 1 << 20);
    let (port, server) = fake_engine(1, move |_| big.clone());
    let url = format!("http://127.0.0.1:{port}");
    let out = frugal(&[
        "--prometheus",
        &url,
        "--no-pushdown",
        "--instance-type",
        "m7i.large",
        "--start",
        &s,
        "--end",
        &e,
        "--max-response-mib",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exceeded 1 MiB"), "{err}");
    let _ = server.join();
}

#[test]
fn engine_warnings_and_rejected_subqueries_are_reported() {
    let start = 1_700_000_000i64;
    let (s, e) = (start.to_string(), (start + 3600).to_string());
    // Partial data (Thanos/Mimir answer with warnings): a note in the report, not silence.
    let (port, server) = fake_engine(3, move |_| {
        matrix(&[("\"job\":\"api\"", "0.5")], start, 10).replacen(
            "{\"status\":\"success\",",
            "{\"status\":\"success\",\"warnings\":[\"partial response: store 10.0.0.7 unavailable\"],",
            1,
        )
    });
    let url = format!("http://127.0.0.1:{port}");
    let out = frugal(&[
        "--prometheus",
        &url,
        "--no-pushdown",
        "--instance-type",
        "m7i.large",
        "--start",
        &s,
        "--end",
        &e,
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("the engine warned") && notes.contains("store 10.0.0.7 unavailable"),
        "{notes}"
    );
    let _ = server.join();

    // An engine without subqueries: the error says what to do.
    let (port, server) = fake_engine(1, |_| {
        "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"subqueries are not supported\"}"
            .to_owned()
    });
    let url = format!("http://127.0.0.1:{port}");
    let out = frugal(&[
        "--prometheus",
        &url,
        "--instance-type",
        "m7i.large",
        "--start",
        &s,
        "--end",
        &e,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("subqueries are not supported") && err.contains("pass --no-pushdown"),
        "{err}"
    );
    let _ = server.join();
}
