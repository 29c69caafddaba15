//! The measured operations: one function per (strategy, scenario).
//!
//! Every operation "acquires" resources (a counter goes up) and registers their cleanup (the
//! counter goes down, a checksum moves), in the way its strategy prescribes. Each is
//! `#[inline(never)]` so that it is one call in the timing loop and one named function for the
//! simulated counters (callgrind collects inside it by name).

use std::cell::Cell;
use std::hint::black_box;
use std::panic::{self, AssertUnwindSafe};

use frugal_defer::defer;

use super::{Scenario, Strategy};

/// Words of the buffer the `touch` scenario writes to: 8 MiB, larger than L1 and L2.
pub(crate) const TOUCH_WORDS: usize = 1 << 20;
/// Defers per operation in the `touch` scenario.
pub(crate) const TOUCH_DEFERS: usize = 16;
/// Defers registered before the panic in the `panic` scenario.
pub(crate) const PANIC_DEFERS: usize = 4;
/// Largest loop count any scenario uses.
const MAX_LOOP: usize = 64;

/// The state every operation works on.
pub(crate) struct Env {
    /// Resources currently held: back to zero after every operation.
    open: Cell<u64>,
    /// Checksum of released ids: keeps the cleanups observable.
    sum: Cell<u64>,
    /// The buffer the `touch` cleanups write to, one pseudo-random cache line each.
    buf: Vec<Cell<u64>>,
}

impl Env {
    /// A fresh state with the `touch` buffer allocated and faulted in.
    pub(crate) fn new() -> Env {
        Env {
            open: Cell::new(0),
            sum: Cell::new(0),
            buf: (0..TOUCH_WORDS).map(|i| Cell::new(i as u64)).collect(),
        }
    }

    /// Resources still held; non-zero means a strategy leaked a cleanup.
    pub(crate) fn open(&self) -> u64 {
        self.open.get()
    }
}

/// An operation: one call of the measured function with a per-call seed.
pub(crate) type Op = fn(&Env, u64);

#[inline(always)]
fn acquire(env: &Env, id: u64) -> u64 {
    env.open.set(env.open.get() + 1);
    black_box(id)
}

#[inline(always)]
fn release(env: &Env, id: u64) {
    env.open.set(env.open.get() - 1);
    env.sum.set(env.sum.get().wrapping_add(id));
}

#[inline(always)]
fn release_touch(env: &Env, id: u64) {
    release(env, id);
    // A multiplicative hash picks a pseudo-random word, so nearly every release misses L1.
    let idx = ((id.wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 20) as usize & (TOUCH_WORDS - 1);
    let cell = &env.buf[idx];
    cell.set(cell.get().wrapping_add(1));
}

/// The loop count, hidden from the optimizer so loops stay loops.
#[inline(always)]
fn n(count: usize) -> usize {
    black_box(count).min(MAX_LOOP)
}

/// Starts an unwind without running the panic hook (nothing is printed per operation).
fn boom() -> ! {
    panic::resume_unwind(Box::new(Boom))
}

/// The payload of the panic scenario.
struct Boom;

/// Runs `f`, swallowing the panic scenario's unwind.
#[inline(always)]
fn catch(f: impl FnOnce()) {
    let _ = black_box(panic::catch_unwind(AssertUnwindSafe(f)));
}

/// A `Vec<Box<dyn FnOnce()>>` run in reverse on drop: the naive closure list.
struct BoxList<'a>(Vec<Box<dyn FnOnce() + 'a>>);

impl Drop for BoxList<'_> {
    fn drop(&mut self) {
        while let Some(f) = self.0.pop() {
            f();
        }
    }
}

/// A batch of held ids released in reverse: what one guard owns in the loop scenarios.
struct Held {
    ids: [u64; MAX_LOOP],
    len: usize,
}

impl Held {
    fn new() -> Held {
        Held {
            ids: [0; MAX_LOOP],
            len: 0,
        }
    }
    fn push(&mut self, id: u64) {
        self.ids[self.len] = id;
        self.len += 1;
    }
    fn release_all(&self, env: &Env, touch: bool) {
        for &id in self.ids[..self.len].iter().rev() {
            if touch {
                release_touch(env, id);
            } else {
                release(env, id);
            }
        }
    }
}

// ---------------------------------------------------------------- manual

