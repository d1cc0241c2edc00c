//! The log writers: threads that turn captured commits into records and append them, many
//! objects' at once (group commit), acknowledging each commit once its append is durable.
//! One writer for the local archive; several for PostgreSQL, each with its own connection
//! and its own share of the objects (an object's commits always go to the same writer, so at
//! most one append of an object is in flight and its records stay in order), so appends of
//! different objects overlap.
//!
//! The shard threads only queue (the observer must not block); a writer numbers each
//! record from the object's head, hashes it (the chain), appends the whole batch as one
//! durable step and answers every acknowledgement. A failed append fails its commits (their
//! objects reset) and marks those objects *broken*: commits of theirs still queued are
//! refused, and their next open matches the local database against the log again (the
//! head is read back from the log: an append that failed may still have landed).

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use durable_core::{Clock, Error, ErrorKind};
use durable_log::{
    AlarmChange, CommitLog, EncodedRecord, Head, LogRecord, ObjectName, PageImage, RecordKind,
    WalMark,
};
use durable_storage::{CommitFrames, DiskSpace};

use crate::commit::{CapturedCommit, CommitAck, CommitObserver};

/// A writer with nothing to append for this long tells its log it is idle
/// ([`CommitLog::idle`]: the local archive indexes what it appended).
const IDLE_AFTER: Duration = Duration::from_millis(100);

/// Commits one append carries at most.
const MAX_BATCH_COMMITS: usize = 4096;
/// Page bytes one append carries at most (a larger commit still goes, alone).
const MAX_BATCH_BYTES: usize = 32 << 20;

/// How the retention thread runs.
#[derive(Debug)]
pub(crate) struct RetentionSettings {
    /// Its own handle of the log.
    pub(crate) log: Arc<dyn CommitLog>,
    /// How much history is kept.
    pub(crate) window: Duration,
    /// How often it runs.
    pub(crate) every: Duration,
}

/// What the runtime knows of one object's history.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ObjectLog {
    /// Where its chain ends.
    pub(crate) head: Head,
    /// Where the head record's commit ended in the local WAL (`None`: the head record was
    /// not a local commit, or there is none).
    pub(crate) mark: Option<WalMark>,
    /// When the head record was taken.
    pub(crate) time_ms: i64,
    /// Commits queued or being appended.
    in_flight: u32,
    /// An append of it failed: commits of it still queued are refused, and its next open
    /// reconciles against the log, whose head is read back first.
    broken: bool,
    /// Its local database was matched against the log since this runtime started, and
    /// nothing happened since that could make them disagree.
    pub(crate) verified: bool,
}

impl ObjectLog {
    pub(crate) fn new(head: Head, mark: Option<WalMark>, time_ms: i64) -> Self {
        Self {
            head,
            mark,
            time_ms,
            in_flight: 0,
            broken: false,
            verified: true,
        }
    }
}

/// What the writer and the shard threads share.
#[derive(Debug, Default)]
struct Objects {
    map: Mutex<HashMap<ObjectName, ObjectLog>>,
    /// Told whenever an append finished: an open waiting for an object's queued commits.
    drained: Condvar,
}

enum Job {
    Commit {
        object: ObjectName,
        frames: CommitFrames,
        alarm: Option<Option<i64>>,
        ack: CommitAck,
    },
}

/// The runtime's side of its commit log.
pub(crate) struct History {
    log: Arc<dyn CommitLog>,
    objects: Arc<Objects>,
    /// One queue per writer thread; an object's commits always go to the same one (so at
    /// most one append of an object is in flight, in order).
    queues: Mutex<Option<Vec<Sender<Job>>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    clock: Arc<dyn Clock>,
    /// How long an open waits for an object's earlier commits to reach the log.
    pub(crate) storage_timeout: Duration,
    /// The data folder's disk, told when the log finds it full.
    space: Option<Arc<DiskSpace>>,
    /// The thread that folds history older than the window into snapshots.
    retention: super::retention::Retention,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").field("log", &self.log).finish()
    }
}

