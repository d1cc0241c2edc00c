//! The [`Runtime`]: shard threads, the data folder and the registered classes, built with
//! [`RuntimeBuilder`] ([`builder`]) from a [`RuntimeConfig`] ([`config`]); why it may fail to
//! start is a [`StartError`] ([`error`]).

mod builder;
pub(crate) mod config;
pub(crate) mod error;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use durable_core::{Error, ErrorKind, ObjectId};

pub use builder::RuntimeBuilder;
pub use config::RuntimeConfig;
pub use error::StartError;

use crate::alarm::ScheduledAlarm;
use crate::core::ObjectKey;
use crate::data_dir::DataDir;
use crate::env::Env;
use crate::metrics::{MetricsSnapshot, NodeHealth, ShardHealth};
use crate::monitor::Monitor;
use crate::shared::RuntimeShared;
use crate::stub::ObjectClass;

/// Reads a runtime's metrics; cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct MetricsHandle {
    shared: Arc<RuntimeShared>,
}

impl MetricsHandle {
    /// The counters and gauges now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        snapshot(&self.shared)
    }

    /// The shards' and the disk's health now.
    pub fn health(&self) -> NodeHealth {
        health(&self.shared)
    }
}

fn health(shared: &RuntimeShared) -> NodeHealth {
    let shards = (0..shared.router.len())
        .map(|index| {
            let watch = shared.router.shard(index).watch();
            ShardHealth {
                index,
                stalled: watch.is_stalled(),
                turn_running_ms: watch
                    .running_for()
                    .map(|running| u64::try_from(running.as_millis()).unwrap_or(u64::MAX)),
            }
        })
        .collect();
    NodeHealth {
        shards,
        disk_full: shared.commits.space.is_full(),
    }
}

/// The counters and gauges of a runtime now: a consistent-enough copy for monitoring, not
/// for accounting.
fn snapshot(shared: &RuntimeShared) -> MetricsSnapshot {
    let metrics = &shared.metrics;
    MetricsSnapshot {
        active_objects: shared.active_objects.load(Ordering::Relaxed),
        open_databases: shared.commits.open_databases.load(Ordering::Relaxed),
        web_sockets_open: metrics.web_sockets_open.load(Ordering::Relaxed),
        web_socket_hubs: shared.hubs.len(),
        pending_alarms: shared.alarms.len(),
        rpc_calls: metrics.rpc_calls.load(Ordering::Relaxed),
        fetches: metrics.fetches.load(Ordering::Relaxed),
        web_socket_events: metrics.web_socket_events.load(Ordering::Relaxed),
        commits: shared.commits.commits.load(Ordering::Relaxed),
        alarms_run: metrics.alarms_run.load(Ordering::Relaxed),
        alarms_failed: metrics.alarms_failed.load(Ordering::Relaxed),
        fsync: shared.commits.durability.sync_stats(),
        stalled_turns: metrics.stalled_turns.load(Ordering::Relaxed),
        stalled_shards: (0..shared.router.len())
            .filter(|index| shared.router.shard(*index).watch().is_stalled())
            .count(),
        disk_full: shared.commits.space.is_full(),
        activations_waiting: metrics.activations_waiting.load(Ordering::Relaxed),
    }
}

/// A running set of shards hosting objects; the entry point of the runtime.
///
/// Dropping it (or calling [`shutdown`](Runtime::shutdown)) stops the shards: calls still in
/// progress fail with a retryable error, and later calls through stubs fail the same way.
#[derive(Debug)]
pub struct Runtime {
    shared: Arc<RuntimeShared>,
    threads: Vec<JoinHandle<()>>,
    alarm_thread: Option<JoinHandle<()>>,
    monitor: Monitor,
    _data: DataDir,
}

