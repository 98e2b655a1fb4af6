//! Servers taken for dead and their runs taken over, on both backends: a server's row
//! fenced once, a resumed run claimed only after its abandoned attempts' leases ended, and
//! a process's late writes to a run it no longer owns refused.

use std::collections::BTreeMap;
use std::time::Duration;

use rota_core::model::{RunStatus, StepStatus};
use rota_store::{
    AttemptKey, Backend, DispatchState, NewDispatch, Owner, RunEvent, ServerRecord, StoreError,
    WorkerInfo,
};

use super::{TestResult, at, fresh, job, new_run, owner, started};

both!(a_server_that_stops_beating_is_fenced_until_its_row_is_removed);
async fn a_server_that_stops_beating_is_fenced_until_its_row_is_removed(
    backend: Backend,
) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    for (id, beat) in [("old", 1), ("new", 20)] {
        store
            .register_server(&ServerRecord {
                id: id.to_owned(),
                host: "h".to_owned(),
                pid: 7,
                listen: "127.0.0.1:1".to_owned(),
                started_at: at(0),
                last_heartbeat: at(beat),
            })
            .await?;
    }
    let stale: Vec<_> = store
        .stale_servers(at(10))
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(stale, ["old"]);
    // It beat again meanwhile: not dead after all.
    assert!(store.server_heartbeat("old", at(11)).await?);
    assert!(!store.fence_server("old", at(10)).await?);
    assert!(store.fence_server("old", at(12)).await?);
    assert!(
        !store.server_heartbeat("old", at(13)).await?,
        "a fenced server's heartbeat is refused"
    );
    assert!(store.server_heartbeat("new", at(13)).await?);
    // Until its runs are recovered and its row removed, the next recoverer finds it again.
    let stale: Vec<_> = store
        .stale_servers(at(13))
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(stale, ["old"]);
    assert!(store.fence_server("old", at(13)).await?);
    store.server_gone("old").await?;
    assert!(store.stale_servers(at(13)).await?.is_empty());
    assert!(!store.fence_server("old", at(13)).await?);
    Ok(())
}

both!(a_resumed_run_is_claimed_once_its_abandoned_attempts_lease_ended);
async fn a_resumed_run_is_claimed_once_its_abandoned_attempts_lease_ended(
    backend: Backend,
) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "deploy").await?;
    let dead = owner();
    store
        .record(&[RunEvent::RunCreated {
            run: new_run("r1", "ops", "deploy", 1, &["build", "ship"]),
        }])
        .await?;
    assert!(store.claim_queued_run("r1", &dead, at(2), None).await?);
    store
        .record(&[
            started("r1", "build", 1, 3, None),
            started("r1", "ship", 1, 3, None),
        ])
        .await?;
    for step in ["build", "ship"] {
        store
            .insert_dispatch(&NewDispatch {
                key: key(step),
                namespace: "ops".to_owned(),
                runs_on: BTreeMap::from([("pool".to_owned(), step.to_owned())]),
                nonce: vec![1; 24],
                payload: vec![1],
                created_at: at(3),
            })
            .await?;
    }
    let worker = WorkerInfo {
        id: "w".to_owned(),
        name: "w".to_owned(),
        labels: BTreeMap::from([("pool".to_owned(), "build".to_owned())]),
        slots: 1,
        busy: 0,
    };
    let lease = Duration::from_secs(5);
    let claimed = store
        .claim_dispatch(&worker, at(4), lease)
        .await?
        .ok_or("the worker claims build")?;
    store
        .renew_lease(&claimed.key, claimed.epoch, &worker, at(4), lease)
        .await??;

    // The run's server died: the run is queued again, both attempts abandoned.
    assert!(
        store
            .requeue_for_resume("r1", &dead, "its server died", at(5))
            .await?
    );
    let ship = store.dispatch(&key("ship")).await?.ok_or("ship")?;
    assert_eq!(
        ship.state,
        DispatchState::Withdrawn,
        "no worker may start it now"
    );
    // The worker may still run `build` until its lease ends: the run waits.
    let heir = Owner {
        pid: 5151,
        ..owner()
    };
    assert!(!store.claim_queued_run("r1", &heir, at(6), None).await?);
    // The worker was cut off and did not beat again: its lease ends, and with it the wait.
    let expired = store.expire_leases(at(10), |w| format!("{w} gone")).await?;
    assert_eq!(expired.abandoned, [key("build")]);
    assert!(store.claim_queued_run("r1", &heir, at(11), None).await?);
    assert!(
        store
            .renew_lease(&claimed.key, claimed.epoch, &worker, at(12), lease)
            .await?
            .is_err(),
        "the worker is fenced out when it comes back"
    );
    let run = store.get_run("r1").await?.ok_or("run")?;
    assert_eq!(run.status, RunStatus::Running);
    assert!(
        run.steps
            .iter()
            .all(|s| s.status == StepStatus::Abandoned && s.attempt == 1)
    );
    Ok(())
}

