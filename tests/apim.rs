//! Azure API Management artifacts as `--conf` (GATEWAY.md 13): the real binary serves the
//! APIOps fixture (`tests/fixtures/apim/`) against the echo backend on loopback, and
//! `check` either loads each of Azure's policy snippets (`../shared/realworld/apim-snippets`,
//! skipped when `../shared` is absent) or names the unsupported construct with file and line.

mod common;

use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

const SECRET: &[u8] = b"apim-fixture-secret-0123456789abcdef";
const SECRET_ENV: &str = "APIM_NAMED_VALUE_JWT_SIGNING_KEY";
/// The key of the fixture's active subscription to `organizations`.
const KEY: (&str, &str) = ("Ocp-Apim-Subscription-Key", "orgs-dev-key");
/// The fixture's backend URL, replaced by the test's echo backend.
const PLACEHOLDER: &str = "http://127.0.0.1:9000";

fn secret_b64() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(SECRET)
}

fn check(conf: &Path, env: &[(&str, String)]) -> Output {
    Command::new(BIN)
        .args(["check", "--conf"])
        .arg(conf)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove(if env.is_empty() {
            SECRET_ENV
        } else {
            "APIGATE_UNUSED"
        })
        .output()
        .expect("run apigate")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout)
}

/// Every file under `dir`, relative, with `PLACEHOLDER` replaced by `backend`.
fn tree(dir: &Path, backend: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        for e in std::fs::read_dir(dir.join(&rel)).unwrap().flatten() {
            let r = rel.join(e.file_name());
            if e.path().is_dir() {
                todo.push(r);
            } else {
                let text = std::fs::read_to_string(e.path()).unwrap();
                out.push((
                    r.to_string_lossy().into_owned(),
                    text.replace(PLACEHOLDER, backend),
                ));
            }
        }
    }
    out
}

fn conf_dir(files: &[(String, String)]) -> ConfDir {
    let refs: Vec<(&str, String)> = files.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    ConfDir::new(&refs)
}

fn token(aud: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": "https://issuer.example", "aud": aud, "sub": "u1", "exp": now + 600, "iat": now
    });
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

/// The gateway on the fixture, with the secret named value given.
fn serve_fixture(echo: &Echo) -> (ConfDir, Gateway) {
    let mut files = tree(Path::new("tests/fixtures/apim"), &echo.url());
    // The secret as the environment would give it (`check` tests that path); written into
    // the copy so that no test changes the environment other tests' processes inherit.
    for (rel, text) in &mut files {
        if rel.contains("jwt-signing-key") {
            *text = text.replace(
                "\"secret\": true",
                &format!("\"secret\": true, \"value\": \"{}\"", secret_b64()),
            );
        }
    }
    let dir = conf_dir(&files);
    let gw = Gateway::start(&dir.path);
    (dir, gw)
}

/// The echo backend's view of the request's headers (each a list of values), joined.
fn echoed(body: &serde_json::Value) -> std::collections::HashMap<String, String> {
    body["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let values: Vec<&str> = v
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str())
                .collect();
            (k.clone(), values.join(","))
        })
        .collect()
}

fn get(gw: &Gateway, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    request(gw.port, method, path, headers, b"")
}

