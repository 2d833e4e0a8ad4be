//! Remote functions (GATEWAY.md 11): an AWS_PROXY integration whose function is not defined
//! locally is invoked through the Lambda Invoke API at `gateway.json` `LambdaEndpoint`.
//! The endpoint is a real HTTP server on loopback, `tests/fixtures/lambda/invoke_api.py`,
//! standing in for `sam local start-lambda`: it serves the Invoke API path and runs the
//! same Python handlers tests/lambda.rs runs under awslambdaric.

mod common;

use common::{free_port, request, ConfDir, Conn, Gateway, BIN};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lambda")
}

/// The Invoke API server, with `NAME=module.function` handlers from the Python fixtures.
struct InvokeApi {
    child: Child,
    port: u16,
}

impl InvokeApi {
    fn start(handlers: &[&str]) -> InvokeApi {
        let python = std::env::var("APIGATE_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(python)
            .arg(fixtures().join("invoke_api.py"))
            .arg(fixtures().join("python"))
            .args(handlers)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 invoke_api.py");
        // Its first line is the port it bound: ready once printed.
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let port = line.trim().parse().expect("invoke_api.py prints its port");
        InvokeApi { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// TCP connections the server accepted.
    fn connections(&self) -> u64 {
        let r = request(self.port, "GET", "/stats", &[], b"");
        r.json()["connections"].as_u64().unwrap()
    }
}

impl Drop for InvokeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn integration(function: &str, extra: Value) -> String {
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

fn conf(endpoint: &str, function: &str, extra: Value) -> ConfDir {
    ConfDir::new(&[
        (
            "gateway.json",
            json!({"LambdaEndpoint": endpoint}).to_string(),
        ),
        ("integrations/f.json", integration(function, extra)),
        (
            "routes/r.json",
            json!({"RouteKey": "ANY /{proxy+}", "Target": "integrations/f"}).to_string(),
        ),
    ])
}

#[test]
fn remote_function_gets_the_event_and_answers() {
    let api = InvokeApi::start(&["echo-fn=app.echo"]);
    let c = conf(&api.url(), "echo-fn", json!({}));
    let gw = Gateway::start(&c.path);
    let r = request(
        gw.port,
        "POST",
        "/a/b?x=1",
        &[("Content-Type", "text/plain")],
        b"hi",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let event = &r.json()["event"];
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["rawPath"], "/a/b");
    assert_eq!(event["queryStringParameters"]["x"], "1");
    assert_eq!(event["body"], "hi");
    assert_eq!(event["pathParameters"]["proxy"], "a/b");
    assert_eq!(event["requestContext"]["http"]["method"], "POST");
}

#[test]
fn remote_function_answers_are_read_as_aws_reads_them() {
    let api = InvokeApi::start(&["answers=app.answers"]);
    let c = conf(&api.url(), "answers", json!({}));
    let gw = Gateway::start(&c.path);
    let r = gw.get("/x?kind=cookies");
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.text(), "made");
    let r = gw.get("/x?kind=plain");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"hello": "world"}));
}

#[test]
fn function_error_is_500() {
    let api = InvokeApi::start(&["answers=app.answers"]);
    let c = conf(&api.url(), "answers", json!({}));
    let gw = Gateway::start(&c.path);
    let r = gw.get("/x?kind=raise");
    assert_eq!(r.status, 500);
    assert_eq!(r.json(), json!({"message": "Internal Server Error"}));
}

#[test]
fn unknown_remote_function_is_500() {
    // The endpoint answers 404 ResourceNotFoundException: an invocation failure.
    let api = InvokeApi::start(&["answers=app.answers"]);
    let c = conf(&api.url(), "nobody", json!({}));
    let gw = Gateway::start(&c.path);
    let r = gw.get("/x");
    assert_eq!(r.status, 500);
    assert_eq!(r.json(), json!({"message": "Internal Server Error"}));
}

