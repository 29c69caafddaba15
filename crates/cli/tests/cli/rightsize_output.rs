//! What a fleet owner needs from `frugal rightsize` output: instances and savings columns, why
//! this type (the binding constraint), ranked options, other-architecture types by name, row
//! selection (`--sort`, `--top`, `--workload`) and the fleet summary first.

fn frugal(args: &[&str]) -> (i32, String, String) {
    let out = crate::util::frugal()
        .arg("rightsize")
        .args(args)
        .output()
        .expect("the frugal binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--demo", "--format", "json"];
    all.extend(args);
    let (code, out, err) = frugal(&all);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn table_says_savings_instances_and_the_fleet_first() {
    let (code, out, err) = frugal(&["--demo"]);
    assert_eq!(code, 0, "{err}");
    let fleet = out
        .lines()
        .position(|l| l.starts_with("fleet: 5 workloads"));
    let header = out.lines().position(|l| l.starts_with("workload "));
    assert!(
        fleet.unwrap() < header.unwrap(),
        "summary before the table:\n{out}"
    );
    let header = out.lines().nth(header.unwrap()).unwrap();
    for h in ["instances", "bound by", "savings $/month", "savings $/year"] {
        assert!(header.contains(h), "{header}");
    }
    // checkout-api runs 6 instances.
    assert!(
        out.lines()
            .any(|l| l.starts_with("checkout-api") && l.split_whitespace().nth(2) == Some("6")),
        "{out}"
    );
    assert!(err.contains("5 workloads: 5 analysed"), "{err}");
}

#[test]
fn each_recommendation_says_why_this_type_and_gives_ranked_options() {
    let report = json(&[]);
    let recs = report["recommendations"].as_array().unwrap();
    let checkout = recs
        .iter()
        .find(|r| r["workload"] == "checkout-api")
        .unwrap();
    // c7i.large is cheaper than m7i.large but has 4 GiB for a 5 GiB peak.
    assert_eq!(checkout["bound_by"], "memory");
    let why = checkout["why_this"].as_str().unwrap();
    assert!(why.contains("c7i.large") && why.contains("GiB"), "{why}");
    for r in recs {
        let options = r["options"].as_array().unwrap();
        assert!(options.len() <= 3);
        if r["finding"] == "insufficient-data" {
            assert!(options.is_empty());
            continue;
        }
        assert!(!options.is_empty(), "{}", r["workload"]);
        // Ranked cheapest first; the first is what we pick.
        assert_eq!(options[0]["instance_type"], r["ours"], "{}", r["workload"]);
        for pair in options.windows(2) {
            assert!(pair[0]["usd_per_hour"].as_f64() <= pair[1]["usd_per_hour"].as_f64());
        }
        for o in options {
            assert_eq!(o["fits"], true);
            assert!(o["excluded"].is_null(), "same architecture only");
        }
    }
    // The cheaper Graviton types are named, with their savings.
    let notes = checkout["notes"].to_string();
    assert!(
        notes.contains("cheaper arm64 types also fit: m7g.large (saves $"),
        "{notes}"
    );
}

#[test]
fn sort_top_and_workload_select_rows() {
    let report = json(&["--sort", "savings", "--top", "2"]);
    let recs = report["recommendations"].as_array().unwrap();
    assert_eq!(recs.len(), 2);
    let savings: Vec<f64> = recs
        .iter()
        .map(|r| r["monthly_savings_usd"].as_f64().unwrap())
        .collect();
    assert!(savings[0] >= savings[1], "{savings:?}");
    // The summary and the totals still count the fleet.
    assert_eq!(report["summary"]["workloads"], 5);
    let all = json(&[]);
    assert_eq!(
        report["total_monthly_savings_usd"],
        all["total_monthly_savings_usd"]
    );
    let best = all["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["monthly_savings_usd"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(savings[0], best);
    assert!(report["notes"].to_string().contains("showing 2 of 5"));

    let names = |r: &serde_json::Value| -> Vec<String> {
        r["recommendations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["workload"].as_str().unwrap().to_owned())
            .collect()
    };
    let by_name = json(&["--sort", "name"]);
    let mut sorted = names(&by_name);
    sorted.sort();
    assert_eq!(names(&by_name), sorted);

    let picked = json(&["--workload", "check*", "--workload", "*-cache"]);
    assert_eq!(names(&picked), ["checkout-api", "session-cache"]);
    assert_eq!(picked["summary"]["workloads"], 2);

    let (code, _, err) = frugal(&["--demo", "--workload", "nothing-*"]);
    assert_eq!(code, 1);
    assert!(err.contains("no workload matches"), "{err}");
}

#[test]
fn html_has_memory_plots_axis_titles_dates_sla_and_apart_labels() {
    let (code, html, err) = frugal(&["--demo", "--format", "html"]);
    assert_eq!(code, 0, "{err}");
    assert!(html.contains("<b>Fleet:</b> 5 workloads"), "summary first");
    // Every workload with data has two plots: CPU and memory.
    assert_eq!(html.matches("aria-label=\"CPU utilization of").count(), 5);
    assert_eq!(
        html.matches("aria-label=\"memory utilization of").count(),
        5
    );
    assert!(html.contains("CPU, % of 4 vCPUs") && html.contains("memory, % of 16 GiB"));
    assert!(html.contains("date (UTC, month-day)"));
    assert!(!html.contains(">d0<"), "real dates, not day numbers");
    // The SLA screen of checkout-api, with the same target the table gives.
    assert!(html.contains("SLA screen (M/M/c)") && html.contains("target 62.7 ms"));
    // Reference-line labels (text with a fill colour) at least 12 px apart in every plot.
    for svg in html.split("<svg").skip(1) {
        let svg = &svg[..svg.find("</svg>").unwrap()];
        let mut ys: Vec<f64> = svg
            .split("<text ")
            .filter(|t| t.contains(" fill=\"#"))
            .map(|t| {
                let y = &t[t.find(" y=\"").unwrap() + 4..];
                y[..y.find('"').unwrap()].parse().unwrap()
            })
            .collect();
        ys.sort_by(f64::total_cmp);
        assert!(ys.windows(2).all(|p| p[1] - p[0] >= 11.9), "{ys:?}");
    }
}

#[test]
fn json_csv_and_html_files_at_once_with_the_table_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let (json, csv, html) = (
        dir.path().join("r.json"),
        dir.path().join("r.csv"),
        dir.path().join("r.html"),
    );
    let (code, out, err) = frugal(&[
        "--demo",
        "--json",
        json.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("SYNTHETIC SAMPLE DATA"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("checkout-api")), "{out}");
    // The JSON file is the versioned document, the same as `--format json` prints.
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(file["schema"], "frugal-rightsize");
    assert_eq!(file["version"], 1);
    assert_eq!(file, self::json(&[]));
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert!(csv.starts_with("workload,source,current_type,finding,"));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.ends_with("</html>\n"));
    assert_eq!(page.matches("<svg").count(), 10);
    // The old spelling prints the same page.
    let (code, old, err) = frugal(&["--demo", "--format", "html"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(old, page);
}

#[test]
fn markdown_has_the_title_a_pipe_table_and_the_notes() {
    let (code, md, err) = frugal(&["--demo", "--format", "markdown"]);
    assert_eq!(code, 0, "{err}");
    assert!(md.starts_with("# SYNTHETIC SAMPLE DATA"), "{md}");
    let header = md
        .lines()
        .find(|l| l.starts_with("| workload |"))
        .unwrap_or_else(|| panic!("no pipe table:\n{md}"));
    assert!(header.contains("| savings $/month |"), "{header}");
    // The same numbers as the table: checkout-api saves $441.50 a month on 6 instances.
    let row = md
        .lines()
        .find(|l| l.starts_with("| checkout-api |"))
        .unwrap();
    assert!(
        row.contains("| 6 |") && row.contains("| $441.50 |"),
        "{row}"
    );
    assert!(
        md.contains("DISAGREE: the article steps down to m7i.xlarge"),
        "{md}"
    );
    // -q: no notes on stderr, the same stdout.
    let (code, quiet, err) = frugal(&["--format", "markdown", "-q"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(quiet, md);
    assert!(err.is_empty(), "{err}");
}

#[test]
fn the_old_output_option_writes_the_chosen_format_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.csv");
    let (code, out, err) = frugal(&["--demo", "--format", "csv", "-o", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty(), "-o takes stdout's place: {out}");
    let (_, csv, _) = frugal(&["--demo", "--format", "csv"]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), csv);
}
