//! Compiled `RequestParameters` / `ResponseParameters`: each `"action:target": "value"` entry
//! becomes an operation at config load (reserved headers and bad keys are config errors), and
//! `apply_header` is the one way a mapped value reaches a request or response header.

use super::template::{Side, Template};
use crate::config::{ConfigError, ConfigErrors};
use http::header::HeaderName;
use pingora_http::{RequestHeader, ResponseHeader};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Append,
    Overwrite,
    Remove,
}

/// A header name as configured (case kept for HTTP/1 backends) and validated.
#[derive(Debug, Clone)]
pub struct Header {
    /// As the operator wrote it (Pingora keeps header case); `Bytes` so that each request
    /// clones a reference count, not the text.
    pub spelled: bytes::Bytes,
    pub name: HeaderName,
}

#[derive(Debug, Clone)]
pub enum RequestOp {
    Header(Action, Header, Template),
    Query(Action, String, Template),
    Path(Template),
}

#[derive(Debug, Clone)]
pub enum ResponseOp {
    Header(Action, Header, Template),
    Status(Template),
}

pub use crate::config::reserved::{is_reserved_header, reserved_header};

fn parse_key(key: &str) -> Result<(Action, &str), String> {
    let (action, target) = key.split_once(':').ok_or(
        "expected append|overwrite|remove:header.NAME, ...:querystring.NAME or overwrite:path",
    )?;
    let action = match action {
        "append" => Action::Append,
        "overwrite" => Action::Overwrite,
        "remove" => Action::Remove,
        other => {
            return Err(format!(
                "unknown action {other:?}; use append, overwrite or remove"
            ))
        }
    };
    Ok((action, target))
}

/// The config error for mapping a reserved header, if `key` does: the gateway or HTTP
/// itself owns these, so the fix is another name.
fn reserved_header_error(file: &str, at: &str, key: &str) -> Option<ConfigError> {
    let name = key.split_once(':')?.1.strip_prefix("header.")?;
    let owner = reserved_header(name)?;
    let base = name
        .strip_prefix("x-")
        .or_else(|| name.strip_prefix("X-"))
        .unwrap_or(name);
    Some(ConfigError::new(
        file,
        at,
        format!("header {name:?} is reserved: {}", owner.explain()),
        format!("remove it, or map to another header name such as X-App-{base}"),
    ))
}

/// The config error for a header value whose static text holds a control character: CR,
/// LF, NUL and the rest can never be sent in a field value (RFC 9110 5.5 allows only
/// visible characters, SP and HTAB), so the header would be dropped on every request. Said
/// at load, not discovered in production. (Stage variable values are checked per stage.)
fn header_value_error(file: &str, at: &str, key: &str, value: &str) -> Option<ConfigError> {
    let (action, target) = key.split_once(':')?;
    if action == "remove" || !target.starts_with("header.") {
        return None;
    }
    let c = value.chars().find(|c| c.is_control() && *c != '\t')?;
    Some(ConfigError::new(
        file,
        at,
        format!(
            "the value holds the control character {c:?}, which a header value cannot carry (RFC 9110 section 5.5)"
        ),
        "remove line breaks and other control characters from the value",
    ))
}

fn header_target(target: &str) -> Result<Option<Header>, String> {
    let Some(name) = target.strip_prefix("header.") else {
        return Ok(None);
    };
    if is_reserved_header(name) {
        return Err(format!("header {name:?} is reserved and cannot be mapped"));
    }
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    Ok(Some(Header {
        spelled: bytes::Bytes::copy_from_slice(name.as_bytes()),
        name: parsed,
    }))
}

/// Compiles one mapping object (`"action:target": "value"` entries): reserved headers and
/// malformed keys or values are reported at `{field}.{key}`; `make` turns the parsed action,
/// target and value into the side's operation, or says why the target is wrong.
fn compile_entries<Op>(
    file: &str,
    field: &str,
    entries: &BTreeMap<String, String>,
    side: Side,
    stage_vars: &BTreeMap<String, String>,
    errors: &mut ConfigErrors,
    make: impl Fn(Action, &str, Template) -> Result<Op, String>,
) -> Vec<Op> {
    let mut ops = Vec::new();
    for (key, value) in entries {
        let at = format!("{field}.{key}");
        if let Some(e) = reserved_header_error(file, &at, key) {
            errors.push(e);
            continue;
        }
        if let Some(e) = header_value_error(file, &at, key, value) {
            errors.push(e);
            continue;
        }
        let op = parse_key(key).and_then(|(action, target)| {
            let template = if action == Action::Remove {
                Template::default()
            } else {
                Template::parse(value, side, stage_vars)?
            };
            make(action, target, template)
        });
        match op {
            Ok(op) => ops.push(op),
            Err(e) => errors.push(ConfigError::new(
                file,
                at,
                e,
                "see GATEWAY.md section 5 for the mapping syntax",
            )),
        }
    }
    ops
}

/// Compiled `RequestParameters`.
#[derive(Debug, Clone, Default)]
pub struct RequestMapping {
    pub ops: Vec<RequestOp>,
}

