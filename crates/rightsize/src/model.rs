//! The model: usage statistics, projection onto candidates, risk, the SLA screen, the article's rule.

use serde::{Deserialize, Serialize};

use crate::catalog::{Arch, Catalog, InstanceType, HOURS_PER_MONTH, HOURS_PER_YEAR};
use crate::error::{Error, Result};
use crate::queueing;
use crate::series::Series;

/// Which rule picks the recommendation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Ours: percentile of 5-minute maxima + headroom, memory peak + headroom, SLA screen, every
    /// cheaper catalog type.
    Default,
    /// The article's rule, exactly: mean CPU < 35% → one vCPU step down in the same family →
    /// keep it if the SLA is met ≥ 99.5%.
    Article,
}

/// Model settings; [`Config::default`] holds the documented defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Which rule picks the recommendation.
    pub policy: Policy,
    /// Percentile of the 5-minute CPU maxima sized for (default 99.5, as AWS Compute Optimizer).
    pub cpu_percentile: f64,
    /// Headroom on top of that percentile (default 0.20): the utilization ceiling is `1/(1+h)`.
    pub cpu_headroom: f64,
    /// Headroom on top of peak memory (default 0.15, as Robusta KRR).
    pub memory_headroom: f64,
    /// Minimum hours between first and last sample (default 30).
    pub min_hours: f64,
    /// Minimum number of 5-minute windows with data (default 100).
    pub min_windows: usize,
    /// Fraction of requests that must meet the latency target (default 0.995).
    pub sla_fraction: f64,
    /// Latency target in ms; default: twice the median observed p99 of each workload.
    pub latency_target_ms: Option<f64>,
    /// Consider types of another CPU architecture (x86_64 ↔ arm64): needs a rebuild of the service.
    pub allow_arch_change: bool,
    /// The article's mean-CPU threshold (0.35).
    pub article_mean_threshold: f64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            policy: Policy::Default,
            cpu_percentile: 99.5,
            cpu_headroom: 0.20,
            memory_headroom: 0.15,
            min_hours: 30.0,
            min_windows: 100,
            sla_fraction: 0.995,
            latency_target_ms: None,
            allow_arch_change: false,
            article_mean_threshold: 0.35,
        }
    }
}

impl Config {
    /// Checks the ranges of the settings.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.to_owned()));
        if !(self.cpu_percentile > 0.0 && self.cpu_percentile <= 100.0) {
            return bad("the CPU percentile must be in (0, 100]");
        }
        if !(self.cpu_headroom >= 0.0 && self.cpu_headroom <= 10.0) {
            return bad("CPU headroom must be between 0 and 10 (0.2 means 20%)");
        }
        if !(self.memory_headroom >= 0.0 && self.memory_headroom <= 10.0) {
            return bad("memory headroom must be between 0 and 10 (0.15 means 15%)");
        }
        if !(self.sla_fraction > 0.0 && self.sla_fraction < 1.0) {
            return bad("the SLA fraction must be in (0, 1), e.g. 0.995");
        }
        if !(self.min_hours >= 0.0 && self.min_hours.is_finite()) {
            return bad("minimum hours must be a number >= 0");
        }
        if let Some(t) = self.latency_target_ms {
            if !(t > 0.0 && t.is_finite()) {
                return bad("the latency target must be a positive number of ms");
            }
        }
        Ok(())
    }

    /// The utilization ceiling `1 / (1 + headroom)`.
    pub fn cpu_ceiling(&self) -> f64 {
        1.0 / (1.0 + self.cpu_headroom)
    }

    /// The memory ceiling `1 / (1 + headroom)`.
    pub fn memory_ceiling(&self) -> f64 {
        1.0 / (1.0 + self.memory_headroom)
    }
}

/// The model statement printed with every result.
pub const MODEL_STATEMENT: &str = "CPU: percentile of 5-minute maxima + headroom must fit the \
candidate's vCPUs (demand scaled by per-family performance factors); memory: peak + headroom must \
fit. Risk 0-4 per dimension on projected utilization u against the ceiling c = 1/(1+headroom): \
0 if u <= 0.70c, 1 if u <= 0.85c, 2 if u <= c, 3 if u <= 100%, 4 above; SLA risk on the predicted \
fraction f of requests within the target T (default 99.5%): 0 if f >= 1-(1-T)/5, 1 if \
f >= 1-(1-T)/2, 2 if f >= T, 3 if f >= 1-2(1-T), else 4; overall = max; a type fits when every \
risk is <= 2. SLA screen: M/M/c queue per instance (Poisson arrivals, exponential service, one \
server per vCPU, FCFS), service time = CPU-seconds per request inferred as cpu_cores / \
requests_per_second, non-CPU latency a constant fitted to the observed p99, evaluated at the \
percentile-window request rate. Savings: price difference x 730 h/month or 8,760 h/year x instances.";

