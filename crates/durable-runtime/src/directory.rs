//! The object directory of one shard: which objects have a live instance.
//!
//! Invariant: at most one [`Instance`] per object key is in the directory, and only the
//! instance in the directory receives new events. An instance leaves the directory when it is
//! evicted (idle), reset (panic, `abort()`, a failed `block_concurrency_while`, a failed
//! commit) or the shard stops; the next event for the object builds a fresh instance with the
//! constructor. A reset instance's remaining events are aborted and their callers told why.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use durable_core::{Error, ErrorKind};
use tokio::time::Instant;

use crate::alarm::handler::run_alarm;
use crate::core::ObjectKey;
use crate::env::Env;
use crate::event::{AnyObject, Event, Outcome, Payload};
use crate::instance::{Host, Instance};
use crate::object::ClassVTable;
use crate::shard::{AdmissionRelease, Control, InstanceStatus, TurnWatch};
use crate::shared::RuntimeShared;
use crate::state::State;
use crate::turn::{EventTask, panic_message};

/// The live instances of one shard.
pub(crate) struct ObjectDirectory {
    shared: Arc<RuntimeShared>,
    /// How to build instances, by namespace index.
    classes: Arc<[ClassVTable]>,
    admission: AdmissionRelease,
    watch: Arc<TurnWatch>,
    instances: RefCell<HashMap<ObjectKey, Rc<Instance>>>,
    /// Events of objects that need activating while the node is at its database limit (and
    /// the events behind them for the same objects), in arrival order, with when they
    /// arrived.
    waiting: RefCell<VecDeque<(Event, Instant)>>,
    /// How many events of each object wait: a later event of the object waits behind them.
    waiting_keys: RefCell<HashMap<ObjectKey, usize>>,
    /// Woken when an instance may have become idle while activations wait.
    pub(crate) slot_wake: tokio::sync::Notify,
    /// The disk's full episode the WALs were last truncated for.
    space_episode: Cell<u64>,
}

impl ObjectDirectory {
    pub(crate) fn new(
        shared: Arc<RuntimeShared>,
        classes: Arc<[ClassVTable]>,
        admission: AdmissionRelease,
        watch: Arc<TurnWatch>,
    ) -> Self {
        Self {
            shared,
            classes,
            admission,
            watch,
            instances: RefCell::new(HashMap::new()),
            waiting: RefCell::new(VecDeque::new()),
            waiting_keys: RefCell::new(HashMap::new()),
            slot_wake: tokio::sync::Notify::new(),
            space_episode: Cell::new(0),
        }
    }

    /// Starts `event` on its object's instance, building the instance first if needed. An
    /// object that needs building while the node is at its database limit waits (with the
    /// events behind it) until a database closes; activations are served in arrival order,
    /// and an object's events always start in their order.
    pub(crate) fn deliver(self: &Rc<Self>, event: Event) {
        let existing = self.instances.borrow().get(&event.key).cloned();
        let queued = !self.waiting.borrow().is_empty();
        let must_wait = if queued && self.waiting_keys.borrow().contains_key(&event.key) {
            true
        } else {
            existing.is_none() && (queued || !self.has_database_slot())
        };
        if must_wait {
            self.wait_for_slot(event);
            return;
        }
        self.start(event, existing);
    }

    /// True if one more database may open: below the limit, or brought below it by evicting
    /// this shard's idle objects.
    fn has_database_slot(&self) -> bool {
        let limit = self.shared.max_open_databases;
        let open = || self.shared.commits.open_databases.load(Ordering::Relaxed);
        if open() < limit {
            return true;
        }
        self.close_idle_databases(limit);
        open() < limit
    }

    /// Closes idle objects' databases while the node is at its limit (another shard asked).
    pub(crate) fn reclaim(&self) {
        let limit = self.shared.max_open_databases;
        if self.shared.commits.open_databases.load(Ordering::Relaxed) >= limit {
            self.close_idle_databases(limit);
        }
    }

    fn wait_for_slot(&self, event: Event) {
        let first = self.waiting.borrow().is_empty();
        *self.waiting_keys.borrow_mut().entry(event.key).or_default() += 1;
        self.waiting.borrow_mut().push_back((event, Instant::now()));
        self.shared
            .metrics
            .activations_waiting
            .fetch_add(1, Ordering::Relaxed);
        if first {
            tracing::debug!(
                limit = self.shared.max_open_databases,
                "the node is at its open-database limit: activations wait for a database to close"
            );
            // Other shards may hold the idle databases.
            self.shared.router.reclaim_all();
        }
    }

