use super::*;
use crate::config::{ConfigErrors, RateLimitStoreConf};

/// A decision as it is reported (shared by the parts' tests).
pub(super) fn decision(allowed: bool, limit: u64, remaining: u64, reset_secs: u64) -> Decision {
    Decision {
        allowed,
        limit,
        remaining,
        reset_secs,
    }
}

#[test]
fn combine_reports_the_tightest_limit() {
    // The audit's case: stage 4/60 s by IP (counted, now at 0 left) and route 3/5 s
    // (refused). Retrying after 5 s would meet the stage limit: report 60.
    let stage = decision(true, 4, 0, 60);
    let route = decision(false, 3, 0, 5);
    assert_eq!(combine(stage, route), decision(false, 4, 0, 60));
    assert_eq!(combine(route, stage), decision(false, 4, 0, 60));
    // Both refused: the longer wait.
    let a = decision(false, 10, 0, 30);
    let b = decision(false, 2, 0, 45);
    assert_eq!(combine(a, b), decision(false, 2, 0, 45));
    assert_eq!(combine(b, a), decision(false, 2, 0, 45));
    // A refusal outranks any allowed limit with calls left.
    let loose = decision(true, 100, 7, 3_600);
    assert_eq!(combine(loose, route), decision(false, 3, 0, 5));
    // Allowed: the fewest calls left, then the later reset.
    let x = decision(true, 10, 3, 20);
    let y = decision(true, 5, 3, 50);
    let z = decision(true, 5, 2, 1);
    assert_eq!(combine(x, y), y);
    assert_eq!(combine(y, x), y);
    assert_eq!(combine(combine(x, y), z), z);
    assert_eq!(combine(x, combine(y, z)), z);
    // A fail-open decision never hides a counted one.
    let open = Decision::fail_open(5, 60);
    assert_eq!(combine(open, x), x);
}

fn header_strings(d: &Decision) -> Vec<(&'static str, String)> {
    d.headers()
        .map(|(k, v)| (k, v.to_str().unwrap_or("?").to_string()))
        .collect()
}

#[test]
fn headers() {
    let d = Decision::counted(2, 5, 30_000);
    assert_eq!(
        header_strings(&d),
        vec![
            ("RateLimit-Limit", "5".to_string()),
            ("RateLimit-Remaining", "3".to_string()),
            ("RateLimit-Reset", "30".to_string()),
        ]
    );
    let d = Decision::counted(6, 5, 1);
    assert_eq!(
        header_strings(&d),
        vec![
            ("RateLimit-Limit", "5".to_string()),
            ("RateLimit-Remaining", "0".to_string()),
            ("RateLimit-Reset", "1".to_string()),
            ("Retry-After", "1".to_string()),
        ]
    );
    let d = decision(false, u64::MAX, 0, 86_400);
    assert_eq!(
        header_strings(&d)[0],
        ("RateLimit-Limit", u64::MAX.to_string())
    );
    assert_eq!(header_strings(&d)[3], ("Retry-After", "86400".to_string()));
    let d = Decision::fail_open(7, 60);
    assert!(d.allowed);
    assert_eq!((d.remaining, d.reset_secs), (7, 60));
    assert_eq!(d.retry_after_secs(), None);
}

#[test]
fn store_from_conf() {
    let store_conf = |kind: &str, url: Option<&str>| RateLimitStoreConf {
        kind: kind.to_string(),
        url: url.map(str::to_string),
    };
    let mut errors = ConfigErrors::default();
    let local = Store::from_conf(None, None, &mut errors);
    assert_eq!(local.map(|s| s.kind()), Some("local"));
    let local = store_conf("local", None);
    let local = Store::from_conf(Some(&local), Some("shop"), &mut errors);
    assert_eq!(local.map(|s| s.kind()), Some("local"));
    // No I/O: nothing listens there, and that is fine until the first call.
    let redis = store_conf("redis", Some("redis://127.0.0.1:1"));
    let store = Store::from_conf(Some(&redis), Some("shop"), &mut errors);
    match store.as_deref() {
        Some(Store::Redis(r)) => assert!(r.key("api", b"k").starts_with(b"apigate:rl:shop:")),
        _ => panic!("not a Redis store"),
    }
    let store = Store::from_conf(Some(&redis), None, &mut errors);
    match store.as_deref() {
        Some(Store::Redis(r)) => assert_eq!(r.key("api", b"k"), b"apigate:rl:$default:api:k"),
        _ => panic!("not a Redis store"),
    }
    let redis = store_conf("redis", Some("redis://:secret@10.0.0.1:6380/2"));
    assert!(Store::from_conf(Some(&redis), None, &mut errors).is_some());
    assert!(errors.is_empty(), "{errors}");

    for (c, field) in [
        (store_conf("Redis", None), "RateLimitStore.Type"),
        (store_conf("memcached", None), "RateLimitStore.Type"),
        (store_conf("redis", None), "RateLimitStore.Url"),
        (store_conf("redis", Some("http://x")), "RateLimitStore.Url"),
        (store_conf("redis", Some("redis://")), "RateLimitStore.Url"),
        (store_conf("local", Some("redis://x")), "RateLimitStore.Url"),
    ] {
        let mut errors = ConfigErrors::default();
        assert!(
            Store::from_conf(Some(&c), None, &mut errors).is_none(),
            "{c:?}"
        );
        assert_eq!(errors.0.len(), 1, "{c:?}");
        assert_eq!(errors.0[0].file, "gateway.json");
        assert_eq!(errors.0[0].field, field, "{c:?}");
    }
    let mut errors = ConfigErrors::default();
    Store::from_conf(Some(&store_conf("Redis", None)), None, &mut errors);
    assert!(errors.0[0].fix.contains("did you mean \"redis\""));
}

#[test]
fn store_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let store = Store::Local(LocalStore::new(64));
    assert_send(&store.hit("t", b"k", 1, 1));
    assert_send(&store.peek("t", b"k", 1, 1));
    let redis = RedisStore::new("redis://127.0.0.1:1", "a").map(Store::Redis);
    if let Ok(redis) = redis {
        assert_send(&redis.hit("t", b"k", 1, 1));
        assert_send(&redis.peek("t", b"k", 1, 1));
    }
}
