//! Parameter resolution: defaults, `-p key=value` coerced to the declared type, `--params-file`.
//!
//! Command-line text is coerced: `int` and `float` parse as numbers, `bool` accepts
//! `true/false/yes/no/1/0/on/off`, `list` a JSON array or comma-separated items, `map` a JSON
//! object, `enum` (and any parameter with choices) must name one of its choices. Values from a
//! params file are already typed and are only checked. Every problem is reported.

use std::collections::BTreeMap;

use crate::model::{Job, ParamSpec, ParamType, Value};

/// A parameter value that does not fit its declaration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter {name}: {message}")]
pub struct ParamError {
    /// The parameter's name.
    pub name: String,
    /// What was expected, e.g. `expected int, got "abc"`.
    pub message: String,
}

/// Resolves the run's parameters: `file_values` (from `--params-file`, already parsed)
/// first, then `cli` pairs from `-p key=value` (strings, coerced), then defaults.
/// Unknown names, missing required values and type mismatches are errors (all reported).
pub fn resolve(
    job: &Job,
    file_values: &BTreeMap<String, Value>,
    cli: &[(String, String)],
) -> Result<BTreeMap<String, Value>, Vec<ParamError>> {
    let mut errors = Vec::new();
    let mut given: BTreeMap<String, Value> = BTreeMap::new();
    let spec_of = |name: &str| job.params.iter().find(|p| p.name == name);
    let unknown = |name: &str| ParamError {
        name: name.to_owned(),
        message: format!("unknown parameter (declared: {})", declared_names(job)),
    };
    for (name, value) in file_values {
        match spec_of(name) {
            None => errors.push(unknown(name)),
            Some(spec) => match check_value(spec, value.clone()) {
                Ok(v) => {
                    given.insert(name.clone(), v);
                }
                Err(message) => errors.push(ParamError {
                    name: name.clone(),
                    message,
                }),
            },
        }
    }
    for (name, text) in cli {
        match spec_of(name) {
            None => errors.push(unknown(name)),
            Some(spec) => match coerce(spec, text).and_then(|v| check_value(spec, v)) {
                Ok(v) => {
                    given.insert(name.clone(), v);
                }
                Err(message) => errors.push(ParamError {
                    name: name.clone(),
                    message,
                }),
            },
        }
    }
    let mut resolved = BTreeMap::new();
    for spec in &job.params {
        match given.remove(&spec.name).or_else(|| spec.default.clone()) {
            Some(v) => {
                resolved.insert(spec.name.clone(), v);
            }
            None if errors.iter().any(|e| e.name == spec.name) => {}
            None => errors.push(ParamError {
                name: spec.name.clone(),
                message: format!(
                    "required (no default); pass -p {}=<{}>",
                    spec.name,
                    type_name(spec.ty)
                ),
            }),
        }
    }
    if errors.is_empty() {
        Ok(resolved)
    } else {
        Err(errors)
    }
}

fn declared_names(job: &Job) -> String {
    if job.params.is_empty() {
        return "none".to_owned();
    }
    job.params
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn type_name(ty: ParamType) -> &'static str {
    match ty {
        ParamType::String => "string",
        ParamType::Int => "int",
        ParamType::Float => "float",
        ParamType::Bool => "bool",
        ParamType::List => "list",
        ParamType::Map => "map",
        ParamType::Enum => "enum",
    }
}

/// Turns command-line text into a value of the declared type.
pub fn coerce(spec: &ParamSpec, text: &str) -> Result<Value, String> {
    let expected = |what: &str| format!("expected {what}, got {text:?}");
    let t = text.trim();
    match spec.ty {
        ParamType::String | ParamType::Enum => Ok(Value::String(text.to_owned())),
        ParamType::Int => t
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| expected("int")),
        ParamType::Float => t
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| expected("float")),
        ParamType::Bool => match t.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => Ok(Value::Bool(true)),
            "false" | "no" | "0" | "off" => Ok(Value::Bool(false)),
            _ => Err(expected("bool (true/false, yes/no, 1/0, on/off)")),
        },
        ParamType::List => {
            if t.starts_with('[') {
                match serde_json::from_str::<Value>(t) {
                    Ok(v @ Value::Array(_)) => Ok(v),
                    _ => Err(expected("list (a JSON array or comma-separated items)")),
                }
            } else if t.is_empty() {
                Ok(Value::Array(Vec::new()))
            } else {
                Ok(Value::Array(
                    t.split(',')
                        .map(|item| Value::String(item.trim().to_owned()))
                        .collect(),
                ))
            }
        }
        ParamType::Map => match serde_json::from_str::<Value>(t) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(expected("map (a JSON object)")),
        },
    }
}

/// Command-line text as a value of the parameter: coerced to its type and checked
/// against its choices (what `-p NAME=VALUE` accepts).
pub fn accept(spec: &ParamSpec, text: &str) -> Result<Value, String> {
    coerce(spec, text).and_then(|v| check_value(spec, v))
}

/// The name of a parameter type, as job files write it.
pub fn type_name_of(ty: ParamType) -> &'static str {
    type_name(ty)
}

/// Checks that an already-typed value fits the declaration (type and choices).
fn check_value(spec: &ParamSpec, value: Value) -> Result<Value, String> {
    let value = match (spec.ty, value) {
        (ParamType::String | ParamType::Enum, v @ Value::String(_))
        | (ParamType::Bool, v @ Value::Bool(_))
        | (ParamType::List, v @ Value::Array(_))
        | (ParamType::Map, v @ Value::Object(_)) => v,
        (ParamType::Int, Value::Number(n)) if n.is_i64() => Value::Number(n),
        (ParamType::Float, Value::Number(n)) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("expected float, got {n}"))?,
        (ty, v) => return Err(format!("expected {}, got {v}", type_name(ty))),
    };
    if let Some(choices) = &spec.choices
        && !choices.contains(&value)
    {
        let listed: Vec<String> = choices
            .iter()
            .map(|c| match c {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        return Err(format!("{value} is not one of: {}", listed.join(", ")));
    }
    Ok(value)
}
