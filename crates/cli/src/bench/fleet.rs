//! `frugal bench fleet`: rightsizing a synthetic fleet with the engine computing the statistics
//! (pushdown) against pulling every sample: wall time, bytes received, peak RSS.
//!
//! A local VictoriaMetrics (single node, Debian's `victoria-metrics`) is started on a free
//! loopback port with a temporary directory and filled through its import API with `--workloads`
//! gauges of CPU and memory every `--interval` for `--days`; or `--url` names an engine already
//! holding `fleet_cpu_cores` / `fleet_memory_bytes` by `job`. Each measurement is a child process
//! (`frugal bench fleet --run-one ...`) so that its peak RSS (`VmHWM`) is its own; the two modes
//! alternate, `--repeats` times, and medians with min–max are reported.
//!
//! The engine started here runs without its response cache (`-search.disableCache`: a repeat
//! would otherwise be answered from the previous run's results), and the runs wait until its
//! background merges after the fill are done. Its CPU time per run (`/proc/PID/stat`) is reported
//! beside the wall time: on a shared machine the wall time follows the load, the engine's work
//! does not.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use ::frugal_rightsize as rs;
use anyhow::{bail, Context};
use frugal_output::{Document, Summary, Table, Tone};
use serde::{Deserialize, Serialize};

const VICTORIA: &str = "/usr/bin/victoria-metrics";

/// Arguments of `frugal bench fleet`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Workloads in the synthetic fleet: 1 to 100,000.
    #[arg(long, default_value_t = 100, allow_hyphen_values = true,
          value_parser = crate::ranges::count::<u32>(1, 100_000, "two series each, filled into the engine before measuring; 100,000 is already a large fleet"))]
    workloads: u32,
    /// Days of data: above 0, at most 365.
    #[arg(long, default_value_t = 2.0, allow_hyphen_values = true,
          value_parser = crate::ranges::real(0.0, false, 365.0, "days of samples ending an hour ago; a year at 15s is two million samples per series"))]
    days: f64,
    /// Sample interval (and query step): 1s to 1h.
    #[arg(long, default_value = "15s", allow_hyphen_values = true,
          value_parser = crate::ranges::duration(Duration::from_secs(1), Duration::from_secs(3600), "the engine stores whole seconds; an interval above an hour leaves no 5-minute peak to size for"))]
    interval: Duration,
    /// Measurements per mode (alternating pushdown and pull): 1 to 50.
    #[arg(long, default_value_t = 3, allow_hyphen_values = true,
          value_parser = crate::ranges::count::<u32>(1, 50, "each measurement reads the whole fleet; more than 50 belong in a script"))]
    repeats: u32,
    /// Use this engine instead of starting VictoriaMetrics; it must hold `fleet_cpu_cores` and
    /// `fleet_memory_bytes` by `job` for the range (`--end` minus `--days`).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// End of the range with --url (Unix seconds, 2001 to 9999).
    #[arg(long, value_name = "UNIX_S", requires = "url", allow_hyphen_values = true,
          value_parser = crate::ranges::count::<i64>(1_000_000_000, 253_402_300_799, "Unix seconds from 2001 to 9999; milliseconds are refused"))]
    end: Option<i64>,
    /// Give up on one engine request after this long: 1s to 1h.
    #[arg(long, default_value = "300s", allow_hyphen_values = true,
          value_parser = crate::ranges::duration(Duration::from_secs(1), Duration::from_secs(3600), "whole seconds, passed on to each measurement; an answer slower than an hour is a hung engine"))]
    timeout: Duration,
    #[command(flatten)]
    output: crate::output::OutputArgs,
    /// Internal: run one measurement (`push` or `pull`) and print it as JSON.
    #[arg(long, hide = true, value_name = "MODE", requires = "url")]
    run_one: Option<String>,
    /// Internal: start of the range for --run-one (Unix seconds).
    #[arg(long, hide = true, value_name = "UNIX_S")]
    start: Option<i64>,
}

/// One measurement.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Run {
    /// `push` or `pull`.
    pub mode: String,
    /// Wall time of fetch + analysis, seconds.
    pub wall_s: f64,
    /// Bytes of answers received.
    pub bytes: u64,
    /// HTTP requests made.
    pub requests: u64,
    /// Workloads in the report.
    pub workloads: usize,
    /// Peak resident set size of the measuring process, bytes (`VmHWM`).
    pub peak_rss_bytes: u64,
    /// CPU time the engine spent during the run, seconds (only for an engine started here).
    #[serde(default)]
    pub engine_cpu_s: Option<f64>,
    /// Monthly savings of the fleet, USD (both modes must agree).
    pub total_monthly_savings_usd: f64,
}

