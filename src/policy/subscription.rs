//! APIM subscription keys: a route of an API with `subscriptionRequired` admits a request
//! only with the key of an active subscription for it, sent in the API's header or query
//! parameter. Keys are hashed once at load; a request costs one hash and one lookup.

use crate::config::{ConfigError, ConfigErrors, SubscriptionConf};
use crate::rejection::Rejection;
use http::header::HeaderName;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::Arc;

#[derive(Debug)]
pub struct SubscriptionCheck {
    header: HeaderName,
    query: String,
    /// SHA-256 of each valid key: lookups do not compare the secrets themselves.
    keys: HashSet<[u8; 32]>,
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl SubscriptionCheck {
    /// The check for `conf`, or `None` with an error naming `file` when the header name is
    /// not one.
    pub fn compile(
        file: &str,
        conf: &SubscriptionConf,
        errors: &mut ConfigErrors,
    ) -> Option<Arc<SubscriptionCheck>> {
        let Ok(header) = HeaderName::from_bytes(conf.header.as_bytes()) else {
            errors.push(ConfigError::new(
                file,
                "subscriptionKeyParameterNames.header",
                format!("{:?} is not a header name", conf.header),
                "use e.g. Ocp-Apim-Subscription-Key",
            ));
            return None;
        };
        Some(Arc::new(SubscriptionCheck {
            header,
            query: conf.query.clone(),
            keys: conf.keys.iter().map(|k| digest(k)).collect(),
        }))
    }

    /// Admits a request carrying a valid key (the header first, then the query parameter).
    pub fn check(&self, headers: &http::HeaderMap, query: Option<&str>) -> Result<(), Rejection> {
        let from_header = headers
            .get(&self.header)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let key = from_header.or_else(|| self.in_query(query?));
        match key {
            None => Err(Rejection::SubscriptionKeyMissing),
            Some(k) if k.is_empty() => Err(Rejection::SubscriptionKeyMissing),
            Some(k) if self.keys.contains(&digest(&k)) => Ok(()),
            Some(_) => Err(Rejection::SubscriptionKeyInvalid),
        }
    }

    fn in_query(&self, query: &str) -> Option<String> {
        query.split('&').find_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name == self.query).then(|| {
                percent_encoding::percent_decode_str(value)
                    .decode_utf8_lossy()
                    .into_owned()
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> Arc<SubscriptionCheck> {
        let conf = SubscriptionConf {
            header: "Ocp-Apim-Subscription-Key".into(),
            query: "subscription-key".into(),
            keys: vec!["k1".into(), "k 2".into()],
        };
        SubscriptionCheck::compile("f", &conf, &mut ConfigErrors::default()).unwrap()
    }

    #[test]
    fn header_or_query_key_admits_and_others_are_refused() {
        let c = check();
        let mut h = http::HeaderMap::new();
        assert_eq!(c.check(&h, None), Err(Rejection::SubscriptionKeyMissing));
        assert_eq!(c.check(&h, Some("a=1&subscription-key=k%202")), Ok(()));
        assert_eq!(
            c.check(&h, Some("subscription-key=nope")),
            Err(Rejection::SubscriptionKeyInvalid)
        );
        h.insert("ocp-apim-subscription-key", "k1".parse().unwrap());
        assert_eq!(c.check(&h, None), Ok(()));
        h.insert("ocp-apim-subscription-key", "".parse().unwrap());
        assert_eq!(c.check(&h, None), Err(Rejection::SubscriptionKeyMissing));
    }

    #[test]
    fn a_bad_header_name_is_a_config_error() {
        let conf = SubscriptionConf {
            header: "bad header".into(),
            ..SubscriptionConf::default()
        };
        let mut errors = ConfigErrors::default();
        assert!(SubscriptionCheck::compile("f", &conf, &mut errors).is_none());
        assert_eq!(errors.0.len(), 1);
    }
}
