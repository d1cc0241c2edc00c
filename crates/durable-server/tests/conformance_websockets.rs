//! The conformance suite's WebSocket items (3.9–3.12, 5.8, 7.x): real WebSocket upgrades
//! through the front, to objects that accept them (`docs/conformance.md` maps every item).
#![allow(clippy::unwrap_used, missing_debug_implementations)]

use std::time::Duration;

use durable_objects::limits;
use durable_objects::prelude::*;
use durable_objects::testing::{EvictSockets, TestEnv, abort_all, evict};
use durable_objects::websocket::WebSocketRequestResponsePair;
use durable_server::axum::Router;
use durable_server::axum::extract::{Path, Request as HttpRequest, State as Front};
use durable_server::axum::routing::any;
use durable_server::forward;
use durable_server::testing::{TestClient, TestFrame, TestWebSocket};

/// Accepts sockets on `fetch`: `?tags=a,b` with the hibernation API, `?standard` with the
/// standard API. Messages are commands; events are logged in KV.
#[durable_object]
pub struct Sockets {
    state: State,
}

impl DurableObject for Sockets {
    fn new(state: State, _env: Env) -> Self {
        let kv = state.storage().kv();
        let built: u32 = kv.get("built").unwrap().unwrap_or(0);
        kv.put("built", &(built + 1)).unwrap();
        Self { state }
    }

