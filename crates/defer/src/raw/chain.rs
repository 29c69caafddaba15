//! The type-erased defer chain: a LIFO stack of records, bump-allocated in segments — the
//! caller's inline buffer first, then blocks from the thread-local pool. The stack grows
//! *downward*: each segment fills from its `top` towards its `floor`.
//!
//! A record is `[run: unsafe fn][size: usize][closure F, padded to a multiple of 8]`. Its
//! *slot* is its start, the address of the `run` word; `size` is the whole record's size,
//! stored negated (two's complement: the run loop's step is then a subtraction, for which
//! LLVM emits one `sub mem, reg`; for an addition it loaded the size into a new register and
//! added the cursor to it, one more instruction per record). The
//! other operations on a record (run now, cancel) are in a [`VTable`] that only the record's
//! handle carries. The newest record of the current segment is the one that starts at
//! `cursor`, so records need no links. The chain holds the cursor as `room`, its distance
//! from the segment's `floor`: registering subtracts the record's size from `room` (the
//! subtraction's borrow is the whole bounds check) and stores the record at `floor + room`
//! (one x86 addressing mode, no pointer to compute or copy). Running the chain walks a
//! local copy of `cursor` up by each record's `size` (one load: the walk's critical path is
//! short), calling each record's `run` with the record's start (the cursor before the step)
//! — the run functions never touch the chain, so the run loop keeps the cursor in a register.
//! A closure aligned to more than 8, or whose record is over `MAX_SEGMENT_RECORD` (512) bytes and
//! does not fit the inline buffer's free space (a large record goes inline only while the
//! chain is still in the inline buffer, never into a pool segment), is stored in its own pool
//! (or heap) block and represented in the segment by a 24-byte *stub* record whose "closure"
//! is the block pointer. So every large closure registered once the chain is in pool
//! segments takes exactly one block of its own, whatever room the current segment has left.
//!
//! A pool segment's block starts with a [`SegHdr`] remembering the previous segment's `top`,
//! `cursor` and `floor`; its records fill the rest of the block, down from the block's end
//! (the segment's `top`) to right above the header (its `floor`). When the run reaches a pool
//! segment's `top`, the previous segment is restored and the block goes back to the pool.
//!
//! Invariants of a [`Chain`]:
//! 1. `floor <= cursor <= top`, all 8-aligned, in the current segment; `[cursor, top)` is a
//!    sequence of pending records, newest first. The same holds for every saved segment. The
//!    chain holds the cursor as `room = cursor - floor`, the current segment's free bytes.
//! 2. A record's `run` matches the closure type and storage it was written with, and its
//!    `size` is the record's size (negated). While the closure is *live* (initialized, not moved out)
//!    `run` runs it; once it was run or dropped through a handle, `run` is the *spent*
//!    function of that type and storage, which never touches the closure again.
//! 3. `run` is called exactly once per record; the run loop first moves its cursor above
//!    the record (unlinking it) and only then calls it (with the record's start, whose bytes
//!    stay valid: nothing registers during a run). If the call unwinds, a drop guard
//!    stores that cursor into the chain, so the chain stays consistent and the next run
//!    resumes with the next record. While the run loop is active, the chain's `room` field
//!    is stale; nothing reads it then (no registration or handle can happen during a run).
//! 4. The inline buffer outlives the chain; pool segments and stub blocks are owned by the
//!    chain until released, exactly once, when the run passes them.
//! 5. A pool segment holds no record over `MAX_SEGMENT_RECORD` bytes (not needed for memory
//!    safety, but the statistics' promise: a large closure registered in pool segments takes
//!    a block of its own).

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::Cell;
use std::marker::PhantomData;
use std::mem::{align_of, size_of, MaybeUninit};
use std::ptr::{self, NonNull};

use super::pool;

pub(super) mod probes;

