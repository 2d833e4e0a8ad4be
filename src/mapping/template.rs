//! Value templates: static text mixed with `$request.*`, `$context.*`, `$stageVariables.*` and
//! `$response.*` reads (each also as `${...}`), parsed once at config load.

use super::context::{self, ContextVar, Scope};
use super::vars::Vars;
use http::header::{HeaderName, HeaderValue};
use std::collections::BTreeMap;

/// A value a template can read.
#[derive(Debug, Clone, PartialEq)]
pub enum Var {
    RequestHeader(HeaderName),
    RequestQuery(String),
    RequestPath,
    RequestPathParam(String),
    /// A `$context` variable of [`Scope::MAPPING`].
    Context(ContextVar),
    ResponseHeader(HeaderName),
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Var(Var),
}

/// A parsed value expression.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Template {
    parts: Vec<Part>,
    /// A literal template's text as a header value, made at load (a static `Api-Version:
    /// v1`): no evaluation, validation or copy per request. `None` when the template reads
    /// variables, or when its text is empty or no valid header value.
    literal_header: Option<HeaderValue>,
}

/// Where a template may be used: response variables only make sense on the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

/// A piece of a value expression: text, or the inside of `$x.y` / `${x.y}`.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    Text(&'a str),
    Expr(&'a str),
}

/// Splits a value into text and expressions. A lone `$` (or `$word` that names no
/// source) is text.
fn tokens(text: &str) -> Result<Vec<Token<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        if pos > 0 {
            out.push(Token::Text(&rest[..pos]));
        }
        let after = &rest[pos + 1..];
        let (expr, next) = if let Some(inner) = after.strip_prefix('{') {
            let end = inner
                .find('}')
                .ok_or_else(|| format!("unclosed '${{' in {text:?}"))?;
            (&inner[..end], &inner[end + 1..])
        } else {
            let end = match after.strip_prefix("context.") {
                // Where a `$context` name ends is the vocabulary's rule, shared with access logs.
                Some(name) => "context.".len() + context::lex(name).len(),
                None => after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
                    .unwrap_or(after.len()),
            };
            let expr = after[..end].trim_end_matches('.');
            (expr, &after[expr.len()..])
        };
        let is_var = ["request.", "context.", "stageVariables.", "response."]
            .iter()
            .any(|p| expr.starts_with(p));
        if is_var {
            out.push(Token::Expr(expr));
            rest = next;
        } else {
            out.push(Token::Text("$"));
            rest = after;
        }
    }
    if !rest.is_empty() {
        out.push(Token::Text(rest));
    }
    Ok(out)
}

/// A name a value reads that something else must define.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `$stageVariables.NAME`: each stage serving the mapping must define it.
    StageVariable(String),
    /// `$request.path.NAME`: each route using the mapping must have `{NAME}`.
    PathVariable(String),
}

/// The stage and path variables `value` reads, for the checks at load (values that do
/// not parse are reported by `compile`).
pub fn references(value: &str) -> Vec<Reference> {
    tokens(value)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| match t {
            Token::Expr(e) => {
                if let Some(n) = e.strip_prefix("stageVariables.") {
                    Some(Reference::StageVariable(n.to_string()))
                } else {
                    e.strip_prefix("request.path.")
                        .map(|n| Reference::PathVariable(n.to_string()))
                }
            }
            Token::Text(_) => None,
        })
        .collect()
}

/// Every reference in `RequestParameters` (`key`) or `ResponseParameters` (`status.key`),
/// with the field it sits in. The values of `remove:` keys are never read.
pub fn mapping_references<'m>(
    entries: impl IntoIterator<Item = (String, &'m String, &'m String)>,
) -> Vec<(String, Reference)> {
    entries
        .into_iter()
        .filter(|(_, key, _)| !key.starts_with("remove:"))
        .flat_map(|(field, _, value)| {
            references(value)
                .into_iter()
                .map(move |r| (field.clone(), r))
        })
        .collect()
}

