//! Shards: a shard thread ([`thread`]) runs a current-thread Tokio runtime with a `LocalSet`,
//! receives events for the objects whose ids hash to it, and hands them to its
//! `ObjectDirectory`.
//!
//! The sending side ([`ShardHandle`]) counts each object's admitted events (the
//! deterministic [`Admission`] rule) behind a mutex outside the thread, so a caller on any
//! thread learns at once that an object is overloaded instead of adding to an unbounded
//! queue. Counting and queueing happen under one lock, so the count never lags the queue.

pub(crate) mod thread;
pub(crate) mod watch;

use std::sync::{Arc, Mutex};

use durable_core::Error;
use tokio::sync::{mpsc, oneshot};

use crate::core::{Admission, AdmissionLimits, ObjectKey, Overloaded};
use crate::event::Event;
pub(crate) use watch::{TurnWatch, Watched};

// `Stop` is sent once per shard; boxing every event to shrink it would cost an allocation
// per call.
#[allow(clippy::large_enum_variant)]
pub(crate) enum ShardMsg {
    Event(Event),
    /// The node is at its open-database limit: close the databases of idle objects.
    Reclaim,
    /// An operator's or a test's request about the shard's instances.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    Control(Control),
    Stop,
}

/// What an operator or a test asks a shard about its instances; each answers on its
/// `reply` channel.
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub(crate) enum Control {
    /// Whether the object has a live instance, and whether it is idle.
    Status {
        key: ObjectKey,
        reply: oneshot::Sender<InstanceStatus>,
    },
    /// Evicts the object's instance if it is idle; its hibernatable sockets stay open (they
    /// wake a new instance) unless `close_sockets`.
    Evict {
        key: ObjectKey,
        close_sockets: bool,
        reply: oneshot::Sender<InstanceStatus>,
    },
    /// Evicts every idle instance; answers how many are still busy.
    EvictAll {
        close_sockets: bool,
        reply: oneshot::Sender<usize>,
    },
    /// Resets every instance (their storage is kept); answers how many there were.
    ResetAll {
        reason: Error,
        reply: oneshot::Sender<usize>,
    },
    /// Counts every instance as idle for `by` longer than it was, then evicts the idle ones:
    /// a test's clock jump, seen by eviction and hibernation.
    Age {
        by: std::time::Duration,
        reply: oneshot::Sender<()>,
    },
}

/// An object's instance on its shard, as [`Control`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InstanceStatus {
    /// No instance is in memory.
    NotRunning,
    /// An instance has events, writes or standard sockets in progress.
    Busy,
    /// An instance is in memory with nothing in progress (or, after `Evict`, was evicted).
    Idle,
}

/// The sending side of one shard: its queue and its objects' admission counts.
#[derive(Debug)]
pub(crate) struct ShardHandle {
    tx: mpsc::UnboundedSender<ShardMsg>,
    admission: Arc<Mutex<Admission>>,
    watch: Arc<TurnWatch>,
}

/// Releases admitted events of one shard as they finish (held by the shard's directory).
#[derive(Debug, Clone)]
pub(crate) struct AdmissionRelease(Arc<Mutex<Admission>>);

impl AdmissionRelease {
    /// Forgets one finished event of `key` that carried `size` bytes.
    pub(crate) fn release(&self, key: &ObjectKey, size: usize) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .release(key, size);
    }
}

