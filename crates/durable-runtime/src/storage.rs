//! [`Storage`]: an object's durable state, as its code sees it (Cloudflare's `ctx.storage`).
//!
//! The database opens on first use and stays open while the instance lives. Every write
//! joins the instance's open *batch*; a commit task, spawned at the first write after a
//! commit, commits the batch once the running turn has yielded, so a turn's writes always
//! commit together. The commit is handed to the durability worker, and the output gate
//! ([`crate::output`]) holds replies and outgoing calls until it is on disk.
//!
//! What happens on failure:
//! * a handler that returns `Err` keeps its writes (they commit like any others), as
//!   Cloudflare keeps writes made before an exception;
//! * a panic or `abort()` resets the object: the uncommitted batch is rolled back (the turn
//!   that panicked, and any other turn not yet committed, whose callers are told of the
//!   reset) and every held output fails;
//! * a failed commit or fsync resets the object the same way.

use std::collections::BTreeMap;
use std::future::Future;
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use durable_core::{Error, ErrorKind, Result, codec};
use durable_storage::{
    CommitError, DurabilityMode, ListOptions, ObjectDatabase, SqlCursor, SqlParams, WalFile, layout,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, oneshot};
use tokio::task::AbortHandle;

use crate::directory::Instance;
use crate::output::Held;

/// Options of a write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutOptions {
    /// Let replies and outgoing calls leave before this write is durable.
    pub allow_unconfirmed: bool,
}

impl PutOptions {
    /// Options with `allow_unconfirmed` set.
    pub fn unconfirmed() -> Self {
        Self {
            allow_unconfirmed: true,
        }
    }
}

/// Told by the durability worker (any thread) that the WAL is durable further, or failed.
#[derive(Debug, Default)]
pub(crate) struct DurableSignal {
    notify: Notify,
    failure: Mutex<Option<CommitError>>,
}

/// What a commit produced: its sequence number, the WAL to sync, and the stored alarm if the
/// batch changed it.
struct Committed {
    seq: u64,
    wal: Arc<WalFile>,
    alarm: Option<Option<i64>>,
}

/// An instance's open database and what tracks its durability.
pub(crate) struct ObjectStorage {
    pub(crate) db: ObjectDatabase,
    pump: AbortHandle,
}

impl ObjectStorage {
    pub(crate) fn close(self) {
        self.pump.abort();
        self.db.close();
    }
}

impl Instance {
    /// Runs `f` on the database, opening it first if needed.
    pub(crate) fn with_db<T>(
        self: &Rc<Self>,
        f: impl FnOnce(&mut ObjectDatabase) -> T,
    ) -> Result<T> {
        if self.is_reset() {
            return Err(self.failure());
        }
        if self.storage.borrow().is_none() {
            // Opening may close other objects' databases, so no borrow is held meanwhile.
            let opened = self.open_storage()?;
            *self.storage.borrow_mut() = Some(opened);
        }
        let mut storage = self.storage.borrow_mut();
        let db = &mut storage.as_mut().expect("opened above").db;
        Ok(f(db))
    }

    fn open_storage(self: &Rc<Self>) -> Result<ObjectStorage> {
        let shared = &self.shared;
        if shared.open_databases.load(Ordering::Relaxed) >= shared.config.max_open_databases
            && let Some(directory) = self.directory()
        {
            directory.close_idle_databases(shared.config.max_open_databases);
        }
        let path = layout::object_db_path(&shared.data_dir, self.class_name, &self.id.to_string());
        let signal = Arc::new(DurableSignal::default());
        let notify = Arc::clone(&signal);
        let db = ObjectDatabase::open(
            &path,
            shared.config.durability,
            shared.config.max_database_bytes,
            Arc::new(move |result| {
                if let Err(err) = result {
                    *notify.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(err);
                }
                notify.notify.notify_one();
            }),
        )?;
        let instance = Rc::downgrade(self);
        let pump =
            tokio::task::spawn_local(async move {
                loop {
                    signal.notify.notified().await;
                    let Some(instance) = instance.upgrade() else {
                        return;
                    };
                    let failure = signal
                        .failure
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take();
                    match failure {
                        Some(err) => instance.reset(Error::from(err).context(
                            "the object was reset because a write could not be made durable",
                        )),
                        None => instance.outputs.release(instance.durable_seq()),
                    }
                }
            })
            .abort_handle();
        shared.open_databases.fetch_add(1, Ordering::Relaxed);
        Ok(ObjectStorage { db, pump })
    }

