//! The experiments of frugal, each returning a typed, serializable report.
//!
//! - [`defer_bench`]: what a deferred cleanup costs, strategy by strategy (and Go's `defer` when a
//!   Go toolchain is present), with the article's claims judged in [`claims`];
//! - [`tasks`]: resident and virtual memory per tokio task, OS thread and goroutine;
//! - [`chapter1`]: the size of a static Go HTTP server binary and the cost of a context switch;
//! - [`llc`]: the service's simulated last-level cache misses per request, 0 vs 10 deferred
//!   calls per request (article 4.2).
//!
//! The HTTP service, its load generator and `bench http` are the crate `frugal-http` (it alone
//! needs tokio's network stack and hyper); [`chapter1`] drives the Go server with its load
//! generator.
//!
//! # The experiments and their JSON reports
//!
//! | command | engine | report (serde) | schema |
//! |---|---|---|---|
//! | `frugal bench defer [--quick] [--json FILE]` | [`defer_bench::run`] | [`defer_bench::DeferReport`] | [schema](defer_bench#json-schema) |
//! | `frugal bench defer --claims` | [`defer_bench::ledger::claims`], [`locality::ledger::claims`] | [`claims::Claim`] (the report's `claims`) | [schema](claims#json-schema) |
//! | `frugal bench tasks [-n N] [--json FILE]` | [`tasks::run`] | [`tasks::TasksReport`] | [schema](tasks#json-schema) |
//! | `frugal bench io [--qd 64] [--direct] [--compare-fio] [--json FILE]` | [`io::run`], [`io::run_fio`] | [`io::IoReport`] | the types' field docs (`schema_version` 1) |
//! | `frugal bench locality [--quick] [--sizes LIST] [--json FILE]` | [`locality::run`] | [`locality::LocalityReport`] | [schema](locality#json-schema) |
//! | `frugal bench llc [--quick] [--requests N] [--defers 0,10]` | [`llc::run`] | [`llc::LlcReport`] | the types' field docs (`frugal-bench-llc` 1) |
//!
//! The defer and tasks reports carry `schema_version`; counters are `null` when not measured, never zero,
//! and simulated counters say `"source": "simulated"`. The Go side of `bench defer` lives in
//! `crates/workloads/go/` (embedded in the binary and built with the `go` on `PATH`).
#![deny(unsafe_code)]

pub mod chapter1;
pub mod claims;
pub mod defer_bench;
mod error;
mod go;
pub mod io;
pub mod llc;
pub mod locality;
pub mod sim;
pub mod tasks;

pub use error::Error;
