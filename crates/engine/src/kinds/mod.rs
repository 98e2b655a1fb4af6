//! How the step kinds that do work of their own run, one module per kind, registered by
//! the name its syntax module in `rota_core::kinds` gives it: the executor renders the
//! step's templates into what the attempt does (work raced against the step's stop and
//! timeout with [`crate::step::race`] and logged through the step's redactor, or a
//! process it starts itself), or what a dry run shows instead.
//!
//! A process kind (`sh`, `exec`, `script`) has no executor here: its syntax module says
//! what command it runs (`rota_core::kinds::command`), and `step::resolve` starts that
//! through [`crate::process::supervise`] like every step process.

use std::path::{Path, PathBuf};

use rota_core::model::{DryRun, Step};
use rota_core::template::Context;

use crate::run::Shared;
use crate::step::Resolved;

mod approval;
mod check;
pub(crate) mod container;
pub(crate) mod http;
mod job;
mod notebook;
mod sql;

/// The executor of every kind that is not a process kind, one line each.
static ALL: &[&dyn Executor] = &[
    &notebook::Notebook,
    &http::Http,
    &check::Check,
    &sql::Sql,
    &container::Container,
    &approval::Approval,
    &job::Job,
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
    fn every_kind_runs_either_a_command_or_its_executor() {
        for kind in rota_core::kinds::names() {
            let executor = super::find(kind).is_some();
            let command = rota_core::kinds::is_command_kind(kind);
            assert!(
                executor != command,
                "kind `{kind}`: executor {executor}, command {command}: exactly one is needed"
            );
        }
        for executor in super::ALL {
            assert!(
                rota_core::kinds::names().any(|kind| kind == executor.name()),
                "executor `{}` has no syntax module",
                executor.name()
            );
        }
        assert!(
            rota_core::kinds::is_command_kind("sh") && !rota_core::kinds::is_command_kind("http"),
            "a process kind answers with a command, a kind with an executor does not"
        );
    }
}