both!(a_process_cannot_record_a_run_another_took_over);
async fn a_process_cannot_record_a_run_another_took_over(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "deploy").await?;
    let first = owner();
    store
        .record_as(
            &first,
            &[RunEvent::RunCreated {
                run: new_run("r1", "ops", "deploy", 1, &["build"]),
            }],
        )
        .await?;
    assert!(store.claim_queued_run("r1", &first, at(2), None).await?);
    store
        .record_as(&first, &[started("r1", "build", 1, 3, None)])
        .await?;
    assert!(
        store
            .requeue_for_resume("r1", &first, "taken for dead", at(4))
            .await?
    );
    let heir = Owner {
        pid: 5151,
        ..owner()
    };
    assert!(store.claim_queued_run("r1", &heir, at(5), None).await?);
    let events = store.events_after(0, 1000).await?.len();

    let late = store
        .record_as(
            &first,
            &[
                RunEvent::StepFinished {
                    run_id: "r1".to_owned(),
                    step_id: "build".to_owned(),
                    attempt: 1,
                    status: StepStatus::Succeeded,
                    exit_code: Some(0),
                    reason: None,
                    outputs: BTreeMap::new(),
                    at: at(6),
                },
                RunEvent::RunFinished {
                    run_id: "r1".to_owned(),
                    status: RunStatus::Succeeded,
                    reason: None,
                    at: at(6),
                },
            ],
        )
        .await;
    assert!(matches!(late, Err(StoreError::NotOwner { run }) if run == "r1"));
    assert_eq!(
        store.events_after(0, 1000).await?.len(),
        events,
        "nothing written"
    );
    let run = store.get_run("r1").await?.ok_or("run")?;
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.steps[0].status, StepStatus::Abandoned);
    store
        .record_as(&heir, &[started("r1", "build", 2, 7, None)])
        .await?;
    Ok(())
}

fn key(step: &str) -> AttemptKey {
    AttemptKey {
        run_id: "r1".to_owned(),
        step_id: step.to_owned(),
        attempt: 1,
    }
}

both!(a_claim_keeps_a_jobs_max_active_runs_across_servers);
async fn a_claim_keeps_a_jobs_max_active_runs_across_servers(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "deploy").await?;
    for id in ["r1", "r2", "r3"] {
        store
            .record(&[RunEvent::RunCreated {
                run: new_run(id, "ops", "deploy", 1, &["build"]),
            }])
            .await?;
    }
    let (a, b) = (
        owner(),
        Owner {
            pid: 5151,
            ..owner()
        },
    );
    assert!(store.claim_queued_run("r1", &a, at(2), Some(2)).await?);
    assert!(store.claim_queued_run("r2", &b, at(2), Some(2)).await?);
    assert!(
        !store.claim_queued_run("r3", &b, at(3), Some(2)).await?,
        "two run already, on two servers"
    );
    assert!(
        store.claim_queued_run("r3", &b, at(3), None).await?,
        "no limit"
    );
    Ok(())
}