#[inline(never)]
fn one_manual(env: &Env, s: u64) {
    let id = acquire(env, s);
    release(env, id);
}

#[inline(never)]
fn straight8_manual(env: &Env, s: u64) {
    let a = acquire(env, s);
    let b = acquire(env, s + 1);
    let c = acquire(env, s + 2);
    let d = acquire(env, s + 3);
    let e = acquire(env, s + 4);
    let f = acquire(env, s + 5);
    let g = acquire(env, s + 6);
    let h = acquire(env, s + 7);
    release(env, h);
    release(env, g);
    release(env, f);
    release(env, e);
    release(env, d);
    release(env, c);
    release(env, b);
    release(env, a);
}

#[inline(always)]
fn loop_manual(env: &Env, s: u64, count: usize, touch: bool) {
    let mut held = Held::new();
    for i in 0..n(count) {
        held.push(acquire(env, s + i as u64));
    }
    held.release_all(env, touch);
}

#[inline(never)]
fn loop8_manual(env: &Env, s: u64) {
    loop_manual(env, s, 8, false);
}

#[inline(never)]
fn loop64_manual(env: &Env, s: u64) {
    loop_manual(env, s, 64, false);
}

#[inline(never)]
fn touch_manual(env: &Env, s: u64) {
    loop_manual(env, s * TOUCH_DEFERS as u64, TOUCH_DEFERS, true);
}

#[inline(never)]
fn panic_manual(env: &Env, s: u64) {
    catch(|| {
        let mut held = Held::new();
        // Manual cleanup on a panic path needs its own catch-and-rethrow.
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            for i in 0..n(PANIC_DEFERS) {
                held.push(acquire(env, s + i as u64));
            }
            boom();
        }));
        held.release_all(env, false);
        if let Err(payload) = r {
            panic::resume_unwind(payload);
        }
    });
}

// ---------------------------------------------------------------- frugal_defer::defer! / guard

#[inline(never)]
fn one_guard(env: &Env, s: u64) {
    let id = acquire(env, s);
    defer! { release(env, id); }
}

#[inline(never)]
fn straight8_guard(env: &Env, s: u64) {
    let a = acquire(env, s);
    defer! { release(env, a); }
    let b = acquire(env, s + 1);
    defer! { release(env, b); }
    let c = acquire(env, s + 2);
    defer! { release(env, c); }
    let d = acquire(env, s + 3);
    defer! { release(env, d); }
    let e = acquire(env, s + 4);
    defer! { release(env, e); }
    let f = acquire(env, s + 5);
    defer! { release(env, f); }
    let g = acquire(env, s + 6);
    defer! { release(env, g); }
    let h = acquire(env, s + 7);
    defer! { release(env, h); }
}

#[inline(always)]
fn loop_guard(env: &Env, s: u64, count: usize, touch: bool) {
    // A block guard cannot outlive its loop iteration, so one guard owns the whole batch.
    let mut held = frugal_defer::guard(Held::new(), |h| h.release_all(env, touch));
    for i in 0..n(count) {
        held.push(acquire(env, s + i as u64));
    }
}

#[inline(never)]
fn loop8_guard(env: &Env, s: u64) {
    loop_guard(env, s, 8, false);
}

#[inline(never)]
fn loop64_guard(env: &Env, s: u64) {
    loop_guard(env, s, 64, false);
}

#[inline(never)]
fn touch_guard(env: &Env, s: u64) {
    loop_guard(env, s * TOUCH_DEFERS as u64, TOUCH_DEFERS, true);
}

#[inline(never)]
fn panic_guard(env: &Env, s: u64) {
    catch(|| {
        let a = acquire(env, s);
        defer! { release(env, a); }
        let b = acquire(env, s + 1);
        defer! { release(env, b); }
        let c = acquire(env, s + 2);
        defer! { release(env, c); }
        let d = acquire(env, s + 3);
        defer! { release(env, d); }
        boom();
    });
}

// ---------------------------------------------------------------- scopeguard

#[inline(never)]
fn one_scopeguard(env: &Env, s: u64) {
    let id = acquire(env, s);
    scopeguard::defer! { release(env, id); }
}

