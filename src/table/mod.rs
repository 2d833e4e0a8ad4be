//! The runtime table: a configuration validated and compiled once, then shared read-only
//! by every request until a reload publishes a new one.
//!
//! Building one takes three steps: what the whole api shares (`api`), every integration
//! and route file checked once against the others (`validate`), then each stage compiled
//! from those checked inputs (`compile`). What does not depend on a stage is compiled in
//! the first two steps and reused by every stage (`policies`); `stage_vars` checks and
//! substitutes stage variables.

mod aggregate;
mod api;
mod compile;
mod functions;
mod policies;
#[cfg(test)]
mod props;
mod route_extras;
mod stage_vars;
#[cfg(test)]
mod tests;
mod underscores;
mod validate;

use crate::config::{Config, ConfigError, ConfigErrors};
use crate::mapping::{RequestMapping, ResponseMapping};
use crate::policy::chain::RoutePolicies;
use crate::policy::ipfilter::IpFilter;
use crate::policy::jwt::JwtAuthorizer;
use crate::policy::ratelimit::{RateLimit, Store};
use crate::routing::Router;
use ipnet::IpNet;
use std::collections::HashMap;
use std::sync::Arc;

pub const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;

/// Process settings from `gateway.json` (flags override some at start-up).
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    pub metrics_listen: Option<String>,
    pub threads: usize,
    pub max_body_bytes: u64,
    pub trusted_proxies: Vec<IpNet>,
    pub keepalive_pool_size: usize,
    /// `AllowUnderscoresInHeaders`: keep client headers whose name holds `_`.
    pub allow_underscores_in_headers: bool,
    /// `Tls`: serve HTTPS (checked at load; `crate::tls::listener`).
    pub tls: Option<crate::tls::listener::Source>,
    /// `Http2Cleartext`: prior-knowledge h2c on a plain listener.
    pub http2_cleartext: bool,
    /// Client connection limits (`listener`).
    pub conn: crate::listener::ConnLimits,
}

/// Policies of one scope (api, stage or route), compiled.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    pub ip_filter: Option<IpFilter>,
    pub rate_limit: Option<RateLimit>,
    pub request: RequestMapping,
    pub response: ResponseMapping,
}

pub use crate::integration::Integration;

/// A route as one stage serves it.
#[derive(Debug)]
pub struct Route {
    /// The route key template: `GET /pets/{id}` or `$default` (metrics and `$context.routeKey`).
    pub key: Arc<str>,
    pub is_default: bool,
    pub integration: Arc<Integration>,
    /// IP filter, throttling, rate limits and authorizer, run per request by the chain.
    pub policies: RoutePolicies,
    /// Api, stage, route and integration mappings, outermost first (empty ones left out).
    pub request_maps: Vec<RequestMapping>,
    pub response_maps: Vec<ResponseMapping>,
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
    /// Whose error bodies the gateway's own answers take (`Config::dialect`).
    pub dialect: crate::rejection::Dialect,
    named: HashMap<String, Stage>,
    default_stage: Option<Stage>,
    /// Set on the first API's table when several APIs or custom domains are served
    /// (`crate::dispatch`); `None` keeps the single-API path untouched.
    pub apis: Option<Box<crate::dispatch::Apis>>,
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

    pub fn stage_named(&self, name: &str) -> Option<&Stage> {
        match name {
            "$default" => self.default_stage.as_ref(),
            _ => self.named.get(name),
        }
    }

    /// `api.json`'s Name, which other documents (domain mappings) use as the API's id.
    pub fn api_name(&self) -> Option<&str> {
        self.api_name.as_deref()
    }

    /// What this table serves in a degraded way, to print next to the configuration's own
    /// warnings: integrations whose host did not resolve (they answer 502 until a reload).
    pub fn warnings(&self, config: &Config) -> Vec<ConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        // Every integration a route reaches: its own, and an aggregate's backends.
        let integrations = self.stages().flat_map(|s| s.router.routes()).flat_map(|r| {
            let backends = match &r.integration.kind {
                crate::integration::Kind::Aggregate(a) => &a.backends[..],
                _ => &[],
            };
            std::iter::once(&r.integration).chain(backends.iter().map(|b| &b.integration))
        });
        for i in integrations {
            let crate::integration::Kind::HttpProxy(p) = &i.kind else {
                continue;
            };
            let Some(why) = &p.target.unresolved else {
                continue;
            };
            if !seen.insert((i.id.as_str(), why.as_ref())) {
                continue;
            }
            let file = config
                .integrations
                .iter()
                .find(|r| r.id == i.id)
                .map_or(i.id.as_str(), |r| r.file.as_str());
            out.push(ConfigError::new(
                file,
                "IntegrationUri",
                format!("{why}: its routes answer 502 until a reload resolves it"),
                "check the name (or use an IP address), then reload with SIGHUP",
            ));
        }
        out
    }

    pub fn stages(&self) -> impl Iterator<Item = &Stage> {
        self.named.values().chain(self.default_stage.iter())
    }

    /// Validates and compiles a whole configuration, reporting every error. `previous` is
    /// the table being replaced on reload: its rate-limit store, authorizers and throttle
    /// buckets are kept when unchanged.
    pub fn compile(config: &Config, previous: Option<&Table>) -> Result<Table, ConfigErrors> {
        // What loading found first; the checks below run on every file that parsed.
        let mut errors = ConfigErrors(config.errors.clone());
        // In this order so that errors read gateway.json, api.json, authorizers/,
        // integrations/, routes/, then stages/.
        let shared = api::ApiWide::compile(config, previous, &mut errors);
        let checked = validate::Checked::new(config, &mut errors);
        let compiler = compile::Compiler {
            config,
            api: &shared,
            checked: &checked,
            previous,
        };
        let (named, default_stage) = compiler.stages(&mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let Some(store) = shared.store else {
            return Err(errors);
        };
        Ok(Table {
            settings: shared.settings,
            authorizers: shared.authorizers,
            store,
            store_conf: shared.store_conf,
            api_name: config.api_label().map(str::to_string),
            cors: shared.cors,
            api_ip_filter: shared.policies.and_then(|p| p.ip_filter),
            dialect: config.dialect,
            named,
            default_stage,
            apis: None,
        })
    }
}
