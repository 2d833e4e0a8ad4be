//! Pingora's `ProxyHttp` hooks, each delegating: the route and its policies in
//! `request_filter`, the peer in `upstream_peer`, the integration's request in
//! `upstream_request_filter`, response mapping in `response_filter`, AWS's errors in
//! `fail_to_proxy`, metrics and access logs in `logging`.

mod aggregate;
mod context;
mod lambda;
mod record;
mod respond;

pub use crate::request_id::RequestIds;
pub use context::{ip_string, Ctx};

use crate::dispatch::Target;
use crate::integration::{http_proxy, Kind};
use crate::lifecycle::InFlight;
use crate::mapping::{apply_header_value, ResponseOp, VALID_STATUS};
use crate::metrics::metrics;
use crate::policy::chain::{permits, RequestView};
use crate::policy::ipfilter::{is_trusted, UNKNOWN_CLIENT};
use crate::rejection::Rejection;
use crate::reload::SharedTable;
use async_trait::async_trait;
use bytes::Bytes;
use context::Routed;
use http::header;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use respond::reject;
use std::sync::Arc;
use std::time::Instant;

/// Pre-parsed: a `&str` name is parsed (and lowercased) on every lookup.
static X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

pub struct Gateway {
    table: SharedTable,
    ids: Arc<RequestIds>,
}

impl Gateway {
    pub fn new(table: SharedTable) -> Self {
        Gateway {
            table,
            ids: Arc::new(RequestIds::new()),
        }
    }

    /// The ids this gateway hands out, shared with the answers `listener` writes itself.
    pub fn request_ids(&self) -> Arc<RequestIds> {
        self.ids.clone()
    }
}

