//! Runbooks: Markdown and notebook files run, validate and plan like job files
//! (`rota run FILE.md`, `rota run FILE.ipynb` against a real ipykernel), and the runbook
//! library (`rota runbook init|new|lint`).

use std::path::Path;

use serde_json::{Value, json};

use crate::util::{Rota, as_user, assert_code, assert_stderr_has, example, stdout, step};

/// A Markdown runbook whose second block fails when `fail` is true.
const FAILING: &str = r#"---
params:
  fail: { type: bool, default: false }
  who: { type: string, default: world }
---
# Greet

Say hello first.

```sh {id=hello}
echo "hello $ROTA_PARAM_WHO"
echo "greeted=$ROTA_PARAM_WHO" >> "$ROTA_OUTPUT"
```

```python {id=maybe-fail}
import os, sys
print("python sees", os.environ["ROTA_PARAM_WHO"])
sys.exit(3 if os.environ["ROTA_PARAM_FAIL"] == "true" else 0)
```

```text
prose, not a step
```

```sh
touch after-python
```
"#;

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn markdown_runbook_runs_its_blocks_in_order_with_params() {
    let rota = Rota::new();
    let file = rota.write("greet.md", FAILING);
    let (run, output) = rota.run_json(&["run", path_str(&file), "-p", "who=ops"]);
    assert_code(&output, 0);
    assert_eq!(run["job"], "greet");
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let ids: Vec<&str> = run["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["hello", "maybe-fail", "step-3"]);
    assert_eq!(step(&run, "hello")["outputs"]["greeted"], "ops");
    assert!(rota.path("after-python").exists());

    // A failing block fails the run (exit 1) and the blocks after it do not run.
    std::fs::remove_file(rota.path("after-python")).expect("remove");
    let (run, output) = rota.run_json(&["run", path_str(&file), "-p", "fail=true"]);
    assert_code(&output, 1);
    assert_eq!(run["status"], "failed");
    assert_eq!(step(&run, "maybe-fail")["exit_code"], 3);
    assert_ne!(step(&run, "step-3")["status"], "succeeded");
    assert!(!rota.path("after-python").exists());

    // An unknown parameter is a usage error, as for any job file.
    let output = rota.run(["run", path_str(&file), "-p", "nope=1"]);
    assert_code(&output, 2);
}

#[test]
fn markdown_runbook_dry_run_echoes_blocks() {
    let rota = Rota::new();
    let file = rota.write(
        "touch.md",
        "# Touch\n\n```sh {id=touch}\ntouch touched\n```\n\n```sh {id=always dry_run=run}\ntouch always\n```\n",
    );
    let (run, output) = rota.run_json(&["run", path_str(&file), "--dry-run"]);
    assert_code(&output, 0);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert!(!rota.path("touched").exists(), "echo-only by default");
    assert!(
        rota.path("always").exists(),
        "dry_run=run from the info string"
    );
}

#[test]
fn markdown_runbook_problems_name_line_and_column() {
    let rota = Rota::new();
    let file = rota.write(
        "bad.md",
        "---\nparams:\n  n: { type: nope }\n---\n# Bad\n\n```sh {id=a retry=lots}\necho a\n```\n\n```sh {id=b needs=ghost}\necho b\n```\n\n```python {id=c\nprint(1)\n```\n",
    );
    let output = rota.run(["validate", path_str(&file)]);
    assert_code(&output, 2);
    let text = format!("{}{}", stdout(&output), crate::util::stderr(&output));
    let name = path_str(&file);
    // The parameter's type in the front matter, at its own line.
    assert!(text.contains(&format!("{name}:3:")), "{text}");
    // `retry=lots` on line 7, at the attribute's column.
    assert!(text.contains(&format!("{name}:7:")), "{text}");
    assert!(text.contains("retry"), "{text}");
    // `needs=ghost` on line 11.
    assert!(text.contains(&format!("{name}:11:")), "{text}");
    assert!(text.contains("ghost"), "{text}");
    // The unclosed brace on line 15.
    assert!(text.contains(&format!("{name}:15:")), "{text}");

    let empty = rota.write("empty.md", "# Nothing to run\n\n```text\nhi\n```\n");
    let output = rota.run(["validate", path_str(&empty)]);
    assert_code(&output, 2);
    assert_stderr_has(&output, "at least one ```sh");
}

/// The notebook of `examples/runbook.ipynb` with `cells` replaced.
fn notebook_with(cells: Value) -> String {
    let mut nb: Value =
        serde_json::from_str(&std::fs::read_to_string(example("runbook.ipynb")).expect("read"))
            .expect("json");
    nb["cells"] = cells;
    serde_json::to_string_pretty(&nb).expect("json")
}

#[test]
fn notebook_runbook_runs_with_inferred_params_in_a_real_kernel() {
    let rota = Rota::new();
    let file = example("runbook.ipynb");
    let (run, output) =
        rota.run_json(&["run", path_str(&file), "-p", "target=prod", "-p", "count=5"]);
    assert_code(&output, 0);
    assert_eq!(run["job"], "runbook");
    assert_eq!(run["status"], "succeeded", "{run:#}");
    // `count` was inferred as an int: the kernel computed 5 * 2.
    assert_eq!(
        step(&run, "notebook")["outputs"]["greeting"],
        "hello prod x10"
    );

    // A value that is not of the inferred type is a usage error.
    let output = rota.run(["run", path_str(&file), "-p", "count=many"]);
    assert_code(&output, 2);

    // A failing cell fails the run.
    let failing = rota.write(
        "failing.ipynb",
        &notebook_with(json!([
            {"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]},
             "execution_count": null, "outputs": [], "source": "dry_run = True"},
            {"cell_type": "code", "id": "x", "metadata": {}, "execution_count": null,
             "outputs": [], "source": "raise SystemExit(4)"}
        ])),
    );
    let (run, output) = rota.run_json(&["run", path_str(&failing)]);
    assert_code(&output, 1);
    assert_eq!(run["status"], "failed");
}

#[test]
fn notebook_runbook_problems_name_the_cell() {
    let rota = Rota::new();
    let bad = rota.write(
        "bad.ipynb",
        &notebook_with(json!([
            {"cell_type": "markdown", "id": "t", "metadata": {}, "source": "# T"},
            {"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]},
             "execution_count": null, "outputs": [], "source": ["x = 1\n", "y = compute()\n"]}
        ])),
    );
    let output = rota.run(["validate", path_str(&bad)]);
    assert_code(&output, 2);
    assert_stderr_has(&output, "cell 1 (parameters), line 2");
    assert_stderr_has(&output, "`y`");

    // Job keys live in `metadata.rota`; a bad one is reported where it is in the file.
    let mut nb: Value =
        serde_json::from_str(&std::fs::read_to_string(example("runbook.ipynb")).expect("read"))
            .expect("json");
    nb["metadata"]["rota"] = json!({"concurrency": "lots"});
    let text = serde_json::to_string_pretty(&nb).expect("json");
    let line = text
        .lines()
        .position(|l| l.contains("\"concurrency\""))
        .expect("line")
        + 1;
    let meta = rota.write("meta.ipynb", &text);
    let output = rota.run(["validate", path_str(&meta)]);
    assert_code(&output, 2);
    assert_stderr_has(&output, &format!("meta.ipynb:{line}:"));
}

#[test]
fn examples_run_and_lint_clean() {
    let rota = Rota::new();
    let md = example("runbook.md");
    let (run, output) = rota.run_json(&["run", path_str(&md), "-p", "target=prod"]);
    assert_code(&output, 0);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(step(&run, "inspect")["outputs"]["size"], "42");
    let output = rota.run([
        "runbook",
        "lint",
        path_str(&md),
        path_str(&example("runbook.ipynb")),
    ]);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "");
}

