//! A `frugal serve` child process: started from a command the caller prepared, ready once it
//! prints `listening on http://HOST:PORT`, stopped when dropped.
//!
//! Two callers run the service as a separate process: `frugal bench http` ([`crate::bench()`]),
//! once per strategy and round, and `frugal rightsize --verify`, confined to a few CPUs (a
//! pre-exec hook) and sometimes to a cgroup CPU quota. Both hand over a [`Command`] with their
//! flags and hooks; [`ServerProcess::start`] adds the pipes, waits for the address line (bounded)
//! and guards the child from the moment it exists.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::loadgen::Url;
use crate::Error;

/// What becomes of the server's stderr (its warnings and its shutdown lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerStderr {
    /// Read and kept (up to 16 KiB; the rest is read and dropped so that the server never
    /// blocks on a full pipe): out of the caller's output, quoted when the server fails to start,
    /// readable with [`ServerProcess::stderr`].
    Keep,
    /// Written where the caller's stderr goes, as it comes.
    Inherit,
}

/// How much of the server's stderr [`ServerStderr::Keep`] keeps.
const STDERR_KEEP: usize = 16 * 1024;

/// How long a stopped server has between SIGTERM and SIGKILL (it closes its connections).
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A running `frugal serve` child that printed where it listens; stopped on drop: SIGTERM, up to
/// 5 s to shut down gracefully, then SIGKILL, and reaped.
///
/// ```no_run
/// use std::process::Command;
/// use std::time::Duration;
/// use frugal_http::{ServerProcess, ServerStderr};
///
/// let mut command = Command::new("frugal");
/// command.args(["serve", "--addr", "127.0.0.1:0", "--work-us", "100"]);
/// let server = ServerProcess::start(command, ServerStderr::Keep, Duration::from_secs(15))?;
/// println!("serving at {} (pid {})", server.url(), server.pid());
/// drop(server); // SIGTERM, then SIGKILL after the grace period
/// # Ok::<(), frugal_http::Error>(())
/// ```
///
/// To confine the server to a cgroup, move [`pid`](Self::pid) in once it started: all its
/// threads move, and it has served nothing yet.
#[derive(Debug)]
pub struct ServerProcess {
    running: Running,
    url: Url,
}

/// The child and what it wrote on stderr; stops the child on drop (from the moment it exists,
/// so every early return of [`ServerProcess::start`] stops and reaps it).
#[derive(Debug)]
struct Running {
    child: Child,
    /// The kept stderr ([`ServerStderr::Keep`]), `None` when inherited.
    kept: Option<Arc<Mutex<String>>>,
}

