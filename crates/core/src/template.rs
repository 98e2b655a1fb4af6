//! `{{ … }}` templates and `if:` expressions, rendered against a run's [`Context`].
//!
//! Rendering is strict: a reference to anything undefined is an error, never an empty string.
//! There is no HTML auto-escaping (commands are not HTML) and a trailing newline is kept.
//! Filters and functions are minijinja's builtins (`join`, `default`, `upper`, `tojson`, …).
//! The same environment is used by validation, so what validates also renders.
//!
//! Templates come from job files anyone with an editor role can write, and they are rendered
//! inside `rota serve`: every render is bounded ([`MAX_FUEL`] instructions,
//! [`MAX_OUTPUT_BYTES`] of output, [`MAX_RECURSION`] levels of nesting), and a template that
//! passes a bound fails with [`TemplateError::Bounds`] instead of running on.
//! Booleans print as `true`/`false` (minijinja prints Python's `True`/`False`, which no
//! shell, URL or JSON reader expects).
//!
//! `sh:` commands are rendered by [`shell::render_shell`], which hands every value to the
//! shell through an environment variable instead of splicing it into the command text.

pub mod shell;

use std::collections::BTreeMap;
use std::io;

use minijinja::{ErrorKind, Output, State};
use serde::{Deserialize, Serialize};

use crate::model::Value;

/// Instructions one render may execute. A loop over 1,000 hosts with a few filters each uses
/// well under 100,000; two nested loops over `range(100000)` would need 10^10.
pub const MAX_FUEL: u64 = 1_000_000;

/// Bytes one render may produce. A `sh:` command longer than 128 KiB cannot be started at
/// all (Linux's limit on one argument), and no http body or URL of a job needs a megabyte.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;

/// Nesting of macro calls, includes and recursive loops one render may reach.
pub const MAX_RECURSION: usize = 64;

/// What templates can see.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepContext {
    /// The step's status spelling (`succeeded`, `failed`, `skipped`, …).
    pub status: String,
    /// Its `key=value` outputs.
    pub outputs: BTreeMap<String, String>,
    /// Exit code of its last attempt, if it ran.
    pub exit_code: Option<i32>,
}

/// Run facts as templates see them: `{{ run.id }}` etc.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum TemplateError {
    /// Invalid syntax, an undefined reference, a filter given the wrong kind of value, ….
    #[error("{0}")]
    Invalid(String),
    /// The template passed one of the bounds every render has ([`MAX_FUEL`],
    /// [`MAX_OUTPUT_BYTES`], [`MAX_RECURSION`]); rendering it again fails the same way.
    #[error("template exceeded its bounds: {0}")]
    Bounds(String),
}

impl TemplateError {
    /// True when the template passed a bound rather than being wrong.
    pub fn exceeded_bounds(&self) -> bool {
        matches!(self, TemplateError::Bounds(_))
    }
}

/// Renders one template of a step, or says why not in one line: a template over its
/// bounds says so first, so the reason is recognisable and the attempt is not retried.
/// Text without `{` renders to itself without building a template environment (most
/// commands have none).
pub fn render_text(text: &str, ctx: &Context) -> Result<String, String> {
    if !text.contains('{') {
        return Ok(text.to_owned());
    }
    render(text, ctx).map_err(|e| failure_reason(text, &e))
}

/// Why the template `text` did not render, in one line (see [`render_text`]).
pub fn failure_reason(text: &str, error: &TemplateError) -> String {
    if error.exceeded_bounds() {
        let head: String = text.chars().take(80).collect();
        let more = if head.len() < text.len() { "…" } else { "" };
        format!("{error} (template {head:?}{more})")
    } else {
        format!("cannot render template {text:?}: {error}")
    }
}

/// Renders `template` (`{{ params.x }}`, filters such as `join`) against `ctx`.
/// A reference to an undefined value is an error, never an empty string.
pub fn render(template: &str, ctx: &Context) -> Result<String, TemplateError> {
    if let Some(isolation) = isolation_for(template, false) {
        return match isolation.render(&RenderJob::new(RenderKind::Text, template, ctx))? {
            Rendering::Text(text) => Ok(text),
            _ => Err(TemplateError::Invalid(
                "the isolated render answered another kind".into(),
            )),
        };
    }
    render_in(&environment(), template, ctx)
}

