//! AWS stage/route throttling: a token bucket per stage route, `ThrottlingRateLimit`
//! tokens per second into a bucket of `ThrottlingBurstLimit`, starting full.
//!
//! The bucket is implemented as GCRA (generic cell rate algorithm), which is exactly a
//! token bucket but needs a single number of state: the "theoretical arrival time" (TAT)
//! of the next conforming request. That number lives in one `AtomicU64` (nanoseconds
//! since the bucket was made) and is advanced with a compare-and-swap loop, so
//! `try_acquire` never takes a lock and stays correct under contention.
//!
//! With emission interval `T = 1/rate` and burst `B`, a request at `now` is allowed when
//! `max(TAT, now) + T <= now + B*T`, and then `TAT := max(TAT, now) + T`. `TAT <= now`
//! means a full bucket (B tokens); every `T` of elapsed time gives one token back.
//!
//! Edge cases (AWS semantics):
//! - burst 0: every request is refused;
//! - rate 0 with burst N: N requests in total, then refused (no refill);
//! - rate infinite (see [`route_limit`]) with burst > 0, or burst `u64::MAX`: never refuses.
//!
//! Precision: the interval is kept in whole nanoseconds, so rates above 1e9/s behave
//! like 1e9/s (which is unlimited in practice) and the rounding error is below 1 ns per
//! token (relative error < 1e-9 for any rate under 1 000 000/s).

use crate::config::{ConfigError, ConfigErrors, RouteSettingsConf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Token bucket: `rate` tokens per second refill, capacity `burst`. Starts full.
#[derive(Debug)]
pub struct TokenBucket {
    origin: Instant,
    mode: Mode,
    /// `(rate, burst)` as configured: a reload keeps a bucket whose settings did not change.
    settings: (f64, u64),
}

#[derive(Debug)]
enum Mode {
    /// burst 0: nothing ever passes.
    Never,
    /// No effective limit (infinite rate with burst > 0, or an unbounded burst).
    Unlimited,
    /// rate 0: `burst` tokens in total, never refilled. Holds the number used.
    Finite { used: AtomicU64, burst: u64 },
    /// GCRA. `tat` is in ns since `origin`; `interval` = 1/rate in ns; `tolerance` = burst * interval.
    Gcra {
        tat: AtomicU64,
        interval: u64,
        tolerance: u64,
    },
}

/// Clock readings are capped here (2^62 ns, ~146 years) so sums stay far from overflow.
const NS_CAP: u64 = 1 << 62;
/// Intervals longer than this (1e18 ns, ~31 years per token) are treated as rate 0.
const MAX_INTERVAL_NS: f64 = 1e18;

impl TokenBucket {
    /// A full bucket. A NaN or negative `rate_per_sec` is treated as 0 (validation
    /// rejects those; see [`validate`]); `f64::INFINITY` means no rate limit.
    pub fn new(rate_per_sec: f64, burst: u64) -> Self {
        Self::new_at(rate_per_sec, burst, Instant::now())
    }

    /// Like [`TokenBucket::new`], with the bucket's clock starting at `now` (for tests).
    pub fn new_at(rate_per_sec: f64, burst: u64, now: Instant) -> Self {
        let rate = if rate_per_sec.is_nan() || rate_per_sec < 0.0 {
            0.0
        } else {
            rate_per_sec
        };
        let mode = if burst == 0 {
            Mode::Never
        } else if rate.is_infinite() || burst == u64::MAX {
            Mode::Unlimited
        } else if 1e9 / rate > MAX_INTERVAL_NS {
            // Less than one token per ~31 years: no refill in practice.
            Mode::Finite {
                used: AtomicU64::new(0),
                burst,
            }
        } else {
            let interval = (1e9 / rate).round().max(1.0) as u64;
            // Saturates only for bursts beyond ~580 years of refill: unlimited in practice.
            let tolerance = interval.saturating_mul(burst);
            Mode::Gcra {
                tat: AtomicU64::new(0),
                interval,
                tolerance,
            }
        };
        TokenBucket {
            origin: now,
            mode,
            settings: (rate_per_sec, burst),
        }
    }

    /// Whether this bucket was made with these settings (so a reload may keep its state).
    pub fn has_settings(&self, rate_per_sec: f64, burst: u64) -> bool {
        self.settings.0.to_bits() == rate_per_sec.to_bits() && self.settings.1 == burst
    }

    /// Takes one token if available.
    pub fn try_acquire(&self) -> bool {
        match self.mode {
            // Avoid reading the clock when it cannot matter.
            Mode::Never => false,
            Mode::Unlimited => true,
            _ => self.try_acquire_at(Instant::now()),
        }
    }

    /// Takes one token if available, as of `now`. An instant before the bucket's creation
    /// counts as its creation.
    pub fn try_acquire_at(&self, now: Instant) -> bool {
        match &self.mode {
            Mode::Never => false,
            Mode::Unlimited => true,
            Mode::Finite { used, burst } => used
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                    (u < *burst).then_some(u + 1)
                })
                .is_ok(),
            Mode::Gcra {
                tat,
                interval,
                tolerance,
            } => {
                let now = now.saturating_duration_since(self.origin).as_nanos();
                let now = now.min(NS_CAP as u128) as u64;
                let limit = now.saturating_add(*tolerance);
                let mut current = tat.load(Ordering::Relaxed);
                loop {
                    let next = current.max(now).saturating_add(*interval);
                    if next > limit {
                        return false;
                    }
                    match tat.compare_exchange_weak(
                        current,
                        next,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return true,
                        Err(actual) => current = actual,
                    }
                }
            }
        }
    }

    /// Whether this bucket can never refuse a request (the caller may skip it).
    pub fn is_unlimited(&self) -> bool {
        matches!(self.mode, Mode::Unlimited)
    }
}

