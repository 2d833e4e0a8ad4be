//! Policy documents composed (`<base/>`: global -> product -> API -> operation) and each
//! statement lowered onto apigate's own machinery: header and query mappings, the route's
//! IP filter, a JWT authorizer, the integration's URI and timeout. A statement outside the
//! supported set is an error naming the file and line, never skipped.

use super::expr::{self, Scope};
use super::xml::{Element, PolicyDoc};
use crate::config::{AuthorizerConf, ConfigError, CorsConf, IpFilterConf};
use std::collections::BTreeMap;

/// The statements apigate serves, by section, for messages.
pub const SUPPORTED: &str = "inbound: base, set-header, set-query-parameter, rewrite-uri, \
set-backend-service, ip-filter, validate-jwt, check-header, set-variable, rate-limit, \
rate-limit-by-key, quota, quota-by-key, return-response, mock-response, choose (branches \
holding one return-response or nothing), cors (global policy only); backend: base, \
forward-request; outbound: base, set-header, set-status, set-variable; on-error: base, \
set-header (literal values), return-response";

/// A statement and the file it was written in.
pub type Stmt<'a> = (&'a str, &'a Element);

/// One section of the effective policy of an operation: each level's statements with
/// `<base/>` replaced by its parent's. An absent section inherits its parent's whole
/// *(choice)*; an empty one (`<outbound/>`) drops it, as in APIM.
pub fn compose<'a>(
    levels: &[&'a PolicyDoc],
    section: usize,
    errors: &mut Vec<ConfigError>,
) -> Vec<Stmt<'a>> {
    let mut acc: Vec<Stmt<'a>> = Vec::new();
    for doc in levels {
        let Some(items) = &doc.sections[section] else {
            continue;
        };
        let mut next = Vec::new();
        let mut bases = 0;
        for el in items {
            if el.name == "base" {
                bases += 1;
                if bases > 1 {
                    errors.push(at(
                        &doc.file,
                        el,
                        "<base/> appears twice in one section",
                        "keep one",
                    ));
                }
                next.extend(acc.iter().copied());
            } else {
                next.push((el.source.as_deref().unwrap_or(&doc.file), el));
            }
        }
        acc = next;
    }
    acc
}

/// What an operation's effective policy lowers to.
#[derive(Debug, Default)]
pub struct Lowered {
    /// `RequestParameters` (`overwrite:header.Api-Version` -> template).
    pub request: BTreeMap<String, String>,
    /// Response header operations, applied on every backend status.
    pub response: BTreeMap<String, String>,
    pub ip_filter: Option<IpFilterConf>,
    /// The authorizer of the one `validate-jwt`, and where it was written (its id).
    pub jwt: Option<(String, AuthorizerConf)>,
    /// `rewrite-uri`'s template: the backend path.
    pub rewrite: Option<String>,
    /// `set-backend-service`: the backend base URL.
    pub backend: Option<String>,
    pub timeout_ms: Option<u64>,
    /// The global policy's `cors`.
    pub cors: Option<CorsConf>,
    /// `set-variable`s so far: name -> template, read by `context.Variables[..]`.
    pub variables: BTreeMap<String, String>,
    /// `rate-limit` / `rate-limit-by-key`.
    pub rate_limit: Option<crate::config::RateLimitConf>,
    /// `quota` / `quota-by-key`.
    pub quota: Option<crate::config::RateLimitConf>,
    pub header_checks: Vec<crate::config::HeaderCheckConf>,
    /// `validate-jwt`'s own status and message for a refused token.
    pub auth_failure: Option<(u16, String)>,
    /// `return-response` / `mock-response`.
    pub answer: Option<crate::config::StaticAnswerConf>,
    /// `on-error`'s headers and answer.
    pub on_error: Option<crate::config::OnErrorConf>,
    /// `choose` statements whose branches answer or go on.
    pub choices: Vec<Vec<crate::config::BranchConf>>,
}

/// Where lowering reads from: named values, backends, the API's path, the global file.
pub struct Env<'a> {
    pub named: &'a BTreeMap<String, String>,
    pub missing: &'a BTreeMap<String, String>,
    pub backends: &'a BTreeMap<String, String>,
    pub scope: Scope<'a>,
    pub global_file: &'a str,
    /// The header a subscription key comes in, when the API requires one (`rate-limit`
    /// counts per subscription).
    pub subscription_header: Option<&'a str>,
    /// The operation's object in the specification (`mock-response` reads its examples).
    pub operation: Option<&'a serde_json::Value>,
}

pub fn at(
    file: &str,
    el: &Element,
    problem: impl Into<String>,
    fix: impl Into<String>,
) -> ConfigError {
    ConfigError::new(
        file,
        format!("line {} <{}>", el.line, el.name),
        problem,
        fix,
    )
}

