//! A client connection with the deadlines Pingora does not keep.
//!
//! Pingora 0.9 times each read of a request head separately (`read_timeout`, or the
//! keep-alive timeout, which a client may even set itself with `Keep-Alive: timeout=`), so a
//! head dripped one byte per minute never ends, and it buffers up to 1 MiB of head per
//! connection. `Guarded` sits under Pingora's HTTP/1 session and sees every byte it reads:
//!
//! - waiting for the first byte of a request: closed quietly at the keep-alive deadline
//!   (RFC 9112 9.3: a server may close an idle connection at any time);
//! - inside a head: one deadline for the whole head, and a size cap; past either the read
//!   fails, and the answer (408, 414 or 431) is written when Pingora shuts the connection;
//! - once the proxy has the parsed head (`mark_head_done`), reads are the body's, whose
//!   total deadline the proxy keeps through Pingora's read timeout.

use super::limits::ConnLimits;
use crate::metrics::metrics;
use crate::rejection::Rejection;
use crate::request_id::RequestIds;
use async_trait::async_trait;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID,
    UniqueIDType,
};
use pingora_core::protocols::{SocketDigest, TimingDigest};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long, and how many bytes, a connection is read after its error answer before it is
/// closed: closing with unread input makes the kernel send a reset, which can destroy the
/// answer before the client reads it (RFC 9112 9.6). nginx's `lingering_time` is 30 s;
/// an answer on loopback or a LAN needs far less.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 64 * 1024;

/// Where the connection is in its request cycle.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// No byte of the next request yet: closed quietly at `until`. `head_until` is the
    /// head deadline already running (a new connection's starts at the accept).
    Waiting {
        until: Instant,
        head_until: Option<Instant>,
    },
    /// Inside a head: refused at `until`, or once `bytes` pass the cap. `tail`: the last
    /// bytes read, where a head end may begin; `line_done`: a line feed was read (a head over
    /// the cap is then a 431, else its request line is too long: 414).
    Head {
        until: Instant,
        bytes: usize,
        tail: [u8; 3],
        line_done: bool,
    },
    /// The head is read: the proxy keeps the body's deadline.
    Body,
}

/// Where a request head ends in `got`, read right after bytes ending in `tail`: the index in
/// `got` just past the first empty line (`\r\n\r\n` or a bare `\n\n`, as httparse accepts).
/// Only looked for once a head is over the cap, so normal requests never pay for a scan.
fn head_end(tail: &[u8], got: &[u8]) -> Option<usize> {
    let joined: Vec<u8> = tail.iter().chain(got).copied().collect();
    (0..joined.len()).find_map(|i| {
        let rest = &joined[i..];
        let end = if rest.starts_with(b"\n\n") {
            i + 2
        } else if rest.starts_with(b"\n\r\n") {
            i + 3
        } else {
            return None;
        };
        // An end wholly inside `tail` belongs to the read before.
        (end > tail.len()).then(|| end - tail.len())
    })
}

/// The error answer being written and the lingering close after it.
#[derive(Debug)]
struct Closing {
    answer: Vec<u8>,
    written: usize,
    step: Step,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    Write,
    Flush,
    Shutdown,
    Drain(usize),
}

pub struct Guarded {
    inner: Stream,
    limits: ConnLimits,
    phase: Phase,
    /// Set by the proxy once Pingora parsed the head (`&self`: the hook only borrows us).
    head_done: AtomicBool,
    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
    ids: Arc<RequestIds>,
    /// An answer to write when the connection is shut down, then the lingering close.
    pending: Option<Rejection>,
    closing: Option<Closing>,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("inner", &self.inner)
            .field("phase", &self.phase)
            .finish()
    }
}

impl Guarded {
    /// A newly accepted connection: its head deadline runs from now.
    pub fn new(inner: Stream, limits: ConnLimits, ids: Arc<RequestIds>) -> Guarded {
        let now = Instant::now();
        let head_until = now + limits.head_timeout;
        Guarded {
            inner,
            phase: Phase::Waiting {
                until: head_until,
                head_until: Some(head_until),
            },
            limits,
            head_done: AtomicBool::new(false),
            timer: Box::pin(tokio::time::sleep_until(head_until)),
            timer_at: Some(head_until),
            ids,
            pending: None,
            closing: None,
        }
    }

