//! Configuration files that cannot hang or exhaust the gateway (finding 8 of "The edge
//! holds"): devices, FIFOs and oversized files are refused by type and size, a file where
//! a directory belongs is an error, `check` has no side effects, control characters in a
//! static header value are a config error, and a failed reload leaves later ones working.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one `apigate check` run did.
struct Checked {
    ok: bool,
    stdout: String,
    stderr: String,
    took: Duration,
    /// Peak resident memory of the `check` process, in KiB (getrusage of that child).
    max_rss_kib: i64,
}

/// Runs `apigate check --conf conf`, killing it after 20 s: a run that did not finish
/// fails the test instead of hanging it.
// Reaped by `wait4` (for its resource usage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn check(conf: &Path) -> Checked {
    let out_path = conf.with_extension("check-out");
    let err_path = conf.with_extension("check-err");
    let mut child = Command::new(BIN)
        .args(["check", "--conf"])
        .arg(conf)
        .stdout(Stdio::from(std::fs::File::create(&out_path).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err_path).unwrap()))
        .spawn()
        .expect("start apigate check");
    let pid = child.id() as libc::pid_t;
    let start = Instant::now();
    let (status, usage) = loop {
        let mut status = 0;
        // SAFETY: plain out-parameters; `pid` is our own child, reaped only here.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break (status, usage);
        }
        assert_eq!(r, 0, "wait4 failed");
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("apigate check did not finish in 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let read = |p: &Path| {
        let t = std::fs::read_to_string(p).unwrap_or_default();
        let _ = std::fs::remove_file(p);
        t
    };
    Checked {
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        stdout: read(&out_path),
        stderr: read(&err_path),
        took: start.elapsed(),
        max_rss_kib: usage.ru_maxrss,
    }
}

/// Asserts a failed `check` whose report has a line naming `file` and saying `says`.
fn assert_refused(c: &Checked, file: &str, says: &str) {
    assert!(!c.ok, "check passed: {}", c.stdout);
    assert!(
        c.stderr
            .lines()
            .any(|l| l.trim_start().starts_with(file) && l.contains(says)),
        "no line for {file} saying {says:?} in:\n{}",
        c.stderr
    );
}