impl History {
    /// Starts one writer thread per handle of `writers` (the log itself for the local
    /// archive; several connections to PostgreSQL, whose appends of different objects then
    /// run at once), and the retention thread on `retention.log` (see
    /// [`RetentionSettings`]). `writers[0]` also serves reads.
    pub(crate) fn start(
        writers: Vec<Arc<dyn CommitLog>>,
        clock: Arc<dyn Clock>,
        storage_timeout: Duration,
        space: Option<Arc<DiskSpace>>,
        retention: RetentionSettings,
    ) -> std::io::Result<Arc<Self>> {
        let retention = super::retention::Retention::start(
            retention.log,
            Arc::clone(&clock),
            retention.window,
            retention.every,
        )?;
        let log = Arc::clone(writers.first().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "no commit log handle")
        })?);
        let objects = Arc::new(Objects::default());
        let mut queues = Vec::with_capacity(writers.len());
        let mut threads = Vec::with_capacity(writers.len());
        for (n, writer) in writers.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel();
            let thread = std::thread::Builder::new()
                .name(format!("commit log {n}"))
                .spawn({
                    let (objects, clock) = (Arc::clone(&objects), Arc::clone(&clock));
                    let space = space.clone();
                    move || {
                        loop {
                            let first = match rx.recv_timeout(IDLE_AFTER) {
                                Ok(first) => first,
                                Err(mpsc::RecvTimeoutError::Timeout) => {
                                    if let Err(error) = writer.idle() {
                                        tracing::warn!(%error, "the commit log's deferred work failed; it is tried again");
                                    }
                                    // Until the next job: told once per quiet spell.
                                    match rx.recv() {
                                        Ok(first) => first,
                                        Err(_) => break,
                                    }
                                }
                                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                            };
                            let jobs = gather(first, &rx);
                            write_batch(
                                &*writer,
                                &objects,
                                &*clock,
                                space.as_deref(),
                                // A quarter short of the storage timeout: the writer gives
                                // up first, so the outputs fail with its retryable error
                                // rather than the sweeper's "outcome unknown".
                                storage_timeout * 3 / 4,
                                jobs,
                            );
                        }
                    }
                })?;
            queues.push(tx);
            threads.push(thread);
        }
        Ok(Arc::new(Self {
            log,
            objects,
            queues: Mutex::new(Some(queues)),
            threads: Mutex::new(threads),
            clock,
            storage_timeout,
            space,
            retention,
        }))
    }

    /// Folds history older than the window into snapshots now (the retention thread does it
    /// every interval).
    pub(crate) fn compact_now(&self) -> Result<durable_log::CompactReport, Error> {
        self.retention.run_now()
    }

    /// The log.
    pub(crate) fn log(&self) -> &Arc<dyn CommitLog> {
        &self.log
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn objects(&self) -> MutexGuard<'_, HashMap<ObjectName, ObjectLog>> {
        lock(&self.objects.map)
    }

    /// What is known of `object` once none of its commits is queued any more: waits briefly
    /// for its queued commits to be appended (it runs on the object's shard thread, which
    /// other objects share: a longer wait, while the log is away, is the caller's to retry).
    /// `None` when it must be read from the log (first open, or an append of it failed).
    pub(crate) fn settled(&self, object: &ObjectName) -> Result<Option<ObjectLog>, Error> {
        let map = self.objects();
        let patience = self.storage_timeout.min(Duration::from_millis(200));
        let (map, timeout) = self
            .objects
            .drained
            .wait_timeout_while(map, patience, |map| {
                map.get(object).is_some_and(|entry| entry.in_flight > 0)
            })
            .unwrap_or_else(|e| e.into_inner());
        if timeout.timed_out() {
            return Err(Error::new(
                ErrorKind::Storage,
                "the object's earlier writes are still being written to its commit log; try again later",
            )
            .with_retryable(true));
        }
        Ok(map.get(object).filter(|entry| !entry.broken).copied())
    }

    /// Records what reconciling `object` found: its history now matches its database.
    pub(crate) fn set(&self, object: ObjectName, entry: ObjectLog) {
        self.objects().insert(object, entry);
    }

    /// The object's database closed: `settled` if every commit of it was acknowledged (the
    /// database and the log agree); otherwise its next open reconciles again.
    pub(crate) fn closed(&self, object: &ObjectName, settled: bool) {
        if !settled && let Some(entry) = self.objects().get_mut(object) {
            entry.verified = false;
        }
    }

    /// Where `object`'s history ends, as the runtime knows it.
    pub(crate) fn head(&self, object: &ObjectName) -> Option<ObjectLog> {
        self.objects().get(object).copied()
    }

    /// Appends `record` now, from the calling thread, once the object's queued commits are
    /// in (a first record, a restore written forward): the object is not open, so none
    /// follows it until this returns.
    pub(crate) fn append_now(&self, record: LogRecord) -> Result<ObjectLog, Error> {
        let encoded = record.to_encoded();
        // Briefly patient (a connection found lost after a restart is replaced at once): this
        // runs on the object's shard thread.
        let patience = (self.storage_timeout / 4).min(Duration::from_secs(1));
        append_patiently(&*self.log, std::slice::from_ref(&encoded), patience)
            .map_err(|e| append_failure(e, self.space.as_deref()))?;
        let entry = ObjectLog::new(
            Head {
                seq: encoded.seq,
                checksum: encoded.checksum,
            },
            record.wal,
            record.time_ms,
        );
        self.set(record.object, entry);
        Ok(entry)
    }

    /// Appends what is queued and stops the writers (the runtime is stopping; the shards
    /// made their last commits).
    pub(crate) fn stop(&self) {
        self.retention.stop();
        drop(lock(&self.queues).take());
        for thread in std::mem::take(&mut *lock(&self.threads)) {
            if thread.join().is_err() {
                tracing::error!("a commit log writer panicked");
            }
        }
    }
}

