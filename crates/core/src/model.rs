//! The job model: what a job file means once parsed and validated.
//!
//! Every type here is plain data. Parsing (`parse`) builds it from a file and reports
//! problems with positions; the engine only ever sees a validated [`Job`].
//! Durations are [`std::time::Duration`]; parameter values are JSON values, so YAML,
//! TOML and JSON job files and `-p key=value` all meet in one representation.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::resources::Resources;

/// A parameter, step-output or default value.
pub type Value = serde_json::Value;

/// One job definition, as found in a job file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// `[a-z0-9-]`, 3–64 characters, unique within its namespace.
    pub id: String,
    /// Namespace the job lives in; `None` when the file does not say (ad-hoc runs then use
    /// the ephemeral digest namespace, a server uses `default`).
    pub namespace: Option<String>,
    /// Free text shown in listings.
    pub description: Option<String>,
    /// Declared parameters, in file order.
    pub params: Vec<ParamSpec>,
    /// Names of environment variables whose values are secrets: passed to steps, redacted
    /// from every log line.
    pub secrets: Vec<String>,
    /// Environment variables (templates) given to every step; a step's `env` overrides.
    pub env: BTreeMap<String, String>,
    /// What starts runs of this job besides a manual start.
    pub triggers: Vec<Trigger>,
    /// Run-level policies.
    pub policy: Policy,
    /// Maximum number of steps of one run that execute at the same time.
    pub concurrency: u32,
    /// The steps, in file order. Validation guarantees unique ids, known `needs` and no cycle.
    pub steps: Vec<Step>,
    /// Notification rules, in file order (`notify:`). Left out of the stored definition
    /// when empty, so a job without rules keeps the definition (and revision hash) it had
    /// before notifications existed, and such stored definitions still load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<Notification>,
    /// Approval rules (`approval:`): manual runs of such a job go through plan → approve →
    /// apply. Left out of the stored definition when absent, so older definitions (and
    /// their revision hashes) stay as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// A `.env` file (`env_file:`) whose variables every step gets as secrets: in its
    /// environment and redacted everywhere. Relative to the job file's directory; read
    /// when a run is prepared. Left out of the stored definition when absent, so older
    /// definitions (and their revision hashes) stay as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_file: Option<String>,
    /// The report kept as an artifact of each run when it ends (`report:`). Left out of
    /// the stored definition when `none`, so older definitions (and their revision
    /// hashes) stay as they were.
    #[serde(default, skip_serializing_if = "KeptReport::is_none")]
    pub report: KeptReport,
}

/// A job's `report:`: whether each run keeps its report as an artifact when it ends, and
/// in which format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeptReport {
    /// No report is kept (the default): `rota report` still writes one on demand.
    #[default]
    None,
    /// A self-contained HTML page, `report.html`.
    Html,
    /// Markdown, `report.md`.
    Md,
}

impl KeptReport {
    /// Whether no report is kept.
    pub fn is_none(&self) -> bool {
        *self == KeptReport::None
    }
}

/// A job's `approval:` rules: who may approve a plan of it, how many must, and for how long
/// a plan stays open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Who may approve: API token names, or `role:<role>` for anyone holding at least that
    /// role in the job's namespace. Never empty.
    pub approvers: Vec<String>,
    /// How many distinct approvers a plan needs; at least 1.
    pub quorum: u32,
    /// Whether the plan's creator may approve it.
    pub allow_self: bool,
    /// How long a plan stays open for approval and apply; `None` means no expiry.
    #[serde(default)]
    pub expires: Option<Duration>,
}

/// One `notify:` rule: which run events it reacts to and where it sends them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The events that fire this rule; never empty, no duplicates, in file order.
    pub on: Vec<NotifyEvent>,
    /// For `duration_exceeded`: how long a run may run before the rule fires.
    pub after: Option<Duration>,
    /// Where the notification goes.
    pub channel: NotifyChannel,
}

/// A run event a notification rule can react to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// The run succeeded.
    Success,
    /// The run failed or timed out.
    Failure,
    /// The run was cancelled.
    Cancelled,
    /// The run succeeded and the previous finished run of the same job did not.
    Recovery,
    /// The run is still running `after` its start (fires once per run).
    DurationExceeded,
    /// The run reached an `approval:` gate and waits for its approvers.
    AwaitingApproval,
}

