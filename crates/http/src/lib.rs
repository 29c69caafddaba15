//! Service at scale (article 4.1): an HTTP/1.1 service whose per-request cleanup strategy is
//! selectable, and a load generator that holds 10,000 connections.
//!
//! - [`serve`] runs the service: each request takes a buffer from a pool, waits (within its
//!   deadline) for a lease from a bounded pool — think database connection —, optionally holds
//!   it through a simulated slow downstream call, burns a configurable amount of CPU (measured
//!   on the thread's CPU clock, so that fewer CPUs really mean less capacity), answers with a
//!   configurable body size and releases everything
//!   through the chosen [`Strategy`]. `/metrics` answers in the Prometheus text format.
//! - [`load()`] drives any HTTP/1.1 server with N keep-alive connections, all opened before the
//!   clock starts, either closed-loop (maximum throughput) or at a constant rate with
//!   coordinated-omission correction, and returns a serializable [`LoadReport`].
//! - [`bench()`] starts the service once per strategy as a separate process and drives it with
//!   [`load()`], closed-loop and at a constant rate, reading the server's CPU time and memory.
//! - [`ServerProcess`] is that separate process: `frugal serve` started from a command the caller
//!   prepared, ready once it prints `listening on http://...`, stopped (SIGTERM, then SIGKILL) on
//!   drop. `bench()` and `frugal rightsize --verify` both start the service with it.
//!
//! ```no_run
//! use std::time::Duration;
//! use frugal_http::{load, LoadConfig};
//!
//! let mut config = LoadConfig::new("http://127.0.0.1:8080/".parse()?);
//! config.connections = 100;
//! config.duration = Duration::from_secs(5);
//! config.rate = Some(10_000.0); // constant rate; `None` is closed-loop
//! let report = load(&config, None)?;
//! println!("p99 = {} ns", report.latency_corrected_ns.unwrap().p99);
//! # Ok::<(), frugal_http::Error>(())
//! ```
//!
//! # Reports
//!
//! Each report renders itself (`frugal_output::Render`: a terminal table, Markdown, CSV with raw
//! numbers) and serializes with serde; the CLI wraps the JSON in `{"schema", "version", ...}`.
//!
//! | command | engine | report | schema |
//! |---|---|---|---|
//! | `frugal load URL` | [`load()`] | [`LoadReport`] | `frugal-load` 2 |
//! | `frugal load merge FILE...` | [`hdrlog::merge`] | [`hdrlog::MergedReport`] | `frugal-load-merge` 3 |
//! | `frugal bench http` | [`bench()`] | [`BenchReport`] | `frugal-bench-http` 1 |
//!
//! Every latency distribution in them is one [`LatencySummary`] (nanoseconds: `count`, `p50`,
//! `p90`, `p99`, `p999`, `max`, `mean`); every spread over repeated runs is a
//! `frugal_output::Summary` (`n`, `min`, `p25`, `median`, `p75`, `max`, `mean`, `stddev`,
//! `samples`).
//!
//! # Where things are
//!
//! - the service: [`serve`] in `server.rs` (accept loop, routing, cancellation) over `state.rs`
//!   (settings, pools, the work section), `release.rs` (each [`Strategy`]'s release code),
//!   `resources.rs` (the pools), `metrics.rs` (counters, Prometheus text), `peer.rs` (noticing
//!   a client that went away);
//! - the load generator: [`load()`] in `loadgen.rs` over `client.rs` (one connection),
//!   `pacer.rs` (sub-millisecond sends), `latency.rs`, `load_report.rs` and [`hdrlog`];
//! - the benchmark: [`bench()`] in `bench.rs`, reading [`procfs`], over `child.rs`
//!   ([`ServerProcess`]).
//!
//! Imports go one way: `server` → `release` → `state` → `metrics`/`resources` → `strategy`;
//! `bench` → `child` (its [`Url`]) → `loadgen` → `client`/`pacer`/`hdrlog` →
//! `load_report`/`latency`.

#![forbid(unsafe_code)]

mod bench;
mod child;
mod client;
mod error;
pub mod hdrlog;
mod latency;
mod load_report;
mod loadgen;
mod metrics;
mod pacer;
mod peer;
pub mod procfs;
mod release;
mod resources;
mod server;
mod state;
mod strategy;

pub use bench::{bench, BenchConfig, BenchReport, BenchRow, BenchSummary, Measure, Noise};
pub use child::{ServerProcess, ServerStderr};
pub use error::Error;
pub use latency::LatencySummary;
pub use load_report::{ErrorCounts, LoadMode, LoadReport};
pub use loadgen::{load, raise_nofile_limit, LoadConfig, Progress, Url};
pub use server::serve;
pub use state::ServeConfig;
pub use strategy::Strategy;
