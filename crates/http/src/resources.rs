//! The per-request resources: a pool of buffers and a bounded pool of leases.
//!
//! Neither hands out a value that releases itself on drop: releasing is the job of the cleanup
//! [`Strategy`](super::Strategy) under test, so a strategy that forgets a release leaks for real
//! (the gauges in `/metrics` show it).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::Semaphore;

/// A pool of byte buffers (think request/response buffers).
#[derive(Debug)]
pub(crate) struct BufferPool {
    idle: Mutex<Vec<Vec<u8>>>,
    max_idle: usize,
    capacity: usize,
    in_use: AtomicI64,
    allocated: AtomicU64,
    released: AtomicU64,
}

impl BufferPool {
    pub(crate) fn new(max_idle: usize, capacity: usize) -> Self {
        BufferPool {
            idle: Mutex::new(Vec::with_capacity(max_idle)),
            max_idle,
            capacity,
            in_use: AtomicI64::new(0),
            allocated: AtomicU64::new(0),
            released: AtomicU64::new(0),
        }
    }

    /// Takes a buffer; the caller must hand it back with [`put`](Self::put).
    pub(crate) fn take(&self) -> Vec<u8> {
        self.in_use.fetch_add(1, Relaxed);
        let reused = self
            .idle
            .lock()
            .expect("pool lock is never poisoned: no panics inside")
            .pop();
        reused.unwrap_or_else(|| {
            self.allocated.fetch_add(1, Relaxed);
            Vec::with_capacity(self.capacity)
        })
    }

    /// Returns a buffer to the pool.
    pub(crate) fn put(&self, mut buf: Vec<u8>) {
        buf.clear();
        self.in_use.fetch_sub(1, Relaxed);
        self.released.fetch_add(1, Relaxed);
        let mut idle = self
            .idle
            .lock()
            .expect("pool lock is never poisoned: no panics inside");
        if idle.len() < self.max_idle {
            idle.push(buf);
        }
    }

    pub(crate) fn in_use(&self) -> i64 {
        self.in_use.load(Relaxed)
    }

    pub(crate) fn idle(&self) -> usize {
        self.idle
            .lock()
            .expect("pool lock is never poisoned: no panics inside")
            .len()
    }

    pub(crate) fn allocated(&self) -> u64 {
        self.allocated.load(Relaxed)
    }

    pub(crate) fn released(&self) -> u64 {
        self.released.load(Relaxed)
    }
}

/// A lease from a [`LeasePool`]. It has no `Drop`: forgetting to release it shrinks the pool.
#[derive(Debug)]
#[must_use = "a lease must be released to its pool"]
pub(crate) struct Lease {
    _private: (),
}

/// A bounded pool of leases (think database connections), waited for within a deadline.
#[derive(Debug)]
pub(crate) struct LeasePool {
    permits: Semaphore,
    size: usize,
    waits: AtomicU64,
    wait_ns: AtomicU64,
    timeouts: AtomicU64,
    released: AtomicU64,
}

impl LeasePool {
    pub(crate) fn new(size: usize) -> Self {
        LeasePool {
            permits: Semaphore::new(size),
            size,
            waits: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            released: AtomicU64::new(0),
        }
    }

    /// Waits for a lease until `deadline`; `None` when the deadline passed first. Dropping the
    /// returned future while it waits takes nothing from the pool.
    pub(crate) async fn acquire_until(&self, deadline: tokio::time::Instant) -> Option<Lease> {
        if let Ok(permit) = self.permits.try_acquire() {
            // The permit is given back by `release`, not by drop.
            permit.forget();
            return Some(Lease { _private: () });
        }
        self.waits.fetch_add(1, Relaxed);
        let started = Instant::now();
        let result = tokio::time::timeout_at(deadline, self.permits.acquire()).await;
        self.wait_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
        match result {
            Ok(Ok(permit)) => {
                permit.forget();
                Some(Lease { _private: () })
            }
            // The semaphore is never closed, so only the timeout can fail.
            Ok(Err(_)) | Err(_) => {
                self.timeouts.fetch_add(1, Relaxed);
                None
            }
        }
    }

    /// Gives a lease back.
    pub(crate) fn release(&self, lease: Lease) {
        let Lease { _private: () } = lease;
        self.released.fetch_add(1, Relaxed);
        self.permits.add_permits(1);
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn in_use(&self) -> usize {
        self.size.saturating_sub(self.permits.available_permits())
    }

    pub(crate) fn waits(&self) -> u64 {
        self.waits.load(Relaxed)
    }

    pub(crate) fn wait_seconds(&self) -> f64 {
        self.wait_ns.load(Relaxed) as f64 / 1e9
    }

    pub(crate) fn timeouts(&self) -> u64 {
        self.timeouts.load(Relaxed)
    }

    pub(crate) fn released(&self) -> u64 {
        self.released.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_count_in_use_and_reuse() {
        let pool = BufferPool::new(2, 16);
        let a = pool.take();
        let b = pool.take();
        assert_eq!(pool.in_use(), 2);
        pool.put(a);
        pool.put(b);
        assert_eq!(pool.in_use(), 0);
        assert_eq!(pool.idle(), 2);
        let _c = pool.take();
        assert_eq!(pool.allocated(), 2, "the third take reuses an idle buffer");
    }

    #[tokio::test]
    async fn leases_are_bounded_and_time_out() {
        let pool = LeasePool::new(1);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(10);
        let first = pool
            .acquire_until(deadline)
            .await
            .expect("the pool has one free lease");
        assert_eq!(pool.in_use(), 1);
        assert!(pool.acquire_until(deadline).await.is_none());
        assert_eq!(pool.timeouts(), 1);
        pool.release(first);
        assert_eq!(pool.in_use(), 0);
    }
}
