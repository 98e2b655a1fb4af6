//! `approval:` gates in the middle of a run, decided in headless Chromium against a real
//! `rota serve`: the runs list sets a waiting run apart; the run page shows the gate (its
//! rendered message, approvals against the quorum, approvers, hash) and the server's
//! refusals (not an approver, a second decision); two approvers' approvals let the run
//! go on to success, and a rejection with a reason fails the gate and runs the
//! `when: failure` step. Waits poll the page with a generous bound; nothing is timed.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::browser::{BROWSER, Fixture};
use crate::plans::admin_api;
use crate::support::{PATIENCE, TestResult};

/// A gate after `build` that two of the approvers named must approve.
const GATED: &str = r#"id: gated
steps:
  - id: build
    sh: echo "version=1.2.3" >> "$ROTA_OUTPUT"
  - id: gate
    needs: [build]
    approval: { approvers: [alice, bob], quorum: 2, message: "Deploy {{ steps.build.outputs.version }}?" }
  - id: deploy
    needs: [gate]
    sh: echo deployed
  - id: on-fail
    needs: [gate]
    when: failure
    sh: echo gate failed
"#;

/// Starts a run of `gated` as the admin and returns its id once it waits at the gate.
async fn run_to_the_gate(f: &Fixture) -> Result<String, Box<dyn std::error::Error>> {
    run_job_to_a_gate(f, "gated").await
}