impl Template {
    /// Parses `text`. Stage variables are substituted now (they are fixed per stage; one
    /// a stage does not define is reported by the stage checks and reads as "").
    pub fn parse(
        text: &str,
        side: Side,
        stage_vars: &BTreeMap<String, String>,
    ) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        for token in tokens(text)? {
            match token {
                Token::Text(t) => lit.push_str(t),
                Token::Expr(expr) => {
                    if let Some(name) = expr.strip_prefix("stageVariables.") {
                        lit.push_str(stage_vars.get(name).map(String::as_str).unwrap_or(""));
                    } else {
                        if !lit.is_empty() {
                            parts.push(Part::Lit(std::mem::take(&mut lit)));
                        }
                        parts.push(Part::Var(parse_var(expr, side)?));
                    }
                }
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        let mut template = Template {
            parts,
            literal_header: None,
        };
        template.literal_header = template
            .as_literal()
            .filter(|s| !s.is_empty())
            .and_then(|s| HeaderValue::from_str(s).ok());
        Ok(template)
    }

    /// The value for a header: `None` when it comes out empty or is no valid header value
    /// (`apply_header_value` then adds nothing or removes the header).
    pub fn header_value(&self, vars: &Vars<'_>) -> Option<HeaderValue> {
        if self.as_literal().is_some() {
            return self.literal_header.clone();
        }
        let text = self.eval(vars, false);
        if text.is_empty() {
            return None;
        }
        // The evaluated text becomes the value's bytes, not a copy of them.
        HeaderValue::from_maybe_shared(bytes::Bytes::from(text.into_bytes())).ok()
    }

    /// The literal value when the template has no variables.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }

    pub fn uses(&self, pred: impl Fn(&Var) -> bool) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(v) if pred(v)))
    }

    /// Appends the value to `out`. With `for_path`, path values stay percent-encoded so
    /// they can be placed back into a URL path unchanged.
    pub fn eval_into(&self, vars: &Vars<'_>, for_path: bool, out: &mut String) {
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v) => vars.append(v, for_path, out),
            }
        }
    }

    /// Appends the value as a backend path (`overwrite:path`). The template's own text
    /// (stage variables included: the operator wrote them) keeps its `/` and escapes; the
    /// request's path values (`$request.path`, `$request.path.NAME`, `$context.path`) are
    /// already canonical and go in encoded, their `/` separating segments as in the request;
    /// every other value (query, header, claim, ...) is percent-encoded whole, `/`, `\` and
    /// `%` included, so a client's value is only ever text inside a segment. The caller
    /// canonicalises the result (`request_path::canonical`), which refuses an encoded `/` or
    /// `\` and any dot segment, however the values spelled it.
    pub fn eval_path_into(&self, vars: &Vars<'_>, out: &mut String) {
        let mut value = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => encode(s, |b| matches!(b, b'/' | b'%'), out),
                Part::Var(v @ (Var::RequestPath | Var::RequestPathParam(_))) => {
                    vars.append(v, true, out)
                }
                Part::Var(v @ Var::Context(ContextVar::Path)) => vars.append(v, true, out),
                Part::Var(v) => {
                    value.clear();
                    vars.append(v, false, &mut value);
                    encode(&value, |_| false, out);
                }
            }
        }
    }

    pub fn eval(&self, vars: &Vars<'_>, for_path: bool) -> String {
        let mut s = String::new();
        self.eval_into(vars, for_path, &mut s);
        s
    }
}

/// Appends `text` with every byte that is no plain path character (nor `keep`) escaped.
fn encode(text: &str, keep: impl Fn(u8) -> bool, out: &mut String) {
    for &b in text.as_bytes() {
        if crate::request_path::is_plain(b) || keep(b) {
            out.push(char::from(b));
        } else {
            crate::request_path::push_escape(b, out);
        }
    }
}

fn parse_var(expr: &str, side: Side) -> Result<Var, String> {
    let header = |name: &str| {
        HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a valid header name"))
    };
    if let Some(r) = expr.strip_prefix("request.") {
        if let Some(h) = r.strip_prefix("header.") {
            return Ok(Var::RequestHeader(header(h)?));
        }
        if let Some(q) = r.strip_prefix("querystring.") {
            return Ok(Var::RequestQuery(q.to_string()));
        }
        if r == "path" {
            return Ok(Var::RequestPath);
        }
        if let Some(p) = r.strip_prefix("path.") {
            return Ok(Var::RequestPathParam(p.to_string()));
        }
        if r == "body" || r.starts_with("body.") {
            return Err(
                "$request.body is not supported: apigate streams bodies instead of buffering them"
                    .into(),
            );
        }
        return Err(format!("unknown request source ${expr}; use $request.header.X, $request.querystring.x, $request.path or $request.path.NAME"));
    }
    if let Some(r) = expr.strip_prefix("response.") {
        if side == Side::Request {
            return Err(format!("${expr} is only available in ResponseParameters"));
        }
        if let Some(h) = r.strip_prefix("header.") {
            return Ok(Var::ResponseHeader(header(h)?));
        }
        return Err(format!(
            "unknown response source ${expr}; use $response.header.X"
        ));
    }
    if let Some(c) = expr.strip_prefix("context.") {
        return Scope::MAPPING.parse(c).map(Var::Context).ok_or_else(|| {
            format!(
                "unknown context variable ${expr}; supported: {}",
                Scope::MAPPING.supported()
            )
        });
    }
    Err(format!("unknown source ${expr}"))
}
