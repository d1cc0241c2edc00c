//! The testing toolkit (feature `testing`): a runtime per test over its own temporary data
//! folder and a manual clock ([`TestEnv`]), and the helpers Cloudflare's test pool gives —
//! [`run_in_durable_object`], [`run_durable_object_alarm`], [`list_durable_object_ids`],
//! [`evict`], [`evict_all`], [`abort_all`] — plus [`wait_until_idle`] and storage fault
//! injection. The testing guide (`docs/testing.md`, also `durable_objects::guides::testing`)
//! walks through them.
//!
//! Every helper drives the real runtime: a closure runs as a turn of the object (same input
//! gate, same storage, its reply behind the output gate), eviction and alarms go through the
//! same code as in production. Waiting helpers wait for the condition they name, never for a
//! fixed time, and give up with an error after [`PATIENCE`].

use std::any::Any;
use std::future::Future;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use durable_core::{Clock, Error, ErrorKind, ManualClock, ObjectId, Result};
use tokio::sync::oneshot;

use crate::alarm::AlarmInfo;
use crate::core::ObjectKey;
use crate::env::{Env, Namespace};
use crate::object::DurableObject;
use crate::runtime::{Runtime, RuntimeBuilder, StartError};
use crate::shard::{Control, InstanceStatus};
use crate::shared::RuntimeShared;
use crate::state::State;
use crate::stub::Stub;

/// How long a waiting helper waits for its condition before it fails.
///
/// ```
/// assert_eq!(durable_objects::testing::PATIENCE.as_secs(), 30);
/// ```
pub const PATIENCE: Duration = Duration::from_secs(30);

/// How long a waiting helper pauses between two looks at its condition.
const LOOK_EVERY: Duration = Duration::from_millis(1);

/// What happens to an evicted object's hibernatable WebSockets.
///
/// ```
/// use durable_objects::testing::EvictSockets;
/// assert_eq!(EvictSockets::default(), EvictSockets::Hibernate);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvictSockets {
    /// They stay open, and their next event wakes a new instance (hibernation).
    #[default]
    Hibernate,
    /// They are closed with code 1001.
    Close,
}

type Configure = Arc<dyn Fn(RuntimeBuilder) -> RuntimeBuilder + Send + Sync>;

/// A runtime for one test: its own temporary data folder (removed when the `TestEnv` is
/// dropped), so tests run in parallel without sharing data, and a [`ManualClock`] that moves
/// only when the test says, for alarms, eviction and hibernation alike.
///
/// ```
/// use durable_objects::prelude::*;
/// use durable_objects::testing::TestEnv;
///
/// #[durable_object]
/// pub struct Counter { state: State }
///
/// impl DurableObject for Counter {
///     fn new(state: State, _env: Env) -> Self { Self { state } }
/// }
///
/// #[rpc]
/// impl Counter {
///     pub async fn increment(&self) -> Result<i64> {
///         let kv = self.state.storage().kv();
///         let value = kv.get::<i64>("value")?.unwrap_or(0) + 1;
///         kv.put("value", &value)?;
///         Ok(value)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
/// let mut test = TestEnv::new(|runtime| runtime.bind::<Counter>("COUNTER"))?;
/// let counter = test.env().namespace::<Counter>("COUNTER")?.get_by_name("a");
/// assert_eq!(counter.increment().await?, 1);
/// test.restart()?; // the same data folder, a new runtime: the write is still there
/// let counter = test.env().namespace::<Counter>("COUNTER")?.get_by_name("a");
/// assert_eq!(counter.increment().await?, 2);
/// # Ok(()) }
/// ```
pub struct TestEnv {
    runtime: Option<Runtime>,
    configure: Configure,
    clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for TestEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestEnv")
            .field("data_dir", &self.dir.path())
            .field("now_ms", &self.clock.now_ms())
            .finish_non_exhaustive()
    }
}

