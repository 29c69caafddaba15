//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// Where the kernel's perf permission knob lives.
pub const PARANOID_PATH: &str = "/proc/sys/kernel/perf_event_paranoid";

/// Everything that can go wrong in `frugal-counters`.
///
/// Note that an event the machine cannot count (no PMU: `ENOENT`, `EOPNOTSUPP`, `ENODEV`) is *not*
/// an error: it is reported as [`CounterStatus::Unsupported`](crate::CounterStatus::Unsupported).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An event name that is not one of [`Event::ALL`](crate::Event::ALL).
    #[error("unknown event `{name}`: use one of {known}")]
    UnknownEvent {
        /// The name given.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// `perf_event_open` was refused (`EACCES` / `EPERM`).
    #[error(
        "permission denied opening perf event `{event}`: {PARANOID_PATH} is {paranoid}; \
         run as root, or allow user-space counting with \
         `sudo sysctl -w kernel.perf_event_paranoid=2` (`=1` also counts the kernel)"
    )]
    Permission {
        /// The event that was refused.
        event: String,
        /// The content of `/proc/sys/kernel/perf_event_paranoid` (or why it could not be read).
        paranoid: String,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// `perf_event_open`, `read` or `ioctl` on a counter failed for another reason.
    #[error("perf counter `{event}` failed: {source}")]
    Counter {
        /// The event (or `group` for the group leader).
        event: String,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// The command to measure could not be started.
    #[error("{program}: {}", spawn_reason(.source))]
    Spawn {
        /// The program that was to be run.
        program: String,
        /// Why it could not be started.
        #[source]
        source: io::Error,
    },
    /// Waiting for the measured command failed.
    #[error("waiting for `{program}` failed: {source}")]
    Wait {
        /// The program being measured.
        program: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// valgrind is not installed (or the `FRUGAL_VALGRIND` override points nowhere).
    #[error(
        "valgrind not found at `{}`: install it with `sudo apt-get install valgrind` \
         (or point FRUGAL_VALGRIND at the valgrind binary)", .path.display()
    )]
    ValgrindMissing {
        /// Where we looked.
        path: PathBuf,
    },
    /// valgrind ran but did not produce the expected output.
    #[error("valgrind failed: {message}{}", log_hint(.log))]
    Valgrind {
        /// What went wrong.
        message: String,
        /// valgrind's own log file, kept for inspection when it may explain the failure.
        log: Option<PathBuf>,
    },
    /// The cache geometry could not be read from sysfs.
    #[error("cannot read the cache geometry from {}: {message}", .path.display())]
    CacheGeometry {
        /// The sysfs directory.
        path: PathBuf,
        /// What was missing or malformed.
        message: String,
    },
    /// Another I/O error, with what we were doing.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// bpftrace is not on `PATH` (nor at `FRUGAL_BPFTRACE`).
    #[error(
        "bpftrace not found on PATH: install it with `sudo apt-get install bpftrace` \
         (or point FRUGAL_BPFTRACE at the bpftrace binary)"
    )]
    BpftraceMissing,
    /// bpftrace is older than [`bpftrace::MIN_VERSION`](crate::bpftrace::MIN_VERSION).
    #[error(
        "bpftrace {found} is too old: version 0.12 or later is needed (JSON output, USDT \
         semaphores); install a newer one (`sudo apt-get install bpftrace` on a current distribution)"
    )]
    BpftraceTooOld {
        /// The version found.
        found: String,
    },
    /// This process may not load BPF programs.
    #[error(
        "tracing needs root (or the capabilities CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN): \
         run it with sudo"
    )]
    BpftracePermission,
    /// bpftrace failed.
    #[error("{message}")]
    Bpftrace {
        /// What went wrong, with bpftrace's own message.
        message: String,
    },
    /// A measurement was asked for with zero samples or zero iterations.
    #[error("invalid measurement parameters: {0}")]
    InvalidInput(String),
}

impl Error {
    /// The exit status a POSIX shell would give for this error: 127 for a command that was not
    /// found, 126 for one that could not be executed, `None` for other errors.
    pub fn shell_exit_code(&self) -> Option<u8> {
        match self {
            Error::Spawn { source, .. } => Some(match source.kind() {
                io::ErrorKind::NotFound => 127,
                _ => 126,
            }),
            _ => None,
        }
    }
}

fn log_hint(log: &Option<PathBuf>) -> String {
    match log {
        Some(path) => format!("; see valgrind's log at `{}`", path.display()),
        None => String::new(),
    }
}

fn spawn_reason(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::NotFound => "command not found".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied (not executable)".to_owned(),
        _ => format!("cannot execute: {err}"),
    }
}

/// Reads `/proc/sys/kernel/perf_event_paranoid` for error messages.
pub(crate) fn paranoid_value() -> String {
    match std::fs::read_to_string(PARANOID_PATH) {
        Ok(s) => s.trim().to_owned(),
        Err(e) => format!("unreadable ({e})"),
    }
}

/// Classifies the result of `perf_event_open`.
pub(crate) fn is_unsupported(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ENOENT | libc::EOPNOTSUPP | libc::ENODEV)
    )
}

/// True for `EACCES` / `EPERM`.
pub(crate) fn is_permission(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EACCES | libc::EPERM))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        for errno in [libc::ENOENT, libc::EOPNOTSUPP, libc::ENODEV] {
            assert!(is_unsupported(&io::Error::from_raw_os_error(errno)));
        }
        for errno in [libc::EACCES, libc::EPERM] {
            let err = io::Error::from_raw_os_error(errno);
            assert!(is_permission(&err) && !is_unsupported(&err));
        }
        assert!(!is_unsupported(&io::Error::from_raw_os_error(libc::EINVAL)));
    }

    #[test]
    fn permission_message_names_the_knob_its_value_and_the_fix() {
        let err = Error::Permission {
            event: "cycles".to_owned(),
            paranoid: "3".to_owned(),
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        let msg = err.to_string();
        assert!(
            msg.contains("/proc/sys/kernel/perf_event_paranoid is 3"),
            "{msg}"
        );
        assert!(
            msg.contains("sysctl -w kernel.perf_event_paranoid=2") && msg.contains("as root"),
            "{msg}"
        );
        assert_eq!(err.shell_exit_code(), None);
    }
}
