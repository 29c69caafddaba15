//! The five ways a request releases its resources.
//!
//! Every strategy runs the same request: wait for a lease (within the deadline, abandoning the
//! wait when the request is cancelled — nothing is held while waiting), hold it through the
//! optional cancellable hold (a simulated downstream call, awaited without taking a thread),
//! then, without awaiting anything, take a buffer, run the work section (`work_us` of CPU
//! filling the buffer), copy it into the response, and release the buffer and the lease. Only
//! the way the release is written differs. The work runs in a task of its own (see
//! `crate::server::work_request`), so a client that goes away during the work cancels the request from
//! the connection's task while the work goes on: only `chain-cancel` releases the lease at that
//! moment, the others when the work section returns (after the CPU burn if it was burning). A
//! request cancelled during its hold enters its strategy already cancelled: the work section
//! returns at once and every strategy releases at once.
//!
//! With `--extra-defers N` ([`ServeConfig::extra_defers`](crate::ServeConfig::extra_defers))
//! each request also defers N calls that close a per-request span (`State::close_span`): the
//! chain strategies register them in the request's scope after the two releases (so they run
//! first), `guard` holds one guard per call, `manual` makes the same calls after the work.
//!
//! The lease is a token: the work section never sees it (each strategy moves it into its
//! release, and `State::work` takes only the buffer and the cancellation token, so the
//! compiler guarantees it). That is what makes `chain-cancel`'s early release sound here. With
//! a real database connection, releasing on cancellation while the work may still be using the
//! connection would be a use-after-release: the work must stop using the resource first (its
//! calls must honour the cancellation and the release wait for them), or the pool must discard
//! the connection instead of reusing it.

use std::cell::RefCell;
use std::sync::Arc;

use bytes::Bytes;
use frugal_defer::CancelToken;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Outcome;
use crate::resources::Lease;
use crate::state::State;
use crate::strategy::Strategy;

/// What a request produced.
pub(crate) type Answer = (Outcome, Option<Bytes>);

/// Runs one work request. `bound` is the cancellation token for `chain-cancel` (`None` for the
/// other strategies).
pub(crate) async fn handle(
    state: Arc<State>,
    token: CancellationToken,
    bound: Option<CancelToken>,
    deadline: Instant,
) -> Answer {
    // A free lease is taken even when the request is already cancelled (the client ended its
    // side of the connection right after its request: it may still read the answer); a wait
    // for one is abandoned.
    let lease = tokio::select! {
        biased;
        lease = state.leases.acquire_until(deadline) => match lease {
            Some(lease) => lease,
            None => return (Outcome::LeaseTimeout, None),
        },
        () = token.cancelled() => return (Outcome::Cancelled, None),
    };
    if state.config.strategy == Strategy::AsyncChain {
        // The async scope awaits the hold inside its body, so a request cancelled during the
        // hold drops the scope mid-body and its cancellation policy returns the lease.
        return match async_chain(&state, lease, &token).await {
            Some(body) => (Outcome::Ok, Some(body)),
            None => (Outcome::Cancelled, None),
        };
    }
    // The hold (a slow downstream call made with the lease) is awaited here, before the
    // strategy's synchronous scope: it takes no thread. Cancelled during it, the request still
    // goes through its strategy, whose work section then returns at once and whose cleanup
    // gives everything back.
    let _ = state.hold(&token).await;
    let body = match (state.config.strategy, bound) {
        (Strategy::Manual, _) => manual(&state, lease, &token),
        (Strategy::Guard, _) => guarded(&state, lease, &token),
        (Strategy::ChainCancel, Some(bound)) => chain_cancel(&state, lease, &token, &bound),
        (Strategy::Chain | Strategy::ChainCancel | Strategy::AsyncChain, _) => {
            chain(&state, lease, &token)
        }
    };
    match body {
        Some(body) => (Outcome::Ok, Some(body)),
        None => (Outcome::Cancelled, None),
    }
}

/// Explicit releases, in the order a careful programmer writes them: the extra calls
/// ([`ServeConfig::extra_defers`](crate::ServeConfig::extra_defers)) first, newest first as a
/// chain would run them, then the buffer, then the lease.
fn manual(state: &State, lease: Lease, token: &CancellationToken) -> Option<Bytes> {
    let opened = std::time::Instant::now();
    let mut buf = state.take_buffer();
    let body = state.work(&mut buf, token);
    for _ in 0..state.config.extra_defers {
        state.close_span(opened);
    }
    state.release_buffer(buf);
    state.release_lease(lease);
    body
}

/// Block guards: the release runs when each guard goes out of scope (panics included).
fn guarded(state: &State, lease: Lease, token: &CancellationToken) -> Option<Bytes> {
    let opened = std::time::Instant::now();
    let _lease = frugal_defer::guard(lease, |lease| state.release_lease(lease));
    let mut buf = frugal_defer::guard(state.take_buffer(), |buf| state.release_buffer(buf));
    with_span_guards(state, opened, state.config.extra_defers, || {
        state.work(&mut buf, token)
    })
}

