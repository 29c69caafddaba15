//! `frugal bench defer`: strategies × scenarios of deferred cleanup, the Go side, the claims
//! ledger. Also home of the binary's counting global allocator (per-thread counts), which
//! the allocation columns read.

use std::process::ExitCode;

use anyhow::Context;
use frugal_workloads::defer_bench::{self, Config, Scenario, SimCommand, Strategy, WithLedger};

use super::tasks;

/// Arguments of `frugal bench defer`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Quick profile for CI: fewer, shorter samples (under 20 s).
    #[arg(long)]
    quick: bool,
    /// Add the claims ledger: the article's numbers beside ours, with verdicts (also measures
    /// task memory and a reduced locality run, some seconds more).
    #[arg(long)]
    claims: bool,
    /// Only these strategies (comma-separated: manual, guard, scopeguard, chain-inline,
    /// chain-overflow, box-vec).
    #[arg(long, value_delimiter = ',', value_name = "LIST", allow_hyphen_values = true,
          value_parser = crate::ranges::one_of("strategy", Strategy::ALL.map(Strategy::key),
                                               |s| Strategy::parse(s).ok()))]
    strategy: Vec<Strategy>,
    /// Only these scenarios (comma-separated: one, straight8, loop8, loop64, touch, panic).
    #[arg(long, value_delimiter = ',', value_name = "LIST", allow_hyphen_values = true,
          value_parser = crate::ranges::one_of("scenario", Scenario::ALL.map(Scenario::key),
                                               |s| Scenario::parse(s).ok()))]
    scenario: Vec<Scenario>,
    /// Skip the simulated (valgrind) counters when the machine has no PMU.
    #[arg(long)]
    no_sim: bool,
    /// Skip the Go benchmark.
    #[arg(long)]
    no_go: bool,
    #[command(flatten)]
    output: crate::output::OutputArgs,
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
    // Names checked at parse time (unknown ones are usage errors, exit 2).
    if !args.strategy.is_empty() {
        config.strategies = args.strategy;
    }
    if !args.scenario.is_empty() {
        config.scenarios = args.scenario;
    }
    let output = &args.output;
    let bar = crate::output::bar(1, output.quiet);
    let mut report = defer_bench::run(&config, &mut |p| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(p.label);
    })?;
    bar.finish_and_clear();

    let tasks = if args.claims {
        match tasks::measure(if args.quick { 20_000 } else { 100_000 }, output.quiet) {
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
        match super::locality::claims_for_ledger(args.no_sim, output.quiet) {
            Ok(rows) => report.claims.extend(rows),
            Err(err) => eprintln!("frugal: warning: locality claims not measured: {err:#}"),
        }
    }

    if args.claims {
        let shown = WithLedger {
            report: &report,
            tasks: tasks.as_ref(),
        };
        crate::output::emit(output, &shown)?;
    } else {
        crate::output::emit(output, &report)?;
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
