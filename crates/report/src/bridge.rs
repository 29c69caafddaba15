//! The bridge from cleanup cost to dollars: for each cleanup strategy, the CPU seconds per
//! request the service measured → the cores it needs at a request rate → the vCPUs under the
//! rightsize ceiling → the cheapest catalog configuration that has them → $/month and $/year.
//!
//! The model, stated on the page too ([`MODEL`]): demand in cores = rate × CPU seconds per
//! request; a configuration of `k` instances of type `T` fits when demand ≤ `k × vCPUs(T) ×
//! ceiling`, with the same ceiling `frugal rightsize` uses (`1 / (1 + headroom)`, 83% by default),
//! and when `k × memory(T)` holds the service's measured resident memory + 15%. Among the catalog's
//! types of this machine's architecture the cheapest fitting `k × T` wins (ties: fewer instances).
//! One vCPU of the catalog counts as one CPU of this machine — the largest of the model's limits,
//! listed in [`Bridge::limits`].

use serde::{Deserialize, Serialize};

use frugal_rightsize::{Arch, Catalog, HOURS_PER_MONTH, HOURS_PER_YEAR};

use crate::service::ServiceSummary;

/// The model in one paragraph (shown on the page and in the JSON).
pub const MODEL: &str = "demand (cores) = request rate × server CPU seconds per request, measured \
by `frugal bench http` at a constant rate on this machine; a configuration of k instances of one \
type fits when demand ≤ k × vCPUs × the rightsize ceiling (1 / (1 + 20% headroom) = 83%) and k × \
memory ≥ the server's resident memory + 15%; the cheapest fitting configuration of this machine's \
architecture in the embedded catalog wins (on-demand, 730 h a month). The marginal cost is demand \
× the chosen family's price per vCPU-hour: what the CPU itself costs, before rounding up to whole \
instances.";

/// The bridge for every measured strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bridge {
    /// Requests per second sized for.
    pub rps: f64,
    /// Utilization ceiling (fraction of the vCPUs).
    pub ceiling: f64,
    /// CPU architecture of the candidates (this machine's).
    pub arch: String,
    /// Price source, region and date.
    pub prices: String,
    /// The model, in words.
    pub model: String,
    /// Where the model is weak.
    pub limits: Vec<String>,
    /// One row per strategy.
    pub rows: Vec<BridgeRow>,
    /// What the choice of cleanup strategy is worth at this rate, in words.
    pub verdict: String,
}

/// One strategy across the bridge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeRow {
    /// Cleanup strategy.
    pub strategy: String,
    /// Server CPU per request, microseconds (median of the benchmark's runs).
    pub cpu_us_per_request: f64,
    /// The runs' range of that figure, microseconds (min, max).
    pub cpu_us_range: (f64, f64),
    /// Cores busy at the rate.
    pub demand_cores: f64,
    /// vCPUs needed under the ceiling (fractional).
    pub vcpus_needed: f64,
    /// The cheapest fitting type.
    pub instance_type: String,
    /// How many of it.
    pub instances: u32,
    /// vCPUs bought.
    pub vcpus_bought: u32,
    /// Utilization of the bought vCPUs at the rate.
    pub utilization: f64,
    /// Highest rate the configuration sustains under the ceiling, requests per second.
    pub max_rps: f64,
    /// Price of the configuration, USD per month.
    pub usd_per_month: f64,
    /// Price of the configuration, USD per year.
    pub usd_per_year: f64,
    /// Demand × the family's price per vCPU-hour × 730: USD per month.
    pub marginal_usd_per_month: f64,
}

/// What went into one row.
#[derive(Debug, Clone)]
pub struct Demand {
    /// Strategy name.
    pub strategy: String,
    /// CPU per request, microseconds (median).
    pub cpu_us_per_request: f64,
    /// Range of the runs (min, max).
    pub cpu_us_range: (f64, f64),
    /// Memory the service needs, bytes.
    pub memory_bytes: f64,
}

/// Extracts each strategy's demand from the service summary (strategies without a CPU figure
/// are left out).
pub fn demands(service: &ServiceSummary) -> Vec<Demand> {
    service
        .strategies
        .iter()
        .filter_map(|l| {
            let cpu = l.cpu_us_per_request.as_ref()?;
            (cpu.median > 0.0).then(|| Demand {
                strategy: l.strategy.clone(),
                cpu_us_per_request: cpu.median,
                cpu_us_range: (cpu.min, cpu.max),
                memory_bytes: l.rss_bytes as f64,
            })
        })
        .collect()
}

