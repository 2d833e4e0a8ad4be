//! Composition and lowering of policy documents, without files.

use super::expr::Scope;
use super::policies::{self, Env};
use super::xml;
use std::collections::BTreeMap;

fn doc(file: &str, inbound: &str) -> xml::PolicyDoc {
    xml::parse(
        file,
        &format!("<policies><inbound>{inbound}</inbound></policies>"),
    )
    .unwrap()
}

fn names(stmts: &[policies::Stmt]) -> Vec<String> {
    stmts
        .iter()
        .map(|(f, e)| format!("{f}:{}", e.attr("name").unwrap_or(&e.name)))
        .collect()
}

#[test]
fn base_places_the_parent_where_it_stands() {
    let global = doc(
        "policy.xml",
        r#"<set-header name="G"><value>g</value></set-header>"#,
    );
    let api = doc(
        "api.xml",
        r#"<set-header name="A1"><value>a</value></set-header><base/><set-header name="A2"><value>a</value></set-header>"#,
    );
    let op = doc(
        "op.xml",
        r#"<base/><set-header name="O"><value>o</value></set-header>"#,
    );
    let mut errors = Vec::new();
    let s = policies::compose(&[&global, &api, &op], 0, &mut errors);
    assert_eq!(
        names(&s),
        ["api.xml:A1", "policy.xml:G", "api.xml:A2", "op.xml:O"]
    );
    // Without <base/>, the parent's statements do not run.
    let op = doc(
        "op.xml",
        r#"<set-header name="O"><value>o</value></set-header>"#,
    );
    let s = policies::compose(&[&global, &api, &op], 0, &mut errors);
    assert_eq!(names(&s), ["op.xml:O"]);
    assert!(errors.is_empty());
}

fn env<'a>(named: &'a BTreeMap<String, String>, empty: &'a BTreeMap<String, String>) -> Env<'a> {
    Env {
        named,
        missing: empty,
        backends: empty,
        scope: Scope { api_path: "users" },
        global_file: "policy.xml",
        subscription_header: None,
        operation: None,
    }
}

#[test]
fn statements_lower_onto_mappings_filters_and_authorizers() {
    let named = BTreeMap::from([("version".to_string(), "v2".to_string())]);
    let empty = BTreeMap::new();
    let d = doc(
        "policy.xml",
        r#"<set-header name="Api-Version" exists-action="override"><value>{{version}}</value></set-header>
           <set-header name="Api-Path"><value>@(context.Request.Url.Path)</value></set-header>
           <set-query-parameter name="src" exists-action="append"><value>gw</value></set-query-parameter>
           <ip-filter action="allow"><address>127.0.0.1</address><address-range from="10.0.0.0" to="10.0.0.255"/></ip-filter>
           <validate-jwt header-name="Authorization"><issuer-signing-keys><key>c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=</key></issuer-signing-keys><issuers><issuer>https://issuer.example</issuer></issuers></validate-jwt>"#,
    );
    let mut errors = Vec::new();
    let sections = [0, 1, 2, 3].map(|i| policies::compose(&[&d], i, &mut errors));
    let out = policies::lower(sections, &env(&named, &empty), &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(out.request["overwrite:header.Api-Version"], "v2");
    assert_eq!(out.request["overwrite:header.Api-Path"], "${request.path}");
    assert_eq!(out.request["append:querystring.src"], "gw");
    let ip = out.ip_filter.unwrap();
    assert_eq!(ip.addresses, ["127.0.0.1", "10.0.0.0/24"]);
    let (_, auth) = out.jwt.unwrap();
    assert_eq!(auth.identity_source, ["$request.header.Authorization"]);
    assert_eq!(auth.jwks.unwrap()["keys"][0]["kty"], "oct");
}

#[test]
fn unsupported_statements_and_attributes_name_the_line() {
    let named = BTreeMap::new();
    let d = xml::parse(
        "apis/a/policy.xml",
        "<policies>\n<inbound>\n<base/>\n<send-request mode=\"new\"/>\n<set-header name=\"A\" bogus=\"1\"><value>x</value></set-header>\n<set-header name=\"B\"><value>{{nope}}</value></set-header>\n</inbound>\n<on-error><set-status code=\"500\"/></on-error>\n</policies>",
    )
    .unwrap();
    let mut errors = Vec::new();
    let sections = [0, 1, 2, 3].map(|i| policies::compose(&[&d], i, &mut errors));
    policies::lower(sections, &env(&named, &named), &mut errors);
    let got: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got[0].starts_with("apis/a/policy.xml: line 4 <send-request>: <send-request> in <inbound> is not supported"), "{got:?}");
    assert!(
        got[1].contains("line 5 <set-header>: attribute \"bogus\""),
        "{got:?}"
    );
    assert!(
        got[2].contains("line 6 <value>: named value {{nope}} is not defined"),
        "{got:?}"
    );
    assert!(got[3].contains("line 8 <set-status>"), "{got:?}");
}

