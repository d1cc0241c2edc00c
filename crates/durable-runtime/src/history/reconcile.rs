//! Matching an object's local database against its log before SQLite opens it, and
//! repairing what disagrees.
//!
//! The log's head record carries a [`WalMark`]: where its commit ended in the object's WAL.
//! Because the database file never holds a commit its log lacks (only acknowledged commits
//! are checkpointed), the local files can only be:
//!
//! - **in step**: the WAL ends at the mark, or holds more commits after it (never
//!   acknowledged to anyone: they are cut), or was checkpointed and emptied (the database
//!   file then holds the head's pages, which is checked);
//! - **behind** (a lost or truncated WAL, a power cut that took a tail the log has) or
//!   **diverging** (a garbled WAL, a database file that is not the head's): the database is
//!   rebuilt from the log, never served stale;
//! - **without history**: a database the log has no record of (the log was added later, or
//!   lost) gets a first record holding all of it; a log whose object has no database (a lost
//!   disk) rebuilds it.
//!
//! A restore asked for with `on_next_session_restore_bookmark` is applied here too, after
//! the match: the database as it was at the bookmark is written forward as a `Restore`
//! record, then installed. Everything here runs on the object's shard thread while the
//! object is closed; the slow cases (a rebuild, a restore) are rare and logged.

use std::path::Path;

use durable_core::{Error, ErrorKind};
use durable_log::{Bookmark, Head, LogRecord, ObjectName, RecordKind, WalMark};
use durable_storage::{DataLayout, WalCut, WalPosition};

use super::writer::{History, ObjectLog, log_failure};

/// What reconciling did to the local database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reconciled {
    /// The database was left as it was (commits the log never took may have been cut).
    Kept,
    /// The database was rebuilt from the log or restored: its stored alarm may have
    /// changed, so the alarm index must learn it.
    Replaced,
}

fn storage(message: String) -> Error {
    Error::new(ErrorKind::Storage, message)
}

impl History {
    /// Matches the database at `db` against `object`'s log and repairs it; then applies a
    /// restore asked for. The object must be closed.
    pub(crate) fn reconcile(&self, object: &ObjectName, db: &Path) -> Result<Reconciled, Error> {
        let mut outcome = Reconciled::Kept;
        let mut entry = match self.settled(object)? {
            Some(entry) if entry.verified => entry,
            _ => {
                // An object this runtime saw start without history, whose first commits the
                // log then refused: everything in its database was refused (and reported
                // failed, retryably). It starts empty.
                if self.head(object).is_some_and(|known| known.head.seq == 0)
                    && self.log().head(object).map_err(log_failure)?.seq == 0
                {
                    discard_database(db)?;
                }
                let (entry, replaced) = self.match_with_log(object, db)?;
                if replaced {
                    outcome = Reconciled::Replaced;
                }
                entry
            }
        };
        self.set(object.clone(), entry);
        let request = DataLayout::restore_request_of(db);
        if let Some(target) = read_request(&request)? {
            entry = self.restore(object, db, entry, target)?;
            self.set(object.clone(), entry);
            std::fs::remove_file(&request)
                .map_err(|e| storage(format!("remove {}: {e}", request.display())))?;
            outcome = Reconciled::Replaced;
        }
        Ok(outcome)
    }

    /// Reads the object's head from the log and brings the local database in step with it.
    /// True if the database was replaced.
    fn match_with_log(&self, object: &ObjectName, db: &Path) -> Result<(ObjectLog, bool), Error> {
        let log = self.log();
        let head = log.head(object).map_err(log_failure)?;
        let who = format!("{} {}", object.class, hex(&object.id));
        if head.seq == 0 {
            return self.first_record(object, db).map(|entry| (entry, false));
        }
        let record = log
            .records(object, head.seq, head.seq)
            .map_err(log_failure)?
            .pop()
            .ok_or_else(|| {
                storage(format!(
                    "the commit log names record {} as the head of {who} but does not hold it",
                    head.seq
                ))
            })?;
        let entry = ObjectLog::new(head, record.wal, record.time_ms);
        if !db.exists() {
            tracing::warn!(object = %who, records = head.seq, "the object's database is missing; rebuilding it from its commit log");
            self.rebuild(object, db, head.seq)?;
            return Ok((entry, true));
        }
        let wal = super::wal_of(db);
        let cut = match record.wal {
            Some(mark) => durable_storage::cut_wal_after(&wal, &position(mark))
                .map_err(|e| storage(format!("read the WAL of {who}: {e}")))?,
            None => WalCut::OtherGeneration { frames: 0 },
        };
        let in_step = match cut {
            WalCut::Nothing if wal_has_frames(&wal, record.wal) => true,
            WalCut::Cut { dropped } => {
                tracing::info!(object = %who, frames = dropped, "cut commits its commit log never took from the object's WAL");
                durable_storage::forget_shared_memory(db).map_err(|e| storage(e.to_string()))?;
                true
            }
            // No WAL past the head's generation: the database file must be the head's.
            WalCut::Nothing | WalCut::OtherGeneration { .. } => {
                durable_storage::discard_wal(db).map_err(|e| storage(e.to_string()))?;
                holds_record(db, &record)?
            }
            WalCut::Behind { .. } | WalCut::Diverged => false,
        };
        if in_step {
            return Ok((entry, false));
        }
        tracing::warn!(object = %who, cut = ?cut, records = head.seq, "the object's database is behind or diverges from its commit log; rebuilding it from the log");
        self.rebuild(object, db, head.seq)?;
        Ok((entry, true))
    }

