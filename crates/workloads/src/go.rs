//! The Go toolchain, as the experiments use it: is `go` on `PATH` and which version, a `go`
//! command that works without `HOME` (as under CI), and a scratch module directory holding a
//! program's embedded sources.
//!
//! A leaf: `defer_bench` (the Go benchmark), `tasks` (goroutines) and `chapter1` (the example
//! service) call it; it calls none of them.

use std::path::Path;
use std::process::Command;

use crate::Error;

/// How to get Go, printed when it is missing.
pub(crate) const HOW_TO_GET_GO: &str =
    "Go is not on PATH; install it (Debian/Ubuntu: `apt-get install golang-go`) to add Go rows";

/// `go version`, or `None` when `go` is not on PATH.
pub(crate) fn go_version() -> Option<String> {
    let out = Command::new("go").arg("version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A `go` command run in `dir`, with caches that work even without `HOME` (as under CI).
pub(crate) fn go_command(dir: &Path) -> Command {
    let mut cmd = Command::new("go");
    cmd.current_dir(dir);
    if std::env::var_os("HOME").is_none() {
        let base = std::env::temp_dir().join("frugal-go-cache");
        if std::env::var_os("GOCACHE").is_none() {
            cmd.env("GOCACHE", base.join("build"));
        }
        if std::env::var_os("GOPATH").is_none() {
            cmd.env("GOPATH", base.join("path"));
        }
    }
    cmd.env("GOFLAGS", "-mod=mod").env("GO111MODULE", "on");
    cmd
}

/// A scratch directory named `prefix...` holding `files` (name, contents): a Go module ready to
/// build. It is removed when the returned directory drops, on every path.
pub(crate) fn module_dir(prefix: &str, files: &[(&str, &str)]) -> Result<tempfile::TempDir, Error> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|source| Error::File {
            path: std::env::temp_dir(),
            source,
        })?;
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, text).map_err(|source| Error::File { path, source })?;
    }
    Ok(dir)
}

/// The last lines of a child's output, for error messages.
pub(crate) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_eight_lines() {
        let text: String = (1..=10).map(|i| format!("l{i}\n")).collect();
        assert_eq!(tail(&text), "l3\nl4\nl5\nl6\nl7\nl8\nl9\nl10");
        assert_eq!(tail("one"), "one");
    }

    #[test]
    fn module_dir_holds_the_files_and_goes_away() {
        let dir = module_dir("frugal-go-test-", &[("go.mod", "module x\n")]).unwrap();
        let path = dir.path().to_path_buf();
        assert_eq!(
            std::fs::read_to_string(path.join("go.mod")).unwrap(),
            "module x\n"
        );
        drop(dir);
        assert!(!path.exists());
    }
}
