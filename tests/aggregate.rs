//! AGGREGATE integrations end to end: the real gateway, several real loopback backends.

#[path = "aggregate/backend.rs"]
mod backend;
mod common;

use backend::{JsonBackend, Rendezvous, Reply};
use common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const PROFILE: &str = "GET /users/{id}/profile";

/// An AGGREGATE integration file.
fn aggregate(backends: Value, extra: Value) -> String {
    let mut v = json!({"IntegrationType": "AGGREGATE", "Backends": backends});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    v.to_string()
}

fn backend(integration: &str) -> Value {
    json!({"Integration": format!("integrations/{integration}")})
}

/// The sum of the series `name{labels...}` that have these labels (in any order).
fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(|a, b| a + b)
}

fn calls(gw: &Gateway, backend: &str, outcome: &str) -> Option<f64> {
    series(
        &gw.scrape(),
        "apigate_aggregate_backend_calls_total",
        &[("backend", backend), ("outcome", outcome)],
    )
}

#[test]
fn merges_groups_and_forwards_like_a_proxy() {
    let users = JsonBackend::start(|r, _| {
        let path = r.target.split('?').next().unwrap_or("");
        Reply::json(json!({"id": path.rsplit('/').next(), "name": "Ann", "shared": "users"}))
    });
    let orgs = JsonBackend::start(|_, _| Reply::json(json!([{"name": "acme"}])));
    let prefs = JsonBackend::start(|_, _| Reply::json(json!({"theme": "dark", "shared": "prefs"})));
    let dir = ConfDir::new(&[
        (
            "integrations/users.json",
            integration(&format!("{}/users/{{id}}", users.url()), ""),
        ),
        (
            "integrations/orgs.json",
            integration(&format!("{}/orgs", orgs.url()), ""),
        ),
        (
            "integrations/prefs.json",
            integration(&format!("{}/prefs", prefs.url()), ""),
        ),
        (
            "integrations/profile.json",
            aggregate(
                json!([backend("users"), {"Integration": "integrations/orgs", "Group": "organizations"}, backend("prefs")]),
                json!({"RequestParameters": {"append:header.X-User": "$request.path.id"}}),
            ),
        ),
        ("routes/profile.json", route(PROFILE, "profile", "")),
        (
            "stages/default.json",
            r#"{"Name":"$default","AccessLogSettings":{"Format":"agg $context.status $context.integration.backends"}}"#.to_string(),
        ),
    ]);
    let gw = Gateway::start(&dir.path);
    let r = request(
        gw.port,
        "GET",
        "/users/42/profile?x=1",
        &[("X-Client", "c")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-apigate-completed"), Some("true"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("apigw-requestid").is_some());
    // Later backends win on a shared field; the array sits under its Group.
    assert_eq!(
        r.json(),
        json!({"id": "42", "name": "Ann", "shared": "prefs", "theme": "dark", "organizations": [{"name": "acme"}]})
    );
    // Each backend got the request an HTTP_PROXY route would have sent.
    let seen = users.requests();
    assert_eq!(seen.len(), 1);
    let u = &seen[0];
    assert_eq!(
        (u.method.as_str(), u.target.as_str()),
        ("GET", "/users/42?x=1")
    );
    assert_eq!(u.header("x-forwarded-for"), Some("127.0.0.1"));
    assert!(u
        .header("forwarded")
        .is_some_and(|f| f.contains("for=127.0.0.1")));
    assert_eq!(u.header("x-user"), Some("42"));
    assert_eq!(u.header("x-client"), Some("c"));
    assert_eq!(
        u.header("host"),
        Some(&*format!("127.0.0.1:{}", users.port))
    );
    assert_eq!(orgs.requests()[0].header("x-user"), Some("42"));
    // One series per backend call, and the access log lists each call.
    for b in ["users", "orgs", "prefs"] {
        assert_eq!(calls(&gw, b, "ok"), Some(1.0), "{b}");
    }
    let text = gw.scrape();
    assert!(
        text.contains("apigate_aggregate_backend_duration_seconds_count{backend=\"users\",route=\"GET /users/{id}/profile\"} 1"),
        "{text}"
    );
    gw.wait_log("agg 200 users:200:", 1);
    let out = gw.output();
    let line = out.lines().find(|l| l.starts_with("agg 200")).unwrap();
    assert!(
        line.contains(":ok,orgs:200:") && line.contains("prefs:200:"),
        "{line}"
    );
}

#[test]
fn target_allow_deny_and_mapping_shape_each_answer() {
    let a = JsonBackend::start(|_, _| {
        Reply::json(
            json!({"data": {"id": 1, "secret": "x", "profile": {"city": "Oslo", "zip": "0150"}}, "meta": {}}),
        )
    });
    let b = JsonBackend::start(|_, _| Reply::json(json!({"a": {"b": 1, "c": 2}, "d": 3})));
    let dir = ConfDir::new(&[
        ("integrations/a.json", integration(&a.url(), "")),
        ("integrations/b.json", integration(&b.url(), "")),
        (
            "integrations/agg.json",
            aggregate(
                json!([
                    {"Integration": "integrations/a", "Target": "data", "Deny": ["secret", "profile.zip"], "Mapping": {"id": "userId"}, "Group": "user"},
                    {"Integration": "integrations/b", "Allow": ["a.b"]}
                ]),
                json!({}),
            ),
        ),
        ("routes/r.json", route("GET /shaped", "agg", "")),
    ]);
    let gw = Gateway::start(&dir.path);
    let r = gw.get("/shaped");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"user": {"userId": 1, "profile": {"city": "Oslo"}}, "a": {"b": 1}})
    );
}