/// The `run` word of a record: runs the closure of the record starting at the last argument
/// if live (releasing a stub's block). That argument is the run loop's cursor before the step.
///
/// The record's address is the *fourth* argument, after three unused [`Pad`]s, so that it
/// arrives in a register the deferred call rarely needs (with today's rustc, whose own calling
/// convention is unspecified but passes these in integer registers as the C one does: rcx on
/// x86-64 System V, r9 on Windows x64, x3 on AArch64). Correctness does not depend on it. A run function loads the closure's captures and tail-calls
/// the closure, whose own call takes those captures in the first argument registers; with the
/// record's address in the first one, LLVM first moved it aside: one more instruction per
/// record (measured with `cargo bench -p frugal-defer -- --callgrind`: 13.0 → 12.0
/// instructions per defer in a loop of `move || cleanup(c, i)`). The pads cost nothing: an
/// uninitialized `MaybeUninit` argument makes the caller set no register.
type Run = unsafe fn(Pad, Pad, Pad, *mut u8);

/// An unused argument of a [`Run`] function (see there).
type Pad = MaybeUninit<usize>;

/// The value passed for a [`Pad`]: uninitialized, so no instruction produces it.
const PAD: Pad = MaybeUninit::uninit();

/// Size of one word of a record's head (`run`, then `size`).
const VT: usize = size_of::<Run>();
/// The record's head: `run` and `size`; the closure (or a stub's block pointer) follows.
const HEAD: usize = 2 * VT;
/// Records are 8-aligned; closures aligned to more go to their own block (stub record).
pub(super) const INLINE_ALIGN: usize = 8;
/// The pool class used for segments (2 KiB).
const SEG_CLASS: usize = 5;
/// Records up to this size go into pool segments; larger ones go inline if the inline buffer
/// has room (while the chain is still in it), else their closure gets its own block.
const MAX_SEGMENT_RECORD: usize = 512;

/// The header at the start of a pool segment's block: the previous segment's state.
/// Aligned to 8 so that its size is a multiple of 8 on 32-bit targets too (three 4-byte
/// pointers would leave the first record 4-aligned).
#[repr(C, align(8))]
struct SegHdr {
    prev_top: *mut u8,
    prev_cursor: *mut u8,
    prev_floor: *mut u8,
}

const SEG_HDR: usize = size_of::<SegHdr>();

const _: () = assert!(VT == size_of::<usize>());
const _: () = assert!(VT <= INLINE_ALIGN && INLINE_ALIGN % VT == 0);
const _: () = assert!(align_of::<Run>() <= INLINE_ALIGN && size_of::<usize>() == VT);
const _: () = assert!(SEG_HDR % INLINE_ALIGN == 0);
const _: () = assert!(pool::CLASSES[SEG_CLASS] % INLINE_ALIGN == 0);
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
    /// The `run` function to install once the closure was run or dropped.
    spent: Run,
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

    /// Drops the closure of the record without running it (the record stays, spent).
    ///
    /// # Safety
    /// The record is a pending record of a chain whose closure is live (a handle that was
    /// not consumed, and the chain has not been run yet).
    #[inline]
    pub(super) unsafe fn cancel(self) {
        probes::cancel();
        let slot = self.slot.as_ptr();
        // Mark spent first: even if the destructor panics, the closure is never dropped again.
        // SAFETY: the record is pending (caller contract): its `run` word belongs to the
        // chain, is 8-aligned, and nobody else holds a reference to it.
        unsafe { slot.cast::<Run>().write(self.vt.spent) };
        // SAFETY: the closure is live (caller contract), of the type and storage `vt` was made
        // for, and now marked spent: dropped exactly once.
        unsafe { (self.vt.drop)(slot) };
    }

    /// Runs the closure of the record now (the record stays, spent).
    ///
    /// # Safety
    /// As for [`Record::cancel`].
    #[inline]
    pub(super) unsafe fn run_now(self) {
        probes::run_now();
        let slot = self.slot.as_ptr();
        // SAFETY: as in `cancel`.
        unsafe { slot.cast::<Run>().write(self.vt.spent) };
        // SAFETY: the closure is live (caller contract) and now marked spent: run exactly once.
        unsafe { (self.vt.call)(slot) };
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
    const RECORD: usize = Self::SIZE8 + HEAD;
    /// May be stored in a pool segment. Else: inline if aligned to at most 8 and the inline
    /// buffer (still current) has room, or in its own block with a stub record.
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
    slot.wrapping_add(HEAD).cast::<F>()
}

