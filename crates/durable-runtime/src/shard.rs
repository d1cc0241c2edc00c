//! Shard threads: each runs a current-thread Tokio runtime with a `LocalSet`, receives events
//! for the objects whose ids hash to it, and hands them to its `ObjectDirectory`.
//!
//! The sending side ([`ShardHandle`]) counts each object's admitted events (the
//! deterministic [`Admission`] rule) behind a mutex outside the thread, so a caller on any
//! thread learns at once that an object is overloaded instead of adding to an unbounded
//! queue. Counting and queueing happen under one lock, so the count never lags the queue.

use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use durable_core::Error;
use tokio::sync::mpsc;
use tokio::task::LocalSet;

use crate::core::{Admission, ObjectKey, Overloaded};
use crate::directory::ObjectDirectory;
use crate::event::Event;
use crate::shared::RuntimeShared;

// `Stop` is sent once per shard; boxing every event to shrink it would cost an allocation
// per call.
#[allow(clippy::large_enum_variant)]
pub(crate) enum ShardMsg {
    Event(Event),
    Stop,
}

/// The sending side of one shard: its queue and its objects' admission counts.
#[derive(Debug)]
pub(crate) struct ShardHandle {
    tx: mpsc::UnboundedSender<ShardMsg>,
    admission: Arc<Mutex<Admission>>,
}

/// Releases admitted events of one shard as they finish (held by the shard's directory).
#[derive(Debug, Clone)]
pub(crate) struct AdmissionRelease(Arc<Mutex<Admission>>);

impl AdmissionRelease {
    /// Forgets one finished event of `key`.
    pub(crate) fn release(&self, key: &ObjectKey) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .release(key);
    }
}

impl ShardHandle {
    /// A shard's handle and the receiving end its thread reads.
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<ShardMsg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = Self {
            tx,
            admission: Arc::default(),
        };
        (handle, rx)
    }

    fn release_handle(&self) -> AdmissionRelease {
        AdmissionRelease(Arc::clone(&self.admission))
    }

    /// Counts one more event for its object and queues it, unless `limit` events are
    /// already pending for the object; a refused event's caller gets the error.
    pub(crate) fn admit(&self, event: Event, limit: usize) {
        let key = event.key;
        let mut admission = self.admission.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(Overloaded { limit }) = admission.admit(key, limit) {
            drop(admission);
            event.reply.fail(Error::overloaded(format!(
                "object is overloaded: {limit} events are already queued for it; back off before retrying, or spread the load over more objects"
            )));
            return;
        }
        if let Err(mpsc::error::SendError(msg)) = self.tx.send(ShardMsg::Event(event)) {
            admission.release(&key);
            drop(admission);
            if let ShardMsg::Event(event) = msg {
                event.reply.fail(Error::disconnected(
                    "the runtime is shut down: the call was not delivered",
                ));
            }
        }
    }

    /// Asks the shard's thread to stop; false if it already ended.
    pub(crate) fn stop(&self) -> bool {
        self.tx.send(ShardMsg::Stop).is_ok()
    }
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
            let release = shared.shards[index].release_handle();
            let sweep_every = sweep_interval(shared.config.idle_timeout);
            let directory = Rc::new(ObjectDirectory::new(shared, release));
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
