//! Parsing single files: every mistake reported once, with the path of the field at fault.

use super::parse::parse;
use super::*;

#[test]
fn unknown_field_names_field_and_suggestion() {
    let mut errors = ConfigErrors::default();
    let r: Option<RouteConf> = parse("routes/r.json", r#"{"RouteKeyy":"x"}"#, &mut errors);
    assert!(r.is_none());
    let e = &errors.0[0];
    assert_eq!(e.field, "RouteKeyy");
    assert!(e.fix.contains("RouteKey"), "{e}");
}

#[test]
fn every_mistake_in_a_file_is_reported_with_its_path() {
    let mut errors = ConfigErrors::default();
    let text = r#"{"Name":"s","Stagevariables":{},"RouteSettings":{"GET /a":{"ThrottlingBurstLimt":1,"ThrottlingRateLimit":"x"}},"Routes":["routes/a",3]}"#;
    let s: Option<StageConf> = parse("stages/s.json", text, &mut errors);
    assert!(s.is_none());
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        // In key order: the parsed JSON does not keep the file's order.
        [
            r#"RouteSettings."GET /a".ThrottlingBurstLimt"#,
            r#"RouteSettings."GET /a".ThrottlingRateLimit"#,
            "Routes[1]",
            "Stagevariables",
        ],
        "{errors}"
    );
    assert!(errors.0[0].fix.contains("ThrottlingBurstLimit"), "{errors}");
    assert!(errors.0[1].problem.contains("invalid type"), "{errors}");
    assert!(errors.0[1].fix.contains("number"), "{errors}");
    assert!(errors.0[3].fix.contains("StageVariables"), "{errors}");
    assert!(!errors.to_string().contains("line"), "{errors}");
}

#[test]
fn a_required_field_with_a_wrong_type_is_reported_once() {
    let mut errors = ConfigErrors::default();
    let r: Option<RouteConf> = parse(
        "routes/r.json",
        r#"{"RouteKey":5,"Targett":"x"}"#,
        &mut errors,
    );
    assert!(r.is_none());
    assert_eq!(errors.0.len(), 2, "{errors}");
    assert_eq!(errors.0[0].field, "RouteKey");
    assert!(errors.0[0].fix.contains("string"), "{errors}");
    assert_eq!(errors.0[1].field, "Targett");
    // A field that is really missing is reported as such.
    let mut errors = ConfigErrors::default();
    let _: Option<RouteConf> = parse("routes/r.json", r#"{"Target":"x"}"#, &mut errors);
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].field, "RouteKey");
    assert!(errors.0[0].problem.contains("missing"), "{errors}");
}

#[test]
fn duplicate_fields_and_non_objects() {
    let mut errors = ConfigErrors::default();
    let _: Option<RouteConf> = parse(
        "routes/r.json",
        r#"{"RouteKey":"GET /a","RouteKey":"GET /b"}"#,
        &mut errors,
    );
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].field, "RouteKey");
    assert!(errors.0[0].problem.contains("twice"));
    let mut errors = ConfigErrors::default();
    let _: Option<RouteConf> = parse("routes/r.json", "[]", &mut errors);
    assert!(errors.0[0].problem.contains("JSON object"), "{errors}");
    let mut errors = ConfigErrors::default();
    let _: Option<RouteConf> = parse("routes/r.json", r#"{"RouteKey":"GET /a"} x"#, &mut errors);
    assert!(errors.0[0].problem.contains("invalid JSON"), "{errors}");
}

#[test]
fn payload_format_version_may_be_a_number() {
    for (text, want) in [
        (r#""1.0""#, "1.0"),
        ("1.0", "1.0"),
        ("1", "1.0"),
        ("2.0", "2.0"),
    ] {
        let mut errors = ConfigErrors::default();
        let i: IntegrationConf = parse(
            "integrations/i.json",
            &format!(
                r#"{{"IntegrationType":"HTTP_PROXY","IntegrationUri":"http://h","PayloadFormatVersion":{text}}}"#
            ),
            &mut errors,
        )
        .unwrap();
        assert_eq!(i.payload_format_version.as_deref(), Some(want));
    }
    let mut errors = ConfigErrors::default();
    let i: Option<IntegrationConf> = parse(
        "integrations/i.json",
        r#"{"IntegrationType":"HTTP_PROXY","IntegrationUri":"http://h","PayloadFormatVersion":true}"#,
        &mut errors,
    );
    assert!(i.is_none());
    assert_eq!(errors.0[0].field, "PayloadFormatVersion", "{errors}");
}

#[test]
fn syntax_error_names_file() {
    let mut errors = ConfigErrors::default();
    let r: Option<RouteConf> = parse("routes/r.json", "{not json", &mut errors);
    assert!(r.is_none());
    assert!(errors.0[0].to_string().starts_with("routes/r.json"));
}
