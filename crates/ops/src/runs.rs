//! Runs: the approval gate, queueing runs and retries, and the one preparation of a run
//! for the engine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use jiff::Timestamp;
use rota_core::model::{Job, RunStatus, Value};
use rota_engine::confirm::Confirmations;
use rota_engine::run::{PriorStep, RunRequest};
use rota_store::{JobRevision, NewRun, Owner, RunEvent, RunRecord};

use crate::records::RetryRun;
use crate::resume::ResumeSource;
use crate::{Actor, Ops, OpsError, WEBHOOK_BODY_FILE};

/// What the approval gate was asked to let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gated {
    /// Starting a run without a plan.
    Start,
    /// Retrying a run, which would run the job again without a plan.
    Retry,
}

/// The approval gate: a job with `approval:` rules runs only through plan → approve →
/// apply, so starting or retrying it directly is refused, whoever asks and however.
pub fn approval_gate(job: &Job, namespace: &str, gated: Gated) -> Result<(), OpsError> {
    match job.approval {
        None => Ok(()),
        Some(_) => Err(OpsError::NeedsPlan {
            namespace: namespace.to_owned(),
            job: job.id.clone(),
            gated,
        }),
    }
}

/// A run to execute, before its secrets are read: from a job file just loaded
/// ([`RunSpec`] built by hand) or from the store ([`Ops::claimed_run`]).
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The run's id.
    pub run_id: String,
    /// The job, as of `job_revision`.
    pub job: Job,
    /// The job revision the run records.
    pub job_revision: i64,
    /// The namespace it runs in.
    pub namespace: String,
    /// Resolved parameters.
    pub params: BTreeMap<String, Value>,
    /// Whether it is a dry run.
    pub dry_run: bool,
    /// What started it.
    pub trigger: String,
    /// Who asked for it; `None` for a trigger.
    pub started_by: Option<String>,
    /// The schedule occurrence it is for.
    pub scheduled_at: Option<Timestamp>,
    /// The job file the revision came from, if any.
    pub source_path: Option<String>,
    /// Steps already recorded (a retry's copied steps, a resumed run's finished ones).
    pub prior: Vec<PriorStep>,
    /// Variables read from `--env-file`s on the machine that started the run: secrets
    /// like the job's `env_file:` ones, and winning over them. Never stored.
    pub env_values: BTreeMap<String, String>,
    /// The notebook step it resumes from an earlier run's failed cell, if any.
    pub resume: Option<ResumeSource>,
    /// Who confirmed its `confirm:` steps beforehand, as recorded with a queued run.
    pub confirmed_by: Option<String>,
}

impl RunSpec {
    /// The spec of the stored `run` of `revision`.
    pub fn stored(run: &RunRecord, revision: &JobRevision) -> Result<RunSpec, OpsError> {
        Ok(RunSpec {
            run_id: run.id.clone(),
            job: revision.job()?,
            job_revision: run.job_revision,
            namespace: run.namespace.clone(),
            params: params_of(run),
            dry_run: run.dry_run,
            trigger: run.trigger.clone(),
            started_by: run.started_by.clone(),
            scheduled_at: run.scheduled_at,
            source_path: revision.source_path.clone(),
            prior: run.steps.iter().map(PriorStep::from).collect(),
            env_values: BTreeMap::new(),
            resume: ResumeSource::of(run),
            confirmed_by: run.confirmed_by.clone(),
        })
    }
}

/// A stored run's parameters (a JSON object).
fn params_of(run: &RunRecord) -> BTreeMap<String, Value> {
    match &run.params {
        Value::Object(map) => map.clone().into_iter().collect(),
        _ => BTreeMap::new(),
    }
}

/// `given` parameters resolved against the job's declarations (coerced, defaults filled),
/// or every one that does not fit.
pub fn resolve_params(
    job: &Job,
    given: BTreeMap<String, Value>,
) -> Result<BTreeMap<String, Value>, OpsError> {
    rota_core::params::resolve(job, &given, &[]).map_err(OpsError::InvalidParams)
}

