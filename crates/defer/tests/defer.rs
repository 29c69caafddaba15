//! Integration tests of frugal-defer through its public API: guards, the chain, panics,
//! result-aware calls, handles, storage paths, cancellation, statistics, and property tests.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use frugal_defer::{
    guard, guard_on_success, guard_on_unwind, panic_message, recover, scope, scope_with_capacity,
    stats, take_collateral, try_scope, CancelToken, Guard, Scope,
};
use proptest::prelude::*;

mod common;
use common::{boom, boom_id, quiet_hook};

/// Counts its drops in a shared counter (scopeguard's test pattern).
struct DropCount<'a>(&'a Cell<u32>);

impl Drop for DropCount<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

// ---------------------------------------------------------------- block guards

#[test]
fn defer_macro_runs_in_reverse_order_at_block_end() {
    let log = RefCell::new(Vec::new());
    {
        frugal_defer::defer! { log.borrow_mut().push(1); }
        frugal_defer::defer! { log.borrow_mut().push(2); }
        log.borrow_mut().push(0);
    }
    assert_eq!(*log.borrow(), [0, 2, 1]);
}

#[test]
fn defer_macro_runs_on_unwind() {
    quiet_hook();
    let ran = Cell::new(false);
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        frugal_defer::defer! { ran.set(true); }
        boom(0);
    }));
    assert!(r.is_err());
    assert!(ran.get());
}

#[test]
fn guard_strategies() {
    quiet_hook();
    let (always, unwind, success) = (Cell::new(0), Cell::new(0), Cell::new(0));
    let inc = |c: &Cell<u32>| c.set(c.get() + 1);
    {
        let _a = guard((), |()| inc(&always));
        let _u = guard_on_unwind((), |()| inc(&unwind));
        let _s = guard_on_success((), |()| inc(&success));
    }
    assert_eq!((always.get(), unwind.get(), success.get()), (1, 0, 1));
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        let _a = guard((), |()| inc(&always));
        let _u = guard_on_unwind((), |()| inc(&unwind));
        let _s = guard_on_success((), |()| inc(&success));
        boom(1);
    }));
    assert!(r.is_err());
    assert_eq!((always.get(), unwind.get(), success.get()), (2, 1, 1));
}

#[test]
fn guard_derefs_and_into_inner_defuses_dropping_closure_once() {
    let drops = Cell::new(0);
    let called = Cell::new(false);
    let mut g = guard(vec![1], {
        let d = DropCount(&drops);
        let called = &called;
        move |_v| {
            let _d = &d;
            called.set(true);
        }
    });
    g.push(2);
    assert_eq!(g.len(), 2);
    let v = Guard::into_inner(g);
    assert_eq!(v, [1, 2]);
    assert!(!called.get());
    assert_eq!(
        drops.get(),
        1,
        "the closure is dropped exactly once, uncalled"
    );
}

#[test]
fn guard_value_and_closure_dropped_once_when_strategy_declines() {
    let (value_drops, fn_drops) = (Cell::new(0), Cell::new(0));
    {
        let v = DropCount(&value_drops);
        let f = DropCount(&fn_drops);
        let _g = guard_on_unwind(v, move |_v| {
            let _f = &f;
            unreachable!("no unwinding here");
        });
    }
    assert_eq!((value_drops.get(), fn_drops.get()), (1, 1));
}

// ---------------------------------------------------------------- the chain

fn push_from_helper<'env>(s: &Scope<'_, 'env>, log: &'env RefCell<Vec<String>>, what: &str) {
    let what = what.to_string();
    s.defer(move || log.borrow_mut().push(what));
}

#[test]
fn chain_runs_lifo_across_loops_branches_and_helpers() {
    let log = RefCell::new(Vec::new());
    let out = scope(|s| {
        let log = &log;
        for i in 0..3 {
            if i % 2 == 0 {
                s.defer(move || log.borrow_mut().push(format!("even {i}")));
            } else {
                push_from_helper(s, log, &format!("odd {i}"));
            }
        }
        log.borrow_mut().push("body".into());
        7
    });
    assert_eq!(out, 7);
    assert_eq!(*log.borrow(), ["body", "even 2", "odd 1", "even 0"]);
}

