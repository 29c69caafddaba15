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
//!
//! At a modest rate every strategy fits the same smallest instance, and the headline difference
//! is $0.00: true, and useless. [`Parting`] says where the strategy with the least CPU per
//! request and the one with the most first get different configurations — the lowest request
//! rate at which the choice of cleanup starts to cost instances.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

use frugal_output::units::{dollars, thousands_f};
use frugal_rightsize::{Arch, Catalog, InstanceType, HOURS_PER_MONTH, HOURS_PER_YEAR};

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
    /// The lowest rate at which the cheapest and the costliest strategy get different
    /// configurations (absent from reports written before it existed, and with fewer than two
    /// strategies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parting: Option<Parting>,
}

/// Where two strategies' cheapest configurations part: the lowest whole request rate at which
/// the model buys the strategy with the most CPU per request a different instance count or type
/// than the one with the least.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parting {
    /// The strategy with the least CPU per request.
    pub cheap: String,
    /// The strategy with the most CPU per request.
    pub dear: String,
    /// Every whole rate from 1 req/s up to this one was searched, req/s: the search's end
    /// (10M req/s, or the rate sized for if higher), or less for a handler so slow that the
    /// walk ran out of its budget of change points first.
    pub searched_to_rps: f64,
    /// Where they part; `None`: they get the same configuration at every rate searched.
    pub at: Option<PartingAt>,
}

/// The rate at which two strategies part, and what each buys there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartingAt {
    /// Requests per second (whole): at one less, both get the same configuration.
    pub rps: f64,
    /// What the cheap strategy buys at that rate.
    pub cheap: Configuration,
    /// What the dear strategy buys at that rate.
    pub dear: Configuration,
}

/// `instances × instance_type`, and its price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Configuration {
    /// The catalog type.
    pub instance_type: String,
    /// How many of it.
    pub instances: u32,
    /// Price, USD per month.
    pub usd_per_month: f64,
}

impl std::fmt::Display for Configuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} × {}", self.instances, self.instance_type)
    }
}

/// The highest rate [`compute`] searches for a [`Parting`] (at least the rate sized for): the
/// largest `frugal report --rps` accepts.
pub const PARTING_SEARCH_MAX_RPS: f64 = 10_000_000.0;

/// The most change points [`parting`] walks (heap entries taken). The walk visits every rate
/// at which a configuration can change, about `70 ×` the CPU microseconds per request of the
/// pair below 10M req/s with the embedded catalog: about 2,000 for a 30 µs handler, 70
/// million for a 1-second one (22.7 s in a release build, measured here, when the two never
/// part). Past this many the search stops, and [`Parting::searched_to_rps`] says how far it
/// got (a handler up to ≈ 7 ms per request is searched to the end).
const PARTING_MAX_CHANGE_POINTS: u32 = 1 << 19;

impl Parting {
    /// The sentence the verdict carries.
    pub fn sentence(&self) -> String {
        match &self.at {
            Some(at) => format!(
                "{} and {} part at {} req/s: {} ({}/month) vs {} ({}/month)",
                self.cheap,
                self.dear,
                thousands_f(at.rps),
                at.cheap,
                dollars(at.cheap.usd_per_month),
                at.dear,
                dollars(at.dear.usd_per_month),
            ),
            None => format!(
                "{} and {} get the same configuration at every rate: they never part below {} \
                 req/s",
                self.cheap,
                self.dear,
                thousands_f(self.searched_to_rps)
            ),
        }
    }
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
    let priced: Vec<(&Demand, BridgeRow)> = demands
        .iter()
        .filter_map(|d| Some((d, row(d, rps, ceiling, catalog, arch)?)))
        .collect();
    // The strategies with the least and the most CPU per request (the first least, the last
    // most), as the verdict compares them.
    let cheap = priced
        .iter()
        .min_by(|a, b| a.1.cpu_us_per_request.total_cmp(&b.1.cpu_us_per_request));
    let dear = priced
        .iter()
        .max_by(|a, b| a.1.cpu_us_per_request.total_cmp(&b.1.cpu_us_per_request));
    let parting = match (cheap, dear) {
        (Some(c), Some(d)) if c.1.strategy != d.1.strategy => {
            let limit = PARTING_SEARCH_MAX_RPS.max(rps);
            Some(parting(c.0, d.0, ceiling, catalog, arch, limit))
        }
        _ => None,
    };
    let verdict = verdict(
        cheap.map(|c| &c.1),
        dear.map(|d| &d.1),
        rps,
        parting.as_ref(),
    );
    let rows = priced.into_iter().map(|(_, r)| r).collect();
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
        parting,
    }
}

