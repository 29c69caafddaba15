//! Storage of an async scope's cleanups: type-erased records in an inline area of the scope
//! (bump-allocated, reclaimed LIFO) or in blocks of their own (the thread-local pool, else the
//! heap), listed newest last in a vector whose allocation is recycled per thread.
//!
//! Invariants of a [`Store`]:
//! 1. Every entry's `loc` holds an initialized record of the type its `as_dyn` was made for
//!    while `live`; a dead entry's record was dropped in place (its storage not yet released).
//! 2. Inline records lie in `[0, used)` of the inline area, in entry order: an entry's record
//!    starts at or after `prev_used`, the `used` before it was pushed. Popping the newest
//!    entry resets `used` to its `prev_used`.
//! 3. A record is started (its future created and polled in place) only where the store can
//!    no longer move: by the scope's `finish`, on a pinned scope (which refuses `&mut` access
//!    from then on), by the scope's `Drop`, or in a block ([`Detached`]). A record being run
//!    by `finish` stays linked until done, so that if `finish` is dropped or leaked midway the
//!    scope's `Drop` still finds it and disposes of it in place. Before that a record is an
//!    ordinary value and moves with the store; `run_now` moves an unstarted future *out* of
//!    its record ([`Store::take_now`]) instead of starting it in place. So a started future
//!    is never moved, and is dropped in place (or leaked with the memory that holds it).
//! 4. Every record is dropped in place exactly once (after running or not) and its block
//!    released exactly once: by [`Taken`]'s drop, by [`Store::kill`] plus the pop, or by the
//!    store's own drop.
//! 5. A record stored with `spawnable` has a `'static` type and lives in a block: it may be
//!    handed, block and all, to another task ([`Detached`]).

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::{self, align_of, size_of, MaybeUninit};
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

    /// Shows `value` to the cleanup about to start.
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

/// A type-erased cleanup: a sync closure, or an async one (a closure that makes a future).
pub(crate) trait Cleanup: Send {
    /// `true` for an async cleanup.
    fn is_async(&self) -> bool;
    /// Sync: runs the closure. Async: calls the closure and keeps its future (not polled yet).
    /// Either closure is given `outcome`. Does nothing the second time.
    fn start(self: Pin<&mut Self>, outcome: Outcome);
    /// Polls the started future (sync: `Ready`). `Ready` once done; the future is dropped then.
    fn poll_cleanup(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
    /// [`start`](Self::start) then [`poll_cleanup`](Self::poll_cleanup), in one call (the
    /// scope's fast path: a sync cleanup or an async one that completes at once costs one
    /// dynamic call).
    fn run(self: Pin<&mut Self>, outcome: Outcome, cx: &mut Context<'_>) -> Poll<()>;
    /// Drops the closure or future (unrun or half-run) and runs the fallback given at
    /// registration, if any; returns whether there was one.
    fn fallback(self: Pin<&mut Self>) -> bool;
    /// Sync: runs the closure, `None`. Async, not started: calls the closure and returns its
    /// future, boxed, to be run elsewhere (`None` if already started).
    fn take_boxed<'s>(self: Pin<&'s mut Self>) -> Option<BoxedCleanup<'s>>;
}

/// A cleanup's future moved out of its record (by `run_now`).
pub(crate) type BoxedCleanup<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A sync cleanup. `F` is not structurally pinned: it is moved out to be called.
pub(crate) struct SyncRec<F>(Option<F>);

impl<F> SyncRec<F> {
    pub(crate) fn new(f: F) -> Self {
        SyncRec(Some(f))
    }
}

impl<F: FnOnce(Outcome) + Send> Cleanup for SyncRec<F> {
    fn is_async(&self) -> bool {
        false
    }

    fn start(self: Pin<&mut Self>, outcome: Outcome) {
        // SAFETY: `F` is not structurally pinned (nothing ever gets a `Pin<&mut F>`), so
        // moving it out of the pinned record is fine.
        let this = unsafe { self.get_unchecked_mut() };
        if let Some(f) = this.0.take() {
            f(outcome);
        }
    }

    fn poll_cleanup(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }

    fn run(self: Pin<&mut Self>, outcome: Outcome, _cx: &mut Context<'_>) -> Poll<()> {
        self.start(outcome);
        Poll::Ready(())
    }

    fn fallback(self: Pin<&mut Self>) -> bool {
        false
    }

