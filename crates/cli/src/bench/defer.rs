//! `frugal bench defer`: strategies × scenarios of deferred cleanup, the Go side, the claims
//! ledger. Also home of the binary's counting global allocator (per-thread counts), which
//! the allocation columns read.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use frugal_workloads::claims::{self, Claim};
use frugal_workloads::defer_bench::{
    self, Config, CounterSource, DeferReport, Row, Scenario, SimCommand, Strategy,
};
use frugal_workloads::tasks::TasksReport;

use super::tasks;

/// Arguments of `frugal bench defer`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Quick profile for CI: fewer, shorter samples (under 20 s).
    #[arg(long)]
    quick: bool,
    /// Also write the report as JSON to FILE (`-` for stdout, then the table goes to stderr).
    #[arg(long, value_name = "FILE", value_parser = crate::ranges::output_file)]
    json: Option<PathBuf>,
    /// Add the claims ledger: the article's numbers beside ours, with verdicts (also measures
    /// task memory and a reduced locality run, some seconds more).
    #[arg(long)]
    claims: bool,
    /// Only these strategies (comma-separated: manual, guard, scopeguard, chain-inline,
    /// chain-overflow, box-vec).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    strategy: Vec<String>,
    /// Only these scenarios (comma-separated: one, straight8, loop8, loop64, touch, panic).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    scenario: Vec<String>,
    /// Skip the simulated (valgrind) counters when the machine has no PMU.
    #[arg(long)]
    no_sim: bool,
    /// Skip the Go benchmark.
    #[arg(long)]
    no_go: bool,
    /// Internal: run one operation N times (the child that valgrind simulates).
    #[arg(long, hide = true, num_args = 3, value_names = ["STRATEGY", "SCENARIO", "ITERS"])]
    run_op: Option<Vec<String>>,
}

/// Runs `frugal bench defer`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(op) = &args.run_op {
        let [strategy, scenario, iters] = op.as_slice() else {
            anyhow::bail!("--run-op takes STRATEGY SCENARIO ITERS");
        };
        let iters: u64 = iters.parse().context("ITERS must be a number")?;
        defer_bench::run_op(
            Strategy::parse(strategy)?,
            Scenario::parse(scenario)?,
            iters,
        )?;
        return Ok(ExitCode::SUCCESS);
    }

    let mut config = config(args.quick, args.no_go, args.no_sim)?;
    if !args.strategy.is_empty() {
        config.strategies = args
            .strategy
            .iter()
            .map(|s| Strategy::parse(s))
            .collect::<Result<_, _>>()?;
    }
    if !args.scenario.is_empty() {
        config.scenarios = args
            .scenario
            .iter()
            .map(|s| Scenario::parse(s))
            .collect::<Result<_, _>>()?;
    }
    let bar = progress_bar();
    let mut report = defer_bench::run(&config, &mut |p| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(p.label);
    })?;
    bar.finish_and_clear();

    let tasks = if args.claims {
        match tasks::measure(if args.quick { 20_000 } else { 100_000 }, false) {
            Ok(tasks) => Some(tasks),
            Err(err) => {
                // The defer table stands on its own; the task claims then say "not measured".
                eprintln!("frugal: warning: task memory not measured: {err:#}");
                None
            }
        }
    } else {
        None
    };
    report.claims = defer_bench::ledger::claims(&report, tasks.as_ref());
    if args.claims {
        // Chapter 3 (locality): a reduced run, one working set past the last-level cache.
        match super::locality::claims_for_ledger(args.no_sim) {
            Ok(rows) => report.claims.extend(rows),
            Err(err) => eprintln!("frugal: warning: locality claims not measured: {err:#}"),
        }
    }

    let to_stdout_json = args.json.as_deref() == Some(std::path::Path::new("-"));
    let mut text = String::new();
    render(&report, &mut text);
    if args.claims {
        render_claims(&report.claims, tasks.as_ref(), &mut text);
    }
    if to_stdout_json {
        eprint!("{text}");
    } else {
        crate::output::print(&text)?;
    }
    if let Some(path) = &args.json {
        if to_stdout_json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            crate::output::write_json(path, &report)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The benchmark's configuration: the quick or full profile, the binary's allocation counter,
/// Go unless `no_go`, and the simulated counters (this binary re-executed under valgrind) unless
/// `no_sim`. Also used by `frugal report`.
pub(crate) fn config(quick: bool, no_go: bool, no_sim: bool) -> anyhow::Result<Config> {
    let mut config = if quick {
        Config::quick()
    } else {
        Config::full()
    };
    config.alloc_probe = Some(crate::alloc_count::alloc_snapshot);
    config.go = !no_go;
    if !no_sim {
        // Go children (the simulated test binary) inherit this: callgrind aborts on the Go
        // runtime's asynchronous-preemption signals. Set while this process has one thread.
        let godebug = std::env::var("GODEBUG").unwrap_or_default();
        if !godebug.contains("asyncpreemptoff") {
            let value = if godebug.is_empty() {
                "asyncpreemptoff=1".to_owned()
            } else {
                format!("{godebug},asyncpreemptoff=1")
            };
            std::env::set_var("GODEBUG", value);
        }
        let exe = std::env::current_exe().context("cannot find the path of this executable")?;
        config.sim = Some(SimCommand {
            argv: vec![
                exe.to_string_lossy().into_owned(),
                "bench".to_owned(),
                "defer".to_owned(),
                "--run-op".to_owned(),
            ],
        });
    }
    Ok(config)
}

pub(crate) fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(1);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {msg}")
            .expect("the progress template is valid"),
    );
    bar
}

