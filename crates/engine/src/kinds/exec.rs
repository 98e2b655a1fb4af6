//! `exec` steps: a program and its arguments, each rendered, run without a shell.

use rota_core::kinds::exec::ExecStep;

use super::{Executor, ResolveCx};
use crate::step::{Command, Resolved, process, render_text};

pub(crate) struct Exec;

impl Executor for Exec {
    fn name(&self) -> &'static str {
        "exec"
    }

    fn resolve(&self, r: &ResolveCx<'_>) -> Result<Resolved, String> {
        let exec: ExecStep = r.step.kind.decode()?;
        process(r, || {
            let mut argv = exec
                .argv
                .iter()
                .map(|a| render_text(a, r.ctx))
                .collect::<Result<Vec<_>, _>>()?;
            if argv.is_empty() {
                return Err("`exec` needs at least a program".to_owned());
            }
            let program = argv.remove(0);
            Ok(Command::new(program, argv))
        })
    }
}
