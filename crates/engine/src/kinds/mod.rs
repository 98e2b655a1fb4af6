//! How each step kind runs, one module per kind, registered by the name its syntax module
//! in `rota_core::kinds` gives it: the executor renders the step's templates into what the
//! attempt does (a process for [`crate::process::supervise`], or work of its own, raced
//! against the step's stop and timeout with [`crate::step::race`] and logged through the
//! step's redactor), or what a dry run shows instead.

use std::path::{Path, PathBuf};

use rota_core::model::{DryRun, Step};
use rota_core::template::Context;

use crate::run::Shared;
use crate::step::Resolved;

mod check;
mod exec;
pub(crate) mod http;
mod notebook;
mod script;
mod sh;

/// Every kind's executor, one line each.
static ALL: &[&dyn Executor] = &[
    &sh::Sh,
    &exec::Exec,
    &script::Script,
    &notebook::Notebook,
    &http::Http,
    &check::Check,
];

/// What an executor resolves a step attempt with.
pub(crate) struct ResolveCx<'a> {
    pub shared: &'a Shared,
    pub step: &'a Step,
    pub attempt_no: u32,
    pub ctx: &'a Context,
    /// The file the attempt's process writes its outputs to (`$ROTA_OUTPUT`).
    pub output_path: &'a Path,
    /// The step's working directory, rendered.
    pub workdir: PathBuf,
    /// The step's dry-run mode in a dry run (never `skip`: that is handled before).
    pub dry_run: Option<&'a DryRun>,
}

/// How a step kind runs.
pub(crate) trait Executor: Sync {
    /// The kind's name, as its syntax module in `rota_core::kinds` gives it.
    fn name(&self) -> &'static str;

    /// Renders the step's templates into what this attempt does (on the blocking pool).
    fn resolve(&self, r: &ResolveCx<'_>) -> Result<Resolved, String>;
}

/// The executor of kind `name`.
pub(crate) fn find(name: &str) -> Option<&'static dyn Executor> {
    ALL.iter().copied().find(|k| k.name() == name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_kind_has_one_executor() {
        let executors: Vec<&str> = super::ALL.iter().map(|k| k.name()).collect();
        let kinds: Vec<&str> = rota_core::kinds::names().collect();
        assert_eq!(executors, kinds);
    }
}
