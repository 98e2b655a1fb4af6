//! Shared helpers: test notebooks, the kernel check, nbformat validation.

use std::path::{Path, PathBuf};
use std::process::Command;

use rota_notebook::execute::{Progress, RunReport, RunRequest};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

pub use rota_testkit::kernels::{host, require_kernel};

/// Validate a notebook file with Python's nbformat.
pub fn validate(path: &Path) {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, nbformat; nbformat.validate(nbformat.read(sys.argv[1], as_version=4))",
        ])
        .arg(path)
        .output()
        .expect("python3 must be installed");
    assert!(
        out.status.success(),
        "nbformat.validate failed for {} (is `nbformat` installed?): {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("output notebook exists"))
        .expect("output notebook is JSON")
}

pub fn cells(nb: &Value) -> &Vec<Value> {
    nb["cells"].as_array().expect("cells")
}

pub fn tags(cell: &Value) -> Vec<String> {
    cell["metadata"]["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn source(cell: &Value) -> String {
    match &cell["source"] {
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

/// Run `input` into a temp dir; returns the report, the output path and the dir guard.
pub async fn run(
    input: &str,
    tweak: impl FnOnce(&mut RunRequest),
) -> (RunReport, PathBuf, tempfile::TempDir) {
    require_kernel().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.ipynb");
    let mut req = RunRequest::new(data(input), &out, crate::util::host());
    tweak(&mut req);
    let cancel = CancellationToken::new();
    let report = rota_notebook::execute::run(&req, &cancel, &mut |_p: Progress| {})
        .await
        .expect("run starts");
    (report, out, dir)
}

/// Whether any live process (not a zombie) has `needle` in its command line.
pub fn process_with_arg(needle: &str) -> bool {
    !rota_testkit::processes_with(needle).is_empty()
}
