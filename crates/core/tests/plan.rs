//! Plans: rendered content, secrets as placeholders, and a hash that follows the inputs.

use std::collections::BTreeMap;

use rota_core::model::Value;
use rota_core::parse::{Format, parse_str};
use rota_core::plan::PlanContent;

const JOB: &str = "\
id: deploy
secrets: [DB_PASS]
params:
  env: { type: string, default: staging }
steps:
  - id: migrate
    sh: ./migrate --env {{ params.env }} --password {{ secrets.DB_PASS }}
  - id: report
    needs: [migrate]
    sh: echo {{ steps.migrate.outputs.count }} in {{ run.id }}
";

fn plan(env: &str, secret_version: Option<i64>) -> PlanContent {
    let jobs = parse_str(JOB, "deploy.yaml", Format::Yaml).expect("the job parses");
    let params: BTreeMap<String, Value> = [("env".to_owned(), Value::from(env))].into();
    PlanContent::resolve("ops", &jobs[0], 3, &params, |_| secret_version)
}

fn command(plan: &PlanContent, step: usize) -> String {
    plan.steps[step].resolved["kind"]["sh"]["command"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn plan_renders_params_and_shows_secrets_by_name() {
    let plan = plan("prod", Some(1));
    assert_eq!(
        command(&plan, 0),
        "./migrate --env prod --password {{ secrets.DB_PASS }}"
    );
    assert_eq!(plan.steps[0].kind, "sh");
    // Run-time references keep their template text.
    assert_eq!(
        command(&plan, 1),
        "echo {{ steps.migrate.outputs.count }} in {{ run.id }}"
    );
    assert_eq!(plan.secrets[0].name, "DB_PASS");
    assert_eq!(plan.secrets[0].version, Some(1));
}

#[test]
fn plan_hash_is_stable_and_follows_every_input() {
    let base = plan("prod", Some(1));
    assert_eq!(base.hash(), plan("prod", Some(1)).hash());
    assert_eq!(base.hash().len(), 64);
    assert_ne!(base.hash(), plan("staging", Some(1)).hash());
    assert_ne!(base.hash(), plan("prod", Some(2)).hash());
    let mut newer = base.clone();
    newer.revision = 4;
    assert_ne!(base.hash(), newer.hash());
}

#[test]
fn changes_since_names_each_change() {
    let base = plan("prod", Some(1));
    let mut now = plan("staging", Some(2));
    now.revision = 4;
    let changes = base.changes_since(&now);
    assert!(
        changes.contains(&"job revision 3 → 4".to_owned()),
        "{changes:?}"
    );
    assert!(
        changes.contains(&"parameter env \"prod\" → \"staging\"".to_owned()),
        "{changes:?}"
    );
    assert!(
        changes.contains(&"secret DB_PASS version 1 → 2".to_owned()),
        "{changes:?}"
    );
    assert!(base.changes_since(&plan("prod", Some(1))).is_empty());
}
