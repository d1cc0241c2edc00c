//! [`RuntimeBuilder`]: the classes, bindings, variables, migrations and settings of a
//! runtime, and `build`, which starts it in steps: settings, bindings, the data folder,
//! migrations, namespaces, the shared state, the alarm index, then the threads.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::thread::JoinHandle;
use std::time::Duration;

use durable_core::Clock;
use durable_storage::{AlarmIndex, DataLayout, DiskSpace, DurabilityMode, DurabilityWorker};
use tokio::sync::mpsc;

use super::{Runtime, RuntimeConfig, StartError};
use crate::alarm::{AlarmScheduler, delivery};
use crate::catalog::Catalog;
use crate::clock::SystemClock;
use crate::commit::{CommitObserver, CommitServices};
use crate::core::{AdmissionLimits, ObjectKey};
use crate::data_dir::DataDir;
use crate::descriptors::DescriptorBudget;
use crate::history::{CommitLogSetting, History, RetentionSettings};
use crate::migrations::{self, Migration};
use crate::monitor::Monitor;
use crate::object::{ClassVTable, DurableObject};
use crate::shard::{self, ShardHandle, ShardMsg, ShardRouter};
use crate::shared::{NamespaceShared, RuntimeShared};
use crate::websocket::Hubs;
use durable_log::CommitLog;

/// A change of one setting, made with a setter; applied over the base configuration.
type Setting = Box<dyn Fn(&mut RuntimeConfig) + Send>;

/// Builds a [`Runtime`].
///
/// Settings come from a base ([`RuntimeConfig::default`], or one given with
/// [`config`](RuntimeBuilder::config)) and the setters; a setter wins over the base whatever
/// the order of the calls, so `config` never silently undoes a setting made before it.
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
pub struct RuntimeBuilder {
    data_dir: Option<PathBuf>,
    base: RuntimeConfig,
    settings: Vec<(&'static str, Setting)>,
    bindings: Vec<(String, ClassVTable)>,
    classes: Vec<ClassVTable>,
    named_bindings: Vec<(String, String)>,
    deliver_alarms: bool,
    migrations: Option<Vec<Migration>>,
    vars: BTreeMap<String, String>,
    clock: Arc<dyn Clock>,
    observer: Option<Arc<dyn CommitObserver>>,
}

impl fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("data_dir", &self.data_dir)
            .field("config", &self.effective_config())
            .field("bindings", &self.bindings)
            .field("named_bindings", &self.named_bindings)
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("observer", &self.observer)
            .finish_non_exhaustive()
    }
}

impl RuntimeBuilder {
    pub(crate) fn new() -> Self {
        Self {
            data_dir: None,
            base: RuntimeConfig::default(),
            settings: Vec::new(),
            bindings: Vec::new(),
            classes: Vec::new(),
            named_bindings: Vec::new(),
            deliver_alarms: true,
            migrations: None,
            vars: BTreeMap::new(),
            clock: Arc::new(SystemClock),
            observer: None,
        }
    }

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

    /// Binds a stand-in for the class called `class_name` under `binding`: no constructor,
    /// no handlers, no state of its own. Its objects take no calls (RPC, fetch and alarms
    /// fail); only [`Runtime::admin`](crate::Runtime::admin) reaches their storage. This is
    /// how a tool opens a data folder without the user's types (`durable`'s writes while no
    /// node runs); with [`without_alarm_delivery`](Self::without_alarm_delivery), nothing of
    /// the objects' own runs.
    pub fn bind_stand_in(mut self, binding: impl Into<String>, class_name: &str) -> Self {
        self.bindings
            .push((binding.into(), ClassVTable::stand_in(class_name)));
        self
    }

