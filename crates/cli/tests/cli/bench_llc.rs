//! `frugal serve --extra-defers` and `frugal bench llc` (article 4.2) end to end: the extra
//! deferred calls really run, once per request each, in every strategy; the simulated
//! measurement marks its figures and sees the calls' instructions.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use frugal_workloads::llc::LlcReport;

use crate::util::{frugal, output_within, tempdir, Server, HEAVY, PATIENCE};

/// One `GET path` on a fresh connection (`Connection: close`): status and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("the server accepts");
    s.set_read_timeout(Some(PATIENCE)).expect("settable");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .expect("writable");
    let mut raw = String::new();
    s.read_to_string(&mut raw)
        .expect("the server answers and closes within the patience");
    let status = raw.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// The value of an unlabelled sample in a Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

/// `/metrics` once `frugal_defers_run_total` reached `want` (the async strategy's lease release
/// may land a moment after its answer), or panics after the patience.
fn defers_run(addr: SocketAddr, want: f64) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, text) = get(addr, "/metrics");
        assert_eq!(status, 200);
        if metric(&text, "frugal_defers_run_total") >= want || Instant::now() >= deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn extra_defers_run_once_per_request_in_every_strategy() {
    const REQUESTS: u32 = 3;
    for strategy in ["manual", "guard", "chain", "chain-cancel", "async-chain"] {
        for extra in [0u32, 10] {
            let server = Server::start(&[
                "--strategy",
                strategy,
                "--extra-defers",
                &extra.to_string(),
                "--work-us",
                "0",
            ]);
            for _ in 0..REQUESTS {
                assert_eq!(get(server.addr, "/").0, 200, "{strategy} +{extra}");
            }
            // Two releases (buffer, lease) plus the extra calls, per request, and nothing else.
            let want = f64::from(REQUESTS * (2 + extra));
            let text = defers_run(server.addr, want);
            assert_eq!(
                metric(&text, "frugal_defers_run_total"),
                want,
                "{strategy} +{extra}"
            );
            let spans = metric(&text, "frugal_request_spans_seconds_total");
            if extra == 0 {
                assert_eq!(spans, 0.0, "{strategy}: no extra calls, no spans");
            } else {
                assert!(
                    spans > 0.0,
                    "{strategy} +{extra}: the spans were not closed"
                );
            }
        }
    }
}

#[test]
fn extra_defers_out_of_range_is_a_usage_error() {
    let out = output_within(frugal().args(["serve", "--extra-defers", "1001"]), PATIENCE)
        .expect("a usage error returns at once");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("between 0 and 1,000"), "{stderr}");
    let out = output_within(
        frugal().args(["bench", "llc", "--requests", "2", "--connections", "5"]),
        PATIENCE,
    )
    .expect("a usage error returns at once");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--connections 5 is more than the 2 requests"),
        "{stderr}"
    );
}

#[test]
fn without_valgrind_the_error_says_how_to_install_it() {
    let out = output_within(
        frugal()
            .args(["bench", "llc", "--quick", "-q"])
            .env("FRUGAL_VALGRIND", "/nonexistent/valgrind"),
        PATIENCE,
    )
    .expect("the missing valgrind is found before anything runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("apt-get install valgrind"), "{stderr}");
}

#[test]
fn simulated_misses_per_request_with_and_without_extra_defers() {
    let _heavy = HEAVY.lock();
    let dir = tempdir();
    let path = dir.path().join("llc.json");
    // 50 and 100 requests: enough for the start-up's run-to-run noise (tens of thousands of
    // instructions) to stay far below ten deferred calls' instructions per request.
    let out = output_within(
        frugal()
            .args([
                "bench",
                "llc",
                "--requests",
                "50",
                "--connections",
                "2",
                "--strategies",
                "chain,manual",
                "--defers",
                "0,10",
                "--rate-duration",
                "200ms",
                "-q",
                "--json",
            ])
            .arg(&path),
        Duration::from_secs(900),
    )
    .expect("bench llc finishes within 15 minutes");
    assert!(
        out.status.success(),
        "bench llc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("SIMULATED"), "{stdout}");
    let text = std::fs::read_to_string(&path).expect("the JSON was written");
    let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(json["schema"], "frugal-bench-llc");
    assert_eq!(json["simulated"], true);
    assert_eq!(json["tool"], "cachegrind");
    let report: LlcReport = serde_json::from_value(json).expect("the report's schema");
    assert_eq!(report.rows.len(), 4);
    for r in &report.rows {
        let what = format!("{} +{}", r.strategy, r.extra_defers);
        assert_eq!((r.short.requests, r.long.requests), (50, 100), "{what}");
        let p = &r.per_request;
        assert!(p.instructions > 1000.0, "{what}: {p:?}");
        assert!(p.d1_misses > 0.0 && p.ll_accesses > 0.0, "{what}: {p:?}");
        assert!(p.ll_load_miss_rate.is_some(), "{what}: {p:?}");
        assert!(
            r.long.counts.instructions > r.short.counts.instructions,
            "{what}"
        );
    }
    for strategy in ["chain", "manual"] {
        let ir = |d| {
            report
                .row(strategy, d)
                .expect("measured")
                .per_request
                .instructions
        };
        // Ten more calls per request, each reading the clock: more instructions, whatever
        // the timing (a property of the code, not of the machine's speed).
        assert!(ir(10) > ir(0), "{strategy}: {} <= {}", ir(10), ir(0));
    }
    let effects = report.effects();
    assert_eq!(effects.len(), 2);
    assert!(effects.iter().all(|e| e.instructions_added > 0.0));
}
