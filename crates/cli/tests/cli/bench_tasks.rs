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
