//! The report of one load run (the JSON of `frugal load --json`), how it renders, and when a run
//! fails.

use frugal_output::units::MISSING;
use frugal_output::{Align, Document, Render, Table, Tone};

use crate::latency::LatencySummary;

/// Failed requests by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorCounts {
    /// Connections that could not be reopened during the run.
    pub connect: u64,
    /// No complete response within `--timeout` (requests scheduled but never sent included,
    /// counted from their intended send time). A request the end of the run cut short before
    /// its timeout is not one: see [`LoadReport::requests_unfinished`].
    pub timeout: u64,
    /// A response with a status of 400 or more.
    pub status: u64,
    /// The connection was reset or closed mid-exchange.
    pub reset: u64,
    /// A response that breaks HTTP/1.1: unparsable, conflicting `Content-Length`s, a bad chunk
    /// size (the first one's description: [`LoadReport::protocol_error`]).
    #[serde(default)]
    pub protocol: u64,
    /// Another I/O error.
    pub other: u64,
}

impl ErrorCounts {
    /// All errors.
    pub fn total(&self) -> u64 {
        self.connect + self.timeout + self.status + self.reset + self.protocol + self.other
    }

    pub(crate) fn add(&mut self, other: &ErrorCounts) {
        self.connect += other.connect;
        self.timeout += other.timeout;
        self.status += other.status;
        self.reset += other.reset;
        self.protocol += other.protocol;
        self.other += other.other;
    }
}

/// The result of a load run (the JSON of `frugal load --json`).
///
/// It reads back from that JSON too (`frugal rightsize --verify` runs `frugal load` as a child
/// and judges its report); the `schema` and `version` keys the CLI adds on top are ignored.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LoadReport {
    /// The target.
    pub url: String,
    /// Closed-loop or constant-rate.
    pub mode: LoadMode,
    /// Connections asked for.
    pub connections: u64,
    /// Connections that were open when the clock started.
    pub connections_open: u64,
    /// Event-loop threads used.
    pub threads: usize,
    /// Measured seconds.
    pub duration_s: f64,
    /// Warm-up seconds (not measured).
    pub warmup_s: f64,
    /// Asked rate (constant-rate mode).
    pub target_rps: Option<f64>,
    /// Successful responses per second over the measured window.
    pub achieved_rps: f64,
    /// Successful responses in the measured window.
    pub requests_ok: u64,
    /// Failed requests in the measured window, by kind.
    pub errors: ErrorCounts,
    /// Latency from the actual send to the end of the response; `None` (`null`) when no
    /// request succeeded: nothing was measured.
    pub latency_ns: Option<LatencySummary>,
    /// Latency from the intended send time (constant-rate mode only, and `None` when no request
    /// succeeded): what a user arriving on schedule would see, queueing behind a slow response
    /// included.
    pub latency_corrected_ns: Option<LatencySummary>,
    /// How late the pacer sent when the connection was idle on time (constant-rate mode only,
    /// and `None` when nothing was sent on time): the floor of the corrected latency that is
    /// the generator's, not the server's.
    pub pacer_lateness_ns: Option<LatencySummary>,
    /// Failed requests over all requests that ended in the measured window (successes plus
    /// errors); 0 when none ended.
    pub error_rate: f64,
    /// Requests scheduled before the end but never sent: the server fell behind the schedule
    /// (constant-rate mode). Counted as timeouts when they had waited `--timeout` since their
    /// intended send time, as unanswered at the end otherwise.
    pub requests_unsent: u64,
    /// Requests unanswered at the end of the run, sent or only scheduled, that had waited less
    /// than `--timeout`: the end of the run bounds every wait, so their outcome is unknown;
    /// they are in no other count (closed-loop runs always end with about one per connection).
    pub requests_unfinished: u64,
    /// How long the oldest unfinished request had waited at the end, ns (0 when none).
    pub unfinished_oldest_ns: u64,
    /// The open-file limit in force.
    pub nofile_limit: u64,
    /// What the first protocol error was (`"conflicting Content-Length headers"`), when
    /// [`ErrorCounts::protocol`] is not 0.
    #[serde(default)]
    pub protocol_error: Option<String>,
}