    /// Starts the waiting events that can start now: those of live objects, and new objects
    /// in arrival order while database slots last. An object's events keep their order.
    pub(crate) fn retry_waiting(self: &Rc<Self>) {
        if self.waiting.borrow().is_empty() {
            return;
        }
        let queued: Vec<(Event, Instant)> = self.waiting.borrow_mut().drain(..).collect();
        let mut blocked = std::collections::HashSet::new();
        let mut out_of_slots = false;
        for (event, since) in queued {
            let live = self.instances.borrow().contains_key(&event.key);
            let can_start = !blocked.contains(&event.key)
                && (live || (!out_of_slots && self.has_database_slot()));
            if can_start {
                self.forget_waiting(&event.key);
                let existing = self.instances.borrow().get(&event.key).cloned();
                self.start(event, existing);
            } else {
                out_of_slots |= !live;
                blocked.insert(event.key);
                self.waiting.borrow_mut().push_back((event, since));
            }
        }
    }

    /// Fails the events that waited for a database slot for longer than `patience`.
    fn expire_waiting(&self, now: Instant, patience: std::time::Duration) {
        loop {
            let expired = self
                .waiting
                .borrow()
                .front()
                .is_some_and(|(_, since)| now.saturating_duration_since(*since) >= patience);
            if !expired {
                return;
            }
            let Some((event, _)) = self.pop_waiting() else {
                return;
            };
            let error = Error::overloaded(format!(
                "the node has {} object databases open, its limit, and none closed within {} s: retry later, or raise the file-descriptor limit (ulimit -n) or max_open_databases",
                self.shared.max_open_databases,
                patience.as_secs()
            ));
            self.refuse(event, error);
        }
    }

    fn pop_waiting(&self) -> Option<(Event, Instant)> {
        let popped = self.waiting.borrow_mut().pop_front();
        if let Some((event, _)) = &popped {
            self.forget_waiting(&event.key);
        }
        popped
    }

