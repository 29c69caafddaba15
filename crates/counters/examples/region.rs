//! Simulated counts of one function, per operation.
use frugal_counters::sim;

#[inline(never)]
fn bench_region(ops: u64) -> u64 {
    (0..ops).map(std::hint::black_box).sum()
}

fn main() {
    const OPS: u64 = 10_000;
    if sim::is_sim_child() {
        println!("{}", bench_region(OPS));
        return;
    }
    let run = sim::simulate_current_exe_function(&[], "*bench_region*").unwrap();
    println!(
        "{:?}\n{:?}\n{:?}",
        run.counts,
        run.counts.per_op(OPS),
        run.stdout
    );
}