    /// A connection answered `rejection` and closed without reading a request.
    pub async fn refuse(inner: Stream, rejection: Rejection, ids: Arc<RequestIds>) {
        let mut g = Guarded::new(inner, ConnLimits::default(), ids);
        g.fail(rejection);
        let _ = AsyncWriteExt::shutdown(&mut g).await;
    }

    /// The response is out and the connection stays open: wait for the next request under
    /// the (possibly reloaded) `limits`.
    pub fn next_request(&mut self, limits: ConnLimits) {
        let until = Instant::now() + limits.keepalive;
        self.limits = limits;
        self.phase = Phase::Waiting {
            until,
            head_until: None,
        };
        self.head_done.store(false, Ordering::Relaxed);
    }

    /// Pingora has parsed the head: the reads that follow are the body's.
    pub fn mark_head_done(&self) {
        self.head_done.store(true, Ordering::Relaxed);
    }

    /// Remembers the answer for the shutdown and counts it.
    fn fail(&mut self, rejection: Rejection) {
        if let Some(reason) = rejection.reason() {
            metrics().rejection(reason);
        }
        self.pending = Some(rejection);
    }

    /// Ready when `at` has passed; otherwise registers the wake-up. The timer is moved only
    /// when it would fire after `at`: a deadline that moves later (every request on a
    /// kept-alive connection pushes the idle deadline) is re-armed when the earlier one fires,
    /// not on every request (a timer-wheel reset per request cost ~2% of a request's
    /// instructions).
    fn poll_deadline(&mut self, cx: &mut Context<'_>, at: Instant) -> Poll<()> {
        loop {
            if self.timer_at.is_none_or(|armed| armed > at) {
                self.timer.as_mut().reset(at);
                self.timer_at = Some(at);
            }
            ready!(self.timer.as_mut().poll(cx));
            if self.timer_at.is_some_and(|armed| armed >= at) {
                return Poll::Ready(());
            }
            // An earlier deadline fired; `at` is later: arm for it and wait again.
            self.timer_at = None;
        }
    }

    /// Accounts bytes read before the head was parsed; `Err` when the head is over the cap.
    /// Pingora parses after every read and the proxy marks the head done before the next
    /// one, so only the read that completes a head can carry bytes past its end: the end is
    /// looked for in that read alone, and only when the count passes the cap.
    fn account(&mut self, got: &[u8]) -> io::Result<()> {
        if self.head_done.load(Ordering::Relaxed) {
            self.phase = Phase::Body;
        }
        let (until, before, tail, line_done) = match self.phase {
            Phase::Body => return Ok(()),
            Phase::Head {
                until,
                bytes,
                tail,
                line_done,
            } => (until, bytes, tail, line_done),
            Phase::Waiting { head_until, .. } => (
                head_until.unwrap_or_else(|| Instant::now() + self.limits.head_timeout),
                0,
                [0; 3],
                false,
            ),
        };
        let line_done = line_done || got.contains(&b'\n');
        let bytes = before + got.len();
        let cap = self.limits.raw_head_cap();
        if bytes > cap {
            let kept = &tail[3 - before.min(3)..];
            let within = head_end(kept, got).is_some_and(|end| before + end <= cap);
            if !within {
                self.fail(if line_done {
                    Rejection::HeadersTooLarge
                } else {
                    Rejection::UriTooLong
                });
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "request head over MaxRequestHeadBytes",
                ));
            }
        }
        let mut new_tail = [0; 3];
        let from_got = got.len().min(3);
        new_tail[..3 - from_got].copy_from_slice(&tail[from_got..]);
        new_tail[3 - from_got..].copy_from_slice(&got[got.len() - from_got..]);
        self.phase = Phase::Head {
            until,
            bytes,
            tail: new_tail,
            line_done,
        };
        Ok(())
    }

    /// Writes the pending answer, shuts the write side and drains what the client still
    /// sends, all within `LINGER`.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.closing.is_none() {
            let Some(rejection) = self.pending.take() else {
                return Pin::new(&mut self.inner).poll_shutdown(cx);
            };
            let at = Instant::now() + LINGER;
            self.timer.as_mut().reset(at);
            self.timer_at = Some(at);
            self.closing = Some(Closing {
                answer: answer_bytes(&rejection, &self.ids.next()),
                written: 0,
                step: Step::Write,
            });
        }
        loop {
            let Some(c) = self.closing.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            let inner = Pin::new(&mut self.inner);
            let progress = match c.step {
                Step::Write => inner
                    .poll_write(cx, &c.answer[c.written..])
                    .map(|r| match r {
                        Ok(n) if n > 0 => {
                            c.written += n;
                            if c.written == c.answer.len() {
                                c.step = Step::Flush;
                            }
                            true
                        }
                        _ => false,
                    }),
                Step::Flush => inner.poll_flush(cx).map(|r| {
                    c.step = Step::Shutdown;
                    r.is_ok()
                }),
                Step::Shutdown => inner.poll_shutdown(cx).map(|r| {
                    c.step = Step::Drain(0);
                    r.is_ok()
                }),
                Step::Drain(drained) => {
                    let mut scratch = [0u8; 4096];
                    let mut buf = ReadBuf::new(&mut scratch);
                    inner.poll_read(cx, &mut buf).map(|r| {
                        let n = buf.filled().len();
                        c.step = Step::Drain(drained + n);
                        r.is_ok() && n > 0 && drained + n < LINGER_BYTES
                    })
                }
            };
            match progress {
                Poll::Ready(true) => continue,
                Poll::Ready(false) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    // The lingering deadline is armed above; past it, give up.
                    return self.timer.as_mut().poll(cx).map(|()| Ok(()));
                }
            }
        }
    }
}

