//! The commit pipeline: one instance's writes from "a turn wrote" to "outputs released".
//!
//! `CommitPipeline` owns the instance's open database and everything that follows a
//! write: committing the batch between turns, bringing the alarm index up to date (before
//! the commit if the batch moves the alarm earlier, after it is durable otherwise), asking
//! the durability worker for an fsync, handing the commit to the capture point (the
//! [`CommitObserver`]), tracking the durable sequence number, and releasing held outputs in
//! order once the writes before them are durable. `ObjectDatabase::commit` returns a
//! [`CommitTicket`](durable_storage::CommitTicket) that carries what these steps need.
//!
//! Durable means: fsynced by the durability worker (or by the commit itself in
//! `FsyncEachCommit` mode) *and* acknowledged by the commit observer, if one is installed.
//! A failed commit, fsync or acknowledgement fails every held output and the instance
//! resets; nobody is told "done" for a write that is not durable.
//!
//! Layering: this module knows the database, the alarm scheduler's bookkeeping and the
//! deterministic output queue. It does not know instances, shards or the user's API: the
//! instance drives it (opening the database lazily, spawning the commit and pump tasks,
//! resetting on errors) and gives it outputs to hold through the `Output` trait.

mod capture;
mod signal;

pub use capture::{CapturedCommit, CommitAck, CommitObserver};
pub use durable_storage::{CommitFrames, WalFrame, WalPosition};
pub(crate) use signal::DurabilitySignal;

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use durable_core::{Error, ErrorKind, ObjectId, Result};
use durable_storage::{
    DatabaseOptions, DiskSpace, DurabilityMode, DurabilityWorker, ObjectDatabase, WalFile,
};
use tokio::sync::{Notify, oneshot};
use tokio::time::{Duration, Instant};

use crate::alarm::AlarmScheduler;
use crate::core::{ObjectKey, OutputQueue};
use crate::history::{History, Reconciled};

/// Something an instance sends out that must wait for the writes made before it.
pub(crate) trait Output {
    /// Sends it: its writes are durable.
    fn deliver(self);
    /// Fails it: its writes may never become durable.
    fn fail(self, error: Error);
}

/// What the pipelines of a node share.
#[derive(Debug)]
pub(crate) struct CommitServices {
    pub(crate) durability: DurabilityWorker,
    pub(crate) alarms: Arc<AlarmScheduler>,
    pub(crate) observer: Option<Arc<dyn CommitObserver>>,
    /// The objects' history, when a commit log is on (it is then the observer too).
    pub(crate) history: Option<Arc<History>>,
    pub(crate) options: DatabaseOptions,
    /// Commits made, over the node.
    pub(crate) commits: AtomicU64,
    /// Databases open, over the node.
    pub(crate) open_databases: AtomicUsize,
    /// The data folder's disk: full or not, and the reserve.
    pub(crate) space: Arc<DiskSpace>,
    /// Told each time a database closes: objects waiting for a database slot try again.
    pub(crate) database_closed: Notify,
    /// How long outputs may wait for durability before the object resets.
    pub(crate) storage_timeout: Duration,
}

impl CommitServices {
    pub(crate) fn new(
        durability: DurabilityWorker,
        alarms: Arc<AlarmScheduler>,
        observer: Option<Arc<dyn CommitObserver>>,
        history: Option<Arc<History>>,
        space: Arc<DiskSpace>,
        config: &crate::RuntimeConfig,
    ) -> Self {
        let observer = match &history {
            Some(history) => Some(Arc::clone(history) as Arc<dyn CommitObserver>),
            None => observer,
        };
        let (mode, max_bytes) = (config.durability, config.max_database_bytes);
        let mut options = DatabaseOptions::default();
        options.mode = mode;
        options.max_bytes = max_bytes;
        options.capture = observer.is_some();
        Self {
            durability,
            alarms,
            observer,
            history,
            options,
            commits: AtomicU64::new(0),
            open_databases: AtomicUsize::new(0),
            space,
            database_closed: Notify::new(),
            storage_timeout: config.storage_timeout,
        }
    }
}

/// Which object a pipeline belongs to.
#[derive(Debug, Clone)]
pub(crate) struct ObjectRef {
    pub(crate) key: ObjectKey,
    pub(crate) id: ObjectId,
    pub(crate) class: &'static str,
}

/// An output held by the pipeline: the instance's own, or the pipeline's.
enum Held<O> {
    Output(O),
    /// A `sync()` call.
    Waiter(oneshot::Sender<Result<()>>),
    /// The commit that set the stored alarm to this is durable: tell the scheduler.
    AlarmDurable(Option<i64>),
}

struct OpenDatabase {
    db: ObjectDatabase,
    wal: Arc<WalFile>,
    signal: Arc<DurabilitySignal>,
}

