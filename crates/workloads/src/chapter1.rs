//! The article's chapter-1 figures that are not about `defer`: the size of a static Go HTTP
//! server binary ("only 12 MB") and the cost of a thread context switch ("~1–2 µs").
//!
//! - [`go_binary`] builds `crates/workloads/go/httpserver` (a `net/http` hello service, embedded
//!   in this binary) with the `go` on `PATH`, as the article does (`go build -o api-server
//!   main.go`, `CGO_ENABLED=0` so it is static), and reports its size — also stripped (`-ldflags
//!   "-s -w"`), the size people ship.
//! - [`go_gc_pauses`] runs that service under load from [`frugal_http::load`] with
//!   `GODEBUG=gctrace=1` (each request leaves 32 KiB of garbage, as a handler's working memory
//!   would) and reads the stop-the-world phases of every GC cycle from the trace: sweep
//!   termination and mark termination, the first and third "ms clock" figures.
//! - [`context_switch`] measures a two-thread ping-pong over a Unix socket pair with both threads
//!   pinned to one CPU, so every hand-over is a context switch (the method of `perf bench sched
//!   pipe`): per switch = round trip ÷ 2. [`perf_bench_sched_pipe`] runs perf's own benchmark
//!   beside it when `perf` is installed.

use std::io::{BufRead as _, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::go::{go_command, go_version};
use crate::Error;

const GO_MOD: &str = include_str!("../go/httpserver/go.mod");
const MAIN_GO: &str = include_str!("../go/httpserver/main.go");

/// The Go HTTP server binary's size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoBinary {
    /// `go version`.
    pub go_version: String,
    /// Size of `go build` (static, `CGO_ENABLED=0`), bytes.
    pub size_bytes: u64,
    /// Size with `-ldflags "-s -w"` (no symbol table, no DWARF), bytes.
    pub stripped_bytes: u64,
}

/// The article's example service, built.
struct Built {
    dir: tempfile::TempDir,
    version: String,
}

/// Builds the article's example service with Go and measures it. `Ok(None)` when no Go
/// toolchain is on `PATH`.
pub fn go_binary() -> Result<Option<GoBinary>, Error> {
    let Some(built) = build()? else {
        return Ok(None);
    };
    let size = |name: &str| {
        let path = built.dir.path().join(name);
        std::fs::metadata(&path)
            .map(|m| m.len())
            .map_err(|source| Error::File { path, source })
    };
    Ok(Some(GoBinary {
        go_version: built.version.clone(),
        size_bytes: size("api-server")?,
        stripped_bytes: size("api-server-stripped")?,
    }))
}

fn build() -> Result<Option<Built>, Error> {
    let Some(version) = go_version() else {
        return Ok(None);
    };
    let dir = crate::go::module_dir(
        "frugal-go-httpserver-",
        &[("go.mod", GO_MOD), ("main.go", MAIN_GO)],
    )?;
    let build = |out: &str, extra: &[&str]| -> Result<(), Error> {
        let mut cmd = go_command(dir.path());
        cmd.env("CGO_ENABLED", "0")
            .arg("build")
            .args(extra)
            .args(["-o", out, "."]);
        run(cmd, "go build (go/httpserver)")
    };
    build("api-server", &[])?;
    build("api-server-stripped", &["-ldflags", "-s -w"])?;
    Ok(Some(Built { dir, version }))
}

/// The Go service's garbage-collector pauses under load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GcPauses {
    /// `go version`.
    pub go_version: String,
    /// Requests answered during the run.
    pub requests: u64,
    /// Requests per second achieved.
    pub rps: f64,
    /// GC cycles traced.
    pub cycles: u32,
    /// Every stop-the-world phase (sweep termination, mark termination), microseconds.
    pub pauses_us: Vec<f64>,
    /// Their median.
    pub median_us: f64,
    /// Their 99th percentile (nearest rank).
    pub p99_us: f64,
    /// Their largest.
    pub max_us: f64,
}

