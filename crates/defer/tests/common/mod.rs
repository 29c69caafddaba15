//! What the defer crate's test binaries `defer.rs` and `review.rs` share: panics raised on
//! purpose, told apart from real ones, and a panic hook that keeps only the real ones loud.
//! (`mod common;` in each binary: cargo does not build `tests/common/mod.rs` as a test of its
//! own.)

use std::panic;
use std::sync::Once;

/// Panics raised on purpose by these tests carry this payload; the hook keeps them quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boom(pub usize);

/// Installs (once per test binary) a panic hook that prints every panic but a [`Boom`].
pub fn quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Boom>().is_none() {
                default(info);
            }
        }));
    });
}

/// Panics with `Boom(id)`.
pub fn boom(id: usize) -> ! {
    panic::panic_any(Boom(id))
}

/// The id of a [`Boom`] payload; `None` for any other panic.
pub fn boom_id(p: &(dyn std::any::Any + Send)) -> Option<usize> {
    p.downcast_ref::<Boom>().map(|b| b.0)
}
