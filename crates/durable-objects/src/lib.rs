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
//! - [`State`] is the instance's own handle: its id, its [`storage`], `block_concurrency_while`,
//!   `abort`, and the hibernation API of its [`websocket`]s;
//! - [`Error`] is the one error type, with Cloudflare's `is_retryable`, `is_overloaded`,
//!   `is_remote` and `is_reset` predicates.
//!
//! The modules group what the objects use beyond that: [`storage`] (SQL, KV, transactions),
//! [`websocket`] (sockets objects accept), [`transport`] (the seam a server connects real
//! sockets to), [`commit`] (the capture point every commit passes), and the [`guides`].
//! The execution model (turns, the input gate, resets, eviction) is included below.
//!
//! Feature `testing`: the testing toolkit, `durable_objects::testing` (a runtime per test with its own data
//! folder and a manual clock, closures run inside objects, alarms on demand, eviction,
//! resets and storage faults), walked through in the `guides::testing` guide.
#![warn(clippy::print_stdout, clippy::print_stderr)]
#![doc = ""]
#![doc = include_str!("../../../docs/execution-model.md")]
#![warn(missing_docs)]

// Lets the macros' `::durable_objects::…` paths resolve inside this crate's own tests.
#[allow(unused_extern_crates)]
extern crate self as durable_objects;

pub use durable_core::{
    Clock, Error, ErrorDetail, ErrorKind, IdError, Limit, ManualClock, ObjectId, Result, ResultExt,
    limits,
};
pub use durable_macros::{durable_object, rpc};
/// Alarms are explained in the [alarms guide](crate::guides::alarms): one per object, set
/// with [`Storage::set_alarm`](crate::storage::Storage::set_alarm), delivered at least once.
#[doc(inline)]
pub use durable_runtime::AlarmInfo;
/// A class's instances run one event at a time between awaits, behind an input gate, and
/// are reset on a panic: the [execution model](crate::guides::execution_model).
#[doc(inline)]
pub use durable_runtime::DurableObject;
/// Every setting of a runtime; a server's `durable` configuration keys set some of them
/// (the [configuration guide](crate::guides::configuration)).
#[doc(inline)]
pub use durable_runtime::RuntimeConfig;
/// The instance's own handle. `block_concurrency_while` and resets are explained in the
/// [execution model](crate::guides::execution_model), storage in the
/// [storage guide](crate::guides::storage), sockets in the
/// [WebSockets guide](crate::guides::websockets).
#[doc(inline)]
pub use durable_runtime::State;
/// Where every object's history is kept: the local archive (the default), PostgreSQL, or
/// nowhere (the [recovery guide](crate::guides::recovery)).
#[doc(inline)]
pub use durable_runtime::{
    Admin, AdminNamespace, AdminRows, AdminSocket, AdminTarget, CommitLogSetting, CompactReport,
    ImportReport, ObjectContent,
};
pub use durable_runtime::{
    Body, BodySender, DescriptorBudget, Env, MetricsHandle, MetricsSnapshot, Migration,
    MigrationError, Namespace, NodeHealth, RawStub, Request, Response, RpcCall, Runtime,
    RuntimeBuilder, ScheduledAlarm, ShardHealth, StartError, Stub, SystemClock, http,
};

/// An object's storage: SQL, KV, transactions, the alarm and `sync()`.
///
/// Get it with [`State::storage`]. What a turn is, when writes commit, the output gate, the
/// value types and the limits are in the [storage guide](crate::guides::storage).
pub mod storage {
    /// The SQL API. Statements, parameters and value types are in the
    /// [guide](crate::guides::storage#sql); what user SQL may not do and the limits follow it.
    #[doc(inline)]
    pub use durable_runtime::Sql;
    /// The object's storage. Turns are transactions, replies wait for durability, and the
    /// limits are Cloudflare's: see the [storage guide](crate::guides::storage), and the
    /// [alarms guide](crate::guides::alarms) for `set_alarm` and friends.
    #[doc(inline)]
    pub use durable_runtime::Storage;
    /// The synchronous KV API, in the same database as SQL: see the
    /// [storage guide](crate::guides::storage) (keys up to 2,048 bytes, values are serde
    /// types stored as MessagePack).
    #[doc(inline)]
    pub use durable_runtime::SyncKv;
    pub use durable_runtime::{
        DurabilityMode, FromSqlValue, IntoSqlParam, ListOptions, PutOptions, SqlCursor, SqlError,
        SqlParams, SqlRow, SqlValue, SqliteCode, Transaction, ValueError,
    };
}

