//! The local function host (GATEWAY.md 11): each function's warm instances, started on
//! first use through its runtime's interface client and driven through the Lambda Runtime
//! API on loopback. `Function::invoke` is what an AWS_PROXY integration calls.
//!
//! Functions outlive a config reload while their definition is unchanged (their instances
//! stay warm); every instance runs in its own process group and is ended on exit.

mod instance;
pub mod metrics;
pub mod remote;
mod runtime_api;
pub mod spec;

pub use instance::Outcome;
pub use spec::FunctionSpec;

use bytes::Bytes;
use instance::Instance;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Invocations waiting for an instance, per instance allowed (a bounded queue).
const QUEUE_PER_INSTANCE: usize = 64;
/// Lambda's init phase limit: a runtime that has not asked for work by then is ended.
const INIT_LIMIT: Duration = Duration::from_secs(10);

/// Why an invocation got no answer from the function.
#[derive(Debug, PartialEq, Eq)]
pub enum InvokeError {
    /// The wait queue is full (Lambda's `TooManyRequestsException`).
    Throttled,
    /// The instance could not be started.
    StartFailed,
}

/// One function and its pool of instances.
pub struct Function {
    pub spec: Arc<FunctionSpec>,
    idle: Mutex<Vec<Instance>>,
    /// One permit per instance: an invocation holds one while it runs.
    permits: Semaphore,
    waiting: AtomicUsize,
    ids: AtomicU64,
    metrics: metrics::FunctionMetrics,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("spec", &self.spec)
            .finish()
    }
}

/// What an invocation produced, and whether it started an instance.
pub struct Invocation {
    pub outcome: Outcome,
    pub cold_start: bool,
}

impl Function {
    fn new(spec: FunctionSpec) -> Function {
        let n = spec.instances.max(1);
        Function {
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(n),
            waiting: AtomicUsize::new(0),
            ids: AtomicU64::new(0),
            metrics: metrics::FunctionMetrics::new(&spec.name),
            spec: Arc::new(spec),
        }
    }

    /// Runs `event` on an idle instance (or a new one: a cold start), waiting in the queue
    /// while all are busy. `timeout` (the function's) bounds the invocation itself; an
    /// instance that times out or dies is ended, and the next invocation starts a new one.
    /// Dropping the future (the integration's timeout) ends the instance it was using.
    pub async fn invoke(&self, event: Bytes, timeout: Duration) -> Result<Invocation, InvokeError> {
        use metrics::Label;
        let m = &self.metrics;
        let limit = self.spec.instances.max(1) * QUEUE_PER_INSTANCE;
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= limit {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            m.outcome(Label::Throttled);
            return Err(InvokeError::Throttled);
        }
        let queued = std::time::Instant::now();
        let permit = self.permits.acquire().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        m.queue_wait.observe(queued.elapsed().as_secs_f64());
        let Ok(_permit) = permit else {
            return Err(InvokeError::StartFailed);
        };
        let warm = {
            let mut idle = self.idle.lock();
            idle.retain(|i| i.is_alive());
            let warm = idle.pop();
            m.idle.set(idle.len() as i64);
            warm
        };
        let started = std::time::Instant::now();
        let (instance, cold_start) = match warm {
            Some(i) => (i, false),
            // Boxed: only a cold start makes this await; inline, its future would make
            // every invocation's larger.
            None => match Box::pin(Instance::start(&self.spec)).await {
                Ok(i) => {
                    m.cold_starts.inc();
                    (i, true)
                }
                Err(e) => {
                    log::error!("function {}: cannot start an instance: {e}", self.spec.name);
                    m.outcome(Label::StartFailed);
                    return Err(InvokeError::StartFailed);
                }
            },
        };
        m.busy.inc();
        let id = request_id(self.ids.fetch_add(1, Ordering::Relaxed));
        // The function's Timeout counts from the end of init, as in Lambda.
        let outcome = if cold_start && !instance.wait_ready(INIT_LIMIT).await {
            log::warn!("function {}: the runtime did not start", self.spec.name);
            Outcome::Crashed
        } else {
            instance.invoke(id, event, timeout).await
        };
        m.busy.dec();
        m.duration.observe(started.elapsed().as_secs_f64());
        m.outcome(match &outcome {
            Outcome::Answered(_) => Label::Success,
            Outcome::FunctionError(_) => Label::FunctionError,
            Outcome::Crashed => Label::Crash,
            Outcome::TimedOut => Label::Timeout,
        });
        match &outcome {
            Outcome::Answered(_) | Outcome::FunctionError(_) if instance.is_alive() => {
                let mut idle = self.idle.lock();
                idle.push(instance);
                m.idle.set(idle.len() as i64);
            }
            Outcome::TimedOut => {
                log::warn!(
                    "function {}: timed out after {timeout:?}; instance ended",
                    self.spec.name
                );
            }
            Outcome::Crashed => {
                log::warn!(
                    "function {}: instance ended during an invocation",
                    self.spec.name
                );
            }
            _ => {}
        }
        Ok(Invocation {
            outcome,
            cold_start,
        })
    }
}

