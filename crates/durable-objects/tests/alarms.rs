//! Alarms: replace semantics, past times, `get_alarm` during the handler, the handler setting
//! the next alarm, retries with their exact backoff schedule, giving up, `delete_all`,
//! atomicity with failing turns, bad times, eviction and restart. Time comes from a
//! `ManualClock`: no test waits for an alarm's delay.
#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions unwrap too.

mod support;

use std::sync::Arc;
use std::time::Duration;

use durable_objects::prelude::*;
use durable_objects::{ManualClock, RuntimeBuilder};
use support::objects::{AlarmPlan, Clockwork, alarm_runs, constructions, plan_alarms};
use support::{TestRuntime, bounded, wait_until};

const START: i64 = 1_700_000_000_000;

fn manual(clock: &Arc<ManualClock>) -> impl FnOnce(RuntimeBuilder) -> RuntimeBuilder {
    let clock = Arc::clone(clock);
    move |b: RuntimeBuilder| {
        b.clock(clock)
            .alarm_max_wait(Duration::from_millis(2))
            .alarm_retry_jitter(0.0)
            .alarm_timeout(Duration::from_millis(200))
    }
}

fn start() -> (TestRuntime, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(START));
    (TestRuntime::start(manual(&clock)), clock)
}

fn object(test: &TestRuntime, name: &str) -> Stub<Clockwork> {
    test.env()
        .namespace::<Clockwork>("CLOCKWORK")
        .unwrap()
        .get_by_name(name)
}

async fn runs_reach(stub: &Stub<Clockwork>, count: usize) {
    let id = stub.id().clone();
    wait_until(&format!("{count} alarm runs"), || {
        alarm_runs(&id).len() >= count
    })
    .await;
}

