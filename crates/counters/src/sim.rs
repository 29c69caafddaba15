//! Simulated counts: valgrind's cache and branch simulators, for machines without a PMU.
//!
//! Every figure here comes from a simulation of the machine's cache geometry (read from sysfs,
//! because valgrind's own detection is wrong on some VMs) and of a simple branch predictor — not
//! from the hardware. Reports must say so.
//!
//! Two entry points:
//!
//! - [`Simulator::run_command`]: a whole command under `cachegrind` (`frugal stat --sim`, whose
//!   report, [`SimReport`], adds the derived ratios and renders itself).
//! - [`Simulator::run_function`] / [`simulate_current_exe_function`]: re-run a program (usually
//!   the current executable) under `callgrind`, collecting only while one named function runs,
//!   so a benchmark can report simulated counts per operation:
//!
//! ```no_run
//! use frugal_counters::sim;
//!
//! #[inline(never)]
//! fn bench_region(ops: u64) -> u64 {
//!     (0..ops).map(std::hint::black_box).sum()
//! }
//!
//! const OPS: u64 = 10_000;
//! if sim::is_sim_child() {
//!     // The re-executed copy: run the region and exit.
//!     bench_region(OPS);
//!     std::process::exit(0);
//! }
//! let run = sim::simulate_current_exe_function(&[], "*bench_region*")?;
//! let per_op = run.counts.per_op(OPS);
//! println!("{:.1} simulated instructions per op", per_op.instructions);
//! # Ok::<(), frugal_counters::Error>(())
//! ```

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::Error;

mod report;
pub use report::{SimMetrics, SimReport};

/// Environment variable that overrides the valgrind binary (default: `valgrind` on `PATH`).
pub const VALGRIND_ENV: &str = "FRUGAL_VALGRIND";

/// Set to `1` in the environment of a program re-executed by [`Simulator::run_function`].
pub const SIM_CHILD_ENV: &str = "FRUGAL_SIM_CHILD";

/// True in a program started by [`Simulator::run_function`] (see [`SIM_CHILD_ENV`]).
pub fn is_sim_child() -> bool {
    std::env::var_os(SIM_CHILD_ENV).is_some_and(|v| v == "1")
}

/// The default sysfs directory describing CPU 0's caches.
pub const SYSFS_CACHE_DIR: &str = "/sys/devices/system/cpu/cpu0/cache";

/// Penalty, in cycles, charged per first-level (I1/D1) miss in [`SimCounts::estimated_cycles`].
pub const L1_MISS_CYCLES: u64 = 10;
/// Penalty, in cycles, charged per last-level miss in [`SimCounts::estimated_cycles`].
pub const LL_MISS_CYCLES: u64 = 100;
/// Penalty, in cycles, charged per mispredicted branch in [`SimCounts::estimated_cycles`].
pub const MISPREDICT_CYCLES: u64 = 15;

/// The formula of [`SimCounts::estimated_cycles`], for reports.
pub const CYCLE_FORMULA: &str = "Ir + 10*(I1mr+D1mr+D1mw) + 100*(ILmr+DLmr+DLmw) + 15*(Bcm+Bim)";

/// One cache's geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CacheLevel {
    /// Capacity in bytes.
    pub size_bytes: u64,
    /// Associativity.
    pub ways: u64,
    /// Line size in bytes.
    pub line_bytes: u64,
}

impl CacheLevel {
    /// valgrind's `<size>,<associativity>,<line size>`.
    fn valgrind_spec(&self) -> String {
        format!("{},{},{}", self.size_bytes, self.ways, self.line_bytes)
    }

    /// Number of sets: size / (ways * line size), 0 for a degenerate geometry.
    pub fn sets(&self) -> u64 {
        self.ways
            .checked_mul(self.line_bytes)
            .and_then(|set_bytes| self.size_bytes.checked_div(set_bytes))
            .unwrap_or(0)
    }

