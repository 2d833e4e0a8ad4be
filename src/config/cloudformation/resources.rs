//! The `Route`, `Integration`, `Stage` and `Authorizer` resources of an
//! `AWS::ApiGatewayV2::Api` (CloudFormation resource reference), each into its model struct.

use super::intrinsics::scalar_text;
use super::lambda::{self, Functions};
use super::Cx;
use crate::config::yaml::pointer_token;
use crate::config::{
    closest, AccessLogConf, AuthorizerConf, IntegrationConf, JwtConf, Resource, RouteConf,
    RouteSettingsConf, StageConf,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

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

/// Refuses properties CloudFormation does not define, with "did you mean".
pub(super) fn known(cx: &mut Cx, props: &Map<String, Value>, fields: &[&str], p: &str) {
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
pub(super) fn parse<T: DeserializeOwned>(cx: &mut Cx, v: &Value, ptr: &str) -> Option<T> {
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

pub(super) fn text(props: &Map<String, Value>, k: &str) -> Option<String> {
    props.get(k).map(scalar_text)
}

pub(super) fn number(props: &Map<String, Value>, k: &str) -> Option<u64> {
    props
        .get(k)
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
}
pub(super) fn integration(
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
                "Lambda integration (function {}): its code is not a local directory, so it is not served",
                conf.function_name.as_deref().unwrap_or(&uri)
            ),
            "point CodeUri at the function's code directory, or pass --lambda-endpoint URL (sam local start-lambda) to invoke it",
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
        tls_config: props.get("TlsConfig").and_then(|v| {
            parse::<crate::config::IntegrationTlsConf>(cx, v, &format!("{p}/TlsConfig"))
        }),
        ..IntegrationConf::default()
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

pub(super) fn authorizer(
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
    let request = text(props, "AuthorizerType").as_deref() == Some("REQUEST");
    let conf = AuthorizerConf {
        authorizer_type: text(props, "AuthorizerType").unwrap_or_default(),
        name: text(props, "Name"),
        identity_source,
        jwt_configuration: jwt,
        authorizer_uri: text(props, "AuthorizerUri").filter(|_| request),
        authorizer_payload_format_version: text(props, "AuthorizerPayloadFormatVersion"),
        enable_simple_responses: props.get("EnableSimpleResponses").and_then(|v| {
            v.as_bool()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        }),
        authorizer_result_ttl_in_seconds: number(props, "AuthorizerResultTtlInSeconds"),
        ..AuthorizerConf::default()
    };
    if props.contains_key("AuthorizerCredentialsArn") {
        cx.warn(
            &format!("{p}/AuthorizerCredentialsArn"),
            "IAM credentials are not emulated: the authorizer is invoked without them",
            "",
        );
    }
    let file = cx.resource_file(at);
    if request {
        // Served once its function is found (`config::functions`), else warned about there.
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

pub(super) fn stage(cx: &mut Cx, id: &str, at: &str, props: &Map<String, Value>) {
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

pub(super) fn route(
    cx: &mut Cx,
    id: &str,
    at: &str,
    props: &Map<String, Value>,
    pending: &BTreeSet<String>,
) {
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
        ..RouteConf::default()
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
            Some("its Lambda authorizer is not served".into())
        }
        _ if pending.contains(target) => Some(format!("integration {target} is not served")),
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
