//! SAM and CloudFormation templates (GATEWAY.md 10): the public templates under
//! `../shared/realworld/` load or are refused as SAM refuses them, and this project's own
//! fixtures (`tests/fixtures/cfn/`) are served by the real gateway to real backends.

mod common;

use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// `../shared/realworld/<rel>`, or `None` (with a message) when `../shared` is absent.
fn realworld(rel: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/realworld")
        .join(rel);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is absent", dir.display());
        None
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cfn")
        .join(name)
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    out
}

struct Checked {
    ok: bool,
    /// stdout (warnings, the summary) then stderr (errors).
    out: String,
}

fn check(conf: &Path, args: &[&str]) -> Checked {
    let out = Command::new(BIN)
        .args(["check", "--conf"])
        .arg(conf)
        .args(args)
        .output()
        .expect("run apigate check");
    Checked {
        ok: out.status.success(),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Names SAM's own test harness supplies to these templates, which read them without
/// declaring them (CloudFormation would refuse them as they stand).
fn supplied(name: &str) -> &'static [&'static str] {
    match name {
        "api_http_with_default_iam_authorizer.yaml" => &[
            "--param=StageName=prod",
            "--param=UserPoolClient=client",
            "--param=UserPoolClientApp=app",
            "--param=UserPool=pool",
        ],
        "http_api_existing_openapi.yaml" | "http_api_existing_openapi_conditions.yaml" => &[
            "--param=DifferentFunction.Arn=arn:aws:lambda:us-east-1:123456789012:function:Other",
        ],
        _ => &[],
    }
}

#[test]
fn every_sam_translator_input_loads() {
    let Some(dir) = realworld("sam-translator/input") else {
        return;
    };
    let mut failed = Vec::new();
    let all = files(&dir, "yaml");
    assert!(
        all.len() >= 40,
        "expected SAM's inputs in {}",
        dir.display()
    );
    for f in &all {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let c = check(f, supplied(&name));
        if !c.ok {
            failed.push(format!("{name}:\n{}", c.out));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} refused:\n{}",
        failed.len(),
        all.len(),
        failed.join("\n")
    );
}

/// The CloudFormation SAM made of each input (`AWS::ApiGatewayV2::*` with OpenAPI bodies)
/// loads too, and every template exports to a document that re-imports.
#[test]
fn the_cloudformation_sam_made_loads_and_every_template_round_trips() {
    let Some(dir) = realworld("sam-translator/output") else {
        return;
    };
    let mut failed = Vec::new();
    let scratch = ConfDir::new(&[]);
    for f in files(&dir, "json") {
        let name = f
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".json", ".yaml");
        let c = check(&f, supplied(&name));
        if !c.ok {
            failed.push(format!("{name}:\n{}", c.out));
            continue;
        }
        let o = Command::new(BIN)
            .args(["export", "--format", "openapi", "--conf"])
            .arg(&f)
            .args(supplied(&name))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let again = scratch.path.join("exported.json");
        std::fs::write(&again, &o.stdout).unwrap();
        let c = check(&again, &[]);
        if !c.ok {
            failed.push(format!("{name} exported and re-imported:\n{}", c.out));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn what_cannot_be_emulated_is_a_warning_naming_feature_and_pointer() {
    let Some(dir) = realworld("sam-translator/input") else {
        return;
    };
    let c = check(&dir.join("http_api_lambda_auth_full.yaml"), &[]);
    assert!(c.ok, "{}", c.out);
    assert!(
        c.out.contains(
            "Lambda integration (function HttpApiFunction): its code is not a local directory"
        ),
        "{}",
        c.out
    );
    assert!(
        c.out.contains("/Resources/MyApi/Properties/Auth/Authorizers/LambdaAuth (line 42): AuthorizerUri: Lambda authorizer MyApi-LambdaAuth: function \"MyAuthFn\" cannot run here"),
        "{}",
        c.out
    );
    let c = check(&dir.join("http_api_global_iam_auth_enabled.yaml"), &[]);
    assert!(c.ok, "{}", c.out);
    assert!(
        c.out.contains("IAM authorization is not emulated"),
        "{}",
        c.out
    );
    let c = check(
        &dir.join("http_api_with_custom_domain_route53_multiple.yaml"),
        &[],
    );
    assert!(c.ok, "{}", c.out);
    assert!(c.out.contains("/Properties/Domain (line "), "{}", c.out);
    assert!(c.out.contains("Route 53"), "{}", c.out);
}

/// SAM's message (`sam-translator/error/expected/*.json`) split into its sentences, one
/// per problem, without the `Resource with id [X] is invalid.` prefixes.
fn sam_problems(expected: &Path) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(expected).unwrap()).unwrap();
    let msg = v["errorMessage"].as_str().unwrap_or_default().to_string();
    let mut out = Vec::new();
    for marker in [
        "] is invalid. ",
        "Structure of the SAM template is invalid. ",
    ] {
        for part in msg.split(marker).skip(1) {
            let sentence = part.split(" Resource with id [").next().unwrap_or(part);
            if !sentence.starts_with("Event with id") {
                out.push(sentence.trim().to_string());
            }
        }
    }
    out
}

#[test]
fn every_template_sam_rejects_is_refused_with_sams_problem() {
    let Some(dir) = realworld("sam-translator/error") else {
        return;
    };
    let mut missed = Vec::new();
    let all = files(&dir, "yaml");
    for f in &all {
        let c = check(f, &[]);
        let stem = f.file_stem().unwrap().to_string_lossy().to_string();
        assert!(!c.ok, "{stem} was accepted:\n{}", c.out);
        let expected = dir.join("expected").join(format!("{stem}.json"));
        if !expected.exists() {
            continue;
        }
        let problems = sam_problems(&expected);
        // The first 40 characters of one of SAM's sentences, as SAM words it.
        if !problems
            .iter()
            .any(|p| c.out.contains(&p[..p.len().min(40)]))
        {
            missed.push(format!(
                "{stem}: SAM says {problems:?}\napigate says:\n{}",
                c.out
            ));
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

#[test]
fn every_devguide_template_loads() {
    let Some(dir) = realworld("devguide/cloudformation-templates/HTTP") else {
        return;
    };
    for f in files(&dir, "yaml") {
        // Backends whose names do not resolve here (offline) are warnings, not errors.
        let c = check(&f, &[]);
        assert!(c.ok, "{} refused:\n{}", f.display(), c.out);
    }
}

#[test]
fn errors_name_file_pointer_yaml_line_and_the_missing_name() {
    let dir = ConfDir::new(&[(
        "t.yaml",
        "AWSTemplateFormatVersion: '2010-09-09'\nParameters:\n  Url:\n    Type: String\nResources:\n  Api:\n    Type: AWS::ApiGatewayV2::Api\n    Properties:\n      Name: x\n  I:\n    Type: AWS::ApiGatewayV2::Integration\n    Properties:\n      ApiId: !Ref Api\n      IntegrationType: HTTP_PROXY\n      IntegrationUri: !Ref Url\n  R:\n    Type: AWS::ApiGatewayV2::Route\n    Properties:\n      ApiId: !Ref Api\n      RouteKey: GET /\n      Target: !Sub integrations/${Integ}\n".to_string(),
    )]);
    let c = check(&dir.path.join("t.yaml"), &[]);
    assert!(!c.ok);
    assert!(
        c.out.contains("/Resources/I/Properties/IntegrationUri/Ref (line 15): parameter \"Url\" has no value (fix: pass --param Url=VALUE or give it a Default)"),
        "{}",
        c.out
    );
    assert!(
        c.out
            .contains("/Resources/R/Properties/Target/Fn::Sub (line 21): Ref to \"Integ\""),
        "{}",
        c.out
    );
    assert!(c.out.contains("t.yaml"), "{}", c.out);
    // A JSON template's messages have lines too.
    let dir = ConfDir::new(&[(
        "t.json",
        "{\n  \"Resources\": {\n    \"Api\": {\"Type\": \"AWS::ApiGatewayV2::Api\"},\n    \"R\": {\n      \"Type\": \"AWS::ApiGatewayV2::Route\",\n      \"Properties\": {\"ApiId\": {\"Ref\": \"Api\"}, \"RouteKey\": \"GET /\", \"Targt\": \"x\"}\n    }\n  }\n}\n".to_string(),
    )]);
    let c = check(&dir.path.join("t.json"), &[]);
    assert!(c.out.contains("/Resources/R/Properties/Targt (line 6): not a property of this resource type (fix: did you mean Target?)"), "{}", c.out);
    let dir = ConfDir::new(&[(
        "t.yaml",
        "AWSTemplateFormatVersion: '2010-09-09'\nParameters:\n  Url:\n    Type: String\nResources:\n  Api:\n    Type: AWS::ApiGatewayV2::Api\n".to_string(),
    )]);
    // A misspelt parameter name on the command line is pointed out.
    let c = check(
        &dir.path.join("t.yaml"),
        &["--param", "Ur=http://127.0.0.1:1"],
    );
    assert!(c.out.contains("did you mean Url?"), "{}", c.out);
}

/// Requests through the gateway reach the backend the template names.
#[test]
fn a_sam_template_is_served() {
    let echo = Echo::start();
    let g = Gateway::start_with(
        &fixture("sam-httpapi.yaml"),
        &["--param", &format!("BackendUrl={}", echo.url())],
    );
    // StageName v1 (a parameter's Default), stage variable backend, {id} and {proxy+}.
    let r = g.get("/v1/items/42");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["path"], "/items/42");
    assert_eq!(body["headers"]["x-stage"][0], "v1");
    let r = g.get("/v1/files/a/b.txt");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["path"], "/files/a/b.txt");
    // CORS from Globals.HttpApi.
    let r = request(
        g.port,
        "OPTIONS",
        "/v1/items/1",
        &[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "GET"),
        ],
        b"",
    );
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example"),
        "{:?}",
        r.headers
    );
    // The inline DefinitionBody's route, its uri from an intrinsic.
    assert_eq!(g.get("/v1/health").json()["path"], "/status");
    // The Lambda route is read, not served: an unknown route's answer.
    assert_eq!(g.get("/v1/hello").status, 404);
    assert!(
        g.output().contains("Lambda integration (function "),
        "{}",
        g.output()
    );
}