/// The architecture of the machine this runs on, as the catalog names it.
pub fn this_arch() -> Arch {
    if cfg!(target_arch = "aarch64") {
        Arch::Arm64
    } else {
        Arch::X86_64
    }
}

/// Computes the bridge. `ceiling` is the rightsize utilization ceiling (0 < c ≤ 1).
pub fn compute(
    demands: &[Demand],
    rps: f64,
    ceiling: f64,
    catalog: &Catalog,
    arch: Arch,
) -> Bridge {
    let rows: Vec<BridgeRow> = demands
        .iter()
        .filter_map(|d| row(d, rps, ceiling, catalog, arch))
        .collect();
    let verdict = verdict(&rows, rps);
    Bridge {
        rps,
        ceiling,
        arch: arch.as_str().to_owned(),
        prices: format!(
            "{} on-demand, {} ({})",
            catalog.region, catalog.price_date, catalog.source
        ),
        model: MODEL.to_owned(),
        limits: vec![
            "one catalog vCPU is taken to do the work of one CPU of this machine; a cloud vCPU \
             (often a hyperthread) of another generation may do more or less"
                .to_owned(),
            "CPU per request comes from a short benchmark of a synthetic service (`--work-us` of \
             burned CPU + HTTP); a real handler's cost dominates and must be measured"
                .to_owned(),
            "the service scales linearly with vCPUs and instances, and needs no headroom beyond \
             the ceiling for latency (the SLA is not screened here: `frugal rightsize --verify` \
             replays a recommendation against the real service)"
                .to_owned(),
            "on-demand prices; no reserved or spot discounts, no load balancer, storage or \
             network costs"
                .to_owned(),
        ],
        rows,
        verdict,
    }
}

fn row(d: &Demand, rps: f64, ceiling: f64, catalog: &Catalog, arch: Arch) -> Option<BridgeRow> {
    let demand_cores = rps * d.cpu_us_per_request * 1e-6;
    let vcpus_needed = demand_cores / ceiling;
    let memory_needed = d.memory_bytes * 1.15;
    // (total price per hour, instances, type) of each type's smallest fitting count.
    let best = catalog
        .instances
        .iter()
        .filter(|t| catalog.family_of(t).arch == arch && t.vcpus > 0)
        .map(|t| {
            let by_cpu = (vcpus_needed / f64::from(t.vcpus)).ceil();
            let by_mem = (memory_needed / t.memory_bytes()).ceil();
            let k = by_cpu.max(by_mem).max(1.0);
            (k * t.usd_per_hour, k as u32, t)
        })
        .min_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then(a.1.cmp(&b.1))
                .then(a.2.name.cmp(&b.2.name))
        })?;
    let (usd_per_hour, instances, t) = best;
    let vcpus_bought = instances * t.vcpus;
    Some(BridgeRow {
        strategy: d.strategy.clone(),
        cpu_us_per_request: d.cpu_us_per_request,
        cpu_us_range: d.cpu_us_range,
        demand_cores,
        vcpus_needed,
        instance_type: t.name.clone(),
        instances,
        vcpus_bought,
        utilization: demand_cores / f64::from(vcpus_bought),
        max_rps: f64::from(vcpus_bought) * ceiling / (d.cpu_us_per_request * 1e-6),
        usd_per_month: usd_per_hour * HOURS_PER_MONTH,
        usd_per_year: usd_per_hour * HOURS_PER_YEAR,
        marginal_usd_per_month: demand_cores * t.usd_per_hour / f64::from(t.vcpus)
            * HOURS_PER_MONTH,
    })
}

