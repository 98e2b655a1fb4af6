//! Run artifacts with the real binary: files steps leave in `$ROTA_ARTIFACTS` (nested
//! directories too) listed and got back byte for byte, locally and through `--server`;
//! caps and links leaving the directory refused in the step's log; a notebook's executed
//! notebook listed; `rota prune` takes them with their runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::remote::{remote, remote_json};
use crate::util::{Rota, assert_code, assert_stderr_has, example, json, stdout};

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// Runs the example job and returns its run id and namespace.
fn run_example(rota: &Rota) -> (String, String) {
    let example = example("artifacts.yaml").display().to_string();
    let out = rota.run(["run", &example, "--output", "json"]);
    assert_code(&out, 0);
    let run = json(&out);
    let text = |key: &str| run[key].as_str().expect(key).to_owned();
    (text("id"), text("namespace"))
}

/// What the example keeps, as `rota artifacts RUN --output json` lists it.
fn example_listing(run_id: &str) -> Value {
    let summary = format!("built by run {run_id}\n");
    json!([
        {"step": "build", "path": "numbers.txt", "size": 292},
        {"step": "build", "path": "reports/summary.txt", "size": summary.len()},
        {"step": "check", "path": "check.log", "size": 8},
    ])
}

#[test]
fn the_example_keeps_its_files_listed_by_step_and_path_and_got_back_identical() {
    let rota = Rota::new();
    let (id, namespace) = run_example(&rota);
    assert_eq!(
        rota.json_ok(&["artifacts", &id]),
        example_listing(&id),
        "the listing"
    );
    assert_eq!(
        rota.json_ok(&["artifacts", &id, "check"]),
        json!([{"step": "check", "path": "check.log", "size": 8}]),
        "one step's"
    );

    // `--get PATH -o FILE` writes the bytes; without `-o`, stdout has them.
    let file = rota.path("summary.txt");
    let file_arg = file.display().to_string();
    let got = rota.run([
        "artifacts",
        &id,
        "--get",
        "reports/summary.txt",
        "-o",
        &file_arg,
    ]);
    assert_code(&got, 0);
    let expected = format!("built by run {id}\n");
    assert_eq!(std::fs::read_to_string(&file).expect("written"), expected);
    let numbers = rota.run(["artifacts", &id, "build", "--get", "numbers.txt"]);
    assert_code(&numbers, 0);
    let seq: String = (1..=100).map(|n| format!("{n}\n")).collect();
    assert_eq!(stdout(&numbers), seq);

    // The bytes live under the dated key in $ROTA_HOME/artifacts.
    let day = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    let stored = rota
        .home()
        .join("artifacts")
        .join(namespace)
        .join(day)
        .join(&id)
        .join("build/reports/summary.txt");
    assert_eq!(
        std::fs::read_to_string(&stored).expect("stored under its key"),
        expected
    );

    // What is not there is said so.
    let missing = rota.run(["artifacts", &id, "--get", "nope.txt"]);
    assert_code(&missing, 1);
    assert_stderr_has(&missing, "has no artifact \"nope.txt\"");
    let no_step = rota.run(["artifacts", &id, "deploy"]);
    assert_code(&no_step, 2);
    assert_stderr_has(&no_step, "has no step \"deploy\"");
    let table = rota.run(["artifacts", &id]);
    assert_code(&table, 0);
    assert!(
        stdout(&table).starts_with("STEP   PATH                 SIZE\n"),
        "{}",
        stdout(&table)
    );
}

const CAPPED: &str = r#"
id: capped
steps:
  - id: make
    sh: |
      printf 'small file' > "$ROTA_ARTIFACTS/small.txt"
      head -c 4096 /dev/zero > "$ROTA_ARTIFACTS/big.bin"
      ln -s "$OUTSIDE" "$ROTA_ARTIFACTS/escape"
      ln -s small.txt "$ROTA_ARTIFACTS/inner"
      echo "made them"
      exit 3
"#;

