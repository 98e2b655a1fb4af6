//! Handing step attempts to workers, and the leases that fence them.
//!
//! A server's engine gives the attempts of steps with `runs_on:` labels to [`Dispatcher`]
//! (`rota_engine::remote::RemoteSteps`): it seals the attempt with the servers' secret key,
//! records it as a pending dispatch and waits for its end. Workers claim dispatches through
//! the API (`service::workers`), renew their lease by heartbeat, send their lines and
//! report the end; every call carries the epoch of its claim and is refused once the
//! dispatch moved on. [`Ops::expire_leases`], run every second by each server, abandons the
//! leases whose worker stopped renewing them; the engine then retries the attempt per the
//! step's retry policy, or fails the step.
//!
//! Waiting is woken by [`Hub`] (a claim waits for new work, the engine for an end): in
//! process, and on PostgreSQL also by the store's wake-ups ([`Hub::follow`]: `LISTEN/NOTIFY`),
//! so a server sees at once what another sharing its database handed over or ended. A poll
//! of the store is the fallback: each second without wake-ups (SQLite), every
//! [`LISTENING_POLL`] with them.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use rota_core::model::StepStatus;
use rota_core::resources::Resources;
use rota_engine::process::ProcessSpec;
use rota_engine::remote::{AttemptEnd, RemoteAttempt, RemoteSteps};
use rota_store::{AttemptKey, DispatchRecord, DispatchState, NewDispatch, SealedSecret, Wake};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::records::{ClaimedAttempt, EnvVar};
use crate::{Ops, OpsError};

/// How long a lease lasts without a heartbeat. With [`REAP_EVERY`] and a worker's
/// heartbeat every [`HEARTBEAT_EVERY`], a worker that dies loses its leases within about
/// six seconds.
pub const LEASE: Duration = Duration::from_secs(5);

/// How often a worker renews each lease it holds.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(1500);

/// How often each server abandons expired leases.
pub const REAP_EVERY: Duration = Duration::from_secs(1);

/// How often a waiter looks at the store when nothing woke it, without the store's
/// wake-ups (changes made through another process sharing the store).
const POLL_EVERY: Duration = Duration::from_secs(1);

/// The same, for a hub following the store's wake-ups: only a safety net, as every change
/// a waiter waits for is told.
pub const LISTENING_POLL: Duration = Duration::from_secs(30);

/// The cancel request's extra wait, beyond the attempt's grace period and a lease, before
/// the server stops waiting for a worker that does not confirm a stop.
const STOP_SLACK: Duration = Duration::from_secs(2);

/// Wakes waiters in this process: claims when work is handed over, the engine when an
/// attempt ends, the daemon when a run is queued. Cheap to clone; a server's API and daemon
/// share one.
#[derive(Debug, Clone, Default)]
pub struct Hub {
    work: Arc<Notify>,
    ends: Arc<Notify>,
    queued: Arc<Notify>,
    /// Whether it follows the store's wake-ups ([`Hub::follow`]).
    following: Arc<AtomicBool>,
}

impl Hub {
    /// Wakes this hub's waiters on what other processes change too, as `store` tells it
    /// (PostgreSQL's `LISTEN/NOTIFY`), until the store closes; meanwhile their fallback
    /// polls grow to [`LISTENING_POLL`]. Nothing on SQLite, where waiters keep polling each second.
    pub fn follow(&self, store: &rota_store::Store) {
        let mut wakes = store.wake_ups();
        if !wakes.is_live() {
            return;
        }
        self.following.store(true, Ordering::Relaxed);
        let hub = self.clone();
        tokio::spawn(async move {
            while let Some(wake) = wakes.recv().await {
                match wake {
                    Wake::Work => hub.work_handed_over(),
                    Wake::Ended => hub.attempt_ended(),
                    Wake::Resync => {
                        hub.work_handed_over();
                        hub.attempt_ended();
                    }
                    Wake::Queued | Wake::Cancel | Wake::Changed => {}
                }
            }
            // The store closed: waiters that are left poll again each second.
            hub.following.store(false, Ordering::Relaxed);
        });
    }

