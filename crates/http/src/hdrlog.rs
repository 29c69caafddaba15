//! Interval histograms in the HdrHistogram log format, and merging the logs of many generators.
//!
//! One load generator saturates before a real service does, so people run several and must
//! combine their latencies: averaging percentiles is wrong, adding histograms is right. The
//! standard interchange is the HdrHistogram interval log (`HistogramLogWriter` in Java, wrk2's
//! `-B`/log output, `hdrhistogram::serialization::interval_log` here): one compressed histogram
//! per interval, each line `Tag=T,start,duration,max,base64`.
//!
//! [`IntervalLog`] records a run ([`crate::LoadConfig::hdr_log`]) and writes, per interval
//! (1 s by default) of the measured window, histograms tagged `uncorrected` (send to response),
//! `corrected` (intended send to response, constant-rate mode only) and `errors` (its *count* is
//! the number of failed requests in the interval; its values mean nothing). Values are
//! nanoseconds. [`merge`] reads any number of such logs and adds them: throughput is summed,
//! percentiles come from the merged histograms, errors are summed. Untagged histograms (other
//! tools' logs) are read as `uncorrected`.
//!
//! Recording takes a mutex per response (the load threads share the open intervals), so a run
//! with `--hdr-log` costs a little more per request than one without.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use crate::latency::{histogram, LatencySummary};
use crate::Error;

/// The histograms of one interval.
struct Slot {
    uncorrected: Histogram<u64>,
    corrected: Histogram<u64>,
    errors: u64,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            uncorrected: histogram(),
            corrected: histogram(),
            errors: 0,
        }
    }
}

/// One finished interval, on its way to the writer thread.
struct Closed {
    index: u64,
    /// The interval's length: the last one ends with the window.
    length: Duration,
    slot: Slot,
}

struct State {
    /// Start of the measured window; `None` until [`IntervalLog::begin`].
    window: Option<(Instant, Duration)>,
    /// Open intervals by index.
    open: BTreeMap<u64, Slot>,
    /// Intervals below this index were sent to the writer.
    next: u64,
    /// Responses that arrived for an interval already written (recorded in the oldest open one).
    late: u64,
    tx: Option<mpsc::Sender<Closed>>,
}

/// Records interval histograms of a load run and writes them to a file as the run goes.
pub struct IntervalLog {
    path: PathBuf,
    interval: Duration,
    corrected: bool,
    state: Mutex<State>,
    writer: Mutex<Option<JoinHandle<std::io::Result<()>>>>,
}

impl std::fmt::Debug for IntervalLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntervalLog")
            .field("path", &self.path)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// Intervals kept open behind the newest one, for responses that complete out of order.
const KEEP_OPEN: u64 = 2;

impl IntervalLog {
    /// Creates `path` and starts the writer; `corrected` says whether `corrected` histograms are
    /// written (constant-rate mode).
    pub fn create(path: &Path, interval: Duration, corrected: bool) -> Result<IntervalLog, Error> {
        if interval.is_zero() {
            return Err(log_err(path, "the interval must be positive", None));
        }
        let file = std::fs::File::create(path)
            .map_err(|e| log_err(path, "cannot create the log", Some(e)))?;
        let (tx, rx) = mpsc::channel::<Closed>();
        let seconds = interval.as_secs_f64();
        let handle = std::thread::Builder::new()
            .name("frugal-hdr-log".to_owned())
            .spawn(move || write_log(file, rx, seconds, corrected))
            .map_err(|e| log_err(path, "cannot start the log writer thread", Some(e)))?;
        Ok(IntervalLog {
            path: path.to_owned(),
            interval,
            corrected,
            state: Mutex::new(State {
                window: None,
                open: BTreeMap::new(),
                next: 0,
                late: 0,
                tx: Some(tx),
            }),
            writer: Mutex::new(Some(handle)),
        })
    }

    /// The measured window starts at `start` and lasts `duration`.
    pub fn begin(&self, start: Instant, duration: Duration) {
        self.state.lock().expect("never poisoned").window = Some((start, duration));
    }

