//! JWT authorizers with AWS HTTP API semantics.
//!
//! Keys come from an inline `Jwks`, a `JwksFile`, a `JwksUri`, or OIDC discovery at
//! `Issuer + "/.well-known/openid-configuration"`. Keys are decoded once (at load, or when a
//! remote set is fetched), never per request. A verified token is cached until it expires,
//! so a load test repeating tokens pays for the signature once per token.
//!
//! A remote key set that cannot be fetched at start-up is a logged warning, not an error:
//! every request on its routes is answered 401 until a fetch succeeds (retried at most every
//! `JwksMinRefetchSeconds`, also when a token names an unknown `kid`).

use crate::config::{AuthorizerConf, ConfigError, ConfigErrors};
use crate::mapping::Claims;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A flood of unknown `kid`s must not become a flood of fetches.
const DEFAULT_MIN_REFETCH: Duration = Duration::from_secs(10);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);
/// Verified tokens kept per authorizer.
const CACHE_CAPACITY: usize = 10_000;
const CACHE_SHARDS: usize = 16;

/// Where the token is read from.
#[derive(Debug, Clone, PartialEq)]
pub enum IdentitySource {
    Header(http::HeaderName),
    QueryString(String),
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthReject {
    /// 401, with the `www-authenticate` value.
    Unauthorized { www_authenticate: String },
    /// 403: valid token, none of the route's scopes.
    Forbidden,
}

fn unauthorized(description: Option<&'static str>) -> AuthReject {
    let www_authenticate = match description {
        None => "Bearer".to_string(),
        Some(d) => format!("Bearer error=\"invalid_token\", error_description=\"{d}\""),
    };
    AuthReject::Unauthorized { www_authenticate }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec256,
    Ec384,
    Hmac,
}

impl Family {
    fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Family::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Family::Ec256 => alg == ES256,
            Family::Ec384 => alg == ES384,
            Family::Hmac => matches!(alg, HS256 | HS384 | HS512),
        }
    }
}

struct Key {
    kid: Option<String>,
    family: Family,
    /// The JWK's own `alg`, when it names one: the token must use exactly that.
    alg: Option<Algorithm>,
    decoding: DecodingKey,
}

/// A decoded JWK Set.
#[derive(Default)]
struct KeySet {
    keys: Vec<Key>,
}

/// Where a key set comes from decides whether symmetric keys may be in it.
#[derive(Clone, Copy, PartialEq)]
enum Origin {
    /// `Jwks` or `JwksFile`: the operator's own secrets may be listed.
    Operator,
    /// A URL anyone can read: an `oct` key there would let anyone sign tokens.
    Published,
}

/// RFC 7518 3.2: an HMAC key at least as long as the hash output.
fn min_hmac_len(alg: Option<Algorithm>) -> usize {
    match alg {
        Some(Algorithm::HS384) => 48,
        Some(Algorithm::HS512) => 64,
        _ => 32,
    }
}

impl KeySet {
    /// Decodes every usable key; returns the set and a note per key skipped.
    fn parse(json: &serde_json::Value, origin: Origin) -> Result<(KeySet, Vec<String>), String> {
        let items = json
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or("a JWK Set is an object with a \"keys\" array")?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let jwk: Jwk = match serde_json::from_value(item.clone()) {
                Ok(j) => j,
                Err(e) => {
                    skipped.push(format!("key {i}: {e}"));
                    continue;
                }
            };
            if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
                skipped.push(format!("key {i}: \"use\" is \"enc\""));
                continue;
            }
            let family = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Family::Rsa,
                AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                    Family::Ec256
                }
                AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => {
                    Family::Ec384
                }
                AlgorithmParameters::OctetKey(_) => Family::Hmac,
                _ => {
                    skipped.push(format!("key {i}: unsupported key type or curve"));
                    continue;
                }
            };
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok());
            if let Some(a) = alg {
                if !family.fits(a) {
                    skipped.push(format!("key {i}: alg {a:?} does not fit its key type"));
                    continue;
                }
            }
            if let AlgorithmParameters::OctetKey(p) = &jwk.algorithm {
                if origin == Origin::Published {
                    skipped.push(format!(
                        "key {i}: an \"oct\" (HMAC) key in a published key set would let anyone sign tokens; list it in Jwks or JwksFile instead"
                    ));
                    continue;
                }
                use base64::Engine;
                let len = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p.value.trim_end_matches('='))
                    .map_or(0, |k| k.len());
                if len < min_hmac_len(alg) {
                    skipped.push(format!(
                        "key {i}: the HMAC secret is {len} bytes; {} needs at least {} (RFC 7518)",
                        alg.map_or("HS256".to_string(), |a| format!("{a:?}")),
                        min_hmac_len(alg)
                    ));
                    continue;
                }
            }
            if let Some(kid) = &jwk.common.key_id {
                if keys.iter().any(|k: &Key| k.kid.as_ref() == Some(kid)) {
                    log::warn!("JWK Set: kid {kid:?} appears more than once; a token's algorithm picks among them");
                }
            }
            match DecodingKey::from_jwk(&jwk) {
                Ok(decoding) => keys.push(Key {
                    kid: jwk.common.key_id.clone(),
                    family,
                    alg,
                    decoding,
                }),
                Err(e) => skipped.push(format!("key {i}: {e}")),
            }
        }
        Ok((KeySet { keys }, skipped))
    }

    fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The key for a token: the one with its `kid` whose type fits the token's algorithm, or
    /// the only fitting key when the token has no `kid`.
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<&Key, &'static str> {
        let fits = |k: &&Key| k.family.fits(alg) && k.alg.is_none_or(|a| a == alg);
        match kid {
            Some(kid) => {
                let mut named = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid));
                let first = named.next().ok_or("the signing key is unknown")?;
                std::iter::once(first)
                    .chain(named)
                    .find(fits)
                    .ok_or("the token's algorithm does not fit its key")
            }
            None => {
                let mut fitting = self.keys.iter().filter(fits);
                match (fitting.next(), fitting.next()) {
                    (Some(only), None) => Ok(only),
                    (Some(_), Some(_)) => Err("the token names no kid and several keys fit"),
                    (None, _) => Err("no key fits the token's algorithm"),
                }
            }
        }
    }
}

