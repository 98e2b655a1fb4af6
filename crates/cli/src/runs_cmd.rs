//! `rota runs`, `rota runs show` and `rota cancel`.

use anyhow::Context as _;
use rota_core::model::RunStatus;
use rota_store::{RunFilter, RunRecord, StoreError};
use serde_json::Value;

use crate::EXIT_USAGE;
use crate::args::{CancelArgs, RunsArgs, RunsCommand};
use crate::home::Home;
use crate::output::{self, Printer};

pub async fn runs(home: &Home, args: RunsArgs, out: &Printer) -> anyhow::Result<u8> {
    let store = home.open_store().await?;
    if let Some(RunsCommand::Show { run }) = args.show {
        let Some(record) = find(&store, &run).await? else {
            return Ok(EXIT_USAGE);
        };
        show(out, &record);
        return Ok(0);
    }
    let status = match args.status.as_deref().map(|s| (s, RunStatus::parse(s))) {
        Some((text, None)) => {
            eprintln!(
                "rota: unknown status {text:?} (expected one of: queued, running, succeeded, failed, cancelled, timed_out, abandoned)"
            );
            return Ok(EXIT_USAGE);
        }
        Some((_, status)) => status,
        None => None,
    };
    let filter = RunFilter {
        namespace: args.namespace,
        job_id: args.job,
        status,
        limit: args.limit.clamp(1, 10_000),
        before: None,
    };
    let runs = store.list_runs(&filter).await?;
    if out.is_json() {
        out.json(&Value::Array(runs.iter().map(output::run_json).collect()));
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|run| {
            vec![
                run.id.clone(),
                run.job_id.clone(),
                run.status.as_str().to_owned(),
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
    Ok(0)
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

fn show(out: &Printer, run: &RunRecord) {
    if out.is_json() {
        out.json(&output::run_json(run));
        return;
    }
    let mut text = format!(
        "run        {}\njob        {} (revision {}) in {}\nstatus     {}{}\ntrigger    {}{}\ncreated    {}\nduration   {}\nparams     {}\n\n",
        run.id,
        run.job_id,
        run.job_revision,
        run.namespace,
        run.status.as_str(),
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
    if run.status == RunStatus::Running {
        text.push_str(&format!(
            "owner      pid {} on {}\n\n",
            run.owner.pid, run.owner.host
        ));
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
                step.step_id.clone(),
                step.status.as_str().to_owned(),
                step.exit_code.map_or("-".to_owned(), |c| c.to_string()),
                step.attempts.to_string(),
                output::elapsed(step.started_at, step.finished_at),
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
    let by = format!("rota cancel (pid {})", std::process::id());
    let accepted = store.request_cancel(&run.id, &by).await?;
    if !accepted {
        eprintln!(
            "rota: run {} already finished ({})",
            run.id,
            run.status.as_str()
        );
        return Ok(1);
    }
    // Wake the owning `rota run` at once; it also polls the flag, so a failed signal
    // only delays the cancel.
    let owner = &run.owner;
    if rota_engine::owner::is_alive(&owner.host, owner.pid, &owner.start_token)
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