async fn schedule_settles(test: &TestRuntime, stub: &Stub<Clockwork>, want: Option<(i64, u32)>) {
    let id = stub.id().clone();
    wait_until(&format!("the schedule becomes {want:?}"), || {
        let scheduled = test.runtime().scheduled_alarm::<Clockwork>(&id);
        match want {
            None => scheduled.is_none(),
            Some((time, retry)) => {
                scheduled.is_some_and(|s| s.time_ms == time && s.retry_count == retry && !s.running)
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_new_alarm_replaces_the_old_and_fires_once() {
    let (test, clock) = start();
    let stub = object(&test, "replace");
    stub.set_alarm(START + 10_000).await.unwrap();
    assert_eq!(stub.get_alarm().await.unwrap(), Some(START + 10_000));
    stub.set_alarm(START + 20_000).await.unwrap();
    assert_eq!(stub.get_alarm().await.unwrap(), Some(START + 20_000));
    schedule_settles(&test, &stub, Some((START + 20_000, 0))).await;

    clock.set_ms(START + 20_000);
    runs_reach(&stub, 1).await;
    schedule_settles(&test, &stub, None).await;
    let runs = alarm_runs(stub.id());
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].scheduled, START + 20_000);
    assert!(!runs[0].is_retry && runs[0].retry_count == 0);
    assert_eq!(
        runs[0].seen_alarm, None,
        "get_alarm() is none while the handler runs"
    );
    assert_eq!(
        stub.get_alarm().await.unwrap(),
        None,
        "a successful run clears the alarm"
    );
}

#[tokio::test]
async fn a_handler_run_is_counted_as_it_returns() {
    let (test, clock) = start();
    let stub = object(&test, "counted");
    stub.set_alarm(START + 1_000).await.unwrap();
    clock.set_ms(START + 1_000);
    // The handler's last write and its return happen in one step: whoever sees the write
    // sees the run counted, with no wait for the delivery to settle.
    bounded(async {
        while stub.last_run().await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(test.runtime().metrics().alarms_run, 1);
    assert_eq!(test.runtime().metrics().alarms_failed, 0);
}

#[tokio::test]
async fn a_class_without_an_alarm_handler_cannot_set_an_alarm() {
    let (test, _clock) = start();
    let probe = support::probe(&test, "no-handler");
    let err = bounded(probe.try_set_alarm(START + 1_000))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotImplemented, "{err:?}");
    assert!(
        err.message().contains("Probe has no alarm handler"),
        "{err}"
    );
    assert!(!err.is_reset());
    assert_eq!(
        test.runtime()
            .scheduled_alarm::<support::objects::Probe>(probe.id()),
        None
    );
    // A class with one can.
    object(&test, "with-handler")
        .set_alarm(START + 1_000)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_past_time_fires_as_soon_as_possible() {
    let (test, _clock) = start();
    let stub = object(&test, "past");
    stub.set_alarm(START - 60_000).await.unwrap();
    runs_reach(&stub, 1).await;
    assert_eq!(alarm_runs(stub.id())[0].scheduled, START - 60_000);
    schedule_settles(&test, &stub, None).await;
}

#[tokio::test]
async fn the_handler_may_set_the_next_alarm() {
    let (test, clock) = start();
    let stub = object(&test, "chain");
    plan_alarms(stub.id(), &[AlarmPlan::SetNext(START + 5_000)]);
    stub.set_alarm(START + 1_000).await.unwrap();
    clock.set_ms(START + 1_000);
    runs_reach(&stub, 1).await;
    schedule_settles(&test, &stub, Some((START + 5_000, 0))).await;
    assert_eq!(stub.get_alarm().await.unwrap(), Some(START + 5_000));
    clock.set_ms(START + 5_000);
    runs_reach(&stub, 2).await;
    schedule_settles(&test, &stub, None).await;
    assert_eq!(alarm_runs(stub.id())[1].scheduled, START + 5_000);
}

#[tokio::test]
async fn failures_are_retried_on_the_exact_backoff_schedule_then_given_up() {
    let (test, clock) = start();
    let stub = object(&test, "retry");
    // Seven failing runs of every kind: the first run and six retries.
    plan_alarms(
        stub.id(),
        &[
            AlarmPlan::Fail,
            AlarmPlan::Panic,
            AlarmPlan::Hang,
            AlarmPlan::Fail,
            AlarmPlan::Fail,
            AlarmPlan::Fail,
            AlarmPlan::Fail,
        ],
    );
    stub.set_alarm(START).await.unwrap();
    let mut now = START;
    for retry in 1..=6u32 {
        runs_reach(&stub, retry as usize).await;
        let delay = 2_000i64 << (retry - 1);
        schedule_settles(&test, &stub, Some((now + delay, retry))).await;
        // While the retry waits, the alarm is still set.
        assert_eq!(stub.get_alarm().await.unwrap(), Some(START));
        now += delay;
        clock.set_ms(now);
    }
    runs_reach(&stub, 7).await;
    // Six retries failed: the alarm is given up and deleted.
    schedule_settles(&test, &stub, None).await;
    assert_eq!(stub.get_alarm().await.unwrap(), None);
    let runs = alarm_runs(stub.id());
    let retries: Vec<u32> = runs.iter().map(|r| r.retry_count).collect();
    assert_eq!(retries, [0, 1, 2, 3, 4, 5, 6]);
    assert!(
        runs.iter()
            .skip(1)
            .all(|r| r.is_retry && r.scheduled == START)
    );
    // The writes of the failed runs were kept (a handler error keeps writes); the panicking
    // run's were rolled back, which the last value cannot show, so check a plain failure's.
    assert_eq!(stub.last_run().await.unwrap(), Some(6));
}

#[tokio::test]
async fn retry_delays_carry_at_most_a_quarter_of_jitter() {
    let clock = Arc::new(ManualClock::new(START));
    let test = TestRuntime::start(|b| manual(&clock)(b).alarm_retry_jitter(0.25));
    let stub = object(&test, "jitter");
    plan_alarms(stub.id(), &[AlarmPlan::Fail, AlarmPlan::Fail]);
    stub.set_alarm(START).await.unwrap();
    runs_reach(&stub, 1).await;
    let id = stub.id().clone();
    wait_until("the first retry is scheduled", || {
        test.runtime()
            .scheduled_alarm::<Clockwork>(&id)
            .is_some_and(|s| s.retry_count == 1 && !s.running)
    })
    .await;
    let first = test.runtime().scheduled_alarm::<Clockwork>(&id).unwrap();
    assert!(
        (START + 2_000..=START + 2_500).contains(&first.time_ms),
        "{first:?}"
    );
    clock.set_ms(first.time_ms);
    runs_reach(&stub, 2).await;
    wait_until("the second retry is scheduled", || {
        test.runtime()
            .scheduled_alarm::<Clockwork>(&id)
            .is_some_and(|s| s.retry_count == 2 && !s.running)
    })
    .await;
    let second = test.runtime().scheduled_alarm::<Clockwork>(&id).unwrap();
    let delay = second.time_ms - first.time_ms;
    assert!((4_000..=5_000).contains(&delay), "{second:?}");
}

#[tokio::test]
async fn a_handler_that_set_a_new_alarm_is_not_retried() {
    let (test, clock) = start();
    let stub = object(&test, "superseded");
    plan_alarms(stub.id(), &[AlarmPlan::SetNextThenFail(START + 9_000)]);
    stub.set_alarm(START).await.unwrap();
    runs_reach(&stub, 1).await;
    schedule_settles(&test, &stub, Some((START + 9_000, 0))).await;
    clock.set_ms(START + 9_000);
    runs_reach(&stub, 2).await;
    assert_eq!(alarm_runs(stub.id())[1].retry_count, 0);
}

#[tokio::test]
async fn delete_alarm_and_delete_all_remove_the_alarm() {
    let (test, clock) = start();
    let a = object(&test, "delete-alarm");
    a.set_alarm(START + 1_000).await.unwrap();
    a.delete_alarm().await.unwrap();
    assert_eq!(a.get_alarm().await.unwrap(), None);
    schedule_settles(&test, &a, None).await;

    let b = object(&test, "delete-all");
    b.set_alarm(START + 1_000).await.unwrap();
    schedule_settles(&test, &b, Some((START + 1_000, 0))).await;
    b.delete_all().await.unwrap();
    assert_eq!(b.get_alarm().await.unwrap(), None);
    schedule_settles(&test, &b, None).await;
    clock.set_ms(START + 2_000);
    // Neither fires: a fresh alarm on a third object does, and by then these have not.
    let c = object(&test, "witness");
    c.set_alarm(START + 2_000).await.unwrap();
    runs_reach(&c, 1).await;
    assert!(alarm_runs(a.id()).is_empty());
    assert!(alarm_runs(b.id()).is_empty());
}

#[tokio::test]
async fn setting_an_alarm_is_atomic_with_the_turn() {
    let (test, _clock) = start();
    let kept = object(&test, "err-keeps");
    let err = kept.set_alarm_then_fail(START + 1_000).await.unwrap_err();
    assert!(!err.is_reset());
    assert_eq!(kept.get_alarm().await.unwrap(), Some(START + 1_000));
    assert_eq!(kept.with_alarm().await.unwrap(), Some(START + 1_000));

    let rolled_back = object(&test, "panic-rolls-back");
    let err = rolled_back
        .set_alarm_then_panic(START + 1_000)
        .await
        .unwrap_err();
    assert!(err.is_reset());
    assert_eq!(rolled_back.get_alarm().await.unwrap(), None);
    assert_eq!(rolled_back.with_alarm().await.unwrap(), None);
    assert!(
        test.runtime()
            .scheduled_alarm::<Clockwork>(rolled_back.id())
            .is_none()
    );
}

#[tokio::test]
async fn an_invalid_time_is_an_error_and_changes_nothing() {
    let (test, _clock) = start();
    let stub = object(&test, "invalid");
    stub.set_alarm(START + 1_000).await.unwrap();
    for bad in [0, -1, i64::MIN] {
        let err = bounded(stub.set_alarm(bad)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.message().contains("alarm time <= 0"), "{err}");
    }
    // Beyond the horizon (100 years from the runtime's clock): the year 3000, i64::MAX.
    let horizon = durable_objects::limits::MAX_ALARM_HORIZON_MS;
    stub.set_alarm(START + horizon).await.unwrap();
    for bad in [START + horizon + 1, 32_503_680_000_000, i64::MAX] {
        let err = bounded(stub.set_alarm(bad)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(
            err.exceeded_limit(),
            Some(durable_objects::Limit::AlarmHorizon)
        );
        assert!(err.message().contains("at most"), "{err}");
    }
    assert_eq!(stub.get_alarm().await.unwrap(), Some(START + horizon));
}

#[tokio::test]
async fn alarms_wake_evicted_objects() {
    let clock = Arc::new(ManualClock::new(START));
    let test = TestRuntime::start(|b| manual(&clock)(b).idle_timeout(Duration::from_millis(30)));
    let stub = object(&test, "sleeper");
    stub.set_alarm(START + 60_000).await.unwrap();
    wait_until("the object is evicted", || {
        test.runtime().active_objects() == 0
    })
    .await;
    let built = constructions(stub.id());
    clock.set_ms(START + 60_000);
    runs_reach(&stub, 1).await;
    assert_eq!(
        constructions(stub.id()),
        built + 1,
        "the alarm built a fresh instance"
    );
}

#[tokio::test]
async fn alarms_survive_a_restart() {
    let clock = Arc::new(ManualClock::new(START));
    let mut test = TestRuntime::start(manual(&clock));
    let stubs: Vec<_> = (0..5)
        .map(|i| object(&test, &format!("restart-{i}")))
        .collect();
    for (i, stub) in stubs.iter().enumerate() {
        stub.set_alarm(START + 1_000 * (i as i64 + 1))
            .await
            .unwrap();
    }
    test.restart(manual(&clock));
    assert_eq!(
        test.runtime().pending_alarms(),
        5,
        "loaded from the index, no object opened"
    );
    assert_eq!(test.runtime().active_objects(), 0);
    clock.set_ms(START + 5_000);
    for stub in &stubs {
        runs_reach(stub, 1).await;
    }
}

#[tokio::test]
async fn an_alarm_committed_by_the_shutdown_itself_fires_after_restart() {
    let clock = Arc::new(ManualClock::new(START));
    let mut test = TestRuntime::start(manual(&clock));
    let stubs: Vec<_> = (0..40)
        .map(|i| object(&test, &format!("shutdown-{i}")))
        .collect();
    // The calls race the shutdown: some never run, some run and are committed by the
    // shutdown itself (their callers hear of the shutdown, not of success), some commit
    // before it. Whatever the outcome, every alarm an object stored must be in the index.
    let calls: Vec<_> = stubs
        .iter()
        .enumerate()
        .map(|(i, stub)| tokio::spawn(stub.set_alarm(START + 1_000 * (i as i64 + 1))))
        .collect();
    test.restart(manual(&clock));
    for call in calls {
        let _ = call.await.unwrap();
    }
    let indexed = test.runtime().pending_alarms();
    let mut stored = Vec::new();
    for i in 0..stubs.len() {
        let stub = object(&test, &format!("shutdown-{i}"));
        if let Some(time) = stub.get_alarm().await.unwrap() {
            stored.push((stub, time));
        }
    }
    assert_eq!(
        indexed,
        stored.len(),
        "an alarm stored by a batch committed at shutdown is missing from the index"
    );
    clock.set_ms(START + 40_000);
    for (stub, _) in &stored {
        runs_reach(stub, 1).await;
    }
}
