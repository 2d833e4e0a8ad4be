//! Lambda-backed routes (GATEWAY.md 11) through the real gateway and real runtimes: Python
//! handlers run by `awslambdaric` (installed by scripts/test.sh), one written with AWS
//! Lambda Powertools, and a `provided`-style shell `bootstrap`. No fake Lambda.

mod common;

use common::{request, ConfDir, Gateway};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lambda")
}

fn python_dir() -> String {
    fixtures().join("python").display().to_string()
}

fn function(handler: &str, extra: Value) -> String {
    let mut v = json!({
        "CodeUri": python_dir(),
        "Handler": handler,
        "Runtime": "python3.12",
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in e {
            o.insert(k.clone(), val.clone());
        }
    }
    v.to_string()
}

fn lambda_integration(function: &str, extra: Value) -> String {
    let mut v = json!({
        "IntegrationType": "AWS_PROXY",
        "IntegrationUri": format!("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:{function}/invocations"),
        "PayloadFormatVersion": "2.0",
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in e {
            o.insert(k.clone(), val.clone());
        }
    }
    v.to_string()
}

fn route(key: &str, integration: &str) -> String {
    json!({"RouteKey": key, "Target": format!("integrations/{integration}")}).to_string()
}

/// Each key AWS's example shows is in `ours`, with the same JSON type (AWS's `null` stands
/// for "absent in this example": any value).
fn same_shape(aws: &Value, ours: &Value, at: &str, skip: &[&str]) {
    if skip.contains(&at) || aws.is_null() {
        return;
    }
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    assert_eq!(kind(aws), kind(ours), "{at}: AWS {aws}, apigate {ours}");
    if let (Value::Object(a), Value::Object(o)) = (aws, ours) {
        for (k, v) in a {
            let path = format!("{at}.{k}");
            let Some(mine) = o.get(k) else {
                assert!(
                    skip.contains(&path.as_str()),
                    "{path}: missing in apigate's event {ours}"
                );
                continue;
            };
            same_shape(v, mine, &path, skip);
        }
    }
}

fn stages_with_vars() -> (&'static str, String) {
    (
        "stages/default.json",
        json!({"Name": "$default", "StageVariables": {"stageVariable1": "value1", "stageVariable2": "value2"}}).to_string(),
    )
}

#[test]
fn payload_2_0_event_matches_aws_example_field_by_field() {
    let conf = ConfDir::new(&[
        ("functions/echo.json", function("app.echo", json!({}))),
        ("integrations/e.json", lambda_integration("echo", json!({}))),
        ("routes/r.json", route("POST /my/{parameter1}", "e")),
        stages_with_vars(),
    ]);
    let gw = Gateway::start(&conf.path);
    let r = request(
        gw.port,
        "POST",
        "/my/path?parameter1=value1&parameter1=value2&parameter2=value",
        &[
            ("Cookie", "cookie1; cookie2"),
            ("header1", "value1"),
            ("Header2", "value1"),
            ("header2", "value2"),
            ("User-Agent", "agent"),
            ("Content-Type", "text/plain"),
        ],
        b"Hello from Lambda",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let event = r.json()["event"].clone();
    let aws: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("aws-v2-event.json")).unwrap(),
    )
    .unwrap();
    // No authorizer on this route: AWS leaves `authorizer` out.
    same_shape(&aws, &event, "", &[".requestContext.authorizer"]);
    for field in [
        "version",
        "rawPath",
        "rawQueryString",
        "cookies",
        "queryStringParameters",
        "body",
        "isBase64Encoded",
        "stageVariables",
    ] {
        assert_eq!(event[field], aws[field], "{field}");
    }
    assert_eq!(event["pathParameters"], json!({"parameter1": "path"}));
    assert_eq!(event["headers"]["header1"], "value1");
    assert_eq!(
        event["headers"]["header2"], "value1,value2",
        "repeated headers comma-joined"
    );
    assert!(
        event["headers"].get("cookie").is_none(),
        "cookies are not headers in 2.0"
    );
    let ctx = &event["requestContext"];
    assert_eq!(
        ctx["http"],
        json!({"method": "POST", "path": "/my/path", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "agent"})
    );
    assert_eq!(ctx["routeKey"], "POST /my/{parameter1}");
    assert_eq!(event["routeKey"], "POST /my/{parameter1}");
    assert_eq!(ctx["stage"], "$default");
    assert_eq!(ctx["domainName"], "gateway.test");
    assert_eq!(ctx["domainPrefix"], "gateway");
    assert_eq!(ctx["requestId"].as_str(), r.header("apigw-requestid"));
    let epoch = ctx["timeEpoch"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(now.abs_diff(epoch) < 60_000, "timeEpoch {epoch} is not now");
    assert!(ctx["time"].as_str().unwrap().ends_with(" +0000"));
}

#[test]
fn payload_1_0_event_matches_aws_example_and_its_answer_keeps_multi_value_headers() {
    let conf = ConfDir::new(&[
        ("functions/v1.json", function("app.v1", json!({}))),
        (
            "integrations/v.json",
            lambda_integration("v1", json!({"PayloadFormatVersion": "1.0"})),
        ),
        ("routes/r.json", route("GET /my/path", "v")),
    ]);
    let gw = Gateway::start(&conf.path);
    let r = request(
        gw.port,
        "GET",
        "/my/path?parameter1=value1&parameter1=value2&parameter2=value",
        &[
            ("header1", "value1"),
            ("header2", "value1"),
            ("header2", "value2"),
            ("User-Agent", "user-agent"),
        ],
        b"",
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let cookies: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    let multi: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("x-multi"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(multi, ["1", "2"]);
    assert_eq!(r.header("x-single"), Some("s"));
    let event = r.json();
    let aws: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("aws-v1-event.json")).unwrap(),
    )
    .unwrap();
    // A GET without a body: `body` is null (checked below).
    same_shape(&aws, &event, "", &[".body"]);
    for field in [
        "version",
        "resource",
        "path",
        "httpMethod",
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "pathParameters",
        "stageVariables",
    ] {
        assert_eq!(event[field], aws[field], "{field}");
    }
    assert_eq!(
        event["multiValueHeaders"]["header2"],
        json!(["value1", "value2"])
    );
    assert_eq!(
        event["headers"]["header2"], "value2",
        "1.0 headers: the last value"
    );
    assert_eq!(event["body"], Value::Null);
    let ctx = &event["requestContext"];
    assert_eq!(ctx["identity"]["sourceIp"], "127.0.0.1");
    assert_eq!(ctx["identity"]["userAgent"], "user-agent");
    assert_eq!(ctx["authorizer"], aws["requestContext"]["authorizer"]);
    assert_eq!(ctx["resourcePath"], "/my/path");
    assert_eq!(ctx["httpMethod"], "GET");
}

#[test]
fn functions_run_with_lambdas_environment_and_context_and_stay_warm() {
    let conf = ConfDir::new(&[
        (
            "functions/echo.json",
            function(
                "app.echo",
                json!({"FunctionName": "EchoFn", "MemorySize": 256, "Timeout": 7,
                       "Environment": {"Variables": {"GREETING": "hi", "AWS_REGION": "ignored"}}}),
            ),
        ),
        (
            "integrations/e.json",
            lambda_integration("EchoFn", json!({})),
        ),
        ("routes/r.json", route("GET /env", "e")),
    ]);
    let gw = Gateway::start(&conf.path);
    let r = gw.get("/env");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let env = &v["env"];
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "EchoFn");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(
        env["AWS_REGION"], "us-east-1",
        "reserved variables cannot be overridden"
    );
    assert_eq!(env["AWS_DEFAULT_REGION"], "us-east-1");
    assert_eq!(env["AWS_EXECUTION_ENV"], "AWS_Lambda_python3.12");
    assert_eq!(env["_HANDLER"], "app.echo");
    assert_eq!(env["TZ"], ":UTC");
    assert_eq!(env["GREETING"], "hi");
    let root = std::fs::canonicalize(python_dir()).unwrap();
    assert_eq!(env["LAMBDA_TASK_ROOT"], root.display().to_string());
    assert_eq!(v["cwd"], root.display().to_string());
    assert_eq!(
        v["arn"],
        "arn:aws:lambda:us-east-1:123456789012:function:EchoFn"
    );
    let remaining = v["remainingMs"].as_u64().unwrap();
    assert!(remaining > 0 && remaining <= 7_000, "remaining {remaining}");
    // Warm: the same instance answers the next request.
    let again = gw.get("/env").json();
    assert_eq!(again["pid"], v["pid"]);
    assert_ne!(again["requestId"], v["requestId"]);
    let m = gw.scrape();
    let series = |s: &str| common::metric_value(&m, s).unwrap_or_else(|| panic!("{s}:\n{m}"));
    assert_eq!(
        series("apigate_lambda_cold_starts_total{function=\"EchoFn\"}"),
        1.0
    );
    assert_eq!(
        series("apigate_lambda_invocations_total{function=\"EchoFn\",outcome=\"success\"}"),
        2.0
    );
    assert_eq!(
        series("apigate_lambda_invocation_duration_seconds_count{function=\"EchoFn\"}"),
        2.0
    );
    assert_eq!(
        series("apigate_lambda_instances{function=\"EchoFn\",state=\"idle\"}"),
        1.0
    );
    assert_eq!(
        series("apigate_lambda_instances{function=\"EchoFn\",state=\"busy\"}"),
        0.0
    );
    assert_eq!(
        series("apigate_lambda_queue_wait_seconds_count{function=\"EchoFn\"}"),
        2.0
    );
}

fn answers_gateway(extra_fn: Value, extra_int: Value) -> (ConfDir, Gateway) {
    let conf = ConfDir::new(&[
        ("functions/answers.json", function("app.answers", extra_fn)),
        (
            "integrations/a.json",
            lambda_integration("answers", extra_int),
        ),
        ("routes/r.json", route("ANY /a", "a")),
    ]);
    let gw = Gateway::start(&conf.path);
    (conf, gw)
}

#[test]
fn payload_2_0_answers_are_read_as_aws_reads_them() {
    let (_conf, gw) = answers_gateway(json!({}), json!({}));
    let r = gw.get("/a?kind=cookies");
    assert_eq!(r.status, 201);
    assert_eq!(r.text(), "made");
    assert_eq!(r.header("x-one"), Some("1"));
    let cookies: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(cookies, ["a=1; Path=/", "b=2"]);

    // Valid JSON without statusCode: 200, application/json, the payload as the body.
    let r = gw.get("/a?kind=plain");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), json!({"hello": "world"}));
    let r = gw.get("/a?kind=string");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "\"just text\"");

    let r = gw.get("/a?kind=binary");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, (0..=255u8).collect::<Vec<u8>>());

    // A binary request body reaches the function base64-encoded, and back.
    let bytes: Vec<u8> = (0..=255u8).rev().collect();
    let r = request(
        gw.port,
        "POST",
        "/a?kind=echo-body",
        &[("Content-Type", "application/octet-stream")],
        &bytes,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, bytes);
    // A text body as text.
    let r = request(
        gw.port,
        "POST",
        "/a?kind=echo-body",
        &[("Content-Type", "application/json")],
        b"{\"x\":1}",
    );
    assert_eq!(r.text(), "{\"x\":1}");

    // An answer API Gateway cannot read.
    let r = gw.get("/a?kind=bad-status");
    assert_eq!(r.status, 500);
    assert_eq!(r.json(), json!({"message": "Internal Server Error"}));
}

