//! AGGREGATE routes, answered from `request_filter` once the policy chain admitted the
//! request: each backend is called through Pingora's pooled HTTP/1.1 connector (the https
//! ones with their integration's TLS settings) or invoked as a Lambda function, all at
//! once or in order, within the aggregate's `TimeoutInMillis`; the JSON answers are
//! shaped and merged (`integration::aggregate`) and written as one answer.

use super::context::{Ctx, Routed};
use super::respond::{gateway_headers, reject};
use crate::integration::aggregate::{
    self, metrics, refs, Aggregate, Backend, OnError, Outcome, COMPLETED_HEADER,
};
use crate::integration::{AwsProxy, HttpProxy, Kind};
use crate::mapping::RequestMapping;
use crate::rejection::Rejection;
use crate::table::Route;
use bytes::{Bytes, BytesMut};
use http::header;
use pingora_core::connectors::http::v1::Connector;
use pingora_core::connectors::ConnectorOptions;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::time::timeout_at;

/// Idle connections kept per backend address, and for how long.
const POOL_SIZE: usize = 128;
const IDLE: Duration = Duration::from_secs(60);

/// Request headers that belong to the client's connection, not to a backend call (which
/// has no body of its own).
static NOT_FORWARDED: [header::HeaderName; 8] = [
    header::CONNECTION,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::EXPECT,
    header::HeaderName::from_static("keep-alive"),
];

/// One connector for every aggregate backend: its pool outlives reloads.
fn connector() -> &'static Connector {
    static C: OnceLock<Connector> = OnceLock::new();
    C.get_or_init(|| Connector::new(Some(ConnectorOptions::new(POOL_SIZE))))
}

/// What one backend call left for the access log.
struct Call {
    outcome: Outcome,
    status: Option<u16>,
    took: Duration,
}

/// A backend call ready to go: it borrows the backend, nothing from the session.
enum Prepared<'a> {
    Http(&'a HttpPeer, Box<RequestHeader>),
    Lambda(&'a AwsProxy, Bytes),
}

pub(super) async fn answer(
    session: &mut Session,
    ctx: &mut Ctx,
    route: Arc<Route>,
) -> Result<bool> {
    let Kind::Aggregate(a) = &route.integration.kind else {
        return reject(session, ctx, Rejection::Other(500)).await;
    };
    // Backends are not sent the client's body: read it (bounded) so the connection stays
    // usable, and drop it.
    let limit = ctx.table.settings.max_body_bytes;
    let mut seen = 0u64;
    while let Some(chunk) = session.read_request_body().await? {
        seen += chunk.len() as u64;
        if seen > limit {
            session.set_keepalive(None);
            return reject(session, ctx, Rejection::TooLarge).await;
        }
    }
    ctx.body_bytes = seen;
    let start = Instant::now();
    ctx.upstream.start = Some(start);
    let deadline = tokio::time::Instant::from_std(start + a.timeout);
    let (answers, calls) = if a.sequential {
        sequential(session, ctx, &route, a, deadline).await
    } else {
        concurrent(session, ctx, &route, a, deadline).await
    };
    ctx.upstream.answered = Some((start.elapsed(), 200));
    for (b, c) in a.backends.iter().zip(&calls) {
        metrics::record(&route.key, &b.integration.id, c.outcome, c.took);
    }
    ctx.backends = Some(summary(a, &calls));
    let (body, complete) = aggregate::assemble(&a.backends, answers);
    if !complete && a.on_error == OnError::Fail {
        return reject(session, ctx, Rejection::BadGateway).await;
    }
    let body = Bytes::from(serde_json::to_vec(&Value::Object(body)).unwrap_or_default());
    write(session, ctx, body, complete).await?;
    Ok(true)
}

/// Every backend at once; each call ends at the deadline at the latest.
async fn concurrent(
    session: &Session,
    ctx: &Ctx,
    route: &Route,
    a: &Aggregate,
    deadline: tokio::time::Instant,
) -> (Vec<Option<Value>>, Vec<Call>) {
    let prepared: Vec<_> = (a.backends.iter())
        .map(|b| prepare(session, ctx, route, b, &[]))
        .collect();
    let calls = prepared
        .into_iter()
        .map(|p| call(p, a.max_backend_bytes, deadline));
    join_all(calls.collect()).await.into_iter().unzip()
}

/// One backend after the other, each URI filled in from the answers before it.
async fn sequential(
    session: &Session,
    ctx: &Ctx,
    route: &Route,
    a: &Aggregate,
    deadline: tokio::time::Instant,
) -> (Vec<Option<Value>>, Vec<Call>) {
    let mut answers: Vec<Option<Value>> = Vec::with_capacity(a.backends.len());
    let mut calls = Vec::with_capacity(a.backends.len());
    for b in &a.backends {
        let mut extra = Vec::with_capacity(b.refs.len());
        for r in &b.refs {
            let value = answers.get(r.backend).and_then(Option::as_ref);
            match refs::segment(value.and_then(|v| r.path.get(v))) {
                Some(text) => extra.push((Box::from(r.var.as_str()), Box::from(text))),
                None => break,
            }
        }
        let (answer, c) = if extra.len() < b.refs.len() {
            let skipped = Call {
                outcome: Outcome::Skipped,
                status: None,
                took: Duration::ZERO,
            };
            (None, skipped)
        } else {
            let p = prepare(session, ctx, route, b, &extra);
            call(p, a.max_backend_bytes, deadline).await
        };
        answers.push(answer);
        calls.push(c);
    }
    (answers, calls)
}

/// Builds the backend's request as an HTTP_PROXY route would send it (forwarding headers,
/// the route's and the backend's parameter mappings), or a Lambda backend's event. `extra`:
/// path variables read from earlier answers. `Err`: it cannot be sent (a mapping gave a
/// value no request can hold).
fn prepare<'a>(
    session: &Session,
    ctx: &Ctx,
    route: &Route,
    b: &'a Backend,
    extra: &[(Box<str>, Box<str>)],
) -> std::result::Result<Prepared<'a>, Outcome> {
    let routed = ctx.routed.as_ref().ok_or(Outcome::Skipped)?;
    match &b.integration.kind {
        // Its host did not resolve at load (warned about then): nothing to connect to.
        Kind::HttpProxy(p) if p.target.unresolved.is_some() => Err(Outcome::Unreachable),
        Kind::HttpProxy(p) => http_request(session, ctx, routed, route, b, p, extra)
            .map(|head| Prepared::Http(&p.target.peer, Box::new(head)))
            .map_err(|e| {
                log::debug!("aggregate backend {}: {e}", b.integration.id);
                Outcome::Skipped
            }),
        Kind::AwsProxy(p) => super::lambda::build_event(session, ctx, route, p, &[])
            .map(|event| Prepared::Lambda(p, event))
            .ok_or(Outcome::Skipped),
        Kind::Aggregate(_) => Err(Outcome::Skipped),
    }
}

