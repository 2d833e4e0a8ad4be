//! The verified-token cache: a token seen before skips the signature check and only has its
//! time claims re-checked, so repeated tokens cost a lookup, not a verification.

use super::{unauthorized, AuthReject, Claims};
use std::collections::HashMap;
use std::sync::Arc;

/// Verified tokens kept per authorizer.
pub(super) const CACHE_CAPACITY: usize = 10_000;
pub(super) const CACHE_SHARDS: usize = 16;

/// A verified token: what every later request with the same token needs, computed once.
pub(super) struct Verified {
    pub(super) claims: Arc<Claims>,
    /// From `scope` (space separated) and `scp` (list).
    pub(super) scopes: Box<[Box<str>]>,
    pub(super) exp: u64,
    pub(super) nbf: Option<u64>,
}

impl Verified {
    /// The time checks that can change between two requests with the same token.
    pub(super) fn still_valid(&self, now: u64, skew: u64) -> Result<(), AuthReject> {
        if now >= self.exp.saturating_add(skew) {
            return Err(unauthorized(Some("the token has expired")));
        }
        if self.nbf.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
            return Err(unauthorized(Some("the token is not valid yet")));
        }
        Ok(())
    }

    /// AWS: the token must carry at least one of the route's scopes.
    pub(super) fn has_any_scope(&self, required: &[String]) -> bool {
        required.is_empty()
            || required
                .iter()
                .any(|r| self.scopes.iter().any(|s| **s == **r))
    }
}

pub(super) fn shard_of(token: &str) -> usize {
    // The signature's last bytes are as good as a hash, and free.
    let b = token.as_bytes();
    let tail = &b[b.len().saturating_sub(4)..];
    tail.iter()
        .fold(0usize, |a, &x| a.wrapping_mul(31).wrapping_add(x as usize))
        % CACHE_SHARDS
}

/// A full shard first loses expired tokens; if all are live, an arbitrary eighth goes, so a
/// stream of new tokens costs one scan per many inserts rather than one per insert.
pub(super) fn make_room(map: &mut HashMap<String, Verified>, now: u64, skew: u64) {
    map.retain(|_, v| v.exp.saturating_add(skew) > now);
    let cap = CACHE_CAPACITY / CACHE_SHARDS;
    if map.len() >= cap {
        let drop: Vec<String> = map.keys().take(cap / 8 + 1).cloned().collect();
        for k in drop {
            map.remove(&k);
        }
    }
}
