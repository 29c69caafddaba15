//! The function-scoped chain: [`Scope`], [`TryScope`], [`DeferHandle`] and the functions that
//! open a scope.
//!
//! Soundness argument (why erasing the closures' lifetimes in the chain is fine):
//! - a `Scope` only exists inside `scope_impl`, which creates it, lends `&'scope Scope` to the
//!   body and, after the body returned or unwound, runs the chain to completion
//!   (`Scope::run`) before the scope and its inline buffer go away;
//! - user closures are `'env`, and `'env` outlives the whole `scope_impl` call; internal
//!   wrapper closures only point into the `Scope`/`TryScope` itself, which outlives the run;
//! - the body's closure is higher-ranked over `'scope`, so neither `&Scope` nor a
//!   [`DeferHandle`] can leave the body (nor be captured by a deferred `'env` closure); hence
//!   every handle operation happens before the run, on a record still pending and live
//!   (handles are consumed by `cancel`/`run_now`, so each works at most once).

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;

use super::chain::{probes, Chain, Cold, InlineBuf, Record};
use crate::cancel::CancelToken;
use crate::panics::{self, PanicPayload, Recovered};
use crate::stats;

/// Default size of a scope's inline area in bytes: 512, i.e. 21 deferred closures that capture
/// one word each (a record is the captures, rounded up to 8 bytes, plus two words: the
/// function that runs it and the record's size).
pub const DEFAULT_CAPACITY: usize = 512;

/// A function-scoped defer chain, lent to the body of [`scope`](crate::scope()),
/// [`try_scope`](crate::try_scope()) or [`recover`](crate::recover()).
///
/// Register deferred calls with [`defer`](Scope::defer) anywhere in the body — in loops,
/// branches, or helper functions that take `&Scope<'_, '_>` — and they all run, newest first,
/// when the scope ends: on normal return, on an early `return`, or on a panic.
///
/// `'env` is the lifetime of what deferred closures may borrow: anything that outlives the
/// scope call. Values created inside the body must be moved into the closure (`move ||`),
/// which is also how Go evaluates a deferred call's arguments at the `defer` statement.
///
/// ```
/// use std::cell::RefCell;
/// let log = RefCell::new(Vec::new());
/// frugal_defer::scope(|s| {
///     for i in 0..3 {
///         let log = &log;
///         s.defer(move || log.borrow_mut().push(i)); // `i` is captured now
///     }
/// });
/// assert_eq!(*log.borrow(), [2, 1, 0]);
/// ```
///
/// The scope cannot escape its body, and it is not `Send`:
///
/// ```compile_fail
/// let mut escaped = None;
/// frugal_defer::scope(|s| escaped = Some(s));
/// ```
///
/// ```compile_fail,E0277
/// frugal_defer::scope(|s| {
///     std::thread::scope(|t| {
///         // Fails only because `Scope` is not `Sync` (the closure returns `()`, which is `Send`).
///         t.spawn(|| {
///             let _ = s.defer(|| ());
///         });
///     });
/// });
/// ```
///
/// (The same program with a `Sync` value in place of the scope compiles: `tests/defer.rs`,
/// `scoped_thread_program_compiles_with_a_sync_value`.)
///
/// A deferred closure cannot borrow a local of the body (it runs after the body returned):
///
/// ```compile_fail
/// frugal_defer::scope(|s| {
///     let name = String::from("local");
///     s.defer(|| println!("{name}"));
/// });
/// ```
pub struct Scope<'scope, 'env: 'scope> {
    chain: Chain,
    /// The panics caught in this scope, in a separate local of the function that opened it:
    /// the cold panic path may then take its address without taking the scope's (which would
    /// keep LLVM from holding the chain's cursor in a register).
    panics: &'scope PanicsCell,
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

/// The first panic of a scope (body or deferred call), once caught.
/// Boxed so that a scope without panics pays one null check to drop it.
///
/// Held in `ManuallyDrop` by the opening function: only `finish_run` writes it, and whenever
/// `Scope::run` reports a panic the opening function empties it with `take_panics`, so it needs
/// no drop glue (a panic payload would leak, not be freed twice, if that ever changed).
type PanicsCell = RefCell<Option<Box<Panics>>>;

/// The panics caught in a scope: the first, and the later ones (collateral) in order.
struct Panics {
    first: PanicPayload,
    collateral: Vec<PanicPayload>,
}

