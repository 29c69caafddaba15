//! `frugal bench llc`: what deferred calls cost the service in last-level cache misses per
//! request (article 4.2), simulated.
//!
//! The article: with 10 defers per request, a Go service's LLC miss rate rises from 8.2 % to
//! 13.7 % and its DRAM read bandwidth from 4.1 to 6.9 GB/s. Both need a hardware PMU (and the
//! uncore's memory counters for the bandwidth); this machine has none. What can be measured
//! here is valgrind's cache simulation of the same service: `frugal serve` runs under
//! cachegrind (the cache geometry from sysfs, through [`frugal_counters::sim::Simulator`]),
//! answers a fixed number of requests from a client in this process (another process than the
//! server, on loopback), and exits on SIGTERM; cachegrind's totals give the counts.
//!
//! # Per request: two runs, N and 2N requests
//!
//! A run's totals hold the service's start-up (runtime, listener, the client's connections)
//! and shut-down besides its requests. Each configuration runs twice, with N and with 2N
//! requests, everything else equal; the difference of the two totals divided by N is the cost
//! of N requests in a running service ([`per_request`]). Why not callgrind's
//! `--toggle-collect` on the request handler: a request's cost is spread over hyper's parsing
//! and writing, tokio's scheduling and the two tasks a request runs in; collecting only inside
//! the handler would leave most of it out, and the miss *rate* of the handler alone is not the
//! service's. The difference keeps everything a request costs, as `perf stat` on the service
//! would, and drops what does not recur. Its price is two runs per configuration and a small
//! run-to-run noise in start-up (thread interleaving under valgrind), which shows as a few
//! misses per request at most; instruction counts repeat to within a fraction of a percent.
//!
//! # The figures
//!
//! - instructions, D1 misses (reads + writes), LL misses (instruction + data read + data
//!   write) per request;
//! - the **LL load-miss rate**: last-level data-read misses / data reads that reached the last
//!   level (`DLmr / D1mr`), the simulator's closest counterpart of perf's `LLC-load-misses /
//!   LLC-loads`. The simulator has two levels (L1, LL): every D1 read miss is an LL access,
//!   where on the hardware an L2 filters some first — the hardware rate's denominator is
//!   smaller, so it reads higher for the same misses;
//! - **LL-miss bytes per request**: every LL miss fills one line from memory (write misses
//!   too: the caches write-allocate), so misses × line size is the DRAM read traffic a request
//!   causes; at the service's request rate (measured natively, not under valgrind, closed-loop
//!   from a few connections) that is the DRAM read bandwidth it implies.
//!
//! Without a PMU every figure is simulated ([`LlcReport::simulated`]). A simulation sees one
//! process: not the kernel's network stack, not other processes competing for the cache, not
//! other cores' invalidations; a steady service whose working set fits the simulated LL shows
//! few LL misses per request whatever its cleanup does.
//!
//! # With a PMU
//!
//! Where the PMU counts `LLC-loads` and `LLC-load-misses`, the same comparison runs natively
//! instead, with `frugal_counters`' hardware events: the service starts, the client opens its
//! connections and sends a warm-up of N/10 requests, then every thread of the service is
//! counted (`perf_event_open` per thread, [`CounterSet::open_task`]) across N more requests —
//! the window holds requests only, so one run per configuration does. That path is written
//! but has never run: the machine this was written on has no PMU (its tests cover the
//! simulation). The memory controller's bandwidth counters (uncore) are not read either way:
//! the DRAM figure is implied by the LL misses.
//!
//! ```no_run
//! use frugal_workloads::llc::{self, Config};
//!
//! let config = Config::quick(vec!["frugal".into(), "serve".into()]);
//! let report = llc::run(&config, &mut |p| eprintln!("{}/{} {}", p.done, p.total, p.label))?;
//! for row in &report.rows {
//!     println!("{} +{}: {:.0} instructions/request (simulated)",
//!              row.strategy, row.extra_defers, row.per_request.instructions);
//! }
//! # Ok::<(), frugal_workloads::Error>(())
//! ```

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use frugal_counters::sim::{SimCounts, Simulator};
use frugal_counters::{CounterSet, Event, Reading};
use frugal_http::{LoadConfig, ServerProcess, ServerStderr, Strategy};
use frugal_output::{units, Align, Document, Render, Table, Tone};
use serde::{Deserialize, Serialize};

use crate::sim::{parallel_map, CounterSource, Machine, Progress};
use crate::Error;

/// The article's comparison: 0 and 10 deferred calls per request.
pub const ARTICLE_DEFERS: [usize; 2] = [0, 10];

/// Most requests of a run (the long run sends twice as many).
pub const MAX_REQUESTS: u64 = 1_000_000;

/// Settings of the measurement.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The program and leading arguments that run the service: `[frugal, "serve"]`.
    pub server_argv: Vec<String>,
    /// Cleanup strategies to measure, in order.
    pub strategies: Vec<Strategy>,
    /// Extra deferred calls per request to compare (`frugal serve --extra-defers`).
    pub extra_defers: Vec<usize>,
    /// N: the short run answers N requests, the long run 2N.
    pub requests: u64,
    /// Keep-alive connections the client opens before its first request and sends the
    /// requests over in turn, one request in flight at a time.
    pub connections: u64,
    /// Measured duration of each native (not simulated) throughput run, for the bandwidth.
    pub rate_duration: Duration,
    /// Bound on each simulated run, start-up to exit; a run past it is stopped and fails.
    pub timeout: Duration,
}

impl Config {
    /// The quick profile: chain and manual, 0 and 10 extra defers, N = 200 requests on one
    /// connection, 1 s throughput runs.
    pub fn quick(server_argv: Vec<String>) -> Config {
        Config {
            server_argv,
            strategies: vec![Strategy::Chain, Strategy::Manual],
            extra_defers: ARTICLE_DEFERS.to_vec(),
            requests: 200,
            connections: 1,
            rate_duration: Duration::from_secs(1),
            timeout: Duration::from_secs(120),
        }
    }

    /// The full profile: as [`quick`](Self::quick) with N = 2,000 requests over 64
    /// connections (each used 31 or more times per run) and 3 s throughput runs.
    pub fn full(server_argv: Vec<String>) -> Config {
        Config {
            requests: 2000,
            connections: 64,
            rate_duration: Duration::from_secs(3),
            timeout: Duration::from_secs(300),
            ..Config::quick(server_argv)
        }
    }

