//! OpenAPI 3.0 as API Gateway's `import-api` reads it for HTTP APIs and `export-api` writes
//! it, lowered into the one model the directory layout yields (`Config`), so nothing after
//! `config/` knows where a route came from.
//!
//! AWS's semantics: its extensions (`x-amazon-apigateway-integration`, `-integrations` with
//! `$ref`, `-any-method`, `-cors`, `-authorizer`, `-importexport-version`) are read; what its
//! import ignores (schemas, parameters, REST-only extensions, `servers`' basePath, whose
//! default mode is `ignore`) is ignored and listed in `Config::ignored`; what it refuses
//! (Swagger 2.0, OpenAPI 3.1, two security requirements on one operation, ...) is an error
//! naming the JSON pointer (RFC 6901). What apigate cannot serve on one machine (Lambda,
//! IAM) is a warning and stays in `Config::pending`.

mod auth;
mod integration;
mod names;
#[cfg(test)]
mod tests;

use super::{closest, Config, ConfigError, CorsConf, Resource, RouteConf};
use auth::{Auth, Schemes};
use integration::{Lowered, Target};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};

pub use names::pointer;

/// Whether `doc` claims to be OpenAPI or Swagger (refused later, with AWS's reason).
pub fn is_openapi(doc: &Value) -> bool {
    doc.get("openapi").is_some() || doc.get("swagger").is_some()
}

/// Lowers the OpenAPI document `doc` into `config`. `file` names the document in messages
/// (`api.json`, `template.yaml`); `base` is the JSON pointer of `doc` inside it (empty for
/// a whole file, `/Resources/Api/Properties/DefinitionBody` for a template's inline body).
/// Errors, warnings and ignored parts go to `config`'s lists; resources are appended to
/// it, so several documents may share one `Config`.
pub fn lower(doc: &Value, file: &str, base: &str, config: &mut Config) {
    let mut cx = Cx { file, base, config };
    let Some(root) = doc.as_object() else {
        cx.error("", "an OpenAPI document must be an object", "");
        return;
    };
    if !cx.version(root) {
        return;
    }
    cx.top_level(root);
    let components = root.get("components").and_then(Value::as_object);
    let schemes = auth::read_schemes(&mut cx, components);
    let shared = integration::read_components(&mut cx, components);
    let default_security = root.get("security");
    let Some(paths) = root.get("paths") else {
        cx.error(
            "/paths",
            "missing",
            "add \"paths\": {\"/\": {\"get\": {...}}}",
        );
        return;
    };
    let Some(paths) = paths.as_object() else {
        cx.error(
            "/paths",
            "must be an object",
            "map each path to its operations",
        );
        return;
    };
    let mut ids = HashSet::new();
    for (path, item) in paths {
        cx.path_item(path, item, &schemes, &shared, default_security, &mut ids);
    }
}

/// Adds the YAML line to each message about the document `file` (`/paths/~1a/get (line 12)`),
/// so the user finds the place in the text they edit.
pub fn add_lines(config: &mut Config, file: &str, yaml: &crate::config::yaml::Yaml) {
    let lists = [
        &mut config.errors,
        &mut config.warnings,
        &mut config.ignored,
    ];
    for list in lists {
        for e in list
            .iter_mut()
            .filter(|e| e.file == file && e.field.starts_with('/'))
        {
            if let Some(line) = yaml.line(&e.field) {
                e.field = format!("{} (line {line})", e.field);
            }
        }
    }
}

/// One lowering: where messages point, and the config being filled.
pub(crate) struct Cx<'a> {
    file: &'a str,
    base: &'a str,
    config: &'a mut Config,
}

/// The HTTP methods an OpenAPI path item may hold (3.0.3 section 4.7.9), and AWS's `ANY`.
const METHODS: [(&str, &str); 9] = [
    ("get", "GET"),
    ("put", "PUT"),
    ("post", "POST"),
    ("delete", "DELETE"),
    ("options", "OPTIONS"),
    ("head", "HEAD"),
    ("patch", "PATCH"),
    ("trace", "TRACE"),
    ("x-amazon-apigateway-any-method", "ANY"),
];

/// Extensions of API Gateway that HTTP APIs read, by where they may stand.
const TOP_EXTENSIONS: [&str; 3] = [
    "x-amazon-apigateway-cors",
    "x-amazon-apigateway-importexport-version",
    "x-amazon-apigateway-endpoint-configuration",
];
const OPERATION_EXTENSIONS: [&str; 1] = ["x-amazon-apigateway-integration"];