fn http_request(
    session: &Session,
    ctx: &Ctx,
    routed: &Routed,
    route: &Route,
    b: &Backend,
    p: &HttpProxy,
    extra: &[(Box<str>, Box<str>)],
) -> Result<RequestHeader> {
    let client = session.req_header();
    let mut up = client.clone();
    // Only the names the client sent: a removal is a lookup in two maps, and most requests
    // carry none of these.
    for name in client.headers.keys() {
        if NOT_FORWARDED.contains(name) {
            up.remove_header(name);
        }
    }
    // An answer to HEAD has no body to merge.
    if up.method == http::Method::HEAD {
        up.set_method(http::Method::GET);
    }
    let forwarding = ctx.forwarding(session);
    let params: Vec<(Box<str>, Box<str>)>;
    let mut vars = ctx.vars(routed, client, None);
    if !extra.is_empty() {
        params = routed.params.iter().chain(extra).cloned().collect();
        vars.params = &params;
    }
    // The route's mappings (api, stage, route, the aggregate's own), then the backend's.
    let maps: Vec<RequestMapping> = (route.request_maps.iter())
        .chain([&b.integration.request])
        .filter(|m| !m.ops.is_empty())
        .cloned()
        .collect();
    p.write_request(client, &mut up, &maps, &vars, None, &forwarding)?;
    Ok(up)
}

/// One call, bounded by `deadline` and the body cap: the parsed answer, or why there is none.
async fn call(
    p: std::result::Result<Prepared<'_>, Outcome>,
    max: usize,
    deadline: tokio::time::Instant,
) -> (Option<Value>, Call) {
    let start = Instant::now();
    let got = match p {
        Err(o) => Err((o, None)),
        Ok(p) => match timeout_at(deadline, send(p, max)).await {
            Ok(r) => r,
            Err(_) => Err((Outcome::Timeout, None)),
        },
    };
    let took = start.elapsed();
    let parsed = got.and_then(|(status, body)| {
        if !(200..300).contains(&status) {
            return Err((Outcome::Status, Some(status)));
        }
        aggregate::parse_body(&body)
            .map(|v| (status, v))
            .map_err(|o| (o, Some(status)))
    });
    match parsed {
        Ok((status, v)) => (
            Some(v),
            Call {
                outcome: Outcome::Ok,
                status: Some(status),
                took,
            },
        ),
        Err((outcome, status)) => (
            None,
            Call {
                outcome,
                status,
                took,
            },
        ),
    }
}

