//! Integration tests of frugal-rightsize through its public API: golden outputs on small fixed
//! inputs, the demo's expected findings, and properties that hold for all inputs.

use frugal_output::{Render, Style};
use frugal_rightsize::{
    analyze, demo, parse_csv, parse_json, read_file, Catalog, Config, Finding, Policy, Report,
    SeriesSet,
};
use proptest::prelude::*;

/// The forms a report renders to: terminal text (no colour), CSV, HTML, JSON.
#[derive(Clone, Copy)]
enum Format {
    Table,
    Csv,
    Html,
    Json,
}

fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Table => report.document().to_text(&Style::plain()),
        Format::Csv => report
            .csv_table()
            .expect("the rightsize report has a CSV form")
            .to_csv(),
        Format::Html => report.to_html(),
        Format::Json => serde_json::to_string_pretty(report).unwrap(),
    }
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// `hours` of 5-minute samples for one workload: CPU follows `cpu(i)`, memory constant.
fn series_csv(
    workload: &str,
    itype: &str,
    hours: i64,
    mem_gib: f64,
    cpu: impl Fn(i64) -> f64,
) -> String {
    let mut s = String::new();
    for i in 0..hours * 12 {
        s += &format!(
            "{},{workload},{itype},{:.4},{:.0}\n",
            1_714_521_600 + i * 300,
            cpu(i),
            mem_gib * GIB
        );
    }
    s
}

fn analyze_csv(csv: &str, config: &Config) -> Report {
    let mut set = SeriesSet::new();
    parse_csv("fixed.csv", csv.as_bytes(), &mut set).expect("valid CSV");
    analyze(&set.into_series(), &Catalog::embedded(), config)
}

/// The small fixed input of the golden tests: three workloads, 36 hours.
fn golden_input() -> String {
    let mut csv = String::from("timestamp,workload,instance_type,cpu_cores,memory_bytes\n");
    // Mean ~25% of 4 vCPUs, but every 4 hours a 15-minute burst to 3.2 cores.
    csv += &series_csv("bursty", "m7i.xlarge", 36, 6.0, |i| {
        if i % 48 < 3 {
            3.2
        } else {
            0.8
        }
    });
    // Steady 0.5 cores on 8 vCPUs.
    csv += &series_csv("idle", "m7i.2xlarge", 36, 12.0, |i| {
        0.4 + 0.1 * ((i % 12) as f64 / 11.0)
    });
    // Only 10 hours of data.
    csv += &series_csv("short", "c7i.large", 10, 1.0, |_| 0.3);
    csv
}

fn check_golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing; run with UPDATE_GOLDEN=1 once and review it",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "golden {name} differs; rerun with UPDATE_GOLDEN=1 if intended"
    );
}

#[test]
fn golden_table_csv_and_article_policy() {
    let report = analyze_csv(&golden_input(), &Config::default());
    check_golden("fixed_table.txt", &render(&report, Format::Table));
    check_golden("fixed.csv", &render(&report, Format::Csv));
    let article = analyze_csv(
        &golden_input(),
        &Config {
            policy: Policy::Article,
            ..Config::default()
        },
    );
    check_golden("fixed_article_table.txt", &render(&article, Format::Table));
}

#[test]
fn fixed_input_findings() {
    let report = analyze_csv(&golden_input(), &Config::default());
    let by = |w: &str| {
        report
            .recommendations
            .iter()
            .find(|r| r.workload == w)
            .unwrap()
    };

    // bursty: P99.5 of 5-min maxima is 3.2 cores = 80% of 4 vCPUs: 3.84 cores with headroom; nothing
    // cheaper in x86 has 4 vCPUs and >= 6.9 GiB except... c7i.xlarge has 8 GiB and fits.
    let bursty = by("bursty");
    assert_eq!(bursty.finding, Finding::OverProvisioned);
    let rec = bursty.recommended.as_ref().unwrap();
    assert_eq!(rec.instance_type, "c7i.xlarge");
    assert!(rec.cpu_utilization <= Config::default().cpu_ceiling());
    // The article: mean (3*3.2 + 45*0.8)/48/4 = 23.75% < 35% -> m7i.large, where the bursts need 160%.
    let article = bursty.article.as_ref().unwrap();
    assert_eq!(article.instance_type, "m7i.large");
    assert!((article.mean_cpu_utilization - 0.2375).abs() < 1e-3);
    let target = article.target.as_ref().unwrap();
    assert!(!target.fits && target.cpu_risk == 4, "{target:?}");
    assert!(bursty
        .disagreement
        .as_ref()
        .unwrap()
        .contains("160% of 2 vCPUs"));
    // Savings: (0.2016 - 0.1785) * 730 = 16.863 per month.
    assert!((bursty.monthly_savings_usd - 16.863).abs() < 1e-6);
    assert!((bursty.annual_savings_usd - 0.0231 * 8760.0).abs() < 1e-6);

    let idle = by("idle");
    assert_eq!(idle.finding, Finding::OverProvisioned);
    // 0.5 cores fit 2 vCPUs, but 12 GiB + 15% does not fit m7i.large's 8 GiB: r7i.large (16 GiB).
    assert_eq!(
        idle.recommended.as_ref().unwrap().instance_type,
        "r7i.large"
    );

    let short = by("short");
    assert_eq!(short.finding, Finding::InsufficientData);
    assert!(short.recommended.is_none());
    assert_eq!(short.monthly_savings_usd, 0.0);
    assert!(short
        .reason
        .as_ref()
        .unwrap()
        .contains("need at least 30 h and 100"));
}

