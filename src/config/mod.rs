//! Reading a configuration into typed, not yet validated, structures. Semantic checks
//! and compilation live in `crate::table`.
//!
//! Each external format is lowered into the one format-independent model (`model.rs`):
//! the directory layout (`layout.rs`) and the single-file bundle (`bundle.rs`) both yield
//! the layout's files, which `parse.rs` parses into a `Config`. Documents are lowered
//! straight into a `Config`: OpenAPI 3.0 (`openapi/`), SAM/CloudFormation templates
//! (`cloudformation/`). Azure API Management's APIOps artifacts directory (`apim/`) is
//! recognised by its `apis/*/apiInformation.json`. `export.rs` writes a `Config` back out.

pub mod apim;
pub(crate) mod bundle;
pub mod cloudformation;
mod error;
pub mod export;
pub mod functions;
mod layout;
mod model;
pub mod openapi;
pub(crate) mod parse;
pub mod read;
pub mod reserved;
#[cfg(test)]
mod tests;
pub mod yaml;

pub use error::{closest, ConfigError, ConfigErrors};
pub use model::*;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One resource file: its logical id (the file stem) and where it came from.
#[derive(Debug, Clone)]
pub struct Resource<T> {
    pub id: String,
    /// For messages: `routes/r0.json`.
    pub file: String,
    pub conf: T,
}

/// Every file of a configuration, parsed.
#[derive(Debug, Default)]
pub struct Config {
    /// Base for relative paths (`JwksFile`, access-log files).
    pub dir: PathBuf,
    pub gateway: GatewayConf,
    pub api: ApiConf,
    /// Whether `stages/` exists at all: without it a `$default` stage is implied.
    pub has_stages_dir: bool,
    pub stages: Vec<Resource<StageConf>>,
    pub routes: Vec<Resource<RouteConf>>,
    pub integrations: Vec<Resource<IntegrationConf>>,
    pub authorizers: Vec<Resource<AuthorizerConf>>,
    /// `functions/*.json`: Lambda functions run locally.
    pub functions: Vec<Resource<FunctionConf>>,
    /// What was wrong with the files as read (unreadable, bad JSON, unknown fields, wrong
    /// types). Files at fault take no part in the rest; `Table::compile` reports these
    /// along with its own findings on every file that did parse, so one run shows all.
    pub errors: Vec<ConfigError>,
    /// Resources present but not parsed, as references (`routes/r0`): references to them
    /// are not reported again as dangling, their file's own error says what to fix.
    pub unparsed: BTreeSet<String>,
    /// Read but not served (Lambda, IAM, ...): kept so `check` names them and `export`
    /// writes them back, never dropped silently.
    pub pending: Pending,
    /// The id domain mappings, `Host` dispatch, metrics and access logs know this API by,
    /// when the document decides it: each API of a template with several is known by its
    /// logical id (their Names may repeat, as AWS allows). Otherwise `api.json` Name.
    pub api_id: Option<String>,
    /// What `check` prints without failing: each feature apigate reads but cannot serve.
    pub warnings: Vec<ConfigError>,
    /// What AWS's import ignores, ignored here too: listed by `check --verbose`.
    pub ignored: Vec<ConfigError>,
    /// Whose error bodies the gateway answers with (APIM's for an artifacts directory).
    pub dialect: crate::rejection::Dialect,
}

/// Longest rate-limit window a policy may ask for (one day): the longest the counters keep.
pub const MAX_RATE_LIMIT_PERIOD_SECS: u64 = 86_400;

impl Config {
    /// The name this API goes by in metrics, access logs and the Redis key namespace:
    /// [`Config::api_id`], else `api.json` Name.
    pub fn api_label(&self) -> Option<&str> {
        self.api_id.as_deref().or(self.api.name.as_deref())
    }
}

/// Resources a document holds that the table does not serve (yet): their routes stay out
/// of the router, so a request to one is answered as an unknown route would be.
#[derive(Debug, Default)]
pub struct Pending {
    pub routes: Vec<Resource<RouteConf>>,
    /// `AWS_PROXY` integrations (section 11's Lambda issue runs them).
    pub lambdas: Vec<Resource<LambdaConf>>,
    /// HTTP integrations that cannot be reached from one machine (`VPC_LINK`).
    pub integrations: Vec<Resource<IntegrationConf>>,
    /// Lambda (`REQUEST`) authorizers, until their function is found.
    pub authorizers: Vec<Resource<AuthorizerConf>>,
    /// A template's function for each of those authorizers, by authorizer id: what it
    /// takes to run it here.
    pub authorizer_functions: BTreeMap<String, LambdaConf>,
}

pub(crate) const KINDS: [&str; 5] = [
    "stages",
    "routes",
    "integrations",
    "authorizers",
    "functions",
];

