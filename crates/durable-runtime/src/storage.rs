//! [`Storage`]: an object's durable state, as its code sees it (Cloudflare's `ctx.storage`):
//! the SQL API ([`Sql`]), the KV API in its synchronous ([`SyncKv`]) and async forms,
//! explicit transactions, the alarm, and `sync()`.
//!
//! The database opens on first use and stays open while the instance lives. Every write
//! joins the instance's open *batch*, which the commit pipeline ([`crate::commit`]) commits
//! once the running turn has yielded, so a turn's writes always commit together; the output
//! gate holds replies and outgoing calls until the commit is durable. The rules users see
//! are in the storage guide (`docs/storage.md`).
//!
//! What happens on failure:
//! * a handler that returns `Err` keeps its writes (they commit like any others), as
//!   Cloudflare keeps writes made before an exception;
//! * a panic or `abort()` resets the object: the uncommitted batch is rolled back (the turn
//!   that panicked, and any other turn not yet committed, whose callers are told of the
//!   reset) and every held output fails;
//! * a failed commit or fsync resets the object the same way.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use durable_core::{Error, ErrorKind, Result, codec};
use durable_storage::{ListOptions, ObjectDatabase, SqlCursor, SqlParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::history::History;
use crate::instance::Instance;

/// Options of a write (`put`, `delete`, their `_multiple` forms, `delete_all`, and the
/// alarm's `set_alarm` and `delete_alarm`): Cloudflare's put and delete options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutOptions {
    /// Let replies and outgoing calls leave before this write is durable. The write still
    /// commits with the turn's other writes; only the output gate stops waiting for it.
    /// `sync()` waits for it.
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
            // The kind and detail stay (a full disk, a full database): they say what to do.
            let reason = err
                .clone()
                .context(
                    "the object was reset because SQLite rolled back its open transaction (its writes not yet committed were discarded)",
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
        self.put_multiple_with(entries, PutOptions::default()).await
    }

    /// [`put_multiple`](Storage::put_multiple) with write options.
    pub async fn put_multiple_with<T: Serialize>(
        &self,
        entries: &[(&str, T)],
        options: PutOptions,
    ) -> Result<()> {
        let encoded = entries
            .iter()
            .map(|(key, value)| Ok(((*key).to_owned(), codec::encode(value)?)))
            .collect::<Result<Vec<_>>>()?;
        self.run(true, |db| {
            db.kv_put_many(&encoded, !options.allow_unconfirmed)
        })
    }

    /// Deletes `key`; true if it existed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        self.kv().delete(key)
    }

    /// [`delete`](Storage::delete) with write options.
    pub async fn delete_with(&self, key: &str, options: PutOptions) -> Result<bool> {
        self.run(true, |db| db.kv_delete(key, !options.allow_unconfirmed))
    }

    /// Deletes several keys (at most 128); returns how many existed.
    pub async fn delete_multiple(&self, keys: &[&str]) -> Result<usize> {
        self.delete_multiple_with(keys, PutOptions::default()).await
    }

    /// [`delete_multiple`](Storage::delete_multiple) with write options.
    pub async fn delete_multiple_with(&self, keys: &[&str], options: PutOptions) -> Result<usize> {
        self.run(true, |db| {
            db.kv_delete_many(keys, !options.allow_unconfirmed)
        })
    }

    /// The entries `options` selects, in key order (descending with `reverse`).
    pub async fn list<T: DeserializeOwned>(
        &self,
        options: ListOptions,
    ) -> Result<Vec<(String, T)>> {
        self.kv().list(options)
    }

    /// Deletes all of the object's data: SQL tables, KV entries and the alarm. It commits
    /// atomically with the other writes of the turn. Refused inside a transaction (as on
    /// Cloudflare): call it outside.
    pub async fn delete_all(&self) -> Result<()> {
        self.delete_all_with(PutOptions::default()).await
    }

    /// [`delete_all`](Storage::delete_all) with write options.
    pub async fn delete_all_with(&self, options: PutOptions) -> Result<()> {
        if self.instance()?.with_db(|db| db.transaction_depth())? > 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "delete_all() cannot be called inside a transaction: call it before or after (it commits atomically with the turn's other writes anyway)",
            ));
        }
        self.run(true, |db| db.delete_all(!options.allow_unconfirmed))
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
        self.run(true, |db| db.set_alarm(time_ms, !options.allow_unconfirmed))
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
    /// Fails for a time at or before the epoch (`time_ms <= 0`), for a time more than 100
    /// years ahead (with [`Limit::AlarmHorizon`](durable_core::Limit) as its detail), and on a
    /// class without an alarm handler (the alarm could never run).
    pub async fn set_alarm(&self, time_ms: i64) -> Result<()> {
        self.set_alarm_with(time_ms, PutOptions::default()).await
    }

    /// [`set_alarm`](Storage::set_alarm) with write options.
    pub async fn set_alarm_with(&self, time_ms: i64, options: PutOptions) -> Result<()> {
        let instance = self.instance()?;
        if instance.has_alarm_handler() == Some(false) {
            return Err(Error::new(
                ErrorKind::NotImplemented,
                format!(
                    "{class} has no alarm handler, so its alarm would never run: add `async fn alarm(&self, info: AlarmInfo) -> Result<()>` to `impl DurableObject for {class}`",
                    class = instance.class_name
                ),
            ));
        }
        if time_ms <= 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "set_alarm() cannot be called with an alarm time <= 0 (got {time_ms}); pass milliseconds since the Unix epoch"
                ),
            ));
        }
        let now = instance.shared.clock.now_ms();
        let horizon = durable_core::limits::MAX_ALARM_HORIZON_MS;
        if time_ms.saturating_sub(now) > horizon {
            let ahead = time_ms.saturating_sub(now);
            return Err(Error::limit_exceeded(
                durable_core::Limit::AlarmHorizon,
                u64::try_from(horizon).unwrap_or(u64::MAX),
                u64::try_from(ahead).ok(),
                format!(
                    "set_alarm() time {time_ms} is {ahead} ms from now; an alarm may be at most {horizon} ms (100 years) ahead: pass milliseconds since the Unix epoch"
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

    /// [`delete_alarm`](Storage::delete_alarm) with write options.
    pub async fn delete_alarm_with(&self, options: PutOptions) -> Result<()> {
        self.write_alarm_with(None, options)
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
    /// meanwhile (as with `block_concurrency_while`). If `f` fails, or calls
    /// [`Transaction::rollback`], its writes are rolled back (and its result returned); the
    /// object is not reset. A transaction that runs longer than the runtime's
    /// `transaction_timeout` (30 s by default, Cloudflare's limit) is cancelled and rolled
    /// back, and fails with [`ErrorKind::Overloaded`].
    ///
    /// ```no_run
    /// # use durable_objects::prelude::*;
    /// # async fn f(state: &State) -> Result<()> {
    /// let storage = state.storage();
    /// let moved = storage
    ///     .transaction(|txn| async move {
    ///         let balance: i64 = txn.get("balance").await?.unwrap_or(0);
    ///         txn.put("balance", &(balance - 10)).await?;
    ///         if balance < 10 {
    ///             txn.rollback(); // nothing of this transaction is kept
    ///             return Ok(false);
    ///         }
    ///         Ok(true)
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction<F, Fut, T>(&self, f: F) -> Result<T>
    where
        F: FnOnce(Transaction) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let instance = self.instance()?;
        let _gate = instance.hold_gate()?;
        let outer_depth = instance.with_db(|db| db.transaction_depth())?;
        self.run(true, ObjectDatabase::begin_transaction)?;
        let txn = Transaction {
            storage: self.clone(),
            rolled_back: Rc::new(Cell::new(false)),
        };
        let timeout = instance.shared.config.transaction_timeout;
        let result = match tokio::time::timeout(timeout, f(txn.clone())).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Overloaded,
                format!(
                    "the transaction ran longer than {} ms; it was cancelled and its writes rolled back: keep slow work (fetches, waits) outside transactions",
                    timeout.as_millis()
                ),
            )),
        };
        let rollback = result.is_err() || txn.rolled_back.get();
        // A cancelled transaction may leave nested ones open: close them all, innermost first.
        self.run(true, |db| db.end_transactions_to(outer_depth, rollback))?;
        result
    }

    /// Resolves when every write made so far, including `allow_unconfirmed` ones, is durable.
    pub async fn sync(&self) -> Result<()> {
        let synced = self.instance()?.sync()?;
        synced.await.unwrap_or_else(|_| Err(gone()))
    }

    // ----- point-in-time recovery ----------------------------------------------------------

    /// The object's history, and its name in it; an error if the commit log is off.
    fn history(&self) -> Result<(Rc<Instance>, Arc<History>, durable_log::ObjectName)> {
        let instance = self.instance()?;
        let history = instance.shared.commits.history.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::NotImplemented,
                "point-in-time recovery needs the commit log, and this runtime runs without one (commit_log = off)",
            )
        })?;
        let name = crate::history::object_name(instance.class_name, &instance.id);
        Ok((instance, history, name))
    }

    /// A bookmark of the object's current state: every write made so far (it waits for them
    /// to be durable). Bookmarks are strings that sort in commit order; give one to
    /// [`on_next_session_restore_bookmark`](Self::on_next_session_restore_bookmark) to bring
    /// the object back to this state later (Cloudflare's `getCurrentBookmark`).
    pub async fn get_current_bookmark(&self) -> Result<String> {
        let (_, history, name) = self.history()?;
        self.sync().await?;
        Ok(history.current_bookmark(&name)?.to_string())
    }

    /// A bookmark of the object's state at `time_ms` (milliseconds since the Unix epoch):
    /// the writes committed at or before then. Times in the future, or older than the history
    /// window (30 days by default), are refused with
    /// [`ErrorKind::InvalidInput`] (Cloudflare's `getBookmarkForTime`).
    pub async fn get_bookmark_for_time(&self, time_ms: i64) -> Result<String> {
        let (instance, history, name) = self.history()?;
        let window = instance.shared.config.history_window;
        Ok(history
            .bookmark_for_time(&name, time_ms, window)?
            .to_string())
    }

    /// Asks for the object's storage to be restored to `bookmark` the next time the object
    /// starts (call [`State::abort`](crate::State::abort) to make that now). The restore is
    /// written forward as a new point of history, never rewriting it: the returned bookmark
    /// (the state now) undoes it. A bookmark that is not of this object's history is refused
    /// with [`ErrorKind::InvalidInput`] (Cloudflare's `onNextSessionRestoreBookmark`).
    pub async fn on_next_session_restore_bookmark(&self, bookmark: &str) -> Result<String> {
        let (instance, history, name) = self.history()?;
        let target: durable_log::Bookmark =
            bookmark
                .parse()
                .map_err(|err: durable_log::BookmarkError| {
                    Error::new(ErrorKind::InvalidInput, err.to_string())
                })?;
        let undo = self.get_current_bookmark().await?;
        history.check_bookmark(&name, target)?;
        let db = instance
            .shared
            .layout
            .object_db(instance.class_name, &instance.id.to_string());
        let request = durable_storage::DataLayout::restore_request_of(&db);
        crate::data_dir::write_durably(&request, format!("{target}\n").as_bytes()).map_err(
            |err| {
                Error::new(
                    ErrorKind::Storage,
                    format!(
                        "could not record the restore in {}: {err}",
                        request.display()
                    ),
                )
            },
        )?;
        Ok(undo)
    }
}

/// What the closure of an async [`Storage::transaction`] gets: the storage (it derefs to
/// [`Storage`]) and [`rollback`](Transaction::rollback).
#[derive(Clone)]
pub struct Transaction {
    storage: Storage,
    rolled_back: Rc<Cell<bool>>,
}

impl Transaction {
    /// Rolls the transaction back when its closure returns: none of its writes, before or
    /// after this call, are kept, and the closure's result is returned as it is.
    pub fn rollback(&self) {
        self.rolled_back.set(true);
    }

    /// True once [`rollback`](Transaction::rollback) was called.
    pub fn is_rolled_back(&self) -> bool {
        self.rolled_back.get()
    }
}

impl std::ops::Deref for Transaction {
    type Target = Storage;

    fn deref(&self) -> &Storage {
        &self.storage
    }
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("rolled_back", &self.rolled_back.get())
            .finish()
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
        let values = params
            .into_values()
            .map_err(|err| Error::new(ErrorKind::InvalidInput, err.to_string()))?;
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

    /// Stores `bytes`, already encoded, under `key` (an operator's import: the value goes
    /// back exactly as it was exported).
    pub(crate) fn put_encoded(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.storage.run(true, |db| db.kv_put(key, bytes, true))
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