/// The handle of one deferred call: cancel it or run it now, exactly once either way.
///
/// Dropping the handle does nothing: the call stays registered and runs at scope exit.
/// A handle cannot outlive the scope body, and it is not `Send`:
///
/// ```compile_fail
/// let h = frugal_defer::scope(|s| s.defer(|| ()));
/// ```
///
/// ```compile_fail
/// fn assert_send<T: Send>(_: T) {}
/// frugal_defer::scope(|s| assert_send(s.defer(|| ())));
/// ```
pub struct DeferHandle<'a> {
    record: Record,
    /// Ties the handle to the scope's body. Not the chain's address: handle operations need
    /// only the record, and keeping the chain's address private lets LLVM keep its cursor in
    /// a register.
    chain: PhantomData<&'a Chain>,
}

impl DeferHandle<'_> {
    /// Cancels the deferred call: it will not run, and its captures are dropped now.
    ///
    /// ```
    /// use std::cell::Cell;
    /// let ran = Cell::new(false);
    /// frugal_defer::scope(|s| {
    ///     let ran = &ran;
    ///     let h = s.defer(move || ran.set(true));
    ///     h.cancel();
    /// });
    /// assert!(!ran.get());
    /// ```
    pub fn cancel(self) {
        // SAFETY: a handle exists only for a pending record with a live closure of `chain`:
        // handles are created by `push`, consumed here or in `run_now`, and cannot outlive the
        // body, while the chain runs only after the body (module soundness argument).
        unsafe { self.record.cancel() }
    }

    /// Runs the deferred call now instead of at scope exit. A panic in the call propagates
    /// from here, into the body.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// let log = RefCell::new(Vec::new());
    /// frugal_defer::scope(|s| {
    ///     let l = &log;
    ///     let unlock = s.defer(move || l.borrow_mut().push("unlock"));
    ///     log.borrow_mut().push("critical section");
    ///     unlock.run_now();
    ///     log.borrow_mut().push("after");
    /// });
    /// assert_eq!(*log.borrow(), ["critical section", "unlock", "after"]);
    /// ```
    pub fn run_now(self) {
        // SAFETY: as in `cancel`.
        unsafe { self.record.run_now() }
    }
}

impl fmt::Debug for DeferHandle<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferHandle")
            .field("record", &self.record.addr())
            .finish()
    }
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Registers `f` to run when the scope ends (newest first). Whatever `f` captures is
    /// evaluated now. Returns a handle to cancel it or run it early.
    ///
    /// The record (the captures rounded up to 8 bytes, plus two words) goes in the caller's
    /// stack frame if its inline area has room; otherwise into the thread-local pool: a pool
    /// segment, or, for a record over 512 bytes, a block of its own. A closure aligned to more
    /// than 8 always gets a block of its own (see the crate docs, "Storage").
    #[inline(always)]
    pub fn defer<F>(&self, f: F) -> DeferHandle<'_>
    where
        F: FnOnce() + 'env,
    {
        DeferHandle {
            record: self.chain.push(f),
            chain: PhantomData,
        }
    }

    /// Registers `f` to run at scope exit only if a panic is in flight then (from the body or
    /// from a deferred call that ran before it); `f` sees the first panic's payload.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// let seen = RefCell::new(None);
    /// let r = frugal_defer::recover(|s| {
    ///     let seen = &seen;
    ///     s.on_panic(move |p| *seen.borrow_mut() = p.downcast_ref::<&str>().copied());
    ///     panic!("disk full");
    /// });
    /// assert!(r.is_err());
    /// assert_eq!(*seen.borrow(), Some("disk full"));
    /// ```
    pub fn on_panic<F>(&self, f: F) -> DeferHandle<'_>
    where
        F: FnOnce(&(dyn Any + Send)) + 'env,
    {
        let panics = NonNull::from(self.panics);
        let record = self.chain.push(move || {
            // SAFETY: the wrapper runs (or is dropped) during `Scope::run`, while the `Scope` that
            // owns `panics` is alive (module soundness argument); only shared borrows are taken.
            let panics = unsafe { panics.as_ref() };
            let panics = panics.borrow();
            if let Some(p) = panics.as_ref() {
                f(&*p.first);
            }
        });
        DeferHandle {
            record,
            chain: PhantomData,
        }
    }

    /// Registers a deferred call bound to a cancellation token: `f` runs exactly once, at the
    /// earlier of `token.cancel()` (on the cancelling thread) and scope exit. Cancelling the
    /// returned handle unsubscribes and drops `f` without running it.
    ///
    /// `f` must be `Send + 'static` because the cancelling thread may run it, possibly while
    /// this scope is returning. Unlike plain defers this allocates (one shared slot per call).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// let released = Arc::new(AtomicU32::new(0));
    /// let token = frugal_defer::CancelToken::new();
    /// frugal_defer::scope(|s| {
    ///     let r = Arc::clone(&released);
    ///     s.defer_until_cancelled(&token, move || { r.fetch_add(1, Ordering::SeqCst); });
    ///     token.cancel(); // runs it now, on this thread
    ///     assert_eq!(released.load(Ordering::SeqCst), 1);
    /// }); // ...and not again at scope exit
    /// assert_eq!(released.load(Ordering::SeqCst), 1);
    /// ```
    pub fn defer_until_cancelled<F>(&self, token: &CancelToken, f: F) -> DeferHandle<'_>
    where
        F: FnOnce() + Send + 'static,
    {
        let binding = token.bind(f);
        self.defer(move || binding.fire())
    }

    /// Creates a scope over `buf` (the chain's inline area) and `panics` (empty).
    #[inline(always)]
    fn new<const N: usize>(
        buf: &'scope mut InlineBuf<N>,
        cold: &'scope Cold,
        panics: &'scope PanicsCell,
    ) -> Self {
        Scope {
            // SAFETY: `buf` and `cold` are borrowed for `'scope`, longer than the scope lives
            // (`buf` mutably; `cold` is used by this chain only), and `scope_impl` runs the
            // chain (exiting every record) before the scope is dropped.
            chain: unsafe { Chain::new(buf, cold) },
            panics,
            scope: PhantomData,
            env: PhantomData,
        }
    }
}

