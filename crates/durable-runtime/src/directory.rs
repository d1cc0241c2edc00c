//! The object directory of one shard: which objects have a live instance, and their lifecycle.
//!
//! Invariant: at most one `Instance` per object key is in the directory, and only the
//! instance in the directory receives new events. An instance leaves the directory when it is
//! evicted (idle), reset (panic, `abort()`, a failed `block_concurrency_while`) or the shard
//! stops; the next event for the object builds a fresh instance with the constructor. A reset
//! instance's remaining events are aborted and their callers told why.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use durable_core::{Error, ObjectId};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::alarm::run_alarm;
use crate::env::Env;
use crate::gate::{InputGate, StartOrder};
use crate::object::{AnyObject, Payload};
use crate::output::OutputQueue;
use crate::runtime::RuntimeShared;
use crate::shard::{Event, ObjectKey, ShardLoad};
use crate::state::State;
use crate::storage::ObjectStorage;
use crate::turn::{EventTask, panic_message};
use crate::websocket::SocketShared;

/// One live instance of one object.
pub(crate) struct Instance {
    pub(crate) key: ObjectKey,
    pub(crate) id: ObjectId,
    pub(crate) class_name: &'static str,
    object: RefCell<Option<Rc<dyn AnyObject>>>,
    pub(crate) gate: InputGate,
    pub(crate) order: StartOrder,
    tasks: RefCell<HashMap<u64, AbortHandle>>,
    reset_reason: RefCell<Option<Error>>,
    inflight: Cell<usize>,
    last_active: Cell<Instant>,
    /// The event whose turn is running now, if any: who `block_concurrency_while` closes the
    /// gate for.
    pub(crate) current_event: Cell<Option<u64>>,
    directory: Weak<ObjectDirectory>,
    pub(crate) shared: Arc<RuntimeShared>,
    /// The database, opened on first use.
    pub(crate) storage: RefCell<Option<ObjectStorage>>,
    /// Outputs held until the writes before them are durable.
    pub(crate) outputs: OutputQueue,
    /// A commit task is queued.
    pub(crate) commit_scheduled: Cell<bool>,
    /// The alarm time whose handler is running: `get_alarm()` hides it meanwhile.
    pub(crate) alarm_running: Cell<Option<i64>>,
    /// The open batch changed the stored alarm.
    pub(crate) alarm_dirty: Cell<bool>,
    /// Sockets accepted with the standard API: they pin the instance in memory.
    standard_sockets: RefCell<Vec<Arc<SocketShared>>>,
    /// Tasks the object spawned with `State::spawn`; they end with the instance.
    side_tasks: RefCell<Vec<AbortHandle>>,
}

impl Instance {
    pub(crate) fn is_reset(&self) -> bool {
        self.reset_reason.borrow().is_some()
    }

    /// The error callers of this instance's unfinished events receive.
    pub(crate) fn failure(&self) -> Error {
        self.reset_reason.borrow().clone().unwrap_or_else(|| {
            Error::disconnected("the object stopped before it replied; retry the call")
        })
    }

    /// Discards this instance: it leaves the directory, its other events are aborted with
    /// `reason`, and the next event for the object gets a fresh instance. Storage is kept.
    pub(crate) fn reset(&self, reason: Error) {
        if self.is_reset() {
            return;
        }
        tracing::warn!(
            namespace = self.class_name,
            object_id = %self.id,
            reason = %reason,
            "object reset"
        );
        *self.reset_reason.borrow_mut() = Some(reason.clone());
        // The uncommitted batch dies with the instance; held outputs learn why.
        self.close_storage(&reason, false);
        // A broken object's sockets are disconnected, hibernatable ones included.
        self.shared.hubs.reset(&self.key);
        self.discard();
    }

    /// Keeps the instance in memory while `socket` (accepted with the standard API) is open.
    pub(crate) fn pin_socket(&self, socket: Arc<SocketShared>) {
        let mut sockets = self.standard_sockets.borrow_mut();
        sockets.retain(|s| s.is_open());
        sockets.push(socket);
    }

    /// Runs `future` as a task of this instance until it ends or the instance goes away.
    pub(crate) fn spawn_side_task(self: &Rc<Self>, future: crate::LocalBoxFuture<()>) {
        let task = crate::turn::SideTask {
            instance: Rc::downgrade(self),
            future,
        };
        let handle = tokio::task::spawn_local(task);
        let mut tasks = self.side_tasks.borrow_mut();
        tasks.retain(|task| !task.is_finished());
        tasks.push(handle.abort_handle());
    }

