//! The `$context` vocabulary: every `$context.*` variable apigate knows, and the one lexer and
//! parser for their names. Parameter mappings and access-log formats both read `$context`;
//! each names the variables it can supply with a [`Scope`] (a mapping runs before the backend
//! answers, so it has no `status`), and renders the values itself.

/// A `$context` variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextVar {
    /// `requestId` (also spelled `extendedRequestId`).
    RequestId,
    Stage,
    /// `routeKey`: the route's template, such as `GET /pets/{id}`.
    RouteKey,
    /// `identity.sourceIp`
    SourceIp,
    HttpMethod,
    /// `path`: the request path including the stage.
    Path,
    DomainName,
    /// `apiId`: the serving API's id (its Name), which tells several APIs apart.
    ApiId,
    /// `authorizer.claims.NAME`
    Claim(String),
    /// `authorizer.NAME`: a key of the context a Lambda authorizer returned.
    AuthorizerProperty(String),
    Status,
    Protocol,
    /// `identity.userAgent`
    UserAgent,
    ResponseLength,
    ResponseLatency,
    IntegrationLatency,
    IntegrationStatus,
    /// `integrationErrorMessage`: set only when the integration itself failed.
    IntegrationError,
    /// `integration.backends` (apigate's): an aggregate route's backend calls, each
    /// `id:status:latencyMs:outcome`, comma-separated.
    IntegrationBackends,
    RequestTime,
    RequestTimeEpoch,
    /// `error.message`
    ErrorMessage,
    /// `authorizer.error`
    AuthorizerError,
    /// `identity.clientCert.*`: the mutual-TLS client certificate (section 9).
    ClientCert(ClientCertField),
}

pub use crate::tls::client_cert::ClientCertField;

/// Every spelling and the variable it names; AWS keeps a few aliases.
const NAMES: &[(&str, ContextVar)] = &[
    ("requestId", ContextVar::RequestId),
    ("extendedRequestId", ContextVar::RequestId),
    ("routeKey", ContextVar::RouteKey),
    ("status", ContextVar::Status),
    ("httpMethod", ContextVar::HttpMethod),
    ("path", ContextVar::Path),
    ("protocol", ContextVar::Protocol),
    ("identity.sourceIp", ContextVar::SourceIp),
    ("identity.userAgent", ContextVar::UserAgent),
    ("responseLength", ContextVar::ResponseLength),
    ("responseLatency", ContextVar::ResponseLatency),
    ("integrationLatency", ContextVar::IntegrationLatency),
    ("integration.latency", ContextVar::IntegrationLatency),
    ("integrationStatus", ContextVar::IntegrationStatus),
    ("integration.status", ContextVar::IntegrationStatus),
    ("integrationErrorMessage", ContextVar::IntegrationError),
    ("integration.error", ContextVar::IntegrationError),
    ("integration.backends", ContextVar::IntegrationBackends),
    ("requestTime", ContextVar::RequestTime),
    ("requestTimeEpoch", ContextVar::RequestTimeEpoch),
    ("stage", ContextVar::Stage),
    ("domainName", ContextVar::DomainName),
    ("apiId", ContextVar::ApiId),
    ("error.message", ContextVar::ErrorMessage),
    ("authorizer.error", ContextVar::AuthorizerError),
];

/// `authorizer.claims.NAME` reads claim NAME of the verified JWT; every scope has claims.
pub const CLAIMS_PREFIX: &str = "authorizer.claims.";

/// `authorizer.NAME` reads key NAME of a Lambda authorizer's context.
pub const AUTHORIZER_PREFIX: &str = "authorizer.";

/// The `$context` variables one consumer can supply.
#[derive(Debug)]
pub struct Scope {
    /// Spellings it accepts, in the order its error messages list them.
    listed: &'static [&'static str],
    /// Spellings it also accepts but does not advertise.
    unlisted: &'static [&'static str],
}

impl Scope {
    /// Parameter mappings are evaluated before the backend answers: request values only.
    pub const MAPPING: Scope = Scope {
        listed: &[
            "requestId",
            "stage",
            "routeKey",
            "identity.sourceIp",
            "httpMethod",
            "path",
            "domainName",
        ],
        unlisted: &["extendedRequestId"],
    };

    /// Access-log lines are written after the exchange: every variable.
    pub const ACCESS_LOG: Scope = Scope {
        listed: &[
            "requestId",
            "extendedRequestId",
            "routeKey",
            "status",
            "httpMethod",
            "path",
            "protocol",
            "identity.sourceIp",
            "identity.userAgent",
            "responseLength",
            "responseLatency",
            "integrationLatency",
            "integration.latency",
            "integrationStatus",
            "integration.status",
            "integrationErrorMessage",
            "integration.error",
            "integration.backends",
            "requestTime",
            "requestTimeEpoch",
            "stage",
            "domainName",
            "apiId",
            "error.message",
            "authorizer.error",
        ],
        unlisted: &[],
    };

    /// The variable `name` (what follows `$context.`, whole) stands for, if this scope has it.
    pub fn parse(&self, name: &str) -> Option<ContextVar> {
        if let Some(claim) = name.strip_prefix(CLAIMS_PREFIX) {
            return Some(ContextVar::Claim(claim.to_string()));
        }
        if let Some(key) = name
            .strip_prefix(AUTHORIZER_PREFIX)
            .filter(|k| !k.is_empty() && *k != "error" && !k.contains('.'))
        {
            return Some(ContextVar::AuthorizerProperty(key.to_string()));
        }
        if let Some((_, f)) = ClientCertField::NAMES.iter().find(|(n, _)| *n == name) {
            return Some(ContextVar::ClientCert(*f));
        }
        if !self.listed.iter().chain(self.unlisted).any(|n| *n == name) {
            return None;
        }
        NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }

    /// The spellings to suggest (claims aside).
    pub fn names(&self) -> &'static [&'static str] {
        self.listed
    }

    /// `requestId, stage, ..., authorizer.claims.NAME`, for error messages.
    pub fn supported(&self) -> String {
        format!(
            "{}, authorizer.claims.NAME, authorizer.NAME, identity.clientCert.(clientCertPem|subjectDN|issuerDN|\
             serialNumber|validity.notBefore|validity.notAfter)",
            self.listed.join(", ")
        )
    }
}

/// The name at the start of `after`, the text that follows `$context.` in a value or a log
/// format: the one rule both use. Names are ASCII letters, digits, `_` and `.`; a trailing `.`
/// is punctuation. Claim names may also hold `-`, AWS's remaining name character (its mapping
/// expressions are `[a-zA-Z0-9._$-]`, and it refuses `$context.authorizer.claims.custom:x`),
/// so `:` ends them; a mapping reads such a claim as `${context.authorizer.claims.custom:x}`.
/// No other name has a `-`, so there it ends the name: `$context.stage-$context.requestId`
/// reads as two variables.
pub fn lex(after: &str) -> &str {
    let claim = after.starts_with(CLAIMS_PREFIX);
    let end = after
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_' || (claim && c == '-')))
        .unwrap_or(after.len());
    after[..end].trim_end_matches('.')
}
