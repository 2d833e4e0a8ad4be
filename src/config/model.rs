//! The configuration files as written, in AWS apigatewayv2 field names.
//! Nothing here is interpreted: `compile` turns these into the runtime table.

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// `gateway.json`: process-level settings.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct GatewayConf {
    pub listen: Option<String>,
    pub metrics_listen: Option<String>,
    pub threads: Option<usize>,
    pub max_body_bytes: Option<u64>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    pub rate_limit_store: Option<RateLimitStoreConf>,
    /// Idle upstream connections kept per worker thread (Pingora's keepalive pool).
    pub upstream_keepalive_pool_size: Option<usize>,
    // Client connections (`listener`); ranges and defaults in `listener::limits`.
    pub keepalive_timeout_in_millis: Option<u64>,
    pub request_head_timeout_in_millis: Option<u64>,
    pub request_body_timeout_in_millis: Option<u64>,
    pub max_request_head_bytes: Option<u64>,
    pub max_connections: Option<u64>,
    /// Forward client headers whose name holds `_` (default false: dropped, as nginx's
    /// `underscores_in_headers off`).
    pub allow_underscores_in_headers: Option<bool>,
    /// PEM roots trusted for https integrations besides the public ones (see `crate::tls`).
    pub upstream_ca_file: Option<String>,
    /// Serve HTTPS (and HTTP/2 by ALPN) on `Listen`.
    pub tls: Option<TlsListenerConf>,
    /// Accept prior-knowledge HTTP/2 (h2c) on a plain listener.
    pub http2_cleartext: Option<bool>,
    /// The Lambda Invoke API (`http://HOST:PORT`) for functions not defined locally.
    pub lambda_endpoint: Option<String>,
}

