//! `frugal rightsize`: utilization data → a cheaper instance type, with risk, savings and a replay.
//!
//! Thin: read the inputs (files, Prometheus or the embedded synthetic sample), call
//! `frugal_rightsize::analyze`, optionally replay with `--verify`, render.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ::frugal_rightsize as rs;
use anyhow::{bail, Context};

use crate::ranges;

/// Which rule picks the recommendation.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PolicyArg {
    /// Percentile of 5-minute maxima + headroom, memory, SLA screen, every cheaper type.
    Default,
    /// The article's rule: mean CPU < 35% -> one vCPU step down -> SLA >= 99.5%.
    Article,
}

/// Row order.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum SortArg {
    /// As read.
    Input,
    /// Largest monthly savings first.
    Savings,
    /// Highest risk first.
    Risk,
    /// By workload name.
    Name,
}

/// Prometheus query presets.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PresetArg {
    /// process_cpu_seconds_total / process_resident_memory_bytes by job.
    Process,
    /// cAdvisor container metrics by namespace/container.
    Container,
    /// node_exporter metrics by instance.
    Node,
}

/// Arguments of `frugal rightsize`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct Args {
    /// CSV or JSON files with columns timestamp,workload,instance_type,cpu_cores,memory_bytes and
    /// optionally instances,requests_per_second,latency_p99_ms. Without files and without
    /// --prometheus, the embedded synthetic sample is analysed (as with --demo).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Everything else, boxed: the options are many, and the subcommand enum stays small.
    #[command(flatten)]
    pub options: Box<Options>,
}

/// The options of `frugal rightsize`. `--format` is the common one ([`crate::output::OutputArgs`])
/// that also takes `html` (the old spelling of `--html FILE`, hidden).
#[derive(Debug, clap::Args)]
#[command(mut_arg("format", |a| a
    .value_parser(crate::output::format_or_html)
    .help("What to print on stdout: table (the default), json, csv or markdown")))]
