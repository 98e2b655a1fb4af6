//! Process attempts that a worker (`rota worker`) runs instead of this process.
//!
//! A step with `runs_on:` labels, run by a server that hands steps to workers
//! ([`crate::run::EngineConfig::remote`]), renders as usual; its attempt is then given to
//! [`RemoteSteps::run`], which hands it over and waits for its end, while the worker runs it
//! with [`run_here`], the same function the engine runs its own process attempts with: one
//! place decides how a process's ending becomes a step's status, reason and outputs.
//! Without a server that hands steps over (`rota run`), `runs_on` is noted in the log and
//! the step runs here.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use rota_core::model::StepStatus;
use tokio_util::sync::CancellationToken;

use crate::guardian::Guardian;
use crate::outputs;
use crate::process::{self, Ending, LogLine, ProcessSpec};
use crate::redact::Redactor;

/// How one attempt of a step ended.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptEnd {
    /// Its status.
    pub status: StepStatus,
    /// The process's exit code, when it exited.
    pub exit_code: Option<i32>,
    /// What it published through `$ROTA_OUTPUT`, redacted.
    pub outputs: BTreeMap<String, String>,
    /// Why, in words, when not plain success.
    pub reason: Option<String>,
}

impl AttemptEnd {
    /// A failure before or around the process, with its reason.
    pub fn failed(reason: String) -> AttemptEnd {
        AttemptEnd::ended(StepStatus::Failed, reason)
    }

    /// An end with `status` and its reason, no process having said otherwise (no exit
    /// code, no outputs).
    pub fn ended(status: StepStatus, reason: String) -> AttemptEnd {
        AttemptEnd {
            status,
            exit_code: None,
            outputs: BTreeMap::new(),
            reason: Some(reason),
        }
    }
}

/// An attempt of a process step to run on a worker.
pub struct RemoteAttempt {
    /// The run.
    pub run_id: String,
    /// The run's namespace.
    pub namespace: String,
    /// The run's job.
    pub job_id: String,
    /// The step.
    pub step_id: String,
    /// The attempt, from 1.
    pub attempt: u32,
    /// Labels a worker must carry.
    pub runs_on: BTreeMap<String, String>,
    /// What to run, rendered (its environment holds the secret values the step receives).
    pub spec: ProcessSpec,
    /// The command as shown (redacted).
    pub display: String,
    /// The secret values the worker must redact from what it sends back.
    pub secret_values: Vec<String>,
}

/// Hands process attempts to workers and waits for their ends (implemented by the
/// application layer, which owns the store, the secret key and the workers' API).
pub trait RemoteSteps: Send + Sync {
    /// Hands `attempt` over and returns its end. `stop` asks for it to be stopped: the
    /// worker stops the process (SIGTERM, then SIGKILL after the grace period) and the
    /// answer is the attempt's end as the worker reports it, or abandoned if it does not.
    fn run<'a>(
        &'a self,
        attempt: RemoteAttempt,
        stop: &'a CancellationToken,
    ) -> Pin<Box<dyn Future<Output = AttemptEnd> + Send + 'a>>;
}

/// Runs a process attempt in this process and reads its outputs: what the engine does with
/// the attempts it runs itself and what a worker does with the ones it claimed. Lines go to
/// `on_line` (already redacted); outputs are redacted too. A stop through `cancel` ends as
/// `stopped()` says (cancelled, or timed out when the run's deadline stopped it).
pub async fn run_here(
    spec: &ProcessSpec,
    output_path: &Path,
    redactor: &Redactor,
    cancel: &CancellationToken,
    guardian: Option<&Arc<Guardian>>,
    on_line: &mut (dyn FnMut(LogLine) + Send),
    stopped: impl FnOnce() -> (StepStatus, String),
) -> AttemptEnd {
    let outcome = match process::supervise(spec, redactor, cancel, guardian, on_line).await {
        Ok(outcome) => outcome,
        Err(error) => return AttemptEnd::failed(start_failure(spec, &error)),
    };
    // Outputs are printed, stored and passed to later steps: like log lines, they must not
    // carry a secret value (GitHub Actions masks such outputs the same way).
    let outputs = outputs::take_outputs(output_path).map(|outputs| {
        outputs
            .into_iter()
            .map(|(key, value)| (key, redactor.redact(&value).into_owned()))
            .collect::<BTreeMap<_, _>>()
    });
    let (status, exit_code, reason) = match outcome.ending {
        Ending::Exited(0) => (StepStatus::Succeeded, Some(0), None),
        Ending::Exited(code) => (
            StepStatus::Failed,
            Some(code),
            Some(format!("exited with code {code}")),
        ),
        Ending::Signalled(signal) => (
            StepStatus::Failed,
            None,
            Some(format!("killed by signal {signal}")),
        ),
        Ending::TimedOut => (
            StepStatus::TimedOut,
            None,
            Some(format!(
                "timed out after {}",
                crate::run::humantime(spec.timeout.unwrap_or_default())
            )),
        ),
        Ending::Cancelled => {
            let (status, reason) = stopped();
            (status, None, Some(reason))
        }
    };
    let reason = match (outcome.memory_exceeded, spec.resources.memory) {
        (true, Some(limit)) if status == StepStatus::Failed => {
            Some(memory_reason(reason.as_deref(), limit))
        }
        _ => reason,
    };
    match outputs {
        Ok(outputs) => AttemptEnd {
            status,
            exit_code,
            outputs,
            reason,
        },
        Err(problem) if status == StepStatus::Succeeded => AttemptEnd {
            status: StepStatus::Failed,
            exit_code,
            outputs: BTreeMap::new(),
            reason: Some(problem),
        },
        Err(_) => AttemptEnd {
            status,
            exit_code,
            outputs: BTreeMap::new(),
            reason,
        },
    }
}

/// Why a process could not start; a missing working directory fails the spawn with the
/// same error as a missing program, so it is named first.
fn start_failure(spec: &ProcessSpec, error: &process::SpawnError) -> String {
    match &spec.cwd {
        Some(dir) if !dir.is_dir() => format!("workdir {} does not exist", dir.display()),
        _ => format!("cannot start {}: {error}", spec.program),
    }
}

/// A failure after the kernel killed a process of the attempt for memory, said so: the
/// process's own ending (`killed by signal 9`, or the exit code its shell passed on) reads
/// like any crash otherwise.
pub(crate) fn memory_reason(ending: Option<&str>, limit: u64) -> String {
    let limit = rota_core::resources::format_bytes(limit);
    match ending {
        Some(ending) => {
            format!("out of memory: killed for going over its {limit} memory limit ({ending})")
        }
        None => format!("out of memory: killed for going over its {limit} memory limit"),
    }
}
