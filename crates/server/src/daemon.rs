//! The daemon: a thin tokio driver around the [`Scheduler`] state machine.
//!
//! One task owns the scheduler. It sleeps until the next due occurrence (no polling of the
//! clock), or until a run ends, a webhook arrives, or the light control poll (job directory,
//! pause states, runs queued by other processes) is due. Each decision is recorded in the
//! store before it is acted on: an occurrence and its queued run are inserted in one
//! transaction, then the run is claimed and executed by the engine. After a crash, queued runs
//! run, runs that were executing are marked abandoned, and missed occurrences follow the
//! catch-up policy because each trigger's cursor is durable.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rota_core::model::{Job, RunStatus};
use rota_engine::guardian::Guardian;
use rota_engine::run::{EngineConfig, RunRequest, RunStop, StopReason};
use rota_store::{
    HookRecord, NewJobRevision, NewOccurrence, NewRun, OccurrenceKind, Owner, RunEvent,
    SeenDelivery, Store,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::ServerError;
use crate::hooks::{self, HookReply, HookRequest};
use crate::jobdir::{Change, JobDir};
use crate::scheduler::{Cursor, Decisions, JobKey, Outcome, Scheduler, TriggerRun};
use crate::trigger::{CompiledTrigger, TriggerKind};

/// Namespace of jobs whose file names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The lock file that keeps two servers off one data directory.
pub const LOCK_FILE: &str = "serve.lock";

/// The directory of `$ROTA_HOME` where runs keep their files, one directory per run.
pub const RUNS_DIR: &str = "runs";

/// The file where the server writes the address it listens on.
pub const ADDR_FILE: &str = "serve.addr";

/// Name of the file, in a run's artifacts directory, holding the webhook request body.
pub use rota_ops::WEBHOOK_BODY_FILE;

/// Settings of `rota serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The data directory (`$ROTA_HOME`).
    pub home: PathBuf,
    /// The store's URL (`postgres://…`, several servers may share it), when it is not the
    /// SQLite file in `home`; `home` still holds the secret key, run files and the lock.
    pub store: Option<String>,
    /// Directory of job files to load and watch.
    pub jobs_dir: Option<PathBuf>,
    /// HTTP listen address (port 0 picks a free port; see [`ADDR_FILE`]).
    pub listen: SocketAddr,
    /// On shutdown, how long running runs may take before they are cancelled.
    pub grace: Duration,
    /// Between SIGTERM and SIGKILL when a step is stopped.
    pub step_grace: Duration,
    /// How late the running server may fire an occurrence and still count it as on time;
    /// later ones, and all those due while no server ran, meet the catch-up policy.
    pub misfire_grace: Duration,
    /// How often the job directory, pause states and externally queued runs are checked.
    pub poll_every: Duration,
    /// The watchdog that kills step process groups if the server dies.
    pub guardian: Option<Arc<Guardian>>,
    /// How `/api/v1` authenticates callers.
    pub auth: rota_api::AuthMode,
    /// Serve HTTPS with this certificate and key instead of plain HTTP.
    pub tls: Option<crate::tls::TlsFiles>,
    /// How long the event feed (`/api/v1/events`) keeps an event; the retention pass drops
    /// older ones.
    pub event_feed_keep: Duration,
    /// Where run artifacts are kept: a directory or `s3://bucket/prefix`; `None` for
    /// `$ROTA_HOME/artifacts`.
    pub artifacts: Option<String>,
}

impl ServeConfig {
    /// Defaults for `home`: listen on 127.0.0.1:8480, 30 s shutdown grace, 5 s misfire
    /// grace, 1 s control poll, no job directory, no guardian.
    pub fn new(home: PathBuf) -> ServeConfig {
        ServeConfig {
            home,
            store: None,
            jobs_dir: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8480)),
            grace: Duration::from_secs(30),
            step_grace: Duration::from_secs(5),
            misfire_grace: crate::scheduler::DEFAULT_MISFIRE_GRACE,
            poll_every: Duration::from_secs(1),
            event_feed_keep: rota_store::EVENT_FEED_KEEP,
            auth: rota_api::AuthMode::Tokens,
            guardian: None,
            tls: None,
            artifacts: None,
        }
    }
}

/// Runs the daemon until `shutdown` completes, then stops taking work, lets running runs
/// finish within the grace period (cancelling them after it) and returns.
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    std::fs::create_dir_all(&config.home).map_err(|source| ServerError::Io {
        path: config.home.clone(),
        source,
    })?;
    // The certificate and key are read first: a bad file stops the start, naming it.
    let tls = config
        .tls
        .as_ref()
        .map(crate::tls::server_config)
        .transpose()?;
    let _lock = lock_home(&config.home)?;
    let artifacts = rota_engine::artifacts::Artifacts {
        blobs: match &config.artifacts {
            Some(location) => rota_store::ArtifactBlobs::open(location)?,
            None => rota_store::ArtifactBlobs::local(&config.home.join(rota_ops::ARTIFACTS_DIR))?,
        },
        limits: rota_engine::artifacts::ArtifactLimits::from_env()
            .map_err(ServerError::ArtifactLimits)?,
    };
    let store = match &config.store {
        Some(url) => Store::open_url(url).await?,
        None => Store::open(&config.home).await?,
    };
    // Sharing the store with other servers, this one's steps must stop when it goes silent
    // (stopped, frozen), before the others take it for dead and run them again.
    if store.backend() == rota_store::Backend::Postgres
        && let Some(guardian) = &config.guardian
    {
        guardian.keep_alive(crate::fleet::SELF_FENCE_AFTER);
    }
    let recovered = rota_engine::recovery::recover_runs(&store).await?;
    for run in recovered.abandoned {
        tracing::warn!(run = %run, "run abandoned: the process running it died");
    }
    for run in recovered.resumed {
        tracing::warn!(run = %run, "run queued to resume: the process running it died");
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Listen {
            addr: config.listen.to_string(),
            source,
        })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServerError::Listen {
            addr: config.listen.to_string(),
            source,
        })?;
    // The admin token exists before the address is announced, so whoever reads the
    // address (a test, a script waiting for the server) finds the token too.
    let api = api_state(&config, &store, &artifacts).await?;
    let addr_path = config.home.join(ADDR_FILE);
    std::fs::write(&addr_path, bound.to_string()).map_err(|source| ServerError::Io {
        path: addr_path.clone(),
        source,
    })?;
    tracing::info!(addr = %bound, "rota serve listening");
    eprintln!("rota serve: listening on {bound}");
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("rota serve: web UI at {scheme}://{bound}/ui/, API at {scheme}://{bound}/api/v1");

    let lateness = api.scheduler_metrics.clone();
    let hub = api.ops.hub().clone();
    // Workers' claims and the engine's waits wake on other servers' changes too.
    hub.follow(&store);
    let fleet = crate::fleet::Fleet::start(api.ops.clone(), bound.to_string()).await?;
    let (hook_tx, hook_rx) = mpsc::channel(64);
    let (stop_http_tx, stop_http_rx) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(async move {
        let app = hooks::router(hook_tx)
            .merge(rota_api::app(api))
            .merge(rota_ui::router());
        // Header-read and idle timeouts and a connection cap (`crate::http`); client
        // addresses reach the audit trail through the connect info.
        crate::http::serve(listener, app, tls, async move {
            let _ = stop_http_rx.await;
        })
        .await;
    });

    let notifier = crate::notifier::Notifier::spawn(store.clone(), config.home.clone());
    let retention = crate::retention::RetentionLoop::spawn(
        rota_ops::Ops::new(store.clone())
            .with_run_dirs(config.home.join(RUNS_DIR))
            .with_artifacts(artifacts.clone()),
        config.event_feed_keep,
    );
    let mut daemon = Daemon::new(
        config,
        store,
        artifacts,
        lateness,
        hub,
        fleet.leader.clone(),
    );
    let result = daemon.run(hook_rx, shutdown, fleet.fenced.clone()).await;
    let _ = stop_http_tx.send(());
    let _ = http.await;
    if result.is_ok() {
        daemon.drain().await;
    }
    // Each last step is bounded: with the store unreachable, a stop must not wait out pool
    // timeouts one after another.
    tokio::join!(
        within_stop_limit("the notifier", notifier.stop()),
        fleet.stop(),
        within_stop_limit("the retention loop", retention.stop()),
    );
    within_stop_limit("the store", daemon.store.close()).await;
    let _ = std::fs::remove_file(&addr_path);
    result
}

