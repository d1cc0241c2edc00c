//! [`RuntimeConfig`]: every setting of a runtime, with defaults close to Cloudflare's
//! behaviour, and the checks `build` makes before starting anything.

use std::time::Duration;

use durable_core::limits;
use durable_storage::DurabilityMode;

use super::error::StartError;
use crate::history::CommitLogSetting;

/// Tunables of a runtime; every field has a default close to Cloudflare's behaviour.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RuntimeConfig {
    /// Shard threads (default: one per core). An object always runs on the shard its id
    /// hashes to.
    pub shards: usize,
    /// How long an object with no event in progress stays in memory (default 70 s).
    pub idle_timeout: Duration,
    /// Events that may be queued or running in one object before new ones are refused as
    /// overloaded (default 32,768).
    pub max_queued_events: usize,
    /// Bytes the queued and running events of one object may carry (their WebSocket
    /// messages and encoded calls) before new ones are refused as overloaded (default
    /// 64 MiB).
    pub max_queued_bytes: usize,
    /// How long `block_concurrency_while` may run before the object is reset (default 30 s).
    pub block_concurrency_timeout: Duration,
    /// How long an async `transaction()` may run before it is cancelled and rolled back
    /// (default 30 s).
    pub transaction_timeout: Duration,
    /// Encode every RPC call and reply in the versioned envelope even in-process, as a call to
    /// another node would be (default false: in-process calls pass values directly).
    pub encode_rpc: bool,
    /// How commits become durable (default: group commit by the durability worker).
    pub durability: DurabilityMode,
    /// Threads that fsync object WALs (default 2). One sync covers every commit of its
    /// object made before it started, and a thread that finds several objects waiting syncs
    /// them all with one `syncfs`.
    pub fsync_threads: usize,
    /// Object databases open at once over the node (default: derived from the process's
    /// file-descriptor limit, see [`DescriptorBudget`](crate::DescriptorBudget)). Each open
    /// database holds four file descriptors; past the limit, idle objects' databases are
    /// closed (least recently used first), and an object that needs activating waits for
    /// one to close instead of failing.
    pub max_open_databases: Option<usize>,
    /// Largest database of one object (default 10 GB); past it writes fail with
    /// `SQLITE_FULL` while reads and deletes keep working.
    pub max_database_bytes: u64,
    /// Bytes of disk set aside in `<data>/RESERVE` (default 8 MiB; 0: none). When the disk
    /// fills up, the reserve is given back so deletes can still run, and growing writes are
    /// refused with [`ErrorKind::DiskFull`](durable_core::ErrorKind::DiskFull) until three
    /// reserves' worth of space is free again.
    pub disk_reserve_bytes: u64,
    /// How long outputs may wait for their writes to become durable (default 30 s). Past it,
    /// the waiting replies and messages fail with
    /// [`ErrorKind::OutcomeUnknown`](durable_core::ErrorKind::OutcomeUnknown) and the object
    /// resets, as Cloudflare resets an object whose storage does not answer.
    pub storage_timeout: Duration,
    /// How long one turn of a handler may run without yielding (default 30 s, Cloudflare's
    /// CPU limit). Objects cannot be preempted: past it the watchdog logs the object, counts
    /// it, and marks its shard stalled, so calls to that shard fail fast as overloaded until
    /// the turn ends.
    pub cpu_limit: Duration,
    /// Wall-time limit of one run of an alarm handler (default 15 minutes); past it the run
    /// counts as failed.
    pub alarm_timeout: Duration,
    /// Delay before the first retry of a failed alarm (default 2 s); it doubles each retry.
    pub alarm_retry_base: Duration,
    /// Random extra delay of a retry, as a fraction of it (default 0.25).
    pub alarm_retry_jitter: f64,
    /// Retries of a failing alarm before it is given up (default 6).
    pub alarm_max_retries: u32,
    /// Alarm deliveries under way at once over the node (default 256); more due alarms wait
    /// their turn, so a burst does not open every object's database at once.
    pub max_concurrent_alarms: usize,
    /// Longest the alarm scheduler sleeps before looking at the clock again (default 1 s).
    /// It matters for clocks that jump, such as a test's manual clock.
    pub alarm_max_wait: Duration,
    /// How long an instance whose only connections are hibernatable WebSockets stays in
    /// memory without events (default 10 s); the sockets stay open when it is dropped.
    pub hibernation_timeout: Duration,
    /// Where every object's history is kept (default: the local archive in the data
    /// folder). With PostgreSQL, a commit's outputs wait until it is in PostgreSQL.
    pub commit_log: CommitLogSetting,
    /// How far back point-in-time recovery reaches (default 30 days, as Cloudflare's):
    /// `get_bookmark_for_time` refuses older times, and older history is folded into
    /// snapshots.
    pub history_window: Duration,
    /// How often the retention thread folds history older than `history_window` into
    /// snapshots and frees the space it held (default: every hour).
    pub retention_interval: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            shards: std::thread::available_parallelism().map_or(1, usize::from),
            idle_timeout: Duration::from_millis(limits::DEFAULT_IDLE_TIMEOUT_MS),
            max_queued_events: limits::DEFAULT_MAX_QUEUED_EVENTS,
            max_queued_bytes: limits::DEFAULT_MAX_QUEUED_BYTES,
            block_concurrency_timeout: Duration::from_millis(limits::BLOCK_CONCURRENCY_TIMEOUT_MS),
            transaction_timeout: Duration::from_millis(limits::TRANSACTION_TIMEOUT_MS),
            encode_rpc: false,
            durability: DurabilityMode::GroupCommit,
            fsync_threads: 2,
            max_open_databases: None,
            max_database_bytes: limits::DEFAULT_MAX_DATABASE_BYTES,
            disk_reserve_bytes: limits::DEFAULT_DISK_RESERVE_BYTES,
            storage_timeout: Duration::from_secs(30),
            cpu_limit: Duration::from_millis(limits::DEFAULT_CPU_LIMIT_MS),
            alarm_timeout: Duration::from_secs(15 * 60),
            alarm_retry_base: Duration::from_secs(2),
            alarm_retry_jitter: 0.25,
            alarm_max_retries: 6,
            max_concurrent_alarms: 256,
            alarm_max_wait: Duration::from_secs(1),
            hibernation_timeout: Duration::from_millis(limits::DEFAULT_HIBERNATION_TIMEOUT_MS),
            commit_log: CommitLogSetting::Local,
            history_window: Duration::from_secs(30 * 24 * 60 * 60),
            retention_interval: Duration::from_secs(60 * 60),
        }
    }
}

