//! A damaged data folder is refused or repaired, never silently wrong: a missing or foreign
//! namespace key stops the start (instead of making every object unreachable), and a missing
//! or junk alarm index is rebuilt from the objects' stored alarms, which then fire.
#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions unwrap too.

mod support;

use std::sync::Arc;
use std::time::Duration;

use durable_objects::prelude::*;
use durable_objects::{CommitLogSetting, ManualClock, Runtime, RuntimeBuilder, StartError};
use support::objects::{self, Reminder};
use support::{TestRuntime, bounded, store, wait_until};

const START: i64 = 1_700_000_000_000;

fn builder(dir: &std::path::Path) -> RuntimeBuilder {
    objects::bind_all(Runtime::builder().data_dir(dir))
}

/// A runtime configured by `configure` that stored `k = v` in the object `kept` and was
/// stopped; and the path of `Store.key`.
async fn stored_and_stopped(
    configure: impl FnOnce(RuntimeBuilder) -> RuntimeBuilder,
) -> (TestRuntime, std::path::PathBuf) {
    let mut test = TestRuntime::start(configure);
    store(&test, "kept")
        .put("k".into(), "v".into())
        .await
        .unwrap();
    drop(test.runtime.take());
    let key_file = test.dir.path().join("namespaces/Store.key");
    (test, key_file)
}

/// Stores an object, stops, damages `Store.key` with `damage`, and checks that the start is
/// refused with `check`; with the key restored, the object is there again. Without a commit
/// log (which holds a second copy of every key).
async fn a_damaged_key_refuses_to_start(
    damage: impl FnOnce(&std::path::Path),
    check: impl FnOnce(&StartError),
) {
    let no_log = |b: RuntimeBuilder| b.commit_log(CommitLogSetting::Off);
    let (mut test, key_file) = stored_and_stopped(no_log).await;
    let saved = std::fs::read(&key_file).unwrap();
    damage(&key_file);

    let err = no_log(builder(test.dir.path())).build().unwrap_err();
    check(&err);

    std::fs::write(&key_file, saved).unwrap();
    test.restart(no_log);
    assert_eq!(
        store(&test, "kept")
            .get("k".into())
            .await
            .unwrap()
            .as_deref(),
        Some("v")
    );
}

#[tokio::test]
async fn a_missing_namespace_key_with_objects_refuses_to_start() {
    a_damaged_key_refuses_to_start(
        |key| std::fs::remove_file(key).unwrap(),
        |err| {
            assert!(matches!(err, StartError::KeyMissing { .. }), "{err:?}");
            let text = err.to_string();
            assert!(
                text.contains("Store.key") && text.contains("restore"),
                "{text}"
            );
            // No new key was made behind the operator's back.
            let StartError::KeyMissing { path, .. } = err else {
                unreachable!()
            };
            assert!(!path.exists());
        },
    )
    .await;
}

#[tokio::test]
async fn a_missing_namespace_key_comes_back_from_the_commit_log() {
    let (mut test, key_file) = stored_and_stopped(|b| b).await;
    let saved = std::fs::read_to_string(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    test.restart(|b| b);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), saved);
    assert_eq!(
        store(&test, "kept")
            .get("k".into())
            .await
            .unwrap()
            .as_deref(),
        Some("v")
    );
}

#[tokio::test]
async fn a_key_that_did_not_make_the_objects_refuses_to_start() {
    a_damaged_key_refuses_to_start(
        // A valid key, but another one (another data folder's, or a regenerated one).
        |key| std::fs::write(key, format!("{}\n", "09".repeat(32))).unwrap(),
        |err| {
            assert!(matches!(err, StartError::KeyMismatch { .. }), "{err:?}");
            assert!(err.to_string().contains("does not belong"), "{err}");
        },
    )
    .await;
}

fn manual(clock: &Arc<ManualClock>) -> impl FnOnce(RuntimeBuilder) -> RuntimeBuilder + use<> {
    let clock = Arc::clone(clock);
    move |b: RuntimeBuilder| b.clock(clock).alarm_max_wait(Duration::from_millis(2))
}

fn reminder(test: &TestRuntime, name: &str) -> Stub<Reminder> {
    test.env()
        .namespace::<Reminder>("REMINDER")
        .unwrap()
        .get_by_name(name)
}

/// Sets 20 alarms, stops, damages the index with `damage`, restarts: every alarm is pending
/// again and fires. Returns the runtime (its data folder lives as long).
async fn alarms_survive(damage: impl FnOnce(&std::path::Path)) -> TestRuntime {
    let clock = Arc::new(ManualClock::new(START));
    let mut test = TestRuntime::start(manual(&clock));
    for n in 0..20 {
        reminder(&test, &format!("r{n}"))
            .remind_at(START + 1_000 + n)
            .await
            .unwrap();
    }
    wait_until("every alarm is indexed", || {
        test.runtime().pending_alarms() == 20
    })
    .await;
    drop(test.runtime.take());
    damage(test.dir.path());

    test.restart(manual(&clock));
    assert_eq!(test.runtime().pending_alarms(), 20, "the index was rebuilt");
    clock.set_ms(START + 2_000);
    for n in 0..20 {
        let stub = reminder(&test, &format!("r{n}"));
        bounded(async {
            while stub.fired().await.unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        assert_eq!(stub.fired().await.unwrap(), [START + 1_000 + n]);
    }
    test
}

#[tokio::test]
async fn a_deleted_alarm_index_is_rebuilt_from_the_objects() {
    alarms_survive(|dir| {
        for file in ["alarms.sqlite", "alarms.sqlite-wal", "alarms.sqlite-shm"] {
            let _ = std::fs::remove_file(dir.join(file));
        }
    })
    .await;
}

#[tokio::test]
async fn a_junk_alarm_index_is_moved_aside_and_rebuilt() {
    let test = alarms_survive(|dir| {
        for file in ["alarms.sqlite-wal", "alarms.sqlite-shm"] {
            let _ = std::fs::remove_file(dir.join(file));
        }
        std::fs::write(dir.join("alarms.sqlite"), vec![0x42; 8192]).unwrap();
    })
    .await;
    assert_eq!(
        std::fs::read(test.dir.path().join("alarms.sqlite.damaged")).unwrap(),
        vec![0x42; 8192],
        "the damaged file is kept for inspection"
    );
}
