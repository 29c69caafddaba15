//! `--verify`: replay a recommendation on this machine.
//!
//! The real service (`frugal serve`) runs twice, confined with `sched_setaffinity` (and a cgroup
//! CPU quota for fractional sizes) to as many CPUs as the current type and as the candidate have —
//! scaled to this machine while keeping their ratio — and each time `frugal load` drives it in
//! constant-rate mode.
//!
//! The arrangement is the same for both runs and for the capacity run: on a machine with N ≥ 2
//! CPUs the last one is reserved for `frugal load` (pinned there) and both server sizes are scaled
//! into the other N − 1 ([`plan_replay`]). On a 2-core machine a 4 → 2 vCPU halving is therefore
//! 1 CPU against 0.5 CPU (a cgroup quota), the load generator on the other core in both runs. When
//! a fractional size needs a quota and none can be set (no permission, no cgroup file system), the
//! replay falls back to whole CPUs without the reservation, when the ratio allows, and says that
//! the runs are then unequal: the current size shares its CPUs with the load generator while the
//! candidate does not. On a 1-CPU machine the load generator shares the CPU in both runs.
//!
//! The rate. An observed request rate from another machine means nothing here, so the replay
//! reproduces the observed *utilization* instead: a short closed-loop run measures what the
//! current-size replay server can serve (its capacity `X`), and the constant rate is
//! `X × u`, where `u` is the current type's observed P99.5 CPU utilization (capped at 95%). Both
//! sizes then get the same rate. The per-request CPU work (`--work-us`) is the CPU-seconds per
//! request inferred from the data, or 500 µs without request data.
//!
//! The SLA. With latency data the target is the workload's latency target, the very number the
//! report's SLA screen shows; the replay has no I/O, so the fitted non-CPU delay is added to every
//! replayed latency before it is compared (capped so that at least twice the per-request work is
//! left for the CPU). Without latency data the target is `--latency-target-ms` or 20 × the
//! per-request work, with no delay added. The fraction of
//! requests within the target is interpolated from the load generator's percentiles
//! (p50/p90/p99/p99.9/max, coordinated-omission corrected when available). The candidate passes
//! when that fraction reaches the SLA fraction (99.5%), errors stay under 0.5% and the achieved
//! rate is within 5% of the target.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Recommendation;
use crate::sys;

/// How to run the replay.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// The `frugal` executable (normally `std::env::current_exe()`).
    pub program: PathBuf,
    /// Measured duration of each constant-rate run.
    pub duration: Duration,
    /// Warm-up before each run.
    pub warmup: Duration,
    /// Duration of the closed-loop capacity run.
    pub calibrate: Duration,
    /// Connections of the load generator.
    pub connections: u32,
    /// Fraction of requests that must meet the target.
    pub sla_fraction: f64,
    /// Latency target for workloads without latency data, ms (default 20 × the per-request work).
    pub latency_target_ms: Option<f64>,
    /// Directory for the load generator's JSON files.
    pub scratch: PathBuf,
}

/// One measured run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// CPUs the server was given: whole CPUs by affinity, a fraction by a cgroup CPU quota.
    pub cpus: f64,
    /// Target rate, requests/s.
    pub target_rps: f64,
    /// Achieved rate.
    pub achieved_rps: f64,
    /// Successful requests.
    pub requests_ok: u64,
    /// Failed requests (all kinds).
    pub errors: u64,
    /// Latency percentiles, ms (corrected for coordinated omission when the load generator did).
    pub p50_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// p99.9, ms.
    pub p999_ms: f64,
    /// Whether the percentiles are coordinated-omission corrected.
    pub corrected: bool,
    /// Estimated fraction of requests within the target.
    pub sla_fraction: f64,
    /// Meets the SLA (fraction, errors, rate).
    pub pass: bool,
}

