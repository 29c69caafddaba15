//! `frugal load merge`: the HdrHistogram logs of several `frugal load --hdr-log` runs, combined
//! into one report: throughput summed, percentiles from the merged histograms (never averaged),
//! errors summed, corrected and uncorrected.
//!
//! Running N generators is an orchestrator's job, not ours. Plain ssh:
//!
//! ```text
//! for h in gen1 gen2 gen3; do
//!   ssh "$h" frugal load http://svc:8080/ -c 300 -d 60s --rate 3000 --hdr-log /tmp/load.hlog &
//! done; wait
//! for h in gen1 gen2 gen3; do scp "$h":/tmp/load.hlog "$h".hlog; done
//! frugal load merge gen1.hlog gen2.hlog gen3.hlog
//! ```
//!
//! A Kubernetes Job with `parallelism: N` and `completions: N` runs the same command in N pods
//! (write the log to a shared volume, named by `$HOSTNAME`).
//!
//! Merging is for generators that ran *at the same time* against one service. Each log's
//! `StartTime` is the wall-clock start of its measured window, so the merge places every log in
//! time: the same file twice is refused (usage error), logs that share less than half of the
//! shortest one's span are refused with each file's span, and logs that share part of their
//! spans (the ssh loop above starts the generators a fraction of a second to a few seconds
//! apart; pods start within seconds) are trimmed to the window in which every generator was
//! measuring, with a note saying what was left out. The start skew costs a little of the window,
//! never the correctness of the sum; the hosts' clocks must agree (NTP keeps them within
//! milliseconds).

use std::path::PathBuf;
use std::process::ExitCode;

use frugal_http::hdrlog::merge;

const AFTER_HELP: &str = "\
Running N generators is an orchestrator's job. With ssh:
  for h in gen1 gen2 gen3; do
    ssh \"$h\" frugal load http://svc:8080/ -c 300 -d 60s --rate 3000 --hdr-log /tmp/load.hlog &
  done; wait
  for h in gen1 gen2 gen3; do scp \"$h\":/tmp/load.hlog \"$h\".hlog; done
  frugal load merge gen1.hlog gen2.hlog gen3.hlog

With Kubernetes: a Job with parallelism: N and completions: N running
  frugal load http://svc:8080/ -c 300 -d 60s --rate 3000 --hdr-log /logs/$(HOSTNAME).hlog
on a shared volume, then frugal load merge /logs/*.hlog.

The logs must come from generators that ran at the same time against one service: each log
records the wall-clock start of its measured window. The same file given twice is refused;
logs that share less than half of the shortest one's span are refused, naming each file's
span. The ssh loop starts the generators a little apart (pods too): the merge keeps only the
window in which every generator was measuring (an interval counts when at least half of it is
inside) and says what it left out, so a start skew of a few seconds costs a few seconds of a
60 s run, not a wrong sum. The hosts' clocks must agree (NTP: milliseconds).

Throughput is summed, percentiles come from the merged histograms (never averaged), errors are
summed; corrected (constant-rate) and uncorrected latencies are merged separately.

Exit status: 1 when no request succeeded in the merged window (the report says the latency was
not measured: null in JSON, empty in CSV), 2 for usage errors.";

/// Arguments of `frugal load merge`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct Args {
    /// HdrHistogram interval logs written by `frugal load --hdr-log` (or other tools: untagged
    /// histograms are read as uncorrected latencies in nanoseconds).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    output: crate::output::OutputArgs,
}

/// Runs `frugal load merge`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let merged = merge(&args.files).map_err(|e| match e {
        // Giving one generator's log twice is a mistake in the arguments: exit status 2.
        frugal_http::Error::HdrLogDuplicate { .. } => crate::ranges::usage(e.to_string()),
        e => e.into(),
    })?;
    let report = merged.report();
    crate::output::emit(&args.output, &report)?;
    // A merge that measured nothing says so and fails, as `frugal load` does.
    if let Some(why) = report.failure() {
        eprintln!("frugal load merge: {why}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
