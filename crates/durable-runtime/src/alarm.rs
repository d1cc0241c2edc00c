//! Alarms: the node-level `AlarmScheduler` and the wrapper that runs an object's handler.
//!
//! The scheduler keeps every pending alarm of the node in memory (a time-ordered set) and in
//! the persistent [`AlarmIndex`], so start-up knows what is due without opening any object.
//! The index may be ahead of the objects, never behind: an entry is written and fsynced
//! *before* the object commits an alarm at that time or earlier, and moved later or removed
//! only *after* the object's commit is durable. A crash can therefore cause a spurious
//! wake-up, which the wrapper filters by reading the object's stored alarm, but never a lost
//! alarm.
//!
//! Delivery is at least once. The object's stored alarm is removed only after its handler
//! succeeded (and that removal is durable before the scheduler forgets the alarm); while the
//! handler runs, `get_alarm()` hides it. A handler that fails (returns `Err`, panics, or runs
//! past the wall-time limit) is retried with exponential backoff (2 s, 4 s, ... with up to
//! 25 % jitter), up to 6 retries, then given up with an error log. A handler that set a new
//! alarm is not retried: the new alarm runs next.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use durable_core::{Error, ErrorKind, ObjectId, Result};
use durable_storage::{AlarmIndex, IndexChange};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};

use crate::LocalBoxFuture;
use crate::directory::Instance;
use crate::object::{AlarmInfo, AnyObject, Outcome, Payload};
use crate::runtime::RuntimeShared;
use crate::shard::{Event, ObjectKey, Reply};
use crate::storage::Storage;

/// One delivery of an alarm to an object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AlarmCall {
    pub(crate) retry_count: u32,
    /// Delete the stored alarm without running the handler (retries exhausted).
    pub(crate) give_up: bool,
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

/// What the object did with a delivered alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AlarmOutcome {
    /// The handler ran and succeeded, or a new alarm superseded this one.
    Done,
    /// Nothing was due: the object's stored alarm is this (a crash left the index ahead).
    Spurious(Option<i64>),
}

/// The retry delay before retry number `retry` (1-based): `base * 2^(retry-1)`, plus up to
/// `jitter` of itself.
pub(crate) fn retry_delay(base: Duration, retry: u32, jitter: f64, random: f64) -> Duration {
    let exponential = base.saturating_mul(1u32 << (retry.saturating_sub(1)).min(20));
    exponential.mul_f64(1.0 + jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0))
}

#[derive(Debug)]
struct Pending {
    id: ObjectId,
    class: &'static str,
    time: i64,
    retry: u32,
    /// Bumped on every change, so a late delivery outcome does not undo a newer schedule.
    generation: u64,
    in_flight: bool,
    /// The time the index holds for the object.
    indexed: Option<i64>,
}

impl Pending {
    /// A fresh schedule: no retry yet, nothing in flight.
    fn new(id: ObjectId, class: &'static str, time: i64, indexed: Option<i64>) -> Self {
        Self {
            id,
            class,
            time,
            retry: 0,
            generation: 0,
            in_flight: false,
            indexed,
        }
    }
}

#[derive(Debug, Default)]
struct Timetable {
    due: BTreeSet<(i64, ObjectKey)>,
    pending: HashMap<ObjectKey, Pending>,
    generations: u64,
}

impl Timetable {
    fn set(&mut self, key: ObjectKey, mut entry: Pending) {
        self.generations += 1;
        entry.generation = self.generations;
        if let Some(old) = self.pending.remove(&key) {
            self.due.remove(&(old.time, key));
            entry.in_flight = old.in_flight;
        }
        if !entry.in_flight {
            self.due.insert((entry.time, key));
        }
        self.pending.insert(key, entry);
    }

    fn remove(&mut self, key: &ObjectKey) -> Option<Pending> {
        let old = self.pending.remove(key)?;
        self.due.remove(&(old.time, *key));
        Some(old)
    }
}

type IndexAck = oneshot::Sender<std::result::Result<(), String>>;

#[derive(Debug, Default)]
struct IndexQueue {
    changes: Vec<(IndexChange, Option<IndexAck>)>,
    stop: bool,
}

