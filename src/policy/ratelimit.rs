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

use crate::config::{closest, ConfigError, ConfigErrors, RateLimitConf, RateLimitStoreConf};
use crate::mapping::Claims;
use http::HeaderValue;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Longest window a policy may ask for (one day).
pub const MAX_PERIOD_SECS: u64 = 86_400;
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
// Keys
// ---------------------------------------------------------------------------------------

/// The raw bytes of a policy's key for one request: the client IP; the header's values
/// joined with `,` (absent: empty); or the claim (a JSON string as it is, other JSON as
/// JSON text; absent: empty). Borrowed whenever the value exists in one piece, so the
/// usual cases allocate nothing. Bytes, not text: values that are not UTF-8 must not be
/// merged by a lossy conversion.
pub fn key_bytes<'a>(
    source: &KeySource,
    headers: &'a http::HeaderMap,
    client_ip: &'a str,
    claims: Option<&'a Claims>,
) -> Cow<'a, [u8]> {
    match source {
        KeySource::SourceIp => Cow::Borrowed(client_ip.as_bytes()),
        KeySource::Header(name) => {
            let mut values = headers.get_all(name.as_str()).iter();
            let Some(first) = values.next() else {
                return Cow::Borrowed(b"");
            };
            let Some(second) = values.next() else {
                return Cow::Borrowed(first.as_bytes());
            };
            let mut joined = first.as_bytes().to_vec();
            for v in std::iter::once(second).chain(values) {
                joined.push(b',');
                joined.extend_from_slice(v.as_bytes());
            }
            Cow::Owned(joined)
        }
        KeySource::Claim(name) => match claims.and_then(|c| c.get(name)) {
            Some(serde_json::Value::String(s)) => Cow::Borrowed(s.as_bytes()),
            Some(other) => Cow::Owned(other.to_string().into_bytes()),
            None => Cow::Borrowed(b""),
        },
    }
}

/// Longest key value kept as it is in a Redis key.
const READABLE_MAX: usize = 64;
/// Starts every digested key value. Readable values never start with it, so a client
/// cannot send a value that lands on another value's digest.
const DIGEST_MARK: u8 = b'#';

/// `apigate:rl:<api name>:`: the part of every Redis key fixed by the configuration. The
/// api name keeps two APIs sharing one Redis apart.
fn redis_key_prefix(api_name: &str) -> Vec<u8> {
    let mut prefix = REDIS_KEY_PREFIX.as_bytes().to_vec();
    push_escaped(&mut prefix, api_name);
    prefix.push(b':');
    prefix
}

/// The Redis key of one counter: `<prefix><scope>:<value>`, e.g.
/// `apigate:rl:shop:route|prod|GET /pets:203.0.113.9`. `:` and `%` in the configured parts
/// (rare) are %-escaped, so the first two `:` after the prefix split the key unambiguously
/// whatever the value holds (IPv6 addresses included).
fn redis_key(prefix: &[u8], scope: &str, raw: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + scope.len() + 2 + READABLE_MAX);
    key.extend_from_slice(prefix);
    push_escaped(&mut key, scope);
    key.push(b':');
    push_key_value(&mut key, raw);
    key
}

fn push_escaped(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        match b {
            b'%' => out.extend_from_slice(b"%25"),
            b':' => out.extend_from_slice(b"%3A"),
            _ => out.push(b),
        }
    }
}

/// Appends a client's key value as it goes in a Redis key: as it is when short, printable
/// ASCII and not starting with [`DIGEST_MARK`] (so operators can read the keys of IPs and
/// API keys); anything else as `#` and the first 128 bits of its SHA-256 in hex. A client
/// cannot make a key longer than 64 bytes, distinct values (non-UTF-8 ones included) keep
/// distinct counters, and every gateway instance derives the same key.
fn push_key_value(out: &mut Vec<u8>, raw: &[u8]) {
    let readable = raw.len() <= READABLE_MAX
        && raw.first() != Some(&DIGEST_MARK)
        && raw.iter().all(|b| (0x20..0x7f).contains(b));
    if readable {
        out.extend_from_slice(raw);
        return;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(DIGEST_MARK);
    for b in &Sha256::digest(raw)[..16] {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0x0f)]);
    }
}

// ---------------------------------------------------------------------------------------
// Policy validation and key syntax
// ---------------------------------------------------------------------------------------

/// Where a policy's `Key` comes from. The caller evaluates it per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `$context.identity.sourceIp`
    SourceIp,
    /// `$request.header.NAME` (NAME as written; header lookup is case-insensitive).
    Header(String),
    /// `$context.authorizer.claims.NAME`
    Claim(String),
}

const SOURCE_IP: &str = "$context.identity.sourceIp";
const HEADER_PREFIX: &str = "$request.header.";
const CLAIM_PREFIX: &str = "$context.authorizer.claims.";

impl KeySource {
    /// Parses a `Key`; `None` when it is not one of the three supported forms.
    pub fn parse(key: &str) -> Option<KeySource> {
        if key == SOURCE_IP {
            Some(KeySource::SourceIp)
        } else if let Some(name) = key.strip_prefix(HEADER_PREFIX) {
            is_header_name(name).then(|| KeySource::Header(name.to_string()))
        } else if let Some(name) = key.strip_prefix(CLAIM_PREFIX) {
            let ok = !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control());
            ok.then(|| KeySource::Claim(name.to_string()))
        } else {
            None
        }
    }
}

/// An HTTP field name: one or more `tchar` (RFC 9110).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks a `RateLimit` policy. `field` names it, e.g. `Policies.RateLimit`; errors name
/// `<field>.Calls`, `<field>.PeriodSeconds`, `<field>.Key`.
pub fn validate(file: &str, field: &str, conf: &RateLimitConf, errors: &mut ConfigErrors) {
    if conf.calls == 0 {
        errors.push(ConfigError::new(
            file,
            format!("{field}.Calls"),
            "0 calls would refuse every request",
            "set Calls to 1 or more (to block a route, use an IpFilter)",
        ));
    }
    if !(1..=MAX_PERIOD_SECS).contains(&conf.period_seconds) {
        errors.push(ConfigError::new(
            file,
            format!("{field}.PeriodSeconds"),
            format!("{} is outside 1..={MAX_PERIOD_SECS}", conf.period_seconds),
            format!("use a window between 1 and {MAX_PERIOD_SECS} seconds"),
        ));
    }
    if KeySource::parse(&conf.key).is_none() {
        let forms = format!("use {SOURCE_IP}, {HEADER_PREFIX}NAME or {CLAIM_PREFIX}NAME");
        let fix = match suggest_key(&conf.key) {
            Some(s) => format!("did you mean {s:?}? ({forms})"),
            None => forms,
        };
        errors.push(ConfigError::new(
            file,
            format!("{field}.Key"),
            format!("unsupported key {:?}", conf.key),
            fix,
        ));
    }
}

