//! The hibernatable sockets of each object ([`Hub`]) and of the runtime ([`Hubs`]): kept by
//! the runtime, not the instance, so sockets stay connected, with their tags and
//! attachments, while the object is evicted; a message wakes the object through the shard
//! router. A hub is its sockets' [`SocketOwner`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use durable_core::{Clock, Error, ErrorKind, ObjectId, Result, limits};

use super::socket::{SocketOwner, SocketShared, WebSocketEvent};
use crate::core::ObjectKey;
use crate::event::{Event, Payload, Reply, SocketDelivery};
use crate::shard::ShardRouter;

/// The request/response pair the runtime answers by itself on hibernatable sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketRequestResponsePair {
    pub(crate) request: String,
    pub(crate) response: String,
}

impl WebSocketRequestResponsePair {
    /// A pair; each side at most 2,048 bytes.
    pub fn new(request: impl Into<String>, response: impl Into<String>) -> Result<Self> {
        let (request, response) = (request.into(), response.into());
        for (side, text) in [("request", &request), ("response", &response)] {
            if text.len() > limits::MAX_WEB_SOCKET_AUTO_RESPONSE_BYTES {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "the auto-response {side} cannot be larger than {} bytes; it is {} bytes",
                        limits::MAX_WEB_SOCKET_AUTO_RESPONSE_BYTES,
                        text.len()
                    ),
                ));
            }
        }
        Ok(Self { request, response })
    }

    /// The message that triggers the response.
    pub fn request(&self) -> &str {
        &self.request
    }

    /// The answer.
    pub fn response(&self) -> &str {
        &self.response
    }
}

#[derive(Default)]
pub(crate) struct HubInner {
    /// In accept order.
    pub(crate) sockets: BTreeMap<u64, Arc<SocketShared>>,
    pub(crate) auto_response: Option<WebSocketRequestResponsePair>,
    pub(crate) event_timeout_ms: Option<u64>,
}

/// The hibernatable sockets of one object, and their settings; outlives instances.
///
/// It leaves the runtime's map when it has no sockets and no instance: at the instance's
/// eviction if the sockets are gone by then, or when the last socket closes while the object
/// hibernates. `instance_live` changes only under the map's lock, so a hub is never dropped
/// between an activation and the constructor's use of it.
pub(crate) struct Hub {
    pub(crate) key: ObjectKey,
    pub(crate) id: ObjectId,
    /// The runtime's hubs: how events reach shards, the clock, and the map to leave.
    pub(crate) hubs: Weak<Hubs>,
    pub(crate) inner: Mutex<HubInner>,
    pub(crate) instance_live: AtomicBool,
}

impl Hub {
    pub(crate) fn inner(&self) -> MutexGuard<'_, HubInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn socket_count(&self) -> usize {
        self.inner().sockets.len()
    }

    pub(crate) fn event_timeout_ms(&self) -> Option<u64> {
        self.inner().event_timeout_ms
    }

    /// Closes every socket (a reset), with no events to the object.
    pub(crate) fn close_all(&self, code: u16, reason: &str) {
        let sockets = std::mem::take(&mut self.inner().sockets);
        for socket in sockets.values() {
            socket.close_now(code, reason);
        }
    }
}

impl SocketOwner for Hub {
    /// Sends an event to the object, waking it if needed.
    fn dispatch(&self, socket: &Arc<SocketShared>, event: WebSocketEvent) {
        let Some(hubs) = self.hubs.upgrade() else {
            return;
        };
        hubs.router.send_or_fail(Event {
            key: self.key,
            id: self.id.clone(),
            payload: Payload::WebSocket(SocketDelivery {
                socket: Arc::clone(socket),
                event,
            }),
            reply: Reply::Socket(Arc::clone(socket)),
        });
    }

    /// Forgets a closed socket; the hub leaves the map if nothing needs it any more.
    fn forget(&self, socket: u64) {
        self.inner().sockets.remove(&socket);
        if let Some(hubs) = self.hubs.upgrade() {
            hubs.drop_if_unused(&self.key);
        }
    }

    fn auto_response(&self, text: &str) -> Option<(String, i64)> {
        let response = {
            let inner = self.inner();
            let pair = inner.auto_response.as_ref()?;
            (pair.request == text).then(|| pair.response.clone())?
        };
        let now = self.hubs.upgrade().map_or(0, |hubs| hubs.clock.now_ms());
        Some((response, now))
    }

    fn event_timeout_ms(&self) -> Option<u64> {
        Hub::event_timeout_ms(self)
    }
}

/// The hubs of a runtime, by object, and what hubs need of the runtime.
pub(crate) struct Hubs {
    map: Mutex<HashMap<ObjectKey, Arc<Hub>>>,
    router: Arc<ShardRouter>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Hubs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hubs").finish_non_exhaustive()
    }
}

impl Hubs {
    pub(crate) fn new(router: Arc<ShardRouter>, clock: Arc<dyn Clock>) -> Self {
        Self {
            map: Mutex::default(),
            router,
            clock,
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<ObjectKey, Arc<Hub>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, key: &ObjectKey) -> Option<Arc<Hub>> {
        self.map().get(key).cloned()
    }

    pub(crate) fn get_or_create(self: &Arc<Self>, key: ObjectKey, id: &ObjectId) -> Arc<Hub> {
        // Only an instance creates a hub, so a new hub starts live.
        Arc::clone(self.map().entry(key).or_insert_with(|| {
            Arc::new(Hub {
                key,
                id: id.clone(),
                hubs: Arc::downgrade(self),
                inner: Mutex::new(HubInner::default()),
                instance_live: AtomicBool::new(true),
            })
        }))
    }

    /// An instance of the object was built: its hub, if any, must stay.
    pub(crate) fn instance_started(&self, key: &ObjectKey) {
        if let Some(hub) = self.map().get(key) {
            hub.instance_live.store(true, Ordering::SeqCst);
        }
    }

    /// The last socket closed: drop the hub unless an instance is using it.
    fn drop_if_unused(&self, key: &ObjectKey) {
        let mut map = self.map();
        let unused = map.get(key).is_some_and(|hub| {
            hub.socket_count() == 0 && !hub.instance_live.load(Ordering::SeqCst)
        });
        if unused {
            map.remove(key);
        }
    }

    /// The number of hubs held (sockets or settings of objects).
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }

    /// True if the object has hibernatable sockets open.
    pub(crate) fn has_sockets(&self, key: &ObjectKey) -> bool {
        self.get(key).is_some_and(|hub| hub.socket_count() > 0)
    }

    /// The object's instance went away: drop its hub if no socket needs it, else keep it
    /// for the sockets (hibernation).
    pub(crate) fn release_if_empty(&self, key: &ObjectKey) {
        let mut map = self.map();
        let Some(hub) = map.get(key) else { return };
        hub.instance_live.store(false, Ordering::SeqCst);
        if hub.socket_count() == 0 {
            map.remove(key);
        }
    }

    /// Closes and drops the hub of a reset object.
    pub(crate) fn reset(&self, key: &ObjectKey) {
        let hub = self.map().remove(key);
        if let Some(hub) = hub {
            hub.close_all(1011, "the durable object was reset");
        }
    }
}
