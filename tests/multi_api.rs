//! Several APIs in one gateway: repeated `--conf` (a directory layout and an OpenAPI
//! document) and `domains/*.json` API mappings, against the real binary.

mod common;

use common::*;
use std::path::Path;

/// The layout API "shop": `GET /items` and `GET /admin` to the echo under `/shop`, its
/// `$default` stage throttled to a burst of `burst` (rate 0: no refill) and logging
/// `api=$context.apiId` to stdout.
fn shop(echo: &Echo, burst: u32) -> Vec<(&'static str, String)> {
    vec![
        ("api.json", r#"{"Name":"shop"}"#.to_string()),
        (
            "integrations/shop.json",
            integration(&format!("{}/shop", echo.url()), ""),
        ),
        ("routes/items.json", route("GET /items", "shop", "")),
        ("routes/admin.json", route("GET /admin", "shop", "")),
        (
            "stages/default.json",
            format!(
                r#"{{"Name":"$default","AccessLogSettings":{{"Format":"api=$context.apiId $context.requestId"}},"DefaultRouteSettings":{{"ThrottlingRateLimit":0,"ThrottlingBurstLimit":{burst}}}}}"#
            ),
        ),
    ]
}

/// The OpenAPI API "billing": `GET /invoices` (and `extra` when given) to the echo under
/// `/billing`.
fn billing(echo: &Echo, extra: &str) -> String {
    let op = |p: &str| {
        format!(
            r#""{p}":{{"get":{{"x-amazon-apigateway-integration":{{"type":"http_proxy","httpMethod":"GET","uri":"{}/billing{p}","payloadFormatVersion":"1.0"}},"responses":{{"default":{{"description":"ok"}}}}}}}}"#,
            echo.url()
        )
    };
    let mut paths = op("/invoices");
    if !extra.is_empty() {
        paths = format!("{paths},{}", op(extra));
    }
    format!(
        r#"{{"openapi":"3.0.1","info":{{"title":"billing","version":"1"}},"paths":{{{paths}}}}}"#
    )
}

fn get(gw: &Gateway, host: &str, path: &str) -> Response {
    let mut c = Conn::open(gw.port);
    // `Conn::send` writes its own Host first; a raw head controls it.
    c.send_raw(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
    c.read_response(false)
}

/// The backend path a 200 reached (which API served it), or the status and body.
fn reached(r: &Response) -> String {
    if r.status == 200 {
        r.json()["path"].as_str().unwrap_or("").to_string()
    } else {
        format!("{} {}", r.status, r.text())
    }
}

fn start(a: &Path, b: &Path) -> Gateway {
    Gateway::start_with(a, &["--conf", b.to_str().unwrap()])
}

#[test]
fn two_apis_by_host_and_domain_mappings_longest_key_wins() {
    let echo = Echo::start();
    let mut files = shop(&echo, 100);
    let domain =
        |name: &str, maps: &str| format!(r#"{{"DomainName":"{name}","ApiMappings":[{maps}]}}"#);
    files.push((
        "domains/api.json",
        domain(
            "api.example.test",
            r#"{"ApiMappingKey":"","ApiId":"shop","Stage":"$default"},
               {"ApiMappingKey":"v1","ApiId":"billing","Stage":"$default"},
               {"ApiMappingKey":"v1/admin","ApiId":"shop","Stage":"$default"}"#,
        ),
    ));
    files.push((
        "domains/other.json",
        domain(
            "Other.Example.Test",
            r#"{"ApiMappingKey":"v2","ApiId":"billing","Stage":"$default"}"#,
        ),
    ));
    let a = ConfDir::new(&files);
    let b = ConfDir::new(&[("billing.json", billing(&echo, ""))]);
    let gw = start(&a.path, &b.path.join("billing.json"));

    // Without a domain: the first API, and `{api-id}.…` picks an API as AWS's default endpoint.
    assert_eq!(reached(&get(&gw, "127.0.0.1", "/items")), "/shop");
    assert_eq!(
        reached(&get(&gw, "billing.execute-api.localhost", "/invoices")),
        "/billing/invoices"
    );
    let r = get(&gw, "billing.execute-api.localhost", "/items");
    assert_eq!(
        (r.status, r.json()),
        (404, serde_json::json!({"message":"Not Found"}))
    );

    // Mappings: longest key first, whole segments, the key removed, a port ignored.
    let host = "api.example.test:8443";
    assert_eq!(reached(&get(&gw, host, "/items")), "/shop");
    assert_eq!(
        reached(&get(&gw, host, "/v1/invoices")),
        "/billing/invoices"
    );
    let r = get(&gw, host, "/v1/admin/admin");
    assert_eq!(reached(&r), "/shop");
    // The access log names the API that served it.
    gw.wait_log(
        &format!("api=shop {}", r.header("apigw-requestid").unwrap()),
        1,
    );
    let r = get(&gw, host, "/v1/items");
    assert_eq!(
        (r.status, r.json()),
        (404, serde_json::json!({"message":"Not Found"}))
    );

    // A domain without a mapping for the path: 403, as AWS answers; host case-insensitive.
    assert_eq!(
        reached(&get(&gw, "other.example.test", "/v2/invoices")),
        "/billing/invoices"
    );
    let r = get(&gw, "other.example.test", "/items");
    assert_eq!(
        (r.status, r.json()),
        (403, serde_json::json!({"message":"Forbidden"}))
    );
}

#[test]
fn each_api_keeps_its_own_throttling() {
    let echo = Echo::start();
    let a = ConfDir::new(&shop(&echo, 2));
    let b = ConfDir::new(&[("billing.json", billing(&echo, ""))]);
    let gw = start(&a.path, &b.path.join("billing.json"));
    for _ in 0..2 {
        assert_eq!(get(&gw, "127.0.0.1", "/items").status, 200);
    }
    let r = get(&gw, "127.0.0.1", "/items");
    assert_eq!(r.status, 429, "{}", r.text());
    // The other API's budget is untouched.
    for _ in 0..5 {
        assert_eq!(
            reached(&get(&gw, "billing.local", "/invoices")),
            "/billing/invoices"
        );
    }
    // Request metrics carry the API's name. A request is counted once its answer is out
    // (Pingora's `logging` hook), so the last one may still be on its way: wait for it.
    let series = |api: &str, route: &str, status: u16| {
        format!(
            r#"apigate_requests_total{{api="{api}",method="GET",route="{route}",stage="$default",status="{status}"}}"#
        )
    };
    gw.wait_metric(&series("billing", "GET /invoices", 200), 5.0);
    let text = gw.scrape();
    assert_eq!(
        metric_value(&text, &series("shop", "GET /items", 200)),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric_value(&text, &series("shop", "GET /items", 429)),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn reload_swaps_both_apis_and_a_bad_one_keeps_the_old_set() {
    let echo = Echo::start();
    let a = ConfDir::new(&shop(&echo, 100));
    let b = ConfDir::new(&[("billing.json", billing(&echo, ""))]);
    let gw = start(&a.path, &b.path.join("billing.json"));
    assert_eq!(get(&gw, "billing.local", "/refunds").status, 404);

    b.write(&[("billing.json", billing(&echo, "/refunds"))]);
    a.write(&[("routes/extra.json", route("GET /extra", "shop", ""))]);
    gw.signal("HUP");
    gw.wait_log("configuration reloaded", 1);
    assert_eq!(
        reached(&get(&gw, "billing.local", "/refunds")),
        "/billing/refunds"
    );
    assert_eq!(reached(&get(&gw, "127.0.0.1", "/extra")), "/shop");

    // The second document breaks: the whole running set keeps serving.
    b.write(&[("billing.json", "{\"openapi\":".to_string())]);
    a.remove("routes/extra.json");
    gw.signal("HUP");
    gw.wait_log("reload rejected", 1);
    assert!(gw.output().contains("billing.json"), "{}", gw.output());
    assert_eq!(reached(&get(&gw, "127.0.0.1", "/extra")), "/shop");
    assert_eq!(
        reached(&get(&gw, "billing.local", "/refunds")),
        "/billing/refunds"
    );
}

#[test]
fn a_mapping_to_an_unknown_api_is_a_config_error() {
    let echo = Echo::start();
    let mut files = shop(&echo, 100);
    files.push((
        "domains/api.json",
        r#"{"DomainName":"api.example.test","ApiMappings":[{"ApiMappingKey":"","ApiId":"nope","Stage":"$default"}]}"#.to_string(),
    ));
    let a = ConfDir::new(&files);
    let o = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:1", "--conf"])
        .arg(&a.path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("domains/api.json: ApiMappings[0].ApiId") && err.contains("\"shop\""),
        "{err}"
    );
}

/// CloudFormation with two HTTP APIs (quick create, each `Target` its own backend path).
fn two_api_template(echo: &Echo, name_b: &str) -> String {
    format!(
        r#"AWSTemplateFormatVersion: '2010-09-09'
Resources:
  Orders:
    Type: AWS::ApiGatewayV2::Api
    Properties:
      Name: shop
      ProtocolType: HTTP
      Target: {url}/orders
  Stock:
    Type: AWS::ApiGatewayV2::Api
    Properties:
      Name: {name_b}
      ProtocolType: HTTP
      Target: {url}/stock
"#,
        url = echo.url()
    )
}

fn run_check(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(BIN)
        .arg("check")
        .args(args)
        .output()
        .expect("run apigate check");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn every_api_of_a_template_is_served_by_its_logical_id() {
    let echo = Echo::start();
    // Both APIs have one Name, as AWS allows: each is known by its logical id.
    let dir = ConfDir::new(&[
        ("template.yaml", two_api_template(&echo, "shop")),
        (
            "domains/api.json",
            r#"{"DomainName":"api.example.test","ApiMappings":[
                {"ApiMappingKey":"orders","ApiId":"Orders","Stage":"$default"},
                {"ApiMappingKey":"stock","ApiId":"Stock","Stage":"$default"}]}"#
                .to_string(),
        ),
    ]);
    let template = dir.path.join("template.yaml");
    let (ok, out) = run_check(&["--conf", template.to_str().unwrap()]);
    assert!(
        ok && out.contains("OK (2 APIs, 2 stage(s), 2 route(s) served)"),
        "{out}"
    );
    assert!(!out.contains("several APIs"), "{out}");
    // export writes one API, chosen by its id.
    let o = std::process::Command::new(BIN)
        .args(["export", "--api", "Stock", "--conf"])
        .arg(&template)
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let uri = &doc["components"]["x-amazon-apigateway-integrations"]["Stock-integration"]["uri"];
    assert_eq!(uri.as_str(), Some(format!("{}/stock", echo.url()).as_str()));

    let gw = Gateway::start(&template);
    // Quick create: the route is `$default`, so the request path is appended to the Target.
    let by_domain = |p: &str| reached(&get(&gw, "api.example.test", p));
    assert_eq!(by_domain("/orders/7"), "/orders/7");
    assert_eq!(by_domain("/stock/7"), "/stock/7");
    let by_host = |h: &str| reached(&get(&gw, h, "/x"));
    assert_eq!(
        by_host("stock.execute-api.us-east-1.amazonaws.com"),
        "/stock/x"
    );
    assert_eq!(
        by_host("orders.execute-api.us-east-1.amazonaws.com"),
        "/orders/x"
    );
    // Metrics name each API by its id.
    gw.wait_metric(
        r#"apigate_requests_total{api="Stock",method="GET",route="$default",stage="$default",status="200"}"#,
        2.0,
    );
}

#[test]
fn check_takes_every_conf_and_refuses_two_apis_with_one_name() {
    let echo = Echo::start();
    let a = ConfDir::new(&shop(&echo, 100));
    let b = ConfDir::new(&shop(&echo, 100));
    let (ok, out) = run_check(&[
        "--conf",
        a.path.to_str().unwrap(),
        "--conf",
        b.path.to_str().unwrap(),
    ]);
    assert!(!ok, "{out}");
    assert!(out.contains(r#"two APIs are named "shop""#), "{out}");

    // check reads domains/ against every --conf: a mapping to an API not loaded is an error.
    let dir = ConfDir::new(&[
        ("template.yaml", two_api_template(&echo, "stock")),
        (
            "domains/api.json",
            r#"{"DomainName":"api.example.test","ApiMappings":[{"ApiMappingKey":"","ApiId":"Stok","Stage":"$default"}]}"#
                .to_string(),
        ),
    ]);
    let template = dir.path.join("template.yaml");
    let (ok, out) = run_check(&["--conf", template.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("domains/api.json: ApiMappings[0].ApiId") && out.contains(r#""Stok""#),
        "{out}"
    );
}