#[test]
fn demo_sample_shows_the_article_failing() {
    let mut report = analyze(
        &demo::sample().into_series(),
        &Catalog::embedded(),
        &Config::default(),
    );
    report.synthetic = true;
    let by = |w: &str| {
        report
            .recommendations
            .iter()
            .find(|r| r.workload == w)
            .unwrap()
    };
    assert_eq!(report.recommendations.len(), 5);
    // checkout-api: both rules halve it (m7i.xlarge -> m7i.large), and the SLA screen agrees.
    let checkout = by("checkout-api");
    assert!(
        checkout.disagreement.is_none(),
        "{:?}",
        checkout.disagreement
    );
    assert_eq!(
        checkout.recommended.as_ref().unwrap().instance_type,
        "m7i.large"
    );
    assert!(
        checkout
            .recommended
            .as_ref()
            .unwrap()
            .sla
            .as_ref()
            .unwrap()
            .risk
            <= 2
    );
    // report-batch: mean 10% invites a step down, but its batch peaks need 94% of 4 vCPUs.
    let batch = by("report-batch");
    assert!(batch
        .disagreement
        .as_ref()
        .unwrap()
        .contains("of 4 vCPUs, above the 83% ceiling"));
    assert_eq!(
        batch.recommended.as_ref().unwrap().instance_type,
        "c7i.2xlarge"
    );
    assert_eq!(by("search-indexer").finding, Finding::UnderProvisioned);
    let cache = by("session-cache");
    assert!(
        cache.disagreement.as_ref().unwrap().contains("peak memory"),
        "{:?}",
        cache.disagreement
    );
    assert_eq!(by("new-service").finding, Finding::InsufficientData);
    let table = render(&report, Format::Table);
    assert!(table.starts_with("SYNTHETIC SAMPLE DATA"));
    assert!(table.contains("as of 2026-07-20"));
    let html = render(&report, Format::Html);
    assert_eq!(
        html.matches("<svg").count(),
        10,
        "a CPU and a memory plot each"
    );
    assert!(html.contains("Synthetic sample data"));
    let json: serde_json::Value = serde_json::from_str(&render(&report, Format::Json)).unwrap();
    assert_eq!(json["recommendations"].as_array().unwrap().len(), 5);
    // Deterministic.
    let again = analyze(
        &demo::sample().into_series(),
        &Catalog::embedded(),
        &Config::default(),
    );
    assert_eq!(render(&again, Format::Json), {
        let mut r = report.clone();
        r.synthetic = false;
        render(&r, Format::Json)
    });
}

#[test]
fn demo_csv_round_trips() {
    let mut bytes = Vec::new();
    demo::write_sample_csv(&mut bytes).unwrap();
    let mut set = SeriesSet::new();
    parse_csv("demo.csv", bytes.as_slice(), &mut set).unwrap();
    let from_csv = analyze(&set.into_series(), &Catalog::embedded(), &Config::default());
    let direct = analyze(
        &demo::sample().into_series(),
        &Catalog::embedded(),
        &Config::default(),
    );
    for (a, b) in from_csv.recommendations.iter().zip(&direct.recommendations) {
        assert_eq!(a.finding, b.finding, "{}", a.workload);
        assert_eq!(
            a.recommended.as_ref().map(|p| &p.instance_type),
            b.recommended.as_ref().map(|p| &p.instance_type)
        );
    }
}

