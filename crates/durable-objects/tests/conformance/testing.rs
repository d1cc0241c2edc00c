//! Sections 9, 10 and 12 of the checklist: the test helpers, the Rust API names users know
//! from workers-rs, and the pain points users reported.

use std::time::Duration;

use durable_objects::prelude::*;
use durable_objects::storage::ListOptions;
use durable_objects::testing::{
    EvictSockets, abort_all, evict, evict_all, list_durable_object_ids, run_durable_object_alarm,
    run_in_durable_object,
};

use super::{spec, spec_env};

#[tokio::test]
async fn spec_9_2_run_in_durable_object_runs_inside_the_object() {
    let test = spec_env();
    let stub = spec(&test, "t");
    stub.call().await.unwrap();
    let calls = run_in_durable_object(&stub, |object, _| async move { object.call().await })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(calls, 2, "the same instance the stub reached");
}

#[tokio::test]
async fn spec_9_3_run_durable_object_alarm_deletes_then_runs_the_alarm() {
    let test = spec_env();
    let stub = spec(&test, "t");
    assert!(!run_durable_object_alarm(&stub).await.unwrap());
    stub.arm(test.clock().now_ms() + 3_600_000, vec![])
        .await
        .unwrap();
    assert!(run_durable_object_alarm(&stub).await.unwrap());
    assert_eq!(stub.alarm_runs().await.unwrap().len(), 1);
    assert_eq!(stub.get_alarm().await.unwrap(), None);
}

#[tokio::test]
async fn spec_9_4_evict_evict_all_abort_all_and_list_ids() {
    let test = spec_env();
    let ns = test.env().namespace::<super::Spec>("SPEC").unwrap();
    let a = ns.get_by_name("a");
    a.put("k".into(), 1).await.unwrap();
    ns.get_by_name("b").call().await.unwrap();
    assert!(evict(&a, EvictSockets::Hibernate).await.unwrap());
    assert_eq!(test.runtime().active_objects(), 1);
    evict_all(&test.env(), EvictSockets::Close).await.unwrap();
    assert_eq!(test.runtime().active_objects(), 0);
    a.call().await.unwrap();
    assert_eq!(abort_all(&test.env()).await.unwrap(), 1);
    // Only `a` wrote: only `a` has storage.
    assert_eq!(
        list_durable_object_ids(&ns).unwrap(),
        vec![ns.id_from_name("a")]
    );
}

#[tokio::test]
async fn spec_9_5_and_12_4_every_test_env_has_its_own_storage() {
    let first = spec_env();
    let second = spec_env();
    spec(&first, "shared-name")
        .put("k".into(), 1)
        .await
        .unwrap();
    assert_eq!(
        spec(&second, "shared-name").get("k".into()).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn spec_9_6_a_test_seeds_and_reads_sql_storage_directly() {
    let test = spec_env();
    let stub = spec(&test, "seeded");
    let count = run_in_durable_object(&stub, |_, state| async move {
        let sql = state.storage().sql();
        sql.exec("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2)", ())
            .unwrap();
        sql.exec("SELECT count(*) AS n FROM t", ())
            .unwrap()
            .one()
            .unwrap()
            .get::<i64>("n")
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(count, 2);
}

#[tokio::test]
async fn spec_10_4_and_10_5_the_storage_api_has_the_workers_rs_names() {
    let test = spec_env();
    let stub = spec(&test, "names");
    let ok = run_in_durable_object(&stub, |_, state| async move {
        let storage = state.storage();
        storage.put("a", &1).await?;
        storage.put_multiple(&[("b", 2), ("c", 3)]).await?;
        let one: Option<i64> = storage.get("a").await?;
        let many = storage.get_multiple::<i64>(&["a", "b"]).await?;
        let listed = storage
            .list::<i64>(
                ListOptions::new()
                    .start("a")
                    .end("c")
                    .reverse(true)
                    .limit(5),
            )
            .await?;
        let deleted = storage.delete("a").await?;
        let deleted_many = storage.delete_multiple(&["b", "c"]).await?;
        storage.set_alarm(4_000_000_000_000).await?;
        let alarm = storage.get_alarm().await?;
        storage.delete_alarm().await?;
        storage
            .transaction(|txn| async move { txn.put("t", &1).await })
            .await?;
        let sql = storage.sql();
        let cursor = sql.exec("SELECT 1 AS one", ())?;
        let names = cursor.column_names().to_vec();
        let size = sql.database_size()?;
        storage.delete_all().await?;
        Ok::<_, Error>(
            one == Some(1)
                && many.len() == 2
                && listed.len() == 2
                && deleted
                && deleted_many == 2
                && alarm.is_some()
                && names == ["one"]
                && size > 0,
        )
    })
    .await
    .unwrap()
    .unwrap();
    assert!(ok);
}

#[tokio::test]
async fn spec_10_6_the_caller_side_has_the_workers_rs_shape() {
    let test = spec_env();
    let env: Env = test.env();
    let ns: Namespace<super::Spec> = env.namespace("SPEC").unwrap();
    let id: ObjectId = ns.id_from_name("x");
    assert_eq!(id.name(), Some("x"));
    assert_eq!(format!("{id}").len(), 64, "Display is the hex form");
    let stub: Stub<super::Spec> = ns.get(&id);
    assert_eq!(stub.call().await.unwrap(), 1);
    // A binding of the wrong class is refused by name.
    let error = env.namespace::<super::NoAlarm>("SPEC").unwrap_err();
    assert!(error.message().contains("SPEC"), "{error}");
    let error = env.namespace::<super::Spec>("MISSING").unwrap_err();
    assert!(error.message().contains("MISSING"), "{error}");
}

#[tokio::test]
async fn spec_12_5_objects_can_be_listed() {
    let test = spec_env();
    let ns = test.env().namespace::<super::Spec>("SPEC").unwrap();
    for name in ["x", "y"] {
        ns.get_by_name(name).put("k".into(), 1).await.unwrap();
    }
    assert_eq!(list_durable_object_ids(&ns).unwrap().len(), 2);
}

#[tokio::test]
async fn spec_12_11_nothing_is_lost_when_an_idle_object_is_evicted() {
    let test = spec_env();
    let stub = spec(&test, "kept");
    stub.put("k".into(), 7).await.unwrap();
    test.advance(Duration::from_secs(70)).await.unwrap();
    assert_eq!(test.runtime().active_objects(), 0);
    assert_eq!(stub.get("k".into()).await.unwrap(), Some(7));
}