#[inline(never)]
fn straight8_scopeguard(env: &Env, s: u64) {
    let a = acquire(env, s);
    scopeguard::defer! { release(env, a); }
    let b = acquire(env, s + 1);
    scopeguard::defer! { release(env, b); }
    let c = acquire(env, s + 2);
    scopeguard::defer! { release(env, c); }
    let d = acquire(env, s + 3);
    scopeguard::defer! { release(env, d); }
    let e = acquire(env, s + 4);
    scopeguard::defer! { release(env, e); }
    let f = acquire(env, s + 5);
    scopeguard::defer! { release(env, f); }
    let g = acquire(env, s + 6);
    scopeguard::defer! { release(env, g); }
    let h = acquire(env, s + 7);
    scopeguard::defer! { release(env, h); }
}

#[inline(always)]
fn loop_scopeguard(env: &Env, s: u64, count: usize, touch: bool) {
    let mut held = scopeguard::guard(Held::new(), |h| h.release_all(env, touch));
    for i in 0..n(count) {
        held.push(acquire(env, s + i as u64));
    }
}

#[inline(never)]
fn loop8_scopeguard(env: &Env, s: u64) {
    loop_scopeguard(env, s, 8, false);
}

#[inline(never)]
fn loop64_scopeguard(env: &Env, s: u64) {
    loop_scopeguard(env, s, 64, false);
}

#[inline(never)]
fn touch_scopeguard(env: &Env, s: u64) {
    loop_scopeguard(env, s * TOUCH_DEFERS as u64, TOUCH_DEFERS, true);
}

#[inline(never)]
fn panic_scopeguard(env: &Env, s: u64) {
    catch(|| {
        let a = acquire(env, s);
        scopeguard::defer! { release(env, a); }
        let b = acquire(env, s + 1);
        scopeguard::defer! { release(env, b); }
        let c = acquire(env, s + 2);
        scopeguard::defer! { release(env, c); }
        let d = acquire(env, s + 3);
        scopeguard::defer! { release(env, d); }
        boom();
    });
}

// ---------------------------------------------------------------- Vec<Box<dyn FnOnce()>>

#[inline(never)]
fn one_boxvec(env: &Env, s: u64) {
    let mut list = BoxList(Vec::new());
    let id = acquire(env, s);
    list.0.push(Box::new(move || release(env, id)));
}

#[inline(never)]
fn straight8_boxvec(env: &Env, s: u64) {
    let mut list = BoxList(Vec::new());
    let a = acquire(env, s);
    list.0.push(Box::new(move || release(env, a)));
    let b = acquire(env, s + 1);
    list.0.push(Box::new(move || release(env, b)));
    let c = acquire(env, s + 2);
    list.0.push(Box::new(move || release(env, c)));
    let d = acquire(env, s + 3);
    list.0.push(Box::new(move || release(env, d)));
    let e = acquire(env, s + 4);
    list.0.push(Box::new(move || release(env, e)));
    let f = acquire(env, s + 5);
    list.0.push(Box::new(move || release(env, f)));
    let g = acquire(env, s + 6);
    list.0.push(Box::new(move || release(env, g)));
    let h = acquire(env, s + 7);
    list.0.push(Box::new(move || release(env, h)));
}

#[inline(always)]
fn loop_boxvec(env: &Env, s: u64, count: usize, touch: bool) {
    let mut list = BoxList(Vec::new());
    for i in 0..n(count) {
        let id = acquire(env, s + i as u64);
        if touch {
            list.0.push(Box::new(move || release_touch(env, id)));
        } else {
            list.0.push(Box::new(move || release(env, id)));
        }
    }
}

#[inline(never)]
fn loop8_boxvec(env: &Env, s: u64) {
    loop_boxvec(env, s, 8, false);
}

#[inline(never)]
fn loop64_boxvec(env: &Env, s: u64) {
    loop_boxvec(env, s, 64, false);
}

#[inline(never)]
fn touch_boxvec(env: &Env, s: u64) {
    loop_boxvec(env, s * TOUCH_DEFERS as u64, TOUCH_DEFERS, true);
}

#[inline(never)]
fn panic_boxvec(env: &Env, s: u64) {
    catch(|| {
        let mut list = BoxList(Vec::new());
        for i in 0..n(PANIC_DEFERS) {
            let id = acquire(env, s + i as u64);
            list.0.push(Box::new(move || release(env, id)));
        }
        boom();
    });
}

// ---------------------------------------------------------------- frugal_defer chain

