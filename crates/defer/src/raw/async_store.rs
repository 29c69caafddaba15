//! Storage of an async scope's cleanups: type-erased records bump-allocated in an inline area
//! of the scope (reclaimed LIFO), and, once that is full, in blocks of their own (the
//! thread-local pool, else the heap) listed in an overflow vector whose allocation is recycled
//! per thread.
//!
//! A record is `[P][header]`: the record value `P` (a sync closure, or an async closure whose
//! future is later made in the same memory, plus its fallback), padded to a multiple of 16,
//! then a 16-byte [`Header`] holding the record type's *run function* and its [`VTable`]. The
//! header is at the record's end, so a LIFO walk finds the newest record's header at
//! `used - HDR`, and the run function — monomorphic per record type, so the closure's body is
//! inlined into it — is given the record's end, knows where the record starts (its *span*, a
//! multiple of 16, is a constant of the type) and returns the end of the next record to run:
//! the run loop is a load, a call and two compares per call, with no side table. An inline
//! run function goes on with the next older records itself while their header holds the same
//! run function ([`run_group`]): cleanups registered in a loop cost one call between them. A
//! sentinel header at the area's start ends every such group. A handle's index is the
//! record's end offset (or, for an overflow record, `N + 1 +` its position in the vector).
//!
//! The run function does the whole fresh path of its record: it moves the closure out, calls
//! it, writes the future it returns *in place* of the closure (the record reserves the larger
//! of the two), polls it and, when `Ready`, drops it and the unused fallback in place. Every
//! drop obligation on unwinding (the fallback, a constructed future) is a drop guard inside
//! that function, so a record whose run unwinds is left with nothing to drop: the caller only
//! unlinks it. Only a `Pending` result leaves state behind: the store's `top` says the newest
//! record is started.
//!
//! Records that may be handed to another task (`spawnable`: `'static`, no fallback) are
//! stored inline like the others while they are plain values; in a `Spawn`-policy scope their
//! run function makes the future in the scope's *run slot* instead, one pool block per scope
//! reused by every such cleanup (they run one at a time, alternating between two places in
//! it), which can be handed over with a started future in it.
//! On cancellation an unstarted spawnable record is moved out to a block of its own.
//!
//! Invariants of a [`Store`]:
//! 1. Once the area is opened (the first registration), `[0, HDR)` holds a sentinel header
//!    (see [`run_group`]) and `[HDR, used)` a sequence of records, oldest first, each with a
//!    header whose `vt` is its type's vtable (or that type's *dead* vtable, once its contents
//!    were dropped or moved out through a handle) and whose `run` is that vtable's run
//!    function for inline records. `used <= limit <= N`; `limit` is 0 until the first
//!    registration opens the area (and takes the scope's id), then `N` until a record went
//!    to the overflow vector, then 0 again, so that every later record goes there too:
//!    overflow records are all newer than inline ones (LIFO order across both is kept).
//! 2. Every overflow entry's block holds one record laid out as inline (`[P][header]` at the
//!    block's start), the block owned by the entry until released, exactly once.
//! 3. A record's contents are *fresh* (closure and fallback) until its run function or an
//!    operation of its vtable consumes them. Only the newest record may be *started* (its
//!    future made and polled): `top` says so, and where the future lives (in place, or in the
//!    run slot, the record's own memory then consumed). A record is started only where the
//!    store no longer moves: by the scope's `finish` on a pinned scope (which refuses `&mut`
//!    access from then on), by the scope's `Drop`, or in a block ([`Detached`]). Before that
//!    records are plain values and move with the store; `run_now` moves an unstarted future
//!    *out* of its record ([`Store::take_now`]) instead of starting it in place. So a started
//!    future is never moved, and is dropped in place (or leaked with the memory that holds
//!    it).
//! 4. Every record's contents are dropped exactly once (after running or not): by its run
//!    function or vtable operation (each leaves nothing to drop when it returns `Ready` or
//!    unwinds), by [`Taken`]'s drop, or by the store's own drop. A record is unlinked
//!    (`used` lowered past it, or its entry popped) only once its contents are gone or owned
//!    by a [`Taken`]/[`Detached`].
//! 5. A record whose vtable has [`SPAWN`] has a `'static` type, no fallback, and a pool class
//!    if it is inline: it may be handed, in a block, to another task ([`Detached`]).

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::{Cell, RefCell, UnsafeCell};
use std::future::Future;
use std::marker::{PhantomData, PhantomPinned};
use std::mem::{self, align_of, size_of, ManuallyDrop, MaybeUninit};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::task::{Context, Poll};

use super::pool;

/// The body's result as a result-aware cleanup sees it when it starts: a type-erased pointer
/// to the `Option<Result<T, E>>` that an `AsyncTryScope<T, E>`'s finish holds (`None` in the
/// option: the body panicked), or nothing (a plain scope, cancellation, `run_now`).
#[derive(Clone, Copy, Default)]
pub(crate) struct Outcome(Option<NonNull<()>>);

impl Outcome {
    /// No result to show.
    pub(crate) const NONE: Outcome = Outcome(None);

    /// Shows `value` to the cleanups about to start.
    pub(crate) fn of<R>(value: &mut Option<R>) -> Outcome {
        Outcome(Some(NonNull::from(value).cast()))
    }

    /// The result, if the body returned one.
    ///
    /// # Safety
    /// `self` was made by [`Outcome::of`] from an `Option<Result<T, E>>` that is still alive
    /// and not otherwise borrowed while the returned reference is used (or is
    /// [`Outcome::NONE`]).
    pub(crate) unsafe fn result<'a, T, E>(self) -> Option<&'a mut Result<T, E>> {
        let p = self.0?.cast::<Option<Result<T, E>>>();
        // SAFETY: the caller's contract: `p` is a live, unaliased `Option<Result<T, E>>`.
        unsafe { &mut *p.as_ptr() }.as_mut()
    }
}

// When a registration applies (the low bits of a vtable's flags, and records' `WHEN`).
/// Always.
pub(crate) const ALWAYS: u8 = 0;
/// Only if the scope failed.
pub(crate) const ON_ERROR: u8 = 1;
/// Only if the scope succeeded.
pub(crate) const ON_SUCCESS: u8 = 2;
/// The mask of the condition bits.
pub(crate) const WHEN: u8 = 3;
/// Flag: an async cleanup.
pub(crate) const ASYNC: u8 = 4;
/// Flag: an async cleanup with a sync fallback.
pub(crate) const FALLBACK: u8 = 8;
/// Flag: a spawnable record (invariant 5).
pub(crate) const SPAWN: u8 = 16;
/// Flag: a dead record (contents dropped or moved out through a handle).
const DEAD: u8 = 32;

/// A cleanup's future moved out of its record (by `run_now`).
pub(crate) type BoxedCleanup<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// What the run functions are given: the task context, the result to show, and what decides
/// conditional records.
pub(crate) struct RunArgs<'a, 'b> {
    /// The context of the scope's task.
    pub(crate) cx: &'a mut Context<'b>,
    /// What result-aware records are shown.
    pub(crate) outcome: Outcome,
    /// The body's value, for `failed` (shown or not).
    pub(crate) value: Outcome,
    /// A panic was recorded (the body's, or a cleanup's that ran before).
    pub(crate) any_panic: bool,
    /// Whether `value` counts as a failure, looked at when a conditional record runs (a
    /// `finally` may have rewritten it).
    pub(crate) failed: unsafe fn(Outcome) -> bool,
    /// The store's run slot (set by [`Store::run_fresh`]), or null: spawnable records start
    /// in place (the scope's policy is not `Spawn`).
    slot: *mut RunSlot,
    /// Set by an inline run function that returns a pending code or unwinds: the end of the
    /// record that is pending, or whose run unwound.
    stop: *mut u8,
    /// Set with `stop` when a record is pending: its step's code.
    pending: usize,
}

impl RunArgs<'_, '_> {
    /// Where a run function left a pending record, and its step's code.
    fn pending_at(&self) -> (*mut u8, usize) {
        (self.stop, self.pending)
    }

    /// Whether a record with condition `when` runs now.
    #[inline(always)]
    fn applies(&self, when: u8) -> bool {
        if when == ALWAYS {
            return true;
        }
        // SAFETY: `failed` was made for `value` (`run_fresh`'s contract).
        let failed = self.any_panic || unsafe { (self.failed)(self.value) };
        (when == ON_ERROR) == failed
    }
}

/// A record's step ([`SyncRec::one`], [`AsyncRec::one_in_place`], [`AsyncRec::one_in_slot`]):
/// its future is pending in place.
const PENDING_IN_PLACE: usize = 1;
/// A record's step: its future is pending in the run slot.
const PENDING_IN_SLOT: usize = 2;

