//! The type-erased defer chain: a LIFO stack of records, bump-allocated in segments — the
//! caller's inline buffer first, then blocks from the thread-local pool.
//!
//! A record is `[closure F, padded to a multiple of 8][exit: unsafe fn]`. Its *slot* is the
//! address of the `exit` word; the closure ends there. The other operations on a record
//! (run now, cancel) are in a [`VTable`] that only the record's handle carries, so running
//! the chain costs one indirect call per record and no vtable load. The newest record of the current
//! segment is the one whose slot is `cursor - 8`, so records need no links: running the chain
//! walks `cursor` down. A closure too large for a segment, or aligned to more than 8, is
//! stored in its own pool (or heap) block and represented in the segment by a *stub* record
//! whose "closure" is the block pointer.
//!
//! A pool segment starts with a [`SegHdr`] remembering the previous segment's `start`,
//! `cursor` and `limit`; when the run reaches a pool segment's `start`, the previous segment
//! is restored and the block goes back to the pool.
//!
//! Invariants of a [`Chain`]:
//! 1. `start <= cursor <= limit`, all 8-aligned, in the current segment; `[start, cursor)` is
//!    a sequence of pending records, oldest first. The same holds for every saved segment.
//! 2. A record's `exit` matches the closure type and storage it was written with. While the
//!    closure is *live* (initialized, not moved out) `exit` runs it; once it was run or
//!    dropped through a handle, `exit` is the *spent* function of that type and storage, which
//!    never touches the closure again.
//! 3. `exit` is called exactly once per record; it first moves `cursor` below the record
//!    (unlinking it) and only then runs the closure, so a panic leaves the chain consistent
//!    and the run resumes with the next record.
//! 4. The inline buffer outlives the chain; pool segments and stub blocks are owned by the
//!    chain until released, exactly once, when the run passes them.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::Cell;
use std::marker::PhantomData;
use std::mem::{align_of, size_of, MaybeUninit};
use std::ptr::{self, NonNull};

use super::pool;

/// What ends every record: unlinks the record (`cursor` = record start), then runs the
/// closure if live (releasing a stub's block).
type Exit = unsafe fn(*mut u8, &Chain);

/// Size of the `exit` word that ends every record.
const VT: usize = size_of::<Exit>();
/// Records are 8-aligned; closures aligned to more go to their own block (stub record).
pub(super) const INLINE_ALIGN: usize = 8;
/// The pool class used for segments (2 KiB).
const SEG_CLASS: usize = 5;
/// Records up to this size go into segments; larger closures get their own block.
const MAX_SEGMENT_RECORD: usize = 512;

/// The header at the start of a pool segment: the previous segment's state.
#[repr(C)]
struct SegHdr {
    prev_start: *mut u8,
    prev_cursor: *mut u8,
    prev_limit: *mut u8,
}

const SEG_HDR: usize = size_of::<SegHdr>();

const _: () = assert!(VT == size_of::<usize>());
const _: () = assert!(VT <= INLINE_ALIGN && INLINE_ALIGN % VT == 0);
const _: () = assert!(align_of::<Exit>() <= INLINE_ALIGN);
const _: () = assert!(SEG_HDR % INLINE_ALIGN == 0);
const _: () = assert!(align_of::<SegHdr>() <= pool::BLOCK_ALIGN);
const _: () = assert!(pool::CLASSES[SEG_CLASS] >= SEG_HDR + MAX_SEGMENT_RECORD);
const _: () = assert!(align_of::<InlineBuf<0>>() >= INLINE_ALIGN);
const _: () = assert!(size_of::<NonNull<u8>>() <= INLINE_ALIGN);

/// The handle operations on one record, specialised for its closure type and storage.
pub(super) struct VTable {
    /// Runs the closure now; the record stays (handle `run_now`).
    call: unsafe fn(*mut u8),
    /// Drops the closure without running it; the record stays (handle `cancel`).
    drop: unsafe fn(*mut u8),
    /// The `exit` to install once the closure was run or dropped.
    spent: Exit,
}

