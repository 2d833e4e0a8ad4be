//! AGGREGATE (GATEWAY.md 12): one client request answered from several integrations. This
//! module is the compiled form and the pure part (shaping and merging answers); the calls
//! themselves are made from `request_filter` by `proxy::aggregate`.

pub mod metrics;
pub mod refs;
pub mod shape;

pub use refs::BodyRef;
pub use shape::{Path, Shape};

use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// `MaxBackendBytes` when unset: 1 MiB.
pub const DEFAULT_MAX_BACKEND_BYTES: u64 = 1024 * 1024;
/// The answer header saying whether every backend contributed.
pub const COMPLETED_HEADER: &str = "x-apigate-completed";

/// An AGGREGATE integration compiled for one stage.
#[derive(Debug)]
pub struct Aggregate {
    pub backends: Vec<Backend>,
    /// Called one after the other, each after the previous one answered.
    pub sequential: bool,
    /// `TimeoutInMillis`: bounds all the calls together.
    pub timeout: Duration,
    pub on_error: OnError,
    pub max_backend_bytes: usize,
}

/// `OnError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Answer with what the other backends gave, `X-Apigate-Completed: false`.
    Partial,
    /// Fail the whole request (502).
    Fail,
}

/// One entry of `Backends`.
#[derive(Debug)]
pub struct Backend {
    /// The HTTP_PROXY or AWS_PROXY integration, compiled for the same stage.
    pub integration: Arc<super::Integration>,
    pub shape: Shape,
    /// `${backends.N.body.PATH}` its URI reads (only earlier backends, checked at load).
    pub refs: Vec<BodyRef>,
}

/// How one backend call ended: the metric's `outcome` label and the access log's word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Answered a status outside 2xx.
    Status,
    /// The aggregate's (or the backend's own) timeout passed first.
    Timeout,
    /// The answer was not JSON (or a scalar without a `Group`).
    NotJson,
    /// The answer was over `MaxBackendBytes`.
    TooLarge,
    /// Refused, reset, or not HTTP.
    Unreachable,
    /// Not called: a `${backends.N...}` value it needed was missing (or N failed), or a
    /// mapping gave a value no request can hold.
    Skipped,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Ok,
        Outcome::Status,
        Outcome::Timeout,
        Outcome::NotJson,
        Outcome::TooLarge,
        Outcome::Unreachable,
        Outcome::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Status => "error_status",
            Outcome::Timeout => "timeout",
            Outcome::NotJson => "not_json",
            Outcome::TooLarge => "too_large",
            Outcome::Unreachable => "unreachable",
            Outcome::Skipped => "skipped",
        }
    }
}

/// Parses a backend's body: `Err(NotJson)` for anything but JSON.
pub fn parse_body(body: &[u8]) -> Result<Value, Outcome> {
    serde_json::from_slice(body).map_err(|_| Outcome::NotJson)
}

/// The aggregated answer from each backend's parsed answer (`None`: it failed), shaped and
/// merged in `Backends` order, and whether every backend contributed.
pub fn assemble(backends: &[Backend], answers: Vec<Option<Value>>) -> (Map<String, Value>, bool) {
    let shapes: Vec<&Shape> = backends.iter().map(|b| &b.shape).collect();
    assemble_shapes(&shapes, answers)
}

fn assemble_shapes(shapes: &[&Shape], answers: Vec<Option<Value>>) -> (Map<String, Value>, bool) {
    let mut out = Map::new();
    let mut complete = answers.len() == shapes.len();
    for (shape, answer) in shapes.iter().zip(answers) {
        match answer.map(|v| shape.apply(v)) {
            Some(Ok(fields)) => shape::merge(&mut out, fields),
            _ => complete = false,
        }
    }
    (out, complete)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_failed_backend_makes_the_answer_partial() {
        let a = Shape {
            group: Some("a".into()),
            ..Shape::default()
        };
        let b = Shape::default();
        let (m, complete) = assemble_shapes(&[&a, &b], vec![Some(json!({"x": 1})), None]);
        assert!(!complete);
        assert_eq!(Value::Object(m), json!({"a": {"x": 1}}));
        let (m, complete) = assemble_shapes(
            &[&a, &b],
            vec![Some(json!({"x": 1})), Some(json!({"y": 2}))],
        );
        assert!(complete);
        assert_eq!(Value::Object(m), json!({"a": {"x": 1}, "y": 2}));
        // A scalar without a group cannot be merged: that backend counts as failed.
        let (_, complete) = assemble_shapes(&[&a, &b], vec![Some(json!(1)), Some(json!(2))]);
        assert!(!complete);
    }

    #[test]
    fn only_json_bodies_parse() {
        assert!(parse_body(b"{\"a\":1}").is_ok());
        assert_eq!(parse_body(b"<html>"), Err(Outcome::NotJson));
        assert_eq!(parse_body(b""), Err(Outcome::NotJson));
    }
}
