//! Reliability of `frugal serve` and `frugal load`, through the binary: servers bind
//! 127.0.0.1:0, every run is bounded in time and requests, nothing asserts a wall-clock
//! threshold (waits are generous upper bounds that only fail a hung server).

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::{free_port, output_within, tempdir, KillOnDrop, Server, FRUGAL, HEAVY, PATIENCE};

/// What these tests ask of a `frugal serve` child.
impl Server {
    /// `/metrics`, which must answer 200.
    fn metrics(&self) -> String {
        let (status, body) = get(self.addr, "/metrics");
        assert_eq!(status, 200);
        body
    }

    /// Polls `/metrics` until `done` holds for it; panics after [`PATIENCE`].
    fn wait_metrics(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = self.metrics();
            if done(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{what} never happened; metrics:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("the server accepts");
    s.set_read_timeout(Some(PATIENCE)).expect("settable");
    s
}

/// One request on a fresh connection, `Connection: close`; returns status and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    raw(addr, request.as_bytes())
}

fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .expect("the server answers and closes within the patience");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// The value of an unlabelled (or fully labelled) sample in a Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

fn idle(text: &str) -> bool {
    metric(text, "frugal_http_requests_in_flight") == 0.0
        && metric(text, "frugal_pool_leases_in_use") == 0.0
        && metric(text, "frugal_pool_buffers_in_use") == 0.0
}

#[test]
fn serves_work_and_metrics() {
    // 50 ms of CPU work (on the server thread's CPU clock): the server's CPU time must show it.
    let server = Server::start(&["--response-bytes", "1000", "--work-us", "50000"]);
    let (status, body) = get(server.addr, "/");
    assert_eq!((status, body.len()), (200, 1000));
    let text = server.metrics();
    assert!(metric(&text, "process_cpu_seconds_total") > 0.0, "{text}");
    for name in [
        "process_resident_memory_bytes",
        "frugal_pool_leases_size",
        "frugal_defers_run_total",
        "frugal_http_request_duration_seconds_count",
    ] {
        assert!(metric(&text, name) >= 1.0, "{name}");
    }
    assert_eq!(
        metric(&text, "frugal_http_requests_total{outcome=\"ok\"}"),
        1.0
    );
    assert!(idle(&text));
}

#[test]
fn malformed_requests_get_400_and_the_server_goes_on() {
    let server = Server::start(&[]);
    for garbage in [
        &b"NOT HTTP AT ALL\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"\x00\x01\x02\xff\r\n\r\n",
    ] {
        let mut s = connect(server.addr);
        s.write_all(garbage).expect("writable");
        let (status, _) = read_response(&mut s);
        assert!((400..=505).contains(&status), "{garbage:?} -> {status}");
    }
    assert_eq!(get(server.addr, "/").0, 200);
}

/// Clients that go away mid-request, while holding the lease and while waiting for it: every
/// strategy gives everything back (the gauges return to idle) and counts the cancellations;
/// only `chain-cancel` and `async-chain` release the lease because of the cancellation itself
/// (`async-chain`: the dropped scope's policy spawns the lease's async cleanup). The requests hold their
/// lease (`--hold-ms`, a cancellable wait) far longer than any step here can take, so every
/// state we wait for is stable until we change it: nothing depends on the machine's speed.
#[test]
fn vanishing_clients_release_everything() {
    for strategy in ["manual", "guard", "chain", "chain-cancel", "async-chain"] {
        let server = Server::start(&[
            "--strategy",
            strategy,
            "--lease-pool",
            "1",
            "--hold-ms",
            "600000",
            "--deadline",
            "600s",
            "--work-us",
            "0",
            "--workers",
            "2",
        ]);
        let cancelled = |t: &str| metric(t, "frugal_http_requests_total{outcome=\"cancelled\"}");
        // `holding` takes the only lease and holds it; `waiting` queues for the lease.
        let mut holding = connect(server.addr);
        holding
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("writable");
        server.wait_metrics("the first request holding the lease", |t| {
            metric(t, "frugal_pool_leases_in_use") == 1.0
        });
        let mut waiting = connect(server.addr);
        waiting
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("writable");
        server.wait_metrics("the second request waiting", |t| {
            metric(t, "frugal_http_requests_in_flight") == 2.0
        });
        drop(waiting);
        server.wait_metrics("the waiting request cancelled", |t| cancelled(t) == 1.0);
        drop(holding);
        let text = server.wait_metrics("the holding request cancelled", |t| cancelled(t) == 2.0);
        let text = if idle(&text) {
            text
        } else {
            server.wait_metrics("idle pools", idle)
        };
        assert_eq!(metric(&text, "frugal_pool_leases_released_total"), 1.0);
        // Cleanup bound to the cancellation released the lease at the moment of cancellation;
        // the other strategies released it when their code next ran.
        let on_cancel = if strategy.ends_with("cancel") || strategy == "async-chain" {
            1.0
        } else {
            0.0
        };
        assert_eq!(
            metric(&text, "frugal_pool_leases_released_on_cancel_total"),
            on_cancel,
            "{strategy}: {text}"
        );
        assert_eq!(
            metric(&text, "frugal_pool_buffers_released_total"),
            metric(&text, "frugal_pool_buffers_allocated_total"),
            "{strategy}"
        );
        assert_eq!(
            metric(&text, "frugal_http_requests_total{outcome=\"ok\"}"),
            0.0
        );
    }
}

#[test]
fn slow_clients_are_served_and_stalled_ones_cut_off() {
    let server = Server::start(&["--header-timeout", "2s", "--work-us", "0"]);
    // A stalled head: the server closes it after the header timeout.
    let mut stalled = connect(server.addr);
    stalled
        .write_all(b"GET / HTTP/1.1\r\nHo")
        .expect("writable");
    // A slow but steady client, a byte at a time, is served.
    let mut slow = connect(server.addr);
    for &b in b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" {
        slow.write_all(&[b]).expect("writable");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(read_response(&mut slow).0, 200);
    // Others are served meanwhile.
    assert_eq!(get(server.addr, "/").0, 200);
    let mut rest = Vec::new();
    // EOF (or a 408 then EOF) — not our read timeout, which would be an error here.
    stalled
        .read_to_end(&mut rest)
        .expect("the server closes the stalled connection");
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
        "{rest:?}"
    );
}

