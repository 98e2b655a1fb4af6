//! `rota retry RUN --from STEP --resume`: a failed notebook step continues from its failed
//! cell in a fresh kernel, replaying only the parameters and `setup` cells before it (or
//! every cell before it when none is tagged), keeping the other cells' outputs, locally and
//! through a server, against a real ipykernel.

use serde_json::{Value, json};

use crate::notebook_tools::validate;
use crate::util::{Rota, assert_code, assert_stderr_has, describe, json, stdout, step};

/// A notebook whose fourth cell of its own fails until the file `flag` exists. Each cell
/// appends its name to `ran.log`, so what ran (and how often) can be counted.
fn notebook(tag_setup: bool) -> String {
    let setup_tags: Vec<&str> = if tag_setup { vec!["setup"] } else { vec![] };
    let code = |id: &str, tags: &[&str], source: &str| {
        json!({"cell_type": "code", "execution_count": null, "id": id,
               "metadata": {"tags": tags}, "outputs": [], "source": source})
    };
    let log = |name: &str| format!("open(log_path, 'a').write('{name}\\n')\n");
    json!({
        "cells": [
            code("params", &["parameters"], "flag = ''\nlog_path = ''"),
            code("setup", &setup_tags, &format!("{}import os\nbase = 41", log("setup"))),
            {"cell_type": "markdown", "id": "prose", "metadata": {}, "source": "## The work"},
            code("work", &[], &format!("{}print('work done')", log("work"))),
            code("check", &[], &format!(
                "{}if not os.path.exists(flag):\n    raise RuntimeError('flag missing')\nanswer = base + 1",
                log("check")
            )),
            code("publish", &[], &format!(
                "{}open(os.environ.get('ROTA_OUTPUT', os.devnull), 'a').write(f'answer={{answer}}\\n')",
                log("publish")
            )),
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5
    })
    .to_string()
}

fn job(rota: &Rota) -> String {
    format!(
        "id: resumable\nsteps:\n  - id: prepare\n    sh: echo prepared\n  - id: nb\n    needs: [prepare]\n    notebook: resumable.ipynb\n    params:\n      flag: {}\n      log_path: {}\n  - id: after\n    needs: [nb]\n    sh: 'echo got {{{{ steps.nb.outputs.answer }}}}'\n",
        rota.path("flag").display(),
        rota.path("ran.log").display(),
    )
}

/// The job and its notebook, beside each other and in `jobs/` (for a server).
fn write_job(rota: &Rota, tag_setup: bool) {
    for dir in ["", "jobs/"] {
        rota.write(&format!("{dir}resumable.ipynb"), &notebook(tag_setup));
        rota.write(&format!("{dir}resumable.yaml"), &job(rota));
    }
}

/// The job, run once (here, or through the server `over` names): it fails at the `check`
/// cell (cell 6, counting the injected and Markdown cells).
fn failed_run(rota: &Rota, tag_setup: bool, over: &[&str]) -> String {
    if over.is_empty() {
        write_job(rota, tag_setup);
    }
    let mut args: Vec<&str> = over.to_vec();
    let file = rota.path("resumable.yaml");
    let target = if over.is_empty() {
        file.to_str().expect("utf-8")
    } else {
        "resumable"
    };
    args.extend(["run", target, "--output", "json"]);
    let out = rota.run(&args);
    assert_code(&out, 1);
    let run = json(&out);
    let reason = step(&run, "nb")["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("cell 6 failed: RuntimeError: flag missing"),
        "{run:#}"
    );
    assert_eq!(ran(rota), ["setup", "work", "check"]);
    run["id"].as_str().expect("run id").to_owned()
}

/// The cells that ran so far, in order.
fn ran(rota: &Rota) -> Vec<String> {
    std::fs::read_to_string(rota.path("ran.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The retry's executed notebook, downloaded as an artifact and validated by nbformat.
fn executed(rota: &Rota, run: &str, over: &[&str]) -> Value {
    let out_path = rota.path(&format!("{run}.ipynb"));
    let mut args: Vec<&str> = over.to_vec();
    let out_str = out_path.to_str().expect("utf-8");
    args.extend([
        "artifacts",
        run,
        "nb",
        "--get",
        "executed.ipynb",
        "-o",
        out_str,
    ]);
    let out = rota.run(&args);
    assert_code(&out, 0);
    validate(&out_path);
    serde_json::from_str(&std::fs::read_to_string(&out_path).expect("read")).expect("JSON")
}

fn cell<'a>(nb: &'a Value, id: &str) -> &'a Value {
    nb["cells"]
        .as_array()
        .and_then(|cells| cells.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no cell {id}: {nb:#}"))
}

#[test]
fn a_failed_notebook_resumes_from_its_failed_cell_replaying_only_setup_cells() {
    let rota = Rota::new();
    let original = failed_run(&rota, true, &[]);
    rota.write("flag", "");
    let out = rota.run([
        "retry", &original, "--from", "nb", "--resume", "--output", "json",
    ]);
    assert_code(&out, 0);
    let retry = json(&out);
    assert_eq!(step(&retry, "nb")["status"], "succeeded", "{retry:#}");
    assert_eq!(step(&retry, "nb")["outputs"]["answer"], "42");
    assert_eq!(step(&retry, "after")["status"], "succeeded");
    // The setup cell ran again (its `base` is needed), the work cell did not.
    assert_eq!(
        ran(&rota),
        ["setup", "work", "check", "setup", "check", "publish"]
    );
    let id = retry["id"].as_str().expect("run id");
    let logs = stdout(&rota.run(["logs", id]));
    assert!(
        logs.contains(
            "resuming at cell 6: replaying cells 1, 2, 3 (the parameters cells and the cells \
             tagged `setup`); 2 earlier cell(s) keep their outputs"
        ),
        "{logs}"
    );
    let nb = executed(&rota, id, &[]);
    let resume = &nb["metadata"]["rota"]["resume"];
    assert_eq!(resume["from"], format!("run {original}"), "{resume:#}");
    assert_eq!(resume["failed_cell"], 6);
    assert_eq!(resume["replayed_cells"], json!([1, 2, 3]));
    assert_eq!(resume["replayed"], "tagged setup");
    // The work cell keeps the first run's output; the failed cell shows this run's.
    let work = cell(&nb, "work");
    assert_eq!(work["metadata"]["rota"]["resume"], "kept");
    assert_eq!(
        work["outputs"][0]["text"],
        json!(["work done\n"]),
        "{work:#}"
    );
    assert_eq!(cell(&nb, "setup")["metadata"]["rota"]["resume"], "replayed");
    assert_eq!(cell(&nb, "check")["outputs"], json!([]));
    assert_eq!(
        cell(&nb, "check")["metadata"]["papermill"]["status"],
        "completed"
    );
    assert!(
        !nb["cells"].to_string().contains("papermill-error-cell"),
        "the first run's error banner is gone: {nb:#}"
    );
}

#[test]
fn without_setup_tags_every_cell_before_the_failed_one_is_replayed_and_said_so() {
    let rota = Rota::new();
    let original = failed_run(&rota, false, &[]);
    rota.write("flag", "");
    let out = rota.run(["retry", &original, "--from", "nb", "--resume"]);
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains("no cell before it is tagged `setup`, so every cell before it"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        ran(&rota),
        [
            "setup", "work", "check", "setup", "work", "check", "publish"
        ]
    );
}

#[test]
fn a_resume_that_cannot_work_is_refused_before_anything_runs() {
    let rota = Rota::new();
    let original = failed_run(&rota, true, &[]);
    let without_from = rota.run(["retry", &original, "--resume"]);
    assert_code(&without_from, 2);
    assert_stderr_has(&without_from, "--from");
    let shell_step = rota.run(["retry", &original, "--from", "prepare", "--resume"]);
    assert_code(&shell_step, 2);
    assert_stderr_has(&shell_step, "step \"prepare\"");
    assert_stderr_has(&shell_step, "is a sh step");
    // A retry that resumed and succeeded has nothing left to resume.
    rota.write("flag", "");
    let out = rota.run([
        "retry", &original, "--from", "nb", "--resume", "--output", "json",
    ]);
    assert_code(&out, 0);
    let retry = json(&out)["id"].as_str().expect("run id").to_owned();
    let again = rota.run(["retry", &retry, "--from", "nb", "--resume"]);
    assert_code(&again, 2);
    assert_stderr_has(&again, "did not stop at a cell (succeeded)");
    assert_eq!(rota.runs().len(), 2, "no refused retry was queued");
}

#[test]
fn a_resume_through_a_server_continues_the_notebook_there() {
    let rota = Rota::new();
    write_job(&rota, true);
    let server = rota.serve(&rota.path("jobs"));
    let over = ["--server", &server.url, "--token", &server.admin_token];
    let original = failed_run(&rota, true, &over);
    rota.write("flag", "");
    let mut args = over.to_vec();
    args.extend([
        "retry", &original, "--from", "nb", "--resume", "--output", "json",
    ]);
    let out = rota.run(&args);
    assert_code(&out, 0);
    let retry = json(&out);
    assert_eq!(step(&retry, "nb")["outputs"]["answer"], "42", "{retry:#}");
    assert_eq!(
        ran(&rota),
        ["setup", "work", "check", "setup", "check", "publish"]
    );
    let nb = executed(&rota, retry["id"].as_str().expect("run id"), &over);
    assert_eq!(nb["metadata"]["rota"]["resume"]["failed_cell"], 6);
}

#[test]
fn the_resumable_runbook_example_resumes_without_announcing_twice() {
    let rota = Rota::new();
    let example = crate::util::example("resume.ipynb");
    let example = example.to_str().expect("utf-8");
    let ready = rota.path("upstream-ready");
    let ready_param = format!("ready_file={}", ready.display());
    let lint = rota.run(["runbook", "lint", example]);
    assert_code(&lint, 0);
    let out = rota.run(["run", example, "-p", &ready_param, "--output", "json"]);
    assert_code(&out, 1);
    let original = json(&out);
    let reason = step(&original, "notebook")["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("is not there yet"), "{original:#}");
    let id = original["id"].as_str().expect("run id");
    rota.write("upstream-ready", "");
    let out = rota.run([
        "retry", id, "--from", "notebook", "--resume", "--output", "json",
    ]);
    assert_code(&out, 0);
    let retry = json(&out);
    let outputs = &step(&retry, "notebook")["outputs"];
    assert_eq!(outputs["rows"], "3", "{retry:#}");
    assert_eq!(outputs["total"], "16");
    let logs = stdout(&rota.run(["logs", retry["id"].as_str().expect("run id")]));
    assert!(!logs.contains("announcing"), "announced twice: {logs}");
    assert!(logs.contains("published"), "{logs}");
}

#[test]
fn rota_notebook_run_resumes_from_a_failed_output_notebook() {
    let rota = Rota::new();
    let input = rota.write("nb.ipynb", &notebook(true));
    let flag = rota.path("flag");
    let log = rota.path("ran.log");
    let params = [
        "-p",
        "flag",
        flag.to_str().expect("utf-8"),
        "-p",
        "log_path",
        log.to_str().expect("utf-8"),
    ];
    let input = input.to_str().expect("utf-8");
    let mut first = vec!["notebook", "run", input, "failed.ipynb"];
    first.extend(params);
    assert_code(&rota.run(&first), 1);
    rota.write("flag", "");
    let mut resumed = vec!["notebook", "run", input, "resumed.ipynb"];
    resumed.extend(params);
    resumed.extend(["--resume-from", "failed.ipynb"]);
    let out = rota.run(&resumed);
    assert_code(&out, 0);
    assert!(
        crate::util::stderr(&out).contains("resuming at cell 6"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        ran(&rota),
        ["setup", "work", "check", "setup", "check", "publish"]
    );
    validate(&rota.path("resumed.ipynb"));
    // A notebook that did not fail has nothing to resume: a usage error.
    let mut again = vec!["notebook", "run", input, "again.ipynb"];
    again.extend(params);
    again.extend(["--resume-from", "resumed.ipynb"]);
    let out = rota.run(&again);
    assert_code(&out, 1);
    crate::util::assert_stderr_has(&out, "no failed or interrupted cell to resume from");
}
