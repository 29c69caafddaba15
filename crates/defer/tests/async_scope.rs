//! Async scopes through the public API: order, conditions, panics, handles, cancellation at
//! every poll (property tests), and the tokio integration (spawn, block, deadlines with paused
//! time).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::task::{Context, Poll, Waker};

use frugal_defer::{
    async_recover, async_scope, async_stats, async_try_scope, block_on, take_collateral,
    AsyncScope, CancelPolicy,
};
use proptest::prelude::*;

/// Panics raised on purpose carry this payload; the hook keeps them quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Boom(usize);

fn quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Boom>().is_none() {
                default(info);
            }
        }));
    });
}

fn boom(id: usize) -> ! {
    std::panic::panic_any(Boom(id))
}

/// A future that returns `Pending` `n` times (waking itself each time), then `Ready`.
struct YieldN(usize);

impl Future for YieldN {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

type Log = Arc<Mutex<Vec<String>>>;

fn push(log: &Log, s: impl Into<String>) {
    log.lock().unwrap().push(s.into());
}

async fn acquire(s: &mut AsyncScope<'_>, log: &Log, name: &'static str) {
    push(log, format!("acquire {name}"));
    YieldN(1).await;
    let l = Arc::clone(log);
    s.defer_async(move || async move {
        YieldN(2).await;
        push(&l, format!("release {name}"));
    });
}

#[test]
fn cleanups_run_lifo_mixed_sync_and_async_across_loops_and_helpers() {
    let log: Log = Arc::default();
    let r = block_on(async_scope!(CancelPolicy::Leak, |s| {
        acquire(s, &log, "a").await;
        for i in 0..3 {
            if i != 1 {
                let l = &log;
                s.defer(move || push(l, format!("sync {i}")));
            }
        }
        acquire(s, &log, "b").await;
        let l = &log;
        s.defer_async_or(
            move || async move {
                YieldN(1).await;
                push(l, "borrowed async");
            },
            || unreachable!("not cancelled"),
        );
        push(&log, "body");
        7
    }));
    assert_eq!(r, 7);
    assert_eq!(
        *log.lock().unwrap(),
        [
            "acquire a",
            "acquire b",
            "body",
            "borrowed async",
            "release b",
            "sync 2",
            "sync 0",
            "release a"
        ]
    );
}

#[test]
fn errdefer_and_on_success_follow_the_result() {
    for fail in [false, true] {
        let log: Log = Arc::default();
        let r: Result<u8, &str> = block_on(async_try_scope!(CancelPolicy::Leak, |s| {
            let l = &log;
            s.errdefer(move |_| push(l, "rollback"));
            s.on_success(move || push(l, "commit"));
            let l2 = Arc::clone(&log);
            s.errdefer_async(move |_| async move { push(&l2, "async rollback") });
            YieldN(1).await;
            if fail {
                Err("no")
            } else {
                Ok(1)
            }
        }));
        let expected: &[&str] = if fail {
            &["async rollback", "rollback"]
        } else {
            &["commit"]
        };
        assert_eq!(r.is_err(), fail);
        assert_eq!(*log.lock().unwrap(), expected);
    }
}

#[test]
fn errdefer_sees_the_error_or_none_for_a_panic() {
    let log: Log = Arc::default();
    let r: Result<u8, String> = block_on(async_try_scope!(CancelPolicy::Leak, |s| {
        let l = &log;
        s.errdefer(move |e| push(l, format!("sync {e:?}")));
        let l2 = Arc::clone(&log);
        s.errdefer_async(move |e: Option<&String>| {
            let e = e.cloned();
            async move { push(&l2, format!("async {e:?}")) }
        });
        YieldN(1).await;
        Err("full".to_string())
    }));
    assert_eq!(r, Err("full".to_string()));
    assert_eq!(
        *log.lock().unwrap(),
        [r#"async Some("full")"#, r#"sync Some("full")"#]
    );

    quiet_hook();
    let log: Log = Arc::default();
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
        block_on(async_try_scope!(CancelPolicy::Leak, |s| {
            let l = &log;
            s.errdefer(move |e: Option<&String>| push(l, format!("sync {e:?}")));
            s.finally(move |_: &mut Result<u8, String>| push(l, "finally"));
            let l2 = Arc::clone(&log);
            s.errdefer_async(move |e: Option<&String>| {
                let e = e.cloned();
                async move { push(&l2, format!("async {e:?}")) }
            });
            YieldN(1).await;
            if true {
                boom(1);
            }
            Ok(1)
        }))
    }));
    assert!(r.is_err());
    // No result: the errdefers get `None`, the `finally` does not run.
    assert_eq!(*log.lock().unwrap(), ["async None", "sync None"]);
}

