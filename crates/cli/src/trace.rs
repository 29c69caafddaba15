//! `frugal trace`: count a process's defers with bpftrace, per interval and in total, with the
//! process's perf counters beside them (article 4.2).
//!
//! Two kinds of target: a binary built with `frugal-defer`'s `usdt` feature (the `frugal`
//! binary is), whose `frugal_defer` USDT probes are counted; or, with `--go`, a Go binary,
//! whose runtime defer functions get uprobes. Go's open-coded defers (at most 8 per function,
//! none in a loop; Go 1.14+) call no runtime function at all, so no uprobe sees them: only
//! defers in loops (`runtime.deferproc`, heap records), stack-allocated records
//! (`runtime.deferprocStack`), the `runtime.deferreturn` that runs records, and panics
//! (`runtime.gopanic`) are counted. An entry uprobe also fires again when a call restarts after
//! growing the goroutine's stack (`morestack`), a few extra hits per goroutine.
//!
//! What tracing costs: every probe hit is a uprobe, a trap into the kernel that runs a BPF
//! program, microseconds each. Every trace says what it cost, from a measurement: bpftrace
//! counts every probe hit (hits per second), and after the trace a calibration measures what
//! one hit costs here — a workload of defers on this process's own `frugal_defer` probes
//! (the same probes, program and trap), timed untraced and then traced, the difference divided
//! by the hits bpftrace counted ([`Bpftrace::calibrate`]). Hits per second × cost per hit is
//! the target's CPU time spent in tracing. For `--go` the calibration is the same (a uprobe on
//! a Go function is the same trap; its program also looks up the caller). With nobody
//! tracing, a probe is a `nop` (see `frugal-defer`'s `usdt` feature).
//!
//! Attached to a running process, calls registered before the probes were attached are run
//! after it: `run` may exceed `registered`. Totals are read from bpftrace's maps one after
//! another while the target runs, so two totals may differ by the events in between.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use frugal_counters::bpftrace::{self, Bpftrace, Bucket, Next, Output, Target};
use frugal_counters::trace::{
    interval_header, CounterValue, Defers, GoCaller, GoReport, Interval, Overhead, TraceReport,
    GO_NOTE,
};
use frugal_counters::{CounterSet, CounterStatus, Event};

use crate::output::{self, Format};

/// Arguments of `frugal trace`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "While tracing, one line per interval goes to stdout (to stderr when --format \
                  is not table; none with -q then); the totals follow. --csv FILE writes the \
                  interval rows (raw counts), --json FILE the whole report."
)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["pid", "command"]))]
pub struct Args {
    /// Attach to this running process: a PID from 1 to 4,194,303.
    #[arg(long, allow_hyphen_values = true,
          value_parser = crate::ranges::count::<u32>(1, crate::ranges::MAX_PID, crate::ranges::PID_WHY))]
    pid: Option<u32>,
    /// Trace a Go binary: uprobes on runtime.deferproc, deferprocStack, deferreturn, gopanic.
    #[arg(long)]
    go: bool,
    /// Stop after this long (e.g. 10s), 10ms to 1day; by default trace until the target ends or
    /// Ctrl-C.
    #[arg(long, allow_hyphen_values = true,
          value_parser = crate::ranges::duration(Duration::from_millis(10), crate::ranges::MAX_RUN,
                                                 "bpftrace's timers tick in whole milliseconds; leave --duration out to trace until the target ends"))]
    duration: Option<Duration>,
    /// Print counts every interval, 10ms to 1h.
    #[arg(long, default_value = "1s", allow_hyphen_values = true,
          value_parser = crate::ranges::duration(Duration::from_millis(10), Duration::from_secs(3600),
                                                 "bpftrace's timers tick in whole milliseconds; below 10ms the printing costs more than the counting"))]
    interval: Duration,
    #[command(flatten)]
    output: output::OutputArgs,
    /// The command to start and trace (after `--`).
    #[arg(last = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// The perf events counted beside the trace.
const EVENTS: [Event; 5] = [
    Event::TaskClock,
    Event::ContextSwitches,
    Event::PageFaults,
    Event::Cycles,
    Event::LlcLoadMisses,
];

