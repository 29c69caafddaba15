//! The report over all workloads, and [`analyze`], the pure entry point.

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::model::{self, Config, Recommendation, MODEL_STATEMENT};
use crate::series::Series;

/// Where the prices come from; printed with every result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PriceInfo {
    /// Region.
    pub region: String,
    /// Source.
    pub source: String,
    /// Date of the prices.
    pub price_date: String,
}

/// The result of one `frugal rightsize` run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Inputs (files or a Prometheus URL).
    pub inputs: Vec<String>,
    /// True when the data is the embedded synthetic sample.
    pub synthetic: bool,
    /// Settings used.
    pub config: Config,
    /// Price source and date.
    pub prices: PriceInfo,
    /// The model, in words.
    pub model: String,
    /// One entry per workload, in input order.
    pub recommendations: Vec<Recommendation>,
    /// Sum of monthly savings, USD.
    pub total_monthly_savings_usd: f64,
    /// Sum of annual savings, USD.
    pub total_annual_savings_usd: f64,
    /// Counts by finding, for the fleet summary printed first.
    pub summary: Summary,
    /// Remarks about the whole run (e.g. an engine's warnings).
    pub notes: Vec<String>,
}

impl Report {
    /// Keeps the workloads for which `keep` is true; totals and summary then describe them only.
    pub fn retain(&mut self, keep: impl Fn(&Recommendation) -> bool) {
        self.recommendations.retain(|r| keep(r));
        self.total_monthly_savings_usd = self
            .recommendations
            .iter()
            .map(|r| r.monthly_savings_usd)
            .sum();
        self.total_annual_savings_usd = self
            .recommendations
            .iter()
            .map(|r| r.annual_savings_usd)
            .sum();
        self.summary = Summary::of(&self.recommendations);
    }

    /// Orders the rows and keeps the first `top`; totals and summary still count every workload,
    /// and a note says how many rows are shown.
    pub fn arrange(&mut self, order: Order, top: Option<usize>) {
        let risk = |r: &Recommendation| {
            r.recommended
                .as_ref()
                .or(r.current.as_ref())
                .map_or(0, |p| p.risk)
        };
        match order {
            Order::Input => {}
            Order::Savings => self.recommendations.sort_by(|a, b| {
                b.monthly_savings_usd
                    .total_cmp(&a.monthly_savings_usd)
                    .then_with(|| a.workload.cmp(&b.workload))
            }),
            Order::Risk => self.recommendations.sort_by(|a, b| {
                risk(b)
                    .cmp(&risk(a))
                    .then_with(|| a.workload.cmp(&b.workload))
            }),
            Order::Name => self
                .recommendations
                .sort_by(|a, b| a.workload.cmp(&b.workload)),
        }
        if let Some(n) = top {
            let all = self.recommendations.len();
            if n < all {
                self.recommendations.truncate(n);
                self.notes.push(format!(
                    "showing {n} of {all} workloads ({}); the summary and totals count all {all}",
                    order.label()
                ));
            }
        }
    }
}

/// Row order of a report ([`Report::arrange`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Order {
    /// As read.
    Input,
    /// Largest monthly savings first.
    Savings,
    /// Highest risk of the recommended (or kept) type first.
    Risk,
    /// By workload name.
    Name,
}

impl Order {
    fn label(self) -> &'static str {
        match self {
            Order::Input => "in input order",
            Order::Savings => "largest savings first",
            Order::Risk => "highest risk first",
            Order::Name => "by name",
        }
    }
}

/// Counts over the fleet: what a reader of 2,000 rows needs first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Workloads in the report.
    pub workloads: usize,
    /// Workloads that could be analysed (every finding except skipped).
    pub analysed: usize,
    /// Workloads skipped (each has its reason).
    pub skipped: usize,
    /// Workload count per finding label (`over-provisioned`, `optimized`, ...).
    pub by_finding: std::collections::BTreeMap<String, usize>,
    /// Monthly savings of the downsizing recommendations, USD.
    pub downsizing_monthly_usd: f64,
    /// Monthly cost of fixing under-provisioned types, USD (positive).
    pub upsizing_monthly_usd: f64,
}

impl Summary {
    /// Counts the findings of `recs`.
    pub fn of(recs: &[Recommendation]) -> Summary {
        let mut s = Summary {
            workloads: recs.len(),
            ..Summary::default()
        };
        for r in recs {
            if r.finding == crate::Finding::Skipped {
                s.skipped += 1;
            } else {
                s.analysed += 1;
            }
            *s.by_finding
                .entry(r.finding.label().to_owned())
                .or_default() += 1;
            if r.monthly_savings_usd >= 0.0 {
                s.downsizing_monthly_usd += r.monthly_savings_usd;
            } else {
                s.upsizing_monthly_usd -= r.monthly_savings_usd;
            }
        }
        s
    }

    /// One line: `12 workloads: 10 analysed (6 over-provisioned, 4 optimized), 2 skipped`.
    pub fn line(&self) -> String {
        let parts: Vec<String> = self
            .by_finding
            .iter()
            .filter(|(k, _)| k.as_str() != "skipped")
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        let mut line = format!("{} workloads: {} analysed", self.workloads, self.analysed);
        if !parts.is_empty() {
            line += &format!(" ({})", parts.join(", "));
        }
        line += &format!(", {} skipped", self.skipped);
        line
    }
}

/// Analyses every series: pure and deterministic.
pub fn analyze(series: &[Series], catalog: &Catalog, config: &Config) -> Report {
    let recommendations: Vec<Recommendation> = series
        .iter()
        .map(|s| model::recommend(s, catalog, config))
        .collect();
    Report::from_recommendations(recommendations, catalog, config)
}

impl Report {
    /// Builds the report around finished recommendations (totals, summary, prices).
    pub fn from_recommendations(
        recommendations: Vec<Recommendation>,
        catalog: &Catalog,
        config: &Config,
    ) -> Report {
        let total_monthly_savings_usd = recommendations.iter().map(|r| r.monthly_savings_usd).sum();
        let total_annual_savings_usd = recommendations.iter().map(|r| r.annual_savings_usd).sum();
        Report {
            inputs: Vec::new(),
            synthetic: false,
            config: config.clone(),
            prices: PriceInfo {
                region: catalog.region.clone(),
                source: catalog.source.clone(),
                price_date: catalog.price_date.clone(),
            },
            model: MODEL_STATEMENT.to_owned(),
            summary: Summary::of(&recommendations),
            recommendations,
            total_monthly_savings_usd,
            total_annual_savings_usd,
            notes: Vec::new(),
        }
    }
}
