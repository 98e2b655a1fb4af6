//! What a scheduler daemon needs at scale: loading many job files in few transactions, and
//! following jobs and pause states changed by other processes without reading them all.
//!
//! Change counters (`change_counters`): every transaction that saves a job revision or
//! deletes a job adds one to `jobs` and stamps the rows it wrote with the new value
//! (`change_seq`); every pause or resume adds one to `schedule_state`. A server reads the
//! counters each poll (one small query) and reads further only when one moved: the jobs
//! changed since the value it last saw, or the pause states. The counter row is updated
//! in the writing transaction, which holds it until commit, so values are committed in
//! order: after reading value N, every change numbered N or less is visible.
//!
//! SQL here is portable (SQLite and PostgreSQL) and numbers its placeholders (`$1`, `$2`…).

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use sqlx::{Any, Row, Transaction};

use crate::convert::{micros, ts};
use crate::job_delete::LIVE_JOB;
use crate::schedule::last_trigger_run_with;
use crate::{NewJobRevision, Store, StoreError, TriggerRunRecord, TriggerState};

/// The counter of job revisions saved and jobs deleted.
pub(crate) const JOBS: &str = "jobs";
/// The counter of pause-state changes.
pub(crate) const SCHEDULE_STATE: &str = "schedule_state";

/// Rows per multi-row statement (and, times five, ids per `IN` list). Far below every
/// backend's limit on bound parameters; kept small because binding numbered parameters
/// looks each one's name up in a list as long as the statement's (SQLite), so a statement's
/// binding cost grows with the square of its parameters.
const ROWS_PER_STATEMENT: usize = 16;

/// Adds one to a counter inside `tx`; returns its new value.
pub(crate) async fn bump(tx: &mut Transaction<'_, Any>, name: &str) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "UPDATE change_counters SET value = value + 1 WHERE name = $1 RETURNING value",
    )
    .bind(name)
    .fetch_one(&mut **tx)
    .await?)
}

/// Stamps a job revision just written in `tx` with a new `jobs` counter value.
pub(crate) async fn stamp_revision(
    tx: &mut Transaction<'_, Any>,
    namespace: &str,
    job_id: &str,
    revision: i64,
) -> Result<(), StoreError> {
    let seq = bump(tx, JOBS).await?;
    sqlx::query(
        "UPDATE job_revisions SET change_seq = $1 \
         WHERE namespace = $2 AND job_id = $3 AND revision = $4",
    )
    .bind(seq)
    .bind(namespace)
    .bind(job_id)
    .bind(revision)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Stamps a job deletion just written in `tx` with a new `jobs` counter value.
pub(crate) async fn stamp_deletion(
    tx: &mut Transaction<'_, Any>,
    namespace: &str,
    job_id: &str,
) -> Result<(), StoreError> {
    let seq = bump(tx, JOBS).await?;
    sqlx::query("UPDATE deleted_jobs SET change_seq = $1 WHERE namespace = $2 AND job_id = $3")
        .bind(seq)
        .bind(namespace)
        .bind(job_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The change counters' current values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeCounters {
    /// Job revisions saved and jobs deleted.
    pub jobs: i64,
    /// Pauses and resumes.
    pub schedule_state: i64,
}

/// A revision number and the file it came from (`None`: saved without a file).
type Revision = (i64, Option<String>);

/// A job whose latest revision or deletion changed since a counter value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobHeadChange {
    /// Its namespace.
    pub namespace: String,
    /// Its id.
    pub job_id: String,
    /// Its latest revision and where it came from (`None`: saved without a file), or
    /// `None` when the job is deleted.
    pub head: Option<Revision>,
}

/// One job of a job file to save with [`Store::save_file_jobs`].
#[derive(Debug, Clone)]
pub struct FileJobSave {
    /// The revision (its `source_path` names the file).
    pub revision: NewJobRevision,
    /// Its triggers' keys, whose cursors are created (at the save's `now`) when missing.
    pub trigger_keys: Vec<String>,
    /// Which of them need their latest run ([`Store::last_trigger_run`]): end-anchored
    /// intervals count from its end.
    pub wants_last_run: Vec<bool>,
}

/// What [`Store::save_file_jobs`] did for one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedFileJob {
    /// Its latest revision (new, or the stored one with the same hash).
    pub revision: i64,
    /// Whether that revision was written now.
    pub created: bool,
    /// Each trigger's cursor and, when asked for, latest run, in `trigger_keys` order.
    pub triggers: Vec<(TriggerState, Option<TriggerRunRecord>)>,
}

