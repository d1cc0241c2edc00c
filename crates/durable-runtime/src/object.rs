//! What a user's object is: the [`DurableObject`] trait and the handler shapes, and
//! [`ClassVTable`], how a shard builds instances of a class without knowing its type.
//!
//! A class is a struct with `#[durable_object]` (which implements
//! [`ObjectClass`](crate::ObjectClass)) and an `impl DurableObject`. Methods take `&self`:
//! several events may be in progress on one object at once (interleaving at awaits), so
//! in-memory state lives in `Cell`/`RefCell` fields, as in `workers-rs`. The futures handlers return need not be `Send`: an object never leaves its
//! shard thread.
//!
//! Hibernatable WebSocket events arrive as calls of the `web_socket_*` handlers; a class that
//! accepts such sockets without the handler gets an error logged per event.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::rc::Rc;

use durable_core::{Error, ErrorKind, Result};

use crate::LocalBoxFuture;
use crate::alarm::AlarmInfo;
use crate::body::{Request, Response};
use crate::env::Env;
use crate::event::{AnyObject, Outcome, Payload};
use crate::rpc::RpcInvocation;
use crate::state::State;
use crate::stub::ObjectClass;
use crate::websocket::{WebSocket, WebSocketEvent, WebSocketMessage};

/// A Durable Object class: how instances are built and how they handle events.
///
/// Only [`new`](DurableObject::new) is required. Handlers that a class does not implement
/// answer with an error of kind [`ErrorKind::NotImplemented`].
///
/// ```
/// use durable_objects::prelude::*;
/// use std::cell::Cell;
///
/// #[durable_object]
/// pub struct Visits {
///     count: Cell<u64>,
/// }
///
/// impl DurableObject for Visits {
///     fn new(_state: State, _env: Env) -> Self {
///         Self { count: Cell::new(0) }
///     }
///
///     async fn fetch(&self, _request: Request) -> Result<Response> {
///         self.count.set(self.count.get() + 1);
///         Ok(Response::new(Body::from(self.count.get().to_string())))
///     }
/// }
/// ```
#[allow(async_fn_in_trait)] // Handlers run on the object's own thread, so `Send` is not wanted.
pub trait DurableObject: ObjectClass {
    /// Builds an instance: on the first event for the object, and again after eviction or a
    /// reset. Keep it fast; storage calls are synchronous and may be used here.
    fn new(state: State, env: Env) -> Self;

    /// Prepares a new instance before it handles its first event: runs after
    /// [`new`](DurableObject::new), with the input gate closed (no event is delivered until
    /// it returns), and may await and fail. Use it for work that can fail, such as a schema
    /// migration: if it returns `Err`, the instance is discarded, the events waiting for it
    /// fail with the error (as a reset), and the next event builds the object again. The
    /// default does nothing.
    ///
    /// ```
    /// use durable_objects::prelude::*;
    ///
    /// #[durable_object]
    /// pub struct Accounts {
    ///     state: State,
    /// }
    ///
    /// impl DurableObject for Accounts {
    ///     fn new(state: State, _env: Env) -> Self {
    ///         Self { state }
    ///     }
    ///
    ///     async fn init(&self) -> Result<()> {
    ///         // A failed migration fails the first call instead of panicking in `new`.
    ///         self.state.storage().sql().exec(
    ///             "CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, balance INTEGER)",
    ///             (),
    ///         )?;
    ///         Ok(())
    ///     }
    /// }
    /// ```
    async fn init(&self) -> Result<()> {
        Ok(())
    }

    /// Handles a request sent with `Stub::fetch`.
    async fn fetch(&self, request: Request) -> Result<Response> {
        let _ = request;
        Err(missing_handler::<Self>("fetch"))
    }