    /// Delivers no alarms: they stay stored and indexed, and fire when a runtime that
    /// delivers them opens the folder again (what a tool that opens a node's data folder
    /// wants: see [`bind_stand_in`](Self::bind_stand_in)).
    pub fn without_alarm_delivery(mut self) -> Self {
        self.deliver_alarms = false;
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

    /// The base settings: every setting not made with a setter comes from `config`.
    /// Settings made with setters (before or after this call) are kept.
    pub fn config(mut self, config: RuntimeConfig) -> Self {
        self.base = config;
        self
    }

    /// The wall clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Installs the observer of every commit of every object: the capture point's consumer.
    /// Outputs that depend on a commit wait for its acknowledgement (see
    /// [`CommitObserver`]). The observer takes the commit log's place: this turns the log
    /// off ([`CommitLogSetting::Off`]), and `build` refuses a log turned on again after it.
    pub fn commit_observer(mut self, observer: Arc<dyn CommitObserver>) -> Self {
        self.observer = Some(observer);
        self.set("commit_log", |c| c.commit_log = CommitLogSetting::Off)
    }

    /// Where the objects' history is kept ([`RuntimeConfig::commit_log`]): the local archive
    /// (the default), PostgreSQL, or nowhere.
    pub fn commit_log(self, setting: CommitLogSetting) -> Self {
        self.set("commit_log", move |c| c.commit_log = setting.clone())
    }

    fn set(
        mut self,
        name: &'static str,
        setting: impl Fn(&mut RuntimeConfig) + Send + 'static,
    ) -> Self {
        self.settings.push((name, Box::new(setting)));
        self
    }

    /// Number of shard threads ([`RuntimeConfig::shards`]).
    pub fn shards(self, shards: usize) -> Self {
        self.set("shards", move |c| c.shards = shards)
    }

    /// Idle time before eviction ([`RuntimeConfig::idle_timeout`]).
    pub fn idle_timeout(self, idle: Duration) -> Self {
        self.set("idle_timeout", move |c| c.idle_timeout = idle)
    }

    /// Per-object limit of queued and running events ([`RuntimeConfig::max_queued_events`]).
    pub fn max_queued_events(self, limit: usize) -> Self {
        self.set("max_queued_events", move |c| c.max_queued_events = limit)
    }

    /// Per-object limit of the bytes queued and running events carry
    /// ([`RuntimeConfig::max_queued_bytes`]).
    pub fn max_queued_bytes(self, limit: usize) -> Self {
        self.set("max_queued_bytes", move |c| c.max_queued_bytes = limit)
    }

    /// Time limit of `block_concurrency_while`
    /// ([`RuntimeConfig::block_concurrency_timeout`]).
    pub fn block_concurrency_timeout(self, timeout: Duration) -> Self {
        self.set("block_concurrency_timeout", move |c| {
            c.block_concurrency_timeout = timeout;
        })
    }

    /// Time limit of an async storage transaction
    /// ([`RuntimeConfig::transaction_timeout`]).
    pub fn transaction_timeout(self, timeout: Duration) -> Self {
        self.set("transaction_timeout", move |c| {
            c.transaction_timeout = timeout;
        })
    }

    /// Encode RPC calls in the envelope even in-process ([`RuntimeConfig::encode_rpc`]).
    pub fn encode_rpc(self, encode: bool) -> Self {
        self.set("encode_rpc", move |c| c.encode_rpc = encode)
    }

    /// How commits become durable ([`RuntimeConfig::durability`]).
    pub fn durability(self, mode: DurabilityMode) -> Self {
        self.set("durability", move |c| c.durability = mode)
    }

    /// Threads that fsync object WALs ([`RuntimeConfig::fsync_threads`]).
    pub fn fsync_threads(self, threads: usize) -> Self {
        self.set("fsync_threads", move |c| c.fsync_threads = threads)
    }

    /// Object databases open at once over the node ([`RuntimeConfig::max_open_databases`]).
    pub fn max_open_databases(self, limit: usize) -> Self {
        self.set("max_open_databases", move |c| {
            c.max_open_databases = Some(limit)
        })
    }

    /// Bytes of disk set aside for deletes on a full disk
    /// ([`RuntimeConfig::disk_reserve_bytes`]).
    pub fn disk_reserve_bytes(self, bytes: u64) -> Self {
        self.set("disk_reserve_bytes", move |c| c.disk_reserve_bytes = bytes)
    }

    /// How long outputs may wait for durability ([`RuntimeConfig::storage_timeout`]).
    pub fn storage_timeout(self, timeout: Duration) -> Self {
        self.set("storage_timeout", move |c| c.storage_timeout = timeout)
    }

    /// How long a turn may run without yielding ([`RuntimeConfig::cpu_limit`]).
    pub fn cpu_limit(self, limit: Duration) -> Self {
        self.set("cpu_limit", move |c| c.cpu_limit = limit)
    }

    /// Largest database of one object ([`RuntimeConfig::max_database_bytes`]).
    pub fn max_database_bytes(self, bytes: u64) -> Self {
        self.set("max_database_bytes", move |c| c.max_database_bytes = bytes)
    }

    /// Wall-time limit of an alarm handler ([`RuntimeConfig::alarm_timeout`]).
    pub fn alarm_timeout(self, timeout: Duration) -> Self {
        self.set("alarm_timeout", move |c| c.alarm_timeout = timeout)
    }

    /// Delay before the first retry of a failed alarm ([`RuntimeConfig::alarm_retry_base`]).
    pub fn alarm_retry_base(self, delay: Duration) -> Self {
        self.set("alarm_retry_base", move |c| c.alarm_retry_base = delay)
    }

    /// Random extra delay of alarm retries, as a fraction from 0 to 1; 0 makes them exact
    /// ([`RuntimeConfig::alarm_retry_jitter`]).
    pub fn alarm_retry_jitter(self, jitter: f64) -> Self {
        self.set("alarm_retry_jitter", move |c| c.alarm_retry_jitter = jitter)
    }

    /// Retries of a failing alarm before it is given up
    /// ([`RuntimeConfig::alarm_max_retries`]).
    pub fn alarm_max_retries(self, retries: u32) -> Self {
        self.set("alarm_max_retries", move |c| c.alarm_max_retries = retries)
    }

    /// Alarm deliveries under way at once over the node
    /// ([`RuntimeConfig::max_concurrent_alarms`]).
    pub fn max_concurrent_alarms(self, limit: usize) -> Self {
        self.set("max_concurrent_alarms", move |c| {
            c.max_concurrent_alarms = limit
        })
    }

    /// Longest the alarm scheduler sleeps between looks at the clock
    /// ([`RuntimeConfig::alarm_max_wait`]).
    pub fn alarm_max_wait(self, wait: Duration) -> Self {
        self.set("alarm_max_wait", move |c| c.alarm_max_wait = wait)
    }

    /// How long an instance with only hibernatable WebSockets stays in memory without events
    /// ([`RuntimeConfig::hibernation_timeout`]).
    pub fn hibernation_timeout(self, timeout: Duration) -> Self {
        self.set("hibernation_timeout", move |c| {
            c.hibernation_timeout = timeout
        })
    }

    /// How often history older than the window is folded into snapshots
    /// ([`RuntimeConfig::retention_interval`]).
    pub fn retention_interval(self, every: Duration) -> Self {
        self.set("retention_interval", move |c| c.retention_interval = every)
    }

    /// How far back point-in-time recovery reaches ([`RuntimeConfig::history_window`]).
    pub fn history_window(self, window: Duration) -> Self {
        self.set("history_window", move |c| c.history_window = window)
    }

    /// The settings `build` would use: the base with every setter applied.
    pub fn effective_config(&self) -> RuntimeConfig {
        let mut config = self.base.clone();
        for (_, setting) in &self.settings {
            setting(&mut config);
        }
        config
    }

    /// Opens the data folder, applies migrations, loads or creates the namespace keys and
    /// the alarm index, and starts the shards and the alarm scheduler.
    pub fn build(self) -> Result<Runtime, StartError> {
        let config = self.effective_config();
        config.check()?;
        let data_dir = self.data_dir.clone().ok_or(StartError::NoDataDir)?;
        let bindings = self.resolve_bindings()?;
        let data = DataDir::open(DataLayout::new(data_dir))?;
        let index = open_alarm_index(data.layout())?;
        if self.observer.is_some() && config.commit_log != CommitLogSetting::Off {
            return Err(StartError::InvalidSetting {
                setting: "commit_log",
                reason: "is on while a commit observer is installed; the observer takes the log's place: leave commit_log off".to_owned(),
            });
        }
        // Before the migrations: a class they delete or rename leaves the log's keys too.
        let log = config
            .commit_log
            .open(data.layout())
            .map_err(|source| StartError::CommitLog { source })?;
        if let Some(migrations) = &self.migrations {
            apply_migrations(data.layout(), &index, log.as_deref(), migrations, &bindings)?;
        }
        if let Some(log) = &log {
            take_keys_from_log(&data, log.as_ref(), &bindings)?;
        }
        let namespaces = namespaces(&data, bindings)?;
        if let Some(log) = &log {
            for ns in &namespaces.shared {
                log.put_class_key(ns.class_name, &ns.key.to_hex())
                    .map_err(|source| StartError::CommitLog { source })?;
            }
        }
        let durability =
            DurabilityWorker::start(config.fsync_threads).map_err(|source| StartError::Thread {
                thread: "fsync",
                source,
            })?;
        let alarms = Arc::new(
            AlarmScheduler::new(index).map_err(|source| StartError::Thread {
                thread: "alarm index writer",
                source,
            })?,
        );
        let space = Arc::new(DiskSpace::new(data.layout(), config.disk_reserve_bytes));
        space.start();
        let logged = log.is_some();
        let history = match log {
            Some(log) => Some(
                History::start(
                    config
                        .commit_log
                        .writers(Arc::clone(&log))
                        .map_err(|source| StartError::CommitLog { source })?,
                    Arc::clone(&self.clock),
                    config.storage_timeout,
                    Some(Arc::clone(&space)),
                    RetentionSettings {
                        log: config
                            .commit_log
                            .maintenance(&log)
                            .map_err(|source| StartError::CommitLog { source })?,
                        window: config.history_window,
                        every: config.retention_interval,
                    },
                )
                .map_err(|source| StartError::Thread {
                    thread: "commit log",
                    source,
                })?,
            ),
            None => None,
        };
        let commits = Arc::new(CommitServices::new(
            durability,
            Arc::clone(&alarms),
            self.observer,
            history,
            space,
            &config,
        ));
        // Raised whatever the settings: a node out of descriptors fails in unrelated places.
        let budget = DescriptorBudget::of_process();
        let max_open_databases = config.max_open_databases.unwrap_or(budget.databases);
        let mut receivers = Vec::new();
        let mut shards = Vec::new();
        for _ in 0..config.shards {
            let (handle, rx) = ShardHandle::new();
            shards.push(handle);
            receivers.push(rx);
        }
        let router = Arc::new(ShardRouter::new(
            shards,
            AdmissionLimits {
                events: config.max_queued_events,
                bytes: config.max_queued_bytes,
            },
        ));
        let hubs = Arc::new(Hubs::new(Arc::clone(&router), Arc::clone(&self.clock)));
        let catalog = {
            let mut bindings: Vec<(String, String)> = namespaces
                .bindings
                .iter()
                .map(|(binding, &index)| {
                    (
                        binding.clone(),
                        namespaces.shared[index as usize].class_name.to_owned(),
                    )
                })
                .collect();
            bindings.sort();
            let commit_log = match &config.commit_log {
                _ if !logged => "off",
                CommitLogSetting::Postgres { .. } => "postgres",
                _ => "local",
            };
            Catalog::start(data.layout(), &bindings, commit_log)
        };
        let shared = Arc::new(RuntimeShared {
            config,
            max_open_databases,
            layout: data.layout().clone(),
            namespaces: namespaces.shared,
            bindings: namespaces.bindings,
            vars: self.vars,
            router,
            clock: self.clock,
            active_objects: AtomicUsize::new(0),
            commits,
            alarms,
            hubs,
            metrics: Arc::default(),
            catalog,
        });
        let alarms_pending = load_alarms(&shared)?;
        // A clock set by hand (a test's) wakes the scheduler at once, not at its next look.
        let listener = Arc::downgrade(&shared);
        shared
            .clock
            .subscribe(Box::new(move || match listener.upgrade() {
                Some(shared) => {
                    shared.alarms.wake();
                    true
                }
                None => false,
            }));
        let classes: Arc<[ClassVTable]> = namespaces.classes.into();
        let (mut threads, alarm_thread) =
            start_threads(&shared, receivers, &classes, self.deliver_alarms)?;
        let monitor = match Monitor::spawn(Arc::clone(&shared)) {
            Ok(monitor) => monitor,
            Err(source) => {
                shared.alarms.stop();
                if let Some(thread) = alarm_thread {
                    let _ = thread.join();
                }
                stop_shards(&shared, &mut threads);
                return Err(StartError::Thread {
                    thread: "monitor",
                    source,
                });
            }
        };
        tracing::info!(
            data_dir = %shared.layout.root().display(),
            shards = shared.router.len(),
            classes = shared.namespaces.len(),
            file_descriptors = budget.limit,
            max_open_databases,
            alarms_pending,
            "runtime started"
        );
        Ok(Runtime {
            shared,
            threads,
            alarm_thread,
            monitor,
            _data: data,
        })
    }

    /// Every binding with its class: those made with `bind`, and those `bind_class` names.
    fn resolve_bindings(&self) -> Result<Vec<(String, ClassVTable)>, StartError> {
        let mut known = self.classes.clone();
        known.extend(self.bindings.iter().map(|(_, class)| *class));
        let mut all = self.bindings.clone();
        for (binding, class_name) in &self.named_bindings {
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
            all.push((binding.clone(), class));
        }
        Ok(all)
    }
}

/// Opens the alarm index, rebuilding it from the objects' stored alarms if it is missing or
/// damaged (and saying so in the log).
fn open_alarm_index(layout: &DataLayout) -> Result<AlarmIndex, StartError> {
    let mut last_report = std::time::Instant::now();
    let (index, rebuilt) = AlarmIndex::recover(layout, |scanned, total| {
        if scanned == 0 || last_report.elapsed() >= Duration::from_secs(2) {
            last_report = std::time::Instant::now();
            tracing::info!(
                scanned,
                total,
                "rebuilding the alarm index from the objects' stored alarms"
            );
        }
    })?;
    if let Some(rebuilt) = rebuilt {
        let why = match &rebuilt.reason {
            durable_storage::RebuildReason::Missing => "it was missing".to_owned(),
            durable_storage::RebuildReason::Damaged(error) => format!(
                "it was damaged ({error}); the damaged file was moved to alarms.sqlite.damaged"
            ),
        };
        tracing::warn!(
            objects = rebuilt.objects,
            alarms = rebuilt.alarms,
            "the alarm index was rebuilt from the objects' stored alarms because {why}"
        );
    }
    Ok(index)
}

/// Applies the migrations and checks that every bound class exists afterwards.
fn apply_migrations(
    layout: &DataLayout,
    index: &AlarmIndex,
    log: Option<&dyn CommitLog>,
    migrations: &[Migration],
    bindings: &[(String, ClassVTable)],
) -> Result<(), StartError> {
    let bound: BTreeSet<String> = bindings
        .iter()
        .map(|(_, class)| class.class_name.to_owned())
        .collect();
    let live = migrations::apply(layout, index, log, migrations, &bound)?;
    match bindings
        .iter()
        .find(|(_, class)| !live.contains(class.class_name))
    {
        Some((binding, class)) => Err(StartError::UnmigratedClass {
            binding: binding.clone(),
            class: class.class_name.to_owned(),
        }),
        None => Ok(()),
    }
}

/// The namespaces of a runtime, their classes (by namespace index), and each binding's
/// namespace index.
struct Namespaces {
    shared: Vec<Arc<NamespaceShared>>,
    classes: Vec<ClassVTable>,
    bindings: HashMap<String, u32>,
}

/// One namespace per bound class (with its key), and the bindings' namespace indexes.
fn namespaces(
    data: &DataDir,
    bindings: Vec<(String, ClassVTable)>,
) -> Result<Namespaces, StartError> {
    let mut namespaces = Namespaces {
        shared: Vec::new(),
        classes: Vec::new(),
        bindings: HashMap::new(),
    };
    for (binding, class) in bindings {
        let existing = namespaces
            .shared
            .iter()
            .find(|ns| ns.class_name == class.class_name)
            .map(|ns| ns.index);
        let index = match existing {
            Some(index) => index,
            None => {
                let index =
                    u32::try_from(namespaces.shared.len()).expect("fewer than 2^32 classes");
                namespaces.shared.push(Arc::new(NamespaceShared {
                    index,
                    class_name: class.class_name,
                    key: data.namespace_key(class.class_name)?,
                }));
                namespaces.classes.push(class);
                index
            }
        };
        if namespaces.bindings.insert(binding.clone(), index).is_some() {
            return Err(StartError::DuplicateBinding { binding });
        }
    }
    Ok(namespaces)
}

/// A data folder rebuilt from a log (a lost disk) finds its classes' keys there: without
/// them no object could be found by name. A key the folder has is kept (and checked against
/// the log's after the namespaces are loaded).
fn take_keys_from_log(
    data: &DataDir,
    log: &dyn CommitLog,
    bindings: &[(String, ClassVTable)],
) -> Result<(), StartError> {
    let keys = log
        .class_keys()
        .map_err(|source| StartError::CommitLog { source })?;
    for (class, key) in keys {
        if bindings.iter().any(|(_, c)| c.class_name == class) {
            data.adopt_namespace_key(&class, &key)?;
        }
    }
    Ok(())
}

/// Schedules every entry of the alarm index; returns how many there are.
fn load_alarms(shared: &RuntimeShared) -> Result<usize, StartError> {
    let scheduler = &shared.alarms;
    for entry in scheduler.index_entries()? {
        let Some(ns) = shared.namespace_of(&entry.class) else {
            tracing::warn!(class = %entry.class, object_id = %entry.id, "alarm of a class that is not bound; kept in the index");
            continue;
        };
        let Ok(id) = ns.key.id_from_string(&entry.id) else {
            tracing::warn!(class = %entry.class, object_id = %entry.id, "alarm index entry with an invalid id; removed");
            scheduler.push(durable_storage::IndexChange::Remove(entry.class, entry.id));
            continue;
        };
        let key = ObjectKey::new(ns.index, &id);
        scheduler.load(key, id, ns.class_name, entry.time_ms);
    }
    Ok(scheduler.len())
}

/// The alarm scheduler's thread, when alarms are delivered.
type AlarmThread = Option<JoinHandle<()>>;

/// Starts the shard threads and (if `deliver_alarms`) the alarm scheduler's thread; stops
/// what started if one fails.
fn start_threads(
    shared: &Arc<RuntimeShared>,
    receivers: Vec<mpsc::UnboundedReceiver<ShardMsg>>,
    classes: &Arc<[ClassVTable]>,
    deliver_alarms: bool,
) -> Result<(Vec<JoinHandle<()>>, AlarmThread), StartError> {
    let mut threads = Vec::new();
    for (index, rx) in receivers.into_iter().enumerate() {
        match shard::thread::spawn(index, Arc::clone(shared), Arc::clone(classes), rx) {
            Ok(thread) => threads.push(thread),
            Err(source) => {
                stop_shards(shared, &mut threads);
                return Err(StartError::Thread {
                    thread: "shard",
                    source,
                });
            }
        }
    }
    if !deliver_alarms {
        return Ok((threads, None));
    }
    match delivery::spawn(Arc::clone(shared)) {
        Ok(alarm_thread) => Ok((threads, Some(alarm_thread))),
        Err(source) => {
            stop_shards(shared, &mut threads);
            Err(StartError::Thread {
                thread: "alarm scheduler",
                source,
            })
        }
    }
}

/// Stops the shard threads and waits for them.
pub(super) fn stop_shards(shared: &RuntimeShared, threads: &mut Vec<JoinHandle<()>>) {
    shared.router.stop_all();
    for thread in threads.drain(..) {
        if thread.join().is_err() {
            tracing::error!("a shard thread panicked while stopping");
        }
    }
}
