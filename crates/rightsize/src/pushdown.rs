//! Pushdown: the metrics engine computes the model's statistics, frugal receives a few numbers
//! per workload.
//!
//! [`crate::prometheus::fetch`] (`--no-pushdown`) transfers every sample: 1,000 workloads × 14
//! days at 15 s are 80 million points per query. Here each statistic is computed inside the engine
//! with `*_over_time` functions over PromQL subqueries (Prometheus, Thanos, Mimir and
//! VictoriaMetrics all evaluate them), and the answers have one value per workload. With `C` the
//! CPU query, `M` the memory query, `U(x)` = `((x) >= 0 < Inf)` its usable values, `S` the step
//! and `R` a chunk of the range, the instant queries per chunk are:
//!
//! | statistic | VictoriaMetrics (MetricsQL) | PromQL engines |
//! |---|---|---|
//! | samples, sum, highest, first / last sample | `aggr_over_time(("count_over_time", "sum_over_time", "min_over_time", "max_over_time", "tfirst_over_time", "tlast_over_time"), (C)[R:S])`: one evaluation | `count_over_time((C)[R:S])`, `count_over_time(U(C)[R:S])`, `sum_over_time(..)`, `max_over_time(..)`, `min_over_time(timestamp(U(C))[R:S])`, `max_over_time(..)`: six |
//! | the same over the usable values, only when some value is unusable | `aggr_over_time((..), U(C)[R:S])` | (already above) |
//! | peak memory | `max_over_time((M)[R:S])`; `U(M)` only when that is +Inf | same |
//! | instances | `aggr_over_time(("sum_over_time", "count_over_time"), U(I)[R:S])` | `sum_over_time`, `count_over_time` |
//!
//! and then, over the whole range, one range query at a 5-minute step, `max_over_time(U(C)[5m:S])`
//! (plain `C` when every value was usable): the 5-minute maxima, one point per workload and
//! window, whose count is the windows with data and whose percentile is taken here (a percentile
//! does not combine across chunks). The first query says which dialect the engine speaks: a
//! PromQL engine refuses `aggr_over_time` as an unknown function and gets the PromQL queries.
//!
//! **How it scales.** The number of queries is fixed whatever the fleet size (two instant queries
//! per chunk on VictoriaMetrics, seven on PromQL engines, plus one range query per 1,000
//! windows); each answers every workload. The bytes grow with workloads × (queries + 5-minute
//! windows), not with the samples. The engine's work does grow with the samples: each query
//! evaluates the CPU or memory query at every step of its chunk. Measured on VictoriaMetrics 1.79
//! (200 workloads × 14 days at 15 s, engine CPU per 3.5-day chunk): a subquery statistic about
//! 0.35 s, one with `timestamp()` 0.65 s, `aggr_over_time` with six rollups 0.30 s, a chunk of
//! maxima 0.38–0.45 s. A whole run costs it 4.2 s, where one query per statistic summed to
//! 14.7 s and pulling costs it about 16 s (and this side far more). Concurrent requests gained
//! nothing there: one query already keeps both cores busy.
//!
//! **Engine limits.** A subquery makes the engine hold series × steps points: Prometheus refuses
//! more than `--query.max-samples` (50 million by default), VictoriaMetrics more than
//! `-search.maxPointsSubqueryPerTimeseries` (100,000) per series and subquery and
//! `-search.maxPointsPerTimeseries` (30,000) per series and request (version 1.79 applies the
//! latter to subqueries too). Ranges longer than [`PromOptions::max_subquery_steps`] steps are
//! split into chunks on 5-minute boundaries; sums, counts, maxima, minima and first/last times
//! combine exactly across chunks. The 5-minute maxima (one point per workload and 5 minutes, 20
//! times fewer than 15-second samples) are fetched in range chunks under the same bound.
//!
//! **What differs from the pull path.** The engine's windows are `(t - 5m, t]` for `t` on
//! multiples of 5 minutes, ours `[t, t + 5m)`: a sample on a boundary lands in the neighbouring
//! window, so percentiles can differ slightly (the tests hold both paths within 1%). Pauses in the
//! data (gaps) are not counted. VictoriaMetrics drops NaN values before a subquery sees them (the
//! step before fills in), so only infinite and negative values count as dropped there. The SLA
//! screen needs per-window request rates and latencies: when both queries are given they are
//! fetched at a 5-minute step (one point per window). The hourly plot series of the HTML report
//! are fetched at a 1-hour step, and only for `--format html`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::error::Result;
use crate::model::{self, Config, Recommendation, Usage};
use crate::prometheus::{
    group, label_set, ApiSeries, Client, Fetched, PromOptions, PromValue, Queries,
};
use crate::report::Report;
use crate::series::{Series, Window, WINDOW_MS};

/// The default bound on subquery steps per chunk (see the module documentation).
pub const DEFAULT_MAX_SUBQUERY_STEPS: i64 = 20_160;