    /// Handles the object's alarm. Implement it as `async fn alarm(&self, info: AlarmInfo)
    /// -> Result<()>`.
    ///
    /// A class without it cannot set an alarm: `set_alarm` fails at the call, as on
    /// Cloudflare. (The runtime learns whether a class has one by calling `alarm` once
    /// without polling the future it returns, so an implementation must not do work before
    /// its future is polled; an `async fn` never does.)
    fn alarm(&self, info: AlarmInfo) -> impl Future<Output = Result<()>> {
        let _ = info;
        DEFAULT_ALARM_CALLED.with(|called| called.set(true));
        async { Err(missing_handler::<Self>("alarm")) }
    }

    /// Handles a message on a hibernatable WebSocket.
    async fn web_socket_message(&self, ws: WebSocket, message: WebSocketMessage) -> Result<()> {
        let _ = (ws, message);
        Err(missing_handler::<Self>("web_socket_message"))
    }

    /// Handles the close of a hibernatable WebSocket (code 1006, `was_clean` false, when the
    /// peer vanished without a close frame).
    async fn web_socket_close(
        &self,
        ws: WebSocket,
        code: u16,
        reason: String,
        was_clean: bool,
    ) -> Result<()> {
        let _ = (ws, code, reason, was_clean);
        Err(missing_handler::<Self>("web_socket_close"))
    }

    /// Handles an error on a hibernatable WebSocket.
    async fn web_socket_error(&self, ws: WebSocket, error: Error) -> Result<()> {
        let _ = (ws, error);
        Err(missing_handler::<Self>("web_socket_error"))
    }
}

thread_local! {
    /// Set by the default `alarm` when it is called: how `has_alarm_handler` tells a class
    /// that kept the default from one that implemented the handler.
    static DEFAULT_ALARM_CALLED: Cell<bool> = const { Cell::new(false) };
}

fn missing_handler<T: ObjectClass>(handler: &str) -> Error {
    Error::new(
        ErrorKind::NotImplemented,
        format!(
            "{} does not implement the `{handler}` handler: add it to `impl DurableObject for {}`",
            T::CLASS_NAME,
            T::CLASS_NAME
        ),
    )
}

impl<T: DurableObject> AnyObject for T {
    fn handle(self: Rc<Self>, payload: Payload) -> LocalBoxFuture<Outcome> {
        match payload {
            Payload::RpcEncoded(bytes) => match RpcInvocation::from_envelope(&bytes) {
                Ok(call) => self.handle(Payload::Rpc(call)),
                Err(err) => Box::pin(async move { Outcome::Rpc(Err(err)) }),
            },
            Payload::Rpc(call) => {
                let call = T::dispatch_rpc(self, call);
                Box::pin(async move { Outcome::Rpc(call.await.map_err(Error::into_remote)) })
            }
            Payload::Fetch(request) => Box::pin(async move {
                Outcome::Fetch(self.fetch(request).await.map_err(Error::into_remote))
            }),
            Payload::WebSocket(delivery) => Box::pin(async move {
                let ws = WebSocket::from_shared(delivery.socket);
                let timeout = ws.event_timeout_ms();
                let handler = async {
                    match delivery.event {
                        WebSocketEvent::Message(message) => {
                            self.web_socket_message(ws.clone(), message).await
                        }
                        WebSocketEvent::Close {
                            code,
                            reason,
                            was_clean,
                        } => {
                            self.web_socket_close(ws.clone(), code, reason, was_clean)
                                .await
                        }
                        WebSocketEvent::Error(message) => {
                            self.web_socket_error(
                                ws.clone(),
                                Error::new(ErrorKind::Disconnected, message),
                            )
                            .await
                        }
                    }
                };
                let result = match timeout {
                    None => handler.await,
                    Some(ms) => tokio::time::timeout(std::time::Duration::from_millis(ms), handler)
                        .await
                        .unwrap_or_else(|_| {
                            Err(Error::new(
                                ErrorKind::Overloaded,
                                format!("the WebSocket event ran longer than its event timeout of {ms} ms and was canceled"),
                            ))
                        }),
                };
                Outcome::Done(result)
            }),
            // Alarms are run by `alarm::handler::run_alarm`, which calls `AnyObject::alarm`.
            Payload::Alarm(_) => Box::pin(async {
                Outcome::Alarm(Err(Error::new(
                    ErrorKind::Internal,
                    "alarm delivered without its wrapper",
                )))
            }),
            // Run by the directory, which gives the closure the instance's `State`.
            Payload::Run(_) => Box::pin(async {
                Outcome::Rpc(Err(Error::new(
                    ErrorKind::Internal,
                    "a closure delivered without its state",
                )))
            }),
        }
    }

