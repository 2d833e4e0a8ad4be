//! [`LocalStore`]: the windows of one gateway process, sharded and bounded in memory.

use super::Decision;
use parking_lot::Mutex;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::time::Instant;

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

    /// See [`Store::hit`](super::Store::hit).
    pub fn hit(&self, scope: &str, key: &[u8], limit: u64, period_secs: u64) -> Decision {
        self.hit_at(scope, key, limit, period_secs, Instant::now())
    }

    /// See [`Store::peek`](super::Store::peek).
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

#[cfg(test)]
mod tests;
