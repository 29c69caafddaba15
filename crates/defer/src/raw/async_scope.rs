//! Async scopes: [`AsyncScope`], its cancellation policy and its statistics. The storage (the
//! only unsafe part) is in `async_store`; this file uses it through a safe interface.
//!
//! Why a scope value and macros, not a function taking an async closure: `async_scope(|s|
//! async { .. })` needs a closure that is higher-ranked over the scope's borrow, and today's
//! rustc cannot prove such a future `Send` (spawning it fails with "implementation of
//! `AsyncFnOnce` is not general enough"). A scope that is a plain local of the caller's future
//! has no such bound: the caller's future is `Send` whenever its captures are.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::marker::{PhantomData, PhantomPinned};
use std::panic::{self, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use super::async_store::{
    Detached, Outcome, Store, SyncRec, Taken, WithFallback, ALWAYS, ASYNC, FALLBACK, ON_ERROR,
    ON_SUCCESS, SPAWN, WHEN,
};
use crate::panics::{self, PanicPayload, Recovered};

/// Default size of an async scope's inline area in bytes. Each record takes its closure's
/// size (or its future's, if larger, plus its fallback's) rounded up to 16, plus a 16-byte
/// header: about ten small async cleanups, or sixteen sync ones.
pub const DEFAULT_ASYNC_CAPACITY: usize = 512;

/// What a scope does with its async cleanups when its future is dropped before it finished
/// (the client went away, a `select!` lost, a timeout fired). Sync cleanups always run then,
/// in `Drop`; so does the sync fallback of a cleanup registered with
/// [`defer_async_or`](AsyncScope::defer_async_or). The policy decides for the rest — there is
/// no default: every scope states one.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum CancelPolicy {
    /// Hand each remaining async cleanup to a runtime: the function gets the cleanup as a
    /// `Send + 'static` future ([`Detached`]) and the scope's cleanup deadline, if any; it
    /// should spawn it. The futures of cleanups registered with
    /// [`defer_async`](AsyncScope::defer_async) under this policy are started in the
    /// scope's run slot (one block of the thread-local pool, reused by each in turn: no
    /// allocation in steady state), so that even a cleanup already running when the scope is
    /// dropped is handed over, unmoved, block and all, and finishes there — shielded from the
    /// cancellation that triggered it, up to the deadline; one not started yet is moved to a
    /// pool block of its own. With the `tokio` feature, `CancelPolicy::SPAWN_TOKIO` does this.
    Spawn(fn(Detached, Option<Duration>)),
    /// Drive each remaining async cleanup to completion on the dropping thread, each for at
    /// most this long (then it is dropped and counted as timed out). Legal only where
    /// blocking is: outside an async runtime (the future is dropped by plain code) — there a
    /// small built-in executor parks the thread between wake-ups — or, with the `tokio`
    /// feature, on a multi-thread tokio runtime, through `block_in_place`. On a
    /// current-thread tokio runtime it refuses (the cleanup is dropped and counted as
    /// leaked): blocking the only thread would stall the cleanup's own I/O and timers.
    /// Without the `tokio` feature a scope dropped inside a runtime blocks the worker thread.
    Block(Duration),
    /// Drop the remaining async cleanups without running them (their captures are dropped),
    /// counted in [`AsyncStats::leaked`].
    Leak,
}

impl CancelPolicy {
    /// [`CancelPolicy::Spawn`] onto the current tokio runtime (`tokio::spawn`), under
    /// `tokio::time::timeout` when the scope has a cleanup deadline. Outside a runtime the
    /// cleanup is driven on the dropping thread instead (as [`CancelPolicy::Block`], for the
    /// deadline, or until done).
    #[cfg(feature = "tokio")]
    pub const SPAWN_TOKIO: CancelPolicy = CancelPolicy::Spawn(super::async_tokio::spawn);
}

impl fmt::Debug for CancelPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelPolicy::Spawn(_) => f.write_str("Spawn"),
            CancelPolicy::Block(d) => f.debug_tuple("Block").field(d).finish(),
            CancelPolicy::Leak => f.write_str("Leak"),
        }
    }
}

/// Per-thread counters of async scopes (see [`async_stats`]). Counted on the thread where the
/// event happens (a scope's future may move between threads; a spawned cleanup finishes on
/// the runtime's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AsyncStats {
    /// Cleanups registered (sync and async).
    pub registered: u64,
    /// Of those, stored in the scope's inline area (no allocation).
    pub inline: u64,
    /// Of those, stored in a pool block of their own (no allocation in steady state).
    pub pooled: u64,
    /// Of those, stored in a heap block of their own (larger than 4 KiB or aligned to more
    /// than 64).
    pub heap: u64,
    /// Scope futures dropped before they finished.
    pub cancelled_scopes: u64,
    /// Sync cleanups run in `Drop` because the scope was cancelled.
    pub ran_on_cancel: u64,
    /// Sync fallbacks run instead of async cleanups because the scope was cancelled, or, for
    /// [`async_guarded`](crate::async_guarded), because its cleanup did not complete.
    pub fallbacks: u64,
    /// Async cleanups handed to a spawner.
    pub spawned: u64,
    /// Async cleanups driven to completion on the dropping thread ([`CancelPolicy::Block`]).
    pub blocked: u64,
    /// Async cleanups dropped unfinished at their deadline.
    pub timed_out: u64,
    /// Async cleanups dropped without running: [`CancelPolicy::Leak`], or a
    /// [`CancelPolicy::Block`] that was refused.
    pub leaked: u64,
}

struct Counters {
    c: [Cell<u64>; 11],
}

thread_local! {
    static COUNTERS: Counters = const { Counters { c: [const { Cell::new(0) }; 11] } };
}

#[derive(Clone, Copy)]
enum Count {
    Registered,
    Inline,
    Pooled,
    Heap,
    CancelledScopes,
    RanOnCancel,
    Fallbacks,
    Spawned,
    Blocked,
    TimedOut,
    Leaked,
}

fn count(what: Count, n: u64) {
    let _ = COUNTERS.try_with(|c| {
        let cell = &c.c[what as usize];
        cell.set(cell.get() + n);
    });
}

