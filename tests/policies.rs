//! End to end: access policies (CORS, IP filter, JWT) on the real gateway.

mod common;

use common::*;

fn cors_api() -> String {
    r#"{"CorsConfiguration":{"AllowOrigins":["https://app.example.com","https://*.preview.example"],"AllowMethods":["GET","POST"],"AllowHeaders":["authorization","content-type"],"ExposeHeaders":["x-total"],"MaxAge":600,"AllowCredentials":true}}"#.to_string()
}

#[test]
fn cors_preflight_is_answered_before_routing_and_backend_headers_are_replaced() {
    let b = Backend::start(Behaviour::Echo);
    let dir = ConfDir::new(&[
        ("api.json", cors_api()),
        ("integrations/i0.json", integration(&b.url(), "")),
        ("routes/r0.json", route("GET /c", "i0", "")),
    ]);
    let gw = Gateway::start(&dir.path);
    // Preflight on a path no route serves: still answered, backend untouched.
    let r = request(
        gw.port,
        "OPTIONS",
        "/no/such/route",
        &[
            ("Origin", "https://app.example.com"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-allow-methods"), Some("GET,POST"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("authorization,content-type")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert!(r.header("apigw-requestid").is_some());
    assert!(b.requests().is_empty());
    // Wildcard origin.
    let r = request(
        gw.port,
        "OPTIONS",
        "/c",
        &[
            ("Origin", "https://pr-7.preview.example"),
            ("Access-Control-Request-Method", "GET"),
        ],
        b"",
    );
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://pr-7.preview.example")
    );
    // Disallowed origin: no CORS headers at all.
    let r = request(
        gw.port,
        "OPTIONS",
        "/c",
        &[
            ("Origin", "https://evil.example"),
            ("Access-Control-Request-Method", "GET"),
        ],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), None);
    // Actual request: the backend's access-control-* replaced by the gateway's.
    let r = request(
        gw.port,
        "GET",
        "/c",
        &[("Origin", "https://app.example.com")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-expose-headers"), Some("x-total"));
    assert_eq!(r.header("vary"), Some("Origin"));
    let r = request(
        gw.port,
        "GET",
        "/c",
        &[("Origin", "https://evil.example")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        None,
        "backend's own CORS header leaked"
    );
    // Gateway errors carry CORS headers too, so browsers can read them.
    let r = request(
        gw.port,
        "GET",
        "/missing",
        &[("Origin", "https://app.example.com")],
        b"",
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
}

#[test]
fn ip_filters_at_every_scope_and_spoofing_through_headers_fails() {
    let b = Backend::start(Behaviour::Echo);
    let dir = ConfDir::new(&[
        ("api.json", r#"{"Policies":{"IpFilter":{"Action":"forbid","Addresses":["192.0.2.0/24"]}}}"#.to_string()),
        ("integrations/i0.json", integration(&b.url(), "")),
        ("routes/open.json", route("GET /open", "i0", "")),
        ("routes/lan.json", route("GET /lan", "i0", r#""Policies":{"IpFilter":{"Action":"allow","Addresses":["10.0.0.0/8"]}}"#)),
        ("routes/local.json", route("GET /local", "i0", r#""Policies":{"IpFilter":{"Action":"allow","Addresses":["127.0.0.1"]}}"#)),
        ("stages/default.json", r#"{"Name":"$default"}"#.to_string()),
        ("stages/locked.json", r#"{"Name":"locked","Policies":{"IpFilter":{"Action":"forbid","Addresses":["127.0.0.0/8"]}}}"#.to_string()),
    ]);
    let gw = Gateway::start(&dir.path);
    assert_eq!(gw.get("/open").status, 200);
    assert_eq!(gw.get("/local").status, 200);
    let r = gw.get("/lan");
    assert_eq!(
        (r.status, r.text()),
        (403, r#"{"message":"Forbidden"}"#.into())
    );
    assert_eq!(gw.get("/locked/open").status, 403, "stage-scope filter");
    // Not a trusted proxy: X-Forwarded-For cannot move the client into 10/8.
    let r = request(
        gw.port,
        "GET",
        "/lan",
        &[("X-Forwarded-For", "10.1.2.3")],
        b"",
    );
    assert_eq!(r.status, 403);
    assert_eq!(b.requests().len(), 2);
}

#[test]
fn trusted_proxies_make_forwarded_for_believed() {
    let b = Backend::start(Behaviour::Echo);
    let dir = ConfDir::new(&[
        (
            "gateway.json",
            r#"{"TrustedProxies":["127.0.0.0/8"]}"#.to_string(),
        ),
        (
            "integrations/i0.json",
            integration(
                &b.url(),
                r#""RequestParameters":{"overwrite:header.X-Client":"$context.identity.sourceIp"}"#,
            ),
        ),
        (
            "routes/lan.json",
            route(
                "GET /lan",
                "i0",
                r#""Policies":{"IpFilter":{"Action":"allow","Addresses":["10.0.0.0/8"]}}"#,
            ),
        ),
    ]);
    let gw = Gateway::start(&dir.path);
    // Right-most untrusted address wins; a forged left-most entry is ignored.
    let r = request(
        gw.port,
        "GET",
        "/lan",
        &[("X-Forwarded-For", "192.0.2.66, 10.1.2.3")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(b.requests()[0].header("x-client"), Some("10.1.2.3"));
    let r = request(
        gw.port,
        "GET",
        "/lan",
        &[("X-Forwarded-For", "10.1.2.3, 192.0.2.66")],
        b"",
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        gw.get("/lan").status,
        403,
        "no header: the proxy itself is the client"
    );
}

#[test]
fn forwarded_for_entries_with_ports_and_garbage_cannot_open_an_allow_list() {
    let b = Backend::start(Behaviour::Echo);
    let dir = ConfDir::new(&[
        (
            "gateway.json",
            r#"{"TrustedProxies":["127.0.0.0/8"]}"#.to_string(),
        ),
        ("integrations/i0.json", integration(&b.url(), "")),
        (
            "routes/lan.json",
            route(
                "GET /lan",
                "i0",
                r#""Policies":{"IpFilter":{"Action":"allow","Addresses":["127.0.0.0/8","10.0.0.0/8"]}}"#,
            ),
        ),
    ]);
    let gw = Gateway::start(&dir.path);
    let from = |xff: &str| request(gw.port, "GET", "/lan", &[("X-Forwarded-For", xff)], b"").status;
    // Load balancers that write ip:port are understood...
    assert_eq!(from("10.9.9.9:4711"), 200);
    assert_eq!(from("198.51.100.7:5555"), 403);
    assert_eq!(from("[2001:db8::7]:443"), 403);
    // ...and an entry that is no address is an unknown client, not the trusted proxy.
    assert_eq!(from("junk"), 403);
    assert_eq!(from("198.51.100.7:x"), 403);
}

#[test]
fn api_and_stage_ip_filters_apply_before_routing() {
    let b = Backend::start(Behaviour::Echo);
    let dir = ConfDir::new(&[
        (
            "api.json",
            r#"{"Name":"a","Policies":{"IpFilter":{"Action":"forbid","Addresses":["127.0.0.1"]}}}"#
                .to_string(),
        ),
        ("integrations/i0.json", integration(&b.url(), "")),
        ("routes/r.json", route("GET /r", "i0", "")),
    ]);
    let gw = Gateway::start(&dir.path);
    // A forbidden client learns nothing about which routes exist.
    for path in ["/r", "/nope", "/v1/nope"] {
        assert_eq!(gw.get(path).status, 403, "{path}");
    }
    assert!(b.requests().is_empty());

    let dir = ConfDir::new(&[
        ("integrations/i0.json", integration(&b.url(), "")),
        ("routes/r.json", route("GET /r", "i0", "")),
        (
            "stages/v1.json",
            r#"{"Name":"v1","Policies":{"IpFilter":{"Action":"allow","Addresses":["10.0.0.0/8"]}}}"#
                .to_string(),
        ),
        ("stages/open.json", r#"{"Name":"open"}"#.to_string()),
    ]);
    let gw = Gateway::start(&dir.path);
    assert_eq!(gw.get("/v1/r").status, 403);
    assert_eq!(gw.get("/v1/nope").status, 403);
    assert_eq!(gw.get("/open/r").status, 200);
    assert_eq!(gw.get("/open/nope").status, 404);
}

#[test]
fn an_overwrite_from_a_missing_claim_removes_the_clients_header() {
    let b = Backend::start(Behaviour::Echo);
    let key = format!(r#""Jwks":{}"#, jwks(&["rsa-a"]));
    let dir = jwt_conf(&b, &key);
    dir.write(&[
        (
            "api.json",
            r#"{"Name":"a","Policies":{"RequestParameters":{"overwrite:header.X-User-Email":"$context.authorizer.claims.email","overwrite:header.X-Tenant":"$request.header.X-Missing"}}}"#
                .to_string(),
        ),
        ("routes/open.json", route("GET /open", "i0", "")),
    ]);
    let gw = Gateway::start(&dir.path);
    let spoof = [
        ("X-User-Email", "admin@victim.example"),
        ("X-Tenant", "root"),
    ];
    // A valid token without an email claim, and a route without any token.
    let token = sign(Algorithm::RS256, &rsa("rsa-a"), "rsa-a", &claims());
    let bearer = format!("Bearer {token}");
    let mut with_token = spoof.to_vec();
    with_token.push(("Authorization", &bearer));
    assert_eq!(
        request(gw.port, "GET", "/pets", &with_token, b"").status,
        200
    );
    assert_eq!(request(gw.port, "GET", "/open", &spoof, b"").status, 200);
    for seen in b.requests() {
        assert_eq!(seen.header("x-user-email"), None, "{}", seen.target);
        assert_eq!(seen.header("x-tenant"), None, "{}", seen.target);
    }
}

#[test]
fn two_tokens_are_refused() {
    let b = Backend::start(Behaviour::Echo);
    let key = format!(r#""Jwks":{}"#, jwks(&["rsa-a"]));
    let gw = Gateway::start(&jwt_conf(&b, &key).path);
    let good = format!(
        "Bearer {}",
        sign(Algorithm::RS256, &rsa("rsa-a"), "rsa-a", &claims())
    );
    let r = request(
        gw.port,
        "GET",
        "/pets",
        &[("Authorization", &good), ("Authorization", "Bearer junk")],
        b"",
    );
    assert_401(&r, "two Authorization headers");
    assert!(r
        .header("www-authenticate")
        .is_some_and(|v| v.contains("invalid_request")));
    assert!(b.requests().is_empty());
}

#[test]
fn policies_that_could_never_work_are_config_errors() {
    let dir = ConfDir::new(&[
        (
            "integrations/i0.json",
            integration("http://127.0.0.1:9", ""),
        ),
        (
            "routes/scoped.json",
            route("GET /a", "i0", r#""AuthorizationScopes":["read"]"#),
        ),
        (
            "routes/claimed.json",
            route(
                "GET /b",
                "i0",
                r#""Policies":{"RateLimit":{"Calls":5,"PeriodSeconds":60,"Key":"$context.authorizer.claims.sub"}}"#,
            ),
        ),
    ]);
    let out = std::process::Command::new(BIN)
        .args(["check", "--conf"])
        .arg(&dir.path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("routes/scoped.json: AuthorizationScopes"),
        "{err}"
    );
    assert!(
        err.contains("routes/claimed.json: Policies.RateLimit.Key"),
        "{err}"
    );
}

#[test]
fn throttle_buckets_survive_a_reload() {
    let b = Backend::start(Behaviour::Echo);
    let dir = ConfDir::new(&[
        ("integrations/i0.json", integration(&b.url(), "")),
        ("routes/r.json", route("GET /r", "i0", "")),
        (
            "stages/default.json",
            r#"{"Name":"$default","DefaultRouteSettings":{"ThrottlingRateLimit":0,"ThrottlingBurstLimit":3}}"#
                .to_string(),
        ),
    ]);
    let gw = Gateway::start(&dir.path);
    for _ in 0..3 {
        assert_eq!(gw.get("/r").status, 200);
    }
    assert_eq!(gw.get("/r").status, 429);
    gw.signal("HUP");
    gw.wait_log("configuration reloaded", 1);
    assert_eq!(gw.get("/r").status, 429, "a reload refilled the bucket");
    // Changed settings are a new bucket.
    dir.write(&[(
        "stages/default.json",
        r#"{"Name":"$default","DefaultRouteSettings":{"ThrottlingRateLimit":0,"ThrottlingBurstLimit":4}}"#
            .to_string(),
    )]);
    gw.signal("HUP");
    gw.wait_log("configuration reloaded", 2);
    assert_eq!(gw.get("/r").status, 200);
}

// ---------------------------------------------------------------- JWT

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt/");
const ISS: &str = "https://issuer.test";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIX}{name}")).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> serde_json::Value {
    json!({"sub": "alice", "iss": ISS, "aud": "api", "exp": now() + 300, "scope": "pets:read"})
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: &str, claims: &serde_json::Value) -> String {
    let mut h = Header::new(alg);
    h.kid = Some(kid.to_string());
    encode(&h, claims, key).unwrap()
}

fn rsa(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(fixture(&format!("{name}.pem")).as_bytes()).unwrap()
}

fn jwks(names: &[&str]) -> String {
    let keys: Vec<serde_json::Value> = names
        .iter()
        .map(|n| serde_json::from_str(&fixture(&format!("{n}.jwk.json"))).unwrap())
        .collect();
    json!({ "keys": keys }).to_string()
}

fn jwt_conf(b: &Backend, key_source: &str) -> ConfDir {
    ConfDir::new(&[
        (
            "authorizers/auth.json",
            format!(
                r#"{{"AuthorizerType":"JWT","IdentitySource":["$request.header.Authorization"],"JwtConfiguration":{{"Issuer":"{ISS}","Audience":["api"]}},{key_source}}}"#
            ),
        ),
        (
            "integrations/i0.json",
            integration(
                &b.url(),
                r#""RequestParameters":{"overwrite:header.X-Sub":"$context.authorizer.claims.sub"}"#,
            ),
        ),
        (
            "routes/r0.json",
            route(
                "GET /pets",
                "i0",
                r#""AuthorizationType":"JWT","AuthorizerId":"auth","AuthorizationScopes":["pets:read","pets:admin"]"#,
            ),
        ),
    ])
}

fn auth(gw: &Gateway, token: &str) -> Response {
    request(
        gw.port,
        "GET",
        "/pets",
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    )
}

fn assert_401(r: &Response, what: &str) {
    assert_eq!(
        (r.status, r.text()),
        (401, r#"{"message":"Unauthorized"}"#.into()),
        "{what}"
    );
    let w = r.header("www-authenticate").unwrap_or("");
    assert!(w.starts_with("Bearer"), "{what}: www-authenticate {w:?}");
}

#[test]
fn jwt_valid_rs256_and_es256_pass_claims_to_the_backend() {
    let b = Backend::start(Behaviour::Echo);
    let dir = jwt_conf(&b, &format!(r#""Jwks":{}"#, jwks(&["rsa-a", "ec-a"])));
    let gw = Gateway::start(&dir.path);
    let t = sign(Algorithm::RS256, &rsa("rsa-a"), "rsa-a", &claims());
    assert_eq!(auth(&gw, &t).status, 200);
    assert_eq!(b.requests()[0].header("x-sub"), Some("alice"));
    // Without "Bearer ", and the same token again (served from the verified-token cache).
    assert_eq!(
        request(gw.port, "GET", "/pets", &[("Authorization", &t)], b"").status,
        200
    );
    let ec = EncodingKey::from_ec_pem(fixture("ec-a.pem").as_bytes()).unwrap();
    let mut c = claims();
    c["scp"] = json!(["pets:admin"]);
    c.as_object_mut().unwrap().remove("scope");
    assert_eq!(
        auth(&gw, &sign(Algorithm::ES256, &ec, "ec-a", &c)).status,
        200
    );
}

#[test]
fn jwt_every_rejection_is_401_or_403_and_never_reaches_the_backend() {
    let b = Backend::start(Behaviour::Echo);
    let dir = jwt_conf(
        &b,
        &format!(r#""Jwks":{},"ClockSkewSeconds":0"#, jwks(&["rsa-a"])),
    );
    let gw = Gateway::start(&dir.path);
    let key = rsa("rsa-a");
    let with = |k: &str, v: serde_json::Value| {
        let mut c = claims();
        c[k] = v;
        sign(Algorithm::RS256, &key, "rsa-a", &c)
    };
    let good = sign(Algorithm::RS256, &key, "rsa-a", &claims());
    // HS256 signed with the RSA public key as the HMAC secret: algorithm confusion.
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(fixture("rsa-a.pub.pem").as_bytes()),
        "rsa-a",
        &claims(),
    );
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let alg_none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT","kid":"rsa-a"}"#),
        b64(&claims().to_string())
    );
    let cases = [
        ("expired", with("exp", json!(now() - 5))),
        ("not yet valid", with("nbf", json!(now() + 600))),
        ("issued in the future", with("iat", json!(now() + 600))),
        ("wrong issuer", with("iss", json!("https://issuer.test/"))),
        ("wrong audience", with("aud", json!("other"))),
        (
            "unknown kid",
            sign(Algorithm::RS256, &key, "nope", &claims()),
        ),
        (
            "signed by another key",
            sign(Algorithm::RS256, &rsa("rsa-b"), "rsa-a", &claims()),
        ),
        ("tampered", format!("{}AAAA", &good[..good.len() - 4])),
        ("algorithm confusion", confused),
        ("alg none", alg_none),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (what, token) in &cases {
        let r = auth(&gw, token);
        assert_401(&r, what);
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .contains("invalid_token"),
            "{what}"
        );
    }
    let r = gw.get("/pets");
    assert_401(&r, "missing token");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    // Valid token, none of the route's scopes: 403.
    let r = auth(&gw, &with("scope", json!("pets:write")));
    assert_eq!(
        (r.status, r.text()),
        (403, r#"{"message":"Forbidden"}"#.into())
    );
    assert!(
        b.requests().is_empty(),
        "the backend was called for a rejected request"
    );
    assert_eq!(auth(&gw, &good).status, 200);
}

#[test]
fn jwt_key_rotation_through_a_jwks_url_with_rate_limited_refetch() {
    let b = Backend::start(Behaviour::Echo);
    let server = JwksServer::start(&jwks(&["rsa-a"]));
    let dir = jwt_conf(
        &b,
        &format!(r#""JwksUri":"{}","JwksMinRefetchSeconds":1"#, server.url()),
    );
    let gw = Gateway::start(&dir.path);
    let old = sign(Algorithm::RS256, &rsa("rsa-a"), "rsa-a", &claims());
    assert_eq!(auth(&gw, &old).status, 200);
    let fetched = server.fetches();
    assert!(fetched >= 1);

    // A flood of unknown kids costs at most one fetch per interval.
    for i in 0..30 {
        let r = auth(
            &gw,
            &sign(
                Algorithm::RS256,
                &rsa("rsa-a"),
                &format!("flood-{i}"),
                &claims(),
            ),
        );
        assert_eq!(r.status, 401);
    }
    assert!(
        server.fetches() <= fetched + 1,
        "{} fetches for 30 unknown kids",
        server.fetches() - fetched
    );

    // The IdP rotates to key b: a token with the new kid is accepted once the set is refetched.
    server.set(&jwks(&["rsa-b"]));
    let new = sign(Algorithm::RS256, &rsa("rsa-b"), "rsa-b", &claims());
    let t0 = Instant::now();
    loop {
        if auth(&gw, &new).status == 200 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "rotated key never accepted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A token signed by the retired key, not seen before, is now refused.
    let mut c = claims();
    c["sub"] = json!("mallory");
    assert_401(
        &auth(&gw, &sign(Algorithm::RS256, &rsa("rsa-a"), "rsa-a", &c)),
        "retired key",
    );
}

#[test]
fn jwt_requests_wait_for_the_first_key_fetch_and_stale_keys_refresh_in_the_background() {
    let b = Backend::start(Behaviour::Echo);
    let server = JwksServer::start(&jwks(&["rsa-a"]));
    server.hold();
    let dir = jwt_conf(
        &b,
        &format!(r#""JwksUri":"{}","JwksRefreshSeconds":1"#, server.url()),
    );
    let gw = Gateway::start(&dir.path);
    // The start-up fetch is in flight and the identity provider has not answered yet.
    server.wait_fetches(1);
    let token = sign(Algorithm::RS256, &rsa("rsa-a"), "rsa-a", &claims());
    let port = gw.port;
    let first = std::thread::spawn(move || {
        request(
            port,
            "GET",
            "/pets",
            &[("Authorization", &format!("Bearer {token}"))],
            b"",
        )
    });
    // The request is inside the gateway, waiting for the keys rather than refused.
    gw.wait_metric("apigate_requests_in_flight", 1.0);
    server.release();
    assert_eq!(first.join().unwrap().status, 200);
    assert_eq!(
        server.fetches(),
        1,
        "the waiting request started a fetch of its own"
    );

    // Once JwksRefreshSeconds pass, the set is refreshed in the background; while the
    // identity provider is slow, requests keep being verified with the keys in hand.
    server.hold();
    server.set(&jwks(&["rsa-a", "rsa-b"]));
    let mut n = 0;
    while server.fetches() < 2 {
        n += 1;
        let mut c = claims();
        c["sub"] = json!(format!("user-{n}"));
        let fresh = sign(Algorithm::RS256, &rsa("rsa-a"), "rsa-a", &c);
        assert_eq!(auth(&gw, &fresh).status, 200);
        assert!(n < 500, "no refresh after JwksRefreshSeconds");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = claims();
    c["sub"] = json!("during-refresh");
    assert_eq!(
        auth(&gw, &sign(Algorithm::RS256, &rsa("rsa-a"), "rsa-a", &c)).status,
        200
    );
    server.release();
    // The refreshed set brings key b, with no further fetch.
    let rotated = sign(Algorithm::RS256, &rsa("rsa-b"), "rsa-b", &claims());
    let t0 = Instant::now();
    while auth(&gw, &rotated).status != 200 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "refreshed key never used"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.fetches(), 2);
}

#[test]
fn jwt_keys_from_a_file_are_reread_on_reload() {
    let b = Backend::start(Behaviour::Echo);
    let dir = jwt_conf(&b, r#""JwksFile":"keys/idp.json""#);
    dir.write(&[("keys/idp.json", jwks(&["rsa-a"]))]);
    let gw = Gateway::start(&dir.path);
    let with_sub = |key: &str, sub: &str| {
        let mut c = claims();
        c["sub"] = json!(sub);
        sign(Algorithm::RS256, &rsa(key), key, &c)
    };
    assert_eq!(auth(&gw, &with_sub("rsa-a", "before")).status, 200);

    // The operator rotates the key in the file and reloads.
    dir.write(&[("keys/idp.json", jwks(&["rsa-b"]))]);
    gw.signal("HUP");
    gw.wait_log("configuration reloaded", 1);
    assert_eq!(auth(&gw, &with_sub("rsa-b", "after")).status, 200);
    assert_401(&auth(&gw, &with_sub("rsa-a", "revoked")), "revoked key");

    // A broken file is a rejected reload: the running keys stay.
    dir.write(&[("keys/idp.json", "{not json".to_string())]);
    gw.signal("HUP");
    gw.wait_log("reload rejected", 1);
    assert!(gw.output().contains("JwksFile"), "{}", gw.output());
    assert_eq!(auth(&gw, &with_sub("rsa-b", "still")).status, 200);
}

#[test]
fn jwt_keys_by_oidc_discovery_and_unreachable_keys_mean_401() {
    let b = Backend::start(Behaviour::Echo);
    let server = JwksServer::start(&jwks(&["rsa-a"]));
    let issuer = format!("http://127.0.0.1:{}", server.port);
    let dir = ConfDir::new(&[
        (
            "authorizers/auth.json",
            format!(
                r#"{{"AuthorizerType":"JWT","IdentitySource":["$request.querystring.access_token"],"JwtConfiguration":{{"Issuer":"{issuer}","Audience":["api"]}}}}"#
            ),
        ),
        (
            "authorizers/dead.json",
            format!(
                r#"{{"AuthorizerType":"JWT","IdentitySource":["$request.header.Authorization"],"JwtConfiguration":{{"Issuer":"{ISS}","Audience":["api"]}},"JwksUri":"http://127.0.0.1:{}/jwks"}}"#,
                free_port()
            ),
        ),
        ("integrations/i0.json", integration(&b.url(), "")),
        (
            "routes/r0.json",
            route(
                "GET /pets",
                "i0",
                r#""AuthorizationType":"JWT","AuthorizerId":"auth""#,
            ),
        ),
        (
            "routes/r1.json",
            route(
                "GET /dead",
                "i0",
                r#""AuthorizationType":"JWT","AuthorizerId":"dead""#,
            ),
        ),
    ]);
    let gw = Gateway::start(&dir.path);
    let mut c = claims();
    c["iss"] = json!(issuer);
    let t = sign(Algorithm::RS256, &rsa("rsa-a"), "rsa-a", &c);
    assert_eq!(
        request(gw.port, "GET", &format!("/pets?access_token={t}"), &[], b"").status,
        200
    );
    assert_401(&gw.get("/pets"), "no query token");
    // Keys that cannot be had: 401 with a clear reason, the gateway keeps serving.
    let r = auth_path(
        &gw,
        "/dead",
        &sign(Algorithm::RS256, &rsa("rsa-a"), "rsa-a", &claims()),
    );
    assert_401(&r, "unreachable JWKS");
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("no signing keys"));
    assert!(gw.output().contains("cannot fetch keys"));
}

fn auth_path(gw: &Gateway, path: &str, token: &str) -> Response {
    request(
        gw.port,
        "GET",
        path,
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    )
}
