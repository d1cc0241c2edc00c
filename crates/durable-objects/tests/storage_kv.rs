//! The KV API through a real object: single and batch operations, `list` options and order,
//! limits and bad input, values that fail to decode, and persistence across restarts.
#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions unwrap too.

mod support;

use durable_objects::prelude::*;
use support::objects::{ListSpec, Store};
use support::{TestRuntime, bounded, store};

#[tokio::test]
async fn put_get_delete_and_batches() {
    let test = TestRuntime::start(|b| b);
    let s = store(&test, "kv");
    assert_eq!(bounded(s.get("missing".into())).await.unwrap(), None);
    s.put("a".into(), "1".into()).await.unwrap();
    assert_eq!(s.get("a".into()).await.unwrap().as_deref(), Some("1"));
    assert_eq!(s.get_sync("a".into()).await.unwrap().as_deref(), Some("1"));
    s.put("a".into(), "2".into()).await.unwrap();
    assert_eq!(s.get("a".into()).await.unwrap().as_deref(), Some("2"));

    let entries: Vec<(String, String)> = (0..128)
        .map(|i| (format!("k{i:03}"), i.to_string()))
        .collect();
    s.put_many(entries).await.unwrap();
    let got = s
        .get_many(vec!["k005".into(), "nope".into(), "k001".into()])
        .await
        .unwrap();
    assert_eq!(
        got,
        [
            ("k001".to_owned(), "1".to_owned()),
            ("k005".to_owned(), "5".to_owned())
        ]
    );

    assert!(s.delete("a".into()).await.unwrap());
    assert!(!s.delete("a".into()).await.unwrap());
    let deleted = s
        .delete_many(vec!["k000".into(), "k001".into(), "zzz".into()])
        .await
        .unwrap();
    assert_eq!(deleted, 2);
}

