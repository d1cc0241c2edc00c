//! WebSockets held by objects: the pair an object makes in `fetch`, the standard API (the
//! object reads events itself and stays in memory), the hibernation API (events arrive as
//! handler calls, and the socket outlives the instance), and the transport seam the server
//! plugs a real connection into.
//!
//! Ownership: a socket's shared record (`SocketShared`) is reference-counted by the
//! object's handles, the object's `Hub` (hibernatable sockets) and the transport's
//! [`WebSocketConnection`]. The hub of an object lives in the runtime, not in the instance,
//! so an evicted instance's sockets stay connected and keep their tags and attachments; the
//! next message builds a new instance and calls its handler. A reset closes them (1011).
//!
//! Frames an object sends pass its output gate: a message sent after a write leaves once the
//! write is durable. Frames the runtime answers itself (the auto-response) do not wake the
//! object.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use durable_core::{Error, ErrorKind, ObjectId, Result, codec, limits};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::body::{Body, Response};
use crate::object::{Payload, WebSocketMessage};
use crate::output::Held;
use crate::runtime::RuntimeShared;
use crate::shard::{Event, ObjectKey, Reply};

/// The text of the close event of a peer that vanished without a close frame.
pub const ABNORMAL_CLOSE_REASON: &str = "WebSocket disconnected without sending Close frame.";

static NEXT_SOCKET_ID: AtomicU64 = AtomicU64::new(1);

/// A frame for the transport to send to the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutgoingFrame {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A close frame; the transport sends nothing after it.
    Close {
        /// The close code.
        code: u16,
        /// The reason (at most 123 bytes).
        reason: String,
    },
}

/// An event of a standard (non-hibernatable) WebSocket, read with [`WebSocketEvents::next`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebSocketEvent {
    /// A message from the peer.
    Message(WebSocketMessage),
    /// The socket closed.
    Close {
        /// Close code (1006 when the peer vanished).
        code: u16,
        /// Close reason.
        reason: String,
        /// False when the peer vanished without a close frame.
        was_clean: bool,
    },
    /// A protocol or transport error; a close follows.
    Error(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Unaccepted,
    Standard,
    Hibernatable,
}

struct SocketState {
    mode: Mode,
    tags: Vec<String>,
    attachment: Option<Vec<u8>>,
    hub: Weak<Hub>,
    shared: Weak<RuntimeShared>,
    events_tx: Option<mpsc::UnboundedSender<WebSocketEvent>>,
    events_rx: Option<mpsc::UnboundedReceiver<WebSocketEvent>>,
    /// A close frame was queued to the peer.
    close_sent: bool,
    /// The close event was delivered (at most once).
    close_dispatched: bool,
    /// The transport is gone.
    disconnected: bool,
    auto_response_at: Option<i64>,
}

/// What every handle on one socket shares.
pub(crate) struct SocketShared {
    id: u64,
    out: mpsc::UnboundedSender<OutgoingFrame>,
    state: Mutex<SocketState>,
}

impl SocketShared {
    fn state(&self) -> MutexGuard<'_, SocketState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True until the socket closed or its peer went away.
    pub(crate) fn is_open(&self) -> bool {
        let state = self.state();
        !state.disconnected && !state.close_dispatched
    }

    fn push(&self, frame: OutgoingFrame) {
        // A transport that is gone has dropped its receiver; the frame has nowhere to go.
        let _ = self.out.send(frame);
    }

    /// Reports the end of the socket: the close event, once.
    fn finish(self: &Arc<Self>, code: u16, reason: String, was_clean: bool) {
        let (mode, hub) = {
            let mut state = self.state();
            let first = !state.close_dispatched;
            state.close_dispatched = true;
            state.disconnected = true;
            if !first {
                return;
            }
            (state.mode, state.hub.upgrade())
        };
        let event = WebSocketEvent::Close {
            code,
            reason,
            was_clean,
        };
        self.deliver(mode, hub.as_ref(), event);
        if let Some(hub) = hub.filter(|_| mode == Mode::Hibernatable) {
            hub.forget(self.id);
            if let Some(shared) = hub.shared.upgrade() {
                shared.hubs.drop_if_unused(&hub.key);
            }
        }
    }