    fn has_standard_sockets(&self) -> bool {
        self.standard_sockets.borrow().iter().any(|s| s.is_open())
    }

    /// Takes the instance out of service: out of the directory, object dropped, tasks aborted.
    fn discard(&self) {
        // Standard sockets live and die with the instance.
        for socket in self.standard_sockets.take() {
            socket.close_now(1011, "the durable object was shut down or reset");
        }
        for task in self.side_tasks.take() {
            task.abort();
        }
        self.shared.hubs.release_if_empty(&self.key);
        if let Some(directory) = self.directory.upgrade() {
            directory.remove(self);
        }
        let current = self.current_event.get();
        let handles: Vec<AbortHandle> = self
            .tasks
            .borrow()
            .iter()
            .filter(|(seq, _)| Some(**seq) != current)
            .map(|(_, handle)| handle.clone())
            .collect();
        for handle in handles {
            handle.abort();
        }
        // Dropping the user's object may run user code; a panic there must not take the shard
        // down with it.
        let object = self.object.borrow_mut().take();
        if catch_unwind(AssertUnwindSafe(|| drop(object))).is_err() {
            tracing::error!(namespace = self.class_name, object_id = %self.id, "object's Drop panicked");
        }
    }

    pub(crate) fn directory(&self) -> Option<Rc<ObjectDirectory>> {
        self.directory.upgrade()
    }

    pub(crate) fn event_finished(&self, seq: u64) {
        self.tasks.borrow_mut().remove(&seq);
        self.inflight.set(self.inflight.get() - 1);
        self.last_active.set(Instant::now());
    }

    fn is_idle_since(&self, deadline: Instant) -> bool {
        !self.has_standard_sockets()
            && self.inflight.get() == 0
            && !self.gate.is_closed()
            && !self.has_pending_durability()
            && self.last_active.get() <= deadline
    }
}

/// The live instances of one shard.
pub(crate) struct ObjectDirectory {
    shared: Arc<RuntimeShared>,
    load: Arc<ShardLoad>,
    instances: RefCell<HashMap<ObjectKey, Rc<Instance>>>,
}

impl ObjectDirectory {
    pub(crate) fn new(shared: Arc<RuntimeShared>, load: Arc<ShardLoad>) -> Self {
        Self {
            shared,
            load,
            instances: RefCell::new(HashMap::new()),
        }
    }