/// The variables of the job's `env_file:` (relative to `base_dir`, the job file's
/// directory), or none; a file that is missing or does not parse refuses the run.
fn read_env_file(job: &Job, base_dir: &Path) -> Result<BTreeMap<String, String>, OpsError> {
    let Some(path) = &job.env_file else {
        return Ok(BTreeMap::new());
    };
    let vars = rota_core::dotenv::read(&base_dir.join(path))
        .map_err(|e| OpsError::Invalid(format!("job {}: env_file: {e}", job.id)))?;
    Ok(vars.into_iter().collect())
}

/// How an ephemeral namespace's name starts.
const EPHEMERAL_PREFIX: &str = "adhoc-";

/// SPEC §1: a job run ad hoc without a namespace gets a stable ephemeral one, a short
/// digest of host, user and `what` (the file's absolute path, or the command).
pub fn ephemeral_namespace(what: &str) -> String {
    use sha2::Digest;
    let user = crate::local_user();
    let digest = sha2::Sha256::digest(format!(
        "{}\0{user}\0{what}",
        rota_engine::owner::host_name()
    ));
    format!("{EPHEMERAL_PREFIX}{}", &hex::encode(digest)[..10])
}

/// Whether `namespace` is an ephemeral one ([`ephemeral_namespace`]).
pub fn is_ephemeral(namespace: &str) -> bool {
    namespace.starts_with(EPHEMERAL_PREFIX)
}

impl Ops {
    /// The latest revision of a job and the job it defines.
    pub async fn latest_job(&self, namespace: &str, job: &str) -> Result<(i64, Job), OpsError> {
        let revision = self
            .store
            .latest_job_revision(namespace, job)
            .await?
            .ok_or_else(|| OpsError::NotFound(format!("job {namespace}/{job}")))?;
        Ok((revision.revision, revision.job()?))
    }

    /// The run `id`.
    pub async fn run(&self, id: &str) -> Result<RunRecord, OpsError> {
        self.store
            .get_run(id)
            .await?
            .ok_or_else(|| OpsError::NotFound(format!("run {id:?}")))
    }

    /// The job revision `run` records.
    async fn revision_of(&self, run: &RunRecord) -> Result<JobRevision, OpsError> {
        self.store
            .job_revision(&run.namespace, &run.job_id, run.job_revision)
            .await?
            .ok_or_else(|| {
                OpsError::NotFound(format!(
                    "revision {} of job {}/{}",
                    run.job_revision, run.namespace, run.job_id
                ))
            })
    }

    /// The spec of a stored run (a queued run just claimed, a retry, a resumed run).
    pub async fn claimed_run(&self, run_id: &str) -> Result<RunSpec, OpsError> {
        let run = self.run(run_id).await?;
        let revision = self.revision_of(&run).await?;
        RunSpec::stored(&run, &revision)
    }

    /// Queues a run of the job's latest revision with `given` parameters (coerced to the
    /// job's declarations), behind the approval gate; `rota serve` claims and executes it.
    /// With `confirmed_by`, its `confirm:` steps are confirmed beforehand by that principal,
    /// who must be allowed to ([`Ops::confirmations`]), recorded with the run.
    #[allow(clippy::too_many_arguments)]
    pub async fn queue_run(
        &self,
        namespace: &str,
        job_id: &str,
        given: BTreeMap<String, Value>,
        dry_run: bool,
        trigger: &str,
        started_by: Option<&str>,
        confirmed_by: Option<&crate::auth::Principal>,
    ) -> Result<RunRecord, OpsError> {
        let (revision, job) = self.latest_job(namespace, job_id).await?;
        approval_gate(&job, namespace, Gated::Start)?;
        let params = resolve_params(&job, given)?;
        let confirmed = match confirmed_by {
            Some(principal) => match Ops::confirmations(principal, &job, namespace, true)? {
                Confirmations::Given { by } => Some(by),
                _ => None,
            },
            None => None,
        };
        let run = NewRun {
            id: rota_store::ids::new_run_id(),
            namespace: namespace.to_owned(),
            job_id: job_id.to_owned(),
            job_revision: revision,
            params: Value::Object(params.into_iter().collect()),
            dry_run,
            trigger: trigger.to_owned(),
            started_by: started_by.map(str::to_owned),
            scheduled_at: None,
            created_at: Timestamp::now(),
            // Nobody owns a queued run: the server that claims it becomes its owner.
            owner: Owner::nobody(),
            steps: job.steps.iter().map(|s| s.id.clone()).collect(),
            parent: None,
        };
        let id = run.id.clone();
        let mut events = vec![RunEvent::RunCreated { run }];
        if let Some(by) = confirmed {
            events.push(RunEvent::RunConfirmed {
                run_id: id.clone(),
                by,
            });
        }
        self.store.record(&events).await?;
        self.hub().run_queued();
        self.run(&id).await
    }

