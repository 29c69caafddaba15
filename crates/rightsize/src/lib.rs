//! Right-sizing: utilization data → a cheaper instance type, with risk, savings and a replay.
//!
//! The article's rule (mean CPU < 35% → one vCPU step down → check SLA ≥ 99.5%) is unsafe:
//! halving the vCPUs doubles utilization, and the peaks pass 100%. This crate sizes the way AWS
//! Compute Optimizer does — a high percentile (P99.5) of 5-minute CPU maxima plus 20% headroom,
//! memory peak plus 15% — projects that demand onto *every* cheaper type in a catalog, adds an SLA
//! screen from a stated queueing model when request rate and latency are known, grades the
//! performance risk 0–4, and prices the savings. It also applies the article's rule and says where
//! the two disagree and why. [`verify()`] replays a recommendation with the real service.
//!
//! The core ([`analyze`]) is pure and deterministic; reading files ([`read_file`]), Prometheus
//! ([`pushdown::fetch`], where the engine computes the statistics, or [`prometheus::fetch`], which
//! pulls every sample) and the replay ([`verify()`], explained in [`mod@verify`]) are at the
//! edges. A [`Report`] renders itself through the workspace's output layer
//! (`impl frugal_output::Render`: terminal table, Markdown, CSV; JSON is its serde form) and as
//! a self-contained HTML page with plots ([`Report::to_html`]).
//!
//! # The model in short
//!
//! - **Data sufficiency**: at least 30 hours between first and last sample and 100 five-minute
//!   windows, else the finding is "insufficient data" and there is no recommendation.
//! - **CPU**: the P99.5 of the 5-minute maxima, in cores, times the performance-factor ratio of
//!   the two families, must stay under the ceiling `1 / (1 + 20%)` = 83% of the candidate's vCPUs.
//! - **Memory**: peak + 15% must fit.
//! - **SLA screen** (when `requests_per_second` and `latency_p99_ms` are present): an M/M/c queue
//!   per instance, see [`queueing`]; the fraction of requests within the latency target must
//!   reach 99.5%.
//! - **Risk 0–4** per dimension ([`utilization_risk`], [`sla_risk`]); overall = the maximum; a
//!   type fits when every risk is ≤ 2. The recommendation is the cheapest fitting type of the same
//!   architecture (any, with [`Config::allow_arch_change`]).
//! - **Savings**: price difference × 730 h (month) or 8,760 h (year) × the mean instance count.
//!
//! # Example
//!
//! ```
//! use frugal_rightsize::{analyze, parse_csv, Catalog, Config, Finding, SeriesSet};
//!
//! // 36 hours of 5-minute samples: 0.5 to 0.9 of a core on a 4-vCPU m7i.xlarge, 3 GiB.
//! let mut csv = String::from("timestamp,workload,instance_type,cpu_cores,memory_bytes\n");
//! for i in 0..(36 * 12) {
//!     let cpu = 0.5 + 0.4 * ((i % 12) as f64 / 11.0);
//!     csv += &format!("{},api,m7i.xlarge,{cpu},3221225472\n", 1_714_521_600 + i * 300);
//! }
//! let mut set = SeriesSet::new();
//! parse_csv("example.csv", csv.as_bytes(), &mut set)?;
//!
//! let report = analyze(&set.into_series(), &Catalog::embedded(), &Config::default());
//! let rec = &report.recommendations[0];
//! assert_eq!(rec.finding, Finding::OverProvisioned);
//! // 0.9 cores + 20% fits in one vCPU... but m7i has no medium size and Graviton is another
//! // architecture (excluded by default), so the cheapest fit is c7i.large (2 vCPU, 4 GiB).
//! assert_eq!(rec.recommended.as_ref().unwrap().instance_type, "c7i.large");
//! assert!(rec.monthly_savings_usd > 0.0);
//! // The article's rule steps one size down in the same family: m7i.large. We disagree.
//! assert_eq!(rec.article.as_ref().unwrap().instance_type, "m7i.large");
//! assert!(rec.disagreement.is_some());
//! # Ok::<(), frugal_rightsize::Error>(())
//! ```
#![deny(unsafe_code)]

mod catalog;
pub mod demo;
mod error;
mod input;
mod model;
mod outcome;
pub mod prometheus;
pub mod pushdown;
pub mod queueing;
mod render;
mod report;
mod series;
mod sys;
pub mod verify;

pub use catalog::{
    Arch, Catalog, CatalogOverride, Family, InstanceType, OverrideInstance, HOURS_PER_MONTH,
    HOURS_PER_YEAR,
};
pub use error::{Error, Result};
pub use input::{parse_csv, parse_json, parse_time, read_file, read_files};
pub use model::{
    article_rule, impossible_peaks, impossible_usage, percentile, project, recommend, sla_risk,
    usage, utilization_risk, ArticleVerdict, Config, Constraint, Finding, Policy, Projection,
    Recommendation, ServiceModel, SlaEstimate, Usage, IMPOSSIBLE_TOLERANCE, MODEL_STATEMENT,
};
pub use render::{SCHEMA, SCHEMA_VERSION};
pub use report::{analyze, Order, PriceInfo, Report, Summary};
pub use series::{Sample, Series, SeriesSet, Window, GAP_MS, WINDOW_MS};
pub use verify::{
    cgroup_info, detect_cgroup, fraction_within, plan_cpus, plan_replay, scale_cpus, verify,
    Cgroup, Measured, Verdict, Verification, VerifyOptions,
};
