//! Notifications: the outbox rows a run's end (or a run running too long) queues, and the
//! [`Deliverer`] that sends due rows with retries.
//!
//! Rows are queued through the recorder in the same batch as the event that caused them
//! (`RunFinished`), so a run that ended is a run whose notifications exist. They are sent
//! afterwards, at least once: by `rota run` before it exits and by `rota serve` every second.
//! Target URLs and headers stay templates in the store and are rendered only to send, so no
//! secret is stored; every error text passes the same [`Redactor`] as step logs.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rota_core::model::{Job, NotifyChannel, NotifyEvent, RunStatus, StepStatus, Value};
use rota_core::template::{self, Context, RunContext};
use rota_store::{
    DeliveryOutcome, NewNotification, NotificationRecord, RunEvent, RunRecord, Store, StoreError,
};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::kinds::http as http_step;
use crate::recorder::Recorder;
use crate::redact::Redactor;
use crate::run::RunRequest;

/// How long one delivery request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts before a notification is given up as `failed`.
pub const MAX_ATTEMPTS: u32 = 8;
/// Delay before the 2nd, 3rd, … attempt; the last entry repeats.
pub const BACKOFF: [Duration; 5] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(600),
    Duration::from_secs(3600),
];
/// How long a claimed row is held by one deliverer before another may take it.
const LEASE: Duration = Duration::from_secs(60);
/// Rows taken per claim.
const CLAIM_LIMIT: u32 = 32;

/// What a run's notifications are built from, besides the job.
#[derive(Debug, Clone)]
pub struct RunFacts {
    /// Run id.
    pub run_id: String,
    /// Namespace.
    pub namespace: String,
    /// The job revision the run used.
    pub revision: i64,
    /// What started the run.
    pub trigger: String,
    /// Resolved parameters.
    pub params: BTreeMap<String, Value>,
    /// Whether it is a dry run.
    pub dry_run: bool,
    /// When it was due (scheduled runs).
    pub scheduled_at: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it started.
    pub started_at: Option<Timestamp>,
}

/// How a run ended, for the notifications of its end.
#[derive(Debug, Clone)]
pub struct RunEnd {
    /// Final status.
    pub status: RunStatus,
    /// Why (already redacted).
    pub reason: Option<String>,
    /// When.
    pub finished_at: Timestamp,
    /// Steps that failed or timed out, in file order.
    pub failed_steps: Vec<String>,
    /// Status of the job's previous finished run, for `recovery`.
    pub previous: Option<RunStatus>,
}

/// What the store knows of the run (creation and start times, trigger, revision), or
/// what the request says when the store cannot tell.
async fn facts(store: &Store, request: &RunRequest) -> RunFacts {
    let record = match store.get_run(&request.run_id).await {
        Ok(record) => record,
        Err(error) => {
            tracing::warn!(run = %request.run_id, %error, "cannot read the run for its notifications");
            None
        }
    };
    RunFacts {
        run_id: request.run_id.clone(),
        namespace: request.namespace.clone(),
        revision: request.job_revision,
        trigger: request.trigger.clone(),
        params: request.params.clone(),
        dry_run: request.dry_run,
        scheduled_at: request.scheduled_at,
        created_at: record
            .as_ref()
            .map_or_else(Timestamp::now, |r| r.created_at),
        started_at: record.as_ref().and_then(|r| r.started_at),
    }
}

/// The `NotificationQueued` events of a run's end, for the same batch as its
/// `RunFinished`. A dry run notifies no one.
pub(crate) async fn queue_end(
    store: &Store,
    request: &RunRequest,
    redactor: &Redactor,
    status: RunStatus,
    reason: Option<&str>,
    failed_steps: Vec<String>,
    finished_at: Timestamp,
) -> Vec<RunEvent> {
    if request.job.notify.is_empty() || request.dry_run {
        return Vec::new();
    }
    let facts = facts(store, request).await;
    let previous = if request
        .job
        .notify
        .iter()
        .any(|n| n.on.contains(&NotifyEvent::Recovery))
    {
        store
            .previous_finished_status(&request.namespace, &request.job.id, &request.run_id)
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(run = %request.run_id, %error, "cannot read the previous run");
                None
            })
    } else {
        None
    };
    let end = RunEnd {
        status,
        reason: reason.map(|r| redactor.redact(r).into_owned()),
        finished_at,
        failed_steps,
        previous,
    };
    end_notifications(&request.job, &facts, &end)
        .into_iter()
        .map(|notification| RunEvent::NotificationQueued { notification })
        .collect()
}

