//! The verified-token cache: a token seen before skips the signature check and only has its
//! time claims re-checked, so repeated tokens cost a lookup, not a verification.

use super::{unauthorized, AuthReject, Claims};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// One shard of the cache: tokens as written, keyed by [`TailHasher`].
pub(super) type Shard = std::collections::HashMap<String, Verified, BuildHasherDefault<TailHasher>>;

/// Hashes a token by its last 8 bytes, the end of its signature: SipHash over the whole
/// token (a few hundred bytes) was ~1,300 instructions per request on the policy route
/// (callgrind, `loadtest/instructions.py`), this is a few dozen. Only verified tokens are
/// stored, and their signatures are not a client's to choose, so entries spread evenly;
/// a crafted token can collide with a stored one only to compare unequal with it.
#[derive(Default)]
pub(super) struct TailHasher(u64);

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        let tail = &bytes[bytes.len().saturating_sub(8)..];
        let mut word = [0u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        self.0 ^= u64::from_le_bytes(word);
    }

    fn write_u8(&mut self, _: u8) {
        // `str`'s terminator: the same for every key.
    }

    fn finish(&self) -> u64 {
        // splitmix64's finaliser: every bit of the tail reaches the bits the table uses.
        let mut x = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }
}

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
pub(super) fn make_room(map: &mut Shard, now: u64, skew: u64) {
    map.retain(|_, v| v.exp.saturating_add(skew) > now);
    let cap = CACHE_CAPACITY / CACHE_SHARDS;
    if map.len() >= cap {
        let drop: Vec<String> = map.keys().take(cap / 8 + 1).cloned().collect();
        for k in drop {
            map.remove(&k);
        }
    }
}
