//! `check:` steps run through the engine's front door against a real Prometheus
//! (`/usr/bin/prometheus`, the Debian package `prometheus`), on a real SQLite store.
//!
//! One Prometheus serves every test of this file: it scrapes, every second, an exporter
//! this file serves on 127.0.0.1 from a plain thread, where each test owns its own gauge
//! and sets its value. Prometheus runs with a query log, so a test can tell whether a
//! query was sent at all. It is started by a thread that lives as long as the test binary
//! and dies with it (`PR_SET_PDEATHSIG`); its data sits under Cargo's `CARGO_TARGET_TMPDIR`.
//! Waits are polls with generous bounds, never timing assertions.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use rota_core::model::{RunStatus, StepStatus};
use rota_engine::run::{RunStop, StopReason, Update};

mod support;

use support::{Options, TestResult, run_job};

/// A generous bound on Prometheus starting and on a value reaching it.
const PROMETHEUS_LIMIT: Duration = Duration::from_secs(90);
const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";

// ---------------------------------------------------------------------------------------------
// the exporter and Prometheus

/// Gauge name → value, as the exporter serves them (each with `job="api"`).
fn gauges() -> &'static Mutex<BTreeMap<String, String>> {
    static GAUGES: OnceLock<Mutex<BTreeMap<String, String>>> = OnceLock::new();
    GAUGES.get_or_init(|| Mutex::new(BTreeMap::new()))
}

fn set_gauge(name: &str, value: &str) {
    if let Ok(mut gauges) = gauges().lock() {
        gauges.insert(name.to_owned(), value.to_owned());
    }
}

/// Serves `GET /metrics` on 127.0.0.1 from a thread; returns its address.
fn start_exporter() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = serve_metrics(stream);
        }
    });
    Ok(address)
}

fn serve_metrics(stream: std::net::TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    // Read the request head; the body is empty.
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    let mut body = String::new();
    if let Ok(gauges) = gauges().lock() {
        for (name, value) in gauges.iter() {
            body.push_str(&format!(
                "# TYPE {name} gauge\n{name}{{job=\"api\"}} {value}\n"
            ));
        }
    }
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

struct Prometheus {
    base: String,
    query_log: PathBuf,
}

/// The shared Prometheus, started on first use.
fn prometheus() -> Result<&'static Prometheus, String> {
    static PROMETHEUS: OnceLock<Result<Prometheus, String>> = OnceLock::new();
    PROMETHEUS
        .get_or_init(start_prometheus)
        .as_ref()
        .map_err(Clone::clone)
}

const DIR_PREFIX: &str = "check-step-prometheus-";

/// Removes the Prometheus directories of earlier test binaries that are gone.
fn remove_stale_dirs(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(DIR_PREFIX)
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn start_prometheus() -> Result<Prometheus, String> {
    if !Path::new(PROMETHEUS_BIN).exists() {
        return Err(format!(
            "{PROMETHEUS_BIN} is missing: these tests need a real Prometheus \
             (install the Debian package `prometheus`)"
        ));
    }
    let exporter = start_exporter().map_err(|e| format!("cannot start the exporter: {e}"))?;
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    remove_stale_dirs(tmp);
    let dir = tmp.join(format!("{DIR_PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let query_log = dir.join("queries.log");
    // `honor_labels` keeps the exporter's `job="api"`; `instance` is dropped so every
    // series reads `{job="api"}`.
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  query_log_file: {}\n\
         scrape_configs:\n  - job_name: rota-test\n    honor_labels: true\n    \
         static_configs:\n      - targets: ['{exporter}']\n    metric_relabel_configs:\n      \
         - action: labeldrop\n        regex: instance\n",
        query_log.display()
    );
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).map_err(|e| format!("cannot write the config: {e}"))?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let mut command = std::process::Command::new(PROMETHEUS_BIN);
    command
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(
            std::fs::File::create(dir.join("prometheus.log"))
                .map(std::process::Stdio::from)
                .map_err(|e| format!("cannot create the log: {e}"))?,
        );
    // SAFETY: `prctl` is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
    // The death signal fires when the thread that started the child ends, so a thread that
    // lives as long as the test binary starts it, then waits on it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || match command.spawn() {
        Ok(mut child) => {
            let _ = tx.send(Ok(()));
            let _ = child.wait();
        }
        Err(e) => {
            let _ = tx.send(Err(format!("cannot start {PROMETHEUS_BIN}: {e}")));
        }
    });
    rx.recv()
        .map_err(|_| "the Prometheus thread died".to_owned())??;
    Ok(Prometheus {
        base: format!("http://127.0.0.1:{port}"),
        query_log,
    })
}

