//! End to end in headless Chromium (through chromedriver) against a real `rota serve` in a
//! fresh `ROTA_HOME`: each test signs in with the admin token and checks, as a user would,
//! what the pages show. Waits poll the page with a generous bound; nothing is timed.
//! Missing chromium or chromedriver fails the tests with the Debian packages to install.

use serde_json::json;

use crate::support::webdriver::{Driver, Session};
use crate::support::{Server, TestResult};

/// One browser at a time: two Chromiums and two servers at once overload a 2-core runner.
pub(crate) static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const XSS: &str = "<img src=x onerror=alert(1)>";

/// A job that succeeds: a three-step chain, typed params, a cron trigger, and a description,
/// a log line and an artifact's name holding markup that must be shown as text; each run
/// keeps its report.
const GREET: &str = r#"id: greet
description: "Says hello <img src=x onerror=alert(1)>"
report: html
params:
  env: { type: string, enum: [staging, prod], default: staging, help: Target environment }
  count: { type: int, default: 3 }
triggers:
  - cron: "0 3 * * *"
steps:
  - id: first
    sh: echo "hello from {{ params.env }}"; echo "oops on stderr" >&2
  - id: second
    needs: [first]
    sh: |
      echo 'markup <img src=x onerror=alert(2)> stays text'
      echo kept > "$ROTA_ARTIFACTS/<img src=x onerror=alert(3)>.txt"
  - id: third
    needs: [second]
    sh: echo "count is {{ params.count }}"
"#;

const BROKEN: &str = "id: broken\nsteps:\n  - id: boom\n    sh: echo failing; exit 3\n";

const SLEEPER: &str = "id: sleeper\nsteps:\n  - id: wait\n    sh: for i in $(seq 1 600); do echo tick $i; sleep 1; done\n";

pub(crate) struct Fixture {
    pub(crate) server: Server,
    pub(crate) browser: Session,
    _driver: Driver,
}

impl Fixture {
    async fn start() -> Result<Fixture, Box<dyn std::error::Error>> {
        Fixture::start_with(&[]).await
    }

    async fn start_with(serve_args: &[&str]) -> Result<Fixture, Box<dyn std::error::Error>> {
        let jobs = [
            ("greet.yaml", GREET),
            ("broken.yaml", BROKEN),
            ("sleeper.yaml", SLEEPER),
        ];
        Fixture::with_jobs(&jobs, serve_args).await
    }

    pub(crate) async fn with_jobs(
        jobs: &[(&str, &str)],
        serve_args: &[&str],
    ) -> Result<Fixture, Box<dyn std::error::Error>> {
        let driver = Driver::start()?;
        let server = Server::start_with(jobs, serve_args)?;
        // Other files (a notebook a job runs) sit beside the job files.
        let ids: Vec<&str> = jobs
            .iter()
            .filter_map(|(file, _)| file.strip_suffix(".yaml"))
            .collect();
        server.wait_for_jobs(&ids).await?;
        let browser = driver.session().await?;
        Ok(Fixture {
            server,
            browser,
            _driver: driver,
        })
    }

    /// Opens a page of the UI by its hash route (`/runs`), as a fresh page load.
    pub(crate) async fn open(&self, route: &str) -> TestResult {
        self.browser
            .goto(&format!("{}/ui/#{route}", self.server.base))
            .await
    }

    /// Signs in through the form with the admin token and waits for the jobs list.
    pub(crate) async fn sign_in(&self) -> TestResult {
        self.sign_in_with(&self.server.admin_token()?).await
    }

    /// Signs in through the form with this token and waits for the jobs list.
    pub(crate) async fn sign_in_with(&self, token: &str) -> TestResult {
        self.browser.goto(&self.server.base).await?;
        self.browser.type_into("#token", token).await?;
        self.browser
            .click("form.signin button[type=submit]")
            .await?;
        self.browser
            .wait_for(
                "the jobs list",
                "return document.querySelectorAll('#jobs-table tbody tr').length >= 1",
            )
            .await?;
        Ok(())
    }

