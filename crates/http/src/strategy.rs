//! The five ways a request releases its resources: the [`Strategy`] a service runs with (the code
//! of each is in the `release` module). A leaf: the service's settings name a strategy, the
//! strategies' code uses the service's state.

use std::str::FromStr;

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
    /// An async scope (`frugal_defer::async_scope!`): the lease is returned by an async
    /// cleanup that first awaits a simulated reset (`release_us`); the hold is awaited inside
    /// the scope. A request cancelled while it runs drops the scope's future, and the
    /// scope's policy (`CancelPolicy::SPAWN_TOKIO`) hands the lease's cleanup to the runtime.
    AsyncChain,
}

impl Strategy {
    /// All strategies, in the order benchmarks report them.
    pub const ALL: [Strategy; 5] = [
        Strategy::Manual,
        Strategy::Guard,
        Strategy::Chain,
        Strategy::ChainCancel,
        Strategy::AsyncChain,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Manual => "manual",
            Strategy::Guard => "guard",
            Strategy::Chain => "chain",
            Strategy::ChainCancel => "chain-cancel",
            Strategy::AsyncChain => "async-chain",
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
                format!(
                    "unknown strategy {s:?}; use one of manual, guard, chain, chain-cancel, \
                     async-chain"
                )
            })
    }
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
