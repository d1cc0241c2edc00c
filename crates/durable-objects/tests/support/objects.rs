//! Object classes used across the integration tests.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use durable_objects::RuntimeBuilder;
use durable_objects::prelude::*;
use durable_objects::storage::SqlValue;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Binds every class of this module under its upper-case name.
pub fn bind_all(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder
        .bind::<Probe>("PROBE")
        .bind::<Caller>("CALLER")
        .bind::<Fragile>("FRAGILE")
        .bind::<Web>("WEB")
        .bind::<Bare>("BARE")
        .bind::<Store>("STORE")
        .bind::<Clockwork>("CLOCKWORK")
        .bind::<Reminder>("REMINDER")
        .bind::<Migrating>("MIGRATING")
}

/// Names of `Migrating` objects whose `init` fails.
pub static FAILING_INIT: LazyLock<Mutex<Vec<String>>> = LazyLock::new(Default::default);

/// An object whose schema is made by a fallible `init`, which can be made to fail or to wait
/// for a signal named after the object.
#[durable_object]
pub struct Migrating {
    state: State,
    inits: Cell<u32>,
}

impl DurableObject for Migrating {
    fn new(state: State, _env: Env) -> Self {
        Self {
            state,
            inits: Cell::new(0),
        }
    }

    async fn init(&self) -> Result<()> {
        self.inits.set(self.inits.get() + 1);
        let name = self.state.id().name().unwrap_or_default().to_owned();
        if FAILING_INIT.lock().unwrap().contains(&name) {
            return Err(Error::user("migration 2 failed: column exists"));
        }
        if name.starts_with("slow") {
            raise(&format!("{name}-init-started"));
            wait_signal(&format!("{name}-init-release")).await;
        }
        self.state.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS items (name TEXT PRIMARY KEY)",
            (),
        )?;
        Ok(())
    }
}

#[rpc]
impl Migrating {
    /// Inserts an item (needs the table `init` made); returns how many `init` ran.
    pub async fn add(&self, item: String) -> Result<u32> {
        self.state
            .storage()
            .sql()
            .exec("INSERT INTO items VALUES (?1)", (item,))?;
        Ok(self.inits.get())
    }
}

static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);
static CONSTRUCTIONS: LazyLock<Mutex<HashMap<String, u32>>> = LazyLock::new(Default::default);
static SIGNALS: LazyLock<Mutex<HashMap<String, watch::Sender<bool>>>> =
    LazyLock::new(Default::default);

/// How many times a constructor ran for the object with this id.
pub fn constructions(id: &ObjectId) -> u32 {
    CONSTRUCTIONS
        .lock()
        .unwrap()
        .get(&id.to_string())
        .copied()
        .unwrap_or(0)
}

fn signal(key: &str) -> watch::Sender<bool> {
    SIGNALS
        .lock()
        .unwrap()
        .entry(key.to_owned())
        .or_insert_with(|| watch::channel(false).0)
        .clone()
}

/// Opens the signal `key`, releasing every call waiting on it.
pub fn raise(key: &str) {
    signal(key).send_replace(true);
}

/// Waits until signal `key` is raised.
pub async fn wait_signal(key: &str) {
    let mut rx = signal(key).subscribe();
    let _ = rx.wait_for(|raised| *raised).await;
}

/// A value with some structure, to compare both RPC paths on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    pub name: String,
    pub sides: Vec<u32>,
    pub tag: Option<String>,
}

/// The general-purpose test object: counts, records the order of events, and misbehaves on
/// request.
#[durable_object]
pub struct Probe {
    state: State,
    serial: u64,
    value: Cell<i64>,
    log: RefCell<Vec<String>>,
}

impl DurableObject for Probe {
    fn new(state: State, _env: Env) -> Self {
        *CONSTRUCTIONS
            .lock()
            .unwrap()
            .entry(state.id().to_string())
            .or_default() += 1;
        Self {
            serial: NEXT_SERIAL.fetch_add(1, Ordering::SeqCst),
            state,
            value: Cell::new(0),
            log: RefCell::new(Vec::new()),
        }
    }
}

#[rpc]
impl Probe {
    /// Which instance answered: a new number every time the constructor runs.
    pub async fn serial(&self) -> u64 {
        self.serial
    }

    pub async fn add(&self, by: i64) -> Result<i64> {
        self.value.set(self.value.get() + by);
        Ok(self.value.get())
    }