    /// Waits for the page's text (of `<main>`) to contain `text`.
    pub(crate) async fn wait_text(&self, css: &str, text: &str) -> TestResult {
        let script = format!(
            "const el = document.querySelector({css}); return !!el && el.textContent.includes({text});",
            css = json!(css),
            text = json!(text)
        );
        self.browser
            .wait_for(&format!("{css} to contain {text:?}"), &script)
            .await?;
        Ok(())
    }

    /// No markup from data became an element, and no injected script opened an alert.
    pub(crate) async fn assert_no_injection(&self) -> TestResult {
        assert_eq!(self.browser.alert_text().await?, None, "an alert opened");
        let images = self
            .browser
            .js("return document.querySelectorAll('img').length", json!([]))
            .await?;
        assert_eq!(images, json!(0), "markup from data became an <img>");
        Ok(())
    }
}

#[tokio::test]
async fn sign_in_rejects_a_wrong_token_with_the_servers_message_and_sign_out_forgets_it()
-> TestResult {
    let _one = BROWSER.lock().await;
    let f = Fixture::start().await?;
    f.browser.goto(&f.server.base).await?;
    let url = f.browser.js("return location.pathname", json!([])).await?;
    assert_eq!(url, json!("/ui/"), "/ redirects to the UI");

    f.browser.type_into("#token", "not-a-token").await?;
    f.browser.click("form.signin button[type=submit]").await?;
    f.wait_text("#signin-status", "the token is unknown or revoked")
        .await?;
    let kept = f
        .browser
        .js("return sessionStorage.length", json!([]))
        .await?;
    assert_eq!(kept, json!(0), "a rejected token is not kept");

    f.sign_in().await?;
    let in_url = f.browser.js("return location.href", json!([])).await?;
    let token = f.server.admin_token()?;
    assert!(
        !in_url.to_string().contains(&token),
        "the token is never in the URL"
    );

    // Keyboard: `g r` goes to runs, `g j` back to jobs, `/` focuses the filter.
    f.browser.keyboard("gr").await?;
    f.browser
        .wait_for(
            "g r to open runs",
            "return !!document.querySelector('#runs-table')",
        )
        .await?;
    f.browser.keyboard("gj").await?;
    f.browser
        .wait_for(
            "g j to open jobs",
            "return !!document.querySelector('#jobs-table')",
        )
        .await?;
    f.browser.keyboard("/").await?;
    f.browser
        .wait_for(
            "/ to focus the filter",
            "return document.activeElement?.id === 'job-filter'",
        )
        .await?;

    f.browser.click("#sign-out").await?;
    f.browser
        .wait_for(
            "the sign-in form after signing out",
            "return !!document.querySelector('#token') && sessionStorage.length === 0",
        )
        .await?;

    // Signed out, a deep link shows the sign-in form, not the data.
    f.open("/runs").await?;
    f.browser
        .wait_for(
            "the sign-in form on a deep link",
            "return !!document.querySelector('#token') && !document.querySelector('#runs-table')",
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_run_started_from_the_job_page_shows_its_dag_and_logs_live() -> TestResult {
    let _one = BROWSER.lock().await;
    let f = Fixture::start().await?;
    f.sign_in().await?;

    // The jobs list: every job, the description as text, the next fire time of the cron job.
    for job in ["greet", "broken", "sleeper"] {
        f.wait_text("#jobs-table", job).await?;
    }
    f.wait_text("#jobs-table", XSS).await?;
    f.wait_text("#jobs-table", "cron").await?;
    f.assert_no_injection().await?;

    // The filter box narrows the list (`/` focuses it).
    f.browser.type_into("#job-filter", "brok").await?;
    f.browser
        .wait_for(
            "the filter to leave one job",
            "return [...document.querySelectorAll('#jobs-table tbody tr')].filter(r => !r.hidden).length === 1",
        )
        .await?;
    f.browser.press("#job-filter", "\u{E00C}").await?;
    f.browser
        .wait_for(
            "every job back after Escape clears the filter",
            "return [...document.querySelectorAll('#jobs-table tbody tr')].filter(r => !r.hidden).length === 3",
        )
        .await?;

    f.browser
        .click("#jobs-table a[href='#/jobs/default/greet']")
        .await?;
    f.wait_text("#job-description", XSS).await?;
    let shown = f.browser.text("#job-description").await?;
    assert_eq!(shown, format!("Says hello {XSS}"));
    f.wait_text("#schedule", "Next fire times").await?;
    f.assert_no_injection().await?;

    // Pause and resume the schedule.
    f.browser.click("#schedule #pause").await?;
    f.wait_text("#schedule", "paused").await?;
    f.browser.click("#schedule #resume").await?;
    f.browser
        .wait_for(
            "the schedule to resume",
            "return !!document.querySelector('#schedule #pause') && !document.querySelector('#schedule .st-paused')",
        )
        .await?;

    // The Run form is built from the declared params: an enum is a select.
    f.browser
        .wait_for(
            "the env select",
            "return [...document.querySelectorAll('#param-env option')].map(o => o.value).join(',') === 'staging,prod'",
        )
        .await?;
    f.browser.click("#param-env option[value=prod]").await?;
    f.browser.type_into("#param-count", "7").await?;
    f.browser.click("#run-job").await?;
    f.browser
        .wait_for("the run page", "return location.hash.startsWith('#/runs/')")
        .await?;

    f.browser
        .wait_for(
            "every DAG node to succeed",
            "const n = [...document.querySelectorAll('#run-dag g.node')].map(g => g.dataset.status); \
             return n.length === 3 && n.every(s => s === 'succeeded');",
        )
        .await?;
    f.wait_text("#run-status", "succeeded").await?;
    f.wait_text("#run-summary", "prod").await?;
    f.wait_text("#log", "hello from prod").await?;
    f.wait_text("#log", "markup <img src=x onerror=alert(2)> stays text")
        .await?;
    f.wait_text("#log", "count is 7").await?;
    f.wait_text("#log .line.stderr", "oops on stderr").await?;
    // The file the second step kept is listed, its markup of a name as text.
    f.wait_text("#artifacts-table", "<img src=x onerror=alert(3)>.txt")
        .await?;
    f.wait_text("#artifacts-table", "5 bytes").await?;
    f.assert_no_injection().await?;
    // The report the run kept as it ended: listed, and offered beside the Report buttons.
    f.wait_text("#run-report #kept-report", "kept report (HTML)")
        .await?;
    f.wait_text("#artifacts-table tr[data-step='@run']", "report.html")
        .await?;

    // Clicking a node shows only that step's lines.
    f.browser.click("#run-dag g.node[data-step=third]").await?;
    f.browser
        .wait_for(
            "the log filtered to step third",
            "const shown = [...document.querySelectorAll('#log .line')].filter(l => !l.hidden); \
             return shown.length === 1 && shown[0].dataset.step === 'third';",
        )
        .await?;

    // An ended run offers Retry, not Cancel.
    f.browser.find("#retry-run").await?;
    let cancel = f
        .browser
        .js("return !!document.querySelector('#cancel-run')", json!([]))
        .await?;
    assert_eq!(cancel, json!(false));

    // Retry from a step: a new run that reruns that step and what follows it.
    let first_run = f.browser.js("return location.hash", json!([])).await?;
    f.browser.click("#retry-from option[value=second]").await?;
    f.browser.click("#retry-from-step").await?;
    f.browser
        .wait_for(
            "the retry's page",
            &format!("return location.hash.startsWith('#/runs/') && location.hash !== {first_run}"),
        )
        .await?;
    f.wait_text("#run-summary", "Retry of").await?;
    f.browser
        .wait_for(
            "the retry to succeed",
            "return document.querySelector('#run-status')?.dataset.status === 'succeeded'",
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_failed_run_shows_its_reason_and_a_long_run_is_cancelled_from_its_page() -> TestResult {
    let _one = BROWSER.lock().await;
    let f = Fixture::start().await?;
    f.sign_in().await?;

    f.open("/jobs/default/broken").await?;
    f.browser.click("#run-job").await?;
    f.browser
        .wait_for(
            "the failed run",
            "return document.querySelector('#run-status')?.dataset.status === 'failed'",
        )
        .await?;
    f.wait_text("#run-reason", "failed steps: boom").await?;
    let failed_run = f.browser.js("return location.hash", json!([])).await?;
    f.wait_text("#steps-table", "exited with code 3").await?;
    f.wait_text("#log", "failing").await?;
    f.browser
        .wait_for(
            "the failed node",
            "return document.querySelector('#run-dag g.node[data-step=boom]')?.dataset.status === 'failed'",
        )
        .await?;

    f.open("/jobs/default/sleeper").await?;
    f.browser.click("#run-job").await?;
    // Lines arrive while the run is still going.
    f.wait_text("#log", "tick 2").await?;
    f.wait_text("#run-status", "running").await?;
    f.browser.click("#cancel-run").await?;
    f.browser
        .wait_for(
            "the cancelled run",
            "return document.querySelector('#run-status')?.dataset.status === 'cancelled'",
        )
        .await?;
    f.browser
        .wait_for(
            "Cancel to give way to Retry",
            "return !document.querySelector('#cancel-run') && !!document.querySelector('#retry-run')",
        )
        .await?;

    // The runs list refreshes itself while a run is active: another user's cancel shows up.
    f.open("/jobs/default/sleeper").await?;
    f.browser.click("#run-job").await?;
    f.wait_text("#log", "tick 1").await?;
    let route = f.browser.js("return location.hash", json!([])).await?;
    let second = route
        .as_str()
        .and_then(|r| r.strip_prefix("#/runs/"))
        .ok_or("no run id in the address")?
        .to_owned();
    f.open("/runs?job=sleeper").await?;
    f.browser
        .wait_for(
            "the running run listed",
            "return document.querySelector('#runs-table tbody tr')?.dataset.status === 'running'",
        )
        .await?;
    f.server.cancel(&second).await?;
    f.browser
        .wait_for(
            "the list to show the cancel without a reload",
            "return document.querySelector('#runs-table tbody tr')?.dataset.status === 'cancelled'",
        )
        .await?;

    // The runs list shows all three, newest first, and filters by status.
    f.open("/runs").await?;
    f.browser
        .wait_for(
            "every run listed",
            "return [...document.querySelectorAll('#runs-table tbody tr')].map(r => r.dataset.status).join(',') === 'cancelled,cancelled,failed'",
        )
        .await?;
    f.open("/runs?status=failed").await?;
    f.browser
        .wait_for(
            "only the failed run",
            "return [...document.querySelectorAll('#runs-table tbody tr')].map(r => r.dataset.status).join(',') === 'failed'",
        )
        .await?;

    // A viewer sees the run, and a retry it may not do shows the server's problem detail.
    let viewer = f.server.create_token("viewer", None).await?;
    f.browser.click("#sign-out").await?;
    f.sign_in_with(&viewer).await?;
    let route = failed_run
        .as_str()
        .ok_or("no run route")?
        .trim_start_matches('#');
    f.open(route).await?;
    f.wait_text("#run-reason", "failed steps: boom").await?;
    f.browser.click("#retry-run").await?;
    f.wait_text("#action-status", "Permission denied").await?;
    f.wait_text("#action-status", "needs the operator role")
        .await?;

    // A token limited to one namespace cannot list every run: Runs opens on its namespace.
    let scoped = f.server.create_token("viewer", Some("default")).await?;
    f.browser.click("#sign-out").await?;
    f.sign_in_with(&scoped).await?;
    f.open("/runs").await?;
    f.browser
        .wait_for(
            "the runs of the token's namespace",
            "return location.hash.includes('namespace=default') && document.querySelectorAll('#runs-table tbody tr[data-run]').length === 3",
        )
        .await?;
    Ok(())
}

/// A notebook whose last cell fails until the file its `flag` parameter names exists.
fn flaky_notebook() -> String {
    let code = |id: &str, tags: &[&str], source: &str| {
        json!({"cell_type": "code", "execution_count": null, "id": id,
               "metadata": {"tags": tags}, "outputs": [], "source": source})
    };
    json!({
        "cells": [
            code("params", &["parameters"], "flag = ''"),
            code("setup", &["setup"], "import os"),
            code("check", &[], "assert os.path.exists(flag), 'flag missing'\nprint('flag found')"),
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5
    })
    .to_string()
}

#[tokio::test]
async fn a_notebook_step_that_failed_at_a_cell_is_resumed_from_its_run_page() -> TestResult {
    let _one = BROWSER.lock().await;
    let flag_dir = tempfile::tempdir()?;
    let flag = flag_dir.path().join("flag");
    let job = format!(
        "id: flaky-nb\nsteps:\n  - id: nb\n    notebook: flaky.ipynb\n    params:\n      flag: {}\n",
        flag.display()
    );
    let notebook = flaky_notebook();
    let jobs = [
        ("flaky-nb.yaml", job.as_str()),
        ("flaky.ipynb", notebook.as_str()),
    ];
    let f = Fixture::with_jobs(&jobs, &[]).await?;
    f.sign_in().await?;
    f.open("/jobs/default/flaky-nb").await?;
    f.browser.click("#run-job").await?;
    f.browser
        .wait_for(
            "the failed run",
            "return document.querySelector('#run-status')?.dataset.status === 'failed'",
        )
        .await?;
    f.wait_text("#steps-table", "flag missing").await?;
    let failed_run = f.browser.js("return location.hash", json!([])).await?;
    std::fs::write(&flag, "")?;
    f.browser.click("#resume-notebook").await?;
    f.browser
        .wait_for(
            "the resumed run's page",
            &format!(
                "return location.hash.startsWith('#/runs/') && location.hash !== {failed_run}"
            ),
        )
        .await?;
    f.wait_text("#run-summary", "Retry of").await?;
    f.browser
        .wait_for(
            "the resumed run to succeed",
            "return document.querySelector('#run-status')?.dataset.status === 'succeeded'",
        )
        .await?;
    f.wait_text("#log", "resuming at cell 4").await?;
    f.wait_text("#log", "flag found").await?;
    Ok(())
}

#[tokio::test]
async fn secrets_show_names_never_values_and_the_audit_chain_verifies() -> TestResult {
    let _one = BROWSER.lock().await;
    let f = Fixture::start().await?;
    f.sign_in().await?;

    let value = "hunter2-very-secret-value";
    f.open("/secrets").await?;
    f.browser.type_into("#secret-name", "API_KEY").await?;
    f.browser.type_into("#secret-value", value).await?;
    f.browser.click("#secret-save").await?;
    f.wait_text("#secrets-table", "API_KEY").await?;
    f.wait_text("#secret-form-status", "Saved API_KEY version 1")
        .await?;
    let leaked = f
        .browser
        .js(
            "return document.body.textContent.includes(arguments[0]) || document.querySelector('#secret-value').value !== ''",
            json!([value]),
        )
        .await?;
    assert_eq!(
        leaked,
        json!(false),
        "the value is shown or kept in the form"
    );

    // Delete asks first.
    f.browser.type_into("#secret-name", "OLD_KEY").await?;
    f.browser.type_into("#secret-value", "x").await?;
    f.browser.click("#secret-save").await?;
    f.wait_text("#secrets-table", "OLD_KEY").await?;
    f.browser.click("[data-delete=OLD_KEY]").await?;
    f.browser.click("[data-confirm-delete=OLD_KEY]").await?;
    f.browser
        .wait_for(
            "OLD_KEY to be deleted",
            "const t = document.querySelector('#secrets-table').textContent; return !t.includes('OLD_KEY') && t.includes('API_KEY');",
        )
        .await?;

    f.open("/audit").await?;
    f.wait_text("#audit-table", "secret.set").await?;
    f.browser.click("#verify-chain").await?;
    f.browser
        .wait_for(
            "the chain to verify",
            "return document.querySelector('#verify-result [data-intact]')?.dataset.intact === 'true'",
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn the_live_log_resumes_after_the_server_restarts_without_repeating_lines() -> TestResult {
    let _one = BROWSER.lock().await;
    let mut f = Fixture::start().await?;
    f.sign_in().await?;
    f.open("/jobs/default/sleeper").await?;
    f.browser.click("#run-job").await?;
    f.wait_text("#log", "tick 3").await?;

    // The stream drops with the server; the page reconnects with `Last-Event-ID` to the
    // restarted server, which ends the run (its owner died) after the lines already sent.
    f.server.crash_and_restart()?;
    f.browser
        .wait_for(
            "the stream to end after the restart",
            "return document.querySelector('#log-state')?.dataset.state === 'ended'",
        )
        .await?;
    f.browser
        .wait_for(
            "the run to end",
            "const s = document.querySelector('#run-status')?.dataset.status; \
             return !!s && !['queued', 'running'].includes(s);",
        )
        .await?;
    let lines = f
        .browser
        .js(
            "const seqs = [...document.querySelectorAll('#log .line[data-seq]')].map(l => l.dataset.seq); \
             return {count: seqs.length, unique: new Set(seqs).size};",
            json!([]),
        )
        .await?;
    assert!(lines["count"].as_u64().unwrap_or(0) >= 3, "{lines}");
    assert_eq!(
        lines["count"], lines["unique"],
        "a line was shown twice: {lines}"
    );
    Ok(())
}

#[tokio::test]
async fn with_auth_none_the_ui_needs_no_sign_in() -> TestResult {
    let _one = BROWSER.lock().await;
    let f = Fixture::start_with(&["--auth", "none"]).await?;
    f.browser.goto(&f.server.base).await?;
    f.browser
        .wait_for(
            "the jobs list without signing in",
            "return document.querySelectorAll('#jobs-table tbody tr').length === 3 && !document.querySelector('#token')",
        )
        .await?;
    f.wait_text("#session", "no sign-in required").await?;
    Ok(())
}

#[tokio::test]
async fn the_job_page_lists_skipped_occurrences_with_their_reason() -> TestResult {
    let _one = BROWSER.lock().await;
    // Every second, but each run takes a minute: overlapping occurrences are skipped.
    let ticker =
        "id: ticker\ntriggers:\n  - interval: 1s\nsteps:\n  - id: long\n    sh: sleep 60\n";
    let f = Fixture::with_jobs(&[("ticker.yaml", ticker)], &[]).await?;
    f.sign_in().await?;
    // The page shows the history as it was when opened: reopen it until skips are recorded.
    let start = std::time::Instant::now();
    f.open("/jobs/default/ticker").await?;
    loop {
        f.browser
            .wait_for(
                "the schedule history",
                "return document.querySelectorAll('#history tbody tr').length > 0",
            )
            .await?;
        let seen = f
            .browser
            .js(
                "const t = document.querySelector('#history').textContent; \
                 return t.includes('skipped') && !!document.querySelector('#history a[href^=\"#/runs/\"]');",
                json!([]),
            )
            .await?;
        if seen == json!(true) {
            break;
        }
        if start.elapsed() > crate::support::PATIENCE {
            return Err("no skipped occurrence appeared in the schedule history".into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        f.browser.reload().await?;
    }
    // Each skipped row says why.
    let reasons = f
        .browser
        .js(
            "return [...document.querySelectorAll('#history tbody tr')] \
               .filter(r => r.textContent.includes('skipped')) \
               .every(r => r.children[3].textContent.trim().length > 0)",
            json!([]),
        )
        .await?;
    assert_eq!(
        reasons,
        json!(true),
        "a skipped occurrence without its reason"
    );
    f.wait_text("#schedule", "every").await?;
    Ok(())
}