/// What the engine computed for one workload.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadStats {
    /// Workload name (the workload labels' values joined by `/`).
    pub workload: String,
    /// Instance type.
    pub instance_type: String,
    /// Where the numbers come from (the engine's URL).
    pub source: String,
    /// Usable CPU samples (finite, non-negative).
    pub samples: u64,
    /// CPU samples the engine had, usable or not.
    pub samples_all: u64,
    /// 5-minute windows with data.
    pub windows: u64,
    /// First sample, Unix ms.
    pub first_ms: i64,
    /// Last sample, Unix ms.
    pub last_ms: i64,
    /// Sum of the CPU samples, cores (mean = sum / samples).
    pub cpu_sum: f64,
    /// The configured percentile of the 5-minute CPU maxima, cores.
    pub percentile_cpu_cores: f64,
    /// Highest CPU sample, cores.
    pub max_cpu_cores: f64,
    /// Highest memory sample, bytes (`None`: the memory query has nothing for this workload).
    pub peak_memory_bytes: Option<f64>,
    /// Sum and count of instance-count samples.
    pub instances_sum: f64,
    /// Samples of the instance count.
    pub instances_n: u64,
    /// 5-minute windows with mean CPU, mean request rate and max latency, for the SLA screen.
    pub service_windows: Vec<Window>,
    /// Hourly CPU maxima, (Unix ms of the hour, cores), for plots.
    pub trace_cpu: Vec<(i64, f64)>,
    /// Hourly memory maxima, (Unix ms of the hour, bytes), for plots.
    pub trace_memory: Vec<(i64, f64)>,
    /// Set when the workload cannot be analysed; says why.
    pub skipped: Option<String>,
}

/// The chunks `(start, end]` of a range: at most `max_steps` steps each, inner boundaries on
/// multiples of 5 minutes so that windows are never cut.
pub fn chunks(start_s: i64, end_s: i64, step_s: i64, max_steps: i64) -> Vec<(i64, i64)> {
    let w = WINDOW_MS / 1000;
    let span = (max_steps.max(1).saturating_mul(step_s) / w * w).max(w);
    let mut out = Vec::new();
    let mut s = start_s;
    while s < end_s {
        let mut e = (s + span).div_euclid(w) * w;
        if e <= s {
            e = s + span;
        }
        let e = e.min(end_s);
        out.push((s, e));
        s = e;
    }
    out
}

/// Chunks `[s, e]` (both ends evaluated) of a range query at `step_s` from `first` to `last`:
/// at most 10,000 steps (Prometheus's 11,000 points per series) and, with the step each point's
/// subquery reaches back, at most `max_span_s` seconds of inner points.
pub fn range_chunks(first: i64, last: i64, step_s: i64, max_span_s: i64) -> Vec<(i64, i64)> {
    let steps = ((max_span_s - step_s) / step_s).clamp(1, 10_000);
    let mut out = Vec::new();
    let mut s = first;
    while s <= last {
        let e = (s + (steps - 1) * step_s).min(last);
        out.push((s, e));
        s = e + step_s;
    }
    out
}

fn value(v: Option<(f64, PromValue)>) -> Option<f64> {
    match v {
        Some((_, PromValue::Num(x))) if x.is_finite() => Some(x),
        _ => None,
    }
}

/// The query language used for the per-chunk statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    /// MetricsQL (VictoriaMetrics): `aggr_over_time` computes several rollups from one
    /// evaluation of the inner expression.
    MetricsQl,
    /// Plain PromQL (Prometheus, Thanos, Mimir): one evaluation per statistic.
    PromQl,
}

/// The rollups of the CPU query computed from one evaluation in MetricsQL.
const CPU_ROLLUPS: [&str; 6] = [
    "count_over_time",
    "sum_over_time",
    "min_over_time",
    "max_over_time",
    "tfirst_over_time",
    "tlast_over_time",
];

/// `aggr_over_time((f, ...), x)`: MetricsQL's several rollups of one subquery.
fn aggr_over_time(rollups: &[&str], subquery: &str) -> String {
    let names: Vec<String> = rollups.iter().map(|r| format!("{r:?}")).collect();
    format!("aggr_over_time(({}), {subquery})", names.join(","))
}

/// Whether the engine refused the `aggr_over_time` query as an unknown function (Prometheus:
/// `parse error: unknown function with name "aggr_over_time"`, Thanos and Mimir share its parser).
/// Broad on purpose: another parse error comes back from the PromQL queries as well.
fn is_unknown_aggr_over_time(e: &crate::error::Error) -> bool {
    matches!(e, crate::error::Error::Prometheus { message, .. }
        if message.contains("aggr_over_time")
            && (message.contains("unknown function") || message.contains("parse error")))
}

/// Splits an `aggr_over_time` answer by its `rollup` label (removed from the series).
fn by_rollup(answer: Vec<ApiSeries>) -> BTreeMap<String, Vec<ApiSeries>> {
    let mut out: BTreeMap<String, Vec<ApiSeries>> = BTreeMap::new();
    for mut s in answer {
        let rollup = s.metric.remove("rollup").unwrap_or_default();
        out.entry(rollup).or_default().push(s);
    }
    out
}

/// The workloads found so far, and the series that could not be attributed to one.
struct Found<'o> {
    opts: &'o PromOptions,
    labels: &'o [String],
    stats: BTreeMap<String, WorkloadStats>,
    /// Series without the workload labels, by their label set.
    unnamed: BTreeSet<String>,
    /// Workloads another query has but the CPU query has not: name -> that query.
    only_in: BTreeMap<String, String>,
}

