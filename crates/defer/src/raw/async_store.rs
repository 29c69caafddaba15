//! Storage of an async scope's cleanups: type-erased records in an inline area of the scope
//! (bump-allocated, reclaimed LIFO) or in blocks of their own (the thread-local pool, else the
//! heap), listed newest last in a vector whose allocation is recycled per thread.
//!
//! Invariants of a [`Store`]:
//! 1. Every entry's `loc` holds an initialized record of the type its `as_dyn` was made for
//!    while `live`; a dead entry's record was dropped in place (its storage not yet released).
//! 2. Inline records lie in `[0, used)` of the inline area, in entry order. Entries are
//!    popped only once no record can be pushed any more (by `finish`, which marks the scope
//!    started, or by drop), so popping leaves `used` as it is.
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

/// The operations on one record type, written out per type (the `bytes` crate's pattern): the
/// scope's hot path — start, poll and, once done, drop a record — is one indirect call, with
/// no trait object to build; everything else goes through [`as_dyn`](VTable::as_dyn).
pub(crate) struct VTable {
    /// Starts the record if fresh and polls it (see [`run_rec`]); once `Ready`, it is dropped
    /// in place and its entry's `live` flag cleared.
    run: unsafe fn(*mut u8, Outcome, &mut Context<'_>, &mut bool) -> Poll<()>,
    /// Drops the record in place.
    drop: unsafe fn(*mut u8),
    /// The record as a trait object (lifetime erased; see `push_impl`).
    as_dyn: unsafe fn(*mut u8) -> *mut (dyn Cleanup + 'static),
    /// The record's layout, its size at least 1 (that of its heap block, if it has one).
    layout: Layout,
}

/// The [`VTable`] of record type `P`.
struct VTableOf<P>(PhantomData<P>);

impl<P: Cleanup> VTableOf<P> {
    const VT: &'static VTable = &VTable {
        run: run_rec::<P>,
        drop: drop_rec::<P>,
        as_dyn: as_dyn::<P>,
        layout: match Layout::from_size_align(
            if size_of::<P>() == 0 {
                1
            } else {
                size_of::<P>()
            },
            align_of::<P>(),
        ) {
            Ok(l) => l,
            Err(_) => panic!("a type's size and alignment always form a layout"),
        },
    };
}

/// [`VTable::run`] for `P`.
///
/// # Safety
/// `at` holds a live `P` that is never moved from now on (invariants 1 and 3), and `live` is
/// its entry's flag, not otherwise borrowed.
unsafe fn run_rec<P: Cleanup>(
    at: *mut u8,
    outcome: Outcome,
    cx: &mut Context<'_>,
    live: &mut bool,
) -> Poll<()> {
    let p = at.cast::<P>();
    // SAFETY: the caller's contract: `p` is a live `P`, borrowed by nothing else.
    let rec = unsafe { &mut *p };
    // SAFETY: the record is never moved once started (invariant 3).
    let rec = unsafe { Pin::new_unchecked(rec) };
    let poll = rec.run(outcome, cx);
    if poll.is_ready() {
        // Marked dead first: if its destructor panics, it is not dropped a second time.
        *live = false;
        // SAFETY: it was live until just now and is marked dead: dropped once (invariant 4).
        unsafe { ptr::drop_in_place(p) };
    }
    poll
}

/// [`VTable::drop`] for `P`.
///
/// # Safety
/// `at` holds a live `P`, which the caller treats as dead from now on.
unsafe fn drop_rec<P: Cleanup>(at: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { ptr::drop_in_place(at.cast::<P>()) };
}

/// [`VTable::as_dyn`] for `P`: only the pointer's type changes.
///
/// # Safety
/// The returned pointer is used only while the record lives and, unless `P: 'static`, while
/// the store that holds it lives (records of a `Store<'env, _>` are `'env`).
unsafe fn as_dyn<'a, P: Cleanup + 'a>(at: *mut u8) -> *mut (dyn Cleanup + 'static) {
    let p: *mut (dyn Cleanup + 'a) = at.cast::<P>();
    // SAFETY: only the trait object's lifetime bound changes (the same fat pointer); the
    // caller's contract keeps every use within `'a`.
    unsafe { mem::transmute::<*mut (dyn Cleanup + 'a), *mut (dyn Cleanup + 'static)>(p) }
}

/// [`Entry::class`] of a heap block.
const HEAP: u8 = u8::MAX;

/// One registered record.
pub(crate) struct Entry {
    /// The record's block (pool or heap), or null: the record is inline, at `off`.
    block: *mut u8,
    vt: &'static VTable,
    /// The record's offset in the inline area (inline records).
    off: u32,
    /// The pool class of `block`, or [`HEAP`].
    class: u8,
    live: bool,
    spawnable: bool,
    /// The caller's tag (when the cleanup applies).
    tag: u8,
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
    /// Inline offsets are kept in 32 bits.
    const OFFSETS_FIT: () = assert!(N <= u32::MAX as usize, "the inline area is at most 4 GiB");

    /// An empty store (allocates nothing).
    pub(crate) const fn new() -> Self {
        let () = Self::OFFSETS_FIT;
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
        let vt = VTableOf::<P>::VT;
        let (size, align) = (size_of::<P>(), align_of::<P>());
        let off = self.used.next_multiple_of(align);
        let (block, class, at) = if !spawnable && align <= INLINE_ALIGN && off + size <= N {
            self.placed.inline += 1;
            self.used = off + size;
            (ptr::null_mut(), 0, off)
        } else if let Some(class) = pool::class_of(size, align) {
            self.placed.pooled += 1;
            let class_u8 = u8::try_from(class).expect("pool classes are few");
            (pool::acquire(class).as_ptr(), class_u8, 0)
        } else {
            self.placed.heap += 1;
            // SAFETY: `vt.layout` has a non-zero size.
            let raw = unsafe { alloc(vt.layout) };
            if raw.is_null() {
                handle_alloc_error(vt.layout);
            }
            (raw, HEAP, 0)
        };
        // Fits: `off + size <= N <= u32::MAX` inline (`OFFSETS_FIT`); 0 for a block.
        let off = at as u32;
        let at = if block.is_null() {
            self.base().wrapping_add(at)
        } else {
            block
        };
        // SAFETY: `at` is free memory of at least `size` bytes aligned to `align`: inline,
        // `[off, off + size)` lies past every live inline record (invariant 2) and inside the
        // area (checked above, the area is 16-aligned); a block was just taken for it alone.
        unsafe { at.cast::<P>().write(rec) };
        // The vtable erases `P`'s lifetime (`VTable::as_dyn`): records are used only while the
        // store lives (invariant 4), and the store cannot outlive `'env` (it holds `'env` and
        // has drop glue that drops every record); spawnable records are `'static`.
        self.entries.push(Entry {
            block,
            vt,
            off,
            class,
            live: true,
            spawnable,
            tag,
        });
        self.entries.len() - 1
    }

    /// The inline area's start.
    #[inline]
    fn base(&mut self) -> *mut u8 {
        self.inline.0.as_mut_ptr().cast::<u8>()
    }

    /// The address of an entry's record.
    #[inline]
    fn addr(base: *mut u8, e: &Entry) -> *mut u8 {
        if e.block.is_null() {
            base.wrapping_add(e.off as usize)
        } else {
            e.block
        }
    }

    /// The live record at `index`, pinned in place, with its tag.
    #[inline]
    pub(crate) fn get(&mut self, index: usize) -> Option<(Pin<&mut dyn Cleanup>, u8)> {
        let base = self.base();
        let e = self.entries.get(index)?;
        if !e.live {
            return None;
        }
        let at = Self::addr(base, e);
        // SAFETY: a live entry holds an initialized record of `vt`'s type (invariant 1); the
        // pointer is used while `&mut self` borrows the store.
        let rec = unsafe { (e.vt.as_dyn)(at) };
        // SAFETY: the record is initialized and borrowed mutably through `&mut self`.
        let rec = unsafe { &mut *rec };
        // SAFETY: records are never moved while started (invariant 3).
        Some((unsafe { Pin::new_unchecked(rec) }, e.tag))
    }

    /// Drops the record at `index` in place without running it (its storage is released
    /// when it is popped). Marked dead first: a panicking destructor is not run twice.
    pub(crate) fn kill(&mut self, index: usize) {
        let base = self.base();
        let Some(e) = self.entries.get_mut(index) else {
            return;
        };
        if !mem::replace(&mut e.live, false) {
            return;
        }
        let at = Self::addr(base, e);
        // SAFETY: the record was live (invariant 1) and is now marked dead: dropped once.
        unsafe { (e.vt.drop)(at) };
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

    /// Polls the newest record again, which is live and was left pending by
    /// [`run_fresh`](Self::run_fresh): `Ready` once it finished, then it is dropped and
    /// unlinked; `Pending` leaves it linked and running. If it panics it stays linked (dead if
    /// its destructor panicked, else live): the caller disposes of it with
    /// [`drop_top`](Self::drop_top).
    #[inline]
    pub(crate) fn run_top(&mut self, outcome: Outcome, cx: &mut Context<'_>) -> Poll<()> {
        let base = self.base();
        let e = self
            .entries
            .last_mut()
            .expect("`run_top` resumes the record `run_fresh` left pending");
        debug_assert!(e.live, "a pending record is live");
        let at = Self::addr(base, e);
        // SAFETY: a live entry's record (invariant 1), started only here, in place, where the
        // store no longer moves (invariant 3); `e.live` is its own flag.
        let poll = unsafe { (e.vt.run)(at, outcome, cx, &mut e.live) };
        if poll.is_ready() {
            // Dropped by `run`: only its storage is left to release.
            self.drop_top();
        }
        poll
    }

    /// The scope's fast path: runs fresh records newest first, each started and polled by one
    /// dynamic call and, once finished, dropped and unlinked, until one is pending (`Pending`:
    /// it stays linked, started) or none is left (`Ready`). `gate` says, from a record's tag,
    /// whether it runs and what it is shown; a record it turns down is dropped unrun.
    /// `running` is set while a record runs: if it panics it stays linked (dead if its
    /// destructor panicked), for the caller to dispose of with [`drop_top`](Self::drop_top).
    #[inline]
    pub(crate) fn run_fresh(
        &mut self,
        mut gate: impl FnMut(u8) -> Option<Outcome>,
        cx: &mut Context<'_>,
        running: &mut bool,
    ) -> Poll<()> {
        let base = self.base();
        while let Some(e) = self.entries.last_mut() {
            let shown = if e.live { gate(e.tag) } else { None };
            let Some(shown) = shown else {
                self.drop_top();
                continue;
            };
            let (at, block, class, vt) = (Self::addr(base, e), e.block, e.class, e.vt);
            *running = true;
            // SAFETY: a live entry's record (invariant 1), started only here, in place, where
            // the store no longer moves (invariant 3); `e.live` is its own flag.
            let poll = unsafe { (vt.run)(at, shown, cx, &mut e.live) };
            *running = false;
            if poll.is_pending() {
                return Poll::Pending;
            }
            // Finished and dropped by `run`: unlink it and release its storage.
            let len = self.entries.len();
            self.entries.truncate(len - 1);
            release(block, class, vt);
        }
        Poll::Ready(())
    }

    /// Unlinks and drops the newest record (to skip it, after it panicked or timed out), or
    /// only releases its storage if it is dead.
    #[inline]
    pub(crate) fn drop_top(&mut self) {
        let Some(e) = self.entries.pop() else {
            return;
        };
        let base = self.base();
        let t = Taken {
            at: Self::addr(base, &e),
            block: e.block,
            class: e.class,
            vt: e.vt,
            spawnable: e.spawnable,
            tag: e.tag,
            store: PhantomData,
        };
        if e.live {
            drop(t);
        } else {
            release(t.block, t.class, t.vt);
            mem::forget(t);
        }
    }

    /// Unlinks the newest live record (releasing dead ones on the way) for the caller to run.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Taken<'_>> {
        loop {
            let e = self.entries.pop()?;
            if e.live {
                let base = self.base();
                return Some(Taken {
                    at: Self::addr(base, &e),
                    block: e.block,
                    class: e.class,
                    vt: e.vt,
                    spawnable: e.spawnable,
                    tag: e.tag,
                    store: PhantomData,
                });
            }
            release(e.block, e.class, e.vt);
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

/// Releases a record's block (nothing for inline records, whose `block` is null).
#[inline]
fn release(block: *mut u8, class: u8, vt: &VTable) {
    let Some(b) = NonNull::new(block) else {
        return;
    };
    if class == HEAP {
        // SAFETY: allocated with `vt.layout` in `push_impl`; its record was dropped or moved
        // out and its entry is gone: released once.
        unsafe { dealloc(b.as_ptr(), vt.layout) };
    } else {
        // SAFETY: the block came from `pool::acquire(class)` in `push_impl`; released once,
        // as above.
        unsafe { pool::release(usize::from(class), b) };
    }
}

/// A record unlinked from its store, to be run and then dropped (drop drops the record in
/// place and releases its block). Borrows the store: inline records stay where they are.
pub(crate) struct Taken<'s> {
    at: *mut u8,
    block: *mut u8,
    class: u8,
    vt: &'static VTable,
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
        // SAFETY: an unlinked live record (invariant 1), owned by `self` until it is dropped,
        // used within the borrow of `self`.
        let rec = unsafe { (self.vt.as_dyn)(self.at) };
        // SAFETY: initialized, and borrowed mutably through `&mut self`.
        let rec = unsafe { &mut *rec };
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
            class: self.class,
            vt: self.vt,
        };
        mem::forget(self);
        Ok(d)
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        // Release the block even if the record's destructor panics.
        struct Release(*mut u8, u8, &'static VTable);
        impl Drop for Release {
            fn drop(&mut self) {
                release(self.0, self.1, self.2);
            }
        }
        let _release = Release(self.block, self.class, self.vt);
        // SAFETY: the record is initialized and owned by `self` (invariant 1); dropped once.
        unsafe { (self.vt.drop)(self.at) };
    }
}

/// An async cleanup handed over by a cancelled scope, with the block it lives in: a
/// `Send + 'static` future that starts the cleanup if it had not started, finishes it, then
/// drops it and frees its block. Dropping it unfinished drops the cleanup unfinished.
///
/// Spawners given to [`CancelPolicy::Spawn`](crate::CancelPolicy::Spawn) receive these.
pub struct Detached {
    /// The block (a detached record always has one).
    at: *mut u8,
    class: u8,
    vt: &'static VTable,
}

// SAFETY: the record is `Cleanup: Send + 'static` (only spawnable records are detached,
// invariant 5) and lives in a block that `Detached` owns exclusively.
unsafe impl Send for Detached {}

impl Future for Detached {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: the record is initialized, `'static` and owned by `self`.
        let rec = unsafe { (self.vt.as_dyn)(self.at) };
        // SAFETY: initialized, and borrowed mutably through `self` for this call only.
        let rec = unsafe { &mut *rec };
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
            block: self.at,
            class: self.class,
            vt: self.vt,
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
