//! NUMA facts (nodes, `zone_reclaim_mode`), local-vs-remote access where there are two nodes
//! or more, and the source-level check of the article's `zone_reclaim()` claims (3.2).

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::patterns::{Cursor, Layout, Pattern};
use super::sys::{self, PagePolicy, Region};
use super::{time_layout, Timing};

/// Where the kernel's node list lives.
pub const NODE_DIR: &str = "/sys/devices/system/node";
/// The sysctl.
pub const ZONE_RECLAIM_PATH: &str = "/proc/sys/vm/zone_reclaim_mode";
/// The installed kernel UAPI header that defines the `zone_reclaim_mode` bits.
pub const MEMPOLICY_HEADER: &str = "/usr/include/linux/mempolicy.h";
/// The running kernel's symbols (names are readable without privileges).
pub const KALLSYMS: &str = "/proc/kallsyms";

/// One NUMA node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumaNode {
    /// Node number.
    pub id: u32,
    /// Its CPUs.
    pub cpus: Vec<usize>,
}

/// Local vs remote access time, measured with the thread pinned to `cpu_node`'s CPUs and the
/// memory bound (`mbind`) to `mem_node`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumaRow {
    /// Node whose CPUs ran the walk.
    pub cpu_node: u32,
    /// Node holding the memory.
    pub mem_node: u32,
    /// Pattern walked (`chase-shuffled`).
    pub pattern: String,
    /// Working set in bytes.
    pub size_bytes: u64,
    /// Nanoseconds per access.
    pub time_ns: Timing,
}

/// One `RECLAIM_*` bit as the installed kernel header defines it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReclaimBit {
    /// `RECLAIM_ZONE`, `RECLAIM_WRITE`, `RECLAIM_UNMAP`.
    pub name: String,
    /// Its value.
    pub value: u32,
    /// The header's comment for it.
    pub comment: String,
}

/// What this machine's kernel sources say about the article's 3.2 snippet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceCheck {
    /// The header read ([`MEMPOLICY_HEADER`]), if present.
    pub header: Option<String>,
    /// The `RECLAIM_*` bits found there.
    pub reclaim_bits: Vec<ReclaimBit>,
    /// Whether the running kernel has a `zone_reclaim` function (`None`: kallsyms unreadable).
    pub kernel_has_zone_reclaim: Option<bool>,
    /// Whether it has `node_reclaim` (the function's name since Linux 4.8).
    pub kernel_has_node_reclaim: Option<bool>,
}

/// The NUMA part of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumaSection {
    /// The nodes found (empty when sysfs has no node directory).
    pub nodes: Vec<NumaNode>,
    /// `vm.zone_reclaim_mode`, if readable.
    pub zone_reclaim_mode: Option<u32>,
    /// Its bits decoded (the kernel's documented meanings).
    pub zone_reclaim_bits: Vec<String>,
    /// Local vs remote rows (two nodes or more).
    pub rows: Vec<NumaRow>,
    /// What could and could not be measured.
    pub note: String,
    /// The source-level check.
    pub source_check: SourceCheck,
}

/// Reads node ids and CPU lists from a sysfs-style node directory.
pub fn read_nodes(dir: &Path) -> Vec<NumaNode> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut nodes: Vec<NumaNode> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let id: u32 = name.strip_prefix("node")?.parse().ok()?;
            let cpus = std::fs::read_to_string(e.path().join("cpulist"))
                .ok()
                .and_then(|s| parse_cpu_list(s.trim()))
                .unwrap_or_default();
            Some(NumaNode { id, cpus })
        })
        .collect();
    nodes.sort_by_key(|n| n.id);
    nodes
}

