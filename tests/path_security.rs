//! End to end: one canonical path (findings 1 and 2 of "The edge holds"). Every bypass is
//! sent byte for byte on a raw socket through the real gateway to a *decoding* backend,
//! Python's `http.server` serving a directory with `admin/secret.txt`, which resolves
//! `%61dmin`, `..` and `//` itself, and which prints each request line it receives.

mod common;

use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SECRET: &str = "TOP-SECRET-admin";
const INTERNAL: &str = "TOP-SECRET-internal";
const PUBLIC: &str = "public file";

/// Python's `http.server` on an ephemeral port over a temp directory; it prints
/// `SEEN <request line>` for every request (before answering it). Killed on drop, also
/// when a test panics.
struct PyServer {
    child: Child,
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    dir: PathBuf,
}

const SERVER: &str = r#"
import functools, http.server, sys
class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def parse_request(self):
        ok = super().parse_request()
        print("SEEN " + self.requestline, flush=True)
        return ok
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(H, directory=sys.argv[1]))
print("PORT", srv.server_address[1], flush=True)
srv.serve_forever()
"#;

impl PyServer {
    fn start() -> PyServer {
        // One directory per server: the tests of this file run in parallel in one process.
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "apigate-pathsec-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for (rel, text) in [
            ("admin/secret.txt", SECRET),
            ("internal/secret.txt", INTERNAL),
            ("files/public.txt", PUBLIC),
            ("files/my file.txt", "spaced"),
        ] {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let mut child = Command::new("python3")
            .args(["-u", "-c", SERVER])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // The readiness check: the server prints its port once it listens.
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let port = match first.strip_prefix("PORT ").map(str::parse) {
            Some(Ok(p)) => p,
            _ => {
                let _ = child.kill();
                panic!("python http.server did not start: {first:?}");
            }
        };
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(l) = line.strip_prefix("SEEN ") {
                    s.lock().unwrap().push(l.to_string());
                }
            }
        });
        PyServer {
            child,
            port,
            seen,
            dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request line seen so far.
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until the backend has printed `line` (requests are printed before they are
    /// answered, so once a later request's line is here, every earlier one is too).
    fn wait_seen(&self, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.seen().iter().any(|l| l == line) {
            assert!(
                Instant::now() < deadline,
                "backend never saw {line:?}: {:?}",
                self.seen()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends exactly `head` (a request line and headers, without the blank line) and reads
/// the answer until the gateway closes the connection.
fn raw(port: u16, head: &str) -> (u16, String) {
    raw_bytes(port, head.as_bytes())
}

/// As `raw`, for heads that are not UTF-8.
fn raw_bytes(port: u16, head: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut bytes = head.to_vec();
    bytes.extend_from_slice(b"\r\nHost: gateway.test\r\nConnection: close\r\n\r\n");
    s.write_all(&bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status for {head:?}: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn get(port: u16, target: &str) -> (u16, String) {
    raw(port, &format!("GET {target} HTTP/1.1"))
}

const ISS: &str = "https://issuer.test";
const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt/");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIX}{name}")).unwrap()
}

fn token() -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let claims = serde_json::json!({"sub": "alice", "iss": ISS, "aud": "api", "exp": exp});
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rsa-a".into());
    let key = EncodingKey::from_rsa_pem(fixture("rsa-a.pem").as_bytes()).unwrap();
    encode(&h, &claims, &key).unwrap()
}

/// `GET /admin/{proxy+}` behind a JWT authorizer, `ANY /internal/{proxy+}` behind an IP
/// filter loopback fails, `GET /files/{proxy+}`, `overwrite:path` from a query value and a
/// header, `GET /A`, and a `$default` route to the same backend.
fn conf(py: &PyServer) -> ConfDir {
    let u = py.url();
    let jwks = format!(r#"{{"keys":[{}]}}"#, fixture("rsa-a.jwk.json"));
    ConfDir::new(&[
        (
            "authorizers/auth.json",
            format!(
                r#"{{"AuthorizerType":"JWT","IdentitySource":["$request.header.Authorization"],"JwtConfiguration":{{"Issuer":"{ISS}","Audience":["api"]}},"Jwks":{jwks}}}"#
            ),
        ),
        ("integrations/site.json", integration(&u, "")),
        (
            "integrations/admin.json",
            integration(&format!("{u}/admin/{{proxy}}"), ""),
        ),
        (
            "integrations/internal.json",
            integration(&format!("{u}/internal/{{proxy}}"), ""),
        ),
        (
            "integrations/files.json",
            integration(&format!("{u}/files/{{proxy}}"), ""),
        ),
        (
            "integrations/byquery.json",
            integration(
                &u,
                r#""RequestParameters":{"overwrite:path":"/files/$request.querystring.name"}"#,
            ),
        ),
        (
            "integrations/byheader.json",
            integration(
                &u,
                r#""RequestParameters":{"overwrite:path":"/files/${request.header.X-File}"}"#,
            ),
        ),
        (
            "integrations/a.json",
            integration(&format!("{u}/files/public.txt"), ""),
        ),
        (
            "stages/default.json",
            r#"{"Name":"$default","AccessLogSettings":{"DestinationArn":"access.log","Format":"$context.path $context.routeKey"}}"#
                .to_string(),
        ),
        ("routes/default.json", route("$default", "site", "")),
        (
            "routes/admin.json",
            route(
                "GET /admin/{proxy+}",
                "admin",
                r#""AuthorizationType":"JWT","AuthorizerId":"auth""#,
            ),
        ),
        (
            "routes/internal.json",
            route(
                "ANY /internal/{proxy+}",
                "internal",
                r#""Policies":{"IpFilter":{"Action":"allow","Addresses":["10.0.0.0/8"]}}"#,
            ),
        ),
        (
            "routes/files.json",
            route("GET /files/{proxy+}", "files", ""),
        ),
        ("routes/byquery.json", route("GET /download", "byquery", "")),
        ("routes/byheader.json", route("GET /fetch", "byheader", "")),
        ("routes/a.json", route("GET /A", "a", "")),
    ])
}

const BAD_REQUEST: &str = r#"{"message":"Bad Request"}"#;

#[test]
fn route_guards_cannot_be_walked_around_by_spelling_the_path_differently() {
    let py = PyServer::start();
    let dir = conf(&py);
    let gw = Gateway::start(&dir.path);

    // The guards hold for the plain spelling, and the decoding backend would serve the file.
    assert_eq!(get(gw.port, "/admin/secret.txt").0, 401);
    assert_eq!(get(gw.port, "/internal/secret.txt").0, 403);
    let auth = format!(
        "GET /admin/secret.txt HTTP/1.1\r\nAuthorization: Bearer {}",
        token()
    );
    assert_eq!(raw(gw.port, &auth), (200, SECRET.to_string()));

    // Other spellings of the same paths now meet the same guards (the same route), or
    // are refused before routing.
    for (target, want) in [
        ("/%61dmin/secret.txt", 401),
        ("/%61%64%6D%69%6E/secret.txt", 401),
        ("//admin/secret.txt", 401),
        ("/admin//secret.txt", 401),
        ("///admin///secret.txt", 401),
        ("http://gateway.test/%61dmin/secret.txt", 401),
        ("/%2561dmin/secret.txt", 404),
        ("/%69nternal/secret.txt", 403),
        ("//internal/secret.txt", 403),
    ] {
        let (status, body) = get(gw.port, target);
        assert_eq!(status, want, "{target}: {body}");
        assert!(!body.contains("TOP-SECRET"), "{target}: {body}");
    }
    for target in [
        "/admin%2Fsecret.txt",
        "/admin%2fsecret.txt",
        "/internal%2Fsecret.txt",
        "/x/..%2Fadmin%2Fsecret.txt",
        "/%2e%2e/admin/secret.txt",
    ] {
        let (status, body) = get(gw.port, target);
        assert_eq!((status, body.as_str()), (400, BAD_REQUEST), "{target}");
    }

    // The sentinel: once the backend saw it, it saw every request before it.
    assert_eq!(get(gw.port, "/files/public.txt"), (200, PUBLIC.into()));
    py.wait_seen("GET /files/public.txt HTTP/1.1");
    let seen = py.seen();
    let reached: Vec<&String> = seen
        .iter()
        .filter(|l| l.contains("admin") || l.contains("internal"))
        .collect();
    assert_eq!(
        reached,
        ["GET /admin/secret.txt HTTP/1.1"],
        "only the authorised request reached the backend"
    );
}

#[test]
fn dot_segments_never_reach_the_backend_in_any_spelling() {
    let py = PyServer::start();
    let dir = conf(&py);
    let gw = Gateway::start(&dir.path);

    // Before the fix the backend served `/admin/secret.txt` for each of these.
    for target in [
        "/files/..%2fadmin%2fsecret.txt",
        "/files/..%2Fadmin%2Fsecret.txt",
        "/files/%2e%2e/admin/secret.txt",
        "/files/.%2E/admin/secret.txt",
        "/files/%2E%2e/admin/secret.txt",
        "/files/../admin/secret.txt",
        "/files/./../admin/secret.txt",
        "/files/..;/admin/secret.txt",
        "/files/..;jsessionid=x/admin/secret.txt",
        "/files/..%3B/admin/secret.txt",
        "/files/..%5cadmin%5csecret.txt",
        "/files/..%5Cadmin%5Csecret.txt",
        "/files/%c0%ae%c0%ae/admin/secret.txt",
        "/files/%C0%AE%C0%AE%2Fadmin%2Fsecret.txt",
        "/files/%e0%80%ae%e0%80%ae/admin/secret.txt",
        "/files/%00/../admin/secret.txt",
        // `overwrite:path` built from a query value, then from a header.
        "/download?name=../admin/secret.txt",
        "/download?name=..%2Fadmin%2Fsecret.txt",
        "/download?name=%2e%2e",
        "/download?name=..",
        "/download?name=..;x",
        "/download?name=..%5Cadmin%5Csecret.txt",
        "/download?name=%2Fadmin%2Fsecret.txt",
    ] {
        let (status, body) = get(gw.port, target);
        assert_eq!((status, body.as_str()), (400, BAD_REQUEST), "{target}");
    }
    for file in [
        "../admin/secret.txt",
        "..",
        "..;/admin/secret.txt",
        "..\\admin\\secret.txt",
        "/../admin/secret.txt",
    ] {
        let head = format!("GET /fetch HTTP/1.1\r\nX-File: {file}");
        let (status, body) = raw(gw.port, &head);
        assert_eq!(
            (status, body.as_str()),
            (400, BAD_REQUEST),
            "X-File: {file}"
        );
    }
    // A raw backslash: refused by the gateway (or by the HTTP parser before it), never
    // forwarded.
    let (status, body) = get(gw.port, "/files/..\\admin\\secret.txt");
    assert_eq!(status, 400, "{body}");
    assert!(!body.contains("TOP-SECRET"));

    assert_eq!(get(gw.port, "/files/public.txt"), (200, PUBLIC.into()));
    py.wait_seen("GET /files/public.txt HTTP/1.1");
    let seen = py.seen();
    assert_eq!(
        seen,
        ["GET /files/public.txt HTTP/1.1"],
        "nothing else reached it"
    );
}

#[test]
fn legitimate_paths_still_work_and_reach_the_backend_canonical() {
    let py = PyServer::start();
    let dir = conf(&py);
    let gw = Gateway::start(&dir.path);

    for (target, body, backend_saw) in [
        ("/files/public.txt", PUBLIC, "/files/public.txt"),
        ("/files/%70ublic.txt", PUBLIC, "/files/public.txt"),
        ("/files//public.txt", PUBLIC, "/files/public.txt"),
        ("/files/my%20file.txt", "spaced", "/files/my%20file.txt"),
        (
            "/files/my%20file.txt?x=%2F..",
            "spaced",
            "/files/my%20file.txt?x=%2F..",
        ),
        // `/%41` is `/A`: the `GET /A` route, whose integration serves the public file.
        ("/%41", PUBLIC, "/files/public.txt"),
        // `overwrite:path` with a value that stays inside its segment.
        ("/download?name=public.txt", PUBLIC, "/files/public.txt"),
        (
            "/download?name=my%20file.txt",
            "spaced",
            "/files/my%20file.txt",
        ),
        // Routed, and forwarded, by its canonical spelling.
        ("/%66iles/public.txt", PUBLIC, "/files/public.txt"),
    ] {
        let (status, got) = get(gw.port, target);
        assert_eq!(
            (status, got.as_str()),
            (200, body),
            "{target} {:?}",
            py.seen()
        );
        py.wait_seen(&format!("GET {backend_saw} HTTP/1.1"));
    }
    let head = "GET /fetch HTTP/1.1\r\nX-File: my file.txt";
    assert_eq!(raw(gw.port, head), (200, "spaced".into()));
    // The access log records the canonical path too.
    let log = dir.path.join("access.log");
    let want = "/files/public.txt GET /files/{proxy+}";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().filter(|l| *l == want).count() >= 3 {
            assert!(!text.contains("%70ublic"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "access log: {text}");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A name with dots that is no dot segment is a name.
    assert_eq!(get(gw.port, "/files/...").0, 404);
    py.wait_seen("GET /files/... HTTP/1.1");
}