impl TestEnv {
    /// Starts a runtime configured by `configure` (bind classes, set variables, settings)
    /// over a new temporary data folder, with a manual clock showing the real time now.
    /// `configure` runs again at each [`restart`](Self::restart).
    ///
    /// ```
    /// # use durable_objects::prelude::*;
    /// # #[durable_object] pub struct Room;
    /// # impl DurableObject for Room { fn new(_: State, _: Env) -> Self { Room } }
    /// use durable_objects::testing::TestEnv;
    /// # fn main() -> anyhow::Result<()> {
    /// let test = TestEnv::new(|runtime| runtime.bind::<Room>("ROOMS").var("GREETING", "hi"))?;
    /// assert_eq!(test.env().var("GREETING"), Some("hi"));
    /// # Ok(()) }
    /// ```
    pub fn new(
        configure: impl Fn(RuntimeBuilder) -> RuntimeBuilder + Send + Sync + 'static,
    ) -> std::result::Result<Self, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("durable-test-")
            .tempdir()
            .map_err(|source| StartError::DataDir {
                path: std::env::temp_dir(),
                source,
            })?;
        // The manual clock starts where the system clock is, so timestamps look real.
        let now = crate::SystemClock.now_ms();
        let mut test = Self {
            runtime: None,
            configure: Arc::new(configure),
            clock: Arc::new(ManualClock::new(now)),
            dir,
        };
        test.start()?;
        Ok(test)
    }

    fn start(&mut self) -> std::result::Result<(), StartError> {
        let builder = Runtime::builder()
            .data_dir(self.dir.path())
            .clock(Arc::clone(&self.clock) as Arc<dyn Clock>);
        self.runtime = Some((self.configure)(builder).build()?);
        Ok(())
    }

    /// The environment: namespaces by binding name, and variables.
    ///
    /// ```
    /// # use durable_objects::prelude::*;
    /// # #[durable_object] pub struct Room;
    /// # impl DurableObject for Room { fn new(_: State, _: Env) -> Self { Room } }
    /// # #[rpc] impl Room {}
    /// # fn main() -> anyhow::Result<()> {
    /// let test = durable_objects::testing::TestEnv::new(|r| r.bind::<Room>("ROOMS"))?;
    /// let rooms = test.env().namespace::<Room>("ROOMS")?;
    /// assert_eq!(rooms.class_name(), "Room");
    /// # Ok(()) }
    /// ```
    pub fn env(&self) -> Env {
        self.runtime().env()
    }

    /// The runtime itself (metrics, health, scheduled alarms).
    ///
    /// ```
    /// # use durable_objects::prelude::*;
    /// # #[durable_object] pub struct Room;
    /// # impl DurableObject for Room { fn new(_: State, _: Env) -> Self { Room } }
    /// # fn main() -> anyhow::Result<()> {
    /// let test = durable_objects::testing::TestEnv::new(|r| r.bind::<Room>("ROOMS"))?;
    /// assert_eq!(test.runtime().active_objects(), 0);
    /// # Ok(()) }
    /// ```
    pub fn runtime(&self) -> &Runtime {
        self.runtime
            .as_ref()
            .expect("a TestEnv always holds a runtime outside restart")
    }

    /// The clock the runtime reads: set or advance it by hand. [`advance`](Self::advance)
    /// also runs what comes due and ages idle objects; moving this clock directly only
    /// wakes the alarm scheduler (at once).
    ///
    /// ```
    /// # use durable_objects::prelude::*;
    /// # #[durable_object] pub struct Room;
    /// # impl DurableObject for Room { fn new(_: State, _: Env) -> Self { Room } }
    /// # fn main() -> anyhow::Result<()> {
    /// let test = durable_objects::testing::TestEnv::new(|r| r.bind::<Room>("ROOMS"))?;
    /// let before = test.clock().now_ms();
    /// test.clock().advance_ms(1_000);
    /// assert_eq!(test.env().clock().now_ms(), before + 1_000);
    /// # Ok(()) }
    /// ```
    pub fn clock(&self) -> &Arc<ManualClock> {
        &self.clock
    }

    /// The test's data folder (removed when the `TestEnv` is dropped).
    ///
    /// ```
    /// # use durable_objects::prelude::*;
    /// # #[durable_object] pub struct Room;
    /// # impl DurableObject for Room { fn new(_: State, _: Env) -> Self { Room } }
    /// # fn main() -> anyhow::Result<()> {
    /// let test = durable_objects::testing::TestEnv::new(|r| r.bind::<Room>("ROOMS"))?;
    /// assert!(test.data_dir().join("namespaces").is_dir());
    /// # Ok(()) }
    /// ```
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the runtime and starts a new one over the same data folder and clock, as a
    /// process restart would: in-memory state is gone, storage and alarms are kept. Stubs
    /// and `Env`s from before fail with a retryable error; take new ones from
    /// [`env`](Self::env).
    ///
    /// ```
    /// # use durable_objects::prelude::*;
    /// # #[durable_object] pub struct Room;
    /// # impl DurableObject for Room { fn new(_: State, _: Env) -> Self { Room } }
    /// # fn main() -> anyhow::Result<()> {
    /// let mut test = durable_objects::testing::TestEnv::new(|r| r.bind::<Room>("ROOMS"))?;
    /// test.restart()?;
    /// assert_eq!(test.runtime().active_objects(), 0);
    /// # Ok(()) }
    /// ```
    pub fn restart(&mut self) -> std::result::Result<(), StartError> {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown();
        }
        self.start()
    }

    /// Moves the clock forward by `by`, running on the way every alarm that comes due
    /// (retries included, each at its own time, in order), and counts every instance as
    /// idle for `by` longer: objects idle past the idle timeout are evicted, and those with
    /// only hibernatable sockets hibernate past the hibernation timeout. Returns once all
    /// that has happened.
    ///
    /// ```
    /// use durable_objects::prelude::*;
    /// use durable_objects::testing::TestEnv;
    /// use std::time::Duration;
    ///
    /// #[durable_object]
    /// pub struct Reminder { state: State }
    ///
    /// impl DurableObject for Reminder {
    ///     fn new(state: State, _env: Env) -> Self { Self { state } }
    ///     async fn alarm(&self, _info: AlarmInfo) -> Result<()> {
    ///         self.state.storage().kv().put("fired", &true)?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// #[rpc]
    /// impl Reminder {
    ///     pub async fn remind_in(&self, ms: u64) -> Result<()> {
    ///         self.state.storage().set_alarm_in(Duration::from_millis(ms)).await
    ///     }
    ///     pub async fn fired(&self) -> Result<bool> {
    ///         Ok(self.state.storage().kv().get::<bool>("fired")?.unwrap_or(false))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
    /// let test = TestEnv::new(|r| r.bind::<Reminder>("REMINDERS"))?;
    /// let reminder = test.env().namespace::<Reminder>("REMINDERS")?.get_by_name("a");
    /// reminder.remind_in(60_000).await?;
    /// test.advance(Duration::from_secs(59)).await?;
    /// assert!(!reminder.fired().await?);
    /// test.advance(Duration::from_secs(1)).await?;
    /// assert!(reminder.fired().await?);
    /// # Ok(()) }
    /// ```
    pub async fn advance(&self, by: Duration) -> Result<()> {
        let shared = Arc::clone(self.env().shared());
        let by_ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 4);
        let target = self.clock.now_ms().saturating_add(by_ms);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            wait_for(deadline, "the alarms due to finish", || {
                shared.alarms.settled_at(self.clock.now_ms())
            })
            .await?;
            match shared.alarms.next_due() {
                Some(due) if due <= target => {
                    self.clock.set_ms(due.max(self.clock.now_ms()));
                }
                _ => break,
            }
        }
        self.clock.set_ms(target);
        wait_for(deadline, "the alarms due to finish", || {
            shared.alarms.settled_at(target)
        })
        .await?;
        for index in 0..shared.router.len() {
            let (reply, answer) = oneshot::channel();
            if shared
                .router
                .shard(index)
                .control(Control::Age { by, reply })
            {
                let _ = answer.await;
            }
        }
        Ok(())
    }

    /// Makes the next `count` WAL fsyncs fail, as a broken disk would: the objects whose
    /// commits they were are reset and their callers get an error; nothing acknowledged is
    /// lost.
    ///
    /// ```
    /// # use durable_objects::prelude::*;
    /// # #[durable_object] pub struct Counter { state: State }
    /// # impl DurableObject for Counter { fn new(state: State, _: Env) -> Self { Self { state } } }
    /// # #[rpc] impl Counter { pub async fn bump(&self) -> Result<()> { self.state.storage().kv().put("n", &1)?; Ok(()) } }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
    /// let test = durable_objects::testing::TestEnv::new(|r| r.bind::<Counter>("C"))?;
    /// let counter = test.env().namespace::<Counter>("C")?.get_by_name("a");
    /// test.fail_next_syncs(1);
    /// assert!(counter.bump().await.unwrap_err().is_reset());
    /// counter.bump().await?; // a new instance, a healthy disk
    /// # Ok(()) }
    /// ```
    pub fn fail_next_syncs(&self, count: u64) {
        self.runtime().inject_sync_failures(count);
    }

    /// Makes WAL fsyncs hang (a disk that stops answering) until
    /// [`release_syncs`](Self::release_syncs): writes wait, replies behind them wait, and
    /// past the storage timeout the objects are reset.
    ///
    /// ```
    /// # use durable_objects::prelude::*;
    /// # #[durable_object] pub struct Counter { state: State }
    /// # impl DurableObject for Counter { fn new(state: State, _: Env) -> Self { Self { state } } }
    /// # #[rpc] impl Counter { pub async fn bump(&self) -> Result<()> { self.state.storage().kv().put("n", &1)?; Ok(()) } }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
    /// let test = durable_objects::testing::TestEnv::new(|r| r.bind::<Counter>("C"))?;
    /// let counter = test.env().namespace::<Counter>("C")?.get_by_name("a");
    /// test.stall_syncs();
    /// let call = tokio::spawn({ let counter = counter.clone(); async move { counter.bump().await } });
    /// tokio::task::yield_now().await;
    /// assert!(!call.is_finished()); // the reply waits for its fsync
    /// test.release_syncs();
    /// call.await??;
    /// # Ok(()) }
    /// ```
    pub fn stall_syncs(&self) {
        self.runtime().stall_syncs();
    }

    /// Lets stalled fsyncs finish (the example of [`stall_syncs`](Self::stall_syncs) shows
    /// both).
    ///
    /// ```
    /// # use durable_objects::prelude::*;
    /// # #[durable_object] pub struct Room;
    /// # impl DurableObject for Room { fn new(_: State, _: Env) -> Self { Room } }
    /// # #[rpc] impl Room {}
    /// # fn main() -> anyhow::Result<()> {
    /// let test = durable_objects::testing::TestEnv::new(|r| r.bind::<Room>("ROOMS"))?;
    /// test.stall_syncs();
    /// test.release_syncs(); // nothing was waiting: a no-op
    /// # Ok(()) }
    /// ```
    pub fn release_syncs(&self) {
        self.runtime().release_sync_stall();
    }

    /// Evicts every object's instance, waiting for the busy ones to finish; see
    /// [`evict_all`].
    ///
    /// ```
    /// # use durable_objects::prelude::*;
    /// # #[durable_object] pub struct Room;
    /// # impl DurableObject for Room { fn new(_: State, _: Env) -> Self { Room } }
    /// # #[rpc] impl Room { pub async fn ping(&self) -> Result<()> { Ok(()) } }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
    /// use durable_objects::testing::{EvictSockets, TestEnv};
    /// let test = TestEnv::new(|r| r.bind::<Room>("ROOMS"))?;
    /// test.env().namespace::<Room>("ROOMS")?.get_by_name("a").ping().await?;
    /// test.evict_all(EvictSockets::Hibernate).await?;
    /// assert_eq!(test.runtime().active_objects(), 0);
    /// # Ok(()) }
    /// ```
    pub async fn evict_all(&self, sockets: EvictSockets) -> Result<()> {
        evict_all(&self.env(), sockets).await
    }

    /// Resets every object's instance; see [`abort_all`].
    ///
    /// ```
    /// # use durable_objects::prelude::*;
    /// # #[durable_object] pub struct Room;
    /// # impl DurableObject for Room { fn new(_: State, _: Env) -> Self { Room } }
    /// # #[rpc] impl Room { pub async fn ping(&self) -> Result<()> { Ok(()) } }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
    /// let test = durable_objects::testing::TestEnv::new(|r| r.bind::<Room>("ROOMS"))?;
    /// test.env().namespace::<Room>("ROOMS")?.get_by_name("a").ping().await?;
    /// assert_eq!(test.abort_all().await?, 1);
    /// # Ok(()) }
    /// ```
    pub async fn abort_all(&self) -> Result<usize> {
        abort_all(&self.env()).await
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // The runtime first: its threads hold files in the folder the TempDir removes.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown();
        }
    }
}