    fn take_boxed<'s>(self: Pin<&'s mut Self>) -> Option<BoxedCleanup<'s>> {
        self.start(Outcome::NONE);
        None
    }
}

/// The state of an async cleanup: its closure, then its future.
enum Slot<F, Fut> {
    Pending(F),
    Running(Fut),
    Done,
}

/// An async cleanup with an optional sync fallback `G` (run instead when the scope is cancelled).
/// `Fut` is structurally pinned (polled in place); `F` and `G` are not (moved out to be called).
pub(crate) struct AsyncRec<F, Fut, G> {
    slot: Slot<F, Fut>,
    fallback: Option<G>,
}

impl<F, Fut, G> AsyncRec<F, Fut, G> {
    pub(crate) fn new(f: F, fallback: Option<G>) -> Self {
        AsyncRec {
            slot: Slot::Pending(f),
            fallback,
        }
    }
}

impl<F, Fut, G> Cleanup for AsyncRec<F, Fut, G>
where
    F: FnOnce(Outcome) -> Fut + Send,
    Fut: Future<Output = ()> + Send,
    G: FnOnce() + Send,
{
    fn is_async(&self) -> bool {
        true
    }

    fn start(self: Pin<&mut Self>, outcome: Outcome) {
        // SAFETY: only `Running`'s future is structurally pinned, and it is not moved here: a
        // `Pending` closure is moved out (not pinned), and the new future is written in place.
        let this = unsafe { self.get_unchecked_mut() };
        if matches!(this.slot, Slot::Pending(_)) {
            let Slot::Pending(f) = mem::replace(&mut this.slot, Slot::Done) else {
                unreachable!("matched `Pending` just above")
            };
            this.slot = Slot::Running(f(outcome));
        }
    }

    fn poll_cleanup(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: the future is polled in place and never moved; assigning `Done` drops it in
        // place, which `Pin` allows.
        let this = unsafe { self.get_unchecked_mut() };
        let Slot::Running(fut) = &mut this.slot else {
            return Poll::Ready(());
        };
        // SAFETY: `fut` lives in the pinned record and stays there until dropped in place.
        let fut = unsafe { Pin::new_unchecked(fut) };
        match fut.poll(cx) {
            Poll::Ready(()) => {
                this.slot = Slot::Done;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    #[inline]
    fn run(mut self: Pin<&mut Self>, outcome: Outcome, cx: &mut Context<'_>) -> Poll<()> {
        self.as_mut().start(outcome);
        self.poll_cleanup(cx)
    }

    fn fallback(self: Pin<&mut Self>) -> bool {
        // SAFETY: as in `poll_cleanup`: the future is dropped in place, `G` is not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        this.slot = Slot::Done;
        match this.fallback.take() {
            Some(g) => {
                g();
                true
            }
            None => false,
        }
    }

    fn take_boxed<'s>(self: Pin<&'s mut Self>) -> Option<BoxedCleanup<'s>> {
        // SAFETY: only a `Pending` closure (not pinned) is moved out.
        let this = unsafe { self.get_unchecked_mut() };
        if !matches!(this.slot, Slot::Pending(_)) {
            return None;
        }
        let Slot::Pending(f) = mem::replace(&mut this.slot, Slot::Done) else {
            unreachable!("matched `Pending` just above")
        };
        Some(Box::pin(f(Outcome::NONE)))
    }
}

/// Turns a record's address into the trait object (per record type).
type AsDyn = fn(*mut u8) -> *mut (dyn Cleanup + 'static);

/// Only the pointer's type changes; callers dereference it under the store's invariants.
fn as_dyn<'a, P: Cleanup + 'a>(p: *mut u8) -> *mut (dyn Cleanup + 'a) {
    p.cast::<P>()
}

/// Where a record lives.
#[derive(Clone, Copy)]
enum Loc {
    /// At this offset of the inline area.
    Inline(usize),
    /// In a pool block of this class.
    Pool(usize, NonNull<u8>),
    /// In a heap block of this layout.
    Heap(Layout, NonNull<u8>),
}

/// One registered record.
pub(crate) struct Entry {
    loc: Loc,
    as_dyn: AsDyn,
    live: bool,
    spawnable: bool,
    /// `used` before this record was pushed.
    prev_used: usize,
    /// The caller's tag (when the cleanup applies).
    pub(crate) tag: u8,
}

/// The inline area.
#[repr(C, align(16))]
struct Inline<const N: usize>([MaybeUninit<u8>; N]);

/// Inline records are aligned to at most this; more strictly aligned ones get a block.
const INLINE_ALIGN: usize = 16;
const _: () = assert!(align_of::<Inline<0>>() == INLINE_ALIGN);

thread_local! {
    /// Recycled entry vectors (empty, with their capacity): a scope takes one at its first
    /// registration and gives it back when it ends, so steady state allocates nothing.
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

/// The records of one async scope.
pub(crate) struct Store<'env, const N: usize> {
    inline: Inline<N>,
    used: usize,
    entries: Vec<Entry>,
    placed: Placed,
    env: PhantomData<&'env mut &'env ()>,
}

// SAFETY: every record is `Cleanup: Send` (the trait's supertrait), blocks are owned by the
// store alone, and the raw pointers in entries point into the store or into those blocks; so
// moving the store to another thread moves only `Send` data.
unsafe impl<const N: usize> Send for Store<'_, N> {}

impl<'env, const N: usize> Store<'env, N> {
    /// An empty store (allocates nothing).
    pub(crate) const fn new() -> Self {
        Store {
            inline: Inline([MaybeUninit::uninit(); N]),
            used: 0,
            entries: Vec::new(),
            placed: Placed {
                inline: 0,
                pooled: 0,
                heap: 0,
            },
            env: PhantomData,
        }
    }

    /// Where records were put so far.
    pub(crate) fn placed(&self) -> Placed {
        self.placed
    }

    /// Number of entries (live or dead) not yet popped.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Stores `rec` as the newest record and returns its index. `inline_ok`: it may go in the
    /// inline area; `spawnable` requires `P: 'static` and puts it in a block.
    #[inline]
    pub(crate) fn push<P: Cleanup + 'env>(&mut self, rec: P, tag: u8) -> usize {
        self.push_impl(rec, tag, false)
    }

    /// Like [`push`](Self::push) for a `'static` record that may be detached to another task
    /// ([`Detached`]): it always gets a block of its own.
    pub(crate) fn push_spawnable<P: Cleanup + 'static>(&mut self, rec: P, tag: u8) -> usize {
        self.push_impl(rec, tag, true)
    }

    #[inline]
    fn push_impl<P: Cleanup + 'env>(&mut self, rec: P, tag: u8, spawnable: bool) -> usize {
        if self.entries.capacity() == 0 {
            self.entries = take_vec();
        }
        let (size, align) = (size_of::<P>(), align_of::<P>());
        let off = self.used.next_multiple_of(align);
        let loc = if !spawnable && align <= INLINE_ALIGN && off + size <= N {
            self.placed.inline += 1;
            Loc::Inline(off)
        } else if let Some(class) = pool::class_of(size, align) {
            self.placed.pooled += 1;
            Loc::Pool(class, pool::acquire(class))
        } else {
            self.placed.heap += 1;
            let layout = Layout::from_size_align(size.max(1), align)
                .expect("a value's size and alignment always form a layout");
            // SAFETY: `layout` has a non-zero size.
            let raw = unsafe { alloc(layout) };
            Loc::Heap(
                layout,
                NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(layout)),
            )
        };
        let prev_used = self.used;
        if let Loc::Inline(off) = loc {
            self.used = off + size;
        }
        let at = self.addr(loc);
        // SAFETY: `at` is free memory of at least `size` bytes aligned to `align`: inline,
        // `[off, off + size)` lies past every live inline record (invariant 2) and inside the
        // area (checked above, the area is 16-aligned); a block was just taken for it alone.
        unsafe { at.cast::<P>().write(rec) };
        let as_dyn: fn(*mut u8) -> *mut (dyn Cleanup + 'env) = as_dyn::<P>;
        // SAFETY: only the trait object's lifetime bound changes. Records are used only while
        // the store lives (invariant 4), and the store cannot outlive `'env` (it holds
        // `'env` and has drop glue that drops every record); spawnable records are `'static`.
        let as_dyn: AsDyn = unsafe {
            mem::transmute::<
                fn(*mut u8) -> *mut (dyn Cleanup + 'env),
                fn(*mut u8) -> *mut (dyn Cleanup + 'static),
            >(as_dyn)
        };
        self.entries.push(Entry {
            loc,
            as_dyn,
            live: true,
            spawnable,
            prev_used,
            tag,
        });
        self.entries.len() - 1
    }

    /// The address of a record's storage.
    #[inline]
    fn addr(&mut self, loc: Loc) -> *mut u8 {
        match loc {
            Loc::Inline(off) => self.inline.0.as_mut_ptr().cast::<u8>().wrapping_add(off),
            Loc::Pool(_, p) | Loc::Heap(_, p) => p.as_ptr(),
        }
    }

    /// The live record at `index`, pinned in place, with its tag.
    #[inline]
    pub(crate) fn get(&mut self, index: usize) -> Option<(Pin<&mut dyn Cleanup>, u8)> {
        let e = self.entries.get(index)?;
        if !e.live {
            return None;
        }
        let (loc, as_dyn, tag) = (e.loc, e.as_dyn, e.tag);
        let at = self.addr(loc);
        // SAFETY: a live entry holds an initialized record of `as_dyn`'s type (invariant 1),
        // borrowed mutably through `&mut self`.
        let rec = unsafe { &mut *as_dyn(at) };
        // SAFETY: records are never moved while started (invariant 3).
        Some((unsafe { Pin::new_unchecked(rec) }, tag))
    }

    /// Drops the record at `index` in place without running it (its storage is released
    /// when it is popped). Marked dead first: a panicking destructor is not run twice.
    pub(crate) fn kill(&mut self, index: usize) {
        let Some(e) = self.entries.get_mut(index) else {
            return;
        };
        if !mem::replace(&mut e.live, false) {
            return;
        }
        let (loc, as_dyn) = (e.loc, e.as_dyn);
        let at = self.addr(loc);
        // SAFETY: the record was live (invariant 1) and is now marked dead: dropped once.
        unsafe { ptr::drop_in_place(as_dyn(at)) };
    }

    /// For `run_now`: runs the live record at `index` if sync, or moves its future out if
    /// async (unstarted), to be awaited by the caller wherever it is (the store may move
    /// meanwhile); then drops what is left of the record. A panic propagates, the record
    /// dropped all the same.
    pub(crate) fn take_now(&mut self, index: usize) -> Option<BoxedCleanup<'env>> {
        struct Kill<'a, 'env, const N: usize>(&'a mut Store<'env, N>, usize);
        impl<const N: usize> Drop for Kill<'_, '_, N> {
            fn drop(&mut self) {
                self.0.kill(self.1);
            }
        }
        let k = Kill(self, index);
        let (rec, _) = k.0.get(index)?;
        let fut = rec.take_boxed()?;
        // SAFETY: only the trait object's lifetime changes, from the borrow of the record to
        // `'env`: the future owns the closure's captures (moved out of the record), which
        // are `'env`, and refers to nothing in the record or the store.
        let fut = unsafe { mem::transmute::<BoxedCleanup<'_>, BoxedCleanup<'env>>(fut) };
        drop(k);
        Some(fut)
    }

    /// The newest live record, pinned in place, with its tag (dead ones on the way are
    /// released). It stays linked while the caller runs it, so that if the caller is dropped
    /// or leaked midway, whoever disposes of the store next (the scope's `Drop`) finds it.
    #[inline]
    pub(crate) fn top(&mut self) -> Option<(Pin<&mut dyn Cleanup>, u8)> {
        loop {
            let e = self.entries.last()?;
            if e.live {
                let index = self.entries.len() - 1;
                return self.get(index);
            }
            let e = self.entries.pop().expect("`last` returned an entry");
            self.used = e.prev_used;
            release(e.loc);
        }
    }

    /// Unlinks and drops the newest record (after [`top`](Self::top) ran it, or to skip it).
    #[inline]
    pub(crate) fn drop_top(&mut self) {
        if let Some(t) = self.pop() {
            drop(t);
        }
    }

    /// Unlinks the newest live record (releasing dead ones on the way) for the caller to run.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Taken<'_>> {
        loop {
            let e = self.entries.pop()?;
            self.used = e.prev_used;
            let at = self.addr(e.loc);
            if e.live {
                return Some(Taken {
                    at,
                    loc: e.loc,
                    as_dyn: e.as_dyn,
                    spawnable: e.spawnable,
                    tag: e.tag,
                    store: PhantomData,
                });
            }
            release(e.loc);
        }
    }
}

