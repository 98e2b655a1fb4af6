//! The audit log: who did what, when, from where, and how it went, hash-chained.
//!
//! Each entry's `hash` is the SHA-256 of its content together with the previous entry's
//! hash (`prev_hash`; the first entry links to [`GENESIS_HASH`]). Ids count from 1 without
//! gaps, and a one-row head records the last id and hash. [`Store::check_audit_chain`]
//! recomputes everything and names the first entry that does not fit, so an edited,
//! deleted, reordered or cut-off entry is found. Someone able to rewrite the whole file can
//! recompute the whole chain; publishing the head hash elsewhere (logs, backups) guards
//! against that.
//!
//! Retention may remove the oldest entries (`rota prune --audit`): the chain then starts at
//! an anchor, see [`crate::prune`].

use jiff::Timestamp;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::convert::{micros, ts};
use crate::{Store, StoreError};

/// The link of the first entry: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Entries checked per query while verifying.
const VERIFY_PAGE: i64 = 500;

/// An audit entry to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    /// When it happened.
    pub at: Timestamp,
    /// Who: a token id and name, or `local` without authentication.
    pub actor: String,
    /// What, e.g. `run.cancel` or `token.create`.
    pub action: String,
    /// On what, e.g. `run/01j…` or `token/abc`.
    pub target: String,
    /// From where: the client's address, when known.
    pub source: Option<String>,
    /// How it went: `ok`, or the error's kind.
    pub result: String,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub id: i64,
    /// When it happened.
    pub at: Timestamp,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// From where.
    pub source: Option<String>,
    /// How it went.
    pub result: String,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

/// The first place the audit chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit entry {entry_id}: {what}")]
pub struct AuditBreak {
    /// The entry where the chain breaks (for a missing entry, the id it should have had).
    pub entry_id: i64,
    /// What is wrong there.
    pub what: AuditBreakKind,
}

/// What is wrong at an [`AuditBreak`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditBreakKind {
    /// The entry's content does not match its hash: it was edited.
    #[error("its content was modified")]
    Modified,
    /// The entry is missing: an id was skipped, or entries were cut off the end.
    #[error("it was deleted")]
    Deleted,
    /// The entry does not link to the one before it: entries were reordered (or the one
    /// before was replaced).
    #[error("it does not follow the entry before it (reordered or replaced)")]
    OutOfOrder,
}

/// The run events that change a run's state, each of which is also an audit entry: what
/// a run was asked to be and how it ended, and what recovery did to it. (A cancel request is
/// audited by whoever takes it, with the caller as actor; the state change it leads to is
/// `run.finished`.) A run's start is not: nobody decides it but the engine, between the two
/// entries, and the run keeps its time; an entry per run less keeps the chain smaller.
const RUN_STATE_CHANGES: [&str; 4] = [
    "run.created",
    "run.finished",
    "run.requeued",
    "run.abandoned",
];

/// The audit entry of a run's state change (`None` for any other event kind): the actor is
/// who caused it (`by` in the event's data) or `engine`, the target `run/<id>`, and the
/// result the run's status when it ended, else `ok`.
pub(crate) fn run_change_entry(
    at: Timestamp,
    kind: &str,
    run_id: &str,
    data: &serde_json::Value,
) -> Option<NewAuditEntry> {
    if !RUN_STATE_CHANGES.contains(&kind) {
        return None;
    }
    let text = |key: &str| data.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    Some(NewAuditEntry {
        at,
        actor: text("by").unwrap_or_else(|| "engine".to_owned()),
        action: kind.to_owned(),
        target: format!("run/{run_id}"),
        source: None,
        result: match kind {
            "run.finished" => text("status").unwrap_or_else(|| "ok".to_owned()),
            _ => "ok".to_owned(),
        },
    })
}

/// Appends an entry at the end of the chain, inside the caller's transaction.
pub(crate) async fn append_audit_in(
    conn: &mut AnyConnection,
    entry: &NewAuditEntry,
) -> Result<AuditRecord, StoreError> {
    let head = sqlx::query("SELECT last_id, hash FROM audit_head WHERE one = 1")
        .fetch_optional(&mut *conn)
        .await?;
    let (last_id, prev_hash) = match head {
        Some(row) => (row.try_get::<i64, _>("last_id")?, row.try_get("hash")?),
        None => (0, GENESIS_HASH.to_owned()),
    };
    let mut record = AuditRecord {
        id: last_id + 1,
        at: entry.at,
        actor: entry.actor.clone(),
        action: entry.action.clone(),
        target: entry.target.clone(),
        source: entry.source.clone(),
        result: entry.result.clone(),
        prev_hash,
        hash: String::new(),
    };
    record.hash = entry_hash(&record);
    sqlx::query(
        "INSERT INTO audit (id, at, actor, action, target, source, result, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(record.id)
    .bind(micros(record.at))
    .bind(&record.actor)
    .bind(&record.action)
    .bind(&record.target)
    .bind(&record.source)
    .bind(&record.result)
    .bind(&record.prev_hash)
    .bind(&record.hash)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO audit_head (one, last_id, hash) VALUES (1, $1, $2) \
         ON CONFLICT (one) DO UPDATE SET last_id = excluded.last_id, hash = excluded.hash",
    )
    .bind(record.id)
    .bind(&record.hash)
    .execute(&mut *conn)
    .await?;
    Ok(record)
}