/// The latest revision of a job as a save compares it.
struct Head {
    revision: i64,
    hash: String,
    live: bool,
}

impl Store {
    /// The change counters (one small read; see the module's documentation).
    pub async fn change_counters(&self) -> Result<ChangeCounters, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT name, value FROM change_counters")
            .fetch_all(&self.pool)
            .await?;
        let mut counters = ChangeCounters::default();
        for (name, value) in rows {
            match name.as_str() {
                JOBS => counters.jobs = value,
                SCHEDULE_STATE => counters.schedule_state = value,
                _ => {}
            }
        }
        Ok(counters)
    }

    /// The jobs whose latest revision or deletion is stamped after `since` (a `jobs`
    /// counter value), with their head now, by namespace and id: two index ranges, read
    /// for what changed only.
    ///
    /// A new revision is always the job's latest, and a deletion always covers the latest
    /// revision, so the rows stamped after `since` decide: a job is deleted when its
    /// deletion row is among them and names a revision at least as new as every revision
    /// among them.
    pub async fn job_changes_since(&self, since: i64) -> Result<Vec<JobHeadChange>, StoreError> {
        let revisions: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
            "SELECT namespace, job_id, revision, source_path FROM job_revisions \
             WHERE change_seq > $1",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let deletions: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT namespace, job_id, revision FROM deleted_jobs WHERE change_seq > $1",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let mut heads: BTreeMap<(String, String), Option<Revision>> = BTreeMap::new();
        for (namespace, job_id, revision, path) in revisions {
            let head = heads.entry((namespace, job_id)).or_insert(None);
            if head.as_ref().is_none_or(|(latest, _)| revision > *latest) {
                *head = Some((revision, path));
            }
        }
        for (namespace, job_id, deleted) in deletions {
            let head = heads.entry((namespace, job_id)).or_insert(None);
            if head.as_ref().is_some_and(|(latest, _)| deleted >= *latest) {
                *head = None;
            }
        }
        Ok(heads
            .into_iter()
            .map(|((namespace, job_id), head)| JobHeadChange {
                namespace,
                job_id,
                head,
            })
            .collect())
    }

    /// Saves the jobs of job files in one transaction, as [`Store::save_job_revision`]
    /// saves each (a job whose latest live revision has the same hash keeps it), clears the
    /// load errors of `loaded_paths`, and creates (at `now`) and reads every trigger's
    /// cursor. A job listed twice is saved twice, in order, like two single saves.
    ///
    /// Many small statements would each cost a round trip: revisions, cursors and load
    /// errors are written and read a few hundred rows per statement.
    pub async fn save_file_jobs(
        &self,
        jobs: &[FileJobSave],
        loaded_paths: &[String],
        now: Timestamp,
    ) -> Result<Vec<SavedFileJob>, StoreError> {
        let mut tx = self.write().await?;
        let mut heads = read_heads(&mut tx, jobs.iter().map(|j| &j.revision)).await?;
        // Which revision each job gets, and the rows to insert.
        let mut revisions = Vec::with_capacity(jobs.len());
        let mut inserts: Vec<(&NewJobRevision, i64)> = Vec::new();
        for job in jobs {
            let rev = &job.revision;
            let key = (rev.namespace.clone(), rev.job_id.clone());
            let head = heads.get(&key);
            match head {
                Some(head) if head.hash == rev.hash && head.live => {
                    revisions.push((head.revision, false));
                }
                _ => {
                    let revision = head.map_or(1, |h| h.revision + 1);
                    inserts.push((rev, revision));
                    revisions.push((revision, true));
                    heads.insert(
                        key,
                        Head {
                            revision,
                            hash: rev.hash.clone(),
                            live: true,
                        },
                    );
                }
            }
        }
        if !inserts.is_empty() {
            let seq = bump(&mut tx, JOBS).await?;
            for part in inserts.chunks(ROWS_PER_STATEMENT) {
                insert_revisions(&mut tx, part, seq).await?;
            }
        }
        for part in loaded_paths.chunks(ROWS_PER_STATEMENT * 5) {
            let mut sql = String::from("DELETE FROM job_load_errors WHERE path IN (");
            push_placeholders(&mut sql, 1, part.len());
            sql.push(')');
            let mut query = sqlx::query(&sql);
            for path in part {
                query = query.bind(path);
            }
            query.execute(&mut *tx).await?;
        }
        let cursors = ensure_cursors(&mut tx, jobs, now).await?;
        let mut saved = Vec::with_capacity(jobs.len());
        for (job, (revision, created)) in jobs.iter().zip(revisions) {
            let rev = &job.revision;
            let mut triggers = Vec::with_capacity(job.trigger_keys.len());
            for (index, trigger_key) in job.trigger_keys.iter().enumerate() {
                let state = cursors
                    .get(&(
                        rev.namespace.clone(),
                        rev.job_id.clone(),
                        trigger_key.clone(),
                    ))
                    .copied()
                    .ok_or_else(|| StoreError::Corrupt {
                        what: "trigger_state",
                        detail: format!(
                            "no cursor for trigger {trigger_key} of {}/{}",
                            rev.namespace, rev.job_id
                        ),
                    })?;
                let last_run = if job.wants_last_run.get(index).copied().unwrap_or(false) {
                    last_trigger_run_with(&mut *tx, &rev.namespace, &rev.job_id, trigger_key)
                        .await?
                } else {
                    None
                };
                triggers.push((state, last_run));
            }
            saved.push(SavedFileJob {
                revision,
                created,
                triggers,
            });
        }
        tx.commit().await?;
        Ok(saved)
    }
}