#[test]
fn init_new_and_lint_contract_for_both_formats() {
    let rota = Rota::new();
    let lib = rota.path("lib");
    let output = rota.run(["runbook", "init", path_str(&lib)]);
    assert_code(&output, 0);
    assert!(lib.join("templates").is_dir() && lib.join("runs").is_dir());
    for format in ["md", "ipynb"] {
        let template = lib.join("templates").join(format!("runbook.{format}"));
        assert_code(&rota.run(["runbook", "lint", path_str(&template)]), 0);

        let name = format!("restart-{format}");
        let output = rota.run([
            "runbook",
            "new",
            &name,
            "--format",
            format,
            "--dir",
            path_str(&lib),
        ]);
        assert_code(&output, 0);
        let file = lib.join(format!("{name}.{format}"));
        assert!(file.is_file(), "{}", stdout(&output));
        let output = rota.run(["runbook", "lint", path_str(&file)]);
        assert_code(&output, 0);
        // It is a job too: it validates and runs.
        assert_code(&rota.run(["validate", path_str(&file)]), 0);
        let (run, output) = rota.run_json(&["run", path_str(&file)]);
        assert_code(&output, 0);
        assert_eq!(run["job"], name.as_str());
        // The template says `report: html`: each run keeps its report.
        let id = run["id"].as_str().expect("a run id");
        let listed = rota.json_ok(&["artifacts", id, "@run"]);
        assert_eq!(listed[0]["path"], "report.html", "{listed}");

        // Starting the same runbook twice would overwrite it: refused.
        let again = rota.run([
            "runbook",
            "new",
            &name,
            "--format",
            format,
            "--dir",
            path_str(&lib),
        ]);
        assert_code(&again, 2);
    }
    // --from a template in the library, by name.
    let output = rota.run([
        "runbook",
        "new",
        "from-template",
        "--from",
        "runbook",
        "--dir",
        path_str(&lib),
    ]);
    assert_code(&output, 0);
    let text = std::fs::read_to_string(lib.join("from-template.md")).expect("read");
    assert!(text.contains("# from-template\n"), "{text}");
}