#[test]
fn a_slow_backend_is_left_out_or_fails_the_request() {
    let fast = JsonBackend::start(|_, _| Reply::json(json!({"fast": true})));
    // Holds each request until the test ends (the backend's drop lets it go).
    let slow = JsonBackend::start(|_, latch| {
        latch.wait(Duration::from_secs(20));
        Reply::json(json!({"slow": true}))
    });
    let both = json!([backend("fast"), backend("slow")]);
    let dir = ConfDir::new(&[
        ("integrations/fast.json", integration(&fast.url(), "")),
        ("integrations/slow.json", integration(&slow.url(), "")),
        (
            "integrations/partial.json",
            aggregate(both.clone(), json!({"TimeoutInMillis": 300})),
        ),
        (
            "integrations/strict.json",
            aggregate(both, json!({"TimeoutInMillis": 300, "OnError": "fail"})),
        ),
        ("routes/p.json", route("GET /partial", "partial", "")),
        ("routes/s.json", route("GET /strict", "strict", "")),
    ]);
    let gw = Gateway::start(&dir.path);
    let r = gw.get("/partial");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-apigate-completed"), Some("false"));
    assert_eq!(r.json(), json!({"fast": true}));
    let r = gw.get("/strict");
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json(), json!({"message": "Bad Gateway"}));
    assert_eq!(calls(&gw, "slow", "timeout"), Some(2.0));
    assert_eq!(calls(&gw, "fast", "ok"), Some(2.0));
}

