//! Reading a configuration directory (AWS apigatewayv2 resource layout) into typed,
//! not yet validated, structures. Semantic checks and compilation live in `crate::table`.

mod error;
mod model;

pub use error::{closest, ConfigError, ConfigErrors};
pub use model::*;

use serde::de::DeserializeOwned;
use serde_json::Value;
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
    /// What was wrong with the files as read (unreadable, bad JSON, unknown fields, wrong
    /// types). Files at fault take no part in the rest; `Table::compile` reports these
    /// along with its own findings on every file that did parse, so one run shows all.
    pub errors: Vec<ConfigError>,
    /// Resources present but not parsed, as references (`routes/r0`): references to them
    /// are not reported again as dangling, their file's own error says what to fix.
    pub unparsed: BTreeSet<String>,
}

const KINDS: [&str; 4] = ["stages", "routes", "integrations", "authorizers"];

/// Loads `path`: a configuration directory, its `gateway.json`, or a single-file bundle
/// (`{"gateway": {..}, "api": {..}, "stages": {"id": {..}}, "routes": {..}, ...}`).
/// `Err` only when there is nothing to read; problems in single files are in
/// [`Config::errors`], so that the files that are fine still get checked.
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
    let mut config = parse_files(dir, files, &mut errors);
    config.errors = errors.0;
    Ok(config)
}

/// Source text of every resource, keyed by relative path (`routes/r0.json`).
struct Files {
    text: BTreeMap<String, String>,
    has_stages_dir: bool,
    /// Files that exist but could not be read (`routes/r0.json`).
    unreadable: Vec<String>,
}

fn read_dir(dir: &Path, errors: &mut ConfigErrors) -> Option<Files> {
    let mut text = BTreeMap::new();
    let mut has_stages_dir = false;
    let mut unreadable = Vec::new();
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
                Err(e) => {
                    errors.push(ConfigError::new(&rel, "", format!("cannot read: {e}"), ""));
                    unreadable.push(rel);
                }
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
        unreadable,
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
        unreadable: Vec::new(),
    })
}

fn parse_files(dir: PathBuf, files: Files, errors: &mut ConfigErrors) -> Config {
    let mut config = Config {
        dir,
        has_stages_dir: files.has_stages_dir,
        ..Config::default()
    };
    for rel in files.unreadable {
        config
            .unparsed
            .insert(rel.trim_end_matches(".json").to_string());
    }
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
                let parsed = match kind {
                    "stages" => push(&mut config.stages, id, file, parse(rel, text, errors)),
                    "routes" => push(&mut config.routes, id, file, parse(rel, text, errors)),
                    "integrations" => {
                        push(&mut config.integrations, id, file, parse(rel, text, errors))
                    }
                    _ => push(&mut config.authorizers, id, file, parse(rel, text, errors)),
                };
                if !parsed {
                    config
                        .unparsed
                        .insert(rel.trim_end_matches(".json").to_string());
                }
            }
            None => {}
        }
    }
    config
}

fn push<T>(list: &mut Vec<Resource<T>>, id: String, file: String, conf: Option<T>) -> bool {
    let parsed = conf.is_some();
    if let Some(conf) = conf {
        list.push(Resource { id, file, conf });
    }
    parsed
}

/// How many mistakes one file may report: each one found costs a pass over the file.
const MAX_ERRORS_PER_FILE: usize = 32;

/// Parses one file, reporting every mistake in it with the path of the field at fault
/// (`RouteSettings."GET /a".ThrottlingBurstLimt`). A file with any mistake yields `None`:
/// it takes no part in the semantic checks, which would only repeat its errors.
fn parse<T: DeserializeOwned>(file: &str, text: &str, errors: &mut ConfigErrors) -> Option<T> {
    // Nearly every file is valid: one pass straight from the text.
    let mut de = serde_json::Deserializer::from_str(text);
    let first = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => match de.end() {
            Ok(()) => return Some(v),
            Err(e) => {
                errors.push(invalid_json(file, &e));
                return None;
            }
        },
        Err(e) => e,
    };
    if first.inner().is_syntax() || first.inner().is_eof() {
        errors.push(invalid_json(file, first.inner()));
        return None;
    }
    // serde stops at the first mistake. To find the others, work on the parsed JSON:
    // report a mistake, take the field at fault out, and deserialize again.
    let mut value: Value = match serde_json::from_str(text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            errors.push(ConfigError::new(
                file,
                "",
                "the file must hold one JSON object",
                "write the settings as {\"Field\": value, ...}",
            ));
            return None;
        }
        Err(e) => {
            errors.push(invalid_json(file, &e));
            return None;
        }
    };
    let before = errors.0.len();
    // A repeated field only shows in the text (the parsed JSON keeps the last one).
    if first.inner().to_string().starts_with("duplicate field `") {
        errors.push(describe_serde_error(file, &first));
    }
    let mut taken_out: Vec<String> = Vec::new();
    for _ in 0..MAX_ERRORS_PER_FILE {
        let e = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(_) => break,
            Err(e) => e,
        };
        let error = describe_serde_error(file, &e);
        // A required field taken out for a wrong type is missing now: already reported.
        if taken_out.contains(&error.field) {
            break;
        }
        errors.push(error);
        match take_out(&mut value, &e) {
            Some(field) => taken_out.push(field),
            None => break,
        }
    }
    if errors.0.len() == before {
        // The parsed JSON passed where the text did not: report what the text said.
        errors.push(describe_serde_error(file, &first));
    }
    None
}

