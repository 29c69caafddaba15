//! Running the service and the load generator: `frugal serve` confined to the planned CPUs, and
//! `frugal load` at a constant rate (or closed-loop for the capacity run), each a child process
//! spawned and reaped on the calling thread.
//!
//! Two pieces here are private copies, kept in this one module until the shared types exist:
//! [`LoadReport`] (with [`LoadLatency`] and [`LoadErrors`]) mirrors the fields of
//! `frugal load --json` this replay reads, and [`start_server`] starts `frugal serve` and reads
//! its `listening on http://...` line. The HTTP code is moving into the crate `frugal-http`; once
//! it has landed these will be replaced by its load report type and its server start-up.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::confine::CpuQuota;
use super::VerifyOptions;
use crate::error::{Error, Result};
use crate::sys;

/// A running `frugal serve`, stopped (SIGTERM, then kill) on drop.
pub(super) struct Server {
    child: Child,
    pub(super) url: String,
    /// What it wrote on stderr (its shutdown lines, or why it failed): kept out of the
    /// report's output, quoted when it fails.
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// The server's stderr so far, trimmed (empty when it wrote nothing).
    fn messages(&self) -> String {
        self.stderr
            .lock()
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    }
}

/// Most of a child's stderr kept for an error message.
const STDERR_KEEP: usize = 16 * 1024;

impl Drop for Server {
    fn drop(&mut self) {
        sys::terminate(self.child.id());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `frugal serve` on a free loopback port with `work_us` of CPU work per request,
/// pinned to `cpus` and moved into `quota` when given; returns once it listens.
pub(super) fn start_server(
    opts: &VerifyOptions,
    cpus: &[usize],
    quota: Option<&CpuQuota>,
    work_us: u64,
) -> Result<Server> {
    let mut cmd = Command::new(&opts.program);
    cmd.args([
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--work-us",
        &work_us.to_string(),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    sys::confine_child(&mut cmd, cpus);
    let child = cmd.spawn().map_err(|e| {
        Error::verify_io(format!("cannot start {} serve", opts.program.display()), e)
    })?;
    // Guarded at once: from here every early return stops and reaps the server.
    let mut server = Server {
        child,
        url: String::new(),
        stderr: std::sync::Arc::default(),
    };
    let stderr = server
        .child
        .stderr
        .take()
        .expect("invariant: stderr was piped");
    let sink = std::sync::Arc::clone(&server.stderr);
    std::thread::Builder::new()
        .name("serve-stderr".to_owned())
        .spawn(move || {
            // Drained to the end so that the server never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                if let Ok(mut kept) = sink.lock() {
                    if kept.len() < STDERR_KEEP {
                        kept.push_str(&line);
                        kept.push('\n');
                    }
                }
            }
        })
        .map_err(|e| Error::verify_io("cannot start a thread to read `frugal serve`", e))?;
    let stdout = server
        .child
        .stdout
        .take()
        .expect("invariant: stdout was piped");
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("serve-stdout".to_owned())
        .spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {} // keep draining so the server never blocks on a full pipe
        })
        .map_err(|e| Error::verify_io("cannot start a thread to read `frugal serve`", e))?;
    if let Some(q) = quota {
        // All threads of the server move; it has not served anything yet.
        q.add(server.child.id()).map_err(Error::verify)?;
    }
    let line = match rx.recv_timeout(Duration::from_secs(15)) {
        Ok(line) => line,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            return Err(Error::verify(
                "`frugal serve` did not print `listening on http://...` within 15 s; run \
                 `frugal serve --help` to check it works",
            ))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // Its stdout closed without a line: it exited (or is exiting) at once.
            let deadline = Instant::now() + Duration::from_secs(5);
            let status = loop {
                match server.child.try_wait() {
                    Ok(Some(status)) => break status.to_string(),
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Ok(None) => break "still running with its stdout closed".to_owned(),
                    Err(e) => break format!("status unknown: {e}"),
                }
            };
            // Give the reader a moment to collect the last lines.
            std::thread::sleep(Duration::from_millis(50));
            return Err(Error::verify(format!(
                "`frugal serve` exited before listening ({status}): {}; run `frugal serve \
                 --help` to check it works",
                match server.messages() {
                    m if m.is_empty() => "it printed nothing".to_owned(),
                    m => m,
                }
            )));
        }
    };
    server.url = line
        .trim()
        .strip_prefix("listening on ")
        .filter(|u| u.starts_with("http://"))
        .ok_or_else(|| {
            Error::verify(format!(
                "unexpected first line from `frugal serve`: {line:?}"
            ))
        })?
        .to_owned();
    Ok(server)
}