#[test]
fn unknown_type_and_bad_rows_are_reported_per_workload() {
    let mut csv = String::from("timestamp,workload,instance_type,cpu_cores,memory_bytes\n");
    csv += &series_csv("mystery", "x9.huge", 36, 1.0, |_| 1.0);
    csv += &series_csv("ok", "m7i.large", 36, 1.0, |_| 0.5);
    csv += "1714521600,ok,m7i.large,0.5,1\n"; // back in time
    let report = analyze_csv(&csv, &Config::default());
    let r = &report.recommendations;
    assert_eq!(r[0].finding, Finding::Skipped);
    assert!(r[0]
        .reason
        .as_ref()
        .unwrap()
        .contains("unknown instance type x9.huge"));
    assert_eq!(r[1].finding, Finding::Skipped);
    assert!(
        r[1].reason
            .as_ref()
            .unwrap()
            .contains("out-of-order timestamp at line 866"),
        "{:?}",
        r[1].reason
    );
}

#[test]
fn files_are_read_by_content_and_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("data.txt");
    std::fs::write(
        &json,
        r#"[{"timestamp": "2024-05-01T00:00:00Z", "workload": "a", "instance_type": "m7i.large", "cpu_cores": 1, "memory_bytes": 1}]"#,
    )
    .unwrap();
    let mut set = SeriesSet::new();
    assert_eq!(read_file(&json, &mut set).unwrap(), 1);
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "timestamp,workload,instance_type,cpu_cores,memory_bytes\n1,a,m7i.large,x,1\n",
    )
    .unwrap();
    let err = read_file(&bad, &mut SeriesSet::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("{}: line 2: cpu_cores `x`", bad.display())),
        "{err}"
    );
    let missing = dir.path().join("nope.csv");
    let err = read_file(&missing, &mut SeriesSet::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot read") && err.contains("nope.csv"),
        "{err}"
    );
}

#[test]
fn sla_screen_rejects_an_overloaded_candidate() {
    // 4 vCPUs, 300 req/s at 5 ms CPU each = 1.5 cores busy: 75% of 2 vCPUs fits by CPU (below
    // the 83% ceiling), but an M/M/2 queue at 75% misses a 40 ms target for more than 0.5%.
    let mut csv = String::from(
        "timestamp,workload,instance_type,cpu_cores,memory_bytes,instances,requests_per_second,latency_p99_ms\n",
    );
    for i in 0..36 * 12 {
        csv += &format!(
            "{},api,m7i.xlarge,1.5,{},2,300,30\n",
            1_714_521_600 + i * 300,
            GIB
        );
    }
    let config = Config {
        latency_target_ms: Some(40.0),
        ..Config::default()
    };
    let report = analyze_csv(&csv, &config);
    let r = &report.recommendations[0];
    let svc = r.usage.as_ref().unwrap().service.as_ref().unwrap();
    assert!((svc.cpu_seconds_per_request - 0.005).abs() < 1e-12);
    let two = r
        .candidates
        .iter()
        .find(|p| p.instance_type == "c7i.large")
        .unwrap();
    assert_eq!(two.cpu_risk, 2, "CPU alone would allow it");
    let sla = two.sla.as_ref().unwrap();
    assert!(sla.fraction_within_target < 0.995 && !two.fits, "{sla:?}");
    assert_eq!(r.recommended.as_ref().unwrap().instance_type, "c7i.xlarge");
    assert!(
        (r.monthly_savings_usd - (0.2016 - 0.1785) * 730.0 * 2.0).abs() < 1e-6,
        "x 2 instances"
    );
}

#[test]
fn json_and_csv_inputs_agree() {
    let csv = format!(
        "timestamp,workload,instance_type,cpu_cores,memory_bytes\n{}",
        series_csv("a", "m7i.xlarge", 31, 2.0, |i| (i % 7) as f64 * 0.3)
    );
    let mut rows = Vec::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        rows.push(serde_json::json!({"timestamp": f[0].parse::<i64>().unwrap(), "workload": f[1],
            "instance_type": f[2], "cpu_cores": f[3].parse::<f64>().unwrap(), "memory_bytes": f[4].parse::<f64>().unwrap()}));
    }
    let mut a = SeriesSet::new();
    parse_csv("a.csv", csv.as_bytes(), &mut a).unwrap();
    let mut b = SeriesSet::new();
    parse_json(
        "a.json",
        serde_json::to_vec(&rows).unwrap().as_slice(),
        &mut b,
    )
    .unwrap();
    assert_eq!(a.series()[0].windows, b.series()[0].windows);
}

/// A series of `windows` 5-minute samples with CPU `scale * shape[i]` on `itype`.
fn synthetic(itype: &str, shape: &[f64], scale: f64, mem_gib: f64) -> SeriesSet {
    let mut set = SeriesSet::new();
    for (i, s) in shape.iter().enumerate() {
        let sample = frugal_rightsize::Sample {
            unix_ms: 1_714_521_600_000 + i as i64 * 300_000,
            workload: "w",
            instance_type: itype,
            cpu_cores: s * scale,
            memory_bytes: mem_gib * GIB,
            instances: None,
            requests_per_second: None,
            latency_p99_ms: None,
        };
        set.push("prop", &sample, &|| "generated".to_owned());
    }
    set
}

