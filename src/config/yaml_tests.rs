use super::*;
use serde_json::json;

#[test]
fn short_form_tags_become_long_form() {
    let y = from_str(
        "Resources:\n  Api:\n    Type: AWS::ApiGatewayV2::Api\n    Properties:\n      Name: !Sub '${AWS::StackName}-api'\n      Target: !GetAtt Fn.Arn\n      List: !Split [',', !Ref Csv]\n      Cond: !If [IsProd, !Join ['', [a, b]], !Ref AWS::NoValue]\n      Sel: !Select\n        - 0\n        - !GetAZs ''\n",
    )
    .unwrap();
    let p = &y.value["Resources"]["Api"]["Properties"];
    assert_eq!(p["Name"], json!({"Fn::Sub": "${AWS::StackName}-api"}));
    assert_eq!(p["Target"], json!({"Fn::GetAtt": ["Fn", "Arn"]}));
    assert_eq!(p["List"], json!({"Fn::Split": [",", {"Ref": "Csv"}]}));
    assert_eq!(
        p["Cond"],
        json!({"Fn::If": ["IsProd", {"Fn::Join": ["", ["a", "b"]]}, {"Ref": "AWS::NoValue"}]})
    );
    assert_eq!(p["Sel"], json!({"Fn::Select": [0, {"Fn::GetAZs": ""}]}));
}

#[test]
fn lines_are_kept_by_pointer() {
    let y = from_str("a:\n  b: 1\n  c:\n    - x\n    - y: 2\n").unwrap();
    assert_eq!(y.line("/a/b"), Some(2));
    assert_eq!(y.line("/a/c"), Some(3));
    assert_eq!(y.line("/a/c/1/y"), Some(5));
    // Unknown below a known node: the nearest ancestor's line.
    assert_eq!(y.line("/a/c/1/y/zz"), Some(5));
}

#[test]
fn core_schema_scalars() {
    let y = from_str(
        "a: 1\nb: 1.0\nc: '1'\nd: true\ne: ~\nf: 2010-09-09\ng: 0x1F\nh: !!str 5\ni: .5\nj: 1e3\nk: 12abc\n200: x\n",
    )
    .unwrap();
    assert_eq!(
        y.value,
        json!({"a": 1, "b": 1.0, "c": "1", "d": true, "e": null, "f": "2010-09-09", "g": 31,
               "h": "5", "i": 0.5, "j": 1000.0, "k": "12abc", "200": "x"})
    );
}

#[test]
fn refuses_what_cloudformation_refuses() {
    let e = from_str("a: 1\na: 2\n").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("duplicate"), "{e}");
    let e = from_str("a: !Reff x\n").unwrap_err();
    assert!(e.message.contains("did you mean !Ref"), "{e}");
    let e = from_str("a: !GetAtt NoDot\n").unwrap_err();
    assert!(e.message.contains("Resource.Attribute"), "{e}");
    assert!(from_str("a: [1, 2\n").is_err());
    assert!(from_str("a: 1\n---\nb: 2\n").is_err());
}

#[test]
fn aliases_expand_within_a_budget() {
    let y = from_str("a: &x {k: v}\nb: *x\n").unwrap();
    assert_eq!(y.value["b"], json!({"k": "v"}));
    let mut doc = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let p = i - 1;
        doc.push_str(&format!(
            "l{i}: &l{i} [*l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}]\n"
        ));
    }
    assert!(from_str(&doc).unwrap_err().message.contains("too many"));
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let doc = "[".repeat(10_000);
    assert!(from_str(&doc).is_err());
}
