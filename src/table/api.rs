//! What the whole api shares, compiled once per table: process settings, the rate-limit
//! store, CORS, `api.json`'s policies and the authorizers. The store and authorizers of the
//! table being replaced are kept when unchanged, so a reload loses no counters or keys.

use super::policies::PolicyBlock;
use super::{Settings, Table, DEFAULT_MAX_BODY};
use crate::config::{
    AuthorizerConf, Config, ConfigError, ConfigErrors, GatewayConf, RateLimitStoreConf,
};
use crate::listener::{
    Bound, ConnLimits, BODY_TIMEOUT, HEAD_TIMEOUT, KEEPALIVE, MAX_CONNECTIONS, MAX_HEAD_BYTES,
};
use crate::policy::cors::Cors;
use crate::policy::ipfilter::parse_nets;
use crate::policy::jwt::JwtAuthorizer;
use crate::policy::ratelimit::Store;
use std::collections::HashMap;
use std::sync::Arc;

pub(super) struct ApiWide<'c> {
    pub settings: Settings,
    /// `None` when it could not be built (reported).
    pub store: Option<Arc<Store>>,
    pub store_conf: Option<RateLimitStoreConf>,
    pub cors: Option<Cors>,
    /// `api.json`'s Policies: its IP filter is the table's, the rest applies per stage.
    pub policies: Option<PolicyBlock<'c>>,
    /// By id, with the configuration each was built from.
    pub authorizers: HashMap<String, (AuthorizerConf, Arc<JwtAuthorizer>)>,
}

impl<'c> ApiWide<'c> {
    /// Compiles them in this order, reporting errors. `previous`: the table being replaced.
    pub fn compile(
        config: &'c Config,
        previous: Option<&Table>,
        errors: &mut ConfigErrors,
    ) -> Self {
        let mut settings = compile_settings(&config.gateway, errors);
        settings.tls = crate::tls::listener::Source::from_conf(
            &config.dir,
            config.gateway.tls.as_ref(),
            errors,
        );
        super::underscores::check(config, errors);
        let store_conf = config.gateway.rate_limit_store.clone();
        let store = match previous {
            // A local store keeps its counters across any reload; a Redis store is rebuilt
            // when the api's Name, and so its key namespace, changes.
            Some(p)
                if p.store_conf == store_conf
                    && (p.store.kind() == "local"
                        || p.api_name.as_deref() == config.api_label()) =>
            {
                Some(p.store.clone())
            }
            _ => Store::from_conf(store_conf.as_ref(), config.api_label(), errors),
        };
        let cors = config
            .api
            .cors_configuration
            .as_ref()
            .and_then(|c| Cors::compile(c, errors));
        let policies = config
            .api
            .policies
            .as_ref()
            .map(|p| PolicyBlock::compile("api.json", p, errors));
        let authorizers = compile_authorizers(config, previous, errors);
        ApiWide {
            settings,
            store,
            store_conf,
            cors,
            policies,
            authorizers,
        }
    }
}

fn compile_authorizers(
    config: &Config,
    previous: Option<&Table>,
    errors: &mut ConfigErrors,
) -> HashMap<String, (AuthorizerConf, Arc<JwtAuthorizer>)> {
    let mut authorizers = HashMap::new();
    // REQUEST (Lambda) authorizers need the functions: `validate::Checked` compiles them.
    for a in config
        .authorizers
        .iter()
        .filter(|a| a.conf.authorizer_type != "REQUEST")
    {
        // An unchanged authorizer keeps its keys and verified tokens; one reading a
        // JwksFile is rebuilt, so a reload picks up a rotated or revoked key in the file.
        let reused = previous
            .and_then(|p| p.authorizers.get(&a.id))
            .filter(|(conf, _)| *conf == a.conf && a.conf.jwks_file.is_none())
            .map(|(_, auth)| auth.clone());
        let compiled = reused.or_else(|| {
            JwtAuthorizer::compile(&a.file, &a.id, &a.conf, &config.dir, errors).map(Arc::new)
        });
        if let Some(auth) = compiled {
            authorizers.insert(a.id.clone(), (a.conf.clone(), auth));
        }
    }
    authorizers
}

