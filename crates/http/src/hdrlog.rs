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
//! nanoseconds; the log's `StartTime` and `BaseTime` are the wall-clock start of the measured
//! window (after the warm-up) and the intervals count from it. [`merge`] reads any number of
//! such logs and adds them: throughput is summed, percentiles come from the merged histograms,
//! errors are summed — over the window in which every generator was measuring, for logs of
//! generators that ran together (the same log twice, or logs recorded apart, are refused).
//! Untagged histograms (other tools' logs) are read as `uncorrected`.
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

/// What the writer thread receives: the measured window's wall-clock start (first), then the
/// finished intervals.
enum ToWriter {
    /// The measured window starts at this wall-clock time: the log's `StartTime` and
    /// `BaseTime`, so that [`merge`] can tell whether generators ran at the same time.
    Begin(SystemTime),
    /// A finished interval (boxed: its histograms are large, the start is a timestamp).
    Interval(Box<Closed>),
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
    tx: Option<mpsc::Sender<ToWriter>>,
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
        let (tx, rx) = mpsc::channel::<ToWriter>();
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

    /// The measured window starts at `start` and lasts `duration`; the log's `StartTime` and
    /// `BaseTime` are the wall-clock time of `start`, and the intervals' timestamps count from
    /// it.
    pub fn begin(&self, start: Instant, duration: Duration) {
        let (now, wall_now) = (Instant::now(), SystemTime::now());
        let wall = if start >= now {
            wall_now + (start - now)
        } else {
            wall_now - (now - start)
        };
        let mut state = self.state.lock().expect("never poisoned");
        state.window = Some((start, duration));
        if let Some(tx) = &state.tx {
            // The writer lives until `tx` is dropped in `finish`.
            let _ = tx.send(ToWriter::Begin(wall));
        }
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
            let _ = tx.send(ToWriter::Interval(Box::new(Closed {
                index: k,
                length,
                slot,
            })));
        }
        state.next += 1;
    }
}

fn write_log(
    file: std::fs::File,
    rx: mpsc::Receiver<ToWriter>,
    interval_s: f64,
    corrected: bool,
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(file);
    let mut serializer = V2DeflateSerializer::new();
    // The header waits for the window's start: it is the time the intervals count from. A run
    // that never began (no connection) gets the current time and no intervals.
    let first = rx.recv().ok();
    let (start, pending) = match first {
        Some(ToWriter::Begin(at)) => (at, None),
        Some(ToWriter::Interval(c)) => (SystemTime::now(), Some(c)),
        None => (SystemTime::now(), None),
    };
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment("frugal load: interval histograms; values in nanoseconds")
        .add_comment("tags: uncorrected (send to response), corrected (intended send to response), errors (count = failed requests)")
        .add_comment("StartTime = BaseTime = start of the measured window (after the warm-up)")
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1e6)
        .begin_log_with(&mut out, &mut serializer)
        .map_err(std::io::Error::other)?;
    let tags = [
        Tag::new("uncorrected").expect("a valid tag"),
        Tag::new("corrected").expect("a valid tag"),
        Tag::new("errors").expect("a valid tag"),
    ];
    let mut errors_h = histogram();
    let rest = rx.into_iter().filter_map(|m| match m {
        ToWriter::Interval(c) => Some(c),
        ToWriter::Begin(_) => None,
    });
    for closed in pending.into_iter().chain(rest) {
        let Closed {
            index,
            length,
            slot,
        } = *closed;
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

/// What one log held (within the merged window).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogSummary {
    /// The file.
    pub path: String,
    /// Wall-clock start of the log's first interval, Unix seconds (`None`: the log has no
    /// `StartTime`/`BaseTime` and no absolute timestamps, so it cannot be placed in time).
    pub span_start_unix_s: Option<f64>,
    /// Wall-clock end of the log's last interval, Unix seconds.
    pub span_end_unix_s: Option<f64>,
    /// Seconds merged (sum of the kept `uncorrected` intervals' durations).
    pub duration_s: f64,
    /// Seconds of the log left out because not every generator was measuring then.
    pub trimmed_s: f64,
    /// Responses (count of the kept `uncorrected` histograms).
    pub requests_ok: u64,
    /// Failed requests (count of the kept `errors` histograms).
    pub errors: u64,
    /// Responses per second over the kept intervals.
    pub achieved_rps: f64,
}

