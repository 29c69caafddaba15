//! Samples, 5-minute windows and per-workload series.
//!
//! Inputs are streamed into a [`SeriesSet`] row by row and folded into 5-minute windows on the fly,
//! so 20 million rows need memory for 4 million windows, not for the rows.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Window length: the model works on 5-minute maxima, as AWS Compute Optimizer does.
pub const WINDOW_MS: i64 = 300_000;
/// A pause between two samples longer than this counts as a gap.
pub const GAP_MS: i64 = 3 * WINDOW_MS;

/// One observation of one workload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample<'a> {
    /// Unix time in milliseconds.
    pub unix_ms: i64,
    /// Workload name.
    pub workload: &'a str,
    /// Instance type it runs on (e.g. `m7i.xlarge`).
    pub instance_type: &'a str,
    /// CPU used, in cores (vCPUs busy), per instance.
    pub cpu_cores: f64,
    /// Memory used, in bytes, per instance.
    pub memory_bytes: f64,
    /// Number of instances of this workload (optional).
    pub instances: Option<f64>,
    /// Requests per second served by one instance (optional).
    pub requests_per_second: Option<f64>,
    /// Observed 99th-percentile latency in milliseconds (optional).
    pub latency_p99_ms: Option<f64>,
}

/// The samples of one 5-minute window, folded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Start of the window, Unix milliseconds, a multiple of [`WINDOW_MS`].
    pub start_ms: i64,
    /// Samples folded in.
    pub samples: u32,
    /// Maximum CPU cores.
    pub cpu_max: f64,
    /// Sum of CPU cores (for the mean).
    pub cpu_sum: f64,
    /// Maximum memory bytes.
    pub memory_max: f64,
    /// Sum and count of instance counts.
    pub instances_sum: f64,
    /// Samples that carried an instance count.
    pub instances_n: u32,
    /// Sum of requests per second.
    pub rps_sum: f64,
    /// Samples that carried a request rate.
    pub rps_n: u32,
    /// Maximum observed p99 latency, ms.
    pub latency_max: f64,
    /// Samples that carried a latency.
    pub latency_n: u32,
}

impl Window {
    fn new(start_ms: i64) -> Window {
        Window {
            start_ms,
            samples: 0,
            cpu_max: 0.0,
            cpu_sum: 0.0,
            memory_max: 0.0,
            instances_sum: 0.0,
            instances_n: 0,
            rps_sum: 0.0,
            rps_n: 0,
            latency_max: 0.0,
            latency_n: 0,
        }
    }

    /// Mean CPU cores in the window.
    pub fn cpu_mean(&self) -> f64 {
        self.cpu_sum / f64::from(self.samples.max(1))
    }

    /// Mean request rate, if any sample had one.
    pub fn rps_mean(&self) -> Option<f64> {
        (self.rps_n > 0).then(|| self.rps_sum / f64::from(self.rps_n))
    }
}

/// The windows of one workload and what was noticed while reading it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Workload name.
    pub workload: String,
    /// Instance type.
    pub instance_type: String,
    /// Where the data came from (file name or Prometheus URL).
    pub source: String,
    /// 5-minute windows in time order (only windows with samples).
    pub windows: Vec<Window>,
    /// Rows read.
    pub samples: u64,
    /// First sample, Unix ms.
    pub first_ms: i64,
    /// Last sample, Unix ms.
    pub last_ms: i64,
    /// Pauses longer than [`GAP_MS`].
    pub gaps: u32,
    /// Longest pause between two samples, ms.
    pub longest_gap_ms: i64,
    /// Set when the series cannot be analysed; says why.
    pub skipped: Option<String>,
    /// What was repaired while reading (rows sorted into time order, identical duplicate rows
    /// merged): the analysis stands, but the data had a problem worth a look. `frugal rightsize
    /// --strict` turns these into errors.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Rows went back in time or repeated a timestamp (then `skipped` says where):
    /// [`crate::read_files`] re-reads such series, sorts and de-duplicates them.
    #[serde(skip)]
    pub(crate) unordered: bool,
}

impl Series {
    fn new(workload: &str, instance_type: &str, source: &str) -> Series {
        Series {
            workload: workload.to_owned(),
            instance_type: instance_type.to_owned(),
            source: source.to_owned(),
            windows: Vec::new(),
            samples: 0,
            first_ms: 0,
            last_ms: 0,
            gaps: 0,
            longest_gap_ms: 0,
            skipped: None,
            warnings: Vec::new(),
            unordered: false,
        }
    }

    /// Hours between the first and the last sample.
    pub fn span_hours(&self) -> f64 {
        (self.last_ms - self.first_ms) as f64 / 3_600_000.0
    }

