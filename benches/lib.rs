//! Object classes and drivers shared by the benchmarks.

use std::cell::Cell;
use std::time::{Duration, Instant};

use durable_objects::prelude::*;
use durable_objects::storage::ListOptions;

/// The smallest useful object: an in-memory counter.
#[durable_object]
pub struct BenchCounter {
    value: Cell<u64>,
}

impl std::fmt::Debug for BenchCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchCounter").finish()
    }
}

impl DurableObject for BenchCounter {
    fn new(_state: State, _env: Env) -> Self {
        Self {
            value: Cell::new(0),
        }
    }
}

#[rpc]
impl BenchCounter {
    /// Adds one and returns the new value.
    pub async fn bump(&self) -> u64 {
        self.value.set(self.value.get() + 1);
        self.value.get()
    }
}

/// Makes `calls` RPC round trips from `callers` concurrent tasks, each caller awaiting one
/// call before making the next, spread round-robin over `stubs`. Returns the wall time.
pub async fn round_trips(stubs: &[Stub<BenchCounter>], callers: usize, calls: u64) -> Duration {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let callers_u64 = callers as u64;
    for caller in 0..callers {
        let share = calls / callers_u64 + u64::from((caller as u64) < calls % callers_u64);
        let mine: Vec<Stub<BenchCounter>> = (0..stubs.len().min(64))
            .map(|k| stubs[(caller * 64 + k) % stubs.len()].clone())
            .collect();
        tasks.spawn(async move {
            for call in 0..share {
                let stub = &mine[(call as usize) % mine.len()];
                stub.bump().await.expect("bench call succeeds");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("bench caller finished");
    }
    started.elapsed()
}

/// An object whose every call is a durable write or a read of its database.
#[durable_object]
pub struct BenchStore {
    state: State,
}

impl std::fmt::Debug for BenchStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchStore").finish()
    }
}

impl DurableObject for BenchStore {
    fn new(state: State, _env: Env) -> Self {
        state
            .storage()
            .sql()
            .exec(
                "CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS items (k INTEGER PRIMARY KEY, v TEXT NOT NULL)",
                (),
            )
            .expect("schema");
        Self { state }
    }
}

#[rpc]
impl BenchStore {
    /// One durable SQL write: the reply leaves once the write is on disk.
    pub async fn increment(&self) -> Result<i64> {
        let row = self
            .state
            .storage()
            .sql()
            .exec(
                "INSERT INTO counter (id, value) VALUES (1, 1)
                 ON CONFLICT (id) DO UPDATE SET value = value + 1 RETURNING value",
                (),
            )?
            .one()?;
        row.get("value").map_err(Error::from)
    }

    /// Fills `n` KV entries and `n` SQL rows to read back.
    /// Adds a row of `bytes` random bytes (a commit of about that size).
    pub async fn grow(&self, bytes: u32) -> Result<()> {
        let sql = self.state.storage().sql();
        sql.exec(
            "CREATE TABLE IF NOT EXISTS blobs (id INTEGER PRIMARY KEY, body BLOB NOT NULL)",
            (),
        )?;
        sql.exec(
            "INSERT INTO blobs (body) VALUES (randomblob(?1))",
            (i64::from(bytes),),
        )?;
        Ok(())
    }

    pub async fn fill(&self, n: u32) -> Result<()> {
        let storage = self.state.storage();
        for i in 0..n {
            storage
                .kv()
                .put(&format!("key-{i:06}"), &format!("value-{i}"))?;
            storage.sql().exec(
                "INSERT OR REPLACE INTO items (k, v) VALUES (?1, ?2)",
                (i, format!("value-{i}")),
            )?;
        }
        Ok(())
    }

    /// A KV point read.
    pub async fn kv_get(&self, i: u32) -> Result<Option<String>> {
        self.state.storage().get(&format!("key-{i:06}")).await
    }

    /// An SQL point read.
    pub async fn sql_get(&self, i: u32) -> Result<String> {
        let row = self
            .state
            .storage()
            .sql()
            .exec("SELECT v FROM items WHERE k = ?1", (i,))?
            .one()?;
        row.get("v").map_err(Error::from)
    }

    /// A KV list of `limit` entries from `start`.
    pub async fn kv_list(&self, start: u32, limit: usize) -> Result<usize> {
        let entries: Vec<(String, String)> = self
            .state
            .storage()
            .list(
                ListOptions::new()
                    .start(format!("key-{start:06}"))
                    .limit(limit),
            )
            .await?;
        Ok(entries.len())
    }
}

/// Runs `calls` calls from `callers` concurrent tasks, each awaiting one call before making
/// the next; `call(stub_index, call_number)` makes one call.
pub async fn drive<S, F, Fut>(stubs: &[S], callers: usize, calls: u64, call: F) -> Duration
where
    S: Clone + Send + Sync + 'static,
    F: Fn(S, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let callers_u64 = callers as u64;
    for caller in 0..callers {
        let share = calls / callers_u64 + u64::from((caller as u64) < calls % callers_u64);
        let mine: Vec<S> = (0..stubs.len().min(64))
            .map(|k| stubs[(caller * 64 + k) % stubs.len()].clone())
            .collect();
        let call = call.clone();
        tasks.spawn(async move {
            for n in 0..share {
                call(mine[(n as usize) % mine.len()].clone(), n).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("bench caller finished");
    }
    started.elapsed()
}

/// When each `BenchAlarmSetter` alarm ran (process-wide, for the alarm benchmark).
pub static ALARM_RUNS: std::sync::Mutex<Vec<Instant>> = std::sync::Mutex::new(Vec::new());

/// An object that only has an alarm; its handler notes when it ran.
#[durable_object]
pub struct BenchAlarmSetter {
    state: State,
}

impl std::fmt::Debug for BenchAlarmSetter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BenchAlarmSetter")
    }
}

impl DurableObject for BenchAlarmSetter {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn alarm(&self, _info: durable_objects::AlarmInfo) -> Result<()> {
        ALARM_RUNS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Instant::now());
        Ok(())
    }
}

#[rpc]
impl BenchAlarmSetter {
    /// Sets the object's alarm.
    pub async fn set_alarm(&self, time: i64) -> Result<()> {
        self.state.storage().set_alarm(time).await
    }
}

/// Resident memory of this process, in bytes (Linux).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
