//! Property tests: templates from plausible to garbage (resource types apigate reads, their
//! fields, intrinsics naming parameters, resources and conditions that may or may not
//! exist, SAM events) through lowering and the compilation `check` runs. Whatever the
//! input: no panic, and every message names the template.

use crate::config::cloudformation::{lower, Params};
use crate::config::Config;
use crate::table::Table;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const TYPES: &[&str] = &[
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::Stage",
    "AWS::ApiGatewayV2::Authorizer",
    "AWS::ApiGatewayV2::ApiGatewayManagedOverrides",
    "AWS::Serverless::HttpApi",
    "AWS::Serverless::Function",
    "AWS::Lambda::Function",
    "AWS::S3::Bucket",
];
const FIELDS: &[&str] = &[
    "ApiId",
    "Name",
    "ProtocolType",
    "RouteKey",
    "Target",
    "IntegrationType",
    "IntegrationUri",
    "IntegrationMethod",
    "PayloadFormatVersion",
    "TimeoutInMillis",
    "StageName",
    "StageVariables",
    "RouteSettings",
    "DefaultRouteSettings",
    "AuthorizationType",
    "AuthorizerId",
    "AuthorizerType",
    "JwtConfiguration",
    "IdentitySource",
    "CorsConfiguration",
    "Body",
    "DefinitionBody",
    "Auth",
    "Authorizers",
    "DefaultAuthorizer",
    "Events",
    "Type",
    "Properties",
    "Path",
    "Method",
    "CodeUri",
    "Handler",
    "Runtime",
    "Environment",
    "Variables",
    "Domain",
    "BasePath",
    "ResponseParameters",
    "RequestParameters",
    "AccessLogSettings",
    "DestinationArn",
    "openapi",
    "paths",
];
const WORDS: &[&str] = &[
    "Api",
    "R",
    "I",
    "S",
    "P",
    "Cond",
    "AWS::NoValue",
    "AWS::Region",
    "HTTP",
    "WEBSOCKET",
    "HTTP_PROXY",
    "AWS_PROXY",
    "GET /a",
    "$default",
    "ANY /{proxy+}",
    "integrations/I",
    "http://127.0.0.1:9/x",
    "${P}/x",
    "${Api.Arn}",
    "${!x}",
    "${",
    "JWT",
    "REQUEST",
    "AWS_IAM",
    "HttpApi",
    "Api",
    "/a",
    "get",
    "any",
    "1.0",
    "2.0",
    "3.0.1",
    "s3://b/k",
    "arn:aws:logs:x",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(WORDS).prop_map(str::to_string),
        "[a-zA-Z0-9/${}.:! ]{0,12}",
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        word().prop_map(Value::String),
        any::<i32>().prop_map(|n| json!(n)),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            word().prop_map(|w| json!({"Ref": w})),
            word().prop_map(|w| json!({"Fn::Sub": w})),
            (word(), word()).prop_map(|(a, b)| json!({"Fn::GetAtt": [a, b]})),
            (word(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| json!({"Fn::If": [c, a, b]})),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| json!({"Fn::Equals": [a, b]})),
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| json!({"Fn::Join": ["/", v]})),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| json!({"Fn::Select": [a, b]})),
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                proptest::sample::select(FIELDS).prop_map(str::to_string),
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn template() -> impl Strategy<Value = Value> {
    let resource = (
        proptest::sample::select(TYPES),
        value(),
        proptest::option::of(word()),
    )
        .prop_map(|(t, props, cond)| {
            let mut r = json!({"Type": t, "Properties": props});
            if let Some(c) = cond {
                r["Condition"] = c.into();
            }
            r
        });
    (
        proptest::collection::btree_map(
            proptest::sample::select(WORDS).prop_map(str::to_string),
            resource,
            0..6,
        ),
        proptest::collection::btree_map(word(), value(), 0..3),
        any::<bool>(),
    )
        .prop_map(|(resources, conditions, sam)| {
            let mut t = Map::new();
            t.insert("AWSTemplateFormatVersion".into(), "2010-09-09".into());
            if sam {
                t.insert("Transform".into(), "AWS::Serverless-2016-10-31".into());
            }
            t.insert(
                "Parameters".into(),
                json!({"P": {"Type": "String", "Default": "http://127.0.0.1:9"}}),
            );
            t.insert(
                "Conditions".into(),
                Value::Object(conditions.into_iter().collect()),
            );
            t.insert(
                "Resources".into(),
                Value::Object(resources.into_iter().collect()),
            );
            Value::Object(t)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_template_lowers_and_compiles_without_panic(doc in template()) {
        let mut config = Config::default();
        lower(&doc, None, "t.json", &Params::new(), &mut config);
        for e in config.errors.iter().chain(&config.warnings) {
            prop_assert!(e.file.starts_with("t.json"), "{e}");
        }
        let _ = Table::compile(&config, None);
    }

    #[test]
    fn any_text_is_read_as_yaml_or_refused_without_panic(text in "[ -~\n\t]{0,200}") {
        let _ = crate::config::yaml::from_str(&text);
    }
}
