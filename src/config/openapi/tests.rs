use super::*;
use serde_json::json;

fn lowered(doc: Value) -> Config {
    let mut c = Config::default();
    lower(&doc, "api.json", "", &mut c);
    c
}

#[test]
fn refuses_swagger_and_openapi_31() {
    let c = lowered(json!({"swagger": "2.0", "paths": {}}));
    assert_eq!(c.errors[0].field, "/swagger");
    let c = lowered(json!({"openapi": "3.1.0", "paths": {}}));
    assert_eq!(c.errors[0].field, "/openapi");
    assert!(c.errors[0].problem.contains("3.1"), "{}", c.errors[0]);
}

#[test]
fn routes_integrations_and_refs() {
    let c = lowered(json!({
        "openapi": "3.0.1",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/pets/{id}": {"get": {"operationId": "getPet", "x-amazon-apigateway-integration": {"$ref": "#/components/x-amazon-apigateway-integrations/pets"}}},
            "/a": {"x-amazon-apigateway-any-method": {"x-amazon-apigateway-integration": {"type": "HTTP_PROXY", "uri": "http://h/a", "httpMethod": "ANY", "payloadFormatVersion": 1.0}}},
            "$default": {"x-amazon-apigateway-any-method": {"x-amazon-apigateway-integration": {"$ref": "#/components/x-amazon-apigateway-integrations/pets"}}}
        },
        "components": {"x-amazon-apigateway-integrations": {"pets": {"type": "http_proxy", "uri": "http://h/p", "httpMethod": "GET"}}}
    }));
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let keys: Vec<_> = c
        .routes
        .iter()
        .map(|r| {
            (
                r.id.as_str(),
                r.conf.route_key.as_str(),
                r.conf.target.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("default", "$default", "integrations/pets"),
            ("any_a", "ANY /a", "integrations/any_a"),
            ("getPet", "GET /pets/{id}", "integrations/pets")
        ]
    );
    assert_eq!(c.routes[2].file, "api.json#/paths/~1pets~1{id}/get");
    assert_eq!(c.integrations.len(), 2);
    assert_eq!(
        c.integrations[1].conf.payload_format_version.as_deref(),
        Some("1.0")
    );
}

#[test]
fn misspelt_extensions_and_refs_get_hints() {
    let c = lowered(json!({
        "openapi": "3.0.1",
        "x-amazon-apigateway-corz": {},
        "paths": {
            "/a": {"get": {"x-amazon-apigateway-integration": {"$ref": "#/components/x-amazon-apigateway-integrations/petz"}}},
            "/b": {"get": {"x-amazon-apigateway-integration": {"type": "http_proxy", "uri": "http://h", "timeoutInMilis": 5}}}
        },
        "components": {"x-amazon-apigateway-integrations": {"pets": {"type": "http_proxy", "uri": "http://h/p"}}}
    }));
    let text: Vec<String> = c.errors.iter().map(ToString::to_string).collect();
    assert_eq!(c.errors.len(), 3, "{text:#?}");
    assert!(
        text[0].contains("did you mean x-amazon-apigateway-cors?"),
        "{text:#?}"
    );
    assert!(
        text.iter().any(
            |t| t.contains("/paths/~1a/get/x-amazon-apigateway-integration/$ref")
                && t.contains("did you mean #/components/x-amazon-apigateway-integrations/pets?")
        ),
        "{text:#?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("did you mean timeoutInMillis?")),
        "{text:#?}"
    );
}