/// Runs `f` as a turn of the object `stub` reaches (activating it if needed), with the
/// instance and its [`State`], and returns `f`'s value. The turn is like any other: it waits
/// for the input gate, its writes commit together, and the value comes back only once they
/// are durable. A panic in `f` resets the object and returns its error.
///
/// ```
/// use durable_objects::prelude::*;
/// use durable_objects::testing::{TestEnv, run_in_durable_object};
/// use std::cell::Cell;
///
/// #[durable_object]
/// pub struct Counter { hits: Cell<u32> }
///
/// impl DurableObject for Counter {
///     fn new(_state: State, _env: Env) -> Self { Self { hits: Cell::new(0) } }
/// }
///
/// #[rpc]
/// impl Counter {
///     pub async fn hit(&self) -> Result<()> { self.hits.set(self.hits.get() + 1); Ok(()) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
/// let test = TestEnv::new(|r| r.bind::<Counter>("COUNTER"))?;
/// let stub = test.env().namespace::<Counter>("COUNTER")?.get_by_name("a");
/// stub.hit().await?;
/// // Look at the instance's fields, and seed its storage directly.
/// let hits = run_in_durable_object(&stub, |counter, state| async move {
///     state.storage().kv().put("seeded", &true)?;
///     Ok::<_, Error>(counter.hits.get())
/// })
/// .await??;
/// assert_eq!(hits, 1);
/// # Ok(()) }
/// ```
pub async fn run_in_durable_object<T, F, Fut, R>(stub: &Stub<T>, f: F) -> Result<R>
where
    T: DurableObject,
    F: FnOnce(Rc<T>, State) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
    R: Send + 'static,
{
    crate::admin::run_in_object(stub.raw(), move |object: Rc<dyn Any>, state| async move {
        let object = object.downcast::<T>().map_err(|_| {
            Error::new(
                ErrorKind::Internal,
                "run_in_durable_object: the object is not of the stub's class",
            )
        })?;
        Ok(f(object, state).await)
    })
    .await?
}

