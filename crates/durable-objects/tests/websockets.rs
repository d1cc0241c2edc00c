//! WebSockets without a network: sockets made by objects in `fetch`, connected through the
//! transport seam (`WebSocketPeer::connect`) the server uses, so every rule of the hibernation
//! and standard APIs is checked here directly; the server's tests cover the real sockets.
#![allow(clippy::unwrap_used, missing_debug_implementations)]

mod support;

use std::time::Duration;

use durable_objects::http;
use durable_objects::prelude::*;
use durable_objects::transport::{OutgoingFrame, WebSocketConnection, WebSocketPeer};
use durable_objects::websocket::{WebSocketEvent, WebSocketRequestResponsePair};
use support::objects::{raise, wait_signal};
use support::{TestRuntime, bounded, wait_until};

/// A hibernatable room: echoes, counts, reads attachments, and logs closes in storage.
#[durable_object]
pub struct Room {
    state: State,
}

impl DurableObject for Room {
    fn new(state: State, _env: Env) -> Self {
        let kv = state.storage().kv();
        let built: i64 = kv.get("constructed").unwrap().unwrap_or(0);
        kv.put("constructed", &(built + 1)).unwrap();
        state
            .set_web_socket_auto_response(Some(
                WebSocketRequestResponsePair::new("ping", "pong").unwrap(),
            ))
            .unwrap();
        Self { state }
    }

    async fn fetch(&self, request: Request) -> Result<Response> {
        let query = request.uri().query().unwrap_or("").to_owned();
        let tags: Vec<&str> = query
            .strip_prefix("tags=")
            .map(|t| t.split(',').filter(|t| !t.is_empty()).collect())
            .unwrap_or_default();
        let pair = WebSocketPair::new();
        self.state.accept_web_socket(&pair.server, &tags)?;
        pair.server
            .serialize_attachment(&format!("user-{}", tags.first().unwrap_or(&"none")))?;
        Ok(pair.client.into_response())
    }

    async fn web_socket_message(&self, ws: WebSocket, message: WebSocketMessage) -> Result<()> {
        let WebSocketMessage::Text(text) = message else {
            return ws.send_binary(b"binary".to_vec());
        };
        match text.as_str() {
            "count" => ws.send_text(self.state.get_web_sockets(None).len().to_string()),
            "attachment" => {
                let who: Option<String> = ws.deserialize_attachment()?;
                ws.send_text(who.unwrap_or_default())
            }
            "tags" => ws.send_text(self.state.get_tags(&ws)?.join(",")),
            "stamp" => ws.send_text(format!(
                "{:?}",
                self.state.get_web_socket_auto_response_timestamp(&ws)
            )),
            "abort" => self.state.abort(Some("abort on request")),
            "bye" => ws.close(Some(4000), Some("bye")),
            "limit-events" => {
                self.state
                    .set_hibernatable_web_socket_event_timeout(Some(100))?;
                ws.send_text("limited")
            }
            text if text.starts_with("hold:") => {
                // Holds the input gate, so the events after this one queue.
                let key = text[5..].to_owned();
                self.state
                    .block_concurrency_while(async {
                        raise(&format!("{key}-held"));
                        wait_signal(&format!("{key}-release")).await;
                        Ok(())
                    })
                    .await?;
                ws.send_text("released")
            }
            "sleep" => {
                tokio::time::sleep(Duration::from_millis(600)).await;
                ws.send_text("woke")
            }
            text if text.starts_with("store:") => {
                self.state.storage().kv().put("last", &text[6..])?;
                for peer in self.state.get_web_sockets(Some("a")) {
                    peer.send_text(format!("stored {}", &text[6..]))?;
                }
                Ok(())
            }
            text => ws.send_text(format!("echo:{text}")),
        }
    }

    async fn web_socket_close(
        &self,
        _ws: WebSocket,
        code: u16,
        reason: String,
        was_clean: bool,
    ) -> Result<()> {
        let kv = self.state.storage().kv();
        let mut log: Vec<String> = kv.get("closes")?.unwrap_or_default();
        log.push(format!("{code} {reason} {was_clean}"));
        kv.put("closes", &log)
    }
}

#[rpc]
impl Room {
    pub async fn constructed(&self) -> Result<i64> {
        Ok(self.state.storage().kv().get("constructed")?.unwrap_or(0))
    }

