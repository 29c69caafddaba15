//! The error type of the HTTP service and load generator.

use std::io;

/// What went wrong when serving or generating load.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listening socket could not be bound.
    #[error(
        "cannot bind {addr}: {source}; pick another address or port (port 0 picks a free one)"
    )]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The URL given to the load generator is not one it can use.
    #[error("invalid url {url:?}: {reason}; use http://HOST:PORT/PATH")]
    Url {
        /// The URL as given.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The open-file limit is too low for the number of connections asked for.
    #[error(
        "{connections} connections need about {needed} file descriptors but RLIMIT_NOFILE allows \
         {limit} (hard limit {hard}); lower -c or raise the hard limit (ulimit -Hn, as root)"
    )]
    FdLimit {
        /// Connections asked for.
        connections: u64,
        /// Descriptors needed.
        needed: u64,
        /// The soft limit in force after trying to raise it.
        limit: u64,
        /// The hard limit.
        hard: u64,
    },
    /// No connection to the target could be opened, so no load was generated.
    #[error("could not open any of {connections} connections to {addr}: {source}; is the server running?")]
    NoConnection {
        /// Connections tried.
        connections: u64,
        /// The target.
        addr: std::net::SocketAddr,
        /// The first connect error seen.
        #[source]
        source: io::Error,
    },
    /// Load settings that cannot measure anything.
    #[error("invalid load settings: {reason}")]
    Config {
        /// What is wrong, and why.
        reason: String,
    },
    /// Any other I/O error (runtime creation, signal handlers, ...).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A server child process ([`crate::ServerProcess`]) could not be started, or did not say
    /// where it listens.
    #[error("{message}")]
    ServerStart {
        /// What happened (with what the server wrote on stderr, when it was kept) and what to
        /// do.
        message: String,
        /// The I/O error, if any.
        #[source]
        source: Option<io::Error>,
    },
    /// An HdrHistogram interval log could not be written or read.
    #[error("{}: {message}", path.display())]
    HdrLog {
        /// The log file.
        path: std::path::PathBuf,
        /// What went wrong and what to do.
        message: String,
        /// The I/O error, if any.
        #[source]
        source: Option<io::Error>,
    },
    /// The same log was given twice to [`crate::hdrlog::merge`] (a usage error: it would count
    /// one generator twice).
    #[error(
        "{} and {} {}: a generator's log counts once; give each generator's log once",
        first.display(),
        second.display(),
        if *same_file { "are the same file" } else { "have identical contents" }
    )]
    HdrLogDuplicate {
        /// The first occurrence.
        first: std::path::PathBuf,
        /// The repeat.
        second: std::path::PathBuf,
        /// The same file (by path), rather than a copy.
        same_file: bool,
    },
    /// Logs given to [`crate::hdrlog::merge`] were not recorded at the same time.
    #[error("{message}")]
    HdrLogApart {
        /// Each log's span, what they share, and what to do.
        message: String,
    },
}

impl Error {
    pub(crate) fn io(context: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io { context, source }
    }
}