fn fmt_opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

fn render(report: &DeferReport, out: &mut String) {
    use std::fmt::Write as _;
    let m = &report.machine;
    let _ = writeln!(
        out,
        "frugal bench defer{}: {} ({} cores), Linux {}",
        if report.quick { " --quick" } else { "" },
        m.cpu,
        m.cores,
        m.kernel
    );
    let counters = match report.counter_source {
        CounterSource::Hardware => "hardware (PMU)".to_owned(),
        CounterSource::Simulated => "SIMULATED by valgrind (no PMU here)".to_owned(),
        CounterSource::None => "none".to_owned(),
    };
    let _ = writeln!(
        out,
        "per op = one call registering and running all its defers; ns: median ± half IQR; \
         counters: {counters}"
    );
    if cfg!(debug_assertions) {
        let _ = writeln!(
            out,
            "  warning: this is a debug build, timings and counts are not representative; \
             build with `cargo build --release`"
        );
    }
    if let Some(note) = &report.counter_note {
        let _ = writeln!(out, "  note: {note}");
    }
    let header = [
        "scenario", "strategy", "ns/op", "±%", "ns/defer", "instr", "branch", "br-miss",
        "L1d-miss", "allocs", "bytes",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    let mut notes: Vec<String> = Vec::new();
    let scenarios: Vec<&str> = {
        let mut v: Vec<&str> = Vec::new();
        for r in &report.rows {
            if !v.contains(&r.scenario.as_str()) {
                v.push(&r.scenario);
            }
        }
        v
    };
    for scenario in scenarios {
        for row in report.rows.iter().filter(|r| r.scenario == scenario) {
            table.push(row_cells(row, &mut notes));
        }
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (n, row) in table.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i < 2 {
                    format!("{cell:<w$}", w = widths[i])
                } else {
                    format!("{cell:>w$}", w = widths[i])
                }
            })
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
        if n == 0 {
            let _ = writeln!(
                out,
                "{}",
                "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
            );
        }
    }
    for (i, note) in notes.iter().enumerate() {
        let _ = writeln!(out, "  [{}] {note}", i + 1);
    }
    let go = &report.go;
    match go.status.as_str() {
        "ran" => {
            let _ = writeln!(
                out,
                "Go: {} ({}); {}",
                go.version.as_deref().unwrap_or("?"),
                go.message.as_deref().unwrap_or(""),
                go.simulated.as_deref().unwrap_or("")
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "Go: {}: {}",
                go.status,
                go.message.as_deref().unwrap_or("")
            );
        }
    }
}

fn row_cells(row: &Row, notes: &mut Vec<String>) -> Vec<String> {
    let time = row.time_ns.as_ref();
    let c = row.counters.as_ref();
    let mut strategy = row.strategy.clone();
    if let Some(note) = &row.note {
        let idx = match notes.iter().position(|n| n == note) {
            Some(i) => i,
            None => {
                notes.push(note.clone());
                notes.len() - 1
            }
        };
        strategy.push_str(&format!(" [{}]", idx + 1));
    }
    let sim = |v: Option<f64>| {
        let s = fmt_opt(v, 1);
        match (c.map(|c| c.source), v) {
            (Some(CounterSource::Simulated), Some(_)) => format!("{s}*"),
            _ => s,
        }
    };
    vec![
        row.scenario.clone(),
        strategy,
        fmt_opt(time.map(|t| t.median), 1),
        fmt_opt(time.map(|t| t.spread_percent()), 0),
        fmt_opt(
            time.map(|t| t.median / f64::from(row.defers_per_op.max(1))),
            2,
        ),
        sim(c.and_then(|c| c.instructions)),
        sim(c.and_then(|c| c.branches)),
        sim(c.and_then(|c| c.branch_misses)),
        sim(c.and_then(|c| c.l1d_misses)),
        fmt_opt(row.allocs_per_op, 2),
        fmt_opt(row.alloc_bytes_per_op, 0),
    ]
}

fn render_claims(claims: &[Claim], tasks: Option<&TasksReport>, out: &mut String) {
    use std::fmt::Write as _;
    if let Some(tasks) = tasks {
        let _ = writeln!(out);
        out.push_str(
            &frugal_output::Render::document(tasks).to_text(&frugal_output::Style::plain()),
        );
    }
    render_ledger("claims ledger (article vs this machine)", claims, out);
}

/// The claims ledger as text: a heading, then each claim with the article's value, ours, the
/// verdict, the subject, the rule and why (`bench defer --claims`, `bench locality`).
pub(crate) fn render_ledger(heading: &str, claims: &[Claim], out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "\n{heading}");
    for c in claims {
        let _ = writeln!(
            out,
            "- [{}] §{} {}\n    article: {}   measured: {}   => {}\n    subject: {}; rule: {}",
            c.id,
            c.section,
            c.claim,
            c.article_value,
            c.measured.as_deref().unwrap_or("-"),
            c.verdict.label().to_uppercase(),
            c.subject,
            c.rule
        );
        if !c.why.is_empty() {
            let _ = writeln!(out, "    why: {}", c.why);
        }
    }
}