/// Where the block pointer of stub record `slot` is.
#[inline(always)]
fn stub_ptr(slot: *mut u8) -> *mut NonNull<u8> {
    slot.wrapping_add(HEAD).cast::<NonNull<u8>>()
}

// ---- in-segment records ------------------------------------------------------------------

/// # Safety
/// `slot` is the start of an unlinked in-segment record with a live `F`.
unsafe fn exit_inline<F: FnOnce()>(_: Pad, _: Pad, _: Pad, slot: *mut u8) {
    // SAFETY: a live, initialized `F` follows the record's head (invariant 2); the record was
    // unlinked by the run loop, so this is the only read and the closure is moved out once.
    let f = unsafe { data::<F>(slot).read() };
    f();
}

/// # Safety
/// `slot` is the start of an unlinked in-segment record, already spent: nothing to do.
unsafe fn exit_inline_spent(_: Pad, _: Pad, _: Pad, _slot: *mut u8) {}

/// # Safety
/// `slot` is a pending in-segment record of a live `F`; afterwards the closure counts as moved.
unsafe fn call_inline<F: FnOnce()>(slot: *mut u8) {
    // SAFETY: a live `F` follows the head of record `slot`; the caller marked the record
    // spent, so it is read once.
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
    // SAFETY: a stub record stores an initialized block pointer right after its head.
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
/// `slot` is the start of an unlinked stub record with a live `F`.
unsafe fn exit_stub<F: FnOnce()>(_: Pad, _: Pad, _: Pad, slot: *mut u8) {
    // SAFETY: an unlinked stub record (its bytes stay valid until overwritten by a later
    // registration, which cannot happen while the chain runs) stores its block pointer
    // after its head.
    let block = unsafe { stub_ptr(slot).read() };
    // SAFETY: the block holds a live `F` at its start (invariant 2); moved out once.
    let f = unsafe { block.cast::<F>().read() };
    // SAFETY: the closure was moved out; nothing else refers to the block.
    unsafe { release_block::<F>(block) };
    f();
}

/// # Safety
/// `slot` is the start of an unlinked stub record, already spent.
unsafe fn exit_stub_spent<F>(_: Pad, _: Pad, _: Pad, slot: *mut u8) {
    // SAFETY: as in `exit_stub`.
    let block = unsafe { stub_ptr(slot).read() };
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
        spent: exit_inline_spent,
    };
    const STUB: VTable = VTable {
        call: call_stub::<F>,
        drop: drop_stub::<F>,
        spent: exit_stub_spent::<F>,
    };
}

/// Size of a stub record: `[run][size][block pointer]`, rounded up to 8 (12 bytes on 32-bit
/// targets would misalign the records below it).
const STUB_RECORD: usize = (VT + HEAD + INLINE_ALIGN - 1) & !(INLINE_ALIGN - 1);

const _: () = assert!(STUB_RECORD % INLINE_ALIGN == 0);

/// The chain. Not `Send`/`Sync` (raw pointers, `Cell`s): it belongs to one frame of one thread.
///
/// No function that is not inlined ever gets the chain's address: the slow paths take and
/// return its [`State`] by value, the run loop works on a local cursor, and handles carry
/// only their record. So when a scope and its body are inlined into one function, LLVM keeps
/// `room`, `floor` and the counters in registers (or folds them to constants).
pub(super) struct Chain {
    /// The cursor, as its distance from `floor`: the free bytes of the current segment.
    /// Registering subtracts the record's size, and the borrow of that subtraction is the
    /// whole bounds check; the record is then written at `floor + room`.
    room: Cell<usize>,
    /// The lowest address of the current segment: a record fits if it starts at or above it.
    floor: Cell<*mut u8>,
    /// Start of the inline buffer: the `floor` of the bottom segment.
    base: *mut u8,
    registered: Cell<u64>,
    /// The fields only slow paths touch, in a separate local (see [`Cold`]).
    cold: NonNull<Cold>,
}