    /// How long a waiter waits for a wake-up before it looks at the store anyway.
    pub(crate) fn poll_every(&self) -> Duration {
        if self.following.load(Ordering::Relaxed) {
            LISTENING_POLL
        } else {
            POLL_EVERY
        }
    }

    pub(crate) fn work_handed_over(&self) {
        self.work.notify_waiters();
    }

    pub(crate) fn attempt_ended(&self) {
        self.ends.notify_waiters();
    }

    pub(crate) fn work(&self) -> &Notify {
        &self.work
    }

    /// A run was queued in this process (through the API): the daemon adopts it at once
    /// rather than at its next poll. A wake-up not waited for is kept for the next wait.
    pub(crate) fn run_queued(&self) {
        self.queued.notify_one();
    }

    /// What the daemon waits on for runs queued in this process ([`Hub::run_queued`]).
    pub fn runs_queued(&self) -> &Notify {
        &self.queued
    }
}

/// What is sealed into a dispatch: the attempt as a worker receives it, but for its key
/// and lease.
#[derive(Serialize, Deserialize)]
struct SealedAttempt {
    job: String,
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    timeout_ms: Option<u64>,
    grace_ms: u64,
    log_cap_bytes: u64,
    display: String,
    redact: Vec<String>,
    #[serde(default)]
    resources: Resources,
}

