//! Plans, their approvals and their one apply: plan → approve → apply (SPEC §3).
//!
//! A plan row keeps the resolved [`PlanContent`] and its hash; a decision row per actor
//! keeps the hash that actor saw. Every rule is checked inside the write transaction that
//! records the decision or the apply, so two callers never both win: the apply's
//! conditional update (`approved` → `applied`) and the queued run it creates commit
//! together, and a second apply finds the plan applied. Expiry is lazy: a plan past its
//! `expires_at` is marked `expired` by the next decision, apply or read that sees it.
//! Each change appends an event (`plan.created`, `plan.approved`, `plan.rejected`,
//! `plan.expired`, `plan.applied`) in its transaction; callers audit with their actor.

use std::str::FromStr;

use jiff::Timestamp;
use rota_core::model::Approval;
use rota_core::plan::PlanContent;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::convert::{micros, opt_ts, ts};
use crate::dialect::Sql;
use crate::write::{Rows, create_run};
use crate::{NewRun, Role, Store, StoreError};

/// Where a plan is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlanStatus {
    /// Waiting for its quorum of approvals.
    AwaitingApproval,
    /// Approved (or made for a job without approval rules): it may be applied.
    Approved,
    /// Someone rejected it; it can never be applied.
    Rejected,
    /// Its `expires_at` passed before it was applied.
    Expired,
    /// Applied: its run exists.
    Applied,
}

impl PlanStatus {
    /// Every status.
    pub const ALL: [PlanStatus; 5] = [
        PlanStatus::AwaitingApproval,
        PlanStatus::Approved,
        PlanStatus::Rejected,
        PlanStatus::Expired,
        PlanStatus::Applied,
    ];

    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::AwaitingApproval => "awaiting_approval",
            PlanStatus::Approved => "approved",
            PlanStatus::Rejected => "rejected",
            PlanStatus::Expired => "expired",
            PlanStatus::Applied => "applied",
        }
    }
}

impl FromStr for PlanStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<PlanStatus, String> {
        PlanStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| format!("unknown plan status {text:?}"))
    }
}

/// An approver's decision (on a plan or a run's gate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Approve the plan.
    Approve,
    /// Reject it; one rejection ends the plan.
    Reject,
    /// Skip the failed step a gate of `on_failure: ask` holds; one skip settles the gate.
    /// Plans refuse it ([`PlanError::NotSkippable`]).
    Skip,
}

impl Decision {
    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
            Decision::Skip => "skip",
        }
    }
}

/// A plan to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPlan {
    /// Its id (`ids::new_run_id`).
    pub id: String,
    /// The resolved content; its hash is computed here.
    pub content: PlanContent,
    /// The job's approval rules; `None` makes the plan approved at once.
    pub approval: Option<Approval>,
    /// Who made it (an actor as the audit log names it).
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// A dry run of the plan to create with it (queued, every step in dry-run mode).
    pub dry_run: Option<NewRun>,
}

/// Who decides, as the approval rules see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    /// The actor as the audit log names it; compared with the plan's creator.
    pub actor: String,
    /// The name approvers are listed by (an API token's name, a local user name).
    pub name: String,
    /// The strongest role held in the plan's namespace.
    pub role: Option<Role>,
}

/// One recorded decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanDecisionRecord {
    /// Who.
    pub actor: String,
    /// When.
    pub at: Timestamp,
    /// The plan hash they decided on.
    pub hash: String,
    /// What they decided.
    pub decision: Decision,
    /// Their comment.
    pub comment: Option<String>,
}

/// A stored plan with its decisions.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRecord {
    /// Plan id.
    pub id: String,
    /// The resolved content.
    pub content: PlanContent,
    /// Its content hash.
    pub hash: String,
    /// The approval rules it was made under.
    pub approval: Option<Approval>,
    /// Where it is.
    pub status: PlanStatus,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// When it stops being approvable or appliable.
    pub expires_at: Option<Timestamp>,
    /// The dry run made with it.
    pub dry_run_id: Option<String>,
    /// The run its apply created.
    pub run_id: Option<String>,
    /// Who applied it.
    pub applied_by: Option<String>,
    /// When.
    pub applied_at: Option<Timestamp>,
    /// The decisions so far, oldest first.
    pub decisions: Vec<PlanDecisionRecord>,
}

/// The trigger recorded on runs made from plans.
pub const PLAN_TRIGGER: &str = "plan";

