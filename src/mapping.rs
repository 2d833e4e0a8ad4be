//! AWS parameter mapping: value expressions (`$request.header.X`, `${context.requestId}`,
//! static text, mixes) and the `append|overwrite|remove:header.X` style operations,
//! parsed once at config load and evaluated per request without re-parsing.

use crate::config::{ConfigError, ConfigErrors};
use http::header::HeaderName;
use percent_encoding::percent_decode_str;
use pingora_http::{RequestHeader, ResponseHeader};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Verified JWT claims, as given to `$context.authorizer.claims.NAME`.
pub type Claims = serde_json::Map<String, serde_json::Value>;

/// A value a template can read.
#[derive(Debug, Clone, PartialEq)]
pub enum Var {
    RequestHeader(HeaderName),
    RequestQuery(String),
    RequestPath,
    RequestPathParam(String),
    RequestId,
    Stage,
    RouteKey,
    SourceIp,
    HttpMethod,
    /// `$context.path`: the request path including the stage.
    ContextPath,
    DomainName,
    Claim(String),
    ResponseHeader(HeaderName),
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Var(Var),
}

/// A parsed value expression.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Template {
    parts: Vec<Part>,
}

/// Where a template may be used: response variables only make sense on the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

const CONTEXT_VARS: &str = "requestId, stage, routeKey, identity.sourceIp, httpMethod, path, domainName, authorizer.claims.NAME";

/// A piece of a value expression: text, or the inside of `$x.y` / `${x.y}`.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    Text(&'a str),
    Expr(&'a str),
}

/// Splits a value into text and expressions. A lone `$` (or `$word` that names no
/// source) is text.
fn tokens(text: &str) -> Result<Vec<Token<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        if pos > 0 {
            out.push(Token::Text(&rest[..pos]));
        }
        let after = &rest[pos + 1..];
        let (expr, next) = if let Some(inner) = after.strip_prefix('{') {
            let end = inner
                .find('}')
                .ok_or_else(|| format!("unclosed '${{' in {text:?}"))?;
            (&inner[..end], &inner[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
                .unwrap_or(after.len());
            let expr = after[..end].trim_end_matches('.');
            (expr, &after[expr.len()..])
        };
        let is_var = ["request.", "context.", "stageVariables.", "response."]
            .iter()
            .any(|p| expr.starts_with(p));
        if is_var {
            out.push(Token::Expr(expr));
            rest = next;
        } else {
            out.push(Token::Text("$"));
            rest = after;
        }
    }
    if !rest.is_empty() {
        out.push(Token::Text(rest));
    }
    Ok(out)
}

/// A name a value reads that something else must define.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `$stageVariables.NAME`: each stage serving the mapping must define it.
    StageVariable(String),
    /// `$request.path.NAME`: each route using the mapping must have `{NAME}`.
    PathVariable(String),
}

/// The stage and path variables `value` reads, for the checks at load (values that do
/// not parse are reported by `compile`).
pub fn references(value: &str) -> Vec<Reference> {
    tokens(value)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| match t {
            Token::Expr(e) => {
                if let Some(n) = e.strip_prefix("stageVariables.") {
                    Some(Reference::StageVariable(n.to_string()))
                } else {
                    e.strip_prefix("request.path.")
                        .map(|n| Reference::PathVariable(n.to_string()))
                }
            }
            Token::Text(_) => None,
        })
        .collect()
}

/// Every reference in `RequestParameters` (`key`) or `ResponseParameters` (`status.key`),
/// with the field it sits in. The values of `remove:` keys are never read.
pub fn mapping_references<'m>(
    entries: impl IntoIterator<Item = (String, &'m String, &'m String)>,
) -> Vec<(String, Reference)> {
    entries
        .into_iter()
        .filter(|(_, key, _)| !key.starts_with("remove:"))
        .flat_map(|(field, _, value)| {
            references(value)
                .into_iter()
                .map(move |r| (field.clone(), r))
        })
        .collect()
}