#[test]
fn finally_rewrites_the_result_and_later_cleanups_see_the_rewrite() {
    let log: Log = Arc::default();
    let r: Result<u32, String> = block_on(async_try_scope!(CancelPolicy::Leak, 64, |s| {
        let l = &log;
        // Registered before `finally`: runs after it, sees the rewritten `Ok`.
        s.errdefer(move |e| push(l, format!("early errdefer {e:?}")));
        s.on_success(move || push(l, "success"));
        s.finally(move |r: &mut Result<u32, String>| {
            push(l, format!("finally saw {r:?}"));
            if r.is_err() {
                *r = Ok(0);
            }
        });
        // Registered after `finally`: runs before it, sees the `Err`.
        s.errdefer(move |e| push(l, format!("late errdefer {e:?}")));
        YieldN(2).await;
        Err("cache miss".to_string())
    }));
    assert_eq!(r, Ok(0));
    assert_eq!(
        *log.lock().unwrap(),
        [
            r#"late errdefer Some("cache miss")"#,
            r#"finally saw Err("cache miss")"#,
            "success",
        ]
    );

    // The other way: `finally` turns `Ok` into `Err`, and the errdefers before it run.
    let log: Log = Arc::default();
    let r: Result<u32, String> = block_on(async_try_scope!(CancelPolicy::Leak, |s| {
        let l = &log;
        s.errdefer(move |e| push(l, format!("errdefer {e:?}")));
        s.on_success(move || push(l, "success"));
        s.finally(|r: &mut Result<u32, String>| *r = Err("vetoed".to_string()));
        Ok(7)
    }));
    assert_eq!(r, Err("vetoed".to_string()));
    assert_eq!(*log.lock().unwrap(), [r#"errdefer Some("vetoed")"#]);
}

#[test]
fn a_panicking_cleanup_makes_errdefers_see_none_and_discards_the_result() {
    quiet_hook();
    let log: Log = Arc::default();
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
        block_on(async_try_scope!(CancelPolicy::Leak, |s| {
            let l = &log;
            s.errdefer(move |e: Option<&String>| push(l, format!("errdefer {e:?}")));
            s.finally(move |r: &mut Result<u8, String>| push(l, format!("finally {r:?}")));
            s.defer(|| boom(2));
            Ok(5)
        }))
    }));
    assert!(r.is_err());
    assert_eq!(*log.lock().unwrap(), ["finally Ok(5)", "errdefer None"]);
}

/// A capture that counts its drops (made with `counted`, which counts it made).
struct Counted(Arc<Mutex<Vec<usize>>>, usize);

fn counted(made: &Arc<Mutex<Vec<usize>>>, drops: &Arc<Mutex<Vec<usize>>>, i: usize) -> Counted {
    made.lock().unwrap()[i] += 1;
    Counted(Arc::clone(drops), i)
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.lock().unwrap()[self.1] += 1;
    }
}

#[test]
fn a_try_scope_dropped_after_every_k_polls() {
    // Three sync result-aware cleanups and two async ones around yields; for every k the
    // scope's future is dropped after k polls (or finishes). Finished: the result decides.
    // Cancelled: the errdefers run with `None` (the async one's fallback is its sync
    // twin), `finally` and `on_success` do not, nothing runs twice, every capture is
    // dropped once.
    for fail in [false, true] {
        let mut finished_at = None;
        for k in 0..40 {
            let log: Log = Arc::default();
            let drops = Arc::new(Mutex::new(vec![0; 5]));
            let made = Arc::new(Mutex::new(vec![0; 5]));
            let before = async_stats();
            let fut = async_try_scope!(CancelPolicy::Leak, |s| {
                let (l, d, m) = (&log, &drops, &made);
                let c0 = counted(m, d, 0);
                s.errdefer(move |e: Option<&&str>| {
                    let _c = c0;
                    push(l, format!("errdefer {e:?}"));
                });
                YieldN(1).await;
                let c1 = counted(m, d, 1);
                s.on_success(move || {
                    let _c = c1;
                    push(l, "success");
                });
                let c2 = counted(m, d, 2);
                s.finally(move |r: &mut Result<u8, &str>| {
                    let _c = c2;
                    push(l, format!("finally {r:?}"));
                });
                YieldN(1).await;
                let (c3, l3) = (counted(m, d, 3), Arc::clone(l));
                s.errdefer_async(move |e: Option<&&str>| {
                    let e = e.copied();
                    async move {
                        YieldN(2).await;
                        let _c = c3;
                        push(&l3, format!("async errdefer {e:?}"));
                    }
                });
                let c4 = counted(m, d, 4);
                s.defer_async_or(
                    move || async move {
                        YieldN(1).await;
                        push(l, "async or");
                    },
                    move || {
                        let _c = c4;
                        push(l, "fallback");
                    },
                );
                YieldN(1).await;
                if fail {
                    Err("no")
                } else {
                    Ok(1)
                }
            });
            let finished = poll_k(fut, k);
            let log = log.lock().unwrap().clone();
            let made = made.lock().unwrap().clone();
            assert!(made.iter().all(|&n| n <= 1), "k = {k}");
            assert_eq!(
                *drops.lock().unwrap(),
                made,
                "k = {k}: every capture dropped once"
            );
            let d = async_stats().since(&before);
            if finished {
                let expected: Vec<&str> = if fail {
                    vec![
                        "async or",
                        r#"async errdefer Some("no")"#,
                        r#"finally Err("no")"#,
                        r#"errdefer Some("no")"#,
                    ]
                } else {
                    vec!["async or", "finally Ok(1)", "success"]
                };
                assert_eq!(log, expected, "k = {k}");
                assert_eq!(made, [1; 5], "k = {k}");
                finished_at.get_or_insert(k);
                continue;
            }
            assert_eq!(d.cancelled_scopes, u64::from(k > 0), "k = {k}");
            // Cancelled: the errdefer, once registered, runs (with `None`) and runs last;
            // `finally` and `on_success` never run; the async cleanup or its fallback at most once.
            assert!(
                !log.iter()
                    .any(|e| e.starts_with("finally") || e == "success"),
                "k = {k}: {log:?}"
            );
            let errdefers = log.iter().filter(|e| *e == "errdefer None").count();
            assert_eq!(errdefers, usize::from(k > 0), "k = {k}: {log:?}");
            assert_eq!(
                log.last().map(String::as_str),
                (k > 0).then_some("errdefer None"),
                "k = {k}"
            );
            assert!(
                log.iter()
                    .filter(|e| *e == "fallback" || *e == "async or")
                    .count()
                    <= 1,
                "k = {k}: {log:?}"
            );
        }
        assert!(finished_at.is_some(), "the scope finishes within 40 polls");
    }
}

