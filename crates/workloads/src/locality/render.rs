//! How a [`LocalityReport`] shows itself: ns per access (patterns × working sets), misses per
//! access, huge pages, NUMA, then the chapter-3 claims ledger.

use frugal_output::units::opt_fixed;
use frugal_output::{Align, Cell, Document, Render, Table, Tone};

use super::{human_bytes, CounterSource, LocalityReport, SCHEMA_VERSION};
use crate::claims::Ledger;

/// The heading of the chapter-3 ledger.
pub const LEDGER_HEADING: &str = "claims ledger, chapter 3 (article vs this machine)";

/// A table whose first two columns are labels.
fn two_label_table<H: Into<String>>(headers: impl IntoIterator<Item = H>) -> Table {
    Table::new(
        headers
            .into_iter()
            .enumerate()
            .map(|(i, h)| (h, if i < 2 { Align::Left } else { Align::Right })),
    )
}

impl Render for LocalityReport {
    const SCHEMA: &'static str = "frugal-bench-locality";
    const VERSION: u32 = SCHEMA_VERSION;

    fn document(&self) -> Document {
        let r = self;
        let m = &r.machine;
        let mut doc = Document::new(format!(
            "frugal bench locality{}: {} ({} cores), Linux {}",
            if r.quick { " --quick" } else { "" },
            m.cpu,
            m.cores,
            m.kernel
        ));
        if let Some(c) = &r.caches {
            let level = |k: &str| {
                c.get(k)
                    .and_then(|l| l.get("size_bytes"))
                    .and_then(|v| v.as_u64())
                    .map_or("?".to_owned(), human_bytes)
            };
            doc.line(format!(
                "caches (sysfs): L1d {}, last level {}",
                level("d1"),
                r.llc_bytes().map_or("?".to_owned(), human_bytes)
            ));
        }
        let t = &r.tlb;
        let lvl = |l: super::tlb::TlbLevel| {
            if l.ways == l.entries {
                format!("{} full", l.entries)
            } else {
                format!("{} {}-way", l.entries, l.ways)
            }
        };
        doc.line(format!(
            "TLB model geometry ({}): 4 KiB L1 {} / L2 {}; 2 MiB L1 {} / L2 {}",
            t.source_label(),
            lvl(t.l1_4k),
            lvl(t.l2_4k),
            lvl(t.l1_2m),
            lvl(t.l2_2m)
        ));
        if cfg!(debug_assertions) {
            doc.toned(
                "  warning: this is a debug build, timings are not representative; build with \
                 `cargo build --release`",
                Tone::Warn,
            );
        }

        // 1. ns per access: patterns x working sets.
        let mut sizes: Vec<u64> = r.rows.iter().map(|x| x.size_bytes).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let patterns = r.patterns();
        doc.blank()
            .heading("ns per access (median ± half IQR, 4 KiB pages), wall clock:");
        let mut t1 = two_label_table(
            ["pattern".to_owned(), "access".to_owned()]
                .into_iter()
                .chain(sizes.iter().map(|&s| human_bytes(s))),
        );
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
            t1.row(line);
        }
        doc.table(t1);

        // 2. Misses per access.
        let counters = match r.counter_source {
            CounterSource::Hardware => "hardware (PMU)",
            CounterSource::Simulated => "SIMULATED by valgrind, marked *",
            CounterSource::None => "none",
        };
        doc.blank().heading(format!(
            "misses per access — cache: {counters}; TLB model: SIMULATED (cpuid geometry, data \
             addresses of the walk), L1 dTLB misses and page walks with 4 KiB and 2 MiB pages:"
        ));
        if let Some(note) = &r.counter_note {
            doc.note(note);
        }
        let mut t2 = two_label_table([
            "pattern",
            "size",
            "L1d",
            "LLC",
            "dTLB(hw)",
            "L1TLB 4K*",
            "walk 4K*",
            "walk 2M*",
        ]);
        for p in &patterns {
            for row in r.rows.iter().filter(|x| x.pattern == *p) {
                let c = row.counters.as_ref();
                let star = |v: Option<f64>| {
                    let s = opt_fixed(v, 3);
                    match (c.map(|c| c.source), v) {
                        (Some(CounterSource::Simulated), Some(_)) => {
                            Cell::new(format!("{s}*"), Tone::Dim)
                        }
                        _ => Cell::from(s),
                    }
                };
                let tl = row.tlb_sim.as_ref();
                t2.row([
                    Cell::from(row.pattern.clone()),
                    Cell::from(human_bytes(row.size_bytes)),
                    star(c.and_then(|c| c.l1d_misses)),
                    star(c.and_then(|c| c.llc_misses)),
                    Cell::from(opt_fixed(c.and_then(|c| c.dtlb_misses), 4)),
                    Cell::from(opt_fixed(tl.map(|t| t.l1_misses_per_access(false)), 4)),
                    Cell::from(opt_fixed(tl.map(|t| t.walks_per_access(false)), 4)),
                    Cell::from(opt_fixed(tl.map(|t| t.walks_per_access(true)), 5)),
                ]);
            }
        }
        doc.table(t2);

