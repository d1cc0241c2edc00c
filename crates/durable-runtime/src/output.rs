//! What an instance sends out and the output gate holds: replies, calls to other objects,
//! and work to do once writes are durable (WebSocket frames). The commit pipeline holds
//! them ([`crate::commit::Output`]) until the writes made before them are durable.

use std::sync::Arc;

use durable_core::Error;

use crate::event::{Event, Outcome, Reply};
use crate::shard::ShardRouter;

/// An output waiting for durability.
// Boxing the event would cost an allocation per outgoing call; held outputs are few.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Output {
    /// The result of an event, for its caller.
    Reply { reply: Reply, outcome: Outcome },
    /// A call the object made to another object.
    Send {
        event: Event,
        router: Arc<ShardRouter>,
    },
    /// Work to do once the writes before it are durable (a WebSocket frame to send).
    Then(Box<dyn FnOnce()>),
}

impl crate::commit::Output for Output {
    fn deliver(self) {
        match self {
            Output::Reply { reply, outcome } => reply.send(outcome),
            Output::Send { event, router } => router.send_or_fail(event),
            Output::Then(work) => work(),
        }
    }

    fn fail(self, error: Error) {
        match self {
            Output::Reply { reply, .. } => reply.fail(error),
            Output::Send { event, .. } => event.reply.fail(error),
            // The writes it waited for may not be durable: skip the work.
            Output::Then(_) => {}
        }
    }
}