#[test]
fn a_panic_in_the_body_runs_every_cleanup_then_resumes() {
    quiet_hook();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = std::panic::catch_unwind(|| {
        block_on(async_scope!(CancelPolicy::Leak, |s| {
            for _ in 0..3 {
                let ran = Arc::clone(&ran);
                s.defer_async(move || async move {
                    YieldN(1).await;
                    ran.fetch_add(1, Ordering::SeqCst);
                });
            }
            YieldN(1).await;
            if ran.load(Ordering::SeqCst) == 0 {
                boom(1);
            }
        }))
    });
    assert_eq!(r.unwrap_err().downcast_ref::<Boom>(), Some(&Boom(1)));
    assert_eq!(ran.load(Ordering::SeqCst), 3);
}

#[test]
fn panics_in_cleanups_do_not_stop_the_others() {
    quiet_hook();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = block_on(async_recover!(CancelPolicy::Leak, |s| {
        let r1 = Arc::clone(&ran);
        s.defer(move || {
            r1.fetch_add(1, Ordering::SeqCst);
        });
        s.defer_async(|| async {
            YieldN(1).await;
            boom(3)
        });
        s.defer(|| boom(2));
        let r2 = Arc::clone(&ran);
        s.defer_async(move || async move {
            r2.fetch_add(1, Ordering::SeqCst);
        });
        "value"
    }));
    let rec = r.unwrap_err();
    assert_eq!(rec.payload.downcast_ref::<Boom>(), Some(&Boom(2)));
    assert_eq!(rec.collateral().len(), 1);
    assert_eq!(rec.latest().downcast_ref::<Boom>(), Some(&Boom(3)));
    assert_eq!(ran.load(Ordering::SeqCst), 2);
}

#[test]
fn handles_cancel_and_run_now_exactly_once() {
    let log: Log = Arc::default();
    let dropped = Arc::new(AtomicUsize::new(0));
    struct D(Arc<AtomicUsize>);
    impl Drop for D {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    block_on(async_scope!(CancelPolicy::Leak, |s| {
        let d = D(Arc::clone(&dropped));
        let h = s.defer(move || {
            let _d = d;
            unreachable!("cancelled")
        });
        s.cancel(h);
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            1,
            "captures dropped at cancel"
        );
        let l = Arc::clone(&log);
        let h = s.defer_async(move || async move {
            YieldN(2).await;
            push(&l, "async now");
        });
        let l = &log;
        let h2 = s.defer(move || push(l, "sync now"));
        s.run_now(h).await;
        s.run_now(h2).await;
        push(&log, "body end");
    }));
    assert_eq!(*log.lock().unwrap(), ["async now", "sync now", "body end"]);
}

