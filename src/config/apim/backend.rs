//! Where an operation's request goes: `rewrite-uri` (the backend path),
//! `set-backend-service` (the base URL), `forward-request` (the timeout).

use super::policies::{at, attr, only_attrs, only_children, Env, Lowered};
use super::xml::Element;
use crate::config::ConfigError;

pub fn rewrite(file: &str, el: &Element, env: &Env, out: &mut Lowered) -> Result<(), ConfigError> {
    only_attrs(file, el, &["template", "copy-unmatched-params"])?;
    if attr(file, el, "copy-unmatched-params", env)?.is_some_and(|v| v != "true") {
        return Err(at(
            file,
            el,
            "copy-unmatched-params=\"false\" is not supported",
            "remove it (the query string is forwarded)",
        ));
    }
    let t = attr(file, el, "template", env)?.ok_or_else(|| {
        at(
            file,
            el,
            "template is required",
            "add template=\"/path/{id}\"",
        )
    })?;
    if !t.starts_with('/') || t.contains('@') {
        return Err(at(
            file,
            el,
            format!("template {t:?} must be a literal path starting with '/'"),
            "write e.g. template=\"/v2/users/{id}\"",
        ));
    }
    out.rewrite = Some(t);
    Ok(())
}

pub fn backend_service(
    file: &str,
    el: &Element,
    env: &Env,
    out: &mut Lowered,
) -> Result<(), ConfigError> {
    only_attrs(file, el, &["base-url", "backend-id"])?;
    let url = match (
        attr(file, el, "base-url", env)?,
        attr(file, el, "backend-id", env)?,
    ) {
        (Some(u), None) if !u.starts_with('@') => u,
        (None, Some(id)) => env.backends.get(&id).cloned().ok_or_else(|| {
            at(
                file,
                el,
                format!("backend {id:?} is not defined"),
                format!("add backends/{id}/backendInformation.json with a url"),
            )
        })?,
        _ => {
            return Err(at(
                file,
                el,
                "needs exactly one of base-url (a literal URL) or backend-id",
                "write base-url=\"http://127.0.0.1:9000\"",
            ))
        }
    };
    out.backend = Some(url);
    Ok(())
}

pub fn forward_request(
    file: &str,
    el: &Element,
    env: &Env,
    out: &mut Lowered,
) -> Result<(), ConfigError> {
    // What apigate does anyway may be written out; another value is refused.
    const AS_SERVED: [(&str, &str); 4] = [
        ("follow-redirects", "false"),
        ("buffer-request-body", "false"),
        ("buffer-response", "true"),
        ("fail-on-error-status-code", "false"),
    ];
    let mut known = vec!["timeout"];
    known.extend(AS_SERVED.iter().map(|(k, _)| *k));
    only_attrs(file, el, &known)?;
    only_children(file, el, &[])?;
    for (name, served) in AS_SERVED {
        if let Some(v) = attr(file, el, name, env)? {
            if v != served {
                return Err(at(
                    file,
                    el,
                    format!("{name}={v:?} is not supported"),
                    format!("apigate forwards as {name}=\"{served}\" does; remove it"),
                ));
            }
        }
    }
    if let Some(t) = attr(file, el, "timeout", env)? {
        match t.parse::<u64>() {
            Ok(s @ 1..=30) => out.timeout_ms = Some(s * 1000),
            _ => {
                return Err(at(
                    file,
                    el,
                    format!("timeout {t:?} is not served"),
                    "write whole seconds from 1 to 30 (apigate's integration limit)",
                ))
            }
        }
    }
    Ok(())
}
