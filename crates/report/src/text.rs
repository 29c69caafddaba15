//! The terminal summary of a report: the steps, the bridge, the ledger's verdicts.

use std::fmt::Write as _;

use frugal_workloads::claims::Verdict;

use crate::model::{FullReport, StepStatus};

/// Renders the summary printed at the end of `frugal report`.
pub fn render_text(r: &FullReport) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "frugal report — {} ({} CPUs), {} profile, {:.0} s",
        r.machine.cpu,
        r.machine.cores,
        if r.quick { "quick" } else { "full" },
        r.wall_time_s
    );
    let _ = writeln!(
        t,
        "PMU: {}; {}",
        if r.machine.pmu {
            "present"
        } else {
            "absent (hardware counters simulated by valgrind, marked *)"
        },
        r.machine
            .go
            .as_deref()
            .unwrap_or("Go: not on PATH (Go rows skipped)")
    );
    let _ = writeln!(t);
    let _ = writeln!(t, "{:<34} {:<8} {:>7}  why", "step", "status", "seconds");
    for s in &r.steps {
        let _ = writeln!(
            t,
            "{:<34} {:<8} {:>7.1}  {}",
            s.title,
            s.status.label(),
            s.seconds,
            if s.status == StepStatus::Ran {
                ""
            } else {
                s.reason.as_deref().unwrap_or("")
            }
        );
    }
    if let Some(b) = &r.bridge {
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "cleanup → dollars at {:.0} req/s ({}):",
            b.rps, r.rps_source
        );
        let _ = writeln!(
            t,
            "{:<14} {:>12} {:>7} {:>7} {:>20} {:>11} {:>12} {:>13}",
            "strategy",
            "CPU µs/req",
            "cores",
            "vCPUs",
            "configuration",
            "$/month",
            "$/year",
            "CPU $/month"
        );
        for x in &b.rows {
            let _ = writeln!(
                t,
                "{:<14} {:>12.1} {:>7.2} {:>7.2} {:>20} {:>11.2} {:>12.2} {:>13.2}",
                x.strategy,
                x.cpu_us_per_request,
                x.demand_cores,
                x.vcpus_needed,
                format!("{} × {}", x.instances, x.instance_type),
                x.usd_per_month,
                x.usd_per_year,
                x.marginal_usd_per_month
            );
        }
        let _ = writeln!(t, "{}", b.verdict);
    }
    let count = |v: Verdict| r.claims.iter().filter(|c| c.claim.verdict == v).count();
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "claims ledger: {} rows — {} hold, {} do not hold, {} not measurable here",
        r.claims.len(),
        count(Verdict::Holds),
        count(Verdict::DoesNotHold),
        count(Verdict::NotMeasurable)
    );
    t
}
