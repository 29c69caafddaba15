//! The outcome of a `--verify` replay: what a [`crate::Recommendation`] carries and the report
//! prints. A leaf: the model stores it, [`crate::verify()`] produces it, neither imports the other
//! for it.

use serde::{Deserialize, Serialize};

/// One measured run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// CPUs the server was given: whole CPUs by affinity, a fraction by a cgroup CPU quota.
    pub cpus: f64,
    /// Target rate, requests/s.
    pub target_rps: f64,
    /// Achieved rate.
    pub achieved_rps: f64,
    /// Successful requests.
    pub requests_ok: u64,
    /// Failed requests (all kinds).
    pub errors: u64,
    /// Latency percentiles, ms (corrected for coordinated omission when the load generator did).
    pub p50_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// p99.9, ms.
    pub p999_ms: f64,
    /// Whether the percentiles are coordinated-omission corrected.
    pub corrected: bool,
    /// Estimated fraction of requests within the target.
    pub sla_fraction: f64,
    /// Meets the SLA (fraction, errors, rate).
    pub pass: bool,
}

/// The outcome of a replay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "verdict", content = "why")]
pub enum Verdict {
    /// The candidate meets the SLA in the replay.
    Pass,
    /// It does not.
    Fail,
    /// The replay could not run; why.
    NotRun(String),
}

/// The replay of one recommendation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Current type.
    pub current_type: String,
    /// Candidate type.
    pub candidate_type: String,
    /// CPUs this machine offers.
    pub machine_cpus: usize,
    /// How the rate was chosen.
    pub rate_basis: String,
    /// Per-request CPU work given to `frugal serve --work-us`.
    pub work_us: u64,
    /// Latency target the replay checks, ms: the SLA screen's target when the data has latency.
    pub latency_target_ms: f64,
    /// Non-CPU delay added to every replayed latency, ms (the fitted delay of the SLA screen).
    #[serde(default)]
    pub added_delay_ms: f64,
    /// How the CPU count was enforced: affinity only, or affinity plus a cgroup quota.
    pub cgroup: String,
    /// Where the load generator and the server ran, in words (the same for both runs unless it
    /// says otherwise).
    pub arrangement: String,
    /// The CPU reserved for the load generator in every run, if one was.
    pub load_generator_cpu: Option<usize>,
    /// Whether both runs (and the capacity run) had the same arrangement.
    pub symmetric: bool,
    /// 1-minute load average of this machine after the replay (from `/proc/loadavg`).
    pub load_average: Option<f64>,
    /// The current size.
    pub current: Option<Measured>,
    /// The candidate.
    pub candidate: Option<Measured>,
    /// Pass, fail, or not run.
    pub verdict: Verdict,
}

impl Verification {
    /// `pass`, `FAIL` or `not run`.
    pub fn verdict_label(&self) -> &'static str {
        match self.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::NotRun(_) => "not run",
        }
    }

    /// One line for reports.
    pub fn summary(&self) -> String {
        let m = |m: &Option<Measured>| {
            m.as_ref().map_or("-".to_owned(), |m| {
                format!(
                    "{:.2} CPU: p99 {:.2} ms{}, {:.2}% within {:.1} ms, {:.0}/{:.0} req/s, {} errors",
                    m.cpus,
                    m.p99_ms,
                    if self.added_delay_ms > 0.0 {
                        format!(" (incl. {:.1} ms non-CPU delay)", self.added_delay_ms)
                    } else {
                        String::new()
                    },
                    m.sla_fraction * 100.0,
                    self.latency_target_ms,
                    m.achieved_rps,
                    m.target_rps,
                    m.errors
                )
            })
        };
        match &self.verdict {
            Verdict::NotRun(why) => format!("not run: {why}"),
            v => format!(
                "{} ({} -> {}): current {}; candidate {}; rate: {}; {}; {}{}{}",
                if *v == Verdict::Pass { "pass" } else { "FAIL" },
                self.current_type,
                self.candidate_type,
                m(&self.current),
                m(&self.candidate),
                self.rate_basis,
                self.arrangement,
                self.cgroup,
                match self.load_average {
                    Some(l) if l > 1.0 + self.machine_cpus as f64 => format!(
                        "; load average {l:.1} on {} CPUs: other processes competed with the \
                         replay, rerun on a quiet machine",
                        self.machine_cpus
                    ),
                    _ => String::new(),
                },
                if self.current.as_ref().is_some_and(|c| !c.pass) {
                    "; the current size misses the SLA in the replay too: the target is tight \
                     for this machine (set --latency-target-ms)"
                } else {
                    ""
                }
            ),
        }
    }
}
