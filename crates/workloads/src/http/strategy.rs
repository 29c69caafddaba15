//! The four ways a request releases its resources.
//!
//! Every strategy runs the same request: wait for a lease (within the deadline, abandoning the
//! wait when the request is cancelled — nothing is held while waiting), then, without awaiting
//! anything, take a buffer, burn `work_us` of CPU filling it, copy it into the response, and
//! release the buffer and the lease. Only the way the release is written differs. The work
//! runs in a task of its own (see `server::work_request`), so a client that goes away during
//! the work cancels the request from the connection's task while the work goes on: only
//! `chain-cancel` releases the lease at that moment, the others when the work ends.

use std::cell::RefCell;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use frugal_defer::CancelToken;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::metrics::Outcome;
use super::resources::Lease;
use super::server::State;

/// How a request releases its buffer and its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Strategy {
    /// An explicit release call on every exit path (the code a `defer` replaces).
    Manual,
    /// Scope guards: `frugal_defer::guard` around the buffer and the lease.
    Guard,
    /// A function-scoped chain: `frugal_defer::scope`, one `s.defer(..)` per resource.
    Chain,
    /// Like `chain`, with the cleanup bound to the request's cancellation: a cancelled request
    /// releases at the moment it is cancelled, not when its code next runs.
    ChainCancel,
}

impl Strategy {
    /// All strategies, in the order benchmarks report them.
    pub const ALL: [Strategy; 4] = [
        Strategy::Manual,
        Strategy::Guard,
        Strategy::Chain,
        Strategy::ChainCancel,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Manual => "manual",
            Strategy::Guard => "guard",
            Strategy::Chain => "chain",
            Strategy::ChainCancel => "chain-cancel",
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| {
                format!("unknown strategy {s:?}; use one of manual, guard, chain, chain-cancel")
            })
    }
}

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
    let lease = tokio::select! {
        biased;
        () = token.cancelled() => return (Outcome::Cancelled, None),
        lease = state.leases.acquire_until(deadline) => match lease {
            Some(lease) => lease,
            None => return (Outcome::LeaseTimeout, None),
        },
    };
    let body = match (state.config.strategy, bound) {
        (Strategy::Manual, _) => manual(&state, lease),
        (Strategy::Guard, _) => guarded(&state, lease),
        (Strategy::ChainCancel, Some(bound)) => chain_cancel(&state, lease, &bound),
        (Strategy::Chain | Strategy::ChainCancel, _) => chain(&state, lease),
    };
    (Outcome::Ok, Some(body))
}

/// Explicit releases, in the order a careful programmer writes them.
fn manual(state: &State, lease: Lease) -> Bytes {
    let mut buf = state.take_buffer();
    let body = state.work(&mut buf);
    state.release_buffer(buf);
    state.release_lease(lease);
    body
}

/// Block guards: the release runs when each guard goes out of scope (panics included).
fn guarded(state: &State, lease: Lease) -> Bytes {
    let _lease = frugal_defer::guard(lease, |lease| state.release_lease(lease));
    let mut buf = frugal_defer::guard(state.take_buffer(), |buf| state.release_buffer(buf));
    state.work(&mut buf)
}

/// A function-scoped chain: one `defer` per resource, run newest first when the scope ends.
fn chain(state: &State, lease: Lease) -> Bytes {
    // The deferred call owns nothing the body still uses: the buffer sits in a cell it takes
    // from at exit (Go's `defer pool.Put(buf)` with `buf` a reference).
    let buf = RefCell::new(state.take_buffer());
    frugal_defer::scope(|s| {
        let _ = s.defer(|| state.release_lease(lease));
        let _ = s.defer(|| state.release_buffer(buf.take()));
        state.work(&mut buf.borrow_mut())
    })
}

/// Like [`chain`], with the lease's release bound to the request's cancellation: a client that
/// goes away mid-work gives the lease back at once, on the thread that saw it go.
fn chain_cancel(state: &Arc<State>, lease: Lease, cancel: &CancelToken) -> Bytes {
    let buf = RefCell::new(state.take_buffer());
    let owner = Arc::clone(state);
    frugal_defer::scope(|s| {
        let _ = s.defer_until_cancelled(cancel, move || owner.release_lease(lease));
        let _ = s.defer(|| state.release_buffer(buf.take()));
        state.work(&mut buf.borrow_mut())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Strategy::ALL {
            assert_eq!(s.name().parse::<Strategy>(), Ok(s));
        }
        assert!("defer".parse::<Strategy>().is_err());
    }
}
