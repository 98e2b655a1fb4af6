//! Runbooks as job files: a Markdown document (`.md`) or a Jupyter notebook (`.ipynb`).
//!
//! Both are read into the same position-carrying tree as YAML job files ([`Node`]) and then
//! converted by the same code ([`crate::convert::job`]), so every job and step key works and
//! is validated the same way; only the way the tree is built differs.
//!
//! **Markdown.** Optional YAML front matter (`---` … `---` at the top) holds the job keys (id,
//! params, approval, notify, triggers…). Each fenced code block whose language is `sh`,
//! `bash` or `python` becomes a step, in document order, each needing the one before it
//! unless its own `needs=` says otherwise. The info string may carry the step's keys in braces:
//! ```` ```sh {id=restart dry_run=echo-only timeout=5m} ````; a value is a bare word (read as a
//! boolean or an integer when it is one) or a double-quoted string, and every step key is
//! accepted as if it were written in YAML. `sh`/`bash` blocks are `sh:` steps; `python`
//! blocks are `exec: [python3, -c, CODE]` steps (parameters reach them as `ROTA_PARAM_<NAME>`
//! environment variables, and `{{ … }}` in them is a template, as in `sh:`). Other blocks are
//! prose. The first `# Title` is the job's description unless the front matter gives one; the
//! job id defaults to the file name's stem.
//!
//! **Notebook.** The notebook's `metadata.rota` mapping holds the job keys; the job's one step,
//! `notebook`, runs the notebook itself. Its parameters are inferred from the cell tagged
//! `parameters` (`name = literal` lines, as papermill infers them), each passed to the
//! notebook as `{{ params.<name> }}`; `metadata.rota.params` may refine or add parameters.
//! A problem in a cell is reported at that cell's position in the `.ipynb`, naming `cell N`
//! (0-based, as Jupyter's APIs count).

use std::path::Path;

use crate::convert::{Cx, get, is_valid_job_id};
use crate::tree::{self, Key, Kind, Node, Pos};

/// The code languages of a Markdown runbook that become steps.
pub const STEP_LANGUAGES: &[&str] = &["sh", "bash", "python"];

/// One fenced code block of a Markdown runbook.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Its language (the info string's first word), empty when none.
    pub language: String,
    /// The `key=value` attributes of its info string, in order, with their 1-based columns.
    pub attrs: Vec<(String, AttrValue, usize)>,
    /// The block's code.
    pub code: String,
    /// 1-based line of the opening fence.
    pub line: usize,
    /// 1-based column of the info string (just after the fence).
    pub info_col: usize,
    /// The prose (Markdown source) between the previous block and this one, trimmed.
    pub prose: String,
}

/// A value of an info-string attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A bare word.
    Bare(String),
    /// A double-quoted string (escapes `\"` and `\\` resolved).
    Quoted(String),
}

/// A heading of a Markdown runbook.
#[derive(Debug, Clone, PartialEq)]
pub struct Heading {
    /// 1 for `#`, 2 for `##`…
    pub level: u8,
    /// Its text.
    pub text: String,
    /// 1-based line.
    pub line: usize,
}

/// A Markdown runbook read into its parts (before any conversion to a job).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Markdown {
    /// The front matter's YAML text and the 1-based line it starts at.
    pub front_matter: Option<(String, usize)>,
    /// The byte offset where the document after the front matter starts (0 without one).
    pub body_start: usize,
    /// Every heading, in order.
    pub headings: Vec<Heading>,
    /// Every fenced code block, in order.
    pub blocks: Vec<Block>,
    /// The prose after the last block, trimmed.
    pub trailing_prose: String,
    /// Problems found in info strings: 1-based line and column, message.
    pub problems: Vec<(usize, usize, String)>,
}

impl Markdown {
    /// The blocks that are steps.
    pub fn steps(&self) -> impl Iterator<Item = &Block> {
        self.blocks
            .iter()
            .filter(|b| STEP_LANGUAGES.contains(&b.language.as_str()))
    }
}

/// Line starts of `source`, to turn byte offsets into 1-based line:col.
struct Lines(Vec<usize>);

