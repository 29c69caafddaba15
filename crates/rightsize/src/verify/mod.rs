//! `--verify`: replay a recommendation on this machine.
//!
//! The real service (`frugal serve`) runs twice, confined with `sched_setaffinity` (and a cgroup
//! CPU quota for fractional sizes) to as many CPUs as the current type and as the candidate have —
//! scaled to this machine while keeping their ratio — and each time `frugal load` drives it in
//! constant-rate mode.
//!
//! The arrangement is the same for both runs and for the capacity run: on a machine with N ≥ 2
//! CPUs the last one is reserved for `frugal load` (pinned there) and both server sizes are scaled
//! into the other N − 1 ([`plan_replay`]). On a 2-core machine a 4 → 2 vCPU halving is therefore
//! 1 CPU against 0.5 CPU (a cgroup quota), the load generator on the other core in both runs. When
//! a fractional size needs a quota and none can be set (no permission, no cgroup file system), the
//! replay falls back to whole CPUs without the reservation, when the ratio allows, and says that
//! the runs are then unequal: the current size shares its CPUs with the load generator while the
//! candidate does not. On a 1-CPU machine the load generator shares the CPU in both runs.
//!
//! The rate. An observed request rate from another machine means nothing here, so the replay
//! reproduces the observed *utilization* instead: a short closed-loop run measures what the
//! current-size replay server can serve (its capacity `X`), and the constant rate is
//! `X × u`, where `u` is the current type's observed P99.5 CPU utilization (capped at 95%). Both
//! sizes then get the same rate. The per-request CPU work (`--work-us`) is the CPU-seconds per
//! request inferred from the data, or 500 µs without request data.
//!
//! The SLA. With latency data the target is the workload's latency target, the very number the
//! report's SLA screen shows; the replay has no I/O, so the fitted non-CPU delay is added to every
//! replayed latency before it is compared (capped so that at least twice the per-request work is
//! left for the CPU). Without latency data the target is `--latency-target-ms` or 20 × the
//! per-request work, with no delay added. The fraction of
//! requests within the target is interpolated from the load generator's percentiles
//! (p50/p90/p99/p99.9/max, coordinated-omission corrected when available). The candidate passes
//! when that fraction reaches the SLA fraction (99.5%), errors stay under 0.5% and the achieved
//! rate is within 5% of the target.

mod confine;
mod judge;
mod plan;
mod service;

use std::path::PathBuf;
use std::time::Duration;

use crate::error::Result;
use crate::model::Recommendation;
use crate::sys;

pub use crate::outcome::{Measured, Verdict, Verification};
pub use confine::{cgroup_info, detect_cgroup, quota_period, Cgroup};
pub use judge::fraction_within;
pub use plan::{plan_cpus, plan_replay, scale_cpus};

use confine::CpuQuota;
use judge::{measure, replay_target};
use service::{run_load, start_server};

/// How to run the replay.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// The `frugal` executable (normally `std::env::current_exe()`).
    pub program: PathBuf,
    /// Measured duration of each constant-rate run.
    pub duration: Duration,
    /// Warm-up before each run.
    pub warmup: Duration,
    /// Duration of the closed-loop capacity run.
    pub calibrate: Duration,
    /// Connections of the load generator.
    pub connections: u32,
    /// Fraction of requests that must meet the target.
    pub sla_fraction: f64,
    /// Latency target for workloads without latency data, ms (default 20 × the per-request work).
    pub latency_target_ms: Option<f64>,
    /// Directory for the load generator's JSON files.
    pub scratch: PathBuf,
}

