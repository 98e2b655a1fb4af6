//! The fleet's records: what a worker (`rota worker`) and a server say to each other about
//! step attempts, and the cluster's status (`rota status`, `/api/v1/cluster`).

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use rota_core::resources::Resources;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most lines one call may send.
pub const MAX_LINES_PER_CALL: usize = 1000;

/// Longest time a claim waits for an attempt, in milliseconds.
pub const MAX_CLAIM_WAIT_MS: u64 = 30_000;

/// Reads a JSON integer the way JSON Schema counts integers: `3` and `3.0` alike (clients
/// that hold every number as a float send the latter).
fn whole<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Signed(i64),
        Unsigned(u64),
        Float(f64),
    }
    let out_of_range = || D::Error::custom("integer out of range");
    match Number::deserialize(deserializer)? {
        Number::Signed(n) => T::try_from(n).map_err(|_| out_of_range()),
        Number::Unsigned(n) => T::try_from(n).map_err(|_| out_of_range()),
        Number::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            T::try_from(f as i64).map_err(|_| out_of_range())
        }
        Number::Float(f) => Err(D::Error::custom(format!("{f} is not an integer"))),
    }
}

/// [`whole`] for an optional integer (`null` or absent: `None`).
fn whole_or_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    #[derive(Deserialize)]
    struct Whole<T: TryFrom<i64> + TryFrom<u64>>(#[serde(deserialize_with = "whole")] T);
    Ok(Option::<Whole<T>>::deserialize(deserializer)?.map(|Whole(n)| n))
}

/// A worker, as it introduces itself with each call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkerHello {
    /// Its id, unique per `rota worker` process (it makes one at start).
    #[schema(pattern = "^[A-Za-z0-9._-]{1,100}$", min_length = 1, max_length = 100)]
    pub id: String,
    /// A human name: its host, or `--name`.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Its labels (`--label KEY=VALUE`), which `runs_on:` selects by.
    #[serde(default)]
    #[schema(schema_with = super::schema::worker_labels_schema)]
    pub labels: BTreeMap<String, String>,
    /// How many attempts it runs at once.
    #[schema(minimum = 1, maximum = 1024)]
    #[serde(deserialize_with = "whole")]
    pub slots: u32,
    /// How many it runs now (counted as at most `slots`).
    #[serde(default, deserialize_with = "whole")]
    pub busy: u32,
}

/// `POST /api/v1/workers/claim`: a worker asks for one attempt, waiting up to `wait_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClaimAttempt {
    /// Who asks.
    pub worker: WorkerHello,
    /// How long to wait for an attempt before answering that there is none
    /// (milliseconds, at most 30000).
    #[serde(default, deserialize_with = "whole")]
    #[schema(maximum = 30000)]
    pub wait_ms: u64,
}

/// An attempt a worker claimed: what to run, under which lease.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClaimedAttempt {
    /// The run.
    pub run_id: String,
    /// The run's namespace.
    pub namespace: String,
    /// The run's job.
    pub job: String,
    /// The step.
    pub step_id: String,
    /// The attempt, from 1.
    pub attempt: u32,
    /// The lease's fencing epoch: every later call about this attempt carries it.
    pub epoch: i64,
    /// How long the lease lasts without a heartbeat (milliseconds).
    pub lease_ms: u64,
    /// The program to run.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its environment in order (a later entry of a name wins), secret values included
    /// (exactly those the step references).
    pub env: Vec<EnvVar>,
    /// The attempt's time limit (milliseconds).
    pub timeout_ms: Option<u64>,
    /// Between SIGTERM and SIGKILL when it is stopped (milliseconds).
    pub grace_ms: u64,
    /// Bytes of log kept.
    pub log_cap_bytes: u64,
    /// The command as shown.
    pub display: String,
    /// Values to redact from every line and output sent back.
    pub redact: Vec<String>,
    /// Limits on what its processes may use (the step's `resources:`).
    #[serde(default)]
    pub resources: AttemptResources,
}

/// Limits on what an attempt's processes may use; an absent one is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AttemptResources {
    /// CPU time, in CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Processes and threads alive at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
}

impl From<Resources> for AttemptResources {
    fn from(r: Resources) -> AttemptResources {
        AttemptResources {
            cpus: r.cpus,
            memory_bytes: r.memory,
            pids: r.pids,
        }
    }
}