    /// Starts `event` on its object's instance, building the instance first if needed.
    pub(crate) fn deliver(self: &Rc<Self>, event: Event) {
        let existing = self.instances.borrow().get(&event.key).cloned();
        let instance = match existing {
            Some(instance) => instance,
            None => match self.activate(&event) {
                Ok(instance) => instance,
                Err(error) => {
                    event.reply.fail(error);
                    self.load.release(&event.key);
                    return;
                }
            },
        };
        let object = instance
            .object
            .borrow()
            .clone()
            .expect("an instance in the directory has its object");
        let seq = instance.order.assign();
        instance.inflight.set(instance.inflight.get() + 1);
        let metrics = &self.shared.metrics;
        let handler = match event.payload {
            Payload::Alarm(call) => run_alarm(Rc::clone(&instance), object, call),
            payload => {
                let counter = match &payload {
                    Payload::Fetch(_) => &metrics.fetches,
                    Payload::WebSocket(_) => &metrics.web_socket_events,
                    _ => &metrics.rpc_calls,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                object.handle(payload)
            }
        };
        let task = EventTask::new(
            Rc::clone(&instance),
            seq,
            handler,
            event.reply,
            Arc::clone(&self.load),
        );
        let span = tracing::info_span!(
            "event",
            namespace = instance.class_name,
            object_id = %instance.id
        );
        let handle = tokio::task::spawn_local(tracing::Instrument::instrument(task, span));
        instance
            .tasks
            .borrow_mut()
            .insert(seq, handle.abort_handle());
    }

    fn activate(self: &Rc<Self>, event: &Event) -> Result<Rc<Instance>, Error> {
        let ns = &self.shared.namespaces[event.key.ns as usize];
        let class_name = ns.class.class_name;
        let instance = Rc::new(Instance {
            key: event.key,
            id: event.id.clone(),
            class_name,
            object: RefCell::new(None),
            gate: InputGate::default(),
            order: StartOrder::default(),
            tasks: RefCell::new(HashMap::new()),
            reset_reason: RefCell::new(None),
            inflight: Cell::new(0),
            last_active: Cell::new(Instant::now()),
            current_event: Cell::new(None),
            directory: Rc::downgrade(self),
            shared: Arc::clone(&self.shared),
            storage: RefCell::new(None),
            outputs: OutputQueue::default(),
            commit_scheduled: Cell::new(false),
            alarm_running: Cell::new(None),
            alarm_dirty: Cell::new(false),
            standard_sockets: RefCell::new(Vec::new()),
            side_tasks: RefCell::new(Vec::new()),
        });
        self.shared.hubs.instance_started(&event.key);
        let state = State::new(Rc::downgrade(&instance), event.id.clone());
        let env = Env::new(Arc::clone(&self.shared));
        let construct = ns.class.construct;
        match catch_unwind(AssertUnwindSafe(|| construct(state, env))) {
            Ok(object) => {
                *instance.object.borrow_mut() = Some(object);
                self.instances
                    .borrow_mut()
                    .insert(event.key, Rc::clone(&instance));
                self.shared.active_objects.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(namespace = class_name, object_id = %event.id, "object activated");
                Ok(instance)
            }
            Err(payload) => {
                let reason = instance
                    .reset_reason
                    .borrow()
                    .clone()
                    .unwrap_or_else(|| {
                        Error::reset(format!(
                            "the constructor of {class_name} panicked: {}; the next call builds the object again",
                            panic_message(payload.as_ref())
                        ))
                    });
                tracing::warn!(namespace = class_name, object_id = %event.id, reason = %reason, "constructor failed");
                Err(reason.into_remote())
            }
        }
    }

    /// Removes `instance` from the directory if it is the one registered for its key.
    fn remove(&self, instance: &Instance) {
        let mut instances = self.instances.borrow_mut();
        let registered = instances
            .get(&instance.key)
            .is_some_and(|live| std::ptr::eq(Rc::as_ptr(live), instance));
        if registered {
            instances.remove(&instance.key);
            self.shared.active_objects.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Evicts idle instances with an open database, least recently active first, until the
    /// node is below `limit` open databases or this shard has none idle left.
    pub(crate) fn close_idle_databases(&self, limit: usize) {
        let now = Instant::now();
        let mut idle: Vec<Rc<Instance>> = self
            .instances
            .borrow()
            .values()
            .filter(|instance| {
                instance
                    .storage
                    .try_borrow()
                    .is_ok_and(|storage| storage.is_some())
                    && instance.is_idle_since(now)
            })
            .cloned()
            .collect();
        idle.sort_by_key(|instance| instance.last_active.get());
        for instance in idle {
            if self.shared.open_databases.load(Ordering::Relaxed) < limit {
                break;
            }
            tracing::debug!(namespace = instance.class_name, object_id = %instance.id, "object evicted (too many open databases)");
            instance.close_storage(&Error::disconnected("the object was evicted"), true);
            instance.discard();
        }
    }

    /// Evicts every instance with no event in progress for longer than the idle timeout, or
    /// the (shorter) hibernation timeout when its only connections are hibernatable sockets.
    pub(crate) fn evict_idle(&self) {
        let now = Instant::now();
        let Some(deadline) = now.checked_sub(self.shared.config.idle_timeout) else {
            return;
        };
        let hibernate = now
            .checked_sub(self.shared.config.hibernation_timeout)
            .unwrap_or(deadline);
        let idle: Vec<Rc<Instance>> = self
            .instances
            .borrow()
            .values()
            .filter(|instance| {
                instance.is_idle_since(deadline)
                    || (instance.is_idle_since(hibernate)
                        && self.shared.hubs.has_sockets(&instance.key))
            })
            .cloned()
            .collect();
        for instance in idle {
            tracing::debug!(namespace = instance.class_name, object_id = %instance.id, "object evicted (idle)");
            instance.close_storage(&Error::disconnected("the object was evicted"), true);
            instance.discard();
        }
    }

    /// Discards every instance; their unfinished events fail with a retryable error.
    pub(crate) fn shutdown(&self) {
        let all: Vec<Rc<Instance>> = self.instances.borrow().values().cloned().collect();
        for instance in all {
            let reason = Error::disconnected(
                "the runtime shut down before the object replied; retry the call",
            );
            *instance.reset_reason.borrow_mut() = Some(reason.clone());
            // Commit what is pending so no write is lost needlessly; its callers still hear
            // of the shutdown, since the commit was not confirmed to them.
            instance.close_storage(&reason, true);
            instance.discard();
        }
    }
}
