//! Shared by the integration tests: the C workloads in tests/fixtures, compiled with `cc`.

use std::path::PathBuf;
use std::process::Command;

/// Compiles tests/fixtures/`name`.c (with -pthread) into this test process's own file, so test
/// binaries run in parallel (nextest) never write an executable another one is running.
pub fn compile_fixture(name: &str) -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("frugal-counters-{name}-{}", std::process::id()));
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{name}.c"));
    let status = Command::new("cc")
        .args(["-O1", "-pthread", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("a C compiler `cc` is needed to build the test workloads");
    assert!(status.success(), "compiling {} failed", src.display());
    exe
}

/// tests/fixtures/busy.c, compiled once per test binary: a CPU-bound loop of argv[1] iterations,
/// then argv[2] fresh pages touched, exit code argv[3].
pub fn busy() -> &'static PathBuf {
    static BUSY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUSY.get_or_init(|| compile_fixture("busy"))
}