    /// The highest commit sequence number on disk (0 without storage).
    pub(crate) fn durable_seq(&self) -> u64 {
        self.storage
            .borrow()
            .as_ref()
            .map_or(0, |storage| storage.db.wal().synced_seq())
    }

    /// The commit sequence number an output produced now depends on.
    fn required_seq(&self) -> u64 {
        self.storage
            .borrow()
            .as_ref()
            .map_or(0, |storage| storage.db.required_seq())
    }

    /// Sends `output` when the writes before it are durable (at once if they already are).
    pub(crate) fn submit_output(&self, output: Held) {
        self.outputs
            .submit(self.required_seq(), self.durable_seq(), output);
    }

    /// True while outputs are held or writes wait for a commit: the instance is not idle.
    pub(crate) fn has_pending_durability(&self) -> bool {
        !self.outputs.is_empty()
            || self.commit_scheduled.get()
            || self
                .storage
                .borrow()
                .as_ref()
                .is_some_and(|storage| storage.db.has_uncommitted())
    }

    /// Makes sure the open batch gets committed once the running turn has yielded.
    pub(crate) fn schedule_commit(self: &Rc<Self>) {
        if self.commit_scheduled.replace(true) {
            return;
        }
        let instance = Rc::downgrade(self);
        tokio::task::spawn_local(async move {
            if let Some(instance) = instance.upgrade() {
                instance.commit_task().await;
            }
        });
    }

    /// The commit task: if the batch sets an alarm the index does not cover yet, has the
    /// index writer make it durable first (the object keeps running meanwhile, and the turns
    /// that run join the batch), then commits.
    async fn commit_task(self: &Rc<Self>) {
        loop {
            if !self.alarm_dirty.get() || self.is_reset() {
                break;
            }
            let stored = self.with_db(ObjectDatabase::alarm);
            // No alarm to index, or an error that commit_now reports.
            let Ok(Ok(Some(time))) = stored else {
                break;
            };
            if !self.shared.alarms.needs_index(&self.key, time) {
                break;
            }
            let indexed = self
                .shared
                .alarms
                .index_now(&self.id, self.class_name, time)
                .await;
            match indexed {
                Ok(Ok(())) => {
                    self.shared
                        .alarms
                        .mark_indexed(self.key, &self.id, self.class_name, time);
                }
                Ok(Err(reason)) => {
                    self.reset(Error::new(
                        ErrorKind::Storage,
                        format!(
                            "the object was reset because its alarm could not be indexed: {reason}"
                        ),
                    ));
                    return;
                }
                Err(_) => return, // The runtime is stopping.
            }
        }
        self.commit_now();
    }

    /// Commits the open batch now and asks for it to be made durable.
    ///
    /// If the batch changed the stored alarm, the alarm index learns of the new time before
    /// the commit (so the index is never behind storage) and the scheduler takes it over once
    /// the commit is durable.
    pub(crate) fn commit_now(self: &Rc<Self>) {
        self.commit_scheduled.set(false);
        let alarm_dirty = self.alarm_dirty.replace(false);
        let committed: Result<Option<Committed>> = (|| {
            let mut storage = self.storage.borrow_mut();
            let Some(storage) = storage.as_mut() else {
                return Ok(None);
            };
            if !storage.db.can_commit() {
                // An explicit transaction is still open; it is committed later.
                self.alarm_dirty.set(alarm_dirty || self.alarm_dirty.get());
                return Ok(None);
            }
            let alarm = if alarm_dirty {
                Some(storage.db.alarm()?)
            } else {
                None
            };
            if let Some(Some(time)) = alarm {
                self.shared
                    .alarms
                    .before_commit(self.key, &self.id, self.class_name, time)
                    .map_err(|reason| {
                        Error::new(
                            ErrorKind::Storage,
                            format!("write the alarm index: {reason}"),
                        )
                    })?;
            }
            let seq = storage.db.commit()?;
            Ok(seq.map(|seq| Committed {
                seq,
                wal: Arc::clone(storage.db.wal()),
                alarm,
            }))
        })();
        match committed {
            Ok(Some(Committed { seq, wal, alarm })) => {
                self.shared
                    .metrics
                    .commits
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if self.shared.config.durability == DurabilityMode::GroupCommit {
                    self.shared.durability.request_sync(&wal);
                }
                if let Some(alarm) = alarm {
                    let shared = Arc::clone(&self.shared);
                    let (key, id, class) = (self.key, self.id.clone(), self.class_name);
                    self.outputs.submit(
                        seq,
                        self.durable_seq(),
                        Held::Then(Box::new(move || {
                            shared.alarms.after_durable(key, &id, class, alarm);
                        })),
                    );
                }
            }
            Ok(None) => {}
            Err(err) => self.reset(
                err.context("the object was reset because its writes could not be committed"),
            ),
        }
    }

