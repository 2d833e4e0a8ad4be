//! CloudFormation's intrinsic functions and pseudo parameters, evaluated once at load as
//! CloudFormation would at deploy time (user guide, "Intrinsic function reference"), so the
//! lowering reads plain values.
//!
//! What only AWS can know (an attribute of a resource, another stack's export) is either
//! given a stand-in that keeps its shape (`Fn::GetAtt [F, Arn]` is the ARN the function
//! would have in the pseudo account) or refused with the pointer and the missing name.

use crate::config::closest;
use crate::config::yaml::pointer_token;
use base64::Engine;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Why a value cannot be resolved: where, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub pointer: String,
    pub problem: String,
    pub fix: String,
}

fn fail<T>(
    pointer: &str,
    problem: impl Into<String>,
    fix: impl Into<String>,
) -> Result<T, Unresolved> {
    Err(Unresolved {
        pointer: pointer.to_string(),
        problem: problem.into(),
        fix: fix.into(),
    })
}

/// The pseudo parameters (user guide, "Pseudo parameters reference") and their local
/// stand-ins; each may be overridden with `--param AWS::Region=eu-west-1`.
pub const PSEUDO: [(&str, &str); 6] = [
    ("AWS::Region", "us-east-1"),
    ("AWS::AccountId", "123456789012"),
    ("AWS::StackName", "apigate"),
    ("AWS::StackId", "arn:aws:cloudformation:us-east-1:123456789012:stack/apigate/00000000-0000-0000-0000-000000000000"),
    ("AWS::Partition", "aws"),
    ("AWS::URLSuffix", "amazonaws.com"),
];

/// Everything intrinsics read: parameter values, conditions, mappings and resources.
pub struct Resolver<'a> {
    /// Parameter and pseudo parameter values: strings, or lists of strings.
    pub params: BTreeMap<String, Value>,
    conditions: &'a Map<String, Value>,
    mappings: &'a Map<String, Value>,
    resources: &'a Map<String, Value>,
    /// Conditions evaluated so far, and those being evaluated (a cycle is an error).
    known: RefCell<HashMap<String, bool>>,
    visiting: RefCell<HashSet<String>>,
}

/// An empty map for documents without a section.
static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

fn section<'a>(doc: &'a Value, name: &str) -> &'a Map<String, Value> {
    doc.get(name).and_then(Value::as_object).unwrap_or(&EMPTY)
}

impl<'a> Resolver<'a> {
    pub fn new(doc: &'a Value, params: BTreeMap<String, Value>) -> Self {
        Resolver {
            params,
            conditions: section(doc, "Conditions"),
            mappings: section(doc, "Mappings"),
            resources: section(doc, "Resources"),
            known: RefCell::default(),
            visiting: RefCell::default(),
        }
    }

    /// A pseudo parameter's value: the one given with `--param`, or the stand-in.
    pub fn pseudo(&self, name: &str) -> String {
        match self.params.get(name) {
            Some(Value::String(s)) => s.clone(),
            _ => PSEUDO
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default(),
        }
    }

    /// Whether the condition `name` holds; `pointer` is where it is used.
    pub fn condition(&self, name: &str, pointer: &str) -> Result<bool, Unresolved> {
        if let Some(b) = self.known.borrow().get(name) {
            return Ok(*b);
        }
        let Some(expr) = self.conditions.get(name) else {
            let hint = closest(name, self.conditions.keys().map(String::as_str))
                .map(|c| format!("did you mean {c}? "))
                .unwrap_or_default();
            return fail(
                pointer,
                format!("no condition {name:?} in Conditions"),
                format!("{hint}define it under Conditions"),
            );
        };
        if !self.visiting.borrow_mut().insert(name.to_string()) {
            return fail(
                pointer,
                format!("condition {name:?} depends on itself"),
                "break the cycle in Conditions",
            );
        }
        let at = format!("/Conditions/{}", pointer_token(name));
        let result = self.resolve(expr, &at).and_then(|v| match v {
            Some(Value::Bool(b)) => Ok(b),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
            _ => fail(
                &at,
                "a condition must be Fn::Equals, Fn::And, Fn::Or, Fn::Not or Condition",
                "write e.g. !Equals [!Ref Stage, prod]",
            ),
        });
        self.visiting.borrow_mut().remove(name);
        let b = result?;
        self.known.borrow_mut().insert(name.to_string(), b);
        Ok(b)
    }