impl ShardHandle {
    /// A shard's handle and the receiving end its thread reads.
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<ShardMsg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = Self {
            tx,
            admission: Arc::default(),
            watch: Arc::default(),
        };
        (handle, rx)
    }

    pub(crate) fn release_handle(&self) -> AdmissionRelease {
        AdmissionRelease(Arc::clone(&self.admission))
    }

    /// The watchdog's view of the shard's running turn.
    pub(crate) fn watch(&self) -> &Arc<TurnWatch> {
        &self.watch
    }

    /// Counts one more event for its object and queues it, unless the object is at its
    /// `limits`; a refused event's caller gets the error.
    pub(crate) fn admit(&self, event: Event, limits: AdmissionLimits) {
        let key = event.key;
        let size = event.payload.size();
        if self.watch.is_stalled() {
            let running = self.watch.running_for().unwrap_or_default();
            event.reply.fail(Error::overloaded(format!(
                "the object's shard is stalled: a handler on it has not yielded for {} ms; calls to objects on this shard fail until it does (see the server log for the object)",
                running.as_millis()
            )));
            return;
        }
        let mut admission = self.admission.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(overloaded) = admission.admit(key, size, limits) {
            drop(admission);
            event.reply.fail(overloaded_error(overloaded));
            return;
        }
        if let Err(mpsc::error::SendError(msg)) = self.tx.send(ShardMsg::Event(event)) {
            admission.release(&key, size);
            drop(admission);
            if let ShardMsg::Event(event) = msg {
                event.reply.fail(Error::disconnected(
                    "the runtime is shut down: the call was not delivered",
                ));
            }
        }
    }

    /// Sends `control` to the shard's thread; false if it already ended.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn control(&self, control: Control) -> bool {
        self.tx.send(ShardMsg::Control(control)).is_ok()
    }

    /// Asks the shard's thread to stop; false if it already ended.
    pub(crate) fn stop(&self) -> bool {
        self.tx.send(ShardMsg::Stop).is_ok()
    }
}

/// The sending side of every shard: routes each event to the shard its object's id hashes
/// to. Shared by stubs, outputs, hubs and the alarm scheduler.
#[derive(Debug)]
pub(crate) struct ShardRouter {
    shards: Vec<ShardHandle>,
    limits: AdmissionLimits,
}

impl ShardRouter {
    pub(crate) fn new(shards: Vec<ShardHandle>, limits: AdmissionLimits) -> Self {
        Self { shards, limits }
    }

    /// Hands an event to the shard that owns its object; if it cannot be delivered
    /// (overloaded, shut down) its caller gets the error.
    pub(crate) fn send_or_fail(&self, event: Event) {
        self.shard_of(&event.id).admit(event, self.limits);
    }

    /// The handle of the shard that owns `id`.
    pub(crate) fn shard_of(&self, id: &durable_core::ObjectId) -> &ShardHandle {
        &self.shards[(id.routing_hash() % self.shards.len() as u64) as usize]
    }

    /// Shard `index`'s handle.
    pub(crate) fn shard(&self, index: usize) -> &ShardHandle {
        &self.shards[index]
    }

    /// How many shards there are.
    pub(crate) fn len(&self) -> usize {
        self.shards.len()
    }

    /// Asks every shard to close its idle objects' databases (the node is at its limit).
    pub(crate) fn reclaim_all(&self) {
        for shard in &self.shards {
            let _ = shard.tx.send(ShardMsg::Reclaim);
        }
    }

    /// Asks every shard's thread to stop.
    pub(crate) fn stop_all(&self) {
        for shard in &self.shards {
            // A shard whose thread already ended has dropped its receiver: nothing to stop.
            shard.stop();
        }
    }
}

/// What a caller refused for overload hears: which limit, and what to do.
fn overloaded_error(overloaded: Overloaded) -> Error {
    let (limit, max, actual, message) = match overloaded {
        Overloaded::Events { limit } => (
            durable_core::Limit::QueuedEvents,
            limit,
            None,
            format!(
                "object is overloaded: {limit} events are already queued for it; back off before retrying, or spread the load over more objects"
            ),
        ),
        Overloaded::Bytes { limit, size } => (
            durable_core::Limit::QueuedBytes,
            limit,
            Some(size),
            format!(
                "object is overloaded: its queued events already hold close to {limit} bytes and this one carries {size}; back off before retrying, or send smaller messages"
            ),
        ),
    };
    let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    Error::overloaded(message).with_detail(durable_core::ErrorDetail::Limit {
        limit,
        max: wide(max),
        actual: actual.map(wide),
    })
}
