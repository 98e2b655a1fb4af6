//! `rota serve` and the schedule commands around it: `pause`, `resume`, `backfill`,
//! `schedule next`, `schedule history`. The daemon itself lives in `rota-server`; these
//! commands only talk to the store, which the running server reads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use jiff::Timestamp;
use rota_core::model::Job;
use rota_server::trigger::{CompiledTrigger, parse_instant, upcoming};
use rota_store::{Owner, Store};
use serde_json::json;

use reqwest::Method;

use crate::EXIT_USAGE;
use crate::client::{Remote, seg};
use crate::home::Home;
use crate::output::Printer;
use crate::view::{Items, OccurrenceView, ScheduleStateView, via_wire};

/// `rota serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// HTTP listen address (webhooks at /hooks/<namespace>/<job>).
    #[arg(long, default_value = "127.0.0.1:8480", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Load every job file in this directory and watch it for changes.
    #[arg(long, value_name = "DIR")]
    pub jobs: Option<PathBuf>,
    /// On SIGTERM/SIGINT, seconds running runs may take before they are cancelled.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub grace: u64,
    /// How `/api/v1` authenticates: bearer tokens (an admin token is written to
    /// `$ROTA_HOME/admin.token` on first start), or `none` for single-user local use.
    #[arg(long, value_enum, default_value_t = AuthArg::Token)]
    pub auth: AuthArg,
}

/// `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthArg {
    /// Bearer tokens with per-namespace roles.
    Token,
    /// No authentication: every caller is admin.
    None,
}

/// `rota pause`.
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The job id.
    pub job: String,
    /// Its namespace.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
}

/// `rota resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The job id.
    pub job: String,
    /// Its namespace.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// Occurrences before this instant stay skipped as paused: `now` or RFC 3339.
    #[arg(long, default_value = "now")]
    pub from: String,
}

/// `rota backfill`.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// The job id.
    pub job: String,
    /// Its namespace.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// First instant (inclusive), RFC 3339.
    #[arg(long)]
    pub from: String,
    /// Last instant (inclusive), RFC 3339.
    #[arg(long)]
    pub to: String,
}

/// `rota schedule next`.
#[derive(Debug, Args)]
pub struct NextArgs {
    /// The job id.
    pub job: String,
    /// Its namespace.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// How many fire times. (`-n` is the namespace, as on every command.)
    #[arg(long = "count", default_value_t = 5)]
    pub count: usize,
}

/// `rota schedule history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The job id.
    pub job: String,
    /// Its namespace.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// How many occurrences at most, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

pub async fn serve(home: Home, args: ServeArgs) -> anyhow::Result<u8> {
    // Before the store exists: the data directory is made private and steps are kept out
    // of it; say what this machine cannot enforce.
    rota_engine::sandbox::init(&home.dir)
        .with_context(|| format!("cannot set up {}", home.dir.display()))?;
    rota_engine::sandbox::announce();
    let mut config = rota_server::ServeConfig::new(home.dir.clone());
    config.listen = args.listen;
    config.jobs_dir = args.jobs;
    config.grace = Duration::from_secs(args.grace);
    config.auth = match args.auth {
        AuthArg::Token => rota_api::AuthMode::Tokens,
        AuthArg::None => rota_api::AuthMode::None,
    };
    config.guardian = crate::run_cmd::spawn_guardian().map(Arc::new);
    rota_server::serve(config, shutdown_signal()).await?;
    Ok(0)
}

/// SIGTERM or SIGINT: stop taking work, let running steps finish within the grace period.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    };
    eprintln!("rota serve: {name} received, shutting down");
}

pub async fn pause(home: &Home, args: PauseArgs, out: &Printer) -> anyhow::Result<u8> {
    let store = home.open_store().await?;
    if require_stored_job(&store, &args.namespace, &args.job)
        .await?
        .is_none()
    {
        return Ok(EXIT_USAGE);
    }
    store
        .set_paused(&args.namespace, &args.job, true, None, Timestamp::now())
        .await?;
    report(out, &args.namespace, &args.job, "paused", None);
    Ok(0)
}

pub async fn resume(home: &Home, args: ResumeArgs, out: &Printer) -> anyhow::Result<u8> {
    let store = home.open_store().await?;
    if require_stored_job(&store, &args.namespace, &args.job)
        .await?
        .is_none()
    {
        return Ok(EXIT_USAGE);
    }
    let now = Timestamp::now();
    let from = if args.from == "now" {
        now
    } else if let Some(at) = parse_instant(&args.from) {
        at
    } else {
        eprintln!(
            "rota: --from {:?} is neither `now` nor an RFC 3339 instant",
            args.from
        );
        return Ok(EXIT_USAGE);
    };
    store
        .set_paused(&args.namespace, &args.job, false, Some(from), now)
        .await?;
    report(out, &args.namespace, &args.job, "resumed", Some(from));
    Ok(0)
}