/// This thread's async scope counters.
#[must_use]
pub fn async_stats() -> AsyncStats {
    COUNTERS
        .try_with(|c| {
            let g = |w: Count| c.c[w as usize].get();
            AsyncStats {
                registered: g(Count::Registered),
                inline: g(Count::Inline),
                pooled: g(Count::Pooled),
                heap: g(Count::Heap),
                cancelled_scopes: g(Count::CancelledScopes),
                ran_on_cancel: g(Count::RanOnCancel),
                fallbacks: g(Count::Fallbacks),
                spawned: g(Count::Spawned),
                blocked: g(Count::Blocked),
                timed_out: g(Count::TimedOut),
                leaked: g(Count::Leaked),
            }
        })
        .unwrap_or_default()
}

impl AsyncStats {
    /// The counts accumulated between `earlier` and `self` (saturating at zero).
    #[must_use]
    pub fn since(&self, earlier: &AsyncStats) -> AsyncStats {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        AsyncStats {
            registered: d(self.registered, earlier.registered),
            inline: d(self.inline, earlier.inline),
            pooled: d(self.pooled, earlier.pooled),
            heap: d(self.heap, earlier.heap),
            cancelled_scopes: d(self.cancelled_scopes, earlier.cancelled_scopes),
            ran_on_cancel: d(self.ran_on_cancel, earlier.ran_on_cancel),
            fallbacks: d(self.fallbacks, earlier.fallbacks),
            spawned: d(self.spawned, earlier.spawned),
            blocked: d(self.blocked, earlier.blocked),
            timed_out: d(self.timed_out, earlier.timed_out),
            leaked: d(self.leaked, earlier.leaked),
        }
    }
}

