//! Reading summaries from report files of every age.
//!
//! The page's repeated figures are [`frugal_output::Summary`] values, the workspace's one
//! sample summary. Report files written before that held only `{n, median, min, max}` (the
//! report's own `Range`); [`opt_summary`] reads both, so `frugal report --from DIR` still loads
//! them.

use std::borrow::Borrow;

use frugal_output::Summary;
use serde::{Deserialize, Deserializer};

/// A summary as a file holds it: every field but the median and the range may be missing.
#[derive(Deserialize)]
struct SummaryFile {
    n: usize,
    median: f64,
    min: f64,
    max: f64,
    p25: Option<f64>,
    p75: Option<f64>,
    mean: Option<f64>,
    stddev: Option<f64>,
    #[serde(default)]
    samples: Vec<f64>,
}

impl From<SummaryFile> for Summary {
    fn from(f: SummaryFile) -> Summary {
        // An old file has no samples and no quartiles: the median stands in for what is
        // missing (the page shows the median and the range only).
        Summary {
            n: f.n,
            min: f.min,
            p25: f.p25.unwrap_or(f.median),
            median: f.median,
            p75: f.p75.unwrap_or(f.median),
            max: f.max,
            mean: f.mean.unwrap_or(f.median),
            stddev: f.stddev.unwrap_or(0.0),
            samples: f.samples,
        }
    }
}

/// `deserialize_with` for an `Option<Summary>` field that old files hold as a `Range`.
pub(crate) fn opt_summary<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Summary>, D::Error> {
    Ok(Option::<SummaryFile>::deserialize(d)?.map(Summary::from))
}

/// The entries with the lowest and the highest median (the cheapest and the dearest strategy);
/// `None` for fewer than two entries.
pub(crate) fn lowest_and_highest<K, S: Borrow<Summary>>(
    entries: &[(K, S)],
) -> Option<Extremes<'_, K, S>> {
    if entries.len() < 2 {
        return None;
    }
    let median = |e: &&(K, S)| e.1.borrow().median;
    Some((
        entries
            .iter()
            .min_by(|a, b| median(a).total_cmp(&median(b)))?,
        entries
            .iter()
            .max_by(|a, b| median(a).total_cmp(&median(b)))?,
    ))
}

/// The lowest and the highest of [`lowest_and_highest`].
pub(crate) type Extremes<'a, K, S> = (&'a (K, S), &'a (K, S));

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        #[serde(default, deserialize_with = "opt_summary")]
        s: Option<Summary>,
    }

    #[test]
    fn reads_old_ranges_and_new_summaries() {
        let old: Holder =
            serde_json::from_str(r#"{"s": {"n": 3, "median": 2.0, "min": 1.0, "max": 3.0}}"#)
                .unwrap();
        let s = old.s.unwrap();
        assert_eq!(
            (s.n, s.median, s.min, s.max, s.p25),
            (3, 2.0, 1.0, 3.0, 2.0)
        );
        let new = Summary::from_samples(vec![1.0, 2.0, 4.0]);
        let json = format!(r#"{{"s": {}}}"#, serde_json::to_string(&new).unwrap());
        let back: Holder = serde_json::from_str(&json).unwrap();
        assert_eq!(back.s.unwrap(), new);
        let none: Holder = serde_json::from_str(r#"{"s": null}"#).unwrap();
        assert!(none.s.is_none());
        let absent: Holder = serde_json::from_str("{}").unwrap();
        assert!(absent.s.is_none());
    }
}