/// Workload usage over the observed period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Rows read.
    pub samples: u64,
    /// 5-minute windows with data.
    pub windows: usize,
    /// Hours between first and last sample.
    pub span_hours: f64,
    /// Pauses longer than 15 minutes.
    pub gaps: u32,
    /// Mean CPU in cores.
    pub mean_cpu_cores: f64,
    /// The configured percentile of the 5-minute CPU maxima, cores.
    pub percentile_cpu_cores: f64,
    /// Highest CPU sample, cores.
    pub max_cpu_cores: f64,
    /// Highest memory sample, bytes.
    pub peak_memory_bytes: f64,
    /// Mean instance count (1 when the data has none).
    pub instances: f64,
    /// Request-level data for the SLA screen, when rate and latency are present.
    pub service: Option<ServiceModel>,
}

/// What the SLA screen knows about the requests of a workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceModel {
    /// CPU-seconds per request on the current type: median over windows of cpu / rate.
    pub cpu_seconds_per_request: f64,
    /// Request rate per instance at the configured percentile of 5-minute windows.
    pub peak_rps: f64,
    /// Median of the observed p99 latencies, ms.
    pub median_latency_p99_ms: f64,
    /// Fitted constant non-CPU latency, ms.
    pub fixed_delay_ms: f64,
    /// Latency target, ms.
    pub target_ms: f64,
    /// Where the target comes from.
    pub target_source: String,
}

/// The SLA screen's estimate on one instance type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlaEstimate {
    /// CPU utilization by requests at the peak rate (`λS/c`).
    pub utilization: f64,
    /// Predicted p99 latency, ms (`null` in JSON when the queue is unstable).
    pub predicted_p99_ms: Option<f64>,
    /// Predicted fraction of requests within the target.
    pub fraction_within_target: f64,
    /// Risk 0-4.
    pub risk: u8,
}

/// A workload projected onto one instance type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    /// Instance type.
    pub instance_type: String,
    /// Its family.
    pub family: String,
    /// Its architecture.
    pub arch: Arch,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory, GiB.
    pub memory_gib: f64,
    /// Price, USD/hour.
    pub usd_per_hour: f64,
    /// Percentile CPU demand in this type's vCPUs.
    pub cpu_cores: f64,
    /// `cpu_cores / vcpus`.
    pub cpu_utilization: f64,
    /// Peak memory / memory.
    pub memory_utilization: f64,
    /// CPU risk 0-4.
    pub cpu_risk: u8,
    /// Memory risk 0-4.
    pub memory_risk: u8,
    /// SLA screen, when the data has request rate and latency.
    pub sla: Option<SlaEstimate>,
    /// Overall risk: the maximum of the dimensions.
    pub risk: u8,
    /// Every risk <= 2.
    pub fits: bool,
    /// Why the type is not eligible even if it fits (architecture change).
    pub excluded: Option<String>,
    /// Why it does not fit, one reason per failing dimension.
    pub why_not: Vec<String>,
    /// Savings against the current type per month (all instances), USD; negative = costs more.
    pub monthly_savings_usd: f64,
    /// Per year.
    pub annual_savings_usd: f64,
}

/// The outcome class of a workload, as Compute Optimizer names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Finding {
    /// A cheaper type fits.
    OverProvisioned,
    /// The current type is the cheapest that fits.
    Optimized,
    /// The current type does not fit; a bigger one is recommended.
    UnderProvisioned,
    /// No catalog type fits.
    NoFit,
    /// Too little data: no recommendation.
    InsufficientData,
    /// The workload could not be analysed (see the reason).
    Skipped,
}

impl Finding {
    /// Human label.
    pub fn label(self) -> &'static str {
        match self {
            Finding::OverProvisioned => "over-provisioned",
            Finding::Optimized => "optimized",
            Finding::UnderProvisioned => "under-provisioned",
            Finding::NoFit => "no type fits",
            Finding::InsufficientData => "insufficient data",
            Finding::Skipped => "skipped",
        }
    }
}

/// The constraint that keeps a choice from being cheaper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Constraint {
    /// The CPU ceiling: the next cheaper type's projected CPU exceeds it.
    Cpu,
    /// Memory: the next cheaper type has too little for peak + headroom.
    Memory,
    /// The SLA screen: the next cheaper type misses the latency target.
    Sla,
    /// Nothing: the choice is the cheapest eligible type.
    Cheapest,
}