/// Runs `frugal trace`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.interval.is_zero() {
        eprintln!("frugal: error: --interval must be positive (e.g. 1s)");
        return Ok(ExitCode::from(2));
    }
    if args.duration.is_some_and(|d| d.is_zero()) {
        eprintln!("frugal: error: --duration must be positive (e.g. 10s)");
        return Ok(ExitCode::from(2));
    }
    let (binary, target) = match (args.pid, args.command.first()) {
        (Some(pid), _) => {
            let exe = PathBuf::from(format!("/proc/{pid}/exe"));
            let binary = std::fs::read_link(&exe).with_context(|| {
                if is_root() {
                    format!("no process with PID {pid}")
                } else {
                    format!("no process with PID {pid} (or it cannot be inspected: run as root)")
                }
            })?;
            (binary, Target::Pid(pid))
        }
        (None, Some(program)) => {
            if let Some(bad) = args.command.iter().find(|a| !bpftrace::command_arg_ok(a)) {
                eprintln!(
                    "frugal: error: cannot pass {bad:?} to the command: bpftrace's -c splits its \
                     command at spaces; start the program yourself and attach with --pid"
                );
                return Ok(ExitCode::from(2));
            }
            // Checked before bpftrace starts: bpftrace's own words for a directory or a file
            // it cannot run name neither (nor does a probe listing of it).
            let binary = resolve_program(program).map_err(crate::ranges::usage)?;
            let mut argv = args.command.clone();
            argv[0] = binary.clone().into_os_string();
            (binary, Target::Command(argv))
        }
        (None, None) => unreachable!("clap requires --pid or a command"),
    };
    let bt = Bpftrace::find()?;
    let mut report = TraceReport {
        binary: binary.display().to_string(),
        mode: if args.go { "go" } else { "usdt" },
        ..TraceReport::default()
    };
    let program = if args.go {
        let functions = bt.uprobe_functions(&binary, &bpftrace::GO_FUNCTIONS)?;
        if !functions.iter().any(|f| f == "runtime.deferreturn") {
            bail!(
                "{} is not a Go binary (no runtime.deferreturn symbol; a stripped Go binary has \
                 none either): use --go only for Go programs",
                binary.display()
            );
        }
        report.go = Some(GoReport {
            functions: functions.clone(),
            note: GO_NOTE.to_owned(),
            ..GoReport::default()
        });
        bpftrace::go_program(&binary, &functions, args.interval, args.duration)
    } else {
        let probes = bt.usdt_probes(&binary, bpftrace::DEFER_PROVIDER)?;
        if !probes.iter().any(|p| p == "defer_register") {
            let is_go = bt
                .uprobe_functions(&binary, &["runtime.deferreturn"])
                .is_ok_and(|f| !f.is_empty());
            if is_go {
                bail!(
                    "{} is a Go program (it has runtime.deferreturn) and no frugal_defer USDT \
                     probes: add --go to trace its runtime defer functions",
                    binary.display()
                );
            }
            bail!(
                "{} has no frugal_defer USDT probes: it was built without frugal-defer's `usdt` \
                 feature (enable it: frugal-defer = {{ features = [\"usdt\"] }}), or it does not \
                 use frugal-defer",
                binary.display()
            );
        }
        bpftrace::defer_program(&binary, &probes, args.interval, args.duration)
    };

    // Ctrl-C reaches bpftrace too (same process group): it prints the totals and ends. We wait
    // for that instead of dying with it.
    let interrupted = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupted))
        .context("cannot install the Ctrl-C handler")?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&interrupted))
        .context("cannot install the SIGTERM handler")?;

    // The live interval lines: on stdout beside the table; on stderr when stdout carries
    // another format (none with -q).
    let live = |text: &str| -> std::io::Result<()> {
        match (args.output.format, args.output.quiet) {
            (Format::Table, _) => output::print(text),
            (_, false) => {
                eprint!("{text}");
                Ok(())
            }
            (_, true) => Ok(()),
        }
    };
    let mut session = bt.start(&program, &target)?;
    let mut state = Collect::default();
    let mut counters: Option<TargetCounters> = None;
    let mut begin_ns: Option<u64> = None;
    let mut forwarded = false;
    let mut printed_header = false;
    loop {
        if interrupted.load(Ordering::Relaxed) && !forwarded {
            session.interrupt();
            forwarded = true;
        }
        match session
            .next_output(Duration::from_millis(100))
            .map_err(|e| anyhow::anyhow!("{}", explain_bpftrace_error(&e.to_string(), &target)))?
        {
            Next::Idle => {}
            Next::Ended => break,
            Next::Output(Output::Attached(_)) => {}
            Next::Output(Output::Printf(p)) => match bpftrace::parse_marker(&p) {
                Some(("frugal:begin", ns)) => {
                    begin_ns = Some(ns);
                    let pid = match &target {
                        Target::Pid(pid) => Some(*pid),
                        Target::Command(_) => session.child_pid(),
                    };
                    counters = pid.map(TargetCounters::open);
                }
                Some(("frugal:interval", ns)) if !state.in_end => {
                    let t = ns.saturating_sub(begin_ns.unwrap_or(ns)) as f64 / 1e9;
                    let mut iv = state.finish_interval();
                    iv.dt_s = t - report.intervals.last().map_or(0.0, |l: &Interval| l.t_s);
                    iv.t_s = t;
                    if let Some(c) = counters.as_mut() {
                        iv.counters = c.interval();
                    }
                    // A last partial interval of a few milliseconds (the end timer right
                    // after an interval) would print a meaningless rate: JSON only.
                    if iv.dt_s >= args.interval.as_secs_f64() / 10.0 {
                        if !printed_header {
                            live(&interval_header(args.go))?;
                            printed_header = true;
                        }
                        live(&iv.line(args.go))?;
                    }
                    report.intervals.push(iv);
                }
                Some(("frugal:end", _)) => {
                    state.in_end = true;
                    report.duration_s = report.intervals.last().map_or(0.0, |l| l.t_s);
                }
                _ => {}
            },
            Next::Output(other) => state.take(other),
        }
    }
    drop(session);
    if begin_ns.is_none() {
        bail!("bpftrace ended before attaching its probes");
    }
    state.fill(&mut report);
    // What the trace cost: its probe hits, costed by a calibration on this machine (after the
    // trace, so that the target's probes are attached as soon as possible).
    let hits = if args.go {
        state.go_totals.values().sum()
    } else {
        bpftrace::DEFER_HIT_MAPS
            .iter()
            .map(|m| state.totals.get(*m).copied().unwrap_or(0))
            .sum()
    };
    report.overhead = Some(Overhead::new(
        hits,
        report.duration_s,
        calibrate(&bt),
        &calibration_method(args.go),
    ));
    if let Some(c) = counters.as_mut() {
        report.counters = c.total();
        report.notes.extend(c.notes());
        let task_clock = match report.counters.get("task_clock_ns") {
            Some(CounterValue::Count(ns)) => Some(*ns),
            _ => None,
        };
        report.overhead = report
            .overhead
            .take()
            .map(|o| o.with_target_cpu(task_clock));
    } else {
        report
            .notes
            .push("perf counters: the target's PID was not found; none counted".to_owned());
    }
    if args.output.format == Format::Table {
        // A blank line between the live lines and the totals.
        output::print("\n")?;
    }
    output::emit(&args.output, &report)?;
    if let (Target::Pid(pid), Some(d)) = (&target, args.duration) {
        let gone = !Path::new(&format!("/proc/{pid}")).exists();
        if gone && !interrupted.load(Ordering::Relaxed) {
            bail!(
                "process {pid} exited after {:.1}s, before --duration {} ended: the counts above \
                 cover only its life",
                report.duration_s,
                humantime::format_duration(d)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The probes the calibration attaches: the deferred call's start and end, the two whose
/// programs do the most (timestamps in maps, a histogram).
const CALIBRATION_PROBES: [&str; 2] = ["call_start", "call_end"];
/// Scopes per calibration run, and defers per scope: 1,000 × 8 × 2 hits (call start and end)
/// = 16,000 probe hits per run, about 40 ms of CPU traced at 2.5 µs a hit.
const CALIBRATION_SCOPES: u64 = 1_000;
const CALIBRATION_DEFERS: u64 = 8;
/// Runs of the calibration workload, untraced and traced (medians).
const CALIBRATION_RUNS: usize = 5;

/// The calibration workload: scopes of defers on this thread, firing this binary's probes.
fn calibration_workload() {
    for _ in 0..CALIBRATION_SCOPES {
        frugal_defer::scope(|s| {
            for i in 0..CALIBRATION_DEFERS {
                s.defer(move || {
                    std::hint::black_box(i);
                });
            }
        });
    }
}

/// What one probe hit costs here, measured on this process's own probes.
fn calibrate(bt: &Bpftrace) -> Result<bpftrace::Calibration, String> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| format!("cannot find this program's executable: {e}"))?;
    let probes = bt
        .usdt_probes(&exe, bpftrace::DEFER_PROVIDER)
        .map_err(|e| e.to_string())?;
    // Only the run loop's two probes: one site each (defer_register has one per
    // monomorphized call site, dozens in this binary), and the kernel detaches uprobes one by
    // one, each waiting for an RCU grace period — seconds on a loaded VM.
    let probes: Vec<String> = CALIBRATION_PROBES
        .iter()
        .filter(|p| probes.iter().any(|q| q == *p))
        .map(|p| (*p).to_owned())
        .collect();
    if probes.len() < CALIBRATION_PROBES.len() {
        return Err(format!(
            "{} was built without frugal-defer's `usdt` feature, so it has no probes to \
             calibrate on",
            exe.display()
        ));
    }
    bt.calibrate(&exe, &probes, CALIBRATION_RUNS, &mut calibration_workload)
        .map_err(|e| e.to_string())
}

/// How the cost per hit was obtained, for the report.
fn calibration_method(go: bool) -> String {
    let mut m = format!(
        "measured after the trace on this machine: {CALIBRATION_SCOPES} scopes of \
         {CALIBRATION_DEFERS} defers on frugal's own frugal_defer call_start/call_end probes, \
         {CALIBRATION_RUNS} runs untraced then {CALIBRATION_RUNS} traced by the same bpftrace \
         program as the trace's, (median traced − median untraced thread CPU time) / probe hits \
         per run; CPU time = hits/s × cost per hit"
    );
    if go {
        m.push_str(
            "; a Go uprobe is the same trap, its program also reads the caller, so its cost is \
             somewhat higher",
        );
    }
    m
}

/// Whether this process runs as root (effective UID 0).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Gives bpftrace's terse failures a cause and a remedy.
fn explain_bpftrace_error(message: &str, target: &Target) -> String {
    if let (Target::Pid(pid), true) = (target, message.contains("No such process")) {
        return format!("process {pid} ended before the probes were attached ({message})");
    }
    message.to_owned()
}

/// The program to start, as a canonical path, or in one line why it is not one: not found
/// (on `PATH`, for a bare name), a directory or another non-file, not executable, neither an
/// ELF binary nor a `#!` script.
///
/// As a shell does: a name with a `/` is a path; a bare name is looked up in `PATH`, where
/// what is not a program ([`check_program`]) is passed over.
fn resolve_program(program: &OsString) -> Result<PathBuf, String> {
    use std::os::unix::ffi::OsStrExt as _;
    let p = Path::new(program);
    if program.is_empty() {
        return Err("the command after -- is an empty string: give the program to start".into());
    }
    let found = if program.as_bytes().contains(&b'/') {
        check_program(p)?;
        p.to_path_buf()
    } else {
        let candidates: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).map(|d| d.join(p)).collect())
            .unwrap_or_default();
        match candidates.iter().find(|c| check_program(c).is_ok()) {
            Some(c) => c.clone(),
            None => {
                // Say what was found instead, when something was.
                let mut why = format!("{}: not found on PATH", p.display());
                if let Some(Err(e)) = candidates
                    .iter()
                    .find(|c| c.exists())
                    .map(|c| check_program(c))
                {
                    why = format!("{why} as a program; {e}");
                } else if p.exists() {
                    why = format!(
                        "{why}; ./{0} is in this directory: give its path (./{0})",
                        p.display()
                    );
                }
                return Err(why);
            }
        }
    };
    found
        .canonicalize()
        .map_err(|e| format!("{}: cannot resolve its path: {e}", found.display()))
}

