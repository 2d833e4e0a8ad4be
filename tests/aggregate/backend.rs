//! A loopback JSON backend for aggregate tests: each request is answered by a closure, and
//! dropping the backend stops it (listener, every connection, any held request) before the
//! test ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A request as the backend saw it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: status, content type, body.
pub struct Reply(pub u16, pub &'static str, pub String);

impl Reply {
    pub fn json(v: serde_json::Value) -> Reply {
        Reply(200, "application/json", v.to_string())
    }
}

/// A latch the test opens (or the backend's drop does): a handler waiting on it holds its
/// request until then.
#[derive(Default)]
pub struct Latch {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Latch {
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }

    /// Waits until open, at most `max`; whether it opened.
    pub fn wait(&self, max: Duration) -> bool {
        let g = self.open.lock().unwrap();
        let (g, _) = self.cv.wait_timeout_while(g, max, |open| !*open).unwrap();
        *g
    }
}

/// Counts arrivals; `arrive_and_wait` returns whether `n` requests were in at once.
pub struct Rendezvous {
    count: Mutex<usize>,
    cv: Condvar,
    n: usize,
}

impl Rendezvous {
    pub fn new(n: usize) -> Arc<Rendezvous> {
        Arc::new(Rendezvous {
            count: Mutex::new(0),
            cv: Condvar::new(),
            n,
        })
    }

    pub fn arrive_and_wait(&self, max: Duration) -> bool {
        let mut g = self.count.lock().unwrap();
        *g += 1;
        self.cv.notify_all();
        let (g, _) = self.cv.wait_timeout_while(g, max, |c| *c < self.n).unwrap();
        *g >= self.n
    }
}

type Handler = Arc<dyn Fn(&Req, &Latch) -> Reply + Send + Sync>;

pub struct JsonBackend {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Req>>>,
    /// Opened on drop: handlers holding requests let them go.
    pub latch: Arc<Latch>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: Option<JoinHandle<()>>,
}

impl JsonBackend {
    pub fn start(handler: impl Fn(&Req, &Latch) -> Reply + Send + Sync + 'static) -> JsonBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handler: Handler = Arc::new(handler);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let latch = Arc::new(Latch::default());
        let (s, st, c, t) = (seen.clone(), stop.clone(), conns.clone(), threads.clone());
        let l = latch.clone();
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                if let Ok(clone) = stream.try_clone() {
                    c.lock().unwrap().push(clone);
                }
                let (h, s, l) = (handler.clone(), s.clone(), l.clone());
                t.lock()
                    .unwrap()
                    .push(std::thread::spawn(move || serve(stream, &*h, &s, &l)));
            }
        });
        JsonBackend {
            port,
            seen,
            latch,
            stop,
            conns,
            threads,
            accept: Some(accept),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Req> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for JsonBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.latch.open();
        // Wakes the accept loop, which then sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        for t in self.threads.lock().unwrap().drain(..) {
            let _ = t.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    handler: &(dyn Fn(&Req, &Latch) -> Reply + Send + Sync),
    seen: &Mutex<Vec<Req>>,
    latch: &Latch,
) {
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
        let req = Req {
            method,
            target,
            headers,
        };
        if let Some(len) = req
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
        }
        seen.lock().unwrap().push(req.clone());
        let Reply(status, ctype, body) = handler(&req, latch);
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if reader.get_mut().write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}
