//! `{{ … }}` templates and `if:` expressions, rendered against a run's [`Context`].
//!
//! STUB: signatures only.

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
    let _ = (template, ctx);
    unimplemented!("templates not written yet")
}

/// Evaluates an `if:` expression (Jinja expression syntax) to a boolean.
pub fn eval_condition(expr: &str, ctx: &Context) -> Result<bool, TemplateError> {
    let _ = (expr, ctx);
    unimplemented!("expressions not written yet")
}
