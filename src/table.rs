//! The runtime table: a configuration validated and compiled once, then shared read-only
//! by every request until a reload publishes a new one.

use crate::config::{
    closest, Config, ConfigError, ConfigErrors, GatewayConf, IntegrationConf, PoliciesConf,
    Resource, RouteConf, StageConf,
};
use crate::mapping::{mapping_references, Reference, RequestMapping, ResponseMapping};
use crate::policy::ipfilter::{parse_nets, IpFilter};
use crate::policy::jwt::JwtAuthorizer;
use crate::policy::ratelimit::{self, KeySource, Store};
use crate::policy::throttle::{self, TokenBucket};
use crate::routing::{BuildError, RouteKey, Router};
use crate::upstream::Target;
use http::Method;
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// Process settings from `gateway.json` (flags override some at start-up).
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    pub metrics_listen: Option<String>,
    pub threads: usize,
    pub max_body_bytes: u64,
    pub trusted_proxies: Vec<IpNet>,
    pub keepalive_pool_size: usize,
}

/// A `RateLimit` policy: `calls` per `period` for each value of `key`, counted under
/// `scope` (so an api-wide limit is shared by all routes).
#[derive(Debug, Clone)]
pub struct RateLimit {
    pub scope: Arc<str>,
    pub calls: u64,
    pub period_secs: u64,
    pub key: KeySource,
}

/// Policies of one scope (api, stage or route), compiled.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    pub ip_filter: Option<IpFilter>,
    pub rate_limit: Option<RateLimit>,
    pub request: RequestMapping,
    pub response: ResponseMapping,
}

/// An integration compiled for one stage (stage variables substituted).
#[derive(Debug)]
pub struct Integration {
    pub id: String,
    pub target: Target,
    /// `None`: the client's method (`ANY`).
    pub method: Option<Method>,
    pub request: RequestMapping,
    pub response: ResponseMapping,
}

/// A route as one stage serves it.
#[derive(Debug)]
pub struct Route {
    /// The route key template: `GET /pets/{id}` or `$default` (metrics and `$context.routeKey`).
    pub key: Arc<str>,
    pub is_default: bool,
    pub integration: Arc<Integration>,
    /// The route's own IP filter (api and stage filters run before route selection).
    pub ip_filter: Option<IpFilter>,
    /// AWS stage throttling for this route (`None`: unlimited); shared with the table this
    /// one replaced when the settings are unchanged, so a reload does not refill buckets.
    pub throttle: Option<Arc<TokenBucket>>,
    pub rate_limits: Vec<RateLimit>,
    pub request_maps: Vec<RequestMapping>,
    pub response_maps: Vec<ResponseMapping>,
    pub authorizer: Option<Arc<JwtAuthorizer>>,
    pub scopes: Vec<String>,
    pub metrics: crate::metrics::RouteMetrics,
}

pub struct Stage {
    pub name: Arc<str>,
    /// The stage's own IP filter, checked before its routes are selected.
    pub ip_filter: Option<IpFilter>,
    pub router: Router<Arc<Route>>,
    pub access_log: Option<Arc<crate::accesslog::AccessLog>>,
}

pub struct Table {
    pub settings: Settings,
    /// Rate-limit counters; kept across reloads while `RateLimitStore` is unchanged.
    pub store: Arc<Store>,
    store_conf: Option<crate::config::RateLimitStoreConf>,
    /// `api.json`'s Name: it namespaces the keys of a Redis store.
    api_name: Option<String>,
    /// By id, with the configuration each was built from (to keep caches across reloads).
    pub authorizers: HashMap<String, (crate::config::AuthorizerConf, Arc<JwtAuthorizer>)>,
    pub cors: Option<crate::policy::cors::Cors>,
    /// `api.json`'s IP filter, checked before stage and route selection: a forbidden client
    /// learns nothing about which routes exist.
    pub api_ip_filter: Option<IpFilter>,
    named: HashMap<String, Stage>,
    default_stage: Option<Stage>,
}

