//! Access logs per stage (`AccessLogSettings`), in AWS's `$context.*` variables (named and
//! lexed by `mapping::context`, rendered here).
//!
//! The format is parsed once at config load. Each request renders one line and hands it to a
//! writer thread through a bounded channel: the request path never blocks on stdout; when the
//! writer falls behind, lines are dropped and counted (`apigate_access_log_dropped_total`).

use crate::config::{AccessLogConf, ConfigError, ConfigErrors};
use crate::mapping::context::{self, ContextVar, Scope};
use crate::policy::jwt::Claims;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// AWS's suggested JSON format, used when `AccessLogSettings` gives no `Format`.
pub const DEFAULT_FORMAT: &str = r#"{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","requestTime":"$context.requestTime","httpMethod":"$context.httpMethod","routeKey":"$context.routeKey","status":"$context.status","protocol":"$context.protocol","responseLength":"$context.responseLength","responseLatency":"$context.responseLatency","integrationLatency":"$context.integrationLatency"}"#;

const QUEUE: usize = 16_384;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Var(ContextVar),
}

/// A parsed `Format`.
#[derive(Debug, Clone)]
pub struct AccessLogFormat {
    parts: Vec<Part>,
}

/// What one request contributes to its log line.
pub struct LogVars<'a> {
    pub request_id: &'a str,
    pub route_key: &'a str,
    pub status: u16,
    pub method: &'a str,
    pub path: &'a str,
    pub protocol: &'a str,
    pub source_ip: &'a str,
    pub user_agent: Option<&'a str>,
    pub response_length: u64,
    pub response_latency_ms: u64,
    pub integration_latency_ms: Option<u64>,
    pub integration_status: Option<u16>,
    pub error_message: Option<&'a str>,
    /// Set only when the integration itself failed (timeout, refused, malformed answer).
    pub integration_error: Option<&'a str>,
    /// An aggregate route's backend calls (`$context.integration.backends`).
    pub integration_backends: Option<&'a str>,
    pub request_time: SystemTime,
    pub stage: &'a str,
    pub domain_name: &'a str,
    /// The serving API's Name (`-` without one).
    pub api_id: &'a str,
    pub claims: Option<&'a Claims>,
    pub client_cert: Option<&'a crate::tls::client_cert::ClientCert>,
}