impl Constraint {
    /// Human label.
    pub fn label(self) -> &'static str {
        match self {
            Constraint::Cpu => "CPU ceiling",
            Constraint::Memory => "memory",
            Constraint::Sla => "SLA",
            Constraint::Cheapest => "cheapest",
        }
    }
}

/// What the article's rule does with a workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArticleVerdict {
    /// Mean CPU utilization of the current type.
    pub mean_cpu_utilization: f64,
    /// The type the rule ends on (the current one when it keeps).
    pub instance_type: String,
    /// What it did and why.
    pub outcome: String,
    /// The SLA fraction it checked (None: no rate/latency data, not checked).
    pub sla_fraction: Option<f64>,
    /// Our projection onto the rule's step-down target, when it tried one.
    pub target: Option<Projection>,
}

/// The result for one workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// Workload name.
    pub workload: String,
    /// Where its data came from.
    pub source: String,
    /// Current instance type.
    pub instance_type: String,
    /// Outcome class.
    pub finding: Finding,
    /// Why it was skipped or why the data is insufficient.
    pub reason: Option<String>,
    /// Usage statistics (absent when skipped).
    pub usage: Option<Usage>,
    /// The workload projected onto its current type.
    pub current: Option<Projection>,
    /// The type the policy recommends (None: keep the current type, or no recommendation).
    pub recommended: Option<Projection>,
    /// What our rule picks (the same as `recommended` under the default policy).
    pub ours: Option<String>,
    /// The article's rule.
    pub article: Option<ArticleVerdict>,
    /// Set when the article's rule and ours end on different types: why.
    pub disagreement: Option<String>,
    /// Every cheaper catalog type, projected (sorted by price).
    pub candidates: Vec<Projection>,
    /// Other remarks (gaps, excluded architectures).
    pub notes: Vec<String>,
    /// Savings of the recommendation per month, USD (0 when keeping).
    pub monthly_savings_usd: f64,
    /// Savings per year, USD.
    pub annual_savings_usd: f64,
    /// Up to three fitting types, cheapest first (the first is ours); the current type may be one.
    pub options: Vec<Projection>,
    /// The constraint that keeps our choice from being cheaper.
    pub bound_by: Option<Constraint>,
    /// Why our choice and not a cheaper type, in words.
    pub why_this: Option<String>,
    /// The `--verify` replay of this recommendation, when it ran.
    pub verification: Option<crate::outcome::Verification>,
    /// Hourly maxima of CPU utilization of the current type, for plots: (Unix ms, utilization).
    #[serde(skip)]
    pub trace: Vec<(i64, f32)>,
    /// Hourly maxima of memory utilization of the current type, for plots: (Unix ms, utilization).
    #[serde(skip)]
    pub memory_trace: Vec<(i64, f32)>,
}

/// The `p` percentile (`p` in 0..=100) of `values`, which it sorts; 0 when empty.
///
/// The workspace's one quantile rule ([`frugal_output::quantile_of_sorted`]): linear
/// interpolation between the two nearest ranks (type 7 of Hyndman & Fan, NumPy's default), so
/// the P99.5 of 200 five-minute maxima lies between the 199th and the 200th smallest, not at a
/// nearest rank.
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    frugal_output::quantile_of_sorted(values, p / 100.0)
}

/// Risk 0-4 of a projected utilization `u` against the ceiling `c`.
pub fn utilization_risk(u: f64, ceiling: f64) -> u8 {
    const EPS: f64 = 1e-12;
    if u <= 0.70 * ceiling + EPS {
        0
    } else if u <= 0.85 * ceiling + EPS {
        1
    } else if u <= ceiling + EPS {
        2
    } else if u <= 1.0 + EPS {
        3
    } else {
        4
    }
}

/// Risk 0-4 of a predicted SLA fraction `f` against the target fraction `t`.
pub fn sla_risk(f: f64, t: f64) -> u8 {
    let miss = 1.0 - t;
    if f >= 1.0 - miss / 5.0 {
        0
    } else if f >= 1.0 - miss / 2.0 {
        1
    } else if f >= t {
        2
    } else if f >= 1.0 - 2.0 * miss {
        3
    } else {
        4
    }
}

