//! Run artifacts' rows (migration 0021): recorded with the engine's batches, listed and
//! found per run, replaced by a later attempt, and pruned with their run; a run's kept
//! report recorded with its `run.report` audit entry and checked against its bytes.

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

/// A report's bytes stored in `blobs` under run `run`'s key, as `rota-ops` keeps one.
async fn stored_report(
    blobs: &rota_store::ArtifactBlobs,
    run: &str,
    text: &str,
) -> Result<NewArtifact, Box<dyn std::error::Error>> {
    use sha2::Digest as _;
    let key = rota_store::artifact_key("ops", at(2), run, rota_store::RUN_STEP, "report.html");
    blobs.put(&key, text.as_bytes().to_vec()).await?;
    Ok(NewArtifact {
        path: "report.html".into(),
        size: text.len() as u64,
        sha256: hex::encode(sha2::Sha256::digest(text.as_bytes())),
        stored_key: key,
    })
}

both!(a_kept_report_is_listed_audited_and_checked_against_its_bytes);
async fn a_kept_report_is_listed_audited_and_checked_against_its_bytes(
    backend: Backend,
) -> TestResult {
    use rota_store::{RUN_REPORT, RUN_STEP, ReportProblem};
    let (_db, store) = fresh(backend).await?;
    let dir = tempfile::tempdir()?;
    let blobs = rota_store::ArtifactBlobs::local(&dir.path().join("artifacts"))?;
    job(&store, "ops", "build").await?;
    create(&store, new_run("r-1", "ops", "build", 1, &["a"])).await?;
    let report = stored_report(&blobs, "r-1", "<!DOCTYPE html>the report").await?;

    // A report tells how a run ended: none is recorded before it has.
    store
        .record(&[RunEvent::RunStarted {
            run_id: "r-1".into(),
            at: at(2),
        }])
        .await?;
    let early = store.record_run_report("r-1", &report, at(3)).await;
    assert!(
        matches!(&early, Err(rota_store::StoreError::RunNotEnded { status, .. }) if status == "running"),
        "{early:?}"
    );
    assert!(matches!(
        store.record_run_report("nope", &report, at(3)).await,
        Err(rota_store::StoreError::RunNotFound(_))
    ));
    store
        .record(&[RunEvent::RunFinished {
            run_id: "r-1".into(),
            status: RunStatus::Succeeded,
            reason: None,
            at: at(4),
        }])
        .await?;
    store.record_run_report("r-1", &report, at(5)).await?;

    // Listed with the run's artifacts, under the step no job step can have.
    let listed: Vec<(String, String, u32)> = store
        .run_artifacts("r-1")
        .await?
        .into_iter()
        .map(|a| (a.step_id, a.path, a.attempt))
        .collect();
    assert_eq!(listed, [(RUN_STEP.to_owned(), "report.html".to_owned(), 0)]);
    // Audited after the run's end and its digest, naming the hash and the path.
    let audit = store.list_audit(0, 100).await?;
    let last = audit.last().ok_or("an audit entry")?;
    assert_eq!(
        (
            last.actor.as_str(),
            last.action.as_str(),
            last.target.as_str()
        ),
        ("engine", RUN_REPORT, "run/r-1")
    );
    assert_eq!(last.result, format!("sha256:{} report.html", report.sha256));
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    let end = actions.iter().position(|a| *a == "run.finished");
    assert!(end < Some(audit.len() - 1), "{actions:?}");

    assert_eq!(store.check_audit_chain().await?, None);
    assert_eq!(store.check_run_reports(Some(&blobs)).await?, None);
    // Without the artifact store nothing can vouch for the bytes.
    let unchecked = store.check_run_reports(None).await?.ok_or("unchecked")?;
    assert!(matches!(unchecked.what, ReportProblem::Unchecked(_)));

    // Bytes changed in the artifact store: named with the run and its entry.
    blobs
        .put(
            &report.stored_key,
            b"<!DOCTYPE html>another report".to_vec(),
        )
        .await?;
    let changed = store
        .check_run_reports(Some(&blobs))
        .await?
        .ok_or("a changed report is found")?;
    assert_eq!(
        (
            changed.run_id.as_str(),
            changed.path.as_str(),
            changed.entry_id
        ),
        ("r-1", "report.html", last.id)
    );
    assert_eq!(changed.what, ReportProblem::Changed);
    assert_eq!(
        changed.to_string(),
        format!(
            "run r-1's kept report report.html changed after it was kept (audit entry {})",
            last.id
        )
    );
    // Deleted: missing.
    blobs
        .delete(std::slice::from_ref(&report.stored_key))
        .await?;
    let missing = store
        .check_run_reports(Some(&blobs))
        .await?
        .ok_or("missing")?;
    assert_eq!(missing.what, ReportProblem::Missing);
    // The same bytes back: it holds again.
    stored_report(&blobs, "r-1", "<!DOCTYPE html>the report").await?;
    assert_eq!(store.check_run_reports(Some(&blobs)).await?, None);

    // A pruned run's report goes with it; nothing is left to check.
    blobs
        .delete(std::slice::from_ref(&report.stored_key))
        .await?;
    let by = NewAuditEntry {
        at: at(100),
        actor: "test".into(),
        action: String::new(),
        target: String::new(),
        source: None,
        result: String::new(),
    };
    let pruned = store
        .prune(
            &PruneSpec {
                cutoff: at(50),
                namespace: None,
                dry_run: false,
                audit: false,
                quiet_when_empty: false,
            },
            &by,
        )
        .await?;
    assert_eq!(
        pruned.artifact_keys,
        std::slice::from_ref(&report.stored_key)
    );
    assert_eq!(store.check_run_reports(Some(&blobs)).await?, None);
    Ok(())
}