/// A record's run function: given its end (right past its header), runs the fresh record (if
/// its condition applies; else drops it) and, once done (contents dropped), returns the end
/// of the next record to run (its own start; inline run functions may run several, see
/// [`run_group`]); or null once a future is pending, with the pending record's end in
/// `args.stop` and its step's code in `args.pending`.
///
/// # Safety
/// The record is a fresh one of the function's type that never moves from now on (invariant
/// 3); `args.slot` is the store's run slot.
type RunFn = unsafe fn(*mut u8, &mut RunArgs<'_, '_>) -> *mut u8;

/// The header at a record's end.
#[repr(C, align(16))]
struct Header {
    run: RunFn,
    vt: &'static VTable,
}

/// Size of a [`Header`].
const HDR: usize = 16;
/// Inline records are aligned to at most this (every span is a multiple of it).
const INLINE_ALIGN: usize = 16;
const _: () = assert!(size_of::<Header>() == HDR && align_of::<Header>() == INLINE_ALIGN);
const _: () = assert!(align_of::<Inline<0>>() == INLINE_ALIGN);
const _: () = assert!(pool::BLOCK_ALIGN >= INLINE_ALIGN);

/// The operations on one record type, written out per type (the `bytes` crate's pattern).
/// Each takes the record's start; every one that consumes the contents drops whatever is left
/// of them on unwinding.
pub(crate) struct VTable {
    /// The record's span: its size padded to 16, plus the header.
    span: usize,
    /// The layout of a block holding one record (`span` bytes, aligned to 16 or more).
    block: Layout,
    /// The pool class of such a block, if one is large enough.
    class: Option<usize>,
    /// `WHEN` bits and flags.
    flags: u8,
    /// The run function for inline records (a spawnable one starts in the run slot).
    run_inline: RunFn,
    /// The run function for records in blocks (always in place).
    run_block: RunFn,
    /// Sync: runs the closure (contents consumed). Async: makes the future in place, not
    /// polled (started; on unwinding, consumed).
    start: unsafe fn(*mut u8, Outcome),
    /// Polls the started future in place: `Ready` (then consumed), or `Pending` (still
    /// started). Sync records: `Ready`.
    poll: unsafe fn(*mut u8, &mut Context<'_>) -> Poll<()>,
    /// Drops the contents, fresh (`false`) or started (`true`).
    drop: unsafe fn(*mut u8, bool),
    /// Drops the closure or future (fresh or started) and runs the fallback.
    fallback: unsafe fn(*mut u8, bool),
    /// Fresh sync: runs the closure, `None`. Fresh async: moves the future out, boxed (the
    /// fallback dropped). Lifetime erased (see [`Store::take_now`]).
    take_boxed: unsafe fn(*mut u8) -> Option<BoxedCleanup<'static>>,
    /// This type's dead vtable (`None` for a dead one).
    dead: Option<&'static VTable>,
}

/// Layout facts of record type `P`.
struct Lay<P>(PhantomData<P>);

impl<P> Lay<P> {
    /// The record's bytes before its header.
    const BODY: usize = size_of::<P>().next_multiple_of(INLINE_ALIGN);
    const SPAN: usize = Self::BODY + HDR;
    const ALIGN: usize = if align_of::<P>() > INLINE_ALIGN {
        align_of::<P>()
    } else {
        INLINE_ALIGN
    };
    const BLOCK: Layout = match Layout::from_size_align(Self::SPAN, Self::ALIGN) {
        Ok(l) => l,
        Err(_) => panic!("a record's span and alignment form a layout"),
    };
    const CLASS: Option<usize> = pool::class_of(Self::SPAN, Self::ALIGN);
    /// May go in the inline area.
    const INLINE: bool = align_of::<P>() <= INLINE_ALIGN;
}

/// A record type: its vtables.
pub(crate) trait Record: Sized {
    /// The live vtable.
    const VT: &'static VTable;
}

/// Drops a `T` in place when dropped (disarmed with `mem::forget`): the unwinding path of the
/// run functions, free on the normal path.
struct DropInPlace<T>(*mut T);

impl<T> Drop for DropInPlace<T> {
    fn drop(&mut self) {
        // SAFETY: each guard is made over an initialized value that nothing else drops while
        // the guard is armed (see each use).
        unsafe { ptr::drop_in_place(self.0) };
    }
}

/// Runs the fresh inline record of type `P` ending at `end` with `one` (0: done, else a
/// pending code), then the next older ones while they are of the same type (their header
/// holds the same run function): the run loop's work without its indirect call and call
/// frame per record, for cleanups registered in a loop. Returns as a [`RunFn`] does. If a
/// record's run unwinds (its contents dropped by `one`), `a.stop` is set to its end.
///
/// A run function compared equal is the same machine code: if two record types' run
/// functions were merged, running one's record with the other's code does what its own would
/// (same code, so the same layout and span); a copy of the same function in another codegen
/// unit compares unequal, which only ends the group.
///
/// # Safety
/// As [`RunFn`], for an inline record of type `P` (below the oldest inline record is the
/// area's sentinel header, whose run function is no record's).
#[inline(always)]
unsafe fn run_group<P: Record>(
    end: *mut u8,
    a: &mut RunArgs<'_, '_>,
    one: impl Fn(*mut P, &mut RunArgs<'_, '_>) -> usize,
) -> *mut u8 {
    /// Reports the record whose run unwound (on unwinding only: forgotten otherwise).
    struct Progress {
        stop: *mut *mut u8,
        end: *mut u8,
    }
    impl Drop for Progress {
        #[inline]
        fn drop(&mut self) {
            // SAFETY: points into the caller's `RunArgs`, alive and not borrowed while this
            // runs (the borrow lent to `one` ended when it unwound).
            unsafe {
                *self.stop = self.end;
            }
        }
    }
    let args: *mut RunArgs<'_, '_> = a;
    let me = P::VT.run_inline;
    let mut p = Progress {
        // SAFETY: only the field's address is taken.
        stop: unsafe { ptr::addr_of_mut!((*args).stop) },
        end,
    };
    loop {
        let rec = p.end.wrapping_sub(Lay::<P>::SPAN);
        // SAFETY: `args` is the caller's `RunArgs`, lent to `one` for this call only.
        let code = one(rec.cast::<P>(), unsafe { &mut *args });
        if code != 0 {
            // SAFETY: as above (the call returned).
            unsafe {
                (*args).stop = p.end;
            }
            // SAFETY: as above.
            unsafe {
                (*args).pending = code;
            }
            mem::forget(p);
            return ptr::null_mut();
        }
        // SAFETY: `rec` is the end of an older inline record, whose header is intact
        // (invariant 1), or of the area's sentinel header (which ends the group).
        let run = unsafe { (*rec.wrapping_sub(HDR).cast::<Header>()).run };
        if !ptr::fn_addr_eq(run, me) {
            mem::forget(p);
            return rec;
        }
        p.end = rec;
    }
}

/// The run function of a dead record: nothing to run.
unsafe fn skip<P>(end: *mut u8, _: &mut RunArgs<'_, '_>) -> *mut u8 {
    end.wrapping_sub(Lay::<P>::SPAN)
}
unsafe fn skip_start(_: *mut u8, _: Outcome) {}
unsafe fn skip_poll(_: *mut u8, _: &mut Context<'_>) -> Poll<()> {
    Poll::Ready(())
}
unsafe fn skip_drop(_: *mut u8, _: bool) {}
unsafe fn skip_take(_: *mut u8) -> Option<BoxedCleanup<'static>> {
    None
}

/// The dead vtable of record type `P` (same span and layout, no contents).
struct DeadOf<P>(PhantomData<P>);

impl<P> DeadOf<P> {
    const VT: &'static VTable = &VTable {
        span: Lay::<P>::SPAN,
        block: Lay::<P>::BLOCK,
        class: Lay::<P>::CLASS,
        flags: DEAD,
        run_inline: skip::<P>,
        run_block: skip::<P>,
        start: skip_start,
        poll: skip_poll,
        drop: skip_drop,
        fallback: skip_drop,
        take_boxed: skip_take,
        dead: None,
    };
}

/// The run function of the area's sentinel header, below the oldest inline record: never
/// called (the run loop stops above it); its address ends [`run_group`]'s groups.
unsafe fn sentinel(_: *mut u8, _: &mut RunArgs<'_, '_>) -> *mut u8 {
    unreachable!("the run loop stops above the inline area's sentinel header")
}

/// The header at the start of an opened inline area (invariant 1).
const SENTINEL: Header = Header {
    run: sentinel,
    vt: DeadOf::<()>::VT,
};

// ------------------------------------------------------------------ sync records

/// A sync cleanup with condition `W`: the closure, given what the scope shows.
pub(crate) struct SyncRec<F, const W: u8>(F);

impl<F: FnOnce(Outcome) + Send, const W: u8> SyncRec<F, W> {
    pub(crate) fn new(f: F) -> Self {
        SyncRec(f)
    }

