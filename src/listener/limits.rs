//! The client-connection limits of `gateway.json`, their bounds and defaults, and the
//! request-head size rule AWS documents for HTTP APIs.

use crate::rejection::Rejection;
use pingora_http::RequestHeader;
use std::time::Duration;

/// What a client connection may cost, compiled from `gateway.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnLimits {
    /// An idle keep-alive connection is closed after this long without a byte of the next
    /// request (nginx `keepalive_timeout`).
    pub keepalive: Duration,
    /// The whole request head (request line and headers) must arrive within this long of its
    /// first byte, or of the accept for a new connection (nginx `client_header_timeout`, but
    /// one deadline for the head, not one per read).
    pub head_timeout: Duration,
    /// The whole request body must arrive within this long of the head.
    pub body_timeout: Duration,
    /// AWS's quota: the request line plus the header values, in bytes.
    pub max_head_bytes: usize,
    /// Client connections served at once; the next is answered 503 and closed.
    pub max_connections: usize,
}

/// Bytes a raw head may hold beyond `max_head_bytes`: header names, `": "` and line ends,
/// which AWS's quota does not count. Past that the connection layer refuses the head before
/// Pingora buffers it (Pingora alone would buffer up to 1 MiB per connection).
pub const RAW_HEAD_SLACK: usize = 8 * 1024;

/// One numeric `gateway.json` setting: its name, allowed range and default.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub field: &'static str,
    pub min: u64,
    pub max: u64,
    pub default: u64,
    /// Why the default, for the fix hint.
    pub why: &'static str,
}

impl Bound {
    /// `value` if inside the range, else `Err` with the default.
    pub fn check(&self, value: Option<u64>) -> Result<u64, u64> {
        match value {
            None => Ok(self.default),
            Some(v) if (self.min..=self.max).contains(&v) => Ok(v),
            Some(_) => Err(self.default),
        }
    }
}

pub const KEEPALIVE: Bound = Bound {
    field: "KeepaliveTimeoutInMillis",
    min: 100,
    max: 3_600_000,
    default: 75_000,
    why: "nginx's keepalive_timeout",
};
pub const HEAD_TIMEOUT: Bound = Bound {
    field: "RequestHeadTimeoutInMillis",
    min: 100,
    max: 300_000,
    default: 60_000,
    why: "nginx's client_header_timeout",
};
pub const BODY_TIMEOUT: Bound = Bound {
    field: "RequestBodyTimeoutInMillis",
    min: 100,
    max: 3_600_000,
    default: 60_000,
    why: "nginx's client_body_timeout",
};
pub const MAX_HEAD_BYTES: Bound = Bound {
    field: "MaxRequestHeadBytes",
    min: 1024,
    max: 65_536,
    default: 10_240,
    why: "AWS's quota for HTTP APIs",
};
pub const MAX_CONNECTIONS: Bound = Bound {
    field: "MaxConnections",
    min: 1,
    max: 1_000_000,
    default: 10_000,
    why: "about 1 GB of per-connection state at most",
};

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            keepalive: Duration::from_millis(KEEPALIVE.default),
            head_timeout: Duration::from_millis(HEAD_TIMEOUT.default),
            body_timeout: Duration::from_millis(BODY_TIMEOUT.default),
            max_head_bytes: MAX_HEAD_BYTES.default as usize,
            max_connections: MAX_CONNECTIONS.default as usize,
        }
    }
}

impl ConnLimits {
    /// The most raw head bytes the connection layer reads before refusing the head.
    pub fn raw_head_cap(&self) -> usize {
        self.max_head_bytes + RAW_HEAD_SLACK
    }
}

