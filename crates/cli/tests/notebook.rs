//! `notebook:` steps through `rota run`, against a real ipykernel (found like the notebook
//! crate's tests find it: `jupyter` kernelspecs on `JUPYTER_PATH`, as `.ci/run` sets up):
//! secrets never reach a file kept with the run, dry-run modes, one cell numbering and the
//! traceback in the log, a quiet stderr, and no kernel left after a SIGKILL.

use std::path::Path;

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::util::{
    Rota, assert_code, describe, finish, json, processes_with, signal, stderr, stdout, wait_gone,
    wait_until, wait_until_or,
};

/// A notebook of code cells; a cell whose source starts with `#parameters` is tagged
/// `parameters`.
fn notebook(cells: &[&str]) -> String {
    let cells: Vec<Value> = cells
        .iter()
        .enumerate()
        .map(|(i, src)| {
            let tags: Vec<&str> = if src.starts_with("#parameters") {
                vec!["parameters"]
            } else {
                vec![]
            };
            json!({"cell_type": "code", "execution_count": null, "id": format!("c{i}"),
                   "metadata": {"tags": tags}, "outputs": [], "source": src})
        })
        .collect();
    json!({
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5
    })
    .to_string()
}

/// Every file under `dir`, with its bytes.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                found.push((path, bytes));
            }
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

const SECRET: &str = "nb-s3cr3t-Value/42";

#[test]
fn notebook_secrets_never_reach_a_file_kept_with_the_run() {
    let rota = Rota::new().env("NB_TOKEN", SECRET);
    rota.write(
        "leak.ipynb",
        &notebook(&[
            "#parameters\ntoken = ''",
            // The kernel got the real value (its reverse is no masked form).
            "print('reversed', token[::-1])\nprint('plain', token)\nimport sys; print('err', token, file=sys.stderr)",
            "import base64\nprint('b64', base64.b64encode(token.encode()).decode())",
            "from IPython.display import display\ndisplay({'text/plain': 'shown ' + token, 'text/html': '<b>' + token + '</b>'}, raw=True, metadata={'leak': token, token: 1})\ntoken",
            "import json\nprint(json.dumps({'t': token}))\nprint('%s' % token.replace('/', '%2F'))",
            "raise ValueError('bad token ' + token)",
        ]),
    );
    rota.write(
        "leak.yaml",
        r#"id: nb-leak
secrets: [NB_TOKEN]
steps:
  - id: nb
    notebook: leak.ipynb
    params:
      token: "{{ secrets.NB_TOKEN }}"
"#,
    );
    let out = rota.run(["run", "leak.yaml", "--output", "json"]);
    assert_code(&out, 1);
    let run = json(&out);
    let reversed: String = SECRET.chars().rev().collect();
    // The secret's base64, and its percent-encoded form.
    let forms = [SECRET, "bmItczNjcjN0LVZhbHVlLzQy", "nb-s3cr3t-Value%2F42"];

    // The live output and the stored log lines.
    let logs = rota.run(["logs", run["id"].as_str().expect("run id")]);
    assert_code(&logs, 0);
    let text = format!("{}{}{}", stdout(&out), stderr(&out), stdout(&logs));
    assert!(text.contains(&reversed), "the kernel got the value: {text}");
    for form in forms {
        assert!(!text.contains(form), "{form:?} in output:\n{text}");
    }

    // Every file of the installation: the output notebook, its report, the store.
    let files = files_under(rota.home());
    let kept: Vec<_> = files
        .iter()
        .filter(|(p, _)| {
            p.extension()
                .is_some_and(|e| e == "ipynb" || e == "html" || e == "md")
        })
        .collect();
    assert!(
        kept.len() >= 2,
        "the output notebook and its report are kept: {:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for (path, bytes) in &files {
        for form in forms {
            assert!(
                !contains(bytes, form),
                "{form:?} in {}:\n{}",
                path.display(),
                String::from_utf8_lossy(bytes)
            );
        }
    }
    // What was masked is still a notebook, showing where values were.
    let (nb_path, nb_bytes) = kept
        .iter()
        .find(|(p, _)| p.extension().is_some_and(|e| e == "ipynb"))
        .expect("output notebook");
    let nb: Value = serde_json::from_slice(nb_bytes)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", nb_path.display()));
    assert_eq!(nb["metadata"]["papermill"]["parameters"]["token"], "***");
    assert!(
        contains(nb_bytes, "plain ***"),
        "{}",
        String::from_utf8_lossy(nb_bytes)
    );
}