/// WebSockets an object accepts: the pair made in `fetch`, the hibernation API (on
/// [`State`]) and the standard API. See the [WebSockets guide](crate::guides::websockets).
pub mod websocket {
    pub use durable_runtime::{
        WebSocket, WebSocketEvent, WebSocketEvents, WebSocketMessage, WebSocketPair,
        WebSocketRequestResponsePair,
    };
}

/// The seam a server connects real WebSocket connections to: the client end of a pair
/// ([`WebSocketPeer`](transport::WebSocketPeer)) and the
/// [`WebSocketConnection`](transport::WebSocketConnection) it drives. Objects do not need
/// these; `durable-server` uses them.
pub mod transport {
    pub use durable_runtime::{
        ABNORMAL_CLOSE_REASON, OutgoingFrame, WebSocketConnection, WebSocketPeer,
    };
}

/// The capture point: every commit of every object, observed (with the WAL frames it wrote)
/// before the outputs that depend on it are released. Install a
/// [`CommitObserver`](commit::CommitObserver) with [`RuntimeBuilder::commit_observer`].
pub mod commit {
    pub use durable_runtime::commit::{
        CapturedCommit, CommitAck, CommitFrames, CommitObserver, WalFrame, WalPosition,
    };
}

/// The testing toolkit (feature `testing`): a runtime per test with its own data folder and
/// a manual clock, closures run inside objects, alarms run on demand, eviction, resets and
/// storage faults. Walked through in the [testing guide](crate::guides::testing).
#[cfg(feature = "testing")]
pub mod testing {
    pub use durable_runtime::testing::{
        EvictSockets, PATIENCE, TestEnv, abort_all, evict, evict_all, list_durable_object_ids,
        run_durable_object_alarm, run_in_durable_object, wait_until_idle,
    };
}

/// The guides: longer than an item's docs; their examples are compiled as tests.
pub mod guides {
    /// The execution model: turns, the input gate, resets, eviction and overload.
    #[doc = include_str!("../../../docs/execution-model.md")]
    pub mod execution_model {}
    /// Storage: turns as transactions, the output gate, durability, SQL, KV and the limits.
    #[doc = include_str!("../../../docs/storage.md")]
    pub mod storage {}
    /// Alarms: one per object, at least once, retried with backoff.
    #[doc = include_str!("../../../docs/alarms.md")]
    pub mod alarms {}
    /// WebSockets: pairs, hibernation, the standard API and their limits.
    #[doc = include_str!("../../../docs/websockets.md")]
    pub mod websockets {}
    /// Configuration: the `wrangler.jsonc` / `wrangler.toml` subset the server reads.
    #[doc = include_str!("../../../docs/configuration.md")]
    pub mod configuration {}
    /// Operations: what the node does under a full disk, too few file descriptors, a damaged
    /// data folder, a stalled handler or a hung disk, and what to do.
    #[doc = include_str!("../../../docs/operations.md")]
    pub mod operations {}
    /// History, recovery, backups and replication: the commit log, point-in-time recovery,
    /// `durable backup` / `durable restore`, and PostgreSQL.
    #[doc = include_str!("../../../docs/recovery.md")]
    pub mod recovery {}
    /// Conformance: every item of Cloudflare's behavioural checklist, with its status and
    /// the tests that check it.
    #[doc = include_str!("../../../docs/conformance.md")]
    pub mod conformance {}
    /// Testing: a runtime per test, closures inside objects, time, eviction, faults, and the
    /// server's in-process client (feature `testing`).
    #[cfg(feature = "testing")]
    #[doc = include_str!("../../../docs/testing.md")]
    pub mod testing {}
}

/// The names most code needs: `use durable_objects::prelude::*;`.
pub mod prelude {
    pub use crate::storage::Storage;
    pub use crate::websocket::{WebSocket, WebSocketMessage, WebSocketPair};
    pub use crate::{
        AlarmInfo, Body, Clock, DurableObject, Env, Error, ErrorKind, ManualClock, Namespace,
        ObjectId, Request, Response, Result, ResultExt, Runtime, RuntimeBuilder, RuntimeConfig,
        State, Stub, durable_object, rpc,
    };
}

/// Building blocks of the code the macros generate; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use durable_runtime::NoRpcMethods;
    pub use durable_runtime::{
        LocalBoxFuture, ObjectClass, RawStub, RpcCall, RpcClient, RpcInvocation, RpcValue,
    };

    /// Compile-time check that `T` can be an RPC argument or result.
    pub fn assert_rpc_type<T: durable_runtime::RpcType>() {}
}
