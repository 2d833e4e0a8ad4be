//! Token verification: signature first, then AWS's claim checks (issuer, audience, times),
//! producing the [`Verified`] entry the cache keeps.

use super::cache::Verified;
use super::{unauthorized, AuthReject, Claims, JwtAuthorizer};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl JwtAuthorizer {
    /// Full verification: header, key, signature, then AWS's claim checks.
    pub(super) async fn verify(&self, token: &str, now: u64) -> Result<Verified, AuthReject> {
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
}
