//! Parameter-mapping tests: parsing, evaluation, compiled mappings and their config errors.

use super::*;
use crate::config::ConfigErrors;
use pingora_http::{RequestHeader, ResponseHeader};
use std::collections::BTreeMap;

fn vars_for<'a>(req: &'a RequestHeader, params: &'a [(Box<str>, Box<str>)]) -> Vars<'a> {
    Vars {
        req,
        path: "/a/b%20c",
        full_path: "/v0/a/b%20c",
        params,
        request_id: "rid",
        stage: "v0",
        route_key: "GET /a/{proxy+}",
        source_ip: "127.0.0.1",
        claims: None,
        authorizer: None,
        resp: None,
        client_cert: None,
    }
}

fn no_stage_vars() -> BTreeMap<String, String> {
    BTreeMap::new()
}

#[test]
fn parses_every_value_form() {
    let sv: BTreeMap<String, String> = [("env".to_string(), "prod".to_string())].into();
    let t = Template::parse(
        "/v2/${request.path.proxy}-$stageVariables.env",
        Side::Request,
        &sv,
    )
    .unwrap();
    let mut req = RequestHeader::build("GET", b"/a/b%20c?x=1&x=2&y=%41", None).unwrap();
    req.append_header("h1", "one").unwrap();
    req.append_header("h1", "two").unwrap();
    let params = [("proxy".into(), "b%20c".into())];
    let v = vars_for(&req, &params);
    assert_eq!(t.eval(&v, true), "/v2/b%20c-prod");
    assert_eq!(t.eval(&v, false), "/v2/b c-prod");
    let t = Template::parse("$request.header.H1", Side::Request, &sv).unwrap();
    assert_eq!(t.eval(&v, false), "one,two");
    let t = Template::parse(
        "$request.querystring.x;${request.querystring.y}",
        Side::Request,
        &sv,
    )
    .unwrap();
    assert_eq!(t.eval(&v, false), "1,2;A");
    let t = Template::parse(
        "${context.requestId} $context.stage $context.routeKey $context.identity.sourceIp",
        Side::Request,
        &sv,
    )
    .unwrap();
    assert_eq!(t.eval(&v, false), "rid v0 GET /a/{proxy+} 127.0.0.1");
    let t = Template::parse("cost: $5", Side::Request, &sv).unwrap();
    assert_eq!(t.as_literal(), Some("cost: $5"));
}

