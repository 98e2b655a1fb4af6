//! Parameter inference from the `parameters` cell, matching `papermill --help-notebook`:
//! name, inferred type (annotation or `# type:` comment), default text and help comment.

use serde::Serialize;
use serde_json::Value;

use crate::document;

/// One inferred parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InferredParam {
    /// Variable name.
    pub name: String,
    /// Type from the annotation or `# type:` comment; `"None"` when unknown.
    pub inferred_type_name: String,
    /// The default value's source text.
    pub default: String,
    /// The trailing comment.
    pub help: String,
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Parse one flattened definition like papermill's Python `PARAMETER_PATTERN`.
fn parse_definition(def: &str) -> Option<InferredParam> {
    let mut chars = def.char_indices().peekable();
    let (_, first) = chars.next()?;
    if !is_word(first) {
        return None;
    }
    let name_end = def.find(|c: char| !is_word(c)).unwrap_or(def.len());
    let name = &def[..name_end];
    let rest = def[name_end..].trim_start();
    let (annotation, after_eq) = if let Some(r) = rest.strip_prefix(':') {
        let r = r.trim_start();
        let r = r.strip_prefix(['"', '\'']).unwrap_or(r);
        let eq = r.find('=')?;
        let mut ann = r[..eq].trim_end();
        ann = ann.strip_suffix(['"', '\'']).unwrap_or(ann);
        let ok = ann.chars().next().is_some_and(is_word)
            && ann
                .chars()
                .all(|c| is_word(c) || matches!(c, '[' | ']' | ',') || c.is_whitespace());
        if !ok {
            return None;
        }
        (Some(ann.trim().to_string()), &r[eq + 1..])
    } else {
        (None, rest.strip_prefix('=')?)
    };
    let after_eq = after_eq.trim_start();
    let (value, comment) = match after_eq.find('#') {
        Some(h) => (&after_eq[..h], Some(&after_eq[h + 1..])),
        None => (after_eq, None),
    };
    let mut type_comment = None;
    let mut help = String::new();
    if let Some(c) = comment {
        let c = c.trim_start();
        let c = if let Some(t) = c.strip_prefix("type:") {
            let t = t.trim_start();
            let end = t.find(char::is_whitespace).unwrap_or(t.len());
            if end > 0 {
                type_comment = Some(t[..end].to_string());
            }
            t[end..].trim_start()
        } else {
            c
        };
        help = c.trim().to_string();
    }
    Some(InferredParam {
        name: name.trim().to_string(),
        inferred_type_name: annotation
            .filter(|a| !a.is_empty())
            .or(type_comment)
            .unwrap_or_else(|| "None".into()),
        default: value.trim().to_string(),
        help,
    })
}

fn flatten(acc: &[&str]) -> String {
    let mut flat = String::new();
    if let Some((last, init)) = acc.split_last() {
        for line in init {
            match line.find('#') {
                Some(p) => flat.push_str(line[..p].trim()),
                None => flat.push_str(line.trim()),
            }
        }
        flat.push_str(last.trim());
    }
    flat
}

/// Infer parameters from Python source (a `parameters` cell).
pub fn infer_python(source: &str) -> (Vec<InferredParam>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut groups = Vec::new();
    let mut acc: Vec<&str> = Vec::new();
    for (i, line) in source.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let nequal = line.matches('=').count();
        if nequal > 0 {
            groups.push(flatten(&acc));
            acc.clear();
            if nequal > 1 {
                warnings.push(format!("Unable to parse line {} '{line}'.", i + 1));
                continue;
            }
        }
        acc.push(line);
    }
    groups.push(flatten(&acc));
    let params = groups
        .iter()
        .filter(|g| !g.is_empty())
        .filter_map(|g| parse_definition(g))
        .collect();
    (params, warnings)
}

/// Infer the parameters of a notebook (empty when it has no `parameters` cell or its
/// language has no introspection).
pub fn infer(nb: &Value) -> (Vec<InferredParam>, Vec<String>) {
    let Some(idx) = document::first_tagged(nb, document::PARAMETERS_TAG) else {
        return (Vec::new(), Vec::new());
    };
    let lang = document::language(nb, None).unwrap_or_default();
    let kernel = document::kernel_name(nb, None).unwrap_or_default();
    let python = matches!(lang.as_str(), "python") || kernel == "pysparkkernel";
    if !python {
        return (
            Vec::new(),
            vec![format!(
                "Translator for '{lang}' language does not support parameter introspection."
            )],
        );
    }
    infer_python(&document::source(&document::cells(nb)[idx]))
}

/// Format like `papermill --help-notebook`'s parameter lines.
pub fn render_human(params: &[InferredParam]) -> String {
    let mut out = String::new();
    for p in params {
        let ty = if p.inferred_type_name == "None" {
            "Unknown type"
        } else {
            &p.inferred_type_name
        };
        let definition = format!("  {}: {ty} (default {})", p.name, p.default);
        if definition.chars().count() > 30 {
            out.push_str(&definition);
            if !p.help.is_empty() {
                out.push('\n');
                out.push_str(&" ".repeat(34));
                out.push_str(&p.help);
            }
        } else {
            out.push_str(&format!("{definition:<34}{}", p.help));
        }
        out.push('\n');
    }
    out
}
