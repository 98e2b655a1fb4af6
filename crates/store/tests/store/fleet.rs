//! Dispatches, leases and fencing, servers and the scheduler's lease, on both backends.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rota_store::{
    AttemptKey, Backend, DispatchState, Fenced, LogStream, NewDispatch, RunEvent, ServerRecord,
    Wake, WorkerInfo, WorkerLine,
};

use super::{TestResult, at, fresh, job, new_run};

const LEASE: Duration = Duration::from_secs(5);

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn worker(id: &str, pool: &str) -> WorkerInfo {
    WorkerInfo {
        id: id.to_owned(),
        name: format!("name-{id}"),
        labels: labels(&[("pool", pool), ("zone", "eu")]),
        slots: 2,
        busy: 0,
    }
}

fn key(step: &str) -> AttemptKey {
    AttemptKey {
        run_id: "r1".to_owned(),
        step_id: step.to_owned(),
        attempt: 1,
    }
}

/// The engine's record of an attempt's start, as a server makes it before handing it over.
fn started(step: &str, attempt: u32) -> RunEvent {
    RunEvent::StepStarted {
        run_id: "r1".to_owned(),
        step_id: step.to_owned(),
        attempt,
        at: at(2),
        pgid: None,
    }
}

async fn seeded(
    backend: Backend,
) -> Result<(super::Db, rota_store::Store), Box<dyn std::error::Error>> {
    let (db, store) = fresh(backend).await?;
    job(&store, "ops", "deploy").await?;
    store
        .record(&[RunEvent::RunCreated {
            run: new_run("r1", "ops", "deploy", 1, &["build", "ship"]),
        }])
        .await?;
    for step in ["build", "ship"] {
        store.record(&[started(step, 1)]).await?;
        store
            .insert_dispatch(&NewDispatch {
                key: key(step),
                namespace: "ops".to_owned(),
                runs_on: labels(&[("pool", if step == "build" { "a" } else { "b" })]),
                nonce: vec![1; 24],
                payload: vec![0, 159, 146, 150, 255],
                created_at: at(2),
            })
            .await?;
    }
    Ok((db, store))
}