pub struct Options {
    /// Analyse the embedded synthetic sample (5 workloads x 14 days, labelled synthetic).
    #[arg(long, conflicts_with = "prometheus")]
    pub demo: bool,
    /// Write the synthetic sample as CSV to FILE and exit (a starting point for your own data).
    #[arg(long, value_name = "FILE", value_parser = ranges::output_file)]
    pub write_sample: Option<PathBuf>,
    /// Read from a Prometheus server, e.g. http://127.0.0.1:9090.
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// Prometheus query preset.
    #[arg(
        long,
        value_enum,
        default_value = "process",
        allow_hyphen_values = true
    )]
    pub preset: PresetArg,
    /// Override the CPU query (cores per instance).
    #[arg(long, value_name = "PROMQL")]
    pub query_cpu: Option<String>,
    /// Override the memory query (bytes per instance).
    #[arg(long, value_name = "PROMQL")]
    pub query_memory: Option<String>,
    /// Override the instance-count query.
    #[arg(long, value_name = "PROMQL")]
    pub query_instances: Option<String>,
    /// Request rate per instance (enables the SLA screen together with --query-latency).
    #[arg(long, value_name = "PROMQL")]
    pub query_rps: Option<String>,
    /// p99 latency in milliseconds.
    #[arg(long, value_name = "PROMQL")]
    pub query_latency: Option<String>,
    /// Label(s) naming a workload (repeat; overrides the preset's).
    #[arg(long, value_name = "LABEL")]
    pub workload_label: Vec<String>,
    /// Instance type of series without an instance-type label.
    #[arg(long, value_name = "TYPE")]
    pub instance_type: Option<String>,
    /// Label carrying the instance type.
    #[arg(long, value_name = "LABEL", default_value = "instance_type")]
    pub instance_type_label: String,
    /// How far back to read from Prometheus (ending now, or at --end): 1m to 3650d.
    #[arg(long, value_name = "DURATION", default_value = "14d", allow_hyphen_values = true,
          value_parser = ranges::duration(Duration::from_secs(60), Duration::from_secs(3650 * 86_400), "at least one minute of data; ten years is beyond any retention"))]
    pub since: Duration,
    /// Range start (RFC 3339 or Unix seconds, 1970 to 9999); overrides --since.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true, value_parser = time_arg)]
    pub start: Option<String>,
    /// Range end (RFC 3339 or Unix seconds, 1970 to 9999); default now.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true, value_parser = time_arg)]
    pub end: Option<String>,
    /// Prometheus query resolution: 1s to 1h.
    #[arg(long, value_name = "DURATION", default_value = "60s", allow_hyphen_values = true,
          value_parser = ranges::duration(Duration::from_secs(1), Duration::from_secs(3600), "Prometheus steps are whole seconds; a coarser step hides the 5-minute peaks the model sizes for"))]
    pub step: Duration,
    /// Pull every sample and compute locally, instead of letting the engine compute the
    /// statistics with PromQL subqueries (the default with --prometheus).
    #[arg(long, requires = "prometheus")]
    pub no_pushdown: bool,
    /// Pushdown: the most subquery steps per query; longer ranges are split (the engine's limits:
    /// Prometheus --query.max-samples, VictoriaMetrics -search.maxPointsSubqueryPerTimeseries).
    /// 20 to 100,000,000.
    #[arg(long, value_name = "N", default_value_t = rs::pushdown::DEFAULT_MAX_SUBQUERY_STEPS,
          allow_hyphen_values = true,
          value_parser = ranges::count::<i64>(20, 100_000_000, "steps of one subquery: below 20 a range splits into a flood of tiny queries; no engine allows 100,000,000"))]
    pub pushdown_max_steps: i64,
    /// Refuse a Prometheus answer larger than this (MiB): 1 to 65,536.
    #[arg(long, value_name = "MIB", default_value_t = 128, allow_hyphen_values = true,
          value_parser = ranges::count::<u64>(1, 65_536, "MiB of one answer held in memory while it is parsed; 64 GiB is beyond any machine this runs on"))]
    pub max_response_mib: u64,
    /// Give up on one Prometheus request after this long: 1ms to 1h.
    #[arg(long, value_name = "DURATION", default_value = "30s", allow_hyphen_values = true,
          value_parser = ranges::duration(ranges::MIN_TIMEOUT, ranges::MAX_TIMEOUT, ranges::TIMEOUT_WHY))]
    pub prometheus_timeout: Duration,
    /// Catalog override file (JSON; see below). Extends the embedded AWS catalog unless it says
    /// "replace": true.
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Performance factor of a family's vCPU relative to a reference vCPU, e.g. m7g=1.15 (repeat;
    /// X above 0, at most 10).
    #[arg(long, value_name = "FAMILY=X", allow_hyphen_values = true, value_parser = perf_factor_arg)]
    pub perf_factor: Vec<(String, f64)>,
    /// Which rule picks the recommendation; both are always evaluated and compared.
    #[arg(
        long,
        value_enum,
        default_value = "default",
        allow_hyphen_values = true
    )]
    pub policy: PolicyArg,
    /// Percentile of the 5-minute CPU maxima to size for: above 0, at most 100.
    #[arg(long, value_name = "P", default_value_t = 99.5, allow_hyphen_values = true,
          value_parser = ranges::real(0.0, false, 100.0, "a percentile: 99.5, not 0.995"))]
    pub percentile: f64,
    /// CPU headroom over that percentile (0.2 = 20%): 0 to 10.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.20, allow_hyphen_values = true,
          value_parser = ranges::real(0.0, true, 10.0, "a fraction: 0.2 means 20%"))]
    pub headroom: f64,
    /// Memory headroom over the peak (0.15 = 15%): 0 to 10.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.15, allow_hyphen_values = true,
          value_parser = ranges::real(0.0, true, 10.0, "a fraction: 0.15 means 15%"))]
    pub memory_headroom: f64,
    /// Fraction of requests that must meet the latency target: above 0, below 1.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.995, allow_hyphen_values = true,
          value_parser = ranges::real(0.0, false, 0.999_999, "a fraction: 0.995 means 99.5%; 1 would allow no slow request at all"))]
    pub sla: f64,
    /// Latency target in ms, above 0 and at most one hour (default: twice each workload's median
    /// observed p99).
    #[arg(long, value_name = "MS", allow_hyphen_values = true,
          value_parser = ranges::real(0.0, false, 3_600_000.0, "milliseconds"))]
    pub latency_target_ms: Option<f64>,
    /// Minimum hours of data per workload: 0 to 87,600 (ten years).
    #[arg(long, value_name = "HOURS", default_value_t = 30.0, allow_hyphen_values = true,
          value_parser = ranges::real(0.0, true, 87_600.0, "hours between the first and the last sample"))]
    pub min_hours: f64,
    /// Minimum 5-minute windows of data per workload: 1 to 1,051,200 (ten years).
    #[arg(long, value_name = "N", default_value_t = 100, allow_hyphen_values = true,
          value_parser = ranges::count::<usize>(1, 1_051_200, "5-minute windows in ten years"))]
    pub min_windows: usize,
    /// Also consider types of another CPU architecture (x86_64 <-> arm64; needs a rebuild).
    #[arg(long)]
    pub allow_arch_change: bool,
    /// Replay each recommendation: `frugal serve` confined to the current and the recommended CPU
    /// counts (scaled to this machine), under `frugal load` at a constant rate.
    #[arg(long)]
    pub verify: bool,
    /// Only verify these workloads (repeat).
    #[arg(long, value_name = "NAME", requires = "verify")]
    pub verify_workload: Vec<String>,
    /// Measured duration of each replay run: 100ms to 1day.
    #[arg(long, value_name = "DURATION", default_value = "10s", allow_hyphen_values = true,
          value_parser = ranges::duration(ranges::MIN_RUN, ranges::MAX_RUN, ranges::RUN_WHY))]
    pub verify_duration: Duration,
    /// Warm-up before each replay run (not measured): 0s to 1h.
    #[arg(long, value_name = "DURATION", default_value = "2s", allow_hyphen_values = true,
          value_parser = ranges::duration(Duration::ZERO, ranges::MAX_WARMUP, ranges::WARMUP_WHY))]
    pub verify_warmup: Duration,
    /// Only workloads whose name matches GLOB (`*` any text, `?` one character; repeat for
    /// several). The summary and totals then count these only.
    #[arg(long, value_name = "GLOB")]
    pub workload: Vec<String>,
    /// Row order.
    #[arg(long, value_enum, default_value = "input", allow_hyphen_values = true)]
    pub sort: SortArg,
    /// Show the first N rows only (after --sort), 1 to 1,000,000; the summary and totals count
    /// every workload.
    #[arg(long, value_name = "N", allow_hyphen_values = true,
          value_parser = ranges::count::<usize>(1, 1_000_000, "rows of the table; leave --top out to show every row"))]
    pub top: Option<usize>,
    /// What to print on stdout.
    #[command(flatten)]
    pub out: crate::output::OutputArgs,
    /// Also write the report as a self-contained HTML page (CPU and memory plots per workload)
    /// to FILE.
    #[arg(long, value_name = "FILE", value_parser = ranges::output_file, help_heading = "Output")]
    pub html: Option<PathBuf>,
    /// Old spelling (hidden, for one release): write the `--format` output to FILE instead of
    /// standard output.
    #[arg(short, long = "output", id = "output_file", hide = true, value_name = "FILE",
          value_parser = ranges::output_file)]
    pub output_file: Option<PathBuf>,
    /// Treat warnings as errors: a workload skipped (impossible usage, unknown type, instance type
    /// changing), rows sorted or duplicates merged, a file given twice: exit 1 instead of
    /// analysing what is left.
    #[arg(long)]
    pub strict: bool,
}

