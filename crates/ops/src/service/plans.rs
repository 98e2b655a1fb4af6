//! The plans operations of [`crate::Rota`]: make a plan of a job, list and read plans
//! (with their drift), approve or reject one under the job's approval rules, apply one.
//!
//! The rules themselves (approvers, quorum, self-approval, expiry, one apply, drift) are
//! enforced by the store in one transaction (`decide_plan`, `apply_plan`); here the caller
//! becomes an approver (`approver`) and each refusal an [`OpsError`]: `Forbidden` for a
//! caller who is not an approver, `Conflict` for self-approval, a second decision, an
//! expired or decided plan, missing approvals and drift.

use std::future::Future;

use jiff::Timestamp;
use rota_store::{Approver, Decision, PlanError, PlanFilter, PlanRecord, PlanStatus};

use crate::OpsError;
use crate::auth::{Principal, Role, Scope};
use crate::ids::RunId;
use crate::records::{CreatePlan, DecidePlan, Plan, PlanPage, PlanQuery, Run};

use super::Session;
use super::page::page_limit;

/// Longest comment a decision may carry, in characters.
const MAX_COMMENT: usize = 2000;

/// What an approver decides on a plan or a run's gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Approve it (the quorum'th approval makes it `approved`; at a failed step's question,
    /// retry the step).
    Approve,
    /// Reject it (one rejection ends it; at a failed step's question, abort the step).
    Reject,
    /// Skip the failed step whose question a gate holds (`on_failure: ask`); nothing else
    /// is skipped.
    Skip,
}

impl Verdict {
    /// The verb: the API route's last segment (`/runs/{id}/skip`) and the audit action's
    /// (`run.skip`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
            Verdict::Skip => "skip",
        }
    }

    /// The decision as the store records it.
    pub fn decision(self) -> Decision {
        match self {
            Verdict::Approve => Decision::Approve,
            Verdict::Reject => Decision::Reject,
            Verdict::Skip => Decision::Skip,
        }
    }
}

/// The plans operations.
pub trait Plans {
    /// Makes a plan of the job's latest revision with `request`'s parameters (and, with
    /// `dry_run`, queues its dry run).
    fn create_plan(
        &self,
        namespace: &str,
        job: &str,
        request: CreatePlan,
    ) -> impl Future<Output = Result<Plan, OpsError>> + Send;

    /// Plans, newest first, a page at a time, each with its drift.
    fn list_plans(
        &self,
        query: PlanQuery,
    ) -> impl Future<Output = Result<PlanPage, OpsError>> + Send;

    /// One plan (by id or unambiguous prefix) with its decisions and drift.
    fn get_plan(&self, id: &str) -> impl Future<Output = Result<Plan, OpsError>> + Send;

    /// Approves or rejects plan `id` as the caller.
    fn decide_plan(
        &self,
        id: &str,
        verdict: Verdict,
        decision: DecidePlan,
    ) -> impl Future<Output = Result<Plan, OpsError>> + Send;

    /// Applies the approved plan `id`: queues its run (unless it drifted) and marks the plan
    /// applied, once.
    fn apply_plan(&self, id: &str) -> impl Future<Output = Result<Run, OpsError>> + Send;
}

impl Plans for Session {
    async fn create_plan(
        &self,
        namespace: &str,
        job: &str,
        request: CreatePlan,
    ) -> Result<Plan, OpsError> {
        let outcome = async {
            self.principal()
                .require(Scope::Namespace(namespace), Role::Operator)?;
            let ops = self.ops();
            let (revision, definition) = ops.latest_job(namespace, job).await?;
            let given = request.params.into_iter().collect();
            let params = crate::resolve_params(&definition, given)?;
            let actor = self.actor();
            ops.create_plan(
                &actor,
                namespace,
                &definition,
                revision,
                &params,
                request.dry_run,
            )
            .await
        }
        .await;
        let target = match &outcome {
            Ok(plan) => format!("plan/{}", plan.id),
            Err(_) => format!("job/{namespace}/{job}"),
        };
        let plan = self.audited("plan.create", &target, outcome).await?;
        Ok(Plan::from(plan))
    }

    async fn list_plans(&self, query: PlanQuery) -> Result<PlanPage, OpsError> {
        let scope = query
            .namespace
            .as_ref()
            .map_or(Scope::Global, |ns| Scope::Namespace(ns.as_str()));
        self.principal().require(scope, Role::Viewer)?;
        let status = query
            .status
            .as_deref()
            .map(|s| {
                s.parse::<PlanStatus>()
                    .map_err(|_| OpsError::InvalidQuery(format!("unknown plan status {s:?}")))
            })
            .transpose()?;
        let limit = page_limit(query.limit)?;
        let filter = PlanFilter {
            namespace: query.namespace.as_ref().map(|n| n.to_string()),
            status,
            limit: limit + 1,
            before: query.cursor.as_deref().map(decode_cursor).transpose()?,
        };
        let mut plans = self.ops().store().list_plans(&filter).await?;
        let next_cursor = (plans.len() > limit as usize).then(|| {
            plans.truncate(limit as usize);
            plans
                .last()
                .map(|p| format!("{}.{}", p.created_at.as_microsecond(), p.id))
        });
        let mut items = Vec::with_capacity(plans.len());
        for plan in plans {
            items.push(self.with_drift(plan).await?);
        }
        Ok(PlanPage {
            items,
            next_cursor: next_cursor.flatten(),
        })
    }

