use super::answer;
use super::function_ref;
use serde_json::json;

#[test]
fn integration_uris_name_their_function() {
    assert_eq!(function_ref("functions/hello"), Some("hello"));
    assert_eq!(
        function_ref("arn:aws:lambda:us-east-1:123456789012:function:Hello"),
        Some("Hello")
    );
    assert_eq!(
        function_ref("arn:aws:lambda:us-east-1:123456789012:function:Hello:live"),
        Some("Hello")
    );
    assert_eq!(
        function_ref("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:Hello/invocations"),
        Some("Hello")
    );
    for bad in [
        "functions/",
        "http://x",
        "arn:aws:s3:::bucket",
        "arn:aws:lambda:us-east-1:1:layer:x",
    ] {
        assert_eq!(function_ref(bad), None, "{bad}");
    }
}

#[test]
fn v2_answers_without_status_code_are_200_json() {
    let a = answer::v2(br#"{"a":1}"#).unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(&a.body[..], br#"{"a":1}"#);
    let a = answer::v2(b"42").unwrap();
    assert_eq!((a.status, &a.body[..]), (200, &b"42"[..]));
    assert!(answer::v2(b"not json").is_none());
    assert!(answer::v2(b"").is_none());
}

#[test]
fn v2_answers_read_every_field() {
    let payload = json!({"statusCode": 302, "headers": {"location": "/x", "x-n": 5},
        "cookies": ["a=1"], "body": "aGk=", "isBase64Encoded": true});
    let a = answer::v2(payload.to_string().as_bytes()).unwrap();
    assert_eq!(a.status, 302);
    assert_eq!(&a.body[..], b"hi");
    assert!(a.headers.contains(&("x-n".into(), "5".into())));
    assert!(a.headers.contains(&("set-cookie".into(), "a=1".into())));
    for bad in [
        json!({"statusCode": 99}),
        json!({"statusCode": 200, "headers": "x"}),
        json!({"statusCode": 200, "body": "%%%", "isBase64Encoded": true}),
        json!({"statusCode": 200, "cookies": [{}]}),
    ] {
        assert!(answer::v2(bad.to_string().as_bytes()).is_none(), "{bad}");
    }
}

#[test]
fn v1_answers_need_a_status_code_and_keep_multi_value_headers() {
    assert!(answer::v1(br#"{"body":"x"}"#).is_none());
    let payload = json!({"statusCode": 200, "headers": {"x": "1", "y": "2"},
        "multiValueHeaders": {"x": ["a", "b"]}, "body": "ok"});
    let a = answer::v1(payload.to_string().as_bytes()).unwrap();
    let xs: Vec<_> = a
        .headers
        .iter()
        .filter(|(k, _)| k == "x")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(xs, ["a", "b"]);
    assert!(a.headers.contains(&("y".into(), "2".into())));
}

/// The typed fast path of `answer::v2` reads what the general path reads, and leaves
/// everything unusual to it.
#[test]
fn v2_fast_path_agrees_with_the_general_path() {
    let cases = [
        json!({"statusCode": 201, "headers": {"b": "2", "a": "1"}, "cookies": ["c=1", "d=2"], "body": "x\ny"}),
        json!({"statusCode": 200, "body": "aGk=", "isBase64Encoded": true}),
        json!({"statusCode": 200, "body": "%%", "isBase64Encoded": true}),
        json!({"statusCode": 200, "body": null, "headers": null, "cookies": null}),
        json!({"statusCode": 200, "isBase64Encoded": "true", "body": "aGk="}),
        json!({"statusCode": 700}),
        json!({"statusCode": "204"}),
        json!({"statusCode": 200, "headers": {"n": 5, "b": true}, "body": {"k": [1]}}),
        json!({"statusCode": 200, "headers": {"x": null}}),
        json!([200, null, null, null, null]),
    ];
    for c in cases {
        let payload = c.to_string();
        let got = answer::v2(payload.as_bytes());
        // The general path alone: the same payload with a field the fast path rejects
        // (a repeated statusCode, last one wins in a JSON map) is read only by it.
        let general = match &c {
            serde_json::Value::Object(o) if o.contains_key("statusCode") => {
                let text = payload.replacen('{', "{\"statusCode\":0,", 1);
                answer::v2(text.as_bytes())
            }
            // Not an object with statusCode: the payload itself, 200 JSON.
            _ => Some(answer::Answer {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: bytes::Bytes::from(payload.clone()),
            }),
        };
        assert_eq!(got, general, "{payload}");
    }
    let spaced = answer::v2(b"  {\"statusCode\": 204}").unwrap();
    assert_eq!(spaced.status, 204);
}