/// Renders in `env`, with the output capped at [`MAX_OUTPUT_BYTES`].
pub(crate) fn render_in(
    env: &minijinja::Environment<'static>,
    template: &str,
    ctx: &Context,
) -> Result<String, TemplateError> {
    let tmpl = env.template_from_str(template).map_err(|e| classify(&e))?;
    let mut out = CappedWriter::default();
    match tmpl.render_captured_to(ctx, &mut out) {
        Ok(_) => String::from_utf8(out.bytes)
            .map_err(|_| TemplateError::Invalid("rendered text is not UTF-8".to_owned())),
        Err(_) if out.overflowed => Err(TemplateError::Bounds(format!(
            "its output passed {MAX_OUTPUT_BYTES} bytes"
        ))),
        Err(e) => Err(classify(&e)),
    }
}

/// Evaluates an `if:` expression (Jinja expression syntax) to a boolean.
pub fn eval_condition(expr: &str, ctx: &Context) -> Result<bool, TemplateError> {
    if let Some(isolation) = isolation_for(expr, true) {
        return match isolation.render(&RenderJob::new(RenderKind::Condition, expr, ctx))? {
            Rendering::Condition(value) => Ok(value),
            _ => Err(TemplateError::Invalid(
                "the isolated render answered another kind".into(),
            )),
        };
    }
    eval_condition_here(expr, ctx)
}

/// [`eval_condition`] in this process.
fn eval_condition_here(expr: &str, ctx: &Context) -> Result<bool, TemplateError> {
    let env = environment();
    let compiled = env.compile_expression(expr).map_err(|e| classify(&e))?;
    let value = compiled.eval(ctx).map_err(|e| classify(&e))?;
    // Strict mode still lets a bare undefined value through as the result; refuse it too.
    if value.is_undefined() {
        return Err(TemplateError::Invalid(format!(
            "undefined value: `{expr}` refers to something that does not exist"
        )));
    }
    Ok(value.is_true())
}

/// One render, as handed to an [`Isolation`]: what kind of text, the text, its context.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenderJob {
    /// How the text is rendered.
    pub kind: RenderKind,
    /// The template or expression.
    pub template: String,
    /// What it sees.
    pub ctx: Context,
}

impl RenderJob {
    fn new(kind: RenderKind, template: &str, ctx: &Context) -> RenderJob {
        RenderJob {
            kind,
            template: template.to_owned(),
            ctx: ctx.clone(),
        }
    }
}

/// The three ways text is rendered: [`render`], [`shell::render_shell`], [`eval_condition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RenderKind {
    /// A template to text.
    Text,
    /// A `sh:` command, its values by environment.
    Shell,
    /// An `if:` expression to a boolean.
    Condition,
}

/// What a [`RenderJob`] gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rendering {
    /// From [`RenderKind::Text`].
    Text(String),
    /// From [`RenderKind::Shell`].
    Shell(shell::ShellCommand),
    /// From [`RenderKind::Condition`].
    Condition(bool),
}

/// Renders `job` in this process, whatever [`isolate_renders`] installed.
pub fn render_here(job: &RenderJob) -> Result<Rendering, TemplateError> {
    match job.kind {
        RenderKind::Text => render_in(&environment(), &job.template, &job.ctx).map(Rendering::Text),
        RenderKind::Shell => {
            shell::render_shell_here(&job.template, &job.ctx).map(Rendering::Shell)
        }
        RenderKind::Condition => {
            eval_condition_here(&job.template, &job.ctx).map(Rendering::Condition)
        }
    }
}

/// Somewhere else to render templates that compute.
///
/// The instruction and output bounds stop a template that runs long or prints much, but not
/// one that builds a huge value in few instructions (a string doubled by `~` forty times,
/// `join` over a long list with a long separator): that would take the whole process down
/// with it. So the binary installs an isolation (a helper process with a memory and CPU
/// limit), and every template that does more than look values up renders there; plain
/// lookups (`{{ params.x }}`, `if: params.env == "prod"`) are bounded by the size of their
/// values and stay in-process, where they cost nothing.
pub trait Isolation: Send + Sync {
    /// Renders `job` elsewhere; a render that died of its limits is [`TemplateError::Bounds`].
    fn render(&self, job: &RenderJob) -> Result<Rendering, TemplateError>;
}

static ISOLATION: std::sync::OnceLock<Box<dyn Isolation>> = std::sync::OnceLock::new();

/// Installs where computing templates render for the rest of the process (first call wins).
pub fn isolate_renders(isolation: Box<dyn Isolation>) {
    let _ = ISOLATION.set(isolation);
}

/// The isolation `text` must render in, if one is installed and `text` computes.
pub(crate) fn isolation_for(text: &str, is_expr: bool) -> Option<&'static dyn Isolation> {
    let isolation = ISOLATION.get()?;
    computes(text, is_expr).then_some(isolation.as_ref())
}