    /// Rolls back uncommitted writes, fails held outputs and closes the database.
    pub(crate) fn close_storage(&self, error: &Error, commit_first: bool) {
        let storage = self.storage.borrow_mut().take();
        if let Some(mut storage) = storage {
            if commit_first && storage.db.can_commit() {
                if let Err(err) = storage.db.commit() {
                    tracing::warn!(namespace = self.class_name, object_id = %self.id, error = %err, "commit at close failed");
                }
            } else {
                storage.db.rollback_uncommitted();
            }
            storage.close();
            self.shared.open_databases.fetch_sub(1, Ordering::Relaxed);
        }
        self.alarm_dirty.set(false);
        self.alarm_running.set(None);
        self.outputs.fail_all(error);
    }
}

/// The object's storage: SQL, KV (synchronous and async forms), transactions and `sync()`.
///
/// Get it with [`State::storage`](crate::State::storage). Cheap to clone; not `Send`.
#[derive(Clone)]
pub struct Storage {
    instance: Weak<Instance>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Storage")
    }
}

fn gone() -> Error {
    Error::reset("this instance was reset or evicted; its storage handle no longer works")
}

impl Storage {
    pub(crate) fn new(instance: Weak<Instance>) -> Self {
        Self { instance }
    }

    fn instance(&self) -> Result<Rc<Instance>> {
        self.instance.upgrade().ok_or_else(gone)
    }

    /// Runs `f` on the database; `writes` schedules the commit of what `f` wrote.
    fn run<T, E: Into<Error>>(
        &self,
        writes: bool,
        f: impl FnOnce(&mut ObjectDatabase) -> std::result::Result<T, E>,
    ) -> Result<T> {
        let instance = self.instance()?;
        let out = instance.with_db(f)?.map_err(Into::into);
        if let Err(err) = &out
            && instance.with_db(ObjectDatabase::lost_batch)?
        {
            let reason = Error::new(
                ErrorKind::Storage,
                format!(
                    "{err}; SQLite rolled back the open transaction, so the object was reset and its writes not yet committed were discarded"
                ),
            )
            .into_remote();
            instance.reset(reason.clone());
            return Err(reason);
        }
        if writes {
            let pending = instance.with_db(|db| db.has_uncommitted())?;
            if pending {
                instance.schedule_commit();
            }
        }
        out
    }

    /// The SQL API.
    pub fn sql(&self) -> Sql {
        Sql {
            storage: self.clone(),
        }
    }

    /// The synchronous KV API.
    pub fn kv(&self) -> SyncKv {
        SyncKv {
            storage: self.clone(),
        }
    }