    /// Where this socket's events go now (its mode and hub); `None` once it has closed.
    fn route(&self) -> Option<(Mode, Option<Arc<Hub>>)> {
        let state = self.state();
        (!state.close_dispatched).then(|| (state.mode, state.hub.upgrade()))
    }

    /// Hands `event` to the standard API's listener or, for a hibernatable socket, to the
    /// object through its hub. Events of a socket nobody accepted are dropped.
    fn deliver(self: &Arc<Self>, mode: Mode, hub: Option<&Arc<Hub>>, event: WebSocketEvent) {
        match mode {
            Mode::Unaccepted => {
                tracing::debug!(
                    socket = self.id,
                    "event on a WebSocket nobody accepted; dropped"
                );
            }
            Mode::Standard => self.to_listener(event),
            Mode::Hibernatable => {
                if let Some(hub) = hub {
                    hub.dispatch(self, event);
                }
            }
        }
    }

    /// Hands an event of a standard socket to its listener.
    fn to_listener(&self, event: WebSocketEvent) {
        if let Some(tx) = &self.state().events_tx {
            // A listener that stopped reading is not an error.
            let _ = tx.send(event);
        }
    }

    /// Closes from the runtime's side (reset, shutdown), without an event to the object.
    pub(crate) fn close_now(&self, code: u16, reason: &str) {
        let mut state = self.state();
        if state.close_sent || state.disconnected {
            return;
        }
        state.close_sent = true;
        state.close_dispatched = true;
        drop(state);
        self.push(OutgoingFrame::Close {
            code,
            reason: reason.to_owned(),
        });
    }
}

/// One WebSocket as an object sees it: the server end of a [`WebSocketPair`], or a socket
/// handed to a `web_socket_*` handler. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct WebSocket {
    socket: Arc<SocketShared>,
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.socket.state();
        f.debug_struct("WebSocket")
            .field("id", &self.socket.id)
            .field("mode", &state.mode)
            .field("tags", &state.tags)
            .finish()
    }
}

impl PartialEq for WebSocket {
    fn eq(&self, other: &Self) -> bool {
        self.socket.id == other.socket.id
    }
}

impl Eq for WebSocket {}

impl WebSocket {
    pub(crate) fn from_shared(socket: Arc<SocketShared>) -> Self {
        Self { socket }
    }