    pub async fn closes(&self) -> Result<Vec<String>> {
        Ok(self.state.storage().kv().get("closes")?.unwrap_or_default())
    }

    /// Tries each limit and returns the error messages.
    pub async fn limit_errors(&self) -> Result<Vec<String>> {
        let errors = std::cell::RefCell::new(Vec::new());
        let push = |result: Result<()>| match result {
            Ok(()) => errors.borrow_mut().push("accepted".to_owned()),
            Err(err) => errors.borrow_mut().push(err.message().to_owned()),
        };
        let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();
        push(
            self.state
                .accept_web_socket(&WebSocketPair::new().server, &eleven),
        );
        let long = "x".repeat(257);
        push(
            self.state
                .accept_web_socket(&WebSocketPair::new().server, &[&long]),
        );
        let pair = WebSocketPair::new();
        push(
            self.state
                .accept_web_socket(&pair.server, &["a", "a", "b", "a"]),
        );
        errors
            .borrow_mut()
            .push(self.state.get_tags(&pair.server)?.join(","));
        push(self.state.accept_web_socket(&pair.server, &[]));
        push(pair.server.serialize_attachment(&vec![7u8; 20_000]));
        push(pair.server.serialize_attachment(&vec![7u8; 1_000]));
        push(pair.server.close(Some(1000), Some(&"r".repeat(124))));
        push(pair.server.close(Some(1005), None));
        push(pair.server.close(Some(2000), None));
        push(WebSocketRequestResponsePair::new("x".repeat(2_049), "y").map(drop));
        push(
            self.state
                .set_hibernatable_web_socket_event_timeout(Some(604_800_001)),
        );
        push(
            self.state
                .set_hibernatable_web_socket_event_timeout(Some(5_000)),
        );
        errors.borrow_mut().push(format!(
            "{:?}",
            self.state.get_hibernatable_web_socket_event_timeout()
        ));
        push(WebSocketPair::new().server.send_text("unaccepted"));
        Ok(errors.into_inner())
    }
}

/// An object that takes hibernatable sockets until it may take no more.
#[durable_object]
pub struct Crowd {
    state: State,
    /// Keeps the pairs (and so the sockets) alive.
    pairs: std::cell::RefCell<Vec<WebSocketPair>>,
}

impl DurableObject for Crowd {
    fn new(state: State, _env: Env) -> Self {
        Self {
            state,
            pairs: std::cell::RefCell::new(Vec::new()),
        }
    }
}

#[rpc]
impl Crowd {
    /// Accepts sockets until refused; returns the refusal and the number held.
    pub async fn fill(&self) -> Result<(String, usize)> {
        loop {
            let pair = WebSocketPair::new();
            if let Err(err) = self.state.accept_web_socket(&pair.server, &[]) {
                return Ok((
                    err.message().to_owned(),
                    self.state.get_web_sockets(None).len(),
                ));
            }
            self.pairs.borrow_mut().push(pair);
        }
    }
}

/// A room using the standard API: the object reads its socket's events itself.
#[durable_object]
pub struct Echo {
    state: State,
}

impl DurableObject for Echo {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, _request: Request) -> Result<Response> {
        let pair = WebSocketPair::new();
        pair.server.accept()?;
        let mut events = pair.server.events()?;
        let server = pair.server.clone();
        let storage = self.state.storage();
        self.state.spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    WebSocketEvent::Message(WebSocketMessage::Text(text)) => {
                        if let Some(value) = text.strip_prefix("store:") {
                            // The reply leaves only once the write is durable.
                            if storage.put("stored", &value).await.is_ok() {
                                let _ = server.send_text(format!("stored {value}"));
                            }
                            continue;
                        }
                        let _ = server.send_text(format!("std:{text}"));
                    }
                    WebSocketEvent::Close { .. } => break,
                    _ => {}
                }
            }
        })?;
        Ok(pair.client.into_response())
    }
}

#[rpc]
impl Echo {
    /// Holds the input gate: raises signal `held`, then waits for signal `release`.
    pub async fn hold(&self, held: String, release: String) -> Result<()> {
        self.state
            .block_concurrency_while(async {
                raise(&held);
                wait_signal(&release).await;
                Ok(())
            })
            .await
    }
}

