//! The schedules operations of [`crate::Rota`]: a job's next fire times, its occurrence
//! history, pausing and resuming it, and backfilling a range.
//!
//! Pause and resume write the job's pause state to the store; a running server reads it on
//! its next poll. Fire times and backfill need the scheduler's trigger arithmetic
//! ([`crate::schedules::ScheduleOps`]); without it they are [`OpsError::Unavailable`].

use std::future::Future;

use jiff::Timestamp;

use super::Session;
use super::page::{cut_page, page_limit};
use crate::OpsError;
use crate::auth::{Role, Scope};
use crate::records::{
    Backfill, BackfillResult, BackfilledOccurrence, FireTime, HistoryQuery, NextQuery, Occurrence,
    OccurrenceList, ResumeSchedule, ScheduleNext, ScheduleState,
};

/// Most fire times one call computes.
const MAX_FIRE_TIMES: u32 = 10_000;

/// The schedules operations.
pub trait Schedules {
    /// The job's schedule occurrences (run, skipped or missed), newest first, a page at a
    /// time; [`OpsError::NotFound`] for a job without a stored revision.
    fn schedule_history(
        &self,
        namespace: &str,
        job: &str,
        query: HistoryQuery,
    ) -> impl Future<Output = Result<OccurrenceList, OpsError>> + Send;

    /// Pauses the job's schedule: its occurrences are skipped until it is resumed.
    fn pause_schedule(
        &self,
        namespace: &str,
        job: &str,
    ) -> impl Future<Output = Result<ScheduleState, OpsError>> + Send;

    /// Resumes the job's schedule; occurrences before `from` (default: now) stay skipped.
    fn resume_schedule(
        &self,
        namespace: &str,
        job: &str,
        resume: ResumeSchedule,
    ) -> impl Future<Output = Result<ScheduleState, OpsError>> + Send;

    /// The job's time triggers, its next fire times (merged in time order) and whether its
    /// schedule is paused.
    fn schedule_next(
        &self,
        namespace: &str,
        job: &str,
        query: NextQuery,
    ) -> impl Future<Output = Result<ScheduleNext, OpsError>> + Send;

    /// Queues one run per occurrence of the job's time triggers in the range (inclusive);
    /// an occurrence already recorded gets none.
    fn backfill_schedule(
        &self,
        namespace: &str,
        job: &str,
        range: Backfill,
    ) -> impl Future<Output = Result<BackfillResult, OpsError>> + Send;
}

/// A history cursor's text: `<scheduled_at in µs>.<trigger key in hex>` (trigger keys hold
/// spaces and `*`). Clients treat it as opaque.
fn encode_history_cursor(occurrence: &Occurrence) -> String {
    format!(
        "{}.{}",
        occurrence.scheduled_at.as_microsecond(),
        hex::encode(&occurrence.trigger)
    )
}

fn decode_history_cursor(text: &str) -> Result<(Timestamp, String), OpsError> {
    let bad = || OpsError::InvalidQuery(format!("{text:?} is not a cursor from this API"));
    let (micros, key) = text.split_once('.').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(|m| Timestamp::from_microsecond(m).ok())
        .ok_or_else(bad)?;
    // Any text positions the page: a key no trigger has only starts it between two.
    let key = hex::decode(key).map_err(|_| bad())?;
    Ok((at, String::from_utf8_lossy(&key).into_owned()))
}

/// An instant of a request body, RFC 3339.
fn instant(name: &str, text: &str) -> Result<Timestamp, OpsError> {
    text.parse::<Timestamp>()
        .map_err(|_| OpsError::Invalid(format!("`{name}` {text:?} is not an RFC 3339 instant")))
}

/// The audit target of a job's schedule.
fn target(namespace: &str, job: &str) -> String {
    format!("job/{namespace}/{job}")
}

impl Session {
    /// [`OpsError::NotFound`] unless the job has a stored revision.
    async fn require_job(&self, namespace: &str, job: &str) -> Result<(), OpsError> {
        self.ops()
            .store()
            .latest_job_revision(namespace, job)
            .await?
            .map(|_| ())
            .ok_or_else(|| OpsError::NotFound(format!("job {namespace}/{job}")))
    }

    /// Writes the job's pause state, as an editor of its namespace.
    async fn set_paused(
        &self,
        namespace: &str,
        job: &str,
        resume_from: Option<Timestamp>,
    ) -> Result<ScheduleState, OpsError> {
        self.require_job(namespace, job).await?;
        let paused = resume_from.is_none();
        self.ops()
            .store()
            .set_paused(namespace, job, paused, resume_from, Timestamp::now())
            .await?;
        Ok(ScheduleState {
            namespace: namespace.to_owned(),
            job: job.to_owned(),
            paused,
            resume_from,
        })
    }

