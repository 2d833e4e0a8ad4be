//! `x-amazon-apigateway-integration`, inline or `$ref`'d from
//! `components.x-amazon-apigateway-integrations`, lowered into an `IntegrationConf`
//! (`http_proxy`) or a `LambdaConf` (`aws_proxy`).

use super::names::{escape, sanitize};
use super::{text, Cx};
use crate::config::{closest, IntegrationConf, LambdaConf};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// An integration as lowered, before it has an id.
pub enum Lowered {
    Http(IntegrationConf),
    Lambda(LambdaConf),
    /// An HTTP integration one machine cannot reach (a VPC link), or an AWS service one.
    Unserved(IntegrationConf),
    /// Errors were reported.
    Bad,
}

/// What a route's integration became: the id it has in the model, by kind.
#[derive(Clone)]
pub enum Target {
    Http(String),
    Lambda(String),
    Unserved(String),
    None,
    Bad,
}

/// Where `$ref`s to shared integrations point.
const REF_PREFIX: &str = "#/components/x-amazon-apigateway-integrations/";

/// The integration fields HTTP APIs read, and the REST-only ones AWS ignores for them.
const FIELDS: [&str; 12] = [
    "type",
    "uri",
    "httpMethod",
    "payloadFormatVersion",
    "connectionType",
    "connectionId",
    "timeoutInMillis",
    "requestParameters",
    "responseParameters",
    "tlsConfig",
    "integrationSubtype",
    "description",
];
const IGNORED_FIELDS: [&str; 8] = [
    "credentials",
    "passthroughBehavior",
    "contentHandling",
    "requestTemplates",
    "responses",
    "cacheKeyParameters",
    "cacheNamespace",
    "integrationTarget",
];

/// Lowers every shared integration, by its name in `components`.
pub fn read_components(
    cx: &mut Cx,
    components: Option<&Map<String, Value>>,
) -> BTreeMap<String, Target> {
    let mut out = BTreeMap::new();
    let Some(list) = components.and_then(|c| c.get("x-amazon-apigateway-integrations")) else {
        return out;
    };
    let base = "/components/x-amazon-apigateway-integrations";
    let Some(list) = list.as_object() else {
        cx.error(base, "must map names to integrations", "");
        return out;
    };
    for (name, v) in list {
        let ptr = format!("{base}/{}", escape(name));
        let lowered = lower(cx, &ptr, v);
        let id = match sanitize(name) {
            s if s.is_empty() => "integration".to_string(),
            s => s,
        };
        let target = cx.add_integration(&id, &ptr, lowered);
        out.insert(name.clone(), target);
    }
    out
}

/// The integration of the route `route_id`, written at `ptr` as `v`.
pub fn route_target(
    cx: &mut Cx,
    ptr: &str,
    route_id: &str,
    v: &Value,
    shared: &BTreeMap<String, Target>,
) -> Target {
    if let Some(r) = v.get("$ref") {
        let r = r.as_str().unwrap_or_default();
        let name = r.strip_prefix(REF_PREFIX).map(unescape);
        return match name.as_deref().and_then(|n| shared.get(n)) {
            Some(t) => t.clone(),
            None => {
                let fix = match closest(
                    name.as_deref().unwrap_or(r),
                    shared.keys().map(String::as_str),
                ) {
                    Some(s) => format!("did you mean {REF_PREFIX}{}?", escape(s)),
                    None => format!("define it under {REF_PREFIX}NAME"),
                };
                cx.error(
                    &format!("{ptr}/$ref"),
                    format!("{r:?}: no such integration"),
                    fix,
                );
                Target::Bad
            }
        };
    }
    let lowered = lower(cx, ptr, v);
    // An inline integration takes its route's id (a shared one may hold it already).
    let mut id = route_id.to_string();
    if shared.keys().any(|n| sanitize(n) == id) {
        id.push_str("_integration");
    }
    cx.add_integration(&id, ptr, lowered)
}