/// Records that do not fit the inline area go to blocks of their own, after the inline ones:
/// the order stays LIFO across both, handles work on both, and the statistics say where
/// each went.
#[test]
fn overflowing_records_keep_lifo_order_and_handles() {
    let log: Log = Arc::default();
    let before = async_stats();
    let l = &log;
    block_on(async_scope!(CancelPolicy::Leak, 96, |s| {
        for i in 0..6 {
            let h = s.defer(move || push(l, format!("sync {i}")));
            if i == 4 {
                s.cancel(h);
            }
            let h = s.defer_async_or(
                move || async move {
                    YieldN(1).await;
                    push(l, format!("async {i}"));
                },
                || unreachable!("not cancelled"),
            );
            if i == 1 || i == 5 {
                s.run_now(h).await;
            }
        }
        // Larger than the whole inline area: a block even before it filled up.
        let big = [7u8; 200];
        s.defer(move || push(l, format!("big {}", big[199])));
    }));
    let want: Vec<String> = [
        "async 1", "async 5", "big 7", "sync 5", "async 4", "async 3", "sync 3", "async 2",
        "sync 2", "sync 1", "async 0", "sync 0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(*log.lock().unwrap(), want);
    let d = async_stats().since(&before);
    assert_eq!(d.registered, 13);
    assert!(d.inline >= 2 && d.pooled >= 1, "{d:?}");
    assert_eq!(d.inline + d.pooled + d.heap, 13);
}

/// Cleanups of one type registered in a loop run as a group (one call for the lot): handles
/// that cancel or run some of them now, a pending one and a panicking one in the middle keep
/// the order, the exactly-once rule and the drops.
#[test]
fn same_type_cleanups_in_a_loop_with_handles_pending_and_panics() {
    quiet_hook();
    for policy in [CancelPolicy::Leak, CancelPolicy::Spawn(keep)] {
        let log: Log = Arc::default();
        let dropped = Arc::new(AtomicUsize::new(0));
        struct D(Arc<AtomicUsize>);
        impl Drop for D {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let before = async_stats();
        let r = block_on(async_recover!(policy, 4096, |s| {
            for i in 0..12usize {
                let (l, d) = (Arc::clone(&log), D(Arc::clone(&dropped)));
                let h = s.defer_async(move || async move {
                    let _d = d;
                    if i % 4 == 1 {
                        YieldN(2).await;
                    }
                    push(&l, format!("async {i}"));
                    if i == 6 {
                        boom(i);
                    }
                });
                match i {
                    3 | 8 => s.cancel(h),
                    10 => s.run_now(h).await,
                    _ => {}
                }
            }
            for i in 0..6usize {
                let (l, d) = (Arc::clone(&log), D(Arc::clone(&dropped)));
                let h = s.defer(move || {
                    let _d = d;
                    push(&l, format!("sync {i}"));
                    if i == 2 {
                        boom(i);
                    }
                });
                if i == 4 {
                    s.cancel(h);
                }
            }
        }));
        let rec = r.unwrap_err();
        assert_eq!(rec.payload.downcast_ref::<Boom>(), Some(&Boom(2)));
        assert_eq!(rec.collateral().len(), 1);
        let want: Vec<String> = [
            "async 10", "sync 5", "sync 3", "sync 2", "sync 1", "sync 0", "async 11", "async 9",
            "async 7", "async 6", "async 5", "async 4", "async 2", "async 1", "async 0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(*log.lock().unwrap(), want, "{policy:?}");
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            18,
            "every capture dropped once"
        );
        let d = async_stats().since(&before);
        assert_eq!((d.registered, d.inline, d.leaked), (18, 18, 0), "{d:?}");
        assert!(
            SPAWNED.with(|s| s.borrow().is_empty()),
            "nothing was cancelled"
        );
    }
}

#[test]
#[should_panic(expected = "other than its own")]
fn a_handle_of_another_scope_is_refused() {
    block_on(async {
        let mut a: AsyncScope<'_> = AsyncScope::new(CancelPolicy::Leak);
        let mut b: AsyncScope<'_> = AsyncScope::new(CancelPolicy::Leak);
        let h = a.defer(|| ());
        b.defer(|| ());
        b.cancel(h);
    });
}

/// Polls `f` at most `k` times with a no-op waker; `true` if it finished.
fn poll_k<F: Future>(f: F, k: usize) -> bool {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..k {
        if f.as_mut().poll(&mut cx).is_ready() {
            return true;
        }
    }
    false
}

#[test]
fn cancellation_runs_sync_cleanups_and_fallbacks_and_counts_leaks() {
    let log: Log = Arc::default();
    let before = async_stats();
    let finished = poll_k(
        async_scope!(CancelPolicy::Leak, |s| {
            let l = &log;
            s.defer(move || push(l, "sync"));
            s.defer_async_or(
                move || async move { push(l, "async cleanup") },
                move || push(l, "fallback"),
            );
            s.on_success(move || push(l, "success only"));
            s.errdefer(move || push(l, "error only"));
            let l2 = Arc::clone(&log);
            s.defer_async(move || async move { push(&l2, "leaked") });
            YieldN(10).await;
        }),
        3,
    );
    assert!(!finished);
    assert_eq!(*log.lock().unwrap(), ["error only", "fallback", "sync"]);
    let d = async_stats().since(&before);
    assert_eq!(
        (d.cancelled_scopes, d.ran_on_cancel, d.fallbacks, d.leaked),
        (1, 2, 1, 1)
    );
    assert_eq!((d.registered, d.inline), (5, 5));
}

#[test]
fn block_policy_outside_a_runtime_finishes_async_cleanups_in_drop() {
    let log: Log = Arc::default();
    let before = async_stats();
    let finished = poll_k(
        async_scope!(
            CancelPolicy::Block(std::time::Duration::from_secs(5)),
            |s| {
                let l = Arc::clone(&log);
                s.defer_async(move || async move {
                    YieldN(3).await;
                    push(&l, "reset");
                });
                YieldN(10).await;
            }
        ),
        2,
    );
    assert!(!finished);
    assert_eq!(*log.lock().unwrap(), ["reset"]);
    assert_eq!(async_stats().since(&before).blocked, 1);
}

/// Forgets `f` (never polled nor dropped again); returns its memory, to free later with
/// [`free`] (so that memcheck sees no leak).
fn forget_boxed<F>(f: Pin<Box<F>>) -> (*mut u8, std::alloc::Layout) {
    // SAFETY: the box is not used as an `F` any more (neither polled nor dropped): only its
    // memory is freed later, with `F`'s layout, and nothing points into it.
    let raw = Box::into_raw(unsafe { Pin::into_inner_unchecked(f) });
    (raw.cast(), std::alloc::Layout::new::<F>())
}

/// Frees memory returned by [`forget_boxed`].
fn free((raw, layout): (*mut u8, std::alloc::Layout)) {
    // SAFETY: `raw` came from a `Box` of this layout (the global allocator) and is freed once.
    unsafe { std::alloc::dealloc(raw, layout) }
}

/// A `finish` leaked while its cleanup runs in place: the scope refuses `&mut` access from
/// then on, and its `Drop` still disposes of the started cleanup by its policy.
#[test]
fn a_leaked_finish_leaves_the_running_cleanup_to_the_scopes_drop() {
    quiet_hook();
    let log: Log = Arc::default();
    let mut scope: Pin<Box<AsyncScope<'static>>> = Box::pin(AsyncScope::new(CancelPolicy::Block(
        std::time::Duration::from_secs(10),
    )));
    let l = Arc::clone(&log);
    scope.as_mut().scope_mut().defer_async(move || async move {
        YieldN(3).await;
        push(&l, "reset");
    });
    let mut f = Box::pin(scope.as_mut().finish());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(f.as_mut().poll(&mut cx).is_pending(), "the cleanup started");
    let memory = forget_boxed(f);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = scope.as_mut().scope_mut();
    }));
    assert!(r.is_err(), "no `&mut` once a cleanup started in place");
    assert!(log.lock().unwrap().is_empty());
    drop(scope);
    assert_eq!(
        *log.lock().unwrap(),
        ["reset"],
        "finished by the Block policy"
    );
    free(memory);
}