/// The values Prometheus currently returns for `query` (empty while it has none).
async fn current_values(base: &str, query: &str) -> Result<Vec<String>, String> {
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    Ok(body["data"]["result"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["value"][1].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// Sets gauge `name` to `value` and waits until Prometheus has scraped it; returns the base
/// URL of the Prometheus API.
async fn gauge(name: &str, value: &str) -> Result<&'static str, String> {
    let prometheus = prometheus()?;
    set_gauge(name, value);
    let waited = tokio::time::timeout(PROMETHEUS_LIMIT, async {
        loop {
            // Connection errors only mean Prometheus is still starting.
            if let Ok(values) = current_values(&prometheus.base, name).await
                && values.iter().any(|v| v == value)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    waited.map_err(|_| {
        format!(
            "Prometheus at {} did not report {name} = {value} within {PROMETHEUS_LIMIT:?}",
            prometheus.base
        )
    })?;
    Ok(&prometheus.base)
}

/// Whether Prometheus's query log holds `query` (as an instant query's parameter).
fn query_logged(query: &str) -> Result<bool, String> {
    let prometheus = prometheus()?;
    let log = std::fs::read_to_string(&prometheus.query_log).unwrap_or_default();
    Ok(log.lines().any(|line| {
        serde_json::from_str::<serde_json::Value>(line)
            .is_ok_and(|entry| entry["params"]["query"].as_str() == Some(query))
    }))
}

// ---------------------------------------------------------------------------------------------
// running a job

/// Calls `act` once the first live line containing `needle` arrives.
fn on_line(
    needle: &'static str,
    act: impl FnOnce() + Send + 'static,
) -> tokio::sync::mpsc::UnboundedSender<Update> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(update) = rx.recv().await {
            if let Update::Line { line, .. } = update
                && line.text.contains(needle)
            {
                act();
                break;
            }
        }
        // Keep draining so the engine's sends never fail.
        while rx.recv().await.is_some() {}
    });
    tx
}

// ---------------------------------------------------------------------------------------------
// tests

#[tokio::test]
async fn a_value_that_holds_for_the_window_passes_and_feeds_downstream() -> TestResult {
    let base = gauge("rota_verify_gauge", "0.003").await?;
    let source = format!(
        r#"id: check-ok
steps:
  - id: precheck
    check:
      prometheus: "{base}"
      query: rota_verify_gauge
      below: 0.01
      for: 3s
      every: 1s
    timeout: 60s
  - id: after
    needs: [precheck]
    sh: test "{{{{ steps.precheck.outputs.value }}}}" = 0.003
"#
    );
    let ran = run_job(&source, Options::default()).await?;
    ran.assert_status(RunStatus::Succeeded);
    assert_eq!(ran.output("precheck", "value"), Some("0.003"));
    // Four passing evaluations in a row (0s, 1s, 2s, 3s) span `for: 3s`.
    assert_eq!(ran.output("precheck", "evaluations"), Some("4"));
    let log = ran.log().await?;
    assert!(
        log.contains(
            &r#"check rota_verify_gauge = 0.003 {job="api"} (below 0.01: ok, held 3s of 3s)"#
                .to_owned()
        ),
        "{log:?}"
    );
    Ok(())
}

#[tokio::test]
async fn verify_mode_fails_at_the_first_breaking_evaluation() -> TestResult {
    let base = gauge("rota_breaking_gauge", "0.2").await?;
    let source = format!(
        r#"id: check-fail
steps:
  - id: precheck
    check: {{ prometheus: "{base}", query: rota_breaking_gauge, below: 0.01, for: 1m, every: 1s }}
    timeout: 5m
  - id: band
    check: {{ prometheus: "{base}", query: rota_breaking_gauge, above: 0.5, below: 1 }}
"#
    );
    let ran = run_job(&source, Options::default()).await?;
    ran.assert_status(RunStatus::Failed);
    assert_eq!(ran.step("precheck").status, StepStatus::Failed);
    assert_eq!(
        ran.check_reason("precheck"),
        r#"rota_breaking_gauge = 0.2 {job="api"}: not below 0.01"#
    );
    assert_eq!(ran.output("precheck", "evaluations"), Some("1"));
    assert_eq!(ran.output("precheck", "value"), Some("0.2"));
    assert_eq!(
        ran.check_reason("band"),
        r#"rota_breaking_gauge = 0.2 {job="api"}: not above 0.5"#
    );
    Ok(())
}

#[tokio::test]
async fn wait_mode_passes_once_the_value_comes_into_range() -> TestResult {
    let base = gauge("rota_gate_gauge", "5").await?;
    let source = format!(
        r#"id: check-gate
steps:
  - id: gate
    check: {{ prometheus: "{base}", query: rota_gate_gauge, below: 1, wait: true, every: 1s }}
    timeout: 100s
"#
    );
    // Once the gate has seen the bad value, the value drops into range.
    let updates = on_line("not ok, waiting", || set_gauge("rota_gate_gauge", "0.5"));
    let ran = run_job(
        &source,
        Options {
            updates: Some(updates),
            ..Options::default()
        },
    )
    .await?;
    ran.assert_status(RunStatus::Succeeded);
    assert_eq!(ran.output("gate", "value"), Some("0.5"));
    let evaluations: u32 = ran.output("gate", "evaluations").unwrap_or("0").parse()?;
    assert!(evaluations >= 2, "{:?}", ran.step("gate"));
    let log = ran.log().await?;
    assert!(
        log.contains(
            &r#"check rota_gate_gauge = 5 {job="api"} (below 1: not ok, waiting)"#.to_owned()
        ),
        "{log:?}"
    );
    Ok(())
}

#[tokio::test]
async fn wait_mode_ends_timed_out_at_the_step_timeout() -> TestResult {
    let base = gauge("rota_never_gauge", "7").await?;
    let source = format!(
        r#"id: check-never
steps:
  - id: gate
    check: {{ prometheus: "{base}", query: rota_never_gauge, below: 1, for: 1s, every: 1s, wait: true }}
    timeout: 3s
"#
    );
    let ran = run_job(&source, Options::default()).await?;
    ran.assert_status(RunStatus::Failed);
    assert_eq!(ran.step("gate").status, StepStatus::TimedOut);
    assert_eq!(
        ran.check_reason("gate"),
        r#"condition did not hold for 1s before the step timeout of 3s; last evaluation: rota_never_gauge = 7 {job="api"} (below 1: not ok, waiting)"#
    );
    assert_eq!(ran.output("gate", "value"), Some("7"));
    Ok(())
}

#[tokio::test]
async fn an_empty_result_fails_or_passes_as_no_data_says() -> TestResult {
    let base = prometheus()?.base.as_str();
    let source = format!(
        r#"id: check-nodata
steps:
  - id: strict
    check: {{ prometheus: "{base}", query: rota_absent_metric, below: 1 }}
  - id: lenient
    check: {{ prometheus: "{base}", query: rota_absent_metric, below: 1, no_data: pass }}
"#
    );
    let ran = run_job(&source, Options::default()).await?;
    ran.assert_status(RunStatus::Failed);
    assert_eq!(ran.step("strict").status, StepStatus::Failed);
    assert_eq!(ran.check_reason("strict"), "no data for rota_absent_metric");
    assert_eq!(ran.step("lenient").status, StepStatus::Succeeded);
    assert_eq!(ran.output("lenient", "value"), None);
    assert_eq!(ran.output("lenient", "evaluations"), Some("1"));
    Ok(())
}

#[tokio::test]
async fn a_query_prometheus_rejects_fails_with_its_message() -> TestResult {
    let base = prometheus()?.base.as_str();
    let source = format!(
        r#"id: check-bad-query
steps:
  - id: typo
    check: {{ prometheus: "{base}", query: "rate(rota_x[5m]", below: 1 }}
"#
    );
    let ran = run_job(&source, Options::default()).await?;
    ran.assert_status(RunStatus::Failed);
    let reason = ran.check_reason("typo");
    assert!(
        reason.starts_with("prometheus error for rate(rota_x[5m]: ")
            && reason.contains("parse error")
            && reason.ends_with("(bad_data)"),
        "{reason}"
    );
    Ok(())
}

#[tokio::test]
async fn a_secret_in_a_header_or_the_query_never_reaches_logs_or_outputs() -> TestResult {
    const TOKEN: &str = "tok-7be2c94a1d3f";
    let base = gauge("rota_secret_gauge", "0.5").await?;
    let source = format!(
        r#"id: check-secret
secrets: [PROM_TOKEN]
steps:
  - id: guarded
    check:
      prometheus: "{base}"
      query: 'rota_secret_gauge{{job!="{{{{ secrets.PROM_TOKEN }}}}"}}'
      below: 1
      headers: {{ Authorization: "Bearer {{{{ secrets.PROM_TOKEN }}}}" }}
"#
    );
    let ran = run_job(
        &source,
        Options {
            secrets: vec![("PROM_TOKEN", TOKEN)],
            ..Options::default()
        },
    )
    .await?;
    ran.assert_status(RunStatus::Succeeded);
    // The rendered query reached Prometheus with the secret in it.
    assert!(query_logged(&format!(
        "rota_secret_gauge{{job!=\"{TOKEN}\"}}"
    ))?);
    let log = ran.log().await?;
    assert!(
        log.contains(
            &r#"check rota_secret_gauge{job!="***"} = 0.5 {job="api"} (below 1: ok)"#.to_owned()
        ),
        "{log:?}"
    );
    assert!(!log.iter().any(|l| l.contains(TOKEN)), "{log:?}");
    let summary = format!("{:?}", ran.summary);
    assert!(!summary.contains(TOKEN), "{summary}");
    Ok(())
}

#[tokio::test]
async fn a_cancel_mid_wait_cancels_the_step() -> TestResult {
    let base = gauge("rota_cancel_gauge", "9").await?;
    let source = format!(
        r#"id: check-cancel
steps:
  - id: gate
    check: {{ prometheus: "{base}", query: rota_cancel_gauge, below: 1, wait: true, every: 1s }}
    timeout: 100s
  - id: later
    needs: [gate]
    sh: "true"
"#
    );
    let stop = RunStop::new();
    let stopper = stop.clone();
    let updates = on_line("not ok, waiting", move || {
        stopper.stop(StopReason::Cancelled("test".into()));
    });
    let ran = run_job(
        &source,
        Options {
            stop: Some(stop),
            updates: Some(updates),
            ..Options::default()
        },
    )
    .await?;
    ran.assert_status(RunStatus::Cancelled);
    assert_eq!(ran.step("gate").status, StepStatus::Cancelled);
    assert_eq!(ran.reason("gate"), "cancelled by test");
    assert_eq!(ran.output("gate", "value"), Some("9"));
    assert_ne!(ran.step("later").status, StepStatus::Succeeded);
    Ok(())
}

#[tokio::test]
async fn a_dry_run_queries_only_what_is_marked_run() -> TestResult {
    let base = gauge("rota_dry_gauge", "0.1").await?;
    let source = format!(
        r#"id: check-dry
steps:
  - id: echoed
    check: {{ prometheus: "{base}", query: "rota_dry_gauge * 1", below: 1 }}
  - id: evaluated
    check: {{ prometheus: "{base}", query: "rota_dry_gauge + 0", below: 1 }}
    dry_run: run
  - id: skipped
    check: {{ prometheus: "{base}", query: "rota_dry_gauge - 0", below: 1 }}
    dry_run: skip
"#
    );
    let ran = run_job(
        &source,
        Options {
            dry_run: true,
            ..Options::default()
        },
    )
    .await?;
    ran.assert_status(RunStatus::Succeeded);
    assert_eq!(ran.step("echoed").status, StepStatus::Succeeded);
    assert_eq!(ran.step("evaluated").status, StepStatus::Succeeded);
    assert_eq!(ran.output("evaluated", "value"), Some("0.1"));
    assert_eq!(ran.step("skipped").status, StepStatus::Skipped);
    assert!(query_logged("rota_dry_gauge + 0")?);
    assert!(!query_logged("rota_dry_gauge * 1")?);
    assert!(!query_logged("rota_dry_gauge - 0")?);
    let log = ran.log().await?;
    assert!(
        log.contains(&format!(
            "dry run: would check rota_dry_gauge * 1 against {base}"
        )),
        "{log:?}"
    );
    Ok(())
}

#[tokio::test]
async fn an_unreachable_api_fails_a_verification_and_is_waited_through_by_a_gate() -> TestResult {
    // A port nobody listens on: bound, then released.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let base = format!("http://127.0.0.1:{port}");
    let source = format!(
        r#"id: check-down
steps:
  - id: verify
    check: {{ prometheus: "{base}", query: up, below: 1 }}
  - id: gate
    check: {{ prometheus: "{base}", query: up, below: 1, wait: true, every: 1s }}
    timeout: 3s
"#
    );
    let ran = run_job(&source, Options::default()).await?;
    ran.assert_status(RunStatus::Failed);
    let refused = format!("connection refused to {base}/api/v1/query?query=up");
    assert_eq!(ran.step("verify").status, StepStatus::Failed);
    assert_eq!(ran.check_reason("verify"), refused);
    assert_eq!(ran.step("gate").status, StepStatus::TimedOut);
    assert_eq!(
        ran.check_reason("gate"),
        format!("condition did not hold before the step timeout of 3s; last evaluation: {refused}")
    );
    // Timed out rather than failed: the gate waited through the refusals.
    let log = ran.log().await?;
    assert!(log.contains(&format!("! {refused}; waiting")), "{log:?}");
    Ok(())
}
