//! A header the request must carry, with one of a list of values (APIM's `check-header`):
//! refused with the status and message the configuration words.

use crate::config::{ConfigError, ConfigErrors, HeaderCheckConf};
use crate::rejection::Rejection;
use http::header::HeaderName;

#[derive(Debug)]
pub struct HeaderCheck {
    name: HeaderName,
    /// Lower-cased when `ignore_case`.
    values: Vec<String>,
    ignore_case: bool,
    failure: Rejection,
}

impl HeaderCheck {
    /// The check for `conf`, or `None` with an error naming `file`.
    pub fn compile(
        file: &str,
        conf: &HeaderCheckConf,
        errors: &mut ConfigErrors,
    ) -> Option<HeaderCheck> {
        let Ok(name) = HeaderName::from_bytes(conf.name.as_bytes()) else {
            errors.push(ConfigError::new(
                file,
                "check-header name",
                format!("{:?} is not a header name", conf.name),
                "use a header name such as Content-Type",
            ));
            return None;
        };
        let fold = |v: &String| {
            if conf.ignore_case {
                v.to_lowercase()
            } else {
                v.clone()
            }
        };
        Some(HeaderCheck {
            name,
            values: conf.values.iter().map(fold).collect(),
            ignore_case: conf.ignore_case,
            failure: Rejection::Policy(conf.status, conf.message.as_str().into()),
        })
    }

    /// Admits a request whose header is present and, when values are listed, equal to one.
    pub fn check(&self, headers: &http::HeaderMap) -> Result<(), Rejection> {
        let Some(v) = headers.get(&self.name) else {
            return Err(self.failure.clone());
        };
        if self.values.is_empty() {
            return Ok(());
        }
        let v = String::from_utf8_lossy(v.as_bytes());
        let v = if self.ignore_case {
            v.to_lowercase()
        } else {
            v.into_owned()
        };
        if self.values.contains(&v) {
            Ok(())
        } else {
            Err(self.failure.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_and_values_with_or_without_case() {
        let conf = HeaderCheckConf {
            name: "Content-Type".into(),
            values: vec!["application/JSON".into()],
            ignore_case: true,
            status: 415,
            message: "JSON only".into(),
        };
        let c = HeaderCheck::compile("f", &conf, &mut ConfigErrors::default()).unwrap();
        let mut h = http::HeaderMap::new();
        assert_eq!(c.check(&h), Err(Rejection::Policy(415, "JSON only".into())));
        h.insert("content-type", "APPLICATION/json".parse().unwrap());
        assert_eq!(c.check(&h), Ok(()));
        let strict = HeaderCheck::compile(
            "f",
            &HeaderCheckConf {
                ignore_case: false,
                ..conf
            },
            &mut ConfigErrors::default(),
        )
        .unwrap();
        assert!(strict.check(&h).is_err());
    }
}
