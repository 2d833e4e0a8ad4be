//! SAM's `Auth` of an `AWS::Serverless::HttpApi`: its authorizers as
//! `AWS::ApiGatewayV2::Authorizer` resources, with SAM's own checks and sentences.

use super::apigw::ORIGIN;
use super::intrinsics::scalar_text;
use super::sam::Api;
use super::Cx;
use crate::config::yaml::pointer_token;
use serde_json::{json, Map, Value};

/// `Auth`: JWT authorizers become `AWS::ApiGatewayV2::Authorizer`s, Lambda ones too (not
/// served yet), `EnableIamAuthorizer` allows `AWS_IAM`; `DefaultAuthorizer` is remembered.
pub(super) fn auth_section(
    cx: &mut Cx,
    api_id: &str,
    auth: &Value,
    ptr: &str,
    api: &mut Api,
    live: &mut Map<String, Value>,
) {
    let Some(auth) = auth.as_object() else {
        cx.error(
            ptr,
            "Property 'Auth' should be a map.",
            "write Auth: {Authorizers: {..}, DefaultAuthorizer: ..}",
        );
        return;
    };
    const FIELDS: [&str; 3] = ["Authorizers", "DefaultAuthorizer", "EnableIamAuthorizer"];
    for k in auth.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        cx.error(
            &format!("{ptr}/{}", pointer_token(k)),
            format!("Invalid value for 'Auth' property: {k}"),
            "use Authorizers, DefaultAuthorizer or EnableIamAuthorizer",
        );
    }
    api.iam = auth.get("EnableIamAuthorizer").and_then(Value::as_bool) == Some(true);
    match auth.get("Authorizers") {
        None => {}
        Some(Value::Object(list)) => {
            for (name, a) in list {
                let at = format!("{ptr}/Authorizers/{}", pointer_token(name));
                if let Some(res) = authorizer(cx, api_id, name, a, &at) {
                    let id = format!("{api_id}-{name}");
                    let scopes = a.get("AuthorizationScopes").cloned().unwrap_or(json!([]));
                    live.insert(id.clone(), json!({"Type": "AWS::ApiGatewayV2::Authorizer", "Properties": res, "Metadata": {ORIGIN: at, "scopes": scopes}}));
                    api.authorizers.insert(name.clone(), id);
                }
            }
        }
        Some(_) => cx.error(
            &format!("{ptr}/Authorizers"),
            "Property 'Auth.Authorizers' should be a map.",
            "map authorizer names to their definitions",
        ),
    }
    if let Some(d) = auth.get("DefaultAuthorizer") {
        let name = scalar_text(d);
        if name != "AWS_IAM" && !api.authorizers.contains_key(&name) {
            cx.error(
                &format!("{ptr}/DefaultAuthorizer"),
                format!("Unable to set DefaultAuthorizer because '{name}' was not defined in 'Authorizers'."),
                "name one of the API's Authorizers",
            );
        }
        api.default_authorizer = Some(name);
    }
}

