//! An HTTP_PROXY integration's IntegrationUri, parsed once (stage variables already
//! substituted, host resolved) into a prototype Pingora peer and a path template.

use pingora_core::upstreams::peer::HttpPeer;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
enum PathPart {
    Lit(String),
    Var(String),
}

/// Where an integration sends requests.
#[derive(Clone)]
pub struct Target {
    /// Cloned per request; carries timeouts and pooling identity.
    pub peer: HttpPeer,
    /// `Host` header for the backend (`host` or `host:port` when not the scheme default).
    pub host_header: String,
    /// `host_header` as a header value, made once: each request clones a reference count
    /// instead of validating and copying the text.
    pub host_value: http::HeaderValue,
    path: Vec<PathPart>,
    /// Query string written in the IntegrationUri, sent before the client's.
    pub query: Option<String>,
    /// The backend URI when the IntegrationUri has no path variable: what a request that
    /// adds nothing to it (no query, no `$default` path, no path or query mapping) is
    /// sent, made at load. Building and parsing it per request was ~700 instructions.
    pub fixed_uri: Option<http::Uri>,
    /// Why the host has no address (DNS failed at load): such a target answers 502 until
    /// a reload resolves it, so one unreachable name does not keep a whole API from
    /// loading (or `check` from passing offline).
    pub unresolved: Option<Box<str>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({} {})", self.peer, self.host_header)
    }
}

/// What is wrong with an IntegrationUri, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriError {
    pub problem: String,
    pub fix: String,
}

fn bad(problem: impl Into<String>, fix: impl Into<String>) -> UriError {
    UriError {
        problem: problem.into(),
        fix: fix.into(),
    }
}

const EXAMPLE: &str = "use a full URL like \"http://127.0.0.1:9000/base/{proxy}\"";

/// An IntegrationUri split and checked, not yet resolved.
struct Parts<'a> {
    tls: bool,
    authority: &'a str,
    host: &'a str,
    port: u16,
    path: Vec<PathPart>,
    query: Option<String>,
}

/// Checks everything about `uri` but the host's address: what a request will be sent to
/// must be a valid URL once the path variables are filled in, or every request would
/// fail at run time (and be blamed on the client).
fn split(uri: &str) -> Result<Parts<'_>, UriError> {
    let (tls, rest) = if let Some(r) = uri.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = uri.strip_prefix("https://") {
        (true, r)
    } else {
        return Err(bad(
            format!("{uri:?} must start with http:// or https://"),
            EXAMPLE,
        ));
    };
    if let Some(i) = uri.find('#') {
        return Err(bad(
            format!(
                "{uri:?} has a fragment ({:?}), which is never sent to a backend",
                &uri[i..]
            ),
            "remove it (or write %23 if a '#' belongs in the path)",
        ));
    }
    if let Some(c) = uri.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(bad(
            format!("{uri:?} contains {c:?}, which a URL cannot hold as is"),
            "percent-encode it (a space is %20)",
        ));
    }
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(split);
    if authority.is_empty() || authority.contains(['{', '}', '@']) {
        return Err(bad(
            format!("{uri:?} needs a plain host[:port] (no variables or credentials in the host)"),
            "write the backend's host, or a ${stageVariables.NAME} that holds it",
        ));
    }
    let (host, port) = split_host_port(authority)?;
    let port = port.unwrap_or(if tls { 443 } else { 80 });
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string()).filter(|q| !q.is_empty())),
        None => (path_and_query, None),
    };
    let path = parse_path(if path.is_empty() { "/" } else { path })?;
    // The request line as it will be built, with a sample value in each variable.
    let mut sample = format!("http://{authority}");
    for part in &path {
        match part {
            PathPart::Lit(s) => sample.push_str(s),
            PathPart::Var(_) => sample.push('x'),
        }
    }
    if let Some(q) = &query {
        sample.push('?');
        sample.push_str(q);
    }
    if let Err(e) = sample.parse::<http::Uri>() {
        return Err(bad(
            format!("{uri:?} is not a valid URL ({e})"),
            "percent-encode special characters in the path and query",
        ));
    }
    Ok(Parts {
        tls,
        authority,
        host,
        port,
        path,
        query,
    })
}

impl Target {
    /// Checks `uri` without resolving its host: for a URI whose stage variables are not
    /// known yet, with each `${stageVariables.x}` replaced by a sample value.
    pub fn check(uri: &str) -> Result<(), UriError> {
        split(uri).map(|_| ())
    }

