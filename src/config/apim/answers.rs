//! `return-response` and `mock-response`: the gateway answers itself once the access
//! policies admit the request (a `Rejection::Answer`); `set-status` in `outbound` rewrites
//! the backend's status; `on-error` adds headers to the route's error answers or replaces
//! them.

use super::policies::{at, attr, named, only_attrs, only_children, Env, Lowered};
use super::xml::Element;
use crate::config::{BranchConf, ConditionConf, ConfigError, OnErrorConf, StaticAnswerConf};
use serde_json::Value;

/// `return-response` with literal `set-status`, `set-header` and `set-body`.
pub fn return_response(
    file: &str,
    el: &Element,
    env: &Env,
    out: &mut Lowered,
) -> Result<(), ConfigError> {
    let answer = fixed(file, el, env)?;
    set_answer(file, el, out, answer)
}

/// The statements of `on-error`: literal `set-header`s added to the route's error answers,
/// or a `return-response` given in their place.
pub fn on_error(
    stmts: &[super::policies::Stmt],
    env: &Env,
    out: &mut Lowered,
    errors: &mut Vec<ConfigError>,
) {
    let mut handler = OnErrorConf::default();
    for (file, el) in stmts {
        let r = match el.name.as_str() {
            "set-header" => error_header(file, el, env, &mut handler),
            "return-response" if handler.answer.is_none() => {
                fixed(file, el, env).map(|a| handler.answer = Some(a))
            }
            "return-response" => Err(at(
                file,
                el,
                "a second return-response never runs",
                "keep one",
            )),
            _ => Err(on_error_unsupported(file, el)),
        };
        if let Err(e) = r {
            errors.push(e);
        }
    }
    if !stmts.is_empty() {
        out.on_error = Some(handler);
    }
}

pub fn on_error_unsupported(file: &str, el: &Element) -> ConfigError {
    at(
        file,
        el,
        format!("<{}> in <on-error> is not supported by apigate", el.name),
        "on-error serves base, set-header (literal values) and return-response",
    )
}

fn error_header(
    file: &str,
    el: &Element,
    env: &Env,
    handler: &mut OnErrorConf,
) -> Result<(), ConfigError> {
    only_attrs(file, el, &["name", "exists-action"])?;
    only_children(file, el, &["value"])?;
    match attr(file, el, "exists-action", env)?.as_deref() {
        None | Some("override") | Some("append") => {}
        Some(other) => {
            return Err(at(
                file,
                el,
                format!("exists-action={other:?} in on-error is not supported"),
                "use override or append",
            ))
        }
    }
    let name = attr(file, el, "name", env)?
        .ok_or_else(|| at(file, el, "name is required", "add name=\"X-Error\""))?;
    let values: Vec<String> = el
        .all("value")
        .map(|v| literal(file, v, &v.text, env))
        .collect::<Result<_, _>>()?;
    if values.is_empty() {
        return Err(at(file, el, "no <value>", "add <value>...</value>"));
    }
    handler.headers.push((name, values.join(",")));
    Ok(())
}

/// A fixed answer from `return-response`'s children.
fn fixed(file: &str, el: &Element, env: &Env) -> Result<StaticAnswerConf, ConfigError> {
    only_attrs(file, el, &[])?;
    only_children(file, el, &["set-status", "set-header", "set-body"])?;
    let mut answer = StaticAnswerConf {
        status: 200,
        ..StaticAnswerConf::default()
    };
    for c in &el.children {
        match c.name.as_str() {
            "set-status" => answer.status = status(file, c, env)?,
            "set-header" => {
                only_attrs(file, c, &["name", "exists-action"])?;
                only_children(file, c, &["value"])?;
                let name = attr(file, c, "name", env)?
                    .ok_or_else(|| at(file, c, "name is required", "add name=\"Content-Type\""))?;
                for v in c.all("value") {
                    answer
                        .headers
                        .push((name.clone(), literal(file, v, &v.text, env)?));
                }
            }
            _ => {
                only_attrs(file, c, &[])?;
                only_children(file, c, &[])?;
                answer.body = literal(file, c, &c.text, env)?;
            }
        }
    }
    Ok(answer)
}