/// A UUID-shaped request id, unique within this process (written by hand: `format!` cost
/// more than the rest of handing the invocation over).
fn request_id(n: u64) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let pid = std::process::id() as u64;
    let mut s = String::with_capacity(36);
    push_hex(&mut s, (t >> 16) & 0xffff_ffff, 8);
    s.push('-');
    push_hex(&mut s, t & 0xffff, 4);
    s.push_str("-4");
    push_hex(&mut s, pid & 0xfff, 3);
    s.push_str("-8");
    push_hex(&mut s, (n >> 48) & 0xfff, 3);
    s.push('-');
    push_hex(&mut s, n & 0xffff_ffff_ffff, 12);
    s
}

/// The low `digits` hex digits of `v`, lowercase, zero-padded (`{:0digits$x}` for values
/// that fit).
fn push_hex(out: &mut String, v: u64, digits: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.push(HEX[((v >> (4 * i)) & 0xf) as usize] as char);
    }
}

/// Functions by name: a reload that keeps a definition keeps its warm instances.
fn registry() -> &'static Mutex<HashMap<Arc<str>, Arc<Function>>> {
    static R: OnceLock<Mutex<HashMap<Arc<str>, Arc<Function>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// The function for `spec`: the running one if its definition is unchanged, else a new
/// one (the old one's instances end when its last in-flight invocation lets it go).
/// `Err` when its runtime's interface client is missing: (problem, fix).
pub fn function(spec: FunctionSpec) -> Result<Arc<Function>, (String, String)> {
    let mut r = registry().lock();
    if let Some(f) = r.get(&spec.name).filter(|f| *f.spec == spec) {
        return Ok(f.clone());
    }
    spec.check_runtime()?;
    let f = Arc::new(Function::new(spec));
    r.insert(f.spec.name.clone(), f.clone());
    Ok(f)
}

fn pgids() -> &'static Mutex<HashSet<i32>> {
    static P: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    P.get_or_init(Default::default)
}

fn register_pgid(pgid: i32) {
    if pgid > 0 {
        pgids().lock().insert(pgid);
    }
}

fn unregister_pgid(pgid: i32) {
    pgids().lock().remove(&pgid);
}

/// Ends every instance (called once requests have drained): SIGTERM, then SIGKILL for any
/// still there after `grace`.
pub fn shutdown(grace: Duration) {
    let groups: Vec<i32> = pgids().lock().iter().copied().collect();
    for g in &groups {
        // SAFETY: signalling process groups this process created.
        unsafe {
            libc::killpg(*g, libc::SIGTERM);
        }
    }
    let deadline = std::time::Instant::now() + grace;
    for g in &groups {
        loop {
            // SAFETY: reaps our own child without blocking.
            let done = unsafe { libc::waitpid(*g, std::ptr::null_mut(), libc::WNOHANG) } != 0;
            if done || std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: as above.
        unsafe {
            libc::killpg(*g, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_by_hand_matches_format() {
        for v in [0u64, 1, 0xabc, 0xffff_ffff, 0x1234_5678_9abc] {
            for digits in [3, 4, 8, 12] {
                let mask = if digits == 16 {
                    u64::MAX
                } else {
                    (1 << (4 * digits)) - 1
                };
                let mut s = String::new();
                super::push_hex(&mut s, v & mask, digits);
                assert_eq!(s, format!("{:0w$x}", v & mask, w = digits));
            }
        }
        let id = super::request_id(7);
        assert_eq!(id.len(), 36);
        assert!(id.ends_with("-000000000007"), "{id}");
        assert_eq!(&id[14..15], "4");
        assert_eq!(&id[19..20], "8");
    }
}
