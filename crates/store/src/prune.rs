//! Retention: deleting finished runs older than a cut-off with everything that belongs to
//! them, optionally the audit entries older than it too, and the per-namespace retention
//! settings `rota serve` applies.
//!
//! What a pruned run takes with it, following every reference to `runs.id` in the schema:
//! its step runs and attempts, log lines, events, notifications, artifacts (their rows here;
//! their bytes by the caller, from `PruneCounts::artifact_keys`), and the secret versions it
//! was recorded to use. What it leaves, on purpose:
//! - schedule occurrences (`occurrences.run_id`): they are the schedule's memory that an
//!   occurrence was decided, which keeps a backfill from running it again;
//! - webhook deliveries: they are replay protection, pruned after the replay window by the
//!   server; only their link to the run is cleared;
//! - plans: a plan stays (it is a record of a decision), its links to the run it applied
//!   and its dry run are cleared;
//! - a later run's `retry_of`: it names the run it repeated, as history.
//!
//! A run is pruned only when it finished (succeeded, failed, cancelled, timed out,
//! abandoned) before the cut-off and no notification of it is still pending.
//! Runs are deleted in batches of [`PRUNE_BATCH`], one transaction each, so a large first
//! prune never holds SQLite's write lock for long (runs being recorded meanwhile wait for
//! one batch at most); the audit entry with the totals is appended in the last one.
//!
//! Audit entries can only go from the start of the chain. When they are pruned, the hash of
//! the last pruned entry becomes the chain's anchor (`audit_anchor`), and an
//! `audit.checkpoint` entry naming it is appended in the same transaction, so
//! [`Store::check_audit_chain`] starts from the anchor and still finds any later entry
//! changed, removed or reordered, and refuses an anchor no checkpoint entry records.

use jiff::Timestamp;
use rota_core::model::{ALL_RUN_STATUSES, RunStatus};
use sqlx::{AnyConnection, Row};

use crate::attempts::CURRENT_ONLY_IN_STEP_RUNS;
use crate::audit::{NewAuditEntry, append_audit_in};
use crate::convert::{micros, ts};
use crate::{Store, StoreError};

/// Runs deleted per transaction.
pub const PRUNE_BATCH: usize = 200;

/// The action of the audit entry that records an audit anchor.
pub const AUDIT_CHECKPOINT: &str = "audit.checkpoint";

/// What to prune.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneSpec {
    /// Runs that finished before this instant (and, with `audit`, audit entries before it).
    pub cutoff: Timestamp,
    /// Only runs of this namespace (all namespaces without it).
    pub namespace: Option<String>,
    /// Count what would be deleted, delete nothing.
    pub dry_run: bool,
    /// Also prune the audit entries older than the cut-off (all namespaces only: the audit
    /// log is not per namespace).
    pub audit: bool,
    /// Append no audit entry when nothing was deleted (the server's periodic pass, which
    /// would otherwise add an entry every hour for nothing).
    pub quiet_when_empty: bool,
}

/// What a prune deleted (or, in a dry run, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneCounts {
    /// Runs.
    pub runs: u64,
    /// Step runs (one per step of each run).
    pub step_runs: u64,
    /// Step attempts.
    pub attempts: u64,
    /// Log lines.
    pub log_lines: u64,
    /// The text of those log lines, in bytes.
    pub log_bytes: u64,
    /// Events of those runs.
    pub events: u64,
    /// Notifications of those runs (sent or given up).
    pub notifications: u64,
    /// Audit entries.
    pub audit_entries: u64,
    /// Artifacts of those runs.
    pub artifacts: u64,
    /// The ids of the runs deleted (not filled in a dry run), so their files can go too.
    pub run_ids: Vec<String>,
    /// The artifact-store keys of the artifacts deleted (not filled in a dry run), so their
    /// bytes can go too.
    pub artifact_keys: Vec<String>,
}