/// The wall-clock window in which every generator was measuring.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Window {
    /// The latest of the logs' starts, Unix seconds.
    pub start_unix_s: f64,
    /// The earliest of the logs' ends, Unix seconds.
    pub end_unix_s: f64,
}

impl Window {
    /// Its length in seconds.
    pub fn seconds(&self) -> f64 {
        self.end_unix_s - self.start_unix_s
    }
}

/// The logs of several generators, combined.
#[derive(Debug, Clone)]
pub struct Merged {
    /// One entry per log, in the order given.
    pub logs: Vec<LogSummary>,
    /// The window every generator was measuring in (`None` when no log can be placed in time).
    pub window: Option<Window>,
    /// All kept `uncorrected` histograms added.
    pub uncorrected: Histogram<u64>,
    /// All kept `corrected` histograms added (`None` when no log had any).
    pub corrected: Option<Histogram<u64>>,
    /// Sum of the logs' throughputs, responses per second.
    pub achieved_rps: f64,
    /// Sum of the errors.
    pub errors: u64,
    /// What was done to make the logs comparable (trimming, logs that cannot be placed in
    /// time).
    pub notes: Vec<String>,
}

/// The logs to merge must share at least this fraction of the shortest log's span.
///
/// Generators started together (an ssh loop, a Kubernetes Job's pods) start seconds apart on
/// runs of a minute or more: they share nearly all of their spans, and [`merge`] trims the
/// edges. Below one half, most of at least one generator's measurement was taken while the
/// others were not running: those logs are not of one joint run (runs in sequence share
/// nothing), and summing their throughputs would describe a load the service never saw.
pub const MIN_SHARED_FRACTION: f64 = 0.5;

/// A timestamp more than a year below `StartTime` is relative to it (the rule of Java's
/// `HistogramLogReader` for logs without `BaseTime`).
const YEAR_S: f64 = 365.0 * 24.0 * 3600.0;

/// The timing of one log, read without decoding its histograms.
struct Scanned {
    /// Start (absolute seconds, or relative when not `anchored`) and duration of every
    /// interval, in file order.
    times: Vec<(f64, f64)>,
    /// Whether the times are wall-clock times.
    anchored: bool,
    /// First start and last end.
    span: (f64, f64),
}

fn scan(path: &Path, bytes: &[u8]) -> Result<Scanned, Error> {
    let (mut base, mut start) = (None::<f64>, None::<f64>);
    let mut times = Vec::new();
    let mut anchored = true;
    for (i, entry) in IntervalLogIterator::new(bytes).enumerate() {
        let entry = entry.map_err(|e| {
            log_err(
                path,
                &format!(
                    "entry {}: not an HdrHistogram interval log ({e:?}); write one with `frugal load --hdr-log FILE`",
                    i + 1
                ),
                None,
            )
        })?;
        match entry {
            LogEntry::StartTime(t) => start = Some(t.as_secs_f64()),
            LogEntry::BaseTime(t) => base = Some(t.as_secs_f64()),
            LogEntry::Interval(h) => {
                let ts = h.start_timestamp().as_secs_f64();
                let (at, placed) = match (base, start) {
                    (Some(b), _) => (b + ts, true),
                    (None, Some(s)) if ts < s - YEAR_S => (s + ts, true),
                    (None, Some(_)) => (ts, true),
                    (None, None) => (ts, ts >= YEAR_S),
                };
                anchored &= placed;
                times.push((at, h.duration().as_secs_f64()));
            }
        }
    }
    if times.is_empty() {
        return Err(log_err(
            path,
            "no interval histograms; write one with `frugal load --hdr-log FILE`",
            None,
        ));
    }
    let first = times.iter().map(|t| t.0).fold(f64::INFINITY, f64::min);
    let last = times
        .iter()
        .map(|t| t.0 + t.1)
        .fold(f64::NEG_INFINITY, f64::max);
    Ok(Scanned {
        times,
        anchored,
        span: (first, last),
    })
}