    fn slots(&self) -> u64 {
        let state = self.state.lock().expect("never poisoned");
        state.window.map_or(0, |(_, d)| {
            (d.as_nanos().div_ceil(self.interval.as_nanos().max(1))) as u64
        })
    }

    fn with_slot(&self, at: Instant, f: impl FnOnce(&mut Slot)) {
        let last = self.slots().saturating_sub(1);
        let mut state = self.state.lock().expect("never poisoned");
        let Some((start, _)) = state.window else {
            return;
        };
        let k = (at.saturating_duration_since(start).as_nanos() / self.interval.as_nanos()) as u64;
        let mut k = k.min(last);
        if k < state.next {
            state.late += 1;
            k = state.next;
        }
        f(state.open.entry(k).or_insert_with(Slot::new));
        // Hand intervals well behind the newest one to the writer.
        let newest = *state.open.keys().next_back().expect("just inserted");
        let upto = newest.saturating_sub(KEEP_OPEN);
        flush(&mut state, upto, self.interval);
    }

    /// A response completed at `at`: latency from the send, and from the intended send.
    pub fn record(&self, at: Instant, uncorrected_ns: u64, corrected_ns: Option<u64>) {
        self.with_slot(at, |s| {
            s.uncorrected.saturating_record(uncorrected_ns.max(1));
            if let Some(c) = corrected_ns {
                s.corrected.saturating_record(c.max(1));
            }
        });
    }

    /// `n` requests failed around `at`.
    pub fn record_errors(&self, at: Instant, n: u64) {
        self.with_slot(at, |s| s.errors += n);
    }

    /// Writes the remaining intervals (empty ones too, so that the log covers the whole window)
    /// and closes the file; returns the number of responses recorded in a later interval than
    /// the one they completed in.
    pub fn finish(&self) -> Result<u64, Error> {
        let slots = self.slots();
        let late = {
            let mut state = self.state.lock().expect("never poisoned");
            flush(&mut state, slots, self.interval);
            state.tx = None;
            state.late
        };
        let handle = self.writer.lock().expect("never poisoned").take();
        if let Some(h) = handle {
            h.join()
                .expect("the log writer does not panic")
                .map_err(|e| log_err(&self.path, "cannot write the log", Some(e)))?;
        }
        Ok(late)
    }

    /// Whether `corrected` histograms are written.
    pub fn corrected(&self) -> bool {
        self.corrected
    }
}

fn log_err(path: &Path, message: &str, source: Option<std::io::Error>) -> Error {
    Error::HdrLog {
        path: path.to_owned(),
        message: message.to_owned(),
        source,
    }
}

/// Sends every interval below `upto` (empty ones included) to the writer.
fn flush(state: &mut State, upto: u64, interval: Duration) {
    let window = state.window.map_or(Duration::ZERO, |w| w.1);
    while state.next < upto {
        let k = state.next;
        let slot = state.open.remove(&k).unwrap_or_else(Slot::new);
        let begin = interval.saturating_mul(u32::try_from(k).unwrap_or(u32::MAX));
        let length = interval.min(window.saturating_sub(begin));
        if let Some(tx) = &state.tx {
            // The writer lives until `tx` is dropped in `finish`.
            let _ = tx.send(Closed {
                index: k,
                length,
                slot,
            });
        }
        state.next += 1;
    }
}

