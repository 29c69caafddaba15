//! Random 4 KiB reads at a fixed queue depth through io_uring (article 2.5, which ran
//! `fio --rw=randread --ioengine=libaio --bs=4k --iodepth=64`): IOPS, MiB/s, per-read latency
//! percentiles, CPU time and context switches per I/O, and optionally fio beside it.
//!
//! [`run`] keeps `queue_depth` reads in flight, each at a block-aligned offset drawn from a
//! seeded xorshift, with `O_DIRECT` by default. If the file system refuses `O_DIRECT`
//! (`EINVAL` when opening, or in a read's completion), the run falls back to buffered reads and says so in [`IoReport::notes`] — never
//! silently. CPU time and context switches come from `getrusage(RUSAGE_THREAD)` of the
//! submitting thread (work io_uring hands to kernel worker threads is not counted there).
//! Hardware counters are not read here (this VM has no PMU); `frugal stat -- frugal bench io`
//! measures software counters of the whole process.
//!
//! The unsafe code (io_uring submission, `getrusage`) lives in one private module with a
//! `// SAFETY:` note per operation. It is not run under valgrind memcheck: valgrind does not
//! model io_uring, so its tests check the bytes read against a known pattern instead.
//!
//! ```no_run
//! use frugal_workloads::io::{run, IoConfig};
//! let report = run(&IoConfig::new("frugal-io.dat")).unwrap();
//! println!("{:.0} IOPS, p99 {} ns", report.iops, report.latency_ns.p99);
//! ```

mod render;
mod uring;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::Error;

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// How the file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoMode {
    /// `O_DIRECT`: the page cache is bypassed.
    Direct,
    /// Through the page cache, which may serve the reads.
    Buffered,
}

/// Parameters of [`run`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IoConfig {
    /// The file to read; created (filled with a non-zero pattern) when missing.
    pub path: PathBuf,
    /// Size of the file to create, and the range read (an existing file's length if smaller).
    pub size_bytes: u64,
    /// Reads kept in flight.
    pub queue_depth: u32,
    /// Bytes per read, also the offset alignment (a power of two, at least 512).
    pub block_size_bytes: u32,
    /// How long to keep reading.
    pub duration: Duration,
    /// Stop after this many reads (before `duration` if reached first).
    pub max_ops: Option<u64>,
    /// Ask for `O_DIRECT` (falls back to buffered, with a note, if refused).
    pub direct: bool,
    /// Seed of the offset generator.
    pub seed: u64,
    /// Check every block read against the pattern [`fill_pattern`] writes.
    pub verify: bool,
}

impl IoConfig {
    /// Defaults: 1 GiB, QD 64, 4 KiB, 10 s, `O_DIRECT`, no verification.
    pub fn new(path: impl Into<PathBuf>) -> IoConfig {
        IoConfig {
            path: path.into(),
            size_bytes: 1 << 30,
            queue_depth: 64,
            block_size_bytes: 4096,
            duration: Duration::from_secs(10),
            max_ops: None,
            direct: true,
            seed: 0x9E37_79B9_7F4A_7C15,
            verify: false,
        }
    }
}

/// Per-read latency, nanoseconds: from just before the `io_uring_enter` that submits the read
/// (one timestamp per submitted batch) to the time its completion is reaped (one timestamp per
/// reaped batch), so it includes the wait for the reaping thread to wake up.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LatencyNs {
    /// Smallest.
    pub min: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

/// CPU time and scheduler/memory events of the submitting thread during the run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct CpuUsage {
    /// User CPU time.
    pub user_ns: u64,
    /// System (kernel) CPU time.
    pub system_ns: u64,
    /// (User + system) / reads.
    pub cpu_ns_per_io: f64,
    /// User CPU time of the whole process (io_uring worker threads included).
    pub process_user_ns: u64,
    /// System CPU time of the whole process (io_uring worker threads included).
    pub process_system_ns: u64,
    /// (Process user + system) / reads.
    pub process_cpu_ns_per_io: f64,
    /// Voluntary context switches (waiting for completions).
    pub voluntary_context_switches: u64,
    /// Involuntary context switches (preemption).
    pub involuntary_context_switches: u64,
    /// Minor page faults.
    pub minor_page_faults: u64,
    /// Major page faults.
    pub major_page_faults: u64,
}

