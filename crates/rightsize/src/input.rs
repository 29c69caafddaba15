//! Reading utilization data: CSV and JSON files.
//!
//! Both formats carry the same fields, one observation per row:
//!
//! | column | required | meaning |
//! |---|---|---|
//! | `timestamp` | yes | RFC 3339 (`2024-05-01T12:00:00Z`) or Unix seconds (`1714564800`, fractions allowed) |
//! | `workload` | yes | name of the service or job |
//! | `instance_type` | yes | what it runs on now, e.g. `m7i.xlarge` |
//! | `cpu_cores` | yes | CPU in use, in cores (busy vCPUs), per instance |
//! | `memory_bytes` | yes | memory in use, bytes, per instance |
//! | `instances` | no | how many instances run the workload (savings are multiplied by it; default 1) |
//! | `requests_per_second` | no | request rate per instance (enables the SLA screen, with latency) |
//! | `latency_p99_ms` | no | observed 99th-percentile latency, ms |
//!
//! JSON is an array of objects with these keys, or `{"samples": [...]}`.
//!
//! A malformed value (not a number, NaN, infinite, negative, a bad timestamp), a missing or unknown
//! column or an empty input is an [`Error::Input`] naming the file and the line (CSV) or record (JSON).
//! Rows need not be in time order. [`read_files`] reads every file, and for a workload whose rows
//! go back in time or repeat a timestamp it reads that workload's rows again, sorts them by
//! timestamp, merges identical duplicate rows (the same file read twice, an exporter that
//! repeated itself) and refuses conflicting ones (the same timestamp with other values) naming both
//! rows' file and line. Sorting and merging leave a warning on the series
//! ([`crate::Series::warnings`]). The lower-level [`read_file`], [`parse_csv`] and [`parse_json`]
//! read one input in one pass: there such a workload is marked skipped (see
//! [`crate::Series::skipped`]), so one broken exporter does not hide the others.

use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::series::{Sample, SeriesSet};

const REQUIRED: [&str; 5] = [
    "timestamp",
    "workload",
    "instance_type",
    "cpu_cores",
    "memory_bytes",
];
const OPTIONAL: [&str; 3] = ["instances", "requests_per_second", "latency_p99_ms"];

/// Reads `paths` into `set`, sorting and de-duplicating the rows of workloads that are out of
/// time order (see the module docs); returns warnings about the inputs themselves (a file given
/// twice is read once).
pub fn read_files(paths: &[std::path::PathBuf], set: &mut SeriesSet) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let mut seen: Vec<(std::path::PathBuf, std::path::PathBuf)> = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        // A file that cannot be resolved is read (and its error reported) as given.
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        if let Some((first, _)) = seen.iter().find(|(_, r)| *r == real) {
            warnings.push(format!(
                "{} is the same file as {}: read once",
                path.display(),
                first.display()
            ));
            continue;
        }
        seen.push((path.clone(), real));
        files.push(path.as_path());
    }
    for path in &files {
        read_file(path, set)?;
    }
    let unordered: Vec<(usize, String)> = set
        .series()
        .iter()
        .enumerate()
        .filter(|(_, s)| s.unordered)
        .map(|(i, s)| (i, s.workload.clone()))
        .collect();
    if unordered.is_empty() {
        return Ok(warnings);
    }
    let mut raw = SeriesSet::raw_for(unordered.iter().map(|(_, w)| w.clone()));
    for path in &files {
        read_file(path, &mut raw)?;
    }
    for (index, workload) in unordered {
        let rows = raw.take_raw(&workload);
        let original = &set.series()[index];
        let mut series = sorted_series(&workload, rows)?;
        series.source.clone_from(&original.source);
        let mut all = original.warnings.clone();
        all.append(&mut series.warnings);
        series.warnings = all;
        set.replace(index, series);
    }
    Ok(warnings)
}

