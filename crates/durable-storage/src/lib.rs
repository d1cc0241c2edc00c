//! One object's storage: an SQLite database with the SQL and KV APIs, the authorizer that
//! keeps user SQL inside its object, batched commits, and the durability worker that makes
//! commits durable with group fsyncs.
//!
//! * [`ObjectDatabase`] ([`database`]) owns the connection: open and pragmas, batches,
//!   commits (each returns a [`CommitTicket`]), SQL `exec`, the KV table, `delete_all`,
//!   explicit transactions, and its own checkpoints.
//! * [`batch`] holds the batch and sequence-number rules as a plain value.
//! * [`wal`] reads back the WAL frames each commit wrote, for the runtime's capture point.
//! * `authorizer` decides what user SQL may do; `statement` compiles, binds, steps and
//!   measures user SQL through SQLite's C API (the project's only `unsafe` code), and
//!   `program` caches the compiled statements of each text.
//! * [`value`] and [`cursor`] are the SQL API's values, parameters, rows and cursors.
//! * [`kv`] holds the KV API's limits and `list` options.
//! * [`durability`] fsyncs WALs off the object's thread and reports durable points.
//! * [`alarm_index`] is the node's persistent index of pending alarms.
//! * [`layout`] owns every path of the data folder.
//! * [`error`] holds one error type per operation.
//!
//! Architecture invariant: this crate is synchronous and knows nothing of tokio, HTTP or the
//! runtime's turns; the runtime decides *when* to commit, this crate decides *how*.
#![warn(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod alarm_index;
pub mod authorizer;
pub mod batch;
pub mod catalog;
pub mod cursor;
pub mod database;
pub mod dirs;
pub mod durability;
pub mod error;
pub mod files;
pub mod inspect;
pub mod kv;
pub mod layout;
mod program;
pub mod space;
mod statement;
pub mod value;
pub mod wal;

pub use alarm_index::{
    AlarmEntry, AlarmIndex, IndexChange, RebuildReason, Rebuilt, class_databases, object_databases,
};
pub use catalog::{CatalogEntry, CatalogError, ObjectCatalog, ObjectSeen};
pub use cursor::{SqlCursor, SqlRow};
pub use database::{CommitTicket, DatabaseOptions, DurabilityMode, ObjectDatabase};
pub use durability::{
    DurabilityWorker, DurableCallback, SYNC_LATENCY_BUCKETS, SyncStats, SyncStatsSnapshot, WalFile,
};
pub use error::{
    AlarmIndexError, CommitError, IoFailure, KvError, OpenError, OpenFailure, SqlError, SqliteCode,
    WalError,
};
pub use files::{
    DatabaseFileError, FilePages, SettledDatabase, discard_wal, forget_shared_memory,
    install_database, read_file_pages, settle_database, snapshot_database,
};
pub use inspect::{
    ExportCounts, InspectError, ListFilter, ObjectListing, ObjectReader, QueryResult, bytes_of_hex,
    display_value, export_object, list_objects, sql_value_from_json, sql_value_json,
};
pub use kv::ListOptions;
pub use layout::DataLayout;
pub use space::{DiskSpace, SpaceState};
pub use value::{FromSqlValue, IntoSqlParam, SqlParams, SqlValue, ValueError};
pub use wal::{CommitFrames, WalCut, WalFrame, WalPosition, cut_wal_after, wal_salts};