#[test]
fn error_statuses_non_json_and_oversized_answers_count_as_failed() {
    let ok = JsonBackend::start(|_, _| Reply::json(json!({"ok": 1})));
    let broken = JsonBackend::start(|_, _| Reply(500, "application/json", r#"{"err":1}"#.into()));
    let html = JsonBackend::start(|_, _| Reply(200, "text/html", "<html>hi</html>".into()));
    let huge = JsonBackend::start(|_, _| Reply::json(json!({"blob": "x".repeat(4000)})));
    let dir = ConfDir::new(&[
        ("integrations/ok.json", integration(&ok.url(), "")),
        ("integrations/broken.json", integration(&broken.url(), "")),
        ("integrations/html.json", integration(&html.url(), "")),
        ("integrations/huge.json", integration(&huge.url(), "")),
        (
            "integrations/agg.json",
            aggregate(
                json!([
                    backend("ok"),
                    backend("broken"),
                    backend("html"),
                    backend("huge")
                ]),
                json!({"MaxBackendBytes": 1024}),
            ),
        ),
        ("routes/r.json", route("GET /mixed", "agg", "")),
    ]);
    let gw = Gateway::start(&dir.path);
    let r = gw.get("/mixed");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-apigate-completed"), Some("false"));
    assert_eq!(r.json(), json!({"ok": 1}));
    assert_eq!(calls(&gw, "broken", "error_status"), Some(1.0));
    assert_eq!(calls(&gw, "html", "not_json"), Some(1.0));
    assert_eq!(calls(&gw, "huge", "too_large"), Some(1.0));
    // Every backend was called once: none is retried.
    for b in [&ok, &broken, &html, &huge] {
        assert_eq!(b.requests().len(), 1);
    }
}

#[test]
fn sequential_backends_read_earlier_answers() {
    let user =
        JsonBackend::start(|_, _| Reply::json(json!({"org": {"id": "acme/eu"}, "name": "Ann"})));
    let org = JsonBackend::start(|r, _| Reply::json(json!({"orgPath": r.target})));
    let dir = ConfDir::new(&[
        ("integrations/user.json", integration(&user.url(), "")),
        (
            "integrations/org.json",
            integration(
                &format!("{}/orgs/${{backends.0.body.org.id}}", org.url()),
                "",
            ),
        ),
        (
            "integrations/missing.json",
            integration(&format!("{}/x/${{backends.0.body.nope}}", org.url()), ""),
        ),
        (
            "integrations/chain.json",
            aggregate(
                json!([backend("user"), {"Integration": "integrations/org", "Group": "org"}]),
                json!({"Sequential": true}),
            ),
        ),
        (
            "integrations/broken.json",
            aggregate(
                json!([backend("user"), backend("missing")]),
                json!({"Sequential": true}),
            ),
        ),
        ("routes/c.json", route("GET /chain", "chain", "")),
        ("routes/b.json", route("GET /broken", "broken", "")),
    ]);
    let gw = Gateway::start(&dir.path);
    let r = gw.get("/chain");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-apigate-completed"), Some("true"));
    // The value is one encoded segment of the later backend's path.
    assert_eq!(
        r.json(),
        json!({"org": {"orgPath": "/orgs/acme%2Feu"}, "name": "Ann"})
    );
    // A reference to a field the earlier answer lacks: that backend is not called.
    let r = gw.get("/broken");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-apigate-completed"), Some("false"));
    assert_eq!(org.requests().len(), 1);
    assert_eq!(calls(&gw, "missing", "skipped"), Some(1.0));
}

#[test]
fn backends_are_called_at_the_same_time() {
    // Each backend holds its request until the other one has been called too: the
    // aggregate completes only if both calls are in flight at once.
    let meet = Rendezvous::new(2);
    let (m1, m2) = (meet.clone(), meet.clone());
    let a = JsonBackend::start(move |_, _| {
        Reply::json(json!({"a": m1.arrive_and_wait(Duration::from_secs(10))}))
    });
    let b = JsonBackend::start(move |_, _| {
        Reply::json(json!({"b": m2.arrive_and_wait(Duration::from_secs(10))}))
    });
    let dir = ConfDir::new(&[
        ("integrations/a.json", integration(&a.url(), "")),
        ("integrations/b.json", integration(&b.url(), "")),
        (
            "integrations/agg.json",
            aggregate(json!([backend("a"), backend("b")]), json!({})),
        ),
        ("routes/r.json", route("GET /both", "agg", "")),
    ]);
    let gw = Gateway::start(&dir.path);
    let r = gw.get("/both");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"a": true, "b": true}));
}

fn jwks() -> String {
    let key = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/jwt/rsa-a.jwk.json"
    ))
    .unwrap();
    format!(r#"{{"keys":[{key}]}}"#)
}

#[test]
fn route_policies_apply_before_any_backend_is_called() {
    let users = JsonBackend::start(|_, _| Reply::json(json!({"id": 1})));
    let dir = ConfDir::new(&[
        (
            "api.json",
            r#"{"CorsConfiguration":{"AllowOrigins":["https://app.example"]}}"#.to_string(),
        ),
        (
            "authorizers/auth.json",
            format!(
                r#"{{"AuthorizerType":"JWT","IdentitySource":["$request.header.Authorization"],"JwtConfiguration":{{"Issuer":"https://issuer.example","Audience":["api"]}},"Jwks":{}}}"#,
                jwks()
            ),
        ),
        ("integrations/users.json", integration(&users.url(), "")),
        (
            "integrations/agg.json",
            aggregate(
                json!([backend("users")]),
                json!({"ResponseParameters": {"200": {"overwrite:header.X-Mapped": "yes", "overwrite:statuscode": "203"}}}),
            ),
        ),
        (
            "routes/secret.json",
            route(
                "GET /secret",
                "agg",
                r#""AuthorizationType":"JWT","AuthorizerId":"auth""#,
            ),
        ),
        (
            "routes/limited.json",
            route(
                "GET /limited",
                "agg",
                r#""Policies":{"RateLimit":{"Calls":1,"PeriodSeconds":3600,"Key":"$context.identity.sourceIp"}}"#,
            ),
        ),
    ]);
    let gw = Gateway::start(&dir.path);
    let r = gw.get("/secret");
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(
        users.requests().is_empty(),
        "no backend is called for a 401"
    );
    let origin = [("Origin", "https://app.example")];
    let r = request(gw.port, "GET", "/limited", &origin, b"");
    assert_eq!(r.status, 203, "{}", r.text());
    assert_eq!(r.header("x-mapped"), Some("yes"));
    assert_eq!(r.header("x-apigate-completed"), Some("true"));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(r.header("ratelimit-limit").is_some());
    let r = request(gw.port, "GET", "/limited", &origin, b"");
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(users.requests().len(), 1);
}

