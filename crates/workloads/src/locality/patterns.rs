//! The access patterns: how a working set is laid out and walked.
//!
//! Every pattern reads 64-bit words of one [`Region`]. A pattern's kernel is generic over a
//! [`Sink`] that sees the address of every word it dereferences: the timed runs use
//! [`NoTrace`] (compiled away), the TLB model records the very same addresses.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::sys::Region;

/// Bytes per cache line (x86-64 and most arm64 parts; sysfs says so on this machine).
pub const LINE: usize = 64;
/// Words (u64) per cache line.
const LINE_WORDS: usize = LINE / 8;
/// Words per 4 KiB page.
const PAGE_WORDS: usize = 4096 / 8;
/// Slot of one hot struct: the article's `alignas(64) struct { float x[16]; int padding; }` is
/// 68 bytes of fields, so `sizeof` is 128 under 64-byte alignment.
const HOT_SLOT_WORDS: usize = 128 / 8;
/// The hot struct itself: 64 bytes (`float x[16]`), read as 8 words.
const HOT_WORDS: usize = 64 / 8;
/// Offset of a straddling hot struct inside its slot: half a line, so it spans two lines.
const STRADDLE_WORDS: usize = 32 / 8;
/// Fields per AoS record (64-byte records of eight u64 fields); three are summed.
const AOS_FIELDS: usize = 8;

/// How the working set is walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    /// Sum of an array, word after word.
    Seq,
    /// One word per 64-byte line, in address order.
    Stride64,
    /// One word per 4 KiB page: every access lands on another page.
    Stride4k,
    /// Words at pseudo-random indices (xorshift, computed in the loop).
    Random,
    /// A linked list of 64-byte nodes, each pointing to the next in allocation order.
    ChaseOrdered,
    /// The same list with its order shuffled into one random cycle (Sattolo).
    ChaseShuffled,
    /// Array of 64-byte structs; three of eight fields summed per record.
    Aos,
    /// The same records as one array per field; the three hot arrays summed.
    Soa,
    /// A 64-byte hot struct aligned to a cache line, in 128-byte slots read in random order.
    HotAligned,
    /// The same struct 32 bytes off the line, so it straddles two lines.
    HotStraddle,
}

impl Pattern {
    /// Every pattern, in table order.
    pub const ALL: [Pattern; 10] = [
        Pattern::Seq,
        Pattern::Stride64,
        Pattern::Stride4k,
        Pattern::Random,
        Pattern::ChaseOrdered,
        Pattern::ChaseShuffled,
        Pattern::Aos,
        Pattern::Soa,
        Pattern::HotAligned,
        Pattern::HotStraddle,
    ];

    /// Name on the command line, in tables and in JSON.
    pub fn key(self) -> &'static str {
        match self {
            Pattern::Seq => "seq",
            Pattern::Stride64 => "stride-64",
            Pattern::Stride4k => "stride-4k",
            Pattern::Random => "random",
            Pattern::ChaseOrdered => "chase-ordered",
            Pattern::ChaseShuffled => "chase-shuffled",
            Pattern::Aos => "aos",
            Pattern::Soa => "soa",
            Pattern::HotAligned => "hot-aligned",
            Pattern::HotStraddle => "hot-straddle",
        }
    }

    /// What one access of this pattern is.
    pub fn access_unit(self) -> &'static str {
        match self {
            Pattern::Seq | Pattern::Stride64 | Pattern::Stride4k | Pattern::Random => "word",
            Pattern::ChaseOrdered | Pattern::ChaseShuffled => "hop",
            Pattern::Aos | Pattern::Soa => "record (3 fields)",
            Pattern::HotAligned | Pattern::HotStraddle => "struct (64 B)",
        }
    }

    /// Parses a [`Pattern::key`].
    pub fn parse(name: &str) -> Option<Pattern> {
        Pattern::ALL.into_iter().find(|p| p.key() == name)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// Receives the address of every word a kernel reads.
pub trait Sink {
    /// One data access at `addr`.
    fn touch(&mut self, addr: usize);
}

/// The sink of timed runs: does nothing, compiled away.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTrace;

impl Sink for NoTrace {
    #[inline(always)]
    fn touch(&mut self, _addr: usize) {}
}

impl Sink for super::tlb::TlbSim {
    #[inline(always)]
    fn touch(&mut self, addr: usize) {
        self.access(addr);
    }
}

/// Where a pattern is in its walk, so successive samples continue rather than restart.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor {
    idx: usize,
    col: usize,
    rng: u64,
}

