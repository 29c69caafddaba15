//! `frugal bench tasks`: resident and virtual memory per concurrent task (tokio tasks, OS
//! threads, goroutines), each kind measured in a fresh child process.

use std::process::ExitCode;

use anyhow::Context;
use frugal_workloads::tasks::{self, TaskKind, TasksConfig, TasksReport};

/// Arguments of `frugal bench tasks`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Tasks per kind: 1 to 10,000,000 (memory is checked before starting; threads stop at the
    /// machine's pid and map-count limits and say so). Below 10,000 nothing is scaled to 100k.
    #[arg(short = 'n', long, default_value_t = 100_000, allow_hyphen_values = true,
          value_parser = crate::ranges::count::<u64>(1, tasks::MAX_TASKS, "ten million tokio tasks already take gigabytes"))]
    n: u64,
    /// Only these kinds (comma-separated: tokio-sleep, tokio-channel, thread,
    /// thread-pthread-default, thread-small, goroutine).
    #[arg(long, value_delimiter = ',', value_name = "LIST", allow_hyphen_values = true,
          value_parser = crate::ranges::one_of("task kind", TaskKind::ALL.map(TaskKind::key),
                                               |s| TaskKind::parse(s).ok()))]
    kind: Vec<TaskKind>,
    #[command(flatten)]
    output: crate::output::OutputArgs,
    /// Internal: be the child that starts N tasks of KIND and prints one JSON line.
    #[arg(long, hide = true, num_args = 2, value_names = ["KIND", "N"])]
    child: Option<Vec<String>>,
}

/// Runs `frugal bench tasks`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(child) = &args.child {
        let [kind, n] = child.as_slice() else {
            anyhow::bail!("--child takes KIND N");
        };
        let n: u64 = n.parse().context("N must be a number")?;
        let report = tasks::run_child(TaskKind::parse(kind)?, n)?;
        println!("{}", serde_json::to_string(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    // Names checked at parse time (unknown ones are usage errors, exit 2).
    let kinds = if args.kind.is_empty() {
        TaskKind::ALL.to_vec()
    } else {
        args.kind
    };
    let report = measure_kinds(args.n, kinds, args.output.quiet)?;
    crate::output::emit(&args.output, &report)?;
    Ok(ExitCode::SUCCESS)
}

/// Measures every kind with `n` tasks (used by `bench defer --claims` too).
pub(crate) fn measure(n: u64, quiet: bool) -> anyhow::Result<TasksReport> {
    measure_kinds(n, TaskKind::ALL.to_vec(), quiet)
}

fn measure_kinds(n: u64, kinds: Vec<TaskKind>, quiet: bool) -> anyhow::Result<TasksReport> {
    let exe = std::env::current_exe().context("cannot find the path of this executable")?;
    let config = TasksConfig {
        n,
        kinds,
        child_argv: vec![
            exe.to_string_lossy().into_owned(),
            "bench".to_owned(),
            "tasks".to_owned(),
            "--child".to_owned(),
        ],
    };
    let bar = crate::output::bar(1, quiet);
    let report = tasks::run(&config, &mut |done, total, label| {
        bar.set_length(total);
        bar.set_position(done);
        bar.set_message(format!("{n} x {label}"));
    })?;
    bar.finish_and_clear();
    Ok(report)
}
