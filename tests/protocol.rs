//! End to end: HTTP edges between client, gateway and backend. Requests the gateway must
//! refuse, headers that must not cross it, and backend failures after the answer started.

mod common;

use common::*;

/// A gateway in front of `b`: a greedy route, a variable route, and `$default`.
fn gateway_for(b: &Backend) -> (ConfDir, Gateway) {
    let dir = ConfDir::new(&[
        (
            "integrations/svc.json",
            integration(&format!("{}/svc/{{proxy}}", b.url()), ""),
        ),
        (
            "integrations/pets.json",
            integration(&format!("{}/pets/{{id}}", b.url()), ""),
        ),
        ("routes/u.json", route("ANY /u/{proxy+}", "svc", "")),
        ("routes/p.json", route("GET /p/{id}", "pets", "")),
    ]);
    let gw = Gateway::start(&dir.path);
    (dir, gw)
}

fn assert_json_error(r: &Response, status: u16, message: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({ "message": message }),
        "{what}"
    );
    assert!(r.header("apigw-requestid").is_some(), "{what}");
}

#[test]
fn dot_segments_never_reach_a_backend() {
    let b = Backend::start(Behaviour::Echo);
    let (_dir, gw) = gateway_for(&b);
    for path in [
        "/u/../../admin",
        "/u/a/../../../admin",
        "/u/%2e%2e/%2E%2E/admin",
        "/u/.%2e/admin",
        "/u/./x",
        "/p/..",
        "/p/%2e",
    ] {
        assert_json_error(&gw.get(path), 400, "Bad Request", path);
    }
    assert!(b.requests().is_empty(), "a backend saw {:?}", b.requests());
    // Dots inside a segment are ordinary characters.
    for path in ["/u/..hidden", "/u/a.b/c..d", "/p/v1.2"] {
        assert_eq!(gw.get(path).status, 200, "{path}");
    }
}

#[test]
fn request_targets_the_gateway_cannot_route_are_400() {
    let b = Backend::start(Behaviour::Echo);
    let (_dir, gw) = gateway_for(&b);
    // `OPTIONS *` and CONNECT name no path: a JSON 400, never Pingora's bare 405.
    for raw in [
        "OPTIONS * HTTP/1.1\r\nHost: gateway.test\r\n\r\n",
        "CONNECT backend.example:443 HTTP/1.1\r\nHost: backend.example:443\r\n\r\n",
        "GET /u/x HTTP/1.1\r\nUser-Agent: no-host\r\n\r\n",
    ] {
        let mut c = Conn::open(gw.port);
        c.send_raw(raw.as_bytes());
        assert_json_error(&c.read_response(false), 400, "Bad Request", raw);
    }
    // HTTP/1.0 has no Host requirement.
    let mut c = Conn::open(gw.port);
    c.send_raw(b"GET /u/x HTTP/1.0\r\n\r\n");
    assert_eq!(c.read_response(false).status, 200);
    assert_eq!(b.requests().len(), 1);
}

