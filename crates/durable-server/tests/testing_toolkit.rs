//! The server's testing toolkit from a user's side: the in-process client against a router
//! that forwards to objects (HTTP and hibernatable WebSockets), eviction and hibernation seen
//! through a socket, the real server on a free port, and a `TestEnv` from a wrangler file.
#![allow(clippy::unwrap_used, missing_debug_implementations)]

use std::time::Duration;

use durable_objects::prelude::*;
use durable_objects::testing::{EvictSockets, TestEnv, evict};
use durable_server::axum::Router;
use durable_server::axum::extract::{Path, Request as HttpRequest, State as Front};
use durable_server::axum::routing::any;
use durable_server::config::Config;
use durable_server::forward;
use durable_server::testing::{TestClient, TestClientError, TestFrame, start_server, test_env};

/// A room: `fetch` on `/ws` accepts a hibernatable socket; other paths count visits.
/// Messages are answered with the number of instances built so far.
#[durable_object]
pub struct Room {
    state: State,
}

impl DurableObject for Room {
    fn new(state: State, _env: Env) -> Self {
        let kv = state.storage().kv();
        let built: u32 = kv.get("built").unwrap().unwrap_or(0);
        kv.put("built", &(built + 1)).unwrap();
        Self { state }
    }

    async fn fetch(&self, request: Request) -> Result<Response> {
        if request.uri().path().ends_with("/ws") {
            let pair = WebSocketPair::new();
            self.state.accept_web_socket(&pair.server, &[])?;
            return Ok(pair.client.into_response());
        }
        let kv = self.state.storage().kv();
        let visits: u64 = kv.get("visits")?.unwrap_or(0) + 1;
        kv.put("visits", &visits)?;
        Ok(Response::new(Body::from(visits.to_string())))
    }

    async fn web_socket_message(&self, ws: WebSocket, _message: WebSocketMessage) -> Result<()> {
        let built: u32 = self.state.storage().kv().get("built")?.unwrap_or(0);
        ws.send_text(format!("built {built}"))
    }
}

/// Reached only through `fetch` and its sockets.
#[rpc]
impl Room {}

const CONFIG: &str = r#"{
    // The same file a server would read.
    "durable_objects": { "bindings": [{ "name": "ROOMS", "class_name": "Room" }] },
    "migrations": [{ "tag": "v1", "new_sqlite_classes": ["Room"] }],
    "vars": { "GREETING": "hello" },
    "durable": { "hibernation_timeout_ms": 10000 }
}"#;

fn router(env: Env) -> Router {
    Router::new()
        .route(
            "/rooms/{name}/{*rest}",
            any(
                |Front(env): Front<Env>,
                 Path((name, _)): Path<(String, String)>,
                 request: HttpRequest| async move {
                    forward(
                        &env.namespace::<Room>("ROOMS").unwrap().get_by_name(&name),
                        request,
                    )
                    .await
                },
            ),
        )
        .with_state(env)
}

/// A `TestEnv` from `CONFIG` written to a wrangler file, as a user's test would load it.
fn room_env() -> (TestEnv, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wrangler.jsonc");
    std::fs::write(&path, CONFIG).unwrap();
    let config = Config::load(&path).unwrap();
    (
        test_env(&config, |runtime| runtime.class::<Room>()).unwrap(),
        dir,
    )
}

fn room(test: &TestEnv, name: &str) -> Stub<Room> {
    test.env()
        .namespace::<Room>("ROOMS")
        .unwrap()
        .get_by_name(name)
}

#[tokio::test]
async fn a_test_env_from_the_wrangler_file_has_its_bindings_and_vars() {
    let (test, _dir) = room_env();
    assert_eq!(test.env().var("GREETING"), Some("hello"));
    assert_eq!(
        test.runtime().config().hibernation_timeout,
        Duration::from_secs(10)
    );
    let client = TestClient::new(router(test.env()));
    assert_eq!(client.get("/rooms/a/visit").await.unwrap().text(), "1");
    assert_eq!(client.post("/rooms/a/visit", "").await.unwrap().text(), "2");
    assert_eq!(client.get("/nowhere").await.unwrap().status, 404);
}

#[tokio::test]
async fn a_socket_stays_open_through_eviction_and_wakes_a_new_instance() {
    let (test, _dir) = room_env();
    let client = TestClient::new(router(test.env()));
    let mut socket = client.websocket("/rooms/a/ws").await.unwrap();
    socket.send_text("hi").await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "built 1");
    assert!(
        evict(&room(&test, "a"), EvictSockets::Hibernate)
            .await
            .unwrap()
    );
    socket.send_text("hi").await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "built 2");
    // The hibernation timeout, on the test's clock: the object hibernates, the socket stays.
    test.advance(Duration::from_secs(10)).await.unwrap();
    assert_eq!(test.runtime().active_objects(), 0);
    socket.send_text("hi").await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "built 3");
    socket.close(1000, "done").await.unwrap();
}

#[tokio::test]
async fn eviction_that_closes_sockets_sends_1001() {
    let (test, _dir) = room_env();
    let client = TestClient::new(router(test.env()));
    let mut socket = client.websocket("/rooms/a/ws").await.unwrap();
    socket.send_text("hi").await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "built 1");
    assert!(evict(&room(&test, "a"), EvictSockets::Close).await.unwrap());
    match socket.recv().await.unwrap() {
        TestFrame::Close { code, .. } => assert_eq!(code, 1001),
        other => panic!("expected a Close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refused_upgrade_is_an_error_with_the_status() {
    let (test, _dir) = room_env();
    let client = TestClient::new(router(test.env()));
    // `visit` answers 200 with a body, not 101.
    match client.websocket("/rooms/a/visit").await.unwrap_err() {
        TestClientError::NotUpgraded { status, body } => {
            assert_eq!(status, 200);
            assert_eq!(body, "1");
        }
        other => panic!("expected NotUpgraded, got {other}"),
    }
}

#[tokio::test]
async fn the_real_server_runs_on_a_free_loopback_port() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wrangler.jsonc");
    std::fs::write(&path, CONFIG).unwrap();
    let builder = durable_server::Server::builder(Config::load(&path).unwrap())
        .class::<Room>()
        .router(router);
    let server = start_server(builder).await.unwrap();
    assert!(server.addr().ip().is_loopback());
    assert_ne!(server.addr().port(), 0);
    // A plain HTTP/1.1 exchange over a real socket.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    stream
        .write_all(b"GET /rooms/a/visit HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n1"), "{answer}");
    // The server's environment reaches the same object.
    let stub = server
        .env()
        .namespace::<Room>("ROOMS")
        .unwrap()
        .get_by_name("a");
    let visits = durable_objects::testing::run_in_durable_object(&stub, |_, state| async move {
        state.storage().kv().get::<u64>("visits").unwrap()
    })
    .await
    .unwrap();
    assert_eq!(visits, Some(1));
    server.stop().await.unwrap();
}
