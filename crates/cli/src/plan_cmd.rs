//! `rota plan`, `rota plans`, `rota approve`, `rota reject` and `rota apply`: plan →
//! approve → apply, locally on the store or on a server (`--server`); `approve` and
//! `reject` also decide the `approval:` gate a run waits at.
//!
//! Locally the actor is `local:<user>` (from `USER`, else `LOGNAME`), holding the admin
//! role: it matches `role:…` approvers and an approver listed by the user's name. That is
//! bookkeeping, not authentication (whoever can write the store can act as anyone); the
//! same rules apply, so a user cannot approve their own plan unless the job allows it.
//! `rota plans`, `approve` and `reject` are written once over [`Plans`]. Local `plan`
//! loads a job file and saves its revision first; local `apply` re-reads a job that came
//! from a file (a changed file is a new revision, which the plan then refuses as drift),
//! and both run what they queue in the foreground like `rota run`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rota_core::model::Job;
use rota_ops::Rota;
use rota_ops::records::{CreatePlan, DecideGate, DecidePlan, Plan, PlanQuery, Run};
use rota_ops::service::plans::Verdict;
use rota_ops::service::{Jobs, Plans};

use crate::EXIT_USAGE;
use crate::args::{ApplyArgs, DecideArgs, PlanArgs, PlansArgs, PlansCommand, RunArgs};
use crate::output::{self, Printer};
use crate::run_cmd::Drive;
use crate::run_cmd::{self, UsageError};

/// The statuses a plan can have, as `--status` takes them.
const STATUSES: [&str; 5] = [
    "awaiting_approval",
    "approved",
    "rejected",
    "expired",
    "applied",
];

/// The `rota run` arguments that load and resolve the same job.
fn run_args(
    target: String,
    job: Option<String>,
    namespace: Option<String>,
    params: Vec<(String, String)>,
    params_file: Option<PathBuf>,
) -> RunArgs {
    RunArgs {
        target: Some(target),
        command: None,
        job,
        namespace,
        params,
        params_file,
        dry_run: false,
        argv: Vec::new(),
        detach: false,
        yes: false,
        env_files: Vec::new(),
    }
}

/// `rota plan`: plans a job by its id (or, locally, from its file, saved first as the job's
/// next revision, which the plan pins), with its parameters resolved here; locally its dry
/// run executes in the foreground, on a server it is queued.
pub async fn plan<R: Rota + Drive>(rota: &R, args: PlanArgs, out: &Printer) -> anyhow::Result<u8> {
    let (namespace, job_id) = match rota.here() {
        Some(here) => match save_local_job(here, &args).await? {
            Ok(saved) => saved,
            Err(code) => return Ok(code),
        },
        None if Path::new(&args.target).exists() => {
            eprintln!(
                "rota: with --server, `rota plan` plans a job stored on the server by its id; save {} there first with `rota jobs put {}`",
                args.target, args.target
            );
            return Ok(EXIT_USAGE);
        }
        None => (
            args.namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
            args.target.clone(),
        ),
    };
    let stored = rota.get_job(&namespace, &job_id).await?;
    let job: Job =
        serde_json::from_value(rota_ops::records::durations_from_text(stored.definition))
            .context("the stored definition of the job does not load in this rota")?;
    let run_args = run_args(
        job_id.clone(),
        None,
        Some(namespace.clone()),
        args.params.clone(),
        args.params_file.clone(),
    );
    let params = match run_cmd::resolve_params(&job, &run_args) {
        Ok(params) => params,
        Err(UsageError(message)) => {
            eprintln!("{message}");
            return Ok(EXIT_USAGE);
        }
    };
    let request = CreatePlan {
        params: params.into_iter().collect(),
        dry_run: args.dry_run,
    };
    let plan = rota.create_plan(&namespace, &job_id, request).await?;
    let instance = match rota.here() {
        Some(_) => runbook_instance(&args.target, &job, &plan)?,
        None => None,
    };
    let Some(run_id) = &plan.dry_run_id else {
        print_planned(out, &plan, instance.as_ref());
        return Ok(0);
    };
    let Some(here) = rota.here() else {
        print_plan(out, &plan);
        if !out.is_json() {
            eprintln!("dry run {run_id} queued; follow it with `rota logs -f {run_id}`");
        }
        return Ok(0);
    };
    // The dry run's summary comes first (a JSON line of its own with --output json), then
    // the plan as it is after it.
    let code = run_cmd::claim_and_execute(here.ops(), run_id, out).await?;
    if !out.is_json() {
        out.text("\n");
    }
    print_planned(out, &rota.get_plan(&plan.id).await?, instance.as_ref());
    Ok(code)
}

