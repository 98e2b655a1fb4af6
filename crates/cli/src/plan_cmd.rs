//! `rota plan`, `rota plans`, `rota approve`, `rota reject` and `rota apply`: plan →
//! approve → apply, locally on the store or on a server (`--server`).
//!
//! Locally the actor is `local:<user>` (from `USER`, else `LOGNAME`), holding the admin
//! role: it matches `role:…` approvers and an approver listed by the user's name. That is
//! bookkeeping, not authentication (whoever can write the store can act as anyone); the
//! same rules apply, so a user cannot approve their own plan unless the job allows it.
//! Local `apply` re-reads a job that came from a file (a changed file is a new revision,
//! which the plan then refuses as drift), queues the run in the transaction that applies
//! the plan, claims it and runs it in the foreground like `rota run`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rota_core::model::Job;
use rota_store::{Approver, Decision, PlanError, PlanFilter, PlanRecord, PlanStatus, Role, Store};
use serde_json::json;

use crate::EXIT_USAGE;
use crate::args::{ApplyArgs, DecideArgs, PlanArgs, PlansArgs, PlansCommand, RunArgs};
use crate::client::{Remote, seg};
use crate::home::Home;
use crate::output::{self, Printer};
use crate::run_cmd::{self, UsageError};
use crate::view::{PlanView, RunView};

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
    }
}

/// Appends the audit entry of a local plan action.
async fn audit(store: &Store, action: &str, plan_id: &str, result: &str) -> anyhow::Result<()> {
    rota_ops::Ops::new(store.clone())
        .audit(
            &rota_ops::Actor::local(),
            action,
            &format!("plan/{plan_id}"),
            result,
        )
        .await
        .context("cannot append to the audit log")?;
    Ok(())
}

/// The audit result of a refusal: the API's problem slug for the same refusal.
fn refusal_slug(error: &PlanError) -> &'static str {
    match error {
        PlanError::NotFound(_) => "not-found",
        PlanError::NotApprover { .. } => "forbidden",
        PlanError::Store(_) => "internal",
        _ => "conflict",
    }
}

/// `rota plan`, locally.
pub async fn plan(home: &Home, args: PlanArgs, out: &Printer) -> anyhow::Result<u8> {
    let store = home.open_store().await?;
    let run_args = run_args(
        args.target.clone(),
        args.job.clone(),
        args.namespace.clone(),
        args.params.clone(),
        args.params_file.clone(),
    );
    let loaded = match run_cmd::load(&store, &run_args).await {
        Ok(loaded) => loaded,
        Err(UsageError(message)) => {
            eprintln!("{message}");
            return Ok(EXIT_USAGE);
        }
    };
    let params = match run_cmd::resolve_params(&loaded.job, &run_args) {
        Ok(params) => params,
        Err(UsageError(message)) => {
            eprintln!("{message}");
            return Ok(EXIT_USAGE);
        }
    };
    // The plan pins the revision its parameters were resolved against.
    let revision = run_cmd::save_revision(&store, &loaded).await?;
    let record = home
        .ops(&store)
        .create_plan(
            &rota_ops::Actor::local(),
            &loaded.namespace,
            &loaded.job,
            revision.revision,
            &params,
            args.dry_run,
        )
        .await?;
    audit(&store, "plan.create", &record.id, "ok").await?;
    let mut code = 0;
    if let Some(run_id) = &record.dry_run_id {
        // The dry run's summary comes first (a JSON line of its own with --output json),
        // then the plan.
        code = run_cmd::claim_and_execute(home, &home.ops(&store), run_id, out).await?;
        if !out.is_json() {
            out.text("\n");
        }
    }
    print_plan(
        out,
        &PlanView::from_record(&store, store.find_plan(&record.id).await?).await?,
    );
    Ok(code)
}