/// Computes usage statistics of a series.
pub fn usage(series: &Series, current: &InstanceType, config: &Config) -> Usage {
    let w = &series.windows;
    let samples: u64 = w.iter().map(|x| u64::from(x.samples)).sum();
    let cpu_total: f64 = w.iter().map(|x| x.cpu_sum).sum();
    let mut maxima: Vec<f64> = w.iter().map(|x| x.cpu_max).collect();
    let max_cpu = maxima.iter().copied().fold(0.0, f64::max);
    let p = percentile(&mut maxima, config.cpu_percentile);
    let peak_memory = w.iter().map(|x| x.memory_max).fold(0.0, f64::max);
    let (inst_sum, inst_n) = w
        .iter()
        .filter(|x| x.instances_n > 0)
        .fold((0.0, 0usize), |(s, n), x| {
            (s + x.instances_sum / f64::from(x.instances_n), n + 1)
        });
    Usage {
        samples,
        windows: w.len(),
        span_hours: series.span_hours(),
        gaps: series.gaps,
        mean_cpu_cores: if samples > 0 {
            cpu_total / samples as f64
        } else {
            0.0
        },
        percentile_cpu_cores: p,
        max_cpu_cores: max_cpu,
        peak_memory_bytes: peak_memory,
        instances: if inst_n > 0 {
            inst_sum / inst_n as f64
        } else {
            1.0
        },
        service: service_model(series, current, config),
    }
}

pub(crate) fn service_model(
    series: &Series,
    current: &InstanceType,
    config: &Config,
) -> Option<ServiceModel> {
    let with_rate: Vec<_> = series
        .windows
        .iter()
        .filter_map(|w| w.rps_mean().map(|r| (w, r)))
        .collect();
    let mut per_request: Vec<f64> = with_rate
        .iter()
        .filter(|(_, r)| *r > 0.0)
        .map(|(w, r)| w.cpu_mean() / r)
        .collect();
    let mut latencies: Vec<f64> = series
        .windows
        .iter()
        .filter(|w| w.latency_n > 0)
        .map(|w| w.latency_max)
        .collect();
    if per_request.is_empty() || latencies.is_empty() {
        return None;
    }
    let s = percentile(&mut per_request, 50.0);
    if s <= 0.0 {
        return None;
    }
    let mut rates: Vec<f64> = with_rate.iter().map(|(_, r)| *r).collect();
    let peak_rps = percentile(&mut rates, config.cpu_percentile);
    let median_latency = percentile(&mut latencies, 50.0);
    let mut delays: Vec<f64> = with_rate
        .iter()
        .filter(|(w, _)| w.latency_n > 0)
        .filter_map(|(w, r)| {
            let model = queueing::response_time_quantile(*r, s, current.vcpus, 0.99) * 1000.0;
            model.is_finite().then(|| (w.latency_max - model).max(0.0))
        })
        .collect();
    let fixed_delay = if delays.is_empty() {
        0.0
    } else {
        percentile(&mut delays, 50.0)
    };
    let (target_ms, target_source) = match config.latency_target_ms {
        Some(t) => (t, "--latency-target-ms".to_owned()),
        None => (
            2.0 * median_latency,
            "default: 2 x median observed p99".to_owned(),
        ),
    };
    Some(ServiceModel {
        cpu_seconds_per_request: s,
        peak_rps,
        median_latency_p99_ms: median_latency,
        fixed_delay_ms: fixed_delay,
        target_ms,
        target_source,
    })
}

