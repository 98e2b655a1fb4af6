//! The example job files shipped in the repository validate.

use std::path::Path;

use rota_core::kinds::check::CheckStep;
use rota_core::kinds::http::HttpStep;
use rota_core::kinds::sh::ShStep;
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
    assert!(job.steps.iter().all(|s| s.kind.name() == "sh"));
    assert!(
        job.steps
            .iter()
            .any(|s| s.when == rota_core::model::When::Always)
    );
}

/// Runs the example the way the engine will, in miniature: steps in dependency order, each
/// rendered and given to a real `sh -c`, outputs read back from `$ROTA_OUTPUT`.
#[test]
fn hello_example_runs_under_plain_sh_and_passes_its_output_along() {
    use rota_core::template::{Context, StepContext, render};

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello.yaml");
    let job = match load_file(&path) {
        Ok(mut f) => f.jobs.remove(0),
        Err(e) => panic!("{e}"),
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut ctx = Context::default();
    for p in &job.params {
        ctx.params
            .insert(p.name.clone(), p.default.clone().unwrap_or_default());
    }
    ctx.run.id = "run-1".into();
    ctx.run.job = job.id.clone();
    let mut printed = Vec::new();
    for i in rota_core::dag::topological_order(&job) {
        let step = &job.steps[i];
        let Ok(ShStep { command }) = step.kind.decode::<ShStep>() else {
            panic!("hello.yaml only has sh steps")
        };
        let command = render(&command, &ctx).unwrap_or_else(|e| panic!("{}: {e}", step.id));
        let output_file = dir.path().join(format!("{}.out", step.id));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .env("ROTA_OUTPUT", &output_file)
            .output()
            .unwrap_or_else(|e| panic!("cannot run sh: {e}"));
        assert!(out.status.success(), "step {} failed: {out:?}", step.id);
        printed.push(String::from_utf8_lossy(&out.stdout).into_owned());
        let mut result = StepContext {
            status: "succeeded".into(),
            exit_code: out.status.code(),
            ..StepContext::default()
        };
        for line in std::fs::read_to_string(&output_file)
            .unwrap_or_default()
            .lines()
        {
            if let Some((k, v)) = line.split_once('=') {
                result.outputs.insert(k.to_owned(), v.to_owned());
            }
        }
        ctx.steps.insert(step.id.clone(), result);
    }
    let kernel = ctx
        .steps
        .get("kernel")
        .and_then(|s| s.outputs.get("kernel"))
        .cloned()
        .unwrap_or_default();
    assert!(!kernel.is_empty(), "the kernel step published no output");
    assert!(
        printed.contains(&format!("running on kernel {kernel}\n")),
        "summary did not receive the output: {printed:?}"
    );
    assert!(
        printed.contains(&"hello from hello\n".to_owned()),
        "{printed:?}"
    );
}

#[test]
fn http_example_validates_with_its_http_steps() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/http.yaml");
    let file = match load_file(&path) {
        Ok(f) => f,
        Err(e) => panic!("examples/http.yaml does not validate:\n{e}"),
    };
    let kinds: Vec<(&str, Option<&str>)> = file.jobs[0]
        .steps
        .iter()
        .map(|s| {
            let method = match &s.kind {
                http if http.name() == "http" => {
                    http.decode::<HttpStep>().ok().map(|h| h.method.as_str())
                }
                _ => None,
            };
            (s.id.as_str(), method)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("health", Some("GET")),
            ("report", None),
            ("notify", Some("POST"))
        ]
    );
}

#[test]
fn check_example_validates_with_a_gate_and_a_verification() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/check.yaml");
    let file = match load_file(&path) {
        Ok(f) => f,
        Err(e) => panic!("examples/check.yaml does not validate:\n{e}"),
    };
    let kinds: Vec<(&str, Option<bool>)> = file.jobs[0]
        .steps
        .iter()
        .map(|s| {
            let wait = match &s.kind {
                check if check.name() == "check" => {
                    check.decode::<CheckStep>().ok().map(|c| c.wait)
                }
                _ => None,
            };
            (s.id.as_str(), wait)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("target_up", Some(true)),
            ("error_rate", Some(false)),
            ("deploy", None)
        ]
    );
}

#[test]
fn notify_example_validates_with_its_rules() {
    use rota_core::model::{NotifyChannel, NotifyEvent};
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/notify.yaml");
    let file = match load_file(&path) {
        Ok(f) => f,
        Err(e) => panic!("examples/notify.yaml does not validate:\n{e}"),
    };
    let rules = &file.jobs[0].notify;
    assert_eq!(
        rules.iter().map(|r| r.on.clone()).collect::<Vec<_>>(),
        [
            vec![NotifyEvent::Failure, NotifyEvent::Recovery],
            vec![NotifyEvent::DurationExceeded],
        ]
    );
    assert!(matches!(rules[0].channel, NotifyChannel::Slack { .. }));
    assert_eq!(rules[1].after, Some(std::time::Duration::from_secs(1800)));
}

#[test]
fn approval_example_validates_with_its_rules() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/approval.yaml");
    let file = match load_file(&path) {
        Ok(f) => f,
        Err(e) => panic!("examples/approval.yaml does not validate:\n{e}"),
    };
    let rules = file.jobs[0]
        .approval
        .as_ref()
        .map(|a| (a.quorum, a.allow_self));
    assert_eq!(rules, Some((2, false)));
}

/// `rota serve --jobs examples` (the README's first command) shows jobs on schedules.
#[test]
fn scheduled_example_holds_jobs_on_every_kind_of_schedule() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/scheduled.yaml");
    let file = match load_file(&path) {
        Ok(f) => f,
        Err(e) => panic!("examples/scheduled.yaml does not validate:\n{e}"),
    };
    let ids: Vec<&str> = file.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["heartbeat", "disk-report", "disk-alert"]);
    assert!(file.jobs.iter().all(|j| !j.triggers.is_empty()));
}
