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
//! (write the log to a shared volume, named by `$HOSTNAME`); start them together (the Job's pods
//! start within seconds; a later start only shifts that generator's window).

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

Throughput is summed, percentiles come from the merged histograms (never averaged), errors are
summed; corrected (constant-rate) and uncorrected latencies are merged separately.";

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
    let merged = merge(&args.files)?;
    crate::output::emit(&args.output, &merged.report())?;
    Ok(ExitCode::SUCCESS)
}