/// The series of `rows` (one workload, in input order) sorted by timestamp, identical duplicates
/// merged, with a warning for each repair; conflicting duplicates are an error.
fn sorted_series(workload: &str, mut rows: Vec<crate::series::RawRow>) -> Result<crate::Series> {
    let mut running_max = i64::MIN;
    let mut late = 0u64;
    let mut first_late = None;
    for r in &rows {
        if r.unix_ms < running_max {
            late += 1;
            first_late.get_or_insert_with(|| r.at());
        }
        running_max = running_max.max(r.unix_ms);
    }
    // Stable: duplicates keep their input order, so the first one is the one kept.
    rows.sort_by_key(|r| r.unix_ms);
    let mut kept: Vec<crate::series::RawRow> = Vec::with_capacity(rows.len());
    let (mut merged, mut first_merged) = (0u64, None);
    for r in rows {
        match kept.last() {
            Some(prev) if prev.unix_ms == r.unix_ms => {
                if !prev.same_values(&r) {
                    return Err(Error::input(
                        &r.source,
                        r.location.to_string(),
                        format!(
                            "workload {workload}: timestamp {} (Unix s) appears again with other \
                             values (first at {}: {}; here: {}); remove one of the two rows",
                            r.unix_ms as f64 / 1000.0,
                            prev.at(),
                            prev.describe(),
                            r.describe()
                        ),
                    ));
                }
                merged += 1;
                first_merged.get_or_insert_with(|| format!("{} repeats {}", r.at(), prev.at()));
            }
            _ => kept.push(r),
        }
    }
    let mut fresh = SeriesSet::new();
    for r in &kept {
        let sample = Sample {
            unix_ms: r.unix_ms,
            workload,
            instance_type: &r.instance_type,
            cpu_cores: r.values[0],
            memory_bytes: r.values[1],
            instances: r.optional[0],
            requests_per_second: r.optional[1],
            latency_p99_ms: r.optional[2],
        };
        fresh.push(&r.source, &sample, &|| r.location.to_string());
    }
    let Some(mut series) = fresh.into_series().pop() else {
        return Err(Error::input(
            workload,
            "second reading",
            "its rows are gone; were the files changed while frugal read them?",
        ));
    };
    if let Some(at) = first_late {
        series.warnings.push(format!(
            "{late} row(s) out of time order (first at {at}): sorted by timestamp"
        ));
    }
    if let Some(example) = first_merged {
        series.warnings.push(format!(
            "{merged} identical duplicate row(s) merged (e.g. {example})"
        ));
    }
    Ok(series)
}

/// Reads one file (CSV, or JSON when the first non-blank byte is `[` or `{`) into `set`.
///
/// Returns the number of rows read.
pub fn read_file(path: &Path, set: &mut SeriesSet) -> Result<u64> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| Error::Read {
        path: path.into(),
        source,
    })?;
    // Small: only sniffs the format; the CSV reader has its own buffer (large reads bypass this one).
    let mut reader = std::io::BufReader::with_capacity(8 << 10, file);
    let first = {
        use std::io::BufRead;
        let buf = reader.fill_buf().map_err(|source| Error::Read {
            path: path.into(),
            source,
        })?;
        buf.iter().copied().find(|b| !b.is_ascii_whitespace())
    };
    match first {
        Some(b'[') | Some(b'{') => {
            let mut bytes = Vec::new();
            reader
                .read_to_end(&mut bytes)
                .map_err(|source| Error::Read {
                    path: path.into(),
                    source,
                })?;
            parse_json(&name, &bytes, set)
        }
        _ => {
            let len = reader.get_ref().metadata().map_or(0, |m| m.len());
            if len >= PARALLEL_MIN_BYTES {
                if let Some(split) = plan_split(path, len)? {
                    return parse_csv_in_two(path, &name, split, set);
                }
            }
            parse_csv(&name, reader, set)
        }
    }
}

/// Files at least this large are parsed by two threads, each reading one half.
const PARALLEL_MIN_BYTES: u64 = 64 << 20;

/// Where to cut a CSV file in two, and what the second half needs to know.
struct Split {
    /// The header line, with its newline.
    header: Vec<u8>,
    /// Byte offset of the first line of the second half.
    at: u64,
    /// Newlines before `at`.
    newlines: u64,
}

