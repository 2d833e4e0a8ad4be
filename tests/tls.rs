//! TLS on both sides, for real on loopback: https integrations (verified against a test CA,
//! pooled, failures as 502 with the reason logged), the HTTPS listener over HTTP/1.1 and
//! HTTP/2, h2c, mutual TLS, and certificate reload on SIGHUP.

#[path = "common/certs.rs"]
mod certs;
mod common;

use certs::{Ca, Issued};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// `apigate echo` serving HTTPS with `issued`.
struct TlsEcho {
    child: Child,
    port: u16,
}

impl TlsEcho {
    fn start(issued: &Issued, dir: &Path, name: &str) -> TlsEcho {
        let (cert, key) = issued.write(dir, name);
        let port = free_port();
        let mut child = Command::new(BIN)
            .args(["echo", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start echo");
        wait_listening(port, Some(&mut child));
        TlsEcho { child, port }
    }
}

impl Drop for TlsEcho {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch directory for certificates, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("apigate-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The AWS example: stage `v0`, `GET /postman` to `uri`; `gateway` is gateway.json.
fn postman_conf(gateway: &str, uri: &str, integration_extra: &str) -> ConfDir {
    ConfDir::new(&[
        ("gateway.json", gateway.to_string()),
        (
            "stages/v0.json",
            r#"{"Name":"v0","StageVariables":{"port":"0"}}"#.into(),
        ),
        ("routes/pm.json", route("GET /postman", "pm", "")),
        ("integrations/pm.json", integration(uri, integration_extra)),
    ])
}

fn upstream_conns(gw: &Gateway, result: &str) -> f64 {
    metric_value(
        &gw.scrape(),
        &format!(r#"apigate_upstream_connections_total{{result="{result}"}}"#),
    )
    .unwrap_or(0.0)
}

#[test]
fn https_integration_is_verified_and_pooled() {
    let scratch = Scratch::new("pooled");
    let ca = Ca::new("apigate test CA");
    let backend = TlsEcho::start(&ca.server(&["localhost", "127.0.0.1"]), &scratch.0, "good");
    let ca_file = ca.write(&scratch.0.join("ca.pem"));
    let conf = postman_conf(
        &format!(
            r#"{{"UpstreamCaFile":{:?}}}"#,
            ca_file.display().to_string()
        ),
        &format!("https://localhost:{}/get", backend.port),
        "",
    );
    let gw = Gateway::start(&conf.path);
    let mut conn = Conn::open(gw.port);
    for i in 0..3 {
        conn.send("GET", &format!("/v0/postman?n={i}"), &[], b"");
        let r = conn.read_response(false);
        assert_eq!(r.status, 200, "{}", r.text());
        let echo = r.json();
        assert_eq!(echo["path"], "/get");
        assert_eq!(echo["query"], format!("n={i}"));
        assert_eq!(
            echo["headers"]["host"][0],
            format!("localhost:{}", backend.port)
        );
    }
    // One handshake, then the pooled TLS connection.
    assert_eq!(upstream_conns(&gw, "new"), 1.0);
    assert_eq!(upstream_conns(&gw, "reused"), 2.0);
}

#[test]
fn https_failures_are_502_with_the_reason_logged() {
    let scratch = Scratch::new("fail");
    let ca = Ca::new("apigate test CA");
    let stranger = Ca::new("nobody trusts me");
    let expired = TlsEcho::start(&ca.expired_server(&["localhost"]), &scratch.0, "expired");
    let wrong_name = TlsEcho::start(&ca.server(&["elsewhere.test"]), &scratch.0, "wrong");
    let unknown = TlsEcho::start(&stranger.server(&["localhost"]), &scratch.0, "unknown");
    let plain = Echo::start();
    let ca_file = ca.write(&scratch.0.join("ca.pem"));
    let conf = ConfDir::new(&[
        (
            "gateway.json",
            format!(
                r#"{{"UpstreamCaFile":{:?}}}"#,
                ca_file.display().to_string()
            ),
        ),
        ("routes/a.json", route("GET /expired", "a", "")),
        ("routes/b.json", route("GET /wrong-name", "b", "")),
        ("routes/c.json", route("GET /unknown-ca", "c", "")),
        ("routes/d.json", route("GET /not-tls", "d", "")),
        (
            "integrations/a.json",
            integration(&format!("https://localhost:{}/", expired.port), ""),
        ),
        (
            "integrations/b.json",
            integration(&format!("https://localhost:{}/", wrong_name.port), ""),
        ),
        (
            "integrations/c.json",
            integration(&format!("https://localhost:{}/", unknown.port), ""),
        ),
        (
            "integrations/d.json",
            integration(
                &format!("https://localhost:{}/", plain.port),
                r#""TimeoutInMillis":2000"#,
            ),
        ),
    ]);
    let gw = Gateway::start(&conf.path);
    for (path, reason) in [
        ("/expired", "certificate expired"),
        ("/wrong-name", "not valid for name"),
        ("/unknown-ca", "UnknownIssuer"),
        ("/not-tls", "handshake eof"),
    ] {
        let r = gw.get(path);
        assert_eq!(r.status, 502, "{path}: {}", r.text());
        assert_eq!(
            r.json(),
            serde_json::json!({"message": "Bad Gateway"}),
            "{path}"
        );
        assert!(r.header("apigw-requestid").is_some());
        gw.wait_log(reason, 1);
    }
}

#[test]
fn a_backend_that_never_completes_the_handshake_times_out() {
    // The kernel accepts the TCP connection (backlog); nothing ever answers the ClientHello.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let conf = ConfDir::new(&[
        ("routes/a.json", route("GET /silent", "a", "")),
        (
            "integrations/a.json",
            integration(
                &format!("https://localhost:{port}/"),
                r#""TimeoutInMillis":300"#,
            ),
        ),
    ]);
    let gw = Gateway::start(&conf.path);
    let r = gw.get("/silent");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"message": "Service Unavailable"})
    );
    drop(silent);
}