    /// Runs the fresh record at `rec` (or drops it, if its condition does not apply): 0.
    ///
    /// # Safety
    /// `rec` holds a fresh record of this type.
    #[inline(always)]
    unsafe fn one(rec: *mut Self, a: &mut RunArgs<'_, '_>) -> usize {
        if !a.applies(W) {
            // SAFETY: a fresh record (the caller's contract), dropped once, here.
            unsafe { ptr::drop_in_place(rec) };
            return 0;
        }
        // SAFETY: as above; the closure is moved out once, and consumed by the call (on
        // unwinding too), so nothing is left to drop.
        let f = unsafe { ptr::read(rec) }.0;
        f(a.outcome);
        0
    }

    /// [`RunFn`] for inline records of this type.
    unsafe fn run_inline(end: *mut u8, a: &mut RunArgs<'_, '_>) -> *mut u8 {
        let one = |rec, a: &mut RunArgs<'_, '_>| {
            // SAFETY: `run_group` gives each record of this type, fresh, once.
            unsafe { Self::one(rec, a) }
        };
        // SAFETY: forwarded (the caller's contract).
        unsafe { run_group::<Self>(end, a, one) }
    }

    /// [`RunFn`] for a record of this type in a block.
    unsafe fn run_block(end: *mut u8, a: &mut RunArgs<'_, '_>) -> *mut u8 {
        let rec = end.wrapping_sub(Lay::<Self>::SPAN);
        // SAFETY: forwarded (the caller's contract).
        unsafe { Self::one(rec.cast(), a) };
        rec
    }

    unsafe fn start(at: *mut u8, o: Outcome) {
        // SAFETY: `at` holds a fresh record (the vtable's contract): moved out once.
        let f = unsafe { ptr::read(at.cast::<Self>()) }.0;
        f(o);
    }

    unsafe fn drop(at: *mut u8, started: bool) {
        if !started {
            // SAFETY: a fresh record, dropped once (the vtable's contract).
            unsafe { ptr::drop_in_place(at.cast::<Self>()) };
        }
    }

    unsafe fn take_boxed(at: *mut u8) -> Option<BoxedCleanup<'static>> {
        // SAFETY: forwarded: a fresh record, consumed here.
        unsafe { Self::start(at, Outcome::NONE) };
        None
    }
}

impl<F: FnOnce(Outcome) + Send, const W: u8> Record for SyncRec<F, W> {
    const VT: &'static VTable = &VTable {
        span: Lay::<Self>::SPAN,
        block: Lay::<Self>::BLOCK,
        class: Lay::<Self>::CLASS,
        flags: W,
        run_inline: Self::run_inline,
        run_block: Self::run_block,
        start: Self::start,
        poll: skip_poll,
        drop: Self::drop,
        fallback: skip_drop,
        take_boxed: Self::take_boxed,
        dead: Some(DeadOf::<Self>::VT),
    };
}

// ------------------------------------------------------------------ async records

/// A sync fallback of an async record, or none.
pub(crate) trait Fallback: Send {
    /// There is a fallback.
    const SOME: bool;
    /// Runs it.
    fn run(self);
}

/// No fallback.
pub(crate) struct NoFallback;

impl Fallback for NoFallback {
    const SOME: bool = false;
    fn run(self) {}
}

/// A fallback closure.
pub(crate) struct WithFallback<G>(pub(crate) G);

impl<G: FnOnce() + Send> Fallback for WithFallback<G> {
    const SOME: bool = true;
    fn run(self) {
        (self.0)();
    }
}

/// The closure, then the future it made, in the same memory.
#[repr(C)]
union Body<F, Fut> {
    f: ManuallyDrop<F>,
    fut: ManuallyDrop<Fut>,
}

/// An async cleanup with condition `W`: `F` makes the future; `G` is the fallback; `S`: the
/// record is spawnable (invariant 5). `body` is first, at offset 0 (the run slot and
/// [`Detached`] rely on it). The future is structurally pinned (polled in place); `F` and
/// `G` are not (moved out to be called).
#[repr(C)]
pub(crate) struct AsyncRec<F, Fut, G, const W: u8, const S: bool> {
    body: Body<F, Fut>,
    g: ManuallyDrop<G>,
}

