//! [`Instance`]: one live instance of one object: its user object, its gates, its commit
//! pipeline, its tasks, and its lifecycle (reset, discard, idleness).
//!
//! The instance drives its [`CommitPipeline`]: it opens the database on first use (closing
//! idle objects' databases first when the node is at its limit), spawns the commit task after
//! a write and the pump task that releases outputs as the signal reports durability, and
//! resets itself when the pipeline reports a failure. Every method runs on the instance's
//! shard thread.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Waker;

use durable_core::{Error, ErrorKind, ObjectId, Result, limits};
use durable_storage::ObjectDatabase;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::commit::{CommitPipeline, ObjectRef, commit_task};
use crate::core::ObjectKey;
use crate::core::gate::{InputGate, StartOrder};
use crate::event::AnyObject;
use crate::output::Output;
use crate::shard::{TurnWatch, Watched};
use crate::shared::RuntimeShared;
use crate::websocket::SocketShared;

/// What an instance asks of the shard directory that hosts it.
pub(crate) trait Host {
    /// Takes `instance` out of the directory, if it is the one registered for its object.
    fn remove(&self, instance: &Instance);
    /// Evicts idle objects with an open database until fewer than `limit` are open.
    fn close_idle_databases(&self, limit: usize);
    /// The instance may have become idle (an event ended, outputs were released): objects
    /// waiting for a database slot may take its.
    fn maybe_idle(&self);
}

/// One live instance of one object.
pub(crate) struct Instance {
    pub(crate) key: ObjectKey,
    pub(crate) id: ObjectId,
    pub(crate) class_name: &'static str,
    pub(crate) object: RefCell<Option<Rc<dyn AnyObject>>>,
    pub(crate) gate: RefCell<InputGate<Waker>>,
    pub(crate) order: RefCell<StartOrder<Waker>>,
    pub(crate) tasks: RefCell<HashMap<u64, AbortHandle>>,
    pub(crate) reset_reason: RefCell<Option<Error>>,
    pub(crate) inflight: Cell<usize>,
    pub(crate) last_active: Cell<Instant>,
    /// The event whose turn is running now, if any: who `block_concurrency_while` closes the
    /// gate for.
    pub(crate) current_event: Cell<Option<u64>>,
    host: Weak<dyn Host>,
    pub(crate) shared: Arc<RuntimeShared>,
    /// The database, its commits and the outputs held for them.
    pipeline: RefCell<CommitPipeline<Output>>,
    /// The task that releases outputs as commits become durable (while the database is open).
    pump: RefCell<Option<AbortHandle>>,
    /// The alarm time whose handler is running: `get_alarm()` hides it meanwhile.
    pub(crate) alarm_running: Cell<Option<i64>>,
    /// Sockets accepted with the standard API: they pin the instance in memory.
    standard_sockets: RefCell<Vec<Arc<SocketShared>>>,
    /// Tasks the object spawned with `State::spawn`; they end with the instance.
    side_tasks: RefCell<Vec<AbortHandle>>,
    /// The shard's turn clock: commits are timed like turns.
    pub(crate) watch: Arc<TurnWatch>,
}

impl Instance {
    pub(crate) fn new(
        key: ObjectKey,
        id: ObjectId,
        class_name: &'static str,
        host: Weak<dyn Host>,
        shared: Arc<RuntimeShared>,
        watch: Arc<TurnWatch>,
    ) -> Self {
        let pipeline = CommitPipeline::new(
            Arc::clone(&shared.commits),
            ObjectRef {
                key,
                id: id.clone(),
                class: class_name,
            },
        );
        Self {
            key,
            id,
            class_name,
            object: RefCell::new(None),
            gate: RefCell::default(),
            order: RefCell::default(),
            tasks: RefCell::new(HashMap::new()),
            reset_reason: RefCell::new(None),
            inflight: Cell::new(0),
            last_active: Cell::new(Instant::now()),
            current_event: Cell::new(None),
            host,
            shared,
            pipeline: RefCell::new(pipeline),
            pump: RefCell::new(None),
            alarm_running: Cell::new(None),
            standard_sockets: RefCell::new(Vec::new()),
            side_tasks: RefCell::new(Vec::new()),
            watch,
        }
    }

    /// Whether the object's class implements the alarm handler; `None` while the object is
    /// being constructed.
    pub(crate) fn has_alarm_handler(&self) -> Option<bool> {
        self.object
            .borrow()
            .as_ref()
            .map(|object| object.has_alarm_handler())
    }

    pub(crate) fn is_reset(&self) -> bool {
        self.reset_reason.borrow().is_some()
    }

    /// The error callers of this instance's unfinished events receive.
    pub(crate) fn failure(&self) -> Error {
        self.reset_reason.borrow().clone().unwrap_or_else(|| {
            Error::disconnected("the object stopped before it replied; retry the call")
        })
    }