impl<const N: usize> Drop for Store<'_, N> {
    fn drop(&mut self) {
        // The scope runs or disposes of every record before; this only catches what is left
        // after a panic in the scope's own code. Dropping a record may panic: the rest are
        // then leaked, not dropped twice (each is unlinked first).
        while let Some(t) = self.pop() {
            drop(t);
        }
        give_vec(mem::take(&mut self.entries));
    }
}

/// Releases a record's block (nothing for inline records).
#[inline]
fn release(loc: Loc) {
    match loc {
        Loc::Inline(_) => {}
        // SAFETY: the block came from `pool::acquire(class)` in `push_impl`, its record was
        // dropped or moved out, and the entry is gone: released once.
        Loc::Pool(class, p) => unsafe { pool::release(class, p) },
        // SAFETY: allocated with `layout` in `push_impl`; released once, as above.
        Loc::Heap(layout, p) => unsafe { dealloc(p.as_ptr(), layout) },
    }
}

/// A record unlinked from its store, to be run and then dropped (drop drops the record in
/// place and releases its block). Borrows the store: inline records stay where they are.
pub(crate) struct Taken<'s> {
    at: *mut u8,
    loc: Loc,
    as_dyn: AsDyn,
    spawnable: bool,
    /// The caller's tag given at registration.
    pub(crate) tag: u8,
    store: PhantomData<&'s mut ()>,
}

