//! Parameter mapping: evaluating pre-parsed value expressions per request.

use apigate::config::ConfigErrors;
use apigate::mapping::{Claims, RequestMapping, RequestOp, Side, Template, Vars};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use pingora_http::RequestHeader;
use std::collections::BTreeMap;

fn bench_mapping(c: &mut Criterion) {
    let stage_vars: BTreeMap<String, String> =
        [("apiVersion".to_string(), "v1".to_string())].into();
    let map: BTreeMap<String, String> = [
        ("overwrite:header.Api-Version", "$stageVariables.apiVersion"),
        ("overwrite:header.Api-Path", "$request.path"),
        ("append:header.X-User", "$context.authorizer.claims.sub"),
        (
            "overwrite:header.X-Trace",
            "${context.requestId}-${request.header.x-client}",
        ),
        ("overwrite:path", "/v2/${request.path.proxy}"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mapping = RequestMapping::compile(
        "bench",
        "RequestParameters",
        &map,
        &stage_vars,
        &mut ConfigErrors::default(),
    );
    let mut req = RequestHeader::build("GET", b"/v0/users/42/orders?expand=1", None).unwrap();
    req.insert_header("x-client", "web").unwrap();
    let claims: Claims = serde_json::from_str(r#"{"sub":"alice","scope":"read"}"#).unwrap();
    let params = [("proxy".into(), "42/orders".into())];
    let vars = Vars {
        req: &req,
        path: "/users/42/orders",
        full_path: "/v0/users/42/orders",
        params: &params,
        request_id: "Mc7UVioPPHcEKPA=",
        stage: "v0",
        route_key: "ANY /users/{proxy+}",
        source_ip: "127.0.0.1",
        claims: Some(&claims),
        authorizer: None,
        resp: None,
        client_cert: None,
    };
    c.bench_function("mapping/evaluate_5_ops", |b| {
        let mut out = String::with_capacity(128);
        b.iter(|| {
            for op in &mapping.ops {
                out.clear();
                match op {
                    RequestOp::Header(_, _, t) | RequestOp::Query(_, _, t) | RequestOp::Path(t) => {
                        t.eval_into(&vars, false, &mut out)
                    }
                }
                black_box(&out);
            }
        })
    });
    c.bench_function("mapping/parse_template", |b| {
        b.iter(|| {
            black_box(Template::parse(
                "${context.requestId}-${request.header.x-client}",
                Side::Request,
                &stage_vars,
            ))
        })
    });
}

criterion_group!(benches, bench_mapping);
criterion_main!(benches);
