//! The instance catalog: vCPUs, memory and price per hour, with an embedded AWS default.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Hours in a billing month, as AWS and Compute Optimizer count them.
pub const HOURS_PER_MONTH: f64 = 730.0;
/// Hours in a year.
pub const HOURS_PER_YEAR: f64 = 8_760.0;

/// CPU architecture of an instance family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Intel/AMD: one vCPU is one hyperthread (half a physical core).
    X86_64,
    /// AWS Graviton: one vCPU is one physical core.
    Arm64,
}

impl Arch {
    /// The conventional name (`x86_64`, `arm64`).
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// Per-family facts: architecture and a performance factor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Family {
    /// CPU architecture.
    pub arch: Arch,
    /// Work one vCPU of this family does, relative to a reference vCPU (1.0).
    ///
    /// CPU demand measured on family A in cores becomes `demand * perf(A) / perf(B)` cores on family B.
    /// The embedded default is 1.0 for every family: a Graviton3 core (a whole core) and a Sapphire
    /// Rapids hyperthread are treated as equal, which is conservative for most integer workloads;
    /// measure your own service and set it (`--perf-factor m7g=1.15`).
    pub perf_factor: f64,
}

/// One instance type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceType {
    /// API name, e.g. `m7i.large`.
    pub name: String,
    /// Family, the part before the dot (`m7i`).
    pub family: String,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in GiB.
    pub memory_gib: f64,
    /// On-demand price in USD per hour.
    pub usd_per_hour: f64,
}

impl InstanceType {
    /// Memory in bytes.
    pub fn memory_bytes(&self) -> f64 {
        self.memory_gib * 1024.0 * 1024.0 * 1024.0
    }
}

/// A set of instance types with their prices, and where the prices come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// Region the prices are for.
    pub region: String,
    /// Where the prices come from.
    pub source: String,
    /// When the prices were taken (ISO date), printed with every result.
    pub price_date: String,
    /// Families by name.
    pub families: BTreeMap<String, Family>,
    /// Instance types, sorted by price, then name.
    pub instances: Vec<InstanceType>,
}

