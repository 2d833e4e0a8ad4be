//! Every answer the gateway gives in place of the backend's: its status, its AWS-style
//! `{"message": ...}` body and the reason it is counted under. Policies return one, the proxy
//! writes it; nothing else decides what a refusal looks like.

/// Why the gateway answered a request itself, or failed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// 400: a request the gateway cannot route or forward (see `request_path`).
    BadRequest,
    /// 401, with the `www-authenticate` value the authorizer chose.
    Unauthorized(Box<str>),
    /// 403: an IP filter, or a valid token without the route's scopes.
    Forbidden,
    /// 404: no stage or route matches (AWS answers 404, never 405).
    NotFound,
    /// 408: the client was too slow sending its request.
    ClientTimeout,
    /// 413: the body is over `MaxBodyBytes`.
    TooLarge,
    /// 501: a transfer coding the gateway does not implement (RFC 9112 6.1).
    NotImplemented,
    /// 414: the request line alone is over `MaxRequestHeadBytes`.
    UriTooLong,
    /// 431: request line and header values are over `MaxRequestHeadBytes` (AWS's quota).
    HeadersTooLarge,
    /// 429 from the stage's token bucket (AWS throttling).
    Throttled,
    /// 429 from a `RateLimit` policy; the answer carries `Retry-After`.
    RateLimited,
    /// 502: the backend refused, reset or answered something that is not HTTP.
    BadGateway,
    /// 503: the backend did not answer within `TimeoutInMillis`.
    Timeout,
    /// 503: `MaxConnections` client connections are open; the new one is closed.
    Overloaded,
    /// 401: an APIM API requires a subscription key and the request has none.
    SubscriptionKeyMissing,
    /// 401: the subscription key is not one of an active subscription's for the API.
    SubscriptionKeyInvalid,
    /// A refusal a policy words itself (APIM's `check-header`, `validate-jwt` messages):
    /// its status and message.
    Policy(u16, Box<str>),
    /// 403: a call quota is used up; it renews in this many seconds.
    QuotaExceeded(u64),
    /// A fixed answer the route gives instead of calling its backend (APIM's
    /// `return-response`, `mock-response`): not a refusal, counted under no reason.
    Answer(std::sync::Arc<StaticAnswer>),
    /// Any other status an error carried (Pingora's own); counted under no reason.
    Other(u16),
}

/// Whose gateway a table's own answers imitate: AWS's `{"message": ...}` or Azure API
/// Management's `{"statusCode": N, "message": ...}` (an APIOps artifacts directory).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dialect {
    #[default]
    Aws,
    Apim,
}

/// A fixed answer, compiled at load (header names and values checked there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticAnswer {
    pub status: u16,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub body: bytes::Bytes,
}

/// What a route does to the error answers it gives (APIM's `on-error`): headers added, or a
/// fixed answer in their place. A route's own fixed answer is not an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorHandler {
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub answer: Option<std::sync::Arc<StaticAnswer>>,
}

/// The metric label of a rejection: a fixed set, so clients cannot create series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NotFound,
    Unauthorized,
    Forbidden,
    Throttled,
    RateLimited,
    Timeout,
    BadGateway,
    TooLarge,
    BadRequest,
    Overloaded,
}

impl Reason {
    pub const ALL: [Reason; 10] = [
        Reason::NotFound,
        Reason::Unauthorized,
        Reason::Forbidden,
        Reason::Throttled,
        Reason::RateLimited,
        Reason::Timeout,
        Reason::BadGateway,
        Reason::TooLarge,
        Reason::BadRequest,
        Reason::Overloaded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotFound => "not_found",
            Reason::Unauthorized => "unauthorized",
            Reason::Forbidden => "forbidden",
            Reason::Throttled => "throttled",
            Reason::RateLimited => "rate_limited",
            Reason::Timeout => "timeout",
            Reason::BadGateway => "bad_gateway",
            Reason::TooLarge => "too_large",
            Reason::BadRequest => "bad_request",
            Reason::Overloaded => "overloaded",
        }
    }
}

impl Rejection {
    pub fn status(&self) -> u16 {
        match self {
            Rejection::BadRequest => 400,
            Rejection::Unauthorized(_)
            | Rejection::SubscriptionKeyMissing
            | Rejection::SubscriptionKeyInvalid => 401,
            Rejection::Forbidden | Rejection::QuotaExceeded(_) => 403,
            Rejection::NotFound => 404,
            Rejection::ClientTimeout => 408,
            Rejection::TooLarge => 413,
            Rejection::UriTooLong => 414,
            Rejection::HeadersTooLarge => 431,
            Rejection::Throttled | Rejection::RateLimited => 429,
            Rejection::NotImplemented => 501,
            Rejection::BadGateway => 502,
            Rejection::Timeout | Rejection::Overloaded => 503,
            Rejection::Other(status) | Rejection::Policy(status, _) => *status,
            Rejection::Answer(a) => a.status,
        }
    }

