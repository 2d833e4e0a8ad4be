//! Azure API Management as its APIOps artifacts hold it (GATEWAY.md 13), lowered into the
//! one model every format yields: each API's operations (from its OpenAPI specification)
//! become routes under the API's `path`, each with an HTTP integration to `serviceUrl`
//! (or `set-backend-service`), and the composed policies become the route's mappings, IP
//! filter and JWT authorizer. What apigate cannot serve is an error naming file and line.
//! An optional `gateway.json` beside the artifacts holds apigate's own settings (section 2).

mod answers;
mod backend;
mod cond;
mod expr;
mod layout;
mod policies;
mod security;
#[cfg(test)]
mod tests;
mod traffic;
mod xml;

pub use layout::{is_artifacts, secret_env_name};

use super::{
    Config, ConfigError, IntegrationConf, PoliciesConf, Resource, RouteConf, SubscriptionConf,
};
use layout::{Api, Artifacts};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use xml::PolicyDoc;

/// The methods an OpenAPI path item may hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `apiInformation.json` properties apigate reads, and those that only describe the API.
const API_FIELDS: [&str; 8] = [
    "path",
    "serviceUrl",
    "subscriptionRequired",
    "subscriptionKeyParameterNames",
    "protocols",
    "apiVersion",
    "apiVersionSetId",
    "type",
];
const API_DESCRIPTIVE: [&str; 7] = [
    "displayName",
    "description",
    "apiRevision",
    "isCurrent",
    "authenticationSettings",
    "apiRevisionDescription",
    "termsOfServiceUrl",
];

/// Loads the artifacts directory `dir` into a `Config`.
pub fn load(dir: &Path) -> Config {
    let mut config = Config {
        dir: dir.to_path_buf(),
        ..Config::default()
    };
    config.api.name = Some("apim".into());
    config.dialect = crate::rejection::Dialect::Apim;
    let mut errors = Vec::new();
    // apigate's own settings (listen address, rate-limit store...), beside the artifacts.
    if dir.join("gateway.json").is_file() {
        let mut found = super::ConfigErrors::default();
        match super::read::read_text(&dir.join("gateway.json")) {
            Ok(text) => {
                if let Some(g) = super::parse::parse("gateway.json", &text, &mut found) {
                    config.gateway = g;
                }
            }
            Err(e) => found.push(ConfigError::new(
                "gateway.json",
                "",
                format!("cannot read: {e}"),
                "check the file",
            )),
        }
        errors.extend(found.0);
    }
    let arts = layout::read(dir, &mut errors, &mut config.warnings);
    let docs = arts
        .global
        .iter()
        .chain(arts.products.iter().filter_map(|p| p.policy.as_ref()));
    let docs = docs.chain(
        arts.apis
            .iter()
            .filter(|a| is_served_revision(a))
            .flat_map(|a| a.policy.iter().chain(a.operations.values())),
    );
    for doc in docs {
        policies::check_names(doc, &mut errors);
    }
    let mut ids = HashSet::new();
    for api in &arts.apis {
        lower_api(&arts, api, &mut config, &mut ids, &mut errors);
    }
    // The global policy is composed into every operation: report each problem once.
    let mut seen = HashSet::new();
    errors.retain(|e| seen.insert(e.to_string()));
    config.errors.extend(errors);
    config
}

