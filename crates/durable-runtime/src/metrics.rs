//! Counters of a runtime, bumped where things happen, and [`MetricsSnapshot`], the copy
//! `Runtime::metrics` assembles from them and the runtime's gauges (the server renders it
//! as Prometheus text).
//!
//! Counters are relaxed atomics bumped on the hot path; a snapshot is a consistent-enough
//! copy for monitoring, not for accounting.

use std::sync::atomic::{AtomicU64, AtomicUsize};

use durable_storage::SyncStatsSnapshot;

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) rpc_calls: AtomicU64,
    pub(crate) fetches: AtomicU64,
    pub(crate) web_socket_events: AtomicU64,
    pub(crate) alarms_run: AtomicU64,
    pub(crate) alarms_failed: AtomicU64,
    pub(crate) web_sockets_open: AtomicUsize,
    pub(crate) stalled_turns: AtomicU64,
    pub(crate) activations_waiting: AtomicUsize,
}

/// A copy of a runtime's counters and gauges at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Instances in memory.
    pub active_objects: usize,
    /// Object databases open.
    pub open_databases: usize,
    /// WebSockets connected to objects.
    pub web_sockets_open: usize,
    /// Objects whose hibernatable sockets or socket settings the runtime holds.
    pub web_socket_hubs: usize,
    /// Alarms set and not yet run.
    pub pending_alarms: usize,
    /// RPC calls delivered to objects.
    pub rpc_calls: u64,
    /// `fetch` requests delivered to objects.
    pub fetches: u64,
    /// Hibernatable WebSocket events delivered to objects.
    pub web_socket_events: u64,
    /// Storage commits (each covers one or more turns).
    pub commits: u64,
    /// Alarm handler runs that succeeded.
    pub alarms_run: u64,
    /// Alarm handler runs that failed (each is retried or given up).
    pub alarms_failed: u64,
    /// Latency of the WAL syncs of the durability worker.
    pub fsync: SyncStatsSnapshot,
    /// Turns the watchdog found running past the CPU limit without yielding.
    pub stalled_turns: u64,
    /// Shards stalled now by such a turn.
    pub stalled_shards: usize,
    /// True while the data folder's disk is full (growing writes are refused).
    pub disk_full: bool,
    /// Events waiting for a database slot to activate their object (the node is at its
    /// open-database limit).
    pub activations_waiting: usize,
}

/// What the node's health looks like now: its shards and its disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeHealth {
    /// Every shard, by index.
    pub shards: Vec<ShardHealth>,
    /// True while the data folder's disk is full.
    pub disk_full: bool,
}

impl NodeHealth {
    /// True when no shard is stalled and the disk has room.
    pub fn is_healthy(&self) -> bool {
        !self.disk_full && self.shards.iter().all(|shard| !shard.stalled)
    }
}

/// One shard's health.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardHealth {
    /// The shard's index.
    pub index: usize,
    /// True while a turn on it has run past the CPU limit without yielding.
    pub stalled: bool,
    /// How long its running turn has run, in milliseconds, if one runs.
    pub turn_running_ms: Option<u64>,
}