/// An answer written straight to the socket, as `proxy::respond` writes rejections.
fn answer_bytes(rejection: &Rejection, request_id: &str) -> Vec<u8> {
    let body = rejection.body();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         apigw-requestid: {request_id}\r\nconnection: close\r\n\r\n{body}",
        rejection.status(),
        rejection.message(),
        body.len()
    )
    .into_bytes()
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let got = &buf.filled()[before..];
                if got.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(this.account(got))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.head_done.load(Ordering::Relaxed) {
                    this.phase = Phase::Body;
                }
                match this.phase {
                    Phase::Body => Poll::Pending,
                    // Idle: an end of stream, which Pingora takes as the client leaving.
                    Phase::Waiting { until, .. } => this.poll_deadline(cx, until).map(|()| Ok(())),
                    Phase::Head { until, .. } => this.poll_deadline(cx, until).map(|()| {
                        this.fail(Rejection::ClientTimeout);
                        Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "request head not complete within RequestHeadTimeoutInMillis",
                        ))
                    }),
                }
            }
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_close(cx)
    }
}

#[async_trait]
impl Shutdown for Guarded {
    async fn shutdown(&mut self) {
        let _ = AsyncWriteExt::shutdown(self).await;
    }
}

impl UniqueID for Guarded {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

/// The TLS facts of the connection beneath: HTTPS clients, mutual TLS and
/// `X-Forwarded-Proto` read them through the wrapper.
impl Ssl for Guarded {
    fn get_ssl(&self) -> Option<&pingora_core::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<pingora_core::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<pingora_core::protocols::ALPN> {
        self.inner.selected_alpn_proto()
    }
}

#[async_trait]
impl Peek for Guarded {
    // Peeking would bypass the head accounting; h2c's preface is peeked before the wrapper.
}

impl GetTimingDigest for Guarded {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Guarded {
    fn get_proxy_digest(&self) -> Option<Arc<pingora_core::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for Guarded {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the head ends when `bytes` arrive in pieces cut at `cuts`, each piece looked
    /// at with the last three bytes before it, as `Guarded::account` does.
    fn end_via_reads(bytes: &[u8], cuts: &[usize]) -> Option<usize> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.sort_unstable();
        points.push(bytes.len());
        let mut at: usize = 0;
        for p in points {
            let tail = &bytes[at.saturating_sub(3)..at];
            if let Some(end) = head_end(tail, &bytes[at..p]) {
                return Some(at + end);
            }
            at = p;
        }
        None
    }

