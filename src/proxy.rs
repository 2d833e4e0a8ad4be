//! The Pingora `ProxyHttp` implementation: route selection and policies in
//! `request_filter`, the peer in `upstream_peer`, URI/header rewriting in
//! `upstream_request_filter`, response mapping in `response_filter`, AWS-style errors in
//! `fail_to_proxy`.

use crate::mapping::{apply_header, Claims, RequestOp, ResponseOp, Vars, VALID_STATUS};
use crate::metrics::{metrics, Rejection};
use crate::policy::ipfilter::UNKNOWN_CLIENT;
use crate::policy::jwt::{AuthReject, IdentitySource};
use crate::policy::ratelimit::{self, Decision, KeySource};
use crate::reload::SharedTable;
use crate::table::{Route, Table};
use async_trait::async_trait;
use bytes::Bytes;
use http::header;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Requests between `request_filter` and `logging`; SIGTERM waits for this to reach zero.
pub static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Characters that cannot stand in a URL path as they are (`%` stays: values are encoded).
const PATH_UNSAFE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');
/// Characters escaped in a mapped query value.
const QUERY_UNSAFE: &AsciiSet = &PATH_UNSAFE.add(b'&').add(b'=').add(b'+').add(b'%');

pub struct Gateway {
    table: SharedTable,
    ids: RequestIds,
}

impl Gateway {
    pub fn new(table: SharedTable) -> Self {
        Gateway {
            table,
            ids: RequestIds::new(),
        }
    }
}

/// Per-request state, filled as the request moves through the hooks.
pub struct Ctx {
    start: Instant,
    request_id: String,
    table: Option<Arc<Table>>,
    stage: Option<Arc<str>>,
    route: Option<Arc<Route>>,
    /// Path variables, still percent-encoded.
    params: Vec<(Box<str>, Box<str>)>,
    /// The request path without the stage prefix.
    stage_path: String,
    client_ip: IpAddr,
    /// `client_ip` formatted once: mappings, rate-limit keys and forwarding headers use it.
    client_ip_str: String,
    claims: Option<Arc<Claims>>,
    /// The tightest rate-limit decision, reported in `RateLimit-*` headers.
    rate: Option<Decision>,
    /// Why the gateway answered itself, for metrics and `$context.error.message`.
    rejection: Option<Rejection>,
    error_message: Option<&'static str>,
    access_log: Option<Arc<crate::accesslog::AccessLog>>,
    upstream_start: Option<Instant>,
    /// Time until the backend's response headers arrived, and its status.
    integration: Option<(Duration, u16)>,
    counted: bool,
    body_bytes: u64,
}

