//! End-to-end tests of the real `durable-demo` binary on 127.0.0.1:0: every route of the
//! HTTP contract, a room of 100 WebSocket clients, hibernation, SIGKILL and restart,
//! graceful shutdown, and a process with few file descriptors.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Demo, Tmpfs, close_code, config_with, eventually, next_text, raw_http, send_text};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn every_route_answers_per_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path(), None);

    assert_eq!(
        demo.http("GET", "/health", b"").await,
        (200, b"ok".to_vec())
    );
    let (status, head, page) = demo.http_full("GET", "/", b"").await;
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("text/html"), "{head}");
    assert!(String::from_utf8_lossy(&page).contains("new WebSocket"));

    // Counters.
    assert_eq!(
        demo.json("GET", "/counter/c").await,
        (200, json!({"value": 0}))
    );
    assert_eq!(
        demo.json("POST", "/counter/c/increment").await,
        (200, json!({"value": 1}))
    );
    assert_eq!(
        demo.json("POST", "/counter/c/increment?by=41").await,
        (200, json!({"value": 42}))
    );
    assert_eq!(
        demo.json("GET", "/counter/c").await,
        (200, json!({"value": 42}))
    );
    let (status, error) = demo.json("POST", "/counter/c/increment?by=many").await;
    assert_eq!(status, 400);
    assert!(
        error["error"].as_str().unwrap().contains("integer"),
        "{error}"
    );
    let (status, id) = demo.json("GET", "/counter/c/id").await;
    assert_eq!(status, 200);
    let id = id["id"].as_str().unwrap().to_owned();
    assert!(
        id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(
        demo.json("GET", &format!("/counter/by-id/{id}")).await,
        (200, json!({"value": 42}))
    );
    for bad in ["xyz".to_owned(), "g".repeat(64), flip_last_digit(&id)] {
        let (status, error) = demo.json("GET", &format!("/counter/by-id/{bad}")).await;
        assert_eq!(status, 400, "{bad}: {error}");
        assert!(error["error"].is_string(), "{error}");
    }

    // Key-value store.
    assert_eq!(demo.http("PUT", "/kv/s/b", b"two").await.0, 204);
    assert_eq!(demo.http("PUT", "/kv/s/a", b"one").await.0, 204);
    assert_eq!(demo.http("PUT", "/kv/s/c", b"three").await.0, 204);
    assert_eq!(demo.http("PUT", "/kv/s/other", b"x").await.0, 204);
    assert_eq!(
        demo.http("GET", "/kv/s/a", b"").await,
        (200, b"one".to_vec())
    );
    assert_eq!(
        demo.json("GET", "/kv/s").await.1,
        json!({"keys": ["a", "b", "c", "other"]})
    );
    assert_eq!(
        demo.json("GET", "/kv/s?prefix=o").await.1,
        json!({"keys": ["other"]})
    );
    assert_eq!(
        demo.json("GET", "/kv/s?limit=2&reverse=true").await.1,
        json!({"keys": ["other", "c"]})
    );
    assert_eq!(demo.http("DELETE", "/kv/s/a", b"").await.0, 204);
    let (status, error) = demo.json("GET", "/kv/s/a").await;
    assert_eq!(status, 404);
    assert!(error["error"].is_string());
    assert_eq!(demo.json("GET", "/kv/s?limit=0").await.0, 400);
    let big = vec![b'x'; 2_000_001];
    let (status, body) = demo.http("PUT", "/kv/s/big", &big).await;
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("limit"),
        "{error}"
    );
    assert_eq!(
        demo.http("GET", "/kv/s/big", b"").await.0,
        404,
        "nothing stored"
    );
    // The limit counts the stored (encoded) entry: a few bytes of framing count too.
    let at_limit = vec![b'z'; 2_000_000 - 3];
    assert_eq!(demo.http("PUT", "/kv/s/max", &at_limit).await.0, 413);
    let fits = vec![b'y'; 1_999_000];
    assert_eq!(demo.http("PUT", "/kv/s/fit", &fits).await.0, 204);
    assert_eq!(demo.http("GET", "/kv/s/fit", b"").await.1.len(), fits.len());

    // Alarms.
    let (status, scheduled) = demo.json("POST", "/alarm/a?in_ms=200").await;
    assert_eq!(status, 200);
    let at = scheduled["scheduled_at"].as_i64().unwrap();
    assert_eq!(
        demo.json("GET", "/alarm/a").await.1,
        json!({"scheduled_at": at, "fired": []})
    );
    eventually("the alarm fires", || async {
        demo.json("GET", "/alarm/a").await.1["fired"]
            .as_array()
            .unwrap()
            .len()
            == 1
    })
    .await;
    let (_, status) = demo.json("GET", "/alarm/a").await;
    assert_eq!(status["scheduled_at"], Value::Null);
    assert!(status["fired"][0].as_i64().unwrap() >= at);
    assert_eq!(demo.json("POST", "/alarm/a?in_ms=-5").await.0, 400);
    assert_eq!(demo.json("POST", "/alarm/a").await.0, 400);

    // Chat over a WebSocket, and its history.
    let mut client = demo.socket("/chat/r").await;
    send_text(&mut client, "hello").await;
    let echoed: Value = serde_json::from_str(&next_text(&mut client).await).unwrap();
    assert_eq!(echoed, json!({"seq": 1, "text": "hello"}));
    assert_eq!(
        demo.json("GET", "/chat/r/history").await.1,
        json!({"messages": [{"seq": 1, "text": "hello"}]})
    );
    // A plain GET of the socket route is told to upgrade.
    assert_eq!(demo.json("GET", "/chat/r").await.0, 426);

    // Metrics and unknown routes.
    let (status, metrics) = demo.http("GET", "/metrics", b"").await;
    assert_eq!(status, 200);
    let metrics = String::from_utf8(metrics).unwrap();
    for name in [
        "durable_objects_active",
        "durable_websockets_open 1",
        "durable_http_responses_total{code=\"2xx\"}",
        "durable_commits_total",
        "durable_fsync_seconds_count",
        "durable_alarms_total{outcome=\"ok\"} 1",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    let (status, error) = demo.json("GET", "/no/such/route").await;
    assert_eq!(status, 404);
    assert!(error["error"].is_string());
    // axum's own rejections are JSON too: a key that is not UTF-8, a wrong method.
    let (status, error) = demo.json("GET", "/kv/s/%FF").await;
    assert_eq!(status, 400, "{error}");
    assert!(error["error"].is_string());
    let (status, error) = demo.json("DELETE", "/counter/c").await;
    assert_eq!(status, 405, "{error}");
    assert!(error["error"].is_string());
}

