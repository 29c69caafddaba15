//! `frugal bench locality`: access patterns × working sets, cache and TLB misses (PMU or
//! simulated), transparent huge pages in wall clock, NUMA facts, the chapter-3 claims.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use frugal_workloads::claims::Claim;
use frugal_workloads::locality::{
    self, human_bytes, Config, CounterSource, LocalityReport, Pattern, SimCommand,
};

/// Arguments of `frugal bench locality`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Quick profile: four working sets, simulated counters at one size (under 60 s).
    #[arg(long)]
    quick: bool,
    /// Also write the report as JSON to FILE (`-` for stdout, then the table goes to stderr).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Working sets (comma-separated bytes; K, M, G suffixes are KiB, MiB, GiB), e.g.
    /// 16K,256K,4M,64M,1G. Default: from this machine's cache sizes (sysfs).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    sizes: Vec<String>,
    /// Only these patterns (comma-separated: seq, stride-64, stride-4k, random, chase-ordered,
    /// chase-shuffled, aos, soa, hot-aligned, hot-straddle).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    patterns: Vec<String>,
    /// Working set of the 4 KiB vs transparent-huge-page comparison.
    #[arg(long, default_value = "1G", value_name = "BYTES")]
    thp_size: String,
    /// Skip the huge-page comparison.
    #[arg(long)]
    no_huge_pages: bool,
    /// Skip the simulated (valgrind) cache counters when the machine has no PMU.
    #[arg(long)]
    no_sim: bool,
    /// Internal: lay out and walk one pattern (the child that valgrind simulates).
    #[arg(long, hide = true, num_args = 3, value_names = ["PATTERN", "SIZE", "ACCESSES"])]
    sim_child: Option<Vec<String>>,
}

/// `16K`, `4M`, `1G`, `4096`: bytes. Refuses 0, fractions, negative and non-numbers.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, shift) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 10),
        Some((i, 'm' | 'M')) => (&t[..i], 20),
        Some((i, 'g' | 'G')) => (&t[..i], 30),
        _ => (t, 0),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size; use whole numbers like 4096, 16K, 64M, 1G"))?;
    let bytes = n
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    if bytes == 0 {
        return Err(format!("{s:?}: a working set must be at least 4K"));
    }
    Ok(bytes)
}

