//! Run artifacts' rows (migration 0021): recorded with the engine's batches, listed and
//! found per run, replaced by a later attempt, and pruned with their run.

use rota_core::model::{RunStatus, StepStatus};
use rota_store::{Backend, NewArtifact, NewAuditEntry, PruneSpec, RunEvent};

use super::{TestResult, at, create, finished, fresh, job, new_run, started};

fn kept(run: &str, step: &str, attempt: u32, files: &[(&str, u64)]) -> RunEvent {
    RunEvent::ArtifactsKept {
        run_id: run.into(),
        step_id: step.into(),
        attempt,
        at: at(5),
        artifacts: files
            .iter()
            .map(|(path, size)| NewArtifact {
                path: (*path).into(),
                size: *size,
                sha256: format!("{size:064x}"),
                stored_key: format!("ops/2023-11-14/{run}/{step}/{path}"),
            })
            .collect(),
    }
}

both!(artifacts_are_listed_by_step_and_path_replaced_by_a_later_attempt_and_pruned_with_their_run);
async fn artifacts_are_listed_by_step_and_path_replaced_by_a_later_attempt_and_pruned_with_their_run(
    backend: Backend,
) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "build").await?;
    create(&store, new_run("r-1", "ops", "build", 1, &["b", "a"])).await?;
    store
        .record(&[
            RunEvent::RunStarted {
                run_id: "r-1".into(),
                at: at(2),
            },
            started("r-1", "b", 1, 2, None),
            finished("r-1", "b", 1, StepStatus::Failed, 1, 3),
            kept("r-1", "b", 1, &[("out/z.txt", 3), ("keep.bin", 7)]),
            started("r-1", "b", 2, 4, None),
            finished("r-1", "b", 2, StepStatus::Succeeded, 0, 5),
            kept("r-1", "b", 2, &[("out/z.txt", 11)]),
            kept("r-1", "a", 1, &[("report.html", 5)]),
        ])
        .await?;
    let listed: Vec<(String, String, u32, u64)> = store
        .run_artifacts("r-1")
        .await?
        .into_iter()
        .map(|a| (a.step_id, a.path, a.attempt, a.size))
        .collect();
    assert_eq!(
        listed,
        [
            ("a".to_owned(), "report.html".to_owned(), 1, 5),
            ("b".to_owned(), "keep.bin".to_owned(), 1, 7),
            ("b".to_owned(), "out/z.txt".to_owned(), 2, 11),
        ]
    );
    let one = store
        .artifact("r-1", "b", "out/z.txt")
        .await?
        .ok_or("out/z.txt is recorded")?;
    assert_eq!(one.stored_key, "ops/2023-11-14/r-1/b/out/z.txt");
    assert_eq!(one.sha256, format!("{:064x}", 11));
    assert_eq!(one.created_at, at(5));
    assert_eq!(store.artifact("r-1", "a", "out/z.txt").await?, None);

    // A batch naming an unknown run records nothing.
    assert!(
        store
            .record(&[kept("nope", "a", 1, &[("x", 1)])])
            .await
            .is_err()
    );
    assert!(store.run_artifacts("nope").await?.is_empty());

    store
        .record(&[RunEvent::RunFinished {
            run_id: "r-1".into(),
            status: RunStatus::Succeeded,
            reason: None,
            at: at(6),
        }])
        .await?;
    let by = NewAuditEntry {
        at: at(100),
        actor: "test".into(),
        action: String::new(),
        target: String::new(),
        source: None,
        result: String::new(),
    };
    let spec = |dry_run| PruneSpec {
        cutoff: at(50),
        namespace: None,
        dry_run,
        audit: false,
        quiet_when_empty: false,
    };
    assert_eq!(store.prune(&spec(true), &by).await?.artifacts, 3);
    let pruned = store.prune(&spec(false), &by).await?;
    assert_eq!(pruned.artifacts, 3);
    let mut keys = pruned.artifact_keys.clone();
    keys.sort();
    assert_eq!(
        keys,
        [
            "ops/2023-11-14/r-1/a/report.html",
            "ops/2023-11-14/r-1/b/keep.bin",
            "ops/2023-11-14/r-1/b/out/z.txt",
        ]
    );
    assert!(store.run_artifacts("r-1").await?.is_empty());
    Ok(())
}
