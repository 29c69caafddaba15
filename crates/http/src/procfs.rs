//! CPU time and resident memory of a process, read from `/proc` (Linux).

use std::fs;

/// Clock ticks per second of the times in `/proc/PID/stat`: `USER_HZ`, which Linux fixes at 100
/// in its user-space ABI on every mainstream architecture.
const USER_HZ: f64 = 100.0;

/// Resource use of one process at one moment.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ProcStat {
    /// User plus system CPU time consumed so far, all threads, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size in bytes.
    pub resident_memory_bytes: u64,
}

/// Reads the CPU time and resident memory of process `pid` (`None` = this process).
///
/// Returns `None` when `/proc` is absent or the process is gone.
pub fn proc_stat(pid: Option<u32>) -> Option<ProcStat> {
    let dir = match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_owned(),
    };
    let stat = fs::read_to_string(format!("{dir}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let statm = fs::read_to_string(format!("{dir}/statm")).ok()?;
    let resident_pages: u64 = statm.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(ProcStat {
        cpu_seconds: (utime + stime) / USER_HZ,
        resident_memory_bytes: resident_pages * page_size(),
    })
}

/// Number of open file descriptors of this process, or `None` without `/proc`.
pub fn open_fds() -> Option<u64> {
    Some(fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

/// The page size, from the `KernelPageSize` of `/proc/self/smaps_rollup`'s sibling files; 4 KiB
/// when it cannot be read (x86-64 and most arm64 kernels).
fn page_size() -> u64 {
    // /proc/self/smaps carries "KernelPageSize: 4 kB" for each mapping; reading the first one is
    // cheap enough and avoids an unsafe sysconf call.
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        fs::read_to_string("/proc/self/smaps")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("KernelPageSize:"))
                    .and_then(|l| l.split_ascii_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .map_or(4096, |kb| kb * 1024)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_stat() {
        // Burn 50 ms of this thread's CPU time first (measured by its CPU clock, so however
        // loaded the machine is): the process's CPU time, in 10 ms ticks, must show it.
        let cpu = || rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        let start = cpu();
        let mut x = 1u64;
        while {
            let now = cpu();
            (now.tv_sec - start.tv_sec) * 1_000_000_000 + (now.tv_nsec - start.tv_nsec) < 50_000_000
        } {
            for _ in 0..1000 {
                x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
            }
        }
        let stat = proc_stat(None).expect("/proc is mounted on Linux");
        assert!(stat.resident_memory_bytes > 0);
        assert!(stat.cpu_seconds > 0.0, "{}", stat.cpu_seconds);
        assert!(open_fds().expect("/proc/self/fd exists") >= 3);
    }
}
