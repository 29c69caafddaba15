//! `frugal stat --sim`'s report: one simulated run, the ratios derived from it, and how it
//! renders (every figure marked simulated).

use frugal_output::{Document, Render, Table, Tone};
use serde::Serialize;

use super::{CacheGeometry, SimRun};
use crate::stat::{grouped, CSV_COLUMNS};

/// Ratios derived from a simulated run; `None` when the denominator is 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SimMetrics {
    /// Percent of data accesses (reads + writes) that miss D1.
    pub d1_miss_pct: Option<f64>,
    /// Percent of all accesses (instruction fetches + data) that miss the last level.
    pub ll_miss_pct: Option<f64>,
    /// Percent of branches (conditional + indirect) mispredicted.
    pub branch_mispredict_pct: Option<f64>,
    /// Instructions per estimated cycle.
    pub estimated_ipc: Option<f64>,
}

impl SimMetrics {
    /// The ratios of `run`.
    pub fn of(run: &SimRun) -> SimMetrics {
        let c = &run.counts;
        let pct = |num: u64, den: u64| (den > 0).then(|| 100.0 * num as f64 / den as f64);
        SimMetrics {
            d1_miss_pct: pct(
                c.d1_read_misses + c.d1_write_misses,
                c.data_reads + c.data_writes,
            ),
            ll_miss_pct: pct(c.ll_misses(), c.instructions + c.data_reads + c.data_writes),
            branch_mispredict_pct: pct(c.branch_mispredicts(), c.branches()),
            estimated_ipc: (run.estimated_cycles > 0)
                .then(|| c.instructions as f64 / run.estimated_cycles as f64),
        }
    }

    /// `(key, what it means, value)`, in table order.
    fn rows(&self) -> [(&'static str, &'static str, Option<f64>); 4] {
        [
            (
                "d1_miss_pct",
                "% of data accesses miss D1",
                self.d1_miss_pct,
            ),
            ("ll_miss_pct", "% of all accesses miss LL", self.ll_miss_pct),
            (
                "branch_mispredict_pct",
                "% of branches mispredicted",
                self.branch_mispredict_pct,
            ),
            (
                "estimated_ipc",
                "instructions per estimated cycle",
                self.estimated_ipc,
            ),
        ]
    }
}

/// The report of `frugal stat --sim`: the run (command, counts, estimated cycles, cache model,
/// valgrind's wall time) and its derived ratios. JSON schema `frugal-stat-sim`.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// The simulated run.
    #[serde(flatten)]
    pub run: SimRun,
    /// Ratios derived from its counts.
    pub metrics: SimMetrics,
}

impl SimReport {
    /// The report of `run`.
    pub fn new(run: SimRun) -> SimReport {
        SimReport {
            metrics: SimMetrics::of(&run),
            run,
        }
    }

    /// The simulated figures: `(perf-like name, key, value)`.
    fn rows(&self) -> [(&'static str, &'static str, u64); 14] {
        let c = &self.run.counts;
        [
            ("instructions", "instructions", c.instructions),
            ("I1-read-misses", "i1_read_misses", c.i1_read_misses),
            ("data-reads", "data_reads", c.data_reads),
            ("D1-read-misses", "d1_read_misses", c.d1_read_misses),
            ("data-writes", "data_writes", c.data_writes),
            ("D1-write-misses", "d1_write_misses", c.d1_write_misses),
            (
                "LL-instruction-read-misses",
                "ll_instruction_read_misses",
                c.ll_instruction_read_misses,
            ),
            (
                "LL-data-read-misses",
                "ll_data_read_misses",
                c.ll_data_read_misses,
            ),
            (
                "LL-data-write-misses",
                "ll_data_write_misses",
                c.ll_data_write_misses,
            ),
            (
                "conditional-branches",
                "conditional_branches",
                c.conditional_branches,
            ),
            (
                "conditional-mispredicts",
                "conditional_mispredicts",
                c.conditional_mispredicts,
            ),
            (
                "indirect-branches",
                "indirect_branches",
                c.indirect_branches,
            ),
            (
                "indirect-mispredicts",
                "indirect_mispredicts",
                c.indirect_mispredicts,
            ),
            (
                "estimated-cycles",
                "estimated_cycles",
                self.run.estimated_cycles,
            ),
        ]
    }
}

/// The cache model line of the table.
pub(crate) fn geometry_text(geometry: Option<&CacheGeometry>) -> String {
    let Some(g) = geometry else {
        return "cache model: valgrind's auto-detection (sysfs gave none; see the warning above)"
            .to_owned();
    };
    let adjusted = match &g.ll_reported {
        Some(reported) => format!(" (sysfs: {reported}; adjusted for valgrind)"),
        None => String::new(),
    };
    format!(
        "cache model from sysfs: I1 {}, D1 {}, LL (L{}) {}{adjusted}",
        g.i1, g.d1, g.ll_level, g.ll
    )
}

impl Render for SimReport {
    const SCHEMA: &'static str = "frugal-stat-sim";
    const VERSION: u32 = 1;