impl Lines {
    fn new(source: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        Lines(starts)
    }

    fn pos(&self, source: &str, offset: usize) -> Pos {
        let line = self.0.partition_point(|&s| s <= offset).max(1);
        let start = self.0[line - 1];
        let col = source
            .get(start..offset.min(source.len()))
            .map_or(1, |s| s.chars().count() + 1);
        Pos { line, col }
    }
}

/// Reads a Markdown runbook's front matter, headings and fenced code blocks.
pub fn read_markdown(source: &str) -> Markdown {
    use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};
    let lines = Lines::new(source);
    let (front_matter, body_start) = match front_matter(source) {
        Some((yaml, body_start)) => (Some((yaml, 2)), body_start),
        None => (None, 0),
    };
    let mut out = Markdown {
        front_matter,
        body_start,
        ..Markdown::default()
    };
    let mut prose_from = body_start;
    let mut heading: Option<(u8, String, usize)> = None;
    let mut block: Option<Block> = None;
    let parser = Parser::new_ext(source, Options::ENABLE_YAML_STYLE_METADATA_BLOCKS);
    for (event, range) in parser.into_offset_iter() {
        if range.start < body_start {
            continue;
        }
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                heading = Some((
                    level as u8,
                    String::new(),
                    lines.pos(source, range.start).line,
                ));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((level, text, line)) = heading.take() {
                    out.headings.push(Heading {
                        level,
                        text: text.trim().to_owned(),
                        line,
                    });
                }
            }
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                let at = lines.pos(source, range.start);
                let fence_line = &source[range.start..];
                let fence_len = fence_line
                    .chars()
                    .take_while(|c| *c == '`' || *c == '~')
                    .count();
                let info_col = at.col + fence_len;
                let (language, attrs) = info_string(&info, at.line, info_col, &mut out.problems);
                let prose = source
                    .get(prose_from..range.start)
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                block = Some(Block {
                    language,
                    attrs,
                    code: String::new(),
                    line: at.line,
                    info_col,
                    prose,
                });
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some(b) = block.take() {
                    out.blocks.push(b);
                }
                prose_from = range.end;
            }
            Event::Text(text) | Event::Code(text) => {
                if let Some(b) = block.as_mut() {
                    b.code.push_str(&text);
                } else if let Some((_, t, _)) = heading.as_mut() {
                    t.push_str(&text);
                }
            }
            _ => {}
        }
    }
    out.trailing_prose = source
        .get(prose_from.max(body_start)..)
        .unwrap_or_default()
        .trim()
        .to_owned();
    out
}

/// Whether `source` (a file of `format`) says it is a runbook rather than a document or
/// notebook that happens to sit among job files: a Markdown file with front matter, a
/// notebook whose metadata holds a `rota` mapping. Any other format is a job file anyway.
/// A server's job directory loads only these (a `README.md`, or the notebook a job's step
/// runs, is not a job).
pub fn declares_runbook(format: crate::parse::Format, source: &str) -> bool {
    use crate::parse::Format;
    match format {
        Format::Markdown => front_matter(source).is_some(),
        Format::Notebook => serde_json::from_str::<serde_json::Value>(source)
            .is_ok_and(|nb| nb.pointer("/metadata/rota").is_some_and(|r| r.is_object())),
        _ => true,
    }
}

/// The YAML between a leading `---` line and the next `---` (or `...`) line, and the byte
/// offset of the line after that closing one.
fn front_matter(source: &str) -> Option<(String, usize)> {
    let rest = source
        .strip_prefix("---\n")
        .or_else(|| source.strip_prefix("---\r\n"))?;
    let opening = source.len() - rest.len();
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        let bare = line.trim_end();
        if bare == "---" || bare == "..." {
            return Some((rest[..offset].to_owned(), opening + offset + line.len()));
        }
        offset += line.len();
    }
    None
}

