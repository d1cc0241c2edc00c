//! Object classes used across the integration tests.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use durable_objects::RuntimeBuilder;
use durable_objects::prelude::*;
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

async fn wait_signal(key: &str) {
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

    pub async fn sleep_then(&self, millis: u64, label: String) {
        self.log.borrow_mut().push(format!("{label}:start"));
        tokio::time::sleep(Duration::from_millis(millis)).await;
        self.log.borrow_mut().push(format!("{label}:end"));
    }

    pub async fn blocking_sleep(&self, millis: u64, label: String) -> Result<()> {
        self.state
            .block_concurrency_while(async {
                self.log.borrow_mut().push(format!("{label}:start"));
                tokio::time::sleep(Duration::from_millis(millis)).await;
                self.log.borrow_mut().push(format!("{label}:end"));
                Ok(())
            })
            .await
    }

    /// Records start, waits for signal `key`, records end.
    pub async fn wait_for(&self, key: String, label: String) {
        self.log.borrow_mut().push(format!("{label}:start"));
        wait_signal(&key).await;
        self.log.borrow_mut().push(format!("{label}:end"));
    }

    /// Records start, raises signal `key`, sleeps, records end; inside the input gate when
    /// `blocking`.
    pub async fn raise_then_sleep(&self, key: String, label: String, blocking: bool) -> Result<()> {
        let work = async {
            self.log.borrow_mut().push(format!("{label}:start"));
            raise(&key);
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.log.borrow_mut().push(format!("{label}:end"));
            Ok(())
        };
        if blocking {
            self.state.block_concurrency_while(work).await
        } else {
            work.await
        }
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
    env: Env,
}

impl DurableObject for Caller {
    fn new(_state: State, env: Env) -> Self {
        Self { env }
    }
}

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
        let text = format!(
            "{} {} {} #{}",
            request.method(),
            request.uri().path(),
            request.body().text().unwrap_or("<binary>"),
            self.hits.get()
        );
        let mut response = Response::new(Body::from(text));
        *response.status_mut() = durable_objects::http::StatusCode::CREATED;
        Ok(response)
    }
}

/// A class with no handlers and no rpc methods.
#[durable_object]
pub struct Bare;

impl DurableObject for Bare {
    fn new(_state: State, _env: Env) -> Self {
        Bare
    }
}