fn flip_last_digit(id: &str) -> String {
    let mut chars: Vec<char> = id.chars().collect();
    let last = chars.last_mut().unwrap();
    *last = if *last == '0' { '1' } else { '0' };
    chars.into_iter().collect()
}

#[tokio::test]
async fn a_hundred_clients_in_one_room_all_receive_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path(), None);
    let mut clients = Vec::new();
    for _ in 0..100 {
        clients.push(demo.socket("/chat/crowd").await);
    }
    eventually("all 100 sockets are counted", || async {
        demo.metric("durable_websockets_open").await == 100.0
    })
    .await;
    // Ten senders, one message each, sent at once.
    for (i, client) in clients.iter_mut().enumerate().take(10) {
        send_text(client, &format!("m{i}")).await;
    }
    let mut orders = Vec::new();
    for client in &mut clients {
        let mut seen = Vec::new();
        for _ in 0..10 {
            let message: Value = serde_json::from_str(&next_text(client).await).unwrap();
            seen.push((
                message["seq"].as_i64().unwrap(),
                message["text"].as_str().unwrap().to_owned(),
            ));
        }
        orders.push(seen);
    }
    // Everyone saw the same ten messages in the same order, numbered 1..=10.
    let first = orders[0].clone();
    assert_eq!(
        first.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    let mut texts: Vec<String> = first.iter().map(|(_, text)| text.clone()).collect();
    texts.sort();
    assert_eq!(texts, (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert!(orders.iter().all(|order| *order == first));
    let history = demo.json("GET", "/chat/crowd/history").await.1;
    assert_eq!(history["messages"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn an_idle_room_hibernates_while_its_sockets_stay_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), "\"hibernation_timeout_ms\": 300,");
    let demo = Demo::start(&dir.path().join("data"), Some(&config));
    let mut a = demo.socket("/chat/sleepy").await;
    let mut b = demo.socket("/chat/sleepy").await;
    send_text(&mut a, "before").await;
    next_text(&mut a).await;
    next_text(&mut b).await;
    eventually("the room leaves memory", || async {
        demo.metric("durable_objects_active").await == 0.0
    })
    .await;
    assert_eq!(demo.metric("durable_websockets_open").await, 2.0);
    // The auto-response answers without waking the room.
    send_text(&mut b, "ping").await;
    assert_eq!(next_text(&mut b).await, "pong");
    assert_eq!(demo.metric("durable_objects_active").await, 0.0);
    // The next message wakes a new instance, which reaches both sockets.
    send_text(&mut b, "after").await;
    for client in [&mut a, &mut b] {
        let message: Value = serde_json::from_str(&next_text(client).await).unwrap();
        assert_eq!(message, json!({"seq": 2, "text": "after"}));
    }
    let stats = demo.json("GET", "/chat/sleepy/stats").await.1;
    assert_eq!(
        stats,
        json!({"constructed": 2, "sockets": 2}),
        "the constructor ran again"
    );
}

#[tokio::test]
async fn sigkill_and_restart_keep_counters_kv_history_and_alarms() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path(), None);
    for _ in 0..5 {
        demo.json("POST", "/counter/k/increment?by=2").await;
    }
    // A refused overflow leaves nothing behind, also across a crash.
    let max = i64::MAX;
    assert_eq!(
        demo.json("POST", &format!("/counter/k/increment?by={max}"))
            .await
            .0,
        409
    );
    assert_eq!(demo.http("PUT", "/kv/k/key", b"value").await.0, 204);
    let mut client = demo.socket("/chat/k").await;
    for text in ["one", "two"] {
        send_text(&mut client, text).await;
        next_text(&mut client).await;
    }
    let (_, scheduled) = demo.json("POST", "/alarm/k?in_ms=1500").await;
    let at = scheduled["scheduled_at"].as_i64().unwrap();
    drop(client);
    demo.kill9();

    let demo = Demo::start(dir.path(), None);
    assert_eq!(demo.json("GET", "/counter/k").await.1, json!({"value": 10}));
    assert_eq!(
        demo.json("POST", "/counter/k/increment").await.1,
        json!({"value": 11})
    );
    assert_eq!(
        demo.http("GET", "/kv/k/key", b"").await,
        (200, b"value".to_vec())
    );
    assert_eq!(
        demo.json("GET", "/chat/k/history").await.1,
        json!({"messages": [{"seq": 1, "text": "one"}, {"seq": 2, "text": "two"}]})
    );
    let status = demo.json("GET", "/alarm/k").await.1;
    assert!(
        status["scheduled_at"] == json!(at) || status["fired"].as_array().unwrap().len() == 1,
        "{status}"
    );
    eventually("the alarm set before the crash fires", || async {
        demo.json("GET", "/alarm/k").await.1["fired"]
            .as_array()
            .unwrap()
            .len()
            == 1
    })
    .await;
}