impl Cursor {
    pub(crate) fn new(seed: u64) -> Cursor {
        Cursor {
            idx: 0,
            col: 0,
            rng: seed | 1,
        }
    }
}

/// xorshift64*: a fast generator, inlined into the loops (its cost is part of every random
/// pattern's time, the same at every working set size).
#[inline(always)]
fn next_rand(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// A uniform index below `n` without division.
#[inline(always)]
fn below(r: u64, n: usize) -> usize {
    ((r as u128 * n as u128) >> 64) as usize
}

/// A working set laid out for one pattern.
#[derive(Debug)]
pub(crate) struct Layout {
    pub(crate) pattern: Pattern,
    pub(crate) region: Region,
}

impl Layout {
    /// Writes the working set (every word, so every page is faulted in before timing).
    pub(crate) fn new(pattern: Pattern, mut region: Region, seed: u64) -> Layout {
        let words = region.words_mut();
        match pattern {
            Pattern::ChaseOrdered | Pattern::ChaseShuffled => {
                let nodes = words.len() / LINE_WORDS;
                for (i, w) in words.iter_mut().enumerate() {
                    *w = i as u64;
                }
                if pattern == Pattern::ChaseOrdered {
                    for i in 0..nodes {
                        words[i * LINE_WORDS] = ((i + 1) % nodes) as u64;
                    }
                } else {
                    let next = random_cycle(nodes, seed);
                    for (i, n) in next.into_iter().enumerate() {
                        words[i * LINE_WORDS] = n as u64;
                    }
                }
            }
            _ => {
                for (i, w) in words.iter_mut().enumerate() {
                    *w = i as u64;
                }
            }
        }
        Layout { pattern, region }
    }

    /// Accesses that cover the working set once (the warm-up pass).
    pub(crate) fn accesses_per_pass(&self) -> u64 {
        let words = self.region.words().len();
        (match self.pattern {
            Pattern::Seq => words,
            Pattern::Stride64 | Pattern::ChaseOrdered | Pattern::ChaseShuffled => {
                words / LINE_WORDS
            }
            Pattern::Stride4k => words / LINE_WORDS,
            Pattern::Random => words / LINE_WORDS,
            Pattern::Aos | Pattern::Soa => words / AOS_FIELDS,
            Pattern::HotAligned | Pattern::HotStraddle => words / HOT_SLOT_WORDS * 2,
        }) as u64
    }

    /// Runs `accesses` accesses from `cursor`, reporting addresses to `sink`; returns a value
    /// depending on every word read (so the reads cannot be optimized away).
    #[inline(always)]
    pub(crate) fn run<S: Sink>(&self, cursor: &mut Cursor, accesses: u64, sink: &mut S) -> u64 {
        kernel(self.pattern, self.region.words(), cursor, accesses, sink)
    }
}

/// A uniformly random single cycle over `0..n` (Sattolo's algorithm): `next[i]` is the node
/// after `i`; following it from any node visits every node exactly once before returning.
pub(crate) fn random_cycle(n: usize, seed: u64) -> Vec<u32> {
    assert!(
        n <= u32::MAX as usize,
        "working sets are bounded far below 2^32 nodes"
    );
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut rng = seed | 1;
    for i in (1..n).rev() {
        let j = below(next_rand(&mut rng), i); // j < i: Sattolo, not Fisher-Yates
        order.swap(i, j);
    }
    // order is a permutation whose cycle structure is one n-cycle: i -> order[i].
    order
}

#[inline(always)]
fn addr(w: &u64) -> usize {
    w as *const u64 as usize
}

#[inline(always)]
fn kernel<S: Sink>(
    pattern: Pattern,
    w: &[u64],
    c: &mut Cursor,
    accesses: u64,
    sink: &mut S,
) -> u64 {
    let n = w.len();
    let mut acc = 0u64;
    match pattern {
        Pattern::Seq => {
            let mut i = c.idx;
            for _ in 0..accesses {
                if i >= n {
                    i = 0;
                }
                sink.touch(addr(&w[i]));
                acc = acc.wrapping_add(w[i]);
                i += 1;
            }
            c.idx = i;
        }
        Pattern::Stride64 | Pattern::Stride4k => {
            let stride = if pattern == Pattern::Stride64 {
                LINE_WORDS
            } else {
                PAGE_WORDS
            };
            // Column by column: line 0 of every stride, then line 1, ... so all lines are used.
            let (mut i, mut col) = (c.idx, c.col);
            for _ in 0..accesses {
                if i >= n {
                    col += LINE_WORDS;
                    if col >= stride || col >= n {
                        col = 0;
                    }
                    i = col;
                }
                sink.touch(addr(&w[i]));
                acc = acc.wrapping_add(w[i]);
                i += stride;
            }
            (c.idx, c.col) = (i, col);
        }
        Pattern::Random => {
            let mut r = c.rng;
            for _ in 0..accesses {
                let i = below(next_rand(&mut r), n);
                sink.touch(addr(&w[i]));
                acc = acc.wrapping_add(w[i]);
            }
            c.rng = r;
        }
        Pattern::ChaseOrdered | Pattern::ChaseShuffled => {
            let mut node = c.idx;
            for _ in 0..accesses {
                let slot = &w[node * LINE_WORDS];
                sink.touch(addr(slot));
                node = *slot as usize;
            }
            c.idx = node;
            acc = node as u64;
        }
        Pattern::Aos => {
            let records = n / AOS_FIELDS;
            let mut i = c.idx;
            for _ in 0..accesses {
                if i >= records {
                    i = 0;
                }
                let r = &w[i * AOS_FIELDS..i * AOS_FIELDS + 3];
                for f in r {
                    sink.touch(addr(f));
                }
                acc = acc.wrapping_add(r[0] ^ r[1].wrapping_add(r[2]));
                i += 1;
            }
            c.idx = i;
        }
        Pattern::Soa => {
            // Eight field arrays of `records` words each; fields 0..3 are the hot ones.
            let records = n / AOS_FIELDS;
            let (x, rest) = w.split_at(records);
            let (y, rest) = rest.split_at(records);
            let z = &rest[..records];
            let mut i = c.idx;
            for _ in 0..accesses {
                if i >= records {
                    i = 0;
                }
                sink.touch(addr(&x[i]));
                sink.touch(addr(&y[i]));
                sink.touch(addr(&z[i]));
                acc = acc.wrapping_add(x[i] ^ y[i].wrapping_add(z[i]));
                i += 1;
            }
            c.idx = i;
        }
        Pattern::HotAligned | Pattern::HotStraddle => {
            let offset = if pattern == Pattern::HotAligned {
                0
            } else {
                STRADDLE_WORDS
            };
            let slots = n / HOT_SLOT_WORDS;
            // The last slot of a straddling layout has room: offset + 8 <= 16 words.
            let mut r = c.rng;
            for _ in 0..accesses {
                let base = below(next_rand(&mut r), slots) * HOT_SLOT_WORDS + offset;
                let s = &w[base..base + HOT_WORDS];
                let mut sum = 0u64;
                for v in s {
                    sink.touch(addr(v));
                    sum = sum.wrapping_add(*v);
                }
                acc = acc.wrapping_add(sum);
            }
            c.rng = r;
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::super::sys::{PagePolicy, Region};
    use super::*;

    struct Record(Vec<usize>);
    impl Sink for Record {
        fn touch(&mut self, addr: usize) {
            self.0.push(addr);
        }
    }

    fn layout(pattern: Pattern, bytes: usize) -> Layout {
        Layout::new(pattern, Region::map(bytes, PagePolicy::Small).unwrap(), 42)
    }

    #[test]
    fn random_cycle_visits_every_node_once() {
        for n in [1, 2, 3, 10, 1000, 4097] {
            let next = random_cycle(n, 7);
            let mut seen = vec![false; n];
            let mut i = 0usize;
            for _ in 0..n {
                assert!(!seen[i], "node {i} visited twice (n = {n})");
                seen[i] = true;
                i = next[i] as usize;
            }
            assert_eq!(i, 0, "the walk returns to the start after n hops");
            assert!(seen.iter().all(|&s| s));
        }
        // A different seed gives a different order.
        assert_ne!(random_cycle(1000, 1), random_cycle(1000, 2));
    }

    #[test]
    fn shuffled_list_in_memory_visits_every_node_once() {
        let l = layout(Pattern::ChaseShuffled, 1 << 20);
        let nodes = (1 << 20) / LINE;
        let mut rec = Record(Vec::new());
        let mut c = Cursor::new(1);
        l.run(&mut c, nodes as u64, &mut rec);
        let mut lines: Vec<usize> = rec
            .0
            .iter()
            .map(|a| (a - l.region.start()) / LINE)
            .collect();
        assert_eq!(c.idx, 0, "back at the head after one full cycle");
        lines.sort_unstable();
        lines.dedup();
        assert_eq!(lines.len(), nodes);
        // Ordered: consecutive lines.
        let l = layout(Pattern::ChaseOrdered, 4096);
        let mut rec = Record(Vec::new());
        l.run(&mut Cursor::new(1), 64, &mut rec);
        let start = l.region.start();
        assert!(rec
            .0
            .iter()
            .enumerate()
            .all(|(i, &a)| a == start + i * LINE));
    }

    #[test]
    fn strides_touch_one_line_or_page_per_access_and_cover_the_set() {
        let l = layout(Pattern::Stride4k, 16 * 4096);
        let mut rec = Record(Vec::new());
        l.run(&mut Cursor::new(1), 16 * 64, &mut rec);
        let start = l.region.start();
        // The first 16 accesses: line 0 of each page.
        for (i, &a) in rec.0.iter().take(16).enumerate() {
            assert_eq!(a - start, i * 4096);
        }
        // All 16 * 64 accesses: every line exactly once.
        let mut lines: Vec<usize> = rec.0.iter().map(|a| (a - start) / LINE).collect();
        lines.sort_unstable();
        lines.dedup();
        assert_eq!(lines.len(), 16 * 64);
    }

    #[test]
    fn hot_structs_span_one_or_two_lines() {
        for (pattern, lines_per_struct) in [(Pattern::HotAligned, 1), (Pattern::HotStraddle, 2)] {
            let l = layout(pattern, 1 << 16);
            let mut rec = Record(Vec::new());
            l.run(&mut Cursor::new(3), 100, &mut rec);
            for s in rec.0.chunks(HOT_WORDS) {
                let mut lines: Vec<usize> = s.iter().map(|a| a / LINE).collect();
                lines.dedup();
                assert_eq!(lines.len(), lines_per_struct, "{pattern}");
                assert!(s.iter().all(|&a| a < l.region.start() + l.region.len()));
            }
        }
    }

    #[test]
    fn aos_and_soa_read_the_same_fields() {
        let bytes = 4096;
        let aos = layout(Pattern::Aos, bytes);
        let soa = layout(Pattern::Soa, bytes);
        let records = bytes / 64;
        let a = aos.run(&mut Cursor::new(1), records as u64, &mut NoTrace);
        let s = soa.run(&mut Cursor::new(1), records as u64, &mut NoTrace);
        // Both layouts hold word i = i; they differ in which words are the fields.
        assert_ne!(a, 0);
        assert_ne!(s, 0);
        let mut rec = Record(Vec::new());
        soa.run(&mut Cursor::new(1), 2, &mut rec);
        let start = soa.region.start();
        let offsets: Vec<usize> = rec.0.iter().map(|a| a - start).collect();
        let field = bytes / 8; // each field array is records words = bytes / 8 bytes
        assert_eq!(offsets, [0, field, 2 * field, 8, field + 8, 2 * field + 8]);
    }

    #[test]
    fn every_pattern_stays_in_bounds_over_several_passes() {
        for p in Pattern::ALL {
            let l = layout(p, 3 * 4096 + 128);
            let mut c = Cursor::new(9);
            let mut rec = Record(Vec::new());
            l.run(&mut c, l.accesses_per_pass() * 3 + 17, &mut rec);
            let (lo, hi) = (l.region.start(), l.region.start() + l.region.len());
            assert!(rec.0.iter().all(|&a| (lo..hi).contains(&a)), "{p}");
            assert!(!rec.0.is_empty());
        }
    }
}