impl Template {
    /// Parses `text`. Stage variables are substituted now (they are fixed per stage; one
    /// a stage does not define is reported by the stage checks and reads as "").
    pub fn parse(
        text: &str,
        side: Side,
        stage_vars: &BTreeMap<String, String>,
    ) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        for token in tokens(text)? {
            match token {
                Token::Text(t) => lit.push_str(t),
                Token::Expr(expr) => {
                    if let Some(name) = expr.strip_prefix("stageVariables.") {
                        lit.push_str(stage_vars.get(name).map(String::as_str).unwrap_or(""));
                    } else {
                        if !lit.is_empty() {
                            parts.push(Part::Lit(std::mem::take(&mut lit)));
                        }
                        parts.push(Part::Var(parse_var(expr, side)?));
                    }
                }
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template { parts })
    }

    /// The literal value when the template has no variables.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }

    pub fn uses(&self, pred: impl Fn(&Var) -> bool) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(v) if pred(v)))
    }

    /// Appends the value to `out`. With `for_path`, path values stay percent-encoded so
    /// they can be placed back into a URL path unchanged.
    pub fn eval_into(&self, vars: &Vars<'_>, for_path: bool, out: &mut String) {
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v) => vars.append(v, for_path, out),
            }
        }
    }

    pub fn eval(&self, vars: &Vars<'_>, for_path: bool) -> String {
        let mut s = String::new();
        self.eval_into(vars, for_path, &mut s);
        s
    }
}

fn parse_var(expr: &str, side: Side) -> Result<Var, String> {
    let header = |name: &str| {
        HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a valid header name"))
    };
    if let Some(r) = expr.strip_prefix("request.") {
        if let Some(h) = r.strip_prefix("header.") {
            return Ok(Var::RequestHeader(header(h)?));
        }
        if let Some(q) = r.strip_prefix("querystring.") {
            return Ok(Var::RequestQuery(q.to_string()));
        }
        if r == "path" {
            return Ok(Var::RequestPath);
        }
        if let Some(p) = r.strip_prefix("path.") {
            return Ok(Var::RequestPathParam(p.to_string()));
        }
        if r == "body" || r.starts_with("body.") {
            return Err(
                "$request.body is not supported: apigate streams bodies instead of buffering them"
                    .into(),
            );
        }
        return Err(format!("unknown request source ${expr}; use $request.header.X, $request.querystring.x, $request.path or $request.path.NAME"));
    }
    if let Some(r) = expr.strip_prefix("response.") {
        if side == Side::Request {
            return Err(format!("${expr} is only available in ResponseParameters"));
        }
        if let Some(h) = r.strip_prefix("header.") {
            return Ok(Var::ResponseHeader(header(h)?));
        }
        return Err(format!(
            "unknown response source ${expr}; use $response.header.X"
        ));
    }
    if let Some(c) = expr.strip_prefix("context.") {
        if let Some(claim) = c.strip_prefix("authorizer.claims.") {
            return Ok(Var::Claim(claim.to_string()));
        }
        return Ok(match c {
            "requestId" | "extendedRequestId" => Var::RequestId,
            "stage" => Var::Stage,
            "routeKey" => Var::RouteKey,
            "identity.sourceIp" => Var::SourceIp,
            "httpMethod" => Var::HttpMethod,
            "path" => Var::ContextPath,
            "domainName" => Var::DomainName,
            _ => {
                return Err(format!(
                    "unknown context variable ${expr}; supported: {CONTEXT_VARS}"
                ))
            }
        });
    }
    Err(format!("unknown source ${expr}"))
}

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
    pub resp: Option<&'a ResponseHeader>,
}

impl Vars<'_> {
    fn append(&self, var: &Var, for_path: bool, out: &mut String) {
        let decoded = |s: &str, out: &mut String| {
            if for_path {
                out.push_str(s)
            } else {
                out.push_str(&percent_decode_str(s).decode_utf8_lossy())
            }
        };
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
            Var::RequestPath => decoded(self.path, out),
            Var::RequestPathParam(name) => {
                if let Some((_, v)) = self.params.iter().find(|(k, _)| &**k == name.as_str()) {
                    decoded(v, out)
                }
            }
            Var::RequestId => out.push_str(self.request_id),
            Var::Stage => out.push_str(self.stage),
            Var::RouteKey => out.push_str(self.route_key),
            Var::SourceIp => out.push_str(self.source_ip),
            Var::HttpMethod => out.push_str(self.req.method.as_str()),
            Var::ContextPath => decoded(self.full_path, out),
            Var::DomainName => {
                if let Some(h) = self
                    .req
                    .headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                {
                    out.push_str(h.split(':').next().unwrap_or(h));
                }
            }
            Var::Claim(name) => match self.claims.and_then(|c| c.get(name)) {
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
        }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Append,
    Overwrite,
    Remove,
}