    pub async fn value(&self) -> i64 {
        self.value.get()
    }

    pub async fn record(&self, label: String) {
        self.log.borrow_mut().push(label);
    }

    pub async fn log(&self) -> Vec<String> {
        self.log.borrow().clone()
    }

    /// The name the instance knows itself by.
    pub async fn own_name(&self) -> Option<String> {
        self.state.id().name().map(str::to_owned)
    }

    pub async fn echo(&self, shape: Shape, times: u8) -> Result<Vec<Shape>> {
        Ok(vec![shape; usize::from(times)])
    }

    pub async fn fail(&self, message: String) -> Result<()> {
        Err(Error::user(message))
    }

    /// Inside `block_concurrency_while`: records start, waits for signal `key`, records end.
    pub async fn blocking_wait(&self, key: String, label: String) -> Result<()> {
        self.state
            .block_concurrency_while(async {
                self.log.borrow_mut().push(format!("{label}:start"));
                wait_signal(&key).await;
                self.log.borrow_mut().push(format!("{label}:end"));
                Ok(())
            })
            .await
    }

    /// Holds the shard thread without yielding (as a busy loop or a blocking call would)
    /// until signal `key` is raised.
    #[allow(clippy::disallowed_methods)] // Blocking the thread is the point.
    pub async fn hog_thread(&self, key: String) {
        while !*signal(&key).borrow() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Records start, waits for signal `key`, records end.
    pub async fn wait_for(&self, key: String, label: String) {
        self.log.borrow_mut().push(format!("{label}:start"));
        wait_signal(&key).await;
        self.log.borrow_mut().push(format!("{label}:end"));
    }

    /// Records start, raises signal `key`, yields to the shard's other tasks (so the call
    /// the signal woke gets its chance to run), records end; inside the input gate when
    /// `blocking`.
    pub async fn raise_then_yield(&self, key: String, label: String, blocking: bool) -> Result<()> {
        let work = async {
            self.log.borrow_mut().push(format!("{label}:start"));
            raise(&key);
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            self.log.borrow_mut().push(format!("{label}:end"));
            Ok(())
        };
        if blocking {
            self.state.block_concurrency_while(work).await
        } else {
            work.await
        }
    }

    /// `?` on a std error through `.user_err()`.
    pub async fn parse_number(&self, text: String) -> Result<u32> {
        text.trim().parse::<u32>().user_err()
    }

    /// `?` on an `anyhow::Error` (the `anyhow` feature).
    pub async fn fail_with_anyhow(&self) -> Result<()> {
        let saved: anyhow::Result<()> =
            Err(anyhow::anyhow!("disk on fire").context("saving the report"));
        saved?;
        Ok(())
    }

    /// A user error a caller branches on by code, with the HTTP status the front should use.
    pub async fn sold_out(&self) -> Result<()> {
        Err(Error::user("the last seat was taken")
            .with_code("sold_out")
            .with_status(409))
    }

    /// Sets an alarm, although `Probe` has no alarm handler.
    pub async fn try_set_alarm(&self, time: i64) -> Result<()> {
        self.state.storage().set_alarm(time).await
    }

    pub async fn panic_now(&self, message: String) {
        self.value.set(-1);
        panic!("{message}");
    }

    pub async fn abort_now(&self, reason: Option<String>) {
        self.state.abort(reason.as_deref());
    }

    pub async fn bcw_fail(&self) -> Result<()> {
        self.state
            .block_concurrency_while(async { Err::<(), _>(Error::user("not ready")) })
            .await
    }

    pub async fn bcw_hang(&self) -> Result<()> {
        self.state
            .block_concurrency_while(async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            })
            .await
    }

    /// Nests `depth` calls of block_concurrency_while.
    pub async fn bcw_nest(&self, depth: u32) -> Result<u32> {
        fn nest<'a>(
            state: &'a State,
            depth: u32,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u32>> + 'a>> {
            Box::pin(async move {
                if depth == 0 {
                    return Ok(0);
                }
                state
                    .block_concurrency_while(async move { Ok(nest(state, depth - 1).await? + 1) })
                    .await
            })
        }
        nest(&self.state, depth).await
    }

    pub async fn push(&self, index: u64) {
        self.log.borrow_mut().push(index.to_string());
    }

    /// Tries block_concurrency_while from a task spawned on the side.
    pub async fn bcw_from_spawned_task(&self) -> Result<String> {
        let state = self.state.clone();
        let handle = tokio::task::spawn_local(async move {
            state.block_concurrency_while(async { Ok(()) }).await
        });
        match handle.await {
            Ok(Ok(())) => Ok("allowed".to_owned()),
            Ok(Err(err)) => Ok(err.to_string()),
            Err(join) => Err(Error::user(join)),
        }
    }
}

