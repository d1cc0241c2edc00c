//! Turns as implicit transactions, explicit transactions, the output gate, `sync()`,
//! `delete_all`, storage-full and failed fsyncs, and SQL errors through a real object.
#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions unwrap too.

mod support;

use std::time::Duration;

use durable_objects::prelude::*;
use durable_objects::storage::{DurabilityMode, SqlValue};
use support::objects::{SqlResult, Store};
use support::{TestRuntime, bounded, store};

async fn sql(s: &Stub<Store>, query: &str) -> durable_objects::Result<SqlResult> {
    bounded(s.sql(query.into(), vec![])).await
}

#[tokio::test]
async fn a_handler_error_keeps_its_writes() {
    let test = TestRuntime::start(|b| b);
    let s = store(&test, "err");
    let err = bounded(s.record_then_fail(1)).await.unwrap_err();
    assert!(err.is_remote() && !err.is_reset(), "{err:?}");
    assert_eq!(s.ledger().await.unwrap(), [1]);
    assert_eq!(s.kv_numbers().await.unwrap(), [1]);
}

#[tokio::test]
async fn a_panic_rolls_back_its_turn_and_resets() {
    let test = TestRuntime::start(|b| b);
    let s = store(&test, "panic");
    s.record(1).await.unwrap();
    let err = bounded(s.record_then_panic(2)).await.unwrap_err();
    assert!(err.is_reset(), "{err:?}");
    assert_eq!(
        s.ledger().await.unwrap(),
        [1],
        "the panicking turn left no SQL row"
    );
    assert_eq!(s.kv_numbers().await.unwrap(), [1], "nor a KV entry");

    let err = bounded(s.record_await_panic(3, 4)).await.unwrap_err();
    assert!(err.is_reset(), "{err:?}");
    assert_eq!(
        s.ledger().await.unwrap(),
        [1, 3],
        "the completed first turn stays"
    );
    assert_eq!(s.kv_numbers().await.unwrap(), [1, 3]);

    let err = bounded(s.record_then_abort(5)).await.unwrap_err();
    assert!(
        err.is_reset() && err.message().contains("abort after writing"),
        "{err:?}"
    );
    assert_eq!(s.ledger().await.unwrap(), [1, 3]);
}

#[tokio::test]
async fn transactions_roll_back_on_error_without_resetting() {
    let test = TestRuntime::start(|b| b);
    let s = store(&test, "txn");
    s.txn_sync(1, false).await.unwrap();
    let err = bounded(s.txn_sync(2, true)).await.unwrap_err();
    assert!(
        !err.is_reset() && err.message() == "transaction refused",
        "{err:?}"
    );
    s.txn_async(3, false).await.unwrap();
    let err = bounded(s.txn_async(4, true)).await.unwrap_err();
    assert!(!err.is_reset(), "{err:?}");
    assert_eq!(s.ledger().await.unwrap(), [1, 3]);
    assert_eq!(s.kv_numbers().await.unwrap(), [1, 3]);
}

#[tokio::test]
async fn sql_errors_are_clear_and_leave_the_object_working() {
    let test = TestRuntime::start(|b| b);
    let s = store(&test, "sql");
    s.record(1).await.unwrap();
    let cases = [
        ("BEGIN", "use transaction_sync()"),
        ("ATTACH 'x.db' AS x", "ATTACH and DETACH are not allowed"),
        ("CREATE TEMP TABLE t (a)", "TEMP tables"),
        (
            "SELECT * FROM _cf_KV",
            "names starting with _cf_ are reserved",
        ),
        (
            "CREATE VIRTUAL TABLE v USING fts3(a)",
            "virtual table module fts3 is not allowed",
        ),
        ("PRAGMA user_version", "PRAGMA user_version is not allowed"),
        (
            "SELECT load_extension('x')",
            "not authorized to use function: load_extension",
        ),
        ("SELEC 1", "syntax error"),
        ("", "did not contain a statement"),
    ];
    for (query, expected) in cases {
        let err = sql(&s, query).await.unwrap_err();
        assert!(err.message().contains(expected), "{query:?}: {err}");
        assert!(!err.is_reset(), "{query:?} reset the object");
    }
    let err = bounded(s.sql("SELECT ?1, ?2".into(), vec![SqlValue::Integer(1)]))
        .await
        .unwrap_err();
    assert!(
        err.message().contains("wrong number of parameter bindings"),
        "{err}"
    );
    // The object kept its data and works.
    assert_eq!(s.ledger().await.unwrap(), [1]);
    let result = bounded(s.sql(
        "INSERT INTO ledger (n, note) VALUES (?1, ?2), (?3, ?4) RETURNING n".into(),
        vec![2.into(), "two".into(), 3.into(), SqlValue::Null],
    ))
    .await
    .unwrap();
    assert_eq!(result.columns, ["n"]);
    assert_eq!(
        result.rows,
        [[SqlValue::Integer(2)], [SqlValue::Integer(3)]]
    );
    assert_eq!(result.rows_written, 2);
}

