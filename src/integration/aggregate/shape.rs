//! What one backend's answer looks like in the aggregated one: `Target` picks a sub-value,
//! `Allow`/`Deny` keep or drop dotted paths, `Mapping` renames top-level fields, `Group`
//! nests the result under one key. All of it compiled at load; per request only
//! `serde_json::Value` moves happen, no parsing.

use serde_json::{Map, Value};

/// The key a JSON array answer is placed under when its backend has no `Group` (KrakenD's
/// `collection`).
pub const COLLECTION: &str = "collection";

/// A dotted path (`address.city`), split once at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(Vec<String>);

impl Path {
    /// `Err`: why `text` is no path (an empty segment).
    pub fn parse(text: &str) -> Result<Path, String> {
        let segs: Vec<String> = text.split('.').map(str::to_string).collect();
        if segs.iter().any(String::is_empty) {
            return Err(format!("{text:?} is not a dotted path (an empty segment)"));
        }
        Ok(Path(segs))
    }

    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// The value at this path, if every step is an object holding the next key.
    pub fn get<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        self.0.iter().try_fold(v, |v, k| v.as_object()?.get(k))
    }

    fn take(&self, v: &mut Value) -> Option<Value> {
        let (last, parents) = self.0.split_last()?;
        let mut cur = v;
        for k in parents {
            cur = cur.as_object_mut()?.get_mut(k)?;
        }
        cur.as_object_mut()?.remove(last)
    }

    /// Puts `value` at this path in `out`, creating the objects on the way.
    fn put(&self, out: &mut Map<String, Value>, value: Value) {
        let Some((last, parents)) = self.0.split_last() else {
            return;
        };
        let mut cur = out;
        for k in parents {
            let slot = cur
                .entry(k.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            let Value::Object(m) = slot else { return };
            cur = m;
        }
        cur.insert(last.clone(), value);
    }
}

/// One backend's shaping, compiled.
#[derive(Debug, Clone, Default)]
pub struct Shape {
    pub target: Option<Path>,
    pub allow: Vec<Path>,
    pub deny: Vec<Path>,
    /// `(from, to)`, top-level field names.
    pub mapping: Vec<(String, String)>,
    pub group: Option<String>,
}

/// Why an answer could not take part in the aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeError {
    /// A scalar (number, string, ...) without a `Group` to put it under.
    NotAnObject,
}

impl Shape {
    /// The fields this backend adds to the aggregate, in the contract's order: `Target`,
    /// `Allow`/`Deny`, `Mapping`, `Group`. Arrays keep their order, each object element
    /// shaped; without a `Group` an array lands under [`COLLECTION`].
    pub fn apply(&self, mut v: Value) -> Result<Map<String, Value>, ShapeError> {
        if let Some(t) = &self.target {
            v = t.take(&mut v).unwrap_or_else(|| Value::Object(Map::new()));
        }
        let v = match v {
            Value::Object(m) => Value::Object(self.fields(m)),
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(|i| match i {
                        Value::Object(m) => Value::Object(self.fields(m)),
                        other => other,
                    })
                    .collect(),
            ),
            other => other,
        };
        match (&self.group, v) {
            (Some(g), v) => Ok(Map::from_iter([(g.clone(), v)])),
            (None, Value::Object(m)) => Ok(m),
            (None, a @ Value::Array(_)) => Ok(Map::from_iter([(COLLECTION.to_string(), a)])),
            (None, _) => Err(ShapeError::NotAnObject),
        }
    }

    /// `Allow`, `Deny` and `Mapping` on one object.
    fn fields(&self, mut m: Map<String, Value>) -> Map<String, Value> {
        if !self.allow.is_empty() {
            let mut src = Value::Object(m);
            let mut kept = Map::new();
            for p in &self.allow {
                if let Some(v) = p.take(&mut src) {
                    p.put(&mut kept, v);
                }
            }
            m = kept;
        }
        if !self.deny.is_empty() {
            let mut v = Value::Object(m);
            for p in &self.deny {
                p.take(&mut v);
            }
            m = match v {
                Value::Object(m) => m,
                _ => Map::new(),
            };
        }
        for (from, to) in &self.mapping {
            if let Some(v) = m.remove(from) {
                m.insert(to.clone(), v);
            }
        }
        m
    }
}

