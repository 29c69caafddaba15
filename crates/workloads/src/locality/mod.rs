//! `frugal bench locality`: what memory layout costs on this machine (article chapter 3).
//!
//! Ten access [`Pattern`]s — sequential, 64 B and 4 KiB strides, random indices, a linked list
//! in allocation order and shuffled, AoS vs SoA field sums, a 64-byte hot struct aligned vs
//! straddling two lines — walk working sets from L1-resident to well past the last-level cache.
//! Per access the engine reports:
//!
//! - wall-clock ns (median and spread over repeated samples), always measured;
//! - L1d and LLC misses: from the PMU where present, else simulated by valgrind (callgrind, the
//!   cache geometry from sysfs, run in a re-executed child, see [`SimCommand`]), marked so;
//! - dTLB misses: from the PMU where present; always also from a trace-driven TLB model
//!   ([`tlb`]) with this CPU's TLB geometry (`cpuid`), for 4 KiB and 2 MiB pages — simulated.
//!   The trace is the data addresses the walk's own code reads, recorded in-process by the same
//!   generic kernel that is timed ([`trace_offsets`]); a test lines it up, load for load, with
//!   valgrind lackey's `--trace-mem=yes` trace of the simulated child;
//! - transparent huge pages, for real: random and pointer-chase walks over ≥ 1 GiB with 4 KiB
//!   pages vs `madvise(MADV_HUGEPAGE)`, in wall clock, with the `AnonHugePages` obtained;
//! - NUMA: node count, `zone_reclaim_mode`, local vs remote where there are two nodes, and a
//!   source-level check of the article's `zone_reclaim()` snippet ([`numa`]).
//!
//! The claims ledger rows for chapter 3 are computed from the report by
//! [`ledger::claims`].
//!
//! ```no_run
//! use frugal_workloads::locality::{self, Config};
//!
//! let report = locality::run(&Config::quick(), &mut |_progress| {}).unwrap();
//! for row in &report.rows {
//!     println!("{} {} B: {:.1} ns", row.pattern, row.size_bytes, row.time_ns.median);
//! }
//! ```
//!
//! # JSON schema
//! [`LocalityReport`] serializes (serde, `null` for absent values) as:
//!
//! ```text
//! {
//!   "schema_version": 1, "quick": bool,
//!   "machine": { "cpu": str, "cores": u32, "kernel": str },
//!   "caches": CacheGeometry | null,          // frugal_counters::sim::CacheGeometry (sysfs)
//!   "tlb": { "source": "cpuid-amd" | "cpuid-intel" | "default",
//!            "l1_4k" | "l2_4k" | "l1_2m" | "l2_2m": { "entries": u32, "ways": u32 } },
//!   "counter_source": "hardware" | "simulated" | "none", "counter_note": str | null,
//!   "rows": [ {
//!       "pattern": str, "access_unit": str, "size_bytes": u64,
//!       "time_ns": Timing,                    // ns per access, see sim::Timing
//!       "counters": { "source": "hardware" | "simulated", "accesses": u64,
//!                     "l1d_misses": f64 | null, "llc_misses": f64 | null,
//!                     "dtlb_misses": f64 | null } | null,     // per access
//!       "tlb_sim": { "simulated": true, "accesses": u64,   // pattern accesses traced
//!                    "page_4k": TlbCounts, "page_2m": TlbCounts } | null
//!   } ],            // TlbCounts: { accesses (words read = TLB lookups), l1_misses, walks }
//!   "huge_pages": { "status": "measured" | "skipped", "thp_enabled": str | null,
//!                   "thp_defrag": str | null, "size_bytes": u64,
//!                   "rows": [ { "pattern": str, "pages": "4k" | "thp", "time_ns": Timing,
//!                               "anon_huge_bytes": u64 | null, "huge_fraction": f64 | null,
//!                               "setup_ms": f64 } ],
//!                   "notes": [str] },
//!   "numa": NumaSection,                      // see numa::NumaSection
//!   "claims": [ Claim ],                      // see crate::claims
//!   "notes": [str]
//! }
//! ```

pub mod ledger;
pub mod numa;
mod patterns;
mod render;
#[allow(unsafe_code)]
mod sys;
pub mod tlb;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use frugal_counters::sim::CacheGeometry;
use frugal_counters::{Event, Measurement};
use serde::{Deserialize, Serialize};

use crate::claims::Claim;
use crate::sim::parallel_map;
pub use crate::sim::{CounterSource, Machine, Progress, SimCommand, Timing};
use crate::Error;
use patterns::{Cursor, Layout};
pub use patterns::{NoTrace, Pattern, Sink};
pub use render::LEDGER_HEADING;
use sys::{PagePolicy, Region};
use tlb::{TlbCounts, TlbGeometry, TlbSim, SHIFT_2M, SHIFT_4K};