    /// The value stored under `key`, decoded as `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.kv().get(key)
    }

    /// The values of those of `keys` that exist, by key (at most 128 keys).
    pub async fn get_multiple<T: DeserializeOwned>(
        &self,
        keys: &[&str],
    ) -> Result<BTreeMap<String, T>> {
        let found = self.run(false, |db| db.kv_get_many(keys))?;
        found
            .into_iter()
            .map(|(key, bytes)| Ok((key, codec::decode(&bytes)?)))
            .collect()
    }

    /// Stores `value` under `key`.
    pub async fn put<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        self.kv().put(key, value)
    }

    /// Stores `value` under `key` with `options`.
    pub async fn put_with<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        options: PutOptions,
    ) -> Result<()> {
        let bytes = codec::encode(value)?;
        self.run(true, |db| {
            db.kv_put(key, &bytes, !options.allow_unconfirmed)
        })
    }

    /// Stores several entries at once (at most 128); none is written if any is refused.
    pub async fn put_multiple<T: Serialize>(&self, entries: &[(&str, T)]) -> Result<()> {
        let encoded = entries
            .iter()
            .map(|(key, value)| Ok(((*key).to_owned(), codec::encode(value)?)))
            .collect::<Result<Vec<_>>>()?;
        self.run(true, |db| db.kv_put_many(&encoded, true))
    }

    /// Deletes `key`; true if it existed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        self.kv().delete(key)
    }

    /// Deletes several keys (at most 128); returns how many existed.
    pub async fn delete_multiple(&self, keys: &[&str]) -> Result<usize> {
        self.run(true, |db| db.kv_delete_many(keys, true))
    }

    /// The entries `options` selects, in key order (descending with `reverse`).
    pub async fn list<T: DeserializeOwned>(
        &self,
        options: ListOptions,
    ) -> Result<Vec<(String, T)>> {
        self.kv().list(options)
    }

    /// Deletes all of the object's data: SQL tables, KV entries and the alarm. It commits
    /// atomically with the other writes of the turn.
    pub async fn delete_all(&self) -> Result<()> {
        self.run(true, ObjectDatabase::delete_all)?;
        self.instance()?.alarm_dirty.set(true);
        Ok(())
    }

    /// The stored alarm, as it is on disk (the alarm wrapper's view).
    pub(crate) fn stored_alarm(&self) -> Result<Option<i64>> {
        self.run(false, ObjectDatabase::alarm)
    }

    /// Stores or deletes the alarm as part of the open batch.
    pub(crate) fn write_alarm(&self, time_ms: Option<i64>) -> Result<()> {
        self.write_alarm_with(time_ms, PutOptions::default())
    }

    fn write_alarm_with(&self, time_ms: Option<i64>, options: PutOptions) -> Result<()> {
        self.run(true, |db| db.set_alarm(time_ms, !options.allow_unconfirmed))?;
        self.instance()?.alarm_dirty.set(true);
        Ok(())
    }

    /// The time of the object's alarm, in milliseconds since the Unix epoch; `None` if there
    /// is none, and while the handler of the alarm runs.
    pub async fn get_alarm(&self) -> Result<Option<i64>> {
        let stored = self.stored_alarm()?;
        let running = self.instance()?.alarm_running.get();
        Ok(stored.filter(|time| Some(*time) != running))
    }

    /// Sets the object's one alarm to `time_ms` (milliseconds since the Unix epoch),
    /// replacing any other. A time at or before now fires as soon as possible. The write is
    /// part of the turn's transaction.
    ///
    /// Fails for a time at or before the epoch (`time_ms <= 0`).
    pub async fn set_alarm(&self, time_ms: i64) -> Result<()> {
        self.set_alarm_with(time_ms, PutOptions::default()).await
    }

    /// [`set_alarm`](Storage::set_alarm) with write options.
    pub async fn set_alarm_with(&self, time_ms: i64, options: PutOptions) -> Result<()> {
        if time_ms <= 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "set_alarm() cannot be called with an alarm time <= 0 (got {time_ms}); pass milliseconds since the Unix epoch"
                ),
            ));
        }
        self.write_alarm_with(Some(time_ms), options)
    }

    /// Sets the alarm `delay` from now, by the runtime's clock.
    pub async fn set_alarm_in(&self, delay: std::time::Duration) -> Result<()> {
        let now = self.instance()?.shared.clock.now_ms();
        let delay = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
        self.set_alarm(now.saturating_add(delay).max(1)).await
    }

    /// Deletes the object's alarm. A running handler is not cancelled.
    pub async fn delete_alarm(&self) -> Result<()> {
        self.write_alarm(None)
    }

    /// Runs `f` as one transaction: if it returns `Err`, its writes are rolled back and the
    /// error returned; the object is not reset. Transactions nest.
    pub fn transaction_sync<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.run(true, ObjectDatabase::begin_transaction)?;
        let result = f();
        self.run(true, |db| db.end_transaction(result.is_err()))?;
        result
    }

    /// Runs `f` as one transaction that may await: no other event runs on the object
    /// meanwhile (as with `block_concurrency_while`), and if `f` fails its writes are rolled
    /// back and the error returned, without resetting the object.
    pub async fn transaction<F, Fut, T>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let instance = self.instance()?;
        let _gate = crate::state::hold_gate(&instance)?;
        self.run(true, ObjectDatabase::begin_transaction)?;
        let result = f().await;
        self.run(true, |db| db.end_transaction(result.is_err()))?;
        result
    }

    /// Resolves when every write made so far, including `allow_unconfirmed` ones, is durable.
    pub async fn sync(&self) -> Result<()> {
        let instance = self.instance()?;
        let target = instance.with_db(|db| db.latest_seq())?;
        if instance.durable_seq() >= target {
            return Ok(());
        }
        if instance.with_db(|db| db.can_commit())? {
            instance.commit_now();
        }
        let (tx, rx) = oneshot::channel();
        instance
            .outputs
            .submit(target, instance.durable_seq(), Held::Waiter(tx));
        rx.await.unwrap_or_else(|_| Err(gone()))
    }
}

