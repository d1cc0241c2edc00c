//! Retention: keeping an object's history for a window of time, and no more.
//!
//! Point-in-time recovery promises every point of the last *window* (30 days by default).
//! The state at the window's start is the object's last record taken at or before it, so
//! everything older can be folded into one [`Snapshot`] of the database after that record:
//! [`compact_object`] builds it (from the previous snapshot and the records after), and the
//! log stores it and drops the records it covers ([`CommitLog::put_snapshot`]); then
//! [`CommitLog::reclaim`] frees their space. History is never rewritten: the snapshot's record
//! keeps its number and checksum, so every bookmark inside the window still names the same
//! point, and the chain after it still verifies.
//!
//! A snapshot costs a whole database, so an object is compacted only once what would leave
//! the log is worth it: its records up to the new start weigh at least half its image. An
//! object with a small history over a large database keeps some records past the window (the
//! runtime still refuses points outside it) instead of rewriting its database every run.

use crate::chain::Head;
use crate::image::image_at;
use crate::log::{CommitLog, LogError, ReclaimReport};
use crate::record::ObjectName;
use crate::snapshot::Snapshot;

/// What [`compact_object`] did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compaction {
    /// Nothing older than the window, or not enough to be worth a snapshot.
    Kept,
    /// The history now starts at record `start`; `records` records (of `bytes` bytes) left
    /// the log for a snapshot of `image_bytes`.
    Compacted {
        /// The record the history now starts at.
        start: u64,
        /// Records folded into the snapshot.
        records: u64,
        /// Their encoded bytes.
        bytes: u64,
        /// The snapshot's database bytes.
        image_bytes: u64,
    },
}

/// What [`compact`] did to a whole log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactReport {
    /// Objects looked at.
    pub objects: usize,
    /// Objects whose history now starts at a new snapshot.
    pub compacted: usize,
    /// Records folded into snapshots.
    pub records: u64,
    /// Their encoded bytes.
    pub bytes: u64,
    /// What [`CommitLog::reclaim`] freed afterwards.
    pub reclaimed: ReclaimReport,
}

/// Folds `object`'s records taken before `keep_from_ms` into a snapshot at its last record
/// taken at or before then, if that is worth it (see the module's doc).
pub fn compact_object(
    log: &dyn CommitLog,
    object: &ObjectName,
    keep_from_ms: i64,
) -> Result<Compaction, LogError> {
    let Some(target) = log.record_at_time(object, keep_from_ms)? else {
        return Ok(Compaction::Kept);
    };
    let start = log.history_start(object)?.map_or(0, |start| start.seq);
    if target.seq <= start {
        return Ok(Compaction::Kept);
    }
    // What leaves the log: the records after the current start, up to the new one (the old
    // snapshot's record goes with its snapshot).
    let leaving = log.records(object, start + 1, target.seq)?;
    let bytes: u64 = leaving.iter().map(|r| r.encode().len() as u64).sum();
    let (image, head) = image_at(log, object, target.seq)?;
    if head
        != (Head {
            seq: target.seq,
            checksum: target.checksum,
        })
    {
        return Err(LogError::Damaged(format!(
            "record {} of {} is not the one the log's index names",
            target.seq, object.class
        )));
    }
    if bytes.saturating_mul(2) < image.len() as u64 {
        return Ok(Compaction::Kept);
    }
    let record = leaving.into_iter().last().ok_or_else(|| {
        LogError::Damaged(format!("no record {} of {}", target.seq, object.class))
    })?;
    let image_bytes = image.len() as u64;
    log.put_snapshot(&Snapshot { record, image })?;
    Ok(Compaction::Compacted {
        start: target.seq,
        records: target.seq - start,
        bytes,
        image_bytes,
    })
}

/// [`compact_object`] for every object of `log`, then [`CommitLog::reclaim`]. `progress` is
/// told each object's outcome as it is done.
pub fn compact(
    log: &dyn CommitLog,
    keep_from_ms: i64,
    mut progress: impl FnMut(&ObjectName, Compaction),
) -> Result<CompactReport, LogError> {
    let mut report = CompactReport::default();
    for object in log.objects()? {
        let outcome = compact_object(log, &object, keep_from_ms)?;
        report.objects += 1;
        if let Compaction::Compacted { records, bytes, .. } = outcome {
            report.compacted += 1;
            report.records += records;
            report.bytes += bytes;
        }
        progress(&object, outcome);
    }
    report.reclaimed = log.reclaim()?;
    Ok(report)
}