/// The thread that writes the alarm index: it takes every change waiting and applies them in
/// one transaction, so one fsync serves many objects' alarms.
#[derive(Debug)]
struct IndexWriter {
    queue: Arc<(Mutex<IndexQueue>, Condvar)>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl IndexWriter {
    fn start(index: Arc<AlarmIndex>) -> std::io::Result<Self> {
        let queue: Arc<(Mutex<IndexQueue>, Condvar)> = Arc::default();
        let worker = Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name("durable-alarm-index".to_owned())
            .spawn(move || {
                let (lock, ready) = &*worker;
                loop {
                    let batch = {
                        let mut queue = lock.lock().unwrap_or_else(|e| e.into_inner());
                        while queue.changes.is_empty() && !queue.stop {
                            queue = ready.wait(queue).unwrap_or_else(|e| e.into_inner());
                        }
                        if queue.changes.is_empty() {
                            return;
                        }
                        std::mem::take(&mut queue.changes)
                    };
                    let changes: Vec<IndexChange> =
                        batch.iter().map(|(change, _)| change.clone()).collect();
                    let result = index.apply(&changes);
                    if let Err(err) = &result {
                        tracing::error!(error = %err, changes = changes.len(), "alarm index write failed");
                    }
                    for (_, ack) in batch {
                        if let Some(ack) = ack {
                            let _ = ack.send(result.clone());
                        }
                    }
                }
            })?;
        Ok(Self {
            queue,
            thread: Mutex::new(Some(thread)),
        })
    }

    fn push(&self, change: IndexChange, ack: Option<IndexAck>) {
        let (lock, ready) = &*self.queue;
        lock.lock()
            .unwrap_or_else(|e| e.into_inner())
            .changes
            .push((change, ack));
        ready.notify_one();
    }

    fn stop(&self) {
        let (lock, ready) = &*self.queue;
        lock.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        ready.notify_one();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("the alarm index writer panicked");
        }
    }
}

/// The node's alarm scheduler.
#[derive(Debug)]
pub(crate) struct AlarmScheduler {
    index: Arc<AlarmIndex>,
    writer: IndexWriter,
    table: Mutex<Timetable>,
    wake: Notify,
    stop: AtomicBool,
}

