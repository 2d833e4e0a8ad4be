//! Prometheus metrics: one registry per process, label handles resolved at config load so a
//! request records without hashing label strings. Labels never carry raw paths or other
//! client-controlled values: stage names, route key templates, a fixed method set, status
//! codes and fixed reasons only.

use crate::rejection::Reason;
use async_trait::async_trait;
use http::Method;
use parking_lot::RwLock;
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};
use std::sync::LazyLock;
use std::time::Duration;

/// Buckets from 100 µs: a gateway on loopback answers in well under a millisecond.
const BUCKETS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// The gateway's own share of a proxied request is tens of microseconds on loopback.
const OVERHEAD_BUCKETS: [f64; 14] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 1.0,
];

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    integration: HistogramVec,
    overhead: HistogramVec,
    request_bytes: IntCounterVec,
    response_bytes: IntCounterVec,
    /// `apigate_upstream_connections_total{result="new"}` and `{result="reused"}`,
    /// resolved once: a label lookup per request hashed the label (~130 instructions).
    upstream_new: IntCounter,
    upstream_reused: IntCounter,
    pub upstream_connect_failures: IntCounter,
    rejections: Vec<IntCounter>,
    pub in_flight: IntGauge,
    /// Client connections open (`listener`; `MaxConnections` caps them).
    pub client_connections: IntGauge,
    reloads: IntCounterVec,
    last_reload: Gauge,
    pub jwks_fetch_failures: IntCounter,
    pub ratelimit_store_errors: IntCounter,
    pub access_log_dropped: IntCounter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("valid metric");
    registry
        .register(Box::new(h.clone()))
        .expect("unique metric");
    h
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let rejections_vec = counter_vec(
            &r,
            "apigate_rejections_total",
            "Requests the gateway answered itself or failed, by reason.",
            &["reason"],
        );
        let rejections = Reason::ALL
            .iter()
            .map(|x| rejections_vec.with_label_values(&[x.as_str()]))
            .collect();
        let upstream_connections = counter_vec(
            &r,
            "apigate_upstream_connections_total",
            "Upstream connections used, new or reused from the keepalive pool.",
            &["result"],
        );
        let upstream_new = upstream_connections.with_label_values(&["new"]);
        let upstream_reused = upstream_connections.with_label_values(&["reused"]);
        let reloads = counter_vec(
            &r,
            "apigate_config_reloads_total",
            "Configuration reloads by outcome.",
            &["result"],
        );
        for result in ["success", "failure"] {
            reloads.with_label_values(&[result]);
        }
        let in_flight = IntGauge::new("apigate_requests_in_flight", "Requests being processed.")
            .expect("valid metric");
        r.register(Box::new(in_flight.clone()))
            .expect("unique metric");
        let client_connections = IntGauge::new(
            "apigate_client_connections",
            "Client connections open (MaxConnections caps them).",
        )
        .expect("valid metric");
        r.register(Box::new(client_connections.clone()))
            .expect("unique metric");
        let last_reload = Gauge::new(
            "apigate_config_last_reload_success_timestamp_seconds",
            "When the running configuration was loaded.",
        )
        .expect("valid metric");
        r.register(Box::new(last_reload.clone()))
            .expect("unique metric");
        Metrics {
            requests: counter_vec(
                &r,
                "apigate_requests_total",
                "Requests by API (its Name, `-` without one), stage, route key template, method and status.",
                &["api", "stage", "route", "method", "status"],
            ),
            duration: histogram_vec(
                &r,
                "apigate_request_duration_seconds",
                "Time from request to the end of the response, in the gateway.",
                &["api", "stage", "route"],
                &BUCKETS,
            ),
            integration: histogram_vec(
                &r,
                "apigate_integration_duration_seconds",
                "Time from sending to the backend until its response headers arrived.",
                &["api", "stage", "route"],
                &BUCKETS,
            ),
            overhead: histogram_vec(
                &r,
                "apigate_gateway_overhead_seconds",
                "For requests answered by a backend: the request's time minus the wait for the backend's response headers (policies, routing, forwarding, and streaming the body).",
                &["api", "stage", "route"],
                &OVERHEAD_BUCKETS,
            ),
            request_bytes: counter_vec(
                &r,
                "apigate_request_bytes_total",
                "Request body bytes received from clients.",
                &["api", "stage", "route"],
            ),
            response_bytes: counter_vec(
                &r,
                "apigate_response_bytes_total",
                "Response body bytes sent to clients.",
                &["api", "stage", "route"],
            ),
            upstream_new,
            upstream_reused,
            upstream_connect_failures: counter(
                &r,
                "apigate_upstream_connect_failures_total",
                "Failed attempts to connect to a backend.",
            ),
            rejections,
            in_flight,
            client_connections,
            reloads,
            last_reload,
            jwks_fetch_failures: counter(
                &r,
                "apigate_jwks_fetch_failures_total",
                "Failed fetches of remote JWK sets.",
            ),
            ratelimit_store_errors: counter(
                &r,
                "apigate_ratelimit_store_errors_total",
                "Rate-limit store (Redis) failures; those calls were allowed (fail open).",
            ),
            access_log_dropped: counter(
                &r,
                "apigate_access_log_dropped_total",
                "Access log lines dropped because the writer fell behind.",
            ),
            registry: r,
        }
    }

    /// Handles for one stage route of API `api`, made at config load.
    pub fn route(&self, api: &str, stage: &str, route: &str) -> RouteMetrics {
        let labels = [api, stage, route];
        RouteMetrics {
            api: api.to_string(),
            stage: stage.to_string(),
            route: route.to_string(),
            duration: self.duration.with_label_values(&labels),
            integration: self.integration.with_label_values(&labels),
            overhead: self.overhead.with_label_values(&labels),
            request_bytes: self.request_bytes.with_label_values(&labels),
            response_bytes: self.response_bytes.with_label_values(&labels),
            by_status: RwLock::new(Vec::new()),
        }
    }

    pub fn rejection(&self, reason: Reason) {
        if let Some(c) = self.rejections.get(reason as usize) {
            c.inc();
        }
    }

    pub fn upstream_connection(&self, reused: bool) {
        if reused {
            self.upstream_reused.inc();
        } else {
            self.upstream_new.inc();
        }
    }

    pub fn reload(&self, ok: bool) {
        self.reloads
            .with_label_values(&[if ok { "success" } else { "failure" }])
            .inc();
        if ok {
            self.mark_loaded();
        }
    }

    pub fn mark_loaded(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.last_reload.set(now);
    }

    /// The one registry, for families owned by other modules (`lambda::metrics`).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            log::warn!("metrics encoding failed: {e}");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Method label from a fixed set (clients choose methods).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Metric handles of one stage route.