impl Found<'_> {
    /// One instant answer's value per known workload. `create` (CPU answers) adds the workloads
    /// not seen yet; a workload only another query has is remembered in `only_in`.
    fn values(
        &mut self,
        client: &Client<'_>,
        what: &str,
        query: &str,
        answer: &[ApiSeries],
        create: bool,
    ) -> Result<BTreeMap<String, Option<f64>>> {
        let (named, without) = group(client, what, query, self.labels, answer)?;
        for s in without {
            self.unnamed.insert(label_set(&s.metric));
        }
        let mut out = BTreeMap::new();
        for (name, series) in named {
            if create && !self.stats.contains_key(&name) {
                let itype = series
                    .metric
                    .get(&self.opts.instance_type_label)
                    .cloned()
                    .or_else(|| self.opts.instance_type.clone());
                let Some(itype) = itype else {
                    return Err(client.err(format!(
                        "series {name} has no `{}` label; pass --instance-type TYPE",
                        self.opts.instance_type_label
                    )));
                };
                self.stats.insert(
                    name.clone(),
                    WorkloadStats {
                        workload: name.clone(),
                        instance_type: itype,
                        source: self.opts.url.clone(),
                        first_ms: i64::MAX,
                        last_ms: i64::MIN,
                        ..WorkloadStats::default()
                    },
                );
            }
            if self.stats.contains_key(&name) {
                out.insert(name, value(series.value));
            } else {
                self.only_in.entry(name).or_insert_with(|| what.to_owned());
            }
        }
        Ok(out)
    }

    /// Runs one instant query at `time` and applies `f(value, stats)` to each known workload.
    fn run(
        &mut self,
        client: &Client<'_>,
        what: &str,
        query: &str,
        time: i64,
        create: bool,
        f: &mut dyn FnMut(Option<f64>, &mut WorkloadStats),
    ) -> Result<()> {
        let answer = client.query(query, time)?;
        let values = self.values(client, what, query, &answer, create)?;
        self.apply(values, f);
        Ok(())
    }

    fn apply(
        &mut self,
        values: BTreeMap<String, Option<f64>>,
        f: &mut dyn FnMut(Option<f64>, &mut WorkloadStats),
    ) {
        for (name, v) in values {
            if let Some(w) = self.stats.get_mut(&name) {
                f(v, w);
            }
        }
    }
}

fn seconds_to_ms(t: f64) -> i64 {
    (t * 1000.0).round() as i64
}

