//! The per-request policy chain: IP filter, throttle bucket, rate limit by key, JWT
//! authorizer and header mapping; the JWT step both cached and first-time (RS256 / HS256).

use apigate::config::{AuthorizerConf, ConfigErrors, IpFilterConf, JwtConf};
use apigate::mapping::{RequestMapping, RequestOp, Vars};
use apigate::policy::chain::{Outcome, RequestView, RoutePolicies};
use apigate::policy::ipfilter::IpFilter;
use apigate::policy::jwt::JwtAuthorizer;
use apigate::policy::ratelimit::{KeySource, LocalStore, RateLimit, Store};
use apigate::policy::throttle::TokenBucket;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use pingora_http::RequestHeader;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt/");

/// Policies never wait when keys are local: one poll finishes them.
fn now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("policy future waited"),
    }
}

fn authorizer(jwks: serde_json::Value) -> JwtAuthorizer {
    let conf = AuthorizerConf {
        authorizer_type: "JWT".into(),
        identity_source: vec!["$request.header.Authorization".into()],
        jwt_configuration: Some(JwtConf {
            issuer: Some("https://issuer.test".into()),
            audience: vec!["api".into()],
        }),
        jwks: Some(jwks),
        ..AuthorizerConf::default()
    };
    JwtAuthorizer::compile(
        "bench",
        "bench",
        &conf,
        Path::new("."),
        &mut ConfigErrors::default(),
    )
    .unwrap()
}

fn claims() -> serde_json::Value {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    serde_json::json!({"sub": "alice", "iss": "https://issuer.test", "aud": "api", "exp": exp, "scope": "read"})
}

fn bench_policy(c: &mut Criterion) {
    let rsa_jwk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{FIX}rsa-a.jwk.json")).unwrap())
            .unwrap();
    let secret = b"bench-secret-0123456789abcdef012";
    use base64::Engine;
    let oct = serde_json::json!({"kty": "oct", "kid": "k1", "alg": "HS256", "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)});
    let jwks = serde_json::json!({"keys": [rsa_jwk, oct]});
    let rsa_key = EncodingKey::from_rsa_pem(
        std::fs::read_to_string(format!("{FIX}rsa-a.pem"))
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rsa-a".into());
    let rs_token = encode(&h, &claims(), &rsa_key).unwrap();
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("k1".into());
    let hs_token = encode(&h, &claims(), &EncodingKey::from_secret(secret)).unwrap();
    let scopes = vec!["read".to_string()];

    let mut g = c.benchmark_group("jwt");
    g.bench_function("rs256_first_verification", |b| {
        b.iter_batched(
            || authorizer(jwks.clone()),
            |a| black_box(now(a.authorize(Some(&rs_token), &scopes)).is_ok()),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("hs256_first_verification", |b| {
        b.iter_batched(
            || authorizer(jwks.clone()),
            |a| black_box(now(a.authorize(Some(&hs_token), &scopes)).is_ok()),
            BatchSize::SmallInput,
        )
    });
    let warm = authorizer(jwks.clone());
    assert!(now(warm.authorize(Some(&rs_token), &scopes)).is_ok());
    g.bench_function("rs256_cached", |b| {
        b.iter(|| black_box(now(warm.authorize(Some(&rs_token), &scopes)).is_ok()))
    });
    g.finish();

    // The whole chain for one request with a cached token: the route's real policy chain
    // (what `request_filter` runs), then the header mapping the backend request gets.
    let filter = IpFilter::compile(
        "b",
        "P",
        &IpFilterConf {
            action: "allow".into(),
            addresses: vec!["127.0.0.0/8".into(), "10.0.0.0/8".into()],
        },
        &mut ConfigErrors::default(),
    )
    .unwrap();
    let policies = RoutePolicies {
        ip_filter: Some(filter),
        throttle: Some(Arc::new(TokenBucket::new(1e9, u64::MAX / 2))),
        rate_limits: vec![RateLimit {
            scope: Arc::from("route|$default|GET /pets"),
            calls: u64::MAX,
            period_secs: 60,
            key: KeySource::SourceIp,
        }],
        authorizer: Some(Arc::new(warm)),
        lambda_authorizer: None,
        scopes,
        subscription: None,
        header_checks: Vec::new(),
        auth_failure: None,
        answer: None,
        quotas: Vec::new(),
        on_error: None,
        choices: Vec::new(),
    };
    let store = Store::Local(LocalStore::new(100_000));
    let map: BTreeMap<String, String> = [
        ("overwrite:header.X-User", "$context.authorizer.claims.sub"),
        ("overwrite:header.Api-Version", "v1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mapping = RequestMapping::compile(
        "b",
        "RequestParameters",
        &map,
        &BTreeMap::new(),
        &mut ConfigErrors::default(),
    );
    let mut req = RequestHeader::build("GET", b"/pets/1", None).unwrap();
    req.insert_header("Authorization", format!("Bearer {rs_token}"))
        .unwrap();
    let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    c.bench_function(
        "policy_chain/ip+throttle+ratelimit+jwt_cached+mapping",
        |b| {
            let mut out = String::with_capacity(64);
            b.iter(|| {
                let view = RequestView {
                    headers: &req.headers,
                    query: req.uri.query(),
                    client_ip: ip,
                    client_ip_str: "127.0.0.1",
                    method: &req.method,
                    lambda: None,
                };
                let mut outcome = Outcome::default();
                assert!(now(policies.admit(&view, &store, &mut outcome)).is_ok());
                let vars = Vars {
                    req: &req,
                    path: "/pets/1",
                    full_path: "/pets/1",
                    params: &[],
                    request_id: "Mc7UVioPPHcEKPA=",
                    stage: "$default",
                    route_key: "GET /pets/{id}",
                    source_ip: "127.0.0.1",
                    claims: outcome.claims.as_deref(),
                    authorizer: None,
                    resp: None,
                    client_cert: None,
                };
                for op in &mapping.ops {
                    if let RequestOp::Header(_, _, t) = op {
                        out.clear();
                        t.eval_into(&vars, false, &mut out);
                        black_box(&out);
                    }
                }
            })
        },
    );
}

criterion_group!(benches, bench_policy);
criterion_main!(benches);
