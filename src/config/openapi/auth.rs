//! `components.securitySchemes` with `x-amazon-apigateway-authorizer` (`jwt`, `request`) or
//! `x-amazon-apigateway-authtype: awsSigv4` (IAM), and each operation's `security`.

use super::names::{escape, sanitize};
use super::{text, Cx};
use crate::config::{closest, AuthorizerConf, JwtConf, Resource};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// How a route is authorized, as lowered.
pub enum Auth {
    None,
    /// Authorizer id and the operation's scopes.
    Jwt(String, Vec<String>),
    /// A Lambda (`REQUEST`) authorizer: not served yet.
    Lambda(String),
    /// IAM (`awsSigv4`): cannot be emulated on one machine.
    Iam,
    /// Errors were reported.
    Bad,
}

/// The security schemes of a document, by name.
pub struct Schemes(BTreeMap<String, Scheme>);

#[derive(Clone)]
enum Scheme {
    Jwt(String),
    Lambda(String),
    Iam,
    /// A scheme without an API Gateway authorizer: AWS imports its routes unauthorized.
    Plain,
    Bad,
}

const AUTHORIZER_FIELDS: [&str; 11] = [
    "type",
    "identitySource",
    "jwtConfiguration",
    "authorizerUri",
    "authorizerPayloadFormatVersion",
    "authorizerResultTtlInSeconds",
    "enableSimpleResponses",
    "authorizerCredentials",
    "identityValidationExpression",
    "name",
    // SAM writes it beside jwtConfiguration; the issuer's discovery document is found
    // from the issuer, as AWS does.
    "openIdConnectUrl",
];

/// Reads `components.securitySchemes`, adding each authorizer to the config.
pub fn read_schemes(cx: &mut Cx, components: Option<&Map<String, Value>>) -> Schemes {
    let mut out = BTreeMap::new();
    let Some(list) = components.and_then(|c| c.get("securitySchemes")) else {
        return Schemes(out);
    };
    let Some(list) = list.as_object() else {
        cx.error(
            "/components/securitySchemes",
            "must map names to schemes",
            "",
        );
        return Schemes(out);
    };
    for (name, s) in list {
        let ptr = format!("/components/securitySchemes/{}", escape(name));
        let scheme = read_scheme(cx, &ptr, name, s);
        out.insert(name.clone(), scheme);
    }
    Schemes(out)
}

