//! What one request supplies to templates, borrowed from the proxy's state so evaluating a
//! mapping copies nothing it does not output.

use super::context::ContextVar;
use super::template::Var;
use super::Claims;
use percent_encoding::percent_decode_str;
use pingora_http::{RequestHeader, ResponseHeader};
use std::borrow::Cow;

/// What a template reads from, for one request.
pub struct Vars<'a> {
    pub req: &'a RequestHeader,
    /// The request path without the stage, still percent-encoded.
    pub path: &'a str,
    /// The full request path (with the stage).
    pub full_path: &'a str,
    /// Path variables by name, still percent-encoded.
    pub params: &'a [(Box<str>, Box<str>)],
    pub request_id: &'a str,
    pub stage: &'a str,
    pub route_key: &'a str,
    pub source_ip: &'a str,
    pub claims: Option<&'a Claims>,
    /// A Lambda authorizer's context, for `$context.authorizer.NAME`.
    pub authorizer: Option<&'a serde_json::Map<String, serde_json::Value>>,
    pub resp: Option<&'a ResponseHeader>,
    /// The mutual-TLS client certificate, if the connection has one.
    pub client_cert: Option<&'a crate::tls::client_cert::ClientCert>,
}

impl Vars<'_> {
    pub(super) fn append(&self, var: &Var, for_path: bool, out: &mut String) {
        match var {
            Var::RequestHeader(name) => join_header(self.req.headers.get_all(name), out),
            Var::ResponseHeader(name) => {
                if let Some(resp) = self.resp {
                    join_header(resp.headers.get_all(name), out)
                }
            }
            Var::RequestQuery(name) => {
                let mut first = true;
                for (k, v) in query_pairs(self.req.uri.query().unwrap_or("")) {
                    if k == name.as_str() {
                        if !first {
                            out.push(',');
                        }
                        first = false;
                        out.push_str(&v);
                    }
                }
            }
            Var::RequestPath => decoded(self.path, for_path, out),
            Var::RequestPathParam(name) => {
                if let Some((_, v)) = self.params.iter().find(|(k, _)| &**k == name.as_str()) {
                    decoded(v, for_path, out)
                }
            }
            Var::Context(var) => self.append_context(var, for_path, out),
        }
    }

    fn append_context(&self, var: &ContextVar, for_path: bool, out: &mut String) {
        match var {
            ContextVar::RequestId => out.push_str(self.request_id),
            ContextVar::Stage => out.push_str(self.stage),
            ContextVar::RouteKey => out.push_str(self.route_key),
            ContextVar::SourceIp => out.push_str(self.source_ip),
            ContextVar::HttpMethod => out.push_str(self.req.method.as_str()),
            ContextVar::Path => decoded(self.full_path, for_path, out),
            ContextVar::DomainName => {
                if let Some(h) = self
                    .req
                    .headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                {
                    out.push_str(h.split(':').next().unwrap_or(h));
                }
            }
            ContextVar::Claim(name) => match self.claims.and_then(|c| c.get(name)) {
                Some(serde_json::Value::String(s)) => out.push_str(s),
                Some(serde_json::Value::Array(items)) => {
                    // AWS renders list claims as "[a b]"; a comma list is friendlier to headers.
                    let strs: Vec<Cow<str>> = items
                        .iter()
                        .map(|i| match i {
                            serde_json::Value::String(s) => Cow::Borrowed(s.as_str()),
                            other => Cow::Owned(other.to_string()),
                        })
                        .collect();
                    out.push_str(&strs.join(","));
                }
                Some(other) => out.push_str(&other.to_string()),
                None => {}
            },
            ContextVar::AuthorizerProperty(key) => match self.authorizer.and_then(|c| c.get(key)) {
                Some(serde_json::Value::String(s)) => out.push_str(s),
                Some(other) => out.push_str(&other.to_string()),
                None => {}
            },
            ContextVar::ClientCert(f) => {
                if let Some(c) = self.client_cert {
                    out.push_str(c.field(*f))
                }
            }
            // Outside `Scope::MAPPING`: known only once the exchange is over (or, for
            // `apiId`, offered to access logs only), so a template never holds them.
            ContextVar::ApiId
            | ContextVar::Status
            | ContextVar::Protocol
            | ContextVar::UserAgent
            | ContextVar::ResponseLength
            | ContextVar::ResponseLatency
            | ContextVar::IntegrationLatency
            | ContextVar::IntegrationStatus
            | ContextVar::IntegrationError
            | ContextVar::IntegrationBackends
            | ContextVar::RequestTime
            | ContextVar::RequestTimeEpoch
            | ContextVar::ErrorMessage
            | ContextVar::AuthorizerError => {}
        }
    }
}

/// Path values stay percent-encoded for a URL path and are decoded everywhere else.
fn decoded(s: &str, for_path: bool, out: &mut String) {
    if for_path {
        out.push_str(s)
    } else {
        out.push_str(&percent_decode_str(s).decode_utf8_lossy())
    }
}

fn join_header<'a>(values: impl IntoIterator<Item = &'a http::HeaderValue>, out: &mut String) {
    let mut first = true;
    for v in values {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&String::from_utf8_lossy(v.as_bytes()));
    }
}

/// `a=1&b=%20` as decoded pairs.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (
            percent_decode_str(k).decode_utf8_lossy(),
            percent_decode_str(v).decode_utf8_lossy(),
        )
    })
}