fn write_log(
    file: std::fs::File,
    rx: mpsc::Receiver<Closed>,
    interval_s: f64,
    corrected: bool,
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(file);
    let mut serializer = V2DeflateSerializer::new();
    let now = SystemTime::now();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment("frugal load: interval histograms; values in nanoseconds")
        .add_comment("tags: uncorrected (send to response), corrected (intended send to response), errors (count = failed requests)")
        .with_start_time(now)
        .with_base_time(now)
        .with_max_value_divisor(1e6)
        .begin_log_with(&mut out, &mut serializer)
        .map_err(std::io::Error::other)?;
    let tags = [
        Tag::new("uncorrected").expect("a valid tag"),
        Tag::new("corrected").expect("a valid tag"),
        Tag::new("errors").expect("a valid tag"),
    ];
    let mut errors_h = histogram();
    for Closed {
        index,
        length,
        slot,
    } in rx
    {
        let start = Duration::from_secs_f64(index as f64 * interval_s);
        log.write_histogram(&slot.uncorrected, start, length, Some(tags[0]))
            .map_err(std::io::Error::other)?;
        if corrected {
            log.write_histogram(&slot.corrected, start, length, Some(tags[1]))
                .map_err(std::io::Error::other)?;
        }
        errors_h.reset();
        if slot.errors > 0 {
            errors_h
                .record_n(1, slot.errors)
                .expect("1 is within the bounds");
        }
        log.write_histogram(&errors_h, start, length, Some(tags[2]))
            .map_err(std::io::Error::other)?;
    }
    drop(log);
    out.flush()
}

/// What one log held.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogSummary {
    /// The file.
    pub path: String,
    /// Seconds covered (sum of the `uncorrected` intervals' durations).
    pub duration_s: f64,
    /// Responses (count of the `uncorrected` histograms).
    pub requests_ok: u64,
    /// Failed requests (count of the `errors` histograms).
    pub errors: u64,
    /// Responses per second.
    pub achieved_rps: f64,
}

/// The logs of several generators, combined.
#[derive(Debug, Clone)]
pub struct Merged {
    /// One entry per log, in the order given.
    pub logs: Vec<LogSummary>,
    /// All `uncorrected` histograms added.
    pub uncorrected: Histogram<u64>,
    /// All `corrected` histograms added (`None` when no log had any).
    pub corrected: Option<Histogram<u64>>,
    /// Sum of the logs' throughputs, responses per second.
    pub achieved_rps: f64,
    /// Sum of the errors.
    pub errors: u64,
}

/// Reads and adds the interval logs at `paths`.
pub fn merge(paths: &[PathBuf]) -> Result<Merged, Error> {
    let mut merged = Merged {
        logs: Vec::new(),
        uncorrected: histogram(),
        corrected: None,
        achieved_rps: 0.0,
        errors: 0,
    };
    let mut deserializer = Deserializer::new();
    for path in paths {
        let bad = |m: String| log_err(path, &m, None);
        let bytes =
            std::fs::read(path).map_err(|e| log_err(path, "cannot read the log", Some(e)))?;
        let mut summary = LogSummary {
            path: path.display().to_string(),
            duration_s: 0.0,
            requests_ok: 0,
            errors: 0,
            achieved_rps: 0.0,
        };
        let mut intervals = 0usize;
        for (i, entry) in IntervalLogIterator::new(&bytes).enumerate() {
            let entry = entry.map_err(|e| {
                bad(format!(
                    "entry {}: not an HdrHistogram interval log ({e:?}); write one with `frugal load --hdr-log FILE`",
                    i + 1
                ))
            })?;
            let LogEntry::Interval(h) = entry else {
                continue;
            };
            let raw = base64::engine::general_purpose::STANDARD
                .decode(h.encoded_histogram())
                .map_err(|e| bad(format!("interval {}: bad base64: {e}", intervals + 1)))?;
            let hist: Histogram<u64> = deserializer
                .deserialize(&mut raw.as_slice())
                .map_err(|e| bad(format!("interval {}: bad histogram: {e:?}", intervals + 1)))?;
            intervals += 1;
            let add = |into: &mut Histogram<u64>| {
                into.add(&hist)
                    .map_err(|e| bad(format!("interval {intervals}: {e:?}")))
            };
            match h.tag().map(|t| t.as_str()) {
                None | Some("uncorrected") => {
                    add(&mut merged.uncorrected)?;
                    summary.requests_ok += hist.len();
                    summary.duration_s += h.duration().as_secs_f64();
                }
                Some("corrected") => add(merged.corrected.get_or_insert_with(histogram))?,
                Some("errors") => summary.errors += hist.len(),
                Some(_) => {}
            }
        }
        if intervals == 0 {
            return Err(bad(
                "no interval histograms; write one with `frugal load --hdr-log FILE`".to_owned(),
            ));
        }
        if summary.duration_s > 0.0 {
            summary.achieved_rps = summary.requests_ok as f64 / summary.duration_s;
        }
        merged.achieved_rps += summary.achieved_rps;
        merged.errors += summary.errors;
        merged.logs.push(summary);
    }
    Ok(merged)
}