/// Replays `rec` (its current type against its recommended type) on this machine.
///
/// Never fails for reasons of this machine's size: those come back as [`Verdict::NotRun`] with a
/// plain explanation. Errors are for a broken `frugal serve`/`frugal load`.
///
/// Every child is spawned and reaped on the calling thread, and each carries a parent-death
/// signal tied to that thread (Linux `PR_SET_PDEATHSIG` follows the spawning thread): the children
/// are killed if this process dies without unwinding, and the calling thread outlives them.
pub fn verify(rec: &Recommendation, opts: &VerifyOptions) -> Result<Verification> {
    let cpus_here = sys::allowed_cpus();
    let machine = cpus_here.len();
    let current = rec.current.as_ref();
    let candidate = rec.recommended.as_ref();
    let svc = rec.usage.as_ref().and_then(|u| u.service.as_ref());
    let work_us = svc.map_or(500, |s| {
        (s.cpu_seconds_per_request * 1e6)
            .round()
            .clamp(20.0, 20_000.0) as u64
    });
    let target = replay_target(svc, work_us, opts.latency_target_ms);
    let mut v = Verification {
        current_type: rec.instance_type.clone(),
        candidate_type: candidate.map_or(rec.instance_type.clone(), |c| c.instance_type.clone()),
        machine_cpus: machine,
        rate_basis: String::new(),
        work_us,
        latency_target_ms: target.0,
        added_delay_ms: target.1,
        cgroup: cgroup_info(),
        arrangement: String::new(),
        load_generator_cpu: None,
        symmetric: false,
        load_average: None,
        current: None,
        candidate: None,
        verdict: Verdict::NotRun(String::new()),
    };
    let (Some(current), Some(candidate)) = (current, candidate) else {
        v.verdict = Verdict::NotRun("no change recommended, nothing to verify".to_owned());
        return Ok(v);
    };
    let (cur_v, cand_v) = (current.vcpus, candidate.vcpus);
    let needs_quota = |cpus: f64| cpus.fract() > 1e-9;
    // Symmetric: one CPU reserved for the load generator in every run (when there are >= 2).
    let (k_cur, cand_cpus) = match plan_replay(cur_v, cand_v, machine, true) {
        Ok(p) => p,
        Err(why) => {
            v.verdict = Verdict::NotRun(why);
            return Ok(v);
        }
    };
    let reserved = (machine >= 2).then(|| cpus_here[machine - 1]);
    let mut plan = (k_cur, cand_cpus, reserved);
    let mut quota = None;
    let mut fallback_note = None;
    if needs_quota(cand_cpus) {
        match CpuQuota::new(cand_cpus) {
            Ok(q) => quota = Some(q),
            Err(why) => {
                // Fall back to whole CPUs over the whole machine, stating the asymmetry.
                match plan_replay(cur_v, cand_v, machine, false) {
                    Ok((k, c)) if !needs_quota(c) && reserved.is_some() => {
                        plan = (k, c, None);
                        fallback_note = Some(format!(
                            "UNEQUAL RUNS: {cand_cpus:.2} CPU for the candidate needs a cgroup CPU \
                             quota and none could be set ({why}), so the replay uses whole CPUs \
                             without a CPU reserved for the load generator: the current size \
                             ({k} CPUs) shares its CPUs with `frugal load` while the candidate \
                             ({c:.0} CPU) does not, which favours the candidate"
                        ));
                    }
                    _ => {
                        v.verdict = Verdict::NotRun(format!(
                            "{} has {cur_v} vCPUs and {} has {cand_v}: that is {k_cur} against \
                             {cand_cpus:.2} CPUs here, which needs a cgroup CPU quota, and none \
                             could be set: {why}",
                            current.instance_type, candidate.instance_type,
                        ));
                        return Ok(v);
                    }
                }
            }
        }
    }
    let (k_cur, cand_cpus, reserved) = plan;
    let k_cand = cand_cpus.ceil() as usize;
    // What the kernel enforces (quota / period), which is what the runs measure and report.
    let cand_cpus = quota.as_ref().map_or(cand_cpus, CpuQuota::cpus);
    v.load_generator_cpu = reserved;
    v.symmetric = fallback_note.is_none();
    let cpu_list = |cpus: &[usize]| {
        cpus.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    v.arrangement = match (&fallback_note, reserved) {
        (Some(note), _) => note.clone(),
        (None, Some(l)) => format!(
            "same arrangement in both runs and the capacity run: `frugal load` pinned to CPU {l}, \
             the server to CPU(s) {} ({k_cur} CPU) for the current size and CPU(s) {} \
             ({cand_cpus:.2} CPU{}) for the candidate",
            cpu_list(&cpus_here[..k_cur]),
            cpu_list(&cpus_here[..k_cand]),
            if quota.is_some() {
                " by a cgroup quota"
            } else {
                ""
            }
        ),
        (None, None) => format!(
            "one CPU only: `frugal load` shares CPU {} with the server in both runs ({k_cur} CPU \
             against {cand_cpus:.2} CPU{})",
            cpus_here[0],
            if quota.is_some() {
                " by a cgroup quota"
            } else {
                ""
            }
        ),
    };
    v.cgroup = match &quota {
        Some(q) => format!(
            "{}: candidate pinned to {k_cand} CPU(s) with a quota of {} us per {} us period \
             ({cand_cpus:.3} CPU)",
            cgroup_info(),
            q.quota_us,
            q.period_us
        ),
        None => format!("{}; whole CPUs by affinity, no quota used", cgroup_info()),
    };
    // The load generator: its reserved CPU; in the fallback, the CPUs the server does not use
    // (none for the current size, which then shares); on one CPU, that CPU.
    let load_cpus = |k: usize| -> Vec<usize> {
        match reserved {
            Some(l) => vec![l],
            None => cpus_here[k.min(machine)..].to_vec(),
        }
    };
    let u = current.cpu_utilization.min(0.95);
    let capacity = {
        let server = start_server(opts, &cpus_here[..k_cur], None, work_us)?;
        let r = run_load(
            opts,
            &server.url().to_string(),
            &load_cpus(k_cur),
            None,
            opts.calibrate,
            "calibrate",
        )?;
        r.achieved_rps
    };
    if capacity <= 0.0 {
        v.verdict = Verdict::NotRun("the capacity run served no requests".to_owned());
        return Ok(v);
    }
    // Rounded once: the load runs at this rate and the 95% check compares against it.
    let rate = (capacity * u).round().max(1.0);
    v.rate_basis = format!(
        "{:.0}% (observed P99.5 utilization of {}, capped at 95%) x {:.0} req/s closed-loop capacity \
         of the {k_cur}-CPU replay = {rate:.0} req/s",
        u * 100.0,
        current.instance_type,
        capacity
    );
    let runs = [
        (k_cur, k_cur as f64, None, "current"),
        (k_cand, cand_cpus, quota.as_ref(), "candidate"),
    ];
    for (k, cpus, quota, name) in runs {
        let server = start_server(opts, &cpus_here[..k], quota, work_us)?;
        let r = run_load(
            opts,
            &server.url().to_string(),
            &load_cpus(k),
            Some(rate),
            opts.duration,
            name,
        )?;
        drop(server);
        let m = measure(&r, cpus, rate, target, opts.sla_fraction);
        if name == "current" {
            v.current = Some(m);
        } else {
            v.candidate = Some(m);
        }
    }
    v.load_average = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok());
    v.verdict = if v.candidate.as_ref().is_some_and(|m| m.pass) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    Ok(v)
}
