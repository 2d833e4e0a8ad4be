//! The pure per-request work of the Lambda and aggregation paths: building a 2.0 or 1.0 event
//! (written straight to JSON, and the `Value` form it replaced), reading a function's
//! answer, and shaping + merging two backends' answers into an aggregate.

use apigate::integration::aggregate::shape::{merge, Path, Shape};
use apigate::integration::aws_proxy::{answer, event, event_json, EventInput};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use pingora_http::RequestHeader;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// A browser-like request: ten headers, a query string, a small JSON body.
fn request() -> RequestHeader {
    let mut r = RequestHeader::build("POST", b"/v1/orders/42?expand=items&page=2", None).unwrap();
    for (n, v) in [
        ("host", "api.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
        ),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate, br"),
        ("accept-language", "en-GB,en;q=0.9"),
        ("content-type", "application/json"),
        ("content-length", "64"),
        ("cookie", "session=abc123; theme=dark"),
        ("x-request-id", "5f0c6c1e-6a47-4bb8-9d5c-1a2b3c4d5e6f"),
        ("x-forwarded-for", "203.0.113.7"),
    ] {
        r.append_header(n, v).unwrap();
    }
    r
}

fn bench_event(c: &mut Criterion) {
    let req = request();
    let body = br#"{"item":"book","quantity":2,"note":"gift wrap, please \"fast\""}"#;
    let params: Vec<(Box<str>, Box<str>)> = vec![("id".into(), "42".into())];
    let vars = BTreeMap::new();
    let input = EventInput {
        req: &req,
        body,
        route_key: "POST /v1/orders/{id}",
        params: &params,
        stage: "$default",
        stage_vars: &vars,
        request_id: "Jp9XkgVtFiAEMkw=",
        source_ip: "203.0.113.7",
        claims: None,
        lambda_context: None,
        time: SystemTime::now(),
    };
    c.bench_function("lambda event 2.0, written as JSON", |b| {
        b.iter(|| black_box(event_json::v2(black_box(&input))))
    });
    c.bench_function("lambda event 2.0, Value then serialized", |b| {
        b.iter(|| black_box(serde_json::to_vec(&event::v2(black_box(&input))).unwrap()))
    });
    c.bench_function("lambda event 1.0, written as JSON", |b| {
        b.iter(|| black_box(event_json::v1(black_box(&input))))
    });
    c.bench_function("lambda event 1.0, Value then serialized", |b| {
        b.iter(|| black_box(serde_json::to_vec(&event::v1(black_box(&input))).unwrap()))
    });
}

fn bench_answer(c: &mut Criterion) {
    let payload = br#"{"statusCode":201,"headers":{"content-type":"application/json","x-order":"42"},"cookies":["seen=1"],"body":"{\"id\":42,\"status\":\"created\"}"}"#;
    c.bench_function("lambda answer 2.0", |b| {
        b.iter(|| black_box(answer::v2(black_box(payload))))
    });
}

fn bench_aggregate(c: &mut Criterion) {
    let users = br#"{"id":42,"name":"Ada","email":"ada@example.com","roles":["admin","dev"],"password_hash":"x"}"#;
    let orders = br#"{"orders":[{"id":1,"total":9.5},{"id":2,"total":12}],"internal":"x"}"#;
    let user = Shape {
        deny: vec![Path::parse("password_hash").unwrap()],
        group: Some("user".into()),
        ..Shape::default()
    };
    let order = Shape {
        deny: vec![Path::parse("internal").unwrap()],
        ..Shape::default()
    };
    c.bench_function("aggregate: parse, shape and merge two answers", |b| {
        b.iter(|| {
            let mut out = Map::new();
            for (shape, body) in [(&user, &users[..]), (&order, &orders[..])] {
                let v: Value = serde_json::from_slice(black_box(body)).unwrap();
                merge(&mut out, shape.apply(v).unwrap());
            }
            black_box(serde_json::to_vec(&Value::Object(out)).unwrap())
        })
    });
}

criterion_group!(benches, bench_event, bench_answer, bench_aggregate);
criterion_main!(benches);