/// One instance's commit pipeline.
pub(crate) struct CommitPipeline<O> {
    services: Arc<CommitServices>,
    object: ObjectRef,
    open: Option<OpenDatabase>,
    outputs: OutputQueue<Held<O>>,
    commit_scheduled: bool,
    /// The durable point the sweeper last saw while commits were waiting, and since when it
    /// has not moved (no clock is read on the commit path).
    stuck_since: Option<(u64, Instant)>,
    /// The WAL holds frames written since it was last truncated.
    wal_dirty: bool,
}

impl<O: Output> CommitPipeline<O> {
    pub(crate) fn new(services: Arc<CommitServices>, object: ObjectRef) -> Self {
        Self {
            services,
            object,
            open: None,
            outputs: OutputQueue::default(),
            commit_scheduled: false,
            stuck_since: None,
            wal_dirty: false,
        }
    }

    /// True while the database is open.
    pub(crate) fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Opens the database at `path`; returns the signal its pump task must wait on.
    pub(crate) fn open(&mut self, path: &Path) -> Result<Arc<DurabilitySignal>> {
        // The local files are matched against the object's history (and repaired) before
        // SQLite reads them.
        let reconciled = match &self.services.history {
            Some(history) => history.reconcile(&self.log_name(), path)?,
            None => Reconciled::Kept,
        };
        let signal = Arc::new(DurabilitySignal::default());
        let notify = Arc::clone(&signal);
        let db = ObjectDatabase::open_on(
            path,
            self.services.options,
            Some(Arc::clone(&self.services.space)),
            Arc::new(move |result| {
                match result {
                Ok(_) => notify.synced(),
                // The commit is in the WAL, so it may well survive: nobody may be told it
                // failed. Its outcome is unknown.
                Err(err) => notify.fail(Error::outcome_unknown(format!(
                    "the object was reset because a write could not be confirmed durable ({err}); it may or may not have been applied: read the state back before retrying"
                ))),
            }
            }),
        )?;
        let wal = Arc::clone(db.wal());
        self.services.open_databases.fetch_add(1, Ordering::Relaxed);
        let mut db = db;
        if reconciled == Reconciled::Replaced {
            // The database was rebuilt or restored: the schedule follows its stored alarm.
            let alarm = db
                .alarm()
                .map_err(|err| Error::new(ErrorKind::Storage, err.to_string()))?;
            let ObjectRef { key, id, class } = &self.object;
            self.services.alarms.after_durable(*key, id, class, alarm);
        }
        self.open = Some(OpenDatabase {
            db,
            wal,
            signal: Arc::clone(&signal),
        });
        Ok(signal)
    }

    /// The object's name in its log.
    fn log_name(&self) -> durable_log::ObjectName {
        crate::history::object_name(self.object.class, &self.object.id)
    }

    /// The open database (`None` before the first use or after a close).
    pub(crate) fn db(&mut self) -> Option<&mut ObjectDatabase> {
        self.open.as_mut().map(|open| &mut open.db)
    }

    /// The durable point: every commit up to it is fsynced and acknowledged.
    pub(crate) fn durable_seq(&self) -> u64 {
        self.open
            .as_ref()
            .map_or(0, |open| open.wal.synced_seq().min(open.signal.acked()))
    }

    /// The commit an output produced now depends on.
    fn required_seq(&self) -> u64 {
        self.open.as_ref().map_or(0, |open| open.db.required_seq())
    }

    /// Sends `output` once the writes made before it are durable (at once if they are).
    pub(crate) fn submit(&mut self, output: O) {
        let (required, durable) = (self.required_seq(), self.durable_seq());
        self.hold(required, durable, Held::Output(output));
    }

    fn hold(&mut self, required: u64, durable: u64, held: Held<O>) {
        if let Some(ready) = self.outputs.submit(required, durable, held) {
            self.deliver(ready);
        }
    }

    fn deliver(&self, held: Held<O>) {
        match held {
            Held::Output(output) => output.deliver(),
            Held::Waiter(tx) => drop(tx.send(Ok(()))),
            Held::AlarmDurable(time) => {
                let ObjectRef { key, id, class } = &self.object;
                self.services.alarms.after_durable(*key, id, class, time);
            }
        }
    }

    /// True while outputs are held or writes wait for a commit: the instance is not idle.
    pub(crate) fn is_busy(&self) -> bool {
        !self.outputs.is_empty()
            || self.commit_scheduled
            || self
                .open
                .as_ref()
                .is_some_and(|open| open.db.has_uncommitted())
    }

    /// Records that a commit task must run; false if one is already queued.
    pub(crate) fn schedule_commit(&mut self) -> bool {
        !std::mem::replace(&mut self.commit_scheduled, true)
    }

