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
        ("/expired", "integrations/a: TLS to"),
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
            r#"{"UpstreamCaFile":"missing.pem","Tls":{"CertFile":"nope.pem","KeyFile":"nope.key","MutualTlsAuthentication":{"TruststoreUri":"s3://bucket/truststore.pem"}}}"#
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
        "gateway.json: Tls.MutualTlsAuthentication.TruststoreUri: \"s3://bucket/truststore.pem\": apigate reads the truststore from a local file",
        "integrations/a.json: TlsConfig.ServerNameToVerify: \"not a name\" is not a host name",
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
}

// ---- The HTTPS listener ----

/// A client for the gateway's HTTPS listener: trusts `ca_pem`, speaks HTTP/2 (by ALPN) or
/// HTTP/1.1 only, optionally presents a client certificate. `localhost` is pinned to
/// 127.0.0.1, where the gateway listens.
fn client(port: u16, ca_pem: &str, h2: bool, identity: Option<&Issued>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .pool_max_idle_per_host(0)
        .timeout(std::time::Duration::from_secs(10));
    b = if h2 {
        b.http2_prior_knowledge()
    } else {
        b.http1_only()
    };
    if let Some(id) = identity {
        let pem = format!("{}\n{}", id.cert_pem, id.key_pem);
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

struct Answer {
    status: u16,
    version: reqwest::Version,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn fetch(client: &reqwest::Client, url: &str) -> Result<Answer, reqwest::Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = client.get(url).send().await?;
        let status = r.status().as_u16();
        let version = r.version();
        let headers = r.headers().clone();
        let body = r.text().await?;
        Ok(Answer {
            status,
            version,
            headers,
            body,
        })
    })
}