#[test]
fn check_reports_bad_aggregates_with_file_field_and_fix() {
    let up = |p: &str| integration(&format!("http://127.0.0.1:9/{p}"), "");
    let dir = ConfDir::new(&[
        ("integrations/users.json", up("users")),
        ("integrations/orgs.json", up("orgs/${backends.0.body.id}")),
        ("integrations/later.json", up("x/${backends.1.body.id}")),
        (
            "integrations/typo.json",
            aggregate(json!([backend("userz")]), json!({})),
        ),
        (
            "integrations/nested.json",
            aggregate(json!([backend("typo"), backend("nested")]), json!({})),
        ),
        (
            "integrations/groups.json",
            aggregate(
                json!([{"Integration": "integrations/users", "Group": "g"}, {"Integration": "integrations/orgs", "Group": "g"}]),
                json!({"IntegrationUri": "http://127.0.0.1:9", "PayloadFormatVersion": "1.0", "OnError": "ignore", "IntegrationMethod": "GET"}),
            ),
        ),
        (
            "integrations/order.json",
            aggregate(
                json!([backend("later"), backend("users")]),
                json!({"Sequential": true}),
            ),
        ),
        (
            "integrations/stray.json",
            integration("http://127.0.0.1:9/", r#""OnError":"fail""#),
        ),
        ("routes/direct.json", route("GET /direct", "orgs", "")),
        ("routes/a.json", route("GET /a", "typo", "")),
    ]);
    let out = Command::new(BIN)
        .args(["check", "--conf"])
        .arg(&dir.path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    for needle in [
        "integrations/typo.json: Backends[0].Integration: \"integrations/userz\": no integration \"userz\" exists (fix: did you mean integrations/users?)",
        "integrations/nested.json: Backends[0].Integration: \"integrations/typo\" is an AGGREGATE too",
        "integrations/nested.json: Backends[1].Integration: names this aggregate itself (a cycle)",
        "integrations/groups.json: Backends[1].Group: \"g\" is also the Group of Backends[0]",
        "integrations/groups.json: Backends[1].Integration: integrations/orgs.json's IntegrationUri reads ${backends.0.body.id}, but the backends are called at the same time (fix: set \"Sequential\": true",
        "integrations/groups.json: IntegrationUri: an AGGREGATE has no IntegrationUri",
        "integrations/groups.json: PayloadFormatVersion: an AGGREGATE has no PayloadFormatVersion",
        "integrations/groups.json: OnError: \"ignore\" is not an OnError",
        "integrations/order.json: Backends[0].Integration: integrations/later.json's IntegrationUri reads ${backends.1.body.id}, but backend 1 is not called before this one",
        "integrations/groups.json: IntegrationMethod: an AGGREGATE has no IntegrationMethod",
        "integrations/stray.json: OnError: only an AGGREGATE has OnError, this is HTTP_PROXY",
        "routes/direct.json: Target: integrations/orgs reads ${backends...}",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

/// The single-file bundle carries aggregates as the layout does.
#[test]
fn a_bundle_file_holds_aggregates_too() {
    let users = JsonBackend::start(|_, _| Reply::json(json!({"u": 1})));
    let bundle = json!({
        "integrations": {
            "users": {"IntegrationType": "HTTP_PROXY", "IntegrationUri": users.url()},
            "agg": {"IntegrationType": "AGGREGATE", "Backends": [{"Integration": "integrations/users", "Group": "user"}]}
        },
        "routes": {"r": {"RouteKey": "GET /b", "Target": "integrations/agg"}}
    });
    let dir = ConfDir::new(&[("bundle.json", bundle.to_string())]);
    let gw = Gateway::start(&dir.path.join("bundle.json"));
    let r = gw.get("/b");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"user": {"u": 1}}));
}

/// `apigate echo` over TLS, with conf/example's certificate for `localhost`.
struct TlsEcho(std::process::Child, u16);

impl TlsEcho {
    fn start() -> TlsEcho {
        let port = free_port();
        let tls = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/example/tls");
        let mut child = Command::new(BIN)
            .args(["echo", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--tls-cert", &format!("{tls}/backend.pem")])
            .args(["--tls-key", &format!("{tls}/backend.key")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_listening(port, Some(&mut child));
        TlsEcho(child, port)
    }
}

impl Drop for TlsEcho {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn https_backends_are_verified_with_their_integration_settings() {
    let echo = TlsEcho::start();
    let plain = JsonBackend::start(|_, _| Reply::json(json!({"plain": true})));
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/example/tls/ca.pem");
    let https = |id: &str| format!("https://localhost:{}/{id}", echo.1);
    let dir = ConfDir::new(&[
        ("gateway.json", json!({"UpstreamCaFile": ca}).to_string()),
        ("integrations/tls.json", integration(&https("tls"), "")),
        (
            "integrations/wrongname.json",
            integration(
                &https("wrong"),
                r#""TlsConfig":{"ServerNameToVerify":"other.example"}"#,
            ),
        ),
        ("integrations/plain.json", integration(&plain.url(), "")),
        (
            "integrations/agg.json",
            aggregate(
                json!([
                    {"Integration": "integrations/tls", "Allow": ["path"], "Group": "tls"},
                    {"Integration": "integrations/wrongname", "Group": "wrong"},
                    backend("plain")
                ]),
                json!({}),
            ),
        ),
        ("routes/r.json", route("GET /tls", "agg", "")),
    ]);
    let gw = Gateway::start(&dir.path);
    let r = gw.get("/tls");
    assert_eq!(r.status, 200, "{}", r.text());
    // The certificate is for localhost: the one checked against another name fails.
    assert_eq!(r.header("x-apigate-completed"), Some("false"));
    assert_eq!(r.json(), json!({"tls": {"path": "/tls"}, "plain": true}));
    assert_eq!(calls(&gw, "wrongname", "unreachable"), Some(1.0));
}

/// The Lambda Invoke API fixture (tests/fixtures/lambda/invoke_api.py), serving `echo-fn`.
struct InvokeApi(std::process::Child, u16);

impl InvokeApi {
    fn start() -> InvokeApi {
        use std::io::BufRead;
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/lambda");
        let python = std::env::var("APIGATE_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(python)
            .arg(format!("{fixtures}/invoke_api.py"))
            .arg(format!("{fixtures}/python"))
            .arg("echo-fn=app.echo")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 invoke_api.py");
        // Its first line is the port it bound: ready once printed.
        let mut line = String::new();
        let out = child.stdout.take().unwrap();
        std::io::BufReader::new(out).read_line(&mut line).unwrap();
        let port = line.trim().parse().expect("invoke_api.py prints its port");
        InvokeApi(child, port)
    }
}

impl Drop for InvokeApi {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn lambda_backends_get_the_route_event() {
    let api = InvokeApi::start();
    let users = JsonBackend::start(|_, _| Reply::json(json!({"name": "Ann"})));
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:echo-fn";
    let dir = ConfDir::new(&[
        (
            "gateway.json",
            json!({"LambdaEndpoint": format!("http://127.0.0.1:{}", api.1)}).to_string(),
        ),
        (
            "integrations/fn.json",
            json!({"IntegrationType": "AWS_PROXY", "IntegrationUri": arn, "PayloadFormatVersion": "2.0"})
                .to_string(),
        ),
        ("integrations/users.json", integration(&users.url(), "")),
        (
            "integrations/agg.json",
            aggregate(
                json!([backend("users"), {"Integration": "integrations/fn", "Target": "event", "Allow": ["rawPath", "pathParameters.id", "routeKey"], "Group": "lambda"}]),
                json!({}),
            ),
        ),
        ("routes/r.json", route(PROFILE, "agg", "")),
    ]);
    let gw = Gateway::start(&dir.path);
    let r = gw.get("/users/7/profile");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-apigate-completed"), Some("true"));
    assert_eq!(
        r.json(),
        json!({"name": "Ann", "lambda": {"rawPath": "/users/7/profile", "pathParameters": {"id": "7"}, "routeKey": PROFILE}})
    );
}