type Sent = std::result::Result<(u16, Bytes), (Outcome, Option<u16>)>;

/// The call's future, boxed where it is made: Pingora's connector futures make it several
/// KiB, and held inline it was copied by every move on the way into `join_all` (about
/// 35 KB of `memcpy` per backend per request).
fn send(p: Prepared<'_>, max: usize) -> Pin<Box<dyn Future<Output = Sent> + Send + '_>> {
    match p {
        Prepared::Http(peer, head) => Box::pin(send_http(peer, head, max)),
        Prepared::Lambda(p, event) => Box::pin(invoke(p, event, max)),
    }
}

async fn invoke(p: &AwsProxy, event: Bytes, max: usize) -> Sent {
    match p.call(event).await.result {
        Ok(a) if a.body.len() > max => Err((Outcome::TooLarge, Some(a.status))),
        Ok(a) => Ok((a.status, a.body)),
        Err(Rejection::Timeout) => Err((Outcome::Timeout, None)),
        Err(r) => Err((Outcome::Status, Some(r.status()))),
    }
}

async fn send_http(peer: &HttpPeer, head: Box<RequestHeader>, max: usize) -> Sent {
    let failed = |e: Box<pingora_core::Error>| {
        let outcome = match e.etype() {
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                Outcome::Timeout
            }
            _ => Outcome::Unreachable,
        };
        log::debug!("aggregate backend {peer}: {e}");
        (outcome, None)
    };
    let c = connector();
    // A pooled connection first; only a miss awaits the connect path, boxed (as in
    // `send`: its future is several KiB).
    let (mut s, reused) = match c.reused_http_session(peer).await {
        Some(s) => (s, true),
        None => Box::pin(c.get_http_session(peer)).await.map_err(|e| {
            crate::metrics::metrics().upstream_connect_failures.inc();
            failed(e)
        })?,
    };
    crate::metrics::metrics().upstream_connection(reused);
    s.write_request_header(head).await.map_err(failed)?;
    s.finish_body().await.map_err(failed)?;
    s.read_response().await.map_err(failed)?;
    let (status, declared) = match s.resp_header() {
        Some(h) => (h.status.as_u16(), content_length_of(h)),
        None => return Err((Outcome::Unreachable, None)),
    };
    if declared.is_some_and(|l| l > max as u64) {
        return Err((Outcome::TooLarge, Some(status)));
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = s.read_body_bytes().await.map_err(failed)? {
        if body.len() + chunk.len() > max {
            return Err((Outcome::TooLarge, Some(status)));
        }
        body.extend_from_slice(&chunk);
    }
    c.release_http_session(s, peer, Some(IDLE)).await;
    Ok((status, body.freeze()))
}

fn content_length_of(h: &ResponseHeader) -> Option<u64> {
    h.headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Polls every call in this task until all are done: the calls run at the same time
/// without being spawned, and end with the request if the client leaves.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(done.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

/// `$context.integration.backends`: `id:status:latency_ms:outcome` per backend, in order,
/// comma-separated (`-` for a status there was none of). Written by hand: `write!` cost
/// more than the rest of the summary.
fn summary(a: &Aggregate, calls: &[Call]) -> String {
    let mut s = String::with_capacity(32 * calls.len());
    for (i, (b, c)) in a.backends.iter().zip(calls).enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&b.integration.id);
        s.push(':');
        match c.status {
            Some(st) => push_decimal(&mut s, u64::from(st)),
            None => s.push('-'),
        }
        s.push(':');
        push_decimal(
            &mut s,
            u64::try_from(c.took.as_millis()).unwrap_or(u64::MAX),
        );
        s.push(':');
        s.push_str(c.outcome.as_str());
    }
    s
}

fn push_decimal(s: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    s.extend(digits[i..].iter().map(|&d| char::from(d)));
}

/// The aggregated answer: 200, JSON, `X-Apigate-Completed`, then the route's response
/// mappings (keyed by 200) and the headers every answer carries.
async fn write(session: &mut Session, ctx: &Ctx, body: Bytes, complete: bool) -> Result<()> {
    let mut resp = ResponseHeader::build(200, Some(6))?;
    resp.insert_header(header::CONTENT_TYPE, "application/json")?;
    resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    resp.insert_header(COMPLETED_HEADER, if complete { "true" } else { "false" })?;
    if let Some(routed) = &ctx.routed {
        super::map_response(session.req_header(), &mut resp, ctx, routed)?;
    }
    gateway_headers(&mut resp, session, ctx)?;
    let status = resp.status.as_u16();
    // A response mapping may have made it a 204 or 304, which carry no body.
    let head_only =
        session.req_header().method == http::Method::HEAD || status == 204 || status == 304;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}