/// Whether `text` does more than look values up and compare them: any filter, function,
/// method, arithmetic, concatenation, loop, assignment, macro or capture. Text that does not
/// compile renders in-process, where it fails at once with its syntax error.
pub(crate) fn computes(text: &str, is_expr: bool) -> bool {
    use minijinja::machinery::{self, Instruction};
    if !text.contains('{') && !is_expr {
        return false;
    }
    let plain = |instructions: &machinery::Instructions<'_>| {
        let mut idx = 0u32;
        while let Some(instr) = instructions.get(idx) {
            let bounded = matches!(
                instr,
                Instruction::EmitRaw(_)
                    | Instruction::Emit
                    | Instruction::Lookup(_)
                    | Instruction::GetAttr(_)
                    | Instruction::GetItem
                    | Instruction::LoadConst(_)
                    | Instruction::Eq
                    | Instruction::Ne
                    | Instruction::Gt
                    | Instruction::Gte
                    | Instruction::Lt
                    | Instruction::Lte
                    | Instruction::Not
                    | Instruction::In
                    | Instruction::CompareAndPreserve(_)
                    | Instruction::Jump(_)
                    | Instruction::JumpIfFalse(_)
                    | Instruction::JumpIfFalseOrPop(_)
                    | Instruction::JumpIfTrueOrPop(_)
                    | Instruction::IsUndefined
                    | Instruction::DupTop
                    | Instruction::DiscardTop
                    | Instruction::Swap
                    | Instruction::PushAutoEscape
                    | Instruction::PopAutoEscape
            );
            if !bounded {
                return false;
            }
            idx += 1;
        }
        true
    };
    let analysed = std::panic::catch_unwind(|| {
        if is_expr {
            let Ok(expr) = machinery::parse_expr(text) else {
                return false;
            };
            let mut codegen = machinery::CodeGenerator::new("<expression>", text);
            codegen.compile_expr(&expr);
            let (instructions, _) = codegen.finish();
            !plain(&instructions)
        } else {
            let env = environment();
            let Ok(tmpl) = env.template_from_str(text) else {
                return false;
            };
            let compiled = machinery::get_compiled_template(&tmpl);
            !plain(&compiled.instructions) || !compiled.blocks.is_empty()
        }
    });
    // A text that panics the analysis is no plain lookup.
    analysed.unwrap_or(true)
}

/// The environment every template and expression is compiled in: strict, not escaping,
/// bounded, and printing booleans as `true`/`false`.
pub(crate) fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env.set_fuel(Some(MAX_FUEL));
    env.set_recursion_limit(MAX_RECURSION);
    env.set_formatter(format_value);
    env
}

