//! Plan → approve → apply over the API: quorum with two tokens, self-approval, strangers,
//! rejection, expiry, drift (job revision, parameters' effect, secret versions), one run
//! per plan under concurrent applies, dry runs, audit entries, and secrets never shown.

use axum::body::Body;
use axum::http::{Method, Request};
use rota_api::{Role, issue_token};
use rota_store::Grant;
use serde_json::{Value, json};

use crate::support::{Answer, Env, api_audit, send};

/// A gated job of `ops`: quorum 2 of operators, a secret in a step command.
fn gated_job(quorum: u32, allow_self: bool, expires: &str, command: &str) -> String {
    let source = format!(
        "id: gated\nnamespace: ops\nsecrets: [DB_PASS]\n\
         params:\n  env: {{ type: string, default: staging }}\n\
         approval: {{ approvers: [alice, bob, \"role:admin\"], quorum: {quorum}, \
         allow_self: {allow_self}{expires} }}\n\
         steps:\n  - id: migrate\n    sh: {command}\n"
    );
    json!({"format": "yaml", "source": source}).to_string()
}

const COMMAND: &str = "./migrate --env {{ params.env }} --password {{ secrets.DB_PASS }}";

/// The value of `ops/DB_PASS` set by the tests.
const SECRET: &str = "s3cret-value-9c1e";

/// An `Env` with tokens `alice`, `bob` (operators of `ops`), `carol` (operator, not an
/// approver) and the gated job saved with `DB_PASS` set.
struct Plans {
    env: Env,
    alice: String,
    bob: String,
    carol: String,
}

impl Plans {
    async fn new(quorum: u32, allow_self: bool, expires: &str) -> Plans {
        let env = Env::new().await;
        let mut names = Vec::new();
        for name in ["alice", "bob", "carol"] {
            let grants = vec![Grant {
                namespace: Some("ops".into()),
                role: Role::Operator,
            }];
            let (_, text) = issue_token(&env.store, name, grants).await.expect("token");
            names.push(text);
        }
        let plans = Plans {
            env,
            carol: names.pop().unwrap_or_default(),
            bob: names.pop().unwrap_or_default(),
            alice: names.pop().unwrap_or_default(),
        };
        plans.put_job(quorum, allow_self, expires, COMMAND).await;
        plans.set_secret(SECRET).await;
        plans
    }

    async fn put_job(&self, quorum: u32, allow_self: bool, expires: &str, command: &str) {
        self.put_source(&gated_job(quorum, allow_self, expires, command))
            .await;
    }

    /// Saves `body` as the job `ops/gated`, as an editor would.
    async fn put_source(&self, body: &str) {
        let answer = self
            .env
            .call(
                Method::PUT,
                "/api/v1/namespaces/ops/jobs/gated",
                Some("editor_ops"),
                Some(body),
            )
            .await;
        assert!(answer.status.is_success(), "{}", answer.body);
    }

    async fn set_secret(&self, value: &str) {
        let body = json!({ "value": value }).to_string();
        let answer = self
            .env
            .call(
                Method::PUT,
                "/api/v1/namespaces/ops/secrets/DB_PASS",
                Some("editor_ops"),
                Some(&body),
            )
            .await;
        assert!(answer.status.is_success(), "{}", answer.body);
    }

    /// A call with a raw token text.
    async fn call(&self, method: Method, uri: &str, token: &str, body: Option<Value>) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"));
        let body = match body {
            Some(value) => {
                request = request.header("content-type", "application/json");
                Body::from(value.to_string())
            }
            None => Body::empty(),
        };
        send(&self.env.app, request.body(body).expect("request")).await
    }

    async fn plan(&self, token: &str, body: Value) -> Value {
        let answer = self
            .call(
                Method::POST,
                "/api/v1/namespaces/ops/jobs/gated/plans",
                token,
                Some(body),
            )
            .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        answer.body
    }

    async fn act(&self, id: &Value, action: &str, token: &str) -> Answer {
        let uri = format!("/api/v1/plans/{}/{action}", id.as_str().unwrap_or("-"));
        self.call(Method::POST, &uri, token, None).await
    }
}

