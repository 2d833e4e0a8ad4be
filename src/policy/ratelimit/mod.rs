//! `RateLimit` policies (after APIM `rate-limit-by-key`): a fixed window of
//! `PeriodSeconds` per key, at most `Calls` calls in it.
//!
//! A window starts at a key's first call and lasts `PeriodSeconds`; the next call after
//! it ends starts a new one. Counters live in a [`Store`], made once from
//! `gateway.json`'s `RateLimitStore` and kept across config reloads:
//! - [`LocalStore`] (default): in process, sharded, bounded in memory;
//! - [`RedisStore`]: in Redis, shared by every gateway instance serving the same API
//!   (keys are namespaced by api.json `Name`); one Lua script per call (INCR, PEXPIRE on
//!   the first call of a window, PTTL), so concurrent gateways never race. When Redis
//!   cannot be reached the store **fails open**: the call is allowed and counted in
//!   `apigate_ratelimit_store_errors_total`.
//!
//! Per request, the caller turns the policy's `Key` into raw bytes ([`key_bytes`]), calls
//! [`Store::hit`] with the policy's scope and those bytes, folds the decisions of all the
//! route's limits with [`combine`], answers 429 when `!decision.allowed`, and puts
//! [`Decision::headers`] on every answer of a limited route. [`Store::peek`] reads a
//! limit's state without counting, for answers refused before the limits were counted.
//!
//! How the pieces fit:
//! - this module: the public face: [`Decision`] and [`combine`], the [`Store`] enum that
//!   builds a store from the configuration and dispatches each call to its kind, and the
//!   constants;
//! - `key`: the policy's `Key` ([`KeySource`]: syntax, [`validate`], suggestions for
//!   typos) and a request's key value ([`key_bytes`]);
//! - `local`: [`LocalStore`], the in-process windows (shards, eviction);
//! - `redis`: [`RedisStore`] (scripts, fail-open, prober) and how a counter is named in
//!   Redis.
//!
//! Both stores take the raw key bytes and build [`Decision`]s through the constructors
//! here, so every store reports a window the same way. Tests that need a live Redis are
//! in `tests/redis_store.rs` and `tests/limits.rs`.

use crate::config::{closest, ConfigError, ConfigErrors, RateLimitStoreConf};
use http::HeaderValue;
use std::cmp::Reverse;
use std::sync::Arc;

mod key;
mod local;
mod redis;

pub use self::key::{key_bytes, validate, KeySource};
pub use self::local::LocalStore;
pub use self::redis::RedisStore;

/// A `RateLimit` policy: `calls` per `period` for each value of `key`, counted under
/// `scope` (so an api-wide limit is shared by all routes).
#[derive(Debug, Clone)]
pub struct RateLimit {
    pub scope: Arc<str>,
    pub calls: u64,
    pub period_secs: u64,
    pub key: KeySource,
}

/// Longest window a policy may ask for (one day): a rule every format's reader checks.
pub use crate::config::MAX_RATE_LIMIT_PERIOD_SECS as MAX_PERIOD_SECS;
/// Default bound on the number of windows a [`LocalStore`] keeps.
pub const DEFAULT_LOCAL_CAPACITY: usize = 100_000;
/// Prefix of every Redis key this module writes.
pub const REDIS_KEY_PREFIX: &str = "apigate:rl:";
/// Namespace of Redis keys when api.json has no `Name`.
pub const DEFAULT_API_NAME: &str = "$default";

// ---------------------------------------------------------------------------------------
// Decision
// ---------------------------------------------------------------------------------------

/// The answer for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The policy's `Calls`.
    pub limit: u64,
    /// Calls left in the current window (0 once refused).
    pub remaining: u64,
    /// Seconds until the current window ends (at least 1).
    pub reset_secs: u64,
}

impl Decision {
    /// The decision for the `count`-th call of a window ending in `ttl_ms`.
    fn counted(count: u64, limit: u64, ttl_ms: u64) -> Decision {
        Decision {
            allowed: count <= limit,
            limit,
            remaining: limit.saturating_sub(count),
            reset_secs: ttl_ms.div_ceil(1000).max(1),
        }
    }

    /// The state of a window that has counted `count` calls and ends in `ttl_ms`, counting
    /// nothing more: `allowed` says whether one more call would be.
    fn current(count: u64, limit: u64, ttl_ms: u64) -> Decision {
        Decision {
            allowed: count < limit,
            limit,
            remaining: limit.saturating_sub(count),
            reset_secs: ttl_ms.div_ceil(1000).max(1),
        }
    }

    /// The decision when the store could not be asked: allow, report a full window.
    pub fn fail_open(limit: u64, period_secs: u64) -> Decision {
        Decision {
            allowed: true,
            limit,
            remaining: limit,
            reset_secs: period_secs.max(1),
        }
    }

    /// `Retry-After` seconds (>= 1) when refused.
    pub fn retry_after_secs(&self) -> Option<u64> {
        (!self.allowed).then_some(self.reset_secs.max(1))
    }