/// How a load run sends: as fast as answers come, or on a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadMode {
    /// Each connection sends its next request when the previous one is answered (maximum
    /// throughput).
    ClosedLoop,
    /// Requests at a constant rate, latency corrected for coordinated omission.
    ConstantRate,
}

impl LoadMode {
    /// `"closed-loop"` or `"constant-rate"`, as in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            LoadMode::ClosedLoop => "closed-loop",
            LoadMode::ConstantRate => "constant-rate",
        }
    }
}

impl std::fmt::Display for LoadMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl LoadReport {
    /// Why the run fails (`None`: it passes): no successful response, more than `max` (a
    /// fraction) of the requests still unanswered at the end of a constant-rate run (the server
    /// fell behind the schedule), or an error rate above `max`.
    pub fn failure(&self, max: f64) -> Option<String> {
        let errors = self.errors.total();
        if self.requests_ok == 0 {
            let mut why = format!(
                "no successful response in the measured window ({errors} errors, {} unanswered at \
                 the end)",
                self.requests_unfinished
            );
            if self.requests_unfinished > 0 {
                why += &format!(
                    "; the oldest unanswered request had waited {}: is the server stalled?",
                    ns(self.unfinished_oldest_ns)
                );
            }
            return Some(why);
        }
        if self.target_rps.is_some() {
            // On a schedule, requests still unanswered at the end beyond the few in flight mean
            // the server fell behind the rate: their outcome is unknown, and they are not few.
            let all = self.requests_ok + errors + self.requests_unfinished;
            let share = self.requests_unfinished as f64 / all as f64;
            if share > max {
                return Some(format!(
                    "{} requests ({}) were still unanswered at the end, more than the allowed {}: \
                     the server fell behind the rate; lower --rate or run longer (-d)",
                    self.requests_unfinished,
                    percent(share),
                    percent(max)
                ));
            }
        }
        (self.error_rate > max).then(|| {
            format!(
                "error rate {} ({errors} of {} requests) is above the allowed {}; see the error \
                 kinds above (raise --max-error-rate to accept it)",
                percent(self.error_rate),
                errors + self.requests_ok,
                percent(max)
            )
        })
    }
}

/// A fraction as a percentage with enough digits to tell 0.04% from 0.
pub(crate) fn percent(fraction: f64) -> String {
    let p = fraction * 100.0;
    if p == p.round() || p >= 10.0 {
        format!("{p:.0}%")
    } else if p >= 0.1 {
        format!("{p:.1}%")
    } else {
        format!("{p:.3}%")
    }
}

/// A latency in nanoseconds, in a unit that fits (`850 ns`, `12.3 µs`, `4.56 ms`, `1.20 s`).
pub(crate) fn ns(v: u64) -> String {
    let v = v as f64;
    if v < 1e3 {
        format!("{v:.0} ns")
    } else if v < 1e6 {
        format!("{:.1} µs", v / 1e3)
    } else if v < 1e9 {
        format!("{:.2} ms", v / 1e6)
    } else {
        format!("{:.2} s", v / 1e9)
    }
}

/// The latency table's columns.
const LATENCY_COLUMNS: [&str; 7] = ["latency", "p50", "p90", "p99", "p99.9", "max", "mean"];

/// One latency row; `full: false` shows only p50, p99 and max (the pacer's lateness).
pub(crate) fn latency_row(label: &str, s: &LatencySummary, full: bool) -> Vec<String> {
    let maybe = |v: String| if full { v } else { MISSING.to_owned() };
    vec![
        label.to_owned(),
        ns(s.p50),
        maybe(ns(s.p90)),
        ns(s.p99),
        maybe(ns(s.p999)),
        ns(s.max),
        maybe(ns(s.mean as u64)),
    ]
}

