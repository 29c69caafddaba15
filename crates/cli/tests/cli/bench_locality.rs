//! `frugal bench locality` end to end: the report's JSON schema, simulated figures marked as
//! such, and bad input refused with exit status 2 (no wall-clock thresholds anywhere).

use std::process::{Command, Output};

use frugal_workloads::claims::Verdict;
use frugal_workloads::defer_bench::CounterSource;
use frugal_workloads::locality::{LocalityReport, Pattern};

use crate::util::{tempdir, FRUGAL, HEAVY};

fn frugal(args: &[&str]) -> Output {
    crate::util::frugal()
        .args(["bench", "locality"])
        .args(args)
        .output()
        .expect("the frugal binary runs")
}

fn run_json(args: &[&str]) -> (LocalityReport, serde_json::Value, String) {
    let _heavy = HEAVY.lock();
    let dir = tempdir();
    let path = dir.path().join("locality.json");
    let mut all: Vec<&str> = args.to_vec();
    let p = path.to_str().expect("the temporary path is UTF-8");
    all.extend(["--json", p]);
    let out = frugal(&all);
    assert!(
        out.status.success(),
        "frugal bench locality failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&path).expect("the report was written");
    let report: LocalityReport = serde_json::from_str(&text).expect("the report parses");
    let again: LocalityReport =
        serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    assert_eq!(report, again, "what we write is what we read");
    let value = serde_json::from_str(&text).unwrap();
    (
        report,
        value,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn quick_end_to_end_with_the_json_schema() {
    // Quick profile with small sets so CI stays fast; the huge-page part on 16 MiB.
    let (report, json, stdout) = run_json(&[
        "--quick",
        "--no-sim",
        "--sizes",
        "16K,1M",
        "--thp-size",
        "16M",
    ]);
    assert!(stdout.contains("ns per access"), "no table:\n{stdout}");
    assert_eq!(report.schema_version, 1);
    assert!(report.quick);
    assert_eq!(report.rows.len(), Pattern::ALL.len() * 2);
    for row in &report.rows {
        let t = &row.time_ns;
        assert!(
            t.median > 0.0 && t.min <= t.median && t.median <= t.max,
            "{row:?}"
        );
        assert_eq!(t.samples.len(), 15);
        let tlb = row.tlb_sim.as_ref().expect("every row runs the TLB model");
        assert!(tlb.simulated);
        assert!(tlb.page_4k.accesses > 0 && tlb.page_4k.walks <= tlb.page_4k.l1_misses);
        // A 2 MiB page covers whatever a 4 KiB page does: never more walks.
        assert!(tlb.page_2m.walks <= tlb.page_4k.walks, "{row:?}");
    }
    // Known answers the model must give at 1 MiB (256 pages, beyond a 64-entry L1 dTLB):
    // one page per access for the 4 KiB stride, one miss per 512 words sequentially.
    let stride = report.row(Pattern::Stride4k, 1 << 20).unwrap();
    let t = stride.tlb_sim.as_ref().unwrap();
    if report.tlb.l1_4k.entries < 256 {
        assert_eq!(t.page_4k.l1_misses, t.page_4k.accesses);
    }
    let seq = report.row(Pattern::Seq, 1 << 20).unwrap();
    let t = seq.tlb_sim.as_ref().unwrap();
    let per_page = t.page_4k.accesses as f64 / 512.0;
    if report.tlb.l1_4k.entries < 256 {
        assert!(
            (t.page_4k.l1_misses as f64 - per_page).abs() <= 1.0,
            "{t:?}"
        );
    }
    // Without simulation the cache columns are absent unless a PMU counted them.
    match report.counter_source {
        CounterSource::Hardware => {}
        _ => assert!(report.rows.iter().all(|r| r.counters.is_none())),
    }
    // Huge pages: 4k and thp rows for two patterns, AnonHugePages reported for 4k as 0.
    let hp = &report.huge_pages;
    assert_eq!(hp.status, "measured");
    assert_eq!(hp.rows.len(), 4);
    for row in hp.rows.iter().filter(|r| r.pages == "4k") {
        assert_eq!(
            row.anon_huge_bytes,
            Some(0),
            "MADV_NOHUGEPAGE got huge pages"
        );
    }
    // NUMA facts and claims.
    assert!(json["numa"]["note"].as_str().unwrap().contains("node"));
    let ids: Vec<&str> = report.claims.iter().map(|c| c.id.as_str()).collect();
    for id in [
        "3.1-tlb-sequential",
        "3.1-tlb-random",
        "3.1-hot-struct-one-line",
        "3.1-soa-vs-list",
        "3.2-reclaim-write-migration",
        "3.2-zone-reclaim-snippet",
        "3.2-numa-deterministic-release",
    ] {
        assert!(ids.contains(&id), "claim {id} missing: {ids:?}");
    }
    // The sequential TLB rate comes from the model (or PMU) and is computed, not fixed.
    let seq_claim = report
        .claims
        .iter()
        .find(|c| c.id == "3.1-tlb-sequential")
        .unwrap();
    assert!(seq_claim.measured_value.is_some());
    // Field names of the schema.
    for key in [
        "machine",
        "caches",
        "tlb",
        "counter_source",
        "rows",
        "huge_pages",
        "numa",
        "claims",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert!(json["rows"][0]["tlb_sim"]["page_2m"]["walks"].is_u64());
}

#[test]
fn simulated_figures_are_marked() {
    let valgrind = Command::new("valgrind").arg("--version").output();
    if valgrind.is_err() {
        eprintln!("skipped: valgrind is not installed (scripts/deps.sh installs it)");
        return;
    }
    let (report, json, stdout) = run_json(&[
        "--quick",
        "--sizes",
        "1M",
        "--patterns",
        "hot-aligned,hot-straddle",
        "--no-huge-pages",
    ]);
    if report.counter_source == CounterSource::Hardware {
        eprintln!("skipped: this machine has a PMU, nothing is simulated");
        return;
    }
    assert_eq!(report.counter_source, CounterSource::Simulated);
    assert_eq!(json["counter_source"], "simulated");
    assert!(report
        .counter_note
        .as_deref()
        .unwrap()
        .contains("SIMULATED"));
    assert!(stdout.contains("SIMULATED"), "{stdout}");
    let misses = |p| {
        let c = report.row(p, 1 << 20).unwrap().counters.clone().unwrap();
        assert_eq!(c.source, CounterSource::Simulated);
        assert!(c.dtlb_misses.is_none(), "valgrind has no TLB model");
        c.l1d_misses.unwrap()
    };
    // Random 64-byte structs over 1 MiB, far beyond any L1d: about one line fill each when
    // aligned, two when straddling a line boundary (valgrind counts lines, deterministically).
    let aligned = misses(Pattern::HotAligned);
    let straddle = misses(Pattern::HotStraddle);
    assert!((0.8..=1.2).contains(&aligned), "{aligned}");
    assert!((1.6..=2.2).contains(&straddle), "{straddle}");
    // The table stars simulated cells.
    let line = stdout
        .lines()
        .find(|l| l.starts_with("hot-aligned") && l.contains('*'))
        .unwrap_or_else(|| panic!("no starred hot-aligned row:\n{stdout}"));
    assert!(line.contains("1 MiB"), "{line}");
    let claim = report
        .claims
        .iter()
        .find(|c| c.id == "3.1-hot-struct-one-line")
        .unwrap();
    assert_eq!(claim.verdict, Verdict::Holds);
    assert!(claim.subject.contains("SIMULATED"), "{}", claim.subject);
}

#[test]
fn bad_input_exits_2_with_one_line() {
    for args in [
        &["--sizes", "0"][..],
        &["--sizes", "NaN"],
        &["--sizes", "16K,-4K"],
        &["--sizes", "1K"],
        &["--sizes", "1000000G"],
        &["--thp-size", "1000000G"],
        &["--thp-size", "1M"],
        &["--thp-size", "64T"],
        &["--patterns", "zigzag"],
    ] {
        let out = frugal(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        // One line (clap's closing hint aside).
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("For more information"))
            .collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        assert!(
            lines[0].starts_with("frugal: error: ") || lines[0].starts_with("error: "),
            "{stderr}"
        );
        assert!(out.stdout.is_empty(), "nothing measured for {args:?}");
    }
    // In range at parse time (up to 64 TiB), beyond the memory here: refused before starting.
    let out = frugal(&["--sizes", "64T"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("larger than the memory available"));
    let out = frugal(&["--thp-size", "1M"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("too small: a transparent huge page"));
}

/// The TLB model's address source, checked against an independent one: valgrind lackey's trace
/// of the simulated child (`--trace-mem=yes`) must read the same words, in the same order, as
/// the in-process trace the model is fed.
#[test]
fn the_traced_addresses_match_valgrind_lackey() {
    let _heavy = HEAVY.lock();
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("skipped: valgrind is not installed (scripts/deps.sh installs it)");
        return;
    }
    use std::io::{BufRead, Read};
    // Two seeded walks: if the model's trace were not what the binary reads, these would differ.
    for (pattern, key) in [
        (Pattern::ChaseShuffled, "chase-shuffled"),
        (Pattern::Random, "random"),
    ] {
        let (size, accesses) = (64u64 << 10, 2_000u64);
        // lackey's log streams through a pipe (it logs every instruction too: ~100 MB).
        let mut child = Command::new("valgrind")
            .arg("--tool=lackey")
            .arg("--trace-mem=yes")
            .arg("--log-fd=2")
            .arg(FRUGAL)
            .args(["bench", "locality", "--sim-child", key])
            .arg(size.to_string())
            .arg(accesses.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("valgrind runs");
        let all_loads: Vec<usize> = std::io::BufReader::new(child.stderr.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| {
                let rest = l.strip_prefix(" L ")?;
                usize::from_str_radix(rest.split(',').next()?, 16).ok()
            })
            .collect();
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        assert!(child.wait().unwrap().success(), "{key}: {stdout}");
        let field = |name: &str| -> usize {
            let v = stdout
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {stdout}"));
            match v.strip_prefix("0x") {
                Some(hex) => usize::from_str_radix(hex, 16).unwrap(),
                None => v.parse().unwrap(),
            }
        };
        let (start, len, warm) = (
            field("region_start"),
            field("region_len"),
            field("warmup_accesses"),
        );
        // Data loads inside the working set, in order (" L addr,size"); the set-up only
        // stores there, so the first `warm` loads are the warm-up pass.
        let loads: Vec<usize> = all_loads
            .into_iter()
            .filter(|&a| (start..start + len).contains(&a))
            .map(|a| a - start)
            .collect();
        let ours = frugal_workloads::locality::trace_offsets(pattern, size, accesses).unwrap();
        assert_eq!(ours.len(), accesses as usize, "{key}: one word per access");
        assert!(
            loads.len() >= warm + ours.len(),
            "{key}: {} loads",
            loads.len()
        );
        assert_eq!(
            &loads[warm..warm + ours.len()],
            &ours[..],
            "{key}: lackey's loads differ from the model's trace"
        );
    }
}
