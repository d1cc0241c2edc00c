//! Ids and namespaces through the public API, and the environment: bindings, vars, and the
//! errors for unknown or mistyped bindings and a busy data folder.
#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions unwrap too.

mod support;

use std::collections::HashSet;

use durable_objects::prelude::*;
use durable_objects::{RuntimeBuilder, StartError, http};
use support::objects::{Caller, Probe, Web, bind_all, constructions};
use support::{TestRuntime, bounded};

#[tokio::test]
async fn ids_round_trip_through_their_string_form() {
    let test = TestRuntime::start(|b| b);
    let ns = test.env().namespace::<Probe>("PROBE").unwrap();
    let named = ns.id_from_name("alpha");
    assert_eq!(named.name(), Some("alpha"));
    let text = named.to_string();
    assert_eq!(text.len(), 64);
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    let parsed = ns.id_from_string(&text).unwrap();
    assert_eq!(parsed, named);
    assert_eq!(parsed.name(), None);

    let mut seen = HashSet::new();
    for _ in 0..1_000 {
        let id = ns.new_unique_id();
        assert_eq!(id.name(), None);
        assert_eq!(ns.id_from_string(&id.to_string()).unwrap(), id);
        assert!(seen.insert(id), "unique ids do not repeat");
    }
}

#[tokio::test]
async fn malformed_and_foreign_ids_are_refused_with_the_rule_broken() {
    let test = TestRuntime::start(|b| b);
    let env = test.env();
    let probes = env.namespace::<Probe>("PROBE").unwrap();
    let callers = env.namespace::<Caller>("CALLER").unwrap();

    let short = probes.id_from_string("abc").unwrap_err();
    assert_eq!(short.kind(), ErrorKind::InvalidId);
    assert!(
        short.message().contains("64 hex digits, got 3 characters"),
        "{short}"
    );

    let mut bad = "0".repeat(64);
    bad.replace_range(5..6, "z");
    let chars = probes.id_from_string(&bad).unwrap_err();
    assert!(chars.message().contains("'z' at position 5"), "{chars}");

    let foreign = callers.id_from_name("alpha").to_string();
    let err = probes.id_from_string(&foreign).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidId);
    assert!(
        err.message().contains("not valid for this namespace"),
        "{err}"
    );

    // A stub for another namespace's id fails every call with the same kind of error.
    let stub = probes.get(&callers.id_from_name("alpha"));
    let err = bounded(stub.value()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidId);
    assert_eq!(test.runtime().active_objects(), 0);
}

#[tokio::test]
async fn name_derived_ids_are_equal_across_restarts() {
    let mut test = TestRuntime::start(|b| b);
    let before = test
        .env()
        .namespace::<Probe>("PROBE")
        .unwrap()
        .id_from_name("stable");
    let unique = test
        .env()
        .namespace::<Probe>("PROBE")
        .unwrap()
        .new_unique_id();
    test.restart(|b| b);
    let ns = test.env().namespace::<Probe>("PROBE").unwrap();
    assert_eq!(ns.id_from_name("stable"), before);
    assert_eq!(ns.id_from_string(&unique.to_string()).unwrap(), unique);

    // Another data folder has other keys, so other ids.
    let other = TestRuntime::start(|b| b);
    let elsewhere = other.env().namespace::<Probe>("PROBE").unwrap();
    assert_ne!(elsewhere.id_from_name("stable"), before);
    assert!(elsewhere.id_from_string(&before.to_string()).is_err());
}

#[tokio::test]
async fn getting_a_stub_does_not_create_the_object() {
    let test = TestRuntime::start(|b| b);
    let ns = test.env().namespace::<Probe>("PROBE").unwrap();
    let stub = ns.get_by_name("lazy");
    let by_id = ns.get(&ns.id_from_name("lazy"));
    assert_eq!(stub.id(), by_id.id());
    assert_eq!(stub.name(), Some("lazy"));
    assert_eq!(constructions(stub.id()), 0);
    assert_eq!(test.runtime().active_objects(), 0);
    bounded(stub.value()).await.unwrap();
    assert_eq!(constructions(stub.id()), 1);
    bounded(by_id.value()).await.unwrap();
    assert_eq!(
        constructions(stub.id()),
        1,
        "both stubs reach the same instance"
    );
}

#[tokio::test]
async fn an_object_knows_the_name_it_was_addressed_by() {
    let test = TestRuntime::start(|b| b);
    let ns = test.env().namespace::<Probe>("PROBE").unwrap();
    let named = ns.get_by_name("room-7");
    assert_eq!(
        bounded(named.own_name()).await.unwrap().as_deref(),
        Some("room-7")
    );
    let unique = ns.get(&ns.new_unique_id());
    assert_eq!(bounded(unique.own_name()).await.unwrap(), None);
}