/// The notifications of a run that crash recovery marks `abandoned` at `at`: its `failure`
/// rules fire as for a failed run. A dry run notifies no one.
pub(crate) fn abandoned_notifications(
    job: &Job,
    run: &RunRecord,
    reason: &str,
    at: Timestamp,
) -> Vec<NewNotification> {
    if job.notify.is_empty() || run.dry_run {
        return Vec::new();
    }
    let facts = RunFacts {
        run_id: run.id.clone(),
        namespace: run.namespace.clone(),
        revision: run.job_revision,
        trigger: run.trigger.clone(),
        params: run
            .params
            .as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        dry_run: run.dry_run,
        scheduled_at: run.scheduled_at,
        created_at: run.created_at,
        started_at: run.started_at,
    };
    let end = RunEnd {
        status: RunStatus::Abandoned,
        reason: Some(reason.to_owned()),
        finished_at: at,
        failed_steps: run
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Running)
            .map(|s| s.step_id.clone())
            .collect(),
        previous: None,
    };
    end_notifications(job, &facts, &end)
}

/// Starts the timer of each `duration_exceeded` rule: when a rule's `after` has passed
/// since the run started, its notification is queued. The caller aborts the task when the
/// run ends. `None` when the job has no such rule (or it is a dry run).
pub(crate) async fn watch_duration(
    store: &Store,
    recorder: &Recorder,
    request: &RunRequest,
) -> Option<JoinHandle<()>> {
    let rules = duration_rules(&request.job);
    if rules.is_empty() || request.dry_run {
        return None;
    }
    let facts = facts(store, request).await;
    let job = request.job.clone();
    let recorder = recorder.clone();
    Some(tokio::spawn(async move {
        // A resumed run counts from its first start, not from this process's.
        let started = facts.started_at.unwrap_or_else(Timestamp::now);
        for (rule, after) in rules {
            let elapsed = Timestamp::now()
                .as_millisecond()
                .saturating_sub(started.as_millisecond())
                .max(0)
                .unsigned_abs();
            let wait = after.saturating_sub(Duration::from_millis(elapsed));
            tokio::time::sleep(wait).await;
            if let Some(notification) = duration_notification(&job, &facts, rule, Timestamp::now())
            {
                recorder.send(RunEvent::NotificationQueued { notification });
            }
        }
    }))
}

/// The event a finished run is, for the rule `on`, if any: `recovery` is preferred over
/// `success` when a rule lists both, so one run end sends at most one message per rule.
fn end_event(on: &[NotifyEvent], end: &RunEnd) -> Option<NotifyEvent> {
    let recovered = end.status == RunStatus::Succeeded
        && end.previous.is_some_and(|p| p != RunStatus::Succeeded);
    let candidates: &[NotifyEvent] = match end.status {
        RunStatus::Succeeded if recovered => &[NotifyEvent::Recovery, NotifyEvent::Success],
        RunStatus::Succeeded => &[NotifyEvent::Success],
        // A run whose process died is a failure to the people who wait for it.
        RunStatus::Failed | RunStatus::TimedOut | RunStatus::Abandoned => &[NotifyEvent::Failure],
        RunStatus::Cancelled => &[NotifyEvent::Cancelled],
        RunStatus::AwaitingApproval => &[NotifyEvent::AwaitingApproval],
        _ => &[],
    };
    candidates.iter().copied().find(|e| on.contains(e))
}

/// The notifications a run's end queues, one per matching rule.
pub fn end_notifications(job: &Job, facts: &RunFacts, end: &RunEnd) -> Vec<NewNotification> {
    job.notify
        .iter()
        .enumerate()
        .filter_map(|(rule, n)| {
            let event = end_event(&n.on, end)?;
            Some(build(
                job,
                facts,
                rule,
                &n.channel,
                event,
                Some(end),
                end.finished_at,
            ))
        })
        .collect()
}

/// The `duration_exceeded` notification of rule `rule`, queued at `now`.
pub fn duration_notification(
    job: &Job,
    facts: &RunFacts,
    rule: usize,
    now: Timestamp,
) -> Option<NewNotification> {
    let n = job.notify.get(rule)?;
    Some(build(
        job,
        facts,
        rule,
        &n.channel,
        NotifyEvent::DurationExceeded,
        None,
        now,
    ))
}

/// The `(rule index, after)` of every `duration_exceeded` rule, soonest first.
pub fn duration_rules(job: &Job) -> Vec<(usize, Duration)> {
    let mut rules: Vec<(usize, Duration)> = job
        .notify
        .iter()
        .enumerate()
        .filter(|(_, n)| n.on.contains(&NotifyEvent::DurationExceeded))
        .filter_map(|(i, n)| n.after.map(|after| (i, after)))
        .collect();
    rules.sort_by_key(|&(i, after)| (after, i));
    rules
}