impl Ctx {
    /// The values mappings read, for the request (and the backend's response, if any).
    fn vars<'a>(
        &'a self,
        req: &'a RequestHeader,
        route: &'a Route,
        resp: Option<&'a ResponseHeader>,
    ) -> Vars<'a> {
        Vars {
            req,
            path: &self.stage_path,
            full_path: req.uri.path(),
            params: &self.params,
            request_id: &self.request_id,
            stage: self.stage.as_deref().unwrap_or("$default"),
            route_key: &route.key,
            source_ip: &self.client_ip_str,
            claims: self.claims.as_deref(),
            resp,
        }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    /// Pingora's default adds a disabled response-compression module; its per-request
    /// context and filter calls cost ~1k instructions per request. apigate never compresses.
    fn init_downstream_modules(&self, _modules: &mut pingora_core::modules::http::HttpModules) {}

    fn new_ctx(&self) -> Ctx {
        Ctx {
            start: Instant::now(),
            request_id: String::new(),
            table: None,
            stage: None,
            route: None,
            params: Vec::new(),
            stage_path: String::new(),
            client_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            client_ip_str: String::new(),
            claims: None,
            rate: None,
            rejection: None,
            error_message: None,
            access_log: None,
            upstream_start: None,
            integration: None,
            counted: false,
            body_bytes: 0,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        // RFC 9112 9.3.2: requests a client pipelines are answered in order (Pingora's
        // default drops every one after the first).
        session.as_downstream_mut().set_pipelining_enabled(true);
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        metrics().in_flight.inc();
        ctx.counted = true;
        ctx.request_id = self.ids.next();
        let table = self.table.load_full();
        ctx.table = Some(table.clone());

        let req = session.req_header();
        let path = req.uri.path();
        // The stage is known first so that every answer, rejections included, is logged
        // in its access log.
        let stage = table.stage_for(path);
        if let Some((stage, _)) = stage {
            ctx.stage = Some(stage.name.clone());
            ctx.access_log = stage.access_log.clone();
        }
        if let Some(problem) = malformed(req) {
            log::debug!("400 for {:?}: {problem}", req.uri);
            return respond(session, ctx, 400, &[]).await;
        }

        // CORS preflights are answered before routing and authorization (AWS).
        if let Some(cors) = &table.cors {
            if let Some(headers) = preflight(cors, req) {
                write_preflight(session, ctx, headers).await?;
                return Ok(true);
            }
        }

        let peer_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map_or(UNKNOWN_CLIENT, |a| a.ip());
        ctx.client_ip = crate::policy::ipfilter::client_ip(
            peer_ip,
            &table.settings.trusted_proxies,
            req.headers
                .get_all(&X_FORWARDED_FOR)
                .iter()
                .map(|v| v.as_bytes()),
        );
        ctx.client_ip_str = ip_string(ctx.client_ip);
        if !permits(&table.api_ip_filter, ctx.client_ip) {
            return respond(session, ctx, 403, &[]).await;
        }

        // Bodies over the limit are refused before any backend is involved.
        if content_length(req).is_some_and(|len| len > table.settings.max_body_bytes) {
            session.set_keepalive(None);
            return respond(session, ctx, 413, &[]).await;
        }

        let Some((stage, stage_path)) = stage else {
            return respond(session, ctx, 404, &[]).await;
        };
        if !permits(&stage.ip_filter, ctx.client_ip) {
            return respond(session, ctx, 403, &[]).await;
        }
        let Some(selected) = stage.router.select(&req.method, stage_path) else {
            return respond(session, ctx, 404, &[]).await;
        };
        let route = selected.route.clone();
        ctx.params = selected
            .params
            .iter()
            .map(|(k, v)| (Box::from(*k), Box::from(*v)))
            .collect();
        ctx.stage_path = stage_path.to_string();
        ctx.route = Some(route.clone());

        // Answers refused before the limits are counted still report them (RateLimit-*).
        if !permits(&route.ip_filter, ctx.client_ip) {
            self.peek_rate_limits(session, ctx, &route, &table).await;
            return respond(session, ctx, 403, &[]).await;
        }
        // Throttling comes before the authorizer: a throttled request costs no verification.
        if route.throttle.as_ref().is_some_and(|b| !b.try_acquire()) {
            self.peek_rate_limits(session, ctx, &route, &table).await;
            return respond(session, ctx, 429, &[]).await;
        }
        if !self.rate_limits(session, ctx, &route, &table, false).await {
            return respond(session, ctx, 429, &[]).await;
        }
        if let Some(auth) = &route.authorizer {
            let verdict = match identity(session.req_header(), auth.identity_source()) {
                Ok(token) => auth.authorize(token.as_deref(), &route.scopes).await,
                Err(reject) => Err(reject),
            };
            match verdict {
                Ok(claims) => ctx.claims = Some(claims),
                Err(AuthReject::Unauthorized { www_authenticate }) => {
                    return respond(session, ctx, 401, &[("www-authenticate", www_authenticate)])
                        .await;
                }
                Err(AuthReject::Forbidden) => return respond(session, ctx, 403, &[]).await,
            }
        }
        // Limits keyed by a claim can only be counted once the token is verified.
        if !self.rate_limits(session, ctx, &route, &table, true).await {
            return respond(session, ctx, 429, &[]).await;
        }
        Ok(false)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // Chunked uploads have no Content-Length to check up front.
        if let Some(b) = body {
            ctx.body_bytes += b.len() as u64;
            let max = ctx
                .table
                .as_ref()
                .map_or(u64::MAX, |t| t.settings.max_body_bytes);
            if ctx.body_bytes > max {
                return Error::e_explain(
                    ErrorType::HTTPStatus(413),
                    "request body over MaxBodyBytes",
                );
            }
        }
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        ctx.upstream_start = Some(Instant::now());
        match &ctx.route {
            Some(route) => Ok(Box::new(route.integration.target.peer.clone())),
            None => Error::e_explain(ErrorType::InternalError, "no route selected"),
        }
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        _ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // A refused or timed-out connect is answered at once, not retried 16 times.
        metrics().upstream_connect_failures.inc();
        e.set_retry(false);
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        up: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(route) = ctx.route.clone() else {
            return Error::e_explain(ErrorType::InternalError, "no route selected");
        };
        let integration = &route.integration;
        let target = &integration.target;
        let req = session.req_header();
        let vars = ctx.vars(req, &route, None);

        // Path: the URI template, `$default` appends the client path, `overwrite:path` wins.
        let mut path = String::with_capacity(64);
        let mut overwrite_path = None;
        let mut query_edits = false;
        for map in &route.request_maps {
            for op in &map.ops {
                match op {
                    RequestOp::Path(t) => overwrite_path = Some(t),
                    RequestOp::Query(..) => query_edits = true,
                    RequestOp::Header(..) => {}
                }
            }
        }
        match overwrite_path {
            Some(t) => {
                let v = t.eval(&vars, true);
                if !v.starts_with('/') {
                    path.push('/');
                }
                path.extend(utf8_percent_encode(&v, PATH_UNSAFE));
            }
            None => target.write_path(
                &ctx.params,
                route.is_default.then_some(ctx.stage_path.as_str()),
                &mut path,
            ),
        }

        // Query: the URI's own first, then the client's, then mapping edits.
        let client_query = req.uri.query().filter(|q| !q.is_empty());
        let mut query: Option<String> = match (&target.query, client_query) {
            (Some(a), Some(b)) => Some(format!("{a}&{b}")),
            (Some(a), None) => Some(a.clone()),
            (None, Some(b)) => Some(b.to_string()),
            (None, None) => None,
        };
        if query_edits {
            query = edit_query(query.as_deref().unwrap_or(""), &route, &vars);
        }
        if let Some(q) = &query {
            path.push('?');
            path.push_str(q);
        }
        let uri = http::Uri::try_from(path)
            .map_err(|e| Error::because(ErrorType::HTTPStatus(400), "bad backend URI", e))?;
        up.set_uri(uri);
        if let Some(m) = &integration.method {
            up.set_method(m.clone());
        }

        // Forwarding headers (AWS sends Forwarded; X-Forwarded-* as most proxies do).
        let original_host = req
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        // The TCP peer is appended to X-Forwarded-For (it is the client unless it is a trusted proxy).
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let peer_ip = match peer {
            Some(ip) if ip == ctx.client_ip => ctx.client_ip_str.clone(),
            Some(ip) => ip.to_string(),
            None => String::new(),
        };
        let listen_port = session
            .server_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.port())
            .unwrap_or(0);
        // Repeated X-Forwarded-For fields are one list (RFC 9110 5.3): keep every hop.
        let mut xff = String::with_capacity(peer_ip.len() + 32);
        for prev in req.headers.get_all(&X_FORWARDED_FOR) {
            let prev = prev.to_str().unwrap_or("").trim();
            if !prev.is_empty() {
                xff.push_str(prev);
                xff.push_str(", ");
            }
        }
        xff.push_str(&peer_ip);
        let mut forwarded = String::with_capacity(64);
        forwarded.push_str("for=");
        if ctx.client_ip.is_ipv6() {
            forwarded.push_str("\"[");
            forwarded.push_str(&ctx.client_ip_str);
            forwarded.push_str("]\"");
        } else {
            forwarded.push_str(&ctx.client_ip_str);
        }
        push_forwarded_host(&mut forwarded, original_host);
        forwarded.push_str(";proto=http");
        // RFC 9110 7.6.3: each proxy adds itself to Via (AWS adds "HTTP/1.1 AmazonAPIGateway").
        let via = match req.headers.get(header::VIA).and_then(|v| v.to_str().ok()) {
            Some(prev) if !prev.trim().is_empty() => format!("{prev}, 1.1 apigate"),
            _ => "1.1 apigate".to_string(),
        };
        up.insert_header(header::HOST, target.host_header.as_str())?;
        up.insert_header("X-Forwarded-For", xff)?;
        up.insert_header("X-Forwarded-Proto", "http")?;
        up.insert_header("X-Forwarded-Port", http::HeaderValue::from(listen_port))?;
        up.insert_header("Forwarded", forwarded)?;
        up.insert_header(header::VIA, via)?;
        // AWS HTTP APIs do not tunnel: a backend's 101 would turn the exchange into a raw
        // stream outside the body limit and timeouts.
        up.remove_header(&header::UPGRADE);

        for map in &route.request_maps {
            for op in &map.ops {
                if let RequestOp::Header(action, h, t) = op {
                    apply_header(up, *action, h, &t.eval(&vars, false))?;
                }
            }
        }
        Ok(())
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora_core::protocols::Digest>,
        _ctx: &mut Ctx,
    ) -> Result<()> {
        metrics().upstream_connection(reused);
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let status = resp.status.as_u16();
        if let Some(start) = ctx.upstream_start {
            let took = start.elapsed();
            ctx.integration = Some((took, status));
            // Each read is bounded by TimeoutInMillis, which catches a silent backend at the
            // timeout; a backend trickling its head byte by byte is caught here, once the head
            // is complete: TimeoutInMillis bounds the whole wait for the answer (AWS).
            let budget = ctx
                .route
                .as_ref()
                .and_then(|r| r.integration.target.peer.options.read_timeout);
            if budget.is_some_and(|b| took > b) {
                let mut e = Error::explain(
                    ErrorType::ReadTimedout,
                    format!("the backend's answer took {took:?}"),
                );
                e.as_up();
                return Err(e);
            }
        }
        // `999` parses as HTTP but is no status a client can act on: a malformed answer.
        if status > 599 {
            let mut e = Error::explain(
                ErrorType::InvalidHTTPHeader,
                format!("backend answered status {status}"),
            );
            e.as_up();
            return Err(e);
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        strip_hop_by_hop(resp);
        if let Some(route) = ctx.route.clone() {
            let status = resp.status.as_u16();
            if route
                .response_maps
                .iter()
                .any(|m| !m.for_status(status).is_empty())
            {
                // `$response.header.X` reads the backend's headers as they arrived.
                let backend = resp.clone();
                let req = session.req_header();
                let vars = ctx.vars(req, &route, Some(&backend));
                let mut new_status = None;
                for map in &route.response_maps {
                    for op in map.for_status(status) {
                        match op {
                            ResponseOp::Status(t) => {
                                new_status = t.eval(&vars, false).trim().parse::<u16>().ok()
                            }
                            ResponseOp::Header(action, h, t) => {
                                apply_header(resp, *action, h, &t.eval(&vars, false))?
                            }
                        }
                    }
                }
                if let Some(code) = new_status.filter(|c| VALID_STATUS.contains(c)) {
                    resp.set_status(code)?;
                    if code == 204 || code == 304 {
                        // No body follows these (Pingora sends none): no framing headers.
                        resp.remove_header(&header::CONTENT_LENGTH);
                        resp.remove_header(&header::TRANSFER_ENCODING);
                    }
                }
            }
        }
        gateway_headers(resp, session, ctx)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = classify(e);
        ctx.error_message = Some(message(code));
        ctx.rejection = match code {
            503 => Some(Rejection::Timeout),
            502 => Some(Rejection::BadGateway),
            413 => Some(Rejection::TooLarge),
            400 | 408 => Some(Rejection::BadRequest),
            _ => ctx.rejection,
        };
        if ctx.request_id.is_empty() {
            ctx.request_id = self.ids.next();
        }
        session.set_keepalive(None);
        // Once the backend's headers are out, an error can only cut the body short: closing
        // the connection tells the client, a JSON message would corrupt the body.
        let answered = session.response_written().is_some();
        if code > 0 && !answered {
            if let Err(err) = write_json(session, ctx, code, &[]).await {
                log::debug!("could not send the error response: {err}");
            }
        }
        FailToProxy {
            error_code: if answered { 0 } else { code },
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, error: &Error) -> bool {
        // Upstream failures are answered (502/503) and counted in metrics; logging each one
        // at error level would flood the log during a load test against a dead backend.
        log::debug!("proxy error: {error}");
        true
    }

    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        _ctx: &Ctx,
        error: &Error,
        _context: pingora_proxy::ProxyWarnLogContext,
    ) -> bool {
        // A retry on a stale pooled connection is routine; connect failures are counted.
        log::debug!("proxy retry: {error}");
        true
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        if !ctx.counted {
            return;
        }
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
        let m = metrics();
        m.in_flight.dec();
        if let Some(r) = ctx.rejection {
            m.rejection(r);
        }
        // No response written: the client went away first (nginx's 499), still counted and
        // logged so that abandoned requests show in the dashboards.
        let status = session
            .response_written()
            .map_or(CLIENT_CLOSED, |r| r.status.as_u16());
        let route_metrics = match &ctx.route {
            Some(r) => &r.metrics,
            None => crate::metrics::unmatched(ctx.stage.as_deref().unwrap_or("-")),
        };
        let took = ctx.start.elapsed();
        let sent = session.body_bytes_sent() as u64;
        route_metrics.observe(
            &session.req_header().method,
            status,
            took,
            ctx.integration.map(|(d, _)| d),
            ctx.body_bytes,
            sent,
        );
        if let Some(log) = &ctx.access_log {
            let req = session.req_header();
            let user_agent = req
                .headers
                .get(header::USER_AGENT)
                .map(|v| String::from_utf8_lossy(v.as_bytes()));
            let host = req.headers.get(header::HOST).and_then(|v| v.to_str().ok());
            let vars = crate::accesslog::LogVars {
                request_id: &ctx.request_id,
                route_key: ctx.route.as_ref().map_or("-", |r| &r.key),
                status,
                method: req.method.as_str(),
                path: req.uri.path(),
                protocol: match req.version {
                    http::Version::HTTP_10 => "HTTP/1.0",
                    http::Version::HTTP_2 => "HTTP/2.0",
                    _ => "HTTP/1.1",
                },
                source_ip: &ctx.client_ip_str,
                user_agent: user_agent.as_deref(),
                response_length: sent,
                response_latency_ms: took.as_millis() as u64,
                integration_latency_ms: ctx.integration.map(|(d, _)| d.as_millis() as u64),
                integration_status: ctx.integration.map(|(_, s)| s),
                error_message: ctx.error_message,
                integration_error: ctx.error_message.filter(|_| {
                    matches!(
                        ctx.rejection,
                        Some(Rejection::Timeout | Rejection::BadGateway)
                    )
                }),
                request_time: std::time::SystemTime::now() - took,
                stage: ctx.stage.as_deref().unwrap_or("-"),
                domain_name: host.map_or("-", host_without_port),
                claims: ctx.claims.as_deref(),
            };
            let mut line = String::with_capacity(256);
            log.format.render(&vars, &mut line);
            log.writer.write_line(line);
        }
    }
}

