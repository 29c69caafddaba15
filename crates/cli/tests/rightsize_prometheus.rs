//! `frugal rightsize --prometheus` against a real Prometheus (Debian's `prometheus` package, which
//! also ships `promtool`), and against fake servers that fail in the ways real ones do.
//!
//! The real server is started by the test on 127.0.0.1 with a free port and a temporary storage
//! directory, fed beforehand by `promtool tsdb create-blocks-from openmetrics`, bounded in time and
//! killed when the test ends. Without /usr/bin/prometheus the test fails: run scripts/deps.sh.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

fn frugal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_frugal"))
        .arg("rightsize")
        .args(args)
        .output()
        .expect("the frugal binary runs")
}

/// Kills the server when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    assert!(
        Path::new(PROMETHEUS).exists() && Path::new(PROMTOOL).exists(),
        "{PROMETHEUS} or {PROMTOOL} is missing: run scripts/deps.sh (it installs Debian's \
         `prometheus` package; CI does this)"
    );
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let om = dir.join("input.om");
    std::fs::write(&om, openmetrics(start, end)).unwrap();
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

    // Default process preset; 10-second steps over 36 h = 12,961 points per series, more than
    // Prometheus's 11,000 limit: the range must be split or Prometheus refuses the query.
    let out = frugal(&[
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
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Non-blocking accept with a deadline: if frugal never connects, the thread still ends.
    let server = std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut s = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(_) => return,
            }
        };
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let body = "<html>login</html>";
        let _ = write!(
            s,
            "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
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
