use super::*;
use serde_json::json;

fn lowered(doc: Value, params: &[(&str, &str)]) -> Config {
    let params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut config = Config::default();
    lower(&doc, None, "t.json", &params, &mut config);
    config
}

#[test]
fn recognises_templates_by_content() {
    assert!(is_template(
        &json!({"AWSTemplateFormatVersion": "2010-09-09"})
    ));
    assert!(is_template(
        &json!({"Transform": "AWS::Serverless-2016-10-31", "Resources": {}})
    ));
    assert!(is_template(
        &json!({"Resources": {"A": {"Type": "AWS::ApiGatewayV2::Api"}}})
    ));
    assert!(!is_template(&json!({"routes": {}, "integrations": {}})));
    assert!(!is_template(&json!({"openapi": "3.0.1"})));
}

#[test]
fn separate_resources_lower_into_the_model() {
    let c = lowered(
        json!({
            "Parameters": {"Backend": {"Type": "String"}},
            "Resources": {
                "Api": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {"Name": "a", "ProtocolType": "HTTP"}},
                "Int": {"Type": "AWS::ApiGatewayV2::Integration", "Properties": {
                    "ApiId": {"Ref": "Api"}, "IntegrationType": "HTTP_PROXY", "IntegrationMethod": "ANY",
                    "IntegrationUri": {"Fn::Sub": "${Backend}/x"}, "PayloadFormatVersion": "1.0",
                    "ResponseParameters": {"200": {"ResponseParameters": [{"Source": "v", "Destination": "append:header.h"}]}}}},
                "R": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {
                    "ApiId": {"Ref": "Api"}, "RouteKey": "GET /x",
                    "Target": {"Fn::Join": ["/", ["integrations", {"Ref": "Int"}]]}}},
                "S": {"Type": "AWS::ApiGatewayV2::Stage", "Properties": {"ApiId": {"Ref": "Api"}, "StageName": "v1"}}
            }
        }),
        &[("Backend", "http://127.0.0.1:9")],
    );
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.api.name.as_deref(), Some("a"));
    assert_eq!(
        c.integrations[0].conf.integration_uri,
        "http://127.0.0.1:9/x"
    );
    assert_eq!(
        c.integrations[0].conf.response_parameters["200"]["append:header.h"],
        "v"
    );
    assert_eq!(c.routes[0].conf.target.as_deref(), Some("integrations/Int"));
    assert_eq!(c.routes[0].file, "t.json#/Resources/R/Properties");
    assert!(c.has_stages_dir);
    assert_eq!(c.stages[0].conf.name, "v1");
}

#[test]
fn lambda_routes_are_kept_aside_with_their_function() {
    let c = lowered(
        json!({
            "Transform": "AWS::Serverless-2016-10-31",
            "Globals": {"Function": {"Runtime": "python3.12", "Environment": {"Variables": {"A": "1"}}}},
            "Resources": {
                "Fn": {"Type": "AWS::Serverless::Function", "Properties": {
                    "CodeUri": "src/", "Handler": "app.handler", "Timeout": 5, "MemorySize": 256,
                    "Events": {"Get": {"Type": "HttpApi", "Properties": {"Path": "/items", "Method": "get"}}}}}
            }
        }),
        &[],
    );
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert!(c.routes.is_empty());
    assert_eq!(c.pending.routes[0].conf.route_key, "GET /items");
    let l = &c.pending.lambdas[0].conf;
    assert_eq!(l.function_name.as_deref(), Some("Fn"));
    assert_eq!(l.code_uri.as_deref(), Some("src/"));
    assert_eq!(l.runtime.as_deref(), Some("python3.12"));
    assert_eq!(l.environment["A"], "1");
    assert_eq!(
        (l.function_timeout_seconds, l.memory_size),
        (Some(5), Some(256))
    );
    assert_eq!(l.payload_format_version, "2.0");
    assert!(c
        .warnings
        .iter()
        .any(|w| w.problem.contains("Lambda integration (function ")));
}

#[test]
fn unknown_properties_get_a_did_you_mean() {
    let c = lowered(
        json!({"Resources": {
            "Api": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {"Name": "a"}},
            "R": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {"ApiId": "Api", "RouteKey": "GET /", "Targett": "x"}}
        }}),
        &[],
    );
    let e = c
        .errors
        .iter()
        .find(|e| e.field.contains("Targett"))
        .expect("an error");
    assert!(e.fix.contains("did you mean Target?"), "{e:?}");
}
