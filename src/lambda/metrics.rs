//! The function host's metrics, in the gateway's one registry: invocations by function and
//! outcome, cold starts, invocation time, instances busy and idle, time spent queued.
//! The `function` label is a configured function name, never a client's value.

use crate::metrics::metrics;
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts};
use std::sync::LazyLock;

/// Invocations run from milliseconds (warm) to the 900 s Lambda maximum.
const BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 900.0,
];

struct Families {
    invocations: IntCounterVec,
    cold_starts: IntCounterVec,
    duration: HistogramVec,
    queue_wait: HistogramVec,
    instances: IntGaugeVec,
}

static FAMILIES: LazyLock<Families> = LazyLock::new(|| {
    let r = metrics().registry();
    let invocations = IntCounterVec::new(
        Opts::new(
            "apigate_lambda_invocations_total",
            "Lambda invocations by function and outcome.",
        ),
        &["function", "outcome"],
    )
    .expect("valid metric");
    let cold_starts = IntCounterVec::new(
        Opts::new(
            "apigate_lambda_cold_starts_total",
            "Instances started for an invocation.",
        ),
        &["function"],
    )
    .expect("valid metric");
    let duration = HistogramVec::new(
        HistogramOpts::new(
            "apigate_lambda_invocation_duration_seconds",
            "Time from handing an event to an instance to its answer (cold starts included).",
        )
        .buckets(BUCKETS.to_vec()),
        &["function"],
    )
    .expect("valid metric");
    let queue_wait = HistogramVec::new(
        HistogramOpts::new(
            "apigate_lambda_queue_wait_seconds",
            "Time an invocation waited for a free instance.",
        )
        .buckets(BUCKETS.to_vec()),
        &["function"],
    )
    .expect("valid metric");
    let instances = IntGaugeVec::new(
        Opts::new("apigate_lambda_instances", "Running instances by state."),
        &["function", "state"],
    )
    .expect("valid metric");
    for c in [
        Box::new(invocations.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(cold_starts.clone()),
        Box::new(duration.clone()),
        Box::new(queue_wait.clone()),
        Box::new(instances.clone()),
    ] {
        if let Err(e) = r.register(c) {
            log::warn!("lambda metrics: {e}");
        }
    }
    Families {
        invocations,
        cold_starts,
        duration,
        queue_wait,
        instances,
    }
});

/// How an invocation ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy)]
pub enum Label {
    Success,
    FunctionError,
    Crash,
    Timeout,
    Throttled,
    StartFailed,
}

impl Label {
    const ALL: [Label; 6] = [
        Label::Success,
        Label::FunctionError,
        Label::Crash,
        Label::Timeout,
        Label::Throttled,
        Label::StartFailed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Label::Success => "success",
            Label::FunctionError => "function_error",
            Label::Crash => "crash",
            Label::Timeout => "timeout",
            Label::Throttled => "throttled",
            Label::StartFailed => "start_failed",
        }
    }
}

/// One function's handles, resolved once.
pub struct FunctionMetrics {
    outcomes: Vec<IntCounter>,
    pub cold_starts: IntCounter,
    pub duration: prometheus::Histogram,
    pub queue_wait: prometheus::Histogram,
    pub busy: prometheus::IntGauge,
    pub idle: prometheus::IntGauge,
}

impl FunctionMetrics {
    pub fn new(function: &str) -> FunctionMetrics {
        let f = &*FAMILIES;
        FunctionMetrics {
            outcomes: Label::ALL
                .iter()
                .map(|l| f.invocations.with_label_values(&[function, l.as_str()]))
                .collect(),
            cold_starts: f.cold_starts.with_label_values(&[function]),
            duration: f.duration.with_label_values(&[function]),
            queue_wait: f.queue_wait.with_label_values(&[function]),
            busy: f.instances.with_label_values(&[function, "busy"]),
            idle: f.instances.with_label_values(&[function, "idle"]),
        }
    }

    pub fn outcome(&self, l: Label) {
        self.outcomes[l as usize].inc();
    }
}

/// Records one of everything (the dashboard test needs every family present).
pub fn record_sample() {
    let m = FunctionMetrics::new("dashboard-sample");
    m.outcome(Label::Success);
    m.cold_starts.inc();
    m.duration.observe(0.001);
    m.queue_wait.observe(0.0);
    m.busy.set(0);
    m.idle.set(1);
}
