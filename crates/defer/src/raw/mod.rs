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
//!
//! Every unsafe operation has its own `unsafe` block and a `// SAFETY:` comment.

mod guard;
pub use guard::Guard;

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
