//! Plan review in headless Chromium against a real `rota serve`: a plan made from the job
//! page, the self-approval refusal, a second user's approval and Apply landing on the run;
//! the dry run link, a viewer's refusal, a rejection; and drift (the job file changed after
//! approval) refused at Apply with what changed. Waits poll the page or the API with a generous bound; nothing is timed.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::browser::{BROWSER, Fixture};
use crate::support::{PATIENCE, TestResult};

/// A job under approval rules: any operator but the plan's creator may approve, once.
const GATED: &str = r#"id: gated
params:
  target: { type: string, default: blue }
secrets: [DEPLOY_TOKEN]
approval:
  approvers: ["role:operator"]
  quorum: 1
  allow_self: false
steps:
  - id: prepare
    sh: echo "preparing {{ params.target }}"
  - id: deploy
    needs: [prepare]
    sh: echo "deploying {{ params.target }}"
    env: { TOKEN: "{{ secrets.DEPLOY_TOKEN }}" }
"#;

/// An API call with the admin token; the parsed answer, or an error naming the status.
pub(crate) async fn admin_api(
    f: &Fixture,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, Box<dyn std::error::Error>> {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}/api/v1{path}", f.server.base))
        .bearer_auth(f.server.admin_token()?);
    if let Some(body) = body {
        request = request.json(&body);
    }
    Ok(request.send().await?.error_for_status()?.json().await?)
}

/// A fixture serving the gated job, with its secret stored (version 1).
async fn gated() -> Result<Fixture, Box<dyn std::error::Error>> {
    let f = Fixture::with_jobs(&[("gated.yaml", GATED)], &[]).await?;
    admin_api(
        &f,
        reqwest::Method::PUT,
        "/namespaces/default/secrets/DEPLOY_TOKEN",
        Some(json!({"value": "s3cr3t-deploy-value"})),
    )
    .await?;
    Ok(f)
}

/// Makes a plan from the job page with `target` (and a dry run of it when `dry_run`) and
/// returns its id (from the address).
async fn plan_from_job_page(
    f: &Fixture,
    target: &str,
    dry_run: bool,
) -> Result<String, Box<dyn std::error::Error>> {
    f.open("/jobs/default/gated").await?;
    f.browser.type_into("#param-target", target).await?;
    if dry_run {
        f.browser.click("#dry-run").await?;
    }
    f.browser.click("#plan-job").await?;
    let hash = f
        .browser
        .wait_for(
            "the plan page",
            "return location.hash.startsWith('#/plans/') && location.hash",
        )
        .await?;
    let id = hash
        .as_str()
        .and_then(|h| h.strip_prefix("#/plans/"))
        .ok_or("no plan id in the address")?
        .to_owned();
    f.wait_text("#plan-status", "awaiting approval").await?;
    Ok(id)
}

/// Signs out and in again with a new operator token (roles in every namespace).
async fn sign_in_as_operator(f: &Fixture) -> TestResult {
    let operator = f.server.create_token("operator", None).await?;
    f.browser.click("#sign-out").await?;
    f.sign_in_with(&operator).await
}