/// fio's result on the same file, for comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FioResult {
    /// The command run.
    pub command: Vec<String>,
    /// fio's version string.
    pub version: String,
    /// Reads per second.
    pub iops: f64,
    /// Throughput, MiB/s.
    pub mib_per_s: f64,
    /// Which fio latency the percentiles are: `"lat"` (submission to completion, like ours,
    /// asked for with `--lat_percentiles=1`) or `"clat"` (completion only, older fio).
    pub latency_kind: String,
    /// Median latency, nanoseconds.
    pub p50_ns: u64,
    /// 99th percentile latency.
    pub p99_ns: u64,
    /// 99.9th percentile latency.
    pub p999_ns: u64,
    /// Largest latency.
    pub max_ns: u64,
    /// fio's user CPU, percent of one CPU.
    pub usr_cpu_percent: f64,
    /// fio's system CPU, percent of one CPU.
    pub sys_cpu_percent: f64,
    /// fio's context switches.
    pub context_switches: u64,
}

/// The version of [`IoReport`]'s JSON layout.
pub const SCHEMA_VERSION: u32 = 1;

/// The result of [`run`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IoReport {
    /// Version of this layout: [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Always `"io_uring"`.
    pub engine: String,
    /// The file read.
    pub path: String,
    /// File system type of the file (from `/proc/self/mountinfo`), if found.
    pub filesystem: Option<String>,
    /// Bytes of the file in the random range.
    pub file_size_bytes: u64,
    /// Whether this run created the file.
    pub file_created: bool,
    /// Whether `O_DIRECT` was asked for.
    pub direct_requested: bool,
    /// How the file was actually read.
    pub mode: IoMode,
    /// Reads in flight.
    pub queue_depth: u32,
    /// Bytes per read.
    pub block_size_bytes: u32,
    /// Wall time of the run.
    pub wall_time_ns: u64,
    /// Reads completed.
    pub ops: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Reads per second.
    pub iops: f64,
    /// Throughput in MiB/s.
    pub mib_per_s: f64,
    /// Per-read latency.
    pub latency_ns: LatencyNs,
    /// CPU and scheduler cost, `None` if `getrusage` failed.
    pub cpu: Option<CpuUsage>,
    /// Blocks checked against the pattern (0 unless verifying).
    pub verified_blocks: u64,
    /// What the reader should know: fallbacks, page cache, counters not measured.
    pub notes: Vec<String>,
    /// fio on the same file, when run.
    pub fio: Option<FioResult>,
}

/// The 8-byte word at byte `offset` (a multiple of 8) of a pattern file: never zero.
pub fn pattern_word(offset: u64) -> u64 {
    (offset / 8).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 0x0101_0101_0101_0101
}

/// Fills `buf` with the pattern as it lies at byte `offset` (a multiple of 8) of the file.
pub fn fill_pattern(offset: u64, buf: &mut [u8]) {
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let w = pattern_word(offset + 8 * i as u64).to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
}

/// Creates `path` of `size` bytes filled with the pattern if it does not exist; returns the
/// usable size (rounded down to `block`) and whether it was created.
fn prepare_file(path: &Path, size: u64, block: u64) -> Result<(u64, bool), Error> {
    match std::fs::metadata(path) {
        Ok(meta) => {
            if !meta.is_file() {
                return Err(Error::Config(format!(
                    "{} is not a regular file; pass --file a file to read (or a new name to create one)",
                    path.display()
                )));
            }
            let usable = meta.len().min(size) / block * block;
            if usable == 0 {
                return Err(Error::Config(format!(
                    "{} holds {} bytes, less than one block ({block} bytes); remove it to let frugal \
                     create it",
                    path.display(),
                    meta.len()
                )));
            }
            Ok((usable, false))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let what = format!(
                "cannot create {}; pass --file in a writable directory",
                path.display()
            );
            check_free_space(path, size / block * block)?;
            // Written under a temporary name and renamed when complete, so a failure never
            // leaves a partial file that a later run would take for a pattern file.
            let mut tmp_name = path.as_os_str().to_owned();
            tmp_name.push(".tmp");
            let tmp = PathBuf::from(tmp_name);
            let written = write_pattern_file(&tmp, size / block * block);
            if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::Io { what, source: e });
            }
            Ok((size / block * block, true))
        }
        Err(e) => Err(Error::Io {
            what: format!("cannot stat {}", path.display()),
            source: e,
        }),
    }
}