#[tokio::test]
async fn a_plan_shows_resolved_steps_and_secret_names_never_values() {
    let t = Plans::new(2, false, "").await;
    let plan = t.plan(&t.carol, json!({"params": {"env": "prod"}})).await;
    assert_eq!(plan["status"], "awaiting_approval");
    assert_eq!(plan["approvals_needed"], 2);
    assert_eq!(plan["params"]["env"], "prod");
    assert_eq!(
        plan["steps"][0]["resolved"]["kind"]["sh"]["command"],
        "./migrate --env prod --password {{ secrets.DB_PASS }}"
    );
    assert_eq!(plan["secrets"], json!([{"name": "DB_PASS", "version": 1}]));
    assert_eq!(plan["hash"].as_str().map(str::len), Some(64));

    // The same inputs give the same hash; other parameters another one.
    let again = t.plan(&t.carol, json!({"params": {"env": "prod"}})).await;
    assert_eq!(again["hash"], plan["hash"]);
    let staging = t.plan(&t.carol, json!({})).await;
    assert_ne!(staging["hash"], plan["hash"]);

    let shown = t
        .call(
            Method::GET,
            &format!("/api/v1/plans/{}", plan["id"].as_str().unwrap_or("-")),
            &t.alice,
            None,
        )
        .await;
    assert_eq!(shown.status, 200);
    assert!(!shown.body.to_string().contains(SECRET));
    let listed = t
        .call(Method::GET, "/api/v1/plans?namespace=ops", &t.alice, None)
        .await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(3));
    assert!(!listed.body.to_string().contains(SECRET));
    // Nor in the database file, in any form the plan could have put it.
    t.env.store.close().await;
    let bytes = std::fs::read(t.env._home.path().join(rota_store::DB_FILE)).expect("db file");
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains(SECRET), "the secret's value is in the store");
}

