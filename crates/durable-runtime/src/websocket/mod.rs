//! WebSockets held by objects: the pair an object makes in `fetch`, the standard API (the
//! object reads events itself and stays in memory), the hibernation API (events arrive as
//! handler calls, and the socket outlives the instance), and the transport seam the server
//! plugs a real connection into.
//!
//! * [`socket`]: the record every handle on one socket shares, and where its events go (its
//!   [`SocketOwner`](socket::SocketOwner)); the vocabulary of frames and events.
//! * [`handle`]: [`WebSocket`], the object's handle (send and close through the output gate,
//!   attachments, the standard API's `accept`/`events`).
//! * [`transport`]: the seam: [`WebSocketPair`], [`WebSocketPeer`] (the client end) and
//!   [`WebSocketConnection`] (what the server drives with a real connection).
//! * [`hub`]: an object's hibernatable sockets and their settings, kept by the runtime so
//!   they outlive instances.
//! * [`hibernation`]: the hibernation API that `State` exposes.
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

pub(crate) mod handle;
pub(crate) mod hibernation;
pub(crate) mod hub;
pub(crate) mod socket;
pub(crate) mod transport;

pub use handle::{WebSocket, WebSocketEvents};
pub(crate) use hub::Hubs;
pub use hub::WebSocketRequestResponsePair;
pub(crate) use socket::SocketShared;
pub use socket::{OutgoingFrame, WebSocketEvent, WebSocketMessage};
pub use transport::{WebSocketConnection, WebSocketPair, WebSocketPeer};

/// The text of the close event of a peer that vanished without a close frame.
pub const ABNORMAL_CLOSE_REASON: &str = "WebSocket disconnected without sending Close frame.";