pub struct RouteMetrics {
    api: String,
    stage: String,
    route: String,
    duration: Histogram,
    integration: Histogram,
    overhead: Histogram,
    request_bytes: IntCounter,
    response_bytes: IntCounter,
    /// Counters by (method, status), filled on first use; a steady load only reads.
    by_status: RwLock<Vec<(&'static str, u16, IntCounter)>>,
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RouteMetrics({} {})", self.stage, self.route)
    }
}

impl RouteMetrics {
    pub fn observe(
        &self,
        method: &Method,
        status: u16,
        took: Duration,
        integration: Option<Duration>,
        req_bytes: u64,
        resp_bytes: u64,
    ) {
        let m = method_label(method);
        // Counted under the read lock: no handle clone (two atomic operations) per request.
        let counted = self
            .by_status
            .read()
            .iter()
            .find(|(km, ks, _)| *km == m && *ks == status)
            .map(|(_, _, c)| c.inc())
            .is_some();
        if !counted {
            let c = metrics().requests.with_label_values(&[
                self.api.as_str(),
                self.stage.as_str(),
                self.route.as_str(),
                m,
                status_label(status),
            ]);
            c.inc();
            self.by_status.write().push((m, status, c));
        }
        self.duration.observe(took.as_secs_f64());
        if let Some(i) = integration {
            self.integration.observe(i.as_secs_f64());
            self.overhead.observe(took.saturating_sub(i).as_secs_f64());
        }
        if req_bytes > 0 {
            self.request_bytes.inc_by(req_bytes);
        }
        if resp_bytes > 0 {
            self.response_bytes.inc_by(resp_bytes);
        }
    }
}

/// Status codes as static strings (no allocation per request).
fn status_label(status: u16) -> &'static str {
    static LABELS: LazyLock<Vec<String>> =
        LazyLock::new(|| (0..600).map(|s| s.to_string()).collect());
    LABELS
        .get(status as usize)
        .map(String::as_str)
        .unwrap_or("other")
}