impl Table {
    /// Picks the stage: a first path segment naming a stage wins, else `$default`.
    /// Returns the stage and the path it routes (stage prefix removed).
    pub fn stage_for<'p>(&self, path: &'p str) -> Option<(&Stage, &'p str)> {
        if !self.named.is_empty() {
            let rest = path.strip_prefix('/').unwrap_or(path);
            let (first, tail) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            if let Some(stage) = self.named.get(first) {
                return Some((stage, tail));
            }
        }
        self.default_stage.as_ref().map(|s| (s, path))
    }

    fn stage_named(&self, name: &str) -> Option<&Stage> {
        match name {
            "$default" => self.default_stage.as_ref(),
            _ => self.named.get(name),
        }
    }

    pub fn stages(&self) -> impl Iterator<Item = &Stage> {
        self.named.values().chain(self.default_stage.iter())
    }

    /// Validates and compiles a whole configuration, reporting every error. `previous` is
    /// the table being replaced on reload: its rate-limit store is kept when unchanged.
    pub fn compile(config: &Config, previous: Option<&Table>) -> Result<Table, ConfigErrors> {
        // What loading found first; the checks below run on every file that parsed.
        let mut errors = ConfigErrors(config.errors.clone());
        let settings = compile_settings(&config.gateway, &mut errors);
        let store_conf = config.gateway.rate_limit_store.clone();
        let store = match previous {
            // A local store keeps its counters across any reload; a Redis store is rebuilt
            // when the api's Name, and so its key namespace, changes.
            Some(p)
                if p.store_conf == store_conf
                    && (p.store.kind() == "local" || p.api_name == config.api.name) =>
            {
                Some(p.store.clone())
            }
            _ => Store::from_conf(store_conf.as_ref(), config.api.name.as_deref(), &mut errors),
        };
        let cors = config
            .api
            .cors_configuration
            .as_ref()
            .and_then(|c| crate::policy::cors::Cors::compile(c, &mut errors));
        // Api policies are compiled again per stage (stage variables); errors are reported once here.
        let mut api_ip_filter = None;
        if let Some(p) = &config.api.policies {
            api_ip_filter = compile_policies(
                "api.json",
                "Policies",
                p,
                &BTreeMap::new(),
                "api",
                &mut errors,
            )
            .ip_filter;
        }

        let mut authorizers = HashMap::new();
        for a in &config.authorizers {
            // An unchanged authorizer keeps its keys and verified tokens; one reading a
            // JwksFile is rebuilt, so a reload picks up a rotated or revoked key in the file.
            let reused = previous
                .and_then(|p| p.authorizers.get(&a.id))
                .filter(|(conf, _)| *conf == a.conf && a.conf.jwks_file.is_none())
                .map(|(_, auth)| auth.clone());
            let compiled = reused.or_else(|| {
                JwtAuthorizer::compile(&a.file, &a.id, &a.conf, &config.dir, &mut errors)
                    .map(Arc::new)
            });
            if let Some(auth) = compiled {
                authorizers.insert(a.id.clone(), (a.conf.clone(), auth));
            }
        }
        let integrations: HashMap<&str, &Resource<IntegrationConf>> = config
            .integrations
            .iter()
            .map(|r| (r.id.as_str(), r))
            .collect();
        let authorizer_ids: Vec<&str> = config.authorizers.iter().map(|r| r.id.as_str()).collect();
        for i in &config.integrations {
            validate_integration(i, &mut errors);
        }
        let routes = validate_routes(config, &integrations, &authorizer_ids, &mut errors);

        let implied_default;
        let stages: Vec<(&str, &StageConf)> = if config.has_stages_dir {
            config
                .stages
                .iter()
                .map(|s| (s.file.as_str(), &s.conf))
                .collect()
        } else {
            implied_default = StageConf {
                name: "$default".into(),
                ..StageConf::default()
            };
            vec![("(implied $default stage)", &implied_default)]
        };
        // Every route file by id, with its RouteKey (`None`: the file did not parse).
        let route_keys: BTreeMap<&str, Option<&str>> = config
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

        let mut named = HashMap::new();
        let mut default_stage = None;
        for (file, stage) in stages {
            let api_policies = config
                .api
                .policies
                .as_ref()
                .map(|p| {
                    compile_policies(
                        "api.json",
                        "Policies",
                        p,
                        &stage.stage_variables,
                        "api",
                        &mut ConfigErrors::default(),
                    )
                })
                .unwrap_or_default();
            check_policy_stage_variables(config, file, stage, &mut errors);
            let Some(compiled) = compile_stage(
                file,
                stage,
                &routes,
                &integrations,
                &route_keys,
                &api_policies,
                &authorizers,
                &config.dir,
                previous.and_then(|p| p.stage_named(&stage.name)),
                &mut errors,
            ) else {
                continue;
            };
            if stage.name == "$default" {
                if default_stage.is_some() {
                    errors.push(ConfigError::new(
                        file,
                        "Name",
                        "a second $default stage",
                        "keep one $default stage",
                    ));
                }
                default_stage = Some(compiled);
            } else if named.insert(stage.name.clone(), compiled).is_some() {
                errors.push(ConfigError::new(
                    file,
                    "Name",
                    format!("stage name {:?} is used twice", stage.name),
                    "give each stage a unique Name",
                ));
            }
        }
        if errors.is_empty() {
            let Some(store) = store else {
                return Err(errors);
            };
            Ok(Table {
                settings,
                authorizers,
                store,
                store_conf,
                api_name: config.api.name.clone(),
                cors,
                api_ip_filter,
                named,
                default_stage,
            })
        } else {
            Err(errors)
        }
    }
}