impl Running {
    fn kept(&self) -> String {
        self.kept
            .as_ref()
            .and_then(|k| k.lock().ok().map(|s| s.trim().to_owned()))
            .unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Reaped already (it exited and was waited for): nothing to signal. Until it is reaped
        // its pid cannot be reused, so the signal below reaches this child and no other.
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let pid = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            // ESRCH (it is exiting) is fine: the wait below reaps it.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_error(message: impl Into<String>, source: Option<std::io::Error>) -> Error {
    Error::ServerStart {
        message: message.into(),
        source,
    }
}

impl ServerProcess {
    /// Starts `command` (normally `frugal serve --addr 127.0.0.1:0` with the caller's flags,
    /// hooks and environment) with stdin closed, stdout piped and stderr as `stderr` says, and
    /// returns once it printed `listening on http://HOST:PORT` as its first line.
    ///
    /// Fails, with the child stopped, when it cannot be spawned, exits before that line (with
    /// its stderr quoted when kept), prints something else, or prints nothing within `timeout`.
    pub fn start(
        mut command: Command,
        stderr: ServerStderr,
        timeout: Duration,
    ) -> Result<ServerProcess, Error> {
        command.stdin(Stdio::null()).stdout(Stdio::piped());
        command.stderr(match stderr {
            ServerStderr::Keep => Stdio::piped(),
            ServerStderr::Inherit => Stdio::inherit(),
        });
        let child = command.spawn().map_err(|e| {
            let shown: Vec<String> = std::iter::once(command.get_program())
                .chain(command.get_args())
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            start_error(format!("cannot start `{}`", shown.join(" ")), Some(e))
        })?;
        let mut running = Running { child, kept: None };
        let stderr_reader = match running.child.stderr.take() {
            Some(pipe) => {
                let kept = Arc::new(Mutex::new(String::new()));
                running.kept = Some(Arc::clone(&kept));
                Some(spawn_reader("serve-stderr", move || keep(pipe, &kept))?)
            }
            None => None,
        };
        let stdout = running
            .child
            .stdout
            .take()
            .expect("invariant: stdout was piped just above");
        // Read on a helper thread so that a wedged server cannot hang the caller; when the
        // start fails, stopping the child ends the helper's read with EOF.
        let (tx, rx) = mpsc::channel();
        spawn_reader("serve-stdout", move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().transpose());
            // Drained to the end so that the server never blocks on a full pipe.
            for _ in lines.map_while(Result::ok) {}
        })?;
        let line = match rx.recv_timeout(timeout) {
            Ok(Ok(Some(line))) => line,
            Ok(Err(e)) => {
                return Err(start_error(
                    "cannot read the address `frugal serve` prints",
                    Some(e),
                ))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(start_error(
                    format!(
                        "`frugal serve` did not print `listening on http://...` within {} s; is \
                         it wedged? run `frugal serve --help` to check it works",
                        timeout.as_secs_f64()
                    ),
                    None,
                ))
            }
            // Its stdout closed without a line: it exited (or is exiting) at once.
            Ok(Ok(None)) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(exited_early(&mut running, stderr_reader))
            }
        };
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .filter(|u| u.starts_with("http://"))
            .and_then(|u| format!("{}/", u.trim_end_matches('/')).parse::<Url>().ok())
            .ok_or_else(|| {
                start_error(
                    format!(
                        "unexpected first line from `frugal serve`: {line:?}; it announces \
                         itself with `listening on http://HOST:PORT`"
                    ),
                    None,
                )
            })?;
        Ok(ServerProcess { running, url })
    }

    /// Where it listens (`http://HOST:PORT/`).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Its process id (for `/proc/PID`, or to move it into a cgroup).
    pub fn pid(&self) -> u32 {
        self.running.child.id()
    }

    /// What it wrote on stderr so far, trimmed: empty when it wrote nothing or when its stderr
    /// is inherited.
    pub fn stderr(&self) -> String {
        self.running.kept()
    }
}

/// Reads `pipe` to the end, keeping the first [`STDERR_KEEP`] bytes (whole lines) in `kept`.
fn keep(pipe: impl std::io::Read, kept: &Mutex<String>) {
    for line in BufReader::new(pipe).lines().map_while(Result::ok) {
        if let Ok(mut kept) = kept.lock() {
            if kept.len() < STDERR_KEEP {
                kept.push_str(&line);
                kept.push('\n');
            }
        }
    }
}

fn spawn_reader(name: &str, read: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, Error> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(read)
        .map_err(|e| start_error("cannot start a thread to read `frugal serve`", Some(e)))
}

