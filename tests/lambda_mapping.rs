//! Request parameter mapping on Lambda routes: `RequestParameters` change the request
//! before the event is built (AWS guide "Transform API requests and responses for HTTP
//! APIs"), through the real gateway and a Python handler run by `awslambdaric`.

mod common;

use common::{request, ConfDir, Gateway};
use serde_json::{json, Value};
use std::path::PathBuf;

fn python_dir() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lambda/python")
        .display()
        .to_string()
}

fn gateway(format: &str, params: Value) -> (ConfDir, Gateway) {
    let conf = ConfDir::new(&[
        (
            "functions/echo.json",
            json!({"CodeUri": python_dir(), "Handler": "app.echo", "Runtime": "python3.12"})
                .to_string(),
        ),
        (
            "integrations/e.json",
            json!({
                "IntegrationType": "AWS_PROXY",
                "IntegrationUri": "functions/echo",
                "PayloadFormatVersion": format,
                "RequestParameters": params,
            })
            .to_string(),
        ),
        (
            "routes/r.json",
            json!({"RouteKey": "GET /items/{id}", "Target": "integrations/e"}).to_string(),
        ),
    ]);
    let gw = Gateway::start(&conf.path);
    (conf, gw)
}

fn mappings() -> Value {
    json!({
        "overwrite:header.x-added": "static",
        "append:header.x-from-query": "$request.querystring.q",
        "remove:header.x-drop": "''",
        "append:querystring.copied": "$request.header.x-source",
        "remove:querystring.secret": "''",
        "overwrite:path": "/mapped/$request.path.id",
    })
}

#[test]
fn payload_2_0_event_shows_the_mapped_request() {
    let (_c, gw) = gateway("2.0", mappings());
    let r = request(
        gw.port,
        "GET",
        "/items/42?q=hello&secret=s&keep=1",
        &[("X-Drop", "gone"), ("X-Source", "from header")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let event = r.json()["event"].clone();
    let headers = &event["headers"];
    assert_eq!(headers["x-added"], "static", "{event}");
    assert_eq!(headers["x-from-query"], "hello");
    assert!(headers.get("x-drop").is_none(), "{event}");
    let query = &event["queryStringParameters"];
    assert_eq!(query["copied"], "from header");
    assert_eq!(query["keep"], "1");
    assert_eq!(query["q"], "hello");
    assert!(query.get("secret").is_none(), "{event}");
    assert!(!event["rawQueryString"].as_str().unwrap().contains("secret"));
    assert_eq!(event["rawPath"], "/mapped/42");
    // Path parameters are the route's, from the client's path.
    assert_eq!(event["pathParameters"]["id"], "42");
}

#[test]
fn payload_1_0_event_shows_the_mapped_request() {
    let (_c, gw) = gateway("1.0", mappings());
    let r = request(
        gw.port,
        "GET",
        "/items/7?secret=s",
        &[("X-Drop", "gone")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let event = r.json()["event"].clone();
    assert_eq!(event["headers"]["x-added"], "static", "{event}");
    assert_eq!(event["multiValueHeaders"]["x-added"], json!(["static"]));
    assert!(event["headers"].get("x-drop").is_none(), "{event}");
    assert!(event["queryStringParameters"].is_null(), "{event}");
    assert_eq!(event["path"], "/mapped/7");
}

#[test]
fn a_mapped_path_that_is_not_a_path_is_400_without_invoking() {
    let (_c, gw) = gateway("2.0", json!({"overwrite:path": "$request.querystring.to"}));
    let r = request(gw.port, "GET", "/items/1?to=..", &[], b"");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json(), json!({"message": "Bad Request"}));
    // A good value still works.
    let r = request(gw.port, "GET", "/items/1?to=elsewhere", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["event"]["rawPath"], "/elsewhere");
}
