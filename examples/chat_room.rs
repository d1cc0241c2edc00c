//! Pattern: **a chat room on hibernatable WebSockets** — each room is an object; members
//! connect with `GET /rooms/{room}/ws?user=NAME`, which the front forwards to the room. The
//! room accepts each socket with the hibernation API and tags it with the member's name, so
//! it can address one member (`/msg NAME text`) and list who is here (`/who`) from the tags
//! alone after waking. `ping` is answered `pong` by the runtime without waking the room.
//! Messages are kept in SQL (`GET /rooms/{room}/history`).
//!
//! ```text
//! cargo run -p durable-examples --example chat_room -- --listen 127.0.0.1:8788 --data /tmp/chat
//! websocat 'ws://127.0.0.1:8788/rooms/lobby/ws?user=ann'
//! ```
//!
//! While no message arrives, the room hibernates (10 s) and its memory is freed; the sockets
//! stay open and the next message wakes it.

use durable_objects::http::StatusCode;
use durable_objects::prelude::*;
use durable_objects::websocket::WebSocketRequestResponsePair;
use durable_server::axum::Router;
use durable_server::axum::extract::{Path, Request as HttpRequest, State as Front};
use durable_server::axum::response::IntoResponse;
use durable_server::axum::routing::get;
use durable_server::{ApiError, forward};
use serde::{Deserialize, Serialize};

/// The server's configuration when no `wrangler.jsonc` is given.
pub(crate) const CONFIG: &str = r#"{
    "durable_objects": { "bindings": [{ "name": "ROOMS", "class_name": "ChatRoom" }] },
    "migrations": [{ "tag": "v1", "new_sqlite_classes": ["ChatRoom"] }],
    "durable": { "data_dir": ".durable-chat" }
}"#;

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Message {
    pub(crate) seq: i64,
    pub(crate) from: String,
    pub(crate) text: String,
}

/// A chat room.
#[durable_object]
pub(crate) struct ChatRoom {
    state: State,
}

impl DurableObject for ChatRoom {
    fn new(state: State, _env: Env) -> Self {
        // Answered by the runtime, even while the room hibernates.
        if let Ok(pair) = WebSocketRequestResponsePair::new("ping", "pong") {
            let _ = state.set_web_socket_auto_response(Some(pair));
        }
        Self { state }
    }

    async fn init(&self) -> Result<()> {
        self.state.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, sender TEXT NOT NULL, text TEXT NOT NULL)",
            (),
        )?;
        Ok(())
    }

    /// The upgrade: `?user=NAME` becomes the socket's tag.
    async fn fetch(&self, request: Request) -> Result<Response> {
        let user = request
            .uri()
            .query()
            .and_then(|query| query.strip_prefix("user="))
            .unwrap_or("")
            .to_owned();
        if user.is_empty()
            || user.len() > 32
            || !user.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "join with ?user=NAME: 1 to 32 letters, digits or '-'",
            ));
        }
        if !self.state.get_web_sockets(Some(&user)).is_empty() {
            return Err(Error::user(format!("{user} is already in the room"))
                .with_code("name_taken")
                .with_status(409));
        }
        let pair = WebSocketPair::new();
        self.state.accept_web_socket(&pair.server, &[&user])?;
        self.broadcast(&format!("* {user} joined"))?;
        Ok(pair.client.into_response())
    }

    async fn web_socket_message(&self, ws: WebSocket, message: WebSocketMessage) -> Result<()> {
        let WebSocketMessage::Text(text) = message else {
            return ws.send_text("! text messages only");
        };
        let from = self.member(&ws)?;
        if text == "/who" {
            let mut names: Vec<String> = self
                .state
                .get_web_sockets(None)
                .iter()
                .filter_map(|socket| self.member(socket).ok())
                .collect();
            names.sort();
            return ws.send_text(format!("* here: {}", names.join(", ")));
        }
        if let Some(rest) = text.strip_prefix("/msg ") {
            let (to, body) = rest.split_once(' ').unwrap_or((rest, ""));
            let targets = self.state.get_web_sockets(Some(to));
            if targets.is_empty() {
                return ws.send_text(format!("! {to} is not here"));
            }
            for target in targets {
                target.send_text(format!("(private) {from}: {body}"))?;
            }
            return Ok(());
        }
        if text.is_empty() || text.len() > 4_096 {
            return ws.send_text("! a message is 1 to 4096 bytes");
        }
        self.state.storage().sql().exec(
            "INSERT INTO messages (sender, text) VALUES (?1, ?2)",
            (from.as_str(), text.as_str()),
        )?;
        // The broadcast leaves once the insert is durable (the output gate).
        self.broadcast(&format!("{from}: {text}"))
    }

    async fn web_socket_close(
        &self,
        ws: WebSocket,
        _code: u16,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        let from = self.member(&ws)?;
        let _ = ws.close(Some(1000), Some("bye"));
        self.broadcast(&format!("* {from} left"))
    }
}

