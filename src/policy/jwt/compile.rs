//! An authorizer's configuration, checked in full: every problem is reported with its field
//! so that one load shows them all.

use super::cache::{Shard, CACHE_SHARDS};
use super::keys::static_keys;
use super::remote::{remote, DEFAULT_MIN_REFETCH, DEFAULT_REFRESH};
use super::{IdentitySource, JwtAuthorizer};
use crate::config::{AuthorizerConf, ConfigError, ConfigErrors};
use parking_lot::RwLock;
use std::path::Path;
use std::time::Duration;

impl JwtAuthorizer {
    /// Validates an authorizer file; every problem is reported with its field.
    pub fn compile(
        file: &str,
        id: &str,
        conf: &AuthorizerConf,
        conf_dir: &Path,
        errors: &mut ConfigErrors,
    ) -> Option<JwtAuthorizer> {
        let before = errors.0.len();
        if conf.authorizer_type != "JWT" {
            errors.push(ConfigError::new(
                file,
                "AuthorizerType",
                format!("{:?} is not supported", conf.authorizer_type),
                "use \"JWT\"",
            ));
        }
        let identity = match conf.identity_source.as_slice() {
            [one] => {
                if let Some(h) = one.strip_prefix("$request.header.") {
                    http::HeaderName::from_bytes(h.as_bytes())
                        .ok()
                        .map(IdentitySource::Header)
                } else {
                    one.strip_prefix("$request.querystring.")
                        .filter(|q| !q.is_empty())
                        .map(|q| IdentitySource::QueryString(q.to_string()))
                }
            }
            _ => None,
        };
        if identity.is_none() {
            errors.push(ConfigError::new(
                file,
                "IdentitySource",
                format!("{:?} is not one identity source", conf.identity_source),
                "use [\"$request.header.Authorization\"] or [\"$request.querystring.token\"]",
            ));
        }
        let Some(jwt) = &conf.jwt_configuration else {
            errors.push(ConfigError::new(
                file,
                "JwtConfiguration",
                "missing",
                "add {\"Issuer\": \"https://...\", \"Audience\": [\"...\"]}",
            ));
            return None;
        };
        if jwt.audience.is_empty() {
            errors.push(ConfigError::new(
                file,
                "JwtConfiguration.Audience",
                "must list at least one audience",
                "add the client id or API audience your tokens carry",
            ));
        }
        // AWS requires an issuer; without one any issuer's tokens would pass.
        let issuer = jwt.issuer.clone().unwrap_or_else(|| {
            errors.push(ConfigError::new(
                file,
                "JwtConfiguration.Issuer",
                "missing",
                "set the issuer your tokens carry in \"iss\", e.g. \"https://login.example.com/\"",
            ));
            String::new()
        });
        let bounded = |field: &str,
                       value: Option<u64>,
                       range: std::ops::RangeInclusive<u64>,
                       errors: &mut ConfigErrors| {
            if let Some(v) = value.filter(|v| !range.contains(v)) {
                errors.push(ConfigError::new(
                    file,
                    field,
                    format!("{v} is outside {}..={}", range.start(), range.end()),
                    format!("use a value from {} to {}", range.start(), range.end()),
                ));
            }
        };
        bounded(
            "ClockSkewSeconds",
            conf.clock_skew_seconds,
            0..=3600,
            errors,
        );
        bounded(
            "JwksRefreshSeconds",
            conf.jwks_refresh_seconds,
            1..=7 * 86400,
            errors,
        );
        bounded(
            "JwksMinRefetchSeconds",
            conf.jwks_min_refetch_seconds,
            1..=3600,
            errors,
        );
        let sources = [
            conf.jwks.is_some(),
            conf.jwks_file.is_some(),
            conf.jwks_uri.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            errors.push(ConfigError::new(
                file,
                "Jwks",
                "Jwks, JwksFile and JwksUri are alternatives",
                "keep one of them",
            ));
        }
        let refresh = conf
            .jwks_refresh_seconds
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_REFRESH);
        let min_refetch = conf
            .jwks_min_refetch_seconds
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_MIN_REFETCH);
        let keys = if let Some(inline) = &conf.jwks {
            static_keys(file, "Jwks", inline, errors)
        } else if let Some(rel) = &conf.jwks_file {
            let path = conf_dir.join(rel);
            // Read as any configuration file: regular, bounded, never blocking.
            match crate::config::read::read_text(&path) {
                Ok(t) => match serde_json::from_str(&t) {
                    Ok(v) => static_keys(file, "JwksFile", &v, errors),
                    Err(e) => {
                        errors.push(ConfigError::new(
                            file,
                            "JwksFile",
                            format!("{} is not JSON: {e}", path.display()),
                            "give a JWK Set file ({\"keys\": [...]})",
                        ));
                        None
                    }
                },
                Err(e) => {
                    errors.push(ConfigError::new(
                        file,
                        "JwksFile",
                        format!("cannot read {}: {e}", path.display()),
                        format!("{}; the path is relative to the conf dir", e.fix()),
                    ));
                    None
                }
            }
        } else if let Some(uri) = &conf.jwks_uri {
            if !(uri.starts_with("http://") || uri.starts_with("https://")) {
                errors.push(ConfigError::new(
                    file,
                    "JwksUri",
                    format!("{uri:?} is not an http(s) URL"),
                    "use the IdP's JWKS URL",
                ));
                None
            } else {
                remote(file, id, uri.clone(), None, refresh, min_refetch, errors)
            }
        } else if !issuer.is_empty() {
            let url = format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            );
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                errors.push(ConfigError::new(
                    file,
                    "JwtConfiguration.Issuer",
                    "keys would come from OIDC discovery, but the issuer is not an http(s) URL",
                    "set Jwks, JwksFile or JwksUri",
                ));
                None
            } else {
                remote(
                    file,
                    id,
                    url,
                    Some(issuer.clone()),
                    refresh,
                    min_refetch,
                    errors,
                )
            }
        } else {
            errors.push(ConfigError::new(
                file,
                "Jwks",
                "no key source",
                "set Jwks, JwksFile, JwksUri, or an Issuer URL for OIDC discovery",
            ));
            None
        };
        if errors.0.len() != before {
            return None;
        }
        Some(JwtAuthorizer {
            id: id.to_string(),
            identity: identity?,
            issuer,
            audience: jwt.audience.clone(),
            skew: conf.clock_skew_seconds.unwrap_or(0),
            keys: keys?,
            cache: (0..CACHE_SHARDS)
                .map(|_| RwLock::new(Shard::default()))
                .collect(),
        })
    }
}
