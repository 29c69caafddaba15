//! The replay plan: how many CPUs the current size and the candidate get on this machine. Pure
//! arithmetic, no system access.

/// Chooses CPU counts here that keep the ratio `cand / cur`: the largest `k_cur <= machine` with
/// `k_cur * cand / cur` a whole number in `1..=machine`.
pub fn scale_cpus(cur: u32, cand: u32, machine: usize) -> Option<(usize, usize)> {
    let (cur, cand) = (cur as usize, cand as usize);
    (1..=machine.min(cur.max(1))).rev().find_map(|k| {
        let prod = k * cand;
        (prod % cur == 0 && prod / cur >= 1 && prod / cur <= machine).then_some((k, prod / cur))
    })
}

/// CPUs for the two replays: `(current, candidate)`. Whole CPUs keeping the ratio when possible
/// ([`scale_cpus`]); else the current size gets `min(vcpus, machine)` CPUs and the candidate the
/// same fraction of them, which needs a cgroup quota when it is not whole. Errors say why the
/// replay cannot run here.
pub fn plan_cpus(cur: u32, cand: u32, machine: usize) -> std::result::Result<(usize, f64), String> {
    if let Some((k, c)) = scale_cpus(cur, cand, machine) {
        return Ok((k, c as f64));
    }
    let k = machine.min(cur.max(1) as usize);
    let c = k as f64 * f64::from(cand) / f64::from(cur.max(1));
    if c > machine as f64 {
        return Err(format!(
            "the candidate needs more CPUs than this machine has: {cand} vCPUs against {cur} \
             means {c:.2} CPUs here, and this machine offers {machine}"
        ));
    }
    Ok((k, c))
}

/// CPUs for the two replays on a machine of `machine` CPUs: `(current, candidate)`, as
/// [`plan_cpus`] gives them inside the CPUs the server may use. With `reserve_load_cpu` and at
/// least 2 CPUs, one CPU is kept for the load generator and the sizes are scaled into the other
/// `machine - 1`; otherwise into all of them.
pub fn plan_replay(
    cur: u32,
    cand: u32,
    machine: usize,
    reserve_load_cpu: bool,
) -> std::result::Result<(usize, f64), String> {
    let server = if reserve_load_cpu && machine >= 2 {
        machine - 1
    } else {
        machine
    };
    plan_cpus(cur, cand, server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractional_plans_need_a_quota() {
        assert_eq!(plan_cpus(4, 2, 2), Ok((2, 1.0)));
        assert_eq!(plan_cpus(8, 2, 2), Ok((2, 0.5)));
        assert!(plan_cpus(2, 8, 2)
            .unwrap_err()
            .contains("more CPUs than this machine has"));
    }

    #[test]
    fn replay_reserves_a_cpu_for_the_load_generator() {
        // 2 cores: the server gets 1, so a halving is 1 CPU against half a CPU.
        assert_eq!(plan_replay(4, 2, 2, true), Ok((1, 0.5)));
        assert_eq!(plan_replay(4, 2, 2, false), Ok((2, 1.0)));
        assert_eq!(plan_replay(4, 2, 3, true), Ok((2, 1.0)));
        assert_eq!(plan_replay(4, 2, 5, true), Ok((4, 2.0)));
        // One CPU: nothing to reserve.
        assert_eq!(plan_replay(4, 2, 1, true), Ok((1, 0.5)));
        assert!(plan_replay(2, 4, 2, true).is_err());
    }

    #[test]
    fn cpu_scaling_keeps_the_ratio() {
        assert_eq!(scale_cpus(4, 2, 2), Some((2, 1)));
        assert_eq!(scale_cpus(2, 1, 2), Some((2, 1)));
        assert_eq!(scale_cpus(8, 4, 2), Some((2, 1)));
        assert_eq!(
            scale_cpus(8, 2, 2),
            None,
            "a quarter of 2 CPUs is not a whole CPU"
        );
        assert_eq!(scale_cpus(8, 2, 4), Some((4, 1)));
        assert_eq!(scale_cpus(2, 4, 2), Some((1, 2)));
        assert_eq!(scale_cpus(4, 4, 2), Some((2, 2)));
    }
}