#[test]
fn captures_are_evaluated_at_registration() {
    let log = RefCell::new(Vec::new());
    scope(|s| {
        let mut x = 1;
        let l = &log;
        s.defer(move || l.borrow_mut().push(x));
        x = 2;
        s.defer(move || l.borrow_mut().push(x));
    });
    assert_eq!(*log.borrow(), [2, 1]);
}

#[test]
fn panic_in_body_runs_all_and_resumes_it() {
    quiet_hook();
    let n = Cell::new(0);
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        scope(|s| {
            let n = &n;
            for _ in 0..5 {
                s.defer(move || n.set(n.get() + 1));
            }
            boom(7);
        })
    }));
    assert_eq!(boom_id(&*r.unwrap_err()), Some(7));
    assert_eq!(n.get(), 5);
    assert!(take_collateral().is_empty());
}

#[test]
fn panics_in_deferred_calls_do_not_abort_and_are_collateral() {
    quiet_hook();
    let log = RefCell::new(Vec::new());
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        scope(|s| {
            let l = &log;
            s.defer(move || l.borrow_mut().push(0));
            s.defer(|| boom(2));
            s.defer(move || l.borrow_mut().push(1));
            s.defer(|| boom(1));
            s.defer(move || l.borrow_mut().push(2));
            boom(0);
        })
    }));
    assert_eq!(boom_id(&*r.unwrap_err()), Some(0));
    assert_eq!(*log.borrow(), [2, 1, 0]);
    let collateral: Vec<_> = take_collateral().iter().map(|p| boom_id(&**p)).collect();
    assert_eq!(collateral, [Some(1), Some(2)]);
}

#[test]
fn first_panic_from_a_deferred_call_when_body_succeeds() {
    quiet_hook();
    let r = recover(|s| {
        s.defer(|| boom(3));
        s.defer(|| boom(4));
        "value"
    });
    let rec = r.unwrap_err();
    assert_eq!(
        boom_id(&*rec.payload),
        Some(4),
        "newest deferred call ran first"
    );
    assert_eq!(rec.collateral().len(), 1);
    assert!(rec.to_string().contains("non-string payload"));
}

#[test]
fn recover_returns_ok_without_panic_and_message_with_one() {
    assert_eq!(recover(|_| 5).unwrap(), 5);
    quiet_hook();
    let rec = recover(|_| -> () { std::panic::resume_unwind(Box::new(String::from("msg"))) })
        .unwrap_err();
    assert_eq!(rec.message(), Some("msg"));
    assert_eq!(panic_message(&*rec.into_payload()), Some("msg"));
}

#[test]
fn on_panic_sees_the_panic_in_flight_only() {
    quiet_hook();
    let seen = RefCell::new(Vec::new());
    let _ = recover(|s| {
        let seen = &seen;
        s.on_panic(move |p| seen.borrow_mut().push(boom_id(p)));
        s.defer(|| boom(9)); // runs before the on_panic call: a panic is now in flight
    });
    let _ = recover(|s| {
        let seen = &seen;
        s.on_panic(move |p| seen.borrow_mut().push(boom_id(p)));
    });
    assert_eq!(*seen.borrow(), [Some(9)]);
}

#[test]
fn errdefer_on_success_finally() {
    quiet_hook();
    let log = RefCell::new(Vec::<String>::new());
    let run = |fail: bool| -> Result<u32, String> {
        try_scope(|s| {
            let l = &log;
            s.errdefer(move |e| l.borrow_mut().push(format!("err {e:?}")));
            s.on_success(move || l.borrow_mut().push("ok".into()));
            s.finally(move |r: &mut Result<u32, String>| {
                l.borrow_mut().push(format!("finally {r:?}"));
                if let Ok(v) = r {
                    *v += 1;
                }
            });
            if fail {
                return Err("bad".into());
            }
            Ok(1)
        })
    };
    assert_eq!(run(false), Ok(2));
    assert_eq!(*log.borrow(), ["finally Ok(1)", "ok"]);
    log.borrow_mut().clear();
    assert_eq!(run(true), Err("bad".into()));
    assert_eq!(
        *log.borrow(),
        [r#"finally Err("bad")"#, r#"err Some("bad")"#]
    );

    // A panic: errdefer runs with None, on_success and finally do not.
    log.borrow_mut().clear();
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        try_scope(|s| -> Result<(), ()> {
            let l = &log;
            s.errdefer(move |e| l.borrow_mut().push(format!("err {e:?}")));
            s.on_success(move || l.borrow_mut().push("ok".into()));
            s.finally(move |_| l.borrow_mut().push("finally".into()));
            boom(5)
        })
    }));
    assert!(r.is_err());
    assert_eq!(*log.borrow(), ["err None"]);
}