    /// Discards this instance: it leaves the directory, its other events are aborted with
    /// `reason`, and the next event for the object gets a fresh instance. Storage is kept.
    pub(crate) fn reset(&self, reason: Error) {
        if self.is_reset() {
            return;
        }
        // Logged here, where the failure is handled, once.
        tracing::warn!(
            namespace = self.class_name,
            object_id = %self.id,
            reason = %reason,
            "object reset"
        );
        *self.reset_reason.borrow_mut() = Some(reason.clone());
        // The uncommitted batch dies with the instance; held outputs learn why.
        self.close_storage(&reason, false);
        // A broken object's sockets are disconnected, hibernatable ones included.
        self.shared.hubs.reset(&self.key);
        self.discard();
    }

    /// Marks the instance stopped by a shutdown (not a failure of the object).
    pub(crate) fn stop_for_shutdown(&self, reason: Error) {
        *self.reset_reason.borrow_mut() = Some(reason.clone());
        // Commit what is pending so no write is lost needlessly; its callers still hear of
        // the shutdown, since the commit was not confirmed to them.
        self.close_storage(&reason, true);
        self.discard();
    }

    /// Evicts the instance (idle, or its database is needed): commits and closes.
    pub(crate) fn evict(&self) {
        self.close_storage(&Error::disconnected("the object was evicted"), true);
        self.discard();
    }

    /// Keeps the instance in memory while `socket` (accepted with the standard API) is open.
    pub(crate) fn pin_socket(&self, socket: Arc<SocketShared>) {
        let mut sockets = self.standard_sockets.borrow_mut();
        sockets.retain(|s| s.is_open());
        sockets.push(socket);
    }

    /// Keeps `task` (spawned by the object with `State::spawn`) until it ends or the
    /// instance goes away.
    pub(crate) fn add_side_task(&self, task: AbortHandle) {
        let mut tasks = self.side_tasks.borrow_mut();
        tasks.retain(|task| !task.is_finished());
        tasks.push(task);
    }