        // 3. Huge pages.
        let hp = &r.huge_pages;
        doc.blank().heading(format!(
            "transparent huge pages, measured (wall clock) over {}: THP {}, defrag {}",
            human_bytes(hp.size_bytes),
            hp.thp_enabled.as_deref().unwrap_or("unavailable"),
            hp.thp_defrag.as_deref().unwrap_or("?")
        ));
        if !hp.rows.is_empty() {
            let mut t3 = two_label_table([
                "pattern",
                "pages",
                "ns/access",
                "±%",
                "AnonHugePages",
                "setup ms",
                "4k/thp",
            ]);
            for row in &hp.rows {
                let speedup = (row.pages == "thp")
                    .then(|| {
                        hp.rows
                            .iter()
                            .find(|x| x.pattern == row.pattern && x.pages == "4k")
                            .map(|k| k.time_ns.median / row.time_ns.median)
                    })
                    .flatten();
                t3.row([
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
            doc.table(t3);
        }
        for note in &hp.notes {
            doc.note(note);
        }

        // 4. NUMA.
        let n = &r.numa;
        doc.blank().heading(format!(
            "NUMA: {} node(s); zone_reclaim_mode = {} ({})",
            n.nodes.len(),
            n.zone_reclaim_mode
                .map_or("unreadable".to_owned(), |m| m.to_string()),
            n.zone_reclaim_bits.join("; ")
        ));
        doc.line(format!("  {}", n.note));
        for row in &n.rows {
            doc.line(format!(
                "  CPUs of node {}, memory on node {}: {:.1} ns per hop ({} over {})",
                row.cpu_node,
                row.mem_node,
                row.time_ns.median,
                row.pattern,
                human_bytes(row.size_bytes)
            ));
        }
        for note in &r.notes {
            doc.toned(format!("note: {note}"), Tone::Dim);
        }
        Ledger::new(LEDGER_HEADING, &r.claims).append_to(&mut doc);
        doc
    }

    /// One row per (pattern, working set), raw: ns per access and misses per access; empty =
    /// not measured.
    fn csv_table(&self) -> Option<Table> {
        let mut t = Table::numeric([
            "pattern",
            "access_unit",
            "size_bytes",
            "ns_per_access_median",
            "ns_per_access_p25",
            "ns_per_access_p75",
            "ns_per_access_min",
            "ns_per_access_max",
            "samples",
            "counter_source",
            "l1d_misses_per_access",
            "llc_misses_per_access",
            "dtlb_misses_per_access",
            "tlb_model_l1_misses_per_access_4k",
            "tlb_model_walks_per_access_4k",
            "tlb_model_walks_per_access_2m",
        ]);
        let o = |x: Option<f64>| x.map_or(String::new(), |x| x.to_string());
        for row in &self.rows {
            let c = row.counters.as_ref();
            let tl = row.tlb_sim.as_ref();
            let time = &row.time_ns;
            t.row([
                row.pattern.clone(),
                row.access_unit.clone(),
                row.size_bytes.to_string(),
                time.median.to_string(),
                time.p25.to_string(),
                time.p75.to_string(),
                time.min.to_string(),
                time.max.to_string(),
                time.n.to_string(),
                c.map_or(String::new(), |c| {
                    match c.source {
                        CounterSource::Hardware => "hardware",
                        CounterSource::Simulated => "simulated",
                        CounterSource::None => "none",
                    }
                    .to_owned()
                }),
                o(c.and_then(|c| c.l1d_misses)),
                o(c.and_then(|c| c.llc_misses)),
                o(c.and_then(|c| c.dtlb_misses)),
                o(tl.map(|t| t.l1_misses_per_access(false))),
                o(tl.map(|t| t.walks_per_access(false))),
                o(tl.map(|t| t.walks_per_access(true))),
            ]);
        }
        Some(t)
    }
}

impl LocalityReport {
    /// The patterns of the rows, in first-seen order.
    fn patterns(&self) -> Vec<&str> {
        let mut patterns: Vec<&str> = Vec::new();
        for row in &self.rows {
            if !patterns.contains(&row.pattern.as_str()) {
                patterns.push(&row.pattern);
            }
        }
        patterns
    }
}
