//! `script: PATH` (or `{path, interpreter, args}`): a script file run by its interpreter,
//! from `interpreter:` or the file's `#!` line. A script with a `# /// rota` header and no
//! `steps` is itself the job's only step.

use serde::{Deserialize, Serialize};

use super::{Command, CommandCx, KindSite, StepKindDef, decode, encode, normalize, text};
use crate::convert::get;
use crate::model::{StepKind, Value};
use crate::tree::Kind;

/// A `script` step's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptStep {
    /// Path of the script, relative to the job file's directory (a template).
    pub path: String,
    /// Interpreter command line, e.g. `python3` or `uv run`; `None` runs the file itself.
    pub interpreter: Option<String>,
    /// Extra arguments (templates).
    pub args: Vec<String>,
}

/// A step kind running the script at `path` (a script header's default step).
pub fn step_kind(path: String, interpreter: Option<String>) -> StepKind {
    let config = ScriptStep {
        path,
        interpreter,
        args: Vec::new(),
    };
    StepKind::new("script", encode(&config).unwrap_or_default())
}

pub(crate) struct Script;

impl StepKindDef for Script {
    fn name(&self) -> &'static str {
        "script"
    }

    fn parse(&self, site: KindSite<'_, '_>) -> Option<Value> {
        let (cx, value, step, sites) = (site.cx, site.value, site.step, site.sites);
        let what = step.what("script");
        let label = step.label;
        let config = match &value.kind {
            Kind::Str(path) => {
                sites(path, value.pos, false);
                ScriptStep {
                    path: path.clone(),
                    interpreter: None,
                    args: Vec::new(),
                }
            }
            _ => {
                let fields = cx.map(value, &what)?;
                cx.unknown_keys(fields, &["path", "interpreter", "args"], &what);
                let Some(path_node) = get(fields, "path") else {
                    cx.err(value.pos, format!("missing required key `path` in {what}"));
                    return None;
                };
                let path = cx.string(path_node, &what)?;
                sites(&path, path_node.pos, false);
                let interpreter = get(fields, "interpreter")
                    .and_then(|n| cx.string(n, &format!("`interpreter` in {label}")));
                let args = get(fields, "args")
                    .and_then(|n| cx.seq(n, &format!("`args` in {label}")))
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|n| {
                        let arg = cx.scalar_string(n, &format!("`args` in {label}"))?;
                        sites(&arg, n.pos, false);
                        Some(arg)
                    })
                    .collect();
                ScriptStep {
                    path,
                    interpreter,
                    args,
                }
            }
        };
        encode(&config)
    }

    fn command(&self, config: &Value, cx: &CommandCx<'_>) -> Option<Result<Command, String>> {
        Some(decode::<ScriptStep>(config).and_then(|script| script_command(&script, cx)))
    }

    fn normalize(&self, config: Value) -> Result<Value, String> {
        normalize::<ScriptStep>(config)
    }

    fn describe(&self, config: &Value) -> String {
        text(config, "path").map_or_else(|| config.to_string(), str::to_owned)
    }
}

/// The script file (relative to the job file's directory) after its interpreter's words,
/// then its arguments.
fn script_command(script: &ScriptStep, cx: &CommandCx<'_>) -> Result<Command, String> {
    let file = cx.base_dir.join(cx.render(&script.path)?);
    let mut argv: Vec<String> = match &script.interpreter {
        Some(interpreter) => cx
            .render(interpreter)?
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    };
    argv.push(file.display().to_string());
    for arg in &script.args {
        argv.push(cx.render(arg)?);
    }
    Command::from_argv(argv, "script")
}
