//! The end of a request: its metrics and its access-log line.

use super::context::Ctx;
use crate::accesslog::LogVars;
use crate::metrics::metrics;
use http::header;
use pingora_proxy::Session;

/// Status recorded for a request whose client left before any answer (nginx's convention).
const CLIENT_CLOSED: u16 = 499;

pub(super) fn request(session: &Session, ctx: &Ctx) {
    if let Some(reason) = ctx.rejection.as_ref().and_then(|r| r.reason()) {
        metrics().rejection(reason);
    }
    // No response written: the client went away first (nginx's 499), still counted and
    // logged so that abandoned requests show in the dashboards.
    let status = session
        .response_written()
        .map_or(CLIENT_CLOSED, |r| r.status.as_u16());
    let routed = ctx.routed.as_ref();
    let route_metrics = match routed {
        Some(r) => &r.route.metrics,
        None => crate::metrics::unmatched(
            ctx.table.api_name().unwrap_or("-"),
            ctx.stage.as_deref().unwrap_or("-"),
        ),
    };
    let took = ctx.start.elapsed();
    let sent = session.body_bytes_sent() as u64;
    let integration = ctx.upstream.answered;
    route_metrics.observe(
        &session.req_header().method,
        status,
        took,
        integration.map(|(d, _)| d),
        ctx.body_bytes,
        sent,
    );
    let Some(log) = &ctx.access_log else {
        return;
    };
    let req = session.req_header();
    let user_agent = req
        .headers
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()));
    let host = req.headers.get(header::HOST).and_then(|v| v.to_str().ok());
    // A route's fixed answer (APIM's return-response) is not an error.
    let error_message = ctx
        .rejection
        .as_ref()
        .filter(|r| !matches!(r, crate::rejection::Rejection::Answer(_)))
        .map(|r| r.message());
    let vars = LogVars {
        request_id: &ctx.request_id,
        route_key: routed.map_or("-", |r| &r.route.key),
        status,
        method: req.method.as_str(),
        path: req.uri.path(),
        protocol: match req.version {
            http::Version::HTTP_10 => "HTTP/1.0",
            http::Version::HTTP_2 => "HTTP/2.0",
            _ => "HTTP/1.1",
        },
        source_ip: &ctx.client.ip_str,
        user_agent: user_agent.as_deref(),
        response_length: sent,
        response_latency_ms: took.as_millis() as u64,
        integration_latency_ms: integration.map(|(d, _)| d.as_millis() as u64),
        integration_status: integration.map(|(_, s)| s),
        error_message,
        integration_error: error_message.filter(|_| {
            ctx.rejection
                .as_ref()
                .is_some_and(|r| r.is_integration_error())
        }),
        integration_backends: ctx.backends.as_deref(),
        request_time: std::time::SystemTime::now() - took,
        stage: ctx.stage.as_deref().unwrap_or("-"),
        domain_name: host.map_or("-", host_without_port),
        api_id: ctx.table.api_name().unwrap_or("-"),
        claims: ctx.policy.claims.as_deref(),
        client_cert: ctx.client_cert(),
    };
    let mut line = String::with_capacity(256);
    log.format.render(&vars, &mut line);
    log.writer.write_line(line);
}

/// `example.com:8080` -> `example.com`, `[::1]:8080` -> `[::1]`.
fn host_without_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    }
}