    async fn history_page(
        &self,
        namespace: &str,
        job: &str,
        query: HistoryQuery,
    ) -> Result<OccurrenceList, OpsError> {
        self.principal()
            .require(Scope::Namespace(namespace), Role::Viewer)?;
        let limit = page_limit(query.limit)?;
        let before = query
            .cursor
            .as_deref()
            .map(decode_history_cursor)
            .transpose()?;
        self.require_job(namespace, job).await?;
        let rows = self
            .ops()
            .store()
            .occurrences_page(
                namespace,
                job,
                before.as_ref().map(|(at, key)| (*at, key.as_str())),
                limit + 1,
            )
            .await?;
        let items: Vec<Occurrence> = rows.into_iter().map(Occurrence::from).collect();
        let (items, next_cursor) = cut_page(items, limit, encode_history_cursor);
        Ok(OccurrenceList { items, next_cursor })
    }

    async fn next_fires(
        &self,
        namespace: &str,
        job: &str,
        query: NextQuery,
    ) -> Result<ScheduleNext, OpsError> {
        self.principal()
            .require(Scope::Namespace(namespace), Role::Viewer)?;
        let count = match query.count.unwrap_or(5) {
            n @ 0..=MAX_FIRE_TIMES => n as usize,
            _ => {
                return Err(OpsError::InvalidQuery(format!(
                    "`count` must be at most {MAX_FIRE_TIMES}"
                )));
            }
        };
        let store = self.ops().store();
        let (triggers, times) = self
            .ops()
            .schedule_ops()?
            .next(store, namespace, job, Timestamp::now(), count)
            .await?;
        let pause = store
            .schedule_states()
            .await?
            .into_iter()
            .find(|s| s.namespace == namespace && s.job_id == job);
        Ok(ScheduleNext {
            namespace: namespace.to_owned(),
            job: job.to_owned(),
            paused: pause.as_ref().is_some_and(|p| p.paused),
            resume_from: pause.and_then(|p| p.resume_from),
            triggers,
            next: times
                .into_iter()
                .map(|(at, trigger)| FireTime { at, trigger })
                .collect(),
        })
    }

    async fn queue_backfill(
        &self,
        namespace: &str,
        job: &str,
        range: &Backfill,
    ) -> Result<BackfillResult, OpsError> {
        self.principal()
            .require(Scope::Namespace(namespace), Role::Editor)?;
        let (from, to) = (instant("from", &range.from)?, instant("to", &range.to)?);
        let done = self
            .ops()
            .schedule_ops()?
            .backfill(self.ops().store(), namespace, job, from, to)
            .await?;
        let items: Vec<BackfilledOccurrence> = done
            .into_iter()
            .map(|(scheduled_at, trigger, run_id)| BackfilledOccurrence {
                scheduled_at,
                trigger,
                run_id,
            })
            .collect();
        Ok(BackfillResult {
            queued: items.iter().filter(|i| i.run_id.is_some()).count(),
            items,
        })
    }
}

impl Schedules for Session {
    async fn schedule_history(
        &self,
        namespace: &str,
        job: &str,
        query: HistoryQuery,
    ) -> Result<OccurrenceList, OpsError> {
        self.history_page(namespace, job, query).await
    }

    async fn pause_schedule(&self, namespace: &str, job: &str) -> Result<ScheduleState, OpsError> {
        let outcome = async {
            self.principal()
                .require(Scope::Namespace(namespace), Role::Editor)?;
            self.set_paused(namespace, job, None).await
        }
        .await;
        self.audited("schedule.pause", &target(namespace, job), outcome)
            .await
    }

    async fn resume_schedule(
        &self,
        namespace: &str,
        job: &str,
        resume: ResumeSchedule,
    ) -> Result<ScheduleState, OpsError> {
        let outcome = async {
            self.principal()
                .require(Scope::Namespace(namespace), Role::Editor)?;
            let from = match resume.from.as_deref() {
                None | Some("now") => Timestamp::now(),
                Some(text) => text.parse::<Timestamp>().map_err(|_| {
                    OpsError::Invalid(format!(
                        "`from` {text:?} is neither `now` nor an RFC 3339 instant"
                    ))
                })?,
            };
            self.set_paused(namespace, job, Some(from)).await
        }
        .await;
        self.audited("schedule.resume", &target(namespace, job), outcome)
            .await
    }

    async fn schedule_next(
        &self,
        namespace: &str,
        job: &str,
        query: NextQuery,
    ) -> Result<ScheduleNext, OpsError> {
        self.next_fires(namespace, job, query).await
    }

    async fn backfill_schedule(
        &self,
        namespace: &str,
        job: &str,
        range: Backfill,
    ) -> Result<BackfillResult, OpsError> {
        let outcome = self.queue_backfill(namespace, job, &range).await;
        self.audited("schedule.backfill", &target(namespace, job), outcome)
            .await
    }
}
