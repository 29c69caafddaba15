//! Caught panics: [`Recovered`] and the collateral of a resumed panic.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;

/// A caught panic payload, as `std::panic::catch_unwind` returns it.
pub type PanicPayload = Box<dyn Any + Send + 'static>;

/// At most this many collateral panics are kept per thread for [`take_collateral`]; when more
/// arrive, the oldest are dropped and counted ([`collateral_discarded`]). A service that
/// recovers many panics and never takes the collateral keeps at most this many.
pub const MAX_STASHED_COLLATERAL: usize = 64;

/// The collateral of scopes that resumed their first panic, keyed by the address of that
/// first payload: an enclosing scope (or [`recover`](crate::recover())) that catches the
/// resumed payload claims its collateral by that address (`resume_unwind` and
/// `catch_unwind` hand the same box through), so nested collateral reaches the enclosing
/// result instead of staying here.
///
/// Known limit: a payload caught by a plain `catch_unwind` (not a scope) and dropped leaves its
/// collateral here under an address the allocator may hand to a later panic's payload; a scope
/// that catches that later payload then claims the older collateral as its own. Nothing is lost
/// or run twice — the collateral is only attributed to the wrong panic.
struct Stash {
    entries: std::collections::VecDeque<(usize, PanicPayload)>,
    discarded: u64,
}

thread_local! {
    static COLLATERAL: RefCell<Stash> = const {
        RefCell::new(Stash { entries: std::collections::VecDeque::new(), discarded: 0 })
    };
}

/// The identity of a payload box (its data address) while it unwinds. Zero-sized payloads
/// all share one dangling address: they get a key no payload claims (they stay for
/// [`take_collateral`]).
fn key(payload: &PanicPayload) -> usize {
    if std::mem::size_of_val(&**payload) == 0 {
        return UNCLAIMABLE;
    }
    (&**payload as *const (dyn Any + Send)).cast::<()>() as usize
}

/// The key of collateral that no enclosing scope can claim (see [`key`]).
const UNCLAIMABLE: usize = 0;

/// Keeps the collateral panics of a scope that is about to resume `first`, keyed by `first`.
pub(crate) fn stash_collateral(first: &PanicPayload, collateral: Vec<PanicPayload>) {
    stash(key(first), collateral);
}

/// Keeps panics that no scope will resume (a scope in a destructor during unwinding, see
/// `resume_or_return`) for [`take_collateral`].
pub(crate) fn stash_unclaimed(panics: Vec<PanicPayload>) {
    stash(UNCLAIMABLE, panics);
}

fn stash(k: usize, collateral: Vec<PanicPayload>) {
    if collateral.is_empty() {
        return;
    }
    // During thread-local destruction the collateral cannot be kept: it is dropped.
    let evicted = COLLATERAL.try_with(|c| {
        let mut c = c.borrow_mut();
        c.entries.extend(collateral.into_iter().map(|p| (k, p)));
        let excess = c.entries.len().saturating_sub(MAX_STASHED_COLLATERAL);
        c.discarded += excess as u64;
        c.entries.drain(..excess).collect::<Vec<_>>()
    });
    // Dropped outside the borrow: a payload's destructor may itself use this module.
    drop(evicted);
}

/// Takes the collateral stashed by inner scopes that resumed `payload` (just caught by an
/// enclosing scope), oldest first. Empty (and allocation-free) when there is none.
pub(crate) fn claim_collateral(payload: &PanicPayload) -> Vec<PanicPayload> {
    let k = key(payload);
    if k == UNCLAIMABLE {
        return Vec::new();
    }
    COLLATERAL
        .try_with(|c| {
            let mut c = c.borrow_mut();
            if !c.entries.iter().any(|(e, _)| *e == k) {
                return Vec::new();
            }
            let (mine, rest): (Vec<_>, Vec<_>) = c.entries.drain(..).partition(|(e, _)| *e == k);
            c.entries.extend(rest);
            mine.into_iter().map(|(_, p)| p).collect()
        })
        .unwrap_or_default()
}

/// Takes the collateral panics stashed on this thread: the later panics of scopes
/// ([`scope`](crate::scope()), [`try_scope`](crate::try_scope())) that resumed their first
/// panic and that no enclosing scope caught, oldest first (at most
/// [`MAX_STASHED_COLLATERAL`]). Returns an empty vector if there are none.
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
///
/// When the resumed panic is caught by an enclosing scope instead, its collateral goes with it:
///
/// ```
/// let r = frugal_defer::recover(|_| {
///     frugal_defer::scope(|s| {
///         s.defer(|| panic!("in a deferred call"));
///         panic!("in the body");
///     })
/// });
/// assert_eq!(r.unwrap_err().collateral().len(), 1);
/// assert!(frugal_defer::take_collateral().is_empty());
/// ```
pub fn take_collateral() -> Vec<PanicPayload> {
    COLLATERAL
        .try_with(|c| c.borrow_mut().entries.drain(..).map(|(_, p)| p).collect())
        .unwrap_or_default()
}

/// How many collateral panics this thread dropped since it started because more than
/// [`MAX_STASHED_COLLATERAL`] were waiting for [`take_collateral`].
pub fn collateral_discarded() -> u64 {
    COLLATERAL.try_with(|c| c.borrow().discarded).unwrap_or(0)
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

    /// The *latest* panic: the last collateral one if any, else the first. Go's `recover()`
    /// returns this one (in Go a panic raised while the deferred calls of an earlier one run
    /// replaces it); this crate's default is the first, see the crate docs, "Step 6".
    pub fn latest(&self) -> &PanicPayload {
        self.collateral.last().unwrap_or(&self.payload)
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