#[test]
fn finally_rewrite_is_seen_by_older_calls() {
    let log = RefCell::new(Vec::<&str>::new());
    let r: Result<u8, &str> = try_scope(|s| {
        let l = &log;
        s.errdefer(move |_| l.borrow_mut().push("rollback"));
        s.on_success(move || l.borrow_mut().push("commit"));
        s.finally(|r: &mut Result<u8, &str>| *r = Ok(0));
        Err("transient")
    });
    assert_eq!(r, Ok(0));
    assert_eq!(*log.borrow(), ["commit"]);
}

#[test]
fn errdefer_runs_when_a_deferred_call_panics_after_ok() {
    quiet_hook();
    let log = RefCell::new(Vec::<&str>::new());
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        try_scope(|s| -> Result<(), ()> {
            let l = &log;
            s.errdefer(move |e| {
                assert!(e.is_none());
                l.borrow_mut().push("rollback")
            });
            s.on_success(move || l.borrow_mut().push("commit"));
            s.defer(|| boom(1));
            Ok(())
        })
    }));
    assert!(r.is_err());
    assert_eq!(*log.borrow(), ["rollback"]);
}

#[test]
fn handles_cancel_drops_captures_now_and_run_now_runs_once() {
    let drops = Cell::new(0);
    let runs = Cell::new(0);
    scope(|s| {
        let (drops, runs) = (&drops, &runs);
        let d = DropCount(drops);
        let h = s.defer(move || {
            let _d = &d;
            runs.set(runs.get() + 1);
        });
        h.cancel();
        assert_eq!(drops.get(), 1, "captures dropped at cancel");
        let d = DropCount(drops);
        let h = s.defer(move || {
            let _d = d;
            runs.set(runs.get() + 10);
        });
        h.run_now();
        assert_eq!((drops.get(), runs.get()), (2, 10));
    });
    assert_eq!((drops.get(), runs.get()), (2, 10));
}

#[test]
fn run_now_panic_propagates_into_body_and_rest_still_runs() {
    quiet_hook();
    let n = Cell::new(0);
    let rec = recover(|s| {
        let n = &n;
        s.defer(move || n.set(n.get() + 1));
        s.defer(|| boom(11)).run_now();
        unreachable!("run_now panicked");
    })
    .unwrap_err();
    assert_eq!(boom_id(&*rec.payload), Some(11));
    assert_eq!(n.get(), 1);
}

// ---------------------------------------------------------------- storage paths

#[repr(align(32))]
struct Align32([u8; 32]);
#[repr(align(128))]
struct Align128([u8; 8]);

#[test]
fn storage_paths_inline_pool_heap() {
    let sum = Cell::new(0usize);
    let before = stats();
    scope(|s| {
        let sum = &sum;
        s.defer(move || sum.set(sum.get() + 1)); // inline
        let big = [1u8; 600];
        s.defer(move || sum.set(sum.get() + big.iter().map(|&b| b as usize).sum::<usize>())); // pool (too large)
        let a = Align32([1; 32]);
        s.defer(move || sum.set(sum.get() + std::hint::black_box(&a).0.len())); // pool (over-aligned)
        let a = Align128([1; 8]);
        s.defer(move || sum.set(sum.get() + std::hint::black_box(&a).0.len())); // heap (beyond the pool's alignment)
        let huge = vec![1u8; 5000].into_iter().collect::<Vec<_>>();
        let huge: [u8; 5000] = huge.try_into().unwrap();
        s.defer(move || sum.set(sum.get() + huge.len())); // heap (larger than 4 KiB)
    });
    assert_eq!(sum.get(), 1 + 600 + 32 + 8 + 5000);
    let d = stats().since(&before);
    assert_eq!((d.registered, d.inline, d.pooled, d.heap), (5, 1, 2, 2));
    // Two pool blocks of their own (1 KiB and 64 B); the four stub records fit inline, so no
    // segment; the heap closures are not pool blocks.
    assert_eq!(d.pool_hits + d.pool_misses, 2, "{d:?}");
}

