//! What a proxy adds to the request it forwards (`X-Forwarded-*`, `Forwarded`, `Via`) and
//! what stays between hops (hop-by-hop headers, RFC 9110 7.6.1).

use http::{header, HeaderValue};
use pingora_core::{ErrorType::InvalidHTTPHeader, OrErr, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use std::net::IpAddr;

/// Pre-parsed: a `&str` name is parsed (and lowercased) on every lookup.
static X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// Headers other proxies write about the original request that apigate does not write
/// itself: believed only from a trusted proxy. From anyone else they would let a client
/// choose the host or path prefix a backend puts in redirects and absolute links (Envoy
/// and nginx leave them to the edge proxy the same way).
static CLIENT_FORWARDING: [http::HeaderName; 3] = [
    http::HeaderName::from_static("x-forwarded-host"),
    http::HeaderName::from_static("x-forwarded-prefix"),
    http::HeaderName::from_static("x-forwarded-server"),
];

/// Who sent the request, for the forwarding headers.
pub struct Forwarding<'a> {
    /// The client (the peer, or read through trusted proxies).
    pub client_ip: IpAddr,
    pub client_ip_str: &'a str,
    /// The TCP peer, appended to `X-Forwarded-For` (the client unless it is a trusted proxy).
    pub peer: Option<IpAddr>,
    /// Whether the peer is in `TrustedProxies` (its `X-Forwarded-Host` etc. are kept).
    pub peer_trusted: bool,
    /// The gateway's own port the request came in on.
    pub listen_port: u16,
    /// Whether the client spoke TLS to the gateway.
    pub https: bool,
}

impl Forwarding<'_> {
    /// AWS sends `Forwarded`; `X-Forwarded-*` as most proxies do; `Via` per RFC 9110 7.6.3.
    pub fn write(&self, client: &RequestHeader, up: &mut RequestHeader) -> Result<()> {
        let original_host = client
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        // Repeated X-Forwarded-For fields are one list (RFC 9110 5.3): keep every hop.
        let mut xff = String::with_capacity(self.client_ip_str.len() + 32);
        for prev in client.headers.get_all(&X_FORWARDED_FOR) {
            let prev = prev.to_str().unwrap_or("").trim();
            if !prev.is_empty() {
                xff.push_str(prev);
                xff.push_str(", ");
            }
        }
        match self.peer {
            Some(ip) if ip == self.client_ip => xff.push_str(self.client_ip_str),
            Some(ip) => xff.push_str(&ip.to_string()),
            None => {}
        }
        let mut forwarded = String::with_capacity(64);
        forwarded.push_str("for=");
        if self.client_ip.is_ipv6() {
            forwarded.push_str("\"[");
            forwarded.push_str(self.client_ip_str);
            forwarded.push_str("]\"");
        } else {
            forwarded.push_str(self.client_ip_str);
        }
        push_forwarded_host(&mut forwarded, original_host);
        forwarded.push_str(if self.https {
            ";proto=https"
        } else {
            ";proto=http"
        });
        // Each proxy adds itself to Via (AWS adds "HTTP/1.1 AmazonAPIGateway").
        let via = match client
            .headers
            .get(header::VIA)
            .and_then(|v| v.to_str().ok())
        {
            Some(prev) if !prev.trim().is_empty() => {
                HeaderValue::try_from(format!("{prev}, 1.1 apigate"))
                    .or_err(InvalidHTTPHeader, "invalid Via")?
            }
            _ => HeaderValue::from_static("1.1 apigate"),
        };
        // Names as `&'static str`: Pingora keeps a name's case from these bytes without
        // copying them (a `HeaderName` outside its short list of titled names is copied per
        // insert). Static values skip the validation and copy a `&str` value costs.
        up.insert_header("X-Forwarded-For", xff)?;
        up.insert_header(
            "X-Forwarded-Proto",
            HeaderValue::from_static(if self.https { "https" } else { "http" }),
        )?;
        up.insert_header("X-Forwarded-Port", HeaderValue::from(self.listen_port))?;
        up.insert_header("Forwarded", forwarded)?;
        up.insert_header("via", via)?;
        // AWS HTTP APIs do not tunnel: a backend's 101 would turn the exchange into a raw
        // stream outside the body limit and timeouts. Removed only when the client sent
        // one of these (`up` is a copy of its head): nearly no request does, and each
        // removal is a hash lookup in both of Pingora's maps.
        let strip_forwarding = !self.peer_trusted;
        let doomed = |k: &http::HeaderName| {
            *k == header::UPGRADE || (strip_forwarding && CLIENT_FORWARDING.contains(k))
        };
        if client.headers.keys().any(doomed) {
            up.remove_header(&header::UPGRADE);
            if strip_forwarding {
                for name in &CLIENT_FORWARDING {
                    up.remove_header(name);
                }
            }
        }
        Ok(())
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

/// Hop-by-hop headers of the backend's answer stay between it and the gateway; Pingora
/// writes the client connection's own framing headers, `Connection` included (it sets
/// `Connection` on every answer it writes). Most answers carry only the backend's
/// `Connection: keep-alive`: it is removed, and nothing is allocated.
///
/// Removing it is also what keeps the answer's header maps from growing: Pingora sizes
/// them exactly for the backend's headers, `apigw-requestid` fills the last free slot,
/// and Pingora's own `Date`/`Connection` inserts then rehashed both maps (~2,500
/// instructions per request, callgrind on the plain route).
pub fn strip_hop_by_hop(resp: &mut ResponseHeader) {
    // Names a backend lists in `Connection` beyond the usual keep-alive/close.
    let lists_names = resp
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|n| !n.eq_ignore_ascii_case("keep-alive") && !n.eq_ignore_ascii_case("close"));
    if !lists_names && !resp.headers.keys().any(is_hop_by_hop) {
        resp.remove_header(&header::CONNECTION);
        return;
    }
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
    resp.remove_header(&header::CONNECTION);
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