/// Under `Spawn`, cleanups of one type start alternately in the two places of the scope's run
/// slot (one place for the largest pool class). One left pending in either place and handed
/// over on cancellation resumes there, its state intact, and is not started again; the
/// unstarted one is moved out to a block of its own; every capture is dropped once.
fn spawn_slot_hands_over_a_pending_cleanup_from_either_place<const PAD: usize>() {
    struct D(Arc<AtomicUsize>);
    impl Drop for D {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    // The first cleanup to run (3) starts in the first place, the second (2) in the second,
    // the third (1) in the first again.
    for pending in [2usize, 1] {
        let log: Log = Arc::default();
        let dropped = Arc::new(AtomicUsize::new(0));
        let before = async_stats();
        let fut = async_scope!(CancelPolicy::Spawn(keep), 16384, |s| {
            for i in 0..4usize {
                let (l, d) = (Arc::clone(&log), D(Arc::clone(&dropped)));
                let pad = [i as u8; PAD];
                s.defer_async(move || async move {
                    let _d = d;
                    push(&l, format!("start {i}"));
                    if i == pending {
                        YieldN(3).await;
                    }
                    assert!(
                        pad.iter().all(|&b| b == i as u8),
                        "the future's state moved"
                    );
                    push(&l, format!("done {i}"));
                });
            }
        });
        assert!(!poll_k(fut, 2), "cancelled with cleanup {pending} pending");
        let spawned = SPAWNED.with(|s| std::mem::take(&mut *s.borrow_mut()));
        assert_eq!(
            spawned.len(),
            pending + 1,
            "the pending one and the older ones"
        );
        for d in spawned {
            block_on(d);
        }
        let mut want = Vec::new();
        for i in (0..4).rev() {
            want.push(format!("start {i}"));
            want.push(format!("done {i}"));
        }
        assert_eq!(*log.lock().unwrap(), want, "PAD {PAD}, pending {pending}");
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            4,
            "every capture dropped once"
        );
        let d = async_stats().since(&before);
        assert_eq!((d.spawned, d.leaked), (pending as u64 + 1, 0), "{d:?}");
    }
}

#[test]
fn spawn_slot_handover_small_records() {
    spawn_slot_hands_over_a_pending_cleanup_from_either_place::<8>();
}

#[test]
fn spawn_slot_handover_records_of_the_second_largest_class() {
    // About 1.5 KiB: pool class 2048, the slot's block 4096 with two places.
    spawn_slot_hands_over_a_pending_cleanup_from_either_place::<1500>();
}

#[test]
fn spawn_slot_handover_records_of_the_largest_class() {
    // About 3 KiB: pool class 4096, one place.
    spawn_slot_hands_over_a_pending_cleanup_from_either_place::<3000>();
}

// ------------------------------------------------------------------ property tests

#[derive(Debug, Clone, Copy)]
enum Op {
    /// A sync cleanup; panics if `true`.
    Sync(bool),
    /// An async cleanup that yields this many times, then panics if `true`.
    Async(u8, bool),
    /// An async cleanup (yielding this many times) with a sync fallback.
    AsyncOr(u8),
    /// The body yields this many times.
    Yield(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::bool::weighted(0.15).prop_map(Op::Sync),
        3 => (0u8..3, prop::bool::weighted(0.15)).prop_map(|(n, p)| Op::Async(n, p)),
        2 => (0u8..3).prop_map(Op::AsyncOr),
        2 => (0u8..3).prop_map(Op::Yield),
    ]
}

