//! CloudFormation and SAM templates (GATEWAY.md section 10), JSON or YAML, lowered into the
//! same [`Config`] the directory layout yields: no second runtime path.
//!
//! Parameters and conditions are evaluated first (`params`, `intrinsics`), then one API's
//! resources are lowered: `AWS::ApiGatewayV2::*` (`apigw`), or SAM's
//! `AWS::Serverless::HttpApi` and functions' `HttpApi` events (`sam`). Lambda functions
//! (`lambda`) are read with what the Lambda issue needs to run them. What cannot be
//! emulated on one machine is a warning naming the feature and the JSON pointer.

mod apigw;
mod intrinsics;
mod lambda;
pub mod params;
mod resources;
mod sam;
mod sam_auth;
mod sam_events;

pub use params::{parse_param, read_params_file, Params};

use super::yaml::{pointer_token, Yaml};
use super::{closest, Config, ConfigError, ConfigErrors};
use intrinsics::Resolver;
use serde_json::{Map, Value};
use std::path::Path;

const SAM_TRANSFORM: &str = "AWS::Serverless-2016-10-31";

/// Whether `doc` is a CloudFormation or SAM template: `AWSTemplateFormatVersion`, SAM's
/// `Transform`, or `Resources` holding an `AWS::` type.
pub fn is_template(doc: &Value) -> bool {
    let Some(root) = doc.as_object() else {
        return false;
    };
    root.contains_key("AWSTemplateFormatVersion")
        || is_sam(doc)
        || root
            .get("Resources")
            .and_then(Value::as_object)
            .is_some_and(|r| {
                r.values().any(|res| {
                    res.get("Type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| t.starts_with("AWS::"))
                })
            })
}

/// SAM's transform, or (as in SAM's own tests, which apply it explicitly) resources of
/// `AWS::Serverless::` types.
fn is_sam(doc: &Value) -> bool {
    let transform = match doc.get("Transform") {
        Some(Value::String(s)) => s == SAM_TRANSFORM,
        Some(Value::Array(a)) => a.iter().any(|t| t.as_str() == Some(SAM_TRANSFORM)),
        _ => false,
    };
    transform
        || doc
            .get("Resources")
            .and_then(Value::as_object)
            .is_some_and(|r| {
                r.values().any(|res| {
                    res.get("Type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| t.starts_with("AWS::Serverless::"))
                })
            })
}

/// Top-level sections of a template (user guide, "Template anatomy"), and SAM's `Globals`.
const SECTIONS: [&str; 10] = [
    "AWSTemplateFormatVersion",
    "Description",
    "Metadata",
    "Parameters",
    "Rules",
    "Mappings",
    "Conditions",
    "Transform",
    "Resources",
    "Outputs",
];

/// Lowers the template `doc` (read from `file`; `yaml` when it was YAML, for lines) into
/// `config`: its first HTTP API. Every problem goes to `config.errors`, `warnings` or
/// `ignored`.
#[cfg(test)]
pub(crate) fn lower(
    doc: &Value,
    yaml: Option<&Yaml>,
    file: &str,
    params: &Params,
    config: &mut Config,
) {
    lower_api(doc, yaml, file, params, config, 0);
}

/// Lowers HTTP API number `which` of the template (by logical id) into `config`, and
/// returns how many HTTP APIs the template has. What concerns the whole template is said
/// again for each API (callers keep one of each).
fn lower_api(
    doc: &Value,
    yaml: Option<&Yaml>,
    file: &str,
    params: &Params,
    config: &mut Config,
    which: usize,
) -> usize {
    let mut cx = Cx { file, yaml, config };
    let Some(root) = doc.as_object() else {
        cx.error("", "a template must be an object", "");
        return 0;
    };
    let sam = is_sam(doc);
    for key in root.keys() {
        if SECTIONS.contains(&key.as_str()) || (sam && key == "Globals") {
            continue;
        }
        let hint = closest(
            key,
            SECTIONS.iter().copied().chain(sam.then_some("Globals")),
        )
        .map(|c| format!("did you mean {c}?"))
        .unwrap_or_else(|| "remove it".into());
        cx.error(
            &format!("/{}", pointer_token(key)),
            "not a template section",
            hint,
        );
    }
    if !sam && root.contains_key("Transform") {
        cx.warn(
            "/Transform",
            "only the SAM transform (AWS::Serverless-2016-10-31) is applied",
            "",
        );
    }
    let mut problems = Vec::new();
    let values = params::values(doc, params, &mut problems);
    for (ptr, problem, fix) in problems {
        cx.error(&ptr, problem, fix);
    }
    let resolver = Resolver::new(doc, values);
    let Some(resources) = root.get("Resources").and_then(Value::as_object) else {
        cx.error(
            "/Resources",
            "missing or not an object",
            "add Resources with an AWS::ApiGatewayV2::Api or AWS::Serverless::HttpApi",
        );
        return 0;
    };
    let mut live = Map::new();
    for (id, res) in resources {
        let at = format!("/Resources/{}", pointer_token(id));
        let Some(kind) = res.get("Type").and_then(Value::as_str) else {
            cx.error(
                &format!("{at}/Type"),
                "missing",
                "give every resource a Type",
            );
            continue;
        };
        if let Some(cond) = res.get("Condition") {
            let name = cond.as_str().unwrap_or_default();
            match resolver.condition(name, &format!("{at}/Condition")) {
                Ok(true) => {}
                Ok(false) => {
                    cx.ignore(&at, format!("{kind} {id}: condition {name} is false"));
                    continue;
                }
                Err(e) => {
                    cx.unresolved(e);
                    continue;
                }
            }
        }
        live.insert(id.clone(), res.clone());
    }
    let globals = sam.then(|| root.get("Globals")).flatten();
    let functions = lambda::read(&mut cx, &resolver, &live, globals);
    if sam {
        sam::expand(&mut cx, &resolver, &mut live, globals, &functions);
    }
    let apis = apigw::lower(&mut cx, &resolver, &live, &functions, which);
    for a in &cx.config.pending.authorizers {
        if let Some(uri) = &a.conf.authorizer_uri {
            let payload = a.conf.authorizer_payload_format_version.clone();
            let conf = lambda::conf(uri, payload, None, &functions);
            cx.config
                .pending
                .authorizer_functions
                .insert(a.id.clone(), conf);
        }
    }
    apis
}

/// One lowering: where messages point, and the config being filled.
pub(crate) struct Cx<'a> {
    file: &'a str,
    yaml: Option<&'a Yaml>,
    config: &'a mut Config,
}

impl Cx<'_> {
    /// `pointer`, with its YAML line when the template was YAML.
    fn at(&self, ptr: &str) -> String {
        match self.yaml.and_then(|y| y.line(ptr)) {
            Some(line) => format!("{ptr} (line {line})"),
            None => ptr.to_string(),
        }
    }

    fn error(&mut self, ptr: &str, problem: impl Into<String>, fix: impl Into<String>) {
        let e = ConfigError::new(self.file, self.at(ptr), problem, fix);
        self.config.errors.push(e);
    }

    fn warn(&mut self, ptr: &str, problem: impl Into<String>, fix: impl Into<String>) {
        let e = ConfigError::new(self.file, self.at(ptr), problem, fix);
        self.config.warnings.push(e);
    }

    fn ignore(&mut self, ptr: &str, what: impl Into<String>) {
        let e = ConfigError::new(self.file, self.at(ptr), what, "");
        self.config.ignored.push(e);
    }

    fn unresolved(&mut self, e: intrinsics::Unresolved) {
        self.error(&e.pointer, e.problem, e.fix);
    }

    /// `file#pointer`: how a lowered resource is named in the table's messages.
    fn resource_file(&self, ptr: &str) -> String {
        format!("{}#{}", self.file, self.at(ptr))
    }

    /// The resolved `Properties` of the resource at `at` (an empty object when absent).
    fn properties(&mut self, r: &Resolver, res: &Value, at: &str) -> Option<Map<String, Value>> {
        let ptr = format!("{at}/Properties");
        // What SAM's expansion made was resolved (and reported) already.
        if res
            .pointer(&format!("/Metadata/{}", apigw::ORIGIN))
            .is_some()
        {
            return Some(
                res.get("Properties")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        match res.get("Properties") {
            None => Some(Map::new()),
            Some(p) => match r.resolve(p, &ptr) {
                Ok(Some(Value::Object(m))) => Some(m),
                Ok(_) => {
                    self.error(&ptr, "must be an object", "");
                    None
                }
                Err(e) => {
                    self.unresolved(e);
                    None
                }
            },
        }
    }
}

/// Reads a template file's text: JSON when it parses as JSON, else YAML.
pub fn parse_text(text: &str) -> Result<(Value, Option<Yaml>), String> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok((v, None));
    }
    match super::yaml::from_str(text) {
        Ok(mut y) => Ok((std::mem::take(&mut y.value), Some(y))),
        Err(e) => Err(e.to_string()),
    }
}