#[test]
fn the_fixture_checks_and_names_a_missing_secret() {
    let fixture = Path::new("tests/fixtures/apim");
    let o = check(fixture, &[(SECRET_ENV, secret_b64())]);
    assert!(o.status.success(), "{}", stderr(&o));
    // ... or from the local values file APIM_NAMED_VALUES_FILE names.
    let local = ConfDir::new(&[(
        "values.json",
        format!("{{\"jwt-signing-key\": \"{}\"}}", secret_b64()),
    )]);
    let file = local.path.join("values.json").display().to_string();
    let o = check(fixture, &[("APIM_NAMED_VALUES_FILE", file)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = check(fixture, &[]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(
            "apis/users/policy.xml: line 12 <key>: named value {{jwt-signing-key}} is not defined"
        ) && err.contains(SECRET_ENV),
        "{err}"
    );
}

#[test]
fn the_example_checks() {
    let o = check(Path::new("conf/apim-example"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn base_composes_global_product_api_and_operation_in_order() {
    let echo = Echo::start();
    let (_dir, gw) = serve_fixture(&echo);
    let auth = format!("Bearer {}", token("apigate-tests"));
    // get-user: its own X-Layer stands before <base/>, so the API's (after it) wins.
    let r = get(&gw, "GET", "/users/42", &[("Authorization", &auth)]);
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["path"], "/users/42");
    let h = echoed(&body);
    assert_eq!(h["api-version"], "2024-05-01", "global, from a named value");
    assert_eq!(h["x-product"], "starter");
    assert_eq!(h["api-path"], "/users");
    assert_eq!(h["x-layer"], "api");
    assert_eq!(
        Some(h["x-correlation-id"].as_str()),
        r.header("apigw-requestid"),
        "the global policy's fragment"
    );
    assert_eq!(
        r.header("x-powered-by"),
        Some("apigate"),
        "global outbound through every <base/>"
    );
    // list-users: its X-Layer comes after <base/> and wins; the query parameter is added.
    let r = get(&gw, "GET", "/users?page=2", &[("Authorization", &auth)]);
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["path"], "/users/");
    assert_eq!(echoed(&body)["x-layer"], "operation");
    let query = body["query"].as_str().unwrap();
    assert!(
        query.contains("page=2") && query.contains("source=apim"),
        "{query}"
    );
}

#[test]
fn validate_jwt_admits_a_valid_token_and_refuses_others_as_apim_does() {
    let echo = Echo::start();
    let (_dir, gw) = serve_fixture(&echo);
    let want =
        serde_json::json!({"statusCode": 401, "message": "Token missing or invalid (users API)"});
    for headers in [
        vec![],
        vec![("Authorization", format!("Bearer {}", token("someone-else")))],
        vec![("Authorization", "Bearer not.a.token".to_string())],
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = get(&gw, "GET", "/users/42", &h);
        assert_eq!(r.status, 401, "{headers:?}");
        assert_eq!(r.json(), want);
    }
    let auth = format!("Bearer {}", token("apigate-tests"));
    assert_eq!(
        get(&gw, "GET", "/users/42", &[("Authorization", &auth)]).status,
        200
    );
}

#[test]
fn an_api_without_base_skips_the_global_policy_and_rewrites_to_its_backend() {
    let echo = Echo::start();
    let (_dir, gw) = serve_fixture(&echo);
    let r = get(
        &gw,
        "GET",
        "/organizations/acme?x=1",
        &[("X-Debug", "1"), ("Accept", "application/json"), KEY],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(
        body["path"], "/v2/organizations/acme",
        "set-backend-service + rewrite-uri"
    );
    assert_eq!(body["query"], "x=1");
    let h = echoed(&body);
    assert!(
        !h.contains_key("api-version"),
        "no <base/>: the global policy does not run"
    );
    assert!(!h.contains_key("x-debug"), "exists-action=delete");
    assert_eq!(h["x-client"], "127.0.0.1");
    assert_eq!(h["api-path"], "/organizations/acme");
    assert_eq!(r.header("x-served-by"), Some("organizations"));
    assert_eq!(r.header("x-powered-by"), None);
}

#[test]
fn ip_filter_forbids_and_unknown_paths_are_apims_404() {
    let echo = Echo::start();
    let (_dir, gw) = serve_fixture(&echo);
    let r = get(&gw, "DELETE", "/organizations/acme", &[KEY]);
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        serde_json::json!({"statusCode": 403, "message": "Forbidden"})
    );
    let r = get(&gw, "GET", "/nope", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        serde_json::json!({"statusCode": 404, "message": "Resource not found"})
    );
}

#[test]
fn subscription_keys_are_required_by_default_and_checked_as_apim_does() {
    let echo = Echo::start();
    let (_dir, gw) = serve_fixture(&echo);
    let missing = serde_json::json!({"statusCode": 401, "message": "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API."});
    let invalid = serde_json::json!({"statusCode": 401, "message": "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription."});
    let r = get(&gw, "GET", "/organizations/acme", &[]);
    assert_eq!((r.status, r.json()), (401, missing));
    for key in ["wrong", "orgs-old-key"] {
        let r = get(&gw, "GET", "/organizations/acme", &[(KEY.0, key)]);
        assert_eq!((r.status, r.json()), (401, invalid.clone()), "{key}");
    }
    let r = get(
        &gw,
        "GET",
        "/organizations/acme?subscription-key=orgs-dev-key",
        &[("Accept", "*/*")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // The key is checked before the inbound policies: a refused key never meets ip-filter.
    let r = get(&gw, "DELETE", "/organizations/acme", &[(KEY.0, "wrong")]);
    assert_eq!(r.status, 401);
    // subscriptionRequired: false (users) needs none.
    let auth = format!("Bearer {}", token("apigate-tests"));
    assert_eq!(
        get(&gw, "GET", "/users/1", &[("Authorization", &auth)]).status,
        200
    );
}

#[test]
fn set_variable_and_rate_limit_by_key() {
    let echo = Echo::start();
    let (_dir, gw) = serve_fixture(&echo);
    let a = [KEY, ("X-Client-Id", "a"), ("X-Tenant", "acme")];
    for left in ["1", "0"] {
        let r = get(&gw, "GET", "/organizations", &a);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(echoed(&r.json())["x-tenant-seen"], "tenant-acme");
        assert_eq!(r.header("ratelimit-remaining"), Some(left));
    }
    let r = get(&gw, "GET", "/organizations", &a);
    assert_eq!(r.status, 429);
    let retry = r.header("retry-after").unwrap().to_string();
    assert_eq!(
        r.json(),
        serde_json::json!({"statusCode": 429, "message": format!("Rate limit is exceeded. Try again in {retry} seconds.")})
    );
    // Another key has its own count.
    let r = get(&gw, "GET", "/organizations", &[KEY, ("X-Client-Id", "b")]);
    assert_eq!(r.status, 200);
}

#[test]
fn check_header_refuses_with_its_own_status_and_message() {
    let echo = Echo::start();
    let (_dir, gw) = serve_fixture(&echo);
    let want = serde_json::json!({"statusCode": 406, "message": "This API answers JSON only"});
    for accept in [None, Some("text/html")] {
        let mut h = vec![KEY];
        h.extend(accept.map(|a| ("Accept", a)));
        let r = get(&gw, "GET", "/organizations/acme", &h);
        assert_eq!((r.status, r.json()), (406, want.clone()), "{accept:?}");
    }
    for accept in ["*/*", "Application/JSON"] {
        let r = get(
            &gw,
            "GET",
            "/organizations/acme",
            &[KEY, ("Accept", accept)],
        );
        assert_eq!(r.status, 200, "{accept}: {}", r.text());
    }
}

#[test]
fn mock_response_return_response_and_set_status() {
    let echo = Echo::start();
    let (_dir, gw) = serve_fixture(&echo);
    let r = get(&gw, "GET", "/status/ping", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        serde_json::json!({"pong": true}),
        "the specification's example"
    );
    let r = get(&gw, "GET", "/status/gone", &[]);
    assert_eq!(r.status, 410);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.text(), "version 2024-05-01 is retired");
    assert_eq!(
        r.header("x-powered-by"),
        None,
        "outbound does not run on a returned response"
    );
    let r = get(&gw, "GET", "/status/backend", &[]);
    assert_eq!(r.status, 203);
    assert_eq!(r.json()["path"], "/status/backend");
    assert_eq!(r.header("x-powered-by"), Some("apigate"));
}

#[test]
fn quota_by_key_refuses_403_once_used_up() {
    let echo = Echo::start();
    let (_dir, gw) = serve_fixture(&echo);
    for _ in 0..3 {
        assert_eq!(
            get(&gw, "GET", "/status/ping", &[("X-Client-Id", "q")]).status,
            200
        );
    }
    let r = get(&gw, "GET", "/status/ping", &[("X-Client-Id", "q")]);
    assert_eq!(r.status, 403);
    let body = r.json();
    assert_eq!(body["statusCode"], 403);
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Out of call volume quota. Quota will be replenished in 00:")
            || msg.starts_with("Out of call volume quota. Quota will be replenished in 01:00:00"),
        "{msg}"
    );
    assert_eq!(
        get(&gw, "GET", "/status/ping", &[("X-Client-Id", "other")]).status,
        200
    );
}

#[test]
fn on_error_adds_headers_to_error_answers_or_replaces_them() {
    let echo = Echo::start();
    let (_dir, gw) = serve_fixture(&echo);
    // users: <base/> (global's header) then its own.
    let r = get(&gw, "GET", "/users/42", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-error-layer"), Some("global"));
    assert_eq!(r.header("x-error-source"), Some("users"));
    // A successful answer does not run on-error.
    let auth = format!("Bearer {}", token("apigate-tests"));
    let r = get(&gw, "GET", "/users/42", &[("Authorization", &auth)]);
    assert_eq!((r.status, r.header("x-error-layer")), (200, None));
    // organizations' on-error is <base/>: the global header.
    let r = get(&gw, "DELETE", "/organizations/acme", &[KEY]);
    assert_eq!((r.status, r.header("x-error-layer")), (403, Some("global")));
    // remove-member answers its own 404 in place of ip-filter's 403.
    let r = get(&gw, "DELETE", "/organizations/acme/members/7", &[KEY]);
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.text(), "no such member");
}

#[test]
fn sighup_rereads_the_artifacts_and_a_bad_policy_keeps_the_old_one() {
    let echo = Echo::start();
    let (dir, gw) = serve_fixture(&echo);
    let ping = || get(&gw, "GET", "/status/gone", &[]);
    assert_eq!(ping().status, 410);
    let op = "apis/status/operations/gone/policy.xml";
    let good = std::fs::read_to_string(dir.path.join(op)).unwrap();
    dir.write(&[(op, good.replace("code=\"410\"", "code=\"418\""))]);
    gw.signal("HUP");
    gw.wait_log("configuration reloaded", 1);
    assert_eq!(ping().status, 418);
    dir.write(&[(op, good.replace("<base />", "<send-request />"))]);
    gw.signal("HUP");
    gw.wait_log("reload rejected", 1);
    assert!(
        gw.output()
            .contains(&format!("{op}: line 3 <send-request>")),
        "{}",
        gw.output()
    );
    assert_eq!(
        ping().status,
        418,
        "the running configuration keeps serving"
    );
}

#[test]
fn choose_answers_when_its_condition_holds_and_goes_on_otherwise() {
    let echo = Echo::start();
    let (_dir, gw) = serve_fixture(&echo);
    assert_eq!(get(&gw, "GET", "/status/backend", &[]).status, 203);
    assert_eq!(
        get(&gw, "GET", "/status/backend", &[("X-Maintenance", "off")]).status,
        203
    );
    for (path, headers) in [
        ("/status/backend", vec![("X-Maintenance", "on")]),
        ("/status/backend?maintenance=on", vec![]),
    ] {
        let r = get(&gw, "GET", path, &headers);
        assert_eq!(
            (r.status, r.text()),
            (503, "down for maintenance".to_string()),
            "{path}"
        );
    }
}

/// One GET from the loopback address `source` (all of 127.0.0.0/8 is loopback on Linux):
/// the status line and the body.
fn get_from(source: &str, port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let mut s = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (status, body)
    })
}

#[test]
fn ip_filter_allow_refuses_an_address_outside_its_range() {
    let echo = Echo::start();
    let (_dir, gw) = serve_fixture(&echo);
    let h = [KEY, ("Accept", "application/json")];
    // get-organization allows 127.0.0.0 - 127.0.0.255.
    assert_eq!(
        get_from("127.0.0.9", gw.port, "/organizations/acme", &h).0,
        200
    );
    let (status, body) = get_from("127.0.1.1", gw.port, "/organizations/acme", &h);
    assert_eq!(status, 403);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"statusCode": 403, "message": "Forbidden"})
    );
}

