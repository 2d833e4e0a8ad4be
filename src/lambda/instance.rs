//! One warm instance: a process of the runtime's interface client, its own Runtime API
//! listener, and the one invocation it may hold at a time. Dropping an `Instance` ends its
//! process group, so a timed-out or replaced instance never lingers.

use super::runtime_api;
use super::spec::FunctionSpec;
use bytes::Bytes;
use parking_lot::Mutex;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};

/// How one invocation on an instance ended.
#[derive(Debug)]
pub enum Outcome {
    /// `/response`: the function's payload.
    Answered(Bytes),
    /// `/error` or `/init/error`: the function's error document.
    FunctionError(Bytes),
    /// The process ended before answering.
    Crashed,
    /// No answer within the deadline.
    TimedOut,
}

/// The invocation handed to `/next`.
pub struct Next {
    pub id: String,
    pub deadline_ms: u64,
    pub trace_id: String,
    pub event: Bytes,
}

struct Pending {
    next: Arc<Next>,
    delivered: bool,
    reply: oneshot::Sender<Outcome>,
}

/// What the Runtime API server and the invoker share.
pub struct Slot {
    pub arn: String,
    pending: Mutex<Option<Pending>>,
    wake: Notify,
    /// `Starting` until the runtime first asks for an invocation (its init is done).
    state: tokio::sync::watch::Sender<State>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Starting,
    Ready,
    Dead,
}

impl Slot {
    /// Waits for the next invocation (the runtime's long poll).
    pub async fn next(&self) -> Arc<Next> {
        self.state.send_if_modified(|s| {
            let starting = *s == State::Starting;
            if starting {
                *s = State::Ready;
            }
            starting
        });
        loop {
            let notified = self.wake.notified();
            {
                let mut p = self.pending.lock();
                if let Some(p) = p.as_mut().filter(|p| !p.delivered) {
                    p.delivered = true;
                    return p.next.clone();
                }
            }
            notified.await;
        }
    }

    /// Ends the invocation `id`; `false` if it is not the one pending.
    pub fn complete(&self, id: &str, answered: bool, body: Bytes) -> bool {
        let mut p = self.pending.lock();
        if !p.as_ref().is_some_and(|p| p.delivered && p.next.id == id) {
            return false;
        }
        if let Some(p) = p.take() {
            let _ = p.reply.send(if answered {
                Outcome::Answered(body)
            } else {
                Outcome::FunctionError(body)
            });
        }
        true
    }

    /// `/init/error`: the pending invocation (the one that started this instance) fails.
    pub fn init_error(&self, body: Bytes) {
        if let Some(p) = self.pending.lock().take() {
            let _ = p.reply.send(Outcome::FunctionError(body));
        }
    }

    /// The process ended: whatever it held fails.
    fn died(&self) {
        self.state.send_replace(State::Dead);
        if let Some(p) = self.pending.lock().take() {
            let _ = p.reply.send(Outcome::Crashed);
        }
    }
}

pub struct Instance {
    slot: Arc<Slot>,
    pgid: i32,
    /// The listener and the waiter, ended with the instance.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    exited: Arc<std::sync::atomic::AtomicBool>,
}

