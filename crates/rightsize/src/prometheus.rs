//! Reading utilization from a Prometheus server (`/api/v1/query_range`).
//!
//! Three documented query presets, each overridable query by query:
//!
//! | preset | CPU (cores per instance) | memory (bytes per instance) | workload labels |
//! |---|---|---|---|
//! | `process` | `avg by (job) (rate(process_cpu_seconds_total[2m]))` | `max by (job) (process_resident_memory_bytes)` | `job` |
//! | `container` | `avg by (namespace, container) (rate(container_cpu_usage_seconds_total{container!="",container!="POD"}[2m]))` | `max by (namespace, container) (container_memory_working_set_bytes{container!="",container!="POD"})` | `namespace`, `container` |
//! | `node` | `sum by (instance) (rate(node_cpu_seconds_total{mode!="idle",mode!="iowait",mode!="steal"}[2m]))` | `max by (instance) (node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes)` | `instance` |
//!
//! The `process` preset also counts instances: `count by (job) (process_resident_memory_bytes)`.
//! Request rate and p99 latency have no default (metric names differ between services); pass
//! queries returning requests/s per instance and p99 latency in ms with the same labels, e.g.
//! `avg by (job) (rate(http_requests_total[2m]))` and
//! `1000 * histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket[2m])))`.
//! `rate(...[2m])` needs a scrape interval of one minute or less.
//!
//! The instance type comes from an `instance_type` label on the CPU series (or the label named by
//! [`PromOptions::instance_type_label`]), else from [`PromOptions::instance_type`].
//!
//! Prometheus refuses more than 11,000 points per series in one query; ranges are split into
//! chunks of at most 10,001 points.
//!
//! **Memory of the pull path** (`--no-pushdown`, [`fetch`]). The range is read chunk by chunk,
//! every query per chunk; at the end of a chunk the CPU and memory values of the same time are
//! joined into samples and folded into 5-minute windows, and the chunk is dropped. What stays is
//! per workload its windows (one per 5 minutes with data: 4,032 for 14 days, what the model
//! needs for the percentile of the 5-minute maxima) and a few counts. The first chunk has 241
//! points; each next one is sized so that the widest answer so far would have about a million
//! points (1,000 workloads: 1,048 points per chunk), at most 10,001. Measured with `frugal bench
//! fleet --days 14 --repeats 1` (15-second samples, VictoriaMetrics 1.79): 200 workloads peaked
//! at 124 MiB (2,654 MiB when every point was kept until the end), 1,000 workloads at 360 MiB
//! (13.2 GiB before); the bytes received are the same within 0.5% (more requests, each with the
//! labels again).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::report::Report;
use crate::series::{Sample, SeriesSet};

/// The most points Prometheus returns per series and query.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;
/// The most steps per chunk (10,001 points with both ends), below the limit.
const CHUNK_STEPS: i64 = 10_000;

/// A query preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Preset {
    /// Client-library process metrics, one workload per `job`.
    Process,
    /// cAdvisor container metrics, one workload per namespace/container.
    Container,
    /// node_exporter, one workload per `instance` (a machine).
    Node,
}

/// The queries and how to name workloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queries {
    /// CPU in cores per instance.
    pub cpu: String,
    /// Memory in bytes per instance.
    pub memory: String,
    /// Instance count (optional).
    pub instances: Option<String>,
    /// Requests per second per instance (optional).
    pub rps: Option<String>,
    /// p99 latency in ms (optional).
    pub latency: Option<String>,
    /// Labels whose values, joined by `/`, name a workload.
    pub workload_labels: Vec<String>,
}

impl Preset {
    /// The preset's queries.
    pub fn queries(self) -> Queries {
        let s = |x: &str| x.to_owned();
        match self {
            Preset::Process => Queries {
                cpu: s("avg by (job) (rate(process_cpu_seconds_total[2m]))"),
                memory: s("max by (job) (process_resident_memory_bytes)"),
                instances: Some(s("count by (job) (process_resident_memory_bytes)")),
                rps: None,
                latency: None,
                workload_labels: vec![s("job")],
            },
            Preset::Container => Queries {
                cpu: s("avg by (namespace, container) (rate(container_cpu_usage_seconds_total{container!=\"\",container!=\"POD\"}[2m]))"),
                memory: s("max by (namespace, container) (container_memory_working_set_bytes{container!=\"\",container!=\"POD\"})"),
                instances: None,
                rps: None,
                latency: None,
                workload_labels: vec![s("namespace"), s("container")],
            },
            Preset::Node => Queries {
                cpu: s("sum by (instance) (rate(node_cpu_seconds_total{mode!=\"idle\",mode!=\"iowait\",mode!=\"steal\"}[2m]))"),
                memory: s("max by (instance) (node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes)"),
                instances: None,
                rps: None,
                latency: None,
                workload_labels: vec![s("instance")],
            },
        }
    }
}

/// Where and what to query.
#[derive(Clone, Debug)]
pub struct PromOptions {
    /// Base URL, e.g. `http://127.0.0.1:9090`.
    pub url: String,
    /// Range start, Unix seconds.
    pub start_s: i64,
    /// Range end, Unix seconds.
    pub end_s: i64,
    /// Resolution, seconds.
    pub step_s: i64,
    /// Give up on one HTTP request after this long.
    pub timeout: Duration,
    /// Instance type for series without a label.
    pub instance_type: Option<String>,
    /// Label carrying the instance type.
    pub instance_type_label: String,
    /// Refuse an answer larger than this many bytes ([`DEFAULT_MAX_RESPONSE_BYTES`]).
    pub max_response_bytes: u64,
    /// True when the engine computes the statistics ([`crate::pushdown`]); only changes hints.
    pub pushdown: bool,
    /// Pushdown: the most subquery steps per chunk
    /// ([`crate::pushdown::DEFAULT_MAX_SUBQUERY_STEPS`]).
    pub max_subquery_steps: i64,
}

/// The default bound on one answer's size: larger answers are refused, not buffered.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 128 << 20;

/// One value of a Prometheus sample: the API sends numbers as strings (`"0.5"`, `"NaN"`, `"+Inf"`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum PromValue {
    /// A number (possibly NaN or infinite).
    Num(f64),
    /// A value that is not a number at all.
    Unparsable,
}

