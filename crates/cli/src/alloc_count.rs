//! The global allocator of the `frugal` binary: the system allocator plus per-thread counts, so
//! `frugal bench defer` can report heap allocations and bytes per operation.
//!
//! This is the binary's only unsafe code (`GlobalAlloc` is an unsafe trait); every method forwards
//! to [`System`] unchanged.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use frugal_workloads::defer_bench::AllocSnapshot;

/// The global allocator of the `frugal` binary: the system allocator plus per-thread counts of
/// allocations and bytes, read by [`alloc_snapshot`]. Per-thread, so a progress-bar thread or a
/// server's workers do not blur a benchmark's numbers; a couple of thread-local increments per
/// allocation is the whole overhead.
struct CountingAlloc;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[inline]
fn count(bytes: usize) {
    // `try_with`: during thread teardown the slots may be gone; such allocations go uncounted.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
    let _ = BYTES.try_with(|c| c.set(c.get() + bytes as u64));
}

/// The calling thread's allocation totals.
pub(crate) fn alloc_snapshot() -> AllocSnapshot {
    AllocSnapshot {
        count: ALLOCS.try_with(Cell::get).unwrap_or(0),
        bytes: BYTES.try_with(Cell::get).unwrap_or(0),
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds exactly as it does for `System`; counting touches only
// const-initialized thread-locals without destructors, which never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for `layout`.
        unsafe { System.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract for `layout`.
        unsafe { System.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: `ptr` was allocated by `System` with `layout`; the caller upholds the rest.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