/// An async defer scope: cleanups — sync closures, and async ones that `.await` — registered
/// anywhere in an async body and run newest first when the scope ends, each exactly once; or,
/// if the scope's future is dropped first, handled by its [`CancelPolicy`].
///
/// Open one with [`async_scope!`](crate::async_scope), [`async_try_scope!`](crate::async_try_scope)
/// or [`async_recover!`](crate::async_recover), which run the body, catch its panic, and then
/// [`finish`](AsyncScope::finish) the scope; or pin one with [`AsyncScope::new`] and
/// `std::pin::pin!` in your own future, register through [`scope_mut`](AsyncScope::scope_mut)
/// and call `finish` on every exit (the macros do that for you, panics included).
///
/// ```
/// # futures_lite_block_on(async {
/// use std::sync::{Arc, Mutex};
/// use frugal_defer::CancelPolicy;
///
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let answer = frugal_defer::async_scope!(CancelPolicy::Leak, |s| {
///     let l = Arc::clone(&log);
///     s.defer_async(move || async move { l.lock().unwrap().push("reset connection") });
///     let l = &log;
///     s.defer(move || l.lock().unwrap().push("unlock"));
///     42
/// })
/// .await;
/// assert_eq!(answer, 42);
/// assert_eq!(*log.lock().unwrap(), ["unlock", "reset connection"]);
/// # });
/// # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     frugal_defer::block_on(f)
/// # }
/// ```
///
/// A cleanup cannot borrow a local of the body (it runs after the body's locals are gone):
///
/// ```compile_fail
/// # frugal_defer::block_on(async {
/// frugal_defer::async_scope!(frugal_defer::CancelPolicy::Leak, |s| {
///     let name = String::from("local");
///     s.defer(|| println!("{name}"));
/// })
/// .await;
/// # });
/// ```
pub struct AsyncScope<'env, const BYTES: usize = DEFAULT_ASYNC_CAPACITY> {
    store: Store<'env, BYTES>,
    policy: CancelPolicy,
    deadline: Option<Duration>,
    /// Set when `finish` starts running cleanups in place: from then on the scope must not
    /// move (see [`AsyncScope::scope_mut`]).
    started: bool,
    finished: bool,
    /// Started cleanups are polled where they are: a pinned scope stays put.
    _pinned: PhantomPinned,
}

/// The handle of one cleanup of an [`AsyncScope`]: cancel it or run it now, exactly once
/// either way, with [`AsyncScope::cancel`] or [`AsyncScope::run_now`]. Dropping the handle
/// does nothing. Using it with another scope panics.
#[derive(Debug)]
pub struct AsyncDeferHandle {
    scope: u64,
    index: usize,
}

impl<'env, const BYTES: usize> AsyncScope<'env, BYTES> {
    /// An empty scope with this cancellation policy (allocates nothing).
    pub fn new(policy: CancelPolicy) -> Self {
        AsyncScope {
            store: Store::new(),
            policy,
            deadline: None,
            started: false,
            finished: false,
            _pinned: PhantomPinned,
        }
    }

    /// Gives every async cleanup of this scope at most `limit` to finish, on every path: at
    /// normal exit (awaited by the scope), when spawned after a cancellation, and when
    /// blocked on. A cleanup still running at its deadline is dropped and counted in
    /// [`AsyncStats::timed_out`]. Needs the `tokio` feature (and a tokio runtime with the
    /// time driver when the scope awaits its cleanups).
    #[cfg(feature = "tokio")]
    #[must_use]
    pub fn with_cleanup_deadline(mut self, limit: Duration) -> Self {
        self.deadline = Some(limit);
        self
    }

    /// The scope's cancellation policy.
    pub fn policy(&self) -> CancelPolicy {
        self.policy
    }

    /// The pinned scope, to register cleanups with (what the macros lend the body as `s`).
    ///
    /// A scope is pinned so that `finish` can run its cleanups where they are, without
    /// moving them (an async cleanup's future may point into itself once polled). Until
    /// `finish` started, nothing of the scope is pinned in that sense, so this gives `&mut`.
    ///
    /// # Panics
    /// After `finish` started (a `finish` future was dropped or forgotten midway).
    pub fn scope_mut(self: Pin<&mut Self>) -> &mut Self {
        assert!(
            !self.started,
            "the scope's cleanups already started: it cannot be borrowed mutably again"
        );
        // SAFETY: no cleanup of this scope was started in place (checked above; `started` is
        // set before the first is and never cleared), so nothing in it relies on its address
        // yet: moving it through this `&mut` is fine (the type's pinning is its own to define).
        unsafe { self.get_unchecked_mut() }
    }

    /// `&mut self` for `finish`, once `started` is set: the caller must not move out of it.
    fn pinned_mut(self: Pin<&mut Self>) -> &mut Self {
        // SAFETY: the scope's own code (`finish_impl`) uses this reference in place and never
        // moves the scope or its store out of it.
        unsafe { self.get_unchecked_mut() }
    }

    #[inline(always)]
    fn handle(&self, index: usize) -> AsyncDeferHandle {
        AsyncDeferHandle {
            scope: self.store.id(),
            index,
        }
    }

    /// Registers a sync cleanup: it runs when the scope ends, in LIFO order with the others,
    /// and also when the scope is cancelled (in `Drop`). Captures are evaluated now.
    #[inline]
    pub fn defer<F>(&mut self, f: F) -> AsyncDeferHandle
    where
        F: FnOnce() + Send + 'env,
    {
        let i = self
            .store
            .push(SyncRec::<_, ALWAYS>::new(move |_: Outcome| f()));
        self.handle(i)
    }

    /// Registers a sync cleanup that runs only if the scope fails: the body panicked or (in
    /// [`async_try_scope!`](crate::async_try_scope)) returned `Err`, a cleanup that ran before
    /// it panicked, or the scope was cancelled.
    #[inline]
    pub fn errdefer<F>(&mut self, f: F) -> AsyncDeferHandle
    where
        F: FnOnce() + Send + 'env,
    {
        let i = self
            .store
            .push(SyncRec::<_, ON_ERROR>::new(move |_: Outcome| f()));
        self.handle(i)
    }

    /// Registers a sync cleanup that runs only if the scope succeeds: no panic, not `Err`,
    /// not cancelled.
    #[inline]
    pub fn on_success<F>(&mut self, f: F) -> AsyncDeferHandle
    where
        F: FnOnce() + Send + 'env,
    {
        let i = self
            .store
            .push(SyncRec::<_, ON_SUCCESS>::new(move |_: Outcome| f()));
        self.handle(i)
    }

    /// Registers an async cleanup: `f` is called when the scope ends and its future awaited
    /// there, in LIFO order with the other cleanups. If the scope is cancelled first, the
    /// scope's [`CancelPolicy`] decides (hence `'static`: it may be spawned).
    #[inline]
    pub fn defer_async<F, Fut>(&mut self, f: F) -> AsyncDeferHandle
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.push_async::<_, _, ALWAYS>(f)
    }

    /// Like [`defer_async`](Self::defer_async), only if the scope fails (see
    /// [`errdefer`](Self::errdefer)).
    #[inline]
    pub fn errdefer_async<F, Fut>(&mut self, f: F) -> AsyncDeferHandle
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.push_async::<_, _, ON_ERROR>(f)
    }

    #[inline]
    fn push_async<F, Fut, const W: u8>(&mut self, f: F) -> AsyncDeferHandle
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.push_async_made::<_, _, W>(move |_: Outcome| f())
    }

    /// Registers an async cleanup without a fallback: spawnable (under the `Spawn` policy
    /// its future is started in the scope's run slot, so that it can be handed over).
    #[inline]
    fn push_async_made<F, Fut, const W: u8>(&mut self, f: F) -> AsyncDeferHandle
    where
        F: FnOnce(Outcome) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let i = self.store.push_spawnable::<F, Fut, W>(f);
        self.handle(i)
    }

    /// Registers an async cleanup that may borrow from outside the scope, with a sync
    /// `fallback` that runs instead if the scope is cancelled before the cleanup finished
    /// (whatever the scope's policy; the cleanup's future, if started, is dropped first).
    /// Stored inline when it fits: no allocation.
    #[inline]
    pub fn defer_async_or<F, Fut, G>(&mut self, f: F, fallback: G) -> AsyncDeferHandle
    where
        F: FnOnce() -> Fut + Send + 'env,
        Fut: Future<Output = ()> + Send + 'env,
        G: FnOnce() + Send + 'env,
    {
        let i = self
            .store
            .push_with_fallback::<_, Fut, _, ALWAYS>(move |_: Outcome| f(), WithFallback(fallback));
        self.handle(i)
    }

    fn check(&self, h: &AsyncDeferHandle) {
        assert!(
            h.scope == self.store.id(),
            "an AsyncDeferHandle was used with a scope other than its own"
        );
    }

    /// Cancels a cleanup: it will not run, and its captures are dropped now.
    ///
    /// # Panics
    /// If the handle belongs to another scope.
    pub fn cancel(&mut self, h: AsyncDeferHandle) {
        self.check(&h);
        self.store.kill(h.index);
    }

    /// Runs a cleanup now (awaiting it if async) instead of at scope exit. A panic in it
    /// propagates from here; the cleanup counts as done either way. An async cleanup's future
    /// is moved out of the scope and awaited here (boxed: one allocation), so dropping this
    /// future before it finished drops the cleanup unfinished (counted as leaked; the scope
    /// no longer owns it).
    ///
    /// # Panics
    /// If the handle belongs to another scope.
    pub async fn run_now(&mut self, h: AsyncDeferHandle) {
        self.check(&h);
        let Some(fut) = self.store.take_now(h.index) else {
            return;
        };
        /// Counts the cleanup as leaked if dropped before it finished.
        struct Unfinished(bool);
        impl Drop for Unfinished {
            fn drop(&mut self) {
                if self.0 {
                    count(Count::Leaked, 1);
                }
            }
        }
        let mut unfinished = Unfinished(true);
        fut.await;
        unfinished.0 = false;
    }

    /// Runs every cleanup, newest first (awaiting the async ones), as at a normal exit of the
    /// body; then resumes the first panic of a cleanup, if one panicked (later ones are
    /// collateral, see [`take_collateral`](crate::take_collateral)).
    pub fn finish(self: Pin<&mut Self>) -> impl Future<Output = ()> + use<'_, 'env, BYTES> {
        Finish::<'_, 'env, BYTES, (), Unwind>::new(self, Ok(()), never_failed, false)
    }

    /// Runs every cleanup, for a body that ended with `outcome` (its value, or the panic it
    /// raised); returns the value or resumes the first panic. Used by
    /// [`async_scope!`](crate::async_scope).
    #[doc(hidden)]
    pub fn finish_unwind<R>(
        self: Pin<&mut Self>,
        outcome: Result<R, PanicPayload>,
    ) -> impl Future<Output = R> + use<'_, 'env, BYTES, R>
    where
        R: 'env,
    {
        Finish::<'_, 'env, BYTES, R, Unwind>::new(self, outcome, never_failed, false)
    }

    /// Like [`finish_unwind`](Self::finish_unwind) for a body returning `Result`: `Err` runs
    /// the error-only cleanups (which are not shown the error: see [`AsyncTryScope`]).
    #[doc(hidden)]
    pub fn finish_try<T, E>(
        self: Pin<&mut Self>,
        outcome: Result<Result<T, E>, PanicPayload>,
    ) -> impl Future<Output = Result<T, E>> + use<'_, 'env, BYTES, T, E>
    where
        T: 'env,
        E: 'env,
    {
        Finish::<'_, 'env, BYTES, Result<T, E>, Unwind>::new(
            self,
            outcome,
            result_is_err::<T, E>,
            false,
        )
    }

    /// Like [`finish_unwind`](Self::finish_unwind), returning the panics instead of resuming
    /// them. Used by [`async_recover!`](crate::async_recover).
    #[doc(hidden)]
    pub fn finish_recover<R>(
        self: Pin<&mut Self>,
        outcome: Result<R, PanicPayload>,
    ) -> impl Future<Output = Result<R, Recovered>> + use<'_, 'env, BYTES, R>
    where
        R: 'env,
    {
        Finish::<'_, 'env, BYTES, R, Recover>::new(self, outcome, never_failed, false)
    }
}