/// For a runbook file, its dated instance with the prepared copy (`rota plan RUNBOOK`).
fn runbook_instance(
    target: &str,
    job: &Job,
    plan: &Plan,
) -> anyhow::Result<Option<crate::runbook_cmd::Instance>> {
    use rota_core::parse::Format;
    let path = Path::new(target);
    if !path.is_file() || !matches!(Format::from_path(path), Format::Markdown | Format::Notebook) {
        return Ok(None);
    }
    let params = plan.params.as_object().cloned().unwrap_or_default();
    crate::runbook_cmd::write_instance(path, job, &params, &plan.id, &plan.hash).map(Some)
}

/// The plan, and where its runbook's prepared copy was written, if it has one.
fn print_planned(out: &Printer, plan: &Plan, instance: Option<&crate::runbook_cmd::Instance>) {
    let Some(instance) = instance else {
        print_plan(out, plan);
        return;
    };
    if out.is_json() {
        let mut value = serde_json::to_value(plan).unwrap_or_default();
        value["runbook"] = serde_json::to_value(instance).unwrap_or_default();
        out.json(&value);
        return;
    }
    print_plan(out, plan);
    out.text(&format!(
        "runbook  {} (sha256 {})\n",
        instance.copy.display(),
        instance.sha256
    ));
}

/// Loads the job `rota plan` names on this machine (a file, or a stored job's id) and saves
/// it as the job's next revision: `Ok((namespace, job))`, or `Err(exit code)` after saying
/// why it does not load.
async fn save_local_job(
    session: &rota_ops::Session,
    args: &PlanArgs,
) -> anyhow::Result<Result<(String, String), u8>> {
    let ops = session.ops();
    let run_args = run_args(
        args.target.clone(),
        args.job.clone(),
        args.namespace.clone(),
        args.params.clone(),
        args.params_file.clone(),
    );
    let loaded = match run_cmd::load(ops, &run_args).await {
        Ok(loaded) => loaded,
        Err(UsageError(message)) => {
            eprintln!("{message}");
            return Ok(Err(EXIT_USAGE));
        }
    };
    ops.save_loaded(&loaded).await?;
    Ok(Ok((loaded.namespace, loaded.job.id)))
}

/// `rota plans` and `rota plans show ID`.
pub async fn plans<R: Plans>(rota: &R, args: PlansArgs, out: &Printer) -> anyhow::Result<u8> {
    if let Some(PlansCommand::Show { plan }) = args.show {
        print_plan(out, &rota.get_plan(&plan).await?);
        return Ok(0);
    }
    if let Some(status) = args.status.as_deref().filter(|s| !STATUSES.contains(s)) {
        eprintln!(
            "rota: unknown plan status {status:?} (expected one of: {})",
            STATUSES.join(", ")
        );
        return Ok(EXIT_USAGE);
    }
    let namespace = match args.namespace.map(rota_ops::ids::Namespace::try_from) {
        Some(Ok(namespace)) => Some(namespace),
        // No plan is in a namespace that cannot exist.
        Some(Err(_)) => {
            print_list(out, &[]);
            return Ok(0);
        }
        None => None,
    };
    let query = PlanQuery {
        namespace,
        status: args.status,
        limit: Some(args.limit.clamp(1, crate::client::PAGE)),
        cursor: None,
    };
    let page = rota.list_plans(query).await?;
    print_list(out, &page.items);
    Ok(0)
}

/// `rota approve` / `rota reject`.
pub async fn decide<R: Rota + Drive>(
    rota: &R,
    args: DecideArgs,
    verdict: Verdict,
    out: &Printer,
) -> anyhow::Result<u8> {
    // Only a run's failed step is skipped: the id is a run's.
    if args.step.is_none() && verdict != Verdict::Skip {
        match rota.get_plan(&args.plan).await {
            Ok(_) => {}
            // Not a plan: a run waiting at a gate, or nothing (the run lookup says so).
            Err(error) if error.is_not_found() => {
                return decide_gate(rota, args, verdict, out).await;
            }
            Err(error) => return Err(error.into()),
        }
        let decision = DecidePlan {
            comment: args.comment,
            hash: args.hash,
        };
        let plan = rota.decide_plan(&args.plan, verdict, decision).await?;
        print_plan(out, &plan);
        return Ok(0);
    }
    decide_gate(rota, args, verdict, out).await
}