    /// The geometry valgrind can simulate for this cache as its last level.
    ///
    /// valgrind's simulator needs a power-of-two number of sets and rejects `--LL=` values
    /// without one, but many server parts have none (35.75 MiB 11-way, 54 MiB 12-way, …). This
    /// is what valgrind itself does to an auto-detected last-level cache (`maybe_tweak_LLc` in
    /// `cachegrind/cg-arch.c`): round the set count down to a power of two, raise the
    /// associativity by the same factor (rounded to nearest) and recompute the size, so the
    /// capacity stays about the same and the line size never changes. Returns `self` unchanged
    /// when the set count is already a power of two and divides the size exactly.
    ///
    /// ```
    /// use frugal_counters::sim::CacheLevel;
    ///
    /// // 35.75 MiB, 11-way, 64 B lines: 53,248 sets.
    /// let xeon = CacheLevel { size_bytes: 36_608 * 1024, ways: 11, line_bytes: 64 };
    /// let sim = xeon.adjusted_for_valgrind();
    /// assert_eq!((sim.size_bytes, sim.ways, sim.line_bytes), (36 << 20, 18, 64));
    /// assert_eq!(sim.sets(), 32_768);
    /// ```
    pub fn adjusted_for_valgrind(&self) -> CacheLevel {
        let sets = self.sets();
        if sets == 0 {
            // Degenerate (zero fields, or smaller than one set): valgrind gives up too.
            return *self;
        }
        let (sets, ways) = if sets.is_power_of_two() {
            (sets, self.ways)
        } else {
            let new_sets = 1u64 << sets.ilog2();
            let factor = sets as f64 / new_sets as f64;
            // valgrind: new_assoc = (UInt)(0.5 + factor * old_assoc).
            let ways = (0.5 + factor * self.ways as f64) as u64;
            (new_sets, ways)
        };
        CacheLevel {
            size_bytes: self.line_bytes * ways * sets,
            ways,
            line_bytes: self.line_bytes,
        }
    }
}

/// `36 MiB 18-way 64 B lines`; fractional sizes keep their fraction (`35.75 MiB`).
impl std::fmt::Display for CacheLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.size_bytes;
        if b >= 1 << 20 {
            write!(f, "{} MiB", b as f64 / (1u64 << 20) as f64)?;
        } else if b >= 1 << 10 {
            write!(f, "{} KiB", b as f64 / (1u64 << 10) as f64)?;
        } else {
            write!(f, "{b} B")?;
        }
        write!(f, " {}-way {} B lines", self.ways, self.line_bytes)
    }
}

/// The simulated cache hierarchy: first-level instruction and data caches and the last level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CacheGeometry {
    /// Level-1 instruction cache.
    pub i1: CacheLevel,
    /// Level-1 data cache.
    pub d1: CacheLevel,
    /// The last-level cache found (highest `level`), as simulated: adjusted with
    /// [`CacheLevel::adjusted_for_valgrind`] when sysfs reports a geometry valgrind cannot
    /// simulate (then [`ll_reported`](Self::ll_reported) holds what sysfs said).
    pub ll: CacheLevel,
    /// The level of the last-level cache (e.g. 3).
    pub ll_level: u32,
    /// The last-level cache as sysfs reported it, when [`ll`](Self::ll) had to be adjusted;
    /// `None` when it is simulated as reported.
    pub ll_reported: Option<CacheLevel>,
}

impl CacheGeometry {
    /// Reads [`SYSFS_CACHE_DIR`].
    pub fn from_sysfs() -> Result<CacheGeometry, Error> {
        CacheGeometry::from_dir(Path::new(SYSFS_CACHE_DIR))
    }