#[test]
fn rate_limit_counts_per_subscription_key() {
    let echo = Echo::start();
    let (_dir, gw) = serve_fixture(&echo);
    let h = [KEY, ("Accept", "application/json")];
    for _ in 0..3 {
        assert_eq!(get(&gw, "GET", "/organizations/acme", &h).status, 200);
    }
    let r = get(&gw, "GET", "/organizations/acme", &h);
    assert_eq!(r.status, 429);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .starts_with("Rate limit is exceeded."));
    // Refused before the limit (no key): not counted, and still APIM's 401.
    assert_eq!(get(&gw, "GET", "/organizations/acme", &[]).status, 401);
}

/// A minimal artifacts directory with `policy` as its global policy.
fn with_global_policy(policy: &str) -> ConfDir {
    ConfDir::new(&[
        ("policy.xml", policy.to_string()),
        (
            "apis/a/apiInformation.json",
            r#"{"properties": {"path": "a", "serviceUrl": "http://127.0.0.1:9", "subscriptionRequired": false}}"#.to_string(),
        ),
        (
            "apis/a/specification.json",
            r#"{"openapi": "3.0.1", "info": {"title": "a", "version": "1"}, "paths": {"/": {"get": {"operationId": "get"}}}}"#.to_string(),
        ),
    ])
}

