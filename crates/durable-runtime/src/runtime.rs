//! The [`Runtime`]: shard threads, the data folder and the registered classes, and the
//! [`RuntimeBuilder`] that configures them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use durable_core::{Clock, NamespaceKey, ObjectId, limits};
use durable_storage::{AlarmIndex, DurabilityMode, DurabilityWorker};
use tokio::sync::mpsc;

use crate::alarm::{self, AlarmScheduler, ScheduledAlarm};
use crate::clock::SystemClock;
use crate::env::Env;
use crate::keys::DataDir;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::migrations::{self, Migration};
use crate::object::{ClassVTable, DurableObject};
use crate::shard::{self, ShardHandle, ShardLoad, ShardMsg};
use crate::websocket::Hubs;

/// Why a runtime could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The data folder (or a file in it) could not be created, opened or written.
    #[error("cannot use data folder {path}: {source}")]
    DataDir {
        /// The folder or file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Another process holds the data folder.
    #[error(
        "data folder {path} is in use by another process: stop that process, or give this one another data folder"
    )]
    Locked {
        /// The folder.
        path: PathBuf,
    },
    /// A namespace key file is unreadable.
    #[error("namespace key file {path}: {reason}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Two bindings have the same name.
    #[error("binding {binding:?} is declared twice: binding names must be unique")]
    DuplicateBinding {
        /// The name.
        binding: String,
    },
    /// A setting is out of range.
    #[error("invalid runtime setting: {reason}")]
    InvalidSetting {
        /// Which setting, and why.
        reason: String,
    },
    /// A binding names a class this program does not register.
    #[error(
        "binding {binding:?} refers to class {class:?}, which this program does not define; the classes are {known:?}"
    )]
    UnknownClass {
        /// The binding.
        binding: String,
        /// The class it names.
        class: String,
        /// The classes the program registers.
        known: Vec<String>,
    },
    /// A binding names a class that no migration creates.
    #[error(
        "binding {binding:?} refers to class {class:?}, which no migration creates: add it to \"new_sqlite_classes\" in a new migration"
    )]
    UnmigratedClass {
        /// The binding.
        binding: String,
        /// The class it names.
        class: String,
    },
    /// The migrations are invalid or could not be applied.
    #[error("migrations: {0}")]
    Migration(#[from] crate::migrations::MigrationError),
    /// A shard thread or its async runtime could not be started.
    #[error("cannot start shard thread: {source}")]
    Thread {
        /// What the operating system said.
        source: std::io::Error,
    },
}

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
    /// How long `block_concurrency_while` may run before the object is reset (default 30 s).
    pub block_concurrency_timeout: Duration,
    /// Encode every RPC call and reply in the versioned envelope even in-process, as a call to
    /// another node would be (default false: in-process calls pass values directly).
    pub encode_rpc: bool,
    /// How commits become durable (default: group commit by the durability worker).
    pub durability: DurabilityMode,
    /// Threads that fsync object WALs (default 2). One sync covers every commit of its
    /// object made before it started, and a thread that finds several objects waiting syncs
    /// them all with one `syncfs`.
    pub fsync_threads: usize,
    /// Object databases open at once over the node (default 2,048). Each open database holds
    /// four file descriptors; past the limit, opening one first closes the databases of idle
    /// objects (least recently used first).
    pub max_open_databases: usize,
    /// Largest database of one object (default 10 GB); past it writes fail with
    /// `SQLITE_FULL` while reads and deletes keep working.
    pub max_database_bytes: u64,
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
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            shards: std::thread::available_parallelism().map_or(1, usize::from),
            idle_timeout: Duration::from_millis(limits::DEFAULT_IDLE_TIMEOUT_MS),
            max_queued_events: limits::DEFAULT_MAX_QUEUED_EVENTS,
            block_concurrency_timeout: Duration::from_millis(limits::BLOCK_CONCURRENCY_TIMEOUT_MS),
            encode_rpc: false,
            durability: DurabilityMode::GroupCommit,
            fsync_threads: 2,
            max_open_databases: 2_048,
            max_database_bytes: limits::DEFAULT_MAX_DATABASE_BYTES,
            alarm_timeout: Duration::from_secs(15 * 60),
            alarm_retry_base: Duration::from_secs(2),
            alarm_retry_jitter: 0.25,
            alarm_max_retries: 6,
            max_concurrent_alarms: 256,
            alarm_max_wait: Duration::from_secs(1),
            hibernation_timeout: Duration::from_millis(limits::DEFAULT_HIBERNATION_TIMEOUT_MS),
        }
    }
}

