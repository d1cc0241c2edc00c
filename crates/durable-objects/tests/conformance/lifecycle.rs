//! Section 5 of the checklist: concurrency, gates, lifecycle and resets.

use std::time::Duration;

use durable_objects::testing::run_in_durable_object;

use super::{spec, spec_env, spec_env_with};

#[tokio::test]
async fn spec_5_1_an_object_has_one_instance_whoever_calls_it() {
    let test = spec_env();
    let ns = test.env().namespace::<super::Spec>("SPEC").unwrap();
    let calls: Vec<_> = (0..200)
        .map(|n| {
            // Different stubs, different threads: one instance counts them all.
            let stub = if n % 2 == 0 {
                ns.get_by_name("one")
            } else {
                ns.get(&ns.id_from_name("one"))
            };
            tokio::spawn(async move { stub.call().await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for call in calls {
        seen.push(call.await.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=200).collect::<Vec<u32>>());
    assert_eq!(test.runtime().active_objects(), 1);
}

#[tokio::test]
async fn spec_5_2_awaiting_something_other_than_storage_lets_other_events_in() {
    let test = spec_env();
    let stub = spec(&test, "gate");
    // The first call waits (a timer, not storage); the second runs meanwhile.
    let slow = stub.log_after("slow".into(), 100);
    let fast = stub.log_after("fast".into(), 0);
    let fast_log = fast.await.unwrap();
    assert_eq!(fast_log, ["fast"]);
    assert_eq!(slow.await.unwrap(), ["fast", "slow"]);
}

#[tokio::test]
async fn spec_5_3_a_reply_waits_until_the_writes_before_it_are_durable() {
    let test = spec_env();
    let stub = spec(&test, "gate");
    stub.call().await.unwrap();
    test.stall_syncs();
    let write = tokio::spawn({
        let stub = stub.clone();
        async move { stub.put("k".into(), 1).await }
    });
    // The write ran (another call sees it) but its reply waits for the fsync.
    while run_in_durable_object(&stub, |_, state| async move {
        state.storage().kv().get::<i64>("k").unwrap()
    })
    .await
    .is_err()
    {}
    assert!(!write.is_finished());
    test.release_syncs();
    write.await.unwrap().unwrap();
}

#[tokio::test]
async fn spec_5_4_a_write_not_durable_in_time_resets_the_object() {
    let test = spec_env_with(|runtime| runtime.storage_timeout(Duration::from_millis(200)));
    let stub = spec(&test, "slow-disk");
    stub.call().await.unwrap();
    test.stall_syncs();
    let error = stub.put("k".into(), 1).await.unwrap_err();
    test.release_syncs();
    assert!(error.is_reset(), "{error}");
    assert!(error.is_outcome_unknown(), "{error}");
    assert!(error.message().contains("may or may not"), "{error}");
}

#[tokio::test]
async fn spec_5_6_memory_lasts_while_the_instance_lives() {
    let test = spec_env();
    let stub = spec(&test, "m");
    assert_eq!(stub.call().await.unwrap(), 1);
    assert_eq!(stub.call().await.unwrap(), 2);
    durable_objects::testing::evict(&stub, durable_objects::testing::EvictSockets::Hibernate)
        .await
        .unwrap();
    assert_eq!(stub.call().await.unwrap(), 1, "eviction dropped it");
    let _ = stub.put_then_panic("x".into()).await;
    assert_eq!(stub.call().await.unwrap(), 1, "a reset dropped it");
}

#[tokio::test]
async fn spec_5_7_and_5_9_idle_objects_are_evicted_after_70_s() {
    let test = spec_env();
    assert_eq!(
        test.runtime().config().idle_timeout,
        Duration::from_secs(70)
    );
    assert_eq!(
        test.runtime().config().hibernation_timeout,
        Duration::from_secs(10)
    );
    let stub = spec(&test, "idle");
    stub.call().await.unwrap();
    test.advance(Duration::from_secs(69)).await.unwrap();
    assert_eq!(test.runtime().active_objects(), 1);
    test.advance(Duration::from_secs(1)).await.unwrap();
    assert_eq!(test.runtime().active_objects(), 0);
}

#[tokio::test]
async fn spec_5_10_a_panic_resets_the_object_and_the_error_says_so() {
    let test = spec_env();
    let stub = spec(&test, "r");
    stub.call().await.unwrap();
    let error = stub.put_then_panic("k".into()).await.unwrap_err();
    assert!(error.is_reset(), "{error}");
    assert!(
        error.message().contains("panicking after writing k"),
        "{error}"
    );
    assert_eq!(stub.call().await.unwrap(), 1);
    // A returned error is not a reset: the instance lives on.
    stub.call().await.unwrap();
    assert!(!stub.put_then_fail("k".into()).await.unwrap_err().is_reset());
    assert_eq!(stub.call().await.unwrap(), 3);
}

#[tokio::test]
async fn spec_5_11_calls_in_progress_at_shutdown_fail_retryably() {
    let mut test = spec_env();
    let stub = spec(&test, "s");
    let pending = stub.log_after("late".into(), 60_000);
    let waiting = tokio::spawn(pending);
    while test.runtime().active_objects() == 0 {
        tokio::task::yield_now().await;
    }
    test.restart().unwrap();
    let error = waiting.await.unwrap().unwrap_err();
    assert!(error.is_retryable(), "{error}");
}

#[tokio::test]
async fn spec_5_12_the_cpu_limit_defaults_to_30_s() {
    let test = spec_env();
    assert_eq!(test.runtime().config().cpu_limit, Duration::from_secs(30));
}
