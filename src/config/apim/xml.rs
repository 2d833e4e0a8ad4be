//! APIM policy documents (`policy.xml`) read into plain elements with their line numbers.
//! `roxmltree` keeps each node's byte position, which is how every later error names the
//! line the user edits. Nothing here knows what a policy means (`policies.rs` does).

use crate::config::ConfigError;

/// The four sections of a policy document, in the order APIM runs them.
pub const SECTIONS: [&str; 4] = ["inbound", "backend", "outbound", "on-error"];

/// One element as written: name, attributes, text and children, and its 1-based line.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub name: String,
    pub line: u32,
    pub attrs: Vec<(String, String)>,
    /// The element's own text (trimmed), e.g. `<value>v1</value>`.
    pub text: String,
    pub children: Vec<Element>,
    /// The policy fragment a statement was spliced from (`include-fragment`); `None` when
    /// it is the document's own. Messages name this file.
    pub source: Option<String>,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The children named `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// A parsed `policy.xml`: each section's statements (`<base/>` included, in place).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyDoc {
    /// For messages: `apis/users/policy.xml`.
    pub file: String,
    /// Indexed as [`SECTIONS`]; `None` when the section is absent.
    pub sections: [Option<Vec<Element>>; 4],
}

/// Parses `text` (the file `file`); a malformed document or a stray top-level element is an
/// error naming the line.
pub fn parse(file: &str, text: &str) -> Result<PolicyDoc, ConfigError> {
    let text = escape_expressions(text);
    let doc = roxmltree::Document::parse(&text).map_err(|e| {
        let pos = e.pos();
        ConfigError::new(
            file,
            format!("line {}", pos.row),
            format!("not well-formed XML: {e}"),
            "fix the XML syntax",
        )
    })?;
    let root = doc.root_element();
    let line_of = |n: roxmltree::Node| doc.text_pos_at(n.range().start).row;
    if root.tag_name().name() != "policies" {
        return Err(ConfigError::new(
            file,
            format!("line {}", line_of(root)),
            format!("the document is <{}>", root.tag_name().name()),
            "a policy document is <policies> with <inbound>, <backend>, <outbound>, <on-error>",
        ));
    }
    let mut out = PolicyDoc {
        file: file.to_string(),
        ..PolicyDoc::default()
    };
    for section in root.children().filter(|n| n.is_element()) {
        let name = section.tag_name().name();
        let Some(i) = SECTIONS.iter().position(|s| *s == name) else {
            return Err(ConfigError::new(
                file,
                format!("line {}", line_of(section)),
                format!("<{name}> is not a section of <policies>"),
                "use <inbound>, <backend>, <outbound> or <on-error>",
            ));
        };
        if out.sections[i].is_some() {
            return Err(ConfigError::new(
                file,
                format!("line {}", line_of(section)),
                format!("<{name}> appears twice"),
                "keep one",
            ));
        }
        out.sections[i] = Some(
            section
                .children()
                .filter(|n| n.is_element())
                .map(|n| element(&doc, n))
                .collect(),
        );
    }
    Ok(out)
}

/// A policy fragment (`policy fragments/NAME/policy.xml`, `<fragment>`): its statements,
/// each marked as coming from `file`.
pub fn parse_fragment(file: &str, text: &str) -> Result<Vec<Element>, ConfigError> {
    let text = escape_expressions(text);
    let doc = roxmltree::Document::parse(&text).map_err(|e| {
        ConfigError::new(
            file,
            format!("line {}", e.pos().row),
            format!("not well-formed XML: {e}"),
            "fix the XML syntax",
        )
    })?;
    let root = doc.root_element();
    if root.tag_name().name() != "fragment" {
        return Err(ConfigError::new(
            file,
            format!("line {}", doc.text_pos_at(root.range().start).row),
            format!("the document is <{}>", root.tag_name().name()),
            "a policy fragment is <fragment> holding policy statements",
        ));
    }
    Ok(root
        .children()
        .filter(|n| n.is_element())
        .map(|n| Element {
            source: Some(file.to_string()),
            ..element(&doc, n)
        })
        .collect())
}

/// APIM writes policy expressions unescaped inside XML (`value="@(ctx.Headers["A"])"`,
/// `@{ if (a < b && c) ... }`): its own reader takes `@(...)` and `@{...}` as opaque. So
/// does this pass, escaping the XML-significant characters inside each expression (C#
/// strings and character literals skipped when matching brackets) before the XML parser
/// sees them. No line breaks are added: lines in messages stay the user's.
fn escape_expressions(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("@(") && !text.contains("@{") {
        return std::borrow::Cow::Borrowed(text);
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 64);
    let mut i = 0;
    let mut copied = 0;
    while i + 1 < b.len() {
        if b[i..].starts_with(b"<!--") {
            i += text[i..].find("-->").map_or(b.len() - i, |e| e + 3);
            continue;
        }
        if b[i] == b'@' && (b[i + 1] == b'(' || b[i + 1] == b'{') {
            let end = expression_end(b, i + 1);
            out.push_str(&text[copied..i]);
            for c in text[i..end].chars() {
                match c {
                    '"' => out.push_str("&quot;"),
                    '\'' => out.push_str("&apos;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '&' => out.push_str("&amp;"),
                    c => out.push(c),
                }
            }
            copied = end;
            i = end;
            continue;
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    std::borrow::Cow::Owned(out)
}

/// The index just past the bracket matching `b[open]` (`(` or `{`), or the end of the text.
fn expression_end(b: &[u8], open: usize) -> usize {
    let (up, down) = if b[open] == b'(' {
        (b'(', b')')
    } else {
        (b'{', b'}')
    };
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            c if c == up => depth += 1,
            c if c == down => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            b'"' => {
                // A verbatim string (@"...") doubles its quotes; a regular one escapes with \.
                let verbatim = i > 0 && b[i - 1] == b'@';
                i += 1;
                while i < b.len() {
                    match b[i] {
                        b'\\' if !verbatim => i += 1,
                        b'"' if verbatim && b.get(i + 1) == Some(&b'"') => i += 1,
                        b'"' => break,
                        _ => {}
                    }
                    i += 1;
                }
            }
            b'\'' => {
                // A character literal: 'x' or '\x'.
                i += if b.get(i + 1) == Some(&b'\\') { 3 } else { 2 };
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}

fn element(doc: &roxmltree::Document, n: roxmltree::Node) -> Element {
    let text: String = n
        .children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text())
        .collect();
    Element {
        name: n.tag_name().name().to_string(),
        line: doc.text_pos_at(n.range().start).row,
        attrs: n
            .attributes()
            .map(|a| (a.name().to_string(), a.value().to_string()))
            .collect(),
        text: text.trim().to_string(),
        children: n
            .children()
            .filter(|c| c.is_element())
            .map(|c| element(doc, c))
            .collect(),
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_elements_and_lines() {
        let doc = parse(
            "p.xml",
            "<policies>\n  <inbound>\n    <base />\n    <set-header name=\"A\">\n      <value>v</value>\n    </set-header>\n  </inbound>\n  <outbound/>\n</policies>",
        )
        .unwrap();
        let inbound = doc.sections[0].as_ref().unwrap();
        assert_eq!(inbound[0].name, "base");
        assert_eq!(inbound[1].line, 4);
        assert_eq!(inbound[1].attr("name"), Some("A"));
        assert_eq!(inbound[1].children[0].text, "v");
        assert!(doc.sections[1].is_none());
        assert_eq!(doc.sections[2], Some(vec![]));
    }

    #[test]
    fn expressions_may_hold_quotes_and_xml_characters_as_in_apim() {
        let doc = parse(
            "p.xml",
            "<policies>\n<inbound>\n<set-header name=\"A\"><value>@(context.Request.Headers.GetValueOrDefault(\"X\", \"\"))</value></set-header>\n<choose><when condition=\"@(1 < 2 && \"a)\" != '\"')\"/></choose>\n</inbound>\n</policies>",
        )
        .unwrap();
        let inbound = doc.sections[0].as_ref().unwrap();
        assert_eq!(
            inbound[0].children[0].text,
            "@(context.Request.Headers.GetValueOrDefault(\"X\", \"\"))"
        );
        assert_eq!(inbound[1].line, 4);
        assert_eq!(
            inbound[1].children[0].attr("condition"),
            Some("@(1 < 2 && \"a)\" != '\"')")
        );
    }

    #[test]
    fn malformed_and_foreign_documents_name_the_line() {
        let e = parse("p.xml", "<policies>\n<inbound>\n</policies>").unwrap_err();
        assert!(e.field.starts_with("line "), "{e}");
        let e = parse("p.xml", "<policies>\n  <inbond/>\n</policies>").unwrap_err();
        assert_eq!(e.field, "line 2");
        assert!(e.problem.contains("inbond"));
    }
}