#[tokio::test]
async fn a_plan_from_the_job_page_is_refused_to_its_creator_then_approved_and_applied() -> TestResult
{
    let _one = BROWSER.lock().await;
    let f = gated().await?;
    f.sign_in().await?;

    // The job page says runs go through plans, and Run is not offered.
    f.open("/jobs/default/gated").await?;
    f.wait_text("#run-needs-plan", "runs go through a plan")
        .await?;
    let run_disabled = f
        .browser
        .js(
            "return document.querySelector('#run-job').disabled",
            json!([]),
        )
        .await?;
    assert_eq!(run_disabled, json!(true), "Run is offered on a gated job");

    let id = plan_from_job_page(&f, "green", false).await?;

    // Everything a reviewer needs: steps in order with their rendered commands, the
    // secret as its template text with its version, parameters, rules and the full hash.
    let plan = admin_api(&f, reqwest::Method::GET, &format!("/plans/{id}"), None).await?;
    let hash = plan["hash"].as_str().ok_or("no hash")?.to_owned();
    assert_eq!(f.browser.text("#plan-hash").await?, hash);
    let steps = f
        .browser
        .js(
            "return [...document.querySelectorAll('#plan-steps > li')].map(li => [li.dataset.step, li.dataset.kind, li.querySelector('.step-text').textContent])",
            json!([]),
        )
        .await?;
    assert_eq!(
        steps,
        json!([
            ["prepare", "sh", "echo \"preparing green\""],
            ["deploy", "sh", "echo \"deploying green\""]
        ])
    );
    f.wait_text("#plan-steps", "TOKEN={{ secrets.DEPLOY_TOKEN }}")
        .await?;
    f.wait_text("#plan-secrets", "DEPLOY_TOKEN").await?;
    f.wait_text("#plan-secrets", "version 1").await?;
    f.wait_text("#plan-params", "green").await?;
    f.wait_text("#plan-rules", "role:operator").await?;
    f.wait_text("#plan-rules", "not allowed").await?;
    let leaked = f
        .browser
        .js(
            "return document.body.textContent.includes('s3cr3t-deploy-value')",
            json!([]),
        )
        .await?;
    assert_eq!(leaked, json!(false), "a secret value is shown");
    // Only the decision buttons apply while it awaits approval.
    let buttons = f
        .browser
        .js(
            "return ['#approve-plan', '#reject-plan', '#apply-plan'].map(s => !!document.querySelector(s))",
            json!([]),
        )
        .await?;
    assert_eq!(buttons, json!([true, true, false]));

    // Its creator may not approve it: the server's 409 detail is shown.
    f.browser.click("#approve-plan").await?;
    f.wait_text("#plan-action-status", "may not approve it")
        .await?;
    f.wait_text("#plan-action-status", "allow_self: false")
        .await?;
    f.wait_text("#plan-status", "awaiting approval").await?;

    // `g p` opens the plans list, which shows it with no approval of one needed.
    f.browser.keyboard("gp").await?;
    f.browser
        .wait_for(
            "the plans list",
            &format!(
                "const r = document.querySelector('#plans-table tr[data-plan=\"{id}\"]'); \
                 return !!r && r.dataset.status === 'awaiting_approval' && r.querySelector('[data-approvals]').textContent === '0 / 1';"
            ),
        )
        .await?;

    // Another operator approves it from the list, with a comment bound to the hash shown.
    sign_in_as_operator(&f).await?;
    f.open("/plans").await?;
    f.browser
        .click(&format!("#plans-table a[href='#/plans/{id}']"))
        .await?;
    f.browser
        .type_into("#decision-comment", "looks right")
        .await?;
    // Record what the page sends, to check that the decision carries the hash it showed.
    f.browser
        .js(
            "const send = window.fetch; window.sentBodies = []; \
             window.fetch = (url, init) => { window.sentBodies.push([String(url), init && init.body]); return send(url, init); }; \
             return true;",
            json!([]),
        )
        .await?;
    f.browser.click("#approve-plan").await?;
    f.browser
        .wait_for(
            "the plan to be approved",
            "return document.querySelector('#plan-status')?.dataset.status === 'approved'",
        )
        .await?;
    f.wait_text("#plan-decisions", "looks right").await?;
    f.wait_text("#plan-decisions", "ui test operator").await?;
    let sent = f
        .browser
        .js(
            "return window.sentBodies.find(([url]) => url.endsWith('/approve'))?.[1] ?? null",
            json!([]),
        )
        .await?;
    let sent: Value = serde_json::from_str(sent.as_str().ok_or("no approve request seen")?)?;
    assert_eq!(sent, json!({"hash": hash, "comment": "looks right"}));

    // Apply lands on the new run, which runs the reviewed steps to success.
    f.browser.click("#apply-plan").await?;
    f.browser
        .wait_for("the run page", "return location.hash.startsWith('#/runs/')")
        .await?;
    f.browser
        .wait_for(
            "the applied run to succeed",
            "return document.querySelector('#run-status')?.dataset.status === 'succeeded'",
        )
        .await?;
    f.wait_text("#log", "deploying green").await?;
    f.open(&format!("/plans/{id}")).await?;
    f.wait_text("#plan-status", "applied").await?;
    f.browser.find("#plan-run").await?;
    let buttons = f
        .browser
        .js(
            "return ['#approve-plan', '#reject-plan', '#apply-plan'].some(s => !!document.querySelector(s))",
            json!([]),
        )
        .await?;
    assert_eq!(buttons, json!(false), "an applied plan offers actions");
    Ok(())
}

