//! Samples to a summary.

use serde::{Deserialize, Serialize};

/// Wall time per operation over repeated samples, in nanoseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Median of the samples.
    pub median: f64,
    /// 25th percentile.
    pub p25: f64,
    /// 75th percentile.
    pub p75: f64,
    /// Fastest sample.
    pub min: f64,
    /// Slowest sample.
    pub max: f64,
    /// Operations timed per sample.
    pub iters_per_sample: u64,
    /// The raw samples (ns per operation), in the order taken.
    pub samples: Vec<f64>,
}

impl Spread {
    /// Summarizes samples (ns per operation). An empty list gives zeros.
    pub fn from_samples(samples: Vec<f64>, iters_per_sample: u64) -> Spread {
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        Spread {
            median: quantile(&sorted, 0.5),
            p25: quantile(&sorted, 0.25),
            p75: quantile(&sorted, 0.75),
            min: sorted.first().copied().unwrap_or(0.0),
            max: sorted.last().copied().unwrap_or(0.0),
            iters_per_sample,
            samples,
        }
    }

    /// Half the interquartile range relative to the median, in percent: the "±" of the table.
    pub fn spread_percent(&self) -> f64 {
        if self.median > 0.0 {
            (self.p75 - self.p25) / 2.0 / self.median * 100.0
        } else {
            0.0
        }
    }
}

/// Linear-interpolated quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        1 => sorted[0],
        n => {
            let pos = q * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = pos.ceil() as usize;
            sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_samples() {
        let s = Spread::from_samples(vec![5.0, 1.0, 3.0, 2.0, 4.0], 10);
        assert_eq!(s.median, 3.0);
        assert_eq!(s.p25, 2.0);
        assert_eq!(s.p75, 4.0);
        assert_eq!((s.min, s.max), (1.0, 5.0));
        assert!((s.spread_percent() - 100.0 / 3.0).abs() < 1e-9);
        assert_eq!(s.samples, vec![5.0, 1.0, 3.0, 2.0, 4.0]);
    }

    #[test]
    fn empty_and_single() {
        assert_eq!(Spread::from_samples(vec![], 1).median, 0.0);
        assert_eq!(Spread::from_samples(vec![7.0], 1).p75, 7.0);
    }
}
