//! The [`CommitLog`] seam: what any home of the records offers (the local archive, and
//! PostgreSQL), so the runtime, restores and the verifier use one interface and one test
//! suite checks every implementation.
//!
//! It is synchronous: a log is driven by a writer thread of its own, which gathers the
//! commits of many objects into one append (group commit) and keeps at most one append of an
//! object in flight.

use std::fmt;

use crate::chain::{ChainError, Head};
use crate::record::{Checksum, EncodedRecord, LogRecord, ObjectName};
use crate::snapshot::Snapshot;

/// Where a record sits in an object's history: what point-in-time recovery looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordTime {
    /// The record's number.
    pub seq: u64,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Its checksum (with `seq`, its [`Bookmark`](crate::Bookmark)).
    pub checksum: Checksum,
}

/// What [`CommitLog::reclaim`] freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReclaimReport {
    /// Files removed (segments no retained record lies in, replaced snapshots).
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// What [`CommitLog::verify`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Objects checked.
    pub objects: usize,
    /// Records read and checked.
    pub records: u64,
    /// Their encoded bytes.
    pub bytes: u64,
    /// Snapshots read and checked (objects whose history starts at one).
    pub snapshots: usize,
}

/// Why a log refused or failed an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// An append does not continue an object's chain (nothing of it was written).
    #[error("record {seq} of {class} does not continue its chain: {source}")]
    Chain {
        /// The object's class.
        class: String,
        /// The record's number.
        seq: u64,
        /// How it breaks the chain.
        source: ChainError,
    },
    /// The log's own store failed (a file, a database); the operation may be retried.
    #[error("{0}")]
    Store(String),
    /// Stored records are damaged.
    #[error("{0}")]
    Damaged(String),
    /// The disk under the log is full: nothing was written; it may be retried once space is
    /// freed.
    #[error("{0}")]
    NoSpace(String),
    /// The log holds something that contradicts what is being stored (another namespace
    /// key for a class: the log belongs to another data folder).
    #[error("{0}")]
    Conflict(String),
    /// A point of history older than what the log retains was asked for: its records were
    /// compacted into a snapshot taken later.
    #[error(
        "record {seq} of {class} is older than its retained history, which starts at record {start} (older records were compacted away: the history window has passed)"
    )]
    BeforeHistory {
        /// The object's class.
        class: String,
        /// The record asked for.
        seq: u64,
        /// The first record the log still holds (its snapshot's).
        start: u64,
    },
}

/// The check [`CommitLog::put_class_key`] makes: the key stored for `class` (if any) against
/// the one being stored.
pub(crate) fn check_class_key(
    class: &str,
    stored: Option<&str>,
    key_hex: &str,
) -> Result<bool, LogError> {
    match stored {
        None => Ok(true),
        Some(stored) if stored.eq_ignore_ascii_case(key_hex) => Ok(false),
        Some(_) => Err(LogError::Conflict(format!(
            "the commit log holds another namespace key for class {class}: it belongs to another data folder (use a log of its own for each data folder)"
        ))),
    }
}

/// A home for the records of many objects.
pub trait CommitLog: Send + Sync + fmt::Debug {
    /// Appends `records` (of any objects, each object's in order, continuing its head) as one
    /// durable step: when this returns `Ok`, all of them are stored; when it returns an
    /// error, none is. A record that does not continue its object's chain refuses the whole
    /// append with [`LogError::Chain`].
    fn append(&self, records: &[LogRecord]) -> Result<(), LogError> {
        let encoded: Vec<EncodedRecord> = records.iter().map(LogRecord::to_encoded).collect();
        self.append_encoded(&encoded)
    }

    /// [`append`](Self::append), of records already encoded (each hashed once, by whoever
    /// numbered it).
    fn append_encoded(&self, records: &[EncodedRecord]) -> Result<(), LogError>;

    /// Told by a writer that no append is waiting: a log that defers work (the local archive
    /// indexes appended records in batches) does it now, so readers in other processes (a
    /// backup) see every appended record soon. Nothing by default.
    fn idle(&self) -> Result<(), LogError> {
        Ok(())
    }

    /// Where `object`'s chain ends ([`Head::EMPTY`] for an object without records).
    fn head(&self, object: &ObjectName) -> Result<Head, LogError>;

