//! End to end: the real gateway binary in front of real backends on loopback.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn one_route(key: &str, uri: &str, integration_extra: &str, route_extra: &str) -> ConfDir {
    ConfDir::new(&[
        ("integrations/i0.json", integration(uri, integration_extra)),
        ("routes/r0.json", route(key, "i0", route_extra)),
    ])
}

#[test]
fn bundled_example_serves_through_echo() {
    let echo = Echo::start();
    let dir = ConfDir::new(&[]);
    // The example as shipped, pointed at this test's echo backend.
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/example");
    for entry in walk(&example) {
        let rel = entry
            .strip_prefix(&example)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&entry)
            .unwrap()
            .replace("127.0.0.1:9000", &format!("127.0.0.1:{}", echo.port));
        dir.write(&[(rel.as_str(), text)]);
    }
    let gw = Gateway::start(&dir.path);
    let r = gw.get("/v0/users/42?expand=orgs");
    assert_eq!(r.status, 200, "{}", r.text());
    let e = r.json();
    assert_eq!(e["path"], "/users-service/users/42");
    assert_eq!(e["query"], "expand=orgs");
    assert_eq!(e["headers"]["api-version"][0], "v0");
    assert_eq!(e["headers"]["api-path"][0], "/users/42");
    let r = gw.get("/organizations/acme");
    let e = r.json();
    assert_eq!(e["path"], "/organizations-service/organizations/acme");
    assert_eq!(e["headers"]["api-version"][0], "v1");
    assert_eq!(e["headers"]["x-org-id"][0], "acme");
    assert_eq!(gw.get("/v0/health").json()["path"], "/health");
    let r = gw.get("/nope");
    assert_eq!(
        (r.status, r.text()),
        (404, r#"{"message":"Not Found"}"#.to_string())
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn check_prints_every_error_with_file_field_and_fix() {
    let dir = ConfDir::new(&[
        (
            "integrations/i0.json",
            integration(
                "http://127.0.0.1:1",
                r#""TimeoutInMillis":20,"PayloadFormatVersion":"2.0""#,
            ),
        ),
        (
            "integrations/i1.json",
            integration(
                "http://127.0.0.1:1",
                r#""RequestParameters":{"overwrite:header.Authorization":"x"},"ResponseParameters":{"700":{}}"#,
            ),
        ),
        ("routes/a.json", route("get /x", "i0", "")),
        ("routes/b.json", route("GET /{proxy+}/x", "i0", "")),
        ("routes/c.json", route("GET /ok", "missing", "")),
        (
            "routes/d.json",
            route(
                "GET /ok2",
                "i1",
                r#""AuthorizationType":"JWT","AuthorizerId":"nobody""#,
            ),
        ),
        ("routes/e.json", route("GET /ok2", "i1", "")),
        (
            "stages/s.json",
            r#"{"Name":"s","Routes":["routes/zzz"]}"#.to_string(),
        ),
    ]);
    let out = Command::new(BIN)
        .args(["check", "--conf"])
        .arg(&dir.path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "integrations/i0.json: TimeoutInMillis",
        "integrations/i0.json: PayloadFormatVersion",
        "integrations/i1.json: RequestParameters.overwrite:header.Authorization",
        "integrations/i1.json: ResponseParameters.700",
        "routes/a.json: RouteKey",
        "upper case",
        "routes/b.json: RouteKey",
        "last segment",
        "routes/c.json: Target",
        "routes/d.json: AuthorizerId",
        "routes/e.json: RouteKey",
        "same route as",
        "stages/s.json: Routes",
        "fix:",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    // serve refuses the same config.
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--conf",
        ])
        .arg(&dir.path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("routes/c.json: Target"));
}

/// Every kind of mistake at once: each error is printed exactly once, naming its file and
/// field, and mistakes in one file do not hide those in others.
#[test]
fn check_reports_every_error_exactly_once() {
    let up = "http://127.0.0.1:9";
    let dir = ConfDir::new(&[
        ("gateway.json", r#"{"Listen":"nope","Threads":0}"#.into()),
        ("api.json", r#"{"Nmae":"x"}"#.into()),
        ("authorizers/z.json", "{not json".into()),
        (
            "integrations/i.json",
            integration(
                up,
                r#""TimeoutInMillis":49,"PayloadFormatVersion":2.0,"RequestParameters":{"overwrite:header.Host":"x","overwrite:header.X-A":"$stageVariables.nope","overwrite:header.X-B":"$request.path.nope"}"#,
            ),
        ),
        ("integrations/j.json", integration(&format!("{up}/a b"), "")),
        ("integrations/k.json", integration(&format!("{up}/a#frag"), "")),
        ("integrations/l.json", integration("http://127.0.0.1:0/", "")),
        (
            "integrations/m.json",
            integration(
                up,
                r#""TimeoutInMilis":100,"RequestParameters":{"overwrite:header.X":5}"#,
            ),
        ),
        (
            "integrations/u.json",
            integration("http://${stageVariables.host}/x", ""),
        ),
        ("routes/a.json", route("get /x", "i", "")),
        ("routes/b.json", route("GET /{proxy+}/x", "i", "")),
        ("routes/c.json", route("GET /dup/{id}", "i", "")),
        ("routes/d.json", route("GET /dup/{name}", "j", "")),
        ("routes/e.json", route("GET /e", "nope", "")),
        ("routes/f.json", route("GET /caf\u{e9}", "j", "")),
        ("routes/g.json", route("GET /{a}/{a}", "j", "")),
        ("routes/h.json", route("GET /h", "m", "")),
        ("routes/n.json", r#"{"RouteKey":5,"Target":"integrations/j"}"#.into()),
        ("routes/v.json", route("GET /v", "u", "")),
        ("routes/k.json", route("GET /k", "k", "")),
        ("routes/l.json", route("GET /l", "l", "")),
        (
            "routes/z.json",
            route(
                "GET /z",
                "j",
                r#""AuthorizationType":"JWT","AuthorizerId":"z""#,
            ),
        ),
        (
            "stages/s.json",
            r#"{"Name":"s","Routes":["routes/c","routes/c","routes/zzz","routes/h","routes/v","routes/d","routes/n"]}"#.into(),
        ),
        (
            "stages/t.json",
            r#"{"Name":"t","RouteSettings":{"GET /a":{"ThrottlingBurstLimt":1}}}"#.into(),
        ),
    ]);
    let out = Command::new(BIN)
        .args(["check", "--conf"])
        .arg(&dir.path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("  ")).collect();
    // (start of the line: file and field, words the line must hold)
    let expected: &[(&str, &str)] = &[
        ("gateway.json: Threads", "fix:"),
        ("gateway.json: Listen", "HOST:PORT"),
        ("api.json: Nmae: unknown field", "did you mean `Name`?"),
        ("authorizers/z.json: invalid JSON", "fix the JSON syntax"),
        ("integrations/i.json: TimeoutInMillis", "50 to 30000"),
        ("integrations/i.json: PayloadFormatVersion", "\"2.0\""),
        (
            "integrations/i.json: RequestParameters.overwrite:header.Host",
            "X-App-Host",
        ),
        (
            "integrations/i.json: RequestParameters.overwrite:header.X-A",
            "StageVariables in stages/s.json",
        ),
        (
            "integrations/i.json: RequestParameters.overwrite:header.X-B",
            "routes/c.json has no {nope}",
        ),
        ("integrations/j.json: IntegrationUri", "%20"),
        ("integrations/k.json: IntegrationUri", "fragment"),
        ("integrations/l.json: IntegrationUri", "port 0"),
        (
            "integrations/m.json: TimeoutInMilis: unknown field",
            "`TimeoutInMillis`",
        ),
        (
            "integrations/m.json: RequestParameters.\"overwrite:header.X\"",
            "JSON string",
        ),
        (
            "integrations/u.json: IntegrationUri",
            "StageVariables in stages/s.json",
        ),
        ("routes/a.json: RouteKey", "upper case"),
        ("routes/b.json: RouteKey", "last segment"),
        (
            "routes/d.json: RouteKey",
            "same route as \"GET /dup/{id}\" in routes/c.json",
        ),
        ("routes/e.json: Target", "integrations/nope"),
        ("routes/f.json: RouteKey", "could never match"),
        ("routes/g.json: RouteKey", "twice"),
        ("routes/n.json: RouteKey: invalid type", "JSON string"),
        (
            "stages/s.json: Routes: \"routes/c\" is listed twice",
            "list each route once",
        ),
        ("stages/s.json: Routes: \"routes/zzz\"", "no route"),
        (
            "stages/t.json: RouteSettings.\"GET /a\".ThrottlingBurstLimt",
            "did you mean `ThrottlingBurstLimit`?",
        ),
    ];
    for (start, words) in expected {
        let hits: Vec<&&str> = lines
            .iter()
            .filter(|l| l.trim_start().starts_with(start))
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "{start:?} should be reported once in:\n{text}"
        );
        assert!(
            hits[0].contains(words),
            "{start:?} lacks {words:?} in:\n{text}"
        );
    }
    assert_eq!(
        lines.len(),
        expected.len(),
        "unexpected extra errors in:\n{text}"
    );
    // Files that did not parse are not reported again where they are referenced.
    assert!(!text.contains("routes/h.json"), "{text}");
    assert!(!text.contains("routes/z.json"), "{text}");
}

#[test]
fn routes_any_aws_mix_of_greedy_and_variable_paths() {
    let b = Backend::start(Behaviour::Echo);
    let dir = ConfDir::new(&[
        (
            "integrations/one.json",
            integration(&format!("{}/one", b.url()), ""),
        ),
        (
            "integrations/two.json",
            integration(&format!("{}/two", b.url()), ""),
        ),
        ("routes/one.json", route("GET /a/{id}/{proxy+}", "one", "")),
        ("routes/two.json", route("ANY /a/{proxy+}", "two", "")),
    ]);
    let gw = Gateway::start(&dir.path);
    for (method, path, want) in [
        ("GET", "/a/x", "/two"),
        ("POST", "/a/x", "/two"),
        ("GET", "/a/x/y", "/one"),
        ("POST", "/a/x/y", "/two"),
    ] {
        let r = request(gw.port, method, path, &[], b"");
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
        assert_eq!(b.requests().pop().unwrap().target, want, "{method} {path}");
    }
}

#[test]
fn forwarding_rewrites_uri_host_and_forwarding_headers() {
    let b = Backend::start(Behaviour::Echo);
    let dir = ConfDir::new(&[
        (
            "integrations/i0.json",
            integration(
                &format!("{}/items/{{id}}?fixed=1", b.url()),
                r#""IntegrationMethod":"POST""#,
            ),
        ),
        ("routes/r0.json", route("GET /things/{id}", "i0", "")),
        ("integrations/i1.json", integration(&b.url(), "")),
        ("routes/r1.json", route("$default", "i1", "")),
    ]);
    let gw = Gateway::start(&dir.path);
    let r = request(
        gw.port,
        "GET",
        "/things/a%20b?x=1",
        &[
            ("X-Forwarded-For", "203.0.113.9"),
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "secret"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
        ],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("apigw-requestid").is_some_and(|v| v.len() == 16));
    let seen = &b.requests()[0];
    assert_eq!(seen.method, "POST", "IntegrationMethod fixes the method");
    assert_eq!(seen.target, "/items/a%20b?fixed=1&x=1");
    assert_eq!(
        seen.header("host"),
        Some(format!("127.0.0.1:{}", b.port).as_str())
    );
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-port"),
        Some(gw.port.to_string().as_str())
    );
    assert_eq!(
        seen.header("forwarded"),
        Some("for=127.0.0.1;host=gateway.test;proto=http")
    );
    for hop in ["x-hop", "keep-alive", "te"] {
        assert_eq!(seen.header(hop), None, "hop-by-hop {hop} was forwarded");
    }
    // Repeated X-Forwarded-For fields are one list: no hop is lost.
    let r = request(
        gw.port,
        "GET",
        "/things/x",
        &[
            ("X-Forwarded-For", "198.51.100.1"),
            ("X-Forwarded-For", "198.51.100.2, 198.51.100.3"),
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        b.requests().pop().unwrap().header("x-forwarded-for"),
        Some("198.51.100.1, 198.51.100.2, 198.51.100.3, 127.0.0.1")
    );
    // $default appends the whole path and keeps the method.
    let r = request(gw.port, "DELETE", "/any/where?q=%2F", &[], b"");
    assert_eq!(r.status, 200);
    let seen = b.requests().pop().unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("DELETE", "/any/where?q=%2F")
    );
}

#[test]
fn bodies_stream_both_ways_including_chunked() {
    let echo = Echo::start();
    let dir = one_route(
        "ANY /{proxy+}",
        &format!("{}/{{proxy}}", echo.url()),
        "",
        "",
    );
    let gw = Gateway::start(&dir.path);
    let big = vec![b'z'; 300_000];
    let r = request(
        gw.port,
        "PUT",
        "/upload",
        &[("Content-Type", "application/octet-stream")],
        &big,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["bodyLength"], 300_000);
    let mut c = Conn::open(gw.port);
    c.send(
        "POST",
        "/chunked",
        &[("Transfer-Encoding", "chunked")],
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    let r = c.read_response(false);
    assert_eq!(r.json()["body"], "hello world");
}

#[test]
fn stage_variables_and_named_stages() {
    let b = Backend::start(Behaviour::Echo);
    let dir = ConfDir::new(&[
        (
            "integrations/i0.json",
            integration(
                "http://${stageVariables.host}/${stageVariables.base}/{id}",
                "",
            ),
        ),
        ("routes/r0.json", route("GET /pets/{id}", "i0", "")),
        (
            "stages/prod.json",
            format!(
                r#"{{"Name":"prod","StageVariables":{{"host":"127.0.0.1:{}","base":"p"}}}}"#,
                b.port
            ),
        ),
        (
            "stages/default.json",
            format!(
                r#"{{"Name":"$default","StageVariables":{{"host":"127.0.0.1:{}","base":"d"}}}}"#,
                b.port
            ),
        ),
    ]);
    let gw = Gateway::start(&dir.path);
    assert_eq!(gw.get("/prod/pets/1").json()["target"], "/p/1");
    assert_eq!(gw.get("/pets/2").json()["target"], "/d/2");
    assert_eq!(gw.get("/prod").status, 404);
}

#[test]
fn upstream_connections_are_pooled() {
    let b = Backend::start(Behaviour::Echo);
    let dir = one_route("GET /p", &b.url(), "", "");
    let gw = Gateway::start(&dir.path);
    for _ in 0..60 {
        // A new client connection each time: the pool is shared across them.
        assert_eq!(gw.get("/p").status, 200);
    }
    let n = b.connections.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        n <= 3,
        "60 sequential requests opened {n} backend connections"
    );
}

#[test]
fn upstream_failures_are_aws_5xx() {
    let slow = Backend::start(Behaviour::Slow(3000));
    let reset = Backend::start(Behaviour::Reset);
    let garbage = Backend::start(Behaviour::Garbage);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let dir = ConfDir::new(&[
        (
            "integrations/slow.json",
            integration(&slow.url(), r#""TimeoutInMillis":300"#),
        ),
        ("integrations/reset.json", integration(&reset.url(), "")),
        ("integrations/garbage.json", integration(&garbage.url(), "")),
        ("integrations/dead.json", integration(&dead, "")),
        ("routes/slow.json", route("GET /slow", "slow", "")),
        ("routes/reset.json", route("GET /reset", "reset", "")),
        ("routes/garbage.json", route("GET /garbage", "garbage", "")),
        ("routes/dead.json", route("GET /dead", "dead", "")),
    ]);
    let gw = Gateway::start(&dir.path);
    let t0 = Instant::now();
    let r = gw.get("/slow");
    let took = t0.elapsed();
    assert_eq!(
        (r.status, r.text()),
        (503, r#"{"message":"Service Unavailable"}"#.into())
    );
    assert!(
        took < Duration::from_millis(2000),
        "timeout answered after {took:?}"
    );
    assert!(r.header("apigw-requestid").is_some());
    for path in ["/reset", "/garbage", "/dead"] {
        let r = gw.get(path);
        assert_eq!(
            (r.status, r.text()),
            (502, r#"{"message":"Bad Gateway"}"#.into()),
            "{path}"
        );
    }
}

#[test]
fn oversized_bodies_get_413_and_never_reach_the_backend() {
    let b = Backend::start(Behaviour::Echo);
    let dir = ConfDir::new(&[
        ("gateway.json", r#"{"MaxBodyBytes": 1000}"#.to_string()),
        ("integrations/i0.json", integration(&b.url(), "")),
        ("routes/r0.json", route("POST /up", "i0", "")),
    ]);
    let gw = Gateway::start(&dir.path);
    let r = request(gw.port, "POST", "/up", &[], &[b'x'; 1001]);
    assert_eq!(
        (r.status, r.text()),
        (413, r#"{"message":"Request Entity Too Large"}"#.into())
    );
    assert!(b.requests().is_empty());
    assert_eq!(
        request(gw.port, "POST", "/up", &[], &[b'x'; 1000]).status,
        200
    );
    // Chunked bodies are counted as they stream.
    let mut c = Conn::open(gw.port);
    let chunk = format!("{:x}\r\n{}\r\n", 1500, "y".repeat(1500));
    c.send(
        "POST",
        "/up",
        &[("Transfer-Encoding", "chunked")],
        format!("{chunk}0\r\n\r\n").as_bytes(),
    );
    assert_eq!(c.read_response(false).status, 413);
}

#[test]
fn malformed_requests_get_400_and_never_crash() {
    let b = Backend::start(Behaviour::Echo);
    let dir = one_route("ANY /{proxy+}", &b.url(), "", "");
    let gw = Gateway::start(&dir.path);
    // Requests Pingora cannot parse: its own 400, connection closed.
    for bad in [
        &b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: nope\r\n\r\n"[..],
        b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"\x00\x01\x02 garbage\r\n\r\n",
    ] {
        let mut c = Conn::open(gw.port);
        c.send_raw(bad);
        assert_eq!(c.read_response(false).status, 400);
    }
    // Parsed, but not a valid path: a JSON 400 from the gateway.
    let r = gw.get("/bad%zzpath");
    assert_eq!(
        (r.status, r.text()),
        (400, r#"{"message":"Bad Request"}"#.into())
    );
    // Still serving, and nothing malformed reached the backend.
    assert_eq!(gw.get("/fine").status, 200);
    assert_eq!(b.requests().len(), 1);
}

#[test]
fn response_mapping_and_status_override() {
    let b = Backend::start(Behaviour::Echo);
    let dir = one_route(
        "GET /m",
        &b.url(),
        r#""ResponseParameters":{"200":{"overwrite:statuscode":"201","append:header.X-Copied":"$response.header.X-Backend-Header","remove:header.X-Backend-Header":"''","overwrite:header.X-Req":"$context.requestId"}}"#,
        "",
    );
    let gw = Gateway::start(&dir.path);
    let r = gw.get("/m");
    assert_eq!(r.status, 201);
    assert_eq!(r.header("x-copied"), Some("yes"));
    assert_eq!(r.header("x-backend-header"), None);
    assert_eq!(r.header("x-req"), r.header("apigw-requestid"));
}

#[test]
fn request_mapping_query_and_headers() {
    let b = Backend::start(Behaviour::Echo);
    let dir = one_route(
        "GET /q/{name}",
        &b.url(),
        r#""RequestParameters":{"append:querystring.who":"$request.path.name","remove:querystring.drop":"''","overwrite:header.X-Multi":"$request.header.X-In","overwrite:header.X-Q":"${request.querystring.a}-${context.routeKey}"}"#,
        "",
    );
    let gw = Gateway::start(&dir.path);
    let mut c = Conn::open(gw.port);
    c.send(
        "GET",
        "/q/j%C3%BCrgen?a=1&drop=x&a=2",
        &[("X-In", "one"), ("X-In", "two")],
        b"",
    );
    assert_eq!(c.read_response(false).status, 200);
    let seen = b.requests().pop().unwrap();
    assert_eq!(seen.target, "/?a=1&a=2&who=j%C3%BCrgen");
    assert_eq!(seen.header("x-multi"), Some("one,two"));
    assert_eq!(seen.header("x-q"), Some("1,2-GET /q/{name}"));
}

#[test]
fn sighup_reload_swaps_config_and_keeps_old_on_error() {
    let b1 = Backend::start(Behaviour::Slow(600));
    let b2 = Backend::start(Behaviour::Echo);
    let dir = one_route("GET /r", &b1.url(), "", "");
    let gw = Gateway::start(&dir.path);
    // A request in flight on the old config finishes on the old backend.
    let port = gw.port;
    let inflight = std::thread::spawn(move || request(port, "GET", "/r", &[], b""));
    while b1.requests().is_empty() {
        std::thread::sleep(Duration::from_millis(5));
    }
    dir.write(&[("integrations/i0.json", integration(&b2.url(), ""))]);
    gw.signal("HUP");
    gw.wait_log("configuration reloaded", 1);
    assert_eq!(inflight.join().unwrap().status, 200);
    assert_eq!(b1.requests().len(), 1);
    assert_eq!(gw.get("/r").status, 200);
    assert_eq!(b2.requests().len(), 1, "new requests go to the new backend");

    // An invalid config is reported and the running one keeps serving.
    dir.write(&[("routes/r0.json", route("GET /r", "missing", ""))]);
    gw.signal("HUP");
    gw.wait_log("reload rejected", 1);
    assert!(gw.output().contains("routes/r0.json: Target"));
    assert_eq!(gw.get("/r").status, 200);
    assert_eq!(b2.requests().len(), 2);
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let b = Backend::start(Behaviour::Slow(700));
    let dir = one_route("GET /s", &b.url(), "", "");
    let mut gw = Gateway::start(&dir.path);
    let port = gw.port;
    let inflight = std::thread::spawn(move || request(port, "GET", "/s", &[], b""));
    while b.requests().is_empty() {
        std::thread::sleep(Duration::from_millis(5));
    }
    gw.signal("TERM");
    let r = inflight.join().unwrap();
    assert_eq!(r.status, 200, "in-flight request was dropped: {}", r.text());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = gw.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "gateway did not exit after draining"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
}

#[test]
fn head_and_trailing_slash_and_case() {
    let b = Backend::start(Behaviour::Echo);
    let dir = ConfDir::new(&[
        ("integrations/i0.json", integration(&b.url(), "")),
        ("routes/r0.json", route("GET /Pets", "i0", "")),
        ("routes/r1.json", route("HEAD /h", "i0", "")),
    ]);
    let gw = Gateway::start(&dir.path);
    assert_eq!(gw.get("/Pets/").status, 200);
    assert_eq!(gw.get("/pets").status, 404);
    assert_eq!(request(gw.port, "HEAD", "/Pets", &[], b"").status, 404);
    let r = request(gw.port, "HEAD", "/h", &[], b"");
    assert_eq!(r.status, 200);
}
