//! A sub-millisecond timer for the constant-rate schedule.
//!
//! Tokio's timer wheel has 1 ms granularity and rounds deadlines up, so a send scheduled with
//! `sleep_until` leaves up to 1 ms late — and coordinated-omission-corrected latency (measured
//! from the intended send time) would never read below that. The pacer is one OS thread that
//! sleeps on a condition variable (a futex with a high-resolution timeout, tens of microseconds
//! of slack) until the earliest registered deadline, then wakes the tasks due. The lateness that
//! remains — the kernel's wake-up latency for the pacer and then for the event-loop thread, about
//! 0.1 ms on a VM — is measured and reported (`pacer_lateness_ns`); it is not hidden by sending
//! early, and spinning it away would cost a core the server under test needs.
//!
//! Why hand-written: no maintained crate offers a shared sub-millisecond timer that wakes
//! futures on other threads' event loops (tokio's timer is the 1 ms wheel above; `async-io`'s
//! `Timer` brings a second reactor; spin-sleep crates block the calling thread, which here is an
//! event loop holding thousands of connections). The pacer is a binary heap of deadlines, a
//! condition variable and one thread — under 200 lines, with its lateness measured in every
//! report.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

struct Entry {
    deadline: Instant,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

/// Handle to the pacer thread; dropping the last handle stops it.
#[derive(Clone)]
pub(crate) struct Pacer {
    shared: Arc<Shared>,
    _stopper: Arc<Stopper>,
}

struct Stopper(Arc<Shared>);

impl Drop for Stopper {
    fn drop(&mut self) {
        lock(&self.0).stop = true;
        self.0.changed.notify_one();
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Queue> {
    shared
        .queue
        .lock()
        .expect("the pacer lock is never poisoned: no panics while held")
}

impl Pacer {
    /// Starts the pacer thread.
    pub(crate) fn start() -> std::io::Result<Pacer> {
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("frugal-pacer".into())
            .spawn(move || run(&thread_shared))?;
        Ok(Pacer {
            _stopper: Arc::new(Stopper(Arc::clone(&shared))),
            shared,
        })
    }

    /// A future that completes at `deadline` (within the pacer's slack).
    pub(crate) fn sleep_until(&self, deadline: Instant) -> PacedSleep<'_> {
        PacedSleep {
            pacer: self,
            deadline,
        }
    }
}

fn run(shared: &Shared) {
    let mut queue = lock(shared);
    let mut due = Vec::new();
    loop {
        if queue.stop {
            return;
        }
        let now = Instant::now();
        while queue
            .heap
            .peek()
            .is_some_and(|Reverse(e)| e.deadline <= now)
        {
            let Reverse(entry) = queue.heap.pop().expect("peeked just above");
            due.push(entry.waker);
        }
        if !due.is_empty() {
            // Wake outside the lock: waking may take the runtime's locks.
            drop(queue);
            for waker in due.drain(..) {
                waker.wake();
            }
            queue = lock(shared);
            continue;
        }
        queue = match queue.heap.peek() {
            None => shared.changed.wait(queue).expect("never poisoned"),
            Some(Reverse(e)) => {
                let wait = e.deadline.saturating_duration_since(now);
                shared
                    .changed
                    .wait_timeout(queue, wait)
                    .expect("never poisoned")
                    .0
            }
        };
    }
}

/// See [`Pacer::sleep_until`].
pub(crate) struct PacedSleep<'a> {
    pacer: &'a Pacer,
    deadline: Instant,
}

impl Future for PacedSleep<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        // Register (again, after a spurious poll: an extra wake-up is harmless).
        let shared = &self.pacer.shared;
        let mut queue = lock(shared);
        queue.seq += 1;
        let seq = queue.seq;
        let earliest = queue
            .heap
            .peek()
            .is_none_or(|Reverse(e)| self.deadline < e.deadline);
        queue.heap.push(Reverse(Entry {
            deadline: self.deadline,
            seq,
            waker: cx.waker().clone(),
        }));
        drop(queue);
        if earliest {
            shared.changed.notify_one();
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_at_or_after_the_deadline() {
        let pacer = Pacer::start().expect("a thread starts");
        let start = Instant::now();
        for i in (0..20u64).rev() {
            let deadline = start + Duration::from_micros(100 * i);
            pacer.sleep_until(deadline).await;
            assert!(Instant::now() >= deadline);
        }
    }
}
