//! Section 3 of the checklist: the object's `State` (the WebSocket parts are in
//! `durable-server`'s `conformance_websockets`).

use std::time::Duration;

use durable_objects::http;
use durable_objects::prelude::*;
use durable_objects::testing::run_in_durable_object;

use super::{spec, spec_env, spec_env_with};

#[tokio::test]
async fn spec_3_1_a_class_is_a_constructor_and_handlers_and_a_missing_handler_says_so() {
    let test = spec_env();
    // `NoAlarm` implements no `fetch`: calling it is an error naming the handler.
    let stub = test
        .env()
        .namespace::<super::NoAlarm>("NO_ALARM")
        .unwrap()
        .get_by_name("x");
    let request = http::Request::get("http://o/").body(Body::empty()).unwrap();
    let error = stub.fetch(request).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotImplemented);
    assert!(error.message().contains("fetch"), "{error}");
}

#[tokio::test]
async fn spec_3_2_the_state_gives_the_id_and_the_storage() {
    let test = spec_env();
    let stub = spec(&test, "s");
    let (id, written) = run_in_durable_object(&stub, |_, state| async move {
        state.storage().kv().put("k", &1).unwrap();
        (
            state.id().clone(),
            state.storage().kv().get::<i64>("k").unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(&id, stub.id());
    assert_eq!(written, Some(1));
}

#[tokio::test]
async fn spec_3_3_work_spawned_by_the_object_runs_after_its_reply() {
    // `State::spawn` is `waitUntil`: the task keeps running after the call returned.
    let test = spec_env();
    let stub = spec(&test, "s");
    run_in_durable_object(&stub, |_, state| async move {
        let storage = state.storage();
        state
            .spawn(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let _ = storage.kv().put("later", &1);
            })
            .unwrap();
    })
    .await
    .unwrap();
    while stub.get("later".into()).await.unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn spec_3_4_block_concurrency_while_delivers_no_other_event() {
    let test = spec_env();
    let stub = spec(&test, "b");
    let blocking = tokio::spawn({
        let stub = stub.clone();
        async move { stub.block_for(50).await }
    });
    // Wait until the block started, then send a call: it runs only after the block.
    loop {
        let log = run_in_durable_object(&stub, |object, _| async move {
            object.log_after(String::new(), 0).await.unwrap()
        })
        .await;
        match log {
            Ok(log) if log.iter().any(|e| e == "block start") => {
                assert!(
                    log.iter().any(|e| e == "block end"),
                    "ran inside the block: {log:?}"
                );
                break;
            }
            _ => tokio::task::yield_now().await,
        }
    }
    blocking.await.unwrap().unwrap();
}

#[tokio::test]
async fn spec_3_5_a_failed_block_resets_the_object() {
    let test = spec_env();
    let stub = spec(&test, "b");
    assert_eq!(stub.call().await.unwrap(), 1);
    let error = stub.block_and_fail().await.unwrap_err();
    assert!(error.is_reset(), "{error}");
    assert_eq!(stub.call().await.unwrap(), 1, "a fresh instance");
}

#[tokio::test]
async fn spec_3_6_a_block_past_its_timeout_resets_the_object() {
    let test =
        spec_env_with(|runtime| runtime.block_concurrency_timeout(Duration::from_millis(50)));
    let stub = spec(&test, "b");
    let error = stub.block_forever().await.unwrap_err();
    assert!(error.is_reset(), "{error}");
    assert_eq!(stub.call().await.unwrap(), 1);
    assert_eq!(
        durable_objects::limits::BLOCK_CONCURRENCY_TIMEOUT_MS,
        30_000,
        "the default is Cloudflare's"
    );
}

#[tokio::test]
async fn spec_3_7_blocks_nest_64_deep_and_no_deeper() {
    let test = spec_env();
    let stub = spec(&test, "n");
    assert_eq!(stub.nest(64).await.unwrap(), 64);
    let error = stub.nest(65).await.unwrap_err();
    assert!(error.message().contains("nested"), "{error}");
}

#[tokio::test]
async fn spec_3_8_abort_resets_drops_the_turns_writes_and_tells_the_caller_why() {
    let test = spec_env();
    let stub = spec(&test, "a");
    stub.call().await.unwrap();
    let error = stub
        .put_then_abort("k".into(), Some("enough".into()))
        .await
        .unwrap_err();
    assert!(error.is_reset(), "{error}");
    assert!(error.message().contains("enough"), "{error}");
    assert_eq!(
        stub.get("k".into()).await.unwrap(),
        None,
        "the write was discarded"
    );
    assert_eq!(stub.call().await.unwrap(), 1);
    let error = stub.put_then_abort("k".into(), None).await.unwrap_err();
    assert!(error.is_reset(), "{error}");
}
