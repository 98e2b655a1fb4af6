//! A small spanned document tree that YAML, JSON and TOML job files are all read into first.
//!
//! Each node and each mapping key carries the 1-based line and column where it starts, so the
//! conversion to the model (`parse`) can point at the offending key or value. YAML (and JSON,
//! which is read as YAML 1.2) is built from `saphyr-parser` events, which keeps duplicate keys
//! visible; TOML comes from `toml_edit`, whose byte spans are turned into line:col.

use std::collections::HashMap;

use crate::limits::{MAX_DEPTH, MAX_NODES};

use saphyr_parser::{Event, Parser, ScalarStyle, Tag};

/// A 1-based position in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub name: String,
    pub pos: Pos,
}

/// One node of the document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub kind: Kind,
    pub pos: Pos,
}

/// The node's value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in document order; duplicates were reported and dropped while building.
    Map(Vec<(Key, Node)>),
}

impl Node {
    /// How the value is described in "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Null => "null".to_owned(),
            Kind::Bool(b) => format!("boolean {b}"),
            Kind::Int(i) => format!("integer {i}"),
            Kind::Float(f) => format!("float {f}"),
            Kind::Str(s) => {
                let mut shown: String = s.chars().take(40).collect();
                if shown.len() < s.len() {
                    shown.push('…');
                }
                format!("string {shown:?}")
            }
            Kind::Seq(_) => "a list".to_owned(),
            Kind::Map(_) => "a mapping".to_owned(),
        }
    }

    /// The value as JSON (parameter defaults, notebook parameters).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.kind {
            Kind::Null => J::Null,
            Kind::Bool(b) => J::Bool(*b),
            Kind::Int(i) => J::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Kind::Str(s) => J::String(s.clone()),
            Kind::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A syntax-level problem found while building the tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TreeError {
    pub pos: Pos,
    pub message: String,
}

enum Frame {
    Seq(Pos, Vec<Node>, usize),
    /// Entries so far, the line each key was first defined at (a lookup per key keeps the
    /// duplicate check linear in the mapping's size), the key awaiting its value, the anchor.
    Map(
        Pos,
        Vec<(Key, Node)>,
        HashMap<String, usize>,
        Option<Key>,
        usize,
    ),
}

/// Reads a YAML (or JSON) stream into its documents. Syntax errors stop the reading (the
/// parser cannot continue); duplicate keys and non-string keys are reported and reading goes on.
pub(crate) fn from_yaml(source: &str, errors: &mut Vec<TreeError>) -> Vec<Node> {
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut node_count = 0usize;
    for event in Parser::new_from_str(source) {
        let (event, span) = match event {
            Ok(e) => e,
            Err(err) => {
                let m = err.marker();
                errors.push(TreeError {
                    pos: Pos {
                        line: m.line().max(1),
                        col: m.col() + 1,
                    },
                    message: format!("YAML syntax error: {}", err.info()),
                });
                return docs;
            }
        };
        let pos = Pos {
            line: span.start.line().max(1),
            col: span.start.col() + 1,
        };
        let finished = match event {
            Event::Scalar(value, style, anchor, tag) => {
                let node = Node {
                    kind: scalar(&value, style, tag.as_deref()),
                    pos,
                };
                if anchor > 0 {
                    anchors.insert(anchor, node.clone());
                }
                Some((node, anchor))
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(node) => {
                    let mut copy = node.clone();
                    copy.pos = pos;
                    node_count += count_nodes(&copy);
                    Some((copy, 0))
                }
                None => {
                    errors.push(TreeError {
                        pos,
                        message: "unknown YAML alias".to_owned(),
                    });
                    Some((
                        Node {
                            kind: Kind::Null,
                            pos,
                        },
                        0,
                    ))
                }
            },
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _)
                if stack.len() >= MAX_DEPTH =>
            {
                let _ = anchor;
                errors.push(TreeError {
                    pos,
                    message: format!(
                        "nesting deeper than {MAX_DEPTH} levels (the limit of a job file)"
                    ),
                });
                return docs;
            }
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq(pos, Vec::new(), anchor));
                None
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map(pos, Vec::new(), HashMap::new(), None, anchor));
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq(p, items, anchor)) => Some((
                    Node {
                        kind: Kind::Seq(items),
                        pos: p,
                    },
                    anchor,
                )),
                Some(Frame::Map(p, entries, _, _, anchor)) => Some((
                    Node {
                        kind: Kind::Map(entries),
                        pos: p,
                    },
                    anchor,
                )),
                None => None,
            },
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => None,
        };
        let Some((node, anchor)) = finished else {
            continue;
        };
        node_count += 1;
        if node_count > MAX_NODES {
            errors.push(TreeError {
                pos,
                message: format!("document too large (more than {MAX_NODES} values)"),
            });
            return docs;
        }
        if anchor > 0 && matches!(node.kind, Kind::Seq(_) | Kind::Map(_)) {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => docs.push(node),
            Some(Frame::Seq(_, items, _)) => items.push(node),
            Some(Frame::Map(_, entries, first_lines, pending, _)) => match pending.take() {
                None => {
                    // This node is a key.
                    let name = match &node.kind {
                        Kind::Str(s) => s.clone(),
                        Kind::Int(i) => i.to_string(),
                        Kind::Bool(b) => b.to_string(),
                        Kind::Float(f) => f.to_string(),
                        Kind::Null => "null".to_owned(),
                        Kind::Seq(_) | Kind::Map(_) => {
                            errors.push(TreeError {
                                pos: node.pos,
                                message: "mapping keys must be strings, found ".to_owned()
                                    + &node.describe(),
                            });
                            String::new()
                        }
                    };
                    *pending = Some(Key {
                        name,
                        pos: node.pos,
                    });
                }
                Some(key) => {
                    if let Some(first_line) = first_lines.get(&key.name) {
                        errors.push(TreeError {
                            pos: key.pos,
                            message: format!(
                                "duplicate key `{}` (first defined at line {first_line})",
                                key.name
                            ),
                        });
                    } else {
                        first_lines.insert(key.name.clone(), key.pos.line);
                        entries.push((key, node));
                    }
                }
            },
        }
    }
    docs
}