/// After the first panic of a scope: records it, then runs the rest of the chain, recording
/// every further panic and resuming with the next record each time (the chain unlinks a
/// record before calling it). Takes the chain by value (a detached copy) so that the scope's
/// address stays private to the function that opened it.
#[cold]
#[inline(never)]
fn finish_run(chain: Chain, panics: &PanicsCell, first: PanicPayload) -> Chain {
    record_panic(panics, first);
    while let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| probes::run_all(&chain))) {
        record_panic(panics, p);
    }
    chain
}

/// Records a caught panic, with the collateral an inner scope stashed when it resumed this
/// payload (so that nested collateral reaches this scope's result, not thread-local storage).
#[cold]
#[inline(never)]
fn record_panic(panics: &PanicsCell, payload: PanicPayload) {
    probes::panic_caught();
    let inner = panics::claim_collateral(&payload);
    let mut panics = panics.borrow_mut();
    match panics.as_mut() {
        None => {
            *panics = Some(Box::new(Panics {
                first: payload,
                collateral: inner,
            }))
        }
        Some(p) => {
            p.collateral.push(payload);
            p.collateral.extend(inner);
        }
    }
}

/// Drops a value the scope cannot return (the body's value or result, discarded because a
/// panic is resumed or recovered): a panic in its destructor becomes collateral instead of
/// replacing the panic in flight.
#[cold]
#[inline(never)]
fn discard<T>(value: T, collateral: &mut Vec<PanicPayload>) {
    if let Err(p) = panic::catch_unwind(AssertUnwindSafe(move || drop(value))) {
        collateral.extend(panics::claim_collateral(&p));
        collateral.push(p);
    }
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Runs `body` and then every deferred call exactly once, newest first, catching every
    /// panic.
    ///
    /// The fast path is one `catch_unwind` around the body and the whole run. A panic (in the
    /// body or a deferred call) ends it; the loop then resumes the run with the next record
    /// (the chain unlinks a record before calling it), under a new `catch_unwind` each time.
    ///
    /// Returns whether anything panicked. Only then can panics have been recorded: callers
    /// test this first, so the common path never reads the panics cell (whose address
    /// escapes to the deferred calls, so LLVM could not prove it empty).
    #[inline(always)]
    fn run(&self, body: impl FnOnce()) -> bool {
        probes::scope_enter();
        let first = panic::catch_unwind(AssertUnwindSafe(|| {
            body();
            probes::run_all(&self.chain);
        }));
        let panicked = first.is_err();
        if let Err(p) = first {
            let rest = finish_run(self.chain.detach(), self.panics, p);
            self.chain.reattach(rest);
        }
        let (registered, pooled, heap) = self.chain.counts();
        stats::add_scope(registered, pooled, heap);
        probes::scope_exit(registered, pooled, heap, panicked);
        panicked
    }

    #[inline(always)]
    fn take_panics(&self) -> Option<(PanicPayload, Vec<PanicPayload>)> {
        let panics = self.panics.take()?;
        Some((panics.first, panics.collateral))
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (registered, pooled, heap) = self.chain.counts();
        f.debug_struct("Scope")
            .field("registered", &registered)
            .field("pooled", &pooled)
            .field("heap", &heap)
            .finish_non_exhaustive()
    }
}