/// Whether `path` is a program this process could start: an existing regular file (after
/// symlinks) with an execute bit that is an ELF binary or a `#!` script; else why not, in a few
/// words.
fn check_program(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{shown}: no such file"),
        _ => format!("{shown}: cannot be inspected: {e}"),
    })?;
    if meta.is_dir() {
        return Err(format!(
            "{shown} is a directory, not a program: give the program to start after --"
        ));
    }
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file, not a program"));
    }
    // No execute bit for anyone: nobody, root included, can start it.
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "{shown} is not executable (chmod +x {shown}, or start it through its interpreter)"
        ));
    }
    // What execve would refuse (ENOEXEC): neither an ELF binary nor a `#!` script. A file this
    // process cannot read is left to the kernel.
    let mut head = [0u8; 4];
    let read = std::fs::File::open(path).and_then(|mut f| {
        use std::io::Read as _;
        f.read(&mut head)
    });
    if let Ok(n) = read {
        if !head[..n].starts_with(b"\x7fELF") && !head[..n].starts_with(b"#!") {
            return Err(format!(
                "{shown} is not a program: neither an ELF binary nor a #! script"
            ));
        }
    }
    Ok(())
}

/// Gathers bpftrace's output into intervals and totals.
#[derive(Default)]
struct Collect {
    current: Interval,
    in_end: bool,
    totals: BTreeMap<String, u64>,
    go_totals: BTreeMap<String, u64>,
    go_callers: Vec<GoCaller>,
    hists: BTreeMap<String, Vec<Bucket>>,
}

