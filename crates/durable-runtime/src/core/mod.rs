//! The deterministic core: the runtime's rules as plain types, with no threads, no channels
//! and no clock of their own (time and randomness are passed in).
//!
//! * [`OutputQueue`]: outputs leave in order, each once the writes before it are durable.
//! * [`gate`]: the input gate and the start order of one instance's events.
//! * [`Admission`]: per-object counts of admitted events, and the overload rule.
//! * [`AlarmTimetable`]: the node's pending alarms, their delivery order, and the rules that
//!   settle a delivery (done, spurious, retried with backoff, given up).
//!
//! The batch and sequence-number rules of storage live beside the database, in
//! `durable_storage::batch`. Everything here is unit-tested table by table; the modules
//! above it add the threads, tasks and locks.

mod admission;
pub(crate) mod gate;
mod output_queue;
mod timetable;

pub(crate) use admission::{Admission, AdmissionLimits, Overloaded};
pub(crate) use output_queue::OutputQueue;
pub(crate) use timetable::{AlarmTimetable, Due, RetryPolicy, Settle, SettleAction};

use durable_core::ObjectId;

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
