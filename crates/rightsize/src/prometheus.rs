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

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::report::Report;
use crate::series::{Sample, SeriesSet};

/// The most points Prometheus returns per series and query.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;
/// Steps per chunk (10,001 points with both ends), below the limit.
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

/// Unix ms -> [cpu, memory, instances, rps, latency].
type Points = BTreeMap<i64, [Option<f64>; 5]>;

/// The chunks `[start, end]` of a range so that none exceeds the points limit.
pub fn chunks(start_s: i64, end_s: i64, step_s: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut s = start_s;
    while s <= end_s {
        let e = (s + step_s * CHUNK_STEPS).min(end_s);
        out.push((s, e));
        s = e + step_s;
    }
    out
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

/// Fetches the queries over the range into `set` and computes locally (`--no-pushdown`).
///
/// Every sample of every series crosses the network; [`crate::pushdown::fetch`] asks the engine
/// for the statistics instead. Each answer is checked as it arrives (workload labels, one series
/// per workload) so a wrong query fails after the first chunk, not after the whole range.
///
/// Workloads that cannot be analysed (no finite CPU value, no memory series, no workload label)
/// are added to `set` as skipped, with the reason.
pub fn fetch(opts: &PromOptions, queries: &Queries, set: &mut SeriesSet) -> Result<Fetched> {
    let client = Client::new(opts)?;
    // workload -> timestamp -> [cpu, memory, instances, rps, latency]
    let mut data: BTreeMap<String, (String, Points)> = BTreeMap::new();
    let mut dropped: BTreeMap<(String, usize), Dropped> = BTreeMap::new();
    let mut unnamed: BTreeMap<String, usize> = BTreeMap::new();
    let mut only_in: BTreeMap<String, usize> = BTreeMap::new();
    let mut missing_type: Option<String> = None;
    let all = [
        Some(&queries.cpu),
        Some(&queries.memory),
        queries.instances.as_ref(),
        queries.rps.as_ref(),
        queries.latency.as_ref(),
    ];
    let mut present: Vec<BTreeSet<String>> = vec![BTreeSet::new(); 5];
    for (slot, query) in all.iter().enumerate() {
        let Some(query) = query else { continue };
        let mut seen = 0usize;
        for (start, end) in chunks(opts.start_s, opts.end_s, opts.step_s) {
            let answer = client.query_range(query, start, end, opts.step_s)?;
            let (named, without) = group(
                &client,
                SLOT_NAMES[slot],
                query,
                &queries.workload_labels,
                &answer,
            )?;
            seen += answer.len();
            for s in without {
                *unnamed.entry(label_set(&s.metric)).or_default() += 1;
            }
            for (name, series) in named {
                present[slot].insert(name.clone());
                if slot == 0 && !data.contains_key(&name) {
                    let itype = series
                        .metric
                        .get(&opts.instance_type_label)
                        .cloned()
                        .or_else(|| opts.instance_type.clone());
                    match itype {
                        Some(t) => {
                            data.insert(name.clone(), (t, BTreeMap::new()));
                        }
                        None => {
                            missing_type.get_or_insert(name.clone());
                            continue;
                        }
                    }
                }
                let Some((_, points)) = data.get_mut(&name) else {
                    only_in.entry(name).or_insert(slot);
                    continue;
                };
                let counts = dropped.entry((name, slot)).or_default();
                for (ts, value) in &series.values {
                    let Some(v) = counts.add(*value) else {
                        continue;
                    };
                    let ms = (ts * 1000.0).round() as i64;
                    points.entry(ms).or_insert([None; 5])[slot] = Some(v);
                }
            }
            if let Some(name) = &missing_type {
                return Err(prom_err(
                    opts,
                    format!(
                        "series {name} has no `{}` label; pass --instance-type TYPE",
                        opts.instance_type_label
                    ),
                ));
            }
        }
        if slot == 0 && seen == 0 {
            return Err(prom_err(opts, format!(
                "the CPU query returned no series between {} and {}: {query}; check the metric names \
                 and the range, or pass --query-cpu",
                opts.start_s, opts.end_s
            )));
        }
    }
    let source = opts.url.clone();
    let mut fetched = Fetched::default();
    for (name, (itype, points)) in &data {
        let cpu = dropped.get(&(name.clone(), 0)).copied().unwrap_or_default();
        if cpu.dropped() == cpu.total {
            set.push_skipped(
                &source,
                name,
                itype,
                format!(
                    "the CPU query returned no usable value ({} of {}: {})",
                    cpu.dropped(),
                    cpu.total,
                    cpu.describe()
                ),
            );
            continue;
        }
        if !present[1].contains(name) {
            set.push_skipped(
                &source,
                name,
                itype,
                "the memory query returned no series for this workload; check its labels match \
                 the CPU query's"
                    .to_owned(),
            );
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
            set.push_skipped(
                &source,
                name,
                itype,
                "no time at which both the CPU and the memory query have a usable value".to_owned(),
            );
            continue;
        }
        fetched.samples += added;
        for (slot, what) in SLOT_NAMES.iter().enumerate() {
            let Some(d) = dropped.get(&(name.clone(), slot)) else {
                continue;
            };
            if d.dropped() > 0 {
                fetched
                    .workload_notes
                    .entry(name.clone())
                    .or_default()
                    .push(format!(
                        "dropped {} of {} {} values from Prometheus ({})",
                        d.dropped(),
                        d.total,
                        what,
                        d.describe()
                    ));
            }
        }
    }
    for (name, slot) in only_in {
        set.push_skipped(
            &source,
            &name,
            opts.instance_type.as_deref().unwrap_or("?"),
            format!(
                "the {} query has this workload but the CPU query does not",
                SLOT_NAMES[slot]
            ),
        );
    }
    for (labels, _) in unnamed {
        set.push_skipped(
            &source,
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
    client.finish(&mut fetched);
    Ok(fetched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_the_point_limit() {
        let c = chunks(0, 14 * 86_400, 60);
        assert_eq!(c.first().unwrap().0, 0);
        assert_eq!(c.last().unwrap().1, 14 * 86_400);
        for (i, (s, e)) in c.iter().enumerate() {
            assert!((e - s) / 60 < MAX_POINTS_PER_SERIES, "points = steps + 1");
            if i > 0 {
                assert_eq!(*s, c[i - 1].1 + 60, "no overlap, no hole");
            }
        }
        assert_eq!(c.len(), 3); // 20,161 points
        assert_eq!(chunks(0, 10, 60), vec![(0, 10)]);
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
