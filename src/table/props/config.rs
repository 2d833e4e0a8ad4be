//! Property tests: configuration documents an operator (or a tool) may write, from
//! plausible to garbage, through parsing and the whole compilation that `check` runs.
//! Whatever the input: no panic, every error names a file, a file that is not a JSON
//! object is reported under its own name, and a configuration without errors compiles.

use crate::config::bundle::bundle_files;
use crate::config::parse::parse_files;
use crate::config::read::{read_text, ReadError, MAX_FILE_BYTES};
use crate::config::{ConfigErrors, Files, KINDS};
use crate::table::Table;
use proptest::prelude::*;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The fields the model knows, so that generated documents reach past "unknown field".
const FIELDS: &[&str] = &[
    "RouteKey",
    "Target",
    "AuthorizationType",
    "AuthorizerId",
    "AuthorizationScopes",
    "Policies",
    "ApiKeyRequired",
    "OperationName",
    "IntegrationType",
    "IntegrationUri",
    "IntegrationMethod",
    "TimeoutInMillis",
    "PayloadFormatVersion",
    "RequestParameters",
    "ResponseParameters",
    "ConnectionType",
    "Description",
    "Name",
    "Routes",
    "StageVariables",
    "DefaultRouteSettings",
    "RouteSettings",
    "AccessLogSettings",
    "DestinationArn",
    "Format",
    "ThrottlingBurstLimit",
    "ThrottlingRateLimit",
    "DetailedMetricsEnabled",
    "AutoDeploy",
    "AuthorizerType",
    "IdentitySource",
    "JwtConfiguration",
    "Issuer",
    "Audience",
    "Jwks",
    "JwksFile",
    "JwksUri",
    "ClockSkewSeconds",
    "JwksRefreshSeconds",
    "JwksMinRefetchSeconds",
    "IpFilter",
    "Action",
    "Addresses",
    "RateLimit",
    "Calls",
    "PeriodSeconds",
    "Key",
    "CorsConfiguration",
    "AllowOrigins",
    "AllowMethods",
    "AllowHeaders",
    "ExposeHeaders",
    "AllowCredentials",
    "MaxAge",
    "Listen",
    "MetricsListen",
    "Threads",
    "MaxBodyBytes",
    "TrustedProxies",
    "RateLimitStore",
    "Type",
    "UpstreamKeepalivePoolSize",
    "keys",
    "kty",
    "kid",
    "alg",
    "k",
];

/// Values that mean something somewhere (route keys, targets, mapping expressions, ...).
/// Hosts are IP literals only: compiling resolves hostnames, and tests stay off the network.
const WORDS: &[&str] = &[
    "GET /a",
    "ANY /{proxy+}",
    "$default",
    "GET /a/{id}",
    "POST /a/{id}/{proxy+}",
    "get /x",
    "GET /a/{id}/{id}",
    "GET /%2e%2e",
    "GET //a",
    "ANY /a/../b",
    "integrations/i0",
    "integrations/nope",
    "routes/r0",
    "authorizers/a",
    "HTTP_PROXY",
    "AWS_PROXY",
    "http://127.0.0.1:9/x",
    "http://127.0.0.1:9/{proxy}",
    "http://127.0.0.1:9/${stageVariables.v}",
    "http://[::1]:9/a?b=c",
    "1.0",
    "2.0",
    "JWT",
    "$request.header.Authorization",
    "$request.querystring.t",
    "$context.authorizer.claims.sub",
    "$context.requestId $context.status",
    "$request.path.id",
    "$request.path.proxy",
    "$stageVariables.v",
    "${request.header.X",
    "overwrite:header.X-A",
    "append:querystring.q",
    "remove:header.X-B",
    "overwrite:path",
    "overwrite:statuscode",
    "allow",
    "forbid",
    "10.0.0.0/8",
    "::1",
    "local",
    "stdout",
    "a\r\nb",
    "../x",
    "/dev/zero",
    "",
    "*",
    "https://*.example.com",
    "oct",
    "RSA",
    "HS256",
    "none",
    "stages/s",
    "v",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(WORDS).prop_map(str::to_string),
        1 => "\\PC{0,16}",
        1 => any::<String>(),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(FIELDS).prop_map(str::to_string),
        1 => text(),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0u64..100_000).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A document of one kind: a valid skeleton with some fields replaced, added or dropped,
/// or anything at all.
fn doc(skeleton: Value) -> impl Strategy<Value = Value> {
    let mutated = (
        proptest::collection::btree_map(key(), json(), 0..4),
        proptest::collection::vec(key(), 0..2),
    )
        .prop_map(move |(extra, drop)| {
            let mut m: Map<String, Value> = skeleton.as_object().cloned().unwrap_or_default();
            for k in drop {
                m.remove(&k);
            }
            m.extend(extra);
            Value::Object(m)
        });
    prop_oneof![4 => mutated, 1 => json()]
}

/// The text of one file: the document printed, or text that may not be JSON at all.
fn file_text(skeleton: Value) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => doc(skeleton).prop_map(|v| v.to_string()),
        1 => (doc(Value::Null), any::<usize>()).prop_map(|(v, cut)| {
            let s = v.to_string();
            let cut = cut % (s.len() + 1);
            // Cut on a character boundary: the reader only hands over UTF-8.
            let cut = (0..=cut).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
            s[..cut].to_string()
        }),
        1 => any::<String>(),
    ]
}