/// A header name as configured (case kept for HTTP/1 backends) and validated.
#[derive(Debug, Clone)]
pub struct Header {
    /// As the operator wrote it (Pingora keeps header case); `Bytes` so that each request
    /// clones a reference count, not the text.
    pub spelled: bytes::Bytes,
    pub name: HeaderName,
}

#[derive(Debug, Clone)]
pub enum RequestOp {
    Header(Action, Header, Template),
    Query(Action, String, Template),
    Path(Template),
}

#[derive(Debug, Clone)]
pub enum ResponseOp {
    Header(Action, Header, Template),
    Status(Template),
}

/// Headers that mappings may not touch (AWS's reserved list, plus framing headers).
pub fn is_reserved_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    const EXACT: [&str; 17] = [
        "authorization",
        "connection",
        "content-encoding",
        "content-length",
        "content-location",
        "forwarded",
        "keep-alive",
        "origin",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "via",
        "host",
    ];
    EXACT.contains(&n.as_str())
        || [
            "access-control-",
            "apigw-",
            "x-amz-",
            "x-amzn-",
            "x-forwarded-",
        ]
        .iter()
        .any(|p| n.starts_with(p))
}

fn parse_key(key: &str) -> Result<(Action, &str), String> {
    let (action, target) = key.split_once(':').ok_or(
        "expected append|overwrite|remove:header.NAME, ...:querystring.NAME or overwrite:path",
    )?;
    let action = match action {
        "append" => Action::Append,
        "overwrite" => Action::Overwrite,
        "remove" => Action::Remove,
        other => {
            return Err(format!(
                "unknown action {other:?}; use append, overwrite or remove"
            ))
        }
    };
    Ok((action, target))
}

/// The config error for mapping a reserved header, if `key` does: the gateway or HTTP
/// itself owns these, so the fix is another name.
fn reserved_header_error(file: &str, at: &str, key: &str) -> Option<ConfigError> {
    let name = key.split_once(':')?.1.strip_prefix("header.")?;
    if !is_reserved_header(name) {
        return None;
    }
    let base = name
        .strip_prefix("x-")
        .or_else(|| name.strip_prefix("X-"))
        .unwrap_or(name);
    Some(ConfigError::new(
        file,
        at,
        format!("header {name:?} is reserved: the gateway or HTTP itself sets it"),
        format!("remove it, or map to another header name such as X-App-{base}"),
    ))
}

fn header_target(target: &str) -> Result<Option<Header>, String> {
    let Some(name) = target.strip_prefix("header.") else {
        return Ok(None);
    };
    if is_reserved_header(name) {
        return Err(format!("header {name:?} is reserved and cannot be mapped"));
    }
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    Ok(Some(Header {
        spelled: bytes::Bytes::copy_from_slice(name.as_bytes()),
        name: parsed,
    }))
}

/// Compiles one mapping object (`"action:target": "value"` entries): reserved headers and
/// malformed keys or values are reported at `{field}.{key}`; `make` turns the parsed action,
/// target and value into the side's operation, or says why the target is wrong.
fn compile_entries<Op>(
    file: &str,
    field: &str,
    entries: &BTreeMap<String, String>,
    side: Side,
    stage_vars: &BTreeMap<String, String>,
    errors: &mut ConfigErrors,
    make: impl Fn(Action, &str, Template) -> Result<Op, String>,
) -> Vec<Op> {
    let mut ops = Vec::new();
    for (key, value) in entries {
        let at = format!("{field}.{key}");
        if let Some(e) = reserved_header_error(file, &at, key) {
            errors.push(e);
            continue;
        }
        let op = parse_key(key).and_then(|(action, target)| {
            let template = if action == Action::Remove {
                Template::default()
            } else {
                Template::parse(value, side, stage_vars)?
            };
            make(action, target, template)
        });
        match op {
            Ok(op) => ops.push(op),
            Err(e) => errors.push(ConfigError::new(
                file,
                at,
                e,
                "see GATEWAY.md section 5 for the mapping syntax",
            )),
        }
    }
    ops
}