impl<'de> Deserialize<'de> for PromValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = PromValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sample value (a number as a string)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<PromValue, E> {
                Ok(v.parse().map_or(PromValue::Unparsable, PromValue::Num))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<PromValue, E> {
                Ok(PromValue::Num(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<PromValue, E> {
                Ok(PromValue::Num(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<PromValue, E> {
                Ok(PromValue::Num(v as f64))
            }
            fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<PromValue, E> {
                Ok(PromValue::Unparsable)
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> std::result::Result<PromValue, E> {
                Ok(PromValue::Unparsable)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<ApiSeries>,
}

/// One series of an answer: labels and values (`values` in a matrix, `value` in a vector).
#[derive(Deserialize)]
pub(crate) struct ApiSeries {
    pub(crate) metric: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) values: Vec<(f64, PromValue)>,
    #[serde(default)]
    pub(crate) value: Option<(f64, PromValue)>,
}

fn prom_err(opts: &PromOptions, message: String) -> Error {
    Error::Prometheus {
        url: opts.url.clone(),
        message,
    }
}

/// Why reading an answer stopped.
enum ReadFailure {
    Limit,
    Timeout,
    Other(String),
}

/// Counts and bounds the bytes of one answer and keeps its head for messages.
struct Metered<R> {
    inner: R,
    read: u64,
    limit: u64,
    head: Vec<u8>,
    failure: Option<ReadFailure>,
}

impl<R: std::io::Read> std::io::Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.read += n as u64;
                if self.head.len() < 200 {
                    let take = n.min(200 - self.head.len());
                    self.head.extend_from_slice(&buf[..take]);
                }
                if self.read > self.limit {
                    self.failure = Some(ReadFailure::Limit);
                    return Err(std::io::Error::other("answer too large"));
                }
                Ok(n)
            }
            Err(e) => {
                let timeout = e.kind() == std::io::ErrorKind::TimedOut
                    || e.get_ref()
                        .and_then(|x| x.downcast_ref::<ureq::Error>())
                        .is_some_and(|x| matches!(x, ureq::Error::Timeout(_)));
                self.failure = Some(if timeout {
                    ReadFailure::Timeout
                } else {
                    ReadFailure::Other(e.to_string())
                });
                Err(e)
            }
        }
    }
}

/// An HTTP client for the Prometheus query API that counts what it receives.
pub(crate) struct Client<'a> {
    agent: ureq::Agent,
    pub(crate) opts: &'a PromOptions,
    requests: Cell<u64>,
    bytes: Cell<u64>,
    warnings: RefCell<Vec<String>>,
}

impl<'a> Client<'a> {
    /// Checks the options and builds the agent.
    pub(crate) fn new(opts: &'a PromOptions) -> Result<Client<'a>> {
        if !(opts.url.starts_with("http://") || opts.url.starts_with("https://")) {
            return Err(prom_err(
                opts,
                "the URL must start with http:// or https://".to_owned(),
            ));
        }
        if cfg!(not(feature = "https")) && opts.url.starts_with("https://") {
            return Err(prom_err(
                opts,
                "this build has no TLS: rebuild with the `https` feature of frugal-rightsize \
                 (the `frugal` binary has it), or reach Prometheus over http://"
                    .to_owned(),
            ));
        }
        if opts.step_s <= 0 || opts.end_s <= opts.start_s {
            return Err(prom_err(
                opts,
                "the range is empty: the end must be after the start and the step positive"
                    .to_owned(),
            ));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(opts.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Client {
            agent,
            opts,
            requests: Cell::new(0),
            bytes: Cell::new(0),
            warnings: RefCell::new(Vec::new()),
        })
    }

    pub(crate) fn err(&self, message: String) -> Error {
        prom_err(self.opts, message)
    }

    fn call(&self, path: &str, query: &str, params: &[(&str, String)]) -> Result<ApiData> {
        let opts = self.opts;
        let endpoint = format!("{}/api/v1/{path}", opts.url.trim_end_matches('/'));
        let mut req = self.agent.get(&endpoint).query("query", query);
        for (k, v) in params {
            req = req.query(*k, v);
        }
        self.requests.set(self.requests.get() + 1);
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Timeout(_)) => {
                return Err(prom_err(opts, format!(
                    "no answer within {:?}; raise --prometheus-timeout, use a coarser --step or a shorter range",
                    opts.timeout
                )))
            }
            Err(e) => {
                return Err(prom_err(opts, format!(
                    "cannot query: {e}; check the URL and that Prometheus is running and reachable"
                )))
            }
        };
        let status = resp.status();
        let mut body = Metered {
            inner: std::io::BufReader::with_capacity(64 << 10, resp.into_body().into_reader()),
            read: 0,
            limit: opts.max_response_bytes,
            head: Vec::new(),
            failure: None,
        };
        // Parsed as it streams in: one answer costs its parsed size, never the text as well.
        let parsed: std::result::Result<ApiResponse, _> = serde_json::from_reader(&mut body);
        self.bytes.set(self.bytes.get() + body.read);
        let parsed = match (parsed, body.failure.take()) {
            (Ok(p), _) => p,
            (Err(_), Some(ReadFailure::Limit)) => {
                return Err(prom_err(opts, format!(
                    "an answer exceeded {} MiB and was abandoned; {}; query: {query}",
                    opts.max_response_bytes >> 20,
                    if opts.pushdown {
                        "use a coarser --step or a shorter range, or raise --max-response-mib"
                    } else {
                        "drop --no-pushdown (the engine then computes the statistics), use a coarser --step or a shorter range, or raise --max-response-mib"
                    }
                )))
            }
            (Err(_), Some(ReadFailure::Timeout)) => {
                return Err(prom_err(opts, format!(
                    "answer not complete within {:?}; raise --prometheus-timeout or narrow the range",
                    opts.timeout
                )))
            }
            (Err(_), Some(ReadFailure::Other(e))) => {
                return Err(prom_err(opts, format!("reading the answer failed: {e}")))
            }
            (Err(e), None) => {
                let head = String::from_utf8_lossy(&body.head).into_owned();
                return Err(prom_err(opts, format!(
                    "HTTP {status}: the answer is not Prometheus API JSON with series ({head:?}: {e}); is this a Prometheus server?"
                )));
            }
        };
        if parsed.status != "success" {
            let message = parsed.error.as_deref().unwrap_or("");
            let hint = if opts.pushdown && message.contains("subquer") {
                "; this engine may not support the subqueries pushdown needs: pass --no-pushdown"
            } else if opts.pushdown && message.contains("too many") {
                "; lower --pushdown-max-steps (the engine then works on shorter chunks) or raise \
                 its limit (Prometheus --query.max-samples, VictoriaMetrics \
                 -search.maxPointsSubqueryPerTimeseries)"
            } else {
                ""
            };
            return Err(prom_err(
                opts,
                format!(
                    "query failed (HTTP {status}, {}): {}{hint}; query: {query}",
                    parsed.error_type.as_deref().unwrap_or("error"),
                    parsed.error.as_deref().unwrap_or("no message")
                ),
            ));
        }
        if !parsed.warnings.is_empty() {
            let mut w = self.warnings.borrow_mut();
            for x in parsed.warnings {
                if !w.contains(&x) {
                    w.push(x);
                }
            }
        }
        parsed
            .data
            .ok_or_else(|| prom_err(opts, "answer without data".to_owned()))
    }

    /// `/api/v1/query_range`: a matrix.
    pub(crate) fn query_range(
        &self,
        query: &str,
        start: i64,
        end: i64,
        step_s: i64,
    ) -> Result<Vec<ApiSeries>> {
        let data = self.call(
            "query_range",
            query,
            &[
                ("start", start.to_string()),
                ("end", end.to_string()),
                ("step", format!("{step_s}s")),
            ],
        )?;
        if data.result_type != "matrix" {
            return Err(self.err(format!(
                "expected a matrix, got {}; query: {query}",
                data.result_type
            )));
        }
        Ok(data.result)
    }

    /// `/api/v1/query` at `time`: a vector.
    pub(crate) fn query(&self, query: &str, time: i64) -> Result<Vec<ApiSeries>> {
        let data = self.call("query", query, &[("time", time.to_string())])?;
        if data.result_type != "vector" {
            return Err(self.err(format!(
                "expected a vector, got {}; query: {query}",
                data.result_type
            )));
        }
        Ok(data.result)
    }

    /// What the client did, for [`Fetched`].
    pub(crate) fn finish(&self, fetched: &mut Fetched) {
        fetched.requests = self.requests.get();
        fetched.bytes = self.bytes.get();
        for w in self.warnings.borrow().iter() {
            fetched
                .notes
                .push(format!("the engine warned (its data may be partial): {w}"));
        }
    }
}

/// What a fetch did besides filling the series: traffic, and remarks for the report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fetched {
    /// Samples added (pull) or workloads summarised by the engine (pushdown).
    pub samples: u64,
    /// HTTP requests made.
    pub requests: u64,
    /// Bytes of answers received (bodies, after any content decoding).
    pub bytes: u64,
    /// Remarks about single workloads (dropped samples and the like), by workload name.
    pub workload_notes: BTreeMap<String, Vec<String>>,
    /// Remarks about the whole fetch (engine warnings).
    pub notes: Vec<String>,
}

impl Fetched {
    /// Adds the remarks to the report: per workload to its notes, the rest to the report's.
    pub fn annotate(&self, report: &mut Report) {
        for rec in &mut report.recommendations {
            if let Some(notes) = self.workload_notes.get(&rec.workload) {
                rec.notes.extend(notes.iter().cloned());
            }
        }
        report.notes.extend(self.notes.iter().cloned());
    }
}

/// The labels of a series, `{a="x", b="y"}`, for messages and as the name of an unnamed series.
pub(crate) fn label_set(metric: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = metric.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// The workload name of a series, or `None` when it lacks every workload label.
pub(crate) fn workload_name(
    metric: &BTreeMap<String, String>,
    labels: &[String],
) -> Option<String> {
    let name: Vec<&str> = labels
        .iter()
        .filter_map(|l| metric.get(l).map(String::as_str))
        .collect();
    (!name.is_empty()).then(|| name.join("/"))
}

/// Groups one answer by workload; several series for one workload are an error naming the
/// labels in which they differ. Series without a workload label are returned apart.
pub(crate) fn group<'s>(
    client: &Client<'_>,
    what: &str,
    query: &str,
    labels: &[String],
    series: &'s [ApiSeries],
) -> Result<(BTreeMap<String, &'s ApiSeries>, Vec<&'s ApiSeries>)> {
    let mut by: BTreeMap<String, Vec<&ApiSeries>> = BTreeMap::new();
    let mut unnamed = Vec::new();
    for s in series {
        match workload_name(&s.metric, labels) {
            Some(n) => by.entry(n).or_default().push(s),
            None => unnamed.push(s),
        }
    }
    if by.is_empty() && !unnamed.is_empty() {
        return Err(client.err(format!(
            "none of the {} series of the {what} query has the workload label{} {}, e.g. {}; \
             aggregate by it (`... by ({}) (...)`) or name the labels with --workload-label; query: {query}",
            unnamed.len(),
            if labels.len() == 1 { "" } else { "s" },
            labels.join(", "),
            label_set(&unnamed[0].metric),
            labels.join(", "),
        )));
    }
    let mut out = BTreeMap::new();
    for (name, list) in by {
        if list.len() > 1 {
            let keys: BTreeSet<&String> = list.iter().flat_map(|s| s.metric.keys()).collect();
            let differ: Vec<&str> = keys
                .into_iter()
                .filter(|k| {
                    let first = list[0].metric.get(*k);
                    list.iter().any(|s| s.metric.get(*k) != first)
                })
                .map(String::as_str)
                .collect();
            return Err(client.err(format!(
                "the {what} query returned {} series for workload {name}, differing in {}; frugal \
                 needs one series per workload: aggregate in the query, e.g. `avg by ({}) (...)` \
                 for the mean instance or `max by ({}) (...)` for the busiest; query: {query}",
                list.len(),
                differ.join(", "),
                labels.join(", "),
                labels.join(", "),
            )));
        }
        out.insert(name, list[0]);
    }
    Ok((out, unnamed))
}

/// Counts of values dropped from one workload's query, for a note.
#[derive(Clone, Copy, Debug, Default)]
struct Dropped {
    total: u64,
    nan: u64,
    inf: u64,
    negative: u64,
    unparsable: u64,
}

impl Dropped {
    fn add(&mut self, v: PromValue) -> Option<f64> {
        self.total += 1;
        match v {
            PromValue::Unparsable => self.unparsable += 1,
            PromValue::Num(x) if x.is_nan() => self.nan += 1,
            PromValue::Num(x) if x.is_infinite() => self.inf += 1,
            PromValue::Num(x) if x < 0.0 => self.negative += 1,
            PromValue::Num(x) => return Some(x),
        }
        None
    }