/// `;host=` of `Forwarded` (RFC 7239): a bare token when the Host is one, a quoted-string
/// when it holds a port or an IPv6 literal, nothing when it is not a host at all. The client
/// writes Host, so it must never be able to add elements of its own.
fn push_forwarded_host(out: &mut String, host: &str) {
    let host_char =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']');
    if host.is_empty() || !host.bytes().all(host_char) {
        return;
    }
    out.push_str(";host=");
    if host.contains([':', '[']) {
        out.push('"');
        out.push_str(host);
        out.push('"');
    } else {
        out.push_str(host);
    }
}

/// Hop-by-hop headers of the backend's answer (RFC 9110 7.6.1) stay between it and the
/// gateway; Pingora writes the client connection's own framing headers. Most answers carry
/// none (at most `Connection: keep-alive`), and then this allocates nothing and edits nothing.
fn strip_hop_by_hop(resp: &mut ResponseHeader) {
    // Names a backend lists in `Connection` beyond the usual keep-alive/close.
    let listed: Vec<http::HeaderName> = resp
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.eq_ignore_ascii_case("keep-alive") && !n.eq_ignore_ascii_case("close"))
        .filter_map(|n| http::HeaderName::from_bytes(n.as_bytes()).ok())
        .filter(|n| *n != header::TRANSFER_ENCODING && *n != header::CONTENT_LENGTH)
        .collect();
    let doomed: Vec<http::HeaderName> = resp
        .headers
        .keys()
        .filter(|k| is_hop_by_hop(k) || listed.contains(k))
        .cloned()
        .collect();
    for name in doomed {
        resp.remove_header(&name);
    }
}

