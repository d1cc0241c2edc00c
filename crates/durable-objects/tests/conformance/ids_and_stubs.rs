//! Sections 1 and 2 of the checklist: namespaces, ids, stubs, `fetch` and RPC.

use std::sync::atomic::Ordering;
use std::time::Duration;

use durable_objects::http;
use durable_objects::prelude::*;
use durable_objects::testing::TestEnv;

use super::classes::{CONSTRUCTED, Shape};
use super::{spec, spec_env, spec_env_with};

fn namespace(test: &TestEnv, binding: &str) -> Namespace<super::Spec> {
    test.env().namespace::<super::Spec>(binding).unwrap()
}

#[tokio::test]
async fn spec_1_1_a_namespace_makes_ids_and_stubs_in_every_way() {
    let test = spec_env();
    let ns = namespace(&test, "SPEC");
    let unique = ns.new_unique_id();
    let named = ns.id_from_name("a");
    let parsed = ns.id_from_string(&named.to_string()).unwrap();
    assert_eq!(parsed, named);
    ns.get(&unique).call().await.unwrap();
    ns.get_by_name("a").call().await.unwrap();
    assert_eq!(ns.class_name(), "Spec");
}

#[tokio::test]
async fn spec_1_2_ids_and_stubs_do_not_create_the_object() {
    let test = spec_env();
    let ns = namespace(&test, "SPEC");
    let before = CONSTRUCTED.load(Ordering::SeqCst);
    let stub = ns.get_by_name("lazy");
    let _other = ns.get(&ns.new_unique_id());
    assert_eq!(test.runtime().active_objects(), 0);
    stub.call().await.unwrap();
    assert!(CONSTRUCTED.load(Ordering::SeqCst) > before);
    assert_eq!(test.runtime().active_objects(), 1);
}

#[tokio::test]
async fn spec_1_3_the_string_form_is_64_lower_hex_digits_and_round_trips() {
    let test = spec_env();
    let ns = namespace(&test, "SPEC");
    for id in [ns.new_unique_id(), ns.id_from_name("x")] {
        let text = id.to_string();
        assert_eq!(text.len(), 64);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(ns.id_from_string(&text).unwrap(), id);
        // Upper case is accepted on input (a decision: the bytes are the same).
        assert_eq!(ns.id_from_string(&text.to_uppercase()).unwrap(), id);
    }
}

#[tokio::test]
async fn spec_1_4_ids_authenticate_themselves_per_namespace() {
    let test = spec_env();
    let ns = namespace(&test, "SPEC");
    let made_up = "ab".repeat(32);
    assert_eq!(
        ns.id_from_string(&made_up).unwrap_err().kind(),
        ErrorKind::InvalidId
    );
    // Two bindings of one class are one namespace; another class is another.
    let other_class = test.env().namespace::<super::NoAlarm>("NO_ALARM").unwrap();
    let foreign = other_class.id_from_name("x").to_string();
    assert!(ns.id_from_string(&foreign).is_err());
    // A stub for a foreign id fails every call.
    let foreign_id = other_class.id_from_name("x");
    let error = ns.get(&foreign_id).call().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidId);
}

#[tokio::test]
async fn spec_1_5_malformed_and_foreign_ids_have_distinct_messages() {
    let test = spec_env();
    let ns = namespace(&test, "SPEC");
    for bad in ["", "abc", &"g".repeat(64), &"a".repeat(65)] {
        let error = ns.id_from_string(bad).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidId, "{bad:?}");
        assert!(error.message().contains("must be 64 hex digits"), "{error}");
    }
    let foreign = test
        .env()
        .namespace::<super::NoAlarm>("NO_ALARM")
        .unwrap()
        .id_from_name("x")
        .to_string();
    let error = ns.id_from_string(&foreign).unwrap_err();
    assert!(
        error.message().contains("not valid for this namespace"),
        "{error}"
    );
}

#[tokio::test]
async fn spec_1_6_id_from_name_is_deterministic_and_namespace_specific() {
    let test = spec_env();
    let ns = namespace(&test, "SPEC");
    assert_eq!(ns.id_from_name("n"), ns.id_from_name("n"));
    assert_ne!(ns.id_from_name("n"), ns.id_from_name("m"));
    let other = test.env().namespace::<super::NoAlarm>("NO_ALARM").unwrap();
    assert_ne!(
        ns.id_from_name("n").as_bytes(),
        other.id_from_name("n").as_bytes()
    );
}

