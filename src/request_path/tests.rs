use super::*;
use proptest::prelude::*;

fn canon(p: &str) -> Result<String, Refusal> {
    canonical(p).map(Cow::into_owned)
}

#[test]
fn canonical_spellings() {
    for (raw, want) in [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/b/", "/a/b/"),
        ("/%61dmin/x", "/admin/x"),
        ("/%41", "/A"),
        ("/a%7e%2D%5f%2e1", "/a~-_.1"),
        ("/a%3a%40%3B%2C", "/a:@;,"),
        ("/a%20b", "/a%20b"),
        ("/a%25b", "/a%25b"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/caf\u{e9}", "/caf%C3%A9"),
        ("/a\"b{c}", "/a%22b%7Bc%7D"),
        ("//admin/secret.txt", "/admin/secret.txt"),
        ("/a//b///c//", "/a/b/c/"),
        ("//", "/"),
        ("/...", "/..."),
        ("/.a/a./.../..x", "/.a/a./.../..x"),
        ("/a;b/c", "/a;b/c"),
        ("/;x", "/;x"),
    ] {
        assert_eq!(canon(raw).as_deref(), Ok(want), "{raw}");
    }
}

#[test]
fn refused_spellings() {
    use Refusal::*;
    for (raw, why) in [
        ("/admin%2Fsecret.txt", EncodedSlash),
        ("/files/..%2fadmin%2fsecret.txt", EncodedSlash),
        ("/a%5cb", Backslash),
        ("/a\\b", Backslash),
        ("/files/..\\admin", Backslash),
        ("/files/../admin", DotSegment),
        ("/files/./admin", DotSegment),
        ("/files/..", DotSegment),
        ("/files/.", DotSegment),
        ("/files/%2e%2e/admin", DotSegment),
        ("/files/.%2E/admin", DotSegment),
        ("/files/%2E/admin", DotSegment),
        ("/files/..;/admin", DotSegment),
        ("/files/..;jsessionid=1/admin", DotSegment),
        ("/files/.;x/admin", DotSegment),
        ("/files/..%3b/admin", DotSegment),
        ("/files/%c0%ae%c0%ae/admin", NotUtf8),
        ("/files/%ff", NotUtf8),
        ("/a%00b", Control),
        ("/a%0d%0ab", Control),
        ("/a%7f", Control),
        ("/a%c2%85", Control),
        ("/a%zz", BadEscape),
        ("/a%2", BadEscape),
        ("/a%", BadEscape),
        ("a/b", NotAPath),
    ] {
        assert_eq!(canon(raw), Err(why), "{raw}");
    }
}

#[test]
fn canonical_paths_are_borrowed() {
    for p in ["/", "/a", "/a/b/", "/a;b=c/d:e@f", "/a./b.c"] {
        assert!(matches!(canonical(p), Ok(Cow::Borrowed(_))), "{p}");
    }
    for p in ["/%41", "//a", "/a%20"] {
        assert!(matches!(canonical(p), Ok(Cow::Owned(_))), "{p}");
    }
}

fn request(target: &str, host: bool) -> RequestHeader {
    let mut req = RequestHeader::build("GET", target.as_bytes(), None).unwrap();
    if host {
        req.insert_header("Host", "h").unwrap();
    }
    req
}

#[test]
fn canonicalise_rewrites_the_path_and_keeps_the_query() {
    let mut req = request("/%61dmin//x?q=%2F..&b", true);
    assert_eq!(canonicalise(&mut req), Ok(()));
    assert_eq!(req.uri.path(), "/admin/x");
    assert_eq!(req.uri.query(), Some("q=%2F..&b"));
    let mut req = request("/a%2Fb", true);
    assert_eq!(canonicalise(&mut req), Err(Refusal::EncodedSlash));
    let mut req = request("/a", false);
    assert_eq!(canonicalise(&mut req), Err(Refusal::NoHost));
    let mut req = request("*", true);
    req.set_method(http::Method::OPTIONS);
    assert_eq!(canonicalise(&mut req), Err(Refusal::NotAPath));
    let mut req = RequestHeader::build("GET", b"/caf\xe9", None).unwrap();
    req.insert_header("Host", "h").unwrap();
    assert_eq!(canonicalise(&mut req), Err(Refusal::NotUtf8));
}

/// Bytes a request path is made of, weighted towards the ones that matter.
fn path_strategy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just(";".to_string()),
        Just("a".to_string()),
        Just("%".to_string()),
        "%[0-9a-fA-F]{2}",
        "[a-zA-Z0-9._~:@!$&'()*+,;=%/\\\\\"{}\u{e9}-]{1,3}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| format!("/{}", v.concat()))
}

/// What a canonical path can never hold.
fn assert_clean(c: &str) {
    assert!(c.starts_with('/'), "{c}");
    let body = &c[1..];
    assert!(!c.contains("//"), "{c}");
    for seg in body.split('/') {
        let name = seg.split(';').next().unwrap_or(seg);
        assert!(name != "." && name != "..", "{c}");
    }
    let b = c.as_bytes();
    for (i, &x) in b.iter().enumerate() {
        if x == b'%' {
            let esc = &c[i + 1..i + 3];
            assert!(
                esc.bytes()
                    .all(|h| h.is_ascii_digit() || h.is_ascii_uppercase()),
                "lower-case escape in {c}"
            );
            let v = u8::from_str_radix(esc, 16).unwrap();
            assert!(!is_plain(v) && v != b'/' && v != b'\\', "{c}");
        } else {
            assert!(is_plain(x) || x == b'/', "{c}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn canonicalisation_never_panics_and_is_idempotent(p in path_strategy()) {
        if let Ok(c) = canonical(&p) {
            assert_clean(&c);
            let again = canonical(&c).expect("a canonical path is accepted");
            prop_assert_eq!(again.as_ref(), c.as_ref());
            // Only escapes and names starting with a dot take the slow path.
            prop_assert!(
                matches!(again, Cow::Borrowed(_)) || c.contains('%') || c.contains("/.")
            );
        }
    }

    #[test]
    fn any_bytes_are_answered(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let p = format!("/{}", String::from_utf8_lossy(&bytes));
        if let Ok(c) = canonical(&p) {
            assert_clean(&c);
        }
        let _ = canonical(&String::from_utf8_lossy(&bytes));
    }

    /// The fast path and the slow path agree.
    #[test]
    fn fast_path_agrees(p in "/[a-z.;/]{0,12}") {
        if is_canonical(p.as_bytes()) {
            let mut decoded = Vec::new();
            let mut slow = String::new();
            for seg in p[1..].split('/').filter(|s| !s.is_empty()) {
                slow.push('/');
                decoded.clear();
                segment_into(seg.as_bytes(), &mut slow, &mut decoded).unwrap();
                prop_assert!(check_decoded(&decoded).is_ok(), "{}", p);
            }
            if slow.is_empty() || p.ends_with('/') {
                slow.push('/');
            }
            prop_assert_eq!(slow, p);
        }
    }
}
