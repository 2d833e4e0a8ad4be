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
        let mut prior = client.headers.get_all(&X_FORWARDED_FOR).iter().peekable();
        let (xff, forwarded) = if prior.peek().is_none() {
            self.cached_values(original_host)?
        } else {
            let (xff, forwarded) = self.values(prior, original_host);
            (header_value(xff)?, header_value(forwarded)?)
        };
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
        up.insert_header("X-Forwarded-Port", port_value(self.listen_port))?;
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

impl Forwarding<'_> {
    /// `X-Forwarded-For` (the client's list, if any, then the peer) and `Forwarded`.
    fn values<'v>(
        &self,
        prior: impl Iterator<Item = &'v HeaderValue>,
        original_host: &str,
    ) -> (String, String) {
        // Repeated X-Forwarded-For fields are one list (RFC 9110 5.3): keep every hop.
        let mut xff = String::with_capacity(self.client_ip_str.len() + 32);
        for prev in prior {
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
        (xff, forwarded)
    }

    /// [`values`](Self::values) for a request that brought no `X-Forwarded-For`: they depend
    /// only on the client, the peer, the scheme and the Host, which stay the same request
    /// after request on a kept-alive connection, so each thread keeps the last ones it made
    /// and hands out clones (a reference count each, where building them was two strings,
    /// two validations and four allocations: ~500 instructions, `loadtest/instructions.py`).
    fn cached_values(&self, original_host: &str) -> Result<(HeaderValue, HeaderValue)> {
        thread_local! {
            static LAST: std::cell::RefCell<Option<Made>> = const { std::cell::RefCell::new(None) };
        }
        LAST.with_borrow_mut(|last| {
            if let Some(m) = last.as_ref().filter(|m| {
                m.client_ip == self.client_ip
                    && m.peer == self.peer
                    && m.https == self.https
                    && *m.host == *original_host
            }) {
                return Ok((m.xff.clone(), m.forwarded.clone()));
            }
            let (xff, forwarded) = self.values(std::iter::empty(), original_host);
            let made = Made {
                client_ip: self.client_ip,
                peer: self.peer,
                https: self.https,
                host: original_host.into(),
                xff: header_value(xff)?,
                forwarded: header_value(forwarded)?,
            };
            let values = (made.xff.clone(), made.forwarded.clone());
            *last = Some(made);
            Ok(values)
        })
    }
}

/// The forwarding values a thread made last, and what they were made from.
struct Made {
    client_ip: IpAddr,
    peer: Option<IpAddr>,
    https: bool,
    host: Box<str>,
    xff: HeaderValue,
    forwarded: HeaderValue,
}

/// A value built from the request's own header values and the gateway's formatting.
fn header_value(text: String) -> Result<HeaderValue> {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(text.into_bytes()))
        .or_err(InvalidHTTPHeader, "invalid forwarding header value")
}

/// `X-Forwarded-Port`'s value. Formatting a port allocates its text; a thread serves the
/// same listener's port request after request, so it keeps the last one made and hands out
/// clones (a reference count).
fn port_value(port: u16) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(u16, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some((p, v)) if *p == port => v.clone(),
        _ => {
            let v = HeaderValue::from(port);
            *last = Some((port, v.clone()));
            v
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_value_follows_the_port() {
        for port in [8080u16, 8080, 443, 8080, 0, 65535] {
            assert_eq!(port_value(port), HeaderValue::from(port));
        }
    }

    fn forwarded_for(client: &RequestHeader, ip: &str, https: bool) -> (String, String) {
        let client_ip: IpAddr = ip.parse().unwrap();
        let text = crate::proxy::ip_string(client_ip);
        let f = Forwarding {
            client_ip,
            client_ip_str: &text,
            peer: Some(client_ip),
            peer_trusted: false,
            listen_port: 8080,
            https,
        };
        let mut up = client.clone();
        f.write(client, &mut up).unwrap();
        let get = |n: &str| up.headers[n].to_str().unwrap().to_string();
        (get("x-forwarded-for"), get("forwarded"))
    }

    #[test]
    fn the_values_kept_for_a_connection_follow_client_host_and_scheme() {
        let mut a = RequestHeader::build("GET", b"/", None).unwrap();
        a.append_header("Host", "a.example").unwrap();
        let mut b = RequestHeader::build("GET", b"/", None).unwrap();
        b.append_header("Host", "b.example:8443").unwrap();
        let mut listed = a.clone();
        listed
            .append_header("X-Forwarded-For", "203.0.113.9")
            .unwrap();
        for _ in 0..2 {
            assert_eq!(
                forwarded_for(&a, "10.0.0.1", false),
                (
                    "10.0.0.1".into(),
                    "for=10.0.0.1;host=a.example;proto=http".into()
                )
            );
            assert_eq!(
                forwarded_for(&a, "10.0.0.2", true),
                (
                    "10.0.0.2".into(),
                    "for=10.0.0.2;host=a.example;proto=https".into()
                )
            );
            assert_eq!(
                forwarded_for(&b, "10.0.0.2", true),
                (
                    "10.0.0.2".into(),
                    "for=10.0.0.2;host=\"b.example:8443\";proto=https".into()
                )
            );
            assert_eq!(
                forwarded_for(&listed, "::1", false),
                (
                    "203.0.113.9, ::1".into(),
                    "for=\"[::1]\";host=a.example;proto=http".into()
                )
            );
        }
    }
}
