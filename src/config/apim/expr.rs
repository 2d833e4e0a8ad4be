//! The subset of APIM policy expressions apigate serves, lowered at load into the value
//! templates of `crate::mapping` (`${request.header.X}`), so nothing is evaluated per
//! request beyond what every mapping already does. Anything outside the subset is refused
//! with the list of what is supported: never guessed at.

use std::collections::BTreeMap;

/// What `@(...)` may hold, for messages.
pub const SUPPORTED: &str = "string literals joined with +, \
context.Request.Headers.GetValueOrDefault(\"Name\", \"\"), \
context.Request.Url.Query.GetValueOrDefault(\"name\", \"\"), \
context.Request.MatchedParameters[\"name\"], context.Request.IpAddress, \
context.Request.Url.Path, context.RequestId, context.Api.Path, \
context.Variables[\"name\"] (set by set-variable)";

/// What an expression may read besides the request: the API it is served under.
pub struct Scope<'a> {
    /// The API's `path` (`users`).
    pub api_path: &'a str,
}

/// Lowers a policy value (a literal, or a whole `@(...)` expression) into a mapping
/// template. `Err` says what is not supported.
pub fn lower(
    value: &str,
    scope: &Scope,
    vars: &BTreeMap<String, String>,
) -> Result<String, String> {
    let v = value.trim();
    if v.starts_with("@{") {
        return Err(format!(
            "multi-statement expressions (@{{...}}) are not supported; write @(...) with {SUPPORTED}"
        ));
    }
    let Some(inner) = v.strip_prefix("@(").and_then(|s| s.strip_suffix(')')) else {
        if v.starts_with('@') {
            return Err(format!(
                "{v:?} is not an expression apigate reads: write @(...) with {SUPPORTED}"
            ));
        }
        // A literal: a `$` would read as a mapping variable, so refuse it rather than
        // change its meaning.
        if value.contains('$') {
            return Err(format!(
                "{value:?}: a literal holding '$' is not supported (apigate would read it as a variable)"
            ));
        }
        return Ok(value.to_string());
    };
    let mut out = String::new();
    for term in split_plus(inner)? {
        out.push_str(&term_template(term.trim(), scope, vars)?);
    }
    Ok(out)
}

/// Splits `a + "b" + c` at the `+` signs outside string literals and brackets.
fn split_plus(s: &str) -> Result<Vec<&str>, String> {
    let mut terms = Vec::new();
    let (mut depth, mut in_str, mut start) = (0i32, false, 0usize);
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'(' | b'[' if !in_str => depth += 1,
            b')' | b']' if !in_str => depth -= 1,
            b'+' if !in_str && depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if in_str || depth != 0 {
        return Err(format!("{s:?}: unbalanced quotes or brackets"));
    }
    terms.push(&s[start..]);
    Ok(terms)
}

/// One term of a concatenation, as template text.
fn term_template(
    t: &str,
    scope: &Scope,
    vars: &BTreeMap<String, String>,
) -> Result<String, String> {
    let t = unwrap_term(t);
    if let Some(name) = variable_name(t) {
        return vars.get(&name).cloned().ok_or_else(|| {
            format!(
                "context.Variables[{name:?}] is not set by a set-variable before this statement"
            )
        });
    }
    if let Some(lit) = string_literal(t) {
        if lit.contains('$') {
            return Err(format!("{t}: a literal holding '$' is not supported"));
        }
        return Ok(lit);
    }
    let simple = match t {
        "context.Request.IpAddress" => Some("${context.identity.sourceIp}".to_string()),
        "context.Request.Url.Path" => Some("${request.path}".to_string()),
        "context.RequestId" | "context.RequestId.ToString()" => {
            Some("${context.requestId}".to_string())
        }
        "context.Api.Path" => Some(scope.api_path.to_string()),
        _ => None,
    };
    if let Some(s) = simple {
        return Ok(s);
    }
    if let Some(args) = call(t, "context.Request.Headers.GetValueOrDefault") {
        let name = name_with_empty_default(t, &args)?;
        return Ok(format!("${{request.header.{name}}}"));
    }
    if let Some(args) = call(t, "context.Request.Url.Query.GetValueOrDefault") {
        let name = name_with_empty_default(t, &args)?;
        return Ok(format!("${{request.querystring.{name}}}"));
    }
    if let Some(rest) = t.strip_prefix("context.Request.MatchedParameters[") {
        if let Some(name) = rest.strip_suffix(']').and_then(string_literal) {
            return Ok(format!("${{request.path.{name}}}"));
        }
    }
    Err(format!(
        "{t:?} is not in the supported expression subset: {SUPPORTED}"
    ))
}

/// `t` without `(string)` casts and parentheses around the whole term (`((string)x)`).
fn unwrap_term(mut t: &str) -> &str {
    loop {
        t = t.trim();
        if let Some(rest) = t.strip_prefix("(string)") {
            t = rest;
        } else if t.starts_with('(') && t.ends_with(')') && closes_at_end(t) {
            t = &t[1..t.len() - 1];
        } else {
            return t;
        }
    }
}

/// Whether the `(` opening `t` is closed by its last character (strings skipped).
fn closes_at_end(t: &str) -> bool {
    let (mut depth, mut in_str) = (0i32, false);
    for (i, c) in t.char_indices() {
        match c {
            '"' => in_str = !in_str,
            '(' if !in_str => depth += 1,
            ')' if !in_str => {
                depth -= 1;
                if depth == 0 {
                    return i == t.len() - 1;
                }
            }
            _ => {}
        }
    }
    false
}