    /// Accepts the socket with the standard API: read its events with
    /// [`events`](WebSocket::events). The object stays in memory while such a socket is
    /// open, and a reset closes it. Prefer `State::accept_web_socket` (hibernation).
    pub fn accept(&self) -> Result<()> {
        let instance = crate::turn::current_instance().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "WebSocket::accept must be called by a handler of the object that keeps the socket",
            )
        })?;
        {
            let mut state = self.socket.state();
            check_unaccepted(&state)?;
            state.mode = Mode::Standard;
            state.shared = Arc::downgrade(&instance.shared);
            let (tx, rx) = mpsc::unbounded_channel();
            state.events_tx = Some(tx);
            state.events_rx = Some(rx);
        }
        instance.pin_socket(Arc::clone(&self.socket));
        Ok(())
    }

    /// The events of a socket accepted with [`accept`](WebSocket::accept); can be taken once.
    pub fn events(&self) -> Result<WebSocketEvents> {
        let mut state = self.socket.state();
        if state.mode != Mode::Standard {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "events() is for sockets accepted with WebSocket::accept; hibernatable sockets deliver events to the web_socket_* handlers",
            ));
        }
        let rx = state.events_rx.take().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "the events of this WebSocket were already taken",
            )
        })?;
        Ok(WebSocketEvents { rx })
    }

    /// Sends a message. Inside a handler it leaves once the writes made before it are
    /// durable (the output gate). Fails if the socket is not accepted, is closing, or the
    /// message is over 32 MiB.
    pub fn send(&self, message: WebSocketMessage) -> Result<()> {
        let len = match &message {
            WebSocketMessage::Text(text) => text.len(),
            WebSocketMessage::Binary(bytes) => bytes.len(),
        };
        if len > limits::MAX_WEB_SOCKET_MESSAGE_BYTES {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "WebSocket message of {len} bytes is over the limit of {} bytes; split it",
                    limits::MAX_WEB_SOCKET_MESSAGE_BYTES
                ),
            ));
        }
        {
            let state = self.socket.state();
            if state.mode == Mode::Unaccepted {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "send on a WebSocket that was not accepted: call State::accept_web_socket or WebSocket::accept first",
                ));
            }
            if state.close_sent || state.disconnected {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "send on a closed WebSocket",
                ));
            }
        }
        let frame = match message {
            WebSocketMessage::Text(text) => OutgoingFrame::Text(text),
            WebSocketMessage::Binary(bytes) => OutgoingFrame::Binary(bytes),
        };
        self.emit(frame);
        Ok(())
    }

    /// Sends a text message; see [`send`](WebSocket::send).
    pub fn send_text(&self, text: impl Into<String>) -> Result<()> {
        self.send(WebSocketMessage::Text(text.into()))
    }

    /// Sends a binary message; see [`send`](WebSocket::send).
    pub fn send_binary(&self, bytes: impl Into<Vec<u8>>) -> Result<()> {
        self.send(WebSocketMessage::Binary(bytes.into()))
    }

    /// Closes the socket with `code` (default 1000) and `reason` (at most 123 UTF-8 bytes).
    /// Codes must be 1000 or 3000..=4999. Closing twice is a no-op.
    pub fn close(&self, code: Option<u16>, reason: Option<&str>) -> Result<()> {
        let code = code.unwrap_or(1000);
        if code != 1000 && !(3000..=4999).contains(&code) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("close code {code} is not allowed: use 1000 or 3000 to 4999"),
            ));
        }
        let reason = reason.unwrap_or("");
        if reason.len() > limits::MAX_WEB_SOCKET_CLOSE_REASON_BYTES {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "close reason of {} bytes is over the limit of {} UTF-8 bytes",
                    reason.len(),
                    limits::MAX_WEB_SOCKET_CLOSE_REASON_BYTES
                ),
            ));
        }
        {
            let mut state = self.socket.state();
            if state.close_sent || state.disconnected {
                return Ok(());
            }
            state.close_sent = true;
        }
        self.emit(OutgoingFrame::Close {
            code,
            reason: reason.to_owned(),
        });
        Ok(())
    }

    /// True until the socket closed or its peer went away.
    pub fn is_open(&self) -> bool {
        self.socket.is_open() && !self.socket.state().close_sent
    }

    /// Keeps a copy of `value` with the socket, across hibernation (in memory, not durable).
    /// The encoded value may be at most 16 KiB.
    pub fn serialize_attachment<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        let bytes =
            codec::encode(value).map_err(|err| Error::from(err).context("serialize_attachment"))?;
        if bytes.len() > limits::MAX_WEB_SOCKET_ATTACHMENT_BYTES {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "a WebSocket attachment cannot be larger than {} bytes; this one encodes to {} bytes: keep large state in storage",
                    limits::MAX_WEB_SOCKET_ATTACHMENT_BYTES,
                    bytes.len()
                ),
            ));
        }
        self.socket.state().attachment = Some(bytes);
        Ok(())
    }

    /// The value last given to [`serialize_attachment`](WebSocket::serialize_attachment),
    /// or `None`.
    pub fn deserialize_attachment<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        let bytes = self.socket.state().attachment.clone();
        match bytes {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes)
                .map(Some)
                .map_err(|err| Error::from(err).context("deserialize_attachment")),
        }
    }

    pub(crate) fn hub_event_timeout(&self) -> Option<u64> {
        let hub = self.socket.state().hub.upgrade();
        hub.and_then(|hub| hub.event_timeout_ms())
    }

    /// Sends `frame` through the output gate of the object whose turn is running, if any.
    fn emit(&self, frame: OutgoingFrame) {
        match crate::turn::current_instance() {
            Some(instance) => {
                let socket = Arc::clone(&self.socket);
                instance.submit_output(Held::Then(Box::new(move || socket.push(frame))));
            }
            None => self.socket.push(frame),
        }
    }
}

fn check_unaccepted(state: &SocketState) -> Result<()> {
    match state.mode {
        Mode::Unaccepted => Ok(()),
        Mode::Standard => Err(Error::new(
            ErrorKind::InvalidInput,
            "this WebSocket was already accepted with WebSocket::accept",
        )),
        Mode::Hibernatable => Err(Error::new(
            ErrorKind::InvalidInput,
            "this WebSocket was already accepted with State::accept_web_socket",
        )),
    }
}

