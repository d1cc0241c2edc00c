//! One object's storage: an SQLite database with the SQL and KV APIs, the authorizer that
//! keeps user SQL inside its object, batched commits, and the durability worker that makes
//! commits durable with group fsyncs.
//!
//! * [`ObjectDatabase`] ([`database`]) owns the connection: open and pragmas, batches,
//!   commits, SQL `exec`, the KV table, `delete_all`, explicit transactions.
//! * `authorizer` decides what user SQL may do; `split` cuts a query into statements.
//! * [`value`] and [`cursor`] are the SQL API's values, parameters, rows and cursors.
//! * [`kv`] holds the KV API's limits and `list` options.
//! * [`durability`] fsyncs WALs off the object's thread and reports durable points.
//! * [`layout`] says where an object's database lives in the data folder.
//!
//! Architecture invariant: this crate is synchronous and knows nothing of tokio, HTTP or the
//! runtime's turns; the runtime decides *when* to commit, this crate decides *how*.
#![warn(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod alarm_index;
pub mod authorizer;
pub mod cursor;
pub mod database;
pub mod durability;
pub mod error;
pub mod kv;
pub mod layout;
mod split;
pub mod value;

pub use alarm_index::{AlarmEntry, AlarmIndex, IndexChange};
pub use cursor::{SqlCursor, SqlRow};
pub use database::{DurabilityMode, ObjectDatabase};
pub use durability::{
    DurabilityWorker, DurableCallback, SYNC_LATENCY_BUCKETS, SyncStats, SyncStatsSnapshot, WalFile,
};
pub use error::{CommitError, KvError, OpenError, SqlError};
pub use kv::ListOptions;
pub use value::{FromSqlValue, SqlParams, SqlValue};
