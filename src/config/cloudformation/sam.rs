//! SAM (`Transform: AWS::Serverless-2016-10-31`): `AWS::Serverless::HttpApi`, explicit or
//! implicit (`ServerlessHttpApi`, made for functions' `HttpApi` events without `ApiId`),
//! expanded into the `AWS::ApiGatewayV2::*` resources SAM's translator would make of them,
//! which `apigw.rs` then lowers like any template's. Mistakes are reported with the
//! sentence SAM's translator uses for them.

use super::apigw::{API, ORIGIN};
use super::intrinsics::Resolver;
use super::lambda::{merge_globals, Functions};
use super::Cx;
use crate::config::yaml::pointer_token;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

pub const HTTP_API: &str = "AWS::Serverless::HttpApi";
pub(super) const IMPLICIT: &str = "ServerlessHttpApi";

const HTTP_API_FIELDS: &[&str] = &[
    "AccessLogSettings",
    "Auth",
    "CorsConfiguration",
    "DefaultRouteSettings",
    "DefinitionBody",
    "DefinitionUri",
    "Description",
    "DisableExecuteApiEndpoint",
    "Domain",
    "FailOnWarnings",
    "Name",
    "PropagateTags",
    "RouteSettings",
    "StageName",
    "StageVariables",
    "Tags",
];
const CORS_FIELDS: &[&str] = &[
    "AllowOrigins",
    "AllowHeaders",
    "AllowMethods",
    "ExposeHeaders",
    "MaxAge",
    "AllowCredentials",
];

/// One API being expanded: its authorizers by name, and route keys taken.
#[derive(Default)]
pub(super) struct Api {
    pub(super) authorizers: BTreeMap<String, String>,
    pub(super) default_authorizer: Option<String>,
    pub(super) iam: bool,
    pub(super) route_keys: BTreeSet<String>,
    pub(super) route_settings: Map<String, Value>,
    pub(super) stage: Option<String>,
    /// (path, method, pointer) of body operations written as null.
    pub(super) null_ops: Vec<(String, String, String)>,
}

/// Adds to `live` the `AWS::ApiGatewayV2::*` resources of every SAM HTTP API.
pub fn expand(
    cx: &mut Cx,
    r: &Resolver,
    live: &mut Map<String, Value>,
    globals: Option<&Value>,
    functions: &Functions,
) {
    let api_globals = globals
        .and_then(|g| g.get("HttpApi"))
        .and_then(Value::as_object)
        .cloned();
    let implicit = functions
        .values()
        .flat_map(|f| f.events.values().flatten())
        .any(|e| {
            e.get("Type").and_then(Value::as_str) == Some("HttpApi")
                && e.pointer("/Properties/ApiId").is_none()
        });
    if implicit && !live.contains_key(IMPLICIT) {
        live.insert(IMPLICIT.into(), json!({"Type": HTTP_API, "Properties": {}}));
    }
    let ids: Vec<String> = live
        .iter()
        .filter(|(_, v)| v.get("Type").and_then(Value::as_str) == Some(HTTP_API))
        .map(|(k, _)| k.clone())
        .collect();
    let mut apis = BTreeMap::new();
    for id in ids {
        let res = &live[&id];
        let raw = res
            .get("Properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let props = match &api_globals {
            Some(g) => merge_globals(g, raw),
            None => raw,
        };
        let at = format!("/Resources/{}", pointer_token(&id));
        let props = resolve_http_api(cx, r, props, &format!("{at}/Properties"));
        let api = http_api(cx, &id, &at, &props, live);
        apis.insert(id, api);
    }
    for (fid, f) in functions {
        for (name, event) in &f.events {
            let Some(event) = event else { continue };
            let at = format!("{}/Properties/Events/{}", f.pointer, pointer_token(name));
            super::sam_events::event_routes(cx, r, fid, name, event, &at, &mut apis, live);
        }
    }
    for (id, api) in apis {
        for (path, method, at) in &api.null_ops {
            let m = if method == "x-amazon-apigateway-any-method" {
                "ANY".to_string()
            } else {
                method.to_uppercase()
            };
            if !api.route_keys.contains(&format!("{m} {path}")) {
                cx.error(
                    at,
                    format!("Definition of method '{method}' for path '{path}' should be a map."),
                    "describe the operation as a map",
                );
            }
        }
        if api.route_settings.is_empty() {
            continue;
        }
        if let Some(stage) = api.stage.and_then(|s| live.get_mut(&s)) {
            let rs = stage.pointer_mut("/Properties/RouteSettings");
            match rs.and_then(Value::as_object_mut) {
                Some(m) => m.extend(api.route_settings),
                None => stage["Properties"]["RouteSettings"] = Value::Object(api.route_settings),
            }
        } else {
            cx.ignore(
                &format!("/Resources/{id}"),
                "event RouteSettings without a stage",
            );
        }
    }
}

