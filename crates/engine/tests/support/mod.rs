//! Running one job through the engine on a fresh SQLite store, for the tests of the step
//! kinds that run without a process of their own (`http`, `check`).

// Each test crate uses its own part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use rota_core::model::RunStatus;
use rota_core::parse::{Format, parse_str};
use rota_engine::run::{
    EngineConfig, RunRequest, RunStop, RunSummary, StepSummary, Update, execute,
};
use rota_store::{NewJobRevision, Store};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Upper bound on one test run, far above what any of them takes.
pub const RUN_LIMIT: Duration = Duration::from_secs(120);

/// A finished run, its store and its working directory.
pub struct Ran {
    pub summary: RunSummary,
    pub store: Store,
    pub dir: tempfile::TempDir,
}

impl Ran {
    pub fn assert_status(&self, status: RunStatus) {
        assert_eq!(self.summary.status, status, "{:?}", self.summary);
    }

    pub fn step(&self, id: &str) -> &StepSummary {
        self.summary
            .steps
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("no step {id} in {:?}", self.summary))
    }

    pub fn output(&self, id: &str, name: &str) -> Option<&str> {
        self.step(id).outputs.get(name).map(String::as_str)
    }

    pub fn reason(&self, id: &str) -> &str {
        self.step(id).reason.as_deref().unwrap_or_default()
    }

    /// A failed `check` step's reason without what it says of rollbacks, which it must
    /// say (`; rollback to run: …` or `; no rollback will run: …`).
    #[allow(dead_code)] // Not every test binary has check steps.
    pub fn check_reason(&self, id: &str) -> &str {
        let reason = self.reason(id);
        ["; rollback to run: ", "; no rollback will run: "]
            .iter()
            .find_map(|suffix| reason.rfind(suffix).map(|at| &reason[..at]))
            .unwrap_or_else(|| panic!("{id}'s reason says nothing of rollbacks: {reason}"))
    }

    /// Every stored log line of the run.
    pub async fn log(&self) -> Result<Vec<String>, Box<dyn std::error::Error>> {
        let mut lines = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .store
                .logs(&self.summary.run_id, None, after, 1000)
                .await?;
            let Some(last) = page.last() else {
                return Ok(lines);
            };
            after = last.seq;
            lines.extend(page.into_iter().map(|l| l.text));
        }
    }
}

/// How to run the job.
#[derive(Default)]
pub struct Options {
    pub params: Vec<(&'static str, &'static str)>,
    pub secrets: Vec<(&'static str, &'static str)>,
    pub dry_run: bool,
    pub stop: Option<RunStop>,
    pub updates: Option<tokio::sync::mpsc::UnboundedSender<Update>>,
}

/// Saves the job of `source` (YAML) and runs it to its end as `rota run` would.
pub async fn run_job(source: &str, options: Options) -> Result<Ran, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("home")).await?;
    let job = parse_str(source, "job.yaml", Format::Yaml)
        .map_err(|d| format!("{d}"))?
        .remove(0);
    let revision = NewJobRevision::new(
        "default",
        job.id.clone(),
        source,
        serde_json::to_value(&job)?,
        Timestamp::now(),
    );
    let revision = store.save_job_revision(&revision).await?.revision;
    let request = RunRequest {
        run_id: "run-1".to_owned(),
        job,
        job_revision: revision,
        namespace: "default".to_owned(),
        params: options
            .params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect(),
        secrets: options
            .secrets
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        dry_run: options.dry_run,
        trigger: "cli".to_owned(),
        started_by: None,
        scheduled_at: None,
        base_dir: dir.path().to_owned(),
        prior: Vec::new(),
        gates: Default::default(),
        confirmations: Default::default(),
        resume: None,
        parent: None,
    };
    let config = EngineConfig {
        artifacts_dir: dir.path().join("runs"),
        grace: Duration::from_secs(5),
        log_cap_bytes: 1 << 20,
        guardian: None,
        durable_step_starts: false,
        remote: None,
        children: None,
        artifacts: None,
    };
    let stop = options.stop.unwrap_or_default();
    let summary = tokio::time::timeout(
        RUN_LIMIT,
        execute(&store, &config, request, stop, options.updates),
    )
    .await??;
    Ok(Ran {
        summary,
        store,
        dir,
    })
}
