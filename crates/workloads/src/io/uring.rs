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

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, types, IoUring};

/// One block-aligned buffer per slot over a file, with reads submitted through io_uring.
pub(super) struct Ring {
    ring: IoUring,
    /// Backing storage; never resized, so pointers into it stay valid.
    storage: Vec<u8>,
    /// Offset of the first aligned byte in `storage`.
    base: usize,
    block: usize,
    in_flight: Vec<bool>,
    pending: usize,
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
        let storage = vec![0u8; block * n + block];
        let base = storage.as_ptr().align_offset(block);
        Ok(Ring {
            ring,
            storage,
            base,
            block,
            in_flight: vec![false; n],
            pending: 0,
            file,
        })
    }

    /// Number of slots.
    pub(super) fn slots(&self) -> usize {
        self.in_flight.len()
    }

    /// Queues a read of one block at `offset` into the free `slot` (not yet submitted to the
    /// kernel: call [`Ring::wait`]).
    pub(super) fn queue_read(&mut self, slot: usize, offset: u64) -> io::Result<()> {
        assert!(!self.in_flight[slot], "slot {slot} queued while in flight");
        let start = self.base + slot * self.block;
        let buf = self.storage[start..start + self.block].as_mut_ptr();
        let entry = opcode::Read::new(types::Fd(self.file.as_raw_fd()), buf, self.block as u32)
            .offset(offset)
            .build()
            .user_data(slot as u64);
        // SAFETY: `buf` points to `block` bytes of `storage` owned by `self`, which is never
        // resized; the slot is free (asserted above), so no other read targets these bytes, and
        // it stays marked in flight (so `block` will not hand out a reference to it) until its
        // completion is reaped; `Drop` reaps every in-flight read before `storage` and `file`
        // (whose descriptor the entry names) are dropped.
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
    pub(super) fn wait(&mut self, out: &mut Vec<(usize, i32)>) -> io::Result<()> {
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        for cqe in self.ring.completion() {
            let slot = cqe.user_data() as usize;
            self.in_flight[slot] = false;
            self.pending -= 1;
            out.push((slot, cqe.result()));
        }
        Ok(())
    }

    /// Reads still in flight.
    pub(super) fn pending(&self) -> usize {
        self.pending
    }

    /// The buffer of a free slot.
    pub(super) fn block(&self, slot: usize) -> &[u8] {
        assert!(!self.in_flight[slot], "slot {slot} read while in flight");
        let start = self.base + slot * self.block;
        &self.storage[start..start + self.block]
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let mut sink = Vec::new();
        while self.pending > 0 {
            if self.wait(&mut sink).is_err() {
                // The kernel may still write into the buffers: leak them rather than free them.
                std::mem::forget(std::mem::take(&mut self.storage));
                return;
            }
            sink.clear();
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
