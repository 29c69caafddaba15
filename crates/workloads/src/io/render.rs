//! [`IoReport`] for people: the table of `frugal bench io`, and its CSV.

use frugal_output::units::MISSING;
use frugal_output::{Document, Render, Table};

use super::{IoMode, IoReport, SCHEMA_VERSION};

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

impl Render for IoReport {
    const SCHEMA: &'static str = "frugal-bench-io";
    const VERSION: u32 = SCHEMA_VERSION;

    fn document(&self) -> Document {
        let r = self;
        let mode = match r.mode {
            IoMode::Direct => "direct",
            IoMode::Buffered => "buffered",
        };
        let mut doc = Document::new(format!(
            "frugal bench io: random {} B reads, QD {}, {} ({}), file {} ({} MiB{}, {})",
            r.block_size_bytes,
            r.queue_depth,
            mode,
            r.engine,
            r.path,
            r.file_size_bytes >> 20,
            if r.file_created { ", created" } else { "" },
            r.filesystem.as_deref().unwrap_or("unknown fs"),
        ));
        let mut table = Table::numeric([
            "engine", "ops", "IOPS", "MiB/s", "p50 us", "p99 us", "p99.9 us", "max us", "usr+sys",
            "CPU/IO", "ctxsw",
        ]);
        let l = &r.latency_ns;
        let secs = r.wall_time_ns as f64 / 1e9;
        table.row([
            format!("frugal {}", r.engine),
            r.ops.to_string(),
            format!("{:.0}", r.iops),
            format!("{:.1}", r.mib_per_s),
            us(l.p50),
            us(l.p99),
            us(l.p999),
            us(l.max),
            r.cpu.map_or(MISSING.to_owned(), |c| {
                format!(
                    "{:.0}%",
                    (c.process_user_ns + c.process_system_ns) as f64 / 1e9 / secs * 100.0
                )
            }),
            r.cpu.map_or(MISSING.to_owned(), |c| {
                format!("{:.2} us", c.process_cpu_ns_per_io / 1000.0)
            }),
            r.cpu.map_or(MISSING.to_owned(), |c| {
                (c.voluntary_context_switches + c.involuntary_context_switches).to_string()
            }),
        ]);
        if let Some(f) = &r.fio {
            let fio_ops = f.iops * secs;
            table.row([
                "fio libaio".to_owned(),
                format!("~{fio_ops:.0}"),
                format!("{:.0}", f.iops),
                format!("{:.1}", f.mib_per_s),
                us(f.p50_ns),
                us(f.p99_ns),
                us(f.p999_ns),
                us(f.max_ns),
                format!("{:.0}%", f.usr_cpu_percent + f.sys_cpu_percent),
                if f.iops > 0.0 {
                    format!(
                        "{:.2} us",
                        (f.usr_cpu_percent + f.sys_cpu_percent) / 100.0 / f.iops * 1e6
                    )
                } else {
                    MISSING.to_owned()
                },
                f.context_switches.to_string(),
            ]);
        }
        doc.table(table);
        if let Some(c) = &r.cpu {
            doc.line("(usr+sys and CPU/IO: whole process, like fio's per-job figures)");
            doc.line(format!(
                "submitting thread: user {} ms, system {} ms, {} voluntary + {} involuntary \
                 context switches, {} minor / {} major page faults",
                c.user_ns / 1_000_000,
                c.system_ns / 1_000_000,
                c.voluntary_context_switches,
                c.involuntary_context_switches,
                c.minor_page_faults,
                c.major_page_faults
            ));
            doc.line(format!(
                "whole process: user {} ms, system {} ms, {:.2} us CPU per read (io_uring \
                 workers included)",
                c.process_user_ns / 1_000_000,
                c.process_system_ns / 1_000_000,
                c.process_cpu_ns_per_io / 1000.0
            ));
        }
        if let Some(f) = &r.fio {
            doc.line(format!("fio ({}): {}", f.version, f.command.join(" ")));
            doc.line(format!(
                "fio latency is its {} (\"lat\" = submission to completion, like ours); \
                 its CPU is usr+sys percent of one CPU",
                f.latency_kind
            ));
        }
        for note in &r.notes {
            doc.note(note);
        }
        doc
    }

    /// One row per engine (ours, and fio when it ran), raw numbers.
    fn csv_table(&self) -> Option<Table> {
        let r = self;
        let mut t = Table::numeric([
            "engine",
            "mode",
            "block_size_bytes",
            "queue_depth",
            "ops",
            "iops",
            "mib_per_s",
            "p50_ns",
            "p99_ns",
            "p999_ns",
            "max_ns",
            "cpu_ns_per_io",
        ]);
        let mode = match r.mode {
            IoMode::Direct => "direct",
            IoMode::Buffered => "buffered",
        };
        let l = &r.latency_ns;
        t.row([
            format!("frugal {}", r.engine),
            mode.to_owned(),
            r.block_size_bytes.to_string(),
            r.queue_depth.to_string(),
            r.ops.to_string(),
            r.iops.to_string(),
            r.mib_per_s.to_string(),
            l.p50.to_string(),
            l.p99.to_string(),
            l.p999.to_string(),
            l.max.to_string(),
            r.cpu
                .map_or(String::new(), |c| c.process_cpu_ns_per_io.to_string()),
        ]);
        if let Some(f) = &r.fio {
            let cpu = f.usr_cpu_percent + f.sys_cpu_percent;
            t.row([
                "fio libaio".to_owned(),
                mode.to_owned(),
                r.block_size_bytes.to_string(),
                r.queue_depth.to_string(),
                String::new(),
                f.iops.to_string(),
                f.mib_per_s.to_string(),
                f.p50_ns.to_string(),
                f.p99_ns.to_string(),
                f.p999_ns.to_string(),
                f.max_ns.to_string(),
                if f.iops > 0.0 {
                    (cpu / 100.0 / f.iops * 1e9).to_string()
                } else {
                    String::new()
                },
            ]);
        }
        Some(t)
    }
}
