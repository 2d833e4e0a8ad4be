//! Property tests: the route-key parser never panics and the router holds every key it
//! accepts; selection on the canonical path equals the AWS rules (the linear reference in
//! `tests`) applied to the path as a decoding backend reads it, however the client spelled it.

use super::tests::reference;
use super::*;
use crate::request_path::canonical;
use proptest::prelude::*;
use std::collections::HashSet;

/// Words with characters a route literal may hold and a client may escape.
const WORDS: [&str; 4] = ["a", "b", "a:b", "x;y"];
const METHODS: [&str; 3] = ["GET", "POST", "ANY"];

#[derive(Debug, Clone)]
enum Seg {
    Word(usize),
    Var,
    Greedy,
}

fn key_strategy() -> impl Strategy<Value = (usize, Vec<Seg>)> {
    let seg = prop_oneof![
        3 => (0..WORDS.len()).prop_map(Seg::Word),
        2 => Just(Seg::Var),
        1 => Just(Seg::Greedy),
    ];
    (0..METHODS.len(), prop::collection::vec(seg, 0..4))
}

/// The route key, if the segments make one (a greedy variable only last).
fn key_text(method: usize, segs: &[Seg]) -> Option<String> {
    let mut path = String::new();
    for (i, s) in segs.iter().enumerate() {
        path.push('/');
        match s {
            Seg::Word(w) => path.push_str(WORDS[*w]),
            Seg::Var => path.push_str(&format!("{{v{i}}}")),
            Seg::Greedy if i + 1 == segs.len() => path.push_str("{rest+}"),
            Seg::Greedy => return None,
        }
    }
    if path.is_empty() {
        path.push('/');
    }
    Some(format!("{} {path}", METHODS[method]))
}

/// `word` with each byte written as is, or escaped in upper- or lower-case hex.
fn spell(word: &str, bits: u64) -> String {
    let mut out = String::new();
    for (i, b) in word.bytes().enumerate() {
        match (bits >> (2 * i)) & 3 {
            0 | 1 => out.push(char::from(b)),
            2 => out.push_str(&format!("%{b:02X}")),
            _ => out.push_str(&format!("%{b:02x}")),
        }
    }
    out
}

/// A request path as a client might spell it: escapes, empty segments, a space.
fn spelled_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => (0..WORDS.len(), any::<u64>()).prop_map(|(w, bits)| spell(WORDS[w], bits)),
        1 => Just("d".to_string()),
        1 => Just("%20".to_string()),
        1 => Just(String::new()),
    ];
    (prop::collection::vec(piece, 0..5), any::<bool>()).prop_map(|(segs, trailing)| {
        let mut p = String::new();
        for s in segs {
            p.push('/');
            p.push_str(&s);
        }
        if p.is_empty() || trailing {
            p.push('/');
        }
        p
    })
}

/// The path as a decoding backend reads it: each segment decoded, empty ones dropped.
fn decoded(raw: &str) -> String {
    let mut out = String::new();
    for seg in raw.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(&percent_encoding::percent_decode_str(seg).decode_utf8_lossy());
    }
    if out.is_empty() || raw.ends_with('/') {
        out.push('/');
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn selection_on_the_canonical_path_is_selection_on_the_decoded_path(
        keys in prop::collection::vec(key_strategy(), 1..10),
        with_default in any::<bool>(),
        paths in prop::collection::vec(spelled_path(), 1..16),
        method in 0..3usize,
    ) {
        let mut parsed = Vec::new();
        let mut seen = HashSet::new();
        for (m, segs) in &keys {
            if let Some(text) = key_text(*m, segs) {
                let key = RouteKey::parse(&text).expect("generated keys are valid");
                if seen.insert(key.identity()) {
                    parsed.push(key);
                }
            }
        }
        if with_default {
            parsed.push(RouteKey::Default);
        }
        let router = Router::build(parsed.iter().cloned().zip(0..).collect()).unwrap();
        let method = [Method::GET, Method::POST, Method::PUT][method].clone();
        for raw in &paths {
            let canon = canonical(raw).expect("these spellings all have a canonical form");
            let got = router.select(&method, &canon).map(|s| *s.route);
            let want = reference(&parsed, &method, &decoded(raw));
            prop_assert_eq!(
                got,
                want,
                "{} {:?} (canonical {:?}) over {:?}",
                method,
                raw,
                canon,
                parsed.iter().map(RouteKey::identity).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn route_key_parsing_never_panics(key in any::<String>()) {
        if let Err(e) = RouteKey::parse(&key) {
            prop_assert!(!e.is_empty());
        }
    }

    /// Whatever the parser accepts, the router can hold (a refusal there would be a bug
    /// reported at load, not a panic); what it refuses comes with a reason.
    #[test]
    fn accepted_route_keys_build(
        key in "(GET|ANY|POST|get|\\$default|) ?(/([a-z:;.%~ ]{1,3}|\\{[a-z+_]{0,3}\\}|\\{\\}|\\{a\\}x|)){0,4}/?"
    ) {
        match RouteKey::parse(&key) {
            Ok(k) => {
                let _ = k.identity();
                prop_assert!(Router::build(vec![(k, ())]).is_ok(), "{:?}", key);
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }
}
