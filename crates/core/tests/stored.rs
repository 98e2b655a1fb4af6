//! Pins what Rota has already written down: a job's stored definition (as today's release
//! stores it in `job_revisions.definition`) and a plan's hash (which approvals bind to).
//! A change to the model's shape or to the plan's canonical form fails here first; when it
//! is meant, the stored form gets a new version and a decoder for the old one, and this file
//! keeps loading the old one.

use std::collections::BTreeMap;

use rota_core::model::{Job, Value};
use rota_core::parse::{Format, parse_str};
use rota_core::plan::PlanContent;
use rota_core::stored::{DEFINITION_VERSION, decode_definition, encode_definition};

const SOURCE: &str = include_str!("data/stored/all-kinds.yaml");
const STORED: &str = include_str!("data/stored/all-kinds.definition.json");

fn parsed() -> Job {
    let mut jobs = parse_str(SOURCE, "all-kinds.yaml", Format::Yaml).expect("the job parses");
    jobs.remove(0)
}

#[test]
fn a_definition_stored_by_the_first_release_still_loads() {
    let stored: serde_json::Value = serde_json::from_str(STORED).expect("the fixture is JSON");
    let job = decode_definition(1, &stored).expect("the stored definition decodes");
    assert_eq!(job, parsed());
}

#[test]
fn a_definition_of_an_unknown_schema_version_is_refused_by_name() {
    let stored: serde_json::Value = serde_json::from_str(STORED).expect("the fixture is JSON");
    let error = decode_definition(DEFINITION_VERSION + 1, &stored).expect_err("unknown version");
    assert!(error.to_string().contains("upgrade rota"), "{error}");
}

#[test]
fn the_stored_shape_of_a_definition_does_not_drift() {
    let now = encode_definition(&parsed());
    let stored: serde_json::Value = serde_json::from_str(STORED).expect("the fixture is JSON");
    assert_eq!(
        now,
        stored,
        "the stored form changed; now:\n{}",
        serde_json::to_string_pretty(&now).unwrap_or_default()
    );
}

#[test]
fn a_plan_hash_is_pinned() {
    let params: BTreeMap<String, Value> = [
        ("env".to_owned(), Value::from("prod")),
        ("count".to_owned(), Value::from(2_i64)),
    ]
    .into();
    let plan = PlanContent::resolve("ops", &parsed(), 7, &params, |_| Some(3));
    assert_eq!(
        plan.hash(),
        "d890d7fd2872e6f47419db49595e5356b25101095ac64661a8df6cfc508594a4",
        "the plan hash changed: approvals given before the change would no longer bind"
    );
}