fn read_scheme(cx: &mut Cx, ptr: &str, name: &str, s: &Value) -> Scheme {
    if s.get("x-amazon-apigateway-authtype")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("awsSigv4"))
    {
        return Scheme::Iam;
    }
    let Some(ext) = s.get("x-amazon-apigateway-authorizer") else {
        return Scheme::Plain;
    };
    let at = format!("{ptr}/x-amazon-apigateway-authorizer");
    let Some(o) = ext.as_object() else {
        cx.error(&at, "must be an object", "");
        return Scheme::Bad;
    };
    let before = cx.config.errors.len();
    for key in o.keys() {
        if !AUTHORIZER_FIELDS.contains(&key.as_str()) {
            let fix = closest(key, AUTHORIZER_FIELDS)
                .map(|s| format!("did you mean {s}?"))
                .unwrap_or_else(|| format!("the fields are {}", AUTHORIZER_FIELDS.join(", ")));
            cx.error(
                &format!("{at}/{}", escape(key)),
                format!("unknown authorizer field {key:?}"),
                fix,
            );
        }
    }
    let identity_source: Vec<String> = match o.get("identitySource") {
        None => Vec::new(),
        Some(Value::String(s)) => s
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        Some(Value::Array(a)) => a.iter().map(text).collect(),
        Some(_) => {
            cx.error(
                &format!("{at}/identitySource"),
                "must be a string",
                "e.g. \"$request.header.Authorization\"",
            );
            Vec::new()
        }
    };
    let id = match sanitize(name) {
        s if s.is_empty() => "authorizer".to_string(),
        s => s,
    };
    let file = cx.resource_file(ptr);
    let kind = o.get("type").map(text).unwrap_or_default().to_lowercase();
    match kind.as_str() {
        "jwt" => {
            let jwt = jwt_configuration(
                cx,
                &format!("{at}/jwtConfiguration"),
                o.get("jwtConfiguration"),
            );
            if cx.config.errors.len() > before {
                return Scheme::Bad;
            }
            let identity_source = if identity_source.is_empty() {
                // AWS's default for JWT authorizers.
                vec!["$request.header.Authorization".to_string()]
            } else {
                identity_source
            };
            let mut conf = AuthorizerConf {
                authorizer_type: "JWT".into(),
                name: Some(name.to_string()),
                identity_source,
                jwt_configuration: jwt,
                ..AuthorizerConf::default()
            };
            if !local_keys(cx, ptr, s, &mut conf) {
                return Scheme::Bad;
            }
            cx.config.authorizers.push(Resource {
                id: id.clone(),
                file,
                conf,
            });
            Scheme::Jwt(id)
        }
        "request" => {
            if cx.config.errors.len() > before {
                return Scheme::Bad;
            }
            if o.contains_key("authorizerCredentials") {
                cx.warn(
                    &format!("{at}/authorizerCredentials"),
                    "IAM credentials are not emulated: the authorizer is invoked without them",
                    "",
                );
            }
            // Served once its function is found (`config::functions`), else warned about there.
            let conf = AuthorizerConf {
                authorizer_type: "REQUEST".into(),
                name: Some(name.to_string()),
                identity_source,
                authorizer_uri: o.get("authorizerUri").map(text),
                authorizer_payload_format_version: o
                    .get("authorizerPayloadFormatVersion")
                    .map(text),
                enable_simple_responses: o.get("enableSimpleResponses").and_then(Value::as_bool),
                authorizer_result_ttl_in_seconds: o
                    .get("authorizerResultTtlInSeconds")
                    .and_then(Value::as_u64),
                ..AuthorizerConf::default()
            };
            cx.config.pending.authorizers.push(Resource {
                id: id.clone(),
                file,
                conf,
            });
            Scheme::Lambda(id)
        }
        other => {
            cx.error(
                &format!("{at}/type"),
                format!("{other:?} is not an HTTP API authorizer type"),
                "use jwt or request",
            );
            Scheme::Bad
        }
    }
}

/// apigate's own extensions beside the authorizer, for keys an offline machine can read
/// (AWS ignores `x-` fields it does not know, so the document still imports there):
/// `x-apigate-jwks` (a JWK Set), `x-apigate-jwks-file` (relative to the document),
/// `x-apigate-jwks-uri`. Without one the keys come from the issuer's OIDC discovery.
fn local_keys(cx: &mut Cx, ptr: &str, scheme: &Value, conf: &mut AuthorizerConf) -> bool {
    let Some(o) = scheme.as_object() else {
        return true;
    };
    let mut ok = true;
    for (key, v) in o.iter().filter(|(k, _)| k.starts_with("x-apigate-")) {
        let at = format!("{ptr}/{}", escape(key));
        let as_string = |cx: &mut Cx| match v.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                cx.error(&at, "must be a string", "");
                None
            }
        };
        match key.as_str() {
            "x-apigate-jwks" => conf.jwks = Some(v.clone()),
            "x-apigate-jwks-file" => conf.jwks_file = as_string(cx),
            "x-apigate-jwks-uri" => conf.jwks_uri = as_string(cx),
            k => {
                let fix = closest(k, JWKS_EXTENSIONS)
                    .map(|s| format!("did you mean {s}?"))
                    .unwrap_or_else(|| format!("use one of {}", JWKS_EXTENSIONS.join(", ")));
                cx.error(&at, format!("{k} is not an apigate extension"), fix);
                ok = false;
            }
        }
    }
    ok
}

/// apigate's extensions on a JWT security scheme; export writes them back.
const JWKS_EXTENSIONS: [&str; 3] = [
    "x-apigate-jwks",
    "x-apigate-jwks-file",
    "x-apigate-jwks-uri",
];

