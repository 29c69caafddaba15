//! The service's end of a client connection: the socket hyper reads and writes, shared with the
//! request handlers so that they can see the client go away.
//!
//! hyper owns the connection's I/O object, and while a request is being handled it does not
//! read from the socket when a pipelined request is already in its buffer (nor at all with
//! half-close allowed): a reset or an end of stream then goes unnoticed until the response is
//! written. [`PeerIo`] keeps the socket behind an [`Arc`], so that a request can watch it with
//! [`gone`] while hyper keeps the same socket. It also gives writes a timeout, like nginx's
//! `send_timeout`: a client that stops reading cannot pin a connection, its buffers and the
//! kernel's socket memory for ever.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// A client socket shared between hyper (through this I/O object) and the request handlers
/// (through [`PeerIo::stream`]), with a timeout on writes that make no progress.
#[derive(Debug)]
pub(crate) struct PeerIo {
    stream: Arc<TcpStream>,
    send_timeout: Duration,
    /// Armed when a write finds the socket's send buffer full; reset by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl PeerIo {
    pub(crate) fn new(stream: TcpStream, send_timeout: Duration) -> Self {
        PeerIo {
            stream: Arc::new(stream),
            send_timeout,
            stalled: None,
        }
    }

    /// The socket, for [`gone`].
    pub(crate) fn stream(&self) -> Arc<TcpStream> {
        Arc::clone(&self.stream)
    }

    /// Called when a write cannot proceed: `Ready(error)` once no write made progress for the
    /// send timeout.
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.send_timeout;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client read nothing for the send timeout",
        ))
    }

    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        write: impl Fn(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.stream.poll_write_ready(cx) {
                Poll::Ready(Ok(())) => match write(&self.stream) {
                    Ok(n) => {
                        self.stalled = None;
                        return Poll::Ready(Ok(n));
                    }
                    // Readiness was stale and is now cleared: poll again to register.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                },
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return self.poll_stall(cx).map(Err),
            }
        }
    }
}

impl AsyncRead for PeerIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = &self.stream;
        loop {
            ready!(stream.poll_read_ready(cx))?;
            let room = buf.remaining();
            let mut read = None;
            // A read that does not fill the buffer drained the socket: clear the readiness
            // (as tokio's own `poll_read` does on epoll), so that a watcher waiting in `gone`
            // sleeps until the next event instead of seeing stale readiness. Returning
            // `WouldBlock` from the outer closure clears it with the readiness tick taken before
            // the read, so an event that arrived meanwhile is not lost.
            let result = stream.try_io(Interest::READABLE, || {
                let n = stream.try_read_buf(buf)?;
                read = Some(n);
                if n > 0 && n < room {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(())
                }
            });
            match (read, result) {
                (Some(_), _) => return Poll::Ready(Ok(())),
                (None, Err(e)) if e.kind() == io::ErrorKind::WouldBlock => continue,
                (None, Err(e)) => return Poll::Ready(Err(e)),
                (None, Ok(())) => unreachable!("the closure sets `read` before it returns Ok"),
            }
        }
    }
}

impl AsyncWrite for PeerIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |stream| stream.try_write(data))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |stream| stream.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the socket: nothing is buffered here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let sock = socket2::SockRef::from(&*self.stream);
        match sock.shutdown(std::net::Shutdown::Write) {
            // Already gone: nothing left to shut down.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            other => Poll::Ready(other),
        }
    }
}

/// How often [`gone`] looks again while the client's next pipelined request waits unread in
/// the socket (its readiness stays set until hyper reads it, so there is no event to wait for;
/// a reset still wakes the watcher at once).
const RECHECK: Duration = Duration::from_millis(100);

/// Completes when the client has ended its side of the connection (end of stream) or reset it.
///
/// An end of stream may be a half-close (the client still reads the answer) or a full close:
/// TCP cannot tell them apart. Like Go's `net/http`, which cancels a request's context when
/// the connection's read side ends, the handler treats both as "the client went away" for the
/// work it has not done yet; hyper (with half-close allowed) still writes whatever answer the
/// request produces.
pub(crate) async fn gone(stream: &TcpStream) {
    loop {
        match stream.ready(Interest::READABLE | Interest::ERROR).await {
            Err(_) => return,
            Ok(r) if r.is_read_closed() || r.is_error() => return,
            Ok(_) => {
                // Bytes hyper has not read yet (a pipelined request): only an error is an event.
                tokio::select! {
                    _ = stream.ready(Interest::ERROR) => return,
                    () = tokio::time::sleep(RECHECK) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair(send_timeout: Duration) -> (PeerIo, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback binds");
        let addr = listener.local_addr().expect("bound");
        let client = TcpStream::connect(addr).await.expect("connects");
        let (server, _) = listener.accept().await.expect("accepts");
        (PeerIo::new(server, send_timeout), client)
    }

    #[tokio::test]
    async fn reads_writes_and_sees_the_end_of_stream() {
        let (mut io, mut client) = pair(Duration::from_secs(60)).await;
        client.write_all(b"ping").await.expect("writes");
        let mut buf = [0u8; 16];
        let n = io.read(&mut buf).await.expect("reads");
        assert_eq!(&buf[..n], b"ping");
        io.write_all(b"pong").await.expect("writes");
        io.shutdown().await.expect("shuts down");
        let mut back = Vec::new();
        client
            .read_to_end(&mut back)
            .await
            .expect("reads to the end");
        assert_eq!(back, b"pong");
        let stream = io.stream();
        client.shutdown().await.expect("half-closes");
        // Bounded: a watcher that never fires fails the test instead of hanging it.
        tokio::time::timeout(Duration::from_secs(30), gone(&stream))
            .await
            .expect("the end of stream is seen");
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_times_the_write_out() {
        let (mut io, _client) = pair(Duration::from_millis(200)).await;
        let chunk = vec![0u8; 1 << 20];
        let err = loop {
            // The client never reads: the socket buffers fill, then the timeout fires.
            let written = tokio::time::timeout(Duration::from_secs(30), io.write(&chunk))
                .await
                .expect("the send timeout fires long before this");
            if let Err(e) = written {
                break e;
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