/// Compiled `RequestParameters`.
#[derive(Debug, Clone, Default)]
pub struct RequestMapping {
    pub ops: Vec<RequestOp>,
}

impl RequestMapping {
    pub fn compile(
        file: &str,
        field: &str,
        map: &BTreeMap<String, String>,
        stage_vars: &BTreeMap<String, String>,
        errors: &mut ConfigErrors,
    ) -> RequestMapping {
        let ops = compile_entries(
            file,
            field,
            map,
            Side::Request,
            stage_vars,
            errors,
            |action, target, template| {
                if let Some(h) = header_target(target)? {
                    return Ok(RequestOp::Header(action, h, template));
                }
                if let Some(q) = target.strip_prefix("querystring.") {
                    if q.is_empty() {
                        return Err("querystring needs a name".into());
                    }
                    return Ok(RequestOp::Query(action, q.to_string(), template));
                }
                if target == "path" {
                    if action != Action::Overwrite {
                        return Err("the path can only be overwritten (overwrite:path)".into());
                    }
                    return Ok(RequestOp::Path(template));
                }
                Err(format!(
                    "unknown target {target:?}; use header.NAME, querystring.NAME or path"
                ))
            },
        );
        RequestMapping { ops }
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn touches_query(&self) -> bool {
        self.ops.iter().any(|o| matches!(o, RequestOp::Query(..)))
    }
}

/// Compiled `ResponseParameters`, keyed by the backend's status code.
#[derive(Debug, Clone, Default)]
pub struct ResponseMapping {
    by_status: Vec<(u16, Vec<ResponseOp>)>,
}

impl ResponseMapping {
    pub fn compile(
        file: &str,
        field: &str,
        map: &BTreeMap<String, BTreeMap<String, String>>,
        stage_vars: &BTreeMap<String, String>,
        errors: &mut ConfigErrors,
    ) -> ResponseMapping {
        let mut by_status = Vec::new();
        for (status, entries) in map {
            let code = match status.parse::<u16>() {
                Ok(c) if (200..=599).contains(&c) => c,
                _ => {
                    errors.push(ConfigError::new(
                        file,
                        format!("{field}.{status}"),
                        "response mappings are keyed by the backend status code",
                        "use a status code from \"200\" to \"599\"",
                    ));
                    continue;
                }
            };
            let ops = compile_entries(
                file,
                &format!("{field}.{status}"),
                entries,
                Side::Response,
                stage_vars,
                errors,
                |action, target, template| {
                    if target == "statuscode" {
                        if action != Action::Overwrite {
                            return Err(
                                "the status code can only be overwritten (overwrite:statuscode)"
                                    .into(),
                            );
                        }
                        if let Some(lit) = template.as_literal() {
                            match lit.parse::<u16>() {
                                Ok(c) if VALID_STATUS.contains(&c) => {}
                                _ => {
                                    return Err(format!(
                                        "{lit:?} is not a final status code (200-599)"
                                    ))
                                }
                            }
                        }
                        return Ok(ResponseOp::Status(template));
                    }
                    if let Some(h) = header_target(target)? {
                        return Ok(ResponseOp::Header(action, h, template));
                    }
                    Err(format!(
                        "unknown target {target:?}; use header.NAME or statuscode"
                    ))
                },
            );
            by_status.push((code, ops));
        }
        ResponseMapping { by_status }
    }

    pub fn for_status(&self, status: u16) -> &[ResponseOp] {
        self.by_status
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, ops)| ops.as_slice())
            .unwrap_or(&[])
    }

    pub fn is_empty(&self) -> bool {
        self.by_status.is_empty()
    }
}

/// Request and response headers receive mapped values the same way.
pub trait HeaderSink {
    fn set(&mut self, name: bytes::Bytes, value: http::HeaderValue) -> pingora_error::Result<()>;
    fn add(&mut self, name: bytes::Bytes, value: http::HeaderValue) -> pingora_error::Result<()>;
    fn unset(&mut self, name: &HeaderName);
}

/// Statuses `overwrite:statuscode` may produce: a 1xx would not end the exchange.
pub const VALID_STATUS: std::ops::RangeInclusive<u16> = 200..=599;

