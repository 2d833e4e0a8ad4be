//! A policy's `Key`: its syntax ([`KeySource`]), its validation with suggestions for
//! typos ([`validate`]), and the raw bytes it stands for in one request ([`key_bytes`]).

use super::MAX_PERIOD_SECS;
use crate::config::{closest, ConfigError, ConfigErrors, RateLimitConf};
use crate::policy::jwt::Claims;
use std::borrow::Cow;

/// The raw bytes of a policy's key for one request: the client IP; the header's values
/// joined with `,` (absent: empty); or the claim (a JSON string as it is, other JSON as
/// JSON text; absent: empty). Borrowed whenever the value exists in one piece, so the
/// usual cases allocate nothing. Bytes, not text: values that are not UTF-8 must not be
/// merged by a lossy conversion.
pub fn key_bytes<'a>(
    source: &KeySource,
    headers: &'a http::HeaderMap,
    client_ip: &'a str,
    claims: Option<&'a Claims>,
) -> Cow<'a, [u8]> {
    match source {
        KeySource::SourceIp => Cow::Borrowed(client_ip.as_bytes()),
        KeySource::Header(name) => {
            let mut values = headers.get_all(name.as_str()).iter();
            let Some(first) = values.next() else {
                return Cow::Borrowed(b"");
            };
            let Some(second) = values.next() else {
                return Cow::Borrowed(first.as_bytes());
            };
            let mut joined = first.as_bytes().to_vec();
            for v in std::iter::once(second).chain(values) {
                joined.push(b',');
                joined.extend_from_slice(v.as_bytes());
            }
            Cow::Owned(joined)
        }
        KeySource::Claim(name) => match claims.and_then(|c| c.get(name)) {
            Some(serde_json::Value::String(s)) => Cow::Borrowed(s.as_bytes()),
            Some(other) => Cow::Owned(other.to_string().into_bytes()),
            None => Cow::Borrowed(b""),
        },
    }
}

/// Where a policy's `Key` comes from. The caller evaluates it per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `$context.identity.sourceIp`
    SourceIp,
    /// `$request.header.NAME` (NAME as written; header lookup is case-insensitive).
    Header(String),
    /// `$context.authorizer.claims.NAME`
    Claim(String),
}

const SOURCE_IP: &str = "$context.identity.sourceIp";
const HEADER_PREFIX: &str = "$request.header.";
const CLAIM_PREFIX: &str = "$context.authorizer.claims.";

impl KeySource {
    /// Parses a `Key`; `None` when it is not one of the three supported forms.
    pub fn parse(key: &str) -> Option<KeySource> {
        if key == SOURCE_IP {
            Some(KeySource::SourceIp)
        } else if let Some(name) = key.strip_prefix(HEADER_PREFIX) {
            is_header_name(name).then(|| KeySource::Header(name.to_string()))
        } else if let Some(name) = key.strip_prefix(CLAIM_PREFIX) {
            let ok = !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control());
            ok.then(|| KeySource::Claim(name.to_string()))
        } else {
            None
        }
    }
}

/// An HTTP field name: one or more `tchar` (RFC 9110).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks a `RateLimit` policy. `field` names it, e.g. `Policies.RateLimit`; errors name
/// `<field>.Calls`, `<field>.PeriodSeconds`, `<field>.Key`.
pub fn validate(file: &str, field: &str, conf: &RateLimitConf, errors: &mut ConfigErrors) {
    if conf.calls == 0 {
        errors.push(ConfigError::new(
            file,
            format!("{field}.Calls"),
            "0 calls would refuse every request",
            "set Calls to 1 or more (to block a route, use an IpFilter)",
        ));
    }
    if !(1..=MAX_PERIOD_SECS).contains(&conf.period_seconds) {
        errors.push(ConfigError::new(
            file,
            format!("{field}.PeriodSeconds"),
            format!("{} is outside 1..={MAX_PERIOD_SECS}", conf.period_seconds),
            format!("use a window between 1 and {MAX_PERIOD_SECS} seconds"),
        ));
    }
    if KeySource::parse(&conf.key).is_none() {
        let forms = format!("use {SOURCE_IP}, {HEADER_PREFIX}NAME or {CLAIM_PREFIX}NAME");
        let fix = match suggest_key(&conf.key) {
            Some(s) => format!("did you mean {s:?}? ({forms})"),
            None => forms,
        };
        errors.push(ConfigError::new(
            file,
            format!("{field}.Key"),
            format!("unsupported key {:?}", conf.key),
            fix,
        ));
    }
}

fn suggest_key(key: &str) -> Option<String> {
    if let Some(s) = closest(key, [SOURCE_IP]) {
        return Some(s.to_string());
    }
    let (head, name) = key.rsplit_once('.')?;
    let head = format!("{head}.");
    let prefix = closest(&head, [HEADER_PREFIX, CLAIM_PREFIX])?;
    let candidate = format!("{prefix}{name}");
    KeySource::parse(&candidate).map(|_| candidate)
}

#[cfg(test)]
mod tests;
