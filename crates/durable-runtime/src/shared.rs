//! [`RuntimeShared`]: what every shard, environment and stub of one runtime shares, and the
//! one way an event reaches its object's shard ([`RuntimeShared::send_or_fail`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use durable_core::{Clock, NamespaceKey};
use durable_storage::DataLayout;

use crate::alarm::AlarmScheduler;
use crate::commit::CommitServices;
use crate::event::Event;
use crate::metrics::Metrics;
use crate::object::ClassVTable;
use crate::runtime::RuntimeConfig;
use crate::shard::ShardHandle;
use crate::websocket::Hubs;

/// One namespace: a class, its index, and its key.
#[derive(Debug)]
pub(crate) struct NamespaceShared {
    pub(crate) index: u32,
    pub(crate) class: ClassVTable,
    pub(crate) key: NamespaceKey,
}

/// What every shard, env and stub of a runtime shares.
#[derive(Debug)]
pub(crate) struct RuntimeShared {
    pub(crate) config: RuntimeConfig,
    pub(crate) layout: DataLayout,
    pub(crate) namespaces: Vec<Arc<NamespaceShared>>,
    pub(crate) bindings: HashMap<String, u32>,
    pub(crate) vars: BTreeMap<String, String>,
    pub(crate) shards: Vec<ShardHandle>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) active_objects: AtomicUsize,
    pub(crate) commits: Arc<CommitServices>,
    pub(crate) alarms: Arc<AlarmScheduler>,
    pub(crate) hubs: Hubs,
    pub(crate) metrics: Metrics,
}

impl RuntimeShared {
    /// Hands an event to the shard that owns its object; if it cannot be delivered
    /// (overloaded, shut down) its caller gets the error.
    pub(crate) fn send_or_fail(&self, event: Event) {
        let index = (event.id.routing_hash() % self.shards.len() as u64) as usize;
        self.shards[index].admit(event, self.config.max_queued_events);
    }

    /// The namespace of class `class`, if the runtime binds it.
    pub(crate) fn namespace_of(&self, class: &str) -> Option<&Arc<NamespaceShared>> {
        self.namespaces
            .iter()
            .find(|ns| ns.class.class_name == class)
    }
}