/// The events of a standard WebSocket.
#[derive(Debug)]
pub struct WebSocketEvents {
    rx: mpsc::UnboundedReceiver<WebSocketEvent>,
}

impl WebSocketEvents {
    /// The next event; `None` after the close event.
    pub async fn next(&mut self) -> Option<WebSocketEvent> {
        self.rx.recv().await
    }
}

/// The two ends of a new WebSocket: the object keeps `server` and returns `client` in its
/// response with [`WebSocketPeer::into_response`].
#[derive(Debug)]
#[non_exhaustive]
pub struct WebSocketPair {
    /// The end the server connects to the HTTP client.
    pub client: WebSocketPeer,
    /// The end the object accepts and talks through.
    pub server: WebSocket,
}

impl WebSocketPair {
    /// A new pair, not yet accepted or connected.
    pub fn new() -> Self {
        let (out, out_rx) = mpsc::unbounded_channel();
        let socket = Arc::new(SocketShared {
            id: NEXT_SOCKET_ID.fetch_add(1, Ordering::Relaxed),
            out,
            state: Mutex::new(SocketState {
                mode: Mode::Unaccepted,
                tags: Vec::new(),
                attachment: None,
                hub: Weak::new(),
                shared: Weak::new(),
                events_tx: None,
                events_rx: None,
                close_sent: false,
                close_dispatched: false,
                disconnected: false,
                auto_response_at: None,
            }),
        });
        Self {
            client: WebSocketPeer {
                socket: Arc::clone(&socket),
                out_rx: Arc::new(PeerSlot {
                    socket: Arc::clone(&socket),
                    out_rx: Mutex::new(Some(out_rx)),
                }),
            },
            server: WebSocket { socket },
        }
    }
}

impl Default for WebSocketPair {
    fn default() -> Self {
        Self::new()
    }
}

/// The client end of a [`WebSocketPair`]: returned by the object in a `101` response, and
/// connected by the server to the HTTP client's upgraded connection.
#[derive(Clone)]
pub struct WebSocketPeer {
    socket: Arc<SocketShared>,
    out_rx: Arc<PeerSlot>,
}

/// The frames of a pair not yet connected. If every handle on the client end goes away
/// without connecting (the object's response was dropped, the HTTP upgrade failed), the
/// socket ends as an abnormal close, so it does not linger among the object's sockets.
struct PeerSlot {
    socket: Arc<SocketShared>,
    out_rx: Mutex<Option<mpsc::UnboundedReceiver<OutgoingFrame>>>,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let unconnected = self.out_rx.get_mut().map_or(true, |rx| rx.is_some());
        if unconnected {
            self.socket
                .finish(1006, ABNORMAL_CLOSE_REASON.to_owned(), false);
        }
    }
}

impl fmt::Debug for WebSocketPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketPeer")
            .field("id", &self.socket.id)
            .finish()
    }
}

impl WebSocketPeer {
    /// The `101 Switching Protocols` response that hands this end to the server.
    pub fn into_response(self) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
        response.extensions_mut().insert(self);
        response
    }

    /// The peer a `101` response carries, taken out of it.
    pub fn take_from(response: &mut Response) -> Option<WebSocketPeer> {
        response.extensions_mut().remove::<WebSocketPeer>()
    }

    /// Connects a transport to this end. Works once per pair.
    pub fn connect(self) -> Result<WebSocketConnection> {
        let out_rx = self
            .out_rx
            .out_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    "this WebSocket pair is already connected",
                )
            })?;
        let shared = self.socket.state().shared.upgrade();
        if let Some(shared) = &shared {
            shared
                .metrics
                .web_sockets_open
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(WebSocketConnection {
            socket: self.socket,
            out_rx,
            counted: shared.map(|s| Arc::downgrade(&s)),
        })
    }
}

/// A transport's side of one socket: frames to send, and the calls that report what the peer
/// did. Dropping it without [`closed`](WebSocketConnection::closed) reports an abnormal
/// close (1006).
pub struct WebSocketConnection {
    socket: Arc<SocketShared>,
    out_rx: mpsc::UnboundedReceiver<OutgoingFrame>,
    counted: Option<Weak<RuntimeShared>>,
}

