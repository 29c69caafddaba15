//! `frugal load`: drive an HTTP server with N connections, closed-loop or at a constant rate.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use frugal_workloads::http::{load, LatencySummary, LoadConfig, LoadReport, Progress, Url};

#[path = "load_merge.rs"]
mod load_merge;

/// `frugal load merge`.
#[derive(Debug, clap::Subcommand)]
pub enum LoadCommand {
    /// Combine the HdrHistogram logs (--hdr-log) of several generators into one report.
    Merge(load_merge::Args),
}

/// Arguments of `frugal load`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    /// `merge`: combine the logs of several generators.
    #[command(subcommand)]
    command: Option<LoadCommand>,
    /// Target, `http://HOST:PORT/PATH`.
    #[arg(required = true)]
    url: Option<String>,
    /// Connections, all opened before the clock starts.
    #[arg(short = 'c', long, default_value_t = 100)]
    connections: u64,
    /// Measured duration (after the warm-up).
    #[arg(short = 'd', long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Constant rate in requests per second, with coordinated-omission correction
    /// [default: closed-loop, as fast as the server answers].
    #[arg(long)]
    rate: Option<f64>,
    /// Warm-up at full load, not measured.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Per-request timeout.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Event-loop threads [default: the CPUs this process may run on].
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress line.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Also write interval histograms to FILE in the HdrHistogram log format; combine the files
    /// of several generators with `frugal load merge`.
    #[arg(long, value_name = "FILE")]
    hdr_log: Option<PathBuf>,
    /// Interval of the --hdr-log histograms.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, requires = "hdr_log")]
    hdr_interval: Duration,
}

/// Runs `frugal load`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(LoadCommand::Merge(m)) = args.command {
        return load_merge::run(m);
    }
    let url: Url = args
        .url
        .as_deref()
        .context("a URL is required: frugal load http://HOST:PORT/")?
        .parse()?;
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
    let hdr_log = match &args.hdr_log {
        Some(path) => Some(Arc::new(
            frugal_workloads::http::hdrlog::IntervalLog::create(
                path,
                args.hdr_interval,
                args.rate.is_some(),
            )?,
        )),
        None => None,
    };
    config.hdr_log = hdr_log.clone();
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
    if let Some(log) = &hdr_log {
        let late = log.finish()?;
        if late > 0 {
            eprintln!(
                "frugal load: {late} responses were logged in a later --hdr-log interval than the \
                 one they completed in (they completed out of order); totals are unaffected"
            );
        }
    }
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