/// Asks the engine for every workload's statistics over the range.
///
/// `percentile` is the configured percentile of the 5-minute maxima ([`Config::cpu_percentile`]);
/// `want_trace` fetches the hourly plot series too. Workloads that cannot be analysed come back
/// with [`WorkloadStats::skipped`] set.
pub fn fetch(
    opts: &PromOptions,
    queries: &Queries,
    percentile: f64,
    want_trace: bool,
) -> Result<(Vec<WorkloadStats>, Fetched)> {
    let client = Client::new(opts)?;
    let labels = &queries.workload_labels;
    let step = format!("{}s", opts.step_s);
    let usable = |q: &str| format!("(({q}) >= 0 < Inf)");
    let cpu = usable(&queries.cpu);
    let mem = usable(&queries.memory);
    let parts = chunks(
        opts.start_s,
        opts.end_s,
        opts.step_s,
        opts.max_subquery_steps,
    );
    let mut found = Found {
        opts,
        labels,
        stats: BTreeMap::new(),
        unnamed: BTreeSet::new(),
        only_in: BTreeMap::new(),
    };
    let mut fetched = Fetched::default();
    // MetricsQL until the engine says it does not know `aggr_over_time` (on the first query).
    let mut dialect = Dialect::MetricsQl;

    for &(s, e) in &parts {
        let r = format!("{}s", e - s);
        if dialect == Dialect::MetricsQl {
            // One evaluation of the CPU query gives its count, sum, extremes and first/last
            // sample. A workload whose values are all usable (min >= 0, max and sum finite) needs
            // nothing else; for the others the usable values' rollups are asked once more.
            let query = aggr_over_time(&CPU_ROLLUPS, &format!("({})[{r}:{step}]", queries.cpu));
            match client.query(&query, e) {
                Ok(answer) => {
                    let mut by = by_rollup(answer);
                    let mut take = |found: &mut Found<'_>, rollup: &str, create: bool| {
                        let answer = by.remove(rollup).unwrap_or_default();
                        found.values(&client, "CPU", &query, &answer, create)
                    };
                    let count = take(&mut found, "count_over_time", true)?;
                    let sum = take(&mut found, "sum_over_time", false)?;
                    let min = take(&mut found, "min_over_time", false)?;
                    let max = take(&mut found, "max_over_time", false)?;
                    let first = take(&mut found, "tfirst_over_time", false)?;
                    let last = take(&mut found, "tlast_over_time", false)?;
                    let get = |m: &BTreeMap<String, Option<f64>>, name: &str| {
                        m.get(name).copied().flatten()
                    };
                    let mut dirty = BTreeSet::new();
                    for (name, n) in &count {
                        let Some(w) = found.stats.get_mut(name) else {
                            continue;
                        };
                        let n = n.unwrap_or(0.0) as u64;
                        w.samples_all += n;
                        let (lo, hi, total) = (get(&min, name), get(&max, name), get(&sum, name));
                        let clean = n > 0
                            && lo.is_some_and(|x| x >= 0.0)
                            && hi.is_some()
                            && total.is_some();
                        if !clean {
                            dirty.insert(name.clone());
                            continue;
                        }
                        w.samples += n;
                        w.cpu_sum += total.unwrap_or(0.0);
                        w.max_cpu_cores = w.max_cpu_cores.max(hi.unwrap_or(0.0));
                        if let Some(t) = get(&first, name) {
                            w.first_ms = w.first_ms.min(seconds_to_ms(t));
                        }
                        if let Some(t) = get(&last, name) {
                            w.last_ms = w.last_ms.max(seconds_to_ms(t));
                        }
                    }
                    if !dirty.is_empty() {
                        let rollups = [
                            "count_over_time",
                            "sum_over_time",
                            "max_over_time",
                            "tfirst_over_time",
                            "tlast_over_time",
                        ];
                        let query = aggr_over_time(&rollups, &format!("{cpu}[{r}:{step}]"));
                        let mut by = by_rollup(client.query(&query, e)?);
                        let mut take = |found: &mut Found<'_>, rollup: &str| {
                            let answer = by.remove(rollup).unwrap_or_default();
                            found
                                .values(&client, "CPU", &query, &answer, false)
                                .map(|v| v.into_iter().filter(|(n, _)| dirty.contains(n)).collect())
                        };
                        let count = take(&mut found, "count_over_time")?;
                        found.apply(count, &mut |v, w| w.samples += v.unwrap_or(0.0) as u64);
                        let sum = take(&mut found, "sum_over_time")?;
                        found.apply(sum, &mut |v, w| w.cpu_sum += v.unwrap_or(0.0));
                        let max = take(&mut found, "max_over_time")?;
                        found.apply(max, &mut |v, w| {
                            w.max_cpu_cores = w.max_cpu_cores.max(v.unwrap_or(0.0));
                        });
                        let first = take(&mut found, "tfirst_over_time")?;
                        found.apply(first, &mut |v, w| {
                            if let Some(t) = v {
                                w.first_ms = w.first_ms.min(seconds_to_ms(t));
                            }
                        });
                        let last = take(&mut found, "tlast_over_time")?;
                        found.apply(last, &mut |v, w| {
                            if let Some(t) = v {
                                w.last_ms = w.last_ms.max(seconds_to_ms(t));
                            }
                        });
                    }
                }
                Err(err) if is_unknown_aggr_over_time(&err) => dialect = Dialect::PromQl,
                Err(err) => return Err(err),
            }
        }
        if dialect == Dialect::PromQl {
            let c = &client;
            found.run(
                c,
                "CPU",
                &format!("count_over_time(({})[{r}:{step}])", queries.cpu),
                e,
                true,
                &mut |v, w| w.samples_all += v.unwrap_or(0.0) as u64,
            )?;
            found.run(
                c,
                "CPU",
                &format!("count_over_time({cpu}[{r}:{step}])"),
                e,
                false,
                &mut |v, w| w.samples += v.unwrap_or(0.0) as u64,
            )?;
            found.run(
                c,
                "CPU",
                &format!("sum_over_time({cpu}[{r}:{step}])"),
                e,
                false,
                &mut |v, w| w.cpu_sum += v.unwrap_or(0.0),
            )?;
            found.run(
                c,
                "CPU",
                &format!("max_over_time({cpu}[{r}:{step}])"),
                e,
                false,
                &mut |v, w| w.max_cpu_cores = w.max_cpu_cores.max(v.unwrap_or(0.0)),
            )?;
            found.run(
                c,
                "CPU",
                &format!("min_over_time(timestamp({cpu})[{r}:{step}])"),
                e,
                false,
                &mut |v, w| {
                    if let Some(t) = v {
                        w.first_ms = w.first_ms.min(seconds_to_ms(t));
                    }
                },
            )?;
            found.run(
                c,
                "CPU",
                &format!("max_over_time(timestamp({cpu})[{r}:{step}])"),
                e,
                false,
                &mut |v, w| {
                    if let Some(t) = v {
                        w.last_ms = w.last_ms.max(seconds_to_ms(t));
                    }
                },
            )?;
        }
        // The highest value, unfiltered: `max_over_time` skips NaN, and a negative maximum means
        // no usable value; only +Inf needs the filtered query.
        let query = format!("max_over_time(({})[{r}:{step}])", queries.memory);
        let mut answer = client.query(&query, e)?;
        let infinite = |a: &[ApiSeries]| {
            a.iter()
                .any(|s| matches!(s.value, Some((_, PromValue::Num(x))) if x == f64::INFINITY))
        };
        let query = if infinite(&answer) {
            let query = format!("max_over_time({mem}[{r}:{step}])");
            answer = client.query(&query, e)?;
            query
        } else {
            query
        };
        let peak = found.values(&client, "memory", &query, &answer, false)?;
        found.apply(peak, &mut |v, w| {
            if let Some(m) = v.filter(|m| *m >= 0.0) {
                w.peak_memory_bytes = Some(w.peak_memory_bytes.unwrap_or(0.0).max(m));
            }
        });
        if let Some(inst) = &queries.instances {
            let inst = format!("{}[{r}:{step}]", usable(inst));
            let mut add_sum =
                |v: Option<f64>, w: &mut WorkloadStats| w.instances_sum += v.unwrap_or(0.0);
            let mut add_n =
                |v: Option<f64>, w: &mut WorkloadStats| w.instances_n += v.unwrap_or(0.0) as u64;
            if dialect == Dialect::MetricsQl {
                let query = aggr_over_time(&["sum_over_time", "count_over_time"], &inst);
                let mut by = by_rollup(client.query(&query, e)?);
                for (rollup, f) in [
                    ("sum_over_time", &mut add_sum as &mut dyn FnMut(_, &mut _)),
                    ("count_over_time", &mut add_n),
                ] {
                    let answer = by.remove(rollup).unwrap_or_default();
                    let values = found.values(&client, "instances", &query, &answer, false)?;
                    found.apply(values, f);
                }
            } else {
                found.run(
                    &client,
                    "instances",
                    &format!("sum_over_time({inst})"),
                    e,
                    false,
                    &mut add_sum,
                )?;
                found.run(
                    &client,
                    "instances",
                    &format!("count_over_time({inst})"),
                    e,
                    false,
                    &mut add_n,
                )?;
            }
        }
    }
    let Found {
        mut stats,
        unnamed,
        only_in,
        ..
    } = found;

    // Series at a coarse step: 5-minute maxima (percentile over several chunks), the SLA
    // screen's windows, the hourly plot series.
    let range =
        |query: String, step_s: i64, what: &str| -> Result<BTreeMap<String, Vec<(i64, f64)>>> {
            let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
            // Evaluate at multiples of the step: each point summarises (t - step, t].
            let first = (opts.start_s + step_s).div_euclid(step_s) * step_s;
            let last = opts.end_s.div_euclid(step_s) * step_s;
            if last < first {
                return Ok(out);
            }
            // Each point's subquery reaches one step back: keep the inner points of one request
            // under the subquery bound too (VictoriaMetrics refuses more than
            // -search.maxPointsPerTimeseries, 30,000 by default, per series and request).
            for (s, e) in range_chunks(
                first,
                last,
                step_s,
                opts.max_subquery_steps.saturating_mul(opts.step_s),
            ) {
                let answer = client.query_range(&query, s, e, step_s)?;
                let (named, _) = group(&client, what, &query, labels, &answer)?;
                for (name, series) in named {
                    let v = out.entry(name).or_default();
                    for (t, x) in &series.values {
                        if let PromValue::Num(x) = x {
                            if x.is_finite() {
                                v.push(((*t * 1000.0).round() as i64, *x));
                            }
                        }
                    }
                }
            }
            Ok(out)
        };
    // The 5-minute maxima: the windows with data and their percentile (a percentile does not
    // combine across chunks, and one range query costs the engine about one evaluation).
    // When every value was usable the filter is a no-op, and it costs the engine a sixth of the
    // query: leave it out if the windows lie inside the counted range (a start on a 5-minute
    // boundary; the last window ends at or before the end).
    let all_usable = stats.values().all(|w| w.samples == w.samples_all);
    let inner = if all_usable && opts.start_s.rem_euclid(300) == 0 {
        format!("({})", queries.cpu)
    } else {
        cpu.clone()
    };
    let maxima = range(format!("max_over_time({inner}[5m:{step}])"), 300, "CPU")?;
    for (name, points) in maxima {
        if let Some(w) = stats.get_mut(&name) {
            let mut values: Vec<f64> = points.iter().map(|p| p.1).collect();
            w.windows = values.len() as u64;
            w.percentile_cpu_cores = model::percentile(&mut values, percentile);
        }
    }
    if let (Some(rps), Some(lat)) = (&queries.rps, &queries.latency) {
        let cpu_mean = range(format!("avg_over_time({cpu}[5m:{step}])"), 300, "CPU")?;
        let rps = range(
            format!("avg_over_time({}[5m:{step}])", usable(rps)),
            300,
            "request-rate",
        )?;
        let lat = range(
            format!("max_over_time({}[5m:{step}])", usable(lat)),
            300,
            "latency",
        )?;
        for (name, w) in &mut stats {
            let (Some(c), Some(r), Some(l)) = (cpu_mean.get(name), rps.get(name), lat.get(name))
            else {
                continue;
            };
            let r: BTreeMap<i64, f64> = r.iter().copied().collect();
            let l: BTreeMap<i64, f64> = l.iter().copied().collect();
            for &(t, cpu) in c {
                let (Some(rate), Some(latency)) = (r.get(&t), l.get(&t)) else {
                    continue;
                };
                w.service_windows.push(Window {
                    start_ms: t - WINDOW_MS,
                    samples: 1,
                    cpu_max: cpu,
                    cpu_sum: cpu,
                    memory_max: 0.0,
                    instances_sum: 0.0,
                    instances_n: 0,
                    rps_sum: *rate,
                    rps_n: 1,
                    latency_max: *latency,
                    latency_n: 1,
                });
            }
        }
    }
    if want_trace {
        let c = range(format!("max_over_time({cpu}[1h:{step}])"), 3600, "CPU")?;
        let m = range(format!("max_over_time({mem}[1h:{step}])"), 3600, "memory")?;
        for (name, w) in &mut stats {
            let hour = |v: &Vec<(i64, f64)>| v.iter().map(|&(t, x)| (t - 3_600_000, x)).collect();
            if let Some(v) = c.get(name) {
                w.trace_cpu = hour(v);
            }
            if let Some(v) = m.get(name) {
                w.trace_memory = hour(v);
            }
        }
    }

    let mut out: Vec<WorkloadStats> = Vec::with_capacity(stats.len() + unnamed.len());
    for (name, mut w) in stats {
        if w.samples == 0 {
            w.skipped = Some(format!(
                "the CPU query returned no usable value ({} values, all NaN, infinite or negative)",
                w.samples_all
            ));
        } else if w.peak_memory_bytes.is_none() {
            w.skipped = Some(
                "the memory query returned no usable value for this workload; check its labels \
                 match the CPU query's"
                    .to_owned(),
            );
        } else if let Some(why) = contradiction(&w, Asked::of(opts)) {
            w.skipped = Some(why);
        } else if w.samples < w.samples_all {
            fetched
                .workload_notes
                .entry(name)
                .or_default()
                .push(format!(
                "dropped {} of {} CPU values (NaN, infinite or negative), counted by the engine",
                w.samples_all - w.samples,
                w.samples_all
            ));
        }
        fetched.samples += w.samples;
        out.push(w);
    }
    if out.is_empty() && unnamed.is_empty() {
        return Err(client.err(format!(
            "the CPU query returned no series between {} and {}: {}; check the metric names and \
             the range, or pass --query-cpu",
            opts.start_s, opts.end_s, queries.cpu
        )));
    }
    for (name, what) in only_in {
        if out.iter().any(|w| w.workload == name) {
            continue; // the CPU query has it in another chunk
        }
        out.push(WorkloadStats {
            workload: name,
            instance_type: opts.instance_type.clone().unwrap_or_else(|| "?".to_owned()),
            source: opts.url.clone(),
            skipped: Some(format!(
                "the {what} query has this workload but the CPU query does not"
            )),
            ..WorkloadStats::default()
        });
    }
    for labels_text in unnamed {
        out.push(WorkloadStats {
            workload: labels_text,
            instance_type: opts.instance_type.clone().unwrap_or_else(|| "?".to_owned()),
            source: opts.url.clone(),
            skipped: Some(format!(
                "series without the workload label{} {}: aggregate by {} in the query",
                if labels.len() == 1 { "" } else { "s" },
                labels.join(", "),
                labels.join(", ")
            )),
            ..WorkloadStats::default()
        });
    }
    client.finish(&mut fetched);
    Ok((out, fetched))
}

