//! [`AlarmScheduler`]: the node's pending alarms ([`AlarmTimetable`] under a lock) and the
//! persistent index beside them, kept in step.
//!
//! The commit pipeline calls it around each commit that changes an alarm (the index must
//! hold a new earlier time before the commit; the schedule follows once the commit is
//! durable); the delivery thread ([`super::delivery`]) takes what is due and settles the
//! outcomes. It knows nothing of shards or instances.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use durable_core::ObjectId;
use durable_storage::{AlarmEntry, AlarmIndex, AlarmIndexError, IndexChange};
use tokio::sync::{Notify, oneshot};

use super::ScheduledAlarm;
use super::index_writer::{IndexWriter, start_index_writer};
use crate::core::{AlarmTimetable, ObjectKey};

/// The node's alarm scheduler state.
#[derive(Debug)]
pub(crate) struct AlarmScheduler {
    index: Arc<AlarmIndex>,
    writer: IndexWriter,
    table: Mutex<AlarmTimetable>,
    wake: Notify,
    stop: AtomicBool,
}

impl AlarmScheduler {
    pub(crate) fn new(index: AlarmIndex) -> std::io::Result<Self> {
        let index = Arc::new(index);
        Ok(Self {
            writer: start_index_writer(Arc::clone(&index))?,
            index,
            table: Mutex::new(AlarmTimetable::default()),
            wake: Notify::new(),
            stop: AtomicBool::new(false),
        })
    }

    /// The timetable, locked.
    pub(crate) fn table(&self) -> MutexGuard<'_, AlarmTimetable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pending alarms known to the scheduler.
    pub(crate) fn len(&self) -> usize {
        self.table().len()
    }

    /// When the scheduler will next deliver the alarm of `key`, and as which retry.
    pub(crate) fn scheduled(&self, key: &ObjectKey) -> Option<ScheduledAlarm> {
        self.table().plan(key).map(|plan| ScheduledAlarm {
            time_ms: plan.time_ms,
            retry_count: plan.retry,
            running: plan.running,
        })
    }

    /// Every entry of the persistent index (at start-up).
    pub(crate) fn index_entries(&self) -> Result<Vec<AlarmEntry>, AlarmIndexError> {
        self.index.load()
    }

    /// Schedules an entry read from the index.
    pub(crate) fn load(&self, key: ObjectKey, id: ObjectId, class: &'static str, time: i64) {
        self.table().load(key, id, class, time);
    }

    /// Queues `change` for the index without waiting for it.
    pub(crate) fn push(&self, change: IndexChange) {
        self.writer.push(change, None);
    }

    /// True if the index must learn of `time` before an object commits it as its alarm.
    pub(crate) fn needs_index(&self, key: &ObjectKey, time: i64) -> bool {
        self.table().needs_index(key, time)
    }

    /// Writes `time` for the object to the index; the receiver hears when it is durable.
    pub(crate) fn index_now(
        &self,
        id: &ObjectId,
        class: &'static str,
        time: i64,
    ) -> oneshot::Receiver<Result<(), AlarmIndexError>> {
        let (tx, rx) = oneshot::channel();
        self.writer.push(
            IndexChange::Upsert(class.to_owned(), id.to_string(), time),
            Some(tx),
        );
        rx
    }

    /// Records that the index durably holds `time` for the object.
    pub(crate) fn mark_indexed(
        &self,
        key: ObjectKey,
        id: &ObjectId,
        class: &'static str,
        time: i64,
    ) {
        self.table().indexed(key, id, class, time);
        self.wake.notify_one();
    }

    /// [`index_now`](Self::index_now) and [`mark_indexed`](Self::mark_indexed), blocking
    /// this thread until the index is durable (for commits that cannot wait asynchronously).
    pub(crate) fn before_commit(
        &self,
        key: ObjectKey,
        id: &ObjectId,
        class: &'static str,
        time: i64,
    ) -> Result<(), AlarmIndexError> {
        if !self.needs_index(&key, time) {
            return Ok(());
        }
        self.index
            .apply(&[IndexChange::Upsert(class.to_owned(), id.to_string(), time)])?;
        self.mark_indexed(key, id, class, time);
        Ok(())
    }

    /// After an object's commit with stored alarm `time` is durable: schedules it (or
    /// forgets the object's alarm) and brings the index up to date.
    pub(crate) fn after_durable(
        &self,
        key: ObjectKey,
        id: &ObjectId,
        class: &'static str,
        time: Option<i64>,
    ) {
        let change = self.table().durable(key, id, class, time);
        if let Some(change) = change {
            self.writer.push(change, None);
        }
        self.wake.notify_one();
    }

    /// True when no delivery is under way and none is due at `now`: every alarm due by
    /// then has run (or is waiting for a retry later than `now`).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn settled_at(&self, now: i64) -> bool {
        let table = self.table();
        table.in_flight() == 0 && table.next_due().is_none_or(|due| due > now)
    }

    /// The earliest time a delivery is due, if any is waiting.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn next_due(&self) -> Option<i64> {
        self.table().next_due()
    }

    /// Wakes the delivery thread (something changed).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits until woken.
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// True once [`stop`](Self::stop) was called.
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Asks the delivery thread to stop.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Stops the index writer after it has written what it holds.
    pub(crate) fn stop_writer(&self) {
        self.writer.stop();
    }
}