/// The chain's fields that only the slow paths (new segment, stub record, end of a segment
/// in the run) touch. They live in a separate local of the function that opens the scope:
/// were they in the [`Chain`], LLVM would keep them in registers through a loop of
/// registrations along with `room`, `floor` and `registered`, and run out of registers.
pub(super) struct Cold {
    /// End of the current segment: where its oldest record ends (the cursor when it is empty).
    top: Cell<*mut u8>,
    /// Records in the inline buffer, fixed when the first pool segment starts (else `MAX`).
    inline_records: Cell<u64>,
    stub_pooled: Cell<u64>,
    stub_heap: Cell<u64>,
}

impl Cold {
    /// Fields for a new chain ([`Chain::new`] sets `top`).
    #[inline(always)]
    pub(super) const fn new() -> Cold {
        Cold {
            top: Cell::new(ptr::null_mut()),
            inline_records: Cell::new(u64::MAX),
            stub_pooled: Cell::new(0),
            stub_heap: Cell::new(0),
        }
    }
}

impl Chain {
    /// A chain whose first segment is `buf`, with its slow-path fields in `cold`.
    ///
    /// # Safety
    /// `buf` and `cold` stay alive and unused by anything else until the chain is dropped,
    /// and the chain is run ([`Chain::run_all`] until it returns normally) before that.
    #[inline(always)]
    pub(super) unsafe fn new<const N: usize>(buf: *mut InlineBuf<N>, cold: &Cold) -> Chain {
        let base = buf.cast::<u8>();
        let top = base.wrapping_add(N & !(INLINE_ALIGN - 1));
        cold.top.set(top);
        cold.inline_records.set(u64::MAX);
        cold.stub_pooled.set(0);
        cold.stub_heap.set(0);
        Chain {
            room: Cell::new(N & !(INLINE_ALIGN - 1)),
            floor: Cell::new(base),
            base,
            registered: Cell::new(0),
            cold: NonNull::from(cold),
        }
    }

    /// The slow-path fields.
    #[inline(always)]
    fn cold(&self) -> &Cold {
        // SAFETY: `cold` outlives the chain (contract of `Chain::new`) and is only accessed
        // through shared references to its `Cell`s.
        unsafe { self.cold.as_ref() }
    }

    /// The chain's hot fields as plain values (for the slow paths).
    #[inline(always)]
    fn state(&self) -> State {
        State {
            cursor: self.cursor(),
            floor: self.floor.get(),
            base: self.base,
            cold: self.cold,
        }
    }

    /// Stores what a slow path changed.
    #[inline(always)]
    fn set_state(&self, s: State) {
        debug_assert!(s.base == self.base && s.cold == self.cold);
        self.room.set(s.cursor as usize - s.floor as usize);
        self.floor.set(s.floor);
    }

    /// The cursor: where the newest record of the current segment starts.
    #[inline(always)]
    fn cursor(&self) -> *mut u8 {
        self.floor.get().wrapping_add(self.room.get())
    }

    /// A copy of this chain, to be run by a function that is not inlined (the cold panic
    /// path) without taking this chain's address; [`Chain::reattach`] takes its state back.
    /// This chain must not be used until then.
    #[inline(always)]
    pub(super) fn detach(&self) -> Chain {
        Chain {
            room: Cell::new(self.room.get()),
            floor: Cell::new(self.floor.get()),
            base: self.base,
            registered: Cell::new(self.registered.get()),
            cold: self.cold,
        }
    }

    /// Takes back the state of a copy made by [`Chain::detach`].
    #[inline(always)]
    pub(super) fn reattach(&self, copy: Chain) {
        self.set_state(copy.state());
    }

