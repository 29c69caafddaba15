//! Running the service and the load generator: `frugal serve` confined to the planned CPUs, and
//! `frugal load` at a constant rate (or closed-loop for the capacity run), each a child process
//! spawned and reaped on the calling thread.
//!
//! The server is frugal-http's [`ServerProcess`] (the one `frugal bench http` uses), its stderr
//! kept out of the report's output and quoted when it fails; the load generator's JSON is read
//! into frugal-http's [`LoadReport`], the type `frugal load --json` writes.

use std::io::{BufReader, Read as _};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use frugal_http::{LoadReport, ServerProcess, ServerStderr};

use super::confine::CpuQuota;
use super::VerifyOptions;
use crate::error::{Error, Result};
use crate::sys;

/// How long a started `frugal serve` has to print its address.
const SERVE_START_TIMEOUT: Duration = Duration::from_secs(15);

/// Starts `frugal serve` on a free loopback port with `work_us` of CPU work per request,
/// pinned to `cpus` and moved into `quota` when given; returns once it listens. It is stopped
/// (SIGTERM, then kill) when the returned server is dropped.
pub(super) fn start_server(
    opts: &VerifyOptions,
    cpus: &[usize],
    quota: Option<&CpuQuota>,
    work_us: u64,
) -> Result<ServerProcess> {
    let mut cmd = Command::new(&opts.program);
    cmd.args([
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--work-us",
        &work_us.to_string(),
    ]);
    sys::confine_child(&mut cmd, cpus);
    let server = ServerProcess::start(cmd, ServerStderr::Keep, SERVE_START_TIMEOUT).map_err(
        |e| match e {
            frugal_http::Error::ServerStart {
                message, source, ..
            } => Error::Verify { message, source },
            other => Error::verify(other.to_string()),
        },
    )?;
    if let Some(q) = quota {
        // All threads of the server move; it has not served anything yet. On an error the
        // server is stopped as it drops.
        q.add(server.pid()).map_err(Error::verify)?;
    }
    Ok(server)
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
