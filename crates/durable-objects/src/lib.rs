//! Durable Objects, self-hosted, in Rust.
//!
//! A *Durable Object* is a single-threaded object addressed by a name or an id, with exactly
//! one live instance in the whole system. Callers reach it through a [`Stub`] and call its
//! methods with typed RPC; the object handles one event at a time between awaits, so its code
//! needs no locks.
//!
//! ```
//! use durable_objects::prelude::*;
//! use std::cell::Cell;
//!
//! #[durable_object]
//! pub struct Counter {
//!     value: Cell<i64>,
//! }
//!
//! impl DurableObject for Counter {
//!     fn new(_state: State, _env: Env) -> Self {
//!         Self { value: Cell::new(0) }
//!     }
//! }
//!
//! #[rpc]
//! impl Counter {
//!     /// Adds `by` and returns the new value.
//!     pub async fn increment(&self, by: i64) -> Result<i64> {
//!         self.value.set(self.value.get() + by);
//!         Ok(self.value.get())
//!     }
//! }
//!
//! # fn main() -> anyhow::Result<()> {
//! let data = tempfile::tempdir()?;
//! let runtime = Runtime::builder()
//!     .data_dir(data.path())
//!     .bind::<Counter>("COUNTER")
//!     .build()?;
//! let env = runtime.env();
//! let value = tokio::runtime::Runtime::new()?.block_on(async {
//!     let counter = env.namespace::<Counter>("COUNTER")?.get_by_name("visits");
//!     counter.increment(2).await?;
//!     counter.increment(3).await
//! })?;
//! assert_eq!(value, 5);
//! # Ok(()) }
//! ```
//!
//! The pieces:
//! - [`DurableObject`], [`macro@durable_object`] and [`macro@rpc`] define a class;
//! - [`Runtime`] hosts objects on shard threads over a data folder and gives the [`Env`];
//! - [`Env::namespace`] gives a [`Namespace`], which makes [`ObjectId`]s and [`Stub`]s;
//! - [`State`] is the instance's own handle: its id, [`Storage`], `block_concurrency_while`,
//!   `abort`;
//! - [`Error`] is the one error type, with Cloudflare's `is_retryable`, `is_overloaded`,
//!   `is_remote` and `is_reset` predicates.
//!
//! The execution model (turns, the input gate, resets, eviction) is described in
//! `docs/execution-model.md`, included below.
#![warn(clippy::print_stdout, clippy::print_stderr)]
#![doc = ""]
#![doc = include_str!("../../../docs/execution-model.md")]
#![warn(missing_docs)]

// Lets the macros' `::durable_objects::…` paths resolve inside this crate's own tests.
#[allow(unused_extern_crates)]
extern crate self as durable_objects;

pub use durable_core::{Clock, Error, ErrorKind, IdError, ManualClock, ObjectId, Result, limits};
pub use durable_macros::{durable_object, rpc};
pub use durable_runtime::{
    AlarmInfo, Body, BodySender, DurableObject, Env, MetricsSnapshot, Namespace, Request, Response,
    RpcCall, Runtime, RuntimeBuilder, RuntimeConfig, ScheduledAlarm, StartError, State, Stub,
    SystemClock, http,
};
pub use durable_runtime::{
    DurabilityMode, FromSqlValue, ListOptions, PutOptions, Sql, SqlCursor, SqlParams, SqlRow,
    SqlValue, Storage, SyncKv,
};
pub use durable_runtime::{
    Migration, MigrationError, OutgoingFrame, WebSocket, WebSocketConnection, WebSocketEvent,
    WebSocketEvents, WebSocketMessage, WebSocketPair, WebSocketPeer, WebSocketRequestResponsePair,
};

/// Guides that are longer than an item's docs; their examples are compiled as tests.
pub mod guides {
    #[doc = include_str!("../../../docs/websockets.md")]
    pub mod websockets {}
    #[doc = include_str!("../../../docs/configuration.md")]
    pub mod configuration {}
}

/// The names most code needs: `use durable_objects::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Body, DurableObject, Env, Error, ErrorKind, Namespace, ObjectId, Request, Response, Result,
        Runtime, State, Stub, WebSocket, WebSocketMessage, WebSocketPair, durable_object, rpc,
    };
}

/// Building blocks of the code the macros generate; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use durable_runtime::rpc::NoRpcMethods;
    pub use durable_runtime::{
        LocalBoxFuture, ObjectClass, RawStub, RpcCall, RpcClient, RpcInvocation, RpcValue,
    };

    /// Compile-time check that `T` can be an RPC argument or result.
    pub fn assert_rpc_type<T: durable_runtime::RpcType>() {}
}
