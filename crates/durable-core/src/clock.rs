//! Wall-clock time, behind a trait so tests control it.
//!
//! Everything that needs "now" as epoch milliseconds (alarms, timestamps) asks a [`Clock`].
//! The system clock lives in the runtime crate, because this crate reads no clock;
//! [`ManualClock`] is the one tests use. Monotonic durations (idle timers, timeouts) use the
//! async runtime's timers instead, which is why the trait only speaks of the wall clock.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// Told when a clock jumps; returns `false` once its listener is gone (it is then dropped).
pub type ClockListener = Box<dyn Fn() -> bool + Send + Sync>;

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Now, in milliseconds since 1970-01-01T00:00:00Z.
    fn now_ms(&self) -> i64;

    /// Asks to be told whenever the clock jumps (is set or advanced by hand), so that whoever
    /// sleeps until a time on it (the alarm scheduler) looks again at once. A clock that only
    /// moves with real time, like the system clock, never calls `listener`.
    fn subscribe(&self, listener: ClockListener) {
        drop(listener);
    }
}

/// A clock that moves only when told to. Every move tells the clock's listeners (a runtime
/// built on it wakes its alarm scheduler at once).
///
/// ```
/// use durable_objects::{Clock, ManualClock};
///
/// let clock = ManualClock::new(1_000);
/// clock.advance_ms(500);
/// assert_eq!(clock.now_ms(), 1_500);
/// ```
#[derive(Default)]
pub struct ManualClock {
    now_ms: AtomicI64,
    listeners: Mutex<Vec<ClockListener>>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now_ms", &self.now_ms())
            .finish_non_exhaustive()
    }
}

impl ManualClock {
    /// A clock showing `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        Self {
            now_ms: AtomicI64::new(now_ms),
            listeners: Mutex::default(),
        }
    }

    /// Moves the clock forward by `delta_ms`.
    pub fn advance_ms(&self, delta_ms: i64) {
        self.now_ms.fetch_add(delta_ms, Ordering::SeqCst);
        self.tell_listeners();
    }

    /// Sets the clock to `now_ms`.
    pub fn set_ms(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
        self.tell_listeners();
    }

    fn tell_listeners(&self) {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|listener| listener());
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn subscribe(&self, listener: ClockListener) {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(listener);
    }
}
