//! The ledger of what the demo server acknowledged, the load that fills it, and the check
//! that every acknowledged write is there after whatever happened to the server: counter
//! increments, KV values, chat messages and alarms (each acknowledged alarm fires).
#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use super::Demo;

/// What the server acknowledged.
#[derive(Default, Clone)]
pub struct Acked {
    pub counters: BTreeMap<String, u64>,
    pub kv: BTreeMap<String, String>,
    /// `(room, text)`: one room per cycle, so a room's history (the newest 1,000 messages)
    /// holds every message sent to it.
    pub chat: BTreeSet<(String, String)>,
    pub alarms: BTreeMap<String, i64>,
}

/// One request; `None` if the server is gone or did not answer 2xx.
pub async fn request(addr: &str, method: &str, path: &str, body: &[u8]) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    stream.write_all(body).await.ok()?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 2").then(|| body.to_owned())
}

/// Load until the server dies: counters, KV, chat and alarms, each acknowledged as it lands.
pub async fn load(addr: String, cycle: usize, acked: Arc<Mutex<Acked>>) {
    let counters = {
        let (addr, acked) = (addr.clone(), Arc::clone(&acked));
        tokio::spawn(async move {
            for n in 0.. {
                let name = format!("c{}", n % 3);
                let path = format!("/counter/{name}/increment");
                let Some(body) = request(&addr, "POST", &path, b"").await else {
                    return;
                };
                let value: Value = serde_json::from_str(&body).unwrap();
                let value = value["value"].as_u64().unwrap();
                let mut acked = acked.lock().unwrap();
                let best = acked.counters.entry(name).or_default();
                *best = (*best).max(value);
            }
        })
    };
    let kv = {
        let (addr, acked) = (addr.clone(), Arc::clone(&acked));
        tokio::spawn(async move {
            for n in 0.. {
                let key = format!("k-{cycle}-{n}");
                let value = format!("value {cycle} {n}");
                let path = format!("/kv/bucket-{}/{key}", n % 2);
                if request(&addr, "PUT", &path, value.as_bytes())
                    .await
                    .is_none()
                {
                    return;
                }
                acked.lock().unwrap().kv.insert(path, value);
            }
        })
    };
    let alarms = {
        let (addr, acked) = (addr.clone(), Arc::clone(&acked));
        tokio::spawn(async move {
            for n in 0.. {
                let name = format!("alarm-{cycle}-{n}");
                let path = format!("/alarm/{name}?in_ms=300");
                let Some(body) = request(&addr, "POST", &path, b"").await else {
                    return;
                };
                let at: Value = serde_json::from_str(&body).unwrap();
                acked
                    .lock()
                    .unwrap()
                    .alarms
                    .insert(name, at["scheduled_at"].as_i64().unwrap());
            }
        })
    };
    let chat = tokio::spawn(async move {
        let room = format!("room-{cycle}");
        let url = format!("ws://{addr}/chat/{room}");
        let Ok((mut socket, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
            return;
        };
        for n in 0.. {
            let text = format!("message {cycle} {n}");
            if socket.send(Message::text(text.clone())).await.is_err() {
                return;
            }
            // The broadcast of our own message leaves only once it is stored durably.
            loop {
                match socket.next().await {
                    Some(Ok(Message::Text(echo))) => {
                        if echo.as_str().contains(&format!("\"{text}\"")) {
                            acked.lock().unwrap().chat.insert((room.clone(), text));
                            break;
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => return,
                }
            }
        }
    });
    for task in [counters, kv, alarms, chat] {
        let _ = task.await;
    }
}

/// A number in `0..limit`, different on every call.
pub fn random_below(limit: u64) -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now()) % limit
}

/// Asserts that `demo` holds everything in `acked` (`what` names the moment, for messages),
/// and that every acknowledged alarm fires.
pub async fn check(demo: &Demo, acked: &Acked, what: &str) {
    for (name, value) in &acked.counters {
        let (_, now) = demo.json("GET", &format!("/counter/{name}")).await;
        assert!(
            now["value"].as_u64().unwrap() >= *value,
            "{what}: counter {name} lost acknowledged increments: {now} < {value}"
        );
    }
    for (path, value) in &acked.kv {
        assert_eq!(
            demo.http("GET", path, b"").await,
            (200, value.clone().into_bytes()),
            "{what}: {path}"
        );
    }
    let rooms: BTreeSet<&String> = acked.chat.iter().map(|(room, _)| room).collect();
    let mut stored = BTreeSet::new();
    for room in rooms {
        let (_, history) = demo.json("GET", &format!("/chat/{room}/history")).await;
        let messages = history["messages"].as_array().unwrap();
        assert!(
            messages.len() < durable_demo::objects::HISTORY_LIMIT as usize,
            "{what}: room {room} outgrew the history the check can read"
        );
        for message in messages {
            stored.insert((room.clone(), message["text"].as_str().unwrap().to_owned()));
        }
    }
    let lost: Vec<_> = acked.chat.difference(&stored).collect();
    assert!(lost.is_empty(), "{what}: chat messages lost: {lost:?}");
    // Each alarm object had one alarm set: it fires (it records when) at or after its time.
    for (name, at) in &acked.alarms {
        super::eventually(&format!("alarm {name} fires"), || async {
            let (_, alarm) = demo.json("GET", &format!("/alarm/{name}")).await;
            alarm["fired"]
                .as_array()
                .unwrap()
                .iter()
                .any(|fired| fired.as_i64().is_some_and(|fired| fired >= *at))
        })
        .await;
    }
}
