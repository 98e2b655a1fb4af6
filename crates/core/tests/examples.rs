//! The example job files shipped in the repository validate.

use std::path::Path;

use rota_core::model::StepKind;
use rota_core::parse::load_file;

#[test]
fn hello_example_validates_and_is_a_fan_out() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello.yaml");
    let file = match load_file(&path) {
        Ok(f) => f,
        Err(e) => panic!("examples/hello.yaml does not validate:\n{e}"),
    };
    let job = &file.jobs[0];
    assert_eq!(job.id, "hello");
    let summary = job.steps.iter().find(|s| s.id == "summary");
    assert_eq!(
        summary.map(|s| s.needs.len()),
        Some(3),
        "summary fans in from three steps"
    );
    assert!(
        job.steps
            .iter()
            .all(|s| matches!(s.kind, StepKind::Sh { .. }))
    );
    assert!(
        job.steps
            .iter()
            .any(|s| s.when == rota_core::model::When::Always)
    );
}