#[test]
fn rate_limit_counts_per_subscription_key_and_needs_one() {
    let empty = BTreeMap::new();
    let d = doc(
        "policy.xml",
        r#"<rate-limit calls="5" renewal-period="10"/>"#,
    );
    let mut errors = Vec::new();
    let sections = [0, 1, 2, 3].map(|i| policies::compose(&[&d], i, &mut errors));
    let mut e = env(&empty, &empty);
    e.subscription_header = Some("Ocp-Apim-Subscription-Key");
    let out = policies::lower(sections.clone(), &e, &mut errors);
    let rl = out.rate_limit.unwrap();
    assert_eq!((rl.calls, rl.period_seconds), (5, 10));
    assert_eq!(rl.key, "$request.header.Ocp-Apim-Subscription-Key");
    assert!(errors.is_empty());
    policies::lower(sections, &env(&empty, &empty), &mut errors);
    assert!(errors[0].problem.contains("requires none"), "{errors:?}");
}

#[test]
fn statements_after_a_returned_response_are_refused() {
    let empty = BTreeMap::new();
    let d = doc(
        "policy.xml",
        r#"<return-response><set-status code="204" reason="No Content"/></return-response><set-header name="A"><value>x</value></set-header>"#,
    );
    let mut errors = Vec::new();
    let sections = [0, 1, 2, 3].map(|i| policies::compose(&[&d], i, &mut errors));
    let out = policies::lower(sections, &env(&empty, &empty), &mut errors);
    assert_eq!(out.answer.unwrap().status, 204);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].problem.contains("never runs"), "{errors:?}");
}

#[test]
fn reserved_headers_are_refused_with_the_line() {
    let empty = BTreeMap::new();
    let d = doc(
        "policy.xml",
        r#"<set-header name="Host"><value>x</value></set-header>"#,
    );
    let mut errors = Vec::new();
    let sections = [0, 1, 2, 3].map(|i| policies::compose(&[&d], i, &mut errors));
    policies::lower(sections, &env(&empty, &empty), &mut errors);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].field.starts_with("line 1 <set-header>"),
        "{errors:?}"
    );
    assert!(errors[0].problem.contains("Host"), "{errors:?}");
}

#[test]
fn names_of_environment_variables_and_scopes() {
    use super::layout::{secret_env_name, short_scope, subscription_env_name};
    assert_eq!(
        secret_env_name("jwt-signing.key"),
        "APIM_NAMED_VALUE_JWT_SIGNING_KEY"
    );
    assert_eq!(
        subscription_env_name("orgs-dev"),
        "APIM_SUBSCRIPTION_KEY_ORGS_DEV"
    );
    assert_eq!(short_scope("/apis/users"), "/apis/users");
    assert_eq!(short_scope("/apis"), "/apis");
    assert_eq!(
        short_scope("/subscriptions/x/resourceGroups/g/providers/Microsoft.ApiManagement/service/s/products/starter"),
        "/products/starter"
    );
}

#[test]
fn validate_jwt_keys_and_discovery() {
    let empty = BTreeMap::new();
    let d = doc(
        "policy.xml",
        r#"<validate-jwt query-parameter-name="token" clock-skew="30"><issuer-signing-keys><key id="k1" n="sXch" e="AQAB"/></issuer-signing-keys><issuers><issuer>https://id.example/</issuer></issuers></validate-jwt>"#,
    );
    let mut errors = Vec::new();
    let sections = [0, 1, 2, 3].map(|i| policies::compose(&[&d], i, &mut errors));
    let out = policies::lower(sections, &env(&empty, &empty), &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    let (_, auth) = out.jwt.unwrap();
    assert_eq!(auth.identity_source, ["$request.querystring.token"]);
    assert_eq!(auth.clock_skew_seconds, Some(30));
    let key = &auth.jwks.unwrap()["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["kid"].as_str()),
        (Some("RSA"), Some("k1"))
    );
    // Discovery only at the issuer's own document; anything else is refused.
    for (url, ok) in [
        ("https://id.example/.well-known/openid-configuration", true),
        (
            "https://other.example/.well-known/openid-configuration",
            false,
        ),
    ] {
        let d = doc(
            "policy.xml",
            &format!(
                r#"<validate-jwt header-name="Authorization"><openid-config url="{url}"/><issuers><issuer>https://id.example/</issuer></issuers></validate-jwt>"#
            ),
        );
        let mut errors = Vec::new();
        let sections = [0, 1, 2, 3].map(|i| policies::compose(&[&d], i, &mut errors));
        let out = policies::lower(sections, &env(&empty, &empty), &mut errors);
        assert_eq!(errors.is_empty(), ok, "{url}: {errors:?}");
        assert_eq!(out.jwt.is_some(), ok);
    }
}