#[test]
fn file_descriptor_exhaustion_is_backpressure_not_a_crash() {
    // The server gets 64 descriptors; we open 100 connections.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "ulimit -n 64 && exec \"$0\" \"$@\"", FRUGAL]);
    let server = Server::start_with(cmd, &["--work-us", "0"]);
    let clients: Vec<TcpStream> = (0..100).map(|_| connect(server.addr)).collect();
    let deadline = Instant::now() + PATIENCE;
    while !server.stderr().contains("backpressure") {
        assert!(
            Instant::now() < deadline,
            "no log line; stderr:\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(clients);
    // Once the clients are gone the server serves again (the queued ones are drained first).
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut s = connect(server.addr);
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .expect("writable");
        let (status, _) = read_response(&mut s);
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server does not serve after fd exhaustion"
        );
    }
    let text = server.metrics();
    assert!(metric(&text, "frugal_http_accept_fd_exhausted_total") >= 1.0);
}

#[test]
fn sigterm_finishes_in_flight_requests_and_exits_0() {
    // The request holds its lease until the shutdown ends the hold (it then answers 200): it
    // is certainly in flight when SIGTERM arrives, however slow the machine.
    let server = Server::start(&[
        "--hold-ms",
        "600000",
        "--deadline",
        "600s",
        "--workers",
        "2",
    ]);
    let mut in_flight = connect(server.addr);
    in_flight
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("w");
    server.wait_metrics("the request in flight", |t| {
        metric(t, "frugal_http_requests_in_flight") == 1.0
    });
    let reader = std::thread::spawn(move || read_response(&mut in_flight).0);
    let status = server.terminate();
    assert!(status.success(), "{status}");
    assert_eq!(reader.join().expect("no panic"), 200);
}

