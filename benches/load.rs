//! Loading a generated 1,000-route OpenAPI document: read from disk, lowered into the model
//! and compiled into the table (every check `apigate check` runs), as on start-up and SIGHUP.

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Map, Value};

/// `n` routes over n/4 services, half with their own integration, half `$ref`'ing a shared
/// one, a quarter behind a JWT authorizer with a scope.
fn document(n: usize) -> Value {
    let mut paths = Map::new();
    let mut shared = Map::new();
    for s in 0..n.div_ceil(4) {
        shared.insert(
            format!("svc{s}"),
            json!({"type": "http_proxy", "httpMethod": "ANY", "uri": format!("http://127.0.0.1:9000/svc{s}"), "payloadFormatVersion": "1.0"}),
        );
        let r = json!({"$ref": format!("#/components/x-amazon-apigateway-integrations/svc{s}")});
        let own = |path: &str| json!({"type": "http_proxy", "httpMethod": "GET", "uri": format!("http://127.0.0.1:9000{path}"), "payloadFormatVersion": "1.0", "requestParameters": {"append:header.X-Svc": format!("{s}")}});
        paths.insert(format!("/svc{s}/items"), json!({"get": {"operationId": format!("list{s}"), "x-amazon-apigateway-integration": r}, "post": {"security": [{"jwt": ["write"]}], "x-amazon-apigateway-integration": r}}));
        paths.insert(format!("/svc{s}/items/{{id}}"), json!({"get": {"x-amazon-apigateway-integration": own(&format!("/svc{s}/items/{{id}}"))}}));
        paths.insert(format!("/svc{s}/{{proxy+}}"), json!({"x-amazon-apigateway-any-method": {"x-amazon-apigateway-integration": own(&format!("/svc{s}/{{proxy}}"))}}));
    }
    json!({
        "openapi": "3.0.1",
        "info": {"title": "bench", "version": "1"},
        "paths": paths,
        "components": {
            "x-amazon-apigateway-integrations": shared,
            "securitySchemes": {"jwt": {"type": "oauth2", "x-apigate-jwks-uri": "http://127.0.0.1:9/jwks",
                "x-amazon-apigateway-authorizer": {"type": "jwt", "identitySource": "$request.header.Authorization",
                    "jwtConfiguration": {"issuer": "https://issuer.test", "audience": ["api"]}}}}
        }
    })
}

fn load(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("apigate-bench-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("openapi.json");
    let doc = document(1000);
    let routes: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(routes, 1000);
    std::fs::write(&path, doc.to_string()).unwrap();
    c.bench_function("openapi_1000_routes_load_and_compile", |b| {
        b.iter(|| {
            let config = apigate::config::load(&path).unwrap();
            assert!(config.errors.is_empty(), "{:?}", config.errors);
            let table = apigate::table::Table::compile(&config, None).unwrap();
            criterion::black_box(table);
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = load
}
criterion_main!(benches);