    fn dropped(&self) -> u64 {
        self.nan + self.inf + self.negative + self.unparsable
    }

    /// Adds the workload's note for `what` values (CPU, memory, ...) if any was dropped.
    fn note(&self, name: &str, what: &str, notes: &mut BTreeMap<String, Vec<String>>) {
        if self.dropped() > 0 {
            notes.entry(name.to_owned()).or_default().push(format!(
                "dropped {} of {} {what} values from Prometheus ({})",
                self.dropped(),
                self.total,
                self.describe()
            ));
        }
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (n, what) in [
            (self.nan, "NaN"),
            (self.inf, "infinite"),
            (self.negative, "negative"),
            (self.unparsable, "not a number"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        parts.join(", ")
    }
}

const SLOT_NAMES: [&str; 5] = ["CPU", "memory", "instances", "request-rate", "latency"];

/// Points per answer the pull path aims at: chunks are cut so that series × points stays near
/// this, whatever the fleet size. An answer then costs about 24 MiB parsed (24 bytes a point)
/// and the chunk's usable values 16 MiB per query, where one chunk of 10,000 steps for 1,000
/// workloads would cost ten times that.
const PULL_POINTS_PER_ANSWER: i64 = 1 << 20;
/// Steps of the pull path's first chunk, before any answer has said how many series there are.
const PULL_FIRST_CHUNK_STEPS: i64 = 240;

/// The pull path's chunks of a range: `[start, end]`, both ends evaluated, each next one sized
/// from the most series an answer has had so far ([`PullChunks::next`]).
#[derive(Clone, Copy, Debug)]
struct PullChunks {
    /// Start of the next chunk, Unix seconds.
    next_s: i64,
    end_s: i64,
    step_s: i64,
    /// Steps of the previous chunk.
    steps: i64,
}

impl PullChunks {
    fn new(start_s: i64, end_s: i64, step_s: i64) -> PullChunks {
        PullChunks {
            next_s: start_s,
            end_s,
            step_s: step_s.max(1),
            steps: PULL_FIRST_CHUNK_STEPS / 2,
        }
    }

    /// The next chunk, `None` after the range. `widest` is the most series one answer has had:
    /// the chunk has about [`PULL_POINTS_PER_ANSWER`] / `widest` points, at most 10,001
    /// (Prometheus's limit is 11,000 per series), and at most twice the previous chunk's steps:
    /// a fleet that mostly appears after the first chunk (1 series, then 1,000) is met by a
    /// chunk sized from a few series only once it has grown for several chunks, not at once
    /// (the jump from 1 to 1,000 series at the second chunk costs 481 × 1,000 points, not
    /// 10,001 × 1,000). Until some answer has a series, each chunk doubles the previous one's
    /// steps (a range whose first hours are empty is not crawled through at the first chunk's
    /// size).
    fn next(&mut self, widest: usize) -> Option<(i64, i64)> {
        if self.next_s > self.end_s {
            return None;
        }
        let doubled = self.steps.saturating_mul(2);
        self.steps = if widest == 0 {
            doubled
        } else {
            (PULL_POINTS_PER_ANSWER / widest as i64 - 1).min(doubled)
        }
        .clamp(1, CHUNK_STEPS);
        let start = self.next_s;
        let end = start
            .saturating_add(self.step_s.saturating_mul(self.steps))
            .min(self.end_s);
        self.next_s = end.saturating_add(self.step_s);
        Some((start, end))
    }
}

/// One workload of the pull path between chunks.
#[derive(Debug)]
struct PullWorkload {
    /// Instance type, from its first CPU series.
    instance_type: String,
    /// The current chunk's usable values per query, (Unix ms, value), in answer order.
    chunk: [Vec<(i64, f64)>; 5],
    /// The last sample added to the set, Unix ms.
    last_ms: Option<i64>,
    /// Samples added to the set.
    added: u64,
}

/// The pull path's state: per workload its instance type, counts, and the values of the
/// current chunk only. At the end of each chunk ([`Pull::end_chunk`]) the CPU and memory values
/// of the same time are joined into samples and folded into the [`SeriesSet`]'s 5-minute
/// windows, and the chunk's values are dropped: memory grows with workloads × windows (what the
/// model keeps) plus one chunk, not with the samples of the range.
#[derive(Debug, Default)]
struct Pull {
    /// Workloads of the CPU query, by name.
    workloads: BTreeMap<String, PullWorkload>,
    /// Values dropped per workload and query, for every named series (a workload the CPU query
    /// only has later still gets its memory counts).
    dropped: BTreeMap<String, [Dropped; 5]>,
    /// Workloads each query has had.
    present: [BTreeSet<String>; 5],
    /// Workloads another query has and the CPU query has not (so far): name -> first query.
    only_in: BTreeMap<String, usize>,
    /// Series without the workload labels, by label set.
    unnamed: BTreeMap<String, usize>,
    /// Series in the set before this fetch.
    first: usize,
}

/// `points` in time order with one value per time, the last of the answer's for a repeated time
/// (as a map from time to value filled in answer order).
fn in_time_order(points: &mut Vec<(i64, f64)>) {
    if points.windows(2).all(|p| p[0].0 < p[1].0) {
        return;
    }
    points.sort_by_key(|p| p.0); // stable: repeats stay in answer order
    points.reverse();
    points.dedup_by_key(|p| p.0); // keeps the first of each run: the answer's last
    points.reverse();
}

/// The value at `ms` in `points` (in time order), moving `cursor` forward: times are asked in
/// increasing order, so one chunk's join is one pass over each query's values.
fn value_at(points: &[(i64, f64)], cursor: &mut usize, ms: i64) -> Option<f64> {
    while points.get(*cursor).is_some_and(|p| p.0 < ms) {
        *cursor += 1;
    }
    points.get(*cursor).and_then(|p| (p.0 == ms).then_some(p.1))
}

impl Pull {
    /// A state for adding to a set that already holds `first` series.
    fn new(first: usize) -> Pull {
        Pull {
            first,
            ..Pull::default()
        }
    }

    /// Adds one named series of the current chunk's answer to query `slot`. A CPU series
    /// (slot 0) of a new workload creates it with `instance_type()`; `false` when that is `None`.
    fn add(
        &mut self,
        slot: usize,
        name: String,
        instance_type: impl FnOnce() -> Option<String>,
        values: &[(f64, PromValue)],
    ) -> bool {
        if !self.present[slot].contains(&name) {
            self.present[slot].insert(name.clone());
        }
        if slot == 0 && !self.workloads.contains_key(&name) {
            let Some(instance_type) = instance_type() else {
                return false;
            };
            self.only_in.remove(&name);
            self.workloads.insert(
                name.clone(),
                PullWorkload {
                    instance_type,
                    chunk: Default::default(),
                    last_ms: None,
                    added: 0,
                },
            );
        }
        let counts = match self.dropped.get_mut(&name) {
            Some(c) => &mut c[slot],
            None => &mut self.dropped.entry(name.clone()).or_default()[slot],
        };
        let Some(workload) = self.workloads.get_mut(&name) else {
            for (_, value) in values {
                counts.add(*value);
            }
            let first = self.only_in.entry(name).or_insert(slot);
            *first = (*first).min(slot);
            return true;
        };
        let points = &mut workload.chunk[slot];
        for (ts, value) in values {
            if let Some(v) = counts.add(*value) {
                points.push(((ts * 1000.0).round() as i64, v));
            }
        }
        true
    }

    /// Ends the current chunk: each workload's times with both a CPU and a memory value become
    /// samples in `set`, in time order, and the chunk's values are dropped.
    fn end_chunk(&mut self, source: &str, set: &mut SeriesSet) {
        for (name, w) in &mut self.workloads {
            for points in &mut w.chunk {
                in_time_order(points);
            }
            let mut cursors = [0usize; 5];
            for &(ms, cpu) in &w.chunk[0] {
                // A time an earlier chunk already had (an engine answering beyond a chunk's
                // end) is not a new sample.
                if w.last_ms.is_some_and(|last| ms <= last) {
                    continue;
                }
                let Some(mem) = value_at(&w.chunk[1], &mut cursors[1], ms) else {
                    continue;
                };
                let mut optional = [None; 3];
                for (i, v) in optional.iter_mut().enumerate() {
                    *v = value_at(&w.chunk[i + 2], &mut cursors[i + 2], ms);
                }
                let sample = Sample {
                    unix_ms: ms,
                    workload: name,
                    instance_type: &w.instance_type,
                    cpu_cores: cpu,
                    memory_bytes: mem,
                    instances: optional[0],
                    requests_per_second: optional[1],
                    latency_p99_ms: optional[2],
                };
                set.push(source, &sample, &|| format!("t={}", ms / 1000));
                w.last_ms = Some(ms);
                w.added += 1;
            }
            for points in &mut w.chunk {
                points.clear();
            }
        }
    }

    /// After the last chunk: skips the workloads without a sample (with the reason), notes the
    /// dropped values, orders this fetch's workloads by name, and adds the series no workload
    /// could be made of.
    fn finish(
        self,
        source: &str,
        opts: &PromOptions,
        queries: &Queries,
        set: &mut SeriesSet,
        fetched: &mut Fetched,
    ) {
        let no_drops = [Dropped::default(); 5];
        for (name, w) in &self.workloads {
            let dropped = self.dropped.get(name).unwrap_or(&no_drops);
            if w.added == 0 {
                let cpu = dropped[0];
                let reason = if cpu.dropped() == cpu.total {
                    format!(
                        "the CPU query returned no usable value ({} of {}: {})",
                        cpu.dropped(),
                        cpu.total,
                        cpu.describe()
                    )
                } else if !self.present[1].contains(name) {
                    "the memory query returned no series for this workload; check its labels \
                     match the CPU query's"
                        .to_owned()
                } else {
                    "no time at which both the CPU and the memory query have a usable value"
                        .to_owned()
                };
                set.push_skipped(source, name, &w.instance_type, reason);
                continue;
            }
            fetched.samples += w.added;
            for (d, what) in dropped.iter().zip(SLOT_NAMES) {
                d.note(name, what, &mut fetched.workload_notes);
            }
        }
        // Workloads enter the set as chunks reveal them; the report lists them by name.
        set.sort_from(self.first);
        for (name, slot) in self.only_in {
            set.push_skipped(
                source,
                &name,
                opts.instance_type.as_deref().unwrap_or("?"),
                format!(
                    "the {} query has this workload but the CPU query does not",
                    SLOT_NAMES[slot]
                ),
            );
        }
        for (labels, _) in self.unnamed {
            set.push_skipped(
                source,
                &labels,
                opts.instance_type.as_deref().unwrap_or("?"),
                format!(
                    "series without the workload label{} {}: aggregate by {} in the query",
                    if queries.workload_labels.len() == 1 {
                        ""
                    } else {
                        "s"
                    },
                    queries.workload_labels.join(", "),
                    queries.workload_labels.join(", ")
                ),
            );
        }
    }
}

/// Fetches the queries over the range into `set` and computes locally (`--no-pushdown`).
///
/// Every sample of every series crosses the network; [`crate::pushdown::fetch`] asks the engine
/// for the statistics instead. The range is read chunk by chunk, every query per chunk, and each
/// chunk's samples are folded into `set`'s 5-minute windows before the next is asked for: memory
/// grows with workloads × windows plus one chunk (about a million points once the fleet's size
/// is known from an answer; a fleet that appears later in the range can make one chunk up to
/// twice the previous chunk's steps × its series), not with the samples. Each answer is
/// checked as it arrives (workload labels, one series per workload), so a wrong query fails
/// at the first chunk, not after the whole range.
///
/// Workloads that cannot be analysed (no finite CPU value, no memory series, no workload label)
/// are added to `set` as skipped, with the reason.
pub fn fetch(opts: &PromOptions, queries: &Queries, set: &mut SeriesSet) -> Result<Fetched> {
    let client = Client::new(opts)?;
    let all = [
        Some(&queries.cpu),
        Some(&queries.memory),
        queries.instances.as_ref(),
        queries.rps.as_ref(),
        queries.latency.as_ref(),
    ];
    let source = opts.url.clone();
    let mut pull = Pull::new(set.len());
    let mut cpu_series = 0usize;
    let mut widest = 0usize;
    let mut chunks = PullChunks::new(opts.start_s, opts.end_s, opts.step_s);
    while let Some((start, end)) = chunks.next(widest) {
        for (slot, query) in all.iter().enumerate() {
            let Some(query) = query else { continue };
            let answer = client.query_range(query, start, end, opts.step_s)?;
            let (named, without) = group(
                &client,
                SLOT_NAMES[slot],
                query,
                &queries.workload_labels,
                &answer,
            )?;
            widest = widest.max(answer.len());
            if slot == 0 {
                cpu_series += answer.len();
            }
            for s in without {
                *pull.unnamed.entry(label_set(&s.metric)).or_default() += 1;
            }
            for (name, series) in named {
                let instance_type = || {
                    series
                        .metric
                        .get(&opts.instance_type_label)
                        .cloned()
                        .or_else(|| opts.instance_type.clone())
                };
                if !pull.add(slot, name.clone(), instance_type, &series.values) {
                    return Err(prom_err(
                        opts,
                        format!(
                            "series {name} has no `{}` label; pass --instance-type TYPE",
                            opts.instance_type_label
                        ),
                    ));
                }
            }
        }
        pull.end_chunk(&source, set);
    }
    if cpu_series == 0 {
        return Err(prom_err(
            opts,
            format!(
                "the CPU query returned no series between {} and {}: {}; check the metric names \
             and the range, or pass --query-cpu",
                opts.start_s, opts.end_s, queries.cpu
            ),
        ));
    }
    let mut fetched = Fetched::default();
    pull.finish(&source, opts, queries, set, &mut fetched);
    client.finish(&mut fetched);
    Ok(fetched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Walks the chunks of a range whose answers have `widest` series (known after the first).
    fn walk(start: i64, end: i64, step: i64, widest: usize) -> Vec<(i64, i64)> {
        let mut c = PullChunks::new(start, end, step);
        let mut seen = 0;
        std::iter::from_fn(|| {
            let next = c.next(seen);
            seen = widest;
            next
        })
        .collect()
    }

    #[test]
    fn pull_chunks_cover_the_range_within_the_point_limits() {
        for widest in [0, 1, 4, 200, 1_000, 100_000, 10_000_000] {
            let c = walk(0, 14 * 86_400, 15, widest);
            assert_eq!(c.first().unwrap().0, 0);
            assert_eq!(c.last().unwrap().1, 14 * 86_400);
            for (i, &(s, e)) in c.iter().enumerate() {
                let points = (e - s) / 15 + 1;
                assert!(points < MAX_POINTS_PER_SERIES, "{widest}: {points}");
                if i > 0 {
                    assert_eq!(s, c[i - 1].1 + 15, "no overlap, no hole");
                }
                if i == 0 {
                    assert_eq!(points, PULL_FIRST_CHUNK_STEPS + 1, "{widest}");
                } else if widest > 0 && i + 1 < c.len() {
                    // About a million points per answer, never more (but one step at least),
                    // reached by at most doubling the previous chunk.
                    let total = points * widest as i64;
                    let before = (c[i - 1].1 - c[i - 1].0) / 15;
                    assert!(total <= PULL_POINTS_PER_ANSWER || points == 2, "{widest}");
                    assert!(
                        points - 1 <= 2 * before,
                        "{widest}: {points} after {before}"
                    );
                    assert!(
                        total > PULL_POINTS_PER_ANSWER / 2
                            || points == CHUNK_STEPS + 1
                            || points - 1 == 2 * before,
                        "{widest}: {points}"
                    );
                }
            }
        }
        // 1,000 workloads over 14 days at 15 s: 241 points, 481, 961, then chunks of 1,048
        // (not 9 of 10,001).
        let fleet = walk(0, 14 * 86_400, 15, 1_000);
        assert_eq!(fleet[1].1 - fleet[1].0, 480 * 15);
        assert_eq!(fleet[2].1 - fleet[2].0, 960 * 15);
        assert_eq!(fleet[3].1 - fleet[3].0, 1_047 * 15);
        assert_eq!(fleet.len(), 79);
        // Most of the fleet appears after the first chunk (1 series, then 1,000): the second
        // chunk is sized from one series but only doubles (481 points, not 10,001).
        let mut c = PullChunks::new(0, 14 * 86_400, 15);
        let first = c.next(0).unwrap();
        let second = c.next(1).unwrap();
        assert_eq!(first.1 - first.0, 240 * 15);
        assert_eq!(second.1 - second.0, 480 * 15);
        let third = c.next(1_000).unwrap();
        assert!((third.1 - third.0) / 15 * 1_000 <= PULL_POINTS_PER_ANSWER);
        // Nothing found yet: the chunks double up to the limit.
        let empty = walk(0, 14 * 86_400, 15, 0);
        assert_eq!(empty[1].1 - empty[1].0, 480 * 15);
        assert_eq!(empty[7].1 - empty[7].0, CHUNK_STEPS * 15);
        assert_eq!(walk(0, 10, 60, 3), vec![(0, 10)]);
    }

    #[test]
    fn repeated_times_keep_the_answers_last_value() {
        let mut p = vec![(3, 1.0), (1, 2.0), (3, 3.0), (2, 4.0), (1, 5.0)];
        in_time_order(&mut p);
        assert_eq!(p, vec![(1, 5.0), (2, 4.0), (3, 3.0)]);
        let mut sorted = vec![(1, 1.0), (2, 2.0)];
        in_time_order(&mut sorted);
        assert_eq!(sorted, vec![(1, 1.0), (2, 2.0)]);
        let mut cursor = 0;
        assert_eq!(value_at(&p, &mut cursor, 0), None);
        assert_eq!(value_at(&p, &mut cursor, 2), Some(4.0));
        assert_eq!(value_at(&p, &mut cursor, 3), Some(3.0));
        assert_eq!(value_at(&p, &mut cursor, 9), None);
    }

    /// One series of one answer: workload name, instance-type label, values.
    #[derive(Clone, Debug)]
    struct Answer {
        name: String,
        instance_type: String,
        values: Vec<(f64, PromValue)>,
    }

    /// The answers of one chunk, per query slot.
    type Chunk = [Vec<Answer>; 5];

    fn options() -> (PromOptions, Queries) {
        let opts = PromOptions {
            url: "http://127.0.0.1:9".to_owned(),
            start_s: 0,
            end_s: 3600,
            step_s: 15,
            timeout: Duration::from_secs(1),
            instance_type: None,
            instance_type_label: "instance_type".to_owned(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            pushdown: false,
            max_subquery_steps: 100,
        };
        (opts, Preset::Process.queries())
    }

    /// The whole-range computation the pull path did before it streamed: every point of every
    /// query in one map per workload, joined after the last answer.
    fn whole_range(chunks: &[Chunk], set: &mut SeriesSet) -> Fetched {
        let (opts, _) = options();
        let source = opts.url.clone();
        type Points = BTreeMap<i64, [Option<f64>; 5]>;
        let mut data: BTreeMap<String, (String, Points)> = BTreeMap::new();
        let mut dropped: BTreeMap<(String, usize), Dropped> = BTreeMap::new();
        let mut only_in: BTreeMap<String, usize> = BTreeMap::new();
        let mut present: Vec<BTreeSet<String>> = vec![BTreeSet::new(); 5];
        for slot in 0..5 {
            for chunk in chunks {
                for s in &chunk[slot] {
                    present[slot].insert(s.name.clone());
                    if slot == 0 && !data.contains_key(&s.name) {
                        data.insert(s.name.clone(), (s.instance_type.clone(), BTreeMap::new()));
                    }
                    let Some((_, points)) = data.get_mut(&s.name) else {
                        only_in.entry(s.name.clone()).or_insert(slot);
                        continue;
                    };
                    let counts = dropped.entry((s.name.clone(), slot)).or_default();
                    for (ts, value) in &s.values {
                        let Some(v) = counts.add(*value) else {
                            continue;
                        };
                        let ms = (ts * 1000.0).round() as i64;
                        points.entry(ms).or_insert([None; 5])[slot] = Some(v);
                    }
                }
            }
        }
        let mut fetched = Fetched::default();
        for (name, (itype, points)) in &data {
            let cpu = dropped.get(&(name.clone(), 0)).copied().unwrap_or_default();
            if cpu.dropped() == cpu.total {
                let why = format!(
                    "the CPU query returned no usable value ({} of {}: {})",
                    cpu.dropped(),
                    cpu.total,
                    cpu.describe()
                );
                set.push_skipped(&source, name, itype, why);
                continue;
            }
            if !present[1].contains(name) {
                let why = "the memory query returned no series for this workload; check its \
                           labels match the CPU query's";
                set.push_skipped(&source, name, itype, why.to_owned());
                continue;
            }
            let mut added = 0u64;
            for (ms, v) in points {
                let (Some(cpu), Some(mem)) = (v[0], v[1]) else {
                    continue;
                };
                let sample = Sample {
                    unix_ms: *ms,
                    workload: name,
                    instance_type: itype,
                    cpu_cores: cpu,
                    memory_bytes: mem,
                    instances: v[2],
                    requests_per_second: v[3],
                    latency_p99_ms: v[4],
                };
                set.push(&source, &sample, &|| format!("t={}", ms / 1000));
                added += 1;
            }
            if added == 0 {
                let why = "no time at which both the CPU and the memory query have a usable value";
                set.push_skipped(&source, name, itype, why.to_owned());
                continue;
            }
            fetched.samples += added;
            for (slot, what) in SLOT_NAMES.iter().enumerate() {
                let Some(d) = dropped.get(&(name.clone(), slot)) else {
                    continue;
                };
                d.note(name, what, &mut fetched.workload_notes);
            }
        }
        for (name, slot) in only_in {
            let why = format!(
                "the {} query has this workload but the CPU query does not",
                SLOT_NAMES[slot]
            );
            set.push_skipped(&source, &name, "?", why);
        }
        fetched
    }

    /// The pull path's streaming computation over the same answers, chunk by chunk; checks
    /// that no chunk's values outlive it.
    fn streamed(chunks: &[Chunk], set: &mut SeriesSet) -> Fetched {
        let (opts, queries) = options();
        let mut pull = Pull::new(set.len());
        for chunk in chunks {
            for (slot, answer) in chunk.iter().enumerate() {
                for s in answer {
                    let itype = || Some(s.instance_type.clone());
                    assert!(pull.add(slot, s.name.clone(), itype, &s.values));
                }
            }
            pull.end_chunk(&opts.url, set);
            for w in pull.workloads.values() {
                assert!(
                    w.chunk.iter().all(Vec::is_empty),
                    "a chunk's values are kept"
                );
            }
        }
        let mut fetched = Fetched::default();
        pull.finish(&opts.url, &opts, &queries, set, &mut fetched);
        fetched
    }

    /// One point of a generated series: 0 absent, 1 usable, 2 NaN, 3 infinite, 4 negative,
    /// 5 not a number, 6 usable and repeated with a second value.
    fn point() -> impl Strategy<Value = (u8, f64, f64)> {
        (
            prop_oneof![3 => Just(0u8), 8 => Just(1u8), 1 => 2u8..7],
            0.0f64..8.0,
            0.0f64..8.0,
        )
    }

    /// Per workload, per query: the points of the range ([`point`]), or no series at all.
    type Fleet = Vec<Vec<Option<Vec<(u8, f64, f64)>>>>;

    /// Up to five workloads, each with up to five queries of `n` points (some absent, some
    /// unusable), and where the range is cut into chunks.
    fn fleet() -> impl Strategy<Value = (Fleet, Vec<bool>)> {
        (1usize..120).prop_flat_map(|n| {
            let slot = prop_oneof![
                1 => Just(None),
                6 => proptest::collection::vec(point(), n).prop_map(Some),
            ];
            (
                proptest::collection::vec(proptest::collection::vec(slot, 5), 1..6),
                proptest::collection::vec(proptest::bool::weighted(0.15), n),
            )
        })
    }

    /// The answers of the generated fleet, cut into chunks after each `true` of `cuts`
    /// (every chunk when `cuts` is all false: the whole range at once). As an engine answers,
    /// a series without a point in a chunk is not in that chunk's answer.
    fn answers(fleet: &Fleet, cuts: &[bool]) -> Vec<Chunk> {
        let start = 1_700_000_007.0;
        let mut bounds = vec![0];
        bounds.extend(
            cuts.iter()
                .enumerate()
                .filter(|(_, c)| **c)
                .map(|(i, _)| i + 1),
        );
        bounds.push(cuts.len());
        bounds.dedup();
        let mut out = Vec::new();
        for pair in bounds.windows(2) {
            let mut chunk: Chunk = Default::default();
            for (slot, answer) in chunk.iter_mut().enumerate() {
                for (w, queries) in fleet.iter().enumerate() {
                    let Some(points) = &queries[slot] else {
                        continue;
                    };
                    let mut values = Vec::new();
                    for (i, &(kind, a, b)) in points.iter().enumerate().take(pair[1]).skip(pair[0])
                    {
                        let ts = start + 15.0 * i as f64;
                        let v = match kind {
                            0 => continue,
                            1 | 6 => PromValue::Num(a),
                            2 => PromValue::Num(f64::NAN),
                            3 => PromValue::Num(f64::INFINITY),
                            4 => PromValue::Num(-a - 1.0),
                            _ => PromValue::Unparsable,
                        };
                        values.push((ts, v));
                        if kind == 6 {
                            values.push((ts, PromValue::Num(b)));
                        }
                    }
                    if !values.is_empty() {
                        answer.push(Answer {
                            name: format!("w{w}"),
                            instance_type: format!("type-{}", w % 2),
                            values,
                        });
                    }
                }
            }
            out.push(chunk);
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Chunk by chunk gives the whole-range result: the same windows, counts, skipped
        /// workloads and reasons, notes and order, however the range is cut.
        #[test]
        fn streaming_equals_the_whole_range((fleet, cuts) in fleet()) {
            let chunked = answers(&fleet, &cuts);
            let mut reference = SeriesSet::new();
            let expected = whole_range(&chunked, &mut reference);
            let mut set = SeriesSet::new();
            let fetched = streamed(&chunked, &mut set);
            prop_assert_eq!(set.series(), reference.series());
            prop_assert_eq!(&fetched, &expected);
            let whole = answers(&fleet, &vec![false; cuts.len()]);
            let mut at_once = SeriesSet::new();
            let fetched = streamed(&whole, &mut at_once);
            prop_assert_eq!(at_once.series(), reference.series());
            prop_assert_eq!(&fetched, &expected);
        }
    }

    /// An engine that aligns a range to its step (VictoriaMetrics rounds the start down and
    /// the end up) answers each chunk's boundary point twice: once at the end of a chunk and
    /// again at the start of the next. It is one sample, and the window that holds it has the
    /// maxima of the unsplit range.
    #[test]
    fn a_boundary_point_answered_twice_is_one_sample() {
        let t0 = 1_700_000_200.0; // 100 s into a 5-minute window (they start at multiples of 300 s)
        let series = |range: std::ops::Range<usize>, base: f64| Answer {
            name: "w".to_owned(),
            instance_type: "m7i.large".to_owned(),
            values: range
                .map(|i| (t0 + 15.0 * i as f64, PromValue::Num(base + i as f64)))
                .collect(),
        };
        let chunk = |range: std::ops::Range<usize>| -> Chunk {
            [
                vec![series(range.clone(), 0.0)],
                vec![series(range, 1e9)],
                Vec::new(),
                Vec::new(),
                Vec::new(),
            ]
        };
        // Points 0..40 (10 minutes, windows of 14, 20 and 6 points); the second chunk repeats
        // point 19, inside the second window.
        let mut whole = SeriesSet::new();
        streamed(&[chunk(0..40)], &mut whole);
        let mut split = SeriesSet::new();
        let fetched = streamed(&[chunk(0..20), chunk(19..40)], &mut split);
        assert_eq!(fetched.samples, 40);
        assert_eq!(split.series(), whole.series());
        let w = &split.series()[0];
        assert_eq!(
            w.skipped, None,
            "a repeated time is not a duplicate timestamp"
        );
        assert_eq!(w.windows.len(), 3);
        assert_eq!(w.windows.iter().map(|w| w.samples).sum::<u32>(), 40);
    }

    #[test]
    fn https_needs_the_feature() {
        let opts = PromOptions {
            url: "https://prometheus.example:9090".to_owned(),
            start_s: 0,
            end_s: 3600,
            step_s: 60,
            timeout: Duration::from_secs(1),
            instance_type: None,
            instance_type_label: "instance_type".to_owned(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            pushdown: true,
            max_subquery_steps: 100,
        };
        let tls = cfg!(feature = "https");
        match Client::new(&opts) {
            Ok(_) => assert!(tls, "an https:// URL accepted without TLS"),
            Err(e) => {
                assert!(!tls, "{e}");
                let e = e.to_string();
                assert!(e.contains("no TLS") && e.contains("`https` feature"), "{e}");
            }
        }
        let plain = PromOptions {
            url: "http://127.0.0.1:9".to_owned(),
            ..opts
        };
        assert!(Client::new(&plain).is_ok());
    }
}
