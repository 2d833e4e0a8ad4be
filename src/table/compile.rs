//! Per-stage compilation: each stage's routes, with their integrations, policies, throttle
//! buckets and authorizers, into the stage's router. Works from what validation checked:
//! what does not depend on a stage was compiled there and is reused, so errors here are
//! only about the stage itself (its name, Routes, RouteSettings, stage variables, ...).

use super::api::ApiWide;
use super::policies::compile_stage_policies;
use super::route_extras;
use super::stage_vars::{
    check_policy_stage_variables, check_stage_references, check_stage_variable_values,
    substitute_stage_vars,
};
use super::validate::{reference, Checked, CheckedIntegration, CheckedRoute, CheckedTarget};
use super::{Integration, Policies, Route, Stage, Table};
use crate::config::{closest, Config, ConfigError, ConfigErrors, StageConf};
use crate::integration::http_proxy::{HttpProxy, Target};
use crate::integration::Kind;
use crate::policy::chain::RoutePolicies;
use crate::policy::ratelimit::KeySource;
use crate::policy::throttle::{self, TokenBucket};
use crate::routing::{BuildError, RouteKey, Router};
use std::collections::HashMap;
use std::sync::Arc;

/// The inputs every stage compiles from.
pub(super) struct Compiler<'a, 'c> {
    pub config: &'c Config,
    pub api: &'a ApiWide<'c>,
    pub checked: &'a Checked<'c>,
    /// The table being replaced: its throttle buckets are kept when their settings are.
    pub previous: Option<&'a Table>,
}

/// One stage being compiled: what all its routes share.
struct StageScope<'s> {
    file: &'s str,
    conf: &'s StageConf,
    /// The api's and the stage's own policies, as this stage applies them.
    api: Policies,
    own: Policies,
    /// Buckets of the stage being replaced, by route key, to carry their state over a reload.
    previous_buckets: HashMap<&'s str, &'s Arc<TokenBucket>>,
}

