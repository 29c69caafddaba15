//! A minimal HTTP/1.1 client connection for the load generator: one keep-alive `TcpStream`, a
//! pre-built request, `httparse` for the response head, bodies skipped without copying out.
//!
//! Why hand-written rather than hyper's client (or reqwest): a load generator must cost the
//! machine far less per request than the server it measures, and its clock must start at the
//! write and stop at the last byte. Like wrk, this client writes one pre-built request with one
//! `write_all`, reads into one reused buffer, parses only the head (with `httparse`, the parser
//! hyper itself uses) and skips the body by length or chunk sizes without allocating; one
//! connection is one task on its thread's single-threaded event loop, with no connection pool,
//! no executor hand-off, no per-request allocation and no lock on the hot path. A general client
//! does all of those on every request, and each shows up in the latency it would report.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why an exchange failed (timeouts are decided by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The peer reset or closed the connection, or a write hit a closed socket.
    Reset,
    /// The response breaks HTTP/1.1; what is wrong, for the report.
    Protocol(&'static str),
    /// Another I/O error.
    Other,
}

/// A response that was read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    /// The server will close the connection after this response.
    pub(crate) close: bool,
}

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug)]
pub(crate) struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

enum Body {
    Length(usize),
    Chunked,
    UntilClose,
}

fn classify(err: &io::Error) -> Failure {
    match err.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::NotConnected => Failure::Reset,
        _ => Failure::Other,
    }
}

