//! `GET /metrics`: the Prometheus text over the seeded store, runs recorded through the
//! store's `record` API, API latency after calls, and the scheduler lateness handle.
//! (No token → 401 and the role check are in the permission table of `auth.rs`.)

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use jiff::{SignedDuration, Timestamp};
use rota_api::{ApiState, AuthMode, app};
use rota_core::model::{RunStatus, StepStatus};
use rota_core::parse::Format;
use rota_store::{NewJobRevision, NewRun, RunEvent, Store};

use crate::support::{self, Env, OPS_RUNS, job_source, send};

/// Scrapes `/metrics` as `viewer_all`, checks the content type and parses the text.
async fn scrape(env: &Env) -> Samples {
    let answer = env.get("/metrics", "viewer_all").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse(answer.body.as_str().expect("a text body"))
}

/// Samples by their full series text (`name{labels}`).
struct Samples(BTreeMap<String, f64>);

impl Samples {
    fn get(&self, series: &str) -> f64 {
        *self
            .0
            .get(series)
            .unwrap_or_else(|| panic!("no series {series} in {:?}", self.0.keys()))
    }
}

/// Parses the text format strictly enough to catch malformed output: every family has
/// one `# TYPE` line before its samples, every sample line is `series value` with a
/// number, every series appears once.
fn parse(text: &str) -> Samples {
    let mut typed = BTreeSet::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(["gauge", "counter", "histogram"].contains(&kind), "{line}");
            assert!(typed.insert(name.to_owned()), "second TYPE for {name}");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        let name = series.split('{').next().unwrap_or(series);
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| typed.contains(*base))
            .unwrap_or(name);
        assert!(typed.contains(family), "no TYPE before {line}");
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "{series} twice"
        );
    }
    Samples(samples)
}