/// Finds the first line start after the middle of the file. Returns None (read it sequentially)
/// when the first half contains a `"`: a quoted field could hide a newline, and a cut inside it
/// would change the meaning of both halves.
fn plan_split(path: &Path, len: u64) -> Result<Option<Split>> {
    use std::io::{Seek, SeekFrom};
    let read_err = |source| Error::Read {
        path: path.into(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(read_err)?;
    f.seek(SeekFrom::Start(len / 2)).map_err(read_err)?;
    let mut buf = vec![0u8; 1 << 16];
    let n = f.read(&mut buf).map_err(read_err)?;
    let Some(nl) = buf[..n].iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let at = len / 2 + nl as u64 + 1;
    if at >= len {
        return Ok(None);
    }
    f.seek(SeekFrom::Start(0)).map_err(read_err)?;
    let mut first = std::io::Read::take(&mut f, at);
    let (mut newlines, mut header) = (0u64, Vec::new());
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = first.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        if header.is_empty() || header.last() != Some(&b'\n') {
            let end = chunk.iter().position(|&b| b == b'\n').map_or(n, |p| p + 1);
            header.extend_from_slice(&chunk[..end]);
        }
        // Written as two plain counts so that they vectorize.
        let quotes = chunk.iter().filter(|&&b| b == b'"').count();
        if quotes > 0 {
            return Ok(None);
        }
        newlines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
    }
    if newlines < 2 {
        return Ok(None);
    }
    Ok(Some(Split {
        header,
        at,
        newlines,
    }))
}

/// Parses the two halves of a file in parallel and joins them: the same result as one pass.
fn parse_csv_in_two(path: &Path, name: &str, split: Split, set: &mut SeriesSet) -> Result<u64> {
    use std::io::{Seek, SeekFrom};
    let read_err = |source| Error::Read {
        path: path.into(),
        source,
    };
    let first = std::fs::File::open(path).map_err(read_err)?.take(split.at);
    let mut second = std::fs::File::open(path).map_err(read_err)?;
    second.seek(SeekFrom::Start(split.at)).map_err(read_err)?;
    // The second half gets the header in front; its line 2 is the file's line `newlines + 1`.
    let second = std::io::Cursor::new(split.header).chain(second);
    let mut later = set.empty_like();
    let (a, b) = std::thread::scope(|scope| {
        let b = scope.spawn(|| parse_csv_at(name, second, &mut later, split.newlines - 1));
        let a = parse_csv(name, first, set);
        (a, b.join())
    });
    let b = b.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let rows = a? + b?;
    set.append(later);
    Ok(rows)
}

/// Column positions of the header.
struct Columns {
    idx: [usize; 8],
}

const ABSENT: usize = usize::MAX;

impl Columns {
    fn from_header(source: &str, header: &csv::ByteRecord) -> Result<Columns> {
        let mut idx = [ABSENT; 8];
        for (pos, raw) in header.iter().enumerate() {
            let name = String::from_utf8_lossy(raw).trim().to_ascii_lowercase();
            let name = name.trim_start_matches('\u{feff}');
            let Some(slot) = REQUIRED
                .iter()
                .chain(OPTIONAL.iter())
                .position(|c| *c == name)
            else {
                return Err(Error::input(
                    source,
                    "line 1",
                    format!(
                        "unknown column `{name}`; the columns are {} (required) and {} (optional)",
                        REQUIRED.join(","),
                        OPTIONAL.join(",")
                    ),
                ));
            };
            if idx[slot] != ABSENT {
                return Err(Error::input(
                    source,
                    "line 1",
                    format!("column `{name}` appears twice"),
                ));
            }
            idx[slot] = pos;
        }
        for (slot, name) in REQUIRED.iter().enumerate() {
            if idx[slot] == ABSENT {
                return Err(Error::input(
                    source,
                    "line 1",
                    format!(
                        "missing column `{name}`; the header must name at least {}",
                        REQUIRED.join(",")
                    ),
                ));
            }
        }
        Ok(Columns { idx })
    }
}

/// One parsed CSV row, its names stored in its batch's text.
struct ParsedRow {
    line: u64,
    unix_ms: i64,
    workload: (u32, u32),
    instance_type: (u32, u32),
    values: [f64; 2],
    optional: [Option<f64>; 3],
}

/// Rows handed from the parsing thread to the folding thread.
#[derive(Default)]
struct Batch {
    text: String,
    rows: Vec<ParsedRow>,
}

const BATCH_ROWS: usize = 16 << 10;

impl Batch {
    fn intern(&mut self, s: &str) -> (u32, u32) {
        let start = self.text.len();
        self.text.push_str(s);
        // Batches hold at most BATCH_ROWS rows of bounded fields, far below 4 GiB of text.
        (start as u32, self.text.len() as u32)
    }

    fn fold(&self, source: &str, set: &mut SeriesSet) {
        for r in &self.rows {
            let name = |(a, b): (u32, u32)| &self.text[a as usize..b as usize];
            let sample = Sample {
                unix_ms: r.unix_ms,
                workload: name(r.workload),
                instance_type: name(r.instance_type),
                cpu_cores: r.values[0],
                memory_bytes: r.values[1],
                instances: r.optional[0],
                requests_per_second: r.optional[1],
                latency_p99_ms: r.optional[2],
            };
            set.push(source, &sample, &|| format!("line {}", r.line));
        }
    }
}

/// Parses CSV from `reader` into `set`; `source` names the input in messages.
///
/// Returns the number of data rows. Parsing (this thread) and folding rows into 5-minute windows
/// (a second thread) run as a pipeline, in order; the result does not depend on the timing.
pub fn parse_csv<R: Read>(source: &str, reader: R, set: &mut SeriesSet) -> Result<u64> {
    parse_csv_at(source, reader, set, 0)
}

/// [`parse_csv`], with `line_offset` added to every line number after the header's.
fn parse_csv_at<R: Read>(
    source: &str,
    reader: R,
    set: &mut SeriesSet,
    line_offset: u64,
) -> Result<u64> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(4);
    std::thread::scope(|scope| {
        let folder = scope.spawn(move || {
            for batch in rx {
                batch.fold(source, set);
            }
        });
        let result = parse_csv_rows(source, reader, line_offset, |batch| {
            // A send fails only when the folder died, and then join() below reports its panic.
            let _ = tx.send(batch);
        });
        drop(tx);
        if let Err(panic) = folder.join() {
            std::panic::resume_unwind(panic);
        }
        result
    })
}

