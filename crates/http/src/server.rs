//! The HTTP/1.1 service: tokio + hyper, one task per connection, graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
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

use crate::metrics::{Metrics, Outcome};
use crate::peer::{self, PeerIo};
use crate::release;
use crate::resources::{BufferPool, LeasePool};
use crate::state::{ServeConfig, State};
use crate::strategy::Strategy;
use crate::Error;

/// hyper's read buffer limit per connection (its minimum is 8 KiB).
const MAX_BUF_BYTES: usize = 16 * 1024;

/// On shutdown, how long a connection with no request in progress keeps its chance to close
/// by itself before it is closed: hyper's graceful shutdown closes an idle keep-alive
/// connection at once, but one receiving a request head (a slow or stalled client) it waits
/// for until the header timeout — 10 s by default — with no request in flight. The pause lets
/// an answer already handed to hyper reach the socket.
const SHUTDOWN_SETTLE: Duration = Duration::from_millis(50);

/// Requests of one connection between hyper's call of the service and the end of the
/// response body (written, or dropped with the connection).
#[derive(Clone, Default)]
struct Busy(Arc<AtomicUsize>);

impl Busy {
    /// A request starts; it ends when the returned mark is dropped.
    fn start(&self) -> BusyMark {
        self.0.fetch_add(1, AcqRel);
        BusyMark(Arc::clone(&self.0))
    }

    fn idle(&self) -> bool {
        self.0.load(Acquire) == 0
    }
}

/// One request in progress on its connection (see [`Busy`]).
struct BusyMark(Arc<AtomicUsize>);

impl Drop for BusyMark {
    fn drop(&mut self) {
        self.0.fetch_sub(1, AcqRel);
    }
}

/// A response body that keeps its request marked in progress until hyper has taken all of it
/// (or dropped it).
struct Body {
    inner: Full<Bytes>,
    _busy: BusyMark,
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
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
                    let busy = Busy::default();
                    let svc_busy = busy.clone();
                    let service = hyper::service::service_fn(move |req| {
                        let mark = svc_busy.start();
                        let answer = handle_request(Arc::clone(&svc_state), Arc::clone(&peer), req);
                        async move {
                            let resp = answer.await?;
                            Ok::<_, Infallible>(resp.map(|inner| Body { inner, _busy: mark }))
                        }
                    });
                    let conn = graceful.watch(builder.serve_connection(TokioIo::new(io), service));
                    let conn_state = Arc::clone(&state);
                    tokio::spawn(async move {
                        tokio::pin!(conn);
                        tokio::select! {
                            // Errors here are the client's (reset, malformed request answered
                            // 400, header or send timeout): the connection ends, the service
                            // goes on.
                            _ = &mut conn => {}
                            // Shutting down, and no request in progress for a while: dropping
                            // the connection closes it (see `SHUTDOWN_SETTLE`).
                            () = idle_at_shutdown(&conn_state.stopping, &busy) => {}
                        }
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

/// Completes once the service is stopping and the connection has had no request in progress
/// for [`SHUTDOWN_SETTLE`]; never while a request is in progress (hyper's graceful shutdown
/// answers it and then closes the connection itself).
async fn idle_at_shutdown(stopping: &CancellationToken, busy: &Busy) {
    stopping.cancelled().await;
    tokio::time::sleep(SHUTDOWN_SETTLE).await;
    if !busy.idle() {
        std::future::pending::<()>().await;
    }
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
        let answer = release::handle(Arc::clone(&task_state), token, bound, deadline).await;
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
    use std::io::{Read as _, Write as _};

    /// Serves on 127.0.0.1:0 with a 60 s header timeout and a 60 s grace period until the
    /// returned sender fires; `client` runs against the address, then the shutdown starts, and
    /// the server must return within 10 s — far below both timers, so only a shutdown that
    /// waits for neither passes.
    fn shut_down_after(client: impl FnOnce(SocketAddr) -> Option<std::net::TcpStream>) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let config = ServeConfig {
            addr: "127.0.0.1:0".parse().expect("an address"),
            header_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(60),
            work_us: 0,
            ..ServeConfig::default()
        };
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = runtime.spawn(run(
            config,
            move |addr| addr_tx.send(addr).expect("the test waits"),
            async move {
                let _ = stop_rx.await;
            },
        ));
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server binds");
        let kept = client(addr);
        stop_tx.send(()).expect("the server waits for it");
        let done =
            runtime.block_on(async { tokio::time::timeout(Duration::from_secs(10), server).await });
        let result = done.expect("the shutdown waited for a timer (header timeout or grace)");
        result.expect("no panic").expect("served");
        drop(kept);
    }

    #[test]
    fn an_idle_server_shuts_down_without_waiting() {
        shut_down_after(|_| None);
    }

    #[test]
    fn a_served_and_closed_connection_does_not_hold_the_shutdown() {
        shut_down_after(|addr| {
            let mut s = std::net::TcpStream::connect(addr).expect("connects");
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .expect("writable");
            let mut answer = String::new();
            s.read_to_string(&mut answer).expect("answered");
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            None
        });
    }

    /// hyper alone waits for a request head being received until the header timeout; no
    /// request is in progress then, so the shutdown closes the connection.
    #[test]
    fn a_half_sent_request_head_does_not_hold_the_shutdown() {
        shut_down_after(|addr| {
            let mut s = std::net::TcpStream::connect(addr).expect("connects");
            s.write_all(b"GET /healthz HTTP/1.1\r\nHo")
                .expect("writable");
            // Let the server read the bytes before the shutdown starts.
            std::thread::sleep(Duration::from_millis(200));
            Some(s)
        });
    }

    /// An idle keep-alive connection (its answer read, the next request not begun).
    #[test]
    fn an_idle_keep_alive_connection_does_not_hold_the_shutdown() {
        shut_down_after(|addr| {
            let mut s = std::net::TcpStream::connect(addr).expect("connects");
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                .expect("writable");
            let mut buf = [0u8; 256];
            let n = s.read(&mut buf).expect("answered");
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
            Some(s)
        });
    }
}
