//! The `notebook:` step kind: prepared here, executed natively by `rota-notebook`.

use std::path::PathBuf;

use rota_core::model::{Step, StepKind, StepStatus};
use rota_core::template::Context;

use crate::run::Shared;

/// A notebook step with its templates rendered.
pub(crate) struct NotebookWork {
    input: PathBuf,
}

impl NotebookWork {
    pub(crate) fn display(&self) -> String {
        format!("notebook {}", self.input.display())
    }
}

/// How the notebook attempt ended.
pub(crate) struct NotebookResult {
    pub status: StepStatus,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

pub(crate) fn resolve(
    shared: &Shared,
    step: &Step,
    _attempt_no: u32,
    ctx: &Context,
    _workdir: PathBuf,
) -> Result<NotebookWork, String> {
    let StepKind::Notebook { path, .. } = &step.kind else {
        return Err("not a notebook step".to_owned());
    };
    let input = shared.base_dir.join(
        rota_core::template::render(path, ctx).map_err(|e| format!("cannot render {path:?}: {e}"))?,
    );
    Ok(NotebookWork { input })
}

pub(crate) async fn run(
    _shared: &Shared,
    _step: &Step,
    _attempt_no: u32,
    work: NotebookWork,
) -> NotebookResult {
    NotebookResult {
        status: StepStatus::Failed,
        exit_code: None,
        reason: Some(format!("{}: notebook execution is not wired yet", work.display())),
    }
}