impl<F, Fut, G, const W: u8, const S: bool> AsyncRec<F, Fut, G, W, S>
where
    F: FnOnce(Outcome) -> Fut + Send,
    Fut: Future<Output = ()> + Send,
    G: Fallback,
{
    const NO_FALLBACK_IF_SPAWNABLE: () = assert!(!S || !G::SOME && size_of::<G>() == 0);

    /// The closure's place (not dereferenced).
    pub(crate) fn f(rec: *mut Self) -> *mut F {
        // The union's fields start at its start (`repr(C)`), `body` at the record's.
        rec.cast::<F>()
    }

    fn fut(rec: *mut Self) -> *mut Fut {
        rec.cast::<Fut>()
    }

    /// The fallback's place (not dereferenced).
    pub(crate) fn g(rec: *mut Self) -> *mut G {
        // SAFETY: only the field's address is computed; `rec` points to a record's memory
        // (every caller's).
        unsafe { ptr::addr_of_mut!((*rec).g) }.cast::<G>()
    }

    /// [`RunFn`] for an inline record started in place (not spawnable, or the scope's policy
    /// is not `Spawn`).
    unsafe fn run_inline(end: *mut u8, a: &mut RunArgs<'_, '_>) -> *mut u8 {
        let one = |rec, a: &mut RunArgs<'_, '_>| {
            // SAFETY: `run_group` gives each inline record of this type, fresh, once; inline
            // records do not move while running (the caller's contract).
            unsafe { Self::one_in_place(rec, a) }
        };
        // SAFETY: forwarded (the caller's contract).
        unsafe { run_group::<Self>(end, a, one) }
    }

    /// [`RunFn`] for a record in a block (started in place there).
    unsafe fn run_block(end: *mut u8, a: &mut RunArgs<'_, '_>) -> *mut u8 {
        let rec = end.wrapping_sub(Lay::<Self>::SPAN);
        // SAFETY: forwarded (the caller's contract).
        match unsafe { Self::one_in_place(rec.cast(), a) } {
            0 => rec,
            pending => {
                a.stop = end;
                a.pending = pending;
                ptr::null_mut()
            }
        }
    }

    /// Runs the fresh record at `rec` in place (or drops it, if its condition does not
    /// apply): 0 once done (its contents dropped), or [`PENDING_IN_PLACE`].
    ///
    /// # Safety
    /// `rec` holds a fresh record of this type that never moves from now on (invariant 3).
    #[inline(always)]
    unsafe fn one_in_place(rec: *mut Self, a: &mut RunArgs<'_, '_>) -> usize {
        // SAFETY: forwarded; the future is made where the closure was (the union).
        unsafe { Self::one_into(rec, rec, a, PENDING_IN_PLACE) }
    }

    /// The fresh path of the record at `rec`, its future made at `at` (`rec` itself, or a
    /// place of the run slot): runs it (or drops it, if its condition does not apply), 0 once
    /// done (its contents dropped), or `pending` once its future is pending at `at` (the
    /// closure consumed, the fallback left in `rec`).
    ///
    /// # Safety
    /// `rec` holds a fresh record of this type; `at` is `rec`, which never moves from now on
    /// (invariant 3), or one of the run slot's places (see [`RunSlot::places`]), free (no
    /// future is started in the block), with room for this type (its class) and 16-aligned,
    /// for a spawnable record (whose fallback is a no-op type, invariant 5).
    #[inline(always)]
    unsafe fn one_into(
        rec: *mut Self,
        at: *mut Self,
        a: &mut RunArgs<'_, '_>,
        pending: usize,
    ) -> usize {
        if !a.applies(W) {
            // SAFETY: a fresh record (the caller's contract): closure and fallback dropped once.
            unsafe { Self::drop(rec.cast(), false) };
            return 0;
        }
        // Drops the fallback if anything below unwinds.
        let g = DropInPlace(Self::g(rec));
        // SAFETY: the closure is fresh; moved out once (consumed by the call, on unwinding too).
        let f = unsafe { ptr::read(Self::f(rec)) };
        let fut = f(a.outcome);
        let p = Self::fut(at);
        // SAFETY: `at` is free (the closure's memory, vacated above, or a free place of the
        // slot's block) with room and alignment for `Fut` (the union's, or the class's).
        unsafe { p.write(fut) };
        // Drops the future in place if its poll unwinds (before `g` drops the fallback).
        let fg = DropInPlace(p);
        // SAFETY: the future stays where it is until dropped in place, or handed over with
        // the slot's block (invariant 3).
        let fut = unsafe { &mut *p };
        // SAFETY: see above: pinned where it is.
        let poll = unsafe { Pin::new_unchecked(fut) }.poll(a.cx);
        if poll.is_pending() {
            mem::forget(fg);
            mem::forget(g);
            return pending;
        }
        // Done: the future, then the unused fallback (still dropped if the first unwinds).
        drop(fg);
        drop(g);
        0
    }

    /// [`RunFn`] for an inline spawnable record: in the run slot if the scope has one (its
    /// policy is `Spawn`), else in place.
    unsafe fn run_spawnable(end: *mut u8, a: &mut RunArgs<'_, '_>) -> *mut u8 {
        if a.slot.is_null() {
            let one = |rec, a: &mut RunArgs<'_, '_>| {
                // SAFETY: as in `run_inline`.
                unsafe { Self::one_in_place(rec, a) }
            };
            // SAFETY: forwarded (the caller's contract).
            unsafe { run_group::<Self>(end, a, one) }
        } else {
            let class = const {
                match Lay::<Self>::CLASS {
                    Some(c) => c,
                    None => 0, // never used: such records go to blocks (`push`)
                }
            };
            // The slot's two places for this type, taken once for the group (the records run
            // one at a time in them), used alternately (see `RunSlot`).
            let slot = a.slot;
            // SAFETY: `a.slot` is the store's run slot (the caller's contract), not otherwise
            // borrowed during this call.
            let (first, second) = unsafe { &mut *slot }.places(class);
            // The place after `at` is `at`'s address xor this (one instruction per record).
            let flip = first.addr() ^ second.addr();
            let next = Cell::new(first.cast::<Self>());
            let one = |rec, a: &mut RunArgs<'_, '_>| {
                let at = next.get();
                // SAFETY: as in `run_inline`; `at` is one of the slot's places, free (the
                // records run one at a time, each done before the next), room and alignment
                // for this type.
                let code = unsafe { Self::one_in_slot(rec, at, a) };
                if code != 0 {
                    // SAFETY: as above (no other borrow of the slot is alive here).
                    unsafe { &mut *slot }.started_at(at.cast());
                }
                next.set(at.map_addr(|x| x ^ flip));
                code
            };
            // SAFETY: forwarded (the caller's contract).
            unsafe { run_group::<Self>(end, a, one) }
        }
    }

    /// The inline spawnable record's fresh path in the run slot: its future is made there.
    /// 0 once done, or [`PENDING_IN_SLOT`] (the record itself consumed either way).
    ///
    /// # Safety
    /// As [`one_into`](Self::one_into) with a place of the run slot.
    #[inline(always)]
    unsafe fn one_in_slot(rec: *mut Self, at: *mut Self, a: &mut RunArgs<'_, '_>) -> usize {
        // SAFETY: forwarded.
        unsafe { Self::one_into(rec, at, a, PENDING_IN_SLOT) }
    }

    unsafe fn start(at: *mut u8, o: Outcome) {
        let rec = at.cast::<Self>();
        let g = DropInPlace(Self::g(rec));
        // SAFETY: a fresh record (the vtable's contract): the closure is moved out once and
        // its future written in its place, as in `one_in_place`.
        let f = unsafe { ptr::read(Self::f(rec)) };
        let fut = f(o);
        // SAFETY: see `one_in_place`.
        unsafe { Self::fut(rec).write(fut) };
        mem::forget(g);
    }

    unsafe fn poll(at: *mut u8, cx: &mut Context<'_>) -> Poll<()> {
        let rec = at.cast::<Self>();
        let g = DropInPlace(Self::g(rec));
        let p = Self::fut(rec);
        let fg = DropInPlace(p);
        // SAFETY: a started record (the vtable's contract), whose future never moves.
        let fut = unsafe { &mut *p };
        // SAFETY: see above: pinned where it is.
        let poll = unsafe { Pin::new_unchecked(fut) }.poll(cx);
        if poll.is_pending() {
            mem::forget(fg);
            mem::forget(g);
            return Poll::Pending;
        }
        drop(fg);
        drop(g);
        Poll::Ready(())
    }

    unsafe fn drop(at: *mut u8, started: bool) {
        let rec = at.cast::<Self>();
        let _g = DropInPlace(Self::g(rec));
        if started {
            // SAFETY: a started record (the caller's word): its future, dropped once.
            unsafe { ptr::drop_in_place(Self::fut(rec)) };
        } else {
            // SAFETY: a fresh record: its closure, dropped once.
            unsafe { ptr::drop_in_place(Self::f(rec)) };
        }
    }

    unsafe fn fallback(at: *mut u8, started: bool) {
        let rec = at.cast::<Self>();
        {
            let _g = DropInPlace(Self::g(rec));
            if started {
                // SAFETY: as in `drop`.
                unsafe { ptr::drop_in_place(Self::fut(rec)) };
            } else {
                // SAFETY: as in `drop`.
                unsafe { ptr::drop_in_place(Self::f(rec)) };
            }
            mem::forget(_g);
        }
        // SAFETY: the fallback is still there (the guard was disarmed): moved out once.
        let g = unsafe { ptr::read(Self::g(rec)) };
        g.run();
    }

    unsafe fn take_boxed(at: *mut u8) -> Option<BoxedCleanup<'static>> {
        let rec = at.cast::<Self>();
        let _g = DropInPlace(Self::g(rec));
        // SAFETY: a fresh record: the closure is moved out once.
        let f = unsafe { ptr::read(Self::f(rec)) };
        let fut: BoxedCleanup<'_> = Box::pin(f(Outcome::NONE));
        // SAFETY: only the trait object's lifetime bound changes; `Store::take_now` gives it
        // back its own (`'env`) before anyone uses it.
        Some(unsafe { mem::transmute::<BoxedCleanup<'_>, BoxedCleanup<'static>>(fut) })
    }
}

impl<F, Fut, G, const W: u8, const S: bool> Record for AsyncRec<F, Fut, G, W, S>
where
    F: FnOnce(Outcome) -> Fut + Send,
    Fut: Future<Output = ()> + Send,
    G: Fallback,
{
    const VT: &'static VTable = &VTable {
        span: Lay::<Self>::SPAN,
        block: Lay::<Self>::BLOCK,
        class: Lay::<Self>::CLASS,
        flags: W | ASYNC | if G::SOME { FALLBACK } else { 0 } | if S { SPAWN } else { 0 },
        run_inline: if S {
            Self::run_spawnable
        } else {
            Self::run_inline
        },
        run_block: Self::run_block,
        start: Self::start,
        poll: Self::poll,
        drop: Self::drop,
        fallback: Self::fallback,
        take_boxed: Self::take_boxed,
        dead: Some(DeadOf::<Self>::VT),
    };
}

// ------------------------------------------------------------------ blocks

/// A block's pool class, or [`HEAP`].
const HEAP: u8 = u8::MAX;

/// Allocates a block for one record of `vt`'s type: (block, class).
fn alloc_block(vt: &VTable) -> (NonNull<u8>, u8) {
    match vt.class {
        Some(c) => (
            pool::acquire(c),
            u8::try_from(c).expect("pool classes are few"),
        ),
        None => {
            // SAFETY: `vt.block` has a non-zero size (it includes the header).
            let raw = unsafe { alloc(vt.block) };
            match NonNull::new(raw) {
                Some(b) => (b, HEAP),
                None => handle_alloc_error(vt.block),
            }
        }
    }
}

/// Releases a block from [`alloc_block`] (or the run slot's, of a pool class).
///
/// # Safety
/// `block` was allocated with this `class` (and `vt`'s layout, if [`HEAP`]), its record is
/// gone, and it is released once.
unsafe fn release(block: NonNull<u8>, class: u8, vt: &VTable) {
    if class == HEAP {
        // SAFETY: the caller's contract.
        unsafe { dealloc(block.as_ptr(), vt.block) };
    } else {
        // SAFETY: the caller's contract.
        unsafe { pool::release(usize::from(class), block) };
    }
}

/// The scope's run slot: one pool block in which spawnable records' futures are started (one
/// at a time), kept for the scope's life. The block has room for two futures, and
/// consecutive records alternate between the two places. Measured on this project's AMD EPYC
/// VM (`async-spawnable-loop-inl*` in the crate's bench), in A/B runs of one build: building
/// every future at one fixed address cost 1.1–1.3 ns more per cleanup than building it in
/// place in its record (8.3–8.5 against 7.1–7.3 ns, the same instructions), and alternating
/// two places brought it back to 7.1–7.3 (a second block did too, but its pool round trip
/// added ≈ 16 ns per scope). The effect is not stable across builds and processes (the
/// crate docs, "Step 8"): its cause is not known without a PMU, and alternation does not
/// remove it in every build. Records of the largest pool class use one place.
struct RunSlot {
    block: Option<NonNull<u8>>,
    /// The block's class (meaningful with a block).
    class: usize,
    /// Where in the block the started future is (meaningful when the store's `top` says
    /// `InSlot`).
    started: usize,
}

