//! [`TurnWatch`]: what the watchdog sees of one shard: when the turn running on it started,
//! and whose turn it is.
//!
//! Objects cannot be preempted: a handler that never yields (a busy loop, a blocking call)
//! holds its shard thread, and every object hashed to that shard waits. The shard thread
//! marks the start and end of each turn here (two atomic stores, and a lock only when the
//! object changes); the monitor thread compares the start with the CPU limit and marks the
//! shard *stalled*, so callers fail fast as overloaded instead of queueing behind it, and
//! the operator learns which object did it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use durable_core::ObjectId;

/// The running turn of one shard, as the watchdog sees it.
#[derive(Debug)]
pub(crate) struct TurnWatch {
    epoch: Instant,
    /// Nanoseconds from `epoch` to the running turn's start, plus one; 0: no turn runs.
    started: AtomicU64,
    /// A hash of the object whose turn ran last, so its name is stored only on a change.
    last_object: AtomicU64,
    object: Mutex<Option<(&'static str, ObjectId)>>,
    stalled: AtomicBool,
}

/// A turn found running past the limit.
#[derive(Debug, Clone)]
pub(crate) struct Stall {
    pub(crate) class: &'static str,
    pub(crate) id: Option<ObjectId>,
    pub(crate) running: Duration,
}

impl Default for TurnWatch {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            started: AtomicU64::new(0),
            last_object: AtomicU64::new(0),
            object: Mutex::new(None),
            stalled: AtomicBool::new(false),
        }
    }
}

impl TurnWatch {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    /// A turn of `id` (of `class`) starts on the shard thread.
    pub(crate) fn begin(&self, class: &'static str, id: &ObjectId) {
        let hash = id.routing_hash() ^ u64::from(class.len() as u32);
        if self.last_object.swap(hash, Ordering::Relaxed) != hash {
            *self.object.lock().unwrap_or_else(|e| e.into_inner()) = Some((class, id.clone()));
        }
        self.started.store(self.now(), Ordering::Release);
    }

    /// The turn ended.
    pub(crate) fn end(&self) {
        self.started.store(0, Ordering::Release);
    }

    /// True while the shard is marked stalled.
    pub(crate) fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }

    /// How long the running turn has run, if one runs.
    pub(crate) fn running_for(&self) -> Option<Duration> {
        match self.started.load(Ordering::Acquire) {
            0 => None,
            started => Some(Duration::from_nanos(self.now().saturating_sub(started))),
        }
    }

    /// The watchdog's look: marks the shard stalled when its turn has run for `limit` or
    /// longer (returning the stall the first time it is seen), and clears the mark once the
    /// turn ended. The second value is true when a stall just ended.
    pub(crate) fn check(&self, limit: Duration) -> (Option<Stall>, bool) {
        match self.running_for() {
            Some(running) if running >= limit => {
                if self.stalled.swap(true, Ordering::AcqRel) {
                    return (None, false);
                }
                let object = self
                    .object
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let (class, id) = match object {
                    Some((class, id)) => (class, Some(id)),
                    None => ("", None),
                };
                (Some(Stall { class, id, running }), false)
            }
            _ => (None, self.stalled.swap(false, Ordering::AcqRel)),
        }
    }
}

/// `future`, with each of its polls timed as a turn of `id` (the commit task: a commit or a
/// checkpoint that hangs on the disk stalls the shard as a busy handler would).
pub(crate) struct Watched<F> {
    watch: Arc<TurnWatch>,
    class: &'static str,
    id: ObjectId,
    future: Pin<Box<F>>,
}

impl<F> Watched<F> {
    pub(crate) fn new(watch: Arc<TurnWatch>, class: &'static str, id: ObjectId, future: F) -> Self {
        Self {
            watch,
            class,
            id,
            future: Box::pin(future),
        }
    }
}

impl<F: Future> Future for Watched<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        this.watch.begin(this.class, &this.id);
        let polled = this.future.as_mut().poll(cx);
        this.watch.end();
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_turn_is_a_stall_once_and_its_end_clears_it() {
        let watch = TurnWatch::default();
        let key = durable_core::NamespaceKey::from_bytes([7; 32]);
        let id = key.id_from_name("busy");
        assert!(watch.check(Duration::ZERO).0.is_none(), "no turn runs");
        watch.begin("Busy", &id);
        let (stall, _) = watch.check(Duration::ZERO);
        let stall = stall.expect("a turn past the limit is a stall");
        assert_eq!((stall.class, stall.id.as_ref()), ("Busy", Some(&id)));
        assert!(watch.is_stalled());
        assert!(watch.check(Duration::ZERO).0.is_none(), "reported once");
        assert!(
            watch.check(Duration::from_secs(3600)).1,
            "a turn under the limit ends the stall"
        );
        watch.begin("Busy", &id);
        assert!(watch.check(Duration::from_secs(3600)).0.is_none());
        watch.end();
        assert!(!watch.is_stalled());
        assert!(watch.running_for().is_none());
    }
}