/// Refuses read buffers (queue depth x block size) that would take more than half the memory
/// `available` (bytes, and where the figure comes from).
fn buffers_fit(queue_depth: u32, bs: u32, available: Option<&(u64, String)>) -> Result<(), Error> {
    let buffers = u64::from(queue_depth) * u64::from(bs);
    match available {
        Some((available, source)) if buffers > available / 2 => Err(Error::Config(format!(
            "queue depth {queue_depth} x block size {bs} = {buffers} bytes of read buffers, more \
             than half of the {available} bytes available ({source}); lower the queue depth or \
             the block size"
        ))),
        _ => Ok(()),
    }
}

/// Refuses, before writing anything, a file larger than the room its file system has left.
fn check_free_space(path: &Path, size: u64) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // A directory that cannot be inspected is reported when the file is created.
    let Ok(vfs) = rustix::fs::statvfs(dir) else {
        return Ok(());
    };
    let free = vfs.f_bavail.saturating_mul(vfs.f_frsize);
    if size > free {
        return Err(Error::Config(format!(
            "creating {} needs {size} bytes, but its file system has {free} bytes free for \
             unprivileged use (statvfs f_bavail x f_frsize); pass a smaller --size or a --file on \
             another file system",
            path.display()
        )));
    }
    Ok(())
}

/// Writes `size` bytes of the pattern to a new file at `path`, synced to disk.
fn write_pattern_file(path: &Path, size: u64) -> io::Result<()> {
    let mut f = File::create(path)?;
    let mut chunk = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < size {
        let n = (size - off).min(chunk.len() as u64) as usize;
        fill_pattern(off, &mut chunk[..n]);
        f.write_all(&chunk[..n])?;
        off += n as u64;
    }
    f.sync_all()
}

/// Opens for reading, with `O_DIRECT` if asked; falls back to buffered if it is refused.
fn open_read(
    path: &Path,
    direct: bool,
    open: &dyn Fn(&Path, bool) -> io::Result<File>,
    notes: &mut Vec<String>,
) -> Result<(File, IoMode), Error> {
    let what = || format!("cannot open {} for reading", path.display());
    if direct {
        match open(path, true) {
            Ok(f) => return Ok((f, IoMode::Direct)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                notes.push(fallback_note(path));
            }
            Err(e) => {
                return Err(Error::Io {
                    what: what(),
                    source: e,
                })
            }
        }
    }
    let f = open(path, false).map_err(io_err(what()))?;
    Ok((f, IoMode::Buffered))
}

fn fallback_note(path: &Path) -> String {
    format!(
        "FALLBACK: O_DIRECT refused (EINVAL) for {}; read BUFFERED instead, so the page cache may serve reads",
        path.display()
    )
}

fn os_open(path: &Path, direct: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true);
    if direct {
        o.custom_flags(libc::O_DIRECT);
    }
    o.open(path)
}

/// The file system type of `path`: the longest mount point prefix in `/proc/self/mountinfo`.
fn filesystem_of(path: &Path) -> Option<String> {
    let path = std::fs::canonicalize(path).ok()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(usize, String)> = None;
    for line in info.lines() {
        let mut parts = line.split(" - ");
        let (left, right) = (parts.next()?, parts.next()?);
        let mount = left.split_whitespace().nth(4)?.replace("\\040", " ");
        let fstype = right.split_whitespace().next()?;
        if path.starts_with(&mount) && best.as_ref().is_none_or(|(n, _)| mount.len() >= *n) {
            best = Some((mount.len(), fstype.to_owned()));
        }
    }
    best.map(|(_, t)| t)
}

struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Runs the experiment.
pub fn run(config: &IoConfig) -> Result<IoReport, Error> {
    run_with(config, &os_open)
}

fn run_with(
    config: &IoConfig,
    open: &dyn Fn(&Path, bool) -> io::Result<File>,
) -> Result<IoReport, Error> {
    let bs = config.block_size_bytes;
    if !bs.is_power_of_two() || bs < 512 {
        return Err(Error::Config(format!(
            "block size {bs} must be a power of two, at least 512"
        )));
    }
    if config.queue_depth == 0 || config.queue_depth > 4096 {
        return Err(Error::Config(format!(
            "queue depth {} must be 1..=4096",
            config.queue_depth
        )));
    }
    buffers_fit(
        config.queue_depth,
        bs,
        crate::tasks::available_memory().as_ref(),
    )?;
    if config.size_bytes < u64::from(bs) {
        // Checked before the file is created: a file of zero blocks would be left behind, and
        // there would be no offset to read.
        return Err(Error::Config(format!(
            "size {} bytes is smaller than one block ({bs} bytes); the file must hold at least one block",
            config.size_bytes
        )));
    }
    if config.duration.is_zero() && config.max_ops.is_none() {
        return Err(Error::Config(
            "the duration must be above zero (or set max ops)".to_owned(),
        ));
    }
    if config.max_ops == Some(0) {
        return Err(Error::Config(
            "max ops must be at least 1 (leave it unset to run for the duration)".to_owned(),
        ));
    }
    let (size, created) = prepare_file(&config.path, config.size_bytes, u64::from(bs))?;
    let mut notes = Vec::new();
    let (file, mut mode) = open_read(&config.path, config.direct, open, &mut notes)?;
    let filesystem = filesystem_of(&config.path);
    let mut outcome = measure(config, file, size);
    if let (Err(Error::Read { source, .. }), IoMode::Direct) = (&outcome, mode) {
        // Some file systems accept the O_DIRECT open and refuse the reads (EINVAL in the
        // read's completion). Other EINVALs (io_uring setup, io_uring_enter) are not that.
        if source.raw_os_error() == Some(libc::EINVAL) {
            notes.push(fallback_note(&config.path));
            let (file, m) = open_read(&config.path, false, open, &mut notes)?;
            mode = m;
            outcome = measure(config, file, size);
        }
    }
    let m = outcome?;
    match mode {
        IoMode::Direct => notes.push("direct: O_DIRECT bypasses the page cache".to_owned()),
        IoMode::Buffered => notes.push(format!(
            "buffered: nothing was dropped from the page cache, which may serve reads of this {} MiB file",
            size >> 20
        )),
    }
    if mode == IoMode::Direct && filesystem.as_deref() == Some("tmpfs") {
        notes.push(
            "tmpfs accepts O_DIRECT (Linux 6.6+) but the data lives in memory: no device is read"
                .to_owned(),
        );
    }
    notes.push(
        "hardware counters not measured (no PMU on this VM); context switches, page faults and the first CPU \
         figures are the submitting thread's (getrusage RUSAGE_THREAD); process CPU (RUSAGE_SELF) also counts \
         io_uring's worker threads"
            .to_owned(),
    );
    let secs = m.wall.as_secs_f64().max(1e-9);
    let h = &m.hist;
    let cpu = m.usage.zip(m.process).map(|((a, b), (pa, pb))| {
        let user_ns = b.user_ns - a.user_ns;
        let system_ns = b.system_ns - a.system_ns;
        let process_user_ns = pb.user_ns - pa.user_ns;
        let process_system_ns = pb.system_ns - pa.system_ns;
        CpuUsage {
            process_user_ns,
            process_system_ns,
            process_cpu_ns_per_io: (process_user_ns + process_system_ns) as f64
                / m.ops.max(1) as f64,
            user_ns,
            system_ns,
            cpu_ns_per_io: (user_ns + system_ns) as f64 / m.ops.max(1) as f64,
            voluntary_context_switches: b.voluntary_switches - a.voluntary_switches,
            involuntary_context_switches: b.involuntary_switches - a.involuntary_switches,
            minor_page_faults: b.minor_faults - a.minor_faults,
            major_page_faults: b.major_faults - a.major_faults,
        }
    });
    Ok(IoReport {
        schema_version: SCHEMA_VERSION,
        engine: "io_uring".to_owned(),
        path: config.path.display().to_string(),
        filesystem,
        file_size_bytes: size,
        file_created: created,
        direct_requested: config.direct,
        mode,
        queue_depth: config.queue_depth,
        block_size_bytes: bs,
        wall_time_ns: m.wall.as_nanos() as u64,
        ops: m.ops,
        bytes: m.ops * u64::from(bs),
        iops: m.ops as f64 / secs,
        mib_per_s: (m.ops * u64::from(bs)) as f64 / secs / (1 << 20) as f64,
        latency_ns: LatencyNs {
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        },
        cpu,
        verified_blocks: m.verified,
        notes,
        fio: None,
    })
}