/// The outcome of a replay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "verdict", content = "why")]
pub enum Verdict {
    /// The candidate meets the SLA in the replay.
    Pass,
    /// It does not.
    Fail,
    /// The replay could not run; why.
    NotRun(String),
}

/// The replay of one recommendation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Current type.
    pub current_type: String,
    /// Candidate type.
    pub candidate_type: String,
    /// CPUs this machine offers.
    pub machine_cpus: usize,
    /// How the rate was chosen.
    pub rate_basis: String,
    /// Per-request CPU work given to `frugal serve --work-us`.
    pub work_us: u64,
    /// Latency target the replay checks, ms: the SLA screen's target when the data has latency.
    pub latency_target_ms: f64,
    /// Non-CPU delay added to every replayed latency, ms (the fitted delay of the SLA screen).
    #[serde(default)]
    pub added_delay_ms: f64,
    /// How the CPU count was enforced: affinity only, or affinity plus a cgroup quota.
    pub cgroup: String,
    /// Where the load generator and the server ran, in words (the same for both runs unless it
    /// says otherwise).
    pub arrangement: String,
    /// The CPU reserved for the load generator in every run, if one was.
    pub load_generator_cpu: Option<usize>,
    /// Whether both runs (and the capacity run) had the same arrangement.
    pub symmetric: bool,
    /// 1-minute load average of this machine after the replay (from `/proc/loadavg`).
    pub load_average: Option<f64>,
    /// The current size.
    pub current: Option<Measured>,
    /// The candidate.
    pub candidate: Option<Measured>,
    /// Pass, fail, or not run.
    pub verdict: Verdict,
}

impl Verification {
    /// `pass`, `FAIL` or `not run`.
    pub fn verdict_label(&self) -> &'static str {
        match self.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::NotRun(_) => "not run",
        }
    }

    /// One line for reports.
    pub fn summary(&self) -> String {
        let m = |m: &Option<Measured>| {
            m.as_ref().map_or("-".to_owned(), |m| {
                format!(
                    "{:.2} CPU: p99 {:.2} ms{}, {:.2}% within {:.1} ms, {:.0}/{:.0} req/s, {} errors",
                    m.cpus,
                    m.p99_ms,
                    if self.added_delay_ms > 0.0 {
                        format!(" (incl. {:.1} ms non-CPU delay)", self.added_delay_ms)
                    } else {
                        String::new()
                    },
                    m.sla_fraction * 100.0,
                    self.latency_target_ms,
                    m.achieved_rps,
                    m.target_rps,
                    m.errors
                )
            })
        };
        match &self.verdict {
            Verdict::NotRun(why) => format!("not run: {why}"),
            v => format!(
                "{} ({} -> {}): current {}; candidate {}; rate: {}; {}; {}{}{}",
                if *v == Verdict::Pass { "pass" } else { "FAIL" },
                self.current_type,
                self.candidate_type,
                m(&self.current),
                m(&self.candidate),
                self.rate_basis,
                self.arrangement,
                self.cgroup,
                match self.load_average {
                    Some(l) if l > 1.0 + self.machine_cpus as f64 => format!(
                        "; load average {l:.1} on {} CPUs: other processes competed with the \
                         replay, rerun on a quiet machine",
                        self.machine_cpus
                    ),
                    _ => String::new(),
                },
                if self.current.as_ref().is_some_and(|c| !c.pass) {
                    "; the current size misses the SLA in the replay too: the target is tight \
                     for this machine (set --latency-target-ms)"
                } else {
                    ""
                }
            ),
        }
    }
}

/// Chooses CPU counts here that keep the ratio `cand / cur`: the largest `k_cur <= machine` with
/// `k_cur * cand / cur` a whole number in `1..=machine`.
pub fn scale_cpus(cur: u32, cand: u32, machine: usize) -> Option<(usize, usize)> {
    let (cur, cand) = (cur as usize, cand as usize);
    (1..=machine.min(cur.max(1))).rev().find_map(|k| {
        let prod = k * cand;
        (prod % cur == 0 && prod / cur >= 1 && prod / cur <= machine).then_some((k, prod / cur))
    })
}

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
struct CpuQuota {
    dir: PathBuf,
    /// Enforced quota, µs per period.
    quota_us: u64,
    /// Enforced period, µs.
    period_us: u64,
}

