//! The client's request head, screened before anything reads it: header names that a
//! backend could read as another header are dropped, and the framing is checked where
//! Pingora's HTTP/1 parser leaves a choice (RFC 9112 6, RFC 9110 8.6).
//!
//! What Pingora 0.9 already does (pingora-core `protocols/http/v1/server.rs`
//! `validate_request`, `common.rs` `content_length_parse_all`), before any gateway code
//! runs: `Content-Length` values that differ or do not parse are answered 400 (empty body)
//! and the connection closed (RFC 9112 6.3 item 5); identical values (`5, 5`, or two fields
//! `5`) frame the body as one value but stay in the header as sent; a `Transfer-Encoding`
//! whose final coding is not `chunked` (`identity`, `gzip`) is a 400 (RFC 9112 6.3 item 4),
//! as is any `Transfer-Encoding` on HTTP/1.0; `Content-Length` beside `Transfer-Encoding` is
//! removed and the connection closed after the answer (RFC 9112 6.1). Left for here:
//! codings before the final `chunked`, and collapsing identical `Content-Length` values.

use crate::rejection::Rejection;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderName, HeaderValue};
use pingora_http::RequestHeader;

/// Drops client headers whose name holds `_` (nginx's default, `underscores_in_headers
/// off`). CGI and WSGI servers (and many frameworks) read `X_User` and `X-User` as the same
/// `HTTP_X_USER`, so a client's `X_User: admin` would sit beside, or be joined with, the
/// `X-User` a mapping set from a verified claim. Dropped before the policies run, so an
/// identity source, a rate-limit key or a mapping never reads one either.
pub fn drop_underscored_headers(req: &mut RequestHeader) {
    let underscored = |k: &HeaderName| k.as_str().as_bytes().contains(&b'_');
    // Nearly every request has none: no allocation, no edit.
    if !req.headers.keys().any(underscored) {
        return;
    }
    let doomed: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|k| underscored(k))
        .cloned()
        .collect();
    for name in doomed {
        log::debug!("dropped client header {name} (a name with '_')");
        req.remove_header(&name);
    }
}

/// Checks the framing headers Pingora let through, and sends identical `Content-Length`
/// values on as one. Called before the body is read; a refused request is answered and its
/// connection closed (its body was never read).
pub fn check_framing(req: &mut RequestHeader) -> Result<(), Rejection> {
    if req.headers.contains_key(TRANSFER_ENCODING) {
        return check_transfer_codings(req);
    }
    collapse_content_length(req)
}

/// RFC 9112 6.1: a server that receives a transfer coding it does not understand should
/// answer 501. apigate understands only `chunked` (Pingora decodes it and re-frames the
/// body for the backend), so `gzip, chunked` would reach the backend as a header naming a
/// coding nobody checked. Applying `chunked` twice is forbidden (RFC 9112 6.1): a 400.
fn check_transfer_codings(req: &RequestHeader) -> Result<(), Rejection> {
    let mut chunked = 0;
    for value in req.headers.get_all(TRANSFER_ENCODING) {
        // Empty list elements are allowed and ignored (RFC 9110 5.6.1).
        for coding in value
            .as_bytes()
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
        {
            if coding.is_empty() {
                continue;
            }
            if !coding.eq_ignore_ascii_case(b"chunked") {
                return Err(Rejection::NotImplemented);
            }
            chunked += 1;
        }
    }
    match chunked {
        1 => Ok(()),
        _ => Err(Rejection::BadRequest),
    }
}

/// RFC 9110 8.6: a recipient may take `Content-Length: 5, 5` (or two `5` fields) as one
/// value, but a backend that does not (Node, Go and others answer 400) would fail the
/// request the gateway accepted: it is sent as one `Content-Length: 5`. Values that differ
/// are a 400 (Pingora refuses them first; this stays correct without it).
fn collapse_content_length(req: &mut RequestHeader) -> Result<(), Rejection> {
    let mut values = req.headers.get_all(CONTENT_LENGTH).iter();
    let single = match (values.next(), values.next()) {
        (None, _) => return Ok(()),
        (Some(v), None) => !v.as_bytes().contains(&b','),
        _ => false,
    };
    if single {
        return Ok(());
    }
    rewrite_content_length(req)
}

fn rewrite_content_length(req: &mut RequestHeader) -> Result<(), Rejection> {
    let mut agreed: Option<u64> = None;
    for value in req.headers.get_all(CONTENT_LENGTH) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let n = digits(item.trim_ascii()).ok_or(Rejection::BadRequest)?;
            if agreed.is_some_and(|a| a != n) {
                return Err(Rejection::BadRequest);
            }
            agreed = Some(n);
        }
    }
    let n = agreed.ok_or(Rejection::BadRequest)?;
    req.insert_header(CONTENT_LENGTH, HeaderValue::from(n))
        .map_err(|_| Rejection::BadRequest)
}