    /// The service's command, run natively (not under valgrind), for `strategy` with
    /// `extra_defers`.
    fn native_server(&self, strategy: Strategy, extra_defers: usize) -> Command {
        let (exe, leading) = self
            .server_argv
            .split_first()
            .expect("invariant: checked non-empty in Config::check");
        let mut cmd = Command::new(exe);
        cmd.args(leading)
            .args(Config::server_args(strategy, extra_defers));
        cmd
    }

    /// The service's flags for one configuration (besides the program), the same natively and
    /// under valgrind. `--work-us 0`: the work section's CPU burn is timed by the thread's CPU
    /// clock, which runs ~50× slow under valgrind, so its instruction count would depend on
    /// timing, and it touches no memory (an arithmetic loop in registers), so it adds nothing
    /// to the cache figures. `--workers 1`: under valgrind threads run one at a time anyway,
    /// and one worker keeps each request's path the same from run to run.
    pub fn server_args(strategy: Strategy, extra_defers: usize) -> Vec<String> {
        [
            "--addr",
            "127.0.0.1:0",
            "--strategy",
            strategy.name(),
            "--extra-defers",
            &extra_defers.to_string(),
            "--work-us",
            "0",
            "--workers",
            "1",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn check(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::Config(m.to_owned()));
        if self.server_argv.is_empty() {
            return bad("no command to run the service");
        }
        if self.strategies.is_empty() || self.extra_defers.is_empty() {
            return bad("no strategy or no extra-defers count to measure");
        }
        if !(1..=MAX_REQUESTS).contains(&self.requests) {
            return bad("requests must be between 1 and 1,000,000");
        }
        if self.connections == 0 || self.connections > self.requests {
            return bad("connections must be between 1 and the number of requests");
        }
        Ok(())
    }
}

/// A run's totals, as cachegrind counted them (simulated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    /// `Ir`: instructions.
    pub instructions: u64,
    /// `Dr`: data reads.
    pub data_reads: u64,
    /// `Dw`: data writes.
    pub data_writes: u64,
    /// `I1mr`: L1 instruction misses.
    pub i1_misses: u64,
    /// `D1mr`: L1 data read misses (each an LL data read).
    pub d1_read_misses: u64,
    /// `D1mw`: L1 data write misses.
    pub d1_write_misses: u64,
    /// `ILmr`: LL instruction misses.
    pub ll_instruction_misses: u64,
    /// `DLmr`: LL data read misses.
    pub ll_data_read_misses: u64,
    /// `DLmw`: LL data write misses.
    pub ll_data_write_misses: u64,
    /// `LLC-loads` as a PMU counts them: loads that reached the last level past L2. `None` in
    /// a simulation, which has no L2: there every D1 read miss is an LL load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ll_loads: Option<u64>,
}

impl From<&SimCounts> for Counts {
    fn from(c: &SimCounts) -> Counts {
        Counts {
            instructions: c.instructions,
            data_reads: c.data_reads,
            data_writes: c.data_writes,
            i1_misses: c.i1_read_misses,
            d1_read_misses: c.d1_read_misses,
            d1_write_misses: c.d1_write_misses,
            ll_instruction_misses: c.ll_instruction_read_misses,
            ll_data_read_misses: c.ll_data_read_misses,
            ll_data_write_misses: c.ll_data_write_misses,
            ll_loads: None,
        }
    }
}

/// One simulated run of the service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Requests it answered.
    pub requests: u64,
    /// cachegrind's totals for the whole process, start-up and shut-down included.
    pub counts: Counts,
    /// Wall time under valgrind, start to exit, nanoseconds.
    pub wall_time_under_valgrind_ns: u64,
}

/// Per request: the difference of the long and the short run, divided by the requests between
/// them (simulated).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct PerRequest {
    /// Instructions.
    pub instructions: f64,
    /// L1 data misses, reads and writes.
    pub d1_misses: f64,
    /// Last-level accesses: L1 misses of every kind (instruction, data read, data write).
    pub ll_accesses: f64,
    /// Last-level misses: instruction, data read and data write.
    pub ll_misses: f64,
    /// Data reads that reached the last level (`D1mr`).
    pub ll_loads: f64,
    /// Of those, misses (`DLmr`).
    pub ll_load_misses: f64,
    /// `ll_load_misses / ll_loads` (perf's `LLC-load-misses / LLC-loads`, simulated); `None`
    /// when no load reached the last level.
    pub ll_load_miss_rate: Option<f64>,
    /// `ll_misses` × the line size: memory read traffic per request, bytes.
    pub ll_miss_bytes: f64,
}

/// The per-request figures of a short run (`short`) and a long one (`long`) that answered
/// `extra` more requests: `(long − short) / extra` for every count, so start-up and shut-down,
/// the same in both, cancel. A difference can come out slightly negative for a count that does
/// not grow with requests (run-to-run noise of the start-up, a few misses per run): the counts
/// keep it as measured, the rate and the bytes, which cannot be negative, count it as zero.
/// `line_bytes` turns misses into bytes.
///
/// ```
/// use frugal_workloads::llc::{per_request, Counts};
///
/// let short = Counts { instructions: 1_000_000, d1_read_misses: 5_000, ll_data_read_misses: 900, ..Counts::default() };
/// let long = Counts { instructions: 1_500_000, d1_read_misses: 6_000, ll_data_read_misses: 950, ..Counts::default() };
/// let p = per_request(&short, &long, 100, 64);
/// assert_eq!((p.instructions, p.ll_loads, p.ll_load_misses), (5_000.0, 10.0, 0.5));
/// assert_eq!(p.ll_load_miss_rate, Some(0.05));
/// assert_eq!(p.ll_miss_bytes, 32.0);
/// ```
pub fn per_request(short: &Counts, long: &Counts, extra: u64, line_bytes: u64) -> PerRequest {
    let n = extra.max(1) as f64;
    let d = |f: fn(&Counts) -> u64| (f(long) as f64 - f(short) as f64) / n;
    let ll_loads = match (short.ll_loads, long.ll_loads) {
        (Some(a), Some(b)) => (b as f64 - a as f64) / n,
        _ => d(|c| c.d1_read_misses),
    };
    let ll_load_misses = d(|c| c.ll_data_read_misses);
    let ll_misses = d(|c| c.ll_instruction_misses + c.ll_data_read_misses + c.ll_data_write_misses);
    PerRequest {
        instructions: d(|c| c.instructions),
        d1_misses: d(|c| c.d1_read_misses + c.d1_write_misses),
        ll_accesses: d(|c| c.i1_misses + c.d1_read_misses + c.d1_write_misses),
        ll_misses,
        ll_loads,
        ll_load_misses,
        ll_load_miss_rate: (ll_loads > 0.0).then(|| ll_load_misses.max(0.0) / ll_loads),
        ll_miss_bytes: ll_misses.max(0.0) * line_bytes as f64,
    }
}