    /// Queues a retry of the ended run `id` by `actor`: a new run of the same job revision
    /// and parameters. With `from`, that step and every step downstream of it run again and
    /// the others keep the original's results; without it every step runs again.
    pub async fn queue_retry(
        &self,
        actor: &Actor,
        id: &str,
        how: &RetryRun,
    ) -> Result<RunRecord, OpsError> {
        let from = how.from.as_deref();
        let original = self.run(id).await?;
        let job = self.revision_of(&original).await?.job()?;
        approval_gate(&job, &original.namespace, Gated::Retry)?;
        let resume_step = match (how.resume, from) {
            (false, _) => None,
            (true, None) => {
                return Err(OpsError::Invalid(
                    "--resume needs --from STEP: the notebook step to resume".to_owned(),
                ));
            }
            (true, Some(step)) => {
                self.check_resumable(&original, &job, step).await?;
                Some(step)
            }
        };
        let rerun: Option<BTreeSet<String>> = match from {
            None => None,
            Some(from) => Some(rota_core::dag::downstream(&job, from).ok_or_else(|| {
                OpsError::Invalid(format!(
                    "run {} has no step {from:?} (job {}/{})",
                    original.id, original.namespace, original.job_id
                ))
            })?),
        };
        let new_id = rota_store::ids::new_run_id();
        let retry = self
            .store
            .create_retry_run(
                &original.id,
                &new_id,
                rerun.as_ref(),
                resume_step,
                &actor.name,
                Timestamp::now(),
            )
            .await
            .map_err(|e| match e {
                rota_store::StoreError::RunNotEnded { run_id, status } => OpsError::Conflict(
                    format!("run {run_id} has not ended yet ({status}); cancel it or wait"),
                ),
                other => other.into(),
            })?;
        self.hub().run_queued();
        Ok(retry)
    }

    /// Asks the process running run `id` to cancel it; a conflict if it has already ended.
    pub async fn cancel_run(&self, actor: &Actor, id: &str) -> Result<RunRecord, OpsError> {
        let run = self.run(id).await?;
        // A run waiting at its gates has nobody executing it to ask: it ends here.
        if run.status == RunStatus::AwaitingApproval
            && self.cancel_waiting_run(&run.id, &actor.name).await?
        {
            return self.run(&run.id).await;
        }
        if !self.store.request_cancel(&run.id, &actor.name).await? {
            return Err(OpsError::Conflict(format!(
                "run {id} has already ended ({})",
                run.status.as_str()
            )));
        }
        Ok(run)
    }