fn parse_csv_rows<R: Read>(
    source: &str,
    reader: R,
    line_offset: u64,
    mut emit: impl FnMut(Batch),
) -> Result<u64> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(reader);
    // A StringRecord checks UTF-8 once per row, not once per field.
    let mut record = csv::StringRecord::new();
    let shift = |line: u64| if line > 1 { line + line_offset } else { line };
    let csv_err = |e: csv::Error| {
        let line = shift(e.position().map_or(0, |p| p.line()));
        Error::input(source, format!("line {line}"), format!("{e}"))
    };
    let has = rdr.read_record(&mut record).map_err(csv_err)?;
    if !has {
        return Err(Error::input(
            source,
            "line 1",
            format!("empty file; expected a header line: {}", REQUIRED.join(",")),
        ));
    }
    let cols = Columns::from_header(source, record.as_byte_record())?;
    let width = record.len();
    let mut rows = 0u64;
    let mut batch = Batch::default();
    while rdr.read_record(&mut record).map_err(csv_err)? {
        let line = shift(record.position().map_or(0, |p| p.line()));
        let loc = || format!("line {line}");
        if record.len() == 1 && record.get(0).is_some_and(|f| f.trim_ascii().is_empty()) {
            continue; // a blank line
        }
        if record.len() != width {
            return Err(Error::input(
                source,
                loc(),
                format!("{} fields, but the header has {width}", record.len()),
            ));
        }
        let field = |slot: usize| -> Option<&str> {
            let i = cols.idx[slot];
            (i != ABSENT).then(|| {
                // Trimmed here: csv's own trimming allocates a new record per row.
                record
                    .get(i)
                    .expect("invariant: record width equals header")
                    .trim_ascii()
            })
        };
        let text = |slot: usize| -> Result<&str> {
            let s = field(slot).expect("invariant: required columns are present");
            if s.is_empty() {
                return Err(Error::input(
                    source,
                    loc(),
                    format!("{} is empty", REQUIRED[slot]),
                ));
            }
            Ok(s)
        };
        let number = |slot: usize, name: &str| -> Result<Option<f64>> {
            match field(slot) {
                None | Some("") => Ok(None),
                Some(raw) => parse_number(raw, name)
                    .map(Some)
                    .map_err(|m| Error::input(source, loc(), m)),
            }
        };
        let unix_ms = parse_timestamp(field(0).expect("invariant: timestamp is required"))
            .map_err(|m| Error::input(source, loc(), m))?;
        let workload = text(1)?;
        let instance_type = text(2)?;
        let values = [
            number(3, "cpu_cores")?
                .ok_or_else(|| Error::input(source, loc(), "cpu_cores is empty"))?,
            number(4, "memory_bytes")?
                .ok_or_else(|| Error::input(source, loc(), "memory_bytes is empty"))?,
        ];
        let optional = [
            number(5, "instances")?,
            number(6, "requests_per_second")?,
            number(7, "latency_p99_ms")?,
        ];
        let row = ParsedRow {
            line,
            unix_ms,
            workload: batch.intern(workload),
            instance_type: batch.intern(instance_type),
            values,
            optional,
        };
        batch.rows.push(row);
        if batch.rows.len() == BATCH_ROWS {
            emit(std::mem::take(&mut batch));
        }
        rows += 1;
    }
    if !batch.rows.is_empty() {
        emit(batch);
    }
    if rows == 0 {
        return Err(Error::input(
            source,
            "line 2",
            "no data rows after the header",
        ));
    }
    Ok(rows)
}