/// Calls other objects from inside an object.
#[durable_object]
pub struct Caller {
    state: State,
    env: Env,
}

impl DurableObject for Caller {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }
}

/// Calls made by `Caller`s that returned, by label (to see what left an object).
pub static CALLS_RETURNED: LazyLock<Mutex<Vec<String>>> = LazyLock::new(Default::default);

#[rpc]
impl Caller {
    /// Adds `by` to the probe `name` and returns its new value.
    pub async fn add_to_probe(&self, name: String, by: i64) -> Result<i64> {
        self.env
            .namespace::<Probe>("PROBE")?
            .get_by_name(&name)
            .add(by)
            .await
    }

    /// Calls the probe `name`, which fails; returns the error it saw.
    pub async fn failing_probe(&self, name: String) -> Result<(String, bool)> {
        let err = self
            .env
            .namespace::<Probe>("PROBE")?
            .get_by_name(&name)
            .fail("inner".to_owned())
            .await
            .expect_err("fail always fails");
        Ok((err.to_string(), err.is_remote()))
    }

    pub async fn var(&self, name: String) -> Option<String> {
        self.env.var(&name).map(str::to_owned)
    }

    /// Writes, then adds 1 to the probe `name` in the same turn: the call must not leave
    /// before the write is durable.
    pub async fn write_then_add(&self, name: String) -> Result<i64> {
        self.state.storage().put("wrote", &name).await?;
        self.env
            .namespace::<Probe>("PROBE")?
            .get_by_name(&name)
            .add(1)
            .await
    }

    /// The same from a task spawned with `State::spawn`; returns at once.
    pub async fn spawn_write_then_add(&self, name: String) -> Result<()> {
        let storage = self.state.storage();
        let probes = self.env.namespace::<Probe>("PROBE")?;
        self.state.spawn(async move {
            if storage.put("spawned", &name).await.is_ok() {
                let added = probes.get_by_name(&name).add(1).await;
                CALLS_RETURNED
                    .lock()
                    .unwrap()
                    .push(format!("{name}: {added:?}"));
            }
        })
    }
}

/// A class whose constructor panics for names starting with "bad".
#[durable_object]
pub struct Fragile;

impl DurableObject for Fragile {
    fn new(state: State, _env: Env) -> Self {
        if state
            .id()
            .name()
            .is_some_and(|name| name.starts_with("bad"))
        {
            panic!("refusing to build {:?}", state.id().name());
        }
        Fragile
    }
}

#[rpc]
impl Fragile {
    pub async fn ping(&self) -> String {
        "pong".to_owned()
    }
}

/// An object with a `fetch` handler.
#[durable_object]
pub struct Web {
    hits: Cell<u32>,
}

impl DurableObject for Web {
    fn new(_state: State, _env: Env) -> Self {
        Self { hits: Cell::new(0) }
    }

    async fn fetch(&self, request: Request) -> Result<Response> {
        self.hits.set(self.hits.get() + 1);
        if request.uri().path() == "/fail" {
            return Err(Error::user("fetch failed on purpose"));
        }
        let (head, body) = request.into_parts();
        let hits = self.hits.get();
        let body = body.text().await.unwrap_or_else(|_| "<binary>".to_owned());
        let text = format!("{} {} {body} #{hits}", head.method, head.uri.path());
        let mut response = Response::new(Body::from(text));
        *response.status_mut() = durable_objects::http::StatusCode::CREATED;
        Ok(response)
    }
}

#[rpc]
impl Web {}

/// A class with no handlers and no rpc methods (an empty `#[rpc]` block says so).
#[durable_object]
pub struct Bare;

impl DurableObject for Bare {
    fn new(_state: State, _env: Env) -> Self {
        Bare
    }
}

#[rpc]
impl Bare {}

/// `list` options as a serde type, to send over RPC.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListSpec {
    pub start: Option<String>,
    pub start_after: Option<String>,
    pub end: Option<String>,
    pub prefix: Option<String>,
    pub reverse: bool,
    pub limit: Option<usize>,
}