/// Schema version of [`LocalityReport`].
pub const SCHEMA_VERSION: u32 = 1;

/// Smallest working set accepted: one 4 KiB page.
pub const MIN_SIZE_BYTES: u64 = 4096;

/// Largest working set simulated by valgrind (larger ones take minutes to set up under it).
pub const SIM_MAX_BYTES: u64 = 256 << 20;

/// Seed of every random layout and walk, so runs are comparable.
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The quick profile.
    pub quick: bool,
    /// Working sets in bytes.
    pub sizes: Vec<u64>,
    /// Patterns walked.
    pub patterns: Vec<Pattern>,
    /// Timed samples per row.
    pub samples: u32,
    /// Target wall time of one sample.
    pub sample_time: Duration,
    /// Re-exec command for simulated counters when there is no PMU; `None` skips simulation.
    pub sim: Option<SimCommand>,
    /// Simulate every size up to [`SIM_MAX_BYTES`] (`false`: only the largest such size).
    pub sim_all_sizes: bool,
    /// Pattern accesses per simulated run.
    pub sim_accesses: u64,
    /// Accesses traced into the TLB model per row (after a warm-up pass).
    pub tlb_accesses: u64,
    /// Working set of the huge-page comparison; `None` skips it.
    pub huge_pages_bytes: Option<u64>,
    /// Working set of the NUMA local/remote walk (only with two nodes or more).
    pub numa_bytes: u64,
}

impl Config {
    /// The quick profile (≤ 60 s on a 2-core machine): four sizes, simulated counters at the
    /// largest simulated size only, a 1 GiB huge-page comparison.
    pub fn quick() -> Config {
        Config {
            quick: true,
            sizes: default_sizes(false),
            patterns: Pattern::ALL.to_vec(),
            // Many short samples: on a shared machine a 1 ms sample is more often left alone by
            // the scheduler, and the median then ignores the preempted ones.
            samples: 15,
            sample_time: Duration::from_millis(1),
            sim: None,
            sim_all_sizes: false,
            sim_accesses: 100_000,
            tlb_accesses: 200_000,
            huge_pages_bytes: Some(1 << 30),
            numa_bytes: 256 << 20,
        }
    }

    /// The full profile (≤ 5 min): five sizes up to 1 GiB, simulated counters at every size up
    /// to [`SIM_MAX_BYTES`].
    pub fn full() -> Config {
        Config {
            quick: false,
            sizes: default_sizes(true),
            samples: 31,
            sample_time: Duration::from_millis(2),
            sim_all_sizes: true,
            sim_accesses: 200_000,
            tlb_accesses: 1_000_000,
            ..Config::quick()
        }
    }

    /// What `frugal bench defer --claims` needs for the chapter-3 ledger rows: the five
    /// patterns the claims use at one working set past the last-level cache, no huge pages.
    pub fn claims_only() -> Config {
        let sizes = default_sizes(false);
        Config {
            sizes: sizes.last().copied().into_iter().collect(),
            patterns: vec![
                Pattern::Seq,
                Pattern::ChaseShuffled,
                Pattern::Soa,
                Pattern::HotAligned,
                Pattern::HotStraddle,
            ],
            huge_pages_bytes: None,
            ..Config::quick()
        }
    }

    /// Checks every working-set size before anything is allocated. The huge-page size is
    /// checked when that part runs: it is skipped, with a note, when memory is short.
    pub fn validate(&self) -> Result<(), Error> {
        let available = mem_available_bytes();
        if self.sizes.is_empty() {
            return Err(Error::BadSize {
                size_bytes: 0,
                why: "no working set sizes given",
            });
        }
        for &size in &self.sizes {
            check_size(size, available)?;
        }
        Ok(())
    }
}

/// Refuses a working set of 0, below one page, or larger than `available` bytes (with room for
/// the shuffled list's temporary permutation, 1/16 of the set).
pub fn check_size(size_bytes: u64, available: Option<u64>) -> Result<(), Error> {
    if size_bytes == 0 {
        return Err(Error::BadSize {
            size_bytes,
            why: "a working set must hold at least one page (4 KiB)",
        });
    }
    if size_bytes < MIN_SIZE_BYTES {
        return Err(Error::BadSize {
            size_bytes,
            why: "below one 4 KiB page; use at least 4K",
        });
    }
    if size_bytes > (usize::MAX >> 1) as u64 {
        return Err(Error::BadSize {
            size_bytes,
            why: "larger than this machine can address",
        });
    }
    if let Some(available) = available {
        let need = size_bytes.saturating_add(size_bytes / 16);
        if need > available {
            return Err(Error::TooLarge {
                size_bytes,
                available_bytes: available,
            });
        }
    }
    Ok(())
}

