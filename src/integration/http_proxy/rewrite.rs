//! The backend's request target: the IntegrationUri's path with the path variables filled
//! in (or `overwrite:path`), the URI's own query, then the client's, then `querystring`
//! mappings.

use super::Target;
use crate::mapping::{Action, RequestMapping, RequestOp, Template, Vars};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use pingora_core::{Error, ErrorType, Result};

/// Characters that cannot stand in a URL as they are.
const URL_UNSAFE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');
/// Characters escaped in a mapped query value.
const QUERY_UNSAFE: &AsciiSet = &URL_UNSAFE.add(b'&').add(b'=').add(b'+').add(b'%');

/// The URI the backend is sent. `append`: the client path a `$default` route appends.
pub(super) fn backend_uri(
    target: &Target,
    client_query: Option<&str>,
    maps: &[RequestMapping],
    vars: &Vars<'_>,
    append: Option<&str>,
) -> Result<http::Uri> {
    // Path: the URI template, `$default` appends the client path, `overwrite:path` wins.
    let mut overwrite_path = None;
    let mut query_edits = false;
    for map in maps {
        for op in &map.ops {
            match op {
                RequestOp::Path(t) => overwrite_path = Some(t),
                RequestOp::Query(..) => query_edits = true,
                RequestOp::Header(..) => {}
            }
        }
    }
    let client_query = client_query.filter(|q| !q.is_empty());
    if let (None, None, false, None, Some(uri)) = (
        overwrite_path,
        client_query,
        query_edits,
        append,
        &target.fixed_uri,
    ) {
        return Ok(uri.clone());
    }
    let mut path = String::with_capacity(64);
    match overwrite_path {
        Some(t) => path.push_str(&mapped_path(t, vars)?),
        None => target.write_path(vars.params, append, &mut path),
    }

    // Query: the URI's own first, then the client's, then mapping edits.
    let mut query: Option<String> = match (&target.query, client_query) {
        (Some(a), Some(b)) => Some(format!("{a}&{b}")),
        (Some(a), None) => Some(a.clone()),
        (None, Some(b)) => Some(b.to_string()),
        (None, None) => None,
    };
    if query_edits {
        query = edit_query(query.as_deref().unwrap_or(""), maps, vars);
    }
    if let Some(q) = &query {
        path.push('?');
        path.push_str(q);
    }
    http::Uri::try_from(path)
        .map_err(|e| Error::because(ErrorType::HTTPStatus(400), "bad backend URI", e))
}

/// `overwrite:path`'s value, in canonical form; 400 when it is not a path a client could
/// have sent.
pub(crate) fn mapped_path(t: &Template, vars: &Vars<'_>) -> Result<String> {
    // A leading `/` is implied (AWS's examples write `/$request.path.proxy`);
    // merging makes a doubled one harmless.
    let mut mapped = String::with_capacity(64);
    mapped.push('/');
    t.eval_path_into(vars, &mut mapped);
    // The same rules as a client's path: a value can add no segment (its `/` is
    // encoded, and an encoded `/` is refused) and no dot segment.
    crate::request_path::canonical(&mapped)
        .map(|c| c.to_string())
        .map_err(|why| {
            Error::explain(
                ErrorType::HTTPStatus(400),
                format!("overwrite:path {mapped:?}: {why}"),
            )
        })
}

