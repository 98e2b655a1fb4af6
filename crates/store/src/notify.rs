//! The notification outbox: rows written with the run event that caused them
//! ([`RunEvent::NotificationQueued`](crate::RunEvent::NotificationQueued) in a `record`
//! batch), claimed by deliverers when due, and each delivery attempt's outcome recorded with
//! its event and audit entry in one transaction.
//!
//! Rows never hold a secret: the target URL and headers are the job file's templates,
//! rendered by the deliverer when it sends, and `last_error` is redacted by the caller.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use rota_core::model::RunStatus;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::convert::{json, micros, opt_ts, ts, u32_col};
use crate::{NewAuditEntry, Store, StoreError};

/// A notification to queue, as the engine builds it when its event happens.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    /// Unique id; receivers see it as `Idempotency-Key` to drop repeats.
    pub id: String,
    /// The run it is about.
    pub run_id: String,
    /// The run's namespace (where the secrets of the templates are resolved).
    pub namespace: String,
    /// The run's job.
    pub job_id: String,
    /// Index of the rule in the job's `notify:` list.
    pub rule: u32,
    /// The event that fired it: `success`, `failure`, `cancelled`, `recovery`,
    /// `duration_exceeded`.
    pub event: String,
    /// `webhook` or `slack`.
    pub channel: String,
    /// The target URL as a template (never rendered here: it may hold a secret).
    pub url_template: String,
    /// Extra headers, values as templates.
    pub headers_template: BTreeMap<String, String>,
    /// What the templates see besides secrets: `{"params": …, "run": …}`.
    pub render_context: serde_json::Value,
    /// Names of the secrets the templates use, resolved when sending.
    pub secret_names: Vec<String>,
    /// The request body, as sent.
    pub payload: String,
    /// When it was queued; it is due at once.
    pub created_at: Timestamp,
}

/// Where a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationStatus {
    /// Not delivered yet; due at `next_attempt_at`.
    Pending,
    /// Delivered (the endpoint answered 2xx).
    Sent,
    /// Given up after the last attempt.
    Failed,
}

impl NotificationStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationStatus::Pending => "pending",
            NotificationStatus::Sent => "sent",
            NotificationStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<NotificationStatus, StoreError> {
        match text {
            "pending" => Ok(NotificationStatus::Pending),
            "sent" => Ok(NotificationStatus::Sent),
            "failed" => Ok(NotificationStatus::Failed),
            other => Err(StoreError::Corrupt {
                what: "notification status",
                detail: other.to_owned(),
            }),
        }
    }
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRecord {
    /// What was queued.
    pub queued: NewNotification,
    /// Where it stands.
    pub status: NotificationStatus,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (while pending).
    pub next_attempt_at: Timestamp,
    /// Why the last attempt failed (redacted).
    pub last_error: Option<String>,
    /// When it was delivered.
    pub sent_at: Option<Timestamp>,
}

/// How one delivery attempt went.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    /// The endpoint accepted it.
    Sent,
    /// It failed; try again at `next_attempt_at`.
    Retry {
        /// Why (already redacted).
        error: String,
        /// When the next attempt is due.
        next_attempt_at: Timestamp,
    },
    /// It failed for the last time.
    GaveUp {
        /// Why (already redacted).
        error: String,
    },
}

const COLUMNS: &str = "id, run_id, namespace, job_id, rule, event, channel, url_template, \
     headers_template, render_context, secret_names, payload, status, attempts, \
     next_attempt_at, last_error, created_at, sent_at";