both!(claims_go_only_to_workers_with_the_labels_and_are_fenced_by_epoch);
async fn claims_go_only_to_workers_with_the_labels_and_are_fenced_by_epoch(
    backend: Backend,
) -> TestResult {
    let (_db, store) = seeded(backend).await?;
    let now = Timestamp::now();
    let a = worker("wa", "a");
    let claimed = store
        .claim_dispatch(&a, now, LEASE)
        .await?
        .ok_or("a claims")?;
    assert_eq!(claimed.key, key("build"));
    assert_eq!(claimed.epoch, 1);
    assert_eq!(claimed.payload, vec![0, 159, 146, 150, 255]);
    assert!(!claimed.cancel_requested);
    // Nothing else for pool a; pool b's attempt is not a's.
    assert!(store.claim_dispatch(&a, now, LEASE).await?.is_none());

    // The holder renews, logs and finishes at its epoch; another worker, or an old epoch,
    // is refused.
    let renewed = store.renew_lease(&key("build"), 1, &a, now, LEASE).await?;
    assert_eq!(renewed.map(|r| r.cancel_requested), Ok(false));
    let b = worker("wb", "a");
    let refused = store.renew_lease(&key("build"), 1, &b, now, LEASE).await?;
    assert!(matches!(refused, Err(Fenced::Lost { .. })), "{refused:?}");
    let refused = store.renew_lease(&key("build"), 0, &a, now, LEASE).await?;
    assert!(matches!(refused, Err(Fenced::Lost { .. })), "{refused:?}");
    let line = WorkerLine {
        ts: now,
        stream: LogStream::Stdout,
        text: "from the worker".to_owned(),
    };
    assert_eq!(
        store
            .append_worker_lines(&key("build"), 1, "wa", std::slice::from_ref(&line))
            .await?,
        Ok(())
    );
    store.request_dispatch_cancel(&key("build")).await?;
    let renewed = store.renew_lease(&key("build"), 1, &a, now, LEASE).await?;
    assert_eq!(renewed.map(|r| r.cancel_requested), Ok(true));
    assert_eq!(
        store
            .finish_dispatch(&key("build"), 1, "wa", r#"{"status":"succeeded"}"#, now)
            .await?,
        Ok(())
    );
    // After its end, even the holder is refused.
    let late = store
        .append_worker_lines(&key("build"), 1, "wa", &[line])
        .await?;
    assert!(
        matches!(late, Err(Fenced::Lost { state: "done", .. })),
        "{late:?}"
    );
    let done = store.dispatch(&key("build")).await?.ok_or("dispatch")?;
    assert_eq!(done.state, DispatchState::Done);
    assert!(done.cancel_requested);
    assert_eq!(
        store
            .attempt_workers("r1")
            .await?
            .get(&("build".to_owned(), 1))
            .map(String::as_str),
        Some("name-wa")
    );
    let unknown = store.renew_lease(&key("nope"), 1, &a, now, LEASE).await?;
    assert!(matches!(unknown, Err(Fenced::Unknown(_))), "{unknown:?}");
    Ok(())
}

both!(expired_leases_are_abandoned_and_unconfirmed_claims_go_back);
async fn expired_leases_are_abandoned_and_unconfirmed_claims_go_back(
    backend: Backend,
) -> TestResult {
    let (_db, store) = seeded(backend).await?;
    let t0 = Timestamp::now();
    let a = worker("wa", "a");
    let b = worker("wb", "b");
    // `build` is claimed and confirmed by a; `ship` is claimed by b, never confirmed.
    store
        .claim_dispatch(&a, t0, LEASE)
        .await?
        .ok_or("a claims")?;
    store.renew_lease(&key("build"), 1, &a, t0, LEASE).await??;
    store
        .claim_dispatch(&b, t0, LEASE)
        .await?
        .ok_or("b claims")?;

    let later = t0 + SignedDuration::from_secs(6);
    let expired = store
        .expire_leases(later, |worker| format!("{worker} went quiet"))
        .await?;
    assert_eq!(expired.requeued, 1);
    assert_eq!(expired.abandoned, vec![key("build")]);
    let build = store.dispatch(&key("build")).await?.ok_or("build")?;
    assert_eq!(build.state, DispatchState::Abandoned);
    assert_eq!(build.epoch, 2);
    assert_eq!(build.result.as_deref(), Some("name-wa went quiet"));
    // The cut-off holder comes back: refused.
    let back = store
        .renew_lease(&key("build"), 1, &a, later, LEASE)
        .await?;
    assert!(
        matches!(
            back,
            Err(Fenced::Lost {
                state: "abandoned",
                epoch: 2
            })
        ),
        "{back:?}"
    );
    // The unconfirmed claim is pending again, at a new epoch, for anyone with the labels.
    let ship = store.dispatch(&key("ship")).await?.ok_or("ship")?;
    assert_eq!(ship.state, DispatchState::Pending);
    assert_eq!(ship.worker_id, None);
    let b2 = worker("wb2", "b");
    let again = store
        .claim_dispatch(&b2, later, LEASE)
        .await?
        .ok_or("b2 claims")?;
    assert_eq!((again.key, again.epoch), (key("ship"), 3));
    let first = store.renew_lease(&key("ship"), 2, &b, later, LEASE).await?;
    assert!(first.is_err(), "{first:?}");
    // Nothing expired twice.
    let none = store
        .expire_leases(later, |worker| worker.to_owned())
        .await?;
    assert_eq!((none.requeued, none.abandoned.len()), (0, 0));

    // Withdrawn only while pending; abandoned only while leased.
    assert!(!store.withdraw_dispatch(&key("ship"), later).await?);
    assert!(store.abandon_dispatch(&key("ship"), "{}", later).await?);
    assert!(!store.abandon_dispatch(&key("ship"), "{}", later).await?);
    let workers = store
        .list_workers(t0 - SignedDuration::from_secs(60))
        .await?;
    let names: Vec<&str> = workers.iter().map(|w| w.info.name.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    Ok(())
}

both!(one_server_holds_the_scheduler_lease_until_it_lapses);
async fn one_server_holds_the_scheduler_lease_until_it_lapses(backend: Backend) -> TestResult {
    let (_db, store) = fresh(backend).await?;
    let t0 = at(100);
    let ttl = Duration::from_secs(5);
    assert!(store.acquire_lease("scheduler", "s1", t0, ttl).await?);
    assert!(!store.acquire_lease("scheduler", "s2", t0, ttl).await?);
    let t1 = t0 + SignedDuration::from_secs(3);
    assert!(
        store.acquire_lease("scheduler", "s1", t1, ttl).await?,
        "renewed"
    );
    let t2 = t0 + SignedDuration::from_secs(7);
    assert!(
        !store.acquire_lease("scheduler", "s2", t2, ttl).await?,
        "s1 renewed at t1"
    );
    let t3 = t0 + SignedDuration::from_secs(9);
    assert!(
        store.acquire_lease("scheduler", "s2", t3, ttl).await?,
        "lapsed"
    );
    let (holder, since) = store.lease_holder("scheduler", t3).await?.ok_or("held")?;
    assert_eq!((holder.as_str(), since), ("s2", t3));
    assert!(
        !store
            .replace_lease_holder("scheduler", "s1", "s3", t3, ttl)
            .await?
    );
    assert!(
        store
            .replace_lease_holder("scheduler", "s2", "s3", t3, ttl)
            .await?
    );

    let server = ServerRecord {
        id: "s3".to_owned(),
        host: "h".to_owned(),
        pid: 7,
        listen: "127.0.0.1:1".to_owned(),
        started_at: t0,
        last_heartbeat: t0,
    };
    assert!(
        !store.server_heartbeat("s3", t3).await?,
        "a server beats only once registered"
    );
    store.register_server(&server).await?;
    assert!(store.server_heartbeat("s3", t3).await?);
    let servers = store.list_servers(t0).await?;
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].last_heartbeat, t3);
    store.server_gone("s3").await?;
    assert!(store.list_servers(t0).await?.is_empty());
    assert!(
        store.lease_holder("scheduler", t3).await?.is_none(),
        "released"
    );
    Ok(())
}

