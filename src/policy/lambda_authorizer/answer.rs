//! What a Lambda authorizer answered, read as API Gateway reads it ("Working with AWS Lambda
//! authorizers for HTTP APIs"): a simple response (`isAuthorized`, 2.0 with
//! `EnableSimpleResponses`) or an IAM policy (`principalId`, `policyDocument`, `context`).
//! A policy is kept whole so that a cached answer is judged against each route's ARN.

use serde_json::{Map, Value};

/// An answer, as cached: judged per request by [`Verdict::allows`].
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Simple(bool),
    /// `execute-api:Invoke` statements: (allow, resource patterns).
    Policy(Vec<(bool, Vec<String>)>),
}

/// The answer and the context the function returned for `$context.authorizer.*`.
#[derive(Debug, Clone)]
pub struct Answer {
    pub verdict: Verdict,
    pub context: Map<String, Value>,
}

impl Verdict {
    /// IAM's rule: an explicit Deny wins, then an Allow is needed.
    pub fn allows(&self, route_arn: &str) -> bool {
        match self {
            Verdict::Simple(ok) => *ok,
            Verdict::Policy(statements) => {
                let hit = |allow: bool| {
                    statements.iter().any(|(a, res)| {
                        *a == allow
                            && res
                                .iter()
                                .any(|p| wildcard(p.as_bytes(), route_arn.as_bytes()))
                    })
                };
                !hit(false) && hit(true)
            }
        }
    }
}

/// Reads the function's payload; `None` when it is not an answer API Gateway accepts (500).
pub fn read(payload: &[u8], simple: bool) -> Option<Answer> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let o = v.as_object()?;
    let context = match o.get("context") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(c)) => c.clone(),
        Some(_) => return None,
    };
    if simple {
        let ok = o.get("isAuthorized")?.as_bool()?;
        return Some(Answer {
            verdict: Verdict::Simple(ok),
            context,
        });
    }
    let doc = o.get("policyDocument")?.as_object()?;
    let statements = match doc.get("Statement")? {
        Value::Array(a) => a.iter().map(statement).collect::<Option<Vec<_>>>()?,
        one => vec![statement(one)?],
    };
    Some(Answer {
        verdict: Verdict::Policy(statements.into_iter().flatten().collect()),
        context,
    })
}

/// One statement: `Some(None)` when its Action is not `execute-api:Invoke` (it grants
/// nothing here), `None` when it is malformed.
fn statement(s: &Value) -> Option<Option<(bool, Vec<String>)>> {
    let s = s.as_object()?;
    let allow = match s.get("Effect")?.as_str()? {
        "Allow" => true,
        "Deny" => false,
        _ => return None,
    };
    let actions = strings(s.get("Action")?)?;
    let invokes = actions
        .iter()
        .any(|a| wildcard(a.as_bytes(), b"execute-api:Invoke"));
    let resources = strings(s.get("Resource")?)?;
    Some(invokes.then_some((allow, resources)))
}

fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => a.iter().map(|s| s.as_str().map(str::to_string)).collect(),
        _ => None,
    }
}

/// IAM's wildcards: `*` matches any run of characters, `?` any one (iterative, no
/// backtracking blow-up: O(pattern x text)).
pub fn wildcard(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let arn = "arn:aws:execute-api:us-east-1:123456789012:apigatelcl/$default/GET/pets/1";
        assert!(wildcard(b"*", arn.as_bytes()));
        assert!(wildcard(
            b"arn:aws:execute-api:*:*:*/*/GET/pets/*",
            arn.as_bytes()
        ));
        assert!(!wildcard(
            b"arn:aws:execute-api:*:*:*/*/POST/*",
            arn.as_bytes()
        ));
        assert!(wildcard(b"a?c", b"abc"));
        assert!(!wildcard(b"a?c", b"ac"));
    }

    #[test]
    fn deny_wins() {
        let body = br#"{"principalId":"u","policyDocument":{"Version":"2012-10-17","Statement":[
            {"Action":"execute-api:Invoke","Effect":"Allow","Resource":"*"},
            {"Action":"execute-api:Invoke","Effect":"Deny","Resource":"arn:*/DELETE/*"}]},
            "context":{"user":"u"}}"#;
        let a = read(body, false).unwrap();
        assert!(a.verdict.allows("arn:x/$default/GET/pets"));
        assert!(!a.verdict.allows("arn:x/$default/DELETE/pets"));
        assert_eq!(a.context["user"], "u");
    }

    #[test]
    fn malformed_answers_are_none() {
        assert!(read(b"{}", true).is_none());
        assert!(read(br#"{"isAuthorized":"yes"}"#, true).is_none());
        assert!(read(b"not json", false).is_none());
        assert!(read(
            br#"{"policyDocument":{"Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}}"#,
            false
        )
        .is_none());
    }
}