    /// `value` with every intrinsic evaluated; `None` for `Ref: AWS::NoValue` (the key or
    /// list item holding it is removed, as CloudFormation does).
    pub fn resolve(&self, value: &Value, pointer: &str) -> Result<Option<Value>, Unresolved> {
        match value {
            Value::Object(map) => {
                if map.len() == 1 {
                    if let Some((key, arg)) = map.iter().next() {
                        if key == "Ref" || key == "Condition" || key.starts_with("Fn::") {
                            let at = format!("{pointer}/{}", pointer_token(key));
                            return self.function(key, arg, &at);
                        }
                    }
                }
                let mut out = Map::new();
                for (k, v) in map {
                    if let Some(v) = self.resolve(v, &format!("{pointer}/{}", pointer_token(k)))? {
                        out.insert(k.clone(), v);
                    }
                }
                Ok(Some(Value::Object(out)))
            }
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, v) in items.iter().enumerate() {
                    if let Some(v) = self.resolve(v, &format!("{pointer}/{i}"))? {
                        out.push(v);
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            other => Ok(Some(other.clone())),
        }
    }

    /// Resolves `value`, which must not be `AWS::NoValue`.
    fn some(&self, value: &Value, pointer: &str) -> Result<Value, Unresolved> {
        match self.resolve(value, pointer)? {
            Some(v) => Ok(v),
            None => fail(
                pointer,
                "AWS::NoValue where a value is needed",
                "give a value",
            ),
        }
    }

    fn string(&self, value: &Value, pointer: &str) -> Result<String, Unresolved> {
        match self.some(value, pointer)? {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => fail(pointer, "must be a string here", "give a string"),
        }
    }

    fn list(&self, value: &Value, pointer: &str) -> Result<Vec<Value>, Unresolved> {
        match self.some(value, pointer)? {
            Value::Array(a) => Ok(a),
            _ => fail(pointer, "must be a list here", "give a list"),
        }
    }

    fn args<'v>(
        &self,
        arg: &'v Value,
        n: usize,
        pointer: &str,
        form: &str,
    ) -> Result<&'v [Value], Unresolved> {
        match arg.as_array() {
            Some(a) if a.len() == n => Ok(a),
            _ => fail(
                pointer,
                format!("takes a list of {n}"),
                format!("write {form}"),
            ),
        }
    }

    fn function(&self, name: &str, arg: &Value, at: &str) -> Result<Option<Value>, Unresolved> {
        let v = match name {
            "Ref" => return self.reference(arg, at),
            "Condition" => {
                let n = self.string(arg, at)?;
                Value::Bool(self.condition(&n, at)?)
            }
            "Fn::GetAtt" => {
                let (res, attr) = match arg {
                    Value::String(s) => match s.split_once('.') {
                        Some((r, a)) => (r.to_string(), a.to_string()),
                        None => return fail(at, format!("{s:?} is not Resource.Attribute"), "write [Resource, Attribute]"),
                    },
                    _ => {
                        let a = self.args(arg, 2, at, "[Resource, Attribute]")?;
                        (self.string(&a[0], &format!("{at}/0"))?, self.string(&a[1], &format!("{at}/1"))?)
                    }
                };
                Value::String(self.attribute(&res, &attr, at)?)
            }
            "Fn::Sub" => {
                let (template, vars) = match arg {
                    Value::String(s) => (s.clone(), Map::new()),
                    Value::Array(a) if a.len() == 2 => {
                        let t = self.string(&a[0], &format!("{at}/0"))?;
                        let vars = match self.some(&a[1], &format!("{at}/1"))? {
                            Value::Object(m) => m,
                            _ => return fail(&format!("{at}/1"), "must map names to values", "write {Name: value}"),
                        };
                        (t, vars)
                    }
                    _ => return fail(at, "takes a string or [string, {Name: value}]", "write !Sub 'https://${Host}/'"),
                };
                Value::String(self.sub(&template, &vars, at)?)
            }
            "Fn::Join" => {
                let a = self.args(arg, 2, at, "[delimiter, [values]]")?;
                let delim = self.string(&a[0], &format!("{at}/0"))?;
                let items = self.list(&a[1], &format!("{at}/1"))?;
                let mut parts = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    parts.push(self.string(item, &format!("{at}/1/{i}"))?);
                }
                Value::String(parts.join(&delim))
            }
            "Fn::Select" => {
                let a = self.args(arg, 2, at, "[index, [values]]")?;
                let index = self.string(&a[0], &format!("{at}/0"))?;
                let items = self.list(&a[1], &format!("{at}/1"))?;
                match index.parse::<usize>().ok().and_then(|i| items.get(i)) {
                    Some(v) => v.clone(),
                    None => return fail(at, format!("index {index} is outside a list of {}", items.len()), "use an index from 0"),
                }
            }
            "Fn::Split" => {
                let a = self.args(arg, 2, at, "[delimiter, string]")?;
                let delim = self.string(&a[0], &format!("{at}/0"))?;
                let s = self.string(&a[1], &format!("{at}/1"))?;
                if delim.is_empty() {
                    return fail(at, "an empty delimiter", "give a delimiter such as \",\"");
                }
                Value::Array(s.split(delim.as_str()).map(|p| Value::String(p.to_string())).collect())
            }
            "Fn::If" => {
                let a = self.args(arg, 3, at, "[Condition, value if true, value if false]")?;
                let cond = self.string(&a[0], &format!("{at}/0"))?;
                return if self.condition(&cond, &format!("{at}/0"))? {
                    self.resolve(&a[1], &format!("{at}/1"))
                } else {
                    self.resolve(&a[2], &format!("{at}/2"))
                };
            }
            "Fn::Equals" => {
                let a = self.args(arg, 2, at, "[value, value]")?;
                let l = self.some(&a[0], &format!("{at}/0"))?;
                let r = self.some(&a[1], &format!("{at}/1"))?;
                Value::Bool(scalar_text(&l) == scalar_text(&r))
            }
            "Fn::Not" => {
                let a = self.args(arg, 1, at, "[condition]")?;
                Value::Bool(!self.truth(&a[0], &format!("{at}/0"))?)
            }
            "Fn::And" | "Fn::Or" => {
                let Some(a) = arg.as_array().filter(|a| (2..=10).contains(&a.len())) else {
                    return fail(at, "takes a list of 2 to 10 conditions", "write [cond, cond]");
                };
                let mut all = true;
                let mut any = false;
                for (i, c) in a.iter().enumerate() {
                    let b = self.truth(c, &format!("{at}/{i}"))?;
                    all &= b;
                    any |= b;
                }
                Value::Bool(if name == "Fn::And" { all } else { any })
            }
            "Fn::FindInMap" => {
                let a = match arg.as_array() {
                    Some(a) if a.len() == 3 || a.len() == 4 => a,
                    _ => return fail(at, "takes [MapName, TopLevelKey, SecondLevelKey]", "write [MapName, TopLevelKey, SecondLevelKey]"),
                };
                let mut keys = Vec::new();
                for (i, k) in a.iter().take(3).enumerate() {
                    keys.push(self.string(k, &format!("{at}/{i}"))?);
                }
                let found = self
                    .mappings
                    .get(&keys[0])
                    .and_then(|m| m.get(&keys[1]))
                    .and_then(|m| m.get(&keys[2]));
                match found {
                    Some(v) => self.some(v, &format!("/Mappings/{}", pointer_token(&keys[0])))?,
                    None => return fail(at, format!("no Mappings entry {}.{}.{}", keys[0], keys[1], keys[2]), "add it under Mappings"),
                }
            }
            "Fn::Base64" => {
                let s = self.string(arg, at)?;
                Value::String(base64::engine::general_purpose::STANDARD.encode(s))
            }
            "Fn::GetAZs" => {
                let region = match self.string(arg, at)? {
                    r if r.is_empty() => self.pseudo("AWS::Region"),
                    r => r,
                };
                Value::Array(["a", "b", "c"].iter().map(|z| Value::String(format!("{region}{z}"))).collect())
            }
            "Fn::Length" => Value::from(self.list(arg, at)?.len()),
            "Fn::ToJsonString" => Value::String(self.some(arg, at)?.to_string()),
            "Fn::ImportValue" => {
                let n = self.string(arg, at).unwrap_or_default();
                return fail(
                    at,
                    format!("Fn::ImportValue {n:?} reads another stack's export, which apigate cannot see"),
                    "replace it with a Parameter and pass --param NAME=VALUE",
                );
            }
            other => {
                return fail(
                    at,
                    format!("{other} is not supported"),
                    "use Ref, Fn::Sub, Fn::GetAtt, Fn::Join, Fn::Select, Fn::Split, Fn::If, Fn::FindInMap or a condition function",
                )
            }
        };
        Ok(Some(v))
    }

    /// A condition operand: `{"Condition": name}`, a condition function, or a name.
    fn truth(&self, v: &Value, at: &str) -> Result<bool, Unresolved> {
        match self.some(v, at)? {
            Value::Bool(b) => Ok(b),
            Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
            _ => fail(
                at,
                "must be a condition",
                "write {Condition: Name} or !Equals [a, b]",
            ),
        }
    }

    fn reference(&self, arg: &Value, at: &str) -> Result<Option<Value>, Unresolved> {
        let name = self.string(arg, at)?;
        if name == "AWS::NoValue" {
            return Ok(None);
        }
        if name == "AWS::NotificationARNs" {
            return Ok(Some(Value::Array(Vec::new())));
        }
        match self.params.get(&name) {
            Some(Value::Null) => {
                return fail(
                    at,
                    format!("parameter {name:?} has no value"),
                    format!("pass --param {name}=VALUE or give it a Default"),
                )
            }
            Some(v) => return Ok(Some(v.clone())),
            None => {}
        }
        if PSEUDO.iter().any(|(n, _)| *n == name) {
            return Ok(Some(Value::String(self.pseudo(&name))));
        }
        if self.resources.contains_key(&name) {
            // A resource's Ref is its physical id: its logical id stands in, which is also
            // the id the lowered resource gets (`integrations/<LogicalId>`).
            return Ok(Some(Value::String(name)));
        }
        let names = self
            .params
            .keys()
            .map(String::as_str)
            .chain(self.resources.keys().map(String::as_str));
        let hint = closest(&name, names)
            .map(|c| format!("did you mean {c}? "))
            .unwrap_or_default();
        fail(
            at,
            format!("Ref to {name:?}: no such parameter or resource"),
            format!("{hint}declare it under Parameters or Resources, or pass --param {name}=VALUE"),
        )
    }

    /// A stand-in for a resource attribute, shaped like the real one.
    fn attribute(&self, res: &str, attr: &str, at: &str) -> Result<String, Unresolved> {
        if let Some(Value::String(given)) = self.params.get(&format!("{res}.{attr}")) {
            return Ok(given.clone());
        }
        let Some(r) = self.resources.get(res) else {
            let hint = closest(res, self.resources.keys().map(String::as_str))
                .map(|c| format!("did you mean {c}? "))
                .unwrap_or_default();
            return fail(
                at,
                format!("Fn::GetAtt on {res:?}: no such resource"),
                format!(
                    "{hint}name a resource of this template, or pass --param {res}.{attr}=VALUE"
                ),
            );
        };
        let region = self.pseudo("AWS::Region");
        let account = self.pseudo("AWS::AccountId");
        let kind = r.get("Type").and_then(Value::as_str).unwrap_or("");
        Ok(match (kind, attr) {
            ("AWS::Lambda::Function" | "AWS::Serverless::Function", "Arn") => {
                format!("arn:aws:lambda:{region}:{account}:function:{res}")
            }
            ("AWS::ApiGatewayV2::Api" | "AWS::Serverless::HttpApi", "ApiEndpoint") => {
                format!("https://{res}.execute-api.{region}.amazonaws.com")
            }
            (_, "Arn") => format!("arn:aws:{}:{region}:{account}:{res}", service(kind)),
            _ => format!("{res}.{attr}"),
        })
    }

    /// `Fn::Sub`: `${Name}` is a variable, a parameter or a resource, `${Res.Attr}` an
    /// attribute, `${!Literal}` the text `${Literal}`.
    fn sub(
        &self,
        template: &str,
        vars: &Map<String, Value>,
        at: &str,
    ) -> Result<String, Unresolved> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return fail(at, "an unclosed ${ in Fn::Sub", "close it with }");
            };
            let name = after[..end].trim();
            rest = &after[end + 1..];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
                continue;
            }
            let value = if let Some(v) = vars.get(name) {
                match v {
                    Value::String(s) => s.clone(),
                    other => scalar_text(other),
                }
            } else if let Some((res, attr)) = name
                .split_once('.')
                .filter(|_| !self.params.contains_key(name))
            {
                self.attribute(res, attr, at)?
            } else {
                match self.reference(&Value::String(name.to_string()), at)? {
                    Some(Value::String(s)) => s,
                    Some(Value::Array(_)) => {
                        return fail(
                            at,
                            format!("${{{name}}} is a list"),
                            "join it first with Fn::Join",
                        )
                    }
                    Some(other) => scalar_text(&other),
                    None => String::new(),
                }
            };
            out.push_str(&value);
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn service(kind: &str) -> String {
    kind.split("::").nth(1).unwrap_or("resource").to_lowercase()
}

/// A scalar as CloudFormation compares and joins it: as text.
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[path = "intrinsics_tests.rs"]
mod tests;