fn types() -> impl Strategy<Value = String> {
    prop::sample::select(
        Catalog::embedded()
            .instances
            .iter()
            .map(|i| i.name.clone())
            .collect::<Vec<_>>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn never_projects_above_the_ceiling(
        itype in types(),
        shape in prop::collection::vec(0.0f64..1.0, 400..500),
        scale in 0.0f64..40.0,
        mem in 0.1f64..300.0,
        headroom in 0.0f64..1.0,
        arch in any::<bool>(),
    ) {
        let config = Config { cpu_headroom: headroom, allow_arch_change: arch, ..Config::default() };
        let report = analyze(&synthetic(&itype, &shape, scale, mem).into_series(), &Catalog::embedded(), &config);
        let r = &report.recommendations[0];
        if let Some(p) = r.recommended.as_ref() {
            prop_assert!(p.cpu_utilization <= config.cpu_ceiling() + 1e-9, "{p:?}");
            prop_assert!(p.memory_utilization <= config.memory_ceiling() + 1e-9, "{p:?}");
            prop_assert!(p.cpu_cores >= r.usage.as_ref().unwrap().percentile_cpu_cores * 0.999_999 || p.family != r.current.as_ref().unwrap().family);
        }
        match r.finding {
            Finding::Optimized | Finding::OverProvisioned => prop_assert!(r.current.as_ref().unwrap().fits),
            Finding::UnderProvisioned | Finding::NoFit => prop_assert!(!r.current.as_ref().unwrap().fits),
            _ => {}
        }
    }

    #[test]
    fn more_usage_never_yields_a_cheaper_or_smaller_type(
        itype in types(),
        shape in prop::collection::vec(0.0f64..1.0, 400..450),
        scale in 0.0f64..30.0,
        more in 1.0f64..3.0,
        mem in 0.1f64..100.0,
    ) {
        let catalog = Catalog::embedded();
        let config = Config::default();
        let pick = |s: f64| {
            let report = analyze(&synthetic(&itype, &shape, s, mem).into_series(), &catalog, &config);
            let r = &report.recommendations[0];
            match r.finding {
                Finding::NoFit => None,
                Finding::Optimized => {
                    let c = r.current.as_ref().unwrap();
                    Some((c.usd_per_hour, c.vcpus, c.family.clone()))
                }
                _ => r.recommended.as_ref().map(|p| (p.usd_per_hour, p.vcpus, p.family.clone())),
            }
        };
        let (low, high) = (pick(scale), pick(scale * more));
        if let (Some(low), Some(high)) = (&low, &high) {
            prop_assert!(high.0 >= low.0, "{low:?} -> {high:?}");
            if low.2 == high.2 {
                prop_assert!(high.1 >= low.1, "{low:?} -> {high:?}");
            }
        }
        // Once nothing fits, more usage cannot make something fit.
        if low.is_none() {
            prop_assert!(high.is_none());
        }
    }

    #[test]
    fn csv_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut set = SeriesSet::new();
        let _ = parse_csv("fuzz.csv", bytes.as_slice(), &mut set);
    }

    #[test]
    fn csv_parser_never_panics_on_near_valid_rows(
        rows in prop::collection::vec(
            (prop::sample::select(vec!["1714521600", "0", "253402300799", "-5", "2024-05-01T00:00:00Z", "x", "", "1e30", "99999999999999999999"]),
             prop::sample::select(vec!["a", "b", ""]),
             prop::sample::select(vec!["m7i.large", "nope", ""]),
             prop::sample::select(vec!["0.5", "NaN", "-1", "inf", "", "abc", "1e308"]),
             prop::sample::select(vec!["1000", "-1", "", "x"])), 0..20),
    ) {
        let mut text = String::from("timestamp,workload,instance_type,cpu_cores,memory_bytes\n");
        for r in &rows {
            text += &format!("{},{},{},{},{}\n", r.0, r.1, r.2, r.3, r.4);
        }
        let mut set = SeriesSet::new();
        if parse_csv("near.csv", text.as_bytes(), &mut set).is_ok() {
            // No sufficiency limits, so that every row reaches the model and the plots.
            let config = Config { min_hours: 0.0, min_windows: 0, ..Config::default() };
            let report = analyze(&set.into_series(), &Catalog::embedded(), &config);
            for format in [Format::Table, Format::Json, Format::Csv, Format::Html] {
                let _ = render(&report, format);
            }
        }
    }

    #[test]
    fn json_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut set = SeriesSet::new();
        let _ = parse_json("fuzz.json", &bytes, &mut set);
    }
}