/// A key set fetched over HTTP(S).
struct Remote {
    /// The authorizer's id, for logs.
    id: String,
    /// `JwksUri`, or the discovery document's URL.
    url: String,
    /// For OIDC discovery, the issuer the document must name.
    discovery: Option<String>,
    refresh: Duration,
    min_refetch: Duration,
    set: RwLock<Option<(Arc<KeySet>, Instant)>>,
    /// Single flight: one fetch at a time; requests that need keys wait for it.
    fetching: tokio::sync::Mutex<()>,
    /// Fetches finished so far: a waiter that sees it move knows a fetch ran while it waited.
    fetches: AtomicU64,
    last_attempt: Mutex<Option<Instant>>,
    client: reqwest::Client,
}

enum Keys {
    Static(Arc<KeySet>),
    Remote(Arc<Remote>),
}

/// A verified token: what every later request with the same token needs, computed once.
struct Verified {
    claims: Arc<Claims>,
    /// From `scope` (space separated) and `scp` (list).
    scopes: Box<[Box<str>]>,
    exp: u64,
    nbf: Option<u64>,
}

impl Verified {
    /// The time checks that can change between two requests with the same token.
    fn still_valid(&self, now: u64, skew: u64) -> Result<(), AuthReject> {
        if now >= self.exp.saturating_add(skew) {
            return Err(unauthorized(Some("the token has expired")));
        }
        if self.nbf.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
            return Err(unauthorized(Some("the token is not valid yet")));
        }
        Ok(())
    }

    /// AWS: the token must carry at least one of the route's scopes.
    fn has_any_scope(&self, required: &[String]) -> bool {
        required.is_empty()
            || required
                .iter()
                .any(|r| self.scopes.iter().any(|s| **s == **r))
    }
}

pub struct JwtAuthorizer {
    id: String,
    identity: IdentitySource,
    issuer: String,
    audience: Vec<String>,
    skew: u64,
    keys: Keys,
    cache: Vec<RwLock<HashMap<String, Verified>>>,
}