impl RequestMapping {
    pub fn compile(
        file: &str,
        field: &str,
        map: &BTreeMap<String, String>,
        stage_vars: &BTreeMap<String, String>,
        errors: &mut ConfigErrors,
    ) -> RequestMapping {
        let ops = compile_entries(
            file,
            field,
            map,
            Side::Request,
            stage_vars,
            errors,
            |action, target, template| {
                if let Some(h) = header_target(target)? {
                    return Ok(RequestOp::Header(action, h, template));
                }
                if let Some(q) = target.strip_prefix("querystring.") {
                    if q.is_empty() {
                        return Err("querystring needs a name".into());
                    }
                    return Ok(RequestOp::Query(action, q.to_string(), template));
                }
                if target == "path" {
                    if action != Action::Overwrite {
                        return Err("the path can only be overwritten (overwrite:path)".into());
                    }
                    return Ok(RequestOp::Path(template));
                }
                Err(format!(
                    "unknown target {target:?}; use header.NAME, querystring.NAME or path"
                ))
            },
        );
        RequestMapping { ops }
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn touches_query(&self) -> bool {
        self.ops.iter().any(|o| matches!(o, RequestOp::Query(..)))
    }
}

/// Compiled `ResponseParameters`, keyed by the backend's status code.
#[derive(Debug, Clone, Default)]
pub struct ResponseMapping {
    by_status: Vec<(u16, Vec<ResponseOp>)>,
}

impl ResponseMapping {
    pub fn compile(
        file: &str,
        field: &str,
        map: &BTreeMap<String, BTreeMap<String, String>>,
        stage_vars: &BTreeMap<String, String>,
        errors: &mut ConfigErrors,
    ) -> ResponseMapping {
        let mut by_status = Vec::new();
        for (status, entries) in map {
            let code = match status.parse::<u16>() {
                Ok(c) if (200..=599).contains(&c) => c,
                _ => {
                    errors.push(ConfigError::new(
                        file,
                        format!("{field}.{status}"),
                        "response mappings are keyed by the backend status code",
                        "use a status code from \"200\" to \"599\"",
                    ));
                    continue;
                }
            };
            let ops = compile_entries(
                file,
                &format!("{field}.{status}"),
                entries,
                Side::Response,
                stage_vars,
                errors,
                |action, target, template| {
                    if target == "statuscode" {
                        if action != Action::Overwrite {
                            return Err(
                                "the status code can only be overwritten (overwrite:statuscode)"
                                    .into(),
                            );
                        }
                        if let Some(lit) = template.as_literal() {
                            match lit.parse::<u16>() {
                                Ok(c) if VALID_STATUS.contains(&c) => {}
                                _ => {
                                    return Err(format!(
                                        "{lit:?} is not a final status code (200-599)"
                                    ))
                                }
                            }
                        }
                        return Ok(ResponseOp::Status(template));
                    }
                    if let Some(h) = header_target(target)? {
                        return Ok(ResponseOp::Header(action, h, template));
                    }
                    Err(format!(
                        "unknown target {target:?}; use header.NAME or statuscode"
                    ))
                },
            );
            by_status.push((code, ops));
        }
        ResponseMapping { by_status }
    }

    pub fn for_status(&self, status: u16) -> &[ResponseOp] {
        self.by_status
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, ops)| ops.as_slice())
            .unwrap_or(&[])
    }

    pub fn is_empty(&self) -> bool {
        self.by_status.is_empty()
    }
}

/// Request and response headers receive mapped values the same way.
pub trait HeaderSink {
    fn set(&mut self, name: bytes::Bytes, value: http::HeaderValue) -> pingora_error::Result<()>;
    fn add(&mut self, name: bytes::Bytes, value: http::HeaderValue) -> pingora_error::Result<()>;
    fn unset(&mut self, name: &HeaderName);
}

/// Statuses `overwrite:statuscode` may produce: a 1xx would not end the exchange.
pub const VALID_STATUS: std::ops::RangeInclusive<u16> = 200..=599;

macro_rules! header_sink {
    ($t:ty) => {
        impl HeaderSink for $t {
            fn set(
                &mut self,
                name: bytes::Bytes,
                value: http::HeaderValue,
            ) -> pingora_error::Result<()> {
                self.insert_header(name, value)
            }
            fn add(
                &mut self,
                name: bytes::Bytes,
                value: http::HeaderValue,
            ) -> pingora_error::Result<()> {
                self.append_header(name, value).map(|_| ())
            }
            fn unset(&mut self, name: &HeaderName) {
                self.remove_header(name);
            }
        }
    };
}
header_sink!(RequestHeader);
header_sink!(ResponseHeader);

/// Applies one header operation. An `append` whose value comes out empty (an absent source
/// header or claim) adds nothing. An `overwrite` always replaces: when its value is empty or
/// not a valid header value the header is removed, so a client can never slip its own
/// `X-User` past a mapping meant to set it from a claim the token lacks.
pub fn apply_header(
    sink: &mut impl HeaderSink,
    action: Action,
    header: &Header,
    value: &str,
) -> pingora_error::Result<()> {
    let valid = match value {
        "" => None,
        v => http::HeaderValue::from_str(v).ok(),
    };
    apply_header_value(sink, action, header, valid)
}

/// [`apply_header`] with the value already made (`None`: empty or invalid), as
/// [`Template::header_value`](super::Template::header_value) makes it.
pub fn apply_header_value(
    sink: &mut impl HeaderSink,
    action: Action,
    header: &Header,
    value: Option<http::HeaderValue>,
) -> pingora_error::Result<()> {
    match (action, value) {
        (Action::Remove, _) | (Action::Overwrite, None) => {
            sink.unset(&header.name);
            Ok(())
        }
        (Action::Overwrite, Some(v)) => sink.set(header.spelled.clone(), v),
        (Action::Append, Some(v)) => sink.add(header.spelled.clone(), v),
        (Action::Append, None) => Ok(()),
    }
}