/// Requests that matched no route share these handles (stage "-" when no stage matched).
pub fn unmatched(api: &str, stage: &str) -> &'static RouteMetrics {
    static NO_STAGE: LazyLock<RouteMetrics> = LazyLock::new(|| metrics().route("-", "-", "-"));
    /// (api, stage, handles)
    type Entry = (String, String, &'static RouteMetrics);
    static CACHE: LazyLock<RwLock<Vec<Entry>>> = LazyLock::new(|| RwLock::new(Vec::new()));
    if api == "-" && stage == "-" {
        return &NO_STAGE;
    }
    let found = CACHE
        .read()
        .iter()
        .find(|(a, s, _)| a == api && s == stage)
        .map(|(_, _, m)| *m);
    if let Some(m) = found {
        return m;
    }
    // API and stage names come from the configuration, so this stays small.
    let m: &'static RouteMetrics = Box::leak(Box::new(metrics().route(api, stage, "-")));
    CACHE.write().push((api.to_string(), stage.to_string(), m));
    m
}

/// Serves `/metrics` on the `--metrics` address.
pub struct MetricsApp;

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let (status, ctype, body) = if session.req_header().uri.path() == "/metrics" {
            (
                200,
                "text/plain; version=0.0.4",
                metrics().render().into_bytes(),
            )
        } else {
            (
                404,
                "application/json",
                br#"{"message":"Not Found"}"#.to_vec(),
            )
        };
        http::Response::builder()
            .status(status)
            .header("content-type", ctype)
            .header("content-length", body.len())
            .body(body)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_by_template_with_sub_millisecond_buckets() {
        let m = metrics().route("-", "unit", "GET /pets/{id}");
        m.observe(
            &Method::GET,
            200,
            Duration::from_micros(300),
            Some(Duration::from_micros(120)),
            0,
            42,
        );
        m.observe(
            &Method::from_bytes(b"BREW").unwrap(),
            404,
            Duration::from_millis(2),
            None,
            5,
            0,
        );
        metrics().rejection(Reason::Throttled);
        let text = metrics().render();
        assert!(text.contains(r#"apigate_requests_total{api="-",method="GET",route="GET /pets/{id}",stage="unit",status="200"} 1"#), "{text}");
        assert!(text.contains(r#"method="OTHER""#));
        assert!(text.contains(r#"apigate_request_duration_seconds_bucket{api="-",route="GET /pets/{id}",stage="unit",le="0.0005"} 1"#), "{text}");
        assert!(text.contains(r#"apigate_integration_duration_seconds_bucket{api="-",route="GET /pets/{id}",stage="unit",le="0.00025"} 1"#));
        assert!(text.contains(r#"apigate_rejections_total{reason="throttled"}"#));
        assert!(text.contains(
            r#"apigate_response_bytes_total{api="-",route="GET /pets/{id}",stage="unit"} 42"#
        ));
    }

    #[test]
    fn unmatched_handles_are_shared() {
        assert!(std::ptr::eq(unmatched("-", "x"), unmatched("-", "x")));
        assert!(std::ptr::eq(unmatched("-", "-"), unmatched("-", "-")));
    }
}

#[cfg(test)]
mod dashboard_tests {
    use super::*;

    /// Every metric a dashboard query names, with histogram suffixes folded.
    fn dashboard_metrics(json: &str) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(json).expect("dashboard is JSON");
        let mut names = Vec::new();
        for panel in v["panels"].as_array().expect("panels") {
            for t in panel["targets"].as_array().expect("targets") {
                let expr = t["expr"].as_str().expect("expr");
                let mut rest = expr;
                while let Some(i) = rest.find("apigate_") {
                    let tail = &rest[i..];
                    let end = tail
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(tail.len());
                    let name = &tail[..end];
                    let base = ["_bucket", "_sum", "_count"]
                        .iter()
                        .fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
                    names.push(base.to_string());
                    rest = &tail[end..];
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }

    #[test]
    fn every_dashboard_query_names_an_exported_metric() {
        let json = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/conf/grafana/apigate-dashboard.json"
        ))
        .unwrap();
        // Record one of everything so every family is present in the exposition.
        let m = metrics();
        m.route("-", "dash", "GET /x").observe(
            &Method::GET,
            200,
            Duration::from_millis(1),
            Some(Duration::from_micros(500)),
            1,
            1,
        );
        m.rejection(Reason::NotFound);
        m.upstream_connection(true);
        m.upstream_connect_failures.inc();
        m.reload(true);
        m.jwks_fetch_failures.inc();
        m.ratelimit_store_errors.inc();
        m.access_log_dropped.inc();
        crate::lambda::metrics::record_sample();
        crate::integration::aggregate::metrics::record_sample();
        let text = m.render();
        let exported: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        let names = dashboard_metrics(&json);
        assert!(names.len() >= 8, "{names:?}");
        for name in names {
            assert!(
                exported.contains(&name.as_str()),
                "the dashboard queries {name}, which apigate does not export"
            );
        }
    }
}