/// A finite, non-negative number.
fn parse_number(s: &str, name: &str) -> std::result::Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{name} `{}` is not a number", clip(s)))?;
    if !v.is_finite() {
        return Err(format!("{name} `{}` is not a finite number", clip(s)));
    }
    if v < 0.0 {
        return Err(format!("{name} `{}` is negative", clip(s)));
    }
    Ok(v)
}

/// Parses a timestamp as the inputs accept it — Unix seconds (integer or fractional) or RFC 3339 —
/// to Unix milliseconds; the error says what was expected.
pub fn parse_time(s: &str) -> std::result::Result<i64, String> {
    parse_timestamp(s.trim())
}

fn parse_timestamp(s: &str) -> std::result::Result<i64, String> {
    if s.is_empty() {
        return Err("timestamp is empty".to_owned());
    }
    if let Ok(secs) = s.parse::<i64>() {
        return secs
            .checked_mul(1000)
            .filter(|ms| (0..=253_402_300_799_000).contains(ms))
            .ok_or_else(|| {
                format!("timestamp `{s}` is out of range (Unix seconds, 1970 to 9999)")
            });
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        if let Ok(secs) = s.parse::<f64>() {
            let ms = (secs * 1000.0).round();
            if (0.0..=253_402_300_799_000.0).contains(&ms) {
                return Ok(ms as i64);
            }
        }
    }
    let ts: jiff::Timestamp = s.parse().map_err(|_| {
        format!(
            "timestamp `{}` is neither RFC 3339 (2024-05-01T12:00:00Z) nor Unix seconds",
            clip(s)
        )
    })?;
    let ms = ts.as_millisecond();
    if ms < 0 {
        return Err(format!("timestamp `{}` is before 1970", clip(s)));
    }
    Ok(ms)
}

