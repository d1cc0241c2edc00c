//! [`TurnWatch`]: what the watchdog sees of one shard: whether a turn is running on it,
//! which one, and whose.
//!
//! Objects cannot be preempted: a handler that never yields (a busy loop, a blocking call)
//! holds its shard thread, and every object hashed to that shard waits. The shard thread
//! marks the start and end of each turn here: an atomic counter, odd while a turn runs, and
//! a lock only when the object changes. No clock is read on the shard's hot path: the
//! monitor thread samples the counter, and a turn it finds still running (the same count) at
//! a later look has run at least the time between the looks. Past the CPU limit it marks the
//! shard *stalled*, so callers fail fast as overloaded instead of queueing behind it, and the
//! operator learns which object did it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use durable_core::ObjectId;

/// The running turn of one shard, as the watchdog sees it.
#[derive(Debug, Default)]
pub(crate) struct TurnWatch {
    /// Turns begun and ended: odd while a turn runs.
    turns: AtomicU64,
    /// A hash of the object whose turn ran last, so its name is stored only on a change.
    last_object: AtomicU64,
    object: Mutex<Option<(&'static str, ObjectId)>>,
    /// The running turn's count and when the monitor first saw it.
    seen: Mutex<Option<(u64, Instant)>>,
    stalled: AtomicBool,
}

/// A turn found running past the limit.
#[derive(Debug, Clone)]
pub(crate) struct Stall {
    pub(crate) class: &'static str,
    pub(crate) id: Option<ObjectId>,
    pub(crate) running: Duration,
}

impl TurnWatch {
    /// A turn of `id` (of `class`) starts on the shard thread.
    pub(crate) fn begin(&self, class: &'static str, id: &ObjectId) {
        let hash = id.routing_hash() ^ class.len() as u64;
        if self.last_object.swap(hash, Ordering::Relaxed) != hash {
            *self.object.lock().unwrap_or_else(|e| e.into_inner()) = Some((class, id.clone()));
        }
        self.turns.fetch_add(1, Ordering::Release);
    }

    /// The turn ended.
    pub(crate) fn end(&self) {
        self.turns.fetch_add(1, Ordering::Release);
    }

    /// True while the shard is marked stalled.
    pub(crate) fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }

    /// How long the running turn has run, as far as the monitor has seen (zero for one it
    /// has not looked at yet); `None` when no turn runs.
    pub(crate) fn running_for(&self) -> Option<Duration> {
        let turns = self.turns.load(Ordering::Acquire);
        if turns.is_multiple_of(2) {
            return None;
        }
        let seen = *self.seen.lock().unwrap_or_else(|e| e.into_inner());
        Some(match seen {
            Some((turn, since)) if turn == turns => since.elapsed(),
            _ => Duration::ZERO,
        })
    }

    /// The monitor's look: notes the running turn, marks the shard stalled when that turn
    /// has run for `limit` or longer (returning the stall the first time it is seen), and
    /// clears the mark once it ended. The second value is true when a stall just ended.
    pub(crate) fn check(&self, limit: Duration) -> (Option<Stall>, bool) {
        let turns = self.turns.load(Ordering::Acquire);
        let running = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if turns.is_multiple_of(2) {
                *seen = None;
                None
            } else {
                match *seen {
                    Some((turn, since)) if turn == turns => Some(since.elapsed()),
                    _ => {
                        *seen = Some((turns, Instant::now()));
                        Some(Duration::ZERO)
                    }
                }
            }
        };
        match running {
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
        watch.end();
        assert!(watch.running_for().is_none());
        watch.begin("Busy", &id);
        assert_eq!(
            watch.running_for(),
            Some(Duration::ZERO),
            "not looked at yet"
        );
        assert!(watch.check(Duration::from_secs(3600)).0.is_none());
        assert!(watch.running_for().is_some());
        watch.end();
        assert!(!watch.check(Duration::ZERO).1 && !watch.is_stalled());
        assert!(watch.running_for().is_none());
    }
}
