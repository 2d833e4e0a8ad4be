//! A route's policy chain: its IP filter, throttling, rate limits keyed by address or
//! header, the JWT authorizer, then rate limits keyed by a claim. The chain reads a plain
//! view of the request (no Pingora type), so the bench and the unit tests run the very
//! code requests run. Api- and stage-scope IP filters are judged before routing (a
//! forbidden client learns nothing about routes) with [`permits`].

use super::check_header::HeaderCheck;
use super::condition::Condition;
use super::ipfilter::IpFilter;
use super::jwt::{self, AuthReject, Claims, JwtAuthorizer};
use super::lambda_authorizer::{AuthContext, LambdaAuthorizer, LambdaInput};
use super::ratelimit::{self, Decision, KeySource, RateLimit, Store};
use super::subscription::SubscriptionCheck;
use super::throttle::TokenBucket;
use crate::rejection::Rejection;
use std::net::IpAddr;
use std::sync::Arc;

/// What the chain sees of a request.
pub struct RequestView<'r> {
    pub headers: &'r http::HeaderMap,
    pub query: Option<&'r str>,
    /// The client's address (the peer, or read through trusted proxies).
    pub client_ip: IpAddr,
    /// `client_ip` as text, formatted once per request (rate-limit keys use it).
    pub client_ip_str: &'r str,
    pub method: &'r http::Method,
    /// What a Lambda authorizer's event is built from (`None` where no route has one).
    pub lambda: Option<LambdaInput<'r>>,
}

/// A route's policies, compiled at load (api, stage and route scopes folded together).
#[derive(Debug, Default)]
pub struct RoutePolicies {
    /// The route's own IP filter (api and stage filters run before route selection).
    pub ip_filter: Option<IpFilter>,
    /// AWS stage throttling for this route (`None`: unlimited); shared with the table this
    /// one replaced when the settings are unchanged, so a reload does not refill buckets.
    pub throttle: Option<Arc<TokenBucket>>,
    pub rate_limits: Vec<RateLimit>,
    pub authorizer: Option<Arc<JwtAuthorizer>>,
    /// A Lambda REQUEST authorizer (a route has one authorizer: this or the JWT one).
    pub lambda_authorizer: Option<Arc<LambdaAuthorizer>>,
    /// `AuthorizationScopes`: a token needs one of them.
    pub scopes: Vec<String>,
    /// APIM subscription keys, checked before any other policy (as APIM's gateway does).
    pub subscription: Option<Arc<SubscriptionCheck>>,
    /// Headers the request must carry (APIM's `check-header`), after the IP filter.
    pub header_checks: Vec<HeaderCheck>,
    /// The refusal of a failed token when the route words it (else AWS's 401).
    pub auth_failure: Option<Rejection>,
    /// The route's fixed answer (`Rejection::Answer`), given once every policy admits.
    pub answer: Option<Rejection>,
    /// Call quotas: counted after the rate limits; no `RateLimit-*` headers (APIM's).
    pub quotas: Vec<RateLimit>,
    /// Applied to the route's error answers when they are written (`proxy::respond`).
    pub on_error: Option<Arc<crate::rejection::ErrorHandler>>,
    /// Conditional fixed answers (APIM's `choose`): in each list the first branch whose
    /// condition holds decides, answering (`Some`) or letting the request go on (`None`).
    pub choices: Vec<Vec<(Condition, Option<Rejection>)>>,
}

/// What the chain leaves for the rest of the request, admitted or not.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The verified token's claims (mappings, claim-keyed limits, access logs).
    pub claims: Option<Arc<Claims>>,
    /// The context a Lambda authorizer returned (`$context.authorizer.NAME`, events).
    pub lambda_context: Option<Arc<AuthContext>>,
    /// The tightest rate-limit decision, reported in `RateLimit-*` headers; also on
    /// answers refused before the limits were counted.
    pub rate: Option<Decision>,
}

/// Whether an optional IP filter lets `ip` pass.
pub fn permits(filter: Option<&IpFilter>, ip: IpAddr) -> bool {
    filter.is_none_or(|f| f.permits(ip))
}

