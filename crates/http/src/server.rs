//! The HTTP/1.1 service: tokio + hyper, one task per connection, graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use frugal_defer::CancelToken;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::metrics::{Metrics, Outcome};
use super::peer::{self, PeerIo};
use super::resources::{BufferPool, Lease, LeasePool};
use super::{strategy, Error, Strategy};

/// Settings of the service. `Default` gives the values `frugal serve` uses without flags.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct ServeConfig {
    /// Address to bind; port 0 picks a free port.
    pub addr: SocketAddr,
    /// How requests release their resources.
    pub strategy: Strategy,
    /// CPU burned per request, in microseconds of the handling thread's own CPU time
    /// (`CLOCK_THREAD_CPUTIME_ID`), not of the wall clock: time the thread spends preempted,
    /// time-sliced with other requests or throttled by a cgroup CPU quota does not count, so a
    /// server given fewer CPUs really has less capacity. Busy work, not sleep; 1 ms or more runs
    /// under `tokio::task::block_in_place` so that it does not stall the worker's other tasks.
    pub work_us: u64,
    /// Before its CPU work, each request holds its lease this long, waiting: a slow downstream
    /// call (think a database query) made while holding the lease. The wait ends early when the
    /// request is cancelled (the client went away: reset, or ended its side of the connection),
    /// like a call that honours Go's request context; the request then does no CPU work and
    /// answers 503. The wait is asynchronous, as an async driver's call is: it holds a lease and
    /// a buffer but no thread, so any number of holding requests leaves the service able to
    /// answer `/healthz` and to shut down (an earlier version blocked a thread per hold and
    /// wedged beyond tokio's 512 blocking threads). Zero (the default) skips it. On shutdown
    /// (SIGTERM/SIGINT) every hold ends at once and its request goes on to answer normally, so
    /// that held requests finish within the grace period. Tests use a long hold to keep
    /// requests in flight for as long as they need, whatever the machine's speed.
    pub hold: Duration,
    /// `async-chain` only: the simulated reset that each request's async cleanup awaits before
    /// it returns the lease, in microseconds (a `tokio::time::sleep`, whose timer rounds up to
    /// whole milliseconds; 0, the default, is one `yield_now`: an await that completes after
    /// the task was rescheduled once).
    pub release_us: u64,
    /// Response body size in bytes.
    pub response_bytes: usize,
    /// Tokio worker threads; `None` = `std::thread::available_parallelism()`.
    pub workers: Option<usize>,
    /// Size of the bounded lease pool.
    pub lease_pool_size: usize,
    /// Idle buffers kept by the buffer pool.
    pub buffer_pool_size: usize,
    /// Deadline of a request: a lease not obtained by then is answered 503.
    pub deadline: Duration,
    /// A client must send a request head within this time of starting it (slow-client guard).
    pub header_timeout: Duration,
    /// On SIGINT/SIGTERM, how long in-flight requests get to finish.
    pub shutdown_grace: Duration,
    /// A connection whose writes make no progress for this long (the client stopped reading)
    /// is closed, like nginx's `send_timeout` (60 s by default there too). An idle keep-alive
    /// connection is closed after [`header_timeout`](Self::header_timeout): hyper's head timer
    /// also runs while it waits for the next request.
    pub send_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            strategy: Strategy::Manual,
            work_us: 10,
            hold: Duration::ZERO,
            release_us: 0,
            response_bytes: 128,
            workers: None,
            lease_pool_size: 128,
            buffer_pool_size: 1024,
            deadline: Duration::from_secs(2),
            header_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            send_timeout: Duration::from_secs(60),
        }
    }
}

impl ServeConfig {
    /// A default configuration with this strategy.
    pub fn with_strategy(strategy: Strategy) -> Self {
        ServeConfig {
            strategy,
            ..ServeConfig::default()
        }
    }
}

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: ServeConfig,
    pub(crate) buffers: BufferPool,
    pub(crate) leases: LeasePool,
    pub(crate) metrics: Metrics,
    /// Fired when the service stops accepting: holds end early (see [`ServeConfig::hold`]).
    pub(crate) stopping: CancellationToken,
}

impl State {
    pub(crate) fn take_buffer(&self) -> Vec<u8> {
        self.buffers.take()
    }

