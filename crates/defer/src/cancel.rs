//! Cancellation-bound deferred calls (article 4.4): [`CancelToken`].
//!
//! Why our own token and not tokio-util's `CancellationToken`: a deferred call bound to a
//! token must run *at the moment of cancellation*, synchronously, even when no async runtime
//! is polling anything. tokio-util's token only offers futures (`cancelled()`), so the release
//! would need a spawned task per binding, a runtime, and it would run later, on another task.
//! [`CancelToken`] is a small `Arc` with a callback list: `cancel()` runs the bound calls on
//! the cancelling thread, and it keeps this crate free of dependencies. An async caller that
//! already has a tokio token can bridge it in one line:
//! `tokio::spawn(async move { tok.cancelled().await; ours.cancel() })`.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A cloneable cancellation token: `cancel()` runs every deferred call bound to it with
/// [`Scope::defer_until_cancelled`](crate::Scope::defer_until_cancelled) that has not run yet.
///
/// ```
/// let token = frugal_defer::CancelToken::new();
/// let clone = token.clone();
/// assert!(!token.is_cancelled());
/// clone.cancel();
/// assert!(token.is_cancelled());
/// ```
#[derive(Clone, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    // Set once, before the callbacks run; read without the lock as a fast path.
    cancelled: AtomicBool,
    waiters: Mutex<Waiters>,
}

#[derive(Default)]
struct Waiters {
    next_key: u64,
    list: Vec<(u64, Arc<dyn Fire>)>,
}

trait Fire: Send + Sync {
    /// Runs the call if nobody did yet.
    fn fire(&self);
    /// Drops the call's captures without running it, if nobody ran it yet.
    fn discard(&self);
}

/// One bound call: runs at most once, from whichever side takes it first.
struct Slot<F>(Mutex<Option<F>>);

impl<F: FnOnce() + Send> Fire for Slot<F> {
    fn fire(&self) {
        // The lock only guards the take: `f` runs unlocked, so it may itself cancel tokens.
        let f = lock(&self.0).take();
        if let Some(f) = f {
            f();
        }
    }

    fn discard(&self) {
        let f = lock(&self.0).take();
        drop(f);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the data inconsistent (single pushes,
    // removes and takes), so poisoning is ignored.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CancelToken {
    /// A new, not cancelled token.
    pub fn new() -> Self {
        Self::default()
    }

    /// `true` once [`cancel`](CancelToken::cancel) was called on this token or a clone.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Acquire)
    }

    /// Cancels the token: runs, on this thread, every bound deferred call that has not run
    /// yet. Idempotent. If bound calls panic, all of them still run and the first panic is
    /// resumed afterwards.
    pub fn cancel(&self) {
        // Release pairs with the Acquire in `is_cancelled`/`bind`: a binder that sees `true`
        // runs its call itself; one that sees `false` was already in the list we take below
        // (both sides decide under the `waiters` lock).
        let list = {
            let mut w = lock(&self.inner.waiters);
            self.inner.cancelled.store(true, Ordering::Release);
            std::mem::take(&mut w.list)
        };
        let mut first_panic = None;
        for (_, waiter) in list {
            if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| waiter.fire())) {
                first_panic.get_or_insert(p);
            }
        }
        if let Some(p) = first_panic {
            panic::resume_unwind(p);
        }
    }

    /// Binds `f`: subscribes it (or, if already cancelled, runs it now).
    pub(crate) fn bind<F>(&self, f: F) -> Binding
    where
        F: FnOnce() + Send + 'static,
    {
        let slot: Arc<dyn Fire> = Arc::new(Slot(Mutex::new(Some(f))));
        let key = {
            let mut w = lock(&self.inner.waiters);
            if self.inner.cancelled.load(Ordering::Acquire) {
                None
            } else {
                let key = w.next_key;
                w.next_key += 1;
                w.list.push((key, Arc::clone(&slot)));
                Some(key)
            }
        };
        if key.is_none() {
            slot.fire();
        }
        Binding {
            token: self.clone(),
            key,
            slot,
        }
    }

    fn unsubscribe(&self, key: u64) {
        let mut w = lock(&self.inner.waiters);
        if let Some(i) = w.list.iter().position(|(k, _)| *k == key) {
            w.list.swap_remove(i);
        }
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// The scope's side of a bound call: runs it at scope exit (if cancellation did not), and
/// on drop (handle cancelled, or after running) unsubscribes and drops the call's captures.
pub(crate) struct Binding {
    token: CancelToken,
    key: Option<u64>,
    slot: Arc<dyn Fire>,
}

impl Binding {
    pub(crate) fn fire(self) {
        self.slot.fire();
    }
}

impl Drop for Binding {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.token.unsubscribe(key);
        }
        // Drop the captures now if the call never ran: take it out of the slot, unrun. A
        // concurrent `cancel` that already took the slot's `Arc` finds it empty.
        self.slot.discard();
    }
}