/// `MemAvailable` from /proc/meminfo, in bytes.
pub fn mem_available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// Working sets from this machine's caches (sysfs): half of L1d, half of L2 (or 256 KiB), half
/// of the last level, eight times the last level; with `large`, also 1 GiB. Without sysfs:
/// 16 KiB, 256 KiB, 4 MiB, 64 MiB (, 1 GiB).
pub fn default_sizes(large: bool) -> Vec<u64> {
    let dir = Path::new(frugal_counters::sim::SYSFS_CACHE_DIR);
    let mut sizes = match (CacheGeometry::from_dir(dir), l2_size(dir)) {
        (Ok(g), l2) => {
            let ll = g.ll_reported.unwrap_or(g.ll).size_bytes;
            vec![
                g.d1.size_bytes / 2,
                l2.map_or(256 << 10, |b| b / 2),
                ll / 2,
                ll * 8,
            ]
        }
        (Err(_), _) => vec![16 << 10, 256 << 10, 4 << 20, 64 << 20],
    };
    if large {
        sizes.push(1 << 30);
    }
    for s in &mut sizes {
        *s = (*s).max(MIN_SIZE_BYTES).next_multiple_of(4096);
    }
    sizes.dedup();
    sizes
}

fn l2_size(dir: &Path) -> Option<u64> {
    for i in 0..8 {
        let d = dir.join(format!("index{i}"));
        let level = std::fs::read_to_string(d.join("level")).ok()?;
        if level.trim() == "2" {
            let s = std::fs::read_to_string(d.join("size")).ok()?;
            let s = s.trim();
            return match s.strip_suffix('K') {
                Some(k) => k.parse::<u64>().ok().map(|k| k << 10),
                None => s.strip_suffix('M')?.parse::<u64>().ok().map(|m| m << 20),
            };
        }
    }
    None
}

/// Misses per access of one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessCounters {
    /// Hardware or simulated.
    pub source: CounterSource,
    /// Pattern accesses the counts are divided by.
    pub accesses: u64,
    /// L1 data-cache misses per access (simulated: reads + writes).
    pub l1d_misses: Option<f64>,
    /// Last-level cache misses per access (simulated: data reads + writes).
    pub llc_misses: Option<f64>,
    /// dTLB load misses per access (hardware only; see the row's `tlb_sim` otherwise).
    pub dtlb_misses: Option<f64>,
}

/// The trace-driven TLB model's counts for one row (always simulated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlbSimRow {
    /// Always true: a model fed with the pattern's data addresses, not a measurement.
    pub simulated: bool,
    /// Pattern accesses traced (after a warm-up pass); a struct or record access reads several
    /// words, each one a TLB lookup counted in `page_4k.accesses`.
    pub accesses: u64,
    /// With 4 KiB pages.
    pub page_4k: TlbCounts,
    /// With 2 MiB pages.
    pub page_2m: TlbCounts,
}

impl TlbSimRow {
    /// L1 dTLB misses per pattern access, 4 KiB (`huge = false`) or 2 MiB pages.
    pub fn l1_misses_per_access(&self, huge: bool) -> f64 {
        let c = if huge { &self.page_2m } else { &self.page_4k };
        c.l1_misses as f64 / self.accesses.max(1) as f64
    }

    /// Page walks (misses of both TLB levels) per pattern access.
    pub fn walks_per_access(&self, huge: bool) -> f64 {
        let c = if huge { &self.page_2m } else { &self.page_4k };
        c.walks as f64 / self.accesses.max(1) as f64
    }
}

/// One (pattern, working set) row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The pattern's key.
    pub pattern: String,
    /// What one access is (`word`, `hop`, ...).
    pub access_unit: String,
    /// Working set in bytes (4 KiB pages: `MADV_NOHUGEPAGE`).
    pub size_bytes: u64,
    /// Wall-clock ns per access.
    pub time_ns: Timing,
    /// Cache (and, with a PMU, dTLB) misses per access; `None` when not measured.
    pub counters: Option<AccessCounters>,
    /// The TLB model's figures.
    pub tlb_sim: Option<TlbSimRow>,
}

/// One row of the huge-page comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HugePageRow {
    /// The pattern's key.
    pub pattern: String,
    /// `4k` (`MADV_NOHUGEPAGE`) or `thp` (`MADV_HUGEPAGE`).
    pub pages: String,
    /// Wall-clock ns per access.
    pub time_ns: Timing,
    /// `AnonHugePages` of the region from /proc/self/smaps after it was written.
    pub anon_huge_bytes: Option<u64>,
    /// `anon_huge_bytes` / region size.
    pub huge_fraction: Option<f64>,
    /// Time to map and write the region (page faults and the list shuffle included), ms; both
    /// patterns of one page size share the region, so they show the same figure.
    pub setup_ms: f64,
}