/// The error for a server that closed its stdout before printing its address: its exit status
/// (waited for up to 5 s) and what it wrote on stderr.
fn exited_early(running: &mut Running, stderr_reader: Option<JoinHandle<()>>) -> Error {
    let deadline = Instant::now() + STOP_GRACE;
    let status = loop {
        match running.child.try_wait() {
            Ok(Some(status)) => break status.to_string(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => break "still running with its stdout closed".to_owned(),
            Err(e) => break format!("status unknown: {e}"),
        }
    };
    let said = match stderr_reader {
        None => "see its messages above".to_owned(),
        Some(reader) => {
            // The pipe closes when it exits: give the reader a moment to collect the last lines.
            let deadline = Instant::now() + Duration::from_secs(1);
            while !reader.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            match running.kept() {
                m if m.is_empty() => "it printed nothing".to_owned(),
                m => m,
            }
        }
    };
    start_error(
        format!(
            "`frugal serve` exited before listening ({status}): {said}; run `frugal serve \
             --help` to check it works"
        ),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in server: `sh -c SCRIPT`.
    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", script]);
        cmd
    }

    const PATIENCE: Duration = Duration::from_secs(15);

    fn start_err(cmd: Command, stderr: ServerStderr, timeout: Duration) -> String {
        ServerProcess::start(cmd, stderr, timeout)
            .expect_err("the start fails")
            .to_string()
    }

    #[test]
    fn ready_on_the_listening_line_and_stopped_by_sigterm_on_drop() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let mark = dir.path().join("stopped");
        // Says where it listens, then waits; on SIGTERM it leaves a mark and a line on stderr.
        let script = format!(
            "trap 'echo shutting down >&2; touch {}; exit 0' TERM; \
             echo 'listening on http://127.0.0.1:9'; echo starting >&2; \
             while :; do sleep 0.05; done",
            mark.display()
        );
        let server = ServerProcess::start(sh(&script), ServerStderr::Keep, PATIENCE)
            .expect("it announces itself");
        assert_eq!(server.url().to_string(), "http://127.0.0.1:9/");
        assert_eq!(server.url().port, 9);
        let pid = server.pid();
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        let deadline = Instant::now() + PATIENCE;
        while server.stderr().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(server.stderr(), "starting");
        drop(server);
        // SIGTERM, not SIGKILL: the trap ran.
        assert!(mark.exists(), "the server was not asked to stop");
    }

    #[test]
    fn a_server_that_ignores_sigterm_is_killed_after_the_grace_period() {
        let server = ServerProcess::start(
            sh("trap '' TERM; echo 'listening on http://127.0.0.1:9'; exec sleep 60"),
            ServerStderr::Inherit,
            PATIENCE,
        )
        .expect("it announces itself");
        assert_eq!(server.stderr(), "", "inherited stderr is not kept");
        let pid = server.pid();
        let started = Instant::now();
        drop(server);
        assert!(started.elapsed() >= STOP_GRACE, "killed before the grace");
        // Reaped: no zombie left under this pid (it may be reused, but not this fast).
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(!stat.contains(") Z "), "{stat}");
    }

    #[test]
    fn an_early_exit_quotes_the_kept_stderr() {
        let err = start_err(
            sh("echo 'bad flag --x' >&2; exit 2"),
            ServerStderr::Keep,
            PATIENCE,
        );
        assert!(
            err.contains("exited before listening (exit status: 2): bad flag --x;"),
            "{err}"
        );
        let err = start_err(sh("exit 3"), ServerStderr::Keep, PATIENCE);
        assert!(
            err.contains("(exit status: 3): it printed nothing"),
            "{err}"
        );
        let err = start_err(sh("exit 4"), ServerStderr::Inherit, PATIENCE);
        assert!(err.contains("see its messages above"), "{err}");
    }

    #[test]
    fn other_failures_say_what_happened() {
        let err = start_err(
            Command::new("/nonexistent/frugal"),
            ServerStderr::Keep,
            PATIENCE,
        );
        assert!(err.contains("cannot start `/nonexistent/frugal`"), "{err}");
        let err = start_err(sh("echo 'hello'; sleep 60"), ServerStderr::Keep, PATIENCE);
        assert!(err.contains("unexpected first line"), "{err}");
        let started = Instant::now();
        let err = start_err(
            sh("exec sleep 60"),
            ServerStderr::Keep,
            Duration::from_millis(200),
        );
        assert!(
            err.contains("did not print `listening on http://...` within 0.2 s"),
            "{err}"
        );
        // The wedged child was stopped (SIGTERM ends `sleep` at once).
        assert!(started.elapsed() < STOP_GRACE, "{:?}", started.elapsed());
    }
}
