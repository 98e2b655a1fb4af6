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
use rota_engine::run::RunRequest;
use rota_store::{
    Approver, Decision, NewAuditEntry, NewPlan, NewRun, Owner, PlanError, PlanFilter, PlanRecord,
    PlanStatus, Role, Store,
};
use serde_json::json;

use crate::EXIT_USAGE;
use crate::args::{ApplyArgs, DecideArgs, PlanArgs, PlansArgs, PlansCommand, RunArgs};
use crate::client::{Remote, seg};
use crate::home::Home;
use crate::output::{self, Printer};
use crate::run_cmd::{self, UsageError};
use crate::view::{PlanView, RunView};

/// The local user's name.
fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown-user".to_owned())
}

/// The local actor, as plans and the audit log name it.
fn local_actor() -> String {
    format!("local:{}", user())
}

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
    store
        .append_audit(&NewAuditEntry {
            at: jiff::Timestamp::now(),
            actor: local_actor(),
            action: action.to_owned(),
            target: format!("plan/{plan_id}"),
            source: None,
            result: result.to_owned(),
        })
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

/// Claims the queued run `run_id` and executes it here, like `rota run`.
async fn run_here(
    home: &Home,
    store: &Store,
    run_id: &str,
    job: Job,
    base_dir: PathBuf,
    out: &Printer,
) -> anyhow::Result<u8> {
    let owner = Owner {
        host: rota_engine::owner::host_name(),
        pid: std::process::id(),
        start_token: rota_engine::owner::own_start_token(),
    };
    if !store
        .claim_queued_run(run_id, &owner, jiff::Timestamp::now())
        .await?
    {
        eprintln!(
            "rota: run {run_id} was claimed by a server; follow it with `rota logs -f {run_id}`"
        );
        return Ok(0);
    }
    let run = store.find_run(run_id).await?;
    let secrets = match run_cmd::read_secrets(home, store, &job, &run.namespace).await {
        Ok(secrets) => secrets,
        Err(UsageError(message)) => {
            eprintln!("{message}");
            return Ok(EXIT_USAGE);
        }
    };
    store
        .record_secret_use(run_id, &secrets.uses, jiff::Timestamp::now())
        .await
        .context("cannot record the run's use of secrets")?;
    let params = match run.params.clone() {
        serde_json::Value::Object(map) => map.into_iter().collect(),
        _ => Default::default(),
    };
    let request = RunRequest {
        run_id: run_id.to_owned(),
        job,
        job_revision: run.job_revision,
        namespace: run.namespace.clone(),
        params,
        secrets: secrets.exposed(),
        dry_run: run.dry_run,
        trigger: run.trigger.clone(),
        scheduled_at: None,
        base_dir,
        prior: Vec::new(),
    };
    run_cmd::execute(home, store, request, out, true).await
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
    let job = loaded.job;
    let content = store
        .plan_of(&loaded.namespace, &job, revision.revision, &params)
        .await?;
    let dry_run = args.dry_run.then(|| NewRun::of_plan(&content, true));
    let record = store
        .create_plan(&NewPlan {
            id: rota_store::ids::new_run_id(),
            content,
            approval: job.approval.clone(),
            created_by: local_actor(),
            created_at: jiff::Timestamp::now(),
            dry_run,
        })
        .await?;
    audit(&store, "plan.create", &record.id, "ok").await?;
    let mut code = 0;
    if let Some(run_id) = &record.dry_run_id {
        // The dry run's summary comes first (a JSON line of its own with --output json),
        // then the plan.
        code = run_here(home, &store, run_id, job, loaded.base_dir, out).await?;
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
    let job: Job = serde_json::from_value(rota_api::wire::durations_from_text(stored.definition))
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
        actor: local_actor(),
        name: user(),
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
    let base_dir = match refresh_from_file(&store, &plan).await {
        Ok(dir) => dir,
        Err(UsageError(message)) => {
            audit(&store, "plan.apply", &plan.id, "invalid-job").await?;
            eprintln!("{message}");
            return Ok(EXIT_USAGE);
        }
    };
    let current = store
        .resolve_plan(
            &plan.content.namespace,
            &plan.content.job,
            &plan.content.params,
        )
        .await?;
    let run = NewRun::of_plan(
        current
            .as_ref()
            .map_or(&plan.content, |(content, _)| content),
        false,
    );
    let outcome = store
        .apply_plan(
            &plan.id,
            current.as_ref().map(|(content, _)| content),
            &run,
            &local_actor(),
            jiff::Timestamp::now(),
        )
        .await;
    let result = outcome.as_ref().map_or_else(refusal_slug, |_| "ok");
    audit(&store, "plan.apply", &plan.id, result).await?;
    if let Err(error) = outcome {
        return refused(error);
    }
    let Some((_, job)) = current else {
        return Ok(EXIT_USAGE);
    };
    if !out.is_json() {
        eprintln!("plan {} applied as run {}", plan.id, run.id);
    }
    run_here(home, &store, &run.id, job, base_dir, out).await
}

/// For a job whose latest revision came from a file: loads the file again and saves it
/// (a changed file becomes a new revision, which `apply_plan` reports as drift). Returns
/// the directory steps run in.
async fn refresh_from_file(store: &Store, plan: &PlanRecord) -> Result<PathBuf, UsageError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let latest = store
        .latest_job_revision(&plan.content.namespace, &plan.content.job)
        .await
        .map_err(|e| UsageError(format!("rota: {e}")))?;
    let Some(path) = latest.and_then(|r| r.source_path) else {
        return Ok(cwd);
    };
    if !Path::new(&path).exists() {
        return Ok(Path::new(&path).parent().map_or(cwd, Path::to_owned));
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
    Ok(loaded.base_dir)
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