#[test]
fn server_name_to_verify_and_insecure_skip_verification() {
    let scratch = Scratch::new("names");
    let ca = Ca::new("apigate test CA");
    let stranger = Ca::new("self-signed staging");
    // Reached by IP, its certificate names only backend.test: ServerNameToVerify says so.
    let named = TlsEcho::start(&ca.server(&["backend.test"]), &scratch.0, "named");
    let staging = TlsEcho::start(&stranger.server(&["staging.test"]), &scratch.0, "staging");
    let ca_file = ca.write(&scratch.0.join("ca.pem"));
    let conf = ConfDir::new(&[
        (
            "gateway.json",
            format!(r#"{{"UpstreamCaFile":{:?}}}"#, "ca.pem"),
        ),
        ("routes/a.json", route("GET /named", "a", "")),
        ("routes/b.json", route("GET /staging/{proxy+}", "b", "")),
        ("routes/c.json", route("GET /unnamed", "c", "")),
        (
            "integrations/a.json",
            integration(
                &format!("https://127.0.0.1:{}/n", named.port),
                r#""TlsConfig":{"ServerNameToVerify":"backend.test"}"#,
            ),
        ),
        (
            "integrations/b.json",
            integration(
                "https://127.0.0.1:${stageVariables.port}/s/{proxy}",
                r#""TlsConfig":{"InsecureSkipVerification":true}"#,
            ),
        ),
        (
            "integrations/c.json",
            integration(&format!("https://127.0.0.1:{}/n", named.port), ""),
        ),
        (
            "stages/default.json",
            format!(
                r#"{{"Name":"$default","StageVariables":{{"port":"{}"}}}}"#,
                staging.port
            ),
        ),
    ]);
    // UpstreamCaFile is relative to the conf dir.
    std::fs::copy(&ca_file, conf.path.join("ca.pem")).unwrap();
    let gw = Gateway::start(&conf.path);
    let r = gw.get("/named");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["path"], "/n");
    // Without it the name checked is the IP, which the certificate does not hold.
    assert_eq!(gw.get("/unnamed").status, 502);
    gw.wait_log("not valid for name", 1);
    let r = gw.get("/staging/a/b");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["path"], "/s/a/b");
    assert!(
        gw.output().contains("InsecureSkipVerification"),
        "no start-up warning:\n{}",
        gw.output()
    );
}

#[test]
fn check_reports_bad_tls_settings() {
    let conf = ConfDir::new(&[
        (
            "gateway.json",
            r#"{"UpstreamCaFile":"missing.pem","Tls":{"CertFile":"nope.pem","KeyFile":"nope.key"}}"#
                .into(),
        ),
        ("routes/a.json", route("GET /a", "a", "")),
        (
            "integrations/a.json",
            integration(
                "https://localhost:9/",
                r#""TlsConfig":{"ServerNameToVerify":"not a name"}"#,
            ),
        ),
    ]);
    let out = Command::new(BIN)
        .args(["check", "--conf"])
        .arg(&conf.path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "gateway.json: UpstreamCaFile: cannot read",
        "gateway.json: Tls.CertFile: cannot read",
        "integrations/a.json: TlsConfig.ServerNameToVerify: \"not a name\" is not a host name",
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
}