fn build(
    job: &Job,
    facts: &RunFacts,
    rule: usize,
    channel: &NotifyChannel,
    event: NotifyEvent,
    end: Option<&RunEnd>,
    at: Timestamp,
) -> NewNotification {
    let (url, headers) = match channel {
        NotifyChannel::Webhook { url, headers } => (url.clone(), headers.clone()),
        NotifyChannel::Slack { webhook } => (webhook.clone(), BTreeMap::new()),
    };
    let payload = payload(job, facts, event, end, at);
    let body = match channel {
        NotifyChannel::Webhook { .. } => payload.to_string(),
        NotifyChannel::Slack { .. } => {
            json!({ "text": slack_text(job, facts, event, end, at) }).to_string()
        }
    };
    let secret_names = job
        .secrets
        .iter()
        .filter(|name| {
            std::iter::once(&url)
                .chain(headers.values())
                .any(|t| t.contains(name.as_str()))
        })
        .cloned()
        .collect();
    NewNotification {
        id: rota_store::ids::new_run_id(),
        run_id: facts.run_id.clone(),
        namespace: facts.namespace.clone(),
        job_id: job.id.clone(),
        rule: u32::try_from(rule).unwrap_or(u32::MAX),
        event: event.as_str().to_owned(),
        channel: channel.kind().to_owned(),
        url_template: url,
        headers_template: headers,
        render_context: json!({
            "params": facts.params,
            "run": {
                "id": facts.run_id,
                "job": job.id,
                "namespace": facts.namespace,
                "scheduled_at": facts.scheduled_at.unwrap_or(facts.created_at).to_string(),
                "dry_run": facts.dry_run,
            },
        }),
        secret_names,
        payload: body,
        created_at: at,
    }
}

/// The JSON body of a `webhook` notification.
fn payload(
    job: &Job,
    facts: &RunFacts,
    event: NotifyEvent,
    end: Option<&RunEnd>,
    at: Timestamp,
) -> serde_json::Value {
    let text = |t: Option<Timestamp>| t.map(|t| t.to_string());
    let until = end.map_or(at, |e| e.finished_at);
    let duration_ms = facts.started_at.map(|s| {
        until
            .as_millisecond()
            .saturating_sub(s.as_millisecond())
            .max(0)
    });
    json!({
        "event": event.as_str(),
        "run": {
            "id": facts.run_id,
            "namespace": facts.namespace,
            "job": job.id,
            "revision": facts.revision,
            "status": end.map_or("running", |e| e.status.as_str()),
            "reason": end.and_then(|e| e.reason.clone()),
            "trigger": facts.trigger,
            "created_at": facts.created_at.to_string(),
            "started_at": text(facts.started_at),
            "finished_at": text(end.map(|e| e.finished_at)),
            "duration_ms": duration_ms,
        },
        "failed_steps": end.map(|e| e.failed_steps.clone()).unwrap_or_default(),
    })
}

/// The one-line summary of a `slack` notification.
fn slack_text(
    job: &Job,
    facts: &RunFacts,
    event: NotifyEvent,
    end: Option<&RunEnd>,
    at: Timestamp,
) -> String {
    let who = format!("{}/{} run {}", facts.namespace, job.id, facts.run_id);
    let detail = end
        .and_then(|e| e.reason.as_deref())
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    match (event, end) {
        (NotifyEvent::DurationExceeded, _) | (_, None) => {
            let running = facts
                .started_at
                .map(|s| {
                    Duration::from_millis(
                        at.as_millisecond()
                            .saturating_sub(s.as_millisecond())
                            .max(0)
                            .unsigned_abs(),
                    )
                })
                .unwrap_or_default();
            format!(
                ":hourglass: {who} is still running after {}s",
                running.as_secs()
            )
        }
        (NotifyEvent::Recovery, Some(e)) => format!(
            ":white_check_mark: {who} recovered: succeeded after a {} run",
            e.previous.map_or("failed", RunStatus::as_str)
        ),
        (_, Some(e)) => match e.status {
            RunStatus::Succeeded => format!(":white_check_mark: {who} succeeded"),
            RunStatus::TimedOut => format!(":x: {who} timed out{detail}"),
            RunStatus::Cancelled => format!(":no_entry_sign: {who} was cancelled{detail}"),
            RunStatus::AwaitingApproval => {
                format!(":raised_hand: {who} is awaiting approval{detail}")
            }
            other => format!(":x: {who} {}{detail}", other.as_str()),
        },
    }
}

