//! The scheduler daemon's tables: occurrences recorded exactly once, trigger cursors, pause
//! state, claims of queued runs and job load errors.

use rota_core::model::RunStatus;
use rota_store::{Backend, NewOccurrence, OccurrenceKind, Owner, RunEvent};

use super::{TestResult, at, fresh, job, new_run, owner};

fn occurrence(key: &str, secs: i64, kind: OccurrenceKind, reason: Option<&str>) -> NewOccurrence {
    NewOccurrence {
        namespace: "default".into(),
        job_id: "tick".into(),
        trigger_key: key.into(),
        scheduled_at: at(secs),
        recorded_at: at(secs + 1),
        kind,
        reason: reason.map(str::to_owned),
    }
}

both!(an_occurrence_and_its_run_are_recorded_once);
async fn an_occurrence_and_its_run_are_recorded_once(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "default", "tick").await?;
    let cursor = store
        .ensure_trigger_state("default", "tick", "cron:* * * * *@UTC", at(0))
        .await?;
    assert_eq!(cursor.evaluated_until, at(0));
    let occ = occurrence("cron:* * * * *@UTC", 60, OccurrenceKind::Run, None);
    let run = new_run("r1", "default", "tick", 60, &["main"]);
    assert!(store.record_occurrence(&occ, Some(&run)).await?);
    // The same occurrence again, even with another run id: refused, nothing written.
    let again = new_run("r2", "default", "tick", 61, &["main"]);
    assert!(!store.record_occurrence(&occ, Some(&again)).await?);
    assert!(store.get_run("r2").await?.is_none());
    let queued = store.get_run("r1").await?.ok_or("r1 missing")?;
    assert_eq!(queued.status, RunStatus::Queued);
    assert_eq!(store.queued_run_ids().await?, ["r1"]);
    let cursor = store
        .ensure_trigger_state("default", "tick", "cron:* * * * *@UTC", at(500))
        .await?;
    assert_eq!(
        cursor.evaluated_until,
        at(60),
        "the cursor follows recorded occurrences"
    );
    assert_eq!(cursor.origin, at(0), "the origin is kept");
    Ok(())
}

both!(a_triggers_last_run_is_the_run_of_its_latest_occurrence_that_ran);
async fn a_triggers_last_run_is_the_run_of_its_latest_occurrence_that_ran(
    backend: Backend,
) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "default", "tick").await?;
    let key = "interval:30s:end";
    assert_eq!(store.last_trigger_run("default", "tick", key).await?, None);
    let first = new_run("r1", "default", "tick", 30, &["main"]);
    store
        .record_occurrence(
            &occurrence(key, 30, OccurrenceKind::Run, None),
            Some(&first),
        )
        .await?;
    let second = new_run("r2", "default", "tick", 90, &["main"]);
    store
        .record_occurrence(
            &occurrence(key, 90, OccurrenceKind::Run, None),
            Some(&second),
        )
        .await?;
    // A later occurrence that did not run, and another trigger's run, change nothing.
    store
        .record_occurrence(
            &occurrence(key, 120, OccurrenceKind::Skipped, Some("paused")),
            None,
        )
        .await?;
    let other = new_run("r3", "default", "tick", 150, &["main"]);
    store
        .record_occurrence(
            &occurrence("cron:* * * * *@UTC", 150, OccurrenceKind::Run, None),
            Some(&other),
        )
        .await?;

    let last = store.last_trigger_run("default", "tick", key).await?;
    let last = last.ok_or("the trigger has run")?;
    assert_eq!((last.run_id.as_str(), last.finished_at), ("r2", None));
    store
        .record(&[RunEvent::RunFinished {
            run_id: "r2".into(),
            status: RunStatus::Succeeded,
            reason: None,
            at: at(100),
        }])
        .await?;
    let last = store.last_trigger_run("default", "tick", key).await?;
    assert_eq!(last.and_then(|run| run.finished_at), Some(at(100)));
    Ok(())
}

both!(skipped_and_missed_occurrences_are_listed_newest_first);
async fn skipped_and_missed_occurrences_are_listed_newest_first(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    let key = "interval:10s:start";
    store
        .record_occurrence(
            &occurrence(
                key,
                10,
                OccurrenceKind::Missed,
                Some("outside catch-up window"),
            ),
            None,
        )
        .await?;
    store
        .record_occurrence(
            &occurrence(key, 20, OccurrenceKind::Skipped, Some("paused")),
            None,
        )
        .await?;
    let history = store.occurrences("default", "tick", 10).await?;
    let summary: Vec<_> = history
        .iter()
        .map(|o| (o.scheduled_at, o.kind, o.reason.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            (at(20), OccurrenceKind::Skipped, Some("paused")),
            (
                at(10),
                OccurrenceKind::Missed,
                Some("outside catch-up window")
            ),
        ]
    );
    assert!(store.occurrences("default", "other", 10).await?.is_empty());
    Ok(())
}

both!(a_queued_run_is_claimed_by_one_owner_only);
async fn a_queued_run_is_claimed_by_one_owner_only(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "default", "tick").await?;
    let occ = occurrence("at:x", 5, OccurrenceKind::Run, None);
    store
        .record_occurrence(&occ, Some(&new_run("r1", "default", "tick", 5, &["main"])))
        .await?;
    let me = Owner {
        host: "host-b".into(),
        pid: 7,
        start_token: "boot-2".into(),
    };
    assert!(store.claim_queued_run("r1", &me, at(6), None).await?);
    assert!(!store.claim_queued_run("r1", &owner(), at(7), None).await?);
    let run = store.get_run("r1").await?.ok_or("r1 missing")?;
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.owner, me);
    assert_eq!(run.started_at, Some(at(6)));
    assert!(store.queued_run_ids().await?.is_empty());
    Ok(())
}

both!(pause_state_and_load_errors_round_trip);
async fn pause_state_and_load_errors_round_trip(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    store
        .set_paused("default", "tick", true, None, at(1))
        .await?;
    store
        .set_paused("default", "tock", false, Some(at(9)), at(2))
        .await?;
    let states = store.schedule_states().await?;
    assert_eq!(states.len(), 2);
    assert!(states[0].paused && states[0].job_id == "tick");
    assert_eq!(
        (states[1].paused, states[1].resume_from),
        (false, Some(at(9)))
    );
    store
        .set_paused("default", "tick", false, None, at(3))
        .await?;
    assert!(!store.schedule_states().await?[0].paused);

    store
        .set_job_load_error("/jobs/a.yaml", "a.yaml:1:1: bad", at(1))
        .await?;
    store
        .set_job_load_error("/jobs/a.yaml", "a.yaml:2:1: worse", at(2))
        .await?;
    let errors = store.job_load_errors().await?;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].message, "a.yaml:2:1: worse");
    store.clear_job_load_error("/jobs/a.yaml").await?;
    assert!(store.job_load_errors().await?.is_empty());
    Ok(())
}