/// Runs the object's alarm now, if it has one set: deletes the alarm, then calls the
/// `alarm` handler (with `retry_count` 0 and the time the alarm was set for), and returns
/// `true` once the handler and its writes are done; `false` if no alarm was set. A failing
/// handler returns its error, and the alarm is not retried (it was deleted first).
///
/// ```
/// use durable_objects::prelude::*;
/// use durable_objects::testing::{TestEnv, run_durable_object_alarm};
///
/// #[durable_object]
/// pub struct Renewal { state: State }
///
/// impl DurableObject for Renewal {
///     fn new(state: State, _env: Env) -> Self { Self { state } }
///     async fn alarm(&self, _info: AlarmInfo) -> Result<()> {
///         self.state.storage().kv().put("renewed", &true)?;
///         Ok(())
///     }
/// }
///
/// #[rpc]
/// impl Renewal {
///     pub async fn schedule(&self) -> Result<()> {
///         self.state.storage().set_alarm_in(std::time::Duration::from_secs(30 * 86_400)).await
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
/// let test = TestEnv::new(|r| r.bind::<Renewal>("RENEWALS"))?;
/// let stub = test.env().namespace::<Renewal>("RENEWALS")?.get_by_name("user-1");
/// assert!(!run_durable_object_alarm(&stub).await?); // nothing set yet
/// stub.schedule().await?;
/// assert!(run_durable_object_alarm(&stub).await?); // ran now, thirty days early
/// assert!(!run_durable_object_alarm(&stub).await?); // and it is gone
/// # Ok(()) }
/// ```
pub async fn run_durable_object_alarm<T: DurableObject>(stub: &Stub<T>) -> Result<bool> {
    run_in_durable_object(stub, |object, state| async move {
        let storage = state.storage();
        let Some(time) = storage.get_alarm().await? else {
            return Ok(false);
        };
        storage.delete_alarm().await?;
        let info = AlarmInfo {
            retry_count: 0,
            is_retry: false,
            scheduled_time_ms: time,
        };
        DurableObject::alarm(&*object, info).await?;
        Ok(true)
    })
    .await?
}