/// One namespace: a class, its index, and its key.
#[derive(Debug)]
pub(crate) struct NamespaceShared {
    pub(crate) index: u32,
    pub(crate) class: ClassVTable,
    pub(crate) key: NamespaceKey,
}

/// What every shard, env and stub of a runtime shares.
#[derive(Debug)]
pub(crate) struct RuntimeShared {
    pub(crate) config: RuntimeConfig,
    pub(crate) namespaces: Vec<Arc<NamespaceShared>>,
    pub(crate) bindings: HashMap<String, u32>,
    pub(crate) vars: BTreeMap<String, String>,
    pub(crate) shards: Vec<ShardHandle>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) active_objects: AtomicUsize,
    pub(crate) data_dir: PathBuf,
    pub(crate) durability: DurabilityWorker,
    pub(crate) alarms: AlarmScheduler,
    pub(crate) open_databases: AtomicUsize,
    pub(crate) hubs: Hubs,
    pub(crate) metrics: Metrics,
}

impl RuntimeShared {
    /// Hands an event to the shard that owns its object; if it cannot be delivered
    /// (overloaded, shut down) its caller gets the error.
    pub(crate) fn send_or_fail(&self, event: crate::shard::Event) {
        let index = (event.id.routing_hash() % self.shards.len() as u64) as usize;
        let shard = &self.shards[index];
        shard
            .load
            .admit(event, self.config.max_queued_events, &shard.tx);
    }
}

/// Builds a [`Runtime`].
///
/// ```no_run
/// # use durable_objects::prelude::*;
/// # #[durable_object] pub struct Counter;
/// # impl DurableObject for Counter { fn new(_: State, _: Env) -> Self { Counter } }
/// use std::time::Duration;
///
/// let runtime = Runtime::builder()
///     .data_dir("./.durable")
///     .bind::<Counter>("COUNTER")
///     .var("GREETING", "hello")
///     .idle_timeout(Duration::from_secs(70))
///     .build()?;
/// # Ok::<(), durable_objects::StartError>(())
/// ```
#[derive(Debug)]
pub struct RuntimeBuilder {
    data_dir: Option<PathBuf>,
    config: RuntimeConfig,
    bindings: Vec<(String, ClassVTable)>,
    classes: Vec<ClassVTable>,
    named_bindings: Vec<(String, String)>,
    migrations: Option<Vec<Migration>>,
    vars: BTreeMap<String, String>,
    clock: Arc<dyn Clock>,
}

impl RuntimeBuilder {
    /// The folder that holds the runtime's data (required).
    pub fn data_dir(mut self, path: impl AsRef<Path>) -> Self {
        self.data_dir = Some(path.as_ref().to_path_buf());
        self
    }

    /// Binds class `T` under `binding`, for `env.namespace::<T>(binding)`. Several bindings may
    /// name one class; they share its namespace.
    pub fn bind<T: DurableObject>(mut self, binding: impl Into<String>) -> Self {
        self.bindings.push((binding.into(), ClassVTable::of::<T>()));
        self
    }

    /// Registers class `T` without binding it, so configuration can bind it by name with
    /// [`bind_class`](RuntimeBuilder::bind_class).
    pub fn class<T: DurableObject>(mut self) -> Self {
        self.classes.push(ClassVTable::of::<T>());
        self
    }

    /// Binds the registered class called `class_name` under `binding` (as a config file's
    /// `durable_objects.bindings` entry does). An unknown class fails `build`.
    pub fn bind_class(mut self, binding: impl Into<String>, class_name: impl Into<String>) -> Self {
        self.named_bindings
            .push((binding.into(), class_name.into()));
        self
    }

    /// The class migrations of the data folder, applied at `build` once each, in order.
    /// With migrations set, every bound class must be created by one of them.
    pub fn migrations(mut self, migrations: Vec<Migration>) -> Self {
        self.migrations = Some(migrations);
        self
    }

    /// Adds a variable, readable with `env.var(name)`.
    pub fn var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// Replaces all settings at once.
    pub fn config(mut self, config: RuntimeConfig) -> Self {
        self.config = config;
        self
    }

    /// Number of shard threads.
    pub fn shards(mut self, shards: usize) -> Self {
        self.config.shards = shards;
        self
    }