/// A namespace's retention setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSetting {
    /// The namespace.
    pub namespace: String,
    /// Finished runs are kept this many seconds.
    pub keep_secs: i64,
    /// When it was set.
    pub updated_at: Timestamp,
    /// Who set it.
    pub updated_by: String,
}

/// Where the audit chain starts after its oldest entries were pruned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuditAnchor {
    /// The first entry kept.
    pub first_id: i64,
    /// The hash of the last entry pruned, which the first kept entry links to.
    pub prev_hash: String,
}

impl AuditAnchor {
    /// The target of the `audit.checkpoint` entry that records this anchor.
    pub(crate) fn target(&self) -> String {
        format!("audit/{}:{}", self.first_id, self.prev_hash)
    }
}

/// The statuses of runs that can change no more: the only ones pruned.
fn finished_statuses() -> Vec<&'static str> {
    ALL_RUN_STATUSES
        .into_iter()
        .filter(|s| s.is_terminal())
        .map(RunStatus::as_str)
        .collect()
}

/// `$first, $first+1, …` for `count` parameters.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `WHERE` of prunable runs (alias `r`), its parameters numbered from `$1`: the
/// cut-off, the finished statuses, then the namespace if any.
fn prunable_where(spec: &PruneSpec) -> (String, Vec<String>) {
    let statuses = finished_statuses();
    let mut sql = format!(
        "r.finished_at IS NOT NULL AND r.finished_at < $1 AND r.status IN ({}) \
         AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.run_id = r.id \
                         AND n.status = 'pending')",
        placeholders(2, statuses.len())
    );
    let mut texts: Vec<String> = statuses.into_iter().map(str::to_owned).collect();
    if let Some(namespace) = &spec.namespace {
        sql.push_str(&format!(" AND r.namespace = ${}", texts.len() + 2));
        texts.push(namespace.clone());
    }
    (sql, texts)
}

/// Binds the parameters of [`prunable_where`] to `query`.
fn bind_prunable<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    spec: &PruneSpec,
    texts: &'q [String],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query = query.bind(micros(spec.cutoff));
    for text in texts {
        query = query.bind(text.as_str());
    }
    query
}

fn count(row: &sqlx::any::AnyRow, column: &str) -> Result<u64, StoreError> {
    let value: Option<i64> = row.try_get(column)?;
    Ok(u64::try_from(value.unwrap_or(0)).unwrap_or(0))
}

impl Store {
    /// Prunes what `spec` says and, unless it is a dry run, appends one `runs.prune` audit
    /// entry in `by`'s name (its `action`, `target` and `result` are filled in here) with
    /// the counts and the cut-off, after an `audit.checkpoint` entry if audit entries went.
    pub async fn prune(
        &self,
        spec: &PruneSpec,
        by: &NewAuditEntry,
    ) -> Result<PruneCounts, StoreError> {
        if spec.dry_run {
            return self.prune_counts(spec).await;
        }
        let mut total = PruneCounts::default();
        loop {
            let mut tx = self.write().await?;
            let batch = prune_batch(&mut tx, spec).await?;
            let done = batch.runs < PRUNE_BATCH as u64;
            add(&mut total, batch);
            if done {
                if spec.audit && spec.namespace.is_none() {
                    total.audit_entries = prune_audit_in(&mut tx, spec.cutoff, by).await?;
                }
                if spec.quiet_when_empty && total.runs == 0 && total.audit_entries == 0 {
                    tx.commit().await?;
                    return Ok(total);
                }
                let entry = NewAuditEntry {
                    action: "runs.prune".to_owned(),
                    target: prune_target(spec, &total),
                    result: "ok".to_owned(),
                    ..by.clone()
                };
                append_audit_in(&mut tx, &entry).await?;
                tx.commit().await?;
                return Ok(total);
            }
            tx.commit().await?;
        }
    }

