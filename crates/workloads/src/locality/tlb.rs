//! A trace-driven model of a two-level data TLB, for machines whose PMU cannot count dTLB
//! misses (valgrind has no TLB model).
//!
//! Each level is set-associative with LRU replacement; a lookup that misses the first level
//! (L1 dTLB) looks in the second (L2 TLB / STLB); missing both costs a page walk, after which
//! the translation is installed in both. The model knows nothing about page-walk caches,
//! prefetchers or speculative accesses: its figures are *simulated* and reports say so.
//!
//! ```
//! use frugal_workloads::locality::tlb::{TlbLevel, TlbSim};
//!
//! // 64-entry fully associative L1, 1536-entry 6-way L2, 4 KiB pages.
//! let mut sim = TlbSim::new(12, TlbLevel::full(64), TlbLevel::new(1536, 6));
//! // Sequential 8-byte reads over 64 pages: one miss per page.
//! for addr in (0..64 * 4096).step_by(8) {
//!     sim.access(addr);
//! }
//! assert_eq!(sim.counts().walks, 64);
//! assert_eq!(sim.counts().accesses, 64 * 512);
//! ```

use serde::{Deserialize, Serialize};

/// Page shift of a 4 KiB page.
pub const SHIFT_4K: u32 = 12;
/// Page shift of a 2 MiB page.
pub const SHIFT_2M: u32 = 21;

/// One TLB level: entries and associativity (`ways == entries`: fully associative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlbLevel {
    /// Translations held.
    pub entries: u32,
    /// Associativity.
    pub ways: u32,
}

impl TlbLevel {
    /// A set-associative level; a `ways` that does not divide `entries` (or is 0) makes it
    /// fully associative.
    pub fn new(entries: u32, ways: u32) -> TlbLevel {
        if ways == 0 || entries % ways != 0 {
            TlbLevel::full(entries)
        } else {
            TlbLevel { entries, ways }
        }
    }

    /// A fully associative level.
    pub fn full(entries: u32) -> TlbLevel {
        TlbLevel {
            entries,
            ways: entries,
        }
    }

    /// Number of sets (at least 1).
    pub fn sets(&self) -> u32 {
        (self.entries / self.ways.max(1)).max(1)
    }
}

/// Where a [`TlbGeometry`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GeometrySource {
    /// AMD `cpuid` leaves 0x8000_0005 / 0x8000_0006.
    CpuidAmd,
    /// Intel `cpuid` leaf 0x18 (deterministic address translation parameters).
    CpuidIntel,
    /// Neither said: stated defaults (a Skylake-class core), see [`TlbGeometry::DEFAULT`].
    Default,
}

/// Data-TLB geometry for 4 KiB and 2 MiB pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlbGeometry {
    /// Where the numbers came from.
    pub source: GeometrySource,
    /// L1 dTLB, 4 KiB pages.
    pub l1_4k: TlbLevel,
    /// L2 TLB, 4 KiB pages.
    pub l2_4k: TlbLevel,
    /// L1 dTLB, 2 MiB pages.
    pub l1_2m: TlbLevel,
    /// L2 TLB, 2 MiB pages.
    pub l2_2m: TlbLevel,
}

impl TlbGeometry {
    /// Stated defaults when `cpuid` says nothing usable (Intel Skylake: 64-entry 4-way and
    /// 32-entry 4-way L1 dTLBs, a 1536-entry 12-way STLB shared by both page sizes).
    pub const DEFAULT: TlbGeometry = TlbGeometry {
        source: GeometrySource::Default,
        l1_4k: TlbLevel {
            entries: 64,
            ways: 4,
        },
        l2_4k: TlbLevel {
            entries: 1536,
            ways: 12,
        },
        l1_2m: TlbLevel {
            entries: 32,
            ways: 4,
        },
        l2_2m: TlbLevel {
            entries: 1536,
            ways: 12,
        },
    };

