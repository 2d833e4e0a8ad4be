//! Access: `validate-jwt` lowered onto apigate's JWT authorizer, `ip-filter` onto the IP
//! filter, and the global `cors` onto the gateway's CORS configuration.

use super::policies::{at, attr, named, only_attrs, only_children, Env, Lowered};
use super::xml::Element;
use crate::config::{AuthorizerConf, ConfigError, CorsConf, IpFilterConf, JwtConf};
use base64::Engine;

/// `validate-jwt`: the token's place, issuer, audiences and keys (inline, or OIDC discovery
/// at the issuer). Failure answers 401 as APIM's gateway does.
pub fn validate_jwt(
    file: &str,
    el: &Element,
    env: &Env,
    out: &mut Lowered,
) -> Result<(), ConfigError> {
    only_attrs(
        file,
        el,
        &[
            "header-name",
            "query-parameter-name",
            "failed-validation-httpcode",
            "failed-validation-error-message",
            "require-scheme",
            "require-expiration-time",
            "require-signed-tokens",
            "clock-skew",
            "output-token-variable-name",
        ],
    )?;
    only_children(
        file,
        el,
        &[
            "openid-config",
            "issuer-signing-keys",
            "audiences",
            "issuers",
        ],
    )?;
    if out.jwt.is_some() {
        return Err(at(
            file,
            el,
            "a second validate-jwt for the same operation is not supported",
            "keep one",
        ));
    }
    let source = match (
        attr(file, el, "header-name", env)?,
        attr(file, el, "query-parameter-name", env)?,
    ) {
        (Some(h), None) => format!("$request.header.{h}"),
        (None, Some(q)) => format!("$request.querystring.{q}"),
        _ => {
            return Err(at(
                file,
                el,
                "needs exactly one of header-name or query-parameter-name",
                "write header-name=\"Authorization\"",
            ))
        }
    };
    let code = attr(file, el, "failed-validation-httpcode", env)?;
    let message = attr(file, el, "failed-validation-error-message", env)?;
    if code.is_some() || message.is_some() {
        let status = match code.as_deref().map(str::parse::<u16>) {
            None => 401,
            Some(Ok(s @ 400..=599)) => s,
            Some(_) => {
                return Err(at(
                    file,
                    el,
                    "failed-validation-httpcode must be a status from 400 to 599",
                    "e.g. failed-validation-httpcode=\"401\"",
                ))
            }
        };
        let message =
            message.unwrap_or_else(|| "Unauthorized. Access token is missing or invalid.".into());
        out.auth_failure = Some((status, message));
    }
    for (name, allowed) in [
        ("require-scheme", "Bearer"),
        ("require-expiration-time", "true"),
        ("require-signed-tokens", "true"),
    ] {
        if let Some(v) = attr(file, el, name, env)? {
            if v != allowed {
                return Err(at(
                    file,
                    el,
                    format!("{name}={v:?} is not supported"),
                    format!("apigate serves {name}=\"{allowed}\" (or leave it out)"),
                ));
            }
        }
    }
    let skew = match attr(file, el, "clock-skew", env)? {
        None => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| at(file, el, format!("clock-skew {s:?}"), "write whole seconds"))?,
        ),
    };
    let texts = |parent: &str, child: &str| -> Result<Vec<String>, ConfigError> {
        let mut v = Vec::new();
        for p in el.all(parent) {
            only_attrs(file, p, &[])?;
            only_children(file, p, &[child])?;
            for c in p.all(child) {
                v.push(named(file, c, &c.text, env)?);
            }
        }
        Ok(v)
    };
    let audience = texts("audiences", "audience")?;
    let issuers = texts("issuers", "issuer")?;
    let [issuer] = issuers.as_slice() else {
        return Err(at(
            file,
            el,
            format!("{} issuers: apigate checks exactly one", issuers.len()),
            "list one <issuers><issuer>https://...</issuer></issuers>",
        ));
    };
    let mut keys = Vec::new();
    for group in el.all("issuer-signing-keys") {
        only_children(file, group, &["key"])?;
        for k in group.all("key") {
            keys.push(jwk(file, k, env)?);
        }
    }
    if let Some(oidc) = el.all("openid-config").next() {
        only_attrs(file, oidc, &["url"])?;
        let url = attr(file, oidc, "url", env)?.unwrap_or_default();
        let expected = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        if url != expected || !keys.is_empty() {
            return Err(at(
                file,
                oidc,
                format!("openid-config {url:?}: apigate discovers keys at the issuer ({expected})"),
                "use the issuer's discovery URL, or list the keys in <issuer-signing-keys>",
            ));
        }
    } else if keys.is_empty() {
        return Err(at(file, el, "no keys", "add <openid-config url=\"ISSUER/.well-known/openid-configuration\"/> or <issuer-signing-keys>"));
    }
    let id = format!("{}-line{}", file.replace(['/', ' ', '.'], "_"), el.line);
    let conf = AuthorizerConf {
        authorizer_type: "JWT".into(),
        name: Some(format!("validate-jwt at {file} line {}", el.line)),
        identity_source: vec![source],
        jwt_configuration: Some(JwtConf {
            issuer: Some(issuer.clone()),
            audience,
        }),
        jwks: (!keys.is_empty()).then(|| serde_json::json!({ "keys": keys })),
        clock_skew_seconds: skew,
        ..AuthorizerConf::default()
    };
    out.jwt = Some((id, conf));
    Ok(())
}

