//! `${backends.N.body.PATH}` in a backend's IntegrationUri path: a field of an earlier
//! backend's answer, for `Sequential` aggregates. At load the reference becomes an ordinary
//! path variable of the compiled target (`{backends.N.body.PATH}`), so filling it in per
//! request is the same lookup as a route's `{id}`.

use super::shape::Path;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use std::borrow::Cow;

pub const PREFIX: &str = "${backends.";

/// Everything but RFC 3986's unreserved characters: a value is one path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One reference, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyRef {
    /// The backend (by position in `Backends`) whose answer is read.
    pub backend: usize,
    pub path: Path,
    /// The path variable it became in the compiled target.
    pub var: String,
}

/// The references in `uri`. `Err`: (what is wrong, how to fix it).
pub fn find(uri: &str) -> Result<Vec<BodyRef>, (String, String)> {
    let mut out = Vec::new();
    let mut rest = uri;
    while let Some(start) = rest.find(PREFIX) {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err((
                format!("unclosed {PREFIX} in {uri:?}"),
                "close it: ${backends.0.body.FIELD}".into(),
            ));
        };
        let var = &after[..end];
        let parsed = var
            .strip_prefix("backends.")
            .and_then(|r| r.split_once('.'))
            .and_then(|(n, r)| Some((n.parse::<usize>().ok()?, r.strip_prefix("body.")?)))
            .and_then(|(n, p)| Some((n, Path::parse(p).ok()?)));
        let Some((backend, path)) = parsed else {
            return Err((
                format!("${{{var}}} is not a reference to an earlier answer"),
                "write ${backends.N.body.FIELD}, N the position of an earlier backend (from 0)"
                    .into(),
            ));
        };
        out.push(BodyRef {
            backend,
            path,
            var: var.to_string(),
        });
        rest = &after[end + 1..];
    }
    Ok(out)
}

/// `uri` with each `${backends.` written as a path variable `{backends.`.
pub fn as_path_vars(uri: &str) -> Cow<'_, str> {
    if uri.contains(PREFIX) {
        Cow::Owned(uri.replace(PREFIX, "{backends."))
    } else {
        Cow::Borrowed(uri)
    }
}

/// The text a referenced value stands for in a path, percent-encoded; `None` for what has
/// no one text (a missing field, null, an object or an array).
pub fn segment(v: Option<&Value>) -> Option<String> {
    let text = match v? {
        Value::String(s) => Cow::Borrowed(s.as_str()),
        Value::Number(n) => Cow::Owned(n.to_string()),
        Value::Bool(b) => Cow::Owned(b.to_string()),
        _ => return None,
    };
    Some(utf8_percent_encode(&text, SEGMENT).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_references() {
        let r = find("http://h/orgs/${backends.0.body.org.id}/x").unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].backend, 0);
        assert_eq!(r[0].var, "backends.0.body.org.id");
        assert_eq!(r[0].path.segments(), ["org", "id"]);
        assert!(find("http://h/{id}").unwrap().is_empty());
        for bad in [
            "http://h/${backends.x.body.a}",
            "http://h/${backends.0.head.a}",
            "http://h/${backends.0.body.}",
            "http://h/${backends.0.body.a",
        ] {
            assert!(find(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn references_become_path_variables() {
        assert_eq!(
            as_path_vars("http://h/${backends.1.body.a}"),
            "http://h/{backends.1.body.a}"
        );
    }

    #[test]
    fn values_are_one_encoded_segment() {
        assert_eq!(segment(Some(&json!("a/b c"))).as_deref(), Some("a%2Fb%20c"));
        assert_eq!(segment(Some(&json!(42))).as_deref(), Some("42"));
        assert_eq!(segment(Some(&json!(null))), None);
        assert_eq!(segment(Some(&json!({"a": 1}))), None);
        assert_eq!(segment(None), None);
    }
}