    /// Parses and resolves `uri`. DNS is resolved here, once per config load; a host that
    /// does not resolve is not an error but a target that answers 502 (`unresolved`).
    pub fn parse(uri: &str, timeout: Duration) -> Result<Target, UriError> {
        let Parts {
            tls,
            authority,
            host,
            port,
            path,
            query,
        } = split(uri)?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let (addr, unresolved) = match (bare, port).to_socket_addrs().map(|mut a| a.next()) {
            Ok(Some(addr)) => (addr, None),
            Ok(None) => (
                unspecified(port),
                Some(format!("host {host:?} has no address")),
            ),
            Err(e) => (
                unspecified(port),
                Some(format!("cannot resolve host {host:?}: {e}")),
            ),
        };
        let mut peer = HttpPeer::new(addr, tls, host.to_string());
        peer.options.connection_timeout = Some(timeout);
        peer.options.total_connection_timeout = Some(timeout);
        peer.options.read_timeout = Some(timeout);
        peer.options.write_timeout = Some(timeout);
        // No proxy-side idle timer: Pingora registers one per request (each release to the
        // pool). Pooled connections are still dropped when the backend closes them.
        peer.options.idle_timeout = None;
        // `split` checked the authority is printable ASCII: always a valid value.
        let host_value = http::HeaderValue::from_str(authority).map_err(|_| {
            bad(
                format!("{uri:?} has a host that is no header value"),
                EXAMPLE,
            )
        })?;
        let fixed_uri = if path.iter().all(|p| matches!(p, PathPart::Lit(_))) {
            let mut text: String = path
                .iter()
                .map(|p| match p {
                    PathPart::Lit(s) | PathPart::Var(s) => s.as_str(),
                })
                .collect();
            if let Some(q) = &query {
                text.push('?');
                text.push_str(q);
            }
            http::Uri::try_from(text).ok()
        } else {
            None
        };
        Ok(Target {
            peer,
            host_header: authority.to_string(),
            host_value,
            fixed_uri,
            path,
            query,
            unresolved: unresolved.map(String::into_boxed_str),
        })
    }

    /// Path variables the URI needs from the route.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.path.iter().filter_map(|p| match p {
            PathPart::Var(v) => Some(v.as_str()),
            PathPart::Lit(_) => None,
        })
    }

    /// Writes the backend path: the URI path with `{name}` replaced by the raw (still
    /// encoded) path variable, then, for `$default` routes, the request path appended.
    pub fn write_path(
        &self,
        params: &[(Box<str>, Box<str>)],
        append: Option<&str>,
        out: &mut String,
    ) {
        for part in &self.path {
            match part {
                PathPart::Lit(s) => out.push_str(s),
                PathPart::Var(name) => {
                    if let Some((_, v)) = params.iter().find(|(k, _)| &**k == name.as_str()) {
                        out.push_str(v);
                    }
                }
            }
        }
        if let Some(extra) = append {
            if extra != "/" || out.is_empty() {
                if out.ends_with('/') && extra.starts_with('/') {
                    out.pop();
                }
                out.push_str(extra);
            }
        }
    }
}

/// Where an unresolved target's peer points: never connected to (see `Target::unresolved`).
fn unspecified(port: u16) -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], port))
}

fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), UriError> {
    let (host, port) = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => {
                let host = &authority[..=end];
                let rest = &authority[end + 1..];
                (host, rest.strip_prefix(':'))
            }
            None => {
                return Err(bad(
                    format!("bad IPv6 host {authority:?}"),
                    "write it in brackets, like http://[::1]:9000",
                ))
            }
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some("0") => {
            return Err(bad(
                "port 0 is not a port a backend can listen on",
                "write the backend's port, or leave it out for 80",
            ))
        }
        Some(p) => Some(p.parse::<u16>().map_err(|_| {
            bad(
                format!("bad port {p:?}"),
                "write a port from 1 to 65535, or leave it out for 80",
            )
        })?),
        None => None,
    };
    Ok((host, port))
}

