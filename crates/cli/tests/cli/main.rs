//! The `frugal` binary's integration tests, one test binary (`cargo test -p frugal --test cli`;
//! one module per command family, `cli::http::...`, `cli::trace::...`; `--list` shows them all).
//! What the modules share is in [`util`]: the binary runner, the guard that kills a child, free
//! loopback ports and the `frugal serve` child, temporary directories.
//!
//! # Which tests are kept apart, and why
//!
//! libtest runs the tests of this binary on as many threads as the machine has cores, modules
//! mixed. When every module was a binary of its own, only tests of the same file could overlap.
//! Two [`util::Group`] locks keep what that isolation protected:
//!
//! - [`util::TRACE`]: the `trace` tests run one at a time, as their own binary did: they attach
//!   bpftrace to shared binaries and count exactly what it sees, and bpftrace sessions starting
//!   together on a loaded 2-core machine were slow to attach. They also take [`util::HEAVY`] (always after `TRACE`, so the two cannot
//!   deadlock): attaching by PID waits a fixed moment for bpftrace, as when the file ran alone.
//! - [`util::HEAVY`]: tests that load the whole machine or measure it run one at a time —
//!   `report` (runs every experiment), `load_merge` (compares the throughput of two generators
//!   with one's), the `bench` runs of `bench_defer`, `bench_locality` (and its valgrind lackey
//!   trace), `bench_llc` (the service under valgrind), `bench_tasks` and `bench_fleet`, and in
//!   `http` the load runs that check what a rate schedule achieved, the `bench http` runs and
//!   the thousand-connection test. The files
//!   that held one such test ran it alone; the others now meet at most one of them.
//!
//! Everything else (usage errors, `rightsize`, `stat`, `misuse`, `bench io`, the `serve`
//! reliability tests against a server of their own) is short or bounded by generous
//! patience, needs nothing exclusive, and runs beside anything.

mod util;

mod bench_defer;
mod bench_fleet;
mod bench_io;
mod bench_llc;
mod bench_locality;
mod bench_tasks;
mod http;
mod load_merge;
mod misuse;
mod report;
mod rightsize_cli;
mod rightsize_output;
mod rightsize_prometheus;
mod stat;
mod trace;