/// Whether an interval starting at `at` and lasting `length` seconds belongs to `window`: at
/// least half of it lies inside (so each generator keeps about the window's length, to within
/// half an interval at either end).
fn in_window(at: f64, length: f64, window: Window) -> bool {
    if length <= 0.0 {
        return at >= window.start_unix_s && at <= window.end_unix_s;
    }
    let inside = (at + length).min(window.end_unix_s) - at.max(window.start_unix_s);
    inside >= length / 2.0
}

/// A wall-clock time (Unix seconds) as RFC 3339, UTC, milliseconds.
fn utc(unix_s: f64) -> String {
    // The log's times have millisecond resolution: round, do not truncate.
    let t = std::time::UNIX_EPOCH + Duration::from_millis((unix_s.max(0.0) * 1e3).round() as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// `path: start – end (seconds)`.
fn describe_span(path: &Path, span: (f64, f64)) -> String {
    format!(
        "{} {} – {} ({:.1} s)",
        path.display(),
        utc(span.0),
        utc(span.1),
        span.1 - span.0
    )
}

/// Reads and adds the interval logs at `paths`, generators that ran at the same time against
/// one service.
///
/// Refuses the same file given twice (the same path, or identical contents holding latency
/// samples: [`Error::HdrLogDuplicate`]) and logs that were not recorded together
/// ([`Error::HdrLogApart`]: they share less than [`MIN_SHARED_FRACTION`] of the shortest log's
/// span, from their `StartTime`/`BaseTime` and interval timestamps). Logs that share only part
/// of their spans are trimmed to the window in which every generator was measuring: an
/// interval is kept when at least half of it lies inside; throughput, errors and percentiles
/// come from the kept intervals, and [`Merged::notes`] says what was left out. A log without
/// wall-clock times (another tool's, without `StartTime`/`BaseTime`) cannot be placed in time:
/// it is merged whole and a note says so.
pub fn merge(paths: &[PathBuf]) -> Result<Merged, Error> {
    let mut files: Vec<(&PathBuf, PathBuf, Vec<u8>)> = Vec::new();
    for path in paths {
        let bytes =
            std::fs::read(path).map_err(|e| log_err(path, "cannot read the log", Some(e)))?;
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        for (other, other_key, _) in &files {
            if *other_key == key {
                return Err(Error::HdrLogDuplicate {
                    first: (*other).clone(),
                    second: path.clone(),
                    same_file: true,
                });
            }
        }
        files.push((path, key, bytes));
    }
    let scanned = files
        .iter()
        .map(|(path, _, bytes)| scan(path, bytes))
        .collect::<Result<Vec<_>, _>>()?;

    let mut notes = Vec::new();
    let placed: Vec<usize> = (0..scanned.len())
        .filter(|&i| scanned[i].anchored)
        .collect();
    let window = (!placed.is_empty()).then(|| Window {
        start_unix_s: placed
            .iter()
            .map(|&i| scanned[i].span.0)
            .fold(f64::NEG_INFINITY, f64::max),
        end_unix_s: placed
            .iter()
            .map(|&i| scanned[i].span.1)
            .fold(f64::INFINITY, f64::min),
    });
    if let Some(w) = window {
        let shortest = placed
            .iter()
            .map(|&i| scanned[i].span.1 - scanned[i].span.0)
            .fold(f64::INFINITY, f64::min);
        if w.seconds() <= 0.0 || w.seconds() < MIN_SHARED_FRACTION * shortest {
            let spans: Vec<String> = placed
                .iter()
                .map(|&i| describe_span(files[i].0, scanned[i].span))
                .collect();
            return Err(Error::HdrLogApart {
                message: format!(
                    "these logs were not recorded at the same time: {}; they share {:.1} s, less \
                     than {:.0}% of the shortest ({shortest:.1} s). Merge only the logs of \
                     generators that ran together against one service (start them together: \
                     merge keeps the window in which all were measuring)",
                    spans.join(", "),
                    w.seconds().max(0.0),
                    MIN_SHARED_FRACTION * 100.0,
                ),
            });
        }
    }
    for (i, s) in scanned.iter().enumerate() {
        if !s.anchored {
            notes.push(format!(
                "{} has no StartTime/BaseTime (nor absolute timestamps): it cannot be placed in \
                 time, so it was merged whole, assumed to have run with the others",
                files[i].0.display()
            ));
        }
    }

    let mut merged = Merged {
        logs: Vec::new(),
        window: window.filter(|_| placed.len() > 1),
        uncorrected: histogram(),
        corrected: None,
        achieved_rps: 0.0,
        errors: 0,
        notes,
    };
    let mut deserializer = Deserializer::new();
    let mut trimmed = Vec::new();
    for ((path, _, bytes), scan) in files.iter().zip(&scanned) {
        let bad = |m: String| log_err(path, &m, None);
        let mut summary = LogSummary {
            path: path.display().to_string(),
            span_start_unix_s: scan.anchored.then_some(scan.span.0),
            span_end_unix_s: scan.anchored.then_some(scan.span.1),
            duration_s: 0.0,
            trimmed_s: 0.0,
            requests_ok: 0,
            errors: 0,
            achieved_rps: 0.0,
        };
        let intervals = IntervalLogIterator::new(bytes).filter_map(|e| match e {
            Ok(LogEntry::Interval(h)) => Some(h),
            _ => None,
        });
        for (j, (h, &(at, length))) in intervals.zip(&scan.times).enumerate() {
            let n = j + 1;
            let tag = h.tag().map(|t| t.as_str());
            let keep = match (window, scan.anchored) {
                (Some(w), true) => in_window(at, length, w),
                _ => true,
            };
            if !keep {
                if matches!(tag, None | Some("uncorrected")) {
                    summary.trimmed_s += length;
                }
                continue;
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(h.encoded_histogram())
                .map_err(|e| bad(format!("interval {n}: bad base64: {e}")))?;
            let hist: Histogram<u64> = deserializer
                .deserialize(&mut raw.as_slice())
                .map_err(|e| bad(format!("interval {n}: bad histogram: {e:?}")))?;
            let add = |into: &mut Histogram<u64>| {
                into.add(&hist)
                    .map_err(|e| bad(format!("interval {n}: {e:?}")))
            };
            match tag {
                None | Some("uncorrected") => {
                    add(&mut merged.uncorrected)?;
                    summary.requests_ok += hist.len();
                    summary.duration_s += length;
                }
                Some("corrected") => add(merged.corrected.get_or_insert_with(histogram))?,
                Some("errors") => summary.errors += hist.len(),
                Some(_) => {}
            }
        }
        if summary.duration_s <= 0.0 && summary.trimmed_s > 0.0 {
            return Err(bad(format!(
                "none of its intervals lies in the window in which every generator was \
                 measuring ({:.1} s); merge logs of generators that ran together",
                window.map_or(0.0, |w| w.seconds())
            )));
        }
        if summary.duration_s > 0.0 {
            summary.achieved_rps = summary.requests_ok as f64 / summary.duration_s;
        }
        if summary.trimmed_s > 0.0 {
            trimmed.push(format!("{:.1} s of {}", summary.trimmed_s, summary.path));
        }
        merged.achieved_rps += summary.achieved_rps;
        merged.errors += summary.errors;
        merged.logs.push(summary);
    }
    // A copy of one generator's log: identical contents with latency samples in them (two
    // generators never record the same latencies). Logs without a successful request can be
    // identical for two generators that started in the same millisecond (their error
    // histograms alike): those merge, and the merge says it measured no latency.
    for (i, (path, _, bytes)) in files.iter().enumerate() {
        if merged.logs[i].requests_ok == 0 {
            continue;
        }
        if let Some((first, _, _)) = files[..i].iter().find(|(_, _, b)| b == bytes) {
            return Err(Error::HdrLogDuplicate {
                first: (*first).clone(),
                second: (*path).clone(),
                same_file: false,
            });
        }
    }
    if let (false, Some(w)) = (trimmed.is_empty(), window) {
        merged.notes.insert(
            0,
            format!(
                "the generators did not measure over the same time: merged over the {:.1} s in \
                 which all were measuring ({} – {}), leaving out {}; throughput, errors and \
                 percentiles are those of that window",
                w.seconds(),
                utc(w.start_unix_s),
                utc(w.end_unix_s),
                trimmed.join(", ")
            ),
        );
    }
    Ok(merged)
}

/// The merged report (the JSON of `frugal load merge --json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct MergedReport {
    /// Per log: span, duration merged, responses, errors, throughput.
    pub logs: Vec<LogSummary>,
    /// The wall-clock window in which every generator was measuring (several logs placed in
    /// time).
    pub window: Option<Window>,
    /// Sum of the generators' throughputs, responses per second.
    pub achieved_rps: f64,
    /// Responses, all generators.
    pub requests_ok: u64,
    /// Failed requests, all generators.
    pub errors: u64,
    /// Latency from the send, merged; `None` (`null`) when no request succeeded in the merged
    /// window: nothing was measured, and zeros would read as a latency.
    pub latency_ns: Option<LatencySummary>,
    /// Latency from the intended send (constant-rate runs), merged; `None` for closed-loop
    /// runs and when no request succeeded.
    pub latency_corrected_ns: Option<LatencySummary>,
    /// What was done to make the logs comparable (trimming to the common window).
    pub notes: Vec<String>,
}

impl Merged {
    /// Percentiles and totals.
    pub fn report(&self) -> MergedReport {
        MergedReport {
            logs: self.logs.clone(),
            window: self.window,
            achieved_rps: self.achieved_rps,
            requests_ok: self.uncorrected.len(),
            errors: self.errors,
            latency_ns: LatencySummary::measured(&self.uncorrected),
            latency_corrected_ns: self.corrected.as_ref().and_then(LatencySummary::measured),
            notes: self.notes.clone(),
        }
    }
}

impl MergedReport {
    /// Why the merge fails (`None`: it passes): no successful request in the merged window, so
    /// nothing was measured (the generators' requests all failed, or none ended in the window
    /// in which every generator was measuring).
    pub fn failure(&self) -> Option<String> {
        if self.requests_ok > 0 {
            return None;
        }
        let seconds: f64 = self.logs.iter().map(|l| l.duration_s).sum();
        Some(format!(
            "no successful request in the merged window ({} errors in {seconds:.1} s of {} \
             logs): no latency or throughput was measured; check that the generators reached the \
             service (`frugal load URL` alone says why its requests fail)",
            self.errors,
            self.logs.len()
        ))
    }
}

/// Milliseconds with three decimals (the merged report's latency unit).
fn ms(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

impl frugal_output::Render for MergedReport {
    const SCHEMA: &'static str = "frugal-load-merge";
    /// 2: the logs' spans, the common window, what was trimmed, notes. 3: `latency_ns` and
    /// `latency_corrected_ns` are `null` when no request succeeded in the merged window.
    const VERSION: u32 = 3;

    fn document(&self) -> frugal_output::Document {
        use frugal_output::{Align, Document, Table, Tone};
        let r = self;
        let mut doc = Document::new(format!("{} generators merged", r.logs.len()));
        let mut logs = Table::new([
            ("log", Align::Left),
            ("ok", Align::Right),
            ("errors", Align::Right),
            ("seconds", Align::Right),
            ("left out s", Align::Right),
            ("req/s", Align::Right),
        ])
        .indent(2);
        for l in &r.logs {
            logs.row([
                l.path.clone(),
                l.requests_ok.to_string(),
                l.errors.to_string(),
                format!("{:.1}", l.duration_s),
                format!("{:.1}", l.trimmed_s),
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
        // Only what was measured: no successful request, no latency (not a row of zeros).
        if r.latency_ns.is_none() {
            doc.toned(
                "  latency      not measured: no successful request in the merged window",
                Tone::Warn,
            );
        }
        let rows = [
            ("measured", &r.latency_ns),
            ("corrected", &r.latency_corrected_ns),
        ];
        if rows.iter().any(|(_, s)| s.is_some()) {
            for (label, summary) in rows {
                if let Some(s) = summary {
                    latency.row(row(label, s));
                }
            }
            doc.table(latency);
        }
        for note in &r.notes {
            doc.note(note.clone());
        }
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
        headers.extend(
            ["span_start_unix_s", "span_end_unix_s", "trimmed_s"]
                .iter()
                .map(|s| s.to_string()),
        );
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.3}"));
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
            row.extend([
                opt(l.span_start_unix_s),
                opt(l.span_end_unix_s),
                l.trimmed_s.to_string(),
            ]);
            t.row(row);
        }
        let mut row = vec![
            "merged".to_owned(),
            String::new(),
            self.requests_ok.to_string(),
            self.errors.to_string(),
            self.achieved_rps.to_string(),
        ];
        row.extend(latency_csv_cells(self.latency_ns.as_ref()));
        row.extend(latency_csv_cells(self.latency_corrected_ns.as_ref()));
        row.extend([
            opt(self.window.map(|w| w.start_unix_s)),
            opt(self.window.map(|w| w.end_unix_s)),
            String::new(),
        ]);
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
        let latency = report.latency_ns.expect("responses were recorded");
        assert_eq!(latency.count, 10_000);
        assert_eq!(report.failure(), None);
        let text = frugal_output::Render::document(&report).to_text(&frugal_output::Style::plain());
        assert!(text.starts_with("2 generators merged\n"), "{text}");
        assert!(text.contains(&ms(latency.p99)), "{text}");
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

    /// A log of `seconds` 1-second intervals whose measured window starts at `start`, with
    /// 100 responses per interval.
    fn log_at(path: &Path, start: Instant, seconds: u64) {
        let log = IntervalLog::create(path, Duration::from_secs(1), false).expect("created");
        log.begin(start, Duration::from_secs(seconds));
        for i in 0..seconds * 100 {
            log.record(start + Duration::from_millis(i * 10), latency(i), None);
        }
        log.finish().expect("written");
    }

    #[test]
    fn the_log_starts_at_the_measured_window() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("a.hlog");
        // The window starts 30 s from now (a warm-up): StartTime says so.
        let before = SystemTime::now() + Duration::from_secs(30);
        log_at(&path, Instant::now() + Duration::from_secs(30), 2);
        let text = std::fs::read_to_string(&path).expect("readable");
        let start: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("#[StartTime: "))
            .and_then(|l| l.split_whitespace().next())
            .expect("a StartTime line")
            .parse()
            .expect("seconds");
        let expected = before
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        assert!((start - expected).abs() < 1.0, "{start} vs {expected}");
        assert!(text.contains("#[BaseTime: "), "{text}");
    }

    #[test]
    fn the_same_log_twice_is_refused() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let a = dir.path().join("a.hlog");
        log_at(&a, Instant::now(), 2);
        let err = merge(&[a.clone(), a.clone()]).expect_err("the same path twice");
        assert!(
            matches!(
                err,
                Error::HdrLogDuplicate {
                    same_file: true,
                    ..
                }
            ),
            "{err}"
        );
        // A copy under another name: identical contents.
        let copy = dir.path().join("copy.hlog");
        std::fs::copy(&a, &copy).expect("copied");
        let err = merge(&[a, copy]).expect_err("a copy");
        assert!(
            matches!(
                err,
                Error::HdrLogDuplicate {
                    same_file: false,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("identical contents"), "{err}");
    }

    #[test]
    fn logs_recorded_apart_are_refused_with_their_spans() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (a, b) = (dir.path().join("a.hlog"), dir.path().join("b.hlog"));
        let now = Instant::now();
        // b starts 10 minutes after a, and lasts longer.
        log_at(&a, now, 3);
        log_at(&b, now + Duration::from_secs(600), 5);
        let err = merge(&[a.clone(), b.clone()]).expect_err("not recorded together");
        let text = err.to_string();
        assert!(matches!(err, Error::HdrLogApart { .. }), "{text}");
        assert!(
            text.contains("a.hlog 20") && text.contains("(3.0 s)"),
            "{text}"
        );
        assert!(
            text.contains("b.hlog 20") && text.contains("(5.0 s)"),
            "{text}"
        );
        assert!(text.contains("share 0.0 s"), "{text}");
        // Overlapping by 1 s of 3: less than half of the shorter.
        let c = dir.path().join("c.hlog");
        log_at(&c, now + Duration::from_secs(2), 3);
        let err = merge(&[a, c]).expect_err("a third in common");
        assert!(err.to_string().contains("share 1.0 s"), "{err}");
    }

    #[test]
    fn logs_overlapping_in_part_are_trimmed_to_the_common_window() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (a, b) = (dir.path().join("a.hlog"), dir.path().join("b.hlog"));
        let now = Instant::now();
        // a: 0..6 s; b: 2..10 s, as generators started 2 s apart with different durations.
        log_at(&a, now, 6);
        log_at(&b, now + Duration::from_secs(2), 8);
        let merged = merge(&[a, b]).expect("they share 4 s of the shorter 6");
        let w = merged.window.expect("both placed in time");
        assert!((w.seconds() - 4.0).abs() < 0.01, "{w:?}");
        let (la, lb) = (&merged.logs[0], &merged.logs[1]);
        assert!((la.duration_s - 4.0).abs() < 0.01, "{la:?}");
        assert!((la.trimmed_s - 2.0).abs() < 0.01, "{la:?}");
        assert!((lb.duration_s - 4.0).abs() < 0.01, "{lb:?}");
        assert!((lb.trimmed_s - 4.0).abs() < 0.01, "{lb:?}");
        // 100 responses per second each, over the common window only.
        assert_eq!(la.requests_ok + lb.requests_ok, 800);
        assert_eq!(merged.uncorrected.len(), 800);
        assert!((merged.achieved_rps - 200.0).abs() < 1.0, "{merged:?}");
        let note = &merged.notes[0];
        assert!(
            note.contains("merged over the 4.0 s") && note.contains("2.0 s of"),
            "{note}"
        );
        let text = frugal_output::Render::document(&merged.report())
            .to_text(&frugal_output::Style::plain());
        assert!(text.contains("merged over the 4.0 s"), "{text}");
    }

    /// A log of `seconds` 1-second intervals starting at `start`: 100 responses per second in
    /// the first `ok_seconds`, then `failed` failed requests per second.
    fn log_failing_after(
        path: &Path,
        start: Instant,
        (seconds, ok_seconds, failed): (u64, u64, u64),
        paced: bool,
    ) {
        let log = IntervalLog::create(path, Duration::from_secs(1), paced).expect("created");
        log.begin(start, Duration::from_secs(seconds));
        for i in 0..ok_seconds * 100 {
            let v = latency(i);
            log.record(start + Duration::from_millis(i * 10), v, paced.then_some(v));
        }
        for s in ok_seconds..seconds {
            log.record_errors(start + Duration::from_millis(s * 1_000 + 500), failed);
        }
        log.finish().expect("written");
    }

    /// What the merged report says when nothing succeeded: no latency (not zeros) in the JSON,
    /// the text and the CSV, and a failure.
    fn assert_nothing_measured(report: &MergedReport, errors: u64) {
        assert_eq!(report.requests_ok, 0);
        assert_eq!(report.errors, errors);
        assert_eq!(report.latency_ns, None);
        assert_eq!(report.latency_corrected_ns, None);
        let json = serde_json::to_value(report).expect("serializable");
        assert!(json["latency_ns"].is_null(), "{json}");
        assert!(json["latency_corrected_ns"].is_null(), "{json}");
        let text = frugal_output::Render::document(report).to_text(&frugal_output::Style::plain());
        assert!(
            text.contains("not measured: no successful request in the merged window"),
            "{text}"
        );
        assert!(!text.contains(" ms"), "no latency printed: {text}");
        let csv = frugal_output::Render::csv_table(report)
            .expect("a table")
            .to_csv();
        let merged = csv.lines().last().expect("the merged row");
        // log, duration, ok, errors, rps, then 14 latency cells: all empty.
        let cells: Vec<&str> = merged.split(',').collect();
        assert_eq!(&cells[..3], &["merged", "", "0"], "{csv}");
        assert!(cells[5..19].iter().all(|c| c.is_empty()), "{csv}");
        let why = report
            .failure()
            .expect("a merge that measured nothing fails");
        assert!(
            why.contains("no successful request") && why.contains(&format!("{errors} errors")),
            "{why}"
        );
    }

    #[test]
    fn logs_without_a_successful_request_measure_no_latency() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (a, b) = (dir.path().join("a.hlog"), dir.path().join("b.hlog"));
        let now = Instant::now();
        // Two constant-rate generators whose every request failed.
        log_failing_after(&a, now, (3, 0, 50), true);
        log_failing_after(&b, now, (3, 0, 40), true);
        let merged = merge(&[a, b]).expect("the logs merge");
        assert_nothing_measured(&merged.report(), 270);
    }

    /// Two generators that started in the same millisecond and only failed can write
    /// byte-identical logs (their error histograms alike): not a copy of one log. They merge,
    /// and the merge measured nothing (a copy of a log with latencies is still refused:
    /// `the_same_log_twice_is_refused`).
    #[test]
    fn identical_logs_without_a_successful_request_are_not_taken_for_a_copy() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (a, b) = (dir.path().join("a.hlog"), dir.path().join("b.hlog"));
        log_failing_after(&a, Instant::now(), (3, 0, 50), true);
        std::fs::copy(&a, &b).expect("copied");
        let merged = merge(&[a, b]).expect("the logs merge");
        assert_nothing_measured(&merged.report(), 300);
    }

    #[test]
    fn a_merged_window_without_a_successful_request_measures_no_latency() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (a, b) = (dir.path().join("a.hlog"), dir.path().join("b.hlog"));
        let now = Instant::now();
        // a: 0..6 s, responses in its first 2 s only, then errors; b: 2..10 s, errors only.
        // The common window (2..6 s) holds errors and no response.
        log_failing_after(&a, now, (6, 2, 50), false);
        log_failing_after(&b, now + Duration::from_secs(2), (8, 0, 50), false);
        let merged = merge(&[a, b]).expect("they share 4 s of the shorter 6");
        assert!(
            merged.notes[0].contains("merged over the 4.0 s"),
            "{merged:?}"
        );
        assert_nothing_measured(&merged.report(), 400);
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