impl NewRun {
    /// A queued run of `plan` (a dry run of it with `dry_run`) that `by` asked for, owned
    /// by nobody until a server claims it.
    pub fn of_plan(plan: &PlanContent, dry_run: bool, by: &str) -> NewRun {
        NewRun {
            id: crate::ids::new_run_id(),
            namespace: plan.namespace.clone(),
            job_id: plan.job.clone(),
            job_revision: plan.revision,
            params: serde_json::Value::Object(
                plan.params
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            dry_run,
            trigger: PLAN_TRIGGER.to_owned(),
            started_by: Some(by.to_owned()),
            scheduled_at: None,
            created_at: Timestamp::now(),
            owner: crate::Owner::nobody(),
            steps: plan.steps.iter().map(|s| s.id.clone()).collect(),
            parent: None,
        }
    }
}

impl PlanRecord {
    /// How many distinct approvals it has.
    pub fn approvals(&self) -> usize {
        self.decisions
            .iter()
            .filter(|d| d.decision == Decision::Approve)
            .count()
    }
}

/// Which plans to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanFilter {
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only this status.
    pub status: Option<PlanStatus>,
    /// At most this many (capped at 1,000; 0 means 50).
    pub limit: u32,
    /// Only plans older than this `(created_at, id)` position.
    pub before: Option<(Timestamp, String)>,
}

