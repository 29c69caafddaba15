//! The Go side: build and run `crates/workloads/go/deferbench` with `go test -bench`, parse its
//! output into rows of the same table.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::{Config, GoSection, Row, Timing};
use crate::go::{go_command, go_version, tail, HOW_TO_GET_GO};
use crate::Error;

/// The Go benchmark's sources, embedded so the binary works outside the repository.
const GO_MOD: &str = include_str!("../../go/deferbench/go.mod");
const GO_TEST: &str = include_str!("../../go/deferbench/defer_test.go");

/// One result line of `go test -bench -benchmem` output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoBenchLine {
    /// Benchmark name without the `-GOMAXPROCS` suffix, e.g. `BenchmarkDefer/loop8`.
    pub name: String,
    /// The GOMAXPROCS suffix, if printed.
    pub procs: Option<u32>,
    /// Iterations (b.N).
    pub iters: u64,
    /// ns/op.
    pub ns_per_op: f64,
    /// B/op (with -benchmem).
    pub bytes_per_op: Option<f64>,
    /// allocs/op (with -benchmem).
    pub allocs_per_op: Option<f64>,
}

/// Parses the result lines of `go test -bench` output; other lines are skipped. Never panics.
pub fn parse_go_bench(output: &str) -> Vec<GoBenchLine> {
    output.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<GoBenchLine> {
    let mut fields = line.split_whitespace();
    let full = fields.next()?;
    if !full.starts_with("Benchmark") {
        return None;
    }
    let iters: u64 = fields.next()?.parse().ok()?;
    let (name, procs) = match full.rsplit_once('-') {
        Some((base, suffix))
            if !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (base, suffix.parse().ok())
        }
        _ => (full, None),
    };
    let rest: Vec<&str> = fields.collect();
    let mut ns = None;
    let mut bytes = None;
    let mut allocs = None;
    for pair in rest.chunks(2) {
        let [value, unit] = pair else { break };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        match *unit {
            "ns/op" => ns = Some(value),
            "B/op" => bytes = Some(value),
            "allocs/op" => allocs = Some(value),
            _ => {}
        }
    }
    Some(GoBenchLine {
        name: name.to_owned(),
        procs,
        iters,
        ns_per_op: ns?,
        bytes_per_op: bytes,
        allocs_per_op: allocs,
    })
}

/// Maps a benchmark name to (strategy, scenario): `BenchmarkDefer/loop8` -> (`go-defer`, `loop8`).
fn row_key(name: &str) -> Option<(String, String)> {
    let rest = name.strip_prefix("Benchmark")?;
    let (strategy, scenario) = rest.split_once('/')?;
    Some((format!("go-{}", kebab(strategy)), scenario.to_owned()))
}

