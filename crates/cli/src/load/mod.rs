//! `frugal load`: drive an HTTP server with N connections, closed-loop or at a constant rate.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use frugal_http::{load, LoadConfig, Progress, Url};

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
    /// Fail (exit status 1, after the report) when more than this percentage of the requests
    /// that ended in the measured window failed (connect, timeout, status >= 400, reset,
    /// protocol) or, with --rate, were still unanswered at the end. 0 to 100, a trailing % is
    /// allowed. A run with no successful response always fails.
    #[arg(long, default_value = "1%", allow_hyphen_values = true,
          value_parser = ranges::percent(ranges::ERROR_RATE_WHY))]
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
    #[command(flatten)]
    output: crate::output::OutputArgs,
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
        Some(path) => Some(Arc::new(frugal_http::hdrlog::IntervalLog::create(
            path,
            args.hdr_interval,
            args.rate.is_some(),
        )?)),
        None => None,
    };
    config.hdr_log = hdr_log.clone();
    let progress = Arc::new(Progress::default());
    let shown = ShowProgress::start(&progress, &config, args.output.quiet);
    let report = load(&config, Some(progress));
    shown.finish();
    let report = report?;
    if let Some(log) = &hdr_log {
        let late = log.finish()?;
        if late > 0 {
            // A note, not an error: `-q` silences it.
            if !args.output.quiet {
                eprintln!(
                "frugal load: {late} responses were logged in a later --hdr-log interval than the \
                 one they completed in (they completed out of order); totals are unaffected"
            );
            }
        }
    }
    crate::output::emit(&args.output, &report)?;
    if let Some(why) = report.failure(args.max_error_rate) {
        eprintln!("frugal load: {why}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The run's progress bar on stderr (hidden with `-q` or when stderr is not a terminal), fed
/// from the generator's live counters: connecting, warm-up, measuring, with the last half
/// second's request rate and the errors so far.
struct ShowProgress {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ShowProgress {
    fn start(progress: &Arc<Progress>, config: &LoadConfig, quiet: bool) -> ShowProgress {
        let total = config.warmup + config.duration;
        let bar = crate::output::bar(total.as_millis().max(1) as u64, quiet);
        let done = Arc::new(AtomicBool::new(false));
        let thread = (!bar.is_hidden()).then(|| {
            let (progress, done) = (Arc::clone(progress), Arc::clone(&done));
            let (connections, warmup) = (config.connections, config.warmup);
            std::thread::spawn(move || {
                let mut last = (Instant::now(), 0u64);
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(500));
                    let now = Instant::now();
                    let requests = progress.requests();
                    let rps = (requests - last.1) as f64 / (now - last.0).as_secs_f64();
                    last = (now, requests);
                    let errors = progress.errors();
                    let phase = match progress.started() {
                        None => {
                            bar.set_message(format!(
                                "connecting {}/{connections}",
                                progress.connected()
                            ));
                            continue;
                        }
                        Some(start) if now < start + warmup => "warm-up",
                        Some(_) => "measuring",
                    };
                    let start = progress.started().expect("matched above");
                    let elapsed = now.saturating_duration_since(start).min(total);
                    bar.set_position(elapsed.as_millis() as u64);
                    bar.set_message(format!("{phase} {rps:.0} req/s, {errors} errors"));
                }
                bar.finish_and_clear();
            })
        });
        ShowProgress { done, thread }
    }

    fn finish(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