impl From<AttemptResources> for Resources {
    fn from(r: AttemptResources) -> Resources {
        Resources {
            cpus: r.cpus,
            memory: r.memory_bytes,
            pids: r.pids,
        }
    }
}

/// One environment variable of an attempt.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EnvVar {
    /// Its name.
    pub name: String,
    /// Its value (may be a secret).
    pub value: String,
}

// The environment and the values to redact hold secrets.
impl fmt::Debug for ClaimedAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env_names: Vec<&str> = self.env.iter().map(|var| var.name.as_str()).collect();
        f.debug_struct("ClaimedAttempt")
            .field("run_id", &self.run_id)
            .field("step_id", &self.step_id)
            .field("attempt", &self.attempt)
            .field("epoch", &self.epoch)
            .field("program", &self.program)
            .field("env", &env_names)
            .field("redact", &format_args!("[{} values]", self.redact.len()))
            .finish_non_exhaustive()
    }
}

/// The answer to a claim: an attempt, or none within the wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Claim {
    /// The attempt claimed, if any.
    pub attempt: Option<ClaimedAttempt>,
}

/// A worker's call about an attempt it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaseCall {
    /// Who calls.
    pub worker: WorkerHello,
    /// The epoch of its claim.
    #[serde(deserialize_with = "whole")]
    pub epoch: i64,
}

/// What a heartbeat learns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaseRenewed {
    /// The server wants the attempt stopped.
    pub cancel: bool,
    /// The lease now lasts this long without another heartbeat (milliseconds).
    pub lease_ms: u64,
}

/// One line of an attempt's output, as a worker sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkerLogLine {
    /// When the worker read it.
    #[schema(value_type = String, format = DateTime)]
    pub ts: Timestamp,
    /// `stdout`, `stderr` or `system`.
    #[schema(schema_with = super::schema::log_stream_schema)]
    pub stream: String,
    /// The line, redacted (at most 65536 characters).
    #[schema(max_length = 65536)]
    pub text: String,
}

/// `POST …/attempts/{run}/{step}/{attempt}/logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AttemptLogs {
    /// Who sends, under which lease.
    #[serde(flatten)]
    pub lease: LeaseCall,
    /// The lines, oldest first (at most 1000).
    #[schema(max_items = 1000)]
    pub lines: Vec<WorkerLogLine>,
}

/// `POST …/attempts/{run}/{step}/{attempt}/finish`: how the attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AttemptFinish {
    /// Who reports, under which lease.
    #[serde(flatten)]
    pub lease: LeaseCall,
    /// `succeeded`, `failed`, `timed_out`, `cancelled`, or `abandoned` (handed back).
    #[schema(schema_with = super::schema::attempt_end_schema)]
    pub status: String,
    /// The process's exit code.
    #[serde(default, deserialize_with = "whole_or_null")]
    pub exit_code: Option<i32>,
    /// Why, when not plain success.
    pub reason: Option<String>,
    /// What it published through `$ROTA_OUTPUT`, redacted.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
}

/// A server sharing the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServerStatus {
    /// Its id.
    pub id: String,
    /// Its host.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The address it listens on.
    pub listen: String,
    /// Whether it is the one that schedules.
    pub scheduler: bool,
    /// When it started.
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    /// Its last heartbeat.
    #[schema(value_type = String, format = DateTime)]
    pub last_heartbeat: Timestamp,
}

/// A worker, as last seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkerStatus {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// How many attempts it runs at once.
    pub slots: u32,
    /// How many it ran at its last call.
    pub busy: u32,
    /// How many leases it holds.
    pub leases: u32,
    /// Its last claim or heartbeat.
    #[schema(value_type = String, format = DateTime)]
    pub last_heartbeat: Timestamp,
}

/// `GET /api/v1/cluster`: the servers sharing the store, which one schedules, and the
/// workers seen in the last minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterStatus {
    /// The id of the server that schedules, if one holds the lease.
    pub scheduler: Option<String>,
    /// Servers with a heartbeat in the last minute.
    pub servers: Vec<ServerStatus>,
    /// Workers with a call in the last minute.
    pub workers: Vec<WorkerStatus>,
}

/// Which worker ran an attempt of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AttemptWorker {
    /// The attempt.
    pub attempt: u32,
    /// The worker's name.
    pub worker: String,
}
