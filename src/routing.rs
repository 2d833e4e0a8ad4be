//! Route keys and AWS route selection.
//!
//! AWS order: a full (non-greedy) match beats a greedy one; then the more specific path
//! (literal beats variable at the first differing segment; longer literal prefix among
//! greedy routes); then an exact method beats `ANY`; then `$default`.
//!
//! Put as one rule: among the routes whose method and path match, the least
//! `(greedy?, rank of each segment, ANY?)` wins, where a segment ranks literal < `{var}` <
//! `{var+}`. Full paths live in matchit tries, whose own priority (static before parameter,
//! with backtracking) is that segment order; each concrete method gets its own trie holding
//! its routes plus the `ANY` routes whose path it does not define itself, so a method
//! mismatch falls back to a less specific path. Greedy routes live in a segment trie of our
//! own ([`GreedyTrie`]): matchit cannot hold `{proxy+}` beside `{id}` at the same position.

use http::Method;
use std::collections::HashMap;

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

/// Characters a literal segment may hold besides ASCII letters and digits: AWS's unreserved
/// and sub-delimiter characters plus `:` and `@` (RFC 3986 `pchar` without `%`). Left out,
/// because a route holding them could never match: space, `?` and `#` (they end the path),
/// `%` (routes match the canonical request path, see `request_path`: write the character
/// itself), `/` (separates segments) and non-ASCII letters (clients send them
/// percent-encoded). `{` `}` only appear as a whole-segment variable.
const LITERAL_PUNCTUATION: &str = "-._~:@!$&'()*+,;=";

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
                let taken = segments.iter().any(|s: &Segment| match s {
                    Segment::Var(n) | Segment::Greedy(n) => n == name,
                    Segment::Literal(_) => false,
                });
                if taken {
                    return Err(format!(
                        "variable name {name:?} is used twice; give each variable its own name"
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
            } else if *seg == "." || *seg == ".." {
                return Err(format!(
                    "segment {seg:?} is a relative reference that clients resolve away; remove it"
                ));
            } else if let Some(bad) = seg
                .chars()
                .find(|&c| !c.is_ascii_alphanumeric() && !LITERAL_PUNCTUATION.contains(c))
            {
                return Err(format!(
                    "segment {seg:?} has {bad:?}; a path holds only letters, digits and {LITERAL_PUNCTUATION} \
                     (routes match the canonical request path, so this route could never match)"
                ));
            } else {
                segments.push(Segment::Literal(seg.to_string()));
            }
        }
        Ok(RouteKey::Path { method, segments })
    }

    /// The variable names of the path, in order (`proxy` for `{proxy+}`).
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        let segments = match self {
            RouteKey::Path { segments, .. } => segments.as_slice(),
            RouteKey::Default => &[],
        };
        segments.iter().filter_map(|s| match s {
            Segment::Var(n) | Segment::Greedy(n) => Some(n.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// What makes two keys the same route: the method and the path with variable names
    /// left out (AWS treats `/pets/{id}` and `/pets/{petId}` as one route).
    pub fn identity(&self) -> String {
        match self {
            RouteKey::Default => "$default".into(),
            RouteKey::Path { method, segments } => {
                let method = method.as_ref().map_or("ANY", Method::as_str);
                format!("{method} {}", trie_pattern(segments))
            }
        }
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

/// Why a set of routes cannot be served together. Indices are positions in the list
/// given to [`Router::build`], so the caller can name the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// Same method and same path (variable names aside): AWS's "route already exists".
    Duplicate { first: usize, second: usize },
    /// The route trie refused a path the route-key parser accepted (a bug, reported
    /// rather than panicking).
    Unsupported { route: usize, reason: String },
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Duplicate { first, second } => {
                write!(f, "routes #{first} and #{second} are the same route")
            }
            BuildError::Unsupported { route, reason } => write!(f, "route #{route}: {reason}"),
        }
    }
}

/// Route selection for one stage. `T` is the compiled route.
pub struct Router<T> {
    routes: Vec<T>,
    /// Per route, its variables: (segment position, name, greedy).
    vars: Vec<Vec<(usize, String, bool)>>,
    /// Full paths of each concrete method, with the `ANY` paths that method lacks. Few
    /// distinct methods: a short scan beats hashing `Method`.
    by_method: Vec<(Method, matchit::Router<usize>)>,
    /// Full `ANY` paths, for methods no route names.
    any: matchit::Router<usize>,
    greedy: GreedyTrie,
    default_route: Option<usize>,
}

/// A selected route, with its path variables as raw (still percent-encoded) text.
pub struct Selected<'r, 'p, T> {
    pub route: &'r T,
    pub params: Vec<(&'r str, &'p str)>,
}

impl<T> Router<T> {
    /// Builds the router. Two routes with the same method and path shape are a
    /// [`BuildError::Duplicate`]; any other mix of routes is served.
    pub fn build(routes: Vec<(RouteKey, T)>) -> Result<Router<T>, BuildError> {
        let mut router = Router {
            routes: Vec::with_capacity(routes.len()),
            vars: Vec::with_capacity(routes.len()),
            by_method: Vec::new(),
            any: matchit::Router::new(),
            greedy: GreedyTrie::default(),
            default_route: None,
        };
        let mut keys = Vec::with_capacity(routes.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (idx, (key, value)) in routes.into_iter().enumerate() {
            if let Some(&first) = seen.get(&key.identity()) {
                return Err(BuildError::Duplicate { first, second: idx });
            }
            seen.insert(key.identity(), idx);
            let vars = match &key {
                RouteKey::Path { segments, .. } => segments
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| match s {
                        Segment::Var(n) => Some((i, n.clone(), false)),
                        Segment::Greedy(n) => Some((i, n.clone(), true)),
                        Segment::Literal(_) => None,
                    })
                    .collect(),
                RouteKey::Default => Vec::new(),
            };
            router.routes.push(value);
            router.vars.push(vars);
            keys.push(key);
        }
        let unsupported = |route: usize| {
            move |e: matchit::InsertError| BuildError::Unsupported {
                route,
                reason: e.to_string(),
            }
        };
        for (idx, key) in keys.iter().enumerate() {
            let RouteKey::Path { method, segments } = key else {
                router.default_route = Some(idx);
                continue;
            };
            if matches!(segments.last(), Some(Segment::Greedy(_))) {
                router.greedy.insert(method.as_ref(), segments, idx);
                continue;
            }
            let pattern = trie_pattern(segments);
            match method {
                None => router.any.insert(pattern, idx).map_err(unsupported(idx))?,
                Some(m) => {
                    let pos = match router.by_method.iter().position(|(have, _)| have == m) {
                        Some(p) => p,
                        None => {
                            router.by_method.push((m.clone(), matchit::Router::new()));
                            router.by_method.len() - 1
                        }
                    };
                    router.by_method[pos]
                        .1
                        .insert(pattern, idx)
                        .map_err(unsupported(idx))?
                }
            }
        }
        // Each method's trie also answers the ANY paths it does not define itself.
        for (idx, key) in keys.iter().enumerate() {
            let RouteKey::Path {
                method: None,
                segments,
            } = key
            else {
                continue;
            };
            if matches!(segments.last(), Some(Segment::Greedy(_))) {
                continue;
            }
            let pattern = trie_pattern(segments);
            for (m, trie) in router.by_method.iter_mut() {
                if !seen.contains_key(&format!("{m} {pattern}")) {
                    trie.insert(pattern.clone(), idx)
                        .map_err(unsupported(idx))?;
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
        let full = self
            .by_method
            .iter()
            .find(|(m, _)| m == method)
            .map_or(&self.any, |(_, t)| t);
        let idx = full
            .at(path)
            .ok()
            .map(|m| *m.value)
            .or_else(|| self.greedy.find(method, path))
            .or(self.default_route)?;
        Some(Selected {
            route: &self.routes[idx],
            params: self.params(idx, path),
        })
    }

    /// The path variables of route `idx` in `path` (which it matched).
    fn params<'p>(&self, idx: usize, path: &'p str) -> Vec<(&str, &'p str)> {
        let vars = &self.vars[idx];
        let mut out = Vec::with_capacity(vars.len());
        let mut rest = path.strip_prefix('/').unwrap_or(path);
        let mut at = 0;
        for (pos, name, greedy) in vars {
            while at < *pos {
                rest = rest.split_once('/').map_or("", |(_, r)| r);
                at += 1;
            }
            let value = if *greedy {
                rest
            } else {
                rest.split('/').next().unwrap_or(rest)
            };
            out.push((name.as_str(), value));
        }
        out
    }

    pub fn routes(&self) -> &[T] {
        &self.routes
    }
}

/// Greedy routes as a trie of path segments (the segments before `{name+}`). A lookup
/// walks it depth first, literal child before variable child before the greedy variable
/// at the node itself, so the first route found is the most specific one; a node whose
/// routes lack the request's method is passed over (fallback to a less specific path).
/// Each node is entered at most once per lookup, so a lookup costs at most the trie size,
/// and usually one node per path segment.
#[derive(Default)]
struct GreedyTrie {
    /// `nodes[0]` is the root (no segment consumed).
    nodes: Vec<Node>,
}

#[derive(Default)]
struct Node {
    /// Sorted by segment, for binary search: a node may have thousands (one per service).
    literals: Vec<(Box<str>, u32)>,
    var: Option<u32>,
    /// Routes ending in `{name+}` right after this node's segments.
    ends: Option<Ends>,
}

#[derive(Default)]
struct Ends {
    methods: Vec<(Method, usize)>,
    any: Option<usize>,
}

impl GreedyTrie {
    /// Adds a greedy route; duplicates were rejected before.
    fn insert(&mut self, method: Option<&Method>, segments: &[Segment], idx: usize) {
        if self.nodes.is_empty() {
            self.nodes.push(Node::default());
        }
        let mut at = 0usize;
        for seg in &segments[..segments.len() - 1] {
            let next = self.nodes.len() as u32;
            at = match seg {
                Segment::Literal(l) => {
                    let lits = &mut self.nodes[at].literals;
                    match lits.binary_search_by(|(have, _)| (**have).cmp(l.as_str())) {
                        Ok(i) => lits[i].1 as usize,
                        Err(i) => {
                            lits.insert(i, (l.as_str().into(), next));
                            self.nodes.push(Node::default());
                            next as usize
                        }
                    }
                }
                _ => match self.nodes[at].var {
                    Some(v) => v as usize,
                    None => {
                        self.nodes[at].var = Some(next);
                        self.nodes.push(Node::default());
                        next as usize
                    }
                },
            };
        }
        let ends = self.nodes[at].ends.get_or_insert_with(Ends::default);
        match method {
            Some(m) => ends.methods.push((m.clone(), idx)),
            None => ends.any = Some(idx),
        }
    }

    fn find(&self, method: &Method, path: &str) -> Option<usize> {
        if self.nodes.is_empty() {
            return None;
        }
        self.find_from(0, path.strip_prefix('/').unwrap_or(path), method)
    }

    /// `rest` is the path after the segments this node stands for.
    fn find_from(&self, node: usize, rest: &str, method: &Method) -> Option<usize> {
        let n = &self.nodes[node];
        // A child needs this segment and still one more for its greedy variable.
        if let Some((seg, next)) = rest.split_once('/') {
            let lit = n
                .literals
                .binary_search_by(|(have, _)| (**have).cmp(seg))
                .ok()
                .and_then(|i| self.find_from(n.literals[i].1 as usize, next, method));
            if lit.is_some() {
                return lit;
            }
            if let (Some(v), false) = (n.var, seg.is_empty()) {
                if let Some(hit) = self.find_from(v as usize, next, method) {
                    return Some(hit);
                }
            }
        }
        // `{name+}` here takes the rest: one or more segments.
        let ends = n.ends.as_ref().filter(|_| !rest.is_empty())?;
        ends.methods
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, idx)| *idx)
            .or(ends.any)
    }
}

/// Property tests (proptest): route keys and selection on canonical paths.
#[cfg(test)]
#[path = "routing/props.rs"]
mod props;

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
    fn literal_beats_variable_among_greedy_routes_too() {
        let r = router(&["GET /{x}/b/{proxy+}", "GET /a/{y}/{proxy+}"]);
        assert_eq!(pick(&r, "GET", "/a/b/c").unwrap(), "GET /a/{y}/{proxy+}");
        assert_eq!(pick(&r, "GET", "/z/b/c").unwrap(), "GET /{x}/b/{proxy+}");
        // The literal branch fails further down: back to the variable.
        let r = router(&["GET /a/x/{proxy+}", "GET /{y}/b/{proxy+}"]);
        assert_eq!(pick(&r, "GET", "/a/b/c").unwrap(), "GET /{y}/b/{proxy+}");
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
        // `/pets/dog` has no segment left for the longer route's greedy variable.
        assert_eq!(pick(&r, "GET", "/pets/dog").unwrap(), "GET /pets/{proxy+}");
    }

    #[test]
    fn greedy_variable_beside_a_variable_at_the_same_position() {
        // matchit alone cannot hold these two; both must be served.
        let r = router(&["GET /a/{id}/{proxy+}", "ANY /a/{proxy+}"]);
        assert_eq!(pick(&r, "GET", "/a/x").unwrap(), "ANY /a/{proxy+}");
        assert_eq!(pick(&r, "POST", "/a/x").unwrap(), "ANY /a/{proxy+}");
        assert_eq!(pick(&r, "GET", "/a/x/y").unwrap(), "GET /a/{id}/{proxy+}");
        assert_eq!(pick(&r, "POST", "/a/x/y").unwrap(), "ANY /a/{proxy+}");
        let r = router(&["GET /a/{proxy+}", "GET /a/{id}/{proxy+}"]);
        assert_eq!(pick(&r, "GET", "/a/x").unwrap(), "GET /a/{proxy+}");
        assert_eq!(pick(&r, "GET", "/a/x/y/z").unwrap(), "GET /a/{id}/{proxy+}");
        let r = router(&["GET /a/{proxy+}", "GET /a/b/{proxy+}", "GET /a/{id}/c"]);
        assert_eq!(pick(&r, "GET", "/a/b/c").unwrap(), "GET /a/{id}/c");
        assert_eq!(pick(&r, "GET", "/a/b/d").unwrap(), "GET /a/b/{proxy+}");
        assert_eq!(pick(&r, "GET", "/a/z/d").unwrap(), "GET /a/{proxy+}");
        let r = router(&["GET /{x}", "GET /{x}/{proxy+}", "GET /{proxy+}"]);
        assert_eq!(pick(&r, "GET", "/a").unwrap(), "GET /{x}");
        assert_eq!(pick(&r, "GET", "/a/b").unwrap(), "GET /{x}/{proxy+}");
    }

    #[test]
    fn root_route_and_root_greedy() {
        let r = router(&["GET /", "GET /{proxy+}"]);
        assert_eq!(pick(&r, "GET", "/").unwrap(), "GET /");
        assert_eq!(pick(&r, "GET", "/x").unwrap(), "GET /{proxy+}");
    }

    #[test]
    fn exact_method_beats_any_at_equal_path() {
        let r = router(&["ANY /pets", "GET /pets"]);
        assert_eq!(pick(&r, "GET", "/pets").unwrap(), "GET /pets");
        assert_eq!(pick(&r, "POST", "/pets").unwrap(), "ANY /pets");
        let r = router(&["ANY /pets/{proxy+}", "GET /pets/{proxy+}"]);
        assert_eq!(pick(&r, "GET", "/pets/a").unwrap(), "GET /pets/{proxy+}");
        assert_eq!(pick(&r, "PUT", "/pets/a").unwrap(), "ANY /pets/{proxy+}");
    }

    #[test]
    fn more_specific_any_path_beats_less_specific_method_path() {
        let r = router(&["ANY /pets/dog", "GET /pets/{id}"]);
        assert_eq!(pick(&r, "GET", "/pets/dog").unwrap(), "ANY /pets/dog");
        assert_eq!(pick(&r, "GET", "/pets/cat").unwrap(), "GET /pets/{id}");
        let r = router(&["ANY /pets/dog/{proxy+}", "GET /pets/{proxy+}"]);
        assert_eq!(
            pick(&r, "GET", "/pets/dog/a").unwrap(),
            "ANY /pets/dog/{proxy+}"
        );
    }

    #[test]
    fn method_mismatch_falls_back_to_less_specific_path() {
        let r = router(&["GET /pets/dog", "POST /pets/{id}"]);
        assert_eq!(pick(&r, "POST", "/pets/dog").unwrap(), "POST /pets/{id}");
        assert_eq!(pick(&r, "DELETE", "/pets/dog"), None);
        let r = router(&["GET /pets/dog/{proxy+}", "POST /pets/{proxy+}"]);
        assert_eq!(
            pick(&r, "POST", "/pets/dog/a").unwrap(),
            "POST /pets/{proxy+}"
        );
        // A full path of another method does not hide a greedy route of this one.
        let r = router(&["GET /pets/dog", "POST /pets/{proxy+}"]);
        assert_eq!(
            pick(&r, "POST", "/pets/dog").unwrap(),
            "POST /pets/{proxy+}"
        );
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
    fn punctuation_in_literals_is_plain_text() {
        let r = router(&["GET /a/*", "GET /a/:x", "GET /a/{x}", "GET /v1/a.json"]);
        assert_eq!(pick(&r, "GET", "/a/*").unwrap(), "GET /a/*");
        assert_eq!(pick(&r, "GET", "/a/:x").unwrap(), "GET /a/:x");
        assert_eq!(pick(&r, "GET", "/a/y").unwrap(), "GET /a/{x}");
        assert_eq!(pick(&r, "GET", "/v1/a.json").unwrap(), "GET /v1/a.json");
    }

    #[test]
    fn params_carry_route_names() {
        let r = router(&[
            "GET /pets/{petId}/toys/{toy}",
            "GET /x/{name}",
            "ANY /p/{proxy+}",
            "GET /q/{id}/{rest+}",
        ]);
        let m = Method::GET;
        let s = r.select(&m, "/pets/7/toys/ball").unwrap();
        assert_eq!(s.params, vec![("petId", "7"), ("toy", "ball")]);
        let s = r.select(&m, "/x/a%20b/").unwrap();
        assert_eq!(s.params, vec![("name", "a%20b")]);
        let s = r.select(&Method::POST, "/p/a/b/c").unwrap();
        assert_eq!(s.params, vec![("proxy", "a/b/c")]);
        let s = r.select(&m, "/q/1/b/c").unwrap();
        assert_eq!(s.params, vec![("id", "1"), ("rest", "b/c")]);
    }

    #[test]
    fn duplicates_are_same_method_and_shape_only() {
        let build = |keys: &[&str]| {
            Router::build(
                keys.iter()
                    .map(|k| (RouteKey::parse(k).unwrap(), ()))
                    .collect(),
            )
            .err()
        };
        let dup = Some(BuildError::Duplicate {
            first: 0,
            second: 1,
        });
        assert_eq!(build(&["GET /pets/{id}", "GET /pets/{petId}"]), dup);
        assert_eq!(build(&["ANY /p/{a+}", "ANY /p/{b+}"]), dup);
        assert_eq!(build(&["$default", "$default"]), dup);
        assert_eq!(build(&["GET /pets/{id}", "ANY /pets/{id}"]), None);
        assert_eq!(build(&["GET /pets/{id}", "GET /pets/{id+}"]), None);
        assert_eq!(build(&["GET /a/{proxy+}", "GET /a/{id}/{proxy+}"]), None);
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
        assert!(RouteKey::parse("GET").is_err());
    }

    #[test]
    fn route_key_literals_are_restricted_to_what_can_match() {
        for bad in [
            "GET /a b",
            "GET /caf\u{e9}",
            "GET /x?y=1",
            "GET /x#y",
            "GET /x/../y",
            "GET /./y",
            "GET /a%20b",
            "GET /a\\b",
        ] {
            assert!(RouteKey::parse(bad).is_err(), "{bad} was accepted");
        }
        for good in [
            "GET /v1/items.json",
            "GET /a-b_c~d",
            "GET /a:b@c",
            "GET /!$&'()*+,;=",
            "GET /..a",
        ] {
            assert!(RouteKey::parse(good).is_ok(), "{good} was refused");
        }
        assert!(RouteKey::parse("GET /{a}/{a}")
            .unwrap_err()
            .contains("twice"));
        assert!(RouteKey::parse("GET /{a}/{a+}").is_err());
    }

    /// The AWS rules written as plainly as possible: every route that matches gets a
    /// score, the least score wins.
    pub(super) fn reference(keys: &[RouteKey], method: &Method, path: &str) -> Option<usize> {
        let path = match path.strip_suffix('/') {
            Some(p) if !p.is_empty() => p,
            _ => path,
        };
        let segs: Vec<&str> = match path.strip_prefix('/') {
            Some("") | None => Vec::new(),
            Some(p) => p.split('/').collect(),
        };
        // (greedy?, rank per segment, ANY?): the least wins.
        type Score = (bool, Vec<u8>, bool);
        let mut best: Option<(Score, usize)> = None;
        let mut default = None;
        for (i, key) in keys.iter().enumerate() {
            let RouteKey::Path {
                method: m,
                segments,
            } = key
            else {
                default = Some(i);
                continue;
            };
            if m.as_ref().is_some_and(|m| m != method) {
                continue;
            }
            let greedy = matches!(segments.last(), Some(Segment::Greedy(_)));
            let fixed = if greedy {
                &segments[..segments.len() - 1]
            } else {
                &segments[..]
            };
            let len_ok = if greedy {
                segs.len() > fixed.len() && !segs[fixed.len()..].join("/").is_empty()
            } else {
                segs.len() == fixed.len()
            };
            let each_ok = fixed.iter().zip(&segs).all(|(s, p)| match s {
                Segment::Literal(l) => l == p,
                _ => !p.is_empty(),
            });
            if !(len_ok && each_ok) {
                continue;
            }
            let ranks = segments
                .iter()
                .map(|s| match s {
                    Segment::Literal(_) => 0,
                    Segment::Var(_) => 1,
                    Segment::Greedy(_) => 2,
                })
                .collect();
            let score = (greedy, ranks, m.is_none());
            if best.as_ref().is_none_or(|(b, _)| score < *b) {
                best = Some((score, i));
            }
        }
        best.map(|(_, i)| i).or(default)
    }

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn agrees_with_a_linear_scan_of_the_aws_rules() {
        const WORDS: [&str; 3] = ["a", "b", "c"];
        const METHODS: [&str; 3] = ["GET", "POST", "ANY"];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..400 {
            // A random route set over a tiny alphabet, so that routes overlap a lot.
            let mut keys = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for _ in 0..rng.below(12) + 1 {
                if rng.below(20) == 0 {
                    if seen.insert("$default".to_string()) {
                        keys.push(RouteKey::Default);
                    }
                    continue;
                }
                let len = rng.below(4);
                let mut path = String::new();
                for i in 0..len {
                    path.push('/');
                    match rng.below(5) {
                        0 | 1 => path.push_str(WORDS[rng.below(3)]),
                        2 | 3 => path.push_str(&format!("{{v{i}}}")),
                        _ if i + 1 == len => path.push_str("{rest+}"),
                        _ => path.push_str(WORDS[rng.below(3)]),
                    }
                }
                if path.is_empty() {
                    path.push('/');
                }
                let key = RouteKey::parse(&format!("{} {path}", METHODS[rng.below(3)])).unwrap();
                if seen.insert(key.identity()) {
                    keys.push(key);
                }
            }
            let r = Router::build(keys.iter().cloned().zip(0..).collect()).unwrap();
            for _ in 0..60 {
                let mut path = String::new();
                for _ in 0..rng.below(5) {
                    path.push('/');
                    match rng.below(8) {
                        0 => {}
                        1 => path.push('d'),
                        _ => path.push_str(WORDS[rng.below(3)]),
                    }
                }
                if path.is_empty() || rng.below(6) == 0 {
                    path.push('/');
                }
                let method = [Method::GET, Method::POST, Method::PUT][rng.below(3)].clone();
                let got = r.select(&method, &path).map(|s| *s.route);
                let want = reference(&keys, &method, &path);
                assert_eq!(
                    got,
                    want,
                    "round {round}: {method} {path:?} over {:?}",
                    keys.iter().map(RouteKey::identity).collect::<Vec<_>>()
                );
            }
        }
    }
}
