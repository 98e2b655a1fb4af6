//! Where jobs come from and where runs live: file formats, files with several jobs, stored
//! jobs run by id, namespaces (explicit and the stable ephemeral one), `rota jobs`.

use crate::util::{Rota, assert_code, assert_stderr_has, assert_stdout_has, step};

#[test]
fn toml_and_json_job_files_run_like_yaml() {
    let rota = Rota::new();
    rota.write(
        "job.toml",
        "id = \"toml-job\"\n[[steps]]\nid = \"one\"\nsh = \"echo from=toml >> \\\"$ROTA_OUTPUT\\\"\"\n",
    );
    rota.write(
        "job.json",
        r#"{"id": "json-job", "steps": [{"id": "one", "exec": ["sh", "-c", "echo from=json >> \"$ROTA_OUTPUT\""]}]}"#,
    );
    for (file, from) in [("job.toml", "toml"), ("job.json", "json")] {
        let run = rota.json_ok(&["run", file]);
        assert_eq!(step(&run, "one")["outputs"]["from"], from, "{run:#}");
    }
}

#[test]
fn a_file_with_several_jobs_needs_job_to_choose() {
    let rota = Rota::new();
    rota.write(
        "many.yaml",
        "- id: first-job\n  steps:\n    - id: s\n      sh: touch first.ran\n- id: second-job\n  steps:\n    - id: s\n      sh: touch second.ran\n",
    );
    let output = rota.run(["run", "many.yaml"]);
    assert_code(&output, 2);
    assert_stderr_has(&output, "first-job");
    assert_stderr_has(&output, "second-job");
    let run = rota.json_ok(&["run", "many.yaml", "--job", "second-job"]);
    assert_eq!(run["job"], "second-job");
    assert!(rota.path("second.ran").exists());
    assert!(!rota.path("first.ran").exists());
    assert_code(&rota.run(["run", "many.yaml", "--job", "third-job"]), 2);
}

#[test]
fn namespaces_are_explicit_or_stable_per_file() {
    let rota = Rota::new();
    let plain = "id: ns-job\nsteps:\n  - id: s\n    sh: echo hi\n";
    rota.write("a/job.yaml", plain);
    rota.write("b/job.yaml", plain);
    rota.write(
        "named.yaml",
        "id: named-job\nnamespace: ops\nsteps:\n  - id: s\n    sh: echo hi\n",
    );

    let ns = |file: &str| {
        let run = rota.json_ok(&["run", file]);
        run["namespace"].as_str().expect("namespace").to_owned()
    };
    let a1 = ns("a/job.yaml");
    let a2 = ns("a/job.yaml");
    let b = ns("b/job.yaml");
    assert_eq!(a1, a2, "the same file gets the same ephemeral namespace");
    assert_ne!(a1, b, "another file gets another namespace");
    assert_eq!(ns("named.yaml"), "ops");

    let (runs, _) = rota.run_json(&["runs", "--namespace", "ops"]);
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs:#}");
    let (runs, _) = rota.run_json(&["runs", "--namespace", &a1]);
    assert_eq!(runs.as_array().map(Vec::len), Some(2), "{runs:#}");
}

#[test]
fn a_stored_job_runs_by_id_and_jobs_lists_it() {
    let rota = Rota::new();
    rota.write(
        "stored.yaml",
        "id: stored-job\nnamespace: default\nsteps:\n  - id: s\n    sh: echo \"n=$((1+1))\" >> \"$ROTA_OUTPUT\"\n",
    );
    let first = rota.json_ok(&["run", "stored.yaml"]);

    let listing = rota.run(["jobs"]);
    assert_code(&listing, 0);
    assert_stdout_has(&listing, "stored-job");
    let jobs = rota.json_ok(&["jobs"]);
    assert_eq!(jobs[0]["id"], "stored-job");
    assert_eq!(jobs[0]["namespace"], "default");

    // Not a file in the working directory any more: the stored revision runs.
    std::fs::remove_file(rota.path("stored.yaml")).expect("remove the file");
    let second = rota.json_ok(&["run", "stored-job"]);
    assert_eq!(second["job"], "stored-job");
    assert_ne!(second["id"], first["id"]);
    assert_eq!(step(&second, "s")["outputs"]["n"], "2");

    assert_code(&rota.run(["run", "never-stored-job"]), 2);
}

/// `rota jobs put` saves one job per file, locally as through a server (locally it used to
/// save every job of the file; a server never could).
#[test]
fn jobs_put_saves_one_job_per_file_locally_too() {
    let rota = Rota::new();
    rota.write(
        "many.yaml",
        "- id: first-job\n  steps:\n    - id: s\n      sh: 'true'\n- id: second-job\n  steps:\n    - id: s\n      sh: 'true'\n",
    );
    let output = rota.run(["jobs", "put", "many.yaml"]);
    assert_code(&output, 2);
    assert_stderr_has(&output, "one job per file; this file defines 2");
    let jobs = rota.json_ok(&["jobs"]);
    assert_eq!(jobs, serde_json::json!([]));
    rota.write(
        "one.yaml",
        "id: one-job\nsteps:\n  - id: s\n    sh: 'true'\n",
    );
    let saved = rota.json_ok(&["jobs", "put", "one.yaml"]);
    assert_eq!(saved[0]["id"], "one-job");
    assert_eq!(saved[0]["revision"], 1);
    assert_eq!(saved[0]["source_path"], serde_json::Value::Null);
}