impl ListSpec {
    fn options(&self) -> durable_objects::storage::ListOptions {
        let mut options = durable_objects::storage::ListOptions::new().reverse(self.reverse);
        if let Some(v) = &self.start {
            options = options.start(v.clone());
        }
        if let Some(v) = &self.start_after {
            options = options.start_after(v.clone());
        }
        if let Some(v) = &self.end {
            options = options.end(v.clone());
        }
        if let Some(v) = &self.prefix {
            options = options.prefix(v.clone());
        }
        if let Some(v) = self.limit {
            options = options.limit(v);
        }
        options
    }
}

/// What an `exec` returned, as a serde type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<SqlValue>>,
    pub rows_read: u64,
    pub rows_written: u64,
}

/// An object that exercises storage.
#[durable_object]
pub struct Store {
    state: State,
}

impl DurableObject for Store {
    fn new(state: State, _env: Env) -> Self {
        state
            .storage()
            .sql()
            .exec(
                "CREATE TABLE IF NOT EXISTS ledger (n INTEGER PRIMARY KEY, note TEXT)",
                (),
            )
            .expect("schema");
        Self { state }
    }

    async fn alarm(&self, _info: durable_objects::AlarmInfo) -> Result<()> {
        Ok(())
    }
}

#[rpc]
impl Store {
    pub async fn put(&self, key: String, value: String) -> Result<()> {
        self.state.storage().put(&key, &value).await
    }

    pub async fn put_number(&self, key: String, value: u64) -> Result<()> {
        self.state.storage().put(&key, &value).await
    }

    pub async fn put_bytes(&self, key: String, size: usize) -> Result<()> {
        self.state
            .storage()
            .put(&key, &serde_bytes::ByteBuf::from(vec![7u8; size]))
            .await
    }

    pub async fn get(&self, key: String) -> Result<Option<String>> {
        self.state.storage().get(&key).await
    }

    /// Writes `held`, then waits for signal `key` (the call keeps the object busy).
    pub async fn write_then_wait(&self, key: String) -> Result<()> {
        self.state.storage().put("held", &"x").await?;
        wait_signal(&key).await;
        Ok(())
    }

    /// The length of the bytes `put_bytes` stored under `key`.
    pub async fn byte_len(&self, key: String) -> Result<Option<usize>> {
        let value: Option<serde_bytes::ByteBuf> = self.state.storage().get(&key).await?;
        Ok(value.map(|bytes| bytes.len()))
    }

    pub async fn get_number(&self, key: String) -> Result<Option<u64>> {
        self.state.storage().get(&key).await
    }

    pub async fn get_sync(&self, key: String) -> Result<Option<String>> {
        self.state.storage().kv().get(&key)
    }

    pub async fn put_many(&self, entries: Vec<(String, String)>) -> Result<()> {
        let entries: Vec<(&str, String)> = entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        self.state.storage().put_multiple(&entries).await
    }

    pub async fn get_many(&self, keys: Vec<String>) -> Result<Vec<(String, String)>> {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let found: std::collections::BTreeMap<String, String> =
            self.state.storage().get_multiple(&keys).await?;
        Ok(found.into_iter().collect())
    }

    pub async fn delete(&self, key: String) -> Result<bool> {
        self.state.storage().delete(&key).await
    }

    pub async fn delete_many(&self, keys: Vec<String>) -> Result<usize> {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.state.storage().delete_multiple(&keys).await
    }

    pub async fn list(&self, spec: ListSpec) -> Result<Vec<(String, String)>> {
        self.state.storage().list(spec.options()).await
    }

    pub async fn list_sync(&self, spec: ListSpec) -> Result<Vec<String>> {
        let entries: Vec<(String, serde::de::IgnoredAny)> =
            self.state.storage().kv().list(spec.options())?;
        Ok(entries.into_iter().map(|(k, _)| k).collect())
    }

    pub async fn sql(&self, query: String, params: Vec<SqlValue>) -> Result<SqlResult> {
        let cursor = self.state.storage().sql().exec(&query, params)?;
        let columns = cursor.column_names().to_vec();
        let (rows_read, rows_written) = (cursor.rows_read(), cursor.rows_written());
        Ok(SqlResult {
            columns,
            rows: cursor.raw().collect(),
            rows_read,
            rows_written,
        })
    }