impl std::fmt::Debug for JwtAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtAuthorizer({})", self.id)
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl JwtAuthorizer {
    /// Validates an authorizer file; every problem is reported with its field.
    pub fn compile(
        file: &str,
        id: &str,
        conf: &AuthorizerConf,
        conf_dir: &Path,
        errors: &mut ConfigErrors,
    ) -> Option<JwtAuthorizer> {
        let before = errors.0.len();
        if conf.authorizer_type != "JWT" {
            errors.push(ConfigError::new(
                file,
                "AuthorizerType",
                format!("{:?} is not supported", conf.authorizer_type),
                "use \"JWT\"",
            ));
        }
        let identity = match conf.identity_source.as_slice() {
            [one] => {
                if let Some(h) = one.strip_prefix("$request.header.") {
                    http::HeaderName::from_bytes(h.as_bytes())
                        .ok()
                        .map(IdentitySource::Header)
                } else {
                    one.strip_prefix("$request.querystring.")
                        .filter(|q| !q.is_empty())
                        .map(|q| IdentitySource::QueryString(q.to_string()))
                }
            }
            _ => None,
        };
        if identity.is_none() {
            errors.push(ConfigError::new(
                file,
                "IdentitySource",
                format!("{:?} is not one identity source", conf.identity_source),
                "use [\"$request.header.Authorization\"] or [\"$request.querystring.token\"]",
            ));
        }
        let Some(jwt) = &conf.jwt_configuration else {
            errors.push(ConfigError::new(
                file,
                "JwtConfiguration",
                "missing",
                "add {\"Issuer\": \"https://...\", \"Audience\": [\"...\"]}",
            ));
            return None;
        };
        if jwt.audience.is_empty() {
            errors.push(ConfigError::new(
                file,
                "JwtConfiguration.Audience",
                "must list at least one audience",
                "add the client id or API audience your tokens carry",
            ));
        }
        // AWS requires an issuer; without one any issuer's tokens would pass.
        let issuer = jwt.issuer.clone().unwrap_or_else(|| {
            errors.push(ConfigError::new(
                file,
                "JwtConfiguration.Issuer",
                "missing",
                "set the issuer your tokens carry in \"iss\", e.g. \"https://login.example.com/\"",
            ));
            String::new()
        });
        let bounded = |field: &str,
                       value: Option<u64>,
                       range: std::ops::RangeInclusive<u64>,
                       errors: &mut ConfigErrors| {
            if let Some(v) = value.filter(|v| !range.contains(v)) {
                errors.push(ConfigError::new(
                    file,
                    field,
                    format!("{v} is outside {}..={}", range.start(), range.end()),
                    format!("use a value from {} to {}", range.start(), range.end()),
                ));
            }
        };
        bounded(
            "ClockSkewSeconds",
            conf.clock_skew_seconds,
            0..=3600,
            errors,
        );
        bounded(
            "JwksRefreshSeconds",
            conf.jwks_refresh_seconds,
            1..=7 * 86400,
            errors,
        );
        bounded(
            "JwksMinRefetchSeconds",
            conf.jwks_min_refetch_seconds,
            1..=3600,
            errors,
        );
        let sources = [
            conf.jwks.is_some(),
            conf.jwks_file.is_some(),
            conf.jwks_uri.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            errors.push(ConfigError::new(
                file,
                "Jwks",
                "Jwks, JwksFile and JwksUri are alternatives",
                "keep one of them",
            ));
        }
        let refresh = conf
            .jwks_refresh_seconds
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_REFRESH);
        let min_refetch = conf
            .jwks_min_refetch_seconds
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_MIN_REFETCH);
        let keys = if let Some(inline) = &conf.jwks {
            static_keys(file, "Jwks", inline, errors)
        } else if let Some(rel) = &conf.jwks_file {
            let path = conf_dir.join(rel);
            match std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
            {
                Ok(v) => static_keys(file, "JwksFile", &v, errors),
                Err(e) => {
                    errors.push(ConfigError::new(
                        file,
                        "JwksFile",
                        format!("cannot read {}: {e}", path.display()),
                        "give a JWK Set file path relative to the conf dir",
                    ));
                    None
                }
            }
        } else if let Some(uri) = &conf.jwks_uri {
            if !(uri.starts_with("http://") || uri.starts_with("https://")) {
                errors.push(ConfigError::new(
                    file,
                    "JwksUri",
                    format!("{uri:?} is not an http(s) URL"),
                    "use the IdP's JWKS URL",
                ));
                None
            } else {
                remote(file, id, uri.clone(), None, refresh, min_refetch, errors)
            }
        } else if !issuer.is_empty() {
            let url = format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            );
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                errors.push(ConfigError::new(
                    file,
                    "JwtConfiguration.Issuer",
                    "keys would come from OIDC discovery, but the issuer is not an http(s) URL",
                    "set Jwks, JwksFile or JwksUri",
                ));
                None
            } else {
                remote(
                    file,
                    id,
                    url,
                    Some(issuer.clone()),
                    refresh,
                    min_refetch,
                    errors,
                )
            }
        } else {
            errors.push(ConfigError::new(
                file,
                "Jwks",
                "no key source",
                "set Jwks, JwksFile, JwksUri, or an Issuer URL for OIDC discovery",
            ));
            None
        };
        if errors.0.len() != before {
            return None;
        }
        Some(JwtAuthorizer {
            id: id.to_string(),
            identity: identity?,
            issuer,
            audience: jwt.audience.clone(),
            skew: conf.clock_skew_seconds.unwrap_or(0),
            keys: keys?,
            cache: (0..CACHE_SHARDS)
                .map(|_| RwLock::new(HashMap::new()))
                .collect(),
        })
    }

    pub fn identity_source(&self) -> &IdentitySource {
        &self.identity
    }

    /// Fetches a remote key set once at start-up (or after a reload); logs on failure.
    /// Requests arriving meanwhile wait for this fetch instead of being refused.
    pub async fn prefetch(&self) {
        if let Keys::Remote(r) = &self.keys {
            if r.set.read().is_none() {
                r.refetch(Wait::Yes, Duration::ZERO).await;
            }
        }
    }

    /// Checks `token` (the raw identity value) and the route's scopes.
    pub async fn authorize(
        &self,
        token: Option<&str>,
        required_scopes: &[String],
    ) -> Result<Arc<Claims>, AuthReject> {
        let token = token
            .map(strip_bearer)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized(None))?;
        let now = now_secs();
        let shard = &self.cache[shard_of(token)];
        let hit = shard.read().get(token).map(|v| {
            v.still_valid(now, self.skew)
                .map(|()| (v.claims.clone(), v.has_any_scope(required_scopes)))
        });
        let (claims, scoped) = match hit {
            Some(Ok(found)) => found,
            Some(Err(expired)) => {
                shard.write().remove(token);
                return Err(expired);
            }
            None => {
                let verified = self.verify(token, now).await?;
                let found = (
                    verified.claims.clone(),
                    verified.has_any_scope(required_scopes),
                );
                let mut map = shard.write();
                if map.len() >= CACHE_CAPACITY / CACHE_SHARDS {
                    make_room(&mut map, now, self.skew);
                }
                map.insert(token.to_string(), verified);
                found
            }
        };
        if !scoped {
            return Err(AuthReject::Forbidden);
        }
        Ok(claims)
    }

    /// Full verification: header, key, signature, then AWS's claim checks.
    async fn verify(&self, token: &str, now: u64) -> Result<Verified, AuthReject> {
        const MALFORMED: &str = "the token is malformed or its algorithm is not allowed";
        let (message, signature) = token
            .rsplit_once('.')
            .ok_or(unauthorized(Some(MALFORMED)))?;
        let (_, payload) = message
            .split_once('.')
            .ok_or(unauthorized(Some(MALFORMED)))?;
        // `alg: none` and unknown algorithms fail here: they are not `Algorithm`s.
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| unauthorized(Some(MALFORMED)))?;
        let alg = header.alg;
        let kid = header.kid.as_deref();
        let set = self
            .key_set(kid)
            .await
            .ok_or_else(|| unauthorized(Some("no signing keys are available")))?;
        let key = set.find(kid, alg).map_err(|why| unauthorized(Some(why)))?;
        match jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key.decoding, alg) {
            Ok(true) => {}
            Ok(false) => return Err(unauthorized(Some("the signature is invalid"))),
            Err(_) => return Err(unauthorized(Some("the token could not be verified"))),
        }
        // The signature is good: the payload is the issuer's. Parsed as plain JSON so that
        // any claim shape (a list-valued `sub`, say) is accepted as AWS does.
        use base64::Engine;
        let claims: Claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(unauthorized(Some(
                "the token's claims are not a JSON object",
            )))?;
        if claims.get("iss").and_then(|v| v.as_str()) != Some(self.issuer.as_str()) {
            return Err(unauthorized(Some("the issuer is not trusted")));
        }
        let aud_ok = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => self.audience.contains(a),
            Some(serde_json::Value::Array(list)) => list.iter().any(|a| {
                a.as_str()
                    .is_some_and(|a| self.audience.iter().any(|x| x == a))
            }),
            Some(_) => false,
            // AWS: client_id is checked only when there is no aud.
            None => claims
                .get("client_id")
                .and_then(|v| v.as_str())
                .is_some_and(|c| self.audience.iter().any(|x| x == c)),
        };
        if !aud_ok {
            return Err(unauthorized(Some("the audience is not allowed")));
        }
        // A time claim that is present must be a number: an unreadable `nbf` is not "no nbf".
        let time = |name: &str, why: &'static str| match claims.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(|f| Some(f.max(0.0) as u64))
                .ok_or(unauthorized(Some(why))),
        };
        let exp = time("exp", "the token's exp is not a number")?
            .ok_or(unauthorized(Some("the token has no expiry")))?;
        let nbf = time("nbf", "the token's nbf is not a number")?;
        if time("iat", "the token's iat is not a number")?
            .is_some_and(|iat| iat > now.saturating_add(self.skew))
        {
            return Err(unauthorized(Some("the token was issued in the future")));
        }
        let mut scopes: Vec<Box<str>> = Vec::new();
        for name in ["scope", "scp"] {
            match claims.get(name) {
                Some(serde_json::Value::String(s)) => {
                    scopes.extend(s.split_whitespace().map(Into::into))
                }
                Some(serde_json::Value::Array(a)) => {
                    scopes.extend(a.iter().filter_map(|v| v.as_str()).map(Into::into))
                }
                _ => {}
            }
        }
        let verified = Verified {
            claims: Arc::new(claims),
            scopes: scopes.into(),
            exp,
            nbf,
        };
        verified.still_valid(now, self.skew)?;
        Ok(verified)
    }

    /// The key set to verify with. A remote set is fetched when missing or when `kid` is
    /// unknown (the request waits for that fetch, at most one per `JwksMinRefetchSeconds`);
    /// a stale set keeps serving while a background task refreshes it.
    async fn key_set(&self, kid: Option<&str>) -> Option<Arc<KeySet>> {
        let remote = match &self.keys {
            Keys::Static(s) => return Some(s.clone()),
            Keys::Remote(r) => r,
        };
        let current = remote.set.read().clone();
        match current {
            Some((set, _)) if kid.is_some_and(|k| !set.has_kid(k)) => {
                remote.refetch(Wait::Yes, remote.min_refetch).await;
                remote.current().or(Some(set))
            }
            Some((set, fetched)) => {
                if fetched.elapsed() >= remote.refresh {
                    // A failed refresh leaves the set stale: retry no faster than either period.
                    let gap = remote.refresh.min(remote.min_refetch);
                    let remote = remote.clone();
                    tokio::spawn(async move { remote.refetch(Wait::No, gap).await });
                }
                Some(set)
            }
            None => {
                remote.refetch(Wait::Yes, remote.min_refetch).await;
                remote.current()
            }
        }
    }
}

