//! Synthetic sample data, generated deterministically (no randomness from the environment).
//!
//! [`sample`] is what `frugal rightsize --demo` analyses: five workloads × 14 days of 5-minute
//! samples with a daily cycle, quieter weekends and short spikes. It is labelled synthetic in every
//! output. [`write_bench_csv`] writes the scale benchmark's input (any number of workloads).

use std::io::Write;

use crate::queueing;
use crate::series::{Sample, SeriesSet};

/// 2024-05-01T00:00:00Z, the start of the synthetic data.
pub const START_UNIX_S: i64 = 1_714_521_600;
/// Source label of the synthetic data.
pub const SOURCE: &str = "synthetic sample (frugal rightsize --demo)";

/// A deterministic xorshift64* generator.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The shape of one synthetic workload.
#[derive(Clone, Debug)]
struct Profile {
    name: &'static str,
    instance_type: &'static str,
    vcpus: f64,
    instances: u32,
    /// CPU cores at night and at the daily peak.
    cpu_low: f64,
    cpu_high: f64,
    /// Probability per sample of a spike, and the spike's height in cores.
    spike_p: f64,
    spike_cores: f64,
    memory_gib: (f64, f64),
    /// CPU-seconds per request; 0 = no request data.
    service_s: f64,
    hours: f64,
}

const PROFILES: &[Profile] = &[
    Profile {
        name: "checkout-api",
        instance_type: "m7i.xlarge",
        vcpus: 4.0,
        instances: 6,
        cpu_low: 0.3,
        cpu_high: 1.0,
        spike_p: 0.01,
        spike_cores: 0.5,
        memory_gib: (4.0, 5.0),
        service_s: 0.004,
        hours: 14.0 * 24.0,
    },
    Profile {
        name: "search-indexer",
        instance_type: "c7i.2xlarge",
        vcpus: 8.0,
        instances: 4,
        cpu_low: 4.5,
        cpu_high: 6.8,
        spike_p: 0.02,
        spike_cores: 1.0,
        memory_gib: (9.0, 11.0),
        service_s: 0.0,
        hours: 14.0 * 24.0,
    },
    Profile {
        name: "session-cache",
        instance_type: "r7i.2xlarge",
        vcpus: 8.0,
        instances: 3,
        cpu_low: 0.5,
        cpu_high: 1.4,
        spike_p: 0.005,
        spike_cores: 0.5,
        memory_gib: (36.0, 41.0),
        service_s: 0.0008,
        hours: 14.0 * 24.0,
    },
    Profile {
        name: "report-batch",
        instance_type: "m7i.2xlarge",
        vcpus: 8.0,
        instances: 2,
        cpu_low: 0.3,
        cpu_high: 1.3,
        spike_p: 0.01,
        spike_cores: 3.4,
        memory_gib: (9.0, 10.5),
        service_s: 0.0,
        hours: 14.0 * 24.0,
    },
    Profile {
        name: "new-service",
        instance_type: "m7g.large",
        vcpus: 2.0,
        instances: 1,
        cpu_low: 0.1,
        cpu_high: 0.3,
        spike_p: 0.01,
        spike_cores: 0.2,
        memory_gib: (1.0, 1.5),
        service_s: 0.0,
        hours: 20.0,
    },
];

/// One synthetic row (owned strings are avoided: names are static).
struct Row {
    unix_s: i64,
    cpu_cores: f64,
    memory_bytes: f64,
    instances: f64,
    rps: Option<f64>,
    latency_p99_ms: Option<f64>,
}

