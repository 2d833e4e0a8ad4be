//! Test support: the real `apigate` binary, real backends on loopback, and a small raw
//! HTTP/1.1 client (so tests control connections and can send malformed bytes).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_apigate");

/// A port for a process the test starts (gateway, metrics, Redis). Taken below the kernel's
/// ephemeral range (32768+ on Linux), where the in-test backends' `bind(0)` ports and outgoing
/// connections live: a port released here can never be handed to one of those before the
/// process binds it. A counter keeps the tests of one binary apart; the process id spreads
/// binaries.
pub fn free_port() -> u16 {
    const FIRST: usize = 20_000;
    const SPAN: usize = 12_000;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let offset = (std::process::id() as usize).wrapping_mul(7919) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (offset + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN)
}

/// Waits until something accepts connections on `port` (a readiness check, not a sleep).
pub fn wait_listening(port: u16, child: Option<&mut Child>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut child = child;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Some(c) = child.as_deref_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                panic!("process exited early with {status}");
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("nothing listening on {port}");
}

/// A configuration directory in a temp dir.
pub struct ConfDir {
    pub path: PathBuf,
}

impl ConfDir {
    pub fn new(files: &[(&str, String)]) -> ConfDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "apigate-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        let dir = ConfDir { path };
        dir.write(files);
        dir
    }

    pub fn write(&self, files: &[(&str, String)]) {
        for (rel, text) in files {
            let p = self.path.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }

    pub fn remove(&self, rel: &str) {
        let _ = std::fs::remove_file(self.path.join(rel));
    }
}

impl Drop for ConfDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// An integration file for `uri`; `extra` is JSON object members that override the defaults.
pub fn integration(uri: &str, extra: &str) -> String {
    let mut v = serde_json::json!({
        "IntegrationType": "HTTP_PROXY",
        "IntegrationUri": uri,
        "IntegrationMethod": "ANY",
        "PayloadFormatVersion": "1.0",
    });
    merge(&mut v, extra);
    v.to_string()
}

pub fn route(key: &str, target: &str, extra: &str) -> String {
    let mut v = serde_json::json!({"RouteKey": key, "Target": format!("integrations/{target}")});
    merge(&mut v, extra);
    v.to_string()
}

fn merge(v: &mut serde_json::Value, extra: &str) {
    if extra.is_empty() {
        return;
    }
    let extra: serde_json::Value =
        serde_json::from_str(&format!("{{{extra}}}")).expect("extra fields are JSON members");
    if let (Some(obj), Some(add)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in add {
            obj.insert(k.clone(), val.clone());
        }
    }
}

/// A running `apigate serve`.
pub struct Gateway {
    pub child: Child,
    pub port: u16,
    pub metrics_port: u16,
    pub log: PathBuf,
}

impl Gateway {
    pub fn start(conf: &Path) -> Gateway {
        Self::start_with(conf, &[])
    }