    /// Reads this CPU's geometry from `cpuid`, else [`TlbGeometry::DEFAULT`].
    pub fn detect() -> TlbGeometry {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{__cpuid, __cpuid_count};
            let vendor = {
                let r = __cpuid(0);
                let mut v = Vec::with_capacity(12);
                for reg in [r.ebx, r.edx, r.ecx] {
                    v.extend_from_slice(&reg.to_le_bytes());
                }
                String::from_utf8_lossy(&v).into_owned()
            };
            if vendor == "AuthenticAMD" || vendor == "HygonGenuine" {
                if __cpuid(0x8000_0000).eax >= 0x8000_0006 {
                    let l1 = __cpuid(0x8000_0005);
                    let l2 = __cpuid(0x8000_0006);
                    if let Some(g) = TlbGeometry::from_amd(l1.eax, l1.ebx, l2.eax, l2.ebx) {
                        return g;
                    }
                }
            } else if vendor == "GenuineIntel" && __cpuid(0).eax >= 0x18 {
                let max_sub = __cpuid_count(0x18, 0).eax;
                let leaves: Vec<[u32; 4]> = (0..=max_sub.min(16))
                    .map(|i| {
                        let r = __cpuid_count(0x18, i);
                        [r.eax, r.ebx, r.ecx, r.edx]
                    })
                    .collect();
                if let Some(g) = TlbGeometry::from_intel_leaf_18(&leaves) {
                    return g;
                }
            }
        }
        TlbGeometry::DEFAULT
    }

    /// Decodes AMD's `cpuid` 0x8000_0005 EAX/EBX (L1 TLB, 2 MiB / 4 KiB pages) and
    /// 0x8000_0006 EAX/EBX (L2 TLB). `None` when a data TLB is reported absent.
    ///
    /// ```
    /// use frugal_workloads::locality::tlb::TlbGeometry;
    /// // An AMD EPYC (Zen 1) VM: 64-entry fully associative L1 dTLBs, 1536-entry L2s.
    /// let g = TlbGeometry::from_amd(0xff40ff40, 0xff40ff40, 0x36006400, 0x56006400).unwrap();
    /// assert_eq!((g.l1_4k.entries, g.l1_4k.ways), (64, 64));
    /// assert_eq!((g.l2_4k.entries, g.l2_4k.ways), (1536, 6));
    /// assert_eq!((g.l2_2m.entries, g.l2_2m.ways), (1536, 3));
    /// ```
    pub fn from_amd(l1_eax: u32, l1_ebx: u32, l2_eax: u32, l2_ebx: u32) -> Option<TlbGeometry> {
        // L1: bits 31:24 dTLB associativity (0xff = fully), 23:16 dTLB entries.
        let l1 = |reg: u32| {
            let ways = reg >> 24;
            let entries = (reg >> 16) & 0xff;
            (entries > 0).then(|| match ways {
                0xff => TlbLevel::full(entries),
                w => TlbLevel::new(entries, w),
            })
        };
        // L2: bits 31:28 dTLB associativity (encoded), 27:16 dTLB entries.
        let l2 = |reg: u32| {
            let code = reg >> 28;
            let entries = (reg >> 16) & 0xfff;
            let ways = amd_assoc(code)?;
            (entries > 0).then(|| {
                if ways == u32::MAX {
                    TlbLevel::full(entries)
                } else {
                    TlbLevel::new(entries, ways)
                }
            })
        };
        Some(TlbGeometry {
            source: GeometrySource::CpuidAmd,
            l1_4k: l1(l1_ebx)?,
            l1_2m: l1(l1_eax)?,
            l2_4k: l2(l2_ebx)?,
            l2_2m: l2(l2_eax)?,
        })
    }

    /// Decodes Intel's `cpuid` leaf 0x18 subleaves (`[eax, ebx, ecx, edx]` each): data or
    /// unified TLBs of level 1 and 2 supporting 4 KiB and 2 MiB pages. Missing levels fall back
    /// to [`TlbGeometry::DEFAULT`]'s; `None` if no level was found at all.
    pub fn from_intel_leaf_18(leaves: &[[u32; 4]]) -> Option<TlbGeometry> {
        let mut g = TlbGeometry::DEFAULT;
        let mut found = false;
        for &[_, ebx, ecx, edx] in leaves {
            let kind = edx & 0x1f; // 1 data, 2 instruction, 3 unified, 4 load, 5 store
            if !matches!(kind, 1 | 3 | 4) {
                continue;
            }
            let level = (edx >> 5) & 0x7;
            let fully = edx & (1 << 8) != 0;
            let ways = ebx >> 16;
            let sets = ecx;
            let entries = if fully { ways } else { ways * sets };
            if entries == 0 {
                continue;
            }
            let t = if fully {
                TlbLevel::full(entries)
            } else {
                TlbLevel::new(entries, ways)
            };
            found = true;
            match level {
                1 => {
                    if ebx & 1 != 0 {
                        g.l1_4k = t;
                    }
                    if ebx & 2 != 0 {
                        g.l1_2m = t;
                    }
                }
                2 => {
                    if ebx & 1 != 0 {
                        g.l2_4k = t;
                    }
                    if ebx & 2 != 0 {
                        g.l2_2m = t;
                    }
                }
                _ => {}
            }
        }
        g.source = GeometrySource::CpuidIntel;
        found.then_some(g)
    }

    /// Where the geometry came from, for tables: `cpuid (AMD)`, `cpuid (Intel)`, `defaults`.
    pub fn source_label(&self) -> &'static str {
        match self.source {
            GeometrySource::CpuidAmd => "cpuid (AMD)",
            GeometrySource::CpuidIntel => "cpuid (Intel)",
            GeometrySource::Default => "stated defaults, cpuid said nothing",
        }
    }

    /// The two levels for pages of `2^shift` bytes ([`SHIFT_4K`] or [`SHIFT_2M`]).
    pub fn levels(&self, shift: u32) -> (TlbLevel, TlbLevel) {
        if shift >= SHIFT_2M {
            (self.l1_2m, self.l2_2m)
        } else {
            (self.l1_4k, self.l2_4k)
        }
    }
}