/// `DeferNoCapture` -> `defer-no-capture`.
fn kebab(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Groups parsed lines (several per benchmark with `-count`) into table rows.
pub(crate) fn rows_from_lines(lines: &[GoBenchLine]) -> Vec<Row> {
    let mut groups: BTreeMap<(String, String), Vec<&GoBenchLine>> = BTreeMap::new();
    let mut order = Vec::new();
    for line in lines {
        if let Some(key) = row_key(&line.name) {
            if !groups.contains_key(&key) {
                order.push(key.clone());
            }
            groups.entry(key).or_default().push(line);
        }
    }
    order
        .into_iter()
        .map(|key| {
            let group = &groups[&key];
            let samples: Vec<f64> = group.iter().map(|l| l.ns_per_op).collect();
            let iters = group.iter().map(|l| l.iters).min().unwrap_or(0);
            let mean = |f: fn(&GoBenchLine) -> Option<f64>| {
                let vals: Vec<f64> = group.iter().filter_map(|l| f(l)).collect();
                (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
            };
            let (strategy, scenario) = key;
            let defers_per_op =
                super::Scenario::parse(&scenario).map_or(0, super::Scenario::defers);
            let note = go_note(&strategy, &scenario);
            Row {
                lang: "go".to_owned(),
                strategy,
                scenario,
                defers_per_op,
                time_ns: Some(Timing::from_samples(samples, iters)),
                allocs_per_op: mean(|l| l.allocs_per_op),
                alloc_bytes_per_op: mean(|l| l.bytes_per_op),
                counters: None,
                note,
            }
        })
        .collect()
}

fn go_note(strategy: &str, scenario: &str) -> Option<String> {
    match (strategy, scenario) {
        ("go-defer", "one" | "straight8") => Some("open-coded defers (no record)".to_owned()),
        ("go-defer", "loop8" | "loop64" | "touch") => Some(
            "defer in a loop: a pooled runtime record per defer, plus a heap closure capturing \
             the call's arguments"
                .to_owned(),
        ),
        ("go-defer-no-capture", _) => {
            Some("defer in a loop, no arguments: only the pooled records".to_owned())
        }
        ("go-defer", "panic") => Some("open-coded; the panic path scans the frame".to_owned()),
        ("go-batch-defer", _) => Some(
            "the article's batchDefer as written: a new sync.Pool per call (never reused), \
             cleanups run FIFO when batchDefer returns; not simulated (valgrind takes minutes on \
             its pool churn)"
                .to_owned(),
        ),
        _ => None,
    }
}

/// Builds and runs the Go benchmark. A missing toolchain or a failing run is reported in the
/// section, not as an error: the Rust rows stand on their own.
pub(crate) fn run(config: &Config) -> Result<(GoSection, Vec<Row>), Error> {
    let Some(version) = go_version() else {
        return Ok((
            GoSection {
                status: "not-installed".to_owned(),
                version: None,
                message: Some(HOW_TO_GET_GO.to_owned()),
                simulated: None,
            },
            Vec::new(),
        ));
    };
    let scratch = crate::go::module_dir(
        "frugal-go-deferbench-",
        &[("go.mod", GO_MOD), ("defer_test.go", GO_TEST)],
    )?;
    let dir = scratch.path();
    let failed = |message: String| {
        Ok((
            GoSection {
                status: "failed".to_owned(),
                version: Some(version.clone()),
                message: Some(message),
                simulated: None,
            },
            Vec::new(),
        ))
    };
    // Build the test binary once: it is timed here and simulated below.
    let bin = dir.join("deferbench.test");
    let built = go_command(dir)
        .args(["test", "-c", "-o"])
        .arg(&bin)
        .arg(".")
        .output()
        .map_err(|source| Error::Spawn {
            command: "go test -c".to_owned(),
            source,
        })?;
    if !built.status.success() {
        return failed(format!(
            "go test -c failed: {}",
            tail(&String::from_utf8_lossy(&built.stderr))
        ));
    }
    let (benchtime, count) = if config.quick {
        ("20ms", "2")
    } else {
        ("100ms", "5")
    };
    let filter = go_filter(config);
    let command = format!(
        "go test -c && deferbench.test -test.run '^$' -test.bench '{filter}' -test.benchmem \
         -test.benchtime {benchtime} -test.count {count}"
    );
    let out = Command::new(&bin)
        .current_dir(dir)
        .args(["-test.run", "^$", "-test.bench", &filter, "-test.benchmem"])
        .args(["-test.benchtime", benchtime, "-test.count", count])
        .output()
        .map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return failed(format!(
            "{command} failed: {}",
            tail(&format!("{stdout}\n{stderr}"))
        ));
    }
    let mut rows = rows_from_lines(&parse_go_bench(&stdout));
    let simulated = if config.sim.is_some() && super::counters::needs_simulation() {
        Some(simulate_rows(config, dir, &mut rows))
    } else {
        None
    };
    Ok((
        GoSection {
            status: "ran".to_owned(),
            version: Some(version),
            message: Some(command),
            simulated,
        },
        rows,
    ))
}

/// `defer-no-capture` -> `DeferNoCapture`.
fn camel(kebab: &str) -> String {
    kebab
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or(String::new(), |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// The Go function that one operation of a row calls (see defer_test.go).
fn go_function(strategy: &str, scenario: &str) -> Option<String> {
    if strategy == "go-batch-defer" {
        // Not simulated: the article's batchDefer makes a new sync.Pool per call, and each one
        // registers with the runtime until the next GC; under callgrind a loop64 row ran for
        // more than seven minutes. Its rows keep their wall-clock figures.
        return None;
    }
    let strategy = camel(strategy.strip_prefix("go-")?);
    let prefix = match scenario {
        "loop8" | "loop64" => "loop",
        other => other,
    };
    Some(format!("*deferbench.{prefix}{strategy}"))
}

/// Fills the counters of Go rows from callgrind runs of the compiled test binary (one run per
/// row, `-test.benchtime Nx`, collecting inside the row's function). Returns the note for the
/// report. Failures leave the rows without counters and say why.
fn simulate_rows(config: &Config, dir: &Path, rows: &mut [Row]) -> String {
    let bin = dir.join("deferbench.test");
    let simulator = match frugal_counters::sim::Simulator::new() {
        Ok(s) => s,
        Err(e) => return format!("no simulated counters for Go rows: {e}"),
    };
    let iters = config.sim_iters;
    let wanted: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, row)| {
            config.go_sim_only.as_ref().is_none_or(|only| {
                only.iter()
                    .any(|(st, sc)| *st == row.strategy && *sc == row.scenario)
            })
        })
        .filter(|(_, row)| go_function(&row.strategy, &row.scenario).is_some())
        .map(|(i, _)| i)
        .collect();
    let results = crate::sim::parallel_map(&wanted, |&i| {
        let row = &rows[i];
        let function = go_function(&row.strategy, &row.scenario).expect("filtered above");
        let bench = format!(
            "^Benchmark{}$/^{}$",
            camel(row.strategy.trim_start_matches("go-")),
            row.scenario
        );
        let args: Vec<std::ffi::OsString> = [
            "-test.run",
            "^$",
            "-test.bench",
            &bench,
            "-test.benchtime",
            &format!("{iters}x"),
        ]
        .iter()
        .map(Into::into)
        .collect();
        simulator
            .run_function(&bin, &args, &function)
            .map_err(|e| format!("{} {}: {e}", row.strategy, row.scenario))
    });
    let mut done = 0;
    let mut failures = Vec::new();
    for (i, result) in wanted.into_iter().zip(results) {
        match result {
            Ok(run) => {
                // `-test.benchtime Nx` runs the function once with b.N = 1, then N times.
                let per_op = run.counts.per_op(iters + 1);
                rows[i].counters = Some(super::OpCounters::simulated(&per_op));
                done += 1;
            }
            Err(e) => failures.push(e),
        }
    }
    let mut note = format!(
        "{done} Go rows simulated by callgrind on the compiled test binary, run with \
         GODEBUG=asyncpreemptoff=1 (callgrind aborts on Go's asynchronous-preemption signals)"
    );
    if !failures.is_empty() {
        note.push_str(&format!("; failed: {}", failures.join("; ")));
    }
    note
}

/// The `-bench` regexp selecting the configured scenarios.
fn go_filter(config: &Config) -> String {
    let scenarios: Vec<&str> = config.scenarios.iter().map(|s| s.key()).collect();
    format!("/^({})$", scenarios.join("|"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded on this project's 2-core VM with Go 1.19.8 (`go test -bench -benchmem`).
    const SAMPLE: &str = include_str!("testdata/go_bench_go1.19.txt");

    #[test]
    fn parses_recorded_output() {
        let lines = parse_go_bench(SAMPLE);
        assert_eq!(lines.len(), 19);
        assert_eq!(lines[0].name, "BenchmarkDefer/one");
        assert_eq!(lines[0].procs, Some(2));
        assert_eq!(lines[0].iters, 8_924_883);
        assert_eq!(lines[0].ns_per_op, 6.049);
        assert_eq!(lines[0].bytes_per_op, Some(0.0));
        assert_eq!(lines[0].allocs_per_op, Some(0.0));
        assert_eq!(lines[6].name, "BenchmarkDefer/loop64");
        assert_eq!(lines[6].ns_per_op, 5349.0);
        assert_eq!(lines[6].bytes_per_op, Some(1536.0));
        assert_eq!(lines[6].allocs_per_op, Some(64.0));
        let last = lines.last().unwrap();
        assert_eq!(last.name, "BenchmarkManual/one");
        assert_eq!(last.procs, None);
        assert_eq!(last.ns_per_op, 6.311);
    }

    #[test]
    fn groups_counts_into_rows() {
        let rows = rows_from_lines(&parse_go_bench(SAMPLE));
        let keys: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.strategy.as_str(), r.scenario.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("go-defer", "one"),
                ("go-defer", "straight8"),
                ("go-defer", "loop8"),
                ("go-defer", "loop64"),
                ("go-defer", "touch"),
                ("go-defer", "panic"),
                ("go-defer-no-capture", "loop8"),
                ("go-defer-no-capture", "loop64"),
                ("go-func-slice", "loop8"),
                ("go-manual", "one"),
            ]
        );
        let loop64 = &rows[3];
        let time = loop64.time_ns.as_ref().unwrap();
        assert_eq!(time.samples, vec![5349.0, 5351.0]);
        assert_eq!(time.median, 5350.0);
        assert_eq!(time.iters_per_sample, 12_145);
        assert_eq!(loop64.allocs_per_op, Some(64.0));
        assert_eq!(loop64.alloc_bytes_per_op, Some(1536.0));
        assert_eq!(loop64.defers_per_op, 64);
        assert_eq!(loop64.lang, "go");
        assert_eq!(rows[9].time_ns.as_ref().unwrap().samples, vec![6.311]);
    }

    #[test]
    fn go_function_names() {
        assert_eq!(
            go_function("go-defer", "loop64").unwrap(),
            "*deferbench.loopDefer"
        );
        assert_eq!(
            go_function("go-defer-no-capture", "loop8").unwrap(),
            "*deferbench.loopDeferNoCapture"
        );
        assert_eq!(
            go_function("go-func-slice", "one").unwrap(),
            "*deferbench.oneFuncSlice"
        );
        assert_eq!(go_function("manual", "one"), None);
        assert_eq!(go_function("go-batch-defer", "loop64"), None);
    }

    #[test]
    fn camel_to_kebab() {
        assert_eq!(kebab("DeferNoCapture"), "defer-no-capture");
        assert_eq!(kebab("Manual"), "manual");
    }

    #[test]
    fn garbage_is_skipped_not_fatal() {
        for text in [
            "",
            "Benchmark",
            "BenchmarkX abc 1 ns/op",
            "BenchmarkX 10 1",
            "BenchmarkX 10 x ns/op",
        ] {
            assert!(parse_go_bench(text).is_empty(), "{text:?}");
        }
    }
}