/// The stop-the-world phases of `gctrace` lines (`gc N @Ts P%: A+B+C ms clock, ...`): A and C,
/// in microseconds.
pub fn parse_gctrace(text: &str) -> Vec<f64> {
    let mut out = Vec::new();
    for line in text.lines() {
        if !line.starts_with("gc ") {
            continue;
        }
        let Some(clock) = line
            .split(": ")
            .nth(1)
            .and_then(|r| r.split(" ms clock").next())
        else {
            continue;
        };
        let parts: Vec<f64> = clock
            .split('+')
            .filter_map(|p| p.trim().parse().ok())
            .collect();
        if let [a, _, c] = parts[..] {
            out.push(a * 1e3);
            out.push(c * 1e3);
        }
    }
    out
}

/// Runs the article's service under `connections` closed-loop connections for `duration` with
/// `GODEBUG=gctrace=1` and collects its GC pauses. `Ok(None)` without a Go toolchain.
pub fn go_gc_pauses(duration: Duration, connections: u64) -> Result<Option<GcPauses>, Error> {
    let Some(built) = build()? else {
        return Ok(None);
    };
    let binary = built.dir.path().join("api-server");
    let mut child = Command::new(&binary)
        .arg("127.0.0.1:0")
        .env("GODEBUG", "gctrace=1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Spawn {
            command: binary.display().to_string(),
            source,
        })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    // Kill the server on every path out of here.
    let guard = scopeguard::guard(child, |mut c| {
        let _ = c.kill();
        let _ = c.wait();
    });
    let trace = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text);
        text
    });
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|source| Error::File {
            path: binary.clone(),
            source,
        })?;
    let child_err = |message: String| Error::Child {
        command: "the Go service under frugal load".to_owned(),
        message,
    };
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| child_err(format!("no address printed (got {line:?})")))?;
    let url: frugal_http::Url = format!("{addr}/")
        .parse()
        .map_err(|e: frugal_http::Error| child_err(e.to_string()))?;
    let mut config = frugal_http::LoadConfig::new(url);
    config.connections = connections;
    config.duration = duration;
    config.warmup = Duration::from_millis(500);
    let report = frugal_http::load(&config, None).map_err(|e| child_err(e.to_string()))?;
    drop(guard);
    let text = trace.join().expect("the reader thread does not panic");
    let pauses_us = parse_gctrace(&text);
    if pauses_us.is_empty() {
        return Err(child_err(format!(
            "no GC cycle traced in {:?} ({} requests): nothing to report",
            duration, report.requests_ok
        )));
    }
    let mut sorted = pauses_us.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(Some(GcPauses {
        go_version: built.version,
        requests: report.requests_ok,
        rps: report.achieved_rps,
        cycles: (pauses_us.len() / 2) as u32,
        median_us: sorted[sorted.len() / 2],
        p99_us: sorted[((sorted.len() as f64 * 0.99).ceil() as usize).clamp(1, sorted.len()) - 1],
        max_us: sorted[sorted.len() - 1],
        pauses_us,
    }))
}

