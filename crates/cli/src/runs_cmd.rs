//! `rota runs`, `rota runs show` and `rota cancel`, on the local store or a server.

use anyhow::Context as _;
use reqwest::{Method, StatusCode};
use rota_core::model::RunStatus;
use rota_store::{RunFilter, RunRecord, StoreError};
use serde_json::{Value, json};

use crate::EXIT_USAGE;
use crate::args::{CancelArgs, RunsArgs, RunsCommand};
use crate::client::{ApiFailure, Remote, seg};
use crate::home::Home;
use crate::output::{self, Printer};
use crate::view::{RunPageView, RunView};

/// The API's largest page.
const API_PAGE: u32 = 500;
/// Most runs an ambiguous abbreviated id lists (as in local mode).
const AMBIGUOUS_SHOWN: u32 = 10;

/// The status filter, checked; `Err` carries the exit code after saying why.
fn status_filter(status: Option<&str>) -> Result<Option<RunStatus>, u8> {
    match status.map(|s| (s, RunStatus::parse(s))) {
        Some((text, None)) => {
            eprintln!(
                "rota: unknown status {text:?} (expected one of: queued, running, succeeded, failed, cancelled, timed_out, abandoned)"
            );
            Err(EXIT_USAGE)
        }
        Some((_, status)) => Ok(status),
        None => Ok(None),
    }
}

pub async fn runs(home: &Home, args: RunsArgs, out: &Printer) -> anyhow::Result<u8> {
    let store = home.open_store().await?;
    if let Some(RunsCommand::Show { run }) = args.show {
        let Some(record) = find(&store, &run).await? else {
            return Ok(EXIT_USAGE);
        };
        show(out, &RunView::from_record(record)?);
        return Ok(0);
    }
    let status = match status_filter(args.status.as_deref()) {
        Ok(status) => status,
        Err(code) => return Ok(code),
    };
    let filter = RunFilter {
        namespace: args.namespace,
        job_id: args.job,
        status,
        limit: args.limit.clamp(1, 10_000),
        ..RunFilter::default()
    };
    let runs = store
        .list_runs(&filter)
        .await?
        .into_iter()
        .map(RunView::from_record)
        .collect::<anyhow::Result<Vec<_>>>()?;
    print_runs(out, &runs);
    Ok(0)
}

/// `rota runs` against a server: pages through `GET /api/v1/runs` up to `--limit`.
pub async fn runs_remote(remote: &Remote, args: RunsArgs, out: &Printer) -> anyhow::Result<u8> {
    if let Some(RunsCommand::Show { run }) = args.show {
        let run = resolve_remote_run(remote, &run).await?;
        let view: RunView = remote
            .get(&format!("/api/v1/runs/{}", seg(&run)), &[])
            .await?;
        show(out, &view);
        return Ok(0);
    }
    if let Err(code) = status_filter(args.status.as_deref()) {
        return Ok(code);
    }
    let wanted = args.limit.clamp(1, 10_000) as usize;
    let mut runs: Vec<RunView> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![(
            "limit",
            (wanted - runs.len()).min(API_PAGE as usize).to_string(),
        )];
        for (name, value) in [
            ("namespace", &args.namespace),
            ("job", &args.job),
            ("status", &args.status),
            ("cursor", &cursor),
        ] {
            if let Some(value) = value {
                query.push((name, value.clone()));
            }
        }
        let page: RunPageView = remote.get("/api/v1/runs", &query).await?;
        runs.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() || runs.len() >= wanted {
            break;
        }
    }
    runs.truncate(wanted);
    print_runs(out, &runs);
    Ok(0)
}

fn print_runs(out: &Printer, runs: &[RunView]) {
    if out.is_json() {
        out.json(&Value::Array(runs.iter().map(RunView::json).collect()));
        return;
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|run| {
            vec![
                run.id.clone(),
                run.job_id.clone(),
                run.status.clone(),
                output::when(run.started_at.or(Some(run.created_at))),
                output::elapsed(run.started_at, run.finished_at),
                run.trigger.clone(),
                run.namespace.clone(),
            ]
        })
        .collect();
    out.table(
        &[
            "RUN",
            "JOB",
            "STATUS",
            "STARTED",
            "DURATION",
            "TRIGGER",
            "NAMESPACE",
        ],
        &rows,
    );
}

/// Looks a run up by id or unique prefix; prints why not and returns `None` on failure.
pub async fn find(store: &rota_store::Store, run: &str) -> anyhow::Result<Option<RunRecord>> {
    match store.find_run(run).await {
        Ok(record) => Ok(Some(record)),
        Err(error @ (StoreError::RunNotFound(_) | StoreError::Ambiguous { .. })) => {
            eprintln!("rota: {error}");
            Ok(None)
        }
        Err(error) => Err(error).context("cannot look the run up"),
    }
}

