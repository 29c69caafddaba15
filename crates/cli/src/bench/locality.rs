//! `frugal bench locality`: access patterns × working sets, cache and TLB misses (PMU or
//! simulated), transparent huge pages in wall clock, NUMA facts, the chapter-3 claims.

use std::process::ExitCode;

use frugal_workloads::claims::Claim;
use frugal_workloads::locality::{self, Config, Pattern, SimCommand};

/// Arguments of `frugal bench locality`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Quick profile: four working sets, simulated counters at one size (under 60 s).
    #[arg(long)]
    quick: bool,
    /// Working sets (comma-separated bytes; K, M, G suffixes are KiB, MiB, GiB), e.g.
    /// 16K,256K,4M,64M,1G; each 4 KiB to 64 TiB, and within the memory available (checked
    /// before starting). Default: from this machine's cache sizes (sysfs).
    #[arg(long, value_delimiter = ',', value_name = "LIST", allow_hyphen_values = true,
          value_parser = crate::ranges::size(MIN_SET, MAX_SET, SET_WHY))]
    sizes: Vec<u64>,
    /// Only these patterns (comma-separated: seq, stride-64, stride-4k, random, chase-ordered,
    /// chase-shuffled, aos, soa, hot-aligned, hot-straddle).
    #[arg(long, value_delimiter = ',', value_name = "LIST", allow_hyphen_values = true,
          value_parser = crate::ranges::one_of("pattern", Pattern::ALL.map(Pattern::key), Pattern::parse))]
    patterns: Vec<Pattern>,
    /// Working set of the 4 KiB vs transparent-huge-page comparison: 4 KiB to 64 TiB, and
    /// within the memory available.
    #[arg(long, default_value = "1G", value_name = "BYTES", allow_hyphen_values = true,
          value_parser = crate::ranges::size(MIN_SET, MAX_SET, SET_WHY))]
    thp_size: u64,
    /// Skip the huge-page comparison.
    #[arg(long)]
    no_huge_pages: bool,
    /// Skip the simulated (valgrind) cache counters when the machine has no PMU.
    #[arg(long)]
    no_sim: bool,
    /// Internal: lay out and walk one pattern (the child that valgrind simulates).
    #[arg(long, hide = true, num_args = 3, value_names = ["PATTERN", "SIZE", "ACCESSES"])]
    sim_child: Option<Vec<String>>,
    #[command(flatten)]
    output: crate::output::OutputArgs,
}

/// The smallest working set: one page.
const MIN_SET: u64 = 4 << 10;
/// The largest working set asked for at all (the memory available is checked before starting).
const MAX_SET: u64 = 64 << 40;
/// Why `MIN_SET..=MAX_SET`.
const SET_WHY: &str = "a working set holds at least one 4 KiB page; the memory available is \
                       checked before starting";

/// A usage error: one line on stderr, exit status 2.
fn usage(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("frugal: error: {message}");
    Ok(ExitCode::from(2))
}

/// Runs `frugal bench locality`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(child) = &args.sim_child {
        let [pattern, size, accesses] = child.as_slice() else {
            anyhow::bail!("--sim-child takes PATTERN SIZE ACCESSES");
        };
        let size: u64 = size.parse()?;
        let accesses: u64 = accesses.parse()?;
        let run = locality::sim_child(pattern, size, accesses)?;
        // What a trace of this child needs to line up with ours (tests/cli/bench_locality.rs).
        println!(
            "checksum={} region_start={:#x} region_len={} warmup_accesses={}",
            run.checksum, run.region_start, run.region_len, run.warmup_accesses
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut config = if args.quick {
        Config::quick()
    } else {
        Config::full()
    };
    // Refuse bad input before anything is allocated: usage errors exit 2 with one line.
    // Sizes and pattern names are checked at parse time; the memory available here.
    if !args.sizes.is_empty() {
        config.sizes = args.sizes.clone();
    }
    if !args.patterns.is_empty() {
        config.patterns = args.patterns.clone();
    }
    let thp_size = args.thp_size;
    // A region smaller than one transparent huge page can never get one: a usage error, not a
    // run that reports "no huge pages" and blames fragmentation.
    let huge_page = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(2 << 20);
    if !args.no_huge_pages && thp_size < 2 * huge_page {
        return usage(format!(
            "--thp-size: {} is too small: a transparent huge page is {} here \
             (/sys/kernel/mm/transparent_hugepage/hpage_pmd_size) and the comparison needs many; \
             give at least {} (the default 1G is what the article's claim is about)",
            locality::human_bytes(thp_size),
            locality::human_bytes(huge_page),
            locality::human_bytes(2 * huge_page)
        ));
    }
    config.huge_pages_bytes = (!args.no_huge_pages).then_some(thp_size);
    if !args.no_sim {
        config.sim = Some(sim_command()?);
    }
    if let Err(e) = config.validate() {
        return usage(format!("--sizes: {e}"));
    }
    // The default 1 GiB is skipped with a note when memory is short; a size asked for is checked.
    if args.thp_size != 1 << 30 && !args.no_huge_pages {
        if let Err(e) = locality::check_size(thp_size, locality::mem_available_bytes()) {
            return usage(format!("--thp-size: {e}"));
        }
    }

    let output = &args.output;
    let bar = crate::output::bar(1, output.quiet);
    let result = locality::run(&config, &mut |p| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(p.label);
    });
    bar.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(e) if e.is_usage() => return usage(e),
        Err(e) => return Err(anyhow::Error::new(e).context("locality benchmark failed")),
    };
    crate::output::emit(output, &report)?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn sim_command() -> anyhow::Result<SimCommand> {
    use anyhow::Context;
    let exe = std::env::current_exe().context("cannot find the path of this executable")?;
    Ok(SimCommand {
        argv: vec![
            exe.to_string_lossy().into_owned(),
            "bench".to_owned(),
            "locality".to_owned(),
            "--sim-child".to_owned(),
        ],
    })
}

/// The chapter-3 claims for `frugal bench defer --claims`: a reduced locality run (one working
/// set past the last-level cache, the five patterns the claims use, no huge pages).
pub(crate) fn claims_for_ledger(no_sim: bool, quiet: bool) -> anyhow::Result<Vec<Claim>> {
    let mut config = Config::claims_only();
    if !no_sim {
        config.sim = Some(sim_command()?);
    }
    let bar = crate::output::bar(1, quiet);
    let report = locality::run(&config, &mut |p| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(format!("locality claims: {}", p.label));
    });
    bar.finish_and_clear();
    Ok(report?.claims)
}

#[cfg(test)]
mod tests {
    use super::{MAX_SET, MIN_SET, SET_WHY};

    #[test]
    fn sizes() {
        let p = crate::ranges::size(MIN_SET, MAX_SET, SET_WHY);
        assert_eq!(p("16K"), Ok(16 << 10));
        assert_eq!(p("1G"), Ok(1 << 30));
        assert_eq!(p("4096"), Ok(4096));
        assert_eq!(p("1T"), Ok(1 << 40));
        for bad in [
            "0",
            "0K",
            "NaN",
            "-1",
            "1.5M",
            "",
            "K",
            "99999999999999999999G",
            "2048",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert!(p("99999999999G").unwrap_err().contains("too large"));
    }
}
