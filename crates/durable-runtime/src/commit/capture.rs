//! The capture point: where every durable write of every object can be observed, and held.
//!
//! Each commit of each object is handed, right after SQLite committed it and before any
//! output that depends on it is released, to the runtime's [`CommitObserver`] (if one is
//! installed with `RuntimeBuilder::commit_observer`). The observer gets the object, the
//! commit's sequence number and the WAL frames the commit wrote ([`CapturedCommit`]), and a
//! [`CommitAck`]. Replies, outgoing calls and WebSocket messages that depend on the commit
//! leave only once the commit is fsynced *and* the observer acknowledged it; an observer
//! that fails the commit (or drops the acknowledgement) resets the object, as a failed fsync
//! does. This is the seam a commit log or a replica plugs into.
//!
//! The observer is called on the object's shard thread, in commit order for each object, so
//! it must not block: hand the commit to a queue or a thread and acknowledge from there
//! (from any thread).

use std::fmt;
use std::sync::Arc;

use durable_core::{Error, ErrorKind, ObjectId};
use durable_storage::CommitFrames;

use super::signal::DurabilitySignal;

/// Watches every commit of every object before its outputs are released.
///
/// ```
/// use durable_objects::commit::{CapturedCommit, CommitAck, CommitObserver};
///
/// /// Counts pages written, and lets every commit through at once.
/// #[derive(Debug, Default)]
/// struct PageCounter(std::sync::atomic::AtomicUsize);
///
/// impl CommitObserver for PageCounter {
///     fn committed(&self, commit: CapturedCommit, ack: CommitAck) {
///         let pages = commit.frames().pages().len();
///         self.0.fetch_add(pages, std::sync::atomic::Ordering::Relaxed);
///         ack.acknowledge();
///     }
/// }
/// ```
pub trait CommitObserver: Send + Sync + fmt::Debug + 'static {
    /// Called on the object's thread right after each commit, in commit order per object.
    /// The commit's outputs wait until `ack` is acknowledged; it may be answered later and
    /// from any thread, but this call itself must not block.
    fn committed(&self, commit: CapturedCommit, ack: CommitAck);
}

/// One commit of one object, as the capture point sees it.
#[derive(Debug)]
pub struct CapturedCommit {
    pub(crate) class: &'static str,
    pub(crate) id: ObjectId,
    pub(crate) seq: u64,
    pub(crate) frames: CommitFrames,
    pub(crate) alarm: Option<Option<i64>>,
}

impl CapturedCommit {
    /// The object's class (its namespace).
    pub fn class(&self) -> &'static str {
        self.class
    }

    /// The object's id.
    pub fn id(&self) -> &ObjectId {
        &self.id
    }

    /// The commit's sequence number: 1, 2, 3, ... for each time the object's database is
    /// opened (it starts again at 1 after an eviction or a restart). Commits that changed no
    /// page (a `CREATE TABLE IF NOT EXISTS` of a table that exists) are not shown, so the
    /// observer may see gaps. The WAL position in [`frames`](Self::frames) places the commit
    /// in the object's WAL across reopenings.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The WAL frames the commit wrote: page images, checked against the WAL's checksums.
    pub fn frames(&self) -> &CommitFrames {
        &self.frames
    }

    /// The frames, taken out.
    pub fn into_frames(self) -> CommitFrames {
        self.frames
    }

    /// The object's stored alarm after the commit, if the commit changed it (`Some(None)`:
    /// the commit removed it).
    pub fn alarm(&self) -> Option<Option<i64>> {
        self.alarm
    }
}

/// The acknowledgement a [`CommitObserver`] owes for one commit. Answer it once; dropping it
/// unanswered fails the commit.
pub struct CommitAck {
    signal: Option<Arc<DurabilitySignal>>,
    seq: u64,
}

impl fmt::Debug for CommitAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommitAck").field("seq", &self.seq).finish()
    }
}

impl CommitAck {
    pub(crate) fn new(signal: Arc<DurabilitySignal>, seq: u64) -> Self {
        Self {
            signal: Some(signal),
            seq,
        }
    }

    /// The sequence number of the commit this acknowledges.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The observer has done its part: the commit's outputs may leave once it is fsynced.
    pub fn acknowledge(mut self) {
        if let Some(signal) = self.signal.take() {
            signal.acknowledge(self.seq);
        }
    }

    /// The observer could not take the commit: the object is reset, and every output that
    /// waits for this commit (or a later one) fails with `error`.
    pub fn fail(mut self, error: Error) {
        if let Some(signal) = self.signal.take() {
            signal.fail(error.context(format!(
                "the object was reset because the commit observer failed commit {}",
                self.seq
            )));
        }
    }
}

impl Drop for CommitAck {
    fn drop(&mut self) {
        if let Some(signal) = self.signal.take() {
            signal.fail(Error::new(
                ErrorKind::Storage,
                format!(
                    "the object was reset because the commit observer dropped its acknowledgement of commit {} unanswered",
                    self.seq
                ),
            ));
        }
    }
}