/// The huge-page comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HugePages {
    /// `measured` or `skipped`.
    pub status: String,
    /// /sys/kernel/mm/transparent_hugepage/enabled.
    pub thp_enabled: Option<String>,
    /// /sys/kernel/mm/transparent_hugepage/defrag.
    pub thp_defrag: Option<String>,
    /// Working set in bytes.
    pub size_bytes: u64,
    /// 4k and thp rows per pattern.
    pub rows: Vec<HugePageRow>,
    /// What the user should know (huge pages not obtained, skipped, ...).
    pub notes: Vec<String>,
}

/// The report of `frugal bench locality`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalityReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Quick profile.
    pub quick: bool,
    /// The machine.
    pub machine: Machine,
    /// Cache geometry from sysfs (`None` when sysfs has none).
    pub caches: Option<serde_json::Value>,
    /// TLB geometry used by the model.
    pub tlb: TlbGeometry,
    /// Where `counters` come from.
    pub counter_source: CounterSource,
    /// Why counters are simulated or absent.
    pub counter_note: Option<String>,
    /// The table.
    pub rows: Vec<Row>,
    /// Huge pages, measured.
    pub huge_pages: HugePages,
    /// NUMA facts.
    pub numa: numa::NumaSection,
    /// The chapter-3 claims ledger rows.
    pub claims: Vec<Claim>,
    /// Notes for the reader.
    pub notes: Vec<String>,
}

impl LocalityReport {
    /// The row of `pattern` at `size_bytes`.
    pub fn row(&self, pattern: Pattern, size_bytes: u64) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.pattern == pattern.key() && r.size_bytes == size_bytes)
    }

    /// The row of `pattern` at the largest working set measured for it.
    pub fn largest(&self, pattern: Pattern) -> Option<&Row> {
        self.rows
            .iter()
            .filter(|r| r.pattern == pattern.key())
            .max_by_key(|r| r.size_bytes)
    }

    /// The last-level cache size from sysfs, in bytes (as reported, before any valgrind
    /// adjustment).
    pub fn llc_bytes(&self) -> Option<u64> {
        let c = self.caches.as_ref()?;
        let ll = match c.get("ll_reported") {
            Some(v) if !v.is_null() => v,
            _ => c.get("ll")?,
        };
        ll.get("size_bytes")?.as_u64()
    }
}

/// Maps a working set and lays it out (4 KiB pages).
fn layout(pattern: Pattern, size: u64, policy: PagePolicy) -> Result<Layout, Error> {
    let region = Region::map(size as usize, policy).map_err(|source| Error::Map {
        size_bytes: size,
        source,
    })?;
    Ok(Layout::new(pattern, region, SEED))
}