#[tokio::test]
async fn spec_1_7_the_name_is_known_to_the_id_and_to_the_object() {
    let test = spec_env();
    let ns = namespace(&test, "SPEC");
    assert_eq!(ns.id_from_name("room").name(), Some("room"));
    assert_eq!(ns.new_unique_id().name(), None);
    let parsed = ns
        .id_from_string(&ns.id_from_name("room").to_string())
        .unwrap();
    assert_eq!(parsed.name(), None);
    let stub = ns.get_by_name("room");
    assert_eq!(
        stub.name_seen_in_constructor().await.unwrap().as_deref(),
        Some("room")
    );
    // And in the alarm handler.
    let now = test.clock().now_ms();
    stub.arm(now + 10, vec![]).await.unwrap();
    test.advance(Duration::from_millis(10)).await.unwrap();
    let runs = stub.alarm_runs().await.unwrap();
    assert_eq!(runs[0].4.as_deref(), Some("room"));
}

#[tokio::test]
async fn spec_1_8_ids_are_equal_when_their_bytes_are() {
    let test = spec_env();
    let ns = namespace(&test, "SPEC");
    let named = ns.id_from_name("x");
    let parsed = ns.id_from_string(&named.to_string()).unwrap();
    // One carries a name, the other not: still equal.
    assert_eq!(named, parsed);
    assert_ne!(named, ns.new_unique_id());
}

#[tokio::test]
async fn spec_1_12_get_by_name_is_get_of_id_from_name() {
    let test = spec_env();
    let ns = namespace(&test, "SPEC");
    ns.get_by_name("same").put("k".into(), 1).await.unwrap();
    let via_id = ns.get(&ns.id_from_name("same"));
    assert_eq!(via_id.get("k".into()).await.unwrap(), Some(1));
}

#[tokio::test]
async fn spec_1_13_one_node_owns_a_data_folder_so_a_named_object_has_one_instance() {
    let test = spec_env();
    let second = Runtime::builder()
        .data_dir(test.data_dir())
        .bind::<super::Spec>("SPEC")
        .build()
        .unwrap_err();
    assert!(
        matches!(second, durable_objects::StartError::Locked { .. }),
        "{second}"
    );
}

#[tokio::test]
async fn spec_1_14_a_stub_knows_its_id_and_name() {
    let test = spec_env();
    let ns = namespace(&test, "SPEC");
    let stub = ns.get_by_name("s");
    assert_eq!(stub.id(), &ns.id_from_name("s"));
    assert_eq!(stub.name(), Some("s"));
    assert_eq!(ns.get(&ns.new_unique_id()).name(), None);
    assert_eq!(stub.own_id().await.unwrap(), stub.id().to_string());
}

#[tokio::test]
async fn spec_2_1_stub_fetch_needs_an_absolute_url() {
    let test = spec_env();
    let stub = spec(&test, "f");
    let request = http::Request::get("http://object/hello")
        .body(Body::empty())
        .unwrap();
    let response = stub.fetch(request).await.unwrap();
    assert_eq!(response.into_body().bytes().await.unwrap(), "/hello");
    let relative = http::Request::get("/hello").body(Body::empty()).unwrap();
    let error = stub.fetch(relative).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    assert!(error.message().contains("absolute URL"), "{error}");
}

#[tokio::test]
async fn spec_2_2_an_error_in_fetch_rejects_the_call_but_a_500_is_a_response() {
    let test = spec_env();
    let stub = spec(&test, "f");
    let failing = http::Request::get("http://o/fail")
        .body(Body::empty())
        .unwrap();
    let error = stub.fetch(failing).await.unwrap_err();
    assert!(error.is_remote());
    assert!(error.message().contains("fetch failed on purpose"));
    let five_hundred = http::Request::get("http://o/500")
        .body(Body::empty())
        .unwrap();
    assert_eq!(stub.fetch(five_hundred).await.unwrap().status(), 500);
}

#[tokio::test]
async fn spec_2_3_public_async_methods_are_callable_through_the_stub() {
    let test = spec_env();
    let stub = spec(&test, "r");
    assert_eq!(stub.call().await.unwrap(), 1);
    assert_eq!(stub.call().await.unwrap(), 2);
}