#[tokio::test]
async fn two_approvers_reach_the_quorum_and_apply_queues_one_run() {
    let t = Plans::new(2, false, "").await;
    let plan = t.plan(&t.carol, json!({"params": {"env": "prod"}})).await;
    let id = &plan["id"];

    let early = t.act(id, "apply", &t.carol).await;
    early.assert_problem(409, "conflict");
    assert!(
        early.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("needs 2 more approval")),
        "{}",
        early.body
    );

    let first = t.act(id, "approve", &t.alice).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["status"], "awaiting_approval");
    assert_eq!(first.body["decisions"][0]["hash"], plan["hash"]);
    t.act(id, "approve", &t.alice)
        .await
        .assert_problem(409, "conflict");
    let second = t.act(id, "approve", &t.bob).await;
    assert_eq!(second.body["status"], "approved", "{}", second.body);

    // Two applies at once: one run.
    let (a, b) = tokio::join!(t.act(id, "apply", &t.carol), t.act(id, "apply", &t.bob));
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 409], "{} {}", a.body, b.body);
    let run = if a.status == 202 { a.body } else { b.body };
    assert_eq!(run["status"], "queued");
    assert_eq!(run["trigger"], "plan");
    assert_eq!(run["params"]["env"], "prod");
    let runs = t
        .call(
            Method::GET,
            "/api/v1/runs?namespace=ops&job=gated",
            &t.alice,
            None,
        )
        .await;
    assert_eq!(runs.body["items"].as_array().map(Vec::len), Some(1));
    let shown = t
        .call(
            Method::GET,
            &format!("/api/v1/plans/{}", id.as_str().unwrap_or("-")),
            &t.alice,
            None,
        )
        .await;
    assert_eq!(shown.body["status"], "applied");
    assert_eq!(shown.body["run_id"], run["id"]);

    let audit = api_audit(&t.env).await;
    let target = format!("plan/{}", id.as_str().unwrap_or("-"));
    let of_plan: Vec<(&str, &str)> = audit
        .iter()
        .filter(|(_, tgt, _)| *tgt == target)
        .map(|(action, _, result)| (action.as_str(), result.as_str()))
        .collect();
    assert_eq!(
        of_plan,
        [
            ("plan.create", "ok"),
            ("plan.apply", "conflict"),
            ("plan.approve", "ok"),
            ("plan.approve", "conflict"),
            ("plan.approve", "ok"),
        ]
        .into_iter()
        .chain(
            // The two concurrent applies, in either order.
            if of_plan.get(5).is_some_and(|(_, r)| *r == "ok") {
                [("plan.apply", "ok"), ("plan.apply", "conflict")]
            } else {
                [("plan.apply", "conflict"), ("plan.apply", "ok")]
            }
        )
        .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn self_approval_strangers_and_viewers_are_refused() {
    let t = Plans::new(1, false, "").await;
    let plan = t.plan(&t.alice, json!({})).await;
    let id = &plan["id"];
    let own = t.act(id, "approve", &t.alice).await;
    own.assert_problem(409, "conflict");
    assert!(
        own.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("allow_self"))
    );
    t.act(id, "approve", &t.carol)
        .await
        .assert_problem(403, "forbidden");
    let viewer = t
        .env
        .call(
            Method::POST,
            &format!("/api/v1/plans/{}/approve", id.as_str().unwrap_or("-")),
            Some("viewer_ops"),
            None,
        )
        .await;
    viewer.assert_problem(403, "forbidden");
    // `role:admin` admits an admin token by role.
    let admin = t
        .env
        .call(
            Method::POST,
            &format!("/api/v1/plans/{}/approve", id.as_str().unwrap_or("-")),
            Some("admin"),
            None,
        )
        .await;
    assert_eq!(admin.body["status"], "approved", "{}", admin.body);
}

#[tokio::test]
async fn self_approval_is_allowed_when_the_job_says_so() {
    let t = Plans::new(1, true, "").await;
    let plan = t.plan(&t.alice, json!({})).await;
    let own = t.act(&plan["id"], "approve", &t.alice).await;
    assert_eq!(own.body["status"], "approved", "{}", own.body);
}

#[tokio::test]
async fn a_rejection_ends_the_plan() {
    let t = Plans::new(2, false, "").await;
    let plan = t.plan(&t.carol, json!({})).await;
    let id = &plan["id"];
    let rejected = t
        .call(
            Method::POST,
            &format!("/api/v1/plans/{}/reject", id.as_str().unwrap_or("-")),
            &t.alice,
            Some(json!({"comment": "wrong window"})),
        )
        .await;
    assert_eq!(rejected.body["status"], "rejected", "{}", rejected.body);
    assert_eq!(rejected.body["decisions"][0]["comment"], "wrong window");
    t.act(id, "approve", &t.bob)
        .await
        .assert_problem(409, "conflict");
    t.act(id, "apply", &t.bob)
        .await
        .assert_problem(409, "conflict");
}

#[tokio::test]
async fn a_plan_past_its_time_expires() {
    let t = Plans::new(1, false, ", expires: 1s").await;
    let plan = t.plan(&t.carol, json!({})).await;
    let id = plan["id"].as_str().unwrap_or("-").to_owned();
    // Poll until the plan reads as expired; no guessed sleep length decides the outcome.
    loop {
        let shown = t
            .call(Method::GET, &format!("/api/v1/plans/{id}"), &t.alice, None)
            .await;
        if shown.body["status"] == "expired" {
            break;
        }
        assert_eq!(shown.body["status"], "awaiting_approval");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let listed = t
        .call(
            Method::GET,
            "/api/v1/plans?namespace=ops&status=expired",
            &t.alice,
            None,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["items"][0]["id"], plan["id"]);
    let late = t.act(&plan["id"], "approve", &t.alice).await;
    late.assert_problem(409, "conflict");
    assert!(
        late.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("expired"))
    );
}

