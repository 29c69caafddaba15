//! Repeated samples → one summary: the only one in the workspace.

use serde::{Deserialize, Serialize};

/// Summary statistics of repeated samples of one measure (ns per operation, req/s, µs of CPU per
/// request, ...), with the raw samples kept.
///
/// Quantiles interpolate linearly between the two nearest ranks (type 7 of Hyndman & Fan, what
/// NumPy and R use by default), so the median of an even count is the mean of the middle two.
/// Samples that are not numbers (NaN) are left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How many samples.
    pub n: usize,
    /// Smallest sample.
    pub min: f64,
    /// 25th percentile.
    pub p25: f64,
    /// Median.
    pub median: f64,
    /// 75th percentile.
    pub p75: f64,
    /// Largest sample.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1 denominator; 0 for one sample).
    pub stddev: f64,
    /// The samples, in the order they were taken.
    pub samples: Vec<f64>,
}

impl Summary {
    /// Summarizes `samples`. No samples give all-zero statistics and `n == 0`.
    ///
    /// ```
    /// let s = frugal_output::Summary::from_samples(vec![3.0, 1.0, 2.0, 10.0]);
    /// assert_eq!((s.n, s.min, s.median, s.mean, s.max), (4, 1.0, 2.5, 4.0, 10.0));
    /// ```
    pub fn from_samples(samples: Vec<f64>) -> Summary {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mean = if n == 0 {
            0.0
        } else {
            sorted.iter().sum::<f64>() / n as f64
        };
        let stddev = if n > 1 {
            (sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Summary {
            n,
            min: sorted.first().copied().unwrap_or(0.0),
            p25: quantile_of_sorted(&sorted, 0.25),
            median: quantile_of_sorted(&sorted, 0.5),
            p75: quantile_of_sorted(&sorted, 0.75),
            max: sorted.last().copied().unwrap_or(0.0),
            mean,
            stddev,
            samples,
        }
    }

    /// Summarizes `values`; `None` when there is no number among them.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Summary> {
        let s = Summary::from_samples(values.into_iter().collect());
        (s.n > 0).then_some(s)
    }

    /// Half the interquartile range relative to the median, in percent (the "±" of a table);
    /// 0 for a zero median.
    pub fn spread_percent(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.p75 - self.p25) / 2.0 / self.median.abs() * 100.0
        }
    }

    /// Half the full range relative to the median (0.05 = ±5%); 0 for a zero median.
    pub fn relative_half_range(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.max - self.min) / 2.0 / self.median.abs()
        }
    }

    /// Relative standard error of the mean in percent (perf stat's `( +- x% )`); 0 for fewer
    /// than two samples or a zero mean.
    pub fn rel_stderr_percent(&self) -> f64 {
        if self.n < 2 || self.mean == 0.0 {
            0.0
        } else {
            self.stddev / (self.n as f64).sqrt() / self.mean.abs() * 100.0
        }
    }
}

/// The `q` quantile (0 ≤ q ≤ 1) of ascending `sorted`, interpolated linearly; 0 when empty.
pub fn quantile_of_sorted(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        1 => sorted[0],
        n => {
            let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = pos.ceil() as usize;
            sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
        }
    }
}

/// The median of ascending `sorted`; 0 when empty.
pub fn median_of_sorted(sorted: &[f64]) -> f64 {
    quantile_of_sorted(sorted, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_samples() {
        let s = Summary::from_samples(vec![5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!(
            (s.n, s.min, s.p25, s.median, s.p75, s.max),
            (5, 1.0, 2.0, 3.0, 4.0, 5.0)
        );
        assert_eq!(s.samples, vec![5.0, 1.0, 3.0, 2.0, 4.0]);
        assert!((s.spread_percent() - 100.0 / 3.0).abs() < 1e-9);
        assert!((s.stddev - 2.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(Summary::from_samples(vec![4.0, 1.0]).median, 2.5);
    }

    #[test]
    fn empty_and_nan() {
        let s = Summary::from_samples(vec![]);
        assert_eq!((s.n, s.median, s.spread_percent()), (0, 0.0, 0.0));
        assert!(Summary::of([f64::NAN]).is_none());
        assert_eq!(Summary::of([f64::NAN, 2.0]).unwrap().median, 2.0);
    }

    proptest! {
        #[test]
        fn order_statistics_are_ordered(v in proptest::collection::vec(-1e9f64..1e9, 1..50)) {
            let s = Summary::from_samples(v);
            prop_assert!(s.min <= s.p25 && s.p25 <= s.median && s.median <= s.p75 && s.p75 <= s.max);
            prop_assert!(s.min <= s.mean && s.mean <= s.max);
        }
    }
}
