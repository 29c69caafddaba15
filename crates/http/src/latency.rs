//! The one latency summary: percentiles of a latency histogram, in nanoseconds. A load run's
//! report ([`crate::LoadReport`]), the merged logs of several generators
//! ([`crate::hdrlog::MergedReport`]) and `bench http`'s rows all summarize with it.
//!
//! The percentiles are HdrHistogram's (`value_at_quantile`: the smallest recorded value, at 3
//! significant digits, below which that fraction of the samples lies), so a summary of merged
//! histograms is the summary of the union of their samples — never an average of percentiles.

use hdrhistogram::Histogram;

/// Largest latency recorded (an hour): larger values saturate.
pub(crate) const MAX_NS: u64 = 3_600_000_000_000;

/// An empty latency histogram: 1 ns to an hour, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NS, 3).expect("bounds 1..1h with 3 digits are valid")
}

/// Percentiles of a latency distribution, in nanoseconds.
///
/// ```
/// let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
/// for v in 1..=1000 {
///     h.record(v * 1_000).unwrap();
/// }
/// let s = frugal_http::LatencySummary::of(&h);
/// // Exact to the histogram's 3 significant digits.
/// assert_eq!((s.count, s.p50 / 1_000, s.max / 1_000), (1000, 500, 1000));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatencySummary {
    /// Responses summarized.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl LatencySummary {
    /// Summarizes `h`; `None` when it is empty: nothing was measured, and zeros would read as
    /// a latency.
    pub fn measured(h: &Histogram<u64>) -> Option<LatencySummary> {
        (!h.is_empty()).then(|| LatencySummary::of(h))
    }

    /// Summarizes `h`; all zeros when it is empty.
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_all_zero_and_counts_are_kept() {
        assert_eq!(LatencySummary::of(&histogram()), LatencySummary::default());
        let mut h = histogram();
        h.record(5).unwrap();
        h.record(7).unwrap();
        let s = LatencySummary::of(&h);
        assert_eq!((s.count, s.p50, s.max, s.mean), (2, 5, 7, 6.0));
        assert_eq!(LatencySummary::measured(&h), Some(s));
        assert_eq!(LatencySummary::measured(&histogram()), None);
    }
}
