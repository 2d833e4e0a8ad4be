//! Answers the gateway writes itself (rejections, preflights) and the headers every answer
//! carries, the backend's included.

use super::context::Ctx;
use crate::policy::cors::HeaderList;
use crate::rejection::Rejection;
use bytes::Bytes;
use http::header;
use pingora_core::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use std::future::Future;
use std::pin::Pin;

/// A future on the heap: see [`reject`].
pub(super) type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Answers the request with `rejection` and ends it (`Ok(true)` for `request_filter`).
///
/// Boxed, like every await `request_filter` makes off the proxied path (preflights,
/// Lambda and aggregate answers): an async hook's future is as large as the largest
/// future it awaits, and Pingora boxes each hook's future per request, so writing an
/// answer inline made every proxied request allocate and copy a future sized for the
/// rarest path (callgrind, `loadtest/instructions.py`: ~11k instructions per request of
/// `memcpy` under `process_request`, see the commit that added this).
pub(super) fn reject<'a>(
    session: &'a mut Session,
    ctx: &'a mut Ctx,
    rejection: Rejection,
) -> Boxed<'a, Result<bool>> {
    Box::pin(reject_now(session, ctx, rejection))
}

async fn reject_now(session: &mut Session, ctx: &mut Ctx, rejection: Rejection) -> Result<bool> {
    // A body we will not read would desynchronise the connection: close it instead.
    let req = session.req_header();
    if content_length(req).is_some_and(|l| l > 0)
        || req.headers.contains_key(header::TRANSFER_ENCODING)
    {
        session.set_keepalive(None);
    }
    ctx.rejection = Some(rejection);
    write_rejection(session, ctx).await?;
    Ok(true)
}

/// Writes `ctx.rejection` as AWS does (the status and `{"message": ...}`), or as APIM
/// does for a table loaded from APIM artifacts.
pub(super) async fn write_rejection(session: &mut Session, ctx: &Ctx) -> Result<()> {
    let Some(rejection) = &ctx.rejection else {
        return Ok(());
    };
    let retry_after = ctx.policy.rate.as_ref().and_then(|d| d.retry_after_secs());
    // The route's error handler (APIM's on-error) may add headers or answer in its place.
    let handler = match rejection {
        Rejection::Answer(_) => None,
        _ => ctx
            .routed
            .as_ref()
            .and_then(|r| r.route.policies.on_error.as_deref()),
    };
    let fixed = match rejection {
        Rejection::Answer(a) => Some(a),
        _ => handler.and_then(|h| h.answer.as_ref()),
    };
    let status = fixed.map_or(rejection.status(), |a| a.status);
    let mut resp = ResponseHeader::build(status, Some(5))?;
    let body = match fixed {
        Some(a) => {
            for (k, v) in &a.headers {
                resp.append_header(k.clone(), v.clone())?;
            }
            a.body.clone()
        }
        None => {
            resp.insert_header(header::CONTENT_TYPE, "application/json")?;
            Bytes::from(rejection.body_in(ctx.table.dialect, retry_after))
        }
    };
    resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    // A Lambda authorizer's 401 carries no challenge (AWS sends none).
    match rejection {
        Rejection::Unauthorized(challenge) if !challenge.is_empty() && fixed.is_none() => {
            resp.insert_header(header::WWW_AUTHENTICATE, &**challenge)?;
        }
        _ => {}
    }
    for (k, v) in handler.iter().flat_map(|h| &h.headers) {
        resp.insert_header(k.clone(), v.clone())?;
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
pub(super) fn gateway_headers(
    resp: &mut ResponseHeader,
    session: &Session,
    ctx: &Ctx,
) -> Result<()> {
    resp.insert_header("apigw-requestid", ctx.request_id.as_str())?;
    if let Some(d) = &ctx.policy.rate {
        for (k, v) in d.headers() {
            resp.insert_header(k, v)?;
        }
    }
    if let Some(cors) = &ctx.table.cors {
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

/// The answer to a CORS preflight.
pub(super) async fn preflight(session: &mut Session, ctx: &Ctx, headers: HeaderList) -> Result<()> {
    let mut resp = ResponseHeader::build(204, Some(headers.len() + 2))?;
    resp.insert_header("apigw-requestid", ctx.request_id.as_str())?;
    for (k, v) in headers {
        resp.append_header(k, v)?;
    }
    session.write_response_header(Box::new(resp), true).await
}

pub(super) fn content_length(req: &RequestHeader) -> Option<u64> {
    req.headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// AWS's answer for a failed proxy attempt: the status, or 0 when the client is gone.
pub(super) fn classify(e: &Error) -> u16 {
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
