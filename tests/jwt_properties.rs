//! Property tests of the JWT authorizer over untrusted tokens: arbitrary text, tokens built
//! from arbitrary base64url segments (headers naming every algorithm and key, `alg: none`,
//! embedded `jwk`/`jku`), and every one-character change to a genuinely signed token.
//! With a static key set (HMAC, RSA and EC keys), each is refused with a 401, never a
//! panic; only the untouched signed token passes.

use apigate::config::{AuthorizerConf, ConfigErrors, JwtConf};
use apigate::policy::jwt::{AuthReject, JwtAuthorizer};
use base64::Engine;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

const SECRET: &[u8] = b"property-test-secret-0123456789abcdef";
const ISSUER: &str = "https://issuer.example";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One authorizer with an HMAC, an RSA and an EC key, as an operator would hold them.
static AUTHORIZER: LazyLock<JwtAuthorizer> = LazyLock::new(|| {
    let rsa: Value =
        serde_json::from_str(include_str!("fixtures/jwt/rsa-a.jwk.json")).expect("rsa fixture");
    let ec: Value =
        serde_json::from_str(include_str!("fixtures/jwt/ec-a.jwk.json")).expect("ec fixture");
    let oct = json!({"kty": "oct", "kid": "k1", "alg": "HS256", "k": b64(SECRET)});
    let conf = AuthorizerConf {
        authorizer_type: "JWT".into(),
        identity_source: vec!["$request.header.Authorization".into()],
        jwt_configuration: Some(JwtConf {
            issuer: Some(ISSUER.into()),
            audience: vec!["api".into()],
        }),
        jwks: Some(json!({"keys": [oct, rsa, ec]})),
        ..AuthorizerConf::default()
    };
    let mut errors = ConfigErrors::default();
    JwtAuthorizer::compile(
        "authorizers/a.json",
        "a",
        &conf,
        Path::new("."),
        &mut errors,
    )
    .unwrap_or_else(|| panic!("the test authorizer does not compile: {errors}"))
});

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
});

fn authorize(token: &str) -> Result<(), AuthReject> {
    RUNTIME
        .block_on(AUTHORIZER.authorize(Some(token), &[]))
        .map(drop)
}

fn good_claims() -> Value {
    json!({"iss": ISSUER, "aud": "api", "sub": "alice", "exp": now() + 3600})
}

/// A token the authorizer accepts: HS256 with the operator's secret.
static SIGNED: LazyLock<String> = LazyLock::new(|| {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("k1".into());
    jsonwebtoken::encode(
        &header,
        &good_claims(),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .expect("sign")
});

fn is_401(r: &Result<(), AuthReject>) -> bool {
    matches!(r, Err(AuthReject::Unauthorized { .. }))
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,4}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JOSE header: every algorithm name, the configured kids and others, and the header
/// parameters attackers use to smuggle their own key (RFC 7515 4.1).
fn header() -> impl Strategy<Value = Value> {
    let alg = proptest::sample::select(vec![
        "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
        "ES384", "EdDSA", "none", "None", "NONE", "", "hs256",
    ]);
    let kid = proptest::option::of(proptest::sample::select(vec![
        "k1",
        "rsa-a",
        "ec-a",
        "unknown",
        "../../dev/null",
        "' OR 1=1 --",
        "",
    ]));
    let extra = proptest::collection::btree_map(
        proptest::sample::select(vec![
            "jwk", "jku", "x5u", "x5c", "crit", "typ", "cty", "b64",
        ]),
        json_value(),
        0..3,
    );
    (alg, kid, extra, any::<bool>()).prop_map(|(alg, kid, extra, alg_as_other)| {
        let mut h: serde_json::Map<String, Value> =
            extra.into_iter().map(|(k, v)| (k.into(), v)).collect();
        h.insert(
            "alg".into(),
            if alg_as_other {
                json!([alg])
            } else {
                json!(alg)
            },
        );
        if let Some(kid) = kid {
            h.insert("kid".into(), json!(kid));
        }
        Value::Object(h)
    })
}

/// Claims: the good ones with some replaced, or anything.
fn claims() -> impl Strategy<Value = Value> {
    let changed = proptest::collection::btree_map(
        proptest::sample::select(vec!["iss", "aud", "exp", "nbf", "iat", "sub", "scope"]),
        json_value(),
        0..3,
    )
    .prop_map(|changes| {
        let mut c = good_claims();
        for (k, v) in changes {
            c[k] = v;
        }
        c
    });
    prop_oneof![3 => changed, 1 => json_value()]
}

/// A segment: base64url of JSON, of arbitrary bytes, or not base64 at all.
fn signature() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..80).prop_map(|b| b64(&b)),
        Just(String::new()),
        "[A-Za-z0-9_=+/.-]{0,90}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_is_refused(token in prop_oneof![
        "\\PC{0,200}",
        "[A-Za-z0-9_.=-]{0,300}",
        any::<String>(),
    ]) {
        prop_assume!(token != *SIGNED);
        let r = authorize(&token);
        prop_assert!(is_401(&r), "{:?} for {:?}", r, token);
        let r = authorize(&format!("Bearer {token}"));
        prop_assert!(is_401(&r), "{:?} for Bearer {:?}", r, token);
    }

    #[test]
    fn forged_tokens_are_refused(
        h in header(),
        c in claims(),
        sig in signature(),
        raw_header in proptest::option::weighted(0.1, "[A-Za-z0-9_-]{0,40}"),
        extra_segments in 0usize..3,
    ) {
        let head = raw_header.unwrap_or_else(|| b64(h.to_string().as_bytes()));
        let mut token = format!("{head}.{}.{sig}", b64(c.to_string().as_bytes()));
        for _ in 0..extra_segments {
            token.push('.');
            token.push_str(&sig);
        }
        let r = authorize(&token);
        prop_assert!(is_401(&r), "{:?} for {}", r, token);
    }

    #[test]
    fn every_change_to_a_signed_token_is_refused(
        at in any::<proptest::sample::Index>(),
        edit in prop_oneof![
            proptest::char::ranges(vec!['A'..='Z', 'a'..='z', '0'..='9'].into()).prop_map(Some),
            proptest::sample::select(vec!['-', '_', '.', '=', '+', '/', ' ', '\0', 'é']).prop_map(Some),
            Just(None),
        ],
        truncate in any::<bool>(),
    ) {
        let signed: &str = &SIGNED;
        let i = at.index(signed.len());
        let forged = match (truncate, edit) {
            (true, _) => signed[..i].to_string(),
            (false, Some(c)) => format!("{}{c}{}", &signed[..i], &signed[i + 1..]),
            (false, None) => format!("{}{}", &signed[..i], &signed[i + 1..]),
        };
        prop_assume!(forged != signed);
        let r = authorize(&forged);
        prop_assert!(is_401(&r), "{:?} for {}", r, forged);
    }
}

/// The properties above can fail: the untouched token passes.
#[test]
fn the_signed_token_is_accepted() {
    assert!(authorize(&SIGNED).is_ok());
    assert!(authorize(&format!("Bearer {}", *SIGNED)).is_ok());
}
