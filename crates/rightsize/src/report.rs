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
}

/// Analyses every series: pure and deterministic.
pub fn analyze(series: &[Series], catalog: &Catalog, config: &Config) -> Report {
    let recommendations: Vec<Recommendation> = series
        .iter()
        .map(|s| model::recommend(s, catalog, config))
        .collect();
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
        recommendations,
        total_monthly_savings_usd,
        total_annual_savings_usd,
    }
}