/// A working configuration: one route `GET /a` to `backend`.
fn conf(backend: &str) -> ConfDir {
    ConfDir::new(&[
        ("integrations/i0.json", integration(backend, "")),
        ("routes/r0.json", route("GET /a", "i0", "")),
    ])
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Every path under `dir` with its size, to compare before and after.
fn tree(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            out.push((e.path().display().to_string(), meta.len()));
            if meta.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// A gigabyte of zeros behind a route file or a `JwksFile` is refused by its type, before
/// a byte is read: quickly and in little memory (the issue saw 1.5 GB in 4 s).
#[test]
fn a_symlink_to_dev_zero_is_refused_quickly_in_bounded_memory() {
    let dir = conf("http://127.0.0.1:9");
    std::os::unix::fs::symlink("/dev/zero", dir.path.join("routes/zero.json")).unwrap();
    let c = check(&dir.path);
    assert_refused(
        &c,
        "routes/zero.json",
        "a character device, not a regular file",
    );
    assert!(c.took < Duration::from_secs(10), "took {:?}", c.took);
    assert!(c.max_rss_kib < 200 * 1024, "peak RSS {} KiB", c.max_rss_kib);

    let dir = conf("http://127.0.0.1:9");
    std::os::unix::fs::symlink("/dev/zero", dir.path.join("zero.jwks")).unwrap();
    dir.write(&[(
        "authorizers/auth.json",
        r#"{"AuthorizerType":"JWT","IdentitySource":["$request.header.Authorization"],"JwtConfiguration":{"Issuer":"https://idp.example","Audience":["api"]},"JwksFile":"zero.jwks"}"#.to_string(),
    )]);
    let c = check(&dir.path);
    assert_refused(&c, "authorizers/auth.json: JwksFile", "a character device");
    assert!(c.max_rss_kib < 200 * 1024, "peak RSS {} KiB", c.max_rss_kib);

    // The bundle and --conf itself go through the same reader.
    let c = check(Path::new("/dev/zero"));
    assert_refused(&c, "/dev/zero", "a character device, not a regular file");
}

/// A FIFO with no writer would block `open` and then `read` for ever.
#[test]
fn a_fifo_as_a_route_file_or_as_conf_does_not_hang_check() {
    let dir = conf("http://127.0.0.1:9");
    mkfifo(&dir.path.join("routes/fifo.json"));
    let c = check(&dir.path);
    assert_refused(&c, "routes/fifo.json", "a FIFO, not a regular file");
    // The other files were still checked and are fine: only the FIFO is reported.
    assert_eq!(c.stderr.matches("\n  ").count(), 1, "{}", c.stderr);

    let fifo = dir.path.join("bundle.json");
    mkfifo(&fifo);
    assert_refused(&check(&fifo), &fifo.display().to_string(), "a FIFO");
    mkfifo(&dir.path.join("gateway.json"));
    assert_refused(&check(&dir.path), "gateway.json", "a FIFO");
}

/// Skipping a `routes` that is a file would serve a configuration without its routes
/// ("OK, 0 routes served"); a directory where a file belongs is refused too.
#[test]
fn a_file_where_a_directory_belongs_and_the_reverse_are_errors() {
    let dir = ConfDir::new(&[
        (
            "integrations/i0.json",
            integration("http://127.0.0.1:9", ""),
        ),
        ("routes", "{}".to_string()),
    ]);
    assert_refused(
        &check(&dir.path),
        "routes",
        "expected a directory of routes files, found a regular file",
    );

    let dir = conf("http://127.0.0.1:9");
    std::fs::create_dir_all(dir.path.join("api.json")).unwrap();
    std::fs::create_dir_all(dir.path.join("routes/sub.json")).unwrap();
    let c = check(&dir.path);
    assert_refused(&c, "api.json", "a directory, not a regular file");
    assert_refused(&c, "routes/sub.json", "a directory, not a regular file");
}

#[test]
fn an_oversized_file_is_refused_naming_the_cap() {
    let dir = conf("http://127.0.0.1:9");
    // Sparse: no disk is spent on it.
    std::fs::File::create(dir.path.join("routes/big.json"))
        .unwrap()
        .set_len(4 * 1024 * 1024 + 1)
        .unwrap();
    let c = check(&dir.path);
    assert_refused(&c, "routes/big.json", "larger than 4 MiB");
    assert!(c.max_rss_kib < 200 * 1024, "peak RSS {} KiB", c.max_rss_kib);
}

/// `check` validates; only `serve` (and a reload) opens the access-log file. A relative
/// destination may not leave the conf dir.
#[test]
fn check_creates_no_files_and_serve_opens_the_access_log() {
    let b = Backend::start(Behaviour::Echo);
    let dir = conf(&b.url());
    std::fs::create_dir_all(dir.path.join("logs")).unwrap();
    let outside = std::env::temp_dir().join(format!("apigate-outside-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&outside);
    dir.write(&[
        (
            "stages/s.json",
            r#"{"Name":"$default","AccessLogSettings":{"DestinationArn":"logs/access.log","Format":"$context.requestId $context.status"}}"#.to_string(),
        ),
        (
            "stages/abs.json",
            format!(
                r#"{{"Name":"abs","AccessLogSettings":{{"DestinationArn":{}}}}}"#,
                serde_json::Value::String(outside.display().to_string())
            ),
        ),
    ]);
    let before = tree(&dir.path);
    let c = check(&dir.path);
    assert!(c.ok, "{}", c.stderr);
    assert_eq!(tree(&dir.path), before, "check changed the conf dir");
    assert!(!outside.exists(), "check created {}", outside.display());

    let gw = Gateway::start(&dir.path);
    assert!(
        outside.exists(),
        "serve did not open the absolute destination"
    );
    let r = gw.get("/a");
    assert_eq!(r.status, 200);
    let id = r.header("apigw-requestid").unwrap().to_string();
    let log = dir.path.join("logs/access.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(&id)
    {
        assert!(Instant::now() < deadline, "no access-log line for {id}");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(gw);
    let _ = std::fs::remove_file(&outside);

    // `..` out of the conf dir is refused, by check and serve alike, and nothing is created.
    let dir = conf(&b.url());
    dir.write(&[(
        "stages/s.json",
        r#"{"Name":"$default","AccessLogSettings":{"DestinationArn":"../../../escaped.log"}}"#
            .to_string(),
    )]);
    let before = tree(&dir.path);
    let c = check(&dir.path);
    assert_refused(
        &c,
        "stages/s.json: AccessLogSettings.DestinationArn",
        "leaves the configuration directory",
    );
    assert_eq!(tree(&dir.path), before);
    // A destination in a directory that does not exist is said at check time too.
    dir.write(&[(
        "stages/s.json",
        r#"{"Name":"$default","AccessLogSettings":{"DestinationArn":"nodir/access.log"}}"#
            .to_string(),
    )]);
    assert_refused(
        &check(&dir.path),
        "stages/s.json: AccessLogSettings.DestinationArn",
        "is not a directory",
    );
}

/// A CR LF in a static header value can never be sent (RFC 9110 5.5); at run time it was
/// silently dropped. Now it is a config error naming the file and the field; so is one in
/// a stage variable, which is substituted into header values.
#[test]
fn control_characters_in_a_static_header_value_are_config_errors() {
    let dir = ConfDir::new(&[
        (
            "integrations/i0.json",
            integration(
                "http://127.0.0.1:9",
                r#""RequestParameters":{"overwrite:header.X-A":"one\r\nX-Injected: 1","append:header.X-Ok":"tab\tis fine"},"ResponseParameters":{"200":{"overwrite:header.X-B":"nul\u0000"}}"#,
            ),
        ),
        ("routes/r0.json", route("GET /a", "i0", "")),
        (
            "stages/s.json",
            r#"{"Name":"$default","StageVariables":{"v":"x\ny"}}"#.to_string(),
        ),
    ]);
    let c = check(&dir.path);
    assert_refused(
        &c,
        "integrations/i0.json: RequestParameters.overwrite:header.X-A",
        "control character '\\r'",
    );
    assert_refused(
        &c,
        "integrations/i0.json: ResponseParameters.200.overwrite:header.X-B",
        "control character '\\0'",
    );
    // A stage variable is substituted into header values and URLs: checked at its source.
    assert_refused(
        &c,
        "stages/s.json: StageVariables.v",
        "control character '\\n'",
    );
    assert!(!c.stderr.contains("X-Ok"), "{}", c.stderr);
}

/// The issue: after one SIGHUP with a FIFO in `routes/` the gateway never reloaded again.
/// Now that reload fails at once, and the next one, with the config fixed, serves.
#[test]
fn a_fifo_in_routes_fails_one_reload_and_the_next_one_works() {
    let b = Backend::start(Behaviour::Echo);
    let dir = conf(&b.url());
    let gw = Gateway::start(&dir.path);
    assert_eq!(gw.get("/a").status, 200);

    let fifo = dir.path.join("routes/fifo.json");
    mkfifo(&fifo);
    dir.write(&[("routes/r1.json", route("GET /b", "i0", ""))]);
    gw.signal("HUP");
    gw.wait_log("reload rejected", 1);
    let out = gw.output();
    assert!(
        out.contains("routes/fifo.json: cannot read: a FIFO, not a regular file"),
        "{out}"
    );
    assert_eq!(gw.get("/a").status, 200, "the running config keeps serving");
    assert_eq!(
        gw.get("/b").status,
        404,
        "the rejected config is not served"
    );

    std::fs::remove_file(&fifo).unwrap();
    gw.signal("HUP");
    gw.wait_log("configuration reloaded", 1);
    assert_eq!(gw.get("/b").status, 200, "the fixed config serves");
    assert_eq!(gw.get("/a").status, 200);
}