impl RunSlot {
    /// The two places for a record of `class`: the block's halves if it has room for two (it
    /// is taken so), else its start twice.
    #[inline(always)]
    fn places(&mut self, class: usize) -> (*mut u8, *mut u8) {
        let want = if class + 1 < pool::CLASSES.len() {
            class + 1
        } else {
            class
        };
        let b = match self.block {
            Some(b) if self.class >= want => b.as_ptr(),
            _ => self.grow(want),
        };
        if pool::CLASSES[self.class] >= 2 * pool::CLASSES[class] {
            // The second place starts a multiple of `BLOCK_ALIGN` in, with `CLASSES[class]`
            // bytes (the record's room) before the block's end.
            (b, b.wrapping_add(pool::CLASSES[class]))
        } else {
            (b, b)
        }
    }

    /// A future is pending at `at`, one of the places.
    fn started_at(&mut self, at: *mut u8) {
        let b = self.block.expect("the places are in the block");
        self.started = at.addr() - b.as_ptr().addr();
    }

    /// The started future (the store's `top` says `InSlot`).
    fn started(&self) -> *mut u8 {
        let b = self
            .block
            .expect("a future started in the slot has a block");
        b.as_ptr().wrapping_add(self.started)
    }

    #[cold]
    fn grow(&mut self, class: usize) -> *mut u8 {
        self.free();
        let b = pool::acquire(class);
        self.block = Some(b);
        self.class = class;
        b.as_ptr()
    }

    /// Gives the block back to the pool (no future may be started in it).
    #[inline]
    fn free(&mut self) {
        if let Some(b) = self.block.take() {
            // SAFETY: acquired with `self.class` in `grow`, empty, released once (taken).
            unsafe { pool::release(self.class, b) };
        }
    }
}

// ------------------------------------------------------------------ the store

/// Scope ids are taken by each thread in blocks of `2^ID_BITS` from a global block counter:
/// one atomic operation per `2^ID_BITS` scopes. Ids never repeat (a handle's scope check
/// depends on it: another scope's handle with an equal id would index into a store it does
/// not belong to): there are `2^(64 - ID_BITS)` blocks (17.6 × 10^12 — threads that each open
/// a scope, or a million scopes per block), and the counter panics rather than wrap.
const ID_BITS: u32 = 20;

thread_local! {
    /// The thread's next scope id (0: take a block first).
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
}

/// A new block's first id (its low `ID_BITS` bits 0).
fn take_block() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static BLOCKS: AtomicU64 = AtomicU64::new(1);
    // Relaxed: only uniqueness matters.
    let block = BLOCKS.fetch_add(1, Ordering::Relaxed);
    // The last block is not used: its ids would run up to 2^64.
    assert!(
        block < (1 << (64 - ID_BITS)) - 1,
        "frugal-defer: async scope ids are exhausted"
    );
    block << ID_BITS
}

/// A new scope id (never 0, never repeated).
fn next_id() -> u64 {
    NEXT_ID
        .try_with(|n| {
            let mut id = n.get();
            if id & ((1 << ID_BITS) - 1) == 0 {
                id = take_block();
            }
            n.set(id + 1);
            id + 1
        })
        // Thread-local storage is being torn down: a block of its own.
        .unwrap_or_else(|_| take_block() + 1)
}

/// The inline area. In an `UnsafeCell`: records are written through pointers taken from
/// `&Store` ([`Store::base`]), which is sound only for memory inside an `UnsafeCell` (a shared
/// borrow of plain memory is read-only under Rust's aliasing rules).
#[repr(C, align(16))]
struct Inline<const N: usize>(UnsafeCell<[MaybeUninit<u8>; N]>);

/// A record in a block of its own (overflow).
struct Entry {
    /// The block, which starts with the record.
    block: NonNull<u8>,
    /// The record's header, in the block.
    hdr: *mut Header,
    /// The block's pool class, or [`HEAP`].
    class: u8,
}

thread_local! {
    /// Recycled overflow vectors (empty, with their capacity): a scope takes one at its first
    /// overflow and gives it back when it ends, so steady state allocates nothing.
    static VECS: RefCell<Vec<Vec<Entry>>> = const { RefCell::new(Vec::new()) };
}

/// Recycled vectors kept per thread, and the largest capacity kept.
const MAX_VECS: usize = 64;
const MAX_VEC_CAPACITY: usize = 4096;

fn take_vec() -> Vec<Entry> {
    VECS.try_with(|v| v.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn give_vec(mut v: Vec<Entry>) {
    if v.capacity() == 0 || v.capacity() > MAX_VEC_CAPACITY {
        return;
    }
    v.clear();
    let _ = VECS.try_with(|vecs| {
        let mut vecs = vecs.borrow_mut();
        if vecs.len() < MAX_VECS {
            vecs.push(v);
        }
    });
}

/// How many records a store put where (for statistics).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Placed {
    pub(crate) inline: u64,
    pub(crate) pooled: u64,
    pub(crate) heap: u64,
}

/// Which record is started, and where its future is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Top {
    /// None is.
    Fresh,
    /// The newest record, in its own memory.
    InPlace,
    /// The newest record (inline, consumed); its future is in the run slot.
    InSlot,
}

/// The records of one async scope.
pub(crate) struct Store<'env, const N: usize> {
    inline: Inline<N>,
    used: usize,
    /// 0 until the first registration (which takes an id), then `N`, then 0 again once a
    /// record overflowed (invariant 1).
    limit: usize,
    /// The scope's id, for its handles (0 until the first registration).
    id: u64,
    top: Top,
    slot: RunSlot,
    overflow: Vec<Entry>,
    /// Counted when stored.
    placed: Placed,
    env: PhantomData<&'env mut &'env ()>,
    /// A started future may point into the store's own memory (the inline area): the store is
    /// `!Unpin`, so that a `&mut Store` taken while such a future is pending asserts no
    /// uniqueness over that memory (rustc then emits no `noalias` for it).
    _pinned: PhantomPinned,
}

// SAFETY: every record is `Send` (the bounds of `SyncRec::new`/`AsyncRec::new`'s callers,
// and of the `Record` impls), blocks are owned by the store alone, and the raw pointers in
// the store point into those blocks; so moving the store to another thread moves only `Send`
// data.
unsafe impl<const N: usize> Send for Store<'_, N> {}

/// Unlinks the record whose run unwound if the run loop unwinds (its run function dropped its
/// contents, and reported it in the arguments' `stop`), storing the count.
struct Cursor<'a, 'b, 'c> {
    base: *mut u8,
    args: *mut RunArgs<'b, 'c>,
    store_used: &'a mut usize,
}

impl Drop for Cursor<'_, '_, '_> {
    fn drop(&mut self) {
        // Only on unwinding (the loop forgets it otherwise). Inline run functions set `stop`
        // (and count the record) when a record's run unwinds.
        // SAFETY: the loop's `RunArgs`, alive, its borrow by the run function over.
        let stop = unsafe { (*self.args).stop };
        if stop.is_null() {
            // Every inline run function reports where it unwound (through `run_group`'s
            // guard); were one not to, which records it consumed would be unknown: leak the
            // rest of the area (never dropped, so never dropped twice) rather than guess.
            debug_assert!(false, "an inline run function reports where it unwound");
            *self.store_used = HDR;
            return;
        }
        let hdr = stop.wrapping_sub(HDR).cast::<Header>();
        // SAFETY: `stop` is the end of the record whose run unwound (invariant 1): its header
        // is intact (run functions touch only their records' contents).
        let span = unsafe { (*hdr).vt.span };
        *self.store_used = stop as usize - self.base as usize - span;
    }
}

impl<'env, const N: usize> Store<'env, N> {
    /// Inline offsets, and indexes past them, are kept in a `usize`.
    const FITS: () = assert!(N < usize::MAX / 2, "the inline area is too large");

    /// An empty store (allocates nothing).
    pub(crate) const fn new() -> Self {
        let () = Self::FITS;
        Store {
            inline: Inline(UnsafeCell::new([MaybeUninit::uninit(); N])),
            used: 0,
            limit: 0,
            id: 0,
            top: Top::Fresh,
            slot: RunSlot {
                block: None,
                class: 0,
                started: 0,
            },
            overflow: Vec::new(),
            placed: Placed {
                inline: 0,
                pooled: 0,
                heap: 0,
            },
            env: PhantomData,
            _pinned: PhantomPinned,
        }
    }

    /// The id of the scope, for its handles: 0 before the first registration, then unique
    /// among the scopes of the process.
    #[inline(always)]
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Where records were put.
    pub(crate) fn placed(&self) -> Placed {
        self.placed
    }

    /// Number of records (live or dead) not yet unlinked.
    pub(crate) fn len(&self) -> usize {
        let mut n = self.overflow.len();
        let mut used = self.used;
        while used > HDR {
            // SAFETY: a header of the inline records (invariant 1), read only.
            used -= unsafe { (*self.header(used)).vt.span };
            n += 1;
        }
        n
    }