impl NotifyEvent {
    /// The job-file and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Success => "success",
            NotifyEvent::Failure => "failure",
            NotifyEvent::Cancelled => "cancelled",
            NotifyEvent::Recovery => "recovery",
            NotifyEvent::DurationExceeded => "duration_exceeded",
            NotifyEvent::AwaitingApproval => "awaiting_approval",
        }
    }

    /// Every event, in documentation order.
    pub const ALL: [NotifyEvent; 6] = [
        NotifyEvent::Success,
        NotifyEvent::Failure,
        NotifyEvent::Cancelled,
        NotifyEvent::Recovery,
        NotifyEvent::DurationExceeded,
        NotifyEvent::AwaitingApproval,
    ];

    /// Parses the job-file spelling.
    pub fn parse(text: &str) -> Option<NotifyEvent> {
        NotifyEvent::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

/// Where a notification is sent. URLs and header values are templates over `params`,
/// `secrets` and `run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyChannel {
    /// A JSON `POST` describing the run to any URL.
    Webhook {
        /// `http://` or `https://` URL (template).
        url: String,
        /// Extra request headers; values are templates. Never logged.
        headers: BTreeMap<String, String>,
    },
    /// A Slack incoming webhook: a `POST` of `{"text": …}` with a one-line summary.
    Slack {
        /// The incoming-webhook URL (template), usually `{{ secrets.… }}`.
        webhook: String,
    },
}

impl NotifyChannel {
    /// `webhook` or `slack`.
    pub fn kind(&self) -> &'static str {
        match self {
            NotifyChannel::Webhook { .. } => "webhook",
            NotifyChannel::Slack { .. } => "slack",
        }
    }
}

/// A declared parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// Parameter name, usable as `{{ params.<name> }}`.
    pub name: String,
    /// Declared type; `-p name=value` is coerced to it.
    pub ty: ParamType,
    /// Default value, already of the declared type. A parameter without a default is required.
    pub default: Option<Value>,
    /// Allowed values, when restricted (`enum: [...]`).
    pub choices: Option<Vec<Value>>,
    /// One-line help shown by `rota run --help-params` and the UI.
    pub help: Option<String>,
}

/// The type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// Any string.
    String,
    /// A 64-bit signed integer.
    Int,
    /// A 64-bit float.
    Float,
    /// `true`/`false` (also `yes/no`, `1/0`, `on/off` on the command line).
    Bool,
    /// A list of values (`a,b,c` or a JSON array on the command line).
    List,
    /// A map of values (a JSON object on the command line).
    Map,
    /// One of `choices`, each a string.
    Enum,
}

/// What starts a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A cron expression (5, 6 or 7 fields) evaluated in an IANA time zone.
    Cron {
        /// The expression as written.
        expr: String,
        /// IANA zone name; `UTC` when not given.
        timezone: String,
        /// Random delay added to each firing, up to this bound.
        jitter: Option<Duration>,
    },
    /// A fixed interval.
    Interval {
        /// Period between firings.
        every: Duration,
        /// Whether the period counts from the previous start (fixed rate) or end (fixed delay).
        anchor: IntervalAnchor,
        /// Random delay added to each firing, up to this bound.
        jitter: Option<Duration>,
    },
    /// One firing at a fixed instant (RFC 3339 text, validated at load time).
    At {
        /// The instant, RFC 3339.
        time: String,
    },
    /// Fires when another job's run finishes.
    After {
        /// The other job's id (same namespace).
        job: String,
        /// Which outcomes of that run fire this trigger.
        on: AfterOutcome,
    },
    /// `POST /hooks/<namespace>/<job>` on the server, verified by a shared secret.
    Webhook {
        /// Name of the secret holding the shared key.
        secret: String,
        /// How the request proves it knows the secret.
        signature: WebhookSignature,
    },
}

/// Interval anchoring, like `watch -p` (start) versus plain `watch` (end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalAnchor {
    /// Fixed rate: the next run is due `every` after the previous one was due.
    Start,
    /// Fixed delay: the next run is due `every` after the previous one finished.
    End,
}