const AFTER_HELP: &str = "\
Input files (FILE...): CSV with a header line, or JSON (an array of objects, or
{\"samples\": [...]}); one row per observation of one workload:
  timestamp            required  Unix seconds (1714521600; fractions allowed) or RFC 3339
                                 (2024-05-01T00:00:00Z, Z or an offset); milliseconds since 1970
                                 are refused as out of range: divide them by 1000
  workload             required  name of the service or job
  instance_type        required  the catalog type it runs on now, e.g. m7i.xlarge
  cpu_cores            required  busy vCPUs of ONE instance (0.5 = half a vCPU): not percent,
                                 not summed over instances; at most the type's vCPUs (+5%)
  memory_bytes         required  bytes in use on ONE instance; at most the type's memory (+5%)
  instances            optional  instances running the workload (savings are multiplied by it)
  requests_per_second  optional  request rate of ONE instance (with latency: the SLA screen)
  latency_p99_ms       optional  observed 99th-percentile latency, ms
Numbers are finite and >= 0. Rows may come in any order and from several files: each
workload's rows are sorted by timestamp; an identical repeated row is merged, the same timestamp
with other values is an error naming both rows. Usage above the type's capacity skips the
workload. Repairs and skips are warnings on stderr; exit status 1 when no workload is left, and
with --strict on any warning.
  CSV:   timestamp,workload,instance_type,cpu_cores,memory_bytes,instances
         1714521600,api,m7i.xlarge,0.8,3221225472,6
         2024-05-01T00:05:00Z,api,m7i.xlarge,1.1,3303014400,6
  JSON:  [{\"timestamp\": 1714521600, \"workload\": \"api\", \"instance_type\": \"m7i.xlarge\",
           \"cpu_cores\": 0.8, \"memory_bytes\": 3221225472, \"requests_per_second\": 120.5,
           \"latency_p99_ms\": 31.2}]
  JSON:  {\"samples\": [ ...the same objects... ]}
  (JSON numbers may be strings; null or a missing key leaves an optional column empty)

Catalog file (--catalog), JSON:
  {\"replace\": false, \"source\": \"...\", \"price_date\": \"2025-01-01\",
   \"families\": {\"m7g\": {\"arch\": \"arm64\", \"perf_factor\": 1.15}},
   \"instances\": [{\"name\": \"m7g.large\", \"vcpus\": 2, \"memory_gib\": 8, \"usd_per_hour\": 0.0816}]}

Prometheus: the engine computes each workload's statistics with PromQL subqueries (Prometheus,
VictoriaMetrics, Thanos, Mimir); --no-pushdown pulls every sample and computes here instead. A query
must return one series per workload (aggregate `by (job)`); workloads that cannot be analysed are
listed with the reason, and the exit status is 1 when none could be.

Prometheus presets (override any query with --query-*):
  process:   avg by (job) (rate(process_cpu_seconds_total[2m])), max by (job) (process_resident_memory_bytes)
  container: cAdvisor container_cpu_usage_seconds_total / container_memory_working_set_bytes by namespace, container
  node:      node_exporter node_cpu_seconds_total (non-idle) / MemTotal - MemAvailable by instance

Examples:
  frugal rightsize                       # the embedded synthetic sample
  frugal rightsize usage.csv --html report.html --json report.json
  frugal rightsize --prometheus http://127.0.0.1:9090 --instance-type m7i.xlarge --since 14d
  frugal rightsize --prometheus http://127.0.0.1:8428 --query-cpu 'max by (job) (rate(cpu_seconds_total[2m]))' --sort savings --top 20
  frugal rightsize --demo --policy article
  frugal rightsize --demo --verify --verify-workload checkout-api";

/// Runs `frugal rightsize`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let files = args.files;
    let args = *args.options;
    if let Some(path) = &args.write_sample {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        rs::demo::write_sample_csv(&mut out)
            .and_then(|()| out.flush())
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote the synthetic sample to {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }

    let mut catalog = rs::Catalog::embedded();
    if let Some(path) = &args.catalog {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read catalog {}", path.display()))?;
        catalog.apply_override(&path.display().to_string(), &text)?;
    }
    for (family, value) in &args.perf_factor {
        catalog
            .set_perf_factor(family, *value)
            .map_err(|e| ranges::usage(format!("--perf-factor {family}={value}: {e}")))?;
    }

    let config = rs::Config {
        policy: match args.policy {
            PolicyArg::Default => rs::Policy::Default,
            PolicyArg::Article => rs::Policy::Article,
        },
        cpu_percentile: args.percentile,
        cpu_headroom: args.headroom,
        memory_headroom: args.memory_headroom,
        min_hours: args.min_hours,
        min_windows: args.min_windows,
        sla_fraction: args.sla,
        latency_target_ms: args.latency_target_ms,
        allow_arch_change: args.allow_arch_change,
        ..rs::Config::default()
    };
    config
        .validate()
        .map_err(|e| ranges::usage(e.to_string()))?;

    if !files.is_empty() && (args.demo || args.prometheus.is_some()) {
        return Err(ranges::usage(
            "give either FILEs, --prometheus or --demo, not several",
        ));
    }
    let mut warnings = Vec::new();
    let mut set = rs::SeriesSet::new();
    let mut inputs = Vec::new();
    let mut synthetic = false;
    if let Some(url) = &args.prometheus {
        let opts = prometheus_options(&args, url)?;
        let mut queries = match args.preset {
            PresetArg::Process => rs::prometheus::Preset::Process,
            PresetArg::Container => rs::prometheus::Preset::Container,
            PresetArg::Node => rs::prometheus::Preset::Node,
        }
        .queries();
        override_queries(&args, &mut queries);
        inputs.push(format!(
            "{url} ({}s to {}s, step {}s{})",
            opts.start_s,
            opts.end_s,
            opts.step_s,
            if opts.pushdown {
                ", statistics computed by the engine"
            } else {
                ", every sample pulled"
            }
        ));
        if opts.pushdown {
            let want_trace = args.out.format == crate::output::Format::Html || args.html.is_some();
            let spinner = crate::output::spinner(
                format!("querying {url} (statistics computed by the engine)"),
                args.out.quiet,
            );
            let fetched = rs::pushdown::fetch(&opts, &queries, config.cpu_percentile, want_trace);
            spinner.finish_and_clear();
            let (stats, fetched) = fetched?;
            let mut report = rs::pushdown::analyze(&stats, &catalog, &config);
            fetched.annotate(&mut report);
            return finish(&args, report, inputs, false, warnings);
        }
        let spinner =
            crate::output::spinner(format!("querying {url} (every sample)"), args.out.quiet);
        let fetched = rs::prometheus::fetch(&opts, &queries, &mut set);
        spinner.finish_and_clear();
        let fetched = fetched?;
        let mut report = rs::analyze(&set.into_series(), &catalog, &config);
        fetched.annotate(&mut report);
        return finish(&args, report, inputs, false, warnings);
    } else if files.is_empty() || args.demo {
        set = rs::demo::sample();
        synthetic = true;
        inputs.push(rs::demo::SOURCE.to_owned());
        if !args.demo && !args.out.quiet {
            eprintln!("frugal rightsize: no FILE and no --prometheus: analysing the embedded SYNTHETIC sample (--demo)");
        }
    } else {
        warnings = rs::read_files(&files, &mut set)?;
        inputs.extend(files.iter().map(|p| p.display().to_string()));
    }

    let report = rs::analyze(&set.into_series(), &catalog, &config);
    finish(&args, report, inputs, synthetic, warnings)
}

/// Verifies, renders and writes the report; exit 1 when no workload could be analysed.
fn finish(
    args: &Options,
    mut report: rs::Report,
    inputs: Vec<String>,
    synthetic: bool,
    mut warnings: Vec<String>,
) -> anyhow::Result<ExitCode> {
    report.inputs = inputs;
    report.synthetic = synthetic;
    for rec in &report.recommendations {
        if rec.finding == rs::Finding::Skipped {
            let why = rec.reason.as_deref().unwrap_or("no reason given");
            warnings.push(format!("{}: skipped: {why}", rec.workload));
        }
        for note in &rec.notes {
            if let Some(w) = note.strip_prefix("warning: ") {
                warnings.push(format!("{}: {w}", rec.workload));
            }
        }
    }
    for w in &warnings {
        eprintln!("frugal rightsize: warning: {w}");
    }
    if args.strict && !warnings.is_empty() {
        bail!(
            "{} warning(s) above and --strict: fix the data (or drop --strict to analyse what is left)",
            warnings.len()
        );
    }
    if !args.workload.is_empty() {
        report.retain(|r| args.workload.iter().any(|g| glob_match(g, &r.workload)));
        if report.recommendations.is_empty() {
            bail!(
                "no workload matches --workload {}; the names are in the report without it",
                args.workload.join(" --workload ")
            );
        }
    }
    report.arrange(
        match args.sort {
            SortArg::Input => rs::Order::Input,
            SortArg::Savings => rs::Order::Savings,
            SortArg::Risk => rs::Order::Risk,
            SortArg::Name => rs::Order::Name,
        },
        args.top,
    );

    if args.verify {
        verify_all(args, &mut report)?;
    }

    write_report(args, &report)?;
    if !args.out.quiet {
        eprintln!("frugal rightsize: {}", report.summary.line());
    }
    if report.summary.analysed == 0 {
        bail!(
            "no workload could be analysed: all {} were skipped (see the warnings above; the \
             reasons are also in the report's notes or `reason` fields)",
            report.recommendations.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the report: the files asked for (`--json`, `--csv`, `--markdown`, `--html`), then the
/// `--format` output to stdout, or to the `-o` FILE.
fn write_report(args: &Options, report: &rs::Report) -> anyhow::Result<()> {
    crate::output::emit_to(
        &args.out,
        report,
        args.html.as_deref(),
        args.output_file.as_deref(),
    )
    .context("writing the report")
}

/// `--start` / `--end`: a time the inputs accept (checked here, converted later).
fn time_arg(s: &str) -> Result<String, String> {
    rs::parse_time(s).map(|_| s.to_owned())
}

/// `--perf-factor FAMILY=X`: X above 0 and at most 10.
fn perf_factor_arg(s: &str) -> Result<(String, f64), String> {
    let (family, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected FAMILY=X, e.g. m7g=1.15, not `{s}`"))?;
    if family.trim().is_empty() {
        return Err(format!("`{s}` names no family; write e.g. m7g=1.15"));
    }
    let value = ranges::real(
        0.0,
        false,
        10.0,
        "a vCPU's speed relative to the reference: 1.15 means 15% faster",
    )(value)?;
    Ok((family.trim().to_owned(), value))
}

fn prometheus_options(args: &Options, url: &str) -> anyhow::Result<rs::prometheus::PromOptions> {
    let time = |s: &str, what: &str| -> anyhow::Result<i64> {
        rs::parse_time(s)
            .map(|ms| ms / 1000)
            .map_err(|e| anyhow::anyhow!("--{what}: {e}"))
    };
    let end_s = match &args.end {
        Some(e) => time(e, "end")?,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("the system clock is before 1970")?
            .as_secs() as i64,
    };
    let start_s = match &args.start {
        Some(s) => time(s, "start")?,
        None => end_s - args.since.as_secs() as i64,
    };
    if start_s >= end_s {
        return Err(ranges::usage(
            "the Prometheus range is empty: --start must be before --end",
        ));
    }
    let step_s = args.step.as_secs() as i64;
    if step_s < 1 {
        bail!("--step must be at least 1s");
    }
    Ok(rs::prometheus::PromOptions {
        url: url.to_owned(),
        start_s,
        end_s,
        step_s,
        timeout: args.prometheus_timeout,
        instance_type: args.instance_type.clone(),
        instance_type_label: args.instance_type_label.clone(),
        max_response_bytes: args.max_response_mib << 20,
        pushdown: !args.no_pushdown,
        max_subquery_steps: args.pushdown_max_steps,
    })
}

fn override_queries(args: &Options, q: &mut rs::prometheus::Queries) {
    if let Some(v) = &args.query_cpu {
        q.cpu = v.clone();
    }
    if let Some(v) = &args.query_memory {
        q.memory = v.clone();
    }
    if let Some(v) = &args.query_instances {
        q.instances = Some(v.clone());
    }
    if let Some(v) = &args.query_rps {
        q.rps = Some(v.clone());
    }
    if let Some(v) = &args.query_latency {
        q.latency = Some(v.clone());
    }
    if !args.workload_label.is_empty() {
        q.workload_labels = args.workload_label.clone();
    }
}

fn verify_all(args: &Options, report: &mut rs::Report) -> anyhow::Result<()> {
    let program = std::env::current_exe().context("cannot find the frugal executable")?;
    let scratch = std::env::temp_dir().join(format!("frugal-verify-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let opts = rs::VerifyOptions {
        program,
        duration: args.verify_duration,
        warmup: args.verify_warmup,
        calibrate: args.verify_duration.min(Duration::from_secs(4)),
        connections: 32,
        sla_fraction: args.sla,
        latency_target_ms: args.latency_target_ms,
        scratch: scratch.clone(),
    };
    let chosen = |rec: &rs::Recommendation| {
        rec.recommended.is_some()
            && (args.verify_workload.is_empty() || args.verify_workload.contains(&rec.workload))
    };
    let quiet = args.out.quiet;
    let bar = crate::output::bar(
        report.recommendations.iter().filter(|r| chosen(r)).count() as u64,
        quiet,
    );
    let result = (|| -> anyhow::Result<()> {
        for rec in &mut report.recommendations {
            if !chosen(rec) {
                continue;
            }
            bar.set_message(format!("verifying {}", rec.workload));
            if !quiet {
                bar.suspend(|| eprintln!("frugal rightsize: verifying {} ...", rec.workload));
            }
            let v = rs::verify(rec, &opts)?;
            if !quiet {
                bar.suspend(|| eprintln!("  {}", v.summary()));
            }
            rec.verification = Some(v);
            bar.inc(1);
        }
        Ok(())
    })();
    bar.finish_and_clear();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// `*` matches any text, `?` one character, everything else itself.
fn glob_match(glob: &str, name: &str) -> bool {
    let (g, n): (Vec<char>, Vec<char>) = (glob.chars().collect(), name.chars().collect());
    // Iterative matching with backtracking to the last `*`.
    let (mut gi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == n[ni]) {
            gi += 1;
            ni += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some((gi, ni));
            gi += 1;
        } else if let Some((sg, sn)) = star {
            gi = sg + 1;
            ni = sn + 1;
            star = Some((sg, sn + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("checkout-*", "checkout-api"));
        assert!(glob_match("*api", "checkout-api"));
        assert!(glob_match("*-?pi", "checkout-api"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(!glob_match("checkout", "checkout-api"));
        assert!(!glob_match("?", ""));
    }
}
