//! The only unsafe code of this crate: io_uring read submission and `getrusage`.
//!
//! [`Ring`] owns the file, the ring and one block-aligned buffer per slot. A slot is either
//! free (its buffer may be read through [`Ring::block`]) or in flight (the kernel may write
//! into it). The safe interface keeps that invariant: a read is only queued into a free slot,
//! a slot becomes free only when its completion is reaped, and [`Drop`] reaps every read
//! still in flight before the buffers and the file go away (if reaping fails, the buffers are
//! leaked rather than freed under the kernel's feet).
//!
//! Not run under valgrind memcheck: valgrind does not model the `io_uring_enter` syscalls
//! (the kernel writes into the buffers behind its back), so memcheck would report
//! uninitialized reads that are not there. This module is therefore *not* in
//! `scripts/valgrind-tests.sh`; its tests check the bytes read against a known pattern instead.
#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;

use io_uring::{opcode, types, IoUring};

/// One heap allocation holding every slot's buffer, touched only through raw pointers (never
/// through a reference to the whole allocation, which would alias the slots the kernel is
/// writing into).
struct Buffers {
    base: NonNull<u8>,
    layout: Layout,
    /// Set when the kernel may still write into the buffers: then they are never freed.
    leak: bool,
}

impl Buffers {
    /// `n` zeroed buffers of `block` bytes, each aligned to `block`.
    fn new(block: usize, n: usize) -> io::Result<Buffers> {
        let layout = block
            .checked_mul(n.max(1))
            .and_then(|size| Layout::from_size_align(size, block).ok())
            .ok_or_else(|| io::Error::other("io_uring buffers too large"))?;
        // SAFETY: `layout` has a non-zero size (`block >= 512`, `n.max(1) >= 1`).
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let base = NonNull::new(ptr).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                "cannot allocate io_uring buffers",
            )
        })?;
        Ok(Buffers {
            base,
            layout,
            leak: false,
        })
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        if self.leak {
            return;
        }
        // SAFETY: `base` was returned by `alloc_zeroed(layout)` and is freed only here, once;
        // `leak` is false, so no read is in flight into it (see `Drop for Ring`).
        unsafe { alloc::dealloc(self.base.as_ptr(), self.layout) };
    }
}

/// One block-aligned buffer per slot over a file, with reads submitted through io_uring.
///
/// Field order is drop order: the ring is closed first, then the buffers are freed (or
/// leaked), then the file is closed.
pub(super) struct Ring {
    ring: IoUring,
    buffers: Buffers,
    block: usize,
    in_flight: Vec<bool>,
    pending: usize,
    /// Set when the kernel reported a completion we did not submit: the ring's state can no
    /// longer be trusted, so the buffers are leaked on drop.
    poisoned: bool,
    /// Kept open while reads are in flight (dropped after `Drop::drop` drained them).
    file: File,
}

impl Ring {
    /// A ring of `slots` entries over `file`, with `block`-byte buffers aligned to `block`
    /// (a power of two, at least 512: what O_DIRECT asks for).
    pub(super) fn new(file: File, slots: u32, block: usize) -> io::Result<Ring> {
        assert!(
            block.is_power_of_two() && block >= 512,
            "block size checked by the caller"
        );
        let ring = IoUring::new(slots.next_power_of_two().max(1))?;
        let n = slots as usize;
        let buffers = Buffers::new(block, n)?;
        Ok(Ring {
            ring,
            buffers,
            block,
            in_flight: vec![false; n],
            pending: 0,
            poisoned: false,
            file,
        })
    }

    /// Number of slots.
    pub(super) fn slots(&self) -> usize {
        self.in_flight.len()
    }

    /// Pointer to the first byte of `slot`'s buffer (`slot < self.slots()`).
    fn slot_ptr(&self, slot: usize) -> *mut u8 {
        assert!(slot < self.in_flight.len(), "slot {slot} out of range");
        // SAFETY: `slot < n`, so `slot * block` is within the `block * n`-byte allocation
        // starting at `base` (and fits in `isize`, as the layout's size does).
        unsafe { self.buffers.base.as_ptr().add(slot * self.block) }
    }

    /// Queues a read of one block at `offset` into the free `slot` (not yet submitted to the
    /// kernel: call [`Ring::wait`]).
    pub(super) fn queue_read(&mut self, slot: usize, offset: u64) -> io::Result<()> {
        assert!(!self.in_flight[slot], "slot {slot} queued while in flight");
        let buf = self.slot_ptr(slot);
        let entry = opcode::Read::new(types::Fd(self.file.as_raw_fd()), buf, self.block as u32)
            .offset(offset)
            .build()
            .user_data(slot as u64);
        // SAFETY: `buf` points to the `block` bytes of this slot in the allocation owned by
        // `self.buffers`, obtained from the raw base pointer (no reference to the allocation
        // exists while reads are in flight). The slot is free (asserted above), so no other
        // read targets these bytes, and it stays marked in flight (so `block` will not read
        // it) until its completion is reaped. The buffers stay alive until every read is
        // reaped: `Drop for Ring` drains them first and, if it cannot (an error, a panic, a
        // completion we did not submit), leaks the buffers instead of freeing them. Closing
        // the file descriptor the entry names is harmless once the read is submitted (the
        // kernel holds its own reference to the file for each request), and `file` is
        // dropped after `ring` and `buffers` in any case (field order).
        let pushed = unsafe { self.ring.submission().push(&entry) };
        if pushed.is_err() {
            // Cannot happen: the ring has at least as many entries as there are slots.
            return Err(io::Error::other("io_uring submission queue full"));
        }
        self.in_flight[slot] = true;
        self.pending += 1;
        Ok(())
    }