/// The effective `(rate per second, burst)` of one stage route: `RouteSettings[routeKey]`
/// over `DefaultRouteSettings`, field by field (a route that sets only
/// `ThrottlingBurstLimit` keeps the default's `ThrottlingRateLimit`).
///
/// A dimension that neither level sets takes AWS's account-level default (10,000 requests
/// per second, burst 5,000), as a stage route on AWS does. Both missing: `None`, no
/// throttling.
/// AWS's default account-level throttle (requests per second and burst).
pub const AWS_ACCOUNT_RATE: f64 = 10_000.0;
pub const AWS_ACCOUNT_BURST: u64 = 5_000;

pub fn route_limit(
    default: Option<&RouteSettingsConf>,
    route: Option<&RouteSettingsConf>,
) -> Option<(f64, u64)> {
    let rate = route
        .and_then(|r| r.throttling_rate_limit)
        .or_else(|| default.and_then(|d| d.throttling_rate_limit));
    let burst = route
        .and_then(|r| r.throttling_burst_limit)
        .or_else(|| default.and_then(|d| d.throttling_burst_limit));
    if rate.is_none() && burst.is_none() {
        return None;
    }
    Some((
        rate.unwrap_or(AWS_ACCOUNT_RATE),
        burst.unwrap_or(AWS_ACCOUNT_BURST),
    ))
}