impl Conn {
    pub(crate) async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: vec![0; 2048],
            start: 0,
            end: 0,
        })
    }

    /// Sends `request` and reads one whole response.
    pub(crate) async fn exchange(&mut self, request: &[u8]) -> Result<Reply, Failure> {
        self.stream
            .write_all(request)
            .await
            .map_err(|e| classify(&e))?;
        loop {
            let (head_len, status, body, close) = loop {
                if let Some(head) = parse_head(&self.buf[self.start..self.end])? {
                    break head;
                }
                self.fill().await?;
            };
            self.start += head_len;
            if (100..200).contains(&status) {
                // An interim response (100 Continue): the real one follows.
                continue;
            }
            let body = if status == 204 || status == 304 {
                Body::Length(0)
            } else {
                body
            };
            let close = match body {
                Body::Length(n) => {
                    self.skip(n).await?;
                    close
                }
                Body::Chunked => {
                    self.skip_chunked().await?;
                    close
                }
                Body::UntilClose => {
                    while self.fill_or_eof().await? {
                        self.start = self.end;
                    }
                    true
                }
            };
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            }
            return Ok(Reply { status, close });
        }
    }

    /// Reads more bytes; EOF is a reset (the response was not complete).
    async fn fill(&mut self) -> Result<(), Failure> {
        if self.fill_or_eof().await? {
            Ok(())
        } else {
            Err(Failure::Reset)
        }
    }

    /// Reads more bytes; `false` at EOF.
    async fn fill_or_eof(&mut self) -> Result<bool, Failure> {
        if self.start > 0 && self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_HEAD {
                return Err(Failure::Protocol("a response head larger than 64 KiB"));
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self
            .stream
            .read(&mut self.buf[self.end..])
            .await
            .map_err(|e| classify(&e))?;
        self.end += n;
        Ok(n > 0)
    }

    /// Consumes `n` body bytes.
    async fn skip(&mut self, mut n: usize) -> Result<(), Failure> {
        loop {
            let available = self.end - self.start;
            if available >= n {
                self.start += n;
                return Ok(());
            }
            n -= available;
            self.start = 0;
            self.end = 0;
            self.fill().await?;
        }
    }

    /// Reads one CRLF-terminated line, returning it without the CRLF.
    async fn line(&mut self) -> Result<(usize, usize), Failure> {
        loop {
            if let Some(pos) = self.buf[self.start..self.end]
                .windows(2)
                .position(|w| w == b"\r\n")
            {
                let line = (self.start, self.start + pos);
                self.start += pos + 2;
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    async fn skip_chunked(&mut self) -> Result<(), Failure> {
        loop {
            let (from, to) = self.line().await?;
            let size_text = &self.buf[from..to];
            let hex_end = size_text
                .iter()
                .position(|&b| b == b';')
                .unwrap_or(size_text.len());
            let size = std::str::from_utf8(&size_text[..hex_end])
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .ok_or(Failure::Protocol("an invalid chunk size"))?;
            if size == 0 {
                // Trailers, up to an empty line.
                loop {
                    let (from, to) = self.line().await?;
                    if from == to {
                        return Ok(());
                    }
                }
            }
            // The chunk and its CRLF; a hostile size near usize::MAX is an error, not a wrap.
            let with_crlf = size
                .checked_add(2)
                .ok_or(Failure::Protocol("an invalid chunk size"))?;
            self.skip(with_crlf).await?;
        }
    }
}

type Head = (usize, u16, Body, bool);

/// Parses a response head: `Ok(None)` when more bytes are needed.
fn parse_head(bytes: &[u8]) -> Result<Option<Head>, Failure> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Failure::Protocol("an unparsable response head")),
    };
    let status = response
        .code
        .ok_or(Failure::Protocol("an unparsable response head"))?;
    let mut close = response.version == Some(0);
    let mut body = Body::UntilClose;
    let mut length: Option<usize> = None;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            // RFC 9112 §6.3: several lengths (repeated headers or a list) that differ make the
            // message invalid: an error at once, not a wait for a body that never ends.
            let invalid = Failure::Protocol("an invalid Content-Length header");
            let text = std::str::from_utf8(header.value).map_err(|_| invalid)?;
            for value in text.split(',') {
                let n: usize = value.trim().parse().map_err(|_| invalid)?;
                if length.is_some_and(|l| l != n) {
                    return Err(Failure::Protocol("conflicting Content-Length headers"));
                }
                length = Some(n);
            }
            if let (Some(n), false) = (length, matches!(body, Body::Chunked)) {
                body = Body::Length(n);
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            if header
                .value
                .windows(7)
                .any(|w| w.eq_ignore_ascii_case(b"chunked"))
            {
                body = Body::Chunked;
            }
        } else if header.name.eq_ignore_ascii_case("connection") {
            if header
                .value
                .windows(5)
                .any(|w| w.eq_ignore_ascii_case(b"close"))
            {
                close = true;
            } else if header
                .value
                .windows(10)
                .any(|w| w.eq_ignore_ascii_case(b"keep-alive"))
            {
                close = false;
            }
        }
    }
    Ok(Some((head_len, status, body, close)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn exchange_with(reply: &'static [u8]) -> Result<Reply, Failure> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback binds");
        let addr = listener.local_addr().expect("bound");
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("one client");
            let mut req = [0u8; 1024];
            let _ = s.read(&mut req).await;
            // Dribble the answer to exercise partial reads.
            for chunk in reply.chunks(7) {
                s.write_all(chunk).await.expect("client reads");
                s.flush().await.expect("flush");
                tokio::task::yield_now().await;
            }
        });
        let mut conn = Conn::connect(addr).await.expect("server listens");
        let result = conn.exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        server.await.expect("server task ends");
        result
    }

    #[tokio::test]
    async fn reads_content_length_chunked_and_close() {
        let r = exchange_with(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await;
        assert_eq!(
            r,
            Ok(Reply {
                status: 200,
                close: false
            })
        );
        let r = exchange_with(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(
            r,
            Ok(Reply {
                status: 404,
                close: false
            })
        );
        let r = exchange_with(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end").await;
        assert_eq!(
            r,
            Ok(Reply {
                status: 200,
                close: true
            })
        );
        let r = exchange_with(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nshort").await;
        assert_eq!(r, Err(Failure::Reset));
        let r = exchange_with(b"garbage\r\n\r\n").await;
        assert_eq!(r, Err(Failure::Protocol("an unparsable response head")));
    }

    #[tokio::test]
    async fn conflicting_content_lengths_are_an_error_at_once() {
        for reply in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 7\r\n\r\nhello"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 5, 7\r\n\r\nhello",
        ] {
            assert_eq!(
                exchange_with(reply).await,
                Err(Failure::Protocol("conflicting Content-Length headers"))
            );
        }
        // Repeated identical lengths are one length (RFC 9112 §6.3 allows it).
        let r = exchange_with(
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\nhello",
        )
        .await;
        assert_eq!(
            r,
            Ok(Reply {
                status: 200,
                close: false
            })
        );
    }

    #[tokio::test]
    async fn a_hostile_chunk_size_is_an_error_not_an_overflow() {
        let r = exchange_with(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc\r\n",
        )
        .await;
        assert_eq!(r, Err(Failure::Protocol("an invalid chunk size")));
    }
}