/// Runs `register` in a scope twice and checks the statistics of both runs: `registered`,
/// `inline`, `pooled`, `heap` as given, `blocks` pool blocks taken each time, and the second
/// run takes them all from the pool (the first run released them).
#[cfg(target_pointer_width = "64")]
fn assert_accounting(what: &str, expected: (u64, u64, u64, u64), blocks: u64, run: &dyn Fn()) {
    for pass in ["first", "rerun"] {
        let before = stats();
        run();
        let d = stats().since(&before);
        assert_eq!(
            (d.registered, d.inline, d.pooled, d.heap),
            expected,
            "{what}, {pass}: {d:?}"
        );
        assert_eq!(
            d.registered,
            d.inline + d.pooled + d.heap,
            "{what}, {pass}: {d:?}"
        );
        assert_eq!(
            d.pool_hits + d.pool_misses,
            blocks,
            "{what}, {pass}: blocks taken from the pool: {d:?}"
        );
        if pass == "rerun" {
            assert_eq!(
                d.pool_misses, 0,
                "{what}: the rerun reuses every block: {d:?}"
            );
        }
    }
}

#[test]
#[cfg(target_pointer_width = "64")] // sizes in bytes assume 8-byte words
fn every_large_closure_takes_a_pool_block_of_its_own() {
    // An 808-byte closure (an 824-byte record, over the 512-byte segment limit) gets its own
    // 1 KiB block and a 24-byte stub record; a 2 KiB segment (2024 bytes after its header)
    // holds 84 stubs. Regression: the registration fast path used to put such a record into a
    // pool segment whenever the segment had room, so only some of them took a block.
    let sum = Cell::new(0u64);
    let large = |n: u64| {
        let sum = &sum;
        move || {
            scope_with_capacity::<0, _, _>(|s| {
                for i in 0..n {
                    let big = [i as u8; 800];
                    s.defer(move || {
                        sum.set(sum.get() + u64::from(std::hint::black_box(&big)[799]))
                    });
                }
            })
        }
    };
    for n in [1u64, 2, 3, 8, 64, 84, 85, 200] {
        let segments = n.div_ceil(84);
        assert_accounting(
            &format!("{n} large, capacity 0"),
            (n, 0, n, 0),
            n + segments,
            &large(n),
        );
    }

    // Large records go inline while the inline area has room for them, never into a segment:
    // 2048 bytes hold two 824-byte records and then 16 stubs; the 19th stub starts a segment.
    let inline_first = |n: u64| {
        let sum = &sum;
        move || {
            scope_with_capacity::<2048, _, _>(|s| {
                for i in 0..n {
                    let big = [i as u8; 800];
                    s.defer(move || sum.set(sum.get() + u64::from(std::hint::black_box(&big)[0])));
                }
            })
        }
    };
    assert_accounting("2 large, capacity 2048", (2, 2, 0, 0), 0, &inline_first(2));
    assert_accounting("4 large, capacity 2048", (4, 2, 2, 0), 2, &inline_first(4));
    assert_accounting(
        "20 large, capacity 2048",
        (20, 2, 18, 0),
        18 + 1,
        &inline_first(20),
    );

    // Mixed: a 336-byte record then a large closure's stub, 360 bytes a pair: five pairs per
    // segment, so 64 pairs take 64 blocks of their own plus 13 segments.
    assert_accounting("64 pairs, capacity 0", (128, 0, 128, 0), 64 + 13, &|| {
        scope_with_capacity::<0, _, _>(|s| {
            let sum = &sum;
            for i in 0..64u64 {
                let pad = [i; 40];
                s.defer(move || sum.set(sum.get() + std::hint::black_box(&pad)[0]));
                let big = [i; 100];
                s.defer(move || sum.set(sum.get() + std::hint::black_box(&big)[1]));
            }
        })
    });
    assert!(sum.get() > 0);
}