/// What a scope that panicked hands back: the first panic, the collateral ones, and the
/// body's value if the body returned (only deferred calls panicked).
type Caught<R> = (PanicPayload, Vec<PanicPayload>, Option<R>);

/// Runs `body` with a fresh scope whose inline area is `N` bytes; returns the body's value or
/// the caught panics.
#[inline(always)]
fn scope_impl<'env, const N: usize, F, R>(body: F) -> Result<R, Caught<R>>
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
{
    let mut buf = InlineBuf::<N>::new();
    let cold = Cold::new();
    let panics = ManuallyDrop::new(RefCell::new(None));
    let scope = Scope::new(&mut buf, &cold, &panics);
    let mut value = None;
    if !scope.run(|| value = Some(body(&scope))) {
        return Ok(value.expect("nothing panicked, so the body returned"));
    }
    let (first, collateral) = scope
        .take_panics()
        .expect("`run` reported a panic, so one was recorded");
    Err((first, collateral, value))
}

/// Resumes the first panic of a scope, after stashing the collateral for an enclosing scope
/// or [`take_collateral`](crate::take_collateral). The discarded value (if the body returned)
/// is dropped first, its destructor's panic becoming collateral.
///
/// Exception: on a thread that is already unwinding (the scope runs in a destructor called
/// during unwinding) resuming would abort the process. Then, if the body returned, its value
/// is returned and every panic of the scope is stashed as collateral; if the body itself
/// panicked there is no value to return, and the process aborts as for any panic escaping a
/// destructor during unwinding (use [`recover`](crate::recover()) there).
#[cold]
#[inline(never)]
fn resume_or_return<R>((first, mut collateral, value): Caught<R>) -> R {
    if std::thread::panicking() {
        if let Some(value) = value {
            collateral.insert(0, first);
            panics::stash_unclaimed(collateral);
            return value;
        }
    } else if let Some(value) = value {
        discard(value, &mut collateral);
    }
    panics::stash_collateral(&first, collateral);
    panic::resume_unwind(first)
}

/// Opens a function-scoped defer chain with the default inline capacity
/// ([`DEFAULT_CAPACITY`] bytes) and runs `body` in it.
///
/// Every deferred call runs exactly once, newest first, when `body` returns or panics. If
/// anything panicked (the body or deferred calls), the first panic is resumed after all
/// deferred calls ran; later ones are available from [`take_collateral`](crate::take_collateral).
///
/// ```
/// use std::cell::RefCell;
/// let log = RefCell::new(Vec::new());
/// let answer = frugal_defer::scope(|s| {
///     let log = &log;
///     s.defer(move || log.borrow_mut().push("close file"));
///     s.defer(move || log.borrow_mut().push("unlock"));
///     42
/// });
/// assert_eq!(answer, 42);
/// assert_eq!(*log.borrow(), ["unlock", "close file"]);
/// ```
#[inline]
pub fn scope<'env, F, R>(body: F) -> R
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
{
    scope_with_capacity::<DEFAULT_CAPACITY, F, R>(body)
}

/// Like [`scope`](crate::scope()), with an inline area of `BYTES` bytes in the caller's frame.
///
/// ```
/// use std::cell::Cell;
/// let n = Cell::new(0);
/// frugal_defer::scope_with_capacity::<2048, _, _>(|s| {
///     for _ in 0..64 {
///         let n = &n;
///         s.defer(move || n.set(n.get() + 1));
///     }
/// });
/// assert_eq!(n.get(), 64);
/// ```
#[inline]
pub fn scope_with_capacity<'env, const BYTES: usize, F, R>(body: F) -> R
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
{
    match scope_impl::<BYTES, F, R>(body) {
        Ok(value) => value,
        Err(caught) => resume_or_return(caught),
    }
}