/// Times `accesses` per sample after a warm-up pass; ns per access.
pub(crate) fn time_layout(
    layout: &Layout,
    cursor: &mut Cursor,
    samples: u32,
    sample_time: Duration,
) -> Timing {
    let warm = layout.accesses_per_pass().clamp(1, 4 << 20);
    black_box(layout.run(cursor, warm, &mut NoTrace));
    // Calibrate: how many accesses fill one sample.
    let probe = 20_000u64;
    let t = Instant::now();
    black_box(layout.run(cursor, probe, &mut NoTrace));
    let per = t.elapsed().as_nanos().max(1) as f64 / probe as f64;
    let iters = ((sample_time.as_nanos() as f64 / per) as u64).clamp(1_000, 200_000_000);
    let samples: Vec<f64> = (0..samples.max(1))
        .map(|_| {
            let t = Instant::now();
            black_box(layout.run(cursor, iters, &mut NoTrace));
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    Timing::from_samples(samples, iters)
}

/// The TLB model over the addresses the pattern reads, for 4 KiB and 2 MiB pages.
fn tlb_sim(layout: &Layout, geometry: &TlbGeometry, accesses: u64) -> TlbSimRow {
    // A whole pass reaches the steady state; past 4M accesses the set is far beyond any TLB's
    // reach and as many accesses as are counted fill it just as well.
    let pass = layout.accesses_per_pass().max(1);
    let warm = if pass <= 4 << 20 {
        pass
    } else {
        accesses.max(1)
    };
    let run = |shift| {
        let mut sim = TlbSim::for_geometry(geometry, shift);
        let mut cursor = Cursor::new(SEED);
        black_box(layout.run(&mut cursor, warm, &mut sim));
        sim.reset_counts();
        black_box(layout.run(&mut cursor, accesses, &mut sim));
        sim.counts()
    };
    let page_4k = run(SHIFT_4K);
    let page_2m = run(SHIFT_2M);
    TlbSimRow {
        simulated: true,
        accesses,
        page_4k,
        page_2m,
    }
}

const HW_EVENTS: [Event; 3] = [
    Event::L1DcacheLoadMisses,
    Event::LlcLoadMisses,
    Event::DtlbLoadMisses,
];

fn hardware_available() -> bool {
    crate::sim::pmu_counts(Event::L1DcacheLoadMisses)
}

fn hardware_counters(layout: &Layout, samples: u32) -> Option<AccessCounters> {
    let mut m = Measurement::new(&HW_EVENTS).ok()?;
    let batch = 100_000u64;
    let mut cursor = Cursor::new(SEED);
    black_box(layout.run(
        &mut cursor,
        layout.accesses_per_pass().clamp(1, 4 << 20),
        &mut NoTrace,
    ));
    let report = m
        .run(1, samples.max(3) as usize, || {
            layout.run(&mut cursor, batch, &mut NoTrace)
        })
        .ok()?;
    let get = |e| report.per_op(e).map(|s| s.median / batch as f64);
    Some(AccessCounters {
        source: CounterSource::Hardware,
        accesses: batch,
        l1d_misses: get(Event::L1DcacheLoadMisses),
        llc_misses: get(Event::LlcLoadMisses),
        dtlb_misses: get(Event::DtlbLoadMisses),
    })
}

/// The region callgrind collects in a simulated child (`--toggle-collect=*locality::sim_region*`).
#[inline(never)]
fn sim_region(layout: &Layout, cursor: &mut Cursor, accesses: u64) -> u64 {
    layout.run(cursor, accesses, &mut NoTrace)
}

/// The same walk under another name, so the warm-up is not collected.
#[inline(never)]
fn sim_warmup(layout: &Layout, cursor: &mut Cursor, accesses: u64) -> u64 {
    layout.run(cursor, accesses, &mut NoTrace)
}

/// What a simulated child did, printed on its stdout so a trace of it can be lined up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimChildRun {
    /// Checksum of the walk (keeps the reads alive).
    pub checksum: u64,
    /// Address of the working set's first byte.
    pub region_start: usize,
    /// Its length in bytes.
    pub region_len: usize,
    /// Accesses of the (uncollected) warm-up pass before the collected ones.
    pub warmup_accesses: u64,
}

/// Body of the re-executed child that valgrind simulates: lays out `pattern` over `size_bytes`
/// (not collected), warms up with one pass (not collected), then runs `accesses` accesses in
/// the collected function `sim_region`.
pub fn sim_child(pattern: &str, size_bytes: u64, accesses: u64) -> Result<SimChildRun, Error> {
    let pattern = parse_pattern(pattern)?;
    check_size(size_bytes, mem_available_bytes())?;
    let l = layout(pattern, size_bytes, PagePolicy::Small)?;
    let mut cursor = Cursor::new(SEED);
    let warm = warmup_accesses(&l);
    black_box(sim_warmup(&l, &mut cursor, warm));
    Ok(SimChildRun {
        checksum: black_box(sim_region(&l, &mut cursor, accesses)),
        region_start: l.region.start(),
        region_len: l.region.len(),
        warmup_accesses: warm,
    })
}

fn warmup_accesses(l: &Layout) -> u64 {
    l.accesses_per_pass().clamp(1, 2 << 20)
}

/// The address trace the TLB model is fed, as offsets into the working set: the data words
/// `pattern` reads over `size_bytes` in the `accesses` accesses that follow [`sim_child`]'s
/// warm-up. Layouts and walks are seeded, so this is the same sequence a [`sim_child`] run
/// reads in its collected region; a test lines it up with valgrind lackey's trace of one.
pub fn trace_offsets(
    pattern: Pattern,
    size_bytes: u64,
    accesses: u64,
) -> Result<Vec<usize>, Error> {
    struct Record(Vec<usize>);
    impl Sink for Record {
        fn touch(&mut self, addr: usize) {
            self.0.push(addr);
        }
    }
    check_size(size_bytes, mem_available_bytes())?;
    let l = layout(pattern, size_bytes, PagePolicy::Small)?;
    let mut cursor = Cursor::new(SEED);
    black_box(l.run(&mut cursor, warmup_accesses(&l), &mut NoTrace));
    let mut rec = Record(Vec::new());
    black_box(l.run(&mut cursor, accesses, &mut rec));
    let start = l.region.start();
    Ok(rec.0.into_iter().map(|a| a - start).collect())
}

/// Parses a pattern name.
pub fn parse_pattern(name: &str) -> Result<Pattern, Error> {
    Pattern::parse(name).ok_or_else(|| Error::UnknownPattern {
        name: name.to_owned(),
        expected: Pattern::ALL.map(Pattern::key).join(", "),
    })
}

fn simulate(
    cmd: &SimCommand,
    pattern: Pattern,
    size: u64,
    accesses: u64,
) -> Result<AccessCounters, Error> {
    let args = [
        pattern.key().to_owned(),
        size.to_string(),
        accesses.to_string(),
    ];
    let run = cmd
        .simulate(&args, "*locality::sim_region*")
        .map_err(|source| Error::Simulation {
            what: format!("{pattern} at {size} B"),
            source,
        })?;
    let c = run.counts;
    let n = accesses.max(1) as f64;
    Ok(AccessCounters {
        source: CounterSource::Simulated,
        accesses,
        l1d_misses: Some((c.d1_read_misses + c.d1_write_misses) as f64 / n),
        llc_misses: Some((c.ll_data_read_misses + c.ll_data_write_misses) as f64 / n),
        dtlb_misses: None,
    })
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// `AnonHugePages` (bytes) of the mappings overlapping `[start, start + len)`, from a
/// /proc/PID/smaps text.
pub fn anon_huge_bytes(smaps: &str, start: usize, len: usize) -> Option<u64> {
    let end = start + len;
    let mut total = None;
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                inside = a < end && b > start;
                continue;
            }
        }
        if inside {
            if let Some(rest) = line.strip_prefix("AnonHugePages:") {
                let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
                *total.get_or_insert(0) += kb * 1024;
            }
        }
    }
    total
}

