//! Cost of the in-process limiters per request when gateway threads hit them at once: the
//! stage/route token bucket (one atomic) and the rate-limit-by-key store (64 locked shards).
//!
//! Each sample runs `threads` OS threads that start together and each make `iters` calls; the
//! time reported is wall time / `iters`, i.e. what one call costs a thread while the others
//! are calling too. On an uncontended structure it stays flat as threads are added (up to the
//! core count); contention shows as growth. "one key" is the worst case (every thread on the
//! same counter, e.g. a rate limit keyed by a header every client sends alike); "many keys" is
//! the usual one (per-client keys spread over the shards).

use apigate::policy::ratelimit::LocalStore;
use apigate::policy::throttle::TokenBucket;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Runs `call(thread, i)` `iters` times on each of `threads` threads started together.
fn contended(threads: usize, iters: u64, call: &(dyn Fn(usize, u64) + Sync)) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for t in 0..threads {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for i in 0..iters {
                    call(t, i);
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

fn limiters(c: &mut Criterion) {
    let mut g = c.benchmark_group("limiter");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    g.sample_size(20);

    for threads in [1usize, 2, 4] {
        // Never empties: every call takes the compare-and-swap path, none short-circuits.
        let bucket = TokenBucket::new(1e12, u64::MAX / 2);
        g.bench_with_input(
            BenchmarkId::new("token_bucket", threads),
            &threads,
            |b, &n| {
                b.iter_custom(|iters| {
                    contended(n, iters, &|_, _| {
                        black_box(bucket.try_acquire());
                    })
                })
            },
        );

        let store = LocalStore::new(100_000);
        g.bench_with_input(
            BenchmarkId::new("ratelimit_one_key", threads),
            &threads,
            |b, &n| {
                b.iter_custom(|iters| {
                    contended(n, iters, &|_, _| {
                        black_box(store.hit("route|$default|GET /x", b"shared", u64::MAX, 60));
                    })
                })
            },
        );

        let store = LocalStore::new(100_000);
        let keys: Vec<Vec<u8>> = (0..10_000)
            .map(|i| format!("10.0.{}.{}", i / 256, i % 256).into_bytes())
            .collect();
        g.bench_with_input(
            BenchmarkId::new("ratelimit_many_keys", threads),
            &threads,
            |b, &n| {
                b.iter_custom(|iters| {
                    contended(n, iters, &|t, i| {
                        let k = &keys[(i as usize * 7 + t * 1_237) % keys.len()];
                        black_box(store.hit("route|$default|GET /x", k, u64::MAX, 60));
                    })
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, limiters);
criterion_main!(benches);
