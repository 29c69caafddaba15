//! [`async_guarded`]: one async cleanup whose type is known at compile time, for hot paths
//! where an [`AsyncScope`](crate::AsyncScope)'s type-erased records cost too much. A future
//! written by hand (not an `async` block) so that the body's future is polled where the
//! caller put it: an `async` block would move it from its captures into its await slot, one
//! copy of the whole nested future per level when guards are nested.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use super::async_scope::run_fallback;

/// Runs the sync fallback when dropped armed: the cleanup did not complete.
struct Fallback<G: FnOnce()>(Option<G>);

impl<G: FnOnce()> Drop for Fallback<G> {
    fn drop(&mut self) {
        if let Some(g) = self.0.take() {
            run_fallback(g);
        }
    }
}

/// Where an [`AsyncGuarded`] is: `B` and `CF` are structurally pinned (polled in place,
/// dropped in place by the state change); `C` and `T` are not (moved out).
enum State<B, C, CF, T> {
    Body(B, Option<C>),
    Cleanup(CF, Option<T>),
    Done,
}

/// The future of [`async_guarded`]: the body, then the cleanup, in place; the fallback if
/// dropped before the cleanup completed.
#[must_use = "futures do nothing unless awaited; dropped unpolled, this one runs the fallback"]
pub struct AsyncGuarded<B: Future, C, CF, G: FnOnce()> {
    /// Declared first: dropped before `armed`, so a cut-short future is dropped before the
    /// fallback runs.
    state: State<B, C, CF, B::Output>,
    armed: Fallback<G>,
}

/// Awaits `body`, then `cleanup()`: one async cleanup at the cost of writing its await by
/// hand after the body, with the cancellation path an [`AsyncScope`](crate::AsyncScope)
/// would give it. The sync `fallback` runs instead whenever the cleanup did not complete:
/// the future was dropped before it finished (unpolled, while awaiting the body, or while
/// awaiting the cleanup, whose future is dropped first), or the body or the cleanup panicked (the fallback then
/// runs during unwinding, and the panic propagates). On a normal exit the fallback is dropped
/// unrun. Either way exactly one of the two runs to its end, or the fallback runs after the
/// cleanup was cut short; a panic of the fallback itself is kept for
/// [`take_collateral`](crate::take_collateral), counted with the scopes' fallbacks in
/// [`AsyncStats::fallbacks`](crate::AsyncStats::fallbacks).
///
/// Nothing is type-erased, stored or counted on the normal path, and nothing is moved once
/// polled: the body and then the cleanup's future are polled in place inside the returned
/// [`AsyncGuarded`], whose poll the compiler inlines as it does a hand-written await (measured with
/// `cargo bench -p frugal-defer -- --callgrind --filter guard`; see the crate docs, Step 8).
/// The price is that the cleanups are fixed in the program text: nest calls for several
/// (the outermost cleanup runs last), and use an `AsyncScope` for cleanups registered in
/// loops or branches, for conditions (`errdefer`, `on_success`), handles, or the
/// `Spawn`/`Block` policies.
///
/// ```
/// use std::sync::{Arc, Mutex};
///
/// # frugal_defer::block_on(async {
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let answer = frugal_defer::async_guarded(
///     async { log.lock().unwrap().push("query"); 42 },
///     || async { log.lock().unwrap().push("RESET, then release") },
///     || log.lock().unwrap().push("discard the connection"), // only if cut short
/// )
/// .await;
/// assert_eq!(answer, 42);
/// assert_eq!(*log.lock().unwrap(), ["query", "RESET, then release"]);
/// # });
/// ```
#[inline]
pub fn async_guarded<B, C, CF, G>(body: B, cleanup: C, fallback: G) -> AsyncGuarded<B, C, CF, G>
where
    B: Future,
    C: FnOnce() -> CF,
    CF: Future<Output = ()>,
    G: FnOnce(),
{
    AsyncGuarded {
        state: State::Body(body, Some(cleanup)),
        armed: Fallback(Some(fallback)),
    }
}

impl<B, C, CF, G> Future for AsyncGuarded<B, C, CF, G>
where
    B: Future,
    C: FnOnce() -> CF,
    CF: Future<Output = ()>,
    G: FnOnce(),
{
    type Output = B::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<B::Output> {
        // SAFETY: `B` and `CF` are structurally pinned: below they are only polled through
        // `Pin::new_unchecked` on their place and dropped in place (by assigning `state`);
        // `AsyncGuarded` has no `Drop` of its own and is `Unpin` only if they are. Nothing
        // else is pinned: `C`, `T` and `armed` are moved freely.
        let this = unsafe { self.get_unchecked_mut() };
        loop {
            match &mut this.state {
                State::Body(body, cleanup) => {
                    // SAFETY: the body stays in `state` until dropped in place just below.
                    let body = unsafe { Pin::new_unchecked(body) };
                    let out = ready!(body.poll(cx));
                    let cleanup = cleanup
                        .take()
                        .expect("the cleanup is taken once, when the body finishes");
                    // Drops the finished body in place, then stores the cleanup's future.
                    this.state = State::Cleanup(cleanup(), Some(out));
                }
                State::Cleanup(fut, out) => {
                    // SAFETY: the cleanup's future stays in `state` until dropped in place
                    // just below.
                    let fut = unsafe { Pin::new_unchecked(fut) };
                    ready!(fut.poll(cx));
                    let out = out
                        .take()
                        .expect("the body's output is taken once, when the cleanup finishes");
                    this.state = State::Done;
                    // Completed: the fallback is dropped unrun.
                    drop(this.armed.0.take());
                    return Poll::Ready(out);
                }
                State::Done => panic!("`AsyncGuarded` polled after it completed"),
            }
        }
    }
}

impl<B: Future, C, CF, G: FnOnce()> fmt::Debug for AsyncGuarded<B, C, CF, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Body(..) => "body",
            State::Cleanup(..) => "cleanup",
            State::Done => "done",
        };
        f.debug_struct("AsyncGuarded")
            .field("state", &state)
            .field("armed", &self.armed.0.is_some())
            .finish()
    }
}