fn report(out: &Printer, namespace: &str, job: &str, state: &str, from: Option<Timestamp>) {
    if out.is_json() {
        out.json(&json!({
            "namespace": namespace, "job": job, "state": state,
            "resume_from": from.map(|t| t.to_string()),
        }));
    } else {
        let from = from.map(|t| format!(" from {t}")).unwrap_or_default();
        out.text(&format!("{namespace}/{job} {state}{from}\n"));
    }
}

/// The latest stored revision of a job, or `None` after saying on stderr that there is none.
async fn require_stored_job(
    store: &Store,
    namespace: &str,
    job_id: &str,
) -> anyhow::Result<Option<(i64, Job)>> {
    let Some(revision) = store.latest_job_revision(namespace, job_id).await? else {
        eprintln!("rota: no stored job {job_id:?} in namespace {namespace:?}");
        return Ok(None);
    };
    let job: Job = revision
        .job()
        .with_context(|| format!("stored definition of {job_id} does not load"))?;
    Ok(Some((revision.revision, job)))
}

pub async fn next(home: &Home, args: NextArgs, out: &Printer) -> anyhow::Result<u8> {
    let store = home.open_store().await?;
    let Some((_, job)) = require_stored_job(&store, &args.namespace, &args.job).await? else {
        return Ok(EXIT_USAGE);
    };
    let triggers = CompiledTrigger::compile_all(&job)?;
    let origins: BTreeMap<String, Timestamp> = store
        .trigger_states(&args.namespace, &args.job)
        .await?
        .into_iter()
        .map(|(key, state)| (key, state.origin))
        .collect();
    let times: Vec<(Timestamp, String)> =
        upcoming(&triggers, Timestamp::now(), args.count.min(10_000), |key| {
            origins.get(key).copied()
        });
    print_next(out, &times);
    Ok(0)
}

/// `rota schedule next` against a server: `GET …/jobs/{job}/schedule?count=N`.
pub async fn next_remote(remote: &Remote, args: NextArgs, out: &Printer) -> anyhow::Result<u8> {
    #[derive(serde::Deserialize)]
    struct Fire {
        at: Timestamp,
        trigger: String,
    }
    #[derive(serde::Deserialize)]
    struct Schedule {
        next: Vec<Fire>,
    }
    let path = format!("{}/schedule", job_path(&args.namespace, &args.job));
    let schedule: Schedule = remote
        .get(&path, &[("count", args.count.to_string())])
        .await?;
    let times: Vec<(Timestamp, String)> = schedule
        .next
        .into_iter()
        .map(|f| (f.at, f.trigger))
        .collect();
    print_next(out, &times);
    Ok(0)
}

fn print_next(out: &Printer, times: &[(Timestamp, String)]) {
    if out.is_json() {
        let items: Vec<_> = times
            .iter()
            .map(|(at, key)| json!({ "at": at.to_string(), "trigger": key }))
            .collect();
        out.json(&serde_json::Value::Array(items));
    } else {
        let rows: Vec<Vec<String>> = times
            .iter()
            .map(|(at, key)| vec![at.to_string(), key.clone()])
            .collect();
        out.table(&["AT", "TRIGGER"], &rows);
    }
}

/// `rota backfill` against a server: `POST …/jobs/{job}/schedule/backfill`; the runs are
/// queued on the server, which executes them. Printed as local `rota backfill` prints.
pub async fn backfill_remote(
    remote: &Remote,
    args: BackfillArgs,
    out: &Printer,
) -> anyhow::Result<u8> {
    #[derive(serde::Deserialize)]
    struct Item {
        scheduled_at: Timestamp,
        trigger: String,
        run_id: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Done {
        items: Vec<Item>,
    }
    let path = format!("{}/schedule/backfill", job_path(&args.namespace, &args.job));
    let done: Done = remote
        .send(
            Method::POST,
            &path,
            &json!({ "from": args.from, "to": args.to }),
        )
        .await?;
    let rows: Vec<(Timestamp, String, Option<String>)> = done
        .items
        .into_iter()
        .map(|i| (i.scheduled_at, i.trigger, i.run_id))
        .collect();
    print_backfill(out, &rows);
    Ok(0)
}

/// The output of `rota backfill`: one row per occurrence in the range, with the run queued
/// for it or none when it was already recorded.
fn print_backfill(out: &Printer, rows: &[(Timestamp, String, Option<String>)]) {
    if out.is_json() {
        let items: Vec<_> = rows
            .iter()
            .map(|(at, key, run)| {
                json!({
                    "scheduled_at": at.to_string(), "trigger": key, "run_id": run,
                    "queued": run.is_some(),
                })
            })
            .collect();
        out.json(&serde_json::Value::Array(items));
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|(at, key, run)| {
                vec![
                    at.to_string(),
                    key.clone(),
                    run.clone()
                        .unwrap_or_else(|| "already recorded; not run again".to_owned()),
                ]
            })
            .collect();
        out.table(&["SCHEDULED", "TRIGGER", "RUN"], &table);
        let queued = rows.iter().filter(|r| r.2.is_some()).count();
        out.text(&format!(
            "{queued} run(s) queued; rota serve executes them\n"
        ));
    }
}

