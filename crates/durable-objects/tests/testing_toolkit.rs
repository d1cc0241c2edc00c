//! The testing toolkit (`durable_objects::testing`) from a user's side: each helper does what
//! its docs promise, on the happy path and on the failing one.
#![allow(clippy::unwrap_used, missing_debug_implementations)]

use std::cell::Cell;
use std::time::Duration;

use durable_objects::prelude::*;
use durable_objects::testing::{
    EvictSockets, TestEnv, abort_all, evict, evict_all, list_durable_object_ids,
    run_durable_object_alarm, run_in_durable_object, wait_until_idle,
};

/// Counts calls in memory and in storage; its alarm fails `failures` times, then records
/// each run.
#[durable_object]
pub struct Subject {
    state: State,
    env: Env,
    calls: Cell<u32>,
}

impl DurableObject for Subject {
    fn new(state: State, env: Env) -> Self {
        let kv = state.storage().kv();
        let built: u32 = kv.get("constructed").unwrap().unwrap_or(0);
        kv.put("constructed", &(built + 1)).unwrap();
        Self {
            state,
            env,
            calls: Cell::new(0),
        }
    }

    async fn alarm(&self, info: AlarmInfo) -> Result<()> {
        let kv = self.state.storage().kv();
        let failures: u32 = kv.get("failures")?.unwrap_or(0);
        if info.retry_count < failures {
            return Err(Error::user(format!("failing run {}", info.retry_count)));
        }
        let mut runs: Vec<(u32, i64)> = kv.get("runs")?.unwrap_or_default();
        runs.push((info.retry_count, self.env.clock().now_ms()));
        kv.put("runs", &runs)?;
        Ok(())
    }
}

#[rpc]
impl Subject {
    pub async fn call(&self) -> Result<u32> {
        self.calls.set(self.calls.get() + 1);
        Ok(self.calls.get())
    }

    pub async fn write(&self, key: String, value: i64) -> Result<()> {
        self.state.storage().kv().put(&key, &value)
    }

    pub async fn alarm_in(&self, ms: u64, failures: u32) -> Result<()> {
        self.state.storage().kv().put("failures", &failures)?;
        self.state
            .storage()
            .set_alarm_in(Duration::from_millis(ms))
            .await
    }

    /// `(retry_count, clock time)` of each successful alarm run.
    pub async fn runs(&self) -> Result<Vec<(u32, i64)>> {
        Ok(self.state.storage().kv().get("runs")?.unwrap_or_default())
    }

    pub async fn constructed(&self) -> Result<u32> {
        Ok(self.state.storage().kv().get("constructed")?.unwrap_or(0))
    }

    /// Writes `started`, then waits (holding the object busy) until `release` is written
    /// by a closure.
    pub async fn busy_until_released(&self) -> Result<()> {
        let kv = self.state.storage().kv();
        kv.put("started", &true)?;
        while kv.get::<bool>("release")?.is_none() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    }
}

fn subject_env() -> TestEnv {
    TestEnv::new(|runtime| runtime.bind::<Subject>("SUBJECT")).unwrap()
}

/// Starts `busy_until_released` on `stub` and returns once it runs.
async fn start_busy(stub: &Stub<Subject>) -> tokio::task::JoinHandle<Result<()>> {
    let busy = tokio::spawn({
        let stub = stub.clone();
        async move { stub.busy_until_released().await }
    });
    loop {
        let started = run_in_durable_object(stub, |_, state| async move {
            state.storage().kv().get::<bool>("started").unwrap()
        })
        .await
        .unwrap();
        if started == Some(true) {
            return busy;
        }
    }
}

fn subject(test: &TestEnv, name: &str) -> Stub<Subject> {
    test.env()
        .namespace::<Subject>("SUBJECT")
        .unwrap()
        .get_by_name(name)
}

#[tokio::test]
async fn run_in_durable_object_sees_the_instance_and_its_storage() {
    let test = subject_env();
    let stub = subject(&test, "a");
    stub.call().await.unwrap();
    stub.call().await.unwrap();
    let (calls, seeded) = run_in_durable_object(&stub, |object, state| async move {
        state.storage().kv().put("seeded", &7_i64).unwrap();
        (object.calls.get(), state.id().name().map(str::to_owned))
    })
    .await
    .unwrap();
    assert_eq!(calls, 2, "the closure ran on the live instance");
    assert_eq!(seeded.as_deref(), Some("a"));
    // The closure's write is storage like any other: durable, and seen by the object.
    let value = run_in_durable_object(&stub, |_, state| async move {
        state.storage().kv().get::<i64>("seeded").unwrap()
    })
    .await
    .unwrap();
    assert_eq!(value, Some(7));
}