impl Collect {
    /// The interval whose maps were read since the last marker.
    fn finish_interval(&mut self) -> Interval {
        let mut iv = std::mem::take(&mut self.current);
        if !iv.counts.is_empty() {
            let calls = iv.counts.get("calls").copied().unwrap_or(0);
            let cancelled = iv.counts.get("cancelled").copied().unwrap_or(0);
            iv.counts
                .insert("run".into(), calls.saturating_sub(cancelled));
        }
        iv
    }

    fn take(&mut self, out: Output) {
        match out {
            Output::Map(name, value) => {
                if self.in_end {
                    // bpftrace prints every map again when it exits: keep the first.
                    if name == "go" {
                        if self.go_totals.is_empty() {
                            self.go_totals = keyed(&value);
                        }
                    } else if name == "go_callers" {
                        if self.go_callers.is_empty() {
                            self.go_callers = callers(&value);
                        }
                    } else if let Some(v) = value.as_u64() {
                        self.totals.entry(name).or_insert(v);
                    }
                } else {
                    let iv = &mut self.current;
                    if name == "i_go" {
                        iv.go = keyed(&value);
                    } else if let (Some(n), Some(v)) = (name.strip_prefix("i_"), value.as_u64()) {
                        iv.counts.insert(n.to_owned(), v);
                    }
                }
            }
            Output::Hist(name, buckets) if self.in_end => {
                self.hists.entry(name).or_insert(buckets);
            }
            _ => {}
        }
    }

