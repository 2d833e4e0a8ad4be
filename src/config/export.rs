//! `apigate export`: the loaded model written back out, as `aws apigatewayv2 export-api
//! --specification OAS30 --include-extensions` would write it (`openapi`), or as the
//! directory layout (`dir`). Either reads back in (`--conf`) to the same routes,
//! integrations, authorizers and CORS; `dir` also keeps stages, their settings and
//! apigate's policies, which OpenAPI has no place for (AWS exports no stage settings).

use super::{AuthorizerConf, Config, IntegrationConf, LambdaConf, Resource, RouteConf};
use serde_json::{json, Map, Value};
use std::path::Path;

/// The formats `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Openapi,
    Dir,
}

/// Writes `config` as `format` to `out` (stdout for `openapi` without `out`).
pub fn write(config: &Config, format: Format, out: Option<&Path>) -> Result<(), String> {
    match format {
        Format::Openapi => {
            let text = pretty(&openapi(config));
            match out {
                Some(p) => std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display())),
                None => {
                    use std::io::Write;
                    // A closed pipe (`| head`) is an error to report, not a panic.
                    writeln!(std::io::stdout(), "{text}").map_err(|e| format!("stdout: {e}"))
                }
            }
        }
        Format::Dir => {
            let out = out.ok_or("--format dir needs --out DIR")?;
            write_dir(config, out)
        }
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// The OpenAPI 3.0 document of `config`, with API Gateway's extensions. Shared
/// integrations go under `components` and are `$ref`'d, so routes that share one in the
/// model share one after a re-import too.
pub fn openapi(config: &Config) -> Value {
    let mut paths = Map::new();
    let routes = config.routes.iter().chain(&config.pending.routes);
    for r in routes {
        let (path, method) = match r.conf.route_key.split_once(' ') {
            Some(("ANY", p)) => (p, "x-amazon-apigateway-any-method".to_string()),
            Some((m, p)) => (p, m.to_lowercase()),
            None => ("$default", "x-amazon-apigateway-any-method".to_string()),
        };
        let op = operation(r);
        let item = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        if let Some(item) = item.as_object_mut() {
            item.insert(method, op);
        }
    }
    let mut integrations = Map::new();
    for i in config
        .integrations
        .iter()
        .chain(&config.pending.integrations)
    {
        integrations.insert(i.id.clone(), http_integration(&i.conf));
    }
    for l in &config.pending.lambdas {
        integrations.insert(l.id.clone(), lambda_integration(&l.conf));
    }
    let mut schemes = Map::new();
    for a in config.authorizers.iter().chain(&config.pending.authorizers) {
        schemes.insert(a.id.clone(), scheme(a));
    }
    let iam = config
        .pending
        .routes
        .iter()
        .any(|r| r.conf.authorization_type.as_deref() == Some("AWS_IAM"));
    if iam {
        schemes.insert(
            SIGV4.into(),
            json!({"type": "apiKey", "name": "Authorization", "in": "header", "x-amazon-apigateway-authtype": "awsSigv4"}),
        );
    }
    let mut doc = json!({
        "openapi": "3.0.1",
        "info": {"title": config.api.name.as_deref().unwrap_or("apigate"), "version": "1.0"},
        "paths": paths,
        "x-amazon-apigateway-importexport-version": "1.0",
    });
    let mut components = Map::new();
    if !integrations.is_empty() {
        components.insert(
            "x-amazon-apigateway-integrations".into(),
            Value::Object(integrations),
        );
    }
    if !schemes.is_empty() {
        components.insert("securitySchemes".into(), Value::Object(schemes));
    }
    if !components.is_empty() {
        doc["components"] = Value::Object(components);
    }
    if let Some(c) = &config.api.cors_configuration {
        let mut cors = Map::new();
        for (k, v) in [
            ("allowOrigins", &c.allow_origins),
            ("allowMethods", &c.allow_methods),
            ("allowHeaders", &c.allow_headers),
            ("exposeHeaders", &c.expose_headers),
        ] {
            if !v.is_empty() {
                cors.insert(k.into(), json!(v));
            }
        }
        if let Some(m) = c.max_age {
            cors.insert("maxAge".into(), json!(m));
        }
        if c.allow_credentials {
            cors.insert("allowCredentials".into(), json!(true));
        }
        doc["x-amazon-apigateway-cors"] = Value::Object(cors);
    }
    doc
}

/// The scheme name IAM routes require.
const SIGV4: &str = "sigv4";

fn operation(r: &Resource<RouteConf>) -> Value {
    let c = &r.conf;
    let mut op = Map::new();
    if let Some(name) = &c.operation_name {
        op.insert("operationId".into(), json!(name));
    }
    op.insert(
        "responses".into(),
        json!({"default": {"description": format!("Default response for {}", c.route_key)}}),
    );
    if let Some(id) = c
        .target
        .as_deref()
        .and_then(|t| t.strip_prefix("integrations/"))
    {
        op.insert(
            "x-amazon-apigateway-integration".into(),
            json!({"$ref": format!("#/components/x-amazon-apigateway-integrations/{}", super::openapi::pointer([id]).trim_start_matches('/'))}),
        );
    }
    match (c.authorization_type.as_deref(), c.authorizer_id.as_deref()) {
        (Some("JWT" | "CUSTOM"), Some(a)) => {
            op.insert("security".into(), json!([{ a: c.authorization_scopes }]));
        }
        (Some("AWS_IAM"), _) => {
            op.insert("security".into(), json!([{ SIGV4: [] }]));
        }
        _ => {}
    }
    Value::Object(op)
}