#[test]
fn unsupported_constructs_are_load_errors_with_file_and_line() {
    let dir = with_global_policy(
        "<policies>\n  <inbound>\n    <set-header name=\"A\" exists-action=\"skip\"><value>x</value></set-header>\n    <cache-lookup vary-by-developer=\"false\"/>\n    <set-header name=\"B\"><value>@(DateTime.UtcNow.ToString())</value></set-header>\n  </inbound>\n</policies>",
    );
    let o = check(&dir.path, &[]);
    assert!(!o.status.success());
    let err = stderr(&o);
    for want in [
        "policy.xml: line 3 <set-header>: exists-action=\"skip\" is not supported",
        "policy.xml: line 4 <cache-lookup>: <cache-lookup> in <inbound> is not supported",
        "policy.xml: line 5 <value>: \"DateTime.UtcNow.ToString()\" is not in the supported expression subset",
    ] {
        assert!(err.contains(want), "{want:?} not in:\n{err}");
    }
}

#[test]
fn other_api_kinds_are_named_and_segment_versions_join_the_path() {
    let dir = with_global_policy("<policies/>");
    dir.write(&[
        (
            "apis/g/apiInformation.json",
            r#"{"properties": {"path": "g", "type": "graphql", "subscriptionRequired": false}}"#.to_string(),
        ),
        (
            "apis/v/apiInformation.json",
            r#"{"properties": {"path": "things", "apiVersion": "v2", "apiVersionSetId": "/apiVersionSets/vs", "serviceUrl": "http://127.0.0.1:9", "subscriptionRequired": false}}"#.to_string(),
        ),
        (
            "apis/v/specification.json",
            r#"{"openapi": "3.0.1", "info": {"title": "v", "version": "2"}, "paths": {"/x": {"get": {"operationId": "x"}}, "/files/*": {"get": {"operationId": "files"}}}}"#.to_string(),
        ),
        (
            "version sets/vs/versionSetInformation.json",
            r#"{"properties": {"displayName": "vs", "versioningScheme": "Segment"}}"#.to_string(),
        ),
    ]);
    let o = Command::new(BIN)
        .args(["check", "--verbose", "--conf"])
        .arg(&dir.path)
        .output()
        .unwrap();
    let out = stderr(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("apis/g/apiInformation.json: a graphql API is not served"),
        "{out}"
    );
    let o = Command::new(BIN)
        .args(["export", "--format", "openapi", "--conf"])
        .arg(&dir.path)
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(doc["paths"].get("/things/v2/x").is_some(), "{doc}");
    // APIM's wildcard template is a greedy route, forwarded whole.
    assert!(
        doc["paths"].get("/things/v2/files/{proxy+}").is_some(),
        "{doc}"
    );
    let files = doc["components"]["x-amazon-apigateway-integrations"]["v.files"]["uri"].as_str();
    assert_eq!(files, Some("http://127.0.0.1:9/files/{proxy}"), "{doc}");
    // Versions chosen by header or query are refused, naming the set.
    dir.write(&[(
        "version sets/vs/versionSetInformation.json",
        r#"{"properties": {"versioningScheme": "Header", "versionHeaderName": "Api-Version"}}"#
            .to_string(),
    )]);
    let err = stderr(&check(&dir.path, &[]));
    assert!(
        err.contains(
            "apis/v/apiInformation.json: properties.apiVersionSetId: versioningScheme \"Header\""
        ),
        "{err}"
    );
}

