//! The object runtime: where objects live, one instance per id, and how events reach them.
//!
//! * [`Runtime`] owns the shard threads ([`shard`]) and the data folder; it is built with
//!   [`RuntimeBuilder`] and hands out the [`Env`].
//! * Each shard thread runs a current-thread Tokio runtime with a `LocalSet` and an
//!   [`directory`] of the objects it hosts; objects need not be `Send`.
//! * Every event (RPC call, fetch) becomes a local task wrapped in a turn driver ([`turn`])
//!   that enforces the input gate ([`gate`]), start order, and reset on panic or `abort()`.
//! * [`Env`], [`Namespace`] and [`Stub`] are the caller's side; they are `Send + Sync` and
//!   carry calls to the shard that owns the object ([`stub`], [`rpc`]).
//!
//! * WebSockets ([`websocket`]): pairs, the standard and hibernation APIs, and the transport
//!   seam the server connects real sockets to.
//!
//! Architecture invariant: this crate knows nothing of HTTP servers, config files or SQL; it
//! defines the seams (`fetch` with an `http` request, the turn driver) that storage and the
//! server plug into. Wall-clock time comes only from a [`durable_core::Clock`].
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod alarm;
pub mod body;
pub mod clock;
pub mod directory;
pub mod env;
pub mod gate;
pub mod keys;
pub mod metrics;
pub mod migrations;
pub mod object;
pub mod output;
pub mod rpc;
pub mod runtime;
pub mod shard;
pub mod state;
pub mod storage;
pub mod stub;
pub mod turn;
pub mod websocket;

/// The `http` crate, for building requests and responses (`http::StatusCode`, `http::Method`).
pub use ::http;
pub use alarm::ScheduledAlarm;
pub use body::{Body, BodySender, Request, Response};
pub use clock::SystemClock;
pub use durable_storage::{
    DurabilityMode, FromSqlValue, ListOptions, SYNC_LATENCY_BUCKETS, SqlCursor, SqlParams, SqlRow,
    SqlValue,
};
pub use env::{Env, Namespace};
pub use metrics::MetricsSnapshot;
pub use migrations::{Migration, MigrationError};
pub use object::{AlarmInfo, DurableObject, ObjectClass, WebSocketMessage};
pub use rpc::{RpcArgs, RpcCall, RpcClient, RpcInvocation, RpcType, RpcValue};
pub use runtime::{MetricsHandle, Runtime, RuntimeBuilder, RuntimeConfig, StartError};
pub use state::State;
pub use storage::{PutOptions, Sql, Storage, SyncKv};
pub use stub::{RawStub, Stub};
pub use websocket::{
    OutgoingFrame, WebSocket, WebSocketConnection, WebSocketEvent, WebSocketEvents, WebSocketPair,
    WebSocketPeer, WebSocketRequestResponsePair,
};

pub use durable_core::{Error, ErrorKind, ObjectId, Result};

/// A boxed future that need not be `Send`: what object handlers return.
pub type LocalBoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'static>>;