fn invalid_json(file: &str, e: &serde_json::Error) -> ConfigError {
    ConfigError::new(
        file,
        "",
        format!("invalid JSON: {e}"),
        "fix the JSON syntax",
    )
}

/// Removes the field an error is about from `value`, so that the next pass can go on;
/// returns its path as reported. A bad list item takes the whole list out (one report
/// per list). `None` when nothing can be taken out (e.g. a missing field).
fn take_out(
    value: &mut Value,
    e: &serde_path_to_error::Error<serde_json::Error>,
) -> Option<String> {
    if e.inner().to_string().starts_with("missing field `") {
        return None;
    }
    let mut path: Vec<&serde_path_to_error::Segment> = e.path().iter().collect();
    while matches!(path.last(), Some(serde_path_to_error::Segment::Seq { .. })) {
        path.pop();
    }
    let (last, parents) = path.split_last()?;
    let serde_path_to_error::Segment::Map { key } = last else {
        return None;
    };
    let mut at = value;
    for seg in parents {
        at = match seg {
            serde_path_to_error::Segment::Map { key } => at.get_mut(key.as_str())?,
            serde_path_to_error::Segment::Seq { index } => at.get_mut(*index)?,
            _ => return None,
        };
    }
    at.as_object_mut()?.remove(key.as_str())?;
    Some(field_path(path.iter().copied()))
}

/// `RouteSettings."GET /a".ThrottlingBurstLimit`, `Routes[1]`: keys that are not plain
/// words are quoted, so the path reads unambiguously.
fn field_path<'a>(segments: impl IntoIterator<Item = &'a serde_path_to_error::Segment>) -> String {
    let mut out = String::new();
    for seg in segments {
        match seg {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                if !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    out.push_str(key);
                } else {
                    out.push_str(&Value::String(key.clone()).to_string());
                }
            }
            serde_path_to_error::Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    out
}

