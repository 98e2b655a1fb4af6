//! `rota notebook strip|git-filter|convert|diff|report`, checked against the real tools
//! from PyPI (nbstripout, jupytext, nbformat; `scripts/setup` installs them into the test
//! virtualenv) on the same files, and against a real git repository.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::util::{Rota, assert_code, describe, finish, stderr, stdout};

/// A program of the test virtualenv (`$ROTA_CI_VENV/bin`), else from `PATH`.
fn venv_tool(name: &str) -> PathBuf {
    match std::env::var_os("ROTA_CI_VENV") {
        Some(venv) => Path::new(&venv).join("bin").join(name),
        None => PathBuf::from(name),
    }
}

/// Runs a virtualenv tool in `dir`; it must succeed.
#[track_caller]
fn tool(dir: &Path, name: &str, args: &[&str]) -> Output {
    let out = Command::new(venv_tool(name))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{name} must be installed (run scripts/setup): {e}"));
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}",
        describe(&out)
    );
    out
}

/// `nbformat.validate` on a notebook file.
#[track_caller]
pub(crate) fn validate(path: &Path) {
    let code = "import sys, nbformat; nbformat.validate(nbformat.read(sys.argv[1], as_version=4))";
    tool(
        path.parent().expect("file in a dir"),
        "python",
        &["-c", code, &path.to_string_lossy()],
    );
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("file exists")).expect("JSON")
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn kernelspec() -> Value {
    json!({"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
           "language_info": {"name": "python", "version": "3.11.2"}})
}

fn code(id: &str, source: &str, metadata: Value) -> Value {
    json!({"cell_type": "code", "execution_count": null, "id": id, "metadata": metadata,
           "outputs": [], "source": source})
}

fn markdown(id: &str, source: &str) -> Value {
    json!({"cell_type": "markdown", "id": id, "metadata": {}, "source": source})
}