/// What a [`Finish`] returns once every cleanup ran: the body's value, or the panics.
trait Done<R> {
    type Out;
    fn done(r: Result<R, (PanicPayload, Vec<PanicPayload>, Option<R>)>) -> Self::Out;
}

/// Returns the value, or resumes the first panic.
struct Unwind;

impl<R> Done<R> for Unwind {
    type Out = R;
    fn done(r: Result<R, (PanicPayload, Vec<PanicPayload>, Option<R>)>) -> R {
        match r {
            Ok(v) => v,
            Err((first, collateral, value)) => resume(first, collateral, value),
        }
    }
}

/// Returns the value, or the panics as [`Recovered`].
struct Recover;

impl<R> Done<R> for Recover {
    type Out = Result<R, Recovered>;
    fn done(r: Result<R, (PanicPayload, Vec<PanicPayload>, Option<R>)>) -> Self::Out {
        r.map_err(|(first, mut collateral, value)| {
            if let Some(v) = value {
                discard(v, &mut collateral);
            }
            Recovered::new(first, collateral)
        })
    }
}

/// The future that runs a scope's cleanups (one hand-written future rather than nested
/// `async fn`s: their state machines cost more than the loop they drive). The body's value
/// and the panics are kept here; the scope's records run where they are.
struct Finish<'s, 'env, const N: usize, R, K> {
    scope: Pin<&'s mut AsyncScope<'env, N>>,
    panics: Panics,
    value: Option<R>,
    /// Whether the value counts as a failure (looked at before each conditional cleanup: a
    /// `finally` may rewrite it).
    failed: unsafe fn(Outcome) -> bool,
    /// The result-aware cleanups are shown the value (an [`AsyncTryScope`]'s only, with the
    /// `R` its records were made for).
    show: bool,
    /// The deadline of the cleanup being awaited (structurally pinned; see [`Timer`]).
    #[cfg(feature = "tokio")]
    sleep: Option<tokio::time::Sleep>,
    done: PhantomData<K>,
}

impl<'s, 'env, const N: usize, R, K: Done<R>> Finish<'s, 'env, N, R, K> {
    fn new(
        scope: Pin<&'s mut AsyncScope<'env, N>>,
        outcome: Result<R, PanicPayload>,
        failed: unsafe fn(Outcome) -> bool,
        show: bool,
    ) -> Self {
        let mut panics = Panics::default();
        let value = match outcome {
            Ok(v) => Some(v),
            Err(p) => {
                panics.record(p);
                None
            }
        };
        Finish {
            scope,
            panics,
            value,
            failed,
            show,
            #[cfg(feature = "tokio")]
            sleep: None,
            done: PhantomData,
        }
    }
}

impl<const N: usize, R, K: Done<R>> Future for Finish<'_, '_, N, R, K> {
    type Output = K::Out;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<K::Out> {
        // SAFETY: only `sleep` is structurally pinned (it is never moved: set in place by
        // `Timer`, dropped in place); everything else is used through plain `&mut`.
        let this = unsafe { self.get_unchecked_mut() };
        let scope = this.scope.as_mut().pinned_mut();
        // From now on the scope must not move (its records run where they are).
        scope.started = true;
        let mut timer = Timer {
            limit: scope.deadline,
            // SAFETY: see above: `sleep` stays where it is.
            #[cfg(feature = "tokio")]
            sleep: unsafe { Pin::new_unchecked(&mut this.sleep) },
            #[cfg(not(feature = "tokio"))]
            sleep: PhantomData,
        };
        let spawn = matches!(scope.policy, CancelPolicy::Spawn(_));
        let store = &mut scope.store;
        // One `catch_unwind` around the loop over the records, entered again after a panic
        // (the panicking record unlinked, the panic recorded), not one per cleanup.
        loop {
            let any_panic = this.panics.any();
            // While the records run, the value is reached only through these.
            let value = Outcome::of(&mut this.value);
            let shown = if this.show { value } else { Outcome::NONE };
            let failed = this.failed;
            let step = panic::catch_unwind(AssertUnwindSafe(|| {
                run_records(
                    store,
                    cx,
                    (shown, value),
                    any_panic,
                    failed,
                    spawn,
                    &mut timer,
                )
            }));
            match step {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(())) => break,
                Err(p) => {
                    this.panics.record(p);
                    // A record whose run or poll panicked was unlinked; one left started
                    // when something else panicked (its deadline's timer) is dropped.
                    if store.is_started() {
                        if let Err(p) =
                            panic::catch_unwind(AssertUnwindSafe(|| store.drop_started()))
                        {
                            this.panics.record(p);
                        }
                    }
                }
            }
        }
        scope.finished = true;
        scope.store.done();
        let out = match this.panics.0.take() {
            None => Ok(this
                .value
                .take()
                .expect("no panic was recorded, so the body returned")),
            Some(list) => Err((list.first, list.collateral, this.value.take())),
        };
        Poll::Ready(K::done(out))
    }
}