fn http_integration(c: &IntegrationConf) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), json!(c.integration_type.to_lowercase()));
    o.insert("uri".into(), json!(c.integration_uri));
    if let Some(m) = &c.integration_method {
        o.insert("httpMethod".into(), json!(m));
    }
    o.insert(
        "payloadFormatVersion".into(),
        json!(c.payload_format_version.as_deref().unwrap_or("1.0")),
    );
    o.insert(
        "connectionType".into(),
        json!(c.connection_type.as_deref().unwrap_or("INTERNET")),
    );
    if let Some(t) = c.timeout_in_millis {
        o.insert("timeoutInMillis".into(), json!(t));
    }
    if !c.request_parameters.is_empty() {
        o.insert("requestParameters".into(), json!(c.request_parameters));
    }
    if !c.response_parameters.is_empty() {
        o.insert("responseParameters".into(), json!(c.response_parameters));
    }
    if let Some(d) = &c.description {
        o.insert("description".into(), json!(d));
    }
    // AWS exports only the name to verify; skipping verification is apigate's own and
    // survives the directory layout only.
    if let Some(name) = c
        .tls_config
        .as_ref()
        .and_then(|t| t.server_name_to_verify.as_ref())
    {
        o.insert("tlsConfig".into(), json!({ "serverNameToVerify": name }));
    }
    Value::Object(o)
}

fn lambda_integration(l: &LambdaConf) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), json!("aws_proxy"));
    o.insert("httpMethod".into(), json!("POST"));
    o.insert("uri".into(), json!(l.uri));
    o.insert(
        "payloadFormatVersion".into(),
        json!(l.payload_format_version),
    );
    o.insert("connectionType".into(), json!("INTERNET"));
    if let Some(t) = l.timeout_in_millis {
        o.insert("timeoutInMillis".into(), json!(t));
    }
    Value::Object(o)
}

fn scheme(a: &Resource<AuthorizerConf>) -> Value {
    let c = &a.conf;
    let mut auth = Map::new();
    auth.insert("type".into(), json!(c.authorizer_type.to_lowercase()));
    auth.insert("identitySource".into(), json!(c.identity_source.join(",")));
    if let Some(j) = &c.jwt_configuration {
        let mut jwt = Map::new();
        if let Some(i) = &j.issuer {
            jwt.insert("issuer".into(), json!(i));
        }
        jwt.insert("audience".into(), json!(j.audience));
        auth.insert("jwtConfiguration".into(), Value::Object(jwt));
    }
    let kind = if c.authorizer_type == "JWT" {
        "oauth2"
    } else {
        "apiKey"
    };
    let mut s = json!({"type": kind, "x-amazon-apigateway-authorizer": auth});
    for (ext, v) in [
        ("x-apigate-jwks", c.jwks.clone()),
        (
            "x-apigate-jwks-file",
            c.jwks_file.clone().map(Value::String),
        ),
        ("x-apigate-jwks-uri", c.jwks_uri.clone().map(Value::String)),
    ] {
        if let Some(v) = v {
            s[ext] = v;
        }
    }
    if kind == "apiKey" {
        s["name"] = json!("Authorization");
        s["in"] = json!("header");
    } else {
        s["flows"] = json!({});
    }
    s
}

/// Writes the layout into `out`, which must not exist or be empty. What the layout cannot
/// hold yet (Lambda integrations and authorizers, IAM routes) is named on stderr.
fn write_dir(config: &Config, out: &Path) -> Result<(), String> {
    let err = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    if std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
        return Err(format!(
            "{}: exists and is not empty; choose a new directory",
            out.display()
        ));
    }
    let mut files: Vec<(String, Value)> = vec![
        ("gateway.json".into(), to_value(&config.gateway)),
        ("api.json".into(), to_value(&config.api)),
    ];
    for s in &config.stages {
        files.push((format!("stages/{}.json", s.id), to_value(&s.conf)));
    }
    for r in &config.routes {
        files.push((format!("routes/{}.json", r.id), to_value(&r.conf)));
    }
    for i in &config.integrations {
        files.push((format!("integrations/{}.json", i.id), to_value(&i.conf)));
    }
    for a in &config.authorizers {
        files.push((format!("authorizers/{}.json", a.id), to_value(&a.conf)));
    }
    for r in &config.pending.routes {
        eprintln!(
            "not written (not served yet): {} ({})",
            r.conf.route_key, r.file
        );
    }
    if config.has_stages_dir {
        let dir = out.join("stages");
        std::fs::create_dir_all(&dir).map_err(|e| err(&dir, e))?;
    }
    for (rel, v) in files {
        let p = out.join(&rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| err(parent, e))?;
        }
        std::fs::write(&p, pretty(&v) + "\n").map_err(|e| err(&p, e))?;
    }
    Ok(())
}

/// A model struct as its file: absent fields (`null`) left out, as a person would write
/// it. Empty lists stay: `"Routes": []` means something else than no `Routes`.
fn to_value<T: serde::Serialize>(t: &T) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    prune(&mut v);
    v
}

fn prune(v: &mut Value) {
    if let Value::Object(o) = v {
        o.retain(|_, x| {
            prune(x);
            !x.is_null()
        });
    }
}
