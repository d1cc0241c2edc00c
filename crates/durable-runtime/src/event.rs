//! What travels to an object: an [`Event`] (its object, its [`Payload`], and where its
//! result goes, a [`Reply`]), what comes back (an [`Outcome`]), and the object as events
//! see it, its class erased ([`AnyObject`]).

use std::any::Any;
use std::rc::Rc;
use std::sync::Arc;

use durable_core::{Error, ErrorKind, ObjectId, Result};
use tokio::sync::oneshot;

use crate::LocalBoxFuture;
use crate::alarm::{AlarmCall, AlarmInfo, AlarmOutcome};
use crate::body::{Request, Response};
use crate::core::ObjectKey;
use crate::rpc::{RpcInvocation, RpcValue};
use crate::websocket::socket::{SocketShared, WebSocketEvent, WebSocketMessage};

/// One event for one object, on its way to the object's shard.
pub(crate) struct Event {
    pub(crate) key: ObjectKey,
    pub(crate) id: ObjectId,
    pub(crate) payload: Payload,
    pub(crate) reply: Reply,
}

/// An event's input, as the directory hands it to an instance.
pub(crate) enum Payload {
    Rpc(RpcInvocation),
    /// A call still in its envelope; decoded on the object's thread, as a remote call is.
    RpcEncoded(Vec<u8>),
    Fetch(Request),
    Alarm(AlarmCall),
    /// An event of a hibernatable WebSocket.
    WebSocket(SocketDelivery),
    /// A closure run as a turn of the object (the testing toolkit's `run_in_durable_object`).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    Run(RunInObject),
}

/// A closure run as a turn of an object: it receives the instance (as `Rc<dyn Any>`, to be
/// downcast to its class) and the instance's `State` (boxed as `Any`: this module sits below
/// `state`), and its value travels back as a local RPC value.
pub(crate) type RunInObject =
    Box<dyn FnOnce(Rc<dyn Any>, Box<dyn Any>) -> LocalBoxFuture<Result<RpcValue>> + Send>;

impl Payload {
    /// Bytes the payload holds, as counted against its object's queue limit: the message
    /// of a WebSocket event, the encoded arguments of a call; 0 for what is not held in
    /// memory in full (a fetch streams its body) or is small.
    pub(crate) fn size(&self) -> usize {
        match self {
            Payload::RpcEncoded(bytes) => bytes.len(),
            Payload::WebSocket(delivery) => match &delivery.event {
                WebSocketEvent::Message(WebSocketMessage::Text(text)) => text.len(),
                WebSocketEvent::Message(WebSocketMessage::Binary(bytes)) => bytes.len(),
                _ => 0,
            },
            _ => 0,
        }
    }
}

/// An event for a `web_socket_*` handler, on its way to the object.
pub(crate) struct SocketDelivery {
    pub(crate) socket: Arc<SocketShared>,
    pub(crate) event: WebSocketEvent,
}

/// An event's result, matched to the payload's kind.
pub(crate) enum Outcome {
    Rpc(Result<RpcValue>),
    Fetch(Result<Response>),
    Alarm(Result<AlarmOutcome>),
    /// An event nobody waits for (WebSocket events).
    Done(Result<()>),
}

/// Where an event's result goes.
pub(crate) enum Reply {
    Rpc(oneshot::Sender<Result<RpcValue>>),
    Fetch(oneshot::Sender<Result<Response>>),
    Alarm(oneshot::Sender<Result<AlarmOutcome>>),
    /// An event of a hibernatable WebSocket: nobody waits for it, so a handler's failure is
    /// logged; but an event the object could not take (overloaded) closes the socket with
    /// 1013 "try again later", so its sender learns the message was not handled.
    Socket(Arc<SocketShared>),
}

impl Reply {
    /// Delivers the result. A caller that stopped waiting is not an error.
    pub(crate) fn send(self, outcome: Outcome) {
        match (self, outcome) {
            (Reply::Rpc(tx), Outcome::Rpc(result)) => drop(tx.send(result)),
            (Reply::Fetch(tx), Outcome::Fetch(result)) => drop(tx.send(result)),
            (Reply::Alarm(tx), Outcome::Alarm(result)) => drop(tx.send(result)),
            (Reply::Socket(_), Outcome::Done(Ok(()))) => {}
            // Nobody else hears of it: this is where it is handled.
            (Reply::Socket(_), Outcome::Done(Err(error))) => {
                tracing::warn!(error = %error, "a WebSocket handler failed");
            }
            (reply, _) => reply.fail(Error::new(
                ErrorKind::Internal,
                "an event produced a result of another kind than its request",
            )),
        }
    }

    /// Delivers an error.
    pub(crate) fn fail(self, error: Error) {
        match self {
            Reply::Rpc(tx) => drop(tx.send(Err(error))),
            Reply::Fetch(tx) => drop(tx.send(Err(error))),
            Reply::Alarm(tx) => drop(tx.send(Err(error))),
            Reply::Socket(socket) if error.is_overloaded() => {
                tracing::warn!(error = %error, "a WebSocket message was refused; closing its socket with 1013");
                socket.close_now(1013, "try again later: the object is overloaded");
            }
            Reply::Socket(_) => {
                tracing::warn!(error = %error, "a WebSocket event was not delivered");
            }
        }
    }
}

/// An instance with its class erased, so one shard hosts objects of every class.
pub(crate) trait AnyObject {
    fn handle(self: Rc<Self>, payload: Payload) -> LocalBoxFuture<Outcome>;
    fn alarm(self: Rc<Self>, info: AlarmInfo) -> LocalBoxFuture<Result<()>>;
    /// True if the class implements the alarm handler.
    fn has_alarm_handler(&self) -> bool;
    /// The class's `init` hook.
    fn init(self: Rc<Self>) -> LocalBoxFuture<Result<()>>;
    /// The instance as `Any`, for code that knows its class.
    fn into_any(self: Rc<Self>) -> Rc<dyn Any>;
}