/// Lowers the effective `inbound`, `backend` and `outbound` statements (and checks
/// `on-error` holds nothing apigate would skip).
pub fn lower(sections: [Vec<Stmt>; 4], env: &Env, errors: &mut Vec<ConfigError>) -> Lowered {
    let mut out = Lowered::default();
    let [inbound, backend, outbound, on_error] = sections;
    for (file, el) in inbound {
        if out.answer.is_some() {
            errors.push(at(
                file,
                el,
                "comes after return-response or mock-response: it never runs",
                "remove it or move it before",
            ));
            continue;
        }
        let r = match el.name.as_str() {
            "return-response" => super::answers::return_response(file, el, env, &mut out),
            "mock-response" => super::answers::mock_response(file, el, env, &mut out),
            "choose" => super::answers::choose(file, el, env, &mut out),
            "set-header" => set(file, el, "header", env, &out.variables, &mut out.request),
            "set-query-parameter" => set(
                file,
                el,
                "querystring",
                env,
                &out.variables,
                &mut out.request,
            ),
            "set-variable" => super::traffic::set_variable(file, el, env, &mut out),
            "check-header" => super::traffic::check_header(file, el, env, &mut out),
            "quota" | "quota-by-key" => super::traffic::quota(file, el, env, &mut out),
            "rate-limit" | "rate-limit-by-key" => {
                super::traffic::rate_limit(file, el, env, &mut out)
            }
            "rewrite-uri" => super::backend::rewrite(file, el, env, &mut out),
            "set-backend-service" => super::backend::backend_service(file, el, env, &mut out),
            "ip-filter" => super::security::ip_filter(file, el, env, &mut out),
            "validate-jwt" => super::security::validate_jwt(file, el, env, &mut out),
            "cors" if file == env.global_file => super::security::cors(file, el, env, &mut out),
            "cors" => Err(at(
                file,
                el,
                "cors is served for the whole gateway",
                "move <cors> to the global policy.xml",
            )),
            _ => Err(unsupported(file, el, "inbound")),
        };
        if let Err(e) = r {
            errors.push(e);
        }
    }
    for (file, el) in backend {
        let r = match el.name.as_str() {
            "forward-request" => super::backend::forward_request(file, el, env, &mut out),
            _ => Err(unsupported(file, el, "backend")),
        };
        if let Err(e) = r {
            errors.push(e);
        }
    }
    for (file, el) in outbound {
        let r = match el.name.as_str() {
            "set-header" => set(file, el, "header", env, &out.variables, &mut out.response),
            "set-variable" => super::traffic::set_variable(file, el, env, &mut out),
            "set-status" => super::answers::outbound_status(file, el, env, &mut out),
            _ => Err(unsupported(file, el, "outbound")),
        };
        if let Err(e) = r {
            errors.push(e);
        }
    }
    super::answers::on_error(&on_error, env, &mut out, errors);
    out
}

/// The statements each section serves (by name; attributes are checked when lowered).
const SERVED: [&[&str]; 4] = [
    &[
        "base",
        "set-header",
        "set-query-parameter",
        "rewrite-uri",
        "set-backend-service",
        "ip-filter",
        "validate-jwt",
        "check-header",
        "set-variable",
        "rate-limit",
        "rate-limit-by-key",
        "choose",
        "quota",
        "quota-by-key",
        "return-response",
        "mock-response",
        "cors",
    ],
    &["base", "forward-request"],
    &["base", "set-header", "set-variable", "set-status"],
    &["base", "set-header", "return-response"],
];

/// Refuses every statement of `doc` that no section serves, whether or not an operation's
/// composition reaches it (a global policy no API includes with `<base/>` is still read).
pub fn check_names(doc: &PolicyDoc, errors: &mut Vec<ConfigError>) {
    for (i, section) in doc.sections.iter().enumerate() {
        for el in section.iter().flatten() {
            if !SERVED[i].contains(&el.name.as_str()) {
                let name = super::xml::SECTIONS[i];
                let file = el.source.as_deref().unwrap_or(&doc.file);
                errors.push(if i == 3 {
                    super::answers::on_error_unsupported(file, el)
                } else {
                    unsupported(file, el, name)
                });
            }
        }
    }
}

fn unsupported(file: &str, el: &Element, section: &str) -> ConfigError {
    at(
        file,
        el,
        format!("<{}> in <{section}> is not supported by apigate", el.name),
        format!("remove it or use what apigate serves ({SUPPORTED})"),
    )
}

/// An attribute's value with named values resolved.
pub fn attr(
    file: &str,
    el: &Element,
    name: &str,
    env: &Env,
) -> Result<Option<String>, ConfigError> {
    el.attr(name).map(|v| named(file, el, v, env)).transpose()
}