#[tokio::test]
async fn delete_all_removes_sql_and_kv_and_the_object_starts_over() {
    let mut test = TestRuntime::start(|b| b);
    let s = store(&test, "wipe");
    s.record(1).await.unwrap();
    s.put("k".into(), "v".into()).await.unwrap();
    let size = s.database_size().await.unwrap();
    s.delete_all().await.unwrap();
    assert_eq!(s.get("k".into()).await.unwrap(), None);
    let tables = sql(&s, "SELECT name FROM sqlite_master").await.unwrap();
    assert!(tables.rows.is_empty(), "{tables:?}");
    assert!(s.database_size().await.unwrap() < size);
    test.restart(|b| b);
    let s = store(&test, "wipe");
    // The constructor re-created its table on a fresh instance after restart.
    assert_eq!(s.ledger().await.unwrap(), Vec::<i64>::new());
    assert_eq!(s.get("k".into()).await.unwrap(), None);
}

#[tokio::test]
async fn a_full_object_refuses_writes_but_serves_reads_and_deletes() {
    let test = TestRuntime::start(|b| b.max_database_bytes(256 * 1024));
    let s = store(&test, "full");
    s.put("small".into(), "kept".into()).await.unwrap();
    let mut full = None;
    for i in 0..64 {
        if let Err(err) = bounded(s.put_bytes(format!("blob{i}"), 32 * 1024)).await {
            full = Some(err);
            break;
        }
    }
    let err = full.expect("the object filled up");
    assert!(err.message().contains("SQLITE_FULL"), "{err}");
    // SQLite may roll back the whole open transaction on SQLITE_FULL; then the object is
    // reset, and says so, rather than pretend the batch is intact.
    assert!(
        !err.is_reset() || err.message().contains("rolled back"),
        "{err}"
    );
    assert_eq!(
        s.get("small".into()).await.unwrap().as_deref(),
        Some("kept")
    );
    assert!(s.delete("blob0".into()).await.unwrap());
    s.put("after".into(), "delete".into()).await.unwrap();
}

#[tokio::test]
async fn sync_waits_for_unconfirmed_writes() {
    let test = TestRuntime::start(|b| b);
    let s = store(&test, "sync");
    bounded(s.unconfirmed_then_sync("u".into())).await.unwrap();
    assert_eq!(s.get("u".into()).await.unwrap().as_deref(), Some("x"));
    // sync() reports the fsync it waited for: when that fsync fails, so does sync(), although
    // the unconfirmed write itself did not wait. A sync() that returned at once would pass
    // the first half of this test and fail here.
    test.runtime().inject_sync_failures(1);
    let err = bounded(s.unconfirmed_then_sync("v".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err:?}");
    assert!(err.message().contains("injected fsync failure"), "{err}");
}

#[tokio::test]
async fn every_write_takes_allow_unconfirmed() {
    let test = TestRuntime::start(|b| b);
    for kind in [
        "put",
        "delete",
        "put_multiple",
        "delete_multiple",
        "delete_all",
        "set_alarm",
        "delete_alarm",
    ] {
        // Both objects first hold what the write changes (a delete of nothing writes
        // nothing), durably.
        let confirmed = store(&test, &format!("confirmed-{kind}"));
        let unconfirmed = store(&test, &format!("unconfirmed-{kind}"));
        for object in [&confirmed, &unconfirmed] {
            for setup in ["put", "put_multiple", "set_alarm"] {
                object.write_kind(setup.into(), false).await.unwrap();
            }
        }
        // The next fsync fails. A confirmed write's reply waits for it and fails with it...
        test.runtime().inject_sync_failures(1);
        let err = bounded(confirmed.write_kind(kind.into(), false))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{kind}: {err:?}");
        // ...an unconfirmed one's reply does not wait for it.
        test.runtime().inject_sync_failures(1);
        bounded(unconfirmed.write_kind(kind.into(), true))
            .await
            .unwrap_or_else(|err| panic!("{kind}: {err:?}"));
        support::wait_until("the failing sync ran", || {
            test.runtime().injected_sync_failures_left() == 0
        })
        .await;
    }
}

#[tokio::test]
async fn an_async_transaction_rolls_back_on_request() {
    let test = TestRuntime::start(|b| b);
    let s = store(&test, "rollback");
    s.record(1).await.unwrap();
    assert_eq!(
        bounded(s.txn_rollback(2)).await.unwrap(),
        "rolled back",
        "the closure's result is returned"
    );
    assert_eq!(s.ledger().await.unwrap(), [1]);
    assert_eq!(s.kv_numbers().await.unwrap(), [1]);
    s.txn_async(3, false).await.unwrap();
    assert_eq!(s.ledger().await.unwrap(), [1, 3]);
}

#[tokio::test]
async fn an_async_transaction_past_its_time_limit_is_rolled_back() {
    let test = TestRuntime::start(|b| b.transaction_timeout(Duration::from_millis(100)));
    let s = store(&test, "slow-txn");
    s.record(1).await.unwrap();
    for (n, nested) in [(2, false), (3, true)] {
        let err = bounded(s.txn_hang(n, format!("never-{n}"), nested))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Overloaded, "{err:?}");
        assert!(err.message().contains("ran longer than 100 ms"), "{err}");
        assert!(!err.is_reset(), "{err:?}");
        // Nothing of it is kept, and the object keeps working (the gate reopened and every
        // savepoint, nested ones too, was closed, so its next writes commit).
        s.record(10 + n).await.unwrap();
        assert_eq!(s.get("inner".into()).await.unwrap(), None);
    }
    assert_eq!(s.ledger().await.unwrap(), [1, 12, 13]);
}

