//! Retrying runs, deleting jobs, a job's next fire times and backfill, and following a
//! run's log over SSE: what each answers, what the store holds afterwards, the problems of
//! bad input and the audit entries written.

use axum::http::Method;
use jiff::Timestamp;
use rota_store::NewJobRevision;

use crate::support::{Env, job_source};

fn step_states(run: &serde_json::Value) -> Vec<(String, String)> {
    run["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap_or_default().to_owned(),
                s["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn pair(id: &str, status: &str) -> (String, String) {
    (id.to_owned(), status.to_owned())
}

#[tokio::test]
async fn a_retry_from_a_step_queues_a_run_that_keeps_the_steps_before_it() {
    let env = Env::new().await;
    let ended = &env.ops_runs[1];
    let uri = format!("/api/v1/runs/{ended}/retry");
    let retry = env
        .call(
            Method::POST,
            &uri,
            Some("operator_ops"),
            Some(r#"{"from": "ship"}"#),
        )
        .await;
    assert_eq!(retry.status, 202, "{}", retry.body);
    let id = retry.body["id"].as_str().expect("id").to_owned();
    assert_ne!(&id, ended);
    assert_eq!(
        retry.headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("/api/v1/runs/{id}").as_str())
    );
    assert_eq!(retry.body["status"], "queued");
    assert_eq!(retry.body["trigger"], "retry");
    assert_eq!(retry.body["retry_of"], ended.as_str());
    assert_eq!(retry.body["job_revision"], 2);
    assert_eq!(
        step_states(&retry.body),
        [pair("build", "succeeded"), pair("ship", "pending")]
    );
    let stored = env.get(&format!("/api/v1/runs/{id}"), "viewer_ops").await;
    assert_eq!(stored.body["retry_of"], ended.as_str());

    // No body, or `{}`: every step again.
    for body in [None, Some("{}")] {
        let all = env
            .call(Method::POST, &uri, Some("operator_ops"), body)
            .await;
        assert_eq!(all.status, 202, "{}", all.body);
        assert_eq!(
            step_states(&all.body),
            [pair("build", "pending"), pair("ship", "pending")]
        );
    }
    // Each retry is audited as the call and as the run it created, both by the caller.
    let entries = crate::support::api_audit(&env).await;
    let (calls, created): (Vec<_>, Vec<_>) = entries
        .iter()
        .partition(|(action, _, _)| action == "run.retry");
    assert_eq!(calls.len(), 3, "{entries:?}");
    assert!(
        calls
            .iter()
            .all(|(_, target, result)| target == &format!("run/{ended}") && result == "ok"),
        "{entries:?}"
    );
    assert_eq!(created.len(), 3, "{entries:?}");
    assert!(
        created.iter().all(|(action, _, _)| action == "run.created"),
        "{entries:?}"
    );
}

#[tokio::test]
async fn a_retry_is_refused_for_active_runs_unknown_runs_and_unknown_steps() {
    let env = Env::new().await;
    let running = &env.ops_runs[0];
    let active = env
        .call(
            Method::POST,
            &format!("/api/v1/runs/{running}/retry"),
            Some("operator_ops"),
            None,
        )
        .await;
    active.assert_problem(409, "conflict");

    let unknown = env
        .call(
            Method::POST,
            "/api/v1/runs/nosuchrun/retry",
            Some("admin"),
            None,
        )
        .await;
    unknown.assert_problem(404, "not-found");

    let ended = &env.ops_runs[1];
    let uri = format!("/api/v1/runs/{ended}/retry");
    let step = env
        .call(
            Method::POST,
            &uri,
            Some("operator_ops"),
            Some(r#"{"from": "deplo"}"#),
        )
        .await;
    step.assert_problem(422, "invalid-body");
    assert!(
        step.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("\"deplo\""),
        "{}",
        step.body
    );
    let field = env
        .call(
            Method::POST,
            &uri,
            Some("operator_ops"),
            Some(r#"{"form": "ship"}"#),
        )
        .await;
    field.assert_problem(422, "invalid-body");

    let results: Vec<String> = crate::support::api_audit(&env)
        .await
        .into_iter()
        .map(|e| e.2)
        .collect();
    assert_eq!(results, ["conflict", "not-found", "invalid-body"]);
    let runs = env
        .get("/api/v1/runs?namespace=ops&limit=500", "viewer_ops")
        .await;
    assert_eq!(
        runs.body["items"].as_array().map(Vec::len),
        Some(crate::support::OPS_RUNS),
        "nothing was queued"
    );
}

#[tokio::test]
async fn a_deleted_job_is_gone_until_saved_again_and_its_runs_stay() {
    let env = Env::new().await;
    let uri = "/api/v1/namespaces/ops/jobs/deploy";
    let deleted = env
        .call(Method::DELETE, uri, Some("editor_ops"), None)
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);

    env.get(uri, "viewer_ops")
        .await
        .assert_problem(404, "not-found");
    let listed = env.get("/api/v1/namespaces/ops/jobs", "viewer_ops").await;
    assert_eq!(listed.status, 200);
    assert_eq!(
        listed.body["items"],
        serde_json::json!([]),
        "{}",
        listed.body
    );
    env.call(
        Method::POST,
        &format!("{uri}/runs"),
        Some("operator_ops"),
        Some("{}"),
    )
    .await
    .assert_problem(404, "not-found");
    env.call(Method::DELETE, uri, Some("editor_ops"), None)
        .await
        .assert_problem(404, "not-found");
    let run = env
        .get(&format!("/api/v1/runs/{}", env.ops_runs[1]), "viewer_ops")
        .await;
    assert_eq!(run.status, 200, "runs are history and stay");

    // The same text as before is a new revision: the job is back.
    let source = job_source("ops", "deploy", "revision 1");
    let body = serde_json::json!({ "format": "yaml", "source": source }).to_string();
    let revived = env
        .call(Method::PUT, uri, Some("editor_ops"), Some(&body))
        .await;
    assert_eq!(revived.status, 201, "{}", revived.body);
    assert_eq!(revived.body["revision"], 3);
    assert_eq!(env.get(uri, "viewer_ops").await.status, 200);

    let entries: Vec<(String, String)> = crate::support::api_audit(&env)
        .await
        .into_iter()
        .filter(|e| e.0 == "job.delete")
        .map(|e| (e.1, e.2))
        .collect();
    assert_eq!(
        entries,
        [
            ("job/ops/deploy".to_owned(), "ok".to_owned()),
            ("job/ops/deploy".to_owned(), "not-found".to_owned())
        ]
    );
}

#[tokio::test]
async fn a_job_defined_by_a_file_cannot_be_deleted_through_the_api() {
    let env = Env::new().await;
    let mut revision = NewJobRevision::new(
        "ops",
        "filed",
        "id: filed\n",
        serde_json::json!({"id": "filed", "steps": []}),
        Timestamp::now(),
    );
    revision.source_path = Some("/srv/jobs/filed.yaml".to_owned());
    env.store
        .save_job_revision(&revision)
        .await
        .expect("save revision");
    let refused = env
        .call(
            Method::DELETE,
            "/api/v1/namespaces/ops/jobs/filed",
            Some("editor_ops"),
            None,
        )
        .await;
    refused.assert_problem(409, "conflict");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("/srv/jobs/filed.yaml"),
        "{}",
        refused.body
    );
    assert!(!env.store.job_deleted("ops", "filed").await.expect("store"));
}

/// Saves `ops/hourly`: a cron trigger at every full hour (UTC) and a webhook.
async fn save_hourly(env: &Env) {
    let source = "id: hourly\nnamespace: ops\ntriggers:\n  - cron: '0 * * * *'\n  \
                  - webhook: { secret: HOOK }\nsteps:\n  - id: main\n    sh: 'true'\n";
    let body = serde_json::json!({ "format": "yaml", "source": source }).to_string();
    let saved = env
        .call(
            Method::PUT,
            "/api/v1/namespaces/ops/jobs/hourly",
            Some("editor_ops"),
            Some(&body),
        )
        .await;
    assert_eq!(saved.status, 201, "{}", saved.body);
}

#[tokio::test]
async fn the_schedule_shows_the_next_fire_times_and_the_pause_state() {
    let env = Env::new().await;
    save_hourly(&env).await;
    let uri = "/api/v1/namespaces/ops/jobs/hourly/schedule";
    let shown = env.get(&format!("{uri}?count=3"), "viewer_ops").await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.body["paused"], false);
    assert_eq!(
        shown.body["triggers"],
        serde_json::json!(["cron:0 * * * *@UTC"])
    );
    let times: Vec<Timestamp> = shown.body["next"]
        .as_array()
        .expect("next")
        .iter()
        .map(|t| {
            assert_eq!(t["trigger"], "cron:0 * * * *@UTC");
            t["at"].as_str().expect("at").parse().expect("RFC 3339")
        })
        .collect();
    assert_eq!(times.len(), 3);
    assert!(times[0] > Timestamp::now() - jiff::SignedDuration::from_secs(1));
    for pair in times.windows(2) {
        assert_eq!(pair[1].as_second() - pair[0].as_second(), 3600, "{times:?}");
    }
    assert_eq!(times[0].as_second() % 3600, 0);
    let default = env.get(uri, "viewer_ops").await;
    assert_eq!(default.body["next"].as_array().map(Vec::len), Some(5));

    for bad in ["0", "101", "x"] {
        env.get(&format!("{uri}?count={bad}"), "viewer_ops")
            .await
            .assert_problem(400, "invalid-query");
    }
    env.get("/api/v1/namespaces/ops/jobs/nope/schedule", "viewer_ops")
        .await
        .assert_problem(404, "not-found");

    let paused = env
        .call(
            Method::POST,
            &format!("{uri}/pause"),
            Some("editor_ops"),
            None,
        )
        .await;
    assert_eq!(paused.status, 200);
    assert_eq!(env.get(uri, "viewer_ops").await.body["paused"], true);
}

#[tokio::test]
async fn a_backfill_queues_one_run_per_occurrence_once() {
    let env = Env::new().await;
    save_hourly(&env).await;
    let uri = "/api/v1/namespaces/ops/jobs/hourly/schedule/backfill";
    let range = r#"{"from": "2026-01-01T01:00:00Z", "to": "2026-01-01T03:00:00Z"}"#;
    let done = env
        .call(Method::POST, uri, Some("editor_ops"), Some(range))
        .await;
    assert_eq!(done.status, 201, "{}", done.body);
    assert_eq!(done.body["queued"], 3);
    let items = done.body["items"].as_array().expect("items");
    let at: Vec<&str> = items
        .iter()
        .filter_map(|i| i["scheduled_at"].as_str())
        .collect();
    assert_eq!(
        at,
        [
            "2026-01-01T01:00:00Z",
            "2026-01-01T02:00:00Z",
            "2026-01-01T03:00:00Z"
        ]
    );
    for item in items {
        let run_id = item["run_id"].as_str().expect("a queued run");
        let run = env
            .get(&format!("/api/v1/runs/{run_id}"), "viewer_ops")
            .await;
        assert_eq!(run.body["status"], "queued");
        assert_eq!(run.body["trigger"], "backfill");
        assert_eq!(run.body["scheduled_at"], item["scheduled_at"]);
    }

    // The same range again: every occurrence is already recorded, nothing is queued.
    let again = env
        .call(Method::POST, uri, Some("editor_ops"), Some(range))
        .await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(again.body["queued"], 0);
    assert!(
        again.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i["run_id"].is_null())
    );

    // Over 1,000 hours is refused whole; a backwards range and bad instants are 422.
    for body in [
        r#"{"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}"#,
        r#"{"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}"#,
        r#"{"from": "yesterday", "to": "2026-01-01T00:00:00Z"}"#,
    ] {
        env.call(Method::POST, uri, Some("editor_ops"), Some(body))
            .await
            .assert_problem(422, "invalid-body");
    }
    env.call(
        Method::POST,
        "/api/v1/namespaces/ops/jobs/nope/schedule/backfill",
        Some("editor_ops"),
        Some(range),
    )
    .await
    .assert_problem(404, "not-found");
    let runs = env
        .get(
            "/api/v1/runs?namespace=ops&job=hourly&limit=500",
            "viewer_ops",
        )
        .await;
    assert_eq!(runs.body["items"].as_array().map(Vec::len), Some(3));

    let results: Vec<String> = crate::support::api_audit(&env)
        .await
        .into_iter()
        .filter(|e| e.0 == "schedule.backfill")
        .map(|e| e.2)
        .collect();
    assert_eq!(
        results,
        [
            "ok",
            "ok",
            "invalid-body",
            "invalid-body",
            "invalid-body",
            "not-found"
        ]
    );
}