/// `mock-response`: the example the specification gives for the status and content type
/// (an empty body when it gives none).
pub fn mock_response(
    file: &str,
    el: &Element,
    env: &Env,
    out: &mut Lowered,
) -> Result<(), ConfigError> {
    only_attrs(file, el, &["status-code", "content-type"])?;
    only_children(file, el, &[])?;
    let code = match attr(file, el, "status-code", env)? {
        None => 200,
        Some(c) => parse_status(file, el, &c)?,
    };
    let content_type =
        attr(file, el, "content-type", env)?.unwrap_or_else(|| "application/json".into());
    let media = env
        .operation
        .and_then(|op| op.get("responses"))
        .and_then(|r| r.get(code.to_string()))
        .and_then(|r| r.get("content"))
        .and_then(|c| c.get(&content_type));
    let example = media.and_then(|m| {
        m.get("example").or_else(|| {
            m.get("examples")
                .and_then(Value::as_object)
                .and_then(|e| e.values().next())
                .and_then(|e| e.get("value"))
        })
    });
    let body = match example {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    let answer = StaticAnswerConf {
        status: code,
        headers: vec![("Content-Type".into(), content_type)],
        body,
    };
    set_answer(file, el, out, answer)
}

/// `set-status` in `outbound`: every backend status becomes `code`.
pub fn outbound_status(
    file: &str,
    el: &Element,
    env: &Env,
    out: &mut Lowered,
) -> Result<(), ConfigError> {
    let code = status(file, el, env)?;
    out.response
        .insert("overwrite:statuscode".into(), code.to_string());
    Ok(())
}

fn set_answer(
    file: &str,
    el: &Element,
    out: &mut Lowered,
    answer: StaticAnswerConf,
) -> Result<(), ConfigError> {
    if out.answer.is_some() {
        return Err(at(
            file,
            el,
            "the request is already answered by an earlier statement",
            "keep one return-response or mock-response",
        ));
    }
    out.answer = Some(answer);
    Ok(())
}

/// `<set-status code="..." reason="..."/>`: the reason phrase is HTTP's own for the code.
fn status(file: &str, el: &Element, env: &Env) -> Result<u16, ConfigError> {
    only_attrs(file, el, &["code", "reason"])?;
    only_children(file, el, &[])?;
    let code = attr(file, el, "code", env)?
        .ok_or_else(|| at(file, el, "code is required", "add code=\"200\""))?;
    parse_status(file, el, &code)
}

fn parse_status(file: &str, el: &Element, code: &str) -> Result<u16, ConfigError> {
    match code.parse::<u16>() {
        Ok(c @ 200..=599) => Ok(c),
        _ => Err(at(
            file,
            el,
            format!("status {code:?} is not served"),
            "use a literal status from 200 to 599",
        )),
    }
}

/// A literal value (named values resolved); an expression is refused.
fn literal(file: &str, el: &Element, text: &str, env: &Env) -> Result<String, ConfigError> {
    let v = named(file, el, text, env)?;
    if v.trim_start().starts_with('@') {
        return Err(at(
            file,
            el,
            "a fixed answer takes literal values here",
            "write the value itself",
        ));
    }
    Ok(v)
}

/// `choose` in inbound, served when each `when` (and the last, optional `otherwise`) holds
/// one `return-response` or nothing: the first branch whose condition holds answers, or
/// lets the request go on.
pub fn choose(file: &str, el: &Element, env: &Env, out: &mut Lowered) -> Result<(), ConfigError> {
    only_attrs(file, el, &[])?;
    only_children(file, el, &["when", "otherwise"])?;
    let mut branches = Vec::new();
    for (i, c) in el.children.iter().enumerate() {
        let condition = if c.name == "when" {
            only_attrs(file, c, &["condition"])?;
            let raw = c
                .attr("condition")
                .ok_or_else(|| at(file, c, "condition is required", "add condition=\"@(...)\""))?;
            let resolved = named(file, c, raw, env)?;
            super::cond::parse(&resolved, &env.scope, &out.variables)
                .map_err(|e| at(file, c, e, "use the condition subset apigate evaluates"))?
        } else {
            if i + 1 != el.children.len() {
                return Err(at(
                    file,
                    c,
                    "<otherwise> must be the last branch",
                    "move it last",
                ));
            }
            only_attrs(file, c, &[])?;
            ConditionConf::True
        };
        if let Some(other) = c.children.iter().find(|s| s.name != "return-response") {
            return Err(at(
                file,
                other,
                format!("<{}> inside <{}> is not supported", other.name, c.name),
                "apigate serves choose branches holding one return-response, or nothing",
            ));
        }
        let answer = match c.children.as_slice() {
            [] => None,
            [r] => Some(fixed(file, r, env)?),
            [_, second, ..] => {
                return Err(at(
                    file,
                    second,
                    "a second return-response never runs",
                    "keep one",
                ))
            }
        };
        branches.push(BranchConf { condition, answer });
    }
    out.choices.push(branches);
    Ok(())
}