/// A registered record: its slot and its handle operations.
#[derive(Clone, Copy)]
pub(super) struct Record {
    slot: NonNull<u8>,
    vt: &'static VTable,
}

impl Record {
    /// The record's address (for `Debug`).
    pub(super) fn addr(&self) -> *const u8 {
        self.slot.as_ptr()
    }
}

/// The inline storage area, placed in the frame of the function that opens a scope.
#[repr(C, align(16))]
pub struct InlineBuf<const N: usize>([MaybeUninit<u8>; N]);

impl<const N: usize> InlineBuf<N> {
    /// An uninitialised buffer (costs nothing at run time).
    #[inline(always)]
    pub(super) const fn new() -> Self {
        InlineBuf([MaybeUninit::uninit(); N])
    }
}

/// Compile-time facts about a closure type `F`.
struct Shape<F>(PhantomData<F>);

impl<F> Shape<F> {
    const SIZE: usize = size_of::<F>();
    const ALIGN: usize = align_of::<F>();
    /// In-segment footprint of the closure, rounded up to 8 so records stay 8-aligned.
    const SIZE8: usize = (Self::SIZE + 7) & !7;
    /// Whole record in a segment.
    const RECORD: usize = Self::SIZE8 + VT;
    /// Stored directly in a segment (else: own block + stub record).
    const IN_SEGMENT: bool = Self::ALIGN <= INLINE_ALIGN && Self::RECORD <= MAX_SEGMENT_RECORD;
    /// Pool class of the closure's own block, if any.
    const CLASS: Option<usize> = pool::class_of(Self::SIZE, Self::ALIGN);
    const HEAP_LAYOUT: Layout = {
        let size = if Self::SIZE == 0 { 1 } else { Self::SIZE };
        match Layout::from_size_align(size, Self::ALIGN) {
            Ok(layout) => layout,
            Err(_) => panic!("closure too large for a heap block"),
        }
    };
}

/// Where the closure of in-segment record `slot` starts.
#[inline(always)]
fn data<F>(slot: *mut u8) -> *mut F {
    slot.wrapping_sub(Shape::<F>::SIZE8).cast::<F>()
}

/// Where the block pointer of stub record `slot` is.
#[inline(always)]
fn stub_ptr(slot: *mut u8) -> *mut NonNull<u8> {
    slot.wrapping_sub(VT).cast::<NonNull<u8>>()
}

// ---- in-segment records ------------------------------------------------------------------

/// # Safety
/// `slot` is the newest pending record of `chain`'s current segment, with a live `F`.
unsafe fn exit_inline<F: FnOnce()>(slot: *mut u8, chain: &Chain) {
    let f = data::<F>(slot);
    chain.cursor.set(f.cast());
    // SAFETY: a live, initialized `F` ends at `slot` (invariant 2); the record was unlinked
    // just above, so this is the only read and the closure is moved out exactly once.
    let f = unsafe { f.read() };
    f();
}

/// # Safety
/// `slot` is the newest pending record of `chain`'s current segment, already spent.
unsafe fn exit_inline_spent<F>(slot: *mut u8, chain: &Chain) {
    chain.cursor.set(data::<F>(slot).cast());
}

/// # Safety
/// `slot` is a pending in-segment record of a live `F`; afterwards the closure counts as moved.
unsafe fn call_inline<F: FnOnce()>(slot: *mut u8) {
    // SAFETY: a live `F` ends at `slot`; the caller marked the record spent, so it is read once.
    let f = unsafe { data::<F>(slot).read() };
    f();
}

/// # Safety
/// `slot` is a pending in-segment record of a live `F`; afterwards the closure counts as dropped.
unsafe fn drop_inline<F>(slot: *mut u8) {
    // SAFETY: as in `call_inline`: dropped exactly once (the record is already marked spent,
    // so even a panicking destructor is not dropped again).
    unsafe { ptr::drop_in_place(data::<F>(slot)) };
}

