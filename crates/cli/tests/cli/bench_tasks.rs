//! `frugal bench tasks -n 1000` end to end.

use frugal_workloads::tasks::TasksReport;

use crate::util::{frugal, HEAVY};

#[test]
fn thousand_tasks_per_kind() {
    let _heavy = HEAVY.lock();
    let dir = tempfile::tempdir().expect("a temporary directory can be created");
    let path = dir.path().join("tasks.json");
    let out = frugal()
        .args(["bench", "tasks", "-n", "1000", "--json"])
        .arg(&path)
        .output()
        .expect("the frugal binary runs");
    assert!(
        out.status.success(),
        "frugal bench tasks failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("tokio-sleep"), "{stdout}");
    let report: TasksReport =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let again: TasksReport =
        serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    assert_eq!(report, again);
    let kinds: Vec<&str> = report.rows.iter().map(|r| r.kind.as_str()).collect();
    for kind in [
        "tokio-sleep",
        "tokio-channel",
        "thread",
        "thread-pthread-default",
        "thread-small",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert_eq!(kinds.contains(&"goroutine"), report.go.status == "ran");
    for row in &report.rows {
        assert_eq!(row.started, 1000, "{}: {:?}", row.kind, row.stopped_by);
        if let Some(stack) = row.stack_reservation_bytes {
            // Every thread maps its whole stack: the virtual delta covers the reservation.
            assert!(
                row.vm_per_task_bytes >= stack as f64 * 0.99,
                "{}: {} < {stack}",
                row.kind,
                row.vm_per_task_bytes
            );
        }
    }
}

/// The one output grammar, end to end on the quickest report: several files at once, each
/// form on stdout, `-` as stdout with the table on stderr, colour only when asked for.
#[test]
fn one_grammar_writes_every_form() {
    let dir = tempfile::tempdir().expect("a temporary directory can be created");
    let (json, csv, md) = (
        dir.path().join("t.json"),
        dir.path().join("t.csv"),
        dir.path().join("t.md"),
    );
    let run = |extra: &[&str]| {
        let out = frugal()
            .args(["bench", "tasks", "-n", "200", "--kind", "tokio-sleep"])
            .args(extra)
            .env_remove("NO_COLOR")
            .output()
            .expect("the frugal binary runs");
        assert!(
            out.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (table, _) = run(&[
        "--json",
        json.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
    ]);
    assert!(
        table.contains("tokio-sleep") && !table.contains('\x1b'),
        "{table}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["schema"], "frugal-bench-tasks");
    assert_eq!(v["version"], v["schema_version"]);
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = csv_text.lines();
    assert!(lines.next().unwrap().starts_with("kind,requested,started,"));
    assert!(lines.next().unwrap().starts_with("tokio-sleep,200,200,"));
    let md_text = std::fs::read_to_string(&md).unwrap();
    assert!(
        md_text.starts_with("# frugal bench tasks -n 200"),
        "{md_text}"
    );
    assert!(md_text.contains("| kind | started |"), "{md_text}");

    let (stdout, stderr) = run(&["--json", "-"]);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is only JSON");
    assert_eq!(v["requested"], 200);
    assert!(
        stderr.contains("tokio-sleep"),
        "the table went to stderr: {stderr}"
    );
    let (stdout, _) = run(&["--format", "csv"]);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let (stdout, _) = run(&["--format", "markdown"]);
    assert!(stdout.contains("| --- |"), "{stdout}");
    let (stdout, _) = run(&["--color", "always"]);
    assert!(stdout.contains("\x1b["), "colour when asked for: {stdout}");
}