/// Merges one backend's fields into the answer: a later backend's field replaces an
/// earlier one's of the same name (backends merge in the order they are listed).
pub fn merge(into: &mut Map<String, Value>, fields: Map<String, Value>) {
    into.extend(fields);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(p: &[&str]) -> Vec<Path> {
        p.iter().map(|p| Path::parse(p).unwrap()).collect()
    }

    #[test]
    fn paths_reject_empty_segments() {
        assert!(Path::parse("a..b").is_err());
        assert!(Path::parse("").is_err());
        assert!(Path::parse(".a").is_err());
        assert_eq!(
            Path::parse("a.b").unwrap().get(&json!({"a": {"b": 1}})),
            Some(&json!(1))
        );
    }

    #[test]
    fn plain_objects_pass_through() {
        let s = Shape::default();
        let m = s.apply(json!({"id": 1, "name": "x"})).unwrap();
        assert_eq!(Value::Object(m), json!({"id": 1, "name": "x"}));
    }

    #[test]
    fn target_then_allow_then_mapping_then_group() {
        let s = Shape {
            target: Path::parse("data").ok(),
            allow: paths(&["id", "address.city", "missing.x"]),
            deny: vec![],
            mapping: vec![("id".into(), "userId".into())],
            group: Some("user".into()),
        };
        let m = s
            .apply(json!({"data": {"id": 7, "pw": "s", "address": {"city": "Oslo", "zip": "1"}}, "meta": 1}))
            .unwrap();
        assert_eq!(
            Value::Object(m),
            json!({"user": {"userId": 7, "address": {"city": "Oslo"}}})
        );
    }

    #[test]
    fn deny_drops_nested_fields() {
        let s = Shape {
            deny: paths(&["secret", "a.b", "nope.deeper"]),
            ..Shape::default()
        };
        let m = s
            .apply(json!({"secret": 1, "a": {"b": 2, "c": 3}, "keep": true}))
            .unwrap();
        assert_eq!(Value::Object(m), json!({"a": {"c": 3}, "keep": true}));
    }

    #[test]
    fn a_missing_target_is_an_empty_object() {
        let s = Shape {
            target: Path::parse("data.inner").ok(),
            ..Shape::default()
        };
        assert!(s.apply(json!({"data": 1})).unwrap().is_empty());
    }

    #[test]
    fn collections_go_under_group_or_collection() {
        let s = Shape {
            deny: paths(&["x"]),
            ..Shape::default()
        };
        let m = s.apply(json!([{"x": 1, "y": 2}, 3])).unwrap();
        assert_eq!(Value::Object(m), json!({"collection": [{"y": 2}, 3]}));
        let g = Shape {
            group: Some("orgs".into()),
            ..Shape::default()
        };
        let m = g.apply(json!([1, 2])).unwrap();
        assert_eq!(Value::Object(m), json!({"orgs": [1, 2]}));
    }

    #[test]
    fn scalars_need_a_group() {
        let s = Shape::default();
        assert_eq!(s.apply(json!(42)), Err(ShapeError::NotAnObject));
        let g = Shape {
            group: Some("n".into()),
            ..Shape::default()
        };
        assert_eq!(Value::Object(g.apply(json!(42)).unwrap()), json!({"n": 42}));
    }

    #[test]
    fn later_backends_win_on_the_same_field() {
        let mut out = Map::new();
        merge(
            &mut out,
            Shape::default().apply(json!({"a": 1, "b": 1})).unwrap(),
        );
        merge(
            &mut out,
            Shape::default().apply(json!({"b": 2, "c": 2})).unwrap(),
        );
        assert_eq!(Value::Object(out), json!({"a": 1, "b": 2, "c": 2}));
    }
}
