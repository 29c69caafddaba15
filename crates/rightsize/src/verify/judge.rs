//! Judging the SLA: the latency target of a replay, the fraction of requests within it, and
//! whether a run passes.

use frugal_http::{LatencySummary, LoadReport};

use crate::outcome::Measured;

/// Fraction of requests within `target` from percentile points, interpolating linearly in latency.
pub fn fraction_within(points: &[(f64, f64)], target: f64) -> f64 {
    // points: (latency, cumulative fraction), ascending.
    let mut prev = (0.0, 0.0);
    for &(lat, frac) in points {
        if target < lat {
            let span = lat - prev.0;
            let t = if span > 0.0 {
                (target - prev.0) / span
            } else {
                0.0
            };
            return prev.1 + (frac - prev.1) * t.clamp(0.0, 1.0);
        }
        prev = (lat, frac);
    }
    1.0
}

/// The target the replay checks and the delay added to replayed latencies:
/// `(target_ms, added_delay_ms)`. With latency data the target is the SLA screen's.
pub(super) fn replay_target(
    svc: Option<&crate::model::ServiceModel>,
    work_us: u64,
    fallback: Option<f64>,
) -> (f64, f64) {
    match svc {
        Some(s) => {
            let cpu_floor = 2.0 * work_us as f64 / 1000.0;
            let delay = s.fixed_delay_ms.min(s.target_ms - cpu_floor).max(0.0);
            (s.target_ms, delay)
        }
        None => (fallback.unwrap_or(20.0 * work_us as f64 / 1000.0), 0.0),
    }
}

/// The measured run of `report`: its latencies (plus the non-CPU delay), errors and rate, judged
/// against the target and the SLA fraction.
pub(super) fn measure(
    report: &LoadReport,
    cpus: f64,
    target_rps: f64,
    (target_ms, delay_ms): (f64, f64),
    sla: f64,
) -> Measured {
    // No successful response: no latency (the run fails below, on the fraction of requests
    // within the target, which is then 0); the summary's zeros are never shown as measured.
    let none = LatencySummary::default();
    let (lat, corrected) = match (&report.latency_corrected_ns, &report.latency_ns) {
        (Some(c), _) => (c, true),
        (None, Some(l)) => (l, false),
        (None, None) => (&none, report.target_rps.is_some()),
    };
    let ms = |ns: u64| ns as f64 / 1e6 + delay_ms;
    let points = [
        (ms(lat.p50), 0.5),
        (ms(lat.p90), 0.9),
        (ms(lat.p99), 0.99),
        (ms(lat.p999), 0.999),
        (ms(lat.max), 1.0),
    ];
    let errors = report.errors.total();
    let total = report.requests_ok + errors;
    let fraction =
        fraction_within(&points, target_ms) * report.requests_ok as f64 / total.max(1) as f64;
    let pass = fraction >= sla
        && (errors as f64) <= 0.005 * total.max(1) as f64
        && report.achieved_rps >= 0.95 * target_rps;
    Measured {
        cpus,
        target_rps,
        achieved_rps: report.achieved_rps,
        requests_ok: report.requests_ok,
        errors,
        p50_ms: ms(lat.p50),
        p99_ms: ms(lat.p99),
        p999_ms: ms(lat.p999),
        corrected,
        sla_fraction: fraction,
        pass,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_checks_the_sla_screens_target() {
        let svc = crate::model::ServiceModel {
            cpu_seconds_per_request: 0.002,
            peak_rps: 100.0,
            median_latency_p99_ms: 31.35,
            fixed_delay_ms: 9.64,
            target_ms: 62.7,
            target_source: "default".to_owned(),
        };
        // The same target as the report; the non-CPU delay is added to replayed latencies.
        assert_eq!(replay_target(Some(&svc), 2_000, None), (62.7, 9.64));
        // A delay that would leave less than twice the work for the CPU is capped.
        let tight = crate::model::ServiceModel {
            fixed_delay_ms: 61.0,
            ..svc
        };
        let (t, d) = replay_target(Some(&tight), 2_000, None);
        assert_eq!(t, 62.7);
        assert!((d - 58.7).abs() < 1e-9, "{d}");
        assert_eq!(replay_target(None, 500, Some(40.0)), (40.0, 0.0));
        assert_eq!(replay_target(None, 500, None), (10.0, 0.0));
    }

    #[test]
    fn fraction_interpolates() {
        let pts = [
            (1.0, 0.5),
            (2.0, 0.9),
            (4.0, 0.99),
            (8.0, 0.999),
            (20.0, 1.0),
        ];
        assert_eq!(fraction_within(&pts, 30.0), 1.0);
        assert!((fraction_within(&pts, 6.0) - 0.9945).abs() < 1e-9);
        assert!((fraction_within(&pts, 0.5) - 0.25).abs() < 1e-9);
    }
}
