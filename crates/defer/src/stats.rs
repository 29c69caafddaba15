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
/// `pool_misses` are counted immediately. `inline` is derived: `registered - pooled - heap`.
///
/// ```
/// let before = frugal_defer::stats();
/// frugal_defer::scope(|s| {
///     s.defer(|| ());
///     s.defer(|| ());
/// });
/// let d = frugal_defer::stats().since(&before);
/// assert_eq!((d.registered, d.inline, d.pooled, d.heap), (2, 2, 0, 0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Deferred calls registered on a chain (any storage), counted when their scope ends.
    pub registered: u64,
    /// Of those, stored inline in the caller's stack frame.
    pub inline: u64,
    /// Of those, stored in a block of the thread-local pool (overflow path).
    pub pooled: u64,
    /// Of those, larger than the largest pool class (or over-aligned beyond it): own heap block.
    pub heap: u64,
    /// Pool requests served from a free block (no allocation).
    pub pool_hits: u64,
    /// Pool requests that had to allocate a new block from the global allocator.
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