/// Whether a caller waits for a fetch already in flight (and takes its result) or leaves it.
#[derive(Clone, Copy, PartialEq)]
enum Wait {
    Yes,
    No,
}

impl Remote {
    fn current(&self) -> Option<Arc<KeySet>> {
        self.set.read().as_ref().map(|(s, _)| s.clone())
    }

    /// Fetches the set unless one was tried within `min_gap`. Single flight: with `Wait::Yes`
    /// a caller that finds a fetch running waits for it and uses its result rather than
    /// starting another.
    async fn refetch(&self, wait: Wait, min_gap: Duration) {
        let seen = self.fetches.load(Ordering::Acquire);
        let _guard = match wait {
            Wait::Yes => self.fetching.lock().await,
            Wait::No => match self.fetching.try_lock() {
                Ok(g) => g,
                Err(_) => return,
            },
        };
        if self.fetches.load(Ordering::Acquire) != seen {
            return;
        }
        {
            let mut last = self.last_attempt.lock();
            if last.is_some_and(|t| t.elapsed() < min_gap) {
                return;
            }
            *last = Some(Instant::now());
        }
        match fetch(self).await {
            Ok((set, skipped)) => {
                for note in skipped {
                    log::warn!(
                        "authorizer {}: skipped a key from {}: {note}",
                        self.id,
                        self.url
                    );
                }
                log::info!(
                    "authorizer {}: {} key(s) loaded from {}",
                    self.id,
                    set.keys.len(),
                    self.url
                );
                *self.set.write() = Some((Arc::new(set), Instant::now()));
            }
            Err(e) => {
                crate::metrics::metrics().jwks_fetch_failures.inc();
                let keeps = if self.set.read().is_some() {
                    "the previous keys stay in use"
                } else {
                    "requests get 401 until keys arrive"
                };
                log::warn!(
                    "authorizer {}: cannot fetch keys from {}: {e} ({keeps})",
                    self.id,
                    self.url
                );
            }
        }
        self.fetches.fetch_add(1, Ordering::Release);
    }
}

