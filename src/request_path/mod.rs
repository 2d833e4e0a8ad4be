//! The one canonical request path. A router that matches one spelling of a path while the
//! backend decodes another lets a client walk around route guards (`/%61dmin` routed as
//! `$default`, served as `/admin`), so the path is rewritten to a single spelling before
//! anything reads it, and spellings that could mean different things to different servers
//! are refused:
//!
//! - RFC 3986 6.2.2: hex digits of escapes upper case; escapes of unreserved characters
//!   decoded (6.2.2.2), and, beyond the RFC, also of the other characters a path segment may
//!   hold as they are (sub-delims, `:`, `@`): a route literal can hold them, so `%3A` and `:`
//!   must reach the same route (AWS and nginx match on the decoded path too).
//! - Every other byte that is no `pchar` (RFC 3986 3.3) is percent-encoded: `"`, `{`,
//!   non-ASCII, ...
//! - Empty segments are merged (`//a` is `/a`, nginx's `merge_slashes on`, Envoy's
//!   `merge_slashes`); a trailing slash stays.
//! - Refused (400): `%2F` (a backend would split the segment the router kept whole, Envoy's
//!   `path_with_escaped_slashes_action: REJECT_REQUEST`), `\` and `%5C` (a separator on
//!   Windows and to many frameworks), a dot segment in any spelling (`.`, `..`, `%2e`, `.%2E`,
//!   also `..;x`, which Tomcat reads as `..`), a path whose decoded bytes are not UTF-8
//!   (overlong `%c0%ae` is a `.` to some decoders) or hold a control character, and an
//!   invalid escape.

#[cfg(test)]
mod tests;

use http::header;
use pingora_http::RequestHeader;
use std::borrow::Cow;

/// Why a request target has no canonical path: each is a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `OPTIONS *`, CONNECT's `host:port`: no resource a route could match.
    NotAPath,
    /// RFC 9112 3.2: an HTTP/1.1 request must carry `Host`.
    NoHost,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// `%2F`: one segment to the router, two to a decoding backend.
    EncodedSlash,
    /// `\` or `%5C`: a separator to Windows and many frameworks.
    Backslash,
    /// `.` or `..` in any spelling.
    DotSegment,
    /// Decoded bytes that are not UTF-8 (overlong forms included).
    NotUtf8,
    /// A decoded control character (`%00`, `%0A`, ...).
    Control,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::NotAPath => "the request target is not a path",
            Refusal::NoHost => "an HTTP/1.1 request without Host",
            Refusal::BadEscape => "a % not followed by two hex digits",
            Refusal::EncodedSlash => "an encoded slash (%2F)",
            Refusal::Backslash => "a backslash (\\ or %5C)",
            Refusal::DotSegment => "a . or .. path segment",
            Refusal::NotUtf8 => "a path that is not UTF-8 once decoded",
            Refusal::Control => "a control character in the path",
        })
    }
}

/// Checks the request target and replaces the URI's path with its canonical form (the
/// query is kept as sent), so routing, policies, mappings, logs and the backend all read
/// one path. Costs one scan when the path is already canonical.
pub fn canonicalise(req: &mut RequestHeader) -> Result<(), Refusal> {
    let path = req.uri.path();
    // `http::Uri` reports `/` as the path of CONNECT's `host:port`.
    if req.method == http::Method::CONNECT || !path.starts_with('/') {
        return Err(Refusal::NotAPath);
    }
    if req.version == http::Version::HTTP_11 && !req.headers.contains_key(header::HOST) {
        return Err(Refusal::NoHost);
    }
    // Pingora keeps a lossy rendering of a target that is not UTF-8.
    if !req.raw_path_is_utf8() {
        return Err(Refusal::NotUtf8);
    }
    let Cow::Owned(canon) = canonical(path)? else {
        return Ok(());
    };
    let mut target = canon;
    if let Some(q) = req.uri.query() {
        target.push('?');
        target.push_str(q);
    }
    // Every byte of a canonical path is valid in a URI, and the query was valid before.
    let uri = http::Uri::try_from(target).map_err(|_| Refusal::NotAPath)?;
    req.set_uri(uri);
    Ok(())
}

