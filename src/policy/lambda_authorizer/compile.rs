//! A REQUEST authorizer's configuration, checked in full: every problem is reported with
//! its field so that one load shows them all.

use super::{ContextSource, LambdaAuthorizer, Source};
use crate::config::{AuthorizerConf, ConfigError, ConfigErrors};
use crate::integration::aws_proxy::{function_ref, PayloadFormat, Target};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;

/// AWS's default TTL when identity sources are set, and its maximum.
const DEFAULT_TTL_S: u64 = 300;
const MAX_TTL_S: u64 = 3600;

/// Finds the function a name stands for, or says why there is none: (problem, fix).
pub type FindFunction<'a> = dyn Fn(&str) -> Result<Target, (String, String)> + 'a;

impl LambdaAuthorizer {
    /// Validates a REQUEST authorizer; `function` finds the function a name stands for
    /// (local, or behind `LambdaEndpoint`), or says why there is none (problem, fix).
    pub fn compile(
        file: &str,
        id: &str,
        conf: &AuthorizerConf,
        function: &FindFunction,
        errors: &mut ConfigErrors,
    ) -> Option<LambdaAuthorizer> {
        let before = errors.0.len();
        let mut err = |field: &str, problem: String, fix: &str| {
            errors.push(ConfigError::new(file, field, problem, fix));
        };
        let format = match conf.authorizer_payload_format_version.as_deref() {
            Some("2.0") => PayloadFormat::V2,
            Some("1.0") => PayloadFormat::V1,
            other => {
                err(
                    "AuthorizerPayloadFormatVersion",
                    format!("{other:?} is not a Lambda authorizer payload format"),
                    "use \"2.0\" or \"1.0\"",
                );
                PayloadFormat::V2
            }
        };
        let simple = conf.enable_simple_responses == Some(true);
        if simple && format == PayloadFormat::V1 {
            err(
                "EnableSimpleResponses",
                "simple responses need payload format 2.0".into(),
                "set AuthorizerPayloadFormatVersion to \"2.0\", or remove EnableSimpleResponses",
            );
        }
        let mut sources = Vec::new();
        for s in &conf.identity_source {
            let parsed = if let Some(h) = s.strip_prefix("$request.header.") {
                http::HeaderName::from_bytes(h.as_bytes())
                    .ok()
                    .map(Source::Header)
            } else if let Some(v) = s.strip_prefix("$stageVariables.") {
                (!v.is_empty()).then(|| Source::StageVariable(v.to_string()))
            } else if let Some(c) = s.strip_prefix("$context.") {
                let c = ContextSource::parse(c);
                if let ContextSource::Unknown(name) = &c {
                    log::warn!("{file}: IdentitySource $context.{name}: apigate has no value for it, so every request is refused 401 (as AWS does for an empty identity source)");
                }
                (!s.ends_with('.')).then_some(Source::Context(c))
            } else {
                s.strip_prefix("$request.querystring.")
                    .filter(|q| !q.is_empty())
                    .map(|q| Source::QueryString(q.to_string()))
            };
            match parsed {
                Some(p) => sources.push(p),
                None => err(
                    "IdentitySource",
                    format!("{s:?} is not an identity source apigate reads"),
                    "use $request.header.NAME, $request.querystring.NAME, $stageVariables.NAME or $context.NAME",
                ),
            }
        }
        let ttl = conf
            .authorizer_result_ttl_in_seconds
            .unwrap_or(if sources.is_empty() { 0 } else { DEFAULT_TTL_S });
        if ttl > MAX_TTL_S {
            err(
                "AuthorizerResultTtlInSeconds",
                format!("{ttl} is outside 0..3600"),
                "use a number of seconds from 0 to 3600 (0: no cache)",
            );
        } else if ttl > 0 && sources.is_empty() {
            err(
                "AuthorizerResultTtlInSeconds",
                "caching needs an identity source to key the cache".into(),
                "add an IdentitySource, or set AuthorizerResultTtlInSeconds to 0",
            );
        }
        let uri = conf.authorizer_uri.as_deref().unwrap_or("");
        let function = match function_ref(uri) {
            None => {
                err(
                    "AuthorizerUri",
                    format!("{uri:?} names no Lambda function"),
                    "use functions/<id>, arn:aws:lambda:REGION:ACCOUNT:function:NAME or its apigateway invocation URI",
                );
                None
            }
            Some(name) => match function(name) {
                Ok(f) => Some(f),
                Err((problem, fix)) => {
                    err("AuthorizerUri", problem, &fix);
                    None
                }
            },
        };
        if errors.0.len() > before {
            return None;
        }
        Some(LambdaAuthorizer {
            id: id.to_string(),
            function: function?,
            format,
            simple,
            sources,
            ttl: Duration::from_secs(ttl),
            cache: Mutex::new(HashMap::new()),
        })
    }
}
