//! Parameters papermill's way: typed values, `-p`/`-r`/`-f`/`-y` parsing, and rendering
//! into the kernel's language (Python, R, Julia, Bash) for the `injected-parameters` cell.

use serde_json::Value;

use crate::error::{NotebookError, Result};

/// A parameter value: the JSON/YAML types plus the floats JSON cannot hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// `None` / `null`.
    None,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float (NaN and infinities included).
    Float(f64),
    /// A string.
    Str(String),
    /// A list.
    List(Vec<Param>),
    /// A mapping, in insertion order.
    Dict(Vec<(String, Param)>),
}

impl Param {
    /// From JSON.
    pub fn from_json(v: &Value) -> Param {
        match v {
            Value::Null => Param::None,
            Value::Bool(b) => Param::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Param::Int(i),
                None => Param::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Param::Str(s.clone()),
            Value::Array(a) => Param::List(a.iter().map(Param::from_json).collect()),
            Value::Object(m) => Param::Dict(
                m.iter()
                    .map(|(k, v)| (k.clone(), Param::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// To JSON, as recorded in `metadata.papermill.parameters` (non-finite floats become null).
    pub fn to_json(&self) -> Value {
        match self {
            Param::None => Value::Null,
            Param::Bool(b) => Value::Bool(*b),
            Param::Int(i) => Value::from(*i),
            Param::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Param::Str(s) => Value::String(s.clone()),
            Param::List(l) => Value::Array(l.iter().map(Param::to_json).collect()),
            Param::Dict(d) => {
                Value::Object(d.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }
}

/// Ordered parameters: setting an existing name keeps its position (like a Python dict).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(pub Vec<(String, Param)>);

impl Params {
    /// Set `name`, replacing an earlier value in place.
    pub fn set(&mut self, name: impl Into<String>, value: Param) {
        let name = name.into();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// Merge a mapping (from YAML or JSON) into these parameters.
    pub fn merge(&mut self, other: Param) -> Result<()> {
        match other {
            Param::Dict(d) => {
                for (k, v) in d {
                    self.set(k, v);
                }
                Ok(())
            }
            Param::None => Ok(()),
            _ => Err(NotebookError::BadParameters(
                "parameters YAML must be a mapping".into(),
            )),
        }
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `name` is set.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// As a JSON object.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        )
    }
}

/// Resolve a `-p NAME VALUE` string like papermill: `True`/`False`/`None`, int, float, str.
pub fn resolve_typed(value: &str) -> Param {
    match value {
        "True" => return Param::Bool(true),
        "False" => return Param::Bool(false),
        "None" => return Param::None,
        _ => {}
    }
    let t = value.trim();
    let digits = t.replace('_', "");
    let valid_underscores = !t.starts_with('_') && !t.ends_with('_') && !t.contains("__");
    if valid_underscores && let Ok(i) = digits.parse::<i64>() {
        return Param::Int(i);
    }
    if valid_underscores && !t.is_empty() {
        let lower = digits.to_ascii_lowercase();
        let body = lower.trim_start_matches(['+', '-']);
        let special = matches!(body, "inf" | "infinity" | "nan");
        let numeric = body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '+' | '-'))
            && body.chars().any(|c| c.is_ascii_digit());
        if (special || numeric)
            && let Ok(f) = lower.parse::<f64>()
        {
            return Param::Float(f);
        }
    }
    Param::Str(value.to_string())
}

/// Parse YAML text (a mapping) into parameters.
pub fn parse_yaml(text: &str) -> Result<Param> {
    use saphyr::LoadableYamlNode as _;
    let docs = saphyr::Yaml::load_from_str(text)
        .map_err(|e| NotebookError::BadParameters(format!("YAML: {e}")))?;
    match docs.first() {
        None => Ok(Param::None),
        Some(doc) => yaml_to_param(doc),
    }
}

fn yaml_to_param(y: &saphyr::Yaml) -> Result<Param> {
    use saphyr::{Scalar, Yaml};
    Ok(match y {
        Yaml::Value(Scalar::Null) => Param::None,
        Yaml::Value(Scalar::Boolean(b)) => Param::Bool(*b),
        Yaml::Value(Scalar::Integer(i)) => Param::Int(*i),
        Yaml::Value(Scalar::FloatingPoint(f)) => Param::Float(f.into_inner()),
        Yaml::Value(Scalar::String(s)) => Param::Str(s.to_string()),
        Yaml::Representation(s, _, _) => Param::Str(s.to_string()),
        Yaml::Sequence(items) => {
            Param::List(items.iter().map(yaml_to_param).collect::<Result<_>>()?)
        }
        Yaml::Mapping(map) => {
            let mut out = Vec::new();
            for (k, v) in map {
                let key = match yaml_to_param(k)? {
                    Param::Str(s) => s,
                    Param::Int(i) => i.to_string(),
                    Param::Bool(b) => if b { "True" } else { "False" }.to_string(),
                    Param::Float(f) => python_float(f),
                    Param::None => "None".to_string(),
                    _ => {
                        return Err(NotebookError::BadParameters(
                            "YAML keys must be scalars".into(),
                        ));
                    }
                };
                out.push((key, yaml_to_param(v)?));
            }
            Param::Dict(out)
        }
        Yaml::Tagged(_, inner) => yaml_to_param(inner)?,
        Yaml::Alias(_) | Yaml::BadValue => {
            return Err(NotebookError::BadParameters(
                "YAML aliases and invalid values are not supported".into(),
            ));
        }
    })
}

/// Python's `repr(float)` for finite values: shortest round-trip digits, scientific
/// notation below 1e-4 and from 1e16 on.
pub fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f < 0.0 { "-inf" } else { "inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..16).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let s = format!("{f}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

/// Python's `str.encode('unicode_escape').decode()`.
fn unicode_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out
}

fn escaped_str(s: &str) -> String {
    format!("\"{}\"", unicode_escape(s).replace('"', "\\\""))
}

/// POSIX shell quoting like Python's `shlex.quote`.
pub fn shell_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

/// The languages parameters can be rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Python (ipykernel, pyspark).
    Python,
    /// R (IRkernel, sparkR).
    R,
    /// Julia.
    Julia,
    /// Bash (bash_kernel).
    Bash,
}

impl Language {
    /// Pick the translator like papermill: by kernel name first, then by language.
    pub fn find(kernel: &str, language: &str) -> Result<Language> {
        let by = |key: &str| match key {
            "python" | "pysparkkernel" => Some(Language::Python),
            "R" | "sparkrkernel" => Some(Language::R),
            "julia" => Some(Language::Julia),
            "bash" => Some(Language::Bash),
            _ => None,
        };
        by(kernel)
            .or_else(|| by(language))
            .ok_or_else(|| NotebookError::NoTranslator {
                kernel: kernel.to_string(),
                language: language.to_string(),
            })
    }

    /// Render one value as a literal of this language.
    pub fn render(self, v: &Param) -> Result<String> {
        use Language::*;
        Ok(match (self, v) {
            (Python, Param::None) => "None".into(),
            (R, Param::None) => "NULL".into(),
            (Julia, Param::None) => "nothing".into(),
            (Bash, Param::None) => String::new(),
            (Python, Param::Bool(b)) => if *b { "True" } else { "False" }.into(),
            (R, Param::Bool(b)) => if *b { "TRUE" } else { "FALSE" }.into(),
            (Julia | Bash, Param::Bool(b)) => if *b { "true" } else { "false" }.into(),
            (_, Param::Int(i)) => i.to_string(),
            (Python, Param::Float(f)) if f.is_nan() => "float('nan')".into(),
            (Python, Param::Float(f)) if f.is_infinite() => if *f < 0.0 {
                "float('-inf')"
            } else {
                "float('inf')"
            }
            .into(),
            (_, Param::Float(f)) => python_float(*f),
            (Bash, Param::Str(s)) => shell_quote(s),
            (_, Param::Str(s)) => escaped_str(s),
            (lang, Param::List(items)) => {
                let sep = if lang == Bash { " " } else { ", " };
                let inner = items
                    .iter()
                    .map(|i| lang.render(i))
                    .collect::<Result<Vec<_>>>()?
                    .join(sep);
                match lang {
                    Python | Julia => format!("[{inner}]"),
                    R => format!("list({inner})"),
                    Bash => format!("({inner})"),
                }
            }
            (Bash, Param::Dict(_)) => {
                return Err(NotebookError::BadParameters(
                    "dict parameters cannot be rendered for bash".into(),
                ));
            }
            (lang, Param::Dict(entries)) => {
                let inner = entries
                    .iter()
                    .map(|(k, v)| {
                        let v = lang.render(v)?;
                        let k = escaped_str(k);
                        Ok(match lang {
                            R => format!("{k} = {v}"),
                            Julia => format!("{k} => {v}"),
                            _ => format!("{k}: {v}"),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?
                    .join(", ");
                match lang {
                    R => format!("list({inner})"),
                    Julia => format!("Dict({inner})"),
                    _ => format!("{{{inner}}}"),
                }
            }
        })
    }

    /// The source of the `injected-parameters` cell.
    pub fn codify(self, params: &Params, comment: &str) -> Result<String> {
        let mut out = format!("# {comment}").trim().to_string();
        out.push('\n');
        for (name, value) in &params.0 {
            let v = self.render(value)?;
            let line = match self {
                Language::R => format!("{} = {v}", name.trim_start_matches('_')),
                Language::Bash => format!("{name}={v}"),
                _ => format!("{name} = {v}"),
            };
            out.push_str(&line);
            out.push('\n');
        }
        Ok(out)
    }
}
