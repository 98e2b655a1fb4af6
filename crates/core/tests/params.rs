//! `-p key=value` coercion and `--params-file` checking, as a table of cases.

use std::collections::BTreeMap;

use rota_core::model::{Job, Value};
use rota_core::params::{ParamError, resolve};
use rota_core::parse::{Format, parse_str};
use serde_json::json;

fn job() -> Job {
    let source = r#"
id: params-job
params:
  s: { type: string, default: x }
  i: { type: int, default: 1 }
  f: { type: float, default: 1.5 }
  b: { type: bool, default: false }
  l: { type: list, default: [] }
  m: { type: map, default: {} }
  e: { type: enum, values: [fast, slow], default: fast }
  c: { type: string, enum: [red, blue], default: red }
steps: [{ id: s, sh: "true" }]
"#;
    match parse_str(source, "params.yaml", Format::Yaml) {
        Ok(mut jobs) => jobs.remove(0),
        Err(e) => panic!("fixture does not parse:\n{e}"),
    }
}

/// Resolves one `-p name=text` against the fixture job.
fn check(name: &str, text: &str) -> Result<Value, Vec<ParamError>> {
    let cli = [(name.to_owned(), text.to_owned())];
    resolve(&job(), &BTreeMap::new(), &cli).map(|mut r| r.remove(name).unwrap_or(Value::Null))
}

#[test]
fn cli_values_are_coerced_to_the_declared_type() {
    let table: &[(&str, &str, Value)] = &[
        ("s", "hello world", json!("hello world")),
        ("s", "42", json!("42")),
        ("i", "42", json!(42)),
        ("i", "-7", json!(-7)),
        ("f", "2.5", json!(2.5)),
        ("f", "3", json!(3.0)),
        ("b", "true", json!(true)),
        ("b", "YES", json!(true)),
        ("b", "1", json!(true)),
        ("b", "on", json!(true)),
        ("b", "false", json!(false)),
        ("b", "no", json!(false)),
        ("b", "0", json!(false)),
        ("b", "off", json!(false)),
        ("l", "a,b, c", json!(["a", "b", "c"])),
        ("l", "[1, \"x\"]", json!([1, "x"])),
        ("l", "", json!([])),
        ("m", "{\"k\": 1}", json!({"k": 1})),
        ("e", "slow", json!("slow")),
        ("c", "blue", json!("blue")),
    ];
    for (name, text, want) in table {
        assert_eq!(check(name, text).as_ref(), Ok(want), "-p {name}={text}");
    }
}

#[test]
fn bad_cli_values_are_rejected_with_the_expected_type() {
    let table: &[(&str, &str, &str)] = &[
        ("i", "abc", "expected int, got \"abc\""),
        ("i", "1.5", "expected int, got \"1.5\""),
        ("f", "nope", "expected float, got \"nope\""),
        (
            "b",
            "maybe",
            "expected bool (true/false, yes/no, 1/0, on/off), got \"maybe\"",
        ),
        (
            "l",
            "[1,",
            "expected list (a JSON array or comma-separated items), got \"[1,\"",
        ),
        ("m", "[1]", "expected map (a JSON object), got \"[1]\""),
        ("e", "medium", "\"medium\" is not one of: fast, slow"),
        ("c", "green", "\"green\" is not one of: red, blue"),
    ];
    for (name, text, message) in table {
        let errors = check(name, text).err().unwrap_or_default();
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, [*message], "-p {name}={text}");
    }
}

#[test]
fn defaults_fill_in_and_cli_overrides_the_params_file() {
    let file: BTreeMap<String, Value> = [("i".to_owned(), json!(5)), ("s".to_owned(), json!("f"))]
        .into_iter()
        .collect();
    let cli = [("i".to_owned(), "9".to_owned())];
    let resolved = resolve(&job(), &file, &cli).unwrap_or_default();
    assert_eq!(resolved.get("i"), Some(&json!(9)));
    assert_eq!(resolved.get("s"), Some(&json!("f")));
    assert_eq!(resolved.get("e"), Some(&json!("fast")));
    assert_eq!(resolved.len(), 8);
}

#[test]
fn every_problem_is_reported_unknown_missing_and_mistyped() {
    let source = "id: req\nparams:\n  need: { type: int }\n  other: { type: bool }\nsteps: [{ id: s, sh: \"true\" }]\n";
    let job = parse_str(source, "req.yaml", Format::Yaml)
        .map(|mut j| j.remove(0))
        .unwrap_or_else(|e| panic!("{e}"));
    let file: BTreeMap<String, Value> = [("other".to_owned(), json!("yes"))].into_iter().collect();
    let cli = [("bogus".to_owned(), "1".to_owned())];
    let errors = resolve(&job, &file, &cli).err().unwrap_or_default();
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "parameter other: expected bool, got \"yes\"",
            "parameter bogus: unknown parameter (declared: need, other)",
            "parameter need: required (no default); pass -p need=<int>",
        ]
    );
}
