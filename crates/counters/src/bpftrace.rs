//! Counting USDT probes and uprobes with bpftrace: find and check bpftrace, write the program,
//! run it against a process or a command, and read its JSON output as it comes.
//!
//! Two programs: [`defer_program`] counts the `frugal_defer` USDT probes of a binary built
//! with `frugal-defer`'s `usdt` feature; [`go_program`] puts uprobes on a Go binary's runtime
//! defer functions (`runtime.deferproc`, `runtime.deferprocStack`, `runtime.deferreturn`,
//! `runtime.gopanic`). Both print `frugal:begin NS` once attached, then every interval the
//! counts of that interval followed by the marker `frugal:interval NS` (NS: bpftrace's clock,
//! nanoseconds), and at the end (the `duration` timer, or END) the last (partial) interval's
//! counts, its marker, the marker `frugal:end NS` and the totals (with a duration, END prints
//! them once more: read the first). Counts are bpftrace
//! `count()` maps: per-CPU, exact (no sampling). An interval's counts are printed and then
//! cleared, so an event between the two on another CPU may be missed by the interval (never
//! by the totals, which are never cleared).
//!
//! ```no_run
//! use std::time::Duration;
//! use frugal_counters::bpftrace::{self, Bpftrace, Target};
//!
//! let bt = Bpftrace::find()?;
//! let binary = std::path::Path::new("/usr/local/bin/my-service");
//! let probes = bt.usdt_probes(binary, bpftrace::DEFER_PROVIDER)?;
//! let program = bpftrace::defer_program(binary, &probes, Duration::from_secs(1), None);
//! let mut session = bt.start(&program, &Target::Pid(1234))?;
//! loop {
//!     match session.next_output(Duration::from_millis(100))? {
//!         bpftrace::Next::Output(line) => println!("{line:?}"),
//!         bpftrace::Next::Idle => {}
//!         bpftrace::Next::Ended => break,
//!     }
//! }
//! # Ok::<(), frugal_counters::Error>(())
//! ```

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{sys, Error};

/// The USDT provider of `frugal-defer`'s probes.
pub const DEFER_PROVIDER: &str = "frugal_defer";

/// The Go runtime functions [`go_program`] can probe, in the order they are reported.
pub const GO_FUNCTIONS: [&str; 4] = [
    "runtime.deferproc",
    "runtime.deferprocStack",
    "runtime.deferreturn",
    "runtime.gopanic",
];

/// The oldest bpftrace known to work: JSON output (`-f json`), USDT semaphores set through
/// the kernel's uprobe reference counters, and `-p` ending with the process.
pub const MIN_VERSION: (u32, u32) = (0, 12);

/// What to trace: a running process, or a command that bpftrace starts (paused until the
/// probes are attached).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A running process.
    Pid(u32),
    /// A command and its arguments.
    Command(Vec<OsString>),
}

/// A bpftrace binary that was found, is recent enough and may be run with enough privilege.
#[derive(Debug, Clone)]
pub struct Bpftrace {
    path: PathBuf,
    version: (u32, u32, u32),
}

/// One line of bpftrace's JSON output.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// The probes were attached (`attached_probes`), this many.
    Attached(u64),
    /// A `printf` line (our markers: `frugal:interval`, `frugal:end`).
    Printf(String),
    /// A map: its name without `@`, and its value (a number, or an object keyed by the map's
    /// keys for keyed maps).
    Map(String, serde_json::Value),
    /// A histogram: its name without `@` and its buckets.
    Hist(String, Vec<Bucket>),
}

/// What [`Session::next_output`] got.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// A line of output.
    Output(Output),
    /// Nothing within the wait.
    Idle,
    /// bpftrace ended successfully and all its output was read.
    Ended,
}

/// One bucket of a bpftrace `hist()`: values in `[min, max]` (inclusive, as bpftrace prints
/// them), and how many there were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bucket {
    /// Smallest value of the bucket.
    pub min: u64,
    /// Largest value of the bucket.
    pub max: u64,
    /// Values that fell in it.
    pub count: u64,
}

/// A running bpftrace whose JSON output is read as it is written. Dropping it stops
/// bpftrace (SIGINT, then SIGKILL after 5 s) and waits for it, so no bpftrace process is left
/// behind; bpftrace itself ends a command it started.
#[derive(Debug)]
pub struct Session {
    child: Option<Child>,
    output: BufReader<File>,
    partial: String,
    stderr_path: PathBuf,
    _dir: tempfile::TempDir,
    status: Option<ExitStatus>,
}