    fn push(&mut self, s: &Sample<'_>, location: &dyn Fn() -> String) {
        if self.skipped.is_some() {
            return;
        }
        if s.instance_type != self.instance_type {
            self.skipped = Some(format!(
                "instance type changes from {} to {} at {}; give each type its own workload name",
                self.instance_type,
                s.instance_type,
                location()
            ));
            self.windows = Vec::new();
            return;
        }
        if self.samples > 0 {
            let delta = s.unix_ms - self.last_ms;
            if delta <= 0 {
                let what = if delta == 0 {
                    "duplicate"
                } else {
                    "out-of-order"
                };
                self.skipped = Some(format!(
                    "{what} timestamp at {} (rows of a workload must be in increasing time order)",
                    location()
                ));
                self.unordered = true;
                self.windows = Vec::new();
                return;
            }
            if delta > GAP_MS {
                self.gaps += 1;
            }
            self.longest_gap_ms = self.longest_gap_ms.max(delta);
        } else {
            self.first_ms = s.unix_ms;
        }
        self.samples += 1;
        self.last_ms = s.unix_ms;
        let start = s.unix_ms.div_euclid(WINDOW_MS) * WINDOW_MS;
        if self.windows.last().is_none_or(|w| w.start_ms != start) {
            self.windows.push(Window::new(start));
        }
        let w = self
            .windows
            .last_mut()
            .expect("invariant: a window was just ensured");
        w.samples += 1;
        w.cpu_max = w.cpu_max.max(s.cpu_cores);
        w.cpu_sum += s.cpu_cores;
        w.memory_max = w.memory_max.max(s.memory_bytes);
        if let Some(n) = s.instances {
            w.instances_sum += n;
            w.instances_n += 1;
        }
        if let Some(r) = s.requests_per_second {
            w.rps_sum += r;
            w.rps_n += 1;
        }
        if let Some(l) = s.latency_p99_ms {
            w.latency_max = w.latency_max.max(l);
            w.latency_n += 1;
        }
    }
}

/// FNV-1a: workload names are short and trusted enough (a slow hash would cost more than the rest
/// of the row's work at 20 million rows).
#[derive(Clone, Copy, Debug)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

type FnvBuild = std::hash::BuildHasherDefault<Fnv>;

/// One row kept as read, for sorting ([`crate::read_files`]).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RawRow {
    pub(crate) unix_ms: i64,
    /// Shared with the other rows of the same type (one allocation per change, not per row).
    pub(crate) instance_type: Arc<str>,
    pub(crate) values: [f64; 2],
    pub(crate) optional: [Option<f64>; 3],
    /// The input it came from, shared like `instance_type`.
    pub(crate) source: Arc<str>,
    /// Where in it: `line 7`, `record 3`.
    pub(crate) location: Box<str>,
}

impl RawRow {
    /// Same instance type and values (the timestamp aside).
    pub(crate) fn same_values(&self, other: &RawRow) -> bool {
        self.instance_type == other.instance_type
            && self.values == other.values
            && self.optional == other.optional
    }

    /// The row's values in words, for messages.
    pub(crate) fn describe(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| v.to_string());
        format!(
            "{} cpu_cores {} memory_bytes {} instances {} requests_per_second {} latency_p99_ms {}",
            self.instance_type,
            self.values[0],
            self.values[1],
            opt(self.optional[0]),
            opt(self.optional[1]),
            opt(self.optional[2])
        )
    }

    /// `file: line 7`.
    pub(crate) fn at(&self) -> String {
        format!("{}: {}", self.source, self.location)
    }
}

/// Raw mode of a [`SeriesSet`]: the rows of the wanted workloads (the keys of `rows`) are kept
/// as they are.
#[derive(Debug, Default)]
struct Raw {
    rows: HashMap<String, RawRows>,
    /// The last source seen, shared by the rows that repeat it.
    last_source: Option<Arc<str>>,
}

/// The rows of one workload, and its last instance type (shared by the rows that repeat it).
#[derive(Debug, Default)]
struct RawRows {
    rows: Vec<RawRow>,
    last_type: Option<Arc<str>>,
}

/// `last` if it holds `s`, else a new shared copy of `s` (kept in `last`).
fn shared(last: &mut Option<Arc<str>>, s: &str) -> Arc<str> {
    match last {
        Some(a) if &**a == s => Arc::clone(a),
        _ => Arc::clone(last.insert(Arc::from(s))),
    }
}