#[tokio::test]
async fn a_panic_in_run_in_durable_object_resets_the_object() {
    let test = subject_env();
    let stub = subject(&test, "a");
    assert_eq!(stub.call().await.unwrap(), 1);
    let error = run_in_durable_object(&stub, |_, _| async move {
        panic!("the test's closure panicked");
    })
    .await
    .map(|(): ()| ())
    .unwrap_err();
    assert!(error.is_reset(), "{error}");
    assert_eq!(stub.call().await.unwrap(), 1, "a fresh instance");
}

#[tokio::test]
async fn run_durable_object_alarm_runs_once_and_reports_whether_one_was_set() {
    let test = subject_env();
    let stub = subject(&test, "a");
    assert!(!run_durable_object_alarm(&stub).await.unwrap());
    stub.alarm_in(3_600_000, 0).await.unwrap();
    assert!(run_durable_object_alarm(&stub).await.unwrap());
    assert_eq!(stub.runs().await.unwrap().len(), 1);
    // The alarm was deleted: the scheduler does not run it again later.
    test.advance(Duration::from_secs(7_200)).await.unwrap();
    assert_eq!(stub.runs().await.unwrap().len(), 1);
    assert!(!run_durable_object_alarm(&stub).await.unwrap());
}

#[tokio::test]
async fn run_durable_object_alarm_returns_the_handler_error() {
    let test = subject_env();
    let stub = subject(&test, "a");
    stub.alarm_in(1_000, 1).await.unwrap();
    let error = run_durable_object_alarm(&stub).await.unwrap_err();
    assert!(error.to_string().contains("failing run 0"), "{error}");
    assert!(stub.runs().await.unwrap().is_empty());
}

#[tokio::test]
async fn advance_runs_retries_at_their_own_times() {
    let test = subject_env();
    let stub = subject(&test, "a");
    let start = test.clock().now_ms();
    // Fails twice: retries after about 2 s and 4 s more (with up to 25 % jitter).
    stub.alarm_in(1_000, 2).await.unwrap();
    test.advance(Duration::from_millis(999)).await.unwrap();
    assert!(stub.runs().await.unwrap().is_empty(), "not due yet");
    test.advance(Duration::from_secs(60)).await.unwrap();
    let runs = stub.runs().await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let (retry, at) = runs[0];
    assert_eq!(retry, 2);
    let elapsed = at - start;
    assert!(
        (1_000 + 2_000 + 4_000..=1_000 + 2_500 + 5_000).contains(&elapsed),
        "the third run happened {elapsed} ms after the start"
    );
    assert_eq!(test.clock().now_ms(), start + 999 + 60_000);
}

