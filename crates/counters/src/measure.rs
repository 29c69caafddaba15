//! In-process measurement of a closure: samples of `iters` calls, counter-read cost subtracted,
//! normalized per operation, summarized.

use std::hint::black_box;
use std::time::Instant;

use crate::{CounterSet, CounterStatus, Error, Event, RawValue, Summary};

/// Empty samples taken to measure what reading the counters itself costs.
const CALIBRATION_SAMPLES: usize = 64;

/// Counters opened on the calling thread, ready to measure closures.
///
/// ```
/// use frugal_counters::{Event, Measurement};
///
/// let report = Measurement::new(&[Event::TaskClock, Event::Instructions])?
///     .run(1_000, 5, || (0..100u64).sum::<u64>())?;
/// // Wall time is always measured.
/// assert_eq!(report.wall_time_ns_per_op.samples.len(), 5);
/// // A PMU-less machine reports instructions as unsupported, never as zero.
/// match report.per_op(Event::Instructions) {
///     Some(summary) => assert!(summary.median > 0.0),
///     None => assert!(!report.event(Event::Instructions).unwrap().status.is_counting()),
/// }
/// # Ok::<(), frugal_counters::Error>(())
/// ```
#[derive(Debug)]
pub struct Measurement {
    counters: CounterSet,
}

/// The result of [`Measurement::run`]: per-operation summaries of every event and of wall time.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MeasurementReport {
    /// Calls of the closure per sample.
    pub iters_per_sample: u64,
    /// Number of samples.
    pub samples: usize,
    /// Wall-clock nanoseconds per call (timer cost subtracted).
    pub wall_time_ns_per_op: Summary,
    /// One entry per event, in the order given to [`Measurement::new`].
    pub events: Vec<EventMeasurement>,
}

/// One event's result in a [`MeasurementReport`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct EventMeasurement {
    /// The event.
    pub event: Event,
    /// Counting, unsupported on this machine, or failed.
    pub status: CounterStatus,
    /// Count per call of the closure (read cost subtracted), `None` unless counting.
    pub per_op: Option<Summary>,
    /// Lowest share of time the counter was on the PMU over all samples, in percent (< 100 when
    /// multiplexed; counts are scaled up accordingly).
    pub running_pct: Option<f64>,
    /// What one pair of counter reads adds to a sample (median), subtracted from every sample.
    pub read_overhead_per_sample: Option<f64>,
}

impl MeasurementReport {
    /// The entry for `event`, if it was requested.
    pub fn event(&self, event: Event) -> Option<&EventMeasurement> {
        self.events.iter().find(|e| e.event == event)
    }

    /// The per-operation summary of `event`, `None` if not counting (or not requested).
    pub fn per_op(&self, event: Event) -> Option<&Summary> {
        self.event(event).and_then(|e| e.per_op.as_ref())
    }
}

impl Measurement {
    /// Opens `events` on the calling thread. Unsupported events are kept (and reported as such).
    pub fn new(events: &[Event]) -> Result<Measurement, Error> {
        Ok(Measurement {
            counters: CounterSet::open(events)?,
        })
    }

    /// The underlying counters (e.g. to inspect [`CounterSet::status`]).
    pub fn counters(&mut self) -> &mut CounterSet {
        &mut self.counters
    }

    /// Runs `f` `iters_per_sample` times per sample, `samples` times, on the calling thread, and
    /// returns per-call summaries. The closure's result goes through [`black_box`].
    ///
    /// Each sample is `read; t0; f × iters; t1; read`. The same sequence with no calls of `f` is
    /// run first (64 times) and its median, the cost of the reads and timer
    /// themselves, is subtracted from every sample before dividing by `iters_per_sample`
    /// (clamped at 0).
    pub fn run<R>(
        &mut self,
        iters_per_sample: u64,
        samples: usize,
        mut f: impl FnMut() -> R,
    ) -> Result<MeasurementReport, Error> {
        if iters_per_sample == 0 || samples == 0 {
            return Err(Error::InvalidInput(format!(
                "need at least one iteration and one sample, got {iters_per_sample} x {samples}"
            )));
        }
        let n = self.counters.events().len();
        let mut before = vec![None; n];
        let mut after = vec![None; n];

        // Calibration: what the reads and the two timer calls cost.
        let mut overhead_wall = Vec::with_capacity(CALIBRATION_SAMPLES);
        let mut overhead_counts: Vec<Vec<f64>> = vec![Vec::new(); n];
        for _ in 0..CALIBRATION_SAMPLES {
            self.counters.read_into(&mut before)?;
            let t0 = Instant::now();
            let t1 = Instant::now();
            self.counters.read_into(&mut after)?;
            overhead_wall.push(t1.duration_since(t0).as_nanos() as f64);
            for (i, (b, a)) in before.iter().zip(&after).enumerate() {
                if let Some(v) = delta(b, a) {
                    overhead_counts[i].push(v.0);
                }
            }
        }
        let wall_overhead = Summary::from_samples(overhead_wall).median;
        let count_overhead: Vec<Option<f64>> = overhead_counts
            .into_iter()
            .map(|s| (!s.is_empty()).then(|| Summary::from_samples(s).median))
            .collect();

        let mut wall = Vec::with_capacity(samples);
        let mut per_event: Vec<Vec<f64>> = vec![Vec::with_capacity(samples); n];
        let mut running: Vec<Option<f64>> = vec![None; n];
        let iters = iters_per_sample as f64;
        for _ in 0..samples {
            self.counters.read_into(&mut before)?;
            let t0 = Instant::now();
            for _ in 0..iters_per_sample {
                black_box(f());
            }
            let t1 = Instant::now();
            self.counters.read_into(&mut after)?;
            let ns = t1.duration_since(t0).as_nanos() as f64;
            wall.push(((ns - wall_overhead) / iters).max(0.0));
            for (i, (b, a)) in before.iter().zip(&after).enumerate() {
                if let Some((count, pct)) = delta(b, a) {
                    let overhead = count_overhead[i].unwrap_or(0.0);
                    per_event[i].push(((count - overhead) / iters).max(0.0));
                    running[i] = Some(running[i].map_or(pct, |r: f64| r.min(pct)));
                }
            }
        }

        let events = self
            .counters
            .events()
            .iter()
            .zip(self.counters.status())
            .enumerate()
            .map(|(i, (&event, status))| {
                let samples = std::mem::take(&mut per_event[i]);
                EventMeasurement {
                    event,
                    status: status.clone(),
                    per_op: (!samples.is_empty()).then(|| Summary::from_samples(samples)),
                    running_pct: running[i],
                    read_overhead_per_sample: count_overhead[i],
                }
            })
            .collect();
        Ok(MeasurementReport {
            iters_per_sample,
            samples,
            wall_time_ns_per_op: Summary::from_samples(wall),
            events,
        })
    }
}

/// Scaled count and running percentage between two raw readings.
fn delta(before: &Option<RawValue>, after: &Option<RawValue>) -> Option<(f64, f64)> {
    let v = crate::Value::between((*before)?, (*after)?)?;
    Some((v.count, v.running_pct))
}
