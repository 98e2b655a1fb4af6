//! `rota serve` and the schedule commands around it: `pause`, `resume`, `backfill`,
//! `schedule next`, `schedule history`. The daemon itself lives in `rota-server`; the
//! schedule commands are written once over [`Schedules`], for this machine's store (which
//! a running server reads) or a server alike.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use jiff::Timestamp;
use rota_ops::OpsError;
use rota_ops::records::{
    Backfill, BackfilledOccurrence, FireTime, HistoryQuery, NextQuery, Occurrence, ResumeSchedule,
    ScheduleState,
};
use rota_ops::service::Schedules;
use serde_json::json;

use crate::EXIT_USAGE;
use crate::home::Home;
use crate::output::Printer;

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
    /// Serve HTTPS: the server's certificate chain (PEM, its own certificate first).
    /// Needs `--tls-key`.
    #[arg(long, value_name = "CERT.pem", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1). Needs `--tls-cert`.
    #[arg(long, value_name = "KEY.pem", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// How long the event feed (`/api/v1/events`, its stream) keeps an event: `24h`, `7d`.
    /// Runs and their steps are kept by the namespaces' retention, not this.
    #[arg(long, default_value = "24h", value_name = "DURATION", value_parser = parse_keep)]
    pub event_feed_keep: Duration,
    /// Where run artifacts are kept: a directory, or `s3://BUCKET/PREFIX` on S3 or an
    /// S3-compatible server (endpoint, region and credentials from the usual `AWS_*`
    /// variables; `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint). Default:
    /// `$ROTA_HOME/artifacts`.
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub artifacts: Option<String>,
}

/// `--event-feed-keep`: a duration as job files write them.
fn parse_keep(text: &str) -> Result<Duration, String> {
    rota_core::duration::parse_duration(text).map_err(|e| e.to_string())
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
    rota_ops::host::protect_home(&home.dir)
        .with_context(|| format!("cannot set up {}", home.dir.display()))?;
    let mut config = rota_server::ServeConfig::new(home.dir.clone());
    config.store = home.store.clone();
    config.listen = args.listen;
    config.jobs_dir = args.jobs;
    config.grace = Duration::from_secs(args.grace);
    config.event_feed_keep = args.event_feed_keep;
    config.artifacts = args.artifacts;
    config.auth = match args.auth {
        AuthArg::Token => rota_server::AuthMode::Tokens,
        AuthArg::None => rota_server::AuthMode::None,
    };
    config.tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(rota_server::tls::TlsFiles { cert, key }),
        // clap requires both or neither.
        _ => None,
    };
    config.guardian = rota_ops::host::spawn_guardian();
    rota_server::serve(config, shutdown_signal()).await?;
    Ok(0)
}

/// SIGTERM or SIGINT: stop taking work, let running steps finish within the grace period.
pub(crate) async fn shutdown_signal() {
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
    eprintln!("rota: {name} received, shutting down");
}

/// Most fire times one `rota schedule next` shows.
const MAX_FIRE_TIMES: usize = 10_000;

/// Largest page of history asked for at once (the API's largest page).
const HISTORY_PAGE: u32 = 500;

/// Most occurrences one `rota backfill` on this machine queues; a longer range queues
/// nothing. (The API allows 1,000.)
pub const BACKFILL_LIMIT: usize = 10_000;

