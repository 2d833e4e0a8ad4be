//! The events of payload formats 2.0 and 1.0 written straight to JSON text: the same bytes
//! as serializing `event::v2`'s (`v1`'s) `Value` (keys in the sorted order serde_json's map
//! gives), without building that tree of maps and strings first. Every AWS_PROXY invocation
//! builds one; the `Value` forms stay for Lambda authorizers and as the test oracle.

use super::event::{self, EventInput};
use base64::Engine;
use std::borrow::Cow;

/// JSON text of one string, escaped as serde_json escapes it.
fn string(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `"key":`, after a comma unless it is the object's first key.
fn key(out: &mut Vec<u8>, first: &mut bool, k: &str) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    string(out, k);
    out.push(b':');
}

/// One `"key":"value"` member.
fn member(out: &mut Vec<u8>, first: &mut bool, k: &str, v: &str) {
    key(out, first, k);
    string(out, v);
}

fn text(v: &http::HeaderValue) -> Cow<'_, str> {
    String::from_utf8_lossy(v.as_bytes())
}

/// An object from `(name, value)` pairs sorted by name, a repeated name's values joined
/// with `,` in order (the 2.0 rule for headers and query parameters).
fn joined_object<'a>(out: &mut Vec<u8>, pairs: &[(&'a str, Cow<'a, str>)]) {
    out.push(b'{');
    let mut first = true;
    let mut i = 0;
    while i < pairs.len() {
        let name = pairs[i].0;
        let run = pairs[i..].iter().take_while(|(n, _)| *n == name).count();
        key(out, &mut first, name);
        if run == 1 {
            string(out, &pairs[i].1);
        } else {
            let values: Vec<&str> = pairs[i..i + run].iter().map(|(_, v)| &**v).collect();
            string(out, &values.join(","));
        }
        i += run;
    }
    out.push(b'}');
}