fn static_keys(
    file: &str,
    field: &str,
    json: &serde_json::Value,
    errors: &mut ConfigErrors,
) -> Option<Keys> {
    match KeySet::parse(json, Origin::Operator) {
        Ok((set, skipped)) if !set.keys.is_empty() => {
            for note in skipped {
                log::warn!("{file}: {field}: skipped {note}");
            }
            Some(Keys::Static(Arc::new(set)))
        }
        Ok((_, skipped)) => {
            errors.push(ConfigError::new(
                file,
                field,
                format!("no usable key ({})", skipped.join("; ")),
                "give RSA, EC P-256/P-384 or oct keys",
            ));
            None
        }
        Err(e) => {
            errors.push(ConfigError::new(
                file,
                field,
                e,
                "give a JWK Set: {\"keys\": [{\"kty\": \"RSA\", ...}]}",
            ));
            None
        }
    }
}

fn remote(
    file: &str,
    id: &str,
    url: String,
    discovery: Option<String>,
    refresh: Duration,
    min_refetch: Duration,
    errors: &mut ConfigErrors,
) -> Option<Keys> {
    if url.starts_with("http://") && !is_loopback_url(&url) {
        log::warn!("{file}: keys for authorizer {id} come over plain http ({url}): anyone on the path can replace them; use https");
    }
    let client = match reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            errors.push(ConfigError::new(
                file,
                "JwksUri",
                format!("cannot set up an HTTP client for {url}: {e}"),
                "check the system's TLS set-up, or use Jwks/JwksFile",
            ));
            return None;
        }
    };
    Some(Keys::Remote(Arc::new(Remote {
        id: id.to_string(),
        url,
        discovery,
        refresh,
        min_refetch,
        set: RwLock::new(None),
        fetching: tokio::sync::Mutex::new(()),
        fetches: AtomicU64::new(0),
        last_attempt: Mutex::new(None),
        client,
    })))
}