#[test]
fn a_backend_failing_mid_body_cuts_the_answer_without_a_json_tail() {
    // Promises 10 bytes, sends 3, hangs up.
    let b = Backend::start(Behaviour::Raw(
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Type: text/plain\r\n\r\nabc",
    ));
    let (_dir, gw) = gateway_for(&b);
    let mut c = Conn::open(gw.port);
    c.send("GET", "/u/x", &[], b"");
    let raw = String::from_utf8_lossy(&c.read_all()).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    assert!(head.starts_with("HTTP/1.1 200"), "{raw}");
    assert_eq!(
        body, "abc",
        "the client must see a short body, not {body:?}"
    );
    gw.wait_metric(r#"apigate_rejections_total{reason="bad_gateway"}"#, 1.0);
}

#[test]
fn hop_by_hop_headers_stop_at_the_gateway_both_ways() {
    let b = Backend::start(Behaviour::Raw(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Secret-Resp\r\nX-Secret-Resp: s\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nUpgrade: h2c\r\nTrailer: X-T\r\nX-Kept: yes\r\n\r\nok",
    ));
    let (_dir, gw) = gateway_for(&b);
    let r = request(
        gw.port,
        "GET",
        "/u/x",
        &[("Upgrade", "websocket"), ("Connection", "Upgrade")],
        b"",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    for name in [
        "x-secret-resp",
        "keep-alive",
        "proxy-authenticate",
        "upgrade",
        "trailer",
    ] {
        assert_eq!(r.header(name), None, "{name} reached the client");
    }
    assert_eq!(r.header("x-kept"), Some("yes"));
    let seen = &b.requests()[0];
    assert_eq!(seen.header("upgrade"), None, "Upgrade reached the backend");
    assert_eq!(seen.header("via"), Some("1.1 apigate"));
}

#[test]
fn the_client_host_cannot_add_forwarded_elements() {
    let b = Backend::start(Behaviour::Echo);
    let (_dir, gw) = gateway_for(&b);
    for (host, want) in [
        ("a.example,for=6.6.6.6", "for=127.0.0.1;proto=http"),
        ("a.example;proto=https", "for=127.0.0.1;proto=http"),
        ("a\"b", "for=127.0.0.1;proto=http"),
        ("api.example", "for=127.0.0.1;host=api.example;proto=http"),
        (
            "api.example:8080",
            "for=127.0.0.1;host=\"api.example:8080\";proto=http",
        ),
        ("[::1]:8080", "for=127.0.0.1;host=\"[::1]:8080\";proto=http"),
    ] {
        let mut c = Conn::open(gw.port);
        c.send_raw(format!("GET /u/x HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        assert_eq!(c.read_response(false).status, 200, "{host}");
        let seen = b.requests().pop().unwrap();
        assert_eq!(seen.header("forwarded"), Some(want), "Host: {host}");
    }
}

#[test]
fn backend_answers_outside_http_status_range_are_502() {
    let b = Backend::start(Behaviour::Raw(
        "HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok",
    ));
    let (_dir, gw) = gateway_for(&b);
    assert_json_error(&gw.get("/u/x"), 502, "Bad Gateway", "status 999");
}

#[test]
fn mapped_204_carries_no_body_framing_and_1xx_is_refused() {
    let b = Backend::start(Behaviour::Echo);
    let dir = ConfDir::new(&[
        (
            "integrations/i.json",
            integration(
                &b.url(),
                r#""ResponseParameters":{"200":{"overwrite:statuscode":"204"}}"#,
            ),
        ),
        ("routes/r.json", route("GET /gone", "i", "")),
    ]);
    let gw = Gateway::start(&dir.path);
    // Two requests on one connection: a stray body or length would break the second.
    let mut c = Conn::open(gw.port);
    for _ in 0..2 {
        c.send("GET", "/gone", &[], b"");
        let r = c.read_response(false);
        assert_eq!(r.status, 204);
        assert_eq!(r.header("content-length"), None);
        assert_eq!(r.header("transfer-encoding"), None);
    }
    dir.write(&[(
        "integrations/i.json",
        integration(
            &b.url(),
            r#""ResponseParameters":{"200":{"overwrite:statuscode":"100"}}"#,
        ),
    )]);
    let out = std::process::Command::new(BIN)
        .args(["check", "--conf"])
        .arg(&dir.path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("200-599"), "{err}");
}

#[test]
fn an_abandoned_request_is_counted_as_499() {
    let b = Backend::start(Behaviour::Slow(3000));
    let (_dir, gw) = gateway_for(&b);
    let mut c = Conn::open(gw.port);
    c.send("GET", "/u/slow", &[], b"");
    // The request is at the backend; the client gives up.
    gw.wait_metric("apigate_requests_in_flight", 1.0);
    drop(c);
    gw.wait_metric(
        r#"apigate_requests_total{api="-",method="GET",route="ANY /u/{proxy+}",stage="$default",status="499"}"#,
        1.0,
    );
}

#[test]
fn serve_refuses_an_address_it_cannot_listen_on() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let dir = ConfDir::new(&[
        ("integrations/i.json", integration("http://127.0.0.1:9", "")),
        ("routes/r.json", route("GET /x", "i", "")),
    ]);
    for (flag, addr) in [
        ("--listen", busy_addr.as_str()),
        ("--listen", "nope"),
        ("--metrics", "nope:1"),
    ] {
        let free = format!("127.0.0.1:{}", free_port());
        let mut args = vec!["serve", "--conf", dir.path.to_str().unwrap()];
        if flag == "--listen" {
            args.extend([flag, addr]);
        } else {
            args.extend(["--listen", &free, flag, addr]);
        }
        let out = std::process::Command::new(BIN)
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} {addr} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag) && err.contains("not started"), "{err}");
    }
    let out = std::process::Command::new(BIN)
        .args(["echo", "--listen", &busy_addr])
        .output()
        .unwrap();
    assert!(!out.status.success(), "echo started on a busy port");
}

#[test]
fn timeout_bounds_the_whole_wait_for_a_trickling_backend() {
    // Every byte comes well within the timeout; the whole head does not.
    let b = Backend::start(Behaviour::Trickle(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Padding: ........\r\n\r\nok",
        20,
    ));
    let dir = ConfDir::new(&[
        (
            "integrations/i.json",
            integration(&b.url(), r#""TimeoutInMillis":200"#),
        ),
        ("routes/r.json", route("GET /r", "i", "")),
    ]);
    let gw = Gateway::start(&dir.path);
    assert_json_error(&gw.get("/r"), 503, "Service Unavailable", "trickle");
}

#[test]
fn pipelined_requests_are_all_answered_in_order() {
    let b = Backend::start(Behaviour::Echo);
    let (_dir, gw) = gateway_for(&b);
    let mut c = Conn::open(gw.port);
    c.send_raw(
        b"GET /u/one HTTP/1.1\r\nHost: g\r\n\r\nGET /nope HTTP/1.1\r\nHost: g\r\n\r\nGET /u/three HTTP/1.1\r\nHost: g\r\n\r\n",
    );
    let first = c.read_response(false);
    let second = c.read_response(false);
    let third = c.read_response(false);
    assert_eq!((first.status, second.status, third.status), (200, 404, 200));
    assert!(first.text().contains("/svc/one"), "{}", first.text());
    assert!(third.text().contains("/svc/three"), "{}", third.text());
}