fn compile_settings(g: &GatewayConf, errors: &mut ConfigErrors) -> Settings {
    let trusted = parse_nets("gateway.json", "TrustedProxies", &g.trusted_proxies, errors)
        .unwrap_or_default();
    if g.threads == Some(0) {
        errors.push(ConfigError::new(
            "gateway.json",
            "Threads",
            "must be at least 1",
            "set Threads to 1 or more",
        ));
    }
    if g.max_body_bytes == Some(0) {
        errors.push(ConfigError::new(
            "gateway.json",
            "MaxBodyBytes",
            "must be positive",
            "remove it for AWS's 10 MiB",
        ));
    }
    for (field, addr) in [("Listen", &g.listen), ("MetricsListen", &g.metrics_listen)] {
        if let Some(a) = addr {
            if a.parse::<std::net::SocketAddr>().is_err() {
                errors.push(ConfigError::new(
                    "gateway.json",
                    field,
                    format!("{a:?} is not HOST:PORT"),
                    "use e.g. \"127.0.0.1:8080\"",
                ));
            }
        }
    }
    Settings {
        listen: g.listen.clone().unwrap_or_else(|| "127.0.0.1:8080".into()),
        metrics_listen: g.metrics_listen.clone(),
        threads: g.threads.unwrap_or(1).max(1),
        max_body_bytes: g.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY),
        trusted_proxies: trusted,
        keepalive_pool_size: g.upstream_keepalive_pool_size.unwrap_or(128),
    }
}

fn compile_policies(
    file: &str,
    field: &str,
    p: &PoliciesConf,
    stage_vars: &BTreeMap<String, String>,
    scope: &str,
    errors: &mut ConfigErrors,
) -> Policies {
    let rate_limit = p.rate_limit.as_ref().and_then(|r| {
        let before = errors.0.len();
        ratelimit::validate(file, &format!("{field}.RateLimit"), r, errors);
        let key = KeySource::parse(&r.key)?;
        (errors.0.len() == before).then(|| RateLimit {
            scope: Arc::from(scope),
            calls: r.calls,
            period_secs: r.period_seconds,
            key,
        })
    });
    Policies {
        rate_limit,
        ip_filter: p
            .ip_filter
            .as_ref()
            .and_then(|f| IpFilter::compile(file, &format!("{field}.IpFilter"), f, errors)),
        request: RequestMapping::compile(
            file,
            &format!("{field}.RequestParameters"),
            &p.request_parameters,
            stage_vars,
            errors,
        ),
        response: ResponseMapping::compile(
            file,
            &format!("{field}.ResponseParameters"),
            &p.response_parameters,
            stage_vars,
            errors,
        ),
    }
}

fn validate_integration(r: &Resource<IntegrationConf>, errors: &mut ConfigErrors) {
    let c = &r.conf;
    let f = r.file.as_str();
    if c.integration_type != "HTTP_PROXY" {
        errors.push(ConfigError::new(
            f,
            "IntegrationType",
            format!("{:?} is not supported", c.integration_type),
            "use \"HTTP_PROXY\"",
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
    // Checked once here; `compile_integration` fills in each stage's variables and reports
    // only what depends on them.
    let uri = &c.integration_uri;
    let checked = if uri.contains("${stageVariables.") {
        with_sample_stage_vars(uri).and_then(|sample| Target::check(&sample))
    } else {
        Target::parse(uri, Duration::from_millis(DEFAULT_TIMEOUT_MS)).map(|_| ())
    };
    if let Err(e) = checked {
        errors.push(ConfigError::new(f, "IntegrationUri", e.problem, e.fix));
    }
    // Mappings are compiled again per stage (stage variables); their errors are reported once here.
    let no_vars = BTreeMap::new();
    RequestMapping::compile(
        f,
        "RequestParameters",
        &c.request_parameters,
        &no_vars,
        errors,
    );
    ResponseMapping::compile(
        f,
        "ResponseParameters",
        &c.response_parameters,
        &no_vars,
        errors,
    );
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
}

struct CheckedRoute<'c> {
    res: &'c Resource<RouteConf>,
    key: RouteKey,
    integration: &'c str,
}

fn reference<'a>(value: &'a str, kind: &str) -> Option<&'a str> {
    value.strip_prefix(kind).and_then(|r| r.strip_prefix('/'))
}

