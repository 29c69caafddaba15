//! Hardware and software performance counters — `perf stat` in-process and for a child — with a
//! simulated fallback for machines without a PMU.
//!
//! Four ways in:
//!
//! 1. [`Measurement`]: count events around a closure, per operation, with the cost of reading the
//!    counters measured and subtracted.
//! 2. [`stat_command`]: count a whole command like `perf stat -- CMD` (inherited by its threads
//!    and children, counting from `exec`), optionally repeated.
//! 3. [`bpftrace`]: count USDT probes (`frugal-defer`'s) and uprobes (Go's runtime defer
//!    functions) of a process or command with bpftrace, per interval and in total.
//! 4. [`sim`]: run a command, or one function of the current program, under valgrind's cache and
//!    branch simulators when the machine has no hardware counters.
//!
//! The reports of `frugal stat` ([`StatReport`], [`sim::SimReport`]) and `frugal trace`
//! ([`trace::TraceReport`]) live here and render themselves through `frugal-output`'s
//! [`Render`](frugal_output::Render): perf stat's layout, CSV, Markdown, and their `serde` form
//! as JSON.
//!
//! Every counter is an `Option`-like [`CounterStatus`]: an event the machine cannot count is
//! [`CounterStatus::Unsupported`], not zero and not an error.
//!
//! ```
//! use frugal_counters::{Event, Measurement};
//!
//! let mut m = Measurement::new(&[Event::TaskClock, Event::PageFaults, Event::Cycles])?;
//! let report = m.run(100, 10, || vec![0u8; 64])?;
//! let task_clock = report.per_op(Event::TaskClock).expect("software events always count");
//! assert!(task_clock.median >= 0.0);
//! # Ok::<(), frugal_counters::Error>(())
//! ```

// `unsafe` lives only in `sys` (the libc calls perf-event2 does not wrap).
#![deny(unsafe_code)]

pub mod bpftrace;
mod counters;
mod error;
mod event;
mod measure;
pub mod sim;
mod stat;
#[allow(unsafe_code)]
mod sys;
pub mod trace;

pub use crate::counters::{CounterSet, CounterStatus, RawValue, Reading, Scope, Source, Value};
pub use crate::error::{Error, PARANOID_PATH};
pub use crate::event::{Event, EventKind};
pub use crate::measure::{EventMeasurement, Measurement, MeasurementReport};
pub use crate::stat::{stat_command, EventStat, Metric, RunCounts, StatOptions, StatReport};
/// Repeated samples → min, quartiles, median, mean, max, standard deviation (the workspace's one
/// summary type, from `frugal-output`).
pub use frugal_output::Summary;
