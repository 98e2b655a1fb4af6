//! `{{ … }}` templates and `if:` expressions, rendered against a run's [`Context`].
//!
//! Rendering is strict: a reference to anything undefined is an error, never an empty string.
//! There is no HTML auto-escaping (commands are not HTML) and a trailing newline is kept.
//! Filters and functions are minijinja's builtins (`join`, `default`, `upper`, `tojson`, …).
//! The same environment is used by validation, so what validates also renders.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::Value;

/// What templates can see.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Context {
    /// Resolved parameters.
    pub params: BTreeMap<String, Value>,
    /// Finished steps so far.
    pub steps: BTreeMap<String, StepContext>,
    /// Facts about the run.
    pub run: RunContext,
    /// Secret values by name (never rendered into logs: the engine redacts them).
    pub secrets: BTreeMap<String, String>,
}

/// A finished step as templates see it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepContext {
    /// The step's status spelling (`succeeded`, `failed`, `skipped`, …).
    pub status: String,
    /// Its `key=value` outputs.
    pub outputs: BTreeMap<String, String>,
    /// Exit code of its last attempt, if it ran.
    pub exit_code: Option<i32>,
}

/// Run facts as templates see them: `{{ run.id }}` etc.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunContext {
    /// Run id.
    pub id: String,
    /// Job id.
    pub job: String,
    /// Namespace.
    pub namespace: String,
    /// RFC 3339 time the run was due (scheduled runs) or created.
    pub scheduled_at: String,
    /// Whether this is a dry run.
    pub dry_run: bool,
}

/// A template or expression that could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// Renders `template` (`{{ params.x }}`, filters such as `join`) against `ctx`.
/// A reference to an undefined value is an error, never an empty string.
pub fn render(template: &str, ctx: &Context) -> Result<String, TemplateError> {
    let env = environment();
    let tmpl = env
        .template_from_str(template)
        .map_err(|e| TemplateError(describe(&e)))?;
    tmpl.render(ctx).map_err(|e| TemplateError(describe(&e)))
}

/// Evaluates an `if:` expression (Jinja expression syntax) to a boolean.
pub fn eval_condition(expr: &str, ctx: &Context) -> Result<bool, TemplateError> {
    let env = environment();
    let compiled = env
        .compile_expression(expr)
        .map_err(|e| TemplateError(describe(&e)))?;
    let value = compiled
        .eval(ctx)
        .map_err(|e| TemplateError(describe(&e)))?;
    // Strict mode still lets a bare undefined value through as the result; refuse it too.
    if value.is_undefined() {
        return Err(TemplateError(format!(
            "undefined value: `{expr}` refers to something that does not exist"
        )));
    }
    Ok(value.is_true())
}

/// The environment every template and expression is compiled in.
pub(crate) fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env
}

/// A minijinja error as one line: its kind and detail, without the template name.
pub(crate) fn describe(err: &minijinja::Error) -> String {
    let mut text = match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    };
    if let (Some(line), Some(_)) = (err.line(), err.range())
        && line > 1
    {
        text.push_str(&format!(" (template line {line})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        let mut ctx = Context::default();
        ctx.params.insert("env".into(), Value::from("prod"));
        ctx.params
            .insert("hosts".into(), serde_json::json!(["edge-1", "edge-2"]));
        ctx.run.id = "r1".into();
        ctx
    }

    #[test]
    fn renders_values_naturally() -> Result<(), TemplateError> {
        let out = render(
            "deploy {{ params.env }} {{ params.hosts | join(\" \") }}\n",
            &ctx(),
        )?;
        assert_eq!(out, "deploy prod edge-1 edge-2\n");
        Ok(())
    }

    #[test]
    fn does_not_escape_html() -> Result<(), TemplateError> {
        let mut c = ctx();
        c.params.insert("cmd".into(), Value::from("a < b && 'c'"));
        assert_eq!(render("{{ params.cmd }}", &c)?, "a < b && 'c'");
        Ok(())
    }

    #[test]
    fn undefined_references_are_errors() {
        assert!(render("{{ params.nope }}", &ctx()).is_err());
        assert!(render("{{ steps.build.outputs.x }}", &ctx()).is_err());
        assert!(eval_condition("params.nope == 1", &ctx()).is_err());
    }

    #[test]
    fn conditions_use_truthiness() -> Result<(), TemplateError> {
        assert!(eval_condition("params.env == \"prod\"", &ctx())?);
        assert!(!eval_condition("params.env == \"staging\"", &ctx())?);
        assert!(eval_condition("params.hosts", &ctx())?);
        assert!(!eval_condition("run.dry_run", &ctx())?);
        Ok(())
    }
}