/// What happened to each cleanup, and how often each one's captures were dropped.
#[derive(Default)]
struct Book {
    registered: Mutex<Vec<usize>>,
    events: Mutex<Vec<(usize, &'static str)>>,
    drops: Mutex<Vec<usize>>,
}

struct Capture(Arc<Book>, usize);

impl Capture {
    fn event(&self, what: &'static str) {
        self.0.events.lock().unwrap().push((self.1, what));
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.0.drops.lock().unwrap()[self.1] += 1;
    }
}

thread_local! {
    static SPAWNED: std::cell::RefCell<Vec<frugal_defer::Detached>> = const {
        std::cell::RefCell::new(Vec::new())
    };
}

/// A spawner for the tests: keeps the detached cleanups to run them afterwards.
fn keep(d: frugal_defer::Detached, _deadline: Option<std::time::Duration>) {
    SPAWNED.with(|s| s.borrow_mut().push(d));
}

/// Runs the program, dropping the scope's future after `k` polls; returns the book, whether
/// the scope finished, and how many events happened before the spawned cleanups ran.
fn run_program<const BYTES: usize>(
    ops: &[Op],
    body_panics: bool,
    policy: CancelPolicy,
    k: usize,
) -> (Arc<Book>, bool, usize) {
    let book = Arc::new(Book::default());
    *book.drops.lock().unwrap() = vec![0; ops.len()];
    let b = &book;
    let fut = async_recover!(policy, BYTES, |s| {
        for (i, op) in ops.iter().enumerate() {
            let c = || Capture(Arc::clone(b), i);
            match *op {
                Op::Sync(p) => {
                    let c = c();
                    s.defer(move || {
                        c.event("ran");
                        if p {
                            boom(c.1);
                        }
                    });
                }
                Op::Async(n, p) => {
                    let c = c();
                    s.defer_async(move || async move {
                        YieldN(n as usize).await;
                        c.event("ran");
                        if p {
                            boom(c.1);
                        }
                    });
                }
                Op::AsyncOr(n) => {
                    let (c, c2) = (c(), c());
                    s.defer_async_or(
                        move || async move {
                            YieldN(n as usize).await;
                            c.event("ran");
                        },
                        move || c2.event("fallback"),
                    );
                }
                Op::Yield(n) => {
                    YieldN(n as usize).await;
                    continue;
                }
            }
            b.registered.lock().unwrap().push(i);
        }
        if body_panics {
            boom(usize::MAX);
        }
    });
    let finished = poll_k(fut, k);
    let boundary = book.events.lock().unwrap().len();
    // A test spawner's cleanups run now, in the order they were handed over.
    let spawned = SPAWNED.with(|s| std::mem::take(&mut *s.borrow_mut()));
    for d in spawned {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| block_on(d)));
    }
    (book, finished, boundary)
}

/// Checks one run: every registered cleanup ran or ran its fallback exactly once, or (only
/// with `Leak`) was counted as leaked; newest first; every capture dropped exactly once.
fn check_run<const BYTES: usize>(
    ops: &[Op],
    body_panics: bool,
    policy: CancelPolicy,
    k: usize,
) -> Result<bool, TestCaseError> {
    let before = async_stats();
    let (book, finished, boundary) = run_program::<BYTES>(ops, body_panics, policy, k);
    let _ = take_collateral();
    let leaked = async_stats().since(&before).leaked;
    let registered = book.registered.lock().unwrap().clone();
    let events = book.events.lock().unwrap().clone();
    let drops = book.drops.lock().unwrap().clone();
    // Newest first: indices strictly decreasing — separately for the cleanups run by the
    // scope (normally or in `Drop`) and for those handed to the spawner, which run later.
    let (scope_run, spawned) = events.split_at(boundary);
    for part in [scope_run, spawned] {
        prop_assert!(
            part.windows(2).all(|w| w[0].0 > w[1].0),
            "LIFO and at most once each: {:?} | {:?}",
            scope_run,
            spawned
        );
    }
    let mut missing = 0;
    for (i, op) in ops.iter().enumerate() {
        let is_registered = registered.contains(&i);
        let n = events.iter().filter(|e| e.0 == i).count();
        let want_drops = match op {
            Op::Yield(_) => 0,
            _ if !is_registered => 0,
            Op::AsyncOr(_) => 2,
            _ => 1,
        };
        prop_assert_eq!(
            drops[i],
            want_drops,
            "captures of {} dropped once: {:?}",
            i,
            op
        );
        prop_assert!(n <= 1, "cleanup {} ran once at most: {:?}", i, events);
        if !is_registered {
            prop_assert_eq!(n, 0);
            continue;
        }
        if n == 0 {
            prop_assert!(
                matches!(op, Op::Async(..)) && matches!(policy, CancelPolicy::Leak) && !finished,
                "cleanup {} ({:?}) neither ran nor was handed to a fallback",
                i,
                op
            );
            missing += 1;
        }
        if matches!(events.iter().find(|e| e.0 == i), Some((_, "fallback"))) {
            prop_assert!(!finished, "fallbacks run only on cancellation");
        }
    }
    prop_assert_eq!(
        leaked,
        missing as u64,
        "every unrun cleanup is counted as leaked"
    );
    Ok(finished)
}