impl ChatRoom {
    /// The member a socket belongs to (its tag).
    fn member(&self, ws: &WebSocket) -> Result<String> {
        self.state
            .get_tags(ws)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "a socket without its member tag"))
    }

    fn broadcast(&self, text: &str) -> Result<()> {
        for socket in self.state.get_web_sockets(None) {
            // A socket closing meanwhile is not the sender's problem.
            let _ = socket.send_text(text);
        }
        Ok(())
    }
}

#[rpc]
impl ChatRoom {
    /// The last `limit` messages, oldest first.
    pub(crate) async fn history(&self, limit: u32) -> Result<Vec<Message>> {
        let mut messages: Vec<Message> = self
            .state
            .storage()
            .sql()
            .exec(
                "SELECT seq, sender AS \"from\", text FROM messages ORDER BY seq DESC LIMIT ?1",
                (i64::from(limit.min(1_000)),),
            )?
            .to_vec()?;
        messages.reverse();
        Ok(messages)
    }
}

/// The front: the socket route forwards the upgrade to the room; history is an RPC.
pub(crate) fn router(env: Env) -> Router {
    Router::new()
        .route(
            "/rooms/{room}/ws",
            get(
                |Front(env): Front<Env>, Path(room): Path<String>, request: HttpRequest| async move {
                    match room_stub(&env, &room) {
                        Ok(stub) => forward(&stub, request).await,
                        Err(error) => ApiError::from(error).into_response(),
                    }
                },
            ),
        )
        .route(
            "/rooms/{room}/history",
            get(
                |Front(env): Front<Env>, Path(room): Path<String>| async move {
                    let messages = room_stub(&env, &room)?.history(50).await?;
                    Ok::<_, ApiError>(durable_server::axum::Json(messages))
                },
            ),
        )
        .with_state(env)
}

/// The room called `name`, if the name is acceptable.
fn room_stub(env: &Env, name: &str) -> Result<Stub<ChatRoom>> {
    if name.is_empty() || name.len() > 64 {
        return Err(
            Error::new(ErrorKind::InvalidInput, "a room name is 1 to 64 bytes")
                .with_status(StatusCode::BAD_REQUEST.as_u16()),
        );
    }
    Ok(env.namespace::<ChatRoom>("ROOMS")?.get_by_name(name))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    durable_server::run_main("chat_room", Some(CONFIG), configure).await
}