    fn fill(&self, report: &mut TraceReport) {
        let get = |k: &str| self.totals.get(k).copied().unwrap_or(0);
        report.chain_length_hist = self.hists.get("chain_length").cloned().unwrap_or_default();
        report.call_ns_hist = self.hists.get("call_ns").cloned().unwrap_or_default();
        if let Some(go) = report.go.as_mut() {
            go.calls = self.go_totals.clone();
            let symbols = bpftrace::Symbols::load(Path::new(&report.binary));
            go.callers = self.go_callers.clone();
            for c in &mut go.callers {
                c.caller = symbols.resolve(&c.caller);
            }
            return;
        }
        report.defers = Some(Defers {
            registered: get("registered"),
            run: get("calls").saturating_sub(get("cancelled")),
            cancelled: get("cancelled"),
            run_now: get("run_now"),
            inline: get("registered").saturating_sub(get("pooled") + get("heap")),
            pooled: get("pooled"),
            heap: get("heap"),
            pool_hits: get("pool_hits"),
            pool_misses: get("pool_misses"),
        });
        report.scopes = Some(get("scopes"));
        report.panics = Some(get("panics"));
    }
}

/// A keyed count map (`{"runtime.deferproc": 3}`) as a sorted map.
fn keyed(value: &serde_json::Value) -> BTreeMap<String, u64> {
    value
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The `go_callers` map, keyed `function,caller`, most calls first.
fn callers(value: &serde_json::Value) -> Vec<GoCaller> {
    let mut v: Vec<GoCaller> = keyed(value)
        .into_iter()
        .map(|(k, count)| {
            let (function, caller) = k.split_once(',').unwrap_or((&k, "?"));
            GoCaller {
                function: function.to_owned(),
                caller: caller.to_owned(),
                count,
            }
        })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then(a.caller.cmp(&b.caller)));
    v
}

