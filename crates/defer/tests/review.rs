//! Regression tests for the review of the sync chain (issue 11): each test pins one finding.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};

use frugal_defer::{
    collateral_discarded, panic_message, recover, scope, take_collateral, try_scope,
    MAX_STASHED_COLLATERAL,
};

mod common;
use common::{boom, boom_id, quiet_hook};

/// A value whose destructor panics with `Boom(id)`.
#[derive(Debug)]
struct PanicOnDrop(usize);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        boom(self.0);
    }
}

#[test]
fn a_panicking_body_value_does_not_replace_the_first_panic_in_recover() {
    quiet_hook();
    let r = recover(|s| {
        s.defer(|| boom(1));
        PanicOnDrop(2)
    });
    let rec = r.expect_err("the deferred call panicked");
    assert_eq!(boom_id(&*rec.payload), Some(1));
    let collateral: Vec<_> = rec.collateral().iter().map(|p| boom_id(&**p)).collect();
    assert_eq!(
        collateral,
        [Some(2)],
        "the value's drop panic is collateral"
    );
}

#[test]
fn a_panicking_body_value_does_not_replace_the_first_panic_in_scope_and_try_scope() {
    quiet_hook();
    let r = panic::catch_unwind(|| {
        scope(|s| {
            s.defer(|| boom(3));
            PanicOnDrop(4)
        })
    });
    assert_eq!(boom_id(&*r.unwrap_err()), Some(3));
    let c: Vec<_> = take_collateral().iter().map(|p| boom_id(&**p)).collect();
    assert_eq!(c, [Some(4)]);

    let r = panic::catch_unwind(|| {
        let _ = try_scope(|s| -> Result<PanicOnDrop, ()> {
            s.defer(|| boom(5));
            Ok(PanicOnDrop(6))
        });
    });
    assert_eq!(boom_id(&*r.unwrap_err()), Some(5));
    let c: Vec<_> = take_collateral().iter().map(|p| boom_id(&**p)).collect();
    assert_eq!(c, [Some(6)]);
}

#[test]
fn collateral_of_an_inner_scope_reaches_the_enclosing_recover() {
    quiet_hook();
    assert!(take_collateral().is_empty());
    let r = recover(|outer| {
        outer.defer(|| boom(13));
        scope(|s| {
            s.defer(|| boom(12));
            s.defer(|| boom(11));
            boom(10);
        })
    });
    let rec = r.unwrap_err();
    assert_eq!(boom_id(&*rec.payload), Some(10));
    let c: Vec<_> = rec.collateral().iter().map(|p| boom_id(&**p)).collect();
    assert_eq!(
        c,
        [Some(11), Some(12), Some(13)],
        "inner collateral, then outer"
    );
    assert!(
        take_collateral().is_empty(),
        "nothing left in thread-local storage"
    );
}

#[test]
fn stashed_collateral_is_bounded_and_the_rest_counted() {
    quiet_hook();
    let before = collateral_discarded();
    // The caught payloads stay alive: stashed collateral is keyed by its payload's address,
    // and a freed payload's address reused by the next panic would let that panic claim the
    // older collateral (a known limit, documented in `panics.rs`).
    let mut caught = Vec::new();
    for i in 0..MAX_STASHED_COLLATERAL + 10 {
        let r = panic::catch_unwind(|| {
            scope(|s| {
                s.defer(move || boom(i));
                panic!("first")
            })
        });
        caught.push(r.expect_err("the body panics"));
    }
    let kept: Vec<_> = take_collateral().iter().map(|p| boom_id(&**p)).collect();
    assert_eq!(kept.len(), MAX_STASHED_COLLATERAL);
    assert_eq!(kept[0], Some(10), "the oldest were dropped");
    assert_eq!(collateral_discarded() - before, 10);
}

/// Runs a scope whose deferred call panics, from a destructor that runs while the thread
/// unwinds: resuming that panic there would abort the process (and this test binary).
struct ScopeInDrop<'a>(&'a Cell<u32>);

impl Drop for ScopeInDrop<'_> {
    fn drop(&mut self) {
        let ran = self.0;
        let v = scope(|s| {
            s.defer(|| boom(21));
            s.defer(move || ran.set(ran.get() + 1));
            7
        });
        assert_eq!(v, 7, "the body's value is returned while unwinding");
        ran.set(ran.get() + 10);
    }
}

#[test]
fn scope_in_a_destructor_during_unwinding_does_not_abort() {
    quiet_hook();
    let ran = Cell::new(0);
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        let _g = ScopeInDrop(&ran);
        boom(20);
    }));
    assert_eq!(boom_id(&*r.unwrap_err()), Some(20));
    assert_eq!(ran.get(), 11);
    let c: Vec<_> = take_collateral().iter().map(|p| boom_id(&**p)).collect();
    assert_eq!(
        c,
        [Some(21)],
        "the scope's panic is kept for take_collateral"
    );
}

#[test]
fn recovered_offers_gos_latest_panic_order() {
    quiet_hook();
    // Go: a panic raised by a deferred call while an earlier panic runs the defers replaces
    // it, and recover() returns the later one ("aborted panic"). This crate keeps the first.
    let rec = recover(|s| {
        s.defer(|| panic!("second"));
        panic!("first");
    })
    .unwrap_err();
    assert_eq!(rec.message(), Some("first"));
    assert_eq!(panic_message(&**rec.latest()), Some("second"));
    let only = recover(|_| -> () { panic!("only") }).unwrap_err();
    assert_eq!(panic_message(&**only.latest()), Some("only"));
}

#[test]
fn scoped_thread_program_compiles_with_a_sync_value() {
    // The `compile_fail` doctest on `Scope` with a `Sync` value in place of the scope: it
    // compiles, so the doctest fails only because `Scope` is not `Sync`.
    let s = std::sync::atomic::AtomicU32::new(0);
    let s = &s;
    std::thread::scope(|t| {
        t.spawn(|| {
            let _ = s.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
    });
    assert_eq!(s.load(std::sync::atomic::Ordering::Relaxed), 1);
}