fn start() -> TestRuntime {
    TestRuntime::start(|b| {
        b.bind::<Room>("ROOM")
            .bind::<Echo>("ECHO")
            .bind::<Crowd>("CROWD")
            .hibernation_timeout(Duration::from_millis(200))
            .idle_timeout(Duration::from_millis(400))
    })
}

fn room(test: &TestRuntime, name: &str) -> Stub<Room> {
    test.env()
        .namespace::<Room>("ROOM")
        .unwrap()
        .get_by_name(name)
}

/// Waits for the next frame and checks it is a close with `code`.
async fn expect_close(conn: &mut WebSocketConnection, code: u16) {
    match bounded(conn.next_frame()).await {
        Some(OutgoingFrame::Close { code: got, .. }) if got == code => {}
        other => {
            let shown = format!("{other:?}");
            panic!(
                "expected a {code} close, got {}",
                &shown[..shown.len().min(200)]
            )
        }
    }
}

async fn connect<T: DurableObject>(stub: &Stub<T>, query: &str) -> WebSocketConnection {
    let request = http::Request::get(format!("http://object/ws?{query}"))
        .body(Body::empty())
        .unwrap();
    let mut response = bounded(stub.fetch(request)).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    WebSocketPeer::take_from(&mut response)
        .expect("a 101 response carries the peer")
        .connect()
        .unwrap()
}

async fn next_text(conn: &mut WebSocketConnection) -> String {
    match bounded(conn.next_frame()).await {
        Some(OutgoingFrame::Text(text)) => text,
        other => panic!("expected a text frame, got {other:?}"),
    }
}

async fn ask(conn: &mut WebSocketConnection, text: &str) -> String {
    conn.received(WebSocketMessage::Text(text.to_owned()));
    next_text(conn).await
}

#[tokio::test]
async fn hibernatable_sockets_route_to_handlers_with_tags_and_attachments() {
    let test = start();
    let room = room(&test, "r");
    let mut a = connect(&room, "tags=a,x").await;
    let mut b = connect(&room, "tags=b").await;
    assert_eq!(ask(&mut a, "hello").await, "echo:hello");
    assert_eq!(ask(&mut b, "count").await, "2");
    assert_eq!(ask(&mut a, "tags").await, "a,x");
    assert_eq!(ask(&mut b, "attachment").await, "user-b");
    b.received(WebSocketMessage::Binary(vec![1, 2]));
    assert_eq!(
        bounded(b.next_frame()).await,
        Some(OutgoingFrame::Binary(b"binary".to_vec()))
    );
    // Only sockets tagged "a" get the broadcast.
    assert_eq!(ask(&mut a, "store:v").await, "stored v");
    assert_eq!(test.runtime().metrics().web_sockets_open, 2);
}

#[tokio::test]
async fn an_idle_instance_hibernates_and_the_next_message_wakes_a_new_one() {
    let test = start();
    let room = room(&test, "h");
    let mut socket = connect(&room, "tags=sleepy").await;
    assert_eq!(ask(&mut socket, "count").await, "1");
    wait_until("the instance hibernates", || {
        test.runtime().active_objects() == 0
    })
    .await;
    // The auto-response is answered without building an instance.
    assert_eq!(ask(&mut socket, "ping").await, "pong");
    assert_eq!(test.runtime().active_objects(), 0);
    // A real message wakes a new instance: the constructor ran again, the attachment survived.
    assert_eq!(ask(&mut socket, "attachment").await, "user-sleepy");
    assert_ne!(ask(&mut socket, "stamp").await, "None");
    assert_eq!(bounded(room.constructed()).await.unwrap(), 2);
    assert_eq!(test.runtime().metrics().web_sockets_open, 1);
    // Once the socket is gone and the instance too, the runtime holds nothing for the room.
    wait_until("the instance hibernates again", || {
        test.runtime().active_objects() == 0
    })
    .await;
    socket.closed(1000, String::new());
    drop(socket);
    wait_until("the room's socket state is released", || {
        let metrics = test.runtime().metrics();
        metrics.web_socket_hubs == 0 && metrics.web_sockets_open == 0 && metrics.active_objects == 0
    })
    .await;
}