#[test]
fn timeout_in_millis_passed_is_503() {
    let api = InvokeApi::start(&["answers=app.answers"]);
    let c = conf(&api.url(), "answers", json!({"TimeoutInMillis": 300}));
    let gw = Gateway::start(&c.path);
    let r = gw.get("/x?kind=sleep");
    assert_eq!(r.status, 503);
    assert_eq!(r.json(), json!({"message": "Service Unavailable"}));
    // The timed-out connection was dropped, not pooled: the next call answers.
    let r = gw.get("/x?kind=plain");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn unreachable_endpoint_is_500() {
    // Nothing listens on this port (free_port binds and releases it).
    let port = free_port();
    let c = conf(&format!("http://127.0.0.1:{port}"), "anything", json!({}));
    let gw = Gateway::start(&c.path);
    let r = gw.get("/x");
    assert_eq!(r.status, 500);
    assert_eq!(r.json(), json!({"message": "Internal Server Error"}));
    assert!(gw.output().contains("Invoke API failed"), "{}", gw.output());
}

#[test]
fn connections_to_the_endpoint_are_reused() {
    let api = InvokeApi::start(&["answers=app.answers"]);
    let c = conf(&api.url(), "answers", json!({}));
    let gw = Gateway::start(&c.path);
    // One client connection, requests one after another: one pooled connection serves all.
    let mut conn = Conn::open(gw.port);
    for _ in 0..10 {
        conn.send("GET", "/x?kind=plain", &[], b"");
        let r = conn.read_response(false);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Ten invocations plus this /stats request: two connections, not eleven.
    assert_eq!(api.connections(), 2);
}

#[test]
fn bad_endpoint_and_undefined_function_are_config_errors() {
    let c = conf("https://127.0.0.1:1", "f", json!({}));
    let out = Command::new(BIN)
        .args(["check", "--conf"])
        .arg(&c.path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("gateway.json") && text.contains("LambdaEndpoint"),
        "{text}"
    );

    // Without LambdaEndpoint, a function not defined locally is still an error that says
    // how to fix it.
    let c = ConfDir::new(&[
        ("integrations/f.json", integration("f", json!({}))),
        (
            "routes/r.json",
            json!({"RouteKey": "GET /x", "Target": "integrations/f"}).to_string(),
        ),
    ]);
    let out = Command::new(BIN)
        .args(["check", "--conf"])
        .arg(&c.path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("LambdaEndpoint"), "{text}");
}

/// An OpenAPI document whose Lambda authorizer and Lambda integration name functions by
/// ARN only: with `--lambda-endpoint` both are invoked through the Invoke API (as with
/// `sam local start-lambda`), and the route is served; without it `check` says why not.
#[test]
fn an_openapi_documents_functions_and_authorizer_run_behind_lambda_endpoint() {
    let api = InvokeApi::start(&["auth=authorizers.simple", "echo=app.echo"]);
    let arn = |f: &str| {
        format!("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:{f}/invocations")
    };
    let doc = json!({
        "openapi": "3.0.1",
        "info": {"title": "remote", "version": "1"},
        "paths": {"/me": {"get": {
            "security": [{"tokens": []}],
            "x-amazon-apigateway-integration": {
                "type": "aws_proxy", "httpMethod": "POST", "uri": arn("echo"),
                "payloadFormatVersion": "2.0"},
            "responses": {"default": {"description": "ok"}}}}},
        "components": {"securitySchemes": {"tokens": {
            "type": "apiKey", "name": "Authorization", "in": "header",
            "x-amazon-apigateway-authorizer": {
                "type": "request", "identitySource": "$request.header.Authorization",
                "authorizerUri": arn("auth"), "authorizerPayloadFormatVersion": "2.0",
                "enableSimpleResponses": true, "authorizerResultTtlInSeconds": 0}}}},
    });
    let dir = ConfDir::new(&[("api.json", doc.to_string())]);
    let file = dir.path.join("api.json");
    let check = |extra: &[&str]| {
        let o = Command::new(BIN)
            .args(["check", "--conf"])
            .arg(&file)
            .args(extra)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let without = check(&[]);
    assert!(
        without.contains("0 route(s) served")
            && without.contains(r#"Lambda authorizer tokens: function "auth" cannot run here"#)
            && without.contains("--lambda-endpoint"),
        "{without}"
    );
    let with = check(&["--lambda-endpoint", &api.url()]);
    assert!(
        with.contains("1 route(s) served") && !with.contains("not served"),
        "{with}"
    );

    let gw = Gateway::start_with(&file, &["--lambda-endpoint", &api.url()]);
    let r = request(gw.port, "GET", "/me", &[], b"");
    assert_eq!(r.status, 401, "{}", r.text());
    let r = request(
        gw.port,
        "GET",
        "/me",
        &[("Authorization", "allow-remote")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", gw.output());
    assert_eq!(
        r.json()["event"]["requestContext"]["authorizer"]["lambda"]["user"],
        "allow-remote"
    );
    let r = request(gw.port, "GET", "/me", &[("Authorization", "nope")], b"");
    assert_eq!(r.status, 403, "{}", r.text());
}
