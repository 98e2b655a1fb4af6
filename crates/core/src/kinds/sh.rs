//! `sh: COMMAND`: a shell command run by `sh -c`; its template values reach the shell as
//! environment variables (`template::shell`), never spliced into its text.

use serde::{Deserialize, Serialize};

use super::{Command, CommandCx, KindSite, StepKindDef, decode, encode, normalize, text};
use crate::model::{StepKind, Value};

/// An `sh` step's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShStep {
    /// The shell command (a template).
    pub command: String,
}

/// A step kind running `command` with `sh -c` (ad-hoc runs of a command line).
pub fn step_kind(command: String) -> StepKind {
    StepKind::new("sh", encode(&ShStep { command }).unwrap_or_default())
}

pub(crate) struct Sh;

impl StepKindDef for Sh {
    fn name(&self) -> &'static str {
        "sh"
    }

    fn parse(&self, site: KindSite<'_, '_>) -> Option<Value> {
        let (cx, value, step, sites) = (site.cx, site.value, site.step, site.sites);
        let command = cx.string(value, &step.what("sh"))?;
        sites(&command, value.pos, false);
        encode(&ShStep { command })
    }

    fn command(&self, config: &Value, cx: &CommandCx<'_>) -> Option<Result<Command, String>> {
        Some(decode::<ShStep>(config).and_then(|sh| Command::shell(&sh.command, cx.ctx)))
    }

    fn normalize(&self, config: Value) -> Result<Value, String> {
        normalize::<ShStep>(config)
    }

    fn describe(&self, config: &Value) -> String {
        text(config, "command").map_or_else(|| config.to_string(), str::to_owned)
    }

    fn start_line(&self, config: &Value) -> String {
        self.describe(config).trim_end().to_owned()
    }
}