#[tokio::test]
async fn a_rejected_plan_ends_and_an_approved_one_refuses_apply_after_the_job_changed() -> TestResult
{
    let _one = BROWSER.lock().await;
    let f = gated().await?;
    f.sign_in().await?;
    let rejected = plan_from_job_page(&f, "red", true).await?;
    let drifting = plan_from_job_page(&f, "blue", false).await?;

    // The dry run made with the first plan is linked; its log shows what would run.
    f.open(&format!("/plans/{rejected}")).await?;
    f.browser.click("#dry-run-link").await?;
    f.browser
        .wait_for(
            "the dry run to end",
            "const s = document.querySelector('#run-status')?.dataset.status; \
             return !!s && !['queued', 'running'].includes(s);",
        )
        .await?;
    f.wait_text("#run-summary", "dry run").await?;
    f.wait_text("#log", "would run").await?;
    f.wait_text("#log", "preparing red").await?;

    // A viewer may read the plan but not decide: the server's 403 is shown.
    let viewer = f.server.create_token("viewer", None).await?;
    f.browser.click("#sign-out").await?;
    f.sign_in_with(&viewer).await?;
    f.open(&format!("/plans/{rejected}")).await?;
    f.browser.click("#approve-plan").await?;
    f.wait_text("#plan-action-status", "Permission denied")
        .await?;
    f.wait_text("#plan-status", "awaiting approval").await?;

    sign_in_as_operator(&f).await?;

    // A rejection, with its comment, ends the plan: no more buttons.
    f.open(&format!("/plans/{rejected}")).await?;
    f.browser
        .type_into("#decision-comment", "not today")
        .await?;
    f.browser.click("#reject-plan").await?;
    f.browser
        .wait_for(
            "the plan to be rejected",
            "return document.querySelector('#plan-status')?.dataset.status === 'rejected' \
             && !document.querySelector('#approve-plan') && !document.querySelector('#apply-plan')",
        )
        .await?;
    f.wait_text("#plan-decisions", "not today").await?;

    // The list filters by status.
    f.open("/plans?status=rejected").await?;
    f.browser
        .wait_for(
            "only the rejected plan",
            &format!(
                "return [...document.querySelectorAll('#plans-table tbody tr[data-plan]')].map(r => r.dataset.plan).join(',') === '{rejected}'"
            ),
        )
        .await?;

    // Approve the other, then change the job file before applying it.
    f.open(&format!("/plans/{drifting}")).await?;
    f.browser.click("#approve-plan").await?;
    f.browser.find("#apply-plan").await?;
    let file = f.server.dir.path().join("jobs/gated.yaml");
    std::fs::write(
        &file,
        GATED.replace("echo \"deploying", "echo \"now deploying"),
    )?;
    let start = Instant::now();
    loop {
        let job = admin_api(
            &f,
            reqwest::Method::GET,
            "/namespaces/default/jobs/gated",
            None,
        )
        .await?;
        if job["revision"] == json!(2) {
            break;
        }
        if start.elapsed() > PATIENCE {
            return Err(format!("the server never loaded the changed job: {job}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    f.browser.click("#apply-plan").await?;
    f.wait_text("#plan-action-status", "job revision 1 → 2")
        .await?;
    f.wait_text("#plan-status", "approved").await?;
    let on_plan = f.browser.js("return location.hash", json!([])).await?;
    assert_eq!(
        on_plan,
        json!(format!("#/plans/{drifting}")),
        "a refused apply navigated away"
    );
    Ok(())
}