/// The catalog's candidates: types of `arch` with vCPUs.
fn candidates(catalog: &Catalog, arch: Arch) -> impl Iterator<Item = &InstanceType> {
    catalog
        .instances
        .iter()
        .filter(move |t| catalog.family_of(t).arch == arch && t.vcpus > 0)
}

/// The cheapest fitting configuration for `d` at `rps`: (total price per hour, instances,
/// type), each type at its smallest fitting count; ties go to fewer instances, then the name.
fn cheapest<'c>(
    d: &Demand,
    rps: f64,
    ceiling: f64,
    catalog: &'c Catalog,
    arch: Arch,
) -> Option<(f64, u32, &'c InstanceType)> {
    let vcpus_needed = rps * d.cpu_us_per_request * 1e-6 / ceiling;
    let memory_needed = d.memory_bytes * 1.15;
    candidates(catalog, arch)
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
        })
}

/// The lowest whole rate, up to `limit_rps`, at which [`compute`] buys `dear` a different
/// configuration than `cheap`.
///
/// "The configurations differ" is not monotone in the rate: `dear` crosses each step of the
/// catalog (2 vCPUs, 4, ...) before `cheap` does, and `cheap` catches up at the same step a
/// little later, so they part, meet again, and part at the next step. A search that doubles
/// the rate and then bisects finds *a* rate where they differ, not always the lowest: it can
/// jump over a narrow first window. Instead this walks the rates at which either configuration
/// can change — for each strategy and type, `n × vCPUs × ceiling / CPU per request`, where the
/// smallest fitting count of that type goes from `n` to `n + 1` — in increasing order (a heap
/// over the strategy × type sequences), testing the first whole rate above each. Between two
/// such rates nothing in the model changes, so the first whole rate found to differ is the
/// lowest, and one less is the same. Bounded: it stops at `limit_rps`, or after
/// [`PARTING_MAX_CHANGE_POINTS`] change points (a handler of seconds per request has tens of
/// millions below 10M req/s), saying how far it searched.
fn parting(
    cheap: &Demand,
    dear: &Demand,
    ceiling: f64,
    catalog: &Catalog,
    arch: Arch,
    limit_rps: f64,
) -> Parting {
    let config = |d: &Demand, rps: f64| {
        cheapest(d, rps, ceiling, catalog, arch).map(|(usd, k, t)| (usd, k, t.name.as_str()))
    };
    let differ = |rps: u64| {
        let rps = rps as f64;
        let (c, d) = (config(cheap, rps), config(dear, rps));
        c.map(|c| (c.1, c.2)) != d.map(|d| (d.1, d.2))
    };
    // Lowered when the walk stops at its budget before `limit_rps`.
    let mut searched_to = limit_rps;
    let found = 'search: {
        if cheap.cpu_us_per_request == dear.cpu_us_per_request
            && cheap.memory_bytes == dear.memory_bytes
        {
            // The same demand at every rate: the same configuration at every rate.
            break 'search None;
        }
        if differ(1) {
            break 'search Some(1);
        }
        // The rate at which the smallest fitting count of `t` for `d` goes from `n` to `n + 1`
        // is `n × step`; the first whole rate above it is tested.
        let steps: Vec<f64> = [cheap, dear]
            .iter()
            .flat_map(|d| {
                candidates(catalog, arch)
                    .map(|t| f64::from(t.vcpus) * ceiling / (d.cpu_us_per_request * 1e-6))
            })
            .filter(|step| step.is_finite() && *step > 0.0)
            .collect();
        // Saturating: a change point past u64 (a vanishing CPU per request) is past the limit.
        let above = |x: f64| (x.floor() as u64).saturating_add(1);
        let mut heap: BinaryHeap<Reverse<(u64, usize, u64)>> = steps
            .iter()
            .enumerate()
            .map(|(i, step)| Reverse((above(*step), i, 1)))
            .collect();
        let mut tested = 1;
        let mut walked = 0u32;
        while let Some(Reverse((rps, i, n))) = heap.pop() {
            if rps as f64 > limit_rps {
                break;
            }
            walked += 1;
            if walked > PARTING_MAX_CHANGE_POINTS {
                // Every whole rate below `rps`, the lowest change point not tested, is decided
                // (and `tested`, tested, holds up to the next change point above it).
                searched_to = (rps - 1).max(tested) as f64;
                break;
            }
            heap.push(Reverse((above((n + 1) as f64 * steps[i]), i, n + 1)));
            if rps <= tested {
                continue;
            }
            tested = rps;
            if differ(rps) {
                break 'search Some(rps);
            }
        }
        None
    };
    // Rounding can put a change a whole rate away from where the walk tested: step back while
    // the rate below differs too (none in exact arithmetic).
    let found = found.map(|mut rps| {
        while rps > 1 && differ(rps - 1) {
            rps -= 1;
        }
        rps
    });
    let at = found.and_then(|rps| {
        let rate = rps as f64;
        let describe = |d: &Demand| {
            config(d, rate).map(|(usd, k, name)| Configuration {
                instance_type: name.to_owned(),
                instances: k,
                usd_per_month: usd * HOURS_PER_MONTH,
            })
        };
        Some(PartingAt {
            rps: rate,
            cheap: describe(cheap)?,
            dear: describe(dear)?,
        })
    });
    Parting {
        cheap: cheap.strategy.clone(),
        dear: dear.strategy.clone(),
        searched_to_rps: searched_to,
        at,
    }
}

