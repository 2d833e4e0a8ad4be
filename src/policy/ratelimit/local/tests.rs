use super::*;
use crate::policy::ratelimit::tests::decision;
use crate::policy::ratelimit::DEFAULT_LOCAL_CAPACITY;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn window_counts_then_resets() {
    let s = LocalStore::new(1000);
    let t0 = Instant::now();
    for i in 1..=3 {
        let d = s.hit_at("t", b"k", 3, 10, t0);
        assert!(d.allowed);
        assert_eq!(d.remaining, 3 - i);
        assert_eq!(d.reset_secs, 10);
    }
    let d = s.hit_at("t", b"k", 3, 10, t0 + Duration::from_millis(9_100));
    assert!(!d.allowed);
    assert_eq!((d.remaining, d.reset_secs), (0, 1));
    assert_eq!(d.retry_after_secs(), Some(1));
    // The window ends 10 s after its first call.
    let d = s.hit_at("t", b"k", 3, 10, t0 + Duration::from_secs(10));
    assert!(d.allowed);
    assert_eq!((d.remaining, d.reset_secs), (2, 10));
}

#[test]
fn keys_are_isolated() {
    let s = LocalStore::new(1000);
    let t0 = Instant::now();
    assert!(s.hit_at("t", b"a", 1, 60, t0).allowed);
    assert!(!s.hit_at("t", b"a", 1, 60, t0).allowed);
    assert!(s.hit_at("t", b"b", 1, 60, t0).allowed);
    assert!(s.hit_at("route|s|GET /x", b"1.2.3.4", 1, 60, t0).allowed);
    assert!(s.hit_at("route|s|GET /y", b"1.2.3.4", 1, 60, t0).allowed);
    // Raw bytes: values that are not UTF-8 are not merged by a lossy conversion.
    assert!(s.hit_at("t", b"\xff", 1, 60, t0).allowed);
    assert!(s.hit_at("t", b"\xfe", 1, 60, t0).allowed);
    assert!(s.hit_at("t", "\u{fffd}".as_bytes(), 1, 60, t0).allowed);
    // Where scope ends and value begins matters.
    assert!(s.hit_at("x|y", b"z", 1, 60, t0).allowed);
    assert!(s.hit_at("x", b"y|z", 1, 60, t0).allowed);
}

#[test]
fn memory_stays_bounded() {
    let s = LocalStore::new(10_000);
    assert!(s.capacity() <= 10_000);
    let t0 = Instant::now();
    // A limited client keeps calling while a flood of one-off keys arrives.
    for i in 0..1_000_000u64 {
        s.hit_at("t", format!("flood-{i}").as_bytes(), 5, 60, t0);
        if i % 1000 == 0 {
            s.hit_at("t", b"victim", 5, 60, t0);
        }
    }
    assert!(s.len() <= 10_000, "{}", s.len());
    assert!(s.len() >= 8_000, "{}", s.len());
    assert!(!s.hit_at("t", b"victim", 5, 60, t0).allowed);
    // Expired windows are swept before anything live is evicted.
    let later = t0 + Duration::from_secs(61);
    for i in 0..5_000u64 {
        s.hit_at("t", format!("new-{i}").as_bytes(), 5, 60, later);
    }
    assert!(s.len() <= 10_000);
}

/// The audit's attack: flood keys hit twice each used to rank with a limited client
/// (both "more than one call") and, ending later, outlive it: the client's counter was
/// evicted and it could call again.
#[test]
fn a_flood_of_repeated_keys_does_not_free_a_limited_client() {
    let s = LocalStore::new(DEFAULT_LOCAL_CAPACITY);
    let t0 = Instant::now();
    for _ in 0..5 {
        assert!(s.hit_at("t", b"victim", 5, 60, t0).allowed);
    }
    // A client close to its limit, not at it: evicted only after lighter windows.
    for _ in 0..4 {
        s.hit_at("t", b"busy", 5, 60, t0);
    }
    let t1 = t0 + Duration::from_secs(1);
    for i in 0..(DEFAULT_LOCAL_CAPACITY as u64 * 3 / 2) {
        let key = format!("flood-{i}");
        s.hit_at("t", key.as_bytes(), 5, 60, t1);
        s.hit_at("t", key.as_bytes(), 5, 60, t1);
    }
    assert!(s.len() <= s.capacity());
    let d = s.hit_at("t", b"victim", 5, 60, t1);
    assert!(!d.allowed, "the limited client was evicted: {d:?}");
    assert_eq!(d.reset_secs, 59);
    assert_eq!(s.hit_at("t", b"busy", 5, 60, t1).remaining, 0);
}

