//! Reading a function's answer as API Gateway does (AWS guide "Create AWS Lambda proxy
//! integrations for HTTP APIs", "Lambda function response format"). An answer AWS could
//! not read is `None`: the client gets 500.

use base64::Engine;
use bytes::Bytes;
use serde_json::Value;
use std::borrow::Cow;

/// The HTTP answer a function's payload stands for.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    /// In order; `set-cookie` may repeat.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn status_of(v: &Value) -> Option<u16> {
    let n = match v {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (100..=599).contains(&n).then_some(n as u16)
}

fn body_of(obj: &serde_json::Map<String, Value>) -> Option<Bytes> {
    let text = match obj.get("body") {
        None | Some(Value::Null) => return Some(Bytes::new()),
        Some(Value::String(s)) => s.clone(),
        // A non-string body is sent as its JSON text.
        Some(other) => other.to_string(),
    };
    if obj.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .ok()
            .map(Bytes::from)
    } else {
        Some(Bytes::from(text))
    }
}

fn headers_of(obj: &serde_json::Map<String, Value>, out: &mut Vec<(String, String)>) -> Option<()> {
    if let Some(h) = obj.get("headers").filter(|v| !v.is_null()) {
        for (k, v) in h.as_object()? {
            out.push((k.clone(), scalar(v)?));
        }
    }
    Some(())
}

fn multi_value_headers_of(
    obj: &serde_json::Map<String, Value>,
    out: &mut Vec<(String, String)>,
) -> Option<()> {
    if let Some(h) = obj.get("multiValueHeaders").filter(|v| !v.is_null()) {
        for (k, vs) in h.as_object()? {
            // A name in both maps: the multi-value list wins (AWS appends both; one copy
            // of each value is what a client can tell apart).
            out.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
            for v in vs.as_array()? {
                out.push((k.clone(), scalar(v)?));
            }
        }
    }
    Some(())
}

/// The usual 2.0 answer, every field of its usual type, read without building a `Value`
/// tree (strings borrowed from the payload where they have no escapes). Anything else
/// (another type, a repeated field, no `statusCode`) fails this and takes the general path.
#[derive(serde::Deserialize)]
struct Usual<'a> {
    #[serde(rename = "statusCode")]
    status: u64,
    #[serde(borrow, default)]
    headers: Option<std::collections::BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
    #[serde(borrow, default)]
    cookies: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    body: Option<Cow<'a, str>>,
    #[serde(rename = "isBase64Encoded", default)]
    base64: Option<bool>,
}

impl Usual<'_> {
    /// The same answer `v2`'s general path reads from the same payload.
    fn answer(self) -> Option<Answer> {
        if !(100..=599).contains(&self.status) {
            return None;
        }
        let mut headers: Vec<(String, String)> = (self.headers.into_iter().flatten())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        for c in self.cookies.into_iter().flatten() {
            headers.push(("set-cookie".into(), c.into_owned()));
        }
        let text = self.body.unwrap_or_default();
        let body = if self.base64 == Some(true) {
            Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(text.as_bytes())
                    .ok()?,
            )
        } else {
            Bytes::from(text.into_owned())
        };
        Some(Answer {
            status: self.status as u16,
            headers,
            body,
        })
    }
}

/// Payload format 2.0: an object with `statusCode` is read field by field; any other valid
/// JSON is a 200 `application/json` answer whose body is the payload itself.
pub fn v2(payload: &[u8]) -> Option<Answer> {
    // Objects only: serde would also read a struct from a JSON array.
    let object = payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if let Some(usual) = object
        .then(|| serde_json::from_slice::<Usual<'_>>(payload).ok())
        .flatten()
    {
        return usual.answer();
    }
    let value: Value = serde_json::from_slice(payload).ok()?;
    let obj = match &value {
        Value::Object(o) if o.contains_key("statusCode") => o,
        _ => {
            return Some(Answer {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: Bytes::copy_from_slice(payload),
            })
        }
    };
    let status = status_of(&obj["statusCode"])?;
    let mut headers = Vec::new();
    headers_of(obj, &mut headers)?;
    if let Some(c) = obj.get("cookies").filter(|v| !v.is_null()) {
        for cookie in c.as_array()? {
            headers.push(("set-cookie".into(), scalar(cookie)?));
        }
    }
    Some(Answer {
        status,
        headers,
        body: body_of(obj)?,
    })
}

/// Payload format 1.0: `statusCode` is required; `headers` and `multiValueHeaders` both
/// apply.
pub fn v1(payload: &[u8]) -> Option<Answer> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    let obj = value.as_object()?;
    let status = status_of(obj.get("statusCode")?)?;
    let mut headers = Vec::new();
    headers_of(obj, &mut headers)?;
    multi_value_headers_of(obj, &mut headers)?;
    Some(Answer {
        status,
        headers,
        body: body_of(obj)?,
    })
}
