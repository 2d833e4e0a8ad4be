//! Cross-file validation: every integration and route file checked once, on its own and
//! against the files it references. What does not depend on a stage is compiled here too
//! (targets without stage variables, mappings, route policies), so that each stage reuses
//! it instead of compiling it again.

use super::policies::{mapping_refs, MappingPair, PolicyBlock};
use super::stage_vars::with_sample_stage_vars;
use crate::config::{
    closest, Config, ConfigError, ConfigErrors, IntegrationConf, Resource, RouteConf,
};
use crate::integration::http_proxy::Target;
use crate::mapping::Reference;
use crate::policy::lambda_authorizer::LambdaAuthorizer;
use crate::routing::RouteKey;
use crate::tls::upstream::{PeerTls, Roots};
use http::Method;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

pub(super) const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// What the stages compile from: the files that passed their checks, with what does not
/// depend on a stage already compiled.
pub(super) struct Checked<'c> {
    /// Every integration that parsed, by id (with errors or not: its file reports them).
    pub integrations: HashMap<&'c str, CheckedIntegration<'c>>,
    /// Routes without errors of their own, by id.
    pub routes: HashMap<&'c str, CheckedRoute<'c>>,
    /// Every route file by id, with its RouteKey (`None`: the file did not parse).
    pub route_keys: BTreeMap<&'c str, Option<&'c str>>,
    /// Lambda (REQUEST) authorizers that compiled, by id (they need the functions).
    pub lambda_authorizers: HashMap<&'c str, Arc<LambdaAuthorizer>>,
    /// AGGREGATE integrations without errors, by id (`integrations` holds their mappings).
    pub aggregates: HashMap<&'c str, super::aggregate::CheckedAggregate<'c>>,
}

impl<'c> Checked<'c> {
    /// Checks every integration, then every route, reporting errors in that order.
    pub fn new(config: &'c Config, errors: &mut ConfigErrors) -> Self {
        let roots = crate::tls::upstream::load_roots(
            &config.dir,
            config.gateway.upstream_ca_file.as_deref(),
            errors,
        );
        let functions = super::functions::load(config, errors);
        let lambda_authorizers = config
            .authorizers
            .iter()
            .filter(|a| a.conf.authorizer_type == "REQUEST")
            .filter_map(|a| {
                let resolve = |name: &str| functions.resolve(name);
                LambdaAuthorizer::compile(&a.file, &a.id, &a.conf, &resolve, errors)
                    .map(|l| (a.id.as_str(), Arc::new(l)))
            })
            .collect();
        let integrations = config
            .integrations
            .iter()
            .map(|r| {
                (
                    r.id.as_str(),
                    validate_integration(r, &roots, &functions, errors),
                )
            })
            .collect();
        let aggregates = super::aggregate::check(config, &integrations, errors);
        let routes = validate_routes(config, &integrations, errors);
        let route_keys = config
            .routes
            .iter()
            .map(|r| (r.id.as_str(), Some(r.conf.route_key.as_str())))
            .chain(
                config
                    .unparsed
                    .iter()
                    .filter_map(|u| u.strip_prefix("routes/"))
                    .map(|id| (id, None)),
            )
            .collect();
        Checked {
            integrations,
            routes,
            route_keys,
            lambda_authorizers,
            aggregates,
        }
    }
}

/// An integration file, checked, with its target and mappings compiled for every stage
/// that does not need its own (see `CheckedTarget` and `MappingPair`).
pub(super) struct CheckedIntegration<'c> {
    pub res: &'c Resource<IntegrationConf>,
    pub target: CheckedTarget,
    pub timeout: Duration,
    /// `None`: the client's method (`ANY`).
    pub method: Option<Method>,
    pub mappings: MappingPair<'c>,
    /// `TlsConfig` and the trusted roots, for https targets.
    pub tls: PeerTls,
    /// AWS_PROXY: the function and payload format (`target` is then unused).
    pub lambda: Option<(
        crate::integration::aws_proxy::Target,
        crate::integration::aws_proxy::PayloadFormat,
    )>,
}

/// An IntegrationUri as validation left it.
pub(super) enum CheckedTarget {
    /// Without stage variables: parsed (its host resolved) once for every stage; `None`
    /// when that failed (reported).
    Fixed(Option<Box<Target>>),
    /// With stage variables: parsed per stage. `report`: its syntax passed with sample
    /// values, so a stage's failure is the stage's to report (else it was reported here).
    PerStage { report: bool },
}

