//! [`RedisStore`]: counters in Redis shared by every gateway pointing at it (scripts,
//! one shared connection, fail-open and the prober that notices Redis is back), and how a
//! counter is named there.

use super::{Decision, REDIS_KEY_PREFIX};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

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
// Store
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

    /// See [`Store::hit`](super::Store::hit).
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

    /// See [`Store::peek`](super::Store::peek). Not a fail-open when it fails (nothing is
    /// allowed by it), so not counted as one; it does mark the store down like any failed
    /// call.
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
mod tests;