    /// What [`Store::prune`] would delete, deleting nothing. One count per table over the
    /// same set of runs (no `SUM` of counts: PostgreSQL would answer it as `NUMERIC`).
    async fn prune_counts(&self, spec: &PruneSpec) -> Result<PruneCounts, StoreError> {
        let (filter, texts) = prunable_where(spec);
        let runs = format!("SELECT r.id FROM runs r WHERE {filter}");
        let one = |sql: String| {
            let texts = &texts;
            async move {
                let row = bind_prunable(sqlx::query(&sql), spec, texts)
                    .fetch_one(&self.pool)
                    .await?;
                Ok::<_, StoreError>(row)
            }
        };
        let mut counts = PruneCounts::default();
        let row = one(format!("SELECT COUNT(*) AS n FROM ({runs}) p")).await?;
        counts.runs = count(&row, "n")?;
        let row = one(format!(
            "SELECT COUNT(*) AS n, SUM(LENGTH(text)) AS bytes FROM logs WHERE run_id IN ({runs})"
        ))
        .await?;
        counts.log_lines = count(&row, "n")?;
        counts.log_bytes = count(&row, "bytes")?;
        for (table, counter) in [
            ("step_runs", &mut counts.step_runs),
            ("step_attempts", &mut counts.attempts),
            ("events", &mut counts.events),
            ("notifications", &mut counts.notifications),
            ("artifacts", &mut counts.artifacts),
        ] {
            let row = one(format!(
                "SELECT COUNT(*) AS n FROM {table} WHERE run_id IN ({runs})"
            ))
            .await?;
            *counter = count(&row, "n")?;
        }
        let row = one(format!(
            "SELECT COUNT(*) AS n FROM step_runs s WHERE s.run_id IN ({runs}) AND {}",
            CURRENT_ONLY_IN_STEP_RUNS
        ))
        .await?;
        counts.attempts += count(&row, "n")?;
        if spec.audit && spec.namespace.is_none() {
            let mut conn = self.pool.acquire().await?;
            let (first, last) = audit_prunable(&mut conn, spec.cutoff).await?;
            counts.audit_entries = u64::try_from(last - first + 1).unwrap_or(0);
        }
        Ok(counts)
    }

