//! The object directory of one shard: which objects have a live instance.
//!
//! Invariant: at most one [`Instance`] per object key is in the directory, and only the
//! instance in the directory receives new events. An instance leaves the directory when it is
//! evicted (idle), reset (panic, `abort()`, a failed `block_concurrency_while`, a failed
//! commit) or the shard stops; the next event for the object builds a fresh instance with the
//! constructor. A reset instance's remaining events are aborted and their callers told why.

use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use durable_core::Error;
use tokio::time::Instant;

use crate::alarm::handler::run_alarm;
use crate::core::ObjectKey;
use crate::env::Env;
use crate::event::{AnyObject, Event, Outcome, Payload};
use crate::instance::{Host, Instance};
use crate::object::ClassVTable;
use crate::shard::AdmissionRelease;
use crate::shared::RuntimeShared;
use crate::state::State;
use crate::turn::{EventTask, panic_message};

/// The live instances of one shard.
pub(crate) struct ObjectDirectory {
    shared: Arc<RuntimeShared>,
    /// How to build instances, by namespace index.
    classes: Arc<[ClassVTable]>,
    admission: AdmissionRelease,
    instances: RefCell<HashMap<ObjectKey, Rc<Instance>>>,
}

impl ObjectDirectory {
    pub(crate) fn new(
        shared: Arc<RuntimeShared>,
        classes: Arc<[ClassVTable]>,
        admission: AdmissionRelease,
    ) -> Self {
        Self {
            shared,
            classes,
            admission,
            instances: RefCell::new(HashMap::new()),
        }
    }

    /// Starts `event` on its object's instance, building the instance first if needed.
    pub(crate) fn deliver(self: &Rc<Self>, event: Event) {
        let existing = self.instances.borrow().get(&event.key).cloned();
        let fresh = existing.is_none();
        let instance = match existing {
            Some(instance) => instance,
            None => match self.activate(&event) {
                Ok(instance) => instance,
                Err(error) => {
                    let size = event.payload.size();
                    event.reply.fail(error);
                    self.admission.release(&event.key, size);
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
        ));
        self.shared.hubs.instance_started(&event.key);
        let state = State::new(Rc::downgrade(&instance), event.id.clone());
        let env = Env::new(Arc::clone(&self.shared));
        let construct = class.construct;
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

    /// Discards every instance; their unfinished events fail with a retryable error.
    pub(crate) fn shutdown(&self) {
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
            let reason = Error::reset(format!(
                "{} could not be initialized: {error}; the next call builds the object again",
                instance.class_name
            ))
            .into_remote();
            tracing::warn!(namespace = instance.class_name, object_id = %instance.id, reason = %reason, "init failed");
            instance.reset(reason.clone());
            // A reset wins over the outcome: the event's caller is told `reason`.
            return Outcome::Done(Err(reason));
        }
        handler.await
    })
}