    /// Reads a sysfs-style cache directory (`index*/{level,type,size,ways_of_associativity,
    /// coherency_line_size}`). The last level is adjusted as valgrind requires (see
    /// [`CacheGeometry::ll_adjustment_note`]).
    pub fn from_dir(dir: &Path) -> Result<CacheGeometry, Error> {
        let err = |message: String| Error::CacheGeometry {
            path: dir.to_owned(),
            message,
        };
        let entries = std::fs::read_dir(dir).map_err(|e| err(e.to_string()))?;
        let mut i1 = None;
        let mut d1 = None;
        let mut ll: Option<(u32, CacheLevel)> = None;
        for entry in entries {
            let path = entry.map_err(|e| err(e.to_string()))?.path();
            let is_index = path
                .file_name()
                .and_then(OsStr::to_str)
                .is_some_and(|n| n.starts_with("index"));
            if !is_index {
                continue;
            }
            let read = |name: &str| {
                std::fs::read_to_string(path.join(name))
                    .map(|s| s.trim().to_owned())
                    .map_err(|e| err(format!("{}/{name}: {e}", path.display())))
            };
            let level: u32 = read("level")?
                .parse()
                .map_err(|e| err(format!("{}/level: {e}", path.display())))?;
            let kind = read("type")?;
            let cache = CacheLevel {
                size_bytes: parse_size(&read("size")?)
                    .ok_or_else(|| err(format!("{}/size is malformed", path.display())))?,
                ways: read("ways_of_associativity")?
                    .parse()
                    .map_err(|e| err(format!("{}/ways_of_associativity: {e}", path.display())))?,
                line_bytes: read("coherency_line_size")?
                    .parse()
                    .map_err(|e| err(format!("{}/coherency_line_size: {e}", path.display())))?,
            };
            match (level, kind.as_str()) {
                (1, "Instruction") => i1 = Some(cache),
                (1, "Data") => d1 = Some(cache),
                _ => {}
            }
            if kind != "Instruction" && ll.is_none_or(|(l, _)| level > l) {
                ll = Some((level, cache));
            }
        }
        let i1 = i1.ok_or_else(|| err("no level-1 instruction cache listed".to_owned()))?;
        let d1 = d1.ok_or_else(|| err("no level-1 data cache listed".to_owned()))?;
        let (ll_level, reported) =
            ll.ok_or_else(|| err("no data or unified cache listed".to_owned()))?;
        let ll = reported.adjusted_for_valgrind();
        Ok(CacheGeometry {
            i1,
            d1,
            ll,
            ll_level,
            ll_reported: (ll != reported).then_some(reported),
        })
    }

    /// When the last level had to be adjusted for valgrind: a note saying from what to what,
    /// for reports.
    pub fn ll_adjustment_note(&self) -> Option<String> {
        let reported = self.ll_reported?;
        Some(format!(
            "note: sysfs reports the last-level cache (L{}) as {reported} ({} sets); valgrind \
             can only simulate a power-of-two set count, so it is simulated as {} ({} sets), \
             the adjustment valgrind's own auto-detection makes (more ways, same line size, \
             about the same capacity)",
            self.ll_level,
            reported.sets(),
            self.ll,
            self.ll.sets()
        ))
    }

    /// `--I1=… --D1=… --LL=…` for valgrind.
    pub fn valgrind_args(&self) -> Vec<String> {
        vec![
            format!("--I1={}", self.i1.valgrind_spec()),
            format!("--D1={}", self.d1.valgrind_spec()),
            format!("--LL={}", self.ll.valgrind_spec()),
        ]
    }
}

/// sysfs sizes: `32K`, `512K`, `32768K`, `8M`, or bytes.
fn parse_size(s: &str) -> Option<u64> {
    let (digits, mult) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1024),
        'M' => (&s[..s.len() - 1], 1024 * 1024),
        'G' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// Simulated event counts, as valgrind names them. All figures are simulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct SimCounts {
    /// `Ir`: instructions executed.
    pub instructions: u64,
    /// `I1mr`: level-1 instruction cache read misses.
    pub i1_read_misses: u64,
    /// `ILmr`: last-level cache instruction read misses.
    pub ll_instruction_read_misses: u64,
    /// `Dr`: data reads (loads).
    pub data_reads: u64,
    /// `D1mr`: level-1 data cache read misses.
    pub d1_read_misses: u64,
    /// `DLmr`: last-level cache data read misses.
    pub ll_data_read_misses: u64,
    /// `Dw`: data writes (stores).
    pub data_writes: u64,
    /// `D1mw`: level-1 data cache write misses.
    pub d1_write_misses: u64,
    /// `DLmw`: last-level cache data write misses.
    pub ll_data_write_misses: u64,
    /// `Bc`: conditional branches executed.
    pub conditional_branches: u64,
    /// `Bcm`: conditional branches mispredicted.
    pub conditional_mispredicts: u64,
    /// `Bi`: indirect branches executed.
    pub indirect_branches: u64,
    /// `Bim`: indirect branches mispredicted.
    pub indirect_mispredicts: u64,
}

/// [`SimCounts`] divided by a number of operations.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct SimPerOp {
    /// Instructions per operation.
    pub instructions: f64,
    /// Level-1 misses (I1 + D1 read + D1 write) per operation.
    pub l1_misses: f64,
    /// Last-level misses (instruction + data read + data write) per operation.
    pub ll_misses: f64,
    /// D1 read misses per operation.
    pub d1_read_misses: f64,
    /// D1 write misses per operation.
    pub d1_write_misses: f64,
    /// Branches (conditional + indirect) per operation.
    pub branches: f64,
    /// Mispredicted branches (conditional + indirect) per operation.
    pub branch_mispredicts: f64,
    /// Estimated cycles per operation ([`CYCLE_FORMULA`]).
    pub estimated_cycles: f64,
}