/// What apigate does not read of an HttpApi: a value there that does not resolve is
/// a warning, not an error (the domain is not emulated, tags are not used).
const UNREAD: [&str; 5] = [
    "Domain",
    "Tags",
    "Description",
    "PropagateTags",
    "FailOnWarnings",
];

/// Resolves the properties field by field; authorizers' IAM roles are not read.
fn resolve_http_api(
    cx: &mut Cx,
    r: &Resolver,
    mut props: Map<String, Value>,
    p: &str,
) -> Map<String, Value> {
    if let Some(Value::Object(list)) = props.get_mut("Auth").and_then(|a| a.get_mut("Authorizers"))
    {
        for a in list.values_mut().filter_map(Value::as_object_mut) {
            a.remove("FunctionInvokeRole");
        }
    }
    let mut out = Map::new();
    for (k, v) in props {
        let ptr = format!("{p}/{}", pointer_token(&k));
        match r.resolve(&v, &ptr) {
            Ok(Some(v)) => {
                out.insert(k, v);
            }
            Ok(None) => {}
            Err(e) if UNREAD.contains(&k.as_str()) => {
                cx.warn(&e.pointer, format!("{k} not read: {}", e.problem), e.fix);
                out.insert(k, v);
            }
            // Reported; the value as written stays, so SAM's structural checks still run
            // (the configuration does not serve with an error anyway).
            Err(e) => {
                cx.unresolved(e);
                out.insert(k, v);
            }
        }
    }
    out
}