#[test]
fn files_over_the_cap_and_links_leaving_the_directory_are_not_kept_and_said_so() {
    let rota = Rota::new().env("ROTA_ARTIFACTS_STEP_MAX", "1k");
    let outside = rota.write("outside.txt", "not an artifact");
    rota.write(
        "capped.yaml",
        &CAPPED.replace("$OUTSIDE", &outside.display().to_string()),
    );
    // The step fails on its own (exit 3): its files are kept all the same.
    let out = rota.run(["run", "capped.yaml", "--output", "json"]);
    assert_code(&out, 1);
    let id = json(&out)["id"].as_str().expect("run id").to_owned();
    assert_eq!(
        rota.json_ok(&["artifacts", &id]),
        json!([
            {"step": "make", "path": "inner", "size": 10},
            {"step": "make", "path": "small.txt", "size": 10},
        ])
    );
    let logs = stdout(&rota.run(["logs", &id]));
    assert!(
        logs.contains("artifacts: kept 2 files (20 bytes)"),
        "{logs}"
    );
    assert!(
        logs.contains("artifacts: not kept: big.bin (4k): over the step's cap of 1k"),
        "{logs}"
    );
    assert!(
        logs.contains(
            "artifacts: not kept: escape: a symbolic link leading out of $ROTA_ARTIFACTS"
        ),
        "{logs}"
    );
    let step = &json(&out)["steps"][0];
    assert_eq!(step["status"], "failed", "{step}");
    assert_eq!(step["exit_code"], 3, "{step}");

    // A cap that does not parse is said so.
    let bad = Rota::new().env("ROTA_ARTIFACTS_STEP_MAX", "lots");
    bad.write("capped.yaml", &CAPPED.replace("$OUTSIDE", "/nonexistent"));
    let out = bad.run(["run", "capped.yaml"]);
    assert_stderr_has(&out, "artifacts are not kept: ROTA_ARTIFACTS_STEP_MAX");
}

#[test]
fn artifacts_list_and_download_through_a_server_as_locally() {
    let rota = Rota::new();
    let example = std::fs::read_to_string(example("artifacts.yaml")).expect("example");
    rota.write("jobs/artifacts.yaml", &example);
    let server = rota.serve(&rota.path("jobs"));
    let run = remote_json(&rota, &server, &["run", "artifacts"]);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let id = run["id"].as_str().expect("run id");
    assert_eq!(
        remote_json(&rota, &server, &["artifacts", id]),
        example_listing(id)
    );
    let file = rota.path("got.txt");
    let file_arg = file.display().to_string();
    let got = remote(
        &rota,
        &server,
        &[
            "artifacts",
            id,
            "--get",
            "reports/summary.txt",
            "-o",
            &file_arg,
        ],
    );
    assert_code(&got, 0);
    assert_eq!(
        std::fs::read_to_string(&file).expect("written"),
        format!("built by run {id}\n")
    );
    let missing = remote(&rota, &server, &["artifacts", id, "--get", "nope"]);
    assert_code(&missing, 1);
    // The API's own answers: the list, and a download named after its file.
    let listed: Value =
        serde_json::from_str(&server.get(&format!("/api/v1/runs/{id}/artifacts?step=check")))
            .expect("JSON");
    assert_eq!(listed[0]["path"], "check.log", "{listed}");
    assert_eq!(listed[0]["size"], 8, "{listed}");
    assert_eq!(listed[0]["sha256"], hex_sha256(b"checked\n"), "{listed}");
    let nested = server.get(&format!(
        "/api/v1/runs/{id}/artifacts/build/reports/summary.txt"
    ));
    assert_eq!(nested, format!("built by run {id}\n"));
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

const NOTEBOOK: &str = r#"{
 "cells": [{"cell_type": "code", "execution_count": null, "id": "c0", "metadata": {},
            "outputs": [], "source": "import os\nopen(os.environ['ROTA_ARTIFACTS'] + '/plot.txt', 'w').write('from the kernel')\nprint('done')"}],
 "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
              "language_info": {"name": "python"}},
 "nbformat": 4, "nbformat_minor": 5
}"#;