/// Parses a kernel CPU list (`0-3,8,10-11`); `None` when malformed.
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    if s.is_empty() {
        return Some(cpus);
    }
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 1 << 16 {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

/// The documented meaning of each `zone_reclaim_mode` bit (Documentation/admin-guide/sysctl/
/// vm.rst): `1` zone reclaim on, `2` zone reclaim writes dirty pages out, `4` zone reclaim
/// swaps (unmaps) pages.
pub fn decode_zone_reclaim(mode: u32) -> Vec<String> {
    let mut out = Vec::new();
    if mode == 0 {
        out.push("0: off — allocations fall back to other zones/nodes without reclaiming".into());
    }
    for (bit, text) in [
        (
            1,
            "1 (RECLAIM_ZONE): reclaim clean local pages before allocating off node",
        ),
        (
            2,
            "2 (RECLAIM_WRITE): node reclaim may write dirty pages out",
        ),
        (4, "4 (RECLAIM_UNMAP): node reclaim may unmap (swap) pages"),
    ] {
        if mode & bit != 0 {
            out.push(text.to_owned());
        }
    }
    if mode & !7 != 0 {
        out.push(format!("unknown bits {:#x}", mode & !7));
    }
    out
}

/// Extracts `#define RECLAIM_* (1<<n) /* comment */` lines from a header's text.
pub fn parse_reclaim_bits(header: &str) -> Vec<ReclaimBit> {
    header
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("#define")?.trim_start();
            let (name, rest) = rest.split_once(char::is_whitespace)?;
            if !name.starts_with("RECLAIM_") {
                return None;
            }
            let (expr, comment) = match rest.split_once("/*") {
                Some((e, c)) => (e.trim(), c.trim().trim_end_matches("*/").trim()),
                None => (rest.trim(), ""),
            };
            let expr: String = expr.chars().filter(|c| !c.is_whitespace()).collect();
            let expr = expr.trim_start_matches('(').trim_end_matches(')');
            let value = match expr.split_once("<<") {
                Some((a, b)) => a.parse::<u32>().ok()?.checked_shl(b.parse().ok()?)?,
                None => expr.parse().ok()?,
            };
            Some(ReclaimBit {
                name: name.to_owned(),
                value,
                comment: comment.to_owned(),
            })
        })
        .collect()
}

/// Whether a kallsyms text has a function named exactly `name`.
pub fn kallsyms_has(kallsyms: &str, name: &str) -> bool {
    kallsyms.lines().any(|l| {
        let mut f = l.split_whitespace();
        let sym = f.nth(2);
        // Local copies may carry compiler suffixes (`__node_reclaim.isra.0`).
        sym.is_some_and(|s| s == name || s.split('.').next() == Some(name))
    })
}

fn source_check() -> SourceCheck {
    let header = std::fs::read_to_string(MEMPOLICY_HEADER).ok();
    let kallsyms = std::fs::read_to_string(KALLSYMS)
        .ok()
        .filter(|s| !s.is_empty());
    SourceCheck {
        reclaim_bits: header
            .as_deref()
            .map(parse_reclaim_bits)
            .unwrap_or_default(),
        header: header.map(|_| MEMPOLICY_HEADER.to_owned()),
        kernel_has_zone_reclaim: kallsyms.as_deref().map(|k| kallsyms_has(k, "zone_reclaim")),
        kernel_has_node_reclaim: kallsyms.as_deref().map(|k| kallsyms_has(k, "node_reclaim")),
    }
}