#[tokio::test]
async fn list_follows_cloudflare_semantics() {
    let test = TestRuntime::start(|b| b);
    let s = store(&test, "list");
    let keys = ["a", "ab", "abc", "b", "ba", "z", "é", "\u{1F600}"];
    s.put_many(
        keys.iter()
            .map(|k| ((*k).to_owned(), (*k).to_owned()))
            .collect(),
    )
    .await
    .unwrap();
    let list = |spec: ListSpec| {
        let s = s.clone();
        async move { bounded(s.list_sync(spec)).await.unwrap() }
    };
    // UTF-8 byte order: ASCII, then é (0xC3 0xA9), then the emoji (0xF0 ...).
    assert_eq!(list(ListSpec::default()).await, keys);
    assert_eq!(
        list(ListSpec {
            prefix: Some("a".into()),
            ..Default::default()
        })
        .await,
        ["a", "ab", "abc"]
    );
    assert_eq!(
        list(ListSpec {
            start: Some("ab".into()),
            end: Some("b".into()),
            ..Default::default()
        })
        .await,
        ["ab", "abc"]
    );
    assert_eq!(
        list(ListSpec {
            start_after: Some("ab".into()),
            limit: Some(2),
            ..Default::default()
        })
        .await,
        ["abc", "b"]
    );
    assert_eq!(
        list(ListSpec {
            reverse: true,
            limit: Some(3),
            ..Default::default()
        })
        .await,
        ["\u{1F600}", "é", "z"]
    );
    assert_eq!(
        list(ListSpec {
            start: Some("a".into()),
            end: Some("b".into()),
            reverse: true,
            ..Default::default()
        })
        .await,
        ["abc", "ab", "a"]
    );
    assert!(
        list(ListSpec {
            start: Some("z".into()),
            end: Some("a".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    let values = bounded(s.list(ListSpec {
        prefix: Some("b".into()),
        ..Default::default()
    }))
    .await
    .unwrap();
    assert_eq!(
        values,
        [
            ("b".to_owned(), "b".to_owned()),
            ("ba".to_owned(), "ba".to_owned())
        ]
    );
}

#[tokio::test]
async fn bad_input_is_refused_clearly_and_the_object_keeps_working() {
    let test = TestRuntime::start(|b| b);
    let s = store(&test, "bad");
    s.put("keep".into(), "me".into()).await.unwrap();
    let serial_probe = s.database_size().await.unwrap();

    let err = bounded(s.put("k".repeat(2_049), "v".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.message()
            .contains("key is 2049 bytes; the limit is 2048 bytes"),
        "{err}"
    );

    let err = bounded(s.put_bytes("big".into(), 2_000_000))
        .await
        .unwrap_err();
    assert!(
        err.message()
            .contains("together the limit is 2000000 bytes"),
        "{err}"
    );
    bounded(s.put_bytes("fits".into(), 1_900_000))
        .await
        .unwrap();

    let too_many: Vec<(String, String)> = (0..129).map(|i| (format!("t{i}"), "v".into())).collect();
    let err = bounded(s.put_many(too_many)).await.unwrap_err();
    assert!(
        err.message().contains("at most 128 keys; 129 were given"),
        "{err}"
    );
    let err = bounded(s.get_many((0..129).map(|i| format!("t{i}")).collect()))
        .await
        .unwrap_err();
    assert!(err.message().contains("129 were given"), "{err}");
    let err = bounded(s.delete_many((0..129).map(|i| format!("t{i}")).collect()))
        .await
        .unwrap_err();
    assert!(err.message().contains("129 were given"), "{err}");
    assert_eq!(
        s.get("t0".into()).await.unwrap(),
        None,
        "a refused batch wrote nothing"
    );

    let err = bounded(s.list_sync(ListSpec {
        start: Some("a".into()),
        start_after: Some("b".into()),
        ..Default::default()
    }))
    .await
    .unwrap_err();
    assert!(
        err.message()
            .contains("cannot be called with both start and start_after"),
        "{err}"
    );
    let err = bounded(s.list_sync(ListSpec {
        limit: Some(0),
        ..Default::default()
    }))
    .await
    .unwrap_err();
    assert!(err.message().contains("limit must be positive"), "{err}");

    let err = bounded(s.get_number("keep".into())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Codec);
    assert!(err.message().contains("value of key \"keep\""), "{err}");

    // Nothing was lost, and the object still works.
    assert_eq!(s.get("keep".into()).await.unwrap().as_deref(), Some("me"));
    assert!(s.database_size().await.unwrap() >= serial_probe);
    s.put_number("n".into(), 7).await.unwrap();
    assert_eq!(s.get_number("n".into()).await.unwrap(), Some(7));
}

#[tokio::test]
async fn kv_survives_eviction_and_restart() {
    let mut test = TestRuntime::start(|b| b.idle_timeout(std::time::Duration::from_millis(50)));
    let s = store(&test, "durable");
    s.put("a".into(), "1".into()).await.unwrap();
    support::wait_until("evicted", || test.runtime().active_objects() == 0).await;
    assert_eq!(
        bounded(s.get("a".into())).await.unwrap().as_deref(),
        Some("1")
    );
    s.put("b".into(), "2".into()).await.unwrap();
    test.restart(|b| b);
    let s = store(&test, "durable");
    assert_eq!(
        bounded(s.get("a".into())).await.unwrap().as_deref(),
        Some("1")
    );
    assert_eq!(
        bounded(s.get("b".into())).await.unwrap().as_deref(),
        Some("2")
    );
    let file = test.dir.path().join("objects/Store");
    assert!(file.is_dir(), "databases live under objects/<Class>/");
}

#[tokio::test]
async fn open_databases_stay_under_the_limit() {
    let test = TestRuntime::start(|b| b.shards(1).max_open_databases(4));
    let ns = test.env().namespace::<Store>("STORE").unwrap();
    for i in 0..20 {
        let s = ns.get_by_name(&format!("many-{i}"));
        bounded(s.put("k".into(), i.to_string())).await.unwrap();
        assert!(
            test.runtime().open_databases() <= 5,
            "{}",
            test.runtime().open_databases()
        );
    }
    for i in 0..20 {
        let s = ns.get_by_name(&format!("many-{i}"));
        assert_eq!(
            bounded(s.get("k".into())).await.unwrap(),
            Some(i.to_string())
        );
    }
    assert!(test.runtime().open_databases() <= 5);
    // Objects that first touch storage inside a handler, not in their constructor.
    let clocks = test
        .env()
        .namespace::<support::objects::Clockwork>("CLOCKWORK")
        .unwrap();
    for i in 0..20 {
        let c = clocks.get_by_name(&format!("late-{i}"));
        bounded(c.set_alarm(4_000_000_000_000 + i)).await.unwrap();
        assert!(
            test.runtime().open_databases() <= 5,
            "{}",
            test.runtime().open_databases()
        );
    }
    for i in 0..20 {
        let c = clocks.get_by_name(&format!("late-{i}"));
        assert_eq!(
            bounded(c.get_alarm()).await.unwrap(),
            Some(4_000_000_000_000 + i)
        );
    }
}
