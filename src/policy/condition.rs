//! Conditions on the request (APIM's `choose`), compiled once: comparisons of a header,
//! query parameter, the client address or the method with literals, combined with and,
//! or, not. Evaluated on the chain's plain request view.

use super::chain::RequestView;
use crate::config::{ConditionConf, ConfigError, ConfigErrors, OperandConf};
use http::header::HeaderName;

#[derive(Debug)]
pub enum Condition {
    True,
    Equals(Operand, String),
    HasHeader(HeaderName),
    Not(Box<Condition>),
    And(Vec<Condition>),
    Or(Vec<Condition>),
}

#[derive(Debug)]
pub enum Operand {
    Header(HeaderName),
    Query(String),
    ClientIp,
    Method,
}

impl Condition {
    /// The compiled `conf`, or `None` with an error naming `file` (a bad header name).
    pub fn compile(
        file: &str,
        conf: &ConditionConf,
        errors: &mut ConfigErrors,
    ) -> Option<Condition> {
        let header =
            |name: &str, errors: &mut ConfigErrors| match HeaderName::from_bytes(name.as_bytes()) {
                Ok(h) => Some(h),
                Err(_) => {
                    errors.push(ConfigError::new(
                        file,
                        "choose condition",
                        format!("{name:?} is not a header name"),
                        "use a header name",
                    ));
                    None
                }
            };
        let all = |list: &[ConditionConf], errors: &mut ConfigErrors| -> Option<Vec<Condition>> {
            list.iter()
                .map(|c| Condition::compile(file, c, errors))
                .collect()
        };
        Some(match conf {
            ConditionConf::True => Condition::True,
            ConditionConf::Equals(op, lit) => {
                let op = match op {
                    OperandConf::Header(h) => Operand::Header(header(h, errors)?),
                    OperandConf::Query(q) => Operand::Query(q.clone()),
                    OperandConf::ClientIp => Operand::ClientIp,
                    OperandConf::Method => Operand::Method,
                };
                Condition::Equals(op, lit.clone())
            }
            ConditionConf::HasHeader(h) => Condition::HasHeader(header(h, errors)?),
            ConditionConf::Not(c) => Condition::Not(Box::new(Condition::compile(file, c, errors)?)),
            ConditionConf::And(list) => Condition::And(all(list, errors)?),
            ConditionConf::Or(list) => Condition::Or(all(list, errors)?),
        })
    }

    pub fn holds(&self, req: &RequestView) -> bool {
        match self {
            Condition::True => true,
            Condition::Equals(op, lit) => match op {
                Operand::Header(h) => {
                    let v = req.headers.get(h).map(|v| v.as_bytes()).unwrap_or_default();
                    v == lit.as_bytes()
                }
                Operand::Query(name) => {
                    let v = req
                        .query
                        .and_then(|q| query_value(q, name))
                        .unwrap_or_default();
                    v == *lit
                }
                Operand::ClientIp => req.client_ip_str == lit,
                Operand::Method => req.method.as_str() == lit,
            },
            Condition::HasHeader(h) => req.headers.contains_key(h),
            Condition::Not(c) => !c.holds(req),
            Condition::And(list) => list.iter().all(|c| c.holds(req)),
            Condition::Or(list) => list.iter().any(|c| c.holds(req)),
        }
    }
}

/// The first value of `name` in a query string, percent-decoded.
fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_read_the_request() {
        let conf = ConditionConf::And(vec![
            ConditionConf::Equals(OperandConf::Method, "DELETE".into()),
            ConditionConf::Not(Box::new(ConditionConf::Or(vec![
                ConditionConf::Equals(OperandConf::Header("X-Role".into()), "admin".into()),
                ConditionConf::Equals(OperandConf::Query("force".into()), "yes please".into()),
            ]))),
        ]);
        let c = Condition::compile("f", &conf, &mut ConfigErrors::default()).unwrap();
        let mut headers = http::HeaderMap::new();
        let view = |headers: &http::HeaderMap,
                    query: Option<&'static str>,
                    method: &'static http::Method| {
            let v = RequestView {
                headers,
                query,
                client_ip: "127.0.0.1".parse().unwrap(),
                client_ip_str: "127.0.0.1",
                method,
                lambda: None,
            };
            c.holds(&v)
        };
        assert!(view(&headers, None, &http::Method::DELETE));
        assert!(!view(&headers, None, &http::Method::GET));
        assert!(!view(
            &headers,
            Some("force=yes%20please"),
            &http::Method::DELETE
        ));
        headers.insert("x-role", "admin".parse().unwrap());
        assert!(!view(&headers, None, &http::Method::DELETE));
    }
}