#[tokio::test]
async fn delete_all_is_refused_inside_a_transaction() {
    let test = TestRuntime::start(|b| b);
    let s = store(&test, "txn-delete-all");
    s.record(1).await.unwrap();
    for sync in [true, false] {
        let err = bounded(s.delete_all_in_txn(sync)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err:?}");
        assert!(
            err.message()
                .contains("cannot be called inside a transaction"),
            "{err}"
        );
    }
    assert_eq!(s.ledger().await.unwrap(), [1]);
    s.delete_all().await.unwrap();
}

#[tokio::test]
async fn a_failed_fsync_fails_the_call_and_resets_the_object() {
    let test = TestRuntime::start(|b| b);
    let s = store(&test, "fsync");
    s.record(1).await.unwrap();
    test.runtime().inject_sync_failures(1);
    let err = bounded(s.record(2)).await.unwrap_err();
    // The write reached the WAL before its fsync failed: it may survive, so the caller is
    // told the outcome is unknown, never that it failed (a retry could apply it twice).
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err:?}");
    assert!(err.is_reset() && !err.is_retryable(), "{err:?}");
    assert!(
        err.message().contains("may or may not have been applied"),
        "{err}"
    );
    assert!(err.message().contains("injected fsync failure"), "{err}");
    // The next call gets a fresh instance that works.
    s.record(3).await.unwrap();
    let ledger = s.ledger().await.unwrap();
    assert!(ledger.contains(&1) && ledger.contains(&3), "{ledger:?}");
}

#[tokio::test]
async fn only_unconfirmed_writes_do_not_hold_the_reply() {
    let test = TestRuntime::start(|b| b);
    let s = store(&test, "unconfirmed");
    s.record(1).await.unwrap();
    // The next sync fails. An unconfirmed write's reply does not wait for it, so it succeeds
    // (and the object is reset once the sync fails); a confirmed write's reply waits for it
    // and fails with it.
    test.runtime().inject_sync_failures(1);
    bounded(s.put_unconfirmed("u".into(), "v".into()))
        .await
        .unwrap();
    support::wait_until("the failing sync ran", || {
        test.runtime().injected_sync_failures_left() == 0
    })
    .await;
    test.runtime().inject_sync_failures(1);
    let err = bounded(s.put("c".into(), "v".into())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err:?}");
}

#[tokio::test]
async fn fsync_each_commit_mode_gives_the_same_results() {
    let test = TestRuntime::start(|b| b.durability(DurabilityMode::FsyncEachCommit));
    let s = store(&test, "slow");
    for n in 0..5 {
        s.record(n).await.unwrap();
    }
    assert_eq!(s.ledger().await.unwrap(), [0, 1, 2, 3, 4]);
    bounded(s.unconfirmed_then_sync("u".into())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_to_one_object_all_land() {
    let test = TestRuntime::start(|b| b);
    let s = store(&test, "hot");
    let calls: Vec<_> = (0..2_000).map(|n| s.record(n)).collect();
    for call in calls {
        bounded(call).await.unwrap();
    }
    let ledger = s.ledger().await.unwrap();
    assert_eq!(ledger.len(), 2_000);
    assert_eq!(s.kv_numbers().await.unwrap().len(), 2_000);
}

#[tokio::test]
async fn unsigned_integers_bind_with_a_range_check() {
    let test = TestRuntime::start(|b| b);
    let s = store(&test, "unsigned");
    let max = u64::try_from(i64::MAX).unwrap();
    assert_eq!(s.unsigned_round_trip(7).await.unwrap(), (7, 7));
    assert_eq!(s.unsigned_round_trip(max).await.unwrap(), (max, max));
    let err = bounded(s.unsigned_round_trip(max + 1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err:?}");
    assert!(
        err.message()
            .contains("does not fit in SQLite's 64-bit signed INTEGER"),
        "{err}"
    );
    assert!(!err.is_reset());
    assert_eq!(s.unsigned_round_trip(1).await.unwrap(), (1, 1));
}
