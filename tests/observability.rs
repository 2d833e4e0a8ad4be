//! End to end: Prometheus metrics after known traffic.

mod common;

use common::*;
use std::process::{Command, Stdio};

fn value(text: &str, series: &str) -> f64 {
    metric_value(text, series).unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

#[test]
fn counts_histograms_and_rejections_after_known_traffic() {
    let b = Backend::start(Behaviour::Echo);
    let slow = Backend::start(Behaviour::Slow(2000));
    let dir = ConfDir::new(&[
        ("integrations/i0.json", integration(&b.url(), "")),
        (
            "integrations/slow.json",
            integration(&slow.url(), r#""TimeoutInMillis":100"#),
        ),
        ("routes/r0.json", route("GET /pets/{id}", "i0", "")),
        (
            "routes/r1.json",
            route(
                "POST /pets",
                "i0",
                r#""Policies":{"IpFilter":{"Action":"forbid","Addresses":["127.0.0.1"]}}"#,
            ),
        ),
        ("routes/r2.json", route("GET /slow", "slow", "")),
    ]);
    let gw = Gateway::start(&dir.path);
    for i in 0..5 {
        assert_eq!(gw.get(&format!("/pets/{i}")).status, 200);
    }
    assert_eq!(request(gw.port, "POST", "/pets", &[], b"{}").status, 403);
    assert_eq!(gw.get("/nowhere/at/all").status, 404);
    assert_eq!(gw.get("/slow").status, 503);

    // Counted in `logging`, which runs after the client has its answer.
    gw.wait_metric("apigate_requests_in_flight", 0.0);
    let text = gw.scrape();
    let route = r#"api="-",route="GET /pets/{id}",stage="$default""#;
    assert_eq!(
        value(
            &text,
            r#"apigate_requests_total{api="-",method="GET",route="GET /pets/{id}",stage="$default",status="200"}"#
        ),
        5.0
    );
    assert_eq!(
        value(
            &text,
            &format!("apigate_request_duration_seconds_count{{{route}}}")
        ),
        5.0
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"apigate_request_duration_seconds_bucket{{{route},le="+Inf"}}"#)
        ),
        5.0
    );
    assert_eq!(
        value(
            &text,
            &format!("apigate_integration_duration_seconds_count{{{route}}}")
        ),
        5.0
    );
    // The gateway's own share: one observation per request a backend answered; the 403,
    // 404 and the timed-out request are not in it.
    assert_eq!(
        value(
            &text,
            &format!("apigate_gateway_overhead_seconds_count{{{route}}}")
        ),
        5.0
    );
    assert_eq!(
        value(
            &text,
            r#"apigate_gateway_overhead_seconds_count{api="-",route="POST /pets",stage="$default"}"#
        ),
        0.0
    );
    assert!(text.contains(&format!(
        r#"apigate_gateway_overhead_seconds_bucket{{{route},le="0.00001"}}"#
    )));
    // Sub-millisecond buckets exist.
    assert!(text.contains(&format!(
        r#"apigate_request_duration_seconds_bucket{{{route},le="0.00025"}}"#
    )));
    assert_eq!(
        value(
            &text,
            r#"apigate_requests_total{api="-",method="POST",route="POST /pets",stage="$default",status="403"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"apigate_requests_total{api="-",method="GET",route="-",stage="$default",status="404"}"#
        ),
        1.0
    );
    for (reason, n) in [("forbidden", 1.0), ("not_found", 1.0), ("timeout", 1.0)] {
        assert_eq!(
            value(
                &text,
                &format!(r#"apigate_rejections_total{{reason="{reason}"}}"#)
            ),
            n,
            "{reason}"
        );
    }
    let new = value(&text, r#"apigate_upstream_connections_total{result="new"}"#);
    let reused = value(
        &text,
        r#"apigate_upstream_connections_total{result="reused"}"#,
    );
    assert!(
        reused >= 3.0 && new + reused >= 6.0,
        "new {new} reused {reused}"
    );
    assert_eq!(value(&text, "apigate_requests_in_flight"), 0.0);
    assert!(!text.contains("/pets/1"), "a raw path leaked into a label");
    assert!(!text.contains("nowhere"), "a raw path leaked into a label");

    // Reloads are counted by outcome.
    gw.signal("HUP");
    gw.wait_log("configuration reloaded", 1);
    // Counted in `logging`, which runs after the client has its answer.
    gw.wait_metric("apigate_requests_in_flight", 0.0);
    let text = gw.scrape();
    assert_eq!(
        value(&text, r#"apigate_config_reloads_total{result="success"}"#),
        1.0
    );

    // `promtool check metrics` accepts the exposition when it is installed (scripts/test.sh installs it).
    if let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("promtool not installed: skipping `promtool check metrics`");
    }
    assert_eq!(
        request(gw.metrics_port, "GET", "/other", &[], b"").status,
        404
    );
}

#[test]
fn access_log_lines_use_aws_context_variables() {
    let b = Backend::start(Behaviour::Echo);
    let dir = ConfDir::new(&[
        ("integrations/i0.json", integration(&b.url(), "")),
        ("routes/r0.json", route("GET /pets/{id}", "i0", "")),
        ("stages/default.json", r#"{"Name":"$default","AccessLogSettings":{}}"#.to_string()),
        (
            "stages/custom.json",
            r#"{"Name":"custom","AccessLogSettings":{"Format":"custom $context.requestId $context.routeKey $context.status $context.integrationStatus $context.path"}}"#.to_string(),
        ),
    ]);
    let gw = Gateway::start(&dir.path);
    let r = gw.get("/pets/7");
    let id = r.header("apigw-requestid").unwrap().to_string();
    gw.wait_log(&id, 1);
    let line = gw
        .output()
        .lines()
        .find(|l| l.contains(&id))
        .unwrap()
        .to_string();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["routeKey"], "GET /pets/{id}");
    assert_eq!(v["status"], "200");
    assert_eq!(v["httpMethod"], "GET");
    assert_eq!(v["ip"], "127.0.0.1");
    assert!(v["requestTime"].as_str().unwrap().ends_with("+0000"));
    // A path that tries to break the JSON line stays inside its string.
    let r = gw.get("/pets/%22%7D%0A");
    let id = r.header("apigw-requestid").unwrap().to_string();
    gw.wait_log(&id, 1);
    assert!(gw
        .output()
        .lines()
        .filter(|l| l.contains(&id))
        .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    // Custom format, and a 404 logged with "-" for the missing integration.
    let r = gw.get("/custom/pets/9");
    let id = r.header("apigw-requestid").unwrap().to_string();
    gw.wait_log(
        &format!("custom {id} GET /pets/{{id}} 200 200 /custom/pets/9"),
        1,
    );
    let r = gw.get("/custom/nope");
    let id = r.header("apigw-requestid").unwrap().to_string();
    gw.wait_log(&format!("custom {id} - 404 - /custom/nope"), 1);
}
