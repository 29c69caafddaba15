//! `frugal bench http`: the service per cleanup strategy, as a separate process, under load.
//!
//! The server runs as a child process (one process cannot hold both ends of 10,000
//! connections under a 20,000 open-file limit), the load generator runs here. For each
//! strategy: a closed-loop run (maximum throughput) and a constant-rate run below saturation,
//! with the server's CPU time per request and resident memory read from `/proc/PID`.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::procfs::proc_stat;
use super::{load, Error, ErrorCounts, LoadConfig, LoadReport, Progress, Strategy, Url};

/// Settings of the benchmark.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BenchConfig {
    /// Strategies to compare, in order.
    pub strategies: Vec<Strategy>,
    /// Connections of each run.
    pub connections: u64,
    /// Measured duration of each run.
    pub duration: Duration,
    /// Warm-up of each run.
    pub warmup: Duration,
    /// Rate of the constant-rate runs; `None` = `rate_fraction` of the first closed-loop run.
    pub rate: Option<f64>,
    /// Fraction of the first closed-loop throughput used as the constant rate.
    pub rate_fraction: f64,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Load-generator threads (`None` = all CPUs).
    pub threads: Option<usize>,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            strategies: Strategy::ALL.to_vec(),
            connections: 10_000,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            rate: None,
            rate_fraction: 0.5,
            timeout: Duration::from_secs(10),
            threads: None,
        }
    }
}

/// One run of one strategy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchRow {
    /// The server's cleanup strategy.
    pub strategy: Strategy,
    /// `"closed-loop"` or `"constant-rate"`.
    pub mode: &'static str,
    /// Successful responses per second.
    pub achieved_rps: f64,
    /// The asked rate (constant-rate runs).
    pub target_rps: Option<f64>,
    /// Median latency, ns (corrected in constant-rate runs).
    pub p50_ns: u64,
    /// 99th percentile, ns (corrected in constant-rate runs).
    pub p99_ns: u64,
    /// 99.9th percentile, ns (corrected in constant-rate runs).
    pub p999_ns: u64,
    /// Failed requests by kind.
    pub errors: ErrorCounts,
    /// Server CPU seconds (user + system) during the measured window.
    pub server_cpu_s: f64,
    /// Server CPU microseconds per successful request in the measured window.
    pub server_cpu_us_per_request: f64,
    /// Server resident memory at the end of the run, bytes.
    pub server_rss_bytes: u64,
    /// The full load report.
    pub load: LoadReport,
}

/// The benchmark's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// Connections of each run.
    pub connections: u64,
    /// Measured seconds of each run.
    pub duration_s: f64,
    /// Warm-up seconds of each run.
    pub warmup_s: f64,
    /// Rate used by the constant-rate runs.
    pub constant_rate_rps: f64,
    /// The server's command line (after the executable).
    pub server_args: Vec<String>,
    /// One row per strategy and mode.
    pub rows: Vec<BenchRow>,
}

/// How long a started server has to print its address.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running server child; killed on drop.
struct ServerChild {
    child: Child,
    url: Option<Url>,
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(mut command: Command, strategy: Strategy) -> Result<ServerChild, Error> {
    command
        .args(["--strategy", strategy.name(), "--addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = command
        .spawn()
        .map_err(Error::io("cannot start the server process"))?;
    let stdout = child.stdout.take().expect("stdout is piped just above");
    // From here on, an early return kills the child (ServerChild's drop).
    let mut server = ServerChild { child, url: None };
    // Read on a helper thread so that a wedged server cannot hang the benchmark; on a timeout
    // the early return kills the child, which ends the helper's read with EOF.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let n = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(n.map(|n| (n, line)));
    });
    let (n, line) = match rx.recv_timeout(SERVER_START_TIMEOUT) {
        Ok(read) => read.map_err(Error::io("cannot read the server's address"))?,
        Err(_) => {
            return Err(Error::Io {
                context: "the server did not print its address within 15 s; is it wedged?",
                source: std::io::ErrorKind::TimedOut.into(),
            })
        }
    };
    if n == 0 {
        return Err(Error::Io {
            context: "the server exited before printing its address",
            source: std::io::ErrorKind::UnexpectedEof.into(),
        });
    }
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_default();
    server.url = Some(format!("{}/", addr.trim_end_matches('/')).parse()?);
    Ok(server)
}

/// Runs the benchmark. `server` is the command that starts `frugal serve` with any extra
/// flags; `--strategy` and `--addr` are appended per strategy. `on_row` sees each row as it is
/// measured (for live output).
pub fn bench(
    config: &BenchConfig,
    server: impl Fn() -> Command,
    mut on_row: impl FnMut(&BenchRow),
) -> Result<BenchReport, Error> {
    let server_args: Vec<String> = server()
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut rows = Vec::new();
    let mut rate = config.rate;
    for &strategy in &config.strategies {
        let child = start_server(server(), strategy)?;
        let pid = child.child.id();
        let url = child.url.clone().expect("start_server sets the url");
        let mut load_config = LoadConfig::new(url);
        load_config.connections = config.connections;
        load_config.duration = config.duration;
        load_config.warmup = config.warmup;
        load_config.timeout = config.timeout;
        load_config.threads = config.threads;
        let closed = measure(&load_config, strategy, pid)?;
        let constant_rate = *rate.get_or_insert(closed.achieved_rps * config.rate_fraction);
        on_row(&closed);
        rows.push(closed);
        load_config.rate = Some(constant_rate.max(1.0));
        let constant = measure(&load_config, strategy, pid)?;
        on_row(&constant);
        rows.push(constant);
        drop(child);
    }
    Ok(BenchReport {
        connections: config.connections,
        duration_s: config.duration.as_secs_f64(),
        warmup_s: config.warmup.as_secs_f64(),
        constant_rate_rps: rate.unwrap_or(0.0),
        server_args,
        rows,
    })
}

fn measure(config: &LoadConfig, strategy: Strategy, pid: u32) -> Result<BenchRow, Error> {
    // Sample the server's CPU time when the measured window opens, from a helper thread.
    let progress = Arc::new(Progress::default());
    let sampler = {
        let (progress, warmup) = (Arc::clone(&progress), config.warmup);
        std::thread::spawn(move || loop {
            if let Some(start) = progress.started() {
                std::thread::sleep((start + warmup).saturating_duration_since(Instant::now()));
                return proc_stat(Some(pid));
            }
            if progress.finished() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        })
    };
    let report = load(config, Some(progress));
    let after = proc_stat(Some(pid));
    let before = sampler.join().expect("the sampler does not panic");
    let report = report?;
    let cpu = match (before, after) {
        (Some(b), Some(a)) => a.cpu_seconds - b.cpu_seconds,
        _ => f64::NAN,
    };
    let latency = report.latency_corrected_ns.unwrap_or(report.latency_ns);
    Ok(BenchRow {
        strategy,
        mode: report.mode,
        achieved_rps: report.achieved_rps,
        target_rps: report.target_rps,
        p50_ns: latency.p50,
        p99_ns: latency.p99,
        p999_ns: latency.p999,
        errors: report.errors,
        server_cpu_s: cpu,
        server_cpu_us_per_request: cpu * 1e6 / report.requests_ok.max(1) as f64,
        server_rss_bytes: after.map_or(0, |a| a.resident_memory_bytes),
        load: report,
    })
}