/// `rota approve RUN [--step STEP]` / `rota reject RUN … --reason …`: decides the gate the
/// run waits at. The decision that settles the gate queues the run again: with the local
/// store it then runs here, like `rota run` (unless `--detach`, which leaves it for a
/// `rota serve` on this store); a server runs it itself.
async fn decide_gate<R: Rota + Drive>(
    rota: &R,
    args: DecideArgs,
    verdict: Verdict,
    out: &Printer,
) -> anyhow::Result<u8> {
    let Some(run) = crate::runs_cmd::find(rota, &args.plan).await? else {
        return Ok(EXIT_USAGE);
    };
    let decision = DecideGate {
        step: args.step,
        comment: args.comment,
        hash: args.hash,
    };
    let run = match rota.decide_gate(&run.id, verdict, decision).await {
        Ok(run) => run,
        Err(error) => return run_cmd::refused(error),
    };
    if rota.here().is_some() && !args.detach && run.status == "queued" {
        if !out.is_json() {
            eprintln!("rota: run {} continues here", run.id);
        }
        return rota.drive(run, false, out).await;
    }
    print_gates(out, &run);
    Ok(0)
}

/// A run's gates, or the run as JSON.
pub fn print_gates(out: &Printer, run: &Run) {
    if out.is_json() {
        out.json(&crate::view::run_json(run));
        return;
    }
    out.text(&format!(
        "run {}  {}\n{}",
        run.id,
        run.status,
        gates_text(run)
    ));
}

/// A line per gate of the run (status, approvals, approvers), its hash, then its decisions.
pub fn gates_text(run: &Run) -> String {
    let mut text = String::new();
    for gate in &run.gates {
        let approvals = gate
            .decisions
            .iter()
            .filter(|d| d.decision == "approve")
            .count();
        text.push_str(&format!(
            "gate {}  {} ({approvals} of {} approvals; approvers {})\nhash {}\n",
            gate.step,
            gate.status,
            gate.quorum,
            gate.approvers.join(", "),
            gate.hash
        ));
        for d in &gate.decisions {
            let comment = d
                .comment
                .as_deref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            text.push_str(&format!("  {} {}{comment}\n", d.actor, d.decision));
        }
    }
    text
}

/// `rota apply`: applies the approved plan (refused if it drifted) and runs its run.
/// The run executes here in the foreground (after re-reading the job's file), or on the
/// server, followed from here unless `--detach`.
pub async fn apply<R: Rota + Drive>(
    rota: &R,
    args: ApplyArgs,
    out: &Printer,
) -> anyhow::Result<u8> {
    let mut id = args.plan.clone();
    if let Some(here) = rota.here() {
        if args.detach {
            eprintln!(
                "rota: --detach needs --server: a local run lives in this process (start `rota serve` and use --server)"
            );
            return Ok(EXIT_USAGE);
        }
        let plan = rota.get_plan(&args.plan).await?;
        if let Err(UsageError(message)) = refresh_from_file(here, &plan).await {
            let session = here;
            let target = format!("plan/{}", plan.id);
            session
                .ops()
                .audit(&session.actor(), "plan.apply", &target, "invalid-job")
                .await?;
            eprintln!("{message}");
            return Ok(EXIT_USAGE);
        }
        id = plan.id;
    }
    let run = rota.apply_plan(&id).await?;
    if rota.here().is_some() && !out.is_json() {
        eprintln!("plan {id} applied as run {}", run.id);
    }
    rota.drive(run, args.detach, out).await
}

/// For a job whose latest revision came from a file: loads the file again and saves it
/// (a changed file becomes a new revision, which applying the plan reports as drift).
async fn refresh_from_file(session: &rota_ops::Session, plan: &Plan) -> Result<(), UsageError> {
    let latest = session
        .get_job(&plan.namespace, &plan.job_id)
        .await
        .map(|job| job.source_path);
    let path = match latest {
        Ok(Some(path)) => path,
        Ok(None) => return Ok(()),
        Err(error) if error.is_not_found() => return Ok(()),
        Err(error) => return Err(UsageError(format!("rota: {error}"))),
    };
    if !Path::new(&path).exists() {
        return Ok(());
    }
    let args = run_args(
        path,
        Some(plan.job_id.clone()),
        Some(plan.namespace.clone()),
        Vec::new(),
        None,
    );
    let ops = session.ops();
    let loaded = run_cmd::load(ops, &args).await?;
    ops.save_loaded(&loaded)
        .await
        .map_err(|e| UsageError(format!("rota: {e}")))?;
    Ok(())
}

