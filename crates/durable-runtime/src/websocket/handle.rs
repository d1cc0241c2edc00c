//! [`WebSocket`]: one socket as an object sees it: send and close (through the output
//! gate), attachments, and the standard API (`accept` and [`WebSocketEvents`]).

use std::fmt;
use std::sync::Arc;

use durable_core::{Error, ErrorKind, Result, codec, limits};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::socket::{
    Mode, OutgoingFrame, SocketShared, WebSocketEvent, WebSocketMessage, check_unaccepted,
};
use crate::output::Output;

/// One WebSocket as an object sees it: the server end of a
/// [`WebSocketPair`](super::WebSocketPair), or a socket handed to a `web_socket_*` handler.
/// Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct WebSocket {
    pub(crate) socket: Arc<SocketShared>,
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
            state.metrics = Arc::downgrade(&instance.shared.metrics);
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
    /// Codes are those RFC 6455 lets an endpoint send: 1000–1003 and 1007–1014 (1009
    /// "message too big", 1011 "internal error", 1013 "try again later", ...) and the
    /// application range 3000–4999; the reserved 1004–1006 and 1015 are refused. Closing
    /// twice is a no-op.
    pub fn close(&self, code: Option<u16>, reason: Option<&str>) -> Result<()> {
        let code = code.unwrap_or(1000);
        let sendable = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
        if !sendable {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "close code {code} is not allowed: use 1000-1003, 1007-1014 or 3000-4999 (1004-1006 and 1015 are reserved)"
                ),
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

    /// The time limit of one event of this (hibernatable) socket, if any.
    pub(crate) fn event_timeout_ms(&self) -> Option<u64> {
        self.socket
            .owner()
            .and_then(|owner| owner.event_timeout_ms())
    }

    /// Sends `frame` through the output gate of the object whose turn is running, if any.
    fn emit(&self, frame: OutgoingFrame) {
        match crate::turn::current_instance() {
            Some(instance) => {
                let socket = Arc::clone(&self.socket);
                instance.submit_output(Output::Then(Box::new(move || socket.push(frame))));
            }
            None => self.socket.push(frame),
        }
    }
}

/// The events of a standard WebSocket.
#[derive(Debug)]
pub struct WebSocketEvents {
    pub(crate) rx: mpsc::UnboundedReceiver<WebSocketEvent>,
}

impl WebSocketEvents {
    /// The next event; `None` after the close event.
    pub async fn next(&mut self) -> Option<WebSocketEvent> {
        self.rx.recv().await
    }
}