/// A route without errors of its own, and not a duplicate of an earlier one.
pub(super) struct CheckedRoute<'c> {
    pub res: &'c Resource<RouteConf>,
    pub key: RouteKey,
    /// The integration's id.
    pub integration: &'c str,
    pub policies: Option<PolicyBlock<'c>>,
}

/// The id in a reference such as `routes/r0` to a resource of `kind`.
pub(super) fn reference<'a>(value: &'a str, kind: &str) -> Option<&'a str> {
    value.strip_prefix(kind).and_then(|r| r.strip_prefix('/'))
}

/// Checks what an integration file says on its own; what depends on a stage's variables
/// is left to that stage.
fn validate_integration<'c>(
    r: &'c Resource<IntegrationConf>,
    roots: &Roots,
    functions: &super::functions::Functions,
    errors: &mut ConfigErrors,
) -> CheckedIntegration<'c> {
    let c = &r.conf;
    let f = r.file.as_str();
    if c.integration_type == "AWS_PROXY" {
        return validate_lambda(r, functions, errors);
    }
    if c.integration_type == super::aggregate::TYPE {
        return super::aggregate::checked_integration(r, errors);
    }
    if c.integration_type != "HTTP_PROXY" {
        errors.push(ConfigError::new(
            f,
            "IntegrationType",
            format!("{:?} is not supported", c.integration_type),
            "use \"HTTP_PROXY\", \"AWS_PROXY\" or \"AGGREGATE\"",
        ));
    }
    if let Some(t) = c.timeout_in_millis {
        if !(50..=30_000).contains(&t) {
            errors.push(ConfigError::new(
                f,
                "TimeoutInMillis",
                format!("{t} is outside 50..30000"),
                "use a value from 50 to 30000 (AWS's limits)",
            ));
        }
    }
    match c.payload_format_version.as_deref() {
        None | Some("1.0") => {}
        Some(v) => errors.push(ConfigError::new(
            f,
            "PayloadFormatVersion",
            format!("{v:?} is not supported for HTTP_PROXY"),
            "use \"1.0\" (the only version AWS allows for HTTP integrations)",
        )),
    }
    if let Some(m) = &c.integration_method {
        if m != "ANY" && (m.is_empty() || !m.chars().all(|ch| ch.is_ascii_uppercase())) {
            errors.push(ConfigError::new(
                f,
                "IntegrationMethod",
                format!("{m:?} is not a method"),
                "use ANY or an upper-case method like GET",
            ));
        }
    }
    // Checked once here; a URI with stage variables is parsed per stage, which reports only
    // what depends on them.
    let timeout = Duration::from_millis(c.timeout_in_millis.unwrap_or(DEFAULT_TIMEOUT_MS));
    // An aggregate's later backend may read an earlier answer: a path variable here.
    let uri = &*crate::integration::aggregate::refs::as_path_vars(&c.integration_uri);
    let tls = PeerTls::new(f, c.tls_config.as_ref(), Some(roots), errors);
    let target = if uri.contains("${stageVariables.") {
        let checked = with_sample_stage_vars(uri).and_then(|sample| Target::check(&sample));
        let report = checked.is_ok();
        if let Err(e) = checked {
            errors.push(ConfigError::new(f, "IntegrationUri", e.problem, e.fix));
        }
        CheckedTarget::PerStage { report }
    } else {
        match Target::parse(uri, timeout) {
            Ok(mut t) => {
                tls.apply(&mut t.peer);
                CheckedTarget::Fixed(Some(Box::new(t)))
            }
            Err(e) => {
                errors.push(ConfigError::new(f, "IntegrationUri", e.problem, e.fix));
                CheckedTarget::Fixed(None)
            }
        }
    };
    let mappings =
        MappingPair::compile(f, "", &c.request_parameters, &c.response_parameters, errors);
    if let Some(ct) = &c.connection_type {
        if ct != "INTERNET" {
            errors.push(ConfigError::new(
                f,
                "ConnectionType",
                format!("{ct:?} is not supported"),
                "use \"INTERNET\" or remove it",
            ));
        }
    }
    CheckedIntegration {
        res: r,
        target,
        timeout,
        // An invalid method was reported above.
        method: match c.integration_method.as_deref() {
            None | Some("ANY") => None,
            Some(m) => Method::from_bytes(m.as_bytes()).ok(),
        },
        mappings,
        tls,
        lambda: None,
    }
}