pub async fn history(home: &Home, args: HistoryArgs, out: &Printer) -> anyhow::Result<u8> {
    let store = home.open_store().await?;
    // An unknown job is an error (as the API's 404), not an empty history.
    if require_stored_job(&store, &args.namespace, &args.job)
        .await?
        .is_none()
    {
        return Ok(EXIT_USAGE);
    }
    let occurrences = store
        .occurrences(&args.namespace, &args.job, args.limit)
        .await?
        .into_iter()
        .map(|o| via_wire(rota_ops::records::Occurrence::from(o)))
        .collect::<anyhow::Result<Vec<OccurrenceView>>>()?;
    print_history(out, &occurrences);
    Ok(0)
}

/// `rota schedule history` against a server.
pub async fn history_remote(
    remote: &Remote,
    args: HistoryArgs,
    out: &Printer,
) -> anyhow::Result<u8> {
    let path = format!("{}/schedule/history", job_path(&args.namespace, &args.job));
    let list: Items<OccurrenceView> = remote
        .get(&path, &[("limit", args.limit.clamp(1, 500).to_string())])
        .await?;
    print_history(out, &list.items);
    Ok(0)
}

fn print_history(out: &Printer, occurrences: &[OccurrenceView]) {
    if out.is_json() {
        out.json(&serde_json::Value::Array(
            occurrences.iter().map(OccurrenceView::json).collect(),
        ));
    } else {
        let rows: Vec<Vec<String>> = occurrences
            .iter()
            .map(|o| {
                vec![
                    o.scheduled_at.to_string(),
                    o.trigger.clone(),
                    o.outcome.clone(),
                    o.run_id
                        .clone()
                        .or_else(|| o.reason.clone())
                        .unwrap_or_default(),
                ]
            })
            .collect();
        out.table(&["SCHEDULED", "TRIGGER", "OUTCOME", "RUN / REASON"], &rows);
    }
}

/// `/api/v1/namespaces/{namespace}/jobs/{job}`.
fn job_path(namespace: &str, job: &str) -> String {
    format!("/api/v1/namespaces/{}/jobs/{}", seg(namespace), seg(job))
}

/// `rota pause` against a server.
pub async fn pause_remote(remote: &Remote, args: PauseArgs, out: &Printer) -> anyhow::Result<u8> {
    let path = format!("{}/schedule/pause", job_path(&args.namespace, &args.job));
    let state: ScheduleStateView = remote.send(Method::POST, &path, &json!({})).await?;
    report(out, &state.namespace, &state.job, "paused", None);
    Ok(0)
}

/// `rota resume` against a server.
pub async fn resume_remote(remote: &Remote, args: ResumeArgs, out: &Printer) -> anyhow::Result<u8> {
    let path = format!("{}/schedule/resume", job_path(&args.namespace, &args.job));
    let state: ScheduleStateView = remote
        .send(Method::POST, &path, &json!({ "from": args.from }))
        .await?;
    let label = if state.paused { "paused" } else { "resumed" };
    report(out, &state.namespace, &state.job, label, state.resume_from);
    Ok(0)
}

/// Most occurrences one `rota backfill` queues; a longer range queues nothing.
const BACKFILL_LIMIT: usize = 10_000;

/// Queues one run per occurrence of the job's cron and start-anchored interval triggers in
/// `[from, to]` (the shared `rota_server::backfill`). An occurrence already recorded (run, skipped or missed) is not run again.
/// The runs wait in the store's queue; `rota serve` executes them under the job's
/// `concurrency`, oldest first.
pub async fn backfill(home: &Home, args: BackfillArgs, out: &Printer) -> anyhow::Result<u8> {
    use rota_server::backfill::{BackfillError, backfill as queue_backfill};
    let store = home.open_store().await?;
    let (Some(from), Some(to)) = (parse_instant(&args.from), parse_instant(&args.to)) else {
        eprintln!("rota: --from and --to must be RFC 3339 instants");
        return Ok(EXIT_USAGE);
    };
    let owner = Owner {
        host: rota_engine::owner::host_name(),
        pid: std::process::id(),
        start_token: rota_engine::owner::own_start_token(),
    };
    let done = queue_backfill(
        &store,
        &args.namespace,
        &args.job,
        from,
        to,
        BACKFILL_LIMIT,
        &owner,
    )
    .await;
    let rows: Vec<(Timestamp, String, Option<String>)> = match done {
        Ok(done) => done
            .into_iter()
            .map(|b| (b.scheduled_at, b.trigger, b.run_id))
            .collect(),
        Err(
            error @ (BackfillError::JobNotFound { .. }
            | BackfillError::Backwards { .. }
            | BackfillError::TooMany { .. }
            | BackfillError::Params(_)),
        ) => {
            eprintln!("rota: {error}");
            return Ok(EXIT_USAGE);
        }
        Err(error) => return Err(error.into()),
    };
    print_backfill(out, &rows);
    Ok(0)
}