fn huge_pages(config: &Config, progress: &mut dyn FnMut(String)) -> Result<HugePages, Error> {
    let enabled = read_trim("/sys/kernel/mm/transparent_hugepage/enabled");
    let defrag = read_trim("/sys/kernel/mm/transparent_hugepage/defrag");
    let mut hp = HugePages {
        status: "skipped".to_owned(),
        thp_enabled: enabled.clone(),
        thp_defrag: defrag,
        size_bytes: config.huge_pages_bytes.unwrap_or(0),
        rows: Vec::new(),
        notes: Vec::new(),
    };
    let Some(size) = config.huge_pages_bytes else {
        hp.notes
            .push("huge pages not measured in this run".to_owned());
        return Ok(hp);
    };
    if let Err(e) = check_size(size, mem_available_bytes()) {
        hp.notes.push(format!("huge pages not measured: {e}"));
        return Ok(hp);
    }
    if enabled.as_deref().is_none_or(|e| e.contains("[never]")) {
        hp.notes.push(format!(
            "transparent huge pages are {} here, so the thp rows get 4 KiB pages: enable them \
             with `echo madvise > /sys/kernel/mm/transparent_hugepage/enabled` (root)",
            enabled
                .as_deref()
                .map_or("unavailable", |_| "disabled (`never`)")
        ));
    }
    // One region per page size, laid out as the shuffled list; the random walk reads the same
    // region (random indices do not care what the words hold), which halves the set-up time.
    for (policy, pages) in [(PagePolicy::Small, "4k"), (PagePolicy::Huge, "thp")] {
        progress(format!("huge pages: {pages} over {} MiB", size >> 20));
        let t = Instant::now();
        let mut l = match layout(Pattern::ChaseShuffled, size, policy) {
            Ok(l) => l,
            Err(Error::Map { source, .. }) if policy == PagePolicy::Huge => {
                hp.notes.push(format!(
                    "madvise(MADV_HUGEPAGE) was refused ({source}): this kernel offers no \
                     transparent huge pages, so there are no thp rows"
                ));
                continue;
            }
            Err(e) => return Err(e),
        };
        let setup_ms = t.elapsed().as_secs_f64() * 1e3;
        let anon = std::fs::read_to_string("/proc/self/smaps")
            .ok()
            .and_then(|s| anon_huge_bytes(&s, l.region.start(), l.region.len()));
        let fraction = anon.map(|a| a as f64 / l.region.len() as f64);
        if policy == PagePolicy::Huge {
            match anon {
                None => hp.notes.push(
                    "AnonHugePages of the region could not be read from /proc/self/smaps, so \
                     it is unknown whether huge pages were obtained"
                        .to_owned(),
                ),
                Some(0) => hp.notes.push(format!(
                    "the kernel gave no huge pages for the MADV_HUGEPAGE region (AnonHugePages \
                     0; THP {}, defrag {}): memory may be too fragmented; the thp rows measured \
                     4 KiB pages",
                    hp.thp_enabled.as_deref().unwrap_or("?"),
                    hp.thp_defrag.as_deref().unwrap_or("?")
                )),
                Some(_) if fraction < Some(0.9) => hp.notes.push(format!(
                    "only {:.0}% of the MADV_HUGEPAGE region got huge pages (memory \
                     fragmentation): the thp rows mix page sizes",
                    fraction.unwrap_or(0.0) * 100.0
                )),
                Some(_) => {}
            }
        }
        for pattern in [Pattern::Random, Pattern::ChaseShuffled] {
            l.pattern = pattern;
            let mut cursor = Cursor::new(SEED);
            let time_ns = time_layout(&l, &mut cursor, config.samples, config.sample_time);
            hp.rows.push(HugePageRow {
                pattern: pattern.key().to_owned(),
                pages: pages.to_owned(),
                time_ns,
                anon_huge_bytes: anon,
                huge_fraction: fraction,
                setup_ms,
            });
        }
    }
    hp.rows.sort_by_key(|r| r.pattern != Pattern::Random.key());
    hp.status = "measured".to_owned();
    Ok(hp)
}

