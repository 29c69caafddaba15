//! Rendering a [`Report`]: terminal table, JSON, CSV and a self-contained HTML page.

use std::fmt::Write as _;

use crate::model::{fmt_pct_label, Finding, Recommendation, MODEL_STATEMENT};
use crate::report::Report;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// Aligned text table with notes.
    Table,
    /// The whole report as pretty JSON.
    Json,
    /// One row per workload.
    Csv,
    /// A self-contained HTML page with a utilization plot per workload.
    Html,
}

/// Renders `report` in `format`.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Table => table(report),
        Format::Json => {
            let mut s =
                serde_json::to_string_pretty(report).expect("invariant: a report serializes");
            s.push('\n');
            s
        }
        Format::Csv => csv(report),
        Format::Html => html(report),
    }
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn risk_label(r: u8) -> &'static str {
    ["very low", "low", "medium", "high", "very high"][usize::from(r.min(4))]
}

/// The cells of one table row.
fn cells(report: &Report, r: &Recommendation) -> Vec<String> {
    let pct = |x: f64| format!("{:.0}%", x * 100.0);
    let (mean, p, mem) = match (&r.usage, &r.current) {
        (Some(u), Some(c)) => (
            pct(u.mean_cpu_cores / f64::from(c.vcpus)),
            pct(c.cpu_utilization),
            format!("{:.1} GiB", u.peak_memory_bytes / GIB),
        ),
        _ => ("-".into(), "-".into(), "-".into()),
    };
    let (rec, proj, risk) = match (&r.recommended, r.finding) {
        (Some(p), _) => (
            p.instance_type.clone(),
            pct(p.cpu_utilization),
            format!("{} {}", p.risk, risk_label(p.risk)),
        ),
        (None, Finding::Optimized)
        | (None, Finding::OverProvisioned)
        | (None, Finding::UnderProvisioned) => {
            let c = r
                .current
                .as_ref()
                .expect("invariant: analysed workloads have a current projection");
            (
                "keep".into(),
                pct(c.cpu_utilization),
                format!("{} {}", c.risk, risk_label(c.risk)),
            )
        }
        (None, f)
            if report.config.policy == crate::Policy::Article
                && r.current.is_some()
                && f != Finding::Skipped =>
        {
            let c = r.current.as_ref().expect("invariant: checked above");
            (
                "keep".into(),
                pct(c.cpu_utilization),
                format!("{} {}", c.risk, risk_label(c.risk)),
            )
        }
        (None, f) => (f.label().into(), "-".into(), "-".into()),
    };
    let verified = match &r.verification {
        None => "-".to_owned(),
        Some(v) => v.verdict_label().to_owned(),
    };
    let instances = r
        .usage
        .as_ref()
        .map_or("-".to_owned(), |u| fmt_count(u.instances));
    let bound = r.bound_by.map_or("-".to_owned(), |b| b.label().to_owned());
    vec![
        r.workload.clone(),
        r.instance_type.clone(),
        instances,
        mean,
        p,
        mem,
        rec,
        bound,
        proj,
        risk,
        money(r.monthly_savings_usd),
        money(r.annual_savings_usd),
        verified,
    ]
}

/// An instance count: whole numbers as such, a mean with one decimal.
fn fmt_count(x: f64) -> String {
    if (x - x.round()).abs() < 0.05 {
        format!("{:.0}", x.round())
    } else {
        format!("{x:.1}")
    }
}