fn clip(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_owned()
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonInput {
    Rows(Vec<JsonRow>),
    Wrapped { samples: Vec<JsonRow> },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRow {
    timestamp: serde_json::Value,
    workload: String,
    instance_type: String,
    cpu_cores: serde_json::Value,
    memory_bytes: serde_json::Value,
    #[serde(default)]
    instances: Option<serde_json::Value>,
    #[serde(default)]
    requests_per_second: Option<serde_json::Value>,
    #[serde(default)]
    latency_p99_ms: Option<serde_json::Value>,
}

/// Parses JSON (an array of row objects, or `{"samples": [...]}`) into `set`.
///
/// Returns the number of rows.
pub fn parse_json(source: &str, bytes: &[u8], set: &mut SeriesSet) -> Result<u64> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::input(
            source,
            "line 1",
            "empty file; expected a JSON array of samples",
        ));
    }
    let input: JsonInput = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            let hint = if e.is_data() {
                // Untagged enums hide the inner error; find the first bad record for a precise message.
                explain_json(bytes).unwrap_or_else(|| {
                    "expected an array of objects with timestamp, workload, instance_type, \
                     cpu_cores, memory_bytes (or {\"samples\": [...]})"
                        .to_owned()
                })
            } else {
                e.to_string()
            };
            return Err(Error::input(source, format!("line {}", e.line()), hint));
        }
    };
    let rows = match input {
        JsonInput::Rows(r) | JsonInput::Wrapped { samples: r } => r,
    };
    if rows.is_empty() {
        return Err(Error::input(source, "record 1", "no samples in the file"));
    }
    for (i, row) in rows.iter().enumerate() {
        let record = i as u64 + 1;
        let loc = || format!("record {record}");
        let err = |m: String| Error::input(source, loc(), m);
        let num = |v: &serde_json::Value, name: &str| -> Result<f64> {
            match v {
                serde_json::Value::Number(n) => {
                    let f = n
                        .as_f64()
                        .ok_or_else(|| err(format!("{name} is not a number")))?;
                    if f < 0.0 {
                        return Err(err(format!("{name} {f} is negative")));
                    }
                    Ok(f)
                }
                serde_json::Value::String(s) => parse_number(s, name).map_err(err),
                other => Err(err(format!("{name} must be a number, got {other}"))),
            }
        };
        let opt = |v: &Option<serde_json::Value>, name: &str| -> Result<Option<f64>> {
            match v {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => num(v, name).map(Some),
            }
        };
        let unix_ms = match &row.timestamp {
            serde_json::Value::String(s) => parse_timestamp(s),
            serde_json::Value::Number(n) => parse_timestamp(&n.to_string()),
            other => Err(format!(
                "timestamp must be a string or a number, got {other}"
            )),
        }
        .map_err(err)?;
        if row.workload.is_empty() {
            return Err(err("workload is empty".to_owned()));
        }
        if row.instance_type.is_empty() {
            return Err(err("instance_type is empty".to_owned()));
        }
        let sample = Sample {
            unix_ms,
            workload: &row.workload,
            instance_type: &row.instance_type,
            cpu_cores: num(&row.cpu_cores, "cpu_cores")?,
            memory_bytes: num(&row.memory_bytes, "memory_bytes")?,
            instances: opt(&row.instances, "instances")?,
            requests_per_second: opt(&row.requests_per_second, "requests_per_second")?,
            latency_p99_ms: opt(&row.latency_p99_ms, "latency_p99_ms")?,
        };
        set.push(source, &sample, &loc);
    }
    Ok(rows.len() as u64)
}