    #[test]
    fn finds_the_end_of_a_head_across_reads() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        assert_eq!(head_end(&[], head), Some(head.len() - 4));
        let every_byte: Vec<usize> = (0..head.len()).collect();
        assert_eq!(end_via_reads(head, &every_byte), Some(head.len() - 4));
        assert_eq!(head_end(b"\r\n\r", b"\nBODY"), Some(1));
        assert_eq!(head_end(b"", b"GET / HTTP/1.1\nHost: a\n\n"), Some(24));
        assert_eq!(head_end(b"", b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
        // An end that lies wholly in the bytes before is not this read's.
        assert_eq!(head_end(b"\n\n", b"xyz"), None);
    }

    proptest::proptest! {
        /// Any bytes, cut anywhere: no panic, and the end found does not depend on the cuts
        /// (a client choosing its segment sizes cannot move it).
        #[test]
        fn the_end_of_a_head_does_not_depend_on_how_it_arrives(
            bytes in proptest::collection::vec(
                proptest::sample::select(vec![b'\r', b'\n', b'a', b':', b' ', 0xff]), 0..200),
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            let whole = head_end(&[], &bytes);
            proptest::prop_assert_eq!(end_via_reads(&bytes, &cuts), whole);
            if let Some(end) = whole {
                proptest::prop_assert!(end <= bytes.len());
                proptest::prop_assert_eq!(bytes[end - 1], b'\n');
            }
        }

        /// A well-formed head (CRLF or bare LF lines) ends exactly at its empty line,
        /// whatever body bytes follow.
        #[test]
        fn a_well_formed_head_ends_at_its_empty_line(
            target in "/[a-z0-9/%.]{0,40}",
            headers in proptest::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,30}"), 0..6),
            crlf in proptest::bool::ANY,
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..50),
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut head = format!("GET {target} HTTP/1.1{eol}");
            for (k, v) in &headers {
                head.push_str(&format!("{k}: {}{eol}", v.trim()));
            }
            head.push_str(eol);
            let mut bytes = head.clone().into_bytes();
            bytes.extend_from_slice(&body);
            proptest::prop_assert_eq!(end_via_reads(&bytes, &cuts), Some(head.len()));
        }
    }

    /// Reads `input` through a `Guarded` in reads of at most `read_size` bytes until the
    /// input ends or a read fails, marking the head done once its `head_len` bytes are in (as
    /// the proxy does once Pingora parsed it); returns the bytes delivered and the answer.
    async fn read_through(
        input: Vec<u8>,
        head_len: usize,
        read_size: usize,
    ) -> (usize, Option<Rejection>) {
        use tokio::io::AsyncReadExt;
        let limits = ConnLimits {
            max_head_bytes: 1024,
            ..ConnLimits::default()
        };
        let stream: Stream = Box::new(std::io::Cursor::new(input));
        let mut g = Guarded::new(stream, limits, Arc::new(RequestIds::new()));
        let mut delivered = 0;
        let mut buf = vec![0; read_size];
        while let Ok(n) = g.read(&mut buf).await {
            if n == 0 {
                break;
            }
            delivered += n;
            if delivered >= head_len {
                g.mark_head_done();
            }
        }
        (delivered, g.pending.take())
    }

    /// A head of `len` bytes (request line, one header, the empty line), then `body`.
    fn head_of(len: usize, body: usize) -> Vec<u8> {
        let fixed = "GET / HTTP/1.1\r\nX: \r\n\r\n".len();
        let mut h = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "v".repeat(len - fixed));
        h.push_str(&"b".repeat(body));
        h.into_bytes()
    }

    #[tokio::test]
    async fn the_raw_head_cap_counts_the_head_not_the_body_read_with_it() {
        let cap = 1024 + super::super::limits::RAW_HEAD_SLACK;
        // At the cap, with a body in the same read: passes.
        assert_eq!(
            read_through(head_of(cap, 500), cap, cap + 500).await.1,
            None
        );
        // In small reads too.
        assert_eq!(read_through(head_of(cap, 500), cap, 100).await.1, None);
        // One byte over: 431, wherever the reads cut.
        for size in [cap + 600, 4096, 7] {
            let (delivered, answer) = read_through(head_of(cap + 1, 500), cap + 1, size).await;
            assert_eq!(answer, Some(Rejection::HeadersTooLarge), "reads of {size}");
            assert!(delivered <= cap + size, "read past the cap: {delivered}");
        }
        // A request line that never ends: 414.
        let line = format!("GET /{}", "p".repeat(cap)).into_bytes();
        assert_eq!(
            read_through(line, usize::MAX, 4096).await.1,
            Some(Rejection::UriTooLong)
        );
    }

    #[test]
    fn answers_are_aws_json_with_a_request_id() {
        let a = String::from_utf8(answer_bytes(&Rejection::HeadersTooLarge, "id")).unwrap();
        assert!(a.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(a.contains("apigw-requestid: id\r\n"));
        assert!(a.ends_with("\r\n\r\n{\"message\":\"Request Header Fields Too Large\"}"));
    }
}