struct Measured {
    ops: u64,
    verified: u64,
    wall: Duration,
    hist: hdrhistogram::Histogram<u64>,
    usage: Option<(uring::Usage, uring::Usage)>,
    process: Option<(uring::Usage, uring::Usage)>,
}

/// Reads a slot may be re-queued after `-EAGAIN`/`-EINTR` in a row before the run fails.
const MAX_RETRIES: u32 = 1000;

fn measure(config: &IoConfig, file: File, size: u64) -> Result<Measured, Error> {
    let bs = u64::from(config.block_size_bytes);
    let blocks = size / bs;
    let mut ring = uring::Ring::new(file, config.queue_depth, bs as usize).map_err(io_err(
        "cannot set up io_uring (is io_uring disabled by kernel.io_uring_disabled?)",
    ))?;
    let slots = ring.slots();
    let mut rng = Xorshift(config.seed | 1);
    let mut offsets = vec![0u64; slots];
    let mut retries = vec![0u32; slots];
    let mut started = vec![Instant::now(); slots];
    // Slots queued since the last submission: stamped together just before it.
    let mut unstamped: Vec<usize> = Vec::with_capacity(slots);
    let mut completed: Vec<usize> = Vec::with_capacity(slots);
    let mut hist = hdrhistogram::Histogram::<u64>::new(3).expect("3 significant figures is valid");
    let mut done = Vec::with_capacity(slots);
    let mut expected = vec![0u8; bs as usize];
    let (mut ops, mut verified, mut queued) = (0u64, 0u64, 0u64);
    let max_ops = config.max_ops.unwrap_or(u64::MAX);
    let queue_err = || io_err("cannot queue an io_uring read");
    let usage_before = uring::usage(true).ok();
    let process_before = uring::usage(false).ok();
    let start = Instant::now();
    let deadline = start + config.duration;
    for (slot, offset) in offsets.iter_mut().enumerate() {
        if queued >= max_ops {
            break;
        }
        *offset = rng.next() % blocks * bs;
        ring.queue_read(slot, *offset).map_err(queue_err())?;
        unstamped.push(slot);
        queued += 1;
    }
    let mut failure = None;
    while ring.pending() > 0 {
        // Latency runs from just before the submission (one stamp for the batch submitted
        // together) to the time its completion is reaped (one stamp per reaped batch).
        let submitted = Instant::now();
        for slot in unstamped.drain(..) {
            started[slot] = submitted;
        }
        ring.wait(&mut done)
            .map_err(io_err("io_uring_enter failed"))?;
        let now = Instant::now();
        completed.clear();
        for (slot, res) in done.drain(..) {
            if failure.is_some() {
                continue;
            }
            if res == -libc::EAGAIN || res == -libc::EINTR {
                // Not done, not counted: read the same offset again, unless it keeps failing.
                retries[slot] += 1;
                if retries[slot] > MAX_RETRIES {
                    failure = Some((offsets[slot], io::Error::from_raw_os_error(-res)));
                    continue;
                }
                ring.queue_read(slot, offsets[slot]).map_err(queue_err())?;
                unstamped.push(slot);
                continue;
            }
            retries[slot] = 0;
            if res < 0 {
                failure = Some((offsets[slot], io::Error::from_raw_os_error(-res)));
                continue;
            }
            if res as u64 != bs {
                failure = Some((
                    offsets[slot],
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("short read of {res} bytes"),
                    ),
                ));
                continue;
            }
            let _ = hist.record((now - started[slot]).as_nanos().max(1) as u64);
            ops += 1;
            completed.push(slot);
        }
        // Verification happens after the batch's latencies are recorded, and before the slots
        // are reused (a new read would overwrite the buffer).
        if config.verify {
            for &slot in &completed {
                fill_pattern(offsets[slot], &mut expected);
                if ring.block(slot) != expected.as_slice() {
                    return Err(Error::Mismatch {
                        offset: offsets[slot],
                    });
                }
                verified += 1;
            }
        }
        if failure.is_none() {
            for &slot in &completed {
                if now >= deadline || queued >= max_ops {
                    break;
                }
                offsets[slot] = rng.next() % blocks * bs;
                ring.queue_read(slot, offsets[slot]).map_err(queue_err())?;
                unstamped.push(slot);
                queued += 1;
            }
        }
    }
    let wall = start.elapsed();
    let usage = usage_before.zip(uring::usage(true).ok());
    let process = process_before.zip(uring::usage(false).ok());
    if let Some((offset, source)) = failure {
        return Err(Error::Read { offset, source });
    }
    Ok(Measured {
        ops,
        verified,
        wall,
        hist,
        usage,
        process,
    })
}

