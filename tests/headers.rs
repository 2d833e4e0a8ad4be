//! End to end: the headers that cross the gateway (findings 5, 6, 7 and 9 of "The edge
//! holds"). Clients write raw bytes; the backends record the exact bytes they receive, and
//! one is a real WSGI server (Python's `wsgiref`), which reads `X_User` and `X-User` as the
//! same `HTTP_X_USER`.

mod common;

use base64::Engine;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A backend that records every request exactly as it arrived (head and body bytes) and
/// answers each with `reply`.
struct RawBackend {
    port: u16,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl RawBackend {
    fn start(reply: &'static str) -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = log.clone();
                std::thread::spawn(move || serve_raw(stream, reply, log));
            }
        });
        RawBackend { port, seen }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests received so far, as text (heads are ASCII here).
    fn requests(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    }
}

fn serve_raw(stream: TcpStream, reply: &'static str, log: Arc<Mutex<Vec<Vec<u8>>>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut raw = Vec::new();
        let mut length = 0usize;
        let mut chunked = false;
        loop {
            let before = raw.len();
            if reader.read_until(b'\n', &mut raw).unwrap_or(0) == 0 {
                return;
            }
            let line = String::from_utf8_lossy(&raw[before..]).to_ascii_lowercase();
            if let Some(v) = line.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if line.starts_with("transfer-encoding:") && line.contains("chunked") {
                chunked = true;
            }
            if line == "\r\n" {
                break;
            }
        }
        if chunked {
            // Until the last chunk and the empty trailer section.
            while !raw.ends_with(b"\r\n0\r\n\r\n") {
                if reader.read_until(b'\n', &mut raw).unwrap_or(0) == 0 {
                    return;
                }
            }
        } else {
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            raw.extend_from_slice(&body);
        }
        log.lock().unwrap().push(raw);
        if reader.get_mut().write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// Header lines (name: value) of a recorded request.
fn header_lines(raw: &str) -> Vec<(String, String)> {
    raw.split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

fn values(raw: &str, name: &str) -> Vec<String> {
    header_lines(raw)
        .into_iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v)
        .collect()
}

/// One raw request on a fresh connection; its answer.
fn send(port: u16, raw: &str) -> Response {
    let mut c = Conn::open(port);
    c.send_raw(raw.as_bytes());
    c.read_response(false)
}

fn assert_aws_error(r: &Response, status: u16, message: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({ "message": message }),
        "{what}"
    );
    assert!(r.header("apigw-requestid").is_some(), "{what}: {r:?}");
}

fn gateway(files: &[(&str, String)]) -> (ConfDir, Gateway) {
    let dir = ConfDir::new(files);
    let gw = Gateway::start(&dir.path);
    (dir, gw)
}

// ---- Finding 5: underscore twins of identity headers ----

const SECRET: &[u8] = b"an HS256 secret of 32+ bytes, for tests only";

fn token(sub: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some("k1".into());
    let claims =
        serde_json::json!({"sub": sub, "iss": "https://issuer.test", "aud": "api", "exp": exp});
    jsonwebtoken::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_secret(SECRET)).unwrap()
}

/// `GET /me` behind a JWT authorizer, mapping `X-User` from the `sub` claim.
fn identity_conf(backend: &str, gateway_json: &str) -> Vec<(&'static str, String)> {
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SECRET);
    vec![
        ("gateway.json", gateway_json.to_string()),
        (
            "authorizers/auth.json",
            format!(
                r#"{{"AuthorizerType":"JWT","IdentitySource":["$request.header.Authorization"],"JwtConfiguration":{{"Issuer":"https://issuer.test","Audience":["api"]}},"Jwks":{{"keys":[{{"kty":"oct","kid":"k1","alg":"HS256","k":"{k}"}}]}}}}"#
            ),
        ),
        (
            "integrations/i.json",
            integration(
                backend,
                r#""RequestParameters":{"overwrite:header.X-User":"$context.authorizer.claims.sub"}"#,
            ),
        ),
        (
            "routes/me.json",
            route(
                "GET /me",
                "i",
                r#""AuthorizationType":"JWT","AuthorizerId":"auth""#,
            ),
        ),
    ]
}

fn me_request(port: u16, extra: &str) -> Response {
    send(
        port,
        &format!(
            "GET /me HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {}\r\n{extra}\r\n",
            token("alice")
        ),
    )
}

/// Python's `wsgiref` serving one WSGI app that answers the CGI variables it was given.
struct Wsgi {
    child: Child,
    port: u16,
}

