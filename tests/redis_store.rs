//! The Redis rate-limit store against a real redis-server, through the library's public
//! API: two stores sharing one limit, fail-open while Redis is down, hung or restarting,
//! and recovery. (The same store end to end, behind real gateways: `tests/limits.rs`.)

mod common;

use apigate::config::{ConfigErrors, RateLimitStoreConf};
use apigate::policy::ratelimit::{Decision, RedisStore, Store};
use common::Redis;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    // A port redis-server has shown it can bind; stopped again before the store's first
    // call.
    let mut server = Redis::start();
    let port = server.port;
    server.stop();

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

    server.restart();
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
    // What `Decision::current(0, 3, 60_000)` (private to the crate) builds: a full window.
    let full = Decision {
        allowed: true,
        limit: 3,
        remaining: 3,
        reset_secs: 60,
    };
    assert_eq!(a.peek("t", b"never", 3, 60).await, full);

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
    server.stop();
    server.restart();
    let d = a.hit("t", b"restarted", 3, 60).await;
    assert_eq!((d.allowed, d.remaining), (true, 2));
    assert_eq!(a.redis_errors(), 0);
    assert!(redis(&a).is_up());

    // Redis dies: one call finds out, quickly; the rest fail open without trying.
    server.stop();
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
    server.restart();
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
