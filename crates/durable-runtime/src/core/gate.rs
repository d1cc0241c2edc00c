//! The input gate and the start order of one instance's events, as plain state.
//!
//! While `block_concurrency_while` runs, its event *holds* the gate: no other event of the
//! object starts, and events already started do not resume either (their I/O completions
//! wait), as Cloudflare's input gate behaves. Separately, events start strictly in the order
//! they were delivered, which is what makes calls through one stub arrive in order even when
//! the gate reorders wake-ups.
//!
//! Waiters are generic (`W`): the runtime parks `Waker`s, the tests park labels. The types
//! only say who to wake; waking is the caller's job.

use std::collections::BTreeMap;

/// What the turn driver may do with an event now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Run its next turn.
    Run,
    /// Not started, and an earlier event has not started yet (or the gate is held): park it
    /// in the start order.
    WaitToStart,
    /// Started, but another event holds the gate: park it at the gate.
    WaitForGate,
}

/// Whether event `seq` (which has `started` or not) may run a turn now.
pub(crate) fn admit<W>(
    order: &StartOrder<W>,
    gate: &InputGate<W>,
    seq: u64,
    started: bool,
) -> Admit {
    if !started {
        if order.may_start(seq) && !gate.blocks(seq) {
            Admit::Run
        } else {
            Admit::WaitToStart
        }
    } else if gate.blocks(seq) {
        Admit::WaitForGate
    } else {
        Admit::Run
    }
}

/// The gate is nested as deeply as allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooDeep;

/// The input gate of one object instance.
#[derive(Debug)]
pub(crate) struct InputGate<W> {
    /// The event holding the gate, and how deeply its `block_concurrency_while` calls nest.
    holder: Option<u64>,
    depth: u32,
    /// Started events waiting for the gate to open.
    parked: Vec<W>,
}

impl<W> Default for InputGate<W> {
    fn default() -> Self {
        Self {
            holder: None,
            depth: 0,
            parked: Vec::new(),
        }
    }
}

impl<W> InputGate<W> {
    /// True when the gate is held by an event other than `event`.
    pub(crate) fn blocks(&self, event: u64) -> bool {
        self.depth > 0 && self.holder != Some(event)
    }

    /// True when any event holds the gate.
    pub(crate) fn is_closed(&self) -> bool {
        self.depth > 0
    }

    /// Closes the gate for everyone but `event`, or nests one level deeper; at most
    /// `max_depth` levels.
    pub(crate) fn close(&mut self, event: u64, max_depth: u32) -> Result<(), TooDeep> {
        debug_assert!(!self.blocks(event), "only the holder may nest");
        if self.depth >= max_depth {
            return Err(TooDeep);
        }
        self.holder = Some(event);
        self.depth += 1;
        Ok(())
    }

    /// Undoes one `close`. When that opens the gate, returns the waiters to wake.
    pub(crate) fn open_one_level(&mut self) -> Option<Vec<W>> {
        self.depth = self.depth.saturating_sub(1);
        if self.depth == 0 {
            self.holder = None;
            Some(std::mem::take(&mut self.parked))
        } else {
            None
        }
    }

    /// Parks a waiter until the gate opens.
    pub(crate) fn park(&mut self, waiter: W) {
        self.parked.push(waiter);
    }
}

/// Delivery order of one instance's events: each gets a sequence number, and an event may
/// start only when every earlier one has started.
#[derive(Debug)]
pub(crate) struct StartOrder<W> {
    next_seq: u64,
    next_start: u64,
    waiting: BTreeMap<u64, W>,
}

impl<W> Default for StartOrder<W> {
    fn default() -> Self {
        Self {
            next_seq: 0,
            next_start: 0,
            waiting: BTreeMap::new(),
        }
    }
}

impl<W> StartOrder<W> {
    /// The next sequence number, for a newly delivered event.
    pub(crate) fn assign(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// True when every event before `seq` has started.
    pub(crate) fn may_start(&self, seq: u64) -> bool {
        self.next_start == seq
    }

    /// Parks event `seq` until it may start (a later park of the same event replaces it).
    pub(crate) fn park(&mut self, seq: u64, waiter: W) {
        self.waiting.insert(seq, waiter);
    }

    /// Records that `seq` started; returns the waiter of the next event, if it is parked.
    pub(crate) fn started(&mut self, seq: u64) -> Option<W> {
        self.next_start = seq + 1;
        self.next_waiter()
    }

    /// The parked waiter of the event whose turn it is to start (after the gate opened).
    pub(crate) fn next_waiter(&mut self) -> Option<W> {
        self.waiting.remove(&self.next_start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u32 = 64;

    #[test]
    fn events_start_in_delivery_order() {
        let mut order: StartOrder<&str> = StartOrder::default();
        let gate: InputGate<&str> = InputGate::default();
        let (a, b, c) = (order.assign(), order.assign(), order.assign());
        assert_eq!((a, b, c), (0, 1, 2));
        // (event, started, expected decision) in the order the driver polls them.
        let cases = [
            (c, false, Admit::WaitToStart),
            (b, false, Admit::WaitToStart),
            (a, false, Admit::Run),
        ];
        for (seq, started, expected) in cases {
            assert_eq!(admit(&order, &gate, seq, started), expected, "event {seq}");
        }
        order.park(c, "c");
        order.park(b, "b");
        // `a` starts: `b` is woken, not `c`.
        assert_eq!(order.started(a), Some("b"));
        assert_eq!(admit(&order, &gate, b, false), Admit::Run);
        assert_eq!(admit(&order, &gate, c, false), Admit::WaitToStart);
        assert_eq!(order.started(b), Some("c"));
        assert_eq!(order.started(c), None, "nobody waits after the last");
    }

    #[test]
    fn the_gate_holds_back_others_but_not_its_holder() {
        let mut order: StartOrder<&str> = StartOrder::default();
        let mut gate: InputGate<&str> = InputGate::default();
        let (holder, running, queued) = (order.assign(), order.assign(), order.assign());
        order.started(holder);
        order.started(running);
        gate.close(holder, MAX).unwrap();
        // (event, started, decision)
        let cases = [
            (holder, true, Admit::Run),
            (running, true, Admit::WaitForGate),
            (queued, false, Admit::WaitToStart),
        ];
        for (seq, started, expected) in cases {
            assert_eq!(admit(&order, &gate, seq, started), expected, "event {seq}");
        }
        gate.park("running");
        order.park(queued, "queued");
        // Nested: opening one level keeps it closed and wakes nobody.
        gate.close(holder, MAX).unwrap();
        assert_eq!(gate.open_one_level(), None);
        assert!(gate.is_closed());
        // Fully open: the parked started event is woken, and the queued one may start.
        assert_eq!(gate.open_one_level(), Some(vec!["running"]));
        assert!(!gate.is_closed());
        assert_eq!(order.next_waiter(), Some("queued"));
        assert_eq!(admit(&order, &gate, queued, false), Admit::Run);
        assert_eq!(admit(&order, &gate, running, true), Admit::Run);
    }

    #[test]
    fn nesting_is_bounded() {
        let mut gate: InputGate<()> = InputGate::default();
        for _ in 0..MAX {
            gate.close(7, MAX).unwrap();
        }
        assert_eq!(gate.close(7, MAX), Err(TooDeep));
        for _ in 0..MAX - 1 {
            assert!(gate.open_one_level().is_none());
        }
        assert!(gate.open_one_level().is_some());
        // Opening an open gate is harmless.
        assert!(gate.open_one_level().is_some());
        assert!(!gate.blocks(1));
    }
}
