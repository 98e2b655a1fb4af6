//! `exec: [PROGRAM, ARG…]`: a program and its arguments, run without a shell.

use serde::{Deserialize, Serialize};

use super::{Command, CommandCx, KindSite, StepKindDef, decode, encode, normalize};
use crate::model::{StepKind, Value};

/// An `exec` step's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecStep {
    /// Program and arguments (each a template).
    pub argv: Vec<String>,
}

/// A step kind running `argv` (ad-hoc runs of a program).
pub fn step_kind(argv: Vec<String>) -> StepKind {
    StepKind::new("exec", encode(&ExecStep { argv }).unwrap_or_default())
}

pub(crate) struct Exec;

impl StepKindDef for Exec {
    fn name(&self) -> &'static str {
        "exec"
    }

    fn parse(&self, site: KindSite<'_, '_>) -> Option<Value> {
        let (cx, value, step, sites) = (site.cx, site.value, site.step, site.sites);
        let what = step.what("exec");
        let items = cx.seq(value, &what)?;
        if items.is_empty() {
            cx.err(value.pos, format!("{what} must name a program"));
        }
        let argv: Vec<String> = items
            .iter()
            .filter_map(|n| {
                let arg = cx.scalar_string(n, &what)?;
                sites(&arg, n.pos, false);
                Some(arg)
            })
            .collect();
        encode(&ExecStep { argv })
    }

    fn command(&self, config: &Value, cx: &CommandCx<'_>) -> Option<Result<Command, String>> {
        let argv = decode::<ExecStep>(config).and_then(|exec| {
            exec.argv
                .iter()
                .map(|arg| cx.render(arg))
                .collect::<Result<Vec<_>, _>>()
        });
        Some(argv.and_then(|argv| Command::from_argv(argv, "exec")))
    }

    fn normalize(&self, config: Value) -> Result<Value, String> {
        normalize::<ExecStep>(config)
    }

    fn describe(&self, config: &Value) -> String {
        match config.get("argv").and_then(Value::as_array) {
            Some(argv) => argv
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            None => config.to_string(),
        }
    }
}
