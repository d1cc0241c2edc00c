//! Typed RPC through stubs: concurrency, ordering, both encodings, errors, object-to-object
//! calls and `fetch`.
#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions unwrap too.

mod support;

use std::sync::Arc;

use durable_objects::prelude::*;
use durable_objects::{ErrorKind, RpcCall, http};
use support::objects::{Bare, Caller, Probe, Shape, Web, constructions};
use support::{TestRuntime, bounded};

fn assert_shareable<T: Send + Sync + Clone + 'static>() {}
fn assert_send<T: Send + 'static>() {}

#[test]
fn stubs_env_and_namespaces_can_be_shared_across_threads() {
    assert_shareable::<Stub<Probe>>();
    assert_shareable::<Namespace<Probe>>();
    assert_shareable::<Env>();
    assert_send::<RpcCall<i64>>();
    assert_send::<Runtime>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_concurrent_calls_reach_one_instance() {
    let test = TestRuntime::start(|b| b.shards(2));
    let stub = test
        .env()
        .namespace::<Probe>("PROBE")
        .unwrap()
        .get_by_name("hot");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let stub = stub.clone();
        tasks.spawn(async move {
            // Every call is sent when made, so these 100 are in flight together.
            let calls: Vec<RpcCall<i64>> = (0..100).map(|_| stub.add(1)).collect();
            let serials: Vec<RpcCall<u64>> = (0..5).map(|_| stub.serial()).collect();
            for call in calls {
                call.await.unwrap();
            }
            let mut seen = Vec::new();
            for serial in serials {
                seen.push(serial.await.unwrap());
            }
            seen
        });
    }
    let mut serials = Vec::new();
    while let Some(joined) = bounded(tasks.join_next()).await {
        serials.extend(joined.unwrap());
    }
    assert_eq!(bounded(stub.value()).await.unwrap(), 10_000);
    serials.dedup();
    assert_eq!(serials.len(), 1, "every call saw the same instance");
    assert_eq!(constructions(stub.id()), 1, "the constructor ran once");
}

async fn ordered_through_one_stub(encode: bool) {
    let test = TestRuntime::start(|b| b.encode_rpc(encode));
    let stub = test
        .env()
        .namespace::<Probe>("PROBE")
        .unwrap()
        .get_by_name("order");
    let calls: Vec<RpcCall<()>> = (0..1_000).map(|i| stub.push(i)).collect();
    // Await in reverse: the order of delivery was fixed when the calls were made.
    for call in calls.into_iter().rev() {
        bounded(call).await.unwrap();
    }
    let log = bounded(stub.log()).await.unwrap();
    let expected: Vec<String> = (0..1_000).map(|i: u64| i.to_string()).collect();
    assert_eq!(log, expected);
}

#[tokio::test]
async fn calls_through_one_stub_arrive_in_the_order_made() {
    ordered_through_one_stub(false).await;
}

#[tokio::test]
async fn calls_through_one_stub_arrive_in_order_when_encoded() {
    ordered_through_one_stub(true).await;
}

/// Everything a caller can observe of a scenario, to compare the two RPC paths.
async fn observe(encode: bool) -> Vec<String> {
    let test = TestRuntime::start(|b| b.encode_rpc(encode));
    let env = test.env();
    let probe = env.namespace::<Probe>("PROBE").unwrap().get_by_name("same");
    let caller = env.namespace::<Caller>("CALLER").unwrap().get_by_name("c");
    let shape = Shape {
        name: "tri".into(),
        sides: vec![3, 4, 5],
        tag: None,
    };
    let mut seen = vec![
        format!("{:?}", probe.add(5).await),
        format!("{:?}", probe.add(-2).await),
        format!("{:?}", probe.echo(shape.clone(), 2).await),
        format!("{:?}", probe.echo(shape, 0).await),
        format!("{:?}", probe.fail("boom".into()).await),
        format!("{:?}", probe.record("x".into()).await),
        format!("{:?}", probe.log().await),
        format!("{:?}", probe.own_name().await),
        format!("{:?}", caller.add_to_probe("same".into(), 10).await),
        format!("{:?}", caller.failing_probe("other".into()).await),
        format!(
            "{:?}",
            probe.raw().call::<(), ()>("no_such_method", ()).await
        ),
    ];
    let bare = env.namespace::<Bare>("BARE").unwrap().get_by_name("b");
    seen.push(format!(
        "{:?}",
        bare.raw().call::<(u8,), u8>("anything", (1,)).await
    ));
    let reset = probe.panic_now("kaboom".into()).await.unwrap_err();
    seen.push(format!(
        "{:?} {} {}",
        reset.kind(),
        reset.is_reset(),
        reset.is_remote()
    ));
    seen
}

#[tokio::test]
async fn encoded_and_direct_calls_agree() {
    let direct = observe(false).await;
    let encoded = observe(true).await;
    assert_eq!(direct, encoded);
    // And the scenario really covered values and errors.
    assert_eq!(direct[0], "Ok(5)");
    assert!(
        direct[4].contains("boom") && direct[4].contains("remote: true"),
        "{}",
        direct[4]
    );
    assert!(
        direct[10].contains("does not implement the rpc method \\\"no_such_method\\\""),
        "{}",
        direct[10]
    );
    assert!(
        direct[11].contains("Bare does not implement"),
        "{}",
        direct[11]
    );
}

