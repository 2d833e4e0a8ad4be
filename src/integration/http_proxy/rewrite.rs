//! The backend's request target: the IntegrationUri's path with the path variables filled
//! in (or `overwrite:path`), the URI's own query, then the client's, then `querystring`
//! mappings.

use super::Target;
use crate::mapping::{Action, RequestMapping, RequestOp, Vars};
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
    let mut path = String::with_capacity(64);
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
    match overwrite_path {
        Some(t) => {
            // A leading `/` is implied (AWS's examples write `/$request.path.proxy`);
            // merging makes a doubled one harmless.
            let mut mapped = String::with_capacity(64);
            mapped.push('/');
            t.eval_path_into(vars, &mut mapped);
            // The same rules as a client's path: a value can add no segment (its `/` is
            // encoded, and an encoded `/` is refused) and no dot segment.
            let canon = crate::request_path::canonical(&mapped).map_err(|why| {
                Error::explain(
                    ErrorType::HTTPStatus(400),
                    format!("overwrite:path {mapped:?}: {why}"),
                )
            })?;
            path.push_str(&canon);
        }
        None => target.write_path(vars.params, append, &mut path),
    }

    // Query: the URI's own first, then the client's, then mapping edits.
    let client_query = client_query.filter(|q| !q.is_empty());
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

/// Rebuilds the query string with the `querystring` mappings applied.
fn edit_query(query: &str, maps: &[RequestMapping], vars: &Vars<'_>) -> Option<String> {
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
