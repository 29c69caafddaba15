//! The crate's only unsafe code: CPU affinity for a child process and signalling it.
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

/// Makes the child run only on `cpus` (set with `sched_setaffinity` between fork and exec).
pub(crate) fn pin_child(cmd: &mut Command, cpus: &[usize]) {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is the valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        // SAFETY: `cpu` is below CPU_SETSIZE, so the bit is inside `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    let hook = move || {
        // SAFETY: sched_setaffinity is a plain system call, async-signal-safe, so it may run
        // between fork and exec; `set` is a valid, initialised cpu_set_t owned by this closure.
        let rc =
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the hook only makes one async-signal-safe system call and allocates nothing.
    unsafe { cmd.pre_exec(hook) };
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
        pin_child(&mut cmd, &cpus[..1]);
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            parse_cpu_list(text.split(':').nth(1).unwrap().trim()),
            vec![cpus[0]]
        );
    }
}