/// The associated data that binds a sealed attempt to its dispatch row.
fn seal_name(key: &AttemptKey) -> String {
    format!("attempt:{}/{}/{}", key.run_id, key.step_id, key.attempt)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Ops {
    /// Shares `hub` with the other users of this store in this process (a server's API and
    /// daemon).
    pub fn with_hub(mut self, hub: Hub) -> Ops {
        self.hub = hub;
        self
    }

    /// The hub this process's users of the store share.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The engine's hand-over of process attempts to workers, for a server's runs.
    pub fn dispatcher(&self) -> Arc<dyn RemoteSteps> {
        Arc::new(Dispatcher { ops: self.clone() })
    }

    /// Ends the leases whose worker stopped renewing them: unconfirmed claims go back to
    /// the workers, confirmed attempts are abandoned and the runs waiting for them woken.
    /// Returns how many were abandoned.
    pub async fn expire_leases(&self) -> Result<usize, OpsError> {
        let expired = self
            .store()
            .expire_leases(Timestamp::now(), |worker| {
                abandoned_text(&format!(
                    "worker {worker} stopped renewing its lease (no heartbeat for {})",
                    rota_engine::run::humantime(LEASE)
                ))
            })
            .await?;
        if expired.requeued > 0 {
            self.hub.work_handed_over();
        }
        for key in &expired.abandoned {
            tracing::warn!(run = %key.run_id, step = %key.step_id, attempt = key.attempt,
                "a worker's lease expired: the attempt is abandoned");
        }
        if !expired.abandoned.is_empty() {
            self.hub.attempt_ended();
        }
        Ok(expired.abandoned.len())
    }

    /// Seals `attempt` and records it as a pending dispatch.
    async fn hand_over(&self, attempt: &RemoteAttempt) -> Result<AttemptKey, OpsError> {
        let key = AttemptKey {
            run_id: attempt.run_id.clone(),
            step_id: attempt.step_id.clone(),
            attempt: attempt.attempt,
        };
        let spec = &attempt.spec;
        let sealed = SealedAttempt {
            job: attempt.job_id.clone(),
            program: spec.program.clone(),
            args: spec.args.clone(),
            env: spec.env.clone(),
            timeout_ms: spec.timeout.map(millis),
            grace_ms: millis(spec.grace),
            log_cap_bytes: u64::try_from(spec.log_cap_bytes).unwrap_or(u64::MAX),
            display: attempt.display.clone(),
            redact: attempt.secret_values.clone(),
            resources: spec.resources,
        };
        let plain = serde_json::to_vec(&sealed)
            .map_err(|e| OpsError::Internal(format!("cannot encode an attempt: {e}")))?;
        let key_material = self.sealing_key()?;
        let SealedSecret { nonce, ciphertext } = rota_secrets::seal(
            &key_material,
            &attempt.namespace,
            &seal_name(&key),
            0,
            &plain,
        )
        .map_err(crate::secrets::secrets_error)?;
        self.store()
            .insert_dispatch(&NewDispatch {
                key: key.clone(),
                namespace: attempt.namespace.clone(),
                runs_on: attempt.runs_on.clone(),
                nonce,
                payload: ciphertext,
                created_at: Timestamp::now(),
            })
            .await?;
        self.hub.work_handed_over();
        Ok(key)
    }

    /// Opens a claimed dispatch into what the worker receives.
    pub(crate) fn open_claimed(
        &self,
        dispatch: &DispatchRecord,
    ) -> Result<ClaimedAttempt, OpsError> {
        let key_material = self.sealing_key()?;
        let sealed = SealedSecret {
            nonce: dispatch.nonce.clone(),
            ciphertext: dispatch.payload.clone(),
        };
        let plain = rota_secrets::open(
            &key_material,
            &dispatch.namespace,
            &seal_name(&dispatch.key),
            0,
            &sealed,
        )
        .map_err(|_| {
            OpsError::Internal(
                "cannot open a dispatched attempt: the servers do not share one secret key \
                 (set the same ROTA_SECRET_KEY on every server)"
                    .into(),
            )
        })?;
        let attempt: SealedAttempt = serde_json::from_str(plain.expose())
            .map_err(|e| OpsError::Internal(format!("cannot decode a dispatched attempt: {e}")))?;
        Ok(ClaimedAttempt {
            run_id: dispatch.key.run_id.clone(),
            namespace: dispatch.namespace.clone(),
            job: attempt.job,
            step_id: dispatch.key.step_id.clone(),
            attempt: dispatch.key.attempt,
            epoch: dispatch.epoch,
            lease_ms: millis(LEASE),
            program: attempt.program,
            args: attempt.args,
            env: attempt
                .env
                .into_iter()
                .map(|(name, value)| EnvVar { name, value })
                .collect(),
            timeout_ms: attempt.timeout_ms,
            grace_ms: attempt.grace_ms,
            log_cap_bytes: attempt.log_cap_bytes,
            display: attempt.display,
            redact: attempt.redact,
            resources: attempt.resources.into(),
        })
    }

    /// Waits for the end of the dispatch `key`; `stop` withdraws it, or asks its worker to
    /// stop it and waits for the worker's report up to `grace` and a lease more.
    async fn await_end(
        &self,
        key: &AttemptKey,
        grace: Duration,
        stop: &CancellationToken,
    ) -> AttemptEnd {
        let mut stop_asked: Option<tokio::time::Instant> = None;
        loop {
            let ended = self.hub.ends.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            match self.store().dispatch(key).await {
                Ok(Some(dispatch)) => {
                    if let Some(end) = dispatch_end(&dispatch) {
                        // Asked to stop, its worker went silent and its lease expired (or
                        // it handed the attempt back): the attempt was stopped, as when the
                        // worker does not confirm the stop in time, not abandoned to retry.
                        if stop_asked.is_some() && end.status == StepStatus::Abandoned {
                            return stopped(
                                "its worker did not confirm the stop; its lease expired",
                            );
                        }
                        return end;
                    }
                }
                Ok(None) => {
                    return AttemptEnd::failed("its hand-over to workers was lost".into());
                }
                Err(error) => tracing::warn!(%error, "cannot read a dispatched attempt"),
            }
            if stop.is_cancelled() {
                match stop_asked {
                    None => {
                        match self.store().withdraw_dispatch(key, Timestamp::now()).await {
                            Ok(true) => return stopped("stopped before a worker took it"),
                            Ok(false) => {}
                            Err(error) => tracing::warn!(%error, "cannot withdraw an attempt"),
                        }
                        if let Err(error) = self.store().request_dispatch_cancel(key).await {
                            tracing::warn!(%error, "cannot ask a worker to stop an attempt");
                        }
                        stop_asked = Some(tokio::time::Instant::now());
                    }
                    Some(asked) if asked.elapsed() > grace + LEASE + STOP_SLACK => {
                        let reason = "its worker did not confirm the stop; its lease is revoked";
                        let _ = self
                            .store()
                            .abandon_dispatch(key, &abandoned_text(reason), Timestamp::now())
                            .await;
                        return stopped(reason);
                    }
                    Some(_) => {}
                }
            }
            tokio::select! {
                () = &mut ended => {}
                () = tokio::time::sleep(self.hub.poll_every()) => {}
                () = stop.cancelled(), if stop_asked.is_none() => {}
            }
        }
    }
}

/// The end a dispatch reached, if it did.
fn dispatch_end(dispatch: &DispatchRecord) -> Option<AttemptEnd> {
    match dispatch.state {
        DispatchState::Pending | DispatchState::Leased => None,
        DispatchState::Withdrawn => Some(stopped("stopped before a worker took it")),
        DispatchState::Done | DispatchState::Abandoned => {
            let text = dispatch.result.as_deref().unwrap_or("{}");
            Some(serde_json::from_str::<StoredEnd>(text).map_or_else(
                |e| AttemptEnd::failed(format!("its worker's report is unreadable: {e}")),
                StoredEnd::into_end,
            ))
        }
    }
}

fn stopped(reason: &str) -> AttemptEnd {
    AttemptEnd {
        status: StepStatus::Cancelled,
        exit_code: None,
        outputs: BTreeMap::new(),
        reason: Some(reason.to_owned()),
    }
}

/// An attempt's end as a dispatch stores it.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredEnd {
    pub status: String,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
}