    /// Turns a run about to execute into what the engine executes: its secrets resolved
    /// (the namespace's secrets store first, this process's environment for names it
    /// lacks), each use recorded and audited before anything runs, the webhook body that
    /// started it handed to its steps, and its base directory decided by one rule:
    /// the job file's directory, else this `Ops`'s default directory (the working
    /// directory of a local `rota`, `$ROTA_HOME` for `rota serve`).
    pub async fn prepare_run(&self, spec: RunSpec) -> Result<RunRequest, OpsError> {
        let RunSpec {
            run_id,
            mut job,
            job_revision,
            namespace,
            params,
            dry_run,
            trigger,
            started_by,
            scheduled_at,
            source_path,
            prior,
            env_values,
            resume,
            confirmed_by,
        } = spec;
        let runner = self.runner.as_ref().ok_or(OpsError::NotARunner)?;
        let base_dir = source_path
            .as_deref()
            .and_then(|p| Path::new(p).parent())
            .map_or_else(|| runner.default_dir.clone(), Path::to_owned);
        let mut env_file = read_env_file(&job, &base_dir)?;
        env_file.extend(env_values);
        // A name an env file gives is not looked up in the secrets store.
        let store_secrets = Job {
            secrets: job
                .secrets
                .iter()
                .filter(|name| !env_file.contains_key(*name))
                .cloned()
                .collect(),
            ..job.clone()
        };
        let secrets = self
            .read_secrets(&runner.home, &store_secrets, &namespace)
            .await?;
        self.store
            .record_secret_use(&run_id, &secrets.uses, Timestamp::now())
            .await?;
        let mut exposed = secrets.exposed();
        exposed.extend(env_file);
        let body = runner.artifacts_dir.join(&run_id).join(WEBHOOK_BODY_FILE);
        if body.exists() {
            job.env.insert(
                "ROTA_WEBHOOK_BODY_FILE".to_owned(),
                body.display().to_string(),
            );
        }
        let gates = self.gate_states(&run_id).await?;
        let resume = match resume {
            Some(source) => Some(self.notebook_resume(&source).await?),
            None => None,
        };
        Ok(RunRequest {
            run_id,
            job,
            job_revision,
            namespace,
            params,
            secrets: exposed,
            dry_run,
            trigger,
            started_by,
            scheduled_at,
            base_dir,
            prior,
            gates,
            // Confirmed beforehand when it was queued so; a terminal to ask, or a local
            // `--yes`, is the caller's to add; anywhere else a confirmation waits as a gate.
            confirmations: confirmed_by
                .map_or_else(Default::default, |by| Confirmations::Given { by }),
            // A child run's link is set by `children::Children`, which starts it.
            parent: None,
            resume,
        })
    }

    /// The job's secrets for a run in `namespace`.
    async fn read_secrets(
        &self,
        home: &Path,
        job: &Job,
        namespace: &str,
    ) -> Result<rota_secrets::Resolved, OpsError> {
        if job.secrets.is_empty() {
            return Ok(rota_secrets::Resolved::default());
        }
        let key =
            rota_secrets::SecretKey::load(home).map_err(|e| OpsError::Secrets(e.to_string()))?;
        match rota_secrets::resolve(&self.store, key.as_ref(), namespace, &job.secrets).await {
            Ok(resolved) => Ok(resolved),
            Err(rota_secrets::SecretsError::Missing {
                namespace: searched,
                names,
            }) if job.namespace.is_none() && is_ephemeral(&searched) => Err(OpsError::Secrets(
                self.ephemeral_secrets_hint(job, &searched, &names).await,
            )),
            Err(e) => Err(OpsError::Secrets(format!("job {}: {e}", job.id))),
        }
    }

    /// Why secrets are missing from an ad-hoc run, and how to reach them: its namespace is
    /// a digest nobody stores secrets in (`rota secrets set` writes to `default`), so the
    /// usual cause is a secret set in another namespace.
    async fn ephemeral_secrets_hint(&self, job: &Job, namespace: &str, names: &[String]) -> String {
        let mut in_default = Vec::new();
        for name in names {
            if let Ok(Some(_)) = self
                .store
                .latest_secret(rota_store::DEFAULT_NAMESPACE, name)
                .await
            {
                in_default.push(name.as_str());
            }
        }
        let found = if in_default.is_empty() {
            String::new()
        } else {
            format!(
                "; {} {} set in namespace {}",
                in_default.join(", "),
                if in_default.len() == 1 { "is" } else { "are" },
                rota_store::DEFAULT_NAMESPACE
            )
        };
        format!(
            "job {}: secret {} is not set in namespace {namespace} (an ad-hoc run's \
             namespace, a digest of host, user and file) nor in the environment{found}. Run it \
             in the namespace that holds the secret with `-n {ns}`, or give the job \
             `namespace: {ns}`, or set it for this namespace with `rota secrets set NAME -n \
             {namespace}`",
            job.id,
            names.join(", "),
            ns = if in_default.is_empty() {
                "NAMESPACE"
            } else {
                rota_store::DEFAULT_NAMESPACE
            },
        )
    }
}