/// The merged report (the JSON of `frugal load merge --json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct MergedReport {
    /// Per log: duration, responses, errors, throughput.
    pub logs: Vec<LogSummary>,
    /// Sum of the generators' throughputs, responses per second.
    pub achieved_rps: f64,
    /// Responses, all generators.
    pub requests_ok: u64,
    /// Failed requests, all generators.
    pub errors: u64,
    /// Latency from the send, merged.
    pub latency_ns: LatencySummary,
    /// Latency from the intended send (constant-rate runs), merged.
    pub latency_corrected_ns: Option<LatencySummary>,
}

impl Merged {
    /// Percentiles and totals.
    pub fn report(&self) -> MergedReport {
        MergedReport {
            logs: self.logs.clone(),
            achieved_rps: self.achieved_rps,
            requests_ok: self.uncorrected.len(),
            errors: self.errors,
            latency_ns: LatencySummary::of(&self.uncorrected),
            latency_corrected_ns: self.corrected.as_ref().map(LatencySummary::of),
        }
    }
}

/// Milliseconds with three decimals (the merged report's latency unit).
fn ms(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

impl frugal_output::Render for MergedReport {
    const SCHEMA: &'static str = "frugal-load-merge";
    const VERSION: u32 = 1;

    fn document(&self) -> frugal_output::Document {
        use frugal_output::{Align, Document, Table};
        let r = self;
        let mut doc = Document::new(format!("{} generators merged", r.logs.len()));
        let mut logs = Table::new([
            ("log", Align::Left),
            ("ok", Align::Right),
            ("errors", Align::Right),
            ("seconds", Align::Right),
            ("req/s", Align::Right),
        ])
        .indent(2);
        for l in &r.logs {
            logs.row([
                l.path.clone(),
                l.requests_ok.to_string(),
                l.errors.to_string(),
                format!("{:.1}", l.duration_s),
                format!("{:.0}", l.achieved_rps),
            ]);
        }
        doc.table(logs);
        doc.line(format!("  throughput   {:.0} req/s (sum)", r.achieved_rps));
        doc.line(format!(
            "  requests     {} ok, {} errors",
            r.requests_ok, r.errors
        ));
        let mut latency = Table::new([
            ("latency", Align::Left),
            ("p50", Align::Right),
            ("p90", Align::Right),
            ("p99", Align::Right),
            ("p99.9", Align::Right),
            ("max", Align::Right),
        ])
        .indent(2);
        let row = |label: &str, p: &LatencySummary| {
            vec![
                label.to_owned(),
                ms(p.p50),
                ms(p.p90),
                ms(p.p99),
                ms(p.p999),
                ms(p.max),
            ]
        };
        latency.row(row("measured", &r.latency_ns));
        if let Some(c) = &r.latency_corrected_ns {
            latency.row(row("corrected", c));
        }
        doc.table(latency);
        doc.note(
            "percentiles of the merged histograms (never averaged); corrected = from the intended \
             send time (constant-rate runs)",
        );
        doc
    }

    /// One row per log (its throughput and counts), then a `merged` row with the sums and the
    /// merged percentiles, raw nanoseconds; a log's own percentiles are not in the log's
    /// summary, so its latency cells are empty.
    fn csv_table(&self) -> Option<frugal_output::Table> {
        use crate::load_report::{latency_csv_cells, latency_csv_headers};
        let mut headers: Vec<String> =
            ["log", "duration_s", "requests_ok", "errors", "achieved_rps"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        headers.extend(latency_csv_headers("latency"));
        headers.extend(latency_csv_headers("corrected"));
        let mut t = frugal_output::Table::numeric(headers);
        for l in &self.logs {
            let mut row = vec![
                l.path.clone(),
                l.duration_s.to_string(),
                l.requests_ok.to_string(),
                l.errors.to_string(),
                l.achieved_rps.to_string(),
            ];
            row.extend(latency_csv_cells(None));
            row.extend(latency_csv_cells(None));
            t.row(row);
        }
        let mut row = vec![
            "merged".to_owned(),
            String::new(),
            self.requests_ok.to_string(),
            self.errors.to_string(),
            self.achieved_rps.to_string(),
        ];
        row.extend(latency_csv_cells(Some(&self.latency_ns)));
        row.extend(latency_csv_cells(self.latency_corrected_ns.as_ref()));
        t.row(row);
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random latency in 10 µs .. 50 ms.
    fn latency(i: u64) -> u64 {
        let x = i
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        10_000 + (x >> 33) % 50_000_000
    }

    #[test]
    fn merged_percentiles_are_those_of_the_union_of_the_samples() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let start = Instant::now();
        let mut all: Vec<u64> = Vec::new();
        let mut paths = Vec::new();
        for g in 0..2u64 {
            let path = dir.path().join(format!("g{g}.hlog"));
            let log = IntervalLog::create(&path, Duration::from_millis(100), true)
                .expect("the log is created");
            log.begin(start, Duration::from_secs(1));
            log.record_errors(start + Duration::from_millis(50), 3);
            // Generator 1 is slower: the union differs from either half.
            for i in 0..5_000u64 {
                let v = latency(i * 2 + g) * (1 + 3 * g);
                let at = start + Duration::from_micros(i * 200);
                log.record(at, v, Some(v + 1_000));
                all.push(v);
            }
            assert_eq!(log.finish().expect("written"), 0, "nothing out of order");
            paths.push(path);
        }
        let merged = merge(&paths).expect("the logs merge");
        assert_eq!(merged.uncorrected.len(), 10_000);
        assert_eq!(merged.errors, 6);
        assert!((merged.logs[0].duration_s - 1.0).abs() < 0.01);
        // Each generator: 5,000 responses in 1 s; summed.
        assert!((merged.achieved_rps - 10_000.0).abs() < 100.0);
        all.sort_unstable();
        for q in [0.5, 0.9, 0.99, 0.999] {
            let exact = all[((q * all.len() as f64).ceil() as usize).max(1) - 1];
            let got = merged.uncorrected.value_at_quantile(q);
            // Equal within the histogram's resolution (3 significant digits).
            assert!(
                merged.uncorrected.equivalent(got, exact),
                "q {q}: merged {got}, union of the samples {exact}"
            );
        }
        let report = merged.report();
        assert_eq!(report.latency_ns.count, 10_000);
        let text = frugal_output::Render::document(&report).to_text(&frugal_output::Style::plain());
        assert!(text.starts_with("2 generators merged\n"), "{text}");
        assert!(text.contains(&ms(report.latency_ns.p99)), "{text}");
        let csv = frugal_output::Render::csv_table(&report)
            .expect("a table")
            .to_csv();
        assert_eq!(csv.lines().count(), 4, "{csv}");
        assert!(
            csv.lines()
                .last()
                .expect("the merged row")
                .starts_with("merged,,10000,6,"),
            "{csv}"
        );
        let c = merged.corrected.expect("corrected histograms were written");
        assert_eq!(c.len(), 10_000);
    }

    #[test]
    fn not_a_log_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("x.hlog");
        std::fs::write(&path, "hello\n").expect("written");
        let err = merge(&[path]).expect_err("not a log").to_string();
        assert!(err.contains("frugal load --hdr-log"), "{err}");
    }
}