fn jwt_configuration(cx: &mut Cx, at: &str, v: Option<&Value>) -> Option<JwtConf> {
    let Some(o) = v.and_then(Value::as_object) else {
        cx.error(
            at,
            "a jwt authorizer needs jwtConfiguration",
            "add {\"issuer\": \"https://...\", \"audience\": [\"...\"]}",
        );
        return None;
    };
    let mut conf = JwtConf::default();
    for (key, v) in o {
        let field = format!("{at}/{}", escape(key));
        match key.as_str() {
            "issuer" => match v.as_str() {
                Some(s) => conf.issuer = Some(s.to_string()),
                None => cx.error(&field, "must be a string", ""),
            },
            "audience" => match v.as_array() {
                Some(a) if a.iter().all(Value::is_string) => {
                    conf.audience = a.iter().map(text).collect()
                }
                _ => cx.error(
                    &field,
                    "must be a list of strings",
                    "e.g. [\"my-client-id\"]",
                ),
            },
            k => {
                let fix = closest(k, ["issuer", "audience"])
                    .map(|s| format!("did you mean {s}?"))
                    .unwrap_or_else(|| "the fields are issuer and audience".into());
                cx.error(&field, format!("unknown field {k:?}"), fix);
            }
        }
    }
    Some(conf)
}

/// The authorization of the operation at `ptr`: its own `security` (`own`) or the
/// document's. API Gateway allows one requirement of one scheme per route.
pub fn route_auth(
    cx: &mut Cx,
    ptr: &str,
    own: bool,
    security: Option<&Value>,
    schemes: &Schemes,
) -> Auth {
    let Some(security) = security else {
        return Auth::None;
    };
    let at = if own {
        format!("{ptr}/security")
    } else {
        "/security".to_string()
    };
    let Some(list) = security.as_array() else {
        cx.error(
            &at,
            "must be a list of security requirements",
            "e.g. [{\"my-authorizer\": [\"scope\"]}]",
        );
        return Auth::Bad;
    };
    let req = match list.as_slice() {
        [] => return Auth::None,
        [one] => one,
        _ => {
            cx.error(
                &at,
                "two or more security requirements: API Gateway allows one per route",
                "keep one requirement",
            );
            return Auth::Bad;
        }
    };
    let Some(req) = req.as_object() else {
        cx.error(&format!("{at}/0"), "must be an object", "");
        return Auth::Bad;
    };
    let (name, scopes) = match req.iter().collect::<Vec<_>>().as_slice() {
        [] => return Auth::None,
        [(name, scopes)] => (name.to_string(), *scopes),
        _ => {
            cx.error(
                &format!("{at}/0"),
                "names two or more schemes: API Gateway allows one authorizer per route",
                "keep one scheme",
            );
            return Auth::Bad;
        }
    };
    let req_at = format!("{at}/0/{}", escape(&name));
    let scopes: Vec<String> = match scopes.as_array() {
        Some(a) if a.iter().all(Value::is_string) => a.iter().map(text).collect(),
        _ => {
            cx.error(
                &req_at,
                "scopes must be a list of strings",
                "e.g. [] or [\"read\"]",
            );
            return Auth::Bad;
        }
    };
    match schemes.0.get(&name).cloned() {
        // SAM's `Authorizer: NONE` on a route under a default authorizer: no authorization.
        None if name == "NONE" => Auth::None,
        None => {
            let fix = closest(&name, schemes.0.keys().map(String::as_str))
                .map(|s| format!("did you mean {s}?"))
                .unwrap_or_else(|| format!("define {name} under /components/securitySchemes"));
            cx.error(&req_at, format!("no security scheme {name:?}"), fix);
            Auth::Bad
        }
        Some(Scheme::Jwt(id)) => Auth::Jwt(id, scopes),
        // Served with its authorizer once the function is found (`config::functions`).
        Some(Scheme::Lambda(id)) => Auth::Lambda(id),
        Some(Scheme::Iam) => {
            cx.warn(ptr, "IAM authorization (awsSigv4): cannot be emulated on one machine, the route is not served", "guard it with a JWT authorizer to serve it locally");
            Auth::Iam
        }
        Some(Scheme::Plain) => {
            cx.warn(&req_at, format!("security scheme {name:?} has no x-amazon-apigateway-authorizer: served without authorization, as AWS imports it"), "add an x-amazon-apigateway-authorizer to the scheme");
            Auth::None
        }
        Some(Scheme::Bad) => Auth::Bad,
    }
}