/// REST-API-only extensions: AWS's HTTP API import ignores them (with a warning).
const REST_ONLY: [&str; 10] = [
    "x-amazon-apigateway-api-key-source",
    "x-amazon-apigateway-binary-media-types",
    "x-amazon-apigateway-gateway-responses",
    "x-amazon-apigateway-minimum-compression-size",
    "x-amazon-apigateway-policy",
    "x-amazon-apigateway-request-validators",
    "x-amazon-apigateway-request-validator",
    "x-amazon-apigateway-documentation",
    "x-amazon-apigateway-auth",
    "x-amazon-apigateway-tag-value",
];

impl Cx<'_> {
    fn at(&self, ptr: &str) -> String {
        format!("{}{ptr}", self.base)
    }

    pub(crate) fn error(&mut self, ptr: &str, problem: impl Into<String>, fix: impl Into<String>) {
        let at = self.at(ptr);
        self.config
            .errors
            .push(ConfigError::new(self.file, at, problem, fix));
    }

    pub(crate) fn warn(&mut self, ptr: &str, problem: impl Into<String>, fix: impl Into<String>) {
        let at = self.at(ptr);
        self.config
            .warnings
            .push(ConfigError::new(self.file, at, problem, fix));
    }

    pub(crate) fn ignore(&mut self, ptr: &str, what: impl Into<String>) {
        let at = self.at(ptr);
        self.config
            .ignored
            .push(ConfigError::new(self.file, at, what, ""));
    }

    /// `file#pointer`: how a resource from this document is named in the table's messages.
    fn resource_file(&self, ptr: &str) -> String {
        format!("{}#{}", self.file, self.at(ptr))
    }

    /// Refuses what AWS refuses: Swagger 2.0 and any OpenAPI but 3.0.x.
    fn version(&mut self, root: &Map<String, Value>) -> bool {
        if let Some(v) = root.get("swagger") {
            self.error(
                "/swagger",
                format!("Swagger {} is not imported for HTTP APIs", text(v)),
                "convert it to OpenAPI 3.0 (AWS imports HTTP APIs from OpenAPI 3.0 only)",
            );
            return false;
        }
        let v = root.get("openapi").map(text).unwrap_or_default();
        if v.starts_with("3.0") {
            return true;
        }
        let problem = if v.starts_with("3.1") {
            format!("OpenAPI {v} is not supported: API Gateway imports OpenAPI 3.0")
        } else {
            format!("{v:?} is not an OpenAPI version API Gateway imports")
        };
        self.error("/openapi", problem, "declare \"openapi\": \"3.0.1\"");
        false
    }

    /// `info.title`, CORS and the top-level extensions.
    fn top_level(&mut self, root: &Map<String, Value>) {
        if let Some(title) = root
            .get("info")
            .and_then(|i| i.get("title"))
            .and_then(Value::as_str)
        {
            self.config
                .api
                .name
                .get_or_insert_with(|| title.to_string());
        }
        for (key, v) in root {
            match key.as_str() {
                "openapi" | "info" | "paths" | "components" | "security" => {}
                "x-amazon-apigateway-cors" => self.cors(v),
                "x-amazon-apigateway-importexport-version" => {
                    if text(v) != "1.0" {
                        self.error(
                            "/x-amazon-apigateway-importexport-version",
                            format!("{:?} is not a version API Gateway knows", text(v)),
                            "use \"1.0\"",
                        );
                    }
                }
                "servers" => self.ignore(
                    "/servers",
                    "servers (and a basePath variable): AWS's import ignores the base path by default",
                ),
                "tags" | "externalDocs" => self.ignore(&format!("/{key}"), format!("{key}: documentation")),
                k if k.starts_with("x-") => {
                    self.extension(&format!("/{}", names::escape(k)), k, &TOP_EXTENSIONS)
                }
                // OpenAPI 3.0.3 section 4.7.1: no other fields (only `x-` extensions).
                k => {
                    let fix = closest(k, OPENAPI_FIELDS)
                        .map(|s| format!("did you mean {s}?"))
                        .unwrap_or_else(|| format!("the fields are {}", OPENAPI_FIELDS.join(", ")));
                    self.error(&format!("/{}", names::escape(k)), format!("{k:?} is not an OpenAPI field"), fix);
                }
            }
        }
    }

    /// An `x-` key at a place where `known` are API Gateway's extensions: REST-only ones and
    /// other vendors' are ignored, a misspelt API Gateway one is an error with a hint.
    fn extension(&mut self, ptr: &str, key: &str, known: &[&str]) {
        if known.contains(&key) {
            self.ignore(ptr, format!("{key}: not used by a local gateway"));
        } else if REST_ONLY.contains(&key) {
            self.ignore(
                ptr,
                format!("{key}: a REST API extension, ignored for HTTP APIs"),
            );
        } else if key.starts_with("x-amazon-apigateway") {
            let all = known.iter().chain(REST_ONLY.iter()).copied();
            let fix = match closest(key, all) {
                Some(s) => format!("did you mean {s}?"),
                None => format!("use one of {}", known.join(", ")),
            };
            self.error(
                ptr,
                format!("{key} is not an API Gateway extension here"),
                fix,
            );
        } else {
            self.ignore(ptr, format!("{key}: not read by API Gateway"));
        }
    }

    fn cors(&mut self, v: &Value) {
        let ptr = "/x-amazon-apigateway-cors";
        let Some(o) = v.as_object() else {
            self.error(
                ptr,
                "must be an object",
                "write {\"allowOrigins\": [\"*\"], ...}",
            );
            return;
        };
        let mut cors = CorsConf::default();
        for (key, v) in o {
            let at = format!("{ptr}/{key}");
            let list = |cx: &mut Cx, v: &Value| -> Vec<String> {
                match v.as_array() {
                    Some(a) if a.iter().all(Value::is_string) => a.iter().map(text).collect(),
                    _ => {
                        cx.error(&at, "must be a list of strings", "write [\"...\"]");
                        Vec::new()
                    }
                }
            };
            match key.as_str() {
                "allowOrigins" => cors.allow_origins = list(self, v),
                "allowMethods" => cors.allow_methods = list(self, v),
                "allowHeaders" => cors.allow_headers = list(self, v),
                "exposeHeaders" => cors.expose_headers = list(self, v),
                "maxAge" => match v.as_u64() {
                    Some(n) => cors.max_age = Some(n),
                    None => self.error(&at, "must be a whole number of seconds", "e.g. 300"),
                },
                "allowCredentials" => match v.as_bool() {
                    Some(b) => cors.allow_credentials = b,
                    None => self.error(&at, "must be true or false", ""),
                },
                other => {
                    let fix = closest(other, CORS_FIELDS)
                        .map(|s| format!("did you mean {s}?"))
                        .unwrap_or_else(|| format!("use one of {}", CORS_FIELDS.join(", ")));
                    self.error(&at, "unknown CORS field", fix);
                }
            }
        }
        self.config.api.cors_configuration = Some(cors);
    }

    /// One entry of `paths`: each operation becomes a route.
    fn path_item(
        &mut self,
        path: &str,
        item: &Value,
        schemes: &Schemes,
        shared: &BTreeMap<String, Target>,
        default_security: Option<&Value>,
        ids: &mut HashSet<String>,
    ) {
        let item_ptr = format!("/paths/{}", names::escape(path));
        // SAM writes the default route as `/$default` too; both are AWS's `$default`.
        let is_default = path == "$default" || path == "/$default";
        if !is_default && !path.starts_with('/') {
            self.error(
                &item_ptr,
                format!("path {path:?} does not start with '/'"),
                "write it as \"/pets\" (or \"$default\" for the default route)",
            );
            return;
        }
        let Some(ops) = item.as_object() else {
            self.error(&item_ptr, "a path item must be an object", "");
            return;
        };
        for (key, op) in ops {
            let ptr = format!("{item_ptr}/{}", names::escape(key));
            let Some(method) = METHODS.iter().find(|(k, _)| k == key).map(|(_, m)| *m) else {
                match key.as_str() {
                    "summary" | "description" | "parameters" | "servers" => {}
                    "$ref" => self.error(
                        &ptr,
                        "a path item $ref is not supported",
                        "write the operations in place",
                    ),
                    k if k.starts_with("x-") => {
                        self.extension(&ptr, k, &["x-amazon-apigateway-any-method"])
                    }
                    k => {
                        let fix = closest(k, METHODS.iter().map(|(k, _)| *k))
                            .map(|s| format!("did you mean {s}?"))
                            .unwrap_or_else(|| {
                                "use get, post, ... or x-amazon-apigateway-any-method".into()
                            });
                        self.error(&ptr, format!("{k:?} is not an HTTP method"), fix);
                    }
                }
                continue;
            };
            let key = if is_default {
                if method != "ANY" {
                    self.error(
                        &ptr,
                        "the $default route takes any method",
                        "use x-amazon-apigateway-any-method under \"$default\"",
                    );
                    continue;
                }
                "$default".to_string()
            } else {
                format!("{method} {path}")
            };
            self.operation(
                &ptr,
                key,
                method,
                path,
                op,
                schemes,
                shared,
                default_security,
                ids,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn operation(
        &mut self,
        ptr: &str,
        route_key: String,
        method: &str,
        path: &str,
        op: &Value,
        schemes: &Schemes,
        shared: &BTreeMap<String, Target>,
        default_security: Option<&Value>,
        ids: &mut HashSet<String>,
    ) {
        let Some(op) = op.as_object() else {
            self.error(ptr, "an operation must be an object", "");
            return;
        };
        let operation_id = op.get("operationId").and_then(Value::as_str);
        let id = names::route_id(operation_id, method, path, ids);
        for key in op.keys() {
            if key.starts_with("x-") && !OPERATION_EXTENSIONS.contains(&key.as_str()) {
                self.extension(
                    &format!("{ptr}/{}", names::escape(key)),
                    key,
                    &OPERATION_EXTENSIONS,
                );
            }
        }
        let target = match op.get("x-amazon-apigateway-integration") {
            Some(v) => integration::route_target(
                self,
                &format!("{ptr}/x-amazon-apigateway-integration"),
                &id,
                v,
                shared,
            ),
            None => {
                self.warn(
                    ptr,
                    "route without x-amazon-apigateway-integration: not served",
                    "add an x-amazon-apigateway-integration (AWS creates the route without a target)",
                );
                Target::None
            }
        };
        let security = op.get("security").or(default_security);
        let auth = auth::route_auth(self, ptr, op.get("security").is_some(), security, schemes);
        let mut route = RouteConf {
            route_key,
            operation_name: operation_id.map(str::to_string),
            ..RouteConf::default()
        };
        let mut served = true;
        match &target {
            Target::Http(i) => route.target = Some(format!("integrations/{i}")),
            Target::Lambda(i) | Target::Unserved(i) => {
                route.target = Some(format!("integrations/{i}"));
                served = false;
            }
            Target::None | Target::Bad => served = false,
        }
        if matches!(target, Target::Bad) {
            return;
        }
        match auth {
            Auth::None => {}
            Auth::Jwt(a, scopes) => {
                route.authorization_type = Some("JWT".into());
                route.authorizer_id = Some(a);
                route.authorization_scopes = scopes;
            }
            Auth::Lambda(a) => {
                route.authorization_type = Some("CUSTOM".into());
                route.authorizer_id = Some(a);
                served = false;
            }
            Auth::Iam => {
                route.authorization_type = Some("AWS_IAM".into());
                served = false;
            }
            Auth::Bad => return,
        }
        let res = Resource {
            id,
            file: self.resource_file(ptr),
            conf: route,
        };
        if served {
            self.config.routes.push(res);
        } else {
            self.config.pending.routes.push(res);
        }
    }

    /// Adds a lowered integration under `id`; `ptr` is where it was written.
    fn add_integration(&mut self, id: &str, ptr: &str, lowered: Lowered) -> Target {
        let file = self.resource_file(ptr);
        match lowered {
            Lowered::Http(conf) => {
                self.config.integrations.push(Resource {
                    id: id.into(),
                    file,
                    conf,
                });
                Target::Http(id.into())
            }
            Lowered::Lambda(conf) => {
                self.config.pending.lambdas.push(Resource {
                    id: id.into(),
                    file,
                    conf,
                });
                Target::Lambda(id.into())
            }
            Lowered::Unserved(conf) => {
                self.config.pending.integrations.push(Resource {
                    id: id.into(),
                    file,
                    conf,
                });
                Target::Unserved(id.into())
            }
            Lowered::Bad => Target::Bad,
        }
    }
}

/// The fixed fields of an OpenAPI 3.0 document.
const OPENAPI_FIELDS: [&str; 8] = [
    "openapi",
    "info",
    "servers",
    "paths",
    "components",
    "security",
    "tags",
    "externalDocs",
];

const CORS_FIELDS: [&str; 6] = [
    "allowOrigins",
    "allowMethods",
    "allowHeaders",
    "exposeHeaders",
    "maxAge",
    "allowCredentials",
];

/// A scalar as text: `1.0` and `"1.0"` alike (YAML and hand-written JSON drop quotes).
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or_default();
            if f.fract() == 0.0 {
                format!("{f:.1}")
            } else {
                f.to_string()
            }
        }
        other => other.to_string(),
    }
}
