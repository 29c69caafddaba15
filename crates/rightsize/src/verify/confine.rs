//! Confinement: the cgroup CPU controller, and a cgroup with a CPU quota for fractional sizes
//! (CPU affinity, the other half, is [`crate::sys::confine_child`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::sys;

/// The cgroup CPU controller this machine mounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cgroup {
    /// cgroup v1 `cpu` hierarchy at this path.
    V1(PathBuf),
    /// cgroup v2 unified hierarchy at this path.
    V2(PathBuf),
    /// None found.
    None,
}

/// Detects the cgroup CPU controller (v1 `cpu` hierarchy, else v2 with `cpu` in its controllers).
pub fn detect_cgroup() -> Cgroup {
    for v1 in ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"] {
        if Path::new(v1).join("cpu.cfs_quota_us").exists() {
            return Cgroup::V1(PathBuf::from(v1));
        }
    }
    let v2 = Path::new("/sys/fs/cgroup");
    match std::fs::read_to_string(v2.join("cgroup.controllers")) {
        Ok(c) if c.split_whitespace().any(|x| x == "cpu") => Cgroup::V2(v2.to_owned()),
        _ => Cgroup::None,
    }
}

/// A one-line description of the cgroup support, for reports.
pub fn cgroup_info() -> String {
    match detect_cgroup() {
        Cgroup::V1(p) => format!("cgroup v1 cpu controller at {}", p.display()),
        Cgroup::V2(p) => format!("cgroup v2 at {}", p.display()),
        Cgroup::None => "no cgroup cpu controller".to_owned(),
    }
}

/// The CFS bandwidth `(quota, period)` in µs that gives exactly `cpus` CPUs.
///
/// The period is 10 ms, not the kernel's default 100 ms: with a long period a half-CPU server is
/// frozen for 50 ms at a time, a latency no real (slower) vCPU has. The kernel wants a quota of
/// at least 1 ms and a period of at most 1 s, so small fractions get a longer period
/// (`ceil(1000 / cpus)` µs) rather than a larger quota; below 0.001 CPU no period works and the
/// error says so.
pub fn quota_period(cpus: f64) -> std::result::Result<(u64, u64), String> {
    const MIN_QUOTA: f64 = 1_000.0;
    const MAX_PERIOD: f64 = 1_000_000.0;
    if !(cpus.is_finite() && cpus > 0.0) {
        return Err(format!("{cpus} CPU is not a CPU quota"));
    }
    let period = (MIN_QUOTA / cpus).ceil().max(10_000.0);
    if period > MAX_PERIOD {
        return Err(format!(
            "{cpus:.4} CPU is below the smallest cgroup CPU quota (1 ms per 1 s period = 0.001 CPU)"
        ));
    }
    let quota = (cpus * period).round().max(MIN_QUOTA);
    Ok((quota as u64, period as u64))
}

/// Prefix of the cgroups `--verify` creates; the pid of the creating process follows.
const CGROUP_PREFIX: &str = "frugal-verify-";

/// A cgroup with a CPU quota, removed on drop (its processes are killed first if any remain).
pub(super) struct CpuQuota {
    dir: PathBuf,
    /// Enforced quota, µs per period.
    pub(super) quota_us: u64,
    /// Enforced period, µs.
    pub(super) period_us: u64,
}

impl CpuQuota {
    /// Creates a cgroup limited to `cpus` CPUs of bandwidth ([`quota_period`]); removes stale
    /// cgroups of earlier replays whose process is gone first.
    pub(super) fn new(cpus: f64) -> std::result::Result<CpuQuota, String> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let (quota, period) = quota_period(cpus)?;
        // Relaxed: the counter only makes directory names unique.
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{CGROUP_PREFIX}{}-{n}", std::process::id());
        let (base, writes): (PathBuf, Vec<(&str, String)>) = match detect_cgroup() {
            Cgroup::V1(base) => (
                base,
                vec![
                    ("cpu.cfs_period_us", period.to_string()),
                    ("cpu.cfs_quota_us", quota.to_string()),
                ],
            ),
            Cgroup::V2(base) => {
                let _ = std::fs::write(base.join("cgroup.subtree_control"), "+cpu");
                (base, vec![("cpu.max", format!("{quota} {period}"))])
            }
            Cgroup::None => return Err("no cgroup cpu controller is mounted".to_owned()),
        };
        remove_stale_cgroups(&base);
        let dir = base.join(&name);
        std::fs::create_dir(&dir)
            .map_err(|e| format!("cannot create {}: {e} (needs root)", dir.display()))?;
        let q = CpuQuota {
            dir,
            quota_us: quota,
            period_us: period,
        };
        for (file, value) in writes {
            std::fs::write(q.dir.join(file), &value)
                .map_err(|e| format!("cannot write {value} to {file}: {e}"))?;
        }
        Ok(q)
    }

    /// The CPUs the quota enforces (quota / period).
    pub(super) fn cpus(&self) -> f64 {
        self.quota_us as f64 / self.period_us as f64
    }

    /// Moves a process (all its threads) into the cgroup.
    pub(super) fn add(&self, pid: u32) -> std::result::Result<(), String> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .map_err(|e| format!("cannot move pid {pid} into {}: {e}", self.dir.display()))
    }
}

