//! `frugal bench io`: 4 KiB random reads at queue depth 64 through io_uring (article 2.5),
//! optionally with fio (libaio) on the same file beside it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use frugal_workloads::io::{self, IoConfig, IoMode, IoReport};

use crate::ranges;

/// Arguments of `frugal bench io`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file to read; created (1 GiB of non-zero data by default) when missing.
    #[arg(long, default_value = "frugal-io.dat", value_name = "PATH")]
    file: PathBuf,
    /// Size of the file to create and of the range read (bytes; K, M, G, T suffixes are KiB, MiB,
    /// GiB, TiB): 512 B to 16 TiB, and at least one block (--bs).
    #[arg(long, default_value = "1G", value_name = "BYTES", allow_hyphen_values = true,
          value_parser = ranges::size(512, 16 << 40, "at least one smallest block; 16 TiB is ext4's largest file"))]
    size: u64,
    /// Reads kept in flight: 1 to 4096.
    #[arg(long, default_value_t = 64, allow_hyphen_values = true,
          value_parser = ranges::count::<u32>(1, 4096, "the largest ring this benchmark sets up; the article used 64"))]
    qd: u32,
    /// Bytes per read: a power of two from 512 B to 1 MiB.
    #[arg(long, default_value_t = 4096, allow_hyphen_values = true, value_parser = block_size)]
    bs: u32,
    /// How long to read: 100ms to 1day.
    #[arg(short = 'd', long, default_value = "10s", allow_hyphen_values = true,
          value_parser = ranges::duration(ranges::MIN_RUN, ranges::MAX_RUN, ranges::RUN_WHY))]
    duration: Duration,
    /// Read with O_DIRECT, bypassing the page cache (the default).
    #[arg(long, conflicts_with = "buffered")]
    direct: bool,
    /// Read through the page cache instead (nothing is dropped from it first).
    #[arg(long)]
    buffered: bool,
    /// Seed of the random offsets.
    #[arg(long, default_value_t = 0x9E37_79B9_7F4A_7C15)]
    seed: u64,
    /// Also run fio (libaio, same file, depth and block size) and show it beside ours.
    #[arg(long)]
    compare_fio: bool,
    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE", value_parser = ranges::output_file)]
    json: Option<PathBuf>,
}

/// A power of two between 512 B and 1 MiB: O_DIRECT needs sector-aligned sizes.
fn block_size(s: &str) -> Result<u32, String> {
    let why = "a power of two (O_DIRECT reads whole, aligned sectors)";
    let v = ranges::size(512, 1 << 20, why)(s)?;
    if !v.is_power_of_two() {
        return Err(format!("{v} is not {why}, e.g. 4096 or 64K"));
    }
    Ok(v as u32) // at most 1 MiB
}

