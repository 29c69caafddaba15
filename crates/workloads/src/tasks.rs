//! `frugal bench tasks`: what one concurrent task costs in memory (article chapter 1).
//!
//! Each kind of task — tokio tasks (sleeping, or waiting on a channel), OS threads (Rust's
//! default stack, glibc's default stack, a small stack) and goroutines when Go is on `PATH` — is
//! measured in a fresh child process so that the kinds do not pollute each other. The child
//! reads `/proc/self/status`, `/proc/self/smaps_rollup` and `/proc/meminfo` before and after
//! starting N tasks and prints one JSON line ([`ChildReport`]); the parent turns the deltas into
//! per-task figures ([`TaskRow`]).
//!
//! The article's "100k threads > 100 GB" multiplies a *virtual* stack reservation; what a
//! thread actually costs is the *resident* part of its stack plus the kernel's stack and page
//! tables. Both are reported: `vm_per_task_bytes` (VmSize delta) and `rss_per_task_bytes` /
//! `pss_per_task_bytes`, plus `kernel_stack_per_task_bytes` and `page_tables_per_task_bytes`
//! (system-wide /proc/meminfo deltas, so other activity on the machine adds noise).
//!
//! # JSON schema
//! [`TasksReport`] serializes as:
//! ```text
//! { "schema_version": 2, "requested": u64,
//!   "limits": { "threads_max": u64|null, "max_map_count": u64|null, "pid_max": u64|null,
//!               "pids_in_use": u64|null, "rlimit_nproc": u64|null, "rlimit_stack_bytes": u64|null,
//!               "cgroup_pids_max": u64|null },
//!   "rows": [ { "kind": str, "requested": u64, "started": u64, "stopped_by": str|null,
//!               "stack_reservation_bytes": u64|null,
//!               "vm_per_task_bytes": f64, "rss_per_task_bytes": f64, "pss_per_task_bytes": f64,
//!               "kernel_stack_per_task_bytes": f64|null, "page_tables_per_task_bytes": f64|null,
//!               "rss_at_100k_bytes": f64|null, "vm_at_100k_bytes": f64|null, "note": str|null } ],
//!   "go": { "status": "ran"|"not-installed"|"failed"|"skipped", "message": str|null } }
//! ```

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Schema version of [`TasksReport`] (2: machine-wide per-task figures and the `at_100k`
/// extrapolations may be `null`).
pub const SCHEMA_VERSION: u32 = 2;

/// Fewest tasks from which per-task figures are scaled to 100,000: below it, fixed costs
/// (allocator arenas, runtime threads, the first stack pages) dominate the deltas, and 100,000
/// times a fixed cost spread over ten tasks is a meaningless figure.
pub const MIN_EXTRAPOLATION_TASKS: u64 = 10_000;

/// Most tasks per kind: ten million tokio tasks already take gigabytes.
pub const MAX_TASKS: u64 = 10_000_000;

/// Small thread stacks: 64 KiB.
pub const SMALL_STACK: usize = 64 * 1024;

/// Memory mappings a Rust thread adds: its stack and guard page, and the alternate signal stack
/// (stack-overflow handler) and its guard page.
const MAPS_PER_THREAD: u64 = 4;

/// pids (and map-count pairs) left free for the rest of the machine when threads are capped.
const HEADROOM: u64 = 4096;

/// A kind of concurrent task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// A tokio task sleeping on a timer (multi-thread runtime).
    TokioSleep,
    /// A tokio task waiting on its own oneshot channel.
    TokioChannel,
    /// An OS thread with Rust's default stack (2 MiB unless `RUST_MIN_STACK`).
    Thread,
    /// An OS thread with glibc's default stack (`ulimit -s`, usually 8 MiB), as C and Go's cgo get.
    ThreadPthreadDefault,
    /// An OS thread with a 64 KiB stack.
    ThreadSmall,
    /// A goroutine blocked on a channel (Go program, only when Go is on PATH).
    Goroutine,
}

impl TaskKind {
    /// Every kind, in table order.
    pub const ALL: [TaskKind; 6] = [
        TaskKind::TokioSleep,
        TaskKind::TokioChannel,
        TaskKind::Thread,
        TaskKind::ThreadPthreadDefault,
        TaskKind::ThreadSmall,
        TaskKind::Goroutine,
    ];