#[test]
fn lint_reports_each_problem_with_its_position() {
    let rota = Rota::new();
    let md = rota.write(
        "thin.md",
        "---\nparams:\n  target: { type: string, default: x }\n---\n# Thin\n\n## Steps\n\n```sh\necho hi\n```\n\npassword = \"hunter2hunter2\"\n",
    );
    let output = rota.run(["runbook", "lint", path_str(&md)]);
    assert_code(&output, 2);
    let text = stdout(&output);
    let name = path_str(&md);
    for section in [
        "Description",
        "Parameters",
        "Rollback",
        "Cleanup",
        "Learnings",
    ] {
        assert!(
            text.contains(&format!("{name}:1: missing section {section}")),
            "{text}"
        );
    }
    assert!(!text.contains("missing section Steps"), "{text}");
    assert!(
        text.contains(&format!("{name}:2: no `dry_run` parameter")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{name}:13: looks like a secret")),
        "{text}"
    );
    assert!(
        !text.contains("hunter2"),
        "a secret is never echoed: {text}"
    );

    // A notebook template with outputs left, no parameters cell and an AWS key.
    let templates = rota.path("lib/templates");
    std::fs::create_dir_all(&templates).expect("mkdir");
    let nb = templates.join("dirty.ipynb");
    std::fs::write(
        &nb,
        notebook_with(json!([
            {"cell_type": "markdown", "id": "t", "metadata": {}, "source": "# Dirty\n## Description\n## Parameters\n## Steps\n## Rollback\n## Cleanup\n## Learnings"},
            {"cell_type": "code", "id": "a", "metadata": {}, "execution_count": 1,
             "outputs": [{"output_type": "stream", "name": "stdout", "text": "hi\n"}],
             "source": "print('hi')"},
            {"cell_type": "code", "id": "b", "metadata": {}, "execution_count": null,
             "outputs": [], "source": "key = 'AKIAIOSFODNN7EXAMPLE'"}
        ])),
    )
    .expect("write");
    let (report, output) = rota.run_json(&["runbook", "lint", path_str(&nb)]);
    assert_code(&output, 2);
    let problems: Vec<(Value, String)> = report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                p["cell"].clone(),
                p["message"].as_str().expect("m").to_owned(),
            )
        })
        .collect();
    let has = |cell: i64, text: &str| {
        problems
            .iter()
            .any(|(c, m)| *c == json!(cell) && m.contains(text))
    };
    assert!(has(1, "outputs left in a template"), "{problems:?}");
    assert!(has(2, "AWS access key"), "{problems:?}");
    assert!(has(0, "no parameters cell"), "{problems:?}");
    let output = rota.run(["runbook", "lint", path_str(&nb)]);
    assert!(
        stdout(&output).contains(&format!("{}:cell 1: outputs left", path_str(&nb))),
        "{}",
        stdout(&output)
    );
}

