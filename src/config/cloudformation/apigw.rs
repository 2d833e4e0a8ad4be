//! `AWS::ApiGatewayV2::*` resources (CloudFormation resource reference) lowered into the
//! model: an `Api` and the `Route`, `Integration`, `Stage` and `Authorizer` resources whose
//! `ApiId` names it, with quick create (`Target`) and `ApiGatewayManagedOverrides`.
//! SAM's resources arrive here already expanded into these (`sam.rs`).

use super::intrinsics::{scalar_text, Resolver};
use super::lambda::{self, Functions};
use super::Cx;
use crate::config::yaml::pointer_token;
use crate::config::{
    closest, AccessLogConf, ApiConf, AuthorizerConf, CorsConf, IntegrationConf, JwtConf, Resource,
    RouteConf, RouteSettingsConf, StageConf,
};
use serde::de::DeserializeOwned;
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
const ROUTE_FIELDS: &[&str] = &[
    "ApiId",
    "RouteKey",
    "Target",
    "AuthorizationType",
    "AuthorizerId",
    "AuthorizationScopes",
    "ApiKeyRequired",
    "OperationName",
    "ModelSelectionExpression",
    "RequestModels",
    "RequestParameters",
    "RouteResponseSelectionExpression",
];
const INTEGRATION_FIELDS: &[&str] = &[
    "ApiId",
    "IntegrationType",
    "IntegrationUri",
    "IntegrationMethod",
    "IntegrationSubtype",
    "PayloadFormatVersion",
    "TimeoutInMillis",
    "RequestParameters",
    "ResponseParameters",
    "ConnectionType",
    "ConnectionId",
    "CredentialsArn",
    "Description",
    "TlsConfig",
    "ContentHandlingStrategy",
    "PassthroughBehavior",
    "RequestTemplates",
    "TemplateSelectionExpression",
];
const STAGE_FIELDS: &[&str] = &[
    "ApiId",
    "StageName",
    "AutoDeploy",
    "StageVariables",
    "DefaultRouteSettings",
    "RouteSettings",
    "AccessLogSettings",
    "Description",
    "Tags",
    "DeploymentId",
    "ClientCertificateId",
    "AccessPolicyId",
];
const AUTHORIZER_FIELDS: &[&str] = &[
    "ApiId",
    "AuthorizerType",
    "Name",
    "IdentitySource",
    "JwtConfiguration",
    "AuthorizerUri",
    "AuthorizerCredentialsArn",
    "AuthorizerPayloadFormatVersion",
    "AuthorizerResultTtlInSeconds",
    "EnableSimpleResponses",
    "IdentityValidationExpression",
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

/// Lowers the template's API (the first, by logical id, when it has several).
pub fn lower(cx: &mut Cx, r: &Resolver, live: &Map<String, Value>, functions: &Functions) {
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
    let Some(api) = apis.first().map(|s| s.to_string()) else {
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
            return;
        }
        cx.error(
            "/Resources",
            "no HTTP API: neither AWS::ApiGatewayV2::Api, AWS::Serverless::HttpApi nor a function with an HttpApi event",
            "add an AWS::Serverless::HttpApi or AWS::ApiGatewayV2::Api resource",
        );
        return;
    };
    for other in apis.iter().skip(1) {
        let at = origin(other, &live[other.as_str()]);
        cx.warn(
            &at,
            format!(
                "several APIs in one template: apigate serves {api} from this file, not {other}"
            ),
            "give each API its own template and pass --conf once per template",
        );
    }
    let at = origin(&api, &live[&api]);
    let Some(props) = cx.properties(r, &live[&api], &at) else {
        return;
    };
    let p = props_origin(&api, &live[&api]);
    known(cx, &props, API_FIELDS, &p);
    let mut live = live.clone();
    api_props(cx, &api, &props, &p, &mut live);

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

/// Refuses properties CloudFormation does not define, with "did you mean".
fn known(cx: &mut Cx, props: &Map<String, Value>, fields: &[&str], p: &str) {
    for k in props.keys() {
        if !fields.contains(&k.as_str()) {
            let hint = closest(k, fields.iter().copied())
                .map(|c| format!("did you mean {c}?"))
                .unwrap_or_else(|| "remove it".into());
            cx.error(
                &format!("{p}/{}", pointer_token(k)),
                "not a property of this resource type",
                hint,
            );
        }
    }
}

/// Deserializes `v` into a model struct, reporting the field at fault.
fn parse<T: DeserializeOwned>(cx: &mut Cx, v: &Value, ptr: &str) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(t) => Some(t),
        Err(e) => {
            let path = e.path().to_string().replace('.', "/");
            let at = if path == "." || path.is_empty() {
                ptr.to_string()
            } else {
                format!("{ptr}/{path}")
            };
            cx.error(
                &at,
                e.inner().to_string(),
                "see the CloudFormation resource reference for AWS::ApiGatewayV2",
            );
            None
        }
    }
}

fn text(props: &Map<String, Value>, k: &str) -> Option<String> {
    props.get(k).map(scalar_text)
}