fn parse_path(path: &str) -> Result<Vec<PathPart>, UriError> {
    let mut parts = Vec::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        if start > 0 {
            parts.push(PathPart::Lit(rest[..start].to_string()));
        }
        let end = rest[start..].find('}').ok_or_else(|| {
            bad(
                format!("unclosed '{{' in path {path:?}"),
                "close it: {name}, or write %7B for a literal '{'",
            )
        })?;
        let name = rest[start + 1..start + end].trim_end_matches('+');
        if name.is_empty() {
            return Err(bad(
                format!("empty variable in path {path:?}"),
                "name the route's path variable, like {id}",
            ));
        }
        parts.push(PathPart::Var(name.to_string()));
        rest = &rest[start + end + 1..];
    }
    if rest.contains('}') {
        return Err(bad(
            format!("stray '}}' in path {path:?}"),
            "remove it, or write %7D for a literal '}'",
        ));
    }
    if !rest.is_empty() {
        parts.push(PathPart::Lit(rest.to_string()));
    }
    // The URI's own text must not hold what a client path may not (a dot segment, `%2F`,
    // a backslash): the backend would be sent a path outside the one the operator meant.
    let sample: String = parts
        .iter()
        .map(|p| match p {
            PathPart::Lit(s) => s.as_str(),
            PathPart::Var(_) => "x",
        })
        .collect();
    if sample.starts_with('/') {
        if let Err(why) = crate::request_path::canonical(&sample) {
            return Err(bad(
                format!("path {path:?} holds {why}"),
                "write the path the backend should receive, without . or .. segments, %2F or backslashes",
            ));
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(t: &Target, params: &[(&str, &str)], append: Option<&str>) -> String {
        let params: Vec<(Box<str>, Box<str>)> = params
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        let mut s = String::new();
        t.write_path(&params, append, &mut s);
        s
    }

    #[test]
    fn substitutes_variables_and_appends_default_path() {
        let t = Target::parse(
            "http://127.0.0.1:8080/petstore/{proxy}?a=1",
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(t.host_header, "127.0.0.1:8080");
        assert_eq!(t.query.as_deref(), Some("a=1"));
        assert_eq!(path(&t, &[("proxy", "a/b")], None), "/petstore/a/b");
        let t = Target::parse("http://localhost:9", Duration::from_secs(1)).unwrap();
        assert_eq!(path(&t, &[], Some("/store/checkout")), "/store/checkout");
        assert_eq!(path(&t, &[], Some("/")), "/");
        let t = Target::parse("http://localhost:9/base/", Duration::from_secs(1)).unwrap();
        assert_eq!(path(&t, &[], Some("/x")), "/base/x");
    }

    #[test]
    fn an_unresolvable_host_loads_unresolved() {
        // `.invalid` never resolves (RFC 6761 section 6.4).
        let t = Target::parse("http://backend.invalid/x", Duration::from_secs(1)).unwrap();
        let why = t.unresolved.as_deref().unwrap_or_default();
        assert!(why.contains("backend.invalid"), "{why}");
        let t = Target::parse("http://127.0.0.1:9/x", Duration::from_secs(1)).unwrap();
        assert!(t.unresolved.is_none());
    }

    #[test]
    fn rejects_bad_uris() {
        for uri in [
            "ftp://x",
            "http://",
            "http://{host}/x",
            "http://h:99999/",
            "http://h/{",
            "http://h/a b",
            "http://h/a#frag",
            "http://h:0/",
            "http://h/caf\u{e9}",
            "http://h/a<b",
            "http://h/x?a b",
            "http://h/a}",
            "https://h:0/",
        ] {
            assert!(Target::check(uri).is_err(), "{uri}");
            assert!(Target::parse(uri, Duration::from_secs(1)).is_err(), "{uri}");
        }
        let e = Target::check("http://h/a#frag").unwrap_err();
        assert!(
            e.problem.contains("fragment") && e.fix.contains("remove"),
            "{e:?}"
        );
        let e = Target::check("http://h:0/").unwrap_err();
        assert!(e.problem.contains("port 0"), "{e:?}");
        let e = Target::check("http://h/a b").unwrap_err();
        assert!(e.fix.contains("%20"), "{e:?}");
        // Variables are checked as the values they will hold.
        assert!(Target::check("http://h/a/{proxy+}/b?x=1").is_ok());
    }

    #[test]
    fn uri_paths_that_a_client_could_not_send_are_refused() {
        for uri in [
            "http://127.0.0.1:9000/a/../admin",
            "http://127.0.0.1:9000/a/%2e%2E/{proxy}",
            "http://127.0.0.1:9000/a%2Fb/{id}",
            "http://127.0.0.1:9000/a\\b",
        ] {
            let e = Target::check(uri).expect_err(uri);
            assert!(e.problem.contains("holds"), "{uri}: {e:?}");
        }
        Target::check("http://127.0.0.1:9000/a/{proxy}").unwrap();
        Target::check("http://127.0.0.1:9000").unwrap();
    }
}