fn count_nodes(node: &Node) -> usize {
    match &node.kind {
        Kind::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Kind::Map(entries) => 1 + entries.iter().map(|(_, v)| count_nodes(v)).sum::<usize>(),
        _ => 1,
    }
}

/// Resolves a scalar by the YAML 1.2 core schema: only plain scalars can be null, booleans or
/// numbers; quoted and block scalars are strings. A `!!str` tag forces a string.
fn scalar(value: &str, style: ScalarStyle, tag: Option<&Tag>) -> Kind {
    let forced_str = tag.is_some_and(|t| t.is_yaml_core_schema() && t.suffix == "str");
    if style != ScalarStyle::Plain || forced_str {
        return Kind::Str(value.to_string());
    }
    let v = value;
    match v {
        "" | "~" | "null" | "Null" | "NULL" => return Kind::Null,
        "true" | "True" | "TRUE" => return Kind::Bool(true),
        "false" | "False" | "FALSE" => return Kind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Kind::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Kind::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Kind::Float(f64::NAN),
        _ => {}
    }
    if let Some(hex) = v.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return Kind::Int(i);
        }
    } else if let Some(oct) = v.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Kind::Int(i);
    }
    let numeric = v
        .strip_prefix(['-', '+'])
        .unwrap_or(v)
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || c == '.');
    if numeric && v.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) {
        if v.chars().skip(1).all(|c| c.is_ascii_digit())
            && let Ok(i) = v.parse::<i64>()
        {
            return Kind::Int(i);
        }
        if let Ok(f) = v.parse::<f64>() {
            return Kind::Float(f);
        }
    }
    Kind::Str(v.to_owned())
}

