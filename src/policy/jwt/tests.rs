//! The authorizer's behaviour end to end: configuration, keys, claims, cache.

use super::cache::{shard_of, CACHE_CAPACITY};
use super::identity::strip_bearer;
use super::keys::{KeySet, Origin};
use super::remote::is_loopback_url;
use super::verify::now_secs;
use super::*;
use crate::config::{AuthorizerConf, ConfigErrors, JwtConf};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use std::path::Path;

const SECRET: &[u8] = b"unit-test-secret-0123456789abcdef";

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn conf(jwks: serde_json::Value) -> AuthorizerConf {
    AuthorizerConf {
        authorizer_type: "JWT".into(),
        identity_source: vec!["$request.header.Authorization".into()],
        jwt_configuration: Some(JwtConf {
            issuer: Some("https://iss".into()),
            audience: vec!["aud1".into()],
        }),
        jwks: Some(jwks),
        clock_skew_seconds: Some(5),
        ..AuthorizerConf::default()
    }
}

fn hs_authorizer() -> JwtAuthorizer {
    let jwks = json!({"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": b64(SECRET)}]});
    JwtAuthorizer::compile(
        "authorizers/a.json",
        "a",
        &conf(jwks),
        Path::new("."),
        &mut ConfigErrors::default(),
    )
    .unwrap()
}

fn token(claims: serde_json::Value, kid: Option<&str>) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = kid.map(str::to_string);
    encode(&h, &claims, &EncodingKey::from_secret(SECRET)).unwrap()
}

fn good() -> serde_json::Value {
    json!({"sub": "alice", "iss": "https://iss", "aud": "aud1", "exp": now_secs() + 300, "scope": "read write"})
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn rejects(a: &JwtAuthorizer, tok: &str) -> String {
    match block(a.authorize(Some(tok), &[])) {
        Err(AuthReject::Unauthorized { www_authenticate }) => www_authenticate,
        other => panic!("expected 401, got {other:?}"),
    }
}

#[test]
fn accepts_valid_tokens_with_or_without_bearer_and_caches_them() {
    let a = hs_authorizer();
    let t = token(good(), Some("k1"));
    let c = block(a.authorize(Some(&format!("Bearer {t}")), &[])).unwrap();
    assert_eq!(c["sub"], "alice");
    assert!(block(a.authorize(Some(&t), &["read".into()])).is_ok());
    assert!(a.cache[shard_of(&t)].read().contains_key(&t));
}

#[test]
fn claim_checks() {
    let a = hs_authorizer();
    let now = now_secs();
    let with = |k: &str, v: serde_json::Value| {
        let mut c = good();
        c[k] = v;
        token(c, Some("k1"))
    };
    assert!(rejects(&a, &with("exp", json!(now - 10))).contains("expired"));
    assert!(
        block(a.authorize(Some(&with("exp", json!(now - 2))), &[])).is_ok(),
        "within skew"
    );
    assert!(rejects(&a, &with("nbf", json!(now + 60))).contains("not valid yet"));
    assert!(rejects(&a, &with("iat", json!(now + 60))).contains("future"));
    assert!(rejects(&a, &with("iss", json!("https://iss/"))).contains("issuer"));
    assert!(rejects(&a, &with("aud", json!("other"))).contains("audience"));
    assert!(block(a.authorize(Some(&with("aud", json!(["x", "aud1"]))), &[])).is_ok());
    let mut c = good();
    c.as_object_mut().unwrap().remove("aud");
    c["client_id"] = json!("aud1");
    assert!(
        block(a.authorize(Some(&token(c.clone(), Some("k1"))), &[])).is_ok(),
        "client_id when no aud"
    );
    c["client_id"] = json!("nope");
    assert!(rejects(&a, &token(c, Some("k1"))).contains("audience"));
    let mut c = good();
    c.as_object_mut().unwrap().remove("exp");
    assert!(rejects(&a, &token(c, Some("k1"))).contains("expiry"));
}

#[test]
fn rejects_forgeries() {
    let a = hs_authorizer();
    let t = token(good(), Some("k1"));
    let tampered = format!("{}AAAA", &t[..t.len() - 4]);
    assert!(rejects(&a, &tampered).contains("signature"));
    assert!(rejects(&a, &token(good(), Some("nope"))).contains("unknown"));
    assert!(rejects(&a, "not.a.jwt").contains("invalid_token"));
    // alg none
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(good().to_string().as_bytes())
    );
    assert!(rejects(&a, &none).contains("invalid_token"));
    assert_eq!(rejects_missing(&a), "Bearer");
}

