//! Per-thread statistics of the defer chain.
//!
//! Counters are plain thread-local `Cell<u64>`s (no atomics): a scope adds its registration
//! counts once, when it ends, and the pool counts its hits and misses as they happen. That
//! keeps the cost off the per-defer fast path, so statistics are always on.

use std::cell::Cell;

/// Per-thread counters of the defer chain since the thread started (or since
/// [`reset_stats`]). Read them with [`stats`].
///
/// A scope adds its `registered`, `pooled` and `heap` counts when it ends; `pool_hits` and
/// `pool_misses` are counted immediately, as blocks are taken. `inline` is derived:
/// `registered - pooled - heap`. The accounting is exact:
/// - every registered call is counted once, in exactly one of `inline`, `pooled` and `heap`,
///   so `registered == inline + pooled + heap`;
/// - `pool_hits + pool_misses` is the number of blocks taken from the pool: one per pool
///   segment started (2 KiB, holding records once the inline area is full) and one per
///   closure stored in a pool block of its own (a record over 512 bytes that does not fit the
///   inline area's free space, or a closure aligned to 16–64 bytes). `heap` closures (over
///   4 KiB or aligned to more than 64) are allocated directly and are not counted there;
/// - a miss is a block allocated from the global allocator; every block goes back to the
///   pool when the run passes it, so rerunning a scope gives only hits (the free list keeps
///   up to 256 blocks per class and frees the rest).
///
/// See the crate docs, "Storage".
///
/// ```
/// let before = frugal_defer::stats();
/// frugal_defer::scope(|s| {
///     s.defer(|| ());
///     s.defer(|| ());
/// });
/// let d = frugal_defer::stats().since(&before);
/// assert_eq!((d.registered, d.inline, d.pooled, d.heap), (2, 2, 0, 0));
///
/// // No inline area: one 2 KiB segment for the stub records, one 1 KiB block per closure.
/// let before = frugal_defer::stats();
/// frugal_defer::scope_with_capacity::<0, _, _>(|s| {
///     for i in 0..3u8 {
///         let big = [i; 800];
///         s.defer(move || assert_eq!(big[799], i));
///     }
/// });
/// let d = frugal_defer::stats().since(&before);
/// assert_eq!((d.registered, d.inline, d.pooled, d.heap), (3, 0, 3, 0));
/// assert_eq!(d.pool_hits + d.pool_misses, 3 + 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Deferred calls registered on a chain (any storage), counted when their scope ends.
    pub registered: u64,
    /// Of those, stored inline in the caller's stack frame.
    pub inline: u64,
    /// Of those, stored in the thread-local pool: the record in a pool segment, or the
    /// closure in a pool block of its own.
    pub pooled: u64,
    /// Of those, larger than the largest pool class (or over-aligned beyond it): own heap block.
    pub heap: u64,
    /// Blocks taken from the pool that were served from its free list (no allocation).
    pub pool_hits: u64,
    /// Blocks taken from the pool that had to be allocated from the global allocator.
    pub pool_misses: u64,
}

impl Stats {
    /// The counts accumulated between `earlier` and `self` (saturating at zero).
    #[must_use]
    pub fn since(&self, earlier: &Stats) -> Stats {
        Stats {
            registered: self.registered.saturating_sub(earlier.registered),
            inline: self.inline.saturating_sub(earlier.inline),
            pooled: self.pooled.saturating_sub(earlier.pooled),
            heap: self.heap.saturating_sub(earlier.heap),
            pool_hits: self.pool_hits.saturating_sub(earlier.pool_hits),
            pool_misses: self.pool_misses.saturating_sub(earlier.pool_misses),
        }
    }
}

struct Counters {
    registered: Cell<u64>,
    pooled: Cell<u64>,
    heap: Cell<u64>,
    pool_hits: Cell<u64>,
    pool_misses: Cell<u64>,
}

thread_local! {
    static COUNTERS: Counters = const {
        Counters {
            registered: Cell::new(0),
            pooled: Cell::new(0),
            heap: Cell::new(0),
            pool_hits: Cell::new(0),
            pool_misses: Cell::new(0),
        }
    };
}

fn bump(f: impl FnOnce(&Counters)) {
    // `try_with` fails only while this thread's thread-locals are being destroyed; a scope
    // running inside another thread-local's destructor then simply goes uncounted.
    let _ = COUNTERS.try_with(f);
}

#[inline]
pub(crate) fn add_scope(registered: u64, pooled: u64, heap: u64) {
    bump(|c| {
        c.registered.set(c.registered.get() + registered);
        c.pooled.set(c.pooled.get() + pooled);
        c.heap.set(c.heap.get() + heap);
    });
}

pub(crate) fn pool_hit() {
    bump(|c| c.pool_hits.set(c.pool_hits.get() + 1));
}

pub(crate) fn pool_miss() {
    bump(|c| c.pool_misses.set(c.pool_misses.get() + 1));
}

/// Returns this thread's defer statistics (see [`Stats`]).
#[must_use]
pub fn stats() -> Stats {
    COUNTERS
        .try_with(|c| {
            let (registered, pooled, heap) = (c.registered.get(), c.pooled.get(), c.heap.get());
            Stats {
                registered,
                inline: registered.saturating_sub(pooled + heap),
                pooled,
                heap,
                pool_hits: c.pool_hits.get(),
                pool_misses: c.pool_misses.get(),
            }
        })
        .unwrap_or_default()
}

/// Resets this thread's defer statistics to zero.
pub fn reset_stats() {
    bump(|c| {
        for cell in [
            &c.registered,
            &c.pooled,
            &c.heap,
            &c.pool_hits,
            &c.pool_misses,
        ] {
            cell.set(0);
        }
    });
}
