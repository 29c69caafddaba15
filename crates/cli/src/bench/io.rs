//! `frugal bench io`: 4 KiB random reads at queue depth 64 through io_uring (article 2.5),
//! optionally with fio (libaio) on the same file beside it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use frugal_workloads::io::{self, IoConfig, IoMode};

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
    /// Seed of the random offsets: any whole number from 0 to 18,446,744,073,709,551,615.
    #[arg(long, default_value_t = 0x9E37_79B9_7F4A_7C15, allow_hyphen_values = true,
          value_parser = ranges::count::<u64>(0, u64::MAX, "a 64-bit seed"))]
    seed: u64,
    /// Also run fio (libaio, same file, depth and block size) and show it beside ours.
    #[arg(long)]
    compare_fio: bool,
    #[command(flatten)]
    output: crate::output::OutputArgs,
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
    let progress = crate::output::timed(
        args.duration,
        format!("random reads, QD {}", args.qd),
        args.output.quiet,
    );
    let report = io::run(&config);
    progress.finish();
    let mut report = report
        .with_context(|| format!("random-read benchmark on {} failed", args.file.display()))?;
    if args.compare_fio {
        if io::fio_available() {
            let mut fio_config = config.clone();
            fio_config.direct = report.mode == IoMode::Direct;
            let progress =
                crate::output::timed(args.duration, "fio (libaio), same file", args.output.quiet);
            let fio = io::run_fio(&fio_config, report.file_size_bytes);
            progress.finish();
            report.fio = Some(fio.context("fio run for --compare-fio failed")?);
        } else {
            report.notes.push(
                "--compare-fio: fio is not on PATH; install it (apt-get install -y fio) and re-run"
                    .to_owned(),
            );
        }
    }
    crate::output::emit(&args.output, &report)?;
    Ok(ExitCode::SUCCESS)
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