    /// The name on the command line and in JSON.
    pub fn key(self) -> &'static str {
        match self {
            TaskKind::TokioSleep => "tokio-sleep",
            TaskKind::TokioChannel => "tokio-channel",
            TaskKind::Thread => "thread",
            TaskKind::ThreadPthreadDefault => "thread-pthread-default",
            TaskKind::ThreadSmall => "thread-small",
            TaskKind::Goroutine => "goroutine",
        }
    }

    /// Parses a [`TaskKind::key`].
    pub fn parse(name: &str) -> Result<TaskKind, Error> {
        TaskKind::ALL
            .into_iter()
            .find(|k| k.key() == name)
            .ok_or_else(|| Error::UnknownName {
                what: "task kind",
                name: name.to_owned(),
                expected: TaskKind::ALL.map(TaskKind::key).join(", "),
            })
    }

    fn is_thread(self) -> bool {
        matches!(
            self,
            TaskKind::Thread | TaskKind::ThreadPthreadDefault | TaskKind::ThreadSmall
        )
    }
}

/// Memory readings of a process (and of the machine) at one moment, in KiB as /proc prints them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcSnapshot {
    /// `VmSize`: virtual address space.
    pub vm_size_kib: u64,
    /// `VmRSS`: resident set.
    pub vm_rss_kib: u64,
    /// `Pss` from smaps_rollup: resident, shared pages divided among sharers.
    pub pss_kib: u64,
    /// `/proc/meminfo` `KernelStack` (machine-wide).
    pub kernel_stack_kib: u64,
    /// `/proc/meminfo` `PageTables` (machine-wide).
    pub page_tables_kib: u64,
    /// `Threads` of the process.
    pub threads: u64,
}

impl ProcSnapshot {
    /// Reads the current process and machine.
    pub fn read() -> ProcSnapshot {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        ProcSnapshot {
            vm_size_kib: proc_field(&status, "VmSize").unwrap_or(0),
            vm_rss_kib: proc_field(&status, "VmRSS").unwrap_or(0),
            pss_kib: proc_field(&rollup, "Pss").unwrap_or(0),
            kernel_stack_kib: proc_field(&meminfo, "KernelStack").unwrap_or(0),
            page_tables_kib: proc_field(&meminfo, "PageTables").unwrap_or(0),
            threads: proc_field(&status, "Threads").unwrap_or(0),
        }
    }
}

/// The first number after `name:` in a /proc key-value text.
pub fn proc_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// What a child prints: one JSON line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildReport {
    /// The kind (for goroutines the Go program writes `goroutine`).
    pub kind: String,
    /// Tasks asked for.
    pub requested: u64,
    /// Tasks running when `after` was read.
    pub started: u64,
    /// Why fewer than requested started.
    pub stopped_by: Option<String>,
    /// Before starting tasks.
    pub before: ProcSnapshot,
    /// With all tasks started and blocked.
    pub after: ProcSnapshot,
}

/// System limits that bound how many threads can exist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// `kernel.threads-max`.
    pub threads_max: Option<u64>,
    /// `vm.max_map_count` (a Rust thread takes four mappings: stack, guard page, signal stack,
    /// its guard page).
    pub max_map_count: Option<u64>,
    /// `kernel.pid_max` (each thread takes a pid).
    pub pid_max: Option<u64>,
    /// Tasks (threads) on the machine now, from /proc/loadavg.
    pub pids_in_use: Option<u64>,
    /// `RLIMIT_NPROC` soft limit (not enforced for root).
    pub rlimit_nproc: Option<u64>,
    /// `RLIMIT_STACK` soft limit: glibc's default thread stack.
    pub rlimit_stack_bytes: Option<u64>,
    /// `pids.max` of our cgroup (v2), if limited.
    pub cgroup_pids_max: Option<u64>,
}

