//! Template rendering against a run context, and undefined references.

use rota_core::template::{Context, StepContext, eval_condition, render};
use serde_json::json;

fn ctx() -> Context {
    let mut ctx = Context::default();
    ctx.params.insert("env".into(), json!("prod"));
    ctx.params
        .insert("hosts".into(), json!(["edge-1", "edge-2"]));
    ctx.params.insert("count".into(), json!(3));
    ctx.params.insert("labels".into(), json!({"team": "sre"}));
    let mut build = StepContext {
        status: "succeeded".into(),
        exit_code: Some(0),
        ..StepContext::default()
    };
    build.outputs.insert("version".into(), "1.2.3".into());
    ctx.steps.insert("build".into(), build);
    ctx.steps.insert(
        "my-step".into(),
        StepContext {
            status: "failed".into(),
            ..StepContext::default()
        },
    );
    ctx.secrets.insert("TOKEN".into(), "s3cret".into());
    ctx.run.id = "run-1".into();
    ctx.run.job = "deploy".into();
    ctx.run.dry_run = true;
    ctx
}

#[test]
fn renders_every_kind_of_reference() {
    let cases = [
        ("{{ params.env }}", "prod"),
        ("{{ params.hosts | join(\" \") }}", "edge-1 edge-2"),
        ("{{ params.count + 1 }}", "4"),
        ("{{ params.labels.team }}", "sre"),
        ("v{{ steps.build.outputs.version }}", "v1.2.3"),
        ("{{ steps[\"my-step\"].status }}", "failed"),
        ("{{ secrets.TOKEN }}", "s3cret"),
        ("{{ run.job }}/{{ run.id }}", "deploy/run-1"),
        (
            "{% for h in params.hosts %}{{ h }};{% endfor %}",
            "edge-1;edge-2;",
        ),
        ("line\n", "line\n"),
        ("plain text, no template", "plain text, no template"),
    ];
    for (template, want) in cases {
        assert_eq!(render(template, &ctx()).as_deref(), Ok(want), "{template}");
    }
}

#[test]
fn undefined_references_are_errors_not_empty_strings() {
    for template in [
        "{{ params.missing }}",
        "{{ steps.deploy.outputs.url }}",
        "{{ steps.build.outputs.nope }}",
        "{{ nothing }}",
        "{{ params.missing | upper }}",
    ] {
        let result = render(template, &ctx());
        assert!(result.is_err(), "{template} rendered as {result:?}");
    }
}

#[test]
fn syntax_errors_are_reported() {
    let err = render("{{ params.env ", &ctx())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("syntax error"), "{err}");
}

#[test]
fn conditions_evaluate_to_booleans() {
    let cases = [
        ("params.env == \"prod\"", true),
        ("params.env == \"staging\"", false),
        (
            "steps.build.status == \"succeeded\" and params.count > 2",
            true,
        ),
        ("run.dry_run", true),
        ("not run.dry_run", false),
        ("params.hosts | length == 2", true),
        ("\"edge-1\" in params.hosts", true),
    ];
    for (expr, want) in cases {
        assert_eq!(eval_condition(expr, &ctx()), Ok(want), "{expr}");
    }
    assert!(eval_condition("params.nope", &ctx()).is_err());
    assert!(eval_condition("params.env ==", &ctx()).is_err());
}