/// Projects a workload with `usage` (measured on `current`) onto `candidate`.
pub fn project(
    usage: &Usage,
    catalog: &Catalog,
    current: &InstanceType,
    candidate: &InstanceType,
    config: &Config,
) -> Projection {
    let cur_family = catalog.family_of(current);
    let cand_family = catalog.family_of(candidate);
    let scale = cur_family.perf_factor / cand_family.perf_factor;
    let cpu_cores = usage.percentile_cpu_cores * scale;
    let cpu_utilization = cpu_cores / f64::from(candidate.vcpus);
    let memory_utilization = usage.peak_memory_bytes / candidate.memory_bytes();
    let cpu_risk = utilization_risk(cpu_utilization, config.cpu_ceiling());
    let memory_risk = utilization_risk(memory_utilization, config.memory_ceiling());
    let sla = usage.service.as_ref().map(|svc| {
        let s = svc.cpu_seconds_per_request * scale;
        let lambda = svc.peak_rps;
        let budget_s = (svc.target_ms - svc.fixed_delay_ms) / 1000.0;
        let fraction = 1.0 - queueing::response_time_exceeds(lambda, s, candidate.vcpus, budget_s);
        let p99 = queueing::response_time_quantile(lambda, s, candidate.vcpus, 0.99);
        SlaEstimate {
            utilization: lambda * s / f64::from(candidate.vcpus),
            predicted_p99_ms: p99.is_finite().then_some(svc.fixed_delay_ms + p99 * 1000.0),
            fraction_within_target: fraction,
            risk: sla_risk(fraction, config.sla_fraction),
        }
    });
    let mut why_not = Vec::new();
    if cpu_risk > 2 {
        why_not.push(format!(
            "P{} CPU projects to {:.0}% of {} vCPUs, above the {:.0}% ceiling",
            fmt_pct_label(config.cpu_percentile),
            cpu_utilization * 100.0,
            candidate.vcpus,
            config.cpu_ceiling() * 100.0
        ));
    }
    if memory_risk > 2 {
        why_not.push(format!(
            "peak memory + {:.0}% needs {:.1} GiB, it has {} GiB",
            config.memory_headroom * 100.0,
            usage.peak_memory_bytes * (1.0 + config.memory_headroom) / GIB,
            candidate.memory_gib
        ));
    }
    if let Some(s) = sla.as_ref().filter(|s| s.risk > 2) {
        why_not.push(format!(
            "SLA screen predicts {:.2}% of requests within {:.1} ms, below {:.1}%",
            s.fraction_within_target * 100.0,
            usage.service.as_ref().map_or(0.0, |v| v.target_ms),
            config.sla_fraction * 100.0
        ));
    }
    let risk = cpu_risk
        .max(memory_risk)
        .max(sla.as_ref().map_or(0, |s| s.risk));
    let excluded = (cand_family.arch != cur_family.arch && !config.allow_arch_change).then(|| {
        format!(
            "architecture change {} -> {} needs a rebuild; pass --allow-arch-change",
            cur_family.arch.as_str(),
            cand_family.arch.as_str()
        )
    });
    let hourly = (current.usd_per_hour - candidate.usd_per_hour) * usage.instances;
    Projection {
        instance_type: candidate.name.clone(),
        family: candidate.family.clone(),
        arch: cand_family.arch,
        vcpus: candidate.vcpus,
        memory_gib: candidate.memory_gib,
        usd_per_hour: candidate.usd_per_hour,
        cpu_cores,
        cpu_utilization,
        memory_utilization,
        cpu_risk,
        memory_risk,
        sla,
        risk,
        fits: risk <= 2,
        excluded,
        why_not,
        monthly_savings_usd: hourly * HOURS_PER_MONTH,
        annual_savings_usd: hourly * HOURS_PER_YEAR,
    }
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// `99.5` → `99.5`, `95.0` → `95`.
pub fn fmt_pct_label(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p}")
    }
}

/// Usage above the type's capacity by more than this fraction is impossible per instance.
pub const IMPOSSIBLE_TOLERANCE: f64 = 0.05;

/// Why `series` cannot be usage of one `current` instance (CPU above its vCPUs or memory above its
/// memory, by more than [`IMPOSSIBLE_TOLERANCE`]: measurement jitter), with the likely mistake.
pub fn impossible_usage(series: &Series, current: &InstanceType) -> Option<String> {
    let cpu = series.windows.iter().map(|w| w.cpu_max).fold(0.0, f64::max);
    let memory = series
        .windows
        .iter()
        .map(|w| w.memory_max)
        .fold(0.0, f64::max);
    impossible_peaks(cpu, memory, current)
}

/// [`impossible_usage`] from the peaks alone (highest CPU cores, highest memory bytes): what the
/// pushdown path has, so both paths skip the same workloads with the same words.
pub fn impossible_peaks(cpu: f64, memory: f64, current: &InstanceType) -> Option<String> {
    let vcpus = f64::from(current.vcpus);
    let mut why = Vec::new();
    if cpu > vcpus * (1.0 + IMPOSSIBLE_TOLERANCE) {
        let hint = if cpu <= 100.0 && cpu > vcpus * 2.0 {
            "percent instead of cores?"
        } else {
            "summed over instances, or in another unit?"
        };
        why.push(format!(
            "cpu_cores reaches {cpu} but {} has {} vCPUs — {hint} (cpu_cores is busy vCPUs of one \
             instance)",
            current.name, current.vcpus
        ));
    }
    let capacity = current.memory_bytes();
    if memory > capacity * (1.0 + IMPOSSIBLE_TOLERANCE) {
        why.push(format!(
            "memory_bytes reaches {:.1} GiB but {} has {} GiB — summed over instances, or in another \
             unit? (memory_bytes is bytes in use on one instance)",
            memory / GIB,
            current.name,
            current.memory_gib
        ));
    }
    (!why.is_empty()).then(|| format!("impossible usage: {}", why.join("; ")))
}

/// A recommendation with only the workload's identity filled in (finding: skipped).
pub(crate) fn blank(workload: &str, source: &str, instance_type: &str) -> Recommendation {
    Recommendation {
        workload: workload.to_owned(),
        source: source.to_owned(),
        instance_type: instance_type.to_owned(),
        finding: Finding::Skipped,
        reason: None,
        usage: None,
        current: None,
        recommended: None,
        ours: None,
        article: None,
        disagreement: None,
        candidates: Vec::new(),
        notes: Vec::new(),
        monthly_savings_usd: 0.0,
        annual_savings_usd: 0.0,
        options: Vec::new(),
        bound_by: None,
        why_this: None,
        verification: None,
        trace: Vec::new(),
        memory_trace: Vec::new(),
    }
}