impl Compiler<'_, '_> {
    /// Compiles every stage (or the implied `$default` one without `stages/`): the named
    /// ones by name, and `$default`.
    pub fn stages(&self, errors: &mut ConfigErrors) -> (HashMap<String, Stage>, Option<Stage>) {
        let implied_default;
        let stages: Vec<(&str, &StageConf)> = if self.config.has_stages_dir {
            self.config
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
        let mut named = HashMap::new();
        let mut default_stage = None;
        for (file, stage) in stages {
            check_policy_stage_variables(self.config, file, stage, errors);
            let Some(compiled) = self.stage(file, stage, errors) else {
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
        (named, default_stage)
    }

    /// Compiles the stage in `file`; `None` when it has errors (reported).
    fn stage(&self, file: &str, conf: &StageConf, errors: &mut ConfigErrors) -> Option<Stage> {
        let before = errors.0.len();
        let previous_buckets = self
            .previous
            .and_then(|p| p.stage_named(&conf.name))
            .map(|p| {
                p.router
                    .routes()
                    .iter()
                    .filter_map(|r| Some((&*r.key, r.policies.throttle.as_ref()?)))
                    .collect()
            })
            .unwrap_or_default();
        check_stage_name(file, conf, errors);
        check_stage_variable_values(file, conf, errors);
        let vars = &conf.stage_variables;
        let own = conf
            .policies
            .as_ref()
            .map(|p| compile_stage_policies(file, p, vars, &format!("stage|{}", conf.name), errors))
            .unwrap_or_default();
        if let Some(d) = &conf.default_route_settings {
            throttle::validate(file, "DefaultRouteSettings", d, errors);
        }
        for (key, rs) in &conf.route_settings {
            throttle::validate(file, &format!("RouteSettings.{key}"), rs, errors);
        }
        let listed = self.served_routes(file, conf, errors);
        // Routes with errors of their own are left out (their files' errors say why).
        let chosen: Vec<&CheckedRoute<'_>> = listed
            .iter()
            .filter_map(|id| self.checked.routes.get(id))
            .collect();
        self.check_route_settings_keys(file, conf, &listed, errors);

        let scope = StageScope {
            file,
            conf,
            api: (self.api.policies.as_ref())
                .map(|p| p.for_stage("api", vars))
                .unwrap_or_default(),
            own,
            previous_buckets,
        };
        // Each integration once per stage, shared by the stage's routes.
        let mut integrations: HashMap<&str, Arc<Integration>> = HashMap::new();
        let mut entries = Vec::new();
        for r in &chosen {
            let integration = match integrations.get(r.integration) {
                Some(i) => i.clone(),
                None => {
                    let checked = self.checked.integrations.get(r.integration)?;
                    let i = Arc::new(compile_integration(
                        checked,
                        self.checked,
                        file,
                        vars,
                        errors,
                    )?);
                    integrations.insert(r.integration, i.clone());
                    i
                }
            };
            let route = self.route(&scope, r, integration, errors);
            entries.push((r.key.clone(), Arc::new(route)));
        }
        let router = build_router(entries, &chosen, errors)?;
        let access_log = conf
            .access_log_settings
            .as_ref()
            .and_then(|a| crate::accesslog::AccessLog::compile(file, a, &self.config.dir, errors))
            .map(Arc::new);
        (errors.0.len() == before).then(|| Stage {
            name: Arc::from(conf.name.as_str()),
            ip_filter: scope.own.ip_filter,
            router,
            access_log,
        })
    }

    /// Which routes the stage serves: ids of route files, parsed or not. Reports what its
    /// `Routes` list names that does not exist, or twice.
    fn served_routes<'s>(
        &'s self,
        file: &str,
        conf: &'s StageConf,
        errors: &mut ConfigErrors,
    ) -> Vec<&'s str> {
        let route_keys = &self.checked.route_keys;
        let Some(list) = &conf.routes else {
            return route_keys.keys().copied().collect();
        };
        let mut listed = Vec::new();
        for item in list {
            let id = reference(item, "routes").unwrap_or(item);
            if !route_keys.contains_key(id) {
                let hint = closest(id, route_keys.keys().copied())
                    .map(|s| format!("did you mean routes/{s}?"))
                    .unwrap_or_else(|| format!("create routes/{id}.json or remove it from Routes"));
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

    /// Reports `RouteSettings` keyed by a route key no `listed` route has.
    fn check_route_settings_keys(
        &self,
        file: &str,
        conf: &StageConf,
        listed: &[&str],
        errors: &mut ConfigErrors,
    ) {
        let route_keys = &self.checked.route_keys;
        // A route file that did not parse has no known key: then a key may be its.
        if !listed
            .iter()
            .all(|id| route_keys.get(id).is_some_and(Option::is_some))
        {
            return;
        }
        for key in conf.route_settings.keys() {
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

    /// The route as `stage` serves it.
    fn route(
        &self,
        stage: &StageScope<'_>,
        r: &CheckedRoute<'_>,
        integration: Arc<Integration>,
        errors: &mut ConfigErrors,
    ) -> Route {
        let conf = &r.res.conf;
        let own = r
            .policies
            .as_ref()
            .map(|p| {
                let scope = format!("route|{}|{}", stage.conf.name, conf.route_key);
                p.for_stage(&scope, &stage.conf.stage_variables)
            })
            .unwrap_or_default();
        let scopes = [&stage.api, &stage.own, &own];
        let throttle = throttle::route_limit(
            stage.conf.default_route_settings.as_ref(),
            stage.conf.route_settings.get(&conf.route_key),
        )
        .map(
            |(rate, burst)| match stage.previous_buckets.get(conf.route_key.as_str()) {
                Some(kept) if kept.has_settings(rate, burst) => (*kept).clone(),
                _ => Arc::new(TokenBucket::new(rate, burst)),
            },
        )
        .filter(|b| !b.is_unlimited());
        let authorizer = conf
            .authorizer_id
            .as_deref()
            .and_then(|id| {
                let id = reference(id, "authorizers").unwrap_or(id);
                self.api.authorizers.get(id)
            })
            .map(|(_, a)| a.clone());
        let lambda_authorizer = conf.authorizer_id.as_deref().and_then(|id| {
            let id = reference(id, "authorizers").unwrap_or(id);
            self.checked.lambda_authorizers.get(id).cloned()
        });
        if authorizer.is_none() {
            let scope_files = [
                ("api.json", &stage.api),
                (stage.file, &stage.own),
                (&*r.res.file, &own),
            ];
            check_claim_keys(r, scope_files, errors);
        }
        Route {
            key: Arc::from(conf.route_key.as_str()),
            is_default: matches!(r.key, RouteKey::Default),
            policies: RoutePolicies {
                ip_filter: own.ip_filter.clone(),
                throttle,
                rate_limits: scopes.iter().filter_map(|p| p.rate_limit.clone()).collect(),
                authorizer,
                lambda_authorizer,
                scopes: conf.authorization_scopes.clone(),
                subscription: conf.subscription.as_ref().and_then(|s| {
                    crate::policy::subscription::SubscriptionCheck::compile(&r.res.file, s, errors)
                }),
                header_checks: conf
                    .header_checks
                    .iter()
                    .filter_map(|c| {
                        crate::policy::check_header::HeaderCheck::compile(&r.res.file, c, errors)
                    })
                    .collect(),
                auth_failure: conf.auth_failure.as_ref().map(|(status, message)| {
                    crate::rejection::Rejection::Policy(*status, message.as_str().into())
                }),
                answer: conf
                    .answer
                    .as_ref()
                    .and_then(|a| route_extras::static_answer(&r.res.file, a, errors)),
                choices: conf
                    .choices
                    .iter()
                    .filter_map(|branches| route_extras::choice(&r.res.file, branches, errors))
                    .collect(),
                on_error: conf
                    .on_error
                    .as_ref()
                    .and_then(|h| route_extras::error_handler(&r.res.file, h, errors)),
                quotas: conf
                    .quota
                    .iter()
                    .filter_map(|q| {
                        let scope = format!("quota|{}|{}", stage.conf.name, conf.route_key);
                        route_extras::quota(&r.res.file, &scope, q, errors)
                    })
                    .collect(),
            },
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
            metrics: crate::metrics::metrics().route(
                self.config.api_label().unwrap_or("-"),
                &stage.conf.name,
                &conf.route_key,
            ),
            integration,
        }
    }
}

fn check_stage_name(file: &str, conf: &StageConf, errors: &mut ConfigErrors) {
    let name = &conf.name;
    if name != "$default"
        && (name.is_empty()
            || name.len() > 128
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        errors.push(ConfigError::new(
            file,
            "Name",
            format!("{name:?} is not a valid stage name"),
            "use letters, digits, '-' and '_' (or \"$default\")",
        ));
    }
}

/// A limit keyed by a claim on a route without a token would put every caller under one
/// shared counter: reports each such limit among the route's `(file, policies)` scopes.
fn check_claim_keys(
    r: &CheckedRoute<'_>,
    scope_files: [(&str, &Policies); 3],
    errors: &mut ConfigErrors,
) {
    let conf = &r.res.conf;
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

/// The stage's router over its routes (`chosen`, in the same order as `entries`).
fn build_router(
    entries: Vec<(RouteKey, Arc<Route>)>,
    chosen: &[&CheckedRoute<'_>],
    errors: &mut ConfigErrors,
) -> Option<Router<Arc<Route>>> {
    // Duplicates were left out by `validate_routes`, so this only fails on a bug; the
    // error still names the files.
    match Router::build(entries) {
        Ok(r) => Some(r),
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
            None
        }
        Err(BuildError::Unsupported { route, reason }) => {
            errors.push(ConfigError::new(
                &chosen[route].res.file,
                "RouteKey",
                format!("cannot be served: {reason}"),
                "please report this; meanwhile change the path",
            ));
            None
        }
    }
}

/// The integration as the stage in `stage_file` serves it. Validation reported whatever
/// does not depend on the stage and compiled it; only stage variables are handled here.
/// `None` when it cannot be served.
pub(super) fn compile_integration(
    i: &CheckedIntegration<'_>,
    checked: &Checked<'_>,
    stage_file: &str,
    vars: &std::collections::BTreeMap<String, String>,
    errors: &mut ConfigErrors,
) -> Option<Integration> {
    let c = &i.res.conf;
    let f = i.res.file.as_str();
    if let Some(a) = checked.aggregates.get(i.res.id.as_str()) {
        return super::aggregate::compile(a, i, checked, stage_file, vars, errors);
    }
    if let Some((function, format)) = &i.lambda {
        let (request, response) = i.mappings.for_stage(vars);
        return Some(Integration {
            id: i.res.id.clone(),
            kind: Kind::AwsProxy(crate::integration::AwsProxy {
                function: function.clone(),
                format: *format,
                timeout: i.timeout,
                stage_vars: vars.clone(),
            }),
            request,
            response,
        });
    }
    // `${backends.N...}` (a later backend of an aggregate) is a path variable here.
    let uri_with_ref_vars = crate::integration::aggregate::refs::as_path_vars(&c.integration_uri);
    let target = match &i.target {
        // A URI without stage variables that failed was reported by validation.
        CheckedTarget::Fixed(target) => target.as_deref()?.clone(),
        CheckedTarget::PerStage { report } => {
            let target =
                substitute_stage_vars(&uri_with_ref_vars, vars, stage_file).and_then(|uri| {
                    Target::parse(&uri, i.timeout)
                        .map(|mut t| {
                            i.tls.apply(&mut t.peer);
                            t
                        })
                        .map_err(|e| {
                            (
                                format!("with the stage variables of {stage_file}: {}", e.problem),
                                e.fix,
                            )
                        })
                });
            match target {
                Ok(t) => t,
                Err((problem, fix)) => {
                    if *report {
                        errors.push(ConfigError::new(f, "IntegrationUri", problem, fix));
                    }
                    return None;
                }
            }
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
    let (request, response) = i.mappings.for_stage(vars);
    Some(Integration {
        id: i.res.id.clone(),
        kind: Kind::HttpProxy(HttpProxy {
            target,
            method: i.method.clone(),
        }),
        request,
        response,
    })
}
