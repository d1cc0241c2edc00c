//! The commit log's records: what one commit of one object changed, and how records chain.
//!
//! Every commit of an object becomes a [`LogRecord`]: the page images the commit wrote (taken
//! at the runtime's capture point, checked against the WAL's own checksums), the database's
//! size after it, the alarm change, and its place in the object's history: a sequence number
//! that never restarts (1, 2, 3, ... over the object's whole life) and the [`Checksum`] of its
//! predecessor. A record's own checksum covers everything in it, its predecessor's checksum
//! included, so the records of one object form a chain: a missing record is a gap, two
//! records that claim the same predecessor are a fork, and an altered record breaks every
//! link after it ([`chain`] checks all three).
//!
//! Records are page images, not logical changes, so schema changes, snapshots and restores
//! compose: applying an object's records in order to an empty file (or to a snapshot taken
//! at record *n*, then the records after *n*) rebuilds its database byte for byte
//! ([`image`]). A [`segment`] is records written one after another, as an archive file or a
//! stream holds them; reading one tells a torn tail (a write cut short) from damage.
//!
//! The format and its rules ([`record`], [`chain`], [`image`], [`segment`]) are plain
//! functions of bytes: no I/O, no clock (a record's time is given to it), no threads.
//! [`log`] is the seam every home of the records implements ([`CommitLog`]); [`archive`] is
//! the node's own log on disk ([`LocalArchive`]: segment files and an index), which does I/O;
//! `postgres` (feature `postgres`) is `PostgresLog`, the records in PostgreSQL.
//! [`retention`] keeps each object's history for a window and folds what is older into a
//! [`snapshot`]; the runtime's `history` module writes the records and drives retention.

pub mod archive;
pub mod bookmark;
pub mod chain;
pub mod image;
pub mod log;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod record;
pub mod retention;
pub mod segment;
pub mod snapshot;

pub use archive::{
    ArchiveError, CopyReport, LocalArchive, RecordPlace, ScanReport, copy_archive, scan,
};
pub use bookmark::{Bookmark, BookmarkError};
pub use chain::{ChainError, Head, verify_chain};
pub use image::{DatabaseImage, ImageError, image_at};
pub use log::{CommitLog, LogError, ReclaimReport, RecordTime, VerifyReport};
#[cfg(feature = "postgres")]
pub use postgres::PostgresLog;
pub use record::{
    AlarmChange, Checksum, DecodeError, EncodedRecord, LogRecord, ObjectName, PageImage,
    RecordKind, WalMark,
};
pub use retention::{CompactReport, Compaction, compact, compact_object};
pub use segment::{SegmentEnd, SegmentEntry, read_segment, read_segment_entries};
pub use snapshot::Snapshot;