/// Checks every cancellation point, with the default inline area and with small ones (64
/// bytes: the first records inline, the rest in blocks of their own; 0: all in blocks).
fn check_every_k(ops: &[Op], body_panics: bool, policy: CancelPolicy) -> Result<(), TestCaseError> {
    quiet_hook();
    for bytes in [frugal_defer::DEFAULT_ASYNC_CAPACITY, 64, 0] {
        for k in 0.. {
            let finished = match bytes {
                64 => check_run::<64>(ops, body_panics, policy, k)?,
                0 => check_run::<0>(ops, body_panics, policy, k)?,
                _ => check_run::<{ frugal_defer::DEFAULT_ASYNC_CAPACITY }>(
                    ops,
                    body_panics,
                    policy,
                    k,
                )?,
            };
            if finished {
                break;
            }
            prop_assert!(k < 10_000, "the scope finishes");
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn cancelled_at_every_poll_with_leak(
        ops in prop::collection::vec(op(), 0..10),
        body_panics in prop::bool::weighted(0.2),
    ) {
        check_every_k(&ops, body_panics, CancelPolicy::Leak)?;
    }

    #[test]
    fn cancelled_at_every_poll_with_block(
        ops in prop::collection::vec(op(), 0..10),
        body_panics in prop::bool::weighted(0.2),
    ) {
        check_every_k(&ops, body_panics, CancelPolicy::Block(std::time::Duration::from_secs(10)))?;
    }

    #[test]
    fn cancelled_at_every_poll_with_spawn(
        ops in prop::collection::vec(op(), 0..10),
        body_panics in prop::bool::weighted(0.2),
    ) {
        check_every_k(&ops, body_panics, CancelPolicy::Spawn(keep))?;
    }
}

// ------------------------------------------------------------------ tokio

#[cfg(feature = "tokio")]
mod with_tokio {
    use super::*;
    use std::time::Duration;

    use tokio::sync::oneshot;

    /// The scope loses a `select!`: its async cleanup is spawned, finishes on the runtime,
    /// shielded from the cancellation, after the sync cleanups ran in `Drop`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_select_spawns_the_async_cleanup() {
        let log: Log = Arc::default();
        let (tx, rx) = oneshot::channel();
        let l = Arc::clone(&log);
        tokio::select! {
            _ = async_scope!(CancelPolicy::SPAWN_TOKIO, |s| {
                s.defer_async(move || async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    push(&l, "released");
                    let _ = tx.send(());
                });
                let l = &log;
                s.defer(move || push(l, "sync"));
                std::future::pending::<()>().await;
            }) => unreachable!("the body never ends"),
            () = tokio::task::yield_now() => {}
        }
        tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .expect("the spawned cleanup finished")
            .expect("sent");
        assert_eq!(*log.lock().unwrap(), ["sync", "released"]);
    }

    /// A cleanup that would take an hour is dropped at the scope's one-second deadline, at a
    /// normal exit and when spawned after a cancellation (paused time: no real waiting).
    #[tokio::test(start_paused = true)]
    async fn cleanup_deadlines_with_paused_time() {
        let before = async_stats();
        let started = tokio::time::Instant::now();
        async {
            let mut s: Pin<&mut AsyncScope<'_>> = pin!(AsyncScope::new(CancelPolicy::SPAWN_TOKIO)
                .with_cleanup_deadline(Duration::from_secs(1)));
            s.as_mut()
                .scope_mut()
                .defer_async(|| async { tokio::time::sleep(Duration::from_secs(3600)).await });
            s.finish().await;
        }
        .await;
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        assert_eq!(async_stats().since(&before).timed_out, 1);

        // Cancelled: the spawned cleanup gets the same deadline on the runtime.
        let (tx, rx) = oneshot::channel::<()>();
        let spawned = tokio::spawn(async move {
            let mut s: Pin<&mut AsyncScope<'_>> = pin!(AsyncScope::new(CancelPolicy::SPAWN_TOKIO)
                .with_cleanup_deadline(Duration::from_secs(2)));
            s.as_mut().scope_mut().defer_async(move || async move {
                let _tx = tx; // dropped when the cleanup is
                tokio::time::sleep(Duration::from_secs(3600)).await;
            });
            std::future::pending::<()>().await;
            s.finish().await;
        });
        tokio::task::yield_now().await;
        spawned.abort();
        let t0 = tokio::time::Instant::now();
        assert!(rx.await.is_err(), "the cleanup was dropped at its deadline");
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
    }

    /// `Block` works on a multi-thread runtime (through `block_in_place`) and refuses on a
    /// current-thread one, counting the cleanup as leaked.
    #[test]
    fn block_policy_on_tokio_runtimes() {
        for (multi, want_blocked, want_leaked) in [(true, 1, 0), (false, 0, 1)] {
            let rt = if multi {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            }
            .unwrap();
            let log: Log = Arc::default();
            let l = Arc::clone(&log);
            let stats = rt.block_on(async move {
                let before = async_stats();
                let fut = async_scope!(CancelPolicy::Block(Duration::from_secs(10)), |s| {
                    s.defer_async(move || async move {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        push(&l, "reset");
                    });
                    std::future::pending::<()>().await;
                });
                let _ = tokio::time::timeout(Duration::from_millis(1), fut).await;
                async_stats().since(&before)
            });
            assert_eq!(
                (stats.blocked, stats.leaked),
                (want_blocked, want_leaked),
                "multi: {multi}"
            );
            assert_eq!(log.lock().unwrap().len(), want_blocked as usize);
        }
    }
}

// ---- async_guarded: one statically typed async cleanup

/// A value that logs its drop.
struct LogDrop(Log, &'static str);

impl Drop for LogDrop {
    fn drop(&mut self) {
        push(&self.0, format!("drop {}", self.1));
    }
}

/// The guarded future of the tests below: a body that waits twice, a cleanup that waits
/// twice; everything logged.
fn guarded_program(log: &Log) -> impl Future<Output = u32> + std::fmt::Debug + Send + '_ {
    frugal_defer::async_guarded(
        async move {
            let _held = LogDrop(Arc::clone(log), "body local");
            push(log, "body start");
            YieldN(2).await;
            push(log, "body end");
            7
        },
        move || async move {
            let _held = LogDrop(Arc::clone(log), "cleanup local");
            push(log, "cleanup start");
            YieldN(2).await;
            push(log, "cleanup end");
        },
        move || push(log, "fallback"),
    )
}