/// The API's state; on first start with token auth, creates the admin token file and says
/// where it is (once: the token itself is never logged).
async fn api_state(
    config: &ServeConfig,
    store: &Store,
    artifacts: &rota_engine::artifacts::Artifacts,
) -> Result<rota_api::ApiState, ServerError> {
    match config.auth {
        rota_api::AuthMode::None => {
            tracing::warn!(
                "API authentication is OFF (--auth none): anyone who can reach the listener is admin"
            );
            eprintln!(
                "rota serve: WARNING: API authentication is OFF (--auth none); anyone who can reach {} is admin",
                config.listen
            );
        }
        rota_api::AuthMode::Tokens => {
            let created = rota_api::ensure_admin_token(store, &config.home)
                .await
                .map_err(|error| ServerError::Api(error.to_string()))?;
            let path = config.home.join(rota_api::ADMIN_TOKEN_FILE);
            if created.is_some() {
                eprintln!(
                    "rota serve: created an admin API token in {} (mode 0600); use it as a bearer token. \
                     The file is removed at the next start: keep the token elsewhere",
                    path.display()
                );
            } else if std::fs::remove_file(&path).is_ok() {
                // The token needs no plaintext copy beyond the first start; it stays valid
                // (the store keeps its hash).
                eprintln!(
                    "rota serve: removed {} (written at first start; the token stays valid). \
                     Another admin token: `rota tokens create admin2 --role admin --all-namespaces` on this machine",
                    path.display()
                );
            }
        }
    }
    let mut state = rota_api::ApiState::new(rota_ops::Ops::new(store.clone()), config.auth);
    state.ops = state
        .ops
        .with_secrets_home(&config.home)
        .with_run_dirs(config.home.join(RUNS_DIR))
        .with_artifacts(artifacts.clone())
        .with_schedules(Arc::new(crate::backfill::Schedules::api()));
    Ok(state)
}

/// Holds an exclusive `flock` on `home/serve.lock` for the server's lifetime.
fn lock_home(home: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, ServerError> {
    let path = home.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| ServerError::Io {
            path: path.clone(),
            source,
        })?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| ServerError::AlreadyRunning(home.to_owned()))
}

/// Which job keys each job file defined, for reloads and removals (hashed: with 100,000
/// files, comparing long paths in a tree showed in the profile of a load).
type FileJobs = HashMap<PathBuf, Vec<JobKey>>;

struct Daemon {
    config: ServeConfig,
    store: Store,
    scheduler: Scheduler,
    engine: EngineConfig,
    owner: Owner,
    jobs_dir: Option<JobDir>,
    file_jobs: FileJobs,
    /// Which job keys each loaded job file declares (loaded or not): a job its file no
    /// longer declares is deleted, one whose new revision fails to load is kept.
    file_declares: FileJobs,
    /// Whether the job directory was scanned once (the first scan also deletes the jobs
    /// whose files went away while no server ran).
    scanned: bool,
    /// Jobs scheduled from the store (saved through the API), by their scheduled revision.
    stored_jobs: HashMap<JobKey, i64>,
    /// The store's change counters as last followed (`None` before the first full read):
    /// the control poll reads jobs and pause states again only when theirs moved.
    followed: Option<rota_store::ChangeCounters>,
    running: JoinSet<(String, RunStatus)>,
    stops: HashMap<String, RunStop>,
    /// The application layer: how a claimed run becomes the engine's request.
    ops: rota_ops::Ops,
    /// Feeds `rota_scheduler_lateness_seconds` on `/metrics`.
    lateness: rota_api::SchedulerMetrics,
    /// Whether this server holds the scheduler's lease: only the holder fires schedules
    /// (every server runs queued runs, webhooks and `after` triggers of the runs it ran).
    leader: tokio::sync::watch::Receiver<bool>,
    /// When the control poll reads the store (`crate::wake`).
    store_poll: crate::wake::StorePoll,
}

impl Daemon {
    fn new(
        config: ServeConfig,
        store: Store,
        artifacts: rota_engine::artifacts::Artifacts,
        lateness: rota_api::SchedulerMetrics,
        hub: rota_ops::fleet::Hub,
        leader: tokio::sync::watch::Receiver<bool>,
    ) -> Daemon {
        // Steps of a job saved without a file run in the server's data directory; steps
        // with `runs_on:` labels go to workers, through the API's hub.
        let ops = rota_ops::Ops::new(store.clone())
            .runs_here(&config.home, config.home.join("runs"), &config.home)
            .with_secrets_home(&config.home)
            .with_hub(hub)
            .with_artifacts(artifacts);
        let engine = EngineConfig {
            artifacts_dir: config.home.join(RUNS_DIR),
            grace: config.step_grace,
            log_cap_bytes: 10 * 1024 * 1024,
            guardian: config.guardian.clone(),
            durable_step_starts: true,
            remote: Some(ops.dispatcher()),
            children: Some(ops.children()),
            artifacts: ops.artifacts().cloned(),
        };
        let owner = rota_engine::owner::this_process();
        Daemon {
            ops,
            scheduler: Scheduler::new(config.misfire_grace, Box::new(rota_store::ids::new_run_id)),
            jobs_dir: config.jobs_dir.as_deref().map(JobDir::new),
            config,
            store,
            engine,
            owner,
            file_jobs: HashMap::new(),
            file_declares: HashMap::new(),
            scanned: false,
            stored_jobs: HashMap::new(),
            followed: None,
            running: JoinSet::new(),
            stops: HashMap::new(),
            lateness,
            leader,
            store_poll: crate::wake::StorePoll::default(),
        }
    }