/// `gateway.json` `Tls`: the listener's certificate, and mutual TLS (AWS's domain-name field).
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct TlsListenerConf {
    pub cert_file: String,
    pub key_file: String,
    pub mutual_tls_authentication: Option<MutualTlsConf>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct MutualTlsConf {
    /// A PEM file of the CAs client certificates must chain to (a path, or `file://`).
    pub truststore_uri: String,
    /// Accepted as AWS exports it; apigate reads the file as it is now.
    pub truststore_version: Option<String>,
}

/// An integration's `TlsConfig` (AWS).
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct IntegrationTlsConf {
    pub server_name_to_verify: Option<String>,
    /// apigate's own: turns certificate checks off for this integration.
    #[serde(default)]
    pub insecure_skip_verification: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct RateLimitStoreConf {
    #[serde(rename = "Type")]
    pub kind: String,
    pub url: Option<String>,
}

/// `api.json`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct ApiConf {
    pub name: Option<String>,
    pub cors_configuration: Option<CorsConf>,
    pub policies: Option<PoliciesConf>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct CorsConf {
    #[serde(default)]
    pub allow_origins: Vec<String>,
    #[serde(default)]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    pub max_age: Option<u64>,
    #[serde(default)]
    pub allow_credentials: bool,
}

/// `Policies` at api, stage or route scope.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct PoliciesConf {
    pub ip_filter: Option<IpFilterConf>,
    pub rate_limit: Option<RateLimitConf>,
    #[serde(default)]
    pub request_parameters: BTreeMap<String, String>,
    #[serde(default)]
    pub response_parameters: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct IpFilterConf {
    pub action: String,
    pub addresses: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct RateLimitConf {
    pub calls: u64,
    pub period_seconds: u64,
    pub key: String,
}

/// `stages/*.json`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct StageConf {
    pub name: String,
    pub routes: Option<Vec<String>>,
    #[serde(default)]
    pub stage_variables: BTreeMap<String, String>,
    pub default_route_settings: Option<RouteSettingsConf>,
    #[serde(default)]
    pub route_settings: BTreeMap<String, RouteSettingsConf>,
    pub access_log_settings: Option<AccessLogConf>,
    pub policies: Option<PoliciesConf>,
    /// Accepted for compatibility with exported AWS stages; apigate always serves the
    /// current configuration.
    pub auto_deploy: Option<bool>,
    pub description: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct RouteSettingsConf {
    pub throttling_burst_limit: Option<u64>,
    pub throttling_rate_limit: Option<f64>,
    /// Accepted (AWS exports it) and ignored.
    pub detailed_metrics_enabled: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct AccessLogConf {
    pub format: Option<String>,
    /// Where lines go: absent or `stdout`, `stderr`, or a file path relative to the conf dir.
    pub destination_arn: Option<String>,
}

/// `routes/*.json`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct RouteConf {
    pub route_key: String,
    pub target: Option<String>,
    pub authorization_type: Option<String>,
    pub authorizer_id: Option<String>,
    #[serde(default)]
    pub authorization_scopes: Vec<String>,
    pub policies: Option<PoliciesConf>,
    pub api_key_required: Option<bool>,
    pub operation_name: Option<String>,
    /// APIM subscription keys the route requires; set by the APIM artifacts reader only.
    #[serde(skip)]
    pub subscription: Option<SubscriptionConf>,
    /// Request headers the route requires (APIM's `check-header`); APIM reader only.
    #[serde(skip)]
    pub header_checks: Vec<HeaderCheckConf>,
    /// The status and message of a refused token, when the route words it (APIM's
    /// `validate-jwt` `failed-validation-*`); APIM reader only.
    #[serde(skip)]
    pub auth_failure: Option<(u16, String)>,
    /// The answer the gateway gives itself once the route's policies admit the request
    /// (APIM's `return-response`, `mock-response`); APIM reader only.
    #[serde(skip)]
    pub answer: Option<StaticAnswerConf>,
    /// A call quota (APIM's `quota`, `quota-by-key`): like a rate limit, refused 403.
    #[serde(skip)]
    pub quota: Option<RateLimitConf>,
    /// What the route does to its error answers (APIM's `on-error`): headers added, or a
    /// fixed answer in their place.
    #[serde(skip)]
    pub on_error: Option<OnErrorConf>,
    /// Conditional fixed answers (APIM's `choose` with `return-response` branches), each
    /// list tried in order: the first branch whose condition holds decides.
    #[serde(skip)]
    pub choices: Vec<Vec<BranchConf>>,
}

/// One `when` (or `otherwise`, whose condition is `True`): its answer, or none to go on.
#[derive(Debug, Clone, PartialEq)]
pub struct BranchConf {
    pub condition: ConditionConf,
    pub answer: Option<StaticAnswerConf>,
}

/// A condition on the request, as read (compiled in `policy::condition`).
#[derive(Debug, Clone, PartialEq)]
pub enum ConditionConf {
    True,
    /// The operand equals the literal (an absent header or parameter reads as "").
    Equals(OperandConf, String),
    HasHeader(String),
    Not(Box<ConditionConf>),
    And(Vec<ConditionConf>),
    Or(Vec<ConditionConf>),
}

/// What a condition reads.
#[derive(Debug, Clone, PartialEq)]
pub enum OperandConf {
    Header(String),
    Query(String),
    ClientIp,
    Method,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct OnErrorConf {
    pub headers: Vec<(String, String)>,
    pub answer: Option<StaticAnswerConf>,
}

/// A fixed answer: status, headers, body.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StaticAnswerConf {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A header a request must carry, with one of `values` when any are listed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct HeaderCheckConf {
    pub name: String,
    pub values: Vec<String>,
    pub ignore_case: bool,
    /// The answer when the check fails.
    pub status: u16,
    pub message: String,
}

/// Where an APIM client sends its subscription key, and the keys that are valid.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SubscriptionConf {
    /// `Ocp-Apim-Subscription-Key` unless the API names another.
    pub header: String,
    /// `subscription-key` unless the API names another.
    pub query: String,
    pub keys: Vec<String>,
}

/// `integrations/*.json`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct IntegrationConf {
    pub integration_type: String,
    /// Required except for `AGGREGATE`, which has none (validation says so).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub integration_uri: String,
    pub integration_method: Option<String>,
    pub timeout_in_millis: Option<u64>,
    #[serde(default, deserialize_with = "version")]
    pub payload_format_version: Option<String>,
    #[serde(default)]
    pub request_parameters: BTreeMap<String, String>,
    #[serde(default)]
    pub response_parameters: BTreeMap<String, BTreeMap<String, String>>,
    pub connection_type: Option<String>,
    pub description: Option<String>,
    pub tls_config: Option<IntegrationTlsConf>,
    /// `AGGREGATE` (GATEWAY.md 12): the integrations answering together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backends: Option<Vec<AggregateBackendConf>>,
    /// `AGGREGATE`: call the backends in order (a later URI may read an earlier answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<bool>,
    /// `AGGREGATE`: `partial` (default) or `fail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
    /// `AGGREGATE`: the largest body read from one backend (default 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backend_bytes: Option<u64>,
}

/// One entry of an `AGGREGATE` integration's `Backends` (KrakenD's backend shaping).
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct AggregateBackendConf {
    /// `integrations/<id>`: an HTTP_PROXY or AWS_PROXY integration.
    pub integration: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mapping: BTreeMap<String, String>,
}

/// A version written as AWS exports it (`"1.0"`) or as a JSON number (`1.0`), as text
/// (`"1.0"`): a hand-written config easily leaves the quotes out.
fn version<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Version;
    impl serde::de::Visitor<'_> for Version {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a version such as \"1.0\"")
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(if v.fract() == 0.0 {
                format!("{v:.1}")
            } else {
                v.to_string()
            }))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(format!("{v}.0")))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(format!("{v}.0")))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(Version)
}

