use super::*;
use crate::config::{ConfigErrors, RateLimitStoreConf};
use crate::policy::ratelimit::Store;

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