#[test]
fn async_guarded_awaits_the_cleanup_after_the_body_and_drops_the_fallback_unrun() {
    let log: Log = Arc::default();
    let before = async_stats();
    assert_eq!(block_on(guarded_program(&log)), 7);
    assert_eq!(
        *log.lock().unwrap(),
        [
            "body start",
            "body end",
            "drop body local",
            "cleanup start",
            "cleanup end",
            "drop cleanup local"
        ]
    );
    assert_eq!(async_stats().since(&before).fallbacks, 0);
}

#[test]
fn async_guarded_is_send_when_its_parts_are() {
    fn assert_send<T: Send>(_: &T) {}
    let log: Log = Arc::default();
    let fut = guarded_program(&log);
    assert_send(&fut);
    assert_eq!(
        format!("{fut:?}"),
        "AsyncGuarded { state: \"body\", armed: true }"
    );
    drop(fut);
    assert_eq!(*log.lock().unwrap(), ["fallback"]);
}

#[test]
fn nested_async_guards_run_newest_first() {
    let log: Log = Arc::default();
    let l = &log;
    block_on(frugal_defer::async_guarded(
        frugal_defer::async_guarded(
            async move { push(l, "body") },
            move || async move { push(l, "inner cleanup") },
            move || push(l, "inner fallback"),
        ),
        move || async move { push(l, "outer cleanup") },
        move || push(l, "outer fallback"),
    ));
    assert_eq!(
        *log.lock().unwrap(),
        ["body", "inner cleanup", "outer cleanup"]
    );
}

#[test]
fn async_guarded_dropped_after_every_k_polls_runs_the_fallback_unless_the_cleanup_finished() {
    // Polls: 1 and 2 wait in the body, 3 and 4 in the cleanup, the 5th finishes.
    for k in 0..=6 {
        let log: Log = Arc::default();
        let before = async_stats();
        let finished = poll_k(guarded_program(&log), k);
        let fallbacks = async_stats().since(&before).fallbacks;
        let log = log.lock().unwrap().clone();
        assert_eq!(finished, k >= 5, "k = {k}: {log:?}");
        let want: &[&str] = match k {
            0 => &["fallback"],
            1 | 2 => &["body start", "drop body local", "fallback"],
            3 | 4 => &[
                "body start",
                "body end",
                "drop body local",
                "cleanup start",
                "drop cleanup local",
                "fallback",
            ],
            _ => &[
                "body start",
                "body end",
                "drop body local",
                "cleanup start",
                "cleanup end",
                "drop cleanup local",
            ],
        };
        assert_eq!(log, want, "k = {k}");
        assert_eq!(fallbacks, u64::from(k < 5), "k = {k}");
    }
}

#[test]
fn async_guarded_runs_the_fallback_when_the_body_or_the_cleanup_panics() {
    quiet_hook();
    for in_cleanup in [false, true] {
        let log: Log = Arc::default();
        let l = &log;
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
            block_on(frugal_defer::async_guarded(
                async move {
                    push(l, "body");
                    if !in_cleanup {
                        boom(1);
                    }
                },
                move || async move {
                    push(l, "cleanup");
                    if in_cleanup {
                        boom(2);
                    }
                },
                move || push(l, "fallback"),
            ))
        }));
        let payload = r.expect_err("the panic propagates");
        let want = if in_cleanup { Boom(2) } else { Boom(1) };
        assert_eq!(payload.downcast_ref::<Boom>(), Some(&want));
        let want_log: &[&str] = if in_cleanup {
            &["body", "cleanup", "fallback"]
        } else {
            &["body", "fallback"]
        };
        assert_eq!(*log.lock().unwrap(), want_log);
    }
}

#[test]
fn a_panicking_fallback_of_async_guarded_is_kept_not_aborting() {
    quiet_hook();
    let _ = take_collateral();
    // Cancelled (dropped before its first poll): the fallback panics in `Drop`.
    let fut = frugal_defer::async_guarded(async {}, || async {}, || boom(3));
    drop(fut);
    // Unwinding from the body: the fallback panics during unwinding, which must not abort.
    let r = std::panic::catch_unwind(|| {
        block_on(frugal_defer::async_guarded(
            async { boom(4) },
            || async {},
            || boom(5),
        ))
    });
    assert_eq!(
        r.expect_err("the body's panic propagates")
            .downcast_ref::<Boom>(),
        Some(&Boom(4))
    );
    let kept: Vec<Boom> = take_collateral()
        .iter()
        .filter_map(|p| p.downcast_ref::<Boom>().copied())
        .collect();
    assert_eq!(kept, [Boom(3), Boom(5)]);
}

#[test]
fn async_guarded_drops_every_capture_once() {
    let made = Arc::new(Mutex::new(vec![0; 3]));
    let drops = Arc::new(Mutex::new(vec![0; 3]));
    for k in 0..=3 {
        for d in drops.lock().unwrap().iter_mut() {
            *d = 0;
        }
        for m in made.lock().unwrap().iter_mut() {
            *m = 0;
        }
        let (b, c, g) = (
            counted(&made, &drops, 0),
            counted(&made, &drops, 1),
            counted(&made, &drops, 2),
        );
        poll_k(
            frugal_defer::async_guarded(
                async move {
                    let _b = b;
                    YieldN(1).await;
                },
                move || async move {
                    let _c = c;
                    YieldN(1).await;
                },
                move || drop(g),
            ),
            k,
        );
        assert_eq!(*drops.lock().unwrap(), [1, 1, 1], "k = {k}");
    }
}
