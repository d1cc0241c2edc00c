//! Object lifecycle: eviction and reactivation, resets (panic, `abort()`, failing or slow
//! `block_concurrency_while`, a panicking constructor), overload, and shutdown.
#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions unwrap too.

mod support;

use std::time::Duration;

use durable_objects::{ErrorKind, RpcCall};
use support::objects::{FAILING_INIT, Fragile, Migrating, constructions, raise, wait_signal};
use support::{TestRuntime, bounded, probe, wait_until};

#[tokio::test]
async fn idle_objects_are_evicted_and_rebuilt_on_the_next_call() {
    let test = TestRuntime::start(|b| b.idle_timeout(Duration::from_millis(100)));
    let stub = probe(&test, "sleepy");
    stub.add(5).await.unwrap();
    let first = stub.serial().await.unwrap();
    assert_eq!(test.runtime().active_objects(), 1);

    wait_until("the idle object is evicted", || {
        test.runtime().active_objects() == 0
    })
    .await;

    let second = bounded(stub.serial()).await.unwrap();
    assert_ne!(first, second, "the constructor ran again");
    assert_eq!(constructions(stub.id()), 2);
    assert_eq!(
        stub.value().await.unwrap(),
        0,
        "in-memory state did not survive"
    );
    assert_eq!(test.runtime().active_objects(), 1);
}

#[tokio::test]
async fn busy_objects_are_not_evicted() {
    let test = TestRuntime::start(|b| b.idle_timeout(Duration::from_millis(20)));
    let stub = probe(&test, "busy");
    let serial = stub.serial().await.unwrap();
    let long = stub.wait_for("busy-signal".into(), "long".into());
    // An object that became idle after the busy one became busy: once it is evicted, the
    // busy one has been without a finished event for longer than an idle period, in front
    // of the same sweeps.
    let idle = probe(&test, "idle-witness");
    idle.serial().await.unwrap();
    assert_eq!(test.runtime().active_objects(), 2);
    wait_until("the idle witness is evicted", || {
        test.runtime().active_objects() == 1
    })
    .await;
    raise("busy-signal");
    bounded(long).await.unwrap();
    assert_eq!(
        stub.serial().await.unwrap(),
        serial,
        "the busy object kept its instance"
    );
}

#[tokio::test]
async fn a_panic_resets_the_object_and_fails_its_other_calls() {
    let test = TestRuntime::start(|b| b);
    let stub = probe(&test, "panicky");
    stub.add(7).await.unwrap();
    let before = stub.serial().await.unwrap();
    let waiting = stub.wait_for("never-raised-1".into(), "w".into());

    let err = bounded(stub.panic_now("handler bug".into()))
        .await
        .unwrap_err();
    assert!(err.is_reset() && err.is_remote(), "{err:?}");
    assert!(err.message().contains("handler bug"), "{err}");
    assert!(err.message().contains("reset"), "{err}");

    let other = bounded(waiting).await.unwrap_err();
    assert!(
        other.is_reset(),
        "a call in progress on the reset instance fails: {other:?}"
    );

    assert_ne!(bounded(stub.serial()).await.unwrap(), before);
    assert_eq!(stub.value().await.unwrap(), 0);
}

#[tokio::test]
async fn abort_resets_the_object_with_the_given_reason() {
    let test = TestRuntime::start(|b| b);
    let stub = probe(&test, "aborter");
    let before = stub.serial().await.unwrap();
    let waiting = stub.wait_for("never-raised-2".into(), "w".into());

    let err = bounded(stub.abort_now(Some("schema changed".into())))
        .await
        .unwrap_err();
    assert!(err.is_reset(), "{err:?}");
    assert!(
        err.message()
            .starts_with("schema changed; the object was reset"),
        "{err}"
    );
    let other = bounded(waiting).await.unwrap_err();
    assert_eq!(other.message(), err.message());

    let err = bounded(stub.abort_now(None)).await.unwrap_err();
    assert!(err.message().contains("abort()"), "{err}");
    assert_ne!(bounded(stub.serial()).await.unwrap(), before);
}

#[tokio::test]
async fn a_panicking_constructor_fails_the_call_and_is_retried_next_time() {
    let test = TestRuntime::start(|b| b);
    let ns = test.env().namespace::<Fragile>("FRAGILE").unwrap();
    let err = bounded(ns.get_by_name("bad-1").ping()).await.unwrap_err();
    assert!(err.is_reset() && err.is_remote(), "{err:?}");
    assert!(
        err.message().contains("constructor of Fragile panicked"),
        "{err}"
    );
    assert!(err.message().contains("refusing to build"), "{err}");
    assert_eq!(test.runtime().active_objects(), 0);
    // Other objects of the class are unaffected, and the bad one fails again, not hangs.
    assert_eq!(
        bounded(ns.get_by_name("good").ping()).await.unwrap(),
        "pong"
    );
    assert!(bounded(ns.get_by_name("bad-1").ping()).await.is_err());
}

#[tokio::test]
async fn a_failing_block_concurrency_while_resets_the_object() {
    let test = TestRuntime::start(|b| b);
    let stub = probe(&test, "bcw-fail");
    stub.add(1).await.unwrap();
    let before = stub.serial().await.unwrap();
    let err = bounded(stub.bcw_fail()).await.unwrap_err();
    assert!(err.is_reset(), "{err:?}");
    assert!(err.message().contains("not ready"), "{err}");
    assert_ne!(bounded(stub.serial()).await.unwrap(), before);
    assert_eq!(stub.value().await.unwrap(), 0);
}