/// `1*DIGIT` (RFC 9110 8.6): no sign, no space, no overflow.
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/x", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn lengths(r: &RequestHeader) -> Vec<String> {
        r.headers
            .get_all(CONTENT_LENGTH)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn identical_lengths_become_one() {
        for hs in [
            &[("Content-Length", "5, 5")][..],
            &[("Content-Length", "5"), ("Content-Length", "5")],
            &[("Content-Length", "5 ,5"), ("content-length", "5")],
            &[("Content-Length", "5")],
        ] {
            let mut r = req(hs);
            assert_eq!(check_framing(&mut r), Ok(()), "{hs:?}");
            assert_eq!(lengths(&r), ["5"], "{hs:?}");
        }
        let mut none = req(&[]);
        assert_eq!(check_framing(&mut none), Ok(()));
        assert!(lengths(&none).is_empty());
    }

    #[test]
    fn conflicting_or_bad_lengths_are_400() {
        for hs in [
            &[("Content-Length", "5, 6")][..],
            &[("Content-Length", "5"), ("Content-Length", "6")],
            &[("Content-Length", "5, +5")],
            &[("Content-Length", "5, ")],
            &[(
                "Content-Length",
                "99999999999999999999, 99999999999999999999",
            )],
        ] {
            assert_eq!(
                check_framing(&mut req(hs)),
                Err(Rejection::BadRequest),
                "{hs:?}"
            );
        }
    }

    #[test]
    fn only_a_single_chunked_coding_is_understood() {
        for te in ["chunked", "Chunked", " chunked ", ", chunked"] {
            assert_eq!(
                check_framing(&mut req(&[("Transfer-Encoding", te)])),
                Ok(()),
                "{te}"
            );
        }
        for te in ["gzip, chunked", "identity", "chunked;q=1", "x, chunked"] {
            assert_eq!(
                check_framing(&mut req(&[("Transfer-Encoding", te)])),
                Err(Rejection::NotImplemented),
                "{te}"
            );
        }
        let two = req(&[
            ("Transfer-Encoding", "gzip"),
            ("Transfer-Encoding", "chunked"),
        ]);
        assert_eq!(check_transfer_codings(&two), Err(Rejection::NotImplemented));
        for te in ["chunked, chunked", ","] {
            assert_eq!(
                check_framing(&mut req(&[("Transfer-Encoding", te)])),
                Err(Rejection::BadRequest),
                "{te}"
            );
        }
    }

    #[test]
    fn underscored_names_are_dropped() {
        let mut r = req(&[
            ("X_User", "admin"),
            ("X-User", "alice"),
            ("x_forwarded_for", "1.2.3.4"),
            ("Accept", "*/*"),
        ]);
        drop_underscored_headers(&mut r);
        let mut names: Vec<&str> = r.headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "x-user"]);
        assert_eq!(r.headers["x-user"], "alice");
    }

    proptest::proptest! {
        /// Any `Content-Length` / `Transfer-Encoding` fields a client sends: no panic; an
        /// accepted head carries at most one `Content-Length` with one value (or chunked
        /// alone), and screening it again changes nothing.
        #[test]
        fn framing_screen_is_total_and_idempotent(
            sent in proptest::collection::vec("[0-9, +a-]{0,8}", 0..3),
            codings in proptest::collection::vec("(chunked|gzip|identity|,| |C)*", 0..3),
        ) {
            let mut r = req(&[]);
            for l in &sent {
                r.append_header("Content-Length", l.as_str()).unwrap();
            }
            for c in &codings {
                r.append_header("Transfer-Encoding", c.as_str()).unwrap();
            }
            if check_framing(&mut r).is_ok() {
                let once = format!("{:?}", r.headers);
                proptest::prop_assert!(check_framing(&mut r).is_ok());
                proptest::prop_assert_eq!(once, format!("{:?}", r.headers));
                if codings.is_empty() {
                    let all = lengths(&r);
                    proptest::prop_assert!(all.len() <= 1);
                    proptest::prop_assert!(all.iter().all(|v| !v.contains(',')), "{:?}", all);
                }
            }
        }

        /// Whatever names a client sends, none with `_` is left, and the others all are.
        #[test]
        fn underscored_names_never_survive(names in proptest::collection::vec("[a-zA-Z_-]{1,8}", 0..10)) {
            let mut r = req(&[]);
            for n in &names {
                r.append_header(n.clone(), "v").unwrap();
            }
            drop_underscored_headers(&mut r);
            for n in &names {
                proptest::prop_assert_eq!(r.headers.contains_key(n.as_str()), !n.contains('_'));
            }
        }
    }
}
