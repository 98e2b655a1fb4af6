//! The `job:` step kind: runs another job of the run's namespace as a child run and waits
//! for it, through the run's [`ChildRuns`](crate::children::ChildRuns) port.
//!
//! No process runs here. The step's parameters are rendered, the port starts the child (or
//! adopts the one an earlier attempt of this step left unfinished) and the attempt waits
//! for its end: it succeeds when the child run succeeds, and publishes each of the child's
//! step outputs as `<child step>.<key>`. A stop of the step (cancel, the run's deadline)
//! or its `timeout` stops the child run, whose own cleanup steps still run unless the stop
//! is forced; the attempt ends once the child has. In a dry run the child is a dry run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rota_core::kinds::job::JobStep;
use rota_core::model::{RunStatus, StepStatus, Value};

use super::{Executor, ResolveCx};
use crate::children::{ChildEnd, ChildRequest, ParentRef};
use crate::step::{
    Attempt, AttemptCx, Resolved, Work, render_value, stopped_reason, stopped_status, system_line,
};

pub(crate) struct Job;

impl Executor for Job {
    fn name(&self) -> &'static str {
        "job"
    }

    fn resolve(&self, r: &ResolveCx<'_>) -> Result<Resolved, String> {
        let call: JobStep = r.step.kind.decode()?;
        let params = call
            .params
            .iter()
            .map(|(name, value)| Ok((name.clone(), render_value(value, r.ctx)?)))
            .collect::<Result<BTreeMap<String, Value>, String>>()?;
        let work = JobWork {
            job_id: call.id,
            params,
            // `dry_run: skip` never gets here; any other mode starts the child as a dry run.
            dry_run: r.dry_run.is_some(),
            timeout: r.step.timeout,
        };
        let display = r.shared.redactor.redact(&work.display()).into_owned();
        Ok(Resolved::Work {
            work: Box::new(work),
            display,
        })
    }
}

/// A `job` step with its parameters rendered.
struct JobWork {
    job_id: String,
    params: BTreeMap<String, Value>,
    dry_run: bool,
    timeout: Option<std::time::Duration>,
}

impl JobWork {
    /// `job deploy-one (env=prod, tag=v1)`, before redaction; `dry run of job …` in a dry run.
    fn display(&self) -> String {
        let mut text = if self.dry_run {
            format!("dry run of job {}", self.job_id)
        } else {
            format!("job {}", self.job_id)
        };
        if !self.params.is_empty() {
            let shown: Vec<String> = self
                .params
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect();
            let _ = write!(text, " ({})", shown.join(", "));
        }
        text
    }
}

/// How the wait for the child ended, when not by the child's own end.
enum Interruption {
    Stopped,
    TimedOut,
}

