//! Lambda REQUEST authorizers (GATEWAY.md 11; AWS "Working with AWS Lambda authorizers for
//! HTTP APIs"): the function gets the request as a 1.0 or 2.0 authorizer event and answers
//! allow or deny, with a context for `$context.authorizer.*` and the integration's event.
//! Answers are cached per identity-source values for `AuthorizerResultTtlInSeconds`.
//!
//! `compile` checks the configuration, `answer` reads what the function said.

pub mod answer;
mod compile;

use crate::integration::aws_proxy::event::{self, EventInput};
use crate::integration::aws_proxy::{PayloadFormat, Target};
use crate::lambda::spec::{ACCOUNT, REGION};
use crate::lambda::Outcome;
use crate::rejection::Rejection;
use answer::Answer;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Cached answers per authorizer: past it, expired ones go, then all (a bound, not an LRU).
const CACHE_CAPACITY: usize = 10_000;

/// How long a remote authorizer function may take (a local one runs under its `Timeout`):
/// API Gateway gives authorizers 10 seconds.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(10);

/// The context a Lambda authorizer returned.
pub type AuthContext = Map<String, Value>;

/// What the chain needs to build an authorizer event.
pub struct LambdaInput<'r> {
    pub event: EventInput<'r>,
    /// The request path without the stage, for the route ARN.
    pub stage_path: &'r str,
}

/// Where one identity value is read from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Header(http::HeaderName),
    QueryString(String),
    /// `$stageVariables.NAME`: the serving stage's value.
    StageVariable(String),
    /// `$context.NAME`, for the context variables an authorizer can be keyed by.
    Context(ContextSource),
}

/// The `$context` variables an identity source may name. AWS accepts any name; one it
/// has no value for is an empty identity source, which is answered 401 (`Unknown`).
#[derive(Debug, Clone, PartialEq)]
pub enum ContextSource {
    SourceIp,
    RouteKey,
    Stage,
    HttpMethod,
    Unknown(String),
}

impl ContextSource {
    pub fn parse(name: &str) -> ContextSource {
        match name {
            "identity.sourceIp" => ContextSource::SourceIp,
            "routeKey" => ContextSource::RouteKey,
            "stage" => ContextSource::Stage,
            "httpMethod" => ContextSource::HttpMethod,
            other => ContextSource::Unknown(other.to_string()),
        }
    }
}

pub struct LambdaAuthorizer {
    id: String,
    function: Target,
    format: PayloadFormat,
    simple: bool,
    sources: Vec<Source>,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Arc<Answer>)>>,
}

impl std::fmt::Debug for LambdaAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LambdaAuthorizer({})", self.id)
    }
}

/// `arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/PATH`, the resource an IAM policy
/// answer names (the path without the stage, as AWS's examples show).
pub fn route_arn(stage: &str, method: &str, path: &str) -> String {
    format!(
        "arn:aws:execute-api:{REGION}:{ACCOUNT}:{}/{stage}/{method}{path}",
        event::API_ID
    )
}

impl LambdaAuthorizer {
    /// The identity values, in `IdentitySource` order; `None` when one is missing or empty
    /// (AWS answers 401 without invoking the function).
    fn identity(&self, input: &EventInput<'_>) -> Option<Vec<String>> {
        let req = input.req;
        self.sources
            .iter()
            .map(|s| match s {
                Source::Header(h) => {
                    let vals: Vec<&str> = req
                        .headers
                        .get_all(h)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .collect();
                    Some(vals.join(","))
                }
                Source::QueryString(q) => {
                    let vals: Vec<String> =
                        crate::mapping::query_pairs(req.uri.query().unwrap_or(""))
                            .filter(|(k, _)| k == q)
                            .map(|(_, v)| v.into_owned())
                            .collect();
                    Some(vals.join(","))
                }
                Source::StageVariable(name) => input.stage_vars.get(name).cloned(),
                Source::Context(c) => match c {
                    ContextSource::SourceIp => Some(input.source_ip.to_string()),
                    ContextSource::RouteKey => Some(input.route_key.to_string()),
                    ContextSource::Stage => Some(input.stage.to_string()),
                    ContextSource::HttpMethod => Some(input.req.method.as_str().to_string()),
                    ContextSource::Unknown(_) => None,
                },
            })
            .map(|v| v.filter(|v| !v.is_empty()))
            .collect()
    }