/// Series of many workloads, built row by row.
#[derive(Debug, Default)]
pub struct SeriesSet {
    /// Set in raw mode (see [`SeriesSet::raw_for`]): rows are kept, not folded.
    raw: Option<Raw>,
    index: HashMap<String, usize, FnvBuild>,
    series: Vec<Series>,
    /// Where each series' first sample came from (for messages when sets are merged).
    first_location: Vec<String>,
    /// The series of the previous sample: rows often cycle through the workloads in a fixed
    /// order, so `last` or `last + 1` usually names the next one without hashing.
    last: usize,
}

impl SeriesSet {
    /// An empty set.
    pub fn new() -> SeriesSet {
        SeriesSet::default()
    }

    /// Adds one sample; `source` names the input and `location` describes the row for messages.
    ///
    /// Problems that concern one workload only (time going backwards, a changing instance type)
    /// mark that series as skipped instead of failing the whole input.
    pub fn push(&mut self, source: &str, sample: &Sample<'_>, location: &dyn Fn() -> String) {
        if let Some(raw) = &mut self.raw {
            if let Some(mine) = raw.rows.get_mut(sample.workload) {
                mine.rows.push(RawRow {
                    unix_ms: sample.unix_ms,
                    instance_type: shared(&mut mine.last_type, sample.instance_type),
                    values: [sample.cpu_cores, sample.memory_bytes],
                    optional: [
                        sample.instances,
                        sample.requests_per_second,
                        sample.latency_p99_ms,
                    ],
                    source: shared(&mut raw.last_source, source),
                    location: location().into_boxed_str(),
                });
            }
            return;
        }
        let next = if self.last + 1 < self.series.len() {
            self.last + 1
        } else {
            0
        };
        let i = if self
            .series
            .get(next)
            .is_some_and(|s| s.workload == sample.workload)
        {
            next
        } else if self
            .series
            .get(self.last)
            .is_some_and(|s| s.workload == sample.workload)
        {
            self.last
        } else {
            match self.index.get(sample.workload) {
                Some(&i) => i,
                None => {
                    self.series
                        .push(Series::new(sample.workload, sample.instance_type, source));
                    self.first_location.push(location());
                    self.index
                        .insert(sample.workload.to_owned(), self.series.len() - 1);
                    self.series.len() - 1
                }
            }
        };
        self.last = i;
        self.series[i].push(sample, location);
    }

    /// Appends `later`, the samples that follow this set's in time (the second half of a file
    /// read in two parts), with the same result as pushing its samples one by one.
    pub fn append(&mut self, later: SeriesSet) {
        let SeriesSet {
            series,
            first_location,
            raw,
            ..
        } = later;
        if let (Some(mine), Some(raw)) = (&mut self.raw, raw) {
            for (workload, later) in raw.rows {
                mine.rows
                    .entry(workload)
                    .or_default()
                    .rows
                    .extend(later.rows);
            }
            return;
        }
        for (s2, loc) in series.into_iter().zip(first_location) {
            let Some(&i) = self.index.get(&s2.workload) else {
                self.index.insert(s2.workload.clone(), self.series.len());
                self.series.push(s2);
                self.first_location.push(loc);
                continue;
            };
            let s1 = &mut self.series[i];
            if s1.skipped.is_some() {
                continue;
            }
            if s2.instance_type != s1.instance_type {
                s1.skipped = Some(format!(
                    "instance type changes from {} to {} at {loc}; give each type its own workload name",
                    s1.instance_type, s2.instance_type
                ));
                s1.windows = Vec::new();
                continue;
            }
            let delta = s2.first_ms - s1.last_ms;
            if delta <= 0 {
                let what = if delta == 0 {
                    "duplicate"
                } else {
                    "out-of-order"
                };
                s1.skipped = Some(format!(
                    "{what} timestamp at {loc} (rows of a workload must be in increasing time order)"
                ));
                s1.unordered = true;
                s1.windows = Vec::new();
                continue;
            }
            if let Some(why) = s2.skipped {
                s1.skipped = Some(why);
                s1.unordered = s2.unordered;
                s1.windows = Vec::new();
                continue;
            }
            if delta > GAP_MS {
                s1.gaps += 1;
            }
            s1.gaps += s2.gaps;
            s1.longest_gap_ms = s1.longest_gap_ms.max(delta).max(s2.longest_gap_ms);
            s1.samples += s2.samples;
            s1.last_ms = s2.last_ms;
            let mut windows = s2.windows.into_iter();
            if let (Some(a), Some(b)) = (s1.windows.last_mut(), windows.as_slice().first()) {
                if a.start_ms == b.start_ms {
                    let b = windows.next().expect("invariant: just peeked");
                    a.samples += b.samples;
                    a.cpu_max = a.cpu_max.max(b.cpu_max);
                    a.cpu_sum += b.cpu_sum;
                    a.memory_max = a.memory_max.max(b.memory_max);
                    a.instances_sum += b.instances_sum;
                    a.instances_n += b.instances_n;
                    a.rps_sum += b.rps_sum;
                    a.rps_n += b.rps_n;
                    a.latency_max = a.latency_max.max(b.latency_max);
                    a.latency_n += b.latency_n;
                }
            }
            s1.windows.extend(windows);
        }
    }