/// An AWS_PROXY integration: its function (see `functions`), timeout and mappings.
fn validate_lambda<'c>(
    r: &'c Resource<IntegrationConf>,
    functions: &super::functions::Functions,
    errors: &mut ConfigErrors,
) -> CheckedIntegration<'c> {
    let c = &r.conf;
    let f = r.file.as_str();
    if let Some(t) = c.timeout_in_millis {
        if !(50..=30_000).contains(&t) {
            errors.push(ConfigError::new(
                f,
                "TimeoutInMillis",
                format!("{t} is outside 50..30000"),
                "use a value from 50 to 30000 (AWS's limits)",
            ));
        }
    }
    let lambda = super::functions::check_integration(r, functions, errors);
    CheckedIntegration {
        res: r,
        target: CheckedTarget::Fixed(None),
        timeout: Duration::from_millis(c.timeout_in_millis.unwrap_or(DEFAULT_TIMEOUT_MS)),
        method: None,
        mappings: MappingPair::compile(
            f,
            "",
            &c.request_parameters,
            &c.response_parameters,
            errors,
        ),
        tls: PeerTls::new(f, None, None, errors),
        lambda,
    }
}

/// Checks each route file and its references (integration, authorizer, path variables the
/// integration and mappings read). Routes with errors are left out of the result, so the
/// stages serving them do not report them again.
fn validate_routes<'c>(
    config: &'c Config,
    integrations: &HashMap<&str, CheckedIntegration<'c>>,
    errors: &mut ConfigErrors,
) -> HashMap<&'c str, CheckedRoute<'c>> {
    let mut out = HashMap::new();
    // Route identity (method and path shape) -> (file, key as written).
    let mut seen_keys: HashMap<String, (&str, &str)> = HashMap::new();
    for r in &config.routes {
        let f = r.file.as_str();
        let c = &r.conf;
        let key = match RouteKey::parse(&c.route_key) {
            Ok(k) => Some(k),
            Err(e) => {
                errors.push(ConfigError::new(
                    f,
                    "RouteKey",
                    format!("{:?}: {e}", c.route_key),
                    "write it as \"GET /pets/{id}\", \"ANY /{proxy+}\" or \"$default\"",
                ));
                None
            }
        };
        // Same method and path in two files (also `{id}` vs `{petId}` at the same place):
        // the second one is left out, so the stages do not report it again.
        let mut duplicate = false;
        if let Some(k) = &key {
            if let Some((other, other_key)) = seen_keys.get(&k.identity()) {
                let (problem, fix) = if *k == RouteKey::Default {
                    (
                        format!("a second $default route (the first is in {other})"),
                        format!("remove {f} or {other}"),
                    )
                } else {
                    (
                        format!(
                            "{:?} is the same route as {other_key:?} in {other} (variable names aside)",
                            c.route_key
                        ),
                        format!("remove {f} or {other}, or change the method or path of one"),
                    )
                };
                errors.push(ConfigError::new(f, "RouteKey", problem, fix));
                duplicate = true;
            } else {
                seen_keys.insert(k.identity(), (f, c.route_key.as_str()));
            }
        }
        let integration = match c.target.as_deref() {
            None => {
                errors.push(ConfigError::new(
                    f,
                    "Target",
                    "missing",
                    "set \"Target\": \"integrations/<id>\"",
                ));
                None
            }
            Some(t) => match reference(t, "integrations") {
                Some(id) if integrations.contains_key(id) => Some(id),
                // Its own file's error says what is wrong.
                Some(id) if config.unparsed.contains(&format!("integrations/{id}")) => None,
                Some(id) => {
                    let hint = closest(id, integrations.keys().copied())
                        .map(|s| format!("did you mean integrations/{s}?"))
                        .unwrap_or_else(|| format!("create integrations/{id}.json"));
                    errors.push(ConfigError::new(
                        f,
                        "Target",
                        format!("{t:?}: no integration {id:?} exists"),
                        hint,
                    ));
                    None
                }
                None => {
                    errors.push(ConfigError::new(
                        f,
                        "Target",
                        format!("{t:?} is not a reference"),
                        "write \"integrations/<id>\"",
                    ));
                    None
                }
            },
        };
        let auth_type = c.authorization_type.as_deref().unwrap_or("NONE");
        if auth_type == "NONE" && !c.authorization_scopes.is_empty() {
            errors.push(ConfigError::new(
                f,
                "AuthorizationScopes",
                "set but AuthorizationType is NONE, so no scope would ever be checked",
                "set \"AuthorizationType\": \"JWT\" with an AuthorizerId, or remove AuthorizationScopes",
            ));
        }
        match (auth_type, &c.authorizer_id) {
            ("NONE", None) => {}
            ("NONE", Some(_)) => errors.push(ConfigError::new(
                f,
                "AuthorizerId",
                "set but AuthorizationType is NONE",
                "set \"AuthorizationType\": \"JWT\" or remove AuthorizerId",
            )),
            ("JWT" | "CUSTOM", None) => errors.push(ConfigError::new(
                f,
                "AuthorizerId",
                format!("required when AuthorizationType is {auth_type}"),
                "set \"AuthorizerId\" to an authorizer id",
            )),
            ("JWT" | "CUSTOM", Some(id)) => {
                let id = reference(id, "authorizers").unwrap_or(id);
                // AWS: JWT routes use JWT authorizers, CUSTOM routes REQUEST (Lambda) ones.
                let wanted = if auth_type == "JWT" { "JWT" } else { "REQUEST" };
                match config.authorizers.iter().find(|a| a.id == id) {
                    Some(a) if a.conf.authorizer_type != wanted => errors.push(ConfigError::new(
                        f,
                        "AuthorizationType",
                        format!(
                            "{auth_type} but authorizer {id:?} is {:?}",
                            a.conf.authorizer_type
                        ),
                        "use \"JWT\" for a JWT authorizer, \"CUSTOM\" for a REQUEST (Lambda) one",
                    )),
                    Some(_) => {}
                    None if config.unparsed.contains(&format!("authorizers/{id}")) => {}
                    None => errors.push(ConfigError::new(
                        f,
                        "AuthorizerId",
                        format!("no authorizer {id:?} exists"),
                        format!("create authorizers/{id}.json"),
                    )),
                }
            }
            (other, _) => errors.push(ConfigError::new(
                f,
                "AuthorizationType",
                format!("{other:?} is not supported"),
                "use \"NONE\", \"JWT\" or \"CUSTOM\"",
            )),
        }
        let policies = c
            .policies
            .as_ref()
            .map(|p| PolicyBlock::compile(f, p, errors));
        if let (Some(key), Some(integration)) = (key, integration) {
            if let Some(i) = integrations.get(integration).map(|i| i.res) {
                // Variables the IntegrationUri needs must exist in the route key.
                let vars: Vec<&str> = key.variables().collect();
                for v in uri_vars(&i.conf.integration_uri) {
                    if !vars.contains(&v.as_str()) {
                        errors.push(ConfigError::new(
                            f,
                            "Target",
                            format!("{} uses {{{v}}} but route key {:?} has no such variable", i.file, c.route_key),
                            format!("add {{{v}}} to the route path or remove it from the IntegrationUri"),
                        ));
                    }
                }
                // So must those its mappings read (an integration may serve several routes:
                // each is checked).
                for (field, name) in
                    path_references(&i.conf.request_parameters, &i.conf.response_parameters, "")
                {
                    if !vars.contains(&name.as_str()) {
                        errors.push(ConfigError::new(
                            &i.file,
                            field,
                            format!(
                                "reads $request.path.{name}, but route key {:?} of {f} has no {{{name}}}",
                                c.route_key
                            ),
                            format!("add {{{name}}} to that route's path, or read another value"),
                        ));
                    }
                }
            }
            if let Some(p) = &c.policies {
                let vars: Vec<&str> = key.variables().collect();
                for (field, name) in
                    path_references(&p.request_parameters, &p.response_parameters, "Policies.")
                {
                    if !vars.contains(&name.as_str()) {
                        errors.push(ConfigError::new(
                            f,
                            field,
                            format!(
                                "reads $request.path.{name}, but route key {:?} has no {{{name}}}",
                                c.route_key
                            ),
                            format!("add {{{name}}} to the route path, or read another value"),
                        ));
                    }
                }
            }
            if !duplicate {
                out.insert(
                    r.id.as_str(),
                    CheckedRoute {
                        res: r,
                        key,
                        integration,
                        policies,
                    },
                );
            }
        }
    }
    out
}

/// `$request.path.NAME` reads of a mapping pair, as `(field, NAME)`.
fn path_references(
    request: &BTreeMap<String, String>,
    response: &BTreeMap<String, BTreeMap<String, String>>,
    prefix: &str,
) -> Vec<(String, String)> {
    mapping_refs(request, response, prefix)
        .into_iter()
        .filter_map(|(field, r)| match r {
            Reference::PathVariable(n) => Some((field, n)),
            Reference::StageVariable(_) => None,
        })
        .collect()
}

/// `{name}` placeholders in an IntegrationUri path (not `${stageVariables...}`).
pub(super) fn uri_vars(uri: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = uri;
    while let Some(start) = rest.find('{') {
        let is_stage_var = start > 0 && rest.as_bytes()[start - 1] == b'$';
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        if !is_stage_var {
            out.push(
                rest[start + 1..start + end]
                    .trim_end_matches('+')
                    .to_string(),
            );
        }
        rest = &rest[start + end + 1..];
    }
    out
}