/// Re-parses loosely to name the first record that does not fit the row shape.
fn explain_json(bytes: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let items = match &value {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(o) => match o.get("samples") {
            Some(serde_json::Value::Array(a)) => a,
            _ => return Some("expected an array of samples or {\"samples\": [...]}".to_owned()),
        },
        _ => return Some("expected an array of samples or {\"samples\": [...]}".to_owned()),
    };
    for (i, item) in items.iter().enumerate() {
        if let Err(e) = serde_json::from_value::<JsonRow>(item.clone()) {
            return Some(format!("record {}: {e}", i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A series as the analysis sees it: (workload, skipped, windows, gaps, samples).
    type Seen = (String, Option<String>, Vec<crate::Window>, u32, u64);

    /// What the analysis sees of a series: a skipped one is only its reason.
    fn seen(series: Vec<crate::Series>) -> Vec<Seen> {
        series
            .into_iter()
            .map(|s| match s.skipped {
                Some(why) => (s.workload, Some(why), Vec::new(), 0, 0),
                None => (s.workload, None, s.windows, s.gaps, s.samples),
            })
            .collect()
    }

    /// Parses `text` from a file in one pass and in two halves; both must agree exactly.
    fn both_ways(text: &str) -> (Result<Vec<Seen>>, Result<Vec<Seen>>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, text).unwrap();
        let mut one = SeriesSet::new();
        let a = parse_csv("x.csv", text.as_bytes(), &mut one).map(|_| seen(one.into_series()));
        let split = plan_split(&path, text.len() as u64)
            .unwrap()
            .expect("no quotes: splittable");
        let mut two = SeriesSet::new();
        let b = parse_csv_in_two(&path, "x.csv", split, &mut two).map(|_| seen(two.into_series()));
        (a, b)
    }

    #[test]
    fn two_halves_equal_one_pass() {
        let mut text = String::from("timestamp,workload,instance_type,cpu_cores,memory_bytes\n");
        for i in 0..600i64 {
            for w in ["a", "b", "c"] {
                // 100-second steps: windows straddle the cut; b pauses for an hour (a gap).
                if w == "b" && (200..236).contains(&i) {
                    continue;
                }
                text += &format!(
                    "{},{w},m7i.large,{},{}\n",
                    1_714_521_600 + i * 100,
                    (i % 7) as f64 * 0.1,
                    i * 1000
                );
            }
        }
        let (a, b) = both_ways(&text);
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a == b, "one pass and two halves differ");
        assert_eq!(a[1].3, 1, "b has one gap");

        // Time going backwards in the second half, and a bad value there: same messages, same lines.
        let lines: Vec<&str> = text.lines().collect();
        let mut back = lines.clone();
        let late = back.len() - 10;
        back.insert(late, "1714521600,c,m7i.large,0.1,1");
        let (a, b) = both_ways(&(back.join("\n") + "\n"));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a[2].1, b[2].1);
        assert!(a[2]
            .1
            .as_ref()
            .unwrap()
            .contains(&format!("line {}", late + 1)));
        assert!(a == b, "one pass and two halves differ");
        let mut bad = lines.clone();
        bad[late] = "1714521600,c,m7i.large,x,1";
        let (a, b) = both_ways(&(bad.join("\n") + "\n"));
        let (a, b) = (a.unwrap_err().to_string(), b.unwrap_err().to_string());
        assert_eq!(a, b);
        assert!(a.contains(&format!("line {}", late + 1)), "{a}");
    }

    #[test]
    fn a_file_read_in_two_halves_keeps_every_raw_row_in_file_order() {
        let mut text = String::from("timestamp,workload,instance_type,cpu_cores,memory_bytes\n");
        for i in 0..400i64 {
            // c goes back in time halfway: the rows must come back as they are, in file order.
            let t = if i < 200 {
                1_714_521_600 + i * 60
            } else {
                1_714_521_600 + (i - 200) * 30
            };
            text += &format!("{t},c,m7i.large,0.5,{i}\n{t},d,m7i.large,0.5,{i}\n");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, &text).unwrap();
        let split = plan_split(&path, text.len() as u64)
            .unwrap()
            .expect("splittable");
        let mut raw = SeriesSet::raw_for(["c".to_owned()]);
        parse_csv_in_two(&path, "x.csv", split, &mut raw).unwrap();
        let rows = raw.take_raw("c");
        let memory: Vec<f64> = rows.iter().map(|r| r.values[1]).collect();
        assert_eq!(memory, (0..400).map(|i| i as f64).collect::<Vec<_>>());
        assert_eq!(&*rows[0].location, "line 2");
        assert_eq!(&*rows[399].location, "line 800");
        assert!(
            raw.take_raw("d").is_empty(),
            "only the wanted workloads are kept"
        );
        assert!(raw.is_empty(), "raw mode builds no series");
    }

    #[test]
    fn quotes_in_the_first_half_prevent_a_split() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.csv");
        let text = "timestamp,workload,instance_type,cpu_cores,memory_bytes\n1,\"a\nb\",m7i.large,1,1\n2,x,m7i.large,1,1\n3,x,m7i.large,1,1\n";
        std::fs::write(&path, text).unwrap();
        assert!(plan_split(&path, text.len() as u64).unwrap().is_none());
    }

    fn csv(text: &str) -> Result<SeriesSet> {
        let mut set = SeriesSet::new();
        parse_csv("t.csv", text.as_bytes(), &mut set)?;
        Ok(set)
    }

    fn csv_err(text: &str) -> String {
        csv(text).map(|_| ()).unwrap_err().to_string()
    }

    const H: &str = "timestamp,workload,instance_type,cpu_cores,memory_bytes\n";

    #[test]
    fn reads_both_timestamp_forms() {
        let set = csv(&format!(
            "{H}1714564800,a,m7i.large,0.5,1000\n2024-05-01T12:05:00Z,a,m7i.large,1.5,2000\n"
        ))
        .unwrap();
        let s = &set.series()[0];
        assert_eq!(s.samples, 2);
        assert_eq!(s.first_ms, 1_714_564_800_000);
        assert_eq!(s.last_ms, 1_714_565_100_000);
        assert_eq!(s.windows.len(), 2);
        assert_eq!(s.windows[1].cpu_max, 1.5);
    }

    #[test]
    fn malformed_values_name_file_and_line() {
        assert_eq!(
            csv_err(&format!("{H}1,a,m7i.large,abc,1\n")),
            "t.csv: line 2: cpu_cores `abc` is not a number"
        );
        assert!(
            csv_err(&format!("{H}1,a,m7i.large,1,1\n2,a,m7i.large,NaN,1\n"))
                .starts_with("t.csv: line 3: cpu_cores `NaN` is not a finite")
        );
        assert!(csv_err(&format!("{H}1,a,m7i.large,-1,1\n")).contains("negative"));
        assert!(csv_err(&format!("{H}yesterday,a,m7i.large,1,1\n")).contains("neither RFC 3339"));
        assert!(csv_err("").contains("empty file"));
        assert!(csv_err(H).contains("no data rows"));
        assert!(
            csv_err("timestamp,workload,cpu_cores,memory_bytes\n1,a,1,1\n")
                .contains("missing column `instance_type`")
        );
        assert!(csv_err(&format!("{H}1,a,m7i.large,1\n")).contains("line 2: 4 fields"));
        assert!(
            csv_err("timestamp,workload,instance_type,cpu_cores,memory_bytes,cpu\n")
                .contains("unknown column `cpu`")
        );
    }

    #[test]
    fn time_going_backwards_skips_the_workload_only() {
        let set = csv(&format!(
            "{H}100,a,m7i.large,1,1\n100,a,m7i.large,1,1\n100,b,m7i.large,1,1\n50,c,m7i.large,1,1\n40,c,m7i.large,1,1\n"
        ))
        .unwrap();
        let s = set.series();
        assert!(s[0]
            .skipped
            .as_deref()
            .unwrap()
            .contains("duplicate timestamp at line 3"));
        assert!(s[1].skipped.is_none());
        assert!(s[2]
            .skipped
            .as_deref()
            .unwrap()
            .contains("out-of-order timestamp at line 6"));
    }

    #[test]
    fn json_rows_and_errors() {
        let mut set = SeriesSet::new();
        let text = r#"[{"timestamp": 1714564800, "workload": "a", "instance_type": "m7i.large",
                        "cpu_cores": 0.5, "memory_bytes": 1e9, "requests_per_second": 10},
                       {"timestamp": "2024-05-01T12:05:00Z", "workload": "a", "instance_type": "m7i.large",
                        "cpu_cores": "0.7", "memory_bytes": 1e9, "latency_p99_ms": null}]"#;
        assert_eq!(parse_json("t.json", text.as_bytes(), &mut set).unwrap(), 2);
        assert_eq!(set.series()[0].windows[0].rps_n, 1);
        let bad = r#"{"samples": [{"timestamp": 1, "workload": "a", "instance_type": "x",
                      "cpu_cores": -1, "memory_bytes": 1}]}"#;
        let err = parse_json("t.json", bad.as_bytes(), &mut SeriesSet::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.json: record 1: cpu_cores -1 is negative"
        );
        let err = parse_json("t.json", b"[{\"timestamp\": 1}]", &mut SeriesSet::new()).unwrap_err();
        assert!(err.to_string().contains("record 1: missing field"), "{err}");
        let err = parse_json("t.json", b"[1, 2", &mut SeriesSet::new()).unwrap_err();
        assert!(err.to_string().starts_with("t.json: line 1:"), "{err}");
    }
}