    /// Every namespace's retention setting, by namespace.
    pub async fn retention_settings(&self) -> Result<Vec<RetentionSetting>, StoreError> {
        let rows = sqlx::query(
            "SELECT namespace, keep_secs, updated_at, updated_by FROM namespace_retention \
             ORDER BY namespace",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RetentionSetting {
                    namespace: row.try_get("namespace")?,
                    keep_secs: row.try_get("keep_secs")?,
                    updated_at: ts(row, "updated_at")?,
                    updated_by: row.try_get("updated_by")?,
                })
            })
            .collect()
    }

    /// Sets (`Some` seconds) or clears (`None`: keep forever) a namespace's retention.
    pub async fn set_retention(
        &self,
        namespace: &str,
        keep_secs: Option<i64>,
        at: Timestamp,
        by: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        match keep_secs {
            Some(secs) => {
                sqlx::query(
                    "INSERT INTO namespace_retention (namespace, keep_secs, updated_at, updated_by) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (namespace) DO UPDATE SET \
                     keep_secs = excluded.keep_secs, updated_at = excluded.updated_at, \
                     updated_by = excluded.updated_by",
                )
                .bind(namespace)
                .bind(secs)
                .bind(micros(at))
                .bind(by)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM namespace_retention WHERE namespace = $1")
                    .bind(namespace)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

fn add(total: &mut PruneCounts, batch: PruneCounts) {
    total.runs += batch.runs;
    total.step_runs += batch.step_runs;
    total.attempts += batch.attempts;
    total.log_lines += batch.log_lines;
    total.log_bytes += batch.log_bytes;
    total.events += batch.events;
    total.notifications += batch.notifications;
    total.artifacts += batch.artifacts;
    total.run_ids.extend(batch.run_ids);
    total.artifact_keys.extend(batch.artifact_keys);
}

/// `runs/<namespace or *> before <cut-off>: N runs, …`: what the audit entry says.
fn prune_target(spec: &PruneSpec, counts: &PruneCounts) -> String {
    let mut text = format!(
        "runs/{} before {}: {} runs, {} step runs, {} attempts, {} log lines ({} bytes), \
         {} events, {} notifications, {} artifacts",
        spec.namespace.as_deref().unwrap_or("*"),
        spec.cutoff,
        counts.runs,
        counts.step_runs,
        counts.attempts,
        counts.log_lines,
        counts.log_bytes,
        counts.events,
        counts.notifications,
        counts.artifacts,
    );
    if spec.audit && spec.namespace.is_none() {
        text.push_str(&format!(", {} audit entries", counts.audit_entries));
    }
    text
}

/// Deletes up to [`PRUNE_BATCH`] prunable runs and what belongs to them.
async fn prune_batch(
    conn: &mut AnyConnection,
    spec: &PruneSpec,
) -> Result<PruneCounts, StoreError> {
    let (filter, texts) = prunable_where(spec);
    let sql = format!(
        "SELECT r.id FROM runs r WHERE {filter} ORDER BY r.finished_at LIMIT {PRUNE_BATCH}"
    );
    let ids: Vec<String> = bind_prunable(sqlx::query(&sql), spec, &texts)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| row.try_get("id"))
        .collect::<Result<_, _>>()?;
    let mut counts = PruneCounts::default();
    if ids.is_empty() {
        return Ok(counts);
    }
    let list = placeholders(1, ids.len());
    let sizes = format!(
        "SELECT COUNT(*) AS lines, SUM(LENGTH(text)) AS bytes FROM logs WHERE run_id IN ({list})"
    );
    let mut query = sqlx::query(&sizes);
    for id in &ids {
        query = query.bind(id.as_str());
    }
    let row = query.fetch_one(&mut *conn).await?;
    counts.log_lines = count(&row, "lines")?;
    counts.log_bytes = count(&row, "bytes")?;
    // A step's latest attempt is often only in `step_runs` (see `crate::attempts`).
    let current = format!(
        "SELECT COUNT(*) AS n FROM step_runs s WHERE s.run_id IN ({list}) AND {}",
        CURRENT_ONLY_IN_STEP_RUNS
    );
    let mut query = sqlx::query(&current);
    for id in &ids {
        query = query.bind(id.as_str());
    }
    let current_attempts = count(&query.fetch_one(&mut *conn).await?, "n")?;
    let keys = format!("SELECT stored_key FROM artifacts WHERE run_id IN ({list})");
    let mut query = sqlx::query(&keys);
    for id in &ids {
        query = query.bind(id.as_str());
    }
    counts.artifact_keys = query
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| row.try_get("stored_key"))
        .collect::<Result<_, _>>()?;
    // Children before parents: the foreign keys (and PostgreSQL's checks) hold at each step.
    let deletes: [(&str, Option<&mut u64>); 12] = [
        ("DELETE FROM logs WHERE run_id IN ({list})", None),
        (
            "DELETE FROM artifacts WHERE run_id IN ({list})",
            Some(&mut counts.artifacts),
        ),
        (
            "DELETE FROM step_attempts WHERE run_id IN ({list})",
            Some(&mut counts.attempts),
        ),
        (
            "DELETE FROM step_runs WHERE run_id IN ({list})",
            Some(&mut counts.step_runs),
        ),
        (
            "DELETE FROM events WHERE run_id IN ({list})",
            Some(&mut counts.events),
        ),
        (
            "DELETE FROM notifications WHERE run_id IN ({list})",
            Some(&mut counts.notifications),
        ),
        ("DELETE FROM run_secrets WHERE run_id IN ({list})", None),
        ("DELETE FROM gate_decisions WHERE run_id IN ({list})", None),
        ("DELETE FROM run_gates WHERE run_id IN ({list})", None),
        (
            "UPDATE webhook_deliveries SET run_id = NULL WHERE run_id IN ({list})",
            None,
        ),
        (
            "UPDATE plans SET run_id = NULL WHERE run_id IN ({list})",
            None,
        ),
        (
            "UPDATE plans SET dry_run_id = NULL WHERE dry_run_id IN ({list})",
            None,
        ),
    ];
    for (statement, counter) in deletes {
        let sql = statement.replace("{list}", &list);
        let mut query = sqlx::query(&sql);
        for id in &ids {
            query = query.bind(id.as_str());
        }
        let affected = query.execute(&mut *conn).await?.rows_affected();
        if let Some(counter) = counter {
            *counter = affected;
        }
    }
    counts.attempts += current_attempts;
    let sql = format!("DELETE FROM runs WHERE id IN ({list})");
    let mut query = sqlx::query(&sql);
    for id in &ids {
        query = query.bind(id.as_str());
    }
    counts.runs = query.execute(&mut *conn).await?.rows_affected();
    counts.run_ids = ids;
    Ok(counts)
}

/// The chain's anchor, if entries were ever pruned.
pub(crate) async fn audit_anchor(
    conn: &mut AnyConnection,
) -> Result<Option<AuditAnchor>, StoreError> {
    let row = sqlx::query("SELECT first_id, prev_hash FROM audit_anchor WHERE one = 1")
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| {
        Ok(AuditAnchor {
            first_id: row.try_get("first_id")?,
            prev_hash: row.try_get("prev_hash")?,
        })
    })
    .transpose()
}