/// Converts byte offsets in `source` to 1-based line:col (columns count characters).
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(source: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    pub fn pos(&self, source: &str, offset: usize) -> Pos {
        let offset = offset.min(source.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let col = source
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        Pos { line, col }
    }
}

/// Reads a TOML document into a tree. A syntax error (including a duplicate key, which TOML
/// itself forbids) is returned as one error.
pub(crate) fn from_toml(source: &str) -> Result<Node, TreeError> {
    let index = LineIndex::new(source);
    let at = |span: Option<std::ops::Range<usize>>, fallback: Pos| {
        span.map_or(fallback, |r| index.pos(source, r.start))
    };
    let doc = toml_edit::ImDocument::parse(source).map_err(|e| {
        let pos = at(e.span(), Pos { line: 1, col: 1 });
        let message = e.message().trim().to_owned();
        TreeError {
            pos,
            message: format!("TOML syntax error: {message}"),
        }
    })?;
    let top = Pos { line: 1, col: 1 };
    let node = toml_table(doc.as_table(), top, &at);
    // toml_edit bounds its own recursion, but dotted keys add levels on top of nested
    // arrays and inline tables: hold TOML to the same depth as YAML and JSON.
    if let Some(pos) = too_deep(&node, 1) {
        return Err(TreeError {
            pos,
            message: format!("nesting deeper than {MAX_DEPTH} levels (the limit of a job file)"),
        });
    }
    Ok(node)
}

/// The position of the first list or mapping nested deeper than [`MAX_DEPTH`], if any.
fn too_deep(node: &Node, depth: usize) -> Option<Pos> {
    let children: Box<dyn Iterator<Item = &Node>> = match &node.kind {
        Kind::Seq(items) => Box::new(items.iter()),
        Kind::Map(entries) => Box::new(entries.iter().map(|(_, v)| v)),
        _ => return None,
    };
    if depth > MAX_DEPTH {
        return Some(node.pos);
    }
    children
        .into_iter()
        .find_map(|child| too_deep(child, depth + 1))
}

fn toml_table<F>(table: &toml_edit::Table, pos: Pos, at: &F) -> Node
where
    F: Fn(Option<std::ops::Range<usize>>, Pos) -> Pos,
{
    let pos = at(table.span(), pos);
    let mut entries = Vec::new();
    for (name, _) in table.iter() {
        let Some((key, item)) = table.get_key_value(name) else {
            continue;
        };
        let key_pos = at(key.span(), pos);
        let value = match item {
            toml_edit::Item::None => continue,
            toml_edit::Item::Value(v) => toml_value(v, key_pos, at),
            toml_edit::Item::Table(t) => toml_table(t, key_pos, at),
            toml_edit::Item::ArrayOfTables(a) => {
                let apos = at(a.span(), key_pos);
                Node {
                    kind: Kind::Seq(a.iter().map(|t| toml_table(t, apos, at)).collect()),
                    pos: apos,
                }
            }
        };
        entries.push((
            Key {
                name: name.to_owned(),
                pos: key_pos,
            },
            value,
        ));
    }
    Node {
        kind: Kind::Map(entries),
        pos,
    }
}

fn toml_value<F>(value: &toml_edit::Value, fallback: Pos, at: &F) -> Node
where
    F: Fn(Option<std::ops::Range<usize>>, Pos) -> Pos,
{
    use toml_edit::Value as V;
    let pos = at(value.span(), fallback);
    let kind = match value {
        V::String(s) => Kind::Str(s.value().clone()),
        V::Integer(i) => Kind::Int(*i.value()),
        V::Float(f) => Kind::Float(*f.value()),
        V::Boolean(b) => Kind::Bool(*b.value()),
        V::Datetime(d) => Kind::Str(d.value().to_string()),
        V::Array(a) => Kind::Seq(a.iter().map(|v| toml_value(v, pos, at)).collect()),
        V::InlineTable(t) => {
            let mut entries = Vec::new();
            for (name, _) in t.iter() {
                let Some((key, item)) = t.get_key_value(name) else {
                    continue;
                };
                let Some(item) = item.as_value() else {
                    continue;
                };
                let key_pos = at(key.span(), pos);
                entries.push((
                    Key {
                        name: name.to_owned(),
                        pos: key_pos,
                    },
                    toml_value(item, key_pos, at),
                ));
            }
            Kind::Map(entries)
        }
    };
    Node { kind, pos }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> (Vec<Node>, Vec<TreeError>) {
        let mut errors = Vec::new();
        let docs = from_yaml(s, &mut errors);
        (docs, errors)
    }

    #[test]
    fn yaml_scalars_follow_the_core_schema() {
        let (docs, errors) = yaml("[1, -2, 0x1f, 1.5, true, ~, '3', abc, 1e3, 2026-01-01]");
        assert!(errors.is_empty());
        let Kind::Seq(items) = &docs[0].kind else {
            panic!("not a list: {:?}", docs[0])
        };
        let kinds: Vec<&Kind> = items.iter().map(|n| &n.kind).collect();
        assert_eq!(
            kinds,
            [
                &Kind::Int(1),
                &Kind::Int(-2),
                &Kind::Int(31),
                &Kind::Float(1.5),
                &Kind::Bool(true),
                &Kind::Null,
                &Kind::Str("3".into()),
                &Kind::Str("abc".into()),
                &Kind::Float(1000.0),
                &Kind::Str("2026-01-01".into()),
            ]
        );
    }

    #[test]
    fn yaml_keys_carry_their_positions_and_duplicates_are_reported() {
        let (docs, errors) = yaml("a: 1\nb:\n  c: x\na: 2\n");
        let Kind::Map(entries) = &docs[0].kind else {
            panic!("not a map")
        };
        assert_eq!(entries[1].0.pos, Pos { line: 2, col: 1 });
        let Kind::Map(inner) = &entries[1].1.kind else {
            panic!("not a map")
        };
        assert_eq!(inner[0].0.pos, Pos { line: 3, col: 3 });
        assert_eq!(inner[0].1.pos, Pos { line: 3, col: 6 });
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].pos, Pos { line: 4, col: 1 });
    }

    #[test]
    fn toml_spans_become_line_and_column() {
        let node = from_toml("x = 1\n[t]\nname = \"é\"\nother = 2\n").expect("valid toml");
        let Kind::Map(entries) = &node.kind else {
            panic!("not a map")
        };
        let Kind::Map(t) = &entries[1].1.kind else {
            panic!("not a table")
        };
        assert_eq!(t[1].0.pos, Pos { line: 4, col: 1 });
        assert_eq!(t[0].1.pos, Pos { line: 3, col: 8 });
    }

    #[test]
    fn line_index_counts_characters() {
        let s = "ab\néé x";
        let idx = LineIndex::new(s);
        assert_eq!(
            idx.pos(s, s.find('x').unwrap_or(0)),
            Pos { line: 2, col: 4 }
        );
    }
}
