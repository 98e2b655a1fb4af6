//! `sh` steps: `sh -c COMMAND`, template values passed as `ROTA_TPL_<n>` variables.

use rota_core::kinds::sh::ShStep;

use super::{Executor, ResolveCx};
use crate::step::{Resolved, process, shell_command};

pub(crate) struct Sh;

impl Executor for Sh {
    fn name(&self) -> &'static str {
        "sh"
    }

    fn resolve(&self, r: &ResolveCx<'_>) -> Result<Resolved, String> {
        let sh: ShStep = r.step.kind.decode()?;
        process(r, || shell_command(&sh.command, r.ctx))
    }
}