    pub async fn database_size(&self) -> Result<u64> {
        self.state.storage().sql().database_size()
    }

    /// Binds `n` and `n as usize` as parameters and reads them back as `u64`.
    pub async fn unsigned_round_trip(&self, n: u64) -> Result<(u64, u64)> {
        let as_usize = usize::try_from(n).unwrap_or(usize::MAX);
        let row = self
            .state
            .storage()
            .sql()
            .exec("SELECT ?1 AS a, ?2 AS b", (n, as_usize))?
            .one()?;
        Ok((row.get("a")?, row.get("b")?))
    }

    /// Writes ledger row `n` and KV entry `n` in one turn.
    pub async fn record(&self, n: i64) -> Result<()> {
        self.state
            .storage()
            .sql()
            .exec("INSERT INTO ledger (n, note) VALUES (?1, 'ok')", (n,))?;
        self.state.storage().kv().put(&format!("n{n:08}"), &n)
    }

    /// Both writes, then an error: the writes stay.
    pub async fn record_then_fail(&self, n: i64) -> Result<()> {
        self.record(n).await?;
        Err(Error::user("failed after writing"))
    }

    /// Both writes, then a panic in the same turn: the writes are rolled back.
    pub async fn record_then_panic(&self, n: i64) {
        let _ = self.record(n).await;
        panic!("panic after writing");
    }

    /// Writes `first` in one turn, awaits, writes `second` and panics: the first turn was
    /// committed, the second is rolled back.
    pub async fn record_await_panic(&self, first: i64, second: i64) {
        let _ = self.record(first).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = self.record(second).await;
        panic!("panic in the second turn");
    }

    /// Writes, then aborts.
    pub async fn record_then_abort(&self, n: i64) {
        let _ = self.record(n).await;
        self.state.abort(Some("abort after writing"));
    }

    pub async fn ledger(&self) -> Result<Vec<i64>> {
        let cursor = self
            .state
            .storage()
            .sql()
            .exec("SELECT n FROM ledger ORDER BY n", ())?;
        cursor.map(|row| Ok(row.get::<i64>("n")?)).collect()
    }

    pub async fn kv_numbers(&self) -> Result<Vec<i64>> {
        let entries: Vec<(String, i64)> = self
            .state
            .storage()
            .kv()
            .list(durable_objects::storage::ListOptions::new().prefix("n"))?;
        Ok(entries.into_iter().map(|(_, n)| n).collect())
    }

    pub async fn txn_sync(&self, n: i64, fail: bool) -> Result<()> {
        let storage = self.state.storage();
        storage.transaction_sync(|| {
            storage
                .sql()
                .exec("INSERT INTO ledger (n, note) VALUES (?1, 'txn')", (n,))?;
            storage.kv().put(&format!("n{n:08}"), &n)?;
            if fail {
                Err(Error::user("transaction refused"))
            } else {
                Ok(())
            }
        })
    }

    pub async fn txn_async(&self, n: i64, fail: bool) -> Result<()> {
        let storage = self.state.storage();
        storage
            .transaction(|txn| async move {
                txn.sql()
                    .exec("INSERT INTO ledger (n, note) VALUES (?1, 'txn')", (n,))?;
                tokio::time::sleep(Duration::from_millis(10)).await;
                txn.kv().put(&format!("n{n:08}"), &n)?;
                if fail {
                    Err(Error::user("async transaction refused"))
                } else {
                    Ok(())
                }
            })
            .await
    }

    pub async fn delete_all(&self) -> Result<()> {
        self.state.storage().delete_all().await
    }

    pub async fn put_unconfirmed(&self, key: String, value: String) -> Result<()> {
        self.state
            .storage()
            .put_with(
                &key,
                &value,
                durable_objects::storage::PutOptions::unconfirmed(),
            )
            .await
    }

