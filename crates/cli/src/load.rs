//! `frugal load`: drive an HTTP server with N connections, closed-loop or at a constant rate.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use frugal_workloads::http::{load, LatencySummary, LoadConfig, LoadReport, Progress, Url};

use crate::ranges;

/// Arguments of `frugal load`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Target, `http://HOST:PORT/PATH`.
    url: String,
    /// Connections, all opened before the clock starts: 1 to 1,000,000 (and within RLIMIT_NOFILE,
    /// checked before connecting).
    #[arg(short = 'c', long, default_value_t = 100, allow_hyphen_values = true,
          value_parser = ranges::count::<u64>(1, ranges::MAX_CONNECTIONS, ranges::CONNECTIONS_WHY))]
    connections: u64,
    /// Measured duration (after the warm-up): 100ms to 1day.
    #[arg(short = 'd', long, default_value = "10s", allow_hyphen_values = true,
          value_parser = ranges::duration(ranges::MIN_RUN, ranges::MAX_RUN, ranges::RUN_WHY))]
    duration: Duration,
    /// Constant rate in requests per second, with coordinated-omission correction
    /// (above 0, at most 10,000,000) [default: closed-loop, as fast as the server answers].
    #[arg(long, allow_hyphen_values = true,
          value_parser = ranges::real(0.0, false, ranges::MAX_RATE, ranges::RATE_WHY))]
    rate: Option<f64>,
    /// Warm-up at full load, not measured: 0s to 1h.
    #[arg(long, default_value = "1s", allow_hyphen_values = true,
          value_parser = ranges::duration(Duration::ZERO, ranges::MAX_WARMUP, ranges::WARMUP_WHY))]
    warmup: Duration,
    /// Per-request timeout: 1ms to 1h.
    #[arg(long, default_value = "10s", allow_hyphen_values = true,
          value_parser = ranges::duration(ranges::MIN_TIMEOUT, ranges::MAX_TIMEOUT, ranges::TIMEOUT_WHY))]
    timeout: Duration,
    /// Event-loop threads, 1 to 1024 [default: the CPUs this process may run on].
    #[arg(short = 't', long, allow_hyphen_values = true,
          value_parser = ranges::count::<usize>(1, ranges::MAX_THREADS, ranges::THREADS_WHY))]
    threads: Option<usize>,
    /// Write the report as JSON to this file.
    #[arg(long, value_parser = ranges::output_file)]
    json: Option<PathBuf>,
    /// No progress line.
    #[arg(short = 'q', long)]
    quiet: bool,
}

/// Runs `frugal load`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let url: Url = args.url.parse()?;
    if let Some(rate) = args.rate {
        anyhow::ensure!(
            rate > 0.0 && rate.is_finite(),
            "--rate must be a positive number"
        );
    }
    let mut config = LoadConfig::new(url);
    config.connections = args.connections.max(1);
    config.duration = args.duration;
    config.warmup = args.warmup;
    config.rate = args.rate;
    config.timeout = args.timeout;
    config.threads = args.threads;
    let progress = Arc::new(Progress::default());
    let done = Arc::new(AtomicBool::new(false));
    let show = !args.quiet && std::io::stderr().is_terminal();
    let drawer = show.then(|| {
        let (progress, done, config) = (Arc::clone(&progress), Arc::clone(&done), config.clone());
        std::thread::spawn(move || draw_progress(&progress, &done, &config))
    });
    let report = load(&config, Some(progress));
    done.store(true, Ordering::Relaxed);
    if let Some(drawer) = drawer {
        let _ = drawer.join();
    }
    let report = report?;
    if let Some(path) = &args.json {
        crate::output::write_json(path, &report)?;
    }
    print!("{}", render(&report));
    std::io::stdout()
        .flush()
        .context("cannot write the report")?;
    Ok(ExitCode::SUCCESS)
}

/// Redraws one stderr line twice a second until `done`.
fn draw_progress(progress: &Progress, done: &AtomicBool, config: &LoadConfig) {
    let began = Instant::now();
    let mut last = (began, 0u64);
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(500));
        let now = Instant::now();
        let requests = progress.requests();
        let rps = (requests - last.1) as f64 / (now - last.0).as_secs_f64();
        last = (now, requests);
        let phase = match progress.started() {
            None => format!(
                "connecting {}/{} ({:.0} s)",
                progress.connected(),
                config.connections,
                (now - began).as_secs_f64()
            ),
            Some(start) if now < start + config.warmup => {
                format!(
                    "warm-up {:.0}/{:.0} s",
                    (now - start).as_secs_f64(),
                    config.warmup.as_secs_f64()
                )
            }
            Some(start) => format!(
                "measuring {:.0}/{:.0} s",
                (now.saturating_duration_since(start + config.warmup)).as_secs_f64(),
                config.duration.as_secs_f64()
            ),
        };
        eprint!(
            "\r\x1b[2K{phase}  {requests} ok  {rps:.0} req/s  {} errors",
            progress.errors()
        );
    }
    eprint!("\r\x1b[2K");
}

/// A latency in a unit that fits.
fn ns(v: u64) -> String {
    let v = v as f64;
    if v < 1e3 {
        format!("{v:.0} ns")
    } else if v < 1e6 {
        format!("{:.1} µs", v / 1e3)
    } else if v < 1e9 {
        format!("{:.2} ms", v / 1e6)
    } else {
        format!("{:.2} s", v / 1e9)
    }
}

fn latency_line(label: &str, s: &LatencySummary) -> String {
    format!(
        "  {label:<12} p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {}\n",
        ns(s.p50),
        ns(s.p90),
        ns(s.p99),
        ns(s.p999),
        ns(s.max),
        ns(s.mean as u64)
    )
}

/// The report as text.
pub(crate) fn render(r: &LoadReport) -> String {
    let mut out = format!(
        "{} {}: {} connections ({} open), {} threads, {} s measured after {} s warm-up\n",
        r.url, r.mode, r.connections, r.connections_open, r.threads, r.duration_s, r.warmup_s
    );
    let target = r
        .target_rps
        .map_or(String::new(), |t| format!(" (target {t:.0})"));
    out += &format!(
        "  {:<12} {:.0} req/s{target}\n",
        "throughput", r.achieved_rps
    );
    let e = &r.errors;
    out += &format!(
        "  {:<12} {} ok; errors: connect {}, timeout {}, status {}, reset {}, other {}\n",
        "requests", r.requests_ok, e.connect, e.timeout, e.status, e.reset, e.other
    );
    out += &latency_line("latency", &r.latency_ns);
    if let Some(c) = &r.latency_corrected_ns {
        out += &latency_line("corrected", c);
    }
    if let Some(p) = &r.pacer_lateness_ns {
        out += &format!(
            "  {:<12} p50 {}  p99 {}  max {}\n",
            "pacer late",
            ns(p.p50),
            ns(p.p99),
            ns(p.max)
        );
    }
    if r.requests_unsent > 0 {
        out += &format!(
            "  {} scheduled requests were never sent (counted as timeouts)\n",
            r.requests_unsent
        );
    }
    out
}