/// Analyses one series.
pub fn recommend(series: &Series, catalog: &Catalog, config: &Config) -> Recommendation {
    let mut rec = blank(&series.workload, &series.source, &series.instance_type);
    if let Some(why) = &series.skipped {
        rec.reason = Some(why.clone());
        return rec;
    }
    let Some(current) = catalog.get(&series.instance_type) else {
        rec.reason = Some(unknown_type(&series.instance_type));
        return rec;
    };
    if series.windows.is_empty() {
        rec.reason = Some("no samples".to_owned());
        return rec;
    }
    if let Some(why) = impossible_usage(series, current) {
        rec.reason = Some(why);
        return rec;
    }
    rec.notes
        .extend(series.warnings.iter().map(|w| format!("warning: {w}")));
    let usage = usage(series, current, config);
    (rec.trace, rec.memory_trace) = trace(series, current);
    if usage.gaps > 0 {
        rec.notes.push(format!(
            "{} gap(s) longer than 15 min in the data (longest {:.1} h)",
            usage.gaps,
            series.longest_gap_ms as f64 / 3_600_000.0
        ));
    }
    recommend_usage(rec, usage, current, catalog, config)
}

pub(crate) fn unknown_type(name: &str) -> String {
    format!("unknown instance type {name}; add it to a catalog file and pass --catalog FILE")
}

/// The model from usage statistics on: `rec` carries the identity, trace and notes.
pub(crate) fn recommend_usage(
    mut rec: Recommendation,
    usage: Usage,
    current: &InstanceType,
    catalog: &Catalog,
    config: &Config,
) -> Recommendation {
    let cur = project(&usage, catalog, current, current, config);
    rec.article = Some(article_rule(&usage, catalog, current, config));
    rec.current = Some(cur.clone());
    if usage.span_hours < config.min_hours || usage.windows < config.min_windows {
        rec.finding = Finding::InsufficientData;
        rec.reason = Some(format!(
            "insufficient data: {:.1} h and {} windows; need at least {} h and {} 5-minute windows",
            usage.span_hours, usage.windows, config.min_hours, config.min_windows
        ));
        rec.usage = Some(usage);
        rec.disagreement = article_disagreement(&rec, config);
        apply_policy(&mut rec, catalog, current, config);
        return rec;
    }
    let all: Vec<Projection> = catalog
        .instances
        .iter()
        .map(|c| project(&usage, catalog, current, c, config))
        .collect();
    let eligible = |p: &Projection| p.excluded.is_none() || p.instance_type == current.name;
    let best = all
        .iter()
        .filter(|p| p.fits && (p.excluded.is_none() || p.instance_type == current.name))
        .min_by(|a, b| {
            a.usd_per_hour
                .total_cmp(&b.usd_per_hour)
                .then_with(|| {
                    (a.instance_type != current.name).cmp(&(b.instance_type != current.name))
                })
                .then_with(|| (a.family != current.family).cmp(&(b.family != current.family)))
                .then_with(|| a.risk.cmp(&b.risk))
                .then_with(|| a.instance_type.cmp(&b.instance_type))
        })
        .cloned();
    // Up to three ranked options, as Compute Optimizer gives: fitting eligible types, cheapest
    // first, then lower risk.
    let mut fitting: Vec<&Projection> = all.iter().filter(|p| p.fits && eligible(p)).collect();
    fitting.sort_by(|a, b| {
        a.usd_per_hour
            .total_cmp(&b.usd_per_hour)
            .then_with(|| a.risk.cmp(&b.risk))
            .then_with(|| a.instance_type.cmp(&b.instance_type))
    });
    rec.options = fitting.into_iter().take(3).cloned().collect();
    if let Some(b) = &best {
        (rec.bound_by, rec.why_this) = binding(b, &all, &eligible);
    }
    rec.candidates = all
        .into_iter()
        .filter(|p| p.usd_per_hour < current.usd_per_hour)
        .collect();
    let mut other_arch: Vec<&Projection> = rec
        .candidates
        .iter()
        .filter(|p| p.fits && p.excluded.is_some())
        .collect();
    other_arch.sort_by(|a, b| b.monthly_savings_usd.total_cmp(&a.monthly_savings_usd));
    if let Some(first) = other_arch.first() {
        let names: Vec<String> = other_arch
            .iter()
            .take(3)
            .map(|p| {
                format!(
                    "{} (saves ${:.2}/month, risk {})",
                    p.instance_type, p.monthly_savings_usd, p.risk
                )
            })
            .collect();
        let more = other_arch.len().saturating_sub(3);
        rec.notes.push(format!(
            "cheaper {} types also fit: {}{}; they need a rebuild for {}, pass --allow-arch-change to consider them",
            first.arch.as_str(),
            names.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() },
            first.arch.as_str()
        ));
    }
    rec.finding = match (&best, cur.fits) {
        (None, _) => Finding::NoFit,
        (Some(b), true) if b.instance_type == current.name => Finding::Optimized,
        (Some(_), true) => Finding::OverProvisioned,
        (Some(_), false) => Finding::UnderProvisioned,
    };
    if rec.finding == Finding::NoFit {
        rec.reason = Some(format!("no catalog type fits: {}", cur.why_not.join("; ")));
    }
    rec.ours = Some(
        best.as_ref()
            .map_or(current.name.clone(), |b| b.instance_type.clone()),
    );
    rec.usage = Some(usage);
    rec.disagreement = article_disagreement(&rec, config);
    if config.policy == Policy::Default {
        rec.recommended = best.filter(|b| b.instance_type != current.name);
    }
    apply_policy(&mut rec, catalog, current, config);
    rec
}