/// Runs `body` under `n` block guards, each closing the request's span when it drops (newest
/// first): one stack frame per guard, no allocation, as `n` nested `defer!` blocks would.
fn with_span_guards<R>(
    state: &State,
    opened: std::time::Instant,
    n: usize,
    body: impl FnOnce() -> R,
) -> R {
    if n == 0 {
        return body();
    }
    let _span = frugal_defer::guard(opened, |opened| state.close_span(opened));
    with_span_guards(state, opened, n - 1, body)
}

/// A function-scoped chain: one `defer` per resource, run newest first when the scope ends.
fn chain(state: &State, lease: Lease, token: &CancellationToken) -> Option<Bytes> {
    // The deferred call owns nothing the body still uses: the buffer sits in a cell it takes
    // from at exit (Go's `defer pool.Put(buf)` with `buf` a reference).
    let buf = RefCell::new(state.take_buffer());
    frugal_defer::scope(|s| {
        let _ = s.defer(|| state.release_lease(lease));
        let _ = s.defer(|| state.release_buffer(buf.take()));
        defer_spans(s, state);
        state.work(&mut buf.borrow_mut(), token)
    })
}

/// Registers the request's extra deferred calls in its chain: each captures the state and the
/// moment the span opened, and closes the span at exit.
fn defer_spans<'env>(s: &frugal_defer::Scope<'_, 'env>, state: &'env State) {
    let opened = std::time::Instant::now();
    for _ in 0..state.config.extra_defers {
        let _ = s.defer(move || state.close_span(opened));
    }
}

/// Like [`chain`], with the lease's release bound to the request's cancellation: a client that
/// goes away mid-work gives the lease back at once, on the thread that saw it go, while the
/// work section may still be running. Sound only because the lease is a token the work section
/// never touches (it is moved into the release closure; see the module docs for what a real
/// connection would need). A release that ran because of the cancellation is counted in
/// `frugal_pool_leases_released_on_cancel_total`.
fn chain_cancel(
    state: &Arc<State>,
    lease: Lease,
    token: &CancellationToken,
    cancel: &CancelToken,
) -> Option<Bytes> {
    let buf = RefCell::new(state.take_buffer());
    let owner = Arc::clone(state);
    let seen = cancel.clone();
    frugal_defer::scope(|s| {
        let _ = s.defer_until_cancelled(cancel, move || {
            if seen.is_cancelled() {
                owner
                    .metrics
                    .leases_released_on_cancel
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            owner.release_lease(lease);
        });
        let _ = s.defer(|| state.release_buffer(buf.take()));
        defer_spans(s, state);
        state.work(&mut buf.borrow_mut(), token)
    })
}

/// An async scope: the lease goes back through an async cleanup that awaits a simulated reset
/// first; the buffer through a sync one. The request's cancellation drops the scope's future
/// (a lost `select!`): the sync cleanup runs in `Drop`, and the policy spawns the async one,
/// which then counts the lease as released on cancel. Unlike `chain-cancel`, the work section
/// must be at an await for this to happen (here: the hold); CPU work runs to its end first.
async fn async_chain(state: &Arc<State>, lease: Lease, token: &CancellationToken) -> Option<Bytes> {
    use frugal_defer::{async_scope, CancelPolicy};
    // Shared with the sync cleanup (a borrow, like `chain`'s cell); `Send`, as the scope's
    // future runs in a spawned task.
    let buf = std::sync::Mutex::new(state.take_buffer());
    let scope = async_scope!(CancelPolicy::SPAWN_TOKIO, |s| {
        let owner = Arc::clone(state);
        let seen = token.clone();
        s.defer_async(move || async move {
            match owner.config.release_us {
                0 => tokio::task::yield_now().await,
                us => tokio::time::sleep(std::time::Duration::from_micros(us)).await,
            }
            if seen.is_cancelled() {
                owner
                    .metrics
                    .leases_released_on_cancel
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            owner.release_lease(lease);
        });
        let buf = &buf;
        s.defer(move || state.release_buffer(std::mem::take(&mut lock(buf))));
        let opened = std::time::Instant::now();
        for _ in 0..state.config.extra_defers {
            let state: &State = state;
            s.defer(move || state.close_span(opened));
        }
        if !state.hold(token).await {
            return None;
        }
        Some(state.produce(&mut lock(buf)))
    });
    // The scope is polled first, so its body has registered the cleanups before a
    // cancellation can drop it.
    tokio::select! {
        biased;
        body = scope => body,
        () = token.cancelled() => None,
    }
}

/// Locks the request's buffer (nobody panics while holding it).
fn lock(buf: &std::sync::Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    buf.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
