//! Steady-state scopes make zero heap allocations: counted by a global allocator that wraps
//! `System` and counts per thread (so concurrently running tests do not disturb the count).
//! Its own test binary, because a `#[global_allocator]` is per binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};

use frugal_defer::{recover, scope, scope_with_capacity, stats, try_scope};

struct Counting;

thread_local! {
    // `const` and without a destructor: usable from inside the allocator.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every method forwards to `System` unchanged; counting has no effect on the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by 100 runs of `f` after two warm-up runs (which fill the pool and
/// initialise thread-locals).
fn allocations_during(f: impl Fn()) -> u64 {
    steady_state(f).0
}

/// Like `allocations_during`, plus the defer statistics of the 100 measured runs.
fn steady_state(f: impl Fn()) -> (u64, frugal_defer::Stats) {
    f();
    f();
    let before = (ALLOCS.with(Cell::get), stats());
    for _ in 0..100 {
        f();
    }
    (ALLOCS.with(Cell::get) - before.0, stats().since(&before.1))
}

#[test]
fn counter_sees_allocations() {
    // The counter must be able to fail the tests below.
    let n = allocations_during(|| drop(std::hint::black_box(Box::new(1u64))));
    assert_eq!(n, 100);
}

#[test]
fn inline_scopes_do_not_allocate() {
    let sum = Cell::new(0u64);
    for defers in [1u64, 8, 64] {
        let n = allocations_during(|| {
            scope_with_capacity::<2048, _, _>(|s| {
                for i in 0..defers {
                    let sum = &sum;
                    s.defer(move || sum.set(sum.get() + i));
                }
            })
        });
        assert_eq!(n, 0, "{defers} inline defers");
    }
    assert!(sum.get() > 0);
}

#[test]
fn overflow_scopes_do_not_allocate_in_steady_state() {
    let sum = Cell::new(0u64);
    let (n, d) = steady_state(|| {
        scope_with_capacity::<0, _, _>(|s| {
            for i in 0..64u64 {
                let sum = &sum;
                let pad = [i; 40]; // a 336-byte record in a pool segment
                s.defer(move || sum.set(sum.get() + std::hint::black_box(&pad)[0]));
                let big = [i; 100]; // an 808-byte closure: its own 1 KiB pool block
                s.defer(move || sum.set(sum.get() + std::hint::black_box(&big)[1]));
            }
        })
    });
    assert_eq!(n, 0);
    assert_eq!((d.registered, d.pooled, d.heap), (100 * 128, 100 * 128, 0));
    assert_eq!(d.pool_misses, 0, "warm runs take every block from the pool");
    // Per run: 64 blocks of their own, and 13 segments (five 360-byte pairs of a record and a
    // stub each), all from the pool.
    assert_eq!(d.pool_hits, 100 * (64 + 13), "{d:?}");
}

#[test]
fn handles_and_result_aware_calls_do_not_allocate() {
    let log = RefCell::new(0u32);
    let n = allocations_during(|| {
        let r: Result<u32, u32> = try_scope(|s| {
            let l = &log;
            s.errdefer(move |_| *l.borrow_mut() += 1);
            s.on_success(move || *l.borrow_mut() += 2);
            s.finally(|r: &mut Result<u32, u32>| *r = r.map(|v| v + 1));
            s.defer(move || *l.borrow_mut() += 4).cancel();
            s.defer(move || *l.borrow_mut() += 8).run_now();
            Ok(1)
        });
        assert_eq!(r, Ok(2));
        let ok = recover(|s| {
            s.on_panic(|_| unreachable!());
            3
        });
        assert_eq!(ok.ok(), Some(3));
        scope(|s| {
            s.defer(|| ());
        });
    });
    assert_eq!(n, 0);
}

/// Polls a future that completes without waiting, once, with a no-op waker (no allocation).
fn poll_once<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the scope's cleanups never wait here"),
    }
}

#[test]
fn async_scopes_with_inline_cleanups_do_not_allocate() {
    use frugal_defer::{async_scope, async_stats, CancelPolicy};
    let sum = std::sync::atomic::AtomicU64::new(0);
    let before = async_stats();
    let n = allocations_during(|| {
        poll_once(async_scope!(CancelPolicy::Leak, |s| {
            let sum = &sum;
            for i in 0..4u64 {
                s.defer(move || {
                    sum.fetch_add(i, std::sync::atomic::Ordering::Relaxed);
                });
                s.defer_async_or(
                    move || async move {
                        sum.fetch_add(i, std::sync::atomic::Ordering::Relaxed);
                    },
                    || (),
                );
            }
            // `'static` async cleanups under a non-spawn policy are inline too.
            s.defer_async(|| async {});
        }));
    });
    assert_eq!(n, 0);
    let d = async_stats().since(&before);
    assert_eq!((d.registered, d.inline), (102 * 9, 102 * 9));
}

#[test]
fn async_scopes_with_spawnable_cleanups_do_not_allocate_in_steady_state() {
    use frugal_defer::{async_scope, async_stats, CancelPolicy};
    fn never(_: frugal_defer::Detached, _: Option<std::time::Duration>) {
        unreachable!("not cancelled")
    }
    let before = async_stats();
    let n = allocations_during(|| {
        poll_once(async_scope!(CancelPolicy::Spawn(never), |s| {
            for _ in 0..8 {
                s.defer_async(|| async {});
            }
        }));
    });
    assert_eq!(n, 0, "the run slot's pool block is reused");
    let d = async_stats().since(&before);
    // Stored inline like any other (their futures start in the scope's run slot).
    assert_eq!((d.registered, d.inline), (102 * 8, 102 * 8));
}
