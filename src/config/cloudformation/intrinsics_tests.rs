use super::*;
use serde_json::json;

fn doc() -> Value {
    json!({
        "Parameters": {"Stage": {"Type": "String"}},
        "Conditions": {
            "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
            "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
            "Loop": {"Fn::Not": [{"Condition": "Loop"}]}
        },
        "Mappings": {"Hosts": {"prod": {"Url": "http://10.0.0.1"}}},
        "Resources": {"Fn": {"Type": "AWS::Serverless::Function"}}
    })
}

fn resolver<'a>(doc: &'a Value, stage: &str) -> Resolver<'a> {
    let mut p = BTreeMap::new();
    p.insert("Stage".to_string(), json!(stage));
    p.insert("List".to_string(), json!(["a", "b"]));
    Resolver::new(doc, p)
}

#[test]
fn functions_evaluate_as_cloudformation_does() {
    let d = doc();
    let r = resolver(&d, "prod");
    let v = json!({
        "Sub": {"Fn::Sub": "${AWS::Region}/${Stage}/${Fn.Arn}/${!Literal}"},
        "SubVars": {"Fn::Sub": ["${X}-${Stage}", {"X": {"Ref": "Stage"}}]},
        "Join": {"Fn::Join": ["/", ["integrations", {"Ref": "Fn"}]]},
        "Select": {"Fn::Select": ["1", {"Fn::Split": [",", "x,y,z"]}]},
        "If": {"Fn::If": ["IsProd", "p", "np"]},
        "Gone": {"Fn::If": ["NotProd", "x", {"Ref": "AWS::NoValue"}]},
        "Map": {"Fn::FindInMap": ["Hosts", {"Ref": "Stage"}, "Url"]},
        "List": {"Fn::Join": [",", {"Ref": "List"}]},
        "B64": {"Fn::Base64": "hi"},
        "Items": ["keep", {"Ref": "AWS::NoValue"}]
    });
    let out = r.resolve(&v, "").unwrap().unwrap();
    assert_eq!(
        out,
        json!({
            "Sub": "us-east-1/prod/arn:aws:lambda:us-east-1:123456789012:function:Fn/${Literal}",
            "SubVars": "prod-prod",
            "Join": "integrations/Fn",
            "Select": "y",
            "If": "p",
            "Map": "http://10.0.0.1",
            "List": "a,b",
            "B64": "aGk=",
            "Items": ["keep"]
        })
    );
    let r = resolver(&d, "dev");
    assert_eq!(
        r.resolve(&json!({"Fn::If": ["IsProd", 1, 2]}), "").unwrap(),
        Some(json!(2))
    );
}

#[test]
fn unresolvable_values_name_the_pointer_and_the_name() {
    let d = doc();
    let r = resolver(&d, "prod");
    let e = r
        .resolve(&json!({"A": {"B": {"Ref": "Stag"}}}), "/X")
        .unwrap_err();
    assert_eq!(e.pointer, "/X/A/B/Ref");
    assert!(e.problem.contains("\"Stag\""), "{e:?}");
    assert!(e.fix.contains("did you mean Stage?"), "{e:?}");
    let e = r
        .resolve(&json!({"Fn::ImportValue": "Shared"}), "")
        .unwrap_err();
    assert!(e.problem.contains("Shared"));
    let e = r
        .resolve(&json!({"Fn::If": ["Loop", 1, 2]}), "")
        .unwrap_err();
    assert!(e.problem.contains("depends on itself"), "{e:?}");
    let e = r
        .resolve(&json!({"Fn::GetAtt": ["Nope", "Arn"]}), "")
        .unwrap_err();
    assert!(e.problem.contains("Nope"));
    let e = r
        .resolve(&json!({"Fn::Select": [5, ["a"]]}), "")
        .unwrap_err();
    assert!(e.problem.contains("outside"));
}

#[test]
fn a_parameter_without_value_fails_where_it_is_read() {
    let d = doc();
    let mut p = BTreeMap::new();
    p.insert("Stage".to_string(), Value::Null);
    let r = Resolver::new(&d, p);
    let e = r
        .resolve(&json!({"Ref": "Stage"}), "/Resources/X")
        .unwrap_err();
    assert!(e.fix.contains("--param Stage=VALUE"), "{e:?}");
}