fn rows(p: &Profile, seed: u64, step_s: i64, mut emit: impl FnMut(Row)) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let n = (p.hours * 3600.0 / step_s as f64) as i64;
    let mut spike_left = 0i64;
    for i in 0..n {
        let t = START_UNIX_S + i * step_s;
        let hour = ((t % 86_400) as f64) / 3600.0;
        let weekday = (t / 86_400 + 3) % 7; // 2024-05-01 was a Wednesday (0 = Monday)
        let day = 0.5 - 0.5 * (std::f64::consts::TAU * (hour - 3.0) / 24.0).cos();
        let weekend = if weekday >= 5 { 0.7 } else { 1.0 };
        let noise = 1.0 + 0.12 * (rng.next_f64() - 0.5);
        let mut cpu = (p.cpu_low + (p.cpu_high - p.cpu_low) * day * weekend) * noise;
        if spike_left == 0 && rng.next_f64() < p.spike_p {
            spike_left = 1 + (rng.next_f64() * 900.0 / step_s as f64) as i64; // up to 15 min
        }
        if spike_left > 0 {
            spike_left -= 1;
            cpu += p.spike_cores * (0.6 + 0.4 * rng.next_f64());
        }
        let cpu = cpu.min(p.vcpus);
        let mem =
            p.memory_gib.0 + (p.memory_gib.1 - p.memory_gib.0) * (0.7 * day + 0.3 * rng.next_f64());
        let (rps, latency) = if p.service_s > 0.0 {
            let rps = 0.85 * cpu / p.service_s; // 15% of the CPU is not request work (GC, timers)
            let model = queueing::response_time_quantile(rps, p.service_s, p.vcpus as u32, 0.99);
            let model_ms = if model.is_finite() {
                model * 1000.0
            } else {
                1000.0
            };
            (
                Some(rps),
                Some(12.0 + model_ms * (1.0 + 0.1 * rng.next_f64())),
            )
        } else {
            (None, None)
        };
        emit(Row {
            unix_s: t,
            cpu_cores: cpu,
            memory_bytes: (mem * 1024.0 * 1024.0 * 1024.0).round(),
            instances: f64::from(p.instances),
            rps,
            latency_p99_ms: latency,
        });
    }
}

/// The demo data set: five workloads, 14 days of 5-minute samples (one only 20 hours, to show the
/// insufficient-data rule).
pub fn sample() -> SeriesSet {
    let mut set = SeriesSet::new();
    for (k, p) in PROFILES.iter().enumerate() {
        rows(p, k as u64 + 1, 300, |r| {
            let sample = Sample {
                unix_ms: r.unix_s * 1000,
                workload: p.name,
                instance_type: p.instance_type,
                cpu_cores: r.cpu_cores,
                memory_bytes: r.memory_bytes,
                instances: Some(r.instances),
                requests_per_second: r.rps,
                latency_p99_ms: r.latency_p99_ms,
            };
            set.push(SOURCE, &sample, &|| "generated".to_owned());
        });
    }
    set
}

/// Writes the demo data set as CSV (the format `frugal rightsize FILE` reads).
pub fn write_sample_csv(mut out: impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "timestamp,workload,instance_type,cpu_cores,memory_bytes,instances,requests_per_second,latency_p99_ms"
    )?;
    for (k, p) in PROFILES.iter().enumerate() {
        let mut err = Ok(());
        rows(p, k as u64 + 1, 300, |r| {
            if err.is_ok() {
                err = writeln!(
                    out,
                    "{},{},{},{:.4},{},{},{},{}",
                    r.unix_s,
                    p.name,
                    p.instance_type,
                    r.cpu_cores,
                    r.memory_bytes,
                    r.instances,
                    r.rps.map_or(String::new(), |v| format!("{v:.2}")),
                    r.latency_p99_ms
                        .map_or(String::new(), |v| format!("{v:.3}")),
                );
            }
        });
        err?;
    }
    Ok(())
}

/// Writes the scale benchmark's input: `workloads` × `days` of samples every `step_s` seconds,
/// required columns only, time-major (all workloads at t, then t + step), as an exporter would.
pub fn write_bench_csv(
    mut out: impl Write,
    workloads: usize,
    days: u32,
    step_s: i64,
) -> std::io::Result<u64> {
    writeln!(
        out,
        "timestamp,workload,instance_type,cpu_cores,memory_bytes"
    )?;
    let n = i64::from(days) * 86_400 / step_s;
    let mut rngs: Vec<Rng> = (0..workloads)
        .map(|k| Rng(((k as u64 + 7) * 0x9E37_79B9) | 1))
        .collect();
    let types = [
        "m7i.xlarge",
        "c7i.2xlarge",
        "r7i.xlarge",
        "m7g.2xlarge",
        "c7g.xlarge",
    ];
    let mut rows = 0;
    for i in 0..n {
        let t = START_UNIX_S + i * step_s;
        let hour = ((t % 86_400) as f64) / 3600.0;
        let day = 0.5 - 0.5 * (std::f64::consts::TAU * (hour - 3.0) / 24.0).cos();
        for (k, rng) in rngs.iter_mut().enumerate() {
            let scale = 0.5 + (k % 7) as f64 * 0.4;
            let cpu = scale * (0.3 + 0.7 * day) * (1.0 + 0.2 * rng.next_f64());
            let mem = (2.0 + (k % 5) as f64) * 1e9 * (1.0 + 0.1 * rng.next_f64());
            writeln!(
                out,
                "{t},w{k:04},{},{cpu:.3},{mem:.0}",
                types[k % types.len()]
            )?;
            rows += 1;
        }
    }
    Ok(rows)
}