/// Latency percentiles of `frugal load --json`, ns.
#[derive(Deserialize)]
pub(super) struct LoadLatency {
    /// Median.
    pub(super) p50: u64,
    /// 90th percentile.
    pub(super) p90: u64,
    /// 99th percentile.
    pub(super) p99: u64,
    /// 99.9th percentile.
    pub(super) p999: u64,
    /// Slowest request.
    pub(super) max: u64,
}

/// Failed requests of `frugal load --json`, by kind.
#[derive(Deserialize)]
pub(super) struct LoadErrors {
    /// Connections refused or failed.
    pub(super) connect: u64,
    /// Requests timed out.
    pub(super) timeout: u64,
    /// Non-2xx answers.
    pub(super) status: u64,
    /// Connections reset.
    pub(super) reset: u64,
    /// Anything else.
    pub(super) other: u64,
}

/// What the replay reads of `frugal load --json` (a copy of its shape, see the module docs).
#[derive(Deserialize)]
pub(super) struct LoadReport {
    /// Requests per second completed.
    pub(super) achieved_rps: f64,
    /// Successful requests.
    pub(super) requests_ok: u64,
    /// Failed requests, by kind.
    pub(super) errors: LoadErrors,
    /// Latency as measured, ns.
    pub(super) latency_ns: LoadLatency,
    /// Latency corrected for coordinated omission (constant-rate runs), ns.
    pub(super) latency_corrected_ns: Option<LoadLatency>,
}

/// Kills (SIGKILL) and reaps the child on drop, if it still holds one.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `frugal load` against `url` pinned to `cpus`, at `rate` (closed-loop when `None`) for
/// `duration` after the warm-up, and reads its JSON report (`name` names the file).
pub(super) fn run_load(
    opts: &VerifyOptions,
    url: &str,
    cpus: &[usize],
    rate: Option<f64>,
    duration: Duration,
    name: &str,
) -> Result<LoadReport> {
    let json = opts.scratch.join(format!("{name}.json"));
    // A report left by an earlier run must not pass for this one's.
    let _ = std::fs::remove_file(&json);
    let mut cmd = Command::new(&opts.program);
    cmd.arg("load")
        .arg(url)
        .args(["-c", &opts.connections.to_string()])
        .args(["-d", &format!("{}ms", duration.as_millis().max(100))])
        .args(["--warmup", &format!("{}ms", opts.warmup.as_millis())])
        .arg("--json")
        .arg(&json)
        .arg("--quiet")
        // The SLA check below judges the errors; load's own limit would only hide the report.
        .args(["--max-error-rate", "100"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(r) = rate {
        // The caller rounded the rate; the run and the 95% check use the same number.
        cmd.args(["--rate", &format!("{r:.0}")]);
    }
    sys::confine_child(&mut cmd, cpus);
    let child = cmd.spawn().map_err(|e| {
        Error::verify_io(format!("cannot start {} load", opts.program.display()), e)
    })?;
    // Kills and reaps the load generator on every early return; disarmed once it was reaped.
    let mut guard = ChildGuard(Some(child));
    let child = guard.0.as_mut().expect("invariant: just set");
    // Drained while it runs: a full pipe (64 KiB) would block the load generator.
    let stderr = child.stderr.take().expect("invariant: stderr was piped");
    let drain = std::thread::Builder::new()
        .name("load-stderr".to_owned())
        .spawn(move || {
            use std::io::Read;
            let mut err = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut err);
            err
        })
        .map_err(|e| Error::verify_io("cannot start a thread to read `frugal load`", e))?;
    // The drain thread is joined on every path below, after the guard killed or reaped the child.
    let deadline = Instant::now() + duration + opts.warmup + Duration::from_secs(60);
    let waited = loop {
        match child.try_wait() {
            Err(e) => break Err(Error::verify_io("waiting for `frugal load`", e)),
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() > deadline => {
                break Err(Error::verify(
                    "`frugal load` did not finish within its duration + 60 s",
                ))
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let status = match waited {
        Ok(status) => {
            guard.0 = None; // reaped: nothing to kill
            status
        }
        Err(e) => {
            drop(guard); // kill + wait, so the pipe closes and the drain thread ends
            let _ = drain.join();
            return Err(e);
        }
    };
    let err = drain.join().unwrap_or_default();
    // A run that ended with no success still writes its report (and exits 1): the verdict
    // judges it. Without a report, the run itself failed.
    if !status.success() && !json.exists() {
        return Err(Error::verify(format!(
            "`frugal load` failed ({status}): {}",
            err.trim()
        )));
    }
    let text = std::fs::read_to_string(&json)
        .map_err(|e| Error::verify_io(format!("cannot read {}", json.display()), e))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::verify(format!(
            "`frugal load --json` wrote JSON this version cannot read: {e}"
        ))
    })
}
