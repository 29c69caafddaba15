//! The thread-local pool of reusable blocks for deferred calls that do not fit inline.
//!
//! Invariants:
//! - every block in a free list was allocated by [`alloc_block`] with the layout of its class
//!   (`CLASSES[class]` bytes, aligned to [`BLOCK_ALIGN`]) and is owned by the list alone;
//! - a free block's first word is the `next` link of its list (the rest is unspecified);
//! - a block handed out by [`acquire`] is owned by the caller until it returns it with
//!   [`release`] (same class) exactly once.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::Cell;
use std::ptr::{self, NonNull};

use crate::stats;

/// Block sizes of the pool's size classes, in bytes.
pub(crate) const CLASSES: [usize; 7] = [64, 128, 256, 512, 1024, 2048, 4096];
/// Alignment of every pool block; closures aligned more strictly than this go to the heap.
pub(crate) const BLOCK_ALIGN: usize = 64;
/// At most this many free blocks are kept per class; more are returned to the allocator.
const MAX_FREE_PER_CLASS: u32 = 256;

const _: () = assert!(BLOCK_ALIGN.is_power_of_two());
const _: () = assert!(CLASSES[0] >= core::mem::size_of::<FreeBlock>());

/// The smallest class whose blocks hold `size` bytes at alignment `align`, if any.
pub(crate) const fn class_of(size: usize, align: usize) -> Option<usize> {
    if align > BLOCK_ALIGN {
        return None;
    }
    let mut i = 0;
    while i < CLASSES.len() {
        if size <= CLASSES[i] {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn layout_of(class: usize) -> Layout {
    Layout::from_size_align(CLASSES[class], BLOCK_ALIGN)
        .expect("pool classes are non-zero multiples of a power-of-two alignment")
}

#[repr(C)]
struct FreeBlock {
    next: *mut FreeBlock,
}

struct Pool {
    heads: [Cell<*mut FreeBlock>; CLASSES.len()],
    counts: [Cell<u32>; CLASSES.len()],
}

impl Pool {
    fn pop(&self, class: usize) -> Option<NonNull<u8>> {
        let head = NonNull::new(self.heads[class].get())?;
        // SAFETY: `head` is a free block of this list (pool invariant), so its first word is
        // an initialized `next` link and nobody else accesses it.
        let next = unsafe { head.cast::<*mut FreeBlock>().read() };
        self.heads[class].set(next);
        self.counts[class].set(self.counts[class].get() - 1);
        Some(head.cast())
    }

    /// Pushes `block` onto the free list of `class`; returns `false` if the list is full.
    ///
    /// # Safety
    /// `block` came from `alloc_block(class)`, is owned by the caller and no longer used.
    unsafe fn push(&self, class: usize, block: NonNull<u8>) -> bool {
        if self.counts[class].get() >= MAX_FREE_PER_CLASS {
            return false;
        }
        let free = block.cast::<FreeBlock>();
        // SAFETY: the caller owns `block`, which is at least `CLASSES[0]` bytes and aligned to
        // `BLOCK_ALIGN`, enough for a `FreeBlock` (asserted above). This resets the block:
        // from now on only its link is meaningful.
        unsafe {
            free.as_ptr().write(FreeBlock {
                next: self.heads[class].get(),
            })
        };
        self.heads[class].set(free.as_ptr());
        self.counts[class].set(self.counts[class].get() + 1);
        true
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for class in 0..CLASSES.len() {
            while let Some(block) = self.pop(class) {
                // SAFETY: the block came from `alloc_block(class)` (pool invariant) and was just
                // unlinked, so this is its only owner and it is freed once.
                unsafe { dealloc(block.as_ptr(), layout_of(class)) };
            }
        }
    }
}

thread_local! {
    static POOL: Pool = const {
        Pool {
            heads: [const { Cell::new(ptr::null_mut()) }; CLASSES.len()],
            counts: [const { Cell::new(0) }; CLASSES.len()],
        }
    };
}

fn alloc_block(class: usize) -> NonNull<u8> {
    let layout = layout_of(class);
    // SAFETY: `layout` has a non-zero size (the smallest class is 64 bytes).
    let raw = unsafe { alloc(layout) };
    NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(layout))
}

/// Takes a block of `class` from this thread's pool, allocating one on a miss.
pub(crate) fn acquire(class: usize) -> NonNull<u8> {
    // `try_with` fails only during thread-local destruction; then we allocate directly.
    match POOL.try_with(|p| p.pop(class)).ok().flatten() {
        Some(block) => {
            stats::pool_hit();
            super::chain::probes::pool_hit(class);
            block
        }
        None => {
            stats::pool_miss();
            super::chain::probes::pool_miss(class);
            alloc_block(class)
        }
    }
}

/// Returns a block to this thread's pool (or to the allocator if the pool is full or gone).
///
/// # Safety
/// `block` was returned by `acquire(class)` with the same `class`, is released exactly once
/// and is not used afterwards.
pub(crate) unsafe fn release(class: usize, block: NonNull<u8>) {
    // SAFETY: forwarded from the caller: `block` is an owned block of `class`, unused from now.
    let kept = POOL
        .try_with(|p| unsafe { p.push(class, block) })
        .unwrap_or(false);
    if !kept {
        // SAFETY: the block was allocated by `alloc_block(class)` (possibly on another call of
        // `acquire`), the pool did not take it, and the caller gives up ownership: freed once.
        unsafe { dealloc(block.as_ptr(), layout_of(class)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_sorted_and_aligned() {
        assert!(CLASSES.windows(2).all(|w| w[0] < w[1]));
        assert!(CLASSES.iter().all(|c| c % BLOCK_ALIGN == 0));
        assert_eq!(class_of(1, 8), Some(0));
        assert_eq!(class_of(64, 64), Some(0));
        assert_eq!(class_of(65, 8), Some(1));
        assert_eq!(class_of(4096, 8), Some(6));
        assert_eq!(class_of(4097, 8), None);
        assert_eq!(class_of(8, 128), None);
    }

    #[test]
    fn released_blocks_are_reused() {
        let a = acquire(2);
        // SAFETY: `a` came from `acquire(2)` and is not used after release.
        unsafe { release(2, a) };
        let b = acquire(2);
        assert_eq!(
            a, b,
            "a released block is handed out again (LIFO free list)"
        );
        // SAFETY: as above.
        unsafe { release(2, b) };
    }
}
