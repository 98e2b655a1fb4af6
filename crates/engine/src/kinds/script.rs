//! `script` steps: the script file (relative to the job file) run by its interpreter.

use rota_core::kinds::script::ScriptStep;

use super::{Executor, ResolveCx};
use crate::step::{Command, Resolved, process, render_text};

pub(crate) struct Script;

impl Executor for Script {
    fn name(&self) -> &'static str {
        "script"
    }

    fn resolve(&self, r: &ResolveCx<'_>) -> Result<Resolved, String> {
        let script: ScriptStep = r.step.kind.decode()?;
        process(r, || {
            let render = |text: &str| render_text(text, r.ctx);
            let file = r.shared.base_dir.join(render(&script.path)?);
            let mut argv: Vec<String> = match &script.interpreter {
                Some(interpreter) => render(interpreter)?
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
                None => Vec::new(),
            };
            argv.push(file.display().to_string());
            for arg in &script.args {
                argv.push(render(arg)?);
            }
            let program = argv.remove(0);
            Ok(Command::new(program, argv))
        })
    }
}
