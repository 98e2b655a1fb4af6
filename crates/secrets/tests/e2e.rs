//! End to end through the real `rota` binary: `rota secrets set` from stdin, `list`, `rm`,
//! and a run whose step receives the stored value (masked in its logs) with the use
//! recorded and audited.
//!
//! The binary is the one cargo just built (`rota_testkit::rota_bin`).

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Output, Stdio};

use rota_secrets::{KEY_FILE, SecretUse};
use rota_store::Store;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const FIRST: &str = "tok-first-e2e-91c2";
const LATEST: &str = "tok-latest-e2e-4d17";
const FROM_ENV: &str = "env-value-e2e-b3e8";

/// Runs `rota` with `home` as its data directory, no inherited `ROTA_*` variables, the
/// given extra environment, and `stdin` piped in.
fn rota(home: &Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> std::io::Result<Output> {
    let mut command = rota_testkit::rota_command(rota_testkit::rota_bin(), home);
    command
        .args(args)
        .envs(env.iter().copied())
        .current_dir(home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.as_bytes())?;
    }
    child.wait_with_output()
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[track_caller]
fn assert_no_value(output: &Output) {
    let all = describe(output);
    for value in [FIRST, LATEST, FROM_ENV] {
        assert!(!all.contains(value), "{value:?} leaked:\n{all}");
    }
}

#[tokio::test]
async fn a_stored_secret_reaches_the_step_masked_and_its_use_is_audited() -> TestResult {
    let dir = tempfile::tempdir()?;
    let home = dir.path();

    let set = rota(
        home,
        &["secrets", "set", "TOKEN"],
        &[],
        &format!("{FIRST}\n"),
    )?;
    assert_eq!(set.status.code(), Some(0), "{}", describe(&set));
    assert!(String::from_utf8_lossy(&set.stdout).contains("default/TOKEN version 1"));
    let mode = std::fs::metadata(home.join(KEY_FILE))?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let set = rota(home, &["secrets", "set", "TOKEN"], &[], LATEST)?;
    assert_eq!(set.status.code(), Some(0), "{}", describe(&set));
    assert_no_value(&set);

    // A value on the command line is a usage error, never stored.
    let argv = rota(home, &["secrets", "set", "OTHER", "value-in-argv"], &[], "")?;
    assert_eq!(argv.status.code(), Some(2), "{}", describe(&argv));
    let empty = rota(home, &["secrets", "set", "OTHER"], &[], "\n")?;
    assert_eq!(empty.status.code(), Some(2), "{}", describe(&empty));

    let list = rota(home, &["secrets", "list", "--output", "json"], &[], "")?;
    assert_eq!(list.status.code(), Some(0), "{}", describe(&list));
    assert_no_value(&list);
    let listed: serde_json::Value = serde_json::from_slice(&list.stdout)?;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["name"], "TOKEN");
    assert_eq!(listed[0]["version"], 2);
    let table = rota(home, &["secrets", "list"], &[], "")?;
    assert!(String::from_utf8_lossy(&table.stdout).contains("TOKEN"));
    assert_no_value(&table);

    std::fs::write(
        home.join("job.yaml"),
        r#"id: show-token
namespace: default
secrets: [TOKEN, FROM_ENV]
steps:
  - id: show
    sh: |
      echo "token=$TOKEN"
      [ "$TOKEN" = "tok-latest-e2e-4d17" ] && echo "the-latest-version-arrived"
      echo "env=$FROM_ENV"
"#,
    )?;
    let env = [("FROM_ENV", FROM_ENV)];
    let run = rota(home, &["run", "job.yaml", "--output", "json"], &env, "")?;
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    assert_no_value(&run);
    let live = String::from_utf8_lossy(&run.stderr);
    for line in ["token=***", "the-latest-version-arrived", "env=***"] {
        assert!(live.contains(line), "missing {line:?}:\n{}", describe(&run));
    }
    let record: serde_json::Value = serde_json::from_slice(&run.stdout)?;
    let run_id = record["id"].as_str().ok_or("no run id")?;
    let logs = rota(home, &["logs", run_id], &[], "")?;
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("token=***"),
        "{}",
        describe(&logs)
    );
    assert_no_value(&logs);

    let store = Store::open(home).await?;
    let uses = store.run_secret_uses(run_id).await?;
    let expected = |name: &str, version| SecretUse {
        namespace: "default".into(),
        name: name.into(),
        version,
    };
    assert_eq!(
        uses,
        [expected("FROM_ENV", None), expected("TOKEN", Some(2))]
    );
    let audit = store.list_audit(0, 100).await?;
    let source = format!("run/{run_id}");
    let used: Vec<&str> = audit
        .iter()
        .filter(|e| e.action == "secret.use" && e.source.as_deref() == Some(source.as_str()))
        .map(|e| e.target.as_str())
        .collect();
    assert_eq!(used, ["default/TOKEN@2", "default/FROM_ENV@env"]);
    store.close().await;

    // Once removed, and with no environment variable of that name, the job cannot run.
    let rm = rota(home, &["secrets", "rm", "TOKEN"], &[], "")?;
    assert_eq!(rm.status.code(), Some(0), "{}", describe(&rm));
    let again = rota(home, &["run", "job.yaml"], &env, "")?;
    assert_eq!(again.status.code(), Some(2), "{}", describe(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("TOKEN"),
        "{}",
        describe(&again)
    );
    let rm_again = rota(home, &["secrets", "rm", "TOKEN"], &[], "")?;
    assert_eq!(rm_again.status.code(), Some(1), "{}", describe(&rm_again));
    Ok(())
}

#[tokio::test]
async fn runs_started_by_the_server_receive_stored_secrets() -> TestResult {
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("home");
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(&home)?;
    std::fs::create_dir_all(&jobs)?;
    let set = rota(&home, &["secrets", "set", "TOKEN"], &[], LATEST)?;
    assert_eq!(set.status.code(), Some(0), "{}", describe(&set));
    std::fs::write(
        jobs.join("tick.yaml"),
        "id: tick\ntriggers:\n  - interval: 1s\npolicy:\n  overlap: skip\nsecrets: [TOKEN]\n\
         steps:\n  - id: show\n    sh: echo \"token=$TOKEN\"\n",
    )?;
    let server = rota_testkit::Serve::builder(&home, &jobs).start()?;

    let store = Store::open(&home).await?;
    let patience = std::time::Instant::now();
    let run = loop {
        let runs = store.list_runs(&rota_store::RunFilter::default()).await?;
        if let Some(run) = runs.into_iter().find(|r| r.finished_at.is_some()) {
            break run;
        }
        assert!(
            patience.elapsed() < std::time::Duration::from_secs(60),
            "no run of the server finished within a minute"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    drop(server);
    assert_eq!(run.status.as_str(), "succeeded", "{run:?}");
    let logs = rota(&home, &["logs", &run.id], &[], "")?;
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("token=***"),
        "{}",
        describe(&logs)
    );
    assert_no_value(&logs);
    assert_eq!(
        store.run_secret_uses(&run.id).await?,
        [SecretUse {
            namespace: "default".into(),
            name: "TOKEN".into(),
            version: Some(1),
        }]
    );
    let source = format!("run/{}", run.id);
    let audit = store.list_audit(0, 1000).await?;
    assert!(
        audit.iter().any(|e| e.action == "secret.use"
            && e.target == "default/TOKEN@1"
            && e.source.as_deref() == Some(source.as_str())),
        "{audit:?}"
    );
    store.close().await;
    Ok(())
}