/// Inline area of the chain-inline strategy where the default (512 B) is too small: 64 records
/// of 16 B header + 16 B closure.
const BIG_INLINE: usize = 4096;
/// Inline area of the chain-overflow strategy: none, every record goes to the pool.
const NO_INLINE: usize = 0;
use frugal_defer::DEFAULT_CAPACITY;

#[inline(always)]
fn chain_one<const CAP: usize>(env: &Env, s: u64) {
    frugal_defer::scope_with_capacity::<CAP, _, _>(|sc| {
        let id = acquire(env, s);
        let _ = sc.defer(move || release(env, id));
    });
}

#[inline(always)]
fn chain_straight8<const CAP: usize>(env: &Env, s: u64) {
    frugal_defer::scope_with_capacity::<CAP, _, _>(|sc| {
        let a = acquire(env, s);
        let _ = sc.defer(move || release(env, a));
        let b = acquire(env, s + 1);
        let _ = sc.defer(move || release(env, b));
        let c = acquire(env, s + 2);
        let _ = sc.defer(move || release(env, c));
        let d = acquire(env, s + 3);
        let _ = sc.defer(move || release(env, d));
        let e = acquire(env, s + 4);
        let _ = sc.defer(move || release(env, e));
        let f = acquire(env, s + 5);
        let _ = sc.defer(move || release(env, f));
        let g = acquire(env, s + 6);
        let _ = sc.defer(move || release(env, g));
        let h = acquire(env, s + 7);
        let _ = sc.defer(move || release(env, h));
    });
}

/// `COUNT` and `TOUCH` are parameters of the type, not arguments, so that every scenario
/// gets a scope closure of its own type: with one closure type shared by several callers,
/// `catch_unwind`'s `do_call::<F>` has several call sites and LLVM keeps it out of line, so
/// the chain's cursor lives in memory (about 22 instead of 12 instructions per defer in
/// loop64, measured under callgrind) — that would measure an inlining accident, not the chain.
#[inline(always)]
fn chain_loop<const CAP: usize, const COUNT: usize, const TOUCH: bool>(env: &Env, s: u64) {
    frugal_defer::scope_with_capacity::<CAP, _, _>(|sc| {
        for i in 0..n(COUNT) {
            let id = acquire(env, s + i as u64);
            if TOUCH {
                let _ = sc.defer(move || release_touch(env, id));
            } else {
                let _ = sc.defer(move || release(env, id));
            }
        }
    });
}

#[inline(always)]
fn chain_panic<const CAP: usize>(env: &Env, s: u64) {
    catch(|| {
        frugal_defer::scope_with_capacity::<CAP, _, _>(|sc| {
            for i in 0..n(PANIC_DEFERS) {
                let id = acquire(env, s + i as u64);
                let _ = sc.defer(move || release(env, id));
            }
            boom();
        })
    });
}

#[inline(never)]
fn one_chain_inline(env: &Env, s: u64) {
    chain_one::<DEFAULT_CAPACITY>(env, s);
}
#[inline(never)]
fn straight8_chain_inline(env: &Env, s: u64) {
    chain_straight8::<DEFAULT_CAPACITY>(env, s);
}
#[inline(never)]
fn loop8_chain_inline(env: &Env, s: u64) {
    chain_loop::<DEFAULT_CAPACITY, 8, false>(env, s);
}
#[inline(never)]
fn loop64_chain_inline(env: &Env, s: u64) {
    chain_loop::<BIG_INLINE, 64, false>(env, s);
}
#[inline(never)]
fn touch_chain_inline(env: &Env, s: u64) {
    chain_loop::<BIG_INLINE, TOUCH_DEFERS, true>(env, s * TOUCH_DEFERS as u64);
}
#[inline(never)]
fn panic_chain_inline(env: &Env, s: u64) {
    chain_panic::<DEFAULT_CAPACITY>(env, s);
}
#[inline(never)]
fn one_chain_overflow(env: &Env, s: u64) {
    chain_one::<NO_INLINE>(env, s);
}
#[inline(never)]
fn straight8_chain_overflow(env: &Env, s: u64) {
    chain_straight8::<NO_INLINE>(env, s);
}
#[inline(never)]
fn loop8_chain_overflow(env: &Env, s: u64) {
    chain_loop::<NO_INLINE, 8, false>(env, s);
}
#[inline(never)]
fn loop64_chain_overflow(env: &Env, s: u64) {
    chain_loop::<NO_INLINE, 64, false>(env, s);
}
#[inline(never)]
fn touch_chain_overflow(env: &Env, s: u64) {
    chain_loop::<NO_INLINE, TOUCH_DEFERS, true>(env, s * TOUCH_DEFERS as u64);
}
#[inline(never)]
fn panic_chain_overflow(env: &Env, s: u64) {
    chain_panic::<NO_INLINE>(env, s);
}