/// A valid configuration touching most parts: the starting point of generated ones.
fn skeletons() -> [(&'static str, Value); 7] {
    use serde_json::json;
    [
        ("gateway.json", json!({})),
        ("api.json", json!({"Name": "props"})),
        (
            "stages/s.json",
            json!({"Name": "$default", "StageVariables": {"v": "x"}, "AccessLogSettings": {"Format": "$context.requestId"}}),
        ),
        (
            "routes/r0.json",
            json!({"RouteKey": "GET /a/{id}", "Target": "integrations/i0", "Policies": {"RequestParameters": {"overwrite:header.X-Id": "$request.path.id"}}}),
        ),
        (
            "routes/r1.json",
            json!({"RouteKey": "ANY /{proxy+}", "Target": "integrations/i0", "AuthorizationType": "JWT", "AuthorizerId": "a"}),
        ),
        (
            "integrations/i0.json",
            json!({"IntegrationType": "HTTP_PROXY", "IntegrationUri": "http://127.0.0.1:9/b", "PayloadFormatVersion": "1.0", "RequestParameters": {"overwrite:header.X-V": "$stageVariables.v $context.requestId"}}),
        ),
        (
            "authorizers/a.json",
            json!({"AuthorizerType": "JWT", "IdentitySource": ["$request.header.Authorization"], "JwtConfiguration": {"Issuer": "https://iss", "Audience": ["api"]}, "Jwks": {"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}}),
        ),
    ]
}

fn files() -> impl Strategy<Value = BTreeMap<String, String>> {
    let skeletons = skeletons();
    // Most files stay as they are, so that many cases compile and the checks past parsing
    // (routes, mappings, authorizers, stages) see one odd value at a time.
    let per_file: Vec<_> = skeletons
        .into_iter()
        .map(|(name, skeleton)| {
            let kept = skeleton.to_string();
            let changed = proptest::option::weighted(0.15, file_text(skeleton));
            // Resource files are always there; gateway.json and api.json are optional.
            let file = if name.contains('/') {
                changed.prop_map(Some).boxed()
            } else {
                proptest::option::weighted(0.9, changed).boxed()
            };
            file.prop_map(move |t| (name.to_string(), t.map(|t| t.unwrap_or(kept.clone()))))
        })
        .collect();
    per_file.prop_map(|v| {
        v.into_iter()
            .filter_map(|(name, t)| Some((name, t?)))
            .collect()
    })
}

/// Parses and compiles `files` as `check` does; returns the errors and whether it compiled.
fn check(files: BTreeMap<String, String>) -> (Vec<crate::config::ConfigError>, bool) {
    let has_stages_dir = files.keys().any(|k| k.starts_with("stages/"));
    let mut errors = ConfigErrors::default();
    // A directory that does not exist: a JwksFile or log path can only fail to resolve.
    let dir = PathBuf::from("/nonexistent/apigate-props");
    let files = Files {
        text: files,
        has_stages_dir,
        unreadable: Vec::new(),
    };
    let mut config = parse_files(dir, files, &mut errors);
    config.errors = errors.0;
    match Table::compile(&config, None) {
        Ok(_) => (Vec::new(), true),
        Err(e) => (e.0, false),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn any_configuration_is_checked_without_panic_and_errors_name_their_file(files in files()) {
        let not_objects: Vec<String> = files
            .iter()
            .filter(|(_, t)| !matches!(serde_json::from_str::<Value>(t), Ok(Value::Object(_))))
            .map(|(n, _)| n.clone())
            .collect();
        let (errors, compiled) = check(files);
        prop_assert_eq!(compiled, errors.is_empty());
        for e in &errors {
            prop_assert!(!e.file.is_empty(), "an error without a file: {}", e);
        }
        for name in not_objects {
            prop_assert!(
                errors.iter().any(|e| e.file == name),
                "{} is no JSON object but has no error: {:?}", name, errors
            );
        }
    }

    #[test]
    fn any_bundle_text_is_split_without_panic(raw in prop_oneof![
        json().prop_map(|v| v.to_string()),
        proptest::collection::btree_map(
            proptest::sample::select(&["gateway", "api", "stages", "routes", "integrations", "authorizers", "other"][..]),
            prop_oneof![json(), proptest::collection::btree_map(text(), json(), 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect()))],
            0..6,
        ).prop_map(|m| serde_json::to_string(&m).unwrap_or_default()),
        any::<String>(),
    ]) {
        let mut errors = ConfigErrors::default();
        match bundle_files("bundle.json", &raw, &mut errors) {
            None => prop_assert!(errors.0.iter().any(|e| e.file == "bundle.json")),
            Some(files) => {
                for e in &errors.0 {
                    prop_assert_eq!(&e.file, "bundle.json");
                }
                for name in files.text.keys() {
                    let (kind, rest) = name.split_once('/').unwrap_or(("", name));
                    prop_assert!(!rest.contains('/'), "{}", name);
                    prop_assert!(kind.is_empty() || KINDS.contains(&kind), "{}", name);
                }
                // And the files it yields go through the rest without panic.
                let _ = check(files.text);
            }
        }
    }

    #[test]
    fn the_reader_returns_exactly_the_utf8_text_of_a_regular_file(bytes in prop_oneof![
        any::<String>().prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..64),
    ]) {
        let path = std::env::temp_dir().join(format!("apigate-props-read-{}", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        let read = read_text(&path);
        let _ = std::fs::remove_file(&path);
        match std::str::from_utf8(&bytes) {
            Ok(s) => prop_assert_eq!(read.unwrap(), s),
            Err(_) => prop_assert!(matches!(read, Err(ReadError::NotUtf8))),
        }
        prop_assert!(bytes.len() as u64 <= MAX_FILE_BYTES);
    }
}

#[test]
fn the_skeletons_compile() {
    let files = skeletons()
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let (errors, compiled) = check(files);
    assert!(compiled, "{errors:?}");
}