    /// Closes the input gate for the event whose turn is running, until the guard drops
    /// (`block_concurrency_while`, `transaction`).
    pub(crate) fn hold_gate(self: &Rc<Self>) -> Result<GateGuard> {
        let Some(event) = self.current_event.get() else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "block_concurrency_while and transaction must be awaited by a handler of this object, not by a spawned task or the constructor",
            ));
        };
        let closed = self
            .gate
            .borrow_mut()
            .close(event, limits::MAX_BLOCK_CONCURRENCY_DEPTH);
        if closed.is_err() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "block_concurrency_while calls are nested too deeply: the limit is {}",
                    limits::MAX_BLOCK_CONCURRENCY_DEPTH
                ),
            ));
        }
        Ok(GateGuard {
            instance: Rc::clone(self),
        })
    }

    fn has_standard_sockets(&self) -> bool {
        self.standard_sockets.borrow().iter().any(|s| s.is_open())
    }

    /// Takes the instance out of service: out of the directory, object dropped, tasks aborted.
    fn discard(&self) {
        // Standard sockets live and die with the instance.
        for socket in self.standard_sockets.take() {
            socket.close_now(1011, "the durable object was shut down or reset");
        }
        for task in self.side_tasks.take() {
            task.abort();
        }
        self.shared.hubs.release_if_empty(&self.key);
        if let Some(host) = self.host.upgrade() {
            host.remove(self);
        }
        let current = self.current_event.get();
        let handles: Vec<AbortHandle> = self
            .tasks
            .borrow()
            .iter()
            .filter(|(seq, _)| Some(**seq) != current)
            .map(|(_, handle)| handle.clone())
            .collect();
        for handle in handles {
            handle.abort();
        }
        // Dropping the user's object may run user code; a panic there must not take the shard
        // down with it.
        let object = self.object.borrow_mut().take();
        if catch_unwind(AssertUnwindSafe(|| drop(object))).is_err() {
            tracing::error!(namespace = self.class_name, object_id = %self.id, "object's Drop panicked");
        }
    }

    pub(crate) fn event_finished(&self, seq: u64) {
        self.tasks.borrow_mut().remove(&seq);
        self.inflight.set(self.inflight.get() - 1);
        self.last_active.set(Instant::now());
        if let Some(host) = self.host.upgrade() {
            host.maybe_idle();
        }
    }

    /// True if nothing keeps the instance busy and it was last active at or before `deadline`.
    pub(crate) fn is_idle_since(&self, deadline: Instant) -> bool {
        !self.has_standard_sockets()
            && self.inflight.get() == 0
            && !self.gate.borrow().is_closed()
            && !self.has_pending_durability()
            && self.last_active.get() <= deadline
    }

    /// True while the database is open.
    pub(crate) fn has_open_database(&self) -> bool {
        self.pipeline
            .try_borrow()
            .is_ok_and(|pipeline| pipeline.is_open())
    }

    // ----- the commit pipeline ---------------------------------------------------------------

    /// Runs `f` on the database, opening it first if needed.
    pub(crate) fn with_db<T>(
        self: &Rc<Self>,
        f: impl FnOnce(&mut ObjectDatabase) -> T,
    ) -> Result<T> {
        if self.is_reset() {
            return Err(self.failure());
        }
        if !self.pipeline.borrow().is_open() {
            self.open_storage()?;
        }
        let mut pipeline = self.pipeline.borrow_mut();
        let db = pipeline.db().expect("opened above");
        Ok(f(db))
    }

    fn open_storage(self: &Rc<Self>) -> Result<()> {
        let shared = &self.shared;
        let limit = shared.max_open_databases;
        if shared.commits.open_databases.load(Ordering::Relaxed) >= limit
            && let Some(host) = self.host.upgrade()
        {
            // No borrow of this instance's pipeline is held: closing others' is safe.
            host.close_idle_databases(limit);
        }
        let path = shared
            .layout
            .object_db(self.class_name, &self.id.to_string());
        let signal = self.pipeline.borrow_mut().open(&path)?;
        let instance = Rc::downgrade(self);
        let pump = tokio::task::spawn_local(async move {
            loop {
                signal.changed().await;
                let Some(instance) = instance.upgrade() else {
                    return;
                };
                let released = instance.pipeline.borrow_mut().on_signal();
                match released {
                    Err(failure) => instance.reset(failure),
                    Ok(()) => {
                        if let Some(host) = instance.host.upgrade() {
                            host.maybe_idle();
                        }
                    }
                }
            }
        });
        *self.pump.borrow_mut() = Some(pump.abort_handle());
        Ok(())
    }

    /// Sends `output` when the writes before it are durable (at once if they already are).
    pub(crate) fn submit_output(&self, output: Output) {
        self.pipeline.borrow_mut().submit(output);
    }

    /// True while outputs are held or writes wait for a commit: the instance is not idle.
    pub(crate) fn has_pending_durability(&self) -> bool {
        self.pipeline.borrow().is_busy()
    }

    /// Makes sure the open batch gets committed once the running turn has yielded.
    pub(crate) fn schedule_commit(self: &Rc<Self>) {
        if !self.pipeline.borrow_mut().schedule_commit() {
            return;
        }
        let instance = Rc::downgrade(self);
        let task = async move {
            let Some(instance) = instance.upgrade() else {
                return;
            };
            if let Err(failure) = commit_task(&instance.pipeline).await {
                instance.reset(failure);
            }
        };
        tokio::task::spawn_local(Watched::new(
            Arc::clone(&self.watch),
            self.class_name,
            self.id.clone(),
            task,
        ));
    }

    /// Commits the open batch now (the `FsyncEachCommit` mode commits after every turn).
    pub(crate) fn commit_now(&self) {
        let committed = self.pipeline.borrow_mut().commit();
        if let Err(err) = committed {
            self.reset(
                err.context("the object was reset because its writes could not be committed"),
            );
        }
    }

    /// A receiver that resolves when every write so far is durable.
    pub(crate) fn sync(self: &Rc<Self>) -> Result<oneshot::Receiver<Result<()>>> {
        self.with_db(|_| ())?;
        let synced = self.pipeline.borrow_mut().sync();
        synced.map_err(|err| {
            let err = err.context("the object was reset because its writes could not be committed");
            self.reset(err.clone());
            err
        })
    }

    /// Resets the instance if its writes have waited past the storage timeout to become
    /// durable: the outputs waiting for them fail with "outcome unknown".
    pub(crate) fn check_storage_timeout(&self, now: Instant) {
        let overdue = self
            .pipeline
            .try_borrow_mut()
            .is_ok_and(|mut pipeline| pipeline.is_overdue(now));
        if overdue {
            let timeout = self.shared.config.storage_timeout;
            self.reset(Error::outcome_unknown(format!(
                "the object was reset because its storage did not confirm a write within {} ms; the write may or may not have been applied: read the state back before retrying",
                timeout.as_millis()
            )));
        }
    }

    /// Truncates the database's WAL if it was written since the last time and no batch is
    /// open (an idle object, or a full disk).
    pub(crate) fn truncate_wal(&self) -> bool {
        let Ok(mut pipeline) = self.pipeline.try_borrow_mut() else {
            return false;
        };
        // A checkpoint that hangs on the disk stalls the shard: time it like a turn.
        self.watch.begin(self.class_name, &self.id);
        let done = pipeline.truncate_wal();
        self.watch.end();
        done
    }

    /// Commits (if `commit_first`) or rolls back uncommitted writes, fails held outputs and
    /// closes the database.
    pub(crate) fn close_storage(&self, error: &Error, commit_first: bool) {
        if let Some(pump) = self.pump.borrow_mut().take() {
            pump.abort();
        }
        self.pipeline.borrow_mut().close(error, commit_first);
        self.alarm_running.set(None);
    }
}

/// Opens one level of the gate when `block_concurrency_while` ends, however it ends.
pub(crate) struct GateGuard {
    instance: Rc<Instance>,
}

impl Drop for GateGuard {
    fn drop(&mut self) {
        let opened = self.instance.gate.borrow_mut().open_one_level();
        if let Some(parked) = opened {
            for waker in parked {
                waker.wake();
            }
            let next = self.instance.order.borrow_mut().next_waiter();
            if let Some(next) = next {
                next.wake();
            }
        }
    }
}
