//! The output gate on every path out of an object: a call to another object (from a handler
//! and from a `State::spawn` task) leaves only after the writes made before it are durable.
//! Each test injects an fsync failure: the write never becomes durable, so what the gate
//! holds must never arrive. With the gate bypassed, the call would be queued at the callee
//! before the fsync even started, ahead of the test's later calls to the same callee, which
//! would then see it (calls to one object are delivered in order).
#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions unwrap too.

mod support;

use durable_objects::prelude::*;
use support::objects::{CALLS_RETURNED, Caller};
use support::{TestRuntime, bounded, probe, wait_until};

fn caller(test: &TestRuntime, name: &str) -> Stub<Caller> {
    test.env()
        .namespace::<Caller>("CALLER")
        .unwrap()
        .get_by_name(name)
}

#[tokio::test]
async fn a_call_to_another_object_waits_for_the_callers_writes() {
    let test = TestRuntime::start(|b| b.shards(2));
    // Without a failure the call goes through once the write is durable.
    assert_eq!(
        bounded(caller(&test, "c1").write_then_add("gate-ok".into()))
            .await
            .unwrap(),
        1
    );
    test.runtime().inject_sync_failures(1);
    let err = bounded(caller(&test, "c2").write_then_add("gate-held".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err:?}");
    assert!(err.message().contains("injected fsync failure"), "{err}");
    // The held call was dropped with the reset: the probe never saw it.
    assert_eq!(probe(&test, "gate-held").value().await.unwrap(), 0);
    assert_eq!(probe(&test, "gate-ok").value().await.unwrap(), 1);
}

#[tokio::test]
async fn a_call_from_a_spawned_task_waits_for_its_writes() {
    let test = TestRuntime::start(|b| b.shards(2));
    bounded(caller(&test, "s1").spawn_write_then_add("spawn-ok".into()))
        .await
        .unwrap();
    wait_until("the spawned call returned", || {
        CALLS_RETURNED
            .lock()
            .unwrap()
            .iter()
            .any(|call| call == "spawn-ok: Ok(1)")
    })
    .await;

    test.runtime().inject_sync_failures(1);
    bounded(caller(&test, "s2").spawn_write_then_add("spawn-held".into()))
        .await
        .unwrap();
    wait_until("the failing sync ran", || {
        test.runtime().injected_sync_failures_left() == 0
    })
    .await;
    // The spawned task's write failed to become durable: its call never left.
    assert_eq!(probe(&test, "spawn-held").value().await.unwrap(), 0);
    assert!(
        !CALLS_RETURNED
            .lock()
            .unwrap()
            .iter()
            .any(|call| call.starts_with("spawn-held: Ok")),
        "{:?}",
        CALLS_RETURNED.lock().unwrap()
    );
}