/// The ids of the objects of `namespace` that have storage on disk (objects never written
/// to have none), in no set order. Ids come back without their names: a name cannot be
/// recovered from an id.
///
/// ```
/// # use durable_objects::prelude::*;
/// # #[durable_object] pub struct Room { state: State }
/// # impl DurableObject for Room { fn new(state: State, _: Env) -> Self { Self { state } } }
/// # #[rpc] impl Room {
/// #     pub async fn write(&self) -> Result<()> { self.state.storage().kv().put("k", &1)?; Ok(()) }
/// #     pub async fn read(&self) -> Result<()> { Ok(()) }
/// # }
/// use durable_objects::testing::{TestEnv, list_durable_object_ids};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
/// let test = TestEnv::new(|r| r.bind::<Room>("ROOMS"))?;
/// let rooms = test.env().namespace::<Room>("ROOMS")?;
/// rooms.get_by_name("written").write().await?;
/// rooms.get_by_name("only-read").read().await?;
/// assert_eq!(list_durable_object_ids(&rooms)?, vec![rooms.id_from_name("written")]);
/// # Ok(()) }
/// ```
pub fn list_durable_object_ids<T>(namespace: &Namespace<T>) -> Result<Vec<ObjectId>> {
    let (shared, ns) = namespace.parts();
    let mut ids = Vec::new();
    for db in durable_storage::class_databases(&shared.layout, ns.class_name, usize::MAX) {
        let Some(hex) = db.file_stem().and_then(|stem| stem.to_str()) else {
            continue;
        };
        // A file whose name is not one of this namespace's ids is not an object of it.
        if let Ok(id) = ns.key.id_from_string(hex) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Evicts the object's instance, as idleness would: waits until it has nothing in progress,
/// then drops it (the next call builds it again with the constructor; storage is kept).
/// Returns `false` if no instance was in memory. Its hibernatable sockets stay open
/// ([`EvictSockets::Hibernate`]) or are closed with 1001 ([`EvictSockets::Close`]).
///
/// ```
/// use durable_objects::prelude::*;
/// use durable_objects::testing::{EvictSockets, TestEnv, evict};
/// use std::cell::Cell;
///
/// #[durable_object]
/// pub struct Cache { memory: Cell<u32> }
///
/// impl DurableObject for Cache {
///     fn new(_state: State, _env: Env) -> Self { Self { memory: Cell::new(0) } }
/// }
///
/// #[rpc]
/// impl Cache {
///     pub async fn bump(&self) -> Result<u32> { self.memory.set(self.memory.get() + 1); Ok(self.memory.get()) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
/// let test = TestEnv::new(|r| r.bind::<Cache>("CACHE"))?;
/// let cache = test.env().namespace::<Cache>("CACHE")?.get_by_name("a");
/// assert_eq!(cache.bump().await?, 1);
/// assert!(evict(&cache, EvictSockets::Hibernate).await?);
/// assert_eq!(cache.bump().await?, 1); // in-memory state did not survive eviction
/// # Ok(()) }
/// ```
pub async fn evict<T: DurableObject>(stub: &Stub<T>, sockets: EvictSockets) -> Result<bool> {
    let (shared, ns) = stub.raw().target()?;
    let key = ObjectKey::new(ns, stub.id());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (reply, answer) = oneshot::channel();
        let control = Control::Evict {
            key,
            close_sockets: sockets == EvictSockets::Close,
            reply,
        };
        let status = ask(shared, stub.id(), control, answer).await?;
        match status {
            InstanceStatus::NotRunning => return Ok(false),
            InstanceStatus::Idle => return Ok(true),
            InstanceStatus::Busy => pause(deadline, "the object to finish its work").await?,
        }
    }
}

/// Waits until the object has nothing in progress: no event running or queued, no write
/// waiting to be durable, no output held. Returns at once if it has no instance.
///
/// ```
/// # use durable_objects::prelude::*;
/// # #[durable_object] pub struct Room;
/// # impl DurableObject for Room { fn new(_: State, _: Env) -> Self { Room } }
/// # #[rpc] impl Room { pub async fn ping(&self) -> Result<()> { Ok(()) } }
/// use durable_objects::testing::{TestEnv, wait_until_idle};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
/// let test = TestEnv::new(|r| r.bind::<Room>("ROOMS"))?;
/// let room = test.env().namespace::<Room>("ROOMS")?.get_by_name("a");
/// let call = tokio::spawn({ let room = room.clone(); async move { room.ping().await } });
/// call.await??;
/// wait_until_idle(&room).await?;
/// # Ok(()) }
/// ```
pub async fn wait_until_idle<T: DurableObject>(stub: &Stub<T>) -> Result<()> {
    let (shared, ns) = stub.raw().target()?;
    let key = ObjectKey::new(ns, stub.id());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (reply, answer) = oneshot::channel();
        let status = ask(shared, stub.id(), Control::Status { key, reply }, answer).await?;
        if status != InstanceStatus::Busy {
            return Ok(());
        }
        pause(deadline, "the object to become idle").await?;
    }
}

