//! YAML documents (CloudFormation/SAM templates, OpenAPI) read into `serde_json::Value`, so
//! every later step reads one tree whatever the source was written in.
//!
//! CloudFormation's short-form tags become their long form (`!Ref X` is `{"Ref": "X"}`,
//! `!Sub s` is `{"Fn::Sub": s}`, `!GetAtt A.B` is `{"Fn::GetAtt": ["A", "B"]}`), as the
//! CloudFormation user guide's "Intrinsic function reference" defines them. Each node's
//! source line is kept by JSON pointer (RFC 6901), so an error found in the tree can name
//! the line the user has to edit.
//!
//! Built on `saphyr-parser`'s event stream (a maintained, pure-Rust YAML 1.2 parser that keeps
//! local tags and the span of every event); scalars are resolved with YAML 1.2's core schema.

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use std::fmt;

/// Nesting deeper than this is refused: no real template comes close, and dropping a deep
/// `serde_json::Value` recurses.
const MAX_DEPTH: usize = 256;
/// Nodes an alias may add in total, so a "billion laughs" document is refused, not expanded.
const MAX_ALIAS_NODES: usize = 1_000_000;

/// A YAML document read into JSON, with the line of each node.
#[derive(Debug, Clone, Default)]
pub struct Yaml {
    pub value: Value,
    /// JSON pointer (`/Resources/Api/Properties`) -> 1-based line.
    lines: HashMap<String, usize>,
}

impl Yaml {
    /// The line of the node at `pointer`, or of its nearest ancestor that has one.
    pub fn line(&self, pointer: &str) -> Option<usize> {
        let mut p = pointer;
        loop {
            if let Some(l) = self.lines.get(p) {
                return Some(*l);
            }
            p = &p[..p.rfind('/')?];
        }
    }
}

/// Why a text is not a usable YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// 1-based; 0 when unknown.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for YamlError {}

/// Escapes one reference token of a JSON pointer (RFC 6901 section 3).
pub fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Reads the first (only) document of `text`.
pub fn from_str(text: &str) -> Result<Yaml, YamlError> {
    Builder::default().run(text)
}

enum Frame {
    Seq {
        items: Vec<Value>,
        pointer: String,
        tag: Option<Tag>,
        anchor: usize,
        line: usize,
    },
    Map {
        map: Map<String, Value>,
        /// A key read, its value not yet.
        key: Option<String>,
        pointer: String,
        tag: Option<Tag>,
        anchor: usize,
        line: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    lines: HashMap<String, usize>,
    anchors: HashMap<usize, Value>,
    alias_nodes: usize,
    documents: usize,
}

fn err(line: usize, message: impl Into<String>) -> YamlError {
    YamlError {
        line,
        message: message.into(),
    }
}

impl Builder {
    fn run(mut self, text: &str) -> Result<Yaml, YamlError> {
        for event in Parser::new_from_str(text) {
            let (event, span): (Event, Span) =
                event.map_err(|e| err(e.marker().line(), e.info().to_string()))?;
            let line = span.start.line();
            match event {
                Event::DocumentStart(_) => {
                    self.documents += 1;
                    if self.documents > 1 {
                        return Err(err(line, "a second YAML document (`---`) in one file"));
                    }
                }
                Event::Scalar(text, style, anchor, tag) => {
                    let tag = tag.map(|t| t.into_owned());
                    let value = match self.expecting_key() {
                        // Keys are always text: `200:` is the key "200".
                        true => Value::String(text.into_owned()),
                        false => scalar(&text, style, tag.as_ref()),
                    };
                    let value = apply_tag(value, tag.as_ref(), line)?;
                    self.complete(value, anchor, line)?;
                }
                Event::SequenceStart(anchor, tag) => {
                    let pointer = self.child_pointer(line)?;
                    self.push(Frame::Seq {
                        items: Vec::new(),
                        pointer,
                        tag: tag.map(|t| t.into_owned()),
                        anchor,
                        line,
                    })?;
                }
                Event::MappingStart(anchor, tag) => {
                    let pointer = self.child_pointer(line)?;
                    self.push(Frame::Map {
                        map: Map::new(),
                        key: None,
                        pointer,
                        tag: tag.map(|t| t.into_owned()),
                        anchor,
                        line,
                    })?;
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let (value, tag, anchor, line) = match self.stack.pop() {
                        Some(Frame::Seq {
                            items,
                            tag,
                            anchor,
                            line,
                            ..
                        }) => (Value::Array(items), tag, anchor, line),
                        Some(Frame::Map {
                            map,
                            key,
                            tag,
                            anchor,
                            line,
                            ..
                        }) => {
                            if key.is_some() {
                                return Err(err(line, "a mapping key without a value"));
                            }
                            (Value::Object(map), tag, anchor, line)
                        }
                        None => return Err(err(line, "unbalanced YAML structure")),
                    };
                    let value = apply_tag(value, tag.as_ref(), line)?;
                    self.complete(value, anchor, line)?;
                }
                Event::Alias(id) => {
                    let Some(v) = self.anchors.get(&id).cloned() else {
                        return Err(err(line, "an alias (`*name`) to an unknown anchor"));
                    };
                    self.alias_nodes += count_nodes(&v);
                    if self.alias_nodes > MAX_ALIAS_NODES {
                        return Err(err(line, "aliases expand to too many nodes"));
                    }
                    self.complete(v, 0, line)?;
                }
                Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            }
        }
        Ok(Yaml {
            value: self.root.unwrap_or(Value::Null),
            lines: self.lines,
        })
    }

    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }

    fn push(&mut self, frame: Frame) -> Result<(), YamlError> {
        if self.stack.len() >= MAX_DEPTH {
            let line = match &frame {
                Frame::Seq { line, .. } | Frame::Map { line, .. } => *line,
            };
            return Err(err(line, format!("nested deeper than {MAX_DEPTH} levels")));
        }
        self.stack.push(frame);
        Ok(())
    }

    /// The pointer of the node starting now, recording its line.
    fn child_pointer(&mut self, line: usize) -> Result<String, YamlError> {
        let pointer = match self.stack.last() {
            None => String::new(),
            Some(Frame::Seq { items, pointer, .. }) => format!("{pointer}/{}", items.len()),
            Some(Frame::Map {
                key: Some(k),
                pointer,
                ..
            }) => format!("{pointer}/{}", pointer_token(k)),
            Some(Frame::Map { key: None, .. }) => {
                return Err(err(
                    line,
                    "a mapping key must be a plain value, not a list or mapping",
                ))
            }
        };
        self.lines.entry(pointer.clone()).or_insert(line);
        Ok(pointer)
    }

    /// Places a finished node in its parent.
    fn complete(&mut self, value: Value, anchor: usize, line: usize) -> Result<(), YamlError> {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => {
                self.lines.entry(String::new()).or_insert(line);
                self.root = Some(value);
            }
            Some(Frame::Seq { items, pointer, .. }) => {
                self.lines
                    .entry(format!("{pointer}/{}", items.len()))
                    .or_insert(line);
                items.push(value);
            }
            Some(Frame::Map {
                map, key, pointer, ..
            }) => match key.take() {
                None => {
                    let Value::String(k) = value else {
                        return Err(err(line, "a mapping key must be text"));
                    };
                    if map.contains_key(&k) {
                        return Err(err(line, format!("duplicate key {k:?}")));
                    }
                    // The key's line is where a user looks for its value.
                    self.lines
                        .insert(format!("{pointer}/{}", pointer_token(&k)), line);
                    *key = Some(k);
                }
                Some(k) => {
                    map.insert(k, value);
                }
            },
        }
        Ok(())
    }
}

fn count_nodes(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(count_nodes).sum::<usize>(),
        Value::Object(o) => 1 + o.values().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

/// A scalar under YAML 1.2's core schema (section 10.3.2): plain `null`/`true`/numbers are
/// typed, anything quoted or tagged `!!str` is text.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Value {
    if let Some(t) = tag {
        if t.is_yaml_core_schema() && t.suffix == "str" {
            return Value::String(text.to_string());
        }
        // A CloudFormation tag on a scalar names something (`!Ref Name`, `!Sub text`).
        if !t.is_yaml_core_schema() {
            return Value::String(text.to_string());
        }
    }
    if style != ScalarStyle::Plain {
        return Value::String(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = number(text) {
        return Value::Number(n);
    }
    Value::String(text.to_string())
}

fn number(text: &str) -> Option<Number> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() {
        return None;
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok().map(Number::from);
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok().map(Number::from);
    }
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<i64>().ok().map(Number::from);
    }
    // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let (mantissa, exp) = match digits.find(['e', 'E']) {
        Some(i) => (&digits[..i], Some(&digits[i + 1..])),
        None => (digits, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = all_digits(int)
        && frac.is_none_or(all_digits)
        && (!int.is_empty() || frac.is_some_and(|f| !f.is_empty()));
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    if !mantissa_ok || !exp_ok {
        return None;
    }
    text.parse::<f64>().ok().and_then(Number::from_f64)
}

/// CloudFormation's short-form tags, each the long form's name.
const FN_TAGS: &[&str] = &[
    "And",
    "Base64",
    "Cidr",
    "Equals",
    "FindInMap",
    "GetAZs",
    "GetAtt",
    "If",
    "ImportValue",
    "Join",
    "Length",
    "Not",
    "Or",
    "Select",
    "Split",
    "Sub",
    "ToJsonString",
    "Transform",
];

/// Rewrites a tagged node into the long form CloudFormation defines for it.
fn apply_tag(value: Value, tag: Option<&Tag>, line: usize) -> Result<Value, YamlError> {
    let Some(tag) = tag else {
        return Ok(value);
    };
    if tag.is_yaml_core_schema() {
        return Ok(value);
    }
    if tag.handle != "!" {
        return Err(err(line, format!("unknown tag {tag}")));
    }
    let name = tag.suffix.as_str();
    let long = match name {
        "Ref" | "Condition" => name.to_string(),
        "GetAtt" => {
            // `!GetAtt Res.Attr.Sub` is `["Res", "Attr.Sub"]`.
            let value = match value {
                Value::String(s) => match s.split_once('.') {
                    Some((res, attr)) => Value::Array(vec![res.into(), attr.into()]),
                    None => {
                        return Err(err(
                            line,
                            format!("!GetAtt {s:?} needs the form Resource.Attribute"),
                        ))
                    }
                },
                other => other,
            };
            return Ok(single("Fn::GetAtt", value));
        }
        n if FN_TAGS.contains(&n) => format!("Fn::{n}"),
        _ => {
            let hint =
                crate::config::closest(name, FN_TAGS.iter().copied().chain(["Ref", "Condition"]))
                    .map(|c| format!(" (did you mean !{c}?)"))
                    .unwrap_or_default();
            return Err(err(line, format!("unknown tag !{name}{hint}")));
        }
    };
    Ok(single(&long, value))
}

fn single(key: &str, value: Value) -> Value {
    let mut m = Map::new();
    m.insert(key.to_string(), value);
    Value::Object(m)
}

#[cfg(test)]
#[path = "yaml_tests.rs"]
mod tests;
