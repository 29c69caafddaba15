//! Caught panics: [`Recovered`] and the collateral of a resumed panic.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;

/// A caught panic payload, as `std::panic::catch_unwind` returns it.
pub type PanicPayload = Box<dyn Any + Send + 'static>;

thread_local! {
    static COLLATERAL: RefCell<Vec<PanicPayload>> = const { RefCell::new(Vec::new()) };
}

/// Keeps the collateral panics of a scope that is about to resume its first panic.
pub(crate) fn stash_collateral(collateral: Vec<PanicPayload>) {
    if collateral.is_empty() {
        return;
    }
    // During thread-local destruction the collateral cannot be kept: it is dropped.
    let _ = COLLATERAL.try_with(|c| c.borrow_mut().extend(collateral));
}

/// Takes the collateral panics stashed on this thread: the later panics of scopes
/// ([`scope`](crate::scope()), [`try_scope`](crate::try_scope())) that resumed their first
/// panic, oldest first. Returns an empty vector if there are none.
///
/// ```
/// let r = std::panic::catch_unwind(|| {
///     frugal_defer::scope(|s| {
///         s.defer(|| panic!("in a deferred call"));
///         panic!("in the body");
///     })
/// });
/// let first = r.unwrap_err();
/// assert_eq!(first.downcast_ref::<&str>(), Some(&"in the body"));
/// let collateral = frugal_defer::take_collateral();
/// assert_eq!(collateral.len(), 1);
/// assert_eq!(frugal_defer::panic_message(&*collateral[0]), Some("in a deferred call"));
/// ```
pub fn take_collateral() -> Vec<PanicPayload> {
    COLLATERAL
        .try_with(|c| std::mem::take(&mut *c.borrow_mut()))
        .unwrap_or_default()
}

/// The message of a panic payload if it is a `&str` or a `String` (what `panic!` produces).
pub fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// The panics caught by [`recover`](crate::recover()): the first one, and the later ones
/// (collateral) from deferred calls that panicked after it.
///
/// This is the crate's error type; it implements `std::error::Error`.
#[non_exhaustive]
pub struct Recovered {
    /// The first panic's payload.
    pub payload: PanicPayload,
    /// Later panics, in the order they happened.
    pub collateral: Vec<PanicPayload>,
}

impl Recovered {
    pub(crate) fn new(payload: PanicPayload, collateral: Vec<PanicPayload>) -> Self {
        Recovered {
            payload,
            collateral,
        }
    }

    /// The first panic's message, if it was a string.
    pub fn message(&self) -> Option<&str> {
        panic_message(&*self.payload)
    }

    /// The later panics.
    pub fn collateral(&self) -> &[PanicPayload] {
        &self.collateral
    }

    /// Consumes `self`, returning the first panic's payload (to `resume_unwind` it, say).
    pub fn into_payload(self) -> PanicPayload {
        self.payload
    }
}

impl fmt::Debug for Recovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let collateral: Vec<Option<&str>> = self
            .collateral
            .iter()
            .map(|p| panic_message(&**p))
            .collect();
        f.debug_struct("Recovered")
            .field("message", &self.message())
            .field("collateral", &collateral)
            .finish()
    }
}

impl fmt::Display for Recovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message() {
            Some(m) => write!(f, "recovered from a panic: {m}")?,
            None => write!(f, "recovered from a panic with a non-string payload")?,
        }
        if !self.collateral.is_empty() {
            write!(
                f,
                " (and {} later panic(s) in deferred calls)",
                self.collateral.len()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Recovered {}
