//! Raw samples -> summary statistics.

/// Summary statistics of raw samples, which are kept.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Smallest sample.
    pub min: f64,
    /// Median (mean of the two middle samples for an even count).
    pub median: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Largest sample.
    pub max: f64,
    /// Sample standard deviation (n - 1 denominator; 0 for one sample).
    pub stddev: f64,
    /// The raw samples, in the order they were taken.
    pub samples: Vec<f64>,
}

impl Summary {
    /// Summarizes `samples`. An empty input gives all-zero statistics.
    ///
    /// ```
    /// let s = frugal_counters::Summary::from_samples(vec![3.0, 1.0, 2.0, 10.0]);
    /// assert_eq!((s.min, s.median, s.mean, s.max), (1.0, 2.5, 4.0, 10.0));
    /// ```
    pub fn from_samples(samples: Vec<f64>) -> Summary {
        let n = samples.len();
        if n == 0 {
            return Summary {
                min: 0.0,
                median: 0.0,
                mean: 0.0,
                max: 0.0,
                stddev: 0.0,
                samples,
            };
        }
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let stddev = if n > 1 {
            (sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Summary {
            min: sorted[0],
            median,
            mean,
            max: sorted[n - 1],
            stddev,
            samples,
        }
    }

    /// Relative standard error of the mean, in percent (`stddev / sqrt(n) / mean`), as
    /// `perf stat -r` prints after `+-`. 0 when the mean is 0.
    pub fn rel_stderr_pct(&self) -> f64 {
        let n = self.samples.len();
        if n == 0 || self.mean == 0.0 {
            return 0.0;
        }
        100.0 * self.stddev / (n as f64).sqrt() / self.mean.abs()
    }
}

#[cfg(test)]
mod tests {
    use super::Summary;

    #[test]
    fn stats() {
        let s = Summary::from_samples(vec![2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(s.mean, 5.0);
        assert_eq!(s.median, 4.5);
        assert!((s.stddev - 2.138).abs() < 1e-3);
        assert!((s.rel_stderr_pct() - 100.0 * 2.138 / 8f64.sqrt() / 5.0).abs() < 1e-2);
        let one = Summary::from_samples(vec![3.0]);
        assert_eq!(
            (one.median, one.stddev, one.rel_stderr_pct()),
            (3.0, 0.0, 0.0)
        );
    }
}
