//! The object runtime: where objects live, one instance per id, and how events reach them.
//!
//! Layers, bottom up (a module imports only from its own layer's helpers or lower layers;
//! ARCHITECTURE.md has the full map):
//!
//! 1. `core`: the deterministic rules (output order, input gate and start order, admission,
//!    the alarm timetable) as plain types with no threads, channels or clock.
//! 2. [`commit`]: the commit pipeline of one instance and the capture point, over
//!    `durable-storage`, with the alarm scheduler's bookkeeping (`alarm::scheduler`).
//! 3. The instance: `instance` (one live object, its gates and pipeline), `turn` (the turn
//!    driver), `state` and `storage` (the object's own API), `websocket`, `alarm::handler`.
//! 4. Routing: `event` (what travels), `shard` (threads, admission), `directory` (one per
//!    shard), `alarm::delivery` (the scheduler's thread), `env`, `stub`, `rpc`.
//! 5. Assembly: `runtime` ([`Runtime`], [`RuntimeBuilder`]), `shared`, `data_dir`,
//!    `migrations`, `metrics`.
//!
//! Architecture invariant: this crate knows nothing of HTTP servers, config files or SQL; it
//! defines the seams (`fetch` with an `http` request, the WebSocket transport, the commit
//! observer) that storage and the server plug into. Wall-clock time comes only from a
//! [`durable_core::Clock`].
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod admin;
mod alarm;
mod batch_writer;
mod body;
mod catalog;
mod clock;
pub mod commit;
mod core;
mod data_dir;
mod descriptors;
mod directory;
mod env;
mod event;
mod history;
mod instance;
mod metrics;
mod migrations;
mod monitor;
mod object;
mod output;
mod rpc;
mod runtime;
mod shard;
mod shared;
mod state;
mod storage;
mod stub;
#[cfg(feature = "testing")]
pub mod testing;
mod turn;
mod websocket;

/// The `http` crate, for building requests and responses (`http::StatusCode`, `http::Method`).
pub use ::http;
pub use admin::{
    Admin, AdminNamespace, AdminRows, AdminSocket, AdminTarget, ImportReport, ObjectContent,
};
pub use alarm::{AlarmInfo, ScheduledAlarm};
pub use body::{Body, BodySender, Request, Response};
pub use clock::SystemClock;
pub use descriptors::{DescriptorBudget, FDS_PER_DATABASE, raise_nofile_limit};
pub use durable_log::CompactReport;
pub use durable_storage::{
    CommitFrames, DurabilityMode, FromSqlValue, IntoSqlParam, ListOptions, SYNC_LATENCY_BUCKETS,
    SqlCursor, SqlError, SqlParams, SqlRow, SqlValue, SqliteCode, ValueError, WalFrame,
    WalPosition,
};
pub use env::{Env, Namespace};
pub use history::CommitLogSetting;
pub use metrics::{MetricsSnapshot, NodeHealth, ShardHealth};
pub use migrations::{Migration, MigrationError};
pub use object::DurableObject;
pub use rpc::{ReplyMode, RpcArgs, RpcCall, RpcInvocation, RpcType, RpcValue};
pub use runtime::{MetricsHandle, Runtime, RuntimeBuilder, RuntimeConfig, StartError};
pub use state::State;
pub use storage::{PutOptions, Sql, Storage, SyncKv, Transaction};
pub use stub::{NoRpcMethods, ObjectClass, RawStub, RpcClient, Stub};
pub use websocket::{
    ABNORMAL_CLOSE_REASON, OutgoingFrame, WebSocket, WebSocketConnection, WebSocketEvent,
    WebSocketEvents, WebSocketMessage, WebSocketPair, WebSocketPeer, WebSocketRequestResponsePair,
};

pub use durable_core::{Error, ErrorKind, ObjectId, Result};

/// A boxed future that need not be `Send`: what object handlers return.
pub type LocalBoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'static>>;
