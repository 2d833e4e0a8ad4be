//! Property tests over what operators write (mapping keys, value expressions, `$context`
//! names) and what clients send (the header, query and claim values those expressions read):
//! nothing panics, every bad entry is reported, and no value can smuggle a line into a head.

use super::context::{lex, Scope};
use super::*;
use crate::config::ConfigErrors;
use pingora_http::{RequestHeader, ResponseHeader};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Text built mostly from the characters expressions are made of, so the parser's corners
/// (`$`, `${`, `}`, `.`, names) are reached far more often than by uniform strings.
fn expression_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("$".to_string()),
        Just("${".to_string()),
        Just("}".to_string()),
        Just(".".to_string()),
        Just("request.header.".to_string()),
        Just("request.querystring.".to_string()),
        Just("request.path".to_string()),
        Just("request.body".to_string()),
        Just("response.header.".to_string()),
        Just("context.".to_string()),
        Just("context.authorizer.claims.".to_string()),
        Just("context.requestId".to_string()),
        Just("stageVariables.".to_string()),
        "[a-zA-Z0-9_:-]{0,6}",
        "[\\x00-\\x7f]{0,3}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

/// A mapping key: an action, a target, a name (often valid, sometimes reserved or bad).
fn mapping_key() -> impl Strategy<Value = String> {
    let action = prop_oneof![
        Just("append"),
        Just("overwrite"),
        Just("remove"),
        Just("set"),
        Just(""),
    ];
    let target = prop_oneof![
        Just("header."),
        Just("querystring."),
        Just("path"),
        Just("statuscode"),
        Just("body."),
        Just(""),
    ];
    let name = prop_oneof![
        Just("X-User".to_string()),
        Just("X-Forwarded-Host".to_string()),
        Just("x-forwarded-for".to_string()),
        Just("Content-Length".to_string()),
        Just("x-amzn-trace".to_string()),
        Just("Apigw-Requestid".to_string()),
        "[ -~]{0,8}",
        any::<String>(),
    ];
    (action, prop::bool::ANY, target, name)
        .prop_map(|(a, colon, t, n)| format!("{a}{}{t}{n}", if colon { ":" } else { "" }))
}

/// Values a client or a token controls: any string, CR/LF and non-ASCII included.
fn client_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,12}",
        Just("a\r\nInjected: yes".to_string()),
        Just("\u{0}".to_string()),
    ]
}