both!(a_dispatch_its_run_moved_past_is_neither_claimed_nor_renewed);
async fn a_dispatch_its_run_moved_past_is_neither_claimed_nor_renewed(
    backend: Backend,
) -> TestResult {
    let (_db, store) = seeded(backend).await?;
    let now = Timestamp::now();
    let a = worker("wa", "a");
    store
        .claim_dispatch(&a, now, LEASE)
        .await?
        .ok_or("a claims")?;
    store
        .renew_lease(&key("build"), 1, &a, now, LEASE)
        .await??;
    // The run's server died; the resumed run abandoned attempt 1 of both steps and started
    // attempt 2 of `build`.
    for step in ["build", "ship"] {
        store
            .record(&[RunEvent::StepFinished {
                run_id: "r1".to_owned(),
                step_id: step.to_owned(),
                attempt: 1,
                status: rota_core::model::StepStatus::Abandoned,
                exit_code: None,
                reason: Some("its server died".to_owned()),
                outputs: BTreeMap::new(),
                at: at(3),
            }])
            .await?;
    }
    store.record(&[started("build", 2)]).await?;
    // The worker still holding attempt 1 is fenced out at its next heartbeat.
    let renewed = store.renew_lease(&key("build"), 1, &a, now, LEASE).await?;
    assert!(
        matches!(
            renewed,
            Err(Fenced::Lost {
                state: "abandoned",
                epoch: 2
            })
        ),
        "{renewed:?}"
    );
    // Attempt 1 of `ship`, still pending, goes to no one.
    let b = worker("wb", "b");
    assert!(store.claim_dispatch(&b, now, LEASE).await?.is_none());
    Ok(())
}