/// A distinct 800-byte pattern for closure `i`: its index in the first two bytes, then bytes
/// that depend on both `i` and the position.
fn pattern(i: usize) -> [u8; 800] {
    let mut bytes = [0u8; 800];
    bytes[0] = i as u8;
    bytes[1] = (i >> 8) as u8;
    for (j, b) in bytes.iter_mut().enumerate().skip(2) {
        *b = (j.wrapping_mul(31) ^ i.wrapping_mul(97)) as u8;
    }
    bytes
}

/// Registers `n` closures that each capture a distinct 800-byte pattern and check it when
/// they run; every fifth is run early through its handle, every seventh cancelled (then its
/// captures are dropped, and a drop check verifies them too).
fn large_closures_check_their_bytes<'env>(
    s: &Scope<'_, 'env>,
    n: usize,
    log: &'env RefCell<Vec<usize>>,
    bad: &'env Cell<usize>,
) {
    struct Checked<'a> {
        i: usize,
        bytes: [u8; 800],
        bad: &'a Cell<usize>,
    }
    impl Checked<'_> {
        fn verify(&self) {
            if self.bytes != pattern(self.i) {
                self.bad.set(self.bad.get() + 1);
            }
        }
    }
    impl Drop for Checked<'_> {
        fn drop(&mut self) {
            self.verify();
        }
    }
    for i in 0..n {
        let c = Checked {
            i,
            bytes: pattern(i),
            bad,
        };
        let h = s.defer(move || {
            c.verify();
            log.borrow_mut().push(c.i);
        });
        if i % 7 == 3 {
            h.cancel();
        } else if i % 5 == 1 {
            h.run_now();
        }
    }
}

#[test]
fn large_closures_keep_their_bytes_until_they_run() {
    // If a pool block were reused while its closure is pending, that closure would be
    // damaged: a free-list link written over its first bytes, or part of another record,
    // shows as a pattern mismatch (`bad`); a whole other closure written over it shows in the
    // log as one index run twice and another never. The same test under valgrind memcheck
    // (scripts/valgrind-tests.sh) catches reads of freed or uninitialised memory. 300
    // closures also exceed the 256 free blocks the pool keeps per class.
    for n in [1usize, 2, 3, 8, 64, 85, 300] {
        let expected: Vec<usize> = {
            let early = (0..n).filter(|i| i % 7 != 3 && i % 5 == 1);
            let at_exit = (0..n).rev().filter(|i| i % 7 != 3 && i % 5 != 1);
            early.chain(at_exit).collect()
        };
        for capacity in ["0", "default", "2048"] {
            let (log, bad) = (RefCell::new(Vec::new()), Cell::new(0));
            let (log, bad) = (&log, &bad);
            match capacity {
                "0" => scope_with_capacity::<0, _, _>(|s| {
                    large_closures_check_their_bytes(s, n, log, bad)
                }),
                "default" => scope(|s| large_closures_check_their_bytes(s, n, log, bad)),
                _ => scope_with_capacity::<2048, _, _>(|s| {
                    large_closures_check_their_bytes(s, n, log, bad)
                }),
            }
            assert_eq!(
                bad.get(),
                0,
                "{n} closures, capacity {capacity}: corrupted captures"
            );
            assert_eq!(*log.borrow(), expected, "{n} closures, capacity {capacity}");
        }
    }
}

#[test]
#[cfg(target_pointer_width = "64")] // sizes in bytes assume 8-byte words
fn inline_area_overflows_to_the_pool_and_keeps_order() {
    let log = RefCell::new(Vec::new());
    let before = stats();
    scope_with_capacity::<64, _, _>(|s| {
        let l = &log;
        for i in 0..10 {
            s.defer(move || l.borrow_mut().push(i));
        }
    });
    assert_eq!(*log.borrow(), (0..10).rev().collect::<Vec<_>>());
    let d = stats().since(&before);
    // 64 bytes hold two 32-byte records; the other eight go to one pool segment.
    assert_eq!((d.registered, d.inline, d.pooled), (10, 2, 8));
    // A second run reuses the released segment.
    let before = stats();
    scope_with_capacity::<64, _, _>(|s| {
        for _ in 0..10 {
            s.defer(|| ());
        }
    });
    let d = stats().since(&before);
    // Capture-less closures take 16 bytes (`run` and `size`): four fit inline, six go to the
    // reused segment.
    assert_eq!(
        (d.registered, d.pooled, d.pool_hits, d.pool_misses),
        (10, 6, 1, 0)
    );
}