/// One server-sent event: its `event` name (`message` when absent), `id` and `data`.
#[derive(Debug, Clone, PartialEq)]
struct Frame {
    event: String,
    id: Option<i64>,
    data: serde_json::Value,
}

/// Reads whole frames from an event stream until `enough` says so or the stream ends.
async fn read_frames(
    body: &mut axum::body::BodyDataStream,
    buffer: &mut String,
    frames: &mut Vec<Frame>,
    enough: impl Fn(&[Frame]) -> bool,
) {
    use futures_util::StreamExt;
    while !enough(frames) {
        let Some(chunk) = body.next().await else {
            return;
        };
        buffer.push_str(std::str::from_utf8(&chunk.expect("chunk")).expect("UTF-8"));
        while let Some(end) = buffer.find("\n\n") {
            let text: String = buffer.drain(..end + 2).collect();
            let mut frame = Frame {
                event: "message".to_owned(),
                id: None,
                data: serde_json::Value::Null,
            };
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    frame.event = v.to_owned();
                } else if let Some(v) = line.strip_prefix("id: ") {
                    frame.id = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    frame.data = serde_json::from_str(v).expect("JSON data");
                }
            }
            // Keep-alive comments carry no data.
            if !frame.data.is_null() {
                frames.push(frame);
            }
        }
    }
}