fn number(props: &Map<String, Value>, k: &str) -> Option<u64> {
    props
        .get(k)
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
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
        .values()
        .find(|v| {
            kind(v) == "AWS::ApiGatewayV2::ApiGatewayManagedOverrides"
                && v.pointer("/Properties/ApiId")
                    .is_some_and(|a| a == &json!({"Ref": id}) || a.as_str() == Some(id))
        })
        .and_then(|v| v.get("Properties"))
        .cloned()
        .unwrap_or_default();
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

fn integration(
    cx: &mut Cx,
    id: &str,
    at: &str,
    props: &Map<String, Value>,
    functions: &Functions,
    pending: &mut BTreeSet<String>,
) {
    let p = at.to_string();
    known(cx, props, INTEGRATION_FIELDS, &p);
    let kind = text(props, "IntegrationType").unwrap_or_default();
    let uri = text(props, "IntegrationUri").unwrap_or_default();
    let payload = text(props, "PayloadFormatVersion");
    let timeout = number(props, "TimeoutInMillis");
    let file = cx.resource_file(at);
    if kind == "AWS_PROXY" && props.contains_key("IntegrationSubtype") {
        cx.warn(
            &format!("{p}/IntegrationSubtype"),
            "AWS service integration: not emulated",
            "",
        );
        pending.insert(id.to_string());
        return;
    }
    if kind == "AWS_PROXY" {
        let conf = lambda::conf(&uri, payload, timeout, functions);
        cx.warn(
            &p,
            format!(
                "Lambda integration: not served yet (function {})",
                conf.function_name.as_deref().unwrap_or(&uri)
            ),
            "",
        );
        cx.config.pending.lambdas.push(Resource {
            id: id.to_string(),
            file,
            conf,
        });
        pending.insert(id.to_string());
        return;
    }
    let mut response_parameters = BTreeMap::new();
    if let Some(rp) = props.get("ResponseParameters").and_then(Value::as_object) {
        // CloudFormation's shape: {"200": {"ResponseParameters": [{"Source", "Destination"}]}}.
        for (status, v) in rp {
            let list = v.get("ResponseParameters").and_then(Value::as_array);
            let mut m = BTreeMap::new();
            for item in list.into_iter().flatten() {
                if let (Some(d), Some(s)) = (item.get("Destination"), item.get("Source")) {
                    m.insert(scalar_text(d), scalar_text(s));
                }
            }
            response_parameters.insert(status.clone(), m);
        }
    }
    let request_parameters = props
        .get("RequestParameters")
        .and_then(|v| parse::<BTreeMap<String, String>>(cx, v, &format!("{p}/RequestParameters")))
        .unwrap_or_default();
    let conf = IntegrationConf {
        integration_type: kind.clone(),
        integration_uri: uri,
        integration_method: text(props, "IntegrationMethod"),
        timeout_in_millis: timeout,
        payload_format_version: payload,
        request_parameters,
        response_parameters,
        connection_type: text(props, "ConnectionType"),
        description: text(props, "Description"),
    };
    if conf.connection_type.as_deref() == Some("VPC_LINK") {
        cx.warn(
            &p,
            "VPC_LINK integration: a private backend cannot be reached from one machine",
            "use ConnectionType INTERNET with a reachable URL",
        );
        cx.config.pending.integrations.push(Resource {
            id: id.to_string(),
            file,
            conf,
        });
        pending.insert(id.to_string());
        return;
    }
    if props.contains_key("CredentialsArn") {
        cx.warn(
            &format!("{p}/CredentialsArn"),
            "IAM credentials are not emulated",
            "",
        );
    }
    cx.config.integrations.push(Resource {
        id: id.to_string(),
        file,
        conf,
    });
}

fn authorizer(
    cx: &mut Cx,
    id: &str,
    at: &str,
    props: &Map<String, Value>,
    pending: &mut BTreeSet<String>,
) {
    let p = at.to_string();
    known(cx, props, AUTHORIZER_FIELDS, &p);
    let identity_source: Vec<String> = match props.get("IdentitySource") {
        Some(Value::Array(a)) => a.iter().map(scalar_text).collect(),
        Some(v) => scalar_text(v)
            .split(',')
            .map(|s| s.trim().to_string())
            .collect(),
        None => Vec::new(),
    };
    let jwt = props
        .get("JwtConfiguration")
        .and_then(|j| parse::<JwtConf>(cx, j, &format!("{p}/JwtConfiguration")));
    let conf = AuthorizerConf {
        authorizer_type: text(props, "AuthorizerType").unwrap_or_default(),
        name: text(props, "Name"),
        identity_source,
        jwt_configuration: jwt,
        ..AuthorizerConf::default()
    };
    let file = cx.resource_file(at);
    if conf.authorizer_type == "REQUEST" {
        cx.warn(
            &p,
            format!("Lambda authorizer {id}: not served yet; the routes it guards are not served"),
            "",
        );
        cx.config.pending.authorizers.push(Resource {
            id: id.to_string(),
            file,
            conf,
        });
        pending.insert(format!("authorizer:{id}"));
        return;
    }
    cx.config.authorizers.push(Resource {
        id: id.to_string(),
        file,
        conf,
    });
}

/// Route settings without what only WebSocket APIs read (`DataTraceEnabled`, `LoggingLevel`).
fn settings(cx: &mut Cx, v: &Value, ptr: &str) -> Option<RouteSettingsConf> {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        for k in ["DataTraceEnabled", "LoggingLevel"] {
            if o.remove(k).is_some() {
                cx.ignore(&format!("{ptr}/{k}"), format!("{k}: WebSocket APIs only"));
            }
        }
    }
    parse(cx, &v, ptr)
}

