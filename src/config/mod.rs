//! Reading a configuration directory (AWS apigatewayv2 resource layout) into typed,
//! not yet validated, structures. Semantic checks and compilation live in `crate::table`.

mod error;
mod model;

pub use error::{closest, ConfigError, ConfigErrors};
pub use model::*;

use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
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
}

const KINDS: [&str; 4] = ["stages", "routes", "integrations", "authorizers"];

/// Loads `path`: a configuration directory, its `gateway.json`, or a single-file bundle
/// (`{"gateway": {..}, "api": {..}, "stages": {"id": {..}}, "routes": {..}, ...}`).
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let files = if path.is_dir() {
        read_dir(path, &mut errors)
    } else if path.file_name().is_some_and(|n| n == "gateway.json") {
        let dir = path.parent().unwrap_or(Path::new("."));
        read_dir(dir, &mut errors)
    } else if path.is_file() {
        read_bundle(path, &mut errors)
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
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let config = parse_files(dir, files, &mut errors);
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

/// Source text of every resource, keyed by relative path (`routes/r0.json`).
struct Files {
    text: BTreeMap<String, String>,
    has_stages_dir: bool,
}

fn read_dir(dir: &Path, errors: &mut ConfigErrors) -> Option<Files> {
    let mut text = BTreeMap::new();
    let mut has_stages_dir = false;
    for top in ["gateway.json", "api.json"] {
        let p = dir.join(top);
        if p.exists() {
            match std::fs::read_to_string(&p) {
                Ok(t) => {
                    text.insert(top.to_string(), t);
                }
                Err(e) => errors.push(ConfigError::new(top, "", format!("cannot read: {e}"), "")),
            }
        }
    }
    let mut any = false;
    for kind in KINDS {
        let sub = dir.join(kind);
        if !sub.is_dir() {
            continue;
        }
        any = true;
        has_stages_dir |= kind == "stages";
        let entries = match std::fs::read_dir(&sub) {
            Ok(e) => e,
            Err(e) => {
                errors.push(ConfigError::new(kind, "", format!("cannot read: {e}"), ""));
                continue;
            }
        };
        let mut names: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in names {
            if p.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let rel = format!("{kind}/{name}");
            match std::fs::read_to_string(&p) {
                Ok(t) => {
                    text.insert(rel, t);
                }
                Err(e) => errors.push(ConfigError::new(rel, "", format!("cannot read: {e}"), "")),
            }
        }
    }
    if !any && text.is_empty() {
        errors.push(ConfigError::new(
            dir.display().to_string(),
            "",
            "no configuration here: no gateway.json, api.json, routes/ or integrations/",
            "point --conf at a directory in the AWS layout (see conf/example)",
        ));
        return None;
    }
    Some(Files {
        text,
        has_stages_dir,
    })
}

fn read_bundle(path: &Path, errors: &mut ConfigErrors) -> Option<Files> {
    let name = path.display().to_string();
    let raw = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(ConfigError::new(name, "", format!("cannot read: {e}"), ""));
            return None;
        }
    };
    let value: serde_json::Value = match serde_json::from_str(&raw) {
        Ok(v) => v,
        Err(e) => {
            errors.push(ConfigError::new(
                name,
                "",
                format!("invalid JSON: {e}"),
                "fix the syntax",
            ));
            return None;
        }
    };
    let Some(obj) = value.as_object() else {
        errors.push(ConfigError::new(
            name,
            "",
            "a bundle must be a JSON object",
            "",
        ));
        return None;
    };
    let mut text = BTreeMap::new();
    let mut has_stages_dir = false;
    for (key, v) in obj {
        match key.as_str() {
            "gateway" | "api" => {
                text.insert(format!("{key}.json"), v.to_string());
            }
            kind if KINDS.contains(&kind) => {
                has_stages_dir |= kind == "stages";
                let Some(items) = v.as_object() else {
                    errors.push(ConfigError::new(&name, key, "must map ids to objects", ""));
                    continue;
                };
                for (id, item) in items {
                    text.insert(format!("{kind}/{id}.json"), item.to_string());
                }
            }
            other => errors.push(ConfigError::new(
                &name,
                other,
                "unknown section",
                "use gateway, api, stages, routes, integrations or authorizers",
            )),
        }
    }
    Some(Files {
        text,
        has_stages_dir,
    })
}

fn parse_files(dir: PathBuf, files: Files, errors: &mut ConfigErrors) -> Config {
    let mut config = Config {
        dir,
        has_stages_dir: files.has_stages_dir,
        ..Config::default()
    };
    for (rel, text) in &files.text {
        match rel.split_once('/') {
            None if rel == "gateway.json" => {
                if let Some(c) = parse(rel, text, errors) {
                    config.gateway = c;
                }
            }
            None if rel == "api.json" => {
                if let Some(c) = parse(rel, text, errors) {
                    config.api = c;
                }
            }
            Some((kind, name)) => {
                let id = name.trim_end_matches(".json").to_string();
                let file = rel.clone();
                match kind {
                    "stages" => push(&mut config.stages, id, file, parse(rel, text, errors)),
                    "routes" => push(&mut config.routes, id, file, parse(rel, text, errors)),
                    "integrations" => {
                        push(&mut config.integrations, id, file, parse(rel, text, errors))
                    }
                    _ => push(&mut config.authorizers, id, file, parse(rel, text, errors)),
                }
            }
            None => {}
        }
    }
    config
}

fn push<T>(list: &mut Vec<Resource<T>>, id: String, file: String, conf: Option<T>) {
    if let Some(conf) = conf {
        list.push(Resource { id, file, conf });
    }
}

/// Parses one file, turning serde's message into a `ConfigError` naming the field.
fn parse<T: DeserializeOwned>(file: &str, text: &str, errors: &mut ConfigErrors) -> Option<T> {
    match serde_json::from_str::<T>(text) {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(describe_serde_error(file, &e));
            None
        }
    }
}

fn describe_serde_error(file: &str, e: &serde_json::Error) -> ConfigError {
    let msg = e.to_string();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let fix = match closest(field, known.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("remove it; known fields are {}", known.join(", ")),
        };
        return ConfigError::new(file, field, "unknown field", fix);
    }
    if let Some(rest) = msg.strip_prefix("duplicate field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return ConfigError::new(file, field, "appears twice", "keep one of the two");
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return ConfigError::new(
            file,
            field,
            "required field is missing",
            format!("add \"{field}\""),
        );
    }
    if e.is_syntax() || e.is_eof() {
        return ConfigError::new(
            file,
            "",
            format!("invalid JSON: {msg}"),
            "fix the JSON syntax",
        );
    }
    ConfigError::new(
        file,
        "",
        msg,
        "see the field types in the contract (GATEWAY.md section 2)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_names_field_and_suggestion() {
        let mut errors = ConfigErrors::default();
        let r: Option<RouteConf> = parse("routes/r.json", r#"{"RouteKeyy":"x"}"#, &mut errors);
        assert!(r.is_none());
        let e = &errors.0[0];
        assert_eq!(e.field, "RouteKeyy");
        assert!(e.fix.contains("RouteKey"), "{e}");
    }

    #[test]
    fn syntax_error_names_file() {
        let mut errors = ConfigErrors::default();
        let r: Option<RouteConf> = parse("routes/r.json", "{not json", &mut errors);
        assert!(r.is_none());
        assert!(errors.0[0].to_string().starts_with("routes/r.json"));
    }
}