/// Opens a log stream; `last_event_id` resumes it.
async fn open_log_stream(
    env: &Env,
    uri: &str,
    last_event_id: Option<i64>,
) -> axum::body::BodyDataStream {
    use tower::ServiceExt;
    let mut request = axum::http::Request::get(uri).header(
        "authorization",
        format!("Bearer {}", env.token("viewer_ops")),
    );
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    let request = request.body(axum::body::Body::empty()).expect("request");
    let response = env.app.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    response.into_body().into_data_stream()
}

/// Reads a stream to its end, with a generous bound so a stream that never ends fails
/// the test instead of hanging it.
async fn all_frames(mut body: axum::body::BodyDataStream) -> Vec<Frame> {
    let (mut buffer, mut frames) = (String::new(), Vec::new());
    let read = read_frames(&mut body, &mut buffer, &mut frames, |_| false);
    tokio::time::timeout(std::time::Duration::from_secs(60), read)
        .await
        .expect("the stream ends after the run has ended");
    frames
}

fn texts(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f.event == "message")
        .map(|f| f.data["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_log_stream_follows_a_live_run_to_its_end_and_resumes_by_last_event_id() {
    use rota_core::model::{RunStatus, StepStatus};
    use rota_store::{LogStream, RunEvent};

    let env = Env::new().await;
    let run = env.ops_runs[0].clone();
    let uri = format!("/api/v1/runs/{run}/logs/stream");
    let mut body = open_log_stream(&env, &uri, None).await;
    let (mut buffer, mut frames) = (String::new(), Vec::new());
    read_frames(&mut body, &mut buffer, &mut frames, |f| {
        f.len() >= crate::support::LOG_LINES
    })
    .await;
    assert_eq!(
        texts(&frames),
        ["line 0", "line 1", "line 2", "line 3", "line 4"]
    );

    // The run goes on while the stream is open: two more lines (one of another step),
    // then it ends.
    let line = |step: &str, text: &str| RunEvent::Log {
        run_id: run.clone(),
        step_id: step.to_owned(),
        attempt: 1,
        ts: Timestamp::now(),
        stream: LogStream::Stdout,
        text: text.to_owned(),
    };
    env.store
        .record(&[line("build", "late 1")])
        .await
        .expect("record");
    env.store
        .record(&[
            line("ship", "shipping"),
            RunEvent::StepFinished {
                run_id: run.clone(),
                step_id: "build".to_owned(),
                attempt: 1,
                status: StepStatus::Failed,
                exit_code: Some(3),
                reason: None,
                outputs: Default::default(),
                at: Timestamp::now(),
            },
            RunEvent::RunFinished {
                run_id: run.clone(),
                status: RunStatus::Failed,
                reason: Some("step build failed".to_owned()),
                at: Timestamp::now(),
            },
        ])
        .await
        .expect("record");
    let read = read_frames(&mut body, &mut buffer, &mut frames, |_| false);
    tokio::time::timeout(std::time::Duration::from_secs(60), read)
        .await
        .expect("the stream ends after the run has ended");
    assert_eq!(
        texts(&frames),
        [
            "line 0", "line 1", "line 2", "line 3", "line 4", "late 1", "shipping"
        ]
    );
    let ids: Vec<i64> = frames.iter().filter_map(|f| f.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(ids.len(), 7, "every line has its seq as id");
    let last = frames.last().expect("frames");
    assert_eq!(last.event, "end");
    assert_eq!(last.data["status"], "failed");
    assert_eq!(last.data["reason"], "step build failed");
    assert_eq!(
        frames.iter().filter(|f| f.event == "end").count(),
        1,
        "one end event, last"
    );

    // A reconnecting client resumes right after the last line it saw.
    let resumed = all_frames(open_log_stream(&env, &uri, Some(ids[4])).await).await;
    assert_eq!(texts(&resumed), ["late 1", "shipping"]);
    assert_eq!(resumed.last().map(|f| f.event.as_str()), Some("end"));
    let after =
        all_frames(open_log_stream(&env, &format!("{uri}?after={}", ids[5]), None).await).await;
    assert_eq!(texts(&after), ["shipping"]);
    let one_step = all_frames(open_log_stream(&env, &format!("{uri}?step=ship"), None).await).await;
    assert_eq!(texts(&one_step), ["shipping"]);
}

#[tokio::test]
async fn a_log_stream_refuses_bad_positions_and_unknown_runs() {
    let env = Env::new().await;
    let uri = format!("/api/v1/runs/{}/logs/stream", env.ops_runs[1]);
    env.get(&format!("{uri}?after=-1"), "viewer_ops")
        .await
        .assert_problem(400, "invalid-query");
    let request = axum::http::Request::get(&uri)
        .header(
            "authorization",
            format!("Bearer {}", env.token("viewer_ops")),
        )
        .header("last-event-id", "abc")
        .body(axum::body::Body::empty())
        .expect("request");
    crate::support::send(&env.app, request)
        .await
        .assert_problem(400, "invalid-query");
    env.get("/api/v1/runs/nosuchrun/logs/stream", "viewer_ops")
        .await
        .assert_problem(404, "not-found");
    // An ended run without lines: just the end.
    let frames = all_frames(open_log_stream(&env, &uri, None).await).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].event, "end");
    assert_eq!(frames[0].data["status"], "succeeded");
}