    /// An object without records: its database (if any) becomes its first record, whole.
    fn first_record(&self, object: &ObjectName, db: &Path) -> Result<ObjectLog, Error> {
        let Some(settled) =
            durable_storage::settle_database(db).map_err(|e| storage(e.to_string()))?
        else {
            // A new object: its first commit is its first record.
            return Ok(ObjectLog::new(Head::EMPTY, None, 0));
        };
        if settled.bytes.is_empty() {
            return Ok(ObjectLog::new(Head::EMPTY, None, 0));
        }
        tracing::info!(object = %format!("{} {}", object.class, hex(&object.id)), bytes = settled.bytes.len(), "the object has no history yet; its database becomes its first record");
        let record = LogRecord::whole(
            object,
            Head::EMPTY,
            self.now_ms(),
            RecordKind::Commit,
            settled.page_size,
            &settled.bytes,
        );
        self.append_now(record)
    }

    /// Rebuilds the database at `db` from records `1..=upto` of `object`.
    fn rebuild(&self, object: &ObjectName, db: &Path, upto: u64) -> Result<(), Error> {
        let image = self.image_at(object, upto, None)?;
        durable_storage::install_database(db, &image).map_err(|e| storage(e.to_string()))
    }

    /// The database as it was after record `upto` (checked against `checksum` if given).
    pub(crate) fn image_at(
        &self,
        object: &ObjectName,
        upto: u64,
        checksum: Option<durable_log::Checksum>,
    ) -> Result<Vec<u8>, Error> {
        let (image, head) =
            durable_log::image_at(self.log().as_ref(), object, upto).map_err(log_failure)?;
        if checksum.is_some_and(|sum| sum != head.checksum) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the bookmark {} is not a point of this object's history",
                    Bookmark::new(upto, checksum.unwrap_or(head.checksum))
                ),
            ));
        }
        Ok(image)
    }

    /// Applies a restore to `target`: the database as it was then becomes a `Restore`
    /// record after the head, and the local database.
    fn restore(
        &self,
        object: &ObjectName,
        db: &Path,
        entry: ObjectLog,
        target: Bookmark,
    ) -> Result<ObjectLog, Error> {
        let image = self.image_at(object, target.seq, Some(target.checksum))?;
        let page_size = self
            .log()
            .records(object, entry.head.seq, entry.head.seq)
            .map_err(log_failure)?
            .first()
            .map_or(4096, |r| r.page_size);
        let record = LogRecord::whole(
            object,
            entry.head,
            self.now_ms().max(entry.time_ms),
            RecordKind::Restore,
            page_size,
            &image,
        );
        let entry = self.append_now(record)?;
        durable_storage::install_database(db, &image).map_err(|e| storage(e.to_string()))?;
        tracing::info!(object = %format!("{} {}", object.class, hex(&object.id)), bookmark = %target, "restored the object to a bookmark");
        Ok(entry)
    }
}

/// Removes the database at `db`, its WAL and shared memory.
fn discard_database(db: &Path) -> Result<(), Error> {
    for file in [
        db.to_path_buf(),
        DataLayout::wal_of(db),
        DataLayout::shm_of(db),
    ] {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(storage(format!("remove {}: {e}", file.display()))),
        }
    }
    Ok(())
}

/// The bookmark a restore request file names, if there is one.
fn read_request(path: &Path) -> Result<Option<Bookmark>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| storage(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(storage(format!("read {}: {e}", path.display()))),
    }
}

fn position(mark: WalMark) -> WalPosition {
    WalPosition {
        salts: mark.salts,
        checkpoint_seq: 0,
        frame_count: mark.frames,
        checksum: mark.checksum,
    }
}

/// True if the WAL at `wal` holds valid frames of the mark's generation (`cut_wal_after`
/// says `Nothing` both for a WAL that ends exactly at the mark and for one with no frame).
fn wal_has_frames(wal: &Path, mark: Option<WalMark>) -> bool {
    let Some(mark) = mark else {
        return false;
    };
    if mark.frames == 0 {
        return false;
    }
    std::fs::metadata(wal).is_ok_and(|meta| meta.len() > 32)
        && durable_storage::wal_salts(wal).ok().flatten() == Some(mark.salts)
}

/// True if the database file at `db` (its WAL aside) is exactly as `record` left it: its
/// size, and every page the record wrote.
fn holds_record(db: &Path, record: &LogRecord) -> Result<bool, Error> {
    let pages: Vec<u32> = record.pages.iter().map(|p| p.page).collect();
    let found = durable_storage::read_file_pages(db, record.page_size, &pages)
        .map_err(|e| storage(e.to_string()))?;
    Ok(
        found.len == u64::from(record.db_pages) * u64::from(record.page_size)
            && record
                .pages
                .iter()
                .zip(found.pages)
                .all(|(page, found)| found.as_deref() == Some(page.data.as_slice())),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
