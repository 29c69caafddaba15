//! The load generator: N keep-alive connections, closed-loop or constant-rate.
//!
//! Like wrk, it runs one single-threaded event loop per OS thread, each owning a share of the
//! connections, so the hot path takes no lock. All connections are opened before the clock
//! starts. In constant-rate mode each connection follows its own schedule (rate / connections,
//! staggered so the sends are spread evenly), the latency is also measured from the *intended*
//! send time (coordinated-omission correction, as wrk2 does), and sends are timed by a
//! high-resolution [`Pacer`] rather than tokio's 1 ms timer.
//!
//! What counts: a response counts in the measured window when it *completes* inside it (wrk's
//! rule), in both modes — also when it was sent, or scheduled, during the warm-up: a slow
//! response is never hidden by the warm-up. The end of the window ends the run: no wait goes
//! past it. A request still without an answer then is *unanswered at the end* (its outcome is
//! unknown: reported, not counted as an error), unless it had already waited the whole
//! `--timeout` — then it is a timeout, as it would have been a moment later. In constant-rate
//! mode the same holds for requests scheduled before the end but never sent, measured from
//! their intended send time: with `-d 3s --timeout 30s` against a stalled server, every request
//! is unanswered at the end, none a timeout (and the run fails: no request succeeded).
//!
//! A response that breaks HTTP/1.1 is a *protocol* error; the first one's description is in
//! the report.

use std::cell::RefCell;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::client::{Conn, Failure};
use crate::latency::{histogram, LatencySummary};
use crate::load_report::{ErrorCounts, LoadMode, LoadReport};
use crate::pacer::Pacer;
use crate::Error;

/// An `http://HOST:PORT/PATH` URL, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Host as written (sent in the `Host` header).
    pub host: String,
    /// Port (80 when absent).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
    /// The first address the host resolved to.
    pub addr: SocketAddr,
}

impl FromStr for Url {
    type Err = Error;

    /// Parsed by `http::Uri` (the `http` crate hyper uses), then checked for what the load
    /// generator can use: the `http` scheme, a host, a port that is a number.
    fn from_str(url: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(bad("only http:// is supported"));
        };
        // `http::Uri` calls an empty authority an invalid format; say what is missing.
        if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
            return Err(bad("the host is empty"));
        }
        let uri: http::Uri =
            url.parse()
                .map_err(|e: http::uri::InvalidUri| match e.to_string().as_str() {
                    "invalid port" => bad("the port is not a number"),
                    why => bad(&format!("not a URL: {why}")),
                })?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// is supported"));
        }
        let authority = uri.authority().ok_or_else(|| bad("the host is empty"))?;
        let host = authority.host();
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        // `Authority::port` is `None` both without a port and for one that is not a number:
        // whatever follows the host tells which.
        let after_host = authority
            .as_str()
            .rsplit_once(host)
            .map_or("", |(_, rest)| rest);
        let port = match authority.port_u16() {
            Some(port) => port,
            None if after_host.is_empty() => 80,
            None => return Err(bad("the port is not a number")),
        };
        let path = match uri.path_and_query().map_or("/", |p| p.as_str()) {
            "" => "/",
            p => p,
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addr = (bare, port)
            .to_socket_addrs()
            .map_err(|e| bad(&format!("cannot resolve the host: {e}")))?
            .next()
            .ok_or_else(|| bad("the host resolves to no address"))?;
        Ok(Url {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
            addr,
        })
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}:{}{}", self.host, self.port, self.path)
    }
}

/// Settings of a load run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoadConfig {
    /// The target.
    pub url: Url,
    /// Connections, all opened before the clock starts.
    pub connections: u64,
    /// Measured duration (after the warm-up).
    pub duration: Duration,
    /// Warm-up, run at full load but not measured.
    pub warmup: Duration,
    /// Requests per second for the constant-rate mode; `None` = closed-loop.
    pub rate: Option<f64>,
    /// Per-request (and per-connect) timeout; never past the end of the run.
    pub timeout: Duration,
    /// Event-loop threads; `None` = `std::thread::available_parallelism()`.
    pub threads: Option<usize>,
    /// Also record interval histograms into this HdrHistogram log ([`crate::hdrlog`]); the
    /// caller calls its `finish` after the run.
    pub hdr_log: Option<Arc<crate::hdrlog::IntervalLog>>,
}