/// Runs the experiment.
pub fn run(config: &Config, progress: &mut dyn FnMut(Progress)) -> Result<LocalityReport, Error> {
    config.validate()?;
    let machine = Machine::detect();
    let caches = CacheGeometry::from_sysfs().ok();
    let tlb = TlbGeometry::detect();
    let hardware = hardware_available();
    let mut notes = Vec::new();
    let (counter_source, counter_note) = if hardware {
        (CounterSource::Hardware, None)
    } else if config.sim.is_some() {
        (
            CounterSource::Simulated,
            Some(format!(
                "no hardware PMU on this machine (perf_event_open: ENOENT for hardware events): \
                 L1d and LLC misses are SIMULATED by valgrind (callgrind, cache geometry from \
                 sysfs, no prefetcher) on {} accesses per row, working sets up to {} MiB; dTLB \
                 misses come from the TLB model only",
                config.sim_accesses,
                SIM_MAX_BYTES >> 20
            )),
        )
    } else {
        (
            CounterSource::None,
            Some(
                "no hardware PMU on this machine and simulation was skipped: cache-miss \
                 columns are empty"
                    .to_owned(),
            ),
        )
    };
    let mut sizes = config.sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    let pairs: Vec<(u64, Pattern)> = sizes
        .iter()
        .flat_map(|&s| config.patterns.iter().map(move |&p| (s, p)))
        .collect();
    let sim_sizes: Vec<u64> = {
        let eligible: Vec<u64> = sizes
            .iter()
            .copied()
            .filter(|&s| s <= SIM_MAX_BYTES)
            .collect();
        if config.sim_all_sizes {
            eligible
        } else {
            eligible.last().copied().into_iter().collect()
        }
    };
    let sim_pairs: Vec<(u64, Pattern)> = if counter_source == CounterSource::Simulated {
        pairs
            .iter()
            .copied()
            .filter(|(s, _)| sim_sizes.contains(s))
            .collect()
    } else {
        Vec::new()
    };
    let total = (pairs.len() + sim_pairs.len() + 4) as u64;
    let done = std::cell::Cell::new(0u64);
    let step = |label: String, progress: &mut dyn FnMut(Progress)| {
        progress(Progress {
            done: done.get(),
            total,
            label,
        });
        done.set(done.get() + 1);
    };

    let mut rows = Vec::with_capacity(pairs.len());
    for &(size, pattern) in &pairs {
        step(format!("{pattern} over {}", human_bytes(size)), progress);
        let l = layout(pattern, size, PagePolicy::Small)?;
        let mut cursor = Cursor::new(SEED);
        let time_ns = time_layout(&l, &mut cursor, config.samples, config.sample_time);
        let counters = if hardware {
            hardware_counters(&l, config.samples)
        } else {
            None
        };
        let tlb_sim = tlb_sim(&l, &tlb, config.tlb_accesses);
        rows.push(Row {
            pattern: pattern.key().to_owned(),
            access_unit: pattern.access_unit().to_owned(),
            size_bytes: size,
            time_ns,
            counters,
            tlb_sim: Some(tlb_sim),
        });
    }

    if let Some(cmd) = config.sim.as_ref().filter(|_| !sim_pairs.is_empty()) {
        step(
            format!("simulating {} rows under valgrind", sim_pairs.len()),
            progress,
        );
        let results = parallel_map(&sim_pairs, |&(size, pattern)| {
            simulate(cmd, pattern, size, config.sim_accesses)
        });
        for (&(size, pattern), result) in sim_pairs.iter().zip(results) {
            let counters = result?;
            if let Some(row) = rows
                .iter_mut()
                .find(|r| r.pattern == pattern.key() && r.size_bytes == size)
            {
                row.counters = Some(counters);
            }
            done.set(done.get() + 1);
        }
        let unsimulated: Vec<String> = sizes
            .iter()
            .filter(|s| !sim_sizes.contains(s))
            .map(|&s| human_bytes(s))
            .collect();
        if !unsimulated.is_empty() {
            notes.push(format!(
                "no simulated cache counts at {} (valgrind runs ~50x slower: only sets up to {} \
                 MiB are simulated, and the quick profile simulates only the largest of them)",
                unsimulated.join(", "),
                SIM_MAX_BYTES >> 20
            ));
        }
    }

    let huge = huge_pages(config, &mut |label| step(label, progress))?;
    step("NUMA".to_owned(), progress);
    let numa = numa::run(
        config.numa_bytes as usize,
        config.samples,
        config.sample_time,
    );
    if tlb.source == tlb::GeometrySource::Default {
        notes.push(
            "cpuid gave no TLB geometry: the TLB model uses stated defaults (64-entry 4-way L1 \
             dTLB, 1536-entry 12-way L2)"
                .to_owned(),
        );
    }
    let mut report = LocalityReport {
        schema_version: SCHEMA_VERSION,
        quick: config.quick,
        machine,
        caches: caches.and_then(|c| serde_json::to_value(c).ok()),
        tlb,
        counter_source,
        counter_note,
        rows,
        huge_pages: huge,
        numa,
        claims: Vec::new(),
        notes,
    };
    report.claims = ledger::claims(&report);
    Ok(report)
}

