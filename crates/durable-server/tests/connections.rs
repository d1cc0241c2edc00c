//! Connections over a real socket: a client that sends its request head too slowly is cut
//! off, an idle keep-alive connection is closed, and at the connection cap `/health` and
//! `/metrics` still answer while other requests get `503` (until a connection frees up).
#![allow(clippy::unwrap_used, missing_debug_implementations)]

use std::time::Duration;

use durable_objects::prelude::*;
use durable_server::axum::Router;
use durable_server::axum::routing::get;
use durable_server::config::Format;
use durable_server::{Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[durable_object]
pub struct Idle;

impl DurableObject for Idle {
    fn new(_state: State, _env: Env) -> Self {
        Idle
    }
}

#[rpc]
impl Idle {}

async fn start(durable: &str) -> (String, tokio::sync::oneshot::Sender<()>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(
        &format!(
            r#"{{
                "durable_objects": {{ "bindings": [{{ "name": "IDLE", "class_name": "Idle" }}] }},
                "migrations": [{{ "tag": "v1", "new_sqlite_classes": ["Idle"] }}],
                "durable": {durable}
            }}"#
        ),
        Format::Jsonc,
    )
    .unwrap();
    let server = Server::builder(config)
        .class::<Idle>()
        .listen("127.0.0.1:0".parse().unwrap())
        .data_dir(dir.path())
        .router(|_env: Env| {
            Router::new()
                .route("/health", get(|| async { "ok" }))
                .route("/hello", get(|| async { "hello" }))
        })
        .bind()
        .await
        .unwrap();
    let addr = server.local_addr().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run_until(async move {
        let _ = stopped.await;
    }));
    (addr, stop, dir)
}

/// Reads until the server closes the connection; fails the test after 20 s.
async fn closed_by_server(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server closed the connection");
    seen
}

/// Sends one request on `stream` and reads its whole response (a short body, no chunks).
async fn exchange(stream: &mut TcpStream, path: &str) -> String {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed before a response: {:?}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|line| {
                        line.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|n| n.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if seen.len() >= end + 4 + length {
                    return;
                }
            }
        }
    })
    .await
    .expect("a response within 20 s");
    String::from_utf8_lossy(&seen).to_string()
}

#[tokio::test]
async fn slow_request_heads_are_cut_off_and_idle_connections_close() {
    let (addr, _stop, _dir) =
        start(r#"{ "header_timeout_ms": 300, "keep_alive_timeout_ms": 400 }"#).await;
    // A slow-loris client: part of a head, then nothing.
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let answer = closed_by_server(&mut slow).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("hello"),
        "the incomplete request was not served"
    );
    // A client that connects and says nothing.
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    closed_by_server(&mut silent).await;
    // A keep-alive connection is served, then closed once idle.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    let response = exchange(&mut idle, "/hello").await;
    assert!(
        response.starts_with("HTTP/1.1 200") && response.ends_with("hello"),
        "{response}"
    );
    closed_by_server(&mut idle).await;
}

#[tokio::test]
async fn at_the_connection_cap_health_still_answers() {
    let (addr, _stop, _dir) = start(r#"{ "max_connections": 3 }"#).await;
    // Three keep-alive connections take every place.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        let response = exchange(&mut stream, "/hello").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        held.push(stream);
    }
    // A fourth: health and metrics answer, the rest is refused with a reason.
    for path in ["/health", "/health/shards", "/metrics"] {
        let mut extra = TcpStream::connect(&addr).await.unwrap();
        let response = exchange(&mut extra, path).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{path}: {response}");
        if path == "/health/shards" {
            assert!(response.contains("\"healthy\":true"), "{response}");
        }
    }
    let mut extra = TcpStream::connect(&addr).await.unwrap();
    let response = exchange(&mut extra, "/hello").await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.contains("too_many_connections"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("retry-after"),
        "{response}"
    );
    closed_by_server(&mut extra).await;
    // One place frees up: new connections are served in full again.
    drop(held.pop());
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let mut stream = TcpStream::connect(&addr).await.unwrap();
            if exchange(&mut stream, "/hello")
                .await
                .starts_with("HTTP/1.1 200")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("a freed place is used again");
}
