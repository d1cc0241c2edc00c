//! Stubs: the caller's handle on one object, and the class glue `#[durable_object]` and
//! `#[rpc]` generate for it ([`ObjectClass`], [`RpcClient`], [`NoRpcMethods`]).
//!
//! A [`Stub<T>`] is `Send + Sync + Clone` and dereferences to the class's generated client,
//! whose methods (from `#[rpc]`) send a typed call. Sending happens when a method is called,
//! not when its future is first polled: calls made through one stub arrive in the order they
//! were made (E-order), even if their futures are awaited in another order.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::rc::Rc;
use std::sync::Arc;

use durable_core::envelope::CallEnvelope;
use durable_core::{Error, ErrorKind, ObjectId, Result};
use tokio::sync::oneshot;

use crate::LocalBoxFuture;
use crate::body::{Request, Response};
use crate::core::ObjectKey;
use crate::event::{Event, Payload, Reply};
use crate::output::Output;
use crate::rpc::{RpcCall, RpcInvocation, RpcType, RpcValue};
use crate::shared::RuntimeShared;

/// An untyped stub: the id plus the route to the object's shard.
#[derive(Clone)]
pub struct RawStub {
    id: ObjectId,
    target: Target,
}

#[derive(Clone)]
enum Target {
    Live { shared: Arc<RuntimeShared>, ns: u32 },
    Broken(Error),
}

impl fmt::Debug for RawStub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawStub").field("id", &self.id).finish()
    }
}

impl RawStub {
    pub(crate) fn live(id: ObjectId, shared: Arc<RuntimeShared>, ns: u32) -> Self {
        Self {
            id,
            target: Target::Live { shared, ns },
        }
    }

    pub(crate) fn broken(id: ObjectId, error: Error) -> Self {
        Self {
            id,
            target: Target::Broken(error),
        }
    }

    /// The id of the object.
    pub fn id(&self) -> &ObjectId {
        &self.id
    }

    /// The runtime this stub reaches and its object's namespace index, or why it reaches
    /// none.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn target(&self) -> Result<(&Arc<RuntimeShared>, u32)> {
        match &self.target {
            Target::Live { shared, ns } => Ok((shared, *ns)),
            Target::Broken(error) => Err(error.clone()),
        }
    }

    /// Sends an event; failures reach the caller through `reply`. Inside an object's turn
    /// the event passes that object's output gate first.
    pub(crate) fn send(&self, payload: Payload, reply: Reply) {
        match &self.target {
            Target::Broken(error) => reply.fail(error.clone()),
            Target::Live { shared, ns } => {
                let event = Event {
                    key: ObjectKey::new(*ns, &self.id),
                    id: self.id.clone(),
                    payload,
                    reply,
                };
                match crate::turn::current_instance() {
                    Some(instance) => instance.submit_output(Output::Send {
                        event,
                        router: Arc::clone(&shared.router),
                    }),
                    None => shared.send_or_fail(event),
                }
            }
        }
    }

    fn encodes(&self) -> bool {
        matches!(&self.target, Target::Live { shared, .. } if shared.config.encode_rpc)
    }

    /// Sends a call of `method` with the arguments tuple `args`; what generated client
    /// methods do.
    pub fn call<A: RpcType, R: RpcType>(&self, method: &'static str, args: A) -> RpcCall<R> {
        let payload = if self.encodes() {
            match CallEnvelope::encode(method, &args) {
                Ok(bytes) => Payload::RpcEncoded(bytes),
                Err(err) => {
                    return RpcCall::failed(
                        Error::from(err).context(format!("call {method}: encode arguments")),
                    );
                }
            }
        } else {
            Payload::Rpc(RpcInvocation::local(method, Box::new(args)))
        };
        let (tx, rx) = oneshot::channel();
        self.send(payload, Reply::Rpc(tx));
        RpcCall::waiting(rx)
    }

    /// Sends an HTTP request to the object's `fetch` handler.
    pub fn fetch(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<Response>> + Send + 'static {
        let sent = if request.uri().scheme().is_none() || request.uri().authority().is_none() {
            Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "stub fetch needs an absolute URL such as http://object/path, got {:?}",
                    request.uri().to_string()
                ),
            ))
        } else {
            let (tx, rx) = oneshot::channel();
            self.send(Payload::Fetch(request), Reply::Fetch(tx));
            Ok(rx)
        };
        async move {
            match sent {
                Err(err) => Err(err),
                Ok(rx) => rx.await.unwrap_or_else(|_| {
                    Err(Error::disconnected(
                        "the object's shard stopped before it replied; retry the request",
                    ))
                }),
            }
        }
    }
}