/// `../shared/realworld/apim-snippets`, or `None` (with a message) when `../shared` is absent.
fn snippets() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/realworld/apim-snippets");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is absent", dir.display());
        None
    }
}

#[test]
fn every_azure_snippet_loads_or_names_the_unsupported_construct() {
    let Some(dir) = snippets() else {
        return;
    };
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    names.sort();
    assert!(names.len() >= 50, "{} snippets", names.len());
    let (mut loaded, mut refused) = (0, 0);
    for snippet in &names {
        let text = std::fs::read_to_string(snippet).unwrap();
        // A fragment is served where a policy includes it.
        let conf = if text.trim_start().starts_with("<fragment") {
            let conf = with_global_policy(
                "<policies><inbound><include-fragment fragment-id=\"f\"/></inbound></policies>",
            );
            conf.write(&[("policy fragments/f/policy.xml", text)]);
            conf
        } else {
            with_global_policy(&text)
        };
        let o = check(&conf.path, &[]);
        let out = stderr(&o);
        if o.status.success() {
            loaded += 1;
            continue;
        }
        refused += 1;
        // Every error names the file and, for anything in a policy, the line and element.
        let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("  ")).collect();
        assert!(!lines.is_empty(), "{}: {out}", snippet.display());
        for l in lines {
            let l = l.trim_start();
            assert!(
                l.starts_with("policy.xml: line ")
                    || l.starts_with("policy fragments/f/policy.xml: line "),
                "{}: an error without file and line: {l}",
                snippet.display()
            );
        }
    }
    eprintln!("{loaded} snippets load, {refused} are refused naming the construct");
}
