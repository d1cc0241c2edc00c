//! Making commits durable: the per-object [`WalFile`] and the [`DurabilityWorker`] threads
//! that fsync it.
//!
//! Commits run with `synchronous=NORMAL`: SQLite writes the WAL but does not fsync it. Each
//! commit publishes its sequence number on the object's [`WalFile`]; a worker thread then
//! `fdatasync`s the WAL and reports the highest sequence number the sync covers. One fsync
//! covers every commit published before it started (group commit inside an object), and the
//! object's thread never waits for the disk. When several objects wait at once, a worker
//! takes all of them and makes one `syncfs` of the data folder's filesystem instead of one
//! fsync each (group commit across objects: on a journaling filesystem each fsync of a
//! growing file costs a journal commit, and those are serialised). Checkpoints (copying the
//! WAL into the database file) keep SQLite's own fsyncs.
//!
//! Why this is safe: SQLite replays, after a crash, exactly the transactions whose WAL frames
//! reached the disk with valid checksums, and a transaction's frames are written before its
//! commit returns. So once an fsync that started after commit *n* returned, commits up to *n*
//! survive a crash, whole.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::error::{CommitError, IoFailure, WalError};

/// `statfs`'s filesystem type of FUSE mounts.
const FUSE_SUPER_MAGIC: u64 = 0x6573_5546;

/// Told when a WAL is durable up to a sequence number, or that syncing it failed.
pub type DurableCallback = Arc<dyn Fn(Result<u64, CommitError>) + Send + Sync>;

/// The WAL of one open object database, as the durability worker sees it.
pub struct WalFile {
    path: PathBuf,
    /// Shared with the database's WAL reader (the capture point reads commits through it):
    /// one descriptor per WAL, not two.
    file: Arc<File>,
    /// False on filesystems where `syncfs` does not reach the disk (FUSE: the kernel does
    /// not pass it to the server); such a WAL is always synced by itself.
    syncfs_reaches_disk: bool,
    committed: AtomicU64,
    synced: AtomicU64,
    syncing: AtomicBool,
    notify: DurableCallback,
}

impl std::fmt::Debug for WalFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalFile")
            .field("path", &self.path)
            .field("committed", &self.committed_seq())
            .field("synced", &self.synced_seq())
            .finish()
    }
}

impl WalFile {
    /// The WAL at `path` (created empty if SQLite has not written it yet), with its
    /// descriptor open for fsync.
    pub(crate) fn open(path: PathBuf, notify: DurableCallback) -> Result<Self, WalError> {
        let fail = |err: io::Error| WalError::Io {
            path: path.clone(),
            source: IoFailure::new(err),
        };
        let created = !path.exists();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(fail)?;
        if created && let Some(dir) = path.parent() {
            // Syncing the WAL's data would not save its name: the folder must be synced.
            crate::dirs::sync_dir(dir).map_err(fail)?;
        }
        let syncfs_reaches_disk =
            rustix::fs::fstatfs(&file).map_or(true, |stat| stat.f_type as u64 != FUSE_SUPER_MAGIC);
        Ok(Self {
            path,
            file: Arc::new(file),
            syncfs_reaches_disk,
            committed: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            syncing: AtomicBool::new(false),
            notify,
        })
    }

    /// The sequence number of the last commit.
    pub fn committed_seq(&self) -> u64 {
        self.committed.load(Ordering::SeqCst)
    }

    /// The highest commit sequence number known to be on disk.
    pub fn synced_seq(&self) -> u64 {
        self.synced.load(Ordering::SeqCst)
    }

    pub(crate) fn publish_commit(&self, seq: u64) {
        self.committed.store(seq, Ordering::SeqCst);
    }

    /// Records that commits up to `seq` are durable without a worker (they were fsynced by
    /// the commit itself).
    pub(crate) fn mark_synced(&self, seq: u64) {
        self.synced.fetch_max(seq, Ordering::SeqCst);
        (self.notify)(Ok(seq));
    }

    fn with_file<T>(&self, f: impl FnOnce(&File) -> io::Result<T>) -> io::Result<T> {
        f(&self.file)
    }

    /// The WAL's descriptor, for reading it.
    pub(crate) fn shared_file(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }
}

struct Queue {
    /// WALs to sync, and whether the worker is stopping.
    jobs: Mutex<(VecDeque<Arc<WalFile>>, bool)>,
    ready: Condvar,
    /// Syncs still to fail on purpose (tests of the failure path).
    fail_next: AtomicU64,
    /// While true, syncs hang before they start (tests of a disk that stops answering).
    stalled: Mutex<bool>,
    unstalled: Condvar,
    stats: SyncStats,
}

/// Upper bounds, in seconds, of the fsync latency histogram's buckets.
pub const SYNC_LATENCY_BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0,
];

/// A latency histogram of the worker's syncs (one `fdatasync` or `syncfs` each).
#[derive(Debug, Default)]
pub struct SyncStats {
    count: AtomicU64,
    micros: AtomicU64,
    buckets: [AtomicU64; SYNC_LATENCY_BUCKETS.len()],
}

/// A copy of [`SyncStats`] at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncStatsSnapshot {
    /// Syncs done.
    pub count: u64,
    /// Their total time, in seconds.
    pub sum_seconds: f64,
    /// Cumulative counts per bucket of [`SYNC_LATENCY_BUCKETS`].
    pub buckets: Vec<u64>,
}