impl SimCounts {
    /// I1 + D1 read + D1 write misses.
    pub fn l1_misses(&self) -> u64 {
        self.i1_read_misses + self.d1_read_misses + self.d1_write_misses
    }

    /// Last-level instruction + data read + data write misses.
    pub fn ll_misses(&self) -> u64 {
        self.ll_instruction_read_misses + self.ll_data_read_misses + self.ll_data_write_misses
    }

    /// Conditional + indirect branches.
    pub fn branches(&self) -> u64 {
        self.conditional_branches + self.indirect_branches
    }

    /// Conditional + indirect mispredictions.
    pub fn branch_mispredicts(&self) -> u64 {
        self.conditional_mispredicts + self.indirect_mispredicts
    }

    /// Estimated cycles: [`CYCLE_FORMULA`] — cachegrind's classic estimate (one cycle per
    /// instruction, 10 per L1 miss, 100 per last-level miss) plus 15 per branch misprediction, a
    /// typical pipeline-flush cost on current x86 cores. A rough model, not a measurement: it
    /// ignores overlap of misses, superscalar issue and prefetching.
    pub fn estimated_cycles(&self) -> u64 {
        self.instructions
            + L1_MISS_CYCLES * self.l1_misses()
            + LL_MISS_CYCLES * self.ll_misses()
            + MISPREDICT_CYCLES * self.branch_mispredicts()
    }

    /// Everything divided by `ops` (0 is treated as 1).
    pub fn per_op(&self, ops: u64) -> SimPerOp {
        let n = ops.max(1) as f64;
        SimPerOp {
            instructions: self.instructions as f64 / n,
            l1_misses: self.l1_misses() as f64 / n,
            ll_misses: self.ll_misses() as f64 / n,
            d1_read_misses: self.d1_read_misses as f64 / n,
            d1_write_misses: self.d1_write_misses as f64 / n,
            branches: self.branches() as f64 / n,
            branch_mispredicts: self.branch_mispredicts() as f64 / n,
            estimated_cycles: self.estimated_cycles() as f64 / n,
        }
    }

    /// Parses a cachegrind or callgrind output file's `events:` line and its `summary:` (or,
    /// failing that, `totals:`) line. Never panics.
    ///
    /// ```
    /// let out = "events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw Bc Bcm Bi Bim\n\
    ///            summary: 100 1 1 40 2 1 20 1 1 10 3 2 1\n";
    /// let c = frugal_counters::sim::SimCounts::parse(out).unwrap();
    /// assert_eq!((c.instructions, c.conditional_mispredicts, c.indirect_mispredicts), (100, 3, 1));
    /// assert_eq!(c.estimated_cycles(), 100 + 10 * 4 + 100 * 3 + 15 * 4);
    /// ```
    pub fn parse(output: &str) -> Result<SimCounts, String> {
        let mut names: Option<Vec<&str>> = None;
        let mut summary = None;
        let mut totals = None;
        for line in output.lines() {
            if let Some(rest) = line.strip_prefix("events:") {
                names = Some(rest.split_whitespace().collect());
            } else if let Some(rest) = line.strip_prefix("summary:") {
                summary = Some(rest);
            } else if let Some(rest) = line.strip_prefix("totals:") {
                totals = Some(rest);
            }
        }
        let names = names.ok_or("no `events:` line")?;
        let values = summary
            .or(totals)
            .ok_or("no `summary:` or `totals:` line")?;
        let mut map = HashMap::new();
        for (i, v) in values.split_whitespace().enumerate() {
            let name = names
                .get(i)
                .ok_or("more values than event names in the summary")?;
            let v: u64 = v
                .parse()
                .map_err(|e| format!("summary value `{v}` for {name}: {e}"))?;
            map.insert(*name, v);
        }
        // Trailing zero counts may be omitted in callgrind's compressed format.
        let get = |name: &str| -> Result<u64, String> {
            if names.contains(&name) {
                Ok(map.get(name).copied().unwrap_or(0))
            } else {
                Err(format!(
                    "event {name} missing: was valgrind run with --cache-sim=yes --branch-sim=yes?"
                ))
            }
        };
        Ok(SimCounts {
            instructions: get("Ir")?,
            i1_read_misses: get("I1mr")?,
            ll_instruction_read_misses: get("ILmr")?,
            data_reads: get("Dr")?,
            d1_read_misses: get("D1mr")?,
            ll_data_read_misses: get("DLmr")?,
            data_writes: get("Dw")?,
            d1_write_misses: get("D1mw")?,
            ll_data_write_misses: get("DLmw")?,
            conditional_branches: get("Bc")?,
            conditional_mispredicts: get("Bcm")?,
            indirect_branches: get("Bi")?,
            indirect_mispredicts: get("Bim")?,
        })
    }
}