/// RFC 6901 section 4: `~1` then `~0`.
fn unescape(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

/// Lowers one integration object at `ptr`.
fn lower(cx: &mut Cx, ptr: &str, v: &Value) -> Lowered {
    let Some(o) = v.as_object() else {
        cx.error(
            ptr,
            "must be an object",
            "write {\"type\": \"http_proxy\", \"uri\": ...}",
        );
        return Lowered::Bad;
    };
    let before = cx.config.errors.len();
    let mut conf = IntegrationConf::default();
    let mut subtype = None;
    let mut vpc_link = false;
    for (key, v) in o {
        let at = format!("{ptr}/{}", escape(key));
        match key.as_str() {
            "type" | "uri" | "integrationSubtype" | "connectionId" | "description" => {
                if !v.is_string() {
                    cx.error(&at, "must be a string", "");
                }
            }
            "httpMethod" => conf.integration_method = Some(text(v)),
            "payloadFormatVersion" => conf.payload_format_version = Some(text(v)),
            "connectionType" => {
                let t = text(v).to_uppercase();
                vpc_link = t == "VPC_LINK";
                if t != "INTERNET" && !vpc_link {
                    cx.error(
                        &at,
                        format!("{:?} is not a connection type", text(v)),
                        "use INTERNET or VPC_LINK",
                    );
                }
                conf.connection_type = Some(t);
            }
            "timeoutInMillis" => match v.as_u64() {
                Some(n) => conf.timeout_in_millis = Some(n),
                None => cx.error(&at, "must be a whole number of milliseconds", "e.g. 29000"),
            },
            "requestParameters" => match string_map(v) {
                Some(m) => conf.request_parameters = m,
                None => cx.error(
                    &at,
                    "must map mapping keys to strings",
                    "e.g. {\"append:header.X\": \"v\"}",
                ),
            },
            "responseParameters" => {
                let m = v.as_object().and_then(|m| {
                    m.iter()
                        .map(|(code, maps)| Some((code.clone(), string_map(maps)?)))
                        .collect::<Option<BTreeMap<_, _>>>()
                });
                match m {
                    Some(m) => conf.response_parameters = m,
                    None => cx.error(
                        &at,
                        "must map status codes to mappings",
                        "e.g. {\"200\": {\"overwrite:header.X\": \"v\"}}",
                    ),
                }
            }
            // AWS's import knows only `serverNameToVerify`; anything else is an error.
            "tlsConfig" => match v.as_object() {
                Some(t) if t.keys().all(|k| k == "serverNameToVerify") => {
                    conf.tls_config = Some(crate::config::IntegrationTlsConf {
                        server_name_to_verify: t
                            .get("serverNameToVerify")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        insecure_skip_verification: false,
                    })
                }
                _ => cx.error(
                    &at,
                    "must be {\"serverNameToVerify\": \"host\"}",
                    "name the host the backend's certificate is for",
                ),
            },
            k if IGNORED_FIELDS.contains(&k) => cx.ignore(
                &at,
                format!("{k}: not used by HTTP APIs' proxy integrations"),
            ),
            k => {
                let fix = match closest(k, FIELDS.iter().chain(IGNORED_FIELDS.iter()).copied()) {
                    Some(s) => format!("did you mean {s}?"),
                    None => format!("remove it; the fields are {}", FIELDS.join(", ")),
                };
                cx.error(&at, format!("unknown integration field {k:?}"), fix);
            }
        }
        if key == "integrationSubtype" {
            subtype = v.as_str().map(str::to_string);
        }
    }
    conf.description = o
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_string);
    let uri = o
        .get("uri")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kind = o
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_lowercase();
    if cx.config.errors.len() > before {
        return Lowered::Bad;
    }
    if kind.is_empty() {
        cx.error(
            &format!("{ptr}/type"),
            "missing",
            "add \"type\": \"http_proxy\" or \"aws_proxy\"",
        );
        return Lowered::Bad;
    }
    if uri.is_empty() && subtype.is_none() {
        cx.error(
            &format!("{ptr}/uri"),
            "missing",
            "add the backend URL (http_proxy) or the function ARN (aws_proxy)",
        );
        return Lowered::Bad;
    }
    conf.integration_uri = uri.clone();
    match kind.as_str() {
        "http_proxy" if vpc_link => {
            conf.integration_type = "HTTP_PROXY".into();
            cx.warn(ptr, "private integration (VPC_LINK): not served, a VPC link cannot be reached from one machine", "point uri at a reachable URL with connectionType INTERNET to serve it locally");
            Lowered::Unserved(conf)
        }
        "http_proxy" => {
            conf.integration_type = "HTTP_PROXY".into();
            Lowered::Http(conf)
        }
        "aws_proxy" if subtype.is_some() => {
            conf.integration_type = "AWS_PROXY".into();
            cx.warn(
                ptr,
                format!(
                    "AWS service integration ({}): not served",
                    subtype.unwrap_or_default()
                ),
                "serve a stand-in with an http_proxy integration",
            );
            Lowered::Unserved(conf)
        }
        "aws_proxy" => lambda(cx, ptr, uri, conf),
        other => {
            cx.error(
                &format!("{ptr}/type"),
                format!("{other:?} is not an HTTP API integration type"),
                "use http_proxy or aws_proxy (HTTP APIs have no http, aws or mock integrations)",
            );
            Lowered::Bad
        }
    }
}

/// An `aws_proxy` integration: a Lambda function, by its invocation or function ARN.
fn lambda(cx: &mut Cx, ptr: &str, uri: String, conf: IntegrationConf) -> Lowered {
    let version = conf.payload_format_version.unwrap_or_else(|| "2.0".into());
    if version != "1.0" && version != "2.0" {
        cx.error(
            &format!("{ptr}/payloadFormatVersion"),
            format!("{version:?} is not a Lambda payload format"),
            "use \"1.0\" or \"2.0\"",
        );
        return Lowered::Bad;
    }
    let function_arn = uri.find("arn:aws:lambda:").map(|i| {
        let arn = &uri[i..];
        arn.strip_suffix("/invocations").unwrap_or(arn).to_string()
    });
    let function_name = function_arn.as_deref().and_then(|a| {
        let rest = a.split_once(":function:")?.1;
        Some(rest.split(':').next().unwrap_or(rest).to_string())
    });
    cx.warn(
        ptr,
        format!(
            "Lambda integration (function {}): its code is not a local directory, so it is not served",
            function_name.as_deref().unwrap_or(&uri)
        ),
        "point CodeUri at the function's code directory, or pass --lambda-endpoint URL (sam local start-lambda) to invoke it",
    );
    Lowered::Lambda(LambdaConf {
        uri,
        function_arn,
        function_name,
        payload_format_version: version,
        timeout_in_millis: conf.timeout_in_millis,
        ..LambdaConf::default()
    })
}

fn string_map(v: &Value) -> Option<BTreeMap<String, String>> {
    v.as_object()?
        .iter()
        .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}