/// `$first, $first+1, …` (`count` placeholders) appended to `sql`.
fn push_placeholders(sql: &mut String, first: usize, count: usize) {
    for i in 0..count {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('$');
        sql.push_str(&(first + i).to_string());
    }
}

/// The latest revision (and whether it is live) of each job named, read a namespace and a
/// few hundred ids at a time.
async fn read_heads<'a>(
    tx: &mut Transaction<'_, Any>,
    revisions: impl Iterator<Item = &'a NewJobRevision>,
) -> Result<HashMap<(String, String), Head>, StoreError> {
    let mut by_namespace: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for rev in revisions {
        by_namespace
            .entry(rev.namespace.as_str())
            .or_default()
            .push(rev.job_id.as_str());
    }
    let mut heads = HashMap::new();
    for (namespace, mut ids) in by_namespace {
        ids.sort_unstable();
        ids.dedup();
        for part in ids.chunks(ROWS_PER_STATEMENT * 5) {
            let mut sql = format!(
                "SELECT j.job_id, j.revision, j.hash, CASE WHEN {LIVE_JOB} THEN 1 ELSE 0 END \
                 AS live FROM job_revisions j WHERE j.namespace = $1 AND j.job_id IN ("
            );
            push_placeholders(&mut sql, 2, part.len());
            sql.push_str(
                ") AND j.revision = (SELECT MAX(k.revision) FROM job_revisions k \
                 WHERE k.namespace = j.namespace AND k.job_id = j.job_id)",
            );
            let mut query = sqlx::query(&sql).bind(namespace);
            for id in part {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&mut **tx).await? {
                let live: i64 = row.try_get("live")?;
                heads.insert(
                    (namespace.to_owned(), row.try_get("job_id")?),
                    Head {
                        revision: row.try_get("revision")?,
                        hash: row.try_get("hash")?,
                        live: live != 0,
                    },
                );
            }
        }
    }
    Ok(heads)
}