/// Kills what is left in a cgroup (v2 `cgroup.kill` where it exists, and SIGKILL to every pid in
/// `cgroup.procs`), then removes it, retrying for up to `patience`.
fn kill_and_remove(dir: &Path, patience: Duration) -> std::io::Result<()> {
    let deadline = Instant::now() + patience;
    loop {
        let result = match std::fs::remove_dir(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r,
        };
        if result.is_ok() || Instant::now() >= deadline {
            return result;
        }
        if dir.join("cgroup.kill").exists() {
            let _ = std::fs::write(dir.join("cgroup.kill"), "1");
        }
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
            sys::kill_hard(pid);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Removes `frugal-verify-<pid>-*` cgroups under `base` whose creating process no longer exists
/// (left behind by a replay that was killed without unwinding).
fn remove_stale_cgroups(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(CGROUP_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !sys::pid_alive(pid) {
            let _ = kill_and_remove(&entry.path(), Duration::from_secs(1));
        }
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        // The server was stopped before; the kernel may need a moment to empty the group, and
        // anything still in it is killed.
        if let Err(e) = kill_and_remove(&self.dir, Duration::from_secs(2)) {
            eprintln!(
                "warning: cannot remove the cgroup {}: {e}; remove it with `rmdir {}`",
                self.dir.display(),
                self.dir.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn quota_and_period_give_exactly_the_cpus() {
        assert_eq!(quota_period(0.5), Ok((5_000, 10_000)));
        assert_eq!(quota_period(1.5), Ok((15_000, 10_000)));
        // 0.03 CPU: 300 us per 10 ms is under the kernel's 1 ms minimum, so the period grows.
        assert_eq!(quota_period(0.03), Ok((1_000, 33_334)));
        assert_eq!(quota_period(0.001), Ok((1_000, 1_000_000)));
        assert!(quota_period(0.0009).unwrap_err().contains("0.001 CPU"));
        assert!(quota_period(0.0).is_err());
        assert!(quota_period(f64::NAN).is_err());
        for cpus in [0.001, 0.003, 0.03, 0.1, 0.25, 1.0 / 3.0, 0.5, 0.75, 2.5] {
            let (q, p) = quota_period(cpus).unwrap();
            assert!(q >= 1_000, "{cpus}: quota {q}");
            assert!((10_000..=1_000_000).contains(&p), "{cpus}: period {p}");
            // Rounding the quota to whole µs is the only error: at most half a µs per period.
            assert!(
                (q as f64 / p as f64 - cpus).abs() <= 0.5 / p as f64,
                "{cpus}: {q}/{p}"
            );
        }
    }

    #[test]
    fn dropping_a_quota_kills_what_is_left_and_removes_it() {
        use std::os::unix::process::ExitStatusExt;
        let q = match CpuQuota::new(0.5) {
            Ok(q) => q,
            Err(why) => {
                // Not root or no cgroup file system: nothing to test here.
                eprintln!("skipped: {why}");
                return;
            }
        };
        assert_eq!((q.quota_us, q.period_us), (5_000, 10_000));
        let dir = q.dir.clone();
        let mut child = Command::new("/bin/sleep").arg("30").spawn().unwrap();
        q.add(child.id()).unwrap();
        drop(q);
        assert!(!dir.exists(), "{} is left", dir.display());
        let status = child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(rustix::process::Signal::KILL.as_raw()),
            "{status}"
        );
    }
}