/// The example's server: its class and its front (what `main` serves).
fn configure(server: durable_server::ServerBuilder) -> durable_server::ServerBuilder {
    server.class::<ChatRoom>().router(router)
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_objects::testing::TestEnv;
    use durable_server::config::{Config, Format};
    use durable_server::testing::{TestClient, TestFrame, test_env};
    use std::time::Duration;

    fn setup() -> (TestEnv, TestClient) {
        let config = Config::parse(CONFIG, Format::Jsonc).unwrap();
        let test = test_env(&config, |runtime| runtime.class::<ChatRoom>()).unwrap();
        let client = TestClient::new(router(test.env()));
        (test, client)
    }

    #[tokio::test]
    async fn members_see_each_others_messages_and_history_is_kept() {
        let (mut test, client) = setup();
        let mut ann = client.websocket("/rooms/lobby/ws?user=ann").await.unwrap();
        assert_eq!(ann.recv_text().await.unwrap(), "* ann joined");
        let mut bob = client.websocket("/rooms/lobby/ws?user=bob").await.unwrap();
        assert_eq!(ann.recv_text().await.unwrap(), "* bob joined");
        assert_eq!(bob.recv_text().await.unwrap(), "* bob joined");
        ann.send_text("hello").await.unwrap();
        assert_eq!(ann.recv_text().await.unwrap(), "ann: hello");
        assert_eq!(bob.recv_text().await.unwrap(), "ann: hello");
        bob.send_text("/who").await.unwrap();
        assert_eq!(bob.recv_text().await.unwrap(), "* here: ann, bob");
        bob.send_text("/msg ann psst").await.unwrap();
        assert_eq!(ann.recv_text().await.unwrap(), "(private) bob: psst");
        // Another room is another object.
        let mut cat = client.websocket("/rooms/garden/ws?user=cat").await.unwrap();
        assert_eq!(cat.recv_text().await.unwrap(), "* cat joined");
        drop((ann, bob, cat));
        test.restart().unwrap();
        let client = TestClient::new(router(test.env()));
        let history: Vec<Message> = client
            .get("/rooms/lobby/history")
            .await
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(
            (history[0].from.as_str(), history[0].text.as_str()),
            ("ann", "hello")
        );
    }

    #[tokio::test]
    async fn a_hibernated_room_answers_ping_without_waking_and_wakes_for_messages() {
        let (test, client) = setup();
        let mut ann = client.websocket("/rooms/lobby/ws?user=ann").await.unwrap();
        assert_eq!(ann.recv_text().await.unwrap(), "* ann joined");
        test.advance(Duration::from_secs(10)).await.unwrap();
        assert_eq!(test.runtime().active_objects(), 0, "the room hibernated");
        ann.send_text("ping").await.unwrap();
        assert_eq!(ann.recv_text().await.unwrap(), "pong");
        assert_eq!(test.runtime().active_objects(), 0, "ping did not wake it");
        ann.send_text("/who").await.unwrap();
        assert_eq!(
            ann.recv_text().await.unwrap(),
            "* here: ann",
            "tags survive hibernation"
        );
        assert_eq!(test.runtime().active_objects(), 1);
    }

    #[tokio::test]
    async fn leaving_is_announced_and_bad_joins_are_refused() {
        let (_test, client) = setup();
        let mut ann = client.websocket("/rooms/lobby/ws?user=ann").await.unwrap();
        ann.recv_text().await.unwrap();
        let bob = client.websocket("/rooms/lobby/ws?user=bob").await.unwrap();
        assert_eq!(ann.recv_text().await.unwrap(), "* bob joined");
        bob.close(1000, "bye").await.unwrap();
        assert_eq!(ann.recv_text().await.unwrap(), "* bob left");
        for (path, status) in [
            ("/rooms/lobby/ws", 400),
            ("/rooms/lobby/ws?user=a%20b", 400),
            ("/rooms/lobby/ws?user=ann", 409),
        ] {
            match client.websocket(path).await.unwrap_err() {
                durable_server::testing::TestClientError::NotUpgraded { status: got, .. } => {
                    assert_eq!(got, status, "{path}")
                }
                other => panic!("{path}: {other}"),
            }
        }
        ann.send_text(&"x".repeat(5_000)).await.unwrap();
        assert_eq!(
            ann.recv().await.unwrap(),
            TestFrame::Text("! a message is 1 to 4096 bytes".into())
        );
    }

    #[tokio::test]
    async fn the_example_serves_on_a_real_socket() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let config = Config::parse(CONFIG, Format::Jsonc).unwrap();
        let server = durable_server::testing::start_server(configure(
            durable_server::Server::builder(config),
        ))
        .await
        .unwrap();
        let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        stream
            .write_all(b"GET /rooms/lobby/history HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with(r#"[]"#), "{answer}");
        server.stop().await.unwrap();
    }
}