// ---- stub records: the closure in its own pool or heap block -----------------------------

/// # Safety
/// `slot` is a pending stub record.
unsafe fn stub_block(slot: *mut u8) -> NonNull<u8> {
    // SAFETY: a stub record stores an initialized block pointer right below its slot.
    unsafe { stub_ptr(slot).read() }
}

/// # Safety
/// `block` holds no live closure any more and is released exactly once.
unsafe fn release_block<F>(block: NonNull<u8>) {
    match Shape::<F>::CLASS {
        // SAFETY: the block came from `pool::acquire(class)` in `push_slow` (same `F`, same
        // class) and the caller gives it up: released exactly once.
        Some(class) => unsafe { pool::release(class, block) },
        // SAFETY: the block was allocated in `push_slow` with `HEAP_LAYOUT`: freed once.
        None => unsafe { dealloc(block.as_ptr(), Shape::<F>::HEAP_LAYOUT) },
    }
}

/// # Safety
/// `slot` is the newest pending stub record of `chain`'s current segment, with a live `F`.
unsafe fn exit_stub<F: FnOnce()>(slot: *mut u8, chain: &Chain) {
    chain.cursor.set(stub_ptr(slot).cast());
    // SAFETY: pending stub record (unlinked just above; its bytes stay valid until overwritten
    // by a later registration, which cannot happen while the chain runs).
    let block = unsafe { stub_block(slot) };
    // SAFETY: the block holds a live `F` at its start (invariant 2); moved out once.
    let f = unsafe { block.cast::<F>().read() };
    // SAFETY: the closure was moved out; nothing else refers to the block.
    unsafe { release_block::<F>(block) };
    f();
}

/// # Safety
/// `slot` is the newest pending stub record of `chain`'s current segment, already spent.
unsafe fn exit_stub_spent<F>(slot: *mut u8, chain: &Chain) {
    chain.cursor.set(stub_ptr(slot).cast());
    // SAFETY: as in `exit_stub`.
    let block = unsafe { stub_block(slot) };
    // SAFETY: the closure was run or dropped through its handle; the block is released once.
    unsafe { release_block::<F>(block) };
}

/// # Safety
/// `slot` is a pending stub record of a live `F`; afterwards the closure counts as moved out.
unsafe fn call_stub<F: FnOnce()>(slot: *mut u8) {
    // SAFETY: pending stub record.
    let block = unsafe { stub_block(slot) };
    // SAFETY: live `F` at the block's start, read once (the record is marked spent).
    let f = unsafe { block.cast::<F>().read() };
    f();
}

/// # Safety
/// `slot` is a pending stub record of a live `F`; afterwards the closure counts as dropped.
unsafe fn drop_stub<F>(slot: *mut u8) {
    // SAFETY: pending stub record.
    let block = unsafe { stub_block(slot) };
    // SAFETY: live `F` at the block's start, dropped once (the record is marked spent).
    unsafe { ptr::drop_in_place(block.cast::<F>().as_ptr()) };
}

struct Thunks<F>(PhantomData<F>);

impl<F: FnOnce()> Thunks<F> {
    const INLINE: VTable = VTable {
        call: call_inline::<F>,
        drop: drop_inline::<F>,
        spent: exit_inline_spent::<F>,
    };
    const STUB: VTable = VTable {
        call: call_stub::<F>,
        drop: drop_stub::<F>,
        spent: exit_stub_spent::<F>,
    };
}

/// The chain. Not `Send`/`Sync` (raw pointers, `Cell`s): it belongs to one frame of one thread.
pub(super) struct Chain {
    cursor: Cell<*mut u8>,
    limit: Cell<*mut u8>,
    start: Cell<*mut u8>,
    /// Start of the inline buffer: the bottom segment.
    base: *mut u8,
    registered: Cell<u64>,
    /// Records in the inline buffer, fixed when the first pool segment starts (else `MAX`).
    inline_records: Cell<u64>,
    stub_pooled: Cell<u64>,
    stub_heap: Cell<u64>,
}