/// A gateway serving HTTPS with a certificate for localhost from `ca`, in front of a plain
/// echo backend; `tls_extra` is more members of `Tls`.
fn https_conf(ca: &Ca, backend: &Echo, tls_extra: &str) -> ConfDir {
    let server = ca.server(&["localhost", "127.0.0.1"]);
    let conf = ConfDir::new(&[
        (
            "gateway.json",
            format!(r#"{{"Tls":{{"CertFile":"gw.pem","KeyFile":"gw.key"{tls_extra}}}}}"#),
        ),
        (
            "stages/v0.json",
            r#"{"Name":"v0","AccessLogSettings":{"DestinationArn":"access.log","Format":"$context.requestId $context.status $context.protocol $context.routeKey cert=$context.identity.clientCert.subjectDN serial=$context.identity.clientCert.serialNumber"}}"#.into(),
        ),
        (
            "routes/pm.json",
            route(
                "GET /postman",
                "pm",
                r#""Policies":{"RequestParameters":{"overwrite:header.x-stage":"$context.stage","overwrite:header.x-client-dn":"$context.identity.clientCert.subjectDN"}}"#,
            ),
        ),
        (
            "routes/no.json",
            route(
                "GET /forbidden",
                "pm",
                r#""Policies":{"IpFilter":{"Action":"forbid","Addresses":["127.0.0.1"]}}"#,
            ),
        ),
        ("integrations/pm.json", integration(&format!("{}/get", backend.url()), "")),
    ]);
    server.write(&conf.path, "gw");
    conf
}

#[test]
fn https_listener_serves_http1_and_http2_alike() {
    let ca = Ca::new("listener CA");
    let backend = Echo::start();
    let conf = https_conf(&ca, &backend, "");
    let gw = Gateway::start(&conf.path);
    let base = format!("https://localhost:{}", gw.port);
    for (h2, version, protocol) in [
        (false, reqwest::Version::HTTP_11, "HTTP/1.1"),
        (true, reqwest::Version::HTTP_2, "HTTP/2.0"),
    ] {
        let c = client(gw.port, &ca.pem(), h2, None);
        let r = fetch(&c, &format!("{base}/v0/postman?q=1")).unwrap();
        assert_eq!(r.status, 200, "{protocol}: {}", r.body);
        assert_eq!(r.version, version);
        let id = r
            .header("apigw-requestid")
            .expect("apigw-requestid")
            .to_string();
        let echo = r.json();
        assert_eq!(echo["path"], "/get", "{protocol}");
        assert_eq!(echo["query"], "q=1", "{protocol}");
        assert_eq!(echo["headers"]["x-stage"][0], "v0", "{protocol}");
        assert_eq!(
            echo["headers"]["x-forwarded-proto"][0], "https",
            "{protocol}"
        );
        let forwarded = echo["headers"]["forwarded"][0].as_str().unwrap();
        assert_eq!(
            forwarded,
            format!("for=127.0.0.1;host=\"localhost:{}\";proto=https", gw.port),
            "{protocol}"
        );
        assert!(
            echo["headers"].get("x-client-dn").is_none(),
            "{protocol}: no client cert"
        );

        let r = fetch(&c, &format!("{base}/v0/nope")).unwrap();
        assert_eq!(r.status, 404, "{protocol}");
        assert_eq!(r.json(), serde_json::json!({"message": "Not Found"}));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.header("apigw-requestid").is_some());
        let r = fetch(&c, &format!("{base}/v0/forbidden")).unwrap();
        assert_eq!(r.status, 403, "{protocol}");
        assert_eq!(r.json(), serde_json::json!({"message": "Forbidden"}));

        // The access log line of the first request names the protocol.
        let log = conf.path.join("access.log");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let line = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(l) = text.lines().find(|l| l.starts_with(&id)) {
                break l.to_string();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no log line for {id}:\n{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(
            line,
            format!("{id} 200 {protocol} GET /postman cert=- serial=-")
        );
    }
    let text = gw.scrape();
    for status in ["200", "403", "404"] {
        let route = match status {
            "200" => "GET /postman",
            "403" => "GET /forbidden",
            _ => "-",
        };
        assert_eq!(
            metric_value(
                &text,
                &format!(
                    r#"apigate_requests_total{{api="-",method="GET",route="{route}",stage="v0",status="{status}"}}"#
                )
            ),
            Some(2.0),
            "{status}:\n{text}"
        );
    }
}

#[test]
fn h2c_prior_knowledge_on_a_plain_listener() {
    let backend = Echo::start();
    let conf = ConfDir::new(&[
        ("gateway.json", r#"{"Http2Cleartext":true}"#.into()),
        ("routes/a.json", route("GET /a", "a", "")),
        (
            "integrations/a.json",
            integration(&format!("{}/x", backend.url()), ""),
        ),
    ]);
    let gw = Gateway::start(&conf.path);
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{}/a", gw.port);
    let r = fetch(&h2, &url).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.version, reqwest::Version::HTTP_2);
    assert_eq!(r.json()["headers"]["x-forwarded-proto"][0], "http");
    // HTTP/1.1 still works on the same listener.
    let r = gw.get("/a");
    assert_eq!(r.status, 200);
}

#[test]
fn mutual_tls_requires_a_client_certificate_from_the_truststore() {
    let ca = Ca::new("listener CA");
    let clients = Ca::new("client CA");
    let stranger = Ca::new("someone else's client CA");
    let backend = Echo::start();
    let conf = https_conf(
        &ca,
        &backend,
        r#","MutualTlsAuthentication":{"TruststoreUri":"truststore.pem"}"#,
    );
    clients.write(&conf.path.join("truststore.pem"));
    let gw = Gateway::start(&conf.path);
    let url = format!("https://localhost:{}/v0/postman", gw.port);
    let alice = clients.client("alice");
    for h2 in [false, true] {
        let r = fetch(&client(gw.port, &ca.pem(), h2, Some(&alice)), &url).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let dn = r.json()["headers"]["x-client-dn"][0]
            .as_str()
            .unwrap()
            .to_string();
        assert!(dn.contains("CN=alice"), "{dn}");
        // Without a certificate, or with one from another CA, the handshake fails.
        assert!(fetch(&client(gw.port, &ca.pem(), h2, None), &url).is_err());
        let mallory = stranger.client("mallory");
        assert!(fetch(&client(gw.port, &ca.pem(), h2, Some(&mallory)), &url).is_err());
    }
    let log = std::fs::read_to_string(conf.path.join("access.log")).unwrap_or_default();
    // Both good requests logged with the certificate; the refused ones never got that far.
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    for l in lines {
        assert!(
            l.contains("cert=CN=alice") && !l.contains("serial=-"),
            "{l}"
        );
    }
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_it_on_error() {
    let first = Ca::new("first CA");
    let second = Ca::new("second CA");
    let backend = Echo::start();
    let conf = https_conf(&first, &backend, "");
    let gw = Gateway::start(&conf.path);
    let url = format!("https://localhost:{}/v0/postman", gw.port);
    assert_eq!(
        fetch(&client(gw.port, &first.pem(), false, None), &url)
            .unwrap()
            .status,
        200
    );

    second.server(&["localhost"]).write(&conf.path, "gw");
    gw.signal("HUP");
    gw.wait_log("TLS certificate reloaded", 1);
    assert_eq!(
        fetch(&client(gw.port, &second.pem(), true, None), &url)
            .unwrap()
            .status,
        200
    );
    assert!(fetch(&client(gw.port, &first.pem(), false, None), &url).is_err());

    // A broken certificate is refused and the running one keeps serving.
    std::fs::write(conf.path.join("gw.pem"), "not a certificate").unwrap();
    gw.signal("HUP");
    gw.wait_log("reload rejected", 1);
    assert!(gw.output().contains("Tls.CertFile"), "{}", gw.output());
    assert_eq!(
        fetch(&client(gw.port, &second.pem(), false, None), &url)
            .unwrap()
            .status,
        200
    );
}

#[test]
fn self_signed_listener_prints_where_its_certificate_is() {
    let backend = Echo::start();
    let conf = ConfDir::new(&[
        ("routes/a.json", route("GET /a", "a", "")),
        ("integrations/a.json", integration(&backend.url(), "")),
    ]);
    let gw = Gateway::start_with(&conf.path, &["--tls-self-signed"]);
    gw.wait_log("--cacert", 1);
    let out = gw.output();
    let cert = out
        .split_whitespace()
        .skip_while(|w| *w != "--cacert")
        .nth(1)
        .expect("a certificate path after --cacert")
        .to_string();
    let pem = std::fs::read_to_string(&cert).unwrap();
    let url = format!("https://localhost:{}/a", gw.port);
    for h2 in [false, true] {
        let r = fetch(&client(gw.port, &pem, h2, None), &url).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let _ = std::fs::remove_dir_all(Path::new(&cert).parent().unwrap());
}

#[test]
fn the_bundled_example_fronts_its_https_backend() {
    // conf/example as shipped, its https backend started as scripts/example.sh does.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/example");
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["echo", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--tls-cert")
        .arg(example.join("tls/backend.pem"))
        .arg("--tls-key")
        .arg(example.join("tls/backend.key"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port, Some(&mut child));
    let backend = TlsEcho { child, port };
    let dir = ConfDir::new(&[]);
    let mut stack = vec![example.clone()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let rel = p
            .strip_prefix(&example)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("localhost:9443", &format!("localhost:{}", backend.port));
        dir.write(&[(rel.as_str(), text)]);
    }
    let gw = Gateway::start(&dir.path);
    let mut conn = Conn::open(gw.port);
    for _ in 0..2 {
        conn.send("GET", "/v0/postman", &[], b"");
        let r = conn.read_response(false);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["path"], "/get");
    }
    assert_eq!(upstream_conns(&gw, "reused"), 1.0);
}

fn send(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    body: Vec<u8>,
) -> Result<Answer, reqwest::Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = client
            .request(method.parse().unwrap(), url)
            .body(body)
            .send()
            .await?;
        let status = r.status().as_u16();
        let version = r.version();
        let headers = r.headers().clone();
        let body = r.text().await?;
        Ok(Answer {
            status,
            version,
            headers,
            body,
        })
    })
}

#[test]
fn bodies_limits_and_backend_failures_alike_over_http1_and_http2() {
    let ca = Ca::new("listener CA");
    let backend = Echo::start();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let conf = ConfDir::new(&[
        (
            "gateway.json",
            r#"{"Tls":{"CertFile":"gw.pem","KeyFile":"gw.key"},"MaxBodyBytes":1000}"#.into(),
        ),
        ("routes/e.json", route("ANY /echo", "e", "")),
        ("routes/d.json", route("GET /dead", "d", "")),
        ("integrations/e.json", integration(&backend.url(), "")),
        (
            "integrations/d.json",
            integration(&format!("http://127.0.0.1:{dead_port}/"), ""),
        ),
    ]);
    ca.server(&["localhost"]).write(&conf.path, "gw");
    let gw = Gateway::start(&conf.path);
    let base = format!("https://localhost:{}", gw.port);
    for h2 in [false, true] {
        let c = client(gw.port, &ca.pem(), h2, None);
        let r = send(&c, "POST", &format!("{base}/echo"), vec![b'x'; 600]).unwrap();
        assert_eq!(r.status, 200, "h2={h2}: {}", r.body);
        assert_eq!(r.json()["bodyLength"], 600);
        let r = send(&c, "POST", &format!("{base}/echo"), vec![b'x'; 5000]).unwrap();
        assert_eq!(r.status, 413, "h2={h2}: {}", r.body);
        assert_eq!(
            r.json(),
            serde_json::json!({"message": "Request Entity Too Large"})
        );
        let r = send(&c, "GET", &format!("{base}/dead"), vec![]).unwrap();
        assert_eq!(r.status, 502, "h2={h2}");
        assert_eq!(r.json(), serde_json::json!({"message": "Bad Gateway"}));
        // The connection (or the h2 connection's next stream) still serves.
        let r = send(&c, "GET", &format!("{base}/echo"), vec![]).unwrap();
        assert_eq!(r.status, 200, "h2={h2}");
    }
}

/// A custom domain's own certificate (`domains/*.json` `Tls`) is served to clients that name
/// it (SNI); other names get the listener's. Both follow a reload.
#[test]
fn a_custom_domain_serves_its_own_certificate_by_sni() {
    let listener_ca = Ca::new("listener CA");
    let domain_ca = Ca::new("domain CA");
    let backend = Echo::start();
    let conf = https_conf(&listener_ca, &backend, "");
    conf.write(&[
        ("api.json", r#"{"Name":"main"}"#.to_string()),
        (
            "domains/shop.json",
            r#"{"DomainName":"Shop.Example.Test","ApiMappings":[{"ApiMappingKey":"","ApiId":"main","Stage":"v0"}],"Tls":{"CertFile":"shop.pem","KeyFile":"shop.key"}}"#
                .to_string(),
        ),
    ]);
    domain_ca
        .server(&["shop.example.test"])
        .write(&conf.path, "shop");
    let gw = Gateway::start(&conf.path);
    let shop = |ca: &Ca| {
        let c = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
            .resolve("shop.example.test", ([127, 0, 0, 1], gw.port).into())
            .pool_max_idle_per_host(0)
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
        fetch(
            &c,
            &format!("https://shop.example.test:{}/postman", gw.port),
        )
    };
    // The domain's certificate, and its mapping (stage v0, no stage in the path).
    let r = shop(&domain_ca).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["path"], "/get");
    assert!(
        shop(&listener_ca).is_err(),
        "the domain does not get the listener's"
    );
    // Every other name gets the listener's certificate.
    let url = format!("https://localhost:{}/v0/postman", gw.port);
    assert_eq!(
        fetch(&client(gw.port, &listener_ca.pem(), false, None), &url)
            .unwrap()
            .status,
        200
    );
    assert!(fetch(&client(gw.port, &domain_ca.pem(), false, None), &url).is_err());

    // A new domain certificate is served after a reload.
    let renewed = Ca::new("renewed domain CA");
    renewed
        .server(&["shop.example.test"])
        .write(&conf.path, "shop");
    gw.signal("HUP");
    gw.wait_log("configuration reloaded", 1);
    assert_eq!(shop(&renewed).unwrap().status, 200);

    // A domain certificate that does not load is a config error naming the field.
    std::fs::write(conf.path.join("shop.key"), "no key").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check", "--conf"])
        .arg(&conf.path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("domains/shop.json: Tls.KeyFile"), "{text}");
}