fn notebook(cells: Vec<Value>, metadata: Value) -> Value {
    json!({"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5})
}

/// A notebook as a papermill run leaves it: outputs, counts, papermill and timing metadata
/// on the notebook and its cells, editor state, and metadata that must survive.
fn executed() -> Value {
    let mut meta = kernelspec();
    meta["papermill"] = json!({"duration": 1.5, "parameters": {"a": 2}, "version": "2.6.0"});
    meta["custom"] = json!({"keep": true});
    let mut params = code(
        "p1",
        "a = 1\nb = 'x'",
        json!({"tags": ["parameters"], "papermill": {"status": "completed", "duration": 0.1},
               "execution": {"iopub.status.busy": "2026-01-01T00:00:00Z"}}),
    );
    params["execution_count"] = json!(1);
    params["outputs"] = json!([{"name": "stdout", "output_type": "stream", "text": ["hi\n"]}]);
    let mut shown = code(
        "s1",
        "print(a)\n\n\nprint(b)",
        json!({"tags": ["keep"], "custom": {"x": 1}, "collapsed": false, "scrolled": true}),
    );
    shown["execution_count"] = json!(2);
    shown["outputs"] = json!([{"data": {"text/plain": ["2"]}, "execution_count": 2, "metadata": {},
                               "output_type": "execute_result"}]);
    notebook(
        vec![
            markdown("m1", "# Title\n\nSome *text*."),
            params,
            code("e1", "", json!({})),
            shown,
            json!({"cell_type": "raw", "id": "r1", "metadata": {}, "source": "raw text"}),
            markdown("m2", ""),
        ],
        meta,
    )
}

/// Write `nb` as Jupyter writes it (Python's `nbformat.write`), so the file's layout is
/// Jupyter's own and not Rota's.
fn write_with_nbformat(rota: &Rota, name: &str, nb: &Value) -> PathBuf {
    let path = rota.write(name, &nb.to_string());
    let code = "import sys, nbformat; nb = nbformat.read(sys.argv[1], as_version=4); nbformat.write(nb, sys.argv[1])";
    tool(
        &rota.path(""),
        "python",
        &["-c", code, &path.to_string_lossy()],
    );
    path
}

#[test]
fn strip_removes_outputs_counts_and_run_metadata_and_check_guards_it() {
    let rota = Rota::new();
    let path = write_with_nbformat(&rota, "nb.ipynb", &executed());
    let before = std::fs::read(&path).expect("notebook");

    let check = rota.run(["notebook", "strip", "--check", "nb.ipynb"]);
    assert_code(&check, 1);
    assert_eq!(stdout(&check).trim(), "nb.ipynb");
    assert_eq!(
        std::fs::read(&path).expect("notebook"),
        before,
        "--check changes nothing"
    );

    assert_code(&rota.run(["notebook", "strip", "nb.ipynb"]), 0);
    let stripped = read_json(&path);
    for cell in stripped["cells"].as_array().expect("cells") {
        if cell["cell_type"] == "code" {
            assert_eq!(cell["outputs"], json!([]), "{cell}");
            assert_eq!(cell["execution_count"], Value::Null, "{cell}");
        }
        for key in ["papermill", "execution", "collapsed", "scrolled"] {
            assert!(cell["metadata"].get(key).is_none(), "{key} left in {cell}");
        }
    }
    assert!(stripped["metadata"].get("papermill").is_none());
    assert_eq!(stripped["metadata"]["custom"], json!({"keep": true}));
    assert_eq!(
        stripped["cells"][1]["metadata"],
        json!({"tags": ["parameters"]})
    );
    assert_eq!(
        stripped["cells"][3]["metadata"],
        json!({"tags": ["keep"], "custom": {"x": 1}})
    );
    assert_eq!(stripped["cells"][3]["id"], "s1", "cell ids are kept");
    validate(&path);

    // The layout is Jupyter's: nbformat writing the stripped notebook again changes no byte.
    let ours = std::fs::read(&path).expect("notebook");
    write_with_nbformat(&rota, "again.ipynb", &stripped);
    assert_eq!(
        String::from_utf8_lossy(&std::fs::read(rota.path("again.ipynb")).expect("again")),
        String::from_utf8_lossy(&ours)
    );

    let check = rota.run(["notebook", "strip", "--check", "nb.ipynb"]);
    assert_code(&check, 0);
    assert_eq!(stdout(&check), "");
    assert_code(&rota.run(["notebook", "strip", "nb.ipynb"]), 0);
    assert_eq!(
        std::fs::read(&path).expect("notebook"),
        ours,
        "stripping twice is stripping once"
    );
}

#[test]
fn strip_agrees_with_nbstripout() {
    let rota = Rota::new();
    let ours = write_with_nbformat(&rota, "ours.ipynb", &executed());
    let theirs = write_with_nbformat(&rota, "theirs.ipynb", &executed());
    assert_code(&rota.run(["notebook", "strip", "ours.ipynb"]), 0);
    // nbstripout renumbers cell ids and keeps papermill's metadata by default; Rota keeps
    // ids and drops papermill's (docs/notebook-tooling.md). With those two set alike, the
    // two tools must write the same notebook.
    tool(
        &rota.path(""),
        "nbstripout",
        &[
            "--keep-id",
            "--extra-keys",
            "metadata.papermill cell.metadata.papermill",
            "theirs.ipynb",
        ],
    );
    assert_eq!(read_json(&ours), read_json(&theirs));
    assert_eq!(
        std::fs::read_to_string(&ours).expect("ours"),
        std::fs::read_to_string(&theirs).expect("theirs"),
        "byte for byte too"
    );
}

#[test]
fn strip_stdin_is_a_filter_that_passes_clean_notebooks_through_untouched() {
    let rota = Rota::new();
    let path = write_with_nbformat(&rota, "nb.ipynb", &executed());
    let text = std::fs::read_to_string(&path).expect("notebook");
    let piped = finish(
        rota.spawn_with_stdin(["notebook", "strip", "--stdin"], &text),
        "strip --stdin",
    );
    assert_code(&piped, 0);
    assert_code(&rota.run(["notebook", "strip", "nb.ipynb"]), 0);
    assert_eq!(
        stdout(&piped),
        std::fs::read_to_string(&path).expect("stripped")
    );

    // A notebook with nothing to strip comes out as it went in, whatever its layout.
    let clean = serde_json::to_string(&notebook(vec![code("c", "x = 1", json!({}))], kernelspec()))
        .expect("JSON");
    let piped = finish(
        rota.spawn_with_stdin(["notebook", "strip", "-"], &clean),
        "strip -",
    );
    assert_code(&piped, 0);
    assert_eq!(stdout(&piped), clean);

    let bad = finish(
        rota.spawn_with_stdin(["notebook", "strip", "--stdin"], "{\"cells\": ["),
        "strip",
    );
    assert_code(&bad, 2);
    assert!(
        stderr(&bad).contains("<stdin>: not JSON"),
        "{}",
        describe(&bad)
    );
}

#[test]
fn bad_input_is_a_clear_error_naming_the_file() {
    let rota = Rota::new();
    rota.write("broken.ipynb", "{\n \"cells\": [\n  }\n");
    rota.write(
        "v9.ipynb",
        r#"{"cells": [], "metadata": {}, "nbformat": 9, "nbformat_minor": 0}"#,
    );
    rota.write("cell.ipynb", r#"{"cells": [{"cell_type": "code", "source": 3}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}"#);
    rota.write("plain.txt", "hello");
    let cases: &[(&[&str], &str)] = &[
        (
            &["notebook", "strip", "broken.ipynb"],
            "broken.ipynb: not JSON: ",
        ),
        (
            &["notebook", "strip", "--check", "v9.ipynb"],
            "v9.ipynb: unsupported nbformat 9",
        ),
        (
            &["notebook", "strip", "cell.ipynb"],
            "cell.ipynb: cell 0: `source` is not",
        ),
        (
            &["notebook", "strip", "missing.ipynb"],
            "missing.ipynb: No such file",
        ),
        (
            &["notebook", "convert", "plain.txt", "--to", "py"],
            "plain.txt: unknown input format",
        ),
        (
            &["notebook", "convert", "broken.ipynb", "--to", "md"],
            "broken.ipynb: not JSON: ",
        ),
        (
            &["notebook", "convert", "v9.ipynb", "--to", "rst"],
            "invalid value 'rst'",
        ),
        (
            &["notebook", "diff", "v9.ipynb", "broken.ipynb"],
            "v9.ipynb: unsupported nbformat 9",
        ),
        (&["notebook", "report", "cell.ipynb"], "cell.ipynb: cell 0:"),
    ];
    for (args, message) in cases {
        let out = rota.run(*args);
        assert_code(&out, 2);
        assert!(
            stderr(&out).contains(message),
            "{args:?}: {}",
            describe(&out)
        );
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            describe(&out)
        );
    }
    // The JSON error says where.
    let out = rota.run(["notebook", "strip", "broken.ipynb"]);
    assert!(
        stderr(&out).contains("line 3 column 3"),
        "{}",
        describe(&out)
    );
}

/// Cells as the text forms keep them: type, source, metadata (ids are new on the way back).
fn cell_shapes(nb: &Value) -> Vec<(Value, String, Value)> {
    nb["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| {
            let source = match &c["source"] {
                Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
                other => other.as_str().unwrap_or_default().to_owned(),
            };
            (c["cell_type"].clone(), source, c["metadata"].clone())
        })
        .collect()
}

fn convert_fixtures() -> Vec<(&'static str, Value)> {
    let plain = notebook(
        vec![
            markdown("a", "# A\n"),
            markdown("b", "B"),
            code("c", "x = 1\n", json!({})),
            code("d", "y = 'é'", json!({"tags": ["parameters", "x y"]})),
            code("e", "", json!({})),
            markdown("f", ""),
        ],
        kernelspec(),
    );
    let mut stripped = executed();
    rota_notebook::tools::strip::strip(&mut stripped);
    vec![
        ("executed.ipynb", executed()),
        ("plain.ipynb", plain),
        ("stripped.ipynb", stripped),
    ]
}

#[test]
fn convert_to_py_writes_what_jupytext_writes_and_jupytext_reads_it_back() {
    let rota = Rota::new();
    for (name, nb) in convert_fixtures() {
        write_with_nbformat(&rota, name, &nb);
        let ours = rota.run(["notebook", "convert", name, "--to", "py"]);
        assert_code(&ours, 0);
        let theirs = tool(
            &rota.path(""),
            "jupytext",
            &["--to", "py:percent", name, "-o", "-"],
        );
        // jupytext also records its own version in the header; nothing else differs.
        let theirs: String = String::from_utf8_lossy(&theirs.stdout)
            .lines()
            .filter(|l| !l.starts_with("#       jupytext_version:"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(stdout(&ours), theirs, "{name}");

        // jupytext reads our script as it reads its own (a code cell's trailing newline
        // becomes its `lines_to_next_cell` either way), with every cell, type and tag.
        let script = name.replace(".ipynb", ".py");
        let own = name.replace(".ipynb", ".jupytext.py");
        rota.write(&script, &stdout(&ours));
        tool(
            &rota.path(""),
            "jupytext",
            &["--to", "py:percent", name, "-o", &own],
        );
        let read_back = |file: &str| {
            let out = tool(
                &rota.path(""),
                "jupytext",
                &["--to", "ipynb", file, "-o", "-"],
            );
            parse(&String::from_utf8_lossy(&out.stdout))
        };
        let back = read_back(&script);
        assert_eq!(cell_shapes(&back), cell_shapes(&read_back(&own)), "{name}");
        let kinds_and_tags = |nb: &Value| -> Vec<(Value, Value)> {
            nb["cells"]
                .as_array()
                .expect("cells")
                .iter()
                .map(|c| (c["cell_type"].clone(), c["metadata"]["tags"].clone()))
                .collect()
        };
        assert_eq!(
            kinds_and_tags(&back),
            kinds_and_tags(&read_json(&rota.path(name))),
            "{name}"
        );
    }
}

#[test]
fn convert_round_trips_through_py_and_md() {
    let rota = Rota::new();
    for (name, nb) in convert_fixtures() {
        write_with_nbformat(&rota, name, &nb);
        let original = read_json(&rota.path(name));
        for format in ["py", "md"] {
            let text = format!("{name}.{format}");
            let back = format!("{name}.{format}.ipynb");
            assert_code(
                &rota.run(["notebook", "convert", name, "--to", format, "--out", &text]),
                0,
            );
            assert_code(
                &rota.run([
                    "notebook", "convert", &text, "--to", "ipynb", "--out", &back,
                ]),
                0,
            );
            validate(&rota.path(&back));
            let back_nb = read_json(&rota.path(&back));
            let shapes = |nb: &Value| -> Vec<(Value, String, Value)> {
                cell_shapes(nb)
                    .into_iter()
                    .map(|(k, s, m)| (k, s, m.get("tags").cloned().unwrap_or(json!([]))))
                    .collect()
            };
            assert_eq!(shapes(&back_nb), shapes(&original), "{name} via {format}");
            assert_eq!(
                back_nb["metadata"]["kernelspec"],
                original["metadata"]["kernelspec"]
            );
            // And once in text form, the text form is stable.
            let again = rota.run(["notebook", "convert", &back, "--to", format]);
            assert_eq!(
                stdout(&again),
                std::fs::read_to_string(rota.path(&text)).expect("text")
            );
        }
    }
}

#[test]
fn diff_reports_cells_and_exits_by_difference() {
    let rota = Rota::new();
    let a = notebook(
        vec![
            markdown("m", "# T"),
            code("x", "a = 1\nb = 2\n", json!({})),
            code("y", "gone", json!({})),
        ],
        kernelspec(),
    );
    rota.write("a.ipynb", &a.to_string());
    let mut ran = a.clone();
    ran["cells"][1]["execution_count"] = json!(5);
    ran["cells"][1]["outputs"] =
        json!([{"name": "stdout", "output_type": "stream", "text": "1\n"}]);
    rota.write("ran.ipynb", &ran.to_string());
    let b = notebook(
        vec![
            markdown("m", "# T"),
            code("n", "new = True", json!({})),
            code("x", "a = 1\nb = 3\n", json!({"tags": ["parameters"]})),
        ],
        kernelspec(),
    );
    rota.write("b.ipynb", &b.to_string());

    let same = rota.run(["notebook", "diff", "a.ipynb", "ran.ipynb"]);
    assert_code(&same, 0);
    assert_eq!(stdout(&same), "");
    let outputs = rota.run(["notebook", "diff", "a.ipynb", "ran.ipynb", "--outputs"]);
    assert_code(&outputs, 1);
    assert!(
        stdout(&outputs).contains("cell 1 (code) changed: outputs, execution_count"),
        "{}",
        describe(&outputs)
    );

    let human = rota.run(["notebook", "diff", "a.ipynb", "b.ipynb"]);
    assert_code(&human, 1);
    let text = stdout(&human);
    assert!(
        text.contains("+ cell 1 (code) added\n+ new = True\n"),
        "{text}"
    );
    assert!(
        text.contains("~ cell 1 → 2 (code) changed: source, metadata\n"),
        "{text}"
    );
    assert!(
        text.contains("--- a.ipynb cell 1\n+++ b.ipynb cell 2\n"),
        "{text}"
    );
    assert!(text.contains(" a = 1\n-b = 2\n+b = 3\n"), "{text}");
    assert!(text.contains("- cell 2 (code) removed\n- gone\n"), "{text}");

    let (changes, out) = rota.run_json(&["notebook", "diff", "a.ipynb", "b.ipynb"]);
    assert_code(&out, 1);
    assert_eq!(changes.as_array().map(Vec::len), Some(3), "{changes}");
    assert_eq!(
        changes[0],
        json!({"change": "added", "index_b": 1, "cell_type": "code", "source": "new = True"})
    );
    assert_eq!(changes[1]["change"], "changed");
    assert_eq!(changes[1]["index_a"], 1);
    assert_eq!(changes[1]["index_b"], 2);
    assert_eq!(changes[1]["fields"], json!(["source", "metadata"]));
    assert!(
        changes[1]["source_diff"]
            .as_str()
            .is_some_and(|d| d.contains("+b = 3"))
    );
    assert_eq!(
        changes[2],
        json!({"change": "removed", "index_a": 2, "cell_type": "code", "source": "gone"})
    );
    let (none, out) = rota.run_json(&["notebook", "diff", "a.ipynb", "a.ipynb"]);
    assert_code(&out, 0);
    assert_eq!(none, json!([]));
}

#[test]
fn report_renders_a_notebook_that_never_ran() {
    let rota = Rota::new();
    let nb = notebook(
        vec![
            markdown("m", "# Plain <b>"),
            code("c", "x = 1 < 2", json!({})),
        ],
        kernelspec(),
    );
    rota.write("plain.ipynb", &nb.to_string());
    let md = rota.run(["notebook", "report", "plain.ipynb", "--format", "md"]);
    assert_code(&md, 0);
    let text = stdout(&md);
    assert!(text.starts_with("# plain.ipynb\n"), "{text}");
    assert!(
        text.contains("## cell 2 · code · -\n\n```\nx = 1 < 2\n```\n"),
        "{text}"
    );
    assert_code(
        &rota.run([
            "notebook",
            "report",
            "plain.ipynb",
            "--format",
            "html",
            "--out",
            "r.html",
        ]),
        0,
    );
    let html = std::fs::read_to_string(rota.path("r.html")).expect("report written");
    assert!(html.contains("<pre># Plain &lt;b&gt;</pre>"), "{html}");
    assert!(html.contains("<pre>x = 1 &lt; 2</pre>"), "{html}");
}

/// `git …` in `dir` with a fixed identity and no user or system config; must succeed.
#[track_caller]
fn git(dir: &Path, home: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_CONFIG_GLOBAL")
        .env("PATH", path_with_rota())
        .output()
        .expect("git must be installed");
    assert!(out.status.success(), "git {args:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `PATH` with the directory of the `rota` under test first, as an installed `rota` is.
fn path_with_rota() -> std::ffi::OsString {
    let bin = Path::new(env!("CARGO_BIN_EXE_rota"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let rest = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&rest))).expect("PATH")
}

#[test]
fn git_filter_stages_notebooks_stripped() {
    let rota = Rota::new();
    let home = tempfile::tempdir().expect("temp home");
    let repo = rota.path("");
    git(&repo, home.path(), &["init", "-q"]);
    let install = |global: bool| {
        let mut args = vec!["notebook", "git-filter", "install"];
        if global {
            args.push("--global");
        }
        let mut cmd = rota.command(&args);
        cmd.env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("GIT_CONFIG_GLOBAL")
            .env("PATH", path_with_rota());
        let out = cmd.output().expect("run rota");
        assert_code(&out, 0);
        out
    };
    install(false);
    install(false);
    assert_eq!(
        std::fs::read_to_string(repo.join(".gitattributes")).expect("attributes"),
        "*.ipynb filter=rota-strip\n",
        "installing twice adds the line once"
    );
    assert_eq!(
        git(&repo, home.path(), &["config", "filter.rota-strip.clean"]).trim(),
        "rota notebook strip --stdin"
    );

    let path = write_with_nbformat(&rota, "nb.ipynb", &executed());
    let working = std::fs::read_to_string(&path).expect("notebook");
    git(&repo, home.path(), &["add", "nb.ipynb", ".gitattributes"]);
    let staged = git(&repo, home.path(), &["show", ":nb.ipynb"]);
    assert_code(&rota.run(["notebook", "strip", "nb.ipynb"]), 0);
    assert_eq!(staged, std::fs::read_to_string(&path).expect("stripped"));
    assert!(!staged.contains("\"outputs\": [\n     {"), "{staged}");
    assert_ne!(staged, working);

    // Globally: git's global config and attributes file under $HOME.
    install(true);
    install(true);
    assert_eq!(
        std::fs::read_to_string(home.path().join(".config/git/attributes"))
            .expect("global attributes"),
        "*.ipynb filter=rota-strip\n"
    );
    assert_eq!(
        git(
            &repo,
            home.path(),
            &["config", "--global", "filter.rota-strip.required"]
        )
        .trim(),
        "true"
    );
}