    fn into_any(self: Rc<Self>) -> Rc<dyn std::any::Any> {
        self
    }

    fn alarm(self: Rc<Self>, info: AlarmInfo) -> LocalBoxFuture<Result<()>> {
        Box::pin(async move { DurableObject::alarm(&*self, info).await })
    }

    fn init(self: Rc<Self>) -> LocalBoxFuture<Result<()>> {
        Box::pin(async move {
            DurableObject::init(&*self)
                .await
                .map_err(Error::into_remote)
        })
    }

    fn has_alarm_handler(&self) -> bool {
        DEFAULT_ALARM_CALLED.with(|called| called.set(false));
        let probe = DurableObject::alarm(
            self,
            AlarmInfo {
                retry_count: 0,
                is_retry: false,
                scheduled_time_ms: 0,
            },
        );
        // Never polled: an implemented handler has done nothing yet.
        drop(probe);
        !DEFAULT_ALARM_CALLED.with(|called| called.replace(false))
    }
}

/// How a shard builds instances of one class without knowing its type.
#[derive(Clone, Copy)]
pub(crate) struct ClassVTable {
    pub(crate) class_name: &'static str,
    pub(crate) construct: fn(State, Env) -> Rc<dyn AnyObject>,
}

impl fmt::Debug for ClassVTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClassVTable")
            .field("class_name", &self.class_name)
            .finish()
    }
}

/// The object of a [stand-in class](crate::RuntimeBuilder::bind_stand_in): no state of its
/// own and no handlers; only an operator's operations (`Payload::Run`) reach its storage.
struct StandIn {
    class: &'static str,
}

impl StandIn {
    fn refused(&self) -> Error {
        Error::new(
            ErrorKind::NotImplemented,
            format!(
                "the objects of {} are opened by a tool, without their class: they take no calls",
                self.class
            ),
        )
    }
}

impl AnyObject for StandIn {
    fn handle(self: Rc<Self>, payload: Payload) -> LocalBoxFuture<Outcome> {
        let error = self.refused();
        Box::pin(async move {
            match payload {
                Payload::Fetch(_) => Outcome::Fetch(Err(error)),
                Payload::Alarm(_) => Outcome::Alarm(Err(error)),
                Payload::WebSocket(_) => Outcome::Done(Err(error)),
                _ => Outcome::Rpc(Err(error)),
            }
        })
    }

    fn into_any(self: Rc<Self>) -> Rc<dyn std::any::Any> {
        self
    }

    fn alarm(self: Rc<Self>, _info: AlarmInfo) -> LocalBoxFuture<Result<()>> {
        let error = self.refused();
        Box::pin(async move { Err(error) })
    }

    fn init(self: Rc<Self>) -> LocalBoxFuture<Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Alarms may be set through it (they run when the node, with the class, runs again).
    fn has_alarm_handler(&self) -> bool {
        true
    }
}

impl ClassVTable {
    /// A stand-in for class `class_name` (see [`StandIn`]); the name lives as long as the
    /// process (a tool binds a few).
    pub(crate) fn stand_in(class_name: &str) -> Self {
        fn construct(state: State, _env: Env) -> Rc<dyn AnyObject> {
            Rc::new(StandIn {
                class: state.class_name(),
            })
        }
        Self {
            class_name: Box::leak(class_name.to_owned().into_boxed_str()),
            construct,
        }
    }

    pub(crate) fn of<T: DurableObject>() -> Self {
        fn construct<T: DurableObject>(state: State, env: Env) -> Rc<dyn AnyObject> {
            Rc::new(T::new(state, env))
        }
        Self {
            class_name: T::CLASS_NAME,
            construct: construct::<T>,
        }
    }
}