impl CpuQuota {
    /// Creates a cgroup limited to `cpus` CPUs of bandwidth ([`quota_period`]); removes stale
    /// cgroups of earlier replays whose process is gone first.
    fn new(cpus: f64) -> std::result::Result<CpuQuota, String> {
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
    fn cpus(&self) -> f64 {
        self.quota_us as f64 / self.period_us as f64
    }

    /// Moves a process (all its threads) into the cgroup.
    fn add(&self, pid: u32) -> std::result::Result<(), String> {
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

/// CPUs for the two replays: `(current, candidate)`. Whole CPUs keeping the ratio when possible
/// ([`scale_cpus`]); else the current size gets `min(vcpus, machine)` CPUs and the candidate the
/// same fraction of them, which needs a cgroup quota when it is not whole. Errors say why the
/// replay cannot run here.
pub fn plan_cpus(cur: u32, cand: u32, machine: usize) -> std::result::Result<(usize, f64), String> {
    if let Some((k, c)) = scale_cpus(cur, cand, machine) {
        return Ok((k, c as f64));
    }
    let k = machine.min(cur.max(1) as usize);
    let c = k as f64 * f64::from(cand) / f64::from(cur.max(1));
    if c > machine as f64 {
        return Err(format!(
            "the candidate needs more CPUs than this machine has: {cand} vCPUs against {cur} \
             means {c:.2} CPUs here, and this machine offers {machine}"
        ));
    }
    Ok((k, c))
}

/// CPUs for the two replays on a machine of `machine` CPUs: `(current, candidate)`, as
/// [`plan_cpus`] gives them inside the CPUs the server may use. With `reserve_load_cpu` and at
/// least 2 CPUs, one CPU is kept for the load generator and the sizes are scaled into the other
/// `machine - 1`; otherwise into all of them.
pub fn plan_replay(
    cur: u32,
    cand: u32,
    machine: usize,
    reserve_load_cpu: bool,
) -> std::result::Result<(usize, f64), String> {
    let server = if reserve_load_cpu && machine >= 2 {
        machine - 1
    } else {
        machine
    };
    plan_cpus(cur, cand, server)
}

/// Fraction of requests within `target` from percentile points, interpolating linearly in latency.
pub fn fraction_within(points: &[(f64, f64)], target: f64) -> f64 {
    // points: (latency, cumulative fraction), ascending.
    let mut prev = (0.0, 0.0);
    for &(lat, frac) in points {
        if target < lat {
            let span = lat - prev.0;
            let t = if span > 0.0 {
                (target - prev.0) / span
            } else {
                0.0
            };
            return prev.1 + (frac - prev.1) * t.clamp(0.0, 1.0);
        }
        prev = (lat, frac);
    }
    1.0
}

/// A running `frugal serve`, stopped (SIGTERM, then kill) on drop.
struct Server {
    child: Child,
    url: String,
    /// What it wrote on stderr (its shutdown lines, or why it failed): kept out of the
    /// report's output, quoted when it fails.
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// The server's stderr so far, trimmed (empty when it wrote nothing).
    fn messages(&self) -> String {
        self.stderr
            .lock()
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    }
}

/// Most of a child's stderr kept for an error message.
const STDERR_KEEP: usize = 16 * 1024;

impl Drop for Server {
    fn drop(&mut self) {
        sys::terminate(self.child.id());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(
    opts: &VerifyOptions,
    cpus: &[usize],
    quota: Option<&CpuQuota>,
    work_us: u64,
) -> Result<Server> {
    let mut cmd = Command::new(&opts.program);
    cmd.args([
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--work-us",
        &work_us.to_string(),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    sys::confine_child(&mut cmd, cpus);
    let child = cmd.spawn().map_err(|e| {
        Error::verify_io(format!("cannot start {} serve", opts.program.display()), e)
    })?;
    // Guarded at once: from here every early return stops and reaps the server.
    let mut server = Server {
        child,
        url: String::new(),
        stderr: std::sync::Arc::default(),
    };
    let stderr = server
        .child
        .stderr
        .take()
        .expect("invariant: stderr was piped");
    let sink = std::sync::Arc::clone(&server.stderr);
    std::thread::Builder::new()
        .name("serve-stderr".to_owned())
        .spawn(move || {
            // Drained to the end so that the server never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                if let Ok(mut kept) = sink.lock() {
                    if kept.len() < STDERR_KEEP {
                        kept.push_str(&line);
                        kept.push('\n');
                    }
                }
            }
        })
        .map_err(|e| Error::verify_io("cannot start a thread to read `frugal serve`", e))?;
    let stdout = server
        .child
        .stdout
        .take()
        .expect("invariant: stdout was piped");
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("serve-stdout".to_owned())
        .spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {} // keep draining so the server never blocks on a full pipe
        })
        .map_err(|e| Error::verify_io("cannot start a thread to read `frugal serve`", e))?;
    if let Some(q) = quota {
        // All threads of the server move; it has not served anything yet.
        q.add(server.child.id()).map_err(Error::verify)?;
    }
    let line = match rx.recv_timeout(Duration::from_secs(15)) {
        Ok(line) => line,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            return Err(Error::verify(
                "`frugal serve` did not print `listening on http://...` within 15 s; run \
                 `frugal serve --help` to check it works",
            ))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // Its stdout closed without a line: it exited (or is exiting) at once.
            let deadline = Instant::now() + Duration::from_secs(5);
            let status = loop {
                match server.child.try_wait() {
                    Ok(Some(status)) => break status.to_string(),
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Ok(None) => break "still running with its stdout closed".to_owned(),
                    Err(e) => break format!("status unknown: {e}"),
                }
            };
            // Give the reader a moment to collect the last lines.
            std::thread::sleep(Duration::from_millis(50));
            return Err(Error::verify(format!(
                "`frugal serve` exited before listening ({status}): {}; run `frugal serve \
                 --help` to check it works",
                match server.messages() {
                    m if m.is_empty() => "it printed nothing".to_owned(),
                    m => m,
                }
            )));
        }
    };
    server.url = line
        .trim()
        .strip_prefix("listening on ")
        .filter(|u| u.starts_with("http://"))
        .ok_or_else(|| {
            Error::verify(format!(
                "unexpected first line from `frugal serve`: {line:?}"
            ))
        })?
        .to_owned();
    Ok(server)
}

#[derive(Deserialize)]
struct LoadLatency {
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

#[derive(Deserialize)]
struct LoadErrors {
    connect: u64,
    timeout: u64,
    status: u64,
    reset: u64,
    other: u64,
}

#[derive(Deserialize)]
struct LoadReport {
    achieved_rps: f64,
    requests_ok: u64,
    errors: LoadErrors,
    latency_ns: LoadLatency,
    latency_corrected_ns: Option<LoadLatency>,
}

/// Kills (SIGKILL) and reaps the child on drop, if it still holds one.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn run_load(
    opts: &VerifyOptions,
    url: &str,
    cpus: &[usize],
    rate: Option<f64>,
    duration: Duration,
    name: &str,
) -> Result<LoadReport> {
    let json = opts.scratch.join(format!("{name}.json"));
    // A report left by an earlier run must not pass for this one's.
    let _ = std::fs::remove_file(&json);
    let mut cmd = Command::new(&opts.program);
    cmd.arg("load")
        .arg(url)
        .args(["-c", &opts.connections.to_string()])
        .args(["-d", &format!("{}ms", duration.as_millis().max(100))])
        .args(["--warmup", &format!("{}ms", opts.warmup.as_millis())])
        .arg("--json")
        .arg(&json)
        .arg("--quiet")
        // The SLA check below judges the errors; load's own limit would only hide the report.
        .args(["--max-error-rate", "100"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(r) = rate {
        // The caller rounded the rate; the run and the 95% check use the same number.
        cmd.args(["--rate", &format!("{r:.0}")]);
    }
    sys::confine_child(&mut cmd, cpus);
    let child = cmd.spawn().map_err(|e| {
        Error::verify_io(format!("cannot start {} load", opts.program.display()), e)
    })?;
    // Kills and reaps the load generator on every early return; disarmed once it was reaped.
    let mut guard = ChildGuard(Some(child));
    let child = guard.0.as_mut().expect("invariant: just set");
    // Drained while it runs: a full pipe (64 KiB) would block the load generator.
    let stderr = child.stderr.take().expect("invariant: stderr was piped");
    let drain = std::thread::Builder::new()
        .name("load-stderr".to_owned())
        .spawn(move || {
            use std::io::Read;
            let mut err = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut err);
            err
        })
        .map_err(|e| Error::verify_io("cannot start a thread to read `frugal load`", e))?;
    // The drain thread is joined on every path below, after the guard killed or reaped the child.
    let deadline = Instant::now() + duration + opts.warmup + Duration::from_secs(60);
    let waited = loop {
        match child.try_wait() {
            Err(e) => break Err(Error::verify_io("waiting for `frugal load`", e)),
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() > deadline => {
                break Err(Error::verify(
                    "`frugal load` did not finish within its duration + 60 s",
                ))
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let status = match waited {
        Ok(status) => {
            guard.0 = None; // reaped: nothing to kill
            status
        }
        Err(e) => {
            drop(guard); // kill + wait, so the pipe closes and the drain thread ends
            let _ = drain.join();
            return Err(e);
        }
    };
    let err = drain.join().unwrap_or_default();
    // A run that ended with no success still writes its report (and exits 1): the verdict
    // judges it. Without a report, the run itself failed.
    if !status.success() && !json.exists() {
        return Err(Error::verify(format!(
            "`frugal load` failed ({status}): {}",
            err.trim()
        )));
    }
    let text = std::fs::read_to_string(&json)
        .map_err(|e| Error::verify_io(format!("cannot read {}", json.display()), e))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::verify(format!(
            "`frugal load --json` wrote JSON this version cannot read: {e}"
        ))
    })
}

/// The target the replay checks and the delay added to replayed latencies:
/// `(target_ms, added_delay_ms)`. With latency data the target is the SLA screen's.
fn replay_target(
    svc: Option<&crate::model::ServiceModel>,
    work_us: u64,
    fallback: Option<f64>,
) -> (f64, f64) {
    match svc {
        Some(s) => {
            let cpu_floor = 2.0 * work_us as f64 / 1000.0;
            let delay = s.fixed_delay_ms.min(s.target_ms - cpu_floor).max(0.0);
            (s.target_ms, delay)
        }
        None => (fallback.unwrap_or(20.0 * work_us as f64 / 1000.0), 0.0),
    }
}

fn measure(
    report: &LoadReport,
    cpus: f64,
    target_rps: f64,
    (target_ms, delay_ms): (f64, f64),
    sla: f64,
) -> Measured {
    let (lat, corrected) = match &report.latency_corrected_ns {
        Some(c) => (c, true),
        None => (&report.latency_ns, false),
    };
    let ms = |ns: u64| ns as f64 / 1e6 + delay_ms;
    let points = [
        (ms(lat.p50), 0.5),
        (ms(lat.p90), 0.9),
        (ms(lat.p99), 0.99),
        (ms(lat.p999), 0.999),
        (ms(lat.max), 1.0),
    ];
    let e = &report.errors;
    let errors = e.connect + e.timeout + e.status + e.reset + e.other;
    let total = report.requests_ok + errors;
    let fraction =
        fraction_within(&points, target_ms) * report.requests_ok as f64 / total.max(1) as f64;
    let pass = fraction >= sla
        && (errors as f64) <= 0.005 * total.max(1) as f64
        && report.achieved_rps >= 0.95 * target_rps;
    Measured {
        cpus,
        target_rps,
        achieved_rps: report.achieved_rps,
        requests_ok: report.requests_ok,
        errors,
        p50_ms: ms(lat.p50),
        p99_ms: ms(lat.p99),
        p999_ms: ms(lat.p999),
        corrected,
        sla_fraction: fraction,
        pass,
    }
}

/// Replays `rec` (its current type against its recommended type) on this machine.
///
/// Never fails for reasons of this machine's size: those come back as [`Verdict::NotRun`] with a
/// plain explanation. Errors are for a broken `frugal serve`/`frugal load`.
///
/// Every child is spawned and reaped on the calling thread, and each carries a parent-death
/// signal tied to that thread (Linux `PR_SET_PDEATHSIG` follows the spawning thread): the children
/// are killed if this process dies without unwinding, and the calling thread outlives them.
pub fn verify(rec: &Recommendation, opts: &VerifyOptions) -> Result<Verification> {
    let cpus_here = sys::allowed_cpus();
    let machine = cpus_here.len();
    let current = rec.current.as_ref();
    let candidate = rec.recommended.as_ref();
    let svc = rec.usage.as_ref().and_then(|u| u.service.as_ref());
    let work_us = svc.map_or(500, |s| {
        (s.cpu_seconds_per_request * 1e6)
            .round()
            .clamp(20.0, 20_000.0) as u64
    });
    let target = replay_target(svc, work_us, opts.latency_target_ms);
    let mut v = Verification {
        current_type: rec.instance_type.clone(),
        candidate_type: candidate.map_or(rec.instance_type.clone(), |c| c.instance_type.clone()),
        machine_cpus: machine,
        rate_basis: String::new(),
        work_us,
        latency_target_ms: target.0,
        added_delay_ms: target.1,
        cgroup: cgroup_info(),
        arrangement: String::new(),
        load_generator_cpu: None,
        symmetric: false,
        load_average: None,
        current: None,
        candidate: None,
        verdict: Verdict::NotRun(String::new()),
    };
    let (Some(current), Some(candidate)) = (current, candidate) else {
        v.verdict = Verdict::NotRun("no change recommended, nothing to verify".to_owned());
        return Ok(v);
    };
    let (cur_v, cand_v) = (current.vcpus, candidate.vcpus);
    let needs_quota = |cpus: f64| cpus.fract() > 1e-9;
    // Symmetric: one CPU reserved for the load generator in every run (when there are >= 2).
    let (k_cur, cand_cpus) = match plan_replay(cur_v, cand_v, machine, true) {
        Ok(p) => p,
        Err(why) => {
            v.verdict = Verdict::NotRun(why);
            return Ok(v);
        }
    };
    let reserved = (machine >= 2).then(|| cpus_here[machine - 1]);
    let mut plan = (k_cur, cand_cpus, reserved);
    let mut quota = None;
    let mut fallback_note = None;
    if needs_quota(cand_cpus) {
        match CpuQuota::new(cand_cpus) {
            Ok(q) => quota = Some(q),
            Err(why) => {
                // Fall back to whole CPUs over the whole machine, stating the asymmetry.
                match plan_replay(cur_v, cand_v, machine, false) {
                    Ok((k, c)) if !needs_quota(c) && reserved.is_some() => {
                        plan = (k, c, None);
                        fallback_note = Some(format!(
                            "UNEQUAL RUNS: {cand_cpus:.2} CPU for the candidate needs a cgroup CPU \
                             quota and none could be set ({why}), so the replay uses whole CPUs \
                             without a CPU reserved for the load generator: the current size \
                             ({k} CPUs) shares its CPUs with `frugal load` while the candidate \
                             ({c:.0} CPU) does not, which favours the candidate"
                        ));
                    }
                    _ => {
                        v.verdict = Verdict::NotRun(format!(
                            "{} has {cur_v} vCPUs and {} has {cand_v}: that is {k_cur} against \
                             {cand_cpus:.2} CPUs here, which needs a cgroup CPU quota, and none \
                             could be set: {why}",
                            current.instance_type, candidate.instance_type,
                        ));
                        return Ok(v);
                    }
                }
            }
        }
    }
    let (k_cur, cand_cpus, reserved) = plan;
    let k_cand = cand_cpus.ceil() as usize;
    // What the kernel enforces (quota / period), which is what the runs measure and report.
    let cand_cpus = quota.as_ref().map_or(cand_cpus, CpuQuota::cpus);
    v.load_generator_cpu = reserved;
    v.symmetric = fallback_note.is_none();
    let cpu_list = |cpus: &[usize]| {
        cpus.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    v.arrangement = match (&fallback_note, reserved) {
        (Some(note), _) => note.clone(),
        (None, Some(l)) => format!(
            "same arrangement in both runs and the capacity run: `frugal load` pinned to CPU {l}, \
             the server to CPU(s) {} ({k_cur} CPU) for the current size and CPU(s) {} \
             ({cand_cpus:.2} CPU{}) for the candidate",
            cpu_list(&cpus_here[..k_cur]),
            cpu_list(&cpus_here[..k_cand]),
            if quota.is_some() {
                " by a cgroup quota"
            } else {
                ""
            }
        ),
        (None, None) => format!(
            "one CPU only: `frugal load` shares CPU {} with the server in both runs ({k_cur} CPU \
             against {cand_cpus:.2} CPU{})",
            cpus_here[0],
            if quota.is_some() {
                " by a cgroup quota"
            } else {
                ""
            }
        ),
    };
    v.cgroup = match &quota {
        Some(q) => format!(
            "{}: candidate pinned to {k_cand} CPU(s) with a quota of {} us per {} us period \
             ({cand_cpus:.3} CPU)",
            cgroup_info(),
            q.quota_us,
            q.period_us
        ),
        None => format!("{}; whole CPUs by affinity, no quota used", cgroup_info()),
    };
    // The load generator: its reserved CPU; in the fallback, the CPUs the server does not use
    // (none for the current size, which then shares); on one CPU, that CPU.
    let load_cpus = |k: usize| -> Vec<usize> {
        match reserved {
            Some(l) => vec![l],
            None => cpus_here[k.min(machine)..].to_vec(),
        }
    };
    let u = current.cpu_utilization.min(0.95);
    let capacity = {
        let server = start_server(opts, &cpus_here[..k_cur], None, work_us)?;
        let r = run_load(
            opts,
            &server.url,
            &load_cpus(k_cur),
            None,
            opts.calibrate,
            "calibrate",
        )?;
        r.achieved_rps
    };
    if capacity <= 0.0 {
        v.verdict = Verdict::NotRun("the capacity run served no requests".to_owned());
        return Ok(v);
    }
    // Rounded once: the load runs at this rate and the 95% check compares against it.
    let rate = (capacity * u).round().max(1.0);
    v.rate_basis = format!(
        "{:.0}% (observed P99.5 utilization of {}, capped at 95%) x {:.0} req/s closed-loop capacity \
         of the {k_cur}-CPU replay = {rate:.0} req/s",
        u * 100.0,
        current.instance_type,
        capacity
    );
    let runs = [
        (k_cur, k_cur as f64, None, "current"),
        (k_cand, cand_cpus, quota.as_ref(), "candidate"),
    ];
    for (k, cpus, quota, name) in runs {
        let server = start_server(opts, &cpus_here[..k], quota, work_us)?;
        let r = run_load(
            opts,
            &server.url,
            &load_cpus(k),
            Some(rate),
            opts.duration,
            name,
        )?;
        drop(server);
        let m = measure(&r, cpus, rate, target, opts.sla_fraction);
        if name == "current" {
            v.current = Some(m);
        } else {
            v.candidate = Some(m);
        }
    }
    v.load_average = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok());
    v.verdict = if v.candidate.as_ref().is_some_and(|m| m.pass) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_checks_the_sla_screens_target() {
        let svc = crate::model::ServiceModel {
            cpu_seconds_per_request: 0.002,
            peak_rps: 100.0,
            median_latency_p99_ms: 31.35,
            fixed_delay_ms: 9.64,
            target_ms: 62.7,
            target_source: "default".to_owned(),
        };
        // The same target as the report; the non-CPU delay is added to replayed latencies.
        assert_eq!(replay_target(Some(&svc), 2_000, None), (62.7, 9.64));
        // A delay that would leave less than twice the work for the CPU is capped.
        let tight = crate::model::ServiceModel {
            fixed_delay_ms: 61.0,
            ..svc
        };
        let (t, d) = replay_target(Some(&tight), 2_000, None);
        assert_eq!(t, 62.7);
        assert!((d - 58.7).abs() < 1e-9, "{d}");
        assert_eq!(replay_target(None, 500, Some(40.0)), (40.0, 0.0));
        assert_eq!(replay_target(None, 500, None), (10.0, 0.0));
    }

    #[test]
    fn fractional_plans_need_a_quota() {
        assert_eq!(plan_cpus(4, 2, 2), Ok((2, 1.0)));
        assert_eq!(plan_cpus(8, 2, 2), Ok((2, 0.5)));
        assert!(plan_cpus(2, 8, 2)
            .unwrap_err()
            .contains("more CPUs than this machine has"));
    }

    #[test]
    fn replay_reserves_a_cpu_for_the_load_generator() {
        // 2 cores: the server gets 1, so a halving is 1 CPU against half a CPU.
        assert_eq!(plan_replay(4, 2, 2, true), Ok((1, 0.5)));
        assert_eq!(plan_replay(4, 2, 2, false), Ok((2, 1.0)));
        assert_eq!(plan_replay(4, 2, 3, true), Ok((2, 1.0)));
        assert_eq!(plan_replay(4, 2, 5, true), Ok((4, 2.0)));
        // One CPU: nothing to reserve.
        assert_eq!(plan_replay(4, 2, 1, true), Ok((1, 0.5)));
        assert!(plan_replay(2, 4, 2, true).is_err());
    }

    #[test]
    fn cpu_scaling_keeps_the_ratio() {
        assert_eq!(scale_cpus(4, 2, 2), Some((2, 1)));
        assert_eq!(scale_cpus(2, 1, 2), Some((2, 1)));
        assert_eq!(scale_cpus(8, 4, 2), Some((2, 1)));
        assert_eq!(
            scale_cpus(8, 2, 2),
            None,
            "a quarter of 2 CPUs is not a whole CPU"
        );
        assert_eq!(scale_cpus(8, 2, 4), Some((4, 1)));
        assert_eq!(scale_cpus(2, 4, 2), Some((1, 2)));
        assert_eq!(scale_cpus(4, 4, 2), Some((2, 2)));
    }

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
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    }

    #[test]
    fn fraction_interpolates() {
        let pts = [
            (1.0, 0.5),
            (2.0, 0.9),
            (4.0, 0.99),
            (8.0, 0.999),
            (20.0, 1.0),
        ];
        assert_eq!(fraction_within(&pts, 30.0), 1.0);
        assert!((fraction_within(&pts, 6.0) - 0.9945).abs() < 1e-9);
        assert!((fraction_within(&pts, 0.5) - 0.25).abs() < 1e-9);
    }
}