/// The failure test of a plain scope: its value never counts as a failure.
unsafe fn never_failed(_: Outcome) -> bool {
    false
}

/// The failure test of an [`AsyncTryScope<T, E>`]: the result is `Err`.
///
/// # Safety
/// As [`Outcome::result`].
unsafe fn result_is_err<T, E>(o: Outcome) -> bool {
    // SAFETY: the caller's contract.
    unsafe { o.result::<T, E>() }.is_some_and(|r| r.is_err())
}

/// An [`AsyncScope`] whose body returns `Result<T, E>`, as [`TryScope`](crate::TryScope) is
/// for the sync chain: [`errdefer`](AsyncTryScope::errdefer) sees the error,
/// [`finally`](AsyncTryScope::finally) may rewrite the result, and `Err` counts as failure
/// for [`on_success`](AsyncTryScope::on_success). What
/// [`async_try_scope!`](crate::async_try_scope) lends its body as `s`.
///
/// The result-aware cleanups share the one LIFO order with the others and look at the result
/// as it is when they run: a `finally` that turns `Err` into `Ok` turns off the `errdefer`s
/// registered before it (they run after it), as in the sync [`TryScope`](crate::TryScope).
/// On cancellation there is no result: `errdefer`s get `None`, `finally`s do not run.
///
/// It has the methods of [`AsyncScope`] that register and handle cleanups, but does not
/// dereference to it: a helper that takes `&mut AsyncScope` cannot be handed this one.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use frugal_defer::CancelPolicy;
///
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let r: Result<u32, String> = frugal_defer::block_on(frugal_defer::async_try_scope!(
///     CancelPolicy::Leak,
///     |s| {
///         let l = &log;
///         s.errdefer(move |e| l.lock().unwrap().push(format!("rollback: {e:?}")));
///         s.finally(|r: &mut Result<u32, String>| {
///             if r.is_err() {
///                 *r = Ok(0); // fall back to a default
///             }
///         });
///         Err("cache miss".to_string())
///     }
/// ));
/// assert_eq!(r, Ok(0)); // rewritten by `finally`, so the `errdefer` did not run
/// assert!(log.lock().unwrap().is_empty());
/// ```
pub struct AsyncTryScope<'env, T, E, const BYTES: usize = DEFAULT_ASYNC_CAPACITY> {
    /// Structurally pinned (see `finish_try`).
    scope: AsyncScope<'env, BYTES>,
    /// Invariant in `T` and `E`: its records read and write exactly that result type.
    result: PhantomData<Invariant<Result<T, E>>>,
}

/// Makes a `PhantomData` invariant in `T`.
type Invariant<T> = fn(T) -> T;

impl<'env, T, E, const BYTES: usize> AsyncTryScope<'env, T, E, BYTES> {
    /// An empty scope with this cancellation policy (allocates nothing).
    pub fn new(policy: CancelPolicy) -> Self {
        AsyncTryScope {
            scope: AsyncScope::new(policy),
            result: PhantomData,
        }
    }

    /// As [`AsyncScope::with_cleanup_deadline`].
    #[cfg(feature = "tokio")]
    #[must_use]
    pub fn with_cleanup_deadline(mut self, limit: Duration) -> Self {
        self.scope.deadline = Some(limit);
        self
    }

    /// The scope's cancellation policy.
    pub fn policy(&self) -> CancelPolicy {
        self.scope.policy
    }

    /// As [`AsyncScope::scope_mut`].
    ///
    /// # Panics
    /// After `finish_try` started.
    pub fn scope_mut(self: Pin<&mut Self>) -> &mut Self {
        assert!(
            !self.scope.started,
            "the scope's cleanups already started: it cannot be borrowed mutably again"
        );
        // SAFETY: as in `AsyncScope::scope_mut`: nothing was started in place yet.
        unsafe { self.get_unchecked_mut() }
    }

    /// As [`AsyncScope::defer`].
    pub fn defer<F>(&mut self, f: F) -> AsyncDeferHandle
    where
        F: FnOnce() + Send + 'env,
    {
        self.scope.defer(f)
    }

    /// Registers a sync cleanup that runs only if the scope fails: the result is `Err` when it
    /// runs, something panicked (the body, or a cleanup that ran before it), or the scope
    /// was cancelled. `f` gets `Some(&e)` for an `Err(e)` result, `None` when there is no
    /// result (a panic in the body, cancellation) or the result is `Ok` and a cleanup
    /// panicked.
    pub fn errdefer<F>(&mut self, f: F) -> AsyncDeferHandle
    where
        F: FnOnce(Option<&E>) + Send + 'env,
        T: 'env,
        E: 'env,
    {
        let rec = SyncRec::<_, ON_ERROR>::new(move |o: Outcome| {
            // SAFETY: a record of an `AsyncTryScope<T, E>` is shown only the
            // `Option<Result<T, E>>` of its `finish_try` (`show` is set nowhere else), alive
            // and unborrowed while the record starts; or nothing.
            match unsafe { o.result::<T, E>() } {
                Some(Err(e)) => f(Some(e)),
                _ => f(None),
            }
        });
        let i = self.scope.store.push(rec);
        self.scope.handle(i)
    }

    /// As [`AsyncScope::on_success`]: only if the result is `Ok` when it runs and nothing
    /// panicked.
    pub fn on_success<F>(&mut self, f: F) -> AsyncDeferHandle
    where
        F: FnOnce() + Send + 'env,
    {
        self.scope.on_success(f)
    }

    /// Registers a sync cleanup that runs whenever the body returned (`Ok` or `Err`; not when
    /// it panicked, nor on cancellation) and may rewrite the result. If a cleanup panics, the
    /// result is discarded with the panic.
    pub fn finally<F>(&mut self, f: F) -> AsyncDeferHandle
    where
        F: FnOnce(&mut Result<T, E>) + Send + 'env,
        T: 'env,
        E: 'env,
    {
        let rec = SyncRec::<_, ALWAYS>::new(move |o: Outcome| {
            // SAFETY: as in `errdefer`.
            if let Some(r) = unsafe { o.result::<T, E>() } {
                f(r);
            }
        });
        let i = self.scope.store.push(rec);
        self.scope.handle(i)
    }

    /// As [`AsyncScope::defer_async`].
    pub fn defer_async<F, Fut>(&mut self, f: F) -> AsyncDeferHandle
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.scope.defer_async(f)
    }

    /// Like [`errdefer`](Self::errdefer) for an async cleanup: `f` sees the error (or `None`,
    /// as there) and makes the future to await, which owns what it needs of the error (it
    /// may be spawned on cancellation: `'static`, as for
    /// [`defer_async`](AsyncScope::defer_async)).
    pub fn errdefer_async<F, Fut>(&mut self, f: F) -> AsyncDeferHandle
    where
        F: FnOnce(Option<&E>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
        T: 'static,
        E: 'static,
    {
        let make = move |o: Outcome| {
            // SAFETY: as in `errdefer`.
            match unsafe { o.result::<T, E>() } {
                Some(Err(e)) => f(Some(e)),
                _ => f(None),
            }
        };
        self.scope.push_async_made::<_, _, ON_ERROR>(make)
    }

    /// As [`AsyncScope::defer_async_or`].
    pub fn defer_async_or<F, Fut, G>(&mut self, f: F, fallback: G) -> AsyncDeferHandle
    where
        F: FnOnce() -> Fut + Send + 'env,
        Fut: Future<Output = ()> + Send + 'env,
        G: FnOnce() + Send + 'env,
    {
        self.scope.defer_async_or(f, fallback)
    }

    /// As [`AsyncScope::cancel`].
    ///
    /// # Panics
    /// If the handle belongs to another scope.
    pub fn cancel(&mut self, h: AsyncDeferHandle) {
        self.scope.cancel(h);
    }

    /// As [`AsyncScope::run_now`]; there is no result yet, so an `errdefer` run now gets
    /// `None` and a `finally` does nothing.
    ///
    /// # Panics
    /// If the handle belongs to another scope.
    pub async fn run_now(&mut self, h: AsyncDeferHandle) {
        self.scope.run_now(h).await;
    }

    /// Runs every cleanup for a body that ended with `outcome` (its result, or the panic it
    /// raised), showing the result to the result-aware ones; returns the result as the
    /// cleanups left it, or resumes the first panic. Used by
    /// [`async_try_scope!`](crate::async_try_scope).
    #[doc(hidden)]
    pub fn finish_try(
        self: Pin<&mut Self>,
        outcome: Result<Result<T, E>, PanicPayload>,
    ) -> impl Future<Output = Result<T, E>> + use<'_, 'env, T, E, BYTES>
    where
        T: 'env,
        E: 'env,
    {
        // SAFETY: `scope` is structurally pinned: `AsyncTryScope` never moves it out once
        // pinned (it has no `Drop`, is `!Unpin` through the scope, and lends `&mut self` only
        // before the cleanups started).
        let scope = unsafe { self.map_unchecked_mut(|s| &mut s.scope) };
        Finish::<'_, 'env, BYTES, Result<T, E>, Unwind>::new(
            scope,
            outcome,
            result_is_err::<T, E>,
            true,
        )
    }
}

impl<T, E, const BYTES: usize> fmt::Debug for AsyncTryScope<'_, T, E, BYTES> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncTryScope")
            .field("scope", &self.scope)
            .finish()
    }
}

