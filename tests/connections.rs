//! End to end: client connections are bounded (issue "The edge holds", findings 3 and 4):
//! keep-alive idle timeout, one deadline for a whole request head, AWS's head-size quota,
//! a total deadline for the request body, a connection cap, and bounded settings.
//! Timeouts are configured short here; every wait is bounded.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A gateway in front of an echo backend with these `gateway.json` members.
fn gateway(settings: &str, backend: &str) -> (ConfDir, Gateway) {
    let dir = ConfDir::new(&[
        ("gateway.json", format!("{{{settings}}}")),
        ("integrations/i.json", integration(backend, "")),
        ("routes/r.json", route("ANY /{proxy+}", "i", "")),
    ]);
    let gw = Gateway::start(&dir.path);
    (dir, gw)
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until the gateway closes the connection (bounded by the read timeout).
fn read_until_closed(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // A reset after the answer is a close too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(_) => return (out, false),
        }
    }
}

fn status_of(bytes: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(bytes);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer in {text:?}"))
}

fn body_of(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

#[test]
fn idle_keepalive_connection_is_closed_after_the_idle_timeout() {
    let b = Backend::start(Behaviour::Echo);
    let (_dir, gw) = gateway(r#""KeepaliveTimeoutInMillis": 500"#, &b.url());
    let mut conn = Conn::open(gw.port);
    // The client's own `Keep-Alive: timeout=` cannot lengthen it.
    conn.send("GET", "/a", &[("Keep-Alive", "timeout=3600")], b"");
    assert_eq!(conn.read_response(false).status, 200);
    let idle_from = Instant::now();
    assert!(conn.read_all().is_empty(), "the idle close sends nothing");
    assert!(
        idle_from.elapsed() >= Duration::from_millis(450),
        "closed before the idle timeout"
    );

    // Before the timeout the connection is reused.
    let mut conn = Conn::open(gw.port);
    for _ in 0..3 {
        conn.send("GET", "/b", &[], b"");
        assert_eq!(conn.read_response(false).status, 200);
    }
    assert_eq!(b.requests().len(), 4);
}

#[test]
fn dripped_head_is_cut_at_the_head_deadline_though_each_byte_is_in_time() {
    let b = Backend::start(Behaviour::Echo);
    let (_dir, gw) = gateway(
        r#""RequestHeadTimeoutInMillis": 1000, "KeepaliveTimeoutInMillis": 60000"#,
        &b.url(),
    );
    let mut s = connect(gw.port);
    s.write_all(b"GET /drip HTTP/1.1\r\nHost: gateway.test\r\n")
        .unwrap();
    let writer = s.try_clone().unwrap();
    let started = Instant::now();
    // One byte every 100 ms (far inside Pingora's 60 s per-read timeout), for at most 8 s.
    let drip = std::thread::spawn(move || {
        let mut w = writer;
        for i in 0..80 {
            if w.write_all(&[b'a' + (i % 26) as u8]).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    });
    let (answer, closed) = read_until_closed(&mut s);
    let took = started.elapsed();
    assert!(closed, "the dripping connection was never closed");
    assert_eq!(
        status_of(&answer),
        408,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(body_of(&answer), r#"{"message":"Request Timeout"}"#);
    assert!(String::from_utf8_lossy(&answer).contains("apigw-requestid: "));
    assert!(
        took >= Duration::from_millis(900),
        "cut before the deadline"
    );
    let _ = s.shutdown(Shutdown::Both);
    drip.join().unwrap();
    assert!(
        b.requests().is_empty(),
        "a partial head reached the backend"
    );
}

#[test]
fn a_second_head_on_a_kept_alive_connection_has_its_own_deadline() {
    let b = Backend::start(Behaviour::Echo);
    let (_dir, gw) = gateway(r#""RequestHeadTimeoutInMillis": 800"#, &b.url());
    let mut conn = Conn::open(gw.port);
    conn.send("GET", "/one", &[], b"");
    assert_eq!(conn.read_response(false).status, 200);
    // Half a head, then silence: 408 at the head deadline, not the 75 s keep-alive one.
    conn.send_raw(b"GET /two HTTP/1.1\r\nHost: gateway.test\r\n");
    let r = conn.read_response(false);
    assert_eq!(
        (r.status, r.text()),
        (408, r#"{"message":"Request Timeout"}"#.into())
    );
    assert!(conn.is_closed());
}

#[test]
fn silent_new_connection_is_closed_quietly_at_the_head_deadline() {
    let b = Backend::start(Behaviour::Echo);
    let (_dir, gw) = gateway(r#""RequestHeadTimeoutInMillis": 500"#, &b.url());
    let mut s = connect(gw.port);
    let (answer, closed) = read_until_closed(&mut s);
    assert!(closed);
    assert!(answer.is_empty(), "nothing was asked, nothing is answered");
}

#[test]
fn oversized_request_line_and_headers_are_answered_as_aws_counts_them() {
    let b = Backend::start(Behaviour::Echo);
    let (_dir, gw) = gateway("", &b.url());
    // AWS: request line + header values <= 10240 bytes. "GET /x HTTP/1.1" is 15 bytes, and
    // the harness adds `Host: gateway.test` (12 bytes of value).
    let fits = "v".repeat(10240 - 15 - 12);
    let r = request(gw.port, "GET", "/x", &[("X-Big", &fits)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let over = "v".repeat(10240 - 15 - 12 + 1);
    let r = request(gw.port, "GET", "/x", &[("X-Big", &over)], b"");
    assert_eq!(
        (r.status, r.text()),
        (
            431,
            r#"{"message":"Request Header Fields Too Large"}"#.into()
        )
    );
    assert!(r.header("apigw-requestid").is_some());
    // Split over many headers it is the same sum.
    let part = "v".repeat(1100);
    let many: Vec<(&str, &str)> = (0..10).map(|_| ("X-Part", part.as_str())).collect();
    assert_eq!(request(gw.port, "GET", "/x", &many, b"").status, 431);

    let long_path = format!("/{}", "p".repeat(10240));
    let r = request(gw.port, "GET", &long_path, &[], b"");
    assert_eq!(
        (r.status, r.text()),
        (414, r#"{"message":"Request-URI Too Long"}"#.into())
    );
    assert_eq!(
        b.requests().len(),
        1,
        "only the request within the quota reached the backend"
    );
}

#[test]
fn huge_heads_are_refused_before_they_are_buffered() {
    let b = Backend::start(Behaviour::Echo);
    let (_dir, gw) = gateway("", &b.url());
    // 1 MiB of header lines: refused by the connection layer once past the quota and the
    // room for header names, then answered and closed (the answer survives the close).
    let mut s = connect(gw.port);
    let mut head = b"GET /x HTTP/1.1\r\nHost: gateway.test\r\n".to_vec();
    while head.len() < 1 << 20 {
        head.extend_from_slice(format!("X-{}: {}\r\n", head.len(), "h".repeat(1000)).as_bytes());
    }
    let writer = {
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = w.write_all(&head);
        })
    };
    let (answer, closed) = read_until_closed(&mut s);
    assert!(closed);
    assert_eq!(
        status_of(&answer),
        431,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(
        body_of(&answer),
        r#"{"message":"Request Header Fields Too Large"}"#
    );
    let _ = s.shutdown(Shutdown::Both);
    writer.join().unwrap();

    // A request line that never ends is a 414.
    let mut s = connect(gw.port);
    let line = format!("GET /{}", "p".repeat(40_000));
    let _ = s.write_all(line.as_bytes());
    let (answer, closed) = read_until_closed(&mut s);
    assert!(closed);
    assert_eq!(status_of(&answer), 414);
    assert!(b.requests().is_empty());
}

/// Per backend connection: the bytes received, and whether the gateway has closed it.
type Recorded = Vec<(Vec<u8>, bool)>;

/// A backend that reads whatever it is sent and records, per connection, the bytes and
/// whether the gateway closed the connection.
struct Recorder {
    port: u16,
    conns: Arc<Mutex<Recorded>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let conns = Arc::new(Mutex::new(Vec::new()));
        let record = conns.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let record = record.clone();
                std::thread::spawn(move || {
                    let i = {
                        let mut r = record.lock().unwrap();
                        r.push((Vec::new(), false));
                        r.len() - 1
                    };
                    stream
                        .set_read_timeout(Some(Duration::from_secs(20)))
                        .unwrap();
                    let mut buf = [0u8; 4096];
                    loop {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => record.lock().unwrap()[i].0.extend_from_slice(&buf[..n]),
                        }
                    }
                    record.lock().unwrap()[i].1 = true;
                });
            }
        });
        Recorder { port, conns }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits (bounded) until every connection the backend got is closed.
    fn wait_all_closed(&self) -> Recorded {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let conns = self.conns.lock().unwrap().clone();
            if !conns.is_empty() && conns.iter().all(|(_, closed)| *closed) {
                return conns;
            }
            assert!(
                Instant::now() < deadline,
                "the backend connection was never released: {conns:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn slow_body_is_cut_at_the_body_deadline_releasing_client_and_backend() {
    let backend = Recorder::start();
    let (_dir, gw) = gateway(r#""RequestBodyTimeoutInMillis": 1000"#, &backend.url());
    let mut s = connect(gw.port);
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 40\r\n\r\n")
        .unwrap();
    let writer = s.try_clone().unwrap();
    let started = Instant::now();
    // One body byte every 100 ms: 40 bytes would take 4 s; the deadline is 1 s.
    let drip = std::thread::spawn(move || {
        let mut w = writer;
        for _ in 0..40 {
            if w.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let (answer, closed) = read_until_closed(&mut s);
    let took = started.elapsed();
    assert!(closed, "the client connection was never closed");
    assert_eq!(
        status_of(&answer),
        408,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(body_of(&answer), r#"{"message":"Request Timeout"}"#);
    assert!(
        took >= Duration::from_millis(900),
        "cut before the deadline"
    );
    let _ = s.shutdown(Shutdown::Both);
    drip.join().unwrap();

    let conns = backend.wait_all_closed();
    let (bytes, _) = &conns[0];
    let text = String::from_utf8_lossy(bytes);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert!(
        text.starts_with("POST ") && body.len() < 40,
        "the backend saw a whole body: {text:?}"
    );
}

#[test]
fn connection_cap_answers_the_next_connection_503_and_frees_slots_on_close() {
    let b = Backend::start(Behaviour::Echo);
    let (_dir, gw) = gateway(r#""MaxConnections": 3"#, &b.url());
    // Three kept-alive connections, each proven served.
    let mut held: Vec<Conn> = (0..3)
        .map(|_| {
            let mut c = Conn::open(gw.port);
            c.send("GET", "/held", &[], b"");
            assert_eq!(c.read_response(false).status, 200);
            c
        })
        .collect();
    let mut s = connect(gw.port);
    let (answer, closed) = read_until_closed(&mut s);
    assert!(closed);
    assert_eq!(
        status_of(&answer),
        503,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(body_of(&answer), r#"{"message":"Service Unavailable"}"#);
    gw.wait_metric("apigate_client_connections", 3.0);
    gw.wait_metric(r#"apigate_rejections_total{reason="overloaded"}"#, 1.0);
    // The held ones still work.
    held[0].send("GET", "/still", &[], b"");
    assert_eq!(held[0].read_response(false).status, 200);

    // Once one closes, a new connection is served (the gateway notices the close promptly,
    // but asynchronously: retry, bounded).
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = Conn::open(gw.port);
        c.send("GET", "/new", &[], b"");
        let r = c.read_response(false);
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503);
        assert!(Instant::now() < deadline, "the slot was never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn idle_connections_are_all_reaped() {
    let b = Backend::start(Behaviour::Echo);
    let (_dir, gw) = gateway(
        r#""KeepaliveTimeoutInMillis": 300, "RequestHeadTimeoutInMillis": 300"#,
        &b.url(),
    );
    // 200 connections: half served and left idle, half never sending a byte.
    let mut conns: Vec<TcpStream> = Vec::new();
    for i in 0..200 {
        let mut s = connect(gw.port);
        if i % 2 == 0 {
            s.write_all(b"GET /x HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
                .unwrap();
        }
        conns.push(s);
    }
    let mut closed = 0;
    for (i, s) in conns.iter_mut().enumerate() {
        let (bytes, was_closed) = read_until_closed(s);
        closed += usize::from(was_closed);
        if i % 2 == 0 {
            assert_eq!(status_of(&bytes), 200);
        } else {
            assert!(bytes.is_empty());
        }
    }
    assert_eq!(closed, 200);
}

#[test]
fn settings_out_of_bounds_are_refused_by_check_with_field_and_range() {
    let dir = ConfDir::new(&[
        (
            "gateway.json",
            r#"{"UpstreamKeepalivePoolSize": 1000000000000, "Threads": 0, "MaxBodyBytes": 0,
                "KeepaliveTimeoutInMillis": 99999999999, "RequestHeadTimeoutInMillis": 10,
                "RequestBodyTimeoutInMillis": 0, "MaxRequestHeadBytes": 100,
                "MaxConnections": 0}"#
                .to_string(),
        ),
        ("integrations/i.json", integration("http://127.0.0.1:9", "")),
        ("routes/r.json", route("ANY /{proxy+}", "i", "")),
    ]);
    let out = std::process::Command::new(BIN)
        .args(["check", "--conf"])
        .arg(&dir.path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "gateway.json: UpstreamKeepalivePoolSize: 1000000000000 is outside 0..65536",
        "gateway.json: Threads: 0 is outside 1..256",
        "gateway.json: MaxBodyBytes: 0 is outside 1..1073741824",
        "gateway.json: KeepaliveTimeoutInMillis: 99999999999 is outside 100..3600000",
        "gateway.json: RequestHeadTimeoutInMillis: 10 is outside 100..300000",
        "gateway.json: RequestBodyTimeoutInMillis: 0 is outside 100..3600000",
        "gateway.json: MaxRequestHeadBytes: 100 is outside 1024..65536",
        "gateway.json: MaxConnections: 0 is outside 1..1000000",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("(fix: use a value from 0 to 65536, or leave it out for 128"));

    // The same file for `serve`: it refuses to start instead of allocating.
    let out = std::process::Command::new(BIN)
        .args(["serve", "--conf"])
        .arg(&dir.path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not started"));
}

#[test]
fn reloaded_limits_apply_to_the_next_connection_and_bad_ones_keep_the_old() {
    let b = Backend::start(Behaviour::Echo);
    let (dir, gw) = gateway(r#""MaxRequestHeadBytes": 2048"#, &b.url());
    let value = "v".repeat(3000);
    assert_eq!(
        request(gw.port, "GET", "/x", &[("X-Big", &value)], b"").status,
        431
    );
    dir.write(&[(
        "gateway.json",
        r#"{"MaxRequestHeadBytes": 4096}"#.to_string(),
    )]);
    gw.signal("HUP");
    gw.wait_log("configuration reloaded", 1);
    assert_eq!(
        request(gw.port, "GET", "/x", &[("X-Big", &value)], b"").status,
        200
    );
    // Out of bounds: refused with the field and range, the running limits stay.
    dir.write(&[("gateway.json", r#"{"MaxRequestHeadBytes": 1}"#.to_string())]);
    gw.signal("HUP");
    gw.wait_log("reload rejected", 1);
    assert!(gw
        .output()
        .contains("gateway.json: MaxRequestHeadBytes: 1 is outside 1024..65536"));
    assert_eq!(
        request(gw.port, "GET", "/x", &[("X-Big", &value)], b"").status,
        200
    );
}
