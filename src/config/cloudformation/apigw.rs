//! `AWS::ApiGatewayV2::*` resources (CloudFormation resource reference) lowered into the
//! model: an `Api` and the `Route`, `Integration`, `Stage` and `Authorizer` resources whose
//! `ApiId` names it, with quick create (`Target`) and `ApiGatewayManagedOverrides`.
//! SAM's resources arrive here already expanded into these (`sam.rs`).

use super::intrinsics::{scalar_text, Resolver};
use super::lambda::Functions;
use super::resources::{authorizer, integration, known, parse, route, stage, text};
use super::Cx;
use crate::config::yaml::pointer_token;
use crate::config::{ApiConf, CorsConf};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

pub const API: &str = "AWS::ApiGatewayV2::Api";
/// Where a resource that SAM's expansion made came from, for messages.
pub const ORIGIN: &str = "apigate:origin";

const API_FIELDS: &[&str] = &[
    "Name",
    "ProtocolType",
    "CorsConfiguration",
    "Body",
    "BodyS3Location",
    "BasePath",
    "Target",
    "RouteKey",
    "CredentialsArn",
    "Description",
    "DisableExecuteApiEndpoint",
    "DisableSchemaValidation",
    "FailOnWarnings",
    "ApiKeySelectionExpression",
    "RouteSelectionExpression",
    "Tags",
    "Version",
    "IpAddressType",
];

/// A resource of the API: logical id, pointer of its properties, resolved properties.
type Found = (String, String, Map<String, Value>);

/// Where messages about resource `id` point: `/Resources/Id`, or for a resource SAM's
/// expansion made, the SAM source it came from.
fn origin(id: &str, res: &Value) -> String {
    match res
        .get("Metadata")
        .and_then(|m| m.get(ORIGIN))
        .and_then(Value::as_str)
    {
        Some(p) => p.to_string(),
        None => format!("/Resources/{}", pointer_token(id)),
    }
}

/// Where messages about the properties of resource `id` point.
fn props_origin(id: &str, res: &Value) -> String {
    match res
        .get("Metadata")
        .and_then(|m| m.get(ORIGIN))
        .and_then(Value::as_str)
    {
        Some(p) => p.to_string(),
        None => format!("/Resources/{}/Properties", pointer_token(id)),
    }
}

fn kind(res: &Value) -> &str {
    res.get("Type").and_then(Value::as_str).unwrap_or("")
}