fn parse_pattern(s: &str) -> Result<Pattern, String> {
    locality::parse_pattern(s.trim()).map_err(|e| e.to_string())
}

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
        // What a trace of this child needs to line up with ours (tests/bench_locality.rs).
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
    if !args.sizes.is_empty() {
        match args.sizes.iter().map(|s| parse_size(s)).collect() {
            Ok(sizes) => config.sizes = sizes,
            Err(e) => return usage(format!("--sizes: {e}")),
        }
    }
    if !args.patterns.is_empty() {
        match args.patterns.iter().map(|s| parse_pattern(s)).collect() {
            Ok(patterns) => config.patterns = patterns,
            Err(e) => return usage(format!("--patterns: {e}")),
        }
    }
    let thp_size = match parse_size(&args.thp_size) {
        Ok(b) => b,
        Err(e) => return usage(format!("--thp-size: {e}")),
    };
    config.huge_pages_bytes = (!args.no_huge_pages).then_some(thp_size);
    if !args.no_sim {
        config.sim = Some(sim_command()?);
    }
    if let Err(e) = config.validate() {
        return usage(format!("--sizes: {e}"));
    }
    // The default 1 GiB is skipped with a note when memory is short; a size asked for is checked.
    if args.thp_size != "1G" && !args.no_huge_pages {
        if let Err(e) = locality::check_size(thp_size, locality::mem_available_bytes()) {
            return usage(format!("--thp-size: {e}"));
        }
    }

    let bar = super::defer::progress_bar();
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

    let to_stdout_json = args.json.as_deref() == Some(std::path::Path::new("-"));
    let mut text = String::new();
    render(&report, &mut text);
    if to_stdout_json {
        eprint!("{text}");
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        crate::output::print(&text)?;
        if let Some(path) = &args.json {
            crate::output::write_json(path, &report)?;
        }
    }
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
pub(crate) fn claims_for_ledger(no_sim: bool) -> anyhow::Result<Vec<Claim>> {
    let mut config = Config::claims_only();
    if !no_sim {
        config.sim = Some(sim_command()?);
    }
    Ok(locality::run(&config, &mut |_| {})?.claims)
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

fn table(rows: &[Vec<String>], left: usize, out: &mut String) {
    let Some(header) = rows.first() else { return };
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (n, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i < left {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
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
}

fn render(r: &LocalityReport, out: &mut String) {
    let m = &r.machine;
    let _ = writeln!(
        out,
        "frugal bench locality{}: {} ({} cores), Linux {}",
        if r.quick { " --quick" } else { "" },
        m.cpu,
        m.cores,
        m.kernel
    );
    if let Some(c) = &r.caches {
        let level = |k: &str| {
            c.get(k)
                .and_then(|l| l.get("size_bytes"))
                .and_then(|v| v.as_u64())
                .map_or("?".to_owned(), human_bytes)
        };
        let _ = writeln!(
            out,
            "caches (sysfs): L1d {}, last level {}",
            level("d1"),
            r.llc_bytes().map_or("?".to_owned(), human_bytes)
        );
    }
    let t = &r.tlb;
    let lvl = |l: locality::tlb::TlbLevel| {
        if l.ways == l.entries {
            format!("{} full", l.entries)
        } else {
            format!("{} {}-way", l.entries, l.ways)
        }
    };
    let _ = writeln!(
        out,
        "TLB model geometry ({}): 4 KiB L1 {} / L2 {}; 2 MiB L1 {} / L2 {}",
        t.source_label(),
        lvl(t.l1_4k),
        lvl(t.l2_4k),
        lvl(t.l1_2m),
        lvl(t.l2_2m)
    );
    if cfg!(debug_assertions) {
        let _ = writeln!(
            out,
            "  warning: this is a debug build, timings are not representative; build with \
             `cargo build --release`"
        );
    }

    // 1. ns per access: patterns x working sets.
    let mut sizes: Vec<u64> = r.rows.iter().map(|x| x.size_bytes).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut patterns: Vec<&str> = Vec::new();
    for row in &r.rows {
        if !patterns.contains(&row.pattern.as_str()) {
            patterns.push(&row.pattern);
        }
    }
    let _ = writeln!(
        out,
        "\nns per access (median ± half IQR, 4 KiB pages), wall clock:"
    );
    let mut t1 = vec![std::iter::once("pattern".to_owned())
        .chain(std::iter::once("access".to_owned()))
        .chain(sizes.iter().map(|&s| human_bytes(s)))
        .collect::<Vec<_>>()];
    for p in &patterns {
        let mut line = vec![p.to_string()];
        line.push(
            r.rows
                .iter()
                .find(|x| x.pattern == *p)
                .map_or(String::new(), |x| x.access_unit.clone()),
        );
        for &s in &sizes {
            line.push(
                r.rows
                    .iter()
                    .find(|x| x.pattern == *p && x.size_bytes == s)
                    .map_or("-".to_owned(), |x| {
                        format!(
                            "{:.2} ±{:.0}%",
                            x.time_ns.median,
                            x.time_ns.spread_percent()
                        )
                    }),
            );
        }
        t1.push(line);
    }
    table(&t1, 2, out);

    // 2. Misses per access.
    let counters = match r.counter_source {
        CounterSource::Hardware => "hardware (PMU)",
        CounterSource::Simulated => "SIMULATED by valgrind, marked *",
        CounterSource::None => "none",
    };
    let _ = writeln!(
        out,
        "\nmisses per access — cache: {counters}; TLB model: SIMULATED (cpuid geometry, data \
         addresses of the walk), L1 dTLB misses and page walks with 4 KiB and 2 MiB pages:"
    );
    if let Some(note) = &r.counter_note {
        let _ = writeln!(out, "  note: {note}");
    }
    let mut t2 = vec![[
        "pattern",
        "size",
        "L1d",
        "LLC",
        "dTLB(hw)",
        "L1TLB 4K*",
        "walk 4K*",
        "walk 2M*",
    ]
    .map(String::from)
    .to_vec()];
    for p in &patterns {
        for row in r.rows.iter().filter(|x| x.pattern == *p) {
            let c = row.counters.as_ref();
            let star = |v: Option<f64>| {
                let s = opt(v, 3);
                match (c.map(|c| c.source), v) {
                    (Some(CounterSource::Simulated), Some(_)) => format!("{s}*"),
                    _ => s,
                }
            };
            let tl = row.tlb_sim.as_ref();
            t2.push(vec![
                row.pattern.clone(),
                human_bytes(row.size_bytes),
                star(c.and_then(|c| c.l1d_misses)),
                star(c.and_then(|c| c.llc_misses)),
                opt(c.and_then(|c| c.dtlb_misses), 4),
                opt(tl.map(|t| t.l1_misses_per_access(false)), 4),
                opt(tl.map(|t| t.walks_per_access(false)), 4),
                opt(tl.map(|t| t.walks_per_access(true)), 5),
            ]);
        }
    }
    table(&t2, 2, out);

    // 3. Huge pages.
    let hp = &r.huge_pages;
    let _ = writeln!(
        out,
        "\ntransparent huge pages, measured (wall clock) over {}: THP {}, defrag {}",
        human_bytes(hp.size_bytes),
        hp.thp_enabled.as_deref().unwrap_or("unavailable"),
        hp.thp_defrag.as_deref().unwrap_or("?")
    );
    if !hp.rows.is_empty() {
        let mut t3 = vec![[
            "pattern",
            "pages",
            "ns/access",
            "±%",
            "AnonHugePages",
            "setup ms",
            "4k/thp",
        ]
        .map(String::from)
        .to_vec()];
        for row in &hp.rows {
            let speedup = (row.pages == "thp")
                .then(|| {
                    hp.rows
                        .iter()
                        .find(|x| x.pattern == row.pattern && x.pages == "4k")
                        .map(|k| k.time_ns.median / row.time_ns.median)
                })
                .flatten();
            t3.push(vec![
                row.pattern.clone(),
                row.pages.clone(),
                format!("{:.2}", row.time_ns.median),
                format!("{:.0}", row.time_ns.spread_percent()),
                row.anon_huge_bytes.map_or("?".to_owned(), |b| {
                    format!(
                        "{} ({:.0}%)",
                        human_bytes(b),
                        row.huge_fraction.unwrap_or(0.0) * 100.0
                    )
                }),
                format!("{:.0}", row.setup_ms),
                speedup.map_or(String::new(), |s| format!("{s:.2}x")),
            ]);
        }
        table(&t3, 2, out);
    }
    for note in &hp.notes {
        let _ = writeln!(out, "  note: {note}");
    }

    // 4. NUMA.
    let n = &r.numa;
    let _ = writeln!(
        out,
        "\nNUMA: {} node(s); zone_reclaim_mode = {} ({})",
        n.nodes.len(),
        n.zone_reclaim_mode
            .map_or("unreadable".to_owned(), |m| m.to_string()),
        n.zone_reclaim_bits.join("; ")
    );
    let _ = writeln!(out, "  {}", n.note);
    for row in &n.rows {
        let _ = writeln!(
            out,
            "  CPUs of node {}, memory on node {}: {:.1} ns per hop ({} over {})",
            row.cpu_node,
            row.mem_node,
            row.time_ns.median,
            row.pattern,
            human_bytes(row.size_bytes)
        );
    }

    for note in &r.notes {
        let _ = writeln!(out, "note: {note}");
    }

    super::defer::render_ledger(
        "claims ledger, chapter 3 (article vs this machine)",
        &r.claims,
        out,
    );
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16K"), Ok(16 << 10));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in [
            "0",
            "0K",
            "NaN",
            "-1",
            "1.5M",
            "",
            "K",
            "99999999999999999999G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