impl fmt::Debug for WebSocketConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketConnection")
            .field("id", &self.socket.id)
            .finish()
    }
}

impl WebSocketConnection {
    /// The next frame to send to the peer. Pending until there is one.
    pub async fn next_frame(&mut self) -> Option<OutgoingFrame> {
        self.out_rx.recv().await
    }

    /// Reports a message from the peer. The auto-response is answered here without
    /// waking the object; other messages go to the object.
    pub fn received(&self, message: WebSocketMessage) {
        // A socket is marked disconnected only together with (or after) its close event.
        let Some((mode, hub)) = self.socket.route() else {
            return;
        };
        if mode == Mode::Hibernatable
            && let Some(hub) = &hub
            && let WebSocketMessage::Text(text) = &message
            && let Some(response) = hub.auto_response_for(text)
        {
            let now = hub.now_ms();
            self.socket.state().auto_response_at = Some(now);
            self.socket.push(OutgoingFrame::Text(response));
            return;
        }
        self.socket
            .deliver(mode, hub.as_ref(), WebSocketEvent::Message(message));
    }

    /// Reports a close frame from the peer (`was_clean` true). The close event is delivered
    /// at most once per socket.
    pub fn closed(&self, code: u16, reason: String) {
        self.socket.finish(code, reason, true);
    }

    /// Reports a protocol or transport error; the transport closes afterwards.
    pub fn failed(&self, message: String) {
        if let Some((mode, hub)) = self.socket.route() {
            self.socket
                .deliver(mode, hub.as_ref(), WebSocketEvent::Error(message));
        }
    }
}

impl Drop for WebSocketConnection {
    fn drop(&mut self) {
        let already = self.socket.state().close_dispatched;
        if already {
            self.socket.state().disconnected = true;
        } else {
            self.socket
                .finish(1006, ABNORMAL_CLOSE_REASON.to_owned(), false);
        }
        if let Some(shared) = self.counted.as_ref().and_then(Weak::upgrade) {
            shared
                .metrics
                .web_sockets_open
                .fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// An event for a `web_socket_*` handler, on its way to the object.
pub(crate) struct SocketDelivery {
    pub(crate) socket: Arc<SocketShared>,
    pub(crate) event: WebSocketEvent,
}

/// The request/response pair the runtime answers by itself on hibernatable sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketRequestResponsePair {
    request: String,
    response: String,
}

impl WebSocketRequestResponsePair {
    /// A pair; each side at most 2,048 bytes.
    pub fn new(request: impl Into<String>, response: impl Into<String>) -> Result<Self> {
        let (request, response) = (request.into(), response.into());
        for (side, text) in [("request", &request), ("response", &response)] {
            if text.len() > limits::MAX_WEB_SOCKET_AUTO_RESPONSE_BYTES {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "the auto-response {side} cannot be larger than {} bytes; it is {} bytes",
                        limits::MAX_WEB_SOCKET_AUTO_RESPONSE_BYTES,
                        text.len()
                    ),
                ));
            }
        }
        Ok(Self { request, response })
    }

    /// The message that triggers the response.
    pub fn request(&self) -> &str {
        &self.request
    }

    /// The answer.
    pub fn response(&self) -> &str {
        &self.response
    }
}

#[derive(Default)]
struct HubInner {
    /// In accept order.
    sockets: BTreeMap<u64, Arc<SocketShared>>,
    auto_response: Option<WebSocketRequestResponsePair>,
    event_timeout_ms: Option<u64>,
}

/// The hibernatable sockets of one object, and their settings; outlives instances.
///
/// It leaves the runtime's map when it has no sockets and no instance: at the instance's
/// eviction if the sockets are gone by then, or when the last socket closes while the object
/// hibernates. `instance_live` changes only under the map's lock, so a hub is never dropped
/// between an activation and the constructor's use of it.
pub(crate) struct Hub {
    key: ObjectKey,
    id: ObjectId,
    shared: Weak<RuntimeShared>,
    inner: Mutex<HubInner>,
    instance_live: std::sync::atomic::AtomicBool,
}