fn run(mut cmd: Command, what: &str) -> Result<(), Error> {
    let out = cmd.output().map_err(|source| Error::Spawn {
        command: what.to_owned(),
        source,
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    Err(Error::Child {
        command: what.to_owned(),
        message: format!(
            "{}: {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ),
    })
}

/// A ping-pong measurement of context switches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextSwitch {
    /// Round trips per sample.
    pub round_trips: u32,
    /// Whether both threads were pinned to one CPU (every hand-over a switch).
    pub pinned: bool,
    /// Nanoseconds per context switch, one value per sample (round trip ÷ 2).
    pub samples_ns: Vec<f64>,
    /// Median of the samples.
    pub median_ns: f64,
    /// `perf bench sched pipe` on the same machine, µs per operation (one round trip: two
    /// switches), when perf is installed.
    pub perf_bench_usecs_per_op: Option<f64>,
}

/// Ping-pong between two threads over a Unix socket pair, `samples` times `round_trips`.
pub fn context_switch(round_trips: u32, samples: u32) -> Result<ContextSwitch, Error> {
    let io_err = |source| Error::File {
        path: PathBuf::from("socketpair"),
        source,
    };
    let (mut a, mut b) = UnixStream::pair().map_err(io_err)?;
    let cpu = pin_cpu();
    let pinned = cpu.is_some();
    let total = u64::from(round_trips) * u64::from(samples);
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        if let Some(cpu) = cpu {
            pin_to(cpu);
        }
        let mut byte = [0u8; 1];
        for _ in 0..total {
            b.read_exact(&mut byte)?;
            b.write_all(&byte)?;
        }
        Ok(())
    });
    if let Some(cpu) = cpu {
        pin_to(cpu);
    }
    let mut samples_ns = Vec::with_capacity(samples as usize);
    let mut byte = [7u8; 1];
    for _ in 0..samples {
        let start = Instant::now();
        for _ in 0..round_trips {
            a.write_all(&byte).map_err(io_err)?;
            a.read_exact(&mut byte).map_err(io_err)?;
        }
        samples_ns.push(start.elapsed().as_nanos() as f64 / f64::from(round_trips) / 2.0);
    }
    echo.join()
        .expect("the echo thread does not panic")
        .map_err(io_err)?;
    unpin();
    let mut sorted = samples_ns.clone();
    sorted.sort_by(f64::total_cmp);
    let median_ns = sorted[sorted.len() / 2];
    Ok(ContextSwitch {
        round_trips,
        pinned,
        samples_ns,
        median_ns,
        perf_bench_usecs_per_op: perf_bench_sched_pipe(),
    })
}

/// The CPU this thread may run on first, if affinity can be read.
fn pin_cpu() -> Option<usize> {
    let set = rustix::thread::sched_getaffinity(None).ok()?;
    (0..rustix::thread::CpuSet::MAX_CPU).find(|&i| set.is_set(i))
}

fn pin_to(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    // Best effort: unpinned, the figure is a cross-CPU wake-up rather than a switch, and
    // `pinned` says which (it is false only when the affinity could not be read).
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

fn unpin() {
    let mut set = rustix::thread::CpuSet::new();
    for cpu in 0..std::thread::available_parallelism().map_or(1, |n| n.get()) {
        set.set(cpu);
    }
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

/// `perf bench sched pipe -l 20000` pinned to one CPU (`-T` threads), µs per round trip.
pub fn perf_bench_sched_pipe() -> Option<f64> {
    let cpu = pin_cpu().unwrap_or(0).to_string();
    let out = Command::new("taskset")
        .args([
            "-c", &cpu, "perf", "bench", "sched", "pipe", "-T", "-l", "20000",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_perf_bench(&String::from_utf8_lossy(&out.stdout))
}

/// The `usecs/op` figure of `perf bench sched pipe` output.
pub fn parse_perf_bench(text: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.contains("usecs/op"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_pong_measures_something_positive() {
        let r = context_switch(200, 3).unwrap();
        assert_eq!(r.samples_ns.len(), 3);
        assert!(r.median_ns > 0.0);
    }

    #[test]
    fn parses_gctrace_pauses() {
        let text = "listening\ngc 1 @0.005s 2%: 0.011+1.2+0.003 ms clock, 0.022+0.1/0.3/0+0.006 ms cpu, 4->4->0 MB, 4 MB goal, 2 P\ngc 2 @0.010s 3%: 0.25+0.5+0.040 ms clock, x\nnot gc\n";
        let p = parse_gctrace(text);
        assert_eq!(p.len(), 4);
        assert!((p[0] - 11.0).abs() < 1e-9 && (p[1] - 3.0).abs() < 1e-9);
        assert!((p[2] - 250.0).abs() < 1e-9 && (p[3] - 40.0).abs() < 1e-9);
        assert!(parse_gctrace("gc 3 @1s 1%: garbage ms clock").is_empty());
    }

    #[test]
    fn parses_perf_bench_output() {
        let text = "# Running 'sched/pipe' benchmark:\n# Executed 20000 pipe operations between two threads\n\n     Total time: 0.160 [sec]\n\n       8.014250 usecs/op\n         124777 ops/sec\n";
        assert_eq!(parse_perf_bench(text), Some(8.01425));
        assert_eq!(parse_perf_bench("nothing"), None);
    }
}