    pub(crate) fn release_buffer(&self, buf: Vec<u8>) {
        self.metrics.defers_run.fetch_add(1, Relaxed);
        self.buffers.put(buf);
    }

    pub(crate) fn release_lease(&self, lease: Lease) {
        self.metrics.defers_run.fetch_add(1, Relaxed);
        self.leases.release(lease);
    }

    /// The request's work section, run while it holds its lease, after the hold (see
    /// [`ServeConfig::hold`], awaited by `strategy::handle` before the strategy runs: a cleanup
    /// scope cannot span an `.await`): burn `work_us` of thread CPU time, fill the buffer and
    /// copy it into the response body. `None` when a hold was configured and the request was
    /// cancelled by the time it ended (nothing is burned then). Without a hold nothing is
    /// cancellable: a quick request whose client half-closed still gets its answer. The work
    /// section never sees the lease.
    pub(crate) fn work(&self, buf: &mut Vec<u8>, cancelled: &CancellationToken) -> Option<Bytes> {
        if !self.config.hold.is_zero() && cancelled.is_cancelled() {
            return None;
        }
        Some(self.produce(buf))
    }

    /// The work section after the hold: burn `work_us` of CPU, fill the buffer, copy it out.
    pub(crate) fn produce(&self, buf: &mut Vec<u8>) -> Bytes {
        let us = self.config.work_us;
        if us >= BLOCKING_WORK_US {
            // Work this long would stall the worker's other tasks and, when the worker was the
            // one polling the I/O driver, every socket: hand the worker over first.
            tokio::task::block_in_place(|| burn_cpu(us));
        } else {
            burn_cpu(us);
        }
        const PATTERN: &[u8; 64] =
            b"frugal: what does cleanup cost? how small can the machine be??\n\n";
        while buf.len() < self.config.response_bytes {
            let n = (self.config.response_bytes - buf.len()).min(PATTERN.len());
            buf.extend_from_slice(&PATTERN[..n]);
        }
        Bytes::copy_from_slice(buf)
    }

    /// Waits [`ServeConfig::hold`] unless `cancelled` fires first (`false`) or the service
    /// stops (`true`: the request goes on and answers). Asynchronous: a holding request takes
    /// no thread.
    pub(crate) async fn hold(&self, cancelled: &CancellationToken) -> bool {
        let hold = self.config.hold;
        if hold.is_zero() {
            return true;
        }
        tokio::select! {
            biased;
            () = cancelled.cancelled() => false,
            () = self.stopping.cancelled() => true,
            () = tokio::time::sleep(hold) => true,
        }
    }
}

/// hyper's read buffer limit per connection (its minimum is 8 KiB).
const MAX_BUF_BYTES: usize = 16 * 1024;

/// CPU work of at least this many microseconds runs under `block_in_place`.
const BLOCKING_WORK_US: u64 = 1000;

/// CPU time consumed so far by the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    // The kernel gives non-negative seconds and nanoseconds below 1e9 for this clock.
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Busy work until the calling thread has consumed `us` microseconds of CPU time (an LCG the
/// optimizer cannot remove). Timed by the thread's CPU clock, not the wall clock: while the
/// thread is preempted, shares its CPU with other busy threads or is throttled by a cgroup
/// quota, its CPU clock stands still and the work goes on, so `us` is the CPU a request costs,
/// whatever the load (the clock reads themselves, a system call each, count as work too).
fn burn_cpu(us: u64) {
    if us == 0 {
        return;
    }
    let end = thread_cpu_time() + Duration::from_micros(us);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    loop {
        for _ in 0..256 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
        }
        if thread_cpu_time() >= end {
            break;
        }
    }
    std::hint::black_box(x);
}