#[test]
fn function_errors_crashes_and_timeouts_answer_as_aws_and_instances_are_replaced() {
    let (_conf, gw) = answers_gateway(json!({"Timeout": 1, "Instances": 1}), json!({}));
    let r = gw.get("/a?kind=raise");
    assert_eq!(r.status, 500);
    assert_eq!(r.json(), json!({"message": "Internal Server Error"}));
    let pid = gw.get("/a?kind=pid").text();
    // A function error leaves the instance warm.
    assert_eq!(gw.get("/a?kind=pid").text(), pid);

    let r = gw.get("/a?kind=crash");
    assert_eq!(r.status, 500);
    assert_eq!(r.json(), json!({"message": "Internal Server Error"}));
    let after_crash = gw.get("/a?kind=pid");
    assert_eq!(after_crash.status, 200);
    assert_ne!(
        after_crash.text(),
        pid,
        "a new instance replaced the crashed one"
    );

    // Over the function's own Timeout (1 s): a function error, and the instance is ended.
    let before = after_crash.text();
    let r = gw.get("/a?kind=sleep");
    assert_eq!(r.status, 500);
    let replaced = gw.get("/a?kind=pid");
    assert_eq!(replaced.status, 200);
    assert_ne!(replaced.text(), before);
    let old: i32 = before.parse().unwrap();
    wait_gone(old);
    assert!(
        gw.output().contains("[answers] crashing now"),
        "{}",
        gw.output()
    );
}