fn suggest_key(key: &str) -> Option<String> {
    if let Some(s) = closest(key, [SOURCE_IP]) {
        return Some(s.to_string());
    }
    let (head, name) = key.rsplit_once('.')?;
    let head = format!("{head}.");
    let prefix = closest(&head, [HEADER_PREFIX, CLAIM_PREFIX])?;
    let candidate = format!("{prefix}{name}");
    KeySource::parse(&candidate).map(|_| candidate)
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
            Store::Redis(s) => s.hit(scope, key, limit, period_secs).await,
        }
    }

    /// The state of `key`'s window under `scope` without counting a call: what a
    /// `RateLimit-*` header would say now (`allowed`: one more call would be). A key with
    /// no window reports a full one. A Redis store that cannot answer reports a full
    /// window too (fail open).
    pub async fn peek(&self, scope: &str, key: &[u8], limit: u64, period_secs: u64) -> Decision {
        match self {
            Store::Local(s) => s.peek(scope, key, limit, period_secs),
            Store::Redis(s) => s.peek(scope, key, limit, period_secs).await,
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

// ---------------------------------------------------------------------------------------
// Local store
// ---------------------------------------------------------------------------------------

const SHARDS: usize = 64;

/// In-process counters: 64 shards, each a `parking_lot::Mutex<HashMap>`, holding at most
/// `capacity` windows in total.
///
/// Keys are stored as a 64-bit SipHash of scope and raw value with a per-process random
/// key, so an entry is a fixed size however long the key is, and clients cannot craft
/// collisions.
///
/// Memory bound: each shard holds at most `capacity / 64` windows (at least 1). When a new
/// key arrives at a full shard, the shard frees an eighth of its room in one pass
/// (amortised: a full pass per `capacity / 512` inserts, never one per insert), evicting
/// in this order: expired windows; then live windows under their limit, fewest calls
/// first (evicting one hands its client back only that many calls), soonest ending
/// first among equals; and only when nothing else is left, windows at their limit,
/// soonest ending first. So a flood of new keys, even ones hit a few times each, does not
/// reset the counter of a client that is being limited. Evicting a live window resets
/// that key's count: the store errs towards allowing, it never refuses because it is
/// full.
pub struct LocalStore {
    origin: Instant,
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

#[derive(Default)]
struct Shard {
    windows: HashMap<u64, Window, BuildHasherDefault<PassThrough>>,
}

#[derive(Clone, Copy)]
struct Window {
    count: u64,
    /// The policy's `Calls` at the last hit: a window at it is not evicted while others
    /// can be.
    limit: u64,
    /// ms since the store's origin.
    ends_ms: u64,
}

impl Window {
    /// Eviction order, lowest first (see [`LocalStore`]).
    fn eviction_rank(&self, now_ms: u64) -> (u8, u64, u64) {
        if self.ends_ms <= now_ms {
            (0, 0, 0)
        } else if self.count < self.limit {
            (1, self.count, self.ends_ms)
        } else {
            (2, self.ends_ms, 0)
        }
    }
}

/// The map keys are already SipHash outputs: use them as they are.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not used for u64 keys; fold anything else in.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl LocalStore {
    /// A store keeping at most `capacity` windows (rounded down to a multiple of 64, at
    /// least 64).
    pub fn new(capacity: usize) -> Self {
        LocalStore {
            origin: Instant::now(),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: (capacity / SHARDS).max(1),
        }
    }

    /// See [`Store::hit`].
    pub fn hit(&self, scope: &str, key: &[u8], limit: u64, period_secs: u64) -> Decision {
        self.hit_at(scope, key, limit, period_secs, Instant::now())
    }

    /// See [`Store::peek`].
    pub fn peek(&self, scope: &str, key: &[u8], limit: u64, period_secs: u64) -> Decision {
        self.peek_at(scope, key, limit, period_secs, Instant::now())
    }

    /// The key of `scope` and `key` in the maps. The 0xff between them never occurs in
    /// UTF-8, so no scope/key split of the same bytes hashes alike.
    fn hash(&self, scope: &str, key: &[u8]) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write(scope.as_bytes());
        h.write_u8(0xff);
        h.write(key);
        h.finish()
    }

    fn shard(&self, hash: u64) -> &Mutex<Shard> {
        // Shard on middle bits: the map itself uses the low bits (bucket) and the top 7
        // (control byte), which must stay varied within a shard.
        &self.shards[((hash >> 32) as usize) % SHARDS]
    }

    fn ms_since_origin(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_millis() as u64
    }

    /// [`LocalStore::hit`] as of `now` (for tests).
    pub fn hit_at(
        &self,
        scope: &str,
        key: &[u8],
        limit: u64,
        period_secs: u64,
        now: Instant,
    ) -> Decision {
        let hash = self.hash(scope, key);
        let now_ms = self.ms_since_origin(now);
        let period_ms = period_secs.max(1).saturating_mul(1000);
        let fresh = Window {
            count: 1,
            limit,
            ends_ms: now_ms.saturating_add(period_ms),
        };
        let w = {
            let mut shard = self.shard(hash).lock();
            match shard.windows.get_mut(&hash) {
                Some(w) if w.ends_ms > now_ms => {
                    w.count = w.count.saturating_add(1);
                    w.limit = limit;
                    *w
                }
                Some(w) => {
                    *w = fresh;
                    fresh
                }
                None => {
                    if shard.windows.len() >= self.per_shard {
                        shard.make_room(now_ms, self.per_shard);
                    }
                    shard.windows.insert(hash, fresh);
                    fresh
                }
            }
        };
        Decision::counted(w.count, limit, w.ends_ms - now_ms)
    }

    /// [`LocalStore::peek`] as of `now` (for tests).
    pub fn peek_at(
        &self,
        scope: &str,
        key: &[u8],
        limit: u64,
        period_secs: u64,
        now: Instant,
    ) -> Decision {
        let hash = self.hash(scope, key);
        let now_ms = self.ms_since_origin(now);
        let live = self
            .shard(hash)
            .lock()
            .windows
            .get(&hash)
            .filter(|w| w.ends_ms > now_ms)
            .copied();
        match live {
            Some(w) => Decision::current(w.count, limit, w.ends_ms - now_ms),
            None => Decision::current(0, limit, period_secs.max(1).saturating_mul(1000)),
        }
    }

    /// Windows currently held (expired ones included until they are swept).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().windows.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most windows this store will hold.
    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }
}

impl Shard {
    /// Frees at least an eighth of a full shard, in [`LocalStore`]'s eviction order. One
    /// pass to rank, one selection, one pass to remove; every expired window goes too.
    fn make_room(&mut self, now_ms: u64, per_shard: usize) {
        let keep = per_shard.saturating_sub((per_shard / 8).max(1));
        let evict = self.windows.len().saturating_sub(keep);
        if evict == 0 {
            return;
        }
        let mut ranks: Vec<(u8, u64, u64)> = self
            .windows
            .values()
            .map(|w| w.eviction_rank(now_ms))
            .collect();
        let (below, cutoff, _) = ranks.select_nth_unstable(evict - 1);
        let cutoff = *cutoff;
        // Windows ranked below the cutoff all go; of those equal to it, just enough.
        let mut equal_quota = evict - below.iter().filter(|r| **r < cutoff).count();
        self.windows.retain(|_, w| {
            let rank = w.eviction_rank(now_ms);
            if rank.0 == 0 || rank < cutoff {
                false
            } else if rank == cutoff && equal_quota > 0 {
                equal_quota -= 1;
                false
            } else {
                true
            }
        });
    }
}