    async fn get_plan(&self, id: &str) -> Result<Plan, OpsError> {
        let plan = self.find_plan(id, Role::Viewer).await?;
        self.with_drift(plan).await
    }

    async fn decide_plan(
        &self,
        id: &str,
        verdict: Verdict,
        decision: DecidePlan,
    ) -> Result<Plan, OpsError> {
        let outcome = async {
            check_comment(decision.comment.as_deref())?;
            let plan = self.find_plan(id, Role::Operator).await?;
            let who = approver(self.principal(), &plan.content.namespace);
            self.ops()
                .store()
                .decide_plan(
                    &plan.id,
                    &who,
                    verdict.decision(),
                    decision.comment.as_deref(),
                    decision.hash.as_deref(),
                    Timestamp::now(),
                )
                .await
                .map_err(plan_error)
        }
        .await;
        let action = format!("plan.{}", verdict.as_str());
        let plan = self
            .audited(&action, &format!("plan/{id}"), outcome)
            .await?;
        Ok(Plan::from(plan))
    }

    async fn apply_plan(&self, id: &str) -> Result<Run, OpsError> {
        let outcome = async {
            let plan = self.find_plan(id, Role::Operator).await?;
            let run_id = self
                .ops()
                .apply_plan(&self.actor(), &plan.id)
                .await
                .map_err(plan_error)?;
            self.ops().run(&run_id).await
        }
        .await;
        let run = self
            .audited("plan.apply", &format!("plan/{id}"), outcome)
            .await?;
        Ok(Run::from(run))
    }
}

impl Session {
    /// The plan `id` (or an unambiguous prefix), after checking that the caller holds
    /// `role` in its namespace.
    async fn find_plan(&self, id: &str, role: Role) -> Result<PlanRecord, OpsError> {
        let plan = self.ops().store().find_plan(id).await.map_err(plan_error)?;
        self.principal()
            .require(Scope::Namespace(&plan.content.namespace), role)?;
        Ok(plan)
    }

    /// The plan with its drift: for a plan that could still be applied, the plan resolved
    /// again from the job's latest revision and the secrets' current versions, compared
    /// with what it pinned (as `apply` compares them).
    async fn with_drift(&self, record: PlanRecord) -> Result<Plan, OpsError> {
        let open = matches!(
            record.status,
            PlanStatus::Approved | PlanStatus::AwaitingApproval
        );
        let drift = if open {
            let content = &record.content;
            match self
                .ops()
                .store()
                .resolve_plan(&content.namespace, &content.job, &content.params)
                .await?
            {
                None => vec![format!(
                    "job {}/{} no longer exists",
                    content.namespace, content.job
                )],
                Some((current, _)) if current.hash() != record.hash => {
                    let mut changes = content.changes_since(&current);
                    if changes.is_empty() {
                        changes.push("the plan's content changed".to_owned());
                    }
                    changes
                }
                Some(_) => Vec::new(),
            }
        } else {
            Vec::new()
        };
        let mut plan = Plan::from(record);
        plan.drift = drift;
        Ok(plan)
    }
}

/// Refuses a decision's comment over [`MAX_COMMENT`] characters.
pub(crate) fn check_comment(comment: Option<&str>) -> Result<(), OpsError> {
    match comment {
        Some(c) if c.chars().count() > MAX_COMMENT => Err(OpsError::Invalid(format!(
            "`comment` must be at most {MAX_COMMENT} characters"
        ))),
        _ => Ok(()),
    }
}

/// The caller as the approval rules see it: approvers are listed by token name (token
/// actors are `token:<id>:<name>`) or, for the CLI's local user (`local:<user>`), by the
/// user's name, and by role (`role:<role>`) in the plan's namespace.
pub(crate) fn approver(principal: &Principal, namespace: &str) -> Approver {
    let actor = principal.actor.as_str();
    let name = match actor.strip_prefix("local:") {
        Some(user) => user,
        None => actor.splitn(3, ':').nth(2).unwrap_or(actor),
    };
    Approver {
        actor: actor.to_owned(),
        name: name.to_owned(),
        role: principal.role_in(Scope::Namespace(namespace)),
    }
}

/// A listing cursor: `<created_at µs>.<plan id>`.
fn decode_cursor(text: &str) -> Result<(Timestamp, String), OpsError> {
    let bad = || OpsError::InvalidQuery(format!("{text:?} is not a cursor from this API"));
    let (micros, id) = text.split_once('.').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = Timestamp::from_microsecond(micros).map_err(|_| bad())?;
    let id = RunId::try_from(id.to_owned()).map_err(|_| bad())?;
    Ok((at, id.to_string()))
}

/// A refusal of the approval rules as an [`OpsError`].
fn plan_error(error: PlanError) -> OpsError {
    match error {
        PlanError::NotFound(id) => OpsError::NotFound(format!("plan {id:?}")),
        PlanError::NotApprover { id, approvers, .. } => OpsError::Forbidden {
            needed: Role::Operator,
            scope: format!("as one of the approvers of plan {id} ({approvers})"),
        },
        PlanError::Store(e) => e.into(),
        PlanError::NotSkippable(_) => OpsError::Invalid(error.to_string()),
        other => OpsError::Conflict(other.to_string()),
    }
}