/// Whether `fio` is on `PATH`.
pub fn fio_available() -> bool {
    Command::new("fio")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs fio with libaio on the same file and parameters (random reads, `--direct` as asked).
pub fn run_fio(config: &IoConfig, size_bytes: u64) -> Result<FioResult, Error> {
    let command: Vec<String> = vec![
        "fio".into(),
        "--name=frugal".into(),
        format!("--filename={}", config.path.display()),
        "--ioengine=libaio".into(),
        format!("--direct={}", u8::from(config.direct)),
        "--rw=randread".into(),
        format!("--bs={}", config.block_size_bytes),
        format!("--iodepth={}", config.queue_depth),
        format!("--size={size_bytes}"),
        "--time_based".into(),
        "--lat_percentiles=1".into(),
        format!("--runtime={}ms", config.duration.as_millis().max(1)),
        "--output-format=json".into(),
    ];
    let out = Command::new(&command[0])
        .args(&command[1..])
        .output()
        .map_err(|e| {
            Error::Fio(format!(
                "cannot run fio ({e}); install it: apt-get install -y fio"
            ))
        })?;
    if !out.status.success() {
        return Err(Error::Fio(format!(
            "exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    parse_fio(&String::from_utf8_lossy(&out.stdout), command)
}

fn parse_fio(text: &str, command: Vec<String>) -> Result<FioResult, Error> {
    // fio may print notices before the JSON object.
    let start = text
        .find('{')
        .ok_or_else(|| Error::Fio("no JSON in fio's output".into()))?;
    let v: serde_json::Value = serde_json::from_str(&text[start..])
        .map_err(|e| Error::Fio(format!("cannot parse its JSON: {e}")))?;
    let job = &v["jobs"][0];
    let read = &job["read"];
    // With --lat_percentiles=1 fio fills lat_ns.percentile (submission to completion).
    let kind = if read["lat_ns"]["percentile"].is_object() {
        "lat"
    } else {
        "clat"
    };
    let lat = &read[format!("{kind}_ns").as_str()];
    let pct = |p: &str| lat["percentile"][p].as_u64().unwrap_or(0);
    let iops = read["iops"]
        .as_f64()
        .ok_or_else(|| Error::Fio("no jobs[0].read.iops in its JSON".into()))?;
    Ok(FioResult {
        command,
        version: v["fio version"].as_str().unwrap_or("").to_owned(),
        iops,
        mib_per_s: read["bw_bytes"].as_f64().unwrap_or(0.0) / (1 << 20) as f64,
        latency_kind: kind.to_owned(),
        p50_ns: pct("50.000000"),
        p99_ns: pct("99.000000"),
        p999_ns: pct("99.900000"),
        max_ns: lat["max"].as_u64().unwrap_or(0),
        usr_cpu_percent: job["usr_cpu"].as_f64().unwrap_or(0.0),
        sys_cpu_percent: job["sys_cpu"].as_f64().unwrap_or(0.0),
        context_switches: job["ctx"].as_u64().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern_file(dir: &Path, size: u64) -> PathBuf {
        let path = dir.join("pattern.dat");
        let mut buf = vec![0u8; size as usize];
        fill_pattern(0, &mut buf);
        std::fs::write(&path, &buf).unwrap();
        path
    }

    #[test]
    fn reads_return_the_right_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = pattern_file(dir.path(), 256 * 1024);
        let mut config = IoConfig::new(&path);
        config.queue_depth = 8;
        config.max_ops = Some(500);
        config.duration = Duration::from_secs(60);
        config.verify = true;
        config.direct = false;
        let report = run(&config).unwrap();
        assert_eq!(report.ops, 500);
        assert_eq!(report.verified_blocks, 500);
        assert!(!report.file_created);
    }

    #[test]
    fn verification_catches_wrong_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zeros.dat");
        std::fs::write(&path, vec![0u8; 64 * 1024]).unwrap();
        let mut config = IoConfig::new(&path);
        config.max_ops = Some(10);
        config.direct = false;
        config.verify = true;
        assert!(matches!(run(&config), Err(Error::Mismatch { .. })));
    }

    #[test]
    fn refused_direct_falls_back_with_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let path = pattern_file(dir.path(), 64 * 1024);
        let refuse = |p: &Path, direct: bool| {
            if direct {
                Err(io::Error::from_raw_os_error(libc::EINVAL))
            } else {
                os_open(p, false)
            }
        };
        let mut config = IoConfig::new(&path);
        config.max_ops = Some(10);
        let report = run_with(&config, &refuse).unwrap();
        assert_eq!(report.mode, IoMode::Buffered);
        assert!(report.direct_requested);
        assert!(report
            .notes
            .iter()
            .any(|n| n.starts_with("FALLBACK: O_DIRECT refused")));
    }

    /// Direct (or, where refused, a marked fallback) reads also return the right bytes.
    fn direct_run_in(dir: &Path) -> IoReport {
        let path = pattern_file(dir, 256 * 1024);
        let mut config = IoConfig::new(&path);
        config.queue_depth = 4;
        config.max_ops = Some(200);
        config.verify = true;
        let report = run(&config).unwrap();
        assert_eq!(report.verified_blocks, 200);
        let fallback = report.notes.iter().any(|n| n.starts_with("FALLBACK"));
        assert_eq!(
            report.mode == IoMode::Buffered,
            fallback,
            "{:?}",
            report.notes
        );
        report
    }

    #[test]
    fn direct_reads_return_the_right_bytes() {
        let dir = tempfile::tempdir().unwrap();
        direct_run_in(dir.path());
    }

    #[test]
    fn tmpfs_direct_is_reported_as_direct_from_memory_or_fallback() {
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() {
            eprintln!("skipped: no /dev/shm");
            return;
        }
        let dir = tempfile::tempdir_in(shm).unwrap();
        let report = direct_run_in(dir.path());
        if report.filesystem.as_deref() == Some("tmpfs") && report.mode == IoMode::Direct {
            assert!(report
                .notes
                .iter()
                .any(|n| n.starts_with("tmpfs accepts O_DIRECT")));
        }
    }

    #[test]
    fn zero_max_ops_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = pattern_file(dir.path(), 64 * 1024);
        let mut config = IoConfig::new(&path);
        config.max_ops = Some(0);
        assert!(matches!(run(&config), Err(Error::Config(_))));
    }

    #[test]
    fn a_size_below_one_block_is_refused_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for size in [0, 1000] {
            let path = dir.path().join(format!("new-{size}.dat"));
            let mut config = IoConfig::new(&path);
            config.size_bytes = size;
            let err = run(&config).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{err}");
            assert!(err.to_string().contains("smaller than one block"), "{err}");
            assert!(!path.exists(), "a file was left behind");
        }
        let empty = dir.path().join("empty.dat");
        std::fs::write(&empty, b"").unwrap();
        let err = run(&IoConfig::new(&empty)).unwrap_err();
        assert!(err.to_string().contains("holds 0 bytes"), "{err}");
        let err = run(&IoConfig::new(dir.path())).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn read_buffers_must_fit_in_half_the_available_memory() {
        let gib = (1u64 << 30, "MemAvailable in /proc/meminfo".to_owned());
        buffers_fit(64, 4096, Some(&gib)).unwrap();
        let err = buffers_fit(4096, 1 << 20, Some(&gib))
            .unwrap_err()
            .to_string();
        assert!(err.contains("4294967296 bytes of read buffers"), "{err}");
        assert!(err.contains("MemAvailable"), "{err}");
        buffers_fit(4096, 1 << 20, None).unwrap();
    }

    #[test]
    fn a_file_larger_than_the_free_space_is_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.dat");
        let err = prepare_file(&path, 1 << 60, 4096).unwrap_err().to_string();
        assert!(err.contains("bytes free"), "{err}");
        assert!(!path.exists());
        assert!(!dir.path().join("huge.dat.tmp").exists());
    }

    #[test]
    fn created_file_is_complete_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.dat");
        let (size, created) = prepare_file(&path, 10_000, 4096).unwrap();
        assert_eq!((size, created), (8192, true));
        let bytes = std::fs::read(&path).unwrap();
        let mut expected = vec![0u8; 8192];
        fill_pattern(0, &mut expected);
        assert_eq!(bytes, expected);
        assert!(!dir.path().join("new.dat.tmp").exists());
    }

    #[test]
    fn failed_creation_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("new.dat");
        assert!(matches!(
            prepare_file(&path, 8192, 4096),
            Err(Error::Io { .. })
        ));
        assert!(!path.exists());
    }

    #[test]
    fn xorshift_is_seeded_and_deterministic() {
        let (mut a, mut b) = (Xorshift(7), Xorshift(7));
        let xs: Vec<u64> = (0..4).map(|_| a.next()).collect();
        assert_eq!(xs, (0..4).map(|_| b.next()).collect::<Vec<_>>());
        assert!(xs.iter().all(|&x| x != 0));
    }

    #[test]
    fn pattern_has_no_zero_bytes() {
        let mut buf = vec![0u8; 4096];
        fill_pattern(12345 * 8, &mut buf);
        assert!(buf.iter().all(|&b| b != 0));
    }

    #[test]
    fn parses_fio_json() {
        let text = r#"note: both iodepth >= 1 and synchronous I/O engine are selected
{"fio version":"fio-3.33","jobs":[{"usr_cpu":1.5,"sys_cpu":20.0,"ctx":1234,
 "read":{"iops":5000.5,"bw_bytes":20482048,"clat_ns":{"max":900000,
 "percentile":{"50.000000":100000,"99.000000":400000,"99.900000":800000}}}}]}"#;
        let r = parse_fio(text, vec!["fio".into()]).unwrap();
        assert_eq!(r.version, "fio-3.33");
        assert_eq!(r.p99_ns, 400000);
        assert_eq!(r.latency_kind, "clat");
        assert_eq!(r.context_switches, 1234);
        assert!((r.iops - 5000.5).abs() < 1e-9);
    }
}
