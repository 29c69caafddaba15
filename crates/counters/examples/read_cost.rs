//! What one read of the counters costs, in process: `cargo run --release -p frugal-counters
//! --example read_cost`. Reads the software group (task-clock, context-switches,
//! cpu-migrations, page-faults: one `read()` syscall) many times and prints ns per read, then the
//! task-clock that `Measurement`'s calibration charges to a read pair plus two timer calls.
use std::time::Instant;

use frugal_counters::{CounterSet, Event, Measurement};

fn main() -> Result<(), frugal_counters::Error> {
    const BATCHES: usize = 200;
    const READS: u32 = 1000;
    let mut set = CounterSet::open(&Event::ALL)?;
    let mut buf = vec![None; set.events().len()];
    for _ in 0..1000 {
        set.read_into(&mut buf)?;
    }
    // Per-batch means; the median and minimum batch shrug off preemption on a busy machine.
    let mut batches = Vec::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        let start = Instant::now();
        for _ in 0..READS {
            set.read_into(&mut buf)?;
            std::hint::black_box(&buf);
        }
        batches.push(start.elapsed().as_nanos() as f64 / f64::from(READS));
    }
    let summary = frugal_counters::Summary::from_samples(batches);
    println!(
        "{} group(s), one read() each: {:.0} ns per CounterSet::read_into (median of {BATCHES} \
         batches of {READS}; min {:.0}, max {:.0})",
        set.group_count(),
        summary.median,
        summary.min,
        summary.max
    );
    let report = Measurement::new(&[Event::TaskClock])?.run(1, 1000, || ())?;
    let overhead = report.events[0]
        .read_overhead_per_sample
        .unwrap_or(f64::NAN);
    println!("task-clock charged to one read pair + 2 timer calls (median): {overhead:.0} ns");
    Ok(())
}