/// Which constraint keeps the chosen type from being cheaper, and why, in words.
fn binding(
    chosen: &Projection,
    all: &[Projection],
    eligible: &dyn Fn(&Projection) -> bool,
) -> (Option<Constraint>, Option<String>) {
    let next = all
        .iter()
        .filter(|p| eligible(p) && !p.fits && p.usd_per_hour < chosen.usd_per_hour)
        .max_by(|a, b| {
            a.usd_per_hour
                .total_cmp(&b.usd_per_hour)
                .then_with(|| b.instance_type.cmp(&a.instance_type))
        });
    let Some(next) = next else {
        return (
            Some(Constraint::Cheapest),
            Some(format!(
                "{} is the cheapest eligible type in the catalog",
                chosen.instance_type
            )),
        );
    };
    let constraint = if next.cpu_risk > 2 {
        Constraint::Cpu
    } else if next.memory_risk > 2 {
        Constraint::Memory
    } else {
        Constraint::Sla
    };
    (
        Some(constraint),
        Some(format!(
            "{} is bound by {}: the next cheaper eligible type, {}, fails ({})",
            chosen.instance_type,
            match constraint {
                Constraint::Cpu => "the CPU ceiling",
                Constraint::Memory => "memory",
                Constraint::Sla => "the SLA screen",
                Constraint::Cheapest => "price",
            },
            next.instance_type,
            next.why_not.join("; ")
        )),
    )
}

fn apply_policy(
    rec: &mut Recommendation,
    catalog: &Catalog,
    current: &InstanceType,
    config: &Config,
) {
    if config.policy == Policy::Article {
        rec.recommended = rec.article.as_ref().and_then(|a| {
            (a.instance_type != current.name).then(|| {
                let target = catalog
                    .get(&a.instance_type)
                    .expect("invariant: article target is from the catalog");
                let usage = rec
                    .usage
                    .as_ref()
                    .expect("invariant: the article rule needs usage");
                project(usage, catalog, current, target, config)
            })
        });
    }
    if let Some(r) = &rec.recommended {
        rec.monthly_savings_usd = r.monthly_savings_usd;
        rec.annual_savings_usd = r.annual_savings_usd;
    }
}