    /// The records of `object` numbered `from..=to` that the log retains, in order: when
    /// the object's history starts at a snapshot, its record is the first one there is
    /// (records before it were compacted away).
    fn records(&self, object: &ObjectName, from: u64, to: u64) -> Result<Vec<LogRecord>, LogError>;

    /// Where `object`'s retained history starts: its snapshot's record (`None`: at its first
    /// record, nothing was compacted).
    fn history_start(&self, object: &ObjectName) -> Result<Option<RecordTime>, LogError>;

    /// `object`'s snapshot (its database after its first retained record), if it has one.
    fn snapshot(&self, object: &ObjectName) -> Result<Option<Snapshot>, LogError>;

    /// Makes `snapshot` the start of its object's retained history: it is stored, and the
    /// records up to its own are dropped. Its record must be one the log holds (the same
    /// number and checksum), at or after the current start; anything else is refused with
    /// [`LogError::Conflict`] and changes nothing.
    fn put_snapshot(&self, snapshot: &Snapshot) -> Result<(), LogError>;

    /// Frees the space that dropped records and replaced snapshots held (the local archive
    /// removes segment files no retained record lies in). Nothing by default.
    fn reclaim(&self) -> Result<ReclaimReport, LogError> {
        Ok(ReclaimReport::default())
    }

    /// The last record of `object` taken at or before `time_ms` that the log retains (its
    /// snapshot's record counts), if any.
    fn record_at_time(
        &self,
        object: &ObjectName,
        time_ms: i64,
    ) -> Result<Option<RecordTime>, LogError>;

    /// Every object with records.
    fn objects(&self) -> Result<Vec<ObjectName>, LogError>;

    /// The namespace keys the log holds, by class (64 hex digits each): an object's id is
    /// derived from its name with its class's key, so a data folder rebuilt from the log
    /// needs them to find its objects by name.
    fn class_keys(&self) -> Result<Vec<(String, String)>, LogError>;

    /// Stores the namespace key of `class`. A class keeps its first key: storing another
    /// one is refused with [`LogError::Conflict`] (the log belongs to another data folder).
    fn put_class_key(&self, class: &str, key_hex: &str) -> Result<(), LogError>;

    /// Removes the namespace key of `class` (the class was deleted or renamed): a class
    /// created again under the name gets a new key, so the old objects' history (which stays)
    /// is never found by name again.
    fn forget_class_key(&self, class: &str) -> Result<(), LogError>;

    /// Reads every record back and checks every object's chain, from its first retained
    /// record (its snapshot's, whose image is checked too) to its head.
    fn verify(&self) -> Result<VerifyReport, LogError> {
        let mut report = VerifyReport::default();
        for object in self.objects()? {
            let mut start = Head::EMPTY;
            if let Some(at) = self.history_start(&object)? {
                let snapshot = self.snapshot(&object)?.ok_or_else(|| {
                    LogError::Damaged(format!(
                        "the history of {} starts at a snapshot the log does not hold",
                        object.class
                    ))
                })?;
                if snapshot.head()
                    != (Head {
                        seq: at.seq,
                        checksum: at.checksum,
                    })
                {
                    return Err(LogError::Damaged(format!(
                        "the snapshot of {} is not the one its history starts at (record {})",
                        object.class, at.seq
                    )));
                }
                start = snapshot.head();
                report.snapshots += 1;
                report.bytes += snapshot.image.len() as u64;
            }
            let records = self.records(&object, start.seq + 1, u64::MAX)?;
            let head = crate::chain::verify_chain(&object, start, &records).map_err(|source| {
                LogError::Chain {
                    class: object.class.clone(),
                    seq: records.last().map_or(0, |r| r.seq),
                    source,
                }
            })?;
            let stored = self.head(&object)?;
            if head != stored {
                return Err(LogError::Chain {
                    class: object.class.clone(),
                    seq: head.seq,
                    source: ChainError::Gap {
                        expected: head.seq + 1,
                        found: stored.seq,
                    },
                });
            }
            report.objects += 1;
            report.records += records.len() as u64;
            report.bytes += records.iter().map(|r| r.encode().len() as u64).sum::<u64>();
        }
        Ok(report)
    }
}