    /// perf stat's layout, every line marked `(simulated)`.
    fn document(&self) -> Document {
        let run = &self.run;
        let mut doc = Document::new(format!(
            " SIMULATED counts for '{}' (valgrind {}; not hardware counters)",
            run.command.join(" "),
            run.tool
        ));
        doc.line(format!(" {}", geometry_text(run.geometry.as_ref())));
        doc.blank();
        for (name, _, value) in self.rows() {
            doc.line(format!(
                "{:>18}   {name:<28} (simulated)",
                grouped(value as f64)
            ));
        }
        doc.blank();
        for (_, description, value) in self.metrics.rows() {
            if let Some(value) = value {
                doc.line(format!("{value:>18.3}   {description} (simulated)"));
            }
        }
        doc.blank();
        doc.toned(
            format!(
                " estimated-cycles = {} (a rough model, not a measurement)",
                run.cycle_formula
            ),
            Tone::Dim,
        );
        doc.line(format!(
            "{:>18.9} seconds time elapsed under valgrind (slowed down; not the real run time)",
            run.wall_time_ns as f64 / 1e9
        ));
        doc.blank();
        doc
    }

    /// `frugal stat`'s CSV columns: one row per simulated count, then one per derived ratio.
    fn csv_table(&self) -> Option<Table> {
        let mut t = Table::numeric(CSV_COLUMNS);
        let row = |t: &mut Table, name: &str, key: &str, status: &str, value: String| {
            let mut cells = vec![
                name.to_owned(),
                key.to_owned(),
                String::new(),
                status.to_owned(),
                "true".to_owned(),
                value,
            ];
            cells.resize(CSV_COLUMNS.len(), String::new());
            t.row(cells);
        };
        for (name, key, value) in self.rows() {
            row(&mut t, name, key, "simulated", value.to_string());
        }
        for (key, description, value) in self.metrics.rows() {
            if let Some(value) = value {
                row(&mut t, description, key, "derived", value.to_string());
            }
        }
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{CacheLevel, SimCounts, CYCLE_FORMULA};
    use frugal_output::Style;

    #[test]
    fn adjusted_geometry_is_shown() {
        let level = |size_bytes, ways| CacheLevel {
            size_bytes,
            ways,
            line_bytes: 64,
        };
        let reported = level(36_608 * 1024, 11);
        let g = CacheGeometry {
            i1: level(32 * 1024, 8),
            d1: level(48 * 1024, 12),
            ll: reported.adjusted_for_valgrind(),
            ll_level: 3,
            ll_reported: Some(reported),
        };
        let text = geometry_text(Some(&g));
        assert!(
            text.contains("LL (L3) 36 MiB 18-way 64 B lines (sysfs: 35.75 MiB 11-way"),
            "{text}"
        );
        assert!(geometry_text(None).contains("auto-detection"));
    }

    fn report() -> SimReport {
        let counts = SimCounts {
            instructions: 1_000_000,
            data_reads: 300_000,
            d1_read_misses: 3_000,
            data_writes: 100_000,
            conditional_branches: 50_000,
            conditional_mispredicts: 500,
            ..SimCounts::default()
        };
        SimReport::new(SimRun {
            command: vec!["./busy".to_owned(), "1".to_owned()],
            estimated_cycles: counts.estimated_cycles(),
            counts,
            cycle_formula: CYCLE_FORMULA,
            geometry: None,
            notes: Vec::new(),
            tool: "cachegrind",
            exit_code: 0,
            wall_time_ns: 1_500_000_000,
            stdout: None,
            simulated: true,
        })
    }

    #[test]
    fn every_line_is_marked_simulated() {
        let text = report().document().to_text(&Style::plain());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            " SIMULATED counts for './busy 1' (valgrind cachegrind; not hardware counters)"
        );
        assert_eq!(
            lines[3],
            "         1,000,000   instructions                 (simulated)"
        );
        assert!(text.contains("             0.750   % of data accesses miss D1 (simulated)"));
        assert!(text.contains("       1.500000000 seconds time elapsed under valgrind"));
        assert!(text.ends_with("run time)\n\n"), "{text}");
    }

    #[test]
    fn json_and_csv_keep_their_fields() {
        let r = report();
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["simulated"], true);
        assert_eq!(json["counts"]["instructions"], 1_000_000);
        assert_eq!(json["estimated_cycles"], 1_037_500);
        assert!(json["cache_geometry"].is_null());
        assert_eq!(json["wall_time_under_valgrind_ns"], 1_500_000_000u64);
        assert_eq!(json["metrics"]["d1_miss_pct"], 0.75);
        assert!(json.get("stdout").is_none());
        let csv = r.csv_table().unwrap().to_csv();
        assert!(csv.contains("\ninstructions,instructions,,simulated,true,1000000,,,,,,\n"));
        assert!(csv.contains("\n% of data accesses miss D1,d1_miss_pct,,derived,true,0.75,,,,,,\n"));
    }
}