    /// A set in raw mode: the rows of `workloads` are kept as read (others are dropped), for
    /// [`SeriesSet::take_raw`].
    pub(crate) fn raw_for(workloads: impl IntoIterator<Item = String>) -> SeriesSet {
        SeriesSet {
            raw: Some(Raw {
                rows: workloads
                    .into_iter()
                    .map(|w| (w, RawRows::default()))
                    .collect(),
                ..Raw::default()
            }),
            ..SeriesSet::default()
        }
    }

    /// An empty set in the same mode as this one (for the second half of a file).
    pub(crate) fn empty_like(&self) -> SeriesSet {
        match &self.raw {
            Some(raw) => SeriesSet::raw_for(raw.rows.keys().cloned()),
            None => SeriesSet::new(),
        }
    }

    /// The rows kept for `workload` in raw mode, in input order.
    pub(crate) fn take_raw(&mut self, workload: &str) -> Vec<RawRow> {
        self.raw
            .as_mut()
            .and_then(|r| r.rows.remove(workload))
            .map(|r| r.rows)
            .unwrap_or_default()
    }

    /// Orders the series from index `first` on by workload name (the pull path adds workloads as
    /// its chunks reveal them and lists them by name, as a whole-range read would).
    pub(crate) fn sort_from(&mut self, first: usize) {
        if first >= self.series.len() {
            return;
        }
        let mut tail: Vec<(Series, String)> = self
            .series
            .split_off(first)
            .into_iter()
            .zip(self.first_location.split_off(first))
            .collect();
        tail.sort_by(|a, b| a.0.workload.cmp(&b.0.workload));
        for (series, location) in tail {
            self.index
                .insert(series.workload.clone(), self.series.len());
            self.series.push(series);
            self.first_location.push(location);
        }
        self.last = 0;
    }

    /// Replaces the series at `index` (same workload) with `series`.
    pub(crate) fn replace(&mut self, index: usize, series: Series) {
        self.series[index] = series;
    }

    /// Records a workload that cannot be analysed, with the reason (shown in every output
    /// format); a workload already in the set is marked skipped.
    pub fn push_skipped(
        &mut self,
        source: &str,
        workload: &str,
        instance_type: &str,
        reason: String,
    ) {
        let i = match self.index.get(workload) {
            Some(&i) => i,
            None => {
                self.series
                    .push(Series::new(workload, instance_type, source));
                self.first_location.push(source.to_owned());
                self.index
                    .insert(workload.to_owned(), self.series.len() - 1);
                self.series.len() - 1
            }
        };
        let s = &mut self.series[i];
        if s.skipped.is_none() {
            s.skipped = Some(reason);
            s.windows = Vec::new();
        }
    }

    /// Number of workloads.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True when no sample was added.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The series, in order of first appearance.
    pub fn into_series(self) -> Vec<Series> {
        self.series
    }

    /// The series, in order of first appearance.
    pub fn series(&self) -> &[Series] {
        &self.series
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(workload: &str, unix_ms: i64) -> Sample<'_> {
        Sample {
            unix_ms,
            workload,
            instance_type: "m7i.large",
            cpu_cores: 0.5,
            memory_bytes: 1e9,
            instances: None,
            requests_per_second: None,
            latency_p99_ms: None,
        }
    }

    #[test]
    fn sorting_a_tail_by_name_keeps_the_head_and_later_samples_find_their_series() {
        let mut set = SeriesSet::new();
        for (w, t) in [("z", 0), ("c", 0), ("a", 0), ("b", 0)] {
            set.push("src", &sample(w, t), &|| format!("{w} at {t}"));
        }
        set.sort_from(1);
        let names: Vec<&str> = set.series().iter().map(|s| s.workload.as_str()).collect();
        assert_eq!(names, ["z", "a", "b", "c"]);
        // The index follows the move: a later sample of `c` extends `c`, not a new series.
        set.push("src", &sample("c", WINDOW_MS), &|| "c later".to_owned());
        set.push_skipped("src", "b", "m7i.large", "broken".to_owned());
        assert_eq!(set.len(), 4);
        assert_eq!(set.series()[3].samples, 2);
        assert_eq!(set.series()[3].windows.len(), 2);
        assert_eq!(set.series()[2].skipped.as_deref(), Some("broken"));
        set.sort_from(4); // nothing after the end: no change
        assert_eq!(set.series()[0].workload, "z");
    }
}