/// Splits an info string such as `sh {id=restart confirm="Restart prod?"}` into its language
/// and attributes; `col` is the info string's 1-based column.
fn info_string(
    info: &str,
    line: usize,
    col: usize,
    problems: &mut Vec<(usize, usize, String)>,
) -> (String, Vec<(String, AttrValue, usize)>) {
    let language: String = info
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '{')
        .collect();
    let mut attrs = Vec::new();
    let Some(open) = info.find('{') else {
        return (language, attrs);
    };
    let chars: Vec<(usize, char)> = info[open + 1..].char_indices().collect();
    let base = info[..open + 1].chars().count();
    let mut i = 0;
    let problem = |problems: &mut Vec<(usize, usize, String)>, at: usize, message: String| {
        problems.push((line, col + base + at, message));
    };
    loop {
        while i < chars.len() && chars[i].1.is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            problem(
                problems,
                i,
                "unclosed `{` in the code block's info string".to_owned(),
            );
            break;
        }
        if chars[i].1 == '}' {
            break;
        }
        let key_at = i;
        let mut key = String::new();
        while i < chars.len() && !matches!(chars[i].1, '=' | '}') && !chars[i].1.is_whitespace() {
            key.push(chars[i].1);
            i += 1;
        }
        if i >= chars.len() || chars[i].1 != '=' {
            problem(
                problems,
                key_at,
                format!("expected `{key}=value` in the code block's info string"),
            );
            while i < chars.len() && !chars[i].1.is_whitespace() && chars[i].1 != '}' {
                i += 1;
            }
            continue;
        }
        i += 1;
        let value = if i < chars.len() && chars[i].1 == '"' {
            i += 1;
            let mut text = String::new();
            let mut closed = false;
            while i < chars.len() {
                match chars[i].1 {
                    '\\' if i + 1 < chars.len() => {
                        text.push(chars[i + 1].1);
                        i += 2;
                    }
                    '"' => {
                        closed = true;
                        i += 1;
                        break;
                    }
                    c => {
                        text.push(c);
                        i += 1;
                    }
                }
            }
            if !closed {
                problem(
                    problems,
                    key_at,
                    format!("unclosed quoted value of `{key}` in the code block's info string"),
                );
            }
            AttrValue::Quoted(text)
        } else {
            let mut text = String::new();
            while i < chars.len() && !chars[i].1.is_whitespace() && chars[i].1 != '}' {
                text.push(chars[i].1);
                i += 1;
            }
            AttrValue::Bare(text)
        };
        attrs.push((key, value, col + base + key_at));
    }
    (language, attrs)
}

fn key(name: &str, pos: Pos) -> Key {
    Key {
        name: name.to_owned(),
        pos,
    }
}

fn str_node(text: &str, pos: Pos) -> Node {
    Node {
        kind: Kind::Str(text.to_owned()),
        pos,
    }
}

/// The job id a runbook gets from its file name, when that is a valid id.
fn default_id(origin: &str) -> Option<String> {
    Path::new(origin)
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase().replace(['_', ' '], "-"))
        .filter(|s| is_valid_job_id(s))
}

/// The report a runbook's runs keep when its keys do not say: an HTML one, since a runbook
/// is written for people and its record is part of it (SPEC §7); `report: none` opts out.
const RUNBOOK_REPORT: &str = "html";

/// Fills in the job keys a runbook has by default and its own keys left out: its id, from
/// the file name, and the report its runs keep.
fn runbook_defaults(entries: &mut Vec<(Key, Node)>, origin: &str, start: Pos) {
    if get(entries, "id").is_none()
        && let Some(id) = default_id(origin)
    {
        entries.push((key("id", start), str_node(&id, start)));
    }
    if get(entries, "report").is_none() {
        entries.push((key("report", start), str_node(RUNBOOK_REPORT, start)));
    }
}