#[test]
fn idle_keep_alive_connections_are_closed_after_the_header_timeout() {
    let server = Server::start(&["--header-timeout", "1s", "--work-us", "0"]);
    let mut s = connect(server.addr);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("writable");
    // The whole answer (its length is known: "ok\n" after the head), then nothing until the
    // server closes the idle connection: EOF, not our read timeout.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\nok\n") {
        s.read_exact(&mut byte).expect("the answer arrives");
        head.push(byte[0]);
    }
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .expect("the server closes the idle connection");
    assert!(rest.is_empty(), "{rest:?}");
}

/// A raw request on a fresh connection (for requests `get` cannot express).
fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = connect(addr);
    s.write_all(request).expect("writable");
    read_response(&mut s)
}

#[test]
fn host_header_and_method_are_checked() {
    let server = Server::start(&["--work-us", "0"]);
    let (status, _) = raw(server.addr, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 400, "HTTP/1.1 without Host");
    let (status, _) = raw(
        server.addr,
        b"FOO / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 405, "unknown method");
    let mut s = connect(server.addr);
    s.write_all(b"DELETE / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("writable");
    let mut head = String::new();
    BufReader::new(&mut s)
        .read_to_string(&mut head)
        .expect("answered");
    assert!(
        head.to_ascii_lowercase().contains("allow: get, head"),
        "{head}"
    );
    // HTTP/1.0 has no Host requirement; HEAD is served.
    assert_eq!(raw(server.addr, b"GET / HTTP/1.0\r\n\r\n").0, 200);
    assert_eq!(
        raw(
            server.addr,
            b"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        .0,
        200
    );
    let text = server.metrics();
    assert_eq!(
        metric(&text, "frugal_http_requests_total{outcome=\"ok\"}"),
        2.0
    );
}

#[test]
fn a_half_closed_request_gets_its_answer() {
    let server = Server::start(&["--work-us", "0", "--response-bytes", "300"]);
    let mut s = connect(server.addr);
    // Keep-alive, then the client ends its side: the answer must still come, then EOF.
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("writable");
    s.shutdown(std::net::Shutdown::Write).expect("half-closes");
    let (status, body) = read_response(&mut s);
    assert_eq!((status, body.len()), (200, 300));
    let text = server.metrics();
    assert_eq!(
        metric(&text, "frugal_http_requests_total{outcome=\"ok\"}"),
        1.0
    );
}

/// Two pipelined requests, then the client goes away while the first one holds its lease:
/// hyper has the second request in its buffer and does not read the socket, yet the first is
/// cancelled (not run to the end and counted "ok"), whether the client resets or closes.
#[test]
fn cancellation_is_seen_behind_pipelined_requests() {
    for reset in [true, false] {
        let server = Server::start(&[
            "--hold-ms",
            "600000",
            "--deadline",
            "600s",
            "--work-us",
            "0",
            "--workers",
            "2",
        ]);
        let s = connect(server.addr);
        (&s).write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("writable");
        server.wait_metrics("the first request holding its lease", |t| {
            metric(t, "frugal_pool_leases_in_use") == 1.0
        });
        if reset {
            // SO_LINGER 0: close sends an RST.
            socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .expect("settable");
        }
        drop(s);
        // The second request may be read and cancelled too, once the first is answered.
        let cancelled = |t: &str| metric(t, "frugal_http_requests_total{outcome=\"cancelled\"}");
        let text = server.wait_metrics("the held request cancelled", |t| {
            cancelled(t) >= 1.0 && idle(t) && metric(t, "frugal_http_connections_open") == 1.0
        });
        assert_eq!(
            metric(&text, "frugal_http_requests_total{outcome=\"ok\"}"),
            0.0,
            "reset={reset}"
        );
    }
}

/// Clients that pipeline many requests with large answers and never read: the server closes
/// them after the send timeout instead of keeping their buffers for ever.
#[test]
fn clients_that_stop_reading_are_closed_after_the_send_timeout() {
    let server = Server::start(&[
        "--send-timeout",
        "1s",
        "--response-bytes",
        "65536",
        "--work-us",
        "0",
    ]);
    let request = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n".repeat(300);
    let clients: Vec<TcpStream> = (0..20)
        .map(|_| {
            let s = connect(server.addr);
            s.set_write_timeout(Some(PATIENCE)).expect("settable");
            // May block while the server's read side is full; bounded by the write timeout,
            // and the server's send timeout ends it (an error then is the expected close).
            let _ = (&s).write_all(&request);
            s
        })
        .collect();
    // Only the scraping connection is left open.
    let text = server.wait_metrics("the stalled connections closed", |t| {
        metric(t, "frugal_http_connections_open") == 1.0
    });
    assert!(metric(&text, "frugal_http_connections_total") >= 21.0);
    drop(clients);
    assert_eq!(get(server.addr, "/healthz").0, 200);
}

/// More requests holding a lease than tokio has blocking threads (512): the holds are waits,
/// not threads, so `/healthz` answers and SIGTERM ends the server (an earlier version wedged).
#[test]
fn a_thousand_holding_requests_do_not_wedge_the_server() {
    let _heavy = HEAVY.lock();
    let server = Server::start(&[
        "--hold-ms",
        "600000",
        "--lease-pool",
        "520",
        "--deadline",
        "600s",
        "--work-us",
        "0",
        "--workers",
        "2",
    ]);
    // `frugal load` raises its own open-file limit for the 1000 connections.
    let _load = KillOnDrop(
        Command::new(FRUGAL)
            .args(["load", &server.url(), "-c", "1000", "-d", "600s"])
            .args(["--timeout", "600s", "-q"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("frugal load starts"),
    );
    let text = server.wait_metrics("1000 requests in flight, 520 holding", |t| {
        metric(t, "frugal_http_requests_in_flight") == 1000.0
            && metric(t, "frugal_pool_leases_in_use") == 520.0
    });
    assert_eq!(metric(&text, "frugal_pool_leases_size"), 520.0);
    assert_eq!(get(server.addr, "/healthz"), (200, "ok\n".to_owned()));
    let status = server.terminate();
    assert!(status.success(), "{status}");
}

/// What a [`FakeServer`] does with the `n`th request of its `c`th connection.
pub(crate) enum Answer {
    /// This response, after this delay.
    After(Duration, &'static [u8]),
    /// Nothing, ever (the connection stays open).
    Never,
}

/// A hand-written HTTP/1.1 server on 127.0.0.1:0 misbehaving on purpose; its threads stop when
/// it is dropped (or after the patience). `load_merge` uses it too.
pub(crate) struct FakeServer {
    addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl FakeServer {
    pub(crate) fn start(answer: fn(usize, usize) -> Answer) -> FakeServer {
        use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("loopback binds");
        listener.set_nonblocking(true).expect("settable");
        let addr = listener.local_addr().expect("bound");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            let deadline = Instant::now() + 4 * PATIENCE;
            let mut c = 0;
            while !stopped.load(Relaxed) && Instant::now() < deadline {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                let stopped = Arc::clone(&stopped);
                s.set_nonblocking(false).expect("settable");
                s.set_read_timeout(Some(Duration::from_millis(50)))
                    .expect("settable");
                let conn = c;
                c += 1;
                std::thread::spawn(move || {
                    let mut pending = Vec::new();
                    let mut n = 0;
                    let mut buf = [0u8; 4096];
                    while !stopped.load(Relaxed) && Instant::now() < deadline {
                        match s.read(&mut buf) {
                            Ok(0) => return,
                            Ok(k) => pending.extend_from_slice(&buf[..k]),
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                            Err(_) => return,
                        }
                        while let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            pending.drain(..i + 4);
                            match answer(conn, n) {
                                Answer::After(delay, reply) => {
                                    std::thread::sleep(delay);
                                    if s.write_all(reply).is_err() {
                                        return;
                                    }
                                }
                                Answer::Never => {}
                            }
                            n += 1;
                        }
                    }
                });
            }
        });
        FakeServer { addr, stop }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `frugal load` with `args`, bounded by the patience; its exit status, stdout, stderr and
/// the JSON report.
fn load_run(args: &[&str]) -> (std::process::ExitStatus, String, String, serde_json::Value) {
    let dir = tempdir();
    let path = dir.path().join("load.json");
    let mut cmd = Command::new(FRUGAL);
    cmd.arg("load")
        .args(args)
        .arg("--json")
        .arg(&path)
        .arg("-q");
    // A generous bound: only a run that waits past its end reaches it.
    let out = output_within(&mut cmd, PATIENCE).expect("frugal load ran past its end");
    let json = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        json,
    )
}

const OK_REPLY: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

#[test]
fn load_against_a_server_that_never_answers_fails_at_the_end_of_the_run() {
    let server = FakeServer::start(|_, _| Answer::Never);
    // A timeout far beyond the run: the end of the run, not the timeout, ends every wait.
    for mode in [&[][..], &["--rate", "50"][..]] {
        let url = server.url();
        let mut args = vec![url.as_str(), "-c", "4", "-d", "1s", "--warmup", "500ms"];
        args.extend_from_slice(&["--timeout", "30s"]);
        args.extend_from_slice(mode);
        let started = Instant::now();
        let (status, out, err, json) = load_run(&args);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the run's end bounds every wait"
        );
        assert_eq!(status.code(), Some(1), "{mode:?}: {err}");
        assert!(err.contains("no successful response"), "{err}");
        assert_eq!(json["requests_ok"], 0, "{json}");
        // Nobody waited the 30 s timeout: every request is unanswered at the end, none is a
        // timeout (nor any other error).
        assert_eq!(json["errors"]["timeout"], 0, "{mode:?}: {json}");
        assert_eq!(json["error_rate"], 0.0, "{json}");
        let unanswered = json["requests_unfinished"].as_u64().expect("a count");
        assert!(unanswered >= 4, "{mode:?}: {json}");
        assert!(
            out.contains(&format!("{unanswered} requests unanswered at the end")),
            "{out}"
        );
        // Nothing succeeded, so nothing was measured: no latency, not zeros.
        assert!(json["latency_ns"].is_null(), "{json}");
        assert!(json["latency_corrected_ns"].is_null(), "{json}");
        assert!(out.contains("not measured: no request succeeded"), "{out}");
        assert!(!out.contains("0 ns"), "{out}");
        if !mode.is_empty() {
            // 50/s over 1.5 s, four of them sent: the rest were never sent, and are counted
            // as unanswered too.
            let unsent = json["requests_unsent"].as_u64().expect("a count");
            assert!(unsent > 0 && unanswered >= unsent, "{json}");
        }
    }
}

#[test]
fn slow_answers_to_requests_sent_in_the_warm_up_are_counted() {
    // The first request of every connection takes 600 ms; it is sent in the 300 ms warm-up
    // and completes in the measured window: counted, its latency seen.
    let server = FakeServer::start(|_, n| {
        let delay = if n == 0 { 600 } else { 0 };
        Answer::After(Duration::from_millis(delay), OK_REPLY)
    });
    for mode in [&[][..], &["--rate", "40"][..]] {
        let url = server.url();
        let mut args = vec![url.as_str(), "-c", "4", "-d", "1500ms", "--warmup", "300ms"];
        args.extend_from_slice(mode);
        let (status, _, err, json) = load_run(&args);
        assert!(status.success(), "{mode:?}: {err}");
        let key = if mode.is_empty() {
            "latency_ns"
        } else {
            "latency_corrected_ns"
        };
        let max = json[key]["max"].as_u64().expect("a latency");
        assert!(max >= 600_000_000, "{mode:?}: {json}");
    }
}

#[test]
fn conflicting_content_lengths_fail_at_once() {
    let server = FakeServer::start(|_, _| {
        Answer::After(
            Duration::ZERO,
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok",
        )
    });
    let url = server.url();
    let (status, out, err, json) = load_run(&[
        &url,
        "-c",
        "2",
        "-d",
        "500ms",
        "--warmup",
        "0s",
        "--timeout",
        "600s",
    ]);
    assert_eq!(status.code(), Some(1), "{err}");
    // A named kind, with what was wrong: not "other".
    assert!(json["errors"]["protocol"].as_u64() > Some(0), "{json}");
    assert_eq!(json["errors"]["other"], 0, "{json}");
    assert_eq!(json["errors"]["timeout"], 0, "{json}");
    assert_eq!(
        json["protocol_error"], "conflicting Content-Length headers",
        "{json}"
    );
    assert!(
        out.contains("first protocol error: conflicting Content-Length headers"),
        "{out}"
    );
}

#[test]
fn load_fails_above_the_allowed_error_rate_and_prints_it() {
    let server = FakeServer::start(|_, n| {
        // One answer in ten is a 500: a 10% error rate.
        let reply: &[u8] = if n % 10 == 9 {
            b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n"
        } else {
            OK_REPLY
        };
        Answer::After(Duration::ZERO, reply)
    });
    let url = server.url();
    let base = [url.as_str(), "-c", "2", "-d", "500ms", "--warmup", "100ms"];
    let (status, out, err, json) = load_run(&base);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("error rate") && err.contains("above the allowed 1%"),
        "{err}"
    );
    let rate = json["error_rate"].as_f64().expect("a rate");
    assert!((0.05..=0.15).contains(&rate), "{json}");
    assert!(out.contains("errors") && out.contains('%'), "{out}");
    // Allowed explicitly: the same run passes.
    let mut args = base.to_vec();
    args.extend_from_slice(&["--max-error-rate", "20%"]);
    let (status, _, err, _) = load_run(&args);
    assert!(status.success(), "{err}");
}

#[test]
fn a_zero_timeout_is_refused() {
    let server = FakeServer::start(|_, _| Answer::After(Duration::ZERO, OK_REPLY));
    let url = server.url();
    let (status, _, err, _) = load_run(&[&url, "-d", "200ms", "--timeout", "0s"]);
    // Refused at parse time: a usage error, its reason on the first line.
    assert_eq!(status.code(), Some(2), "{err}");
    let first = err.lines().next().unwrap_or("");
    assert!(
        first.contains("timeout") && first.contains("range"),
        "{err}"
    );
}

/// The JSON report of a `frugal load` run that must succeed.
fn load_json(args: &[&str]) -> serde_json::Value {
    let (status, _, err, json) = load_run(args);
    assert!(status.success(), "{err}");
    assert!(!json.is_null(), "no JSON report was written; stderr: {err}");
    json
}

fn check_latency(v: &serde_json::Value) {
    let p = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    assert!(p("p50") > 0);
    assert!(p("p50") <= p("p90") && p("p90") <= p("p99"));
    assert!(p("p99") <= p("p999") && p("p999") <= p("max"));
    assert!(v["mean"].as_f64().is_some());
}

#[test]
fn load_runs_end_to_end_in_both_modes() {
    let _heavy = HEAVY.lock();
    let server = Server::start(&["--work-us", "0"]);
    let url = server.url();
    let closed = load_json(&[&url, "-c", "50", "-d", "1s", "--warmup", "200ms"]);
    assert_eq!(closed["mode"], "closed-loop");
    assert_eq!(closed["connections"], 50);
    assert_eq!(closed["connections_open"], 50);
    assert!(closed["requests_ok"].as_u64().expect("a count") > 0);
    assert!(closed["achieved_rps"].as_f64().expect("a rate") > 0.0);
    assert!(closed["target_rps"].is_null() && closed["latency_corrected_ns"].is_null());
    check_latency(&closed["latency_ns"]);
    for kind in ["connect", "timeout", "status", "reset", "protocol", "other"] {
        assert_eq!(closed["errors"][kind], 0, "{kind}");
    }

    let paced = load_json(&[
        &url, "-c", "50", "-d", "1s", "--warmup", "200ms", "--rate", "500",
    ]);
    assert_eq!(paced["mode"], "constant-rate");
    assert_eq!(paced["target_rps"], 500.0);
    check_latency(&paced["latency_ns"]);
    check_latency(&paced["latency_corrected_ns"]);
    // The schedule puts 500 requests in the 1 s window; each ends as a success or an error.
    let ok = paced["requests_ok"].as_u64().expect("a count");
    let errors: u64 = ["connect", "timeout", "status", "reset", "protocol", "other"]
        .iter()
        .map(|k| paced["errors"][k].as_u64().expect("a count"))
        .sum();
    assert!((490..=510).contains(&(ok + errors)), "{paced}");
    // Corrected latency is measured from an earlier instant than the send.
    assert!(paced["latency_corrected_ns"]["max"].as_u64() >= paced["latency_ns"]["max"].as_u64());

    // The server's counters agree that something was served.
    let text = server.metrics();
    assert!(metric(&text, "frugal_http_requests_total{outcome=\"ok\"}") >= ok as f64);
}

#[test]
fn load_against_nothing_fails_clearly() {
    let port = free_port();
    let out = Command::new(FRUGAL)
        .args([
            "load",
            &format!("http://127.0.0.1:{port}/"),
            "-c",
            "3",
            "-d",
            "200ms",
            "-q",
        ])
        .output()
        .expect("frugal load runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not open any"), "{err}");
}

#[test]
fn bench_http_runs_a_tiny_comparison() {
    let _heavy = HEAVY.lock();
    let dir = tempfile::TempDir::new().expect("temp dir");
    let json = dir.path().join("bench.json");
    let out = Command::new(FRUGAL)
        .args([
            "bench", "http", "-c", "20", "-d", "300ms", "--warmup", "100ms", "-r", "2",
        ])
        .args([
            "--strategies",
            "manual,chain-cancel",
            "--work-us",
            "0",
            // The mechanics are under test, not this machine's speed.
            "--max-error-rate",
            "100",
            "--json",
        ])
        .arg(&json)
        .output()
        .expect("frugal bench http runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("chain-cancel") && stdout.contains("constant-rate"),
        "{stdout}"
    );
    assert!(
        stdout.contains("median (min–max) over 2 rounds"),
        "{stdout}"
    );
    assert!(
        stdout.contains("closed-loop throughput: the strategies' medians differ by"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("written")).expect("json");
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 8);
    // Alternating: round 1 forwards, round 2 backwards.
    let order: Vec<(u64, &str)> = rows
        .iter()
        .step_by(2)
        .map(|r| {
            (
                r["round"].as_u64().expect("round"),
                r["strategy"].as_str().expect("name"),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            (0, "manual"),
            (0, "chain-cancel"),
            (1, "chain-cancel"),
            (1, "manual")
        ]
    );
    for row in rows {
        assert!(row["achieved_rps"].as_f64().expect("rate") > 0.0, "{row}");
        assert!(
            row["server_rss_bytes"].as_u64().expect("bytes") > 0,
            "{row}"
        );
        assert!(row["server_cpu_s"].as_f64().is_some(), "{row}");
    }
    let summary = report["summary"].as_array().expect("summary");
    assert_eq!(summary.len(), 4);
    for s in summary {
        assert_eq!(s["runs"], 2, "{s}");
        let rps = &s["achieved_rps"];
        let (min, median, max) = (
            rps["min"].as_f64().expect("min"),
            rps["median"].as_f64().expect("median"),
            rps["max"].as_f64().expect("max"),
        );
        assert!(min <= median && median <= max, "{s}");
    }
}

#[test]
fn bench_http_fails_when_runs_fail() {
    let _heavy = HEAVY.lock();
    // A rate no loopback server with 20 connections meets: the constant-rate run falls
    // behind, and the benchmark says so in its exit status after printing everything.
    let out = Command::new(FRUGAL)
        .args([
            "bench", "http", "-c", "20", "-d", "300ms", "--warmup", "100ms",
        ])
        .args(["-r", "1", "--strategies", "manual", "--work-us", "0"])
        .args(["--rate", "10000000"])
        .output()
        .expect("frugal bench http runs");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("one round, no spread"), "{stdout}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("runs failed") && err.contains("constant-rate"),
        "{err}"
    );
}

#[test]
fn load_says_when_the_fd_limit_is_too_low() {
    // `ulimit -n` in sh sets the hard limit too, so frugal cannot raise it. The target is a
    // loopback port that was free a moment ago (nothing is sent: the limit check comes first).
    let addr = format!("127.0.0.1:{}", free_port());
    let out = Command::new("sh")
        .args([
            "-c",
            "ulimit -n 100 && exec \"$0\" load \"http://$1/\" -c 500 -q",
            FRUGAL,
            &addr.to_string(),
        ])
        .output()
        .expect("sh runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("RLIMIT_NOFILE") && err.contains("lower -c"),
        "{err}"
    );
}