fn rejects_missing(a: &JwtAuthorizer) -> String {
    match block(a.authorize(None, &[])) {
        Err(AuthReject::Unauthorized { www_authenticate }) => www_authenticate,
        other => panic!("{other:?}"),
    }
}

#[test]
fn hmac_token_against_an_rsa_key_is_rejected() {
    // The classic confusion: sign HS256 with the RSA public key's bytes as the secret.
    let n = b64(&[0xc5; 256]);
    let jwks = json!({"keys": [{"kty": "RSA", "kid": "r1", "n": n, "e": "AQAB"}]});
    let a = JwtAuthorizer::compile(
        "f",
        "a",
        &conf(jwks),
        Path::new("."),
        &mut ConfigErrors::default(),
    )
    .unwrap();
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("r1".into());
    let t = encode(&h, &good(), &EncodingKey::from_secret(n.as_bytes())).unwrap();
    assert!(rejects(&a, &t).contains("algorithm"));
}

#[test]
fn a_kid_shared_by_two_key_types_picks_by_algorithm() {
    use jsonwebtoken::EncodingKey;
    let rsa_pub = std::fs::read_to_string("tests/fixtures/jwt/rsa-a.jwk.json").unwrap();
    let mut rsa_jwk: serde_json::Value = serde_json::from_str(&rsa_pub).unwrap();
    rsa_jwk["kid"] = json!("same");
    let oct = json!({"kty": "oct", "kid": "same", "k": b64(SECRET)});
    for keys in [json!([rsa_jwk.clone(), oct.clone()]), json!([oct, rsa_jwk])] {
        let a = JwtAuthorizer::compile(
            "f",
            "a",
            &conf(json!({ "keys": keys })),
            Path::new("."),
            &mut ConfigErrors::default(),
        )
        .unwrap();
        let hs = token(good(), Some("same"));
        assert!(block(a.authorize(Some(&hs), &[])).is_ok(), "HS256");
        let pem = std::fs::read("tests/fixtures/jwt/rsa-a.pem").unwrap();
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("same".into());
        let rs = encode(&h, &good(), &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap();
        assert!(block(a.authorize(Some(&rs), &[])).is_ok(), "RS256");
    }
}

#[test]
fn published_sets_never_yield_hmac_keys_and_short_secrets_are_refused() {
    let oct = json!({"keys": [{"kty": "oct", "kid": "k1", "k": b64(SECRET)}]});
    let (set, skipped) = KeySet::parse(&oct, Origin::Published).unwrap();
    assert!(set.keys.is_empty());
    assert!(skipped[0].contains("anyone"), "{skipped:?}");
    assert_eq!(
        KeySet::parse(&oct, Origin::Operator).unwrap().0.keys.len(),
        1
    );
    let short = json!({"keys": [{"kty": "oct", "k": b64(b"short")}]});
    let (set, skipped) = KeySet::parse(&short, Origin::Operator).unwrap();
    assert!(set.keys.is_empty());
    assert!(skipped[0].contains("at least 32"), "{skipped:?}");
    let hs512 = json!({"keys": [{"kty": "oct", "alg": "HS512", "k": b64(SECRET)}]});
    assert!(KeySet::parse(&hs512, Origin::Operator)
        .unwrap()
        .0
        .keys
        .is_empty());
}

#[test]
fn unreadable_time_claims_are_refused_and_any_claim_shape_is_accepted() {
    let a = hs_authorizer();
    let with = |k: &str, v: serde_json::Value| {
        let mut c = good();
        c[k] = v;
        token(c, Some("k1"))
    };
    let far = (now_secs() + 3600).to_string();
    assert!(rejects(&a, &with("nbf", json!(far))).contains("nbf"));
    assert!(rejects(&a, &with("iat", json!(far))).contains("iat"));
    assert!(rejects(&a, &with("exp", json!(far))).contains("exp"));
    let c = block(a.authorize(Some(&with("sub", json!(["a", "b"]))), &[])).unwrap();
    assert_eq!(c["sub"], json!(["a", "b"]));
    assert!(block(a.authorize(Some(&with("groups", json!({"x": [1]}))), &[])).is_ok());
}

#[test]
fn issuer_is_required_and_intervals_are_bounded() {
    let mut c = conf(json!({"keys": [{"kty": "oct", "k": b64(SECRET)}]}));
    c.jwt_configuration = Some(JwtConf {
        issuer: None,
        audience: vec!["aud1".into()],
    });
    c.jwks_min_refetch_seconds = Some(0);
    c.clock_skew_seconds = Some(86_400);
    let mut errors = ConfigErrors::default();
    assert!(
        JwtAuthorizer::compile("authorizers/a.json", "a", &c, Path::new("."), &mut errors)
            .is_none()
    );
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "JwtConfiguration.Issuer",
            "ClockSkewSeconds",
            "JwksMinRefetchSeconds"
        ]
    );
}