/// The fixed hop-by-hop set, besides `Connection` and the framing headers Pingora manages.
fn is_hop_by_hop(name: &http::HeaderName) -> bool {
    *name == header::TE
        || *name == header::TRAILER
        || *name == header::UPGRADE
        || *name == header::PROXY_AUTHENTICATE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// Status recorded for a request whose client left before any answer (nginx's convention).
const CLIENT_CLOSED: u16 = 499;

/// `example.com:8080` -> `example.com`, `[::1]:8080` -> `[::1]`.
fn host_without_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    }
}

/// Pre-parsed: a `&str` name is parsed (and lowercased) on every lookup.
static X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// `IpAddr::to_string()` goes through `core::fmt` (~1.3k instructions for an IPv4 address).
fn ip_string(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut s = String::with_capacity(15);
    for (i, o) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if o >= 100 {
            s.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            s.push(char::from(b'0' + o / 10 % 10));
        }
        s.push(char::from(b'0' + o % 10));
    }
    s
}

/// `%` must be followed by two hex digits.
fn valid_percent_encoding(path: &str) -> bool {
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

impl Gateway {
    /// Counts the request against the route's rate limits (those keyed by a claim, or the
    /// others); false when one refuses it. The decisions are folded into `ctx.rate` with
    /// [`ratelimit::combine`]. Limits after a refusing one are not counted (the request
    /// is refused anyway), but they are peeked so that `Retry-After` also covers them.
    async fn rate_limits(
        &self,
        session: &Session,
        ctx: &mut Ctx,
        route: &Route,
        table: &Table,
        claim_keys: bool,
    ) -> bool {
        let mut limits = route
            .rate_limits
            .iter()
            .filter(|l| matches!(l.key, KeySource::Claim(_)) == claim_keys);
        while let Some(limit) = limits.next() {
            let decision = {
                let key = limit_key(session, ctx, limit);
                table
                    .store
                    .hit(&limit.scope, &key, limit.calls, limit.period_secs)
                    .await
            };
            fold_rate(ctx, decision);
            if !decision.allowed {
                for rest in limits {
                    let d = peek_one(session, ctx, rest, table).await;
                    fold_rate(ctx, d);
                }
                return false;
            }
        }
        true
    }

    /// For an answer refused before the rate limits were counted (IP filter 403, throttle
    /// 429, ...): fills `ctx.rate` from the route's limits as they stand, counting
    /// nothing, so the answer still carries `RateLimit-*` headers. Limits keyed by a claim
    /// are skipped while there are no verified claims. Does nothing when `ctx.rate` is
    /// already set (counted decisions are the ones to report).
    ///
    /// The result is always `allowed`: no limit refused this request, so it gets no
    /// `Retry-After` from a limit, and a 429 answered after this stays classed as
    /// throttled, not rate-limited.
    pub async fn peek_rate_limits(
        &self,
        session: &Session,
        ctx: &mut Ctx,
        route: &Route,
        table: &Table,
    ) {
        if ctx.rate.is_some() {
            return;
        }
        for limit in &route.rate_limits {
            if matches!(limit.key, KeySource::Claim(_)) && ctx.claims.is_none() {
                continue;
            }
            let d = peek_one(session, ctx, limit, table).await;
            fold_rate(ctx, d);
        }
        if let Some(d) = &mut ctx.rate {
            d.allowed = true;
        }
    }
}

/// Keeps the decision to report for the request's limits so far.
fn fold_rate(ctx: &mut Ctx, d: Decision) {
    ctx.rate = Some(match ctx.rate {
        Some(before) => ratelimit::combine(before, d),
        None => d,
    });
}

/// The state of one limit for this request, counting nothing.
async fn peek_one(
    session: &Session,
    ctx: &Ctx,
    limit: &crate::table::RateLimit,
    table: &Table,
) -> Decision {
    let key = limit_key(session, ctx, limit);
    table
        .store
        .peek(&limit.scope, &key, limit.calls, limit.period_secs)
        .await
}

/// The value this request is counted under for `limit` (borrowed from the request).
fn limit_key<'a>(
    session: &'a Session,
    ctx: &'a Ctx,
    limit: &crate::table::RateLimit,
) -> std::borrow::Cow<'a, [u8]> {
    ratelimit::key_bytes(
        &limit.key,
        &session.req_header().headers,
        &ctx.client_ip_str,
        ctx.claims.as_deref(),
    )
}