    pub fn start_with(conf: &Path, extra: &[&str]) -> Gateway {
        let port = free_port();
        let metrics_port = free_port();
        let log = conf.with_extension("log");
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--conf"])
            .arg(conf)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--metrics",
                &format!("127.0.0.1:{metrics_port}"),
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start apigate");
        wait_listening(port, Some(&mut child));
        Gateway {
            child,
            port,
            metrics_port,
            log,
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for a log line containing `needle` (reload outcomes are logged).
    pub fn wait_log(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.output().matches(needle).count() >= count {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no {needle:?} in the gateway log:\n{}", self.output());
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.port, "GET", path, &[], b"")
    }

    /// The Prometheus text from `/metrics`.
    pub fn scrape(&self) -> String {
        let r = request(self.metrics_port, "GET", "/metrics", &[], b"");
        assert_eq!(r.status, 200);
        assert!(r
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")));
        r.text()
    }

    /// Waits until the series `series` reads `want` (a readiness check on the gateway's state).
    pub fn wait_metric(&self, series: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.scrape();
            if metric_value(&text, series) == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{series} never reached {want}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The value of one series (name and labels exactly as exported) in Prometheus text.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let status = self.child.wait();
        if std::thread::panicking() {
            // The test failed: what the gateway said is the first thing to read.
            eprintln!(
                "--- gateway on :{} ({status:?}) said:\n{}--- end of gateway output",
                self.port,
                self.output()
            );
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A running `apigate echo`.
pub struct Echo {
    child: Child,
    pub port: u16,
}

impl Echo {
    pub fn start() -> Echo {
        let port = free_port();
        let mut child = Command::new(BIN)
            .args(["echo", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start echo");
        wait_listening(port, Some(&mut child));
        Echo { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One request on a fresh connection.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut conn = Conn::open(port);
    conn.send(method, path, headers, body);
    conn.read_response(method == "HEAD")
}

/// A client connection that can carry several requests (keep-alive).
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Conn {
            reader: BufReader::new(s),
        }
    }

    pub fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: gateway.test\r\n");
        let mut has_len = false;
        for (k, v) in headers {
            has_len |= k.eq_ignore_ascii_case("content-length")
                || k.eq_ignore_ascii_case("transfer-encoding");
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !has_len && !body.is_empty() {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        self.send_raw(head.as_bytes());
        self.send_raw(body);
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.reader.get_mut().write_all(bytes);
    }

    pub fn read_response(&mut self, head_only: bool) -> Response {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).expect("header");
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut resp = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if head_only || status == 204 || status == 304 {
            return resp;
        }
        if let Some(len) = resp
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            let mut body = vec![0; len];
            self.reader.read_exact(&mut body).expect("body");
            resp.body = body;
        } else if resp
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
        {
            loop {
                let mut size = String::new();
                self.reader.read_line(&mut size).expect("chunk size");
                let n = usize::from_str_radix(size.trim(), 16).expect("chunk size hex");
                let mut chunk = vec![0; n + 2];
                self.reader.read_exact(&mut chunk).expect("chunk");
                if n == 0 {
                    break;
                }
                resp.body.extend_from_slice(&chunk[..n]);
            }
        } else {
            let _ = self.reader.read_to_end(&mut resp.body);
        }
        resp
    }

    /// Everything the server sends until it closes the connection.
    pub fn read_all(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = self.reader.read_to_end(&mut out);
        out
    }

    /// Whether the server closed the connection.
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        self.reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        matches!(self.reader.read(&mut buf), Ok(0))
    }
}

/// How a `Backend` answers.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// 200 with a JSON description of the request.
    Echo,
    /// Waits this long, then answers like `Echo`.
    Slow(u64),
    /// Closes the connection after reading the request.
    Reset,
    /// Answers bytes that are not HTTP.
    Garbage,
    /// Answers exactly these bytes, then closes the connection.
    Raw(&'static str),
    /// Answers these bytes one at a time, this many milliseconds apart.
    Trickle(&'static str, u64),
}

/// A request as a `Backend` saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A hand-written HTTP/1.1 backend that records what it receives and counts connections.
pub struct Backend {
    pub port: u16,
    pub connections: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Backend {
    pub fn start(behaviour: Behaviour) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (c, s) = (connections.clone(), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let s = s.clone();
                std::thread::spawn(move || serve_conn(stream, behaviour, s));
            }
        });
        Backend {
            port,
            connections,
            seen,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve_conn(stream: TcpStream, behaviour: Behaviour, seen: Arc<Mutex<Vec<Seen>>>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let mut body = Vec::new();
        if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            body.resize(len, 0);
            if reader.read_exact(&mut body).is_err() {
                return;
            }
        } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let mut size = String::new();
                if reader.read_line(&mut size).unwrap_or(0) == 0 {
                    return;
                }
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                if reader.read_exact(&mut chunk).is_err() {
                    return;
                }
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
        let record = Seen {
            method,
            target,
            headers,
            body,
        };
        seen.lock().unwrap().push(record.clone());
        let stream = reader.get_mut();
        match behaviour {
            Behaviour::Reset => {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            Behaviour::Garbage => {
                let _ = stream.write_all(b"this is not http\r\n\r\n");
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            Behaviour::Raw(bytes) => {
                let _ = stream.write_all(bytes.as_bytes());
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            Behaviour::Trickle(bytes, ms) => {
                for b in bytes.as_bytes() {
                    if stream.write_all(&[*b]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(ms));
                }
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            Behaviour::Slow(ms) => std::thread::sleep(Duration::from_millis(ms)),
            Behaviour::Echo => {}
        }
        let mut hdrs = serde_json::Map::new();
        for (k, v) in &record.headers {
            hdrs.insert(k.to_ascii_lowercase(), serde_json::Value::String(v.clone()));
        }
        let reply = serde_json::json!({
            "method": record.method,
            "target": record.target,
            "headers": hdrs,
            "body": String::from_utf8_lossy(&record.body),
        })
        .to_string();
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Backend-Header: yes\r\nAccess-Control-Allow-Origin: https://backend.example\r\n\r\n{reply}",
            reply.len()
        );
        if stream.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

pub fn headers_map(v: &serde_json::Value) -> HashMap<String, String> {
    v["headers"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A real `redis-server` on a loopback port (Debian's package; scripts/test.sh installs it),
/// killed when dropped. The one Redis harness of the tests.
///
/// Ports: [`free_port`] only probes a port, so another process (a test of another binary or
/// of another checkout on the same machine) can take it before redis-server binds it. So a
/// start that fails to bind is retried on another port, and a server counts as ready only
/// when it answers PING *and* `INFO server` names our child's process id (a PONG from
/// someone else's Redis on that port is not ours). Readiness is polled, never slept for.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    /// redis-server's own output (why it exited, when it does).
    log: PathBuf,
}

impl Redis {
    /// Starts on a free port and returns once it answers.
    pub fn start() -> Redis {
        const ATTEMPTS: usize = 10;
        let mut tried = Vec::new();
        for _ in 0..ATTEMPTS {
            let mut r = Redis::on(free_port());
            match r.launch() {
                Ok(()) => return r,
                Err(why) => tried.push(format!(":{} {why}", r.port)),
            }
        }
        panic!(
            "redis-server did not start in {ATTEMPTS} attempts:\n{}",
            tried.join("\n")
        );
    }

    /// A harness for `port` with nothing started yet.
    fn on(port: u16) -> Redis {
        static N: AtomicUsize = AtomicUsize::new(0);
        let log = std::env::temp_dir().join(format!(
            "apigate-test-redis-{}-{}.log",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        Redis {
            child: None,
            port,
            log,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts again on the same port (gateways and stores are configured with it) and waits
    /// until it answers.
    pub fn restart(&mut self) {
        if let Err(why) = self.launch() {
            panic!("redis-server did not restart on :{}: {why}", self.port);
        }
    }

    /// The server's process id (panics when stopped).
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("redis-server is not running")
            .id()
    }

    /// Sends `sig` (e.g. `STOP`, `CONT`) to the server.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} failed");
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts redis-server on `self.port` and waits until it answers as itself. An error
    /// (the server exited, typically because the port was taken; another server answers;
    /// no answer in time) leaves nothing running.
    fn launch(&mut self) -> Result<(), String> {
        self.stop();
        let out = std::fs::File::create(&self.log).map_err(|e| format!("log file: {e}"))?;
        let err = out.try_clone().map_err(|e| format!("log file: {e}"))?;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("redis-server is not installed: run scripts/test.sh, which installs it");
        let pid = child.id();
        self.child = Some(child);
        let outcome = self.wait_ready(pid);
        if outcome.is_err() {
            self.stop();
        }
        outcome
    }

    /// Polls until the server with process id `pid` answers on `self.port`.
    fn wait_ready(&mut self, pid: u32) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                return Err(format!("exited with {status}: {}", self.log_tail()));
            }
            match answering_pid(self.port) {
                Some(p) if p == pid => return Ok(()),
                Some(other) => {
                    return Err(format!(
                        "the port is another redis-server's (pid {other}): {}",
                        self.log_tail()
                    ))
                }
                None => {}
            }
            if Instant::now() >= deadline {
                return Err(format!("no answer to PING in 10 s: {}", self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }
}

/// The process id of the Redis answering PING on `port`, if one does. Plain RESP on a socket
/// with timeouts: whatever holds the port may not be a Redis, nor answer at all (a client
/// library's connect handshake would wait for it forever).
fn answering_pid(port: u16) -> Option<u32> {
    let timeout = Duration::from_secs(1);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    s.write_all(b"PING\r\nINFO server\r\n").ok()?;
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    if line != "+PONG\r\n" {
        return None;
    }
    // A bulk string: `$<length>\r\n<text>\r\n`.
    line.clear();
    reader.read_line(&mut line).ok()?;
    let len: usize = line.strip_prefix('$')?.trim_end().parse().ok()?;
    let mut info = vec![0; len];
    reader.read_exact(&mut info).ok()?;
    String::from_utf8_lossy(&info)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))?
        .trim()
        .parse()
        .ok()
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Serves a JWK Set (and an OIDC discovery document pointing at it) that a test can swap,
/// counting fetches.
pub struct JwksServer {
    pub port: u16,
    pub jwks: Arc<Mutex<String>>,
    pub fetches: Arc<AtomicUsize>,
    /// While true, key-set requests are counted but not answered (a slow identity provider).
    held: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

impl JwksServer {
    pub fn start(jwks: &str) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(jwks.to_string()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let held = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let (st, f, h) = (state.clone(), fetches.clone(), held.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                }
                let body = if line.contains("/.well-known/openid-configuration") {
                    format!(
                        r#"{{"issuer":"http://127.0.0.1:{port}","jwks_uri":"http://127.0.0.1:{port}/jwks"}}"#
                    )
                } else {
                    f.fetch_add(1, Ordering::SeqCst);
                    let (lock, released) = &*h;
                    let mut held = lock.lock().unwrap();
                    while *held {
                        held = released.wait(held).unwrap();
                    }
                    st.lock().unwrap().clone()
                };
                let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            }
        });
        JwksServer {
            port,
            jwks: state,
            fetches,
            held,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/jwks", self.port)
    }

    pub fn set(&self, jwks: &str) {
        *self.jwks.lock().unwrap() = jwks.to_string();
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Key-set requests wait unanswered until `release`.
    pub fn hold(&self) {
        *self.held.0.lock().unwrap() = true;
    }

    pub fn release(&self) {
        *self.held.0.lock().unwrap() = false;
        self.held.1.notify_all();
    }

    /// Waits until at least `n` key-set requests have arrived.
    pub fn wait_fetches(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.fetches() < n {
            assert!(Instant::now() < deadline, "fewer than {n} key-set fetches");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
