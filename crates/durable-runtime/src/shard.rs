//! Shard threads: each runs a current-thread Tokio runtime with a `LocalSet`, receives events
//! for the objects whose ids hash to it, and hands them to its `ObjectDirectory`.
//!
//! The per-object admission count (`ShardLoad`) lives outside the thread, behind a mutex,
//! so a caller on any thread learns at once that an object is overloaded instead of adding to
//! an unbounded queue.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use durable_core::{Error, ObjectId, Result};
use tokio::sync::{mpsc, oneshot};
use tokio::task::LocalSet;

use crate::alarm::AlarmOutcome;
use crate::body::Response;
use crate::directory::ObjectDirectory;
use crate::object::{Outcome, Payload};
use crate::rpc::RpcValue;
use crate::runtime::RuntimeShared;

/// An object's address inside a runtime: namespace index plus id bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ObjectKey {
    pub(crate) ns: u32,
    pub(crate) id: [u8; 32],
}

impl ObjectKey {
    pub(crate) fn new(ns: u32, id: &ObjectId) -> Self {
        Self {
            ns,
            id: *id.as_bytes(),
        }
    }
}

/// Where an event's result goes.
pub(crate) enum Reply {
    Rpc(oneshot::Sender<Result<RpcValue>>),
    Fetch(oneshot::Sender<Result<Response>>),
    Alarm(oneshot::Sender<Result<AlarmOutcome>>),
    /// Nobody waits: failures are logged (WebSocket events).
    Detached,
}

impl Reply {
    /// Delivers the result. A caller that stopped waiting is not an error.
    pub(crate) fn send(self, outcome: Outcome) {
        match (self, outcome) {
            (Reply::Rpc(tx), Outcome::Rpc(result)) => drop(tx.send(result)),
            (Reply::Fetch(tx), Outcome::Fetch(result)) => drop(tx.send(result)),
            (Reply::Alarm(tx), Outcome::Alarm(result)) => drop(tx.send(result)),
            (Reply::Detached, Outcome::Done(Ok(()))) => {}
            (Reply::Detached, Outcome::Done(Err(error))) => {
                tracing::warn!(error = %error, "a WebSocket handler failed");
            }
            (reply, _) => reply.fail(Error::new(
                durable_core::ErrorKind::Internal,
                "an event produced a result of another kind than its request",
            )),
        }
    }

    /// Delivers an error.
    pub(crate) fn fail(self, error: Error) {
        match self {
            Reply::Rpc(tx) => drop(tx.send(Err(error))),
            Reply::Fetch(tx) => drop(tx.send(Err(error))),
            Reply::Alarm(tx) => drop(tx.send(Err(error))),
            Reply::Detached => {
                tracing::warn!(error = %error, "a WebSocket event was not delivered")
            }
        }
    }
}

/// One event for one object, on its way to the object's shard.
pub(crate) struct Event {
    pub(crate) key: ObjectKey,
    pub(crate) id: ObjectId,
    pub(crate) payload: Payload,
    pub(crate) reply: Reply,
}

// `Stop` is sent once per shard; boxing every event to shrink it would cost an allocation
// per call.
#[allow(clippy::large_enum_variant)]
pub(crate) enum ShardMsg {
    Event(Event),
    Stop,
}

/// Events admitted and not yet finished, per object of one shard.
#[derive(Debug, Default)]
pub(crate) struct ShardLoad {
    pending: Mutex<HashMap<ObjectKey, usize>>,
}

impl ShardLoad {
    /// Counts one more event for its object and queues it on `tx`, unless `limit` events
    /// are already pending for the object; a refused event's caller gets the error.
    /// Counting and queueing happen under one lock, so the count never lags the queue.
    pub(crate) fn admit(&self, event: Event, limit: usize, tx: &mpsc::UnboundedSender<ShardMsg>) {
        let key = event.key;
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let count = pending.entry(key).or_insert(0);
        if *count >= limit {
            if *count == 0 {
                pending.remove(&key);
            }
            drop(pending);
            event.reply.fail(Error::overloaded(format!(
                "object is overloaded: {limit} events are already queued for it; back off before retrying, or spread the load over more objects"
            )));
            return;
        }
        match tx.send(ShardMsg::Event(event)) {
            Ok(()) => *count += 1,
            Err(mpsc::error::SendError(msg)) => {
                if *count == 0 {
                    pending.remove(&key);
                }
                drop(pending);
                if let ShardMsg::Event(event) = msg {
                    event.reply.fail(Error::disconnected(
                        "the runtime is shut down: the call was not delivered",
                    ));
                }
            }
        }
    }

    /// Forgets one finished event of `key`.
    pub(crate) fn release(&self, key: &ObjectKey) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = pending.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                pending.remove(key);
            }
        }
    }
}

/// The sending side of one shard.
#[derive(Debug)]
pub(crate) struct ShardHandle {
    pub(crate) tx: mpsc::UnboundedSender<ShardMsg>,
    pub(crate) load: Arc<ShardLoad>,
}

/// Starts shard `index` on its own thread.
pub(crate) fn spawn(
    index: usize,
    shared: Arc<RuntimeShared>,
    mut rx: mpsc::UnboundedReceiver<ShardMsg>,
) -> std::io::Result<JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name(format!("durable-shard-{index}"))
        .spawn(move || {
            let local = LocalSet::new();
            let load = Arc::clone(&shared.shards[index].load);
            let sweep_every = sweep_interval(shared.config.idle_timeout);
            let directory = Rc::new(ObjectDirectory::new(shared, load));
            local.block_on(&runtime, async {
                let sweeper = {
                    let directory = Rc::clone(&directory);
                    tokio::task::spawn_local(async move {
                        let mut tick = tokio::time::interval(sweep_every);
                        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        loop {
                            tick.tick().await;
                            directory.evict_idle();
                        }
                    })
                };
                while let Some(msg) = rx.recv().await {
                    match msg {
                        ShardMsg::Event(event) => directory.deliver(event),
                        ShardMsg::Stop => break,
                    }
                }
                sweeper.abort();
                directory.shutdown();
            });
            // Dropping the LocalSet drops every event task still alive; each tells its caller
            // that the runtime shut down.
            drop(local);
            drop(runtime);
        })
}

/// How often a shard looks for idle objects: often enough that eviction is at most a quarter
/// of the idle timeout late, but never busier than every 5 ms or lazier than every second.
fn sweep_interval(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(5), Duration::from_secs(1))
}
