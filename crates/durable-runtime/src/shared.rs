//! [`RuntimeShared`]: what every shard, environment and stub of one runtime shares: the
//! settings, namespaces and variables, the shard router, the commit and alarm services, the
//! WebSocket hubs and the counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use durable_core::{Clock, NamespaceKey};
use durable_storage::DataLayout;

use crate::alarm::AlarmScheduler;
use crate::commit::CommitServices;
use crate::event::Event;
use crate::metrics::Metrics;
use crate::runtime::config::RuntimeConfig;
use crate::shard::ShardRouter;
use crate::websocket::Hubs;

/// One namespace: its index, its class's name, and its key. (How to build the class's
/// instances is the shard directories' business: they hold the classes' vtables.)
#[derive(Debug)]
pub(crate) struct NamespaceShared {
    pub(crate) index: u32,
    pub(crate) class_name: &'static str,
    pub(crate) key: NamespaceKey,
}

/// What every shard, env and stub of a runtime shares.
#[derive(Debug)]
pub(crate) struct RuntimeShared {
    pub(crate) config: RuntimeConfig,
    /// Object databases open at once over the node: the setting, or the descriptor budget's.
    pub(crate) max_open_databases: usize,
    pub(crate) layout: DataLayout,
    pub(crate) namespaces: Vec<Arc<NamespaceShared>>,
    pub(crate) bindings: HashMap<String, u32>,
    pub(crate) vars: BTreeMap<String, String>,
    pub(crate) router: Arc<ShardRouter>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) active_objects: AtomicUsize,
    pub(crate) commits: Arc<CommitServices>,
    pub(crate) alarms: Arc<AlarmScheduler>,
    pub(crate) hubs: Arc<Hubs>,
    pub(crate) metrics: Arc<Metrics>,
    /// Objects' names and activity, for operators' tools.
    pub(crate) catalog: crate::catalog::Catalog,
}

impl RuntimeShared {
    /// Hands an event to the shard that owns its object; if it cannot be delivered
    /// (overloaded, shut down) its caller gets the error.
    pub(crate) fn send_or_fail(&self, event: Event) {
        self.router.send_or_fail(event);
    }

    /// The namespace of class `class`, if the runtime binds it.
    pub(crate) fn namespace_of(&self, class: &str) -> Option<&Arc<NamespaceShared>> {
        self.namespaces.iter().find(|ns| ns.class_name == class)
    }
}