#[test]
fn a_cloudformation_json_template_is_served_with_conditions_and_mappings() {
    let echo = Echo::start();
    let g = Gateway::start_with(
        &fixture("stack.json"),
        &["--param", &format!("BackendUrl={}", echo.url())],
    );
    let r = g.get("/orders/7/lines");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["path"], "/7/lines");
    assert_eq!(r.json()["headers"]["x-env"][0], "development");
    // DebugRoute exists only while IsDev holds.
    assert_eq!(g.get("/debug/x").json()["path"], "/x");
    assert_eq!(g.get("/elsewhere").json()["path"], "/fallback/elsewhere");
    // The IAM route is not served: it falls to $default rather than skipping IAM.
    assert_eq!(g.get("/admin").json()["path"], "/fallback/admin");
    drop(g);
    let g = Gateway::start_with(
        &fixture("stack.json"),
        &[
            "--param",
            &format!("BackendUrl={}", echo.url()),
            "--param",
            "Env=prod",
            "--param",
            "Paths=users,orders",
        ],
    );
    let r = g.get("/users/1");
    assert_eq!(r.json()["headers"]["x-env"][0], "production");
    assert_eq!(g.get("/debug/x").json()["path"], "/fallback/debug/x");
    assert_eq!(g.get("/orders/1").json()["path"], "/fallback/orders/1");
}