#[tokio::test]
async fn sigterm_closes_sockets_with_1001_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path(), None);
    let mut client = demo.socket("/chat/bye").await;
    send_text(&mut client, "last words").await;
    next_text(&mut client).await;
    let reader = tokio::spawn(async move { close_code(&mut client).await });
    let status = demo.terminate().await;
    assert!(status.success(), "{status:?}");
    let code = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, Some(1001));
}

#[tokio::test]
async fn a_message_over_32_mib_closes_the_socket_with_1009() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path(), None);
    let mut client = demo.socket("/chat/big").await;
    let big = vec![0u8; 32 * 1024 * 1024 + 1];
    // The server may close before the whole frame is written; that is the point.
    let _ = futures_util::SinkExt::send(&mut client, Message::binary(big)).await;
    assert_eq!(close_code(&mut client).await, Some(1009));
    // The room is fine: a new client chats as usual.
    let mut other = demo.socket("/chat/big").await;
    send_text(&mut other, "still here").await;
    let message: Value = serde_json::from_str(&next_text(&mut other).await).unwrap();
    assert_eq!(message["text"], "still here");
}

#[tokio::test]
async fn a_toml_configuration_works_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wrangler.toml");
    let mut text = String::from("name = \"durable-demo\"\n");
    for (binding, class) in [
        ("COUNTER", "Counter"),
        ("KV", "KvStore"),
        ("ALARM", "AlarmClock"),
        ("CHAT", "ChatRoom"),
    ] {
        text.push_str(&format!(
            "[[durable_objects.bindings]]\nname = \"{binding}\"\nclass_name = \"{class}\"\n"
        ));
    }
    text.push_str(
        "[[migrations]]\ntag = \"v1\"\nnew_sqlite_classes = [\"Counter\", \"KvStore\", \"AlarmClock\", \"ChatRoom\"]\n",
    );
    std::fs::write(&config, text).unwrap();
    let demo = Demo::start(&dir.path().join("data"), Some(&config));
    assert_eq!(
        demo.json("POST", "/counter/t/increment?by=3").await,
        (200, json!({"value": 3}))
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data/MIGRATIONS"))
            .unwrap()
            .lines()
            .count(),
        1
    );
}