/// Lowers the template's HTTP API number `which` (by logical id) into `cx.config`, and
/// says how many the template has: each becomes an API of its own in the gateway.
pub fn lower(
    cx: &mut Cx,
    r: &Resolver,
    live: &Map<String, Value>,
    functions: &Functions,
    which: usize,
) -> usize {
    let mut apis: Vec<&String> = Vec::new();
    for (id, v) in live.iter().filter(|(_, v)| kind(v) == API) {
        match v
            .pointer("/Properties/ProtocolType")
            .and_then(Value::as_str)
        {
            Some("HTTP") | None => apis.push(id),
            Some(other) => {
                let at = format!("{}/ProtocolType", props_origin(id, v));
                cx.warn(
                    &at,
                    format!("{other} API {id}: not served (apigate emulates HTTP APIs)"),
                    "",
                );
            }
        }
    }
    let Some(api) = apis.get(which).map(|s| s.to_string()) else {
        if which > 0 {
            return apis.len();
        }
        // Only REST or WebSocket APIs, or every API left out by its Condition: the
        // template loads and serves nothing, which `check` says.
        let elsewhere = live.values().any(|v| {
            matches!(
                kind(v),
                API | "AWS::Serverless::Api" | "AWS::ApiGateway::RestApi"
            )
        }) || cx
            .config
            .ignored
            .iter()
            .any(|i| i.problem.contains("condition"));
        if elsewhere {
            cx.warn("/Resources", "no HTTP API to serve in this template", "");
            return 0;
        }
        cx.error(
            "/Resources",
            "no HTTP API: neither AWS::ApiGatewayV2::Api, AWS::Serverless::HttpApi nor a function with an HttpApi event",
            "add an AWS::Serverless::HttpApi or AWS::ApiGatewayV2::Api resource",
        );
        return 0;
    };
    cx.config.api_id = Some(api.clone());
    let at = origin(&api, &live[&api]);
    let Some(props) = cx.properties(r, &live[&api], &at) else {
        return apis.len();
    };
    let p = props_origin(&api, &live[&api]);
    known(cx, &props, API_FIELDS, &p);
    let mut live = live.clone();
    api_props(cx, r, &api, &props, &p, &mut live);

    let mut by_kind: BTreeMap<&str, Vec<Found>> = BTreeMap::new();
    for (id, res) in &live {
        let k = kind(res);
        let at = origin(id, res);
        match k {
            API | "AWS::Serverless::HttpApi" | "AWS::Serverless::Function" | "AWS::Lambda::Function" => continue,
            "AWS::ApiGatewayV2::Route" | "AWS::ApiGatewayV2::Integration" | "AWS::ApiGatewayV2::Stage"
            | "AWS::ApiGatewayV2::Authorizer" => {
                let Some(props) = cx.properties(r, res, &at) else {
                    continue;
                };
                match props.get("ApiId").map(scalar_text) {
                    Some(a) if a == api => {}
                    Some(a) if apis.iter().any(|x| **x == a) => continue,
                    _ => {
                        cx.error(&format!("{}/ApiId", props_origin(id, res)), "must name the template's API", format!("write ApiId: !Ref {api}"));
                        continue;
                    }
                }
                by_kind.entry(k).or_default().push((id.clone(), props_origin(id, res), props));
            }
            "AWS::ApiGatewayV2::ApiGatewayManagedOverrides" | "AWS::ApiGatewayV2::Deployment" => {}
            "AWS::ApiGatewayV2::DomainName" | "AWS::ApiGatewayV2::ApiMapping" | "AWS::Route53::RecordSet"
            | "AWS::Route53::RecordSetGroup" | "AWS::CertificateManager::Certificate" => cx.warn(
                &at,
                format!("{k}: custom domains, their certificates and DNS records are not emulated from a template"),
                "serve the API on --listen, or describe the domain in domains/*.json",
            ),
            "AWS::ApiGatewayV2::VpcLink" => cx.warn(&at, format!("{k}: VPC links cannot be reached from one machine"), ""),
            "AWS::Serverless::Api" | "AWS::ApiGateway::RestApi" => {
                cx.warn(&at, format!("{k}: REST APIs are not served (apigate emulates HTTP APIs)"), "use AWS::Serverless::HttpApi")
            }
            _ => cx.ignore(&at, format!("{k} {id}: not part of an HTTP API")),
        }
    }
    let mut take = |k: &str| by_kind.remove(k).unwrap_or_default();
    let (integrations, authorizers) = (
        take("AWS::ApiGatewayV2::Integration"),
        take("AWS::ApiGatewayV2::Authorizer"),
    );
    let (stages, routes) = (
        take("AWS::ApiGatewayV2::Stage"),
        take("AWS::ApiGatewayV2::Route"),
    );

    let mut pending = BTreeSet::new();
    for (id, at, props) in integrations {
        integration(cx, &id, &at, &props, functions, &mut pending);
    }
    for (id, at, props) in authorizers {
        authorizer(cx, &id, &at, &props, &mut pending);
    }
    cx.config.has_stages_dir = !stages.is_empty();
    for (id, at, props) in stages {
        stage(cx, &id, &at, &props);
    }
    for (id, at, props) in routes {
        route(cx, &id, &at, &props, &pending);
    }
    // Settings of routes kept aside go with them: the table would find no such route.
    let aside: BTreeSet<String> = cx
        .config
        .pending
        .routes
        .iter()
        .map(|r| r.conf.route_key.clone())
        .collect();
    let served: BTreeSet<String> = cx
        .config
        .routes
        .iter()
        .map(|r| r.conf.route_key.clone())
        .collect();
    let mut dropped = Vec::new();
    for stage in &mut cx.config.stages {
        stage.conf.route_settings.retain(|key, _| {
            let keep = served.contains(key) || !aside.contains(key);
            if !keep {
                dropped.push((stage.file.clone(), key.clone()));
            }
            keep
        });
    }
    for (file, key) in dropped {
        let e = crate::config::ConfigError::new(
            file,
            format!("RouteSettings.{key}"),
            "the route is not served (yet)",
            "",
        );
        cx.config.ignored.push(e);
    }
    drop_unknown_route_settings(cx);
    apis.len()
}