/// Runs the service until SIGINT or SIGTERM, then shuts down gracefully.
///
/// Builds its own tokio runtime (`config.workers` threads), binds `config.addr`, calls
/// `on_bound` with the bound address once it accepts connections, and returns after the graceful
/// shutdown. Raises the soft open-file limit to the hard one first (as Go's runtime does), so
/// that thousands of connections fit; when the process still runs out of file descriptors,
/// accepting pauses (backpressure: the kernel's listen backlog holds new clients) and a line
/// says so on stderr.
///
/// Memory: the resident size grows with the number of open connections (hyper's per-connection
/// buffers, the tasks) and stays near its high point after they close: the allocator (glibc
/// malloc, per-thread arenas) keeps freed memory for reuse instead of returning it, and
/// fragmentation leaves few whole pages to return. It is reused, not leaked: repeated waves of
/// as many connections grow it less and less and then not at all (measured with 2,000
/// connections per wave, debug build: 35, 43, 48, 49, 50, 51, 51, 53 MiB after waves 1 to 8;
/// the same with `MALLOC_ARENA_MAX=1`, ending at 51 MiB).
pub fn serve(config: ServeConfig, on_bound: impl FnOnce(SocketAddr)) -> Result<(), Error> {
    // Best effort: without it the service still runs, with fewer connections (backpressure).
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let workers = config
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(Error::io("cannot start the tokio runtime"))?;
    runtime.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term =
            signal(SignalKind::terminate()).map_err(Error::io("cannot handle SIGTERM"))?;
        let mut int = signal(SignalKind::interrupt()).map_err(Error::io("cannot handle SIGINT"))?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => eprintln!("frugal serve: SIGTERM, shutting down"),
                _ = int.recv() => eprintln!("frugal serve: SIGINT, shutting down"),
            }
        };
        run(config, on_bound, shutdown).await
    })
}

/// Binds and serves until `shutdown` completes (the runtime is the caller's).
pub(crate) async fn run(
    config: ServeConfig,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let listener = listen(config.addr).map_err(|source| Error::Bind {
        addr: config.addr,
        source,
    })?;
    let local = listener
        .local_addr()
        .map_err(Error::io("cannot read the bound address"))?;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .keep_alive(true)
        // A client that sends its request and then ends its side (shutdown(SHUT_WR)) still
        // gets the answer; a client that went away is noticed by `peer::gone` instead.
        .half_close(true)
        // Bounds what one connection can queue: at most this many bytes of pipelined
        // requests are read ahead (hyper handles them one at a time; TCP flow control holds
        // the rest in the client), and request heads larger than this are refused (431).
        .max_buf_size(MAX_BUF_BYTES);
    let grace = config.shutdown_grace;
    let send_timeout = config.send_timeout;
    let state = Arc::new(State {
        buffers: BufferPool::new(config.buffer_pool_size, config.response_bytes),
        leases: LeasePool::new(config.lease_pool_size),
        metrics: Metrics::default(),
        stopping: CancellationToken::new(),
        config,
    });
    on_bound(local);

    let graceful = GracefulShutdown::new();
    let mut last_fd_log: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // Small answers must not wait for Nagle's algorithm.
                    let _ = stream.set_nodelay(true);
                    state.metrics.connections_total.fetch_add(1, Relaxed);
                    state.metrics.connections_open.fetch_add(1, Relaxed);
                    let svc_state = Arc::clone(&state);
                    let io = PeerIo::new(stream, send_timeout);
                    let peer = io.stream();
                    let service = hyper::service::service_fn(move |req| {
                        handle_request(Arc::clone(&svc_state), Arc::clone(&peer), req)
                    });
                    let conn = graceful.watch(builder.serve_connection(TokioIo::new(io), service));
                    let conn_state = Arc::clone(&state);
                    tokio::spawn(async move {
                        // Errors here are the client's (reset, malformed request answered 400,
                        // header or send timeout): the connection ends, the service goes on.
                        let _ = conn.await;
                        conn_state.metrics.connections_open.fetch_sub(1, Relaxed);
                    });
                }
                Err(err) => {
                    state.metrics.accept_errors.fetch_add(1, Relaxed);
                    let fd_exhausted = rustix::io::Errno::from_io_error(&err)
                        .is_some_and(|e| e == rustix::io::Errno::MFILE || e == rustix::io::Errno::NFILE);
                    if fd_exhausted {
                        state.metrics.accept_fd_exhausted.fetch_add(1, Relaxed);
                        let now = Instant::now();
                        if last_fd_log.is_none_or(|t| now - t >= Duration::from_secs(1)) {
                            last_fd_log = Some(now);
                            eprintln!(
                                "frugal serve: accept: {err}; {} connections open, pausing accepts \
                                 (backpressure) — raise the open-file limit (ulimit -n) to serve more",
                                state.metrics.connections_open.load(Relaxed)
                            );
                        }
                        // Give the connections time to close; the backlog holds new clients.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }
    }
    drop(listener);
    state.stopping.cancel();
    let open = state.metrics.connections_open.load(Relaxed);
    eprintln!("frugal serve: stopped accepting; waiting up to {grace:?} for {open} connections");
    tokio::select! {
        () = graceful.shutdown() => eprintln!("frugal serve: all connections closed"),
        () = tokio::time::sleep(grace) => eprintln!("frugal serve: grace period over, closing"),
    }
    Ok(())
}

