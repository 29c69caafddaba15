//! Input validation through the public API: rows in any order, repeated rows, the same file
//! twice and conflicting rows; usage a type cannot have. The property: shuffled and duplicated
//! inputs, in one file or spread over two, give the same analysis as the clean input.

use std::path::{Path, PathBuf};

use frugal_rightsize::{analyze, read_files, Catalog, Config, Finding, Report, SeriesSet};
use proptest::prelude::*;

const HEADER: &str =
    "timestamp,workload,instance_type,cpu_cores,memory_bytes,instances,requests_per_second\n";

/// One CSV row (without newline) per observation.
fn row(t: i64, workload: &str, itype: &str, cpu: f64, mem: f64, rps: Option<f64>) -> String {
    let rps = rps.map_or(String::new(), |r| r.to_string());
    format!("{t},{workload},{itype},{cpu},{mem},2,{rps}")
}

fn write(dir: &Path, name: &str, rows: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{HEADER}{}\n", rows.join("\n"))).unwrap();
    path
}

/// Settings under which a few hours of data are enough for a full analysis.
fn config() -> Config {
    Config {
        min_hours: 0.0,
        min_windows: 1,
        ..Config::default()
    }
}

fn analyse(paths: &[PathBuf]) -> Result<(Report, Vec<String>), frugal_rightsize::Error> {
    let mut set = SeriesSet::new();
    let warnings = read_files(paths, &mut set)?;
    Ok((
        analyze(&set.into_series(), &Catalog::embedded(), &config()),
        warnings,
    ))
}

/// The analysis without what legitimately differs: file names, the repair warnings and the order
/// of the workloads (order of first appearance in the input).
fn essence(report: &Report) -> Report {
    let mut r = report.clone();
    for rec in &mut r.recommendations {
        rec.source.clear();
        rec.notes.retain(|n| !n.starts_with("warning: "));
    }
    r.recommendations
        .sort_by(|a, b| a.workload.cmp(&b.workload));
    // Summed again in this order: a float sum depends on its order.
    r.total_monthly_savings_usd = r
        .recommendations
        .iter()
        .map(|x| x.monthly_savings_usd)
        .sum();
    r.total_annual_savings_usd = r.recommendations.iter().map(|x| x.annual_savings_usd).sum();
    r.summary = frugal_rightsize::Summary::of(&r.recommendations);
    r
}

/// The first workload whose analysis differs, briefly (a whole report is pages long).
fn first_difference(a: &Report, b: &Report) -> String {
    let (a, b) = (essence(a), essence(b));
    if a.recommendations.len() != b.recommendations.len() {
        return format!(
            "{} vs {} workloads",
            a.recommendations.len(),
            b.recommendations.len()
        );
    }
    for (x, y) in a.recommendations.iter().zip(&b.recommendations) {
        if x != y {
            return format!(
                "{}: {:?} {:?} {:?} vs {:?} {:?} {:?}",
                x.workload, x.finding, x.usage, x.reason, y.finding, y.usage, y.reason
            );
        }
    }
    "totals differ".to_owned()
}

fn warnings_of(report: &Report) -> Vec<String> {
    report
        .recommendations
        .iter()
        .flat_map(|r| {
            r.notes
                .iter()
                .filter(|n| n.starts_with("warning: "))
                .cloned()
        })
        .collect()
}

