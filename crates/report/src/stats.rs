//! The one summary the page shows for repeated figures: median and range.

use serde::{Deserialize, Serialize};

/// Median, minimum and maximum of `n` values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Range {
    /// How many values.
    pub n: u32,
    /// Their median.
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Range {
    /// Summarises `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Range> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Range {
            n: v.len() as u32,
            median: median(&v),
            min: v[0],
            max: v[v.len() - 1],
        })
    }
}

/// Median of sorted, non-empty `v`.
pub fn median(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_of_odd_even_and_empty() {
        let r = Range::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((r.n, r.median, r.min, r.max), (3, 2.0, 1.0, 3.0));
        assert_eq!(Range::of(&[4.0, 1.0]).unwrap().median, 2.5);
        assert!(Range::of(&[]).is_none());
        assert!(Range::of(&[f64::NAN]).is_none());
    }
}
