//! HTTP_PROXY integration targets: the IntegrationUri parsed once (stage variables already
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
    path: Vec<PathPart>,
    /// Query string written in the IntegrationUri, sent before the client's.
    pub query: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({} {})", self.peer, self.host_header)
    }
}

impl Target {
    /// Parses and resolves `uri`. DNS is resolved here, once per config load.
    pub fn parse(uri: &str, timeout: Duration) -> Result<Target, String> {
        let (tls, rest) = if let Some(r) = uri.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = uri.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(format!("{uri:?} must start with http:// or https://"));
        };
        if tls {
            return Err("https:// integrations are not supported yet: this build has no TLS client; use http://".into());
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(split);
        if authority.is_empty() || authority.contains(['{', '}', '@']) {
            return Err(format!(
                "{uri:?} needs a plain host[:port] (no variables or credentials in the host)"
            ));
        }
        let (host, port) = split_host_port(authority)?;
        let port = port.unwrap_or(if tls { 443 } else { 80 });
        let addr: SocketAddr = (host.trim_start_matches('[').trim_end_matches(']'), port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve host {host:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("host {host:?} has no address"))?;
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string()).filter(|q| !q.is_empty())),
            None => (path_and_query, None),
        };
        let path = parse_path(if path.is_empty() { "/" } else { path })?;

        let mut peer = HttpPeer::new(addr, tls, host.to_string());
        peer.options.connection_timeout = Some(timeout);
        peer.options.total_connection_timeout = Some(timeout);
        peer.options.read_timeout = Some(timeout);
        peer.options.write_timeout = Some(timeout);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Target {
            peer,
            host_header: authority.to_string(),
            path,
            query,
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

fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => {
                let host = &authority[..=end];
                let rest = &authority[end + 1..];
                (host, rest.strip_prefix(':'))
            }
            None => return Err(format!("bad IPv6 host {authority:?}")),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?),
        None => None,
    };
    Ok((host, port))
}

fn parse_path(path: &str) -> Result<Vec<PathPart>, String> {
    let mut parts = Vec::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        if start > 0 {
            parts.push(PathPart::Lit(rest[..start].to_string()));
        }
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("unclosed '{{' in path {path:?}"))?;
        let name = rest[start + 1..start + end].trim_end_matches('+');
        if name.is_empty() {
            return Err(format!("empty variable in path {path:?}"));
        }
        parts.push(PathPart::Var(name.to_string()));
        rest = &rest[start + end + 1..];
    }
    if !rest.is_empty() {
        parts.push(PathPart::Lit(rest.to_string()));
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
    fn rejects_bad_uris() {
        for uri in [
            "ftp://x",
            "http://",
            "http://{host}/x",
            "http://h:99999/",
            "http://h/{",
        ] {
            assert!(Target::parse(uri, Duration::from_secs(1)).is_err(), "{uri}");
        }
    }
}
