//! Backfill: one queued run per occurrence of a job's time triggers in a past (or future)
//! range, exactly as the scheduler would have recorded them, shared by `rota backfill` and
//! `POST /api/v1/namespaces/{namespace}/jobs/{job}/schedule/backfill`.
//!
//! Each occurrence is recorded with its queued run in one transaction
//! ([`Store::record_occurrence`]), so an occurrence already recorded (run, skipped or
//! missed) is not run again, and a backfill repeated over the same range queues nothing
//! new. The runs wait in the store's queue; `rota serve` executes them under the job's
//! policies, oldest first. The application layer reaches this module through
//! [`Schedules`] (`rota-ops` cannot depend on this crate): the daemon installs it for the
//! API, the CLI for its local mode.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rota_core::model::Job;
use rota_store::{NewOccurrence, NewRun, OccurrenceKind, Owner, Store, StoreError};

use crate::ServerError;
use crate::trigger::{CompiledTrigger, upcoming};

/// Most occurrences one API backfill may queue; a longer range is refused whole.
pub const API_LIMIT: usize = 1000;

/// Why a backfill queued nothing (or stopped).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackfillError {
    /// The job has no stored revision (or was deleted).
    #[error("no stored job {job:?} in namespace {namespace:?}")]
    JobNotFound {
        /// Namespace.
        namespace: String,
        /// Job id.
        job: String,
    },
    /// The range ends before it starts.
    #[error("the range ends ({to}) before it starts ({from})")]
    Backwards {
        /// Start of the range.
        from: Timestamp,
        /// End of the range.
        to: Timestamp,
    },
    /// The range holds more occurrences than allowed; nothing was queued.
    #[error("the range holds more than {limit} occurrences; backfill a shorter range")]
    TooMany {
        /// The limit.
        limit: usize,
    },
    /// The job's default parameters do not resolve (a required parameter has no default).
    #[error("the job's parameters need values a backfill cannot give: {0}")]
    Params(String),
    /// The stored definition does not load or its triggers do not compile.
    #[error("stored job {job:?} cannot be scheduled: {detail}")]
    BadJob {
        /// Job id.
        job: String,
        /// What went wrong.
        detail: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One occurrence a backfill covered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Backfilled {
    /// When it was due.
    pub scheduled_at: Timestamp,
    /// The trigger's key.
    pub trigger: String,
    /// The run queued for it; `None` when the occurrence was already recorded.
    pub run_id: Option<String>,
}

/// The occurrences of the job's time triggers in `[from, to]`, in time order, each with its
/// trigger key. Start-anchored intervals use `origin_of(key)` as their grid origin, or
/// `from`. More than `limit` occurrences is [`BackfillError::TooMany`].
pub fn occurrences(
    triggers: &[CompiledTrigger],
    from: Timestamp,
    to: Timestamp,
    limit: usize,
    origin_of: impl Fn(&str) -> Option<Timestamp>,
) -> Result<Vec<(Timestamp, String)>, BackfillError> {
    if to < from {
        return Err(BackfillError::Backwards { from, to });
    }
    let just_before = from
        .checked_sub(jiff::SignedDuration::from_nanos(1))
        .unwrap_or(from);
    let mut found = Vec::new();
    for trigger in triggers {
        let origin = origin_of(&trigger.key).unwrap_or(from);
        let mut cursor = just_before;
        while let Some(at) = trigger
            .next_after(origin, cursor)
            .filter(|&at| at > cursor && at <= to)
        {
            if found.len() == limit {
                return Err(BackfillError::TooMany { limit });
            }
            found.push((at, trigger.key.clone()));
            cursor = at;
        }
    }
    found.sort();
    Ok(found)
}

/// Queues one run (trigger `backfill`, the job's default parameters, its latest revision)
/// per occurrence of the job's time triggers in `[from, to]`, each recorded with its
/// occurrence; occurrences already recorded are reported with no run. At most `limit`
/// occurrences: a longer range queues nothing. `owner` is recorded on the runs until a
/// server claims them.
pub async fn backfill(
    store: &Store,
    namespace: &str,
    job_id: &str,
    from: Timestamp,
    to: Timestamp,
    limit: usize,
    owner: &Owner,
) -> Result<Vec<Backfilled>, BackfillError> {
    let (revision, job) = stored_job(store, namespace, job_id).await?;
    let triggers = compile(&job)?;
    let origins = origins(store, namespace, job_id).await?;
    let due = occurrences(&triggers, from, to, limit, |key| origins.get(key).copied())?;
    let params = rota_core::params::resolve(&job, &BTreeMap::new(), &[]).map_err(|errors| {
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        BackfillError::Params(text.join("; "))
    })?;
    let params = serde_json::Value::Object(params.into_iter().collect());
    let steps: Vec<String> = job.steps.iter().map(|s| s.id.clone()).collect();
    let mut done = Vec::with_capacity(due.len());
    for (at, trigger) in due {
        let now = Timestamp::now();
        let run = NewRun {
            id: rota_store::ids::new_run_id(),
            namespace: namespace.to_owned(),
            job_id: job_id.to_owned(),
            job_revision: revision,
            params: params.clone(),
            dry_run: false,
            trigger: "backfill".to_owned(),
            started_by: None,
            scheduled_at: Some(at),
            created_at: now,
            owner: owner.clone(),
            steps: steps.clone(),
            parent: None,
        };
        let occurrence = NewOccurrence {
            namespace: namespace.to_owned(),
            job_id: job_id.to_owned(),
            trigger_key: trigger.clone(),
            scheduled_at: at,
            recorded_at: now,
            kind: OccurrenceKind::Run,
            reason: Some("backfill".to_owned()),
        };
        let queued = store.record_occurrence(&occurrence, Some(&run)).await?;
        done.push(Backfilled {
            scheduled_at: at,
            trigger,
            run_id: queued.then_some(run.id),
        });
    }
    Ok(done)
}

/// The keys of the job's time triggers and their next `count` fire times after `now`,
/// merged in time order (what `rota schedule next` shows).
pub async fn next_fire_times(
    store: &Store,
    namespace: &str,
    job_id: &str,
    now: Timestamp,
    count: usize,
) -> Result<(Vec<String>, Vec<(Timestamp, String)>), BackfillError> {
    let (_, job) = stored_job(store, namespace, job_id).await?;
    let triggers = compile(&job)?;
    let origins = origins(store, namespace, job_id).await?;
    let keys = triggers
        .iter()
        .filter(|t| t.is_timed())
        .map(|t| t.key.clone())
        .collect();
    let times = upcoming(&triggers, now, count, |key| origins.get(key).copied());
    Ok((keys, times))
}

async fn stored_job(
    store: &Store,
    namespace: &str,
    job_id: &str,
) -> Result<(i64, Job), BackfillError> {
    let revision = store
        .latest_job_revision(namespace, job_id)
        .await?
        .ok_or_else(|| BackfillError::JobNotFound {
            namespace: namespace.to_owned(),
            job: job_id.to_owned(),
        })?;
    let job = revision.job().map_err(|e| BackfillError::BadJob {
        job: job_id.to_owned(),
        detail: e.to_string(),
    })?;
    Ok((revision.revision, job))
}

fn compile(job: &Job) -> Result<Vec<CompiledTrigger>, BackfillError> {
    CompiledTrigger::compile_all(job).map_err(|e: ServerError| BackfillError::BadJob {
        job: job.id.clone(),
        detail: e.to_string(),
    })
}

async fn origins(
    store: &Store,
    namespace: &str,
    job_id: &str,
) -> Result<BTreeMap<String, Timestamp>, StoreError> {
    Ok(store
        .trigger_states(namespace, job_id)
        .await?
        .into_iter()
        .map(|(key, state)| (key, state.origin))
        .collect())
}

/// This module as the application layer reaches it (`rota_ops::Ops::with_schedules`):
/// the daemon installs it for the API, the CLI for its local mode. Queued runs are owned
/// by nobody: the server that claims one becomes its owner.
#[derive(Debug, Clone, Copy)]
pub struct Schedules {
    /// Most occurrences one backfill may queue; a longer range is refused whole.
    limit: usize,
}

impl Schedules {
    /// The API's: at most [`API_LIMIT`] occurrences per backfill.
    pub const fn api() -> Schedules {
        Schedules { limit: API_LIMIT }
    }

    /// At most `limit` occurrences per backfill (`rota backfill` on this machine allows
    /// longer ranges than the API).
    pub const fn with_limit(limit: usize) -> Schedules {
        Schedules { limit }
    }
}

impl From<BackfillError> for rota_ops::OpsError {
    fn from(error: BackfillError) -> Self {
        use rota_ops::OpsError;
        match error {
            BackfillError::JobNotFound { namespace, job } => {
                OpsError::NotFound(format!("job {namespace}/{job}"))
            }
            BackfillError::Backwards { .. }
            | BackfillError::TooMany { .. }
            | BackfillError::Params(_) => OpsError::Invalid(error.to_string()),
            BackfillError::BadJob { .. } => OpsError::Internal(error.to_string()),
            BackfillError::Store(e) => OpsError::Store(e),
        }
    }
}

impl rota_ops::schedules::ScheduleOps for Schedules {
    fn next<'a>(
        &'a self,
        store: &'a Store,
        namespace: &'a str,
        job: &'a str,
        now: Timestamp,
        count: usize,
    ) -> rota_ops::schedules::BoxFuture<'a, rota_ops::schedules::NextFires> {
        Box::pin(async move { Ok(next_fire_times(store, namespace, job, now, count).await?) })
    }

    fn backfill<'a>(
        &'a self,
        store: &'a Store,
        namespace: &'a str,
        job: &'a str,
        from: Timestamp,
        to: Timestamp,
    ) -> rota_ops::schedules::BoxFuture<'a, Vec<rota_ops::schedules::Backfilled>> {
        Box::pin(async move {
            let owner = Owner::nobody();
            let done = backfill(store, namespace, job, from, to, self.limit, &owner).await?;
            Ok(done
                .into_iter()
                .map(|b| (b.scheduled_at, b.trigger, b.run_id))
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{BackfillError, occurrences};
    use crate::trigger::CompiledTrigger;

    fn triggers(yaml: &str) -> Vec<CompiledTrigger> {
        let source = format!("id: tick\ntriggers:\n{yaml}steps:\n  - id: main\n    sh: 'true'\n");
        let job = rota_core::parse::parse_str(&source, "t.yaml", rota_core::parse::Format::Yaml)
            .expect("valid job")
            .remove(0);
        CompiledTrigger::compile_all(&job).expect("compiles")
    }

    #[test]
    fn occurrences_are_bounded_inclusive_and_merged_in_time_order() {
        let t = triggers(
            "  - cron: '0 * * * *'\n  - at: '2026-01-01T02:30:00Z'\n  - webhook: { secret: S }\n",
        );
        let from = "2026-01-01T01:00:00Z".parse().expect("instant");
        let to = "2026-01-01T03:00:00Z".parse().expect("instant");
        let found = occurrences(&t, from, to, 10, |_| None).expect("in range");
        let shown: Vec<String> = found.iter().map(|(at, _)| at.to_string()).collect();
        assert_eq!(
            shown,
            [
                "2026-01-01T01:00:00Z",
                "2026-01-01T02:00:00Z",
                "2026-01-01T02:30:00Z",
                "2026-01-01T03:00:00Z"
            ]
        );
        assert!(matches!(
            occurrences(&t, from, to, 3, |_| None),
            Err(BackfillError::TooMany { limit: 3 })
        ));
        assert!(matches!(
            occurrences(&t, to, from, 10, |_| None),
            Err(BackfillError::Backwards { .. })
        ));
    }
}