/// Gives the deliverer the secret values a notification's templates use:
/// `(namespace, names) → values`, or why they are not available.
pub type SecretSource = Arc<
    dyn Fn(
            String,
            Vec<String>,
        )
            -> Pin<Box<dyn Future<Output = Result<BTreeMap<String, String>, String>> + Send>>
        + Send
        + Sync,
>;

/// What one pass of a deliverer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Delivered.
    pub sent: u32,
    /// Failed and due again later.
    pub retrying: u32,
    /// Failed for the last time.
    pub failed: u32,
}

impl DeliveryReport {
    fn add(&mut self, other: DeliveryReport) {
        self.sent += other.sent;
        self.retrying += other.retrying;
        self.failed += other.failed;
    }
}

/// Sends due notifications from the outbox and records each outcome.
#[derive(Clone)]
pub struct Deliverer {
    secrets: SecretSource,
    backoff: Vec<Duration>,
    max_attempts: u32,
}

impl Deliverer {
    /// A deliverer with the standard retry schedule ([`BACKOFF`], [`MAX_ATTEMPTS`]).
    pub fn new(secrets: SecretSource) -> Deliverer {
        Deliverer {
            secrets,
            backoff: BACKOFF.to_vec(),
            max_attempts: MAX_ATTEMPTS,
        }
    }

    /// The same with another retry schedule (`backoff` must not be empty to retry).
    pub fn with_retries(mut self, backoff: Vec<Duration>, max_attempts: u32) -> Deliverer {
        self.backoff = backoff;
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// One pass: claims the due pending notifications (of `run_id` only, when given) and
    /// tries each once.
    pub async fn deliver_due(
        &self,
        store: &Store,
        run_id: Option<&str>,
    ) -> Result<DeliveryReport, StoreError> {
        let mut report = DeliveryReport::default();
        loop {
            let claimed = store
                .claim_due_notifications(Timestamp::now(), LEASE, CLAIM_LIMIT, run_id)
                .await?;
            if claimed.is_empty() {
                return Ok(report);
            }
            for row in claimed {
                report.add(self.deliver_one(store, &row).await?);
            }
        }
    }

    /// Delivers the notifications of `run_id`, retrying as scheduled, until none is pending
    /// or `budget` is spent (a request still in flight then is abandoned); returns what it
    /// did and how many are still pending.
    pub async fn deliver_run(
        &self,
        store: &Store,
        run_id: &str,
        budget: Duration,
    ) -> Result<(DeliveryReport, u64), StoreError> {
        let deadline = tokio::time::Instant::now() + budget;
        let mut report = DeliveryReport::default();
        loop {
            // The budget is a bound: a pass still waiting for an endpoint at the deadline
            // is dropped. Its row stays claimed for the lease, then any deliverer retries it.
            let pass = tokio::time::timeout_at(deadline, self.deliver_due(store, Some(run_id)));
            if let Ok(done) = pass.await {
                report.add(done?);
            }
            let pending = store.count_pending_notifications(Some(run_id)).await?;
            if pending == 0 || tokio::time::Instant::now() >= deadline {
                return Ok((report, pending));
            }
            let pause = Duration::from_millis(200);
            tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + pause)).await;
        }
    }

    async fn deliver_one(
        &self,
        store: &Store,
        row: &NotificationRecord,
    ) -> Result<DeliveryReport, StoreError> {
        let q = &row.queued;
        let secrets = if q.secret_names.is_empty() {
            Ok(BTreeMap::new())
        } else {
            (self.secrets)(q.namespace.clone(), q.secret_names.clone()).await
        };
        let redactor = match &secrets {
            Ok(values) => {
                audit_secret_uses(store, q).await?;
                Redactor::new(values.values().cloned())
            }
            Err(_) => Redactor::none(),
        };
        let result = match secrets {
            Ok(values) => send(q, values).await,
            Err(why) => Err(format!(
                "the secrets of the notification are not available: {why}"
            )),
        };
        let attempt = row.attempts.saturating_add(1);
        let now = Timestamp::now();
        let mut report = DeliveryReport::default();
        let outcome = match result {
            Ok(()) => {
                report.sent = 1;
                DeliveryOutcome::Sent
            }
            Err(error) => {
                let error = redactor.redact(&error).into_owned();
                tracing::warn!(notification = %q.id, run = %q.run_id, attempt, %error,
                    "notification not delivered");
                if attempt >= self.max_attempts || self.backoff.is_empty() {
                    report.failed = 1;
                    DeliveryOutcome::GaveUp { error }
                } else {
                    report.retrying = 1;
                    let index = usize::try_from(attempt - 1).unwrap_or(usize::MAX);
                    let delay = self
                        .backoff
                        .get(index)
                        .or(self.backoff.last())
                        .copied()
                        .unwrap_or_default();
                    DeliveryOutcome::Retry {
                        error,
                        next_attempt_at: now
                            .checked_add(jiff::SignedDuration::try_from(delay).unwrap_or_default())
                            .unwrap_or(now),
                    }
                }
            }
        };
        store.record_delivery(&q.id, now, &outcome).await?;
        Ok(report)
    }
}

