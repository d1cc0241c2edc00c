//! [`State`]: what an instance knows about itself (Cloudflare's `ctx`).

use std::fmt;
use std::future::Future;
use std::rc::{Rc, Weak};

use durable_core::{Error, ErrorKind, ObjectId, Result, limits};

use crate::directory::Instance;
use crate::storage::Storage;
use crate::turn::AbortUnwind;

/// The instance's handle on the runtime: its id, the input gate, and `abort()`.
///
/// Given to the constructor; keep it in the object. Cloning is cheap. It is not `Send`: it
/// belongs to the instance's shard thread.
#[derive(Clone)]
pub struct State {
    instance: Weak<Instance>,
    id: ObjectId,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State").field("id", &self.id).finish()
    }
}

impl State {
    pub(crate) fn new(instance: Weak<Instance>, id: ObjectId) -> Self {
        Self { instance, id }
    }

    /// The object's id. [`ObjectId::name`] is set when the instance was created by a call
    /// addressed by name.
    pub fn id(&self) -> &ObjectId {
        &self.id
    }

    /// The object's storage: SQL, KV, transactions. The database opens on first use.
    pub fn storage(&self) -> Storage {
        Storage::new(Weak::clone(&self.instance))
    }

    fn instance(&self) -> Result<Rc<Instance>> {
        self.instance.upgrade().ok_or_else(|| {
            Error::reset("this instance was reset or evicted; its state handle no longer works")
        })
    }

    /// Runs `future` while no other event is delivered to the object (the input gate): other
    /// calls wait, and calls already in progress do not resume until it finishes. Returns the
    /// future's result.
    ///
    /// Calls may nest up to 64 deep. If `future` fails, or runs longer than the runtime's
    /// `block_concurrency_timeout` (30 s by default), the object is reset: this call and every
    /// other call in progress on it fail, and the next call gets a fresh instance.
    ///
    /// It must be awaited inside a handler (a method, `fetch`, ...), not from a task spawned
    /// on the side, because the gate is held for the event that awaits it.
    ///
    /// ```no_run
    /// # use durable_objects::prelude::*;
    /// # #[durable_object] pub struct Room { state: State }
    /// # impl DurableObject for Room { fn new(state: State, _: Env) -> Self { Room { state } } }
    /// # impl Room {
    /// async fn load(&self) -> Result<u64> {
    ///     self.state
    ///         .block_concurrency_while(async {
    ///             // Nothing else runs on this object until this block finishes.
    ///             Ok(42)
    ///         })
    ///         .await
    /// }
    /// # }
    /// ```
    pub async fn block_concurrency_while<F, T>(&self, future: F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let instance = self.instance()?;
        let _open_on_exit = hold_gate(&instance)?;
        let timeout = instance.shared.config.block_concurrency_timeout;
        match tokio::time::timeout(timeout, future).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                let reason = Error::reset(format!(
                    "block_concurrency_while failed: {error}; the object was reset"
                ))
                .into_remote();
                instance.reset(reason.clone());
                Err(reason)
            }
            Err(_) => {
                let reason = Error::reset(format!(
                    "a call to block_concurrency_while waited for more than {} ms; it was canceled and the object was reset",
                    timeout.as_millis()
                ))
                .into_remote();
                instance.reset(reason.clone());
                Err(reason)
            }
        }
    }

    /// Resets the object now: the running handler stops (this function does not return),
    /// every call in progress fails with an error that starts with `reason` and says the
    /// object was reset, and the next call gets a fresh instance.
    /// Stored data is kept.
    ///
    /// Callers see an error for which [`Error::is_reset`] is true.
    pub fn abort(&self, reason: Option<&str>) -> ! {
        let message = format!(
            "{}; the object was reset and its next call gets a fresh instance",
            reason.unwrap_or("application called abort() to reset the durable object")
        );
        if let Ok(instance) = self.instance() {
            instance.reset(Error::reset(message).into_remote());
        }
        // resume_unwind skips the panic hook: an abort is intended, not a crash to report.
        std::panic::resume_unwind(Box::new(AbortUnwind))
    }
}

/// Closes the input gate for the event whose turn is running, until the guard drops.
pub(crate) fn hold_gate(instance: &Rc<Instance>) -> Result<GateGuard> {
    let Some(event) = instance.current_event.get() else {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "block_concurrency_while and transaction must be awaited by a handler of this object, not by a spawned task or the constructor",
        ));
    };
    if instance.gate.depth() >= limits::MAX_BLOCK_CONCURRENCY_DEPTH {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "block_concurrency_while calls are nested too deeply: the limit is {}",
                limits::MAX_BLOCK_CONCURRENCY_DEPTH
            ),
        ));
    }
    instance.gate.close(event);
    Ok(GateGuard {
        instance: Rc::clone(instance),
    })
}

/// Opens one level of the gate when `block_concurrency_while` ends, however it ends.
pub(crate) struct GateGuard {
    instance: Rc<Instance>,
}

impl Drop for GateGuard {
    fn drop(&mut self) {
        if self.instance.gate.open_one_level() {
            self.instance.order.wake_next();
        }
    }
}