impl StoredEnd {
    fn into_end(self) -> AttemptEnd {
        let Some(status) = StepStatus::parse(&self.status) else {
            return AttemptEnd::failed(format!("its worker reported status {:?}", self.status));
        };
        AttemptEnd {
            status,
            exit_code: self.exit_code,
            outputs: self.outputs,
            reason: self.reason,
        }
    }
}

fn abandoned_text(reason: &str) -> String {
    let end = StoredEnd {
        status: StepStatus::Abandoned.as_str().to_owned(),
        exit_code: None,
        reason: Some(reason.to_owned()),
        outputs: BTreeMap::new(),
    };
    serde_json::to_string(&end).unwrap_or_else(|_| "{}".to_owned())
}

/// [`RemoteSteps`] for a server's engine.
struct Dispatcher {
    ops: Ops,
}

impl RemoteSteps for Dispatcher {
    fn run<'a>(
        &'a self,
        attempt: RemoteAttempt,
        stop: &'a CancellationToken,
    ) -> Pin<Box<dyn Future<Output = AttemptEnd> + Send + 'a>> {
        Box::pin(async move {
            let grace = attempt.spec.grace;
            let key = match self.ops.hand_over(&attempt).await {
                Ok(key) => key,
                Err(error) => {
                    return AttemptEnd::failed(format!("cannot hand it to a worker: {error}"));
                }
            };
            self.ops.await_end(&key, grace, stop).await
        })
    }
}

/// The process a worker runs for a claimed attempt, in `dir` (its working directory, where
/// `$ROTA_OUTPUT` is `output`).
pub fn worker_spec(
    claimed: &ClaimedAttempt,
    dir: &std::path::Path,
    output: &std::path::Path,
) -> ProcessSpec {
    let mut env: Vec<(String, String)> = claimed
        .env
        .iter()
        .filter(|var| var.name != "ROTA_OUTPUT")
        .map(|var| (var.name.clone(), var.value.clone()))
        .collect();
    env.push(("ROTA_OUTPUT".to_owned(), output.display().to_string()));
    ProcessSpec {
        program: claimed.program.clone(),
        args: claimed.args.clone(),
        env,
        cwd: Some(dir.to_path_buf()),
        timeout: claimed.timeout_ms.map(Duration::from_millis),
        grace: Duration::from_millis(claimed.grace_ms),
        log_cap_bytes: usize::try_from(claimed.log_cap_bytes).unwrap_or(usize::MAX),
        run_dir: Some(dir.to_path_buf()),
        resources: claimed.resources.into(),
    }
}
