//! The suite's classes: `Spec`, which records what happens to it, and `NoAlarm`, a class
//! without an alarm handler.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use durable_objects::http;
use durable_objects::prelude::*;

/// Constructors of `Spec` run so far, over the whole test binary (tests that count them use
/// names of their own and compare before and after).
pub static CONSTRUCTED: AtomicUsize = AtomicUsize::new(0);

/// One run of the alarm handler: retry count, is-retry, scheduled time, what `get_alarm`
/// said during the run, and the object's name as the handler saw it.
pub type AlarmRun = (u32, bool, i64, Option<i64>, Option<String>);

/// Records its calls, its alarms (with their `AlarmInfo` and what `get_alarm` said while
/// they ran) and the name it saw in its constructor.
#[durable_object]
pub struct Spec {
    state: State,
    env: Env,
    calls: Cell<u32>,
    log: RefCell<Vec<String>>,
    name_at_construction: Option<String>,
}

impl DurableObject for Spec {
    fn new(state: State, env: Env) -> Self {
        CONSTRUCTED.fetch_add(1, Ordering::SeqCst);
        let name_at_construction = state.id().name().map(str::to_owned);
        Self {
            state,
            env,
            calls: Cell::new(0),
            log: RefCell::default(),
            name_at_construction,
        }
    }

    async fn fetch(&self, request: Request) -> Result<Response> {
        match request.uri().path() {
            "/fail" => Err(Error::user("fetch failed on purpose")),
            "/500" => Ok(http::Response::builder()
                .status(500)
                .body(Body::from("a response, not an error"))
                .unwrap()),
            path => Ok(Response::new(Body::from(path.to_owned()))),
        }
    }