/// One plan, in full.
fn print_plan(out: &Printer, plan: &Plan) {
    if out.is_json() {
        out.json(&serde_json::to_value(plan).unwrap_or_default());
        return;
    }
    let mut text = format!(
        "plan {}  {}\njob      {}/{} (revision {})\nhash     {}\n",
        plan.id,
        shown_status(plan),
        plan.namespace,
        plan.job_id,
        plan.job_revision,
        plan.hash
    );
    for change in &plan.drift {
        text.push_str(&format!("drift    {change}\n"));
    }
    let params = match &plan.params {
        serde_json::Value::Object(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "-".to_owned(),
    };
    text.push_str(&format!("params   {params}\n"));
    if !plan.secrets.is_empty() {
        let secrets: Vec<String> = plan
            .secrets
            .iter()
            .map(|s| match s.version {
                Some(v) => format!("{} (version {v})", s.name),
                None => format!("{} (not stored: from the environment)", s.name),
            })
            .collect();
        text.push_str(&format!("secrets  {}\n", secrets.join(", ")));
    }
    match &plan.approval {
        Some(rules) => {
            text.push_str(&format!(
                "approval {} of: {}; self-approval {}{}\n",
                rules.quorum,
                rules.approvers.join(", "),
                if rules.allow_self {
                    "allowed"
                } else {
                    "not allowed"
                },
                plan.expires_at
                    .map(|at| format!("; expires {at}"))
                    .unwrap_or_default(),
            ));
            if plan.approvals_needed > 0 {
                text.push_str(&format!(
                    "needs    {} more approval(s): `rota approve {}`\n",
                    plan.approvals_needed, plan.id
                ));
            }
        }
        None => text.push_str("approval none needed\n"),
    }
    text.push_str(&format!(
        "created  by {} at {}\n",
        plan.created_by,
        output::when(Some(plan.created_at))
    ));
    if let Some(id) = &plan.dry_run_id {
        text.push_str(&format!("dry run  {id} (`rota logs {id}`)\n"));
    }
    if let Some(id) = &plan.run_id {
        text.push_str(&format!("run      {id}\n"));
    }
    out.text(&text);
    out.text("\n");
    let rows: Vec<Vec<String>> = plan
        .steps
        .iter()
        .map(|s| vec![s.id.clone(), s.kind.clone(), step_what(s)])
        .collect();
    out.table(&["STEP", "KIND", "WHAT"], &rows);
    if !plan.decisions.is_empty() {
        out.text("\n");
        let rows: Vec<Vec<String>> = plan
            .decisions
            .iter()
            .map(|d| {
                vec![
                    d.decision.clone(),
                    d.actor.clone(),
                    output::when(Some(d.at)),
                    d.comment.clone().unwrap_or_default(),
                ]
            })
            .collect();
        out.table(&["DECISION", "BY", "AT", "COMMENT"], &rows);
    }
}

/// Plans, one per line.
fn print_list(out: &Printer, plans: &[Plan]) {
    if out.is_json() {
        out.json(&serde_json::to_value(plans).unwrap_or_default());
        return;
    }
    let rows: Vec<Vec<String>> = plans
        .iter()
        .map(|p| {
            vec![
                p.id.clone(),
                format!("{}/{}", p.namespace, p.job_id),
                shown_status(p),
                // Counted from the decisions: an expired or rejected plan needs no more
                // approvals, yet has only the ones it got.
                p.approval.as_ref().map_or("-".to_owned(), |rules| {
                    format!("{}/{}", approvals(p), rules.quorum)
                }),
                p.created_by.clone(),
                output::when(Some(p.created_at)),
            ]
        })
        .collect();
    out.table(
        &["ID", "JOB", "STATUS", "APPROVALS", "CREATED BY", "CREATED"],
        &rows,
    );
}

/// What a plan's step runs, in one line: its command, argv, script, notebook, URL or
/// query, described from its resolved definition as shown.
fn step_what(step: &rota_ops::records::PlanStep) -> String {
    rota_core::kinds::describe(&step.kind, &step.resolved["kind"][&step.kind])
}

/// The status to show: `approved` or `awaiting_approval` become `drifted` when what the
/// plan pinned changed since (apply would refuse it).
fn shown_status(plan: &Plan) -> String {
    if plan.drift.is_empty() {
        plan.status.clone()
    } else {
        format!("drifted ({})", plan.status)
    }
}

/// The approvals it has (`approve` decisions), whatever its status.
fn approvals(plan: &Plan) -> usize {
    plan.decisions
        .iter()
        .filter(|d| d.decision == "approve")
        .count()
}