fn lower_api(
    arts: &Artifacts,
    api: &Api,
    config: &mut Config,
    ids: &mut HashSet<String>,
    errors: &mut Vec<ConfigError>,
) {
    let err =
        |field: &str, problem: String, fix: &str| ConfigError::new(&api.file, field, problem, fix);
    if !is_served_revision(api) {
        config.ignored.push(err(
            "",
            "a revision that is not current: APIM does not serve it at the API's path".into(),
            "",
        ));
        return;
    }
    let not_served = match api.props.get("type").and_then(Value::as_str) {
        Some(t) if t != "http" => Some(format!("a {t} API")),
        _ => api
            .other_spec
            .as_ref()
            .map(|f| format!("an API described by {f}")),
    };
    if let Some(what) = not_served {
        config.warnings.push(err(
            "",
            format!("{what} is not served: apigate serves HTTP APIs with an OpenAPI specification"),
            "requests to its path get APIM's 404",
        ));
        return;
    }
    let mut path = api
        .props
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim_matches('/')
        .to_string();
    if let Some(set) = api.props.get("apiVersionSetId").and_then(Value::as_str) {
        match version_segment(arts, api, set) {
            Ok(Some(v)) if !path.ends_with(&format!("/{v}")) && path != v => {
                path = format!("{path}/{v}").trim_start_matches('/').to_string();
            }
            Ok(_) => {}
            Err(e) => {
                errors.push(e);
                return;
            }
        }
    }
    for k in api.props.keys() {
        if API_FIELDS.contains(&k.as_str()) || API_DESCRIPTIVE.contains(&k.as_str()) {
            continue;
        }
        errors.push(err(
            &format!("properties.{k}"),
            format!("{k} is not supported by apigate"),
            &format!("remove it; apigate reads {}", API_FIELDS.join(", ")),
        ));
    }
    if let Some(p) = api.props.get("protocols").and_then(Value::as_array) {
        if !p.iter().any(|p| p == "http") {
            config.warnings.push(err(
                "properties.protocols",
                "https only: apigate serves the API on its own listener (plain or TLS) as it is"
                    .into(),
                "add \"http\" to protocols, or serve apigate with TLS",
            ));
        }
    }
    let path = path.as_str();
    let service_url = api.props.get("serviceUrl").and_then(Value::as_str);
    let Some((spec_file, spec)) = &api.spec else {
        errors.push(err(
            "",
            "no specification: APIM serves an API's operations from it".into(),
            "add specification.yaml (the OpenAPI document the extractor writes)",
        ));
        return;
    };
    let with_policy: Vec<&layout::Product> = arts
        .products
        .iter()
        .filter(|p| p.apis.contains(&api.name) && p.policy.is_some())
        .collect();
    let products: Vec<&PolicyDoc> = with_policy
        .iter()
        .filter_map(|p| p.policy.as_ref())
        .collect();
    if products.len() > 1 {
        let names: Vec<&str> = with_policy.iter().map(|p| p.name.as_str()).collect();
        errors.push(err(
            "",
            format!("the API is in several products with policies ({}): which applies depends on the subscription key used, which apigate does not check yet", names.join(", ")),
            "keep product policies on one of its products",
        ));
        return;
    }
    let subscription = subscription(arts, api, errors);
    let mut seen_ops = HashSet::new();
    let Some(paths) = spec.get("paths").and_then(Value::as_object) else {
        errors.push(ConfigError::new(
            spec_file,
            "/paths",
            "no paths",
            "list the API's operations under paths",
        ));
        return;
    };
    for (template, item) in paths {
        for (method, op) in item.as_object().into_iter().flatten() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let op_name = op
                .get("operationId")
                .and_then(Value::as_str)
                .map(str::to_string);
            let Some(op_name) = op_name else {
                errors.push(ConfigError::new(
                    spec_file,
                    format!("/paths/{template}/{method}"),
                    "no operationId: APIM names operations by it",
                    "add operationId",
                ));
                continue;
            };
            seen_ops.insert(op_name.clone());
            let mut levels: Vec<&PolicyDoc> = arts.global.iter().collect();
            levels.extend(products.iter().copied());
            levels.extend(api.policy.iter());
            levels.extend(api.operations.get(&op_name));
            let op = Operation {
                api,
                path,
                method: method.to_ascii_uppercase(),
                template,
                name: &op_name,
                service_url,
                subscription: subscription.clone(),
                spec: op,
            };
            lower_operation(arts, &op, &levels, config, ids, errors);
        }
    }
    for name in api.operations.keys().filter(|n| !seen_ops.contains(*n)) {
        errors.push(ConfigError::new(
            format!("apis/{}/operations/{name}/policy.xml", api.name),
            "",
            format!("no operation {name:?} in the specification"),
            "name the folder after an operationId of specification",
        ));
    }
}

