//! AWS_PROXY: the request becomes a Lambda event (payload format 1.0 or 2.0), the function
//! is invoked on the local host (`crate::lambda`) or through a remote Invoke API
//! (`crate::lambda::remote`), and its answer is read back into HTTP.

pub mod answer;
pub mod event;
pub mod event_json;
pub mod request;
#[cfg(test)]
mod tests;

pub use answer::Answer;
pub use event::EventInput;

use crate::lambda::remote::{RemoteError, RemoteFunction};
use crate::lambda::{Function, InvokeError, Outcome};
use crate::rejection::Rejection;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Lambda's synchronous invocation payload limit: larger request bodies get 413.
pub const MAX_REQUEST_BODY: u64 = 6 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    V1,
    V2,
}

/// Where the function runs.
#[derive(Debug, Clone)]
pub enum Target {
    /// On the local host, `functions/*.json`.
    Local(Arc<Function>),
    /// Behind `LambdaEndpoint`.
    Remote(Arc<RemoteFunction>),
}

impl Target {
    pub fn name(&self) -> &str {
        match self {
            Target::Local(f) => &f.spec.name,
            Target::Remote(f) => &f.name,
        }
    }

    /// One invocation whose answer the caller reads itself (a Lambda authorizer's): the
    /// function's outcome, or why it could not be invoked (for the log). A local function
    /// runs under its own `Timeout`; a remote one is bounded by `timeout`.
    pub async fn invoke(&self, event: Bytes, timeout: Duration) -> Result<Outcome, String> {
        match self {
            Target::Local(f) => f
                .invoke(event, f.spec.timeout)
                .await
                .map(|i| i.outcome)
                .map_err(|e| format!("not invoked: {e:?}")),
            Target::Remote(r) => match tokio::time::timeout(timeout, r.invoke(event)).await {
                Err(_) => Err(format!("no answer from {} in {timeout:?}", r.endpoint.url)),
                Ok(Err(RemoteError::Unreachable(why))) => Err(format!("Invoke API failed: {why}")),
                Ok(Err(RemoteError::Refused(status))) => {
                    Err(format!("{} answered {status}", r.endpoint.url))
                }
                Ok(Ok(outcome)) => Ok(outcome),
            },
        }
    }
}

#[derive(Debug)]
pub struct AwsProxy {
    pub function: Target,
    pub format: PayloadFormat,
    /// `TimeoutInMillis`: past it the client gets 503 (the function's own `Timeout` is a
    /// function error: 500).
    pub timeout: Duration,
    /// The stage's variables, for `stageVariables`.
    pub stage_vars: BTreeMap<String, String>,
}

/// What an invocation produced for the client, and whether it was a cold start.
pub struct Called {
    pub result: Result<Answer, Rejection>,
    pub cold_start: bool,
}

impl AwsProxy {
    pub fn event(&self, input: &EventInput<'_>) -> Bytes {
        Bytes::from(match self.format {
            PayloadFormat::V1 => event_json::v1(input),
            PayloadFormat::V2 => event_json::v2(input),
        })
    }

    /// Invokes the function with `event` and reads its answer as API Gateway does.
    pub async fn call(&self, event: Bytes) -> Called {
        // TimeoutInMillis bounds everything the client waits for (queue and cold start
        // included, as in AWS): past it, 503. The function's own Timeout, from the end of
        // its init, is a function error: 500.
        let f = match &self.function {
            Target::Local(f) => f,
            Target::Remote(r) => return self.call_remote(r, event).await,
        };
        // Boxed: the invocation's future is large (a cold start's process spawn); held
        // inline it would be copied by every move of the request's future around it.
        let invoking = Box::pin(f.invoke(event, f.spec.timeout));
        let invoked = tokio::time::timeout(self.timeout, invoking).await;
        let (outcome, cold_start) = match invoked {
            Ok(Ok(i)) => (i.outcome, i.cold_start),
            Err(_) => {
                return Called {
                    result: Err(Rejection::Timeout),
                    cold_start: false,
                }
            }
            Ok(Err(InvokeError::Throttled)) => {
                // Lambda's 429 TooManyRequestsException reaches HTTP API clients as 500.
                return Called {
                    result: Err(Rejection::Other(500)),
                    cold_start: false,
                };
            }
            Ok(Err(InvokeError::StartFailed)) => {
                return Called {
                    result: Err(Rejection::Other(500)),
                    cold_start: true,
                }
            }
        };
        Called {
            result: self.read(outcome),
            cold_start,
        }
    }

    /// A remote invocation: the endpoint's failures (unreachable, refused) are invocation
    /// failures, which HTTP APIs answer 500; past `TimeoutInMillis`, 503.
    async fn call_remote(&self, r: &RemoteFunction, event: Bytes) -> Called {
        // Boxed as above: Pingora's connector futures make the call large.
        let result = match tokio::time::timeout(self.timeout, Box::pin(r.invoke(event))).await {
            Err(_) => Err(Rejection::Timeout),
            Ok(Ok(outcome)) => self.read(outcome),
            Ok(Err(e)) => {
                match e {
                    RemoteError::Unreachable(why) => {
                        log::warn!("function {}: Invoke API failed: {why}", r.name)
                    }
                    RemoteError::Refused(status) => {
                        log::warn!("function {}: {} answered {status}", r.name, r.endpoint.url)
                    }
                }
                Err(Rejection::Other(500))
            }
        };
        Called {
            result,
            cold_start: false,
        }
    }

    /// The function's outcome as the client's answer.
    fn read(&self, outcome: Outcome) -> Result<Answer, Rejection> {
        match outcome {
            Outcome::Answered(payload) => {
                let read = match self.format {
                    PayloadFormat::V1 => answer::v1(&payload),
                    PayloadFormat::V2 => answer::v2(&payload),
                };
                read.ok_or_else(|| {
                    log::warn!(
                        "function {}: an answer API Gateway cannot read: {}",
                        self.function.name(),
                        String::from_utf8_lossy(&payload[..payload.len().min(200)])
                    );
                    Rejection::Other(500)
                })
            }
            Outcome::FunctionError(_) | Outcome::Crashed | Outcome::TimedOut => {
                Err(Rejection::Other(500))
            }
        }
    }
}

/// The function name an `IntegrationUri` names: `functions/<id>`, a function ARN
/// (`arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`), or API Gateway's
/// invocation URI around one (`arn:aws:apigateway:REGION:lambda:path/2015-03-31/functions/ARN/invocations`).
pub fn function_ref(uri: &str) -> Option<&str> {
    if let Some(id) = uri.strip_prefix("functions/") {
        return (!id.is_empty()).then_some(id);
    }
    let arn = match uri.split_once(":lambda:path/2015-03-31/functions/") {
        Some((_, rest)) => rest.strip_suffix("/invocations")?,
        None => uri,
    };
    let rest = arn.strip_prefix("arn:")?;
    let mut parts = rest.splitn(7, ':');
    let (_partition, service, _region, _account, kind) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if service != "lambda" || kind != "function" {
        return None;
    }
    parts.next().filter(|n| !n.is_empty())
}