impl<const BYTES: usize> fmt::Debug for AsyncScope<'_, BYTES> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncScope")
            .field("pending", &self.store.len())
            .field("policy", &self.policy)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// The panics of a scope: the first, and the later ones (with the collateral that inner
/// scopes stashed for them). Boxed, and only once there is one: the common case (no panic)
/// has nothing to drop.
#[derive(Default)]
struct Panics(Option<Box<PanicList>>);

/// The first panic, and the later ones.
struct PanicList {
    first: PanicPayload,
    collateral: Vec<PanicPayload>,
}

impl Panics {
    fn record(&mut self, p: PanicPayload) {
        let inner = panics::claim_collateral(&p);
        match &mut self.0 {
            None => {
                self.0 = Some(Box::new(PanicList {
                    first: p,
                    collateral: inner,
                }))
            }
            Some(list) => {
                list.collateral.push(p);
                list.collateral.extend(inner);
            }
        }
    }

    fn any(&self) -> bool {
        self.0.is_some()
    }
}

/// Drops a value the scope discards because of a panic; its destructor's panic is collateral.
fn discard<T>(value: T, collateral: &mut Vec<PanicPayload>) {
    if let Err(p) = panic::catch_unwind(AssertUnwindSafe(move || drop(value))) {
        collateral.extend(panics::claim_collateral(&p));
        collateral.push(p);
    }
}

fn resume<R>(first: PanicPayload, mut collateral: Vec<PanicPayload>, value: Option<R>) -> R {
    if let Some(v) = value {
        discard(v, &mut collateral);
    }
    panics::stash_collateral(&first, collateral);
    panic::resume_unwind(first)
}

/// The deadline of the async cleanup being awaited (with the `tokio` feature).
struct Timer<'a> {
    /// Only read with the `tokio` feature (without it, scopes have no deadline).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    limit: Option<Duration>,
    #[cfg(feature = "tokio")]
    sleep: Pin<&'a mut Option<tokio::time::Sleep>>,
    #[cfg(not(feature = "tokio"))]
    sleep: PhantomData<&'a ()>,
}

impl Timer<'_> {
    /// Starts the deadline of a cleanup that did not complete at once.
    fn arm(&mut self) {
        #[cfg(feature = "tokio")]
        if let Some(limit) = self.limit {
            self.sleep.set(Some(tokio::time::sleep(limit)));
        }
    }

    /// `true` if the armed deadline passed (it is disarmed then).
    fn fired(&mut self, cx: &mut Context<'_>) -> bool {
        #[cfg(feature = "tokio")]
        if let Some(s) = self.sleep.as_mut().as_pin_mut() {
            if s.poll(cx).is_ready() {
                self.sleep.set(None);
                return true;
            }
        }
        let _ = cx;
        false
    }

    /// Disarms the deadline (the cleanup finished).
    fn disarm(&mut self) {
        #[cfg(feature = "tokio")]
        if self.limit.is_some() {
            self.sleep.set(None);
        }
    }
}