/// The ids `first..=last` of the audit entries a prune at `cutoff` removes: from the
/// chain's start up to the entry before the first one at or after the cut-off (entries
/// are removed from the start only; `last < first` when there are none).
async fn audit_prunable(
    conn: &mut AnyConnection,
    cutoff: Timestamp,
) -> Result<(i64, i64), StoreError> {
    let first = audit_anchor(conn).await?.map_or(1, |a| a.first_id);
    let row = sqlx::query(
        "SELECT (SELECT MIN(id) FROM audit WHERE at >= $1) AS keep_from, \
                (SELECT MAX(id) FROM audit) AS last_id",
    )
    .bind(micros(cutoff))
    .fetch_one(&mut *conn)
    .await?;
    let keep_from: Option<i64> = row.try_get("keep_from")?;
    let last_id: Option<i64> = row.try_get("last_id")?;
    let last = match keep_from {
        Some(keep_from) => keep_from - 1,
        None => last_id.unwrap_or(0),
    };
    Ok((first, last))
}

/// Removes the audit entries before the cut-off from the start of the chain, records the
/// hash of the last one as the anchor and appends the `audit.checkpoint` entry naming it.
async fn prune_audit_in(
    conn: &mut AnyConnection,
    cutoff: Timestamp,
    by: &NewAuditEntry,
) -> Result<u64, StoreError> {
    let (first, last) = audit_prunable(conn, cutoff).await?;
    if last < first {
        return Ok(0);
    }
    let prev_hash: String = sqlx::query("SELECT hash FROM audit WHERE id = $1")
        .bind(last)
        .fetch_one(&mut *conn)
        .await?
        .try_get("hash")?;
    let removed = sqlx::query("DELETE FROM audit WHERE id <= $1")
        .bind(last)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let anchor = AuditAnchor {
        first_id: last + 1,
        prev_hash,
    };
    sqlx::query(
        "INSERT INTO audit_anchor (one, first_id, prev_hash) VALUES (1, $1, $2) \
         ON CONFLICT (one) DO UPDATE SET first_id = excluded.first_id, \
         prev_hash = excluded.prev_hash",
    )
    .bind(anchor.first_id)
    .bind(&anchor.prev_hash)
    .execute(&mut *conn)
    .await?;
    let checkpoint = NewAuditEntry {
        action: AUDIT_CHECKPOINT.to_owned(),
        target: anchor.target(),
        result: "ok".to_owned(),
        ..by.clone()
    };
    append_audit_in(conn, &checkpoint).await?;
    Ok(removed)
}