impl Wsgi {
    fn start() -> Wsgi {
        const APP: &str = r#"
import json, sys
from wsgiref.simple_server import make_server, WSGIRequestHandler
class Quiet(WSGIRequestHandler):
    def log_message(self, *a): pass
def app(environ, start):
    body = json.dumps({k: v for k, v in environ.items() if k.startswith("HTTP_")}).encode()
    start("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
srv = make_server("127.0.0.1", 0, app, handler_class=Quiet)
print(srv.server_port, flush=True)
srv.serve_forever()
"#;
        let mut child = Command::new("python3")
            .args(["-c", APP])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is needed for the WSGI backend");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("the WSGI server's port");
        wait_listening(port, Some(&mut child));
        Wsgi { child, port }
    }
}

impl Drop for Wsgi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn underscore_twins_of_identity_headers_never_reach_a_wsgi_backend() {
    let wsgi = Wsgi::start();
    let url = format!("http://127.0.0.1:{}", wsgi.port);
    let (_d, gw) = gateway(&identity_conf(&url, "{}"));
    let r = me_request(
        gw.port,
        "X_User: admin\r\nX_Forwarded_For: 10.0.0.1\r\nx_user: root\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let env = r.json();
    // Without the drop, wsgiref reads "admin,alice" (or "alice,admin").
    assert_eq!(env["HTTP_X_USER"], "alice", "{env}");
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], "127.0.0.1", "{env}");
}

#[test]
fn underscored_headers_are_dropped_unless_allowed() {
    let b = RawBackend::start(OK);
    let (_d, gw) = gateway(&identity_conf(&b.url(), "{}"));
    assert_eq!(
        me_request(
            gw.port,
            "X_User: admin\r\nX_Forwarded_For: 10.0.0.1\r\nX-Kept: yes\r\n"
        )
        .status,
        200
    );
    let (_d2, allowing) = gateway(&identity_conf(
        &b.url(),
        r#"{"AllowUnderscoresInHeaders":true}"#,
    ));
    assert_eq!(me_request(allowing.port, "X_Custom: 1\r\n").status, 200);
    let seen = b.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let dropped = &seen[0];
    assert!(!dropped.to_ascii_lowercase().contains("x_"), "{dropped}");
    assert_eq!(values(dropped, "x-user"), ["alice"], "{dropped}");
    assert_eq!(values(dropped, "x-kept"), ["yes"], "{dropped}");
    assert_eq!(
        values(dropped, "x-forwarded-for"),
        ["127.0.0.1"],
        "{dropped}"
    );
    // With AllowUnderscoresInHeaders the operator chose to pass them on.
    assert_eq!(values(&seen[1], "x_custom"), ["1"], "{}", seen[1]);
}

// ---- Finding 6: X-Forwarded-Host, -Prefix, -Server ----

const CLIENT_FORWARDING: &str =
    "X-Forwarded-Host: evil.example\r\nX-Forwarded-Prefix: /evil\r\nX-Forwarded-Server: evil\r\n";

fn forwarding_conf(b: &RawBackend, gateway_json: &str) -> Vec<(&'static str, String)> {
    vec![
        ("gateway.json", gateway_json.to_string()),
        ("integrations/i.json", integration(&b.url(), "")),
        ("routes/r.json", route("ANY /r", "i", "")),
    ]
}

#[test]
fn client_forwarding_headers_are_removed_unless_the_peer_is_a_trusted_proxy() {
    let b = RawBackend::start(OK);
    let (_d, untrusted) = gateway(&forwarding_conf(
        &b,
        r#"{"TrustedProxies":["192.0.2.0/24"]}"#,
    ));
    let (_d2, trusted) = gateway(&forwarding_conf(
        &b,
        r#"{"TrustedProxies":["127.0.0.0/8"]}"#,
    ));
    let raw = format!("GET /r HTTP/1.1\r\nHost: gw.test\r\n{CLIENT_FORWARDING}\r\n");
    assert_eq!(send(untrusted.port, &raw).status, 200);
    assert_eq!(send(trusted.port, &raw).status, 200);
    let seen = b.requests();
    assert_eq!(seen.len(), 2);
    for name in [
        "x-forwarded-host",
        "x-forwarded-prefix",
        "x-forwarded-server",
    ] {
        assert!(values(&seen[0], name).is_empty(), "{name}: {}", seen[0]);
        assert_eq!(values(&seen[1], name).len(), 1, "{name}: {}", seen[1]);
    }
    assert_eq!(values(&seen[1], "x-forwarded-host"), ["evil.example"]);
}