/// One `<key>`: base64 text is an HMAC secret, `n`/`e` an RSA public key.
fn jwk(file: &str, k: &Element, env: &Env) -> Result<serde_json::Value, ConfigError> {
    only_attrs(file, k, &["id", "n", "e"])?;
    let mut key = match (attr(file, k, "n", env)?, attr(file, k, "e", env)?) {
        (Some(n), Some(e)) => serde_json::json!({"kty": "RSA", "n": n, "e": e}),
        (None, None) => {
            let secret = named(file, k, &k.text, env)?;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(secret.trim())
                .map_err(|_| {
                    at(
                        file,
                        k,
                        "the key is not base64",
                        "write the HMAC secret in base64, as APIM takes it",
                    )
                })?;
            serde_json::json!({"kty": "oct", "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)})
        }
        _ => {
            return Err(at(
                file,
                k,
                "an RSA key needs both n and e",
                "add the missing one",
            ))
        }
    };
    if let Some(id) = attr(file, k, "id", env)? {
        key["kid"] = id.into();
    }
    Ok(key)
}

/// The global `cors` policy as the gateway's CORS configuration.
pub fn cors(file: &str, el: &Element, env: &Env, out: &mut Lowered) -> Result<(), ConfigError> {
    only_attrs(file, el, &["allow-credentials"])?;
    only_children(
        file,
        el,
        &[
            "allowed-origins",
            "allowed-methods",
            "allowed-headers",
            "expose-headers",
        ],
    )?;
    let mut conf = CorsConf {
        allow_credentials: attr(file, el, "allow-credentials", env)?.is_some_and(|v| v == "true"),
        ..CorsConf::default()
    };
    for group in &el.children {
        let (child, list) = match group.name.as_str() {
            "allowed-origins" => ("origin", &mut conf.allow_origins),
            "allowed-methods" => ("method", &mut conf.allow_methods),
            "allowed-headers" => ("header", &mut conf.allow_headers),
            _ => ("header", &mut conf.expose_headers),
        };
        only_children(file, group, &[child])?;
        if group.name == "allowed-methods" {
            only_attrs(file, group, &["preflight-result-max-age"])?;
            if let Some(age) = attr(file, group, "preflight-result-max-age", env)? {
                conf.max_age = Some(
                    age.parse()
                        .map_err(|_| at(file, group, "not a number of seconds", "e.g. 300"))?,
                );
            }
        } else {
            only_attrs(file, group, &[])?;
        }
        for c in group.all(child) {
            list.push(named(file, c, &c.text, env)?);
        }
    }
    out.cors = Some(conf);
    Ok(())
}

/// `ip-filter`: addresses and ranges (as CIDRs) onto the route's IP filter: 403.
pub fn ip_filter(
    file: &str,
    el: &Element,
    env: &Env,
    out: &mut Lowered,
) -> Result<(), ConfigError> {
    only_attrs(file, el, &["action"])?;
    only_children(file, el, &["address", "address-range"])?;
    if out.ip_filter.is_some() {
        return Err(at(
            file,
            el,
            "a second ip-filter for the same operation is not supported",
            "merge the addresses into one ip-filter",
        ));
    }
    let action = attr(file, el, "action", env)?.unwrap_or_default();
    if action != "allow" && action != "forbid" {
        return Err(at(
            file,
            el,
            format!("action {action:?}"),
            "write action=\"allow\" or action=\"forbid\"",
        ));
    }
    let mut addresses = Vec::new();
    for c in &el.children {
        if c.name == "address" {
            let a = named(file, c, &c.text, env)?;
            a.parse::<std::net::IpAddr>().map_err(|_| {
                at(
                    file,
                    c,
                    format!("{a:?} is not an IP address"),
                    "write e.g. 203.0.113.7",
                )
            })?;
            addresses.push(a);
            continue;
        }
        only_attrs(file, c, &["from", "to"])?;
        let ip = |n: &str| -> Result<std::net::IpAddr, ConfigError> {
            let v = attr(file, c, n, env)?.unwrap_or_default();
            v.parse().map_err(|_| {
                at(
                    file,
                    c,
                    format!("{n}={v:?} is not an IP address"),
                    "write from=\"10.0.0.1\" to=\"10.0.0.9\"",
                )
            })
        };
        match (ip("from")?, ip("to")?) {
            (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) if a <= b => {
                addresses.extend(ipnet::Ipv4Subnets::new(a, b, 0).map(|n| n.to_string()))
            }
            (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) if a <= b => {
                addresses.extend(ipnet::Ipv6Subnets::new(a, b, 0).map(|n| n.to_string()))
            }
            _ => {
                return Err(at(
                    file,
                    c,
                    "from and to must be the same family, from <= to",
                    "swap or fix them",
                ))
            }
        }
    }
    if addresses.is_empty() {
        return Err(at(
            file,
            el,
            "no addresses",
            "add <address>203.0.113.7</address> or <address-range from=\"..\" to=\"..\"/>",
        ));
    }
    out.ip_filter = Some(IpFilterConf { action, addresses });
    Ok(())
}