impl Runtime {
    /// Starts configuring a runtime.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::new()
    }

    /// The environment: namespaces by binding name and variables.
    pub fn env(&self) -> Env {
        Env::new(Arc::clone(&self.shared))
    }

    /// The settings in force.
    pub fn config(&self) -> &RuntimeConfig {
        &self.shared.config
    }

    /// Objects whose instance is in memory now, over all shards.
    pub fn active_objects(&self) -> usize {
        self.shared.active_objects.load(Ordering::Relaxed)
    }

    /// Makes the next `count` WAL syncs fail, to test the failure path of durability.
    #[cfg(feature = "testing")]
    pub fn inject_sync_failures(&self, count: u64) {
        self.shared.commits.durability.inject_sync_failures(count);
    }

    /// Makes the durability worker's syncs hang until [`release_sync_stall`] (a disk that
    /// stops answering), to test the storage timeout.
    ///
    /// [`release_sync_stall`]: Runtime::release_sync_stall
    #[cfg(feature = "testing")]
    pub fn stall_syncs(&self) {
        self.shared.commits.durability.stall_syncs(true);
    }

    /// Lets stalled syncs finish.
    #[cfg(feature = "testing")]
    pub fn release_sync_stall(&self) {
        self.shared.commits.durability.stall_syncs(false);
    }

    /// Injected sync failures not yet used.
    #[cfg(feature = "testing")]
    pub fn injected_sync_failures_left(&self) -> u64 {
        self.shared.commits.durability.injected_sync_failures_left()
    }

    /// The scheduler's plan for the alarm of object `id` of class `T`, if it has one.
    pub fn scheduled_alarm<T: ObjectClass>(&self, id: &ObjectId) -> Option<ScheduledAlarm> {
        let ns = self.shared.namespace_of(T::CLASS_NAME)?;
        self.shared.alarms.scheduled(&ObjectKey::new(ns.index, id))
    }

    /// Object databases open now, over all shards.
    pub fn open_databases(&self) -> usize {
        self.shared.commits.open_databases.load(Ordering::Relaxed)
    }

    /// Alarms the scheduler holds (set and not yet run), over all objects.
    pub fn pending_alarms(&self) -> usize {
        self.shared.alarms.len()
    }

    /// Counters and gauges of the runtime, for monitoring.
    pub fn metrics(&self) -> MetricsSnapshot {
        snapshot(&self.shared)
    }

    /// The shards' and the disk's health now.
    pub fn health(&self) -> NodeHealth {
        health(&self.shared)
    }

    /// A handle that reads the metrics from anywhere while the runtime runs.
    pub fn metrics_handle(&self) -> MetricsHandle {
        MetricsHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Folds every object's history older than the window
    /// ([`RuntimeConfig::history_window`]) into snapshots now, and frees the space it held;
    /// the retention thread does the same every [`RuntimeConfig::retention_interval`].
    /// Bookmarks inside the window keep naming the same states. Fails when the runtime keeps
    /// no commit log, or the log fails (retryable).
    pub fn compact_history(&self) -> Result<durable_log::CompactReport, Error> {
        match &self.shared.commits.history {
            Some(history) => history.compact_now(),
            None => Err(Error::new(
                ErrorKind::InvalidInput,
                "this runtime keeps no commit log (commit_log is off): there is no history to compact",
            )),
        }
    }

    /// Operator access to any object by namespace and name or id (the admin API's).
    pub fn admin(&self) -> crate::Admin {
        crate::Admin::new(Arc::clone(&self.shared))
    }

    /// Stops the shards and waits for their threads to end.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.monitor.stop();
        // No new alarm deliveries first, then the shards.
        self.shared.alarms.stop();
        if let Some(thread) = self.alarm_thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the alarm scheduler thread panicked");
        }
        builder::stop_shards(&self.shared, &mut self.threads);
        // The shards' final commits reach the log before the writer stops.
        if let Some(history) = &self.shared.commits.history {
            history.stop();
        }
        // Last: index changes made by the shards' final commits, and their activity.
        self.shared.alarms.stop_writer();
        self.shared.catalog.stop();
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop();
    }
}
