//! The single-file bundle: one JSON object with the layout's files as sections
//! (`{"gateway": {..}, "api": {..}, "routes": {"id": {..}}, ...}`). Each entry becomes the
//! file it stands for (`routes/id.json`), so parsing and every error message treat it
//! exactly as the layout.

use super::{ConfigError, ConfigErrors, Files, KINDS};
use std::collections::BTreeMap;

/// Splits a bundle's text (from the file `name`) into the layout's files.
pub(crate) fn bundle_files(name: &str, raw: &str, errors: &mut ConfigErrors) -> Option<Files> {
    let value: serde_json::Value = match serde_json::from_str(raw) {
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
                    errors.push(ConfigError::new(name, key, "must map ids to objects", ""));
                    continue;
                };
                for (id, item) in items {
                    // An id stands for a file stem, which references name (`routes/ID`).
                    if id.is_empty() || id.contains('/') || id.chars().any(char::is_control) {
                        errors.push(ConfigError::new(
                            name,
                            format!("{key}.{}", serde_json::Value::String(id.clone())),
                            "is not a usable id",
                            "use an id without '/' or control characters, e.g. \"r0\"",
                        ));
                        continue;
                    }
                    text.insert(format!("{kind}/{id}.json"), item.to_string());
                }
            }
            other => errors.push(ConfigError::new(
                name,
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