// ---------------------------------------------------------------------------------------
// Redis store
// ---------------------------------------------------------------------------------------

/// INCR the key, start its window on the first call, report count and ms left. The PTTL
/// fallback repairs a key that somehow lost its expiry, so no counter can stick forever.
const HIT_SCRIPT: &str = r"
local c = redis.call('INCR', KEYS[1])
if c == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local t = redis.call('PTTL', KEYS[1])
if t < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  t = tonumber(ARGV[1])
end
return {c, t}
";

/// Reads count and ms left without writing (a missing key reads as 0 and PTTL -2).
const PEEK_SCRIPT: &str = r"
local c = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
return {c, redis.call('PTTL', KEYS[1])}
";

/// Bound on each call while Redis is up, connecting and the one retry included; past it
/// the call fails open.
const REDIS_TIMEOUT: Duration = Duration::from_millis(200);
/// While Redis is down, the prober PINGs it this often.
const REDIS_PROBE_EVERY: Duration = Duration::from_secs(1);
/// At most one warning per this interval while Redis is failing.
const REDIS_LOG_MS: u64 = 10_000;

/// Counters in Redis, shared by every gateway pointing at it. Key:
/// `apigate:rl:<api name>:<scope>:<value>`, where a value that is long or not printable
/// ASCII is replaced by a digest (see [`push_key_value`]), so clients cannot size keys.
///
/// Connection: one `redis::aio::MultiplexedConnection` shared by all calls, made on first
/// use. While Redis is up, each call is bounded by 200 ms; a call that finds its
/// connection dropped (a restarted Redis) is retried at once on a new one. **Fail open**:
/// any other failure, or a timeout, marks the store down; while down, every call is
/// allowed at once, uncounted (`apigate_ratelimit_store_errors_total` counts each one),
/// and no request waits for Redis. A background prober PINGs Redis every second on a
/// fresh connection and marks the store up when it answers. A warning is logged at most
/// once per 10 s while failing, and once when Redis answers again.
///
/// Counters in a restarted Redis start from zero unless it persists them.
pub struct RedisStore {
    inner: Arc<RedisInner>,
}

/// The shared state; the prober holds a `Weak` to it, so a dropped store stops probing.
struct RedisInner {
    client: redis::Client,
    /// `host:port`, without credentials, for logs.
    addr: String,
    /// See [`redis_key_prefix`].
    prefix: Vec<u8>,
    hit_script: redis::Script,
    peek_script: redis::Script,
    slot: Mutex<Slot>,
    /// One caller connects; callers arriving meanwhile wait for its connection.
    connecting: tokio::sync::Mutex<()>,
    /// False from a failed call until the prober gets an answer.
    up: AtomicBool,
    probing: AtomicBool,
    origin: Instant,
    last_log_ms: AtomicU64,
    errors: AtomicU64,
}

/// The connection calls share. `generation` changes with each new connection, so a call
/// that saw a connection fail drops that one, not a newer one made meanwhile.
#[derive(Default)]
struct Slot {
    generation: u64,
    conn: Option<redis::aio::MultiplexedConnection>,
}

impl RedisStore {
    /// Parses `url` (no I/O). The error says what is wrong with it. `api_name` namespaces
    /// the keys.
    pub fn new(url: &str, api_name: &str) -> Result<RedisStore, String> {
        if !url.starts_with("redis://") {
            return Err(format!("{url:?} is not a redis:// URL"));
        }
        let client = redis::Client::open(url)
            .map_err(|e| format!("{url:?} is not a valid Redis URL: {e}"))?;
        let addr = client.get_connection_info().addr.to_string();
        Ok(RedisStore {
            inner: Arc::new(RedisInner {
                client,
                addr,
                prefix: redis_key_prefix(api_name),
                hit_script: redis::Script::new(HIT_SCRIPT),
                peek_script: redis::Script::new(PEEK_SCRIPT),
                slot: Mutex::new(Slot::default()),
                connecting: tokio::sync::Mutex::new(()),
                up: AtomicBool::new(true),
                probing: AtomicBool::new(false),
                origin: Instant::now(),
                last_log_ms: AtomicU64::new(0),
                errors: AtomicU64::new(0),
            }),
        })
    }

    /// Fail-open decisions so far.
    pub fn errors(&self) -> u64 {
        self.inner.errors.load(Ordering::Relaxed)
    }

    /// False while Redis is considered down (calls fail open without trying it).
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// The Redis key counting `key` under `scope`.
    pub fn key(&self, scope: &str, key: &[u8]) -> Vec<u8> {
        redis_key(&self.inner.prefix, scope, key)
    }

    /// See [`Store::hit`].
    pub async fn hit(&self, scope: &str, key: &[u8], limit: u64, period_secs: u64) -> Decision {
        let s = &self.inner;
        if !s.up.load(Ordering::Relaxed) {
            return s.fail_open(limit, period_secs);
        }
        let period_ms = period_secs.max(1).saturating_mul(1000);
        match s
            .eval(&s.hit_script, &self.key(scope, key), period_ms)
            .await
        {
            Ok((count, ttl_ms)) => {
                let ttl_ms = u64::try_from(ttl_ms).unwrap_or(0);
                let ttl_ms = if ttl_ms > 0 { ttl_ms } else { period_ms };
                let count = u64::try_from(count).unwrap_or(0).max(1);
                Decision::counted(count, limit, ttl_ms)
            }
            Err(problem) => {
                let d = s.fail_open(limit, period_secs);
                s.went_down(&problem);
                d
            }
        }
    }

    /// See [`Store::peek`]. Not a fail-open when it fails (nothing is allowed by it), so
    /// not counted as one; it does mark the store down like any failed call.
    pub async fn peek(&self, scope: &str, key: &[u8], limit: u64, period_secs: u64) -> Decision {
        let s = &self.inner;
        if !s.up.load(Ordering::Relaxed) {
            return Decision::fail_open(limit, period_secs);
        }
        let period_ms = period_secs.max(1).saturating_mul(1000);
        match s
            .eval(&s.peek_script, &self.key(scope, key), period_ms)
            .await
        {
            Ok((count, ttl_ms)) => {
                let count = u64::try_from(count).unwrap_or(0);
                let ttl_ms = u64::try_from(ttl_ms).unwrap_or(0);
                if count == 0 || ttl_ms == 0 {
                    Decision::current(count, limit, period_ms)
                } else {
                    Decision::current(count, limit, ttl_ms)
                }
            }
            Err(problem) => {
                s.went_down(&problem);
                Decision::fail_open(limit, period_secs)
            }
        }
    }
}

