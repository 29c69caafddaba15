//! The one error type of the experiments (the HTTP service and load generator keep their own,
//! [`crate::http::Error`]).

use std::path::PathBuf;

/// What can go wrong running an experiment: defer, tasks, chapter 1, locality, io.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An unknown strategy or scenario name.
    #[error("unknown {what} {name:?}; expected one of: {expected}")]
    UnknownName {
        /// "strategy" or "scenario".
        what: &'static str,
        /// The name given.
        name: String,
        /// The accepted names.
        expected: String,
    },
    /// A child process (Go, valgrind, or our own re-executed binary) could not run.
    #[error("could not run {command}: {source}; check that it is installed and on PATH")]
    Spawn {
        /// The command line.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A child ran but failed or printed something we could not read.
    #[error("{command} failed: {message}")]
    Child {
        /// The command line.
        command: String,
        /// What went wrong, with the child's stderr tail.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("could not access {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The machine cannot hold what was asked for; the message names the limit, its value and
    /// what to do.
    #[error("{0}")]
    Limit(String),
    /// A strategy left resources held after its operation returned.
    #[error(
        "{strategy}/{scenario} leaked {open} resources: its cleanup did not run; this is a bug"
    )]
    Leak {
        /// The strategy.
        strategy: String,
        /// The scenario.
        scenario: String,
        /// Resources still held.
        open: u64,
    },
    /// A working set that cannot be used (zero, below one page).
    #[error("working set of {size_bytes} bytes: {why}")]
    BadSize {
        /// The size given.
        size_bytes: u64,
        /// Why it is refused.
        why: &'static str,
    },
    /// A working set larger than the memory available; refused before allocating.
    #[error(
        "working set of {} MiB is larger than the memory available ({} MiB MemAvailable); \
         choose a smaller size",
        size_bytes >> 20,
        available_bytes >> 20
    )]
    TooLarge {
        /// The size given.
        size_bytes: u64,
        /// `MemAvailable` from /proc/meminfo.
        available_bytes: u64,
    },
    /// An unknown pattern name.
    #[error("unknown pattern {name:?}; expected one of: {expected}")]
    UnknownPattern {
        /// The name given.
        name: String,
        /// The accepted names.
        expected: String,
    },
    /// Mapping the working set failed.
    #[error("could not map a working set of {size_bytes} bytes")]
    Map {
        /// The size.
        size_bytes: u64,
        /// The cause (`mmap` or `madvise`).
        #[source]
        source: std::io::Error,
    },
    /// The simulated counters could not be taken.
    #[error("simulated counters for {what} failed; pass --no-sim to skip them")]
    Simulation {
        /// Which row.
        what: String,
        /// The cause.
        #[source]
        source: frugal_counters::Error,
    },
    /// A parameter is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file or io_uring operation failed (the message does not repeat the cause: `source()`
    /// returns it).
    #[error("{what}")]
    Io {
        /// What was being done, and what to do about it.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A read completed with an error (its CQE held `-errno`), or returned fewer bytes than
    /// asked.
    #[error("io_uring read at offset {offset} failed (check the file and the device)")]
    Read {
        /// Byte offset of the block.
        offset: u64,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A block read did not hold the expected pattern (only with
    /// [`IoConfig::verify`](crate::io::IoConfig::verify)).
    #[error("block at offset {offset} does not hold the expected pattern; was the file created by frugal?")]
    Mismatch {
        /// Byte offset of the block.
        offset: u64,
    },
    /// fio could not be run or its output not understood.
    #[error("fio: {0}")]
    Fio(String),
}

impl Error {
    /// True for errors in what the user asked for a working set (a CLI exits 2 on these).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::BadSize { .. } | Error::TooLarge { .. } | Error::UnknownPattern { .. }
        )
    }
}