impl SyncStats {
    fn record(&self, elapsed: std::time::Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.micros.fetch_add(micros, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in SYNC_LATENCY_BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn snapshot(&self) -> SyncStatsSnapshot {
        SyncStatsSnapshot {
            count: self.count.load(Ordering::Relaxed),
            sum_seconds: self.micros.load(Ordering::Relaxed) as f64 / 1e6,
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// Threads that fsync object WALs on request.
pub struct DurabilityWorker {
    queue: Arc<Queue>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for DurabilityWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurabilityWorker")
            .field("threads", &self.threads.len())
            .finish()
    }
}

impl DurabilityWorker {
    /// Starts `threads` worker threads.
    pub fn start(threads: usize) -> io::Result<Self> {
        let queue = Arc::new(Queue {
            jobs: Mutex::new((VecDeque::new(), false)),
            ready: Condvar::new(),
            fail_next: AtomicU64::new(0),
            stalled: Mutex::new(false),
            unstalled: Condvar::new(),
            stats: SyncStats::default(),
        });
        let mut handles = Vec::new();
        for index in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            handles.push(
                std::thread::Builder::new()
                    .name(format!("durable-fsync-{index}"))
                    .spawn(move || run(&queue))?,
            );
        }
        Ok(Self {
            queue,
            threads: handles,
        })
    }

    /// Makes the next `count` syncs fail as if the disk had reported an I/O error, to test
    /// what callers see when a write cannot be made durable.
    #[doc(hidden)]
    pub fn inject_sync_failures(&self, count: u64) {
        self.queue.fail_next.fetch_add(count, Ordering::SeqCst);
    }

    /// Makes syncs hang before they start while `stalled` (as a disk that stops answering
    /// would), to test what callers see when durability takes too long.
    #[doc(hidden)]
    pub fn stall_syncs(&self, stalled: bool) {
        *self.queue.stalled.lock().unwrap_or_else(|e| e.into_inner()) = stalled;
        self.queue.unstalled.notify_all();
    }

    /// Injected failures not yet used.
    #[doc(hidden)]
    pub fn injected_sync_failures_left(&self) -> u64 {
        self.queue.fail_next.load(Ordering::SeqCst)
    }

    /// The latency histogram of the syncs done so far.
    pub fn sync_stats(&self) -> SyncStatsSnapshot {
        self.queue.stats.snapshot()
    }

    /// Asks for `wal` to be synced up to its latest published commit. Cheap when a sync of
    /// it is already under way: that sync loops until it has covered every commit.
    pub fn request_sync(&self, wal: &Arc<WalFile>) {
        if wal.syncing.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut jobs = self.queue.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.0.push_back(Arc::clone(wal));
        self.queue.ready.notify_one();
    }
}

impl Drop for DurabilityWorker {
    fn drop(&mut self) {
        self.queue.jobs.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.queue.ready.notify_all();
        self.stall_syncs(false);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Most WALs one worker takes for one `syncfs`.
const MAX_BATCH: usize = 256;

fn run(queue: &Queue) {
    loop {
        let batch: Vec<Arc<WalFile>> = {
            let mut jobs = queue.jobs.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if !jobs.0.is_empty() {
                    let take = jobs.0.len().min(MAX_BATCH);
                    break jobs.0.drain(..take).collect();
                }
                if jobs.1 {
                    return;
                }
                jobs = queue.ready.wait(jobs).unwrap_or_else(|e| e.into_inner());
            }
        };
        {
            let stalled = queue.stalled.lock().unwrap_or_else(|e| e.into_inner());
            let _released = queue
                .unstalled
                .wait_while(stalled, |stalled| *stalled)
                .unwrap_or_else(|e| e.into_inner());
        }
        let injected = queue
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        // Capture each WAL's target before syncing: only commits published before the sync
        // started are covered by it.
        let targets: Vec<u64> = batch.iter().map(|wal| wal.committed_seq()).collect();
        let started = std::time::Instant::now();
        let one_by_one = batch.len() == 1 || batch.iter().any(|wal| !wal.syncfs_reaches_disk);
        let results: Vec<Result<(), IoFailure>> = if injected {
            let failure = IoFailure::new(io::Error::other("injected fsync failure"));
            vec![Err(failure); batch.len()]
        } else if one_by_one {
            batch
                .iter()
                .map(|wal| wal.with_file(File::sync_data).map_err(IoFailure::new))
                .collect()
        } else {
            let synced = batch[0]
                .with_file(|file| rustix::fs::syncfs(file).map_err(io::Error::from))
                .map_err(IoFailure::new);
            vec![synced; batch.len()]
        };
        queue.stats.record(started.elapsed());
        for ((wal, target), synced) in batch.iter().zip(targets).zip(results) {
            match &synced {
                Ok(()) => {
                    wal.synced.fetch_max(target, Ordering::SeqCst);
                    (wal.notify)(Ok(target));
                }
                // Logged where it is handled: the object that owns the WAL resets.
                Err(err) => (wal.notify)(Err(CommitError::Sync {
                    path: wal.path.clone(),
                    source: err.clone(),
                })),
            }
            wal.syncing.store(false, Ordering::SeqCst);
            // A commit published while we synced needs another round, unless a new request
            // already queued the WAL.
            if synced.is_ok()
                && wal.committed_seq() > wal.synced_seq()
                && !wal.syncing.swap(true, Ordering::SeqCst)
            {
                let mut jobs = queue.jobs.lock().unwrap_or_else(|e| e.into_inner());
                jobs.0.push_back(Arc::clone(wal));
                queue.ready.notify_one();
            }
        }
    }
}