    /// Judges the request; `Ok` carries the context to pass on.
    pub async fn authorize(
        &self,
        input: &EventInput<'_>,
        stage_path: &str,
    ) -> Result<Arc<AuthContext>, Rejection> {
        let unauthorized = || Rejection::Unauthorized("".into());
        let identity = self.identity(input).ok_or_else(unauthorized)?;
        let arn = route_arn(input.stage, input.req.method.as_str(), stage_path);
        // Length-prefixed, so that no two lists of values share a key.
        let key: String = identity
            .iter()
            .map(|v| format!("{}:{v}", v.len()))
            .collect();
        let cached = (!self.sources.is_empty() && !self.ttl.is_zero())
            .then(|| {
                let mut cache = self.cache.lock();
                match cache.get(&key) {
                    Some((until, a)) if *until > Instant::now() => Some(a.clone()),
                    Some(_) => {
                        cache.remove(&key);
                        None
                    }
                    None => None,
                }
            })
            .flatten();
        let answer = match cached {
            Some(a) => a,
            None => {
                let a = Arc::new(self.invoke(input, &identity, &arn).await?);
                if !self.sources.is_empty() && !self.ttl.is_zero() {
                    let now = Instant::now();
                    let mut cache = self.cache.lock();
                    if cache.len() >= CACHE_CAPACITY {
                        cache.retain(|_, (until, _)| *until > now);
                        if cache.len() >= CACHE_CAPACITY {
                            cache.clear();
                        }
                    }
                    cache.insert(key, (now + self.ttl, a.clone()));
                }
                a
            }
        };
        if !answer.verdict.allows(&arn) {
            return Err(Rejection::Forbidden);
        }
        Ok(Arc::new(answer.context.clone()))
    }

    /// Runs the function; its errors, crashes, timeouts and unreadable answers are 500.
    async fn invoke(
        &self,
        input: &EventInput<'_>,
        identity: &[String],
        arn: &str,
    ) -> Result<Answer, Rejection> {
        let payload = event_for(self.format, input, identity, arn);
        let failed = |why: &str| {
            log::warn!("authorizer {}: {why}", self.id);
            Rejection::Other(500)
        };
        let outcome = self
            .function
            .invoke(payload.into(), REMOTE_TIMEOUT)
            .await
            .map_err(|e| failed(&e))?;
        match outcome {
            Outcome::Answered(p) => answer::read(&p, self.simple).ok_or_else(|| {
                failed(&format!(
                    "an answer API Gateway cannot read: {}",
                    String::from_utf8_lossy(&p[..p.len().min(200)])
                ))
            }),
            _ => Err(failed("the function failed")),
        }
    }
}

/// The authorizer event: the integration event of the same version (no body), with the
/// authorizer's fields.
fn event_for(
    format: PayloadFormat,
    input: &EventInput<'_>,
    identity: &[String],
    arn: &str,
) -> Vec<u8> {
    let mut v = match format {
        PayloadFormat::V1 => event::v1(input),
        PayloadFormat::V2 => event::v2(input),
    };
    if let Some(o) = v.as_object_mut() {
        for k in ["body", "isBase64Encoded"] {
            o.remove(k);
        }
        o.insert("type".into(), json!("REQUEST"));
        match format {
            PayloadFormat::V2 => {
                o.insert("routeArn".into(), json!(arn));
                o.insert("identitySource".into(), json!(identity));
            }
            PayloadFormat::V1 => {
                let joined = identity.join(",");
                o.insert("methodArn".into(), json!(arn));
                o.insert("identitySource".into(), json!(joined));
                o.insert("authorizationToken".into(), json!(joined));
            }
        }
    }
    serde_json::to_vec(&v).unwrap_or_default()
}