fn marker_job(rota: &Rota, mode: Option<&str>) {
    rota.write(
        "mark.ipynb",
        &notebook(&[
            "#parameters\ndry_run = False",
            "open('ran-' + str(dry_run), 'w').write('x')\nprint('executed with dry_run', dry_run)",
        ]),
    );
    let mode = mode
        .map(|m| format!("    dry_run: {m}\n"))
        .unwrap_or_default();
    rota.write(
        "mark.yaml",
        &format!("id: nb-mark\nsteps:\n  - id: nb\n    notebook: mark.ipynb\n{mode}"),
    );
}

#[test]
fn notebook_dry_runs_follow_the_step_dry_run_mode() {
    // echo-only (the default): a `would run` line, nothing executed.
    let rota = Rota::new();
    marker_job(&rota, None);
    let out = rota.run(["run", "mark.yaml", "--dry-run", "--output", "json"]);
    assert_code(&out, 0);
    let run = json(&out);
    let logs = rota.run(["logs", run["id"].as_str().expect("run id")]);
    assert!(
        stdout(&logs).contains("dry run: would run notebook")
            && stdout(&logs).contains("mark.ipynb"),
        "{}",
        describe(&logs)
    );
    assert!(!rota.path("ran-True").exists() && !rota.path("ran-False").exists());

    // `run`: executed for real, told it is a dry run.
    let rota = Rota::new();
    marker_job(&rota, Some("run"));
    let out = rota.run(["run", "mark.yaml", "--dry-run", "--output", "json"]);
    assert_code(&out, 0);
    assert!(rota.path("ran-True").exists(), "{}", describe(&out));
    let run = json(&out);
    let logs = rota.run(["logs", run["id"].as_str().expect("run id")]);
    assert!(
        stdout(&logs).contains("executed with dry_run True"),
        "{}",
        describe(&logs)
    );
    assert!(!stdout(&logs).contains("would run"), "{}", describe(&logs));
}

