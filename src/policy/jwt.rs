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
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
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

impl KeySet {
    /// Decodes every usable key; returns the set and a note per key skipped.
    fn parse(json: &serde_json::Value) -> Result<(KeySet, Vec<String>), String> {
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

    /// The key for a token: by `kid`, or the only key that fits when the token has none.
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&Key> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.family.fits(alg));
                let first = fitting.next()?;
                fitting.next().is_none().then_some(first)
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
    discovery: bool,
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

struct Cached {
    claims: Arc<Claims>,
    exp: u64,
    nbf: Option<u64>,
}

pub struct JwtAuthorizer {
    id: String,
    identity: IdentitySource,
    issuer: Option<String>,
    audience: Vec<String>,
    skew: u64,
    keys: Keys,
    cache: Vec<RwLock<HashMap<String, Cached>>>,
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
                remote(file, id, uri.clone(), false, refresh, min_refetch, errors)
            }
        } else if let Some(iss) = &jwt.issuer {
            let url = format!(
                "{}/.well-known/openid-configuration",
                iss.trim_end_matches('/')
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
                remote(file, id, url, true, refresh, min_refetch, errors)
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
            issuer: jwt.issuer.clone(),
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
        let cached = shard
            .read()
            .get(token)
            .map(|c| (c.claims.clone(), c.exp, c.nbf));
        let claims = match cached {
            Some((claims, exp, nbf)) => {
                if now >= exp.saturating_add(self.skew) {
                    shard.write().remove(token);
                    return Err(unauthorized(Some("the token has expired")));
                }
                if nbf.is_some_and(|nbf| nbf > now.saturating_add(self.skew)) {
                    return Err(unauthorized(Some("the token is not valid yet")));
                }
                claims
            }
            None => {
                let (claims, exp, nbf) = self.verify(token, now).await?;
                let mut map = shard.write();
                if map.len() >= CACHE_CAPACITY / CACHE_SHARDS {
                    // Bounded: drop what has expired, else start the shard over.
                    map.retain(|_, c| c.exp > now);
                    if map.len() >= CACHE_CAPACITY / CACHE_SHARDS {
                        map.clear();
                    }
                }
                map.insert(
                    token.to_string(),
                    Cached {
                        claims: claims.clone(),
                        exp,
                        nbf,
                    },
                );
                claims
            }
        };
        if !required_scopes.is_empty() && !has_any_scope(&claims, required_scopes) {
            return Err(AuthReject::Forbidden);
        }
        Ok(claims)
    }

    /// Full verification: header, key, signature, then AWS's claim checks.
    async fn verify(
        &self,
        token: &str,
        now: u64,
    ) -> Result<(Arc<Claims>, u64, Option<u64>), AuthReject> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            unauthorized(Some(
                "the token is malformed or its algorithm is not allowed",
            ))
        })?;
        let alg = header.alg;
        let kid = header.kid.as_deref();
        let set = self
            .key_set(kid)
            .await
            .ok_or_else(|| unauthorized(Some("no signing keys are available")))?;
        let key = set
            .find(kid, alg)
            .ok_or_else(|| unauthorized(Some("the signing key is unknown")))?;
        if !key.family.fits(alg) || key.alg.is_some_and(|a| a != alg) {
            return Err(unauthorized(Some(
                "the token's algorithm does not fit its key",
            )));
        }
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data =
            jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::InvalidSignature => unauthorized(Some("the signature is invalid")),
                    _ => unauthorized(Some("the token could not be verified")),
                }
            })?;
        let claims = data.claims;
        if let Some(iss) = &self.issuer {
            if claims.get("iss").and_then(|v| v.as_str()) != Some(iss.as_str()) {
                return Err(unauthorized(Some("the issuer is not trusted")));
            }
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
        let num = |name: &str| {
            claims
                .get(name)
                .and_then(|v| v.as_f64())
                .map(|f| f.max(0.0) as u64)
        };
        let exp = num("exp").ok_or_else(|| unauthorized(Some("the token has no expiry")))?;
        if now >= exp.saturating_add(self.skew) {
            return Err(unauthorized(Some("the token has expired")));
        }
        let nbf = num("nbf");
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(self.skew)) {
            return Err(unauthorized(Some("the token is not valid yet")));
        }
        if num("iat").is_some_and(|iat| iat > now.saturating_add(self.skew)) {
            return Err(unauthorized(Some("the token was issued in the future")));
        }
        Ok((Arc::new(claims), exp, nbf))
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
    match KeySet::parse(json) {
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
    discovery: bool,
    refresh: Duration,
    min_refetch: Duration,
    errors: &mut ConfigErrors,
) -> Option<Keys> {
    let client = match reqwest::Client::builder().timeout(FETCH_TIMEOUT).build() {
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

async fn get_json(client: &reqwest::Client, url: &str) -> Result<serde_json::Value, String> {
    let resp = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    resp.json().await.map_err(|e| e.to_string())
}

async fn fetch(remote: &Remote) -> Result<(KeySet, Vec<String>), String> {
    let jwks_url = if remote.discovery {
        let doc = get_json(&remote.client, &remote.url).await?;
        doc.get("jwks_uri")
            .and_then(|u| u.as_str())
            .ok_or("the discovery document has no jwks_uri")?
            .to_string()
    } else {
        remote.url.clone()
    };
    let json = get_json(&remote.client, &jwks_url).await?;
    KeySet::parse(&json)
}

fn strip_bearer(raw: &str) -> &str {
    let raw = raw.trim();
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

/// AWS: the token must carry at least one of the route's scopes (`scope` string or `scp` list).
fn has_any_scope(claims: &Claims, required: &[String]) -> bool {
    let mut have: Vec<&str> = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(serde_json::Value::String(s)) => have.extend(s.split_whitespace()),
            Some(serde_json::Value::Array(a)) => have.extend(a.iter().filter_map(|v| v.as_str())),
            _ => {}
        }
    }
    required.iter().any(|r| have.contains(&r.as_str()))
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
    }
}
