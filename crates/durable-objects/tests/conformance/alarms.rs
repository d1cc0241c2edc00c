//! Section 6 of the checklist: alarms, on the test's manual clock.

use std::time::Duration;

use durable_objects::prelude::*;

use super::{spec, spec_env, spec_env_with};

#[tokio::test]
async fn spec_6_1_one_alarm_per_object_set_replaces_delete_removes() {
    let test = spec_env();
    let stub = spec(&test, "a");
    let now = test.clock().now_ms();
    assert_eq!(stub.get_alarm().await.unwrap(), None);
    stub.arm(now + 5_000, vec![]).await.unwrap();
    stub.arm(now + 9_000, vec![]).await.unwrap();
    assert_eq!(stub.get_alarm().await.unwrap(), Some(now + 9_000));
    durable_objects::testing::run_in_durable_object(&stub, |_, state| async move {
        state.storage().delete_alarm().await.unwrap();
    })
    .await
    .unwrap();
    assert_eq!(stub.get_alarm().await.unwrap(), None);
    test.advance(Duration::from_secs(10)).await.unwrap();
    assert!(stub.alarm_runs().await.unwrap().is_empty());
}

#[tokio::test]
async fn spec_6_2_a_time_at_or_below_zero_is_refused_and_a_past_time_runs_at_once() {
    let test = spec_env();
    let stub = spec(&test, "a");
    for bad in [0, -1] {
        let error = stub.arm(bad, vec![]).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    }
    stub.arm(1, vec![]).await.unwrap();
    test.advance(Duration::ZERO).await.unwrap();
    assert_eq!(stub.alarm_runs().await.unwrap().len(), 1);
}

#[tokio::test]
async fn spec_6_3_a_class_without_an_alarm_handler_cannot_set_one() {
    let test = spec_env();
    let stub = test
        .env()
        .namespace::<super::NoAlarm>("NO_ALARM")
        .unwrap()
        .get_by_name("x");
    let error = stub
        .set_alarm(test.clock().now_ms() + 1_000)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotImplemented);
    assert!(error.message().contains("alarm"), "{error}");
}

#[tokio::test]
async fn spec_6_4_the_handler_gets_retry_count_is_retry_and_the_scheduled_time() {
    let test = spec_env();
    let stub = spec(&test, "a");
    let due = test.clock().now_ms() + 1_000;
    stub.arm(due, vec!["fail".into(), String::new()])
        .await
        .unwrap();
    test.advance(Duration::from_secs(10)).await.unwrap();
    let runs = stub.alarm_runs().await.unwrap();
    let info: Vec<(u32, bool, i64)> = runs.iter().map(|r| (r.0, r.1, r.2)).collect();
    assert_eq!(info, [(0, false, due), (1, true, due)]);
}

#[tokio::test]
async fn spec_6_5_get_alarm_is_none_while_the_handler_runs_and_cleared_after() {
    let test = spec_env();
    let stub = spec(&test, "a");
    let due = test.clock().now_ms() + 1_000;
    stub.arm(due, vec![String::new(), String::new()])
        .await
        .unwrap();
    test.advance(Duration::from_secs(1)).await.unwrap();
    let runs = stub.alarm_runs().await.unwrap();
    assert_eq!(runs[0].3, None, "get_alarm inside the handler");
    assert_eq!(
        stub.get_alarm().await.unwrap(),
        None,
        "cleared after success"
    );
    // A handler that sets a new alarm keeps that one.
    // (The plan is indexed by run: this is the second run.)
    stub.arm(
        test.clock().now_ms() + 1_000,
        vec![String::new(), "rearm".into()],
    )
    .await
    .unwrap();
    test.advance(Duration::from_secs(1)).await.unwrap();
    assert!(stub.get_alarm().await.unwrap().is_some());
}

#[tokio::test]
async fn spec_6_6_delete_alarm_inside_the_handler_does_not_cancel_it() {
    let test = spec_env();
    let stub = spec(&test, "a");
    stub.arm(test.clock().now_ms() + 10, vec!["delete".into()])
        .await
        .unwrap();
    test.advance(Duration::from_millis(10)).await.unwrap();
    assert_eq!(
        stub.alarm_runs().await.unwrap().len(),
        1,
        "the run completed"
    );
    assert_eq!(stub.get_alarm().await.unwrap(), None);
}