    /// The alarm time the index must durably hold before the open batch may commit, if any
    /// (the batch sets an alarm earlier than the index has).
    fn alarm_to_index(&mut self) -> Result<Option<i64>> {
        let Some(open) = self.open.as_mut() else {
            return Ok(None);
        };
        if !self.commit_scheduled || !open.db.can_commit() {
            return Ok(None);
        }
        let Some(Some(time)) = open.db.batch_alarm()? else {
            return Ok(None);
        };
        Ok(self
            .services
            .alarms
            .needs_index(&self.object.key, time)
            .then_some(time))
    }

    /// Commits the open batch now: the alarm index first if it must be ahead, then the
    /// commit, the durability request and the capture point. An error means the object must
    /// reset.
    pub(crate) fn commit(&mut self) -> Result<()> {
        self.commit_scheduled = false;
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        if !open.db.can_commit() {
            // An explicit transaction is still open; its end schedules the commit again.
            return Ok(());
        }
        let ObjectRef { key, id, class } = &self.object;
        if let Some(Some(time)) = open.db.batch_alarm()? {
            self.services
                .alarms
                .before_commit(*key, id, class, time)
                .map_err(|err| Error::new(ErrorKind::Storage, err.to_string()))?;
        }
        let Some(ticket) = open.db.commit()? else {
            return Ok(());
        };
        let seq = ticket.seq;
        self.services.commits.fetch_add(1, Ordering::Relaxed);
        self.wal_dirty |= ticket.changed;
        if self.services.options.mode == DurabilityMode::GroupCommit {
            self.services.durability.request_sync(&ticket.wal);
        }
        // The capture point: every durable write of every object passes here, before any
        // output that depends on it can be released. A commit that changed no page has
        // nothing to show.
        match &self.services.observer {
            None => open.signal.acknowledge_now(seq),
            Some(_) if !ticket.changed => open.signal.acknowledge_now(seq),
            Some(observer) => {
                let Some(frames) = ticket.frames else {
                    return Err(Error::new(
                        ErrorKind::Internal,
                        "a commit observer is installed but the database did not capture the commit's frames",
                    ));
                };
                let commit = CapturedCommit {
                    class,
                    id: id.clone(),
                    seq,
                    frames,
                    alarm: ticket.alarm,
                };
                observer.committed(commit, CommitAck::new(Arc::clone(&open.signal), seq));
            }
        }
        if let Some(alarm) = ticket.alarm {
            let durable = self.durable_seq();
            self.hold(seq, durable, Held::AlarmDurable(alarm));
        }
        // Durable at once (fsync in the commit, no observer): the signal may not come.
        self.checkpoint_if_settled();
        Ok(())
    }

    /// After the signal fired: releases, in order, what became durable, or returns the
    /// failure that was reported (the object must reset).
    pub(crate) fn on_signal(&mut self) -> Result<()> {
        if let Some(failure) = self
            .open
            .as_ref()
            .and_then(|open| open.signal.take_failure())
        {
            return Err(failure);
        }
        let durable = self.durable_seq();
        let mut ready = Vec::new();
        while let Some(held) = self.outputs.pop_ready(durable) {
            ready.push(held);
        }
        // The schedule follows a durable alarm change before the replies of the same commit
        // leave: a caller told "the alarm is set" finds it scheduled (a test's clock jump
        // right after the reply must see it).
        let (alarms, others): (Vec<_>, Vec<_>) = ready
            .into_iter()
            .partition(|held| matches!(held, Held::AlarmDurable(_)));
        for held in alarms.into_iter().chain(others) {
            self.deliver(held);
        }
        self.checkpoint_if_settled();
        Ok(())
    }

    /// True when every commit made is durable (fsynced and acknowledged): the WAL holds
    /// nothing the log lacks.
    fn all_durable(&self) -> bool {
        self.open
            .as_ref()
            .is_none_or(|open| open.wal.committed_seq() <= self.durable_seq())
    }

    /// Runs a due checkpoint once every commit in the WAL is durable and acknowledged, never
    /// before: the database file must not hold a commit the log lacks (a crash then would
    /// leave the object ahead of its history).
    fn checkpoint_if_settled(&mut self) {
        if !self.all_durable() {
            return;
        }
        if let Some(open) = self.open.as_mut()
            && open.db.checkpoint_due()
        {
            open.db.checkpoint();
        }
    }