/// Builds the job tree of a Markdown runbook, reporting its problems into `cx`.
pub(crate) fn markdown_job(cx: &mut Cx, source: &str, origin: &str) -> Option<Node> {
    let doc = read_markdown(source);
    for (line, col, message) in &doc.problems {
        cx.err(
            Pos {
                line: *line,
                col: *col,
            },
            message.clone(),
        );
    }
    let start = Pos { line: 1, col: 1 };
    let mut entries: Vec<(Key, Node)> = match &doc.front_matter {
        None => Vec::new(),
        Some((yaml, first_line)) => {
            let mut errors = Vec::new();
            let mut docs = tree::from_yaml(yaml, &mut errors);
            let shift = |pos: Pos| Pos {
                line: pos.line + first_line - 1,
                col: pos.col,
            };
            for e in errors {
                cx.err(shift(e.pos), e.message);
            }
            match docs.pop() {
                None => Vec::new(),
                Some(mut node) => {
                    crate::parse::shift_positions(&mut node, &shift);
                    match node.kind {
                        Kind::Map(entries) => entries,
                        Kind::Null => Vec::new(),
                        _ => {
                            cx.err(
                                node.pos,
                                format!(
                                    "expected the job's keys (a mapping) in the front matter, found {}",
                                    node.describe()
                                ),
                            );
                            return None;
                        }
                    }
                }
            }
        }
    };
    if let Some((k, _)) = entries.iter().find(|(k, _)| k.name == "steps") {
        cx.err(
            k.pos,
            "a Markdown runbook's steps are its ```sh, ```bash and ```python code blocks, not a `steps:` key",
        );
        return None;
    }
    runbook_defaults(&mut entries, origin, start);
    if get(&entries, "description").is_none()
        && let Some(title) = doc.headings.iter().find(|h| h.level == 1)
    {
        let at = Pos {
            line: title.line,
            col: 1,
        };
        entries.push((key("description", at), str_node(&title.text, at)));
    }
    let steps: Vec<Node> = doc
        .steps()
        .enumerate()
        .map(|(n, b)| block_step(b, n))
        .collect();
    if steps.is_empty() {
        cx.err(
            start,
            "a Markdown runbook needs at least one ```sh, ```bash or ```python code block (its steps)",
        );
        return None;
    }
    let steps = chain_steps(steps);
    entries.push((
        key("steps", start),
        Node {
            kind: Kind::Seq(steps),
            pos: start,
        },
    ));
    Some(Node {
        kind: Kind::Map(entries),
        pos: start,
    })
}

/// The step of the `n`th (0-based) step block: its kind from the language, its keys from the
/// info string's attributes, each at its own position.
fn block_step(block: &Block, n: usize) -> Node {
    let fence = Pos {
        line: block.line,
        col: block.info_col,
    };
    let code_at = Pos {
        line: block.line + 1,
        col: 1,
    };
    let mut entries: Vec<(Key, Node)> = Vec::new();
    if !block.attrs.iter().any(|(k, _, _)| k == "id") {
        entries.push((
            key("id", fence),
            str_node(&format!("step-{}", n + 1), fence),
        ));
    }
    let kind = if block.language == "python" {
        let argv = ["python3", "-c", block.code.as_str()]
            .iter()
            .map(|a| str_node(a, code_at))
            .collect();
        (
            key("exec", fence),
            Node {
                kind: Kind::Seq(argv),
                pos: code_at,
            },
        )
    } else {
        (key("sh", fence), str_node(&block.code, code_at))
    };
    entries.push(kind);
    for (name, value, col) in &block.attrs {
        let at = Pos {
            line: block.line,
            col: *col,
        };
        let value_at = Pos {
            line: block.line,
            col: col + name.chars().count() + 1,
        };
        entries.push((key(name, at), attr_node(name, value, value_at)));
    }
    Node {
        kind: Kind::Map(entries),
        pos: fence,
    }
}

/// An attribute's value as a tree node: a bare `true`/`false` or integer is typed as YAML
/// would type it, a bare `needs=a,b` is a list, anything else a string.
fn attr_node(name: &str, value: &AttrValue, pos: Pos) -> Node {
    let kind = match value {
        AttrValue::Quoted(text) => Kind::Str(text.clone()),
        AttrValue::Bare(text) if name == "needs" => Kind::Seq(
            text.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| str_node(s, pos))
                .collect(),
        ),
        AttrValue::Bare(text) => match text.as_str() {
            "true" => Kind::Bool(true),
            "false" => Kind::Bool(false),
            _ => text
                .parse::<i64>()
                .map_or_else(|_| Kind::Str(text.clone()), Kind::Int),
        },
    };
    Node { kind, pos }
}