impl RoutePolicies {
    /// Runs the chain in AWS's order; `Err` is the answer to give instead of the backend's.
    ///
    /// What only some requests wait for (a refusal's peek, a Lambda authorizer, a Redis
    /// store, a token not in the cache) is awaited boxed, so that this future, held inline
    /// by every request's `request_filter`, stays small.
    pub async fn admit(
        &self,
        req: &RequestView<'_>,
        store: &Store,
        out: &mut Outcome,
    ) -> Result<(), Rejection> {
        if let Some(s) = &self.subscription {
            s.check(req.headers, req.query)?;
        }
        if !permits(self.ip_filter.as_ref(), req.client_ip) {
            Box::pin(self.peek(req, store, out)).await;
            return Err(Rejection::Forbidden);
        }
        for check in &self.header_checks {
            check.check(req.headers)?;
        }
        // Throttling comes before the authorizer: a throttled request costs no verification.
        if self.throttle.as_ref().is_some_and(|b| !b.try_acquire()) {
            Box::pin(self.peek(req, store, out)).await;
            return Err(Rejection::Throttled);
        }
        if !self.count(req, store, out, false).await {
            return Err(Rejection::RateLimited);
        }
        if let Some(auth) = &self.authorizer {
            let verdict = match jwt::identity::token(req.headers, req.query, auth.identity_source())
            {
                Ok(token) => auth.authorize(token.as_deref(), &self.scopes).await,
                Err(reject) => Err(reject),
            };
            match verdict {
                Ok(claims) => out.claims = Some(claims),
                Err(AuthReject::Unauthorized { www_authenticate }) => {
                    return Err(match &self.auth_failure {
                        Some(worded) => worded.clone(),
                        None => Rejection::Unauthorized(www_authenticate.into()),
                    })
                }
                Err(AuthReject::Forbidden) => return Err(Rejection::Forbidden),
            }
        }
        if let Some(auth) = &self.lambda_authorizer {
            let Some(input) = &req.lambda else {
                return Err(Rejection::Other(500));
            };
            out.lambda_context =
                Some(Box::pin(auth.authorize(&input.event, input.stage_path)).await?);
        }
        // Limits keyed by a claim can only be counted once the token is verified.
        if !self.count(req, store, out, true).await {
            return Err(Rejection::RateLimited);
        }
        for quota in &self.quotas {
            let decision = {
                let key = key(req, out, quota);
                store
                    .hit(&quota.scope, &key, quota.calls, quota.period_secs)
                    .await
            };
            if !decision.allowed {
                return Err(Rejection::QuotaExceeded(decision.reset_secs));
            }
        }
        for choice in &self.choices {
            if let Some((_, Some(answer))) = choice.iter().find(|(c, _)| c.holds(req)) {
                return Err(answer.clone());
            }
        }
        if let Some(answer) = &self.answer {
            return Err(answer.clone());
        }
        Ok(())
    }

    /// Counts the request against the limits keyed by a claim (or the others); false when
    /// one refuses it. Limits after a refusing one are not counted (the request is refused
    /// anyway), but they are peeked so that `Retry-After` also covers them.
    async fn count(
        &self,
        req: &RequestView<'_>,
        store: &Store,
        out: &mut Outcome,
        claim_keys: bool,
    ) -> bool {
        if self.rate_limits.is_empty() {
            return true;
        }
        let mut limits = self
            .rate_limits
            .iter()
            .filter(|l| matches!(l.key, KeySource::Claim(_)) == claim_keys);
        while let Some(limit) = limits.next() {
            let decision = {
                let key = key(req, out, limit);
                store
                    .hit(&limit.scope, &key, limit.calls, limit.period_secs)
                    .await
            };
            fold(out, decision);
            if !decision.allowed {
                for rest in limits {
                    let d = peek_one(req, out, rest, store).await;
                    fold(out, d);
                }
                return false;
            }
        }
        true
    }

    /// For an answer refused before the rate limits were counted (IP filter 403, throttle
    /// 429): fills `out.rate` from the limits as they stand, counting nothing, so the
    /// answer still carries `RateLimit-*` headers. Limits keyed by a claim are skipped
    /// while there are no verified claims.
    ///
    /// The result is always `allowed`: no limit refused this request, so it gets no
    /// `Retry-After` from a limit.
    async fn peek(&self, req: &RequestView<'_>, store: &Store, out: &mut Outcome) {
        if out.rate.is_some() {
            return;
        }
        for limit in &self.rate_limits {
            if matches!(limit.key, KeySource::Claim(_)) && out.claims.is_none() {
                continue;
            }
            let d = peek_one(req, out, limit, store).await;
            fold(out, d);
        }
        if let Some(d) = &mut out.rate {
            d.allowed = true;
        }
    }
}

/// Keeps the decision to report for the request's limits so far.
fn fold(out: &mut Outcome, d: Decision) {
    out.rate = Some(match out.rate {
        Some(before) => ratelimit::combine(before, d),
        None => d,
    });
}

/// The state of one limit for this request, counting nothing.
async fn peek_one(
    req: &RequestView<'_>,
    out: &Outcome,
    limit: &RateLimit,
    store: &Store,
) -> Decision {
    let key = key(req, out, limit);
    store
        .peek(&limit.scope, &key, limit.calls, limit.period_secs)
        .await
}

/// The value this request is counted under for `limit` (borrowed from the request).
fn key<'a>(
    req: &RequestView<'a>,
    out: &'a Outcome,
    limit: &RateLimit,
) -> std::borrow::Cow<'a, [u8]> {
    ratelimit::key_bytes(
        &limit.key,
        req.headers,
        req.client_ip_str,
        out.claims.as_deref(),
    )
}