#[test]
fn integration_timeout_is_503() {
    let (_conf, gw) = answers_gateway(json!({"Timeout": 10}), json!({"TimeoutInMillis": 2000}));
    let r = gw.get("/a?kind=sleep");
    assert_eq!(r.status, 503);
    assert_eq!(r.json(), json!({"message": "Service Unavailable"}));
    assert_eq!(gw.get("/a?kind=pid").status, 200);
}

#[test]
fn bodies_over_lambdas_payload_limit_get_413() {
    let conf = ConfDir::new(&[
        (
            "gateway.json",
            json!({"MaxBodyBytes": 20 * 1024 * 1024}).to_string(),
        ),
        ("functions/answers.json", function("app.answers", json!({}))),
        (
            "integrations/a.json",
            lambda_integration("answers", json!({})),
        ),
        ("routes/r.json", route("ANY /a", "a")),
    ]);
    let gw = Gateway::start(&conf.path);
    let big = vec![b'x'; 6 * 1024 * 1024 + 1];
    let r = request(
        gw.port,
        "POST",
        "/a?kind=echo-body",
        &[("Content-Type", "text/plain")],
        &big,
    );
    assert_eq!(r.status, 413);
    // Chunked: no length up front.
    let mut c = common::Conn::open(gw.port);
    c.send(
        "POST",
        "/a?kind=echo-body",
        &[
            ("Transfer-Encoding", "chunked"),
            ("Content-Type", "text/plain"),
        ],
        b"",
    );
    let chunk = vec![b'y'; 1024 * 1024];
    for _ in 0..7 {
        c.send_raw(format!("{:x}\r\n", chunk.len()).as_bytes());
        c.send_raw(&chunk);
        c.send_raw(b"\r\n");
    }
    c.send_raw(b"0\r\n\r\n");
    assert_eq!(c.read_response(false).status, 413);
}