/// `prefix_p50_ns`, ... `prefix_mean_ns`: a latency summary's CSV columns.
pub(crate) fn latency_csv_headers(prefix: &str) -> Vec<String> {
    [
        "count", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns", "mean_ns",
    ]
    .iter()
    .map(|c| format!("{prefix}_{c}"))
    .collect()
}

/// A latency summary's CSV cells (raw nanoseconds; empty when not measured).
pub(crate) fn latency_csv_cells(s: Option<&LatencySummary>) -> Vec<String> {
    match s {
        None => vec![String::new(); 7],
        Some(s) => vec![
            s.count.to_string(),
            s.p50.to_string(),
            s.p90.to_string(),
            s.p99.to_string(),
            s.p999.to_string(),
            s.max.to_string(),
            s.mean.to_string(),
        ],
    }
}

fn opt<T: ToString>(x: Option<T>) -> String {
    x.map_or(String::new(), |x| x.to_string())
}

impl Render for LoadReport {
    const SCHEMA: &'static str = "frugal-load";
    /// 2: `latency_ns` is `null` when no request succeeded; `errors.protocol`, `protocol_error`.
    const VERSION: u32 = 2;

    fn document(&self) -> Document {
        let r = self;
        let mut doc = Document::new(format!(
            "{} {}: {} connections ({} open), {} threads, {} s measured after {} s warm-up",
            r.url, r.mode, r.connections, r.connections_open, r.threads, r.duration_s, r.warmup_s
        ));
        let target = r
            .target_rps
            .map_or(String::new(), |t| format!(" (target {t:.0})"));
        doc.line(format!(
            "  {:<12} {:.0} req/s{target}",
            "throughput", r.achieved_rps
        ));
        let e = &r.errors;
        let tone = if e.total() > 0 {
            Tone::Warn
        } else {
            Tone::Plain
        };
        doc.toned(
            format!(
                "  {:<12} {} ok; errors {} ({}): connect {}, timeout {}, status {}, reset {}, \
                 protocol {}, other {}",
                "requests",
                r.requests_ok,
                e.total(),
                percent(r.error_rate),
                e.connect,
                e.timeout,
                e.status,
                e.reset,
                e.protocol,
                e.other
            ),
            tone,
        );
        if let (true, Some(what)) = (e.protocol > 0, &r.protocol_error) {
            doc.toned(
                format!("  {:<12} first protocol error: {what}", ""),
                Tone::Warn,
            );
        }
        let mut table = Table::new(
            LATENCY_COLUMNS
                .iter()
                .enumerate()
                .map(|(i, c)| (*c, if i == 0 { Align::Left } else { Align::Right })),
        )
        .indent(2);
        // Only what was measured: no successful response, no latency (not a row of zeros).
        let rows = [
            ("measured", &r.latency_ns, true),
            ("corrected", &r.latency_corrected_ns, true),
            ("pacer late", &r.pacer_lateness_ns, false),
        ];
        if r.latency_ns.is_none() {
            doc.toned(
                format!("  {:<12} not measured: no request succeeded", "latency"),
                Tone::Warn,
            );
        }
        if rows.iter().any(|(_, s, _)| s.is_some()) {
            for (label, summary, full) in rows {
                if let Some(s) = summary {
                    table.row(latency_row(label, s, full));
                }
            }
            doc.table(table);
        }
        if r.requests_unsent > 0 {
            doc.toned(
                format!(
                    "  {} scheduled requests were never sent: the server fell behind (counted as \
                     timeouts when they had waited --timeout, else as unanswered at the end)",
                    r.requests_unsent
                ),
                Tone::Warn,
            );
        }
        if r.requests_unfinished > 0 {
            doc.line(format!(
                "  {} requests unanswered at the end (oldest waited {}): the end of the run cut \
                 their wait short; outcome unknown, not counted",
                r.requests_unfinished,
                ns(r.unfinished_oldest_ns)
            ));
        }
        doc.note(
            "responses count when they complete in the measured window, warm-up sends included; \
             corrected = from the intended send time (constant rate)",
        );
        doc
    }