/// Inserts a queued notification inside the caller's transaction; a second one for the same
/// run, rule and event is ignored. Returns whether a row was inserted.
pub(crate) async fn insert_in(
    conn: &mut AnyConnection,
    n: &NewNotification,
) -> Result<bool, StoreError> {
    let headers = serde_json::to_string(&n.headers_template).unwrap_or_else(|_| "{}".into());
    let secrets = serde_json::to_string(&n.secret_names).unwrap_or_else(|_| "[]".into());
    let done = sqlx::query(
        "INSERT INTO notifications (id, run_id, namespace, job_id, rule, event, channel, \
         url_template, headers_template, render_context, secret_names, payload, status, \
         attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending', 0, $13, $14) \
         ON CONFLICT (run_id, rule, event) DO NOTHING",
    )
    .bind(&n.id)
    .bind(&n.run_id)
    .bind(&n.namespace)
    .bind(&n.job_id)
    .bind(i64::from(n.rule))
    .bind(&n.event)
    .bind(&n.channel)
    .bind(&n.url_template)
    .bind(headers)
    .bind(n.render_context.to_string())
    .bind(secrets)
    .bind(&n.payload)
    .bind(micros(n.created_at))
    .bind(micros(n.created_at))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

fn record(row: &AnyRow) -> Result<NotificationRecord, StoreError> {
    let corrupt = |what: &'static str, e: serde_json::Error| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    };
    let headers: String = row.try_get("headers_template")?;
    let secrets: String = row.try_get("secret_names")?;
    let status: String = row.try_get("status")?;
    Ok(NotificationRecord {
        queued: NewNotification {
            id: row.try_get("id")?,
            run_id: row.try_get("run_id")?,
            namespace: row.try_get("namespace")?,
            job_id: row.try_get("job_id")?,
            rule: u32_col(row, "rule")?,
            event: row.try_get("event")?,
            channel: row.try_get("channel")?,
            url_template: row.try_get("url_template")?,
            headers_template: serde_json::from_str(&headers)
                .map_err(|e| corrupt("notification headers", e))?,
            render_context: json(row, "render_context")?,
            secret_names: serde_json::from_str(&secrets)
                .map_err(|e| corrupt("notification secret names", e))?,
            payload: row.try_get("payload")?,
            created_at: ts(row, "created_at")?,
        },
        status: NotificationStatus::parse(&status)?,
        attempts: u32_col(row, "attempts")?,
        next_attempt_at: ts(row, "next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        sent_at: opt_ts(row, "sent_at")?,
    })
}

impl Store {
    /// Takes up to `limit` pending notifications due at `now` (of one run, when `run_id` is
    /// given), oldest due first, and holds them for `lease`: their next attempt moves to
    /// `now + lease`, so another deliverer does not send them meanwhile, and a deliverer
    /// that dies before recording the outcome leaves them due again after the lease.
    pub async fn claim_due_notifications(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
        run_id: Option<&str>,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        let until = micros(now).saturating_add(i64::try_from(lease.as_micros()).unwrap_or(0));
        let mut tx = self.write().await?;
        let rows = sqlx::query(&format!(
            "UPDATE notifications SET next_attempt_at = $1 WHERE id IN \
             (SELECT id FROM notifications WHERE status = 'pending' AND next_attempt_at <= $2 \
              AND ($3 IS NULL OR run_id = $4) ORDER BY next_attempt_at, id LIMIT $5) \
             RETURNING {COLUMNS}"
        ))
        .bind(until)
        .bind(micros(now))
        .bind(run_id)
        .bind(run_id)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut claimed = rows.iter().map(record).collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by(|a, b| a.queued.id.cmp(&b.queued.id));
        Ok(claimed)
    }

    /// Records how an attempt to deliver notification `id` went, with its event
    /// (`notification.sent` / `notification.failed`) and audit entry, in one transaction.
    pub async fn record_delivery(
        &self,
        id: &str,
        at: Timestamp,
        outcome: &DeliveryOutcome,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM notifications WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::Corrupt {
                what: "notification id",
                detail: format!("no notification {id}"),
            });
        };
        let current = record(&row)?;
        let attempt = current.attempts.saturating_add(1);
        let (status, next, error, sent_at) = match outcome {
            DeliveryOutcome::Sent => (
                NotificationStatus::Sent,
                current.next_attempt_at,
                None,
                Some(at),
            ),
            DeliveryOutcome::Retry {
                error,
                next_attempt_at,
            } => (
                NotificationStatus::Pending,
                *next_attempt_at,
                Some(error.as_str()),
                None,
            ),
            DeliveryOutcome::GaveUp { error } => (
                NotificationStatus::Failed,
                current.next_attempt_at,
                Some(error.as_str()),
                None,
            ),
        };
        sqlx::query(
            "UPDATE notifications SET status = $1, attempts = $2, next_attempt_at = $3, \
             last_error = COALESCE($4, last_error), sent_at = $5 WHERE id = $6",
        )
        .bind(status.as_str())
        .bind(i64::from(attempt))
        .bind(micros(next))
        .bind(error)
        .bind(sent_at.map(micros))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let q = &current.queued;
        let (kind, result, data) = match outcome {
            DeliveryOutcome::Sent => (
                "notification.sent",
                "ok",
                json!({ "id": id, "rule": q.rule, "event": q.event, "channel": q.channel,
                        "attempt": attempt }),
            ),
            DeliveryOutcome::Retry {
                error,
                next_attempt_at,
            } => (
                "notification.failed",
                "retrying",
                json!({ "id": id, "rule": q.rule, "event": q.event, "channel": q.channel,
                        "attempt": attempt, "final": false, "error": error,
                        "next_attempt_at": next_attempt_at.to_string() }),
            ),
            DeliveryOutcome::GaveUp { error } => (
                "notification.failed",
                "failed",
                json!({ "id": id, "rule": q.rule, "event": q.event, "channel": q.channel,
                        "attempt": attempt, "final": true, "error": error }),
            ),
        };
        sqlx::query(
            "INSERT INTO events (at, kind, run_id, step_id, data) VALUES ($1, $2, $3, NULL, $4)",
        )
        .bind(micros(at))
        .bind(kind)
        .bind(&q.run_id)
        .bind(data.to_string())
        .execute(&mut *tx)
        .await?;
        crate::audit::append_audit_in(
            &mut tx,
            &NewAuditEntry {
                at,
                actor: "engine".to_owned(),
                action: kind.to_owned(),
                target: format!("run/{}", q.run_id),
                source: None,
                result: result.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every notification of a run, in the order they were queued.
    pub async fn notifications_of_run(
        &self,
        run_id: &str,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM notifications WHERE run_id = $1 ORDER BY created_at, id"
        ))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    /// How many notifications wait for delivery (of one run, when `run_id` is given).
    pub async fn count_pending_notifications(
        &self,
        run_id: Option<&str>,
    ) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications WHERE status = 'pending' \
             AND ($1 IS NULL OR run_id = $2)",
        )
        .bind(run_id)
        .bind(run_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The status of the run of the same job that finished last before `run_id`'s end,
    /// for `recovery` notifications; `None` when there is none.
    pub async fn previous_finished_status(
        &self,
        namespace: &str,
        job_id: &str,
        run_id: &str,
    ) -> Result<Option<RunStatus>, StoreError> {
        let row = sqlx::query(
            "SELECT status FROM runs WHERE namespace = $1 AND job_id = $2 AND id <> $3 \
             AND finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC LIMIT 1",
        )
        .bind(namespace)
        .bind(job_id)
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| crate::convert::run_status(&r, "status"))
            .transpose()
    }
}
