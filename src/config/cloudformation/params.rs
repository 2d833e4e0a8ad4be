//! Template parameters: `--param NAME=VALUE`, `--params FILE` (the AWS CLI's formats), and
//! each parameter's `Default`, checked against its constraints as CloudFormation would.

use super::intrinsics::PSEUDO;
use crate::config::closest;
use crate::config::yaml::{self, pointer_token};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Parameter values given on the command line, by name.
pub type Params = BTreeMap<String, String>;

/// Reads `NAME=VALUE` (`--param`).
pub fn parse_param(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{arg:?} is not NAME=VALUE")),
    }
}

/// Reads a parameters file in either of the AWS CLI's forms:
/// `[{"ParameterKey": "K", "ParameterValue": "V"}, ...]` (`create-stack --parameters`) or
/// `{"Parameters": {"K": "V"}}` (`deploy --parameter-overrides`), JSON or YAML.
pub fn read_params_file(path: &Path) -> Result<Params, String> {
    let text =
        crate::config::read::read_text(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc = yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    params_from_value(&doc.value).map_err(|e| format!("{}: {e}", path.display()))
}

fn params_from_value(v: &Value) -> Result<Params, String> {
    let mut out = Params::new();
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let key = item.get("ParameterKey").and_then(Value::as_str);
                let value = item.get("ParameterValue").and_then(text);
                match (key, value) {
                    (Some(k), Some(v)) => {
                        out.insert(k.to_string(), v);
                    }
                    // `UsePreviousValue` has no previous value here.
                    _ => return Err(format!("/{i}: needs ParameterKey and ParameterValue")),
                }
            }
        }
        Value::Object(o) => {
            let Some(Value::Object(params)) = o.get("Parameters") else {
                return Err("expected {\"Parameters\": {\"Name\": \"value\"}} or [{\"ParameterKey\": .., \"ParameterValue\": ..}]".into());
            };
            for (k, v) in params {
                let Some(v) = text(v) else {
                    return Err(format!(
                        "/Parameters/{}: must be a string",
                        pointer_token(k)
                    ));
                };
                out.insert(k.clone(), v);
            }
        }
        _ => return Err("expected a list or an object".into()),
    }
    Ok(out)
}

/// One problem with a parameter: pointer, problem, fix.
pub type Problem = (String, String, String);

/// Each declared parameter's value (a string, or a list for `CommaDelimitedList` and
/// `List<..>` types; null when it has none), and the given pseudo parameter overrides.
pub fn values(doc: &Value, given: &Params, problems: &mut Vec<Problem>) -> BTreeMap<String, Value> {
    let declared = doc.get("Parameters").and_then(Value::as_object);
    let mut out = BTreeMap::new();
    for (name, value) in given {
        let known =
            declared.is_some_and(|d| d.contains_key(name)) || PSEUDO.iter().any(|(n, _)| n == name);
        if !known {
            // Not an error: a value for a name the template reads but does not declare
            // (`Ref: X` with no parameter or resource X, `Fn::GetAtt X.Arn` with no X) stands
            // in for it, as SAM's tests and `sam local --parameter-overrides` supply them. A
            // misspelt name is pointed out.
            let names = declared
                .into_iter()
                .flat_map(|d| d.keys().map(String::as_str));
            if let Some(c) = closest(name, names) {
                problems.push((
                    "/Parameters".into(),
                    format!("--param {name}: the template declares no parameter {name:?}"),
                    format!("did you mean {c}?"),
                ));
            }
            out.insert(name.clone(), Value::String(value.clone()));
        } else if name.starts_with("AWS::") {
            out.insert(name.clone(), Value::String(value.clone()));
        }
    }
    for (name, decl) in declared.into_iter().flatten() {
        let at = format!("/Parameters/{}", pointer_token(name));
        let default = decl.get("Default").map(super::intrinsics::scalar_text);
        // A parameter without a value is an error only where it is read (`Ref`), so a
        // template whose unused parts need values still loads.
        let Some(value) = given.get(name).cloned().or(default) else {
            out.insert(name.clone(), Value::Null);
            continue;
        };
        if let Some(problem) = constraint(decl, &value) {
            problems.push((
                at,
                format!("parameter {name:?}: {problem}"),
                "pass a value that meets the parameter's constraints".into(),
            ));
            continue;
        }
        let kind = decl.get("Type").and_then(Value::as_str).unwrap_or("String");
        // *Choice:* a `Number` parameter's Ref is a JSON number (CloudFormation hands out a
        // string), so it fits numeric fields of an OpenAPI body (`timeoutInMillis`) too;
        // Fn::Sub, Fn::Join and Fn::Equals read it as text all the same.
        let number = (kind == "Number")
            .then(|| value.parse::<serde_json::Number>().ok())
            .flatten();
        let v = if let Some(n) = number {
            Value::Number(n)
        } else if kind == "CommaDelimitedList" || kind.starts_with("List<") {
            Value::Array(
                value
                    .split(',')
                    .map(|s| Value::String(s.trim().to_string()))
                    .collect(),
            )
        } else {
            Value::String(value)
        };
        out.insert(name.clone(), v);
    }
    out
}

/// `AllowedValues`, `MinLength`/`MaxLength` and `MinValue`/`MaxValue`.
fn constraint(decl: &Value, value: &str) -> Option<String> {
    if let Some(allowed) = decl.get("AllowedValues").and_then(Value::as_array) {
        let allowed: Vec<String> = allowed.iter().map(super::intrinsics::scalar_text).collect();
        if !allowed.iter().any(|a| a == value) {
            return Some(format!("{value:?} is not one of {allowed:?}"));
        }
    }
    let len = value.chars().count() as f64;
    let num = |k: &str| {
        decl.get(k)
            .and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()))
    };
    if num("MinLength").is_some_and(|m| len < m) || num("MaxLength").is_some_and(|m| len > m) {
        return Some(format!(
            "{value:?} has a length outside MinLength..MaxLength"
        ));
    }
    if decl.get("Type").and_then(Value::as_str) == Some("Number") {
        let Ok(n) = value.parse::<f64>() else {
            return Some(format!("{value:?} is not a number"));
        };
        if num("MinValue").is_some_and(|m| n < m) || num("MaxValue").is_some_and(|m| n > m) {
            return Some(format!("{value} is outside MinValue..MaxValue"));
        }
    }
    None
}