/// One simulated run of a command.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SimRun {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// The simulated counts (whole command, or the collected function only).
    pub counts: SimCounts,
    /// Estimated cycles ([`CYCLE_FORMULA`]).
    pub estimated_cycles: u64,
    /// The formula used for `estimated_cycles`.
    pub cycle_formula: &'static str,
    /// The simulated cache geometry; `None` when valgrind auto-detected it (sysfs had none).
    #[serde(rename = "cache_geometry")]
    pub geometry: Option<CacheGeometry>,
    /// Notes and warnings about the set-up ([`Simulator::notes`]); show them with the figures.
    pub notes: Vec<String>,
    /// The tool: `cachegrind` or `callgrind`.
    pub tool: &'static str,
    /// The command's exit status as a shell reports it.
    pub exit_code: i32,
    /// Wall time of the simulated run, in nanoseconds (slowed down ~50x by valgrind).
    #[serde(rename = "wall_time_under_valgrind_ns")]
    pub wall_time_ns: u64,
    /// The command's standard output, when captured ([`Simulator::run_function`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    /// Always true: every figure comes from valgrind's simulation, not from hardware.
    pub simulated: bool,
}

/// Runs programs under valgrind with cache and branch simulation.
#[derive(Debug, Clone)]
pub struct Simulator {
    valgrind: PathBuf,
    geometry: Option<CacheGeometry>,
    notes: Vec<String>,
}

impl Simulator {
    /// Finds valgrind ([`VALGRIND_ENV`] or `valgrind` on `PATH`) and reads the cache geometry
    /// from sysfs ([`CacheGeometry::from_sysfs`]).
    ///
    /// When sysfs cannot tell the geometry (no cache directory, as in some containers and
    /// VMs), valgrind's own auto-detection is used instead and [`notes`](Self::notes) carries a
    /// warning saying so; when the last level had to be adjusted, a note says how.
    pub fn new() -> Result<Simulator, Error> {
        let valgrind = match std::env::var_os(VALGRIND_ENV) {
            Some(path) => {
                let path = PathBuf::from(path);
                if !path.is_file() {
                    return Err(Error::ValgrindMissing { path });
                }
                path
            }
            None => find_in_path(OsStr::new("valgrind")).ok_or(Error::ValgrindMissing {
                path: PathBuf::from("valgrind (searched PATH)"),
            })?,
        };
        let geometry = match CacheGeometry::from_sysfs() {
            Ok(geometry) => Some(geometry),
            Err(e) => {
                return Ok(Simulator {
                    valgrind,
                    geometry: None,
                    notes: vec![format!(
                        "warning: {e}; letting valgrind auto-detect the cache geometry \
                         instead, which is wrong on some VMs: check the geometry in valgrind's \
                         output before trusting cache-miss figures"
                    )],
                })
            }
        };
        Ok(Simulator::with(valgrind, geometry))
    }

    /// Uses the given valgrind binary and geometry (`None`: valgrind's auto-detection).
    pub fn with(valgrind: PathBuf, geometry: Option<CacheGeometry>) -> Simulator {
        let notes = match &geometry {
            Some(g) => g.ll_adjustment_note().into_iter().collect(),
            None => vec![
                "warning: no cache geometry given; valgrind auto-detects it, which is wrong on \
                 some VMs"
                    .to_owned(),
            ],
        };
        Simulator {
            valgrind,
            geometry,
            notes,
        }
    }

    /// The simulated geometry; `None` when valgrind auto-detects it.
    pub fn geometry(&self) -> Option<&CacheGeometry> {
        self.geometry.as_ref()
    }