/// Like [`scope`](crate::scope()), but a panic does not propagate: returns
/// `Err(`[`Recovered`]`)` with the first panic and the collateral ones, after every deferred
/// call ran (Go's `recover()` in a deferred function).
///
/// ```
/// let r = frugal_defer::recover(|s| {
///     s.defer(|| panic!("second"));
///     panic!("first");
/// });
/// let rec = r.unwrap_err();
/// assert_eq!(rec.message(), Some("first"));
/// assert_eq!(rec.collateral().len(), 1);
/// ```
#[inline]
pub fn recover<'env, F, R>(body: F) -> Result<R, Recovered>
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
{
    scope_impl::<DEFAULT_CAPACITY, F, R>(body).map_err(|(first, mut collateral, value)| {
        if let Some(value) = value {
            discard(value, &mut collateral);
        }
        Recovered::new(first, collateral)
    })
}

/// A [`Scope`] whose body returns `Result<T, E>`: adds result-aware deferred calls
/// ([`errdefer`](TryScope::errdefer), [`on_success`](TryScope::on_success),
/// [`finally`](TryScope::finally)). Dereferences to [`Scope`], so helpers taking
/// `&Scope<'_, '_>` work with it too.
///
/// The result-aware calls share the one LIFO chain with plain ones and look at the result as
/// it is when they run, so a `finally` that rewrites `Err` into `Ok` turns off the
/// `errdefer`s registered before it (Go's named-result rewrite).
pub struct TryScope<'scope, 'env: 'scope, T, E> {
    scope: Scope<'scope, 'env>,
    /// The body's result, once it returned. In a separate local of the function that opened
    /// the scope, like the panics cell: the result-aware calls capture its address, not the
    /// scope's, so the chain's address stays private (see `Scope::panics`).
    outcome: &'scope OutcomeCell<T, E>,
}

/// The body's result of a [`TryScope`], once it returned.
type OutcomeCell<T, E> = RefCell<Option<Result<T, E>>>;

impl<'scope, 'env, T, E> std::ops::Deref for TryScope<'scope, 'env, T, E> {
    type Target = Scope<'scope, 'env>;

    fn deref(&self) -> &Scope<'scope, 'env> {
        &self.scope
    }
}