impl Chain {
    /// A chain whose first segment is `buf`.
    ///
    /// # Safety
    /// `buf` stays alive and unused by anything else until the chain is dropped, and the
    /// chain is run ([`Chain::run_all`] until it returns normally) before that.
    #[inline(always)]
    pub(super) unsafe fn new<const N: usize>(buf: *mut InlineBuf<N>) -> Chain {
        let base = buf.cast::<u8>();
        Chain {
            cursor: Cell::new(base),
            limit: Cell::new(base.wrapping_add(N & !(INLINE_ALIGN - 1))),
            start: Cell::new(base),
            base,
            registered: Cell::new(0),
            inline_records: Cell::new(u64::MAX),
            stub_pooled: Cell::new(0),
            stub_heap: Cell::new(0),
        }
    }

    /// Counts of this chain so far: (registered, pooled, heap).
    pub(super) fn counts(&self) -> (u64, u64, u64) {
        let registered = self.registered.get();
        let heap = self.stub_heap.get();
        let inline = match self.inline_records.get() {
            u64::MAX => registered - self.stub_pooled.get() - heap,
            n => n,
        };
        (registered, registered - inline - heap, heap)
    }

    /// Registers `f`; returns its record for handle operations.
    ///
    /// Lifetimes are erased here: the caller (the scope) guarantees that whatever `f` borrows
    /// outlives the moment the record is exited.
    #[inline(always)]
    pub(super) fn push<F: FnOnce()>(&self, f: F) -> Record {
        self.registered.set(self.registered.get() + 1);
        if Shape::<F>::ALIGN <= INLINE_ALIGN {
            let end = self.cursor.get().wrapping_add(Shape::<F>::RECORD);
            if end as usize <= self.limit.get() as usize {
                return self.write_record(f);
            }
        }
        self.push_slow(f)
    }

    /// Writes an in-segment record for `f` at `cursor`; the caller checked that it fits.
    #[inline(always)]
    fn write_record<F: FnOnce()>(&self, f: F) -> Record {
        let end = self.cursor.get().wrapping_add(Shape::<F>::RECORD);
        debug_assert!(end as usize <= self.limit.get() as usize);
        let slot = end.wrapping_sub(VT);
        // SAFETY: `[cursor, end)` lies in the current segment above every pending record
        // (invariant 1; the caller checked it against `limit`) and `cursor` is 8-aligned,
        // enough for `F`: the closure is written once into free memory.
        unsafe { data::<F>(slot).write(f) };
        // SAFETY: same free range; `slot` is 8-aligned (record sizes are multiples of 8).
        unsafe { slot.cast::<Exit>().write(exit_inline::<F>) };
        self.cursor.set(end);
        // SAFETY: `slot` is derived from a non-null segment pointer plus an offset.
        let slot = unsafe { NonNull::new_unchecked(slot) };
        Record {
            slot,
            vt: &Thunks::<F>::INLINE,
        }
    }