#[tokio::test]
async fn spec_6_7_a_failing_alarm_is_retried_six_times_with_backoff_then_given_up() {
    let test = spec_env();
    let stub = spec(&test, "a");
    let start = test.clock().now_ms();
    stub.arm(start + 1, vec!["fail".into(); 10]).await.unwrap();
    test.advance(Duration::from_secs(600)).await.unwrap();
    let runs = stub.alarm_runs().await.unwrap();
    assert_eq!(runs.len(), 7, "one run and six retries");
    assert_eq!(
        runs.iter().map(|r| r.0).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5, 6]
    );
    assert_eq!(
        stub.get_alarm().await.unwrap(),
        None,
        "given up and deleted"
    );
    assert!(
        test.runtime()
            .scheduled_alarm::<super::Spec>(stub.id())
            .is_none()
    );
}

#[tokio::test]
async fn spec_6_8_a_handler_past_its_time_limit_fails_and_is_retried() {
    let test = spec_env_with(|runtime| runtime.alarm_timeout(Duration::from_millis(50)));
    let stub = spec(&test, "a");
    stub.arm(
        test.clock().now_ms() + 1,
        vec!["hang".into(), String::new()],
    )
    .await
    .unwrap();
    test.advance(Duration::from_secs(10)).await.unwrap();
    let runs = stub.alarm_runs().await.unwrap();
    assert_eq!(runs.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(
        durable_objects::RuntimeConfig::default().alarm_timeout,
        Duration::from_secs(15 * 60)
    );
}

#[tokio::test]
async fn spec_6_9_an_alarm_fires_at_its_millisecond() {
    let test = spec_env();
    let stub = spec(&test, "a");
    let due = test.clock().now_ms() + 1_234;
    stub.arm(due, vec![]).await.unwrap();
    test.advance(Duration::from_millis(1_233)).await.unwrap();
    assert!(stub.alarm_runs().await.unwrap().is_empty());
    test.advance(Duration::from_millis(1)).await.unwrap();
    assert_eq!(stub.alarm_runs().await.unwrap().len(), 1);
}

#[tokio::test]
async fn spec_6_10_an_alarm_set_by_its_handler_runs_next_as_a_first_run() {
    // (A handler that re-arms and then fails is not retried: the new alarm runs next; the
    // alarm timetable's unit tests cover that rule, `core/timetable.rs`.)
    let test = spec_env();
    let stub = spec(&test, "a");
    let now = test.clock().now_ms();
    stub.arm(now + 1, vec!["rearm".into(), String::new()])
        .await
        .unwrap();
    test.advance(Duration::from_secs(5)).await.unwrap();
    let runs = stub.alarm_runs().await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1].0, 0, "the new alarm is a first run, not a retry");
}

#[tokio::test]
async fn spec_6_11_the_scheduled_alarm_follows_the_stored_one_across_restarts() {
    let mut test = spec_env();
    let stub = spec(&test, "a");
    let now = test.clock().now_ms();
    stub.arm(now + 50_000, vec![]).await.unwrap();
    stub.arm(now + 20_000, vec![]).await.unwrap(); // earlier
    stub.arm(now + 30_000, vec![]).await.unwrap(); // later
    test.restart().unwrap();
    let stub = spec(&test, "a");
    let scheduled = test
        .runtime()
        .scheduled_alarm::<super::Spec>(stub.id())
        .unwrap();
    assert_eq!(scheduled.time_ms, now + 30_000);
    test.advance(Duration::from_secs(30)).await.unwrap();
    assert_eq!(stub.alarm_runs().await.unwrap().len(), 1);
}

#[tokio::test]
async fn spec_12_2_alarms_keep_firing_after_a_restart() {
    let mut test = spec_env();
    spec(&test, "a")
        .arm(test.clock().now_ms() + 5_000, vec![])
        .await
        .unwrap();
    test.restart().unwrap();
    test.restart().unwrap();
    test.advance(Duration::from_secs(5)).await.unwrap();
    assert_eq!(spec(&test, "a").alarm_runs().await.unwrap().len(), 1);
}
