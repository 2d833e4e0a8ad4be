//! Key decoding: a JWK Set becomes ready-to-use `DecodingKey`s once, at load or fetch, and
//! a token's header picks its key from them.

use super::remote::Remote;
use crate::config::{ConfigError, ConfigErrors};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
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

pub(super) struct Key {
    kid: Option<String>,
    family: Family,
    /// The JWK's own `alg`, when it names one: the token must use exactly that.
    alg: Option<Algorithm>,
    pub(super) decoding: DecodingKey,
}

/// A decoded JWK Set.
#[derive(Default)]
pub(super) struct KeySet {
    pub(super) keys: Vec<Key>,
}

/// Where an authorizer's keys are: decoded at load, or fetched (and refetched) over HTTP.
pub(super) enum Keys {
    Static(Arc<KeySet>),
    Remote(Arc<Remote>),
}

/// Where a key set comes from decides whether symmetric keys may be in it.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Origin {
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
    pub(super) fn parse(
        json: &serde_json::Value,
        origin: Origin,
    ) -> Result<(KeySet, Vec<String>), String> {
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

    pub(super) fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The key for a token: the one with its `kid` whose type fits the token's algorithm, or
    /// the only fitting key when the token has no `kid`.
    pub(super) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<&Key, &'static str> {
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

/// The keys of a `Jwks` or `JwksFile`: a set with no usable key is a configuration error.
pub(super) fn static_keys(
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
