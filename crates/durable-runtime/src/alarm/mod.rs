//! Alarms: the node-level scheduler and the wrapper that runs an object's handler.
//!
//! * [`scheduler`]: the [`AlarmScheduler`]: the node's pending alarms (the deterministic
//!   [`AlarmTimetable`](crate::core::AlarmTimetable) under a lock) and the persistent index,
//!   written by the [`index_writer`] thread. The commit pipeline keeps both up to date.
//! * [`delivery`]: the scheduler's thread: takes what is due, sends alarm events to the
//!   objects' shards, and settles their outcomes (retry, give up, reschedule).
//! * [`handler`]: the event that runs an object's `alarm` handler.
//!
//! The scheduler keeps every pending alarm of the node in memory and in the persistent
//! [`AlarmIndex`](durable_storage::AlarmIndex), so start-up knows what is due without opening
//! any object. The index may be ahead of the objects, never behind: an entry is written and
//! fsynced *before* the object commits an alarm at that time or earlier, and moved later or
//! removed only *after* the object's commit is durable. A crash can therefore cause a
//! spurious wake-up, which the handler wrapper filters by reading the object's stored alarm,
//! but never a lost alarm.
//!
//! Delivery is at least once. The object's stored alarm is removed only after its handler
//! succeeded (and that removal is durable before the scheduler forgets the alarm); while the
//! handler runs, `get_alarm()` hides it. A handler that fails (returns `Err`, panics, or runs
//! past the wall-time limit) is retried with exponential backoff (2 s, 4 s, ... with up to
//! 25 % jitter), up to 6 retries, then given up with an error log. A handler that set a new
//! alarm is not retried: the new alarm runs next.

pub(crate) mod delivery;
pub(crate) mod handler;
mod index_writer;
pub(crate) mod scheduler;

pub(crate) use scheduler::AlarmScheduler;

/// One delivery of an alarm to an object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AlarmCall {
    pub(crate) retry_count: u32,
    /// Delete the stored alarm without running the handler (retries exhausted).
    pub(crate) give_up: bool,
}

/// What the object did with a delivered alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AlarmOutcome {
    /// The handler ran and succeeded, or a new alarm superseded this one.
    Done,
    /// Nothing was due: the object's stored alarm is this (a crash left the index ahead).
    Spurious(Option<i64>),
}

/// Details of one run of an object's alarm handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AlarmInfo {
    /// How many earlier runs of this alarm failed.
    pub retry_count: u32,
    /// `retry_count > 0`.
    pub is_retry: bool,
    /// When the alarm was scheduled to fire, in milliseconds since the Unix epoch.
    pub scheduled_time_ms: i64,
}

/// The scheduler's plan for one object's alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScheduledAlarm {
    /// When it will be delivered, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// How many deliveries of it failed so far.
    pub retry_count: u32,
    /// A delivery is under way.
    pub running: bool,
}