/// Runs `frugal bench io`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.size < u64::from(args.bs) {
        return Err(ranges::usage(format!(
            "--size {} is smaller than one block (--bs {}); the file must hold at least one block",
            ranges::bytes(args.size),
            ranges::bytes(args.bs.into())
        )));
    }
    let mut config = IoConfig::new(&args.file);
    config.size_bytes = args.size;
    config.queue_depth = args.qd;
    config.block_size_bytes = args.bs;
    config.duration = args.duration;
    config.direct = !args.buffered;
    config.seed = args.seed;
    let mut report = io::run(&config)
        .with_context(|| format!("random-read benchmark on {} failed", args.file.display()))?;
    if args.compare_fio {
        if io::fio_available() {
            let mut fio_config = config.clone();
            fio_config.direct = report.mode == IoMode::Direct;
            report.fio = Some(
                io::run_fio(&fio_config, report.file_size_bytes)
                    .context("fio run for --compare-fio failed")?,
            );
        } else {
            report.notes.push(
                "--compare-fio: fio is not on PATH; install it (apt-get install -y fio) and re-run"
                    .to_owned(),
            );
        }
    }
    let mut text = String::new();
    render(&report, &mut text);
    crate::output::print(&text)?;
    if let Some(path) = &args.json {
        crate::output::write_json(path, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

fn render(r: &IoReport, out: &mut String) {
    use std::fmt::Write as _;
    let mode = match r.mode {
        IoMode::Direct => "direct",
        IoMode::Buffered => "buffered",
    };
    let _ = writeln!(
        out,
        "frugal bench io: random {} B reads, QD {}, {} ({}), file {} ({} MiB{}, {})",
        r.block_size_bytes,
        r.queue_depth,
        mode,
        r.engine,
        r.path,
        r.file_size_bytes >> 20,
        if r.file_created { ", created" } else { "" },
        r.filesystem.as_deref().unwrap_or("unknown fs"),
    );
    let header = [
        "engine", "ops", "IOPS", "MiB/s", "p50 us", "p99 us", "p99.9 us", "max us", "usr+sys",
        "CPU/IO", "ctxsw",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    let l = &r.latency_ns;
    let secs = r.wall_time_ns as f64 / 1e9;
    table.push(vec![
        format!("frugal {}", r.engine),
        r.ops.to_string(),
        format!("{:.0}", r.iops),
        format!("{:.1}", r.mib_per_s),
        us(l.p50),
        us(l.p99),
        us(l.p999),
        us(l.max),
        r.cpu.map_or("-".to_owned(), |c| {
            format!(
                "{:.0}%",
                (c.process_user_ns + c.process_system_ns) as f64 / 1e9 / secs * 100.0
            )
        }),
        r.cpu.map_or("-".to_owned(), |c| {
            format!("{:.2} us", c.process_cpu_ns_per_io / 1000.0)
        }),
        r.cpu.map_or("-".to_owned(), |c| {
            (c.voluntary_context_switches + c.involuntary_context_switches).to_string()
        }),
    ]);
    if let Some(f) = &r.fio {
        let fio_ops = f.iops * secs;
        table.push(vec![
            "fio libaio".to_owned(),
            format!("~{fio_ops:.0}"),
            format!("{:.0}", f.iops),
            format!("{:.1}", f.mib_per_s),
            us(f.p50_ns),
            us(f.p99_ns),
            us(f.p999_ns),
            us(f.max_ns),
            format!("{:.0}%", f.usr_cpu_percent + f.sys_cpu_percent),
            if f.iops > 0.0 {
                format!(
                    "{:.2} us",
                    (f.usr_cpu_percent + f.sys_cpu_percent) / 100.0 / f.iops * 1e6
                )
            } else {
                "-".to_owned()
            },
            f.context_switches.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| table.iter().map(|row| row[i].len()).max().unwrap_or(0))
        .collect();
    for row in &table {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    if let Some(c) = &r.cpu {
        let _ = writeln!(
            out,
            "(usr+sys and CPU/IO: whole process, like fio's per-job figures)\nsubmitting thread: user {} ms, system {} ms, {} voluntary + {} involuntary context switches, \
             {} minor / {} major page faults",
            c.user_ns / 1_000_000,
            c.system_ns / 1_000_000,
            c.voluntary_context_switches,
            c.involuntary_context_switches,
            c.minor_page_faults,
            c.major_page_faults
        );
        let _ = writeln!(
            out,
            "whole process: user {} ms, system {} ms, {:.2} us CPU per read (io_uring workers included)",
            c.process_user_ns / 1_000_000,
            c.process_system_ns / 1_000_000,
            c.process_cpu_ns_per_io / 1000.0
        );
    }
    if let Some(f) = &r.fio {
        let _ = writeln!(out, "fio ({}): {}", f.version, f.command.join(" "));
        let _ = writeln!(
            out,
            "fio latency is its {} (\"lat\" = submission to completion, like ours); \
             its CPU is usr+sys percent of one CPU",
            f.latency_kind
        );
    }
    for note in &r.notes {
        let _ = writeln!(out, "note: {note}");
    }
}

#[cfg(test)]
mod tests {
    use super::block_size;

    #[test]
    fn block_sizes_are_powers_of_two() {
        assert_eq!(block_size("4096"), Ok(4096));
        assert_eq!(block_size("64K"), Ok(65536));
        assert!(block_size("1000").unwrap_err().contains("power of two"));
        assert!(block_size("256").is_err());
        assert!(block_size("2M").is_err());
    }
}