    /// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (delay in seconds, as in
    /// Kong and the IETF drafts up to -06), plus `Retry-After` when refused. An iterator of
    /// ready header values: no `Vec`, no `String`, no formatting machinery per answer.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, HeaderValue)> {
        [
            ("RateLimit-Limit", Some(self.limit)),
            ("RateLimit-Remaining", Some(self.remaining)),
            ("RateLimit-Reset", Some(self.reset_secs)),
            ("Retry-After", self.retry_after_secs()),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, HeaderValue::from(value?))))
    }
}

/// Folds the decisions of several limits on one request into the one to report: refused
/// if any refused; otherwise the one with the fewest calls left. Among equally exhausted
/// limits the one whose window ends last wins, so a refusal's `Retry-After` covers every
/// limit that would refuse the retry (a 60 s limit at 0 left is not hidden behind a 5 s
/// limit that refused first).
pub fn combine(a: Decision, b: Decision) -> Decision {
    let rank = |d: &Decision| (d.remaining, Reverse(d.reset_secs));
    let shown = if rank(&b) < rank(&a) { b } else { a };
    Decision {
        allowed: a.allowed && b.allowed,
        ..shown
    }
}

// ---------------------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------------------

/// Where counters live. Created once from gateway.json's `RateLimitStore` and kept across
/// config reloads (so counters survive a reload).
// Made once and kept in an `Arc`: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Store {
    Local(LocalStore),
    Redis(RedisStore),
}

impl Store {
    /// Builds the store named by `RateLimitStore` (absent: local). `api_name` is api.json's
    /// `Name` (absent: [`DEFAULT_API_NAME`]); a Redis store namespaces its keys with it,
    /// and keeps the name it was built with for its whole life. Checks the configuration
    /// only; no I/O (Redis is connected on first use). Errors are reported against file
    /// `gateway.json`, field `RateLimitStore.*`.
    pub fn from_conf(
        conf: Option<&RateLimitStoreConf>,
        api_name: Option<&str>,
        errors: &mut ConfigErrors,
    ) -> Option<Arc<Store>> {
        const FILE: &str = "gateway.json";
        let Some(conf) = conf else {
            return Some(Arc::new(Store::Local(LocalStore::new(
                DEFAULT_LOCAL_CAPACITY,
            ))));
        };
        match conf.kind.as_str() {
            "local" => {
                if conf.url.is_some() {
                    errors.push(ConfigError::new(
                        FILE,
                        "RateLimitStore.Url",
                        "Url is only used by a Redis store",
                        "remove Url, or set Type to \"redis\"",
                    ));
                    return None;
                }
                Some(Arc::new(Store::Local(LocalStore::new(
                    DEFAULT_LOCAL_CAPACITY,
                ))))
            }
            "redis" => {
                let Some(url) = conf.url.as_deref() else {
                    errors.push(ConfigError::new(
                        FILE,
                        "RateLimitStore.Url",
                        "a Redis store needs a Url",
                        "add \"Url\": \"redis://HOST:6379\"",
                    ));
                    return None;
                };
                match RedisStore::new(url, api_name.unwrap_or(DEFAULT_API_NAME)) {
                    Ok(s) => Some(Arc::new(Store::Redis(s))),
                    Err(problem) => {
                        errors.push(ConfigError::new(
                            FILE,
                            "RateLimitStore.Url",
                            problem,
                            "use redis://[:PASSWORD@]HOST[:PORT][/DB], e.g. redis://127.0.0.1:6379",
                        ));
                        None
                    }
                }
            }
            other => {
                let fix = match closest(other, ["local", "redis"]) {
                    Some(s) => format!("did you mean {s:?}? (use \"local\" or \"redis\")"),
                    None => "use \"local\" or \"redis\"".to_string(),
                };
                errors.push(ConfigError::new(
                    FILE,
                    "RateLimitStore.Type",
                    format!("unknown store type {other:?}"),
                    fix,
                ));
                None
            }
        }
    }

    /// Fixed window of `period_secs` per key: counts one call for `key` (the raw value,
    /// see [`key_bytes`]) under `scope` and answers whether it is within `limit`.
    pub async fn hit(&self, scope: &str, key: &[u8], limit: u64, period_secs: u64) -> Decision {
        match self {
            Store::Local(s) => s.hit(scope, key, limit, period_secs),
            Store::Redis(s) => Box::pin(s.hit(scope, key, limit, period_secs)).await,
        }
    }

    /// The state of `key`'s window under `scope` without counting a call: what a
    /// `RateLimit-*` header would say now (`allowed`: one more call would be). A key with
    /// no window reports a full one. A Redis store that cannot answer reports a full
    /// window too (fail open).
    pub async fn peek(&self, scope: &str, key: &[u8], limit: u64, period_secs: u64) -> Decision {
        match self {
            Store::Local(s) => s.peek(scope, key, limit, period_secs),
            Store::Redis(s) => Box::pin(s.peek(scope, key, limit, period_secs)).await,
        }
    }

    /// How many calls this store allowed without counting because Redis was unreachable
    /// or failed (always 0 for a local store). Each one is also counted, as it happens, in
    /// `apigate_ratelimit_store_errors_total`.
    pub fn redis_errors(&self) -> u64 {
        match self {
            Store::Local(_) => 0,
            Store::Redis(s) => s.errors(),
        }
    }

    /// `"local"` or `"redis"`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Local(_) => "local",
            Store::Redis(_) => "redis",
        }
    }
}

#[cfg(test)]
mod tests;
