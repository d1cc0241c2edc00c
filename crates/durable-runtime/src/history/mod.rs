//! Every object's history: the commit log under the commit pipeline.
//!
//! [`History`] is the runtime's side of a [`CommitLog`] (the local archive in the data
//! folder by default, or PostgreSQL): it is the [`CommitObserver`](crate::commit::CommitObserver)
//! that turns each captured commit into the object's next [`LogRecord`] and appends it
//! (`writer`), holding the commit's outputs until the append is durable; and before an
//! object's database opens, it matches the local files against the log and repairs what
//! disagrees (`reconcile`): commits the log never took are cut, a database behind or
//! diverging from its log is rebuilt from it, a database without history gets a first
//! record holding all of it, and a restore asked for with
//! `on_next_session_restore_bookmark` is applied and written forward. Bookmarks
//! ([`Bookmark`](durable_log::Bookmark)) name points of an object's history for
//! point-in-time recovery; `retention` folds history older than the window into snapshots.
//!
//! The rule that makes repair possible: the database file never holds a commit its log
//! lacks (the commit pipeline checkpoints only acknowledged commits), so whatever the local
//! WAL holds past the log's head was never acknowledged to anyone.

mod reconcile;
mod retention;
mod writer;

pub(crate) use reconcile::Reconciled;
pub(crate) use writer::{History, RetentionSettings};

use std::path::Path;
use std::sync::Arc;

use durable_core::{Error, ErrorKind, ObjectId};
use durable_log::{Bookmark, Checksum, CommitLog, LocalArchive, LogError, ObjectName};
use durable_storage::DataLayout;

/// Where a runtime keeps its objects' history.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CommitLogSetting {
    /// No history: no point-in-time recovery, no repair of a damaged database from its log.
    Off,
    /// The local archive in the data folder (`<data>/log/`), the default.
    #[default]
    Local,
    /// PostgreSQL at this URL (`postgres://user:password@host:port/database`): every commit
    /// is in PostgreSQL before its outputs are released, so a reply implies the write is
    /// replicated. Run PostgreSQL with synchronous standbys for high availability.
    Postgres {
        /// The connection URL.
        url: String,
    },
}

impl CommitLogSetting {
    /// Opens the log this setting names for the data folder `layout` (`None` for `Off`).
    pub fn open(&self, layout: &DataLayout) -> Result<Option<Arc<dyn CommitLog>>, LogError> {
        Ok(match self {
            CommitLogSetting::Off => None,
            CommitLogSetting::Local => Some(Arc::new(
                LocalArchive::open(&layout.log_dir()).map_err(LogError::from)?,
            )),
            CommitLogSetting::Postgres { url } => {
                Some(Arc::new(durable_log::PostgresLog::connect(url)?))
            }
        })
    }
}

/// Writer threads (each with a connection of its own) appending to PostgreSQL: appends of
/// different objects run at once, so a node with many busy objects is not bound by one
/// round trip at a time.
pub(crate) const POSTGRES_WRITERS: usize = 4;

impl CommitLogSetting {
    /// The handles the writer threads append through, `log` first: the local archive
    /// appends through itself alone (its appends are one file's); PostgreSQL through
    /// [`POSTGRES_WRITERS`] connections.
    pub(crate) fn writers(
        &self,
        log: Arc<dyn CommitLog>,
    ) -> Result<Vec<Arc<dyn CommitLog>>, LogError> {
        let mut writers = vec![log];
        if let CommitLogSetting::Postgres { url } = self {
            for _ in 1..POSTGRES_WRITERS {
                writers.push(Arc::new(durable_log::PostgresLog::connect(url)?));
            }
        }
        Ok(writers)
    }
}

impl CommitLogSetting {
    /// The handle the retention thread works through: the local archive itself (one
    /// archive, one appender); for PostgreSQL a connection of its own, so folding a large
    /// history never holds up a writer.
    pub(crate) fn maintenance(
        &self,
        log: &Arc<dyn CommitLog>,
    ) -> Result<Arc<dyn CommitLog>, LogError> {
        Ok(match self {
            CommitLogSetting::Postgres { url } => Arc::new(durable_log::PostgresLog::connect(url)?),
            _ => Arc::clone(log),
        })
    }
}

/// The log's name for an object.
pub(crate) fn object_name(class: &str, id: &ObjectId) -> ObjectName {
    ObjectName {
        class: class.to_owned(),
        id: *id.as_bytes(),
    }
}

/// The WAL file of the database at `db`.
fn wal_of(db: &Path) -> std::path::PathBuf {
    DataLayout::wal_of(db)
}

/// Point-in-time recovery: bookmarks of an object's history.
impl History {
    /// The bookmark of `object`'s last record (its database must have been opened, so the
    /// runtime knows its head).
    pub(crate) fn current_bookmark(&self, object: &ObjectName) -> Result<Bookmark, Error> {
        self.head(object)
            .map(|entry| Bookmark::of_head(entry.head))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Internal,
                    "the object's history is not known yet (its database is not open)",
                )
            })
    }

    /// The bookmark of `object`'s state at `time_ms`: its last record taken at or before
    /// then (the empty object before its first). Times in the future, or older than
    /// `window` before now, are refused.
    pub(crate) fn bookmark_for_time(
        &self,
        object: &ObjectName,
        time_ms: i64,
        window: std::time::Duration,
    ) -> Result<Bookmark, Error> {
        let now = self.now_ms();
        let oldest = now.saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
        if time_ms > now || time_ms < oldest {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{time_ms} is outside the history window: use a time from {oldest} (now minus the {} days kept) to {now} (now), in milliseconds since the Unix epoch",
                    window.as_secs() / 86_400
                ),
            ));
        }
        let at = self
            .log()
            .record_at_time(object, time_ms)
            .map_err(writer::log_failure)?;
        Ok(at.map_or(Bookmark::new(0, Checksum::GENESIS), |at| {
            Bookmark::new(at.seq, at.checksum)
        }))
    }

    /// Checks that `bookmark` names a point of `object`'s history.
    pub(crate) fn check_bookmark(
        &self,
        object: &ObjectName,
        bookmark: Bookmark,
    ) -> Result<(), Error> {
        let head = self.current_bookmark(object)?;
        let not_ours = || {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the bookmark {bookmark} is not a point of this object's history (its history ends at {head})"
                ),
            )
        };
        if bookmark.seq > head.seq {
            return Err(not_ours());
        }
        let start = self
            .log()
            .history_start(object)
            .map_err(writer::log_failure)?;
        if let Some(start) = start.filter(|start| bookmark.seq < start.seq) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the bookmark {bookmark} is older than the history this object keeps, which starts at {} (older history is folded away once it leaves the history window)",
                    Bookmark::new(start.seq, start.checksum)
                ),
            ));
        }
        if bookmark.seq == 0 {
            return (bookmark.checksum == Checksum::GENESIS)
                .then_some(())
                .ok_or_else(not_ours);
        }
        let record = self
            .log()
            .records(object, bookmark.seq, bookmark.seq)
            .map_err(writer::log_failure)?;
        match record.first() {
            Some(record) if record.checksum() == bookmark.checksum => Ok(()),
            _ => Err(not_ours()),
        }
    }
}
