//! `frugal bench http` reduced to what the page and the bridge need: one line per strategy.
//!
//! The summary is built from the benchmark's JSON (its rows: `strategy`, `mode`,
//! `achieved_rps`, `p99_ns`, `server_cpu_us_per_request`, `server_rss_bytes`, `errors`), so it
//! holds whether the benchmark ran each strategy once or several times: with several runs per
//! strategy and mode it takes the median and keeps the range.

use serde::{Deserialize, Serialize};

use frugal_output::Summary;

/// The service benchmark per strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSummary {
    /// Connections of each run.
    pub connections: u64,
    /// Measured seconds of each run.
    pub duration_s: f64,
    /// The constant rate, requests per second.
    pub constant_rate_rps: f64,
    /// One line per strategy, in the benchmark's order.
    pub strategies: Vec<StrategyLine>,
    /// Whether the strategies differ by more than the run-to-run noise, in words.
    pub noise: String,
}

/// One strategy's figures (medians over its runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyLine {
    /// Cleanup strategy of the server (`manual`, `guard`, `chain`, ...).
    pub strategy: String,
    /// Runs per mode that went into the medians.
    pub runs: u32,
    /// Closed-loop throughput, requests per second.
    #[serde(default, deserialize_with = "crate::stats::opt_summary")]
    pub closed_loop_rps: Option<Summary>,
    /// Constant-rate 99th percentile latency (corrected for coordinated omission), ms.
    #[serde(default, deserialize_with = "crate::stats::opt_summary")]
    pub p99_ms: Option<Summary>,
    /// Server CPU per request at the constant rate, microseconds (closed loop when no
    /// constant-rate run exists).
    #[serde(default, deserialize_with = "crate::stats::opt_summary")]
    pub cpu_us_per_request: Option<Summary>,
    /// Server resident memory at the end of the runs, bytes (largest seen).
    pub rss_bytes: u64,
    /// Failed requests over all runs.
    pub errors: u64,
}

fn num(v: &serde_json::Value, key: &str) -> Option<f64> {
    v.get(key)?.as_f64().filter(|x| x.is_finite())
}

fn errors_of(row: &serde_json::Value) -> u64 {
    match row.get("errors") {
        Some(serde_json::Value::Object(map)) => map.values().filter_map(|v| v.as_u64()).sum(),
        Some(v) => v.as_u64().unwrap_or(0),
        None => 0,
    }
}

impl ServiceSummary {
    /// Summarises the JSON of a `frugal bench http` report; `None` when it has no rows.
    pub fn from_bench_json(bench: &serde_json::Value) -> Option<ServiceSummary> {
        let rows = bench.get("rows")?.as_array()?;
        let mut order: Vec<String> = Vec::new();
        for row in rows {
            if let Some(s) = row.get("strategy").and_then(|s| s.as_str()) {
                if !order.iter().any(|o| o == s) {
                    order.push(s.to_owned());
                }
            }
        }
        let strategies: Vec<StrategyLine> = order
            .iter()
            .map(|name| {
                let mine: Vec<&serde_json::Value> = rows
                    .iter()
                    .filter(|r| r.get("strategy").and_then(|s| s.as_str()) == Some(name))
                    .collect();
                let of_mode = |mode: &str| -> Vec<&serde_json::Value> {
                    mine.iter()
                        .copied()
                        .filter(|r| r.get("mode").and_then(|m| m.as_str()) == Some(mode))
                        .collect()
                };
                let closed = of_mode("closed-loop");
                let constant = of_mode("constant-rate");
                let collect = |rows: &[&serde_json::Value], key: &str, scale: f64| {
                    let values: Vec<f64> = rows
                        .iter()
                        .filter_map(|r| num(r, key))
                        .map(|x| x * scale)
                        .collect();
                    Summary::of(values)
                };
                let cpu_rows = if constant.is_empty() {
                    &closed
                } else {
                    &constant
                };
                StrategyLine {
                    strategy: name.clone(),
                    runs: closed.len().max(constant.len()) as u32,
                    closed_loop_rps: collect(&closed, "achieved_rps", 1.0),
                    p99_ms: collect(&constant, "p99_ns", 1e-6),
                    cpu_us_per_request: collect(cpu_rows, "server_cpu_us_per_request", 1.0),
                    rss_bytes: mine
                        .iter()
                        .filter_map(|r| r.get("server_rss_bytes")?.as_u64())
                        .max()
                        .unwrap_or(0),
                    errors: mine.iter().map(|r| errors_of(r)).sum(),
                }
            })
            .collect();
        if strategies.is_empty() {
            return None;
        }
        let noise = noise_statement(&strategies);
        Some(ServiceSummary {
            connections: bench
                .get("connections")
                .and_then(|v| v.as_u64())
                .unwrap_or(0),
            duration_s: num(bench, "duration_s").unwrap_or(0.0),
            constant_rate_rps: num(bench, "constant_rate_rps").unwrap_or(0.0),
            strategies,
            noise,
        })
    }
}