/// AMD's associativity encoding for L2 caches and TLBs (APM vol. 3, `cpuid` 0x8000_0006);
/// `u32::MAX` means fully associative, `None` disabled or reserved.
fn amd_assoc(code: u32) -> Option<u32> {
    Some(match code {
        0x1 => 1,
        0x2 => 2,
        0x3 => 3,
        0x4 => 4,
        0x5 => 6,
        0x6 => 8,
        0x8 => 16,
        0xa => 32,
        0xb => 48,
        0xc => 64,
        0xd => 96,
        0xe => 128,
        0xf => u32::MAX,
        _ => return None,
    })
}

/// One set-associative LRU level.
#[derive(Debug, Clone)]
struct Level {
    sets: u64,
    ways: usize,
    /// `sets * ways` tags (virtual page numbers); `u64::MAX` is empty.
    tags: Vec<u64>,
    /// Last-use stamps, parallel to `tags`.
    stamps: Vec<u64>,
}

impl Level {
    fn new(t: TlbLevel) -> Level {
        let sets = t.sets() as usize;
        let ways = (t.entries as usize / sets).max(1);
        Level {
            sets: sets as u64,
            ways,
            tags: vec![u64::MAX; sets * ways],
            stamps: vec![0; sets * ways],
        }
    }

    /// Looks `vpn` up; on a miss installs it over the least recently used way. True on a hit.
    fn touch(&mut self, vpn: u64, now: u64) -> bool {
        let set = (vpn % self.sets) as usize;
        let base = set * self.ways;
        let tags = &mut self.tags[base..base + self.ways];
        let stamps = &mut self.stamps[base..base + self.ways];
        if let Some(i) = tags.iter().position(|&t| t == vpn) {
            stamps[i] = now;
            return true;
        }
        let victim = stamps
            .iter()
            .enumerate()
            .min_by_key(|&(_, &s)| s)
            .map_or(0, |(i, _)| i);
        tags[victim] = vpn;
        stamps[victim] = now;
        false
    }
}

/// Counts of a [`TlbSim`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlbCounts {
    /// Accesses simulated.
    pub accesses: u64,
    /// Misses of the first level (L1 dTLB).
    pub l1_misses: u64,
    /// Misses of both levels: page walks.
    pub walks: u64,
}

impl TlbCounts {
    /// L1 dTLB misses per access (0 without accesses).
    pub fn l1_miss_rate(&self) -> f64 {
        self.l1_misses as f64 / self.accesses.max(1) as f64
    }

    /// Page walks per access (0 without accesses).
    pub fn walk_rate(&self) -> f64 {
        self.walks as f64 / self.accesses.max(1) as f64
    }
}

/// A two-level data TLB fed with virtual addresses.
#[derive(Debug, Clone)]
pub struct TlbSim {
    shift: u32,
    l1: Level,
    l2: Level,
    now: u64,
    counts: TlbCounts,
}

impl TlbSim {
    /// A TLB for pages of `2^page_shift` bytes with the given levels, empty.
    pub fn new(page_shift: u32, l1: TlbLevel, l2: TlbLevel) -> TlbSim {
        TlbSim {
            shift: page_shift,
            l1: Level::new(l1),
            l2: Level::new(l2),
            now: 0,
            counts: TlbCounts::default(),
        }
    }

    /// The levels of `geometry` for pages of `2^page_shift` bytes.
    pub fn for_geometry(geometry: &TlbGeometry, page_shift: u32) -> TlbSim {
        let (l1, l2) = geometry.levels(page_shift);
        TlbSim::new(page_shift, l1, l2)
    }

    /// Simulates one data access at virtual address `addr`.
    #[inline]
    pub fn access(&mut self, addr: usize) {
        let vpn = (addr as u64) >> self.shift;
        self.now += 1;
        self.counts.accesses += 1;
        if self.l1.touch(vpn, self.now) {
            return;
        }
        self.counts.l1_misses += 1;
        if !self.l2.touch(vpn, self.now) {
            self.counts.walks += 1;
        }
    }

    /// Counts so far.
    pub fn counts(&self) -> TlbCounts {
        self.counts
    }