/// Loads `path`: a configuration directory, its `gateway.json`, a template, an OpenAPI
/// document, or a single-file bundle
/// (`{"gateway": {..}, "api": {..}, "stages": {"id": {..}}, "routes": {..}, ...}`).
/// `Err` only when there is nothing to read; problems in single files are in
/// [`Config::errors`], so that the files that are fine still get checked.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with(path, &cloudformation::Params::new())
}

/// [`load`], with the values of a template's parameters (`--param`, `--params`): the
/// first API `path` holds (a template may hold several). As written: what `serve` runs
/// also has its Lambda functions promoted (`crate::load`, `functions::serve_pending`).
pub fn load_with(path: &Path, params: &cloudformation::Params) -> Result<Config, ConfigErrors> {
    let mut all = load_all_with(path, params)?;
    // `load_all_with` yields at least one.
    Ok(if all.is_empty() {
        Config::default()
    } else {
        all.swap_remove(0)
    })
}

/// Every API `path` holds, in order: one for the directory layout, a bundle or an OpenAPI
/// document; one per HTTP API (by logical id) for a template.
pub fn load_all_with(
    path: &Path,
    params: &cloudformation::Params,
) -> Result<Vec<Config>, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let meta = std::fs::metadata(path);
    let is_dir = meta.as_ref().is_ok_and(|m| m.is_dir());
    let files = if is_dir && apim::is_artifacts(path) {
        return Ok(vec![apim::load(path)]);
    } else if is_dir {
        layout::read_dir(path, &mut errors)
    } else if path.file_name().is_some_and(|n| n == "gateway.json") {
        let dir = path.parent().unwrap_or(Path::new("."));
        layout::read_dir(dir, &mut errors)
    } else if meta.is_ok() {
        // A regular file is a template (told by content: `cloudformation::is_template`),
        // an OpenAPI document or a bundle; anything else is refused by the reader, by type.
        if let Some(template) = cloudformation::load_file(path, params) {
            return template;
        }
        match read_document(path, &mut errors) {
            Some(Document::OpenApi(doc, lines)) => {
                let name = path.display().to_string();
                let mut config = Config {
                    dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
                    ..Config::default()
                };
                openapi::lower(&doc, &name, "", &mut config);
                if let Some(lines) = lines {
                    openapi::add_lines(&mut config, &name, &lines);
                }
                config.errors.splice(0..0, errors.0);
                return Ok(vec![config]);
            }
            Some(Document::Bundle(name, raw)) => bundle::bundle_files(&name, &raw, &mut errors),
            None => None,
        }
    } else {
        errors.push(ConfigError::new(
            path.display().to_string(),
            "",
            "no such file or directory",
            "pass --conf a configuration directory (gateway.json, routes/, integrations/, ...)",
        ));
        None
    };
    let Some(files) = files else {
        return Err(errors);
    };
    let dir = if is_dir {
        path.to_path_buf()
    } else {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let mut config = parse::parse_files(dir, files, &mut errors);
    config.errors = errors.0;
    Ok(vec![config])
}

/// What each format's reader yields: the source text of every resource, keyed by its path
/// in the layout (`routes/r0.json`), which is also how errors name it.
pub(crate) struct Files {
    pub(crate) text: BTreeMap<String, String>,
    pub(crate) has_stages_dir: bool,
    /// Files that exist but could not be read (`routes/r0.json`).
    pub(crate) unreadable: Vec<String>,
}

/// A single configuration file, by what it holds.
enum Document {
    /// An OpenAPI (or Swagger, refused with AWS's reason) document, with its YAML lines
    /// when it was written in YAML.
    OpenApi(serde_json::Value, Option<yaml::Yaml>),
    /// The bundle: its name and text.
    Bundle(String, String),
}

/// Reads a single file and tells by its content what it is: a JSON or YAML object with
/// `openapi` or `swagger` at the top is an OpenAPI document, any other text a bundle.
fn read_document(path: &Path, errors: &mut ConfigErrors) -> Option<Document> {
    let name = path.display().to_string();
    let raw = match read::read_text(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(layout::cannot_read(&name, &e));
            return None;
        }
    };
    match serde_json::from_str::<serde_json::Value>(&raw) {
        Ok(v) if openapi::is_openapi(&v) => return Some(Document::OpenApi(v, None)),
        Ok(_) => {}
        Err(_) => {
            if let Ok(y) = yaml::from_str(&raw) {
                if openapi::is_openapi(&y.value) {
                    let v = y.value.clone();
                    return Some(Document::OpenApi(v, Some(y)));
                }
                // YAML, but none of the YAML formats: say so rather than "invalid JSON".
                errors.push(ConfigError::new(
                    name,
                    "",
                    "neither an OpenAPI document (no \"openapi\" field) nor a SAM/CloudFormation template (no \"Resources\")",
                    "pass an OpenAPI 3.0 document, a template, a bundle or a configuration directory",
                ));
                return None;
            }
        }
    }
    Some(Document::Bundle(name, raw))
}
