//! The turn driver: the future that runs one event on one instance.
//!
//! Every poll of an event's future is a *turn*: the code between two awaits. `EventTask`
//! wraps each event's handler future and, around every turn:
//!
//! 1. refuses to run it if the instance was reset (the caller is told why);
//! 2. holds back an event that may not start yet (an earlier event has not started) or may not
//!    resume (another event holds the input gate);
//! 3. records which event is running, for `block_concurrency_while`;
//! 4. catches a panic (or `abort()`), resets the instance, and fails the call.
//!
//! This is also the seam where storage commits a turn's writes as one transaction and where
//! the output gate holds the reply until those writes are durable.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use durable_core::Error;
use durable_storage::DurabilityMode;

use crate::LocalBoxFuture;
use crate::core::gate::{Admit, admit};
use crate::event::{Outcome, Reply};
use crate::instance::Instance;
use crate::output::Output;
use crate::shard::{AdmissionRelease, TurnWatch};

thread_local! {
    /// The instance whose turn this shard thread is running, if any.
    static CURRENT: std::cell::RefCell<Option<Rc<Instance>>> = const { std::cell::RefCell::new(None) };
}

/// The instance whose turn is running on this thread: outgoing calls made now pass its
/// output gate.
pub(crate) fn current_instance() -> Option<Rc<Instance>> {
    CURRENT.with(|current| current.borrow().clone())
}

/// The unwind payload of `State::abort`: the reset reason is already recorded on the instance.
pub(crate) struct AbortUnwind;

/// Text of a panic payload, for the reset message.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else if payload.is::<AbortUnwind>() {
        "abort() was called".to_owned()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}

/// One event running on one instance.
pub(crate) struct EventTask {
    instance: Rc<Instance>,
    seq: u64,
    started: bool,
    handler: LocalBoxFuture<Outcome>,
    reply: Option<Reply>,
    admission: AdmissionRelease,
    /// Bytes the event was admitted with.
    size: usize,
    /// The shard's turn clock, for the watchdog.
    watch: Arc<TurnWatch>,
}

impl EventTask {
    pub(crate) fn new(
        instance: Rc<Instance>,
        seq: u64,
        handler: LocalBoxFuture<Outcome>,
        reply: Reply,
        admission: AdmissionRelease,
        size: usize,
        watch: Arc<TurnWatch>,
    ) -> Self {
        Self {
            instance,
            seq,
            started: false,
            handler,
            reply: Some(reply),
            admission,
            size,
            watch,
        }
    }
}

impl Future for EventTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let instance = Rc::clone(&this.instance);
        if instance.is_reset() {
            // Drop tells the caller why.
            return Poll::Ready(());
        }
        let decision = admit(
            &instance.order.borrow(),
            &instance.gate.borrow(),
            this.seq,
            this.started,
        );
        match decision {
            Admit::Run => {}
            Admit::WaitToStart => {
                instance
                    .order
                    .borrow_mut()
                    .park(this.seq, cx.waker().clone());
                return Poll::Pending;
            }
            Admit::WaitForGate => {
                instance.gate.borrow_mut().park(cx.waker().clone());
                return Poll::Pending;
            }
        }

        instance.current_event.set(Some(this.seq));
        let outer = CURRENT.with(|current| current.replace(Some(Rc::clone(&instance))));
        this.watch.begin(instance.class_name, &instance.id);
        let turn = catch_unwind(AssertUnwindSafe(|| this.handler.as_mut().poll(cx)));
        this.watch.end();
        CURRENT.with(|current| *current.borrow_mut() = outer);
        instance.current_event.set(None);
        if instance.shared.config.durability == DurabilityMode::FsyncEachCommit
            && !instance.is_reset()
            && turn.is_ok()
        {
            // One fsync per turn, on this thread: the mode that shows what group commit gains.
            instance.commit_now();
        }
        if !this.started {
            this.started = true;
            let next = instance.order.borrow_mut().started(this.seq);
            if let Some(next) = next {
                next.wake();
            }
        }

        match turn {
            Err(payload) => {
                if !instance.is_reset() {
                    instance.reset(
                        Error::reset(format!(
                            "{} panicked: {}; the object was reset and its next call gets a fresh instance",
                            instance.class_name,
                            panic_message(payload.as_ref())
                        ))
                        .into_remote(),
                    );
                }
                Poll::Ready(())
            }
            // A reset during the turn (abort(), a failed block_concurrency_while) wins over
            // whatever the handler returned: nothing of a reset instance is reported as done.
            Ok(_) if instance.is_reset() => Poll::Ready(()),
            Ok(Poll::Ready(outcome)) => {
                if let Some(reply) = this.reply.take() {
                    instance.submit_output(Output::Reply { reply, outcome });
                }
                Poll::Ready(())
            }
            Ok(Poll::Pending) => Poll::Pending,
        }
    }
}

impl Drop for EventTask {
    fn drop(&mut self) {
        if let Some(reply) = self.reply.take() {
            reply.fail(self.instance.failure());
        }
        self.instance.event_finished(self.seq);
        self.admission.release(&self.instance.key, self.size);
    }
}

/// A task an object spawned with `State::spawn`: each poll runs as the instance's code, so
/// its outgoing calls, WebSocket messages and storage writes pass the output gate like a
/// handler's, and it waits while a handler holds the input gate (`block_concurrency_while`).
/// A panic in it resets the object.
pub(crate) struct SideTask {
    pub(crate) instance: std::rc::Weak<Instance>,
    pub(crate) future: LocalBoxFuture<()>,
}

impl Future for SideTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(instance) = this.instance.upgrade() else {
            return Poll::Ready(());
        };
        if instance.is_reset() {
            return Poll::Ready(());
        }
        if instance.gate.borrow().is_closed() {
            instance.gate.borrow_mut().park(cx.waker().clone());
            return Poll::Pending;
        }
        let outer = CURRENT.with(|current| current.replace(Some(Rc::clone(&instance))));
        let turn = catch_unwind(AssertUnwindSafe(|| this.future.as_mut().poll(cx)));
        CURRENT.with(|current| *current.borrow_mut() = outer);
        match turn {
            Ok(poll) => poll,
            Err(payload) => {
                instance.reset(
                    Error::reset(format!(
                        "a task spawned by {} panicked: {}; the object was reset",
                        instance.class_name,
                        panic_message(payload.as_ref())
                    ))
                    .into_remote(),
                );
                Poll::Ready(())
            }
        }
    }
}