/// Every attribute of `el` must be one of `known`.
pub fn only_attrs(file: &str, el: &Element, known: &[&str]) -> Result<(), ConfigError> {
    match el.attrs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some((k, _)) => Err(at(
            file,
            el,
            format!("attribute {k:?} is not supported"),
            if known.is_empty() {
                "remove it".to_string()
            } else {
                format!("apigate reads {}", known.join(", "))
            },
        )),
    }
}

/// Every child element of `el` must be one of `known`.
pub fn only_children(file: &str, el: &Element, known: &[&str]) -> Result<(), ConfigError> {
    match el
        .children
        .iter()
        .find(|c| !known.contains(&c.name.as_str()))
    {
        None => Ok(()),
        Some(c) => Err(at(
            file,
            c,
            format!("<{}> inside <{}> is not supported", c.name, el.name),
            if known.is_empty() {
                "remove it".to_string()
            } else {
                format!("apigate reads {}", known.join(", "))
            },
        )),
    }
}

/// `{{name}}` replaced by the named value, as APIM does before anything else.
pub fn named(file: &str, el: &Element, text: &str, env: &Env) -> Result<String, ConfigError> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find("}}") else {
            return Err(at(
                file,
                el,
                format!("unclosed {{{{ in {text:?}"),
                "write {{name}}",
            ));
        };
        let name = &after[..end];
        match env.named.get(name) {
            Some(v) => out.push_str(v),
            None => {
                let fix = match env.missing.get(name) {
                    Some(var) => format!("it is a secret without a value: set the environment variable {var}"),
                    None => format!(
                        "add \"named values/{name}/namedValueInformation.json\" with {{\"properties\": {{\"displayName\": \"{name}\", \"value\": \"...\"}}}}"
                    ),
                };
                return Err(at(
                    file,
                    el,
                    format!("named value {{{{{name}}}}} is not defined"),
                    fix,
                ));
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A value (text or `@(...)`) lowered into a mapping template.
pub fn value(
    file: &str,
    el: &Element,
    text: &str,
    env: &Env,
    vars: &BTreeMap<String, String>,
) -> Result<String, ConfigError> {
    let resolved = named(file, el, text, env)?;
    expr::lower(&resolved, &env.scope, vars).map_err(|e| {
        at(
            file,
            el,
            e,
            "use a literal or the supported expression subset",
        )
    })
}

/// `set-header` / `set-query-parameter` as a mapping entry on `target` (`header`,
/// `querystring`). One header set two different ways in one operation is refused: a
/// mapping's entries carry no order.
fn set(
    file: &str,
    el: &Element,
    target: &str,
    env: &Env,
    vars: &BTreeMap<String, String>,
    map: &mut BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    only_attrs(file, el, &["name", "exists-action"])?;
    only_children(file, el, &["value"])?;
    let name = attr(file, el, "name", env)?
        .ok_or_else(|| at(file, el, "name is required", "add name=\"X-Header\""))?;
    let action = match attr(file, el, "exists-action", env)?
        .as_deref()
        .unwrap_or("override")
    {
        "override" => "overwrite",
        "append" => "append",
        "delete" => "remove",
        "skip" => {
            return Err(at(
                file,
                el,
                "exists-action=\"skip\" is not supported",
                "use override, append or delete",
            ))
        }
        other => {
            return Err(at(
                file,
                el,
                format!("exists-action {other:?} is not one of APIM's"),
                "use override, skip, append or delete",
            ))
        }
    };
    let values: Vec<String> = el
        .all("value")
        .map(|v| value(file, v, &v.text, env, vars))
        .collect::<Result<_, _>>()?;
    let v = match (action, values.is_empty()) {
        ("remove", _) => String::new(),
        (_, true) => {
            return Err(at(
                file,
                el,
                "no <value>",
                "add <value>...</value>, or exists-action=\"delete\"",
            ))
        }
        _ => values.join(","),
    };
    // Said here with the line: the mapping would refuse it too, naming only the route.
    if target == "header" && super::super::reserved::is_reserved_header(&name) {
        return Err(at(
            file,
            el,
            format!("{name} is a header apigate's mappings may not set (the gateway or the connection owns it, or AWS reserves it)"),
            "remove it; see \"Parameter mapping\" in the README for the reserved headers",
        ));
    }
    let key = format!("{action}:{target}.{name}");
    for other in ["overwrite", "append", "remove"] {
        let k = format!("{other}:{target}.{name}");
        if other != action && map.contains_key(&k) {
            return Err(at(
                file,
                el,
                format!(
                    "{name} is already set with another exists-action in this operation's policies"
                ),
                "set it one way (the last override wins in APIM; apigate needs one)",
            ));
        }
    }
    map.insert(key, v);
    Ok(())
}
