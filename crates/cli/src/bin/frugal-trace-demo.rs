//! `frugal-trace-demo`: a program with a known number of defers, for `frugal trace`.
//!
//! Every round runs the same seven scopes on the main thread (capacity 64 bytes, so two
//! 32-byte records fit inline and the rest overflow into 2 KiB pool segments of 63 records):
//!
//! | scope | defers | chain length bucket | pool segments |
//! |---|---:|---|---:|
//! | 1 defer | 1 | [1, 1] | 0 |
//! | 2 defers (exact fit) | 2 | [2, 3] | 0 |
//! | 5 defers | 5 | [4, 7] | 1 |
//! | 64 defers | 64 | [64, 127] | 1 |
//! | 130 defers | 130 | [128, 255] | 3 |
//! | 4 defers: one cancelled, one run early by its handle | 4 | [4, 7] | 1 |
//! | `recover` (default capacity), 3 defers, the middle one panics, so does the body | 3 | [2, 3] | 0 |
//!
//! So a round registers 209 defers in 7 scopes (14 of them inline, 195 pooled), cancels 1,
//! runs 208 (one of them early) and catches 2 panics; it takes 6 pool segments. The thread's
//! pool starts empty and keeps released segments, so the first round misses 3 times (the
//! 5-defer scope's segment, then 2 of the 130-defer scope's 3) and hits 3 times; every later
//! round hits 6 times. The printed `sum` depends on every deferred call running exactly once.
//!
//! `frugal-trace-demo [--rounds N] [--wait-ms MS] [--seconds S]`: waits MS milliseconds, then
//! runs N rounds (default 1), or rounds for S seconds; prints one JSON line with what it did
//! (its own `frugal_defer::stats()` and the rate of defers per second).

use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use frugal_defer::{recover, scope_with_capacity};

/// The deferred work.
#[inline(never)]
fn cleanup(c: &Cell<u64>, i: u64) {
    c.set(c.get().wrapping_add(i));
}

/// One scope of `n` defers (32-byte records: a reference and a `u64`).
#[inline(never)]
fn chain(c: &Cell<u64>, n: u64) {
    scope_with_capacity::<64, _, _>(|s| {
        for i in 0..n {
            s.defer(move || cleanup(c, i));
        }
    });
}

/// One round: the seven scopes of the table above.
fn round(c: &Cell<u64>) {
    for n in [1, 2, 5, 64, 130] {
        chain(c, black_box(n));
    }
    scope_with_capacity::<64, _, _>(|s| {
        s.defer(move || cleanup(c, 1));
        s.defer(move || cleanup(c, 2)).cancel();
        s.defer(move || cleanup(c, 3)).run_now();
        s.defer(move || cleanup(c, 5));
    });
    let r = recover(|s| {
        s.defer(move || cleanup(c, 7));
        s.defer(|| std::panic::panic_any("demo panic in a deferred call"));
        s.defer(move || cleanup(c, 11));
        std::panic::panic_any("demo panic");
    });
    assert!(r.is_err(), "the recover scope's body panics");
}

/// Defers registered by one round.
const DEFERS_PER_ROUND: u64 = 209;

fn arg(args: &[String], name: &str) -> Option<u64> {
    let i = args.iter().position(|a| a == name)?;
    let value = args.get(i + 1).and_then(|v| v.parse().ok());
    match value {
        Some(v) => Some(v),
        None => {
            eprintln!("frugal-trace-demo: {name} needs a non-negative integer");
            std::process::exit(2);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let wait_ms = arg(&args, "--wait-ms").unwrap_or(0);
    let seconds = arg(&args, "--seconds");
    let rounds = arg(&args, "--rounds").unwrap_or(1);
    // The demo's panic is expected: keep stderr quiet.
    std::panic::set_hook(Box::new(|_| {}));
    std::thread::sleep(Duration::from_millis(wait_ms));
    let c = Cell::new(0);
    let start = Instant::now();
    let mut done = 0u64;
    match seconds {
        Some(s) => {
            let end = start + Duration::from_secs(s);
            while Instant::now() < end {
                for _ in 0..100 {
                    round(&c);
                }
                done += 100;
            }
        }
        None => {
            for _ in 0..rounds {
                round(&c);
            }
            done = rounds;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let st = frugal_defer::stats();
    println!(
        "{{\"rounds\": {done}, \"scopes\": {}, \"registered\": {}, \"pool_hits\": {}, \
         \"pool_misses\": {}, \"seconds\": {secs:.3}, \"defers_per_s\": {:.0}, \"sum\": {}}}",
        done * 7,
        st.registered,
        st.pool_hits,
        st.pool_misses,
        (done * DEFERS_PER_ROUND) as f64 / secs.max(1e-9),
        c.get()
    );
}