/// Runs the store's records newest first until one is pending (`Pending`, the record left
/// linked and started) or none is left: first the one left pending by the last call, if any,
/// then the fresh ones. A record that panics is unlinked by the store; one that hits its
/// deadline is dropped here.
fn run_records<const N: usize>(
    store: &mut Store<'_, N>,
    cx: &mut Context<'_>,
    (shown, value): (Outcome, Outcome),
    any_panic: bool,
    failed: unsafe fn(Outcome) -> bool,
    spawn: bool,
    timer: &mut Timer<'_>,
) -> Poll<()> {
    loop {
        if store.is_started() {
            if store.resume(cx).is_pending() {
                if !timer.fired(cx) {
                    return Poll::Pending;
                }
                count(Count::TimedOut, 1);
                store.drop_started();
            } else {
                timer.disarm();
            }
        }
        // SAFETY: `failed`, `value` and `shown` come from `Finish`, made for this scope's value
        // (or ignoring it, and showing nothing).
        if unsafe { store.run_fresh(cx, shown, value, any_panic, failed, spawn) }.is_ready() {
            return Poll::Ready(());
        }
        timer.arm();
        if !timer.fired(cx) {
            return Poll::Pending;
        }
        count(Count::TimedOut, 1);
        store.drop_started();
    }
}

/// Applies the cancellation path to one unlinked record: a sync one runs; an async one runs
/// its fallback if it has one, else the policy applies. Panics are caught and kept for
/// [`take_collateral`](crate::take_collateral).
fn cancel_taken(mut t: Taken<'_>, policy: CancelPolicy, deadline: Option<Duration>) {
    let flags = t.flags();
    if flags & WHEN == ON_SUCCESS {
        // A cancelled scope did not succeed: dropped unrun, by its condition.
        guarded(move || drop(t));
        return;
    }
    if flags & ASYNC == 0 {
        count(Count::RanOnCancel, 1);
        guarded(move || t.start());
        return;
    }
    if flags & FALLBACK != 0 {
        count(Count::Fallbacks, 1);
        guarded(move || t.fallback());
        return;
    }
    match policy {
        CancelPolicy::Spawn(spawn) if flags & SPAWN != 0 => match t.detach() {
            Ok(d) => {
                count(Count::Spawned, 1);
                guarded(|| spawn(d, deadline));
            }
            Err(t) => {
                // Consumed already (cannot happen: only started or fresh records are popped).
                guarded(move || drop(t));
            }
        },
        CancelPolicy::Block(limit) => {
            let limit = deadline.map_or(limit, |d| d.min(limit));
            guarded(move || match block_on_cleanup(&mut t, limit) {
                Blocked::Done => count(Count::Blocked, 1),
                Blocked::TimedOut => count(Count::TimedOut, 1),
                Blocked::Refused => count(Count::Leaked, 1),
            });
        }
        // A record that is not spawnable cannot move: dropped, counted as leaked.
        CancelPolicy::Spawn(_) | CancelPolicy::Leak => {
            count(Count::Leaked, 1);
            guarded(move || drop(t));
        }
    }
}

/// Runs the sync fallback of an [`async_guarded`](crate::async_guarded) whose cleanup did not
/// complete (from a destructor, maybe during unwinding): counted, its panic kept.
pub(crate) fn run_fallback(g: impl FnOnce()) {
    count(Count::Fallbacks, 1);
    guarded(g);
}

/// Runs `f`, keeping its panic for [`take_collateral`](crate::take_collateral) (we may be in
/// a destructor during unwinding, where a panic must not escape).
fn guarded(f: impl FnOnce()) {
    if let Err(p) = panic::catch_unwind(AssertUnwindSafe(f)) {
        let mut all = panics::claim_collateral(&p);
        all.insert(0, p);
        panics::stash_unclaimed(all);
    }
}

impl<const BYTES: usize> Drop for AsyncScope<'_, BYTES> {
    fn drop(&mut self) {
        if !self.finished {
            count(Count::CancelledScopes, 1);
            let (policy, deadline) = (self.policy, self.deadline);
            while let Some(t) = self.store.pop() {
                cancel_taken(t, policy, deadline);
            }
        }
        // Once per scope: inline records are counted as they are unlinked.
        let placed = self.store.placed();
        let _ = COUNTERS.try_with(|c| {
            let add = |w: Count, n: u64| {
                let cell = &c.c[w as usize];
                cell.set(cell.get() + n);
            };
            add(
                Count::Registered,
                placed.inline + placed.pooled + placed.heap,
            );
            add(Count::Inline, placed.inline);
            add(Count::Pooled, placed.pooled);
            add(Count::Heap, placed.heap);
        });
    }
}

/// How a blocking drive of a cleanup ended.
pub(super) enum Blocked {
    Done,
    TimedOut,
    /// Only on a tokio current-thread runtime (the `tokio` feature).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    Refused,
}

/// Drives `t` (started or not) to completion on this thread for at most `limit`.
fn block_on_cleanup(t: &mut Taken<'_>, limit: Duration) -> Blocked {
    t.start();
    #[cfg(feature = "tokio")]
    if let Some(b) = super::async_tokio::block_on_cleanup(&mut |cx| t.poll(cx), limit) {
        return b;
    }
    let deadline = Instant::now() + limit;
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if t.poll(&mut cx).is_ready() {
            return Blocked::Done;
        }
        let now = Instant::now();
        if now >= deadline {
            return Blocked::TimedOut;
        }
        thread::park_timeout(deadline - now);
    }
}

/// Counts a spawned cleanup that hit its deadline (for the tokio spawner).
#[cfg(feature = "tokio")]
pub(super) fn count_timed_out() {
    count(Count::TimedOut, 1);
}

/// Drives a detached cleanup on this thread (no runtime to spawn it on), for at most `limit`.
#[cfg(feature = "tokio")]
pub(super) fn block_detached(d: Detached, limit: Option<Duration>) {
    let mut d = pin!(d);
    let deadline = limit.map(|l| Instant::now() + l);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if d.as_mut().poll(&mut cx).is_ready() {
            count(Count::Blocked, 1);
            return;
        }
        match deadline {
            None => thread::park(),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    count(Count::TimedOut, 1);
                    return;
                }
                thread::park_timeout(deadline - now);
            }
        }
    }
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future to completion on this thread, parking it between wake-ups: a minimal
/// executor for tests, examples and [`CancelPolicy::Block`] outside a runtime. Futures that
/// need a runtime's I/O or timers (tokio's) do not make progress here.
///
/// ```
/// assert_eq!(frugal_defer::block_on(async { 1 + 1 }), 2);
/// ```
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