/// `16 KiB`, `4 MiB`, `1 GiB`, or bytes.
pub fn human_bytes(b: u64) -> String {
    if b >= 1 << 30 && b % (1 << 30) == 0 {
        format!("{} GiB", b >> 30)
    } else if b >= 1 << 20 && b % (1 << 20) == 0 {
        format!("{} MiB", b >> 20)
    } else if b >= 1 << 10 && b % (1 << 10) == 0 {
        format!("{} KiB", b >> 10)
    } else {
        format!("{b} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked_before_allocating() {
        assert!(matches!(check_size(0, None), Err(Error::BadSize { .. })));
        assert!(matches!(check_size(100, None), Err(Error::BadSize { .. })));
        let e = check_size(2 << 30, Some(1 << 30)).unwrap_err();
        assert!(e.is_usage());
        assert!(
            e.to_string().contains("larger than the memory available"),
            "{e}"
        );
        assert!(check_size(4096, Some(1 << 30)).is_ok());
    }

    #[test]
    fn smaps_anon_huge_pages_of_a_region() {
        let smaps = "00400000-00600000 r-xp 00000000 08:01 1 /bin/x\n\
                     AnonHugePages:      0 kB\n\
                     7f0000000000-7f0000400000 rw-p 00000000 00:00 0\n\
                     Size:               4096 kB\n\
                     AnonHugePages:   2048 kB\n\
                     7f0000400000-7f0000600000 rw-p 00000000 00:00 0\n\
                     AnonHugePages:   2048 kB\n";
        assert_eq!(
            anon_huge_bytes(smaps, 0x7f00_0000_0000, 0x60_0000),
            Some(4 << 20)
        );
        assert_eq!(anon_huge_bytes(smaps, 0x1000_0000, 0x1000), None);
    }

    #[test]
    fn default_sizes_are_page_multiples_and_growing() {
        for large in [false, true] {
            let s = default_sizes(large);
            assert!(s.len() >= 3);
            assert!(s.windows(2).all(|w| w[0] < w[1]), "{s:?}");
            assert!(s.iter().all(|&b| b % 4096 == 0 && b >= MIN_SIZE_BYTES));
        }
    }

    #[test]
    fn tlb_model_sees_sequential_and_shuffled_walks_differently() {
        let g = TlbGeometry::detect();
        let seq = layout(Pattern::Seq, 32 << 20, PagePolicy::Small).unwrap();
        let chase = layout(Pattern::ChaseShuffled, 32 << 20, PagePolicy::Small).unwrap();
        let s = tlb_sim(&seq, &g, 100_000);
        let c = tlb_sim(&chase, &g, 100_000);
        // One walk per 512 sequential words (at most one extra for a partial page).
        let expected = 100_000.0 / 512.0;
        assert!((s.page_4k.walks as f64 - expected).abs() <= 1.0, "{s:?}");
        // 8192 pages, far beyond any L1 dTLB: nearly every hop misses it.
        assert!(c.page_4k.l1_miss_rate() > 0.9, "{c:?}");
        // 16 huge pages fit every L1 dTLB modelled here: no walks once warm.
        assert_eq!(c.page_2m.walks, 0, "{c:?}");
        assert!(s.simulated && c.simulated);
    }

    #[test]
    fn timing_gives_positive_ordered_samples() {
        let l = layout(Pattern::Seq, 64 << 10, PagePolicy::Small).unwrap();
        let t = time_layout(&l, &mut Cursor::new(1), 3, Duration::from_millis(1));
        assert_eq!(t.samples.len(), 3);
        assert!(t.min > 0.0 && t.min <= t.median && t.median <= t.max);
    }
}