/// A typed handle on one object of class `T`.
///
/// Calling a method sends it to the object; `Stub<T>` dereferences to the client
/// `#[durable_object]` generated for `T`, which `#[rpc]` gives one method per public method.
///
/// ```no_run
/// # use durable_objects::prelude::*;
/// # #[durable_object] pub struct Counter;
/// # impl DurableObject for Counter { fn new(_: State, _: Env) -> Self { Counter } }
/// # #[rpc] impl Counter { pub async fn increment(&self, by: i64) -> Result<i64> { Ok(by) } }
/// # async fn f(env: Env) -> Result<()> {
/// let stub: Stub<Counter> = env.namespace::<Counter>("COUNTER")?.get_by_name("a");
/// let value = stub.increment(1).await?;
/// # Ok(()) }
/// ```
pub struct Stub<T: ObjectClass> {
    client: T::Client,
}

impl<T: ObjectClass> Stub<T> {
    pub(crate) fn from_raw(raw: RawStub) -> Self {
        Self {
            client: T::Client::from_raw(raw),
        }
    }

    /// The id of the object this stub reaches.
    pub fn id(&self) -> &ObjectId {
        self.client.raw().id()
    }

    /// The name the object was addressed by, for stubs made with `get_by_name` or a
    /// name-derived id.
    pub fn name(&self) -> Option<&str> {
        self.id().name()
    }

    /// Sends an HTTP request to the object's `fetch` handler. The URL must be absolute
    /// (`http://object/path`); its host is not resolved.
    pub fn fetch(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<Response>> + Send + 'static {
        self.client.raw().fetch(request)
    }

    /// The untyped stub.
    pub fn raw(&self) -> &RawStub {
        self.client.raw()
    }
}

impl<T: ObjectClass> Clone for Stub<T> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
        }
    }
}

impl<T: ObjectClass> Deref for Stub<T> {
    type Target = T::Client;

    fn deref(&self) -> &T::Client {
        &self.client
    }
}

impl<T: ObjectClass> fmt::Debug for Stub<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stub")
            .field("class", &T::CLASS_NAME)
            .field("id", self.id())
            .finish()
    }
}

/// The glue `#[durable_object]` generates: the class name, the typed client that
/// `Stub<Self>` dereferences to, and the RPC dispatcher that `#[rpc]` fills in.
///
/// Not implemented by hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a durable object class",
    label = "add `#[durable_object]` to the struct `{Self}`",
    note = "`#[durable_object]` generates the class glue that `impl DurableObject` and stubs need"
)]
pub trait ObjectClass: Sized + 'static {
    /// The class name: the struct's name, as used in configuration and on disk.
    const CLASS_NAME: &'static str;
    /// The typed client: `Stub<Self>` dereferences to it, and `#[rpc]` adds its methods.
    type Client: RpcClient;
    /// Runs one RPC call on the instance.
    fn dispatch_rpc(this: Rc<Self>, call: RpcInvocation) -> LocalBoxFuture<Result<RpcValue>>;
}

/// The typed client `#[durable_object]` generates for a class; `Stub<T>` dereferences to it.
pub trait RpcClient: Clone + Send + Sync + 'static {
    /// Wraps an untyped stub.
    fn from_raw(raw: RawStub) -> Self;
    /// The untyped stub inside.
    fn raw(&self) -> &RawStub;
}

/// The dispatcher of a class without `#[rpc]` methods.
///
/// `#[rpc]` defines an inherent `__durable_rpc_dispatch` on the class, which method resolution
/// prefers over this trait's; a class without `#[rpc]` gets this one, which knows no method.
pub trait NoRpcMethods {
    /// Answers every call with "method not implemented". Deprecated so that a class without
    /// an `#[rpc]` block gets a warning that says why its stub has no methods.
    #[deprecated(
        note = "this class has no `#[rpc]` impl block, so `Stub<ThisClass>` has no methods to call: put `#[rpc]` on the `impl` block of its `pub async fn` methods. A class called only through `fetch` or WebSockets says so with an empty `#[rpc] impl ThisClass {}`"
    )]
    fn __durable_rpc_dispatch(
        self: Rc<Self>,
        call: RpcInvocation,
    ) -> LocalBoxFuture<Result<RpcValue>>;
}

impl<T: ObjectClass> NoRpcMethods for T {
    fn __durable_rpc_dispatch(
        self: Rc<Self>,
        call: RpcInvocation,
    ) -> LocalBoxFuture<Result<RpcValue>> {
        let error = call.unknown_method(T::CLASS_NAME);
        Box::pin(async move { Err(error) })
    }
}
