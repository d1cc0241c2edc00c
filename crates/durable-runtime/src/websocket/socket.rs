//! The record every handle on one socket shares ([`SocketShared`]): its mode, tags,
//! attachment, the frames waiting for the peer, and where its events go: to the standard
//! API's listener, or through the socket's [`SocketOwner`] (its object's hub) to the
//! object. The vocabulary of sockets lives here too ([`WebSocketMessage`],
//! [`WebSocketEvent`], [`OutgoingFrame`]). This module knows neither instances nor shards:
//! what it needs of them comes through [`SocketOwner`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use durable_core::{Error, ErrorKind, Result};
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// Where a hibernatable socket's events go, and its object's socket settings: the object's
/// hub implements it.
pub(crate) trait SocketOwner: Send + Sync {
    /// Sends `event` of `socket` to the object, waking it if needed.
    fn dispatch(&self, socket: &Arc<SocketShared>, event: WebSocketEvent);
    /// `socket` closed: the owner forgets it.
    fn forget(&self, socket: u64);
    /// The answer to `text` if it is the auto-response's request, and the time to record
    /// as the socket's auto-response timestamp (epoch ms).
    fn auto_response(&self, text: &str) -> Option<(String, i64)>;
    /// The time limit of one event of the object's hibernatable sockets, if any.
    fn event_timeout_ms(&self) -> Option<u64>;
}

static NEXT_SOCKET_ID: AtomicU64 = AtomicU64::new(1);

/// A message received on a WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebSocketMessage {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

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

/// An event of a standard (non-hibernatable) WebSocket, read with
/// [`WebSocketEvents::next`](super::WebSocketEvents::next).
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
pub(crate) enum Mode {
    Unaccepted,
    Standard,
    Hibernatable,
}

pub(crate) struct SocketState {
    pub(crate) mode: Mode,
    pub(crate) tags: Vec<String>,
    pub(crate) attachment: Option<Vec<u8>>,
    /// The object's hub, for a hibernatable socket.
    pub(crate) owner: Option<Weak<dyn SocketOwner>>,
    /// The runtime's counters, once accepted.
    pub(crate) metrics: Weak<Metrics>,
    pub(crate) events_tx: Option<mpsc::UnboundedSender<WebSocketEvent>>,
    pub(crate) events_rx: Option<mpsc::UnboundedReceiver<WebSocketEvent>>,
    /// A close frame was queued to the peer.
    pub(crate) close_sent: bool,
    /// The close event was delivered (at most once).
    pub(crate) close_dispatched: bool,
    /// The transport is gone.
    pub(crate) disconnected: bool,
    pub(crate) auto_response_at: Option<i64>,
}

/// What every handle on one socket shares.
pub(crate) struct SocketShared {
    pub(crate) id: u64,
    pub(crate) out: mpsc::UnboundedSender<OutgoingFrame>,
    pub(crate) state: Mutex<SocketState>,
}

impl SocketShared {
    /// A new socket, not yet accepted, whose frames for the peer go to `out`.
    pub(crate) fn new(out: mpsc::UnboundedSender<OutgoingFrame>) -> Arc<Self> {
        Arc::new(Self {
            id: NEXT_SOCKET_ID.fetch_add(1, Ordering::Relaxed),
            out,
            state: Mutex::new(SocketState {
                mode: Mode::Unaccepted,
                tags: Vec::new(),
                attachment: None,
                owner: None,
                metrics: Weak::new(),
                events_tx: None,
                events_rx: None,
                close_sent: false,
                close_dispatched: false,
                disconnected: false,
                auto_response_at: None,
            }),
        })
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, SocketState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True until the socket closed or its peer went away.
    pub(crate) fn is_open(&self) -> bool {
        let state = self.state();
        !state.disconnected && !state.close_dispatched
    }

    pub(crate) fn push(&self, frame: OutgoingFrame) {
        // A transport that is gone has dropped its receiver; the frame has nowhere to go.
        let _ = self.out.send(frame);
    }

    /// Reports the end of the socket: the close event, once.
    pub(crate) fn finish(self: &Arc<Self>, code: u16, reason: String, was_clean: bool) {
        let (mode, owner) = {
            let mut state = self.state();
            let first = !state.close_dispatched;
            state.close_dispatched = true;
            state.disconnected = true;
            if !first {
                return;
            }
            (state.mode, state.owner.as_ref().and_then(Weak::upgrade))
        };
        let event = WebSocketEvent::Close {
            code,
            reason,
            was_clean,
        };
        self.deliver(mode, owner.as_ref(), event);
        if let Some(owner) = owner.filter(|_| mode == Mode::Hibernatable) {
            owner.forget(self.id);
        }
    }

    /// Where this socket's events go now (its mode and owner); `None` once it has closed.
    pub(crate) fn route(&self) -> Option<(Mode, Option<Arc<dyn SocketOwner>>)> {
        let state = self.state();
        (!state.close_dispatched)
            .then(|| (state.mode, state.owner.as_ref().and_then(Weak::upgrade)))
    }

    /// The owner of a hibernatable socket, if it is still there.
    pub(crate) fn owner(&self) -> Option<Arc<dyn SocketOwner>> {
        self.state().owner.as_ref().and_then(Weak::upgrade)
    }

    /// Hands `event` to the standard API's listener or, for a hibernatable socket, to the
    /// object through its owner. Events of a socket nobody accepted are dropped.
    pub(crate) fn deliver(
        self: &Arc<Self>,
        mode: Mode,
        owner: Option<&Arc<dyn SocketOwner>>,
        event: WebSocketEvent,
    ) {
        match mode {
            Mode::Unaccepted => {
                tracing::debug!(
                    socket = self.id,
                    "event on a WebSocket nobody accepted; dropped"
                );
            }
            Mode::Standard => self.to_listener(event),
            Mode::Hibernatable => {
                if let Some(owner) = owner {
                    owner.dispatch(self, event);
                }
            }
        }
    }

    /// Hands an event of a standard socket to its listener.
    pub(crate) fn to_listener(&self, event: WebSocketEvent) {
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

pub(crate) fn check_unaccepted(state: &SocketState) -> Result<()> {
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