#[tokio::test]
async fn the_event_timeout_cancels_a_slow_handler() {
    let test = start();
    let room = room(&test, "t");
    let mut socket = connect(&room, "").await;
    assert_eq!(ask(&mut socket, "sleep").await, "woke");
    assert_eq!(ask(&mut socket, "limit-events").await, "limited");
    socket.received(WebSocketMessage::Text("sleep".to_owned()));
    // The slow event is cancelled after 100 ms; the next event's answer comes first and
    // "woke" never does.
    assert_eq!(ask(&mut socket, "count").await, "1");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(ask(&mut socket, "echo").await, "echo:echo");
}

#[tokio::test]
async fn closes_arrive_once_clean_or_abnormal() {
    let test = start();
    let room = room(&test, "c");
    let clean = connect(&room, "").await;
    clean.closed(1000, "done".to_owned());
    clean.closed(1001, "twice".to_owned());
    drop(clean);
    let abrupt = connect(&room, "").await;
    drop(abrupt);
    let mut closing = connect(&room, "").await;
    closing.received(WebSocketMessage::Text("bye".to_owned()));
    assert_eq!(
        bounded(closing.next_frame()).await,
        Some(OutgoingFrame::Close {
            code: 4000,
            reason: "bye".to_owned()
        })
    );
    let mut closes = Vec::new();
    for _ in 0..400 {
        closes = room.closes().await.unwrap();
        if closes.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        closes,
        vec![
            "1000 done true".to_owned(),
            "1006 WebSocket disconnected without sending Close frame. false".to_owned()
        ]
    );
    wait_until("both sockets are counted closed", || {
        test.runtime().metrics().web_sockets_open == 1
    })
    .await;
}

#[tokio::test]
async fn a_socket_whose_client_never_connects_ends_as_an_abnormal_close() {
    let test = start();
    let room = room(&test, "n");
    let request = http::Request::get("http://object/ws")
        .body(Body::empty())
        .unwrap();
    let mut response = bounded(room.fetch(request)).await.unwrap();
    let peer = WebSocketPeer::take_from(&mut response).unwrap();
    let copy = peer.clone();
    drop(peer);
    drop(response);
    let mut connected = connect(&room, "").await;
    assert_eq!(
        ask(&mut connected, "count").await,
        "2",
        "a handle is still alive"
    );
    drop(copy);
    assert_eq!(ask(&mut connected, "count").await, "1");
    assert_eq!(
        bounded(room.closes()).await.unwrap(),
        vec!["1006 WebSocket disconnected without sending Close frame. false".to_owned()]
    );
}

#[tokio::test]
async fn limits_are_enforced_with_clear_errors() {
    let test = start();
    let room = room(&test, "l");
    let errors = bounded(room.limit_errors()).await.unwrap();
    let expect = [
        "more than 10 tags",
        "longer than 256 characters",
        "accepted",
        "a,b",
        "already accepted with State::accept_web_socket",
        "cannot be larger than 16384 bytes",
        "accepted",
        "limit of 123 UTF-8 bytes",
        "close code 1005 is not allowed",
        "close code 2000 is not allowed",
        "cannot be larger than 2048 bytes",
        "should not exceed 604800000 ms",
        "accepted",
        "Some(5000)",
        "not accepted",
    ];
    assert_eq!(errors.len(), expect.len(), "{errors:#?}");
    for (got, want) in errors.iter().zip(expect) {
        assert!(got.contains(want), "expected {want:?} in {got:?}");
    }
}

#[tokio::test]
async fn an_object_holds_at_most_32768_hibernatable_sockets() {
    let test = start();
    let crowd = test
        .env()
        .namespace::<Crowd>("CROWD")
        .unwrap()
        .get_by_name("c");
    let (error, held) = bounded(crowd.fill()).await.unwrap();
    assert!(
        error.contains("already holds 32768 hibernatable WebSockets"),
        "{error}"
    );
    assert_eq!(held, 32_768);
}

#[tokio::test]
async fn messages_wait_for_durability_and_a_failed_commit_closes_the_sockets() {
    let test = start();
    let room = room(&test, "g");
    let mut socket = connect(&room, "tags=a").await;
    assert_eq!(ask(&mut socket, "store:one").await, "stored one");
    test.runtime().inject_sync_failures(1);
    socket.received(WebSocketMessage::Text("store:two".to_owned()));
    // The broadcast after the failed write never leaves; the reset closes the socket.
    expect_close(&mut socket, 1011).await;
}