pub fn show(out: &Printer, run: &RunView) {
    if out.is_json() {
        out.json(&run.json());
        return;
    }
    let mut text = format!(
        "run        {}\njob        {} (revision {}) in {}\nstatus     {}{}\ntrigger    {}{}\ncreated    {}\nduration   {}\nparams     {}\n\n",
        run.id,
        run.job_id,
        run.job_revision,
        run.namespace,
        run.status,
        run.reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default(),
        run.trigger,
        if run.dry_run { " (dry run)" } else { "" },
        output::when(Some(run.created_at)),
        output::elapsed(run.started_at, run.finished_at),
        run.params,
    );
    if let (Some(RunStatus::Running), Some((pid, host))) = (run.run_status(), &run.owner) {
        text.push_str(&format!("owner      pid {pid} on {host}\n\n"));
    }
    out.text(&text);
    let rows: Vec<Vec<String>> = run
        .steps
        .iter()
        .map(|step| {
            let outputs: Vec<String> = step
                .outputs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            vec![
                step.id.clone(),
                step.status.clone(),
                step.exit_code.map_or("-".to_owned(), |c| c.to_string()),
                step.attempts.to_string(),
                step.duration(),
                outputs.join(" "),
                step.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.table(
        &[
            "STEP", "STATUS", "EXIT", "ATTEMPTS", "DURATION", "OUTPUTS", "REASON",
        ],
        &rows,
    );
}

pub async fn cancel(home: &Home, args: CancelArgs, out: &Printer) -> anyhow::Result<u8> {
    let store = home.open_store().await?;
    let Some(run) = find(&store, &args.run).await? else {
        return Ok(EXIT_USAGE);
    };
    let ops = rota_ops::Ops::new(store.clone());
    let actor = rota_ops::Actor::local();
    let cancelled = ops.cancel_run(&actor, &run.id).await;
    if let Err(rota_ops::OpsError::Conflict(_)) = cancelled {
        eprintln!(
            "rota: run {} already finished ({})",
            run.id,
            run.status.as_str()
        );
        return Ok(1);
    }
    cancelled?;
    ops.audit(&actor, "run.cancel", &format!("run/{}", run.id), "ok")
        .await?;
    // Wake the owning `rota run` at once; it also polls the flag, so a failed signal
    // only delays the cancel. A server's run is left to the server's own poll: the owner
    // there is `rota serve`, which a signal would shut down.
    let owner = &run.owner;
    if run.is_foreground()
        && rota_engine::owner::is_alive(&owner.host, owner.pid, &owner.start_token)
        && owner.host == rota_engine::owner::host_name()
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(owner.pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if out.is_json() {
        out.json(&serde_json::json!({ "id": run.id, "cancel_requested": true }));
    } else {
        out.text(&format!("cancel requested for run {}\n", run.id));
    }
    Ok(0)
}

/// `rota cancel` against a server: `POST /api/v1/runs/{id}/cancel`; the server's worker
/// stops the run. A run that already ended exits 1, as in local mode.
pub async fn cancel_remote(remote: &Remote, args: CancelArgs, out: &Printer) -> anyhow::Result<u8> {
    let run = resolve_remote_run(remote, &args.run).await?;
    let path = format!("/api/v1/runs/{}/cancel", seg(&run));
    match remote
        .send::<_, Value>(Method::POST, &path, &json!({}))
        .await
    {
        Ok(_) => {}
        Err(failure) if failure.is(StatusCode::CONFLICT) => {
            eprintln!("rota: {failure}");
            return Ok(1);
        }
        Err(failure) => return Err(failure.into()),
    }
    if out.is_json() {
        out.json(&json!({ "id": run, "cancel_requested": true }));
    } else {
        out.text(&format!("cancel requested for run {run}\n"));
    }
    Ok(0)
}

/// The whole id of the run `given` names on the server: `given` itself when it is whole,
/// else the one run visible to the token whose id starts with it. A prefix nothing matches,
/// or that the token may not list across namespaces, is passed on as given, so the call
/// made with it reports what the server says about it.
pub async fn resolve_remote_run(remote: &Remote, given: &str) -> Result<String, ApiFailure> {
    if given.len() >= rota_store::ids::RUN_ID_LEN {
        return Ok(given.to_owned());
    }
    let query = [
        ("id_prefix", given.to_owned()),
        ("limit", AMBIGUOUS_SHOWN.to_string()),
    ];
    let Ok(page) = remote.get::<RunPageView>("/api/v1/runs", &query).await else {
        return Ok(given.to_owned());
    };
    let mut ids: Vec<String> = page.items.into_iter().map(|run| run.id).collect();
    match ids.len() {
        0 => Ok(given.to_owned()),
        1 => Ok(ids.remove(0)),
        _ => {
            ids.sort();
            Err(ApiFailure {
                status: None,
                message: StoreError::Ambiguous {
                    prefix: given.to_owned(),
                    candidates: ids,
                }
                .to_string(),
            })
        }
    }
}