/// `rota plan` on a server: the job must be stored there.
pub async fn plan_remote(remote: &Remote, args: PlanArgs, out: &Printer) -> anyhow::Result<u8> {
    if Path::new(&args.target).exists() {
        eprintln!(
            "rota: with --server, `rota plan` plans a job stored on the server by its id; save {} there first with `rota jobs put {}`",
            args.target, args.target
        );
        return Ok(EXIT_USAGE);
    }
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let job_path = format!(
        "/api/v1/namespaces/{}/jobs/{}",
        seg(&namespace),
        seg(&args.target)
    );
    #[derive(serde::Deserialize)]
    struct StoredJob {
        definition: serde_json::Value,
    }
    let stored: StoredJob = remote.get(&job_path, &[]).await?;
    let job: Job = serde_json::from_value(rota_ops::records::durations_from_text(stored.definition))
        .context("the server's definition of the job does not load in this rota")?;
    let run_args = run_args(
        args.target.clone(),
        None,
        Some(namespace),
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
    let body = json!({ "params": params, "dry_run": args.dry_run });
    let wire: serde_json::Value = remote
        .send(reqwest::Method::POST, &format!("{job_path}/plans"), &body)
        .await?;
    let view = PlanView::from_wire(wire)?;
    print_plan(out, &view);
    if let (Some(run_id), false) = (&view.dry_run_id, out.is_json()) {
        eprintln!("dry run {run_id} queued; follow it with `rota logs -f {run_id}`");
    }
    Ok(0)
}

/// `rota plans`, locally.
pub async fn plans(home: &Home, args: PlansArgs, out: &Printer) -> anyhow::Result<u8> {
    let store = home.open_store().await?;
    if let Some(PlansCommand::Show { plan }) = args.show {
        return match store.find_plan(&plan).await {
            Ok(record) => {
                print_plan(out, &PlanView::from_record(&store, record).await?);
                Ok(0)
            }
            Err(error) => refused(error),
        };
    }
    let status = match args.status.as_deref().map(str::parse::<PlanStatus>) {
        Some(Err(e)) => {
            eprintln!(
                "rota: {e} (expected one of: awaiting_approval, approved, rejected, expired, applied)"
            );
            return Ok(EXIT_USAGE);
        }
        Some(Ok(status)) => Some(status),
        None => None,
    };
    let records = store
        .list_plans(&PlanFilter {
            namespace: args.namespace.clone(),
            status,
            limit: args.limit.clamp(1, 1000),
            before: None,
        })
        .await?;
    let mut views = Vec::with_capacity(records.len());
    for record in records {
        views.push(PlanView::from_record(&store, record).await?);
    }
    print_list(out, &views);
    Ok(0)
}

/// `rota plans` on a server.
pub async fn plans_remote(remote: &Remote, args: PlansArgs, out: &Printer) -> anyhow::Result<u8> {
    if let Some(PlansCommand::Show { plan }) = args.show {
        let wire: serde_json::Value = remote
            .get(&format!("/api/v1/plans/{}", seg(&plan)), &[])
            .await?;
        print_plan(out, &PlanView::from_wire(wire)?);
        return Ok(0);
    }
    let mut query = vec![("limit", args.limit.clamp(1, 500).to_string())];
    for (name, value) in [("namespace", &args.namespace), ("status", &args.status)] {
        if let Some(value) = value {
            query.push((name, value.clone()));
        }
    }
    #[derive(serde::Deserialize)]
    struct Page {
        items: Vec<serde_json::Value>,
    }
    let page: Page = remote.get("/api/v1/plans", &query).await?;
    let views = page
        .items
        .into_iter()
        .map(PlanView::from_wire)
        .collect::<anyhow::Result<Vec<_>>>()?;
    print_list(out, &views);
    Ok(0)
}

/// A refused plan action: its explanation on stderr, exit 2.
fn refused(error: PlanError) -> anyhow::Result<u8> {
    match error {
        PlanError::Store(e) => Err(e.into()),
        other => {
            eprintln!("rota: {other}");
            Ok(EXIT_USAGE)
        }
    }
}

/// `rota approve` / `rota reject`, locally.
pub async fn decide(
    home: &Home,
    args: DecideArgs,
    approve: bool,
    out: &Printer,
) -> anyhow::Result<u8> {
    let store = home.open_store().await?;
    let (decision, action) = if approve {
        (Decision::Approve, "plan.approve")
    } else {
        (Decision::Reject, "plan.reject")
    };
    let plan = match store.find_plan(&args.plan).await {
        Ok(plan) => plan,
        Err(error) => return refused(error),
    };
    let who = Approver {
        actor: rota_ops::Actor::local().name,
        name: rota_ops::local_user(),
        role: Some(Role::Admin),
    };
    let outcome = store
        .decide_plan(
            &plan.id,
            &who,
            decision,
            args.comment.as_deref(),
            args.hash.as_deref(),
            jiff::Timestamp::now(),
        )
        .await;
    let result = outcome.as_ref().map_or_else(refusal_slug, |_| "ok");
    audit(&store, action, &plan.id, result).await?;
    match outcome {
        Ok(record) => {
            print_plan(out, &PlanView::from_record(&store, record).await?);
            Ok(0)
        }
        Err(error) => refused(error),
    }
}

/// `rota approve` / `rota reject` on a server.
pub async fn decide_remote(
    remote: &Remote,
    args: DecideArgs,
    approve: bool,
    out: &Printer,
) -> anyhow::Result<u8> {
    let action = if approve { "approve" } else { "reject" };
    let mut body = serde_json::Map::new();
    if let Some(comment) = &args.comment {
        body.insert("comment".into(), json!(comment));
    }
    if let Some(hash) = &args.hash {
        body.insert("hash".into(), json!(hash));
    }
    let wire: serde_json::Value = remote
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/plans/{}/{action}", seg(&args.plan)),
            &body,
        )
        .await?;
    print_plan(out, &PlanView::from_wire(wire)?);
    Ok(0)
}

