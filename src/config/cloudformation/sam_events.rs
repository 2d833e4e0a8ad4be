//! A SAM function's events: an `HttpApi` event becomes a route with a Lambda integration
//! (as SAM's translator makes them); an `Api` (REST) event is checked and not served.

use super::apigw::ORIGIN;
use super::intrinsics::{scalar_text, Resolver};
use super::sam::{Api, IMPLICIT};
use super::Cx;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A function's event: `HttpApi` adds a route and a Lambda integration; `Api` (REST) is
/// checked and not served.
#[allow(clippy::too_many_arguments)]
pub(super) fn event_routes(
    cx: &mut Cx,
    r: &Resolver,
    fid: &str,
    name: &str,
    event: &Value,
    at: &str,
    apis: &mut BTreeMap<String, Api>,
    live: &mut Map<String, Value>,
) {
    let kind = event.get("Type").and_then(Value::as_str).unwrap_or("");
    let props = match event.get("Properties") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) if kind == "HttpApi" || kind == "Api" => {
            cx.error(
                &format!("{at}/Properties"),
                "Properties should be a map.",
                "write Properties: {Path: .., Method: ..}",
            );
            return;
        }
        Some(_) => return,
    };
    let p = format!("{at}/Properties");
    if kind == "Api" {
        let rest = props.get("RestApiId").map(scalar_text);
        if rest.as_ref().is_some_and(|id| {
            live.get(id)
                .and_then(|v| v.get("Type"))
                .and_then(Value::as_str)
                != Some("AWS::Serverless::Api")
        }) {
            cx.error(&format!("{p}/RestApiId"), "RestApiId must be a valid reference to an 'AWS::Serverless::Api' resource in same template.", "use an HttpApi event for an HTTP API");
        } else {
            cx.warn(
                at,
                "Api event: REST APIs are not served (apigate emulates HTTP APIs)",
                "use an HttpApi event",
            );
        }
        return;
    }
    if kind != "HttpApi" {
        return;
    }
    let api_id = match props.get("ApiId") {
        None => IMPLICIT.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            cx.error(
                &format!("{p}/ApiId"),
                "Property 'ApiId' should be a string.",
                "write ApiId: !Ref MyHttpApi",
            );
            return;
        }
    };
    let Some(api) = apis.get_mut(&api_id) else {
        if live
            .get(&api_id)
            .and_then(|v| v.get("Type"))
            .and_then(Value::as_str)
            == Some("AWS::Serverless::Api")
        {
            cx.warn(
                &format!("{p}/ApiId"),
                format!("{api_id} is a REST API (AWS::Serverless::Api): not served"),
                "use an AWS::Serverless::HttpApi",
            );
            return;
        }
        cx.error(&format!("{p}/ApiId"), "ApiId must be a valid reference to an 'AWS::Serverless::HttpApi' resource in same template.", "write ApiId: !Ref MyHttpApi");
        return;
    };
    let path = match props.get("Path") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            cx.error(
                &format!("{p}/Path"),
                "Property 'Path' should be a string.",
                "",
            );
            return;
        }
    };
    let method = match props.get("Method") {
        None => None,
        Some(Value::String(s)) => Some(s.to_lowercase()),
        Some(_) => {
            cx.error(
                &format!("{p}/Method"),
                "Property 'Method' should be a string.",
                "",
            );
            return;
        }
    };
    let (route_key, sam_method, sam_path) = match (method, path) {
        (None, None) => (
            "$default".to_string(),
            "x-amazon-apigateway-any-method".to_string(),
            "$default".to_string(),
        ),
        (Some(m), Some(path)) => {
            let upper = if m == "any" || m == "x-amazon-apigateway-any-method" {
                "ANY".to_string()
            } else {
                m.to_uppercase()
            };
            let sam_m = if upper == "ANY" {
                "x-amazon-apigateway-any-method".to_string()
            } else {
                m
            };
            let key = if path == "$default" {
                "$default".to_string()
            } else {
                format!("{upper} {path}")
            };
            (key, sam_m, path)
        }
        (None, Some(_)) => {
            cx.error(
                &p,
                "Property 'Method' is required.",
                "add Method: get (or any)",
            );
            return;
        }
        (Some(_), None) => {
            cx.error(&p, "Property 'Path' is required.", "add Path: /items");
            return;
        }
    };
    if !api.route_keys.insert(route_key.clone()) {
        cx.error(
            &p,
            format!("API method '{sam_method}' defined multiple times for path '{sam_path}'."),
            "give each event its own Path and Method",
        );
        return;
    }
    let mut route = json!({"ApiId": api_id, "RouteKey": route_key});
    let auth = props.get("Auth");
    let chosen = match auth.and_then(|a| a.get("Authorizer")) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            cx.error(
                &format!("{p}/Auth/Authorizer"),
                format!("Unable to set Authorizer [{other}] on API method [{sam_method}] for path [{sam_path}]. The method authorizer must be a string with a corresponding dict entry in the api authorizer."),
                "",
            );
            return;
        }
        None => api.default_authorizer.clone(),
    };
    match chosen.as_deref() {
        None | Some("NONE") => {}
        Some("AWS_IAM") => route["AuthorizationType"] = "AWS_IAM".into(),
        Some(a) => match api.authorizers.get(a) {
            Some(id) => {
                let is_jwt = live
                    .get(id)
                    .and_then(|v| v.pointer("/Properties/AuthorizerType"))
                    .and_then(Value::as_str)
                    == Some("JWT");
                route["AuthorizationType"] = if is_jwt { "JWT" } else { "CUSTOM" }.into();
                route["AuthorizerId"] = id.clone().into();
                let own = auth.and_then(|a| a.get("AuthorizationScopes"));
                if let Some(scopes) =
                    own.or_else(|| live.get(id).and_then(|v| v.pointer("/Metadata/scopes")))
                {
                    route["AuthorizationScopes"] = scopes.clone();
                }
            }
            None => {
                let why = if api.authorizers.is_empty() {
                    "because the related API does not define any Authorizers.".to_string()
                } else {
                    "because it wasn't defined in the API's Authorizers.".to_string()
                };
                cx.error(&format!("{p}/Auth/Authorizer"), format!("Unable to set Authorizer [{a}] on API method [{sam_method}] for path [{sam_path}] {why}"), "name one of the API's Authorizers, NONE or AWS_IAM");
                return;
            }
        },
    }
    match props.get("RouteSettings") {
        Some(Value::Object(s)) => {
            api.route_settings
                .insert(route_key.clone(), Value::Object(s.clone()));
        }
        Some(_) => {
            cx.error(
                &format!("{p}/RouteSettings"),
                "Property 'RouteSettings' should be a map.",
                "",
            );
            return;
        }
        None => {}
    }
    let integration_id = format!("{fid}{name}Integration");
    let arn = format!(
        "arn:aws:lambda:{}:{}:function:{fid}",
        r.pseudo("AWS::Region"),
        r.pseudo("AWS::AccountId")
    );
    let mut integration = json!({
        "ApiId": api_id,
        "IntegrationType": "AWS_PROXY",
        "IntegrationUri": arn,
        "PayloadFormatVersion": props.get("PayloadFormatVersion").cloned().unwrap_or("2.0".into()),
    });
    if let Some(t) = props.get("TimeoutInMillis") {
        integration["TimeoutInMillis"] = t.clone();
    }
    route["Target"] = format!("integrations/{integration_id}").into();
    live.insert(integration_id, json!({"Type": "AWS::ApiGatewayV2::Integration", "Properties": integration, "Metadata": {ORIGIN: at}}));
    live.insert(
        format!("{fid}{name}Route"),
        json!({"Type": "AWS::ApiGatewayV2::Route", "Properties": route, "Metadata": {ORIGIN: at, "event": true}}),
    );
}