/// Reads the facts and, with two nodes or more, measures local vs remote access.
pub(crate) fn run(size: usize, samples: u32, sample_time: Duration) -> NumaSection {
    let nodes = read_nodes(Path::new(NODE_DIR));
    let zone_reclaim_mode = std::fs::read_to_string(ZONE_RECLAIM_PATH)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let mut rows = Vec::new();
    let note = match nodes.len() {
        0 => "no NUMA information in sysfs (no /sys/devices/system/node): cross-node effects \
              cannot be measured here"
            .to_owned(),
        1 => "one NUMA node on this machine: every access is local, so cross-node (remote) \
              access and the article's migration claims cannot be measured here"
            .to_owned(),
        _ => {
            let cpu_node = &nodes[0];
            let mut failures = Vec::new();
            for mem in &nodes {
                match measure_pair(cpu_node, mem.id, size, samples, sample_time) {
                    Ok(row) => rows.push(row),
                    Err(e) => failures.push(format!("node {} memory: {e}", mem.id)),
                }
            }
            if failures.is_empty() {
                format!(
                    "{} nodes: a shuffled pointer chase over {} MiB pinned to node {}'s CPUs, \
                     memory bound to each node in turn (mbind MPOL_BIND)",
                    nodes.len(),
                    size >> 20,
                    cpu_node.id
                )
            } else {
                format!(
                    "{} nodes; not measured: {}",
                    nodes.len(),
                    failures.join("; ")
                )
            }
        }
    };
    NumaSection {
        zone_reclaim_bits: zone_reclaim_mode
            .map(decode_zone_reclaim)
            .unwrap_or_default(),
        nodes,
        zone_reclaim_mode,
        rows,
        note,
        source_check: source_check(),
    }
}

fn measure_pair(
    cpu_node: &NumaNode,
    mem_node: u32,
    size: usize,
    samples: u32,
    sample_time: Duration,
) -> std::io::Result<NumaRow> {
    let cpus = cpu_node.cpus.clone();
    // A scoped thread, so pinning never leaks into the caller's thread.
    std::thread::scope(|s| {
        s.spawn(|| {
            sys::pin_current_thread(&cpus)?;
            let region = Region::map(size, PagePolicy::Small)?;
            region.bind_to_node(mem_node)?;
            let layout = Layout::new(Pattern::ChaseShuffled, region, 0x5eed);
            let mut cursor = Cursor::new(1);
            let time_ns = time_layout(&layout, &mut cursor, samples, sample_time);
            Ok(NumaRow {
                cpu_node: cpu_node.id,
                mem_node,
                pattern: Pattern::ChaseShuffled.key().to_owned(),
                size_bytes: size as u64,
                time_ns,
            })
        })
        .join()
        .expect("the measuring thread does not panic")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn reclaim_bits_from_the_uapi_header() {
        let header = "#define MPOL_MF_LAZY\t (1<<3)\n\
                      #define RECLAIM_ZONE\t(1<<0)\t/* Run shrink_inactive_list on the zone */\n\
                      #define RECLAIM_WRITE\t(1<<1)\t/* Writeout pages during reclaim */\n\
                      #define RECLAIM_UNMAP\t(1<<2)\t/* Unmap pages during reclaim */\n";
        let bits = parse_reclaim_bits(header);
        assert_eq!(bits.len(), 3);
        assert_eq!(bits[1].name, "RECLAIM_WRITE");
        assert_eq!(bits[1].value, 2);
        assert_eq!(bits[1].comment, "Writeout pages during reclaim");
        assert_eq!(bits[2].value, 4);
    }

    #[test]
    fn zone_reclaim_decoding() {
        assert!(decode_zone_reclaim(0)[0].starts_with("0: off"));
        let d = decode_zone_reclaim(3);
        assert_eq!(d.len(), 2);
        assert!(d[1].contains("RECLAIM_WRITE"));
        assert!(decode_zone_reclaim(9).last().unwrap().contains("unknown"));
    }

    #[test]
    fn kallsyms_lookup_is_exact() {
        let k = "ffffffff815c4100 t __node_reclaim.isra.0\nffffffff815c5410 T node_reclaim\n";
        assert!(kallsyms_has(k, "node_reclaim"));
        assert!(kallsyms_has(k, "__node_reclaim"));
        assert!(!kallsyms_has(k, "zone_reclaim"));
    }

    #[test]
    fn nodes_from_a_fake_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        for (i, cpus) in [(0, "0-1"), (1, "2,3")] {
            let d = dir.path().join(format!("node{i}"));
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("cpulist"), format!("{cpus}\n")).unwrap();
        }
        std::fs::create_dir(dir.path().join("power")).unwrap();
        let nodes = read_nodes(dir.path());
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[1].cpus, vec![2, 3]);
        assert!(read_nodes(Path::new("/nonexistent")).is_empty());
    }
}
