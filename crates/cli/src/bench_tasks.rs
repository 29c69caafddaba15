//! `frugal bench tasks`: resident and virtual memory per concurrent task (tokio tasks, OS
//! threads, goroutines), each kind measured in a fresh child process.

use std::path::PathBuf;
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
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    kind: Vec<String>,
    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE", value_parser = crate::ranges::output_file)]
    json: Option<PathBuf>,
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
    let kinds = if args.kind.is_empty() {
        TaskKind::ALL.to_vec()
    } else {
        args.kind
            .iter()
            .map(|k| TaskKind::parse(k))
            .collect::<Result<_, _>>()
            .map_err(|e| crate::ranges::usage(e.to_string()))?
    };
    let report = measure_kinds(args.n, kinds)?;
    let mut text = String::new();
    render(&report, &mut text);
    crate::output::print(&text)?;
    if let Some(path) = &args.json {
        crate::output::write_json(path, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Measures every kind with `n` tasks (used by `bench defer --claims` too).
pub(crate) fn measure(n: u64) -> anyhow::Result<TasksReport> {
    measure_kinds(n, TaskKind::ALL.to_vec())
}

fn measure_kinds(n: u64, kinds: Vec<TaskKind>) -> anyhow::Result<TasksReport> {
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
    let bar = super::bench_defer::progress_bar();
    let report = tasks::run(&config, &mut |done, total, label| {
        bar.set_length(total);
        bar.set_position(done);
        bar.set_message(format!("{n} x {label}"));
    })?;
    bar.finish_and_clear();
    Ok(report)
}

fn kib(bytes: f64) -> String {
    // `+ 0.0` turns -0.0 (a tiny negative delta rounded) into 0.0.
    format!("{:.1}", (bytes / 1024.0 * 10.0).round() / 10.0 + 0.0)
}

fn human(bytes: f64) -> String {
    let gb = 1024.0 * 1024.0 * 1024.0;
    if bytes.abs() >= gb {
        format!("{:.1} GiB", bytes / gb)
    } else {
        format!("{:.0} MiB", bytes / 1024.0 / 1024.0)
    }
}

/// Renders the tasks table.
pub(crate) fn render(report: &TasksReport, out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "frugal bench tasks -n {}: memory per task (KiB), each kind in a fresh process",
        report.requested
    );
    let _ = writeln!(
        out,
        "resident = RSS delta; kernel = KernelStack + PageTables deltas (machine-wide); \
         virtual = VmSize delta (stack reservations)"
    );
    let header = [
        "kind",
        "started",
        "stack",
        "rss",
        "pss",
        "kstack",
        "ptables",
        "virtual",
        "res@100k",
        "virt@100k",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in &report.rows {
        table.push(vec![
            r.kind.clone(),
            r.started.to_string(),
            r.stack_reservation_bytes
                .map_or("-".to_owned(), |b| format!("{} KiB", b / 1024)),
            kib(r.rss_per_task_bytes),
            kib(r.pss_per_task_bytes),
            r.kernel_stack_per_task_bytes.map_or("-".to_owned(), kib),
            r.page_tables_per_task_bytes.map_or("-".to_owned(), kib),
            kib(r.vm_per_task_bytes),
            r.rss_at_100k_bytes.map_or("-".to_owned(), human),
            r.vm_at_100k_bytes.map_or("-".to_owned(), human),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| table.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for (n, row) in table.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        let _ = writeln!(out, "{}", line.join("  "));
        if n == 0 {
            let _ = writeln!(
                out,
                "{}",
                "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
            );
        }
    }
    for r in &report.rows {
        if let Some(stop) = &r.stopped_by {
            let _ = writeln!(
                out,
                "  {}: stopped at {} of {}: {stop}",
                r.kind, r.started, r.requested
            );
        }
    }
    let mut notes: Vec<&str> = Vec::new();
    for note in report.rows.iter().filter_map(|r| r.note.as_deref()) {
        for part in note.split("; ") {
            if !notes.contains(&part) {
                notes.push(part);
            }
        }
    }
    for note in notes {
        let _ = writeln!(out, "  note: {note}");
    }
    match report.go.status.as_str() {
        "ran" | "skipped" => {}
        status => {
            let _ = writeln!(
                out,
                "  goroutines: {status}: {}",
                report.go.message.as_deref().unwrap_or("")
            );
        }
    }
}