    /// Notes and warnings about the simulation set-up (an adjusted last-level geometry, or
    /// valgrind's auto-detection in use), for the user to see; copied into every [`SimRun`].
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The `--I1=… --D1=… --LL=…` arguments passed to valgrind (none with auto-detection).
    pub fn valgrind_cache_args(&self) -> Vec<String> {
        self.geometry
            .as_ref()
            .map(CacheGeometry::valgrind_args)
            .unwrap_or_default()
    }

    /// Runs `program args...` under cachegrind (stdin/stdout/stderr inherited; valgrind's own log
    /// goes to a temporary file) and parses its output file.
    pub fn run_command(&self, program: &OsStr, args: &[OsString]) -> Result<SimRun, Error> {
        let resolved = resolve_program(program)?;
        let dir = temp_dir()?;
        let out = dir.path().join("cachegrind.out");
        let mut cmd = self.valgrind_command("cachegrind", &dir);
        cmd.arg(format!("--cachegrind-out-file={}", out.display()));
        cmd.arg("--").arg(&resolved).args(args);
        self.finish(cmd, "cachegrind", program, args, &out, dir, false)
    }

    /// Runs `exe args...` under callgrind, collecting only while a function matching
    /// `function` (callgrind's `--toggle-collect` pattern, `*` and `?` wildcards, matched on
    /// demangled names such as `my_crate::bench::region`) runs, including what it calls.
    ///
    /// The program gets [`SIM_CHILD_ENV`]`=1` so it can tell it is the simulated copy; its
    /// stdout is captured into [`SimRun::stdout`] (stderr is inherited). The function must be
    /// `#[inline(never)]`, or there is nothing to match. Fails if the function never ran.
    pub fn run_function(
        &self,
        exe: &Path,
        args: &[OsString],
        function: &str,
    ) -> Result<SimRun, Error> {
        let dir = temp_dir()?;
        let out = dir.path().join("callgrind.out");
        let mut cmd = self.valgrind_command("callgrind", &dir);
        cmd.arg(format!("--callgrind-out-file={}", out.display()))
            .arg("--collect-atstart=no")
            .arg(format!("--toggle-collect={function}"))
            .arg("--")
            .arg(exe)
            .args(args)
            .env(SIM_CHILD_ENV, "1")
            .stdout(Stdio::piped());
        let run = self.finish(cmd, "callgrind", exe.as_os_str(), args, &out, dir, true)?;
        if run.counts.instructions == 0 {
            return Err(Error::Valgrind {
                message: format!(
                    "no instructions collected in a function matching `{function}`: is it \
                     #[inline(never)], called, and is the pattern right (try `*name*`)?"
                ),
                log: None,
            });
        }
        Ok(run)
    }

    fn valgrind_command(&self, tool: &str, dir: &tempfile::TempDir) -> Command {
        self.command(tool, &dir.path().join("valgrind.log"))
    }

    /// The valgrind command line every run of this simulator uses — `valgrind --tool=TOOL
    /// --cache-sim=yes --branch-sim=yes --I1=… --D1=… --LL=… --log-file=LOG` — for a program
    /// the caller starts and stops itself (a server driven from outside, which
    /// [`run_command`](Self::run_command) cannot do: it waits for the program to exit). The
    /// caller adds the tool's output file (`--cachegrind-out-file=…`), `--` and the program,
    /// and reads the output with [`SimCounts::parse`] once the program exited. Spawning it
    /// fails with `NotFound` only when the valgrind binary vanished since [`Simulator::new`].
    pub fn command(&self, tool: &str, log_file: &Path) -> Command {
        let mut cmd = Command::new(&self.valgrind);
        cmd.arg(format!("--tool={tool}"))
            .arg("--cache-sim=yes")
            .arg("--branch-sim=yes")
            .args(self.valgrind_cache_args())
            .arg(format!("--log-file={}", log_file.display()));
        cmd
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        mut cmd: Command,
        tool: &'static str,
        program: &OsStr,
        args: &[OsString],
        out: &Path,
        dir: tempfile::TempDir,
        capture_stdout: bool,
    ) -> Result<SimRun, Error> {
        let start = Instant::now();
        let (status, stdout) = if capture_stdout {
            let output = cmd.output().map_err(|source| self.spawn_error(source))?;
            (
                output.status,
                Some(String::from_utf8_lossy(&output.stdout).into_owned()),
            )
        } else {
            let status = cmd.status().map_err(|source| self.spawn_error(source))?;
            (status, None)
        };
        let wall_time_ns = start.elapsed().as_nanos() as u64;
        let exit_code = shell_code(status);
        let text = match std::fs::read_to_string(out) {
            Ok(text) => text,
            Err(e) => {
                return Err(Error::Valgrind {
                    message: format!(
                        "no output file {} (exit status {exit_code}): {e}",
                        out.display()
                    ),
                    log: Some(keep_log(dir)),
                })
            }
        };
        let counts = match SimCounts::parse(&text) {
            Ok(counts) => counts,
            Err(message) => {
                return Err(Error::Valgrind {
                    message: format!("cannot parse {}: {message}", out.display()),
                    log: Some(keep_log(dir)),
                })
            }
        };
        Ok(SimRun {
            command: std::iter::once(program)
                .chain(args.iter().map(|a| a.as_os_str()))
                .map(|s| s.to_string_lossy().into_owned())
                .collect(),
            estimated_cycles: counts.estimated_cycles(),
            cycle_formula: CYCLE_FORMULA,
            counts,
            geometry: self.geometry,
            notes: self.notes.clone(),
            tool,
            exit_code,
            wall_time_ns,
            stdout,
            simulated: true,
        })
    }

