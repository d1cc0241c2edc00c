//! Sections 4C–4G of the checklist: KV (sync and async), transactions, `sync()`,
//! `delete_all` and the storage limits.

use std::time::Duration;

use durable_objects::prelude::*;
use durable_objects::storage::{ListOptions, PutOptions};
use durable_objects::testing::run_in_durable_object;

use super::{spec, spec_env, with_storage};

#[tokio::test]
async fn spec_4_17_sync_kv_gets_puts_deletes_and_lists_in_key_order() {
    let test = spec_env();
    let (missing, existed, absent, listed) = with_storage(&spec(&test, "k"), |storage| {
        let kv = storage.kv();
        let missing = kv.get::<i64>("nope").unwrap();
        for key in ["b", "a", "é", "c"] {
            kv.put(key, &key.len()).unwrap();
        }
        let existed = kv.delete("c").unwrap();
        let absent = kv.delete("c").unwrap();
        let listed: Vec<String> = kv
            .list::<usize>(ListOptions::new())
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        (missing, existed, absent, listed)
    })
    .await;
    assert_eq!(missing, None);
    assert!(existed && !absent);
    assert_eq!(listed, ["a", "b", "é"], "UTF-8 byte order");
}

#[tokio::test]
async fn spec_4_18_both_kv_apis_share_one_table() {
    let test = spec_env();
    let seen = run_in_durable_object(&spec(&test, "k"), |_, state| async move {
        let storage = state.storage();
        storage.put("async", &1).await.unwrap();
        storage.kv().put("sync", &2).unwrap();
        (
            storage.kv().get::<i64>("async").unwrap(),
            storage.get::<i64>("sync").await.unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(seen, (Some(1), Some(2)));
}

#[tokio::test]
async fn spec_4_19_batch_reads_return_found_keys_and_deletes_count() {
    let test = spec_env();
    let (found, deleted) = run_in_durable_object(&spec(&test, "k"), |_, state| async move {
        let storage = state.storage();
        storage
            .put_multiple(&[("b", 2), ("a", 1), ("c", 3)])
            .await
            .unwrap();
        let found = storage
            .get_multiple::<i64>(&["c", "missing", "a"])
            .await
            .unwrap();
        let deleted = storage.delete_multiple(&["a", "b", "zzz"]).await.unwrap();
        (found.into_iter().collect::<Vec<_>>(), deleted)
    })
    .await
    .unwrap();
    assert_eq!(found, vec![("a".to_owned(), 1), ("c".to_owned(), 3)]);
    assert_eq!(deleted, 2);
}

#[tokio::test]
async fn spec_4_20_batches_hold_at_most_128_keys() {
    let test = spec_env();
    let (ok, refused, untouched) =
        run_in_durable_object(&spec(&test, "k"), |_, state| async move {
            let storage = state.storage();
            let keys: Vec<String> = (0..129).map(|i| format!("k{i:03}")).collect();
            let entries = |n: usize| -> Vec<(&str, i64)> {
                keys[..n].iter().map(|k| (k.as_str(), 1)).collect()
            };
            let ok = storage.put_multiple(&entries(128)).await.is_ok();
            let refused = storage.put_multiple(&entries(129)).await.unwrap_err();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let read_refused = storage.get_multiple::<i64>(&refs).await.is_err();
            let untouched = storage.get::<i64>("k128").await.unwrap().is_none() && read_refused;
            (ok, refused, untouched)
        })
        .await
        .unwrap();
    assert!(ok);
    assert!(refused.message().contains("128"), "{refused}");
    assert!(untouched, "a refused batch writes nothing");
}

#[tokio::test]
async fn spec_4_21_keys_up_to_2048_bytes_and_entries_up_to_2_mb() {
    let test = spec_env();
    let results = with_storage(&spec(&test, "k"), |storage| {
        let kv = storage.kv();
        vec![
            kv.put(&"k".repeat(2_048), &1).is_ok(),
            kv.put(&"k".repeat(2_049), &1).is_err(),
            kv.put("big", &serde_bytes::ByteBuf::from(vec![0u8; 1_900_000]))
                .is_ok(),
            kv.put("huge", &serde_bytes::ByteBuf::from(vec![0u8; 2_100_000]))
                .is_err(),
        ]
    })
    .await;
    assert_eq!(results, [true, true, true, true]);
}

#[tokio::test]
async fn spec_4_22_list_options_select_ranges_and_refuse_nonsense() {
    let test = spec_env();
    let (ranges, both, zero) = with_storage(&spec(&test, "k"), |storage| {
        let kv = storage.kv();
        for key in ["a", "b", "c", "d", "pa", "pb"] {
            kv.put(key, &0).unwrap();
        }
        let keys = |options: ListOptions| -> Vec<String> {
            kv.list::<i64>(options)
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        let ranges = vec![
            keys(ListOptions::new().start("b").end("d")),
            keys(ListOptions::new().start_after("b").end("d")),
            keys(ListOptions::new().prefix("p")),
            keys(ListOptions::new().reverse(true).limit(2)),
            keys(ListOptions::new().start("b").end("d").reverse(true)),
            keys(ListOptions::new().start("z")),
        ];
        let both = kv
            .list::<i64>(ListOptions::new().start("a").start_after("a"))
            .unwrap_err();
        let zero = kv.list::<i64>(ListOptions::new().limit(0)).unwrap_err();
        (ranges, both, zero)
    })
    .await;
    let expected: Vec<Vec<&str>> = vec![
        vec!["b", "c"],
        vec!["c"],
        vec!["pa", "pb"],
        vec!["pb", "pa"],
        vec!["c", "b"],
        vec![],
    ];
    assert_eq!(ranges, expected);
    assert!(both.message().contains("start"), "{both}");
    assert!(zero.message().contains("limit"), "{zero}");
}

#[tokio::test]
async fn spec_4_23_an_unconfirmed_write_does_not_hold_the_reply() {
    let test = spec_env();
    let stub = spec(&test, "k");
    stub.call().await.unwrap();
    test.stall_syncs();
    // A confirmed write's reply waits for its fsync; an unconfirmed one's does not.
    let unconfirmed = run_in_durable_object(&stub, |_, state| async move {
        state
            .storage()
            .put_with("fast", &1, PutOptions::unconfirmed())
            .await
            .unwrap();
    });
    tokio::time::timeout(Duration::from_secs(20), unconfirmed)
        .await
        .expect("the reply left before the fsync")
        .unwrap();
    let confirmed = tokio::spawn({
        let stub = stub.clone();
        async move { stub.put("slow".into(), 1).await }
    });
    tokio::task::yield_now().await;
    assert!(!confirmed.is_finished());
    test.release_syncs();
    confirmed.await.unwrap().unwrap();
}

#[tokio::test]
async fn spec_4_24_any_serde_value_round_trips() {
    type Mixed = (
        Vec<Option<u8>>,
        std::collections::BTreeMap<String, (f64, bool)>,
        String,
    );
    let test = spec_env();
    let value: Mixed = (
        vec![Some(1), None],
        [("k".to_owned(), (0.25, true))].into_iter().collect(),
        "ünï".into(),
    );
    let expected = value.clone();
    let back = with_storage(&spec(&test, "k"), move |storage| {
        storage.kv().put("v", &value).unwrap();
        storage.kv().get::<Mixed>("v").unwrap()
    })
    .await;
    assert_eq!(back, Some(expected));
}

#[tokio::test]
async fn spec_4_25_the_writes_of_a_turn_commit_together_or_not_at_all() {
    let test = spec_env();
    let stub = spec(&test, "k");
    // The panic comes after the write, in the same turn: the write is not kept.
    assert!(
        stub.put_then_panic("lost".into())
            .await
            .unwrap_err()
            .is_reset()
    );
    assert_eq!(stub.get("lost".into()).await.unwrap(), None);
    // An error (not a panic) keeps the turn's writes, as on Cloudflare.
    assert!(stub.put_then_fail("kept".into()).await.is_err());
    assert_eq!(stub.get("kept".into()).await.unwrap(), Some(1));
}

#[tokio::test]
async fn spec_4_26_transaction_rolls_back_on_error_without_a_reset_and_nests() {
    let test = spec_env();
    let stub = spec(&test, "k");
    stub.call().await.unwrap();
    let (failed, rolled, nested) = run_in_durable_object(&stub, |_, state| async move {
        let storage = state.storage();
        let failed = storage
            .transaction(|txn| async move {
                txn.kv().put("a", &1)?;
                Err::<(), _>(Error::user("no"))
            })
            .await
            .is_err();
        let rolled = storage
            .transaction(|txn| async move {
                txn.kv().put("b", &1)?;
                txn.rollback();
                Ok(())
            })
            .await
            .is_ok();
        let outer = storage.clone();
        let nested = storage
            .transaction(|_| async move {
                outer
                    .transaction(|inner| async move { inner.kv().put("c", &1) })
                    .await?;
                Err::<(), _>(Error::user("the outer one fails"))
            })
            .await
            .is_err();
        let kv = storage.kv();
        let found: Vec<bool> = ["a", "b", "c"]
            .iter()
            .map(|k| kv.get::<i64>(k).unwrap().is_some())
            .collect();
        assert_eq!(found, [false, false, false]);
        (failed, rolled, nested)
    })
    .await
    .unwrap();
    assert!(failed && rolled && nested);
    assert_eq!(stub.call().await.unwrap(), 2, "no reset");
}

#[tokio::test]
async fn spec_4_27_transaction_sync_returns_rolls_back_and_nests() {
    let test = spec_env();
    let (value, kept) = with_storage(&spec(&test, "k"), |storage| {
        let value = storage
            .transaction_sync(|| {
                storage.kv().put("outer", &1)?;
                let inner = storage.transaction_sync(|| {
                    storage.kv().put("inner", &1)?;
                    Err::<(), _>(Error::user("inner fails"))
                });
                assert!(inner.is_err());
                Ok(7)
            })
            .unwrap();
        let kv = storage.kv();
        (
            value,
            (
                kv.get::<i64>("outer").unwrap().is_some(),
                kv.get::<i64>("inner").unwrap().is_some(),
            ),
        )
    })
    .await;
    assert_eq!(value, 7);
    assert_eq!(
        kept,
        (true, false),
        "only the failed inner part was rolled back"
    );
}

#[tokio::test]
async fn spec_4_28_sync_waits_for_earlier_writes_to_be_durable() {
    let test = spec_env();
    let stub = spec(&test, "k");
    stub.call().await.unwrap();
    test.stall_syncs();
    let synced = tokio::spawn({
        let stub = stub.clone();
        async move {
            run_in_durable_object(&stub, |_, state| async move {
                state
                    .storage()
                    .put_with("u", &1, PutOptions::unconfirmed())
                    .await
                    .unwrap();
                state.storage().sync().await
            })
            .await
        }
    });
    tokio::task::yield_now().await;
    assert!(!synced.is_finished());
    test.release_syncs();
    synced.await.unwrap().unwrap().unwrap();
    // With nothing pending, sync returns at once.
    with_storage(&stub, |_| ()).await;
}

#[tokio::test]
async fn spec_4_29_delete_all_deletes_sql_kv_and_the_alarm() {
    let test = spec_env();
    let stub = spec(&test, "k");
    stub.arm(test.clock().now_ms() + 60_000, vec![])
        .await
        .unwrap();
    let left = run_in_durable_object(&stub, |_, state| async move {
        let storage = state.storage();
        storage.sql().exec("CREATE TABLE t (x)", ()).unwrap();
        storage.kv().put("k", &1).unwrap();
        storage.delete_all().await.unwrap();
        let tables = storage
            .sql()
            .exec("SELECT name FROM sqlite_master WHERE name = 't'", ())
            .unwrap()
            .raw()
            .count();
        (
            tables,
            storage.kv().get::<i64>("k").unwrap(),
            storage.get_alarm().await.unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(left, (0, None, None));
    assert!(
        test.runtime()
            .scheduled_alarm::<super::Spec>(stub.id())
            .is_none()
    );
    test.advance(Duration::from_secs(60)).await.unwrap();
    assert!(stub.alarm_runs().await.unwrap().is_empty());
}

#[tokio::test]
async fn spec_4_30_an_object_may_grow_to_10_gb_by_default() {
    let test = spec_env();
    assert_eq!(test.runtime().config().max_database_bytes, 10_000_000_000);
}

#[tokio::test]
async fn spec_4_31_bookmarks_sort_in_time_order_and_restore_on_the_next_session() {
    let test = spec_env();
    let stub = spec(&test, "pitr");
    let mut marks = Vec::new();
    for n in 0..3i64 {
        let mark: Result<String> = run_in_durable_object(&stub, move |_, state| async move {
            state.storage().kv().put("n", &n)?;
            state.storage().get_current_bookmark().await
        })
        .await
        .unwrap();
        marks.push(mark.unwrap());
        test.clock().advance_ms(1_000);
    }
    let mut sorted = marks.clone();
    sorted.sort();
    assert_eq!(sorted, marks);
    // Within the last 30 days: by time; older: refused.
    let now = test.clock().now_ms();
    let (at, old) = run_in_durable_object(&stub, move |_, state| async move {
        let storage = state.storage();
        (
            storage.get_bookmark_for_time(now - 2_000).await,
            storage.get_bookmark_for_time(now - 31 * 86_400_000).await,
        )
    })
    .await
    .unwrap();
    assert_eq!(at.unwrap(), marks[1]);
    assert_eq!(old.unwrap_err().kind(), ErrorKind::InvalidInput);
    // Scheduled, returns the undo bookmark, applied when the object restarts (abort).
    let first = marks[0].clone();
    let undo = run_in_durable_object(&stub, move |_, state| async move {
        state
            .storage()
            .on_next_session_restore_bookmark(&first)
            .await
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(undo, marks[2], "the undo bookmark is the state now");
    test.abort_all().await.unwrap();
    let n = with_storage(&stub, |storage| storage.kv().get::<i64>("n").unwrap()).await;
    assert_eq!(n, Some(0));
}