#[tokio::test]
async fn a_clock_jump_wakes_the_scheduler_at_once() {
    // Without `advance`: a test that only sets the clock still sees its alarm run, though
    // the scheduler was asleep until its next look (up to a long wait away).
    let test = TestEnv::new(|runtime| {
        runtime
            .bind::<Subject>("SUBJECT")
            .alarm_max_wait(Duration::from_secs(3_600))
    })
    .unwrap();
    let stub = subject(&test, "a");
    stub.alarm_in(10_000, 0).await.unwrap();
    test.clock().advance_ms(10_000);
    tokio::time::timeout(Duration::from_secs(20), async {
        while stub.runs().await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the alarm ran soon after the jump, not an hour later");
}

#[tokio::test]
async fn advance_evicts_idle_objects() {
    let test = subject_env();
    let stub = subject(&test, "a");
    assert_eq!(stub.call().await.unwrap(), 1);
    test.advance(Duration::from_secs(5)).await.unwrap();
    assert_eq!(test.runtime().active_objects(), 1, "5 s idle is not enough");
    test.advance(test.runtime().config().idle_timeout)
        .await
        .unwrap();
    assert_eq!(test.runtime().active_objects(), 0);
    assert_eq!(stub.call().await.unwrap(), 1, "a new instance");
    assert_eq!(stub.constructed().await.unwrap(), 2);
}

#[tokio::test]
async fn evict_waits_for_a_busy_object_and_keeps_storage() {
    let test = subject_env();
    let stub = subject(&test, "a");
    assert!(
        !evict(&stub, EvictSockets::Hibernate).await.unwrap(),
        "not running"
    );
    stub.write("kept".into(), 5).await.unwrap();
    // With a call in progress, eviction must wait for it.
    let busy = start_busy(&stub).await;
    let eviction = tokio::spawn({
        let stub = stub.clone();
        async move { evict(&stub, EvictSockets::Hibernate).await }
    });
    tokio::task::yield_now().await;
    assert!(!eviction.is_finished());
    run_in_durable_object(&stub, |_, state| async move {
        state.storage().kv().put("release", &true).unwrap();
    })
    .await
    .unwrap();
    busy.await.unwrap().unwrap();
    assert!(eviction.await.unwrap().unwrap());
    assert_eq!(test.runtime().active_objects(), 0);
    let kept = run_in_durable_object(&stub, |_, state| async move {
        state.storage().kv().get::<i64>("kept").unwrap()
    })
    .await
    .unwrap();
    assert_eq!(kept, Some(5));
}

#[tokio::test]
async fn evict_all_and_abort_all_reach_every_object() {
    let test = subject_env();
    for name in ["a", "b", "c"] {
        subject(&test, name).call().await.unwrap();
    }
    assert_eq!(test.runtime().active_objects(), 3);
    evict_all(&test.env(), EvictSockets::Close).await.unwrap();
    assert_eq!(test.runtime().active_objects(), 0);
    for name in ["a", "b"] {
        subject(&test, name).call().await.unwrap();
    }
    assert_eq!(abort_all(&test.env()).await.unwrap(), 2);
    assert_eq!(test.runtime().active_objects(), 0);
    assert_eq!(subject(&test, "a").call().await.unwrap(), 1);
}

#[tokio::test]
async fn abort_all_fails_a_call_in_progress_with_a_reset() {
    let test = subject_env();
    let stub = subject(&test, "a");
    let busy = start_busy(&stub).await;
    assert_eq!(test.abort_all().await.unwrap(), 1);
    let error = busy.await.unwrap().unwrap_err();
    assert!(error.is_reset(), "{error}");
}

#[tokio::test]
async fn list_durable_object_ids_lists_objects_with_storage() {
    let test = subject_env();
    let ns = test.env().namespace::<Subject>("SUBJECT").unwrap();
    assert!(list_durable_object_ids(&ns).unwrap().is_empty());
    // The constructor writes, so every called object has storage.
    let unique = ns.new_unique_id();
    ns.get(&unique).call().await.unwrap();
    ns.get_by_name("named").call().await.unwrap();
    let mut listed = list_durable_object_ids(&ns).unwrap();
    listed.sort_by_key(ToString::to_string);
    let mut expected = vec![unique, ns.id_from_name("named")];
    expected.sort_by_key(ToString::to_string);
    assert_eq!(listed, expected);
    // Each listed id reaches its object.
    assert_eq!(ns.get(&listed[0]).constructed().await.unwrap(), 1);
}

#[tokio::test]
async fn every_test_env_has_its_own_data_and_restart_keeps_it() {
    let mut first = subject_env();
    let second = subject_env();
    assert_ne!(first.data_dir(), second.data_dir());
    subject(&first, "a").write("x".into(), 1).await.unwrap();
    let ns = second.env().namespace::<Subject>("SUBJECT").unwrap();
    assert!(list_durable_object_ids(&ns).unwrap().is_empty());
    // An alarm set before a restart is still scheduled after it.
    subject(&first, "a").alarm_in(5_000, 0).await.unwrap();
    let old = subject(&first, "a");
    first.restart().unwrap();
    assert!(old.call().await.unwrap_err().is_retryable());
    first.advance(Duration::from_secs(5)).await.unwrap();
    assert_eq!(subject(&first, "a").runs().await.unwrap().len(), 1);
    let dir = first.data_dir().to_owned();
    drop(first);
    assert!(!dir.exists(), "the data folder is removed with the TestEnv");
}

#[tokio::test]
async fn wait_until_idle_waits_for_the_work_in_progress() {
    let test = subject_env();
    let stub = subject(&test, "a");
    wait_until_idle(&stub).await.unwrap(); // no instance: idle at once
    let busy = start_busy(&stub).await;
    let waiting = tokio::spawn({
        let stub = stub.clone();
        async move { wait_until_idle(&stub).await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    run_in_durable_object(&stub, |_, state| async move {
        state.storage().kv().put("release", &true).unwrap();
    })
    .await
    .unwrap();
    busy.await.unwrap().unwrap();
    waiting.await.unwrap().unwrap();
}

#[tokio::test]
async fn injected_sync_failures_reset_the_writer_and_lose_nothing_acknowledged() {
    let test = subject_env();
    let stub = subject(&test, "a");
    stub.write("before".into(), 1).await.unwrap();
    test.fail_next_syncs(1);
    let error = stub.write("lost".into(), 2).await.unwrap_err();
    assert!(error.is_reset(), "{error}");
    // The failed write was not acknowledged (its outcome is unknown: the bytes may have
    // reached the file before the fsync failed); the acknowledged one is there, and the
    // object works again on a new instance.
    let before = run_in_durable_object(&stub, |_, state| async move {
        state.storage().kv().get::<i64>("before").unwrap()
    })
    .await
    .unwrap();
    assert_eq!(before, Some(1));
    stub.write("after".into(), 3).await.unwrap();
}

#[tokio::test]
async fn helpers_on_a_stopped_runtime_fail_instead_of_hanging() {
    let mut test = subject_env();
    let stub = subject(&test, "a");
    stub.call().await.unwrap();
    test.restart().unwrap();
    let error = run_in_durable_object(&stub, |_, _| async {})
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(evict(&stub, EvictSockets::Hibernate).await.is_err());
    assert!(wait_until_idle(&stub).await.is_err());
}