/// `1. c7i.large (saves $12.34/month, risk 1); 2. ...`
fn options_text(r: &Recommendation) -> String {
    r.options
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "{}. {} (savings {}/month, risk {} {})",
                i + 1,
                p.instance_type,
                money(p.monthly_savings_usd),
                p.risk,
                risk_label(p.risk)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn money(x: f64) -> String {
    if x.abs() < 0.005 {
        "$0".to_owned()
    } else {
        let sign = if x < 0.0 { "-" } else { "" };
        let cents = (x.abs() * 100.0).round() as u64;
        let dollars = cents / 100;
        let mut d = dollars.to_string();
        let mut i = d.len() as isize - 3;
        while i > 0 {
            d.insert(i as usize, ',');
            i -= 3;
        }
        format!("{sign}${d}.{:02}", cents % 100)
    }
}

fn headers(report: &Report) -> Vec<String> {
    let p = fmt_pct_label(report.config.cpu_percentile);
    [
        "workload",
        "current",
        "instances",
        "mean CPU",
        &format!("P{p} CPU"),
        "peak mem",
        "recommendation",
        "bound by",
        "proj. CPU",
        "risk",
        "savings $/month",
        "savings $/year",
        "verified",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            out.push_str(indent);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(indent);
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn table(report: &Report) -> String {
    let mut out = String::new();
    if report.synthetic {
        out.push_str(
            "SYNTHETIC SAMPLE DATA (generated by `frugal rightsize --demo`; not measurements)\n",
        );
    }
    let _ = writeln!(
        out,
        "policy: {}   sizing: P{} of 5-min CPU maxima + {:.0}% headroom, memory peak + {:.0}%",
        match report.config.policy {
            crate::Policy::Default => "default",
            crate::Policy::Article =>
                "article (mean CPU < 35% -> one vCPU step down -> SLA >= 99.5%)",
        },
        fmt_pct_label(report.config.cpu_percentile),
        report.config.cpu_headroom * 100.0,
        report.config.memory_headroom * 100.0
    );
    let _ = writeln!(
        out,
        "fleet: {}; net savings {} per month",
        report.summary.line(),
        money(report.total_monthly_savings_usd)
    );
    for n in &report.notes {
        out.push_str(&wrap(n, 98, "note: "));
    }
    out.push('\n');
    let head = headers(report);
    let rows: Vec<Vec<String>> = report
        .recommendations
        .iter()
        .map(|r| cells(report, r))
        .collect();
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let numeric = [
        false, false, true, true, true, true, false, false, true, false, true, true, false,
    ];
    let line = |cells: &[String], out: &mut String| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = width[i] - c.chars().count();
            if i > 0 {
                s.push_str("  ");
            }
            if numeric[i] {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&head, &mut out);
    line(
        &width.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
        &mut out,
    );
    for row in &rows {
        line(row, &mut out);
    }
    let _ = writeln!(
        out,
        "\nnet savings: {} per month, {} per year (730 h/month, 8,760 h/year, x instances); \
         downsizing saves {}/month, fixing under-provisioned types costs {}/month",
        money(report.total_monthly_savings_usd),
        money(report.total_annual_savings_usd),
        money(report.summary.downsizing_monthly_usd),
        money(report.summary.upsizing_monthly_usd)
    );
    let mut notes = String::new();
    for r in &report.recommendations {
        let mut items: Vec<String> = Vec::new();
        items.push(format!("finding: {}", r.finding.label()));
        if let Some(reason) = &r.reason {
            items.push(reason.clone());
        }
        if let Some(w) = &r.why_this {
            items.push(format!("why: {w}"));
        }
        if r.options.len() > 1 {
            items.push(format!("options: {}", options_text(r)));
        }
        if let Some(a) = &r.article {
            items.push(format!("article rule: {}", a.outcome));
        }
        match &r.disagreement {
            Some(d) => items.push(format!("DISAGREE: {d}")),
            None if r.article.is_some() && r.ours.is_some() => {
                items.push("article and ours agree".to_owned())
            }
            None => {}
        }
        if let Some(line) = sla_line(r) {
            items.push(line);
        }
        if let Some(v) = &r.verification {
            items.push(format!("verify: {}", v.summary()));
        }
        items.extend(r.notes.iter().cloned());
        let _ = writeln!(notes, "{}:", r.workload);
        for item in items {
            notes.push_str(
                // Continuation lines are indented under the bullet's text.
                &wrap(&item, 96, "  - ").replace("\n  - ", "\n    "),
            );
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes);
    }
    let _ = writeln!(
        out,
        "\nprices: {}, region {}, as of {}",
        report.prices.source, report.prices.region, report.prices.price_date
    );
    out.push_str("model:\n");
    out.push_str(&wrap(MODEL_STATEMENT, 98, "  "));
    if report.synthetic {
        out.push_str(
            "SYNTHETIC SAMPLE DATA: the numbers above show how the tool works, not a real fleet.\n",
        );
    }
    out
}

/// The SLA screen of a recommendation in one line, when the data has request rate and latency.
fn sla_line(r: &Recommendation) -> Option<String> {
    let svc = r.usage.as_ref().and_then(|u| u.service.as_ref())?;
    let s = r
        .recommended
        .as_ref()
        .or(r.current.as_ref())
        .and_then(|p| p.sla.as_ref())?;
    Some(format!(
        "SLA screen (M/M/c): {:.3} ms CPU/request, {:.0} req/s per instance at peak, target {:.1} ms ({}): {:.2}% within target, p99 {}",
        svc.cpu_seconds_per_request * 1000.0,
        svc.peak_rps,
        svc.target_ms,
        svc.target_source,
        s.fraction_within_target * 100.0,
        s.predicted_p99_ms
            .map_or("unbounded (overloaded)".to_owned(), |v| format!("{v:.1} ms"))
    ))
}

fn csv(report: &Report) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let p = fmt_pct_label(report.config.cpu_percentile);
    let head = [
        "workload".to_owned(),
        "source".to_owned(),
        "current_type".to_owned(),
        "finding".to_owned(),
        "mean_cpu_pct".to_owned(),
        format!("p{p}_cpu_pct"),
        "peak_memory_gib".to_owned(),
        "recommended_type".to_owned(),
        "projected_cpu_pct".to_owned(),
        "risk".to_owned(),
        "monthly_savings_usd".to_owned(),
        "annual_savings_usd".to_owned(),
        "article_type".to_owned(),
        "disagreement".to_owned(),
        "verified".to_owned(),
        "reason".to_owned(),
        "price_date".to_owned(),
        "synthetic".to_owned(),
        "instances".to_owned(),
        "bound_by".to_owned(),
        "options".to_owned(),
    ];
    w.write_record(&head)
        .expect("invariant: writing to a Vec cannot fail");
    let f = |x: f64| format!("{x:.2}");
    for r in &report.recommendations {
        let (mean, pc, mem) = match (&r.usage, &r.current) {
            (Some(u), Some(c)) => (
                f(u.mean_cpu_cores / f64::from(c.vcpus) * 100.0),
                f(c.cpu_utilization * 100.0),
                f(u.peak_memory_bytes / GIB),
            ),
            _ => (String::new(), String::new(), String::new()),
        };
        let (rec, proj, risk) = match &r.recommended {
            Some(p) => (
                p.instance_type.clone(),
                f(p.cpu_utilization * 100.0),
                p.risk.to_string(),
            ),
            None => match &r.current {
                Some(c) if r.ours.is_some() => (
                    r.instance_type.clone(),
                    f(c.cpu_utilization * 100.0),
                    c.risk.to_string(),
                ),
                _ => (String::new(), String::new(), String::new()),
            },
        };
        let row = [
            r.workload.clone(),
            r.source.clone(),
            r.instance_type.clone(),
            r.finding.label().to_owned(),
            mean,
            pc,
            mem,
            rec,
            proj,
            risk,
            f(r.monthly_savings_usd),
            f(r.annual_savings_usd),
            r.article
                .as_ref()
                .map_or(String::new(), |a| a.instance_type.clone()),
            r.disagreement.clone().unwrap_or_default(),
            r.verification
                .as_ref()
                .map_or(String::new(), |v| v.verdict_label().to_owned()),
            r.reason.clone().unwrap_or_default(),
            report.prices.price_date.clone(),
            report.synthetic.to_string(),
            r.usage
                .as_ref()
                .map_or(String::new(), |u| format!("{}", u.instances)),
            r.bound_by.map_or(String::new(), |b| b.label().to_owned()),
            options_text(r),
        ];
        w.write_record(&row)
            .expect("invariant: writing to a Vec cannot fail");
    }
    String::from_utf8(w.into_inner().expect("invariant: a Vec writer flushes"))
        .expect("invariant: the CSV is built from UTF-8 strings")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Places labels wanted at heights `want` (px, top = 0) so that no two are closer than `gap`,
/// inside `[lo, hi]`; returns the heights in the input order.
fn spread_labels(want: &[f64], gap: f64, lo: f64, hi: f64) -> Vec<f64> {
    let mut order: Vec<usize> = (0..want.len()).collect();
    order.sort_by(|a, b| want[*a].total_cmp(&want[*b]));
    let mut placed = vec![0.0; want.len()];
    let mut prev = f64::NEG_INFINITY;
    for &i in &order {
        let y = want[i].max(prev + gap).max(lo);
        placed[i] = y;
        prev = y;
    }
    // Pushed past the bottom: shift the stack up, keeping the gaps.
    let overflow = prev - hi;
    if overflow > 0.0 {
        let mut next = f64::INFINITY;
        for &i in order.iter().rev() {
            let y = (placed[i] - overflow).min(next - gap);
            placed[i] = y;
            next = y;
        }
    }
    placed
}

/// `2026-07-20` style date of a Unix-ms time (UTC).
fn date_label(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map_or_else(|_| String::new(), |t| t.strftime("%m-%d").to_string())
}

/// One inline SVG line plot of hourly maxima (as a fraction) with labelled reference lines.
fn svg_plot(
    aria: &str,
    y_title: &str,
    trace: &[(i64, f32)],
    lines: &[(f64, &str, String)],
) -> String {
    let (w, h, left, bottom, top, right) = (520.0, 240.0, 56.0, 40.0, 12.0, 8.0);
    if trace.is_empty() {
        return String::new();
    }
    let t0 = trace.first().map_or(0, |p| p.0) as f64;
    let t1 = (trace.last().map_or(0, |p| p.0) as f64).max(t0 + 1.0);
    let peak = trace.iter().map(|p| f64::from(p.1)).fold(0.0, f64::max);
    // At most 2000%: absurd inputs must not produce an absurd (or infinite) axis.
    let ymax = (lines.iter().map(|l| l.0).fold(peak, f64::max).max(1.0) * 1.05).min(20.0);
    let ymax = if ymax.is_finite() { ymax } else { 20.0 };
    let x = |t: f64| left + (t - t0) / (t1 - t0) * (w - left - right);
    let y = |u: f64| top + (1.0 - u.clamp(0.0, ymax) / ymax) * (h - top - bottom);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{}">"#,
        esc(aria)
    );
    let step = ((ymax / 8.0 / 0.25).ceil() * 0.25).max(0.25);
    let mut tick = 0.0;
    while tick <= ymax {
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" font-size="10" text-anchor="end">{:.0}%</text>"##,
            w - right,
            left - 4.0,
            y(tick) + 3.0,
            tick * 100.0,
            y = y(tick)
        );
        tick += step;
    }
    // Date ticks at UTC midnights, at most 8 labels.
    let day = 86_400_000.0;
    let days = ((t1 - t0) / day).ceil().max(1.0);
    let every = (days / 8.0).ceil().max(1.0);
    let mut t = (t0 / day).ceil() * day;
    while t <= t1 {
        let _ = write!(
            svg,
            r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{}" y2="{}" stroke="#999"/><text x="{xx:.1}" y="{}" font-size="10" text-anchor="middle">{}</text>"##,
            h - bottom,
            h - bottom + 4.0,
            h - bottom + 15.0,
            date_label(t as i64),
            xx = x(t)
        );
        t += every * day;
    }
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" font-size="11" text-anchor="middle">date (UTC, month-day); hourly maxima</text>"##,
        left + (w - left - right) / 2.0,
        h - 6.0
    );
    let _ = write!(
        svg,
        r##"<text x="12" y="{:.1}" font-size="11" text-anchor="middle" transform="rotate(-90 12 {:.1})">{}</text>"##,
        top + (h - top - bottom) / 2.0,
        top + (h - top - bottom) / 2.0,
        esc(y_title)
    );
    let points: Vec<String> = trace
        .iter()
        .map(|(t, u)| format!("{:.1},{:.1}", x(*t as f64), y(f64::from(*u))))
        .collect();
    let _ = write!(
        svg,
        r##"<polyline fill="none" stroke="#1f77b4" stroke-width="1" points="{}"/>"##,
        points.join(" ")
    );
    let want: Vec<f64> = lines.iter().map(|l| y(l.0) - 3.0).collect();
    let placed = spread_labels(&want, 12.0, top + 9.0, h - bottom - 2.0);
    for ((u, color, label), ly) in lines.iter().zip(placed) {
        let _ = write!(
            svg,
            r#"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="{color}" stroke-dasharray="5,3"/><text x="{}" y="{ly:.1}" font-size="10" fill="{color}" text-anchor="end">{} ({:.0}%)</text>"#,
            w - right,
            w - right - 2.0,
            esc(label),
            u * 100.0,
            yy = y(*u)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The CPU and memory plots of one workload, side by side.
fn plot(report: &Report, r: &Recommendation) -> String {
    let Some(current) = &r.current else {
        return String::new();
    };
    let mut cpu_lines: Vec<(f64, &str, String)> = vec![(
        current.cpu_utilization,
        "#d62728",
        format!(
            "P{} of 5-min maxima",
            fmt_pct_label(report.config.cpu_percentile)
        ),
    )];
    let mut mem_lines: Vec<(f64, &str, String)> = Vec::new();
    if r.usage.is_some() {
        mem_lines.push((
            current.memory_utilization * (1.0 + report.config.memory_headroom),
            "#d62728",
            format!("peak + {:.0}%", report.config.memory_headroom * 100.0),
        ));
    }
    if let Some(rec) = &r.recommended {
        // The recommended type's capacity and ceiling, in units of the current type's vCPUs.
        // cpu_utilization = demand / capacity on each type, so the candidate's capacity in
        // current-type utilization units is the ratio of the two.
        let cap = if rec.cpu_utilization > 0.0 {
            current.cpu_utilization / rec.cpu_utilization
        } else {
            0.0
        };
        cpu_lines.push((cap, "#2ca02c", format!("{} capacity", rec.instance_type)));
        cpu_lines.push((
            cap * report.config.cpu_ceiling(),
            "#98df8a",
            format!("{} ceiling", rec.instance_type),
        ));
        mem_lines.push((
            rec.memory_gib / current.memory_gib,
            "#2ca02c",
            format!("{} memory", rec.instance_type),
        ));
    }
    let cpu = svg_plot(
        &format!("CPU utilization of {}", r.workload),
        &format!("CPU, % of {} vCPUs", current.vcpus),
        &r.trace,
        &cpu_lines,
    );
    let mem = svg_plot(
        &format!("memory utilization of {}", r.workload),
        &format!("memory, % of {} GiB", current.memory_gib),
        &r.memory_trace,
        &mem_lines,
    );
    if cpu.is_empty() && mem.is_empty() {
        return String::new();
    }
    format!("<div class=\"plots\">{cpu}{mem}</div>")
}

fn html(report: &Report) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>frugal rightsize</title>\n");
    out.push_str("<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td:first-child,th:first-child{text-align:left}.warn{background:#fff3cd;padding:.5em;border:1px solid #e0c060}.dis{color:#a00}.small{font-size:12px;color:#444}.plots{display:flex;gap:1em;flex-wrap:wrap}</style></head><body>\n");
    out.push_str("<h1>frugal rightsize</h1>\n");
    if report.synthetic {
        out.push_str("<p class=\"warn\"><b>Synthetic sample data</b> generated by <code>frugal rightsize --demo</code>: it shows how the tool works, it is not a measurement.</p>\n");
    }
    let _ = writeln!(
        out,
        "<p class=\"small\">Prices: {} {}, as of {}. Inputs: {}.</p>",
        esc(&report.prices.region),
        esc(&report.prices.source),
        esc(&report.prices.price_date),
        esc(&report.inputs.join(", "))
    );
    let _ = writeln!(
        out,
        "<p><b>Fleet:</b> {}; net savings <b>{}</b> per month.</p>",
        esc(&report.summary.line()),
        money(report.total_monthly_savings_usd)
    );
    for n in &report.notes {
        let _ = writeln!(out, "<p class=\"warn\">{}</p>", esc(n));
    }
    out.push_str("<table><tr>");
    for h in headers(report) {
        let _ = write!(out, "<th>{}</th>", esc(&h));
    }
    out.push_str("</tr>\n");
    for r in &report.recommendations {
        out.push_str("<tr>");
        for c in cells(report, r) {
            let _ = write!(out, "<td>{}</td>", esc(&c));
        }
        out.push_str("</tr>\n");
    }
    let _ = writeln!(
        out,
        "</table>\n<p>Total savings: <b>{}</b> per month, <b>{}</b> per year.</p>",
        money(report.total_monthly_savings_usd),
        money(report.total_annual_savings_usd)
    );
    for r in &report.recommendations {
        let _ = writeln!(
            out,
            "<h2>{} <span class=\"small\">({}, {})</span></h2>",
            esc(&r.workload),
            esc(&r.instance_type),
            r.finding.label()
        );
        if let Some(reason) = &r.reason {
            let _ = writeln!(out, "<p>{}</p>", esc(reason));
        }
        if let Some(a) = &r.article {
            let _ = writeln!(
                out,
                "<p class=\"small\">Article rule: {}</p>",
                esc(&a.outcome)
            );
        }
        if let Some(d) = &r.disagreement {
            let _ = writeln!(out, "<p class=\"dis\">Disagreement: {}</p>", esc(d));
        }
        if let Some(v) = &r.verification {
            let _ = writeln!(out, "<p>Verification: {}</p>", esc(&v.summary()));
        }
        if let Some(w) = &r.why_this {
            let _ = writeln!(out, "<p>Why: {}</p>", esc(w));
        }
        if !r.options.is_empty() {
            let _ = writeln!(out, "<p>Options: {}</p>", esc(&options_text(r)));
        }
        if let Some(line) = sla_line(r) {
            let _ = writeln!(out, "<p>{}</p>", esc(&line));
        }
        for n in &r.notes {
            let _ = writeln!(out, "<p class=\"small\">{}</p>", esc(n));
        }
        out.push_str(&plot(report, r));
        out.push_str("\n<p class=\"small\">Hourly maxima of the current type's CPU and memory utilization (blue), with the sizing lines.</p>\n");
    }
    let _ = writeln!(
        out,
        "<h2>Model</h2><p class=\"small\">{}</p>\n</body></html>",
        esc(MODEL_STATEMENT)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_never_overlap() {
        // The checkout-api case: the ceiling label 2 px from the P99.5 label.
        let placed = spread_labels(&[100.0, 102.0, 40.0], 12.0, 10.0, 200.0);
        assert_eq!(placed[2], 40.0);
        assert_eq!(placed[0], 100.0);
        assert_eq!(placed[1], 112.0);
        // Crowded at the bottom: shifted up, still apart and inside.
        let placed = spread_labels(&[195.0, 196.0, 197.0], 12.0, 10.0, 200.0);
        let mut sorted = placed.clone();
        sorted.sort_by(f64::total_cmp);
        assert!(sorted[2] <= 200.0 && sorted[0] >= 10.0, "{placed:?}");
        assert!(
            sorted.windows(2).all(|p| p[1] - p[0] >= 12.0 - 1e-9),
            "{placed:?}"
        );
    }

    #[test]
    fn dates_on_the_time_axis() {
        assert_eq!(date_label(1_784_505_600_000), "07-20");
    }

    #[test]
    fn money_formats() {
        assert_eq!(money(0.0), "$0");
        assert_eq!(money(1234567.891), "$1,234,567.89");
        assert_eq!(money(-12.5), "-$12.50");
        assert_eq!(money(999.999), "$1,000.00");
    }
}