    /// The sweeper's look: true if commits have waited for durability, without the durable
    /// point moving, for longer than the storage timeout (seen from the sweeper's rounds, so
    /// up to one round late).
    pub(crate) fn is_overdue(&mut self, now: Instant) -> bool {
        let durable = self.durable_seq();
        let waiting = self
            .open
            .as_ref()
            .is_some_and(|open| open.wal.committed_seq() > durable);
        if !waiting {
            self.stuck_since = None;
            return false;
        }
        match self.stuck_since {
            Some((seen, since)) if seen == durable => {
                now.saturating_duration_since(since) >= self.services.storage_timeout
            }
            _ => {
                self.stuck_since = Some((durable, now));
                false
            }
        }
    }

    /// Copies the WAL into the database and truncates it, if it was written since the last
    /// time and no batch is open. True if it did.
    pub(crate) fn truncate_wal(&mut self) -> bool {
        if !self.wal_dirty || self.commit_scheduled || !self.all_durable() {
            return false;
        }
        let Some(open) = self.open.as_mut() else {
            return false;
        };
        let done = open.db.truncate_wal();
        self.wal_dirty &= !done;
        done
    }

    /// `sync()`: a receiver that resolves when every write so far, `allow_unconfirmed` ones
    /// included, is durable. Commits the open batch now if it can.
    pub(crate) fn sync(&mut self) -> Result<oneshot::Receiver<Result<()>>> {
        let (tx, rx) = oneshot::channel();
        let Some(open) = self.open.as_mut() else {
            drop(tx.send(Ok(())));
            return Ok(rx);
        };
        let target = open.db.latest_seq();
        if open.db.can_commit() {
            self.commit()?;
        }
        let durable = self.durable_seq();
        self.hold(target, durable, Held::Waiter(tx));
        Ok(rx)
    }

    /// Closes the database: commits what is pending first if `commit_first` (eviction,
    /// shutdown; through the whole pipeline, so the capture point and the alarm index see
    /// it), else rolls it back (a reset). Every held output fails with `error`: what was
    /// not released is not confirmed.
    pub(crate) fn close(&mut self, error: &Error, commit_first: bool) {
        if commit_first
            && self.is_open()
            && let Err(err) = self.commit()
        {
            let ObjectRef { id, class, .. } = &self.object;
            tracing::warn!(namespace = class, object_id = %id, error = %err, "commit at close failed; its writes are rolled back");
        }
        self.commit_scheduled = false;
        let settled = self.all_durable();
        if let Some(open) = self.open.take() {
            if error.is_outcome_unknown() || !settled {
                // The disk did not confirm a write: closing must not wait on it again. Or a
                // commit is not acknowledged yet: SQLite's checkpoint at close would put it
                // in the database file before the log has it (the WAL keeps it; reopening
                // matches it against the log).
                open.db.close_without_checkpoint();
            } else {
                open.db.close();
            }
            self.services.open_databases.fetch_sub(1, Ordering::Relaxed);
            self.services.database_closed.notify_waiters();
            if let Some(history) = &self.services.history {
                history.closed(&self.log_name(), settled);
            }
        }
        self.stuck_since = None;
        self.wal_dirty = false;
        self.fail_all(error);
    }

    fn fail_all(&mut self, error: &Error) {
        for held in self.outputs.take_all() {
            match held {
                Held::Output(output) => output.fail(error.clone()),
                Held::Waiter(tx) => drop(tx.send(Err(error.clone()))),
                // The commit it waited for may not be durable: the index keeps its entry,
                // which at worst costs a spurious wake-up.
                Held::AlarmDurable(_) => {}
            }
        }
    }
}

/// The commit task of an instance: if the open batch moves the alarm earlier than the
/// index holds, has the index writer make the new time durable first (the object keeps
/// running meanwhile, and turns that run join the batch), then commits. An error means the
/// object must reset.
pub(crate) async fn commit_task<O: Output>(pipeline: &RefCell<CommitPipeline<O>>) -> Result<()> {
    loop {
        let (time, alarms, object) = {
            let mut this = pipeline.borrow_mut();
            match this.alarm_to_index()? {
                None => break,
                Some(time) => (time, Arc::clone(&this.services.alarms), this.object.clone()),
            }
        };
        match alarms.index_now(&object.id, object.class, time).await {
            Ok(Ok(())) => alarms.mark_indexed(object.key, &object.id, object.class, time),
            Ok(Err(err)) => {
                return Err(Error::new(
                    ErrorKind::Storage,
                    format!("the object was reset because its alarm could not be indexed: {err}"),
                ));
            }
            // The runtime is stopping; the shutdown commits what is pending.
            Err(_) => return Ok(()),
        }
    }
    let mut this = pipeline.borrow_mut();
    if !this.commit_scheduled {
        // Committed meanwhile (sync(), or the database was closed).
        return Ok(());
    }
    this.commit().map_err(|err| {
        err.context("the object was reset because its writes could not be committed")
    })
}