/// Inserts revisions (each with its number) stamped `seq`, in one statement.
async fn insert_revisions(
    tx: &mut Transaction<'_, Any>,
    rows: &[(&NewJobRevision, i64)],
    seq: i64,
) -> Result<(), StoreError> {
    const COLUMNS: usize = 10;
    let mut sql = String::from(
        "INSERT INTO job_revisions (namespace, job_id, revision, hash, source, source_path, \
         definition, definition_version, created_at, change_seq) VALUES ",
    );
    for i in 0..rows.len() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        push_placeholders(&mut sql, i * COLUMNS + 1, COLUMNS);
        sql.push(')');
    }
    let mut query = sqlx::query(&sql);
    for (rev, revision) in rows {
        query = query
            .bind(&rev.namespace)
            .bind(&rev.job_id)
            .bind(*revision)
            .bind(&rev.hash)
            .bind(&rev.source)
            .bind(&rev.source_path)
            .bind(rev.definition.to_string())
            .bind(i64::from(rev.definition_version))
            .bind(micros(rev.created_at))
            .bind(seq);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Creates the missing cursors of every job's triggers at `now` and reads them all, by
/// (namespace, job, trigger key).
async fn ensure_cursors(
    tx: &mut Transaction<'_, Any>,
    jobs: &[FileJobSave],
    now: Timestamp,
) -> Result<HashMap<(String, String, String), TriggerState>, StoreError> {
    const COLUMNS: usize = 5;
    let rows: Vec<(&str, &str, &str)> = jobs
        .iter()
        .flat_map(|job| {
            job.trigger_keys.iter().map(|key| {
                (
                    job.revision.namespace.as_str(),
                    job.revision.job_id.as_str(),
                    key.as_str(),
                )
            })
        })
        .collect();
    for part in rows.chunks(ROWS_PER_STATEMENT) {
        let mut sql = String::from(
            "INSERT INTO trigger_state (namespace, job_id, trigger_key, origin, \
             evaluated_until) VALUES ",
        );
        for i in 0..part.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            push_placeholders(&mut sql, i * COLUMNS + 1, COLUMNS);
            sql.push(')');
        }
        sql.push_str(" ON CONFLICT DO NOTHING");
        let mut query = sqlx::query(&sql);
        for (namespace, job_id, key) in part {
            query = query
                .bind(*namespace)
                .bind(*job_id)
                .bind(*key)
                .bind(micros(now))
                .bind(micros(now));
        }
        query.execute(&mut **tx).await?;
    }
    let mut by_namespace: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (namespace, job_id, _) in &rows {
        by_namespace.entry(namespace).or_default().push(job_id);
    }
    let mut cursors = HashMap::with_capacity(rows.len());
    for (namespace, mut ids) in by_namespace {
        ids.sort_unstable();
        ids.dedup();
        for part in ids.chunks(ROWS_PER_STATEMENT * 5) {
            let mut sql = String::from(
                "SELECT job_id, trigger_key, origin, evaluated_until FROM trigger_state \
                 WHERE namespace = $1 AND job_id IN (",
            );
            push_placeholders(&mut sql, 2, part.len());
            sql.push(')');
            let mut query = sqlx::query(&sql).bind(namespace);
            for id in part {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&mut **tx).await? {
                cursors.insert(
                    (
                        namespace.to_owned(),
                        row.try_get("job_id")?,
                        row.try_get("trigger_key")?,
                    ),
                    TriggerState {
                        origin: ts(&row, "origin")?,
                        evaluated_until: ts(&row, "evaluated_until")?,
                    },
                );
            }
        }
    }
    Ok(cursors)
}