    async fn alarm(&self, info: AlarmInfo) -> Result<()> {
        let storage = self.state.storage();
        let kv = storage.kv();
        let seen = storage.get_alarm().await?;
        let mut runs: Vec<AlarmRun> = kv.get("alarm_runs")?.unwrap_or_default();
        runs.push((
            info.retry_count,
            info.is_retry,
            info.scheduled_time_ms,
            seen,
            self.state.id().name().map(str::to_owned),
        ));
        kv.put("alarm_runs", &runs)?;
        let plan: Vec<String> = kv.get("alarm_plan")?.unwrap_or_default();
        let step = plan.get(runs.len() - 1).cloned().unwrap_or_default();
        match step.as_str() {
            "fail" => Err(Error::user("the alarm failed on purpose")),
            "rearm" => storage.set_alarm(self.env.clock().now_ms() + 1_000).await,
            "delete" => storage.delete_alarm().await,
            "hang" => {
                std::future::pending::<()>().await;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[rpc]
impl Spec {
    /// Counts calls in memory.
    pub async fn call(&self) -> Result<u32> {
        self.calls.set(self.calls.get() + 1);
        Ok(self.calls.get())
    }

    /// Appends `entry` to the in-memory log, after `pause_ms` of waiting (not storage).
    pub async fn log_after(&self, entry: String, pause_ms: u64) -> Result<Vec<String>> {
        if pause_ms > 0 {
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        }
        self.log.borrow_mut().push(entry);
        Ok(self.log.borrow().clone())
    }

    pub async fn name_seen_in_constructor(&self) -> Result<Option<String>> {
        Ok(self.name_at_construction.clone())
    }

    pub async fn own_id(&self) -> Result<String> {
        Ok(self.state.id().to_string())
    }

    pub async fn put(&self, key: String, value: i64) -> Result<()> {
        self.state.storage().kv().put(&key, &value)
    }

    pub async fn get(&self, key: String) -> Result<Option<i64>> {
        self.state.storage().kv().get(&key)
    }

    /// Writes `key`, then fails (an error: the turn's writes stay).
    pub async fn put_then_fail(&self, key: String) -> Result<()> {
        self.state.storage().kv().put(&key, &1)?;
        Err(Error::user("failed after writing"))
    }

    /// Writes `key`, then panics (the object resets; the turn's writes are dropped).
    pub async fn put_then_panic(&self, key: String) -> Result<()> {
        self.state.storage().kv().put(&key, &1)?;
        panic!("panicking after writing {key}");
    }

    /// Writes `key`, then aborts with `reason`.
    pub async fn put_then_abort(&self, key: String, reason: Option<String>) -> Result<()> {
        self.state.storage().kv().put(&key, &1)?;
        self.state.abort(reason.as_deref())
    }

    /// Sets the alarm and the plan for its runs ("fail", "rearm", "delete", "hang", "").
    pub async fn arm(&self, time_ms: i64, plan: Vec<String>) -> Result<()> {
        self.state.storage().kv().put("alarm_plan", &plan)?;
        self.state.storage().set_alarm(time_ms).await
    }

    pub async fn alarm_runs(&self) -> Result<Vec<AlarmRun>> {
        Ok(self
            .state
            .storage()
            .kv()
            .get("alarm_runs")?
            .unwrap_or_default())
    }

    pub async fn get_alarm(&self) -> Result<Option<i64>> {
        self.state.storage().get_alarm().await
    }

    /// Holds the input gate for `hold_ms` (block_concurrency_while), logging around it.
    pub async fn block_for(&self, hold_ms: u64) -> Result<()> {
        self.state
            .block_concurrency_while(async {
                self.log.borrow_mut().push("block start".into());
                tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                self.log.borrow_mut().push("block end".into());
                Ok::<_, Error>(())
            })
            .await
    }

    pub async fn block_and_fail(&self) -> Result<()> {
        self.state
            .block_concurrency_while(async { Err::<(), _>(Error::user("the callback failed")) })
            .await
    }

    pub async fn block_forever(&self) -> Result<()> {
        self.state
            .block_concurrency_while(std::future::pending::<Result<()>>())
            .await
    }

    /// Nests `block_concurrency_while` `depth` times.
    pub async fn nest(&self, depth: u32) -> Result<u32> {
        fn go<'a>(
            state: &'a State,
            left: u32,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u32>> + 'a>> {
            Box::pin(async move {
                if left == 0 {
                    return Ok(0);
                }
                state
                    .block_concurrency_while(
                        async move { go(state, left - 1).await.map(|n| n + 1) },
                    )
                    .await
            })
        }
        go(&self.state, depth).await
    }

    /// Calls the `Spec` object `name` of the same class through its own `Env`.
    pub async fn call_sibling(&self, name: String) -> Result<u32> {
        self.env
            .namespace::<Spec>("SPEC")?
            .get_by_name(&name)
            .call()
            .await
    }

    /// Echoes a value of any serde type.
    pub async fn echo(&self, value: Shape) -> Result<Shape> {
        Ok(value)
    }

    /// Returns `size` bytes.
    pub async fn bytes(&self, size: usize) -> Result<serde_bytes::ByteBuf> {
        Ok(serde_bytes::ByteBuf::from(vec![7u8; size]))
    }

    /// Receives bytes, returns their length.
    pub async fn take_bytes(&self, bytes: serde_bytes::ByteBuf) -> Result<usize> {
        Ok(bytes.len())
    }
}

/// A nested serde value, to check values cross RPC intact.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Shape {
    pub name: String,
    pub tags: Vec<String>,
    pub weight: f64,
    pub parts: std::collections::BTreeMap<String, Option<i64>>,
    pub raw: serde_bytes::ByteBuf,
}

/// A class without an alarm handler.
#[durable_object]
pub struct NoAlarm {
    state: State,
}

impl DurableObject for NoAlarm {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }
}

#[rpc]
impl NoAlarm {
    pub async fn set_alarm(&self, time_ms: i64) -> Result<()> {
        self.state.storage().set_alarm(time_ms).await
    }
}