impl Bpftrace {
    /// Finds bpftrace on `PATH` (or at `FRUGAL_BPFTRACE`), checks its version and that this
    /// process may load BPF programs (root, or `CAP_BPF` + `CAP_PERFMON`, or `CAP_SYS_ADMIN`).
    pub fn find() -> Result<Bpftrace, Error> {
        let path = match std::env::var_os("FRUGAL_BPFTRACE") {
            Some(p) => PathBuf::from(p),
            None => find_on_path("bpftrace").ok_or(Error::BpftraceMissing)?,
        };
        let out = Command::new(&path)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::Spawn {
                program: path.display().to_string(),
                source,
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let version = parse_version(&text).ok_or_else(|| Error::Bpftrace {
            message: format!("cannot read the version from `bpftrace --version`: {text:?}"),
        })?;
        if (version.0, version.1) < MIN_VERSION {
            return Err(Error::BpftraceTooOld {
                found: format!("{}.{}.{}", version.0, version.1, version.2),
            });
        }
        check_privilege()?;
        Ok(Bpftrace { path, version })
    }

    /// The bpftrace binary.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// bpftrace's version (major, minor, patch).
    pub fn version(&self) -> (u32, u32, u32) {
        self.version
    }

    /// The names of the USDT probes of `provider` in `binary` (bpftrace `-l`).
    pub fn usdt_probes(&self, binary: &Path, provider: &str) -> Result<Vec<String>, Error> {
        let prefix = format!("usdt:{}:{provider}:", binary.display());
        Ok(self
            .list(&format!("{prefix}*"))?
            .into_iter()
            .filter_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
            .collect())
    }

    /// Which of `functions` `binary` has as symbols that uprobes can attach to (bpftrace `-l`).
    pub fn uprobe_functions(
        &self,
        binary: &Path,
        functions: &[&str],
    ) -> Result<Vec<String>, Error> {
        let prefix = format!("uprobe:{}:", binary.display());
        let listed = self.list(&format!("{prefix}runtime.*"))?;
        Ok(functions
            .iter()
            .filter(|f| listed.iter().any(|l| l.strip_prefix(&prefix) == Some(**f)))
            .map(|f| (*f).to_owned())
            .collect())
    }

    fn list(&self, pattern: &str) -> Result<Vec<String>, Error> {
        let out = Command::new(&self.path)
            .args(["-l", pattern])
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::Spawn {
                program: self.path.display().to_string(),
                source,
            })?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect())
    }

    /// Starts bpftrace with `program` on `target`. A command is started through a small
    /// `exec` script, because bpftrace's `-c` splits its argument at every space.
    pub fn start(&self, program: &str, target: &Target) -> Result<Session, Error> {
        let dir = tempfile::Builder::new()
            .prefix("frugal-trace-")
            .tempdir()
            .map_err(|source| Error::Io {
                context: "creating a temporary directory for bpftrace".into(),
                source,
            })?;
        let io = |context: &str| {
            let context = context.to_owned();
            move |source| Error::Io { context, source }
        };
        let script = dir.path().join("program.bt");
        std::fs::write(&script, program).map_err(io("writing the bpftrace program"))?;
        let out_path = dir.path().join("output.json");
        File::create(&out_path).map_err(io("creating bpftrace's output file"))?;
        let stderr_path = dir.path().join("stderr.txt");
        let stderr = File::create(&stderr_path).map_err(io("creating bpftrace's error log"))?;
        let mut cmd = Command::new(&self.path);
        cmd.args(["-f", "json", "-o"]).arg(&out_path);
        match target {
            Target::Pid(pid) => {
                // bpftrace's own stdout carries nothing we read (the JSON goes to `-o`) but two
                // empty lines at exit; a started command's output must pass, an attached
                // process's does not come this way.
                cmd.arg("-p").arg(pid.to_string()).stdout(Stdio::null());
            }
            Target::Command(argv) => {
                // bpftrace splits `-c` at spaces and does not start it through a shell (a
                // wrapper script would do, but then bpftrace looks for the probes' semaphores
                // in the wrapper's memory and fails): arguments must be free of whitespace.
                if let Some(bad) = argv.iter().find(|a| !command_arg_ok(a)) {
                    return Err(Error::Bpftrace {
                        message: format!(
                            "cannot pass {bad:?} to the command: bpftrace's -c splits its command \
                             at spaces; start the program yourself and attach with --pid"
                        ),
                    });
                }
                let mut c = OsString::new();
                for (i, a) in argv.iter().enumerate() {
                    if i > 0 {
                        c.push(" ");
                    }
                    c.push(a);
                }
                cmd.arg("-c").arg(c);
            }
        }
        cmd.arg(&script)
            .stdin(Stdio::null())
            .stderr(Stdio::from(stderr));
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            program: self.path.display().to_string(),
            source,
        })?;
        let output =
            BufReader::new(File::open(&out_path).map_err(io("opening bpftrace's output"))?);
        Ok(Session {
            child: Some(child),
            output,
            partial: String::new(),
            stderr_path,
            _dir: dir,
            status: None,
        })
    }
}