    /// Idle time before eviction.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.config.idle_timeout = idle;
        self
    }

    /// Per-object limit of queued and running events.
    pub fn max_queued_events(mut self, limit: usize) -> Self {
        self.config.max_queued_events = limit;
        self
    }

    /// Time limit of `block_concurrency_while`.
    pub fn block_concurrency_timeout(mut self, timeout: Duration) -> Self {
        self.config.block_concurrency_timeout = timeout;
        self
    }

    /// Encode RPC calls in the envelope even in-process.
    pub fn encode_rpc(mut self, encode: bool) -> Self {
        self.config.encode_rpc = encode;
        self
    }

    /// How commits become durable.
    pub fn durability(mut self, mode: DurabilityMode) -> Self {
        self.config.durability = mode;
        self
    }

    /// Wall-time limit of an alarm handler.
    pub fn alarm_timeout(mut self, timeout: Duration) -> Self {
        self.config.alarm_timeout = timeout;
        self
    }

    /// Random extra delay of alarm retries, as a fraction (0 makes them exact).
    pub fn alarm_retry_jitter(mut self, jitter: f64) -> Self {
        self.config.alarm_retry_jitter = jitter;
        self
    }

    /// How long an instance with only hibernatable WebSockets stays in memory without events.
    pub fn hibernation_timeout(mut self, timeout: Duration) -> Self {
        self.config.hibernation_timeout = timeout;
        self
    }

    /// Longest the alarm scheduler sleeps between looks at the clock.
    pub fn alarm_max_wait(mut self, wait: Duration) -> Self {
        self.config.alarm_max_wait = wait;
        self
    }

    /// Threads that fsync object WALs.
    pub fn fsync_threads(mut self, threads: usize) -> Self {
        self.config.fsync_threads = threads;
        self
    }

    /// Object databases open at once over the node.
    pub fn max_open_databases(mut self, limit: usize) -> Self {
        self.config.max_open_databases = limit;
        self
    }

    /// Largest database of one object.
    pub fn max_database_bytes(mut self, bytes: u64) -> Self {
        self.config.max_database_bytes = bytes;
        self
    }

    /// The wall clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Opens the data folder, loads or creates the namespace keys and starts the shards.
    pub fn build(self) -> std::result::Result<Runtime, StartError> {
        let config = self.config;
        if config.shards == 0 || config.shards > 1024 {
            return Err(StartError::InvalidSetting {
                reason: format!("shards is {}; use 1 to 1024", config.shards),
            });
        }
        if config.max_queued_events == 0 {
            return Err(StartError::InvalidSetting {
                reason: "max_queued_events is 0; an object could take no calls".to_owned(),
            });
        }
        let data_dir = self.data_dir.ok_or_else(|| StartError::InvalidSetting {
            reason: "no data folder: call RuntimeBuilder::data_dir".to_owned(),
        })?;
        let mut known = self.classes;
        known.extend(self.bindings.iter().map(|(_, class)| *class));
        let mut all_bindings = self.bindings;
        for (binding, class_name) in self.named_bindings {
            let class = known
                .iter()
                .find(|class| class.class_name == class_name)
                .copied()
                .ok_or_else(|| {
                    let mut names: Vec<String> =
                        known.iter().map(|c| c.class_name.to_owned()).collect();
                    names.sort();
                    names.dedup();
                    StartError::UnknownClass {
                        binding: binding.clone(),
                        class: class_name.clone(),
                        known: names,
                    }
                })?;
            all_bindings.push((binding, class));
        }
        let data = DataDir::open(&data_dir)?;
        let index_path = data_dir.join("alarms.sqlite");
        let index = AlarmIndex::open(&index_path).map_err(|err| StartError::KeyFile {
            path: index_path.clone(),
            reason: err.reason,
        })?;
        if let Some(migrations) = &self.migrations {
            let bound: BTreeSet<String> = all_bindings
                .iter()
                .map(|(_, class)| class.class_name.to_owned())
                .collect();
            let live = migrations::apply(&data_dir, &index, migrations, &bound)?;
            if let Some((binding, class)) = all_bindings
                .iter()
                .find(|(_, class)| !live.contains(class.class_name))
            {
                return Err(StartError::UnmigratedClass {
                    binding: binding.clone(),
                    class: class.class_name.to_owned(),
                });
            }
        }

        let mut namespaces: Vec<Arc<NamespaceShared>> = Vec::new();
        let mut bindings = HashMap::new();
        for (binding, class) in all_bindings {
            let existing = namespaces
                .iter()
                .find(|ns| ns.class.class_name == class.class_name)
                .map(|ns| ns.index);
            let index = match existing {
                Some(index) => index,
                None => {
                    let index = u32::try_from(namespaces.len()).expect("fewer than 2^32 classes");
                    namespaces.push(Arc::new(NamespaceShared {
                        index,
                        class,
                        key: data.namespace_key(class.class_name)?,
                    }));
                    index
                }
            };
            if bindings.insert(binding.clone(), index).is_some() {
                return Err(StartError::DuplicateBinding { binding });
            }
        }

        let mut receivers = Vec::new();
        let mut shards = Vec::new();
        for _ in 0..config.shards {
            let (tx, rx) = mpsc::unbounded_channel();
            shards.push(ShardHandle {
                tx,
                load: Arc::new(ShardLoad::default()),
            });
            receivers.push(rx);
        }
        let durability = DurabilityWorker::start(config.fsync_threads)
            .map_err(|source| StartError::Thread { source })?;
        let shared = Arc::new(RuntimeShared {
            data_dir: data_dir.clone(),
            durability,
            alarms: AlarmScheduler::new(index).map_err(|source| StartError::Thread { source })?,
            open_databases: AtomicUsize::new(0),
            config,
            namespaces,
            bindings,
            vars: self.vars,
            shards,
            clock: self.clock,
            active_objects: AtomicUsize::new(0),
            hubs: Hubs::default(),
            metrics: Metrics::default(),
        });
        let alarms_pending = shared
            .alarms
            .load(&shared)
            .map_err(|reason| StartError::KeyFile {
                path: index_path.clone(),
                reason,
            })?;
        let mut threads = Vec::new();
        for (index, rx) in receivers.into_iter().enumerate() {
            match shard::spawn(index, Arc::clone(&shared), rx) {
                Ok(thread) => threads.push(thread),
                Err(source) => {
                    stop_shards(&shared, &mut threads);
                    return Err(StartError::Thread { source });
                }
            }
        }
        let alarm_thread = match alarm::spawn(Arc::clone(&shared)) {
            Ok(thread) => thread,
            Err(source) => {
                stop_shards(&shared, &mut threads);
                return Err(StartError::Thread { source });
            }
        };
        tracing::info!(
            data_dir = %data_dir.display(),
            shards = shared.shards.len(),
            classes = shared.namespaces.len(),
            alarms_pending,
            "runtime started"
        );
        Ok(Runtime {
            shared,
            threads,
            alarm_thread: Some(alarm_thread),
            _data: data,
        })
    }
}

