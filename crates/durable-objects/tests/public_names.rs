//! Every type a user receives from the public API can be named through the facade: this
//! file only compiles if each one is exported (a function signature per API that returns or
//! hands it over).
#![allow(dead_code, clippy::unwrap_used, clippy::type_complexity)]

use durable_objects::commit::{CapturedCommit, CommitAck, CommitFrames, WalFrame, WalPosition};
use durable_objects::prelude::*;
use durable_objects::storage::{
    DurabilityMode, ListOptions, PutOptions, Sql, SqlCursor, SqlError, SqlRow, SqlValue,
    SqliteCode, SyncKv, ValueError,
};
use durable_objects::transport::{OutgoingFrame, WebSocketConnection, WebSocketPeer};
use durable_objects::websocket::{WebSocketEvent, WebSocketEvents, WebSocketRequestResponsePair};
use durable_objects::{
    IdError, MetricsHandle, MetricsSnapshot, Migration, MigrationError, RawStub, RpcCall,
    ScheduledAlarm, StartError, SystemClock,
};

fn storage(state: &State) -> (Storage, Sql, SyncKv) {
    let storage = state.storage();
    (storage.clone(), storage.sql(), storage.kv())
}

fn sql(sql: &Sql) -> Result<(SqlCursor, Option<SqlRow>)> {
    let cursor = sql.exec("SELECT 1", ())?;
    let row: std::result::Result<SqlRow, SqlError> = sql.exec("SELECT 1", ())?.one();
    Ok((cursor, row.ok()))
}

fn sql_error_parts(error: &SqlError) -> Option<SqliteCode> {
    match error {
        SqlError::Conversion { source, .. } => {
            let _: &ValueError = source;
            None
        }
        other => other.sqlite_code(),
    }
}

fn runtime_parts(runtime: &Runtime) -> (MetricsHandle, MetricsSnapshot, Option<ScheduledAlarm>) {
    (runtime.metrics_handle(), runtime.metrics(), None)
}

fn stub_parts<T: DurableObject>(stub: &Stub<T>) -> RawStub {
    stub.raw().clone()
}

fn socket_parts(
    pair: WebSocketPair,
    events: WebSocketEvents,
) -> (WebSocketPeer, WebSocket, WebSocketEvents) {
    (pair.client, pair.server, events)
}

fn transport(peer: WebSocketPeer) -> Result<WebSocketConnection> {
    peer.connect()
}

fn commit_parts(
    commit: CapturedCommit,
    ack: CommitAck,
) -> (CommitFrames, Option<WalFrame>, WalPosition) {
    ack.acknowledge();
    let frames = commit.into_frames();
    let first = frames.frames.first().cloned();
    let position = frames.position;
    (frames, first, position)
}

fn values() -> (
    ListOptions,
    PutOptions,
    SqlValue,
    DurabilityMode,
    Migration,
    SystemClock,
    Option<WebSocketEvent>,
    Option<OutgoingFrame>,
    Option<WebSocketRequestResponsePair>,
) {
    (
        ListOptions::new(),
        PutOptions::unconfirmed(),
        SqlValue::Null,
        DurabilityMode::default(),
        Migration::new("v1"),
        SystemClock,
        None,
        None,
        None,
    )
}

fn errors(_: StartError, _: MigrationError, _: IdError) {}

fn calls(call: RpcCall<u64>) -> RpcCall<u64> {
    call
}

#[test]
fn the_facade_names_what_the_api_hands_out() {
    let (list, put, value, mode, migration, ..) = values();
    assert_eq!(list.get_limit(), None);
    assert!(put.allow_unconfirmed);
    assert_eq!(value, SqlValue::Null);
    assert_eq!(mode, DurabilityMode::GroupCommit);
    assert_eq!(migration.tag, "v1");
}