/// AWS's answer for a failed proxy attempt: the status, or 0 when the client is gone.
fn classify(e: &Error) -> u16 {
    use pingora_core::ErrorSource;
    match e.etype() {
        ErrorType::HTTPStatus(c) if (400..=599).contains(c) => *c,
        ErrorType::HTTPStatus(_) => 400,
        _ => match e.esource() {
            ErrorSource::Upstream => match e.etype() {
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                    503
                }
                _ => 502,
            },
            ErrorSource::Downstream => match e.etype() {
                ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => 0,
                ErrorType::ReadTimedout | ErrorType::WriteTimedout => 408,
                _ => 400,
            },
            _ => 500,
        },
    }
}

/// AWS's `{"message": ...}` for each status the gateway answers itself.
fn message(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        429 => "Too Many Requests",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// Why a request cannot be routed at all, if so: answered 400.
fn malformed(req: &RequestHeader) -> Option<&'static str> {
    let path = req.uri.path();
    // `OPTIONS *` and CONNECT's `host:port` name no resource a route could match (and
    // `http::Uri` reports `/` as the path of `host:port`).
    if req.method == http::Method::CONNECT || !path.starts_with('/') {
        return Some("the request target is not a path");
    }
    if req.version == http::Version::HTTP_11 && !req.headers.contains_key(header::HOST) {
        return Some("an HTTP/1.1 request without Host");
    }
    if !valid_percent_encoding(path) {
        return Some("a % not followed by two hex digits");
    }
    // A backend that normalises `/svc/{proxy}` with proxy = `../admin` would serve a path
    // outside the integration, chosen by a route that never matched it.
    if path.split('/').any(is_dot_segment) {
        return Some("a . or .. path segment");
    }
    None
}

