//! [`State`]: what an instance knows about itself (Cloudflare's `ctx`).

use std::fmt;
use std::future::Future;
use std::rc::{Rc, Weak};

use durable_core::{Error, ObjectId, Result};

use crate::instance::Instance;
use crate::storage::Storage;
use crate::turn::{AbortUnwind, SideTask};
use crate::websocket::{WebSocket, WebSocketRequestResponsePair, hibernation};

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

    /// The object's class name (`"?"` once the instance is gone).
    pub(crate) fn class_name(&self) -> &'static str {
        self.instance
            .upgrade()
            .map_or("?", |instance| instance.class_name)
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
        let _open_on_exit = instance.hold_gate()?;
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

    /// Runs `future` on the object's thread beside its handlers, for as long as the instance
    /// lives (an eviction or reset cancels it). What it sends (calls, WebSocket messages)
    /// passes the output gate like a handler's output, and it does not run while a handler
    /// holds the input gate (`block_concurrency_while`); a panic in it resets the object. It
    /// does not keep the instance in memory by itself, and cannot itself call
    /// `block_concurrency_while`. Typical use: reading the events of a standard WebSocket.
    pub fn spawn(&self, future: impl Future<Output = ()> + 'static) -> Result<()> {
        let instance = self.instance()?;
        let task = SideTask {
            instance: Rc::downgrade(&instance),
            future: Box::pin(future),
        };
        instance.add_side_task(tokio::task::spawn_local(task).abort_handle());
        Ok(())
    }

    /// Accepts `ws` as a hibernatable WebSocket with up to 10 `tags` (duplicates ignored,
    /// each at most 256 characters). Its events arrive as calls of the `web_socket_*`
    /// handlers; the socket stays connected when the instance is dropped for being idle, and
    /// the next event builds a new instance (the constructor runs again). A reset closes it.
    /// An object may hold 32,768 such sockets.
    pub fn accept_web_socket(&self, ws: &WebSocket, tags: &[&str]) -> Result<()> {
        hibernation::accept(&*self.instance()?, ws, tags)
    }

    /// The open hibernatable WebSockets of this object, in accept order; only those with
    /// `tag` if given.
    pub fn get_web_sockets(&self, tag: Option<&str>) -> Vec<WebSocket> {
        match self.instance() {
            Ok(instance) => hibernation::sockets(&instance, tag),
            Err(_) => Vec::new(),
        }
    }

    /// The tags `ws` was accepted with. Fails for a socket that is not hibernatable.
    pub fn get_tags(&self, ws: &WebSocket) -> Result<Vec<String>> {
        hibernation::tags(ws)
    }

    /// Sets (or with `None` clears) the message the runtime answers by itself on this
    /// object's hibernatable sockets, without waking the object.
    pub fn set_web_socket_auto_response(
        &self,
        pair: Option<WebSocketRequestResponsePair>,
    ) -> Result<()> {
        hibernation::set_auto_response(&*self.instance()?, pair);
        Ok(())
    }

    /// The auto-response pair in force, if any.
    pub fn get_web_socket_auto_response(&self) -> Option<WebSocketRequestResponsePair> {
        self.instance()
            .ok()
            .and_then(|instance| hibernation::auto_response(&instance))
    }

    /// When `ws` last got the auto-response, in milliseconds since the Unix epoch.
    pub fn get_web_socket_auto_response_timestamp(&self, ws: &WebSocket) -> Option<i64> {
        hibernation::auto_response_timestamp(ws)
    }

    /// Bounds the run time of each hibernatable WebSocket event (at most 7 days);
    /// `None` or 0 removes the bound.
    pub fn set_hibernatable_web_socket_event_timeout(&self, ms: Option<u64>) -> Result<()> {
        hibernation::set_event_timeout(&*self.instance()?, ms)
    }

    /// The event timeout in force, in milliseconds.
    pub fn get_hibernatable_web_socket_event_timeout(&self) -> Option<u64> {
        self.instance()
            .ok()
            .and_then(|instance| hibernation::event_timeout(&instance))
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