    /// The inline area's start.
    #[inline(always)]
    fn base(&self) -> *mut u8 {
        // Through the `UnsafeCell`: writes through this pointer are allowed (see `Inline`).
        self.inline.0.get().cast::<u8>()
    }

    /// The header of the inline record ending at `end`.
    #[inline(always)]
    fn header(&self, end: usize) -> *mut Header {
        self.base().wrapping_add(end - HDR).cast::<Header>()
    }

    /// Stores `rec` as the newest record and returns its index. Inline if it fits (and, for
    /// a spawnable record, has a pool class), else in a block of its own.
    #[inline(always)]
    pub(crate) fn push<P: Record + 'env>(&mut self, rec: P) -> usize {
        let init = move |at: *mut P| {
            // SAFETY: `push_init` gives free memory of `P`'s size and alignment.
            unsafe { at.write(rec) }
        };
        // SAFETY: `init` initializes the record.
        unsafe { self.push_init(init) }
    }

    /// Stores an async record made of `f` and `g` (written in place, field by field: the
    /// union's free bytes are not copied).
    #[inline(always)]
    fn push_async<F, Fut, G, const W: u8, const S: bool>(&mut self, f: F, g: G) -> usize
    where
        F: FnOnce(Outcome) -> Fut + Send + 'env,
        Fut: Future<Output = ()> + Send + 'env,
        G: Fallback + 'env,
    {
        let () = AsyncRec::<F, Fut, G, W, S>::NO_FALLBACK_IF_SPAWNABLE;
        let init = move |at: *mut AsyncRec<F, Fut, G, W, S>| {
            // SAFETY: `push_init` gives free memory of the record's size and alignment; the
            // closure's place in it is aligned for it.
            unsafe { AsyncRec::f(at).write(f) };
            // SAFETY: as above, the fallback's place.
            unsafe { AsyncRec::g(at).write(g) };
        };
        // SAFETY: both fields written: the record is initialized (fresh).
        unsafe { self.push_init(init) }
    }

    /// Stores an async record with a fallback (not spawnable).
    #[inline(always)]
    pub(crate) fn push_with_fallback<F, Fut, G, const W: u8>(
        &mut self,
        f: F,
        g: WithFallback<G>,
    ) -> usize
    where
        F: FnOnce(Outcome) -> Fut + Send + 'env,
        Fut: Future<Output = ()> + Send + 'env,
        G: FnOnce() + Send + 'env,
    {
        self.push_async::<F, Fut, WithFallback<G>, W, false>(f, g)
    }

    /// Stores a spawnable async record (no fallback, `'static`: invariant 5).
    #[inline(always)]
    pub(crate) fn push_spawnable<F, Fut, const W: u8>(&mut self, f: F) -> usize
    where
        F: FnOnce(Outcome) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.push_async::<F, Fut, NoFallback, W, true>(f, NoFallback)
    }

    /// # Safety
    /// `init` initializes the record it is given (free memory of `P`'s size and alignment).
    #[inline(always)]
    unsafe fn push_init<P: Record + 'env>(&mut self, init: impl FnOnce(*mut P)) -> usize {
        let inline_ok =
            const { Lay::<P>::INLINE && (P::VT.flags & SPAWN == 0 || Lay::<P>::CLASS.is_some()) };
        let end = self.used + Lay::<P>::SPAN;
        if inline_ok && end <= self.limit {
            // SAFETY: it fits (checked); `init` is forwarded from the caller.
            unsafe { self.write_inline(init, end) };
            return end;
        }
        if self.id == 0 {
            // The first registration: the scope takes its id and opens the inline area.
            self.open();
            let end = self.used + Lay::<P>::SPAN;
            if inline_ok && end <= self.limit {
                // SAFETY: as above.
                unsafe { self.write_inline(init, end) };
                return end;
            }
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.push_slow(init) }
    }

    /// Writes the newest record inline, ending at `end`.
    ///
    /// # Safety
    /// `end <= limit` (so `<= N`), `end == used + span of P`, `P` may go inline; `init`
    /// initializes the record.
    #[inline(always)]
    unsafe fn write_inline<P: Record + 'env>(&mut self, init: impl FnOnce(*mut P), end: usize) {
        // `[used, end)` is free (invariant 1) and inside the area (the caller's word); `used`
        // is a multiple of 16 in a 16-aligned area, and `P` is aligned to at most 16
        // (`INLINE`); the header lands at `end - HDR`, 16-aligned.
        let at = self.base().wrapping_add(self.used);
        init(at.cast::<P>());
        let hdr = Header {
            run: P::VT.run_inline,
            vt: P::VT,
        };
        // SAFETY: as above.
        unsafe { at.wrapping_add(Lay::<P>::BODY).cast::<Header>().write(hdr) };
        self.used = end;
        self.placed.inline += 1;
    }

    /// Takes the scope's id and opens the inline area (the first registration).
    #[cold]
    #[inline(never)]
    fn open(&mut self) {
        self.id = next_id();
        if N >= 2 * HDR {
            // SAFETY: `[0, HDR)` of the area is free (nothing was stored yet), 16-aligned.
            unsafe { self.base().cast::<Header>().write(SENTINEL) };
            self.used = HDR;
            self.limit = N;
        }
    }

    /// [`push`](Self::push)'s slow path: a record in a block of its own (it does not fit,
    /// or the area overflowed before).
    ///
    /// # Safety
    /// As [`push_init`](Self::push_init).
    #[inline(never)]
    unsafe fn push_slow<P: Record + 'env>(&mut self, init: impl FnOnce(*mut P)) -> usize {
        if self.id == 0 {
            self.open();
        }
        let vt = P::VT;
        let (block, class) = alloc_block(vt);
        if class == HEAP {
            self.placed.heap += 1;
        } else {
            self.placed.pooled += 1;
        }
        let at = block.as_ptr();
        // A fresh block of `vt.block`'s layout at least (its class holds `span` bytes aligned
        // to `ALIGN`), owned by this record alone.
        init(at.cast::<P>());
        let hdr = Header {
            run: vt.run_block,
            vt,
        };
        // SAFETY: as above; the header's offset is 16-aligned.
        unsafe { at.wrapping_add(Lay::<P>::BODY).cast::<Header>().write(hdr) };
        if self.overflow.capacity() == 0 {
            self.overflow = take_vec();
        }
        self.overflow.push(Entry {
            block,
            hdr: at.wrapping_add(Lay::<P>::BODY).cast::<Header>(),
            class,
        });
        self.limit = 0;
        N + self.overflow.len()
    }

    /// The record at `index` (a value [`push`](Self::push) returned): its start and header.
    fn locate(&self, index: usize) -> Option<(*mut u8, *mut Header)> {
        if index <= N {
            if index <= HDR || index > self.used {
                return None;
            }
            let hdr = self.header(index);
            // SAFETY: an index is the end of an inline record of this store (the scope checks
            // the handle's scope id, and nothing is unlinked before the cleanups start, after
            // which handles cannot be used): a header is there (invariant 1).
            let span = unsafe { (*hdr).vt.span };
            Some((self.base().wrapping_add(index - span), hdr))
        } else {
            let e = self.overflow.get(index - N - 1)?;
            Some((e.block.as_ptr(), e.hdr))
        }
    }

    /// Marks the record of `hdr` dead; its live vtable, or `None` if it was dead already.
    fn mark_dead(hdr: *mut Header) -> Option<&'static VTable> {
        // SAFETY: `hdr` is a record's header (from `locate`), not otherwise borrowed.
        let h = unsafe { &mut *hdr };
        let vt = h.vt;
        let dead = vt.dead?;
        *h = Header {
            run: dead.run_inline,
            vt: dead,
        };
        Some(vt)
    }

    /// Drops the record at `index` without running it (marked dead first: a panicking
    /// destructor is not run twice; its memory is reclaimed when the scope ends).
    pub(crate) fn kill(&mut self, index: usize) {
        let Some((at, hdr)) = self.locate(index) else {
            return;
        };
        let Some(vt) = Self::mark_dead(hdr) else {
            return;
        };
        // SAFETY: the record was live and fresh (handles are used before anything starts)
        // and is now dead: its contents are dropped once (invariant 4).
        unsafe { (vt.drop)(at, false) };
    }

    /// For `run_now`: runs the live record at `index` if sync, or moves its future out if
    /// async, to be awaited by the caller wherever it is (the store may move meanwhile); the
    /// record is dead afterwards. A panic propagates, the record's contents dropped all the
    /// same.
    pub(crate) fn take_now(&mut self, index: usize) -> Option<BoxedCleanup<'env>> {
        let (at, hdr) = self.locate(index)?;
        let vt = Self::mark_dead(hdr)?;
        // SAFETY: as in `kill`: a fresh record, consumed once, now marked dead.
        let fut = unsafe { (vt.take_boxed)(at) }?;
        // SAFETY: only the trait object's lifetime bound changes, back to `'env`: the future
        // owns the closure's captures (moved out of the record), which are `'env`, and refers
        // to nothing in the record or the store.
        Some(unsafe { mem::transmute::<BoxedCleanup<'static>, BoxedCleanup<'env>>(fut) })
    }

    /// Whether the newest record is started (its future pending).
    #[inline]
    pub(crate) fn is_started(&self) -> bool {
        self.top != Top::Fresh
    }

    /// The started record's start (where its future is) and vtable.
    fn started(&self) -> (*mut u8, &'static VTable) {
        let newest = |s: &Self| match s.overflow.last() {
            // SAFETY: an entry's header (invariant 2).
            Some(e) => (e.block.as_ptr(), unsafe { (*e.hdr).vt }),
            None => {
                let hdr = s.header(s.used);
                // SAFETY: the newest inline record's header (invariant 1; one is started).
                let vt = unsafe { (*hdr).vt };
                (s.base().wrapping_add(s.used - vt.span), vt)
            }
        };
        match self.top {
            Top::InPlace => newest(self),
            Top::InSlot => {
                let (_, vt) = newest(self);
                (self.slot.started(), vt)
            }
            Top::Fresh => unreachable!("`started` is called with a started record"),
        }
    }

    /// Unlinks the newest record, whose contents are gone (the run slot's future too).
    fn unlink_top(&mut self) {
        self.top = Top::Fresh;
        if let Some(e) = self.overflow.pop() {
            // SAFETY: the entry's header (invariant 2).
            let vt = unsafe { (*e.hdr).vt };
            // SAFETY: its block is released once, its record's contents being gone (the
            // caller's word).
            unsafe { release(e.block, e.class, vt) };
        } else if self.used > HDR {
            // SAFETY: the newest inline record's header (invariant 1).
            self.used -= unsafe { (*self.header(self.used)).vt.span };
        }
    }

    /// Polls the started record again: `Ready` once it finished (then it is unlinked),
    /// `Pending` if it is still running. If its poll unwinds, it is unlinked (its contents
    /// dropped by the poll).
    pub(crate) fn resume(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let (at, vt) = self.started();
        let unlink = Unlink(self);
        // SAFETY: the started record's future, in place where it was started (invariant 3).
        let poll = unsafe { (vt.poll)(at, cx) };
        if poll.is_pending() {
            mem::forget(unlink);
        }
        poll
    }

    /// Drops the started record unfinished (its deadline passed, or something other than
    /// its poll panicked) and unlinks it.
    pub(crate) fn drop_started(&mut self) {
        let (at, vt) = self.started();
        let _unlink = Unlink(self);
        // SAFETY: the started record's contents, dropped once (it is unlinked right after,
        // on unwinding too).
        unsafe { (vt.drop)(at, true) };
    }

    /// The scope's fast path (`spawn`: the scope's policy is `Spawn`, so spawnable records
    /// start in the run slot): runs fresh records newest first, each by its run function and,
    /// once done, unlinked, until one is pending (`Pending`: it stays linked, started) or
    /// none is left (`Ready`). A record whose run unwinds is unlinked (its contents were
    /// dropped by the run function).
    ///
    /// # Safety
    /// `failed` may be called with `value` (it was made for that value's type, or ignores it),
    /// and `outcome` is what this store's result-aware records expect (that value, or
    /// nothing).
    #[inline]
    pub(crate) unsafe fn run_fresh(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Outcome,
        value: Outcome,
        any_panic: bool,
        failed: unsafe fn(Outcome) -> bool,
        spawn: bool,
    ) -> Poll<()> {
        debug_assert_eq!(self.top, Top::Fresh, "no record is started");
        let mut a = RunArgs {
            cx,
            outcome,
            value,
            any_panic,
            failed,
            slot: if spawn {
                &mut self.slot
            } else {
                ptr::null_mut()
            },
            stop: ptr::null_mut(),
            pending: 0,
        };
        // Overflow records first: they are the newest (invariant 1). Their run functions are
        // the block ones, which run one record and count nothing (counted when stored).
        while let Some(e) = self.overflow.last() {
            let hdr = e.hdr;
            let unlink = PopEntry(&mut self.overflow);
            // SAFETY: the entry's header (invariant 2).
            let run = unsafe { (*hdr).run };
            // SAFETY: a fresh record in its block (invariants 2, 3), whose run function is
            // the block one; `a.slot` is the store's.
            let next = unsafe { run(hdr.cast::<u8>().wrapping_add(HDR), &mut a) };
            if next.is_null() {
                mem::forget(unlink);
                self.top = Top::InPlace;
                return Poll::Pending;
            }
        }
        let base = self.base();
        // Above the sentinel header, if the area was opened (else `used` is 0, below it).
        let bottom = base.wrapping_add(HDR);
        let args: *mut RunArgs<'_, '_> = &mut a;
        let c = Cursor {
            base,
            args,
            store_used: &mut self.used,
        };
        let mut end = base.wrapping_add(*c.store_used);
        while end > bottom {
            // SAFETY: the newest fresh inline record's header (invariants 1, 3).
            let run = unsafe { (*end.wrapping_sub(HDR).cast::<Header>()).run };
            // SAFETY: its run function, on its record; the store does not move while running
            // (the caller's pinned scope); `args` is `a`, lent for this call only, whose `slot`
            // is the store's run slot (or null).
            // SAFETY: `args` is `a`, reached only through `args` from here on.
            let a = unsafe { &mut *args };
            // SAFETY: see above.
            let next = unsafe { run(end, a) };
            if next.is_null() {
                // SAFETY: `args` is `a` (reached only through `args` from here on).
                let (stop, code) = unsafe { (*args).pending_at() };
                *c.store_used = stop as usize - base as usize;
                mem::forget(c);
                self.top = if code == PENDING_IN_SLOT {
                    Top::InSlot
                } else {
                    Top::InPlace
                };
                return Poll::Pending;
            }
            end = next;
        }
        *c.store_used = end as usize - base as usize;
        mem::forget(c);
        Poll::Ready(())
    }

    /// Gives back the run slot's block (every record ran: nothing is started in it), so that
    /// the store's drop has nothing left to do.
    pub(crate) fn done(&mut self) {
        debug_assert!(self.used <= HDR && self.overflow.is_empty() && self.top == Top::Fresh);
        self.slot.free();
        if self.overflow.capacity() != 0 {
            give_vec(mem::take(&mut self.overflow));
        }
    }

    /// Unlinks the newest live record (releasing dead ones on the way) for the caller to
    /// dispose of; a started one comes with its future (and the run slot's block).
    pub(crate) fn pop(&mut self) -> Option<Taken<'_>> {
        loop {
            let state = if self.is_started() {
                State::Started
            } else {
                State::Fresh
            };
            if self.top == Top::InSlot {
                let (at, vt) = self.started();
                let class = u8::try_from(self.slot.class).expect("pool classes are few");
                let block = self.slot.block.take().expect("a started slot has a block");
                // The inline record itself was consumed when its future was made.
                self.unlink_top();
                return Some(Taken::new(at, vt, state, Some((block, class))));
            }
            self.top = Top::Fresh;
            let (at, vt, block) = if let Some(e) = self.overflow.pop() {
                // SAFETY: the entry's header (invariant 2).
                (
                    e.block.as_ptr(),
                    unsafe { (*e.hdr).vt },
                    Some((e.block, e.class)),
                )
            } else if self.used > HDR {
                // SAFETY: the newest inline record's header (invariant 1).
                let vt = unsafe { (*self.header(self.used)).vt };
                self.used -= vt.span;
                (self.base().wrapping_add(self.used), vt, None)
            } else {
                return None;
            };
            let t = Taken::new(at, vt, state, block);
            if vt.flags & DEAD == 0 {
                return Some(t);
            }
        }
    }
}