#[test]
fn plan_writes_a_dated_instance_and_apply_runs_it() {
    let rota = Rota::new();
    let lib = rota.path("lib");
    assert_code(&rota.run(["runbook", "init", path_str(&lib)]), 0);
    std::fs::write(lib.join("helper.sh"), "echo helper ran\n").expect("write");
    std::fs::write(lib.join("notes.txt"), "notes\n").expect("write");
    let file = lib.join("deploy.md");
    std::fs::write(
        &file,
        "---\nparams:\n  target: { type: string, default: staging, help: where }\n  dry_run: { type: bool, default: true }\n---\n# Deploy\n\n```sh {id=deploy}\ncat notes.txt\nsh helper.sh && echo \"to $ROTA_PARAM_TARGET\" && touch deployed\n```\n",
    )
    .expect("write");
    let (plan, output) = as_user(
        &rota,
        "carol",
        &[
            "plan",
            path_str(&file),
            "-p",
            "target=prod",
            "-p",
            "dry_run=false",
        ],
    );
    assert_code(&output, 0);
    let instance = &plan["runbook"];
    let dir = Path::new(instance["dir"].as_str().expect("dir"));
    let today = jiff::Zoned::now().strftime("%Y-%m-%d").to_string();
    let folder = dir.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(folder.starts_with(&format!("{today}-deploy-")), "{folder}");
    assert_eq!(dir.parent(), Some(lib.join("runs").as_path()));
    let copy = std::fs::read_to_string(dir.join("deploy.md")).expect("prepared copy");
    assert!(copy.contains(r#""default":"prod""#), "{copy}");
    assert!(copy.contains(r#""default":false"#), "{copy}");
    assert!(copy.contains("# Deploy"), "{copy}");
    assert!(
        dir.join("helper.sh").is_file(),
        "a referenced file is copied"
    );
    assert!(
        dir.join("notes.txt").is_file(),
        "each referenced file is copied"
    );
    assert_eq!(instance["copied"], json!(["helper.sh", "notes.txt"]));
    let digest = sha256_hex(copy.as_bytes());
    assert_eq!(instance["sha256"], digest.as_str());
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("plan.json")).expect("record"))
            .expect("json");
    assert_eq!(record["sha256"], digest.as_str());
    assert_eq!(record["plan"], plan["id"]);
    // The prepared copy is itself a valid runbook with the planned values as defaults.
    assert_code(&rota.run(["validate", path_str(&dir.join("deploy.md"))]), 0);

    let id = plan["id"].as_str().expect("id");
    let (run, output) = as_user(&rota, "carol", &["apply", id]);
    assert_code(&output, 0);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["params"]["target"], "prod");
    assert!(lib.join("deployed").exists() || rota.path("deployed").exists());
}

fn sha256_hex(bytes: &[u8]) -> String {
    let output = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(bytes)?;
            child.wait_with_output()
        })
        .expect("sha256sum");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_owned()
}