/// Makes each step of the main pass need the one before it unless it says what it needs.
/// Rollback steps (named by another block's `rollback=`) and `finally=true` steps are left
/// out of the chain: the run decides when they run.
fn chain_steps(mut steps: Vec<Node>) -> Vec<Node> {
    let str_of = |entries: &[(Key, Node)], name: &str| match get(entries, name).map(|n| &n.kind) {
        Some(Kind::Str(text)) => Some(text.clone()),
        _ => None,
    };
    let rollbacks: Vec<String> = steps
        .iter()
        .filter_map(|step| match &step.kind {
            Kind::Map(entries) => str_of(entries, "rollback"),
            _ => None,
        })
        .collect();
    let mut previous: Option<String> = None;
    for step in &mut steps {
        let Kind::Map(entries) = &mut step.kind else {
            continue;
        };
        let id = str_of(entries, "id");
        let finally = matches!(
            get(entries, "finally").map(|n| &n.kind),
            Some(Kind::Bool(true))
        );
        if finally || id.as_ref().is_some_and(|id| rollbacks.contains(id)) {
            continue;
        }
        if let Some(prev) = &previous
            && get(entries, "needs").is_none()
        {
            let pos = step.pos;
            entries.insert(
                1,
                (
                    key("needs", pos),
                    Node {
                        kind: Kind::Seq(vec![str_node(prev, pos)]),
                        pos,
                    },
                ),
            );
        }
        previous = id;
    }
    steps
}

/// A parameter inferred from a notebook's `parameters` cell.
#[derive(Debug, Clone, PartialEq)]
pub struct InferredParam {
    /// Its name.
    pub name: String,
    /// Its job parameter type (`string`, `int`, `float`, `bool`, `list`).
    pub type_name: &'static str,
    /// Its default, `None` when the cell assigns `None` (the parameter is then required).
    pub default: Option<serde_json::Value>,
}

/// Infers the parameters of a `parameters` cell's Python source: each `name = literal`
/// (or `name: type = literal`) line, a trailing `# comment` allowed. A line assigning
/// something else is a problem: (0-based line in the cell, message).
pub fn infer_params(source: &str) -> (Vec<InferredParam>, Vec<(usize, String)>) {
    let mut params = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in source.lines().enumerate() {
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') || line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((target, value)) = text.split_once('=') else {
            continue;
        };
        let name = target.split(':').next().unwrap_or_default().trim();
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        match python_literal(strip_comment(value.trim())) {
            Some((type_name, default)) => params.push(InferredParam {
                name: name.to_owned(),
                type_name,
                default,
            }),
            None => problems.push((
                i,
                format!(
                    "cannot infer parameter `{name}` from `{}` (expected a number, a quoted string, True, False, None or a list)",
                    value.trim()
                ),
            )),
        }
    }
    (params, problems)
}