// SAFETY: the record is `Cleanup: Send`; `Taken` owns it exclusively (it was unlinked).
unsafe impl Send for Taken<'_> {}

impl Taken<'_> {
    /// The record, pinned in place.
    pub(crate) fn cleanup(&mut self) -> Pin<&mut dyn Cleanup> {
        // SAFETY: an unlinked live record (invariant 1), owned by `self` until it is dropped.
        let rec = unsafe { &mut *(self.as_dyn)(self.at) };
        // SAFETY: the record is never moved (invariant 3) until dropped in place by `Drop`.
        unsafe { Pin::new_unchecked(rec) }
    }

    /// `true` if the record may be handed to another task with [`Taken::detach`].
    pub(crate) fn spawnable(&self) -> bool {
        self.spawnable
    }

    /// Hands the record, with its block, to a future that finishes it anywhere. `None` (the
    /// record back) unless [`spawnable`](Self::spawnable).
    pub(crate) fn detach(self) -> Result<Detached, Self> {
        if !self.spawnable {
            return Err(self);
        }
        let d = Detached {
            at: self.at,
            loc: self.loc,
            as_dyn: self.as_dyn,
        };
        mem::forget(self);
        Ok(d)
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        // Release the block even if the record's destructor panics.
        struct Release(Loc);
        impl Drop for Release {
            fn drop(&mut self) {
                release(self.0);
            }
        }
        let _release = Release(self.loc);
        // SAFETY: the record is initialized and owned by `self` (invariant 1); dropped once.
        unsafe { ptr::drop_in_place((self.as_dyn)(self.at)) };
    }
}