/// Every secret use is audited: the secrets an attempt renders into its target, once per
/// attempt, as for a run (`secret.use`, actor `engine`), with the notification as source.
async fn audit_secret_uses(store: &Store, q: &NewNotification) -> Result<(), StoreError> {
    for name in &q.secret_names {
        store
            .append_audit(&rota_store::NewAuditEntry {
                at: Timestamp::now(),
                actor: "engine".to_owned(),
                action: "secret.use".to_owned(),
                target: format!("{}/{name}", q.namespace),
                source: Some(format!("notification/{}", q.id)),
                result: "ok".to_owned(),
            })
            .await?;
    }
    Ok(())
}

/// Renders the target and sends one notification; the error text may hold secrets and is
/// redacted by the caller.
async fn send(q: &NewNotification, secrets: BTreeMap<String, String>) -> Result<(), String> {
    let ctx = render_context(&q.render_context, secrets);
    let url = template::render(&q.url_template, &ctx)
        .map_err(|e| format!("cannot render the URL: {e}"))?;
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| format!("invalid URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("unsupported URL scheme `{}`", parsed.scheme()));
    }
    // The step client without redirects (a 3xx is not a delivery), with a bounded request.
    let mut request = http_step::client(false, false)?
        .post(parsed)
        .timeout(REQUEST_TIMEOUT)
        .header("content-type", "application/json")
        .header("idempotency-key", &q.id)
        .header("x-rota-notification-id", &q.id)
        .header("x-rota-event", &q.event)
        .body(q.payload.clone());
    for (name, value) in &q.headers_template {
        let value = template::render(value, &ctx)
            .map_err(|e| format!("cannot render header {name}: {e}"))?;
        request = request.header(name.as_str(), value);
    }
    let response = request.send().await.map_err(|e| {
        let e = e.without_url();
        if e.is_timeout() {
            format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())
        } else {
            format!("request failed: {}", http_step::root_cause(&e))
        }
    })?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the endpoint answered {}", status.as_u16()))
    }
}

fn render_context(stored: &serde_json::Value, secrets: BTreeMap<String, String>) -> Context {
    let params: BTreeMap<String, Value> = stored
        .get("params")
        .and_then(|p| p.as_object())
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let run = stored.get("run").cloned().unwrap_or_default();
    let text = |key: &str| {
        run.get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    Context {
        params,
        steps: BTreeMap::new(),
        run: RunContext {
            id: text("id"),
            job: text("job"),
            namespace: text("namespace"),
            scheduled_at: text("scheduled_at"),
            dry_run: run
                .get("dry_run")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        },
        secrets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(status: RunStatus, previous: Option<RunStatus>) -> RunEnd {
        RunEnd {
            status,
            reason: None,
            finished_at: Timestamp::UNIX_EPOCH,
            failed_steps: Vec::new(),
            previous,
        }
    }

    #[test]
    fn run_ends_map_to_the_events_a_rule_lists() {
        use NotifyEvent::*;
        let both = [Success, Recovery];
        assert_eq!(
            end_event(&both, &end(RunStatus::Succeeded, None)),
            Some(Success)
        );
        assert_eq!(
            end_event(&both, &end(RunStatus::Succeeded, Some(RunStatus::Failed))),
            Some(Recovery)
        );
        assert_eq!(
            end_event(
                &[Recovery],
                &end(RunStatus::Succeeded, Some(RunStatus::Succeeded))
            ),
            None
        );
        assert_eq!(
            end_event(&[Failure], &end(RunStatus::TimedOut, None)),
            Some(Failure)
        );
        assert_eq!(
            end_event(&[Failure], &end(RunStatus::Cancelled, None)),
            None
        );
        assert_eq!(
            end_event(&[Cancelled], &end(RunStatus::Cancelled, None)),
            Some(Cancelled)
        );
        assert_eq!(
            end_event(&[Failure], &end(RunStatus::Succeeded, None)),
            None
        );
    }
}