impl Hub {
    fn inner(&self) -> MutexGuard<'_, HubInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn socket_count(&self) -> usize {
        self.inner().sockets.len()
    }

    fn now_ms(&self) -> i64 {
        self.shared
            .upgrade()
            .map_or(0, |shared| shared.clock.now_ms())
    }

    fn auto_response_for(&self, text: &str) -> Option<String> {
        let inner = self.inner();
        let pair = inner.auto_response.as_ref()?;
        (pair.request == text).then(|| pair.response.clone())
    }

    pub(crate) fn event_timeout_ms(&self) -> Option<u64> {
        self.inner().event_timeout_ms
    }

    fn forget(&self, socket: u64) {
        self.inner().sockets.remove(&socket);
    }

    /// Sends an event to the object, waking it if needed.
    fn dispatch(&self, socket: &Arc<SocketShared>, event: WebSocketEvent) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        shared.send_or_fail(Event {
            key: self.key,
            id: self.id.clone(),
            payload: Payload::WebSocket(SocketDelivery {
                socket: Arc::clone(socket),
                event,
            }),
            reply: Reply::Detached,
        });
    }

    /// Closes every socket (a reset), with no events to the object.
    pub(crate) fn close_all(&self, code: u16, reason: &str) {
        let sockets = std::mem::take(&mut self.inner().sockets);
        for socket in sockets.values() {
            socket.close_now(code, reason);
        }
    }
}

/// The hubs of a runtime, by object.
#[derive(Default)]
pub(crate) struct Hubs {
    map: Mutex<std::collections::HashMap<ObjectKey, Arc<Hub>>>,
}

impl fmt::Debug for Hubs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hubs").finish_non_exhaustive()
    }
}

impl Hubs {
    fn map(&self) -> MutexGuard<'_, std::collections::HashMap<ObjectKey, Arc<Hub>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, key: &ObjectKey) -> Option<Arc<Hub>> {
        self.map().get(key).cloned()
    }

    fn get_or_create(
        &self,
        key: ObjectKey,
        id: &ObjectId,
        shared: &Arc<RuntimeShared>,
    ) -> Arc<Hub> {
        // Only an instance creates a hub, so a new hub starts live.
        Arc::clone(self.map().entry(key).or_insert_with(|| {
            Arc::new(Hub {
                key,
                id: id.clone(),
                shared: Arc::downgrade(shared),
                inner: Mutex::new(HubInner::default()),
                instance_live: std::sync::atomic::AtomicBool::new(true),
            })
        }))
    }

    /// An instance of the object was built: its hub, if any, must stay.
    pub(crate) fn instance_started(&self, key: &ObjectKey) {
        if let Some(hub) = self.map().get(key) {
            hub.instance_live.store(true, Ordering::SeqCst);
        }
    }

    /// The last socket closed: drop the hub unless an instance is using it.
    fn drop_if_unused(&self, key: &ObjectKey) {
        let mut map = self.map();
        let unused = map.get(key).is_some_and(|hub| {
            hub.socket_count() == 0 && !hub.instance_live.load(Ordering::SeqCst)
        });
        if unused {
            map.remove(key);
        }
    }

    /// The number of hubs held (sockets or settings of objects).
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }

    /// True if the object has hibernatable sockets open.
    pub(crate) fn has_sockets(&self, key: &ObjectKey) -> bool {
        self.get(key).is_some_and(|hub| hub.socket_count() > 0)
    }

    /// The object's instance went away: drop its hub if no socket needs it, else keep it
    /// for the sockets (hibernation).
    pub(crate) fn release_if_empty(&self, key: &ObjectKey) {
        let mut map = self.map();
        let Some(hub) = map.get(key) else { return };
        hub.instance_live.store(false, Ordering::SeqCst);
        if hub.socket_count() == 0 {
            map.remove(key);
        }
    }

    /// Closes and drops the hub of a reset object.
    pub(crate) fn reset(&self, key: &ObjectKey) {
        let hub = self.map().remove(key);
        if let Some(hub) = hub {
            hub.close_all(1011, "the durable object was reset");
        }
    }
}

/// The hibernation API, reached through `State`.
pub(crate) mod api {
    use super::*;
    use crate::directory::Instance;