/// One configuration: a strategy with a number of extra deferred calls per request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlcRow {
    /// The cleanup strategy (`frugal serve --strategy`).
    pub strategy: String,
    /// Extra deferred calls per request (`frugal serve --extra-defers`).
    pub extra_defers: usize,
    /// The run with N requests.
    pub short: Run,
    /// The run with 2N requests.
    pub long: Run,
    /// Per request (simulated): `(long − short) / N`.
    pub per_request: PerRequest,
    /// The same service's throughput natively (not simulated), closed-loop, requests per
    /// second; `None` when that run failed (`rate_error` says why).
    pub native_rps: Option<f64>,
    /// Why there is no native rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_error: Option<String>,
    /// `per_request.ll_miss_bytes × native_rps`: the DRAM read bandwidth the simulated misses
    /// imply at that rate, bytes per second.
    pub dram_read_bytes_per_s: Option<f64>,
}

/// What the extra deferred calls changed for one strategy (simulated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// The strategy.
    pub strategy: String,
    /// The configurations compared: fewest and most extra defers.
    pub from_defers: usize,
    /// See `from_defers`.
    pub to_defers: usize,
    /// Instructions per request added.
    pub instructions_added: f64,
    /// LL misses per request added.
    pub ll_misses_added: f64,
    /// The LL load-miss rates, before and after.
    pub ll_load_miss_rate: (Option<f64>, Option<f64>),
    /// Relative rise of the LL load-miss rate (0.67 = +67 %): `None` when the first rate is
    /// missing or zero.
    pub ll_load_miss_rate_rise: Option<f64>,
    /// Implied DRAM read bandwidth before and after, bytes per second.
    pub dram_read_bytes_per_s: (Option<f64>, Option<f64>),
}

/// The result of `frugal bench llc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlcReport {
    /// True when the counts are valgrind's simulation (no PMU here), false when the PMU
    /// counted them.
    pub simulated: bool,
    /// Where the counts come from: `simulated` (valgrind) or `hardware` (the PMU).
    pub source: CounterSource,
    /// What counted: `cachegrind`, or `perf_event_open` on the service's threads.
    pub tool: String,
    /// How per-request figures are obtained.
    pub method: String,
    /// N: requests of the short run (the long run answers 2N).
    pub requests: u64,
    /// Connections the client sent them over.
    pub connections: u64,
    /// The simulated caches (`I1 …, D1 …, LL …`), or why valgrind auto-detected them.
    pub cache: String,
    /// Line size of the simulated last level, bytes.
    pub line_bytes: u64,
    /// Notes about the simulation set-up (an adjusted LL geometry, auto-detection).
    pub notes: Vec<String>,
    /// The service's flags besides `--strategy` and `--extra-defers`.
    pub server_args: Vec<String>,
    /// Seconds of each native throughput run.
    pub rate_duration_s: f64,
    /// The machine.
    pub machine: Machine,
    /// Whether the hardware PMU counts here (if it did, `perf stat` on the service would
    /// measure what this report simulates).
    pub pmu: bool,
    /// One row per strategy and extra-defers count, in the order measured.
    pub rows: Vec<LlcRow>,
    /// Wall time of the whole measurement, seconds.
    pub wall_time_s: f64,
}

impl LlcReport {
    /// The row of `strategy` with `extra_defers`.
    pub fn row(&self, strategy: &str, extra_defers: usize) -> Option<&LlcRow> {
        self.rows
            .iter()
            .find(|r| r.strategy == strategy && r.extra_defers == extra_defers)
    }

    /// For each strategy measured with two counts or more: the effect of going from the fewest
    /// to the most extra defers.
    pub fn effects(&self) -> Vec<Effect> {
        let mut strategies: Vec<&str> = Vec::new();
        for r in &self.rows {
            if !strategies.contains(&r.strategy.as_str()) {
                strategies.push(&r.strategy);
            }
        }
        strategies
            .into_iter()
            .filter_map(|s| {
                let rows: Vec<&LlcRow> = self.rows.iter().filter(|r| r.strategy == s).collect();
                let lo = rows.iter().min_by_key(|r| r.extra_defers)?;
                let hi = rows.iter().max_by_key(|r| r.extra_defers)?;
                (lo.extra_defers != hi.extra_defers).then(|| effect(lo, hi))
            })
            .collect()
    }
}

fn effect(lo: &LlcRow, hi: &LlcRow) -> Effect {
    let (a, b) = (&lo.per_request, &hi.per_request);
    Effect {
        strategy: lo.strategy.clone(),
        from_defers: lo.extra_defers,
        to_defers: hi.extra_defers,
        instructions_added: b.instructions - a.instructions,
        ll_misses_added: b.ll_misses - a.ll_misses,
        ll_load_miss_rate: (a.ll_load_miss_rate, b.ll_load_miss_rate),
        ll_load_miss_rate_rise: match (a.ll_load_miss_rate, b.ll_load_miss_rate) {
            (Some(x), Some(y)) if x > 0.0 => Some(y / x - 1.0),
            _ => None,
        },
        dram_read_bytes_per_s: (lo.dram_read_bytes_per_s, hi.dram_read_bytes_per_s),
    }
}

/// What [`LlcReport::method`] says.
const METHOD: &str = "each configuration runs twice under cachegrind, answering N and 2N \
    requests; per request = (totals of 2N − totals of N) / N, so start-up and shut-down cancel";