impl Limits {
    /// Reads the limits of this machine and process.
    pub fn read() -> Limits {
        let num = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        let finite = |v: u64| (v != rlimit::INFINITY).then_some(v);
        let cgroup_pids_max = std::fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
            })
            .and_then(|rel| num(&format!("/sys/fs/cgroup{}/pids.max", rel.trim())));
        Limits {
            threads_max: num("/proc/sys/kernel/threads-max"),
            max_map_count: num("/proc/sys/vm/max_map_count"),
            pid_max: num("/proc/sys/kernel/pid_max"),
            pids_in_use: std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| {
                let field = s.split_whitespace().nth(3)?;
                field.split_once('/')?.1.parse().ok()
            }),
            rlimit_nproc: rlimit::getrlimit(rlimit::Resource::NPROC)
                .ok()
                .and_then(|(soft, _)| finite(soft)),
            rlimit_stack_bytes: rlimit::getrlimit(rlimit::Resource::STACK)
                .ok()
                .and_then(|(soft, _)| finite(soft)),
            cgroup_pids_max,
        }
    }

    /// How many more threads we allow ourselves, leaving headroom for the rest of the machine,
    /// and which limit sets that cap.
    pub fn thread_cap(&self) -> (u64, Option<String>) {
        let in_use = self.pids_in_use.unwrap_or(0);
        let mut cap = u64::MAX;
        let mut why = None;
        let mut consider = |value: Option<u64>, room: Option<u64>, text: String| {
            if let (Some(_), Some(room)) = (value, room) {
                if room < cap {
                    cap = room;
                    why = Some(text);
                }
            }
        };
        consider(
            self.pid_max,
            self.pid_max.map(|m| m.saturating_sub(in_use + HEADROOM)),
            format!(
                "kernel.pid_max = {} with {in_use} tasks on the machine (capped to leave {HEADROOM} pids free)",
                self.pid_max.unwrap_or(0)
            ),
        );
        consider(
            self.threads_max,
            self.threads_max
                .map(|m| m.saturating_sub(in_use + HEADROOM)),
            format!(
                "kernel.threads-max = {} with {in_use} tasks on the machine",
                self.threads_max.unwrap_or(0)
            ),
        );
        consider(
            self.max_map_count,
            self.max_map_count
                .map(|m| m.saturating_sub(HEADROOM) / MAPS_PER_THREAD),
            format!(
                "vm.max_map_count = {} ({MAPS_PER_THREAD} mappings per Rust thread: stack, its \
                 guard page, signal stack, its guard page)",
                self.max_map_count.unwrap_or(0)
            ),
        );
        consider(
            self.cgroup_pids_max,
            self.cgroup_pids_max.map(|m| m.saturating_sub(HEADROOM)),
            format!("cgroup pids.max = {}", self.cgroup_pids_max.unwrap_or(0)),
        );
        (cap, why)
    }
}

/// Memory a task of `kind` takes, bytes, as measured by this experiment on x86_64 Linux (rounded
/// down a little): used to refuse, before anything starts, counts the machine cannot hold.
pub fn bytes_per_task(kind: TaskKind) -> u64 {
    match kind {
        // Measured 0.5 KiB: the task cell (header, scheduler handle, the future: a timer entry
        // or a channel end) and its JoinHandle in our vector.
        TaskKind::TokioSleep | TaskKind::TokioChannel => 512,
        // Measured ≈ 30 KiB: the touched stack pages (≈ 9.6 KiB resident), the kernel stack
        // (THREAD_SIZE, 16 KiB on x86_64 and arm64) and page tables (≈ 4 KiB).
        TaskKind::Thread | TaskKind::ThreadPthreadDefault | TaskKind::ThreadSmall => 28 << 10,
        // Measured 2.7 KiB: the smallest goroutine stack (2 KiB) and the g structure.
        TaskKind::Goroutine => 2560,
    }
}

/// Memory this process may still take, bytes, and where the figure comes from:
/// `/proc/meminfo` MemAvailable, or the cgroup v2 `memory.max` minus `memory.current` when smaller.
pub fn available_memory() -> Option<(u64, String)> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let mut best = proc_field(&meminfo, "MemAvailable")
        .map(|kib| (kib * 1024, "MemAvailable in /proc/meminfo".to_owned()));
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("0::").map(|p| p.trim().to_owned()))
        });
    if let Some(rel) = cgroup {
        let read = |name: &str| {
            std::fs::read_to_string(format!("/sys/fs/cgroup{rel}/{name}"))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        if let (Some(max), Some(current)) = (read("memory.max"), read("memory.current")) {
            let room = max.saturating_sub(current);
            if best.as_ref().is_none_or(|(b, _)| room < *b) {
                best = Some((
                    room,
                    format!("cgroup memory.max {max} minus memory.current"),
                ));
            }
        }
    }
    best
}