    /// Counts of this chain so far: (registered, pooled, heap).
    #[inline]
    pub(super) fn counts(&self) -> (u64, u64, u64) {
        let registered = self.registered.get();
        let cold = self.cold();
        let heap = cold.stub_heap.get();
        let inline = match cold.inline_records.get() {
            u64::MAX => registered - cold.stub_pooled.get() - heap,
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
        // A record over `MAX_SEGMENT_RECORD` bytes may go in the inline buffer (the caller
        // sized it), never in a pool segment: there, it gets its own block and a stub record.
        // `IN_SEGMENT` is a constant, so small closures pay nothing for the second test.
        // Subtract first and test the borrow: `sub` sets the flags, no separate compare.
        let (room, borrow) = self.room.get().overflowing_sub(Shape::<F>::RECORD);
        self.room.set(room);
        if Shape::<F>::ALIGN <= INLINE_ALIGN
            && (Shape::<F>::IN_SEGMENT || self.floor.get() == self.base)
            && !borrow
        {
            probes::register::<F, { probes::BUMP }>();
            let slot = self.floor.get().wrapping_add(room);
            // SAFETY: `[slot, slot + RECORD)` lies in the current segment's free bytes
            // `[floor, cursor)` (`room` did not underflow: invariant 1), now claimed by moving
            // the cursor down to `slot`.
            return unsafe { write_record(slot, f) };
        }
        // Undo the subtraction before anything can unwind (invariant 1), through `opaque`:
        // folded, it would keep the room from before the subtraction alive, a register copy
        // (or a separate compare) on the fast path.
        self.room.set(opaque(room).wrapping_add(Shape::<F>::RECORD));
        let (state, record) = push_slow(self.state(), f);
        self.set_state(state);
        record
    }

    /// Exits every pending record, newest first. If a deferred call panics, the panic
    /// propagates; the chain stays consistent, and calling `run_all` again resumes with the
    /// next record.
    #[inline(always)]
    pub(super) fn run_all(&self) {
        /// Stores the run loop's cursor back into the chain when the loop ends or unwinds.
        struct Unlinked<'a> {
            chain: &'a Chain,
            cursor: *mut u8,
        }
        impl Drop for Unlinked<'_> {
            #[inline(always)]
            fn drop(&mut self) {
                let floor = self.chain.floor.get();
                self.chain.room.set(self.cursor as usize - floor as usize);
            }
        }
        let base = self.base;
        let mut run = Unlinked {
            chain: self,
            cursor: self.cursor(),
        };
        loop {
            // Cached for the segment: nothing can register or pop a segment while a
            // deferred call runs (the scope cannot be reached from one).
            let top = self.cold().top.get();
            if run.cursor != top {
                loop {
                    let slot = run.cursor;
                    // SAFETY: `cursor != top`, so (invariant 1: `cursor <= top`, and `[cursor,
                    // top)` is a sequence of records) the newest pending record starts at `slot`
                    // (invariant 1) and its `run` word is initialized.
                    let exit = unsafe { slot.cast::<Run>().read() };
                    // SAFETY: likewise its `size` word, right after.
                    let neg_size = unsafe { slot.wrapping_add(VT).cast::<usize>().read() };
                    // Unlink first (invariant 3). A subtraction of the negated size: x86 can
                    // take the size from memory into the cursor's register (`sub mem, reg`).
                    run.cursor = slot.wrapping_sub(neg_size);
                    // SAFETY: `slot` is the start of the record just unlinked; `exit` matches
                    // its closure type and storage (invariant 2), called once for it. The
                    // record's bytes stay valid: nothing registers during a run.
                    unsafe { exit(PAD, PAD, PAD, slot) };
                    if run.cursor == top {
                        break;
                    }
                }
            }
            if self.floor.get() == base {
                return;
            }
            // SAFETY: `top` is the current segment's top, a pool segment (its floor is not
            // `base`), and every record in it has exited.
            let (prev_top, prev_cursor, prev_floor) = unsafe { pop_segment(top) };
            self.cold().top.set(prev_top);
            self.floor.set(prev_floor);
            run.cursor = prev_cursor;
        }
    }
}

/// `x`, hidden from the optimizer at no cost: an empty `asm!` block that "may change" the
/// register holding it (elsewhere, `black_box`: a store and a load).
#[inline(always)]
fn opaque(mut x: usize) -> usize {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    // SAFETY: the assembly is empty: it reads and writes nothing but `x`'s register, which it
    // leaves unchanged, touches no memory or stack and keeps the flags.
    unsafe {
        std::arch::asm!("/* {0} */", inout(reg) x, options(nomem, nostack, preserves_flags))
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        x = std::hint::black_box(x);
    }
    x
}