fn token(issuer: &str, scope: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let claims = serde_json::json!({"sub": "alice", "iss": issuer, "aud": "my-client", "exp": exp, "scope": scope});
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rsa-a".into());
    let pem = std::fs::read_to_string("tests/fixtures/jwt/rsa-a.pem").unwrap();
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    format!("Bearer {}", encode(&h, &claims, &key).unwrap())
}

#[test]
fn jwt_authorizer_with_scopes_guards_its_route() {
    let jwk = std::fs::read_to_string("tests/fixtures/jwt/rsa-a.jwk.json").unwrap();
    let idp = JwksServer::start(&format!(r#"{{"keys":[{jwk}]}}"#));
    let issuer = format!("http://127.0.0.1:{}", idp.port);
    let echo = Echo::start();
    let g = Gateway::start_with(
        &fixture("jwt.yaml"),
        &[
            "--param",
            &format!("BackendUrl={}", echo.url()),
            "--param",
            &format!("Issuer={issuer}"),
        ],
    );
    assert_eq!(g.get("/public").status, 200);
    let r = g.get("/private");
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["message"], "Unauthorized");
    let reader = token(&issuer, "orders/read");
    let r = request(
        g.port,
        "GET",
        "/private",
        &[("Authorization", &reader)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let other = token(&issuer, "orders/write");
    let r = request(g.port, "GET", "/private", &[("Authorization", &other)], b"");
    assert_eq!(r.status, 403, "{}", r.text());
}

/// SAM's DefaultAuthorizer guards the inline body's operations (with the authorizer's
/// scopes); an operation with `security: []` stays open.
#[test]
fn sam_default_authorizer_guards_the_body_routes() {
    let jwk = std::fs::read_to_string("tests/fixtures/jwt/rsa-a.jwk.json").unwrap();
    let idp = JwksServer::start(&format!(r#"{{"keys":[{jwk}]}}"#));
    let issuer = format!("http://127.0.0.1:{}", idp.port);
    let echo = Echo::start();
    let g = Gateway::start_with(
        &fixture("sam-jwt.yaml"),
        &[
            "--param",
            &format!("BackendUrl={}", echo.url()),
            "--param",
            &format!("Issuer={issuer}"),
        ],
    );
    assert_eq!(g.get("/public").json()["path"], "/public");
    assert_eq!(g.get("/orders").status, 401);
    let r = request(
        g.port,
        "GET",
        "/orders",
        &[("Authorization", &token(&issuer, "orders/read"))],
        b"",
    );
    assert_eq!(r.json()["path"], "/orders", "{}", r.text());
    let r = request(
        g.port,
        "GET",
        "/orders",
        &[("Authorization", &token(&issuer, "other"))],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());
}

/// The operations of an export that the layout serves (Lambda and IAM ones are named on
/// stderr, not written).
fn served_operations(doc: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    let integrations = &doc["components"]["x-amazon-apigateway-integrations"];
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let mut op = op.clone();
            let r = op["x-amazon-apigateway-integration"]["$ref"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let integration = integrations[r.rsplit('/').next().unwrap_or("")].clone();
            // Lambda and IAM routes are kept aside: exported, not served.
            let iam = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("sigv4").is_some()));
            if integration["type"] == "aws_proxy" || iam {
                continue;
            }
            op["x-amazon-apigateway-integration"] = integration;
            out.push((format!("{method} {path}"), op));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Each fixture is checked, exported (as the directory layout, which keeps its stages,
/// and as OpenAPI) and re-imported: the layout serves the same routes, integrations,
/// authorizers and CORS, and its own OpenAPI export is the template's.
#[test]
fn own_fixtures_check_export_and_reimport() {
    let dir = ConfDir::new(&[]);
    let params = [
        "--param",
        "BackendUrl=http://127.0.0.1:9",
        "--param",
        "Issuer=http://127.0.0.1:1",
    ];
    let run = |args: &[&str], conf: &Path, extra: &[&str]| {
        let o = Command::new(BIN)
            .args(args)
            .arg("--conf")
            .arg(conf)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?} {}: {}",
            conf.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        o.stdout
    };
    for name in ["sam-httpapi.yaml", "stack.json", "jwt.yaml", "sam-jwt.yaml"] {
        let c = check(&fixture(name), &params);
        assert!(c.ok, "{name}: {}", c.out);
        let first: serde_json::Value = serde_json::from_slice(&run(
            &["export", "--format", "openapi"],
            &fixture(name),
            &params,
        ))
        .unwrap();
        assert!(
            first["paths"].as_object().is_some_and(|p| !p.is_empty()),
            "{name}: {first}"
        );
        let layout = dir.path.join(name.replace('.', "-"));
        run(
            &[
                "export",
                "--format",
                "dir",
                "--out",
                layout.to_str().unwrap(),
            ],
            &fixture(name),
            &params,
        );
        let c = check(&layout, &[]);
        assert!(c.ok, "{name} as a layout: {}", c.out);
        let again: serde_json::Value =
            serde_json::from_slice(&run(&["export", "--format", "openapi"], &layout, &[])).unwrap();
        assert_eq!(
            served_operations(&again),
            served_operations(&first),
            "{name}"
        );
        assert_eq!(
            again["x-amazon-apigateway-cors"], first["x-amazon-apigateway-cors"],
            "{name}"
        );
        let jwt = |d: &serde_json::Value| {
            let mut schemes = d["components"]["securitySchemes"].clone();
            if let Some(m) = schemes.as_object_mut() {
                m.remove("sigv4");
                if m.is_empty() {
                    return serde_json::Value::Null;
                }
            }
            schemes
        };
        assert_eq!(jwt(&again), jwt(&first), "{name}");
    }
}

#[test]
fn parameters_files_in_both_aws_cli_forms_and_reload_keeps_parameters() {
    let echo = Echo::start();
    let dir = ConfDir::new(&[
        (
            "list.json",
            format!(
                r#"[{{"ParameterKey":"BackendUrl","ParameterValue":"{}"}}]"#,
                echo.url()
            ),
        ),
        (
            "map.json",
            format!(
                r#"{{"Parameters":{{"BackendUrl":"{}","Env":"prod"}}}}"#,
                echo.url()
            ),
        ),
    ]);
    for (file, env) in [("list.json", "development"), ("map.json", "production")] {
        let params = dir.path.join(file);
        let c = check(
            &fixture("stack.json"),
            &["--params", params.to_str().unwrap()],
        );
        assert!(c.ok, "{}", c.out);
        let g = Gateway::start_with(
            &fixture("stack.json"),
            &["--params", params.to_str().unwrap()],
        );
        assert_eq!(g.get("/orders/1").json()["headers"]["x-env"][0], env);
        if file == "map.json" {
            g.signal("HUP");
            g.wait_log("configuration reloaded", 1);
            assert_eq!(g.get("/orders/1").json()["headers"]["x-env"][0], env);
        }
    }
    // --param wins over the file.
    let g = Gateway::start_with(
        &fixture("stack.json"),
        &[
            "--params",
            dir.path.join("map.json").to_str().unwrap(),
            "--param",
            "Env=dev",
        ],
    );
    assert_eq!(
        g.get("/orders/1").json()["headers"]["x-env"][0],
        "development"
    );
}

#[test]
fn the_sam_example_runs_offline_against_the_bundled_echo_backend() {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/sam-example/template.yaml");
    let c = check(&conf, &[]);
    assert!(c.ok, "{}", c.out);
    let echo = Echo::start();
    let g = Gateway::start_with(&conf, &["--param", &format!("BackendUrl={}", echo.url())]);
    let r = g.get("/users/42");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["path"], "/users/42");
}

/// A backend whose name does not resolve (`.invalid`, RFC 6761) does not stop the API
/// from loading: `check` warns, the route answers AWS's 502, the other routes serve.
#[test]
fn an_unresolvable_backend_is_a_warning_and_a_502() {
    let echo = Echo::start();
    let dir = ConfDir::new(&[(
        "template.yaml",
        format!(
            r#"AWSTemplateFormatVersion: '2010-09-09'
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties:
      Name: dns
      ProtocolType: HTTP
  Gone:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: HTTP_PROXY
      IntegrationMethod: ANY
      IntegrationUri: http://backend.invalid/x
      PayloadFormatVersion: '1.0'
  Here:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: HTTP_PROXY
      IntegrationMethod: ANY
      IntegrationUri: {}/here
      PayloadFormatVersion: '1.0'
  GoneRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref Api
      RouteKey: GET /gone
      Target: !Sub integrations/${{Gone}}
  HereRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref Api
      RouteKey: GET /here
      Target: !Sub integrations/${{Here}}
  Stage:
    Type: AWS::ApiGatewayV2::Stage
    Properties:
      ApiId: !Ref Api
      StageName: $default
"#,
            echo.url()
        ),
    )]);
    let template = dir.path.join("template.yaml");
    let c = check(&template, &[]);
    assert!(c.ok, "{}", c.out);
    assert!(
        c.out.contains("/Resources/Gone")
            && c.out.contains(r#"cannot resolve host "backend.invalid""#)
            && c.out.contains("answer 502 until a reload resolves it"),
        "{}",
        c.out
    );
    let gw = Gateway::start(&template);
    let r = gw.get("/gone");
    assert_eq!(r.status, 502, "{}", gw.output());
    assert_eq!(r.json(), serde_json::json!({"message": "Bad Gateway"}));
    assert_eq!(gw.get("/here").status, 200);
    assert!(gw.output().contains("backend.invalid"), "{}", gw.output());
}