    /// One write of kind `kind` (`put`, `delete`, `put_multiple`, `delete_multiple`,
    /// `delete_all`, `set_alarm`, `delete_alarm`), unconfirmed or not.
    pub async fn write_kind(&self, kind: String, unconfirmed: bool) -> Result<()> {
        use durable_objects::storage::PutOptions;
        let options = if unconfirmed {
            PutOptions::unconfirmed()
        } else {
            PutOptions::default()
        };
        let storage = self.state.storage();
        match kind.as_str() {
            "put" => storage.put_with("k", &1, options).await,
            "delete" => storage.delete_with("k", options).await.map(drop),
            "put_multiple" => {
                storage
                    .put_multiple_with(&[("a", 1), ("b", 2)], options)
                    .await
            }
            "delete_multiple" => storage
                .delete_multiple_with(&["a", "b"], options)
                .await
                .map(drop),
            "delete_all" => storage.delete_all_with(options).await,
            "set_alarm" => storage.set_alarm_with(4_000_000_000_000, options).await,
            "delete_alarm" => storage.delete_alarm_with(options).await,
            other => Err(Error::user(format!("unknown write kind {other}"))),
        }
    }

    /// Writes `n`, then rolls the async transaction back with `txn.rollback()`.
    pub async fn txn_rollback(&self, n: i64) -> Result<String> {
        self.state
            .storage()
            .transaction(|txn| async move {
                txn.sql()
                    .exec("INSERT INTO ledger (n, note) VALUES (?1, 'txn')", (n,))?;
                txn.rollback();
                txn.put(&format!("n{n:08}"), &n).await?;
                Ok("rolled back".to_owned())
            })
            .await
    }

    /// Writes `n` in an async transaction that then waits for signal `key` (past the
    /// transaction timeout), optionally inside a nested transaction.
    pub async fn txn_hang(&self, n: i64, key: String, nested: bool) -> Result<()> {
        let storage = self.state.storage();
        storage
            .transaction(|txn| async move {
                txn.sql()
                    .exec("INSERT INTO ledger (n, note) VALUES (?1, 'txn')", (n,))?;
                if nested {
                    txn.transaction(|inner| async move {
                        inner.put("inner", &n).await?;
                        wait_signal(&key).await;
                        Ok(())
                    })
                    .await
                } else {
                    wait_signal(&key).await;
                    Ok(())
                }
            })
            .await
    }

    /// Calls `delete_all` inside a transaction (sync or async).
    pub async fn delete_all_in_txn(&self, sync: bool) -> Result<()> {
        let storage = self.state.storage();
        if sync {
            storage.transaction_sync(|| ready_now(storage.delete_all()))
        } else {
            storage
                .transaction(|txn| async move { txn.delete_all().await })
                .await
        }
    }

    pub async fn unconfirmed_then_sync(&self, key: String) -> Result<()> {
        let storage = self.state.storage();
        storage
            .put_with(
                &key,
                &"x",
                durable_objects::storage::PutOptions::unconfirmed(),
            )
            .await?;
        storage.sync().await
    }
}

/// One run of a `Clockwork` alarm, as the handler saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmRun {
    pub retry_count: u32,
    pub is_retry: bool,
    pub scheduled: i64,
    /// The clock when the handler ran.
    pub now: i64,
    /// What `get_alarm()` returned inside the handler.
    pub seen_alarm: Option<i64>,
}

/// What a `Clockwork` alarm handler does on one run.
#[derive(Debug, Clone, Copy)]
pub enum AlarmPlan {
    Succeed,
    Fail,
    Panic,
    /// Runs past the wall-time limit.
    Hang,
    /// Sets the next alarm to this time, then succeeds.
    SetNext(i64),
    /// Sets the next alarm to this time, then fails.
    SetNextThenFail(i64),
}

static ALARM_RUNS: LazyLock<Mutex<HashMap<String, Vec<AlarmRun>>>> =
    LazyLock::new(Default::default);
static ALARM_PLANS: LazyLock<Mutex<HashMap<String, std::collections::VecDeque<AlarmPlan>>>> =
    LazyLock::new(Default::default);

/// The alarm runs of object `id` so far.
pub fn alarm_runs(id: &ObjectId) -> Vec<AlarmRun> {
    ALARM_RUNS
        .lock()
        .unwrap()
        .get(&id.to_string())
        .cloned()
        .unwrap_or_default()
}

/// What the next alarm runs of object `id` do (then: succeed).
pub fn plan_alarms(id: &ObjectId, plans: &[AlarmPlan]) {
    ALARM_PLANS
        .lock()
        .unwrap()
        .insert(id.to_string(), plans.iter().copied().collect());
}

/// An object with an alarm whose behaviour tests script.
#[durable_object]
pub struct Clockwork {
    state: State,
    env: Env,
}

