//! Reads and pagination: runs by cursor with filters, a run with its steps, log lines and
//! events by position, jobs and their revisions.

use crate::support::{Env, LOG_LINES, OPS_RUNS};

fn ids(answer: &crate::support::Answer, key: &str) -> Vec<String> {
    answer.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| match &item[key] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

#[tokio::test]
async fn runs_page_by_cursor_newest_first_without_gaps_or_repeats() {
    let env = Env::new().await;
    let mut seen = Vec::new();
    let mut uri = "/api/v1/runs?namespace=ops&limit=3".to_owned();
    let mut pages = 0;
    loop {
        let page = env.get(&uri, "viewer_ops").await;
        assert_eq!(page.status, 200, "{}", page.body);
        pages += 1;
        seen.extend(ids(&page, "id"));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/api/v1/runs?namespace=ops&limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, env.ops_runs);
    assert_eq!(pages, OPS_RUNS.div_ceil(3));
}

#[tokio::test]
async fn a_full_last_page_has_no_cursor() {
    let env = Env::new().await;
    let page = env
        .get(
            &format!("/api/v1/runs?namespace=ops&limit={OPS_RUNS}"),
            "viewer_ops",
        )
        .await;
    assert_eq!(ids(&page, "id").len(), OPS_RUNS);
    assert!(page.body["next_cursor"].is_null());
}

#[tokio::test]
async fn runs_filter_by_job_and_status() {
    let env = Env::new().await;
    let running = env.get("/api/v1/runs?status=running", "viewer_all").await;
    let mut running_ids = ids(&running, "id");
    running_ids.sort();
    let mut expected = vec![env.ops_runs[0].clone(), env.web_run.clone()];
    expected.sort();
    assert_eq!(running_ids, expected);

    let site = env
        .get("/api/v1/runs?namespace=web&job=site", "viewer_web")
        .await;
    assert_eq!(ids(&site, "id"), std::slice::from_ref(&env.web_run));
    let none = env
        .get("/api/v1/runs?namespace=web&job=deploy", "viewer_web")
        .await;
    assert!(ids(&none, "id").is_empty());
}

#[tokio::test]
async fn runs_filter_by_creation_time() {
    let env = Env::new().await;
    let all = env
        .get("/api/v1/runs?namespace=ops&limit=500", "viewer_ops")
        .await;
    let items = all.body["items"].as_array().expect("items").clone();
    assert!(items.len() >= 3, "{}", all.body);
    // The middle run's creation time splits the list: `since` keeps it, `until` drops it.
    let middle = items[items.len() / 2]["created_at"]
        .as_str()
        .expect("created_at")
        .to_owned();
    let query = |filter: &str| {
        let encoded = middle.replace('+', "%2B").replace(':', "%3A");
        format!("/api/v1/runs?namespace=ops&limit=500&{filter}={encoded}")
    };
    let newer = env.get(&query("since"), "viewer_ops").await;
    let older = env.get(&query("until"), "viewer_ops").await;
    assert_eq!(newer.status, 200, "{}", newer.body);
    assert_eq!(older.status, 200, "{}", older.body);
    let (newer, older) = (ids(&newer, "id"), ids(&older, "id"));
    assert!(!newer.is_empty() && !older.is_empty());
    assert_eq!(newer.len() + older.len(), items.len());
    assert!(newer.iter().all(|id| !older.contains(id)));
    let bad = env.get("/api/v1/runs?since=yesterday", "viewer_all").await;
    bad.assert_problem(400, "invalid-query");
}

#[tokio::test]
async fn runs_filter_by_id_prefix() {
    let env = Env::new().await;
    let found = env.get("/api/v1/runs?id_prefix=webr", "viewer_all").await;
    assert_eq!(ids(&found, "id"), std::slice::from_ref(&env.web_run));
    let whole = env.get("/api/v1/runs?id_prefix=webrun", "viewer_all").await;
    assert_eq!(ids(&whole, "id"), std::slice::from_ref(&env.web_run));
    let many = env.get("/api/v1/runs?id_prefix=run0", "viewer_all").await;
    let many = ids(&many, "id");
    let expected: Vec<&String> = env
        .ops_runs
        .iter()
        .filter(|id| id.starts_with("run0"))
        .collect();
    assert_eq!(many.iter().collect::<Vec<_>>(), expected);
    // The prefix narrows the namespace filter, never widens it.
    let elsewhere = env
        .get("/api/v1/runs?namespace=ops&id_prefix=webr", "viewer_ops")
        .await;
    assert!(ids(&elsewhere, "id").is_empty(), "{}", elsewhere.body);
    let bad = env
        .get("/api/v1/runs?id_prefix=NOT-AN-ID", "viewer_all")
        .await;
    bad.assert_problem(400, "invalid-query");
}

#[tokio::test]
async fn a_run_comes_with_its_steps() {
    let env = Env::new().await;
    let run = env
        .get(&format!("/api/v1/runs/{}", env.ops_runs[1]), "viewer_ops")
        .await;
    assert_eq!(run.body["status"], "succeeded");
    assert_eq!(run.body["job_id"], "deploy");
    assert_eq!(run.body["job_revision"], 2);
    let steps = run.body["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["id"], "build");
    assert_eq!(steps[0]["status"], "succeeded");
    assert_eq!(steps[0]["exit_code"], 0);
    assert_eq!(steps[1]["status"], "skipped");
}

#[tokio::test]
async fn logs_page_by_seq() {
    let env = Env::new().await;
    let run = &env.ops_runs[0];
    let mut texts = Vec::new();
    let mut after = 0;
    loop {
        let page = env
            .get(
                &format!("/api/v1/runs/{run}/logs?after={after}&limit=2"),
                "viewer_ops",
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let items = page.body["items"].as_array().expect("items").clone();
        if items.is_empty() {
            assert_eq!(
                page.body["next_after"], after,
                "an empty page keeps the position"
            );
            break;
        }
        assert!(items.len() <= 2);
        texts.extend(
            items
                .iter()
                .map(|l| l["text"].as_str().unwrap_or_default().to_owned()),
        );
        after = page.body["next_after"].as_i64().expect("next_after");
    }
    let expected: Vec<String> = (0..LOG_LINES).map(|n| format!("line {n}")).collect();
    assert_eq!(texts, expected);

    let other_step = env
        .get(&format!("/api/v1/runs/{run}/logs?step=ship"), "viewer_ops")
        .await;
    assert!(ids(&other_step, "seq").is_empty());
}

#[tokio::test]
async fn events_page_by_id() {
    let env = Env::new().await;
    let all = env.get("/api/v1/events?limit=500", "viewer_all").await;
    let all_ids = ids(&all, "id");
    assert!(all_ids.len() > 10);
    let first = env.get("/api/v1/events?limit=4", "viewer_all").await;
    assert_eq!(ids(&first, "id"), all_ids[..4]);
    let after = first.body["next_after"].as_i64().expect("next_after");
    let second = env
        .get(
            &format!("/api/v1/events?after={after}&limit=4"),
            "viewer_all",
        )
        .await;
    assert_eq!(ids(&second, "id"), all_ids[4..8]);
    assert_eq!(first.body["items"][0]["kind"], "run.created");
}

#[tokio::test]
async fn jobs_list_latest_revisions_and_history() {
    let env = Env::new().await;
    let jobs = env.get("/api/v1/namespaces/ops/jobs", "viewer_ops").await;
    assert_eq!(ids(&jobs, "id"), ["deploy"]);
    assert_eq!(jobs.body["items"][0]["revision"], 2);

    let job = env
        .get("/api/v1/namespaces/ops/jobs/deploy", "viewer_ops")
        .await;
    assert_eq!(job.body["revision"], 2);
    assert!(
        job.body["source"]
            .as_str()
            .is_some_and(|s| s.contains("revision 1"))
    );
    assert_eq!(job.body["definition"]["description"], "revision 1");

    let revisions = env
        .get("/api/v1/namespaces/ops/jobs/deploy/revisions", "viewer_ops")
        .await;
    assert_eq!(ids(&revisions, "revision"), ["2", "1"]);

    let empty = env
        .get("/api/v1/namespaces/default/jobs", "viewer_all")
        .await;
    assert_eq!(empty.status, 200);
    assert!(ids(&empty, "id").is_empty());
}

fn stream_request(
    env: &Env,
    uri: &str,
    last_event_id: Option<&str>,
) -> axum::http::Request<axum::body::Body> {
    let mut request = axum::http::Request::get(uri).header(
        "authorization",
        format!("Bearer {}", env.token("viewer_all")),
    );
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.body(axum::body::Body::empty()).expect("request")
}

#[tokio::test]
async fn the_event_stream_resumes_after_last_event_id() {
    let env = Env::new().await;
    let resumed = crate::support::sse_ids(
        &env.app,
        stream_request(&env, "/api/v1/events/stream", Some("3")),
        2,
    )
    .await;
    assert_eq!(
        resumed.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [4, 5]
    );
    assert_eq!(resumed[0].1["id"], 4);

    let from_query = crate::support::sse_ids(
        &env.app,
        stream_request(&env, "/api/v1/events/stream?after=1", None),
        1,
    )
    .await;
    assert_eq!(from_query[0].0, 2);
}

#[tokio::test]
async fn the_event_stream_follows_new_events() {
    let env = Env::new().await;
    let all = env.get("/api/v1/events?limit=500", "viewer_all").await;
    let last = all.body["next_after"].as_i64().expect("next_after");
    let app = env.app.clone();
    let request = stream_request(&env, "/api/v1/events/stream", Some(&last.to_string()));
    let reader = tokio::spawn(async move { crate::support::sse_ids(&app, request, 1).await });
    // A change made after the stream started reaches it.
    env.store
        .request_cancel(&env.ops_runs[0], "someone")
        .await
        .expect("cancel");
    let events = reader.await.expect("reader");
    assert_eq!(events[0].0, last + 1);
    assert_eq!(events[0].1["kind"], "run.cancel_requested");
}

#[tokio::test]
async fn a_malformed_last_event_id_is_a_400_problem() {
    let env = Env::new().await;
    let answer = crate::support::send(
        &env.app,
        stream_request(&env, "/api/v1/events/stream", Some("yesterday")),
    )
    .await;
    answer.assert_problem(400, "invalid-query");
}