/// Outcomes of another job that fire an `after` trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterOutcome {
    /// Only a succeeded run.
    Success,
    /// Only a failed or timed-out run.
    Failure,
    /// Any finished run.
    Any,
}

/// Webhook verification scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookSignature {
    /// `X-Hub-Signature-256: sha256=<hex HMAC of the body>`.
    Github,
    /// `Authorization: Bearer <secret>`.
    Bearer,
}

/// Run-level policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// What a new occurrence does while a run of the same job is active.
    pub overlap: Overlap,
    /// What happens to occurrences missed while the server was down.
    pub catchup: Catchup,
    /// Deadline for the whole run.
    pub timeout: Option<Duration>,
    /// Maximum number of active runs of this job (server only): 1 by default, or
    /// [`ALLOW_DEFAULT_MAX_ACTIVE_RUNS`] with `overlap: allow`.
    pub max_active_runs: u32,
}

/// The cap on active runs of a job whose overlap policy is `allow` and that sets no
/// `max_active_runs` of its own (Airflow's default is the same).
pub const ALLOW_DEFAULT_MAX_ACTIVE_RUNS: u32 = 16;

impl Default for Policy {
    fn default() -> Self {
        Policy {
            overlap: Overlap::Skip,
            catchup: Catchup::default(),
            timeout: None,
            max_active_runs: 1,
        }
    }
}

/// Overlap policy, after Temporal schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Record the new occurrence as skipped.
    Skip,
    /// Keep at most one waiting occurrence; later ones are skipped.
    BufferOne,
    /// Queue every occurrence.
    BufferAll,
    /// Cancel the active run, then start the new one.
    CancelRunning,
    /// Start the new run alongside.
    Allow,
}

/// Catch-up of occurrences missed during downtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catchup {
    /// Only occurrences at most this old are candidates.
    pub window: Duration,
    /// Which of the candidates run.
    pub mode: CatchupMode,
}

impl Default for Catchup {
    fn default() -> Self {
        Catchup {
            window: Duration::from_secs(3600),
            mode: CatchupMode::Last,
        }
    }
}

/// Which missed occurrences run on catch-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchupMode {
    /// Every missed occurrence inside the window, oldest first.
    All,
    /// Only the most recent one; the others are recorded as missed.
    Last,
    /// None; all are recorded as missed.
    None,
}

/// One step of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Unique within the job, `[a-z0-9_-]`.
    pub id: String,
    /// What the step runs.
    pub kind: StepKind,
    /// Steps that must finish before this one starts.
    pub needs: Vec<String>,
    /// Which outcome of the `needs` lets this step run.
    pub when: When,
    /// Jinja expression over `params`, `steps` and `run`; false → the step is skipped.
    pub if_expr: Option<String>,
    /// Extra environment (templates).
    pub env: BTreeMap<String, String>,
    /// Working directory (template); relative paths are against the job file's directory.
    pub workdir: Option<String>,
    /// Deadline for one attempt.
    pub timeout: Option<Duration>,
    /// Retries of failed attempts.
    pub retry: Retry,
    /// Behaviour under `--dry-run`.
    pub dry_run: DryRun,
    /// Labels a worker must carry (each with this value) to run the step (`runs_on:`);
    /// empty: the server runs it itself. Left out of the stored form when empty, so
    /// definitions and plan hashes made before the key existed do not change.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub runs_on: BTreeMap<String, String>,
    /// Limits on what one attempt's processes may use (`resources:`); left out of the
    /// stored form when empty, like `runs_on`.
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    /// What a person confirms before the step's first attempt (`confirm:`, a template):
    /// asked at an interactive terminal, else the step waits as an approval gate, unless
    /// the run was started with `--yes`. Left out of the stored form when absent, like
    /// every key below, so definitions and plan hashes made before it do not change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<String>,
    /// The step that undoes this one (`rollback:`): when a later step fails, the rollbacks
    /// of the steps that succeeded run, the last one first. A rollback step runs only so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<String>,
    /// Runs at the end of the run whatever happened (`finally: true`), after every other
    /// step and every rollback; it has no `needs`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub finally: bool,
    /// What happens once the step's attempts are spent and it failed (`on_failure:`).
    #[serde(default, skip_serializing_if = "OnFailure::is_fail")]
    pub on_failure: OnFailure,
}

