//! The input gate and the start order of one object's events.
//!
//! While `block_concurrency_while` runs, its event *holds* the gate: no other event of the
//! object starts, and events already started do not resume either (their I/O completions
//! wait), exactly as Cloudflare's input gate behaves. Separately, events start strictly in
//! the order they were delivered, which is what makes calls through one stub arrive in order
//! even when the gate reorders wake-ups.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::task::Waker;

/// The input gate of one object instance.
#[derive(Debug, Default)]
pub(crate) struct InputGate {
    /// The event holding the gate, and how deeply its `block_concurrency_while` calls nest.
    holder: Cell<Option<u64>>,
    depth: Cell<u32>,
    /// Started events waiting for the gate to open.
    parked: RefCell<Vec<Waker>>,
}

impl InputGate {
    /// True when the gate is held by an event other than `event`.
    pub(crate) fn blocks(&self, event: u64) -> bool {
        self.depth.get() > 0 && self.holder.get() != Some(event)
    }

    /// True when any event holds the gate.
    pub(crate) fn is_closed(&self) -> bool {
        self.depth.get() > 0
    }

    pub(crate) fn depth(&self) -> u32 {
        self.depth.get()
    }

    /// Closes the gate for everyone but `event` (or nests one level deeper).
    pub(crate) fn close(&self, event: u64) {
        debug_assert!(!self.blocks(event), "only the holder may nest");
        self.holder.set(Some(event));
        self.depth.set(self.depth.get() + 1);
    }

    /// Undoes one `close`; returns true when the gate is now open.
    pub(crate) fn open_one_level(&self) -> bool {
        let depth = self.depth.get().saturating_sub(1);
        self.depth.set(depth);
        if depth == 0 {
            self.holder.set(None);
            for waker in self.parked.take() {
                waker.wake();
            }
            true
        } else {
            false
        }
    }

    /// Parks a started event until the gate opens.
    pub(crate) fn park(&self, waker: &Waker) {
        self.parked.borrow_mut().push(waker.clone());
    }
}

/// Delivery order of one instance's events: each gets a sequence number, and an event may
/// start only when every earlier one has started.
#[derive(Debug, Default)]
pub(crate) struct StartOrder {
    next_seq: Cell<u64>,
    next_start: Cell<u64>,
    waiting: RefCell<BTreeMap<u64, Waker>>,
}

impl StartOrder {
    /// The next sequence number, for a newly delivered event.
    pub(crate) fn assign(&self) -> u64 {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        seq
    }

    pub(crate) fn may_start(&self, seq: u64) -> bool {
        self.next_start.get() == seq
    }

    pub(crate) fn park(&self, seq: u64, waker: &Waker) {
        self.waiting.borrow_mut().insert(seq, waker.clone());
    }

    /// Records that `seq` started and lets the next event try.
    pub(crate) fn started(&self, seq: u64) {
        self.next_start.set(seq + 1);
        self.wake_next();
    }

    /// Wakes the event whose turn it is to start, if it is waiting.
    pub(crate) fn wake_next(&self) {
        let next = self.next_start.get();
        let waker = self.waiting.borrow_mut().remove(&next);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}