/// Checks one `RouteSettings` object. `field` names it, e.g. `DefaultRouteSettings` or
/// `RouteSettings["GET /pets"]`; errors name `<field>.ThrottlingRateLimit`.
/// `ThrottlingBurstLimit` is a `u64`, so a negative one is already a parse error.
pub fn validate(file: &str, field: &str, conf: &RouteSettingsConf, errors: &mut ConfigErrors) {
    if let Some(rate) = conf.throttling_rate_limit {
        if !rate.is_finite() || rate < 0.0 {
            errors.push(ConfigError::new(
                file,
                format!("{field}.ThrottlingRateLimit"),
                format!("{rate} is not a request rate"),
                "use a finite number of requests per second, 0 or more (e.g. 100 or 0.5)",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn settings(rate: Option<f64>, burst: Option<u64>) -> RouteSettingsConf {
        RouteSettingsConf {
            throttling_burst_limit: burst,
            throttling_rate_limit: rate,
            detailed_metrics_enabled: None,
        }
    }

    fn granted(b: &TokenBucket, at: Instant, n: usize) -> usize {
        (0..n).filter(|_| b.try_acquire_at(at)).count()
    }

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let b = TokenBucket::new_at(10.0, 5, t0);
        assert_eq!(
            granted(&b, t0, 100),
            5,
            "starts full with exactly the burst"
        );
        // 10/s: one token per 100 ms.
        assert!(!b.try_acquire_at(t0 + Duration::from_millis(99)));
        assert!(b.try_acquire_at(t0 + Duration::from_millis(100)));
        assert!(!b.try_acquire_at(t0 + Duration::from_millis(150)));
        // After a long pause the bucket is full again, but never more than the burst.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(granted(&b, later, 100), 5);
    }

    #[test]
    fn fractional_rate() {
        let t0 = Instant::now();
        let b = TokenBucket::new_at(0.5, 1, t0);
        assert!(b.try_acquire_at(t0));
        assert!(!b.try_acquire_at(t0 + Duration::from_millis(1999)));
        assert!(b.try_acquire_at(t0 + Duration::from_secs(2)));
    }

    #[test]
    fn sustained_rate_is_respected() {
        let t0 = Instant::now();
        let b = TokenBucket::new_at(100.0, 10, t0);
        // One attempt every ms for 10 s: 10 (burst) + 100/s * 10 s.
        let n = (0..10_000)
            .filter(|ms| b.try_acquire_at(t0 + Duration::from_millis(*ms)))
            .count();
        assert!((1009..=1011).contains(&n), "{n}");
    }

    #[test]
    fn rate_zero_gives_burst_then_nothing() {
        let t0 = Instant::now();
        let b = TokenBucket::new_at(0.0, 3, t0);
        assert_eq!(granted(&b, t0, 10), 3);
        assert_eq!(granted(&b, t0 + Duration::from_secs(86_400), 10), 0);
    }

    #[test]
    fn burst_zero_refuses_everything() {
        let t0 = Instant::now();
        for rate in [0.0, 1.0, 1e6, f64::INFINITY] {
            let b = TokenBucket::new_at(rate, 0, t0);
            assert_eq!(granted(&b, t0 + Duration::from_secs(10), 10), 0);
            assert!(!b.try_acquire());
        }
    }

    #[test]
    fn unlimited_dimensions() {
        let b = TokenBucket::new(f64::INFINITY, 1);
        assert!(b.is_unlimited());
        assert_eq!(granted(&b, Instant::now(), 1000), 1000);
        let b = TokenBucket::new(1.0, u64::MAX);
        assert!(b.is_unlimited());
        assert!(b.try_acquire());
    }

    #[test]
    fn huge_rate_and_bad_rate_do_not_panic() {
        let t0 = Instant::now();
        let b = TokenBucket::new_at(1e300, 2, t0);
        assert!(b.try_acquire_at(t0));
        let b = TokenBucket::new_at(1e-300, 2, t0);
        assert_eq!(granted(&b, t0 + Duration::from_secs(1_000_000), 5), 2);
        let b = TokenBucket::new_at(f64::NAN, 2, t0);
        assert_eq!(granted(&b, t0, 5), 2, "NaN behaves as rate 0");
        // An instant from before the bucket existed counts as its creation.
        let b = TokenBucket::new_at(1.0, 1, t0 + Duration::from_secs(5));
        assert!(b.try_acquire_at(t0));
        assert!(!b.try_acquire_at(t0));
    }

    #[test]
    fn contention_grants_exactly_the_burst() {
        for (rate, burst) in [(1000.0, 5000u64), (0.0, 5000)] {
            let t0 = Instant::now();
            let b = Arc::new(TokenBucket::new_at(rate, burst, t0));
            let at = t0; // one fixed instant: no refill while the threads race
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let b = b.clone();
                    std::thread::spawn(move || granted(&b, at, 2_000))
                })
                .collect();
            let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
            assert_eq!(total as u64, burst, "rate {rate}");
        }
    }

    #[test]
    fn route_overrides_default_field_by_field() {
        let d = settings(Some(100.0), Some(50));
        assert_eq!(route_limit(Some(&d), None), Some((100.0, 50)));
        let r = settings(Some(5.0), None);
        assert_eq!(route_limit(Some(&d), Some(&r)), Some((5.0, 50)));
        let r = settings(None, Some(0));
        assert_eq!(route_limit(Some(&d), Some(&r)), Some((100.0, 0)));
        assert_eq!(route_limit(None, None), None);
        assert_eq!(
            route_limit(Some(&settings(None, None)), Some(&settings(None, None))),
            None
        );
        assert_eq!(
            route_limit(None, Some(&settings(Some(2.0), None))),
            Some((2.0, AWS_ACCOUNT_BURST))
        );
        assert_eq!(
            route_limit(Some(&settings(None, Some(7))), None),
            Some((AWS_ACCOUNT_RATE, 7))
        );
    }

    #[test]
    fn validation() {
        let mut errors = ConfigErrors::default();
        validate(
            "stages/s.json",
            "DefaultRouteSettings",
            &settings(Some(0.5), Some(1)),
            &mut errors,
        );
        validate(
            "stages/s.json",
            "DefaultRouteSettings",
            &settings(Some(0.0), None),
            &mut errors,
        );
        assert!(errors.is_empty());
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            validate(
                "stages/s.json",
                "RouteSettings[\"GET /x\"]",
                &settings(Some(bad), None),
                &mut errors,
            );
        }
        assert_eq!(errors.0.len(), 3);
        assert_eq!(
            errors.0[0].field,
            "RouteSettings[\"GET /x\"].ThrottlingRateLimit"
        );
        assert_eq!(errors.0[0].file, "stages/s.json");
    }
}
