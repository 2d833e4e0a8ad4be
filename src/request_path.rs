//! What makes a request target unroutable: checked before routing, answered 400.

use http::header;

/// Why a request cannot be routed at all, if so.
pub fn malformed(req: &http::request::Parts) -> Option<&'static str> {
    let path = req.uri.path();
    // `OPTIONS *` and CONNECT's `host:port` name no resource a route could match (and
    // `http::Uri` reports `/` as the path of `host:port`).
    if req.method == http::Method::CONNECT || !path.starts_with('/') {
        return Some("the request target is not a path");
    }
    if req.version == http::Version::HTTP_11 && !req.headers.contains_key(header::HOST) {
        return Some("an HTTP/1.1 request without Host");
    }
    if !valid_percent_encoding(path) {
        return Some("a % not followed by two hex digits");
    }
    // A backend that normalises `/svc/{proxy}` with proxy = `../admin` would serve a path
    // outside the integration, chosen by a route that never matched it.
    if path.split('/').any(is_dot_segment) {
        return Some("a . or .. path segment");
    }
    None
}

/// `%` must be followed by two hex digits.
fn valid_percent_encoding(path: &str) -> bool {
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// `.` or `..`, also when written `%2e`.
fn is_dot_segment(segment: &str) -> bool {
    let mut dots = 0;
    let mut rest = segment.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'.' {
            rest = tail;
        } else if tail.len() >= 2 && b == b'%' && tail[0] == b'2' && tail[1] | 0x20 == b'e' {
            rest = &tail[2..];
        } else {
            return false;
        }
        dots += 1;
    }
    (1..=2).contains(&dots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments() {
        for seg in [".", "..", "%2e", "%2E%2e", ".%2E"] {
            assert!(is_dot_segment(seg), "{seg}");
        }
        for seg in ["", "...", "..a", "a.", "%2f", "%2", "%2e%2e%2e"] {
            assert!(!is_dot_segment(seg), "{seg}");
        }
    }

    #[test]
    fn percent_encoding_validation() {
        assert!(valid_percent_encoding("/a%20b/%2F"));
        assert!(!valid_percent_encoding("/%zz"));
        assert!(!valid_percent_encoding("/a%2"));
        assert!(!valid_percent_encoding("/a%"));
    }
}
