//! `frugal load`: drive an HTTP server with N connections, closed-loop or at a constant rate.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use frugal_http::{load, LatencySummary, LoadConfig, LoadReport, Progress, Url};

use crate::ranges;

mod merge;

/// `frugal load merge`.
#[derive(Debug, clap::Subcommand)]
pub enum LoadCommand {
    /// Combine the HdrHistogram logs (--hdr-log) of several generators into one report.
    Merge(merge::Args),
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
    /// Fail (exit status 1, after the report) when more than this percentage of the requests
    /// that ended in the measured window failed (connect, timeout, status >= 400, reset,
    /// protocol) or, with --rate, were still unanswered at the end. 0 to 100, a trailing % is
    /// allowed. A run with no successful response always fails.
    #[arg(long, default_value = "1%", value_parser = parse_percent)]
    max_error_rate: f64,
    /// Also write interval histograms to FILE in the HdrHistogram log format; combine the files
    /// of several generators with `frugal load merge`.
    #[arg(long, value_name = "FILE", value_parser = ranges::output_file)]
    hdr_log: Option<PathBuf>,
    /// Interval of the --hdr-log histograms.
    #[arg(long, default_value = "1s", requires = "hdr_log", allow_hyphen_values = true,
          value_parser = ranges::duration(Duration::from_millis(10), Duration::from_secs(3600),
                                          "the span of one interval histogram in the log"))]
    hdr_interval: Duration,
}

/// A percentage from 0 to 100, with or without a trailing `%`, as a fraction (0.0 to 1.0).
pub(crate) fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%');
    let value: f64 = number.parse().map_err(|_| {
        format!("{text:?} is not a percentage; give a number from 0 to 100, e.g. 1%")
    })?;
    if !(0.0..=100.0).contains(&value) {
        return Err(format!(
            "{text:?} is out of range; a percentage is from 0 to 100"
        ));
    }
    Ok(value / 100.0)
}

/// Why a finished run fails (`None`: it passes): no successful response, or an error rate above
/// `max` (a fraction).
pub(crate) fn failure(report: &LoadReport, max: f64) -> Option<String> {
    let errors = report.errors.total();
    if report.requests_ok == 0 {
        let mut why = format!(
            "no successful response in the measured window ({errors} errors, {} unfinished)",
            report.requests_unfinished
        );
        if report.requests_unfinished > 0 {
            why += &format!(
                "; the oldest unanswered request had waited {}: is the server stalled?",
                ns(report.unfinished_oldest_ns)
            );
        }
        return Some(why);
    }
    if report.target_rps.is_some() {
        // On a schedule, requests still unanswered at the end beyond the few in flight mean
        // the server fell behind the rate: their outcome is unknown, and they are not few.
        let all = report.requests_ok + errors + report.requests_unfinished;
        let share = report.requests_unfinished as f64 / all as f64;
        if share > max {
            return Some(format!(
                "{} requests ({}) were still unanswered at the end, more than the allowed {}: \
                 the server fell behind the rate; lower --rate or run longer (-d)",
                report.requests_unfinished,
                percent(share),
                percent(max)
            ));
        }
    }
    (report.error_rate > max).then(|| {
        format!(
            "error rate {} ({errors} of {} requests) is above the allowed {}; see the error \
             kinds above (raise --max-error-rate to accept it)",
            percent(report.error_rate),
            errors + report.requests_ok,
            percent(max)
        )
    })
}

/// A fraction as a percentage with enough digits to tell 0.04% from 0.
pub(crate) fn percent(fraction: f64) -> String {
    let p = fraction * 100.0;
    if p == p.round() || p >= 10.0 {
        format!("{p:.0}%")
    } else if p >= 0.1 {
        format!("{p:.1}%")
    } else {
        format!("{p:.3}%")
    }
}

/// Runs `frugal load`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(LoadCommand::Merge(m)) = args.command {
        return merge::run(m);
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
            frugal_http::hdrlog::IntervalLog::create(
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
    if let Some(why) = failure(&report, args.max_error_rate) {
        eprintln!("frugal load: {why}");
        return Ok(ExitCode::FAILURE);
    }
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
            Some(start) if now < start + config.warmup + config.duration => format!(
                "measuring {:.0}/{:.0} s",
                (now.saturating_duration_since(start + config.warmup)).as_secs_f64(),
                config.duration.as_secs_f64()
            ),
            // Past the end: the threads are stopping (no wait goes past the end).
            Some(_) => "finishing".to_owned(),
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
        "  {:<12} {} ok; errors {} ({}): connect {}, timeout {}, status {}, reset {}, other {}\n",
        "requests",
        r.requests_ok,
        e.total(),
        percent(r.error_rate),
        e.connect,
        e.timeout,
        e.status,
        e.reset,
        e.other
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
            "  {} scheduled requests were never sent: the server fell behind (counted as \
             timeouts or unfinished)\n",
            r.requests_unsent
        );
    }
    if r.requests_unfinished > 0 {
        out += &format!(
            "  {} requests unanswered at the end (oldest waited {}): outcome unknown, not counted\n",
            r.requests_unfinished,
            ns(r.unfinished_oldest_ns)
        );
    }
    out +=
        "  (responses count when they complete in the measured window, warm-up sends included)\n";
    out
}