fn row(d: &Demand, rps: f64, ceiling: f64, catalog: &Catalog, arch: Arch) -> Option<BridgeRow> {
    let demand_cores = rps * d.cpu_us_per_request * 1e-6;
    let vcpus_needed = demand_cores / ceiling;
    let (usd_per_hour, instances, t) = cheapest(d, rps, ceiling, catalog, arch)?;
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

fn verdict(
    cheap: Option<&BridgeRow>,
    dear: Option<&BridgeRow>,
    rps: f64,
    parting: Option<&Parting>,
) -> String {
    let (Some(cheap), Some(dear)) = (cheap, dear) else {
        return "no strategy has a CPU-per-request figure: nothing to price".to_owned();
    };
    let discrete = dear.usd_per_month - cheap.usd_per_month;
    let marginal = dear.marginal_usd_per_month - cheap.marginal_usd_per_month;
    let single = [cheap, dear]
        .iter()
        .any(|r| r.cpu_us_range.0 == r.cpu_us_range.1);
    let overlap = dear.cpu_us_range.0 <= cheap.cpu_us_range.1;
    let same = (cheap.instances, &cheap.instance_type) == (dear.instances, &dear.instance_type);
    let who = format!(
        "at {} req/s, {} ({:.1} µs/request) and {} ({:.1} µs/request)",
        thousands_f(rps),
        cheap.strategy,
        cheap.cpu_us_per_request,
        dear.strategy,
        dear.cpu_us_per_request,
    );
    let mut text = if same && parting.is_some() {
        // The same configuration: a difference of $0.00 says nothing; where they part does.
        format!(
            "{who} both fit {} × {}: the choice of cleanup costs no instance at this rate (the \
             CPU itself differs by ${marginal:.2}/month)",
            cheap.instances, cheap.instance_type,
        )
    } else {
        format!(
            "{who} buy {} × {} and {} × {}: a difference of ${discrete:.2}/month (${:.2}/year); \
             the CPU itself differs by ${marginal:.2}/month",
            cheap.instances,
            cheap.instance_type,
            dear.instances,
            dear.instance_type,
            discrete * 12.0,
        )
    };
    if let Some(p) = parting {
        text.push_str("; ");
        text.push_str(&p.sentence());
    }
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

    /// The bridge with the embedded catalog, 20% headroom.
    fn bridge(demands: &[Demand], rps: f64, arch: Arch) -> Bridge {
        compute(demands, rps, 1.0 / 1.2, &Catalog::embedded(), arch)
    }

    /// [`bridge`] on x86-64.
    fn x86(demands: &[Demand], rps: f64) -> Bridge {
        bridge(demands, rps, Arch::X86_64)
    }

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

    /// (instances, type) of each row of the bridge at `rps`.
    fn configurations(demands: &[Demand], rps: f64, arch: Arch) -> Vec<(u32, String)> {
        bridge(demands, rps, arch)
            .rows
            .into_iter()
            .map(|r| (r.instances, r.instance_type))
            .collect()
    }

    #[test]
    fn strategies_part_at_the_lowest_rate_their_configurations_differ() {
        let catalog = Catalog::embedded();
        for (arch, lean, heavy) in [
            (Arch::X86_64, 30.0, 33.0),
            (Arch::X86_64, 12.5, 40.0),
            // A hair apart: they part in a window about 2 req/s wide above 55,555 req/s, then
            // meet again; the first window, not a later one, is where they part.
            (Arch::X86_64, 30.0, 30.001),
            (Arch::Arm64, 30.0, 33.0),
        ] {
            let demands = [demand("lean", lean), demand("heavy", heavy)];
            // At 1,000 req/s both fit the smallest instance: no dollar difference.
            let b = compute(&demands, 1_000.0, 1.0 / 1.2, &catalog, arch);
            let configs = configurations(&demands, 1_000.0, arch);
            assert_eq!(configs[0], configs[1], "{arch:?} {lean} {heavy}");
            let p = b.parting.as_ref().expect("two strategies");
            assert_eq!((p.cheap.as_str(), p.dear.as_str()), ("lean", "heavy"));
            let at = p.at.as_ref().expect("they part below 10,000,000 req/s");
            let rps = at.rps;
            assert_eq!(rps, rps.round(), "a whole rate");
            // One below: the same configuration; at it: different, and those the rows show.
            let below = configurations(&demands, rps - 1.0, arch);
            assert_eq!(below[0], below[1], "{arch:?} {lean} {heavy}: at {rps} - 1");
            let there = configurations(&demands, rps, arch);
            assert_ne!(there[0], there[1], "{arch:?} {lean} {heavy}: at {rps}");
            assert_eq!(
                there[0],
                (at.cheap.instances, at.cheap.instance_type.clone())
            );
            assert_eq!(there[1], (at.dear.instances, at.dear.instance_type.clone()));
            assert!(at.dear.usd_per_month > at.cheap.usd_per_month);
            // The lowest: no whole rate below differs (checked one by one).
            let lowest = (1..rps as u64).find(|r| {
                let pick = |d: &Demand| {
                    cheapest(d, *r as f64, 1.0 / 1.2, &catalog, arch)
                        .map(|c| (c.1, c.2.name.clone()))
                };
                pick(&demands[0]) != pick(&demands[1])
            });
            assert_eq!(lowest, None, "{arch:?} {lean} {heavy}: they part at {rps}");
            // The headline says where, not "$0.00/month".
            assert!(
                b.verdict
                    .contains(&format!("part at {} req/s", thousands_f(rps))),
                "{}",
                b.verdict
            );
            assert!(
                !b.verdict.contains("a difference of $0.00/month"),
                "{}",
                b.verdict
            );
        }
    }

    #[test]
    fn the_first_parting_of_the_hair_apart_pair_is_below_their_second() {
        // 30.0 vs 30.001 µs: the heavy one needs more than 2 vCPUs (one c7i.large) above
        // 2 × (1/1.2) / 30.001e-6 = 55,553.7 req/s, the lean one above 55,555.6: they part at
        // 55,554 and meet again at 55,556, on one c7i.xlarge each.
        let demands = [demand("lean", 30.0), demand("heavy", 30.001)];
        let b = x86(&demands, 1_000.0);
        let at = b.parting.and_then(|p| p.at).expect("they part");
        assert_eq!(at.rps, 55_554.0);
        let after = configurations(&demands, 55_556.0, Arch::X86_64);
        assert_eq!(after[0], after[1], "they meet again above the window");
    }

    #[test]
    fn identical_strategies_never_part_and_say_so() {
        let b = x86(&[demand("a", 30.0), demand("b", 30.0)], 1_000.0);
        let p = b.parting.expect("two strategies");
        assert_eq!(p.at, None);
        assert_eq!(p.searched_to_rps, PARTING_SEARCH_MAX_RPS);
        assert!(
            b.verdict.contains("never part below 10,000,000 req/s"),
            "{}",
            b.verdict
        );
        // One strategy: nothing to part from.
        let one = x86(&[demand("a", 30.0)], 1_000.0);
        assert_eq!(one.parting, None);
    }

    #[test]
    fn a_walk_too_long_to_finish_stops_at_its_budget_and_says_how_far_it_got() {
        // 1 s of CPU per request: a configuration can change every 1.7 req/s (2 vCPUs × 83%),
        // 70 million change points below 10M req/s. The same CPU (the memory differs, so they
        // are not the same demand) never parts; the walk stops, having searched far less.
        let mut heavier = demand("b", 1e6);
        heavier.memory_bytes *= 1.01;
        let demands = [demand("a", 1e6), heavier];
        let b = x86(&demands, 1_000.0);
        let p = b.parting.expect("two strategies");
        assert_eq!(p.at, None);
        assert!(
            p.searched_to_rps >= 10_000.0 && p.searched_to_rps < PARTING_SEARCH_MAX_RPS,
            "{p:?}"
        );
        let shown = format!("never part below {}", thousands_f(p.searched_to_rps));
        assert!(b.verdict.contains(&shown), "{}", b.verdict);
        // At the last rate searched they still get the same configuration.
        let at_end = configurations(&demands, p.searched_to_rps, Arch::X86_64);
        assert_eq!(at_end[0], at_end[1]);
    }

    #[test]
    fn a_vanishing_cpu_per_request_parts_or_not_without_overflow() {
        // 1e-14 µs per request: a 2-vCPU type's first change point is at 1.7e20 req/s, past
        // what a u64 holds (the walk's rates are whole u64s).
        for tiny in [1e-14, 1e-300, f64::MIN_POSITIVE] {
            let b = x86(&[demand("tiny", tiny), demand("heavy", 30.0)], 1_000.0);
            let at = b.parting.and_then(|p| p.at).expect("they part");
            assert_eq!(at.rps, 55_556.0, "{tiny}");
            let b = x86(
                &[demand("tiny", tiny), demand("tinier", tiny / 2.0)],
                1_000.0,
            );
            assert_eq!(b.parting.and_then(|p| p.at), None, "{tiny}");
        }
    }

    #[test]
    fn reports_without_a_parting_still_load() {
        let b = x86(&[demand("lean", 30.0), demand("heavy", 60.0)], 1_000.0);
        let mut json = serde_json::to_value(&b).expect("serializable");
        assert!(json["parting"]["at"]["rps"].is_number(), "{json}");
        json.as_object_mut().expect("an object").remove("parting");
        let old: Bridge = serde_json::from_value(json).expect("a bridge without parting loads");
        assert_eq!(old.parting, None);
        assert_eq!(old.rows, b.rows);
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