impl RedisInner {
    fn now_ms(&self) -> u64 {
        // +1 so that 0 can mean "never" in `last_log_ms`.
        self.origin.elapsed().as_millis() as u64 + 1
    }

    /// Allows a call uncounted, and counts that where operators see it.
    fn fail_open(&self, limit: u64, period_secs: u64) -> Decision {
        self.errors.fetch_add(1, Ordering::Relaxed);
        crate::metrics::metrics().ratelimit_store_errors.inc();
        Decision::fail_open(limit, period_secs)
    }

    /// Runs `script` on `key` within [`REDIS_TIMEOUT`], retrying once on a new connection
    /// when the current one turns out to be dropped.
    async fn eval(
        &self,
        script: &redis::Script,
        key: &[u8],
        arg: u64,
    ) -> Result<(i64, i64), String> {
        let call = async {
            let (generation, mut conn) = self.connection().await?;
            match invoke(script, key, arg, &mut conn).await {
                Err(e) if e.is_connection_dropped() => {
                    // Typically Redis restarted: this connection is dead, a new one works.
                    self.discard(generation);
                    let (_, mut conn) = self.connection().await?;
                    invoke(script, key, arg, &mut conn)
                        .await
                        .map_err(|e| e.to_string())
                }
                other => other.map_err(|e| e.to_string()),
            }
        };
        tokio::time::timeout(REDIS_TIMEOUT, call)
            .await
            .map_err(|_| "timed out".to_string())?
    }

    /// The shared connection, made if there is none.
    async fn connection(&self) -> Result<(u64, redis::aio::MultiplexedConnection), String> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        if !self.up.load(Ordering::Relaxed) {
            // Whoever connected while we waited has just failed: do not try again at once.
            return Err("not connected".to_string());
        }
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&connection_config())
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        Ok(self.install(conn))
    }

    fn current(&self) -> Option<(u64, redis::aio::MultiplexedConnection)> {
        let slot = self.slot.lock();
        slot.conn.clone().map(|c| (slot.generation, c))
    }

    fn install(
        &self,
        conn: redis::aio::MultiplexedConnection,
    ) -> (u64, redis::aio::MultiplexedConnection) {
        let mut slot = self.slot.lock();
        slot.generation += 1;
        slot.conn = Some(conn.clone());
        (slot.generation, conn)
    }

    fn discard(&self, generation: u64) {
        let mut slot = self.slot.lock();
        if slot.generation == generation {
            slot.conn = None;
        }
    }

    /// A call failed: stop sending calls to Redis until the prober hears from it.
    fn went_down(self: &Arc<Self>, problem: &str) {
        // The connection may be dead or wedged; the prober makes a fresh one.
        self.slot.lock().conn = None;
        self.up.store(false, Ordering::SeqCst);
        self.start_prober();
        let now = self.now_ms();
        let last = self.last_log_ms.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= REDIS_LOG_MS)
            && self
                .last_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log::warn!(
                "rate limit store: Redis at {} failed ({problem}); allowing requests uncounted \
                 until it answers ({} so far)",
                self.addr,
                self.errors.load(Ordering::Relaxed)
            );
        }
    }

    fn start_prober(self: &Arc<Self>) {
        if self.probing.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Nowhere to probe from (calls always run on a runtime): let calls try again.
            self.probing.store(false, Ordering::SeqCst);
            self.up.store(true, Ordering::SeqCst);
            return;
        };
        runtime.spawn(probe(Arc::downgrade(self)));
    }

    /// A new connection that has answered a PING.
    async fn ping(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&connection_config())
            .await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(conn)
    }
}

fn connection_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(REDIS_TIMEOUT)
        .set_response_timeout(REDIS_TIMEOUT)
}

async fn invoke(
    script: &redis::Script,
    key: &[u8],
    arg: u64,
    conn: &mut redis::aio::MultiplexedConnection,
) -> redis::RedisResult<(i64, i64)> {
    let mut invocation = script.key(key);
    invocation.arg(arg);
    invocation.invoke_async(conn).await
}

