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
        return Some(json!({
            "ApiId": api_id,
            "AuthorizerType": "REQUEST",
            "Name": name,
            "AuthorizerUri": arn,
            "AuthorizerPayloadFormatVersion": a.get("AuthorizerPayloadFormatVersion").cloned().unwrap_or(Value::Null),
        }));
    }
    cx.error(
        at,
        format!("Authorizer {name}: neither JwtConfiguration nor FunctionArn"),
        "give a JwtConfiguration (JWT) or a FunctionArn (Lambda)",
    );
    None
}