    /// One row per run, raw numbers (seconds, requests per second, nanoseconds); empty cells
    /// for what the mode does not measure.
    fn csv_table(&self) -> Option<Table> {
        let r = self;
        let mut headers: Vec<String> = [
            "url",
            "mode",
            "connections",
            "connections_open",
            "threads",
            "duration_s",
            "warmup_s",
            "target_rps",
            "achieved_rps",
            "requests_ok",
            "errors_connect",
            "errors_timeout",
            "errors_status",
            "errors_reset",
            "errors_protocol",
            "errors_other",
            "protocol_error",
            "error_rate",
            "requests_unsent",
            "requests_unfinished",
            "unfinished_oldest_ns",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        headers.extend(latency_csv_headers("latency"));
        headers.extend(latency_csv_headers("corrected"));
        headers.extend(latency_csv_headers("pacer_lateness"));
        let mut t = Table::numeric(headers);
        let e = &r.errors;
        let mut row = vec![
            r.url.clone(),
            r.mode.name().to_owned(),
            r.connections.to_string(),
            r.connections_open.to_string(),
            r.threads.to_string(),
            r.duration_s.to_string(),
            r.warmup_s.to_string(),
            opt(r.target_rps),
            r.achieved_rps.to_string(),
            r.requests_ok.to_string(),
            e.connect.to_string(),
            e.timeout.to_string(),
            e.status.to_string(),
            e.reset.to_string(),
            e.protocol.to_string(),
            e.other.to_string(),
            opt(r.protocol_error.as_deref()),
            r.error_rate.to_string(),
            r.requests_unsent.to_string(),
            r.requests_unfinished.to_string(),
            r.unfinished_oldest_ns.to_string(),
        ];
        row.extend(latency_csv_cells(r.latency_ns.as_ref()));
        row.extend(latency_csv_cells(r.latency_corrected_ns.as_ref()));
        row.extend(latency_csv_cells(r.pacer_lateness_ns.as_ref()));
        t.row(row);
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rate: Option<f64>) -> LoadReport {
        let lat = LatencySummary {
            count: 100,
            p50: 1_500,
            p90: 2_000,
            p99: 3_250_000,
            p999: 4_000_000,
            max: 1_200_000_000,
            mean: 2_100.0,
        };
        LoadReport {
            url: "http://127.0.0.1:8080/".to_owned(),
            mode: if rate.is_some() {
                LoadMode::ConstantRate
            } else {
                LoadMode::ClosedLoop
            },
            connections: 10,
            connections_open: 10,
            threads: 2,
            duration_s: 1.0,
            warmup_s: 0.5,
            target_rps: rate,
            achieved_rps: 99.6,
            requests_ok: 100,
            errors: ErrorCounts {
                reset: 1,
                ..ErrorCounts::default()
            },
            latency_ns: Some(lat),
            latency_corrected_ns: rate.map(|_| lat),
            pacer_lateness_ns: rate.map(|_| lat),
            error_rate: 1.0 / 101.0,
            requests_unsent: 0,
            requests_unfinished: 3,
            unfinished_oldest_ns: 900,
            nofile_limit: 1024,
            protocol_error: None,
        }
    }

    #[test]
    fn text_keeps_the_numbers() {
        let text = report(Some(100.0))
            .document()
            .to_text(&frugal_output::Style::plain());
        assert!(
            text.contains("throughput   100 req/s (target 100)"),
            "{text}"
        );
        assert!(
            text.contains(
                "errors 1 (1.0%): connect 0, timeout 0, status 0, reset 1, protocol 0, other 0"
            ),
            "{text}"
        );
        let corrected = text
            .lines()
            .find(|l| l.contains("corrected "))
            .expect("a row");
        for cell in ["1.5 µs", "2.0 µs", "3.25 ms", "4.00 ms", "1.20 s", "2.1 µs"] {
            assert!(corrected.contains(cell), "{cell}: {corrected}");
        }
        let pacer = text
            .lines()
            .find(|l| l.contains("pacer late"))
            .expect("a row");
        assert!(
            !pacer.contains("2.0 µs") && pacer.contains("3.25 ms"),
            "{pacer}"
        );
        assert!(text.contains("3 requests unanswered at the end (oldest waited 900 ns)"));
    }

    #[test]
    fn no_success_shows_no_latency_and_names_the_protocol_error() {
        let mut r = report(Some(100.0));
        r.requests_ok = 0;
        r.latency_ns = None;
        r.latency_corrected_ns = None;
        r.pacer_lateness_ns = None;
        r.errors = ErrorCounts {
            protocol: 7,
            ..ErrorCounts::default()
        };
        r.protocol_error = Some("conflicting Content-Length headers".to_owned());
        let text = r.document().to_text(&frugal_output::Style::plain());
        assert!(
            text.contains("latency      not measured: no request succeeded"),
            "{text}"
        );
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with("measured")),
            "no latency row: {text}"
        );
        assert!(text.contains("protocol 7, other 0"), "{text}");
        assert!(
            text.contains("first protocol error: conflicting Content-Length headers"),
            "{text}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&r.to_json().expect("serializes")).expect("json");
        assert!(json["latency_ns"].is_null(), "{json}");
        assert_eq!(json["errors"]["protocol"], 7);
        let csv = r.csv_table().expect("a table").to_csv();
        let mut lines = csv.lines();
        let headers: Vec<&str> = lines.next().expect("headers").split(',').collect();
        let cells: Vec<&str> = lines.next().expect("a row").split(',').collect();
        let cell = |h: &str| cells[headers.iter().position(|x| *x == h).expect(h)];
        assert_eq!(cell("latency_p50_ns"), "");
        assert_eq!(cell("errors_protocol"), "7");
    }

