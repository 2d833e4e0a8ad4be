//! Reading a configuration into typed, not yet validated, structures. Semantic checks
//! and compilation live in `crate::table`.
//!
//! Each external format is lowered into the one format-independent model (`model.rs`):
//! the directory layout (`layout.rs`) and the single-file bundle (`bundle.rs`) both yield
//! the layout's files, which `parse.rs` parses into a `Config`. Later formats (OpenAPI,
//! SAM/CloudFormation, APIM) sit beside layout and bundle.

mod bundle;
mod error;
mod layout;
mod model;
mod parse;
#[cfg(test)]
mod props;
pub mod read;
#[cfg(test)]
mod tests;

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
}

const KINDS: [&str; 5] = [
    "stages",
    "routes",
    "integrations",
    "authorizers",
    "functions",
];

/// Loads `path`: a configuration directory, its `gateway.json`, or a single-file bundle
/// (`{"gateway": {..}, "api": {..}, "stages": {"id": {..}}, "routes": {..}, ...}`).
/// `Err` only when there is nothing to read; problems in single files are in
/// [`Config::errors`], so that the files that are fine still get checked.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let meta = std::fs::metadata(path);
    let is_dir = meta.as_ref().is_ok_and(|m| m.is_dir());
    let files = if is_dir {
        layout::read_dir(path, &mut errors)
    } else if path.file_name().is_some_and(|n| n == "gateway.json") {
        let dir = path.parent().unwrap_or(Path::new("."));
        layout::read_dir(dir, &mut errors)
    } else if meta.is_ok() {
        // A regular file is a bundle; anything else is refused by the reader, by type.
        bundle::read_bundle(path, &mut errors)
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
    Ok(config)
}

/// What each format's reader yields: the source text of every resource, keyed by its path
/// in the layout (`routes/r0.json`), which is also how errors name it.
struct Files {
    text: BTreeMap<String, String>,
    has_stages_dir: bool,
    /// Files that exist but could not be read (`routes/r0.json`).
    unreadable: Vec<String>,
}
