//! The events an AWS_PROXY integration sends, payload formats 1.0 and 2.0, field by field
//! as AWS's guide "Create AWS Lambda proxy integrations for HTTP APIs" shows them.

use crate::lambda::spec::ACCOUNT;
use base64::Engine;
use pingora_http::RequestHeader;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// The id apigate reports as `apiId` (an AWS api id is 10 lowercase characters).
pub const API_ID: &str = "apigatelcl";

/// What an event is built from.
pub struct EventInput<'a> {
    pub req: &'a RequestHeader,
    pub body: &'a [u8],
    pub route_key: &'a str,
    /// Path variables, still percent-encoded.
    pub params: &'a [(Box<str>, Box<str>)],
    pub stage: &'a str,
    pub stage_vars: &'a BTreeMap<String, String>,
    pub request_id: &'a str,
    pub source_ip: &'a str,
    /// The verified JWT's claims (`policy::jwt::Claims`; named by its type here so that
    /// integrations, which policies build events with, import nothing from `policy`).
    pub claims: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// A Lambda authorizer's context (`requestContext.authorizer.lambda`).
    pub lambda_context: Option<&'a Map<String, Value>>,
    pub time: SystemTime,
}

/// Content types AWS passes as text; every other body is base64-encoded
/// (`isBase64Encoded: true`).
pub(super) fn is_text(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let ct = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    ct.starts_with("text/")
        || ct == "application/json"
        || ct.ends_with("+json")
        || ct == "application/xml"
        || ct.ends_with("+xml")
        || ct == "application/javascript"
        || ct == "application/x-www-form-urlencoded"
}

fn body_fields(input: &EventInput<'_>) -> (Value, bool) {
    if input.body.is_empty() {
        return (Value::Null, false);
    }
    let ct = input
        .req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    match std::str::from_utf8(input.body) {
        Ok(text) if is_text(ct) => (Value::String(text.to_string()), false),
        _ => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(input.body)),
            true,
        ),
    }
}

pub(super) fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Query parameters in order, names and values decoded (`+` is a space, as AWS reads it).
pub(super) fn query_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(&k.replace('+', " ")), decode(&v.replace('+', " ")))
        })
        .collect()
}

pub(super) fn header_text(v: &http::HeaderValue) -> String {
    String::from_utf8_lossy(v.as_bytes()).into_owned()
}

fn path_parameters(input: &EventInput<'_>) -> Value {
    if input.params.is_empty() {
        return Value::Null;
    }
    let m: Map<String, Value> = input
        .params
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(decode(v))))
        .collect();
    Value::Object(m)
}

fn stage_variables(input: &EventInput<'_>) -> Value {
    if input.stage_vars.is_empty() {
        return Value::Null;
    }
    Value::Object(
        input
            .stage_vars
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// A claim as AWS puts it in the event: always a string (arrays as `[a b]`).
fn claim_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(claim_text).collect::<Vec<_>>().join(" ")
        ),
        other => other.to_string(),
    }
}

pub(super) fn authorizer(input: &EventInput<'_>) -> Option<Value> {
    if let Some(claims) = input.claims {
        let text: Map<String, Value> = claims
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(claim_text(v))))
            .collect();
        let scopes = claims
            .get("scope")
            .and_then(Value::as_str)
            .map(|s| {
                s.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .or_else(|| {
                claims.get("scp").and_then(Value::as_array).map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
            });
        return Some(json!({"jwt": {"claims": text, "scopes": scopes}}));
    }
    input
        .lambda_context
        .map(|c| json!({"lambda": Value::Object(c.clone())}))
}

pub(super) fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `12/Mar/2020:19:03:58 +0000`, as `requestContext.time` reads.
pub(super) fn clf(t: SystemTime) -> String {
    with_clf(t, str::to_string)
}

/// `f` of `t`'s `clf` text, formatted once per second per thread: events in the same second
/// share it (formatting it cost about as much as the rest of `requestContext`).
pub(super) fn with_clf<R>(t: SystemTime, f: impl FnOnce(&str) -> R) -> R {
    thread_local! {
        static LAST: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((0, String::new())) };
    }
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs || last.1.is_empty() {
            last.1.clear();
            crate::accesslog::clf_time(t, &mut last.1);
            last.0 = secs;
        }
        f(&last.1)
    })
}

pub(super) fn host(req: &RequestHeader) -> String {
    req.headers
        .get(http::header::HOST)
        .map(header_text)
        .unwrap_or_else(|| "localhost".into())
}

pub(super) fn protocol(req: &RequestHeader) -> &'static str {
    match req.version {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    }
}

pub(super) fn domain_prefix(host: &str) -> String {
    let h = host.split(':').next().unwrap_or(host);
    h.split('.').next().unwrap_or(h).to_string()
}