impl AlarmScheduler {
    pub(crate) fn new(index: AlarmIndex) -> std::io::Result<Self> {
        let index = Arc::new(index);
        Ok(Self {
            writer: IndexWriter::start(Arc::clone(&index))?,
            index,
            table: Mutex::new(Timetable::default()),
            wake: Notify::new(),
            stop: AtomicBool::new(false),
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Timetable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pending alarms known to the scheduler.
    pub(crate) fn len(&self) -> usize {
        self.table().pending.len()
    }

    /// When the scheduler will next deliver the alarm of `key`, and as which retry.
    pub(crate) fn scheduled(&self, key: &ObjectKey) -> Option<ScheduledAlarm> {
        let table = self.table();
        let pending = table.pending.get(key)?;
        Some(ScheduledAlarm {
            time_ms: pending.time,
            retry_count: pending.retry,
            running: pending.in_flight,
        })
    }

    /// Loads the index at start-up.
    pub(crate) fn load(&self, shared: &RuntimeShared) -> std::result::Result<usize, String> {
        let entries = self.index.load()?;
        let mut table = self.table();
        for (class, id_hex, time) in entries {
            let Some(ns) = shared
                .namespaces
                .iter()
                .find(|ns| ns.class.class_name == class)
            else {
                tracing::warn!(%class, object_id = %id_hex, "alarm of a class that is not bound; kept in the index");
                continue;
            };
            let Ok(id) = ns.key.id_from_string(&id_hex) else {
                tracing::warn!(%class, object_id = %id_hex, "alarm index entry with an invalid id; removed");
                self.writer.push(IndexChange::Remove(class, id_hex), None);
                continue;
            };
            let key = ObjectKey::new(ns.index, &id);
            table.set(key, Pending::new(id, ns.class.class_name, time, Some(time)));
        }
        Ok(table.pending.len())
    }

    /// True if the index must learn of `time` before an object commits it as its alarm
    /// (the index holds no time for the object, or a later one).
    pub(crate) fn needs_index(&self, key: &ObjectKey, time: i64) -> bool {
        self.table()
            .pending
            .get(key)
            .and_then(|p| p.indexed)
            .is_none_or(|at| at > time)
    }

    /// Writes `time` for the object to the index; the receiver hears when it is durable.
    pub(crate) fn index_now(
        &self,
        id: &ObjectId,
        class: &'static str,
        time: i64,
    ) -> oneshot::Receiver<std::result::Result<(), String>> {
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
        let mut table = self.table();
        table.generations += 1;
        let generation = table.generations;
        match table.pending.get_mut(&key) {
            Some(pending) => {
                pending.indexed = Some(pending.indexed.map_or(time, |at| at.min(time)));
                // A delivery in flight must not undo this.
                pending.generation = generation;
            }
            None => table.set(key, Pending::new(id.clone(), class, time, Some(time))),
        }
        drop(table);
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
    ) -> std::result::Result<(), String> {
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
        let id_hex = id.to_string();
        match time {
            Some(time) => {
                {
                    // The alarm the scheduler already has (this commit only made it durable):
                    // keep its delivery state, retries included.
                    let mut table = self.table();
                    if let Some(pending) = table.pending.get_mut(&key)
                        && pending.time == time
                        && pending.indexed == Some(time)
                    {
                        return;
                    }
                }
                let indexed = self.table().pending.get(&key).and_then(|p| p.indexed);
                // Moving the entry later may lag: an earlier entry only means a spurious
                // wake-up. So it goes through the writer without waiting.
                let indexed = if indexed == Some(time) {
                    indexed
                } else {
                    self.writer
                        .push(IndexChange::Upsert(class.to_owned(), id_hex, time), None);
                    Some(time)
                };
                self.table()
                    .set(key, Pending::new(id.clone(), class, time, indexed));
            }
            None => {
                if self.table().remove(&key).is_some() {
                    self.writer
                        .push(IndexChange::Remove(class.to_owned(), id_hex), None);
                }
            }
        }
        self.wake.notify_one();
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Stops the index writer after it has written what it holds.
    pub(crate) fn stop_writer(&self) {
        self.writer.stop();
    }
}

/// Starts the scheduler's thread.
pub(crate) fn spawn(shared: Arc<RuntimeShared>) -> std::io::Result<JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("durable-alarms".to_owned())
        .spawn(move || {
            runtime.block_on(run(shared));
        })
}

async fn run(shared: Arc<RuntimeShared>) {
    let scheduler = &shared.alarms;
    // Deliveries under way at once are bounded: a burst of due alarms must not open every
    // object's database at the same moment.
    let permits = Arc::new(Semaphore::new(shared.config.max_concurrent_alarms.max(1)));
    loop {
        if scheduler.stop.load(Ordering::SeqCst) {
            return;
        }
        let now = shared.clock.now_ms();
        let mut fire = Vec::new();
        let next = {
            let mut table = scheduler.table();
            while let Some(&(time, key)) = table.due.first() {
                if time > now {
                    break;
                }
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    break;
                };
                table.due.pop_first();
                if let Some(pending) = table.pending.get_mut(&key) {
                    pending.in_flight = true;
                    fire.push((
                        key,
                        pending.id.clone(),
                        pending.retry,
                        pending.generation,
                        permit,
                    ));
                }
            }
            table.due.first().map(|(time, _)| *time)
        };
        for (key, id, retry, generation, permit) in fire {
            deliver(&shared, key, id, retry, generation, false, Some(permit));
        }
        let max_wait = shared.config.alarm_max_wait;
        let wait = next.map_or(max_wait, |time| {
            Duration::from_millis(u64::try_from(time - shared.clock.now_ms()).unwrap_or(0))
                .min(max_wait)
        });
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = scheduler.wake.notified() => {}
        }
    }
}

fn deliver(
    shared: &Arc<RuntimeShared>,
    key: ObjectKey,
    id: ObjectId,
    retry_count: u32,
    generation: u64,
    give_up: bool,
    permit: Option<OwnedSemaphorePermit>,
) {
    let (tx, rx) = oneshot::channel();
    shared.send_or_fail(Event {
        key,
        id,
        payload: Payload::Alarm(AlarmCall {
            retry_count,
            give_up,
        }),
        reply: Reply::Alarm(tx),
    });
    let shared = Arc::clone(shared);
    // The handler's own limit, plus room for queueing and the commit: a delivery whose
    // outcome never arrives must not hold its permit (and its object's alarm) forever.
    let patience = shared.config.alarm_timeout + Duration::from_secs(60);
    tokio::spawn(async move {
        let outcome = match tokio::time::timeout(patience, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(Error::disconnected(
                "the object's shard stopped during its alarm",
            )),
            Err(_) => Err(Error::new(
                ErrorKind::Internal,
                "no outcome of the alarm delivery arrived in time",
            )),
        };
        settle(&shared, key, generation, give_up, outcome);
        drop(permit);
        shared.alarms.wake.notify_one();
    });
}

/// Acts on what the object did with an alarm.
fn settle(
    shared: &Arc<RuntimeShared>,
    key: ObjectKey,
    generation: u64,
    gave_up: bool,
    outcome: Result<AlarmOutcome>,
) {
    let scheduler = &shared.alarms;
    let config = &shared.config;
    let mut table = scheduler.table();
    let Some(pending) = table.pending.get_mut(&key) else {
        return;
    };
    if pending.generation != generation {
        // Rescheduled meanwhile (the handler set a new alarm): the new schedule stands.
        pending.in_flight = false;
        let (time, key) = (pending.time, key);
        table.due.insert((time, key));
        drop(table);
        scheduler.wake.notify_one();
        return;
    }
    pending.in_flight = false;
    let counter = match &outcome {
        Ok(AlarmOutcome::Done) => Some(&shared.metrics.alarms_run),
        Err(_) => Some(&shared.metrics.alarms_failed),
        Ok(AlarmOutcome::Spurious(_)) => None,
    };
    if let Some(counter) = counter {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    match outcome {
        Ok(AlarmOutcome::Done) => {
            // The object removed (or replaced) its stored alarm; `after_durable` brings the
            // schedule and the index up to date once that write is on disk. Should that never
            // come (the write failed), look again a second later: delivery stays at least once.
            pending.retry = 0;
            pending.time = shared.clock.now_ms() + 1_000;
            let entry = (pending.time, key);
            table.due.insert(entry);
        }
        Ok(AlarmOutcome::Spurious(Some(time))) => {
            pending.time = time;
            pending.retry = 0;
            table.due.insert((time, key));
        }
        Ok(AlarmOutcome::Spurious(None)) => {
            let class = pending.class;
            let id = pending.id.to_string();
            table.remove(&key);
            drop(table);
            scheduler
                .writer
                .push(IndexChange::Remove(class.to_owned(), id), None);
        }
        Err(error) => {
            let class = pending.class;
            let id = pending.id.clone();
            let give_up = gave_up
                || pending.retry >= config.alarm_max_retries
                || error.kind() == ErrorKind::NotImplemented;
            if give_up {
                if gave_up {
                    // Even the clean-up delivery failed; keep the entry for the next start.
                    table.remove(&key);
                    return;
                }
                tracing::error!(
                    namespace = class,
                    object_id = %id,
                    retries = pending.retry,
                    error = %error,
                    "alarm handler failed on every retry; giving up on this alarm"
                );
                let generation = pending.generation;
                let retry = pending.retry;
                drop(table);
                deliver(shared, key, id, retry, generation, true, None);
                return;
            }
            pending.retry += 1;
            let random = (RandomState::new().hash_one(generation) % 10_000) as f64 / 10_000.0;
            let delay = retry_delay(
                config.alarm_retry_base,
                pending.retry,
                config.alarm_retry_jitter,
                random,
            );
            pending.time =
                shared.clock.now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
            tracing::warn!(
                namespace = class,
                object_id = %id,
                retry = pending.retry,
                delay_ms = delay.as_millis() as u64,
                error = %error,
                "alarm handler failed; retrying"
            );
            let entry = (pending.time, key);
            table.due.insert(entry);
        }
    }
    scheduler.wake.notify_one();
}

/// The event future of an alarm delivery: checks that the object's stored alarm is due,
/// runs the handler within the wall-time limit, and removes the stored alarm if the handler
/// succeeded and did not replace it.
pub(crate) fn run_alarm(
    instance: Rc<Instance>,
    object: Rc<dyn AnyObject>,
    call: AlarmCall,
) -> LocalBoxFuture<Outcome> {
    Box::pin(async move {
        let outcome = async {
            let storage = Storage::new(Rc::downgrade(&instance));
            let now = instance.shared.clock.now_ms();
            let Some(time) = storage.stored_alarm()? else {
                return Ok(AlarmOutcome::Spurious(None));
            };
            if time > now {
                return Ok(AlarmOutcome::Spurious(Some(time)));
            }
            if call.give_up {
                storage.write_alarm(None)?;
                return Ok(AlarmOutcome::Done);
            }
            instance.alarm_running.set(Some(time));
            let info = AlarmInfo {
                retry_count: call.retry_count,
                is_retry: call.retry_count > 0,
                scheduled_time_ms: time,
            };
            let limit = instance.shared.config.alarm_timeout;
            let result = match tokio::time::timeout(limit, object.alarm(info)).await {
                Ok(result) => result,
                Err(_) => Err(Error::new(
                    ErrorKind::Overloaded,
                    format!(
                        "the alarm handler ran longer than its {} s wall-time limit",
                        limit.as_secs_f64()
                    ),
                )),
            };
            instance.alarm_running.set(None);
            let replaced = storage.stored_alarm()? != Some(time);
            match result {
                Ok(()) => {
                    if !replaced {
                        storage.write_alarm(None)?;
                    }
                    Ok(AlarmOutcome::Done)
                }
                // A handler that set (or deleted) the alarm is not retried.
                Err(_) if replaced => Ok(AlarmOutcome::Done),
                Err(error) => Err(error.into_remote()),
            }
        }
        .await;
        Outcome::Alarm(outcome)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_from_the_base_with_bounded_jitter() {
        let base = Duration::from_secs(2);
        let exact: Vec<u64> = (1..=6)
            .map(|retry| retry_delay(base, retry, 0.25, 0.0).as_secs())
            .collect();
        assert_eq!(exact, [2, 4, 8, 16, 32, 64]);
        assert_eq!(
            retry_delay(base, 1, 0.25, 1.0),
            Duration::from_millis(2_500)
        );
        assert_eq!(
            retry_delay(base, 3, 0.25, 0.5),
            Duration::from_millis(9_000)
        );
    }
}