/// AWS's measure of a request head: "total combined size of request line and header
/// values" (HTTP API quotas, 10240 bytes). 414 when the request line alone is over the
/// limit (RFC 9110 15.5.15), else 431 (RFC 6585 5).
pub fn head_too_large(req: &RequestHeader, limits: &ConnLimits) -> Option<Rejection> {
    let version = match req.version {
        http::Version::HTTP_10 => "HTTP/1.0".len(),
        _ => "HTTP/1.1".len(),
    };
    let line = req.method.as_str().len() + 1 + req.raw_path().len() + 1 + version;
    if line > limits.max_head_bytes {
        return Some(Rejection::UriTooLong);
    }
    let values: usize = req.headers.values().map(|v| v.len()).sum();
    (line + values > limits.max_head_bytes).then_some(Rejection::HeadersTooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn counts_the_request_line_and_header_values_as_aws_does() {
        let limits = ConnLimits {
            max_head_bytes: 1024,
            ..ConnLimits::default()
        };
        // "GET /x HTTP/1.1" is 15 bytes; names are not counted.
        let fits = "v".repeat(1024 - 15);
        assert_eq!(head_too_large(&req("/x", &[("a", &fits)]), &limits), None);
        let long_name = "n".repeat(5000);
        assert_eq!(
            head_too_large(&req("/x", &[(&long_name, &fits)]), &limits),
            None
        );
        let over = "v".repeat(1024 - 14);
        assert_eq!(
            head_too_large(&req("/x", &[("a", &over)]), &limits),
            Some(Rejection::HeadersTooLarge)
        );
        let path = format!("/{}", "p".repeat(1024));
        assert_eq!(
            head_too_large(&req(&path, &[]), &limits),
            Some(Rejection::UriTooLong)
        );
    }

    proptest::proptest! {
        /// The rule is AWS's sum, whatever the shape of the head: never a panic, 414 only
        /// for the request line, 431 only for the sum.
        #[test]
        fn head_size_is_the_request_line_plus_the_header_values(
            path_len in 0usize..3000,
            values in proptest::collection::vec(0usize..1500, 0..12),
            max in 1024usize..4096,
        ) {
            let limits = ConnLimits { max_head_bytes: max, ..ConnLimits::default() };
            let path = format!("/{}", "p".repeat(path_len));
            let owned: Vec<String> = values.iter().map(|n| "v".repeat(*n)).collect();
            let headers: Vec<(&str, &str)> = owned.iter().map(|v| ("x-h", v.as_str())).collect();
            let line = "GET ".len() + path.len() + " HTTP/1.1".len();
            let sum = line + values.iter().sum::<usize>();
            let want = if line > max {
                Some(Rejection::UriTooLong)
            } else if sum > max {
                Some(Rejection::HeadersTooLarge)
            } else {
                None
            };
            proptest::prop_assert_eq!(head_too_large(&req(&path, &headers), &limits), want);
        }

        #[test]
        fn bounds_check_is_the_range(value in proptest::num::u64::ANY) {
            for b in [KEEPALIVE, HEAD_TIMEOUT, BODY_TIMEOUT, MAX_HEAD_BYTES, MAX_CONNECTIONS] {
                let inside = (b.min..=b.max).contains(&value);
                proptest::prop_assert_eq!(b.check(Some(value)).is_ok(), inside);
            }
        }
    }

    #[test]
    fn bounds_accept_their_range_and_refuse_the_rest() {
        for b in [
            KEEPALIVE,
            HEAD_TIMEOUT,
            BODY_TIMEOUT,
            MAX_HEAD_BYTES,
            MAX_CONNECTIONS,
        ] {
            assert!(b.min <= b.default && b.default <= b.max, "{}", b.field);
            assert_eq!(b.check(None), Ok(b.default));
            assert_eq!(b.check(Some(b.min)), Ok(b.min));
            assert_eq!(b.check(Some(b.max)), Ok(b.max));
            assert_eq!(b.check(Some(b.max + 1)), Err(b.default));
            if b.min > 0 {
                assert_eq!(b.check(Some(b.min - 1)), Err(b.default));
            }
        }
    }
}
