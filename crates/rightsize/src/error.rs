//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in `frugal-rightsize`.
///
/// Messages are lower-case and say what to do. Input errors name the file (or source) and the line
/// (CSV) or record (JSON) so the user can fix the data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A malformed value or structure in an input file.
    #[error("{source_name}: {location}: {message}")]
    Input {
        /// The file name or source label.
        source_name: String,
        /// Where in the input: `line 7` (CSV, JSON syntax), `record 3` (JSON) or `header`.
        location: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// An input file could not be read.
    /// (The message does not repeat the cause: `source()` returns it.)
    #[error("cannot read {} (check the path and permissions)", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A catalog override file is malformed.
    #[error("catalog {name}: {message}")]
    Catalog {
        /// The file name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A configuration value is out of range.
    #[error("invalid setting: {0}")]
    Config(String),
    /// The Prometheus server could not be queried.
    #[error("prometheus at {url}: {message}")]
    Prometheus {
        /// The base URL that was queried.
        url: String,
        /// What went wrong and what to check.
        message: String,
    },
    /// `--verify` could not run.
    #[error("verify: {message}")]
    Verify {
        /// What went wrong and what to do.
        message: String,
        /// The underlying I/O error, if any.
        #[source]
        source: Option<std::io::Error>,
    },
}

impl Error {
    pub(crate) fn input(
        source_name: &str,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Input {
            source_name: source_name.to_owned(),
            location: location.into(),
            message: message.into(),
        }
    }

    pub(crate) fn verify(message: impl Into<String>) -> Self {
        Error::Verify {
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn verify_io(message: impl Into<String>, source: std::io::Error) -> Self {
        Error::Verify {
            message: message.into(),
            source: Some(source),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