    /// AWS's message for the status (`$context.error.message`, and the JSON body).
    pub fn message(&self) -> &'static str {
        match self.status() {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            408 => "Request Timeout",
            413 => "Request Entity Too Large",
            414 => "Request-URI Too Long",
            431 => "Request Header Fields Too Large",
            429 => "Too Many Requests",
            501 => "Not Implemented",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        }
    }

    /// The JSON body AWS sends with the status.
    pub fn body(&self) -> String {
        format!("{{\"message\":\"{}\"}}", self.message())
    }

    /// The body in `dialect`: APIM's gateway answers `{"statusCode": N, "message": ...}`
    /// with its own wording where it has one (a refused rate limit says when to retry).
    pub fn body_in(&self, dialect: Dialect, retry_after_secs: Option<u64>) -> String {
        if let (Dialect::Apim, Rejection::QuotaExceeded(s)) = (dialect, self) {
            return format!(
                "{{\"statusCode\":403,\"message\":\"Out of call volume quota. Quota will be replenished in {:02}:{:02}:{:02}.\"}}",
                s / 3600,
                s % 3600 / 60,
                s % 60
            );
        }
        if let Rejection::Policy(status, message) = self {
            let body = match dialect {
                Dialect::Aws => serde_json::json!({ "message": &**message }),
                Dialect::Apim => serde_json::json!({ "statusCode": status, "message": &**message }),
            };
            return body.to_string();
        }
        if let (Dialect::Apim, Rejection::RateLimited, Some(s)) = (dialect, self, retry_after_secs)
        {
            return format!(
                "{{\"statusCode\":429,\"message\":\"Rate limit is exceeded. Try again in {s} seconds.\"}}"
            );
        }
        let message = match (dialect, self) {
            (Dialect::Aws, _) => return self.body(),
            (_, Rejection::NotFound) => "Resource not found",
            // APIM's validate-jwt lets each policy word it; this is apigate's wording *(choice)*.
            (_, Rejection::Unauthorized(_)) => "Unauthorized. Access token is missing or invalid.",
            (_, Rejection::RateLimited | Rejection::Throttled) => "Rate limit is exceeded.",
            (_, Rejection::SubscriptionKeyMissing) => "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.",
            (_, Rejection::SubscriptionKeyInvalid) => "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.",
            _ => self.message(),
        };
        format!(
            "{{\"statusCode\":{},\"message\":\"{message}\"}}",
            self.status()
        )
    }

    pub fn reason(&self) -> Option<Reason> {
        Some(match self {
            Rejection::BadRequest | Rejection::ClientTimeout | Rejection::NotImplemented => {
                Reason::BadRequest
            }
            Rejection::Unauthorized(_)
            | Rejection::SubscriptionKeyMissing
            | Rejection::SubscriptionKeyInvalid => Reason::Unauthorized,
            Rejection::Forbidden => Reason::Forbidden,
            Rejection::NotFound => Reason::NotFound,
            Rejection::TooLarge | Rejection::UriTooLong | Rejection::HeadersTooLarge => {
                Reason::TooLarge
            }
            Rejection::Overloaded => Reason::Overloaded,
            Rejection::Throttled => Reason::Throttled,
            Rejection::RateLimited | Rejection::QuotaExceeded(_) => Reason::RateLimited,
            Rejection::BadGateway => Reason::BadGateway,
            Rejection::Timeout => Reason::Timeout,
            Rejection::Policy(status, _) => match status {
                401 => Reason::Unauthorized,
                403 => Reason::Forbidden,
                429 => Reason::RateLimited,
                _ => Reason::BadRequest,
            },
            Rejection::Other(_) | Rejection::Answer(_) => return None,
        })
    }

    /// Whether the failure was the integration's (`$context.integrationErrorMessage`).
    pub fn is_integration_error(&self) -> bool {
        matches!(self, Rejection::BadGateway | Rejection::Timeout)
    }

    /// The rejection for an error status that reached the proxy from elsewhere
    /// (a Pingora error, a body filter).
    pub fn from_status(status: u16) -> Rejection {
        match status {
            400 => Rejection::BadRequest,
            408 => Rejection::ClientTimeout,
            413 => Rejection::TooLarge,
            501 => Rejection::NotImplemented,
            502 => Rejection::BadGateway,
            503 => Rejection::Timeout,
            other => Rejection::Other(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_messages_and_reasons_agree() {
        assert_eq!(Rejection::RateLimited.status(), 429);
        assert_eq!(Rejection::Throttled.reason(), Some(Reason::Throttled));
        assert_eq!(
            Rejection::Unauthorized("Bearer".into()).body(),
            r#"{"message":"Unauthorized"}"#
        );
        assert_eq!(Rejection::ClientTimeout.reason(), Some(Reason::BadRequest));
        assert_eq!(Rejection::Other(500).message(), "Internal Server Error");
        assert_eq!(
            Rejection::NotImplemented.body(),
            r#"{"message":"Not Implemented"}"#
        );
        assert_eq!(
            Rejection::NotFound.body_in(Dialect::Apim, None),
            r#"{"statusCode":404,"message":"Resource not found"}"#
        );
        assert_eq!(
            Rejection::Forbidden.body_in(Dialect::Aws, None),
            Rejection::Forbidden.body()
        );
        assert_eq!(
            Rejection::RateLimited.body_in(Dialect::Apim, Some(5)),
            r#"{"statusCode":429,"message":"Rate limit is exceeded. Try again in 5 seconds."}"#
        );
        assert_eq!(
            Rejection::QuotaExceeded(3725).body_in(Dialect::Apim, None),
            r#"{"statusCode":403,"message":"Out of call volume quota. Quota will be replenished in 01:02:05."}"#
        );
        assert_eq!(
            Rejection::QuotaExceeded(5).body(),
            r#"{"message":"Forbidden"}"#
        );
        let p = Rejection::Policy(400, "Header \"X\" missing".into());
        assert_eq!(
            p.body_in(Dialect::Apim, None),
            r#"{"message":"Header \"X\" missing","statusCode":400}"#
        );
        assert_eq!(p.reason(), Some(Reason::BadRequest));
        for s in [400, 408, 413, 502, 503] {
            assert_eq!(Rejection::from_status(s).status(), s);
        }
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(
                *r as usize, i,
                "ALL is in declaration order (metrics index it)"
            );
        }
    }
}