/// The report of `frugal bench fleet`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Workloads.
    pub workloads: u32,
    /// Days of data.
    pub days: f64,
    /// Sample interval, seconds.
    pub interval_s: u64,
    /// Points per metric (workloads × samples).
    pub points_per_metric: u64,
    /// The engine.
    pub engine: String,
    /// Seconds spent filling the engine (absent with --url).
    pub fill_s: Option<f64>,
    /// 1-minute load average before the measurements.
    pub load_average: Option<f64>,
    /// CPUs of this machine.
    pub cpus: usize,
    /// Every measurement.
    pub runs: Vec<Run>,
    /// Pushdown: wall seconds, bytes, peak RSS bytes.
    pub push: [Summary; 3],
    /// Pull: wall seconds, bytes, peak RSS bytes.
    pub pull: [Summary; 3],
    /// The engine's CPU seconds per run: pushdown, pull (absent with --url).
    pub engine_cpu_s: Option<[Summary; 2]>,
    /// Whether every run found the same fleet savings (within 1%).
    pub savings_agree: bool,
    /// How the queries scale with the fleet.
    pub scaling: String,
}

/// The schema version of the report's JSON.
const SCHEMA_VERSION: u32 = 1;

const SCALING: &str = "pushdown: a fixed number of queries whatever the fleet size, each \
answering every workload at once: per chunk of at most --pushdown-max-steps steps, two instant \
queries on VictoriaMetrics (the CPU query's count, sum, min, max, first and last sample from one \
aggr_over_time evaluation; memory's maximum), seven on PromQL engines (one per statistic), one \
or two more when some values are unusable or instances are counted; then one range query of \
5-minute CPU maxima per 1,000 windows (window count, percentile). The engine evaluates each \
query over every sample of its chunk: its work grows with workloads x samples x queries (three \
evaluations of the range on VictoriaMetrics: CPU twice, memory once; eight on PromQL engines); the \
bytes grow with workloads x (queries + 5-minute windows), not with the samples. pull: one range \
query per statistic (CPU, memory, and instances, rate, latency when asked) per chunk of about a \
million points (at most 10,000 steps), each answering every sample of every workload: the engine \
evaluates each query once, the bytes and the work here grow with workloads x samples, the memory \
here with workloads x 5-minute windows (each chunk is folded into them before the next).";

/// Kills the engine when the benchmark ends, however it ends.
struct KillOnDrop(Child, PathBuf);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn http(port: u16, method: &str, path: &str, body: &[u8]) -> anyhow::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}

/// CPU time (user + system) a process has used, seconds; `None` when it cannot be read.
fn process_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // In USER_HZ, which is 100 on x86 and ARM Linux.
    Some(ticks / 100.0)
}