/// `.` or `..`, also when written `%2e`.
fn is_dot_segment(segment: &str) -> bool {
    let mut dots = 0;
    let mut rest = segment.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'.' {
            rest = tail;
        } else if tail.len() >= 2 && b == b'%' && tail[0] == b'2' && tail[1] | 0x20 == b'e' {
            rest = &tail[2..];
        } else {
            return false;
        }
        dots += 1;
    }
    (1..=2).contains(&dots)
}

/// The preflight answer when `req` is one (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`).
fn preflight(
    cors: &crate::policy::cors::Cors,
    req: &RequestHeader,
) -> Option<crate::policy::cors::HeaderList> {
    if req.method != http::Method::OPTIONS {
        return None;
    }
    let get = |name| req.headers.get(name).and_then(|v| v.to_str().ok());
    let origin = get(header::ORIGIN)?;
    let method = get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
    Some(cors.preflight(origin, method, get(header::ACCESS_CONTROL_REQUEST_HEADERS)))
}

fn permits(filter: &Option<crate::policy::ipfilter::IpFilter>, ip: IpAddr) -> bool {
    filter.as_ref().is_none_or(|f| f.permits(ip))
}

/// The raw token from the authorizer's identity source. Two tokens are refused rather
/// than guessing which one the client meant.
fn identity<'r>(
    req: &'r RequestHeader,
    source: &IdentitySource,
) -> std::result::Result<Option<std::borrow::Cow<'r, str>>, AuthReject> {
    let reject = |why: &str| AuthReject::Unauthorized {
        www_authenticate: format!("Bearer error=\"invalid_request\", error_description=\"{why}\""),
    };
    match source {
        IdentitySource::Header(name) => {
            let mut values = req.headers.get_all(name).iter();
            let first = values.next();
            if values.next().is_some() {
                return Err(reject("more than one token was sent"));
            }
            // A token is visible ASCII; anything else cannot be one.
            first
                .map(|v| v.to_str().map(std::borrow::Cow::Borrowed))
                .transpose()
                .map_err(|_| reject("the token is not readable text"))
        }
        IdentitySource::QueryString(q) => {
            let mut values = crate::mapping::query_pairs(req.uri.query().unwrap_or(""))
                .filter(|(k, _)| k == q.as_str())
                .map(|(_, v)| v);
            let first = values.next();
            if values.next().is_some() {
                return Err(reject("more than one token was sent"));
            }
            Ok(first)
        }
    }
}

