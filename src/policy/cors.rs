//! `CorsConfiguration` from `api.json`, AWS semantics: the gateway answers preflights
//! itself (before routing and authorization) and owns the `access-control-*` headers of
//! every response; a disallowed origin gets none.

use crate::config::{ConfigError, ConfigErrors, CorsConf};
use http::HeaderValue;

#[derive(Debug, Clone)]
enum OriginRule {
    Any,
    Exact(String),
    /// `https://*.example.com`: prefix and suffix around one `*`.
    Wildcard(String, String),
}

/// Everything is decided and every header value built at load; a request only compares.
#[derive(Debug, Clone)]
pub struct Cors {
    /// Lowercase, so an origin is compared without allocating.
    origins: Vec<OriginRule>,
    any_origin: bool,
    methods: Vec<String>,
    allow_methods: Option<HeaderValue>,
    methods_any: bool,
    allow_headers: Option<HeaderValue>,
    headers_any: bool,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    credentials: bool,
}

/// Headers a response gets, as (name, value) pairs.
pub type HeaderList = Vec<(&'static str, HeaderValue)>;

impl Cors {
    pub fn compile(conf: &CorsConf, errors: &mut ConfigErrors) -> Option<Cors> {
        let file = "api.json";
        let mut origins = Vec::new();
        for o in &conf.allow_origins {
            let rule = if o == "*" {
                OriginRule::Any
            } else if let Some((pre, post)) = o.split_once('*') {
                if post.contains('*') || !pre.contains("://") {
                    errors.push(ConfigError::new(file, "CorsConfiguration.AllowOrigins", format!("{o:?} is not a valid origin pattern"), "use \"*\", \"https://app.example.com\" or one wildcard like \"https://*.example.com\""));
                    continue;
                }
                OriginRule::Wildcard(pre.to_ascii_lowercase(), post.to_ascii_lowercase())
            } else {
                OriginRule::Exact(o.trim_end_matches('/').to_ascii_lowercase())
            };
            origins.push(rule);
        }
        let any_origin = origins.iter().any(|r| matches!(r, OriginRule::Any));
        if conf.allow_credentials && any_origin {
            errors.push(ConfigError::new(
                file,
                "CorsConfiguration.AllowCredentials",
                "cannot be true when AllowOrigins contains \"*\"",
                "list the allowed origins explicitly",
            ));
        }
        let mut value = |field: &str, items: &[String]| {
            if items.is_empty() {
                return None;
            }
            let joined = items.join(",");
            HeaderValue::from_str(&joined)
                .map_err(|_| {
                    errors.push(ConfigError::new(
                        file,
                        format!("CorsConfiguration.{field}"),
                        format!("{joined:?} cannot be sent as a header value"),
                        "use visible ASCII names",
                    ))
                })
                .ok()
        };
        let cors = Cors {
            allow_methods: value("AllowMethods", &conf.allow_methods),
            allow_headers: value("AllowHeaders", &conf.allow_headers),
            expose_headers: value("ExposeHeaders", &conf.expose_headers),
            origins,
            any_origin,
            methods: conf.allow_methods.clone(),
            methods_any: conf.allow_methods.iter().any(|m| m == "*"),
            headers_any: conf.allow_headers.iter().any(|h| h == "*"),
            max_age: conf.max_age.map(HeaderValue::from),
            credentials: conf.allow_credentials,
        };
        Some(cors)
    }

    fn allows(&self, origin: &str) -> bool {
        let o = origin.as_bytes();
        self.origins.iter().any(|r| match r {
            OriginRule::Any => true,
            OriginRule::Exact(e) => e.as_bytes().eq_ignore_ascii_case(o),
            OriginRule::Wildcard(pre, post) => {
                o.len() > pre.len() + post.len()
                    && o[..pre.len()].eq_ignore_ascii_case(pre.as_bytes())
                    && o[o.len() - post.len()..].eq_ignore_ascii_case(post.as_bytes())
            }
        })
    }

    fn allow_origin_value(&self, origin: &str) -> Option<HeaderValue> {
        if self.any_origin && !self.credentials {
            return Some(HeaderValue::from_static("*"));
        }
        HeaderValue::from_str(origin).ok()
    }

    /// The preflight answer when `req` is one (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`); preflights are answered before routing and
    /// authorization (AWS).
    pub fn preflight_for(&self, req: &http::request::Parts) -> Option<HeaderList> {
        if req.method != http::Method::OPTIONS {
            return None;
        }
        let get = |name| req.headers.get(name).and_then(|v| v.to_str().ok());
        let origin = get(http::header::ORIGIN)?;
        let method = get(http::header::ACCESS_CONTROL_REQUEST_METHOD)?;
        Some(self.preflight(
            origin,
            method,
            get(http::header::ACCESS_CONTROL_REQUEST_HEADERS),
        ))
    }

    /// The answer to a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`).
    pub fn preflight(
        &self,
        origin: &str,
        method: &str,
        request_headers: Option<&str>,
    ) -> HeaderList {
        let mut out = vec![("vary", HeaderValue::from_static("Origin"))];
        if !self.allows(origin) {
            return out;
        }
        let method_ok =
            self.methods_any || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method));
        if !method_ok {
            return out;
        }
        let Some(origin_value) = self.allow_origin_value(origin) else {
            return out;
        };
        out.push(("access-control-allow-origin", origin_value));
        // With "*", the request's own method and headers are echoed back.
        let methods = if self.methods_any {
            HeaderValue::from_str(method).ok()
        } else {
            self.allow_methods.clone()
        };
        if let Some(v) = methods {
            out.push(("access-control-allow-methods", v));
        }
        let headers = if self.headers_any {
            request_headers.and_then(|h| HeaderValue::from_str(h).ok())
        } else {
            self.allow_headers.clone()
        };
        if let Some(v) = headers {
            out.push(("access-control-allow-headers", v));
        }
        if let Some(v) = &self.max_age {
            out.push(("access-control-max-age", v.clone()));
        }
        if self.credentials {
            out.push((
                "access-control-allow-credentials",
                HeaderValue::from_static("true"),
            ));
        }
        out
    }

    /// Headers for a non-preflight response to `origin` (empty if the origin is not allowed).
    pub fn response_headers(&self, origin: Option<&str>) -> HeaderList {
        let mut out = vec![("vary", HeaderValue::from_static("Origin"))];
        let Some(origin) = origin.filter(|o| self.allows(o)) else {
            return out;
        };
        let Some(origin_value) = self.allow_origin_value(origin) else {
            return out;
        };
        out.push(("access-control-allow-origin", origin_value));
        if self.credentials {
            out.push((
                "access-control-allow-credentials",
                HeaderValue::from_static("true"),
            ));
        }
        if let Some(v) = &self.expose_headers {
            out.push(("access-control-expose-headers", v.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], creds: bool) -> Cors {
        let conf = CorsConf {
            allow_origins: origins.iter().map(|s| s.to_string()).collect(),
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["authorization".into(), "content-type".into()],
            expose_headers: vec!["x-total".into()],
            max_age: Some(600),
            allow_credentials: creds,
        };
        Cors::compile(&conf, &mut ConfigErrors::default()).unwrap()
    }

    fn get<'a>(h: &'a HeaderList, name: &str) -> Option<&'a str> {
        h.iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.to_str().ok())
    }

    #[test]
    fn preflight_for_allowed_and_disallowed_origins() {
        let c = cors(&["https://app.example.com"], true);
        let h = c.preflight("https://app.example.com", "POST", Some("content-type"));
        assert_eq!(
            get(&h, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(get(&h, "access-control-allow-methods"), Some("GET,POST"));
        assert_eq!(
            get(&h, "access-control-allow-headers"),
            Some("authorization,content-type")
        );
        assert_eq!(get(&h, "access-control-max-age"), Some("600"));
        assert_eq!(get(&h, "access-control-allow-credentials"), Some("true"));
        assert_eq!(get(&h, "vary"), Some("Origin"));
        let h = c.preflight("https://evil.example", "POST", None);
        assert_eq!(get(&h, "access-control-allow-origin"), None);
        let h = c.preflight("https://app.example.com", "DELETE", None);
        assert_eq!(get(&h, "access-control-allow-origin"), None);
    }

    #[test]
    fn wildcard_origins() {
        let c = cors(&["https://*.example.com"], false);
        assert!(c.allows("https://a.example.com"));
        assert!(!c.allows("https://example.com"));
        assert!(!c.allows("http://a.example.com"));
        let c = cors(&["https://*"], false);
        assert!(c.allows("https://anything.test"));
        assert!(!c.allows("http://anything.test"));
        let c = cors(&["*"], false);
        let h = c.response_headers(Some("http://x"));
        assert_eq!(get(&h, "access-control-allow-origin"), Some("*"));
        assert_eq!(get(&h, "access-control-expose-headers"), Some("x-total"));
    }

    #[test]
    fn credentials_with_star_is_a_config_error() {
        let conf = CorsConf {
            allow_origins: vec!["*".into()],
            allow_credentials: true,
            ..CorsConf::default()
        };
        let mut errors = ConfigErrors::default();
        Cors::compile(&conf, &mut errors);
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].field, "CorsConfiguration.AllowCredentials");
    }
}
