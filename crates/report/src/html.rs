//! The page: one self-contained HTML file (inline CSS and SVG, no script, no network), a pure
//! function of [`FullReport`].

use std::fmt::Write as _;

use frugal_workloads::claims::Verdict;
use frugal_workloads::defer_bench::{CounterSource, DeferReport};

use crate::ledger::LedgerRow;
use crate::model::{FullReport, StepStatus};
use crate::plots::{bar_chart, line_chart, BarChart, Bars, Level, LineChart};

/// Escapes prose for HTML content, showing `backquoted` spans (commands, flags) as code, as
/// the terminal and Markdown forms of the same text do. Unpaired backquotes stay as they are.
fn prose(s: &str) -> String {
    let parts: Vec<&str> = s.split('`').collect();
    if parts.len() % 2 == 0 {
        return esc(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for (i, part) in parts.iter().enumerate() {
        if i % 2 == 1 {
            out.push_str("<code>");
            out.push_str(&esc(part));
            out.push_str("</code>");
        } else {
            out.push_str(&esc(part));
        }
    }
    out
}

/// Escapes text for HTML content and attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The sections of the page, in order: `(id, heading)`. Every one is always present; a section
/// whose step did not run says why.
pub const SECTIONS: &[(&str, &str)] = &[
    ("machine", "The machine, and what was measured or simulated"),
    ("bridge", "From cleanup to dollars"),
    ("defer", "What a deferred cleanup costs"),
    ("tasks", "Memory per concurrent task"),
    ("service", "The service under load, per cleanup strategy"),
    ("io", "Random 4 KiB reads"),
    ("locality", "Memory locality"),
    ("fleet", "Rightsizing the sample fleet"),
    ("claims", "The article's claims, checked"),
];

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;\
padding:0 1em;color:#222;line-height:1.45}h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;\
padding-bottom:.2em;margin-top:2em}table{border-collapse:collapse;margin:.8em 0;font-size:.88em}\
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}\
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}\
.holds{color:#1a7f37}.does-not-hold{color:#c62828}.not-measurable{color:#777}\
.skip{color:#a15c00}.sim{font-style:italic}figure{margin:1em 0}figcaption{font-size:.85em;color:#555}\
.note{font-size:.9em;color:#555}code{background:#f4f4f4;padding:0 .2em}";

/// Renders the page.
pub fn render_html(r: &FullReport) -> String {
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>frugal report — {}</title><style>{STYLE}</style></head><body>",
        esc(&r.machine.cpu)
    );
    let _ = writeln!(
        h,
        "<h1>What cleanup costs, and how small a machine the service needs</h1>\
         <p class=\"note\">frugal {} · {} · {} profile · {:.0} s · report schema {} v{}. Values \
         marked <span class=\"sim\">simulated</span> come from valgrind's cache and branch \
         model, not from this CPU.</p>",
        esc(&r.frugal_version),
        esc(&r.generated_at),
        if r.quick { "quick" } else { "full" },
        r.wall_time_s,
        esc(&r.schema),
        r.schema_version
    );
    h.push_str("<nav><ol>");
    for (id, title) in SECTIONS {
        let _ = write!(h, "<li><a href=\"#{id}\">{}</a></li>", esc(title));
    }
    h.push_str("</ol></nav>\n");
    machine(r, &mut h);
    bridge(r, &mut h);
    defer(r, &mut h);
    tasks(r, &mut h);
    service(r, &mut h);
    io(r, &mut h);
    locality(r, &mut h);
    fleet(r, &mut h);
    claims(&r.claims, &mut h);
    h.push_str("</body></html>\n");
    h
}

fn section(h: &mut String, id: &str) {
    let title = SECTIONS.iter().find(|s| s.0 == id).map_or(id, |s| s.1);
    let _ = writeln!(h, "<section id=\"{id}\"><h2>{}</h2>", esc(title));
}

/// Why a section has no data: its step's reason.
fn not_run(r: &FullReport, h: &mut String, step: &str) {
    let reason = r
        .steps
        .iter()
        .find(|s| s.id == step)
        .map(|s| {
            format!(
                "{}: {}",
                s.status.label(),
                s.reason.as_deref().unwrap_or("no reason recorded")
            )
        })
        .unwrap_or_else(|| "not part of this run".to_owned());
    let _ = writeln!(h, "<p class=\"skip\">Not measured — {}</p>", esc(&reason));
}

fn figure(h: &mut String, svg: &str, x_title: &str, y_title: &str, caption: &str) {
    let _ = writeln!(
        h,
        "<figure class=\"plot\" data-x-title=\"{}\" data-y-title=\"{}\">{svg}<figcaption>{}</figcaption></figure>",
        esc(x_title),
        esc(y_title),
        esc(caption)
    );
}

fn table(h: &mut String, head: &[&str], rows: &[Vec<String>], numeric_from: usize) {
    h.push_str("<table><thead><tr>");
    for c in head {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr></thead><tbody>");
    for row in rows {
        h.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            if i >= numeric_from {
                let _ = write!(h, "<td class=\"n\">{}</td>", esc(c));
            } else {
                let _ = write!(h, "<td>{}</td>", esc(c));
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table>\n");
}

fn machine(r: &FullReport, h: &mut String) {
    section(h, "machine");
    let m = &r.machine;
    let rows = vec![
        vec!["CPU".to_owned(), format!("{} ({} online)", m.cpu, m.cores)],
        vec!["kernel".to_owned(), m.kernel.clone()],
        vec![
            "memory".to_owned(),
            format!("{:.1} GiB", m.memory_bytes as f64 / (1u64 << 30) as f64),
        ],
        vec!["caches (sysfs)".to_owned(), m.caches.join("; ")],
        vec![
            "hardware PMU".to_owned(),
            format!(
                "{} — {}",
                if m.pmu { "present" } else { "absent" },
                m.pmu_detail
            ),
        ],
        vec![
            "simulation".to_owned(),
            m.valgrind.clone().map_or_else(
                || "valgrind not installed: no simulated counters".to_owned(),
                |v| format!("{v}: cache and branch counts simulated where the PMU is absent"),
            ),
        ],
        vec![
            "Go".to_owned(),
            m.go.clone()
                .unwrap_or_else(|| "not on PATH: Go rows skipped".to_owned()),
        ],
        vec![
            "transparent huge pages".to_owned(),
            m.thp.clone().unwrap_or_else(|| "unknown".to_owned()),
        ],
        vec![
            "NUMA nodes".to_owned(),
            m.numa_nodes.map_or_else(
                || "unknown".to_owned(),
                |n| {
                    if n < 2 {
                        format!("{n}: cross-node effects cannot be measured here")
                    } else {
                        n.to_string()
                    }
                },
            ),
        ],
    ];
    table(h, &["fact", "this machine"], &rows, 9);
    let steps: Vec<Vec<String>> = r
        .steps
        .iter()
        .map(|s| {
            vec![
                s.title.clone(),
                s.status.label().to_owned(),
                format!("{:.1}", s.seconds),
                s.reason.clone().unwrap_or_default(),
                s.command.clone(),
            ]
        })
        .collect();
    h.push_str("<h3>Steps of this run</h3>");
    table(
        h,
        &["step", "status", "seconds", "why", "alone"],
        &steps,
        99,
    );
    let skipped = r
        .steps
        .iter()
        .filter(|s| s.status != StepStatus::Ran)
        .count();
    if skipped > 0 {
        let _ = write!(
            h,
            "<p class=\"skip\">{skipped} step(s) did not run; their sections below say why.</p>"
        );
    }
    h.push_str("</section>\n");
}

fn money(x: f64) -> String {
    let neg = x < 0.0;
    let cents = (x.abs() * 100.0).round() as u64;
    let (whole, frac) = (cents / 100, cents % 100);
    let digits = whole.to_string();
    let mut grouped = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("{}${grouped}.{frac:02}", if neg { "-" } else { "" })
}

fn bridge(r: &FullReport, h: &mut String) {
    section(h, "bridge");
    let Some(b) = &r.bridge else {
        not_run(r, h, "http");
        h.push_str("</section>\n");
        return;
    };
    let _ = write!(
        h,
        "<p>At <b>{:.0} requests per second</b> ({}), each cleanup strategy's measured CPU per \
         request becomes cores, vCPUs under the {:.0}% ceiling, the cheapest {} configuration of \
         the catalog, and dollars ({}).</p>",
        b.rps,
        esc(&r.rps_source),
        b.ceiling * 100.0,
        esc(&b.arch),
        esc(&b.prices)
    );
    let rows: Vec<Vec<String>> = b
        .rows
        .iter()
        .map(|x| {
            vec![
                x.strategy.clone(),
                format!(
                    "{:.1} ({:.1}–{:.1})",
                    x.cpu_us_per_request, x.cpu_us_range.0, x.cpu_us_range.1
                ),
                format!("{:.2}", x.demand_cores),
                format!("{:.2}", x.vcpus_needed),
                format!("{} × {}", x.instances, x.instance_type),
                format!("{:.0}%", x.utilization * 100.0),
                format!("{:.0}", x.max_rps),
                money(x.usd_per_month),
                money(x.usd_per_year),
                money(x.marginal_usd_per_month),
            ]
        })
        .collect();
    table(
        h,
        &[
            "strategy",
            "CPU µs/request (range)",
            "cores",
            "vCPUs needed",
            "configuration",
            "utilization",
            "max req/s",
            "$/month",
            "$/year",
            "CPU alone $/month",
        ],
        &rows,
        1,
    );
    let _ = write!(h, "<p><b>{}</b>.</p>", prose(&b.verdict));
    let cats: Vec<String> = b.rows.iter().map(|x| x.strategy.clone()).collect();
    let svg = bar_chart(&BarChart {
        title: format!("Monthly cost at {:.0} req/s by cleanup strategy", b.rps),
        x_title: "cleanup strategy".to_owned(),
        y_title: "USD per month".to_owned(),
        categories: cats,
        series: vec![
            Bars {
                name: "configuration (whole instances)".to_owned(),
                values: b.rows.iter().map(|x| Some(x.usd_per_month)).collect(),
                ranges: vec![],
                simulated: false,
            },
            Bars {
                name: "CPU alone (marginal)".to_owned(),
                values: b
                    .rows
                    .iter()
                    .map(|x| Some(x.marginal_usd_per_month))
                    .collect(),
                ranges: vec![],
                simulated: false,
            },
        ],
    });
    figure(
        h,
        &svg,
        "cleanup strategy",
        "USD per month",
        "The bridge's $/month per strategy: the configuration bought and the CPU alone.",
    );
    let _ = write!(h, "<h3>The model</h3><p>{}</p><ul>", prose(&b.model));
    for l in &b.limits {
        let _ = write!(h, "<li>{}</li>", prose(l));
    }
    h.push_str("</ul></section>\n");
}

/// ns per defer of a row: median time ÷ defers.
fn ns_per_defer(d: &DeferReport, strategy: &str, scenario: &str) -> Option<(f64, f64, f64)> {
    let row = d.row(strategy, scenario)?;
    let t = row.time_ns.as_ref()?;
    let k = f64::from(row.defers_per_op.max(1));
    Some((t.median / k, t.p25 / k, t.p75 / k))
}

fn defer(r: &FullReport, h: &mut String) {
    section(h, "defer");
    let Some(d) = &r.defer else {
        not_run(r, h, "defer");
        h.push_str("</section>\n");
        return;
    };
    let mut strategies: Vec<String> = Vec::new();
    for row in &d.rows {
        if !strategies.contains(&row.strategy) {
            strategies.push(row.strategy.clone());
        }
    }
    let scenarios: Vec<String> = ["one", "straight8", "loop8", "loop64"]
        .iter()
        .filter(|s| d.rows.iter().any(|r| r.scenario == **s))
        .map(|s| (*s).to_owned())
        .collect();
    let series: Vec<Bars> = strategies
        .iter()
        .map(|s| {
            let vals: Vec<Option<(f64, f64, f64)>> =
                scenarios.iter().map(|sc| ns_per_defer(d, s, sc)).collect();
            Bars {
                name: s.clone(),
                values: vals.iter().map(|v| v.map(|x| x.0)).collect(),
                ranges: vals.iter().map(|v| v.map(|x| (x.1, x.2))).collect(),
                simulated: false,
            }
        })
        .collect();
    let svg = bar_chart(&BarChart {
        title: "Wall time per deferred call (median, whiskers: quartiles)".to_owned(),
        x_title: "scenario (defers per operation: one=1, straight8/loop8=8, loop64=64)".to_owned(),
        y_title: "ns per defer".to_owned(),
        categories: scenarios.clone(),
        series,
    });
    figure(
        h,
        &svg,
        "scenario",
        "ns per defer",
        "Measured wall clock, Go beside Rust when Go ran (go-* strategies).",
    );
    let simulated = d.counter_source == CounterSource::Simulated;
    let instr: Vec<Bars> = strategies
        .iter()
        .map(|s| Bars {
            name: s.clone(),
            values: scenarios
                .iter()
                .map(|sc| {
                    let row = d.row(s, sc)?;
                    let i = row.counters.as_ref()?.instructions?;
                    Some(i / f64::from(row.defers_per_op.max(1)))
                })
                .collect(),
            ranges: vec![],
            simulated,
        })
        .collect();
    if instr.iter().any(|b| b.values.iter().any(Option::is_some)) {
        let svg = bar_chart(&BarChart {
            title: format!(
                "Instructions per deferred call ({})",
                if simulated {
                    "simulated by callgrind"
                } else {
                    "hardware counters"
                }
            ),
            x_title: "scenario".to_owned(),
            y_title: "instructions per defer".to_owned(),
            categories: scenarios.clone(),
            series: instr,
        });
        figure(
            h,
            &svg,
            "scenario",
            "instructions per defer",
            d.counter_note.as_deref().unwrap_or(""),
        );
    }
    let rows: Vec<Vec<String>> = d
        .rows
        .iter()
        .map(|row| {
            let c = row.counters.as_ref();
            let mark = if c.is_some_and(|c| c.source == CounterSource::Simulated) {
                "*"
            } else {
                ""
            };
            vec![
                row.scenario.clone(),
                row.strategy.clone(),
                row.time_ns
                    .as_ref()
                    .map_or("-".to_owned(), |t| format!("{:.1}", t.median)),
                row.time_ns.as_ref().map_or("-".to_owned(), |t| {
                    format!("{:.1}", t.median / f64::from(row.defers_per_op.max(1)))
                }),
                c.and_then(|c| c.instructions)
                    .map_or("-".to_owned(), |i| format!("{i:.0}{mark}")),
                c.and_then(|c| c.l1d_misses)
                    .map_or("-".to_owned(), |i| format!("{i:.1}{mark}")),
                row.allocs_per_op
                    .map_or("-".to_owned(), |a| format!("{a:.2}")),
            ]
        })
        .collect();
    table(
        h,
        &[
            "scenario",
            "strategy",
            "ns/op",
            "ns/defer",
            "instructions/op",
            "L1d misses/op",
            "allocations/op",
        ],
        &rows,
        2,
    );
    let _ = writeln!(
        h,
        "<p class=\"note\">* simulated ({}). Go: {} {}</p></section>",
        esc(d
            .counter_note
            .as_deref()
            .unwrap_or("counter source as marked")),
        esc(&d.go.status),
        esc(d
            .go
            .version
            .as_deref()
            .or(d.go.message.as_deref())
            .unwrap_or(""))
    );
}

fn kib(b: f64) -> String {
    format!("{:.1}", b / 1024.0)
}

fn tasks(r: &FullReport, h: &mut String) {
    section(h, "tasks");
    let Some(t) = &r.tasks else {
        not_run(r, h, "tasks");
        h.push_str("</section>\n");
        return;
    };
    let cats: Vec<String> = t.rows.iter().map(|x| x.kind.clone()).collect();
    let svg = bar_chart(&BarChart {
        title: format!("Memory per task ({} requested per kind)", t.requested),
        x_title: "kind of task".to_owned(),
        y_title: "KiB per task".to_owned(),
        categories: cats,
        series: vec![
            Bars {
                name: "resident (RSS)".to_owned(),
                values: t
                    .rows
                    .iter()
                    .map(|x| Some(x.rss_per_task_bytes / 1024.0))
                    .collect(),
                ranges: vec![],
                simulated: false,
            },
            Bars {
                name: "kernel stack + page tables".to_owned(),
                values: t
                    .rows
                    .iter()
                    // None when the machine-wide deltas were not meaningful (noise).
                    .map(|x| {
                        Some(
                            (x.kernel_stack_per_task_bytes? + x.page_tables_per_task_bytes?)
                                / 1024.0,
                        )
                    })
                    .collect(),
                ranges: vec![],
                simulated: false,
            },
        ],
    });
    figure(
        h,
        &svg,
        "kind of task",
        "KiB per task",
        "Resident memory is what a task costs; virtual reservations (table) are address space.",
    );
    let rows: Vec<Vec<String>> = t
        .rows
        .iter()
        .map(|x| {
            vec![
                x.kind.clone(),
                x.started.to_string(),
                kib(x.rss_per_task_bytes),
                x.kernel_stack_per_task_bytes.map_or("-".to_owned(), kib),
                x.page_tables_per_task_bytes.map_or("-".to_owned(), kib),
                kib(x.vm_per_task_bytes),
                x.note.clone().or(x.stopped_by.clone()).unwrap_or_default(),
            ]
        })
        .collect();
    table(
        h,
        &[
            "kind",
            "started",
            "RSS KiB/task",
            "kernel stack KiB",
            "page tables KiB",
            "virtual KiB/task",
            "note",
        ],
        &rows,
        1,
    );
    h.push_str("</section>\n");
}

fn service(r: &FullReport, h: &mut String) {
    section(h, "service");
    let Some(s) = &r.service else {
        not_run(r, h, "http");
        llc(r, h);
        h.push_str("</section>\n");
        return;
    };
    let _ = write!(
        h,
        "<p>{} connections, {:.1} s measured per run; constant rate {:.0} req/s (latency \
         corrected for coordinated omission). {}.</p>",
        s.connections,
        s.duration_s,
        s.constant_rate_rps,
        prose(&s.noise)
    );
    let cats: Vec<String> = s.strategies.iter().map(|l| l.strategy.clone()).collect();
    let svg = bar_chart(&BarChart {
        title: "Closed-loop throughput by cleanup strategy".to_owned(),
        x_title: "cleanup strategy".to_owned(),
        y_title: "requests per second".to_owned(),
        categories: cats.clone(),
        series: vec![Bars {
            name: "req/s (median, whisker: range of runs)".to_owned(),
            values: s
                .strategies
                .iter()
                .map(|l| l.closed_loop_rps.as_ref().map(|r| r.median))
                .collect(),
            ranges: s
                .strategies
                .iter()
                .map(|l| l.closed_loop_rps.as_ref().map(|r| (r.min, r.max)))
                .collect(),
            simulated: false,
        }],
    });
    figure(h, &svg, "cleanup strategy", "requests per second", "");
    let svg = bar_chart(&BarChart {
        title: "p99 latency at the constant rate by cleanup strategy".to_owned(),
        x_title: "cleanup strategy".to_owned(),
        y_title: "p99 latency (ms)".to_owned(),
        categories: cats,
        series: vec![Bars {
            name: "p99 (median, whisker: range of runs)".to_owned(),
            values: s
                .strategies
                .iter()
                .map(|l| l.p99_ms.as_ref().map(|r| r.median))
                .collect(),
            ranges: s
                .strategies
                .iter()
                .map(|l| l.p99_ms.as_ref().map(|r| (r.min, r.max)))
                .collect(),
            simulated: false,
        }],
    });
    figure(h, &svg, "cleanup strategy", "p99 latency (ms)", "");
    let fmt = |r: &Option<frugal_output::Summary>, d: usize| {
        r.as_ref().map_or("-".to_owned(), |r| {
            format!("{:.d$} ({:.d$}–{:.d$})", r.median, r.min, r.max)
        })
    };
    let rows: Vec<Vec<String>> = s
        .strategies
        .iter()
        .map(|l| {
            vec![
                l.strategy.clone(),
                l.runs.to_string(),
                fmt(&l.closed_loop_rps, 0),
                fmt(&l.p99_ms, 2),
                fmt(&l.cpu_us_per_request, 1),
                format!("{:.1}", l.rss_bytes as f64 / 1048576.0),
                l.errors.to_string(),
            ]
        })
        .collect();
    table(
        h,
        &[
            "strategy",
            "runs",
            "closed-loop req/s",
            "p99 ms (constant rate)",
            "CPU µs/request",
            "RSS MiB",
            "errors",
        ],
        &rows,
        1,
    );
    llc(r, h);
    h.push_str("</section>\n");
}

/// `bench llc` (article 4.2): cache misses per request with 0 and 10 extra deferred calls.
fn llc(r: &FullReport, h: &mut String) {
    h.push_str("<h3>Cache misses per request with extra deferred calls (article 4.2)</h3>\n");
    let Some(l) = &r.llc else {
        if r.steps.iter().any(|s| s.id == "llc") {
            not_run(r, h, "llc");
        }
        return;
    };
    let mark = if l.simulated { "*" } else { "" };
    let _ = write!(
        h,
        "<p><code>frugal serve --strategy S --extra-defers D {}</code>, N = {} requests over {} \
         keep-alive connection(s); {}.</p>",
        esc(&l.server_args.join(" ")),
        l.requests,
        l.connections,
        esc(&l.method)
    );
    let opt = |x: Option<f64>, f: &dyn Fn(f64) -> String| x.map_or("-".to_owned(), f);
    let rows: Vec<Vec<String>> = l
        .rows
        .iter()
        .map(|row| {
            let p = &row.per_request;
            vec![
                row.strategy.clone(),
                row.extra_defers.to_string(),
                format!("{:.0}{mark}", p.instructions),
                format!("{:.1}{mark}", p.d1_misses),
                format!("{:.2}{mark}", p.ll_misses),
                opt(p.ll_load_miss_rate, &|x| format!("{:.3}%{mark}", x * 100.0)),
                format!("{:.1}{mark}", p.ll_miss_bytes),
                opt(row.native_rps, &|x| format!("{x:.0}")),
                opt(row.dram_read_bytes_per_s, &|x| {
                    format!("{:.4}{mark}", x / 1e6)
                }),
            ]
        })
        .collect();
    table(
        h,
        &[
            "strategy",
            "extra defers",
            "instructions/req",
            "D1 misses/req",
            "LL misses/req",
            "LL load-miss rate",
            "LL-miss bytes/req",
            "native req/s",
            "implied DRAM read MB/s",
        ],
        &rows,
        1,
    );
    if l.simulated {
        let _ = writeln!(
            h,
            "<p class=\"note\">* <span class=\"sim\">simulated</span> by {} ({}); LL \
             load-miss rate = last-level data-read misses / data reads that reached the last \
             level (perf's LLC-load-misses / LLC-loads, simulated: no L2); the DRAM figure is \
             LL-miss bytes × the native request rate — the memory controller's counters are \
             not measurable here.</p>",
            esc(&l.tool),
            esc(&l.cache)
        );
    } else {
        let _ = writeln!(
            h,
            "<p class=\"note\">Counted by the PMU ({}); the DRAM figure is LLC-load-miss bytes \
             × the native request rate (the memory controller's counters are not read).</p>",
            esc(&l.cache)
        );
    }
}

fn io(r: &FullReport, h: &mut String) {
    section(h, "io");
    let Some(io) = &r.io else {
        not_run(r, h, "io");
        h.push_str("</section>\n");
        return;
    };
    let rows = vec![vec![
        format!("{:?}", io.mode),
        io.filesystem.clone().unwrap_or_default(),
        io.queue_depth.to_string(),
        format!("{:.0}", io.iops),
        format!("{:.1}", io.mib_per_s),
        format!("{:.0}", io.latency_ns.p50 as f64 / 1e3),
        format!("{:.0}", io.latency_ns.p99 as f64 / 1e3),
        io.cpu
            .as_ref()
            .map_or("-".to_owned(), |c| format!("{:.2}", c.cpu_ns_per_io / 1e3)),
    ]];
    table(
        h,
        &[
            "mode",
            "file system",
            "QD",
            "IOPS",
            "MiB/s",
            "p50 µs",
            "p99 µs",
            "CPU µs per read",
        ],
        &rows,
        2,
    );
    for n in &io.notes {
        let _ = write!(h, "<p class=\"note\">{}</p>", prose(n));
    }
    h.push_str("</section>\n");
}

fn locality(r: &FullReport, h: &mut String) {
    section(h, "locality");
    let Some(l) = &r.locality else {
        not_run(r, h, "locality");
        h.push_str("</section>\n");
        return;
    };
    let mut patterns: Vec<String> = Vec::new();
    let mut sizes: Vec<u64> = Vec::new();
    for row in &l.rows {
        if !patterns.contains(&row.pattern) {
            patterns.push(row.pattern.clone());
        }
        if !sizes.contains(&row.size_bytes) {
            sizes.push(row.size_bytes);
        }
    }
    sizes.sort_unstable();
    let series: Vec<Bars> = sizes
        .iter()
        .map(|&size| {
            let cell = |p: &String| {
                l.rows
                    .iter()
                    .find(|x| &x.pattern == p && x.size_bytes == size)
            };
            Bars {
                name: format!(
                    "working set {}",
                    frugal_workloads::locality::human_bytes(size)
                ),
                values: patterns
                    .iter()
                    .map(|p| cell(p).map(|x| x.time_ns.median))
                    .collect(),
                ranges: patterns
                    .iter()
                    .map(|p| cell(p).map(|x| (x.time_ns.p25, x.time_ns.p75)))
                    .collect(),
                simulated: false,
            }
        })
        .collect();
    let svg = bar_chart(&BarChart {
        title: "Wall time per access by pattern and working set (median, whiskers: quartiles)"
            .to_owned(),
        x_title: "access pattern".to_owned(),
        y_title: "ns per access".to_owned(),
        categories: patterns.clone(),
        series,
    });
    figure(
        h,
        &svg,
        "access pattern",
        "ns per access",
        "Measured wall clock on this machine (4 KiB pages).",
    );
    let rows: Vec<Vec<String>> = l
        .rows
        .iter()
        .map(|x| {
            let c = x.counters.as_ref();
            let sim = if c.is_some_and(|c| c.source == CounterSource::Simulated) {
                "*"
            } else {
                ""
            };
            let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}{sim}"));
            vec![
                x.pattern.clone(),
                frugal_workloads::locality::human_bytes(x.size_bytes),
                format!("{:.2}", x.time_ns.median),
                fmt(c.and_then(|c| c.l1d_misses)),
                fmt(c.and_then(|c| c.llc_misses)),
                x.tlb_sim.as_ref().map_or("-".to_owned(), |t| {
                    format!(
                        "{:.4}* / {:.5}*",
                        t.walks_per_access(false),
                        t.walks_per_access(true)
                    )
                }),
            ]
        })
        .collect();
    table(
        h,
        &[
            "pattern",
            "working set",
            "ns/access",
            "L1d misses/access",
            "LLC misses/access",
            "TLB walks/access 4 KiB / 2 MiB",
        ],
        &rows,
        2,
    );
    let hp = &l.huge_pages;
    if hp.status == "measured" {
        let rows: Vec<Vec<String>> = hp
            .rows
            .iter()
            .map(|x| {
                vec![
                    x.pattern.clone(),
                    x.pages.clone(),
                    format!("{:.2}", x.time_ns.median),
                    x.huge_fraction
                        .map_or("unknown".to_owned(), |f| format!("{:.0}%", f * 100.0)),
                ]
            })
            .collect();
        let _ = write!(
            h,
            "<h3>Huge pages, measured ({} working set)</h3>",
            frugal_workloads::locality::human_bytes(hp.size_bytes)
        );
        table(
            h,
            &["pattern", "pages", "ns/access", "huge pages obtained"],
            &rows,
            2,
        );
    }
    for n in hp.notes.iter().chain(std::iter::once(&l.numa.note)) {
        let _ = write!(h, "<p class=\"note\">{}</p>", prose(n));
    }
    let _ =
        writeln!(
        h,
        "<p class=\"note\">* simulated: caches by valgrind ({}), TLB walks by a trace-driven TLB \
         model (no PMU here, or none asked).</p></section>",
        esc(l.counter_note.as_deref().unwrap_or("see the counter source"))
    );
}

fn fleet(r: &FullReport, h: &mut String) {
    section(h, "fleet");
    let Some(rs) = &r.rightsize else {
        not_run(r, h, "rightsize");
        h.push_str("</section>\n");
        return;
    };
    let _ = write!(
        h,
        "<p>{} {} Prices: {} {} ({}).</p>",
        if rs.synthetic {
            "<b>SYNTHETIC sample data</b> (generated, labelled; not measurements)."
        } else {
            ""
        },
        prose(&rs.model),
        esc(&rs.prices.region),
        esc(&rs.prices.price_date),
        esc(&rs.prices.source)
    );
    let rows: Vec<Vec<String>> = rs
        .recommendations
        .iter()
        .map(|rec| {
            vec![
                rec.workload.clone(),
                rec.instance_type.clone(),
                format!("{:?}", rec.finding),
                rec.recommended
                    .as_ref()
                    .map_or("-".to_owned(), |p| p.instance_type.clone()),
                rec.recommended.as_ref().map_or("-".to_owned(), |p| {
                    format!("{:.0}%", p.cpu_utilization * 100.0)
                }),
                rec.recommended
                    .as_ref()
                    .map_or("-".to_owned(), |p| p.risk.to_string()),
                money(rec.monthly_savings_usd),
                money(rec.annual_savings_usd),
            ]
        })
        .collect();
    table(
        h,
        &[
            "workload",
            "current",
            "finding",
            "recommended",
            "projected CPU",
            "risk 0–4",
            "savings $/month",
            "savings $/year",
        ],
        &rows,
        4,
    );
    let _ = write!(
        h,
        "<p>Total savings: {}/month, {}/year.</p>",
        money(rs.total_monthly_savings_usd),
        money(rs.total_annual_savings_usd)
    );
    let ceiling = rs.config.cpu_ceiling();
    for rec in &rs.recommendations {
        let trace = r
            .fleet_traces
            .iter()
            .find(|t| t.workload == rec.workload)
            .map_or(&[][..], |t| &t.points[..]);
        let (Some(current), false) = (&rec.current, trace.is_empty()) else {
            continue;
        };
        let t0 = trace[0].0 as f64;
        let points: Vec<(f64, f64)> = trace
            .iter()
            .map(|(t, u)| ((*t as f64 - t0) / 86_400_000.0, f64::from(*u) * 100.0))
            .collect();
        let mut levels = vec![Level {
            name: format!("P{} of 5-min maxima", rs.config.cpu_percentile),
            value: current.cpu_utilization * 100.0,
        }];
        if let Some(c) = &rec.recommended {
            if c.cpu_utilization > 0.0 {
                let cap = current.cpu_utilization / c.cpu_utilization;
                levels.push(Level {
                    name: format!("{} ceiling", c.instance_type),
                    value: cap * ceiling * 100.0,
                });
            }
        }
        let title = format!(
            "{}: CPU on {} (hourly maxima) against the candidate's ceiling{}",
            rec.workload,
            rec.instance_type,
            if rs.synthetic {
                " — synthetic data"
            } else {
                ""
            }
        );
        let svg = line_chart(&LineChart {
            title,
            x_title: "days since the first sample".to_owned(),
            y_title: format!("CPU utilization of {} (%)", rec.instance_type),
            line: ("hourly max".to_owned(), points),
            levels,
        });
        figure(
            h,
            &svg,
            "days since the first sample",
            "CPU utilization",
            "The ceiling is the candidate's vCPUs × 83%, in units of the current type's vCPUs.",
        );
    }
    h.push_str("</section>\n");
}

fn claims(rows: &[LedgerRow], h: &mut String) {
    section(h, "claims");
    let count = |v: Verdict| rows.iter().filter(|r| r.claim.verdict == v).count();
    let _ = write!(
        h,
        "<p>{} claims: {} hold, {} do not hold, {} cannot be measured here (each says why).</p>",
        rows.len(),
        count(Verdict::Holds),
        count(Verdict::DoesNotHold),
        count(Verdict::NotMeasurable)
    );
    h.push_str(
        "<table><thead><tr><th>§</th><th>claim</th><th>article</th><th>measured here</th>\
         <th>verdict</th><th>rule</th><th>why</th><th>command</th></tr></thead><tbody>",
    );
    for r in rows {
        let c = &r.claim;
        let class = match c.verdict {
            Verdict::Holds => "holds",
            Verdict::DoesNotHold => "does-not-hold",
            Verdict::NotMeasurable => "not-measurable",
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td>\
             <td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&c.section),
            prose(&c.claim),
            esc(&c.article_value),
            esc(c.measured.as_deref().unwrap_or("—")),
            esc(c.verdict.label()),
            prose(&c.rule),
            prose(&c.why),
            esc(&r.command)
        );
    }
    h.push_str("</tbody></table></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_shows_backquoted_spans_as_code_and_escapes() {
        assert_eq!(
            prose("run `frugal stat -e <ev>` & see"),
            "run <code>frugal stat -e &lt;ev&gt;</code> &amp; see"
        );
        assert_eq!(prose("one ` alone"), "one ` alone");
        assert_eq!(prose("plain"), "plain");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn money_groups_thousands() {
        assert_eq!(money(1234567.891), "$1,234,567.89");
        assert_eq!(money(-5.0), "-$5.00");
        assert_eq!(money(0.0), "$0.00");
    }
}