/// Loads the file at `path` when it is a template, one `Config` per HTTP API it holds:
/// `None` when it is something else (a bundle), so the caller reads it as that.
pub fn load_file(path: &Path, params: &Params) -> Option<Result<Vec<Config>, ConfigErrors>> {
    let name = path.display().to_string();
    let text = match super::read::read_text(path) {
        Ok(t) => t,
        // The bundle reader reports it.
        Err(_) => return None,
    };
    let (doc, yaml) = match parse_text(&text) {
        Ok(d) => d,
        // Text that opens like JSON is left to the bundle (or OpenAPI) reader, whose JSON
        // error names the position; anything else was meant to be YAML.
        Err(_) if text.trim_start().starts_with(['{', '[']) => return None,
        Err(e) => {
            let mut errors = ConfigErrors::default();
            errors.push(ConfigError::new(
                &name,
                "",
                format!("neither JSON nor YAML: {e}"),
                "fix the syntax at that line",
            ));
            return Some(Err(errors));
        }
    };
    if !is_template(&doc) {
        return None;
    }
    let fresh = || Config {
        dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        ..Config::default()
    };
    let mut first = fresh();
    let apis = lower_api(&doc, yaml.as_ref(), &name, params, &mut first, 0);
    if apis < 2 {
        // One API keeps the single-API rule: known by its Name.
        first.api_id = None;
    }
    let mut configs = vec![first];
    for which in 1..apis {
        let mut config = fresh();
        lower_api(&doc, yaml.as_ref(), &name, params, &mut config, which);
        configs.push(config);
    }
    let said = configs
        .iter()
        .any(|c| !(c.errors.is_empty() && c.warnings.is_empty()));
    // JSON is YAML too: a JSON template's messages get lines from the same reader, read
    // only when there is something to say.
    let yaml = yaml.or_else(|| said.then(|| super::yaml::from_str(&text).ok()).flatten());
    if let Some(y) = &yaml {
        for config in &mut configs {
            add_lines(config, &name, y);
        }
    }
    Some(Ok(configs))
}

/// Gives messages without a line (a JSON template's, an inline OpenAPI body's) one.
fn add_lines(config: &mut Config, name: &str, y: &Yaml) {
    for e in config
        .errors
        .iter_mut()
        .chain(&mut config.warnings)
        .chain(&mut config.ignored)
    {
        if e.file == name && e.field.starts_with('/') && !e.field.contains(" (line ") {
            if let Some(line) = y.line(&e.field) {
                e.field = format!("{} (line {line})", e.field);
            }
        }
    }
}

#[cfg(test)]
mod tests;