/// The range a workload's statistics were asked for ([`PromOptions`]' `start_s`, `end_s`,
/// `step_s` and `max_subquery_steps`): what bounds the counts the engine returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asked {
    /// Start of the range, Unix seconds (exclusive).
    pub start_s: i64,
    /// End of the range, Unix seconds (inclusive).
    pub end_s: i64,
    /// Subquery step, seconds.
    pub step_s: i64,
    /// Subquery steps per chunk ([`chunks`]).
    pub max_subquery_steps: i64,
}

impl Asked {
    /// What `opts` asks for.
    pub fn of(opts: &PromOptions) -> Asked {
        Asked {
            start_s: opts.start_s,
            end_s: opts.end_s,
            step_s: opts.step_s,
            max_subquery_steps: opts.max_subquery_steps,
        }
    }
}

/// Why one workload's engine statistics contradict each other or the range asked for (a broken
/// or partial answer: a chunk that timed out half-way, a proxy mixing answers, an engine bug),
/// or `None` when they are consistent. Such a workload is skipped with this reason instead of
/// analysed: a wrong statistic must not become a recommendation.
///
/// Checked: every statistic is a finite, non-negative number; usable samples ≤ samples ≤ the
/// subquery steps in the range; mean CPU ≤ highest CPU; the percentile of the 5-minute maxima ≤
/// highest CPU (both over the usable samples); first sample ≤ last sample; 5-minute windows with
/// data ≤ the 5-minute steps in the range and ≤ the usable samples (plus one per chunk: a
/// chunk's first window reaches back before it); instances ≥ 0. Comparisons of floating-point
/// results allow a relative 1e-9 for rounding inside the engine.
pub fn contradiction(stats: &WorkloadStats, asked: Asked) -> Option<String> {
    let above = |a: f64, b: f64| a > b + 1e-9 * b.abs().max(1e-3);
    let mean = stats.cpu_sum / stats.samples.max(1) as f64;
    let numbers = [
        ("CPU sum", stats.cpu_sum),
        ("highest CPU", stats.max_cpu_cores),
        ("CPU percentile", stats.percentile_cpu_cores),
        ("peak memory", stats.peak_memory_bytes.unwrap_or(0.0)),
        ("instance-count sum", stats.instances_sum),
    ];
    if let Some((what, v)) = numbers.iter().find(|(_, v)| !v.is_finite() || *v < 0.0) {
        return Some(format!(
            "the engine's {what} is {v}, not a finite non-negative number: a broken answer"
        ));
    }
    if stats.samples > stats.samples_all {
        return Some(format!(
            "the engine counted more usable CPU samples ({}) than samples ({}): a broken or \
             partial answer",
            stats.samples, stats.samples_all
        ));
    }
    let parts = chunks(
        asked.start_s,
        asked.end_s,
        asked.step_s.max(1),
        asked.max_subquery_steps,
    )
    .len() as u64;
    let range_s = (asked.end_s - asked.start_s).max(0) as u64;
    let steps = range_s / asked.step_s.max(1) as u64 + parts;
    if stats.samples_all > steps {
        return Some(format!(
            "the engine counted {} CPU samples, more than the {steps} steps of {} s in the range \
             asked: a broken answer",
            stats.samples_all, asked.step_s
        ));
    }
    if above(mean, stats.max_cpu_cores) {
        return Some(format!(
            "the engine's mean CPU ({mean:.4} cores) is above its highest CPU sample ({:.4}): \
             a broken or partial answer",
            stats.max_cpu_cores
        ));
    }
    if above(stats.percentile_cpu_cores, stats.max_cpu_cores) {
        return Some(format!(
            "the engine's percentile of the 5-minute CPU maxima ({:.4} cores) is above its \
             highest CPU sample ({:.4}): a broken or partial answer",
            stats.percentile_cpu_cores, stats.max_cpu_cores
        ));
    }
    if stats.first_ms > stats.last_ms {
        return Some(format!(
            "the engine's first CPU sample (Unix ms {}) is after its last ({}): a broken answer",
            stats.first_ms, stats.last_ms
        ));
    }
    let window_s = (WINDOW_MS / 1000) as u64;
    let windows_max = range_s.div_ceil(window_s) + parts;
    if stats.windows > windows_max {
        return Some(format!(
            "the engine counted {} 5-minute windows with data, more than the {windows_max} the \
             range asked allows: a broken answer",
            stats.windows
        ));
    }
    if stats.windows > stats.samples + parts {
        return Some(format!(
            "the engine counted {} 5-minute windows with data but only {} usable CPU samples: a \
             broken or partial answer",
            stats.windows, stats.samples
        ));
    }
    None
}