#[tokio::test]
async fn a_bad_configuration_stops_the_binary_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            durable_demo::BUILT_IN_CONFIG
                .replace("\"class_name\": \"Counter\"", "\"class_name\": \"Missing\""),
            "does not define",
        ),
        (
            durable_demo::BUILT_IN_CONFIG.replace("\"Counter\", \"KvStore\"", "\"KvStore\""),
            "no migration creates",
        ),
        (
            "{ \"durable_objects\": 3 }".to_owned(),
            "expected an object",
        ),
    ];
    for (text, expected) in cases {
        let path = dir.path().join("bad.jsonc");
        std::fs::write(&path, &text).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_durable-demo"))
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data")
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in {stderr}"
        );
    }
}

#[tokio::test]
async fn malformed_requests_get_a_json_4xx_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path(), None);

    // An increment that would overflow: refused twice, the counter untouched and usable.
    let max = i64::MAX;
    assert_eq!(
        demo.json("POST", &format!("/counter/o/increment?by={max}"))
            .await,
        (200, json!({"value": max}))
    );
    for _ in 0..2 {
        let (status, error) = demo
            .json("POST", &format!("/counter/o/increment?by={max}"))
            .await;
        assert_eq!(status, 409, "{error}");
        assert_eq!(error["code"], "counter_overflow", "{error}");
        assert!(
            error["error"].as_str().unwrap().contains("overflow"),
            "{error}"
        );
    }
    assert_eq!(
        demo.json("GET", "/counter/o").await,
        (200, json!({"value": max}))
    );
    assert_eq!(
        demo.json("POST", "/counter/o/increment?by=-1").await,
        (200, json!({"value": max - 1}))
    );
    let (status, error) = demo
        .json("POST", "/counter/o/increment?by=-9223372036854775808")
        .await;
    assert_eq!(
        (status, error["value"].clone()),
        (200, json!(-2)),
        "{error}"
    );

    // A repeated query parameter is refused, not resolved.
    let (status, error) = demo.json("POST", "/counter/o/increment?by=1&by=5").await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["code"], "repeated_parameter", "{error}");
    assert_eq!(
        demo.json("GET", "/counter/o").await,
        (200, json!({"value": -2}))
    );
    assert_eq!(demo.json("GET", "/kv/s?limit=1&limit=2").await.0, 400);

    // An alarm beyond the horizon (about 3,000 years from now).
    let (status, error) = demo.json("POST", "/alarm/h?in_ms=100000000000000").await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["code"], "alarm_horizon", "{error}");
    assert_eq!(error["limit"]["name"], "alarm_horizon", "{error}");
    assert_eq!(
        demo.json("GET", "/alarm/h").await.1,
        json!({"scheduled_at": null, "fired": []})
    );

    // Content-Length together with Transfer-Encoding: refused before routing.
    let answer = raw_http(
        &demo.addr,
        format!(
            "POST /counter/o/increment HTTP/1.1\r\nHost: {}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            demo.addr
        )
        .as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("\"code\":\"ambiguous_framing\""),
        "{answer}"
    );
    assert_eq!(
        demo.json("GET", "/counter/o").await,
        (200, json!({"value": -2}))
    );

    // Not UTF-8 in a text frame: 1007.
    let mut client = demo.socket("/chat/u").await;
    let frame = tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
        vec![0xff, 0xfe, 0xfd],
        tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
            tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text,
        ),
        true,
    );
    futures_util::SinkExt::send(&mut client, Message::Frame(frame))
        .await
        .unwrap();
    assert_eq!(close_code(&mut client).await, Some(1007));

    // A chat message too big to store: 1009 to its sender, the room unaffected.
    let mut sender = demo.socket("/chat/t").await;
    let mut witness = demo.socket("/chat/t").await;
    send_text(&mut sender, &"y".repeat(2 * 1024 * 1024 + 1)).await;
    assert_eq!(close_code(&mut sender).await, Some(1009));
    send_text(&mut witness, "small").await;
    let message: Value = serde_json::from_str(&next_text(&mut witness).await).unwrap();
    assert_eq!(message, json!({"seq": 1, "text": "small"}));
    assert_eq!(
        demo.json("GET", "/chat/t/history").await.1,
        json!({"messages": [{"seq": 1, "text": "small"}]})
    );
}