/// The article's rule: mean CPU < 35% → one vCPU step down in the same family → SLA ≥ 99.5%.
pub fn article_rule(
    usage: &Usage,
    catalog: &Catalog,
    current: &InstanceType,
    config: &Config,
) -> ArticleVerdict {
    let mean = usage.mean_cpu_cores / f64::from(current.vcpus);
    let threshold = config.article_mean_threshold * 100.0;
    let keep = |outcome: String, target: Option<Projection>, sla: Option<f64>| ArticleVerdict {
        mean_cpu_utilization: mean,
        instance_type: current.name.clone(),
        outcome,
        sla_fraction: sla,
        target,
    };
    if mean >= config.article_mean_threshold {
        return keep(
            format!("keep: mean CPU {:.0}% >= {threshold:.0}%", mean * 100.0),
            None,
            None,
        );
    }
    let step = catalog
        .instances
        .iter()
        .filter(|i| i.family == current.family && i.vcpus < current.vcpus)
        .max_by(|a, b| {
            a.vcpus
                .cmp(&b.vcpus)
                .then(b.usd_per_hour.total_cmp(&a.usd_per_hour))
        });
    let Some(step) = step else {
        return keep(
            format!("keep: no smaller size in family {}", current.family),
            None,
            None,
        );
    };
    let target = project(usage, catalog, current, step, config);
    match target.sla.as_ref().map(|s| s.fraction_within_target) {
        Some(f) if f < config.sla_fraction => keep(
            format!(
                "keep: step to {} fails the SLA check ({:.2}% < {:.1}%)",
                step.name,
                f * 100.0,
                config.sla_fraction * 100.0
            ),
            Some(target),
            Some(f),
        ),
        sla => ArticleVerdict {
            mean_cpu_utilization: mean,
            instance_type: step.name.clone(),
            outcome: match sla {
                Some(f) => format!(
                    "step down: mean CPU {:.0}% < {threshold:.0}%, SLA check {:.2}% >= {:.1}%",
                    mean * 100.0,
                    f * 100.0,
                    config.sla_fraction * 100.0
                ),
                None => format!(
                    "step down: mean CPU {:.0}% < {threshold:.0}% (SLA not checked: no rate/latency data)",
                    mean * 100.0
                ),
            },
            sla_fraction: sla,
            target: Some(target),
        },
    }
}

fn article_disagreement(rec: &Recommendation, config: &Config) -> Option<String> {
    let article = rec.article.as_ref()?;
    let usage = rec.usage.as_ref()?;
    let current = rec.current.as_ref()?;
    let pct = fmt_pct_label(config.cpu_percentile);
    let Some(ours) = &rec.ours else {
        return (article.instance_type != rec.instance_type).then(|| {
            format!(
                "the article steps down to {} on mean CPU alone; we give no advice: {}",
                article.instance_type,
                rec.reason.as_deref().unwrap_or("no data")
            )
        });
    };
    if *ours == article.instance_type {
        return None;
    }
    let stepped = article.instance_type != rec.instance_type;
    let why = match (&article.target, stepped) {
        (Some(t), true) if !t.fits => format!(
            "the article steps down to {} (mean CPU {:.0}% < {:.0}%), but there {}",
            t.instance_type,
            article.mean_cpu_utilization * 100.0,
            config.article_mean_threshold * 100.0,
            t.why_not.join("; ")
        ),
        (Some(t), true) if rec.finding == Finding::UnderProvisioned => format!(
            "the article steps down to {}, but the current type is already under-provisioned: {}",
            t.instance_type,
            current.why_not.join("; ")
        ),
        (Some(t), true) => format!(
            "the article stops at {} (one step in the same family); {} is cheaper and also fits \
             (P{pct} CPU at {:.0}%)",
            t.instance_type,
            ours,
            projected_util(rec, ours).unwrap_or(0.0) * 100.0
        ),
        _ if rec.finding == Finding::UnderProvisioned => format!(
            "the article keeps {} ({}), but it is under-provisioned: {}; we move to {}",
            rec.instance_type,
            article.outcome,
            current.why_not.join("; "),
            ours
        ),
        _ => format!(
            "the article keeps {} ({}); P{pct} of 5-minute maxima is {:.0}% of its vCPUs, and {} \
             fits at {:.0}%",
            rec.instance_type,
            article.outcome,
            usage.percentile_cpu_cores / f64::from(current.vcpus) * 100.0,
            ours,
            projected_util(rec, ours).unwrap_or(0.0) * 100.0
        ),
    };
    Some(why)
}

fn projected_util(rec: &Recommendation, name: &str) -> Option<f64> {
    rec.candidates
        .iter()
        .chain(rec.recommended.iter())
        .find(|p| p.instance_type == name)
        .map(|p| p.cpu_utilization)
}

/// (Unix ms, utilization) points of a plot.
type Trace = Vec<(i64, f32)>;

/// Hourly maxima of CPU and memory utilization (of the current type's vCPUs and memory).
fn trace(series: &Series, current: &InstanceType) -> (Trace, Trace) {
    let mut cpu: Vec<(i64, f32)> = Vec::new();
    let mut mem: Vec<(i64, f32)> = Vec::new();
    let vcpus = f64::from(current.vcpus);
    let bytes = current.memory_bytes();
    for w in &series.windows {
        let hour = w.start_ms.div_euclid(3_600_000) * 3_600_000;
        for (out, u) in [
            (&mut cpu, (w.cpu_max / vcpus) as f32),
            (&mut mem, (w.memory_max / bytes) as f32),
        ] {
            match out.last_mut() {
                Some(last) if last.0 == hour => last.1 = last.1.max(u),
                _ => out.push((hour, u)),
            }
        }
    }
    (cpu, mem)
}