/// The formatter of [`environment`]: minijinja's own, except for booleans.
fn format_value(
    out: &mut Output,
    state: &State,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    match value.kind() {
        minijinja::value::ValueKind::Bool => {
            out.write_str(if value.is_true() { "true" } else { "false" })?;
            Ok(())
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// A minijinja error as a [`TemplateError`]: running out of fuel, nesting too deep and
/// minijinja's own size limits (on `range` and on repeated strings) are bounds.
pub(crate) fn classify(err: &minijinja::Error) -> TemplateError {
    let detail = err.detail().unwrap_or_default();
    if err.kind() == ErrorKind::OutOfFuel {
        return TemplateError::Bounds(format!("it ran more than {MAX_FUEL} instructions"));
    }
    // minijinja reports these as invalid operations; their wording is the only way to tell
    // them apart from a wrong operand.
    for (needle, what) in [
        (
            "recursion limit",
            format!("it nested deeper than {MAX_RECURSION} levels"),
        ),
        (
            "maximum recursion",
            "it nests too deeply to parse".to_owned(),
        ),
        (
            "too many elements",
            "a range is longer than 100000 elements".to_owned(),
        ),
        (
            "too large",
            "a repeated string is longer than minijinja allows".to_owned(),
        ),
    ] {
        if detail.contains(needle) {
            return TemplateError::Bounds(what);
        }
    }
    TemplateError::Invalid(describe(err))
}

/// Collects a render's bytes and refuses to grow past [`MAX_OUTPUT_BYTES`].
#[derive(Default)]
struct CappedWriter {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl io::Write for CappedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_OUTPUT_BYTES {
            self.overflowed = true;
            return Err(io::Error::other("template output too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A filter or test a template names that the environment does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// `filter` or `test`.
    pub kind: &'static str,
    /// The name as written.
    pub name: String,
    /// 1-based line inside the template.
    pub line: usize,
}

/// Filters and tests that `template` (or, with `is_expr`, an expression) names but the
/// environment lacks: minijinja looks them up only when it reaches them, so without this a
/// typo validates and fails the run later. Syntax errors are reported by compiling.
pub fn unknown_names(text: &str, is_expr: bool) -> Vec<UnknownName> {
    use minijinja::machinery::{self, Instruction};
    let env = environment();
    let mut found = Vec::new();
    let mut scan = |instructions: &machinery::Instructions<'_>| {
        let mut idx = 0u32;
        while let Some(instr) = instructions.get(idx) {
            let (kind, name) = match instr {
                Instruction::ApplyFilter(name, _, _) => ("filter", *name),
                Instruction::PerformTest(name, _, _) => ("test", *name),
                _ => {
                    idx += 1;
                    continue;
                }
            };
            if !has(&env, kind, name) && !found.iter().any(|u: &UnknownName| u.name == name) {
                found.push(UnknownName {
                    kind,
                    name: name.to_owned(),
                    line: instructions.get_line(idx).unwrap_or(1),
                });
            }
            idx += 1;
        }
    };
    if is_expr {
        let Ok(expr) = machinery::parse_expr(text) else {
            return found;
        };
        let mut codegen = machinery::CodeGenerator::new("<expression>", text);
        codegen.compile_expr(&expr);
        let (instructions, _) = codegen.finish();
        scan(&instructions);
    } else {
        let Ok(tmpl) = env.template_from_str(text) else {
            return found;
        };
        let compiled = machinery::get_compiled_template(&tmpl);
        scan(&compiled.instructions);
        for block in compiled.blocks.values() {
            scan(block);
        }
    }
    found
}

/// Whether `env` has the filter or test `name`: minijinja keeps its lookup private, so a
/// one-instruction probe asks it, and only "unknown filter/test" counts as missing.
fn has(env: &minijinja::Environment<'static>, kind: &str, name: &str) -> bool {
    let probe = match kind {
        "filter" => format!("{{{{ 0 | {name} }}}}"),
        _ => format!("{{{{ 0 is {name} }}}}"),
    };
    match env.render_str(&probe, ()) {
        Ok(_) => true,
        Err(e) => !matches!(e.kind(), ErrorKind::UnknownFilter | ErrorKind::UnknownTest),
    }
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

    #[test]
    fn booleans_render_lowercase() -> Result<(), TemplateError> {
        let mut c = ctx();
        c.params.insert("flag".into(), Value::from(true));
        c.params.insert("off".into(), Value::from(false));
        assert_eq!(
            render("{{ params.flag }} {{ params.off }} {{ run.dry_run }}", &c)?,
            "true false false"
        );
        Ok(())
    }

    #[test]
    fn nested_loops_exceed_the_fuel_bound() {
        let big =
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}";
        let err = render(big, &ctx()).err();
        assert!(matches!(err, Some(TemplateError::Bounds(_))), "{err:?}");
        let shown = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            shown.starts_with("template exceeded its bounds: "),
            "{shown}"
        );
        assert!(
            eval_condition(
                "range(100000) | map('string') | join | length > 0 and range(100000) | sum > 0",
                &ctx()
            )
            .is_ok()
        );
    }

    #[test]
    fn output_and_recursion_are_bounded() {
        // 40 × 50 MB would be 2 GB of output; the cap stops it at the first megabyte.
        let wide = "{% for i in range(40) %}{{ 'x' * 50000000 }}{% endfor %}";
        assert!(matches!(
            render(wide, &ctx()),
            Err(TemplateError::Bounds(_))
        ));
        let deep = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}";
        assert!(matches!(
            render(deep, &ctx()),
            Err(TemplateError::Bounds(_))
        ));
    }

    #[test]
    fn unknown_filters_and_tests_are_named() {
        let found = unknown_names(
            "a\n{{ params.env | nosuchfilter }} {{ 1 is nosuchtest }}",
            false,
        );
        let names: Vec<_> = found
            .iter()
            .map(|u| (u.kind, u.name.as_str(), u.line))
            .collect();
        assert_eq!(
            names,
            [("filter", "nosuchfilter", 2), ("test", "nosuchtest", 2)]
        );
        assert!(
            unknown_names(
                "{{ params.hosts | join(' ') | upper }}{{ 1 is odd }}",
                false
            )
            .is_empty()
        );
        let found = unknown_names("params.env | nope == 1", true);
        assert_eq!(found.first().map(|u| u.name.as_str()), Some("nope"));
    }
}
