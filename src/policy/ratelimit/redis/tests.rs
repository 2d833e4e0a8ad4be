use super::*;

#[test]
fn redis_keys_are_bounded_distinct_and_stable() {
    let prefix = redis_key_prefix("petstore");
    let key = |scope: &str, raw: &[u8]| redis_key(&prefix, scope, raw);
    // Short printable values stay readable.
    assert_eq!(
        key("route|prod|GET /pets", b"203.0.113.9"),
        b"apigate:rl:petstore:route|prod|GET /pets:203.0.113.9"
    );
    assert_eq!(key("api", b""), b"apigate:rl:petstore:api:");
    let max = [b'k'; READABLE_MAX];
    assert!(key("api", &max).ends_with(&max));
    // Anything else is a fixed-size digest: `#` and 128 bits of SHA-256 in hex. The
    // derivation is fixed (no per-process key), so every gateway agrees.
    assert_eq!(
        key("api", b"\xff"),
        b"apigate:rl:petstore:api:#a8100ae6aa1940d0b663bb31cd466142"
    );
    let long = [b'x'; READABLE_MAX + 1];
    assert_eq!(
        key("api", &long),
        b"apigate:rl:petstore:api:#9537c5fdf120482f7d58d25e9ed583f5"
    );
    let huge = vec![b'a'; 500_000];
    assert_eq!(key("api", &huge).len(), key("api", b"#").len());
    // No readable value can stand for a digest, nor a digest for another value.
    let digest_of_ff = b"#a8100ae6aa1940d0b663bb31cd466142";
    assert_ne!(key("api", digest_of_ff), key("api", b"\xff"));
    assert_ne!(key("api", b"\xff"), key("api", b"\xfe"));
    assert_ne!(key("api", b"a\tb"), key("api", b"a b"));
    assert_ne!(key("api", "\u{e9}".as_bytes()), key("api", b"?"));
    // Names and scopes cannot run into each other.
    assert_ne!(key("x:y", b"z"), key("x", b"y:z"));
    assert_eq!(
        key("route|s|GET /v1/items:batch", b"::1"),
        b"apigate:rl:petstore:route|s|GET /v1/items%3Abatch:::1"
    );
    assert_ne!(
        redis_key(&redis_key_prefix("a:api"), "b", b"c"),
        redis_key(&redis_key_prefix("a"), "api:b", b"c")
    );
    assert_ne!(
        redis_key(&redis_key_prefix("a%3Aapi"), "b", b"c"),
        redis_key(&redis_key_prefix("a:api"), "b", b"c")
    );
    assert_ne!(
        redis_key(&redis_key_prefix("shop"), "api", b"k"),
        redis_key(&redis_key_prefix("blog"), "api", b"k")
    );
}