/// The outcome of an operation on a job's schedule: an unknown job is said on stderr
/// (`None`, exit 2) in the same words in local and remote mode.
fn known_job<T>(
    outcome: Result<T, OpsError>,
    namespace: &str,
    job: &str,
) -> anyhow::Result<Option<T>> {
    match outcome {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.is_not_found() => {
            eprintln!("rota: no stored job {job:?} in namespace {namespace:?}");
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// An instant as typed (RFC 3339, or a zoned date-time such as
/// `2026-03-01T09:00[Europe/Paris]`) in the RFC 3339 form the operations read.
fn instant_text(text: &str) -> Option<String> {
    text.parse::<Timestamp>()
        .ok()
        .or_else(|| text.parse::<jiff::Zoned>().ok().map(|z| z.timestamp()))
        .map(|at| at.to_string())
}

pub async fn pause<R: Schedules>(rota: &R, args: PauseArgs, out: &Printer) -> anyhow::Result<u8> {
    let outcome = rota.pause_schedule(&args.namespace, &args.job).await;
    let Some(state) = known_job(outcome, &args.namespace, &args.job)? else {
        return Ok(EXIT_USAGE);
    };
    report(out, &state);
    Ok(0)
}

pub async fn resume<R: Schedules>(rota: &R, args: ResumeArgs, out: &Printer) -> anyhow::Result<u8> {
    let from = if args.from == "now" {
        None
    } else if let Some(at) = instant_text(&args.from) {
        Some(at)
    } else {
        eprintln!(
            "rota: --from {:?} is neither `now` nor an RFC 3339 instant",
            args.from
        );
        return Ok(EXIT_USAGE);
    };
    let outcome = rota
        .resume_schedule(&args.namespace, &args.job, ResumeSchedule { from })
        .await;
    let Some(state) = known_job(outcome, &args.namespace, &args.job)? else {
        return Ok(EXIT_USAGE);
    };
    report(out, &state);
    Ok(0)
}

/// `ns/job paused`, `ns/job resumed from <instant>`; JSON names the state in one word.
fn report(out: &Printer, state: &ScheduleState) {
    let label = if state.paused { "paused" } else { "resumed" };
    if out.is_json() {
        out.json(&json!({
            "namespace": state.namespace, "job": state.job, "state": label,
            "resume_from": state.resume_from.map(|t| t.to_string()),
        }));
    } else {
        let from = state
            .resume_from
            .map(|t| format!(" from {t}"))
            .unwrap_or_default();
        out.text(&format!(
            "{}/{} {label}{from}\n",
            state.namespace, state.job
        ));
    }
}

pub async fn next<R: Schedules>(rota: &R, args: NextArgs, out: &Printer) -> anyhow::Result<u8> {
    let query = NextQuery {
        count: u32::try_from(args.count.min(MAX_FIRE_TIMES)).ok(),
    };
    let outcome = rota.schedule_next(&args.namespace, &args.job, query).await;
    let Some(schedule) = known_job(outcome, &args.namespace, &args.job)? else {
        return Ok(EXIT_USAGE);
    };
    print_next(out, &schedule.next);
    Ok(0)
}

fn print_next(out: &Printer, times: &[FireTime]) {
    if out.is_json() {
        let items: Vec<_> = times
            .iter()
            .map(|f| json!({ "at": f.at.to_string(), "trigger": f.trigger }))
            .collect();
        out.json(&serde_json::Value::Array(items));
    } else {
        let rows: Vec<Vec<String>> = times
            .iter()
            .map(|f| vec![f.at.to_string(), f.trigger.clone()])
            .collect();
        out.table(&["AT", "TRIGGER"], &rows);
    }
}

/// Queues one run per occurrence of the job's cron and start-anchored interval triggers in
/// `[from, to]`. An occurrence already recorded (run, skipped or missed) is not run again.
/// The runs wait in the store's queue; `rota serve` executes them under the job's
/// `concurrency`, oldest first.
pub async fn backfill<R: Schedules>(
    rota: &R,
    args: BackfillArgs,
    out: &Printer,
) -> anyhow::Result<u8> {
    let (Some(from), Some(to)) = (instant_text(&args.from), instant_text(&args.to)) else {
        eprintln!("rota: --from and --to must be RFC 3339 instants");
        return Ok(EXIT_USAGE);
    };
    let outcome = rota
        .backfill_schedule(&args.namespace, &args.job, Backfill { from, to })
        .await;
    let Some(done) = known_job(outcome, &args.namespace, &args.job)? else {
        return Ok(EXIT_USAGE);
    };
    print_backfill(out, &done.items);
    Ok(0)
}

/// The output of `rota backfill`: one row per occurrence in the range, with the run queued
/// for it or none when it was already recorded.
fn print_backfill(out: &Printer, rows: &[BackfilledOccurrence]) {
    if out.is_json() {
        let items: Vec<_> = rows
            .iter()
            .map(|o| {
                json!({
                    "scheduled_at": o.scheduled_at.to_string(), "trigger": o.trigger,
                    "run_id": o.run_id, "queued": o.run_id.is_some(),
                })
            })
            .collect();
        out.json(&serde_json::Value::Array(items));
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|o| {
                vec![
                    o.scheduled_at.to_string(),
                    o.trigger.clone(),
                    o.run_id
                        .clone()
                        .unwrap_or_else(|| "already recorded; not run again".to_owned()),
                ]
            })
            .collect();
        out.table(&["SCHEDULED", "TRIGGER", "RUN"], &table);
        let queued = rows.iter().filter(|o| o.run_id.is_some()).count();
        out.text(&format!(
            "{queued} run(s) queued; rota serve executes them\n"
        ));
    }
}

/// The job's newest `--limit` occurrences, page by page. An unknown job is an error (as
/// the API's 404), not an empty history.
pub async fn history<R: Schedules>(
    rota: &R,
    args: HistoryArgs,
    out: &Printer,
) -> anyhow::Result<u8> {
    let wanted = args.limit as usize;
    let mut occurrences: Vec<Occurrence> = Vec::new();
    let mut cursor = None;
    loop {
        let left = u32::try_from(wanted - occurrences.len()).unwrap_or(HISTORY_PAGE);
        let query = HistoryQuery {
            limit: Some(left.clamp(1, HISTORY_PAGE)),
            cursor: cursor.take(),
        };
        let outcome = rota
            .schedule_history(&args.namespace, &args.job, query)
            .await;
        let Some(page) = known_job(outcome, &args.namespace, &args.job)? else {
            return Ok(EXIT_USAGE);
        };
        occurrences.extend(page.items);
        occurrences.truncate(wanted);
        match page.next_cursor {
            Some(next) if occurrences.len() < wanted => cursor = Some(next),
            _ => break,
        }
    }
    print_history(out, &occurrences);
    Ok(0)
}

fn print_history(out: &Printer, occurrences: &[Occurrence]) {
    if out.is_json() {
        out.json(&serde_json::Value::Array(
            occurrences.iter().map(occurrence_json).collect(),
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

/// The JSON of `rota schedule history --output json`: the record, keys in the order the
/// CLI always printed them.
fn occurrence_json(o: &Occurrence) -> serde_json::Value {
    json!({
        "scheduled_at": o.scheduled_at.to_string(),
        "trigger": o.trigger,
        "outcome": o.outcome,
        "run_id": o.run_id,
        "reason": o.reason,
        "recorded_at": o.recorded_at.to_string(),
    })
}