#[test]
fn the_verified_token_cache_stays_bounded() {
    let a = hs_authorizer();
    for i in 0..(CACHE_CAPACITY * 2) {
        let mut c = good();
        c["sub"] = json!(i);
        assert!(block(a.authorize(Some(&token(c, Some("k1"))), &[])).is_ok());
    }
    let total: usize = a.cache.iter().map(|s| s.read().len()).sum();
    assert!(total <= CACHE_CAPACITY, "{total} cached tokens");
}

#[test]
fn scopes_from_scope_or_scp() {
    let a = hs_authorizer();
    let t = token(good(), Some("k1"));
    assert_eq!(
        block(a.authorize(Some(&t), &["admin".into()])).unwrap_err(),
        AuthReject::Forbidden
    );
    let mut c = good();
    c.as_object_mut().unwrap().remove("scope");
    c["scp"] = json!(["admin"]);
    assert!(block(a.authorize(Some(&token(c, Some("k1"))), &["admin".into()])).is_ok());
}

#[test]
fn config_errors_name_fields() {
    let mut errors = ConfigErrors::default();
    let mut c = conf(json!({"keys": []}));
    c.identity_source = vec!["$request.body.x".into()];
    c.jwt_configuration = Some(JwtConf {
        issuer: None,
        audience: vec![],
    });
    assert!(
        JwtAuthorizer::compile("authorizers/a.json", "a", &c, Path::new("."), &mut errors)
            .is_none()
    );
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert!(fields.contains(&"IdentitySource"), "{fields:?}");
    assert!(fields.contains(&"JwtConfiguration.Audience"));
    assert!(fields.contains(&"Jwks"));
}

#[test]
fn bearer_prefix() {
    assert_eq!(strip_bearer("Bearer abc"), "abc");
    assert_eq!(strip_bearer("bearer  abc"), "abc");
    assert_eq!(strip_bearer("abc"), "abc");
    assert_eq!(strip_bearer("Bear"), "Bear");
    assert_eq!(strip_bearer("Bearer"), "");
    assert_eq!(strip_bearer(" bearer   "), "");
}

#[test]
fn loopback_urls() {
    assert!(is_loopback_url("http://127.0.0.1:9/jwks"));
    assert!(is_loopback_url("http://[::1]/jwks"));
    assert!(is_loopback_url("http://[::1]:80/jwks"));
    assert!(is_loopback_url("http://localhost:8080"));
    assert!(!is_loopback_url("http://idp.example.com/jwks"));
    assert!(!is_loopback_url("http://10.0.0.1/jwks"));
}