    fn spawn_error(&self, source: std::io::Error) -> Error {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::ValgrindMissing {
                path: self.valgrind.clone(),
            }
        } else {
            Error::Io {
                context: format!("running {}", self.valgrind.display()),
                source,
            }
        }
    }
}

/// Re-runs the current executable with `args` under callgrind, collecting only inside
/// `function` (see [`Simulator::run_function`]).
pub fn simulate_current_exe_function(args: &[OsString], function: &str) -> Result<SimRun, Error> {
    let exe = std::env::current_exe().map_err(|source| Error::Io {
        context: "finding the current executable".to_owned(),
        source,
    })?;
    Simulator::new()?.run_function(&exe, args, function)
}

fn temp_dir() -> Result<tempfile::TempDir, Error> {
    tempfile::Builder::new()
        .prefix("frugal-sim-")
        .tempdir()
        .map_err(|source| Error::Io {
            context: "creating a temporary directory for valgrind's output".to_owned(),
            source,
        })
}

/// Keeps the temporary directory (so the user can read valgrind's log) and returns the log path.
fn keep_log(dir: tempfile::TempDir) -> PathBuf {
    dir.keep().join("valgrind.log")
}

fn shell_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    }
}

/// Finds `name` on `PATH` (or checks it as a path when it contains `/`), as a shell would:
/// `NotFound` when absent, `PermissionDenied` when present but not executable.
pub(crate) fn resolve_program(program: &OsStr) -> Result<PathBuf, Error> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let err = |kind: std::io::ErrorKind| Error::Spawn {
        program: program.to_string_lossy().into_owned(),
        source: std::io::Error::from(kind),
    };
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.as_bytes().contains(&b'/') {
        let path = PathBuf::from(program);
        return if executable(&path) {
            Ok(path)
        } else if path.exists() {
            Err(err(std::io::ErrorKind::PermissionDenied))
        } else {
            Err(err(std::io::ErrorKind::NotFound))
        };
    }
    match find_in_path(program) {
        Some(path) => Ok(path),
        None => Err(err(std::io::ErrorKind::NotFound)),
    }
}