#[test]
fn invocations_beyond_the_instances_wait_in_the_queue() {
    let conf = ConfDir::new(&[
        (
            "functions/slow.json",
            function("app.slow", json!({"Instances": 2})),
        ),
        ("integrations/s.json", lambda_integration("slow", json!({}))),
        ("routes/r.json", route("GET /slow", "s")),
    ]);
    let gw = Gateway::start(&conf.path);
    let port = gw.port;
    let threads: Vec<_> = (0..6)
        .map(|_| std::thread::spawn(move || request(port, "GET", "/slow", &[], b"")))
        .collect();
    let mut pids = std::collections::BTreeSet::new();
    for t in threads {
        let r = t.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        pids.insert(r.text());
    }
    assert!(
        !pids.is_empty() && pids.len() <= 2,
        "at most 2 instances: {pids:?}"
    );
}

#[test]
fn powertools_resolver_parses_apigates_events() {
    let conf = ConfDir::new(&[
        (
            "functions/pt.json",
            function("powertools_app.handler", json!({"Timeout": 10})),
        ),
        ("integrations/p.json", lambda_integration("pt", json!({}))),
        ("routes/r.json", route("ANY /pt/{proxy+}", "p")),
    ]);
    let gw = Gateway::start(&conf.path);
    let r = request(
        gw.port,
        "GET",
        "/pt/items/42?q=x%20y",
        &[("Cookie", "c1=1; c2=2"), ("X-Test", "t")],
        b"",
    );
    assert_eq!(r.status, 200, "{}\n{}", r.text(), gw.output());
    assert_eq!(
        r.json(),
        json!({"item": "42", "q": "x y", "cookies": ["c1=1", "c2=2"], "method": "GET", "rawPath": "/pt/items/42", "header": "t"})
    );
    let r = request(
        gw.port,
        "POST",
        "/pt/items",
        &[("Content-Type", "application/json")],
        b"{\"a\":[1,2]}",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json(), json!({"got": {"a": [1, 2]}}));
    assert_eq!(gw.get("/pt/nothing").status, 404);
}