    /// Registers `f` when it does not fit the current segment, or needs its own block.
    #[inline(never)]
    fn push_slow<F: FnOnce()>(&self, f: F) -> Record {
        if Shape::<F>::IN_SEGMENT {
            self.new_segment();
            // Fits now (asserted at compile time: a segment holds any in-segment record).
            return self.write_record(f);
        }
        // Own block: pool class if one fits, else the heap.
        let block = match Shape::<F>::CLASS {
            Some(class) => pool::acquire(class),
            None => {
                let layout = Shape::<F>::HEAP_LAYOUT;
                // SAFETY: `layout` has a non-zero size (at least 1 byte).
                let raw = unsafe { alloc(layout) };
                NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(layout))
            }
        };
        // SAFETY: the block is owned by us, at least `size_of::<F>()` bytes and aligned to
        // `F` (pool blocks are 64-aligned and `class_of` checks the alignment; heap blocks use
        // `F`'s layout).
        unsafe { block.cast::<F>().write(f) };
        // The stub record: [block pointer][vt].
        let stub = 2 * VT;
        if self.cursor.get().wrapping_add(stub) as usize > self.limit.get() as usize {
            self.new_segment();
        }
        let cur = self.cursor.get();
        let slot = cur.wrapping_add(VT);
        // SAFETY: `[cur, cur + 16)` is free segment memory (checked above, or a fresh
        // segment), 8-aligned.
        unsafe { stub_ptr(slot).write(block) };
        // SAFETY: same free range.
        unsafe { slot.cast::<Exit>().write(exit_stub::<F>) };
        self.cursor.set(cur.wrapping_add(stub));
        let counter = if Shape::<F>::CLASS.is_some() {
            &self.stub_pooled
        } else {
            &self.stub_heap
        };
        counter.set(counter.get() + 1);
        // SAFETY: `slot` is a segment pointer plus an offset: non-null.
        let slot = unsafe { NonNull::new_unchecked(slot) };
        Record {
            slot,
            vt: &Thunks::<F>::STUB,
        }
    }

    /// Starts a new pool segment on top of the current one.
    fn new_segment(&self) {
        if self.start.get() == self.base {
            // Leaving the inline buffer, for good: registration never returns to it. Every
            // record so far but the current one (counted, not yet written) is in it.
            let stubs = self.stub_pooled.get() + self.stub_heap.get();
            self.inline_records.set(self.registered.get() - 1 - stubs);
        }
        let block = pool::acquire(SEG_CLASS).as_ptr();
        let hdr = SegHdr {
            prev_start: self.start.get(),
            prev_cursor: self.cursor.get(),
            prev_limit: self.limit.get(),
        };
        // SAFETY: the block is owned by us, 64-aligned and `CLASSES[SEG_CLASS]` bytes long.
        unsafe { block.cast::<SegHdr>().write(hdr) };
        let start = block.wrapping_add(SEG_HDR);
        self.start.set(start);
        self.cursor.set(start);
        self.limit.set(block.wrapping_add(pool::CLASSES[SEG_CLASS]));
    }

    /// At the bottom of the current segment: restores the previous one and releases this
    /// one's block. Returns `false` at the bottom of the inline buffer (the run is over).
    #[cold]
    fn pop_segment(&self) -> bool {
        let start = self.start.get();
        if start == self.base {
            return false;
        }
        let block = start.wrapping_sub(SEG_HDR);
        // SAFETY: a pool segment starts with the header written by `new_segment`.
        let hdr = unsafe { block.cast::<SegHdr>().read() };
        self.start.set(hdr.prev_start);
        self.cursor.set(hdr.prev_cursor);
        self.limit.set(hdr.prev_limit);
        let block = NonNull::new(block).expect("segment blocks are non-null");
        // SAFETY: the segment is empty (its records all exited) and no longer current: its
        // block from `pool::acquire(SEG_CLASS)` is released exactly once.
        unsafe { pool::release(SEG_CLASS, block) };
        true
    }

    /// Exits every pending record, newest first. If a deferred call panics, the panic
    /// propagates; the chain stays consistent, and calling `run_all` again resumes with the
    /// next record.
    #[inline]
    pub(super) fn run_all(&self) {
        loop {
            let cur = self.cursor.get();
            if cur == self.start.get() {
                if cur != self.base && self.pop_segment() {
                    continue;
                }
                return;
            }
            let slot = cur.wrapping_sub(VT);
            // SAFETY: `cur > start`, so the newest pending record ends at `cur` (invariant 1)
            // and its `exit` word is initialized.
            let exit = unsafe { slot.cast::<Exit>().read() };
            // SAFETY: `slot` is the newest pending record; `exit` matches its closure type and
            // storage (invariant 2) and unlinks it before running it (invariant 3).
            unsafe { exit(slot, self) };
        }
    }

    /// Drops the closure of `record` without running it (the record stays, spent).
    ///
    /// # Safety
    /// `record` is a pending record of this chain whose closure is live (a handle that was
    /// not consumed, and the chain has not been run yet).
    pub(super) unsafe fn cancel(&self, record: Record) {
        let slot = record.slot.as_ptr();
        // Mark spent first: even if the destructor panics, the closure is never dropped again.
        // SAFETY: the record is pending (caller contract): its `exit` word belongs to the
        // chain, is 8-aligned, and nobody else holds a reference to it.
        unsafe { slot.cast::<Exit>().write(record.vt.spent) };
        // SAFETY: the closure is live (caller contract), of the type and storage `vt` was made
        // for, and now marked spent: dropped exactly once.
        unsafe { (record.vt.drop)(slot) };
    }

    /// Runs the closure of `record` now (the record stays, spent).
    ///
    /// # Safety
    /// As for [`Chain::cancel`].
    pub(super) unsafe fn run_now(&self, record: Record) {
        let slot = record.slot.as_ptr();
        // SAFETY: as in `cancel`.
        unsafe { slot.cast::<Exit>().write(record.vt.spent) };
        // SAFETY: the closure is live (caller contract) and now marked spent: run exactly once.
        unsafe { (record.vt.call)(slot) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn with_chain<const N: usize>(f: impl FnOnce(&Chain)) {
        let mut buf = InlineBuf::<N>::new();
        // SAFETY: `buf` outlives the chain, and `f` is followed by a complete run.
        let chain = unsafe { Chain::new(&mut buf) };
        f(&chain);
        chain.run_all();
    }

    #[test]
    fn record_sizes() {
        assert_eq!(Shape::<()>::RECORD, 8);
        assert_eq!(Shape::<u8>::RECORD, 16);
        assert_eq!(Shape::<[u64; 3]>::RECORD, 32);
        const { assert!(Shape::<[u8; 504]>::IN_SEGMENT) };
        const { assert!(!Shape::<[u8; 505]>::IN_SEGMENT) };
        const { assert!(!Shape::<u128>::IN_SEGMENT || align_of::<u128>() <= 8) };
    }

    #[test]
    fn lifo_across_inline_segments_and_stubs_with_counts() {
        let log = RefCell::new(Vec::new());
        with_chain::<40>(|chain| {
            let l = &log;
            for i in 0..100usize {
                if i % 10 == 3 {
                    let big = [i as u8; 600];
                    chain.push(move || l.borrow_mut().push(big[0] as usize));
                } else {
                    chain.push(move || l.borrow_mut().push(i));
                }
            }
            // 40 bytes hold one 24-byte record (two words of captures plus `exit`); the rest
            // overflow: 89 into pool segments, 10 too large for one into their own blocks.
            let (registered, pooled, heap) = chain.counts();
            assert_eq!((registered, heap), (100, 0));
            assert_eq!(pooled, 100 - 1);
        });
        assert_eq!(*log.borrow(), (0..100).rev().collect::<Vec<_>>());
    }

    #[test]
    fn handle_operations_on_every_storage() {
        let log = RefCell::new(Vec::new());
        with_chain::<64>(|chain| {
            let l = &log;
            let a = chain.push(move || l.borrow_mut().push("inline"));
            let big = [0u8; 600];
            let b = chain.push(move || l.borrow_mut().push(["stub"][big[0] as usize]));
            let huge = [0u8; 5000];
            let c = chain.push(move || l.borrow_mut().push(["heap"][huge[0] as usize]));
            // SAFETY: each record is pending and live, and each is handled once.
            unsafe { chain.run_now(b) };
            // SAFETY: as above.
            unsafe { chain.cancel(c) };
            // SAFETY: as above.
            unsafe { chain.run_now(a) };
            assert_eq!(chain.counts(), (3, 1, 1));
        });
        assert_eq!(*log.borrow(), ["stub", "inline"]);
    }
}
