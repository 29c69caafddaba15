//! All of the crate's `unsafe` code lives in this module (the crate root denies `unsafe_code`
//! everywhere else).
//!
//! - [`guard`]: the value-owning [`Guard`], two `ManuallyDrop` fields moved out exactly once.
//! - `chain`: the type-erased LIFO chain — records of a run function and a record size (static
//!   per type) followed by the closure, bump-allocated downwards in the caller's frame and
//!   then in pool segments, with
//!   hand-written per-type thunks and a vtable for handle operations (the `bytes` crate's
//!   pattern). Invariants are listed at the top of `chain.rs`; layout facts are asserted at
//!   compile time.
//! - `pool`: the thread-local free lists of blocks by size class.
//! - `scope`: the public scope types, and the argument why erasing closure lifetimes is sound.
//! - `async_store`: an async scope's records (sync closures, async closures and their futures,
//!   pinned in place; each record followed by a header with its type's run function and
//!   vtable) in an inline area or blocks of their own, and the run slot where futures that
//!   may be handed to another task start; invariants at its top.
//! - `async_scope` (safe code over `async_store`) and `async_tokio`: the public async scope.
//! - `async_guard`: [`async_guarded`]'s hand-written future (structural pinning of the body
//!   and the cleanup's future).
//!
//! Every unsafe operation has its own `unsafe` block and a `// SAFETY:` comment.

mod guard;
pub use guard::Guard;

#[cfg(feature = "async")]
mod async_guard;
#[cfg(feature = "async")]
mod async_scope;
#[cfg(feature = "async")]
mod async_store;
#[cfg(feature = "tokio")]
mod async_tokio;
#[cfg(feature = "std")]
mod chain;
#[cfg(feature = "std")]
mod pool;
#[cfg(feature = "std")]
mod scope;

#[cfg(feature = "std")]
pub use scope::{
    recover, scope, scope_with_capacity, try_scope, try_scope_with_capacity, DeferHandle, Scope,
    TryScope, DEFAULT_CAPACITY,
};

#[cfg(feature = "async")]
pub use async_guard::{async_guarded, AsyncGuarded};
#[cfg(feature = "async")]
pub use async_scope::{
    async_stats, block_on, catch_unwind, AsyncDeferHandle, AsyncScope, AsyncStats, AsyncTryScope,
    CancelPolicy, DEFAULT_ASYNC_CAPACITY,
};
#[cfg(feature = "async")]
pub use async_store::Detached;