/// Runs the measurement: every (strategy, extra defers) pair twice under cachegrind (N and 2N
/// requests, two runs at a time), then natively for its throughput. `progress` is called before
/// each step.
pub fn run(config: &Config, progress: &mut dyn FnMut(Progress)) -> Result<LlcReport, Error> {
    config.check()?;
    let started = Instant::now();
    let pairs: Vec<(Strategy, usize)> = config
        .strategies
        .iter()
        .flat_map(|&s| config.extra_defers.iter().map(move |&d| (s, d)))
        .collect();
    let pmu = crate::sim::pmu_counts(Event::Instructions);
    let hardware = HW_EVENTS.iter().all(|&e| crate::sim::pmu_counts(e));
    let measured = if hardware {
        count_all(config, &pairs, progress)?
    } else {
        simulate_all(config, &pairs, progress)?
    };
    let mut rows = Vec::with_capacity(pairs.len());
    let steps = measured.steps;
    for (i, (&(strategy, defers), (short, long))) in pairs.iter().zip(measured.runs).enumerate() {
        progress(Progress {
            done: steps + i as u64,
            total: steps + pairs.len() as u64,
            label: format!("native throughput, {strategy} +{defers} defers"),
        });
        let per_request = per_request(
            &short.counts,
            &long.counts,
            long.requests - short.requests,
            measured.line_bytes,
        );
        let (native_rps, rate_error) = match native_rate(config, strategy, defers) {
            Ok(rps) => (Some(rps), None),
            Err(e) => (None, Some(error_chain(&e))),
        };
        rows.push(LlcRow {
            strategy: strategy.name().to_owned(),
            extra_defers: defers,
            short,
            long,
            dram_read_bytes_per_s: native_rps.map(|r| r * per_request.ll_miss_bytes),
            per_request,
            native_rps,
            rate_error,
        });
    }
    Ok(LlcReport {
        simulated: !hardware,
        source: if hardware {
            CounterSource::Hardware
        } else {
            CounterSource::Simulated
        },
        tool: measured.tool.to_owned(),
        method: measured.method.to_owned(),
        requests: config.requests,
        connections: config.connections,
        cache: measured.cache,
        line_bytes: measured.line_bytes,
        notes: measured.notes,
        server_args: Config::server_args(Strategy::Chain, 0)
            .into_iter()
            .skip(6)
            .collect(),
        rate_duration_s: config.rate_duration.as_secs_f64(),
        machine: Machine::detect(),
        pmu,
        rows,
        wall_time_s: started.elapsed().as_secs_f64(),
    })
}

/// The runs of every pair (short, long), and how they were taken.
struct Measured {
    runs: Vec<(Run, Run)>,
    /// Progress steps taken.
    steps: u64,
    tool: &'static str,
    method: &'static str,
    cache: String,
    line_bytes: u64,
    notes: Vec<String>,
}

/// Every pair with N and 2N requests under cachegrind, two runs at a time.
fn simulate_all(
    config: &Config,
    pairs: &[(Strategy, usize)],
    progress: &mut dyn FnMut(Progress),
) -> Result<Measured, Error> {
    // Without valgrind there is nothing to measure here: the error names the package.
    let sim = Simulator::new().map_err(|e| Error::Child {
        command: "valgrind (the cache simulation bench llc runs the service under)".to_owned(),
        message: e.to_string(),
    })?;
    // Jobs: each pair with N and with 2N requests; the long ones first, so that the two
    // threads finish together.
    let jobs: Vec<(Strategy, usize, u64)> = [2 * config.requests, config.requests]
        .into_iter()
        .flat_map(|n| pairs.iter().map(move |&(s, d)| (s, d, n)))
        .collect();
    let total = (jobs.len() + pairs.len()) as u64;
    // Two at a time (one valgrind per core), a pair of similar runs per step so that the
    // progress display moves between them.
    let mut runs = Vec::with_capacity(jobs.len());
    for (i, chunk) in jobs.chunks(2).enumerate() {
        let label: Vec<String> = chunk
            .iter()
            .map(|(s, d, n)| format!("{s} +{d} ({n} req)"))
            .collect();
        progress(Progress {
            done: (2 * i) as u64,
            total,
            label: format!("cachegrind: {}", label.join(", ")),
        });
        runs.extend(parallel_map(chunk, |&(strategy, defers, n)| {
            simulate(&sim, config, strategy, defers, n)
        }));
    }
    let mut runs = runs.into_iter();
    let long: Vec<Run> = runs.by_ref().take(pairs.len()).collect::<Result<_, _>>()?;
    let short: Vec<Run> = runs.collect::<Result<_, _>>()?;
    Ok(Measured {
        runs: short.into_iter().zip(long).collect(),
        steps: jobs.len() as u64,
        tool: "cachegrind",
        method: METHOD,
        cache: match sim.geometry() {
            Some(g) => format!("I1 {}, D1 {}, LL (L{}) {}", g.i1, g.d1, g.ll_level, g.ll),
            None => "valgrind's auto-detection (sysfs had no cache geometry)".to_owned(),
        },
        line_bytes: sim.geometry().map_or(64, |g| g.ll.line_bytes),
        notes: sim.notes().to_vec(),
    })
}

/// The hardware events of the PMU path.
const HW_EVENTS: [Event; 4] = [
    Event::Instructions,
    Event::L1DcacheLoadMisses,
    Event::LlcLoads,
    Event::LlcLoadMisses,
];

/// What [`LlcReport::method`] says when the PMU counted.
const HW_METHOD: &str = "the PMU counts every thread of the running service (perf_event_open \
    per thread, inherited by threads it starts) from after the connections and a warm-up of \
    N/10 requests to after N more: the window holds the N requests only";