/// An async cleanup handed over by a cancelled scope, with the block it lives in: a
/// `Send + 'static` future that starts the cleanup if it had not started, finishes it, then
/// drops it and frees its block. Dropping it unfinished drops the cleanup unfinished.
///
/// Spawners given to [`CancelPolicy::Spawn`](crate::CancelPolicy::Spawn) receive these.
pub struct Detached {
    at: *mut u8,
    loc: Loc,
    as_dyn: AsDyn,
}

// SAFETY: the record is `Cleanup: Send + 'static` (only spawnable records are detached,
// invariant 5) and lives in a block that `Detached` owns exclusively.
unsafe impl Send for Detached {}

impl Future for Detached {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: the record is initialized and owned by `self`, in a block that does not move.
        let rec = unsafe { &mut *(self.as_dyn)(self.at) };
        // SAFETY: the record stays in its block until dropped in place by `Detached`'s drop.
        let mut rec = unsafe { Pin::new_unchecked(rec) };
        rec.as_mut().start(Outcome::NONE);
        rec.poll_cleanup(cx)
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        let t = Taken {
            at: self.at,
            loc: self.loc,
            as_dyn: self.as_dyn,
            spawnable: true,
            tag: 0,
            store: PhantomData,
        };
        drop(t);
    }
}

impl std::fmt::Debug for Detached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detached").finish_non_exhaustive()
    }
}