/// Rebuilds the query string with the `querystring` mappings applied.
pub(crate) fn edit_query(query: &str, maps: &[RequestMapping], vars: &Vars<'_>) -> Option<String> {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let same = |raw: &str, name: &str| {
        percent_encoding::percent_decode_str(raw).decode_utf8_lossy() == name
    };
    for map in maps {
        for op in &map.ops {
            if let RequestOp::Query(action, name, t) = op {
                let encoded_name: String = utf8_percent_encode(name, QUERY_UNSAFE).collect();
                match action {
                    Action::Remove => pairs.retain(|(k, _)| !same(k, name)),
                    Action::Overwrite | Action::Append => {
                        let v = t.eval(vars, false);
                        if v.is_empty() {
                            continue;
                        }
                        if *action == Action::Overwrite {
                            pairs.retain(|(k, _)| !same(k, name));
                        }
                        pairs.push((
                            encoded_name,
                            utf8_percent_encode(&v, QUERY_UNSAFE).collect(),
                        ));
                    }
                }
            }
        }
    }
    if pairs.is_empty() {
        return None;
    }
    Some(
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{Side, Template};
    use pingora_http::RequestHeader;
    use proptest::prelude::*;
    use std::time::Duration;

    /// The backend path for a client request `target` (with `X-File: header`) through
    /// `overwrite:path` = `template`, on the route `GET /svc/{proxy+}`.
    fn mapped(template: &str, target: &str, header: &str) -> Result<String> {
        let t = Template::parse(template, Side::Request, &Default::default()).unwrap();
        let maps = [RequestMapping {
            ops: vec![RequestOp::Path(t)],
        }];
        let target_uri = Target::parse("http://127.0.0.1:9/base", Duration::from_secs(1)).unwrap();
        let mut req = RequestHeader::build("GET", target.as_bytes(), None).unwrap();
        req.insert_header("X-File", header).unwrap();
        let path = req.uri.path().to_string();
        let proxy = path.strip_prefix("/svc/").unwrap_or("").into();
        let params = [("proxy".into(), proxy)];
        let vars = Vars {
            req: &req,
            path: &path,
            full_path: &path,
            params: &params,
            request_id: "id",
            stage: "$default",
            route_key: "GET /svc/{proxy+}",
            source_ip: "127.0.0.1",
            claims: None,
            authorizer: None,
            resp: None,
            client_cert: None,
        };
        backend_uri(&target_uri, None, &maps, &vars, None).map(|u| u.path().to_string())
    }

    #[test]
    fn path_values_keep_their_slashes_other_values_cannot_add_any() {
        let ok = |t: &str, target: &str, h: &str| mapped(t, target, h).unwrap();
        let refused = |t: &str, target: &str, h: &str| mapped(t, target, h).is_err();
        assert_eq!(
            ok("/x/$request.path.proxy", "/svc/a/b%20c", ""),
            "/x/a/b%20c"
        );
        assert_eq!(ok("$request.path", "/svc/a", ""), "/svc/a");
        assert_eq!(
            ok("/f/$request.querystring.n", "/svc/a?n=my%20file", ""),
            "/f/my%20file"
        );
        assert_eq!(ok("/f/$request.querystring.n", "/svc/a?n=%61", ""), "/f/a");
        assert_eq!(
            ok("/f/${request.header.X-File}/z", "/svc/a", "é"),
            "/f/%C3%A9/z"
        );
        // An empty value leaves no empty segment behind.
        assert_eq!(ok("/f/$request.querystring.n/z", "/svc/a", ""), "/f/z");
        // A value's `%` is data: `%2e%2e` is a name, not `..`.
        assert_eq!(
            ok("/f/$request.querystring.n", "/svc/a?n=%252e%252e", ""),
            "/f/%252e%252e"
        );
        for q in [
            "..", "%2e%2e", ".", "../x", "..%2Fx", "a/b", "%2Fx", "..;x", "a\\b", "..%5Cx",
        ] {
            let target = format!("/svc/a?n={q}");
            assert!(refused("/f/$request.querystring.n", &target, ""), "{q}");
        }
        for h in ["..", "../admin", "a/b", "a\\b", "..;x", "/etc/passwd"] {
            assert!(refused("/f/${request.header.X-File}", "/svc/a", h), "{h}");
        }
        // The operator's own text is checked the same way.
        assert!(refused("/f/../admin", "/svc/a", ""));
    }

    #[test]
    fn a_fixed_uri_is_the_one_built_per_request() {
        let vars_for = |req: &RequestHeader| -> String {
            let path = req.uri.path().to_string();
            let vars = Vars {
                req,
                path: &path,
                full_path: &path,
                params: &[],
                request_id: "id",
                stage: "$default",
                route_key: "GET /x",
                source_ip: "127.0.0.1",
                claims: None,
                authorizer: None,
                resp: None,
                client_cert: None,
            };
            let t = Target::parse("http://127.0.0.1:9/base/x?a=1", Duration::from_secs(1)).unwrap();
            assert!(t.fixed_uri.is_some());
            let uri = backend_uri(&t, req.uri.query(), &[], &vars, None).unwrap();
            let mut slow = t.clone();
            slow.fixed_uri = None;
            let built = backend_uri(&slow, req.uri.query(), &[], &vars, None).unwrap();
            assert_eq!(uri, built);
            uri.to_string()
        };
        let req = RequestHeader::build("GET", b"/x", None).unwrap();
        assert_eq!(vars_for(&req), "/base/x?a=1");
        let req = RequestHeader::build("GET", b"/x?b=2", None).unwrap();
        assert_eq!(vars_for(&req), "/base/x?a=1&b=2");
        let t = Target::parse("http://127.0.0.1:9/a/{id}", Duration::from_secs(1)).unwrap();
        assert!(t.fixed_uri.is_none());
    }

    proptest! {
        /// A query or header value can make the mapped path a 400 or one segment's text,
        /// never more segments, and never a dot segment.
        #[test]
        fn values_never_add_segments(value in "[ -~\u{e9}]{0,12}") {
            let query: String = value.bytes().map(|b| format!("%{b:02X}")).collect();
            let header = value.trim().to_string();
            for (target, h) in [(format!("/svc/a?n={query}"), "x".to_string()), ("/svc/a".to_string(), header)] {
                let template = if target.contains('?') {
                    "/f/$request.querystring.n/z"
                } else {
                    "/f/${request.header.X-File}/z"
                };
                if let Ok(p) = mapped(template, &target, &h) {
                    let segs: Vec<&str> = p[1..].split('/').collect();
                    prop_assert!(segs.len() == 2 || segs.len() == 3, "{:?} -> {}", value, p);
                    prop_assert_eq!(segs[0], "f");
                    prop_assert_eq!(*segs.last().unwrap(), "z");
                    prop_assert!(segs.iter().all(|s| *s != "." && *s != ".."), "{}", p);
                }
            }
        }
    }
}