#[test]
fn provided_runtime_runs_its_bootstrap() {
    let conf = ConfDir::new(&[
        (
            "functions/sh.json",
            json!({"CodeUri": fixtures().join("provided").display().to_string(), "Handler": "my.handler", "Runtime": "provided.al2023"}).to_string(),
        ),
        ("integrations/b.json", lambda_integration("sh", json!({}))),
        ("routes/r.json", route("GET /b", "b")),
    ]);
    let gw = Gateway::start(&conf.path);
    let r = gw.get("/b");
    assert_eq!(r.status, 200, "{}", gw.output());
    assert!(
        r.text().starts_with("bootstrap my.handler "),
        "{}",
        r.text()
    );
    assert_eq!(r.header("content-type"), Some("text/plain"));
}

#[test]
fn a_missing_runtime_client_is_a_config_error_saying_what_to_install() {
    let conf = ConfDir::new(&[
        ("functions/echo.json", function("app.echo", json!({}))),
        ("integrations/e.json", lambda_integration("echo", json!({}))),
        ("routes/r.json", route("GET /e", "e")),
    ]);
    let out = std::process::Command::new(common::BIN)
        .args(["check", "--conf"])
        .arg(&conf.path)
        .env("APIGATE_PYTHON", "/nonexistent/python3")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("functions/echo.json: Runtime:"), "{text}");
    assert!(text.contains("pip install awslambdaric"), "{text}");

    // An integration naming a function that is not defined.
    let conf = ConfDir::new(&[
        ("integrations/e.json", lambda_integration("nope", json!({}))),
        ("routes/r.json", route("GET /e", "e")),
    ]);
    let out = std::process::Command::new(common::BIN)
        .args(["check", "--conf"])
        .arg(&conf.path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("integrations/e.json: IntegrationUri: function \"nope\" is not defined"),
        "{text}"
    );
}

fn alive(pid: i32) -> bool {
    // Zombies are not running: read the state.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
        .unwrap_or(false)
}

fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(Instant::now() < deadline, "pid {pid} still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_drains_then_ends_every_instance() {
    let conf = ConfDir::new(&[
        (
            "functions/slow.json",
            function("app.slow", json!({"Instances": 2})),
        ),
        ("integrations/s.json", lambda_integration("slow", json!({}))),
        ("routes/r.json", route("GET /slow", "s")),
    ]);
    let mut gw = Gateway::start(&conf.path);
    let port = gw.port;
    let a = std::thread::spawn(move || request(port, "GET", "/slow", &[], b""));
    let b = std::thread::spawn(move || request(port, "GET", "/slow", &[], b""));
    let pids: Vec<i32> = [a, b]
        .into_iter()
        .map(|t| t.join().unwrap().text().parse().unwrap())
        .collect();
    for p in &pids {
        assert!(alive(*p));
    }
    // One in flight while SIGTERM arrives: it is answered.
    let inflight = std::thread::spawn(move || request(port, "GET", "/slow", &[], b""));
    gw.wait_metric("apigate_requests_in_flight", 1.0);
    gw.signal("TERM");
    assert_eq!(inflight.join().unwrap().status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "gateway did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in pids {
        wait_gone(p);
    }
}

