//! `rota runs`, `rota runs show` and `rota cancel`, written once over [`Runs`]: the local
//! store and a server answer with the same records.

use rota_core::model::RunStatus;
use rota_ops::OpsError;
use rota_ops::records::{Run, RunQuery};
use rota_ops::service::Runs;
use serde_json::Value;

use crate::EXIT_USAGE;
use crate::args::{CancelArgs, RunsArgs, RunsCommand};
use crate::output::{self, Printer};
use crate::view::{run_json, step_duration};

/// The largest page asked for at once.
const PAGE: u32 = rota_ops::service::runs::MAX_PAGE;

/// The status filter, checked; `Err` carries the exit code after saying why.
fn status_filter(status: Option<&str>) -> Result<(), u8> {
    match status {
        Some(text) if RunStatus::parse(text).is_none() => {
            eprintln!(
                "rota: unknown status {text:?} (expected one of: queued, running, succeeded, failed, cancelled, timed_out, abandoned)"
            );
            Err(EXIT_USAGE)
        }
        _ => Ok(()),
    }
}

/// `rota runs [--job J] [--status S] [-n NS] [--limit N]` and `rota runs show RUN`.
pub async fn runs<R: Runs>(rota: &R, args: RunsArgs, out: &Printer) -> anyhow::Result<u8> {
    if let Some(RunsCommand::Show { run }) = args.show {
        let Some(run) = find(rota, &run).await? else {
            return Ok(EXIT_USAGE);
        };
        show(out, &run);
        return Ok(0);
    }
    if let Err(code) = status_filter(args.status.as_deref()) {
        return Ok(code);
    }
    let checked = (
        args.namespace
            .map(rota_ops::ids::Namespace::try_from)
            .transpose(),
        args.job.map(rota_ops::ids::JobId::try_from).transpose(),
    );
    let (namespace, job) = match checked {
        (Ok(namespace), Ok(job)) => (namespace, job),
        (Err(message), _) | (_, Err(message)) => {
            eprintln!("rota: {message}");
            return Ok(EXIT_USAGE);
        }
    };
    let wanted = args.limit.clamp(1, 10_000) as usize;
    let mut runs: Vec<Run> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = RunQuery {
            namespace: namespace.clone(),
            job: job.clone(),
            status: args.status.clone(),
            limit: Some((wanted - runs.len()).min(PAGE as usize) as u32),
            cursor,
            ..RunQuery::default()
        };
        let page = rota.list_runs(query).await?;
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

fn print_runs(out: &Printer, runs: &[Run]) {
    if out.is_json() {
        out.json(&Value::Array(runs.iter().map(run_json).collect()));
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

/// Looks a run up by id or unique prefix; says why not and returns `None` when there is
/// no such run or the prefix names several (exit 2). Other failures are errors.
pub async fn find<R: Runs>(rota: &R, run: &str) -> anyhow::Result<Option<Run>> {
    match rota.find_run(run).await {
        Ok(run) => Ok(Some(run)),
        Err(error @ (OpsError::NotFound(_) | OpsError::Ambiguous { .. })) => {
            eprintln!("rota: {error}");
            Ok(None)
        }
        Err(error) if error.is_not_found() => {
            eprintln!("rota: {error}");
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

pub fn show(out: &Printer, run: &Run) {
    if out.is_json() {
        out.json(&run_json(run));
        return;
    }
    let text = format!(
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
    out.text(&text);
    // The links of `job:` steps: this run's parent, and each step's child run.
    let mut links = String::new();
    if let Some(parent) = &run.parent {
        links.push_str(&format!(
            "parent     run {} (step {})\n",
            parent.run, parent.step
        ));
    }
    for step in &run.steps {
        if let Some(child) = &step.child_run {
            links.push_str(&format!("child      run {child} (step {})\n", step.id));
        }
    }
    if !links.is_empty() {
        links.push('\n');
        out.text(&links);
    }
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
                step_duration(step),
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
    if !run.gates.is_empty() {
        out.text("\n");
        out.text(&crate::plan_cmd::gates_text(run));
    }
}

/// `rota cancel RUN`: asks whoever executes the run to stop it (a foreground `rota run`
/// on this machine is also woken at once). A run that already ended exits 1.
pub async fn cancel<R: Runs>(rota: &R, args: CancelArgs, out: &Printer) -> anyhow::Result<u8> {
    let Some(run) = find(rota, &args.run).await? else {
        return Ok(EXIT_USAGE);
    };
    match rota.cancel_run(&run.id).await {
        Ok(_) => {}
        Err(error) if error.is_conflict() => {
            eprintln!("rota: {error}");
            return Ok(1);
        }
        Err(error) => return Err(error.into()),
    }
    if out.is_json() {
        out.json(&serde_json::json!({ "id": run.id, "cancel_requested": true }));
    } else {
        out.text(&format!("cancel requested for run {}\n", run.id));
    }
    Ok(0)
}
