//! `choose` conditions: the subset of boolean policy expressions apigate evaluates per
//! request, parsed at load into `ConditionConf` (comparisons of a header, query parameter,
//! the client address or the method with a string literal; `ContainsKey`; `!`, `&&`, `||`,
//! parentheses). Anything else is refused with the subset.

use super::expr::{self, Scope};
use crate::config::{ConditionConf, OperandConf};
use std::collections::BTreeMap;

pub const SUPPORTED: &str = "OPERAND == \"literal\", OPERAND != \"literal\", \
context.Request.Headers.ContainsKey(\"Name\"), !, &&, || and parentheses, where OPERAND is \
context.Request.Method, context.Request.IpAddress, \
context.Request.Headers.GetValueOrDefault(\"Name\", \"\"), \
context.Request.Url.Query.GetValueOrDefault(\"name\", \"\") or a variable holding one";

/// Parses a `condition` attribute (`@(...)`).
pub fn parse(
    text: &str,
    scope: &Scope,
    vars: &BTreeMap<String, String>,
) -> Result<ConditionConf, String> {
    let inner = text
        .trim()
        .strip_prefix("@(")
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("{text:?}: a condition is @(...) with {SUPPORTED}"))?;
    or(inner, scope, vars)
}

fn or(s: &str, scope: &Scope, vars: &BTreeMap<String, String>) -> Result<ConditionConf, String> {
    let parts = split_top(s, "||")?;
    if parts.len() == 1 {
        return and(s, scope, vars);
    }
    Ok(ConditionConf::Or(
        parts
            .iter()
            .map(|p| and(p, scope, vars))
            .collect::<Result<_, _>>()?,
    ))
}

fn and(s: &str, scope: &Scope, vars: &BTreeMap<String, String>) -> Result<ConditionConf, String> {
    let parts = split_top(s, "&&")?;
    if parts.len() == 1 {
        return unary(s, scope, vars);
    }
    Ok(ConditionConf::And(
        parts
            .iter()
            .map(|p| unary(p, scope, vars))
            .collect::<Result<_, _>>()?,
    ))
}

fn unary(s: &str, scope: &Scope, vars: &BTreeMap<String, String>) -> Result<ConditionConf, String> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('!').filter(|r| !r.starts_with('=')) {
        return Ok(ConditionConf::Not(Box::new(unary(rest, scope, vars)?)));
    }
    if s.starts_with('(') && s.ends_with(')') && wrapped(s) {
        return or(&s[1..s.len() - 1], scope, vars);
    }
    for (op, negate) in [("==", false), ("!=", true)] {
        let parts = split_top(s, op)?;
        if let [left, right] = parts.as_slice() {
            let (operand, literal) = match (literal(right), literal(left)) {
                (Some(l), _) => (left.trim(), l),
                (None, Some(l)) => (right.trim(), l),
                _ => {
                    return Err(format!(
                        "{s:?}: one side must be a string literal; the subset: {SUPPORTED}"
                    ))
                }
            };
            let eq = ConditionConf::Equals(operand_of(operand, scope, vars)?, literal);
            return Ok(if negate {
                ConditionConf::Not(Box::new(eq))
            } else {
                eq
            });
        }
    }
    if let Some(name) = s
        .strip_prefix("context.Request.Headers.ContainsKey(")
        .and_then(|r| r.strip_suffix(')'))
        .and_then(literal)
    {
        return Ok(ConditionConf::HasHeader(name));
    }
    Err(format!(
        "{s:?} is not a condition apigate evaluates: {SUPPORTED}"
    ))
}

fn operand_of(
    t: &str,
    scope: &Scope,
    vars: &BTreeMap<String, String>,
) -> Result<OperandConf, String> {
    if t == "context.Request.Method" {
        return Ok(OperandConf::Method);
    }
    let not_operand = || format!("{t:?} is not an operand apigate compares: {SUPPORTED}");
    let template = expr::lower(&format!("@({t})"), scope, vars).map_err(|_| not_operand())?;
    let inner = template
        .strip_prefix("${")
        .and_then(|t| t.strip_suffix('}'));
    match inner {
        Some("context.identity.sourceIp") => Ok(OperandConf::ClientIp),
        Some(r) if !r.contains('}') => {
            if let Some(h) = r.strip_prefix("request.header.") {
                return Ok(OperandConf::Header(h.to_string()));
            }
            if let Some(q) = r.strip_prefix("request.querystring.") {
                return Ok(OperandConf::Query(q.to_string()));
            }
            Err(not_operand())
        }
        _ => Err(not_operand()),
    }
}

/// Whether the `(` opening `s` closes at its end.
fn wrapped(s: &str) -> bool {
    let (mut depth, mut in_str) = (0i32, false);
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'(' if !in_str => depth += 1,
            b')' if !in_str => {
                depth -= 1;
                if depth == 0 {
                    return i == b.len() - 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// `s` split at each `sep` outside string literals, parentheses and brackets.
fn split_top<'a>(s: &'a str, sep: &str) -> Result<Vec<&'a str>, String> {
    let b = s.as_bytes();
    let (mut depth, mut in_str, mut start, mut i) = (0i32, false, 0usize, 0usize);
    let mut out = Vec::new();
    while i < b.len() {
        match b[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'(' | b'[' if !in_str => depth += 1,
            b')' | b']' if !in_str => depth -= 1,
            _ if !in_str && depth == 0 && s[i..].starts_with(sep) => {
                out.push(&s[start..i]);
                i += sep.len();
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if in_str || depth != 0 {
        return Err(format!("{s:?}: unbalanced quotes or brackets"));
    }
    out.push(&s[start..]);
    Ok(out)
}

/// The text of a plain string literal.
fn literal(t: &str) -> Option<String> {
    let inner = t.trim().strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('"') && !inner.contains('\\')).then(|| inner.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPE: Scope = Scope { api_path: "a" };

    fn p(s: &str) -> Result<ConditionConf, String> {
        let vars = BTreeMap::from([("role".to_string(), "${request.header.X-Role}".to_string())]);
        parse(s, &SCOPE, &vars)
    }

    #[test]
    fn the_subset_parses() {
        use ConditionConf::*;
        assert_eq!(
            p(r#"@(context.Request.Method == "DELETE" && !(context.Variables["role"] == "admin" || context.Request.Headers.ContainsKey("X-Force")))"#).unwrap(),
            And(vec![
                Equals(OperandConf::Method, "DELETE".into()),
                Not(Box::new(Or(vec![
                    Equals(OperandConf::Header("X-Role".into()), "admin".into()),
                    HasHeader("X-Force".into()),
                ]))),
            ])
        );
        assert_eq!(
            p(r#"@("x" != context.Request.Url.Query.GetValueOrDefault("q", ""))"#).unwrap(),
            Not(Box::new(Equals(OperandConf::Query("q".into()), "x".into())))
        );
        assert_eq!(
            p(r#"@(context.Request.IpAddress == "10.0.0.1")"#).unwrap(),
            Equals(OperandConf::ClientIp, "10.0.0.1".into())
        );
    }

    #[test]
    fn anything_else_is_refused_with_the_subset() {
        for c in [
            r#"@(context.LastError.Source == "configuration")"#,
            r#"@(context.Request.Body != null)"#,
            r#"@(context.Request.Method.StartsWith("P"))"#,
            "context.Request.Method",
        ] {
            let e = p(c).unwrap_err();
            assert!(e.contains("context.Request.Method"), "{c}: {e}");
        }
    }
}