/// Evicts every object's instance in the runtime of `env`, waiting for busy ones to finish
/// their work first; hibernatable sockets stay open or are closed, as `sockets` says.
///
/// ```
/// # use durable_objects::prelude::*;
/// # #[durable_object] pub struct Room;
/// # impl DurableObject for Room { fn new(_: State, _: Env) -> Self { Room } }
/// # #[rpc] impl Room { pub async fn ping(&self) -> Result<()> { Ok(()) } }
/// use durable_objects::testing::{EvictSockets, TestEnv, evict_all};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
/// let test = TestEnv::new(|r| r.bind::<Room>("ROOMS"))?;
/// let env = test.env();
/// env.namespace::<Room>("ROOMS")?.get_by_name("a").ping().await?;
/// evict_all(&env, EvictSockets::Close).await?;
/// assert_eq!(test.runtime().active_objects(), 0);
/// # Ok(()) }
/// ```
pub async fn evict_all(env: &Env, sockets: EvictSockets) -> Result<()> {
    let shared = env.shared();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut busy = 0;
        for index in 0..shared.router.len() {
            let (reply, answer) = oneshot::channel();
            let control = Control::EvictAll {
                close_sockets: sockets == EvictSockets::Close,
                reply,
            };
            if shared.router.shard(index).control(control) {
                busy += answer.await.unwrap_or(0);
            }
        }
        if busy == 0 {
            return Ok(());
        }
        pause(deadline, "every object to finish its work").await?;
    }
}

