//! The SLA screen's queueing model: M/M/c, one server per vCPU.
//!
//! Assumptions, stated in every report that uses them:
//! - requests arrive as a Poisson process at rate λ (per instance);
//! - each request needs an exponentially distributed amount of CPU with mean `S` seconds, one vCPU
//!   at a time; `S` is inferred from the data as `cpu_cores / requests_per_second` (CPU-seconds per
//!   request), scaled by the performance factors when the family changes;
//! - the instance is `c` identical servers (its vCPUs) with one FCFS queue (M/M/c);
//! - the part of the observed latency that is not CPU (I/O, downstream calls) is a constant delay
//!   `D`, fitted so that the model reproduces the observed p99 on the current type.
//!
//! Response time `T = Wq + S`. With probability `1 - C` (Erlang C) a request does not wait; else it
//! waits `Exp(cμ - λ)`. So `P(T > t) = (1 - C)·e^{-μt} + C·P(Exp(cμ-λ) + Exp(μ) > t)`.

/// Erlang C: the probability that an arrival waits, for `c` servers at offered load `a = λ/μ`.
///
/// Returns 1.0 when the system is unstable (`a >= c`).
pub fn erlang_c(c: u32, a: f64) -> f64 {
    if c == 0 || a >= f64::from(c) {
        return 1.0;
    }
    if a <= 0.0 {
        return 0.0;
    }
    // Erlang B by its stable recurrence, then C from B.
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (f64::from(k) + a * b);
    }
    let c = f64::from(c);
    c * b / (c - a * (1.0 - b))
}

/// `P(T > t)`: the probability that a request's response time exceeds `t` seconds.
///
/// `lambda` requests/s, `service_s` mean service time, `c` servers. Unstable systems return 1.0.
pub fn response_time_exceeds(lambda: f64, service_s: f64, c: u32, t: f64) -> f64 {
    if t <= 0.0 {
        return 1.0;
    }
    if service_s <= 0.0 {
        return 0.0;
    }
    let mu = 1.0 / service_s;
    let a = lambda * service_s;
    if c == 0 || a >= f64::from(c) {
        return 1.0;
    }
    let wait = erlang_c(c, a);
    let theta = f64::from(c) * mu - lambda;
    let no_wait = (-mu * t).exp();
    // Exp(theta) + Exp(mu) (hypoexponential), with the equal-rate limit (Erlang-2).
    let both = if ((theta - mu) / mu).abs() < 1e-9 {
        (1.0 + mu * t) * (-mu * t).exp()
    } else {
        (theta * (-mu * t).exp() - mu * (-theta * t).exp()) / (theta - mu)
    };
    ((1.0 - wait) * no_wait + wait * both).clamp(0.0, 1.0)
}

/// The `q`-quantile of the response time (e.g. `q = 0.99`), in seconds; infinite when unstable.
pub fn response_time_quantile(lambda: f64, service_s: f64, c: u32, q: f64) -> f64 {
    if service_s <= 0.0 {
        return 0.0;
    }
    if c == 0 || lambda * service_s >= f64::from(c) {
        return f64::INFINITY;
    }
    let tail = 1.0 - q;
    let mut hi = service_s;
    while response_time_exceeds(lambda, service_s, c, hi) > tail {
        hi *= 2.0;
        if hi > 1e9 {
            return f64::INFINITY;
        }
    }
    let mut lo = 0.0;
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if response_time_exceeds(lambda, service_s, c, mid) > tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mm1_matches_closed_form() {
        // M/M/1: T ~ Exp(mu - lambda).
        let (lambda, s): (f64, f64) = (50.0, 0.01);
        for t in [0.001, 0.01, 0.05, 0.2] {
            let want = (-(1.0 / s - lambda) * t).exp();
            let got = response_time_exceeds(lambda, s, 1, t);
            assert!((got - want).abs() < 1e-9, "t={t}: {got} vs {want}");
        }
        let p99 = response_time_quantile(lambda, s, 1, 0.99);
        assert!((p99 - (100f64).ln() / 50.0).abs() < 1e-6, "{p99}");
    }

    #[test]
    fn erlang_c_known_values() {
        // c = 2, a = 1: C = 1/3.
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(erlang_c(2, 2.0), 1.0);
        assert_eq!(erlang_c(4, 0.0), 0.0);
    }

    #[test]
    fn more_servers_never_hurt() {
        let (lambda, s) = (150.0, 0.01);
        let mut last = f64::INFINITY;
        for c in 2..8 {
            let p99 = response_time_quantile(lambda, s, c, 0.99);
            assert!(p99 <= last, "c={c}");
            last = p99;
        }
        assert!(response_time_quantile(lambda, s, 1, 0.99).is_infinite());
    }
}
