//! What a server follows cheaply: the change counters, the jobs changed since a counter
//! value, and job files saved in batches.

use rota_store::{Backend, FileJobSave, JobHeadChange, NewJobRevision};

use super::{TestResult, at, fresh};

fn revision(job: &str, source: &str, path: Option<&str>) -> NewJobRevision {
    let mut rev = NewJobRevision::new(
        "default",
        job,
        source,
        serde_json::json!({ "id": job }),
        at(0),
    );
    rev.source_path = path.map(str::to_owned);
    rev
}

fn file_job(job: &str, source: &str, triggers: &[&str]) -> FileJobSave {
    FileJobSave {
        revision: revision(job, source, Some(&format!("/jobs/{job}.yaml"))),
        trigger_keys: triggers.iter().map(|t| (*t).to_owned()).collect(),
        wants_last_run: triggers.iter().map(|_| true).collect(),
    }
}

fn head(job: &str, head: Option<(i64, Option<&str>)>) -> JobHeadChange {
    JobHeadChange {
        namespace: "default".into(),
        job_id: job.into(),
        head: head.map(|(r, p)| (r, p.map(str::to_owned))),
    }
}

both!(saves_deletions_and_pauses_move_the_counters_and_name_what_changed);
async fn saves_deletions_and_pauses_move_the_counters_and_name_what_changed(
    backend: Backend,
) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    let start = store.change_counters().await?;
    assert!(store.job_changes_since(start.jobs).await?.is_empty());

    store.save_job_revision(&revision("a", "v1", None)).await?;
    store.save_job_revision(&revision("b", "v1", None)).await?;
    let after_saves = store.change_counters().await?;
    assert_eq!(after_saves.jobs, start.jobs + 2);
    assert_eq!(after_saves.schedule_state, start.schedule_state);
    assert_eq!(
        store.job_changes_since(start.jobs).await?,
        [head("a", Some((1, None))), head("b", Some((1, None)))]
    );
    // The same text again writes nothing and moves nothing.
    store.save_job_revision(&revision("a", "v1", None)).await?;
    assert_eq!(store.change_counters().await?, after_saves);
    assert!(store.job_changes_since(after_saves.jobs).await?.is_empty());

    // A deletion, a revision from a file, a revival: each job's head as it is now.
    store.delete_job("default", "a", "me", at(1)).await?;
    store
        .save_job_revision(&revision("b", "v2", Some("/jobs/b.yaml")))
        .await?;
    assert_eq!(
        store.job_changes_since(after_saves.jobs).await?,
        [head("a", None), head("b", Some((2, Some("/jobs/b.yaml"))))]
    );
    let after_delete = store.change_counters().await?;
    store.save_job_revision(&revision("a", "v1", None)).await?;
    assert_eq!(
        store.job_changes_since(after_delete.jobs).await?,
        [head("a", Some((2, None)))]
    );
    // Deleted again after the revival: deleted.
    store.delete_job("default", "a", "me", at(2)).await?;
    assert_eq!(
        store.job_changes_since(after_delete.jobs).await?,
        [head("a", None)]
    );

    store.set_paused("default", "b", true, None, at(3)).await?;
    let paused = store.change_counters().await?;
    assert_eq!(paused.schedule_state, start.schedule_state + 1);
    Ok(())
}

both!(job_files_save_in_one_batch_like_single_saves);
async fn job_files_save_in_one_batch_like_single_saves(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    store
        .set_job_load_error("/jobs/a.yaml", "broken before", at(0))
        .await?;
    let before = store.change_counters().await?;
    let batch = [
        file_job("a", "a v1", &["cron:0 3 * * *@UTC"]),
        file_job("b", "b v1", &["cron:0 3 * * *@UTC", "every:60000ms:end"]),
        // The same job twice in one batch: saved twice, in order.
        file_job("b", "b v2", &["cron:0 3 * * *@UTC", "every:60000ms:end"]),
    ];
    let paths = ["/jobs/a.yaml".to_owned(), "/jobs/b.yaml".to_owned()];
    let saved = store.save_file_jobs(&batch, &paths, at(10)).await?;
    let revisions: Vec<(i64, bool)> = saved.iter().map(|s| (s.revision, s.created)).collect();
    assert_eq!(revisions, [(1, true), (1, true), (2, true)]);
    assert_eq!(saved[1].triggers.len(), 2);
    for (state, last_run) in &saved[1].triggers {
        assert_eq!((state.origin, state.evaluated_until), (at(10), at(10)));
        assert_eq!(last_run, &None);
    }
    assert!(store.job_load_errors().await?.is_empty());
    let latest = store
        .latest_job_revision("default", "b")
        .await?
        .ok_or("b missing")?;
    assert_eq!((latest.revision, latest.source.as_str()), (2, "b v2"));
    assert_eq!(latest.source_path.as_deref(), Some("/jobs/b.yaml"));
    // One transaction, one counter step.
    let after = store.change_counters().await?;
    assert_eq!(after.jobs, before.jobs + 1);
    assert_eq!(
        store.job_changes_since(before.jobs).await?,
        [
            head("a", Some((1, Some("/jobs/a.yaml")))),
            head("b", Some((2, Some("/jobs/b.yaml"))))
        ]
    );

    // Saved again unchanged (a restart): nothing written, cursors kept.
    let again = store.save_file_jobs(&batch[..2], &paths, at(20)).await?;
    assert_eq!(again[0].revision, 1);
    assert!(!again[0].created);
    assert_eq!(again[0].triggers[0].0.origin, at(10));
    // `b` v1 differs from the latest (v2): a new revision, like a single save.
    assert_eq!((again[1].revision, again[1].created), (3, true));
    // A deleted job's same text revives it.
    store
        .delete_file_job("default", "a", "/jobs/a.yaml", "jobdir", at(30))
        .await?;
    let revived = store
        .save_file_jobs(&batch[..1], &paths[..1], at(40))
        .await?;
    assert_eq!((revived[0].revision, revived[0].created), (2, true));
    Ok(())
}