#[test]
fn a_failing_cell_has_one_number_and_its_traceback_in_the_log() {
    let rota = Rota::new();
    rota.write(
        "fail.ipynb",
        &notebook(&[
            "x = 1",
            "def f():\n    raise ValueError('boom')\nf()",
            "print('never')",
        ]),
    );
    rota.write(
        "fail.yaml",
        "id: nb-fail\nsteps:\n  - id: nb\n    notebook: fail.ipynb\n",
    );
    let out = rota.run(["run", "fail.yaml", "--output", "json"]);
    assert_code(&out, 1);
    let run = json(&out);
    let step = crate::util::step(&run, "nb");
    assert_eq!(step["reason"], "cell 2 failed: ValueError: boom", "{run:#}");
    let logs = rota.run(["logs", run["id"].as_str().expect("run id")]);
    let text = stdout(&logs);
    assert!(text.contains("cell 2/3 failed"), "{text}");
    // The traceback names the function the error came from; no colour codes.
    assert!(text.contains("in f()") || text.contains("f()"), "{text}");
    assert!(text.contains("ValueError: boom"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
    let report = files_under(rota.home())
        .into_iter()
        .find(|(p, _)| p.extension().is_some_and(|e| e == "html"))
        .expect("report kept");
    let html = String::from_utf8_lossy(&report.1);
    assert!(html.contains("cell 2 · code In [2] · failed"), "{html}");
}

#[test]
fn notebook_runs_keep_stderr_plain_and_logs_free_of_the_kernel_banner() {
    let rota = Rota::new();
    rota.write(
        "hi.ipynb",
        &notebook(&["print('hello from the kernel')", "1 + 1"]),
    );
    rota.write(
        "hi.yaml",
        "id: nb-hi\nsteps:\n  - id: nb\n    notebook: hi.ipynb\n",
    );
    for _ in 0..2 {
        let out = rota.run(["run", "hi.yaml"]);
        assert_code(&out, 0);
        assert!(
            !out.stderr.contains(&0x1b) && !out.stdout.contains(&0x1b),
            "{}",
            describe(&out)
        );
        assert!(!stderr(&out).contains("zeromq"), "{}", describe(&out));
        assert!(
            stdout(&out).contains("hello from the kernel"),
            "{}",
            describe(&out)
        );
        for banner in [
            "Ctrl-C will not work",
            "To connect another client",
            "--existing",
        ] {
            assert!(!stdout(&out).contains(banner), "{}", describe(&out));
        }
    }
    let runs = rota.runs();
    let logs = rota.run(["logs", runs[0]["id"].as_str().expect("run id")]);
    for banner in ["Ctrl-C will not work", "To connect another client"] {
        assert!(!stdout(&logs).contains(banner), "{}", describe(&logs));
    }
}

#[test]
fn a_sigkilled_rota_run_leaves_no_kernel() {
    let rota = Rota::new();
    // The cell starts a child in the kernel's process group: PDEATHSIG stops the kernel
    // alone; the guardian must stop the group.
    rota.write(
        "slow.ipynb",
        &notebook(&[
            "import os, subprocess, time\nchild = subprocess.Popen(['sleep', '300'])\nopen('pids', 'w').write(f'{os.getpid()} {child.pid}')\ntime.sleep(300)",
        ]),
    );
    rota.write(
        "slow.yaml",
        "id: nb-slow\nsteps:\n  - id: nb\n    notebook: slow.ipynb\n",
    );
    let child = rota.spawn(["run", "slow.yaml"]);
    let pid_file = rota.path("pids");
    let mut pids = Vec::new();
    wait_until("the kernel to run its cell", || {
        pids = std::fs::read_to_string(&pid_file)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
            .collect();
        pids.len() == 2
    });
    signal(child.id(), Signal::SIGKILL);
    let output = finish(child, "the killed rota run");
    assert_eq!(output.status.code(), None, "rota was killed by a signal");
    wait_gone(pids[0], "the kernel");
    wait_gone(pids[1], "the process the kernel's cell started");
    rota.assert_no_processes_left();
}

#[test]
fn a_sigkilled_rota_run_leaves_no_kernel_nor_any_process_its_cell_started() {
    // Every process of interest carries the marker in its command line: the kernel names
    // its connection file, which lies in this runtime directory; the cell's processes get it
    // as their `argv[0]`.
    let runtime = tempfile::Builder::new()
        .prefix("rota-kernel-marker-")
        .tempdir()
        .expect("runtime dir");
    let marker = runtime
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a UTF-8 name")
        .to_owned();
    let rota = Rota::new().env(
        "JUPYTER_RUNTIME_DIR",
        runtime.path().to_str().expect("UTF-8 path"),
    );
    // One `sleep` stays in the kernel's process group; the other leaves it (`setsid`), so
    // only the kernel's cgroup still holds it.
    let cell = format!(
        "import shutil, subprocess, time\n\
         sleep = shutil.which('sleep')\n\
         grouped = subprocess.Popen(['{marker}-grouped', '600'], executable=sleep)\n\
         detached = subprocess.Popen(['{marker}-detached', '600'], executable=sleep, start_new_session=True)\n\
         open('started', 'w').write(f'{{grouped.pid}} {{detached.pid}}')\n\
         time.sleep(600)"
    );
    rota.write("detach.ipynb", &notebook(&[&cell]));
    rota.write(
        "detach.yaml",
        "id: nb-detach\nsteps:\n  - id: nb\n    notebook: detach.ipynb\n",
    );
    let child = rota.spawn(["run", "detach.yaml"]);
    let started = rota.path("started");
    wait_until("the cell to start its processes", || {
        std::fs::read_to_string(&started).is_ok_and(|t| t.split_whitespace().count() == 2)
    });
    let running = processes_with(&marker);
    for what in ["kernel-rota-", "-grouped", "-detached"] {
        assert!(
            running.iter().any(|p| p.contains(what)),
            "no process with {what:?} among {running:?}"
        );
    }

    signal(child.id(), Signal::SIGKILL);
    let output = finish(child, "the killed rota run");
    assert_eq!(output.status.code(), None, "rota was killed by a signal");
    let mut left = Vec::new();
    let gone = wait_until_or(|| {
        left = processes_with(&marker);
        left.is_empty()
    });
    assert!(gone, "processes left behind: {left:?}");
    rota.assert_no_processes_left();
}

/// A notebook publishes outputs two ways — `key=value` lines to `$ROTA_OUTPUT`, and scraps
/// glued as scrapbook's `glue` writes them — and a later step reads both; the kernel gets
/// the step's environment like a process step; a secret value in an output is masked.
#[test]
fn a_notebook_publishes_outputs_a_later_step_reads() {
    let rota = Rota::new().env("TOKEN", "hunter2-token");
    rota.write(
        "publish.ipynb",
        &notebook(&[
            "#parameters\ntoken = ''",
            "import os\nwith open(os.environ['ROTA_OUTPUT'], 'a') as f:\n    \
             f.write('rows=42\\n')\n    f.write('region=' + os.environ['REGION'] + '\\n')\n    \
             f.write('leak=' + token + '\\n')",
            "from IPython.display import display\n\
             def glue(name, data):\n    \
             display({'application/scrapbook.scrap.json+json': \
             {'name': name, 'data': data, 'encoder': 'json', 'version': 1}}, raw=True)\n\
             glue('summary', {'ok': True, 'n': 3})\nglue('label', 'nightly')",
        ]),
    );
    rota.write(
        "publish.yaml",
        "id: nb-publish\nsecrets: [TOKEN]\nsteps:\n  - id: nb\n    notebook: publish.ipynb\n    \
         params: { token: \"{{ secrets.TOKEN }}\" }\n    env: { REGION: eu-west }\n  \
         - id: after\n    needs: [nb]\n    \
         sh: echo \"got {{ steps.nb.outputs.rows }} {{ steps.nb.outputs.region }} {{ steps.nb.outputs.label }} {{ steps.nb.outputs.summary }}\"\n",
    );
    let out = rota.run(["run", "publish.yaml", "--output", "json"]);
    assert_code(&out, 0);
    let run = json(&out);
    let nb = run["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["id"] == "nb"))
        .expect("step nb");
    let outputs = &nb["outputs"];
    assert_eq!(outputs["rows"], "42", "{nb}");
    assert_eq!(outputs["region"], "eu-west", "{nb}");
    assert_eq!(outputs["label"], "nightly", "{nb}");
    assert_eq!(outputs["summary"], r#"{"n":3,"ok":true}"#, "{nb}");
    assert!(
        !outputs["leak"]
            .as_str()
            .unwrap_or_default()
            .contains("hunter2"),
        "{nb}"
    );
    let logs = rota.run(["logs", run["id"].as_str().expect("run id")]);
    assert!(
        stdout(&logs).contains(r#"got 42 eu-west nightly {"n":3,"ok":true}"#),
        "{}",
        describe(&logs)
    );
}
