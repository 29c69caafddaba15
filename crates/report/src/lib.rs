//! `frugal report`: the article's whole argument, measured on this machine, on one page.
//!
//! The article's thesis is a chain — how a cleanup is implemented → CPU, cache and memory per
//! request → how many vCPUs a service needs → which instance type → dollars. The experiments
//! (crates `frugal-workloads`, `frugal-rightsize`) measure each link; this crate joins them:
//!
//! - [`FullReport`]: every raw result of one run (`report.json`, versioned: [`SCHEMA_VERSION`]);
//! - [`bridge`]: cleanup strategy → CPU per request → vCPUs at a rate → instance type → $;
//! - [`ledger`]: the article's numeric claims not already judged by the experiments, each with a
//!   measurement (or the reason there is none), a rule, a verdict and the command to repeat it;
//! - [`render_html`]: the page, a pure function of the report (so `--from` re-renders it
//!   exactly); [`render_text`]: the terminal summary.
//!
//! The binary runs the steps (it owns the processes: the service, the simulated children);
//! everything here is pure.
//!
//! ```
//! use frugal_report::bridge::{compute, Demand};
//! use frugal_rightsize::{Arch, Catalog};
//!
//! // 2,000 req/s at 250 µs of CPU each: 0.5 cores, 0.6 vCPUs under the 83% ceiling.
//! let demand = Demand {
//!     strategy: "chain".into(),
//!     cpu_us_per_request: 250.0,
//!     cpu_us_range: (240.0, 260.0),
//!     memory_bytes: 64e6,
//! };
//! let bridge = compute(&[demand], 2_000.0, 1.0 / 1.2, &Catalog::embedded(), Arch::X86_64);
//! let row = &bridge.rows[0];
//! assert!((row.demand_cores - 0.5).abs() < 1e-9);
//! assert_eq!(row.instances, 1);
//! assert!(row.usd_per_month > 0.0);
//! ```
#![forbid(unsafe_code)]

pub mod bridge;
mod html;
pub mod ledger;
mod model;
pub mod plots;
pub mod service;
mod stats;
mod text;

pub use html::{esc, render_html, SECTIONS};
pub use model::{FleetTrace, FullReport, MachineFacts, Step, StepStatus, SCHEMA, SCHEMA_VERSION};
pub use text::render_text;