#[test]
fn the_lambda_example_answers() {
    let conf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conf/lambda-example");
    let gw = Gateway::start(&conf);
    let r = gw.get("/hello?name=ci");
    assert_eq!(r.status, 200, "{}", gw.output());
    assert_eq!(r.json(), json!({"message": "hello ci", "path": "/hello"}));
}

/// The same project as its SAM template: the function's CodeUri, Handler and Runtime are
/// read from `template.yaml` and run locally; the route comes from the HttpApi event.
#[test]
fn the_lambda_example_template_answers() {
    let conf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conf/lambda-example/template.yaml");
    let gw = Gateway::start(&conf);
    let r = gw.get("/hello?name=sam");
    assert_eq!(r.status, 200, "{}", gw.output());
    assert_eq!(r.json(), json!({"message": "hello sam", "path": "/hello"}));
    assert!(
        !gw.output().contains("not served"),
        "the function runs: {}",
        gw.output()
    );
}

#[test]
fn jwt_claims_and_scopes_reach_the_event_as_aws_puts_them() {
    use base64::Engine;
    const SECRET: &[u8] = b"an HS256 secret of 32+ bytes, for tests only";
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SECRET);
    let conf = ConfDir::new(&[
        ("functions/echo.json", function("app.echo", json!({}))),
        ("integrations/e.json", lambda_integration("echo", json!({}))),
        (
            "routes/r.json",
            json!({"RouteKey": "GET /me", "Target": "integrations/e", "AuthorizationType": "JWT",
                   "AuthorizerId": "auth", "AuthorizationScopes": ["read"]})
            .to_string(),
        ),
        (
            "authorizers/auth.json",
            json!({"AuthorizerType": "JWT", "IdentitySource": ["$request.header.Authorization"],
                   "JwtConfiguration": {"Issuer": "https://issuer.test", "Audience": ["api"]},
                   "Jwks": {"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": k}]}})
            .to_string(),
        ),
    ]);
    let gw = Gateway::start(&conf.path);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some("k1".into());
    let claims = json!({"sub": "u1", "iss": "https://issuer.test", "aud": "api", "exp": exp,
                        "scope": "read write", "n": 7});
    let token =
        jsonwebtoken::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_secret(SECRET)).unwrap();
    assert_eq!(
        gw.get("/me").status,
        401,
        "the function is not called without a token"
    );
    let bearer = format!("Bearer {token}");
    let r = request(gw.port, "GET", "/me", &[("Authorization", &bearer)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let jwt = &r.json()["event"]["requestContext"]["authorizer"]["jwt"];
    assert_eq!(jwt["claims"]["sub"], "u1");
    assert_eq!(jwt["claims"]["exp"], exp.to_string(), "claims are strings");
    assert_eq!(jwt["claims"]["n"], "7");
    assert_eq!(jwt["scopes"], json!(["read", "write"]));
}

/// A CloudFormation function with inline code (`Code.ZipFile`), as the developer guide's
/// quick-create templates write it: run locally from `index.py`, written beside the template.
#[test]
fn inline_zipfile_code_runs_locally() {
    let conf = ConfDir::new(&[(
        "template.yaml",
        r#"AWSTemplateFormatVersion: '2010-09-09'
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties:
      Name: inline
      ProtocolType: HTTP
      Target: !GetAtt Fn.Arn
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: python3.12
      Handler: index.handler
      Code:
        ZipFile: |
          import json
          def handler(event, context):
              return {"statusCode": 200, "body": json.dumps({"inline": event["rawPath"]})}
"#
        .to_string(),
    )]);
    let template = conf.path.join("template.yaml");
    let gw = Gateway::start(&template);
    let r = gw.get("/hi");
    assert_eq!(r.status, 200, "{}", gw.output());
    assert_eq!(r.json(), json!({"inline": "/hi"}));
    assert!(conf.path.join(".apigate/inline/Fn/index.py").is_file());
}