/// One SAM authorizer as an `AWS::ApiGatewayV2::Authorizer`'s properties.
fn authorizer(cx: &mut Cx, api_id: &str, name: &str, a: &Value, at: &str) -> Option<Value> {
    let Some(a) = a.as_object() else {
        cx.error(
            at,
            format!("Property 'Authorizers.{name}' should be a map."),
            "",
        );
        return None;
    };
    if let Some(jwt) = a.get("JwtConfiguration") {
        let Some(jwt) = jwt.as_object() else {
            cx.error(
                &format!("{at}/JwtConfiguration"),
                "Property 'JwtConfiguration' should be a map.",
                "write JwtConfiguration: {issuer: .., audience: [..]}",
            );
            return None;
        };
        // SAM passes the OpenAPI extension's lower-case names through; CloudFormation's
        // PascalCase ones are accepted too.
        let get = |k: &str| jwt.get(k).or_else(|| jwt.get(&k.to_lowercase()));
        let audience = match get("Audience") {
            Some(Value::Array(a)) => Value::Array(a.clone()),
            Some(v) => json!([v]),
            None => json!([]),
        };
        let source = a
            .get("IdentitySource")
            .cloned()
            .unwrap_or("$request.header.Authorization".into());
        return Some(json!({
            "ApiId": api_id,
            "AuthorizerType": "JWT",
            "Name": name,
            "IdentitySource": [source],
            "JwtConfiguration": {"Issuer": get("Issuer").cloned().unwrap_or(Value::Null), "Audience": audience},
        }));
    }
    if a.contains_key("FunctionArn") || a.contains_key("AuthorizerPayloadFormatVersion") {
        if !a.contains_key("AuthorizerPayloadFormatVersion") {
            cx.error(
                at,
                format!("{name} Lambda Authorizer must define 'AuthorizerPayloadFormatVersion'."),
                "add AuthorizerPayloadFormatVersion: 2.0",
            );
        }
        let Some(arn) = a.get("FunctionArn") else {
            cx.error(
                at,
                format!("{name} Lambda Authorizer must define 'FunctionArn'."),
                "add FunctionArn: !GetAtt Fn.Arn",
            );
            return None;
        };
        if let Some(v) = a
            .get("EnableFunctionDefaultPermissions")
            .filter(|v| !v.is_boolean())
        {
            cx.error(&format!("{at}/EnableFunctionDefaultPermissions"), format!("Property 'Authorizers.{name}.EnableFunctionDefaultPermissions' should be a boolean, not {v}."), "");
        }
        if let Some(identity) = a.get("Identity") {
            let Some(identity) = identity.as_object() else {
                cx.error(
                    &format!("{at}/Identity"),
                    format!("Property 'Auth.Authorizers.{name}.Identity' should be a map."),
                    "",
                );
                return None;
            };
            for (k, v) in identity {
                if k == "ReauthorizeEvery" {
                    continue;
                }
                match v.as_array() {
                    Some(items) => {
                        for (i, item) in items.iter().enumerate().filter(|(_, x)| !x.is_string()) {
                            let _ = item;
                            cx.error(&format!("{at}/Identity/{k}/{i}"), format!("Property 'Authorizers.{name}.Identity.{k}[{i}]' should be a string."), "");
                        }
                    }
                    None => cx.error(
                        &format!("{at}/Identity/{k}"),
                        format!("Property 'Authorizers.{name}.Identity.{k}' should be a list."),
                        "",
                    ),
                }
            }
        }
        // SAM's translation (its tests' outputs): Identity becomes the sorted identity
        // sources, ReauthorizeEvery the result TTL.
        let identity = a.get("Identity").and_then(Value::as_object);
        let mut sources: Vec<String> = Vec::new();
        for (key, prefix) in [
            ("Context", "$context."),
            ("Headers", "$request.header."),
            ("QueryStrings", "$request.querystring."),
            ("StageVariables", "$stageVariables."),
        ] {
            let names = identity.and_then(|i| i.get(key)).and_then(Value::as_array);
            for n in names.into_iter().flatten().filter_map(Value::as_str) {
                sources.push(format!("{prefix}{n}"));
            }
        }
        sources.sort();
        let mut out = json!({
            "ApiId": api_id,
            "AuthorizerType": "REQUEST",
            "Name": name,
            "AuthorizerUri": arn,
            "AuthorizerPayloadFormatVersion": a.get("AuthorizerPayloadFormatVersion").cloned().unwrap_or(Value::Null),
            "IdentitySource": sources,
        });
        if let Some(v) = a.get("EnableSimpleResponses") {
            out["EnableSimpleResponses"] = v.clone();
        }
        if let Some(v) = identity.and_then(|i| i.get("ReauthorizeEvery")) {
            out["AuthorizerResultTtlInSeconds"] = v.clone();
        }
        return Some(out);
    }
    cx.error(
        at,
        format!("Authorizer {name}: neither JwtConfiguration nor FunctionArn"),
        "give a JwtConfiguration (JWT) or a FunctionArn (Lambda)",
    );
    None
}

