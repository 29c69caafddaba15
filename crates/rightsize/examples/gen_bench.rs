//! Writes the scale benchmark's input: N workloads × D days of samples every S seconds (CSV).
//!
//! ```text
//! cargo run --release -p frugal-rightsize --example gen_bench -- /tmp/bench.csv 1000 14 60
//! /usr/bin/time -v target/release/frugal rightsize /tmp/bench.csv --format csv -o /dev/null
//! ```

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 2 {
        eprintln!("usage: gen_bench FILE [WORKLOADS=1000] [DAYS=14] [STEP_SECONDS=60]");
        std::process::exit(2);
    }
    let arg = |i: usize, default: u64| -> u64 {
        args.get(i).map_or(default, |s| {
            s.parse().unwrap_or_else(|_| panic!("{s} is not a number"))
        })
    };
    let (workloads, days, step) = (arg(2, 1000), arg(3, 14), arg(4, 60));
    let file = std::fs::File::create(&args[1]).expect("cannot create the output file");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let rows = frugal_rightsize::demo::write_bench_csv(
        &mut out,
        workloads as usize,
        u32::try_from(days).expect("days fit in u32"),
        step as i64,
    )
    .expect("writing the benchmark file");
    out.flush().expect("flushing the benchmark file");
    eprintln!("wrote {rows} rows to {}", args[1]);
}