/// Starts a run of `job` as the admin and returns its id once it waits at a gate.
async fn run_job_to_a_gate(f: &Fixture, job: &str) -> Result<String, Box<dyn std::error::Error>> {
    let run = admin_api(
        f,
        reqwest::Method::POST,
        &format!("/namespaces/default/jobs/{job}/runs"),
        Some(json!({})),
    )
    .await?;
    let id = run["id"].as_str().ok_or("no run id")?.to_owned();
    let start = Instant::now();
    loop {
        let run = admin_api(f, reqwest::Method::GET, &format!("/runs/{id}"), None).await?;
        if run["status"] == json!("awaiting_approval") {
            break;
        }
        if start.elapsed() > PATIENCE {
            return Err(format!("the run never waited at its gate: {run}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(id)
}

/// Signs out and in again with `token`, and opens run `id`'s page.
async fn open_run_as(f: &Fixture, token: &str, id: &str) -> TestResult {
    f.browser.click("#sign-out").await?;
    f.sign_in_with(token).await?;
    f.open(&format!("/runs/{id}")).await?;
    f.browser.find("#run-gates .gate[data-step='gate']").await?;
    Ok(())
}

/// What the page shows of the gate: status, approvals, message, approvers, short hash.
async fn shown_gate(f: &Fixture) -> Result<Value, Box<dyn std::error::Error>> {
    f.browser
        .js(
            "const g = document.querySelector('#run-gates .gate[data-step=\"gate\"]'); \
             return [g.dataset.status, g.querySelector('[data-approvals]').textContent, \
                     g.querySelector('.gate-message')?.textContent ?? null, \
                     g.querySelector('.gate-approvers').textContent, \
                     g.querySelector('.gate-hash').textContent];",
            json!([]),
        )
        .await
}

/// Records the bodies the page sends, to check what a decision carries.
async fn record_requests(f: &Fixture) -> TestResult {
    f.browser
        .js(
            "const send = window.fetch; window.sentBodies = []; \
             window.fetch = (url, init) => { window.sentBodies.push([String(url), init && init.body]); return send(url, init); }; \
             return true;",
            json!([]),
        )
        .await?;
    Ok(())
}

/// The last body the page sent to a URL ending with `suffix`.
async fn sent_to(f: &Fixture, suffix: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let sent = f
        .browser
        .js(
            "return window.sentBodies.filter(([url]) => url.endsWith(arguments[0])).pop()?.[1] ?? null",
            json!([suffix]),
        )
        .await?;
    Ok(serde_json::from_str(
        sent.as_str().ok_or("no such request seen")?,
    )?)
}

#[tokio::test]
async fn two_approvers_approve_a_gate_in_the_ui_and_the_run_goes_on_to_succeed() -> TestResult {
    let _one = BROWSER.lock().await;
    let f = Fixture::with_jobs(&[("gated.yaml", GATED)], &[]).await?;
    let alice = f
        .server
        .create_named_token("alice", "operator", Some("default"))
        .await?;
    let bob = f
        .server
        .create_named_token("bob", "operator", Some("default"))
        .await?;
    let carol = f
        .server
        .create_named_token("carol", "operator", Some("default"))
        .await?;
    let id = run_to_the_gate(&f).await?;
    let gate_hash = admin_api(&f, reqwest::Method::GET, &format!("/runs/{id}"), None).await?
        ["gates"][0]["hash"]
        .as_str()
        .ok_or("no gate hash")?
        .to_owned();

    // The runs list sets the waiting run apart and links to its review.
    f.sign_in().await?;
    f.open("/runs").await?;
    let row = f
        .browser
        .wait_for(
            "the waiting run in the list",
            &format!(
                "const r = document.querySelector('#runs-table tr[data-run=\"{id}\"]'); \
                 return !!r && r.dataset.status === 'awaiting_approval' && \
                   [!!r.querySelector('.badge.st-awaiting_approval'), r.querySelector('a.review-gate')?.getAttribute('href')];"
            ),
        )
        .await?;
    assert_eq!(row, json!([true, format!("#/runs/{id}")]));
    f.browser.click("#runs-table a.review-gate").await?;
    f.browser.find("#run-gates .gate[data-step='gate']").await?;
    f.wait_text("#run-status", "awaiting approval").await?;
    // The server ends the log stream while the run waits; the page says why.
    f.wait_text("#log-state", "waiting for approval").await?;
    f.wait_text("#log", "Deploy 1.2.3?").await?;
    assert_eq!(
        shown_gate(&f).await?,
        json!([
            "awaiting_approval",
            "approvals 0 / 2",
            "Deploy 1.2.3?",
            "alice, bob",
            &gate_hash[..12]
        ])
    );

    // Someone not among the approvers is refused with the server's reason.
    open_run_as(&f, &carol, &id).await?;
    f.browser.click("#run-gates button.gate-approve").await?;
    f.wait_text("#run-gates .gate-feedback", "Permission denied")
        .await?;
    f.wait_text("#run-gates .gate-feedback", "approvers of the gate gate")
        .await?;

    // Alice approves, with a comment bound to the step and the hash shown.
    open_run_as(&f, &alice, &id).await?;
    record_requests(&f).await?;
    f.browser
        .type_into("#run-gates .gate-comment", "tested on staging")
        .await?;
    f.browser.click("#run-gates button.gate-approve").await?;
    f.wait_text("#run-gates [data-approvals]", "approvals 1 / 2")
        .await?;
    f.wait_text("#run-gates .gate-feedback", "Approved.")
        .await?;
    f.wait_text("#run-gates .gate-decisions", "tested on staging")
        .await?;
    f.wait_text("#run-gates .gate-decisions", "alice").await?;
    assert_eq!(
        sent_to(&f, "/approve").await?,
        json!({"step": "gate", "hash": gate_hash, "comment": "tested on staging"})
    );
    // A second decision of hers is refused (409), and the gate still waits for one more.
    f.browser.click("#run-gates button.gate-approve").await?;
    f.wait_text("#run-gates .gate-feedback", "already decided")
        .await?;
    f.wait_text("#run-status", "awaiting approval").await?;

    // Bob's approval is the quorum'th: the run resumes and succeeds, past the gate.
    open_run_as(&f, &bob, &id).await?;
    f.browser.click("#run-gates button.gate-approve").await?;
    f.browser
        .wait_for(
            "the run to succeed",
            "return document.querySelector('#run-status')?.dataset.status === 'succeeded'",
        )
        .await?;
    // The log is followed again once the run resumes, without a line twice.
    f.wait_text("#log", "deployed").await?;
    f.wait_text("#log-state", "ended").await?;
    let lines = f
        .browser
        .js(
            "const seqs = [...document.querySelectorAll('#log .line[data-seq]')].map(l => l.dataset.seq); \
             return seqs.length === new Set(seqs).size && seqs.length;",
            json!([]),
        )
        .await?;
    assert!(lines.as_u64().is_some_and(|n| n >= 3), "log lines {lines}");
    let steps = f
        .browser
        .js(
            "return Object.fromEntries([...document.querySelectorAll('#steps-table tbody tr')].map(r => [r.dataset.step, r.dataset.status]))",
            json!([]),
        )
        .await?;
    assert_eq!(
        steps,
        json!({"build": "succeeded", "gate": "succeeded", "deploy": "succeeded", "on-fail": "skipped"})
    );
    f.wait_text(
        "#run-gates .gate[data-status='approved']",
        "approvals 2 / 2",
    )
    .await?;
    let offered = f
        .browser
        .js(
            "return !!document.querySelector('#run-gates button.gate-approve, #run-gates button.gate-reject')",
            json!([]),
        )
        .await?;
    assert_eq!(offered, json!(false), "a settled gate offers decisions");
    f.assert_no_injection().await?;
    Ok(())
}

#[tokio::test]
async fn a_gate_rejected_in_the_ui_fails_with_the_reason_and_runs_the_failure_step() -> TestResult {
    let _one = BROWSER.lock().await;
    let f = Fixture::with_jobs(&[("gated.yaml", GATED)], &[]).await?;
    let alice = f
        .server
        .create_named_token("alice", "operator", Some("default"))
        .await?;
    let id = run_to_the_gate(&f).await?;

    f.sign_in_with(&alice).await?;
    f.open(&format!("/runs/{id}")).await?;
    f.browser.find("#run-gates .gate[data-step='gate']").await?;
    record_requests(&f).await?;
    f.browser
        .type_into("#run-gates .gate-comment", "not on a Friday <b>")
        .await?;
    f.browser.click("#run-gates button.gate-reject").await?;
    f.browser
        .wait_for(
            "the run to end after the rejection",
            "const s = document.querySelector('#run-status')?.dataset.status; \
             return !!s && !['queued', 'running', 'awaiting_approval'].includes(s) && s;",
        )
        .await?;
    assert_eq!(
        sent_to(&f, "/reject").await?["comment"],
        json!("not on a Friday <b>")
    );
    f.browser
        .wait_for(
            "the gate step to fail with the reason",
            "const r = document.querySelector('#steps-table tr[data-step=\"gate\"]'); \
             return !!r && r.dataset.status === 'failed' && r.textContent.includes('not on a Friday <b>');",
        )
        .await?;
    f.browser
        .wait_for(
            "the failure step to run",
            "return document.querySelector('#steps-table tr[data-step=\"on-fail\"]')?.dataset.status === 'succeeded'",
        )
        .await?;
    f.wait_text("#log", "gate failed").await?;
    let deploy = f
        .browser
        .js(
            "return document.querySelector('#steps-table tr[data-step=\"deploy\"]').dataset.status",
            json!([]),
        )
        .await?;
    assert_ne!(deploy, json!("succeeded"), "deploy ran after a rejection");
    f.wait_text(
        "#run-gates .gate[data-status='rejected']",
        "not on a Friday <b>",
    )
    .await?;
    f.wait_text("#run-gates .gate-decisions", "alice").await?;
    f.assert_no_injection().await?;
    let markup = f
        .browser
        .js(
            "return document.querySelectorAll('main b').length",
            json!([]),
        )
        .await?;
    assert_eq!(markup, json!(0), "a reason's markup became an element");

    // The list no longer shows it as waiting.
    f.open("/runs").await?;
    f.browser
        .wait_for(
            "the ended run in the list",
            &format!(
                "const r = document.querySelector('#runs-table tr[data-run=\"{id}\"]'); \
                 return !!r && r.dataset.status !== 'awaiting_approval' && !r.querySelector('a.review-gate');"
            ),
        )
        .await?;
    Ok(())
}

/// A step that fails and asks what to do (`on_failure: ask`), and one that needs it.
const ASKS: &str = r#"id: asks
steps:
  - id: call
    on_failure: ask
    sh: echo "the API said no"; exit 1
  - id: after
    needs: [call]
    sh: echo after ran
"#;

#[tokio::test]
async fn a_failed_step_s_question_offers_retry_skip_and_abort_and_a_skip_lets_the_run_go_on()
-> TestResult {
    let _one = BROWSER.lock().await;
    let f = Fixture::with_jobs(&[("asks.yaml", ASKS)], &[]).await?;
    let id = run_job_to_a_gate(&f, "asks").await?;
    f.sign_in().await?;
    f.open(&format!("/runs/{id}")).await?;
    let gate = "#run-gates .gate[data-step='call#failed-1']";
    f.browser.find(gate).await?;
    let buttons = f
        .browser
        .js(
            &format!(
                "return [...document.querySelectorAll(\"{gate} .actions-left button\")].map(b => b.textContent);"
            ),
            json!([]),
        )
        .await?;
    assert_eq!(buttons, json!(["Retry", "Abort", "Skip"]));
    f.browser
        .type_into("#run-gates .gate-comment", "done by hand")
        .await?;
    f.browser.click("#run-gates button.gate-skip").await?;
    f.browser
        .wait_for(
            "the run to succeed after the skip",
            "return document.querySelector('#run-status')?.dataset.status === 'succeeded'",
        )
        .await?;
    f.browser
        .wait_for(
            "the step skipped with the reason, and its dependent run",
            "const call = document.querySelector('#steps-table tr[data-step=\"call\"]'); \
             const after = document.querySelector('#steps-table tr[data-step=\"after\"]'); \
             return call?.dataset.status === 'skipped' && call.textContent.includes('done by hand') \
               && after?.dataset.status === 'succeeded';",
        )
        .await?;
    f.wait_text(
        "#run-gates .gate[data-status='skipped'] .gate-decisions",
        "skipped",
    )
    .await?;
    Ok(())
}

/// A step that asks its question before it runs.
const CONFIRMS: &str = r#"id: confirms
steps:
  - id: restart
    confirm: "Restart the web tier?"
    sh: echo restarted
"#;

#[tokio::test]
async fn a_run_started_from_the_job_page_with_its_steps_confirmed_does_not_wait() -> TestResult {
    let _one = BROWSER.lock().await;
    let f = Fixture::with_jobs(&[("confirms.yaml", CONFIRMS)], &[]).await?;
    f.sign_in().await?;
    f.open("/jobs/default/confirms").await?;
    f.wait_text("#run-form", "Confirm its 1 confirm: step(s) now")
        .await?;
    f.browser.click("#confirm-steps").await?;
    f.browser.click("#run-job").await?;
    f.browser
        .wait_for(
            "the confirmed run to succeed without waiting",
            "return document.querySelector('#run-status')?.dataset.status === 'succeeded'",
        )
        .await?;
    f.wait_text("#log", "confirmed beforehand by").await?;
    Ok(())
}
