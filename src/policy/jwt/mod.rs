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
//!
//! The parts: [`identity`] reads the token from a request, `compile` checks an authorizer's
//! configuration, `keys` decodes key sets, `remote` fetches them, `verify` checks a token
//! and `cache` remembers the tokens already verified.

mod cache;
mod compile;
pub mod identity;
mod keys;
mod remote;
mod verify;

#[cfg(test)]
mod tests;

use cache::{make_room, shard_of, Shard, CACHE_CAPACITY, CACHE_SHARDS};
use identity::strip_bearer;
use keys::Keys;
use parking_lot::RwLock;
use std::sync::Arc;
use std::time::Duration;
use verify::now_secs;

/// A verified token's claims, as the issuer wrote them (any JSON shape).
pub type Claims = serde_json::Map<String, serde_json::Value>;

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

pub struct JwtAuthorizer {
    id: String,
    identity: IdentitySource,
    issuer: String,
    audience: Vec<String>,
    skew: u64,
    keys: Keys,
    /// Verified tokens, sharded by [`shard_of`] so that requests rarely share a lock.
    cache: Vec<RwLock<Shard>>,
}

impl std::fmt::Debug for JwtAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtAuthorizer({})", self.id)
    }
}

impl JwtAuthorizer {
    pub fn identity_source(&self) -> &IdentitySource {
        &self.identity
    }

    /// Fetches a remote key set once at start-up (or after a reload); logs on failure.
    /// Requests arriving meanwhile wait for this fetch instead of being refused.
    pub async fn prefetch(&self) {
        if let Keys::Remote(r) = &self.keys {
            if r.set.read().is_none() {
                r.refetch(remote::Wait::Yes, Duration::ZERO).await;
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
                // Boxed: a miss is rare, and the verification (a key fetch, maybe) is a
                // large future every cached request would otherwise carry.
                let verified = Box::pin(self.verify(token, now)).await?;
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
}