#[tokio::test]
async fn a_block_concurrency_while_past_its_timeout_resets_the_object() {
    let test = TestRuntime::start(|b| b.block_concurrency_timeout(Duration::from_millis(100)));
    let stub = probe(&test, "bcw-slow");
    let before = stub.serial().await.unwrap();
    let hang = stub.bcw_hang();
    // Queued behind the closed gate; fails with the same reset.
    let queued = stub.add(1);
    let err = bounded(hang).await.unwrap_err();
    assert!(err.is_reset(), "{err:?}");
    assert!(
        err.message().contains("waited for more than 100 ms"),
        "{err}"
    );
    let queued = bounded(queued).await.unwrap_err();
    assert!(queued.is_reset(), "{queued:?}");
    assert_ne!(bounded(stub.serial()).await.unwrap(), before);
}

#[tokio::test]
async fn block_concurrency_while_nests_up_to_64_deep() {
    let test = TestRuntime::start(|b| b);
    let stub = probe(&test, "nest");
    assert_eq!(bounded(stub.bcw_nest(64)).await.unwrap(), 64);
    let serial = stub.serial().await.unwrap();
    let err = bounded(stub.bcw_nest(65)).await.unwrap_err();
    assert!(err.message().contains("nested too deeply"), "{err}");
    // The failure inside the outer blocks fails them in turn, which resets the object.
    assert!(err.is_reset(), "{err:?}");
    assert_ne!(stub.serial().await.unwrap(), serial);
}

#[tokio::test]
async fn block_concurrency_while_outside_a_handler_is_refused() {
    let test = TestRuntime::start(|b| b);
    let stub = probe(&test, "side-task");
    let outcome = bounded(stub.bcw_from_spawned_task()).await.unwrap();
    assert!(
        outcome.contains("must be awaited by a handler"),
        "{outcome}"
    );
}

#[tokio::test]
async fn a_flood_is_answered_with_overloaded_and_the_object_keeps_working() {
    let limit = 50;
    let test = TestRuntime::start(|b| b.max_queued_events(limit));
    let stub = probe(&test, "flooded");
    let key = "flood-release";
    let calls: Vec<RpcCall<()>> = (0..limit + 150)
        .map(|i| stub.wait_for(key.into(), format!("c{i}")))
        .collect();
    // The first `limit` calls are admitted and parked; the rest were refused when made.
    let mut admitted = Vec::new();
    let mut overloaded = 0;
    for call in calls {
        match tokio::time::timeout(Duration::from_millis(1), call).await {
            Ok(Err(err)) => {
                assert!(err.is_overloaded(), "{err:?}");
                assert!(!err.is_retryable());
                assert!(err.message().contains("overloaded"), "{err}");
                overloaded += 1;
            }
            Ok(Ok(())) => panic!("a parked call finished before its release"),
            Err(_) => admitted.push(()),
        }
    }
    assert_eq!(overloaded, 150);
    assert_eq!(admitted.len(), limit);
    // Releasing them drains the queue, and the object takes calls again.
    raise(key);
    let mut tries = 0;
    loop {
        match bounded(stub.add(1)).await {
            Ok(_) => break,
            Err(err) if err.is_overloaded() && tries < 2_000 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(err) => panic!("object did not recover: {err:?}"),
        }
    }
    let finished = |log: &[String]| log.iter().filter(|l| l.ends_with(":end")).count();
    let mut log = stub.log().await.unwrap();
    while finished(&log) < limit {
        tokio::time::sleep(Duration::from_millis(5)).await;
        log = bounded(stub.log()).await.unwrap();
    }
    assert_eq!(finished(&log), limit, "only admitted calls ran");
    assert_eq!(log.len(), 2 * limit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_fails_calls_in_progress_with_a_retryable_error() {
    let mut test = TestRuntime::start(|b| b);
    let stub = probe(&test, "stopping");
    stub.add(1).await.unwrap();
    let waiting = stub.wait_for("never-raised-3".into(), "w".into());
    drop(test.runtime.take());
    let err = bounded(waiting).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Disconnected);
    let after = bounded(stub.add(1)).await.unwrap_err();
    assert!(after.is_retryable(), "{after:?}");
}

fn migrating(test: &TestRuntime, name: &str) -> durable_objects::Stub<Migrating> {
    test.env()
        .namespace::<Migrating>("MIGRATING")
        .unwrap()
        .get_by_name(name)
}

#[tokio::test]
async fn a_failing_init_fails_the_waiting_calls_and_the_next_call_builds_again() {
    let test = TestRuntime::start(|b| b);
    FAILING_INIT.lock().unwrap().push("broken".to_owned());
    let stub = migrating(&test, "broken");
    let first = stub.add("a".into());
    let second = stub.add("b".into());
    for call in [first, second] {
        let err = bounded(call).await.unwrap_err();
        assert!(err.is_reset(), "{err:?}");
        assert!(
            err.message()
                .contains("Migrating could not be initialized: migration 2 failed"),
            "{err}"
        );
    }
    // Fixed: the next call builds the object again, and init runs once for it.
    FAILING_INIT.lock().unwrap().clear();
    assert_eq!(bounded(stub.add("c".into())).await.unwrap(), 1);
    assert_eq!(bounded(stub.add("d".into())).await.unwrap(), 1);
}

#[tokio::test]
async fn init_runs_before_any_event_with_the_gate_closed() {
    let test = TestRuntime::start(|b| b);
    let stub = migrating(&test, "slow-start");
    let first = tokio::spawn(stub.add("a".into()));
    bounded(wait_signal("slow-start-init-started")).await;
    // Queued while init waits: neither call may run before the table exists.
    let second = tokio::spawn(stub.add("b".into()));
    raise("slow-start-init-release");
    assert_eq!(bounded(first).await.unwrap().unwrap(), 1);
    assert_eq!(bounded(second).await.unwrap().unwrap(), 1);
}