/// Binds with a listen backlog large enough for a burst of thousands of connects (tokio's
/// default is 1024; the kernel caps it at `net.core.somaxconn`).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(8192)
}

/// Cancels a request's tokens when dropped while armed (hyper dropped the request future).
struct RequestCancel {
    token: CancellationToken,
    bound: Option<CancelToken>,
    armed: bool,
}

impl RequestCancel {
    /// Cancels the request: the bound cleanup first, on this thread — it must run because of
    /// the cancellation, before the work section (woken by `token`) can reach the end of its
    /// scope.
    fn fire(&mut self) {
        if self.armed {
            self.armed = false;
            if let Some(bound) = &self.bound {
                bound.cancel();
            }
            self.token.cancel();
        }
    }
}

impl Drop for RequestCancel {
    fn drop(&mut self) {
        self.fire();
    }
}

type Resp = Response<Full<Bytes>>;

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

async fn handle_request(
    state: Arc<State>,
    peer: Arc<TcpStream>,
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    // HTTP/1.1 requires a Host header (RFC 9112 §3.2: "MUST respond with 400").
    if req.version() == Version::HTTP_11 && !req.headers().contains_key(HOST) {
        state.metrics.record_other();
        return Ok(text(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "an HTTP/1.1 request needs a Host header\n",
        ));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        state.metrics.record_other();
        let mut resp = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET and HEAD are served\n",
        );
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(resp);
    }
    match req.uri().path() {
        "/metrics" => {
            state.metrics.record_other();
            let body = state
                .metrics
                .render(state.config.strategy, &state.buffers, &state.leases);
            Ok(text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                body,
            ))
        }
        "/healthz" => {
            state.metrics.record_other();
            Ok(text(StatusCode::OK, "text/plain", "ok\n"))
        }
        _ => Ok(work_request(state, &peer).await),
    }
}

/// Runs the request's work in its own task, with cancellation tokens that fire when the client
/// goes away — it resets the connection or ends its side ([`peer::gone`], which also sees it
/// behind a pipelined request hyper has not read yet) — or when hyper drops this future: like
/// Go's request context, the handler sees the cancellation at once — a wait for a lease or a
/// hold ends, and cleanup bound to the cancellation (`chain-cancel`) runs on the spot, while the
/// work may still be running on the other task.
async fn work_request(state: Arc<State>, peer: &TcpStream) -> Resp {
    let started = Instant::now();
    let deadline = started + state.config.deadline;
    let cancel = RequestCancel {
        token: CancellationToken::new(),
        bound: (state.config.strategy == Strategy::ChainCancel).then(CancelToken::new),
        armed: true,
    };
    state.metrics.in_flight.fetch_add(1, Relaxed);
    let task_state = Arc::clone(&state);
    let (token, bound) = (cancel.token.clone(), cancel.bound.clone());
    let task = tokio::spawn(async move {
        let answer = strategy::handle(Arc::clone(&task_state), token, bound, deadline).await;
        task_state.metrics.record(answer.0, started.elapsed());
        task_state.metrics.in_flight.fetch_sub(1, Relaxed);
        answer
    });
    let mut cancel = cancel;
    tokio::pin!(task);
    let answer = tokio::select! {
        biased;
        answer = &mut task => answer,
        () = peer::gone(peer) => {
            cancel.fire();
            task.await
        }
    };
    // The request finished: nothing left to cancel.
    cancel.armed = false;
    match answer {
        Ok((Outcome::Ok, Some(body))) => text(StatusCode::OK, "application/octet-stream", body),
        Ok((Outcome::LeaseTimeout, _)) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "no lease within the request deadline\n",
        ),
        _ => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "request cancelled\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_cpu_consumes_the_threads_cpu_time() {
        // A lower bound only: the thread's CPU clock must have advanced by the work asked for
        // (however long that took on the wall clock).
        let before = thread_cpu_time();
        burn_cpu(20_000);
        assert!(thread_cpu_time() - before >= Duration::from_millis(20));
    }
}