    /// Counts one waiting event of `key` as gone.
    fn forget_waiting(&self, key: &ObjectKey) {
        let mut keys = self.waiting_keys.borrow_mut();
        if let Some(count) = keys.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                keys.remove(key);
            }
        }
        self.shared
            .metrics
            .activations_waiting
            .fetch_sub(1, Ordering::Relaxed);
    }

    fn refuse(&self, event: Event, error: Error) {
        let size = event.payload.size();
        let key = event.key;
        event.reply.fail(error);
        self.admission.release(&key, size);
    }

    /// Starts `event` on `existing`, its object's instance, or on a new one.
    fn start(self: &Rc<Self>, event: Event, existing: Option<Rc<Instance>>) {
        let fresh = existing.is_none();
        let instance = match existing {
            Some(instance) => instance,
            None => match self.activate(&event) {
                Ok(instance) => instance,
                Err(error) => {
                    self.refuse(event, error);
                    return;
                }
            },
        };
        let object = instance
            .object
            .borrow()
            .clone()
            .expect("an instance in the directory has its object");
        let object_for_init = Rc::clone(&object);
        let size = event.payload.size();
        let seq = instance.order.borrow_mut().assign();
        instance.inflight.set(instance.inflight.get() + 1);
        let metrics = &self.shared.metrics;
        let handler = match event.payload {
            Payload::Alarm(call) => run_alarm(Rc::clone(&instance), object, call),
            Payload::Run(run) => {
                let state = State::new(Rc::downgrade(&instance), instance.id.clone());
                Box::pin(async move { Outcome::Rpc(run(object.into_any(), Box::new(state)).await) })
            }
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
        // A new instance's first event runs the class's `init` first, with the input gate
        // closed, so no event (this one included) sees the object before it is ready.
        let handler = if fresh {
            with_init(Rc::clone(&instance), object_for_init, handler)
        } else {
            handler
        };
        let task = EventTask::new(
            Rc::clone(&instance),
            seq,
            handler,
            event.reply,
            self.admission.clone(),
            size,
            Arc::clone(&self.watch),
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
        let class = self.classes[event.key.ns as usize];
        let class_name = class.class_name;
        let host: Weak<dyn Host> = Rc::downgrade(self) as Weak<dyn Host>;
        let instance = Rc::new(Instance::new(
            event.key,
            event.id.clone(),
            class_name,
            host,
            Arc::clone(&self.shared),
            Arc::clone(&self.watch),
        ));
        self.shared.hubs.instance_started(&event.key);
        let state = State::new(Rc::downgrade(&instance), event.id.clone());
        let env = Env::new(Arc::clone(&self.shared));
        let construct = class.construct;
        self.watch.begin(class_name, &event.id);
        let constructed = catch_unwind(AssertUnwindSafe(|| construct(state, env)));
        self.watch.end();
        match constructed {
            Ok(object) => {
                *instance.object.borrow_mut() = Some(object);
                self.instances
                    .borrow_mut()
                    .insert(event.key, Rc::clone(&instance));
                self.shared.active_objects.fetch_add(1, Ordering::Relaxed);
                let now = self.shared.clock.now_ms();
                self.shared.catalog.seen(class_name, &event.id, now);
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

    /// The sweeper's round: evicts idle instances, resets those whose writes waited past the
    /// storage timeout, and truncates the WALs of objects idle for a while (of every object,
    /// when space has just run low). Not while the disk is full: a checkpoint needs room for
    /// the database to grow, and the reserve is kept for deletes.
    pub(crate) fn maintain(self: &Rc<Self>) {
        self.evict_idle();
        let now = Instant::now();
        self.retry_waiting();
        self.expire_waiting(now, ACTIVATION_PATIENCE);
        let space = &self.shared.commits.space;
        let episode = space.episodes();
        let truncate_all = self.space_episode.replace(episode) != episode;
        let may_truncate = !space.is_full();
        let quiet = now.checked_sub(wal_idle_time(self.shared.config.idle_timeout));
        let all: Vec<Rc<Instance>> = self.instances.borrow().values().cloned().collect();
        let mut truncated = 0;
        for instance in all {
            instance.check_storage_timeout(now);
            if instance.is_reset() {
                continue;
            }
            let idle = quiet.is_some_and(|since| instance.is_idle_since(since));
            if may_truncate && (truncate_all || idle) && instance.truncate_wal() {
                truncated += 1;
            }
        }
        if truncate_all && may_truncate {
            tracing::info!(
                truncated,
                "disk space is low: truncated the WALs of open objects"
            );
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
            instance.evict();
        }
    }

    /// Answers an operator's or a test's request (see [`Control`]).
    pub(crate) fn control(&self, control: Control) {
        match control {
            Control::Status { key, reply } => {
                let _ = reply.send(self.status(&key));
            }
            Control::Evict {
                key,
                close_sockets,
                reply,
            } => {
                let status = self.status(&key);
                // An object with no instance may still have hibernated sockets to close.
                if status != InstanceStatus::Busy {
                    self.evict_instance(&key, close_sockets);
                }
                let _ = reply.send(status);
            }
            Control::EvictAll {
                close_sockets,
                reply,
            } => {
                let keys: Vec<ObjectKey> = self.instances.borrow().keys().copied().collect();
                let mut busy = 0;
                for key in keys {
                    match self.status(&key) {
                        InstanceStatus::Idle => self.evict_instance(&key, close_sockets),
                        InstanceStatus::Busy => busy += 1,
                        InstanceStatus::NotRunning => {}
                    }
                }
                let _ = reply.send(busy);
            }
            Control::ResetAll { reason, reply } => {
                let all: Vec<Rc<Instance>> = self.instances.borrow().values().cloned().collect();
                for instance in &all {
                    instance.reset(reason.clone());
                }
                let _ = reply.send(all.len());
            }
            Control::Age { by, reply } => {
                for instance in self.instances.borrow().values() {
                    let last = instance.last_active.get();
                    if let Some(earlier) = last.checked_sub(by) {
                        instance.last_active.set(earlier);
                    }
                }
                self.evict_idle();
                let _ = reply.send(());
            }
        }
    }

    fn status(&self, key: &ObjectKey) -> InstanceStatus {
        match self.instances.borrow().get(key) {
            None => InstanceStatus::NotRunning,
            Some(instance) if instance.is_idle_since(Instant::now()) => InstanceStatus::Idle,
            Some(_) => InstanceStatus::Busy,
        }
    }

    /// Evicts `key`'s instance, if it has one; with `close_sockets`, its hibernatable sockets
    /// are closed (1001, going away) instead of kept for the next instance.
    fn evict_instance(&self, key: &ObjectKey, close_sockets: bool) {
        let instance = self.instances.borrow().get(key).cloned();
        if let Some(instance) = instance {
            tracing::debug!(namespace = instance.class_name, object_id = %instance.id, "object evicted (asked)");
            instance.evict();
        }
        if close_sockets && let Some(hub) = self.shared.hubs.get(key) {
            hub.close_all(1001, "the object was evicted");
        }
    }

    /// Discards every instance; their unfinished events fail with a retryable error.
    pub(crate) fn shutdown(&self) {
        while let Some((event, _)) = self.pop_waiting() {
            self.refuse(
                event,
                Error::disconnected(
                    "the runtime shut down before the object was activated; retry the call",
                ),
            );
        }
        let all: Vec<Rc<Instance>> = self.instances.borrow().values().cloned().collect();
        for instance in all {
            let reason = Error::disconnected(
                "the runtime shut down before the object replied; retry the call",
            );
            instance.stop_for_shutdown(reason);
        }
    }
}

impl Host for ObjectDirectory {
    fn maybe_idle(&self) {
        if !self.waiting.borrow().is_empty() {
            self.slot_wake.notify_one();
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
            let now = self.shared.clock.now_ms();
            self.shared
                .catalog
                .seen(instance.class_name, &instance.id, now);
        }
    }

    /// Evicts idle instances with an open database, least recently active first, until the
    /// node is below `limit` open databases or this shard has none idle left.
    fn close_idle_databases(&self, limit: usize) {
        let now = Instant::now();
        let mut idle: Vec<Rc<Instance>> = self
            .instances
            .borrow()
            .values()
            .filter(|instance| instance.has_open_database() && instance.is_idle_since(now))
            .cloned()
            .collect();
        idle.sort_by_key(|instance| instance.last_active.get());
        for instance in idle {
            if self.shared.commits.open_databases.load(Ordering::Relaxed) < limit {
                break;
            }
            tracing::debug!(namespace = instance.class_name, object_id = %instance.id, "object evicted (too many open databases)");
            instance.evict();
        }
    }
}

/// How long an event may wait for a database slot before it fails as overloaded.
const ACTIVATION_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// How long an object stays quiet before its WAL is copied into its database and truncated:
/// a quarter of the idle timeout, at most 10 s (eviction, which closes the database, removes
/// the WAL anyway).
fn wal_idle_time(idle_timeout: std::time::Duration) -> std::time::Duration {
    (idle_timeout / 4).min(std::time::Duration::from_secs(10))
}

/// `handler`, preceded by the object's `init` under a closed input gate. If `init` fails the
/// instance is reset (the next event builds the object again) and every event waiting on it,
/// this one included, fails with the reason.
fn with_init(
    instance: Rc<Instance>,
    object: Rc<dyn AnyObject>,
    handler: crate::LocalBoxFuture<Outcome>,
) -> crate::LocalBoxFuture<Outcome> {
    Box::pin(async move {
        let initialized = match instance.hold_gate() {
            Ok(gate) => {
                let result = object.init().await;
                drop(gate);
                result
            }
            Err(error) => Err(error),
        };
        if let Err(error) = initialized {
            let message = format!(
                "{} could not be initialized: {error}; the next call builds the object again",
                instance.class_name
            );
            // A storage failure stays one (a full disk, a database that could not be opened
            // and may be retried): that is what the caller can act on.
            let reason = match error.kind() {
                ErrorKind::Storage
                | ErrorKind::DiskFull
                | ErrorKind::OutcomeUnknown
                | ErrorKind::Overloaded => {
                    Error::new(error.kind(), message).with_retryable(error.is_retryable())
                }
                _ => Error::reset(message),
            }
            .into_remote();
            tracing::warn!(namespace = instance.class_name, object_id = %instance.id, reason = %reason, "init failed");
            instance.reset(reason.clone());
            // A reset wins over the outcome: the event's caller is told `reason`.
            return Outcome::Done(Err(reason));
        }
        handler.await
    })
}