fn stop_shards(shared: &RuntimeShared, threads: &mut Vec<JoinHandle<()>>) {
    for shard in &shared.shards {
        // A shard whose thread already ended has dropped its receiver; nothing to stop.
        let _ = shard.tx.send(ShardMsg::Stop);
    }
    for thread in threads.drain(..) {
        if thread.join().is_err() {
            tracing::error!("a shard thread panicked while stopping");
        }
    }
}

/// Reads a runtime's metrics; cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct MetricsHandle {
    shared: Arc<RuntimeShared>,
}

impl MetricsHandle {
    /// The counters and gauges now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot(&self.shared)
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
    _data: DataDir,
}

impl Runtime {
    /// Starts configuring a runtime.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            data_dir: None,
            config: RuntimeConfig::default(),
            bindings: Vec::new(),
            classes: Vec::new(),
            named_bindings: Vec::new(),
            migrations: None,
            vars: BTreeMap::new(),
            clock: Arc::new(SystemClock),
        }
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
    #[doc(hidden)]
    pub fn inject_sync_failures(&self, count: u64) {
        self.shared.durability.inject_sync_failures(count);
    }

    /// Injected sync failures not yet used.
    #[doc(hidden)]
    pub fn injected_sync_failures_left(&self) -> u64 {
        self.shared.durability.injected_sync_failures_left()
    }

    /// The scheduler's plan for the alarm of object `id` of class `T`, if it has one.
    pub fn scheduled_alarm<T: DurableObject>(&self, id: &ObjectId) -> Option<ScheduledAlarm> {
        let ns = self
            .shared
            .namespaces
            .iter()
            .find(|ns| ns.class.class_name == T::CLASS_NAME)?;
        self.shared
            .alarms
            .scheduled(&crate::shard::ObjectKey::new(ns.index, id))
    }

    /// Object databases open now, over all shards.
    pub fn open_databases(&self) -> usize {
        self.shared.open_databases.load(Ordering::Relaxed)
    }

    /// Alarms the scheduler holds (set and not yet run), over all objects.
    pub fn pending_alarms(&self) -> usize {
        self.shared.alarms.len()
    }

    /// Counters and gauges of the runtime, for monitoring.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot(&self.shared)
    }

    /// A handle that reads the metrics from anywhere while the runtime runs.
    pub fn metrics_handle(&self) -> MetricsHandle {
        MetricsHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Stops the shards and waits for their threads to end.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        // No new alarm deliveries first, then the shards.
        self.shared.alarms.stop();
        if let Some(thread) = self.alarm_thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the alarm scheduler thread panicked");
        }
        stop_shards(&self.shared, &mut self.threads);
        // Last: index changes made by the shards' final commits.
        self.shared.alarms.stop_writer();
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop();
    }
}