    async fn run(
        &mut self,
        mut hooks: mpsc::Receiver<HookRequest>,
        shutdown: impl Future<Output = ()> + Send + 'static,
        fenced: CancellationToken,
    ) -> Result<(), ServerError> {
        let hub = self.ops.hub().clone();
        let queued = hub.runs_queued();
        let mut wakes = self.store.wake_ups();
        self.store_poll.listening(wakes.is_live());
        // Shutdown also cuts short what only reads the store or decides what can be decided
        // again (polls, schedule decisions, webhooks): with the store unreachable each such
        // call waits out the pool's timeout, and a SIGTERM must not wait for a chain of them.
        // Claims and run ends are never cut short: a run claimed must get its task.
        let stopping = CancellationToken::new();
        tokio::spawn({
            let stopping = stopping.clone();
            async move {
                shutdown.await;
                stopping.cancel();
            }
        });
        let shut_down = || {
            tracing::info!("shutting down: no new work is taken");
            Ok(())
        };
        if unless_stopping(&stopping, self.control_poll())
            .await
            .is_none()
        {
            return shut_down();
        }
        let mut poll = tokio::time::interval(self.config.poll_every);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let leads = *self.leader.borrow();
            if leads {
                let now = Timestamp::now();
                let decisions = self.scheduler.tick(now);
                self.observe_lateness(&decisions, now);
                if unless_stopping(&stopping, self.apply(decisions, None))
                    .await
                    .is_none()
                {
                    return shut_down();
                }
            }
            self.start_runs().await;
            let sleep = self.scheduler.next_wake().filter(|_| leads).map(|wake| {
                let wait = wake.duration_since(Timestamp::now());
                let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
                tokio::time::Instant::now() + wait
            });
            // Not `biased`: a wake-up that is always due must not starve the other arms, and a
            // cancelled `stopping` stays ready, so it is taken within a few turns anyway.
            tokio::select! {
                () = stopping.cancelled() => return shut_down(),
                () = fenced.cancelled() => return Err(self.taken_for_dead().await),
                () = sleep_until(sleep) => {}
                Some(done) = self.running.join_next(), if !self.running.is_empty() => {
                    match done {
                        Ok((run_id, status)) => self.finished(&run_id, status).await,
                        Err(error) => tracing::error!(%error, "a run task failed"),
                    }
                }
                Some(request) = hooks.recv() => {
                    if unless_stopping(&stopping, self.webhook(request)).await.is_none() {
                        return shut_down();
                    }
                }
                Ok(()) = self.leader.changed() => {
                    if *self.leader.borrow_and_update() {
                        if unless_stopping(&stopping, self.take_over_schedules()).await.is_none() {
                            return shut_down();
                        }
                    } else {
                        tracing::warn!("the scheduler's lease is lost: another server schedules");
                    }
                }
                _ = poll.tick() => {
                    if unless_stopping(&stopping, self.control_poll()).await.is_none() {
                        return shut_down();
                    }
                }
                wake = wakes.next() => {
                    if self.store_poll.woken(wake)
                        && unless_stopping(&stopping, self.control_poll()).await.is_none()
                    {
                        return shut_down();
                    }
                }
                () = queued.notified() => {
                    self.store_poll.again();
                    if unless_stopping(&stopping, self.control_poll()).await.is_none() {
                        return shut_down();
                    }
                }
            }
        }
    }

    /// This server just took the scheduler's lease from another: every trigger restarts
    /// from its stored cursor, as at a start, so what the other server decided is not
    /// decided again and what came due since goes through each job's catch-up policy.
    async fn take_over_schedules(&mut self) {
        tracing::warn!("this server now holds the scheduler's lease and schedules");
        eprintln!("rota serve: this server now schedules");
        let now = Timestamp::now();
        for key in self.scheduler.job_keys() {
            let Some(job) = self.scheduler.job(&key).cloned() else {
                continue;
            };
            self.scheduler.remove_job(&key);
            if let Err(error) = self.schedule_job(key.clone(), job, now).await {
                tracing::error!(job = %key.1, namespace = %key.0, %error,
                    "cannot schedule a job after taking over");
            }
        }
    }

    /// Job directory changes, jobs saved through the API, pause states, runs queued by other
    /// processes. Each costs what changed, not what is loaded: the job directory reports
    /// its changes (inotify), and jobs and pause states are read again only when the store's
    /// change counters moved.
    async fn control_poll(&mut self) {
        self.reload_jobs().await;
        if !self.store_poll.due() {
            return;
        }
        let counters = match self.store.change_counters().await {
            Ok(counters) => Some(counters),
            Err(error) => {
                tracing::error!(%error, "cannot read the store's change counters");
                None
            }
        };
        let followed = self.followed;
        let jobs_read = match (followed, counters) {
            (Some(seen), Some(now)) if seen.jobs == now.jobs => true,
            (Some(seen), Some(_)) => self.follow_stored_jobs(seen.jobs).await,
            _ => self.sync_stored_jobs().await,
        };
        let pauses_moved = match (followed, counters) {
            (Some(seen), Some(now)) => seen.schedule_state != now.schedule_state,
            _ => true,
        };
        let mut pauses_read = true;
        if pauses_moved {
            match self.store.schedule_states().await {
                Ok(states) => {
                    for s in states {
                        let key = (s.namespace, s.job_id);
                        self.scheduler.set_paused(&key, s.paused, s.resume_from);
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "cannot read pause states");
                    pauses_read = false;
                }
            }
        }
        // The counters were read before what they count, so a change made meanwhile is
        // read again next time rather than missed; after a failed read, everything is.
        self.followed = if jobs_read && pauses_read {
            counters
        } else {
            None
        };
        // A gate nobody decided in time fails; its run is queued again to say so.
        if let Err(error) = self.store.expire_due_gates(Timestamp::now()).await {
            tracing::error!(%error, "cannot expire approval gates");
        }
        match self.store.queued_run_ids().await {
            Ok(ids) => {
                for id in ids {
                    if self.scheduler.knows_run(&id) {
                        continue;
                    }
                    if let Ok(Some(run)) = self.store.get_run(&id).await {
                        let key = (run.namespace.clone(), run.job_id.clone());
                        let max_active = self
                            .scheduler
                            .job(&key)
                            .map_or(1, |j| j.policy.max_active_runs);
                        self.scheduler.adopt_queued(&key, &id, max_active);
                        tracing::debug!(run = %id, job = %run.job_id, "queued run adopted");
                    }
                }
            }
            Err(error) => tracing::error!(%error, "cannot list queued runs"),
        }
        self.honour_cancel_requests().await;
    }

    /// Stops runs whose cancel was requested through the store (the API, or `rota cancel`):
    /// a running one is stopped like a Ctrl-C stops `rota run` (a second request, like a
    /// second Ctrl-C, stops its cleanup steps too); a queued one ends as cancelled without
    /// starting.
    async fn honour_cancel_requests(&mut self) {
        let requests = match self.store.pending_cancels().await {
            Ok(requests) => requests,
            Err(error) => {
                tracing::error!(%error, "cannot read cancel requests");
                return;
            }
        };
        for request in requests {
            let (run_id, by) = (request.run_id, request.by);
            let reason = format!("cancelled by {by}");
            if let Some(stop) = self.stops.get(&run_id) {
                // The engine words the reason (`cancelled by …`): it gets who asked.
                if request.forced && !stop.is_forced() {
                    tracing::info!(run = %run_id, "cancel asked again: stopping the cleanup steps too");
                    stop.force(StopReason::Cancelled(by.clone()));
                } else if !stop.is_stopped() {
                    tracing::info!(run = %run_id, %by, "cancelling on request");
                    stop.stop(StopReason::Cancelled(by.clone()));
                }
            } else if self.scheduler.knows_run(&run_id) {
                tracing::info!(run = %run_id, %by, "queued run cancelled on request");
                self.scheduler.forget(&run_id);
                let ended = self
                    .store
                    .record(&[RunEvent::RunFinished {
                        run_id: run_id.clone(),
                        status: RunStatus::Cancelled,
                        reason: Some(format!("{reason} before it started")),
                        at: Timestamp::now(),
                    }])
                    .await;
                if let Err(error) = ended {
                    tracing::error!(%error, run = %run_id, "cannot record a cancelled queued run");
                }
            }
        }
    }

    async fn reload_jobs(&mut self) {
        let Some(dir) = &mut self.jobs_dir else {
            return;
        };
        let changes = match dir.scan() {
            Ok(changes) => changes,
            Err(error) => {
                tracing::error!(dir = %dir.dir().display(), %error, "cannot scan the job directory");
                return;
            }
        };
        let now = Timestamp::now();
        let changed = !changes.is_empty();
        // Loaded files are saved in batches (one transaction each); a broken or removed
        // file is handled after the loaded files before it, so the order of changes holds.
        let mut loaded: Vec<LoadedFile> = Vec::new();
        let mut batch_jobs = 0;
        for change in changes {
            match change {
                Change::Loaded { path, source, jobs } => {
                    batch_jobs += jobs.len();
                    loaded.push(LoadedFile { path, source, jobs });
                    if batch_jobs >= LOAD_BATCH {
                        self.load_files(std::mem::take(&mut loaded), now).await;
                        batch_jobs = 0;
                    }
                }
                Change::Broken { path, message } => {
                    self.load_files(std::mem::take(&mut loaded), now).await;
                    batch_jobs = 0;
                    let shown = path.display().to_string();
                    if self.file_jobs.contains_key(&path) {
                        tracing::error!(file = %shown, problems = %message, "job file does not load; its last good revision keeps running");
                    } else {
                        tracing::error!(file = %shown, problems = %message, "job file does not load; its jobs are not scheduled until it is fixed");
                    }
                    eprintln!("rota serve: {message}");
                    let _ = self.store.set_job_load_error(&shown, &message, now).await;
                }
                Change::Removed { path } => {
                    self.load_files(std::mem::take(&mut loaded), now).await;
                    batch_jobs = 0;
                    let _ = self
                        .store
                        .clear_job_load_error(&path.display().to_string())
                        .await;
                    self.file_declares.remove(&path);
                    for key in self.file_jobs.remove(&path).unwrap_or_default() {
                        if self.file_jobs.values().any(|keys| keys.contains(&key)) {
                            continue;
                        }
                        tracing::info!(job = %key.1, "job file removed");
                        self.scheduler.remove_job(&key);
                    }
                }
            }
        }
        self.load_files(loaded, now).await;
        if changed || !self.scanned {
            self.scanned = true;
            self.delete_vanished_jobs(now).await;
        }
    }

    /// Saves the jobs of loaded files in one transaction ([`Store::save_file_jobs`]) and
    /// gives them to the scheduler, file by file in order: a job a file no longer defines
    /// leaves the scheduler, unless another loaded file defines it.
    async fn load_files(&mut self, files: Vec<LoadedFile>, now: Timestamp) {
        if files.is_empty() {
            return;
        }
        // Each job's triggers are compiled before saving, so a job whose triggers cannot
        // run is not recorded.
        let mut compiled = Vec::new();
        let mut saves = Vec::new();
        let mut failures: Vec<(usize, String)> = Vec::new();
        for (index, file) in files.iter().enumerate() {
            for job in &file.jobs {
                let namespace = job.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
                match CompiledTrigger::compile_all(job) {
                    Ok(triggers) => {
                        let mut revision =
                            NewJobRevision::of_job(namespace, job, file.source.as_str(), now);
                        revision.source_path = Some(file.path.display().to_string());
                        saves.push(rota_store::FileJobSave {
                            revision,
                            trigger_keys: triggers.iter().map(|t| t.key.clone()).collect(),
                            wants_last_run: triggers.iter().map(end_anchored).collect(),
                        });
                        compiled.push((index, job.clone(), triggers));
                    }
                    Err(error) => failures.push((index, error.to_string())),
                }
            }
        }
        let paths: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
        let saved = match self.store.save_file_jobs(&saves, &paths, now).await {
            Ok(saved) => saved,
            Err(error) => {
                // Nothing of the batch was written: each file keeps what it had, and says why.
                tracing::error!(%error, files = files.len(), "cannot save the jobs of job files");
                for path in &paths {
                    let _ = self
                        .store
                        .set_job_load_error(path, &error.to_string(), now)
                        .await;
                }
                return;
            }
        };
        for (index, error) in failures {
            tracing::error!(file = %paths[index], %error, "cannot load job");
            let _ = self
                .store
                .set_job_load_error(&paths[index], &error, now)
                .await;
        }
        let mut keys_of: Vec<Vec<JobKey>> = vec![Vec::new(); files.len()];
        let created = saved.iter().filter(|s| s.created).count();
        let jobs = saved.len();
        for ((index, job, triggers), saved) in compiled.into_iter().zip(saved) {
            let namespace = job
                .namespace
                .clone()
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
            tracing::debug!(job = %job.id, namespace = %namespace, revision = saved.revision, "job loaded");
            let key = (namespace, job.id.clone());
            let cursors: HashMap<String, Cursor> = triggers
                .iter()
                .zip(saved.triggers)
                .map(|(t, (state, last_run))| {
                    let cursor = Cursor {
                        origin: state.origin,
                        evaluated_until: state.evaluated_until,
                        last_run: last_run.map(|run| TriggerRun {
                            run_id: run.run_id,
                            finished_at: run.finished_at,
                        }),
                    };
                    (t.key.clone(), cursor)
                })
                .collect();
            self.scheduler.upsert_job(
                key.clone(),
                job,
                triggers,
                |k| cursors.get(k).cloned().unwrap_or(Cursor::fresh(now)),
                now,
            );
            keys_of[index].push(key);
        }
        tracing::info!(
            files = files.len(),
            jobs,
            new_revisions = created,
            "job files loaded"
        );
        for (file, keys) in files.into_iter().zip(keys_of) {
            let declared = file
                .jobs
                .iter()
                .map(|job| {
                    let namespace = job.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
                    (namespace.to_owned(), job.id.clone())
                })
                .collect();
            self.file_declares.insert(file.path.clone(), declared);
            let old = self
                .file_jobs
                .insert(file.path, keys.clone())
                .unwrap_or_default();
            for key in old.iter().filter(|k| !keys.contains(k)) {
                // A job that moved to another file stays scheduled from it.
                if self.file_jobs.values().any(|keys| keys.contains(key)) {
                    continue;
                }
                tracing::info!(job = %key.1, "job removed from its file");
                self.scheduler.remove_job(key);
            }
        }
    }

    /// Deletes the jobs whose latest revision came from a file of the job directory that is
    /// gone or no longer declares them (removed while this server ran, or while none did),
    /// as `rota jobs rm` deletes a job saved through the API: it leaves the scheduler and
    /// the listings, cannot be started, and its history stays. A file that exists but does
    /// not load keeps its jobs (their last good revision).
    async fn delete_vanished_jobs(&mut self, now: Timestamp) {
        let Some(dir) = &self.jobs_dir else {
            return;
        };
        let dir = dir.dir().to_owned();
        let heads = match self.store.file_job_heads().await {
            Ok(heads) => heads,
            Err(error) => {
                tracing::error!(%error, "cannot list the jobs loaded from files");
                return;
            }
        };
        for head in heads {
            let path = PathBuf::from(&head.source_path);
            // Files of other directories (another server's, `rota run FILE`) are not ours.
            if path.parent() != Some(dir.as_path()) {
                continue;
            }
            let key = (head.namespace.clone(), head.job_id.clone());
            let gone = match self.file_declares.get(&path) {
                Some(declared) => !declared.contains(&key),
                // Not loaded in this life: gone unless the file is there (and broken).
                None => !path.exists(),
            };
            if !gone {
                continue;
            }
            let by = format!("jobdir:{}", head.source_path);
            match self
                .store
                .delete_file_job(&head.namespace, &head.job_id, &head.source_path, &by, now)
                .await
            {
                Ok(Some(revision)) => {
                    tracing::info!(job = %head.job_id, namespace = %head.namespace, revision, file = %head.source_path, "job deleted: its file no longer defines it");
                    self.scheduler.remove_job(&key);
                    let entry = rota_store::NewAuditEntry {
                        at: now,
                        actor: "server".to_owned(),
                        action: "job.delete".to_owned(),
                        target: format!("job/{}/{}", head.namespace, head.job_id),
                        source: Some(by),
                        result: "ok".to_owned(),
                    };
                    if let Err(error) = self.store.append_audit(&entry).await {
                        tracing::error!(%error, "cannot audit a job deletion");
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::error!(%error, job = %head.job_id, "cannot delete a job whose file is gone")
                }
            }
        }
    }

    /// Follows the jobs saved through the API (revisions without a source file): a new
    /// latest revision replaces the scheduled one, and a deleted job, or one whose latest
    /// revision now comes from a file, stops being scheduled from the store.
    async fn sync_stored_jobs(&mut self) -> bool {
        let heads = match self.store.stored_job_heads().await {
            Ok(heads) => heads,
            Err(error) => {
                tracing::error!(%error, "cannot list stored jobs");
                return false;
            }
        };
        let now = Timestamp::now();
        let mut current = HashMap::new();
        for (namespace, job_id, revision) in heads {
            let key = (namespace, job_id);
            current.insert(key.clone(), revision);
            if self.stored_jobs.get(&key) == Some(&revision) {
                continue;
            }
            // Read and scheduled only when its latest revision changed.
            self.schedule_stored(key, revision, now).await;
        }
        let file_backed: std::collections::HashSet<&JobKey> =
            self.file_jobs.values().flatten().collect();
        for key in self.stored_jobs.keys() {
            if !current.contains_key(key) && !file_backed.contains(key) {
                tracing::info!(job = %key.1, namespace = %key.0, "stored job no longer scheduled");
                self.scheduler.remove_job(key);
            }
        }
        self.stored_jobs = current;
        true
    }

    /// Follows the jobs changed in the store since the `jobs` counter was `since`: only
    /// those are read ([`Store::job_changes_since`]).
    async fn follow_stored_jobs(&mut self, since: i64) -> bool {
        let changes = match self.store.job_changes_since(since).await {
            Ok(changes) => changes,
            Err(error) => {
                tracing::error!(%error, "cannot list changed jobs");
                return false;
            }
        };
        let now = Timestamp::now();
        for change in changes {
            let key = (change.namespace, change.job_id);
            match change.head {
                Some((revision, None)) => {
                    if self.stored_jobs.get(&key) == Some(&revision) {
                        continue;
                    }
                    // Recorded as seen whatever the outcome: an error is logged once per
                    // revision.
                    self.stored_jobs.insert(key.clone(), revision);
                    self.schedule_stored(key, revision, now).await;
                }
                // Deleted, or its latest revision now comes from a file.
                _ => {
                    if self.stored_jobs.remove(&key).is_some()
                        && !self.file_jobs.values().any(|keys| keys.contains(&key))
                    {
                        tracing::info!(job = %key.1, namespace = %key.0, "stored job no longer scheduled");
                        self.scheduler.remove_job(&key);
                    }
                }
            }
        }
        true
    }

    /// Reads a stored job's revision and schedules it.
    async fn schedule_stored(&mut self, key: JobKey, revision: i64, now: Timestamp) {
        let scheduled = match self.store.job_revision(&key.0, &key.1, revision).await {
            Ok(Some(saved)) => match saved.job() {
                Ok(job) => self.schedule_job(key.clone(), job, now).await,
                Err(e) => Err(ServerError::BadTrigger(format!(
                    "stored job does not load: {e}"
                ))),
            },
            Ok(None) => return,
            Err(error) => Err(error.into()),
        };
        match scheduled {
            Ok(()) => {
                tracing::info!(job = %key.1, namespace = %key.0, revision, "stored job scheduled")
            }
            Err(error) => {
                tracing::error!(job = %key.1, namespace = %key.0, %error, "stored job cannot be scheduled")
            }
        }
    }

    /// Gives a job to the scheduler with its triggers' durable cursors.
    async fn schedule_job(
        &mut self,
        key: JobKey,
        job: Job,
        now: Timestamp,
    ) -> Result<(), ServerError> {
        let triggers = CompiledTrigger::compile_all(&job)?;
        let (namespace, _) = &key;
        let mut cursors = HashMap::new();
        for t in &triggers {
            let state = self
                .store
                .ensure_trigger_state(namespace, &job.id, &t.key, now)
                .await?;
            let last_run = self
                .store
                .last_trigger_run(namespace, &job.id, &t.key)
                .await?;
            cursors.insert(
                t.key.clone(),
                Cursor {
                    origin: state.origin,
                    evaluated_until: state.evaluated_until,
                    last_run: last_run.map(|run| TriggerRun {
                        run_id: run.run_id,
                        finished_at: run.finished_at,
                    }),
                },
            );
        }
        self.scheduler.upsert_job(
            key,
            job,
            triggers,
            |k| cursors.get(k).cloned().unwrap_or(Cursor::fresh(now)),
            now,
        );
        Ok(())
    }

    /// Records each decision; runs are queued in the same transaction as their occurrence.
    /// A run whose occurrence was already recorded (by a previous life of the server) is
    /// dropped: that occurrence is not run twice.
    /// How late the scheduler woke for occurrences that fire on time; catch-up occurrences
    /// (older than the misfire grace) would measure downtime, not the scheduler.
    fn observe_lateness(&self, decisions: &Decisions, now: Timestamp) {
        for decision in &decisions.occurrences {
            let late = Duration::try_from(now.duration_since(decision.scheduled_at));
            if let Ok(late) = late
                && late <= self.config.misfire_grace
            {
                self.lateness.observe_lateness(late);
            }
        }
    }

    async fn apply(&mut self, decisions: Decisions, hook: Option<&Delivery<'_>>) -> Applied {
        for run_id in &decisions.cancel {
            if let Some(stop) = self.stops.get(run_id) {
                tracing::info!(run = %run_id, "cancelling: overlap policy cancel_running");
                stop.stop(StopReason::Cancelled(
                    "overlap policy cancel_running".to_owned(),
                ));
            } else if self.scheduler.knows_run(run_id) {
                // Still queued: it ends as cancelled without running.
                self.scheduler.forget(run_id);
                let _ = self
                    .store
                    .record(&[RunEvent::RunFinished {
                        run_id: run_id.clone(),
                        status: RunStatus::Cancelled,
                        reason: Some(
                            "superseded by a newer occurrence (overlap policy cancel_running)"
                                .to_owned(),
                        ),
                        at: Timestamp::now(),
                    }])
                    .await;
            }
        }
        let mut applied = Applied::default();
        let body = hook.map(|h| h.body);
        for decision in decisions.occurrences {
            let (namespace, job_id) = decision.job.clone();
            let now = Timestamp::now();
            let (kind, reason) = match &decision.outcome {
                Outcome::Run { .. } => (OccurrenceKind::Run, None),
                Outcome::Skipped(reason) => (OccurrenceKind::Skipped, Some(reason.clone())),
                Outcome::Missed(reason) => (OccurrenceKind::Missed, Some(reason.clone())),
            };
            let occurrence = NewOccurrence {
                namespace: namespace.clone(),
                job_id: job_id.clone(),
                trigger_key: decision.trigger_key.clone(),
                scheduled_at: decision.scheduled_at,
                recorded_at: now,
                kind,
                reason: reason.clone(),
            };
            let run = match &decision.outcome {
                Outcome::Run { run_id } => match self
                    .new_run(
                        &decision.job,
                        run_id,
                        &decision.trigger_key,
                        decision.scheduled_at,
                        now,
                    )
                    .await
                {
                    Some(run) => Some(run),
                    None => {
                        self.scheduler.forget(run_id);
                        continue;
                    }
                },
                _ => None,
            };
            if let (Some(run), Some(body)) = (&run, body) {
                let dir = self.engine.artifacts_dir.join(&run.id);
                let written = std::fs::create_dir_all(&dir)
                    .and_then(|()| std::fs::write(dir.join(WEBHOOK_BODY_FILE), body));
                if let Err(error) = written {
                    tracing::error!(%error, "cannot save the webhook body");
                    self.scheduler.forget(&run.id);
                    continue;
                }
            }
            let recorded = match hook {
                // The delivery's keys go in with its occurrence and run, or nothing does.
                Some(hook) => {
                    let since = hook
                        .received
                        .checked_sub(hooks::REPLAY_WINDOW)
                        .unwrap_or(Timestamp::MIN);
                    match self
                        .store
                        .record_hook_occurrence(&occurrence, run.as_ref(), hook.keys, since)
                        .await
                    {
                        Ok(HookRecord::Recorded) => Ok(true),
                        Ok(HookRecord::OccurrenceExists) => Ok(false),
                        Ok(HookRecord::Replay(seen)) => {
                            if let Some(run) = &run {
                                let _ = std::fs::remove_dir_all(
                                    self.engine.artifacts_dir.join(&run.id),
                                );
                            }
                            applied.replay = Some(seen);
                            Ok(false)
                        }
                        Err(error) => Err(error),
                    }
                }
                None => {
                    self.store
                        .record_occurrence(&occurrence, run.as_ref())
                        .await
                }
            };
            match recorded {
                Ok(true) => {
                    match &decision.outcome {
                        Outcome::Run { run_id } => {
                            tracing::info!(job = %job_id, trigger = %decision.trigger_key, at = %decision.scheduled_at, run = %run_id, "occurrence queued")
                        }
                        _ => {
                            tracing::info!(job = %job_id, trigger = %decision.trigger_key, at = %decision.scheduled_at, kind = kind.as_str(), reason = ?reason, "occurrence not run")
                        }
                    }
                    applied.outcomes.push(decision.outcome);
                }
                Ok(false) => {
                    tracing::info!(job = %job_id, at = %decision.scheduled_at, "occurrence already recorded; not run again");
                    if let Outcome::Run { run_id } = &decision.outcome {
                        self.scheduler.forget(run_id);
                    }
                }
                Err(error) => {
                    tracing::error!(%error, job = %job_id, "cannot record an occurrence");
                    if let Outcome::Run { run_id } = &decision.outcome {
                        self.scheduler.forget(run_id);
                    }
                }
            }
        }
        applied
    }

    /// The queued run for an occurrence, with the job's latest saved revision and default
    /// parameters.
    async fn new_run(
        &self,
        key: &JobKey,
        run_id: &str,
        trigger_key: &str,
        scheduled_at: Timestamp,
        now: Timestamp,
    ) -> Option<NewRun> {
        let job = self.scheduler.job(key)?;
        let revision = match self.store.latest_job_revision(&key.0, &key.1).await {
            Ok(Some(revision)) => revision.revision,
            _ => return None,
        };
        let params = rota_core::params::resolve(job, &BTreeMap::new(), &[]).unwrap_or_default();
        Some(NewRun {
            id: run_id.to_owned(),
            namespace: key.0.clone(),
            job_id: key.1.clone(),
            job_revision: revision,
            params: serde_json::Value::Object(params.into_iter().collect()),
            dry_run: false,
            trigger: trigger_kind(trigger_key).to_owned(),
            started_by: None,
            scheduled_at: Some(scheduled_at),
            created_at: now,
            owner: self.owner.clone(),
            steps: job.steps.iter().map(|s| s.id.clone()).collect(),
            parent: None,
        })
    }

    /// Claims and starts every run the scheduler lets start.
    async fn start_runs(&mut self) {
        loop {
            let startable = self.scheduler.take_startable();
            if startable.is_empty() {
                return;
            }
            for (key, run_id) in startable {
                // As `adopt_queued` counts it: a job this server does not hold allows one.
                let max_active = self
                    .scheduler
                    .job(&key)
                    .map_or(1, |j| j.policy.max_active_runs);
                self.start_run(run_id, Some(max_active)).await;
            }
        }
    }

    /// Claims and starts a queued run, unless `max_active` runs of its job already run on
    /// any server sharing the store.
    async fn start_run(&mut self, run_id: String, max_active: Option<u32>) {
        {
            let now = Timestamp::now();
            match self
                .store
                .claim_queued_run(&run_id, &self.owner, now, max_active)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    // Someone else took it, it ended, or its job runs elsewhere as often as
                    // it may: not ours to run now (a run still queued is adopted again, at
                    // the next poll).
                    self.scheduler.forget(&run_id);
                    self.store_poll.again();
                    return;
                }
                Err(error) => {
                    tracing::error!(%error, run = %run_id, "cannot claim a queued run");
                    self.scheduler.forget(&run_id);
                    return;
                }
            }
            match self.request_for(&run_id).await {
                Ok(request) => {
                    let stop = RunStop::new();
                    self.stops.insert(run_id.clone(), stop.clone());
                    let ops = self.ops.clone();
                    let engine = self.engine.clone();
                    tracing::info!(run = %run_id, job = %request.job.id, "run started");
                    self.running.spawn(async move {
                        let id = request.run_id.clone();
                        match ops.execute_run(&engine, request, stop, None, true).await {
                            Ok(summary) => (id, summary.status),
                            Err(error) => {
                                tracing::error!(%error, run = %id, "the run could not be recorded");
                                (id, RunStatus::Failed)
                            }
                        }
                    });
                }
                Err(reason) => {
                    tracing::error!(run = %run_id, %reason, "run cannot start");
                    let _ = self
                        .store
                        .record(&[RunEvent::RunFinished {
                            run_id: run_id.clone(),
                            status: RunStatus::Failed,
                            reason: Some(reason),
                            at: Timestamp::now(),
                        }])
                        .await;
                    let decisions =
                        self.scheduler
                            .run_finished(&run_id, Timestamp::now(), RunStatus::Failed);
                    self.apply(decisions, None).await;
                }
            }
        }
    }

    /// The engine's request for a run this server just claimed, prepared by the one rule
    /// every runner of runs follows ([`rota_ops::Ops::prepare_run`]).
    async fn request_for(&self, run_id: &str) -> Result<RunRequest, String> {
        let spec = self
            .ops
            .claimed_run(run_id)
            .await
            .map_err(|e| e.to_string())?;
        self.ops.prepare_run(spec).await.map_err(|e| e.to_string())
    }

    async fn finished(&mut self, run_id: &str, status: RunStatus) {
        self.stops.remove(run_id);
        tracing::info!(run = %run_id, status = status.as_str(), "run finished");
        let decisions = self
            .scheduler
            .run_finished(run_id, Timestamp::now(), status);
        self.apply(decisions, None).await;
        self.start_runs().await;
    }

    async fn webhook(&mut self, request: HookRequest) {
        let key = (request.namespace.clone(), request.job.clone());
        let hook = self
            .scheduler
            .triggers(&key)
            .into_iter()
            .find_map(|t| match t.kind {
                TriggerKind::Webhook { secret, signature } => Some((t.key, secret, signature)),
                _ => None,
            });
        let Some((trigger_key, secret_name, scheme)) = hook else {
            let _ = request.reply.send(HookReply::NotFound);
            return;
        };
        let secret = match self.webhook_secret(&key, &secret_name).await {
            Ok(secret) => secret,
            Err(why) => {
                tracing::error!(job = %request.job, %why, "webhook refused: its secret is unavailable");
                let _ = request.reply.send(HookReply::Unavailable(format!(
                    "the webhook's secret {secret_name} is not set"
                )));
                return;
            }
        };
        if !hooks::verify(scheme, secret.expose(), &request.headers, &request.body) {
            tracing::warn!(job = %request.job, "webhook refused: bad or missing signature");
            let _ = request.reply.send(HookReply::Unauthorized);
            return;
        }
        let keys = match hooks::delivery_keys(scheme, &request.headers, &request.body) {
            Ok(keys) => keys,
            Err(why) => {
                let _ = request.reply.send(HookReply::BadRequest(why));
                return;
            }
        };
        let received = Timestamp::now();
        let since = received
            .checked_sub(hooks::REPLAY_WINDOW)
            .unwrap_or(Timestamp::MIN);
        // Checked before the scheduler decides, so a replay leaves no trace in its state;
        // the transaction that records the delivery checks again.
        match self
            .store
            .webhook_delivery_seen(&key.0, &key.1, &keys, since)
            .await
        {
            Ok(Some(seen)) => {
                let reply = self.refuse_replay(&key, seen).await;
                let _ = request.reply.send(reply);
                return;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::error!(%error, "cannot read webhook deliveries");
                let _ = request.reply.send(HookReply::Unavailable(
                    "the request could not be checked".to_owned(),
                ));
                return;
            }
        }
        let Some(decisions) = self.scheduler.fire_now(&key, &trigger_key, received) else {
            let _ = request.reply.send(HookReply::NotFound);
            return;
        };
        let delivery = Delivery {
            body: &request.body,
            keys: &keys,
            received,
        };
        let applied = self.apply(decisions, Some(&delivery)).await;
        let reply = match (applied.outcomes.into_iter().next(), applied.replay) {
            (_, Some(seen)) => self.refuse_replay(&key, seen).await,
            (Some(Outcome::Run { run_id }), None) => HookReply::Queued { run_id },
            (Some(Outcome::Skipped(reason) | Outcome::Missed(reason)), None) => {
                HookReply::Skipped { reason }
            }
            (None, None) => HookReply::Unavailable("the request could not be recorded".to_owned()),
        };
        let _ = request.reply.send(reply);
        self.start_runs().await;
    }

    /// The answer to a delivery accepted before, which is audited as a refused request.
    async fn refuse_replay(&self, (namespace, job): &JobKey, seen: SeenDelivery) -> HookReply {
        tracing::warn!(job = %job, namespace = %namespace, key = %seen.key, "webhook refused: delivery already received");
        let entry = rota_store::NewAuditEntry {
            at: Timestamp::now(),
            actor: "webhook".to_owned(),
            action: "webhook.replay".to_owned(),
            target: format!("job/{namespace}/{job}"),
            source: Some(format!("hook/{namespace}/{job} {}", seen.key)),
            result: "refused".to_owned(),
        };
        if let Err(error) = self.store.append_audit(&entry).await {
            tracing::error!(%error, "cannot audit a refused webhook replay");
        }
        let what = match seen.key.split_once(':') {
            Some(("id", id)) => format!("delivery {id}"),
            _ => "a delivery with the same signed body".to_owned(),
        };
        let made = match &seen.run_id {
            Some(run) => format!(" (run {run})"),
            None => String::new(),
        };
        HookReply::Replay {
            detail: format!(
                "{what} was already received at {}{made}; a delivery is accepted once within {} days",
                seen.received_at,
                hooks::REPLAY_WINDOW.as_secs() / 86_400
            ),
        }
    }

    /// A webhook trigger's shared secret: from the secrets store of the job's namespace,
    /// else the server's environment. Each check of a request is a use of the secret and
    /// is audited as one, refused requests included.
    async fn webhook_secret(
        &self,
        (namespace, job): &JobKey,
        name: &str,
    ) -> Result<rota_secrets::SecretValue, String> {
        let key = rota_secrets::SecretKey::load(&self.config.home).map_err(|e| e.to_string())?;
        let mut resolved =
            rota_secrets::resolve(&self.store, key.as_ref(), namespace, &[name.to_owned()])
                .await
                .map_err(|e| e.to_string())?;
        for secret_use in &resolved.uses {
            let entry = rota_store::NewAuditEntry {
                at: Timestamp::now(),
                actor: "webhook".to_owned(),
                action: "secret.use".to_owned(),
                target: secret_use.target(),
                source: Some(format!("hook/{namespace}/{job}")),
                result: "ok".to_owned(),
            };
            self.store
                .append_audit(&entry)
                .await
                .map_err(|e| format!("cannot audit the use of the secret: {e}"))?;
        }
        resolved
            .values
            .remove(name)
            .ok_or_else(|| format!("secret {name} is not set"))
    }

    /// This server was taken for dead by the others (`crate::fleet`): its runs are theirs
    /// now. Every run task is dropped at once, which kills its processes and records
    /// nothing; what it had recorded stands, and the others resume from there.
    async fn taken_for_dead(&mut self) -> ServerError {
        eprintln!("rota serve: taken for dead by the other servers; stopping its runs and exiting");
        self.running.abort_all();
        while self.running.join_next().await.is_some() {}
        self.stops.clear();
        ServerError::TakenForDead
    }

    /// After shutdown: running runs get the grace period, then are cancelled; queued runs
    /// stay queued for the next start.
    async fn drain(&mut self) {
        if self.running.is_empty() {
            return;
        }
        eprintln!(
            "rota serve: waiting up to {}s for {} running run(s)",
            self.config.grace.as_secs(),
            self.running.len()
        );
        let deadline = tokio::time::Instant::now() + self.config.grace;
        loop {
            tokio::select! {
                done = self.running.join_next() => match done {
                    None => return,
                    Some(Ok((run_id, _))) => { self.stops.remove(&run_id); }
                    Some(Err(error)) => tracing::error!(%error, "a run task failed"),
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        for stop in self.stops.values() {
            stop.stop(StopReason::Cancelled("server shutdown".to_owned()));
        }
        // Cancelled runs still run their `when: always` cleanup steps; those get one more
        // step grace period before they are stopped too.
        let deadline = tokio::time::Instant::now() + self.config.step_grace;
        loop {
            tokio::select! {
                done = self.running.join_next() => if done.is_none() { return },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        for stop in self.stops.values() {
            stop.force(StopReason::Cancelled("server shutdown".to_owned()));
        }
        // Forced runs end at once unless their last writes wait on a store that does not
        // answer; then they are left to recovery, as after a crash.
        let deadline = tokio::time::Instant::now() + crate::fleet::STOP_WRITES_LIMIT;
        loop {
            tokio::select! {
                done = self.running.join_next() => if done.is_none() { return },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        tracing::warn!(
            runs = self.running.len(),
            "gave up waiting for runs whose last writes the store does not take"
        );
        self.running.abort_all();
    }
}

/// Waits for `stopping` (a part of the server shutting down) at most
/// [`crate::fleet::STOP_WRITES_LIMIT`], then gives up on it.
async fn within_stop_limit(what: &str, stopping: impl Future<Output = ()>) {
    if tokio::time::timeout(crate::fleet::STOP_WRITES_LIMIT, stopping)
        .await
        .is_err()
    {
        tracing::warn!("gave up waiting for {what} to stop: the store does not answer");
    }
}

/// `work`, unless `stopping` is cancelled first (then `None`, and `work` is dropped).
async fn unless_stopping<F: Future>(stopping: &CancellationToken, work: F) -> Option<F::Output> {
    tokio::select! {
        biased;
        () = stopping.cancelled() => None,
        output = work => Some(output),
    }
}

/// Jobs saved per transaction when job files load: large enough that loading 100,000 files
/// is a few hundred transactions, small enough that the API's writes wait little for one.
const LOAD_BATCH: usize = 500;

/// A job file that loaded, waiting to be saved with its batch.
struct LoadedFile {
    path: PathBuf,
    source: String,
    jobs: Vec<Job>,
}

/// Whether a trigger is an end-anchored interval (it counts from its last run's end).
fn end_anchored(trigger: &CompiledTrigger) -> bool {
    matches!(
        trigger.kind,
        TriggerKind::Interval {
            anchor: rota_core::model::IntervalAnchor::End,
            ..
        }
    )
}

/// A verified webhook delivery being recorded.
struct Delivery<'a> {
    body: &'a [u8],
    keys: &'a [String],
    received: Timestamp,
}

/// What [`Daemon::apply`] recorded.
#[derive(Default)]
struct Applied {
    /// The outcome of each occurrence recorded, in order.
    outcomes: Vec<Outcome>,
    /// A webhook delivery found already received when its occurrence was recorded.
    replay: Option<SeenDelivery>,
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The run's `trigger` column from a trigger key: `cron`, `interval`, `at`, `after`,
/// `webhook`. An interval's key starts with `every` (stored cursors keep that key); the run
/// says `interval`, the trigger's name in job files.
fn trigger_kind(trigger_key: &str) -> &str {
    match trigger_key.split(':').next().unwrap_or(trigger_key) {
        "every" => "interval",
        kind => kind,
    }
}
