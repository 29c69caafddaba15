//! What the CLI tests share, each once: the binary runner (with and without a time limit), the
//! guard that kills a child, a free loopback port, a `frugal serve` child on 127.0.0.1:0, a
//! temporary directory, and the locks that keep some tests apart (see `main.rs`).

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The `frugal` binary under test.
pub const FRUGAL: &str = env!("CARGO_BIN_EXE_frugal");

/// Upper bound for anything a test waits for; only a broken (hung) program reaches it.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A command running the `frugal` binary under test.
pub fn frugal() -> Command {
    Command::new(FRUGAL)
}

/// A child process killed (and reaped) on drop, whatever panics after its spawn.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `child` to exit, at most `limit`; `None` if it is still running then.
pub fn wait_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("a spawned child is waitable") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `cmd` (stdin closed, stdout and stderr captured) for at most `limit`: its output, or
/// `None` after killing it if it was still running then. The pipes are drained while it runs,
/// so a chatty program cannot block on a full pipe and look hung.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Option<Output> {
    let mut child = KillOnDrop(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the program starts"),
    );
    let stdout = drain(child.0.stdout.take().expect("piped above"));
    let stderr = drain(child.0.stderr.take().expect("piped above"));
    // On a timeout the guard kills the child, which closes the pipes and ends the readers.
    let status = wait_within(&mut child.0, limit)?;
    Some(Output {
        status,
        stdout: stdout.join().expect("the reader does not panic"),
        stderr: stderr.join().expect("the reader does not panic"),
    })
}

/// Reads `pipe` to its end on a thread of its own.
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// A loopback port that was free a moment ago (bound, then released). Another process may take
/// it before the test uses it: callers that start a server on it retry, callers that need
/// nothing to listen there accept the small risk.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("loopback binds")
        .port()
}

/// A fresh temporary directory, removed when dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory can be created")
}

/// A `frugal serve` child on 127.0.0.1:0, killed on drop, its stderr collected.
pub struct Server {
    /// The server process.
    pub child: KillOnDrop,
    /// Where it listens.
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// `frugal serve ARGS`, once it says where it listens.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(frugal(), args)
    }

    /// `CMD serve ARGS` (`cmd` runs frugal, e.g. through `sh -c 'ulimit ...'`), once it says
    /// where it listens (within the patience, or the test fails).
    pub fn start_with(mut cmd: Command, args: &[&str]) -> Server {
        let mut child = KillOnDrop(
            cmd.arg("serve")
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("the frugal binary starts"),
        );
        // Read the first line on a helper thread, bounded: a server that never prints it fails
        // the test (and is killed by the guard) instead of hanging it.
        let stdout = child.0.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(read.map(|_| line));
        });
        let line = rx
            .recv_timeout(PATIENCE)
            .expect("the server prints its address within the patience")
            .expect("the server's stdout is readable");
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("an IP:PORT");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let pipe = child.0.stderr.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().expect("not poisoned");
                s.push_str(&line);
                s.push('\n');
            }
        });
        Server {
            child,
            addr,
            stderr,
        }
    }

    /// `http://ADDR/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("not poisoned").clone()
    }

    /// Sends SIGTERM (through the shell's `kill` builtin) and waits for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.0.id().to_string();
        let status = Command::new("sh")
            .args(["-c", "kill -TERM \"$0\"", &pid])
            .status();
        assert!(status.expect("sh runs").success());
        wait_within(&mut self.child.0, PATIENCE).expect("the server exits after SIGTERM")
    }
}

/// Tests that must not overlap with each other (one group per reason; see `main.rs`). A test
/// holds the guard of [`Group::lock`] for its whole body.
pub struct Group(Mutex<()>);

impl Group {
    const fn new() -> Group {
        Group(Mutex::new(()))
    }

    /// Waits until no other test of the group runs. A test of the group that panicked does not
    /// stop the others: the lock guards no data, so its poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, ()> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `trace` tests: one bpftrace session at a time.
pub static TRACE: Group = Group::new();

/// Tests that load the whole machine or measure it: one at a time.
pub static HEAVY: Group = Group::new();
