use super::*;
use http::HeaderValue;

fn conf(calls: u64, period: u64, key: &str) -> RateLimitConf {
    RateLimitConf {
        calls,
        period_seconds: period,
        key: key.to_string(),
    }
}

#[test]
fn key_values() {
    let mut headers = http::HeaderMap::new();
    let ip = "10.1.2.3";
    let source = |name: &str| KeySource::Header(name.to_string());
    assert_eq!(&*key_bytes(&source("X-Key"), &headers, ip, None), b"");
    headers.append("x-key", HeaderValue::from_static("a"));
    let one = key_bytes(&source("X-Key"), &headers, ip, None);
    assert!(matches!(one, Cow::Borrowed(b"a")), "{one:?}");
    headers.append("x-key", HeaderValue::from_static("b"));
    headers.append("x-key", HeaderValue::from_static("c"));
    assert_eq!(&*key_bytes(&source("x-KEY"), &headers, ip, None), b"a,b,c");
    let raw = HeaderValue::from_bytes(b"\xff\xfe").unwrap();
    headers.insert("x-raw", raw);
    assert_eq!(
        &*key_bytes(&source("X-Raw"), &headers, ip, None),
        b"\xff\xfe"
    );
    assert_eq!(
        &*key_bytes(&KeySource::SourceIp, &headers, ip, None),
        ip.as_bytes()
    );
    let claims: Claims =
        serde_json::from_str(r#"{"sub":"u-1","n":42,"o":{"a":[1]}}"#).unwrap_or_default();
    let claim = |name: &str| KeySource::Claim(name.to_string());
    let sub = claim("sub");
    assert!(matches!(
        key_bytes(&sub, &headers, ip, Some(&claims)),
        Cow::Borrowed(b"u-1")
    ));
    assert_eq!(&*key_bytes(&sub, &headers, ip, None), b"");
    let got = |name: &str| key_bytes(&claim(name), &headers, ip, Some(&claims)).into_owned();
    assert_eq!(got("n"), b"42");
    assert_eq!(got("o"), br#"{"a":[1]}"#);
    assert_eq!(got("none"), b"");
}

#[test]
fn key_syntax() {
    assert_eq!(KeySource::parse(SOURCE_IP), Some(KeySource::SourceIp));
    assert_eq!(
        KeySource::parse("$request.header.X-Api-Key"),
        Some(KeySource::Header("X-Api-Key".into()))
    );
    assert_eq!(
        KeySource::parse("$context.authorizer.claims.sub"),
        Some(KeySource::Claim("sub".into()))
    );
    assert_eq!(
        KeySource::parse("$context.authorizer.claims.https://example.com/tenant"),
        Some(KeySource::Claim("https://example.com/tenant".into()))
    );
    for bad in [
        "",
        "$request.header.",
        "$request.header.a b",
        "$context.authorizer.claims.",
        "$context.identity.sourceIP",
        "$request.querystring.k",
        "static",
    ] {
        assert_eq!(KeySource::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn validation() {
    let mut errors = ConfigErrors::default();
    validate(
        "api.json",
        "Policies.RateLimit",
        &conf(10, 60, SOURCE_IP),
        &mut errors,
    );
    validate(
        "api.json",
        "Policies.RateLimit",
        &conf(1, 86_400, "$request.header.x"),
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors}");

    validate(
        "routes/r.json",
        "Policies.RateLimit",
        &conf(0, 0, "$context.identity.sourceIP"),
        &mut errors,
    );
    let fields: Vec<_> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "Policies.RateLimit.Calls",
            "Policies.RateLimit.PeriodSeconds",
            "Policies.RateLimit.Key"
        ]
    );
    assert!(
        errors.0[2]
            .fix
            .contains("did you mean \"$context.identity.sourceIp\""),
        "{}",
        errors.0[2].fix
    );

    let mut errors = ConfigErrors::default();
    validate(
        "a.json",
        "P",
        &conf(1, 86_401, "$request.headers.X-Key"),
        &mut errors,
    );
    assert_eq!(errors.0.len(), 2);
    assert!(
        errors.0[1]
            .fix
            .contains("did you mean \"$request.header.X-Key\""),
        "{}",
        errors.0[1].fix
    );
    let mut errors = ConfigErrors::default();
    validate(
        "a.json",
        "P",
        &conf(1, 1, "$context.authorizer.claim.sub"),
        &mut errors,
    );
    assert!(
        errors.0[0]
            .fix
            .contains("\"$context.authorizer.claims.sub\""),
        "{}",
        errors.0[0].fix
    );
}
