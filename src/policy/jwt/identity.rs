//! Reading the token from a request, with no proxy types, so the rules can be tested alone.

use super::{AuthReject, IdentitySource};
use std::borrow::Cow;

/// The raw token from the authorizer's identity source (`query` is the request's query
/// string, without `?`). Two tokens are refused rather than guessing which one the client
/// meant.
pub fn token<'r>(
    headers: &'r http::HeaderMap,
    query: Option<&'r str>,
    source: &IdentitySource,
) -> Result<Option<Cow<'r, str>>, AuthReject> {
    let reject = |why: &str| AuthReject::Unauthorized {
        www_authenticate: format!("Bearer error=\"invalid_request\", error_description=\"{why}\""),
    };
    match source {
        IdentitySource::Header(name) => {
            let mut values = headers.get_all(name).iter();
            let first = values.next();
            if values.next().is_some() {
                return Err(reject("more than one token was sent"));
            }
            // A token is visible ASCII; anything else cannot be one.
            first
                .map(|v| v.to_str().map(Cow::Borrowed))
                .transpose()
                .map_err(|_| reject("the token is not readable text"))
        }
        IdentitySource::QueryString(q) => {
            let mut values = crate::mapping::query_pairs(query.unwrap_or(""))
                .filter(|(k, _)| k == q.as_str())
                .map(|(_, v)| v);
            let first = values.next();
            if values.next().is_some() {
                return Err(reject("more than one token was sent"));
            }
            Ok(first)
        }
    }
}

/// The token without its optional `Bearer ` scheme; a bare scheme word is no token.
pub(super) fn strip_bearer(raw: &str) -> &str {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("bearer") {
        return "";
    }
    match raw.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => raw[7..].trim_start(),
        _ => raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::AUTHORIZATION;
    use http::{HeaderMap, HeaderValue};

    fn invalid_request(why: &str) -> AuthReject {
        AuthReject::Unauthorized {
            www_authenticate: format!(
                "Bearer error=\"invalid_request\", error_description=\"{why}\""
            ),
        }
    }

    #[test]
    fn header_token_is_borrowed_as_sent() {
        let source = IdentitySource::Header(AUTHORIZATION);
        let mut headers = HeaderMap::new();
        assert_eq!(token(&headers, None, &source), Ok(None));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        let got = token(&headers, Some("token=other"), &source).unwrap();
        assert!(matches!(got, Some(Cow::Borrowed("Bearer abc"))), "{got:?}");
    }

    #[test]
    fn query_token_is_percent_decoded() {
        let source = IdentitySource::QueryString("token".into());
        let headers = HeaderMap::new();
        assert_eq!(token(&headers, None, &source), Ok(None));
        assert_eq!(token(&headers, Some("a=1&b=2"), &source), Ok(None));
        assert_eq!(
            token(&headers, Some("a=1&token=x%2Ey"), &source).unwrap(),
            Some(Cow::Borrowed("x.y"))
        );
    }

    #[test]
    fn two_tokens_are_refused() {
        let source = IdentitySource::Header(AUTHORIZATION);
        let mut headers = HeaderMap::new();
        headers.append(AUTHORIZATION, HeaderValue::from_static("a"));
        headers.append(AUTHORIZATION, HeaderValue::from_static("b"));
        assert_eq!(
            token(&headers, None, &source),
            Err(invalid_request("more than one token was sent"))
        );
        let source = IdentitySource::QueryString("token".into());
        assert_eq!(
            token(&HeaderMap::new(), Some("token=a&token=b"), &source),
            Err(invalid_request("more than one token was sent"))
        );
    }

    #[test]
    fn a_header_that_is_not_text_is_refused() {
        let source = IdentitySource::Header(AUTHORIZATION);
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
        );
        assert_eq!(
            token(&headers, None, &source),
            Err(invalid_request("the token is not readable text"))
        );
    }
}