struct Operation<'a> {
    api: &'a Api,
    path: &'a str,
    method: String,
    template: &'a str,
    name: &'a str,
    service_url: Option<&'a str>,
    subscription: Option<SubscriptionConf>,
    /// The operation's object in the specification.
    spec: &'a Value,
}

/// Whether APIM serves `api` at its path: any API but a revision (`NAME;rev=N`) that is
/// not the current one.
fn is_served_revision(api: &Api) -> bool {
    !api.name.contains(";rev=") || api.props.get("isCurrent").and_then(Value::as_bool) == Some(true)
}

/// The path segment of a version in a `Segment` version set (`v1`); other schemes pick the
/// API per request by header or query, which is not served.
fn version_segment(arts: &Artifacts, api: &Api, set: &str) -> Result<Option<String>, ConfigError> {
    let field = "properties.apiVersionSetId";
    let name = set.rsplit('/').next().unwrap_or(set);
    let Some(scheme) = arts.version_sets.get(name) else {
        return Err(ConfigError::new(
            &api.file,
            field,
            format!("version set {name:?} is not defined"),
            format!("add \"version sets/{name}/versionSetInformation.json\""),
        ));
    };
    if scheme != "Segment" {
        return Err(ConfigError::new(
            &api.file,
            field,
            format!("versioningScheme {scheme:?} (the version in a header or query) is not served"),
            "use the Segment scheme (the version in the path)",
        ));
    }
    Ok(api
        .props
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(str::to_string))
}