// ---------------------------------------------------------------- the table

/// The operation of `strategy` in `scenario`, or `None` when that pair is not measured.
pub(crate) fn lookup(strategy: Strategy, scenario: Scenario) -> Option<Op> {
    use Scenario as Sc;
    use Strategy as St;
    let op: Op = match (strategy, scenario) {
        (St::Manual, Sc::One) => one_manual,
        (St::Manual, Sc::Straight8) => straight8_manual,
        (St::Manual, Sc::Loop8) => loop8_manual,
        (St::Manual, Sc::Loop64) => loop64_manual,
        (St::Manual, Sc::Touch) => touch_manual,
        (St::Manual, Sc::Panic) => panic_manual,
        (St::Guard, Sc::One) => one_guard,
        (St::Guard, Sc::Straight8) => straight8_guard,
        (St::Guard, Sc::Loop8) => loop8_guard,
        (St::Guard, Sc::Loop64) => loop64_guard,
        (St::Guard, Sc::Touch) => touch_guard,
        (St::Guard, Sc::Panic) => panic_guard,
        (St::Scopeguard, Sc::One) => one_scopeguard,
        (St::Scopeguard, Sc::Straight8) => straight8_scopeguard,
        (St::Scopeguard, Sc::Loop8) => loop8_scopeguard,
        (St::Scopeguard, Sc::Loop64) => loop64_scopeguard,
        (St::Scopeguard, Sc::Touch) => touch_scopeguard,
        (St::Scopeguard, Sc::Panic) => panic_scopeguard,
        (St::BoxVec, Sc::One) => one_boxvec,
        (St::BoxVec, Sc::Straight8) => straight8_boxvec,
        (St::BoxVec, Sc::Loop8) => loop8_boxvec,
        (St::BoxVec, Sc::Loop64) => loop64_boxvec,
        (St::BoxVec, Sc::Touch) => touch_boxvec,
        (St::BoxVec, Sc::Panic) => panic_boxvec,
        (St::ChainInline, Sc::One) => one_chain_inline,
        (St::ChainInline, Sc::Straight8) => straight8_chain_inline,
        (St::ChainInline, Sc::Loop8) => loop8_chain_inline,
        (St::ChainInline, Sc::Loop64) => loop64_chain_inline,
        (St::ChainInline, Sc::Touch) => touch_chain_inline,
        (St::ChainInline, Sc::Panic) => panic_chain_inline,
        (St::ChainOverflow, Sc::One) => one_chain_overflow,
        (St::ChainOverflow, Sc::Straight8) => straight8_chain_overflow,
        (St::ChainOverflow, Sc::Loop8) => loop8_chain_overflow,
        (St::ChainOverflow, Sc::Loop64) => loop64_chain_overflow,
        (St::ChainOverflow, Sc::Touch) => touch_chain_overflow,
        (St::ChainOverflow, Sc::Panic) => panic_chain_overflow,
    };
    Some(op)
}

/// The symbol-name fragment of an operation, for the simulated counters (callgrind matches
/// `*defer_bench::ops::<name>*`).
pub(crate) fn symbol(strategy: Strategy, scenario: Scenario) -> String {
    format!("{}_{}", scenario.key(), strategy.symbol_suffix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_releases_what_it_acquires() {
        let env = Env::new();
        for strategy in Strategy::ALL {
            for scenario in Scenario::ALL {
                if let Some(op) = lookup(strategy, scenario) {
                    let before = env.sum.get();
                    op(&env, 1000);
                    assert_eq!(env.open(), 0, "{strategy:?}/{scenario:?} leaked");
                    assert_ne!(
                        env.sum.get(),
                        before,
                        "{strategy:?}/{scenario:?} released nothing"
                    );
                }
            }
        }
    }
}