/// A step's `on_failure:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// The step fails (the default).
    #[default]
    Fail,
    /// An operator chooses: retry it, skip it (its dependents run), or abort (it fails).
    Ask,
}

impl OnFailure {
    fn is_fail(&self) -> bool {
        *self == OnFailure::Fail
    }
}

impl Step {
    /// Whether the step runs in the run's main pass: neither `finally` nor a rollback.
    pub fn is_main(&self, job: &Job) -> bool {
        !self.finally && rollback_owner(job, &self.id).is_none()
    }
}

/// The step whose `rollback:` names step `id`, if one does (at most one may).
pub fn rollback_owner<'a>(job: &'a Job, id: &str) -> Option<&'a Step> {
    job.steps.iter().find(|s| s.rollback.as_deref() == Some(id))
}

/// Whether `name` can name a worker label (`runs_on:`, `rota worker --label`): 1–63
/// letters, digits, `_`, `-` and `.`.
pub fn is_label(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The work a step does: a step kind's name (`sh`, `http`…, see [`crate::kinds`]) and its
/// configuration, which that kind's module decodes into its own struct. Every string in it
/// is a template. Stored as `{"<name>": <configuration>}`.
#[derive(Debug, Clone, PartialEq)]
pub struct StepKind {
    name: String,
    config: Value,
}

impl StepKind {
    /// A step of kind `name` configured by `config` (as the kind's module encodes it).
    pub fn new(name: impl Into<String>, config: Value) -> StepKind {
        StepKind {
            name: name.into(),
            config,
        }
    }

    /// The kind's name: its key in a step.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kind's configuration, as JSON.
    pub fn config(&self) -> &Value {
        &self.config
    }

    /// The configuration as the kind's own struct.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        T::deserialize(&self.config)
            .map_err(|e| format!("invalid `{}` step configuration: {e}", self.name))
    }

    /// One line saying what the step does (see [`crate::kinds::describe`]).
    pub fn describe(&self) -> String {
        crate::kinds::describe(&self.name, &self.config)
    }
}

impl Serialize for StepKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(&self.name, &self.config)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for StepKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // `{"<kind>": <config>}`, as serialized above; the kind must exist and its
        // configuration decode, as they had to when each kind was a variant of an enum.
        let map = serde_json::Map::<String, Value>::deserialize(deserializer)?;
        let mut entries = map.into_iter();
        let (Some((name, config)), None) = (entries.next(), entries.next()) else {
            return Err(D::Error::custom(
                "expected a step kind: one key naming the kind",
            ));
        };
        let Some(kind) = crate::kinds::find(&name) else {
            let known: Vec<&str> = crate::kinds::names().collect();
            return Err(D::Error::custom(format!(
                "unknown step kind `{name}` (expected one of: {})",
                known.join(", ")
            )));
        };
        let config = kind.normalize(config).map_err(D::Error::custom)?;
        Ok(StepKind { name, config })
    }
}

/// Which outcome of a step's `needs` lets it run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Every need succeeded (or was skipped by its own `if`).
    #[default]
    Success,
    /// At least one need failed (or timed out).
    Failure,
    /// Regardless of outcome (not after a cancel).
    Always,
}

/// Retry policy of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retry {
    /// Total attempts, at least 1.
    pub attempts: u32,
    /// How the delay grows.
    pub backoff: Backoff,
    /// Delay before the second attempt.
    pub initial: Duration,
    /// Upper bound of the delay.
    pub max: Option<Duration>,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 1,
            backoff: Backoff::Constant,
            initial: Duration::from_secs(1),
            max: None,
        }
    }
}

