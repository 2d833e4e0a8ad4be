//! The directory layout: `gateway.json`, `api.json` and one file per resource under
//! `stages/`, `routes/`, `integrations/` and `authorizers/`, as AWS apigatewayv2 names them.

use super::{ConfigError, ConfigErrors, Files, KINDS};
use std::collections::BTreeMap;
use std::path::Path;

/// Reads every file of the layout in `dir`. `None` when there is no configuration there;
/// unreadable files are reported and listed, so references to them are not reported again.
pub(super) fn read_dir(dir: &Path, errors: &mut ConfigErrors) -> Option<Files> {
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