/// `authorizers/*.json`.
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct AuthorizerConf {
    pub authorizer_type: String,
    pub name: Option<String>,
    #[serde(default)]
    pub identity_source: Vec<String>,
    pub jwt_configuration: Option<JwtConf>,
    /// Inline JWK Set (`{"keys":[...]}`).
    pub jwks: Option<serde_json::Value>,
    pub jwks_file: Option<String>,
    pub jwks_uri: Option<String>,
    pub clock_skew_seconds: Option<u64>,
    /// How often a remote key set is fetched again (default 3600 s; AWS caches up to 2 h).
    pub jwks_refresh_seconds: Option<u64>,
    /// The least time between two fetches of a remote set (default 10 s): a flood of
    /// unknown `kid`s costs at most one fetch per interval.
    pub jwks_min_refetch_seconds: Option<u64>,
    /// REQUEST: the Lambda function (`functions/<id>`, a function ARN or invocation URI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorizer_uri: Option<String>,
    /// REQUEST: `1.0` or `2.0`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorizer_payload_format_version: Option<String>,
    /// REQUEST, 2.0 only: the function answers `{"isAuthorized": bool}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_simple_responses: Option<bool>,
    /// REQUEST: how long an answer is cached per identity (AWS: 0..3600, default 300).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorizer_result_ttl_in_seconds: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct JwtConf {
    pub issuer: Option<String>,
    #[serde(default)]
    pub audience: Vec<String>,
}

/// An `AWS_PROXY` (Lambda) integration, read from an OpenAPI document or a template with
/// what the Lambda issue needs to run it (GATEWAY.md 11). Not served yet: `check` warns,
/// and the routes that target it are kept aside ([`super::Pending`]), never dropped.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LambdaConf {
    /// The `uri` as written (an invocation ARN or a function ARN).
    pub uri: String,
    /// `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`, when the uri holds one.
    pub function_arn: Option<String>,
    pub function_name: Option<String>,
    pub payload_format_version: String,
    pub timeout_in_millis: Option<u64>,
    /// From `AWS::Serverless::Function` / `AWS::Lambda::Function`, when a template has them.
    pub code_uri: Option<String>,
    pub handler: Option<String>,
    pub runtime: Option<String>,
    pub environment: BTreeMap<String, String>,
    /// A template's inline code (`Code.ZipFile`).
    pub inline_code: Option<String>,
    /// The function's own `Timeout` (seconds) and `MemorySize` (MB).
    pub function_timeout_seconds: Option<u64>,
    pub memory_size: Option<u64>,
}

/// `functions/*.json`: a Lambda function apigate runs itself (GATEWAY.md 11), in SAM's
/// `AWS::Serverless::Function` field names.
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct FunctionConf {
    /// Defaults to the file's id.
    pub function_name: Option<String>,
    /// The code directory, relative to the configuration directory.
    pub code_uri: String,
    #[serde(default)]
    pub handler: String,
    pub runtime: String,
    pub environment: Option<FunctionEnvironment>,
    /// Seconds (Lambda's default 3).
    pub timeout: Option<u64>,
    /// MB (Lambda's default 128).
    pub memory_size: Option<u64>,
    /// Warm instances at most (default 4).
    pub instances: Option<usize>,
    /// Overrides how an instance starts (argv), e.g. a virtualenv's python.
    pub command: Option<Vec<String>>,
    pub description: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct FunctionEnvironment {
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}
