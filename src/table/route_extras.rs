//! What a route may hold besides AWS's settings, compiled for its policy chain: fixed
//! answers, conditional answers, error handlers and call quotas (APIM's `return-response`,
//! `choose`, `on-error`, `quota`).

use crate::config::{ConfigError, ConfigErrors};
use crate::policy::ratelimit::KeySource;
use std::sync::Arc;

/// Headers of a fixed answer or an error handler, checked (`Content-Length` is the
/// gateway's to write); `None` with the error reported.
fn answer_headers(
    file: &str,
    headers: &[(String, String)],
    errors: &mut ConfigErrors,
) -> Option<Vec<(http::HeaderName, http::HeaderValue)>> {
    let mut out = Vec::new();
    for (name, value) in headers {
        let parsed = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        );
        match parsed {
            (Ok(n), Ok(v)) if n != http::header::CONTENT_LENGTH => out.push((n, v)),
            _ => {
                errors.push(ConfigError::new(
                    file,
                    format!("answer header {name}"),
                    "not a header the gateway can write",
                    "use a valid name and value (Content-Length is computed)",
                ));
                return None;
            }
        }
    }
    Some(out)
}

fn compile_answer(
    file: &str,
    conf: &crate::config::StaticAnswerConf,
    errors: &mut ConfigErrors,
) -> Option<Arc<crate::rejection::StaticAnswer>> {
    Some(Arc::new(crate::rejection::StaticAnswer {
        status: conf.status,
        headers: answer_headers(file, &conf.headers, errors)?,
        body: bytes::Bytes::from(conf.body.clone()),
    }))
}

/// A route's fixed answer.
pub(super) fn static_answer(
    file: &str,
    conf: &crate::config::StaticAnswerConf,
    errors: &mut ConfigErrors,
) -> Option<crate::rejection::Rejection> {
    compile_answer(file, conf, errors).map(crate::rejection::Rejection::Answer)
}

/// A route's error handler.
pub(super) fn error_handler(
    file: &str,
    conf: &crate::config::OnErrorConf,
    errors: &mut ConfigErrors,
) -> Option<Arc<crate::rejection::ErrorHandler>> {
    let answer = match &conf.answer {
        Some(a) => Some(compile_answer(file, a, errors)?),
        None => None,
    };
    Some(Arc::new(crate::rejection::ErrorHandler {
        headers: answer_headers(file, &conf.headers, errors)?,
        answer,
    }))
}

/// A route's call quota, checked as a rate limit is (`None` with its errors reported).
pub(super) fn quota(
    file: &str,
    scope: &str,
    conf: &crate::config::RateLimitConf,
    errors: &mut ConfigErrors,
) -> Option<crate::policy::ratelimit::RateLimit> {
    let before = errors.0.len();
    crate::policy::ratelimit::validate(file, "quota", conf, errors);
    let key = KeySource::parse(&conf.key)?;
    (errors.0.len() == before).then(|| crate::policy::ratelimit::RateLimit {
        scope: Arc::from(scope),
        calls: conf.calls,
        period_secs: conf.period_seconds,
        key,
    })
}

/// One `choose`: its branches compiled (`None` with the errors reported).
#[allow(clippy::type_complexity)]
pub(super) fn choice(
    file: &str,
    branches: &[crate::config::BranchConf],
    errors: &mut ConfigErrors,
) -> Option<
    Vec<(
        crate::policy::condition::Condition,
        Option<crate::rejection::Rejection>,
    )>,
> {
    branches
        .iter()
        .map(|b| {
            let condition =
                crate::policy::condition::Condition::compile(file, &b.condition, errors)?;
            let answer = match &b.answer {
                Some(a) => Some(static_answer(file, a, errors)?),
                None => None,
            };
            Some((condition, answer))
        })
        .collect()
}
