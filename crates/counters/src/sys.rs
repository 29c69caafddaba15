//! The only module with `unsafe`: thin wrappers over the libc calls perf-event2 does not cover.
//!
//! Each wrapper passes a zero-initialised, correctly sized `libc::rusage` (or `timespec`) that
//! lives for the whole call; the kernel only writes into it.

use std::io;
use std::mem::MaybeUninit;

/// Context switches (voluntary + involuntary) of the calling thread so far.
pub(crate) fn thread_context_switches() -> io::Result<u64> {
    rusage(libc::RUSAGE_THREAD)
}

/// Context switches (voluntary + involuntary) of all waited-for children so far.
pub(crate) fn children_context_switches() -> io::Result<u64> {
    rusage(libc::RUSAGE_CHILDREN)
}

/// CPU time of the calling thread so far, ns (`CLOCK_THREAD_CPUTIME_ID`: user and system
/// time, uprobe traps included; not the time it waited for a CPU).
pub(crate) fn thread_cpu_ns() -> io::Result<u64> {
    let mut ts = MaybeUninit::<libc::timespec>::zeroed();
    // SAFETY: `ts` is a valid, writable `timespec` for the duration of the call, and the clock
    // id is a constant the kernel knows; clock_gettime writes only into the struct it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, ts.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: clock_gettime returned 0, so it filled the struct (zeroed before anyway: both
    // fields are integers, for which all-zero bytes are valid).
    let ts = unsafe { ts.assume_init() };
    Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// Sends SIGINT to process `pid` (ignoring errors: the process may have ended already).
pub(crate) fn interrupt(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) only takes integers; a stale pid at worst signals nothing (ESRCH). The
    // pid is a child we spawned and have not reaped, so it cannot have been reused.
    unsafe { libc::kill(pid, libc::SIGINT) };
}

fn rusage(who: libc::c_int) -> io::Result<u64> {
    let mut usage = MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid, writable `rusage` for the duration of the call, and `who` is
    // one of the RUSAGE_* constants; getrusage writes only into the struct it is given.
    let rc = unsafe { libc::getrusage(who, usage.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: getrusage returned 0, so it filled the struct (and it was zeroed before anyway:
    // every field of `rusage` is an integer, for which all-zero bytes are valid).
    let usage = unsafe { usage.assume_init() };
    Ok((usage.ru_nvcsw + usage.ru_nivcsw) as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn thread_cpu_time_advances_with_work() {
        let before = super::thread_cpu_ns().unwrap();
        let mut x = 0u64;
        while super::thread_cpu_ns().unwrap() < before + 2_000_000 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(x > 0);
    }

    #[test]
    fn context_switches_read() {
        let before = super::thread_context_switches().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let after = super::thread_context_switches().unwrap();
        assert!(
            after > before,
            "sleeping must switch out: {before} -> {after}"
        );
    }
}
