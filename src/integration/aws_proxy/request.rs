//! Request parameter mapping on Lambda routes: HTTP APIs apply `RequestParameters`
//! (`append|overwrite|remove:header.NAME`, `…:querystring.NAME`, `overwrite:path`) to the
//! request before the event is built (AWS guide "Transform API requests and responses for
//! HTTP APIs"), so the event's `headers`, `queryStringParameters`, `rawQueryString` and
//! `rawPath` show the mapped request. The same rules as HTTP_PROXY's apply.

use crate::integration::http_proxy::{edit_query, mapped_path};
use crate::mapping::{apply_header, RequestMapping, RequestOp, Vars};
use pingora_core::{Error, ErrorType, Result};
use pingora_http::RequestHeader;
use std::borrow::Cow;

/// The request as the function sees it: `req` itself when no mapping applies. `Err`
/// (400) when a mapped path or value cannot stand in a request.
pub fn mapped<'r>(
    req: &'r RequestHeader,
    maps: &[RequestMapping],
    vars: &Vars<'_>,
) -> Result<Cow<'r, RequestHeader>> {
    if maps.iter().all(RequestMapping::is_empty) {
        return Ok(Cow::Borrowed(req));
    }
    let mut out = req.clone();
    let mut path = None;
    for map in maps {
        for op in &map.ops {
            match op {
                RequestOp::Header(action, h, t) => {
                    apply_header(&mut out, *action, h, &t.eval(vars, false))?
                }
                RequestOp::Path(t) => path = Some(mapped_path(t, vars)?),
                RequestOp::Query(..) => {}
            }
        }
    }
    let query = if maps.iter().any(RequestMapping::touches_query) {
        edit_query(req.uri.query().unwrap_or(""), maps, vars)
    } else {
        req.uri.query().map(str::to_string)
    };
    let mut target = path.unwrap_or_else(|| req.uri.path().to_string());
    if let Some(q) = query {
        target.push('?');
        target.push_str(&q);
    }
    let uri = http::Uri::try_from(target)
        .map_err(|e| Error::because(ErrorType::HTTPStatus(400), "bad mapped request", e))?;
    out.set_uri(uri);
    Ok(Cow::Owned(out))
}