/// Refuses, before any child starts, a task count the machine cannot hold: `n` tasks of each of
/// `kinds` must fit in `available` memory (threads only up to the cap of [`Limits::thread_cap`],
/// where they stop and say so).
pub fn check_resources(
    n: u64,
    kinds: &[TaskKind],
    limits: &Limits,
    available: Option<&(u64, String)>,
) -> Result<(), Error> {
    if n == 0 || n > MAX_TASKS {
        return Err(Error::Limit(format!(
            "{n} tasks: ask for 1 to {MAX_TASKS} tasks per kind"
        )));
    }
    let Some((available, source)) = available else {
        return Ok(());
    };
    let (cap, _) = limits.thread_cap();
    for &kind in kinds {
        let count = if kind.is_thread() { n.min(cap) } else { n };
        let per = bytes_per_task(kind);
        let need = count.saturating_mul(per);
        if need > *available {
            let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
            return Err(Error::Limit(format!(
                "{count} {} tasks need about {:.1} GiB ({per} bytes each, as measured on x86_64 \
                 Linux), but only {:.1} GiB is available ({source}); lower -n to at most {}",
                kind.key(),
                gib(need),
                gib(*available),
                available / per
            )));
        }
    }
    Ok(())
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRow {
    /// [`TaskKind::key`].
    pub kind: String,
    /// Tasks asked for.
    pub requested: u64,
    /// Tasks actually running when measured.
    pub started: u64,
    /// Which limit stopped it, if any.
    pub stopped_by: Option<String>,
    /// The stack reserved per thread (virtual), for threads.
    pub stack_reservation_bytes: Option<u64>,
    /// VmSize delta per task: virtual.
    pub vm_per_task_bytes: f64,
    /// VmRSS delta per task: resident.
    pub rss_per_task_bytes: f64,
    /// Pss delta per task: resident, shared pages divided.
    pub pss_per_task_bytes: f64,
    /// /proc/meminfo KernelStack delta per task (machine-wide reading); `None` when the
    /// machine-wide delta was negative: other activity outweighed the tasks.
    pub kernel_stack_per_task_bytes: Option<f64>,
    /// /proc/meminfo PageTables delta per task (machine-wide reading); `None` when negative.
    pub page_tables_per_task_bytes: Option<f64>,
    /// Resident (RSS + kernel stack + page tables) scaled to 100,000 tasks; `None` when fewer
    /// than [`MIN_EXTRAPOLATION_TASKS`] started.
    pub rss_at_100k_bytes: Option<f64>,
    /// Virtual scaled to 100,000 tasks; `None` when fewer than [`MIN_EXTRAPOLATION_TASKS`]
    /// started.
    pub vm_at_100k_bytes: Option<f64>,
    /// Caveats.
    pub note: Option<String>,
}

impl TaskRow {
    /// Per-task figures from a child's report.
    pub fn from_child(child: &ChildReport, stack: Option<u64>) -> TaskRow {
        let n = child.started.max(1) as f64;
        let per = |after: u64, before: u64| (after as f64 - before as f64) * 1024.0 / n;
        let (b, a) = (&child.before, &child.after);
        let rss = per(a.vm_rss_kib, b.vm_rss_kib);
        // Machine-wide readings: a negative delta means something else on the machine freed
        // more than the tasks took, and the figure says nothing about the tasks.
        let machine = |after: u64, before: u64| (after >= before).then(|| per(after, before));
        let kstack = machine(a.kernel_stack_kib, b.kernel_stack_kib);
        let ptables = machine(a.page_tables_kib, b.page_tables_kib);
        let vm = per(a.vm_size_kib, b.vm_size_kib);
        let enough = child.started >= MIN_EXTRAPOLATION_TASKS;
        let mut notes = Vec::new();
        if !enough {
            notes.push(format!(
                "not scaled to 100k: {} tasks started, fewer than {MIN_EXTRAPOLATION_TASKS}, \
                 so fixed costs dominate the per-task figures",
                child.started
            ));
        } else if child.started < 100_000 {
            notes.push(format!(
                "at_100k columns extrapolated from {} tasks",
                child.started
            ));
        }
        if kstack.is_none() || ptables.is_none() {
            notes.push(
                "a machine-wide kernel delta was negative (other activity on the machine \
                 outweighed the tasks), shown as -: rerun on a quiet machine"
                    .to_owned(),
            );
        }
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        TaskRow {
            kind: child.kind.clone(),
            requested: child.requested,
            started: child.started,
            stopped_by: child.stopped_by.clone(),
            stack_reservation_bytes: stack,
            vm_per_task_bytes: vm,
            rss_per_task_bytes: rss,
            pss_per_task_bytes: per(a.pss_kib, b.pss_kib),
            kernel_stack_per_task_bytes: kstack,
            page_tables_per_task_bytes: ptables,
            // An unknown (negative) kernel delta counts as zero: a lower bound.
            rss_at_100k_bytes: enough
                .then(|| (rss + kstack.unwrap_or(0.0) + ptables.unwrap_or(0.0)) * 100_000.0),
            vm_at_100k_bytes: enough.then_some(vm * 100_000.0),
            note,
        }
    }
}

/// The Go part's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoStatus {
    /// `ran`, `not-installed`, `failed` or `skipped`.
    pub status: String,
    /// Details or how to get Go.
    pub message: Option<String>,
}

/// The result of `frugal bench tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TasksReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Tasks asked for per kind.
    pub requested: u64,
    /// The machine's limits.
    pub limits: Limits,
    /// One row per kind.
    pub rows: Vec<TaskRow>,
    /// Goroutines.
    pub go: GoStatus,
}

