//! Route keys and AWS route selection, compiled into matchit tries.
//!
//! AWS order: a full (non-greedy) match beats a greedy one; then the more specific path
//! (literal beats variable at the first differing segment; longer literal prefix among
//! greedy routes); then an exact method beats `ANY`; then `$default`.
//! matchit's own priority (static > parameter > catch-all, with backtracking) gives the
//! path order, so each concrete method gets its own pair of tries (full, greedy) holding
//! that method's routes plus the `ANY` routes whose path it does not define itself.

use http::Method;

/// One path segment of a route key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Var(String),
    Greedy(String),
}

/// A parsed route key: `$default`, or `METHOD /path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteKey {
    Default,
    Path {
        /// `None` is `ANY`.
        method: Option<Method>,
        segments: Vec<Segment>,
    },
}

impl RouteKey {
    /// Parses a route key, explaining what is wrong in words a user can act on.
    pub fn parse(key: &str) -> Result<RouteKey, String> {
        if key == "$default" {
            return Ok(RouteKey::Default);
        }
        let (method, path) = key
            .split_once(' ')
            .ok_or("expected \"METHOD /path\" or \"$default\"")?;
        let method = match method {
            "ANY" => None,
            m if m.chars().all(|c| c.is_ascii_uppercase()) && !m.is_empty() => {
                Some(Method::from_bytes(m.as_bytes()).map_err(|_| format!("bad method {m:?}"))?)
            }
            m => {
                return Err(format!(
                    "method {m:?} must be upper case (e.g. {:?}) or ANY",
                    m.to_ascii_uppercase()
                ))
            }
        };
        if !path.starts_with('/') {
            return Err(format!("path {path:?} must start with '/'"));
        }
        if path.len() > 1 && path.ends_with('/') {
            return Err(format!("path {path:?} must not end with '/'"));
        }
        let mut segments = Vec::new();
        let raw: Vec<&str> = if path == "/" {
            Vec::new()
        } else {
            path[1..].split('/').collect()
        };
        for (i, seg) in raw.iter().enumerate() {
            if seg.is_empty() {
                return Err(format!("path {path:?} has an empty segment"));
            }
            if let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let (name, greedy) = match inner.strip_suffix('+') {
                    Some(n) => (n, true),
                    None => (inner, false),
                };
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(format!(
                        "variable {seg:?} needs a name of letters, digits, '_' or '-'"
                    ));
                }
                if greedy {
                    if i + 1 != raw.len() {
                        return Err(format!("greedy variable {seg:?} must be the last segment"));
                    }
                    segments.push(Segment::Greedy(name.to_string()));
                } else {
                    segments.push(Segment::Var(name.to_string()));
                }
            } else if seg.contains(['{', '}']) {
                return Err(format!(
                    "segment {seg:?}: a variable must be a whole segment, like {{id}}"
                ));
            } else {
                segments.push(Segment::Literal(seg.to_string()));
            }
        }
        Ok(RouteKey::Path { method, segments })
    }

    fn is_greedy(segments: &[Segment]) -> bool {
        matches!(segments.last(), Some(Segment::Greedy(_)))
    }
}

