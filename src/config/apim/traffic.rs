//! `set-variable` (resolved at load: a variable is the template its value lowers to) and
//! `rate-limit` / `rate-limit-by-key` lowered onto apigate's rate limits (local or Redis
//! store, `RateLimit-*` headers, 429).

use super::policies::{at, attr, only_attrs, only_children, value, Env, Lowered};
use super::xml::Element;
use crate::config::{ConfigError, HeaderCheckConf, RateLimitConf};

pub fn set_variable(
    file: &str,
    el: &Element,
    env: &Env,
    out: &mut Lowered,
) -> Result<(), ConfigError> {
    only_attrs(file, el, &["name", "value"])?;
    only_children(file, el, &[])?;
    let name = attr(file, el, "name", env)?
        .ok_or_else(|| at(file, el, "name is required", "add name=\"variable\""))?;
    let raw = el.attr("value").ok_or_else(|| {
        at(
            file,
            el,
            "value is required",
            "add value=\"...\" or value=\"@(...)\"",
        )
    })?;
    let v = value(file, el, raw, env, &out.variables)?;
    out.variables.insert(name, v);
    Ok(())
}

/// `rate-limit` counts per subscription (the key's header); `rate-limit-by-key` per
/// `counter-key`, which must lower to the client address or a request header.
pub fn rate_limit(
    file: &str,
    el: &Element,
    env: &Env,
    out: &mut Lowered,
) -> Result<(), ConfigError> {
    if out.rate_limit.is_some() {
        return Err(at(
            file,
            el,
            "a second rate limit for the same operation is not supported",
            "keep one",
        ));
    }
    out.rate_limit = Some(limit(file, el, env, out)?);
    Ok(())
}

/// `quota` / `quota-by-key` with `calls` (not `bandwidth`), counted like a rate limit in
/// the same store and refused 403 as APIM does.
pub fn quota(file: &str, el: &Element, env: &Env, out: &mut Lowered) -> Result<(), ConfigError> {
    if out.quota.is_some() {
        return Err(at(
            file,
            el,
            "a second quota for the same operation is not supported",
            "keep one",
        ));
    }
    out.quota = Some(limit(file, el, env, out)?);
    Ok(())
}

/// The calls, period and key of a rate limit or quota (`...-by-key` reads `counter-key`).
fn limit(file: &str, el: &Element, env: &Env, out: &Lowered) -> Result<RateLimitConf, ConfigError> {
    let by_key = el.name.ends_with("-by-key");
    if by_key {
        only_attrs(file, el, &["calls", "renewal-period", "counter-key"])?;
    } else {
        only_attrs(file, el, &["calls", "renewal-period"])?;
    }
    only_children(file, el, &[])?;
    let number = |name: &str| -> Result<u64, ConfigError> {
        let v = attr(file, el, name, env)?.unwrap_or_default();
        match v.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(at(
                file,
                el,
                format!("{name}={v:?} must be a whole number above 0"),
                format!("write e.g. {name}=\"10\""),
            )),
        }
    };
    let (calls, period_seconds) = (number("calls")?, number("renewal-period")?);
    if period_seconds > crate::config::MAX_RATE_LIMIT_PERIOD_SECS {
        return Err(at(
            file,
            el,
            format!("renewal-period {period_seconds} is over one day, the longest window apigate's counters keep"),
            "use at most 86400 seconds",
        ));
    }
    let key = if by_key {
        let raw = el.attr("counter-key").ok_or_else(|| {
            at(
                file,
                el,
                "counter-key is required",
                "add counter-key=\"@(context.Request.IpAddress)\"",
            )
        })?;
        let template = value(file, el, raw, env, &out.variables)?;
        match template.strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
            Some("context.identity.sourceIp") => "$context.identity.sourceIp".to_string(),
            Some(t) if t.starts_with("request.header.") && !t.contains('}') => format!("${t}"),
            _ => {
                return Err(at(
                    file,
                    el,
                    format!("counter-key {raw:?} is not a key apigate counts by"),
                    "use @(context.Request.IpAddress) or @(context.Request.Headers.GetValueOrDefault(\"Name\", \"\"))",
                ))
            }
        }
    } else {
        match env.subscription_header {
            Some(h) => format!("$request.header.{h}"),
            None => {
                return Err(at(
                    file,
                    el,
                    format!(
                        "{} counts per subscription, and this API requires none",
                        el.name
                    ),
                    format!("use {}-by-key with a counter-key", el.name),
                ))
            }
        }
    };
    Ok(RateLimitConf {
        calls,
        period_seconds,
        key,
    })
}

/// `check-header`: all four attributes are required, as in APIM.
pub fn check_header(
    file: &str,
    el: &Element,
    env: &Env,
    out: &mut Lowered,
) -> Result<(), ConfigError> {
    only_attrs(
        file,
        el,
        &[
            "name",
            "failed-check-httpcode",
            "failed-check-error-message",
            "ignore-case",
        ],
    )?;
    only_children(file, el, &["value"])?;
    let required = |name: &str| -> Result<String, ConfigError> {
        attr(file, el, name, env)?.ok_or_else(|| {
            at(
                file,
                el,
                format!("{name} is required"),
                format!("add {name}=\"...\""),
            )
        })
    };
    let name = required("name")?;
    let status = match required("failed-check-httpcode")?.parse::<u16>() {
        Ok(s @ 400..=599) => s,
        _ => {
            return Err(at(
                file,
                el,
                "failed-check-httpcode must be a status from 400 to 599",
                "e.g. failed-check-httpcode=\"401\"",
            ))
        }
    };
    let message = required("failed-check-error-message")?;
    let ignore_case = match required("ignore-case")?.as_str() {
        "true" => true,
        "false" => false,
        v => {
            return Err(at(
                file,
                el,
                format!("ignore-case={v:?}"),
                "write true or false",
            ))
        }
    };
    let mut values = Vec::new();
    for v in el.all("value") {
        let text = super::policies::named(file, v, &v.text, env)?;
        if text.starts_with('@') {
            return Err(at(
                file,
                v,
                "check-header compares literal values",
                "write the value itself",
            ));
        }
        values.push(text);
    }
    out.header_checks.push(HeaderCheckConf {
        name,
        values,
        ignore_case,
        status,
        message,
    });
    Ok(())
}
