//! The directory layout: `gateway.json`, `api.json` and one file per resource under
//! `stages/`, `routes/`, `integrations/` and `authorizers/`, as AWS apigatewayv2 names them.

use super::read::{self, ReadError, MAX_TOTAL_BYTES};
use super::{ConfigError, ConfigErrors, Files, KINDS};
use std::collections::BTreeMap;
use std::path::Path;

/// Reads every file of the layout in `dir`. `None` when there is no configuration there;
/// unreadable files are reported and listed, so references to them are not reported again.
/// A file where a directory belongs (`routes`) and the reverse are errors, never skipped:
/// skipping would serve a configuration with fewer routes than the operator wrote.
pub(super) fn read_dir(dir: &Path, errors: &mut ConfigErrors) -> Option<Files> {
    let mut text = BTreeMap::new();
    let mut has_stages_dir = false;
    let mut unreadable = Vec::new();
    let mut budget = Budget(0);
    let mut any = false;
    for top in ["gateway.json", "api.json"] {
        let p = dir.join(top);
        // A dangling symlink is present (and reported), not absent.
        if std::fs::symlink_metadata(&p).is_err() {
            continue;
        }
        any = true;
        match budget.read(&p) {
            Ok(t) => {
                text.insert(top.to_string(), t);
            }
            Err(e) => errors.push(cannot_read(top, &e)),
        }
    }
    for kind in KINDS {
        let sub = dir.join(kind);
        if std::fs::symlink_metadata(&sub).is_err() {
            continue;
        }
        any = true;
        match std::fs::metadata(&sub) {
            Ok(m) if m.is_dir() => {}
            Ok(m) => {
                let found = read::irregular_kind(&m).unwrap_or("a regular file");
                errors.push(ConfigError::new(
                    kind,
                    "",
                    format!("expected a directory of {kind} files, found {found}"),
                    format!("make {kind}/ a directory holding one JSON file per resource"),
                ));
                continue;
            }
            Err(e) => {
                errors.push(cannot_read(kind, &ReadError::Io(e)));
                continue;
            }
        }
        has_stages_dir |= kind == "stages";
        let entries = match std::fs::read_dir(&sub) {
            Ok(e) => e,
            Err(e) => {
                errors.push(cannot_read(kind, &ReadError::Io(e)));
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
            match budget.read(&p) {
                Ok(t) => {
                    text.insert(rel, t);
                }
                Err(e) => {
                    errors.push(cannot_read(&rel, &e));
                    unreadable.push(rel);
                }
            }
        }
    }
    if !any {
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

/// `file: cannot read: why (fix: ...)`.
pub(super) fn cannot_read(file: &str, e: &ReadError) -> ConfigError {
    ConfigError::new(file, "", format!("cannot read: {e}"), e.fix())
}

/// Bytes read so far: a directory of thousands of files cannot fill memory either.
struct Budget(u64);

impl Budget {
    fn read(&mut self, path: &Path) -> Result<String, ReadError> {
        if self.0 > MAX_TOTAL_BYTES {
            return Err(ReadError::TotalTooLarge);
        }
        let t = read::read_text(path)?;
        self.0 += t.len() as u64;
        Ok(t)
    }
}