impl AccessLogFormat {
    pub fn compile(
        file: &str,
        format: Option<&str>,
        errors: &mut ConfigErrors,
    ) -> Option<AccessLogFormat> {
        let text = format.unwrap_or(DEFAULT_FORMAT);
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        let mut ok = true;
        while let Some(pos) = rest.find("$context.") {
            lit.push_str(&rest[..pos]);
            let after = &rest[pos + "$context.".len()..];
            let name = context::lex(after);
            match Scope::ACCESS_LOG.parse(name) {
                Some(v) => {
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Var(v));
                }
                None => {
                    ok = false;
                    let known = Scope::ACCESS_LOG.names();
                    let hint = crate::config::closest(name, known.iter().copied())
                        .map(|s| format!("did you mean $context.{s}?"))
                        .unwrap_or_else(|| format!("supported: {}", Scope::ACCESS_LOG.supported()));
                    errors.push(ConfigError::new(
                        file,
                        "AccessLogSettings.Format",
                        format!("unknown variable $context.{name}"),
                        hint,
                    ));
                }
            }
            rest = &after[name.len()..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        ok.then_some(AccessLogFormat { parts })
    }

    /// Renders one line. Values are always JSON-escaped, so a hostile path or header
    /// cannot break a JSON line; missing values are `-`, as in AWS.
    pub fn render(&self, v: &LogVars<'_>, out: &mut String) {
        use std::fmt::Write as _;
        for part in &self.parts {
            let var = match part {
                Part::Lit(s) => {
                    out.push_str(s);
                    continue;
                }
                Part::Var(var) => var,
            };
            match var {
                ContextVar::RequestId => escape(v.request_id, out),
                ContextVar::RouteKey => escape(v.route_key, out),
                ContextVar::Status => {
                    let _ = write!(out, "{}", v.status);
                }
                ContextVar::HttpMethod => escape(v.method, out),
                ContextVar::Path => escape(v.path, out),
                ContextVar::Protocol => escape(v.protocol, out),
                ContextVar::SourceIp => escape(v.source_ip, out),
                ContextVar::UserAgent => escape(v.user_agent.unwrap_or("-"), out),
                ContextVar::ResponseLength => {
                    let _ = write!(out, "{}", v.response_length);
                }
                ContextVar::ResponseLatency => {
                    let _ = write!(out, "{}", v.response_latency_ms);
                }
                ContextVar::IntegrationLatency => match v.integration_latency_ms {
                    Some(ms) => {
                        let _ = write!(out, "{ms}");
                    }
                    None => out.push('-'),
                },
                ContextVar::IntegrationStatus => match v.integration_status {
                    Some(s) => {
                        let _ = write!(out, "{s}");
                    }
                    None => out.push('-'),
                },
                ContextVar::IntegrationError => escape(v.integration_error.unwrap_or("-"), out),
                ContextVar::IntegrationBackends => {
                    escape(v.integration_backends.unwrap_or("-"), out)
                }
                ContextVar::ErrorMessage => escape(v.error_message.unwrap_or("-"), out),
                ContextVar::AuthorizerError => escape(
                    if v.status == 401 || v.status == 403 {
                        v.error_message.unwrap_or("-")
                    } else {
                        "-"
                    },
                    out,
                ),
                ContextVar::ClientCert(f) => {
                    escape(v.client_cert.map_or("-", |c| c.field(*f)), out)
                }
                ContextVar::RequestTime => clf_time(v.request_time, out),
                ContextVar::RequestTimeEpoch => {
                    let ms = v
                        .request_time
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_millis())
                        .unwrap_or(0);
                    let _ = write!(out, "{ms}");
                }
                ContextVar::Stage => escape(v.stage, out),
                ContextVar::DomainName => escape(v.domain_name, out),
                ContextVar::ApiId => escape(v.api_id, out),
                // Access-log lines do not carry a Lambda authorizer's context yet.
                ContextVar::AuthorizerProperty(_) => out.push('-'),
                ContextVar::Claim(name) => match v.claims.and_then(|c| c.get(name)) {
                    Some(serde_json::Value::String(s)) => escape(s, out),
                    Some(other) => escape(&other.to_string(), out),
                    None => out.push('-'),
                },
            }
        }
    }
}

fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// `22/Nov/2026:10:00:00 +0000`.
pub(crate) fn clf_time(t: SystemTime, out: &mut String) {
    use std::fmt::Write as _;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(
        out,
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
}

/// Lines go to one thread per destination, shared across reloads.
pub struct Writer {
    tx: SyncSender<String>,
    /// Lines queued but not yet written (for `flush`).
    pending: Arc<AtomicUsize>,
}

impl Writer {
    /// Queues a line; drops it (and counts) rather than wait.
    pub fn write_line(&self, line: String) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.pending.fetch_sub(1, Ordering::AcqRel);
                crate::metrics::metrics().access_log_dropped.inc();
            }
        }
    }
}

static WRITERS: LazyLock<Mutex<HashMap<String, Arc<Writer>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Where a stage's lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Destination {
    Stdout,
    Stderr,
    /// Resolved against the conf dir.
    File(PathBuf),
}