impl Work for JobWork {
    fn run<'a>(
        self: Box<Self>,
        at: AttemptCx<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Attempt> + Send + 'a>> {
        Box::pin(async move {
            let log = |text: &str| {
                let text = at.shared.redactor.redact(text).into_owned();
                system_line(at.shared, at.step, at.attempt_no, text);
            };
            let failed = |reason: String| Attempt {
                status: StepStatus::Failed,
                exit_code: None,
                outputs: BTreeMap::new(),
                reason: Some(at.shared.redactor.redact(&reason).into_owned()),
            };
            let Some(children) = at.shared.config.children.clone() else {
                return failed(
                    "job steps need a runner of child runs: this process cannot start one"
                        .to_owned(),
                );
            };
            if at.stop.is_cancelled() {
                return Attempt {
                    status: stopped_status(at.shared),
                    exit_code: None,
                    outputs: BTreeMap::new(),
                    reason: Some(stopped_reason(at.shared)),
                };
            }
            let request = ChildRequest {
                parent: ParentRef {
                    run_id: at.shared.run_id.clone(),
                    namespace: at.shared.namespace.clone(),
                    step_id: at.step.id.clone(),
                    attempt: at.attempt_no,
                },
                job_id: self.job_id.clone(),
                params: self.params.clone(),
                dry_run: self.dry_run,
                config: at.shared.config.clone(),
            };
            // Not raced against the stop: a start given up halfway could leave a child
            // running that nobody waits for. Starting is quick; the wait below is raced.
            let child = match children.start_or_adopt(request).await {
                Ok(child) => child,
                Err(reason) => {
                    log(&format!("! {reason}"));
                    return failed(reason);
                }
            };
            log(&format!(
                "{} child run {} of job {}",
                if child.adopted {
                    "adopted the unfinished"
                } else {
                    "started"
                },
                child.run_id,
                self.job_id
            ));
            let mut end = child.end;
            let force = at.shared.stop.step_token(true);
            let deadline = async {
                match self.timeout {
                    Some(timeout) => tokio::time::sleep(timeout).await,
                    None => std::future::pending().await,
                }
            };
            let (ended, interrupted) = tokio::select! {
                ended = &mut end => (Some(ended), None),
                () = at.stop.cancelled() => (None, Some(Interruption::Stopped)),
                () = deadline => (None, Some(Interruption::TimedOut)),
            };
            let ended = match ended {
                Some(ended) => ended,
                None => {
                    log(&format!("stopping child run {}", child.run_id));
                    (child.stop)(force.is_cancelled());
                    // The child ends on its own once stopped (its cleanup steps within
                    // their timeouts); a forced stop of this run forces it too.
                    tokio::select! {
                        ended = &mut end => ended,
                        () = force.cancelled() => {
                            (child.stop)(true);
                            end.await
                        }
                    }
                }
            };
            log(&format!(
                "child run {} ended {}",
                ended.run_id,
                ended.status.as_str()
            ));
            let outputs = child_outputs(&ended)
                .into_iter()
                .map(|(k, v)| (k, at.shared.redactor.redact(&v).into_owned()))
                .collect();
            let (status, reason) = match interrupted {
                Some(Interruption::Stopped) => (
                    stopped_status(at.shared),
                    Some(format!(
                        "{}; child run {} ended {}",
                        stopped_reason(at.shared),
                        ended.run_id,
                        ended.status.as_str()
                    )),
                ),
                Some(Interruption::TimedOut) => (
                    StepStatus::TimedOut,
                    Some(format!(
                        "timed out after {}; child run {} ended {}",
                        crate::run::humantime(self.timeout.unwrap_or_default()),
                        ended.run_id,
                        ended.status.as_str()
                    )),
                ),
                None if ended.status == RunStatus::Succeeded => (StepStatus::Succeeded, None),
                None => (StepStatus::Failed, Some(end_reason(&self.job_id, &ended))),
            };
            Attempt {
                status,
                exit_code: None,
                outputs,
                reason: reason.map(|r| at.shared.redactor.redact(&r).into_owned()),
            }
        })
    }
}

/// "child run R of job J ended failed: step `x` failed…".
fn end_reason(job_id: &str, ended: &ChildEnd) -> String {
    let mut reason = format!(
        "child run {} of job {job_id} ended {}",
        ended.run_id,
        ended.status.as_str()
    );
    if let Some(why) = &ended.reason {
        let _ = write!(reason, ": {why}");
    }
    reason
}

/// The child's step outputs as `<step>.<key>`.
fn child_outputs(ended: &ChildEnd) -> BTreeMap<String, String> {
    ended
        .steps
        .iter()
        .flat_map(|(step, outputs)| {
            outputs
                .iter()
                .map(move |(key, value)| (format!("{step}.{key}"), value.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_named_by_step_and_key() {
        let ended = ChildEnd {
            run_id: "r".into(),
            status: RunStatus::Succeeded,
            reason: None,
            steps: vec![
                (
                    "greet".into(),
                    BTreeMap::from([("word".into(), "hello".into())]),
                ),
                ("quiet".into(), BTreeMap::new()),
            ],
        };
        assert_eq!(
            child_outputs(&ended),
            BTreeMap::from([("greet.word".to_owned(), "hello".to_owned())])
        );
    }
}