impl Instance {
    /// Starts a process of `spec`'s runtime, with the environment Lambda sets.
    pub async fn start(spec: &Arc<FunctionSpec>) -> std::io::Result<Instance> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let api = listener.local_addr()?.to_string();
        let slot = Arc::new(Slot {
            arn: spec.arn(),
            pending: Mutex::new(None),
            wake: Notify::new(),
            state: tokio::sync::watch::Sender::new(State::Starting),
        });
        let mut cmd = spec.command();
        cmd.envs(spec.environment(&api))
            .current_dir(&spec.code_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                // The instance ends with the gateway even if the gateway is killed.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let pid = child.id().unwrap_or(0) as i32;
        super::register_pgid(pid);
        let mut tasks = vec![tokio::spawn(runtime_api::serve(listener, slot.clone()))];
        if let Some(out) = child.stdout.take() {
            tasks.push(tokio::spawn(prefix_lines(out, spec.name.clone())));
        }
        if let Some(err) = child.stderr.take() {
            tasks.push(tokio::spawn(prefix_lines(err, spec.name.clone())));
        }
        let exited = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, e) = (slot.clone(), exited.clone());
        tasks.push(tokio::spawn(async move {
            let _ = child.wait().await;
            e.store(true, std::sync::atomic::Ordering::Release);
            super::unregister_pgid(pid);
            s.died();
        }));
        Ok(Instance {
            slot,
            pgid: pid,
            tasks,
            exited,
        })
    }

    /// Waits until the runtime finished its init (asked for its first invocation); `false`
    /// if it died or took longer than `limit` (Lambda's init phase has its own 10 s limit,
    /// apart from the function's `Timeout`).
    pub async fn wait_ready(&self, limit: Duration) -> bool {
        let mut rx = self.slot.state.subscribe();
        let ready = tokio::time::timeout(limit, rx.wait_for(|s| *s != State::Starting))
            .await
            .is_ok_and(|s| s.is_ok_and(|s| *s == State::Ready));
        ready
    }

    pub fn is_alive(&self) -> bool {
        !self.exited.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Hands `event` to the instance and waits for its answer, at most `timeout`.
    pub async fn invoke(&self, id: String, event: Bytes, timeout: Duration) -> Outcome {
        let (tx, rx) = oneshot::channel();
        let deadline = SystemTime::now() + timeout;
        let deadline_ms = deadline
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        // X-Ray's form: Root=1-{epoch seconds, 8 hex}-{24 hex}: the id's first 24 hex
        // digits, zero-padded on the left.
        let mut trace_id = String::with_capacity(40);
        trace_id.push_str("Root=1-");
        super::push_hex(&mut trace_id, deadline_ms / 1000, 8);
        trace_id.push('-');
        let digits = id.bytes().filter(u8::is_ascii_hexdigit).take(24);
        trace_id.extend(std::iter::repeat_n('0', 24 - digits.clone().count()));
        trace_id.extend(digits.map(char::from));
        *self.slot.pending.lock() = Some(Pending {
            next: Arc::new(Next {
                id,
                deadline_ms,
                trace_id,
                event,
            }),
            delivered: false,
            reply: tx,
        });
        if !self.is_alive() {
            self.slot.died();
        }
        self.slot.wake.notify_one();
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Outcome::Crashed,
            Err(_) => {
                self.slot.pending.lock().take();
                Outcome::TimedOut
            }
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if self.is_alive() && self.pgid > 0 {
            // SAFETY: signalling a process group we created.
            unsafe {
                libc::killpg(self.pgid, libc::SIGKILL);
            }
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Copies a function's output to the gateway's stderr, each line prefixed with its name
/// (lines cut at 16 KiB: a function cannot make the gateway buffer without bound).
async fn prefix_lines(mut from: impl AsyncRead + Unpin, name: Arc<str>) {
    const MAX_LINE: usize = 16 * 1024;
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut chunk = [0u8; 8192];
    loop {
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        if n == 0 {
            if !line.is_empty() {
                emit(&name, &line).await;
            }
            return;
        }
        for &b in &chunk[..n] {
            if b == b'\n' || line.len() >= MAX_LINE {
                emit(&name, &line).await;
                line.clear();
                if b == b'\n' {
                    continue;
                }
            }
            line.push(b);
        }
    }
}

async fn emit(name: &str, line: &[u8]) {
    let mut out = Vec::with_capacity(name.len() + line.len() + 4);
    out.push(b'[');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"] ");
    out.extend_from_slice(line);
    out.push(b'\n');
    let _ = tokio::io::stderr().write_all(&out).await;
}
