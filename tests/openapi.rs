//! OpenAPI 3.0 documents as `--conf`: the real binary checks, exports, re-imports and serves
//! them, against the project's fixtures (`tests/fixtures/openapi/`) and the developer
//! guide's documents in `../shared/realworld/openapi/` (skipped when `../shared` is absent).

mod common;

use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new("tests/fixtures/openapi").join(name)).unwrap()
}

fn run(args: &[&str], conf: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--conf")
        .arg(conf)
        .output()
        .expect("run apigate")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `check --verbose` passes; returns what it printed (warnings, ignored parts, summary).
fn check_ok(conf: &Path) -> String {
    let o = run(&["check", "--verbose"], conf);
    assert!(o.status.success(), "{}: {}", conf.display(), stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned() + &stderr(&o)
}

fn export_openapi(conf: &Path) -> Value {
    let o = run(&["export", "--format", "openapi"], conf);
    assert!(
        o.status.success(),
        "export {}: {}",
        conf.display(),
        stderr(&o)
    );
    serde_json::from_slice(&o.stdout).expect("export writes JSON")
}

/// The document at `conf` survives import -> export -> import: exporting the re-imported
/// export gives the same document, and so does the directory layout exported from it.
/// Returns the export.
fn round_trip(conf: &Path, dir: &ConfDir) -> Value {
    let first = export_openapi(conf);
    let again = dir.path.join("exported.json");
    std::fs::write(&again, first.to_string()).unwrap();
    check_ok(&again);
    assert_eq!(export_openapi(&again), first, "{}", conf.display());
    let layout = dir.path.join("layout");
    let o = run(
        &[
            "export",
            "--format",
            "dir",
            "--out",
            layout.to_str().unwrap(),
        ],
        conf,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    check_ok(&layout);
    let from_dir = export_openapi(&layout);
    // The layout holds what is served: Lambda routes are named on stderr, not written.
    let mut served = first.clone();
    let pending = stderr(&o);
    if let Some(paths) = served["paths"].as_object_mut() {
        for item in paths.values_mut() {
            if let Some(ops) = item.as_object_mut() {
                ops.retain(|_, op| {
                    let r = op["x-amazon-apigateway-integration"]["$ref"]
                        .as_str()
                        .unwrap_or("");
                    first["components"]["x-amazon-apigateway-integrations"]
                        [r.rsplit('/').next().unwrap_or("")]["type"]
                        != "aws_proxy"
                });
            }
        }
        paths.retain(|_, item| item.as_object().is_some_and(|o| !o.is_empty()));
    }
    if let Some(i) = served["components"]["x-amazon-apigateway-integrations"].as_object_mut() {
        i.retain(|_, v| v["type"] != "aws_proxy");
    }
    if let Some(c) = served.get_mut("components").and_then(Value::as_object_mut) {
        c.retain(|_, v| v.as_object().is_some_and(|o| !o.is_empty()));
        if c.is_empty() {
            served.as_object_mut().unwrap().remove("components");
        }
    }
    assert_eq!(from_dir, served, "{}: {pending}", conf.display());
    first
}

/// The fixture `name` in a temp dir, with its backend (`127.0.0.1:9000`) and issuer
/// (`127.0.0.1:9001`) pointed at the test's.
fn materialise(name: &str, backend: &str, issuer: &str) -> (ConfDir, PathBuf) {
    let text = fixture(name)
        .replace("http://127.0.0.1:9000", backend)
        .replace("http://127.0.0.1:9001", issuer);
    let dir = ConfDir::new(&[(name, text)]);
    let path = dir.path.join(name);
    (dir, path)
}

fn echo_path(r: &Response) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["path"].as_str().unwrap_or_default().to_string()
}

#[test]
fn own_fixtures_load_check_export_reimport() {
    for name in ["multi.json", "jwt.json", "lambda.json", "pets.yaml"] {
        let (dir, path) = materialise(name, "http://127.0.0.1:9", "http://127.0.0.1:9");
        check_ok(&path);
        let exported = round_trip(&path, &dir);
        assert_eq!(exported["openapi"], "3.0.1");
    }
}

#[test]
fn multi_route_default_proxy_refs_and_cors_are_served() {
    let echo = Echo::start();
    let (_dir, path) = materialise("multi.json", &echo.url(), "");
    let gw = Gateway::start(&path);
    assert_eq!(echo_path(&gw.get("/items?page=2")), "/catalog/items");
    let r = request(
        gw.port,
        "POST",
        "/items",
        &[("Content-Type", "application/json")],
        b"{}",
    );
    assert_eq!(echo_path(&r), "/catalog/items");
    let r = gw.get("/items/42");
    assert_eq!(echo_path(&r), "/catalog/items/42");
    assert_eq!(r.json()["headers"]["x-item"][0], "42", "{}", r.text());
    assert_eq!(r.header("x-served-by"), Some("catalog"));
    assert_eq!(echo_path(&gw.get("/files/a/b.txt")), "/storage/a/b.txt");
    assert!(echo_path(&gw.get("/elsewhere")).starts_with("/fallback"));
    let pre = request(
        gw.port,
        "OPTIONS",
        "/items",
        &[
            ("Origin", "https://shop.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("https://shop.example"),
        "{pre:?}"
    );
}

#[test]
fn yaml_document_is_served() {
    let echo = Echo::start();
    let (_dir, path) = materialise("pets.yaml", &echo.url(), "");
    let gw = Gateway::start(&path);
    assert_eq!(echo_path(&gw.get("/pets")), "/pets");
    assert_eq!(echo_path(&gw.get("/pets/3")), "/pets/3");
}

#[test]
fn lambda_routes_are_warned_about_and_the_rest_serves() {
    let echo = Echo::start();
    let (_dir, path) = materialise("lambda.json", &echo.url(), "");
    let warnings = check_ok(&path);
    assert!(
        warnings.contains("/paths/~1orders/post/x-amazon-apigateway-integration: Lambda integration (function create-order): its code is not a local directory"),
        "{warnings}"
    );
    let gw = Gateway::start(&path);
    assert_eq!(echo_path(&gw.get("/status")), "/status");
    let r = request(gw.port, "POST", "/orders", &[], b"{}");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "Not Found");
}

fn token(issuer: &str, scope: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let claims = serde_json::json!({"sub": "alice", "iss": issuer, "aud": "api", "exp": exp, "scope": scope});
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rsa-a".into());
    let pem = std::fs::read_to_string("tests/fixtures/jwt/rsa-a.pem").unwrap();
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    format!("Bearer {}", encode(&h, &claims, &key).unwrap())
}

#[test]
fn jwt_authorizer_with_scopes_is_enforced() {
    let jwk = std::fs::read_to_string("tests/fixtures/jwt/rsa-a.jwk.json").unwrap();
    let idp = JwksServer::start(&format!(r#"{{"keys":[{jwk}]}}"#));
    let issuer = format!("http://127.0.0.1:{}", idp.port);
    let echo = Echo::start();
    let (_dir, path) = materialise("jwt.json", &echo.url(), &issuer);
    let gw = Gateway::start(&path);
    assert_eq!(echo_path(&gw.get("/health")), "/accounts");
    assert_eq!(gw.get("/me").status, 401);
    let user = token(&issuer, "read");
    let admin = token(&issuer, "read admin");
    let r = request(gw.port, "GET", "/me", &[("Authorization", &user)], b"");
    assert_eq!(echo_path(&r), "/accounts");
    let r = request(gw.port, "GET", "/admin/x", &[("Authorization", &user)], b"");
    assert_eq!(r.status, 403, "{}", r.text());
    let r = request(
        gw.port,
        "GET",
        "/admin/x",
        &[("Authorization", &admin)],
        b"",
    );
    assert_eq!(echo_path(&r), "/accounts");
}

#[test]
fn check_reports_every_problem_with_pointer_line_and_hint() {
    let path = Path::new("tests/fixtures/openapi/broken.yaml");
    let o = run(&["check"], path);
    assert!(!o.status.success());
    let err = stderr(&o);
    for want in [
        "4 configuration error(s)",
        "/x-amazon-apigateway-corz (line 5): x-amazon-apigateway-corz is not an API Gateway extension here (fix: did you mean x-amazon-apigateway-cors?)",
        "/paths/~1a/get/x-amazon-apigateway-integration/$ref (line 11)",
        "did you mean #/components/x-amazon-apigateway-integrations/backend?",
        "/paths/~1b/get/security (line 14): two or more security requirements",
        "did you mean timeoutInMillis?",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn swagger_and_openapi_31_are_refused_with_the_reason() {
    let dir = ConfDir::new(&[
        (
            "swagger.json",
            r#"{"swagger":"2.0","info":{"title":"t","version":"1"},"paths":{}}"#.into(),
        ),
        (
            "v31.yaml",
            "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths: {}\n".into(),
        ),
    ]);
    let o = run(&["check"], &dir.path.join("swagger.json"));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/swagger: Swagger 2.0 is not imported for HTTP APIs"),
        "{}",
        stderr(&o)
    );
    std::fs::write(dir.path.join("notes.yaml"), "title: notes\nitems: [a, b]\n").unwrap();
    let o = run(&["check"], &dir.path.join("notes.yaml"));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("neither an OpenAPI document"),
        "{}",
        stderr(&o)
    );
    let o = run(&["check"], &dir.path.join("v31.yaml"));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/openapi (line 1): OpenAPI 3.1.0 is not supported"),
        "{}",
        stderr(&o)
    );
}

/// The developer guide's documents, with their backends pointed at a local echo.
#[test]
fn realworld_documents_load_round_trip_and_serve() {
    let root = Path::new("../shared/realworld/openapi");
    if !root.is_dir() {
        eprintln!("skipped: {} is absent", root.display());
        return;
    }
    let echo = Echo::start();
    let mut names: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    assert!(!names.is_empty());
    for src in names {
        let text = std::fs::read_to_string(&src).unwrap();
        let text = text.replace(
            "http://petstore.execute-api.us-west-1.amazonaws.com",
            &echo.url(),
        );
        let name = src.file_name().unwrap().to_str().unwrap();
        let dir = ConfDir::new(&[(name, text)]);
        let path = dir.path.join(name);
        check_ok(&path);
        round_trip(&path, &dir);
        let gw = Gateway::start(&path);
        match name {
            "devguide-petstore-http-proxy.json" => {
                assert_eq!(echo_path(&gw.get("/pets?type=dog")), "/petstore/pets");
                assert_eq!(echo_path(&gw.get("/pets/7")), "/petstore/pets/7");
            }
            "devguide-reusable-integrations.json" => {
                // Every route is a Lambda function: warned about, not served.
                assert_eq!(gw.get("/pets").status, 404);
            }
            other => eprintln!("{other}: loaded and served, no requests known for it"),
        }
    }
}

#[test]
fn bundled_openapi_example_serves_through_echo() {
    let echo = Echo::start();
    let text = std::fs::read_to_string("conf/openapi-example/openapi.yaml")
        .unwrap()
        .replace("http://127.0.0.1:9000", &echo.url());
    let dir = ConfDir::new(&[("openapi.yaml", text)]);
    let path = dir.path.join("openapi.yaml");
    check_ok(&path);
    round_trip(&path, &dir);
    let gw = Gateway::start(&path);
    let r = gw.get("/users/42");
    assert_eq!(echo_path(&r), "/users-service/users/42");
    assert_eq!(r.json()["headers"]["x-user-id"][0], "42");
    assert_eq!(echo_path(&gw.get("/users")), "/users-service/users");
    assert_eq!(
        echo_path(&gw.get("/static/css/site.css")),
        "/assets/css/site.css"
    );
    assert!(echo_path(&gw.get("/anything")).starts_with("/fallback"));
}

/// Whether the node at `pointer` in `doc`, one above it or one inside it is a CloudFormation
/// intrinsic (`{"Fn::Sub": ..}`, `{"Ref": ..}`), or the pointer names one: the template reader
/// resolves those before the body is lowered.
fn under_intrinsic(doc: &Value, pointer: &str) -> bool {
    let is_intrinsic = |v: &Value| {
        v.as_object()
            .is_some_and(|o| o.keys().any(|k| k == "Ref" || k.starts_with("Fn::")))
    };
    let mut at = doc;
    if is_intrinsic(at) {
        return true;
    }
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        if token == "Ref" || token.starts_with("Fn::") {
            return true;
        }
        let next = match at {
            Value::Object(o) => o.get(&token),
            Value::Array(a) => token.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        let Some(next) = next else { return false };
        at = next;
        if is_intrinsic(at) {
            return true;
        }
    }
    // An error about a list or object whose items are intrinsics (`audience: [{"Ref": ..}]`).
    fn holds_intrinsic(v: &Value) -> bool {
        match v {
            Value::Object(o) => o
                .iter()
                .any(|(k, v)| k == "Ref" || k.starts_with("Fn::") || holds_intrinsic(v)),
            Value::Array(a) => a.iter().any(holds_intrinsic),
            _ => false,
        }
    }
    holds_intrinsic(at)
}

/// The OpenAPI bodies SAM generated for its own tests' HTTP APIs
/// (`sam-translator/output/*.json`, `AWS::ApiGatewayV2::Api` `Body`), lowered as they are:
/// every error is at an intrinsic, which the template reader resolves first, or an
/// `https://` backend (no TLS client yet); anything else would be a real document this
/// reader refuses.
#[test]
fn sam_generated_bodies_lower_without_errors_but_at_intrinsics() {
    let root = Path::new("../shared/realworld/sam-translator/output");
    if !root.is_dir() {
        eprintln!("skipped: {} is absent", root.display());
        return;
    }
    let mut bodies = 0;
    let mut names: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    for file in names
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let template: Value =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let Some(resources) = template["Resources"].as_object() else {
            continue;
        };
        for (id, r) in resources {
            if r["Type"] != "AWS::ApiGatewayV2::Api" || r["Properties"]["Body"].is_null() {
                continue;
            }
            bodies += 1;
            let body = &r["Properties"]["Body"];
            let name = format!("{}#{id}", file.display());
            if !apigate::config::openapi::is_openapi(body) {
                assert!(under_intrinsic(body, ""), "{name}: not OpenAPI");
                continue;
            }
            let mut config = apigate::config::Config::default();
            apigate::config::openapi::lower(body, &name, "", &mut config);
            let mut errors = config.errors.clone();
            if errors.is_empty() {
                if let Err(e) = apigate::table::Table::compile(&config, None) {
                    errors = e.0;
                }
            }
            for e in errors {
                let pointer = match e.file.rsplit_once('#') {
                    Some((_, p)) if p.starts_with('/') => p.to_string(),
                    _ => e.field.clone(),
                };
                let https = e
                    .problem
                    .contains("https:// integrations are not supported");
                assert!(https || under_intrinsic(body, &pointer), "{name}: {e}");
            }
        }
    }
    assert!(bodies > 40, "only {bodies} bodies found");
}

#[test]
fn sighup_rereads_the_document_and_a_broken_edit_keeps_the_old_one() {
    let echo = Echo::start();
    let (dir, path) = materialise("pets.yaml", &echo.url(), "");
    let gw = Gateway::start(&path);
    assert_eq!(gw.get("/owners").status, 404);
    let added = std::fs::read_to_string(&path).unwrap().replace(
        "components:",
        &format!("  /owners:\n    get:\n      x-amazon-apigateway-integration:\n        type: http_proxy\n        uri: {}/owners\ncomponents:", echo.url()),
    );
    std::fs::write(&path, &added).unwrap();
    gw.signal("HUP");
    gw.wait_log("configuration reloaded", 1);
    assert_eq!(echo_path(&gw.get("/owners")), "/owners");
    std::fs::write(&path, added.replace("http_proxy", "http_prxy")).unwrap();
    gw.signal("HUP");
    gw.wait_log("reload rejected", 1);
    assert!(
        gw.output()
            .contains("\"http_prxy\" is not an HTTP API integration type"),
        "{}",
        gw.output()
    );
    assert_eq!(echo_path(&gw.get("/owners")), "/owners");
    drop(dir);
}

#[test]
fn export_refuses_what_it_cannot_write() {
    let dir = ConfDir::new(&[("x", "{}".into())]);
    let path = Path::new("tests/fixtures/openapi/multi.json");
    let o = run(&["export", "--format", "dir"], path);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--format dir needs --out DIR"),
        "{}",
        stderr(&o)
    );
    let o = run(
        &[
            "export",
            "--format",
            "dir",
            "--out",
            dir.path.to_str().unwrap(),
        ],
        path,
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("exists and is not empty"),
        "{}",
        stderr(&o)
    );
    let o = run(&["export"], Path::new("tests/fixtures/openapi/broken.yaml"));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("4 configuration error(s)"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty());
}