/// Why a plan action was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// No plan has this id (or id prefix).
    #[error("no plan matches {0:?}")]
    NotFound(String),
    /// The plan's time ran out.
    #[error("plan {0} expired")]
    Expired(String),
    /// The plan does not wait for decisions (approved, rejected, applied, expired, or made
    /// for a job without approval rules).
    #[error("plan {id} is {status}, not awaiting approval")]
    NotAwaiting {
        /// The plan.
        id: String,
        /// Its status.
        status: &'static str,
    },
    /// The caller is not one of the plan's approvers, or lacks the `operator` role.
    #[error(
        "{actor} may not approve plan {id}: approvers are {approvers} (with at least the operator role)"
    )]
    NotApprover {
        /// The plan.
        id: String,
        /// The caller.
        actor: String,
        /// The approvers as the job lists them.
        approvers: String,
    },
    /// The caller made the plan and the rules do not allow self-approval.
    #[error(
        "{actor} made plan {id} and may not approve it (the job's approval rules set allow_self: false)"
    )]
    SelfApproval {
        /// The plan.
        id: String,
        /// The caller.
        actor: String,
    },
    /// A plan is approved or rejected, never skipped.
    #[error("plan {0} is approved or rejected; only a failed step's question is skipped")]
    NotSkippable(String),
    /// The caller already decided on this plan.
    #[error("{actor} already decided on plan {id}")]
    AlreadyDecided {
        /// The plan.
        id: String,
        /// The caller.
        actor: String,
    },
    /// The caller decided on another content than the plan's (a hash they were shown).
    #[error("plan {id} has hash {actual}, not {given}")]
    HashMismatch {
        /// The plan.
        id: String,
        /// The hash given.
        given: String,
        /// The plan's hash.
        actual: String,
    },
    /// The plan may not be applied in its current status.
    #[error("plan {id} is {status}{}", missing.map(|n| format!(": it needs {n} more approval(s)")).unwrap_or_default())]
    NotApproved {
        /// The plan.
        id: String,
        /// Its status.
        status: &'static str,
        /// Approvals still missing, while it awaits approval.
        missing: Option<usize>,
    },
    /// The plan was applied already.
    #[error("plan {id} was already applied as run {run_id}")]
    AlreadyApplied {
        /// The plan.
        id: String,
        /// The run it created.
        run_id: String,
    },
    /// What the plan pinned changed since it was made.
    #[error("plan {id} no longer matches its job: {}", changes.join("; "))]
    Drift {
        /// The plan.
        id: String,
        /// What changed, one sentence each.
        changes: Vec<String>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for PlanError {
    fn from(e: sqlx::Error) -> PlanError {
        PlanError::Store(e.into())
    }
}

/// Whether `who` may decide under `rules`: named directly, or holding a listed role; and
/// holding at least `operator` in the namespace either way.
pub fn is_approver(rules: &Approval, who: &Approver) -> bool {
    let Some(role) = who.role else {
        return false;
    };
    if role < Role::Operator {
        return false;
    }
    rules
        .approvers
        .iter()
        .any(|entry| match entry.strip_prefix("role:") {
            Some(wanted) => Role::parse(wanted).is_some_and(|wanted| role >= wanted),
            None => *entry == who.name,
        })
}

const COLUMNS: &str = "id, hash, content, approval, status, created_by, created_at, \
                       expires_at, dry_run_id, run_id, applied_by, applied_at";

fn corrupt(what: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

fn plan_row(row: &AnyRow) -> Result<PlanRecord, StoreError> {
    let content: String = row.try_get("content")?;
    let approval: Option<String> = row.try_get("approval")?;
    let status: String = row.try_get("status")?;
    Ok(PlanRecord {
        id: row.try_get("id")?,
        content: serde_json::from_str(&content).map_err(|e| corrupt("plans.content", e))?,
        hash: row.try_get("hash")?,
        approval: approval
            .map(|a| serde_json::from_str(&a))
            .transpose()
            .map_err(|e| corrupt("plans.approval", e))?,
        status: status.parse().map_err(|e| corrupt("plans.status", e))?,
        created_by: row.try_get("created_by")?,
        created_at: ts(row, "created_at")?,
        expires_at: opt_ts(row, "expires_at")?,
        dry_run_id: row.try_get("dry_run_id")?,
        run_id: row.try_get("run_id")?,
        applied_by: row.try_get("applied_by")?,
        applied_at: opt_ts(row, "applied_at")?,
        decisions: Vec::new(),
    })
}

async fn load(conn: &mut AnyConnection, id: &str) -> Result<Option<PlanRecord>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM plans WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut plan = plan_row(&row)?;
    let rows = sqlx::query(
        "SELECT actor, at, hash, decision, comment FROM plan_decisions \
         WHERE plan_id = $1 ORDER BY at, actor",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    for row in &rows {
        plan.decisions.push(decision_row(row)?);
    }
    Ok(Some(plan))
}

fn decision_row(row: &AnyRow) -> Result<PlanDecisionRecord, StoreError> {
    let decision: String = row.try_get("decision")?;
    Ok(PlanDecisionRecord {
        actor: row.try_get("actor")?,
        at: ts(row, "at")?,
        hash: row.try_get("hash")?,
        decision: match decision.as_str() {
            "approve" => Decision::Approve,
            "reject" => Decision::Reject,
            other => return Err(corrupt("plan_decisions.decision", other)),
        },
        comment: row.try_get("comment")?,
    })
}

/// Appends a plan event; it names a run only once the plan has one.
async fn plan_event(
    conn: &mut AnyConnection,
    at: Timestamp,
    kind: &str,
    run_id: Option<&str>,
    data: serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO events (at, kind, run_id, data) VALUES ($1, $2, $3, $4)")
        .bind(micros(at))
        .bind(kind)
        .bind(run_id)
        .bind(data.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Marks `plan` expired when its time ran out at `now`; true if it did.
async fn expire_if_due(
    conn: &mut AnyConnection,
    plan: &mut PlanRecord,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let open = matches!(
        plan.status,
        PlanStatus::AwaitingApproval | PlanStatus::Approved
    );
    if !open || plan.expires_at.is_none_or(|at| at > now) {
        return Ok(false);
    }
    sqlx::query("UPDATE plans SET status = 'expired' WHERE id = $1")
        .bind(&plan.id)
        .execute(&mut *conn)
        .await?;
    plan_event(
        conn,
        now,
        "plan.expired",
        None,
        json!({ "plan_id": plan.id }),
    )
    .await?;
    plan.status = PlanStatus::Expired;
    Ok(true)
}

impl Store {
    /// Resolves a plan of the latest revision of `namespace/job_id` with the resolved
    /// `params` and the current versions of the job's secrets; also returns the job as
    /// stored. `None` when the job does not exist (or was deleted).
    pub async fn resolve_plan(
        &self,
        namespace: &str,
        job_id: &str,
        params: &std::collections::BTreeMap<String, rota_core::model::Value>,
    ) -> Result<Option<(PlanContent, rota_core::model::Job)>, StoreError> {
        let Some(revision) = self.latest_job_revision(namespace, job_id).await? else {
            return Ok(None);
        };
        let job = revision
            .job()
            .map_err(|e| corrupt("job_revisions.definition", e))?;
        let content = self
            .plan_of(namespace, &job, revision.revision, params)
            .await?;
        Ok(Some((content, job)))
    }

    /// The plan of `job` (stored as `revision`) with the resolved `params` and the current
    /// versions of its secrets, for a caller that already holds the job it resolved the
    /// parameters against.
    pub async fn plan_of(
        &self,
        namespace: &str,
        job: &rota_core::model::Job,
        revision: i64,
        params: &std::collections::BTreeMap<String, rota_core::model::Value>,
    ) -> Result<PlanContent, StoreError> {
        let mut versions = std::collections::BTreeMap::new();
        for name in &job.secrets {
            if let Some(secret) = self.latest_secret(namespace, name).await? {
                versions.insert(name.clone(), secret.version);
            }
        }
        Ok(PlanContent::resolve(
            namespace,
            job,
            revision,
            params,
            |name| versions.get(name).copied(),
        ))
    }

    /// Stores a plan (and its dry run, if any) in one transaction, with a `plan.created`
    /// event. Its status is `awaiting_approval` under approval rules, else `approved`;
    /// `expires_at` is `created_at` plus the rules' `expires`.
    pub async fn create_plan(&self, plan: &NewPlan) -> Result<PlanRecord, StoreError> {
        let hash = plan.content.hash();
        let status = if plan.approval.is_some() {
            PlanStatus::AwaitingApproval
        } else {
            PlanStatus::Approved
        };
        let expires_at = plan
            .approval
            .as_ref()
            .and_then(|a| a.expires)
            .and_then(|d| jiff::SignedDuration::try_from(d).ok())
            .and_then(|d| plan.created_at.checked_add(d).ok());
        let mut tx = self.write().await?;
        if let Some(run) = &plan.dry_run {
            let mut rows = Rows::default();
            create_run(&mut tx, run, &mut rows).await?;
            rows.flush(&mut tx).await?;
        }
        let content =
            serde_json::to_string(&plan.content).map_err(|e| corrupt("plan content", e))?;
        let approval = plan
            .approval
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| corrupt("plan approval", e))?;
        sqlx::query(
            "INSERT INTO plans (id, namespace, job_id, job_revision, hash, content, approval, \
             status, created_by, created_at, expires_at, dry_run_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&plan.id)
        .bind(&plan.content.namespace)
        .bind(&plan.content.job)
        .bind(plan.content.revision)
        .bind(&hash)
        .bind(content)
        .bind(approval)
        .bind(status.as_str())
        .bind(&plan.created_by)
        .bind(micros(plan.created_at))
        .bind(expires_at.map(micros))
        .bind(plan.dry_run.as_ref().map(|r| r.id.clone()))
        .execute(&mut *tx)
        .await?;
        plan_event(
            &mut tx,
            plan.created_at,
            "plan.created",
            None,
            json!({
                "plan_id": plan.id,
                "namespace": plan.content.namespace,
                "job_id": plan.content.job,
                "job_revision": plan.content.revision,
                "hash": hash,
                "status": status.as_str(),
                "by": plan.created_by,
                "dry_run_id": plan.dry_run.as_ref().map(|r| r.id.clone()),
            }),
        )
        .await?;
        let record = load(&mut tx, &plan.id)
            .await?
            .ok_or_else(|| StoreError::RunNotFound(plan.id.clone()))?;
        tx.commit().await?;
        Ok(record)
    }

    /// A plan by id or unique id prefix, with its decisions; a plan past its time is
    /// marked expired first.
    pub async fn find_plan(&self, id_or_prefix: &str) -> Result<PlanRecord, PlanError> {
        // Like SQLite's LIKE before: ASCII letters in any case, `%` and `_` dropped, a
        // backslash literal (escaped, as PostgreSQL's LIKE reads it as an escape).
        let escaped = id_or_prefix.replace(['%', '_'], "").replace('\\', "\\\\");
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM plans WHERE id = $1 OR lower(id) LIKE lower($2) ESCAPE '\\' \
             ORDER BY id = $1 DESC LIMIT 2",
        )
        .bind(id_or_prefix)
        .bind(format!("{escaped}%"))
        .fetch_all(&self.pool)
        .await?;
        let id = match ids.as_slice() {
            [only] => only.clone(),
            [first, _] if first == id_or_prefix => first.clone(),
            _ => return Err(PlanError::NotFound(id_or_prefix.to_owned())),
        };
        let mut plan = load(&mut *self.pool.acquire().await?, &id)
            .await?
            .ok_or_else(|| PlanError::NotFound(id.clone()))?;
        if matches!(
            plan.status,
            PlanStatus::AwaitingApproval | PlanStatus::Approved
        ) && plan.expires_at.is_some_and(|at| at <= Timestamp::now())
        {
            let mut tx = self.write().await?;
            let mut fresh = load(&mut tx, &id)
                .await?
                .ok_or_else(|| PlanError::NotFound(id.clone()))?;
            expire_if_due(&mut tx, &mut fresh, Timestamp::now()).await?;
            tx.commit().await?;
            plan = fresh;
        }
        Ok(plan)
    }

    /// The plan whose apply created run `run_id`, with its decisions, if any.
    pub async fn plan_of_run(&self, run_id: &str) -> Result<Option<PlanRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let id: Option<String> = sqlx::query_scalar("SELECT id FROM plans WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(&mut *conn)
            .await?;
        match id {
            Some(id) => load(&mut conn, &id).await,
            None => Ok(None),
        }
    }

    /// Plans newest first, with their decisions. Plans past their time show as `expired`
    /// (they are marked so when next read one by one), also for the status filter.
    pub async fn list_plans(&self, filter: &PlanFilter) -> Result<Vec<PlanRecord>, StoreError> {
        let limit = match filter.limit {
            0 => 50,
            n => n.min(1000),
        };
        let now = micros(Timestamp::now());
        let mut query = Sql::new("");
        let now = query.bind(now);
        // A plan past its time reads as expired before anything marks it so.
        let shown_status = format!(
            "CASE WHEN status IN ('awaiting_approval', 'approved') \
             AND expires_at IS NOT NULL AND expires_at <= ${now} \
             THEN 'expired' ELSE status END"
        );
        query.push(format!(
            "SELECT {COLUMNS}, {shown_status} AS shown FROM plans WHERE 1 = 1"
        ));
        if let Some(ns) = &filter.namespace {
            query.push(" AND namespace = ").push_bind(ns.as_str());
        }
        if let Some(status) = filter.status {
            query
                .push(format!(" AND {shown_status} = "))
                .push_bind(status.as_str());
        }
        if let Some((at, id)) = &filter.before {
            query
                .push(" AND (created_at < ")
                .push_bind(micros(*at))
                .push(" OR (created_at = ")
                .push_bind(micros(*at))
                .push(" AND id < ")
                .push_bind(id.as_str())
                .push("))");
        }
        query
            .push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = query.build()?.fetch_all(&self.pool).await?;
        let mut plans = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut plan = plan_row(row)?;
            let shown: String = row.try_get("shown")?;
            plan.status = shown.parse().map_err(|e| corrupt("plans.status", e))?;
            plans.push(plan);
        }
        // The page's decisions in one query.
        if !plans.is_empty() {
            let mut query = Sql::new(
                "SELECT plan_id, actor, at, hash, decision, comment FROM plan_decisions \
                 WHERE plan_id IN (",
            );
            query.push_list(&plans, |sql, plan| {
                sql.push_bind(plan.id.as_str());
            });
            query.push(") ORDER BY at, actor");
            let rows = query.build()?.fetch_all(&self.pool).await?;
            for row in &rows {
                let plan_id: String = row.try_get("plan_id")?;
                let decision = decision_row(row)?;
                if let Some(plan) = plans.iter_mut().find(|p| p.id == plan_id) {
                    plan.decisions.push(decision);
                }
            }
        }
        Ok(plans)
    }

    /// Records `who`'s decision on plan `id` under the plan's rules, in one transaction:
    /// the plan must await approval and not be past its time, `who` must be an approver
    /// (with at least `operator`), not its creator unless `allow_self`, and not have
    /// decided before; `hash`, when given, must be the plan's. A rejection ends the plan; the
    /// quorum'th approval approves it.
    pub async fn decide_plan(
        &self,
        id: &str,
        who: &Approver,
        decision: Decision,
        comment: Option<&str>,
        hash: Option<&str>,
        at: Timestamp,
    ) -> Result<PlanRecord, PlanError> {
        if decision == Decision::Skip {
            return Err(PlanError::NotSkippable(id.to_owned()));
        }
        let mut tx = self.write().await?;
        let mut plan = load(&mut tx, id)
            .await?
            .ok_or_else(|| PlanError::NotFound(id.to_owned()))?;
        if expire_if_due(&mut tx, &mut plan, at).await? {
            tx.commit().await?;
            return Err(PlanError::Expired(plan.id));
        }
        let rules = match (&plan.approval, plan.status) {
            (Some(rules), PlanStatus::AwaitingApproval) => rules.clone(),
            (_, status) => {
                return Err(match status {
                    PlanStatus::Expired => PlanError::Expired(plan.id),
                    _ => PlanError::NotAwaiting {
                        id: plan.id,
                        status: status.as_str(),
                    },
                });
            }
        };
        if !is_approver(&rules, who) {
            return Err(PlanError::NotApprover {
                id: plan.id,
                actor: who.actor.clone(),
                approvers: rules.approvers.join(", "),
            });
        }
        if who.actor == plan.created_by && !rules.allow_self {
            return Err(PlanError::SelfApproval {
                id: plan.id,
                actor: who.actor.clone(),
            });
        }
        if plan.decisions.iter().any(|d| d.actor == who.actor) {
            return Err(PlanError::AlreadyDecided {
                id: plan.id,
                actor: who.actor.clone(),
            });
        }
        if let Some(given) = hash
            && given != plan.hash
        {
            return Err(PlanError::HashMismatch {
                id: plan.id,
                given: given.to_owned(),
                actual: plan.hash,
            });
        }
        sqlx::query(
            "INSERT INTO plan_decisions (plan_id, actor, at, hash, decision, comment) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&plan.id)
        .bind(&who.actor)
        .bind(micros(at))
        .bind(&plan.hash)
        .bind(decision.as_str())
        .bind(comment)
        .execute(&mut *tx)
        .await?;
        let approvals = plan.approvals() + usize::from(decision == Decision::Approve);
        let status = match decision {
            Decision::Reject | Decision::Skip => PlanStatus::Rejected,
            Decision::Approve if approvals >= rules.quorum as usize => PlanStatus::Approved,
            Decision::Approve => PlanStatus::AwaitingApproval,
        };
        sqlx::query("UPDATE plans SET status = $1 WHERE id = $2")
            .bind(status.as_str())
            .bind(&plan.id)
            .execute(&mut *tx)
            .await?;
        let kind = match decision {
            Decision::Approve => "plan.approved",
            Decision::Reject | Decision::Skip => "plan.rejected",
        };
        plan_event(
            &mut tx,
            at,
            kind,
            None,
            json!({
                "plan_id": plan.id,
                "by": who.actor,
                "hash": plan.hash,
                "approvals": approvals,
                "quorum": rules.quorum,
                "status": status.as_str(),
            }),
        )
        .await?;
        let record = load(&mut tx, id)
            .await?
            .ok_or_else(|| PlanError::NotFound(id.to_owned()))?;
        tx.commit().await?;
        Ok(record)
    }

    /// Applies plan `id`: in one transaction, checks that it is approved and not past its
    /// time, that `current` (the plan resolved again from the job's latest revision, the
    /// plan's parameters and the secrets' current versions) has the plan's hash, then
    /// creates `run` (queued, no owner) and marks the plan applied with the run's id, with a
    /// `plan.applied` event. A plan is applied at most once, whoever calls at the same time.
    pub async fn apply_plan(
        &self,
        id: &str,
        current: Option<&PlanContent>,
        run: &NewRun,
        by: &str,
        at: Timestamp,
    ) -> Result<PlanRecord, PlanError> {
        let mut tx = self.write().await?;
        let mut plan = load(&mut tx, id)
            .await?
            .ok_or_else(|| PlanError::NotFound(id.to_owned()))?;
        if expire_if_due(&mut tx, &mut plan, at).await? {
            tx.commit().await?;
            return Err(PlanError::Expired(plan.id));
        }
        match plan.status {
            PlanStatus::Approved => {}
            PlanStatus::Applied => {
                return Err(PlanError::AlreadyApplied {
                    run_id: plan.run_id.clone().unwrap_or_default(),
                    id: plan.id,
                });
            }
            PlanStatus::Expired => return Err(PlanError::Expired(plan.id)),
            status => {
                let missing = (status == PlanStatus::AwaitingApproval).then(|| {
                    let quorum = plan.approval.as_ref().map_or(0, |a| a.quorum as usize);
                    quorum.saturating_sub(plan.approvals())
                });
                return Err(PlanError::NotApproved {
                    id: plan.id,
                    status: status.as_str(),
                    missing,
                });
            }
        }
        let changes = match current {
            None => vec![format!(
                "job {}/{} no longer exists",
                plan.content.namespace, plan.content.job
            )],
            Some(current) if current.hash() != plan.hash => {
                let mut changes = plan.content.changes_since(current);
                // The hash is the judge: a difference no sentence names still refuses.
                if changes.is_empty() {
                    changes.push("the plan's content changed".to_owned());
                }
                changes
            }
            Some(_) => Vec::new(),
        };
        if !changes.is_empty() {
            return Err(PlanError::Drift {
                id: plan.id,
                changes,
            });
        }
        let mut rows = Rows::default();
        create_run(&mut tx, run, &mut rows).await?;
        rows.flush(&mut tx).await?;
        let updated = sqlx::query(
            "UPDATE plans SET status = 'applied', run_id = $1, applied_by = $2, applied_at = $3 \
             WHERE id = $4 AND status = 'approved'",
        )
        .bind(&run.id)
        .bind(by)
        .bind(micros(at))
        .bind(&plan.id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            // Unreachable under the write lock; kept so a future backend without it
            // still never applies a plan twice.
            return Err(PlanError::NotApproved {
                id: plan.id,
                status: "applied",
                missing: None,
            });
        }
        plan_event(
            &mut tx,
            at,
            "plan.applied",
            Some(&run.id),
            json!({ "plan_id": plan.id, "by": by, "hash": plan.hash }),
        )
        .await?;
        let record = load(&mut tx, id)
            .await?
            .ok_or_else(|| PlanError::NotFound(id.to_owned()))?;
        tx.commit().await?;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use jiff::Timestamp;
    use rota_core::model::{Approval, Job};
    use rota_core::parse::{Format, parse_str};

    use super::*;
    use crate::Backend;
    use crate::NewJobRevision;
    use crate::testing::{TestDb, both, fresh};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const SOURCE: &str = "id: deploy\nsteps:\n  - id: go\n    sh: echo {{ params.env }}\nparams:\n  env: { type: string, default: staging }\n";

    async fn setup(
        backend: Backend,
        rules: Option<Approval>,
    ) -> Result<(TestDb, Store), Box<dyn std::error::Error>> {
        let (db, store) = fresh(backend).await?;
        save(&store, SOURCE, rules).await?;
        Ok((db, store))
    }

    async fn save(
        store: &Store,
        source: &str,
        rules: Option<Approval>,
    ) -> Result<Job, Box<dyn std::error::Error>> {
        let mut job = parse_str(source, "deploy.yaml", Format::Yaml)
            .map_err(|e| e.to_string())?
            .remove(0);
        job.approval = rules;
        let rev = NewJobRevision::new(
            "ops",
            "deploy",
            source,
            serde_json::to_value(&job)?,
            Timestamp::now(),
        );
        store.save_job_revision(&rev).await?;
        Ok(job)
    }

    fn rules(quorum: u32, allow_self: bool) -> Approval {
        Approval {
            approvers: vec!["alice".into(), "bob".into(), "role:admin".into()],
            quorum,
            allow_self,
            expires: None,
        }
    }

    fn who(name: &str, role: Role) -> Approver {
        Approver {
            actor: format!("token:{name}:{name}"),
            name: name.into(),
            role: Some(role),
        }
    }

    async fn plan(store: &Store, by: &str) -> Result<PlanRecord, Box<dyn std::error::Error>> {
        let params = BTreeMap::from([("env".to_owned(), serde_json::json!("prod"))]);
        let (content, job) = store
            .resolve_plan("ops", "deploy", &params)
            .await?
            .ok_or("no job")?;
        Ok(store
            .create_plan(&NewPlan {
                id: crate::ids::new_run_id(),
                content,
                approval: job.approval,
                created_by: by.into(),
                created_at: Timestamp::now(),
                dry_run: None,
            })
            .await?)
    }

    fn run_of(plan: &PlanRecord) -> NewRun {
        NewRun::of_plan(&plan.content, false, "alice")
    }

    async fn apply(store: &Store, plan: &PlanRecord) -> Result<PlanRecord, PlanError> {
        let (current, _) = store
            .resolve_plan("ops", "deploy", &plan.content.params)
            .await?
            .ok_or_else(|| PlanError::NotFound("job".into()))?;
        store
            .apply_plan(
                &plan.id,
                Some(&current),
                &run_of(plan),
                "me",
                Timestamp::now(),
            )
            .await
    }

    async fn decide(
        store: &Store,
        plan: &PlanRecord,
        by: &Approver,
        d: Decision,
    ) -> Result<PlanRecord, PlanError> {
        store
            .decide_plan(&plan.id, by, d, None, None, Timestamp::now())
            .await
    }

    both!(a_stored_hash_that_no_longer_matches_refuses_apply);
    async fn a_stored_hash_that_no_longer_matches_refuses_apply(backend: Backend) -> TestResult {
        // Without approval rules a plan is approved at once; its hash is then edited in the
        // file, so nothing a sentence could name has changed, but the hash differs.
        let (_dir, store) = setup(backend, None).await?;
        let plan = plan(&store, "token:carol:carol").await?;
        assert_eq!(plan.status, PlanStatus::Approved);
        sqlx::query("UPDATE plans SET hash = $1 WHERE id = $2")
            .bind("0".repeat(64))
            .bind(&plan.id)
            .execute(&store.pool)
            .await?;
        let refused = apply(&store, &plan).await;
        match refused {
            Err(PlanError::Drift { changes, .. }) => {
                assert_eq!(changes, ["the plan's content changed"]);
            }
            other => panic!("applied a plan whose hash was edited: {other:?}"),
        }
        Ok(())
    }

    both!(quorum_of_two_distinct_approvers_approves);
    async fn quorum_of_two_distinct_approvers_approves(backend: Backend) -> TestResult {
        let (_dir, store) = setup(backend, Some(rules(2, false))).await?;
        let plan = plan(&store, "token:carol:carol").await?;
        assert_eq!(plan.status, PlanStatus::AwaitingApproval);
        let refused = apply(&store, &plan).await;
        assert!(
            matches!(
                refused,
                Err(PlanError::NotApproved {
                    missing: Some(2),
                    ..
                })
            ),
            "{refused:?}"
        );
        let after_one = decide(
            &store,
            &plan,
            &who("alice", Role::Operator),
            Decision::Approve,
        )
        .await?;
        assert_eq!(after_one.status, PlanStatus::AwaitingApproval);
        let twice = decide(
            &store,
            &plan,
            &who("alice", Role::Operator),
            Decision::Approve,
        )
        .await;
        assert!(
            matches!(twice, Err(PlanError::AlreadyDecided { .. })),
            "{twice:?}"
        );
        let done = decide(
            &store,
            &plan,
            &who("bob", Role::Operator),
            Decision::Approve,
        )
        .await?;
        assert_eq!(done.status, PlanStatus::Approved);
        assert_eq!(done.decisions.len(), 2);
        assert!(done.decisions.iter().all(|d| d.hash == plan.hash));
        let applied = apply(&store, &plan).await?;
        assert_eq!(applied.status, PlanStatus::Applied);
        let run = store
            .find_run(applied.run_id.as_deref().unwrap_or("-"))
            .await?;
        assert_eq!(run.trigger, "plan");
        assert_eq!(run.params["env"], "prod");
        Ok(())
    }

    both!(approver_rules_refuse_strangers_viewers_and_self);
    async fn approver_rules_refuse_strangers_viewers_and_self(backend: Backend) -> TestResult {
        let (_dir, store) = setup(backend, Some(rules(1, false))).await?;
        let plan = plan(&store, "token:alice:alice").await?;
        let stranger = decide(
            &store,
            &plan,
            &who("mallory", Role::Operator),
            Decision::Approve,
        )
        .await;
        assert!(
            matches!(stranger, Err(PlanError::NotApprover { .. })),
            "{stranger:?}"
        );
        let viewer = decide(&store, &plan, &who("bob", Role::Viewer), Decision::Approve).await;
        assert!(
            matches!(viewer, Err(PlanError::NotApprover { .. })),
            "{viewer:?}"
        );
        let own = decide(&store, &plan, &who("alice", Role::Admin), Decision::Approve).await;
        assert!(
            matches!(own, Err(PlanError::SelfApproval { .. })),
            "{own:?}"
        );
        // A role entry admits anyone holding it.
        let admin = decide(&store, &plan, &who("dave", Role::Admin), Decision::Approve).await?;
        assert_eq!(admin.status, PlanStatus::Approved);
        Ok(())
    }

    both!(self_approval_is_allowed_when_the_rules_say_so);
    async fn self_approval_is_allowed_when_the_rules_say_so(backend: Backend) -> TestResult {
        let (_dir, store) = setup(backend, Some(rules(1, true))).await?;
        let plan = plan(&store, "token:alice:alice").await?;
        let own = decide(
            &store,
            &plan,
            &who("alice", Role::Operator),
            Decision::Approve,
        )
        .await?;
        assert_eq!(own.status, PlanStatus::Approved);
        Ok(())
    }

    both!(a_rejection_ends_the_plan);
    async fn a_rejection_ends_the_plan(backend: Backend) -> TestResult {
        let (_dir, store) = setup(backend, Some(rules(2, false))).await?;
        let plan = plan(&store, "token:carol:carol").await?;
        decide(
            &store,
            &plan,
            &who("alice", Role::Operator),
            Decision::Approve,
        )
        .await?;
        let rejected = decide(&store, &plan, &who("bob", Role::Operator), Decision::Reject).await?;
        assert_eq!(rejected.status, PlanStatus::Rejected);
        let late = decide(&store, &plan, &who("dave", Role::Admin), Decision::Approve).await;
        assert!(
            matches!(late, Err(PlanError::NotAwaiting { .. })),
            "{late:?}"
        );
        let applied = apply(&store, &plan).await;
        assert!(
            matches!(applied, Err(PlanError::NotApproved { .. })),
            "{applied:?}"
        );
        Ok(())
    }

    both!(a_plan_past_its_time_expires);
    async fn a_plan_past_its_time_expires(backend: Backend) -> TestResult {
        let mut r = rules(1, false);
        r.expires = Some(Duration::from_millis(1));
        let (_dir, store) = setup(backend, Some(r)).await?;
        let plan = plan(&store, "token:carol:carol").await?;
        let expires_at = plan.expires_at.ok_or("no expiry")?;
        // Poll the clock (no sleep of a guessed length) until the time has passed.
        while Timestamp::now() <= expires_at {
            tokio::task::yield_now().await;
        }
        let late = decide(
            &store,
            &plan,
            &who("alice", Role::Operator),
            Decision::Approve,
        )
        .await;
        assert!(matches!(late, Err(PlanError::Expired(_))), "{late:?}");
        assert_eq!(store.find_plan(&plan.id).await?.status, PlanStatus::Expired);
        Ok(())
    }

    both!(apply_refuses_after_the_job_changed_and_names_the_change);
    async fn apply_refuses_after_the_job_changed_and_names_the_change(
        backend: Backend,
    ) -> TestResult {
        let (_dir, store) = setup(backend, None).await?;
        let plan = plan(&store, "me").await?;
        assert_eq!(plan.status, PlanStatus::Approved);
        save(&store, &SOURCE.replace("echo", "echo now"), None).await?;
        let drift = apply(&store, &plan).await;
        match drift {
            Err(PlanError::Drift { changes, .. }) => {
                assert!(
                    changes.contains(&"job revision 1 → 2".to_owned()),
                    "{changes:?}"
                );
            }
            other => return Err(format!("expected drift, got {other:?}").into()),
        }
        Ok(())
    }

    both!(two_concurrent_applies_create_one_run);
    async fn two_concurrent_applies_create_one_run(backend: Backend) -> TestResult {
        let (_dir, store) = setup(backend, None).await?;
        let plan = plan(&store, "me").await?;
        let (a, b) = tokio::join!(apply(&store, &plan), apply(&store, &plan));
        let wins = [a.is_ok(), b.is_ok()].into_iter().filter(|ok| *ok).count();
        assert_eq!(wins, 1, "{a:?} {b:?}");
        let loser = if a.is_ok() { b } else { a };
        assert!(
            matches!(loser, Err(PlanError::AlreadyApplied { .. })),
            "{loser:?}"
        );
        let runs = store.list_runs(&crate::RunFilter::default()).await?;
        assert_eq!(runs.len(), 1);
        Ok(())
    }

    both!(listing_filters_by_shown_status_pages_and_carries_decisions);
    async fn listing_filters_by_shown_status_pages_and_carries_decisions(
        backend: Backend,
    ) -> TestResult {
        let (_dir, store) = setup(backend, Some(rules(2, false))).await?;
        let first = plan(&store, "token:carol:carol").await?;
        let second = plan(&store, "token:carol:carol").await?;
        decide(
            &store,
            &second,
            &who("alice", Role::Operator),
            Decision::Approve,
        )
        .await?;
        let all = store.list_plans(&PlanFilter::default()).await?;
        let ids: Vec<&str> = all.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, [second.id.as_str(), first.id.as_str()]);
        assert_eq!(all[0].approvals(), 1);
        let page = store
            .list_plans(&PlanFilter {
                limit: 1,
                before: Some((all[0].created_at, all[0].id.clone())),
                ..PlanFilter::default()
            })
            .await?;
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].id, first.id);
        let approved = store
            .list_plans(&PlanFilter {
                status: Some(PlanStatus::Approved),
                ..PlanFilter::default()
            })
            .await?;
        assert!(approved.is_empty());
        let awaiting = store
            .list_plans(&PlanFilter {
                status: Some(PlanStatus::AwaitingApproval),
                namespace: Some("ops".into()),
                ..PlanFilter::default()
            })
            .await?;
        assert_eq!(awaiting.len(), 2);
        Ok(())
    }
}
