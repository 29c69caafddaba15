//! The value-owning block guard. Its storage is two `ManuallyDrop` fields that are moved out
//! exactly once: by `Drop` or by `Guard::into_inner`, never both.

use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr;

use crate::guard::{Always, Strategy};

/// A guard that owns a value of type `T` and runs `dropfn(value)` when it goes out of scope,
/// if its strategy `S` says so.
///
/// Create one with [`guard`](crate::guard()), [`guard_on_unwind`](crate::guard_on_unwind),
/// [`guard_on_success`](crate::guard_on_success) or [`Guard::with_strategy`]. The guard
/// dereferences to the value; [`Guard::into_inner`] defuses it and hands the value back
/// without running the closure.
///
/// The guard is as large as `T` plus the closure's captures; with a closure that captures
/// nothing it is exactly as large as `T`, and the compiled code is the same as calling the
/// cleanup by hand at every exit (see the crate docs, "Cost").
///
/// ```
/// use frugal_defer::{guard, Guard};
///
/// let log = std::cell::RefCell::new(Vec::new());
/// {
///     let mut v = guard(Vec::new(), |v| log.borrow_mut().push(v.len()));
///     v.push(1);
///     v.push(2);
/// } // the closure runs here with the vector
/// assert_eq!(*log.borrow(), [2]);
///
/// let g = guard(5, |_| unreachable!("defused"));
/// assert_eq!(Guard::into_inner(g), 5);
/// ```
#[must_use = "a guard runs its closure when dropped: bind it (`let _g = ...`), `_` drops it at once"]
pub struct Guard<T, F, S = Always>
where
    F: FnOnce(T),
    S: Strategy,
{
    value: ManuallyDrop<T>,
    dropfn: ManuallyDrop<F>,
    // `fn(S) -> S` keeps `Guard` Send/Sync independent of the zero-sized strategy marker.
    strategy: PhantomData<fn(S) -> S>,
}

impl<T, F, S> Guard<T, F, S>
where
    F: FnOnce(T),
    S: Strategy,
{
    /// Creates a guard with an explicit strategy type.
    ///
    /// ```
    /// use frugal_defer::{Always, Guard};
    /// let g = Guard::<_, _, Always>::with_strategy(1, |n| assert_eq!(n, 1));
    /// drop(g);
    /// ```
    #[inline]
    pub fn with_strategy(value: T, dropfn: F) -> Self {
        Guard {
            value: ManuallyDrop::new(value),
            dropfn: ManuallyDrop::new(dropfn),
            strategy: PhantomData,
        }
    }

    /// Defuses the guard: returns the value and drops the closure without calling it.
    ///
    /// This is an associated function (`Guard::into_inner(g)`), not a method, so that it does
    /// not shadow a method of `T` reached through `Deref`.
    ///
    /// ```
    /// use frugal_defer::{guard, Guard};
    /// let g = guard(String::from("kept"), |_| panic!("never runs"));
    /// assert_eq!(Guard::into_inner(g), "kept");
    /// ```
    #[inline]
    pub fn into_inner(guard: Self) -> T {
        // `ManuallyDrop` stops `Guard::drop` from running; the two fields are then moved out
        // exactly once each, below. The value is read before the closure is dropped, so a
        // panicking closure destructor cannot lose the value (it unwinds past it instead).
        let mut guard = ManuallyDrop::new(guard);
        // SAFETY: `guard.value` is initialized (only `Drop` and this function move it out, and
        // `Drop` will not run because `guard` is wrapped in `ManuallyDrop`); it is read once.
        let value = unsafe { ManuallyDrop::take(&mut guard.value) };
        // SAFETY: same argument for `dropfn`: initialized, read exactly once, never again.
        let dropfn = unsafe { ManuallyDrop::take(&mut guard.dropfn) };
        drop(dropfn);
        value
    }
}

impl<T, F, S> Deref for Guard<T, F, S>
where
    F: FnOnce(T),
    S: Strategy,
{
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T, F, S> DerefMut for Guard<T, F, S>
where
    F: FnOnce(T),
    S: Strategy,
{
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T, F, S> Drop for Guard<T, F, S>
where
    F: FnOnce(T),
    S: Strategy,
{
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `drop` runs at most once and `into_inner` (the only other reader) prevents it
        // from running, so `value` is initialized here and is never touched again.
        let value = unsafe { ptr::read(&*self.value) };
        // SAFETY: same argument for `dropfn`.
        let dropfn = unsafe { ptr::read(&*self.dropfn) };
        if S::should_run() {
            dropfn(value);
        }
    }
}

impl<T, F, S> fmt::Debug for Guard<T, F, S>
where
    T: fmt::Debug,
    F: FnOnce(T),
    S: Strategy,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("value", &*self.value)
            .finish_non_exhaustive()
    }
}
