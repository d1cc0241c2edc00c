//! The scheduler's thread: takes the alarms that are due (at most `max_concurrent_alarms`
//! deliveries at once), sends each as an event to its object's shard, and settles the
//! outcome with the timetable's rules, carrying out what they say: index changes, retries,
//! the clean-up delivery of an alarm given up, logs and metrics.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use durable_core::{Error, ErrorKind, Result};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::{AlarmCall, AlarmOutcome};
use crate::core::{Due, RetryPolicy, Settle, SettleAction};
use crate::event::{Event, Payload, Reply};
use crate::shared::RuntimeShared;

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
        if scheduler.stopping() {
            return;
        }
        let now = shared.clock.now_ms();
        let (due, next) = {
            let mut table = scheduler.table();
            let due = table.take_due(now, permits.available_permits());
            (due, table.next_due())
        };
        for due in due {
            let permit = Arc::clone(&permits).try_acquire_owned().ok();
            deliver(&shared, due, false, permit);
        }
        let max_wait = shared.config.alarm_max_wait;
        let wait = next.map_or(max_wait, |time| {
            Duration::from_millis(u64::try_from(time - shared.clock.now_ms()).unwrap_or(0))
                .min(max_wait)
        });
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = scheduler.woken() => {}
        }
    }
}

/// Sends `due` to its object; the outcome is settled when it arrives.
fn deliver(
    shared: &Arc<RuntimeShared>,
    due: Due,
    clean_up: bool,
    permit: Option<OwnedSemaphorePermit>,
) {
    let (tx, rx) = oneshot::channel();
    shared.send_or_fail(Event {
        key: due.key,
        id: due.id.clone(),
        payload: Payload::Alarm(AlarmCall {
            retry_count: due.retry,
            give_up: clean_up,
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
        settle(&shared, &due, clean_up, outcome);
        drop(permit);
        shared.alarms.wake();
    });
}

/// Acts on what the object did with an alarm.
fn settle(shared: &Arc<RuntimeShared>, due: &Due, clean_up: bool, outcome: Result<AlarmOutcome>) {
    let metrics = &shared.metrics;
    let settle = match &outcome {
        // A successful handler run was counted by the handler's event itself.
        Ok(AlarmOutcome::Done) => Settle::Done,
        Ok(AlarmOutcome::Spurious(time)) => Settle::Spurious(*time),
        Err(error) => {
            metrics.alarms_failed.fetch_add(1, Ordering::Relaxed);
            Settle::Failed {
                permanent: error.kind() == ErrorKind::NotImplemented,
            }
        }
    };
    let config = &shared.config;
    let policy = RetryPolicy {
        base: config.alarm_retry_base,
        jitter: config.alarm_retry_jitter,
        max_retries: config.alarm_max_retries,
    };
    let random = (RandomState::new().hash_one(due.generation) % 10_000) as f64 / 10_000.0;
    let now = shared.clock.now_ms();
    let action = shared
        .alarms
        .table()
        .settle(due, clean_up, settle, now, random, &policy);
    let error = outcome.err();
    let (namespace, object_id) = (due.class, &due.id);
    match action {
        SettleAction::Unknown
        | SettleAction::Superseded
        | SettleAction::Recheck { .. }
        | SettleAction::Rescheduled { .. } => {}
        SettleAction::Removed(change) => shared.alarms.push(change),
        SettleAction::Retry { retry, delay, .. } => {
            tracing::warn!(
                namespace,
                object_id = %object_id,
                retry,
                delay_ms = delay.as_millis() as u64,
                error = %error.map(|e| e.to_string()).unwrap_or_default(),
                "alarm handler failed; retrying"
            );
        }
        SettleAction::GiveUp(clean_up_delivery) => {
            tracing::error!(
                namespace,
                object_id = %object_id,
                retries = clean_up_delivery.retry,
                error = %error.map(|e| e.to_string()).unwrap_or_default(),
                "alarm handler failed on every retry; giving up on this alarm"
            );
            deliver(shared, clean_up_delivery, true, None);
        }
        SettleAction::Dropped => {
            tracing::error!(
                namespace,
                object_id = %object_id,
                error = %error.map(|e| e.to_string()).unwrap_or_default(),
                "deleting an alarm that was given up failed; it stays in the index until the next start"
            );
        }
    }
    shared.alarms.wake();
}
