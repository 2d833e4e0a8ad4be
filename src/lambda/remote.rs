//! Remote functions (GATEWAY.md 11): a function not defined locally is invoked through the
//! Lambda Invoke API at `gateway.json` `LambdaEndpoint` (what `sam local start-lambda`,
//! LocalStack and the Runtime Interface Emulator serve):
//! `POST /2015-03-31/functions/NAME/invocations`, the event as body.
//!
//! The client is Pingora's own HTTP/1.1 connector: its keep-alive pool is what already
//! carries HTTP_PROXY traffic, so no second HTTP stack is linked in (reqwest is kept for
//! control-plane fetches). One connector per endpoint, shared across reloads, so a reload
//! keeps the warm connections.

use super::Outcome;
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use pingora_core::connectors::http::v1::Connector;
use pingora_core::connectors::ConnectorOptions;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Lambda's synchronous response payload limit (6 MB): a larger answer is not read.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
/// Idle connections kept to one endpoint.
const POOL_SIZE: usize = 64;
/// How long an idle pooled connection is kept.
const IDLE: Duration = Duration::from_secs(60);

/// Why a remote invocation got no answer from the function.
#[derive(Debug)]
pub enum RemoteError {
    /// The endpoint could not be reached, or spoke something other than the Invoke API.
    Unreachable(String),
    /// The Invoke API refused the call (its status: 404 unknown function, 429, 5xx).
    Refused(u16),
}

/// An Invoke API endpoint: its address and pooled connections.
pub struct Endpoint {
    /// As written in gateway.json (for logs and reuse across reloads).
    pub url: String,
    addr: SocketAddr,
    host: String,
    connector: Connector,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("url", &self.url).finish()
    }
}

/// `http://HOST:PORT` (an optional trailing `/`), resolved once. `Err`: (problem, fix).
pub fn parse_endpoint(url: &str) -> Result<(SocketAddr, String), (String, String)> {
    let fix = || {
        "use the Invoke API's base URL, e.g. \"http://127.0.0.1:3001\" (sam local start-lambda's default)".to_string()
    };
    let Some(rest) = url.strip_prefix("http://") else {
        return Err((format!("{url:?} is not an http:// URL"), fix()));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err((format!("{url:?} is not http://HOST:PORT"), fix()));
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&with_port)
        .ok()
        .and_then(|mut a| a.next());
    match addr {
        Some(a) => Ok((a, authority.to_string())),
        None => Err((format!("{url:?}: {authority} does not resolve"), fix())),
    }
}

/// The endpoint for `url`: the running one (its pool kept) or a new one.
pub fn endpoint(url: &str) -> Result<Arc<Endpoint>, (String, String)> {
    static R: OnceLock<Mutex<HashMap<String, Arc<Endpoint>>>> = OnceLock::new();
    let mut r = R.get_or_init(Default::default).lock();
    if let Some(e) = r.get(url) {
        return Ok(e.clone());
    }
    let (addr, host) = parse_endpoint(url)?;
    let options = ConnectorOptions::new(POOL_SIZE);
    let e = Arc::new(Endpoint {
        url: url.to_string(),
        addr,
        host,
        connector: Connector::new(Some(options)),
    });
    r.insert(url.to_string(), e.clone());
    Ok(e)
}

/// A function invoked through an endpoint.
#[derive(Debug)]
pub struct RemoteFunction {
    pub name: Arc<str>,
    pub endpoint: Arc<Endpoint>,
    /// The invocation's request head without its `Content-Length`, made at load: per
    /// invocation it is cloned, not formatted and built header by header. `None` if it
    /// cannot be built (then each invocation builds it and reports why).
    head: Option<RequestHeader>,
}

impl RemoteFunction {
    /// `name` was checked to be Lambda's `[A-Za-z0-9_-]+`: it needs no escaping in the path.
    pub fn new(name: &str, endpoint: Arc<Endpoint>) -> RemoteFunction {
        RemoteFunction {
            head: request_head(name, &endpoint.host).ok(),
            name: Arc::from(name),
            endpoint,
        }
    }

    /// One synchronous invocation (`X-Amz-Invocation-Type: RequestResponse`). A payload with
    /// `X-Amz-Function-Error` is the function's error document. Dropping the future (the
    /// integration's timeout) drops its connection instead of pooling it.
    pub async fn invoke(&self, event: Bytes) -> Result<Outcome, RemoteError> {
        let e = &self.endpoint;
        let peer = HttpPeer::new(e.addr, false, String::new());
        let io = |what: &str, err: Box<pingora_core::Error>| {
            RemoteError::Unreachable(format!("{}: {what}: {err}", e.url))
        };
        // A pooled connection first; only a miss awaits the connect path, boxed: its future
        // (TCP and TLS connect) is several KiB, which inline every invocation copied.
        let mut session = match e.connector.reused_http_session(&peer).await {
            Some(s) => s,
            None => {
                Box::pin(e.connector.get_http_session(&peer))
                    .await
                    .map_err(|err| io("connect", err))?
                    .0
            }
        };
        let mut head = match &self.head {
            Some(h) => h.clone(),
            None => request_head(&self.name, &e.host).map_err(|err| io("request", err))?,
        };
        head.insert_header(http::header::CONTENT_LENGTH, event.len())
            .map_err(|err| io("request", err))?;
        session
            .write_request_header(Box::new(head))
            .await
            .map_err(|err| io("write", err))?;
        session
            .write_body(&event)
            .await
            .map_err(|err| io("write", err))?;
        session
            .finish_body()
            .await
            .map_err(|err| io("write", err))?;
        session
            .read_response()
            .await
            .map_err(|err| io("read", err))?;
        let (status, function_error) = match session.resp_header() {
            Some(h) => (
                h.status.as_u16(),
                h.headers.contains_key("x-amz-function-error"),
            ),
            None => return Err(RemoteError::Unreachable(format!("{}: no answer", e.url))),
        };
        let mut payload = BytesMut::new();
        while let Some(chunk) = session
            .read_body_bytes()
            .await
            .map_err(|err| io("read", err))?
        {
            if payload.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(RemoteError::Unreachable(format!(
                    "{}: an answer over Lambda's 6 MB payload limit",
                    e.url
                )));
            }
            payload.extend_from_slice(&chunk);
        }
        e.connector
            .release_http_session(session, &peer, Some(IDLE))
            .await;
        if !(200..300).contains(&status) {
            return Err(RemoteError::Refused(status));
        }
        let payload = payload.freeze();
        Ok(if function_error {
            Outcome::FunctionError(payload)
        } else {
            Outcome::Answered(payload)
        })
    }
}

/// The Invoke API request for function `name`, all but its `Content-Length` (added per
/// invocation).
fn request_head(name: &str, host: &str) -> pingora_core::Result<RequestHeader> {
    let path = format!("/2015-03-31/functions/{name}/invocations");
    let mut h = RequestHeader::build("POST", path.as_bytes(), Some(4))?;
    h.insert_header(http::header::HOST, host)?;
    h.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    h.insert_header("x-amz-invocation-type", "RequestResponse")?;
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::parse_endpoint;

    #[test]
    fn endpoints() {
        assert!(parse_endpoint("http://127.0.0.1:3001").is_ok());
        assert!(parse_endpoint("http://127.0.0.1:3001/").is_ok());
        assert!(parse_endpoint("http://localhost:9001").is_ok());
        for bad in [
            "https://127.0.0.1:3001",
            "127.0.0.1:3001",
            "http://",
            "http://127.0.0.1:3001/x",
            "http://u@127.0.0.1:1",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
    }
}