/// Every pair natively, counted by the PMU (`perf_event_open` on the service's threads): a
/// machine with a PMU measures what a simulation can only model. Not run on the machine this
/// was written on (it has no PMU): the code path is the one `frugal_counters` takes for
/// `frugal trace`'s per-interval counters, untested here end to end.
fn count_all(
    config: &Config,
    pairs: &[(Strategy, usize)],
    progress: &mut dyn FnMut(Progress),
) -> Result<Measured, Error> {
    let total = 2 * pairs.len() as u64;
    let mut runs = Vec::with_capacity(pairs.len());
    for (i, &(strategy, defers)) in pairs.iter().enumerate() {
        progress(Progress {
            done: i as u64,
            total,
            label: format!(
                "PMU: {strategy} +{defers} defers, {} requests",
                config.requests
            ),
        });
        let window = count_hardware(config, strategy, defers)?;
        let zero = Run {
            requests: 0,
            counts: Counts {
                ll_loads: Some(0),
                ..Counts::default()
            },
            wall_time_under_valgrind_ns: 0,
        };
        runs.push((zero, window));
    }
    let geometry = frugal_counters::sim::CacheGeometry::from_sysfs().ok();
    Ok(Measured {
        runs,
        steps: pairs.len() as u64,
        tool: "perf_event_open",
        method: HW_METHOD,
        cache: geometry.map_or_else(
            || "this CPU's caches (sysfs does not describe them)".to_owned(),
            |g| {
                format!(
                    "this CPU's caches: L1d {}, LL (L{}) {}",
                    g.d1,
                    g.ll_level,
                    g.ll_reported.unwrap_or(g.ll)
                )
            },
        ),
        line_bytes: geometry.map_or(64, |g| g.ll.line_bytes),
        notes: vec![
            "LLC-loads and LLC-load-misses count demand loads only (no instruction fetches, no \
             stores): the LL-miss bytes and the implied DRAM read are those loads' lines"
                .to_owned(),
        ],
    })
}

/// One configuration natively under the PMU: the counts of N requests after a warm-up.
fn count_hardware(config: &Config, strategy: Strategy, defers: usize) -> Result<Run, Error> {
    let started = Instant::now();
    let cmd = config.native_server(strategy, defers);
    let what = format!("{strategy} +{defers} defers, counted by the PMU");
    let fail = |message: String| Error::Child {
        command: format!("frugal serve ({what})"),
        message,
    };
    let server = ServerProcess::start(cmd, ServerStderr::Keep, Duration::from_secs(15))
        .map_err(|e| fail(error_chain(&e)))?;
    let mut client =
        Client::connect(server.url().addr, config.connections, config.timeout).map_err(&fail)?;
    client
        .send((config.requests / 10).max(1))
        .map_err(|e| fail(format!("warm-up: {e}")))?;
    let tasks =
        std::fs::read_dir(format!("/proc/{}/task", server.pid())).map_err(|source| Error::Io {
            what: "cannot list the service's threads".to_owned(),
            source,
        })?;
    let mut sets = Vec::new();
    for task in tasks.filter_map(Result::ok) {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let set = CounterSet::open_task(&HW_EVENTS, tid)
            .map_err(|e| fail(format!("cannot count thread {tid}: {e}")))?;
        sets.push(set);
    }
    let read = |sets: &mut Vec<CounterSet>| -> Result<Vec<Reading>, Error> {
        sets.iter_mut()
            .map(|s| {
                s.read()
                    .map_err(|e| fail(format!("cannot read the counters: {e}")))
            })
            .collect()
    };
    let before = read(&mut sets)?;
    let answered = client.send(config.requests).map_err(&fail)?;
    let after = read(&mut sets)?;
    let totals = sum_threads(&before, &after);
    let get = |i: usize| {
        totals[i].ok_or_else(|| fail(format!("the PMU did not count {}", HW_EVENTS[i].name())))
    };
    Ok(Run {
        requests: answered,
        counts: Counts {
            instructions: get(0)?,
            d1_read_misses: get(1)?,
            ll_loads: Some(get(2)?),
            ll_data_read_misses: get(3)?,
            ..Counts::default()
        },
        wall_time_under_valgrind_ns: u64::try_from(started.elapsed().as_nanos())
            .unwrap_or(u64::MAX),
    })
}

/// Per event, the scaled counts of every thread between two readings, summed (rounded);
/// `None` for an event no thread counted.
fn sum_threads(before: &[Reading], after: &[Reading]) -> Vec<Option<u64>> {
    let mut totals: Vec<Option<f64>> = vec![None; HW_EVENTS.len()];
    for (b, a) in before.iter().zip(after) {
        for (total, value) in totals.iter_mut().zip(a.since(b)) {
            if let Some(v) = value {
                *total = Some(total.unwrap_or(0.0) + v.count);
            }
        }
    }
    totals
        .into_iter()
        .map(|t| t.map(|t| t.round() as u64))
        .collect()
}

/// How long a server has to print where it listens (valgrind reads the binary's debug
/// information first: seconds).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One simulated run: the service under cachegrind answers `requests` requests and exits on
/// SIGTERM; its totals.
fn simulate(
    sim: &Simulator,
    config: &Config,
    strategy: Strategy,
    defers: usize,
    requests: u64,
) -> Result<Run, Error> {
    let started = Instant::now();
    let what = format!("{strategy} +{defers} defers, {requests} requests under cachegrind");
    let dir = tempfile::Builder::new()
        .prefix("frugal-llc-")
        .tempdir()
        .map_err(|source| Error::Io {
            what: "cannot create a temporary directory for cachegrind's output".to_owned(),
            source,
        })?;
    let out = dir.path().join("cachegrind.out");
    let mut cmd = sim.command("cachegrind", &dir.path().join("valgrind.log"));
    cmd.arg(format!("--cachegrind-out-file={}", out.display()))
        .arg("--")
        .args(&config.server_argv)
        .args(Config::server_args(strategy, defers));
    let fail = |message: String| Error::Child {
        command: format!("frugal serve ({what})"),
        message,
    };
    let server = ServerProcess::start(cmd, ServerStderr::Keep, START_TIMEOUT.min(config.timeout))
        .map_err(|e| fail(error_chain(&e)))?;
    let remaining = config.timeout.saturating_sub(started.elapsed());
    let sent = drive(server.url().addr, config.connections, requests, remaining);
    let stderr = server.stderr();
    // SIGTERM, up to 5 s to shut down (cachegrind writes its totals on exit), then SIGKILL.
    drop(server);
    let answered = sent.map_err(|e| fail(format!("the client failed: {e}")))?;
    let text = std::fs::read_to_string(&out).map_err(|e| {
        let log = std::fs::read_to_string(dir.path().join("valgrind.log")).unwrap_or_default();
        fail(format!(
            "no cachegrind output ({e}): the service did not exit within 5 s of SIGTERM, or \
             valgrind failed; its stderr: {stderr:?}; valgrind's log ends: {:?}",
            tail(&log, 600)
        ))
    })?;
    let counts = SimCounts::parse(&text)
        .map_err(|m| fail(format!("cannot read cachegrind's output: {m}")))?;
    Ok(Run {
        requests: answered,
        counts: Counts::from(&counts),
        wall_time_under_valgrind_ns: u64::try_from(started.elapsed().as_nanos())
            .unwrap_or(u64::MAX),
    })
}