    /// Zeroes the counts, keeping the TLB contents (after a warm-up).
    pub fn reset_counts(&mut self) {
        self.counts = TlbCounts::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    fn zen() -> TlbSim {
        TlbSim::new(SHIFT_4K, TlbLevel::full(64), TlbLevel::new(1536, 6))
    }

    #[test]
    fn one_access_per_page_beyond_reach_misses_every_time() {
        // 4x the L2 reach, cycled: LRU thrashes, every access is a walk once warm.
        let mut sim = zen();
        let pages = 4 * 1536;
        for _ in 0..2 {
            for p in 0..pages {
                sim.access(p * PAGE);
            }
        }
        sim.reset_counts();
        for p in 0..pages {
            sim.access(p * PAGE + 8);
        }
        let c = sim.counts();
        assert_eq!(c.accesses, pages as u64);
        assert_eq!(c.walks, pages as u64);
        assert_eq!(c.l1_misses, pages as u64);
    }

    #[test]
    fn sequential_words_miss_once_per_page() {
        for (shift, per_page) in [(SHIFT_4K, 512u64), (SHIFT_2M, 262_144)] {
            let mut sim = TlbSim::new(shift, TlbLevel::full(64), TlbLevel::new(1536, 6));
            let bytes = 64usize << 20;
            for addr in (0..bytes).step_by(8) {
                sim.access(addr);
            }
            let c = sim.counts();
            let pages = (bytes >> shift) as u64;
            assert_eq!(c.walks, pages, "shift {shift}");
            assert_eq!(c.accesses, pages * per_page);
            assert!((c.walk_rate() - 1.0 / per_page as f64).abs() < 1e-12);
        }
    }

    #[test]
    fn working_set_within_l1_reach_only_misses_cold() {
        let mut sim = zen();
        for _ in 0..10 {
            for p in 0..64 {
                sim.access(p * PAGE);
            }
        }
        assert_eq!(sim.counts().l1_misses, 64);
        assert_eq!(sim.counts().walks, 64);
        // Within L2 reach but beyond L1: L1 misses every time, no walks once warm.
        let mut sim = zen();
        for p in 0..1000 {
            sim.access(p * PAGE);
        }
        sim.reset_counts();
        for p in 0..1000 {
            sim.access(p * PAGE);
        }
        assert_eq!((sim.counts().l1_misses, sim.counts().walks), (1000, 0));
    }

    #[test]
    fn set_conflicts_follow_associativity() {
        // 4 sets of 2 ways: pages 0, 4, 8 map to set 0.
        let l = TlbLevel::new(8, 2);
        assert_eq!(l.sets(), 4);
        let mut sim = TlbSim::new(SHIFT_4K, l, l);
        for _ in 0..10 {
            for p in [0, 4] {
                sim.access(p * PAGE);
            }
        }
        assert_eq!(sim.counts().walks, 2, "two pages fit two ways");
        let mut sim = TlbSim::new(SHIFT_4K, l, l);
        for _ in 0..10 {
            for p in [0, 4, 8] {
                sim.access(p * PAGE);
            }
        }
        assert_eq!(
            sim.counts().walks,
            30,
            "three pages cycling through two ways always miss"
        );
    }

    #[test]
    fn lru_keeps_the_recently_used_way() {
        let l = TlbLevel::new(2, 2);
        let mut sim = TlbSim::new(SHIFT_4K, l, l);
        for p in [0, 1, 0, 2, 0] {
            sim.access(p * PAGE);
        }
        // 0 miss, 1 miss, 0 hit, 2 miss (evicts 1), 0 hit.
        assert_eq!(sim.counts().walks, 3);
    }

    #[test]
    fn intel_leaf_18_decodes_data_levels() {
        // Subleaf: 4-way 16 sets L1 data TLB for 4K; 12-way 128 sets unified L2 for 4K+2M.
        let l1 = [0, (4 << 16) | 1, 16, 1 | (1 << 5)];
        let l2 = [0, (12 << 16) | 3, 128, 3 | (2 << 5)];
        let g = TlbGeometry::from_intel_leaf_18(&[[1, 0, 0, 0], l1, l2]).unwrap();
        assert_eq!(g.l1_4k, TlbLevel::new(64, 4));
        assert_eq!(g.l2_4k, TlbLevel::new(1536, 12));
        assert_eq!(g.l2_2m, TlbLevel::new(1536, 12));
        assert_eq!(g.l1_2m, TlbGeometry::DEFAULT.l1_2m);
        assert!(TlbGeometry::from_intel_leaf_18(&[[0; 4]]).is_none());
    }

    #[test]
    fn odd_associativity_falls_back_to_fully_associative() {
        assert_eq!(TlbLevel::new(10, 3), TlbLevel::full(10));
        assert_eq!(TlbLevel::new(10, 0).sets(), 1);
    }
}