    pub(crate) fn accept(instance: &Instance, ws: &WebSocket, tags: &[&str]) -> Result<()> {
        let mut distinct: Vec<String> = Vec::new();
        for tag in tags {
            if tag.chars().count() > limits::MAX_WEB_SOCKET_TAG_CHARS {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "a WebSocket tag cannot be longer than {} characters; one is {}",
                        limits::MAX_WEB_SOCKET_TAG_CHARS,
                        tag.chars().count()
                    ),
                ));
            }
            if !distinct.iter().any(|t| t == tag) {
                distinct.push((*tag).to_owned());
            }
        }
        if distinct.len() > limits::MAX_WEB_SOCKET_TAGS {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "a hibernatable WebSocket cannot have more than {} tags; got {}",
                    limits::MAX_WEB_SOCKET_TAGS,
                    distinct.len()
                ),
            ));
        }
        let hub = instance
            .shared
            .hubs
            .get_or_create(instance.key, &instance.id, &instance.shared);
        let mut inner = hub.inner();
        if inner.sockets.len() >= limits::MAX_HIBERNATABLE_WEB_SOCKETS {
            return Err(Error::overloaded(format!(
                "this object already holds {} hibernatable WebSockets, the limit; close some or spread clients over more objects",
                limits::MAX_HIBERNATABLE_WEB_SOCKETS
            )));
        }
        {
            let mut state = ws.socket.state();
            check_unaccepted(&state)?;
            if state.disconnected || state.close_sent {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "cannot accept a WebSocket that is already closed",
                ));
            }
            state.mode = Mode::Hibernatable;
            state.tags = distinct;
            state.hub = Arc::downgrade(&hub);
            state.shared = Arc::downgrade(&instance.shared);
        }
        inner.sockets.insert(ws.socket.id, Arc::clone(&ws.socket));
        Ok(())
    }

    pub(crate) fn sockets(instance: &Instance, tag: Option<&str>) -> Vec<WebSocket> {
        let Some(hub) = instance.shared.hubs.get(&instance.key) else {
            return Vec::new();
        };
        let inner = hub.inner();
        inner
            .sockets
            .values()
            .filter(|socket| {
                let state = socket.state();
                !state.disconnected && tag.is_none_or(|tag| state.tags.iter().any(|t| t == tag))
            })
            .map(|socket| WebSocket::from_shared(Arc::clone(socket)))
            .collect()
    }

    pub(crate) fn tags(ws: &WebSocket) -> Result<Vec<String>> {
        let state = ws.socket.state();
        if state.mode != Mode::Hibernatable {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "get_tags is only for WebSockets accepted with State::accept_web_socket",
            ));
        }
        Ok(state.tags.clone())
    }

    pub(crate) fn set_auto_response(
        instance: &Instance,
        pair: Option<WebSocketRequestResponsePair>,
    ) {
        let hub = instance
            .shared
            .hubs
            .get_or_create(instance.key, &instance.id, &instance.shared);
        hub.inner().auto_response = pair;
    }

    pub(crate) fn auto_response(instance: &Instance) -> Option<WebSocketRequestResponsePair> {
        instance
            .shared
            .hubs
            .get(&instance.key)
            .and_then(|hub| hub.inner().auto_response.clone())
    }

    pub(crate) fn auto_response_timestamp(ws: &WebSocket) -> Option<i64> {
        ws.socket.state().auto_response_at
    }

    pub(crate) fn set_event_timeout(instance: &Instance, ms: Option<u64>) -> Result<()> {
        if let Some(ms) = ms
            && ms > limits::MAX_WEB_SOCKET_EVENT_TIMEOUT_MS
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "event timeout should not exceed {} ms; got {ms}",
                    limits::MAX_WEB_SOCKET_EVENT_TIMEOUT_MS
                ),
            ));
        }
        let hub = instance
            .shared
            .hubs
            .get_or_create(instance.key, &instance.id, &instance.shared);
        hub.inner().event_timeout_ms = ms.filter(|ms| *ms > 0);
        Ok(())
    }

    pub(crate) fn event_timeout(instance: &Instance) -> Option<u64> {
        instance
            .shared
            .hubs
            .get(&instance.key)
            .and_then(|hub| hub.event_timeout_ms())
    }
}
