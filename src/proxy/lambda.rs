//! AWS_PROXY routes, answered from `request_filter` once the policy chain admitted the
//! request: the body is read (bounded by Lambda's 6 MB payload limit), the event built,
//! the function invoked, and its answer written through the session.

use super::context::Ctx;
use super::respond::{content_length, gateway_headers, reject};
use crate::integration::aws_proxy::{request, Answer, AwsProxy, EventInput, MAX_REQUEST_BODY};
use crate::policy::lambda_authorizer::LambdaInput;
use crate::rejection::Rejection;
use crate::table::Route;
use bytes::{Bytes, BytesMut};
use http::header;
use pingora_core::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Headers a function may not set: the gateway frames the answer itself.
const FRAMING: [&str; 4] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

pub(super) async fn answer(
    session: &mut Session,
    ctx: &mut Ctx,
    route: Arc<Route>,
) -> Result<bool> {
    let crate::integration::Kind::AwsProxy(p) = &route.integration.kind else {
        return reject(session, ctx, Rejection::Other(500)).await;
    };
    // `MaxBodyBytes` was checked before routing; Lambda's own limit applies on top.
    let limit = MAX_REQUEST_BODY;
    if content_length(session.req_header()).is_some_and(|l| l > limit) {
        session.set_keepalive(None);
        return reject(session, ctx, Rejection::TooLarge).await;
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if (body.len() + chunk.len()) as u64 > limit {
            session.set_keepalive(None);
            return reject(session, ctx, Rejection::TooLarge).await;
        }
        body.extend_from_slice(&chunk);
    }
    ctx.body_bytes = body.len() as u64;
    let Some(event) = build_event(session, ctx, &route, p, &body) else {
        return reject(session, ctx, Rejection::BadRequest).await;
    };
    let start = Instant::now();
    ctx.upstream.start = Some(start);
    let called = p.call(event).await;
    if called.cold_start {
        log::debug!("function {}: cold start", p.function.name());
    }
    let status = match &called.result {
        Ok(a) => a.status,
        Err(r) => r.status(),
    };
    ctx.upstream.answered = Some((start.elapsed(), status));
    match called.result {
        Ok(a) => match write_answer(session, ctx, a).await {
            Ok(()) => Ok(true),
            Err(RejectOr::Reject(r)) => reject(session, ctx, r).await,
            Err(RejectOr::Io(e)) => Err(e),
        },
        Err(r) => reject(session, ctx, r).await,
    }
}

/// The event for the request as its `RequestParameters` map it; `None` (400) when a mapped
/// value cannot stand in a request. Aggregates build their Lambda backends' events here too.
pub(super) fn build_event(
    session: &Session,
    ctx: &Ctx,
    route: &Route,
    p: &AwsProxy,
    body: &[u8],
) -> Option<Bytes> {
    let params: &[(Box<str>, Box<str>)] = ctx.routed.as_ref().map_or(&[], |r| &r.params);
    let client = session.req_header();
    let req = match &ctx.routed {
        Some(routed) => {
            let vars = ctx.vars(routed, client, None);
            match request::mapped(client, &route.request_maps, &vars) {
                Ok(r) => r,
                Err(e) => {
                    log::info!("request mapping on a Lambda route: {e}");
                    return None;
                }
            }
        }
        None => std::borrow::Cow::Borrowed(client),
    };
    let input = EventInput {
        req: &req,
        body,
        route_key: &route.key,
        params,
        stage: ctx.stage.as_deref().unwrap_or("$default"),
        stage_vars: &p.stage_vars,
        request_id: &ctx.request_id,
        source_ip: &ctx.client.ip_str,
        claims: ctx.policy.claims.as_deref(),
        lambda_context: ctx.policy.lambda_context.as_deref(),
        time: SystemTime::now(),
    };
    Some(p.event(&input))
}

/// What a Lambda authorizer's event is built from: the request as the integration's event
/// would show it, without a body (authorizers run before it is read).
pub(super) struct AuthorizerArgs<'r> {
    pub req: &'r pingora_http::RequestHeader,
    pub route_key: &'r str,
    pub params: &'r [(Box<str>, Box<str>)],
    pub stage: &'r str,
    pub stage_path: &'r str,
    pub stage_vars: &'r std::collections::BTreeMap<String, String>,
    pub request_id: &'r str,
    pub source_ip: &'r str,
}

pub(super) fn authorizer_input(a: AuthorizerArgs<'_>) -> LambdaInput<'_> {
    LambdaInput {
        event: EventInput {
            req: a.req,
            body: &[],
            route_key: a.route_key,
            params: a.params,
            stage: a.stage,
            stage_vars: a.stage_vars,
            request_id: a.request_id,
            source_ip: a.source_ip,
            claims: None,
            lambda_context: None,
            time: SystemTime::now(),
        },
        stage_path: a.stage_path,
    }
}

enum RejectOr {
    Reject(Rejection),
    Io(Box<pingora_core::Error>),
}

impl From<Box<pingora_core::Error>> for RejectOr {
    fn from(e: Box<pingora_core::Error>) -> Self {
        RejectOr::Io(e)
    }
}

async fn write_answer(
    session: &mut Session,
    ctx: &Ctx,
    a: Answer,
) -> std::result::Result<(), RejectOr> {
    let mut resp = ResponseHeader::build(a.status, Some(a.headers.len() + 4))?;
    for (name, value) in &a.headers {
        let lower = name.to_ascii_lowercase();
        if FRAMING.contains(&lower.as_str()) {
            continue;
        }
        let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(lower.as_bytes()),
            http::HeaderValue::from_str(value),
        ) else {
            log::warn!("a function answered a header HTTP cannot carry: {name:?}");
            return Err(RejectOr::Reject(Rejection::Other(500)));
        };
        resp.append_header(n, v)?;
    }
    // 1xx, 204 and 304 carry no body (RFC 9110 6.4.1).
    let bodiless = a.status < 200 || a.status == 204 || a.status == 304;
    if !bodiless {
        resp.insert_header(header::CONTENT_LENGTH, a.body.len().to_string())?;
    }
    if let Some(routed) = &ctx.routed {
        super::map_response(session.req_header(), &mut resp, ctx, routed)?;
    }
    gateway_headers(&mut resp, session, ctx)?;
    let head_only = bodiless || session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(a.body), true).await?;
    }
    Ok(())
}