/// The canonical form of `path` (which starts with `/`), borrowed when it already is.
pub fn canonical(path: &str) -> Result<Cow<'_, str>, Refusal> {
    if is_canonical(path.as_bytes()) {
        return Ok(Cow::Borrowed(path));
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(Refusal::NotAPath);
    };
    let mut out = String::with_capacity(path.len());
    let mut decoded = Vec::new();
    for segment in rest.split('/') {
        if segment.is_empty() {
            continue;
        }
        out.push('/');
        decoded.clear();
        segment_into(segment.as_bytes(), &mut out, &mut decoded)?;
        check_decoded(&decoded)?;
    }
    if out.is_empty() || path.ends_with('/') {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// Appends the canonical spelling of one raw segment to `out` and its decoded bytes to
/// `decoded`.
fn segment_into(seg: &[u8], out: &mut String, decoded: &mut Vec<u8>) -> Result<(), Refusal> {
    let mut i = 0;
    while i < seg.len() {
        let (byte, escaped) = if seg[i] == b'%' {
            let hi = seg.get(i + 1).and_then(|&h| hex(h));
            let lo = seg.get(i + 2).and_then(|&l| hex(l));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(Refusal::BadEscape);
            };
            i += 3;
            (hi << 4 | lo, true)
        } else {
            i += 1;
            (seg[i - 1], false)
        };
        match byte {
            b'/' if escaped => return Err(Refusal::EncodedSlash),
            b'\\' => return Err(Refusal::Backslash),
            _ => {}
        }
        decoded.push(byte);
        if is_plain(byte) {
            out.push(char::from(byte));
        } else {
            push_escape(byte, out);
        }
    }
    Ok(())
}

/// A decoded segment must be UTF-8 without control characters, and no dot segment, also
/// not before a `;` path parameter (`..;x` is `..` to Tomcat and Jetty).
fn check_decoded(decoded: &[u8]) -> Result<(), Refusal> {
    let text = std::str::from_utf8(decoded).map_err(|_| Refusal::NotUtf8)?;
    if text.chars().any(char::is_control) {
        return Err(Refusal::Control);
    }
    let name = text.split(';').next().unwrap_or(text);
    if name == "." || name == ".." {
        return Err(Refusal::DotSegment);
    }
    Ok(())
}

/// Whether a byte stands for itself in a canonical segment: RFC 3986 `pchar` without `%`
/// (unreserved, sub-delims, `:`, `@`).
pub(crate) fn is_plain(b: u8) -> bool {
    CLASS[usize::from(b)] >= PLAIN
}

/// Byte classes for the one-pass check, a table lookup per byte.
const OTHER: u8 = 0;
const SLASH: u8 = 1;
const PLAIN: u8 = 2;
const DOT: u8 = 3;

static CLASS: [u8; 256] = {
    let mut t = [OTHER; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = match b {
            b'/' => SLASH,
            b'.' => DOT,
            b'-' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b','
            | b';' | b'=' | b':' | b'@' => PLAIN,
            _ if b.is_ascii_alphanumeric() => PLAIN,
            _ => OTHER,
        };
        i += 1;
    }
    t
};

/// `%XX` with upper-case hex (RFC 3986 6.2.2.1).
pub(crate) fn push_escape(b: u8, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 15)]));
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The common case, checked in one pass with one bit of state: only plain bytes and `/`,
/// and no segment that is empty (but a trailing one) or starts with a dot. Escapes, and
/// the rare names like `.well-known`, take the slow path, which decides.
fn is_canonical(path: &[u8]) -> bool {
    let Some((b'/', rest)) = path.split_first() else {
        return false;
    };
    let mut after_slash = true;
    for &b in rest {
        match CLASS[usize::from(b)] {
            OTHER => return false,
            SLASH | DOT if after_slash => return false,
            class => after_slash = class == SLASH,
        }
    }
    true
}
