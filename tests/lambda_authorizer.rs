//! Lambda REQUEST authorizers (issue 15) through the real gateway and real Python
//! authorizers run by `awslambdaric`: simple and IAM-policy answers, payload 1.0 and 2.0,
//! the context in mappings and in the integration's event, the cache, and AWS's 401 / 403 /
//! 500 answers. Invocations are counted with `apigate_lambda_invocations_total`.

mod common;

use common::{integration, metric_value, request, ConfDir, Echo, Gateway, Response};
use serde_json::{json, Value};
use std::path::PathBuf;

fn python_dir() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lambda/python")
        .display()
        .to_string()
}

fn function(handler: &str) -> String {
    json!({"CodeUri": python_dir(), "Handler": handler, "Runtime": "python3.12"}).to_string()
}

fn authorizer(extra: Value) -> String {
    let mut v = json!({
        "AuthorizerType": "REQUEST",
        "AuthorizerUri": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:auth/invocations",
        "IdentitySource": ["$request.header.Authorization"],
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in e {
            o.insert(k.clone(), val.clone());
        }
    }
    v.to_string()
}

fn guarded(key: &str, target: &str) -> String {
    json!({"RouteKey": key, "Target": format!("integrations/{target}"),
           "AuthorizationType": "CUSTOM", "AuthorizerId": "lam"})
    .to_string()
}

fn echo_lambda() -> String {
    json!({
        "IntegrationType": "AWS_PROXY",
        "IntegrationUri": "functions/echo",
        "PayloadFormatVersion": "2.0",
    })
    .to_string()
}

fn get(gw: &Gateway, path: &str, token: Option<&str>) -> Response {
    let headers: Vec<(&str, &str)> = token.map(|t| ("Authorization", t)).into_iter().collect();
    request(gw.port, "GET", path, &headers, b"")
}

/// Successful invocations of the authorizer function so far.
fn invocations(gw: &Gateway) -> f64 {
    metric_value(
        &gw.scrape(),
        "apigate_lambda_invocations_total{function=\"auth\",outcome=\"success\"}",
    )
    .unwrap_or(0.0)
}

#[test]
fn simple_responses_allow_deny_cache_and_pass_their_context_on() {
    let echo = Echo::start();
    let conf = ConfDir::new(&[
        ("functions/auth.json", function("authorizers.simple")),
        ("functions/echo.json", function("app.echo")),
        (
            "authorizers/lam.json",
            authorizer(
                json!({"AuthorizerPayloadFormatVersion": "2.0", "EnableSimpleResponses": true}),
            ),
        ),
        ("integrations/l.json", echo_lambda()),
        (
            "integrations/h.json",
            integration(
                &echo.url(),
                r#""RequestParameters":{"overwrite:header.x-user":"$context.authorizer.user","overwrite:header.x-n":"$context.authorizer.n"}"#,
            ),
        ),
        ("routes/l.json", guarded("GET /lambda/{id}", "l")),
        ("routes/h.json", guarded("GET /http", "h")),
    ]);
    let gw = Gateway::start(&conf.path);

    // Allowed: the context reaches the integration's 2.0 event as AWS puts it.
    let r = get(&gw, "/lambda/1?x=y", Some("allow-ann"));
    assert_eq!(r.status, 200, "{}", r.text());
    let lambda = r.json()["event"]["requestContext"]["authorizer"]["lambda"].clone();
    assert_eq!(lambda["user"], "allow-ann");
    assert_eq!(lambda["n"], 7);
    // What the authorizer itself was sent.
    assert_eq!(lambda["type"], "REQUEST");
    assert_eq!(lambda["version"], "2.0");
    assert_eq!(lambda["routeKey"], "GET /lambda/{id}");
    assert_eq!(
        lambda["routeArn"],
        "arn:aws:execute-api:us-east-1:123456789012:apigatelcl/$default/GET/lambda/1"
    );
    assert_eq!(invocations(&gw), 1.0);

    // Cached per identity value: the same token does not invoke again.
    let r = get(&gw, "/lambda/2", Some("allow-ann"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(invocations(&gw), 1.0, "a cached answer invokes nothing");

    // `$context.authorizer.NAME` in an HTTP integration's mapping.
    let r = get(&gw, "/http", Some("allow-bob"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headers"]["x-user"][0], "allow-bob");
    assert_eq!(r.json()["headers"]["x-n"][0], "7");
    assert_eq!(invocations(&gw), 2.0);

    // Denied: 403, as AWS answers.
    let r = get(&gw, "/lambda/1", Some("mallory"));
    assert_eq!(r.status, 403);
    assert_eq!(r.json(), json!({"message": "Forbidden"}));

    // No identity source: 401 without invoking.
    let before = invocations(&gw);
    let r = get(&gw, "/lambda/1", None);
    assert_eq!(r.status, 401);
    assert_eq!(r.json(), json!({"message": "Unauthorized"}));
    assert!(r.header("www-authenticate").is_none());
    assert_eq!(invocations(&gw), before, "401 without invoking");

    // A function error, or an answer API Gateway cannot read: 500.
    for token in ["raise", "garbage"] {
        let r = get(&gw, "/lambda/1", Some(token));
        assert_eq!(r.status, 500, "{token}");
        assert_eq!(r.json(), json!({"message": "Internal Server Error"}));
    }
}

fn policy_gateway(version: &str) -> (ConfDir, Gateway) {
    let conf = ConfDir::new(&[
        ("functions/auth.json", function("authorizers.policy")),
        ("functions/echo.json", function("app.echo")),
        (
            "authorizers/lam.json",
            authorizer(json!({"AuthorizerPayloadFormatVersion": version})),
        ),
        (
            "integrations/l.json",
            json!({"IntegrationType": "AWS_PROXY", "IntegrationUri": "functions/echo",
                   "PayloadFormatVersion": version})
            .to_string(),
        ),
        ("routes/p.json", guarded("GET /pets/{id}", "l")),
        ("routes/o.json", guarded("GET /owners", "l")),
    ]);
    let gw = Gateway::start(&conf.path);
    (conf, gw)
}

#[test]
fn iam_policy_answers_are_matched_against_the_route_arn_with_wildcards_2_0() {
    let (_conf, gw) = policy_gateway("2.0");
    let r = get(&gw, "/pets/1", Some("pets"));
    assert_eq!(r.status, 200, "{}", r.text());
    let lambda = r.json()["event"]["requestContext"]["authorizer"]["lambda"].clone();
    assert_eq!(lambda["principal"], "pets");
    assert_eq!(lambda["version"], "2.0");
    // The cached policy is judged again for another route: not covered by its Resource.
    let r = get(&gw, "/owners", Some("pets"));
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(invocations(&gw), 1.0, "one invocation, the answer cached");
    // An explicit Deny.
    let r = get(&gw, "/pets/1", Some("cats"));
    assert_eq!(r.status, 403);
    assert_eq!(r.json(), json!({"message": "Forbidden"}));
}

#[test]
fn iam_policy_answers_with_payload_1_0() {
    let (_conf, gw) = policy_gateway("1.0");
    let r = get(&gw, "/pets/7", Some("pets"));
    assert_eq!(r.status, 200, "{}", r.text());
    // 1.0: `requestContext.authorizer` is the context itself.
    let auth = r.json()["event"]["requestContext"]["authorizer"].clone();
    assert_eq!(auth["principal"], "pets");
    assert_eq!(auth["version"], "1.0");
    assert_eq!(auth["authorizationToken"], "pets");
    assert_eq!(
        auth["arn"],
        "arn:aws:execute-api:us-east-1:123456789012:apigatelcl/$default/GET/pets/7"
    );
    assert_eq!(get(&gw, "/owners", Some("pets")).status, 403);
}

#[test]
fn a_bad_authorizer_is_a_config_error_naming_file_and_field() {
    let conf = ConfDir::new(&[
        ("functions/auth.json", function("authorizers.simple")),
        (
            "authorizers/lam.json",
            authorizer(
                json!({"AuthorizerPayloadFormatVersion": "1.0", "EnableSimpleResponses": true,
                              "AuthorizerUri": "functions/nope"}),
            ),
        ),
        ("integrations/h.json", integration("http://127.0.0.1:9", "")),
        ("routes/h.json", guarded("GET /h", "h")),
    ]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_apigate"))
        .args(["check", "--conf"])
        .arg(&conf.path)
        .output()
        .expect("run apigate check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    for want in [
        "authorizers/lam.json",
        "EnableSimpleResponses",
        "AuthorizerUri",
        "\"nope\"",
    ] {
        assert!(text.contains(want), "{want:?} missing in: {text}");
    }
}

/// A SAM template's Lambda authorizer (`Auth.Authorizers` with `FunctionArn`, made the
/// `DefaultAuthorizer`) whose function is defined in the template with local code: served
/// as the layout's is, with SAM's identity source, simple responses and cache.
#[test]
fn a_sam_templates_lambda_authorizer_guards_its_routes() {
    let template =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cfn/sam-lambda-auth.yaml");
    let check = std::process::Command::new(common::BIN)
        .args(["check", "--conf"])
        .arg(&template)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{out}");
    assert!(
        out.contains("1 route(s) served") && !out.contains("not served"),
        "{out}"
    );

    // Served from a copy (the gateway's log goes beside it), CodeUri made absolute.
    let text = std::fs::read_to_string(&template)
        .unwrap()
        .replace("../lambda/python", &python_dir());
    let conf = ConfDir::new(&[("template.yaml", text)]);
    let gw = Gateway::start(&conf.path.join("template.yaml"));
    let r = get(&gw, "/me", None);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json(), json!({"message": "Unauthorized"}));
    let r = get(&gw, "/me", Some("allow-sam"));
    assert_eq!(r.status, 200, "{}", gw.output());
    let lambda = r.json()["event"]["requestContext"]["authorizer"]["lambda"].clone();
    assert_eq!(lambda["user"], "allow-sam");
    let r = get(&gw, "/me", Some("mallory"));
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json(), json!({"message": "Forbidden"}));
}