#[test]
fn jobs_put_stores_a_markdown_runbook_that_runs_by_id() {
    let rota = Rota::new();
    let file = rota.write(
        "stored.md",
        "---\nid: stored-runbook\nparams:\n  who: { type: string, default: x }\n---\n# Stored\n\n```sh\necho \"hi $ROTA_PARAM_WHO\" > \"$ROTA_OUTPUT.txt\"; echo who=$ROTA_PARAM_WHO >> \"$ROTA_OUTPUT\"\n```\n",
    );
    let output = rota.run(["jobs", "put", path_str(&file)]);
    assert_code(&output, 0);
    let (run, output) = rota.run_json(&["run", "stored-runbook", "-p", "who=ops"]);
    assert_code(&output, 0);
    assert_eq!(step(&run, "step-1")["outputs"]["who"], "ops", "{run:#}");
}

#[test]
fn plan_of_a_notebook_injects_its_parameters_into_the_prepared_copy() {
    let rota = Rota::new();
    let file = rota.write(
        "nb/greet.ipynb",
        &std::fs::read_to_string(example("runbook.ipynb")).expect("read"),
    );
    let (plan, output) = as_user(
        &rota,
        "carol",
        &[
            "plan",
            path_str(&file),
            "-p",
            "count=5",
            "-p",
            "target=it's",
        ],
    );
    assert_code(&output, 0);
    let dir = Path::new(plan["runbook"]["dir"].as_str().expect("dir"));
    // No library above it: `runs/` beside the runbook.
    assert_eq!(dir.parent(), Some(rota.path("nb/runs").as_path()));
    let copy = std::fs::read_to_string(dir.join("greet.ipynb")).expect("copy");
    assert_eq!(
        plan["runbook"]["sha256"],
        sha256_hex(copy.as_bytes()).as_str()
    );
    let nb: Value = serde_json::from_str(&copy).expect("json");
    let cells = nb["cells"].as_array().expect("cells");
    let at = cells
        .iter()
        .position(|c| c["metadata"]["tags"] == json!(["injected-parameters"]))
        .expect("an injected-parameters cell");
    assert_eq!(cells[at - 1]["metadata"]["tags"], json!(["parameters"]));
    let source = cells[at]["source"].as_str().expect("source");
    assert!(source.contains("count = 5\n"), "{source}");
    assert!(source.contains("target = \"it's\"\n"), "{source}");
    assert!(source.contains("dry_run = True\n"), "{source}");

    // Applying the plan runs the notebook with the planned values.
    let id = plan["id"].as_str().expect("id");
    let (run, output) = as_user(&rota, "carol", &["apply", id]);
    assert_code(&output, 0);
    assert_eq!(
        step(&run, "notebook")["outputs"]["greeting"],
        "hello it's x10"
    );
}

#[test]
fn runbooks_in_a_server_s_job_directory_run_there_by_id() {
    let rota = Rota::new();
    let notebook = std::fs::read_to_string(example("runbook.ipynb")).expect("read");
    rota.write("jobs/runbook.ipynb", &notebook);
    let markdown = std::fs::read_to_string(example("runbook.md")).expect("read");
    rota.write("jobs/rotate.md", &markdown);
    rota.write("jobs/README.md", "# The team's jobs\n");
    let server = rota.serve(&rota.path("jobs"));
    let over = |args: &[&str]| {
        let mut all = vec!["--server", &server.url, "--token", &server.admin_token];
        all.extend(args);
        all.extend(["--output", "json"]);
        rota.run(&all)
    };
    let jobs = crate::util::json(&over(&["jobs"]));
    let mut ids: Vec<&str> = jobs
        .as_array()
        .expect("a list of jobs")
        .iter()
        .filter_map(|j| j["id"].as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, ["rotate", "runbook"], "{jobs:#}");
    let output = over(&["run", "runbook", "-p", "target=prod", "-p", "count=5"]);
    assert_code(&output, 0);
    let run = crate::util::json(&output);
    assert_eq!(
        step(&run, "notebook")["outputs"]["greeting"],
        "hello prod x10",
        "{run:#}"
    );
    let output = over(&["run", "rotate", "--dry-run"]);
    assert_code(&output, 0);
}
