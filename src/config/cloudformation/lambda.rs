//! Lambda functions of a template (`AWS::Serverless::Function`, `AWS::Lambda::Function`),
//! read with what the Lambda issue (GATEWAY.md 11) needs to run them, and the
//! `LambdaConf` of an integration that invokes one.

use super::intrinsics::Resolver;
use super::Cx;
use crate::config::yaml::pointer_token;
use crate::config::LambdaConf;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A function as the template defines it (SAM `Globals` merged in).
#[derive(Debug, Clone, Default)]
pub struct Function {
    /// `/Resources/Id`.
    pub pointer: String,
    pub code_uri: Option<String>,
    pub inline_code: Option<String>,
    pub handler: Option<String>,
    pub runtime: Option<String>,
    pub environment: BTreeMap<String, String>,
    pub timeout_seconds: Option<u64>,
    pub memory_size: Option<u64>,
    /// SAM: the function's `Events`, resolved (each `None` when it did not resolve).
    pub events: BTreeMap<String, Option<Value>>,
}

pub type Functions = BTreeMap<String, Function>;

/// Reads every function of `live`.
pub fn read(
    cx: &mut Cx,
    r: &Resolver,
    live: &Map<String, Value>,
    globals: Option<&Value>,
) -> Functions {
    let mut out = Functions::new();
    for (id, res) in live {
        let kind = res.get("Type").and_then(Value::as_str).unwrap_or("");
        let at = format!("/Resources/{}", pointer_token(id));
        let raw = res
            .get("Properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let props = match kind {
            "AWS::Serverless::Function" => match globals
                .and_then(|g| g.get("Function"))
                .and_then(Value::as_object)
            {
                Some(g) => merge_globals(g, raw),
                None => raw,
            },
            "AWS::Lambda::Function" => raw,
            _ => continue,
        };
        let p = format!("{at}/Properties");
        let mut field = |name: &str| -> Option<Value> {
            let v = props.get(name)?;
            match r.resolve(v, &format!("{p}/{name}")) {
                Ok(v) => v,
                Err(e) => {
                    cx.unresolved(e);
                    None
                }
            }
        };
        let text = |v: Option<Value>| v.map(|v| super::intrinsics::scalar_text(&v));
        let number =
            |v: Option<Value>| v.and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
        let mut f = Function {
            pointer: at.clone(),
            handler: text(field("Handler")),
            runtime: text(field("Runtime")),
            timeout_seconds: number(field("Timeout")),
            memory_size: number(field("MemorySize")),
            ..Function::default()
        };
        if let Some(Value::Object(vars)) =
            field("Environment").and_then(|e| e.get("Variables").cloned())
        {
            f.environment = vars
                .iter()
                .map(|(k, v)| (k.clone(), super::intrinsics::scalar_text(v)))
                .collect();
        }
        let code_key = if kind == "AWS::Lambda::Function" {
            "Code"
        } else {
            "CodeUri"
        };
        if let Some(code) = field("InlineCode") {
            f.inline_code = Some(super::intrinsics::scalar_text(&code));
        }
        match field(code_key) {
            Some(Value::String(s)) if s.starts_with("s3://") => cx.warn(
                &format!("{p}/{code_key}"),
                format!("S3 location {s}: apigate cannot read S3; the function's code is unknown"),
                "point CodeUri at the local directory of the function's code",
            ),
            Some(Value::String(s)) => f.code_uri = Some(s),
            Some(Value::Object(o)) if o.contains_key("ZipFile") => {
                f.inline_code = o.get("ZipFile").map(super::intrinsics::scalar_text);
            }
            Some(Value::Object(o)) if o.contains_key("ImageUri") => {
                cx.warn(
                    &format!("{p}/{code_key}"),
                    "container image functions cannot be run locally",
                    "build the function from a local CodeUri",
                );
            }
            Some(Value::Object(_)) => cx.warn(
                &format!("{p}/{code_key}"),
                "S3 location: apigate cannot read S3; the function's code is unknown",
                "point CodeUri at the local directory of the function's code",
            ),
            _ => {}
        }
        if kind == "AWS::Serverless::Function" {
            if let Some(events) = props.get("Events") {
                match events.as_object() {
                    Some(events) => {
                        for (name, ev) in events {
                            // Only API events are read: a schedule or a queue is not apigate's.
                            let kind = ev.get("Type").and_then(Value::as_str).unwrap_or("");
                            if kind != "HttpApi" && kind != "Api" {
                                continue;
                            }
                            let ptr = format!("{p}/Events/{}", pointer_token(name));
                            let v = r.resolve(ev, &ptr).unwrap_or_else(|e| {
                                cx.unresolved(e);
                                None
                            });
                            f.events.insert(name.clone(), v);
                        }
                    }
                    None => cx.error(
                        &format!("{p}/Events"),
                        "Events should be a map",
                        "map each event name to {Type, Properties}",
                    ),
                }
            }
        }
        out.insert(id.clone(), f);
    }
    out
}

/// SAM's rule for `Globals` (SAM docs, "Globals section"): maps merge key by key, lists
/// add up, and anything the resource itself says wins.
pub fn merge_globals(
    globals: &Map<String, Value>,
    mut props: Map<String, Value>,
) -> Map<String, Value> {
    for (k, g) in globals {
        let merged = match (g, props.remove(k)) {
            (_, None) => g.clone(),
            (Value::Object(gm), Some(Value::Object(pm))) => Value::Object(merge_globals(gm, pm)),
            (Value::Array(ga), Some(Value::Array(pa))) => {
                Value::Array(ga.iter().cloned().chain(pa).collect())
            }
            (_, Some(p)) => p,
        };
        props.insert(k.clone(), merged);
    }
    props
}

/// The `LambdaConf` of an integration whose uri is `uri`: a function ARN, an invocation
/// ARN (`arn:aws:apigateway:R:lambda:path/2015-03-31/functions/ARN/invocations`), or a
/// function of this template.
pub fn conf(
    uri: &str,
    payload: Option<String>,
    timeout: Option<u64>,
    functions: &Functions,
) -> LambdaConf {
    let arn = uri
        .find("arn:aws:lambda:")
        .map(|i| uri[i..].trim_end_matches("/invocations").to_string());
    let name = arn
        .as_deref()
        .and_then(|a| a.split(":function:").nth(1))
        .map(|n| n.split(':').next().unwrap_or(n).to_string())
        .or_else(|| (!uri.contains(':')).then(|| uri.to_string()));
    let mut c = LambdaConf {
        uri: uri.to_string(),
        function_arn: arn,
        function_name: name.clone(),
        payload_format_version: payload.unwrap_or_else(|| "2.0".into()),
        timeout_in_millis: timeout,
        ..LambdaConf::default()
    };
    if let Some(f) = name.and_then(|n| functions.get(&n)) {
        c.code_uri = f.code_uri.clone();
        c.inline_code = f.inline_code.clone();
        c.handler = f.handler.clone();
        c.runtime = f.runtime.clone();
        c.environment = f.environment.clone();
        c.function_timeout_seconds = f.timeout_seconds;
        c.memory_size = f.memory_size;
    }
    c
}
