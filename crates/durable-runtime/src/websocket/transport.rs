//! The transport seam: [`WebSocketPair`] (made by an object in `fetch`), the client end
//! [`WebSocketPeer`] (carried out in the `101` response) and [`WebSocketConnection`], through
//! which the server feeds a real connection's frames in and takes the object's frames out.
//! The runtime knows no HTTP or WebSocket library; the server adapts one to this seam.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};

use durable_core::{Error, ErrorKind, Result};
use tokio::sync::mpsc;

use super::ABNORMAL_CLOSE_REASON;
use super::handle::WebSocket;
use super::socket::{Mode, OutgoingFrame, SocketShared, WebSocketEvent, WebSocketMessage};
use crate::body::{Body, Response};
use crate::metrics::Metrics;

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
        let socket = SocketShared::new(out);
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
        let metrics = self.socket.state().metrics.upgrade();
        if let Some(metrics) = &metrics {
            metrics.web_sockets_open.fetch_add(1, Ordering::Relaxed);
        }
        Ok(WebSocketConnection {
            socket: self.socket,
            out_rx,
            counted: metrics.map(|m| Arc::downgrade(&m)),
        })
    }
}

/// A transport's side of one socket: frames to send, and the calls that report what the peer
/// did. Dropping it without [`closed`](WebSocketConnection::closed) reports an abnormal
/// close (1006).
pub struct WebSocketConnection {
    socket: Arc<SocketShared>,
    out_rx: mpsc::UnboundedReceiver<OutgoingFrame>,
    counted: Option<Weak<Metrics>>,
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
        let Some((mode, owner)) = self.socket.route() else {
            return;
        };
        if mode == Mode::Hibernatable
            && let Some(owner) = &owner
            && let WebSocketMessage::Text(text) = &message
            && let Some((response, now)) = owner.auto_response(text)
        {
            self.socket.state().auto_response_at = Some(now);
            self.socket.push(OutgoingFrame::Text(response));
            return;
        }
        self.socket
            .deliver(mode, owner.as_ref(), WebSocketEvent::Message(message));
    }

    /// Reports a close frame from the peer (`was_clean` true). The close event is delivered
    /// at most once per socket.
    pub fn closed(&self, code: u16, reason: String) {
        self.socket.finish(code, reason, true);
    }

    /// Reports a protocol or transport error; the transport closes afterwards.
    pub fn failed(&self, message: String) {
        if let Some((mode, owner)) = self.socket.route() {
            self.socket
                .deliver(mode, owner.as_ref(), WebSocketEvent::Error(message));
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
        if let Some(metrics) = self.counted.as_ref().and_then(Weak::upgrade) {
            metrics.web_sockets_open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