fn strip_comment(value: &str) -> &str {
    let mut quote: Option<char> = None;
    for (i, c) in value.char_indices() {
        match (quote, c) {
            (None, '#') => return value[..i].trim_end(),
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    value
}

type Literal = (&'static str, Option<serde_json::Value>);

fn python_literal(text: &str) -> Option<Literal> {
    use serde_json::Value as J;
    match text {
        "True" => return Some(("bool", Some(J::Bool(true)))),
        "False" => return Some(("bool", Some(J::Bool(false)))),
        "None" => return Some(("string", None)),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Some(("int", Some(J::from(i))));
    }
    if let Ok(f) = text.parse::<f64>()
        && f.is_finite()
    {
        return Some(("float", serde_json::Number::from_f64(f).map(J::Number)));
    }
    for q in ['"', '\''] {
        if text.len() >= 2 && text.starts_with(q) && text.ends_with(q) {
            let inner = &text[1..text.len() - 1];
            if !inner.contains(q) {
                return Some(("string", Some(J::String(inner.to_owned()))));
            }
        }
    }
    if text.starts_with('[') && text.ends_with(']') {
        let items = text[1..text.len() - 1]
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| python_literal(s).and_then(|(_, v)| v))
            .collect::<Option<Vec<_>>>()?;
        return Some(("list", Some(J::Array(items))));
    }
    None
}

/// The tag of the cell whose assignments are a notebook's parameters.
pub const PARAMETERS_TAG: &str = "parameters";

/// Builds the job tree of a notebook runbook, reporting its problems into `cx`.
pub(crate) fn notebook_job(cx: &mut Cx, source: &str, origin: &str) -> Option<Node> {
    let mut errors = Vec::new();
    let docs = tree::from_yaml(source, &mut errors);
    for e in errors {
        cx.err(e.pos, format!("not a notebook (JSON): {}", e.message));
    }
    let start = Pos { line: 1, col: 1 };
    let doc = docs.into_iter().next()?;
    let root = cx.map(&doc, "a notebook")?;
    let mut entries: Vec<(Key, Node)> = match get(root, "metadata").map(|m| &m.kind) {
        Some(Kind::Map(meta)) => match get(meta, "rota") {
            None => Vec::new(),
            Some(rota) => cx.map(rota, "`metadata.rota` (the job's keys)")?.to_vec(),
        },
        _ => Vec::new(),
    };
    if let Some((k, _)) = entries.iter().find(|(k, _)| k.name == "steps") {
        cx.err(
            k.pos,
            "a notebook runbook's one step runs the notebook: `metadata.rota` holds no `steps`",
        );
        return None;
    }
    let params = notebook_params(cx, root);
    merge_params(&mut entries, params, start);
    runbook_defaults(&mut entries, origin, start);
    let file_name = Path::new(origin)
        .file_name()
        .map_or_else(|| origin.to_owned(), |n| n.to_string_lossy().into_owned());
    let names: Vec<String> = match get(&entries, "params").map(|n| &n.kind) {
        Some(Kind::Map(p)) => p.iter().map(|(k, _)| k.name.clone()).collect(),
        _ => Vec::new(),
    };
    let step_params = names
        .iter()
        .map(|n| {
            (
                key(n, start),
                str_node(&format!("{{{{ params.{n} }}}}"), start),
            )
        })
        .collect();
    let step = Node {
        kind: Kind::Map(vec![
            (key("id", start), str_node("notebook", start)),
            (
                key("notebook", start),
                Node {
                    kind: Kind::Map(vec![
                        (key("path", start), str_node(&file_name, start)),
                        (
                            key("params", start),
                            Node {
                                kind: Kind::Map(step_params),
                                pos: start,
                            },
                        ),
                    ]),
                    pos: start,
                },
            ),
        ]),
        pos: start,
    };
    entries.push((
        key("steps", start),
        Node {
            kind: Kind::Seq(vec![step]),
            pos: start,
        },
    ));
    Some(Node {
        kind: Kind::Map(entries),
        pos: start,
    })
}

/// The index and node of the first cell tagged `parameters`.
pub(crate) fn parameters_cell(root: &[(Key, Node)]) -> Option<(usize, &Node)> {
    let Some(Kind::Seq(cells)) = get(root, "cells").map(|n| &n.kind) else {
        return None;
    };
    cells.iter().enumerate().find(|(_, cell)| {
        let Kind::Map(fields) = &cell.kind else {
            return false;
        };
        let Some(Kind::Map(meta)) = get(fields, "metadata").map(|n| &n.kind) else {
            return false;
        };
        matches!(get(meta, "tags").map(|n| &n.kind),
            Some(Kind::Seq(tags)) if tags.iter().any(|t| t.kind == Kind::Str(PARAMETERS_TAG.into())))
    })
}

/// A cell's `source`, which nbformat allows as one string or a list of lines.
pub(crate) fn cell_source(cell: &Node) -> String {
    let Kind::Map(fields) = &cell.kind else {
        return String::new();
    };
    match get(fields, "source").map(|n| &n.kind) {
        Some(Kind::Str(s)) => s.clone(),
        Some(Kind::Seq(lines)) => lines
            .iter()
            .filter_map(|l| match &l.kind {
                Kind::Str(s) => Some(s.as_str()),
                _ => None,
            })
            .collect(),
        _ => String::new(),
    }
}

/// The job parameters inferred from the notebook's `parameters` cell, as `params:` entries.
fn notebook_params(cx: &mut Cx, root: &[(Key, Node)]) -> Vec<(Key, Node)> {
    let Some((index, cell)) = parameters_cell(root) else {
        return Vec::new();
    };
    let (params, problems) = infer_params(&cell_source(cell));
    for (line, message) in problems {
        cx.err(
            cell.pos,
            format!("cell {index} (parameters), line {}: {message}", line + 1),
        );
    }
    params
        .into_iter()
        .map(|p| {
            let at = cell.pos;
            let mut fields = vec![(key("type", at), str_node(p.type_name, at))];
            if let Some(default) = &p.default {
                fields.push((key("default", at), json_node(default, at)));
            }
            (
                key(&p.name, at),
                Node {
                    kind: Kind::Map(fields),
                    pos: at,
                },
            )
        })
        .collect()
}

fn json_node(value: &serde_json::Value, pos: Pos) -> Node {
    use serde_json::Value as J;
    let kind = match value {
        J::Null => Kind::Null,
        J::Bool(b) => Kind::Bool(*b),
        J::Number(n) => n
            .as_i64()
            .map_or_else(|| Kind::Float(n.as_f64().unwrap_or_default()), Kind::Int),
        J::String(s) => Kind::Str(s.clone()),
        J::Array(items) => Kind::Seq(items.iter().map(|v| json_node(v, pos)).collect()),
        J::Object(map) => Kind::Map(
            map.iter()
                .map(|(k, v)| (key(k, pos), json_node(v, pos)))
                .collect(),
        ),
    };
    Node { kind, pos }
}

/// Puts the inferred parameters under the job's `params:`, those `metadata.rota.params`
/// declares winning.
fn merge_params(entries: &mut Vec<(Key, Node)>, inferred: Vec<(Key, Node)>, start: Pos) {
    if inferred.is_empty() {
        return;
    }
    match entries.iter_mut().find(|(k, _)| k.name == "params") {
        Some((
            _,
            Node {
                kind: Kind::Map(declared),
                ..
            },
        )) => {
            for (k, v) in inferred {
                if !declared.iter().any(|(d, _)| d.name == k.name) {
                    declared.push((k, v));
                }
            }
        }
        Some(_) => {}
        None => entries.push((
            key("params", start),
            Node {
                kind: Kind::Map(inferred),
                pos: start,
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_string_attributes_keep_their_columns() {
        let mut problems = Vec::new();
        let (lang, attrs) = info_string(
            r#"sh {id=restart confirm="Restart \"prod\"?" retry=2}"#,
            3,
            4,
            &mut problems,
        );
        assert_eq!(lang, "sh");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            attrs[0],
            ("id".into(), AttrValue::Bare("restart".into()), 8)
        );
        assert_eq!(
            attrs[1].1,
            AttrValue::Quoted("Restart \"prod\"?".into()),
            "{attrs:?}"
        );
        assert_eq!(attrs[2].0, "retry");
    }

    #[test]
    fn unclosed_braces_are_reported() {
        let mut problems = Vec::new();
        info_string("sh {id=x", 1, 4, &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn parameters_are_inferred_like_papermill() {
        let (params, problems) = infer_params(
            "x = 1\nname: str = 'a' # who\nratio=0.5\nflag = True\nreq = None\nbad = f(2)\n",
        );
        let names: Vec<_> = params
            .iter()
            .map(|p| (p.name.as_str(), p.type_name))
            .collect();
        assert_eq!(
            names,
            [
                ("x", "int"),
                ("name", "string"),
                ("ratio", "float"),
                ("flag", "bool"),
                ("req", "string")
            ]
        );
        assert_eq!(params[1].default, Some(serde_json::json!("a")));
        assert_eq!(params[4].default, None);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, 5);
    }
}