impl TasksReport {
    /// The row of `kind`.
    pub fn row(&self, kind: TaskKind) -> Option<&TaskRow> {
        self.rows.iter().find(|r| r.kind == kind.key())
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct TasksConfig {
    /// Tasks per kind.
    pub n: u64,
    /// Kinds to measure (goroutines are skipped without Go).
    pub kinds: Vec<TaskKind>,
    /// How to re-execute this binary as a child: the engine appends `KIND N`, and the program
    /// must then call [`run_child`] and print its result as one JSON line.
    pub child_argv: Vec<String>,
}

/// The stack size a thread kind reserves.
fn stack_for(kind: TaskKind, limits: &Limits) -> Option<u64> {
    match kind {
        TaskKind::Thread => Some(
            std::env::var("RUST_MIN_STACK")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(2 * 1024 * 1024),
        ),
        TaskKind::ThreadPthreadDefault => Some(limits.rlimit_stack_bytes.unwrap_or(8 << 20)),
        TaskKind::ThreadSmall => Some(SMALL_STACK as u64),
        _ => None,
    }
}

/// In the child: starts `n` tasks of `kind`, waits until all are blocked, reads /proc, stops
/// them. Threads stop early at a system limit (or our headroom cap) and say so.
pub fn run_child(kind: TaskKind, n: u64) -> Result<ChildReport, Error> {
    match kind {
        TaskKind::TokioSleep | TaskKind::TokioChannel => tokio_child(kind, n),
        TaskKind::Thread | TaskKind::ThreadPthreadDefault | TaskKind::ThreadSmall => {
            Ok(thread_child(kind, n))
        }
        TaskKind::Goroutine => Err(Error::Child {
            command: "goroutine child".to_owned(),
            message: "goroutines are measured by the Go program, not by this binary".to_owned(),
        }),
    }
}

fn tokio_child(kind: TaskKind, n: u64) -> Result<ChildReport, Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Spawn {
            command: "tokio runtime".to_owned(),
            source,
        })?;
    rt.block_on(async move {
        // Let the worker threads start before the baseline.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let before = ProcSnapshot::read();
        let polled = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::with_capacity(n as usize);
        let mut senders = Vec::new();
        for _ in 0..n {
            let polled = Arc::clone(&polled);
            if kind == TaskKind::TokioSleep {
                handles.push(tokio::spawn(async move {
                    polled.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }));
            } else {
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                senders.push(tx);
                handles.push(tokio::spawn(async move {
                    polled.fetch_add(1, Ordering::Relaxed);
                    let _ = rx.await;
                }));
            }
        }
        // Every task has run to its first await point.
        while polled.load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let after = ProcSnapshot::read();
        for h in &handles {
            h.abort();
        }
        drop(senders);
        Ok(ChildReport {
            kind: kind.key().to_owned(),
            requested: n,
            started: n,
            stopped_by: None,
            before,
            after,
        })
    })
}

fn thread_child(kind: TaskKind, n: u64) -> ChildReport {
    let limits = Limits::read();
    let stack = stack_for(kind, &limits).expect("thread kinds have a stack size") as usize;
    let (cap, cap_why) = limits.thread_cap();
    let target = n.min(cap);
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let parked = Arc::new(AtomicU64::new(0));
    let before = ProcSnapshot::read();
    let mut handles = Vec::with_capacity(target as usize);
    let mut stopped_by = None;
    for _ in 0..target {
        let gate = Arc::clone(&gate);
        let parked = Arc::clone(&parked);
        let mut builder = std::thread::Builder::new();
        if kind != TaskKind::Thread {
            builder = builder.stack_size(stack);
        }
        let spawned = builder.spawn(move || {
            let (lock, cvar) = &*gate;
            let mut open = lock
                .lock()
                .expect("no thread panics while holding the gate");
            parked.fetch_add(1, Ordering::Relaxed);
            while !*open {
                open = cvar
                    .wait(open)
                    .expect("no thread panics while holding the gate");
            }
        });
        match spawned {
            Ok(h) => handles.push(h),
            Err(err) => {
                stopped_by = Some(format!(
                    "thread creation failed after {} threads: {err}; limits: {}",
                    handles.len(),
                    describe_limits(&limits)
                ));
                break;
            }
        }
    }
    if stopped_by.is_none() && target < n {
        stopped_by = cap_why.map(|why| format!("capped at {target} threads: {why}"));
    }
    let started = handles.len() as u64;
    while parked.load(Ordering::Relaxed) < started {
        std::thread::sleep(Duration::from_millis(2));
    }
    let after = ProcSnapshot::read();
    {
        let (lock, cvar) = &*gate;
        *lock
            .lock()
            .expect("no thread panics while holding the gate") = true;
        cvar.notify_all();
    }
    for h in handles {
        let _ = h.join();
    }
    ChildReport {
        kind: kind.key().to_owned(),
        requested: n,
        started,
        stopped_by,
        before,
        after,
    }
}