/// Unlinks the store's newest record when dropped (disarmed with `mem::forget`).
struct Unlink<'a, 'env, const N: usize>(&'a mut Store<'env, N>);

impl<const N: usize> Drop for Unlink<'_, '_, N> {
    fn drop(&mut self) {
        self.0.unlink_top();
    }
}

/// Pops the newest overflow entry and releases its block when dropped (disarmed with
/// `mem::forget`): its record's contents are gone.
struct PopEntry<'a>(&'a mut Vec<Entry>);

impl Drop for PopEntry<'_> {
    fn drop(&mut self) {
        if let Some(e) = self.0.pop() {
            // SAFETY: the entry's header (invariant 2).
            let vt = unsafe { (*e.hdr).vt };
            // SAFETY: the block is released once, its record's contents gone (the run
            // function finished or unwound).
            unsafe { release(e.block, e.class, vt) };
        }
    }
}

impl<const N: usize> Drop for Store<'_, N> {
    #[inline]
    fn drop(&mut self) {
        // The common case: everything ran, nothing overflowed, no run slot.
        if self.used > HDR
            || self.top != Top::Fresh
            || self.slot.block.is_some()
            || self.overflow.capacity() != 0
        {
            self.drop_slow();
        }
    }
}

impl<const N: usize> Store<'_, N> {
    #[cold]
    #[inline(never)]
    fn drop_slow(&mut self) {
        // The scope runs or disposes of every record before; this only catches what is left
        // after a panic in the scope's own code. Dropping a record may panic: the rest are
        // then leaked, not dropped twice (each is unlinked first).
        while let Some(t) = self.pop() {
            drop(t);
        }
        self.slot.free();
        give_vec(mem::take(&mut self.overflow));
    }
}

