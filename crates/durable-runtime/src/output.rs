//! The output gate of one instance: replies, outgoing calls and `sync()` waiters held until
//! the writes made before them are durable.
//!
//! Every output records the commit sequence number it depends on ([`required`]); outputs
//! leave in the order they were produced, each once the durable point has reached its
//! number. The object keeps running meanwhile. If a commit or fsync fails, every held output
//! fails with that error: nobody is told "done" for a write that is not on disk.
//!
//! [`required`]: durable_storage::ObjectDatabase::required_seq

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;

use durable_core::{Error, Result};
use tokio::sync::oneshot;

use crate::object::Outcome;
use crate::runtime::RuntimeShared;
use crate::shard::{Event, Reply};

/// An output waiting for durability.
// Boxing the event would cost an allocation per outgoing call; held outputs are few.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Held {
    /// The result of an event, for its caller.
    Reply { reply: Reply, outcome: Outcome },
    /// A call the object made to another object.
    Send {
        event: Event,
        shared: Arc<RuntimeShared>,
    },
    /// A `sync()` call.
    Waiter(oneshot::Sender<Result<()>>),
    /// Work to do once a commit is durable (bringing the alarm index up to date).
    Then(Box<dyn FnOnce()>),
}

impl Held {
    fn deliver(self) {
        match self {
            Held::Reply { reply, outcome } => reply.send(outcome),
            Held::Send { event, shared } => shared.send_or_fail(event),
            Held::Waiter(tx) => drop(tx.send(Ok(()))),
            Held::Then(work) => work(),
        }
    }

    fn fail(self, error: Error) {
        match self {
            Held::Reply { reply, .. } => reply.fail(error),
            Held::Send { event, .. } => event.reply.fail(error),
            Held::Waiter(tx) => drop(tx.send(Err(error))),
            // The commit it waited for may not be durable: skip the work.
            Held::Then(_) => {}
        }
    }
}

/// The queue of held outputs, in the order they were produced.
#[derive(Default)]
pub(crate) struct OutputQueue {
    held: RefCell<VecDeque<(u64, Held)>>,
}

impl OutputQueue {
    pub(crate) fn is_empty(&self) -> bool {
        self.held.borrow().is_empty()
    }

    /// Sends `output` now if nothing is held and `required <= durable`, else holds it.
    pub(crate) fn submit(&self, required: u64, durable: u64, output: Held) {
        if required <= durable && self.is_empty() {
            output.deliver();
        } else {
            self.held.borrow_mut().push_back((required, output));
        }
    }

    /// Releases, in order, every held output whose writes are durable by now.
    pub(crate) fn release(&self, durable: u64) {
        loop {
            let next = {
                let mut held = self.held.borrow_mut();
                match held.front() {
                    Some((required, _)) if *required <= durable => held.pop_front(),
                    _ => None,
                }
            };
            match next {
                Some((_, output)) => output.deliver(),
                None => return,
            }
        }
    }

    /// Fails every held output with `error`.
    pub(crate) fn fail_all(&self, error: &Error) {
        let held = std::mem::take(&mut *self.held.borrow_mut());
        for (_, output) in held {
            output.fail(error.clone());
        }
    }
}