impl Session {
    /// The next line of output, waiting up to `wait` for one ([`Next::Idle`] if none came).
    /// [`Next::Ended`] once bpftrace has ended and everything it wrote was read; an error if
    /// it ended unsuccessfully (with its error message).
    pub fn next_output(&mut self, wait: Duration) -> Result<Next, Error> {
        let deadline = Instant::now() + wait;
        loop {
            let mut chunk = String::new();
            let n = self
                .output
                .read_line(&mut chunk)
                .map_err(|source| Error::Io {
                    context: "reading bpftrace's output".into(),
                    source,
                })?;
            if n > 0 {
                self.partial.push_str(&chunk);
                if self.partial.ends_with('\n') {
                    let line = std::mem::take(&mut self.partial);
                    if let Some(out) = parse_output_line(&line) {
                        return Ok(Next::Output(out));
                    }
                }
                continue;
            }
            // Nothing new: has bpftrace ended?
            match self.status {
                Some(status) if status.success() => return Ok(Next::Ended),
                Some(status) => {
                    return Err(Error::Bpftrace {
                        message: format!("bpftrace failed ({status}): {}", self.errors()),
                    })
                }
                None => {
                    if let Some(child) = self.child.as_mut() {
                        let done = child.try_wait().map_err(|source| Error::Wait {
                            program: "bpftrace".into(),
                            source,
                        })?;
                        if let Some(status) = done {
                            self.status = Some(status);
                            self.child = None;
                            continue; // read what it wrote last
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                return Ok(Next::Idle);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The PID of the command bpftrace started (its child), while it runs.
    pub fn child_pid(&self) -> Option<u32> {
        let bt = self.child.as_ref()?.id();
        let children = std::fs::read_to_string(format!("/proc/{bt}/task/{bt}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    }

    /// True once bpftrace has ended.
    pub fn ended(&self) -> bool {
        self.status.is_some()
    }

    /// Asks bpftrace to stop (SIGINT: it runs `END`, prints the totals, and ends a command it
    /// started). Keep reading with [`Session::next_output`] for the rest of the output.
    pub fn interrupt(&mut self) {
        if let Some(child) = &self.child {
            sys::interrupt(child.id());
        }
    }

    /// bpftrace's error messages, without the noise it prints on every run here (memlock
    /// limit warnings, detach failures when tracefs is not mounted, probes in code the linker
    /// removed).
    pub fn errors(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.stderr_path) {
            let _ = f.read_to_string(&mut text);
        }
        clean_errors(&text)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        sys::interrupt(child.id());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// What one probe hit costs the traced thread, measured on this machine: a workload run
/// untraced, then with [`defer_program`] attached, the difference of the thread's CPU time
/// divided by the probe hits bpftrace counted. See [`Bpftrace::calibrate`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Calibration {
    /// Probe hits per run of the workload, as bpftrace counted them.
    pub hits_per_run: u64,
    /// CPU time of the thread in each untraced run, ns.
    pub untraced_cpu_ns: Vec<u64>,
    /// CPU time of the thread in each traced run, ns.
    pub traced_cpu_ns: Vec<u64>,
    /// (median traced − median untraced) / hits per run, ns.
    pub ns_per_hit: f64,
    /// The same from the fastest and the slowest traced run: the spread.
    pub ns_per_hit_range: (f64, f64),
}

/// The count maps of [`defer_program`]'s totals that are probe hits (one per probe firing).
pub const DEFER_HIT_MAPS: [&str; 9] = [
    "registered",
    "calls",
    "call_ends",
    "cancelled",
    "run_now",
    "scopes",
    "pool_hits",
    "pool_misses",
    "panics",
];

fn median(v: &[u64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2] as f64,
        n => (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0,
    }
}

impl Bpftrace {
    /// Measures what a probe hit costs: runs `workload` (which must fire `binary`'s
    /// `frugal_defer` probes in this process, on this thread, the same number of times on
    /// every call) `runs` times untraced, attaches [`defer_program`] to this process, runs it
    /// `runs` times traced, detaches, and divides the difference of the median CPU times of
    /// the thread (`CLOCK_THREAD_CPUTIME_ID`: the traps' kernel time counts, waiting for a CPU
    /// on a busy machine does not) by the probe hits bpftrace counted per run. `binary` is this process's executable
    /// (`/proc/self/exe`'s target) and must have the probes (`probes`, as listed by
    /// [`Bpftrace::usdt_probes`]). Takes bpftrace's start-up (a second or two) plus the runs.
    pub fn calibrate(
        &self,
        binary: &Path,
        probes: &[String],
        runs: usize,
        workload: &mut dyn FnMut(),
    ) -> Result<Calibration, Error> {
        let fail = |message: String| Error::Bpftrace { message };
        let cpu = || {
            sys::thread_cpu_ns().map_err(|source| Error::Io {
                context: "reading the thread's CPU time".into(),
                source,
            })
        };
        let time = |workload: &mut dyn FnMut()| -> Result<Vec<u64>, Error> {
            (0..runs.max(1))
                .map(|_| {
                    let t = cpu()?;
                    workload();
                    Ok(cpu()?.saturating_sub(t))
                })
                .collect()
        };
        // Once to warm caches and the thread's pool, then measured.
        workload();
        let untraced_cpu_ns = time(workload)?;
        // One interval timer that never fires within the calibration: the totals come at END.
        let program = defer_program(binary, probes, Duration::from_secs(3600), None);
        let mut session = self.start(&program, &Target::Pid(std::process::id()))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match session.next_output(Duration::from_millis(50))? {
                Next::Output(Output::Printf(p)) if p.starts_with("frugal:begin") => break,
                Next::Ended => return Err(fail("bpftrace ended before attaching".into())),
                _ if Instant::now() > deadline => {
                    return Err(fail("bpftrace did not attach within 60 s".into()))
                }
                _ => {}
            }
        }
        let traced_cpu_ns = time(workload)?;
        session.interrupt();
        let mut totals = std::collections::BTreeMap::new();
        let mut in_end = false;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match session.next_output(Duration::from_millis(50))? {
                Next::Output(Output::Printf(p)) if p.starts_with("frugal:end") => in_end = true,
                Next::Output(Output::Map(name, v)) if in_end => {
                    if let Some(v) = v.as_u64() {
                        totals.entry(name).or_insert(v);
                    }
                }
                Next::Ended => break,
                _ if Instant::now() > deadline => {
                    return Err(fail("bpftrace did not end within 30 s of SIGINT".into()))
                }
                _ => {}
            }
        }
        let hits: u64 = DEFER_HIT_MAPS
            .iter()
            .map(|m| totals.get(*m).copied().unwrap_or(0))
            .sum();
        let runs = traced_cpu_ns.len() as u64;
        if hits == 0 || hits % runs != 0 {
            return Err(fail(format!(
                "the calibration counted {hits} probe hits in {runs} identical runs: the probes \
                 were not all attached during the runs"
            )));
        }
        let hits_per_run = hits / runs;
        let base = median(&untraced_cpu_ns);
        let per_hit = |traced: f64| ((traced - base) / hits_per_run as f64).max(0.0);
        let (fast, slow) = (
            traced_cpu_ns.iter().copied().min().unwrap_or(0),
            traced_cpu_ns.iter().copied().max().unwrap_or(0),
        );
        Ok(Calibration {
            hits_per_run,
            ns_per_hit: per_hit(median(&traced_cpu_ns)),
            ns_per_hit_range: (per_hit(fast as f64), per_hit(slow as f64)),
            untraced_cpu_ns,
            traced_cpu_ns,
        })
    }
}

/// Drops the lines bpftrace prints on every run on this kind of machine that are not about
/// the trace, and joins the rest into one line.
pub fn clean_errors(stderr: &str) -> String {
    stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| !l.contains("RLIMIT_MEMLOCK"))
        .filter(|l| !l.contains("uprobe_events") && !l.contains("failed to detach probe"))
        .filter(|l| !l.contains("invalid address"))
        .filter(|l| !l.starts_with("Attaching"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses one line of `bpftrace -f json` output; `None` for lines that are not one of ours
/// (other types, or not JSON). Never panics.
pub fn parse_output_line(line: &str) -> Option<Output> {
    let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    let kind = v.get("type")?.as_str()?;
    let data = v.get("data")?;
    match kind {
        "attached_probes" => Some(Output::Attached(data.get("probes")?.as_u64()?)),
        "printf" => Some(Output::Printf(data.as_str()?.trim_end().to_owned())),
        "map" => {
            let (name, value) = data.as_object()?.iter().next()?;
            Some(Output::Map(
                name.trim_start_matches('@').to_owned(),
                value.clone(),
            ))
        }
        "hist" => {
            let (name, value) = data.as_object()?.iter().next()?;
            let buckets = value
                .as_array()?
                .iter()
                .filter_map(|b| serde_json::from_value::<Bucket>(b.clone()).ok())
                .collect();
            Some(Output::Hist(
                name.trim_start_matches('@').to_owned(),
                buckets,
            ))
        }
        _ => None,
    }
}

/// Every program's first probe: the marker `frugal:begin NS`, NS being bpftrace's `elapsed`
/// clock (nanoseconds since it started), as in every `frugal:interval NS` marker.
const BEGIN: &str = "BEGIN { printf(\"frugal:begin %lld\\n\", elapsed); }\n";

/// Parses a marker line `NAME NS` into `(NAME, NS)` (`NS` is bpftrace's `elapsed`).
pub fn parse_marker(line: &str) -> Option<(&str, u64)> {
    let (name, ns) = line.split_once(' ')?;
    Some((name, ns.trim().parse().ok()?))
}

/// The maps of [`defer_program`]: (probe, count maps it increments).
const DEFER_COUNTS: [(&str, &str); 8] = [
    ("defer_register", "registered"),
    ("call_start", "calls"),
    ("defer_cancel", "cancelled"),
    ("defer_run_now", "run_now"),
    ("scope_exit", "scopes"),
    ("pool_hit", "pool_hits"),
    ("pool_miss", "pool_misses"),
    ("panic_caught", "panics"),
];

/// The count maps [`defer_program`] prints per interval (`i_NAME`) and at the end (`NAME`).
pub const DEFER_MAPS: [&str; 8] = [
    "registered",
    "calls",
    "cancelled",
    "run_now",
    "scopes",
    "pool_hits",
    "pool_misses",
    "panics",
];

/// A bpftrace program counting the `frugal_defer` probes `probes` (as listed by
/// [`Bpftrace::usdt_probes`]) of `binary`: counts per interval and in total, the chain length
/// (defers registered per scope) and deferred-call duration histograms, and the scopes'
/// pooled and heap counts. It exits after `duration` if given (else when the target ends or
/// on SIGINT).
pub fn defer_program(
    binary: &Path,
    probes: &[String],
    interval: Duration,
    duration: Option<Duration>,
) -> String {
    let bin = binary.display();
    let has = |p: &str| probes.iter().any(|q| q == p);
    let mut s = String::from(BEGIN);
    for (probe, map) in DEFER_COUNTS {
        if !has(probe) {
            continue;
        }
        let _ = write!(
            s,
            "usdt:{bin}:{DEFER_PROVIDER}:{probe} {{ @{map} = count(); @i_{map} = count();"
        );
        match probe {
            "scope_exit" => {
                s.push_str(" @chain_length = hist(arg0); @pooled = sum(arg1); @heap = sum(arg2);")
            }
            "defer_register" => s.push_str(" @register_bytes = sum(arg0);"),
            "call_start" => {
                s.push_str(" @depth[tid] = @depth[tid] + 1; @start[tid, @depth[tid]] = nsecs;")
            }
            _ => {}
        }
        s.push_str(" }\n");
    }
    if has("call_end") && has("call_start") {
        let _ = writeln!(
            s,
            "usdt:{bin}:{DEFER_PROVIDER}:call_end /@depth[tid] > 0/ {{ \
             @call_ns = hist(nsecs - @start[tid, @depth[tid]]); @depth[tid] = @depth[tid] - 1; }}"
        );
        // Every hit counts, also those of calls started before the probes were attached (the
        // predicate above skips them): the hits per second say what tracing costs.
        let _ = writeln!(
            s,
            "usdt:{bin}:{DEFER_PROVIDER}:call_end {{ @call_ends = count(); }}"
        );
    }
    let present: Vec<&str> = DEFER_COUNTS
        .iter()
        .filter(|(p, _)| has(p))
        .map(|(_, m)| *m)
        .collect();
    push_interval_and_end(&mut s, &present, interval, duration, |s| {
        for extra in ["pooled", "heap", "register_bytes"] {
            let needed = match extra {
                "register_bytes" => has("defer_register"),
                _ => has("scope_exit"),
            };
            if needed {
                let _ = write!(s, " print(@{extra});");
            }
        }
        if has("scope_exit") {
            s.push_str(" print(@chain_length);");
        }
        if has("call_end") && has("call_start") {
            s.push_str(" print(@call_ns); print(@call_ends);");
        }
    });
    if has("call_end") && has("call_start") {
        // Only in END, when bpftrace has detached every probe: bpftrace 0.17's `clear()`
        // snapshots the keys and then deletes them one by one, and aborts the whole run
        // ("Could not clear map") if a probe changed the map in between. The start times are
        // overwritten, never deleted, by the probes, so the map stays threads × depth small.
        let end = s.rfind("END {").expect("push_interval_and_end writes END");
        s.insert_str(end + "END {".len(), " clear(@start); clear(@depth);");
    }
    s
}

/// A bpftrace program with uprobes on `functions` (a subset of [`GO_FUNCTIONS`], as found by
/// [`Bpftrace::uprobe_functions`]) of the Go binary `binary`: counts per function per interval
/// and in total (map `go`, keyed by function), and per calling function in total
/// (`go_callers`, keyed by `function,caller`). At a Go function's entry (either ABI) the
/// return address is at the stack pointer, so the caller is `usym(*sp)`.
pub fn go_program(
    binary: &Path,
    functions: &[String],
    interval: Duration,
    duration: Option<Duration>,
) -> String {
    let bin = binary.display();
    let mut s = String::from(BEGIN);
    for f in functions {
        let _ = writeln!(
            s,
            "uprobe:{bin}:{f} {{ @go[\"{f}\"] = count(); @i_go[\"{f}\"] = count(); \
             @go_callers[\"{f}\", usym(*(uint64 *)reg(\"sp\"))] = count(); }}"
        );
    }
    push_interval_and_end(&mut s, &["go"], interval, duration, |s| {
        s.push_str(" print(@go_callers);");
    });
    s
}

fn push_interval_and_end(
    s: &mut String,
    maps: &[&str],
    interval: Duration,
    duration: Option<Duration>,
    end_extra: impl FnOnce(&mut String),
) {
    // An interval's maps come first, then its marker.
    let mut interval_body = String::new();
    for m in maps {
        let _ = write!(interval_body, " print(@i_{m}); clear(@i_{m});");
    }
    interval_body.push_str(" printf(\"frugal:interval %lld\\n\", elapsed);");
    // The end: the last (partial) interval, then the totals.
    let mut end_body = interval_body.clone();
    end_body.push_str(" printf(\"frugal:end %lld\\n\", elapsed);");
    for m in maps {
        let _ = write!(end_body, " print(@{m});");
    }
    end_extra(&mut end_body);
    let ms = interval.as_millis().max(1);
    let _ = writeln!(s, "interval:ms:{ms} {{{interval_body} }}");
    if let Some(d) = duration {
        // The totals are printed at the timer, before `exit()`: bpftrace detaches its probes
        // before END, one by one, while the target keeps running, so counts taken in END
        // would mix probes that were still attached with probes that were not.
        let _ = writeln!(
            s,
            "interval:ms:{} {{{end_body} exit(); }}",
            d.as_millis().max(1)
        );
    }
    let _ = writeln!(s, "END {{{end_body} }}");
}

/// The function symbols of an ELF64 executable (its `.symtab`), to name the callers bpftrace
/// could not (it resolves addresses when it prints, from the process's memory map: after a
/// traced command ended, it prints them as hex).
#[derive(Debug, Default)]
pub struct Symbols {
    /// (start, size, name), sorted by start.
    funcs: Vec<(u64, u64, String)>,
}

impl Symbols {
    /// Reads the function symbols of `path`. Position-independent executables (whose run-time
    /// addresses depend on where they were loaded) and stripped ones give an empty table.
    pub fn load(path: &Path) -> Symbols {
        std::fs::read(path)
            .ok()
            .and_then(|data| parse_elf_functions(&data))
            .map(|mut funcs| {
                funcs.sort_by_key(|f| f.0);
                Symbols { funcs }
            })
            .unwrap_or_default()
    }

    /// The function containing `addr`, if known.
    pub fn name(&self, addr: u64) -> Option<&str> {
        let i = self.funcs.partition_point(|f| f.0 <= addr).checked_sub(1)?;
        let (start, size, name) = &self.funcs[i];
        (addr < start + (*size).max(1)).then_some(name.as_str())
    }

    /// `text` if it is not a hex address, else the function containing that address (or
    /// `text` unchanged).
    pub fn resolve(&self, text: &str) -> String {
        text.strip_prefix("0x")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .and_then(|a| self.name(a))
            .map_or_else(|| text.to_owned(), str::to_owned)
    }
}

/// `(start, size, name)` of every `STT_FUNC` symbol of a little-endian ELF64 `ET_EXEC` file.
fn parse_elf_functions(data: &[u8]) -> Option<Vec<(u64, u64, String)>> {
    let bytes = |o: usize, n: usize| data.get(o..o.checked_add(n)?);
    let u16_at = |o: usize| Some(u16::from_le_bytes(bytes(o, 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(bytes(o, 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(bytes(o, 8)?.try_into().ok()?));
    let at = |base: usize, off: usize| base.checked_add(off);
    const ET_EXEC: u16 = 2;
    const SHT_SYMTAB: u32 = 2;
    const STT_FUNC: u8 = 2;
    if data.get(0..6)? != b"\x7fELF\x02\x01" || u16_at(16)? != ET_EXEC {
        return None;
    }
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let shentsize = usize::from(u16_at(0x3a)?);
    let shnum = usize::from(u16_at(0x3c)?);
    let section = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
    let mut out = Vec::new();
    for i in 0..shnum {
        let sh = section(i)?;
        if u32_at(at(sh, 4)?)? != SHT_SYMTAB {
            continue;
        }
        let off = usize::try_from(u64_at(at(sh, 0x18)?)?).ok()?;
        let size = usize::try_from(u64_at(at(sh, 0x20)?)?).ok()?;
        let strtab = section(usize::try_from(u32_at(at(sh, 0x28)?)?).ok()?)?;
        let str_off = usize::try_from(u64_at(at(strtab, 0x18)?)?).ok()?;
        let str_size = usize::try_from(u64_at(at(strtab, 0x20)?)?).ok()?;
        let strings = data.get(str_off..str_off.checked_add(str_size)?)?;
        let syms = data.get(off..off.checked_add(size)?)?;
        for sym in syms.chunks_exact(24) {
            if sym[4] & 0xf != STT_FUNC {
                continue;
            }
            let name_off = u32::from_le_bytes(sym[0..4].try_into().ok()?) as usize;
            let value = u64::from_le_bytes(sym[8..16].try_into().ok()?);
            let size = u64::from_le_bytes(sym[16..24].try_into().ok()?);
            let name = strings.get(name_off..)?;
            let end = name.iter().position(|&b| b == 0)?;
            out.push((
                value,
                size,
                String::from_utf8_lossy(&name[..end]).into_owned(),
            ));
        }
    }
    Some(out)
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Parses `bpftrace v0.17.0` (or `bpftrace v0.20.2-...`).
pub fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let v = text.split_whitespace().find_map(|w| w.strip_prefix('v'))?;
    let mut parts = v.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some((major, minor, patch))
}

/// Root, or the capabilities bpftrace needs (`CAP_SYS_ADMIN`, or `CAP_BPF` and `CAP_PERFMON`),
/// read from `/proc/self/status`.
fn check_privilege() -> Result<(), Error> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|source| Error::Io {
        context: "reading /proc/self/status".into(),
        source,
    })?;
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    if has_tracing_caps(cap_eff) {
        Ok(())
    } else {
        Err(Error::BpftracePermission)
    }
}

/// Whether an effective capability mask allows loading BPF programs and uprobes.
pub fn has_tracing_caps(cap_eff: u64) -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    let has = |c: u32| cap_eff & (1 << c) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

/// Whether bpftrace's `-c` passes `arg` through unchanged: not empty, no whitespace.
pub fn command_arg_ok(arg: &std::ffi::OsStr) -> bool {
    let bytes = arg.as_encoded_bytes();
    !bytes.is_empty() && !bytes.iter().any(u8::is_ascii_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every count map the program prints is a probe hit, and the only hit map it does not
    /// print is `call_ends` (counted for the tracing cost alone): the two lists cannot drift.
    #[test]
    fn hit_maps_are_the_printed_maps_and_call_ends() {
        let mut printed: Vec<&str> = DEFER_MAPS.to_vec();
        printed.push("call_ends");
        printed.sort_unstable();
        let mut hits = DEFER_HIT_MAPS.to_vec();
        hits.sort_unstable();
        assert_eq!(printed, hits);
    }

    #[test]
    fn elf_parser_never_panics_on_garbage() {
        assert!(parse_elf_functions(b"").is_none());
        assert!(parse_elf_functions(b"\x7fELF\x02\x01\0\0\0\0\0\0\0\0\0\0\x02\0").is_none());
        let mut junk = b"\x7fELF\x02\x01".to_vec();
        junk.resize(200, 0xff);
        junk[16] = 2;
        junk[17] = 0;
        assert!(parse_elf_functions(&junk).is_none());
        let s = Symbols::default();
        assert_eq!(s.resolve("0x1234"), "0x1234");
        assert_eq!(s.resolve("main.f"), "main.f");
    }

    #[test]
    fn markers() {
        assert_eq!(
            parse_marker("frugal:interval 1500"),
            Some(("frugal:interval", 1500))
        );
        assert_eq!(parse_marker("frugal:interval"), None);
        assert_eq!(parse_marker("frugal:interval x"), None);
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("bpftrace v0.17.0\n"), Some((0, 17, 0)));
        assert_eq!(parse_version("bpftrace v0.20.2-1"), Some((0, 20, 2)));
        assert_eq!(parse_version("bpftrace"), None);
        assert_eq!(parse_version("bpftrace vx.1"), None);
    }

    #[test]
    fn output_lines() {
        assert_eq!(
            parse_output_line(r#"{"type": "attached_probes", "data": {"probes": 3}}"#),
            Some(Output::Attached(3))
        );
        assert_eq!(
            parse_output_line(r#"{"type": "printf", "data": "frugal:end\n"}"#),
            Some(Output::Printf("frugal:end".into()))
        );
        assert_eq!(
            parse_output_line(r#"{"type": "map", "data": {"@calls": 205}}"#),
            Some(Output::Map("calls".into(), serde_json::json!(205)))
        );
        assert_eq!(
            parse_output_line(
                r#"{"type": "hist", "data": {"@h": [{"min": 2, "max": 3, "count": 2}]}}"#
            ),
            Some(Output::Hist(
                "h".into(),
                vec![Bucket {
                    min: 2,
                    max: 3,
                    count: 2
                }]
            ))
        );
        assert_eq!(parse_output_line("lazy_true=0"), None);
        assert_eq!(parse_output_line(r#"{"type": "map"}"#), None);
        assert_eq!(parse_output_line(""), None);
    }

    #[test]
    fn capabilities() {
        assert!(has_tracing_caps(u64::MAX >> 23)); // root: all 41 capabilities
        assert!(has_tracing_caps(1 << 21));
        assert!(has_tracing_caps((1 << 38) | (1 << 39)));
        assert!(!has_tracing_caps(1 << 39));
        assert!(!has_tracing_caps(0));
    }

    #[test]
    fn command_args_without_whitespace_only() {
        assert!(command_arg_ok("--rounds".as_ref()));
        assert!(command_arg_ok("it's".as_ref()));
        assert!(!command_arg_ok("a b".as_ref()));
        assert!(!command_arg_ok("a\tb".as_ref()));
        assert!(!command_arg_ok("".as_ref()));
    }

    #[test]
    fn programs_only_use_present_probes() {
        let probes = vec!["defer_register".to_owned(), "scope_exit".to_owned()];
        let p = defer_program(Path::new("/bin/x"), &probes, Duration::from_secs(1), None);
        assert!(p.contains("usdt:/bin/x:frugal_defer:defer_register"));
        assert!(p.contains("@chain_length = hist(arg0)"));
        assert!(!p.contains("call_start"));
        assert!(!p.contains("exit()"));
        let p = go_program(
            Path::new("/bin/g"),
            &["runtime.deferproc".to_owned()],
            Duration::from_millis(500),
            Some(Duration::from_secs(3)),
        );
        assert!(p.contains("uprobe:/bin/g:runtime.deferproc"));
        assert!(p.contains("interval:ms:500"));
        assert!(p.contains("interval:ms:3000 {") && p.contains("exit(); }"));
    }
}
