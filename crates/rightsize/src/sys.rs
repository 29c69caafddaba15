//! Processes and CPUs for the `--verify` children: CPU affinity and a parent-death signal set
//! between fork and exec, signalling processes, the CPUs this process may use. The system calls
//! are rustix's; the crate's only unsafe operation is here (registering the fork-to-exec hook,
//! [`confine_child`]).
#![allow(unsafe_code)]

use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::process::{self, Signal};
use rustix::thread::CpuSet;

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
///
/// The system calls are rustix's (raw system calls, no libc state, no allocation), so they are
/// safe to make between fork and exec; the one unsafe operation is registering the hook.
pub(crate) fn confine_child(cmd: &mut Command, cpus: &[usize]) {
    let mut set = CpuSet::new();
    for &cpu in cpus.iter().filter(|&&c| c < CpuSet::MAX_CPU) {
        set.set(cpu);
    }
    let pin = !cpus.is_empty();
    let parent = process::getpid();
    let hook = move || {
        process::set_parent_process_death_signal(Some(Signal::KILL))?;
        // The parent may have died before the signal was armed: then this child was reparented.
        // An error from the hook makes the child exit at once (std reports it to a parent that
        // is no longer there); `from(ErrorKind)` allocates nothing.
        if process::getppid() != Some(parent) {
            return Err(std::io::Error::from(std::io::ErrorKind::NotConnected));
        }
        if pin {
            rustix::thread::sched_setaffinity(None, &set)?;
        }
        Ok(())
    };
    // SAFETY: between fork and exec only async-signal-safe work is allowed: the hook makes three
    // raw system calls (prctl, getppid, sched_setaffinity) on values it owns (`set` was built
    // before the fork), allocates nothing and takes no lock.
    unsafe { cmd.pre_exec(hook) };
}

/// `pid` as a process id to signal: positive (0 and negatives would signal process groups).
fn pid_of(pid: u32) -> Option<process::Pid> {
    i32::try_from(pid)
        .ok()
        .filter(|&p| p > 0)
        .and_then(process::Pid::from_raw)
}

/// Whether a process with this pid exists (`kill(pid, 0)`; EPERM means it exists).
pub(crate) fn pid_alive(pid: u32) -> bool {
    let Some(pid) = pid_of(pid) else {
        return false;
    };
    match process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// Sends SIGKILL to a process (one found in a cgroup we created); errors (ESRCH) are ignored.
pub(crate) fn kill_hard(pid: u32) {
    if let Some(pid) = pid_of(pid) {
        let _ = process::kill_process(pid, Signal::KILL);
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
        assert_eq!(status.signal(), Some(Signal::KILL.as_raw()), "{status}");
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