impl RuntimeConfig {
    /// Refuses settings a runtime cannot run with, naming the setting.
    pub(crate) fn check(&self) -> Result<(), StartError> {
        let invalid = |setting: &'static str, reason: String| {
            Err(StartError::InvalidSetting { setting, reason })
        };
        if self.shards == 0 || self.shards > 1024 {
            return invalid("shards", format!("is {}; use 1 to 1024", self.shards));
        }
        if self.max_queued_events == 0 {
            return invalid(
                "max_queued_events",
                "is 0; an object could take no calls".to_owned(),
            );
        }
        if self.max_queued_bytes < limits::MAX_WEB_SOCKET_MESSAGE_BYTES {
            return invalid(
                "max_queued_bytes",
                format!(
                    "is {}; use at least {} (one message of the largest size)",
                    self.max_queued_bytes,
                    limits::MAX_WEB_SOCKET_MESSAGE_BYTES
                ),
            );
        }
        if self.fsync_threads == 0 {
            return invalid("fsync_threads", "is 0; use at least 1".to_owned());
        }
        if self.max_open_databases == Some(0) {
            return invalid(
                "max_open_databases",
                "is 0; no object could use storage".to_owned(),
            );
        }
        if self.max_concurrent_alarms == 0 {
            return invalid(
                "max_concurrent_alarms",
                "is 0; no alarm could be delivered".to_owned(),
            );
        }
        if !(0.0..=1.0).contains(&self.alarm_retry_jitter) {
            return invalid(
                "alarm_retry_jitter",
                format!("is {}; use a fraction from 0 to 1", self.alarm_retry_jitter),
            );
        }
        if self.storage_timeout.is_zero() {
            return invalid(
                "storage_timeout",
                "is 0; no write could ever become durable in time".to_owned(),
            );
        }
        if self.cpu_limit.is_zero() {
            return invalid(
                "cpu_limit",
                "is 0; every turn would count as stalled".to_owned(),
            );
        }
        if self.alarm_max_wait.is_zero() {
            return invalid(
                "alarm_max_wait",
                "is 0; the scheduler would never sleep".to_owned(),
            );
        }
        if self.retention_interval.is_zero() {
            return invalid(
                "retention_interval",
                "is 0; the retention thread would never sleep (use an hour, the default)"
                    .to_owned(),
            );
        }
        if self.history_window.is_zero() {
            return invalid(
                "history_window",
                "is 0; no point of history could be restored (use 30 days, the default)".to_owned(),
            );
        }
        Ok(())
    }
}