/// Settings for a route key no route of the API has (SAM's tests set `$default` on APIs
/// without one): dropped with a warning, where the directory layout's would be an error.
pub fn drop_unknown_route_settings(cx: &mut Cx) {
    let known: BTreeSet<String> = cx
        .config
        .routes
        .iter()
        .chain(&cx.config.pending.routes)
        .map(|r| r.conf.route_key.clone())
        .collect();
    let mut warnings = Vec::new();
    for stage in &mut cx.config.stages {
        stage.conf.route_settings.retain(|key, _| {
            let keep = known.contains(key);
            if !keep {
                warnings.push(crate::config::ConfigError::new(
                    stage.file.clone(),
                    format!("RouteSettings.{key}"),
                    "no route of this API has that route key: the settings are not used",
                    "key RouteSettings by a RouteKey the API has",
                ));
            }
            keep
        });
    }
    cx.config.warnings.extend(warnings);
}

/// SAM attaches an event's integration to the body's operation of the same path and
/// method: the event's route (a Lambda one, kept aside) stands for it, so the body's is
/// left out rather than served without its integration.
fn without_event_operations(body: &mut Value, api: &str, live: &Map<String, Value>) {
    let Some(paths) = body.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for res in live.values() {
        let event = res.pointer("/Metadata/event").and_then(Value::as_bool) == Some(true);
        let same_api = res.pointer("/Properties/ApiId").and_then(Value::as_str) == Some(api);
        let Some(key) = res.pointer("/Properties/RouteKey").and_then(Value::as_str) else {
            continue;
        };
        if !(event && same_api) {
            continue;
        }
        let (method, path) = match key.split_once(' ') {
            Some((m, p)) => (m.to_lowercase(), p),
            None => ("any".to_string(), key),
        };
        let method = if method == "any" {
            "x-amazon-apigateway-any-method".to_string()
        } else {
            method
        };
        if let Some(item) = paths.get_mut(path).and_then(Value::as_object_mut) {
            item.remove(&method);
            if item.is_empty() {
                paths.remove(path);
            }
        }
    }
}

/// `BodyS3Location` / SAM's `DefinitionUri`: a local file (relative to the template) is
/// read and lowered; an S3 location cannot be read here.
fn body_location(cx: &mut Cx, api: &str, loc: &Value, at: &str, live: &Map<String, Value>) {
    let local = loc.as_str().filter(|s| !s.starts_with("s3://"));
    let Some(rel) = local else {
        cx.warn(
            at,
            format!("S3 location {}: apigate cannot read S3", scalar_text(loc)),
            "inline the OpenAPI document as Body, or point DefinitionUri at a local file",
        );
        return;
    };
    let path = cx.config.dir.join(rel);
    let text = match crate::config::read::read_text(&path) {
        Ok(t) => t,
        Err(e) => {
            cx.error(
                at,
                format!("cannot read {}: {e}", path.display()),
                "point it at the OpenAPI document, relative to the template",
            );
            return;
        }
    };
    let (mut doc, yaml) = match super::parse_text(&text) {
        Ok(d) => d,
        Err(e) => {
            cx.error(
                at,
                format!("{}: {e}", path.display()),
                "fix the document's syntax",
            );
            return;
        }
    };
    without_event_operations(&mut doc, api, live);
    let name = path.display().to_string();
    crate::config::openapi::lower(&doc, &name, "", cx.config);
    if let Some(y) = yaml {
        crate::config::openapi::add_lines(cx.config, &name, &y);
    }
}