impl Destination {
    /// Checks `DestinationArn` without touching the file system beyond looking: `check`
    /// must not create the file. A relative path may not leave the conf dir (`..`): a
    /// configuration copied from elsewhere must not write outside its own directory
    /// unnoticed; a file elsewhere is written as an absolute path, on purpose.
    fn parse(arn: &str, conf_dir: &Path) -> Result<Destination, (String, &'static str)> {
        match arn {
            "stdout" => return Ok(Destination::Stdout),
            "stderr" => return Ok(Destination::Stderr),
            "" => return Err(("is empty".into(), FIX)),
            _ => {}
        }
        const FIX: &str =
            "use \"stdout\", \"stderr\", a file path inside the conf dir, or an absolute path";
        let rel = Path::new(arn);
        if rel.is_relative() && rel.components().any(|c| c == Component::ParentDir) {
            return Err((format!("{arn:?} leaves the configuration directory"), FIX));
        }
        let path = conf_dir.join(rel);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => {}
            Ok(m) => {
                let kind = crate::config::read::irregular_kind(&m).unwrap_or("not a file");
                return Err((
                    format!("{} is {kind}, not a regular file", path.display()),
                    FIX,
                ));
            }
            Err(_) => {
                let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
                if !parent.is_none_or(Path::is_dir) {
                    return Err((
                        format!("{} is not a directory", parent.unwrap_or(&path).display()),
                        "create the directory, or log to another path",
                    ));
                }
            }
        }
        Ok(Destination::File(path))
    }

    /// Opens the sink: append, created if absent, never blocking (a FIFO swapped in after
    /// the check would hang the opener, open(2)), and a regular file only.
    fn open(&self) -> std::io::Result<Box<dyn Write + Send>> {
        use std::os::unix::fs::OpenOptionsExt;
        Ok(match self {
            Destination::Stdout => Box::new(std::io::stdout()),
            Destination::Stderr => Box::new(std::io::stderr()),
            Destination::File(path) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                    .open(path)?;
                if let Some(kind) = crate::config::read::irregular_kind(&f.metadata()?) {
                    return Err(std::io::Error::other(format!("{kind}, not a regular file")));
                }
                Box::new(f)
            }
        })
    }

    /// One writer per destination, shared across stages and reloads.
    fn key(&self) -> String {
        match self {
            Destination::Stdout => "stdout".into(),
            Destination::Stderr => "stderr".into(),
            Destination::File(p) => p.display().to_string(),
        }
    }
}

fn writer_for(destination: &Destination) -> std::io::Result<Arc<Writer>> {
    let mut writers = WRITERS.lock();
    let key = destination.key();
    if let Some(w) = writers.get(&key) {
        return Ok(w.clone());
    }
    let sink = destination.open()?;
    let (tx, rx) = sync_channel::<String>(QUEUE);
    let pending = Arc::new(AtomicUsize::new(0));
    let done = pending.clone();
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || write_loop(rx, sink, done))?;
    let w = Arc::new(Writer { tx, pending });
    writers.insert(key, w.clone());
    Ok(w)
}

/// A stage's writer, attached by [`AccessLog::open`] when the table is about to serve
/// (never by `check`). Until then lines are dropped and counted.
pub struct StageWriter {
    destination: Destination,
    writer: OnceLock<Arc<Writer>>,
}

impl StageWriter {
    pub fn write_line(&self, line: String) {
        match self.writer.get() {
            Some(w) => w.write_line(line),
            None => crate::metrics::metrics().access_log_dropped.inc(),
        }
    }
}

fn write_loop(rx: Receiver<String>, sink: Box<dyn Write + Send>, pending: Arc<AtomicUsize>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, sink);
    while let Ok(line) = rx.recv() {
        let mut n = 1;
        let mut ok = write_one(&mut out, &line);
        // Batch while lines keep coming; flush when the queue runs dry.
        while let Ok(line) = rx.try_recv() {
            n += 1;
            ok &= write_one(&mut out, &line);
        }
        ok &= out.flush().is_ok();
        if !ok {
            // A closed stdout or a full disk: the batch is lost, and says so in the metrics.
            crate::metrics::metrics()
                .access_log_dropped
                .inc_by(n as u64);
        }
        pending.fetch_sub(n, Ordering::AcqRel);
    }
}

fn write_one(out: &mut impl Write, line: &str) -> bool {
    out.write_all(line.as_bytes()).is_ok() && out.write_all(b"\n").is_ok()
}

