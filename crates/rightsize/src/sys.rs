//! The crate's only unsafe code: CPU affinity and a parent-death signal for a child process, and
//! signalling processes.
#![allow(unsafe_code)]

use std::os::unix::process::CommandExt;
use std::process::Command;

/// CPUs this process may run on (from `/proc/self/status`, `Cpus_allowed_list`), sorted.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(str::trim)
        .unwrap_or("");
    let mut cpus = parse_cpu_list(list);
    if cpus.is_empty() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        cpus = (0..n).collect();
    }
    cpus
}

/// Parses `0-3,6,8-9`.
pub(crate) fn parse_cpu_list(list: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    out.extend(a..=b.min(a + 4096));
                }
            }
            None => out.extend(part.parse::<usize>().ok()),
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Confines a child between fork and exec: it runs only on `cpus` (`sched_setaffinity`; skipped
/// when `cpus` is empty), and it dies with this process.
///
/// The parent-death signal (`PR_SET_PDEATHSIG` with SIGKILL) makes a `frugal serve`/`frugal load`
/// child die when its parent dies without unwinding (SIGKILL, the OOM killer), so no server is
/// orphaned. The kernel delivers it when the *thread* that forked the child exits, not the
/// process: call this only from a thread that outlives the child (the `--verify` replay spawns and
/// reaps every child on the one thread that runs [`crate::verify::verify`]).
pub(crate) fn confine_child(cmd: &mut Command, cpus: &[usize]) {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is the valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        // SAFETY: `cpu` is below CPU_SETSIZE, so the bit is inside `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    let pin = !cpus.is_empty();
    // SAFETY: getpid(2) has no preconditions and cannot fail.
    let parent = unsafe { libc::getpid() };
    let hook = move || {
        // SAFETY: prctl(PR_SET_PDEATHSIG) is a plain system call, async-signal-safe, so it may
        // run between fork and exec; it takes integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // The parent may have died before the signal was armed: then this child was reparented.
        // SAFETY: getppid(2) is async-signal-safe, has no preconditions and cannot fail.
        if unsafe { libc::getppid() } != parent {
            // SAFETY: _exit(2) is async-signal-safe and never returns; nothing needs unwinding.
            unsafe { libc::_exit(1) };
        }
        if pin {
            // SAFETY: sched_setaffinity is a plain system call, async-signal-safe; `set` is a
            // valid, initialised cpu_set_t owned by this closure.
            let rc =
                unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the hook only makes async-signal-safe system calls and allocates nothing.
    unsafe { cmd.pre_exec(hook) };
}

/// Whether a process with this pid exists (`kill(pid, 0)`; EPERM means it exists).
pub(crate) fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill(2) with signal 0 only checks for existence and permission; sends nothing.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Sends SIGKILL to a process (one found in a cgroup we created); errors (ESRCH) are ignored.
pub(crate) fn kill_hard(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        if pid > 0 {
            // SAFETY: kill(2) with a positive pid (never 0 or -1, which would signal groups);
            // at worst it fails.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Sends SIGTERM to a child process.
pub(crate) fn terminate(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a pid we spawned and have not yet reaped; at worst it fails (ESRCH).
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,6, 8-9"), vec![0, 1, 2, 3, 6, 8, 9]);
        assert_eq!(parse_cpu_list(""), Vec::<usize>::new());
        assert!(!allowed_cpus().is_empty());
    }

    #[test]
    fn pinned_child_sees_one_cpu() {
        let cpus = allowed_cpus();
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "grep Cpus_allowed_list /proc/self/status"]);
        confine_child(&mut cmd, &cpus[..1]);
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            parse_cpu_list(text.split(':').nth(1).unwrap().trim()),
            vec![cpus[0]]
        );
    }

    #[test]
    fn confined_child_dies_with_the_thread_that_spawned_it() {
        use std::os::unix::process::ExitStatusExt;
        // PR_SET_PDEATHSIG fires when the spawning *thread* exits: spawn from a short-lived
        // thread and the child is killed even though this process lives on.
        let mut child = std::thread::spawn(|| {
            let mut cmd = Command::new("/bin/sleep");
            cmd.arg("30");
            confine_child(&mut cmd, &[]);
            cmd.spawn().unwrap()
        })
        .join()
        .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    }

    #[test]
    fn unpinned_confined_child_runs_and_pids_are_checked() {
        // The hook (parent-death signal, parent check) must not stop a child with no CPU list.
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "exit 7"]);
        confine_child(&mut cmd, &[]);
        assert_eq!(cmd.status().unwrap().code(), Some(7));
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
    }
}