fn describe_limits(l: &Limits) -> String {
    let show = |v: Option<u64>| v.map_or("?".to_owned(), |v| v.to_string());
    format!(
        "threads-max {}, vm.max_map_count {}, pid_max {} ({} in use), RLIMIT_NPROC {}",
        show(l.threads_max),
        show(l.max_map_count),
        show(l.pid_max),
        show(l.pids_in_use),
        l.rlimit_nproc
            .map_or("unlimited".to_owned(), |v| v.to_string())
    )
}

/// Runs one child and parses its JSON line.
fn run_child_process(mut cmd: Command, label: &str) -> Result<ChildReport, Error> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .map_err(|source| Error::Spawn {
            command: label.to_owned(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'));
    match (out.status.success(), line) {
        (true, Some(line)) => serde_json::from_str(line).map_err(|e| Error::Child {
            command: label.to_owned(),
            message: format!("unreadable report {line:?}: {e}"),
        }),
        _ => Err(Error::Child {
            command: label.to_owned(),
            message: format!(
                "{}; stderr: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }),
    }
}

/// Builds the Go goroutine program into a scratch directory, removed when the returned
/// [`tempfile::TempDir`] drops (on every path, failed builds included); returns it and the
/// binary's path.
fn build_go_tasks() -> Result<(tempfile::TempDir, std::path::PathBuf), Error> {
    const GO_MOD: &str = include_str!("../go/tasks/go.mod");
    const MAIN: &str = include_str!("../go/tasks/main.go");
    let scratch =
        crate::go::module_dir("frugal-go-tasks-", &[("go.mod", GO_MOD), ("main.go", MAIN)])?;
    let dir = scratch.path().to_path_buf();
    let bin = dir.join("tasks");
    let out = crate::go::go_command(&dir)
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .output()
        .map_err(|source| Error::Spawn {
            command: "go build".to_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Child {
            command: "go build (go/tasks)".to_owned(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok((scratch, bin))
}

/// Runs every configured kind in its own child. `progress(done, total, label)` is called before
/// each.
pub fn run(
    config: &TasksConfig,
    progress: &mut dyn FnMut(u64, u64, &str),
) -> Result<TasksReport, Error> {
    let limits = Limits::read();
    check_resources(
        config.n,
        &config.kinds,
        &limits,
        available_memory().as_ref(),
    )?;
    let total = config.kinds.len() as u64;
    let mut rows = Vec::new();
    let mut go = GoStatus {
        status: "skipped".to_owned(),
        message: None,
    };
    for (i, &kind) in config.kinds.iter().enumerate() {
        progress(i as u64, total, kind.key());
        if kind == TaskKind::Goroutine {
            if crate::go::go_version().is_none() {
                go = GoStatus {
                    status: "not-installed".to_owned(),
                    message: Some(crate::go::HOW_TO_GET_GO.to_owned()),
                };
                continue;
            }
            let result = build_go_tasks().and_then(|(_scratch, bin)| {
                let mut cmd = Command::new(&bin);
                cmd.arg(config.n.to_string());
                run_child_process(cmd, "go tasks program")
            });
            match result {
                Ok(child) => {
                    rows.push(TaskRow::from_child(&child, None));
                    go = GoStatus {
                        status: "ran".to_owned(),
                        message: None,
                    };
                }
                Err(e) => {
                    go = GoStatus {
                        status: "failed".to_owned(),
                        message: Some(e.to_string()),
                    }
                }
            }
            continue;
        }
        let (program, args) = config
            .child_argv
            .split_first()
            .ok_or_else(|| Error::Child {
                command: "tasks child".to_owned(),
                message: "empty child command".to_owned(),
            })?;
        let mut cmd = Command::new(program);
        cmd.args(args).arg(kind.key()).arg(config.n.to_string());
        let child = run_child_process(cmd, &format!("tasks child {}", kind.key()))?;
        let mut row = TaskRow::from_child(&child, stack_for(kind, &limits));
        if kind.is_thread() {
            row.note = Some(
                [
                    row.note.take(),
                    Some("kernel columns are machine-wide deltas".to_owned()),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; "),
            );
        }
        rows.push(row);
    }
    progress(total, total, "done");
    Ok(TasksReport {
        schema_version: SCHEMA_VERSION,
        requested: config.n,
        limits,
        rows,
        go,
    })
}

impl frugal_output::Render for TasksReport {
    const SCHEMA: &'static str = "frugal-bench-tasks";
    const VERSION: u32 = SCHEMA_VERSION;

    fn document(&self) -> frugal_output::Document {
        use frugal_output::units::{bytes, fixed, MISSING};
        use frugal_output::{Document, Table};
        let kib = |b: f64| fixed(b / 1024.0, 1);
        let mut doc = Document::new(format!(
            "frugal bench tasks -n {}: memory per task (KiB), each kind in a fresh process",
            self.requested
        ));
        doc.line(
            "resident = RSS delta; kernel = KernelStack + PageTables deltas (machine-wide); \
             virtual = VmSize delta (stack reservations)",
        );
        let mut table = Table::numeric([
            "kind",
            "started",
            "stack",
            "rss",
            "pss",
            "kstack",
            "ptables",
            "virtual",
            "res@100k",
            "virt@100k",
        ]);
        let human = |b: f64| {
            if b.abs() >= 1024.0 * 1024.0 * 1024.0 {
                bytes(b)
            } else {
                format!("{} MiB", fixed(b / 1024.0 / 1024.0, 0))
            }
        };
        for r in &self.rows {
            table.row([
                r.kind.clone(),
                r.started.to_string(),
                r.stack_reservation_bytes
                    .map_or(MISSING.to_owned(), |b| format!("{} KiB", b / 1024)),
                kib(r.rss_per_task_bytes),
                kib(r.pss_per_task_bytes),
                r.kernel_stack_per_task_bytes
                    .map_or(MISSING.to_owned(), kib),
                r.page_tables_per_task_bytes.map_or(MISSING.to_owned(), kib),
                kib(r.vm_per_task_bytes),
                r.rss_at_100k_bytes.map_or(MISSING.to_owned(), human),
                r.vm_at_100k_bytes.map_or(MISSING.to_owned(), human),
            ]);
        }
        doc.table(table);
        for r in &self.rows {
            if let Some(stop) = &r.stopped_by {
                doc.line(format!(
                    "  {}: stopped at {} of {}: {stop}",
                    r.kind, r.started, r.requested
                ));
            }
        }
        let mut notes: Vec<&str> = Vec::new();
        for note in self.rows.iter().filter_map(|r| r.note.as_deref()) {
            for part in note.split("; ") {
                if !notes.contains(&part) {
                    notes.push(part);
                }
            }
        }
        for note in notes {
            doc.note(note);
        }
        match self.go.status.as_str() {
            "ran" | "skipped" => {}
            status => {
                doc.line(format!(
                    "  goroutines: {status}: {}",
                    self.go.message.as_deref().unwrap_or("")
                ));
            }
        }
        doc
    }

    /// Raw numbers, one row per kind, units in the headers (bytes per task; empty = not
    /// measured).
    fn csv_table(&self) -> Option<frugal_output::Table> {
        let mut t = frugal_output::Table::numeric([
            "kind",
            "requested",
            "started",
            "stack_reservation_bytes",
            "rss_bytes_per_task",
            "pss_bytes_per_task",
            "kernel_stack_bytes_per_task",
            "page_tables_bytes_per_task",
            "vm_bytes_per_task",
            "rss_bytes_at_100k",
            "vm_bytes_at_100k",
        ]);
        let o = |x: Option<f64>| x.map_or(String::new(), |x| x.to_string());
        for r in &self.rows {
            t.row([
                r.kind.clone(),
                r.requested.to_string(),
                r.started.to_string(),
                r.stack_reservation_bytes
                    .map_or(String::new(), |b| b.to_string()),
                r.rss_per_task_bytes.to_string(),
                r.pss_per_task_bytes.to_string(),
                o(r.kernel_stack_per_task_bytes),
                o(r.page_tables_per_task_bytes),
                r.vm_per_task_bytes.to_string(),
                o(r.rss_at_100k_bytes),
                o(r.vm_at_100k_bytes),
            ]);
        }
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields() {
        let status = "Name:\tx\nVmSize:\t  123456 kB\nVmRSS:\t    2048 kB\nThreads:\t3\n";
        assert_eq!(proc_field(status, "VmSize"), Some(123_456));
        assert_eq!(proc_field(status, "VmRSS"), Some(2048));
        assert_eq!(proc_field(status, "Threads"), Some(3));
        assert_eq!(proc_field(status, "Vm"), None);
        assert_eq!(proc_field("", "VmRSS"), None);
    }

    #[test]
    fn per_task_figures() {
        let snap = |rss, vm, ks, pt| ProcSnapshot {
            vm_size_kib: vm,
            vm_rss_kib: rss,
            pss_kib: rss,
            kernel_stack_kib: ks,
            page_tables_kib: pt,
            threads: 1,
        };
        let child = ChildReport {
            kind: "thread".to_owned(),
            requested: 10_000,
            started: 10_000,
            stopped_by: None,
            before: snap(10_000, 100_000, 1000, 500),
            after: snap(90_000, 20_580_000, 161_000, 500),
        };
        let row = TaskRow::from_child(&child, Some(2 << 20));
        assert_eq!(row.rss_per_task_bytes, 8.0 * 1024.0);
        assert_eq!(row.vm_per_task_bytes, 2048.0 * 1024.0);
        assert_eq!(row.kernel_stack_per_task_bytes, Some(16.0 * 1024.0));
        assert_eq!(row.page_tables_per_task_bytes, Some(0.0));
        assert_eq!(row.rss_at_100k_bytes, Some(24.0 * 1024.0 * 100_000.0));
        assert!(row.note.unwrap().contains("extrapolated from 10000"));
    }

    #[test]
    fn few_tasks_and_negative_machine_deltas_give_no_figure() {
        let snap = |pt| ProcSnapshot {
            vm_size_kib: 1000,
            vm_rss_kib: 1000,
            pss_kib: 1000,
            kernel_stack_kib: 100,
            page_tables_kib: pt,
            threads: 1,
        };
        let child = ChildReport {
            kind: "thread-small".to_owned(),
            requested: 10,
            started: 10,
            stopped_by: None,
            before: snap(5000),
            after: snap(4000),
        };
        let row = TaskRow::from_child(&child, Some(64 << 10));
        // Page tables shrank machine-wide: not a per-task figure, never a negative one.
        assert_eq!(row.page_tables_per_task_bytes, None);
        assert_eq!(row.kernel_stack_per_task_bytes, Some(0.0));
        // Ten tasks: nothing is scaled to 100k.
        assert_eq!((row.rss_at_100k_bytes, row.vm_at_100k_bytes), (None, None));
        let note = row.note.unwrap();
        assert!(
            note.contains("not scaled to 100k") && note.contains("negative"),
            "{note}"
        );
    }

    #[test]
    fn counts_the_machine_cannot_hold_are_refused_up_front() {
        let limits = Limits {
            pid_max: Some(32_768),
            pids_in_use: Some(500),
            ..Limits::default()
        };
        let gib = (1u64 << 30, "MemAvailable in /proc/meminfo".to_owned());
        let all = TaskKind::ALL;
        check_resources(100_000, &all, &limits, Some(&gib)).unwrap();
        // A huge count of threads is capped by pid_max, not refused.
        check_resources(1_000_000, &[TaskKind::Thread], &limits, Some(&gib)).unwrap();
        let err = check_resources(9_000_000, &all, &limits, Some(&gib))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tokio-sleep") && err.contains("MemAvailable") && err.contains("1.0 GiB"),
            "{err}"
        );
        assert!(check_resources(0, &all, &limits, None).is_err());
        assert!(check_resources(MAX_TASKS + 1, &all, &limits, None).is_err());
        assert!(available_memory().is_some_and(|(b, _)| b > 0));
    }

    #[test]
    fn thread_cap_leaves_headroom() {
        let limits = Limits {
            threads_max: Some(192_730),
            max_map_count: Some(65_530),
            pid_max: Some(32_768),
            pids_in_use: Some(500),
            ..Limits::default()
        };
        let (cap, why) = limits.thread_cap();
        assert_eq!(cap, (65_530 - HEADROOM) / MAPS_PER_THREAD);
        assert!(why.unwrap().contains("max_map_count"));
        let roomy_maps = Limits {
            max_map_count: Some(1 << 30),
            ..limits
        };
        let (cap, why) = roomy_maps.thread_cap();
        assert_eq!(cap, 32_768 - 500 - HEADROOM);
        assert!(why.unwrap().contains("pid_max"));
        assert_eq!(Limits::default().thread_cap(), (u64::MAX, None));
    }

    #[test]
    fn small_thread_child_runs() {
        let report = run_child(TaskKind::ThreadSmall, 50).unwrap();
        assert_eq!(report.started, 50);
        assert_eq!(report.stopped_by, None);
        // (Thread and memory counts are process-wide; other tests run concurrently, so the
        // deltas are checked end to end in crates/cli/tests/cli/bench_tasks.rs instead.)
    }
}