/// The event for `input`, payload format 2.0 (see `event::v2` for the rules).
pub fn v2(input: &EventInput<'_>) -> Vec<u8> {
    let req = input.req;
    let mut out = Vec::with_capacity(1024 + input.body.len());
    let mut headers: Vec<(&str, Cow<'_, str>)> = Vec::with_capacity(req.headers.len());
    let mut cookies: Vec<Cow<'_, str>> = Vec::new();
    for (name, value) in req.headers.iter() {
        if name == http::header::COOKIE {
            match text(value) {
                Cow::Borrowed(v) => cookies.extend(v.split(';').map(|c| Cow::Borrowed(c.trim()))),
                // Not UTF-8: its lossy text, split the same way.
                Cow::Owned(v) => {
                    cookies.extend(v.split(';').map(|c| Cow::Owned(c.trim().to_string())))
                }
            }
            continue;
        }
        headers.push((name.as_str(), text(value)));
    }
    cookies.retain(|c| !c.is_empty());
    headers.sort_by(|a, b| a.0.cmp(b.0));
    let raw_query = req.uri.query().unwrap_or("");
    let decoded = event::query_pairs(raw_query);
    let mut query: Vec<(&str, Cow<'_, str>)> = decoded
        .iter()
        .map(|(k, v)| (k.as_str(), Cow::Borrowed(v.as_str())))
        .collect();
    query.sort_by(|a, b| a.0.cmp(b.0));

    out.push(b'{');
    let mut first = true;
    let ct = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mut b64 = false;
    if !input.body.is_empty() {
        key(&mut out, &mut first, "body");
        match std::str::from_utf8(input.body) {
            Ok(t) if event::is_text(ct) => string(&mut out, t),
            _ => {
                b64 = true;
                string(
                    &mut out,
                    &base64::engine::general_purpose::STANDARD.encode(input.body),
                );
            }
        }
    }
    if !cookies.is_empty() {
        key(&mut out, &mut first, "cookies");
        out.push(b'[');
        for (i, c) in cookies.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(&mut out, c);
        }
        out.push(b']');
    }
    key(&mut out, &mut first, "headers");
    joined_object(&mut out, &headers);
    key(&mut out, &mut first, "isBase64Encoded");
    out.extend_from_slice(if b64 { b"true" } else { b"false" });
    if !input.params.is_empty() {
        key(&mut out, &mut first, "pathParameters");
        path_parameters(&mut out, input.params);
    }
    if !query.is_empty() {
        key(&mut out, &mut first, "queryStringParameters");
        joined_object(&mut out, &query);
    }
    member(&mut out, &mut first, "rawPath", req.uri.path());
    member(&mut out, &mut first, "rawQueryString", raw_query);
    key(&mut out, &mut first, "requestContext");
    request_context(&mut out, input);
    member(&mut out, &mut first, "routeKey", input.route_key);
    if !input.stage_vars.is_empty() {
        key(&mut out, &mut first, "stageVariables");
        out.push(b'{');
        let mut f = true;
        for (k, v) in input.stage_vars {
            member(&mut out, &mut f, k, v);
        }
        out.push(b'}');
    }
    member(&mut out, &mut first, "version", "2.0");
    out.push(b'}');
    out
}

/// Path variables decoded; a name given twice keeps its last value (as a map insert does).
fn path_parameters(out: &mut Vec<u8>, params: &[(Box<str>, Box<str>)]) {
    let mut sorted: Vec<(&str, &str)> = params.iter().map(|(k, v)| (&**k, &**v)).collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    let mut first = true;
    for (i, (k, v)) in sorted.iter().enumerate() {
        if sorted.get(i + 1).is_some_and(|n| n.0 == *k) {
            continue;
        }
        member(out, &mut first, k, &event::decode(v));
    }
    out.push(b'}');
}

fn request_context(out: &mut Vec<u8>, input: &EventInput<'_>) {
    let req = input.req;
    let host = event::host(req);
    out.push(b'{');
    let mut first = true;
    member(out, &mut first, "accountId", crate::lambda::spec::ACCOUNT);
    member(out, &mut first, "apiId", event::API_ID);
    if let Some(a) = event::authorizer(input) {
        key(out, &mut first, "authorizer");
        let _ = serde_json::to_writer(&mut *out, &a);
    }
    member(out, &mut first, "domainName", &host);
    member(
        out,
        &mut first,
        "domainPrefix",
        &event::domain_prefix(&host),
    );
    key(out, &mut first, "http");
    out.push(b'{');
    let mut f = true;
    member(out, &mut f, "method", req.method.as_str());
    member(out, &mut f, "path", req.uri.path());
    member(out, &mut f, "protocol", event::protocol(req));
    member(out, &mut f, "sourceIp", input.source_ip);
    let agent = req.headers.get(http::header::USER_AGENT).map(text);
    member(out, &mut f, "userAgent", agent.as_deref().unwrap_or(""));
    out.push(b'}');
    member(out, &mut first, "requestId", input.request_id);
    member(out, &mut first, "routeKey", input.route_key);
    member(out, &mut first, "stage", input.stage);
    event::with_clf(input.time, |t| member(out, &mut first, "time", t));
    key(out, &mut first, "timeEpoch");
    let _ = serde_json::to_writer(&mut *out, &event::epoch_ms(input.time));
    out.push(b'}');
}

/// The event for `input`, payload format 1.0 (see `event::v1` for the rules).
pub fn v1(input: &EventInput<'_>) -> Vec<u8> {
    let req = input.req;
    let mut out = Vec::with_capacity(1536 + input.body.len());
    let mut headers: Vec<(&str, Cow<'_, str>)> = (req.headers.iter())
        .map(|(n, v)| (n.as_str(), text(v)))
        .collect();
    headers.sort_by(|a, b| a.0.cmp(b.0));
    let decoded = event::query_pairs(req.uri.query().unwrap_or(""));
    let mut query: Vec<(&str, Cow<'_, str>)> = decoded
        .iter()
        .map(|(k, v)| (k.as_str(), Cow::Borrowed(v.as_str())))
        .collect();
    query.sort_by(|a, b| a.0.cmp(b.0));
    let resource = match input.route_key.split_once(' ') {
        Some((_, path)) => path,
        None => input.route_key,
    };
    out.push(b'{');
    let mut first = true;
    key(&mut out, &mut first, "body");
    let b64 = body(&mut out, input);
    key(&mut out, &mut first, "headers");
    // A repeated header's last value, a repeated parameter's first (the guide's example).
    single_object(&mut out, &headers, true);
    member(&mut out, &mut first, "httpMethod", req.method.as_str());
    key(&mut out, &mut first, "isBase64Encoded");
    out.extend_from_slice(if b64 { b"true" } else { b"false" });
    key(&mut out, &mut first, "multiValueHeaders");
    multi_object(&mut out, &headers);
    key(&mut out, &mut first, "multiValueQueryStringParameters");
    if query.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        multi_object(&mut out, &query);
    }
    member(&mut out, &mut first, "path", req.uri.path());
    key(&mut out, &mut first, "pathParameters");
    if input.params.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        path_parameters(&mut out, input.params);
    }
    key(&mut out, &mut first, "queryStringParameters");
    if query.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        single_object(&mut out, &query, false);
    }
    key(&mut out, &mut first, "requestContext");
    request_context_v1(&mut out, input, resource);
    member(&mut out, &mut first, "resource", resource);
    key(&mut out, &mut first, "stageVariables");
    if input.stage_vars.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        out.push(b'{');
        let mut f = true;
        for (k, v) in input.stage_vars {
            member(&mut out, &mut f, k, v);
        }
        out.push(b'}');
    }
    member(&mut out, &mut first, "version", "1.0");
    out.push(b'}');
    out
}