/// The target's perf counters: one set per thread that existed when tracing started
/// (inherited by threads created later), read at each interval.
struct TargetCounters {
    sets: Vec<CounterSet>,
    status: Vec<CounterStatus>,
    last: Vec<u64>,
    first: Vec<u64>,
    error: Option<String>,
}

impl TargetCounters {
    fn open(pid: u32) -> TargetCounters {
        let mut sets = Vec::new();
        let mut error = None;
        let tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        for tid in tids {
            match CounterSet::open_task(&EVENTS, tid) {
                Ok(s) => sets.push(s),
                Err(e) => error = Some(e.to_string()),
            }
        }
        let status = sets
            .first()
            .map(|s| s.status().to_vec())
            .unwrap_or_default();
        let mut tc = TargetCounters {
            sets,
            status,
            last: vec![0; EVENTS.len()],
            first: vec![0; EVENTS.len()],
            error,
        };
        tc.last = tc.read();
        tc.first = tc.last.clone();
        tc
    }

    fn read(&mut self) -> Vec<u64> {
        let mut sum = vec![0u64; EVENTS.len()];
        for set in &mut self.sets {
            if let Ok(r) = set.read() {
                for (i, v) in r.values.iter().enumerate() {
                    if let Some(v) = v {
                        sum[i] += v.count;
                    }
                }
            }
        }
        sum
    }

    fn values(&self, now: &[u64], since: &[u64]) -> BTreeMap<String, CounterValue> {
        let mut m = BTreeMap::new();
        if self.sets.is_empty() {
            return m;
        }
        for (i, e) in EVENTS.iter().enumerate() {
            let v = match self.status.get(i) {
                Some(CounterStatus::Counting { .. }) => {
                    CounterValue::Count(now[i].saturating_sub(since[i]))
                }
                Some(CounterStatus::Unsupported { reason }) => CounterValue::Missing {
                    status: "not supported",
                    reason: reason.clone(),
                },
                Some(CounterStatus::Failed { message }) => CounterValue::Missing {
                    status: "failed",
                    reason: message.clone(),
                },
                None => continue,
            };
            m.insert(e.key().to_owned(), v);
        }
        m
    }

    fn interval(&mut self) -> BTreeMap<String, CounterValue> {
        let now = self.read();
        let m = self.values(&now, &self.last);
        self.last = now;
        m
    }

    fn total(&mut self) -> BTreeMap<String, CounterValue> {
        // The last interval's reading: the counters' totals up to the end of the trace.
        self.values(&self.last, &self.first)
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(e) = &self.error {
            notes.push(format!("perf counters: {e}"));
        }
        let missing: Vec<&str> = EVENTS
            .iter()
            .zip(&self.status)
            .filter(|(_, s)| matches!(s, CounterStatus::Unsupported { .. }))
            .map(|(e, _)| e.name())
            .collect();
        if !missing.is_empty() {
            notes.push(format!(
                "{} <not supported>: this machine exposes no hardware PMU (a VM without a virtual \
                 PMU), so the article's cache-miss and DRAM-bandwidth figures cannot be counted \
                 here; `frugal stat --sim` simulates caches for a command",
                missing.join(", ")
            ));
        }
        notes
    }
}