/// The SQL API of an object's database.
#[derive(Debug, Clone)]
pub struct Sql {
    storage: Storage,
}

impl Sql {
    /// Runs `query` with `params` (bound to its last statement) and returns the last
    /// statement's rows.
    ///
    /// ```no_run
    /// # use durable_objects::prelude::*;
    /// # fn f(state: &State) -> Result<()> {
    /// let sql = state.storage().sql();
    /// sql.exec("CREATE TABLE IF NOT EXISTS visits (path TEXT, at INTEGER)", ())?;
    /// sql.exec("INSERT INTO visits VALUES (?1, ?2)", ("/home", 1_700_000_000_000_i64))?;
    /// let row = sql.exec("SELECT count(*) AS n FROM visits", ())?.one()?;
    /// let n: i64 = row.get("n")?;
    /// # Ok(()) }
    /// ```
    pub fn exec(&self, query: &str, params: impl SqlParams) -> Result<SqlCursor> {
        let values = params.into_values();
        self.storage.run(true, |db| db.exec(query, values))
    }

    /// Bytes the database uses.
    pub fn database_size(&self) -> Result<u64> {
        self.storage.run(false, |db| db.database_size())
    }
}

/// The synchronous KV API; values are serde types.
#[derive(Debug, Clone)]
pub struct SyncKv {
    storage: Storage,
}

impl SyncKv {
    /// The value stored under `key`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let bytes = self.storage.run(false, |db| db.kv_get(key))?;
        bytes
            .map(|bytes| {
                codec::decode(&bytes).map_err(|err| {
                    Error::new(ErrorKind::Codec, format!("value of key {key:?}: {err}"))
                })
            })
            .transpose()
    }

    /// Stores `value` under `key`.
    pub fn put<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = codec::encode(value)?;
        self.storage.run(true, |db| db.kv_put(key, &bytes, true))
    }

    /// Deletes `key`; true if it existed.
    pub fn delete(&self, key: &str) -> Result<bool> {
        self.storage.run(true, |db| db.kv_delete(key, true))
    }

    /// The entries `options` selects, in key order (descending with `reverse`).
    pub fn list<T: DeserializeOwned>(&self, options: ListOptions) -> Result<Vec<(String, T)>> {
        let entries = self.storage.run(false, |db| db.kv_list(&options))?;
        entries
            .into_iter()
            .map(|(key, bytes)| {
                let value = codec::decode(&bytes).map_err(|err| {
                    Error::new(ErrorKind::Codec, format!("value of key {key:?}: {err}"))
                })?;
                Ok((key, value))
            })
            .collect()
    }
}