#[test]
fn lambda_iam_and_two_requirements() {
    let c = lowered(json!({
        "openapi": "3.0.1",
        "paths": {
            "/l": {"post": {"x-amazon-apigateway-integration": {"type": "aws_proxy", "uri": "arn:aws:apigateway:us-east-2:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-2:123456789012:function:my-function/invocations", "payloadFormatVersion": "2.0"}}},
            "/i": {"get": {"security": [{"sigv4": []}], "x-amazon-apigateway-integration": {"type": "http_proxy", "uri": "http://h"}}},
            "/two": {"get": {"security": [{"jwt": []}, {"sigv4": []}], "x-amazon-apigateway-integration": {"type": "http_proxy", "uri": "http://h"}}},
            "/j": {"get": {"security": [{"jwt": ["read"]}], "x-amazon-apigateway-integration": {"type": "http_proxy", "uri": "http://h"}}}
        },
        "components": {"securitySchemes": {
            "sigv4": {"type": "apiKey", "name": "Authorization", "in": "header", "x-amazon-apigateway-authtype": "awsSigv4"},
            "jwt": {"type": "oauth2", "x-amazon-apigateway-authorizer": {"type": "jwt", "identitySource": "$request.header.Authorization", "jwtConfiguration": {"issuer": "https://i", "audience": ["a"]}}}
        }}
    }));
    assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
    assert_eq!(c.errors[0].field, "/paths/~1two/get/security");
    assert_eq!(
        c.pending.lambdas[0].conf.function_name.as_deref(),
        Some("my-function")
    );
    assert_eq!(c.pending.routes.len(), 2);
    assert!(c
        .warnings
        .iter()
        .any(|w| w.problem.starts_with("Lambda integration (function ")));
    assert!(c
        .warnings
        .iter()
        .any(|w| w.problem.starts_with("IAM authorization")));
    assert_eq!(c.routes.len(), 1);
    assert_eq!(c.routes[0].conf.authorization_scopes, ["read"]);
    assert_eq!(c.routes[0].conf.authorizer_id.as_deref(), Some("jwt"));
}

#[test]
fn local_key_extensions_beside_a_jwt_authorizer() {
    let scheme = |ext: &str| {
        json!({
            "openapi": "3.0.1",
            "paths": {},
            "components": {"securitySchemes": {"a": {
                "type": "oauth2",
                ext: "keys.json",
                "x-amazon-apigateway-authorizer": {"type": "jwt", "jwtConfiguration": {"issuer": "https://i", "audience": ["x"]}}
            }}}
        })
    };
    let c = lowered(scheme("x-apigate-jwks-file"));
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(
        c.authorizers[0].conf.jwks_file.as_deref(),
        Some("keys.json")
    );
    assert_eq!(
        c.authorizers[0].conf.identity_source,
        ["$request.header.Authorization"]
    );
    let c = lowered(scheme("x-apigate-jwks-fil"));
    assert!(
        c.errors[0]
            .fix
            .contains("did you mean x-apigate-jwks-file?"),
        "{:?}",
        c.errors
    );
}

#[test]
fn sam_spellings_of_default_route_and_no_authorizer() {
    let c = lowered(json!({
        "openapi": "3.0.1",
        "security": [{"jwt": []}],
        "paths": {
            "/$default": {"x-amazon-apigateway-any-method": {"x-amazon-apigateway-integration": {"type": "http_proxy", "uri": "http://h"}}},
            "/open": {"get": {"security": [{"NONE": []}], "x-amazon-apigateway-integration": {"type": "http_proxy", "uri": "http://h"}}}
        },
        "components": {"securitySchemes": {"jwt": {"type": "oauth2", "x-amazon-apigateway-authorizer": {
            "type": "jwt", "openIdConnectUrl": "https://i/.well-known/openid-configuration",
            "jwtConfiguration": {"issuer": "https://i", "audience": ["a"]}}}}}
    }));
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let keys: Vec<_> = c
        .routes
        .iter()
        .map(|r| {
            (
                r.conf.route_key.as_str(),
                r.conf.authorization_type.as_deref(),
            )
        })
        .collect();
    assert_eq!(keys, [("$default", Some("JWT")), ("GET /open", None)]);
}

#[test]
fn a_misspelt_openapi_field_is_named() {
    let c = lowered(json!({"openapi": "3.0.1", "path": {}, "paths": {}}));
    assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
    assert_eq!(c.errors[0].field, "/path");
    assert_eq!(c.errors[0].fix, "did you mean paths?");
}