#[tokio::test]
async fn bindings_are_typed_and_unknown_ones_are_named_in_the_error() {
    let test = TestRuntime::start(|b| b.var("REGION", "home"));
    let env = test.env();
    assert_eq!(env.var("REGION"), Some("home"));
    assert_eq!(env.var("MISSING"), None);
    assert_eq!(env.vars().collect::<Vec<_>>(), [("REGION", "home")]);

    let err = env.namespace::<Probe>("PROBES").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.message().contains("no binding named \"PROBES\""),
        "{err}"
    );
    assert!(err.message().contains("\"PROBE\""), "{err}");

    let err = env.namespace::<Web>("PROBE").unwrap_err();
    assert!(
        err.message()
            .contains("binding \"PROBE\" is of class Probe, not Web"),
        "{err}"
    );

    let ns = env.namespace::<Web>("WEB").unwrap();
    assert_eq!(ns.class_name(), "Web");
    let request = http::Request::get("http://o/").body(Body::empty()).unwrap();
    assert!(bounded(ns.get_by_name("w").fetch(request)).await.is_ok());
}

#[test]
fn two_bindings_to_one_class_share_its_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = bind_all(Runtime::builder().data_dir(dir.path()))
        .bind::<Probe>("PROBE_TOO")
        .build()
        .unwrap();
    let env = runtime.env();
    assert_eq!(
        env.namespace::<Probe>("PROBE").unwrap().id_from_name("x"),
        env.namespace::<Probe>("PROBE_TOO")
            .unwrap()
            .id_from_name("x")
    );
}

#[test]
fn bad_runtime_settings_are_start_errors() {
    let dir = tempfile::tempdir().unwrap();
    let duplicate = Runtime::builder()
        .data_dir(dir.path())
        .bind::<Probe>("X")
        .bind::<Web>("X")
        .build()
        .unwrap_err();
    assert!(
        matches!(duplicate, StartError::DuplicateBinding { .. }),
        "{duplicate}"
    );

    let no_shards = Runtime::builder()
        .data_dir(dir.path())
        .shards(0)
        .build()
        .unwrap_err();
    assert!(no_shards.to_string().contains("shards is 0"), "{no_shards}");

    let no_queue = Runtime::builder()
        .data_dir(dir.path())
        .max_queued_events(0)
        .build()
        .unwrap_err();
    assert!(
        no_queue.to_string().contains("max_queued_events"),
        "{no_queue}"
    );

    let tiny_queue = Runtime::builder()
        .data_dir(dir.path())
        .max_queued_bytes(1024)
        .build()
        .unwrap_err();
    assert!(
        tiny_queue.to_string().contains("max_queued_bytes is 1024"),
        "{tiny_queue}"
    );

    let no_dir = Runtime::builder().build().unwrap_err();
    assert!(no_dir.to_string().contains("no data folder"), "{no_dir}");
}

#[test]
fn a_data_folder_serves_one_runtime_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = Runtime::builder().data_dir(dir.path()).build().unwrap();
    let second = Runtime::builder().data_dir(dir.path()).build().unwrap_err();
    assert!(matches!(second, StartError::Locked { .. }), "{second}");
    assert!(
        second.to_string().contains("in use by another process"),
        "{second}"
    );
    first.shutdown();
    Runtime::builder().data_dir(dir.path()).build().unwrap();
}

#[test]
fn a_data_folder_that_cannot_be_created_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = Runtime::builder()
        .data_dir(file.join("data"))
        .build()
        .unwrap_err();
    assert!(matches!(err, StartError::DataDir { .. }), "{err}");
    assert!(err.to_string().contains("cannot use data folder"), "{err}");
}

#[test]
fn setters_win_over_a_base_config_whatever_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut base = durable_objects::RuntimeConfig::default();
    base.shards = 3;
    base.idle_timeout = std::time::Duration::from_secs(5);
    let builder = Runtime::builder()
        .data_dir(dir.path())
        .shards(2)
        .config(base)
        .alarm_retry_base(std::time::Duration::from_millis(10))
        .alarm_max_retries(1)
        .max_concurrent_alarms(7);
    let config = builder.effective_config();
    assert_eq!(config.shards, 2, "a setter made before config() is kept");
    assert_eq!(config.idle_timeout, std::time::Duration::from_secs(5));
    assert_eq!(
        config.alarm_retry_base,
        std::time::Duration::from_millis(10)
    );
    assert_eq!(config.alarm_max_retries, 1);
    assert_eq!(config.max_concurrent_alarms, 7);
    let runtime = builder.build().unwrap();
    assert_eq!(runtime.config().shards, 2);
    assert_eq!(
        runtime.config().idle_timeout,
        std::time::Duration::from_secs(5)
    );
}

#[test]
fn every_out_of_range_setting_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    type Configure = fn(RuntimeBuilder) -> RuntimeBuilder;
    let cases: [(Configure, &str); 5] = [
        (|b| b.fsync_threads(0), "fsync_threads"),
        (|b| b.max_open_databases(0), "max_open_databases"),
        (|b| b.max_concurrent_alarms(0), "max_concurrent_alarms"),
        (|b| b.alarm_retry_jitter(1.5), "alarm_retry_jitter"),
        (
            |b| b.alarm_max_wait(std::time::Duration::ZERO),
            "alarm_max_wait",
        ),
    ];
    for (configure, setting) in cases {
        let err = configure(Runtime::builder().data_dir(dir.path()))
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, StartError::InvalidSetting { setting: named, .. } if *named == setting),
            "{err:?}"
        );
        assert!(err.to_string().contains(setting), "{err}");
    }
}