impl<T, E> fmt::Debug for TryScope<'_, '_, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryScope")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl<'scope, 'env, T, E> TryScope<'scope, 'env, T, E> {
    /// Registers `f` to run at scope exit only if the scope fails: the result is `Err` or a
    /// panic is in flight. `f` gets `Some(&e)` for an `Err(e)` result, `None` for a panic
    /// without a result.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// let log = RefCell::new(Vec::new());
    /// let r: Result<(), String> = frugal_defer::try_scope(|s| {
    ///     let log = &log;
    ///     s.errdefer(move |e| log.borrow_mut().push(format!("rollback: {e:?}")));
    ///     s.on_success(move || log.borrow_mut().push("commit".to_string()));
    ///     Err("constraint violated".to_string())
    /// });
    /// assert!(r.is_err());
    /// assert_eq!(*log.borrow(), [r#"rollback: Some("constraint violated")"#]);
    /// ```
    pub fn errdefer<F>(&self, f: F) -> DeferHandle<'_>
    where
        F: FnOnce(Option<&E>) + 'env,
    {
        let (outcome, panics) = (
            NonNull::from(self.outcome),
            NonNull::from(self.scope.panics),
        );
        let record = self.scope.chain.push(move || {
            // SAFETY: the wrapper runs (or is dropped) during `Scope::run`, while the cells of the
            // function that opened this `TryScope` are alive (module soundness argument); only
            // shared borrows are taken.
            let outcome = unsafe { outcome.as_ref() };
            // SAFETY: likewise for the panics cell.
            let panics = unsafe { panics.as_ref() };
            let outcome = outcome.borrow();
            match outcome.as_ref() {
                Some(Err(e)) => f(Some(e)),
                Some(Ok(_)) if panics.borrow().is_some() => {
                    drop(outcome);
                    f(None)
                }
                Some(Ok(_)) => {}
                None => {
                    drop(outcome);
                    f(None)
                }
            }
        });
        DeferHandle {
            record,
            chain: PhantomData,
        }
    }

    /// Registers `f` to run at scope exit only if the result is `Ok` and no panic is in flight.
    pub fn on_success<F>(&self, f: F) -> DeferHandle<'_>
    where
        F: FnOnce() + 'env,
    {
        let (outcome, panics) = (
            NonNull::from(self.outcome),
            NonNull::from(self.scope.panics),
        );
        let record = self.scope.chain.push(move || {
            // SAFETY: as in `errdefer`.
            let outcome = unsafe { outcome.as_ref() };
            // SAFETY: as in `errdefer`.
            let panics = unsafe { panics.as_ref() };
            let ok = matches!(*outcome.borrow(), Some(Ok(_)));
            if ok && panics.borrow().is_none() {
                f();
            }
        });
        DeferHandle {
            record,
            chain: PhantomData,
        }
    }

    /// Registers `f` to run at scope exit whenever the body returned (`Ok` or `Err`, not
    /// when it panicked); `f` may rewrite the result. If a deferred call panics, the rewritten
    /// result is discarded with the panic.
    ///
    /// ```
    /// let r: Result<u32, String> = frugal_defer::try_scope(|s| {
    ///     s.finally(|r: &mut Result<u32, String>| {
    ///         if r.is_err() {
    ///             *r = Ok(0); // fall back to a default
    ///         }
    ///     });
    ///     Err("cache miss".to_string())
    /// });
    /// assert_eq!(r, Ok(0));
    /// ```
    pub fn finally<F>(&self, f: F) -> DeferHandle<'_>
    where
        F: FnOnce(&mut Result<T, E>) + 'env,
    {
        let outcome = NonNull::from(self.outcome);
        let record = self.scope.chain.push(move || {
            // SAFETY: as in `errdefer`; the mutable borrow of the outcome is the only borrow
            // while `f` runs (deferred calls run one at a time).
            let outcome = unsafe { outcome.as_ref() };
            if let Some(result) = outcome.borrow_mut().as_mut() {
                f(result);
            }
        });
        DeferHandle {
            record,
            chain: PhantomData,
        }
    }
}

/// Opens a scope whose body returns `Result<T, E>` (default inline capacity), adding
/// result-aware deferred calls; see [`TryScope`]. Panics propagate as with
/// [`scope`](crate::scope()).
///
/// ```
/// fn transfer(fail: bool) -> Result<&'static str, &'static str> {
///     frugal_defer::try_scope(|s| {
///         s.errdefer(|_| println!("rollback"));
///         s.on_success(|| println!("commit"));
///         if fail { Err("insufficient funds") } else { Ok("done") }
///     })
/// }
/// assert_eq!(transfer(false), Ok("done"));
/// assert_eq!(transfer(true), Err("insufficient funds"));
/// ```
#[inline]
pub fn try_scope<'env, F, T, E>(body: F) -> Result<T, E>
where
    F: for<'scope> FnOnce(&'scope TryScope<'scope, 'env, T, E>) -> Result<T, E>,
{
    try_scope_with_capacity::<DEFAULT_CAPACITY, F, T, E>(body)
}

/// Like [`try_scope`](crate::try_scope()), with an inline area of `BYTES` bytes.
#[inline]
pub fn try_scope_with_capacity<'env, const BYTES: usize, F, T, E>(body: F) -> Result<T, E>
where
    F: for<'scope> FnOnce(&'scope TryScope<'scope, 'env, T, E>) -> Result<T, E>,
{
    let mut buf = InlineBuf::<BYTES>::new();
    let cold = Cold::new();
    let panics = ManuallyDrop::new(RefCell::new(None));
    let outcome = RefCell::new(None);
    let ts = TryScope {
        scope: Scope::new(&mut buf, &cold, &panics),
        outcome: &outcome,
    };
    let panicked = ts.scope.run(|| {
        let result = body(&ts);
        *ts.outcome.borrow_mut() = Some(result);
    });
    let result = outcome.borrow_mut().take();
    if panicked {
        let (first, collateral) = ts
            .scope
            .take_panics()
            .expect("`run` reported a panic, so one was recorded");
        return resume_or_return((first, collateral, result));
    }
    result.expect("no panic was recorded, so the body returned")
}