/// Key sets and discovery documents are small; a larger answer is not one.
const MAX_FETCH_BYTES: usize = 1 << 20;

async fn get_json(client: &reqwest::Client, url: &str) -> Result<serde_json::Value, String> {
    let mut resp = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_FETCH_BYTES {
            return Err(format!("the answer is larger than {MAX_FETCH_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
}

async fn fetch(remote: &Remote) -> Result<(KeySet, Vec<String>), String> {
    let jwks_url = match &remote.discovery {
        Some(issuer) => {
            let doc = get_json(&remote.client, &remote.url).await?;
            // OpenID Connect Discovery 4.3: the document must name the issuer it was fetched for.
            let named = doc.get("issuer").and_then(|i| i.as_str());
            if named != Some(issuer.as_str()) {
                return Err(format!(
                    "the discovery document's issuer {named:?} is not the configured Issuer {issuer:?}"
                ));
            }
            doc.get("jwks_uri")
                .and_then(|u| u.as_str())
                .ok_or("the discovery document has no jwks_uri")?
                .to_string()
        }
        None => remote.url.clone(),
    };
    let json = get_json(&remote.client, &jwks_url).await?;
    let (set, skipped) = KeySet::parse(&json, Origin::Published)?;
    if set.keys.is_empty() {
        // Keep serving with the keys we have rather than refuse every token.
        return Err(format!("no usable key ({})", skipped.join("; ")));
    }
    Ok((set, skipped))
}

fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The token without its optional `Bearer ` scheme; a bare scheme word is no token.
fn strip_bearer(raw: &str) -> &str {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("bearer") {
        return "";
    }
    match raw.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => raw[7..].trim_start(),
        _ => raw,
    }
}

fn shard_of(token: &str) -> usize {
    // The signature's last bytes are as good as a hash, and free.
    let b = token.as_bytes();
    let tail = &b[b.len().saturating_sub(4)..];
    tail.iter()
        .fold(0usize, |a, &x| a.wrapping_mul(31).wrapping_add(x as usize))
        % CACHE_SHARDS
}

/// A full shard first loses expired tokens; if all are live, an arbitrary eighth goes, so a
/// stream of new tokens costs one scan per many inserts rather than one per insert.
fn make_room(map: &mut HashMap<String, Verified>, now: u64, skew: u64) {
    map.retain(|_, v| v.exp.saturating_add(skew) > now);
    let cap = CACHE_CAPACITY / CACHE_SHARDS;
    if map.len() >= cap {
        let drop: Vec<String> = map.keys().take(cap / 8 + 1).cloned().collect();
        for k in drop {
            map.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JwtConf;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"unit-test-secret-0123456789abcdef";

    fn b64(b: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    fn conf(jwks: serde_json::Value) -> AuthorizerConf {
        AuthorizerConf {
            authorizer_type: "JWT".into(),
            identity_source: vec!["$request.header.Authorization".into()],
            jwt_configuration: Some(JwtConf {
                issuer: Some("https://iss".into()),
                audience: vec!["aud1".into()],
            }),
            jwks: Some(jwks),
            clock_skew_seconds: Some(5),
            ..AuthorizerConf::default()
        }
    }

    fn hs_authorizer() -> JwtAuthorizer {
        let jwks = json!({"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": b64(SECRET)}]});
        JwtAuthorizer::compile(
            "authorizers/a.json",
            "a",
            &conf(jwks),
            Path::new("."),
            &mut ConfigErrors::default(),
        )
        .unwrap()
    }

    fn token(claims: serde_json::Value, kid: Option<&str>) -> String {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = kid.map(str::to_string);
        encode(&h, &claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn good() -> serde_json::Value {
        json!({"sub": "alice", "iss": "https://iss", "aud": "aud1", "exp": now_secs() + 300, "scope": "read write"})
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn rejects(a: &JwtAuthorizer, tok: &str) -> String {
        match block(a.authorize(Some(tok), &[])) {
            Err(AuthReject::Unauthorized { www_authenticate }) => www_authenticate,
            other => panic!("expected 401, got {other:?}"),
        }
    }

    #[test]
    fn accepts_valid_tokens_with_or_without_bearer_and_caches_them() {
        let a = hs_authorizer();
        let t = token(good(), Some("k1"));
        let c = block(a.authorize(Some(&format!("Bearer {t}")), &[])).unwrap();
        assert_eq!(c["sub"], "alice");
        assert!(block(a.authorize(Some(&t), &["read".into()])).is_ok());
        assert!(a.cache[shard_of(&t)].read().contains_key(&t));
    }

    #[test]
    fn claim_checks() {
        let a = hs_authorizer();
        let now = now_secs();
        let with = |k: &str, v: serde_json::Value| {
            let mut c = good();
            c[k] = v;
            token(c, Some("k1"))
        };
        assert!(rejects(&a, &with("exp", json!(now - 10))).contains("expired"));
        assert!(
            block(a.authorize(Some(&with("exp", json!(now - 2))), &[])).is_ok(),
            "within skew"
        );
        assert!(rejects(&a, &with("nbf", json!(now + 60))).contains("not valid yet"));
        assert!(rejects(&a, &with("iat", json!(now + 60))).contains("future"));
        assert!(rejects(&a, &with("iss", json!("https://iss/"))).contains("issuer"));
        assert!(rejects(&a, &with("aud", json!("other"))).contains("audience"));
        assert!(block(a.authorize(Some(&with("aud", json!(["x", "aud1"]))), &[])).is_ok());
        let mut c = good();
        c.as_object_mut().unwrap().remove("aud");
        c["client_id"] = json!("aud1");
        assert!(
            block(a.authorize(Some(&token(c.clone(), Some("k1"))), &[])).is_ok(),
            "client_id when no aud"
        );
        c["client_id"] = json!("nope");
        assert!(rejects(&a, &token(c, Some("k1"))).contains("audience"));
        let mut c = good();
        c.as_object_mut().unwrap().remove("exp");
        assert!(rejects(&a, &token(c, Some("k1"))).contains("expiry"));
    }

    #[test]
    fn rejects_forgeries() {
        let a = hs_authorizer();
        let t = token(good(), Some("k1"));
        let tampered = format!("{}AAAA", &t[..t.len() - 4]);
        assert!(rejects(&a, &tampered).contains("signature"));
        assert!(rejects(&a, &token(good(), Some("nope"))).contains("unknown"));
        assert!(rejects(&a, "not.a.jwt").contains("invalid_token"));
        // alg none
        let none = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(good().to_string().as_bytes())
        );
        assert!(rejects(&a, &none).contains("invalid_token"));
        assert_eq!(rejects_missing(&a), "Bearer");
    }

    fn rejects_missing(a: &JwtAuthorizer) -> String {
        match block(a.authorize(None, &[])) {
            Err(AuthReject::Unauthorized { www_authenticate }) => www_authenticate,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hmac_token_against_an_rsa_key_is_rejected() {
        // The classic confusion: sign HS256 with the RSA public key's bytes as the secret.
        let n = b64(&[0xc5; 256]);
        let jwks = json!({"keys": [{"kty": "RSA", "kid": "r1", "n": n, "e": "AQAB"}]});
        let a = JwtAuthorizer::compile(
            "f",
            "a",
            &conf(jwks),
            Path::new("."),
            &mut ConfigErrors::default(),
        )
        .unwrap();
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("r1".into());
        let t = encode(&h, &good(), &EncodingKey::from_secret(n.as_bytes())).unwrap();
        assert!(rejects(&a, &t).contains("algorithm"));
    }

    #[test]
    fn a_kid_shared_by_two_key_types_picks_by_algorithm() {
        use jsonwebtoken::EncodingKey;
        let rsa_pub = std::fs::read_to_string("tests/fixtures/jwt/rsa-a.jwk.json").unwrap();
        let mut rsa_jwk: serde_json::Value = serde_json::from_str(&rsa_pub).unwrap();
        rsa_jwk["kid"] = json!("same");
        let oct = json!({"kty": "oct", "kid": "same", "k": b64(SECRET)});
        for keys in [json!([rsa_jwk.clone(), oct.clone()]), json!([oct, rsa_jwk])] {
            let a = JwtAuthorizer::compile(
                "f",
                "a",
                &conf(json!({ "keys": keys })),
                Path::new("."),
                &mut ConfigErrors::default(),
            )
            .unwrap();
            let hs = token(good(), Some("same"));
            assert!(block(a.authorize(Some(&hs), &[])).is_ok(), "HS256");
            let pem = std::fs::read("tests/fixtures/jwt/rsa-a.pem").unwrap();
            let mut h = Header::new(Algorithm::RS256);
            h.kid = Some("same".into());
            let rs = encode(&h, &good(), &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap();
            assert!(block(a.authorize(Some(&rs), &[])).is_ok(), "RS256");
        }
    }

    #[test]
    fn published_sets_never_yield_hmac_keys_and_short_secrets_are_refused() {
        let oct = json!({"keys": [{"kty": "oct", "kid": "k1", "k": b64(SECRET)}]});
        let (set, skipped) = KeySet::parse(&oct, Origin::Published).unwrap();
        assert!(set.keys.is_empty());
        assert!(skipped[0].contains("anyone"), "{skipped:?}");
        assert_eq!(
            KeySet::parse(&oct, Origin::Operator).unwrap().0.keys.len(),
            1
        );
        let short = json!({"keys": [{"kty": "oct", "k": b64(b"short")}]});
        let (set, skipped) = KeySet::parse(&short, Origin::Operator).unwrap();
        assert!(set.keys.is_empty());
        assert!(skipped[0].contains("at least 32"), "{skipped:?}");
        let hs512 = json!({"keys": [{"kty": "oct", "alg": "HS512", "k": b64(SECRET)}]});
        assert!(KeySet::parse(&hs512, Origin::Operator)
            .unwrap()
            .0
            .keys
            .is_empty());
    }

    #[test]
    fn unreadable_time_claims_are_refused_and_any_claim_shape_is_accepted() {
        let a = hs_authorizer();
        let with = |k: &str, v: serde_json::Value| {
            let mut c = good();
            c[k] = v;
            token(c, Some("k1"))
        };
        let far = (now_secs() + 3600).to_string();
        assert!(rejects(&a, &with("nbf", json!(far))).contains("nbf"));
        assert!(rejects(&a, &with("iat", json!(far))).contains("iat"));
        assert!(rejects(&a, &with("exp", json!(far))).contains("exp"));
        let c = block(a.authorize(Some(&with("sub", json!(["a", "b"]))), &[])).unwrap();
        assert_eq!(c["sub"], json!(["a", "b"]));
        assert!(block(a.authorize(Some(&with("groups", json!({"x": [1]}))), &[])).is_ok());
    }

    #[test]
    fn issuer_is_required_and_intervals_are_bounded() {
        let mut c = conf(json!({"keys": [{"kty": "oct", "k": b64(SECRET)}]}));
        c.jwt_configuration = Some(JwtConf {
            issuer: None,
            audience: vec!["aud1".into()],
        });
        c.jwks_min_refetch_seconds = Some(0);
        c.clock_skew_seconds = Some(86_400);
        let mut errors = ConfigErrors::default();
        assert!(
            JwtAuthorizer::compile("authorizers/a.json", "a", &c, Path::new("."), &mut errors)
                .is_none()
        );
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "JwtConfiguration.Issuer",
                "ClockSkewSeconds",
                "JwksMinRefetchSeconds"
            ]
        );
    }

    #[test]
    fn the_verified_token_cache_stays_bounded() {
        let a = hs_authorizer();
        for i in 0..(CACHE_CAPACITY * 2) {
            let mut c = good();
            c["sub"] = json!(i);
            assert!(block(a.authorize(Some(&token(c, Some("k1"))), &[])).is_ok());
        }
        let total: usize = a.cache.iter().map(|s| s.read().len()).sum();
        assert!(total <= CACHE_CAPACITY, "{total} cached tokens");
    }

    #[test]
    fn scopes_from_scope_or_scp() {
        let a = hs_authorizer();
        let t = token(good(), Some("k1"));
        assert_eq!(
            block(a.authorize(Some(&t), &["admin".into()])).unwrap_err(),
            AuthReject::Forbidden
        );
        let mut c = good();
        c.as_object_mut().unwrap().remove("scope");
        c["scp"] = json!(["admin"]);
        assert!(block(a.authorize(Some(&token(c, Some("k1"))), &["admin".into()])).is_ok());
    }

    #[test]
    fn config_errors_name_fields() {
        let mut errors = ConfigErrors::default();
        let mut c = conf(json!({"keys": []}));
        c.identity_source = vec!["$request.body.x".into()];
        c.jwt_configuration = Some(JwtConf {
            issuer: None,
            audience: vec![],
        });
        assert!(
            JwtAuthorizer::compile("authorizers/a.json", "a", &c, Path::new("."), &mut errors)
                .is_none()
        );
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"IdentitySource"), "{fields:?}");
        assert!(fields.contains(&"JwtConfiguration.Audience"));
        assert!(fields.contains(&"Jwks"));
    }

    #[test]
    fn bearer_prefix() {
        assert_eq!(strip_bearer("Bearer abc"), "abc");
        assert_eq!(strip_bearer("bearer  abc"), "abc");
        assert_eq!(strip_bearer("abc"), "abc");
        assert_eq!(strip_bearer("Bear"), "Bear");
        assert_eq!(strip_bearer("Bearer"), "");
        assert_eq!(strip_bearer(" bearer   "), "");
    }

    #[test]
    fn loopback_urls() {
        assert!(is_loopback_url("http://127.0.0.1:9/jwks"));
        assert!(is_loopback_url("http://[::1]/jwks"));
        assert!(is_loopback_url("http://[::1]:80/jwks"));
        assert!(is_loopback_url("http://localhost:8080"));
        assert!(!is_loopback_url("http://idp.example.com/jwks"));
        assert!(!is_loopback_url("http://10.0.0.1/jwks"));
    }
}