#[tokio::test]
async fn spec_2_4_an_unknown_method_is_an_error_naming_it() {
    let test = spec_env();
    let stub = spec(&test, "r");
    let error = stub
        .raw()
        .call::<(), ()>("no_such_method", ())
        .await
        .unwrap_err();
    assert!(error.message().contains("no_such_method"), "{error}");
    // Reserved handler names cannot be RPC methods: a compile error
    // (`tests/ui/fail/reserved_name.rs`).
}

#[tokio::test]
async fn spec_2_5_serde_values_cross_rpc_intact() {
    let test = spec_env_with(|runtime| runtime.encode_rpc(true));
    let stub = spec(&test, "r");
    let shape = Shape {
        name: "ünïcode".into(),
        tags: vec!["a".into(), String::new()],
        weight: -0.5,
        parts: [("x".to_owned(), Some(i64::MIN)), ("y".to_owned(), None)]
            .into_iter()
            .collect(),
        raw: serde_bytes::ByteBuf::from(vec![0, 255, 1]),
    };
    assert_eq!(stub.echo(shape.clone()).await.unwrap(), shape);
}

#[tokio::test]
async fn spec_2_6_rpc_messages_over_32_mib_are_refused() {
    let test = spec_env_with(|runtime| runtime.encode_rpc(true));
    let stub = spec(&test, "r");
    let limit = durable_objects::limits::MAX_RPC_MESSAGE_BYTES;
    let error = stub
        .take_bytes(serde_bytes::ByteBuf::from(vec![0u8; limit + 1]))
        .await
        .unwrap_err();
    assert!(error.exceeded_limit().is_some(), "{error}");
    let error = stub.bytes(limit + 1).await.unwrap_err();
    assert!(error.exceeded_limit().is_some(), "{error}");
    assert_eq!(stub.bytes(1024).await.unwrap().len(), 1024);
}

#[tokio::test]
async fn spec_2_8_calls_on_one_stub_arrive_in_the_order_made() {
    let test = spec_env();
    let stub = spec(&test, "order");
    // Each call is sent when it is made, before it is awaited.
    let calls: Vec<_> = (0..20).map(|n| stub.log_after(n.to_string(), 0)).collect();
    let mut last = Vec::new();
    for call in calls {
        last = call.await.unwrap();
    }
    let expected: Vec<String> = (0..20).map(|n| n.to_string()).collect();
    assert_eq!(last, expected);
}

#[tokio::test]
async fn spec_2_9_errors_say_whether_they_are_remote_retryable_overloaded_or_a_reset() {
    let test = spec_env();
    let stub = spec(&test, "e");
    let user = stub.put_then_fail("k".into()).await.unwrap_err();
    assert!(user.is_remote() && !user.is_reset() && !user.is_retryable());
    let reset = stub.put_then_panic("k2".into()).await.unwrap_err();
    assert!(reset.is_reset(), "{reset}");
    let mut test = test;
    let old = spec(&test, "e");
    test.restart().unwrap();
    let gone = old.call().await.unwrap_err();
    assert!(gone.is_retryable(), "{gone}");
}

#[tokio::test]
async fn spec_2_10_an_object_with_too_many_queued_calls_is_overloaded() {
    let test = spec_env_with(|runtime| runtime.max_queued_events(2));
    let stub = spec(&test, "hot");
    let calls: Vec<_> = (0..50).map(|_| stub.log_after("x".into(), 200)).collect();
    let mut overloaded = 0;
    for call in calls {
        if let Err(error) = call.await {
            assert!(error.is_overloaded(), "{error}");
            assert!(error.message().contains("overloaded"), "{error}");
            overloaded += 1;
        }
    }
    assert!(overloaded > 0);
}

#[tokio::test]
async fn spec_2_13_an_object_reaches_its_own_class_through_its_env() {
    let test = spec_env();
    let stub = spec(&test, "a");
    assert_eq!(stub.call_sibling("b".into()).await.unwrap(), 1);
    assert_eq!(spec(&test, "b").call().await.unwrap(), 2);
}

#[tokio::test]
async fn spec_12_10_a_stub_keeps_working_after_an_error() {
    let test = spec_env();
    let stub = spec(&test, "s");
    assert!(stub.put_then_panic("k".into()).await.is_err());
    assert!(stub.put_then_fail("k".into()).await.is_err());
    assert_eq!(stub.call().await.unwrap(), 1);
}