fn find_in_path(name: &OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32K"), Some(32 * 1024));
        assert_eq!(parse_size("32768K"), Some(32 * 1024 * 1024));
        assert_eq!(parse_size("8M"), Some(8 * 1024 * 1024));
        assert_eq!(parse_size("64"), Some(64));
        assert_eq!(parse_size("K"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn geometry_from_fake_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        for (i, (level, kind, size, ways)) in [
            (1, "Data", "48K", 12),
            (1, "Instruction", "32K", 8),
            (2, "Unified", "2048K", 16),
            (3, "Unified", "36864K", 12),
        ]
        .into_iter()
        .enumerate()
        {
            let d = dir.path().join(format!("index{i}"));
            std::fs::create_dir(&d).unwrap();
            for (name, value) in [
                ("level", level.to_string()),
                ("type", kind.to_owned()),
                ("size", size.to_owned()),
                ("ways_of_associativity", ways.to_string()),
                ("coherency_line_size", "64".to_owned()),
            ] {
                std::fs::write(d.join(name), format!("{value}\n")).unwrap();
            }
        }
        let g = CacheGeometry::from_dir(dir.path()).unwrap();
        assert_eq!(g.ll_level, 3);
        // 36 MiB 12-way has 49,152 sets: simulated as 18-way, 32,768 sets, like valgrind does.
        assert_eq!(
            g.valgrind_args(),
            ["--I1=32768,8,64", "--D1=49152,12,64", "--LL=37748736,18,64"]
        );
        let note = g.ll_adjustment_note().unwrap();
        assert!(
            note.contains("36 MiB 12-way 64 B lines (49152 sets)")
                && note.contains("as 36 MiB 18-way 64 B lines (32768 sets)"),
            "{note}"
        );
    }

    #[test]
    fn missing_sysfs_dir_is_an_error_and_the_simulator_falls_back() {
        let err = CacheGeometry::from_dir(Path::new("/nonexistent/cache")).unwrap_err();
        assert!(matches!(err, Error::CacheGeometry { .. }), "{err:?}");
        let sim = Simulator::with(PathBuf::from("valgrind"), None);
        assert!(sim.valgrind_cache_args().is_empty());
        assert!(sim.notes()[0].contains("auto-detect"), "{:?}", sim.notes());
    }

    fn level(size_bytes: u64, ways: u64) -> CacheLevel {
        CacheLevel {
            size_bytes,
            ways,
            line_bytes: 64,
        }
    }

    #[test]
    fn ll_adjusted_like_valgrinds_maybe_tweak_llc() {
        const MIB: u64 = 1 << 20;
        // (reported size, ways) -> (simulated size, ways), worked through valgrind's formula.
        for ((size, ways), (new_size, new_ways)) in [
            // 35.75 MiB 11-way: 53,248 sets -> 32,768; 11 * 1.625 = 17.875 -> 18 ways.
            ((35 * MIB + 3 * MIB / 4, 11), (36 * MIB, 18)),
            // 54 MiB 12-way: 73,728 sets -> 65,536; 12 * 1.125 = 13.5 -> 14 ways.
            ((54 * MIB, 12), (56 * MIB, 14)),
            // 12 MiB 16-way (the Core i7 case in valgrind's comment): 24 ways.
            ((12 * MIB, 16), (12 * MIB, 24)),
            // 5 MiB 48-way (the AMD case): 1706.67 sets -> 1024; 48 * 1.666 = 80 ways.
            ((5 * MIB, 48), (5 * MIB, 80)),
            // Already a power of two: unchanged.
            ((32 * MIB, 16), (32 * MIB, 16)),
            ((8 * MIB, 16), (8 * MIB, 16)),
        ] {
            let got = level(size, ways).adjusted_for_valgrind();
            assert_eq!(
                (got.size_bytes, got.ways, got.line_bytes),
                (new_size, new_ways, 64),
                "{size} B {ways}-way"
            );
            assert!(got.sets().is_power_of_two(), "{got:?}");
            assert_eq!(got.size_bytes % (got.ways * got.line_bytes), 0);
        }
        // A size that does not divide between its sets is trimmed to whole sets.
        let ragged = level(64 * 1024 + 100, 16).adjusted_for_valgrind();
        assert_eq!((ragged.size_bytes, ragged.ways), (64 * 1024, 16));
        // Degenerate geometries are left alone (valgrind leaves them too, then rejects them).
        assert_eq!(level(0, 16).adjusted_for_valgrind(), level(0, 16));
        assert_eq!(level(512, 16).adjusted_for_valgrind(), level(512, 16));
    }

    #[test]
    fn display_keeps_fractions() {
        assert_eq!(
            level(36_608 * 1024, 11).to_string(),
            "35.75 MiB 11-way 64 B lines"
        );
        assert_eq!(level(48 * 1024, 12).to_string(), "48 KiB 12-way 64 B lines");
    }

    #[test]
    fn parse_rejects_garbage_without_panicking() {
        for input in [
            "",
            "events: Ir\n",
            "summary: 1 2\n",
            "events: Ir\nsummary: x\n",
        ] {
            assert!(SimCounts::parse(input).is_err(), "{input:?}");
        }
        let missing_branches = "events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw\nsummary: 1\n";
        assert!(SimCounts::parse(missing_branches)
            .unwrap_err()
            .contains("--branch-sim=yes"));
    }
}