/// Waits (at most `limit`) until VictoriaMetrics reports no active background merge: the fill
/// leaves merges running for a while, and they would be counted against the first run.
fn wait_for_merges(port: u16, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let metrics = http(port, "GET", "/metrics", b"")?;
        let active: f64 = metrics
            .lines()
            .filter(|l| l.starts_with("vm_active_merges"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if active == 0.0 || Instant::now() > deadline {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn start_victoria(dir: &std::path::Path) -> anyhow::Result<(KillOnDrop, u16)> {
    if !std::path::Path::new(VICTORIA).exists() {
        bail!("{VICTORIA} is missing: install Debian's victoria-metrics (scripts/deps.sh) or pass --url");
    }
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(VICTORIA)
        .arg(format!("-storageDataPath={}", dir.display()))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg("-retentionPeriod=10y")
        .arg("-loggerLevel=ERROR")
        // Every run computes: a repeat must not be answered from the previous run's results.
        .arg("-search.disableCache")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {VICTORIA}"))?;
    let guard = KillOnDrop(child, dir.to_owned());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http(port, "GET", "/health", b"").is_ok_and(|r| r.contains(" 200 ")) {
        if Instant::now() > deadline {
            bail!("victoria-metrics did not answer on 127.0.0.1:{port} within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((guard, port))
}

/// Fills the engine: CPU 0.2–1.8 cores with a daily wave and bursts, memory 1–12 GiB.
fn fill(port: u16, workloads: u32, start: i64, end: i64, interval: i64) -> anyhow::Result<()> {
    let types = ["m7i.xlarge", "c7i.2xlarge", "r7i.large", "m7i.2xlarge"];
    let mut body = String::with_capacity(32 << 20);
    let flush = |body: &mut String| -> anyhow::Result<()> {
        let answer = http(port, "POST", "/api/v1/import/prometheus", body.as_bytes())?;
        if !answer.contains(" 204 ") {
            bail!(
                "victoria-metrics refused the import: {}",
                answer.lines().next().unwrap_or("")
            );
        }
        body.clear();
        Ok(())
    };
    for w in 0..workloads {
        let itype = types[w as usize % types.len()];
        let base = 0.2 + (w % 17) as f64 * 0.09;
        let gib = 1.0 + (w % 12) as f64;
        let mut t = start;
        let mut i = 0u64;
        while t <= end {
            let day = ((t % 86_400) as f64 / 86_400.0 * std::f64::consts::TAU).sin();
            let burst = if (t / 900 + i64::from(w)) % 16 == 0 {
                0.3
            } else {
                0.0
            };
            let noise = ((i * 7919 + u64::from(w) * 104_729) % 101) as f64 / 1000.0;
            let cpu = base * (1.0 + 0.3 * day) + burst + noise;
            let mem = gib * 1_073_741_824.0 * (0.9 + noise);
            let ms = t * 1000;
            use std::fmt::Write as _;
            let _ = writeln!(
                body,
                "fleet_cpu_cores{{job=\"w{w:05}\",instance_type=\"{itype}\"}} {cpu:.4} {ms}\n\
                 fleet_memory_bytes{{job=\"w{w:05}\",instance_type=\"{itype}\"}} {mem:.0} {ms}"
            );
            if body.len() > 24 << 20 {
                flush(&mut body)?;
            }
            t += interval;
            i += 1;
        }
    }
    if !body.is_empty() {
        flush(&mut body)?;
    }
    let answer = http(port, "GET", "/internal/force_flush", b"")?;
    if !answer.contains(" 200 ") {
        bail!(
            "victoria-metrics did not flush: {}",
            answer.lines().next().unwrap_or("")
        );
    }
    Ok(())
}

fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn run_one(args: &Args, mode: &str) -> anyhow::Result<ExitCode> {
    let url = args.url.clone().context("--run-one needs --url")?;
    let (Some(start_s), Some(end_s)) = (args.start, args.end) else {
        bail!("--run-one needs --start and --end");
    };
    let step_s = args.interval.as_secs() as i64;
    let opts = rs::prometheus::PromOptions {
        url,
        start_s,
        end_s,
        step_s,
        timeout: args.timeout,
        instance_type: None,
        instance_type_label: "instance_type".to_owned(),
        max_response_bytes: u64::MAX,
        pushdown: mode == "push",
        max_subquery_steps: rs::pushdown::DEFAULT_MAX_SUBQUERY_STEPS,
    };
    let queries = rs::prometheus::Queries {
        cpu: "fleet_cpu_cores".to_owned(),
        memory: "fleet_memory_bytes".to_owned(),
        instances: None,
        rps: None,
        latency: None,
        workload_labels: vec!["job".to_owned()],
    };
    let catalog = rs::Catalog::embedded();
    let config = rs::Config::default();
    let t0 = Instant::now();
    let (report, fetched) = match mode {
        "push" => {
            let (stats, fetched) =
                rs::pushdown::fetch(&opts, &queries, config.cpu_percentile, false)?;
            (rs::pushdown::analyze(&stats, &catalog, &config), fetched)
        }
        "pull" => {
            let mut set = rs::SeriesSet::new();
            let fetched = rs::prometheus::fetch(&opts, &queries, &mut set)?;
            (rs::analyze(&set.into_series(), &catalog, &config), fetched)
        }
        other => bail!("--run-one {other}: expected push or pull"),
    };
    let run = Run {
        mode: mode.to_owned(),
        wall_s: t0.elapsed().as_secs_f64(),
        bytes: fetched.bytes,
        requests: fetched.requests,
        workloads: report.recommendations.len(),
        peak_rss_bytes: peak_rss_bytes(),
        engine_cpu_s: None,
        total_monthly_savings_usd: report.total_monthly_savings_usd,
    };
    crate::output::print(&(serde_json::to_string(&run)? + "\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `frugal bench fleet`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(mode) = &args.run_one {
        return run_one(&args, mode);
    }
    // Both checked at parse time: at least 1 s, days in (0, 365].
    let interval = args.interval.as_secs() as i64;
    let span = (args.days * 86_400.0) as i64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let (guard, url, end, fill_s, engine) = match &args.url {
        Some(u) => {
            let end = args.end.unwrap_or(now);
            (None, u.clone(), end, None, format!("{u} (given)"))
        }
        None => {
            let end = (now - 3600) / 300 * 300;
            let dir =
                std::env::temp_dir().join(format!("frugal-bench-fleet-{}", std::process::id()));
            let (guard, port) = start_victoria(&dir)?;
            let spinner = crate::output::spinner(
                format!(
                    "filling victoria-metrics with {} workloads x {} days at {interval} s",
                    args.workloads, args.days
                ),
                args.output.quiet,
            );
            let t0 = Instant::now();
            let filled = fill(port, args.workloads, end - span, end, interval);
            spinner.finish_and_clear();
            filled?;
            let fill_s = t0.elapsed().as_secs_f64();
            wait_for_merges(port, Duration::from_secs(300))?;
            (
                Some(guard),
                format!("http://127.0.0.1:{port}"),
                end,
                Some(fill_s),
                "victoria-metrics (single node, started here)".to_owned(),
            )
        }
    };
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok());
    let engine_pid = guard.as_ref().map(|g| g.0.id());
    let exe = std::env::current_exe().context("cannot find the frugal executable")?;
    let mut runs = Vec::new();
    let bar = crate::output::bar(2 * u64::from(args.repeats), args.output.quiet);
    for i in 0..args.repeats {
        let order = if i % 2 == 0 {
            ["push", "pull"]
        } else {
            ["pull", "push"]
        };
        for mode in order {
            bar.set_message(format!("run {} of {}: {mode}", i + 1, args.repeats));
            let cpu_before = engine_pid.and_then(process_cpu_s);
            let out = Command::new(&exe)
                .args(["bench", "fleet", "--run-one", mode, "--url", &url])
                .args(["--start", &(end - span).to_string()])
                .args(["--end", &end.to_string()])
                .args(["--interval", &format!("{interval}s")])
                .args(["--timeout", &format!("{}s", args.timeout.as_secs())])
                .stdin(Stdio::null())
                .output()
                .context("cannot run the measuring child")?;
            if !out.status.success() {
                bail!(
                    "the {mode} measurement failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let mut run: Run = serde_json::from_slice(&out.stdout)
                .context("the measuring child printed no report")?;
            run.engine_cpu_s = match (cpu_before, engine_pid.and_then(process_cpu_s)) {
                (Some(a), Some(b)) => Some(b - a),
                _ => None,
            };
            runs.push(run);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    drop(guard);
    let pick = |mode: &str, f: fn(&Run) -> f64| -> Summary {
        Summary::from_samples(runs.iter().filter(|r| r.mode == mode).map(f).collect())
    };
    let three = |mode: &str| {
        [
            pick(mode, |r| r.wall_s),
            pick(mode, |r| r.bytes as f64),
            pick(mode, |r| r.peak_rss_bytes as f64),
        ]
    };
    let engine_cpu_s = runs.iter().all(|r| r.engine_cpu_s.is_some()).then(|| {
        [
            pick("push", |r| r.engine_cpu_s.unwrap_or(0.0)),
            pick("pull", |r| r.engine_cpu_s.unwrap_or(0.0)),
        ]
    });
    // With --url the fleet is whatever the engine holds: the runs say how many workloads.
    let workloads = match &args.url {
        Some(_) => runs.first().map_or(0, |r| r.workloads as u32),
        None => args.workloads,
    };
    let samples = (span / interval + 1) as u64;
    let savings_agree = {
        let s: Vec<f64> = runs.iter().map(|r| r.total_monthly_savings_usd).collect();
        let (lo, hi) = s
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
        (hi - lo).abs() <= 0.01 * hi.abs().max(1.0)
    };
    let report = Report {
        workloads,
        days: args.days,
        interval_s: interval as u64,
        points_per_metric: samples * u64::from(workloads),
        engine,
        fill_s,
        load_average,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        push: three("push"),
        pull: three("pull"),
        engine_cpu_s,
        runs,
        savings_agree,
        scaling: SCALING.to_owned(),
    };
    crate::output::emit(&args.output, &report)?;
    Ok(ExitCode::SUCCESS)
}

impl frugal_output::Render for Report {
    const SCHEMA: &'static str = "frugal-bench-fleet";
    const VERSION: u32 = SCHEMA_VERSION;

    /// The fleet and the machine, medians (min-max) per mode, the ratios, whether the two paths
    /// agree, how the queries scale.
    fn document(&self) -> Document {
        let mib = |b: f64| b / 1_048_576.0;
        let mut doc = Document::new("frugal bench fleet: pushdown vs pull");
        doc.line(format!(
            "fleet: {} workloads x {} days at {} s = {} points per metric; engine {}{}",
            self.workloads,
            self.days,
            self.interval_s,
            self.points_per_metric,
            self.engine,
            self.fill_s
                .map_or(String::new(), |s| format!(", filled in {s:.1} s")),
        ));
        doc.line(format!(
            "machine: {} CPUs, load average {} before the runs; medians of {} runs per mode (min-max)",
            self.cpus,
            self.load_average
                .map_or("unknown".to_owned(), |l| format!("{l:.2}")),
            self.runs.len() / 2,
        ));
        doc.blank();
        let mut table = Table::numeric([
            "mode",
            "wall time",
            "engine CPU",
            "bytes received",
            "peak RSS",
        ]);
        for (i, (name, s)) in [("pushdown", &self.push), ("pull", &self.pull)]
            .into_iter()
            .enumerate()
        {
            let engine = self.engine_cpu_s.as_ref().map_or("-".to_owned(), |e| {
                format!("{:.2} s ({:.2}-{:.2})", e[i].median, e[i].min, e[i].max)
            });
            table.row([
                name.to_owned(),
                format!("{:.2} s ({:.2}-{:.2})", s[0].median, s[0].min, s[0].max),
                engine,
                format!(
                    "{:.2} MiB ({:.2}-{:.2})",
                    mib(s[1].median),
                    mib(s[1].min),
                    mib(s[1].max)
                ),
                format!(
                    "{:.1} MiB ({:.1}-{:.1})",
                    mib(s[2].median),
                    mib(s[2].min),
                    mib(s[2].max)
                ),
            ]);
        }
        doc.table(table);
        doc.blank();
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        doc.line(format!(
            "pushdown vs pull: {:.1}x fewer bytes, {:.1}x faster, {:.1}x less peak RSS (medians)",
            ratio(self.pull[1].median, self.push[1].median),
            ratio(self.pull[0].median, self.push[0].median),
            ratio(self.pull[2].median, self.push[2].median),
        ));
        if let Some(e) = &self.engine_cpu_s {
            doc.line(format!(
                "the engine worked {:.1}x less for pushdown (CPU seconds, medians)",
                ratio(e[1].median, e[0].median)
            ));
        }
        if self.savings_agree {
            doc.toned(
                "both paths give the same fleet savings (within 1%)",
                Tone::Good,
            );
        } else {
            doc.toned(
                "WARNING: the two paths disagree on the fleet's savings; see the runs in --json",
                Tone::Bad,
            );
        }
        doc.blank();
        doc.line(format!("scaling: {SCALING}"));
        doc
    }

    /// One row per measurement, raw numbers with units in the column names.
    fn csv_table(&self) -> Option<Table> {
        let mut t = Table::numeric([
            "mode",
            "wall_s",
            "bytes",
            "requests",
            "workloads",
            "peak_rss_bytes",
            "engine_cpu_s",
            "total_monthly_savings_usd",
        ]);
        for r in &self.runs {
            t.row([
                r.mode.clone(),
                r.wall_s.to_string(),
                r.bytes.to_string(),
                r.requests.to_string(),
                r.workloads.to_string(),
                r.peak_rss_bytes.to_string(),
                r.engine_cpu_s.map_or(String::new(), |c| c.to_string()),
                r.total_monthly_savings_usd.to_string(),
            ]);
        }
        Some(t)
    }
}
