//! Parsing the files' JSON into the model, reporting every mistake in a file with the path
//! of the field at fault (serde stops at the first one; `parse` goes on to find the rest).

use super::{closest, Config, ConfigError, ConfigErrors, Files, Resource};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::PathBuf;

/// Parses each of `files` into its place in a `Config` read from `dir`. Files that do
/// not parse are reported and listed in `Config::unparsed`.
pub(crate) fn parse_files(dir: PathBuf, files: Files, errors: &mut ConfigErrors) -> Config {
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
                    "functions" => push(&mut config.functions, id, file, parse(rel, text, errors)),
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
pub(super) fn parse<T: DeserializeOwned>(
    file: &str,
    text: &str,
    errors: &mut ConfigErrors,
) -> Option<T> {
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
