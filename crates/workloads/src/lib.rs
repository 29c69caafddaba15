//! workloads (under construction).
//!
//! # The defer experiments and their JSON reports
//!
//! | command | engine | report (serde) | schema |
//! |---|---|---|---|
//! | `frugal bench defer [--quick] [--json FILE]` | [`defer_bench::run`] | [`defer_bench::DeferReport`] | [schema](defer_bench#json-schema) |
//! | `frugal bench defer --claims` | [`claims::ledger`] | [`claims::Claim`] (the report's `claims`) | [schema](claims#json-schema) |
//! | `frugal bench tasks [-n N] [--json FILE]` | [`tasks::run`] | [`tasks::TasksReport`] | [schema](tasks#json-schema) |
//! | `frugal serve`, `frugal load URL [--json FILE]`, `frugal bench http [--quick] [--json FILE]` | [`http::serve`], [`http::load()`], [`http::bench()`] | [`http::LoadReport`], [`http::BenchReport`] | the types' field docs; no `schema_version` yet (the service's own counters: `GET /metrics`, Prometheus text) |
//!
//! Every report carries `schema_version`; counters are `null` when not measured, never zero,
//! and simulated counters say `"source": "simulated"`. The Go side of `bench defer` lives in
//! `crates/workloads/go/` (embedded in the binary and built with the `go` on `PATH`).
#![forbid(unsafe_code)]

pub mod claims;
pub mod defer_bench;
pub mod http;
pub mod tasks;
