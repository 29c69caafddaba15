//! Block guards: `defer!`, [`guard`] and the three strategies.

use crate::Guard;

/// When a [`Guard`] runs its closure. Implemented by [`Always`], [`OnUnwind`] and
/// [`OnSuccess`]; you may implement it for your own marker type.
pub trait Strategy {
    /// Returns `true` if the guard's closure should run now (called from the guard's `Drop`).
    fn should_run() -> bool;
}

/// Strategy: always run the closure, on normal exit and on unwinding.
#[derive(Debug)]
pub enum Always {}

impl Strategy for Always {
    #[inline(always)]
    fn should_run() -> bool {
        true
    }
}

/// Strategy: run the closure only while unwinding from a panic (requires `std`).
#[cfg(feature = "std")]
#[derive(Debug)]
pub enum OnUnwind {}

#[cfg(feature = "std")]
impl Strategy for OnUnwind {
    #[inline]
    fn should_run() -> bool {
        std::thread::panicking()
    }
}

/// Strategy: run the closure only on normal exit, not while unwinding (requires `std`).
#[cfg(feature = "std")]
#[derive(Debug)]
pub enum OnSuccess {}

#[cfg(feature = "std")]
impl Strategy for OnSuccess {
    #[inline]
    fn should_run() -> bool {
        !std::thread::panicking()
    }
}

/// Creates a guard that owns `value` and calls `dropfn(value)` when dropped, always.
///
/// ```
/// use std::cell::Cell;
/// let closed = Cell::new(false);
/// {
///     let file = frugal_defer::guard("handle", |_h| closed.set(true));
///     assert_eq!(*file, "handle"); // derefs to the value
/// }
/// assert!(closed.get());
/// ```
#[inline]
pub fn guard<T, F>(value: T, dropfn: F) -> Guard<T, F, Always>
where
    F: FnOnce(T),
{
    Guard::with_strategy(value, dropfn)
}

/// Creates a guard that calls `dropfn(value)` only if dropped while unwinding (requires `std`).
///
/// ```
/// use std::cell::Cell;
/// let rolled_back = Cell::new(0);
/// let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
///     let _tx = frugal_defer::guard_on_unwind((), |()| rolled_back.set(rolled_back.get() + 1));
///     panic!("boom");
/// }));
/// assert!(r.is_err());
/// {
///     let _tx = frugal_defer::guard_on_unwind((), |()| rolled_back.set(rolled_back.get() + 1));
/// } // normal exit: does not run
/// assert_eq!(rolled_back.get(), 1);
/// ```
#[cfg(feature = "std")]
#[inline]
pub fn guard_on_unwind<T, F>(value: T, dropfn: F) -> Guard<T, F, OnUnwind>
where
    F: FnOnce(T),
{
    Guard::with_strategy(value, dropfn)
}

/// Creates a guard that calls `dropfn(value)` only if dropped normally, not while unwinding
/// (requires `std`).
///
/// ```
/// use std::cell::Cell;
/// let committed = Cell::new(false);
/// {
///     let _tx = frugal_defer::guard_on_success((), |()| committed.set(true));
/// }
/// assert!(committed.get());
/// ```
#[cfg(feature = "std")]
#[inline]
pub fn guard_on_success<T, F>(value: T, dropfn: F) -> Guard<T, F, OnSuccess>
where
    F: FnOnce(T),
{
    Guard::with_strategy(value, dropfn)
}

/// Runs the block when the enclosing block ends (normal exit or unwinding), like scopeguard's
/// `defer!`. Several `defer!`s in one block run in reverse order.
///
/// The block is a closure that borrows its environment; it compiles to the same code as
/// writing the statements by hand at every exit of the block.
///
/// ```
/// use std::cell::RefCell;
/// let log = RefCell::new(Vec::new());
/// {
///     frugal_defer::defer! { log.borrow_mut().push("first registered, last run"); }
///     frugal_defer::defer! { log.borrow_mut().push("second registered, first run"); }
///     log.borrow_mut().push("body");
/// }
/// assert_eq!(*log.borrow(), ["body", "second registered, first run", "first registered, last run"]);
/// ```
#[macro_export]
macro_rules! defer {
    ($($body:tt)*) => {
        let _frugal_defer_guard = $crate::guard((), |()| { $($body)* });
    };
}
