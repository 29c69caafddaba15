//! The report for people on a terminal (and as Markdown / CSV): the steps, the bridge, the
//! ledger's verdicts — [`FullReport`]'s [`Render`] implementation.

use frugal_output::units::fixed;
use frugal_output::{Cell, Document, Render, Style, Table, Tone};
use frugal_workloads::claims::Verdict;

use crate::model::{FullReport, StepStatus, SCHEMA, SCHEMA_VERSION};

impl Render for FullReport {
    const SCHEMA: &'static str = SCHEMA;
    const VERSION: u32 = SCHEMA_VERSION;

    fn document(&self) -> Document {
        let r = self;
        let mut doc = Document::new(format!(
            "frugal report — {} ({} CPUs), {} profile, {:.0} s",
            r.machine.cpu,
            r.machine.cores,
            if r.quick { "quick" } else { "full" },
            r.wall_time_s
        ));
        doc.line(format!(
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
        ));
        doc.blank();
        let mut steps = Table::new([
            ("step", frugal_output::Align::Left),
            ("status", frugal_output::Align::Left),
            ("seconds", frugal_output::Align::Right),
            ("why", frugal_output::Align::Left),
        ]);
        for s in &r.steps {
            let tone = match s.status {
                StepStatus::Ran => Tone::Good,
                StepStatus::Skipped => Tone::Warn,
                StepStatus::Failed => Tone::Bad,
            };
            steps.row([
                Cell::from(s.title.as_str()),
                Cell::new(s.status.label(), tone),
                Cell::from(fixed(s.seconds, 1)),
                Cell::from(if s.status == StepStatus::Ran {
                    ""
                } else {
                    s.reason.as_deref().unwrap_or("")
                }),
            ]);
        }
        doc.table(steps);
        if let Some(b) = &r.bridge {
            doc.blank();
            doc.line(format!(
                "cleanup → dollars at {:.0} req/s ({}):",
                b.rps, r.rps_source
            ));
            doc.table(self.bridge_table(false));
            doc.line(&b.verdict);
        }
        let count = |v: Verdict| r.claims.iter().filter(|c| c.claim.verdict == v).count();
        doc.blank();
        doc.line(format!(
            "claims ledger: {} rows — {} hold, {} do not hold, {} not measurable here",
            r.claims.len(),
            count(Verdict::Holds),
            count(Verdict::DoesNotHold),
            count(Verdict::NotMeasurable)
        ));
        doc
    }

    /// The bridge, one row per cleanup strategy, raw numbers (empty without a bridge).
    fn csv_table(&self) -> Option<Table> {
        Some(self.bridge_table(true))
    }

    /// `report.json` names its schema itself (`schema`, `schema_version`): written as it is.
    fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self).map(|s| s + "\n")
    }
}

impl FullReport {
    /// The bridge's table: formatted for people, or raw for CSV.
    fn bridge_table(&self, raw: bool) -> Table {
        let mut t = Table::numeric(if raw {
            [
                "strategy",
                "cpu_us_per_request",
                "demand_cores",
                "vcpus_needed",
                "configuration",
                "usd_per_month",
                "usd_per_year",
                "cpu_usd_per_month",
            ]
        } else {
            [
                "strategy",
                "CPU µs/req",
                "cores",
                "vCPUs",
                "configuration",
                "$/month",
                "$/year",
                "CPU $/month",
            ]
        });
        let num = |x: f64, d: usize| if raw { x.to_string() } else { fixed(x, d) };
        for x in self.bridge.iter().flat_map(|b| &b.rows) {
            t.row([
                x.strategy.clone(),
                num(x.cpu_us_per_request, 1),
                num(x.demand_cores, 2),
                num(x.vcpus_needed, 2),
                format!("{} × {}", x.instances, x.instance_type),
                num(x.usd_per_month, 2),
                num(x.usd_per_year, 2),
                num(x.marginal_usd_per_month, 2),
            ]);
        }
        t
    }
}

/// Renders the summary printed at the end of `frugal report`, without colour.
pub fn render_text(r: &FullReport) -> String {
    r.document().to_text(&Style::plain())
}