    /// Submits the queued reads and waits for at least one completion; appends
    /// `(slot, result)` for every completion reaped (result: bytes read, or `-errno`).
    /// Returns at once if no read is pending. A completion for a slot that is not in flight
    /// is an error (and the buffers will be leaked on drop), never a panic.
    pub(super) fn wait(&mut self, out: &mut Vec<(usize, i32)>) -> io::Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EBUSY)) => {
                    // The kernel is short of resources or its completion queue is full:
                    // reap what is there, or try again.
                    if !self.ring.completion().is_empty() {
                        break;
                    }
                    std::thread::yield_now();
                }
                Err(e) => return Err(e),
            }
        }
        let mut bogus = None;
        for cqe in self.ring.completion() {
            let data = cqe.user_data();
            match usize::try_from(data) {
                Ok(slot) if slot < self.in_flight.len() && self.in_flight[slot] => {
                    self.in_flight[slot] = false;
                    self.pending -= 1;
                    out.push((slot, cqe.result()));
                }
                _ => bogus = Some(data),
            }
        }
        if let Some(data) = bogus {
            self.poisoned = true;
            return Err(io::Error::other(format!(
                "io_uring completion for slot {data}, which has no read in flight"
            )));
        }
        Ok(())
    }

    /// Reads still in flight.
    pub(super) fn pending(&self) -> usize {
        self.pending
    }

    /// The buffer of a free slot (one whose read, if any, has completed).
    pub(super) fn block(&self, slot: usize) -> &[u8] {
        assert!(!self.in_flight[slot], "slot {slot} read while in flight");
        let ptr = self.slot_ptr(slot);
        // SAFETY: `ptr` points to this slot's `block` initialized (zeroed, then written by a
        // completed read) bytes, which live as long as `self`; the slot is not in flight, so
        // the kernel does not write them, and `queue_read` (which would hand them to the
        // kernel) needs `&mut self`, so they cannot change while the slice is borrowed. Only
        // this slot is covered, not the slots still in flight.
        unsafe { std::slice::from_raw_parts(ptr, self.block) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let drained = panic::catch_unwind(AssertUnwindSafe(|| {
            let mut sink = Vec::new();
            while self.pending > 0 && !self.poisoned {
                self.wait(&mut sink)?;
                sink.clear();
            }
            Ok::<(), io::Error>(())
        }));
        if !matches!(drained, Ok(Ok(()))) || self.poisoned || self.pending > 0 {
            // The kernel may still write into the buffers: leak them rather than free them.
            self.buffers.leak = true;
        }
    }
}

/// CPU time, context switches and page faults of the calling thread so far.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Usage {
    pub(super) user_ns: u64,
    pub(super) system_ns: u64,
    pub(super) voluntary_switches: u64,
    pub(super) involuntary_switches: u64,
    pub(super) minor_faults: u64,
    pub(super) major_faults: u64,
}

/// `getrusage(RUSAGE_THREAD)` if `thread`, else `getrusage(RUSAGE_SELF)` (the whole process,
/// io_uring's worker threads included).
pub(super) fn usage(thread: bool) -> io::Result<Usage> {
    let who = if thread {
        libc::RUSAGE_THREAD
    } else {
        libc::RUSAGE_SELF
    };
    // SAFETY: `rusage` is plain old data (integers and timevals): all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable `rusage` for the duration of the call.
    let rc = unsafe { libc::getrusage(who, &mut ru) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let ns = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1_000;
    Ok(Usage {
        user_ns: ns(ru.ru_utime),
        system_ns: ns(ru.ru_stime),
        voluntary_switches: ru.ru_nvcsw as u64,
        involuntary_switches: ru.ru_nivcsw as u64,
        minor_faults: ru.ru_minflt as u64,
        major_faults: ru.ru_majflt as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(slots: u32) -> Ring {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &[7u8; 8192]).unwrap();
        Ring::new(file, slots, 4096).unwrap()
    }

    #[test]
    fn wait_with_nothing_pending_returns_at_once() {
        let mut r = ring(2);
        let mut out = Vec::new();
        r.wait(&mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn completed_read_is_visible_and_drop_drains_queued_reads() {
        let mut r = ring(2);
        let mut out = Vec::new();
        r.queue_read(0, 4096).unwrap();
        while r.pending() > 0 {
            r.wait(&mut out).unwrap();
        }
        assert_eq!(out, vec![(0, 4096)]);
        assert!(r.block(0).iter().all(|&b| b == 7));
        assert!(r.block(1).iter().all(|&b| b == 0));
        // Queued, never submitted by `wait`: `Drop` submits and reaps it.
        r.queue_read(1, 0).unwrap();
    }

    #[test]
    fn completion_for_a_slot_not_in_flight_is_an_error_not_a_panic() {
        let mut r = ring(2);
        for data in [0u64, 99] {
            let nop = opcode::Nop::new().build().user_data(data);
            // SAFETY: a no-op names no buffer and no file.
            let pushed = unsafe { r.ring.submission().push(&nop) };
            pushed.unwrap();
        }
        r.pending = 1; // Let `wait` submit them.
        let mut out = Vec::new();
        let mut failed = false;
        for _ in 0..2 {
            if r.wait(&mut out).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
        assert!(out.is_empty());
        assert!(r.poisoned);
        // Dropping a poisoned ring leaks its buffers instead of freeing them.
        drop(r);
    }
}