/// Analyses one workload's engine-computed statistics.
pub fn recommend(stats: &WorkloadStats, catalog: &Catalog, config: &Config) -> Recommendation {
    let mut rec = model::blank(&stats.workload, &stats.source, &stats.instance_type);
    if let Some(why) = &stats.skipped {
        rec.reason = Some(why.clone());
        return rec;
    }
    let Some(current) = catalog.get(&stats.instance_type) else {
        rec.reason = Some(model::unknown_type(&stats.instance_type));
        return rec;
    };
    // The pull path's check on the same peaks: the two paths skip the same workloads.
    if let Some(why) = model::impossible_peaks(
        stats.max_cpu_cores,
        stats.peak_memory_bytes.unwrap_or(0.0),
        current,
    ) {
        rec.reason = Some(why);
        return rec;
    }
    let service = (!stats.service_windows.is_empty())
        .then(|| {
            let series = Series {
                workload: stats.workload.clone(),
                instance_type: stats.instance_type.clone(),
                source: stats.source.clone(),
                windows: stats.service_windows.clone(),
                samples: stats.service_windows.len() as u64,
                first_ms: stats.first_ms,
                last_ms: stats.last_ms,
                gaps: 0,
                longest_gap_ms: 0,
                skipped: None,
                warnings: Vec::new(),
                unordered: false,
            };
            model::service_model(&series, current, config)
        })
        .flatten();
    let usage = Usage {
        samples: stats.samples,
        windows: stats.windows as usize,
        span_hours: (stats.last_ms - stats.first_ms).max(0) as f64 / 3_600_000.0,
        gaps: 0,
        mean_cpu_cores: stats.cpu_sum / stats.samples.max(1) as f64,
        percentile_cpu_cores: stats.percentile_cpu_cores,
        max_cpu_cores: stats.max_cpu_cores,
        peak_memory_bytes: stats.peak_memory_bytes.unwrap_or(0.0),
        instances: if stats.instances_n > 0 {
            stats.instances_sum / stats.instances_n as f64
        } else {
            1.0
        },
        service,
    };
    let vcpus = f64::from(current.vcpus);
    let bytes = current.memory_bytes();
    rec.trace = stats
        .trace_cpu
        .iter()
        .map(|&(t, c)| (t, (c / vcpus) as f32))
        .collect();
    rec.memory_trace = stats
        .trace_memory
        .iter()
        .map(|&(t, m)| (t, (m / bytes) as f32))
        .collect();
    model::recommend_usage(rec, usage, current, catalog, config)
}