#[test]
fn eviction_order_and_batch_size() {
    let now_ms = 10_000;
    let window = |count, limit, ends_ms| Window {
        count,
        limit,
        ends_ms,
    };
    let mut shard = Shard::default();
    // 800 full: 10 expired, 100 at their limit, 690 live with counts 1..=690.
    for k in 0..10u64 {
        shard.windows.insert(k, window(1, 5, now_ms));
    }
    for k in 10..110u64 {
        shard.windows.insert(k, window(5, 5, now_ms + k));
    }
    for k in 110..800u64 {
        shard.windows.insert(k, window(k - 109, 1_000, now_ms + 1));
    }
    shard.make_room(now_ms, 800);
    // An eighth freed at once, so the next 99 inserts cost no pass.
    assert_eq!(shard.windows.len(), 700);
    assert!(
        (0..10).all(|k| !shard.windows.contains_key(&k)),
        "expired stay"
    );
    assert!(
        (10..110).all(|k| shard.windows.contains_key(&k)),
        "limited go"
    );
    // The 90 lightest live windows went.
    assert!((110..200).all(|k| !shard.windows.contains_key(&k)));
    assert!((200..800).all(|k| shard.windows.contains_key(&k)));

    // Only limited windows left: they go too, soonest ending first.
    let mut shard = Shard::default();
    for k in 0..16u64 {
        shard.windows.insert(k, window(5, 5, now_ms + 100 - k));
    }
    shard.make_room(now_ms, 16);
    assert_eq!(shard.windows.len(), 14);
    assert!(!shard.windows.contains_key(&15) && !shard.windows.contains_key(&14));

    // Many expired: all of them go, whatever the batch size.
    let mut shard = Shard::default();
    for k in 0..16u64 {
        shard.windows.insert(k, window(1, 5, now_ms - 1));
    }
    shard.make_room(now_ms, 16);
    assert!(shard.windows.is_empty());
}

#[test]
fn tiny_capacity_and_odd_arguments() {
    let s = LocalStore::new(0);
    assert_eq!(s.capacity(), 64);
    for i in 0..1000 {
        assert!(s.hit("t", format!("k{i}").as_bytes(), 1, 1).allowed);
    }
    assert!(s.len() <= 64);
    let d = s.hit("t", b"zero", 0, 0);
    assert!(!d.allowed);
    assert_eq!(d.reset_secs, 1);
    assert!(s.hit("t", b"long", 1, u64::MAX).allowed);
    assert!(s.hit("", b"", 1, 1).allowed);
}

#[test]
fn concurrent_hits_count_exactly() {
    let s = Arc::new(LocalStore::new(1000));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                (0..1000)
                    .filter(|_| s.hit_at("t", b"shared", 500, 60, t0).allowed)
                    .count()
            })
        })
        .collect();
    let allowed: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(allowed, 500);
}

#[test]
fn peek_reads_without_counting() {
    let s = LocalStore::new(1000);
    let t0 = Instant::now();
    // No window yet: a full one.
    assert_eq!(s.peek_at("t", b"k", 3, 10, t0), decision(true, 3, 3, 10));
    s.hit_at("t", b"k", 3, 10, t0);
    s.hit_at("t", b"k", 3, 10, t0);
    let later = t0 + Duration::from_millis(2_500);
    for _ in 0..5 {
        assert_eq!(s.peek_at("t", b"k", 3, 10, later), decision(true, 3, 1, 8));
    }
    assert_eq!(s.hit_at("t", b"k", 3, 10, later), decision(true, 3, 0, 8));
    // At the limit: one more call would be refused.
    let d = s.peek_at("t", b"k", 3, 10, later);
    assert_eq!(d, decision(false, 3, 0, 8));
    assert_eq!(d.retry_after_secs(), Some(8));
    assert!(!s.hit_at("t", b"k", 3, 10, later).allowed);
    // Ended: a full window again; other keys and scopes are their own.
    let ended = t0 + Duration::from_secs(10);
    assert_eq!(s.peek_at("t", b"k", 3, 10, ended), decision(true, 3, 3, 10));
    assert_eq!(s.peek_at("u", b"k", 3, 10, later), decision(true, 3, 3, 10));
    assert_eq!(s.peek_at("t", b"j", 3, 10, later), decision(true, 3, 3, 10));
    assert_eq!(s.len(), 1, "peek made a window");
}
