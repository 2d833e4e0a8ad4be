//! Backend calls of aggregate routes, in the gateway's one registry: a count by aggregate
//! route, backend integration and outcome, and a duration histogram by route and backend.
//! Every label is configuration (a route key template, an integration id) or a fixed word,
//! never a client's value.

use super::Outcome;
use crate::metrics::metrics;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};
use std::sync::LazyLock;
use std::time::Duration;

const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

struct Families {
    calls: IntCounterVec,
    duration: HistogramVec,
}

static FAMILIES: LazyLock<Families> = LazyLock::new(|| {
    let r = metrics().registry();
    let calls = IntCounterVec::new(
        Opts::new(
            "apigate_aggregate_backend_calls_total",
            "Backend calls of aggregate routes by route, backend integration and outcome.",
        ),
        &["route", "backend", "outcome"],
    )
    .expect("valid metric");
    let duration = HistogramVec::new(
        HistogramOpts::new(
            "apigate_aggregate_backend_duration_seconds",
            "Time of one backend call of an aggregate route, until its whole body was read.",
        )
        .buckets(BUCKETS.to_vec()),
        &["route", "backend"],
    )
    .expect("valid metric");
    for c in [
        Box::new(calls.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(duration.clone()),
    ] {
        if let Err(e) = r.register(c) {
            log::warn!("aggregate metrics not registered: {e}");
        }
    }
    Families { calls, duration }
});

/// Records one backend call.
pub fn record(route: &str, backend: &str, outcome: Outcome, took: Duration) {
    let f = &*FAMILIES;
    f.calls
        .with_label_values(&[route, backend, outcome.as_str()])
        .inc();
    if outcome != Outcome::Skipped {
        f.duration
            .with_label_values(&[route, backend])
            .observe(took.as_secs_f64());
    }
}

/// One sample of each family, so that they show in the exposition (dashboard test).
pub fn record_sample() {
    record(
        "GET /sample",
        "sample",
        Outcome::Ok,
        Duration::from_millis(1),
    );
}