#[test]
fn operators_may_set_or_remove_the_headers_apigate_does_not_set() {
    let b = RawBackend::start(OK);
    let mut conf = forwarding_conf(&b, r#"{"TrustedProxies":["127.0.0.0/8"]}"#);
    conf.push((
        "integrations/i.json",
        integration(
            &b.url(),
            r#""RequestParameters":{"remove:header.X-Forwarded-Host":"","overwrite:header.X-Forwarded-Prefix":"/api"}"#,
        ),
    ));
    let dir = ConfDir::new(&conf);
    let (ok, out) = check(&dir);
    assert!(ok, "{out}");
    let gw = Gateway::start(&dir.path);
    let raw = format!("GET /r HTTP/1.1\r\nHost: gw.test\r\n{CLIENT_FORWARDING}\r\n");
    assert_eq!(send(gw.port, &raw).status, 200);
    let seen = b.requests();
    assert!(
        values(&seen[0], "x-forwarded-host").is_empty(),
        "{}",
        seen[0]
    );
    assert_eq!(
        values(&seen[0], "x-forwarded-prefix"),
        ["/api"],
        "{}",
        seen[0]
    );
    assert_eq!(
        values(&seen[0], "x-forwarded-server"),
        ["evil"],
        "{}",
        seen[0]
    );

    // What the gateway owns stays reserved, and the error says why.
    dir.write(&[(
        "integrations/i.json",
        integration(
            &b.url(),
            r#""RequestParameters":{"remove:header.X-Forwarded-For":"","overwrite:header.Transfer-Encoding":"x","overwrite:header.Authorization":"x"}"#,
        ),
    )]);
    let (ok, out) = check(&dir);
    assert!(!ok, "{out}");
    assert!(
        out.contains("X-Forwarded-For\" is reserved: the gateway sets it itself"),
        "{out}"
    );
    assert!(
        out.contains("Transfer-Encoding\" is reserved: it frames the message"),
        "{out}"
    );
    assert!(
        out.contains("Authorization\" is reserved: AWS HTTP APIs reserve it"),
        "{out}"
    );
}

// ---- Finding 7: a 101 without Upgrade ----

#[test]
fn a_backend_switching_protocols_is_a_502_and_none_of_its_bytes_reach_the_client() {
    let b = RawBackend::start(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nRAW-BACKEND-BYTES",
    );
    let conf = forwarding_conf(&b, "{}");
    let (_d, gw) = gateway(&conf);
    for upgrade in ["", "Upgrade: websocket\r\nConnection: Upgrade\r\n"] {
        let mut c = Conn::open(gw.port);
        c.send_raw(format!("GET /r HTTP/1.1\r\nHost: gw.test\r\n{upgrade}\r\n").as_bytes());
        let r = c.read_response(false);
        assert_aws_error(&r, 502, "Bad Gateway", upgrade);
        let rest = String::from_utf8_lossy(&c.read_all()).into_owned();
        assert!(!rest.contains("RAW-BACKEND"), "{upgrade:?}: {rest}");
        assert!(!r.text().contains("RAW-BACKEND"));
    }
    // The gateway never asked for an upgrade.
    for seen in b.requests() {
        assert!(values(&seen, "upgrade").is_empty(), "{seen}");
    }
}

// ---- Finding 9: Content-Length, Transfer-Encoding ----

#[test]
fn identical_content_lengths_reach_the_backend_as_one() {
    let b = RawBackend::start(OK);
    let (_d, gw) = gateway(&forwarding_conf(&b, "{}"));
    let r = send(
        gw.port,
        "GET /r HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5, 5\r\n\r\nhello",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = send(
        gw.port,
        "GET /r HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = b.requests();
    assert_eq!(seen.len(), 2);
    for raw in &seen {
        assert_eq!(values(raw, "content-length"), ["5"], "{raw}");
        assert!(raw.ends_with("\r\n\r\nhello"), "{raw}");
    }
}

#[test]
fn conflicting_content_lengths_are_400_and_reach_no_backend() {
    let b = RawBackend::start(OK);
    let (_d, gw) = gateway(&forwarding_conf(&b, "{}"));
    for lengths in [
        "Content-Length: 5, 6\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
    ] {
        let mut c = Conn::open(gw.port);
        c.send_raw(format!("GET /r HTTP/1.1\r\nHost: gw.test\r\n{lengths}\r\nhello!").as_bytes());
        let r = c.read_response(false);
        assert_eq!(r.status, 400, "{lengths:?}");
        assert!(c.is_closed(), "{lengths:?}: the connection must close");
    }
    assert!(b.requests().is_empty(), "{:?}", b.requests());
}

#[test]
fn transfer_codings_other_than_chunked_are_refused() {
    let b = RawBackend::start(OK);
    let (_d, gw) = gateway(&forwarding_conf(&b, "{}"));
    let body = "5\r\nhello\r\n0\r\n\r\n";
    for te in [
        "gzip, chunked",
        "Transfer-Encoding: x\r\nTransfer-Encoding: chunked",
    ] {
        let te_lines = if te.starts_with("Transfer") {
            format!("{te}\r\n")
        } else {
            format!("Transfer-Encoding: {te}\r\n")
        };
        let mut c = Conn::open(gw.port);
        c.send_raw(format!("POST /r HTTP/1.1\r\nHost: gw.test\r\n{te_lines}\r\n{body}").as_bytes());
        let r = c.read_response(false);
        assert_aws_error(&r, 501, "Not Implemented", te);
        assert!(
            c.is_closed(),
            "{te}: the unread body must not be read as a request"
        );
    }
    // `chunked` twice is malformed (RFC 9112 6.1); a final coding other than chunked is
    // Pingora's own 400 (RFC 9112 6.3), before any gateway code runs.
    let r = send(
        gw.port,
        &format!("POST /r HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked, chunked\r\n\r\n{body}"),
    );
    assert_aws_error(&r, 400, "Bad Request", "chunked, chunked");
    for te in ["identity", "chunked, gzip"] {
        let r = send(
            gw.port,
            &format!("POST /r HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: {te}\r\n\r\n{body}"),
        );
        assert_eq!(r.status, 400, "{te}");
    }
    assert!(b.requests().is_empty(), "{:?}", b.requests());
    // The one coding apigate implements still works.
    let r = send(
        gw.port,
        &format!("POST /r HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n{body}"),
    );
    assert_eq!(r.status, 200);
    let seen = b.requests();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].contains("hello"), "{}", seen[0]);
}

// ---- Finding 9: an unreadable forwarded address fails closed ----

#[test]
fn an_unreadable_forwarded_address_passes_no_ip_filter() {
    let b = RawBackend::start(OK);
    let (_d, gw) = gateway(&[
        (
            "gateway.json",
            r#"{"TrustedProxies":["127.0.0.0/8"]}"#.to_string(),
        ),
        ("integrations/i.json", integration(&b.url(), "")),
        (
            "routes/allow.json",
            route(
                "GET /allow",
                "i",
                r#""Policies":{"IpFilter":{"Action":"allow","Addresses":["0.0.0.0/0","::/0"]}}"#,
            ),
        ),
        (
            "routes/forbid.json",
            route(
                "GET /forbid",
                "i",
                r#""Policies":{"IpFilter":{"Action":"forbid","Addresses":["192.0.2.0/24"]}}"#,
            ),
        ),
        ("routes/open.json", route("GET /open", "i", "")),
    ]);
    let get = |path: &str, xff: &str| {
        send(
            gw.port,
            &format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\nX-Forwarded-For: {xff}\r\n\r\n"),
        )
    };
    for xff in [
        "junk",
        "198.51.100.7, not-an-ip",
        "198.51.100.7:x",
        "0.0.0.0",
        "::",
    ] {
        assert_aws_error(&get("/allow", xff), 403, "Forbidden", xff);
        assert_aws_error(&get("/forbid", xff), 403, "Forbidden", xff);
        // A route without an IP filter does not judge addresses.
        assert_eq!(get("/open", xff).status, 200, "{xff}");
    }
    // Readable addresses are judged as before.
    assert_eq!(get("/allow", "198.51.100.7").status, 200);
    assert_eq!(get("/forbid", "198.51.100.7").status, 200);
    assert_aws_error(&get("/forbid", "192.0.2.9"), 403, "Forbidden", "listed");
    // Five from /open, two readable addresses.
    assert_eq!(b.requests().len(), 7);
}

/// `apigate check` on `dir`: whether it passed, and what it printed.
fn check(dir: &ConfDir) -> (bool, String) {
    let out = std::process::Command::new(BIN)
        .args(["check", "--conf"])
        .arg(&dir.path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn reading_a_dropped_header_is_a_config_error_naming_the_setting() {
    let mut conf = identity_conf("http://127.0.0.1:9", "{}");
    conf.push((
        "api.json",
        r#"{"Policies":{"RateLimit":{"Calls":5,"PeriodSeconds":60,"Key":"$request.header.api_key"}}}"#
            .to_string(),
    ));
    let dir = ConfDir::new(&conf);
    dir.write(&[(
        "integrations/i.json",
        integration(
            "http://127.0.0.1:9",
            r#""RequestParameters":{"overwrite:header.X-User":"$request.header.X_User"}"#,
        ),
    )]);
    let (ok, out) = check(&dir);
    assert!(!ok, "{out}");
    for at in [
        "api.json: Policies.RateLimit.Key",
        "integrations/i.json: RequestParameters.overwrite:header.X-User",
    ] {
        assert!(out.contains(at), "{at}: {out}");
    }
    assert!(out.contains("AllowUnderscoresInHeaders"), "{out}");
    dir.write(&[(
        "gateway.json",
        r#"{"AllowUnderscoresInHeaders":true}"#.to_string(),
    )]);
    let (ok, out) = check(&dir);
    assert!(ok, "{out}");
}