    async fn fetch(&self, request: Request) -> Result<Response> {
        let query = request.uri().query().unwrap_or("").to_owned();
        let pair = WebSocketPair::new();
        if query == "standard" {
            pair.server.accept()?;
            let mut events = pair.server.events()?;
            let server = pair.server.clone();
            self.state.spawn(async move {
                while let Some(event) = events.next().await {
                    if let durable_objects::websocket::WebSocketEvent::Message(
                        WebSocketMessage::Text(text),
                    ) = event
                    {
                        let _ = server.send_text(format!("standard: {text}"));
                    }
                }
            })?;
            return Ok(pair.client.into_response());
        }
        let tags: Vec<String> = query
            .strip_prefix("tags=")
            .map(|t| {
                t.split(',')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        self.state.accept_web_socket(&pair.server, &tags)?;
        Ok(pair.client.into_response())
    }

    async fn web_socket_message(&self, ws: WebSocket, message: WebSocketMessage) -> Result<()> {
        let text = match message {
            WebSocketMessage::Text(text) => text,
            WebSocketMessage::Binary(bytes) => {
                return ws.send_text(format!("binary {}", bytes.len()));
            }
            _ => return ws.send_text("another kind of message"),
        };
        let (command, argument) = text.split_once(' ').unwrap_or((text.as_str(), ""));
        let reply = match command {
            "built" => self
                .state
                .storage()
                .kv()
                .get::<u32>("built")?
                .unwrap_or(0)
                .to_string(),
            "count" => self
                .state
                .get_web_sockets((!argument.is_empty()).then_some(argument))
                .len()
                .to_string(),
            "tags" => self.state.get_tags(&ws)?.join(","),
            "attach" => {
                let size: usize = argument.parse().unwrap_or(0);
                match ws.serialize_attachment(&"x".repeat(size)) {
                    Ok(()) => "attached".into(),
                    Err(error) => format!("refused: {}", error.message()),
                }
            }
            "attachment" => ws
                .deserialize_attachment::<String>()?
                .map_or("none".into(), |a| a.len().to_string()),
            "auto" => {
                let size: usize = argument.parse().unwrap_or(4);
                match WebSocketRequestResponsePair::new("x".repeat(size), "y") {
                    Ok(pair) => {
                        self.state.set_web_socket_auto_response(Some(pair))?;
                        "set".into()
                    }
                    Err(error) => format!("refused: {}", error.message()),
                }
            }
            "stamp" => format!(
                "{}",
                self.state
                    .get_web_socket_auto_response_timestamp(&ws)
                    .is_some()
            ),
            "timeout" => {
                let ms: u64 = argument.parse().unwrap_or(0);
                match self
                    .state
                    .set_hibernatable_web_socket_event_timeout(Some(ms))
                {
                    Ok(()) => format!(
                        "{:?}",
                        self.state.get_hibernatable_web_socket_event_timeout()
                    ),
                    Err(error) => format!("refused: {}", error.message()),
                }
            }
            "close" => {
                let reason = "r".repeat(argument.parse().unwrap_or(3));
                return match ws.close(Some(4000), Some(&reason)) {
                    Ok(()) => Ok(()),
                    Err(error) => ws.send_text(format!("refused: {}", error.message())),
                };
            }
            "closes" => {
                let closes: Vec<(u16, String, bool)> =
                    self.state.storage().kv().get("closes")?.unwrap_or_default();
                format!("{closes:?}")
            }
            _ => format!("echo {text}"),
        };
        ws.send_text(reply)
    }

    async fn web_socket_close(
        &self,
        _ws: WebSocket,
        code: u16,
        reason: String,
        was_clean: bool,
    ) -> Result<()> {
        let kv = self.state.storage().kv();
        let mut closes: Vec<(u16, String, bool)> = kv.get("closes")?.unwrap_or_default();
        closes.push((code, reason, was_clean));
        kv.put("closes", &closes)
    }
}

#[rpc]
impl Sockets {
    pub async fn closes(&self) -> Result<Vec<(u16, String, bool)>> {
        Ok(self.state.storage().kv().get("closes")?.unwrap_or_default())
    }

    /// Accepts a pair's server end twice / after `accept()`, and reports the errors.
    pub async fn misuse(&self) -> Result<Vec<String>> {
        let mut errors = Vec::new();
        let pair = WebSocketPair::new();
        pair.server.accept()?;
        if let Err(error) = self.state.accept_web_socket(&pair.server, &[]) {
            errors.push(error.message().to_owned());
        }
        let pair = WebSocketPair::new();
        let too_many: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        let refs: Vec<&str> = too_many.iter().map(String::as_str).collect();
        if let Err(error) = self.state.accept_web_socket(&pair.server, &refs) {
            errors.push(error.message().to_owned());
        }
        let long = "t".repeat(limits::MAX_WEB_SOCKET_TAG_CHARS + 1);
        if let Err(error) = self.state.accept_web_socket(&pair.server, &[&long]) {
            errors.push(error.message().to_owned());
        }
        let before: usize = self.state.get_web_sockets(None).len();
        errors.push(format!("sockets before accepting: {before}"));
        Ok(errors)
    }
}

/// Handles messages but has no `web_socket_close` handler.
#[durable_object]
pub struct Mute {
    state: State,
}

impl DurableObject for Mute {
    fn new(state: State, _env: Env) -> Self {
        let kv = state.storage().kv();
        let built: u32 = kv.get("built").unwrap().unwrap_or(0);
        kv.put("built", &(built + 1)).unwrap();
        Self { state }
    }

    async fn fetch(&self, _request: Request) -> Result<Response> {
        let pair = WebSocketPair::new();
        self.state.accept_web_socket(&pair.server, &[])?;
        Ok(pair.client.into_response())
    }

    async fn web_socket_message(&self, ws: WebSocket, _message: WebSocketMessage) -> Result<()> {
        let built: u32 = self.state.storage().kv().get("built")?.unwrap_or(0);
        ws.send_text(format!("built {built}"))
    }
}

#[rpc]
impl Mute {}

fn setup() -> (TestEnv, TestClient) {
    let test =
        TestEnv::new(|runtime| runtime.bind::<Sockets>("SOCKETS").bind::<Mute>("MUTE")).unwrap();
    let router = Router::new()
        .route(
            "/mute/{name}",
            any(
                |Front(env): Front<Env>, Path(name): Path<String>, request: HttpRequest| async move {
                    forward(
                        &env.namespace::<Mute>("MUTE").unwrap().get_by_name(&name),
                        request,
                    )
                    .await
                },
            ),
        )
        .route(
            "/{name}",
            any(
                |Front(env): Front<Env>, Path(name): Path<String>, request: HttpRequest| async move {
                    forward(
                        &env.namespace::<Sockets>("SOCKETS").unwrap().get_by_name(&name),
                        request,
                    )
                    .await
                },
            ),
        )
        .with_state(test.env());
    (test, TestClient::new(router))
}

fn stub(test: &TestEnv, name: &str) -> Stub<Sockets> {
    test.env()
        .namespace::<Sockets>("SOCKETS")
        .unwrap()
        .get_by_name(name)
}

async fn ask(socket: &mut TestWebSocket, command: &str) -> String {
    socket.send_text(command).await.unwrap();
    socket.recv_text().await.unwrap()
}

#[tokio::test]
async fn spec_3_9_accept_web_socket_checks_its_preconditions() {
    let (test, _client) = setup();
    let errors = stub(&test, "o").misuse().await.unwrap();
    assert!(errors[0].contains("accept"), "{errors:?}");
    assert!(errors[1].contains("10"), "{errors:?}");
    assert!(errors[2].contains("256"), "{errors:?}");
    assert_eq!(errors[3], "sockets before accepting: 0");
}

#[tokio::test]
async fn spec_3_10_get_web_sockets_filters_by_tag_and_drops_closed_sockets() {
    let (_test, client) = setup();
    let mut a = client.websocket("/o?tags=red,blue,red").await.unwrap();
    let b = client.websocket("/o?tags=blue").await.unwrap();
    assert_eq!(ask(&mut a, "count").await, "2");
    assert_eq!(ask(&mut a, "count red").await, "1");
    assert_eq!(ask(&mut a, "count blue").await, "2");
    assert_eq!(ask(&mut a, "tags").await, "red,blue", "duplicates ignored");
    b.close(1000, "bye").await.unwrap();
    assert_eq!(ask(&mut a, "count blue").await, "1");
}

#[tokio::test]
async fn spec_3_11_auto_response_limits_and_timestamps() {
    let (test, client) = setup();
    let mut socket = client.websocket("/o").await.unwrap();
    assert!(ask(&mut socket, "auto 2049").await.starts_with("refused"));
    assert_eq!(ask(&mut socket, "auto 2048").await, "set");
    assert_eq!(ask(&mut socket, "stamp").await, "false");
    // Answered by the runtime, without waking the object.
    test.advance(Duration::from_secs(10)).await.unwrap();
    assert_eq!(test.runtime().active_objects(), 0);
    socket.send_text("x".repeat(2048)).await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "y");
    assert_eq!(test.runtime().active_objects(), 0);
    assert_eq!(ask(&mut socket, "stamp").await, "true");
}

#[tokio::test]
async fn spec_3_12_the_event_timeout_is_at_most_seven_days() {
    let (_test, client) = setup();
    let mut socket = client.websocket("/o").await.unwrap();
    assert_eq!(
        ask(&mut socket, "timeout 604800000").await,
        "Some(604800000)"
    );
    assert!(
        ask(&mut socket, "timeout 604800001")
            .await
            .starts_with("refused")
    );
}

#[tokio::test]
async fn spec_5_8_and_7_1_a_standard_socket_keeps_the_object_from_hibernating() {
    let (test, client) = setup();
    let mut socket = client.websocket("/o?standard").await.unwrap();
    assert_eq!(ask(&mut socket, "hi").await, "standard: hi");
    test.advance(Duration::from_secs(200)).await.unwrap();
    assert_eq!(
        test.runtime().active_objects(),
        1,
        "pinned by its standard socket"
    );
    assert_eq!(ask(&mut socket, "again").await, "standard: again");
}

#[tokio::test]
async fn spec_7_2_a_hibernated_object_is_rebuilt_then_handles_the_message() {
    let (test, client) = setup();
    let mut socket = client.websocket("/o").await.unwrap();
    assert_eq!(ask(&mut socket, "built").await, "1");
    test.advance(Duration::from_secs(10)).await.unwrap();
    assert_eq!(test.runtime().active_objects(), 0);
    assert_eq!(ask(&mut socket, "built").await, "2");
}

#[tokio::test]
async fn spec_7_3_text_and_binary_frames_arrive_as_such() {
    let (_test, client) = setup();
    let mut socket = client.websocket("/o").await.unwrap();
    assert_eq!(ask(&mut socket, "hello").await, "echo hello");
    socket.send_binary(vec![1u8, 2, 3]).await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "binary 3");
}