fn validate_routes<'c>(
    config: &'c Config,
    integrations: &HashMap<&str, &Resource<IntegrationConf>>,
    authorizer_ids: &[&str],
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
            ("JWT", None) => errors.push(ConfigError::new(
                f,
                "AuthorizerId",
                "required when AuthorizationType is JWT",
                "set \"AuthorizerId\" to an authorizer id",
            )),
            ("JWT", Some(id)) => {
                let id = reference(id, "authorizers").unwrap_or(id);
                if !authorizer_ids.contains(&id)
                    && !config.unparsed.contains(&format!("authorizers/{id}"))
                {
                    errors.push(ConfigError::new(
                        f,
                        "AuthorizerId",
                        format!("no authorizer {id:?} exists"),
                        format!("create authorizers/{id}.json"),
                    ));
                }
            }
            (other, _) => errors.push(ConfigError::new(
                f,
                "AuthorizationType",
                format!("{other:?} is not supported"),
                "use \"NONE\" or \"JWT\"",
            )),
        }
        if let Some(p) = &c.policies {
            compile_policies(f, "Policies", p, &BTreeMap::new(), "", errors);
        }
        if let (Some(key), Some(integration)) = (key, integration) {
            if let Some(i) = integrations.get(integration) {
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
                    },
                );
            }
        }
    }
    out
}