/// Checks one `AWS::Serverless::HttpApi` and adds its Api, Stage and Authorizers.
fn http_api(
    cx: &mut Cx,
    id: &str,
    at: &str,
    props: &Map<String, Value>,
    live: &mut Map<String, Value>,
) -> Api {
    let p = format!("{at}/Properties");
    let f = |k: &str| format!("{p}/{k}");
    for k in props.keys() {
        if !HTTP_API_FIELDS.contains(&k.as_str()) {
            let hint = crate::config::closest(k, HTTP_API_FIELDS.iter().copied())
                .map(|c| format!("did you mean {c}?"))
                .unwrap_or_default();
            cx.error(
                &f(k),
                format!("Invalid property '{k}' for AWS::Serverless::HttpApi."),
                hint,
            );
        }
    }
    let by_uri = props.contains_key("DefinitionUri");
    if by_uri && props.contains_key("DefinitionBody") {
        cx.error(
            &p,
            "Specify either 'DefinitionUri' or 'DefinitionBody' property and not both.",
            "keep one of them",
        );
    }
    for (k, what) in [
        ("CorsConfiguration", "Cors"),
        ("Tags", "Tags"),
        ("Auth", "Auth"),
    ] {
        if by_uri && props.contains_key(k) {
            cx.error(&f(k), format!("{what} works only with inline OpenApi specified in the 'DefinitionBody' property."), "move the document into DefinitionBody");
        }
    }
    match props.get("DisableExecuteApiEndpoint") {
        Some(Value::Bool(_)) if by_uri => cx.error(
            &f("DisableExecuteApiEndpoint"),
            "DisableExecuteApiEndpoint works only within 'DefinitionBody' property.",
            "move the document into DefinitionBody",
        ),
        Some(Value::Bool(_)) | None => {}
        Some(_) => cx.error(
            &f("DisableExecuteApiEndpoint"),
            "Type of property 'DisableExecuteApiEndpoint' is invalid.",
            "use true or false",
        ),
    }
    if let Some(t) = props.get("Tags").filter(|t| !t.is_object()) {
        cx.error(
            &f("Tags"),
            format!("Property 'Tags' should be a map, not {t}."),
            "write Tags: {Key: value}",
        );
    }
    let mut api_props = Map::new();
    if let Some(n) = props.get("Name") {
        api_props.insert("Name".into(), n.clone());
    }
    api_props.insert("ProtocolType".into(), "HTTP".into());
    if let Some(c) = props.get("CorsConfiguration") {
        if let Some(cors) = cors(cx, c, &f("CorsConfiguration")) {
            api_props.insert("CorsConfiguration".into(), cors);
        }
    }
    let mut null_ops = Vec::new();
    if let Some(body) = props.get("DefinitionBody") {
        let valid = definition_body(cx, body, &f("DefinitionBody"));
        if !valid && props.contains_key("Tags") {
            cx.error(&f("Tags"), "Unable to add `Tags` because 'DefinitionBody' does not contain a valid OpenApi definition.", "fix DefinitionBody");
        }
        if valid
            && props
                .get("Auth")
                .is_some_and(|a| a.get("DefaultAuthorizer").is_some())
        {
            // SAM puts the default authorizer on every operation; `any` is no method.
            for (path, item) in body
                .get("paths")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                if item.get("any").is_some() {
                    let at = format!("{}/paths/{}/any", f("DefinitionBody"), pointer_token(path));
                    cx.error(&at, format!("Could not find x-amazon-apigateway-any-method in {path} within DefinitionBody."), "write x-amazon-apigateway-any-method");
                }
            }
        }
        if valid {
            null_ops = null_operations(body, &f("DefinitionBody"));
            api_props.insert("Body".into(), body.clone());
        }
    }
    if let Some(uri) = props.get("DefinitionUri") {
        api_props.insert("BodyS3Location".into(), uri.clone());
    }
    if let Some(d) = props.get("Domain") {
        domain(cx, d, &f("Domain"));
    }
    let mut api = Api {
        null_ops,
        ..Api::default()
    };
    let stage_id = format!("{id}-stage");
    let mut stage = json!({"ApiId": id, "StageName": props.get("StageName").cloned().unwrap_or("$default".into()), "AutoDeploy": true});
    for k in [
        "StageVariables",
        "DefaultRouteSettings",
        "AccessLogSettings",
    ] {
        if let Some(v) = props.get(k) {
            stage[k] = v.clone();
        }
    }
    match props.get("RouteSettings") {
        Some(Value::Object(m)) => stage["RouteSettings"] = Value::Object(m.clone()),
        Some(_) => cx.error(
            &f("RouteSettings"),
            "Property 'RouteSettings' should be a map.",
            "map route keys to settings",
        ),
        None => {}
    }
    let origin = |what: &str| json!({ ORIGIN: at, "what": what });
    live.insert(stage_id.clone(), json!({"Type": "AWS::ApiGatewayV2::Stage", "Properties": stage, "Metadata": origin("stage")}));
    api.stage = Some(stage_id);
    if let Some(auth) = props.get("Auth") {
        super::sam_auth::auth_section(cx, id, auth, &f("Auth"), &mut api, live);
    }
    if let Some(body) = api_props.get_mut("Body") {
        super::sam_auth::secure_body(body, &api, live);
    }
    let mut meta = origin("api");
    meta["body"] = f("DefinitionBody").into();
    live.insert(
        id.to_string(),
        json!({"Type": API, "Properties": api_props, "Metadata": meta}),
    );
    api
}