/// Resets every object's instance in the runtime of `env` (in-memory state is discarded,
/// storage is kept; calls in progress fail with a reset error); returns how many were reset.
///
/// ```
/// # use durable_objects::prelude::*;
/// # #[durable_object] pub struct Room;
/// # impl DurableObject for Room { fn new(_: State, _: Env) -> Self { Room } }
/// # #[rpc] impl Room { pub async fn ping(&self) -> Result<()> { Ok(()) } }
/// use durable_objects::testing::{TestEnv, abort_all};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
/// let test = TestEnv::new(|r| r.bind::<Room>("ROOMS"))?;
/// let env = test.env();
/// env.namespace::<Room>("ROOMS")?.get_by_name("a").ping().await?;
/// assert_eq!(abort_all(&env).await?, 1);
/// assert_eq!(test.runtime().active_objects(), 0);
/// # Ok(()) }
/// ```
pub async fn abort_all(env: &Env) -> Result<usize> {
    let shared = env.shared();
    let mut reset = 0;
    for index in 0..shared.router.len() {
        let (reply, answer) = oneshot::channel();
        let reason = Error::reset("abort_all reset every object; the next call builds it again");
        if shared
            .router
            .shard(index)
            .control(Control::ResetAll { reason, reply })
        {
            reset += answer.await.unwrap_or(0);
        }
    }
    Ok(reset)
}

/// Sends `control` to the shard of `id` and waits for its answer.
async fn ask<A>(
    shared: &RuntimeShared,
    id: &ObjectId,
    control: Control,
    answer: oneshot::Receiver<A>,
) -> Result<A> {
    let stopped = || Error::disconnected("the runtime is shut down");
    if !shared.router.shard_of(id).control(control) {
        return Err(stopped());
    }
    answer.await.map_err(|_| stopped())
}

/// Waits until `ready()` holds, looking every millisecond, or fails at `deadline`.
async fn wait_for(
    deadline: tokio::time::Instant,
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    while !ready() {
        pause(deadline, what).await?;
    }
    Ok(())
}

/// A short pause before the next look at a condition; an error once `deadline` passed.
async fn pause(deadline: tokio::time::Instant, what: &str) -> Result<()> {
    if tokio::time::Instant::now() >= deadline {
        return Err(Error::new(
            ErrorKind::Overloaded,
            format!(
                "waited {} s for {what}; something keeps it busy (a handler that never ends, an alarm that re-arms itself at once)",
                PATIENCE.as_secs()
            ),
        ));
    }
    tokio::time::sleep(LOOK_EVERY).await;
    Ok(())
}
