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
