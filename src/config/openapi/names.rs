//! Names: JSON pointers into the document (RFC 6901) and stable resource ids derived from
//! it, so that errors and metrics read like the document.

use std::collections::HashSet;

/// One reference token of a JSON pointer: `~` as `~0`, `/` as `~1` (RFC 6901 section 3).
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The pointer made of `tokens`: `["paths", "/pets", "get"]` is `/paths/~1pets/get`.
pub fn pointer<'a>(tokens: impl IntoIterator<Item = &'a str>) -> String {
    tokens
        .into_iter()
        .map(|t| format!("/{}", escape(t)))
        .collect()
}

/// A route's id: its `operationId` where it has one, else method and path
/// (`get_pets_petId`), made usable as a file stem and unique within the document.
pub fn route_id(
    operation_id: Option<&str>,
    method: &str,
    path: &str,
    taken: &mut HashSet<String>,
) -> String {
    let base = match operation_id.map(sanitize).filter(|s| !s.is_empty()) {
        Some(s) => s,
        None if path == "$default" || path == "/$default" => "default".to_string(),
        None => sanitize(&format!("{}{path}", method.to_lowercase())),
    };
    unique(base, taken)
}

/// `base`, or `base_2`, `base_3`, ... whichever is not taken yet; marks it taken.
pub fn unique(base: String, taken: &mut HashSet<String>) -> String {
    let mut id = base.clone();
    let mut n = 1;
    while !taken.insert(id.clone()) {
        n += 1;
        id = format!("{base}_{n}");
    }
    id
}

/// Letters, digits, `-`, `_` and `.` kept; runs of anything else become one `_`.
pub fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}