fn request_with(header: &str, query: &str) -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/a/b%2Fc", None).unwrap();
    // Only what the HTTP layer itself would accept reaches a mapping.
    if let Ok(v) = http::HeaderValue::from_str(header) {
        req.append_header("x-in", v).unwrap();
    }
    let q: String = query
        .bytes()
        .filter(|b| b.is_ascii_graphic() && *b != b'#')
        .map(char::from)
        .collect();
    if let Ok(uri) = format!("/a/b%2Fc?{q}").parse::<http::Uri>() {
        req.set_uri(uri);
    }
    req
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any value text parses or is refused with a message; a parsed one evaluates, for a
    /// path or a header, without panicking, whatever the request and claims hold.
    #[test]
    fn value_expressions_never_panic(
        text in expression_text(),
        header in client_value(),
        query in client_value(),
        claim in client_value(),
    ) {
        let stage_vars: BTreeMap<String, String> =
            [("env".to_string(), "prod".to_string())].into();
        for side in [Side::Request, Side::Response] {
            match Template::parse(&text, side, &stage_vars) {
                Ok(t) => {
                    let req = request_with(&header, &query);
                    let mut claims = Claims::new();
                    claims.insert("sub".into(), serde_json::Value::String(claim.clone()));
                    claims.insert("n".into(), serde_json::json!([1, {"a": claim.clone()}]));
                    let resp = ResponseHeader::build(200, None).unwrap();
                    let params = [("proxy".into(), "b%2Fc".into())];
                    let vars = Vars {
                        req: &req,
                        path: "/a/b%2Fc",
                        full_path: "/a/b%2Fc",
                        params: &params,
                        request_id: "rid",
                        stage: "$default",
                        route_key: "GET /a/{proxy+}",
                        source_ip: "192.0.2.1",
                        claims: Some(&claims),
                        authorizer: None,
                        resp: Some(&resp),
                        client_cert: None,
                    };
                    let _ = t.eval(&vars, true);
                    let _ = t.eval(&vars, false);
                }
                Err(e) => prop_assert!(!e.is_empty()),
            }
            // The load-time reference scan reads the same text.
            let _ = references(&text);
        }
    }

    /// Every entry of a mapping becomes exactly one operation or exactly one error naming
    /// the file and the entry's field.
    #[test]
    fn every_mapping_entry_is_compiled_or_reported(
        entries in prop::collection::btree_map(mapping_key(), expression_text(), 0..8),
    ) {
        let mut errors = ConfigErrors::default();
        let m = RequestMapping::compile("f.json", "RequestParameters", &entries, &BTreeMap::new(), &mut errors);
        prop_assert_eq!(m.ops.len() + errors.0.len(), entries.len(), "{}", errors);
        for e in &errors.0 {
            prop_assert_eq!(&e.file, "f.json");
            prop_assert!(e.field.starts_with("RequestParameters."), "{}", e);
            prop_assert!(!e.problem.is_empty() && !e.fix.is_empty(), "{}", e);
        }
        let by_status: BTreeMap<String, BTreeMap<String, String>> =
            [("200".to_string(), entries.clone())].into();
        let mut errors = ConfigErrors::default();
        let r = ResponseMapping::compile("f.json", "ResponseParameters", &by_status, &BTreeMap::new(), &mut errors);
        prop_assert_eq!(r.for_status(200).len() + errors.0.len(), entries.len(), "{}", errors);
    }

    /// A reserved name is reserved in any letter case, and mapping one is always reported.
    #[test]
    fn reserved_headers_ignore_case(name in "[a-zA-Z-]{1,24}") {
        let lower = is_reserved_header(&name.to_ascii_lowercase());
        prop_assert_eq!(is_reserved_header(&name), lower);
        prop_assert_eq!(is_reserved_header(&name.to_ascii_uppercase()), lower);
        if lower {
            let map: BTreeMap<String, String> = [(format!("overwrite:header.{name}"), "v".to_string())].into();
            let mut errors = ConfigErrors::default();
            let m = RequestMapping::compile("f", "P", &map, &BTreeMap::new(), &mut errors);
            prop_assert!(m.ops.is_empty());
            prop_assert!(errors.0[0].problem.contains("reserved"), "{}", errors);
        }
    }

    /// Whatever a mapped value holds (a client's header, a claim), a header either carries
    /// it exactly or is left out: never a CR, LF or NUL that could start a line of its own.
    #[test]
    fn mapped_values_cannot_inject_header_lines(
        value in client_value(),
        action in prop_oneof![Just(Action::Append), Just(Action::Overwrite), Just(Action::Remove)],
    ) {
        let header = Header {
            spelled: bytes::Bytes::from_static(b"X-User"),
            name: http::HeaderName::from_static("x-user"),
        };
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("X-User", "before").unwrap();
        apply_header(&mut req, action, &header, &value).unwrap();
        for v in req.headers.get_all("x-user") {
            prop_assert!(!v.as_bytes().iter().any(|b| matches!(b, b'\r' | b'\n' | 0)));
        }
        let values: Vec<&[u8]> = req.headers.get_all("x-user").iter().map(|v| v.as_bytes()).collect();
        let fits = http::HeaderValue::from_str(&value).is_ok() && !value.is_empty();
        match action {
            Action::Remove => prop_assert!(values.is_empty()),
            Action::Overwrite if fits => prop_assert_eq!(values, vec![value.as_bytes()]),
            Action::Overwrite => prop_assert!(values.is_empty()),
            Action::Append if fits => prop_assert_eq!(values, vec![&b"before"[..], value.as_bytes()]),
            Action::Append => prop_assert_eq!(values, vec![&b"before"[..]]),
        }
    }

    /// `$context` names: the lexer takes a prefix of its input, ends on a name character,
    /// and every scope parses what it takes without panicking.
    #[test]
    fn context_names_lex_to_a_prefix(text in expression_text()) {
        let name = lex(&text);
        prop_assert!(text.starts_with(name));
        prop_assert!(!name.ends_with('.'));
        prop_assert_eq!(lex(name), name);
        for scope in [Scope::MAPPING, Scope::ACCESS_LOG] {
            let _ = scope.parse(name);
        }
    }
}