/// While the store is down: PING Redis every [`REDIS_PROBE_EVERY`] on a fresh connection
/// (bounded by [`REDIS_TIMEOUT`]); on an answer, hand that connection to the calls and
/// mark the store up. Ends then, or when the store is dropped.
async fn probe(store: Weak<RedisInner>) {
    loop {
        tokio::time::sleep(REDIS_PROBE_EVERY).await;
        let Some(s) = store.upgrade() else {
            return;
        };
        if let Ok(Ok(conn)) = tokio::time::timeout(REDIS_TIMEOUT, s.ping()).await {
            s.install(conn);
            // `probing` is cleared before `up` is set, so a call failing right after
            // starts a new prober.
            s.probing.store(false, Ordering::SeqCst);
            s.up.store(true, Ordering::SeqCst);
            log::info!(
                "rate limit store: Redis at {} answers again; counting resumes",
                s.addr
            );
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(calls: u64, period: u64, key: &str) -> RateLimitConf {
        RateLimitConf {
            calls,
            period_seconds: period,
            key: key.to_string(),
        }
    }

    fn decision(allowed: bool, limit: u64, remaining: u64, reset_secs: u64) -> Decision {
        Decision {
            allowed,
            limit,
            remaining,
            reset_secs,
        }
    }

    #[test]
    fn window_counts_then_resets() {
        let s = LocalStore::new(1000);
        let t0 = Instant::now();
        for i in 1..=3 {
            let d = s.hit_at("t", b"k", 3, 10, t0);
            assert!(d.allowed);
            assert_eq!(d.remaining, 3 - i);
            assert_eq!(d.reset_secs, 10);
        }
        let d = s.hit_at("t", b"k", 3, 10, t0 + Duration::from_millis(9_100));
        assert!(!d.allowed);
        assert_eq!((d.remaining, d.reset_secs), (0, 1));
        assert_eq!(d.retry_after_secs(), Some(1));
        // The window ends 10 s after its first call.
        let d = s.hit_at("t", b"k", 3, 10, t0 + Duration::from_secs(10));
        assert!(d.allowed);
        assert_eq!((d.remaining, d.reset_secs), (2, 10));
    }

    #[test]
    fn keys_are_isolated() {
        let s = LocalStore::new(1000);
        let t0 = Instant::now();
        assert!(s.hit_at("t", b"a", 1, 60, t0).allowed);
        assert!(!s.hit_at("t", b"a", 1, 60, t0).allowed);
        assert!(s.hit_at("t", b"b", 1, 60, t0).allowed);
        assert!(s.hit_at("route|s|GET /x", b"1.2.3.4", 1, 60, t0).allowed);
        assert!(s.hit_at("route|s|GET /y", b"1.2.3.4", 1, 60, t0).allowed);
        // Raw bytes: values that are not UTF-8 are not merged by a lossy conversion.
        assert!(s.hit_at("t", b"\xff", 1, 60, t0).allowed);
        assert!(s.hit_at("t", b"\xfe", 1, 60, t0).allowed);
        assert!(s.hit_at("t", "\u{fffd}".as_bytes(), 1, 60, t0).allowed);
        // Where scope ends and value begins matters.
        assert!(s.hit_at("x|y", b"z", 1, 60, t0).allowed);
        assert!(s.hit_at("x", b"y|z", 1, 60, t0).allowed);
    }

    #[test]
    fn memory_stays_bounded() {
        let s = LocalStore::new(10_000);
        assert!(s.capacity() <= 10_000);
        let t0 = Instant::now();
        // A limited client keeps calling while a flood of one-off keys arrives.
        for i in 0..1_000_000u64 {
            s.hit_at("t", format!("flood-{i}").as_bytes(), 5, 60, t0);
            if i % 1000 == 0 {
                s.hit_at("t", b"victim", 5, 60, t0);
            }
        }
        assert!(s.len() <= 10_000, "{}", s.len());
        assert!(s.len() >= 8_000, "{}", s.len());
        assert!(!s.hit_at("t", b"victim", 5, 60, t0).allowed);
        // Expired windows are swept before anything live is evicted.
        let later = t0 + Duration::from_secs(61);
        for i in 0..5_000u64 {
            s.hit_at("t", format!("new-{i}").as_bytes(), 5, 60, later);
        }
        assert!(s.len() <= 10_000);
    }

    /// The audit's attack: flood keys hit twice each used to rank with a limited client
    /// (both "more than one call") and, ending later, outlive it: the client's counter was
    /// evicted and it could call again.
    #[test]
    fn a_flood_of_repeated_keys_does_not_free_a_limited_client() {
        let s = LocalStore::new(DEFAULT_LOCAL_CAPACITY);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(s.hit_at("t", b"victim", 5, 60, t0).allowed);
        }
        // A client close to its limit, not at it: evicted only after lighter windows.
        for _ in 0..4 {
            s.hit_at("t", b"busy", 5, 60, t0);
        }
        let t1 = t0 + Duration::from_secs(1);
        for i in 0..(DEFAULT_LOCAL_CAPACITY as u64 * 3 / 2) {
            let key = format!("flood-{i}");
            s.hit_at("t", key.as_bytes(), 5, 60, t1);
            s.hit_at("t", key.as_bytes(), 5, 60, t1);
        }
        assert!(s.len() <= s.capacity());
        let d = s.hit_at("t", b"victim", 5, 60, t1);
        assert!(!d.allowed, "the limited client was evicted: {d:?}");
        assert_eq!(d.reset_secs, 59);
        assert_eq!(s.hit_at("t", b"busy", 5, 60, t1).remaining, 0);
    }

    #[test]
    fn eviction_order_and_batch_size() {
        let now_ms = 10_000;
        let window = |count, limit, ends_ms| Window {
            count,
            limit,
            ends_ms,
        };
        let mut shard = Shard::default();
        // 800 full: 10 expired, 100 at their limit, 690 live with counts 1..=690.
        for k in 0..10u64 {
            shard.windows.insert(k, window(1, 5, now_ms));
        }
        for k in 10..110u64 {
            shard.windows.insert(k, window(5, 5, now_ms + k));
        }
        for k in 110..800u64 {
            shard.windows.insert(k, window(k - 109, 1_000, now_ms + 1));
        }
        shard.make_room(now_ms, 800);
        // An eighth freed at once, so the next 99 inserts cost no pass.
        assert_eq!(shard.windows.len(), 700);
        assert!(
            (0..10).all(|k| !shard.windows.contains_key(&k)),
            "expired stay"
        );
        assert!(
            (10..110).all(|k| shard.windows.contains_key(&k)),
            "limited go"
        );
        // The 90 lightest live windows went.
        assert!((110..200).all(|k| !shard.windows.contains_key(&k)));
        assert!((200..800).all(|k| shard.windows.contains_key(&k)));

        // Only limited windows left: they go too, soonest ending first.
        let mut shard = Shard::default();
        for k in 0..16u64 {
            shard.windows.insert(k, window(5, 5, now_ms + 100 - k));
        }
        shard.make_room(now_ms, 16);
        assert_eq!(shard.windows.len(), 14);
        assert!(!shard.windows.contains_key(&15) && !shard.windows.contains_key(&14));

        // Many expired: all of them go, whatever the batch size.
        let mut shard = Shard::default();
        for k in 0..16u64 {
            shard.windows.insert(k, window(1, 5, now_ms - 1));
        }
        shard.make_room(now_ms, 16);
        assert!(shard.windows.is_empty());
    }

    #[test]
    fn tiny_capacity_and_odd_arguments() {
        let s = LocalStore::new(0);
        assert_eq!(s.capacity(), 64);
        for i in 0..1000 {
            assert!(s.hit("t", format!("k{i}").as_bytes(), 1, 1).allowed);
        }
        assert!(s.len() <= 64);
        let d = s.hit("t", b"zero", 0, 0);
        assert!(!d.allowed);
        assert_eq!(d.reset_secs, 1);
        assert!(s.hit("t", b"long", 1, u64::MAX).allowed);
        assert!(s.hit("", b"", 1, 1).allowed);
    }

    #[test]
    fn concurrent_hits_count_exactly() {
        let s = Arc::new(LocalStore::new(1000));
        let t0 = Instant::now();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    (0..1000)
                        .filter(|_| s.hit_at("t", b"shared", 500, 60, t0).allowed)
                        .count()
                })
            })
            .collect();
        let allowed: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(allowed, 500);
    }

    #[test]
    fn peek_reads_without_counting() {
        let s = LocalStore::new(1000);
        let t0 = Instant::now();
        // No window yet: a full one.
        assert_eq!(s.peek_at("t", b"k", 3, 10, t0), decision(true, 3, 3, 10));
        s.hit_at("t", b"k", 3, 10, t0);
        s.hit_at("t", b"k", 3, 10, t0);
        let later = t0 + Duration::from_millis(2_500);
        for _ in 0..5 {
            assert_eq!(s.peek_at("t", b"k", 3, 10, later), decision(true, 3, 1, 8));
        }
        assert_eq!(s.hit_at("t", b"k", 3, 10, later), decision(true, 3, 0, 8));
        // At the limit: one more call would be refused.
        let d = s.peek_at("t", b"k", 3, 10, later);
        assert_eq!(d, decision(false, 3, 0, 8));
        assert_eq!(d.retry_after_secs(), Some(8));
        assert!(!s.hit_at("t", b"k", 3, 10, later).allowed);
        // Ended: a full window again; other keys and scopes are their own.
        let ended = t0 + Duration::from_secs(10);
        assert_eq!(s.peek_at("t", b"k", 3, 10, ended), decision(true, 3, 3, 10));
        assert_eq!(s.peek_at("u", b"k", 3, 10, later), decision(true, 3, 3, 10));
        assert_eq!(s.peek_at("t", b"j", 3, 10, later), decision(true, 3, 3, 10));
        assert_eq!(s.len(), 1, "peek made a window");
    }

    #[test]
    fn combine_reports_the_tightest_limit() {
        // The audit's case: stage 4/60 s by IP (counted, now at 0 left) and route 3/5 s
        // (refused). Retrying after 5 s would meet the stage limit: report 60.
        let stage = decision(true, 4, 0, 60);
        let route = decision(false, 3, 0, 5);
        assert_eq!(combine(stage, route), decision(false, 4, 0, 60));
        assert_eq!(combine(route, stage), decision(false, 4, 0, 60));
        // Both refused: the longer wait.
        let a = decision(false, 10, 0, 30);
        let b = decision(false, 2, 0, 45);
        assert_eq!(combine(a, b), decision(false, 2, 0, 45));
        assert_eq!(combine(b, a), decision(false, 2, 0, 45));
        // A refusal outranks any allowed limit with calls left.
        let loose = decision(true, 100, 7, 3_600);
        assert_eq!(combine(loose, route), decision(false, 3, 0, 5));
        // Allowed: the fewest calls left, then the later reset.
        let x = decision(true, 10, 3, 20);
        let y = decision(true, 5, 3, 50);
        let z = decision(true, 5, 2, 1);
        assert_eq!(combine(x, y), y);
        assert_eq!(combine(y, x), y);
        assert_eq!(combine(combine(x, y), z), z);
        assert_eq!(combine(x, combine(y, z)), z);
        // A fail-open decision never hides a counted one.
        let open = Decision::fail_open(5, 60);
        assert_eq!(combine(open, x), x);
    }

    fn header_strings(d: &Decision) -> Vec<(&'static str, String)> {
        d.headers()
            .map(|(k, v)| (k, v.to_str().unwrap_or("?").to_string()))
            .collect()
    }

    #[test]
    fn headers() {
        let d = Decision::counted(2, 5, 30_000);
        assert_eq!(
            header_strings(&d),
            vec![
                ("RateLimit-Limit", "5".to_string()),
                ("RateLimit-Remaining", "3".to_string()),
                ("RateLimit-Reset", "30".to_string()),
            ]
        );
        let d = Decision::counted(6, 5, 1);
        assert_eq!(
            header_strings(&d),
            vec![
                ("RateLimit-Limit", "5".to_string()),
                ("RateLimit-Remaining", "0".to_string()),
                ("RateLimit-Reset", "1".to_string()),
                ("Retry-After", "1".to_string()),
            ]
        );
        let d = decision(false, u64::MAX, 0, 86_400);
        assert_eq!(
            header_strings(&d)[0],
            ("RateLimit-Limit", u64::MAX.to_string())
        );
        assert_eq!(header_strings(&d)[3], ("Retry-After", "86400".to_string()));
        let d = Decision::fail_open(7, 60);
        assert!(d.allowed);
        assert_eq!((d.remaining, d.reset_secs), (7, 60));
        assert_eq!(d.retry_after_secs(), None);
    }

    #[test]
    fn key_values() {
        let mut headers = http::HeaderMap::new();
        let ip = "10.1.2.3";
        let source = |name: &str| KeySource::Header(name.to_string());
        assert_eq!(&*key_bytes(&source("X-Key"), &headers, ip, None), b"");
        headers.append("x-key", HeaderValue::from_static("a"));
        let one = key_bytes(&source("X-Key"), &headers, ip, None);
        assert!(matches!(one, Cow::Borrowed(b"a")), "{one:?}");
        headers.append("x-key", HeaderValue::from_static("b"));
        headers.append("x-key", HeaderValue::from_static("c"));
        assert_eq!(&*key_bytes(&source("x-KEY"), &headers, ip, None), b"a,b,c");
        let raw = HeaderValue::from_bytes(b"\xff\xfe").unwrap();
        headers.insert("x-raw", raw);
        assert_eq!(
            &*key_bytes(&source("X-Raw"), &headers, ip, None),
            b"\xff\xfe"
        );
        assert_eq!(
            &*key_bytes(&KeySource::SourceIp, &headers, ip, None),
            ip.as_bytes()
        );
        let claims: Claims =
            serde_json::from_str(r#"{"sub":"u-1","n":42,"o":{"a":[1]}}"#).unwrap_or_default();
        let claim = |name: &str| KeySource::Claim(name.to_string());
        let sub = claim("sub");
        assert!(matches!(
            key_bytes(&sub, &headers, ip, Some(&claims)),
            Cow::Borrowed(b"u-1")
        ));
        assert_eq!(&*key_bytes(&sub, &headers, ip, None), b"");
        let got = |name: &str| key_bytes(&claim(name), &headers, ip, Some(&claims)).into_owned();
        assert_eq!(got("n"), b"42");
        assert_eq!(got("o"), br#"{"a":[1]}"#);
        assert_eq!(got("none"), b"");
    }

    #[test]
    fn redis_keys_are_bounded_distinct_and_stable() {
        let prefix = redis_key_prefix("petstore");
        let key = |scope: &str, raw: &[u8]| redis_key(&prefix, scope, raw);
        // Short printable values stay readable.
        assert_eq!(
            key("route|prod|GET /pets", b"203.0.113.9"),
            b"apigate:rl:petstore:route|prod|GET /pets:203.0.113.9"
        );
        assert_eq!(key("api", b""), b"apigate:rl:petstore:api:");
        let max = [b'k'; READABLE_MAX];
        assert!(key("api", &max).ends_with(&max));
        // Anything else is a fixed-size digest: `#` and 128 bits of SHA-256 in hex. The
        // derivation is fixed (no per-process key), so every gateway agrees.
        assert_eq!(
            key("api", b"\xff"),
            b"apigate:rl:petstore:api:#a8100ae6aa1940d0b663bb31cd466142"
        );
        let long = [b'x'; READABLE_MAX + 1];
        assert_eq!(
            key("api", &long),
            b"apigate:rl:petstore:api:#9537c5fdf120482f7d58d25e9ed583f5"
        );
        let huge = vec![b'a'; 500_000];
        assert_eq!(key("api", &huge).len(), key("api", b"#").len());
        // No readable value can stand for a digest, nor a digest for another value.
        let digest_of_ff = b"#a8100ae6aa1940d0b663bb31cd466142";
        assert_ne!(key("api", digest_of_ff), key("api", b"\xff"));
        assert_ne!(key("api", b"\xff"), key("api", b"\xfe"));
        assert_ne!(key("api", b"a\tb"), key("api", b"a b"));
        assert_ne!(key("api", "\u{e9}".as_bytes()), key("api", b"?"));
        // Names and scopes cannot run into each other.
        assert_ne!(key("x:y", b"z"), key("x", b"y:z"));
        assert_eq!(
            key("route|s|GET /v1/items:batch", b"::1"),
            b"apigate:rl:petstore:route|s|GET /v1/items%3Abatch:::1"
        );
        assert_ne!(
            redis_key(&redis_key_prefix("a:api"), "b", b"c"),
            redis_key(&redis_key_prefix("a"), "api:b", b"c")
        );
        assert_ne!(
            redis_key(&redis_key_prefix("a%3Aapi"), "b", b"c"),
            redis_key(&redis_key_prefix("a:api"), "b", b"c")
        );
        assert_ne!(
            redis_key(&redis_key_prefix("shop"), "api", b"k"),
            redis_key(&redis_key_prefix("blog"), "api", b"k")
        );
    }

    #[test]
    fn key_syntax() {
        assert_eq!(KeySource::parse(SOURCE_IP), Some(KeySource::SourceIp));
        assert_eq!(
            KeySource::parse("$request.header.X-Api-Key"),
            Some(KeySource::Header("X-Api-Key".into()))
        );
        assert_eq!(
            KeySource::parse("$context.authorizer.claims.sub"),
            Some(KeySource::Claim("sub".into()))
        );
        assert_eq!(
            KeySource::parse("$context.authorizer.claims.https://example.com/tenant"),
            Some(KeySource::Claim("https://example.com/tenant".into()))
        );
        for bad in [
            "",
            "$request.header.",
            "$request.header.a b",
            "$context.authorizer.claims.",
            "$context.identity.sourceIP",
            "$request.querystring.k",
            "static",
        ] {
            assert_eq!(KeySource::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn validation() {
        let mut errors = ConfigErrors::default();
        validate(
            "api.json",
            "Policies.RateLimit",
            &conf(10, 60, SOURCE_IP),
            &mut errors,
        );
        validate(
            "api.json",
            "Policies.RateLimit",
            &conf(1, 86_400, "$request.header.x"),
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors}");

        validate(
            "routes/r.json",
            "Policies.RateLimit",
            &conf(0, 0, "$context.identity.sourceIP"),
            &mut errors,
        );
        let fields: Vec<_> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "Policies.RateLimit.Calls",
                "Policies.RateLimit.PeriodSeconds",
                "Policies.RateLimit.Key"
            ]
        );
        assert!(
            errors.0[2]
                .fix
                .contains("did you mean \"$context.identity.sourceIp\""),
            "{}",
            errors.0[2].fix
        );

        let mut errors = ConfigErrors::default();
        validate(
            "a.json",
            "P",
            &conf(1, 86_401, "$request.headers.X-Key"),
            &mut errors,
        );
        assert_eq!(errors.0.len(), 2);
        assert!(
            errors.0[1]
                .fix
                .contains("did you mean \"$request.header.X-Key\""),
            "{}",
            errors.0[1].fix
        );
        let mut errors = ConfigErrors::default();
        validate(
            "a.json",
            "P",
            &conf(1, 1, "$context.authorizer.claim.sub"),
            &mut errors,
        );
        assert!(
            errors.0[0]
                .fix
                .contains("\"$context.authorizer.claims.sub\""),
            "{}",
            errors.0[0].fix
        );
    }

    #[test]
    fn store_from_conf() {
        let store_conf = |kind: &str, url: Option<&str>| RateLimitStoreConf {
            kind: kind.to_string(),
            url: url.map(str::to_string),
        };
        let mut errors = ConfigErrors::default();
        let local = Store::from_conf(None, None, &mut errors);
        assert_eq!(local.map(|s| s.kind()), Some("local"));
        let local = store_conf("local", None);
        let local = Store::from_conf(Some(&local), Some("shop"), &mut errors);
        assert_eq!(local.map(|s| s.kind()), Some("local"));
        // No I/O: nothing listens there, and that is fine until the first call.
        let redis = store_conf("redis", Some("redis://127.0.0.1:1"));
        let store = Store::from_conf(Some(&redis), Some("shop"), &mut errors);
        match store.as_deref() {
            Some(Store::Redis(r)) => assert!(r.key("api", b"k").starts_with(b"apigate:rl:shop:")),
            _ => panic!("not a Redis store"),
        }
        let store = Store::from_conf(Some(&redis), None, &mut errors);
        match store.as_deref() {
            Some(Store::Redis(r)) => assert_eq!(r.key("api", b"k"), b"apigate:rl:$default:api:k"),
            _ => panic!("not a Redis store"),
        }
        let redis = store_conf("redis", Some("redis://:secret@10.0.0.1:6380/2"));
        assert!(Store::from_conf(Some(&redis), None, &mut errors).is_some());
        assert!(errors.is_empty(), "{errors}");

        for (c, field) in [
            (store_conf("Redis", None), "RateLimitStore.Type"),
            (store_conf("memcached", None), "RateLimitStore.Type"),
            (store_conf("redis", None), "RateLimitStore.Url"),
            (store_conf("redis", Some("http://x")), "RateLimitStore.Url"),
            (store_conf("redis", Some("redis://")), "RateLimitStore.Url"),
            (store_conf("local", Some("redis://x")), "RateLimitStore.Url"),
        ] {
            let mut errors = ConfigErrors::default();
            assert!(
                Store::from_conf(Some(&c), None, &mut errors).is_none(),
                "{c:?}"
            );
            assert_eq!(errors.0.len(), 1, "{c:?}");
            assert_eq!(errors.0[0].file, "gateway.json");
            assert_eq!(errors.0[0].field, field, "{c:?}");
        }
        let mut errors = ConfigErrors::default();
        Store::from_conf(Some(&store_conf("Redis", None)), None, &mut errors);
        assert!(errors.0[0].fix.contains("did you mean \"redis\""));
    }

    #[test]
    fn store_futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let store = Store::Local(LocalStore::new(64));
        assert_send(&store.hit("t", b"k", 1, 1));
        assert_send(&store.peek("t", b"k", 1, 1));
        let redis = RedisStore::new("redis://127.0.0.1:1", "a").map(Store::Redis);
        if let Ok(redis) = redis {
            assert_send(&redis.hit("t", b"k", 1, 1));
            assert_send(&redis.peek("t", b"k", 1, 1));
        }
    }

    // --- Redis, against a real redis-server -----------------------------------------

    /// `/usr/bin/redis-server`, else the first `redis-server` on `PATH`.
    fn redis_server() -> Option<std::path::PathBuf> {
        let usual = std::path::PathBuf::from("/usr/bin/redis-server");
        if usual.is_file() {
            return Some(usual);
        }
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join("redis-server"))
            .find(|p| p.is_file())
    }

    /// A redis-server child, killed when dropped.
    struct RedisServer(std::process::Child);

    impl RedisServer {
        fn start(bin: &std::path::Path, port: u16) -> RedisServer {
            let child = std::process::Command::new(bin)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .current_dir(std::env::temp_dir())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("start redis-server");
            RedisServer(child)
        }

        fn signal(&self, sig: &str) {
            let ok = std::process::Command::new("kill")
                .args([format!("-{sig}"), self.0.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill -{sig} failed");
        }

        fn kill(mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// Returns once the server answers PING.
    async fn wait_ready(port: u16) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                let mut buf = [0u8; 7];
                if s.write_all(b"PING\r\n").await.is_ok()
                    && s.read_exact(&mut buf).await.is_ok()
                    && &buf == b"+PONG\r\n"
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on {port} never answered PING"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn redis_store(port: u16) -> Arc<Store> {
        let conf = RateLimitStoreConf {
            kind: "redis".into(),
            url: Some(format!("redis://127.0.0.1:{port}")),
        };
        let mut errors = ConfigErrors::default();
        Store::from_conf(Some(&conf), Some("unit"), &mut errors).expect("valid conf")
    }

    fn redis(store: &Store) -> &RedisStore {
        match store {
            Store::Redis(r) => r,
            Store::Local(_) => panic!("not a Redis store"),
        }
    }

    /// Returns once the store's prober has marked it up (a readiness check).
    async fn wait_up(store: &Store) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !redis(store).is_up() {
            assert!(Instant::now() < deadline, "the store never came back up");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_shared_fail_open_and_recovery() {
        let Some(bin) = redis_server() else {
            eprintln!(
                "SKIPPED redis_shared_fail_open_and_recovery: redis-server is not installed \
                 (apt-get install -y redis-server)"
            );
            return;
        };
        let port = free_port();

        // Redis not up yet: the first call is refused a connection and marks the store
        // down; the calls after it fail open without trying Redis. Each one is counted.
        let early = redis_store(port);
        let d = early.hit("t", b"early", 2, 60).await;
        assert!(d.allowed && d.remaining == 2);
        assert!(!redis(&early).is_up());
        let t = Instant::now();
        for _ in 0..50 {
            let d = early.hit("t", b"early", 2, 60).await;
            assert!(d.allowed && d.remaining == 2);
        }
        assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
        assert_eq!(early.redis_errors(), 51);
        // A peek allows nothing: a full window, not counted as a fail-open.
        let d = early.peek("t", b"early", 2, 60).await;
        assert_eq!(d, Decision::fail_open(2, 60));
        assert_eq!(early.redis_errors(), 51);

        let server = RedisServer::start(&bin, port);
        wait_ready(port).await;
        // The prober finds it.
        wait_up(&early).await;
        assert_eq!(early.hit("t", b"early-after", 2, 60).await.remaining, 1);

        // Two gateways share one limit.
        let a = redis_store(port);
        let b = redis_store(port);
        let mut seen = Vec::new();
        for i in 0..7 {
            let s = if i % 2 == 0 { &a } else { &b };
            let d = s.hit("route|s|GET /x", b"1.2.3.4", 5, 60).await;
            assert!((1..=60).contains(&d.reset_secs), "{d:?}");
            seen.push((d.allowed, d.remaining));
        }
        assert_eq!(
            seen,
            [
                (true, 4),
                (true, 3),
                (true, 2),
                (true, 1),
                (true, 0),
                (false, 0),
                (false, 0)
            ]
        );
        let refused = a.hit("route|s|GET /x", b"1.2.3.4", 5, 60).await;
        assert_eq!(refused.retry_after_secs().map(|s| s >= 1), Some(true));
        // Per-key isolation and window end.
        assert!(b.hit("route|s|GET /x", b"5.6.7.8", 5, 60).await.allowed);
        assert!(a.hit("t", b"short", 1, 1).await.allowed);
        assert!(!b.hit("t", b"short", 1, 1).await.allowed);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(a.hit("t", b"short", 1, 1).await.allowed);
        assert_eq!(a.redis_errors() + b.redis_errors(), 0);

        // Peek: the same state as counting would see, without counting.
        let d = b.peek("route|s|GET /x", b"1.2.3.4", 5, 60).await;
        assert_eq!((d.allowed, d.remaining), (false, 0));
        assert!((1..=60).contains(&d.reset_secs), "{d:?}");
        a.hit("t", b"peeked", 3, 60).await;
        for _ in 0..3 {
            let d = b.peek("t", b"peeked", 3, 60).await;
            assert_eq!((d.allowed, d.remaining), (true, 2));
        }
        assert_eq!(a.hit("t", b"peeked", 3, 60).await.remaining, 1);
        assert_eq!(
            a.peek("t", b"never", 3, 60).await,
            Decision::current(0, 3, 60_000)
        );

        // Client-sized and non-UTF-8 values: short keys, distinct counters.
        let huge = vec![b'v'; 500_000];
        assert_eq!(a.hit("t", &huge, 1, 60).await.remaining, 0);
        assert!(!b.hit("t", &huge, 1, 60).await.allowed);
        assert!(a.hit("t", b"\xff", 1, 60).await.allowed);
        assert!(a.hit("t", b"\xfe", 1, 60).await.allowed);
        assert!(!b.hit("t", b"\xff", 1, 60).await.allowed);
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
            .arg("apigate:rl:unit:*")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(keys.len() >= 8, "{}", keys.len());
        assert!(keys.iter().all(|k| k.len() <= 128), "a long key was stored");
        assert!(keys.contains(&redis(&a).key("t", b"\xff")));
        assert!(keys.contains(&redis(&a).key("t", &huge)));

        // Redis restarts between two calls: the first call on the old connection finds it
        // dropped and is retried at once on a new one: counted, no fail-open.
        server.kill();
        let server = RedisServer::start(&bin, port);
        wait_ready(port).await;
        let d = a.hit("t", b"restarted", 3, 60).await;
        assert_eq!((d.allowed, d.remaining), (true, 2));
        assert_eq!(a.redis_errors(), 0);
        assert!(redis(&a).is_up());

        // Redis dies: one call finds out, quickly; the rest fail open without trying.
        server.kill();
        let t = Instant::now();
        for _ in 0..20 {
            let d = a.hit("route|s|GET /x", b"1.2.3.4", 5, 60).await;
            assert!(d.allowed && d.remaining == 5, "{d:?}");
        }
        assert!(
            t.elapsed() < Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(a.redis_errors(), 20);
        assert!(!redis(&a).is_up());

        // Redis comes back on the same port: the prober marks the store up, counting resumes.
        let server = RedisServer::start(&bin, port);
        wait_ready(port).await;
        wait_up(&a).await;
        let d1 = a.hit("t", b"after", 3, 60).await;
        let d2 = b.hit("t", b"after", 3, 60).await;
        assert_eq!((d1.remaining, d2.remaining), (2, 1));
        assert_eq!(a.redis_errors(), 20);

        // A hung Redis (stopped, connection open, no answers) costs one call the 200 ms
        // timeout; the calls after it fail open at once.
        server.signal("STOP");
        let t = Instant::now();
        let d = a.hit("t", b"hung", 5, 60).await;
        assert!(d.allowed && d.remaining == 5);
        let first = t.elapsed();
        assert!(first < Duration::from_millis(600), "{first:?}");
        let t = Instant::now();
        for _ in 0..100 {
            assert!(a.hit("t", b"hung", 5, 60).await.allowed);
        }
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(a.redis_errors(), 121);
        server.signal("CONT");
        wait_up(&a).await;
        assert_eq!(a.hit("t", b"resumed", 3, 60).await.remaining, 2);
    }
}
