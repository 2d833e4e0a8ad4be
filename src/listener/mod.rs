//! Client connections: how many, how long, how large.
//!
//! Pingora 0.9 has no connection limit, times request heads per read, and keeps an idle
//! keep-alive connection for as long as the client likes. `Edge` is the listening service's
//! app: it counts connections against `MaxConnections`, wraps each in `stream::Guarded`
//! (the head deadline, the head size cap, the keep-alive deadline) and runs Pingora's
//! HTTP/1 keep-alive loop around `HttpProxy::process_new_http`, the way Pingora's own
//! `ServerApp` for HTTP apps does, but with the keep-alive timing left to `Guarded`.
//! The proxy hooks call `head_parsed`, `head_too_large` and `body_read` (the body deadline).

mod limits;
mod stream;

pub use limits::{
    head_too_large, Bound, ConnLimits, BODY_TIMEOUT, HEAD_TIMEOUT, KEEPALIVE, MAX_CONNECTIONS,
    MAX_HEAD_BYTES,
};
pub use stream::Guarded;

use crate::metrics::metrics;
use crate::rejection::Rejection;
use crate::reload::SharedTable;
use crate::request_id::RequestIds;
use async_trait::async_trait;
use pingora_core::apps::{HttpServerApp, ServerApp};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::{Stream, ALPN};
use pingora_core::server::ShutdownWatch;
use pingora_proxy::{HttpProxy, ProxyHttp, Session};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The listening service's app, in front of the proxy `SV` (apigate's `proxy::Gateway`).
pub struct Edge<SV> {
    proxy: Arc<HttpProxy<SV>>,
    table: SharedTable,
    ids: Arc<RequestIds>,
    open: Arc<AtomicUsize>,
}

impl<SV> Edge<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    pub fn new(proxy: HttpProxy<SV>, table: SharedTable, ids: Arc<RequestIds>) -> Edge<SV> {
        Edge {
            proxy: Arc::new(proxy),
            table,
            ids,
            open: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn limits(&self) -> ConnLimits {
        self.table.load().settings.conn.clone()
    }

    /// Whether the connection speaks HTTP/2: ALPN chose `h2` on TLS, or, on a plain
    /// listener with h2c on, the client opened with the HTTP/2 preface (RFC 9113 3.4).
    async fn is_h2(&self, stream: &mut Stream) -> bool {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return true;
        }
        let h2c = self.proxy.server_options.as_ref().is_some_and(|o| o.h2c);
        if !h2c || stream.get_ssl_digest().is_some() {
            return false;
        }
        let mut preface = [0u8; H2_PREFACE.len()];
        matches!(stream.try_peek(&mut preface).await, Ok(true)) && preface == *H2_PREFACE
    }
}

/// RFC 9113 3.4: the client connection preface of HTTP/2.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One open client connection, counted until dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// A slot if fewer than `max` are taken. The setting is read per connection, so a
    /// reload that lowers it refuses new connections until enough have closed.
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()?;
        metrics().client_connections.inc();
        Some(Slot(open.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        metrics().client_connections.dec();
    }
}

#[async_trait]
impl<SV> ServerApp for Edge<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let limits = self.limits();
        // Pingora accepts unconditionally (its optional `connection_filter` judges a peer's
        // address, not a count, and closes without a word), so connection N+1 is accepted,
        // answered 503 and closed: a client learns why, unlike with a reset or a connection
        // left in the listen backlog.
        let Some(_slot) = Slot::take(&self.open, limits.max_connections) else {
            Guarded::refuse(stream, Rejection::Overloaded, self.ids.clone()).await;
            return None;
        };
        // HTTP/2 (ALPN `h2`, or prior-knowledge h2c when `Http2Cleartext` is on) goes through
        // Pingora's own HTTP/2 server: its streams are framed and flow-controlled by h2, not
        // by the HTTP/1 head and keep-alive rules `Guarded` keeps. The slot still counts it.
        if self.is_h2(&mut stream).await {
            return self.proxy.process_new(stream, shutdown).await;
        }
        let mut conn = Box::new(Guarded::new(stream, limits, self.ids.clone()));
        let mut persisted = None;
        loop {
            let mut session = ServerSession::new_http1(conn);
            if let Some(settings) = persisted.take() {
                pingora_core::apps::HttpPersistentSettings::apply_to_session(
                    settings,
                    &mut session,
                );
            }
            if *shutdown.borrow() {
                session.set_keepalive(None);
            } else {
                // `Some(0)`: Pingora sets no per-read timer of its own on the head (its
                // default, 60 s per read, would cut a head `Guarded` still allows, without
                // an answer); `Guarded` keeps the keep-alive and head deadlines. Once the head
                // is parsed Pingora applies the client's keep-alive wishes as usual.
                session.set_keepalive(Some(0));
            }
            let reused = self.proxy.process_new_http(session, shutdown).await?;
            let (stream, settings) = reused.consume();
            let Ok(mut guarded) = stream.into_any().downcast::<Guarded>() else {
                log::error!("a reused client connection is not the one accepted");
                return None;
            };
            guarded.next_request(self.limits());
            conn = guarded;
            persisted = settings;
        }
    }

    async fn cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}

/// Called by the proxy once Pingora has parsed a head: the connection stops timing the head,
/// and the body's deadline (returned) starts, `RequestBodyTimeoutInMillis` from now.
pub fn head_parsed(session: &mut Session, limits: &ConnLimits) -> Instant {
    if let Some(g) = guarded(session) {
        g.mark_head_done();
    }
    session
        .as_downstream_mut()
        .set_read_timeout(Some(limits.body_timeout));
    Instant::now() + limits.body_timeout
}

/// Before each body read: Pingora times body reads one at a time, so its read timeout is
/// set to what is left of the body's deadline (a body dripped one byte per read interval
/// is cut at the deadline; the proxy answers 408 and drops the backend connection).
pub fn body_read(session: &mut Session, deadline: Instant) {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    session.as_downstream_mut().set_read_timeout(Some(left));
}

/// Each proxied connection holds two descriptors (client and backend): raises the soft
/// `RLIMIT_NOFILE` toward that for `max_connections` (never past the hard limit), so that
/// connection N+1 meets the cap's 503 rather than a failing `accept` (EMFILE, which Pingora
/// answers by pausing its accept loop for a second). Returns the limit if it stays short.
pub fn raise_fd_limit(max_connections: usize) -> Option<u64> {
    let want = (max_connections as u64)
        .saturating_mul(2)
        .saturating_add(256);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want.min(lim.rlim_max),
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    (lim.rlim_cur < want).then_some(lim.rlim_cur)
}

fn guarded(session: &Session) -> Option<&Guarded> {
    session
        .as_downstream()
        .stream()
        .and_then(|s| s.as_any().downcast_ref::<Guarded>())
}