#[tokio::test]
async fn user_errors_are_remote_and_not_retryable() {
    let test = TestRuntime::start(|b| b);
    let probe = test
        .env()
        .namespace::<Probe>("PROBE")
        .unwrap()
        .get_by_name("e");
    let err = bounded(probe.fail("room is full".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::User);
    assert_eq!(err.message(), "room is full");
    assert!(err.is_remote());
    assert!(!err.is_retryable() && !err.is_overloaded() && !err.is_reset());
    // A returned error is not a reset: the instance and its state survive.
    probe.add(1).await.unwrap();
    let serial = probe.serial().await.unwrap();
    probe.fail("again".into()).await.unwrap_err();
    assert_eq!(probe.serial().await.unwrap(), serial);
    assert_eq!(probe.value().await.unwrap(), 1);
}

#[tokio::test]
async fn objects_call_other_objects() {
    let test = TestRuntime::start(|b| b.shards(2).var("GREETING", "hi"));
    let env = test.env();
    let caller = env.namespace::<Caller>("CALLER").unwrap().get_by_name("c");
    for name in ["p1", "p2", "p3", "p4"] {
        assert_eq!(
            bounded(caller.add_to_probe(name.into(), 3)).await.unwrap(),
            3
        );
        assert_eq!(
            bounded(caller.add_to_probe(name.into(), 4)).await.unwrap(),
            7
        );
    }
    let probe = env.namespace::<Probe>("PROBE").unwrap().get_by_name("p1");
    assert_eq!(probe.value().await.unwrap(), 7);
    let (message, remote) = caller.failing_probe("p9".into()).await.unwrap();
    assert_eq!((message.as_str(), remote), ("inner", true));
    assert_eq!(
        caller.var("GREETING".into()).await.unwrap().as_deref(),
        Some("hi")
    );
    assert_eq!(caller.var("NOPE".into()).await.unwrap(), None);
}

#[tokio::test]
async fn fetch_reaches_the_object_handler() {
    let test = TestRuntime::start(|b| b);
    let web = test.env().namespace::<Web>("WEB").unwrap().get_by_name("w");
    let request = http::Request::post("http://object/hello")
        .body(Body::from("payload"))
        .unwrap();
    let response = bounded(web.fetch(request)).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::CREATED);
    assert_eq!(
        response.into_body().text().await.unwrap(),
        "POST /hello payload #1"
    );

    let failing = http::Request::get("http://object/fail")
        .body(Body::empty())
        .unwrap();
    let err = bounded(web.fetch(failing)).await.unwrap_err();
    assert!(
        err.is_remote() && err.message().contains("on purpose"),
        "{err:?}"
    );

    let relative = http::Request::get("/relative").body(Body::empty()).unwrap();
    let err = bounded(web.fetch(relative)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("absolute URL"), "{err}");

    // The object is still fine, and counted only the requests that reached it.
    let again = http::Request::get("http://object/x")
        .body(Body::empty())
        .unwrap();
    let response = bounded(web.fetch(again)).await.unwrap();
    assert_eq!(response.into_body().text().await.unwrap(), "GET /x  #3");
}

#[tokio::test]
async fn a_missing_handler_is_a_clear_error() {
    let test = TestRuntime::start(|b| b);
    let bare = test
        .env()
        .namespace::<Bare>("BARE")
        .unwrap()
        .get_by_name("b");
    let request = http::Request::get("http://object/")
        .body(Body::empty())
        .unwrap();
    let err = bounded(bare.fetch(request)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotImplemented);
    assert!(
        err.message()
            .contains("Bare does not implement the `fetch` handler"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stubs_work_from_spawned_tasks_and_threads() {
    let test = TestRuntime::start(|b| b);
    let stub = Arc::new(
        test.env()
            .namespace::<Probe>("PROBE")
            .unwrap()
            .get_by_name("t"),
    );
    let from_task = {
        let stub = Arc::clone(&stub);
        tokio::spawn(async move { stub.add(1).await })
    };
    bounded(from_task).await.unwrap().unwrap();
    let from_thread = {
        let stub = (*stub).clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(stub.add(1))
        })
    };
    assert_eq!(from_thread.join().unwrap().unwrap(), 2);
}

async fn user_errors_carry_code_and_status(encode: bool) {
    let test = TestRuntime::start(|b| b.encode_rpc(encode));
    let probe = test
        .env()
        .namespace::<Probe>("PROBE")
        .unwrap()
        .get_by_name("errors");
    assert_eq!(
        bounded(probe.parse_number(" 42 ".into())).await.unwrap(),
        42
    );
    let parse = bounded(probe.parse_number("forty".into()))
        .await
        .unwrap_err();
    assert_eq!(parse.kind(), ErrorKind::User);
    assert_eq!(parse.message(), "invalid digit found in string");
    let anyhow = bounded(probe.fail_with_anyhow()).await.unwrap_err();
    assert_eq!(anyhow.kind(), ErrorKind::User);
    assert_eq!(anyhow.message(), "saving the report: disk on fire");
    let sold_out = bounded(probe.sold_out()).await.unwrap_err();
    assert!(sold_out.is_remote());
    assert_eq!(sold_out.code(), Some("sold_out"));
    assert_eq!(sold_out.status(), Some(409));
    assert_eq!(sold_out.message(), "the last seat was taken");
}

#[tokio::test]
async fn user_errors_keep_their_code_and_status_across_rpc() {
    user_errors_carry_code_and_status(false).await;
}

#[tokio::test]
async fn user_errors_keep_their_code_and_status_when_encoded() {
    user_errors_carry_code_and_status(true).await;
}