/// SAM's `CorsConfiguration`: `true` (everything allowed) or the fields of an HTTP API's.
fn cors(cx: &mut Cx, c: &Value, ptr: &str) -> Option<Value> {
    match c {
        // A parameter's `true` arrives as text.
        Value::Bool(true) => {
            Some(json!({"AllowOrigins": ["*"], "AllowMethods": ["*"], "AllowHeaders": ["*"]}))
        }
        Value::String(s) if s == "true" => cors(cx, &Value::Bool(true), ptr),
        Value::Bool(false) => None,
        Value::String(s) if s == "false" => None,
        Value::Object(m) => {
            let mut known = Map::new();
            for (k, v) in m {
                if CORS_FIELDS.contains(&k.as_str()) {
                    known.insert(k.clone(), v.clone());
                } else {
                    let hint = crate::config::closest(k, CORS_FIELDS.iter().copied())
                        .map(|c| format!("did you mean {c}?"))
                        .unwrap_or_default();
                    cx.error(
                        &format!("{ptr}/{}", pointer_token(k)),
                        format!("Invalid key '{k}' for 'Cors' property."),
                        hint,
                    );
                }
            }
            Some(Value::Object(known))
        }
        _ => {
            cx.error(
                ptr,
                "Property 'CorsConfiguration' should be a map or true.",
                "",
            );
            None
        }
    }
}

/// What SAM checks of an inline OpenAPI body before it merges events into it.
fn definition_body(cx: &mut Cx, body: &Value, ptr: &str) -> bool {
    let ok = body
        .get("openapi")
        .is_some_and(|v| v.is_string() || v.is_number())
        && body.get("paths").is_some_and(Value::is_object);
    if !ok {
        cx.error(ptr, "Invalid OpenApi document. Invalid values or missing keys for 'openapi' or 'paths' in 'DefinitionBody'.", "give the document openapi: 3.0.1 and paths");
        return false;
    }
    if let Some(t) = body.get("tags").filter(|t| !t.is_array()) {
        cx.error(
            &format!("{ptr}/tags"),
            format!("Tags in OpenApi DefinitionBody needs to be a list. {t} is not a list."),
            "write tags: [{name: ..}]",
        );
    }
    true
}

/// Operations of an inline body written as null: SAM fills in those an event names, and
/// refuses the rest once every event is read.
fn null_operations(body: &Value, ptr: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (path, item) in body
        .get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        for (method, op) in item.as_object().into_iter().flatten() {
            if !op.is_object() {
                let at = format!(
                    "{ptr}/paths/{}/{}",
                    pointer_token(path),
                    pointer_token(method)
                );
                out.push((path.clone(), method.clone(), at));
            }
        }
    }
    out
}

/// A custom domain cannot be emulated from a template; SAM's checks still apply.
fn domain(cx: &mut Cx, d: &Value, ptr: &str) {
    if let Some(bp) = d.get("BasePath") {
        let ok = bp.is_string()
            || bp
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string));
        if !ok {
            cx.error(
                &format!("{ptr}/BasePath"),
                "Basepath must be a string.",
                "write BasePath: /v1 or a list of strings",
            );
        }
    }
    if let Some(m) = d.get("MutualTlsAuthentication") {
        const MTLS: [&str; 2] = ["TruststoreUri", "TruststoreVersion"];
        match m.as_object() {
            Some(o) if !o.is_empty() => {
                if o.keys().any(|k| !MTLS.contains(&k.as_str())) {
                    cx.error(&format!("{ptr}/MutualTlsAuthentication"), "Available MutualTlsAuthentication fields are ['TruststoreUri', 'TruststoreVersion'].", "");
                }
            }
            _ => cx.error(
                &format!("{ptr}/MutualTlsAuthentication"),
                "MutualTlsAuthentication must be a map with at least one of the following fields ['TruststoreUri', 'TruststoreVersion'].",
                "",
            ),
        }
    }
    cx.warn(
        ptr,
        "Domain: custom domains, their certificates and Route 53 records are not emulated",
        "serve on --listen, or describe the domain in domains/*.json",
    );
}
