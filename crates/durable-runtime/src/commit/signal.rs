//! [`DurabilitySignal`]: how news about one open database's commits reaches its shard thread
//! from other threads: the durability worker (fsynced up to *n*, or failed) and the commit
//! observer (acknowledged *n*, or failed). The shard's pump task waits on it and lets the
//! pipeline release what became durable.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use durable_core::Error;
use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Acks {
    /// Acknowledged out of order, above the contiguous point.
    ahead: BTreeSet<u64>,
    /// The first failure reported, if any.
    failure: Option<Error>,
}

/// Progress and failures of one open database's commits, shared across threads.
#[derive(Debug, Default)]
pub(crate) struct DurabilitySignal {
    notify: Notify,
    /// Every commit up to this one was acknowledged by the observer (or needs no
    /// acknowledgement).
    acked: AtomicU64,
    state: Mutex<Acks>,
}

impl DurabilitySignal {
    fn state(&self) -> std::sync::MutexGuard<'_, Acks> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until something changed.
    pub(crate) async fn changed(&self) {
        self.notify.notified().await;
    }

    /// Wakes the waiter: the WAL is durable further (the worker's callback).
    pub(crate) fn synced(&self) {
        self.notify.notify_one();
    }

    /// The highest commit with every commit up to it acknowledged.
    pub(crate) fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    /// Commit `seq` needs no acknowledgement (no observer is installed).
    pub(crate) fn acknowledge_now(&self, seq: u64) {
        self.acked.fetch_max(seq, Ordering::SeqCst);
    }

    /// The observer acknowledged commit `seq`.
    pub(crate) fn acknowledge(&self, seq: u64) {
        {
            let mut state = self.state();
            let mut acked = self.acked();
            if seq <= acked {
                return;
            }
            state.ahead.insert(seq);
            while state.ahead.remove(&(acked + 1)) {
                acked += 1;
            }
            self.acked.store(acked, Ordering::SeqCst);
        }
        self.notify.notify_one();
    }

    /// A commit could not be made durable (fsync or observer): the object must reset.
    pub(crate) fn fail(&self, error: Error) {
        self.state().failure.get_or_insert(error);
        self.notify.notify_one();
    }

    /// The failure reported, if any (taken once).
    pub(crate) fn take_failure(&self) -> Option<Error> {
        self.state().failure.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_count_only_without_gaps() {
        let signal = DurabilitySignal::default();
        // (acknowledged, contiguous point afterwards)
        let cases = [(2, 0), (3, 0), (1, 3), (1, 3), (5, 3), (4, 5)];
        for (seq, expected) in cases {
            signal.acknowledge(seq);
            assert_eq!(signal.acked(), expected, "after acknowledging {seq}");
        }
        signal.acknowledge_now(9);
        assert_eq!(signal.acked(), 9);
    }

    #[test]
    fn the_first_failure_is_kept_once() {
        let signal = DurabilitySignal::default();
        signal.fail(Error::new(durable_core::ErrorKind::Storage, "first"));
        signal.fail(Error::new(durable_core::ErrorKind::Storage, "second"));
        assert_eq!(signal.take_failure().unwrap().message(), "first");
        assert!(signal.take_failure().is_none());
    }
}