/// The methods an OpenAPI path item holds operations under, and AWS's `ANY`.
const OPERATIONS: [&str; 9] = [
    "get",
    "put",
    "post",
    "delete",
    "options",
    "head",
    "patch",
    "trace",
    "x-amazon-apigateway-any-method",
];

/// SAM writes the API's authorizers into an inline body as security schemes and puts the
/// default authorizer on every operation that names none (SAM docs, `Auth` of
/// `AWS::Serverless::HttpApi`): without this the body's routes would be served unguarded.
pub(super) fn secure_body(body: &mut Value, api: &Api, live: &Map<String, Value>) {
    let Some(root) = body.as_object_mut() else {
        return;
    };
    let components = root.entry("components").or_insert_with(|| json!({}));
    let Some(schemes) = components
        .as_object_mut()
        .map(|c| c.entry("securitySchemes").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (name, id) in &api.authorizers {
        let Some(p) = live.get(id).and_then(|r| r.get("Properties")) else {
            continue;
        };
        let source = match p.get("IdentitySource") {
            Some(Value::Array(a)) => a.first().map(scalar_text).unwrap_or_default(),
            Some(v) => scalar_text(v),
            None => "$request.header.Authorization".into(),
        };
        let scheme = if p.get("AuthorizerType").and_then(Value::as_str) == Some("JWT") {
            let jwt = p.get("JwtConfiguration").cloned().unwrap_or_default();
            json!({"type": "oauth2", "x-amazon-apigateway-authorizer": {
                "type": "jwt",
                "identitySource": source,
                "jwtConfiguration": {"issuer": jwt.get("Issuer"), "audience": jwt.get("Audience")},
            }})
        } else {
            let mut ext = json!({
                "type": "request",
                "identitySource": p.get("IdentitySource").cloned().unwrap_or(json!([])),
                "authorizerUri": p.get("AuthorizerUri"),
                "authorizerPayloadFormatVersion": p.get("AuthorizerPayloadFormatVersion"),
            });
            for (from, to) in [
                ("EnableSimpleResponses", "enableSimpleResponses"),
                (
                    "AuthorizerResultTtlInSeconds",
                    "authorizerResultTtlInSeconds",
                ),
            ] {
                if let Some(v) = p.get(from) {
                    ext[to] = v.clone();
                }
            }
            json!({"type": "apiKey", "name": "Unused", "in": "header", "x-amazon-apigateway-authorizer": ext})
        };
        schemes.entry(name.clone()).or_insert(scheme);
    }
    let default = api.default_authorizer.as_deref();
    if api.iam || default == Some("AWS_IAM") {
        schemes.entry("AWS_IAM").or_insert_with(|| {
            json!({"type": "apiKey", "name": "Authorization", "in": "header", "x-amazon-apigateway-authtype": "awsSigv4"})
        });
    }
    let Some(default) = default.filter(|d| *d == "AWS_IAM" || api.authorizers.contains_key(*d))
    else {
        return;
    };
    let scopes = api
        .authorizers
        .get(default)
        .and_then(|id| live.get(id))
        .and_then(|r| r.pointer("/Metadata/scopes"))
        .cloned()
        .unwrap_or(json!([]));
    let paths = root.get_mut("paths").and_then(Value::as_object_mut);
    for item in paths.into_iter().flat_map(|p| p.values_mut()) {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if let Some(op) = op
                .as_object_mut()
                .filter(|_| OPERATIONS.contains(&method.as_str()))
            {
                op.entry("security")
                    .or_insert_with(|| json!([{ default: scopes.clone() }]));
            }
        }
    }
}