/// An error and its causes on one line (`a: b: c`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = cause.source();
    }
    s
}

/// The last `max` bytes of `s` (whole characters).
fn tail(s: &str, max: usize) -> &str {
    let s = s.trim_end();
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// The service natively, closed-loop for [`Config::rate_duration`] from 16 connections: its
/// throughput in requests per second.
fn native_rate(config: &Config, strategy: Strategy, defers: usize) -> Result<f64, Error> {
    let cmd = config.native_server(strategy, defers);
    let fail = |message: String| Error::Child {
        command: format!("frugal serve ({strategy} +{defers} defers, natively)"),
        message,
    };
    let server = ServerProcess::start(cmd, ServerStderr::Keep, Duration::from_secs(15))
        .map_err(|e| fail(error_chain(&e)))?;
    let mut load = LoadConfig::new(server.url().clone());
    load.connections = 16;
    load.duration = config.rate_duration;
    load.warmup = Duration::from_millis(200);
    load.timeout = Duration::from_secs(5);
    let report = frugal_http::load(&load, None).map_err(|e| fail(error_chain(&e)))?;
    if let Some(why) = report.failure(1.0) {
        return Err(fail(why));
    }
    Ok(report.achieved_rps)
}

/// The client: opens `connections` keep-alive connections to `addr`, then sends `requests`
/// `GET /` over them in turn, one in flight at a time, reading each answer whole (200 with a
/// `Content-Length` body). Returns the requests answered; fails on any other answer, a closed
/// connection, or when `limit` has passed (each read and write is bounded by what is left).
pub fn drive(
    addr: SocketAddr,
    connections: u64,
    requests: u64,
    limit: Duration,
) -> Result<u64, String> {
    Client::connect(addr, connections, limit)?.send(requests)
}

/// [`drive`]'s client, whose connections stay open between batches of requests (the PMU path
/// sends a warm-up, then the counted requests).
struct Client {
    conns: Vec<BufReader<TcpStream>>,
    request: String,
    /// Requests sent so far: the next goes over connection `sent % conns.len()`.
    sent: u64,
    deadline: Instant,
    limit: Duration,
}

impl Client {
    /// Opens the connections, all before the first request.
    fn connect(addr: SocketAddr, connections: u64, limit: Duration) -> Result<Client, String> {
        let mut client = Client {
            conns: Vec::new(),
            request: format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
            sent: 0,
            deadline: Instant::now() + limit,
            limit,
        };
        for _ in 0..connections.max(1) {
            let stream = TcpStream::connect_timeout(&addr, client.left()?)
                .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            let _ = stream.set_nodelay(true);
            client.conns.push(BufReader::new(stream));
        }
        Ok(client)
    }

    /// Time left before the limit; an error once it passed.
    fn left(&self) -> Result<Duration, String> {
        self.deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("the client's time limit ({:?}) passed", self.limit))
    }

    /// Sends `requests` requests, one at a time, the connections in turn.
    fn send(&mut self, requests: u64) -> Result<u64, String> {
        let mut line = String::new();
        let mut body = Vec::new();
        for _ in 0..requests {
            let i = self.sent;
            let t = self.left()?;
            let n = self.conns.len() as u64;
            let conn = &mut self.conns[(i % n) as usize];
            conn.get_ref()
                .set_write_timeout(Some(t))
                .and_then(|()| conn.get_ref().set_read_timeout(Some(t)))
                .map_err(|e| format!("cannot set a socket timeout: {e}"))?;
            conn.get_mut()
                .write_all(self.request.as_bytes())
                .map_err(|e| format!("request {i}: cannot send: {e}"))?;
            let mut status = None;
            let mut length = None;
            loop {
                line.clear();
                let n = conn
                    .read_line(&mut line)
                    .map_err(|e| format!("request {i}: cannot read the answer: {e}"))?;
                if n == 0 {
                    return Err(format!("request {i}: the server closed the connection"));
                }
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if status.is_none() {
                    status = l.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok());
                } else if let Some((name, value)) = l.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse::<usize>().ok();
                    }
                }
            }
            if status != Some(200) {
                return Err(format!("request {i}: answered {status:?}, not 200"));
            }
            let length = length.ok_or_else(|| format!("request {i}: no Content-Length"))?;
            body.resize(length, 0);
            conn.read_exact(&mut body)
                .map_err(|e| format!("request {i}: cannot read the body: {e}"))?;
            self.sent += 1;
        }
        Ok(requests)
    }
}

/// `12,345` with no decimals, `0.40` below 10 (a per-request count).
fn count(x: f64) -> String {
    if x.abs() < 10.0 {
        units::fixed(x, 2)
    } else {
        units::thousands_f(x)
    }
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| units::MISSING.to_owned(), |r| units::percent(r, 3))
}

fn bandwidth(b: Option<f64>) -> String {
    b.map_or_else(
        || units::MISSING.to_owned(),
        |b| format!("{}/s", units::bytes(b)),
    )
}

impl Render for LlcReport {
    const SCHEMA: &'static str = "frugal-bench-llc";
    const VERSION: u32 = 1;