/// The chain's fields as plain values, passed to and returned from the slow paths by value.
#[derive(Clone, Copy)]
struct State {
    cursor: *mut u8,
    floor: *mut u8,
    base: *mut u8,
    cold: NonNull<Cold>,
}

impl State {
    /// The slow-path fields.
    fn cold(&self) -> &Cold {
        // SAFETY: as in `Chain::cold`: the state was taken from a live chain.
        unsafe { self.cold.as_ref() }
    }
}

/// Writes an in-segment record for `f` at `slot`.
///
/// # Safety
/// `[slot, slot + Shape::<F>::RECORD)` is free, 8-aligned memory of the chain's current
/// segment, at or above its `floor`, and the chain's cursor was (or will be) moved to `slot`.
#[inline(always)]
unsafe fn write_record<F: FnOnce()>(slot: *mut u8, f: F) -> Record {
    // SAFETY: `slot` starts free memory of the record's size (caller contract) and is
    // 8-aligned: the `run` word is written into free memory.
    unsafe { slot.cast::<Run>().write(exit_inline::<F>) };
    // SAFETY: same free range, the word after `run`.
    unsafe {
        slot.wrapping_add(VT)
            .cast::<usize>()
            .write(Shape::<F>::RECORD.wrapping_neg())
    };
    // SAFETY: same free range, after the head; 8-aligned, enough for `F` (only called when
    // `align_of::<F>() <= 8`): the closure is written once into free memory.
    unsafe { data::<F>(slot).write(f) };
    // SAFETY: `slot` lies inside a live allocation (the inline buffer or a pool block), so it
    // is not null.
    let slot = unsafe { NonNull::new_unchecked(slot) };
    Record {
        slot,
        vt: &Thunks::<F>::INLINE,
    }
}