/// `body` as 1.0 writes it (`null` when empty); whether it is base64.
fn body(out: &mut Vec<u8>, input: &EventInput<'_>) -> bool {
    if input.body.is_empty() {
        out.extend_from_slice(b"null");
        return false;
    }
    let ct = (input.req.headers.get(http::header::CONTENT_TYPE)).and_then(|v| v.to_str().ok());
    match std::str::from_utf8(input.body) {
        Ok(t) if event::is_text(ct) => {
            string(out, t);
            false
        }
        _ => {
            string(
                out,
                &base64::engine::general_purpose::STANDARD.encode(input.body),
            );
            true
        }
    }
}

/// One value per name from pairs sorted by name: the last of a run, or the first.
fn single_object(out: &mut Vec<u8>, pairs: &[(&str, Cow<'_, str>)], last: bool) {
    out.push(b'{');
    let mut first = true;
    for (i, (k, v)) in pairs.iter().enumerate() {
        let repeated = if last {
            pairs.get(i + 1).is_some_and(|n| n.0 == *k)
        } else {
            i > 0 && pairs[i - 1].0 == *k
        };
        if !repeated {
            member(out, &mut first, k, v);
        }
    }
    out.push(b'}');
}

/// Every value per name, as arrays, from pairs sorted by name.
fn multi_object(out: &mut Vec<u8>, pairs: &[(&str, Cow<'_, str>)]) {
    out.push(b'{');
    let mut first = true;
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 && pairs[i - 1].0 == *k {
            out.push(b',');
        } else {
            if i > 0 {
                out.push(b']');
            }
            key(out, &mut first, k);
            out.push(b'[');
        }
        string(out, v);
    }
    if !pairs.is_empty() {
        out.push(b']');
    }
    out.push(b'}');
}

fn request_context_v1(out: &mut Vec<u8>, input: &EventInput<'_>, resource: &str) {
    let req = input.req;
    let host = event::host(req);
    out.push(b'{');
    let mut first = true;
    member(out, &mut first, "accountId", crate::lambda::spec::ACCOUNT);
    member(out, &mut first, "apiId", event::API_ID);
    key(out, &mut first, "authorizer");
    match (input.claims, input.lambda_context) {
        (Some(claims), _) => {
            out.extend_from_slice(b"{\"claims\":");
            let _ = serde_json::to_writer(&mut *out, claims);
            out.extend_from_slice(b",\"scopes\":null}");
        }
        (None, Some(l)) => {
            let _ = serde_json::to_writer(&mut *out, l);
        }
        _ => out.extend_from_slice(b"{\"claims\":null,\"scopes\":null}"),
    }
    member(out, &mut first, "domainName", &host);
    member(
        out,
        &mut first,
        "domainPrefix",
        &event::domain_prefix(&host),
    );
    member(out, &mut first, "extendedRequestId", input.request_id);
    member(out, &mut first, "httpMethod", req.method.as_str());
    key(out, &mut first, "identity");
    out.extend_from_slice(
        b"{\"accessKey\":null,\"accountId\":null,\"caller\":null,\
          \"cognitoAuthenticationProvider\":null,\"cognitoAuthenticationType\":null,\
          \"cognitoIdentityId\":null,\"cognitoIdentityPoolId\":null,\"principalOrgId\":null",
    );
    let mut f = false;
    member(out, &mut f, "sourceIp", input.source_ip);
    key(out, &mut f, "user");
    out.extend_from_slice(b"null");
    key(out, &mut f, "userAgent");
    match req.headers.get(http::header::USER_AGENT) {
        Some(v) => string(out, &text(v)),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"userArn\":null}");
    member(out, &mut first, "path", req.uri.path());
    member(out, &mut first, "protocol", event::protocol(req));
    member(out, &mut first, "requestId", input.request_id);
    event::with_clf(input.time, |t| member(out, &mut first, "requestTime", t));
    key(out, &mut first, "requestTimeEpoch");
    let _ = serde_json::to_writer(&mut *out, &event::epoch_ms(input.time));
    member(out, &mut first, "resourceId", input.route_key);
    member(out, &mut first, "resourcePath", resource);
    member(out, &mut first, "stage", input.stage);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_http::RequestHeader;
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::time::{Duration, UNIX_EPOCH};

    fn request(target: &str, headers: &[(&str, &[u8])]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", target.as_bytes(), None).unwrap();
        for (n, v) in headers {
            let v = http::HeaderValue::from_bytes(v).unwrap();
            r.append_header(n.to_string(), v).unwrap();
        }
        r
    }

    /// The writer's bytes are exactly serde_json's for `event::v2`'s value.
    fn same(
        req: &RequestHeader,
        body: &[u8],
        params: &[(Box<str>, Box<str>)],
        vars: &BTreeMap<String, String>,
        claims: Option<&serde_json::Map<String, serde_json::Value>>,
        lambda: Option<&serde_json::Map<String, serde_json::Value>>,
    ) {
        let input = EventInput {
            req,
            body,
            route_key: "POST /items/{id}",
            params,
            stage: "$default",
            stage_vars: vars,
            request_id: "Ab-1\"x",
            source_ip: "127.0.0.1",
            claims,
            lambda_context: lambda,
            time: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        };
        let want = serde_json::to_vec(&event::v2(&input)).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&v2(&input)),
            String::from_utf8_lossy(&want)
        );
        let want = serde_json::to_vec(&event::v1(&input)).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&v1(&input)),
            String::from_utf8_lossy(&want)
        );
    }

    #[test]
    fn bytes_match_the_value_form() {
        let none = BTreeMap::new();
        same(&request("/", &[]), b"", &[], &none, None, None);
        same(
            &request(
                "/items/1?b=2&a=1&b=3&c&=x&d=%20+%zz",
                &[
                    ("Host", b"api.example.com:8443"),
                    ("User-Agent", b"curl/8 \"quoted\"\t\\"),
                    ("X-Multi", b"1"),
                    ("Cookie", b"a=1; b=2;;  "),
                    ("accept", b"*/*"),
                    ("X-Multi", b"2"),
                    ("cookie", b"c=3"),
                    ("x-bin", b"caf\xe9"),
                    ("Content-Type", b"application/json; charset=utf-8"),
                ],
            ),
            "{\"k\":\"v\u{e9}\\n\"}".as_bytes(),
            &[],
            &none,
            None,
            None,
        );
        let params: Vec<(Box<str>, Box<str>)> = vec![
            ("id".into(), "a%2Fb".into()),
            ("b".into(), "1".into()),
            ("id".into(), "last".into()),
        ];
        let mut vars = BTreeMap::new();
        vars.insert("z".to_string(), "1".to_string());
        vars.insert("a".to_string(), "\"q\"".to_string());
        let claims = json!({"sub": "u1", "scope": "read write", "n": 5, "roles": ["a", "b"]});
        same(
            &request(
                "/x",
                &[("content-type", b"image/png"), ("cookie", b"\xff=1; ok=2")],
            ),
            b"\x00\x01binary",
            &params,
            &vars,
            claims.as_object(),
            None,
        );
        let scp = json!({"scp": ["x", "y"], "aud": "a"});
        same(
            &request("/x", &[]),
            b"plain",
            &[],
            &none,
            scp.as_object(),
            None,
        );
        let ctx = json!({"user": "u", "n": 1, "nested": {"b": 1, "a": [1, "x"]}});
        same(
            &request("/x?q=1", &[("content-type", b"text/plain")]),
            b"hello",
            &[],
            &none,
            None,
            ctx.as_object(),
        );
    }
}