fn stage(cx: &mut Cx, id: &str, at: &str, props: &Map<String, Value>) {
    let p = at.to_string();
    known(cx, props, STAGE_FIELDS, &p);
    let default_route_settings = props
        .get("DefaultRouteSettings")
        .and_then(|v| settings(cx, v, &format!("{p}/DefaultRouteSettings")));
    let mut route_settings = BTreeMap::new();
    if let Some(rs) = props.get("RouteSettings") {
        match rs.as_object() {
            Some(m) => {
                for (k, v) in m {
                    if let Some(s) =
                        settings(cx, v, &format!("{p}/RouteSettings/{}", pointer_token(k)))
                    {
                        route_settings.insert(k.clone(), s);
                    }
                }
            }
            None => cx.error(
                &format!("{p}/RouteSettings"),
                "should be a map",
                "map route keys to settings",
            ),
        }
    }
    let access_log_settings = props.get("AccessLogSettings").and_then(|v| {
        let mut log: AccessLogConf = parse(cx, v, &format!("{p}/AccessLogSettings"))?;
        // In a template the destination is a log group's ARN; a local path has a `/`.
        let cloudwatch =
            |d: &str| d.starts_with("arn:") || !(d.contains('/') || d == "stdout" || d == "stderr");
        if log.destination_arn.as_deref().is_some_and(cloudwatch) {
            cx.warn(
                &format!("{p}/AccessLogSettings/DestinationArn"),
                "CloudWatch Logs are not emulated: access log lines go to stdout",
                "write ./access.log for a file beside the template",
            );
            log.destination_arn = Some("stdout".into());
        }
        Some(log)
    });
    let stage_variables = props
        .get("StageVariables")
        .map(|v| match v.as_object() {
            Some(m) => m.iter().map(|(k, v)| (k.clone(), scalar_text(v))).collect(),
            None => BTreeMap::new(),
        })
        .unwrap_or_default();
    let conf = StageConf {
        name: text(props, "StageName").unwrap_or_else(|| "$default".into()),
        routes: None,
        stage_variables,
        default_route_settings,
        route_settings,
        access_log_settings,
        policies: None,
        auto_deploy: props.get("AutoDeploy").and_then(Value::as_bool),
        description: text(props, "Description"),
    };
    let file = cx.resource_file(at);
    cx.config.stages.push(Resource {
        id: id.to_string(),
        file,
        conf,
    });
}

fn route(cx: &mut Cx, id: &str, at: &str, props: &Map<String, Value>, pending: &BTreeSet<String>) {
    let p = at.to_string();
    known(cx, props, ROUTE_FIELDS, &p);
    let scopes = match props.get("AuthorizationScopes") {
        Some(Value::Array(a)) => a.iter().map(scalar_text).collect(),
        _ => Vec::new(),
    };
    let conf = RouteConf {
        route_key: text(props, "RouteKey").unwrap_or_default(),
        target: text(props, "Target"),
        authorization_type: text(props, "AuthorizationType"),
        authorizer_id: text(props, "AuthorizerId"),
        authorization_scopes: scopes,
        policies: None,
        api_key_required: props.get("ApiKeyRequired").and_then(Value::as_bool),
        operation_name: text(props, "OperationName"),
    };
    let file = cx.resource_file(at);
    let target = conf
        .target
        .as_deref()
        .and_then(|t| t.strip_prefix("integrations/"))
        .unwrap_or("");
    let why = match conf.authorization_type.as_deref() {
        Some("AWS_IAM") => Some("IAM authorization is not emulated".to_string()),
        _ if conf
            .authorizer_id
            .as_ref()
            .is_some_and(|a| pending.contains(&format!("authorizer:{a}"))) =>
        {
            Some("its Lambda authorizer is not served yet".into())
        }
        _ if pending.contains(target) => Some(format!("integration {target} is not served yet")),
        _ => None,
    };
    if let Some(why) = why {
        cx.warn(
            &p,
            format!("route {:?} not served: {why}", conf.route_key),
            "",
        );
        cx.config.pending.routes.push(Resource {
            id: id.to_string(),
            file,
            conf,
        });
        return;
    }
    cx.config.routes.push(Resource {
        id: id.to_string(),
        file,
        conf,
    });
}