/// Says whether the CPU-per-request medians differ by more than the runs' spread.
fn noise_statement(lines: &[StrategyLine]) -> String {
    let cpu: Vec<(&str, &Summary)> = lines
        .iter()
        .filter_map(|l| Some((l.strategy.as_str(), l.cpu_us_per_request.as_ref()?)))
        .collect();
    if cpu.len() < 2 {
        return "fewer than two strategies measured: nothing to compare".to_owned();
    }
    if cpu.iter().all(|(_, r)| r.n < 2) {
        return "one run per strategy: the difference between strategies cannot be told from \
                run-to-run noise (repeat the benchmark to judge it)"
            .to_owned();
    }
    // The same standard as the ledger's service rows: a verdict on noise needs three runs.
    if let Some(n) = cpu.iter().map(|(_, r)| r.n).filter(|&n| n < 3).min() {
        return format!(
            "{n} runs per strategy: too few to tell a difference between strategies from \
             run-to-run noise (the full report, or `frugal bench http -r 3`, judges it)"
        );
    }
    let (lo, hi) = crate::stats::lowest_and_highest(&cpu).expect("two or more entries");
    // Separated when the ranges of the cheapest and the dearest do not overlap.
    if hi.1.min > lo.1.max {
        format!(
            "{} needs more CPU per request than {} ({:.1} vs {:.1} µs median) beyond the \
             run-to-run range of either",
            hi.0, lo.0, hi.1.median, lo.1.median
        )
    } else {
        format!(
            "CPU per request of every strategy lies within the run-to-run noise ({:.1}–{:.1} µs \
             medians, overlapping ranges): on this machine the cleanup strategy does not show in \
             the service's CPU cost",
            lo.1.median, hi.1.median
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(strategy: &str, mode: &str, rps: f64, p99_ns: u64, cpu: f64) -> serde_json::Value {
        serde_json::json!({
            "strategy": strategy, "mode": mode, "achieved_rps": rps, "p99_ns": p99_ns,
            "server_cpu_us_per_request": cpu, "server_rss_bytes": 1000,
            "errors": {"timeout": 1, "connect": 0}
        })
    }

    #[test]
    fn one_run_per_strategy_cannot_judge_noise() {
        let bench = serde_json::json!({
            "connections": 100, "duration_s": 2.0, "constant_rate_rps": 500.0,
            "rows": [row("manual", "closed-loop", 1000.0, 1_000_000, 30.0),
                     row("manual", "constant-rate", 500.0, 2_000_000, 40.0),
                     row("chain", "closed-loop", 900.0, 1_000_000, 33.0),
                     row("chain", "constant-rate", 500.0, 3_000_000, 44.0)]
        });
        let s = ServiceSummary::from_bench_json(&bench).unwrap();
        assert_eq!(s.strategies.len(), 2);
        assert_eq!(s.strategies[0].strategy, "manual");
        assert_eq!(
            s.strategies[0].cpu_us_per_request.as_ref().unwrap().median,
            40.0
        );
        assert_eq!(s.strategies[1].p99_ms.as_ref().unwrap().median, 3.0);
        assert_eq!(s.strategies[1].errors, 2);
        assert!(s.noise.contains("one run per strategy"), "{}", s.noise);
    }

    #[test]
    fn repeated_runs_give_medians_and_a_noise_verdict() {
        let mut rows = Vec::new();
        for cpu in [40.0, 41.0, 39.0] {
            rows.push(row("manual", "constant-rate", 500.0, 2_000_000, cpu));
        }
        for cpu in [60.0, 61.0, 62.0] {
            rows.push(row("box", "constant-rate", 500.0, 2_000_000, cpu));
        }
        let s = ServiceSummary::from_bench_json(&serde_json::json!({"rows": rows})).unwrap();
        assert_eq!(s.strategies[0].runs, 3);
        assert_eq!(
            s.strategies[0].cpu_us_per_request.as_ref().unwrap().median,
            40.0
        );
        assert!(s.noise.starts_with("box needs more CPU"), "{}", s.noise);

        let mut rows = Vec::new();
        for (a, b) in [(40.0, 42.0), (45.0, 39.0), (41.0, 44.0)] {
            rows.push(row("manual", "constant-rate", 500.0, 2_000_000, a));
            rows.push(row("chain", "constant-rate", 500.0, 2_000_000, b));
        }
        let s = ServiceSummary::from_bench_json(&serde_json::json!({"rows": rows})).unwrap();
        assert!(
            s.noise.contains("within the run-to-run noise"),
            "{}",
            s.noise
        );
    }

    #[test]
    fn two_runs_per_strategy_are_too_few_to_judge_noise() {
        let mut rows = Vec::new();
        for (a, b) in [(40.0, 60.0), (41.0, 61.0)] {
            rows.push(row("manual", "constant-rate", 500.0, 2_000_000, a));
            rows.push(row("chain", "constant-rate", 500.0, 2_000_000, b));
        }
        let s = ServiceSummary::from_bench_json(&serde_json::json!({"rows": rows})).unwrap();
        assert!(
            s.noise.starts_with("2 runs per strategy: too few"),
            "{}",
            s.noise
        );
    }

    #[test]
    fn no_rows_is_no_summary() {
        assert!(ServiceSummary::from_bench_json(&serde_json::json!({"rows": []})).is_none());
        assert!(ServiceSummary::from_bench_json(&serde_json::json!({})).is_none());
    }
}