impl CommitObserver for History {
    fn committed(&self, commit: CapturedCommit, ack: CommitAck) {
        let object = super::object_name(commit.class(), commit.id());
        let alarm = commit.alarm();
        {
            let mut map = self.objects();
            let entry = map
                .entry(object.clone())
                .or_insert_with(|| ObjectLog::new(Head::EMPTY, None, 0));
            entry.in_flight += 1;
        }
        let job = Job::Commit {
            object,
            frames: commit.into_frames(),
            alarm,
            ack,
        };
        let queues = lock(&self.queues);
        match queues.as_ref().filter(|queues| !queues.is_empty()) {
            Some(queues) => {
                let Job::Commit { object, .. } = &job;
                let writer = writer_of(object, queues.len());
                if let Err(mpsc::SendError(job)) = queues[writer].send(job) {
                    refuse(&self.objects, job);
                }
            }
            None => refuse(&self.objects, job),
        }
    }
}

/// The writer an object's commits go to: always the same one.
fn writer_of(object: &ObjectName, writers: usize) -> usize {
    let mut hash = 0u64;
    for byte in object.id.iter().take(8) {
        hash = (hash << 8) | u64::from(*byte);
    }
    usize::try_from(hash % writers as u64).unwrap_or(0)
}

/// A commit the writer will never see (it stopped): failed, and its object marked broken.
fn refuse(objects: &Objects, job: Job) {
    let Job::Commit { object, ack, .. } = job;
    if let Some(entry) = lock(&objects.map).get_mut(&object) {
        entry.in_flight -= 1;
        entry.broken = true;
        entry.verified = false;
    }
    objects.drained.notify_all();
    ack.fail(Error::disconnected("the commit log writer has stopped"));
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The error the commits of a failed append get: retryable, for the log refused or lost
/// them and the object's next start undoes them locally; on a full disk, the disk-full
/// error (and the node's disk is marked full, which gives back its reserve).
pub(crate) fn append_failure(error: durable_log::LogError, space: Option<&DiskSpace>) -> Error {
    if let durable_log::LogError::NoSpace(message) = &error {
        if let Some(space) = space {
            space.on_write_failure();
        }
        return Error::disk_full(format!(
            "the disk is full: the write could not be stored in the object's commit log ({message}); free space, or delete data"
        ));
    }
    log_failure(error)
}

/// The error of a failed log operation: retryable.
pub(crate) fn log_failure(error: durable_log::LogError) -> Error {
    Error::new(
        ErrorKind::Storage,
        format!(
            "the write could not be stored in the object's commit log ({error}); it is undone when the object starts again"
        ),
    )
    .with_retryable(true)
}

/// `first` and whatever else is queued, up to one append's worth.
fn gather(first: Job, rx: &Receiver<Job>) -> Vec<Job> {
    let mut jobs = vec![first];
    let mut bytes = 0;
    while jobs.len() < MAX_BATCH_COMMITS && bytes < MAX_BATCH_BYTES {
        match rx.try_recv() {
            Ok(job) => {
                let Job::Commit { frames, .. } = &job;
                bytes += frames.bytes();
                jobs.push(job);
            }
            Err(_) => break,
        }
    }
    jobs
}

/// Numbers, appends and acknowledges one batch of commits.
fn write_batch(
    log: &dyn CommitLog,
    objects: &Objects,
    clock: &dyn Clock,
    space: Option<&DiskSpace>,
    patience: Duration,
    jobs: Vec<Job>,
) {
    let now = clock.now_ms();
    // Where each object's chain ends, read under the lock (only this thread moves heads,
    // and an object with commits queued is not reconciled): the records are built and
    // hashed outside it, so the shard threads queueing commits never wait on a hash.
    let mut heads: HashMap<ObjectName, Option<(Head, i64)>> = HashMap::new();
    {
        let map = lock(&objects.map);
        for Job::Commit { object, .. } in &jobs {
            heads.entry(object.clone()).or_insert_with(|| {
                map.get(object)
                    .filter(|entry| !entry.broken)
                    .map(|entry| (entry.head, entry.time_ms))
            });
        }
    }
    let mut records = Vec::with_capacity(jobs.len());
    let mut marks = Vec::with_capacity(jobs.len());
    let mut acks = Vec::with_capacity(jobs.len());
    let mut refused = Vec::new();
    for job in jobs {
        let Job::Commit {
            object,
            frames,
            alarm,
            ack,
        } = job;
        let Some(Some((head, last_ms))) = heads.get(&object).copied() else {
            refused.push((object, ack));
            continue;
        };
        let record = record_of(object, head, now.max(last_ms), frames, alarm);
        let encoded = record.to_encoded();
        heads.insert(
            encoded.object.clone(),
            Some((
                Head {
                    seq: encoded.seq,
                    checksum: encoded.checksum,
                },
                encoded.time_ms,
            )),
        );
        marks.push(record.wal);
        records.push(encoded);
        acks.push(ack);
    }
    let result = if records.is_empty() {
        Ok(())
    } else {
        append_patiently(log, &records, patience)
    };
    {
        let mut map = lock(&objects.map);
        for (object, _) in &refused {
            if let Some(entry) = map.get_mut(object) {
                entry.in_flight -= 1;
            }
        }
        for (record, mark) in records.iter().zip(&marks) {
            let Some(entry) = map.get_mut(&record.object) else {
                continue;
            };
            entry.in_flight -= 1;
            match &result {
                Ok(()) => {
                    entry.head = Head {
                        seq: record.seq,
                        checksum: record.checksum,
                    };
                    entry.mark = *mark;
                    entry.time_ms = record.time_ms;
                }
                Err(_) => {
                    entry.broken = true;
                    entry.verified = false;
                }
            }
        }
    }
    objects.drained.notify_all();
    for (object, ack) in refused {
        ack.fail(Error::new(
            ErrorKind::Storage,
            format!(
                "an earlier write of this {} object could not be stored in its commit log; this one is undone when the object starts again",
                object.class
            ),
        ).with_retryable(true));
    }
    match result {
        Ok(()) => acks.into_iter().for_each(CommitAck::acknowledge),
        Err(error) => {
            tracing::warn!(error = %error, commits = acks.len(), "appending to the commit log failed; the objects concerned reset");
            let failure = append_failure(error, space);
            for ack in acks {
                ack.fail(failure.clone());
            }
        }
    }
}

/// Appends `records`; while the log's store fails (PostgreSQL restarting, a network blip),
/// tries again with a growing pause for up to `patience` (most of the storage timeout: the
/// commits' outputs wait meanwhile), then gives up with the last error. Before each new try it reads
/// the heads back: an append whose answer was lost may have landed.
fn append_patiently(
    log: &dyn CommitLog,
    records: &[EncodedRecord],
    patience: Duration,
) -> Result<(), durable_log::LogError> {
    let mut result = log.append_encoded(records);
    if !matches!(result, Err(durable_log::LogError::Store(_))) {
        return result;
    }
    // Each object's head before the batch and after it.
    let mut runs: HashMap<&ObjectName, (Head, Head)> = HashMap::new();
    for record in records {
        let end = Head {
            seq: record.seq,
            checksum: record.checksum,
        };
        runs.entry(&record.object)
            .and_modify(|(_, last)| *last = end)
            .or_insert((
                Head {
                    seq: record.seq - 1,
                    checksum: record.prev,
                },
                end,
            ));
    }
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(20);
    while matches!(result, Err(durable_log::LogError::Store(_))) && started.elapsed() < patience {
        #[allow(clippy::disallowed_methods)] // The writer thread has nothing else to do.
        std::thread::sleep(pause.min(patience.saturating_sub(started.elapsed())));
        pause = (pause * 2).min(Duration::from_millis(500));
        let mut landed = 0;
        let mut untouched = 0;
        for (object, (start, end)) in &runs {
            match log.head(object) {
                Ok(head) if head == *end => landed += 1,
                Ok(head) if head == *start => untouched += 1,
                Ok(_) => {}
                // Still unreachable: wait on.
                Err(error) => {
                    result = Err(error);
                    break;
                }
            }
        }
        if landed == runs.len() {
            return Ok(());
        }
        if untouched == runs.len() {
            result = log.append_encoded(records);
        } else if landed + untouched == runs.len() {
            // Part of a batch landed: appends are all-or-nothing, so another writer moved
            // some heads. Nothing to retry.
            break;
        }
    }
    result
}

/// The record of one captured commit, after `head`.
fn record_of(
    object: ObjectName,
    head: Head,
    time_ms: i64,
    frames: CommitFrames,
    alarm: Option<Option<i64>>,
) -> LogRecord {
    let position = frames.position;
    let (page_size, db_pages) = (frames.page_size, frames.db_pages);
    // A page written twice in one commit: its last image.
    let mut latest: std::collections::BTreeMap<u32, Vec<u8>> = std::collections::BTreeMap::new();
    for frame in frames.frames {
        latest.insert(frame.page, frame.data);
    }
    LogRecord {
        object,
        seq: head.seq + 1,
        prev: head.checksum,
        kind: RecordKind::Commit,
        time_ms,
        page_size,
        db_pages,
        pages: latest
            .into_iter()
            .map(|(page, data)| PageImage { page, data })
            .collect(),
        alarm: match alarm {
            None => AlarmChange::Unchanged,
            Some(Some(time)) => AlarmChange::Set(time),
            Some(None) => AlarmChange::Cleared,
        },
        wal: Some(WalMark {
            salts: position.salts,
            frames: position.frame_count,
            checksum: position.checksum,
        }),
    }
}
