//! Rendering every parameter type, checked by evaluating the result in real Python.

use rota_notebook::params::{Language, Param, Params, resolve_typed, shell_quote};

fn python_eval_to_json(literal: &str) -> serde_json::Value {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys, math\nv = eval(sys.argv[1])\nprint(json.dumps(v))",
        ])
        .arg(literal)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python rejected {literal}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn python_literals_of_every_type() {
    let cases: Vec<(Param, &str)> = vec![
        (Param::None, "None"),
        (Param::Bool(true), "True"),
        (Param::Bool(false), "False"),
        (Param::Int(-42), "-42"),
        (Param::Float(0.5), "0.5"),
        (Param::Float(1.0), "1.0"),
        (Param::Float(1e16), "1e+16"),
        (Param::Float(1.5e-5), "1.5e-05"),
        (Param::Float(f64::NAN), "float('nan')"),
        (Param::Float(f64::NEG_INFINITY), "float('-inf')"),
        (
            Param::Str("a \"q\" 'b'\n\t\\ é".into()),
            r#""a \"q\" 'b'\n\t\\ \xe9""#,
        ),
        (
            Param::List(vec![Param::Int(1), Param::Str("x".into()), Param::None]),
            r#"[1, "x", None]"#,
        ),
        (
            Param::Dict(vec![
                ("k".into(), Param::List(vec![Param::Bool(true)])),
                (
                    "n".into(),
                    Param::Dict(vec![("z".into(), Param::Float(2.5))]),
                ),
            ]),
            r#"{"k": [True], "n": {"z": 2.5}}"#,
        ),
    ];
    for (value, expect) in cases {
        assert_eq!(Language::Python.render(&value).expect("renders"), expect);
    }
}

#[test]
fn python_literals_evaluate_to_the_same_values() {
    let value = serde_json::json!({
        "s": "quote\" apostrophe' backslash\\ newline\n unicode ☃ 𝄞",
        "i": 7, "f": 0.25, "b": false, "n": null,
        "l": [1, [2, {"x": "y"}]],
    });
    let literal = Language::Python
        .render(&Param::from_json(&value))
        .expect("renders");
    assert_eq!(python_eval_to_json(&literal), value);
}

#[test]
fn r_julia_and_bash_literals() {
    let list = Param::List(vec![Param::Int(1), Param::Str("a b".into())]);
    let dict = Param::Dict(vec![("k".into(), Param::Bool(true))]);
    assert_eq!(Language::R.render(&Param::None).expect("r"), "NULL");
    assert_eq!(Language::R.render(&list).expect("r"), r#"list(1, "a b")"#);
    assert_eq!(Language::R.render(&dict).expect("r"), r#"list("k" = TRUE)"#);
    assert_eq!(
        Language::Julia.render(&dict).expect("jl"),
        r#"Dict("k" => true)"#
    );
    assert_eq!(Language::Julia.render(&Param::None).expect("jl"), "nothing");
    assert_eq!(Language::Bash.render(&list).expect("sh"), "(1 'a b')");
    assert_eq!(Language::Bash.render(&Param::None).expect("sh"), "");
    assert!(Language::Bash.render(&dict).is_err());
    let mut p = Params::default();
    p.set("_x", Param::Int(1));
    assert_eq!(
        Language::R.codify(&p, "Parameters").expect("r"),
        "# Parameters\nx = 1\n"
    );
    assert_eq!(
        Language::Bash.codify(&p, "Parameters").expect("sh"),
        "# Parameters\n_x=1\n"
    );
}

#[test]
fn bash_values_survive_a_real_shell() {
    let weird = "it's a \"test\" $HOME `x` \\ end";
    let script = format!("v={}; printf %s \"$v\"", shell_quote(weird));
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("sh");
    assert_eq!(String::from_utf8_lossy(&out.stdout), weird);
}

#[test]
fn typed_p_values_resolve_like_papermill() {
    assert_eq!(resolve_typed("True"), Param::Bool(true));
    assert_eq!(resolve_typed("None"), Param::None);
    assert_eq!(resolve_typed("12"), Param::Int(12));
    assert_eq!(resolve_typed("-3"), Param::Int(-3));
    assert_eq!(resolve_typed("1_000"), Param::Int(1000));
    assert_eq!(resolve_typed("2.5"), Param::Float(2.5));
    assert_eq!(resolve_typed("1e3"), Param::Float(1000.0));
    assert_eq!(resolve_typed("true"), Param::Str("true".into()));
    assert_eq!(resolve_typed("abc"), Param::Str("abc".into()));
    assert_eq!(resolve_typed("1.2.3"), Param::Str("1.2.3".into()));
}

#[test]
fn yaml_parameters_keep_order_and_types() {
    let p =
        rota_notebook::params::parse_yaml("b: 1\na: [x, 2.5, null]\nc: {d: true}\n").expect("yaml");
    let mut params = Params::default();
    params.merge(p).expect("mapping");
    assert_eq!(
        Language::Python.codify(&params, "Parameters").expect("py"),
        "# Parameters\nb = 1\na = [\"x\", 2.5, None]\nc = {\"d\": True}\n"
    );
    assert!(params.merge(Param::Int(1)).is_err());
}