/// Waits (bounded) until every queued line has been written; used before exiting.
pub fn flush(timeout: Duration) {
    let writers: Vec<Arc<Writer>> = WRITERS.lock().values().cloned().collect();
    let deadline = std::time::Instant::now() + timeout;
    for w in writers {
        while w.pending.load(Ordering::Acquire) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// A stage's access log: its format and where lines go.
pub struct AccessLog {
    pub format: AccessLogFormat,
    pub writer: StageWriter,
    /// The stage file, for errors when opening.
    file: String,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessLog({:?})", self.format.parts.len())
    }
}

impl AccessLog {
    /// `DestinationArn`: absent or `stdout`, `stderr`, or a file path (relative to the conf
    /// dir, inside it, or absolute). Nothing is opened here: see [`AccessLog::open`].
    pub fn compile(
        file: &str,
        conf: &AccessLogConf,
        conf_dir: &Path,
        errors: &mut ConfigErrors,
    ) -> Option<AccessLog> {
        let format = AccessLogFormat::compile(file, conf.format.as_deref(), errors);
        let arn = conf.destination_arn.as_deref().unwrap_or("stdout");
        let destination = match Destination::parse(arn, conf_dir) {
            Ok(d) => d,
            Err((problem, fix)) => {
                errors.push(ConfigError::new(
                    file,
                    "AccessLogSettings.DestinationArn",
                    problem,
                    fix,
                ));
                return None;
            }
        };
        Some(AccessLog {
            format: format?,
            writer: StageWriter {
                destination,
                writer: OnceLock::new(),
            },
            file: file.to_string(),
        })
    }

    /// Opens (or joins) the destination's writer: only a table about to serve does this,
    /// creating the file if needed.
    pub fn open(&self) -> Result<(), ConfigError> {
        if self.writer.writer.get().is_some() {
            return Ok(());
        }
        let dest = &self.writer.destination;
        let w = writer_for(dest).map_err(|e| {
            ConfigError::new(
                &self.file,
                "AccessLogSettings.DestinationArn",
                format!("cannot open {}: {e}", dest.key()),
                "use \"stdout\", \"stderr\" or a writable file path",
            )
        })?;
        let _ = self.writer.writer.set(w);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(path: &'a str, claims: Option<&'a Claims>) -> LogVars<'a> {
        LogVars {
            request_id: "id1",
            route_key: "GET /pets/{id}",
            status: 200,
            method: "GET",
            path,
            protocol: "HTTP/1.1",
            source_ip: "127.0.0.1",
            user_agent: None,
            response_length: 12,
            response_latency_ms: 3,
            integration_latency_ms: Some(2),
            integration_status: Some(200),
            error_message: None,
            integration_error: None,
            integration_backends: None,
            request_time: UNIX_EPOCH + Duration::from_secs(1_795_348_800),
            stage: "$default",
            domain_name: "localhost",
            api_id: "pets",
            claims,
            client_cert: None,
        }
    }

    #[test]
    fn default_format_is_valid_json_even_for_hostile_paths() {
        let f = AccessLogFormat::compile("s", None, &mut ConfigErrors::default()).unwrap();
        let mut line = String::new();
        f.render(&vars("/pets/\"}\n{\"x\":\"\\", None), &mut line);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["routeKey"], "GET /pets/{id}");
        assert_eq!(v["status"], "200");
        assert_eq!(v["integrationLatency"], "2");
    }

    #[test]
    fn custom_format_claims_and_unknown_variables() {
        let claims: Claims = serde_json::from_str(r#"{"sub":"alice"}"#).unwrap();
        let f = AccessLogFormat::compile("s", Some("$context.requestId $context.authorizer.claims.sub $context.identity.userAgent $context.integrationStatus"), &mut ConfigErrors::default()).unwrap();
        let mut line = String::new();
        f.render(&vars("/", Some(&claims)), &mut line);
        assert_eq!(line, "id1 alice - 200");
        let mut errors = ConfigErrors::default();
        assert!(
            AccessLogFormat::compile("stages/s.json", Some("$context.requestID"), &mut errors)
                .is_none()
        );
        assert_eq!(errors.0[0].field, "AccessLogSettings.Format");
        assert!(errors.0[0].fix.contains("requestId"), "{}", errors.0[0]);
    }

    #[test]
    fn claim_names_end_at_a_colon_as_in_mappings() {
        let claims: Claims =
            serde_json::from_str(r#"{"cognito:groups":"admins","custom-id":"7"}"#).unwrap();
        let f = AccessLogFormat::compile(
            "s",
            Some("$context.authorizer.claims.cognito:groups $context.authorizer.claims.custom-id $context.stage-$context.requestId"),
            &mut ConfigErrors::default(),
        )
        .unwrap();
        let mut line = String::new();
        f.render(&vars("/", Some(&claims)), &mut line);
        assert_eq!(line, "-:groups 7 $default-id1");
    }

    #[test]
    fn clf_dates() {
        let mut s = String::new();
        clf_time(UNIX_EPOCH + Duration::from_secs(1_795_348_800), &mut s);
        assert_eq!(s, "22/Nov/2026:12:00:00 +0000");
        s.clear();
        clf_time(UNIX_EPOCH + Duration::from_secs(951_782_400), &mut s);
        assert_eq!(s, "29/Feb/2000:00:00:00 +0000");
    }
}