/// Increments counters `c0..c{count}` with `concurrency` requests at a time; the status of
/// each.
async fn increment_many(demo: &Demo, prefix: &str, count: usize, concurrency: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for batch in (0..count).collect::<Vec<_>>().chunks(concurrency) {
        let calls = batch.iter().map(|n| {
            let path = format!("/counter/{prefix}{n}/increment");
            async move { demo.http("POST", &path, b"").await.0 }
        });
        statuses.extend(futures_util::future::join_all(calls).await);
    }
    statuses
}

#[tokio::test]
async fn few_file_descriptors_make_objects_wait_not_fail_and_no_failed_write_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // 256 descriptors: the server derives its caps from them (24 databases), so 300 objects
    // take turns instead of failing, and /health keeps answering.
    let demo = Demo::start_with_fd_limit(&data, None, 256);
    let statuses = increment_many(&demo, "c", 300, 40).await;
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    assert_eq!(demo.http("GET", "/health", b"").await.0, 200);
    for n in (0..300).step_by(37) {
        assert_eq!(
            demo.json("GET", &format!("/counter/c{n}")).await,
            (200, json!({"value": 1}))
        );
    }
    demo.terminate().await;

    // A database cap set far above what the descriptors allow: some requests fail, but a
    // request that failed never changed its counter (a retry cannot apply it twice).
    let config = config_with(dir.path(), r#""max_open_databases": 5000,"#);
    let demo = Demo::start_with_fd_limit(&data, Some(&config), 256);
    let statuses = increment_many(&demo, "d", 300, 40).await;
    assert!(
        statuses
            .iter()
            .all(|status| [200, 500, 503].contains(status)),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().any(|status| *status != 200),
        "the descriptors ran out, as this phase means them to"
    );
    demo.terminate().await;
    let demo = Demo::start(&data, None);
    for (n, status) in statuses.iter().enumerate() {
        let expected = u64::from(*status == 200);
        assert_eq!(
            demo.json("GET", &format!("/counter/d{n}")).await,
            (200, json!({"value": expected})),
            "d{n} answered {status}"
        );
    }
}

#[tokio::test]
async fn a_full_disk_answers_507_keeps_reads_and_deletes_and_recovers() {
    let Some(disk) = Tmpfs::mount(24) else {
        return;
    };
    let filler = disk.path().join("filler");
    std::fs::write(&filler, vec![1u8; 8 * 1024 * 1024]).unwrap();
    let config = config_with(disk.path(), r#""disk_reserve_bytes": 1048576,"#);
    let demo = Demo::start(&disk.path().join("data"), Some(&config));
    let value = vec![b'v'; 100_000];
    let mut stored = Vec::new();
    let (status, body) = 'fill: {
        for n in 0..400 {
            let path = format!("/kv/bucket{}/k{n}", n % 3);
            let (status, body) = demo.http("PUT", &path, &value).await;
            if status != 204 {
                break 'fill (status, body);
            }
            stored.push(path);
        }
        panic!("24 MB never filled up");
    };
    // One clear answer: 507 with the disk_full code, whatever object hit it.
    assert_eq!(status, 507, "{}", String::from_utf8_lossy(&body));
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["code"], "disk_full", "{error}");
    assert_eq!(demo.metric("durable_disk_full").await, 1.0);
    for path in ["/kv/bucket0/small", "/kv/new-bucket/small"] {
        assert_eq!(demo.http("PUT", path, b"x").await.0, 507, "{path}");
    }
    // Reads and deletes work.
    assert_eq!(
        demo.http("GET", &stored[0], b"").await,
        (200, value.clone())
    );
    assert_eq!(demo.http("DELETE", &stored[1], b"").await.0, 204);
    assert_eq!(demo.http("GET", &stored[1], b"").await.0, 404);
    // Space freed: writes resume by themselves.
    std::fs::remove_file(&filler).unwrap();
    eventually("writes resume", || async {
        demo.http("PUT", "/kv/bucket0/after", b"yes").await.0 == 204
    })
    .await;
    assert_eq!(demo.metric("durable_disk_full").await, 0.0);
    for path in stored.iter().skip(2).step_by(10) {
        assert_eq!(
            demo.http("GET", path, b"").await,
            (200, value.clone()),
            "{path}"
        );
    }
    demo.terminate().await;
}