/// The matchit pattern for a path: variables are named by position (`p0`, `p1`, ...) so
/// that `/pets/{id}` and `/pets/{name}/x` share a trie node; the real names are kept per route.
fn trie_pattern(segments: &[Segment]) -> String {
    let mut out = String::new();
    for (i, s) in segments.iter().enumerate() {
        out.push('/');
        match s {
            Segment::Literal(l) => out.push_str(l),
            Segment::Var(_) => out.push_str(&format!("{{p{i}}}")),
            Segment::Greedy(_) => out.push_str("{*g}"),
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Route selection for one stage. `T` is the compiled route.
pub struct Router<T> {
    routes: Vec<T>,
    /// Variable names by segment position, per route.
    var_names: Vec<Vec<(usize, String)>>,
    /// Few distinct methods: a short scan beats hashing `Method`.
    by_method: Vec<(Method, Tries)>,
    any: Tries,
    default_route: Option<usize>,
}

#[derive(Default)]
struct Tries {
    full: matchit::Router<usize>,
    greedy: matchit::Router<usize>,
}

impl Tries {
    fn insert(&mut self, segments: &[Segment], idx: usize) -> Result<(), String> {
        let trie = if RouteKey::is_greedy(segments) {
            &mut self.greedy
        } else {
            &mut self.full
        };
        trie.insert(trie_pattern(segments), idx)
            .map_err(|e| e.to_string())
    }
}

/// A selected route, with its path variables as raw (still percent-encoded) text.
pub struct Selected<'r, 'p, T> {
    pub route: &'r T,
    pub params: Vec<(&'r str, &'p str)>,
}

impl<T> Router<T> {
    /// Builds the tries. `routes` pairs each parsed key with its value; the caller has
    /// rejected duplicate keys already, so an insert conflict here means two keys that
    /// differ only in variable names (AWS treats them as the same route).
    pub fn build(routes: Vec<(RouteKey, T)>) -> Result<Router<T>, String> {
        let mut router = Router {
            routes: Vec::with_capacity(routes.len()),
            var_names: Vec::with_capacity(routes.len()),
            by_method: Vec::new(),
            any: Tries::default(),
            default_route: None,
        };
        let mut keys = Vec::new();
        for (key, value) in routes {
            let idx = router.routes.len();
            router.routes.push(value);
            let names = match &key {
                RouteKey::Path { segments, .. } => segments
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| match s {
                        Segment::Var(n) | Segment::Greedy(n) => Some((i, n.clone())),
                        Segment::Literal(_) => None,
                    })
                    .collect(),
                RouteKey::Default => Vec::new(),
            };
            router.var_names.push(names);
            keys.push((key, idx));
        }
        // Exact-method routes first, so an ANY route only fills paths a method lacks.
        for (key, idx) in &keys {
            match key {
                RouteKey::Default => router.default_route = Some(*idx),
                RouteKey::Path {
                    method: Some(m),
                    segments,
                } => {
                    let pos = match router.by_method.iter().position(|(have, _)| have == m) {
                        Some(p) => p,
                        None => {
                            router.by_method.push((m.clone(), Tries::default()));
                            router.by_method.len() - 1
                        }
                    };
                    router.by_method[pos].1.insert(segments, *idx)?
                }
                RouteKey::Path { method: None, .. } => {}
            }
        }
        for (key, idx) in &keys {
            if let RouteKey::Path {
                method: None,
                segments,
            } = key
            {
                router.any.insert(segments, *idx)?;
                for (_, tries) in router.by_method.iter_mut() {
                    // A conflict means this method defines the same path: its own route wins.
                    let _ = tries.insert(segments, *idx);
                }
            }
        }
        Ok(router)
    }

    /// Selects the route for `method` and `path` (stage prefix already removed; one
    /// trailing slash ignored). `None` is AWS's 404.
    pub fn select<'p>(&self, method: &Method, path: &'p str) -> Option<Selected<'_, 'p, T>> {
        let path = match path.strip_suffix('/') {
            Some(p) if !p.is_empty() => p,
            _ => path,
        };
        let tries = self
            .by_method
            .iter()
            .find(|(m, _)| m == method)
            .map_or(&self.any, |(_, t)| t);
        let hit = tries
            .full
            .at(path)
            .ok()
            .or_else(|| tries.greedy.at(path).ok());
        if let Some(m) = hit {
            let idx = *m.value;
            let names = &self.var_names[idx];
            let params = m
                .params
                .iter()
                .filter_map(|(k, v)| {
                    let pos = if k == "g" {
                        names.last().map(|(p, _)| *p)?
                    } else {
                        k.strip_prefix('p')?.parse().ok()?
                    };
                    let name = names.iter().find(|(p, _)| *p == pos)?;
                    Some((name.1.as_str(), v))
                })
                .collect();
            return Some(Selected {
                route: &self.routes[idx],
                params,
            });
        }
        self.default_route.map(|idx| Selected {
            route: &self.routes[idx],
            params: Vec::new(),
        })
    }

    pub fn routes(&self) -> &[T] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(keys: &[&str]) -> Router<String> {
        Router::build(
            keys.iter()
                .map(|k| (RouteKey::parse(k).unwrap(), k.to_string()))
                .collect(),
        )
        .unwrap()
    }

    fn pick(r: &Router<String>, method: &str, path: &str) -> Option<String> {
        r.select(&Method::from_bytes(method.as_bytes()).unwrap(), path)
            .map(|s| s.route.clone())
    }

    #[test]
    fn aws_documented_table() {
        let r = router(&[
            "GET /pets/dog/1",
            "GET /pets/dog/{id}",
            "GET /pets/{proxy+}",
            "ANY /{proxy+}",
            "$default",
        ]);
        assert_eq!(pick(&r, "GET", "/pets/dog/1").unwrap(), "GET /pets/dog/1");
        assert_eq!(
            pick(&r, "GET", "/pets/dog/2").unwrap(),
            "GET /pets/dog/{id}"
        );
        assert_eq!(
            pick(&r, "GET", "/pets/cat/1").unwrap(),
            "GET /pets/{proxy+}"
        );
        assert_eq!(pick(&r, "POST", "/test/5").unwrap(), "ANY /{proxy+}");
        // Nothing but $default matches the root.
        assert_eq!(pick(&r, "GET", "/").unwrap(), "$default");
    }

    #[test]
    fn full_match_beats_greedy_even_when_less_literal() {
        let r = router(&["GET /{a}/{b}/{c}", "GET /pets/{proxy+}"]);
        assert_eq!(pick(&r, "GET", "/pets/x/y").unwrap(), "GET /{a}/{b}/{c}");
        assert_eq!(pick(&r, "GET", "/pets/x").unwrap(), "GET /pets/{proxy+}");
    }

    #[test]
    fn literal_beats_variable_at_first_difference() {
        let r = router(&["GET /a/{x}/c", "GET /{y}/b/c"]);
        assert_eq!(pick(&r, "GET", "/a/b/c").unwrap(), "GET /a/{x}/c");
        // Backtracks when the literal branch fails further down.
        let r = router(&["GET /a/{x}/c", "GET /{y}/b/d"]);
        assert_eq!(pick(&r, "GET", "/a/b/d").unwrap(), "GET /{y}/b/d");
    }

    #[test]
    fn longer_greedy_prefix_wins() {
        let r = router(&["GET /pets/{proxy+}", "GET /pets/dog/{proxy+}"]);
        assert_eq!(
            pick(&r, "GET", "/pets/dog/x").unwrap(),
            "GET /pets/dog/{proxy+}"
        );
        assert_eq!(
            pick(&r, "GET", "/pets/cat/x").unwrap(),
            "GET /pets/{proxy+}"
        );
    }

    #[test]
    fn exact_method_beats_any_at_equal_path() {
        let r = router(&["ANY /pets", "GET /pets"]);
        assert_eq!(pick(&r, "GET", "/pets").unwrap(), "GET /pets");
        assert_eq!(pick(&r, "POST", "/pets").unwrap(), "ANY /pets");
    }

    #[test]
    fn more_specific_any_path_beats_less_specific_method_path() {
        let r = router(&["ANY /pets/dog", "GET /pets/{id}"]);
        assert_eq!(pick(&r, "GET", "/pets/dog").unwrap(), "ANY /pets/dog");
        assert_eq!(pick(&r, "GET", "/pets/cat").unwrap(), "GET /pets/{id}");
    }

    #[test]
    fn method_mismatch_falls_back_to_less_specific_path() {
        let r = router(&["GET /pets/dog", "POST /pets/{id}"]);
        assert_eq!(pick(&r, "POST", "/pets/dog").unwrap(), "POST /pets/{id}");
        assert_eq!(pick(&r, "DELETE", "/pets/dog"), None);
    }

    #[test]
    fn only_method_differs_is_not_found_never_405() {
        let r = router(&["GET /pets"]);
        assert_eq!(pick(&r, "DELETE", "/pets"), None);
        assert_eq!(pick(&r, "HEAD", "/pets"), None);
    }

    #[test]
    fn default_route_last() {
        let r = router(&["GET /pets", "$default"]);
        assert_eq!(pick(&r, "POST", "/pets").unwrap(), "$default");
        assert_eq!(pick(&r, "GET", "/other/x").unwrap(), "$default");
    }

    #[test]
    fn greedy_needs_a_segment_and_trailing_slash_is_ignored() {
        let r = router(&["GET /pets/{proxy+}", "GET /dogs"]);
        assert_eq!(pick(&r, "GET", "/pets"), None);
        assert_eq!(pick(&r, "GET", "/pets/"), None);
        assert_eq!(pick(&r, "GET", "/dogs/").unwrap(), "GET /dogs");
    }

    #[test]
    fn paths_are_case_sensitive() {
        let r = router(&["GET /Pets"]);
        assert_eq!(pick(&r, "GET", "/pets"), None);
    }

    #[test]
    fn params_carry_route_names() {
        let r = router(&[
            "GET /pets/{petId}/toys/{toy}",
            "GET /x/{name}",
            "ANY /p/{proxy+}",
        ]);
        let m = Method::GET;
        let s = r.select(&m, "/pets/7/toys/ball").unwrap();
        assert_eq!(s.params, vec![("petId", "7"), ("toy", "ball")]);
        let s = r.select(&m, "/x/a%20b").unwrap();
        assert_eq!(s.params, vec![("name", "a%20b")]);
        let s = r.select(&Method::POST, "/p/a/b/c").unwrap();
        assert_eq!(s.params, vec![("proxy", "a/b/c")]);
    }

    #[test]
    fn variable_name_only_difference_conflicts() {
        let keys = ["GET /pets/{id}", "GET /pets/{petId}"];
        let built = Router::build(
            keys.iter()
                .map(|k| (RouteKey::parse(k).unwrap(), ()))
                .collect(),
        );
        assert!(built.is_err());
    }

    #[test]
    fn route_key_errors() {
        assert!(RouteKey::parse("get /x")
            .unwrap_err()
            .contains("upper case"));
        assert!(RouteKey::parse("GET /{proxy+}/x")
            .unwrap_err()
            .contains("last"));
        assert!(RouteKey::parse("GET x").is_err());
        assert!(RouteKey::parse("GET /x/").is_err());
        assert!(RouteKey::parse("GET /a{b}").is_err());
        assert!(RouteKey::parse("GET /").is_ok());
    }
}
