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

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
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
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<ApiSeries>,
}

#[derive(Deserialize)]
struct ApiSeries {
    metric: HashMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
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

fn query_range(
    agent: &ureq::Agent,
    opts: &PromOptions,
    query: &str,
    start: i64,
    end: i64,
) -> Result<Vec<ApiSeries>> {
    let endpoint = format!("{}/api/v1/query_range", opts.url.trim_end_matches('/'));
    let resp = agent
        .get(&endpoint)
        .query("query", query)
        .query("start", start.to_string())
        .query("end", end.to_string())
        .query("step", format!("{}s", opts.step_s))
        .call();
    let mut resp = match resp {
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
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .map_err(|e| match e {
            ureq::Error::Timeout(_) => prom_err(
                opts,
                format!(
                "answer not complete within {:?}; raise --prometheus-timeout or narrow the range",
                opts.timeout
            ),
            ),
            e => prom_err(opts, format!("reading the answer failed: {e}")),
        })?;
    let parsed: ApiResponse = serde_json::from_str(&body).map_err(|_| {
        let head: String = body.chars().take(200).collect();
        prom_err(opts, format!(
            "HTTP {status}: the answer is not Prometheus API JSON ({head:?}); is this a Prometheus server?"
        ))
    })?;
    if parsed.status != "success" {
        return Err(prom_err(
            opts,
            format!(
                "query failed (HTTP {status}, {}): {}; query: {query}",
                parsed.error_type.as_deref().unwrap_or("error"),
                parsed.error.as_deref().unwrap_or("no message")
            ),
        ));
    }
    let data = parsed
        .data
        .ok_or_else(|| prom_err(opts, "answer without data".to_owned()))?;
    if data.result_type != "matrix" {
        return Err(prom_err(
            opts,
            format!(
                "expected a matrix, got {}; query: {query}",
                data.result_type
            ),
        ));
    }
    Ok(data.result)
}

/// Fetches the queries over the range into `set`; returns the number of samples added.
pub fn fetch(opts: &PromOptions, queries: &Queries, set: &mut SeriesSet) -> Result<u64> {
    if !(opts.url.starts_with("http://") || opts.url.starts_with("https://")) {
        return Err(prom_err(
            opts,
            "the URL must start with http:// or https://".to_owned(),
        ));
    }
    if opts.step_s <= 0 || opts.end_s <= opts.start_s {
        return Err(prom_err(
            opts,
            "the range is empty: the end must be after the start and the step positive".to_owned(),
        ));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(opts.timeout))
        .http_status_as_error(false)
        .build()
        .into();
    // workload -> timestamp -> [cpu, memory, instances, rps, latency]
    let mut data: BTreeMap<String, (String, Points)> = BTreeMap::new();
    let mut missing_type: Option<String> = None;
    let all = [
        Some(&queries.cpu),
        Some(&queries.memory),
        queries.instances.as_ref(),
        queries.rps.as_ref(),
        queries.latency.as_ref(),
    ];
    for (slot, query) in all.iter().enumerate() {
        let Some(query) = query else { continue };
        let mut seen = 0usize;
        for (start, end) in chunks(opts.start_s, opts.end_s, opts.step_s) {
            for series in query_range(&agent, opts, query, start, end)? {
                seen += 1;
                let name: Vec<&str> = queries
                    .workload_labels
                    .iter()
                    .filter_map(|l| series.metric.get(l).map(String::as_str))
                    .collect();
                if name.is_empty() {
                    continue;
                }
                let name = name.join("/");
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
                    continue;
                };
                for (ts, value) in &series.values {
                    let Ok(v) = value.parse::<f64>() else {
                        continue;
                    };
                    if !v.is_finite() || v < 0.0 {
                        continue;
                    }
                    let ms = (ts * 1000.0).round() as i64;
                    points.entry(ms).or_insert([None; 5])[slot] = Some(v);
                }
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
    if let Some(name) = missing_type {
        return Err(prom_err(
            opts,
            format!(
                "series {name} has no `{}` label; pass --instance-type TYPE",
                opts.instance_type_label
            ),
        ));
    }
    let source = opts.url.clone();
    let mut added = 0;
    for (name, (itype, points)) in &data {
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
    }
    Ok(added)
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
}