/// Analyses every workload's statistics: the pushdown counterpart of [`crate::analyze`].
pub fn analyze(stats: &[WorkloadStats], catalog: &Catalog, config: &Config) -> Report {
    let recs = stats
        .iter()
        .map(|s| recommend(s, catalog, config))
        .collect();
    Report::from_recommendations(recs, catalog, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One day at 15 s, one chunk.
    const DAY: Asked = Asked {
        start_s: 1_700_000_100,
        end_s: 1_700_000_100 + 86_400,
        step_s: 15,
        max_subquery_steps: DEFAULT_MAX_SUBQUERY_STEPS,
    };

    /// Statistics a sound engine could return for one day of a 0.6-core workload.
    fn sound() -> WorkloadStats {
        WorkloadStats {
            workload: "api".to_owned(),
            instance_type: "m7i.large".to_owned(),
            samples: 5_700,
            samples_all: 5_760,
            windows: 288,
            first_ms: 1_700_000_115_000,
            last_ms: 1_700_086_500_000,
            cpu_sum: 5_700.0 * 0.6,
            percentile_cpu_cores: 1.1,
            max_cpu_cores: 1.3,
            peak_memory_bytes: Some(3e9),
            ..WorkloadStats::default()
        }
    }

    /// A 2.27-core peak on a 2-vCPU type is skipped by pushdown as by pull (the 1,000-workload
    /// benchmark's savings differed by exactly such workloads: pull skipped them, pushdown not).
    #[test]
    fn impossible_usage_is_skipped_as_on_the_pull_path() {
        let catalog = Catalog::embedded();
        let mut s = sound();
        s.instance_type = "r7i.large".to_owned();
        s.max_cpu_cores = 2.27;
        s.percentile_cpu_cores = 2.1;
        let rec = recommend(&s, &catalog, &Config::default());
        assert_eq!(rec.finding, model::Finding::Skipped);
        let reason = rec.reason.unwrap_or_default();
        assert!(
            reason.starts_with("impossible usage: cpu_cores reaches 2.27"),
            "{reason}"
        );
        s.max_cpu_cores = 1.3;
        s.percentile_cpu_cores = 1.1;
        let rec = recommend(&s, &catalog, &Config::default());
        assert_ne!(rec.finding, model::Finding::Skipped, "{:?}", rec.reason);
    }

    #[test]
    fn contradictory_engine_statistics_are_refused_with_the_reason() {
        assert_eq!(contradiction(&sound(), DAY), None);
        /// What the reason must say, and how to break the sound statistics.
        type Case = (&'static str, fn(&mut WorkloadStats));
        let cases: [Case; 9] = [
            ("mean CPU", |s| s.cpu_sum = s.samples as f64 * 1.5),
            ("more usable CPU samples", |s| s.samples = s.samples_all + 1),
            ("percentile of the 5-minute", |s| {
                s.percentile_cpu_cores = 1.4
            }),
            ("first CPU sample", |s| s.first_ms = s.last_ms + 1),
            ("more than the 289", |s| s.windows = 400),
            ("more than the 5761 steps", |s| {
                s.samples_all = 6_000;
                s.samples = 6_000;
            }),
            ("only 100 usable", |s| {
                s.samples = 100;
                s.cpu_sum = 60.0;
            }),
            ("not a finite", |s| s.max_cpu_cores = f64::NAN),
            ("peak memory is -1", |s| s.peak_memory_bytes = Some(-1.0)),
        ];
        for (expected, break_it) in cases {
            let mut s = sound();
            break_it(&mut s);
            let why = contradiction(&s, DAY).unwrap_or_else(|| panic!("{expected}: accepted"));
            assert!(why.contains(expected), "{expected}: {why}");
        }
        // Equal is consistent: a flat workload's mean, percentile and maximum coincide.
        let mut flat = sound();
        flat.cpu_sum = flat.samples as f64 * 1.3;
        flat.percentile_cpu_cores = 1.3;
        assert_eq!(contradiction(&flat, DAY), None);
    }

    #[test]
    fn chunks_cut_on_window_boundaries_and_cover_the_range() {
        let (start, end) = (1_000_007, 1_000_007 + 14 * 86_400);
        for max in [100, 5_000, 20_160, 1_000_000] {
            let c = chunks(start, end, 15, max);
            assert_eq!(c[0].0, start);
            assert_eq!(c.last().unwrap().1, end);
            for (i, &(s, e)) in c.iter().enumerate() {
                assert!(e > s);
                assert!((e - s) / 15 <= max.max(20), "{max}: {s}..{e}");
                if i + 1 < c.len() {
                    assert_eq!(e % 300, 0, "inner boundaries on 5-minute multiples");
                    assert_eq!(c[i + 1].0, e, "no hole, no overlap");
                }
            }
        }
        assert_eq!(chunks(0, 600, 60, 1_000_000), vec![(0, 600)]);
    }

    #[test]
    fn range_chunks_bound_the_inner_points() {
        // 14 days of 5-minute maxima over 15-second samples, 20,160 inner steps allowed.
        let (first, last) = (300, 300 + 14 * 86_400);
        let c = range_chunks(first, last, 300, 20_160 * 15);
        assert_eq!(c[0].0, first);
        assert_eq!(c.last().unwrap().1, last);
        for (i, &(s, e)) in c.iter().enumerate() {
            // The inner subquery spans (s - 5m, e]: at 15 s, at most 20,160 points.
            assert!((e - s + 300) / 15 <= 20_160, "{s}..{e}");
            if i > 0 {
                assert_eq!(s, c[i - 1].1 + 300, "no hole, no overlap");
            }
        }
        assert_eq!(c.len(), 5); // 4,033 points, 1,007 per chunk
                                // Prometheus's points limit binds when the inner steps are coarse.
        let c = range_chunks(0, 20_000 * 60, 60, i64::MAX / 2);
        assert!(c.iter().all(|(s, e)| (e - s) / 60 < 10_000));
    }
}