impl Store {
    /// Appends an entry at the end of the chain, in one transaction.
    pub async fn append_audit(&self, entry: &NewAuditEntry) -> Result<AuditRecord, StoreError> {
        let mut tx = self.write().await?;
        let record = append_audit_in(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Audit entries with `id > after_id`, oldest first, at most `limit` (capped at 1,000).
    pub async fn list_audit(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, source, result, prev_hash, hash FROM audit \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after_id)
        .bind(i64::from(limit.min(1000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_record).collect()
    }

    /// Walks the whole chain and returns the first break, or `None` if it holds.
    ///
    /// After a prune of the oldest entries the walk starts at the chain's anchor (the first
    /// kept id and the hash of the last pruned entry), which an `audit.checkpoint` entry
    /// in the chain must record: an anchor moved by hand (to hide entries removed from the
    /// start) is found as entries deleted before it.
    pub async fn check_audit_chain(&self) -> Result<Option<AuditBreak>, StoreError> {
        let anchor = {
            let mut conn = self.pool.acquire().await?;
            crate::prune::audit_anchor(&mut conn).await?
        };
        let mut expected_id = anchor.as_ref().map_or(1, |a| a.first_id);
        let mut prev_hash = anchor
            .as_ref()
            .map_or_else(|| GENESIS_HASH.to_owned(), |a| a.prev_hash.clone());
        if let Some(anchor) = &anchor {
            let recorded = sqlx::query(
                "SELECT COUNT(*) AS n FROM audit WHERE id >= $1 AND action = $2 AND target = $3",
            )
            .bind(anchor.first_id)
            .bind(crate::prune::AUDIT_CHECKPOINT)
            .bind(anchor.target())
            .fetch_one(&self.pool)
            .await?
            .try_get::<i64, _>("n")?;
            if recorded == 0 {
                return Ok(Some(AuditBreak {
                    entry_id: (anchor.first_id - 1).max(1),
                    what: AuditBreakKind::Deleted,
                }));
            }
        }
        loop {
            let rows = sqlx::query(
                "SELECT id, at, actor, action, target, source, result, prev_hash, hash \
                 FROM audit WHERE id >= $1 ORDER BY id LIMIT $2",
            )
            .bind(expected_id)
            .bind(VERIFY_PAGE)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let entry = audit_record(row)?;
                let broken = |what| {
                    Ok(Some(AuditBreak {
                        entry_id: entry.id,
                        what,
                    }))
                };
                if entry.id != expected_id {
                    return Ok(Some(AuditBreak {
                        entry_id: expected_id,
                        what: AuditBreakKind::Deleted,
                    }));
                }
                if entry.prev_hash != prev_hash {
                    return broken(AuditBreakKind::OutOfOrder);
                }
                if entry_hash(&entry) != entry.hash {
                    return broken(AuditBreakKind::Modified);
                }
                prev_hash = entry.hash;
                expected_id += 1;
            }
        }
        let head = sqlx::query("SELECT last_id, hash FROM audit_head WHERE one = 1")
            .fetch_optional(&self.pool)
            .await?;
        let last_id = expected_id - 1;
        if let Some(head) = head {
            let head_id: i64 = head.try_get("last_id")?;
            let head_hash: String = head.try_get("hash")?;
            if head_id > last_id {
                return Ok(Some(AuditBreak {
                    entry_id: last_id + 1,
                    what: AuditBreakKind::Deleted,
                }));
            }
            if head_id < last_id || head_hash != prev_hash {
                // Entries past the head, or a last entry other than the one recorded, were
                // written around the store's API.
                return Ok(Some(AuditBreak {
                    entry_id: head_id.max(1),
                    what: AuditBreakKind::Modified,
                }));
            }
        } else if last_id > 0 {
            return Ok(Some(AuditBreak {
                entry_id: 1,
                what: AuditBreakKind::Modified,
            }));
        }
        Ok(None)
    }
}

/// The hash of an entry: SHA-256 (hex) over a JSON array of its fields and its link, which
/// is unambiguous whatever the fields contain.
fn entry_hash(entry: &AuditRecord) -> String {
    let content = json!([
        entry.id,
        micros(entry.at),
        entry.actor,
        entry.action,
        entry.target,
        entry.source,
        entry.result,
        entry.prev_hash,
    ]);
    hex::encode(Sha256::digest(content.to_string().as_bytes()))
}

fn audit_record(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        id: row.try_get("id")?,
        at: ts(row, "at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        source: row.try_get("source")?,
        result: row.try_get("result")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// An audit entry about a run still stored, as `rota audit verify` rechecks it.
pub(crate) struct RunEntry {
    /// The entry's id.
    pub id: i64,
    /// The run it names (`run/<id>`).
    pub run_id: String,
    /// Its result.
    pub result: String,
}

/// Run entries read per page while verifying (each may cost a run's recomputed digest).
const RUN_ENTRY_PAGE: i64 = 200;

/// The next page of audit entries with either of `actions` (the same one twice for one)
/// about runs still stored, after entry `after_id`, oldest first; empty once there are no
/// more. Runs removed by retention are left out: there is nothing left to check.
pub(crate) async fn run_entries_after(
    conn: &mut AnyConnection,
    [first, second]: [&str; 2],
    after_id: i64,
) -> Result<Vec<RunEntry>, StoreError> {
    let rows = sqlx::query(
        "SELECT a.id, a.target, a.result FROM audit a \
         JOIN runs r ON a.target = 'run/' || r.id \
         WHERE a.action IN ($1, $2) AND a.id > $3 ORDER BY a.id LIMIT $4",
    )
    .bind(first)
    .bind(second)
    .bind(after_id)
    .bind(RUN_ENTRY_PAGE)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let target: String = row.try_get("target")?;
            Ok(RunEntry {
                id: row.try_get("id")?,
                run_id: target.strip_prefix("run/").unwrap_or(&target).to_owned(),
                result: row.try_get("result")?,
            })
        })
        .collect()
}