both!(
    concurrent_claims_take_each_dispatch_exactly_once,
    (flavor = "multi_thread", worker_threads = 4)
);
async fn concurrent_claims_take_each_dispatch_exactly_once(backend: Backend) -> TestResult {
    const DISPATCHES: usize = 50;
    const CLAIMERS: usize = 8;
    let (_db, store) = fresh(backend).await?;
    job(&store, "ops", "deploy").await?;
    let steps: Vec<String> = (0..DISPATCHES).map(|i| format!("s{i:02}")).collect();
    let names: Vec<&str> = steps.iter().map(String::as_str).collect();
    store
        .record(&[RunEvent::RunCreated {
            run: new_run("r1", "ops", "deploy", 1, &names),
        }])
        .await?;
    let starts: Vec<RunEvent> = steps.iter().map(|step| started(step, 1)).collect();
    store.record(&starts).await?;
    for (index, step) in steps.iter().enumerate() {
        store
            .insert_dispatch(&NewDispatch {
                key: key(step),
                namespace: "ops".to_owned(),
                // Some no claimer's labels fit, so claims pass over rows others want.
                runs_on: labels(&[("pool", if index % 5 == 0 { "z" } else { "a" })]),
                nonce: vec![1; 24],
                payload: vec![7],
                created_at: at(2 + i64::try_from(index)?),
            })
            .await?;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for claimer in 0..CLAIMERS {
        let store = store.clone();
        tasks.spawn(async move {
            let me = worker(&format!("w{claimer}"), "a");
            let mut claimed = Vec::new();
            while let Some(dispatch) = store.claim_dispatch(&me, at(3), LEASE).await? {
                assert_eq!(dispatch.state, DispatchState::Leased);
                assert_eq!(dispatch.epoch, 1);
                claimed.push((dispatch.key, me.id.clone()));
            }
            Ok::<_, rota_store::StoreError>(claimed)
        });
    }
    let mut claimed = Vec::new();
    while let Some(done) = tasks.join_next().await {
        claimed.extend(done??);
    }
    // A claim that found every row it wanted locked by others may have stopped early; one
    // more claimer, alone, finds what is left (nothing, if the others took it all).
    let last = worker("w-last", "a");
    while let Some(dispatch) = store.claim_dispatch(&last, at(3), LEASE).await? {
        claimed.push((dispatch.key, last.id.clone()));
    }
    let wanted: Vec<&String> = steps
        .iter()
        .enumerate()
        .filter(|(index, _)| index % 5 != 0)
        .map(|(_, step)| step)
        .collect();
    let mut taken: Vec<&String> = claimed.iter().map(|(key, _)| &key.step_id).collect();
    taken.sort();
    assert_eq!(
        taken, wanted,
        "each dispatch that fits is claimed exactly once"
    );
    for (key, worker_id) in &claimed {
        let stored = store
            .dispatch(key)
            .await?
            .ok_or("a claimed dispatch is gone")?;
        assert_eq!(stored.state, DispatchState::Leased);
        assert_eq!(stored.epoch, 1);
        assert_eq!(stored.worker_id.as_ref(), Some(worker_id));
    }
    for (index, step) in steps.iter().enumerate().filter(|(i, _)| i % 5 == 0) {
        let stored = store
            .dispatch(&key(step))
            .await?
            .ok_or("a dispatch is gone")?;
        assert_eq!(stored.state, DispatchState::Pending, "dispatch {index}");
    }
    Ok(())
}

/// The next wake-up that is `wanted`, skipping others (a guard, not a threshold: only a lost
/// notification takes this long).
async fn wake_of(wakes: &mut rota_store::WakeUps, wanted: Wake) -> TestResult {
    tokio::time::timeout(Duration::from_secs(120), async {
        while wakes.next().await != wanted {}
    })
    .await
    .map_err(|_| format!("no {wanted:?} wake-up"))?;
    Ok(())
}

#[tokio::test]
async fn a_dispatch_handed_over_or_ended_wakes_the_listeners_on_postgres() -> TestResult {
    let (_db, store) = fresh(Backend::Postgres).await?;
    job(&store, "ops", "deploy").await?;
    store
        .record(&[RunEvent::RunCreated {
            run: new_run("r1", "ops", "deploy", 1, &["build"]),
        }])
        .await?;
    store.record(&[started("build", 1)]).await?;
    let mut wakes = store.wake_ups();
    assert!(wakes.is_live());
    // Listening has begun once it says so.
    wake_of(&mut wakes, Wake::Resync).await?;
    store
        .insert_dispatch(&NewDispatch {
            key: key("build"),
            namespace: "ops".to_owned(),
            runs_on: labels(&[("pool", "a")]),
            nonce: vec![1; 24],
            payload: vec![7],
            created_at: at(2),
        })
        .await?;
    wake_of(&mut wakes, Wake::Work).await?;
    assert!(store.withdraw_dispatch(&key("build"), at(3)).await?);
    wake_of(&mut wakes, Wake::Ended).await?;
    Ok(())
}

#[tokio::test]
async fn there_are_no_wake_ups_on_sqlite() -> TestResult {
    let (_db, store) = fresh(Backend::Sqlite).await?;
    assert!(!store.wake_ups().is_live());
    Ok(())
}
