//! The event that runs an object's alarm handler: checks that the object's stored alarm is
//! due, runs the handler within the wall-time limit, and removes the stored alarm if the
//! handler succeeded and did not replace it. A successful run is counted here.

use std::rc::Rc;

use durable_core::{Error, ErrorKind};

use super::{AlarmCall, AlarmInfo, AlarmOutcome};
use crate::LocalBoxFuture;
use crate::event::AnyObject;
use crate::event::Outcome;
use crate::instance::Instance;
use crate::storage::Storage;

/// The event future of one alarm delivery.
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
            // Counted here, as the handler returns (in the same poll as its last write), so
            // whoever sees the handler's effect also sees it counted. Failures are counted
            // when the delivery settles, since a panic never gets here.
            if result.is_ok() {
                instance
                    .shared
                    .metrics
                    .alarms_run
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
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