impl LoadConfig {
    /// Defaults: 100 connections, 10 s measured after 1 s of warm-up, closed-loop, 10 s timeout.
    pub fn new(url: Url) -> Self {
        LoadConfig {
            url,
            connections: 100,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            rate: None,
            timeout: Duration::from_secs(10),
            threads: None,
            hdr_log: None,
        }
    }
}

/// Live counters of a run, for a progress line drawn by another thread.
#[derive(Debug, Default)]
pub struct Progress {
    connected: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    started: OnceLock<Instant>,
    finished: AtomicBool,
}

impl Progress {
    /// Connections opened so far.
    pub fn connected(&self) -> u64 {
        self.connected.load(Relaxed)
    }
    /// Successful responses so far, warm-up included.
    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }
    /// Failed requests so far, warm-up included.
    pub fn errors(&self) -> u64 {
        self.errors.load(Relaxed)
    }
    /// When the clock started (warm-up first), once every connection is open.
    pub fn started(&self) -> Option<Instant> {
        self.started.get().copied()
    }
    /// `true` once the run is over (or could not start).
    pub fn finished(&self) -> bool {
        self.finished.load(Relaxed)
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and checks that `needed` descriptors fit.
/// Returns the soft limit now in force.
pub fn raise_nofile_limit(needed: u64) -> Result<u64, Error> {
    let io = Error::io("cannot read or raise RLIMIT_NOFILE");
    let (_, hard) = rlimit::Resource::NOFILE.get().map_err(io)?;
    let soft =
        rlimit::increase_nofile_limit(hard).map_err(Error::io("cannot raise RLIMIT_NOFILE"))?;
    if soft < needed {
        return Err(Error::FdLimit {
            connections: needed.saturating_sub(FD_SLACK),
            needed,
            limit: soft,
            hard,
        });
    }
    Ok(soft)
}

/// Descriptors needed beyond one per connection (stdio, epoll, eventfds, the pacer...).
const FD_SLACK: u64 = 64;

struct Stats {
    uncorrected: Histogram<u64>,
    corrected: Histogram<u64>,
    lateness: Histogram<u64>,
    ok: u64,
    errors: ErrorCounts,
    unsent: u64,
    unfinished: u64,
    unfinished_oldest: Duration,
}

impl Stats {
    fn new() -> Self {
        Stats {
            uncorrected: histogram(),
            corrected: histogram(),
            lateness: histogram(),
            ok: 0,
            errors: ErrorCounts::default(),
            unsent: 0,
            unfinished: 0,
            unfinished_oldest: Duration::ZERO,
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

/// Everything the threads share.
struct Ctx {
    addr: SocketAddr,
    request: Vec<u8>,
    config: LoadConfig,
    barrier: Barrier,
    start: OnceLock<Instant>,
    connected: AtomicU64,
    first_connect_error: Mutex<Option<std::io::Error>>,
    /// What the first response that broke HTTP/1.1 did wrong.
    first_protocol_error: Mutex<Option<&'static str>>,
    progress: Arc<Progress>,
    pacer: Option<Pacer>,
    stop: AtomicBool,
}

/// Runs the load described by `config` and returns its report.
///
/// Raises `RLIMIT_NOFILE` first ([`raise_nofile_limit`]). Fails when the settings cannot
/// measure anything (a zero duration or timeout, a rate that is not a positive number) and when
/// no connection at all could be opened; request errors during the run are counted in the
/// report (see [`LoadReport::error_rate`]), not returned.
pub fn load(config: &LoadConfig, progress: Option<Arc<Progress>>) -> Result<LoadReport, Error> {
    let progress = progress.unwrap_or_default();
    let result = check(config).and_then(|()| run_load(config, Arc::clone(&progress)));
    progress.finished.store(true, Relaxed);
    result
}

fn check(config: &LoadConfig) -> Result<(), Error> {
    let bad = |reason: &str| {
        Err(Error::Config {
            reason: reason.to_owned(),
        })
    };
    if config.duration.is_zero() {
        return bad("the measured duration is zero: nothing would be measured");
    }
    if config.timeout.is_zero() {
        return bad("the timeout is zero: every request would time out before its answer");
    }
    if config
        .rate
        .is_some_and(|r| !(r.is_finite() && r > 0.0 && r <= MAX_RATE))
    {
        return bad("the rate must be a positive number of requests per second, at most 1e9");
    }
    Ok(())
}

/// Largest constant rate accepted (requests per second): far beyond any loopback server.
const MAX_RATE: f64 = 1e9;

fn run_load(config: &LoadConfig, progress: Arc<Progress>) -> Result<LoadReport, Error> {
    let connections = config.connections.max(1);
    let nofile_limit = raise_nofile_limit(connections + FD_SLACK)?;
    let threads = config
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, usize::try_from(connections).unwrap_or(usize::MAX));
    let url = &config.url;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: frugal-load\r\n\r\n",
        url.path, url.host, url.port
    )
    .into_bytes();
    let pacer = match config.rate {
        Some(_) => Some(Pacer::start().map_err(Error::io("cannot start the pacer thread"))?),
        None => None,
    };
    let ctx = Arc::new(Ctx {
        addr: url.addr,
        request,
        config: LoadConfig {
            connections,
            ..config.clone()
        },
        barrier: Barrier::new(threads + 1),
        start: OnceLock::new(),
        connected: AtomicU64::new(0),
        first_connect_error: Mutex::new(None),
        first_protocol_error: Mutex::new(None),
        progress,
        pacer,
        stop: AtomicBool::new(false),
    });
    let mut handles = Vec::with_capacity(threads);
    // Each thread waits for a go before it joins the barrier protocol: if starting a later
    // thread fails, the early return drops the senders and the started threads end at once
    // instead of waiting forever at a barrier that can never fill.
    let mut go = Vec::with_capacity(threads);
    for t in 0..threads {
        // Interleave the connection indices so each thread's share of the schedule is even.
        let ids: Vec<u64> = (t as u64..connections).step_by(threads).collect();
        let ctx = Arc::clone(&ctx);
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name(format!("frugal-load-{t}"))
            .spawn(move || match go_rx.recv() {
                Ok(()) => thread_main(&ctx, ids),
                Err(_) => Stats::new(),
            })
            .map_err(Error::io("cannot start a load thread"))?;
        handles.push(handle);
        go.push(go_tx);
    }
    for go_tx in go {
        // The receiver lives until its thread got the go: this send cannot fail.
        let _ = go_tx.send(());
    }
    // Every thread has opened its connections.
    ctx.barrier.wait();
    let connected = ctx.connected.load(Relaxed);
    if connected == 0 {
        ctx.stop.store(true, Relaxed);
    } else {
        let start = Instant::now() + Duration::from_millis(2);
        let _ = ctx.start.set(start);
        let _ = ctx.progress.started.set(start);
        if let Some(log) = &config.hdr_log {
            log.begin(start + config.warmup, config.duration);
        }
    }
    ctx.barrier.wait();
    let mut total = Stats::new();
    for handle in handles {
        let stats = handle.join().expect("load threads do not panic");
        total.ok += stats.ok;
        total.errors.add(&stats.errors);
        total.unsent += stats.unsent;
        total.unfinished += stats.unfinished;
        total.unfinished_oldest = total.unfinished_oldest.max(stats.unfinished_oldest);
        total
            .uncorrected
            .add(&stats.uncorrected)
            .expect("same bounds");
        total.corrected.add(&stats.corrected).expect("same bounds");
        total.lateness.add(&stats.lateness).expect("same bounds");
    }
    if connected == 0 {
        let source = ctx
            .first_connect_error
            .lock()
            .expect("never poisoned")
            .take()
            .unwrap_or_else(|| std::io::Error::other("no connection"));
        return Err(Error::NoConnection {
            connections,
            addr: ctx.addr,
            source,
        });
    }
    let duration_s = config.duration.as_secs_f64();
    let constant = config.rate.is_some();
    let ended = total.ok + total.errors.total();
    Ok(LoadReport {
        url: url.to_string(),
        mode: if constant {
            LoadMode::ConstantRate
        } else {
            LoadMode::ClosedLoop
        },
        connections,
        connections_open: connected,
        threads,
        duration_s,
        warmup_s: config.warmup.as_secs_f64(),
        target_rps: config.rate,
        achieved_rps: if duration_s > 0.0 {
            total.ok as f64 / duration_s
        } else {
            0.0
        },
        requests_ok: total.ok,
        errors: total.errors,
        // No successful response: no latency (None, `null`), not a row of zeros.
        latency_ns: LatencySummary::measured(&total.uncorrected),
        latency_corrected_ns: constant
            .then(|| LatencySummary::measured(&total.corrected))
            .flatten(),
        pacer_lateness_ns: constant
            .then(|| LatencySummary::measured(&total.lateness))
            .flatten(),
        error_rate: if ended == 0 {
            0.0
        } else {
            total.errors.total() as f64 / ended as f64
        },
        requests_unsent: total.unsent,
        requests_unfinished: total.unfinished,
        unfinished_oldest_ns: if total.unfinished == 0 {
            0
        } else {
            nanos(total.unfinished_oldest)
        },
        nofile_limit,
        protocol_error: if total.errors.protocol > 0 {
            let first = *ctx.first_protocol_error.lock().expect("never poisoned");
            first.map(str::to_owned)
        } else {
            None
        },
    })
}

fn thread_main(ctx: &Arc<Ctx>, ids: Vec<u64>) -> Stats {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let Ok(runtime) = runtime else {
        // Keep the barrier protocol: the other threads and the caller wait for us.
        ctx.barrier.wait();
        ctx.barrier.wait();
        return Stats::new();
    };
    let local = tokio::task::LocalSet::new();
    let conns = local.block_on(&runtime, connect_all(ctx, &ids));
    ctx.barrier.wait();
    ctx.barrier.wait();
    let stats = Rc::new(RefCell::new(Stats::new()));
    if ctx.stop.load(Relaxed) {
        return Rc::try_unwrap(stats)
            .map(RefCell::into_inner)
            .unwrap_or_else(|_| Stats::new());
    }
    let start = *ctx.start.get().expect("set before the second barrier");
    local.block_on(&runtime, async {
        let mut tasks = Vec::with_capacity(conns.len());
        for (id, conn) in ids.into_iter().zip(conns) {
            let ctx = Arc::clone(ctx);
            let stats = Rc::clone(&stats);
            tasks.push(tokio::task::spawn_local(async move {
                match ctx.config.rate {
                    None => closed_loop(&ctx, conn, start, &stats).await,
                    Some(rate) => constant_rate(&ctx, conn, id, rate, start, &stats).await,
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
    Rc::try_unwrap(stats)
        .map(RefCell::into_inner)
        .unwrap_or_else(|_| Stats::new())
}

/// Opens this thread's connections, a bounded number at a time (a storm of SYNs overflows the
/// server's listen backlog and costs 1 s retransmissions).
async fn connect_all(ctx: &Arc<Ctx>, ids: &[u64]) -> Vec<Option<Conn>> {
    let limit = Rc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = Vec::with_capacity(ids.len());
    for _ in ids {
        let ctx = Arc::clone(ctx);
        let limit = Rc::clone(&limit);
        tasks.push(tokio::task::spawn_local(async move {
            let _permit = limit
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let mut last_err = None;
            for _attempt in 0..3 {
                match tokio::time::timeout(ctx.config.timeout, Conn::connect(ctx.addr)).await {
                    Ok(Ok(conn)) => {
                        ctx.connected.fetch_add(1, Relaxed);
                        ctx.progress.connected.fetch_add(1, Relaxed);
                        return Some(conn);
                    }
                    Ok(Err(e)) => last_err = Some(e),
                    Err(_) => last_err = Some(std::io::ErrorKind::TimedOut.into()),
                }
            }
            let mut first = ctx.first_connect_error.lock().expect("never poisoned");
            if first.is_none() {
                *first = last_err;
            }
            None
        }));
    }
    let mut conns = Vec::with_capacity(tasks.len());
    for task in tasks {
        conns.push(task.await.unwrap_or(None));
    }
    conns
}

/// Counts an error in `stats` when `in_window`, and in the progress counters always.
fn count_error(
    ctx: &Ctx,
    stats: &RefCell<Stats>,
    in_window: bool,
    kind: fn(&mut ErrorCounts) -> &mut u64,
) {
    ctx.progress.errors.fetch_add(1, Relaxed);
    if in_window {
        *kind(&mut stats.borrow_mut().errors) += 1;
        if let Some(log) = &ctx.config.hdr_log {
            log.record_errors(Instant::now(), 1);
        }
    }
}

/// Outcome of one request attempt.
enum Attempt {
    /// A complete response: its status and whether the connection must close.
    Done(u16, bool),
    /// Failed; the connection is dropped.
    Failed(fn(&mut ErrorCounts) -> &mut u64),
    /// The run ended mid-request.
    RunEnded,
}

async fn attempt(ctx: &Ctx, conn: &mut Conn, sent: Instant, end: Instant) -> Attempt {
    let give_up = (sent + ctx.config.timeout).min(end);
    let fut = conn.exchange(&ctx.request);
    match tokio::time::timeout_at(give_up.into(), fut).await {
        Ok(Ok(reply)) => Attempt::Done(reply.status, reply.close),
        Ok(Err(Failure::Reset)) => Attempt::Failed(|e| &mut e.reset),
        Ok(Err(Failure::Protocol(what))) => {
            ctx.first_protocol_error
                .lock()
                .expect("never poisoned")
                .get_or_insert(what);
            Attempt::Failed(|e| &mut e.protocol)
        }
        Ok(Err(Failure::Other)) => Attempt::Failed(|e| &mut e.other),
        Err(_) if give_up >= end => Attempt::RunEnded,
        Err(_) => Attempt::Failed(|e| &mut e.timeout),
    }
}

/// Reconnects, counting a failure that completes in the window; `None` when it failed or the
/// run ended first.
async fn reconnect(
    ctx: &Ctx,
    stats: &RefCell<Stats>,
    window: Instant,
    end: Instant,
) -> Option<Conn> {
    let give_up = (Instant::now() + ctx.config.timeout).min(end);
    match tokio::time::timeout_at(give_up.into(), Conn::connect(ctx.addr)).await {
        Ok(Ok(conn)) => Some(conn),
        _ => {
            let now = Instant::now();
            if now < end {
                count_error(ctx, stats, now >= window, |e| &mut e.connect);
                // Do not spin on a refusing server.
                let pause = (now + Duration::from_millis(10)).min(end);
                tokio::time::sleep_until(pause.into()).await;
            }
            None
        }
    }
}

/// A request still without an answer when the run ends at `end`, waiting since `since` (its
/// send, or its intended send in constant-rate mode): a timeout when it waited `--timeout`,
/// unanswered at the end (unfinished) otherwise. Returns `true` for a timeout.
fn unanswered(ctx: &Ctx, stats: &RefCell<Stats>, end: Instant, since: Instant) -> bool {
    let waited = end.saturating_duration_since(since);
    if waited >= ctx.config.timeout {
        count_error(ctx, stats, true, |e| &mut e.timeout);
        true
    } else {
        let mut s = stats.borrow_mut();
        s.unfinished += 1;
        s.unfinished_oldest = s.unfinished_oldest.max(waited);
        false
    }
}

fn record_ok(ctx: &Ctx, stats: &RefCell<Stats>, status: u16, in_window: bool) -> bool {
    if status >= 400 {
        count_error(ctx, stats, in_window, |e| &mut e.status);
        return false;
    }
    ctx.progress.requests.fetch_add(1, Relaxed);
    in_window
}

async fn closed_loop(ctx: &Ctx, mut conn: Option<Conn>, start: Instant, stats: &RefCell<Stats>) {
    let window = start + ctx.config.warmup;
    let end = window + ctx.config.duration;
    if Instant::now() < start {
        tokio::time::sleep_until(start.into()).await;
    }
    loop {
        if Instant::now() >= end {
            return;
        }
        let Some(c) = conn.as_mut() else {
            conn = reconnect(ctx, stats, window, end).await;
            continue;
        };
        let sent = Instant::now();
        let result = attempt(ctx, c, sent, end).await;
        let done = Instant::now();
        // wrk's rule: a response counts when it completes inside the window.
        let in_window = done >= window && done < end;
        match result {
            Attempt::Done(status, close) => {
                if record_ok(ctx, stats, status, in_window) {
                    let mut s = stats.borrow_mut();
                    s.ok += 1;
                    s.uncorrected.saturating_record(nanos(done - sent));
                    if let Some(log) = &ctx.config.hdr_log {
                        log.record(done, nanos(done - sent), None);
                    }
                }
                if close {
                    conn = None;
                }
            }
            Attempt::Failed(kind) => {
                count_error(ctx, stats, in_window, kind);
                conn = None;
            }
            Attempt::RunEnded => {
                unanswered(ctx, stats, end, sent);
                return;
            }
        }
    }
}

async fn constant_rate(
    ctx: &Ctx,
    mut conn: Option<Conn>,
    id: u64,
    rate: f64,
    start: Instant,
    stats: &RefCell<Stats>,
) {
    let window = start + ctx.config.warmup;
    let end = window + ctx.config.duration;
    let pacer = ctx
        .pacer
        .as_ref()
        .expect("constant-rate mode starts the pacer");
    let interval_s = ctx.config.connections as f64 / rate;
    let first = start + Duration::from_secs_f64(id as f64 / rate);
    let slot = |k: u64| first + Duration::from_secs_f64(k as f64 * interval_s);
    // The slots from `k` on that the run's end leaves unsent: counted, not walked (at a rate
    // far beyond the server's there can be millions).
    let unsent_from = |k: u64| {
        let before = |t: Instant| {
            // Slots scheduled strictly before `t`, counted from slot 0.
            let span = t.saturating_duration_since(first).as_secs_f64();
            if t <= first {
                0
            } else {
                (span / interval_s).ceil() as u64
            }
        };
        let limit = ctx.config.timeout;
        let all = before(end).saturating_sub(k);
        // Waited the whole timeout: scheduled at or before `end - limit`.
        let timed_out = end
            .checked_sub(limit)
            .map_or(0, |cut| before(cut + Duration::from_nanos(1)))
            .saturating_sub(k)
            .min(all);
        let mut s = stats.borrow_mut();
        s.unsent += all;
        s.errors.timeout += timed_out;
        ctx.progress.errors.fetch_add(timed_out, Relaxed);
        if let Some(log) = &ctx.config.hdr_log {
            log.record_errors(end, timed_out);
        }
        if all > timed_out {
            s.unfinished += all - timed_out;
            let oldest = slot(k + timed_out);
            s.unfinished_oldest = s
                .unfinished_oldest
                .max(end.saturating_duration_since(oldest));
        }
    };
    let mut k: u64 = 0;
    loop {
        let intended = slot(k);
        if intended >= end {
            return;
        }
        let on_time = Instant::now() < intended;
        if on_time {
            pacer.sleep_until(intended).await;
        }
        if conn.is_none() {
            // A failed reconnect costs this slot, counted as a connect error.
            conn = reconnect(ctx, stats, window, end).await;
        }
        let sent = Instant::now();
        if sent >= end {
            // This slot and the later ones were never sent.
            unsent_from(k);
            return;
        }
        k += 1;
        let Some(c) = conn.as_mut() else {
            continue;
        };
        let result = attempt(ctx, c, sent, end).await;
        let done = Instant::now();
        // A response counts when it completes inside the window, whenever it was scheduled.
        let in_window = done >= window && done < end;
        match result {
            Attempt::Done(status, close) => {
                if record_ok(ctx, stats, status, in_window) {
                    let mut s = stats.borrow_mut();
                    s.ok += 1;
                    s.uncorrected.saturating_record(nanos(done - sent));
                    s.corrected.saturating_record(nanos(done - intended));
                    if let Some(log) = &ctx.config.hdr_log {
                        log.record(done, nanos(done - sent), Some(nanos(done - intended)));
                    }
                    if on_time {
                        s.lateness.saturating_record(nanos(sent - intended));
                    }
                }
                if close {
                    conn = None;
                }
            }
            Attempt::Failed(kind) => {
                count_error(ctx, stats, in_window, kind);
                conn = None;
            }
            Attempt::RunEnded => {
                unanswered(ctx, stats, end, intended);
                unsent_from(k);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u: Url = "http://127.0.0.1:8080/x?y=1".parse().expect("valid url");
        assert_eq!((u.port, u.path.as_str()), (8080, "/x?y=1"));
        assert_eq!(u.addr, "127.0.0.1:8080".parse().expect("valid addr"));
        let u: Url = "http://127.0.0.1".parse().expect("valid url");
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u: Url = "http://[::1]:9/".parse().expect("valid url");
        assert_eq!((u.host.as_str(), u.port), ("[::1]", 9));
        let reason = |url: &str| match url.parse::<Url>() {
            Err(Error::Url { reason, .. }) => reason,
            other => panic!("{url}: {other:?}"),
        };
        assert_eq!(reason("https://127.0.0.1/"), "only http:// is supported");
        assert_eq!(reason("127.0.0.1:80"), "only http:// is supported");
        assert_eq!(reason("http://127.0.0.1:x/"), "the port is not a number");
        assert_eq!(
            reason("http://127.0.0.1:99999/"),
            "the port is not a number"
        );
        assert_eq!(reason("http://127.0.0.1:/"), "the port is not a number");
        assert_eq!(reason("http:///"), "the host is empty");
        assert_eq!(reason("http:///x"), "the host is empty");
        assert!(reason("http://no-such-host.invalid/").starts_with("cannot resolve the host"));
    }

    #[test]
    fn refused_everywhere_is_an_error() {
        // Bind then drop a listener: its port refuses connections for a while.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("loopback binds")
            .port();
        let mut config = LoadConfig::new(format!("http://127.0.0.1:{port}/").parse().expect("url"));
        config.connections = 4;
        config.duration = Duration::from_millis(100);
        config.timeout = Duration::from_secs(1);
        let err = load(&config, None).expect_err("nothing listens");
        assert!(matches!(err, Error::NoConnection { .. }), "{err}");
    }
}