#[test]
fn a_notebook_step_keeps_its_executed_notebook_and_what_its_cells_wrote() {
    let rota = Rota::new();
    rota.write("nb.ipynb", NOTEBOOK);
    rota.write(
        "nb.yaml",
        "id: nb-artifacts\nsteps:\n  - id: nb\n    notebook: nb.ipynb\n",
    );
    let out = rota.run(["run", "nb.yaml", "--output", "json"]);
    assert_code(&out, 0);
    let id = json(&out)["id"].as_str().expect("run id").to_owned();
    let listed = rota.json_ok(&["artifacts", &id]);
    let paths: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|a| a["path"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        paths,
        ["executed.ipynb", "plot.txt", "report.html"],
        "{listed}"
    );
    let executed = rota.run(["artifacts", &id, "--get", "executed.ipynb"]);
    assert_code(&executed, 0);
    let notebook: Value = serde_json::from_slice(&executed.stdout).expect("a notebook");
    let outputs = notebook["cells"][0]["outputs"].to_string();
    assert!(outputs.contains("done"), "the executed notebook: {outputs}");
}

/// Long enough for every run finished before it to be older than a `1s` cut-off.
const AGE: Duration = Duration::from_millis(2_100);

#[test]
fn prune_removes_a_runs_artifacts_rows_and_bytes() {
    let rota = Rota::new();
    let (id, _) = run_example(&rota);
    let store = rota.home().join("artifacts");
    assert_eq!(files_under(&store).len(), 3, "{:?}", files_under(&store));
    std::thread::sleep(AGE);
    let dry = rota.json_ok(&["prune", "--older-than", "1s", "--dry-run"]);
    assert_eq!(dry["artifacts"], 3, "{dry}");
    assert_eq!(files_under(&store).len(), 3, "a dry run deletes nothing");
    let pruned = rota.json_ok(&["prune", "--older-than", "1s"]);
    assert_eq!(pruned["artifacts"], 3, "{pruned}");
    assert_eq!(files_under(&store), Vec::<PathBuf>::new());
    let gone = rota.run(["artifacts", &id]);
    assert_code(&gone, 2);
}

/// A local S3-compatible server (moto's `moto_server`, a pin of `scripts/setup`) on a free
/// port, killed when dropped.
struct S3Server {
    child: std::process::Child,
    addr: String,
}

impl S3Server {
    fn start() -> S3Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server (pinned in scripts/setup; eval its output first)");
        let addr = format!("127.0.0.1:{port}");
        crate::util::wait_until("moto_server listens", || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
        S3Server { child, addr }
    }

    /// `METHOD path` with a made-up signature (moto reads who asks from it, and checks no
    /// signature; it refuses a request without one): status and body.
    fn call(&self, method: &str, path: &str) -> (u16, String) {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(&self.addr).expect("connect to moto");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: AWS4-HMAC-SHA256 \
             Credential=rota-test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, \
             Signature=00\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        (status, body)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_server_keeps_artifacts_in_an_s3_compatible_bucket_and_prunes_them_there() {
    let s3 = S3Server::start();
    assert_eq!(s3.call("PUT", "/rota-test").0, 200, "the bucket is made");
    let rota = Rota::new()
        .env("AWS_ENDPOINT", &format!("http://{}", s3.addr))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "rota-test")
        .env("AWS_SECRET_ACCESS_KEY", "rota-test-secret");
    let example = std::fs::read_to_string(example("artifacts.yaml")).expect("example");
    rota.write("jobs/artifacts.yaml", &example);
    let server = rota.serve_with(
        &rota.path("jobs"),
        &["--artifacts", "s3://rota-test/kept/here"],
    );
    let run = remote_json(&rota, &server, &["run", "artifacts"]);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let id = run["id"].as_str().expect("run id");
    assert_eq!(
        remote_json(&rota, &server, &["artifacts", id]),
        example_listing(id)
    );
    let got = remote(
        &rota,
        &server,
        &["artifacts", id, "--get", "reports/summary.txt"],
    );
    assert_code(&got, 0);
    assert_eq!(stdout(&got), format!("built by run {id}\n"));

    // The object is in the bucket under its dated key, and not on the server's disk.
    let day = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    let key = format!("/rota-test/kept/here/default/{day}/{id}/build/reports/summary.txt");
    assert_eq!(s3.call("GET", &key), (200, format!("built by run {id}\n")));
    assert_eq!(
        files_under(&rota.home().join("artifacts")),
        Vec::<PathBuf>::new()
    );

    std::thread::sleep(AGE);
    let pruned = remote_json(&rota, &server, &["prune", "--older-than", "1s"]);
    assert_eq!(pruned["artifacts"], 3, "{pruned}");
    assert_eq!(s3.call("GET", &key).0, 404, "the object went with its run");
}