/// The state of a record's contents.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Fresh,
    Started,
    /// Consumed: nothing left to drop.
    Done,
}

/// A record unlinked from its store, to be disposed of (drop drops what is left of it and
/// releases its block). Borrows the store: inline records stay where they are.
pub(crate) struct Taken<'s> {
    at: *mut u8,
    vt: &'static VTable,
    state: State,
    /// The block the record (or its started future) is in, and its class.
    block: Option<(NonNull<u8>, u8)>,
    store: PhantomData<&'s mut ()>,
}

// SAFETY: the record is `Send` (see `Store`'s impl); `Taken` owns it exclusively (unlinked).
unsafe impl Send for Taken<'_> {}

impl Taken<'_> {
    fn new(
        at: *mut u8,
        vt: &'static VTable,
        state: State,
        block: Option<(NonNull<u8>, u8)>,
    ) -> Self {
        Taken {
            at,
            vt,
            state,
            block,
            store: PhantomData,
        }
    }

    /// The record's condition and flags ([`WHEN`], [`ASYNC`], [`FALLBACK`], [`SPAWN`]).
    pub(crate) fn flags(&self) -> u8 {
        self.vt.flags
    }

    /// Sync: runs it. Async: makes its future if fresh (not polled).
    pub(crate) fn start(&mut self) {
        if self.state == State::Fresh {
            self.state = State::Done;
            // SAFETY: fresh contents, consumed or started (on unwinding, consumed).
            unsafe { (self.vt.start)(self.at, Outcome::NONE) };
            if self.vt.flags & ASYNC != 0 {
                self.state = State::Started;
            }
        }
    }

    /// Polls the started future in place: `Ready` once done (then consumed).
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.state != State::Started {
            return Poll::Ready(());
        }
        self.state = State::Done;
        // SAFETY: a started record's future, polled in place (invariant 3); on unwinding or
        // `Ready`, consumed.
        let poll = unsafe { (self.vt.poll)(self.at, cx) };
        if poll.is_pending() {
            self.state = State::Started;
        }
        poll
    }

    /// Drops the closure or future and runs the fallback (an async record with one).
    pub(crate) fn fallback(&mut self) {
        let started = match mem::replace(&mut self.state, State::Done) {
            State::Fresh => false,
            State::Started => true,
            State::Done => return,
        };
        // SAFETY: the record's contents in that state, consumed once.
        unsafe { (self.vt.fallback)(self.at, started) };
    }

    /// Hands the record, in a block of its own, to a future that finishes it anywhere. The
    /// record back unless it is spawnable.
    pub(crate) fn detach(mut self) -> Result<Detached, Self> {
        if self.vt.flags & SPAWN == 0 || self.state == State::Done {
            return Err(self);
        }
        let (block, class, at) = match self.block.take() {
            // In its own block, or started in the run slot's (at one of its places).
            Some((block, class)) => (block, class, self.at),
            None => {
                // An inline spawnable record is fresh (it starts in the run slot): move it.
                debug_assert_eq!(self.state, State::Fresh);
                let (block, class) = alloc_block(self.vt);
                // SAFETY: a fresh record is a plain value (invariant 3): its bytes are moved
                // to a block of its type's layout, and the inline copy is forgotten (`Done`).
                unsafe {
                    ptr::copy_nonoverlapping(self.at, block.as_ptr(), self.vt.span - HDR);
                }
                (block, class, block.as_ptr())
            }
        };
        let d = Detached {
            block,
            at: NonNull::new(at).expect("a record's place in its block"),
            class,
            vt: self.vt,
            state: self.state,
        };
        self.state = State::Done;
        Ok(d)
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        let _release = self.block.map(|(b, c)| Release(b, c, self.vt));
        let started = match self.state {
            State::Fresh => false,
            State::Started => true,
            State::Done => return,
        };
        // SAFETY: the record's contents in that state, dropped once.
        unsafe { (self.vt.drop)(self.at, started) };
    }
}

/// Releases a block when dropped (on unwinding too).
struct Release(NonNull<u8>, u8, &'static VTable);

impl Drop for Release {
    fn drop(&mut self) {
        // SAFETY: the block of a record whose contents are gone, released once (its owner
        // made this guard in its own drop).
        unsafe { release(self.0, self.1, self.2) };
    }
}

/// An async cleanup handed over by a cancelled scope, with the block it lives in: a
/// `Send + 'static` future that starts the cleanup if it had not started, finishes it, then
/// drops it and frees its block. Dropping it unfinished drops the cleanup unfinished.
///
/// Spawners given to [`CancelPolicy::Spawn`](crate::CancelPolicy::Spawn) receive these.
pub struct Detached {
    /// The block.
    block: NonNull<u8>,
    /// The record (or its started future) in the block: its start, or the run slot's second
    /// place.
    at: NonNull<u8>,
    class: u8,
    vt: &'static VTable,
    state: State,
}

// SAFETY: the record is `Send + 'static` (only spawnable records are detached, invariant 5)
// and lives in a block that `Detached` owns exclusively.
unsafe impl Send for Detached {}

impl Future for Detached {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let at = self.at.as_ptr();
        if self.state == State::Fresh {
            self.state = State::Done;
            // SAFETY: fresh contents in the block, started in place (on unwinding, consumed).
            unsafe { (self.vt.start)(at, Outcome::NONE) };
            self.state = State::Started;
        }
        if self.state != State::Started {
            return Poll::Ready(());
        }
        self.state = State::Done;
        // SAFETY: the started future, in the block it never leaves until dropped there (the
        // block moves with `Detached`, the future inside it does not).
        let poll = unsafe { (self.vt.poll)(at, cx) };
        if poll.is_pending() {
            self.state = State::Started;
        }
        poll
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        let _release = Release(self.block, self.class, self.vt);
        let started = match self.state {
            State::Fresh => false,
            State::Started => true,
            State::Done => return,
        };
        // SAFETY: the contents in that state, dropped once.
        unsafe { (self.vt.drop)(self.at.as_ptr(), started) };
    }
}

impl std::fmt::Debug for Detached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detached").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scope ids are non-zero and never repeat, within a thread across its blocks and
    /// between threads.
    #[test]
    fn scope_ids_never_repeat() {
        let take = || {
            (0..(1u64 << ID_BITS) + 5)
                .map(|_| next_id())
                .collect::<Vec<u64>>()
        };
        let mine = take();
        let theirs = std::thread::spawn(take).join().unwrap();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "increasing in a thread"
        );
        let mut all: Vec<u64> = mine.iter().chain(&theirs).copied().collect();
        assert!(all.iter().all(|&id| id != 0));
        all.sort_unstable();
        let n = all.len();
        all.dedup();
        assert_eq!(all.len(), n, "no id twice");
    }

    /// The run slot's two places never overlap, each has its record's room inside the block
    /// and the block's alignment; the largest class has one place; a started future is found
    /// where it was started.
    #[test]
    fn run_slot_places_are_disjoint_and_inside_the_block() {
        for class in 0..pool::CLASSES.len() {
            let mut slot = RunSlot {
                block: None,
                class: 0,
                started: 0,
            };
            let (a, b) = slot.places(class);
            let block = slot.block.expect("a block was taken").as_ptr() as usize;
            let size = pool::CLASSES[slot.class];
            let room = pool::CLASSES[class];
            for p in [a as usize, b as usize] {
                assert!(p >= block && p + room <= block + size, "class {class}");
                assert_eq!(p % pool::BLOCK_ALIGN, 0);
            }
            if class + 1 < pool::CLASSES.len() {
                assert!(b as usize >= a as usize + room, "class {class}: disjoint");
            } else {
                assert_eq!(a, b, "the largest class has one place");
            }
            // Asking again (a smaller record) reuses the block.
            let before = slot.block;
            let _ = slot.places(0);
            assert_eq!(slot.block, before);
            slot.started_at(b);
            assert_eq!(slot.started(), b);
            slot.free();
            assert!(slot.block.is_none());
        }
    }
}