#[tokio::test]
async fn runs_by_status_and_queue_depth_come_from_the_store() {
    let env = Env::new().await;
    let before = scrape(&env).await;
    let succeeded_ops = (OPS_RUNS - 1) as f64;
    assert_eq!(
        before.get(r#"rota_runs{namespace="ops",status="succeeded"}"#),
        succeeded_ops
    );
    assert_eq!(
        before.get(r#"rota_runs{namespace="ops",status="running"}"#),
        1.0
    );
    assert_eq!(
        before.get(r#"rota_runs{namespace="web",status="running"}"#),
        1.0
    );
    assert_eq!(before.get("rota_queue_depth"), 0.0);
    let steps = "rota_step_duration_seconds";

    let now = Timestamp::now();
    seed_default_job(&env.store, now).await;
    for id in ["d1", "d2"] {
        record_two_second_run(&env.store, id, now).await;
    }
    record_queued_run(&env.store, "d3", now).await;

    let after = scrape(&env).await;
    assert_eq!(
        after.get(r#"rota_runs{namespace="default",status="succeeded"}"#),
        2.0
    );
    assert_eq!(
        after.get(r#"rota_runs{namespace="default",status="queued"}"#),
        1.0
    );
    assert_eq!(after.get("rota_queue_depth"), 1.0);
    // Both new attempts took two seconds: above the 1 s bound, within 5 s.
    let delta = |series: &str| after.get(series) - before.get(series);
    assert_eq!(delta(&format!("{steps}_count")), 2.0);
    assert_eq!(delta(&format!(r#"{steps}_bucket{{le="1"}}"#)), 0.0);
    assert_eq!(delta(&format!(r#"{steps}_bucket{{le="5"}}"#)), 2.0);
    assert_eq!(delta(&format!(r#"{steps}_bucket{{le="+Inf"}}"#)), 2.0);
    assert_eq!(delta(&format!("{steps}_sum")), 4.0);
}

#[tokio::test]
async fn api_calls_are_timed_by_route_template_and_status_class() {
    let env = Env::new().await;
    let run = &env.ops_runs[0];
    assert_eq!(
        env.get("/api/v1/namespaces", "viewer_all").await.status,
        200
    );
    assert_eq!(
        env.get(&format!("/api/v1/runs/{run}"), "viewer_all")
            .await
            .status,
        200
    );
    assert_eq!(env.get("/api/v1/runs/nope", "viewer_all").await.status, 404);
    assert_eq!(
        env.call(Method::GET, "/no/such/path", None, None)
            .await
            .status,
        404
    );

    let samples = scrape(&env).await;
    let count = |labels: &str| {
        samples.get(&format!(
            "rota_api_request_duration_seconds_count{{{labels}}}"
        ))
    };
    assert_eq!(count(r#"route="/api/v1/namespaces",status="2xx""#), 1.0);
    assert_eq!(count(r#"route="/api/v1/runs/{id}",status="2xx""#), 1.0);
    assert_eq!(count(r#"route="/api/v1/runs/{id}",status="4xx""#), 1.0);
    assert_eq!(count(r#"route="unmatched",status="4xx""#), 1.0);
    assert_eq!(
        samples.get(
            r#"rota_api_request_duration_seconds_bucket{route="/api/v1/namespaces",status="2xx",le="+Inf"}"#
        ),
        1.0
    );
    // No concrete run id became a label.
    assert!(!samples.0.keys().any(|series| series.contains(run.as_str())));
}

#[tokio::test]
async fn scheduler_lateness_is_what_the_server_observes() {
    let env = Env::new().await;
    let state = ApiState::new(rota_ops::Ops::new(env.store.clone()), AuthMode::None);
    let scheduler = state.scheduler_metrics.clone();
    let router = app(state);
    let get_metrics = || {
        Request::get("/metrics")
            .body(Body::empty())
            .expect("request")
    };

    let empty = parse(
        send(&router, get_metrics())
            .await
            .body
            .as_str()
            .expect("text"),
    );
    assert_eq!(empty.get("rota_scheduler_lateness_seconds_count"), 0.0);

    scheduler.observe_lateness(Duration::from_millis(250));
    scheduler.observe_lateness(Duration::from_secs(2));
    let fed = parse(
        send(&router, get_metrics())
            .await
            .body
            .as_str()
            .expect("text"),
    );
    assert_eq!(fed.get("rota_scheduler_lateness_seconds_count"), 2.0);
    assert_eq!(fed.get("rota_scheduler_lateness_seconds_sum"), 2.25);
    assert_eq!(
        fed.get(r#"rota_scheduler_lateness_seconds_bucket{le="0.5"}"#),
        1.0
    );
    assert_eq!(
        fed.get(r#"rota_scheduler_lateness_seconds_bucket{le="5"}"#),
        2.0
    );
}

/// Saves the job `default/hello`.
async fn seed_default_job(store: &Store, at: Timestamp) {
    let source = job_source("default", "hello", "metrics");
    let parsed = rota_core::parse::parse_str(&source, "<seed>", Format::Yaml)
        .expect("job parses")
        .remove(0);
    let definition = serde_json::to_value(&parsed).expect("definition");
    let rev = NewJobRevision::new("default", "hello", source, definition, at);
    store.save_job_revision(&rev).await.expect("save revision");
}

/// A run of `default/hello` revision 1.
fn new_run(id: &str, at: Timestamp) -> NewRun {
    support::new_run(id, "default", "hello", 1, at)
}

/// Records a queued run of `default/hello`.
async fn record_queued_run(store: &Store, id: &str, at: Timestamp) {
    let run = new_run(id, at);
    store
        .record(&[RunEvent::RunCreated { run }])
        .await
        .expect("record run");
}

/// Records a succeeded run of `default/hello` whose `build` attempt took two seconds,
/// ending at `end`.
async fn record_two_second_run(store: &Store, id: &str, end: Timestamp) {
    let start = end - SignedDuration::from_secs(2);
    let run = new_run(id, start);
    let batch = vec![
        RunEvent::RunCreated { run },
        RunEvent::RunStarted {
            run_id: id.to_owned(),
            at: start,
        },
        RunEvent::StepStarted {
            run_id: id.to_owned(),
            step_id: "build".to_owned(),
            attempt: 1,
            at: start,
            pgid: None,
        },
        support::build_succeeded(id, end),
        RunEvent::StepSkipped {
            run_id: id.to_owned(),
            step_id: "ship".to_owned(),
            status: StepStatus::Skipped,
            reason: "not needed".to_owned(),
            at: end,
        },
        RunEvent::RunFinished {
            run_id: id.to_owned(),
            status: RunStatus::Succeeded,
            reason: None,
            at: end,
        },
    ];
    store.record(&batch).await.expect("record run");
}