/// Registers `f` when it does not fit the current segment, or needs its own block.
/// It takes nothing that changes at every registration but the cursor (no count: the
/// statistics' inline count is recounted from the inline buffer when leaving it), so that
/// the fast path keeps no extra value alive for it in a loop of registrations.
#[inline(never)]
fn push_slow<F: FnOnce()>(mut s: State, f: F) -> (State, Record) {
    if Shape::<F>::IN_SEGMENT {
        new_segment(&mut s);
        // Fits now (asserted at compile time: a segment holds any in-segment record).
        s.cursor = s.cursor.wrapping_sub(Shape::<F>::RECORD);
        debug_assert!(s.cursor as usize >= s.floor as usize);
        // SAFETY: a fresh segment has room for any in-segment record (compile-time assert
        // above), and the cursor was moved to its start.
        let record = unsafe { write_record(s.cursor, f) };
        probes::register::<F, { probes::NEW_SEGMENT }>();
        return (s, record);
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
    // The stub record: [run][size][block pointer].
    if (s.cursor as usize - s.floor as usize) < STUB_RECORD {
        new_segment(&mut s);
    }
    let slot = s.cursor.wrapping_sub(STUB_RECORD);
    // SAFETY: `[slot, slot + STUB_RECORD)` is free segment memory at or above the floor
    // (checked above, or a fresh segment), 8-aligned.
    unsafe { stub_ptr(slot).write(block) };
    // SAFETY: same free range.
    unsafe { slot.cast::<Run>().write(exit_stub::<F>) };
    // SAFETY: same free range, the word after `run`.
    unsafe {
        slot.wrapping_add(VT)
            .cast::<usize>()
            .write(STUB_RECORD.wrapping_neg())
    };
    s.cursor = slot;
    let cold = s.cold();
    let counter = if Shape::<F>::CLASS.is_some() {
        &cold.stub_pooled
    } else {
        &cold.stub_heap
    };
    counter.set(counter.get() + 1);
    probes::register_stub::<F>();
    // SAFETY: as in `write_record`: inside a live allocation, so not null.
    let slot = unsafe { NonNull::new_unchecked(slot) };
    let record = Record {
        slot,
        vt: &Thunks::<F>::STUB,
    };
    (s, record)
}

/// Starts a new pool segment, newer than the current one.
fn new_segment(s: &mut State) {
    let cold = s.cold();
    if s.floor == s.base {
        // Leaving the inline buffer, for good: registration never returns to it. Every
        // record so far (all stubs included) but the current one (not yet written) is in
        // it: count them, walking up from the cursor by their sizes.
        let top = cold.top.get();
        let mut records = 0u64;
        let mut cursor = s.cursor;
        while cursor != top {
            // SAFETY: `cursor != top`, so (invariant 1) a pending record of the inline buffer starts at
            // `cursor` (invariant 1) and its `size` word is initialized.
            let neg_size = unsafe { cursor.wrapping_add(VT).cast::<usize>().read() };
            cursor = cursor.wrapping_sub(neg_size);
            records += 1;
        }
        let stubs = cold.stub_pooled.get() + cold.stub_heap.get();
        cold.inline_records.set(records - stubs);
    }
    let block = pool::acquire(SEG_CLASS).as_ptr();
    let hdr = SegHdr {
        prev_top: cold.top.get(),
        prev_cursor: s.cursor,
        prev_floor: s.floor,
    };
    // SAFETY: the block is owned by us, 64-aligned and `CLASSES[SEG_CLASS]` bytes long.
    unsafe { block.cast::<SegHdr>().write(hdr) };
    let top = block.wrapping_add(pool::CLASSES[SEG_CLASS]);
    cold.top.set(top);
    s.cursor = top;
    s.floor = block.wrapping_add(SEG_HDR);
}

/// At the top of pool segment `top` (all its records exited): releases its block and
/// returns the previous segment's `(top, cursor, floor)`.
///
/// # Safety
/// `top` is the top of the chain's current segment, a pool segment, and all its records
/// have exited.
#[cold]
#[inline(never)]
unsafe fn pop_segment(top: *mut u8) -> (*mut u8, *mut u8, *mut u8) {
    let block = top.wrapping_sub(pool::CLASSES[SEG_CLASS]);
    // SAFETY: a pool segment's block starts with the header written by `new_segment`.
    let hdr = unsafe { block.cast::<SegHdr>().read() };
    let block = NonNull::new(block).expect("segment blocks are non-null");
    // SAFETY: the segment is empty (its records all exited, caller contract) and no longer
    // current: its block from `pool::acquire(SEG_CLASS)` is released exactly once.
    unsafe { pool::release(SEG_CLASS, block) };
    (hdr.prev_top, hdr.prev_cursor, hdr.prev_floor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn with_chain<const N: usize>(f: impl FnOnce(&Chain)) {
        let mut buf = InlineBuf::<N>::new();
        let cold = Cold::new();
        // SAFETY: `buf` and `cold` outlive the chain, and `f` is followed by a complete run.
        let chain = unsafe { Chain::new(&mut buf, &cold) };
        f(&chain);
        chain.run_all();
    }

    #[test]
    fn record_sizes() {
        assert_eq!(Shape::<()>::RECORD, HEAD);
        assert_eq!(Shape::<u8>::RECORD, HEAD + 8);
        assert_eq!(Shape::<[u64; 3]>::RECORD, HEAD + 24);
        const { assert!(Shape::<[u8; MAX_SEGMENT_RECORD - HEAD]>::IN_SEGMENT) };
        const { assert!(!Shape::<[u8; MAX_SEGMENT_RECORD - HEAD + 1]>::IN_SEGMENT) };
        assert_eq!(
            STUB_RECORD,
            if VT == 8 { 24 } else { 16 },
            "three words, rounded up to 8"
        );
        const { assert!(!Shape::<u128>::IN_SEGMENT || align_of::<u128>() <= 8) };
    }

    #[test]
    #[cfg(target_pointer_width = "64")] // sizes in bytes assume 8-byte words
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
            // 40 bytes hold one 32-byte record (two words of captures, `run`, `size`); the rest
            // overflow: 89 into pool segments, 10 too large for one into their own blocks.
            let (registered, pooled, heap) = chain.counts();
            assert_eq!((registered, heap), (100, 0));
            assert_eq!(pooled, 100 - 1);
        });
        assert_eq!(*log.borrow(), (0..100).rev().collect::<Vec<_>>());
    }

    /// Registers `n` 32-byte records (two words of captures, `run`, `size`) in a chain with an
    /// `N`-byte inline buffer, checking the counts after the first `check_at`; returns the
    /// counts at the end, after checking that all ran newest first.
    #[cfg(target_pointer_width = "64")]
    fn push_32s<const N: usize>(
        n: usize,
        check_at: usize,
        expect: (u64, u64, u64),
    ) -> (u64, u64, u64) {
        let log = RefCell::new(Vec::new());
        let mut end = (0, 0, 0);
        with_chain::<N>(|chain| {
            let l = &log;
            for i in 0..n {
                if i == check_at {
                    assert_eq!(chain.counts(), expect);
                }
                chain.push(move || l.borrow_mut().push(i));
            }
            end = chain.counts();
        });
        assert_eq!(*log.borrow(), (0..n).rev().collect::<Vec<_>>());
        end
    }

    #[test]
    #[cfg(target_pointer_width = "64")] // sizes in bytes assume 8-byte words
    fn exact_fit_uses_every_byte_then_overflows() {
        // Two 32-byte records fill the 64 bytes exactly (`room` reaches 0, no borrow); the
        // third borrows and starts a pool segment. 2024 bytes of records per segment: 63 of
        // 32 bytes; 68 overflowed, so two segments.
        assert_eq!(push_32s::<64>(70, 2, (2, 0, 0)), (70, 68, 0));
    }

    #[test]
    #[cfg(target_pointer_width = "64")] // sizes in bytes assume 8-byte words
    fn buffers_smaller_than_a_record_hold_nothing() {
        assert_eq!(push_32s::<0>(3, 0, (0, 0, 0)), (3, 3, 0));
        assert_eq!(push_32s::<8>(3, 0, (0, 0, 0)), (3, 3, 0));
        assert_eq!(push_32s::<15>(3, 0, (0, 0, 0)), (3, 3, 0));
        assert_eq!(push_32s::<31>(3, 0, (0, 0, 0)), (3, 3, 0));
    }

    #[test]
    #[cfg(target_pointer_width = "64")] // sizes in bytes assume 8-byte words
    fn capacity_rounds_down_to_whole_words() {
        // The inline buffer's top is rounded down to a whole word: 56 usable bytes of 61 hold
        // one 32-byte record, and the second already goes to a pool segment.
        assert_eq!(push_32s::<61>(5, 1, (1, 0, 0)), (5, 4, 0));
    }

    #[test]
    #[cfg(target_pointer_width = "64")] // sizes in bytes assume 8-byte words
    fn inline_count_excludes_stubs_written_inline() {
        let log = RefCell::new(Vec::new());
        with_chain::<128>(|chain| {
            let l = &log;
            // 32 + 24 + 24 + 32 bytes inline: two closures and two stubs (pooled, heap).
            chain.push(move || l.borrow_mut().push(0));
            let big = [1u8; 600];
            chain.push(move || l.borrow_mut().push(big[0] as usize));
            let huge = [2u8; 5000];
            chain.push(move || l.borrow_mut().push(huge[0] as usize));
            for i in 3..13usize {
                chain.push(move || l.borrow_mut().push(i));
            }
            // 13 registered: 2 inline, 1 heap, the rest (1 stub, 9 closures) pooled.
            assert_eq!(chain.counts(), (13, 10, 1));
        });
        assert_eq!(*log.borrow(), (0..13).rev().collect::<Vec<_>>());
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
            unsafe { b.run_now() };
            // SAFETY: as above.
            unsafe { c.cancel() };
            // SAFETY: as above.
            unsafe { a.run_now() };
            assert_eq!(chain.counts(), (3, 1, 1));
        });
        assert_eq!(*log.borrow(), ["stub", "inline"]);
    }
}