fn describe_serde_error(
    file: &str,
    e: &serde_path_to_error::Error<serde_json::Error>,
) -> ConfigError {
    let at = field_path(e.path().iter());
    // Without the position: the field path says where.
    let msg = e.inner().to_string();
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg.as_str(),
    };
    let join = |field: &str| {
        if at.is_empty() {
            field.to_string()
        } else {
            format!("{at}.{field}")
        }
    };
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        // The path already ends with the unknown field.
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let fix = match closest(field, known.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if known.is_empty() => "remove it".to_string(),
            None => format!("remove it; known fields are {}", known.join(", ")),
        };
        return ConfigError::new(file, at, "unknown field", fix);
    }
    if let Some(rest) = msg.strip_prefix("duplicate field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return ConfigError::new(file, join(field), "appears twice", "keep one of the two");
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return ConfigError::new(
            file,
            join(field),
            "required field is missing",
            format!("add \"{field}\""),
        );
    }
    let fix = match msg.rsplit_once(", expected ").map(|(_, x)| x) {
        Some("u64" | "u32" | "u16" | "usize") => "write a whole number, e.g. 100".to_string(),
        Some("f64" | "f32") => "write a number, e.g. 10.5".to_string(),
        Some("a string") => "write a JSON string, in double quotes".to_string(),
        Some("a boolean") => "write true or false".to_string(),
        Some("a sequence") => "write a JSON list, e.g. [\"...\"]".to_string(),
        Some(x) if x == "a map" || x.starts_with("struct ") => {
            "write a JSON object, e.g. {\"Field\": value}".to_string()
        }
        Some(x) => format!("write {x}"),
        None => "see the field types in the contract (GATEWAY.md section 2)".to_string(),
    };
    ConfigError::new(file, at, msg, fix)
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
    fn every_mistake_in_a_file_is_reported_with_its_path() {
        let mut errors = ConfigErrors::default();
        let text = r#"{"Name":"s","Stagevariables":{},"RouteSettings":{"GET /a":{"ThrottlingBurstLimt":1,"ThrottlingRateLimit":"x"}},"Routes":["routes/a",3]}"#;
        let s: Option<StageConf> = parse("stages/s.json", text, &mut errors);
        assert!(s.is_none());
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            // In key order: the parsed JSON does not keep the file's order.
            [
                r#"RouteSettings."GET /a".ThrottlingBurstLimt"#,
                r#"RouteSettings."GET /a".ThrottlingRateLimit"#,
                "Routes[1]",
                "Stagevariables",
            ],
            "{errors}"
        );
        assert!(errors.0[0].fix.contains("ThrottlingBurstLimit"), "{errors}");
        assert!(errors.0[1].problem.contains("invalid type"), "{errors}");
        assert!(errors.0[1].fix.contains("number"), "{errors}");
        assert!(errors.0[3].fix.contains("StageVariables"), "{errors}");
        assert!(!errors.to_string().contains("line"), "{errors}");
    }

    #[test]
    fn a_required_field_with_a_wrong_type_is_reported_once() {
        let mut errors = ConfigErrors::default();
        let r: Option<RouteConf> = parse(
            "routes/r.json",
            r#"{"RouteKey":5,"Targett":"x"}"#,
            &mut errors,
        );
        assert!(r.is_none());
        assert_eq!(errors.0.len(), 2, "{errors}");
        assert_eq!(errors.0[0].field, "RouteKey");
        assert!(errors.0[0].fix.contains("string"), "{errors}");
        assert_eq!(errors.0[1].field, "Targett");
        // A field that is really missing is reported as such.
        let mut errors = ConfigErrors::default();
        let _: Option<RouteConf> = parse("routes/r.json", r#"{"Target":"x"}"#, &mut errors);
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!(errors.0[0].field, "RouteKey");
        assert!(errors.0[0].problem.contains("missing"), "{errors}");
    }

    #[test]
    fn duplicate_fields_and_non_objects() {
        let mut errors = ConfigErrors::default();
        let _: Option<RouteConf> = parse(
            "routes/r.json",
            r#"{"RouteKey":"GET /a","RouteKey":"GET /b"}"#,
            &mut errors,
        );
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!(errors.0[0].field, "RouteKey");
        assert!(errors.0[0].problem.contains("twice"));
        let mut errors = ConfigErrors::default();
        let _: Option<RouteConf> = parse("routes/r.json", "[]", &mut errors);
        assert!(errors.0[0].problem.contains("JSON object"), "{errors}");
        let mut errors = ConfigErrors::default();
        let _: Option<RouteConf> =
            parse("routes/r.json", r#"{"RouteKey":"GET /a"} x"#, &mut errors);
        assert!(errors.0[0].problem.contains("invalid JSON"), "{errors}");
    }

    #[test]
    fn payload_format_version_may_be_a_number() {
        for (text, want) in [
            (r#""1.0""#, "1.0"),
            ("1.0", "1.0"),
            ("1", "1.0"),
            ("2.0", "2.0"),
        ] {
            let mut errors = ConfigErrors::default();
            let i: IntegrationConf = parse(
                "integrations/i.json",
                &format!(
                    r#"{{"IntegrationType":"HTTP_PROXY","IntegrationUri":"http://h","PayloadFormatVersion":{text}}}"#
                ),
                &mut errors,
            )
            .unwrap();
            assert_eq!(i.payload_format_version.as_deref(), Some(want));
        }
        let mut errors = ConfigErrors::default();
        let i: Option<IntegrationConf> = parse(
            "integrations/i.json",
            r#"{"IntegrationType":"HTTP_PROXY","IntegrationUri":"http://h","PayloadFormatVersion":true}"#,
            &mut errors,
        );
        assert!(i.is_none());
        assert_eq!(errors.0[0].field, "PayloadFormatVersion", "{errors}");
    }

    #[test]
    fn syntax_error_names_file() {
        let mut errors = ConfigErrors::default();
        let r: Option<RouteConf> = parse("routes/r.json", "{not json", &mut errors);
        assert!(r.is_none());
        assert!(errors.0[0].to_string().starts_with("routes/r.json"));
    }
}