impl Retry {
    /// Delay before attempt `next_attempt` (2 for the first retry).
    pub fn delay_before(&self, next_attempt: u32) -> Duration {
        let retries_so_far = next_attempt.saturating_sub(2);
        let delay = match self.backoff {
            Backoff::Constant => self.initial,
            Backoff::Exponential => self
                .initial
                .saturating_mul(2u32.saturating_pow(retries_so_far.min(31))),
        };
        match self.max {
            Some(max) => delay.min(max),
            None => delay,
        }
    }
}

/// Backoff shape between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// The same delay every time.
    Constant,
    /// Doubling delays.
    Exponential,
}

/// What a step does in a dry run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DryRun {
    /// Print the resolved command; run nothing (the default).
    #[default]
    EchoOnly,
    /// The step is safe: run it for real, also in a dry run.
    Run,
    /// Run this other shell command instead (e.g. `terraform plan`).
    Command(String),
    /// Do nothing and record the step as skipped.
    Skip,
}

/// Run states (SPEC §1), plus `abandoned` for a run whose process died.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Resolved, not yet executed.
    Planned,
    /// Waiting for approvals.
    AwaitingApproval,
    /// Accepted, waiting for a worker.
    Queued,
    /// Executing.
    Running,
    /// Every step succeeded or was skipped.
    Succeeded,
    /// A step failed.
    Failed,
    /// Cancelled by a user.
    Cancelled,
    /// The run's deadline passed.
    TimedOut,
    /// The process running it died; recorded at the next start.
    Abandoned,
}

impl RunStatus {
    /// The wire and database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Planned => "planned",
            RunStatus::AwaitingApproval => "awaiting_approval",
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Abandoned => "abandoned",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(text: &str) -> Option<RunStatus> {
        ALL_RUN_STATUSES.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the run can change no more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded
                | RunStatus::Failed
                | RunStatus::Cancelled
                | RunStatus::TimedOut
                | RunStatus::Abandoned
        )
    }
}

/// Every run status.
pub const ALL_RUN_STATUSES: [RunStatus; 9] = [
    RunStatus::Planned,
    RunStatus::AwaitingApproval,
    RunStatus::Queued,
    RunStatus::Running,
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::Cancelled,
    RunStatus::TimedOut,
    RunStatus::Abandoned,
];

/// Step-run states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not started yet.
    Pending,
    /// Executing (some attempt).
    Running,
    /// Exited 0.
    Succeeded,
    /// Failed after its last attempt.
    Failed,
    /// Not run: its `if`/`when` said no, or the run ended first.
    Skipped,
    /// Stopped by a cancel.
    Cancelled,
    /// Stopped by its own or the run's deadline.
    TimedOut,
    /// Its process died with the process running the run.
    Abandoned,
    /// An `approval:` gate waiting for its approvers; the run waits with it.
    AwaitingApproval,
}

impl StepStatus {
    /// The wire and database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
            StepStatus::TimedOut => "timed_out",
            StepStatus::Abandoned => "abandoned",
            StepStatus::AwaitingApproval => "awaiting_approval",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(text: &str) -> Option<StepStatus> {
        ALL_STEP_STATUSES.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the step can change no more.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            StepStatus::Pending | StepStatus::Running | StepStatus::AwaitingApproval
        )
    }
}

/// Every step status.
pub const ALL_STEP_STATUSES: [StepStatus; 9] = [
    StepStatus::Pending,
    StepStatus::Running,
    StepStatus::Succeeded,
    StepStatus::Failed,
    StepStatus::Skipped,
    StepStatus::Cancelled,
    StepStatus::TimedOut,
    StepStatus::Abandoned,
    StepStatus::AwaitingApproval,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_spelling() {
        for s in ALL_RUN_STATUSES {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
        }
        for s in ALL_STEP_STATUSES {
            assert_eq!(StepStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(RunStatus::parse("bogus"), None);
    }

    #[test]
    fn exponential_backoff_doubles_up_to_max() {
        let retry = Retry {
            attempts: 5,
            backoff: Backoff::Exponential,
            initial: Duration::from_secs(2),
            max: Some(Duration::from_secs(5)),
        };
        assert_eq!(retry.delay_before(2), Duration::from_secs(2));
        assert_eq!(retry.delay_before(3), Duration::from_secs(4));
        assert_eq!(retry.delay_before(4), Duration::from_secs(5));
    }
}