    fn document(&self) -> Document {
        let mut d = Document::new(format!(
            "frugal bench llc: last-level cache misses per request, 0 vs N deferred calls{}",
            if self.simulated { " (SIMULATED)" } else { "" }
        ));
        if self.simulated {
            d.line(format!(
                "frugal serve under {} ({}), N = {} and 2N requests over {} keep-alive \
                 connection(s); per request = (2N run − N run) / N",
                self.tool, self.cache, self.requests, self.connections
            ));
        } else {
            d.line(format!(
                "frugal serve counted by the PMU ({}, {}), N = {} requests over {} keep-alive \
                 connection(s) after a warm-up; per request = the window's counts / N",
                self.tool, self.cache, self.requests, self.connections
            ));
        }
        let mut t = Table::new([
            ("strategy", Align::Left),
            ("extra defers", Align::Right),
            ("instructions/req", Align::Right),
            ("D1 misses/req", Align::Right),
            ("LL misses/req", Align::Right),
            ("LL load-miss rate", Align::Right),
            ("LL-miss bytes/req", Align::Right),
            ("native req/s", Align::Right),
            ("implied DRAM read", Align::Right),
        ]);
        for r in &self.rows {
            let p = &r.per_request;
            t.row([
                r.strategy.clone(),
                r.extra_defers.to_string(),
                count(p.instructions),
                count(p.d1_misses),
                count(p.ll_misses),
                rate(p.ll_load_miss_rate),
                units::fixed(p.ll_miss_bytes, 1),
                r.native_rps
                    .map_or_else(|| units::MISSING.to_owned(), units::thousands_f),
                bandwidth(r.dram_read_bytes_per_s),
            ]);
        }
        d.table(t);
        let effects = self.effects();
        if !effects.is_empty() {
            d.heading("What the extra deferred calls changed (simulated)");
            let mut t = Table::new([
                ("strategy", Align::Left),
                ("defers", Align::Left),
                ("+instructions/req", Align::Right),
                ("+LL misses/req", Align::Right),
                ("LL load-miss rate", Align::Left),
                ("implied DRAM read", Align::Left),
            ]);
            for e in &effects {
                t.row([
                    e.strategy.clone(),
                    format!("{} → {}", e.from_defers, e.to_defers),
                    count(e.instructions_added),
                    count(e.ll_misses_added),
                    format!(
                        "{} → {}{}",
                        rate(e.ll_load_miss_rate.0),
                        rate(e.ll_load_miss_rate.1),
                        e.ll_load_miss_rate_rise
                            .map_or_else(String::new, |x| format!(" ({:+.0}%)", x * 100.0))
                    ),
                    format!(
                        "{} → {}",
                        bandwidth(e.dram_read_bytes_per_s.0),
                        bandwidth(e.dram_read_bytes_per_s.1)
                    ),
                ]);
            }
            d.table(t);
        }
        for r in &self.rows {
            if let Some(e) = &r.rate_error {
                d.toned(
                    format!(
                        "{} +{}: no native rate, so no bandwidth: {e}",
                        r.strategy, r.extra_defers
                    ),
                    Tone::Bad,
                );
            }
        }
        if self.simulated {
            d.toned(
                "every count is SIMULATED by valgrind's cache model, not measured on this CPU",
                Tone::Warn,
            );
            d.note(
                "LL load-miss rate = DLmr / D1mr (last-level data-read misses / data reads \
                 that missed D1 and so reached the last level): the simulator's counterpart of \
                 perf's LLC-load-misses / LLC-loads; it has no L2, so its denominator is larger \
                 than the hardware's and the rate lower for the same misses",
            );
            d.note(format!(
                "LL-miss bytes = (instruction + data read + data write LL misses) × {} B lines; \
                 implied DRAM read = that × the service's native closed-loop rate ({} s from 16 \
                 connections, same flags: {}); a per-request miss count below zero is \
                 run-to-run noise of the start-up (the two runs' difference) and counts as zero \
                 there",
                self.line_bytes,
                self.rate_duration_s,
                self.server_args.join(" ")
            ));
            d.note(
                "a simulation sees one process: not the kernel's network stack, not other \
                 processes sharing the cache; a service whose steady working set fits the \
                 simulated LL shows few LL misses per request whatever its cleanup does",
            );
            d.note(
                "no PMU here: the hardware's LLC miss rate and the DRAM bandwidth (uncore \
                 counters) are not measurable on this machine",
            );
        } else {
            d.note(format!(
                "LL load-miss rate = LLC-load-misses / LLC-loads (hardware); D1 misses = \
                 L1-dcache-load-misses; LL-miss bytes = LLC-load-misses × {} B lines; implied \
                 DRAM read = that × the service's native closed-loop rate ({} s from 16 \
                 connections, same flags: {}); the memory controller's own bandwidth counters \
                 (uncore) are not read",
                self.line_bytes,
                self.rate_duration_s,
                self.server_args.join(" ")
            ));
        }
        for n in &self.notes {
            d.note(n);
        }
        d
    }