/// `name` when `t` reads a variable: `context.Variables["name"]`, with a `(string)` cast,
/// or `context.Variables.GetValueOrDefault<string>("name")`.
fn variable_name(t: &str) -> Option<String> {
    let t = t.strip_prefix("(string)").unwrap_or(t).trim();
    if let Some(rest) = t.strip_prefix("context.Variables[") {
        return rest.strip_suffix(']').and_then(string_literal);
    }
    for f in [
        "context.Variables.GetValueOrDefault<string>",
        "context.Variables.GetValueOrDefault",
    ] {
        if let Some(args) = call(t, f) {
            if let [name] = args.as_slice() {
                return string_literal(name);
            }
        }
    }
    None
}

/// The arguments of `func(...)` when `t` is exactly such a call.
fn call<'a>(t: &'a str, func: &str) -> Option<Vec<&'a str>> {
    let inner = t.strip_prefix(func)?.trim_start().strip_prefix('(')?;
    let inner = inner.strip_suffix(')')?;
    Some(inner.split(',').map(str::trim).collect())
}

/// `("Name")` or `("Name", "")`: a missing value reads as empty, as a mapping does.
fn name_with_empty_default(t: &str, args: &[&str]) -> Result<String, String> {
    let name = args.first().and_then(|a| string_literal(a));
    let default_ok = match args.get(1) {
        None => true,
        Some(d) => string_literal(d).is_some_and(|d| d.is_empty()),
    };
    match name {
        Some(n) if default_ok && args.len() <= 2 && valid_name(&n) => Ok(n),
        _ => Err(format!(
            "{t}: only a literal name with an empty default (\"\") is supported; the subset: {SUPPORTED}"
        )),
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// The text of a C# string literal without escapes (`"abc"`).
fn string_literal(t: &str) -> Option<String> {
    let inner = t.trim().strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('"') || inner.contains('\\') {
        return None;
    }
    Some(inner.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPE: Scope = Scope { api_path: "users" };

    #[test]
    fn literals_pass_through() {
        assert_eq!(lower("v1", &SCOPE, &BTreeMap::new()).unwrap(), "v1");
        assert!(lower("cost $5", &SCOPE, &BTreeMap::new()).is_err());
    }

    #[test]
    fn the_subset_lowers_to_templates() {
        let t = lower(
            r#"@("Bearer " + context.Request.Headers.GetValueOrDefault("X-Token", ""))"#,
            &SCOPE,
            &BTreeMap::new(),
        );
        assert_eq!(t.unwrap(), "Bearer ${request.header.X-Token}");
        assert_eq!(
            lower("@(context.Request.IpAddress)", &SCOPE, &BTreeMap::new()).unwrap(),
            "${context.identity.sourceIp}"
        );
        assert_eq!(
            lower(
                r#"@(context.Request.MatchedParameters["id"])"#,
                &SCOPE,
                &BTreeMap::new()
            )
            .unwrap(),
            "${request.path.id}"
        );
        assert_eq!(
            lower(
                r#"@("/" + context.Api.Path + context.Request.Url.Path)"#,
                &SCOPE,
                &BTreeMap::new()
            )
            .unwrap(),
            "/users${request.path}"
        );
        assert_eq!(
            lower(
                r#"@(context.Request.Url.Query.GetValueOrDefault("q"))"#,
                &SCOPE,
                &BTreeMap::new()
            )
            .unwrap(),
            "${request.querystring.q}"
        );
    }

    #[test]
    fn variables_read_what_set_variable_lowered() {
        let vars = BTreeMap::from([("who".to_string(), "${request.header.X-User}".to_string())]);
        for e in [
            r#"@("u:" + context.Variables["who"])"#,
            r#"@("u:" + (string)context.Variables["who"])"#,
            r#"@("u:" + context.Variables.GetValueOrDefault<string>("who"))"#,
        ] {
            assert_eq!(
                lower(e, &SCOPE, &vars).unwrap(),
                "u:${request.header.X-User}",
                "{e}"
            );
        }
        assert_eq!(
            lower(
                r#"@(((string)context.Request.MatchedParameters["id"]))"#,
                &SCOPE,
                &vars
            )
            .unwrap(),
            "${request.path.id}"
        );
        assert!(lower(r#"@((a) + (b))"#, &SCOPE, &vars).is_err());
        let err = lower(r#"@(context.Variables["nope"])"#, &SCOPE, &vars).unwrap_err();
        assert!(err.contains("not set by a set-variable"), "{err}");
    }

    #[test]
    fn anything_else_is_refused_with_the_subset() {
        for e in [
            "@{ return 1; }",
            "@(DateTime.UtcNow.ToString())",
            r#"@(context.Request.Headers.GetValueOrDefault("A", "x"))"#,
            "@context.Request.IpAddress",
        ] {
            let err = lower(e, &SCOPE, &BTreeMap::new()).unwrap_err();
            assert!(err.contains("context.Request.IpAddress"), "{e}: {err}");
        }
        assert!(lower(r#"@("a" + "b"#, &SCOPE, &BTreeMap::new()).is_err());
    }
}