macro_rules! header_sink {
    ($t:ty) => {
        impl HeaderSink for $t {
            fn set(
                &mut self,
                name: bytes::Bytes,
                value: http::HeaderValue,
            ) -> pingora_error::Result<()> {
                self.insert_header(name, value)
            }
            fn add(
                &mut self,
                name: bytes::Bytes,
                value: http::HeaderValue,
            ) -> pingora_error::Result<()> {
                self.append_header(name, value).map(|_| ())
            }
            fn unset(&mut self, name: &HeaderName) {
                self.remove_header(name);
            }
        }
    };
}
header_sink!(RequestHeader);
header_sink!(ResponseHeader);

/// Applies one header operation. An `append` whose value comes out empty (an absent source
/// header or claim) adds nothing. An `overwrite` always replaces: when its value is empty or
/// not a valid header value the header is removed, so a client can never slip its own
/// `X-User` past a mapping meant to set it from a claim the token lacks.
pub fn apply_header(
    sink: &mut impl HeaderSink,
    action: Action,
    header: &Header,
    value: &str,
) -> pingora_error::Result<()> {
    let valid = match value {
        "" => None,
        v => http::HeaderValue::from_str(v).ok(),
    };
    match (action, valid) {
        (Action::Remove, _) | (Action::Overwrite, None) => {
            sink.unset(&header.name);
            Ok(())
        }
        (Action::Overwrite, Some(v)) => sink.set(header.spelled.clone(), v),
        (Action::Append, Some(v)) => sink.add(header.spelled.clone(), v),
        (Action::Append, None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars_for<'a>(req: &'a RequestHeader, params: &'a [(Box<str>, Box<str>)]) -> Vars<'a> {
        Vars {
            req,
            path: "/a/b%20c",
            full_path: "/v0/a/b%20c",
            params,
            request_id: "rid",
            stage: "v0",
            route_key: "GET /a/{proxy+}",
            source_ip: "127.0.0.1",
            claims: None,
            resp: None,
        }
    }

    fn no_stage_vars() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    #[test]
    fn parses_every_value_form() {
        let sv: BTreeMap<String, String> = [("env".to_string(), "prod".to_string())].into();
        let t = Template::parse(
            "/v2/${request.path.proxy}-$stageVariables.env",
            Side::Request,
            &sv,
        )
        .unwrap();
        let mut req = RequestHeader::build("GET", b"/a/b%20c?x=1&x=2&y=%41", None).unwrap();
        req.append_header("h1", "one").unwrap();
        req.append_header("h1", "two").unwrap();
        let params = [("proxy".into(), "b%20c".into())];
        let v = vars_for(&req, &params);
        assert_eq!(t.eval(&v, true), "/v2/b%20c-prod");
        assert_eq!(t.eval(&v, false), "/v2/b c-prod");
        let t = Template::parse("$request.header.H1", Side::Request, &sv).unwrap();
        assert_eq!(t.eval(&v, false), "one,two");
        let t = Template::parse(
            "$request.querystring.x;${request.querystring.y}",
            Side::Request,
            &sv,
        )
        .unwrap();
        assert_eq!(t.eval(&v, false), "1,2;A");
        let t = Template::parse(
            "${context.requestId} $context.stage $context.routeKey $context.identity.sourceIp",
            Side::Request,
            &sv,
        )
        .unwrap();
        assert_eq!(t.eval(&v, false), "rid v0 GET /a/{proxy+} 127.0.0.1");
        let t = Template::parse("cost: $5", Side::Request, &sv).unwrap();
        assert_eq!(t.as_literal(), Some("cost: $5"));
    }

    #[test]
    fn claims_and_response_headers() {
        let req = RequestHeader::build("GET", b"/", None).unwrap();
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("x-up", "u").unwrap();
        let claims: Claims =
            serde_json::from_str(r#"{"sub":"alice","groups":["a","b"],"n":3}"#).unwrap();
        let mut v = vars_for(&req, &[]);
        v.claims = Some(&claims);
        v.resp = Some(&resp);
        let t = Template::parse("$context.authorizer.claims.sub/${context.authorizer.claims.groups}/$context.authorizer.claims.n", Side::Request, &no_stage_vars()).unwrap();
        assert_eq!(t.eval(&v, false), "alice/a,b/3");
        let t = Template::parse("$response.header.x-up", Side::Response, &no_stage_vars()).unwrap();
        assert_eq!(t.eval(&v, false), "u");
    }

    #[test]
    fn rejects_bad_expressions() {
        let sv = no_stage_vars();
        assert!(Template::parse("$response.header.x", Side::Request, &sv).is_err());
        assert!(Template::parse("$context.nope", Side::Request, &sv).is_err());
        assert!(Template::parse("${request.header.x", Side::Request, &sv).is_err());
        assert!(Template::parse("$request.body.a", Side::Request, &sv).is_err());
    }

    #[test]
    fn reserved_headers_and_bad_keys_are_config_errors() {
        let mut errors = ConfigErrors::default();
        let map: BTreeMap<String, String> = [
            ("overwrite:header.Authorization", "x"),
            ("append:header.X-Forwarded-For", "x"),
            ("overwrite:header.x-amzn-trace", "x"),
            ("append:path", "/x"),
            ("overwrite:header.Api-Version", "v1"),
            ("bogus", "x"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let m = RequestMapping::compile(
            "integrations/i.json",
            "RequestParameters",
            &map,
            &no_stage_vars(),
            &mut errors,
        );
        assert_eq!(m.ops.len(), 1);
        assert_eq!(errors.0.len(), 5, "{errors}");
        assert!(errors
            .0
            .iter()
            .all(|e| e.file == "integrations/i.json" && e.field.starts_with("RequestParameters.")));
    }

    #[test]
    fn reserved_header_errors_say_what_to_do() {
        let mut errors = ConfigErrors::default();
        let map: BTreeMap<String, String> = [(
            "overwrite:header.X-Forwarded-For".to_string(),
            "x".to_string(),
        )]
        .into();
        RequestMapping::compile(
            "f",
            "RequestParameters",
            &map,
            &no_stage_vars(),
            &mut errors,
        );
        let e = &errors.0[0];
        assert!(e.problem.contains("reserved"), "{e}");
        assert!(e.fix.contains("X-App-Forwarded-For"), "{e}");
        let mut errors = ConfigErrors::default();
        let map: BTreeMap<String, BTreeMap<String, String>> = [(
            "200".to_string(),
            [("append:header.Via".to_string(), "x".to_string())].into(),
        )]
        .into();
        ResponseMapping::compile(
            "f",
            "ResponseParameters",
            &map,
            &no_stage_vars(),
            &mut errors,
        );
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!(
            errors.0[0].field,
            "ResponseParameters.200.append:header.Via"
        );
        assert!(errors.0[0].fix.contains("X-App-Via"), "{errors}");
    }

    #[test]
    fn references_name_stage_and_path_variables() {
        assert_eq!(
            references(
                "a-$stageVariables.env/${request.path.id}/$request.path-${context.stage} $5"
            ),
            vec![
                Reference::StageVariable("env".into()),
                Reference::PathVariable("id".into()),
            ]
        );
        let map: BTreeMap<String, String> = [
            (
                "overwrite:header.A".to_string(),
                "$request.path.x".to_string(),
            ),
            ("remove:header.B".to_string(), "$request.path.y".to_string()),
        ]
        .into();
        let refs = mapping_references(map.iter().map(|(k, v)| (k.clone(), k, v)));
        assert_eq!(
            refs,
            vec![(
                "overwrite:header.A".to_string(),
                Reference::PathVariable("x".into())
            )]
        );
    }

    #[test]
    fn response_mapping_keys_must_be_status_codes() {
        let mut errors = ConfigErrors::default();
        let map: BTreeMap<String, BTreeMap<String, String>> = [
            (
                "500".to_string(),
                [("overwrite:statuscode".to_string(), "403".to_string())].into(),
            ),
            ("600".to_string(), BTreeMap::new()),
            ("abc".to_string(), BTreeMap::new()),
            (
                "404".to_string(),
                [("overwrite:statuscode".to_string(), "99".to_string())].into(),
            ),
        ]
        .into();
        let m = ResponseMapping::compile(
            "f",
            "ResponseParameters",
            &map,
            &no_stage_vars(),
            &mut errors,
        );
        assert_eq!(errors.0.len(), 3, "{errors}");
        assert_eq!(m.for_status(500).len(), 1);
        assert!(m.for_status(200).is_empty());
    }
}