/// (family, arch, [(size, vcpus, memory GiB, USD/hour)]) — AWS us-east-1, on-demand, Linux.
type FamilyRow = (&'static str, Arch, &'static [(&'static str, u32, f64, f64)]);

const EMBEDDED: &[FamilyRow] = &[
    (
        "c7i",
        Arch::X86_64,
        &[
            ("large", 2, 4.0, 0.08925),
            ("xlarge", 4, 8.0, 0.1785),
            ("2xlarge", 8, 16.0, 0.357),
            ("4xlarge", 16, 32.0, 0.714),
            ("8xlarge", 32, 64.0, 1.428),
        ],
    ),
    (
        "m7i",
        Arch::X86_64,
        &[
            ("large", 2, 8.0, 0.1008),
            ("xlarge", 4, 16.0, 0.2016),
            ("2xlarge", 8, 32.0, 0.4032),
            ("4xlarge", 16, 64.0, 0.8064),
            ("8xlarge", 32, 128.0, 1.6128),
        ],
    ),
    (
        "r7i",
        Arch::X86_64,
        &[
            ("large", 2, 16.0, 0.1323),
            ("xlarge", 4, 32.0, 0.2646),
            ("2xlarge", 8, 64.0, 0.5292),
            ("4xlarge", 16, 128.0, 1.0584),
            ("8xlarge", 32, 256.0, 2.1168),
        ],
    ),
    (
        "c7g",
        Arch::Arm64,
        &[
            ("medium", 1, 2.0, 0.0363),
            ("large", 2, 4.0, 0.0725),
            ("xlarge", 4, 8.0, 0.145),
            ("2xlarge", 8, 16.0, 0.29),
            ("4xlarge", 16, 32.0, 0.58),
            ("8xlarge", 32, 64.0, 1.16),
        ],
    ),
    (
        "m7g",
        Arch::Arm64,
        &[
            ("medium", 1, 4.0, 0.0408),
            ("large", 2, 8.0, 0.0816),
            ("xlarge", 4, 16.0, 0.1632),
            ("2xlarge", 8, 32.0, 0.3264),
            ("4xlarge", 16, 64.0, 0.6528),
            ("8xlarge", 32, 128.0, 1.3056),
        ],
    ),
    (
        "r7g",
        Arch::Arm64,
        &[
            ("medium", 1, 8.0, 0.0536),
            ("large", 2, 16.0, 0.1071),
            ("xlarge", 4, 32.0, 0.2142),
            ("2xlarge", 8, 64.0, 0.4284),
            ("4xlarge", 16, 128.0, 0.8568),
            ("8xlarge", 32, 256.0, 1.7136),
        ],
    ),
];

/// A catalog override file (`--catalog FILE`, JSON).
///
/// ```json
/// {
///   "replace": false,
///   "source": "my negotiated prices",
///   "price_date": "2025-01-01",
///   "families": { "m7g": { "arch": "arm64", "perf_factor": 1.15 } },
///   "instances": [ { "name": "m7g.large", "vcpus": 2, "memory_gib": 8, "usd_per_hour": 0.07 } ]
/// }
/// ```
/// Without `"replace": true` the entries extend the embedded catalog, replacing types of the same
/// name. A family not known and not listed gets its architecture from the AWS naming convention
/// (`g` after the generation digit means Graviton) and a performance factor of 1.0.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogOverride {
    /// Replace the embedded catalog instead of extending it.
    #[serde(default)]
    pub replace: bool,
    /// Region label.
    pub region: Option<String>,
    /// Price source.
    pub source: Option<String>,
    /// Price date.
    pub price_date: Option<String>,
    /// Family settings.
    #[serde(default)]
    pub families: BTreeMap<String, Family>,
    /// Instance types.
    #[serde(default)]
    pub instances: Vec<OverrideInstance>,
}

/// One instance type in an override file; `family` defaults to the part of `name` before the dot.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideInstance {
    /// API name.
    pub name: String,
    /// Family (optional).
    pub family: Option<String>,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in GiB.
    pub memory_gib: f64,
    /// USD per hour.
    pub usd_per_hour: f64,
}

impl Catalog {
    /// The embedded catalog: AWS us-east-1, on-demand, Linux, families c7i, m7i, r7i (large to
    /// 8xlarge) and c7g, m7g, r7g (medium to 8xlarge).
    pub fn embedded() -> Catalog {
        let mut families = BTreeMap::new();
        let mut instances = Vec::new();
        for (family, arch, sizes) in EMBEDDED {
            families.insert(
                (*family).to_owned(),
                Family {
                    arch: *arch,
                    perf_factor: 1.0,
                },
            );
            for (size, vcpus, memory_gib, usd_per_hour) in *sizes {
                instances.push(InstanceType {
                    name: format!("{family}.{size}"),
                    family: (*family).to_owned(),
                    vcpus: *vcpus,
                    memory_gib: *memory_gib,
                    usd_per_hour: *usd_per_hour,
                });
            }
        }
        let mut catalog = Catalog {
            region: "us-east-1".to_owned(),
            source: "AWS EC2 On-Demand list prices, Linux \
                     (https://aws.amazon.com/ec2/pricing/on-demand/), embedded, not fetched at \
                     run time"
                .to_owned(),
            price_date: "2024-06-01".to_owned(),
            families,
            instances,
        };
        catalog.sort();
        catalog
    }

    fn sort(&mut self) {
        self.instances.sort_by(|a, b| {
            a.usd_per_hour
                .total_cmp(&b.usd_per_hour)
                .then_with(|| a.name.cmp(&b.name))
        });
    }

    /// Applies an override file's contents (see [`CatalogOverride`]); `name` labels errors.
    pub fn apply_override(&mut self, name: &str, text: &str) -> Result<()> {
        let over: CatalogOverride = serde_json::from_str(text).map_err(|e| Error::Catalog {
            name: name.to_owned(),
            message: format!("{e}; see `frugal rightsize --help` for the catalog format"),
        })?;
        let bad = |message: String| Error::Catalog {
            name: name.to_owned(),
            message,
        };
        if over.replace {
            self.instances.clear();
            self.families.clear();
        }
        if let Some(region) = over.region {
            self.region = region;
        }
        if let Some(source) = over.source {
            self.source = source;
        } else {
            self.source = format!("{} + overrides from {name}", self.source);
        }
        if let Some(date) = over.price_date {
            self.price_date = date;
        }
        for (family, info) in over.families {
            if !(info.perf_factor.is_finite() && info.perf_factor > 0.0) {
                return Err(bad(format!(
                    "family {family}: perf_factor must be a positive number"
                )));
            }
            self.families.insert(family, info);
        }
        for inst in over.instances {
            if !(1..=4096).contains(&inst.vcpus) {
                return Err(bad(format!(
                    "{}: vcpus must be between 1 and 4096",
                    inst.name
                )));
            }
            if !(inst.memory_gib.is_finite() && inst.memory_gib > 0.0) {
                return Err(bad(format!(
                    "{}: memory_gib must be a positive number",
                    inst.name
                )));
            }
            if !(inst.usd_per_hour.is_finite() && inst.usd_per_hour >= 0.0) {
                return Err(bad(format!(
                    "{}: usd_per_hour must be a number >= 0",
                    inst.name
                )));
            }
            let family = inst
                .family
                .unwrap_or_else(|| inst.name.split('.').next().unwrap_or(&inst.name).to_owned());
            self.families
                .entry(family.clone())
                .or_insert_with(|| Family {
                    arch: guess_arch(&family),
                    perf_factor: 1.0,
                });
            self.instances.retain(|i| i.name != inst.name);
            self.instances.push(InstanceType {
                name: inst.name,
                family,
                vcpus: inst.vcpus,
                memory_gib: inst.memory_gib,
                usd_per_hour: inst.usd_per_hour,
            });
        }
        if self.instances.is_empty() {
            return Err(bad(
                "the catalog has no instance types left; add some".to_owned()
            ));
        }
        self.sort();
        Ok(())
    }

    /// Sets a family's performance factor.
    pub fn set_perf_factor(&mut self, family: &str, factor: f64) -> Result<()> {
        if !(factor.is_finite() && factor > 0.0) {
            return Err(Error::Config(format!(
                "performance factor for {family} must be a positive number, got {factor}"
            )));
        }
        match self.families.get_mut(family) {
            Some(f) => {
                f.perf_factor = factor;
                Ok(())
            }
            None => Err(Error::Config(format!(
                "unknown family {family}; known: {}",
                self.families.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// Looks an instance type up by name.
    pub fn get(&self, name: &str) -> Option<&InstanceType> {
        self.instances.iter().find(|i| i.name == name)
    }

    /// The family record of an instance type (a default when the family is unknown).
    pub fn family_of(&self, inst: &InstanceType) -> Family {
        self.families.get(&inst.family).cloned().unwrap_or(Family {
            arch: guess_arch(&inst.family),
            perf_factor: 1.0,
        })
    }
}

/// AWS naming: a `g` right after the generation digit (`m7g`, `c6gn`) marks Graviton.
fn guess_arch(family: &str) -> Arch {
    let bytes = family.as_bytes();
    match bytes.iter().position(u8::is_ascii_digit) {
        Some(i) if bytes.get(i + 1) == Some(&b'g') => Arch::Arm64,
        _ => Arch::X86_64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_prices_double_per_size_step() {
        let c = Catalog::embedded();
        assert_eq!(c.instances.len(), 33);
        assert_eq!(c.get("m7i.large").unwrap().usd_per_hour, 0.1008);
        assert_eq!(c.get("m7i.xlarge").unwrap().usd_per_hour, 0.2016);
        assert_eq!(c.get("c7g.medium").unwrap().vcpus, 1);
        assert!(c.get("m7i.medium").is_none(), "7i families start at large");
        for fam in c.families.keys() {
            let mut sizes: Vec<_> = c.instances.iter().filter(|i| &i.family == fam).collect();
            sizes.sort_by_key(|i| i.vcpus);
            for pair in sizes.windows(2) {
                let ratio = pair[1].usd_per_hour / pair[0].usd_per_hour;
                assert!(
                    (ratio - 2.0).abs() < 0.01,
                    "{} -> {}",
                    pair[0].name,
                    pair[1].name
                );
            }
        }
    }

    #[test]
    fn override_extends_and_replaces() {
        let mut c = Catalog::embedded();
        c.apply_override(
            "x.json",
            r#"{"families": {"m7g": {"arch": "arm64", "perf_factor": 1.2}},
                "instances": [{"name": "m7i.large", "vcpus": 2, "memory_gib": 8, "usd_per_hour": 0.05},
                              {"name": "t4g.small", "vcpus": 2, "memory_gib": 2, "usd_per_hour": 0.0168}]}"#,
        )
        .unwrap();
        assert_eq!(c.get("m7i.large").unwrap().usd_per_hour, 0.05);
        assert_eq!(c.families["t4g"].arch, Arch::Arm64);
        assert_eq!(c.families["m7g"].perf_factor, 1.2);
        assert_eq!(c.instances[0].name, "t4g.small");
        let err = c
            .apply_override("y.json", r#"{"instances": [{"name": "a.b"}]}"#)
            .unwrap_err();
        assert!(err.to_string().starts_with("catalog y.json:"), "{err}");
        let err = c
            .apply_override("z.json", r#"{"replace": true}"#)
            .unwrap_err();
        assert!(err.to_string().contains("no instance types"), "{err}");
    }
}