/// `rota apply`, locally: checks and applies the plan, then runs it here.
pub async fn apply(home: &Home, args: ApplyArgs, out: &Printer) -> anyhow::Result<u8> {
    if args.detach {
        eprintln!(
            "rota: --detach needs --server: a local run lives in this process (start `rota serve` and use --server)"
        );
        return Ok(EXIT_USAGE);
    }
    let store = home.open_store().await?;
    let plan = match store.find_plan(&args.plan).await {
        Ok(plan) => plan,
        Err(error) => return refused(error),
    };
    match refresh_from_file(&store, &plan).await {
        Ok(()) => {}
        Err(UsageError(message)) => {
            audit(&store, "plan.apply", &plan.id, "invalid-job").await?;
            eprintln!("{message}");
            return Ok(EXIT_USAGE);
        }
    };
    let outcome = home
        .ops(&store)
        .apply_plan(&rota_ops::Actor::local(), &plan.id)
        .await;
    let result = outcome.as_ref().map_or_else(refusal_slug, |_| "ok");
    audit(&store, "plan.apply", &plan.id, result).await?;
    let run_id = match outcome {
        Ok(run_id) => run_id,
        Err(error) => return refused(error),
    };
    if !out.is_json() {
        eprintln!("plan {} applied as run {run_id}", plan.id);
    }
    run_cmd::claim_and_execute(home, &home.ops(&store), &run_id, out).await
}

/// For a job whose latest revision came from a file: loads the file again and saves it
/// (a changed file becomes a new revision, which `apply_plan` reports as drift).
async fn refresh_from_file(store: &Store, plan: &PlanRecord) -> Result<(), UsageError> {
    let latest = store
        .latest_job_revision(&plan.content.namespace, &plan.content.job)
        .await
        .map_err(|e| UsageError(format!("rota: {e}")))?;
    let Some(path) = latest.and_then(|r| r.source_path) else {
        return Ok(());
    };
    if !Path::new(&path).exists() {
        return Ok(());
    }
    let args = run_args(
        path,
        Some(plan.content.job.clone()),
        Some(plan.content.namespace.clone()),
        Vec::new(),
        None,
    );
    let loaded = run_cmd::load(store, &args).await?;
    run_cmd::save_revision(store, &loaded)
        .await
        .map_err(|e| UsageError(format!("rota: {}", crate::error_text(&e))))?;
    Ok(())
}

/// `rota apply` on a server: queues the run and, unless `--detach`, follows it.
pub async fn apply_remote(remote: &Remote, args: ApplyArgs, out: &Printer) -> anyhow::Result<u8> {
    let run: RunView = remote
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/plans/{}/apply", seg(&args.plan)),
            &json!({}),
        )
        .await?;
    run_cmd::follow_remote(remote, run, args.detach, None, out).await
}

/// One plan, in full.
fn print_plan(out: &Printer, plan: &PlanView) {
    if out.is_json() {
        out.json(&plan.wire);
        return;
    }
    let mut text = format!(
        "plan {}  {}\njob      {}/{} (revision {})\nhash     {}\n",
        plan.id,
        plan.shown_status(),
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
        .map(|s| vec![s.id.clone(), s.kind.clone(), s.what()])
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
fn print_list(out: &Printer, plans: &[PlanView]) {
    if out.is_json() {
        out.json(&serde_json::Value::Array(
            plans.iter().map(|p| p.wire.clone()).collect(),
        ));
        return;
    }
    let rows: Vec<Vec<String>> = plans
        .iter()
        .map(|p| {
            vec![
                p.id.clone(),
                format!("{}/{}", p.namespace, p.job_id),
                p.shown_status(),
                // Counted from the decisions: an expired or rejected plan needs no more
                // approvals, yet has only the ones it got.
                p.approval.as_ref().map_or("-".to_owned(), |rules| {
                    format!("{}/{}", p.approvals(), rules.quorum)
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
