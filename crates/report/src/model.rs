//! The report's data: every raw result of the run, and what the page derives from them.
//!
//! [`FullReport`] is what `report.json` holds (`schema: "frugal-report"`, [`SCHEMA_VERSION`]).
//! The page is a pure function of it ([`crate::render_html`]), so `frugal report --from DIR`
//! renders exactly the page the run rendered.

use serde::{Deserialize, Serialize};

use frugal_rightsize::Report as RightsizeReport;
use frugal_workloads::defer_bench::DeferReport;
use frugal_workloads::io::IoReport;
use frugal_workloads::llc::LlcReport;
use frugal_workloads::locality::LocalityReport;
use frugal_workloads::tasks::TasksReport;

use crate::bridge::Bridge;
use crate::ledger::{Chapter1, LedgerRow, StepDown};
use crate::service::ServiceSummary;

/// Version of the `report.json` layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// The name in `report.json`'s `schema` field.
pub const SCHEMA: &str = "frugal-report";

/// Everything one `frugal report` run measured, and what it derived.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FullReport {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The frugal version that measured.
    pub frugal_version: String,
    /// When the run started (RFC 3339, UTC).
    pub generated_at: String,
    /// Wall time of the whole run, seconds.
    pub wall_time_s: f64,
    /// The quick profile (shorter runs, fewer samples)?
    pub quick: bool,
    /// The request rate the bridge sizes for, requests per second.
    pub rps: f64,
    /// Where that rate comes from.
    pub rps_source: String,
    /// The machine and what could be measured on it.
    pub machine: MachineFacts,
    /// Each step of the run: ran, skipped (with the reason) or failed (with the error).
    pub steps: Vec<Step>,
    /// `frugal bench defer`.
    pub defer: Option<DeferReport>,
    /// `frugal bench tasks`.
    pub tasks: Option<TasksReport>,
    /// `frugal bench io`.
    pub io: Option<IoReport>,
    /// `frugal bench http`, summarised per strategy.
    pub service: Option<ServiceSummary>,
    /// `frugal bench http`, the raw report as it was written (its own JSON layout).
    pub service_raw: Option<serde_json::Value>,
    /// `frugal bench locality` (the quick report runs only the working set past the last-level
    /// cache that the chapter-3 claims need).
    pub locality: Option<LocalityReport>,
    /// `frugal rightsize` on the embedded (synthetic) sample fleet.
    pub rightsize: Option<RightsizeReport>,
    /// `frugal bench llc`: the service's simulated last-level misses per request, 0 vs 10
    /// extra deferred calls (absent from reports written before it existed).
    #[serde(default)]
    pub llc: Option<LlcReport>,
    /// Hourly CPU maxima of each sample workload, for the fleet plots (the rightsize report
    /// does not serialize them).
    pub fleet_traces: Vec<FleetTrace>,
    /// Cleanup strategy → CPU per request → vCPUs → instance type → dollars.
    pub bridge: Option<Bridge>,
    /// Chapter 1's Go binary size and context-switch cost.
    pub chapter1: Option<Chapter1>,
    /// The article's step-down matrix (4.3) through both rules.
    pub step_down: Vec<StepDown>,
    /// Every numeric claim of the article beside our measurement, with a verdict and the
    /// command that reproduces it.
    pub claims: Vec<LedgerRow>,
}

/// The machine the numbers come from, and what it can measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineFacts {
    /// CPU model name.
    pub cpu: String,
    /// Online CPUs.
    pub cores: u32,
    /// Kernel release.
    pub kernel: String,
    /// Physical memory, bytes.
    pub memory_bytes: u64,
    /// Cache levels from sysfs, e.g. `L1d 48 KiB (12-way, 64 B lines)`.
    pub caches: Vec<String>,
    /// Whether the hardware PMU counts (cycles, instructions, cache misses).
    pub pmu: bool,
    /// What the PMU probe said.
    pub pmu_detail: String,
    /// valgrind's version, when installed (the simulated counters).
    pub valgrind: Option<String>,
    /// `go version`, when a Go toolchain is on `PATH`.
    pub go: Option<String>,
    /// Transparent huge pages mode (`/sys/kernel/mm/transparent_hugepage/enabled`).
    pub thp: Option<String>,
    /// NUMA nodes online.
    pub numa_nodes: Option<u32>,
}

/// What happened to one step of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    /// It ran and produced its result.
    Ran,
    /// It could not run here; `reason` says why.
    Skipped,
    /// It ran and failed; `reason` holds the error.
    Failed,
}

impl StepStatus {
    /// Text for tables.
    pub fn label(self) -> &'static str {
        match self {
            StepStatus::Ran => "ran",
            StepStatus::Skipped => "skipped",
            StepStatus::Failed => "FAILED",
        }
    }
}

/// One step of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Stable identifier (`defer`, `tasks`, `io`, `http`, `locality`, `rightsize`, ...).
    pub id: String,
    /// What it is, in words.
    pub title: String,
    /// The command that runs the same experiment alone.
    pub command: String,
    /// Outcome.
    pub status: StepStatus,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Why it was skipped, or the error it failed with.
    pub reason: Option<String>,
}

/// One workload's hourly CPU maxima.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetTrace {
    /// Workload name.
    pub workload: String,
    /// (Unix ms, CPU utilization of the current type as a fraction).
    pub points: Vec<(i64, f32)>,
}