    #[test]
    fn csv_has_raw_numbers_and_empty_cells_for_what_was_not_measured() {
        let csv = report(None).csv_table().expect("a table").to_csv();
        let mut lines = csv.lines();
        let headers: Vec<&str> = lines.next().expect("headers").split(',').collect();
        let cells: Vec<&str> = lines.next().expect("a row").split(',').collect();
        let cell = |h: &str| cells[headers.iter().position(|x| *x == h).expect(h)];
        assert_eq!(cell("latency_p99_ns"), "3250000");
        assert_eq!(cell("errors_reset"), "1");
        assert_eq!(cell("corrected_p99_ns"), "");
        assert_eq!(cell("target_rps"), "");
    }

    #[test]
    fn reads_back_what_load_json_writes() {
        for rate in [None, Some(100.0)] {
            // What `frugal load --json` writes: the report under `schema` and `version`.
            let written = report(rate).to_json().expect("serializes");
            assert!(written.contains("\"schema\": \"frugal-load\""), "{written}");
            let read: LoadReport = serde_json::from_str(&written).expect("reads back");
            assert_eq!(read.to_json().expect("serializes"), written);
            assert_eq!(read.mode, report(rate).mode);
        }
        let mut v: serde_json::Value =
            serde_json::from_str(&report(None).to_json().expect("serializes")).expect("json");
        v["mode"] = "open-loop".into();
        let err = serde_json::from_value::<LoadReport>(v)
            .expect_err("an unknown mode")
            .to_string();
        assert!(
            err.contains("unknown variant `open-loop`, expected `closed-loop` or `constant-rate`"),
            "{err}"
        );
    }

    #[test]
    fn failure_says_why() {
        let mut r = report(None);
        assert_eq!(r.failure(0.05), None);
        assert!(r
            .failure(0.001)
            .expect("fails")
            .contains("error rate 1.0% (1 of 101 requests)"));
        r.requests_ok = 0;
        let why = r.failure(1.0).expect("fails");
        assert!(
            why.contains("no successful response") && why.contains("900 ns"),
            "{why}"
        );
        let mut r = report(Some(100.0));
        r.requests_unfinished = 50;
        let why = r.failure(0.1).expect("fails");
        assert!(why.contains("fell behind the rate"), "{why}");
    }
}