/// Makes and approves a plan (quorum 1), returns its id.
async fn approved(t: &Plans) -> Value {
    let plan = t.plan(&t.carol, json!({"params": {"env": "prod"}})).await;
    let answer = t.act(&plan["id"], "approve", &t.alice).await;
    assert_eq!(answer.body["status"], "approved", "{}", answer.body);
    plan["id"].clone()
}

fn detail(answer: &Answer) -> String {
    answer.body["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Asserts the problem's detail names `text`, showing the whole detail when it does not.
#[track_caller]
fn assert_detail_mentions(answer: &Answer, text: &str) {
    assert!(detail(answer).contains(text), "{}", detail(answer));
}

#[tokio::test]
async fn apply_refuses_when_the_job_changed_and_names_the_change() {
    let t = Plans::new(1, false, "").await;
    let id = approved(&t).await;
    let plan_uri = format!("/api/v1/plans/{}", id.as_str().expect("plan id"));
    let before = t.env.get(&plan_uri, "admin").await;
    assert_eq!(before.body["drift"], json!([]), "{}", before.body);
    t.put_job(1, false, "", "./migrate --env {{ params.env }} --fast")
        .await;
    // Read before anyone applies it, the plan says it drifted, as a listing does.
    let after = t.env.get(&plan_uri, "admin").await;
    assert_eq!(after.body["status"], "approved");
    let drift = after.body["drift"].to_string();
    assert!(drift.contains("job revision 1 → 2"), "{}", after.body);
    let listed = t.env.get("/api/v1/plans", "admin").await;
    assert_eq!(listed.body["items"][0]["drift"], after.body["drift"]);
    let refused = t.act(&id, "apply", &t.carol).await;
    refused.assert_problem(409, "conflict");
    assert_detail_mentions(&refused, "job revision 1 → 2");
    assert_detail_mentions(&refused, "step migrate changed");
}

#[tokio::test]
async fn apply_refuses_when_a_default_parameter_changed() {
    let t = Plans::new(1, false, "").await;
    let plan = t.plan(&t.carol, json!({})).await;
    t.act(&plan["id"], "approve", &t.alice).await;
    // The same job with another default for `env`: the plan's parameters were resolved
    // from the old default, so the steps it pinned differ from what would run now.
    let body = gated_job(1, false, "", COMMAND).replace("default: staging", "default: prod");
    t.put_source(&body).await;
    let refused = t.act(&plan["id"], "apply", &t.carol).await;
    refused.assert_problem(409, "conflict");
    assert_detail_mentions(&refused, "job revision 1 → 2");
}

#[tokio::test]
async fn apply_refuses_when_a_secret_got_a_new_version() {
    let t = Plans::new(1, false, "").await;
    let id = approved(&t).await;
    t.set_secret("rotated-value").await;
    let refused = t.act(&id, "apply", &t.carol).await;
    refused.assert_problem(409, "conflict");
    assert_detail_mentions(&refused, "secret DB_PASS version 1 → 2");
    assert!(!detail(&refused).contains("rotated-value"));
}

#[tokio::test]
async fn a_dry_run_plan_queues_a_dry_run() {
    let t = Plans::new(1, false, "").await;
    let plan = t.plan(&t.carol, json!({"dry_run": true})).await;
    let run_id = plan["dry_run_id"]
        .as_str()
        .expect("a dry run id")
        .to_owned();
    let run = t
        .call(
            Method::GET,
            &format!("/api/v1/runs/{run_id}"),
            &t.alice,
            None,
        )
        .await;
    assert_eq!(run.status, 200, "{}", run.body);
    assert_eq!(run.body["dry_run"], true);
    assert_eq!(run.body["status"], "queued");
    // The dry run does not apply the plan.
    let shown = t
        .call(
            Method::GET,
            &format!("/api/v1/plans/{}", plan["id"].as_str().unwrap_or("-")),
            &t.alice,
            None,
        )
        .await;
    assert_eq!(shown.body["status"], "awaiting_approval");
}

#[tokio::test]
async fn a_job_with_approval_rules_cannot_be_started_directly() {
    let t = Plans::new(1, false, "").await;
    let answer = t
        .call(
            Method::POST,
            "/api/v1/namespaces/ops/jobs/gated/runs",
            &t.alice,
            Some(json!({})),
        )
        .await;
    answer.assert_problem(409, "conflict");
    assert!(detail(&answer).contains("plan"), "{}", detail(&answer));
}

#[tokio::test]
async fn a_job_without_rules_is_planned_approved_and_applied() {
    let t = Plans::new(1, false, "").await;
    let answer = t
        .call(
            Method::POST,
            "/api/v1/namespaces/ops/jobs/deploy/plans",
            &t.carol,
            Some(json!({"params": {"replicas": 3}})),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body["status"], "approved");
    assert_eq!(answer.body["approval"], Value::Null);
    t.act(&answer.body["id"], "approve", &t.alice)
        .await
        .assert_problem(409, "conflict");
    let run = t.act(&answer.body["id"], "apply", &t.carol).await;
    assert_eq!(run.status, 202, "{}", run.body);
    assert_eq!(run.body["params"]["replicas"], 3);
}

#[tokio::test]
async fn a_run_of_a_job_with_approval_rules_cannot_be_retried() {
    let t = Plans::new(1, false, "").await;
    let id = approved(&t).await;
    let run = t.act(&id, "apply", &t.carol).await;
    assert_eq!(run.status, 202, "{}", run.body);
    // End the queued run (nothing executes it here) so it could be retried.
    let run_id = run.body["id"].as_str().unwrap_or("-").to_owned();
    t.env
        .store
        .record(&[rota_store::RunEvent::RunFinished {
            run_id: run_id.clone(),
            status: rota_core::model::RunStatus::Failed,
            reason: None,
            at: jiff::Timestamp::now(),
        }])
        .await
        .expect("finish the run");
    let retry = t
        .call(
            Method::POST,
            &format!("/api/v1/runs/{run_id}/retry"),
            &t.carol,
            None,
        )
        .await;
    retry.assert_problem(409, "conflict");
    assert_detail_mentions(&retry, "make a new plan");
}

#[tokio::test]
async fn decisions_bind_to_the_hash_and_every_change_is_an_event() {
    let t = Plans::new(1, false, "").await;
    let plan = t.plan(&t.carol, json!({})).await;
    let uri = format!(
        "/api/v1/plans/{}/approve",
        plan["id"].as_str().unwrap_or("-")
    );
    let stale = t
        .call(
            Method::POST,
            &uri,
            &t.alice,
            Some(json!({"hash": "0".repeat(64)})),
        )
        .await;
    stale.assert_problem(409, "conflict");
    let bound = t
        .call(
            Method::POST,
            &uri,
            &t.alice,
            Some(json!({"hash": plan["hash"], "comment": "reviewed"})),
        )
        .await;
    assert_eq!(bound.body["status"], "approved", "{}", bound.body);
    let run = t.act(&plan["id"], "apply", &t.carol).await;
    assert_eq!(run.status, 202, "{}", run.body);

    let events = t.env.get("/api/v1/events?limit=500", "admin").await;
    assert_eq!(events.status, 200, "{}", events.body);
    let of_plan: Vec<(String, Value)> = events.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["data"]["plan_id"] == plan["id"])
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or("").to_owned(),
                e["run_id"].clone(),
            )
        })
        .collect();
    assert_eq!(
        of_plan,
        [
            ("plan.created".to_owned(), Value::Null),
            ("plan.approved".to_owned(), Value::Null),
            ("plan.applied".to_owned(), run.body["id"].clone()),
        ]
    );
}