fn verdict(rows: &[BridgeRow], rps: f64) -> String {
    let (Some(cheap), Some(dear)) = (
        rows.iter()
            .min_by(|a, b| a.cpu_us_per_request.total_cmp(&b.cpu_us_per_request)),
        rows.iter()
            .max_by(|a, b| a.cpu_us_per_request.total_cmp(&b.cpu_us_per_request)),
    ) else {
        return "no strategy has a CPU-per-request figure: nothing to price".to_owned();
    };
    let discrete = dear.usd_per_month - cheap.usd_per_month;
    let marginal = dear.marginal_usd_per_month - cheap.marginal_usd_per_month;
    let single = rows.iter().any(|r| r.cpu_us_range.0 == r.cpu_us_range.1);
    let overlap = dear.cpu_us_range.0 <= cheap.cpu_us_range.1;
    let mut text = format!(
        "at {rps:.0} req/s, {} ({:.1} µs/request) and {} ({:.1} µs/request) buy {} × {} and {} × {}: \
         a difference of ${discrete:.2}/month (${:.2}/year); the CPU itself differs by \
         ${marginal:.2}/month",
        cheap.strategy,
        cheap.cpu_us_per_request,
        dear.strategy,
        dear.cpu_us_per_request,
        cheap.instances,
        cheap.instance_type,
        dear.instances,
        dear.instance_type,
        discrete * 12.0,
    );
    if single {
        text.push_str(
            "; with one run per strategy that difference cannot be told from run-to-run noise",
        );
    } else if overlap {
        text.push_str(
            "; the two CPU figures' run-to-run ranges overlap, so even that difference is within \
             the noise of this machine",
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(name: &str, us: f64) -> Demand {
        Demand {
            strategy: name.to_owned(),
            cpu_us_per_request: us,
            cpu_us_range: (us * 0.99, us * 1.01),
            memory_bytes: 100e6,
        }
    }

    #[test]
    fn picks_the_cheapest_fitting_configuration() {
        let catalog = Catalog::embedded();
        // 10,000 req/s × 100 µs = 1 core; / 0.8333 = 1.2 vCPUs → one 2-vCPU type.
        let b = compute(
            &[demand("a", 100.0)],
            10_000.0,
            1.0 / 1.2,
            &catalog,
            Arch::X86_64,
        );
        let r = &b.rows[0];
        assert!((r.demand_cores - 1.0).abs() < 1e-9);
        assert!((r.vcpus_needed - 1.2).abs() < 1e-9);
        assert_eq!((r.instance_type.as_str(), r.instances), ("c7i.large", 1));
        assert!((r.utilization - 0.5).abs() < 1e-9);
        // Every cheaper-or-equal x86 configuration must not fit.
        for t in &catalog.instances {
            if catalog.family_of(t).arch == Arch::X86_64 && t.usd_per_hour < 0.08925 {
                assert!(f64::from(t.vcpus) < r.vcpus_needed);
            }
        }
    }

    #[test]
    fn demand_grows_into_more_or_bigger_instances_never_below_need() {
        let catalog = Catalog::embedded();
        let mut last = 0.0;
        for rps in [1e3, 1e4, 5e4, 1e5, 5e5, 2e6] {
            let b = compute(&[demand("a", 40.0)], rps, 1.0 / 1.2, &catalog, Arch::X86_64);
            let r = &b.rows[0];
            assert!(f64::from(r.vcpus_bought) >= r.vcpus_needed - 1e-9);
            assert!(r.usd_per_month >= last, "more demand never costs less");
            assert!(r.max_rps >= rps * (1.0 - 1e-9));
            last = r.usd_per_month;
        }
    }

    #[test]
    fn strategies_cost_differs_only_when_demand_differs() {
        let catalog = Catalog::embedded();
        let b = compute(
            &[demand("lean", 30.0), demand("heavy", 60.0)],
            100_000.0,
            1.0 / 1.2,
            &catalog,
            Arch::X86_64,
        );
        assert_eq!(b.rows.len(), 2);
        assert!(b.rows[1].usd_per_month > b.rows[0].usd_per_month);
        assert!(b.rows[1].marginal_usd_per_month > b.rows[0].marginal_usd_per_month * 1.99);
        assert!(
            b.verdict.contains("lean") && b.verdict.contains("heavy"),
            "{}",
            b.verdict
        );
        assert!(!b.verdict.contains("overlap"));
    }

    #[test]
    fn arm_machine_prices_graviton_types() {
        let catalog = Catalog::embedded();
        let b = compute(&[demand("a", 40.0)], 1e4, 1.0 / 1.2, &catalog, Arch::Arm64);
        assert!(
            b.rows[0].instance_type.contains('g'),
            "{}",
            b.rows[0].instance_type
        );
    }
}