#[tokio::test]
async fn spec_7_4_a_close_frame_is_a_clean_close_an_abrupt_end_is_1006() {
    let (test, client) = setup();
    let clean = client.websocket("/o").await.unwrap();
    clean.close(4001, "done").await.unwrap();
    let abrupt = client.websocket("/o").await.unwrap();
    drop(abrupt);
    let closes = loop {
        let closes = stub(&test, "o").closes().await.unwrap();
        if closes.len() == 2 {
            break closes;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    assert!(closes.contains(&(4001, "done".into(), true)), "{closes:?}");
    assert!(
        closes
            .iter()
            .any(|(code, _, clean)| *code == 1006 && !clean),
        "{closes:?}"
    );
}

#[tokio::test]
async fn spec_7_5_a_close_reason_over_123_bytes_is_refused() {
    let (_test, client) = setup();
    let mut socket = client.websocket("/o").await.unwrap();
    assert!(ask(&mut socket, "close 124").await.starts_with("refused"));
    socket.send_text("close 123").await.unwrap();
    assert_eq!(
        socket.recv().await.unwrap(),
        TestFrame::Close {
            code: 4000,
            reason: "r".repeat(123)
        }
    );
}

#[tokio::test]
async fn spec_7_6_attachments_survive_hibernation_up_to_16_kib() {
    let (test, client) = setup();
    let mut socket = client.websocket("/o").await.unwrap();
    assert!(
        ask(&mut socket, "attach 20000")
            .await
            .starts_with("refused")
    );
    assert_eq!(ask(&mut socket, "attachment").await, "none");
    assert_eq!(ask(&mut socket, "attach 16000").await, "attached");
    test.advance(Duration::from_secs(10)).await.unwrap();
    assert_eq!(test.runtime().active_objects(), 0);
    assert_eq!(
        ask(&mut socket, "attachment").await,
        "16000",
        "kept across hibernation"
    );
}

#[tokio::test]
async fn spec_7_7_messages_are_limited_to_32_mib() {
    assert_eq!(limits::MAX_WEB_SOCKET_MESSAGE_BYTES, 32 * 1024 * 1024);
    assert_eq!(limits::MAX_HIBERNATABLE_WEB_SOCKETS, 32_768);
}

#[tokio::test]
async fn spec_7_10_a_reset_closes_hibernatable_sockets_but_eviction_keeps_them() {
    let (test, client) = setup();
    let mut kept = client.websocket("/kept").await.unwrap();
    assert_eq!(ask(&mut kept, "built").await, "1");
    evict(&stub(&test, "kept"), EvictSockets::Hibernate)
        .await
        .unwrap();
    assert_eq!(ask(&mut kept, "built").await, "2");
    abort_all(&test.env()).await.unwrap();
    match kept.recv().await.unwrap() {
        TestFrame::Close { .. } => {}
        other => panic!("expected the reset to close the socket, got {other:?}"),
    }
}

#[tokio::test]
async fn spec_7_9_a_missing_socket_handler_is_an_error_not_a_reset() {
    let (_test, client) = setup();
    let mut first = client.websocket("/mute/m").await.unwrap();
    assert_eq!(ask(&mut first, "hi").await, "built 1");
    // The close of another socket finds no `web_socket_close`: the event fails (logged),
    // the object is not reset, and the other socket is untouched.
    let second = client.websocket("/mute/m").await.unwrap();
    second.close(1000, "bye").await.unwrap();
    assert_eq!(ask(&mut first, "hi").await, "built 1");
}
