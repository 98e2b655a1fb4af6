//! The CLI through the `nbrun` example binary: exit codes, inspect JSON, Ctrl-C cleanup.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{cells, data, process_with_arg, read, require_kernel, validate};

fn nbrun() -> PathBuf {
    // Examples are built next to the test binary's deps directory.
    let exe = std::env::current_exe().expect("test exe");
    let target = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = target.join("examples/nbrun");
    assert!(
        bin.exists(),
        "{} missing: `cargo test` builds examples",
        bin.display()
    );
    bin
}

#[tokio::test]
async fn inspect_outputs_json() {
    let out = Command::new(nbrun())
        .args(["inspect", "--output", "json"])
        .arg(data("params.ipynb"))
        .output()
        .expect("runs");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v[1]["name"], "name");
    assert_eq!(v[1]["inferred_type_name"], "str");
    assert_eq!(v[0]["help"], "learning rate");
}

#[tokio::test]
async fn run_exit_codes_match_papermill() {
    require_kernel().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |nb: &str, extra: &[&str]| {
        let out = dir.path().join(format!("{nb}.out.ipynb"));
        let status = Command::new(nbrun())
            .arg("run")
            .arg(data(nb))
            .arg(&out)
            .args(extra)
            .stderr(Stdio::null())
            .status()
            .expect("runs");
        (status.code(), out)
    };
    let (code, out) = run(
        "params.ipynb",
        &["-p", "n", "5", "-r", "name", "12", "--report", "md"],
    );
    assert_eq!(code, Some(0));
    validate(&out);
    let nb = read(&out);
    assert_eq!(
        nb["metadata"]["papermill"]["parameters"],
        serde_json::json!({"n": 5, "name": "12"})
    );
    assert!(out.with_extension("md").exists());
    assert_eq!(run("failing.ipynb", &[]).0, Some(1));
    assert_eq!(run("suicide.ipynb", &[]).0, Some(138));
}

#[tokio::test]
async fn ctrl_c_shuts_the_kernel_down_and_removes_the_connection_file() {
    require_kernel().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = dir.path().join("runtime");
    let out = dir.path().join("out.ipynb");
    let mut child = Command::new(nbrun())
        .arg("run")
        .arg(data("sleep.ipynb"))
        .arg(&out)
        .env("JUPYTER_RUNTIME_DIR", &runtime)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    // Wait until the sleeping cell is running (the output notebook says so).
    let mut running = false;
    for _ in 0..600 {
        if let Ok(text) = std::fs::read_to_string(&out)
            && let Ok(nb) = serde_json::from_str::<serde_json::Value>(&text)
            && cells(&nb)[1]["metadata"]["papermill"]["status"] == "running"
        {
            running = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(running, "the sleep cell never started");
    let conn_files: Vec<_> = std::fs::read_dir(&runtime)
        .expect("runtime dir")
        .flatten()
        .collect();
    assert_eq!(conn_files.len(), 1);
    let runtime_str = runtime.to_string_lossy().to_string();
    assert!(
        process_with_arg(&runtime_str),
        "kernel runs with its connection file"
    );

    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("signal");
    let status = child.wait().expect("exits");
    assert_eq!(status.code(), Some(130));
    assert_eq!(
        std::fs::read_dir(&runtime).expect("runtime dir").count(),
        0,
        "connection file removed"
    );
    assert!(
        !process_with_arg(&runtime_str),
        "no kernel process left behind"
    );
    validate(&out);
}

/// `rota` embeds `NotebookCommand` under a parent with a global `--output` flag;
/// the definitions must not clash with it.
#[test]
fn embeds_under_a_parent_with_a_global_output_flag() {
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Clone, Copy, clap::ValueEnum)]
    enum Format {
        Human,
        Json,
    }
    #[derive(Parser)]
    struct Parent {
        #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
        output: Format,
        #[command(subcommand)]
        cmd: rota_notebook::cli::NotebookCommand,
    }
    Parent::command().debug_assert();
    let parsed = Parent::try_parse_from([
        "rota",
        "run",
        "in.ipynb",
        "out.ipynb",
        "-p",
        "a",
        "1",
        "--output",
        "json",
    ])
    .expect("parses");
    assert!(matches!(parsed.output, Format::Json));
    let rota_notebook::cli::NotebookCommand::Run(args) = parsed.cmd else {
        panic!("expected run");
    };
    assert_eq!(args.output, std::path::PathBuf::from("out.ipynb"));
    assert_eq!(args.parameters, vec!["a", "1"]);
}
