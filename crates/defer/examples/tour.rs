//! A tour of frugal-defer's semantics, with printed output:
//! `cargo run -p frugal-defer --example tour`.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use frugal_defer::{
    guard, guard_on_unwind, recover, scope, stats, try_scope, CancelToken, Guard, Scope,
};

fn step(title: &str) {
    println!("\n== {title}");
}

/// A helper that opens a "file" and defers its close on the caller's scope.
fn open<'env>(s: &Scope<'_, 'env>, log: &'env RefCell<Vec<String>>, name: &'static str) {
    log.borrow_mut().push(format!("open {name}"));
    s.defer(move || log.borrow_mut().push(format!("close {name}")));
}

fn main() {
    // Deferred panics below are expected; keep their messages short.
    std::panic::set_hook(Box::new(|info| {
        let msg = frugal_defer::panic_message(info.payload()).unwrap_or("(non-string payload)");
        println!("   [panic hook] {msg}");
    }));

    step("1. defer! runs at block end, newest first");
    {
        frugal_defer::defer! { println!("   deferred A (registered first)"); }
        frugal_defer::defer! { println!("   deferred B (registered second)"); }
        println!("   body");
    }

    step("2. a guard owns a value; strategies; into_inner defuses");
    {
        let mut conn = guard(vec!["BEGIN"], |log| {
            println!("   closing connection after {log:?}")
        });
        conn.push("SELECT 1");
        let tx = guard_on_unwind("tx-42", |tx| println!("   rollback {tx} (only on panic)"));
        println!("   commit {}", Guard::into_inner(tx));
    }

    step(
        "3. a function-scoped chain: loops, branches, helpers; captures evaluated at registration",
    );
    let log = RefCell::new(Vec::new());
    scope(|s| {
        for name in ["a.txt", "b.txt", "c.txt"] {
            if name != "b.txt" {
                open(s, &log, name);
            }
        }
        let mut attempt = 1;
        let l = &log;
        s.defer(move || {
            l.borrow_mut()
                .push(format!("attempt was {attempt} at registration"))
        });
        attempt += 1;
        l.borrow_mut()
            .push(format!("body done, attempt now {attempt}"));
    });
    for line in log.borrow().iter() {
        println!("   {line}");
    }

    step("4. handles: cancel (captures dropped now) or run_now (exactly once)");
    scope(|s| {
        s.defer(|| println!("   lock released at scope exit"));
        let undo = s.defer(|| println!("   undo (never printed)"));
        undo.cancel();
        let flush = s.defer(|| println!("   flush, run early"));
        flush.run_now();
        println!("   body ends");
    });

    step("5. errdefer / on_success / finally (rewrites the result)");
    for fail in [false, true] {
        let r: Result<u32, String> = try_scope(|s| {
            s.errdefer(|e| println!("   errdefer: rollback because {e:?}"));
            s.on_success(|| println!("   on_success: commit"));
            s.finally(|r: &mut Result<u32, String>| {
                if let Ok(v) = r {
                    *v *= 10;
                }
            });
            if fail {
                Err("disk full".to_string())
            } else {
                Ok(4)
            }
        });
        println!("   fail={fail} -> {r:?}");
    }

    step("6. panics: every deferred call runs; first panic wins; later ones are collateral");
    let r = recover(|s| {
        s.defer(|| println!("   deferred 1 still runs"));
        s.defer(|| panic!("deferred 2 panics too"));
        s.on_panic(|p| {
            println!("   on_panic sees: {:?}", frugal_defer::panic_message(p));
        });
        panic!("body panics");
    });
    let rec = r.unwrap_err();
    println!("   recover -> {rec}");
    println!(
        "   collateral: {:?}",
        rec.collateral()
            .iter()
            .map(|p| frugal_defer::panic_message(&**p))
            .collect::<Vec<_>>()
    );

    step("7. cancellation-bound defer: runs once, at the earlier of cancel and scope exit");
    let released = Arc::new(AtomicU32::new(0));
    let token = CancelToken::new();
    scope(|s| {
        let r = Arc::clone(&released);
        s.defer_until_cancelled(&token, move || {
            r.fetch_add(1, Ordering::SeqCst);
            println!("   released (client went away)");
        });
        let t = token.clone();
        std::thread::spawn(move || t.cancel())
            .join()
            .expect("the cancelling thread does not panic");
        println!("   handler keeps running after the release");
    });
    println!("   released {} time(s)", released.load(Ordering::SeqCst));

    step("8. storage and statistics: inline, pool segments, steady state");
    let before = stats();
    for _ in 0..3 {
        scope(|s| {
            for i in 0..100u64 {
                // 100 records of 16 bytes: 32 inline (512 B default area), 68 in a pool segment.
                s.defer(move || {
                    std::hint::black_box(i);
                });
            }
        });
    }
    let d = stats().since(&before);
    println!(
        "   3 runs x 100 defers: registered {} = inline {} + pooled {} + heap {}; pool hits {}, misses {}",
        d.registered, d.inline, d.pooled, d.heap, d.pool_hits, d.pool_misses
    );
    println!(
        "   (a miss allocates a block once; later runs reuse it: zero allocations in steady state)"
    );
}