/// Payload format 2.0: header names lowercase, repeated headers and query parameters
/// comma-joined, `Cookie` headers as `cookies`.
pub fn v2(input: &EventInput<'_>) -> Value {
    let req = input.req;
    let mut headers: Map<String, Value> = Map::new();
    let mut cookies: Vec<Value> = Vec::new();
    for (name, value) in req.headers.iter() {
        let v = header_text(value);
        if name == http::header::COOKIE {
            cookies.extend(
                v.split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(|c| Value::String(c.to_string())),
            );
            continue;
        }
        match headers.get_mut(name.as_str()) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(&v);
            }
            _ => {
                headers.insert(name.as_str().to_string(), Value::String(v));
            }
        }
    }
    let raw_query = req.uri.query().unwrap_or("");
    let mut query: Map<String, Value> = Map::new();
    for (k, v) in query_pairs(raw_query) {
        match query.get_mut(&k) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(&v);
            }
            _ => {
                query.insert(k, Value::String(v));
            }
        }
    }
    let (body, b64) = body_fields(input);
    let host = host(req);
    let user_agent = req
        .headers
        .get(http::header::USER_AGENT)
        .map(header_text)
        .unwrap_or_default();
    let mut context = json!({
        "accountId": ACCOUNT,
        "apiId": API_ID,
        "domainName": host,
        "domainPrefix": domain_prefix(&host),
        "http": {
            "method": req.method.as_str(),
            "path": req.uri.path(),
            "protocol": protocol(req),
            "sourceIp": input.source_ip,
            "userAgent": user_agent,
        },
        "requestId": input.request_id,
        "routeKey": input.route_key,
        "stage": input.stage,
        "time": clf(input.time),
        "timeEpoch": epoch_ms(input.time),
    });
    if let (Some(a), Some(c)) = (authorizer(input), context.as_object_mut()) {
        c.insert("authorizer".into(), a);
    }
    let mut event = Map::new();
    event.insert("version".into(), "2.0".into());
    event.insert("routeKey".into(), input.route_key.into());
    event.insert("rawPath".into(), req.uri.path().into());
    event.insert("rawQueryString".into(), raw_query.into());
    if !cookies.is_empty() {
        event.insert("cookies".into(), Value::Array(cookies));
    }
    event.insert("headers".into(), Value::Object(headers));
    if !query.is_empty() {
        event.insert("queryStringParameters".into(), Value::Object(query));
    }
    event.insert("requestContext".into(), context);
    if !body.is_null() {
        event.insert("body".into(), body);
    }
    let params = path_parameters(input);
    if !params.is_null() {
        event.insert("pathParameters".into(), params);
    }
    event.insert("isBase64Encoded".into(), b64.into());
    let vars = stage_variables(input);
    if !vars.is_null() {
        event.insert("stageVariables".into(), vars);
    }
    Value::Object(event)
}

/// Payload format 1.0 (REST API's proxy event): `headers` holds each name's last value,
/// `queryStringParameters` its first (as the guide's example shows), the `multiValue*`
/// maps all of them.
pub fn v1(input: &EventInput<'_>) -> Value {
    let req = input.req;
    let mut headers: Map<String, Value> = Map::new();
    let mut multi_headers: Map<String, Value> = Map::new();
    for (name, value) in req.headers.iter() {
        let v = header_text(value);
        // 1.0 keeps the client's spelling where HTTP/1.1 gives one; Pingora keeps it.
        let n = name.as_str().to_string();
        headers.insert(n.clone(), Value::String(v.clone()));
        match multi_headers.get_mut(&n) {
            Some(Value::Array(a)) => a.push(Value::String(v)),
            _ => {
                multi_headers.insert(n, json!([v]));
            }
        }
    }
    let mut query: Map<String, Value> = Map::new();
    let mut multi_query: Map<String, Value> = Map::new();
    for (k, v) in query_pairs(req.uri.query().unwrap_or("")) {
        // The guide's 1.0 example keeps a repeated parameter's first value (and a
        // repeated header's last).
        query
            .entry(k.clone())
            .or_insert_with(|| Value::String(v.clone()));
        match multi_query.get_mut(&k) {
            Some(Value::Array(a)) => a.push(Value::String(v)),
            _ => {
                multi_query.insert(k, json!([v]));
            }
        }
    }
    let (body, b64) = body_fields(input);
    let host = host(req);
    let resource = match input.route_key.split_once(' ') {
        Some((_, path)) => path.to_string(),
        None => input.route_key.to_string(),
    };
    let user_agent = req.headers.get(http::header::USER_AGENT).map(header_text);
    let obj_or_null = |m: Map<String, Value>| {
        if m.is_empty() {
            Value::Null
        } else {
            Value::Object(m)
        }
    };
    let mut context = json!({
        "accountId": ACCOUNT,
        "apiId": API_ID,
        "domainName": host,
        "domainPrefix": domain_prefix(&host),
        "extendedRequestId": input.request_id,
        "httpMethod": req.method.as_str(),
        "identity": {
            "accessKey": null,
            "accountId": null,
            "caller": null,
            "cognitoAuthenticationProvider": null,
            "cognitoAuthenticationType": null,
            "cognitoIdentityId": null,
            "cognitoIdentityPoolId": null,
            "principalOrgId": null,
            "sourceIp": input.source_ip,
            "user": null,
            "userAgent": user_agent,
            "userArn": null,
        },
        "path": req.uri.path(),
        "protocol": protocol(req),
        "requestId": input.request_id,
        "requestTime": clf(input.time),
        "requestTimeEpoch": epoch_ms(input.time),
        "resourceId": input.route_key,
        "resourcePath": resource,
        "stage": input.stage,
    });
    if let Some(c) = context.as_object_mut() {
        let auth = match (input.claims, input.lambda_context) {
            (Some(claims), _) => json!({"claims": Value::Object(claims.clone()), "scopes": null}),
            (None, Some(l)) => Value::Object(l.clone()),
            // As the guide's example shows a request without an authorizer.
            _ => json!({"claims": null, "scopes": null}),
        };
        c.insert("authorizer".into(), auth);
    }
    json!({
        "version": "1.0",
        "resource": resource,
        "path": req.uri.path(),
        "httpMethod": req.method.as_str(),
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": obj_or_null(query),
        "multiValueQueryStringParameters": obj_or_null(multi_query),
        "requestContext": context,
        "pathParameters": path_parameters(input),
        "stageVariables": stage_variables(input),
        "body": body,
        "isBase64Encoded": b64,
    })
}