#[tokio::test]
async fn standard_socket_messages_wait_for_durability_too() {
    let test = start();
    let echo = test
        .env()
        .namespace::<Echo>("ECHO")
        .unwrap()
        .get_by_name("durable-echo");
    let mut socket = connect(&echo, "").await;
    assert_eq!(ask(&mut socket, "store:one").await, "stored one");
    test.runtime().inject_sync_failures(1);
    socket.received(WebSocketMessage::Text("store:two".to_owned()));
    // "stored two" was sent after a write that never became durable: it never leaves, and
    // the reset closes the socket. Sent without the gate, it would arrive before the close.
    expect_close(&mut socket, 1011).await;
}

#[tokio::test]
async fn a_message_the_object_cannot_queue_closes_its_socket_with_1013() {
    let test = TestRuntime::start(|b| b.bind::<Room>("ROOM").max_queued_events(3));
    let room = room(&test, "busy");
    let mut socket = connect(&room, "").await;
    socket.received(WebSocketMessage::Text("hold:busy".to_owned()));
    bounded(wait_signal("busy-held")).await;
    // Two more fit in the queue; the fourth event does not, and its sender is told.
    for text in ["one", "two", "three"] {
        socket.received(WebSocketMessage::Text(text.to_owned()));
    }
    expect_close(&mut socket, 1013).await;
    raise("busy-release");
}

#[tokio::test]
async fn queued_messages_are_bounded_in_bytes() {
    let limit = 32 * 1024 * 1024;
    let test = TestRuntime::start(|b| b.bind::<Room>("ROOM").max_queued_bytes(limit));
    let room = room(&test, "heavy");
    let mut socket = connect(&room, "").await;
    socket.received(WebSocketMessage::Text("hold:heavy".to_owned()));
    bounded(wait_signal("heavy-held")).await;
    // 12 MiB each: the first two fit beside each other, the third would pass 32 MiB.
    let big = "x".repeat(12 * 1024 * 1024);
    for _ in 0..3 {
        socket.received(WebSocketMessage::Text(big.clone()));
    }
    expect_close(&mut socket, 1013).await;
    raise("heavy-release");
}

#[tokio::test]
async fn a_reset_disconnects_hibernatable_sockets() {
    let test = start();
    let room = room(&test, "a");
    let mut first = connect(&room, "").await;
    let mut second = connect(&room, "").await;
    first.received(WebSocketMessage::Text("abort".to_owned()));
    for socket in [&mut first, &mut second] {
        expect_close(socket, 1011).await;
    }
    // The object itself works again, with no sockets.
    let mut third = connect(&room, "").await;
    assert_eq!(ask(&mut third, "count").await, "1");
}

#[tokio::test]
async fn standard_sockets_pin_the_instance_and_deliver_events_to_the_object() {
    let test = start();
    let echo = test
        .env()
        .namespace::<Echo>("ECHO")
        .unwrap()
        .get_by_name("e");
    let mut socket = connect(&echo, "").await;
    assert_eq!(ask(&mut socket, "hi").await, "std:hi");
    // An object that became idle after the socket's did is evicted first: the socket's
    // instance, idle as long, stays because the socket pins it.
    room(&test, "idle-witness").closes().await.unwrap();
    assert_eq!(test.runtime().active_objects(), 2);
    wait_until("the idle witness is evicted", || {
        test.runtime().active_objects() == 1
    })
    .await;
    assert_eq!(ask(&mut socket, "still").await, "std:still");
    // The listener task waits while a handler holds the input gate.
    let holding = tokio::spawn(echo.hold("echo-held".into(), "echo-release".into()));
    bounded(wait_signal("echo-held")).await;
    socket.received(WebSocketMessage::Text("gated".to_owned()));
    let early = tokio::time::timeout(Duration::from_millis(200), socket.next_frame()).await;
    assert!(
        early.is_err(),
        "the listener answered while the gate was held: {early:?}"
    );
    raise("echo-release");
    assert_eq!(
        bounded(socket.next_frame()).await,
        Some(OutgoingFrame::Text("std:gated".to_owned()))
    );
    holding.await.unwrap().unwrap();
    socket.closed(1000, String::new());
    wait_until("the unpinned instance is evicted", || {
        test.runtime().active_objects() == 0
    })
    .await;
}