#[test]
fn claims_and_response_headers() {
    let req = RequestHeader::build("GET", b"/", None).unwrap();
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.append_header("x-up", "u").unwrap();
    let claims: Claims =
        serde_json::from_str(r#"{"sub":"alice","groups":["a","b"],"n":3}"#).unwrap();
    let mut v = vars_for(&req, &[]);
    v.claims = Some(&claims);
    v.resp = Some(&resp);
    let t = Template::parse("$context.authorizer.claims.sub/${context.authorizer.claims.groups}/$context.authorizer.claims.n", Side::Request, &no_stage_vars()).unwrap();
    assert_eq!(t.eval(&v, false), "alice/a,b/3");
    let t = Template::parse("$response.header.x-up", Side::Response, &no_stage_vars()).unwrap();
    assert_eq!(t.eval(&v, false), "u");
}

#[test]
fn rejects_bad_expressions() {
    let sv = no_stage_vars();
    assert!(Template::parse("$response.header.x", Side::Request, &sv).is_err());
    assert!(Template::parse("$context.nope", Side::Request, &sv).is_err());
    assert!(Template::parse("${request.header.x", Side::Request, &sv).is_err());
    assert!(Template::parse("$request.body.a", Side::Request, &sv).is_err());
}

#[test]
fn reserved_headers_and_bad_keys_are_config_errors() {
    let mut errors = ConfigErrors::default();
    let map: BTreeMap<String, String> = [
        ("overwrite:header.Authorization", "x"),
        ("append:header.X-Forwarded-For", "x"),
        ("overwrite:header.x-amzn-trace", "x"),
        ("append:path", "/x"),
        ("overwrite:header.Api-Version", "v1"),
        ("bogus", "x"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let m = RequestMapping::compile(
        "integrations/i.json",
        "RequestParameters",
        &map,
        &no_stage_vars(),
        &mut errors,
    );
    assert_eq!(m.ops.len(), 1);
    assert_eq!(errors.0.len(), 5, "{errors}");
    assert!(errors
        .0
        .iter()
        .all(|e| e.file == "integrations/i.json" && e.field.starts_with("RequestParameters.")));
}

#[test]
fn reserved_header_errors_say_what_to_do() {
    let mut errors = ConfigErrors::default();
    let map: BTreeMap<String, String> = [(
        "overwrite:header.X-Forwarded-For".to_string(),
        "x".to_string(),
    )]
    .into();
    RequestMapping::compile(
        "f",
        "RequestParameters",
        &map,
        &no_stage_vars(),
        &mut errors,
    );
    let e = &errors.0[0];
    assert!(e.problem.contains("reserved"), "{e}");
    assert!(e.fix.contains("X-App-Forwarded-For"), "{e}");
    let mut errors = ConfigErrors::default();
    let map: BTreeMap<String, BTreeMap<String, String>> = [(
        "200".to_string(),
        [("append:header.Via".to_string(), "x".to_string())].into(),
    )]
    .into();
    ResponseMapping::compile(
        "f",
        "ResponseParameters",
        &map,
        &no_stage_vars(),
        &mut errors,
    );
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(
        errors.0[0].field,
        "ResponseParameters.200.append:header.Via"
    );
    assert!(errors.0[0].fix.contains("X-App-Via"), "{errors}");
}

#[test]
fn references_name_stage_and_path_variables() {
    assert_eq!(
        references("a-$stageVariables.env/${request.path.id}/$request.path-${context.stage} $5"),
        vec![
            Reference::StageVariable("env".into()),
            Reference::PathVariable("id".into()),
        ]
    );
    let map: BTreeMap<String, String> = [
        (
            "overwrite:header.A".to_string(),
            "$request.path.x".to_string(),
        ),
        ("remove:header.B".to_string(), "$request.path.y".to_string()),
    ]
    .into();
    let refs = mapping_references(map.iter().map(|(k, v)| (k.clone(), k, v)));
    assert_eq!(
        refs,
        vec![(
            "overwrite:header.A".to_string(),
            Reference::PathVariable("x".into())
        )]
    );
}

#[test]
fn response_mapping_keys_must_be_status_codes() {
    let mut errors = ConfigErrors::default();
    let map: BTreeMap<String, BTreeMap<String, String>> = [
        (
            "500".to_string(),
            [("overwrite:statuscode".to_string(), "403".to_string())].into(),
        ),
        ("600".to_string(), BTreeMap::new()),
        ("abc".to_string(), BTreeMap::new()),
        (
            "404".to_string(),
            [("overwrite:statuscode".to_string(), "99".to_string())].into(),
        ),
    ]
    .into();
    let m = ResponseMapping::compile(
        "f",
        "ResponseParameters",
        &map,
        &no_stage_vars(),
        &mut errors,
    );
    assert_eq!(errors.0.len(), 3, "{errors}");
    assert_eq!(m.for_status(500).len(), 1);
    assert!(m.for_status(200).is_empty());
}

#[test]
fn every_scope_spelling_names_a_context_variable() {
    use context::{ContextVar, Scope};
    for scope in [&Scope::MAPPING, &Scope::ACCESS_LOG] {
        for name in scope.names() {
            assert!(scope.parse(name).is_some(), "{name} in {scope:?}");
        }
    }
    assert_eq!(
        Scope::MAPPING.parse("extendedRequestId"),
        Some(ContextVar::RequestId)
    );
    assert_eq!(
        Scope::ACCESS_LOG.parse("authorizer.claims.sub"),
        Some(ContextVar::Claim("sub".into()))
    );
    // A mapping runs before the backend answers: no status, no latencies.
    assert_eq!(Scope::MAPPING.parse("status"), None);
    assert_eq!(Scope::ACCESS_LOG.parse("status"), Some(ContextVar::Status));
    let e = Template::parse("$context.status", Side::Response, &no_stage_vars()).unwrap_err();
    assert!(
        e.starts_with("unknown context variable $context.status; supported: requestId, stage,"),
        "{e}"
    );
}

#[test]
fn context_names_end_where_the_shared_lexer_says() {
    assert_eq!(
        context::lex("authorizer.claims.cognito:groups"),
        "authorizer.claims.cognito"
    );
    assert_eq!(
        context::lex("authorizer.claims.custom-id. x"),
        "authorizer.claims.custom-id"
    );
    assert_eq!(context::lex("stage-$context.requestId"), "stage");
    let req = RequestHeader::build("GET", b"/", None).unwrap();
    let claims: Claims =
        serde_json::from_str(r#"{"cognito":"c","cognito:groups":"admins","custom-id":"7"}"#)
            .unwrap();
    let mut v = vars_for(&req, &[]);
    v.claims = Some(&claims);
    let eval = |text: &str| {
        Template::parse(text, Side::Request, &no_stage_vars())
            .unwrap()
            .eval(&v, false)
    };
    // ':' is not a name character (AWS); the braced form reads any claim name.
    assert_eq!(
        eval("$context.authorizer.claims.cognito:groups"),
        "c:groups"
    );
    assert_eq!(
        eval("${context.authorizer.claims.cognito:groups}"),
        "admins"
    );
    assert_eq!(eval("$context.authorizer.claims.custom-id"), "7");
    // '-' ends other names, as in access logs (this was an unknown-variable error).
    assert_eq!(eval("$context.stage-$context.requestId"), "v0-rid");
    let e = Template::parse("$context.nope-x", Side::Request, &no_stage_vars()).unwrap_err();
    assert!(
        e.starts_with("unknown context variable $context.nope;"),
        "{e}"
    );
}

#[test]
fn reserved_headers_are_exactly_what_the_gateway_http_or_aws_own() {
    for (name, owner) in [
        ("Host", "the gateway sets it"),
        ("X-Forwarded-Port", "the gateway sets it"),
        ("apigw-requestid", "the gateway sets it"),
        ("Keep-Alive", "hop-by-hop"),
        ("Proxy-Authorization", "hop-by-hop"),
        ("Origin", "AWS HTTP APIs reserve it"),
        ("X-Amz-Date", "AWS HTTP APIs reserve it"),
    ] {
        let map: BTreeMap<String, String> =
            [(format!("remove:header.{name}"), String::new())].into();
        let mut errors = ConfigErrors::default();
        RequestMapping::compile("f", "P", &map, &no_stage_vars(), &mut errors);
        assert_eq!(errors.0.len(), 1, "{name}");
        assert!(
            errors.0[0].problem.contains(owner),
            "{name}: {}",
            errors.0[0]
        );
    }
    // apigate does not write these: operators may set or remove them.
    for name in [
        "X-Forwarded-Host",
        "X-Forwarded-Prefix",
        "X-Forwarded-Server",
        "X-Real-Ip",
        "Cookie",
    ] {
        assert!(!is_reserved_header(name), "{name}");
    }
}