#[test]
fn zero_capacity_scope_works() {
    let n = Cell::new(0);
    scope_with_capacity::<0, _, _>(|s| {
        let n = &n;
        s.defer(move || n.set(n.get() * 10 + 1));
        s.defer(move || n.set(n.get() * 10 + 2));
    });
    assert_eq!(n.get(), 21);
}

// ---------------------------------------------------------------- cancellation

#[test]
fn cancel_bound_runs_once_at_the_earlier_of_cancel_and_exit() {
    let n = Arc::new(AtomicUsize::new(0));
    let token = CancelToken::new();
    scope(|s| {
        let n1 = Arc::clone(&n);
        s.defer_until_cancelled(&token, move || {
            n1.fetch_add(1, Ordering::SeqCst);
        });
    });
    assert_eq!(n.load(Ordering::SeqCst), 1, "ran at scope exit");
    token.cancel();
    assert_eq!(n.load(Ordering::SeqCst), 1, "not again at cancellation");

    // Already cancelled: runs at registration.
    scope(|s| {
        let n2 = Arc::clone(&n);
        s.defer_until_cancelled(&token, move || {
            n2.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(n.load(Ordering::SeqCst), 2);
    });
    assert_eq!(n.load(Ordering::SeqCst), 2);
}

#[test]
fn cancel_bound_from_another_thread() {
    let n = Arc::new(AtomicUsize::new(0));
    let token = CancelToken::new();
    scope(|s| {
        let n1 = Arc::clone(&n);
        s.defer_until_cancelled(&token, move || {
            n1.fetch_add(1, Ordering::SeqCst);
        });
        let t = token.clone();
        std::thread::spawn(move || t.cancel()).join().unwrap();
        assert_eq!(n.load(Ordering::SeqCst), 1, "ran on the cancelling thread");
    });
    assert_eq!(n.load(Ordering::SeqCst), 1);
}

#[test]
fn cancelling_a_bound_handle_drops_captures_and_unsubscribes() {
    let token = CancelToken::new();
    let witness = Arc::new(());
    scope(|s| {
        let w = Arc::clone(&witness);
        let h = s.defer_until_cancelled(&token, move || drop(w));
        assert_eq!(Arc::strong_count(&witness), 2);
        h.cancel();
        assert_eq!(Arc::strong_count(&witness), 1, "captures dropped at cancel");
    });
    token.cancel();
    assert_eq!(Arc::strong_count(&witness), 1);
}

// ---------------------------------------------------------------- property tests

#[derive(Debug, Clone, Copy)]
enum Size {
    Small,
    Large,
    OverAligned,
    Huge,
}

#[derive(Debug, Clone)]
enum Op {
    Register { size: Size, panics: bool },
    Cancel(usize),
    RunNow(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let size = prop_oneof![
        6 => Just(Size::Small),
        2 => Just(Size::Large),
        1 => Just(Size::OverAligned),
        1 => Just(Size::Huge),
    ];
    prop_oneof![
        6 => (size, prop::bool::weighted(0.15)).prop_map(|(size, panics)| Op::Register { size, panics }),
        1 => any::<usize>().prop_map(Op::Cancel),
        1 => any::<usize>().prop_map(Op::RunNow),
    ]
}

/// Shared bookkeeping: the order calls ran in, and how often each capture was dropped.
#[derive(Default)]
struct Book {
    ran: RefCell<Vec<usize>>,
    drops: RefCell<Vec<u32>>,
}

struct Tracker {
    id: usize,
    book: Rc<Book>,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.book.drops.borrow_mut()[self.id] += 1;
    }
}

fn register<'a, 'env>(
    s: &'a Scope<'_, 'env>,
    t: Tracker,
    size: Size,
    panics: bool,
) -> frugal_defer::DeferHandle<'a> {
    fn call(t: &Tracker, panics: bool) {
        t.book.ran.borrow_mut().push(t.id);
        if panics {
            boom(t.id);
        }
    }
    match size {
        Size::Small => s.defer(move || call(&t, panics)),
        Size::Large => {
            let pad = [t.id as u8; 700];
            s.defer(move || {
                std::hint::black_box(&pad);
                call(&t, panics)
            })
        }
        Size::OverAligned => {
            let pad = Align32([0; 32]);
            s.defer(move || {
                std::hint::black_box(&pad);
                call(&t, panics)
            })
        }
        Size::Huge => {
            let pad = [0u8; 4200];
            s.defer(move || {
                std::hint::black_box(&pad);
                call(&t, panics)
            })
        }
    }
}

/// What the model predicts: the run order, and the first panic's id (`usize::MAX` = body).
fn model(ops: &[Op], body_panics: bool) -> (Vec<usize>, Vec<usize>) {
    let mut pending: Vec<(usize, bool)> = Vec::new(); // registered, not yet handled; with `panics`
    let mut live: Vec<(usize, bool)> = Vec::new(); // handles not yet consumed
    let mut ran = Vec::new();
    let mut panics = Vec::new();
    let mut next = 0;
    let mut body_done = true;
    for op in ops {
        match *op {
            Op::Register { panics: p, .. } => {
                pending.push((next, p));
                live.push((next, p));
                next += 1;
            }
            Op::Cancel(i) | Op::RunNow(i) if !live.is_empty() => {
                let (id, p) = live.remove(i % live.len());
                pending.retain(|&(x, _)| x != id);
                if let Op::RunNow(_) = op {
                    ran.push(id);
                    if p {
                        panics.push(id);
                        body_done = false;
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    if body_done && body_panics {
        panics.push(usize::MAX);
    }
    for &(id, p) in pending.iter().rev() {
        ran.push(id);
        if p {
            panics.push(id);
        }
    }
    (ran, panics)
}

fn execute<'env>(s: &Scope<'_, 'env>, book: &Rc<Book>, ops: &[Op], body_panics: bool) {
    let mut live = Vec::new();
    let mut next = 0;
    for op in ops {
        match *op {
            Op::Register { size, panics } => {
                book.drops.borrow_mut().push(0);
                let t = Tracker {
                    id: next,
                    book: Rc::clone(book),
                };
                live.push(register(s, t, size, panics));
                next += 1;
            }
            Op::Cancel(i) if !live.is_empty() => {
                let i = i % live.len();
                live.remove(i).cancel();
            }
            Op::RunNow(i) if !live.is_empty() => {
                let i = i % live.len();
                live.remove(i).run_now();
            }
            _ => {}
        }
    }
    if body_panics {
        boom(usize::MAX);
    }
}

fn check_program(ops: &[Op], body_panics: bool, small: bool) -> Result<(), TestCaseError> {
    quiet_hook();
    let book = Rc::new(Book::default());
    let (expect_ran, expect_panics) = model(ops, body_panics);
    let caught: Vec<Option<usize>> = if small {
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            scope_with_capacity::<48, _, _>(|s| execute(s, &book, ops, body_panics))
        }));
        match r {
            Ok(()) => Vec::new(),
            Err(first) => std::iter::once(boom_id(&*first))
                .chain(take_collateral().iter().map(|p| boom_id(&**p)))
                .collect(),
        }
    } else {
        match recover(|s| execute(s, &book, ops, body_panics)) {
            Ok(()) => Vec::new(),
            Err(rec) => std::iter::once(boom_id(&*rec.payload))
                .chain(rec.collateral().iter().map(|p| boom_id(&**p)))
                .collect(),
        }
    };
    prop_assert_eq!(&*book.ran.borrow(), &expect_ran, "run order");
    let expect_caught: Vec<Option<usize>> = expect_panics.into_iter().map(Some).collect();
    prop_assert_eq!(caught, expect_caught, "panics: first, then collateral");
    let drops = book.drops.borrow();
    prop_assert!(
        drops.iter().all(|&d| d == 1),
        "every capture dropped exactly once: {:?}",
        drops
    );
    prop_assert_eq!(Rc::strong_count(&book), 1);
    Ok(())
}

proptest! {
    #[test]
    fn every_call_runs_once_lifo_default_capacity(
        ops in prop::collection::vec(op(), 0..48),
        body_panics in prop::bool::weighted(0.2),
    ) {
        check_program(&ops, body_panics, false)?;
    }

    #[test]
    fn every_call_runs_once_lifo_overflow(
        ops in prop::collection::vec(op(), 0..48),
        body_panics in prop::bool::weighted(0.2),
    ) {
        check_program(&ops, body_panics, true)?;
    }
}