fn content_length(req: &RequestHeader) -> Option<u64> {
    req.headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Rebuilds the query string with the route's `querystring` mappings applied.
fn edit_query(query: &str, route: &Route, vars: &Vars<'_>) -> Option<String> {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let same = |raw: &str, name: &str| {
        percent_encoding::percent_decode_str(raw).decode_utf8_lossy() == name
    };
    for map in &route.request_maps {
        for op in &map.ops {
            if let RequestOp::Query(action, name, t) = op {
                use crate::mapping::Action;
                let encoded_name: String = utf8_percent_encode(name, QUERY_UNSAFE).collect();
                match action {
                    Action::Remove => pairs.retain(|(k, _)| !same(k, name)),
                    Action::Overwrite | Action::Append => {
                        let v = t.eval(vars, false);
                        if v.is_empty() {
                            continue;
                        }
                        if *action == Action::Overwrite {
                            pairs.retain(|(k, _)| !same(k, name));
                        }
                        pairs.push((
                            encoded_name,
                            utf8_percent_encode(&v, QUERY_UNSAFE).collect(),
                        ));
                    }
                }
            }
        }
    }
    if pairs.is_empty() {
        return None;
    }
    Some(
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

/// Answers the request from the gateway itself and ends it (`Ok(true)` for request_filter).
async fn respond(
    session: &mut Session,
    ctx: &mut Ctx,
    status: u16,
    extra: &[(&str, String)],
) -> Result<bool> {
    ctx.error_message = Some(message(status));
    ctx.rejection = Some(match status {
        404 => Rejection::NotFound,
        401 => Rejection::Unauthorized,
        403 => Rejection::Forbidden,
        413 => Rejection::TooLarge,
        429 if ctx.rate.is_some_and(|d| !d.allowed) => Rejection::RateLimited,
        429 => Rejection::Throttled,
        _ => Rejection::BadRequest,
    });
    // A body we will not read would desynchronise the connection: close it instead.
    let req = session.req_header();
    if content_length(req).is_some_and(|l| l > 0)
        || req.headers.contains_key(header::TRANSFER_ENCODING)
    {
        session.set_keepalive(None);
    }
    write_json(session, ctx, status, extra).await?;
    Ok(true)
}

async fn write_json(
    session: &mut Session,
    ctx: &Ctx,
    status: u16,
    extra: &[(&str, String)],
) -> Result<()> {
    let body = Bytes::from(format!("{{\"message\":\"{}\"}}", message(status)));
    let mut resp = ResponseHeader::build(status, Some(4 + extra.len()))?;
    resp.insert_header(header::CONTENT_TYPE, "application/json")?;
    resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    for (k, v) in extra {
        resp.insert_header(k.to_string(), v.as_str())?;
    }
    gateway_headers(&mut resp, session, ctx)?;
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// What every answer carries, the backend's and the gateway's own: the request id, the
/// rate-limit state, and CORS headers for an allowed origin (the gateway owns CORS, so the
/// backend's own `access-control-*` headers are dropped first).
fn gateway_headers(resp: &mut ResponseHeader, session: &Session, ctx: &Ctx) -> Result<()> {
    resp.insert_header("apigw-requestid", ctx.request_id.as_str())?;
    if let Some(d) = &ctx.rate {
        for (k, v) in d.headers() {
            resp.insert_header(k, v)?;
        }
    }
    if let Some(cors) = ctx.table.as_ref().and_then(|t| t.cors.as_ref()) {
        while let Some(k) = resp
            .headers
            .keys()
            .find(|k| k.as_str().starts_with("access-control-"))
            .cloned()
        {
            resp.remove_header(&k);
        }
        let origin = session
            .req_header()
            .headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        for (k, v) in cors.response_headers(origin) {
            resp.append_header(k, v)?;
        }
    }
    Ok(())
}

async fn write_preflight(
    session: &mut Session,
    ctx: &Ctx,
    headers: crate::policy::cors::HeaderList,
) -> Result<()> {
    let mut resp = ResponseHeader::build(204, Some(headers.len() + 2))?;
    resp.insert_header("apigw-requestid", ctx.request_id.as_str())?;
    for (k, v) in headers {
        resp.append_header(k, v)?;
    }
    session.write_response_header(Box::new(resp), true).await
}

/// AWS-looking request ids: 16 characters of base64 (11 bytes), unique per process run.
pub struct RequestIds {
    seed: u64,
    counter: AtomicU64,
}

impl RequestIds {
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        RequestIds {
            seed: splitmix(nanos ^ (u64::from(std::process::id()) << 32)),
            counter: AtomicU64::new(0),
        }
    }

    pub fn next(&self) -> String {
        use base64::Engine;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mixed = splitmix(self.seed ^ n);
        let mut bytes = [0u8; 11];
        bytes[..8].copy_from_slice(&mixed.to_be_bytes());
        bytes[8..].copy_from_slice(&(n as u32).to_be_bytes()[1..]);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_look_like_aws_and_do_not_repeat() {
        let ids = RequestIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_eq!(a.len(), 16);
        assert!(a.ends_with('='));
        assert_ne!(a, b);
    }

    #[test]
    fn ip_strings_match_the_standard_formatting() {
        for a in [0u8, 1, 9, 10, 99, 100, 199, 255] {
            for b in [0u8, 7, 42, 250] {
                let ip = IpAddr::from([a, b, a.wrapping_add(b), 255 - a]);
                assert_eq!(ip_string(ip), ip.to_string());
            }
        }
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(ip_string(v6), "2001:db8::1");
    }

    #[test]
    fn dot_segments() {
        for seg in [".", "..", "%2e", "%2E%2e", ".%2E"] {
            assert!(is_dot_segment(seg), "{seg}");
        }
        for seg in ["", "...", "..a", "a.", "%2f", "%2", "%2e%2e%2e"] {
            assert!(!is_dot_segment(seg), "{seg}");
        }
    }

    #[test]
    fn percent_encoding_validation() {
        assert!(valid_percent_encoding("/a%20b/%2F"));
        assert!(!valid_percent_encoding("/%zz"));
        assert!(!valid_percent_encoding("/a%2"));
        assert!(!valid_percent_encoding("/a%"));
    }
}