/// The Api's own properties; quick create (`Target`) adds its route, integration and stage.
fn api_props(
    cx: &mut Cx,
    r: &Resolver,
    id: &str,
    props: &Map<String, Value>,
    p: &str,
    live: &mut Map<String, Value>,
) {
    match text(props, "ProtocolType").as_deref() {
        Some("HTTP") | None => {}
        Some(other) => cx.error(
            &format!("{p}/ProtocolType"),
            format!("{other:?} APIs are not served"),
            "use ProtocolType: HTTP",
        ),
    }
    let cors = props
        .get("CorsConfiguration")
        .and_then(|c| parse::<CorsConf>(cx, c, &format!("{p}/CorsConfiguration")));
    cx.config.api = ApiConf {
        name: text(props, "Name"),
        cors_configuration: cors.clone(),
        policies: None,
    };
    let body_at = live
        .get(id)
        .and_then(|v| v.pointer("/Metadata/body"))
        .and_then(Value::as_str)
        .map_or_else(|| format!("{p}/Body"), str::to_string);
    if let Some(body) = props.get("Body") {
        let mut body = body.clone();
        without_event_operations(&mut body, id, live);
        crate::config::openapi::lower(&body, cx.file, &body_at, cx.config);
    }
    if let Some(loc) = props.get("BodyS3Location") {
        body_location(cx, id, loc, &format!("{p}/BodyS3Location"), live);
    }
    // The template's own Name and CorsConfiguration win over the document's.
    if cors.is_some() {
        cx.config.api.cors_configuration = cors;
    }
    cx.config.api.name.get_or_insert_with(|| id.to_string());
    if props.contains_key("CredentialsArn") {
        cx.warn(
            &format!("{p}/CredentialsArn"),
            "IAM credentials are not emulated: the integration is invoked without them",
            "",
        );
    }
    let Some(target) = text(props, "Target") else {
        return;
    };
    // Quick create (AWS: "Target ... creates a default route, integration and stage").
    let overrides = live
        .iter()
        .find(|(_, v)| {
            kind(v) == "AWS::ApiGatewayV2::ApiGatewayManagedOverrides"
                && v.pointer("/Properties/ApiId")
                    .is_some_and(|a| a == &json!({"Ref": id}) || a.as_str() == Some(id))
        })
        .map(|(oid, v)| (oid.clone(), v.clone()));
    let overrides = match overrides {
        Some((oid, v)) => cx
            .properties(r, &v, &format!("/Resources/{}", pointer_token(&oid)))
            .map(Value::Object)
            .unwrap_or_default(),
        None => Value::Null,
    };
    let is_lambda = target.contains(":lambda:") || target.starts_with("arn:");
    let mut integration = json!({
        "ApiId": id,
        "IntegrationType": if is_lambda { "AWS_PROXY" } else { "HTTP_PROXY" },
        "IntegrationUri": target,
    });
    if !is_lambda {
        integration["IntegrationMethod"] = "ANY".into();
    }
    let mut route = json!({
        "ApiId": id,
        "RouteKey": text(props, "RouteKey").unwrap_or_else(|| "$default".into()),
        "Target": format!("integrations/{id}-integration"),
    });
    let mut stage = json!({"ApiId": id, "StageName": "$default", "AutoDeploy": true});
    for (part, value) in [
        ("Integration", &mut integration),
        ("Route", &mut route),
        ("Stage", &mut stage),
    ] {
        if let (Some(Value::Object(o)), Some(v)) = (overrides.get(part), value.as_object_mut()) {
            v.extend(o.clone());
        }
    }
    let meta = |what: &str| json!({ ORIGIN: format!("{p}/Target"), "what": what });
    live.insert(format!("{id}-integration"), json!({"Type": "AWS::ApiGatewayV2::Integration", "Properties": integration, "Metadata": meta("integration")}));
    live.insert(
        format!("{id}-route"),
        json!({"Type": "AWS::ApiGatewayV2::Route", "Properties": route, "Metadata": meta("route")}),
    );
    live.insert(
        format!("{id}-stage"),
        json!({"Type": "AWS::ApiGatewayV2::Stage", "Properties": stage, "Metadata": meta("stage")}),
    );
}