/// Each `(field, reference)` in a pair of `RequestParameters` and `ResponseParameters`,
/// fields spelled as in the file (`prefix` for a `Policies` block).
fn mapping_refs(
    request: &BTreeMap<String, String>,
    response: &BTreeMap<String, BTreeMap<String, String>>,
    prefix: &str,
) -> Vec<(String, Reference)> {
    let request = request
        .iter()
        .map(|(k, v)| (format!("{prefix}RequestParameters.{k}"), k, v));
    let response = response.iter().flat_map(|(status, entries)| {
        entries
            .iter()
            .map(move |(k, v)| (format!("{prefix}ResponseParameters.{status}.{k}"), k, v))
    });
    mapping_references(request.chain(response))
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

/// Reports each `$stageVariables.NAME` a mapping pair reads that the stage in
/// `stage_file` does not define (it would read as "").
fn check_stage_references(
    file: &str,
    request: &BTreeMap<String, String>,
    response: &BTreeMap<String, BTreeMap<String, String>>,
    prefix: &str,
    stage_file: &str,
    vars: &BTreeMap<String, String>,
    errors: &mut ConfigErrors,
) {
    for (field, r) in mapping_refs(request, response, prefix) {
        if let Reference::StageVariable(name) = r {
            if !vars.contains_key(&name) {
                let (problem, fix) = undefined_stage_variable(&name, stage_file);
                errors.push(ConfigError::new(file, field, problem, fix));
            }
        }
    }
}

/// The words for a stage variable that a stage lacks.
fn undefined_stage_variable(name: &str, stage_file: &str) -> (String, String) {
    if stage_file.starts_with('(') {
        (
            format!("reads stage variable {name:?}, but there is no stage to define it ({stage_file} has none)"),
            format!("add a stages/ file with \"StageVariables\": {{\"{name}\": \"...\"}}"),
        )
    } else {
        (
            format!("reads stage variable {name:?}, which {stage_file} does not define"),
            format!("add \"{name}\" to StageVariables in {stage_file}, or stop reading it"),
        )
    }
}

/// Stage variables read by the api's, this stage's and its routes' policy mappings must be
/// defined by the stage: they are compiled per stage, where a missing one reads as "".
fn check_policy_stage_variables(
    config: &Config,
    stage_file: &str,
    stage: &StageConf,
    errors: &mut ConfigErrors,
) {
    let vars = &stage.stage_variables;
    let mut scopes: Vec<(&str, &PoliciesConf)> = Vec::new();
    scopes.extend(config.api.policies.as_ref().map(|p| ("api.json", p)));
    scopes.extend(stage.policies.as_ref().map(|p| (stage_file, p)));
    for r in &config.routes {
        let served = match &stage.routes {
            None => true,
            Some(list) => list
                .iter()
                .any(|item| reference(item, "routes").unwrap_or(item) == r.id),
        };
        if let (true, Some(p)) = (served, &r.conf.policies) {
            scopes.push((&r.file, p));
        }
    }
    for (file, p) in scopes {
        check_stage_references(
            file,
            &p.request_parameters,
            &p.response_parameters,
            "Policies.",
            stage_file,
            vars,
            errors,
        );
    }
}

/// `{name}` placeholders in an IntegrationUri path (not `${stageVariables...}`).
fn uri_vars(uri: &str) -> Vec<String> {
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

/// `${stageVariables.x}` in an IntegrationUri, substituted for the stage in `stage_file`.
fn substitute_stage_vars(
    uri: &str,
    vars: &BTreeMap<String, String>,
    stage_file: &str,
) -> Result<String, (String, String)> {
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(start) = rest.find("${stageVariables.") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "${stageVariables.".len()..];
        let end = after.find('}').ok_or((
            "unclosed ${stageVariables.".to_string(),
            "close it: ${stageVariables.NAME}".to_string(),
        ))?;
        let name = &after[..end];
        let value = vars
            .get(name)
            .ok_or_else(|| undefined_stage_variable(name, stage_file))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The IntegrationUri with a sample value in each stage variable, to check its syntax
/// before any stage's values are known.
fn with_sample_stage_vars(uri: &str) -> Result<String, crate::upstream::UriError> {
    let sample = uri
        .split("${stageVariables.")
        .skip(1)
        .map(|s| s.split('}').next().unwrap_or(""))
        .map(|name| (name.to_string(), "1".to_string()))
        .collect();
    substitute_stage_vars(uri, &sample, "")
        .map_err(|(problem, fix)| crate::upstream::UriError { problem, fix })
}

#[allow(clippy::too_many_arguments)]
fn compile_stage(
    file: &str,
    stage: &StageConf,
    routes: &HashMap<&str, CheckedRoute<'_>>,
    integrations: &HashMap<&str, &Resource<IntegrationConf>>,
    route_keys: &BTreeMap<&str, Option<&str>>,
    api: &Policies,
    authorizers: &HashMap<String, (crate::config::AuthorizerConf, Arc<JwtAuthorizer>)>,
    conf_dir: &std::path::Path,
    previous: Option<&Stage>,
    errors: &mut ConfigErrors,
) -> Option<Stage> {
    let before = errors.0.len();
    // Buckets of the stage being replaced, by route key, to carry their state over a reload.
    let previous_buckets: HashMap<&str, &Arc<TokenBucket>> = previous
        .map(|p| {
            p.router
                .routes()
                .iter()
                .filter_map(|r| Some((&*r.key, r.throttle.as_ref()?)))
                .collect()
        })
        .unwrap_or_default();
    if stage.name != "$default"
        && (stage.name.is_empty()
            || stage.name.len() > 128
            || !stage
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        errors.push(ConfigError::new(
            file,
            "Name",
            format!("{:?} is not a valid stage name", stage.name),
            "use letters, digits, '-' and '_' (or \"$default\")",
        ));
    }
    let vars = &stage.stage_variables;
    let stage_policies = stage
        .policies
        .as_ref()
        .map(|p| {
            compile_policies(
                file,
                "Policies",
                p,
                vars,
                &format!("stage|{}", stage.name),
                errors,
            )
        })
        .unwrap_or_default();
    if let Some(d) = &stage.default_route_settings {
        throttle::validate(file, "DefaultRouteSettings", d, errors);
    }
    for (key, rs) in &stage.route_settings {
        throttle::validate(file, &format!("RouteSettings.{key}"), rs, errors);
    }

    // Which routes this stage serves: ids of route files, parsed or not.
    let listed: Vec<&str> = match &stage.routes {
        None => route_keys.keys().copied().collect(),
        Some(list) => {
            let mut listed = Vec::new();
            for item in list {
                let id = reference(item, "routes").unwrap_or(item);
                if !route_keys.contains_key(id) {
                    let hint = closest(id, route_keys.keys().copied())
                        .map(|s| format!("did you mean routes/{s}?"))
                        .unwrap_or_else(|| {
                            format!("create routes/{id}.json or remove it from Routes")
                        });
                    errors.push(ConfigError::new(
                        file,
                        "Routes",
                        format!("{item:?}: no route {id:?} exists"),
                        hint,
                    ));
                } else if listed.contains(&id) {
                    errors.push(ConfigError::new(
                        file,
                        "Routes",
                        format!("{item:?} is listed twice"),
                        "list each route once",
                    ));
                } else {
                    listed.push(id);
                }
            }
            listed
        }
    };
    // Routes with errors of their own are left out (their files' errors say why).
    let chosen: Vec<&CheckedRoute<'_>> = listed.iter().filter_map(|id| routes.get(id)).collect();
    // A route file that did not parse has no known key: then a key may be its.
    if listed
        .iter()
        .all(|id| route_keys.get(id).is_some_and(Option::is_some))
    {
        for key in stage.route_settings.keys() {
            if !listed
                .iter()
                .any(|id| route_keys.get(id) == Some(&Some(key.as_str())))
            {
                errors.push(ConfigError::new(
                    file,
                    format!("RouteSettings.{key}"),
                    "no route of this stage has that route key",
                    "key RouteSettings by a RouteKey this stage serves",
                ));
            }
        }
    }

    let mut compiled_integrations: HashMap<&str, Arc<Integration>> = HashMap::new();
    let mut entries = Vec::new();
    for r in &chosen {
        let integration = match compiled_integrations.get(r.integration) {
            Some(i) => i.clone(),
            None => {
                let res = integrations.get(r.integration)?;
                let i = Arc::new(compile_integration(res, file, vars, errors)?);
                compiled_integrations.insert(r.integration, i.clone());
                i
            }
        };
        let conf = &r.res.conf;
        let own = conf
            .policies
            .as_ref()
            .map(|p| {
                let scope = format!("route|{}|{}", stage.name, conf.route_key);
                compile_policies(
                    &r.res.file,
                    "Policies",
                    p,
                    vars,
                    &scope,
                    &mut ConfigErrors::default(),
                )
            })
            .unwrap_or_default();
        let scopes = [api, &stage_policies, &own];
        let throttle = throttle::route_limit(
            stage.default_route_settings.as_ref(),
            stage.route_settings.get(&conf.route_key),
        )
        .map(
            |(rate, burst)| match previous_buckets.get(conf.route_key.as_str()) {
                Some(kept) if kept.has_settings(rate, burst) => (*kept).clone(),
                _ => Arc::new(TokenBucket::new(rate, burst)),
            },
        )
        .filter(|b| !b.is_unlimited());
        let authorizer = conf
            .authorizer_id
            .as_deref()
            .and_then(|id| authorizers.get(reference(id, "authorizers").unwrap_or(id)))
            .map(|(_, a)| a.clone());
        // A limit keyed by a claim on a route without a token would put every caller
        // under one shared counter.
        if authorizer.is_none() {
            let scope_files = [
                ("api.json", api),
                (file, &stage_policies),
                (&*r.res.file, &own),
            ];
            for (scope_file, p) in scope_files {
                if let Some(limit) = &p.rate_limit {
                    if let KeySource::Claim(name) = &limit.key {
                        let e = ConfigError::new(
                            scope_file,
                            "Policies.RateLimit.Key",
                            format!(
                                "keyed by the claim {name:?}, but route {:?} ({}) has no JWT authorizer, so all its callers would share one counter",
                                conf.route_key, r.res.file
                            ),
                            "give the route AuthorizationType JWT, or key the limit by $context.identity.sourceIp or a header",
                        );
                        // Every stage serving the route finds the same problem: say it once.
                        if !errors.0.contains(&e) {
                            errors.push(e);
                        }
                    }
                }
            }
        }
        let route = Route {
            key: Arc::from(conf.route_key.as_str()),
            is_default: matches!(r.key, RouteKey::Default),
            ip_filter: own.ip_filter.clone(),
            throttle,
            rate_limits: scopes.iter().filter_map(|p| p.rate_limit.clone()).collect(),
            request_maps: scopes
                .iter()
                .map(|p| p.request.clone())
                .chain([integration.request.clone()])
                .filter(|m| !m.is_empty())
                .collect(),
            response_maps: scopes
                .iter()
                .map(|p| p.response.clone())
                .chain([integration.response.clone()])
                .filter(|m| !m.is_empty())
                .collect(),
            metrics: crate::metrics::metrics().route(&stage.name, &conf.route_key),
            authorizer,
            scopes: conf.authorization_scopes.clone(),
            integration,
        };
        entries.push((r.key.clone(), Arc::new(route)));
    }
    // Duplicates were left out by `validate_routes`, so this only fails on a bug; the
    // error still names the files.
    let router = match Router::build(entries) {
        Ok(r) => r,
        Err(BuildError::Duplicate { first, second }) => {
            let (a, b) = (chosen[first].res, chosen[second].res);
            errors.push(ConfigError::new(
                &b.file,
                "RouteKey",
                format!(
                    "{:?} is the same route as {:?} in {} (variable names aside)",
                    b.conf.route_key, a.conf.route_key, a.file
                ),
                format!(
                    "remove {} or {}, or change the method or path of one",
                    a.file, b.file
                ),
            ));
            return None;
        }
        Err(BuildError::Unsupported { route, reason }) => {
            errors.push(ConfigError::new(
                &chosen[route].res.file,
                "RouteKey",
                format!("cannot be served: {reason}"),
                "please report this; meanwhile change the path",
            ));
            return None;
        }
    };
    let access_log = stage
        .access_log_settings
        .as_ref()
        .and_then(|a| crate::accesslog::AccessLog::compile(file, a, conf_dir, errors))
        .map(Arc::new);
    (errors.0.len() == before).then(|| Stage {
        name: Arc::from(stage.name.as_str()),
        ip_filter: stage_policies.ip_filter,
        router,
        access_log,
    })
}

/// Compiles an integration for the stage in `stage_file`. Whatever does not depend on the
/// stage was reported by `validate_integration`; only stage variables are checked here.
fn compile_integration(
    res: &Resource<IntegrationConf>,
    stage_file: &str,
    vars: &BTreeMap<String, String>,
    errors: &mut ConfigErrors,
) -> Option<Integration> {
    let c = &res.conf;
    let f = res.file.as_str();
    let timeout = Duration::from_millis(c.timeout_in_millis.unwrap_or(DEFAULT_TIMEOUT_MS));
    let uri = &c.integration_uri;
    // A URI without stage variables, or one that fails anyway, was reported once already.
    let stage_dependent = uri.contains("${stageVariables.")
        && with_sample_stage_vars(uri)
            .and_then(|s| Target::check(&s))
            .is_ok();
    let target = substitute_stage_vars(uri, vars, stage_file).and_then(|uri| {
        Target::parse(&uri, timeout).map_err(|e| {
            (
                format!("with the stage variables of {stage_file}: {}", e.problem),
                e.fix,
            )
        })
    });
    let target = match target {
        Ok(t) => t,
        Err((problem, fix)) => {
            if stage_dependent {
                errors.push(ConfigError::new(f, "IntegrationUri", problem, fix));
            }
            return None;
        }
    };
    check_stage_references(
        f,
        &c.request_parameters,
        &c.response_parameters,
        "",
        stage_file,
        vars,
        errors,
    );
    let method = match c.integration_method.as_deref() {
        None | Some("ANY") => None,
        Some(m) => Method::from_bytes(m.as_bytes()).ok(),
    };
    // Mapping errors were reported by `validate_integration`.
    let mut reported = ConfigErrors::default();
    Some(Integration {
        id: res.id.clone(),
        target,
        method,
        request: RequestMapping::compile(
            f,
            "RequestParameters",
            &c.request_parameters,
            vars,
            &mut reported,
        ),
        response: ResponseMapping::compile(
            f,
            "ResponseParameters",
            &c.response_parameters,
            vars,
            &mut reported,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration from `(file, JSON)` pairs, as `config::load` would give it.
    fn config(files: &[(&str, &str)]) -> Config {
        let mut c = Config::default();
        for (rel, text) in files {
            let (kind, name) = rel.split_once('/').unwrap();
            let (id, file) = (name.trim_end_matches(".json").to_string(), rel.to_string());
            match kind {
                "routes" => c.routes.push(Resource {
                    id,
                    file,
                    conf: serde_json::from_str(text).unwrap(),
                }),
                "integrations" => c.integrations.push(Resource {
                    id,
                    file,
                    conf: serde_json::from_str(text).unwrap(),
                }),
                _ => {
                    c.has_stages_dir = true;
                    c.stages.push(Resource {
                        id,
                        file,
                        conf: serde_json::from_str(text).unwrap(),
                    })
                }
            }
        }
        c
    }

    fn errors(files: &[(&str, &str)]) -> Vec<String> {
        match Table::compile(&config(files), None) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    const UP: &str = r#""IntegrationType":"HTTP_PROXY","IntegrationUri":"http://127.0.0.1:9""#;

    #[test]
    fn path_variables_of_a_mapping_are_checked_for_every_route_using_it() {
        let i = format!(
            r#"{{{UP},"RequestParameters":{{"overwrite:header.X-Id":"$request.path.id"}}}}"#
        );
        let e = errors(&[
            ("integrations/i.json", &i),
            (
                "routes/a.json",
                r#"{"RouteKey":"GET /a/{id}","Target":"integrations/i"}"#,
            ),
            (
                "routes/b.json",
                r#"{"RouteKey":"GET /b","Target":"integrations/i"}"#,
            ),
            (
                "routes/c.json",
                r#"{"RouteKey":"GET /c/{x}","Target":"integrations/i","Policies":{"RequestParameters":{"overwrite:header.X-Y":"$request.path.y"}}}"#,
            ),
        ]);
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(e[0].starts_with("integrations/i.json: RequestParameters.overwrite:header.X-Id: reads $request.path.id, but route key \"GET /b\" of routes/b.json"), "{e:#?}");
        assert!(e[1].contains("routes/c.json"), "{e:#?}");
        assert!(
            e[2].starts_with("routes/c.json: Policies.RequestParameters.overwrite:header.X-Y"),
            "{e:#?}"
        );
    }

    #[test]
    fn stage_variables_of_mappings_are_checked_per_stage_and_other_errors_once() {
        let i = format!(
            r#"{{{UP},"RequestParameters":{{"overwrite:header.X-Env":"${{stageVariables.env}}","overwrite:header.Host":"h"}}}}"#
        );
        let e = errors(&[
            ("integrations/i.json", &i),
            (
                "routes/a.json",
                r#"{"RouteKey":"GET /a","Target":"integrations/i","Policies":{"RequestParameters":{"overwrite:header.X-R":"$stageVariables.r"}}}"#,
            ),
            (
                "stages/p.json",
                r#"{"Name":"p","StageVariables":{"env":"prod","r":"1"}}"#,
            ),
            ("stages/q.json", r#"{"Name":"q"}"#),
            ("stages/u.json", r#"{"Name":"u"}"#),
        ]);
        let reserved: Vec<_> = e.iter().filter(|l| l.contains("header.Host")).collect();
        assert_eq!(reserved.len(), 1, "{e:#?}");
        for stage in ["stages/q.json", "stages/u.json"] {
            for field in [
                "integrations/i.json: RequestParameters.overwrite:header.X-Env",
                "routes/a.json: Policies.RequestParameters.overwrite:header.X-R",
            ] {
                let n = e
                    .iter()
                    .filter(|l| l.starts_with(field) && l.contains(stage))
                    .count();
                assert_eq!(n, 1, "{field} in {stage}: {e:#?}");
            }
        }
        assert_eq!(e.len(), 5, "{e:#?}");
    }

    #[test]
    fn duplicate_routes_are_reported_once_naming_both_files() {
        let i = format!("{{{UP}}}");
        let e = errors(&[
            ("integrations/i.json", &i),
            (
                "routes/a.json",
                r#"{"RouteKey":"GET /p/{id}","Target":"integrations/i"}"#,
            ),
            (
                "routes/b.json",
                r#"{"RouteKey":"GET /p/{name}","Target":"integrations/i"}"#,
            ),
            (
                "routes/c.json",
                r#"{"RouteKey":"ANY /p/{name}","Target":"integrations/i"}"#,
            ),
            (
                "stages/s.json",
                r#"{"Name":"s","Routes":["routes/a","routes/b","routes/c"]}"#,
            ),
        ]);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(e[0].starts_with("routes/b.json: RouteKey"), "{e:#?}");
        assert!(e[0].contains("routes/a.json"), "{e:#?}");
    }

    #[test]
    fn route_settings_of_a_route_with_errors_are_not_reported_as_unknown() {
        let e = errors(&[
            (
                "routes/a.json",
                r#"{"RouteKey":"GET /a","Target":"integrations/gone"}"#,
            ),
            (
                "stages/s.json",
                r#"{"Name":"s","RouteSettings":{"GET /a":{"ThrottlingBurstLimit":1},"GET /b":{"ThrottlingBurstLimit":1}}}"#,
            ),
        ]);
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(e[0].starts_with("routes/a.json: Target"), "{e:#?}");
        assert!(
            e[1].starts_with("stages/s.json: RouteSettings.GET /b"),
            "{e:#?}"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(
            uri_vars("http://h/${stageVariables.x}/{id}/{proxy+}"),
            vec!["id", "proxy"]
        );
        let vars: BTreeMap<String, String> =
            [("host".to_string(), "127.0.0.1:9".to_string())].into();
        assert_eq!(
            substitute_stage_vars("http://${stageVariables.host}/a", &vars, "stages/s.json")
                .unwrap(),
            "http://127.0.0.1:9/a"
        );
        let (problem, fix) =
            substitute_stage_vars("http://${stageVariables.nope}/a", &vars, "stages/s.json")
                .unwrap_err();
        assert!(problem.contains("stages/s.json"), "{problem}");
        assert!(fix.contains("StageVariables in stages/s.json"), "{fix}");
        assert_eq!(
            with_sample_stage_vars("http://${stageVariables.h}:${stageVariables.p}/x").unwrap(),
            "http://1:1/x"
        );
        assert!(with_sample_stage_vars("http://${stageVariables.h/x").is_err());
    }
}