/// The numeric `gateway.json` settings that are not the listener's, with their bounds: a
/// value out of range is an error, never clamped (`UpstreamKeepalivePoolSize: 10^12` once
/// made `serve` allocate 2 GB before listening).
const THREADS: Bound = Bound {
    field: "Threads",
    min: 1,
    max: 256,
    default: 1,
    why: "one worker serves a laptop or CI",
};
const MAX_BODY_BYTES: Bound = Bound {
    field: "MaxBodyBytes",
    min: 1,
    max: 1 << 30,
    default: DEFAULT_MAX_BODY,
    why: "AWS's 10 MiB payload quota",
};
const KEEPALIVE_POOL: Bound = Bound {
    field: "UpstreamKeepalivePoolSize",
    min: 0,
    max: 65_536,
    default: 128,
    why: "Pingora's default",
};

/// `value` checked against `bound`; out of range is reported and the default used.
fn bounded(bound: Bound, value: Option<u64>, errors: &mut ConfigErrors) -> u64 {
    bound.check(value).unwrap_or_else(|default| {
        errors.push(ConfigError::new(
            "gateway.json",
            bound.field,
            format!(
                "{} is outside {}..{}",
                value.unwrap_or_default(),
                bound.min,
                bound.max
            ),
            format!(
                "use a value from {} to {}, or leave it out for {} ({})",
                bound.min, bound.max, bound.default, bound.why
            ),
        ));
        default
    })
}

fn compile_settings(g: &GatewayConf, errors: &mut ConfigErrors) -> Settings {
    let trusted = parse_nets("gateway.json", "TrustedProxies", &g.trusted_proxies, errors)
        .unwrap_or_default();
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
    let mut num = |bound: Bound, value: Option<u64>| bounded(bound, value, errors);
    let millis = |ms: u64| std::time::Duration::from_millis(ms);
    Settings {
        listen: g.listen.clone().unwrap_or_else(|| "127.0.0.1:8080".into()),
        metrics_listen: g.metrics_listen.clone(),
        threads: num(THREADS, g.threads.map(|t| t as u64)) as usize,
        max_body_bytes: num(MAX_BODY_BYTES, g.max_body_bytes),
        trusted_proxies: trusted,
        keepalive_pool_size: num(
            KEEPALIVE_POOL,
            g.upstream_keepalive_pool_size.map(|n| n as u64),
        ) as usize,
        allow_underscores_in_headers: g.allow_underscores_in_headers.unwrap_or(false),
        tls: None,
        http2_cleartext: g.http2_cleartext.unwrap_or(false),
        conn: ConnLimits {
            keepalive: millis(num(KEEPALIVE, g.keepalive_timeout_in_millis)),
            head_timeout: millis(num(HEAD_TIMEOUT, g.request_head_timeout_in_millis)),
            body_timeout: millis(num(BODY_TIMEOUT, g.request_body_timeout_in_millis)),
            max_head_bytes: num(MAX_HEAD_BYTES, g.max_request_head_bytes) as usize,
            max_connections: num(MAX_CONNECTIONS, g.max_connections) as usize,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Any numbers in gateway.json: no panic, one error per number out of its range
        /// (naming the field), and the settings stay inside every range.
        #[test]
        fn every_numeric_setting_is_bounded(
            values in proptest::collection::vec(
                proptest::prop_oneof![proptest::num::u64::ANY, 0u64..200_000], 8),
        ) {
            let g = GatewayConf {
                threads: Some(values[0] as usize),
                max_body_bytes: Some(values[1]),
                upstream_keepalive_pool_size: Some(values[2] as usize),
                keepalive_timeout_in_millis: Some(values[3]),
                request_head_timeout_in_millis: Some(values[4]),
                request_body_timeout_in_millis: Some(values[5]),
                max_request_head_bytes: Some(values[6]),
                max_connections: Some(values[7]),
                ..GatewayConf::default()
            };
            let bounds = [
                THREADS, MAX_BODY_BYTES, KEEPALIVE_POOL, KEEPALIVE, HEAD_TIMEOUT,
                BODY_TIMEOUT, MAX_HEAD_BYTES, MAX_CONNECTIONS,
            ];
            let mut errors = ConfigErrors::default();
            let s = compile_settings(&g, &mut errors);
            let bad: Vec<&str> = bounds
                .iter()
                .zip(&values)
                .filter(|(b, v)| !(b.min..=b.max).contains(*v))
                .map(|(b, _)| b.field)
                .collect();
            let reported: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
            proptest::prop_assert_eq!(reported, bad);
            proptest::prop_assert!((1..=256).contains(&s.threads));
            proptest::prop_assert!(s.keepalive_pool_size <= 65_536);
            proptest::prop_assert!(s.conn.max_connections >= 1);
            proptest::prop_assert!(s.conn.max_head_bytes <= 65_536);
        }
    }
}