/// Polls `f` under `catch_unwind`: its output, or the panic it raised. Used by the macros.
#[doc(hidden)]
pub fn catch_unwind<F: Future>(f: F) -> CatchUnwind<F> {
    CatchUnwind(f)
}

/// The future of [`catch_unwind`] (written by hand: an `async fn` around `poll_fn` costs two
/// state machines more per scope).
#[doc(hidden)]
pub struct CatchUnwind<F>(F);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, PanicPayload>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: the inner future is structurally pinned: never moved out of `CatchUnwind`,
        // which has no `Drop` and is `Unpin` only if the inner future is.
        let f = unsafe { self.map_unchecked_mut(|c| &mut c.0) };
        match panic::catch_unwind(AssertUnwindSafe(|| f.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(p) => Poll::Ready(Err(p)),
        }
    }
}

/// Opens an [`AsyncScope`] with a [`CancelPolicy`], runs an async body in it and returns a
/// future of the body's value: `async_scope!(policy, |s| body).await`. `s` is a
/// `&mut AsyncScope`; the body is the body of an `async` block (`.await` and `return` work
/// in it, `return` leaving the body). When the body returns or panics, every cleanup runs
/// newest first (async ones awaited one after another), each exactly once; then the body's
/// value is returned, or the first panic resumed. If the future is dropped before that, the
/// scope's policy applies (see [`CancelPolicy`]).
///
/// `async_scope!(policy, BYTES, |s| body)` sets the inline area's size.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use frugal_defer::CancelPolicy;
///
/// static RELEASED: AtomicU32 = AtomicU32::new(0);
/// let r = frugal_defer::block_on(frugal_defer::async_scope!(CancelPolicy::Leak, |s| {
///     for _ in 0..3 {
///         s.defer_async(|| async { RELEASED.fetch_add(1, Ordering::SeqCst); });
///     }
///     "done"
/// }));
/// assert_eq!((r, RELEASED.load(Ordering::SeqCst)), ("done", 3));
/// ```
#[macro_export]
macro_rules! async_scope {
    ($policy:expr, |$s:ident| $body:expr) => {
        $crate::async_scope!($policy, $crate::DEFAULT_ASYNC_CAPACITY, |$s| $body)
    };
    ($policy:expr, $bytes:expr, |$s:ident| $body:expr) => {
        async {
            let mut __frugal_scope =
                ::core::pin::pin!($crate::AsyncScope::<'_, { $bytes }>::new($policy));
            let __frugal_out = {
                let $s = __frugal_scope.as_mut().scope_mut();
                $crate::__private::catch_unwind(async { $body }).await
            };
            __frugal_scope.as_mut().finish_unwind(__frugal_out).await
        }
    };
}

/// Like [`async_scope!`], for a body that returns `Result<T, E>`: `s` is a
/// `&mut` [`AsyncTryScope`], whose [`errdefer`](AsyncTryScope::errdefer) sees the error
/// (`None` for a panic or cancellation), whose [`finally`](AsyncTryScope::finally) may
/// rewrite the result, and for which `Err` counts as failure.
/// `async_try_scope!(policy, BYTES, |s| body)` sets the inline area's size.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use frugal_defer::CancelPolicy;
///
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let r: Result<(), &str> = frugal_defer::block_on(frugal_defer::async_try_scope!(
///     CancelPolicy::Leak,
///     |s| {
///         let l = &log;
///         s.errdefer(move |e| l.lock().unwrap().push(format!("rollback: {e:?}")));
///         s.on_success(move || l.lock().unwrap().push("commit".to_string()));
///         Err("constraint violated")
///     }
/// ));
/// assert_eq!(r, Err("constraint violated"));
/// assert_eq!(*log.lock().unwrap(), [r#"rollback: Some("constraint violated")"#]);
/// ```
#[macro_export]
macro_rules! async_try_scope {
    ($policy:expr, |$s:ident| $body:expr) => {
        $crate::async_try_scope!($policy, $crate::DEFAULT_ASYNC_CAPACITY, |$s| $body)
    };
    ($policy:expr, $bytes:expr, |$s:ident| $body:expr) => {
        async {
            let mut __frugal_scope =
                ::core::pin::pin!($crate::AsyncTryScope::<'_, _, _, { $bytes }>::new($policy));
            let __frugal_out = {
                let $s = __frugal_scope.as_mut().scope_mut();
                $crate::__private::catch_unwind(async { $body }).await
            };
            __frugal_scope.as_mut().finish_try(__frugal_out).await
        }
    };
}

/// Like [`async_scope!`], but a panic (of the body or a cleanup) does not propagate: the
/// future's output is `Result<R, Recovered>`, after every cleanup ran.
/// `async_recover!(policy, BYTES, |s| body)` sets the inline area's size.
///
/// ```
/// let r = frugal_defer::block_on(frugal_defer::async_recover!(
///     frugal_defer::CancelPolicy::Leak,
///     |s| {
///         s.defer(|| panic!("second"));
///         if true {
///             panic!("first");
///         }
///     }
/// ));
/// let rec = r.unwrap_err();
/// assert_eq!(rec.message(), Some("first"));
/// assert_eq!(rec.collateral().len(), 1);
/// ```
#[macro_export]
macro_rules! async_recover {
    ($policy:expr, |$s:ident| $body:expr) => {
        $crate::async_recover!($policy, $crate::DEFAULT_ASYNC_CAPACITY, |$s| $body)
    };
    ($policy:expr, $bytes:expr, |$s:ident| $body:expr) => {
        async {
            let mut __frugal_scope =
                ::core::pin::pin!($crate::AsyncScope::<'_, { $bytes }>::new($policy));
            let __frugal_out = {
                let $s = __frugal_scope.as_mut().scope_mut();
                $crate::__private::catch_unwind(async { $body }).await
            };
            __frugal_scope.as_mut().finish_recover(__frugal_out).await
        }
    };
}
