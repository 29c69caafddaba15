//! `frugal report` end to end, once (it runs every experiment): a quick run on a machine where
//! Go is missing (a stand-in `go` that fails, first on PATH) and, here, the PMU too; the page
//! re-rendered from its JSON (`--from`) equals the page of the run; and the page opened in a
//! real browser (Debian's chromium, headless): no console errors, every section present, every
//! plot an SVG with its axis titles, a screenshot that is not blank.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use frugal_report::{FullReport, StepStatus, SECTIONS};

use crate::util::{frugal, HEAVY};

/// A directory whose `go` fails like a missing toolchain, to put first on PATH.
fn no_go_path(dir: &Path) -> String {
    let go = dir.join("go");
    std::fs::write(
        &go,
        "#!/bin/sh\necho 'go: not installed (test stand-in)' >&2\nexit 127\n",
    )
    .expect("the stand-in can be written");
    std::fs::set_permissions(&go, std::fs::Permissions::from_mode(0o755))
        .expect("the stand-in can be made executable");
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn chromium() -> &'static str {
    for path in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(path).exists() {
            return path;
        }
    }
    panic!("chromium is not installed: run scripts/deps.sh (apt-get install chromium)");
}

/// Runs headless chromium on `page` with `args`; returns (stdout, stderr).
fn headless(page: &Path, profile: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn quick_report_renders_reloads_and_opens_in_a_browser() {
    let _heavy = HEAVY.lock();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let out_dir = tmp.path().join("out");
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let out = frugal()
        .args(["report", "--quick", "-q", "-o"])
        .arg(&out_dir)
        .env("PATH", no_go_path(&bin))
        .output()
        .expect("frugal runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "frugal report failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("claims ledger:"), "{stdout}");
    assert!(stdout.contains("report.html"), "{stdout}");

    // The JSON: versioned, every step accounted for, Go skipped with the reason.
    let text = std::fs::read_to_string(out_dir.join("report.json")).expect("report.json");
    let report: FullReport = serde_json::from_str(&text).expect("report.json parses");
    assert_eq!(report.schema, "frugal-report");
    assert_eq!(report.schema_version, frugal_report::SCHEMA_VERSION);
    let go = report
        .steps
        .iter()
        .find(|s| s.id == "go")
        .expect("a missing Go toolchain is a skipped step");
    assert_eq!(go.status, StepStatus::Skipped);
    assert!(go.reason.as_deref().unwrap_or("").contains("go"));
    if !report.machine.pmu {
        let pmu = report
            .steps
            .iter()
            .find(|s| s.id == "pmu")
            .expect("pmu step");
        assert_eq!(pmu.status, StepStatus::Skipped);
        assert!(pmu.reason.as_deref().unwrap_or("").contains("PMU"));
    }
    for id in ["defer", "tasks", "io", "http", "locality", "rightsize"] {
        let step = report.steps.iter().find(|s| s.id == id).expect(id);
        assert_eq!(step.status, StepStatus::Ran, "{id}: {:?}", step.reason);
    }
    assert!(report.defer.is_some() && report.service.is_some() && report.rightsize.is_some());
    let bridge = report.bridge.as_ref().expect("the bridge is computed");
    assert!(!bridge.rows.is_empty());
    for row in &bridge.rows {
        // Never below demand.
        assert!(f64::from(row.vcpus_bought) >= row.vcpus_needed);
        assert!(row.usd_per_month > 0.0);
    }
    // Where the strategies part (or that they never do below the search's end): in the JSON,
    // the headline of the terminal text, and (below) the page.
    if bridge.rows.len() > 1 {
        let parting = bridge.parting.as_ref().expect("two strategies or more");
        let sentence = parting.sentence();
        assert!(bridge.verdict.contains(&sentence), "{}", bridge.verdict);
        assert!(
            stdout.contains(&format!("{} and {}", parting.cheap, parting.dear)),
            "{stdout}"
        );
        if let Some(at) = &parting.at {
            assert!(
                stdout.contains(&format!(
                    "part at {} req/s",
                    frugal_output::units::thousands_f(at.rps)
                )),
                "{stdout}"
            );
        } else {
            assert!(stdout.contains("never part below"), "{stdout}");
        }
    }
    // Go rows are absent, and their claims say why rather than pretending.
    let defer = report.defer.as_ref().unwrap();
    assert!(defer.rows.iter().all(|r| r.lang != "go"));
    let size = report
        .claims
        .iter()
        .find(|c| c.claim.id == "1-go-binary-size")
        .expect("the binary-size claim has a row");
    assert_eq!(
        size.claim.verdict,
        frugal_workloads::claims::Verdict::NotMeasurable
    );
    assert!(!size.claim.why.is_empty());
    assert!(report.claims.iter().all(|c| !c.command.is_empty()));
    // Article 4.2: judged from bench llc when it ran (valgrind here), else not measurable.
    let llc_step = report
        .steps
        .iter()
        .find(|s| s.id == "llc")
        .expect("llc step");
    let llc_row = report
        .claims
        .iter()
        .find(|c| c.claim.id == "4.2-llc-dram")
        .expect("the 4.2 row");
    if llc_step.status == StepStatus::Ran {
        let llc = report.llc.as_ref().expect("bench llc's result is kept");
        assert!(
            llc.simulated || report.machine.pmu,
            "no PMU, yet not simulated"
        );
        assert_ne!(
            llc_row.claim.verdict,
            frugal_workloads::claims::Verdict::NotMeasurable
        );
    } else {
        assert_eq!(
            llc_step.status,
            StepStatus::Skipped,
            "{:?}",
            llc_step.reason
        );
        assert!(llc_row.claim.why.contains("bench llc did not run"));
    }

    // --from renders the same page from the JSON alone.
    let again = tmp.path().join("again");
    let status = frugal()
        .args(["report", "--from"])
        .arg(&out_dir)
        .arg("-o")
        .arg(&again)
        .status()
        .expect("frugal runs");
    assert!(status.success());
    let page = std::fs::read_to_string(out_dir.join("report.html")).expect("report.html");
    let page_again = std::fs::read_to_string(again.join("report.html")).expect("re-rendered");
    assert!(
        page == page_again,
        "the page from --from differs from the run's page"
    );
    if let Some(parting) = bridge.parting.as_ref() {
        let shown = frugal_report::esc(&parting.sentence());
        assert!(
            page.contains(&shown),
            "the page says where the strategies part: {shown}"
        );
    }

    // A report.json written before the bridge had a `parting` still re-renders.
    let older = tmp.path().join("older");
    std::fs::create_dir(&older).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    if let Some(b) = value["bridge"].as_object_mut() {
        b.remove("parting");
    }
    std::fs::write(older.join("report.json"), value.to_string()).unwrap();
    let status = frugal()
        .args(["report", "--from"])
        .arg(&older)
        .arg("-q")
        .status()
        .expect("frugal runs");
    assert!(
        status.success(),
        "a report.json without bridge.parting loads"
    );
    assert!(older.join("report.html").exists());

    // The page in a real browser.
    let html = out_dir.join("report.html");
    let profile = tmp.path().join("chromium-profile");
    let (dom, log) = headless(&html, &profile, &["--dump-dom"]);
    for line in log.lines() {
        assert!(
            !(line.contains("CONSOLE") || line.contains("Failed to load resource")),
            "console output from the page: {line}"
        );
    }
    for (id, title) in SECTIONS {
        assert!(
            dom.contains(&format!("<section id=\"{id}\">")),
            "section {id} ({title}) missing"
        );
    }
    // Every step that did not run is on the page with its reason (Go is missing here).
    for step in report.steps.iter().filter(|s| s.status != StepStatus::Ran) {
        let reason = step.reason.as_deref().unwrap_or("");
        assert!(
            dom.contains(&frugal_report::esc(reason)),
            "the page does not say why {} did not run",
            step.id
        );
    }
    let figures: Vec<&str> = dom.split("<figure class=\"plot\"").skip(1).collect();
    assert!(figures.len() >= 5, "only {} plots", figures.len());
    for fig in &figures {
        let fig = &fig[..fig.find("</figure>").expect("figures are closed")];
        assert!(fig.contains("<svg"), "a plot without an SVG");
        for attr in ["data-x-title=\"", "data-y-title=\""] {
            let start = fig.find(attr).expect("axis titles are recorded") + attr.len();
            let title = &fig[start..start + fig[start..].find('"').unwrap()];
            assert!(!title.is_empty());
            let svg = &fig[fig.find("<svg").unwrap()..];
            assert!(
                svg.contains(title),
                "axis title {title:?} is not drawn in its plot"
            );
        }
    }
    let shot = tmp.path().join("shot.png");
    headless(
        &html,
        &profile,
        &[
            "--window-size=1100,3000",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&shot).expect("a screenshot was written"),
    ));
    let mut reader = decoder.read_info().expect("the screenshot is a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane PNG size")];
    let info = reader.next_frame(&mut buf).expect("the PNG decodes");
    let bytes = &buf[..info.buffer_size()];
    let px = info.color_type.samples();
    let first = &bytes[..px];
    let differing = bytes.chunks(px).filter(|p| *p != first).count();
    assert!(
        differing > bytes.len() / px / 50,
        "the screenshot is (nearly) blank: {differing} pixels differ from the first"
    );
}

#[test]
fn from_refuses_what_is_not_a_report() {
    let tmp = tempfile::tempdir().unwrap();
    // Missing.
    let out = frugal()
        .args(["report", "--from"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("report.json"), "{err}");
    // Another JSON.
    std::fs::write(tmp.path().join("report.json"), "{\"schema_version\": 1}").unwrap();
    let out = frugal()
        .args(["report", "--from"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a frugal report"));
    // A bad rate is a usage error.
    let out = frugal().args(["report", "--rps", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