/// The route a hook after `request_filter` works on; one was selected if the request got
/// this far.
fn routed(ctx: &Ctx) -> Result<&Routed> {
    match &ctx.routed {
        Some(r) => Ok(r),
        None => Error::e_explain(ErrorType::InternalError, "no route selected"),
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    /// Boxed: Pingora holds the context inline in each request's future, which it builds on
    /// the stack and copies into the heap (`loadtest/pingora-patches/p1`); inline, the
    /// context's 352 bytes were copied about three times over, ~1,100 bytes per request.
    type CTX = Box<Ctx>;

    /// Pingora's default adds a disabled response-compression module; its per-request
    /// context and filter calls cost ~1k instructions per request. apigate never compresses.
    fn init_downstream_modules(&self, _modules: &mut pingora_core::modules::http::HttpModules) {}

    fn new_ctx(&self) -> Box<Ctx> {
        Box::new(Ctx::new(self.table.load_full(), self.ids.next()))
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Box<Ctx>) -> Result<bool> {
        // RFC 9112 9.3.2: requests a client pipelines are answered in order (Pingora's
        // default drops every one after the first).
        session.as_downstream_mut().set_pipelining_enabled(true);
        ctx.in_flight = Some(InFlight::start());
        ctx.tls = crate::tls::client_cert::of_session(session);
        crate::tls::listener::authority_as_host(session.req_header_mut());
        let table = ctx.table.clone();
        // The head is in: the connection stops timing it, the body's deadline starts.
        ctx.body_deadline = Some(crate::listener::head_parsed(session, &table.settings.conn));
        // Screened before anything reads the head; a framing refusal is answered once the
        // stage (and its access log) is known.
        if !table.settings.allow_underscores_in_headers {
            crate::request_head::drop_underscored_headers(session.req_header_mut());
        }
        let framing = crate::request_head::check_framing(session.req_header_mut());

        // From here on the request's path is its canonical form: routing, policies,
        // mappings, logs and the backend all read the same one.
        let refused = crate::request_path::canonicalise(session.req_header_mut()).err();
        let req = session.req_header();
        // Several APIs: the Host (and a custom domain's mapping) picks the API first; with
        // one API this is a single `None` check.
        let front = table;
        let (table, stage) = match front.apis.as_deref() {
            None => (&front, front.stage_for(req.uri.path())),
            Some(apis) => {
                let host = req.headers.get(header::HOST).and_then(|h| h.to_str().ok());
                match apis.target(host.unwrap_or(""), req.uri.path()) {
                    Target::Api(i) => {
                        let t = apis.api(i).unwrap_or(&front);
                        (t, t.stage_for(req.uri.path()))
                    }
                    Target::Mapped { api, stage, path } => {
                        let t = apis.api(api).unwrap_or(&front);
                        (t, t.stage_named(stage).map(|s| (s, path)))
                    }
                    Target::Unmapped => {
                        return reject(session, ctx, Rejection::Forbidden).await;
                    }
                }
            }
        };
        if !Arc::ptr_eq(table, &front) {
            ctx.table = table.clone();
        }
        // The stage is known first so that every answer, rejections included, is logged
        // in its access log.
        if let Some((stage, _)) = stage {
            ctx.stage = Some(stage.name.clone());
            ctx.access_log = stage.access_log.clone();
        }
        if let Some(problem) = refused {
            log::debug!("400 for {:?}: {problem}", req.uri);
            return reject(session, ctx, Rejection::BadRequest).await;
        }
        if let Some(too_large) = crate::listener::head_too_large(req, &table.settings.conn) {
            return reject(session, ctx, too_large).await;
        }
        if let Err(rejection) = framing {
            return reject(session, ctx, rejection).await;
        }
        if let Some(headers) = table.cors.as_ref().and_then(|c| c.preflight_for(req)) {
            Box::pin(respond::preflight(session, ctx, headers)).await?;
            return Ok(true);
        }

        let peer_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map_or(UNKNOWN_CLIENT, |a| a.ip());
        let trusted = &table.settings.trusted_proxies;
        // `X-Forwarded-For` is looked up only when the peer is a trusted proxy (the
        // lookup alone was ~330 instructions per request).
        ctx.client.ip = if is_trusted(peer_ip, trusted) {
            crate::policy::ipfilter::client_ip(
                peer_ip,
                trusted,
                req.headers
                    .get_all(&X_FORWARDED_FOR)
                    .iter()
                    .map(|v| v.as_bytes()),
            )
        } else {
            crate::policy::ipfilter::client_ip(peer_ip, trusted, std::iter::empty())
        };
        ctx.client.ip_str = ip_string(ctx.client.ip);
        if !permits(table.api_ip_filter.as_ref(), ctx.client.ip) {
            return reject(session, ctx, Rejection::Forbidden).await;
        }
        // Bodies over the limit are refused before any backend is involved.
        if respond::content_length(req).is_some_and(|len| len > table.settings.max_body_bytes) {
            session.set_keepalive(None);
            return reject(session, ctx, Rejection::TooLarge).await;
        }

        let Some((stage, stage_path)) = stage else {
            return reject(session, ctx, Rejection::NotFound).await;
        };
        if !permits(stage.ip_filter.as_ref(), ctx.client.ip) {
            return reject(session, ctx, Rejection::Forbidden).await;
        }
        let Some(selected) = stage.router.select(&req.method, stage_path) else {
            return reject(session, ctx, Rejection::NotFound).await;
        };
        let route = selected.route.clone();
        ctx.routed = Some(Routed {
            params: selected
                .params
                .iter()
                .map(|(k, v)| (Box::from(*k), Box::from(*v)))
                .collect(),
            stage_path: stage_path.to_string(),
            route: route.clone(),
        });

        let lambda = route.policies.lambda_authorizer.as_ref().map(|_| {
            static NO_VARS: std::collections::BTreeMap<String, String> =
                std::collections::BTreeMap::new();
            let stage_vars = match &route.integration.kind {
                Kind::AwsProxy(p) => &p.stage_vars,
                _ => &NO_VARS,
            };
            lambda::authorizer_input(lambda::AuthorizerArgs {
                req,
                route_key: &route.key,
                params: ctx.routed.as_ref().map_or(&[], |r| &r.params),
                stage: ctx.stage.as_deref().unwrap_or("$default"),
                stage_path,
                stage_vars,
                request_id: &ctx.request_id,
                source_ip: &ctx.client.ip_str,
            })
        });
        let view = RequestView {
            headers: &req.headers,
            query: req.uri.query(),
            client_ip: ctx.client.ip,
            client_ip_str: &ctx.client.ip_str,
            method: &req.method,
            lambda,
        };
        let verdict = route
            .policies
            .admit(&view, &table.store, &mut ctx.policy)
            .await;
        match verdict {
            Ok(()) if matches!(route.integration.kind, Kind::AwsProxy(_)) => {
                Box::pin(lambda::answer(session, ctx, route)).await
            }
            Ok(()) if matches!(route.integration.kind, Kind::Aggregate(_)) => {
                Box::pin(aggregate::answer(session, ctx, route)).await
            }
            Ok(()) => Ok(false),
            Err(rejection) => reject(session, ctx, rejection).await,
        }
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        if let Some(deadline) = ctx.body_deadline.filter(|_| !end_of_stream) {
            crate::listener::body_read(session, deadline);
        }
        // Chunked uploads have no Content-Length to check up front.
        if let Some(b) = body {
            ctx.body_bytes += b.len() as u64;
            if ctx.body_bytes > ctx.table.settings.max_body_bytes {
                return Error::e_explain(
                    ErrorType::HTTPStatus(413),
                    "request body over MaxBodyBytes",
                );
            }
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Box<Ctx>,
    ) -> Result<Box<HttpPeer>> {
        ctx.upstream.start = Some(Instant::now());
        match &routed(ctx)?.route.integration.kind {
            Kind::HttpProxy(p) => match &p.target.unresolved {
                None => Ok(Box::new(p.target.peer.clone())),
                // Warned about at load; a reload resolves it again.
                Some(why) => Error::e_explain(ErrorType::HTTPStatus(502), why.to_string()),
            },
            Kind::AwsProxy(_) | Kind::Aggregate(_) => {
                Error::e_explain(ErrorType::InternalError, "not proxied")
            }
        }
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut Box<Ctx>,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // A refused or timed-out connect is answered at once, not retried 16 times.
        metrics().upstream_connect_failures.inc();
        if peer.is_tls() {
            let id = routed(ctx).map_or("-", |r| &r.route.integration.id);
            crate::tls::upstream::log_connect_failure(id, peer, &e);
        }
        e.set_retry(false);
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        up: &mut RequestHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        let routed = routed(ctx)?;
        let route = &routed.route;
        let req = session.req_header();
        let forwarding = ctx.forwarding(session);
        let vars = ctx.vars(routed, req, None);
        match &route.integration.kind {
            Kind::HttpProxy(p) => p.write_request(
                req,
                up,
                &route.request_maps,
                &vars,
                route.is_default.then_some(routed.stage_path.as_str()),
                &forwarding,
            ),
            Kind::AwsProxy(_) | Kind::Aggregate(_) => Ok(()),
        }
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora_core::protocols::Digest>,
        _ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        metrics().upstream_connection(reused);
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        let status = resp.status.as_u16();
        if let Some(start) = ctx.upstream.start {
            let took = start.elapsed();
            ctx.upstream.answered = Some((took, status));
            // Each read is bounded by TimeoutInMillis, which catches a silent backend at the
            // timeout; a backend trickling its head byte by byte is caught here, once the head
            // is complete: TimeoutInMillis bounds the whole wait for the answer (AWS).
            let budget = ctx
                .routed
                .as_ref()
                .and_then(|r| match &r.route.integration.kind {
                    Kind::HttpProxy(p) => p.target.peer.options.read_timeout,
                    Kind::AwsProxy(_) | Kind::Aggregate(_) => None,
                });
            if budget.is_some_and(|b| took > b) {
                let mut e = Error::explain(
                    ErrorType::ReadTimedout,
                    format!("the backend's answer took {took:?}"),
                );
                e.as_up();
                return Err(e);
            }
        }
        // `999` parses as HTTP but is no status a client can act on: a malformed answer. A
        // 101 answers only a request with `Upgrade` (RFC 9110 15.2.2), which apigate never
        // forwards: relaying it would hand the client raw backend bytes.
        if status > 599 || status == 101 {
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
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        http_proxy::strip_hop_by_hop(resp);
        if let Some(routed) = &ctx.routed {
            map_response(session.req_header(), resp, ctx, routed)?;
        }
        respond::gateway_headers(resp, session, ctx)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Box<Ctx>,
    ) -> FailToProxy {
        let code = respond::classify(e);
        if code > 0 || ctx.rejection.is_none() {
            ctx.rejection = Some(Rejection::from_status(code));
        }
        session.set_keepalive(None);
        // Once the backend's headers are out, an error can only cut the body short: closing
        // the connection tells the client, a JSON message would corrupt the body.
        let answered = session.response_written().is_some();
        if code > 0 && !answered {
            if let Err(err) = Box::pin(respond::write_rejection(session, ctx)).await {
                log::debug!("could not send the error response: {err}");
            }
        }
        FailToProxy {
            error_code: if answered { 0 } else { code },
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Box<Ctx>, error: &Error) -> bool {
        // Upstream failures are answered (502/503) and counted in metrics; logging each one
        // at error level would flood the log during a load test against a dead backend.
        log::debug!("proxy error: {error}");
        true
    }

    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        _ctx: &Box<Ctx>,
        error: &Error,
        _context: pingora_proxy::ProxyWarnLogContext,
    ) -> bool {
        // A retry on a stale pooled connection is routine; connect failures are counted.
        log::debug!("proxy retry: {error}");
        true
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Box<Ctx>) {
        // Only requests that reached `request_filter` are counted.
        if let Some(in_flight) = ctx.in_flight.take() {
            record::request(session, ctx);
            drop(in_flight);
        }
    }
}

/// Applies the route's response mappings for the backend's status.
fn map_response(
    req: &RequestHeader,
    resp: &mut ResponseHeader,
    ctx: &Ctx,
    routed: &Routed,
) -> Result<()> {
    let status = resp.status.as_u16();
    let maps = &routed.route.response_maps;
    if maps.iter().all(|m| m.for_status(status).is_empty()) {
        return Ok(());
    }
    // `$response.header.X` reads the backend's headers as they arrived.
    let backend = resp.clone();
    let vars = ctx.vars(routed, req, Some(&backend));
    let mut new_status = None;
    for map in maps {
        for op in map.for_status(status) {
            match op {
                ResponseOp::Status(t) => {
                    new_status = t.eval(&vars, false).trim().parse::<u16>().ok()
                }
                ResponseOp::Header(action, h, t) => {
                    apply_header_value(resp, *action, h, t.header_value(&vars))?
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
    Ok(())
}
