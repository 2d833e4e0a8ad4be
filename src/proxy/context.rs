//! The per-request context: what the hooks learn about a request, in the order they learn it.

use crate::accesslog::AccessLog;
use crate::integration::http_proxy::Forwarding;
use crate::lifecycle::InFlight;
use crate::mapping::Vars;
use crate::policy::chain::Outcome;
use crate::policy::ipfilter::is_trusted;
use crate::rejection::Rejection;
use crate::table::{Route, Table};
use pingora_core::protocols::tls::SslDigest;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Ctx {
    pub(super) start: Instant,
    pub(super) request_id: crate::request_id::RequestId,
    /// The table the request started with; a reload does not change it mid-request.
    pub(super) table: Arc<Table>,
    /// Counted in flight from `request_filter` until the context is dropped.
    pub(super) in_flight: Option<InFlight>,
    /// Known before routing, so every answer (rejections too) is logged in the stage's log.
    pub(super) stage: Option<Arc<str>>,
    pub(super) access_log: Option<Arc<AccessLog>>,
    pub(super) client: Client,
    /// Set once a route is selected.
    pub(super) routed: Option<Routed>,
    /// Claims and the rate-limit decision the policy chain left.
    pub(super) policy: Outcome,
    /// Why the gateway answered itself, if it did.
    pub(super) rejection: Option<Rejection>,
    pub(super) upstream: Upstream,
    /// Request body bytes seen so far (chunked uploads have no Content-Length to check).
    pub(super) body_bytes: u64,
    /// The connection's TLS facts; `None` on plain HTTP.
    pub(super) tls: Option<Arc<SslDigest>>,
    /// When the whole body must have arrived (`RequestBodyTimeoutInMillis`).
    pub(super) body_deadline: Option<Instant>,
    /// An aggregate route's backend calls, as `$context.integration.backends` logs them.
    pub(super) backends: Option<String>,
}

/// The client's address, as the IP filters and forwarding headers see it.
pub struct Client {
    pub ip: IpAddr,
    /// `ip` formatted once: mappings, rate-limit keys and forwarding headers use it.
    pub ip_str: String,
}

/// The selected route and what its selection produced.
pub struct Routed {
    pub route: Arc<Route>,
    /// Path variables, still percent-encoded.
    pub params: Vec<(Box<str>, Box<str>)>,
    /// The request path without the stage prefix.
    pub stage_path: String,
}

/// The backend exchange, for metrics, access logs and the `TimeoutInMillis` budget.
#[derive(Default)]
pub struct Upstream {
    pub start: Option<Instant>,
    /// Time until the backend's response headers arrived, and its status.
    pub answered: Option<(Duration, u16)>,
}

impl Ctx {
    pub(super) fn new(table: Arc<Table>, request_id: crate::request_id::RequestId) -> Ctx {
        Ctx {
            start: Instant::now(),
            request_id,
            table,
            in_flight: None,
            stage: None,
            access_log: None,
            client: Client {
                ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                ip_str: String::new(),
            },
            routed: None,
            policy: Outcome::default(),
            rejection: None,
            upstream: Upstream::default(),
            body_bytes: 0,
            tls: None,
            body_deadline: None,
            backends: None,
        }
    }

    /// The mutual-TLS client certificate of the request's connection.
    pub(super) fn client_cert(&self) -> Option<&crate::tls::client_cert::ClientCert> {
        self.tls
            .as_deref()
            .and_then(crate::tls::client_cert::client_cert)
    }

    /// Who sent the request, for the forwarding headers of a backend request (HTTP_PROXY and
    /// each backend of an aggregate).
    pub(super) fn forwarding(&self, session: &Session) -> Forwarding<'_> {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        Forwarding {
            client_ip: self.client.ip,
            client_ip_str: &self.client.ip_str,
            peer,
            peer_trusted: peer.is_some_and(|p| is_trusted(p, &self.table.settings.trusted_proxies)),
            listen_port: session
                .server_addr()
                .and_then(|a| a.as_inet())
                .map_or(0, |a| a.port()),
            https: self.tls.is_some(),
        }
    }

    /// The values mappings read, for the request (and the backend's response, if any).
    pub(super) fn vars<'a>(
        &'a self,
        routed: &'a Routed,
        req: &'a RequestHeader,
        resp: Option<&'a ResponseHeader>,
    ) -> Vars<'a> {
        Vars {
            req,
            path: &routed.stage_path,
            full_path: req.uri.path(),
            params: &routed.params,
            request_id: &self.request_id,
            stage: self.stage.as_deref().unwrap_or("$default"),
            route_key: &routed.route.key,
            source_ip: &self.client.ip_str,
            claims: self.policy.claims.as_deref(),
            authorizer: self.policy.lambda_context.as_deref(),
            resp,
            client_cert: self.client_cert(),
        }
    }
}

/// `IpAddr::to_string()` goes through `core::fmt` (~1.3k instructions for an IPv4 address).
pub fn ip_string(ip: IpAddr) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