impl DurableObject for Clockwork {
    fn new(state: State, env: Env) -> Self {
        *CONSTRUCTIONS
            .lock()
            .unwrap()
            .entry(state.id().to_string())
            .or_default() += 1;
        Self { state, env }
    }

    async fn alarm(&self, info: durable_objects::AlarmInfo) -> Result<()> {
        let id = self.state.id().to_string();
        let run = AlarmRun {
            retry_count: info.retry_count,
            is_retry: info.is_retry,
            scheduled: info.scheduled_time_ms,
            now: self.env.clock().now_ms(),
            seen_alarm: self.state.storage().get_alarm().await?,
        };
        ALARM_RUNS
            .lock()
            .unwrap()
            .entry(id.clone())
            .or_default()
            .push(run);
        let plan = ALARM_PLANS
            .lock()
            .unwrap()
            .get_mut(&id)
            .and_then(std::collections::VecDeque::pop_front)
            .unwrap_or(AlarmPlan::Succeed);
        // Every run also leaves a durable trace, to check writes of failed runs are kept.
        self.state
            .storage()
            .kv()
            .put("last_run", &info.retry_count)?;
        match plan {
            AlarmPlan::Succeed => Ok(()),
            AlarmPlan::Fail => Err(Error::user("alarm failed on purpose")),
            AlarmPlan::Panic => panic!("alarm panicked on purpose"),
            AlarmPlan::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
            AlarmPlan::SetNext(time) => self.state.storage().set_alarm(time).await,
            AlarmPlan::SetNextThenFail(time) => {
                self.state.storage().set_alarm(time).await?;
                Err(Error::user("failed after setting the next alarm"))
            }
        }
    }
}

#[rpc]
impl Clockwork {
    pub async fn set_alarm(&self, time: i64) -> Result<()> {
        self.state.storage().set_alarm(time).await
    }

    /// Sets the alarm without waiting for it to be durable: the reply can leave before the
    /// commit, so a shutdown right after it may find the batch still open.
    pub async fn set_alarm_unconfirmed(&self, time: i64) -> Result<()> {
        self.state
            .storage()
            .set_alarm_with(time, durable_objects::storage::PutOptions::unconfirmed())
            .await
    }

    pub async fn get_alarm(&self) -> Result<Option<i64>> {
        self.state.storage().get_alarm().await
    }

    pub async fn delete_alarm(&self) -> Result<()> {
        self.state.storage().delete_alarm().await
    }

    pub async fn delete_all(&self) -> Result<()> {
        self.state.storage().delete_all().await
    }

    /// Sets the alarm and a KV entry, then fails: both are kept.
    pub async fn set_alarm_then_fail(&self, time: i64) -> Result<()> {
        self.state.storage().set_alarm(time).await?;
        self.state.storage().kv().put("with_alarm", &time)?;
        Err(Error::user("failed after setting the alarm"))
    }

    /// Sets the alarm and a KV entry, then panics: neither survives.
    pub async fn set_alarm_then_panic(&self, time: i64) {
        let _ = self.state.storage().set_alarm(time).await;
        let _ = self.state.storage().kv().put("with_alarm", &time);
        panic!("panic after setting the alarm");
    }

    pub async fn with_alarm(&self) -> Result<Option<i64>> {
        self.state.storage().kv().get("with_alarm")
    }

    pub async fn last_run(&self) -> Result<Option<u32>> {
        self.state.storage().kv().get("last_run")
    }
}

/// Records every alarm run durably: the crash tests' object.
#[durable_object]
pub struct Reminder {
    state: State,
}

impl DurableObject for Reminder {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn alarm(&self, info: durable_objects::AlarmInfo) -> Result<()> {
        let time = info.scheduled_time_ms;
        self.state
            .storage()
            .kv()
            .put(&format!("fired:{time:020}"), &time)
    }
}

#[rpc]
impl Reminder {
    pub async fn remind_at(&self, time: i64) -> Result<()> {
        self.state.storage().set_alarm(time).await
    }

    pub async fn fired(&self) -> Result<Vec<i64>> {
        let entries: Vec<(String, i64)> = self
            .state
            .storage()
            .kv()
            .list(durable_objects::storage::ListOptions::new().prefix("fired:"))?;
        Ok(entries.into_iter().map(|(_, time)| time).collect())
    }
}

/// Polls a future that completes at once (the storage API's async methods do not wait).
fn ready_now<T>(future: impl std::future::Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => panic!("the storage call did not complete at once"),
    }
}