/// The keys an API requires: `subscriptionRequired` (APIM's default: true) with the active
/// subscriptions scoped to the API, to a product holding it, or to all APIs.
fn subscription(
    arts: &Artifacts,
    api: &Api,
    errors: &mut Vec<ConfigError>,
) -> Option<SubscriptionConf> {
    if api
        .props
        .get("subscriptionRequired")
        .and_then(Value::as_bool)
        == Some(false)
    {
        return None;
    }
    let names = api.props.get("subscriptionKeyParameterNames");
    let mut name = |field: &str, default: &str| -> String {
        match names.and_then(|n| n.get(field)) {
            None => default.to_string(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => {
                errors.push(ConfigError::new(
                    &api.file,
                    format!("properties.subscriptionKeyParameterNames.{field}"),
                    "must be a name",
                    format!("write \"{default}\""),
                ));
                default.to_string()
            }
        }
    };
    let header = name("header", "Ocp-Apim-Subscription-Key");
    let query = name("query", "subscription-key");
    let products: Vec<String> = arts
        .products
        .iter()
        .filter(|p| p.apis.contains(&api.name))
        .map(|p| format!("/products/{}", p.name))
        .collect();
    let own = format!("/apis/{}", api.name);
    let keys = arts
        .subscriptions
        .iter()
        .filter(|s| s.scope == "/apis" || s.scope == own || products.contains(&s.scope))
        .flat_map(|s| s.keys.iter().cloned())
        .collect();
    Some(SubscriptionConf {
        header,
        query,
        keys,
    })
}

fn lower_operation(
    arts: &Artifacts,
    op: &Operation,
    levels: &[&PolicyDoc],
    config: &mut Config,
    ids: &mut HashSet<String>,
    errors: &mut Vec<ConfigError>,
) {
    let env = policies::Env {
        named: &arts.named_values,
        missing: &arts.missing_secrets,
        backends: &arts.backends,
        scope: expr::Scope { api_path: op.path },
        global_file: "policy.xml",
        subscription_header: op.subscription.as_ref().map(|s| s.header.as_str()),
        operation: Some(op.spec),
    };
    let sections = [0, 1, 2, 3].map(|i| policies::compose(levels, i, errors));
    let before = errors.len();
    let lowered = policies::lower(sections, &env, errors);
    if errors.len() > before {
        return;
    }
    let file = match op.api.operations.get(op.name) {
        Some(doc) => doc.file.clone(),
        None => op.api.file.clone(),
    };
    let Some(base) = lowered.backend.as_deref().or(op.service_url) else {
        errors.push(ConfigError::new(
            &op.api.file,
            "properties.serviceUrl",
            format!("operation {} has no backend", op.name),
            "add serviceUrl, or set-backend-service in a policy",
        ));
        return;
    };
    let (template, wildcard_backend) = wildcard(op.template);
    let template = template.as_str();
    let backend_path = lowered.rewrite.as_deref().unwrap_or(&wildcard_backend);
    let id = unique(format!("{}.{}", op.api.name, op.name), ids);
    let mut route_path = String::new();
    if !op.path.is_empty() {
        route_path = format!("/{}", op.path);
    }
    route_path.push_str(if template == "/" && !route_path.is_empty() {
        ""
    } else {
        template
    });
    if route_path.is_empty() {
        route_path.push('/');
    }
    config.integrations.push(Resource {
        id: id.clone(),
        file: file.clone(),
        conf: IntegrationConf {
            integration_type: "HTTP_PROXY".into(),
            integration_uri: format!("{}{}", base.trim_end_matches('/'), backend_path),
            timeout_in_millis: lowered.timeout_ms,
            ..IntegrationConf::default()
        },
    });
    let response: BTreeMap<String, BTreeMap<String, String>> = if lowered.response.is_empty() {
        BTreeMap::new()
    } else {
        (200..=599u16)
            .map(|s| (s.to_string(), lowered.response.clone()))
            .collect()
    };
    let mut route = RouteConf {
        route_key: format!("{} {route_path}", op.method),
        target: Some(format!("integrations/{id}")),
        operation_name: Some(op.name.to_string()),
        subscription: op.subscription.clone(),
        header_checks: lowered.header_checks,
        auth_failure: lowered.auth_failure,
        answer: lowered.answer,
        quota: lowered.quota,
        on_error: lowered.on_error,
        choices: lowered.choices,
        policies: Some(PoliciesConf {
            ip_filter: lowered.ip_filter,
            rate_limit: lowered.rate_limit,
            request_parameters: lowered.request,
            response_parameters: response,
        }),
        ..RouteConf::default()
    };
    if let Some((auth_id, conf)) = lowered.jwt {
        route.authorization_type = Some("JWT".into());
        route.authorizer_id = Some(auth_id.clone());
        if !config.authorizers.iter().any(|a| a.id == auth_id) {
            config.authorizers.push(Resource {
                id: auth_id,
                file: file.clone(),
                conf,
            });
        }
    }
    if let Some(cors) = lowered.cors {
        config.api.cors_configuration = Some(cors);
    }
    config.routes.push(Resource {
        id,
        file,
        conf: route,
    });
}

/// An APIM URL template as a route path and a backend path: a trailing `/*` or `{*name}`
/// (APIM's wildcards) becomes a greedy `{proxy+}` / `{name+}`, forwarded as `{proxy}`.
fn wildcard(template: &str) -> (String, String) {
    if let Some(head) = template.strip_suffix("/*") {
        return (format!("{head}/{{proxy+}}"), format!("{head}/{{proxy}}"));
    }
    if let Some((head, name)) = template
        .rsplit_once("/{*")
        .and_then(|(h, rest)| Some((h, rest.strip_suffix('}')?)))
    {
        return (format!("{head}/{{{name}+}}"), format!("{head}/{{{name}}}"));
    }
    (template.to_string(), template.to_string())
}

/// `base`, or `base-2`, ... when taken.
fn unique(base: String, ids: &mut HashSet<String>) -> String {
    let mut id = base.clone();
    let mut n = 2;
    while !ids.insert(id.clone()) {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}