/// A clean input: workloads one after another, each in increasing time order.
fn clean_rows() -> impl Strategy<Value = Vec<String>> {
    let workload = (1usize..120, 0.0f64..3.5, 0.5f64..12.0, any::<bool>());
    prop::collection::vec(workload, 1..4).prop_map(|ws| {
        let mut rows = Vec::new();
        for (w, (n, cpu, mem_gib, rps)) in ws.into_iter().enumerate() {
            let mut t = 1_714_521_600;
            for i in 0..n as i64 {
                // Steps of 1 to 3 minutes, CPU and memory wobbling under an m7i.xlarge's 4 vCPUs
                // and 16 GiB, sometimes a request rate.
                t += 60 * (1 + (i % 3));
                let cpu = (cpu * (1.0 + 0.1 * ((i % 7) as f64 - 3.0) / 3.0)).min(4.0);
                let mem = (mem_gib * (1.0 + 0.01 * (i % 5) as f64) * 1073741824.0).round();
                let rps = rps.then_some(10.0 + (i % 11) as f64);
                rows.push(row(t, &format!("w{w}"), "m7i.xlarge", cpu, mem, rps));
            }
        }
        rows
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn shuffled_and_duplicated_input_gives_the_clean_analysis(
        (clean, messy, cut) in clean_rows().prop_flat_map(|clean| {
            let n = clean.len();
            let dups = prop::collection::vec(0..n, 0..(n / 2 + 1));
            (Just(clean.clone()), dups, 0..=n).prop_flat_map(|(clean, dups, cut)| {
                let mut messy = clean.clone();
                messy.extend(dups.iter().map(|&i| clean[i].clone()));
                (Just(clean), Just(messy).prop_shuffle(), Just(cut))
            })
        })
    ) {
        let dir = tempfile::tempdir().unwrap();
        let clean_path = write(dir.path(), "clean.csv", &clean);
        let (want, warned) = analyse(&[clean_path]).unwrap();
        prop_assert!(warned.is_empty());
        prop_assert!(warnings_of(&want).is_empty(), "{:?}", warnings_of(&want));

        // One messy file.
        let one = write(dir.path(), "messy.csv", &messy);
        let (got, _) = analyse(&[one]).unwrap();
        prop_assert!(essence(&got) == essence(&want), "{}", first_difference(&got, &want));

        // The same rows spread over two files (each with at least one row: an empty file is an
        // error of its own).
        prop_assume!(messy.len() >= 2);
        let cut = cut.clamp(1, messy.len() - 1);
        let a = write(dir.path(), "a.csv", &messy[..cut]);
        let b = write(dir.path(), "b.csv", &messy[cut..]);
        let (got, _) = analyse(&[a, b]).unwrap();
        prop_assert!(essence(&got) == essence(&want), "{}", first_difference(&got, &want));
    }
}

#[test]
fn the_same_file_twice_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<String> = (0..50)
        .map(|i| row(1_714_521_600 + i * 300, "api", "m7i.xlarge", 0.5, 1e9, None))
        .collect();
    let path = write(dir.path(), "a.csv", &rows);
    let (once, _) = analyse(std::slice::from_ref(&path)).unwrap();
    let (twice, warnings) = analyse(&[path.clone(), dir.path().join("./a.csv")]).unwrap();
    assert_eq!(essence(&once), essence(&twice));
    assert_eq!(twice.recommendations[0].finding, Finding::OverProvisioned);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("same file"), "{warnings:?}");

    // A copy is another file: its rows are identical duplicates, merged with a warning.
    let copy = dir.path().join("b.csv");
    std::fs::copy(&path, &copy).unwrap();
    let (merged, warnings) = analyse(&[path, copy]).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(essence(&once), essence(&merged));
    let w = warnings_of(&merged).join("\n");
    assert!(w.contains("50 identical duplicate row(s) merged"), "{w}");
    assert!(w.contains("b.csv: line 2 repeats"), "{w}");
}

#[test]
fn a_conflicting_duplicate_names_both_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows: Vec<String> = (0..10)
        .map(|i| row(1_714_521_600 + i * 300, "api", "m7i.xlarge", 0.5, 1e9, None))
        .collect();
    rows.push(row(
        1_714_521_600 + 3 * 300,
        "api",
        "m7i.xlarge",
        0.7,
        1e9,
        None,
    ));
    let path = write(dir.path(), "c.csv", &rows);
    let err = analyse(&[path]).unwrap_err().to_string();
    assert!(err.contains("c.csv: line 12: workload api"), "{err}");
    assert!(
        err.contains("c.csv: line 5: m7i.xlarge cpu_cores 0.5"),
        "{err}"
    );
}

#[test]
fn usage_the_type_cannot_have_skips_the_workload_with_the_likely_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    for i in 0..50 {
        let t = 1_714_521_600 + i * 300;
        // CPU in percent on a 4-vCPU type.
        rows.push(row(t, "pct", "m7i.xlarge", 20.0 + i as f64, 1e9, None));
        // 3 to 6 cores on a 2-vCPU type: summed over instances?
        rows.push(row(t, "sum", "m7i.large", 3.0 + (i % 4) as f64, 1e9, None));
        // 40 GiB on an 8 GiB type.
        rows.push(row(t, "mem", "m7i.large", 0.5, 40.0 * 1073741824.0, None));
        // Slightly above 2 vCPUs: measurement jitter, accepted.
        rows.push(row(t, "jitter", "m7i.large", 2.05, 1e9, None));
    }
    let path = write(dir.path(), "u.csv", &rows);
    let (report, _) = analyse(&[path]).unwrap();
    let reason = |w: &str| {
        let rec = report
            .recommendations
            .iter()
            .find(|r| r.workload == w)
            .unwrap();
        (rec.finding, rec.reason.clone().unwrap_or_default())
    };
    let (finding, why) = reason("pct");
    assert_eq!(finding, Finding::Skipped);
    assert!(why.contains("percent instead of cores"), "{why}");
    let (finding, why) = reason("sum");
    assert_eq!(finding, Finding::Skipped);
    assert!(why.contains("m7i.large has 2 vCPUs"), "{why}");
    let (finding, why) = reason("mem");
    assert_eq!(finding, Finding::Skipped);
    assert!(why.contains("memory_bytes reaches 40.0 GiB"), "{why}");
    assert_ne!(reason("jitter").0, Finding::Skipped);
}
