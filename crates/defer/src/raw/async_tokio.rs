//! The `tokio` integration of async scopes: spawning cancelled cleanups, and blocking on one
//! where tokio allows it.

use std::future::poll_fn;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::runtime::{Handle, RuntimeFlavor};

use super::async_scope::Blocked;
use super::async_store::Detached;

/// [`CancelPolicy::SPAWN_TOKIO`](crate::CancelPolicy::SPAWN_TOKIO)'s spawner.
pub(super) fn spawn(d: Detached, limit: Option<Duration>) {
    match Handle::try_current() {
        Ok(h) => {
            h.spawn(async move {
                match limit {
                    Some(limit) => {
                        if tokio::time::timeout(limit, d).await.is_err() {
                            super::async_scope::count_timed_out();
                        }
                    }
                    None => d.await,
                }
            });
        }
        // No runtime to spawn on: this thread may block, so finish the cleanup here.
        Err(_) => super::async_scope::block_detached(d, limit),
    }
}

/// Blocks on a started cleanup (`poll` polls it in place) through tokio when a runtime is
/// current: `Some` result, or `None` when no runtime is current (the caller's own executor
/// applies).
pub(super) fn block_on_cleanup(
    poll: &mut dyn FnMut(&mut Context<'_>) -> Poll<()>,
    limit: Duration,
) -> Option<Blocked> {
    let h = Handle::try_current().ok()?;
    if h.runtime_flavor() != RuntimeFlavor::MultiThread {
        return Some(Blocked::Refused);
    }
    let done = tokio::task::block_in_place(|| {
        h.block_on(tokio::time::timeout(limit, poll_fn(|cx| poll(cx))))
    });
    Some(match done {
        Ok(()) => Blocked::Done,
        Err(_) => Blocked::TimedOut,
    })
}