    fn csv_table(&self) -> Option<Table> {
        let mut t = Table::numeric([
            "strategy",
            "extra_defers",
            "requests_short",
            "requests_long",
            "instructions_per_request",
            "d1_misses_per_request",
            "ll_accesses_per_request",
            "ll_misses_per_request",
            "ll_loads_per_request",
            "ll_load_misses_per_request",
            "ll_load_miss_rate",
            "ll_miss_bytes_per_request",
            "native_rps",
            "dram_read_bytes_per_s",
            "simulated",
        ]);
        let opt = |x: Option<f64>| x.map_or_else(String::new, |x| x.to_string());
        for r in &self.rows {
            let p = &r.per_request;
            t.row([
                r.strategy.clone(),
                r.extra_defers.to_string(),
                r.short.requests.to_string(),
                r.long.requests.to_string(),
                p.instructions.to_string(),
                p.d1_misses.to_string(),
                p.ll_accesses.to_string(),
                p.ll_misses.to_string(),
                p.ll_loads.to_string(),
                p.ll_load_misses.to_string(),
                opt(p.ll_load_miss_rate),
                p.ll_miss_bytes.to_string(),
                opt(r.native_rps),
                opt(r.dram_read_bytes_per_s),
                self.simulated.to_string(),
            ]);
        }
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(ir: u64, d1mr: u64, dlmr: u64, ilmr: u64, dlmw: u64) -> Counts {
        Counts {
            instructions: ir,
            d1_read_misses: d1mr,
            ll_data_read_misses: dlmr,
            ll_instruction_misses: ilmr,
            ll_data_write_misses: dlmw,
            i1_misses: 7,
            d1_write_misses: 3,
            ..Counts::default()
        }
    }

    #[test]
    fn per_request_is_the_difference_over_the_extra_requests() {
        // Start-up: 1,000,000 instructions, 4,000 D1 read misses, 700 LL read misses; each
        // request: 30,000 instructions, 20 D1 read misses, 1 LL read miss, 0.5 LL write miss.
        let short = counts(
            1_000_000 + 200 * 30_000,
            4_000 + 200 * 20,
            700 + 200,
            50,
            100,
        );
        let long = counts(
            1_000_000 + 400 * 30_000,
            4_000 + 400 * 20,
            700 + 400,
            50,
            200,
        );
        let p = per_request(&short, &long, 200, 64);
        assert_eq!(p.instructions, 30_000.0);
        assert_eq!((p.ll_loads, p.ll_load_misses), (20.0, 1.0));
        assert_eq!(p.ll_load_miss_rate, Some(0.05));
        assert_eq!(p.ll_misses, 1.5);
        assert_eq!(p.ll_miss_bytes, 96.0);
        // The counts that do not grow with requests cancel.
        assert_eq!(p.ll_accesses, 20.0);
        assert_eq!(p.d1_misses, 20.0);
    }

    #[test]
    fn noise_is_kept_and_no_loads_give_no_rate() {
        let short = counts(1_000, 10, 5, 0, 0);
        let long = counts(1_000, 10, 4, 0, 0);
        let p = per_request(&short, &long, 10, 64);
        assert_eq!(p.ll_load_misses, -0.1);
        assert_eq!((p.ll_load_miss_rate, p.ll_miss_bytes), (None, 0.0));
        let more_loads = Counts {
            d1_read_misses: 30,
            ..long
        };
        let p = per_request(&short, &more_loads, 10, 64);
        assert_eq!((p.ll_loads, p.ll_load_misses), (2.0, -0.1));
        assert_eq!(
            p.ll_load_miss_rate,
            Some(0.0),
            "noise below zero is no miss"
        );
        // Zero extra requests are treated as one, not a division by zero.
        assert_eq!(per_request(&short, &long, 0, 64).ll_load_misses, -1.0);
    }

    #[test]
    fn hardware_counts_use_the_pmus_llc_loads() {
        // The PMU path: a zero start and the window's counts; LLC-loads (past L2) are the
        // rate's denominator, not the L1 misses.
        let zero = Counts {
            ll_loads: Some(0),
            ..Counts::default()
        };
        let window = Counts {
            instructions: 2_000_000,
            d1_read_misses: 40_000,
            ll_loads: Some(10_000),
            ll_data_read_misses: 1_000,
            ..Counts::default()
        };
        let p = per_request(&zero, &window, 100, 64);
        assert_eq!(
            (p.ll_loads, p.ll_load_misses, p.d1_misses),
            (100.0, 10.0, 400.0)
        );
        assert_eq!(p.ll_load_miss_rate, Some(0.1));
        assert_eq!(p.ll_miss_bytes, 640.0);
    }

    #[test]
    fn thread_counts_are_summed_per_event() {
        let raw = |count| {
            Some(frugal_counters::RawValue {
                count,
                time_enabled_ns: count,
                time_running_ns: count,
            })
        };
        let reading = |values: Vec<Option<frugal_counters::RawValue>>| Reading { values };
        let before = [
            reading(vec![raw(10), raw(5), None, raw(1)]),
            reading(vec![raw(100), raw(0), None, None]),
        ];
        let after = [
            reading(vec![raw(30), raw(6), None, raw(4)]),
            reading(vec![raw(150), raw(0), None, None]),
        ];
        // Event 1 ran on the first thread only (the second never ran: time_running 0).
        assert_eq!(
            sum_threads(&before, &after),
            vec![Some(70), Some(1), None, Some(3)]
        );
    }

    fn row(strategy: &str, defers: usize, rate: Option<f64>, ir: f64) -> LlcRow {
        let run = Run {
            requests: 1,
            counts: Counts::default(),
            wall_time_under_valgrind_ns: 0,
        };
        LlcRow {
            strategy: strategy.to_owned(),
            extra_defers: defers,
            short: run.clone(),
            long: run,
            per_request: PerRequest {
                instructions: ir,
                ll_load_miss_rate: rate,
                ll_misses: 2.0,
                ll_miss_bytes: 128.0,
                ..PerRequest::default()
            },
            native_rps: Some(1000.0),
            rate_error: None,
            dram_read_bytes_per_s: Some(128_000.0),
        }
    }

    #[test]
    fn effects_compare_fewest_and_most_defers_per_strategy() {
        let report = LlcReport {
            simulated: true,
            source: CounterSource::Simulated,
            tool: "cachegrind".into(),
            method: METHOD.into(),
            requests: 1,
            connections: 1,
            cache: String::new(),
            line_bytes: 64,
            notes: vec![],
            server_args: vec![],
            rate_duration_s: 1.0,
            machine: Machine::detect(),
            pmu: false,
            rows: vec![
                row("chain", 0, Some(0.08), 30_000.0),
                row("chain", 10, Some(0.12), 31_000.0),
                row("manual", 0, Some(0.0), 29_000.0),
                row("manual", 10, Some(0.01), 29_500.0),
                row("guard", 0, Some(0.1), 1.0),
            ],
            wall_time_s: 0.0,
        };
        let e = report.effects();
        assert_eq!(e.len(), 2, "guard has one row: no effect");
        assert_eq!((e[0].strategy.as_str(), e[0].to_defers), ("chain", 10));
        assert_eq!(e[0].instructions_added, 1000.0);
        assert!((e[0].ll_load_miss_rate_rise.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(
            e[1].ll_load_miss_rate_rise, None,
            "a zero base has no ratio"
        );
        let text = report.document().to_text(&frugal_output::Style::plain());
        assert!(
            text.contains("SIMULATED") && text.contains("+50%"),
            "{text}"
        );
        let csv = report.csv_table().unwrap().to_csv();
        assert!(csv.lines().nth(1).unwrap().starts_with("chain,0,"), "{csv}");
        let json = serde_json::to_string(&report).unwrap();
        let back: LlcReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn the_client_counts_answers_and_refuses_errors() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // A server that answers two requests on one connection, then a 503.
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s);
            for status in ["200 OK", "200 OK", "503 Service Unavailable"] {
                let mut line = String::new();
                while r.read_line(&mut line).unwrap() > 0 && !line.ends_with("\r\n\r\n") {}
                r.get_mut()
                    .write_all(
                        format!("HTTP/1.1 {status}\r\ncontent-length: 3\r\n\r\nabc").as_bytes(),
                    )
                    .unwrap();
            }
        });
        let err = drive(addr, 1, 3, Duration::from_secs(30)).unwrap_err();
        assert!(err.contains("request 2: answered Some(503)"), "{err}");
        server.join().unwrap();
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        std::thread::spawn(move || drop(closed.accept()));
        let err = drive(addr, 1, 1, Duration::from_secs(30)).unwrap_err();
        assert!(
            err.contains("closed") || err.contains("cannot read"),
            "{err}"
        );
    }
}
