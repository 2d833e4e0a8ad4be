//! HTTP_PROXY: the request forwarded to the IntegrationUri through Pingora's pooled
//! connectors. `target` is the URI compiled at load, `rewrite` builds the backend's path
//! and query, `forwarding` the headers a proxy adds and removes.

mod forwarding;
mod rewrite;
mod target;

pub use forwarding::{strip_hop_by_hop, Forwarding};
pub(crate) use rewrite::{edit_query, mapped_path};
pub use target::{Target, UriError};

use crate::mapping::{apply_header_value, RequestMapping, RequestOp, Vars};
use http::Method;
use pingora_core::Result;
use pingora_http::RequestHeader;

/// An HTTP_PROXY integration compiled for one stage.
#[derive(Debug)]
pub struct HttpProxy {
    pub target: Target,
    /// `None`: the client's method (`ANY`).
    pub method: Option<Method>,
}

impl HttpProxy {
    /// Turns the client's request head (already copied into `up` by Pingora) into the
    /// backend's: URI, method, forwarding headers, then the route's header mappings.
    /// `append` is the client path a `$default` route appends to the URI's path.
    pub fn write_request(
        &self,
        client: &RequestHeader,
        up: &mut RequestHeader,
        maps: &[RequestMapping],
        vars: &Vars<'_>,
        append: Option<&str>,
        forwarding: &Forwarding<'_>,
    ) -> Result<()> {
        let added = FORWARDING_HEADERS + maps.iter().map(|m| m.ops.len()).sum::<usize>();
        let host_written = make_room(up, added, &self.target.host_value)?;
        up.set_uri(rewrite::backend_uri(
            &self.target,
            client.uri.query(),
            maps,
            vars,
            append,
        )?);
        if let Some(m) = &self.method {
            up.set_method(m.clone());
        }
        if !host_written {
            up.insert_header(http::header::HOST, self.target.host_value.clone())?;
        }
        forwarding.write(client, up)?;
        for map in maps {
            for op in &map.ops {
                if let RequestOp::Header(action, h, t) = op {
                    apply_header_value(up, *action, h, t.header_value(vars))?;
                }
            }
        }
        Ok(())
    }
}

/// Headers `Forwarding::write` adds to the client's (`Host` is replaced, not added).
const FORWARDING_HEADERS: usize = 5;

/// Pingora hands `upstream_request_filter` a clone of the client's head whose two header
/// maps (values, and names as spelled) hold exactly the client's headers: each header
/// the gateway adds then grows and rehashes both maps, and a request with few headers
/// (curl, SDKs, health checks, load tools) had them rehashed four times each, about
/// 5,500 instructions per request (callgrind, `loadtest/instructions.py`, plain route).
/// Pingora 0.9 has no `reserve` (see `loadtest/pingora-patches/p3-header-reserve.diff`),
/// so when the clone would grow more than once, the head is rebuilt with room for
/// `added` more: the same headers, in the same order and spelling, re-inserted once, the
/// first `Host` carrying the backend's `host` value already (Pingora's head has no mutable
/// header access, and a separate insert of `Host` cost ~800 instructions). Returns whether
/// it wrote `Host`. A head with many headers grows at most once and is left as it is
/// (rebuilding would cost more than the one rehash).
fn make_room(up: &mut RequestHeader, added: usize, host: &http::HeaderValue) -> Result<bool> {
    let needed = up.headers.len() + added;
    if needed <= 2 * up.headers.capacity() || !up.has_case() {
        return Ok(false);
    }
    let mut roomy = RequestHeader::build(up.method.clone(), b"/", Some(needed))?;
    roomy.set_version(up.version);
    if let Some(end) = up.send_end_stream() {
        roomy.set_send_end_stream(end);
    }
    *roomy.extensions_mut() = std::mem::take(up.extensions_mut());
    let mut host_written = false;
    for (name, value) in up.case_header_iter() {
        if name.as_slice().eq_ignore_ascii_case(b"host") {
            if !host_written {
                roomy.append_header(name.clone(), host.clone())?;
                host_written = true;
            }
            continue;
        }
        roomy.append_header(name.clone(), value.clone())?;
    }
    // The URI is set by the caller; until then it is the client's.
    roomy.set_uri(up.uri.clone());
    *up = roomy;
    Ok(host_written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn making_room_keeps_the_head_as_it_was() {
        let mut up = RequestHeader::build("POST", b"/a?b=1", Some(3)).unwrap();
        up.append_header("Host", "example.com").unwrap();
        up.append_header("x-Mixed-CASE", "1").unwrap();
        up.append_header("X-Mixed-Case", "2").unwrap();
        let mut before = Vec::new();
        up.header_to_h1_wire(&mut before);
        assert!(make_room(&mut up, 8, &http::HeaderValue::from_static("example.com")).unwrap());
        assert!(up.headers.capacity() >= 11);
        let mut after = Vec::new();
        up.header_to_h1_wire(&mut after);
        assert_eq!(
            String::from_utf8_lossy(&after),
            String::from_utf8_lossy(&before)
        );
        assert_eq!(up.method, http::Method::POST);
        assert_eq!(up.uri, "/a?b=1");
        assert_eq!(up.version, http::Version::HTTP_11);
        // Room made, later inserts keep both maps in step (Pingora asserts they zip).
        for i in 0..8 {
            up.insert_header(format!("X-Added-{i}"), "v").unwrap();
        }
        let mut wire = Vec::new();
        up.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8_lossy(&wire);
        assert!(
            wire.starts_with("Host: example.com\r\nx-Mixed-CASE: 1\r\nX-Mixed-Case: 2\r\n"),
            "{wire}"
        );
        assert!(wire.contains("X-Added-7: v\r\n"), "{wire}");
    }

    fn wire(up: &RequestHeader) -> String {
        let mut buf = Vec::new();
        up.header_to_h1_wire(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    #[test]
    fn making_room_writes_the_backend_host_once_where_the_client_had_it() {
        let backend = http::HeaderValue::from_static("backend:8080");
        let mut one = RequestHeader::build("GET", b"/", Some(2)).unwrap();
        one.append_header("host", "client.example").unwrap();
        one.append_header("Accept", "*/*").unwrap();
        assert!(make_room(&mut one, 6, &backend).unwrap());
        assert_eq!(wire(&one), "host: backend:8080\r\nAccept: */*\r\n");

        let mut two = RequestHeader::build("GET", b"/", Some(3)).unwrap();
        two.append_header("Host", "a").unwrap();
        two.append_header("X-A", "1").unwrap();
        two.append_header("Host", "b").unwrap();
        assert!(make_room(&mut two, 6, &backend).unwrap());
        assert_eq!(wire(&two), "Host: backend:8080\r\nX-A: 1\r\n");

        // Rebuilt, but there was no Host to carry the value: the caller inserts it.
        let mut none = RequestHeader::build("GET", b"/", Some(1)).unwrap();
        none.append_header("Accept", "*/*").unwrap();
        assert!(!make_room(&mut none, 6, &backend).unwrap());
        assert!(none.headers.capacity() >= 7);
    }
}
