//! [`LocalArchive`]: the node's own commit log, in its data folder.
//!
//! Records of every object go, in the order they are appended, into numbered segment files
//! (`segments/00000000000000000001.seg`, rolled past [`SEGMENT_BYTES`]): one file written
//! sequentially and one fsync per append, however many objects the append holds. The
//! segments are the truth. An index (`index.sqlite`: which record of which object lies where,
//! with its time and checksum) makes an object's history readable without a scan. An append
//! is acknowledged once its segment bytes are synced; the index takes appended records in
//! batches, off that path (when [`INDEX_BATCH`] are waiting, when anything reads it, when the
//! writer is idle, at close), so after a crash it may lag: opening the archive indexes what
//! the segments hold beyond it, and cuts a torn tail off the last segment (a record whose
//! write was cut short was never acknowledged as archived). Damage anywhere else is an
//! error, never skipped.
//!
//! An append continues each object's chain from its head (the chain rule of [`crate::chain`]);
//! one that does not is refused whole, before anything is written.
//!
//! Retention ([`crate::retention`]) folds an object's old records into a snapshot file
//! (`snapshots/<class hex>-<id hex>-<record>.snap`, written and synced before the index names
//! it); the index then forgets the records it covers, in a transaction synced before any
//! file is removed. [`reclaim`](CommitLog::reclaim) removes the segments no retained record
//! lies in (never the one being appended to). So a crash at any point leaves either the old
//! history or the new one, and a file the index names is never missing.
//!
//! Unlike the format modules, this one does I/O; it is synchronous (a writer thread calls it).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::chain::{ChainError, Head};
use crate::log::{CommitLog, LogError, ReclaimReport, RecordTime};
use crate::record::{Checksum, DecodeError, EncodedRecord, LogRecord, ObjectName};
use crate::segment::{SegmentEnd, read_segment_entries};
use crate::snapshot::Snapshot;

/// A segment is closed and the next one started once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Appended records the index takes at once (earlier when something reads it, or the
/// writer is idle: [`CommitLog::idle`]).
pub const INDEX_BATCH: usize = 2048;

/// What can go wrong in the archive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// A file of the archive could not be read or written.
    #[error("archive file {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The index could not be read or written.
    #[error("archive index: {0}")]
    Index(#[from] rusqlite::Error),
    /// An append does not continue an object's chain.
    #[error("record {seq} of {class} does not continue its chain: {source}")]
    Chain {
        /// The object's class.
        class: String,
        /// The record's number.
        seq: u64,
        /// How it breaks the chain.
        source: ChainError,
    },
    /// A snapshot was refused: it is not of a record the archive holds, or it would move
    /// the history's start back.
    #[error("{0}")]
    Refused(String),
    /// A segment holds bytes that are not records (not at its end, where a crash leaves a
    /// torn tail).
    #[error(
        "segment {} is damaged at byte {offset}: {error}; the records after it cannot be trusted",
        path.display()
    )]
    Damaged {
        /// The segment.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What the decoder found.
        error: DecodeError,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where one record lies, as the index has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPlace {
    /// The record's number.
    pub seq: u64,
    /// Its time, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Its checksum.
    pub checksum: Checksum,
    /// The segment that holds it.
    pub segment: u64,
    /// Where it starts in the segment.
    pub offset: u64,
    /// Its encoded length.
    pub len: u64,
}

/// The node's commit log in a folder of its data folder.
#[derive(Debug)]
pub struct LocalArchive {
    dir: PathBuf,
    segment_bytes: u64,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    index: Connection,
    /// The segment being appended to: its number, file and length.
    segment: u64,
    file: File,
    len: u64,
    heads: HashMap<ObjectName, Head>,
    /// Records appended (durable in their segment) that the index does not hold yet.
    pending: Vec<(ObjectName, RecordPlace)>,
    /// How far each segment those records lie in is indexed once they are.
    pending_ends: Vec<(u64, u64)>,
}

impl LocalArchive {
    /// Opens (or creates) the archive in `dir`: indexes what the segments hold beyond the
    /// index and cuts a torn tail off the last segment.
    pub fn open(dir: &Path) -> Result<Self, ArchiveError> {
        Self::open_with_segment_bytes(dir, SEGMENT_BYTES)
    }

    /// [`open`](Self::open), rolling segments past `segment_bytes` instead of
    /// [`SEGMENT_BYTES`].
    pub fn open_with_segment_bytes(dir: &Path, segment_bytes: u64) -> Result<Self, ArchiveError> {
        let segments_dir = dir.join("segments");
        create_dir_durably(&segments_dir)?;
        let index_path = dir.join("index.sqlite");
        let index = Connection::open(&index_path)?;
        index.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS records (
                 class TEXT NOT NULL, id BLOB NOT NULL, seq INTEGER NOT NULL,
                 time_ms INTEGER NOT NULL, checksum INTEGER NOT NULL,
                 segment INTEGER NOT NULL, offset INTEGER NOT NULL, len INTEGER NOT NULL,
                 PRIMARY KEY (class, id, seq)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS segments (
                 segment INTEGER PRIMARY KEY, indexed_len INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS class_keys (
                 class TEXT PRIMARY KEY, key TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS snapshots (
                 class TEXT NOT NULL, id BLOB NOT NULL, seq INTEGER NOT NULL,
                 time_ms INTEGER NOT NULL, checksum INTEGER NOT NULL, file TEXT NOT NULL,
                 PRIMARY KEY (class, id)) WITHOUT ROWID;",
        )?;
        let snapshots_dir = dir.join("snapshots");
        create_dir_durably(&snapshots_dir)?;
        adopt_snapshots(&index, &snapshots_dir)?;
        let starts = snapshot_starts(&index)?;
        let mut numbers = segment_numbers(&segments_dir)?;
        if numbers.is_empty() {
            numbers.push(1);
            create_segment(&segments_dir, 1)?;
        }
        let last = *numbers.last().unwrap_or(&1);
        for &number in &numbers {
            catch_up(&index, &segments_dir, number, number == last, &starts)?;
        }
        let path = segment_path(&segments_dir, last);
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let len = file.metadata().map_err(io(&path))?.len();
        let heads = read_heads(&index)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            segment_bytes: segment_bytes.max(1),
            inner: Mutex::new(Inner {
                index,
                segment: last,
                file,
                len,
                heads,
                pending: Vec::new(),
                pending_ends: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The archive, its index holding every appended record: what every reader of the index
    /// takes.
    fn indexed(&self) -> Result<std::sync::MutexGuard<'_, Inner>, ArchiveError> {
        let mut inner = self.lock();
        flush_index(&mut inner)?;
        Ok(inner)
    }

    /// Brings the index up to the segments now (appends index their records in batches).
    pub fn flush_index(&self) -> Result<(), ArchiveError> {
        self.indexed().map(drop)
    }

    /// Appends `records` (of any objects; each object's in order, continuing its head),
    /// durably: when this returns `Ok`, they are synced to disk. A record that does not
    /// continue its object's chain refuses the whole append, and nothing is written.
    pub fn append(&self, records: &[LogRecord]) -> Result<(), ArchiveError> {
        let encoded: Vec<EncodedRecord> = records.iter().map(LogRecord::to_encoded).collect();
        self.append_encoded(&encoded)
    }

    /// [`append`](Self::append), of records already encoded.
    pub fn append_encoded(&self, records: &[EncodedRecord]) -> Result<(), ArchiveError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut inner = self.lock();
        // Check every link first: a refused append writes nothing.
        let mut heads: HashMap<&ObjectName, Head> = HashMap::new();
        for record in records {
            let head = heads
                .get(&record.object)
                .copied()
                .or_else(|| inner.heads.get(&record.object).copied())
                .unwrap_or(Head::EMPTY);
            let next = head
                .follow(record.seq, record.prev, record.checksum)
                .map_err(|source| ArchiveError::Chain {
                    class: record.object.class.clone(),
                    seq: record.seq,
                    source,
                })?;
            heads.insert(&record.object, next);
        }
        if inner.len >= self.segment_bytes {
            self.roll(&mut inner)?;
        }
        let segment = inner.segment;
        let path = segment_path(&self.segments_dir(), segment);
        let mut bytes = Vec::with_capacity(records.iter().map(|r| r.bytes.len()).sum());
        let mut places = Vec::with_capacity(records.len());
        for record in records {
            places.push((
                record.object.clone(),
                RecordPlace {
                    seq: record.seq,
                    time_ms: record.time_ms,
                    checksum: record.checksum,
                    segment,
                    offset: inner.len + bytes.len() as u64,
                    len: record.bytes.len() as u64,
                },
            ));
            bytes.extend_from_slice(&record.bytes);
        }
        let written = inner
            .file
            .write_all(&bytes)
            .and_then(|()| inner.file.sync_data());
        if let Err(error) = written {
            // A part may have been written: cut it off, so the next append starts where the
            // index says the segment ends (if that fails too, the next open cuts the torn
            // tail).
            let _ = inner.file.set_len(inner.len);
            return Err(io(&path)(error));
        }
        let len = inner.len + bytes.len() as u64;
        // Durable now. The index learns of them later, many appends at once (it may lag the
        // segments anyway: opening catches it up from them).
        inner.pending.extend(places);
        match inner.pending_ends.last_mut() {
            Some((last, end)) if *last == segment => *end = len,
            _ => inner.pending_ends.push((segment, len)),
        }
        inner.len = len;
        for (object, head) in heads {
            inner.heads.insert(object.clone(), head);
        }
        if inner.pending.len() >= INDEX_BATCH {
            // A failure here leaves them pending: the next read, or the next batch, tries
            // again (and reports it).
            let _ = flush_index(&mut inner);
        }
        Ok(())
    }

    fn segments_dir(&self) -> PathBuf {
        self.dir.join("segments")
    }

    fn snapshots_dir(&self) -> PathBuf {
        self.dir.join("snapshots")
    }

    /// The snapshot row of `object`: its record's place in history and its file's name.
    fn snapshot_row(
        &self,
        object: &ObjectName,
    ) -> Result<Option<(RecordTime, String)>, ArchiveError> {
        self.snapshot_row_locked(&*self.indexed()?, object)
    }

    fn snapshot_row_locked(
        &self,
        inner: &Inner,
        object: &ObjectName,
    ) -> Result<Option<(RecordTime, String)>, ArchiveError> {
        let row = inner
            .index
            .prepare_cached(
                "SELECT seq, time_ms, checksum, file FROM snapshots WHERE class = ?1 AND id = ?2",
            )?
            .query_row(params![object.class, object.id.as_slice()], |row| {
                Ok((
                    RecordTime {
                        seq: row.get::<_, i64>(0)? as u64,
                        time_ms: row.get(1)?,
                        checksum: Checksum(row.get::<_, i64>(2)? as u64),
                    },
                    row.get::<_, String>(3)?,
                ))
            })
            .optional()?;
        Ok(row)
    }

    /// The record of the snapshot in `file`, read without its image.
    fn read_snapshot_record(&self, file: &str) -> Result<LogRecord, ArchiveError> {
        read_snapshot_record_at(&self.snapshots_dir().join(file))
    }

    /// The snapshot in `file`, checked.
    fn read_snapshot(&self, file: &str) -> Result<Snapshot, ArchiveError> {
        let path = self.snapshots_dir().join(file);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        Snapshot::decode(&bytes).map_err(|error| ArchiveError::Damaged {
            path: path.clone(),
            offset: 0,
            error,
        })
    }

    /// [`CommitLog::put_snapshot`]: the file is written and synced, then one synced index
    /// transaction names it and forgets the records it covers, then the file it replaces is
    /// removed.
    pub fn put_snapshot(&self, snapshot: &Snapshot) -> Result<(), ArchiveError> {
        let object = snapshot.object();
        let at = snapshot.record_time();
        let previous = self.snapshot_row(object)?;
        let refused = |reason: String| ArchiveError::Refused(reason);
        if previous
            .as_ref()
            .is_some_and(|(start, _)| start.seq > at.seq)
        {
            return Err(refused(format!(
                "a snapshot at record {} of {} would move its history back (it starts at record {})",
                at.seq,
                object.class,
                previous.as_ref().map_or(0, |(start, _)| start.seq)
            )));
        }
        let held = match &previous {
            Some((start, _)) if start.seq == at.seq => Some(start.checksum),
            _ => self
                .places(object, at.seq)?
                .first()
                .filter(|place| place.seq == at.seq)
                .map(|place| place.checksum),
        };
        if held != Some(at.checksum) {
            return Err(refused(format!(
                "the snapshot's record {} of {} is not one the archive holds",
                at.seq, object.class
            )));
        }
        let dir = self.snapshots_dir();
        let file = format!(
            "{}-{}-{:020}.snap",
            hex(object.class.as_bytes()),
            hex(&object.id),
            at.seq
        );
        let temporary = dir.join(format!("{file}.tmp"));
        let path = dir.join(&file);
        (|| {
            let mut out = File::create(&temporary)?;
            out.write_all(&snapshot.encode())?;
            out.sync_all()?;
            std::fs::rename(&temporary, &path)
        })()
        .map_err(io(&path))?;
        sync_dir(&dir)?;
        {
            let inner = self.indexed()?;
            // Synced: the files this makes unneeded are removed after it, and must never be
            // named by an index a power cut took back.
            inner.index.execute_batch("PRAGMA synchronous = FULL")?;
            let done = (|| -> Result<(), ArchiveError> {
                let tx = inner.index.unchecked_transaction()?;
                start_history_at(&tx, object, at, &file)?;
                tx.commit()?;
                Ok(())
            })();
            inner.index.execute_batch("PRAGMA synchronous = NORMAL")?;
            done?;
        }
        if let Some((_, old)) = previous.filter(|(_, old)| *old != file) {
            remove_if_there(&dir.join(old))?;
        }
        Ok(())
    }

    /// [`CommitLog::reclaim`]: removes every segment before the one being appended to that
    /// holds no retained record.
    pub fn reclaim(&self) -> Result<ReclaimReport, ArchiveError> {
        let inner = self.indexed()?;
        let live: std::collections::HashSet<u64> = {
            let mut statement = inner
                .index
                .prepare("SELECT DISTINCT segment FROM records")?;
            let rows = statement.query_map([], |row| row.get::<_, i64>(0))?;
            rows.map(|row| row.map(|n| n as u64))
                .collect::<Result<_, _>>()?
        };
        let dir = self.segments_dir();
        let mut report = ReclaimReport::default();
        let mut removed = Vec::new();
        for number in segment_numbers(&dir)? {
            if number >= inner.segment || live.contains(&number) {
                continue;
            }
            let path = segment_path(&dir, number);
            report.bytes += std::fs::metadata(&path).map_err(io(&path))?.len();
            remove_if_there(&path)?;
            report.files += 1;
            removed.push(number as i64);
        }
        if removed.is_empty() {
            return Ok(report);
        }
        sync_dir(&dir)?;
        // The files went first: a crash between leaves rows of segments that are gone, which
        // opening ignores (it reads the segments there are).
        let mut statement = inner
            .index
            .prepare_cached("DELETE FROM segments WHERE segment = ?1")?;
        for number in removed {
            statement.execute([number])?;
        }
        Ok(report)
    }

    fn roll(&self, inner: &mut Inner) -> Result<(), ArchiveError> {
        let next = inner.segment + 1;
        let path = create_segment(&self.segments_dir(), next)?;
        inner.file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        inner.segment = next;
        inner.len = 0;
        Ok(())
    }

    /// Where `object`'s chain ends.
    pub fn head(&self, object: &ObjectName) -> Head {
        self.lock()
            .heads
            .get(object)
            .copied()
            .unwrap_or(Head::EMPTY)
    }

    /// Every object the archive holds records of.
    pub fn objects(&self) -> Vec<ObjectName> {
        let mut objects: Vec<ObjectName> = self.lock().heads.keys().cloned().collect();
        objects.sort();
        objects
    }

    /// Where each record of `object` from number `from` on lies, in order.
    pub fn places(&self, object: &ObjectName, from: u64) -> Result<Vec<RecordPlace>, ArchiveError> {
        self.places_locked(&*self.indexed()?, object, from)
    }

    fn places_locked(
        &self,
        inner: &Inner,
        object: &ObjectName,
        from: u64,
    ) -> Result<Vec<RecordPlace>, ArchiveError> {
        let mut statement = inner.index.prepare_cached(
            "SELECT seq, time_ms, checksum, segment, offset, len FROM records
             WHERE class = ?1 AND id = ?2 AND seq >= ?3 ORDER BY seq",
        )?;
        let rows = statement.query_map(
            params![object.class, object.id.as_slice(), from as i64],
            place_of_row,
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// The last record of `object` taken at or before `time_ms`, if any.
    pub fn place_at_time(
        &self,
        object: &ObjectName,
        time_ms: i64,
    ) -> Result<Option<RecordPlace>, ArchiveError> {
        let inner = self.indexed()?;
        let place = inner
            .index
            .query_row(
                "SELECT seq, time_ms, checksum, segment, offset, len FROM records
                 WHERE class = ?1 AND id = ?2 AND time_ms <= ?3 ORDER BY seq DESC LIMIT 1",
                params![object.class, object.id.as_slice(), time_ms],
                place_of_row,
            )
            .optional()?;
        Ok(place)
    }

    /// The records of `object` numbered `from..=to` (its snapshot's record first when it lies
    /// there), read from the segments and checked against the index (number, checksum,
    /// object).
    pub fn records(
        &self,
        object: &ObjectName,
        from: u64,
        to: u64,
    ) -> Result<Vec<LogRecord>, ArchiveError> {
        match self.records_once(object, from, to) {
            // A compaction that ran meanwhile removed a file the index named a moment ago:
            // ask the index again.
            Err(ArchiveError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                self.records_once(object, from, to)
            }
            other => other,
        }
    }

    fn records_once(
        &self,
        object: &ObjectName,
        from: u64,
        to: u64,
    ) -> Result<Vec<LogRecord>, ArchiveError> {
        // One look at the index (under its lock) for both: a compaction in between would
        // otherwise hand out its new snapshot's record twice.
        let (start, places) = {
            let inner = self.indexed()?;
            let places: Vec<RecordPlace> = self
                .places_locked(&inner, object, from)?
                .into_iter()
                .take_while(|place| place.seq <= to)
                .collect();
            (self.snapshot_row_locked(&inner, object)?, places)
        };
        let segments_dir = self.segments_dir();
        let mut out = Vec::with_capacity(places.len() + 1);
        if let Some((start, file)) = start
            && (from..=to).contains(&start.seq)
        {
            out.push(self.read_snapshot_record(&file)?);
        }
        for place in places {
            let path = segment_path(&segments_dir, place.segment);
            let mut file = File::open(&path).map_err(io(&path))?;
            file.seek(SeekFrom::Start(place.offset))
                .map_err(io(&path))?;
            let mut bytes = vec![0u8; place.len as usize];
            file.read_exact(&mut bytes).map_err(io(&path))?;
            let damaged = |error| ArchiveError::Damaged {
                path: path.clone(),
                offset: place.offset,
                error,
            };
            let (record, _) = LogRecord::decode(&bytes).map_err(damaged)?;
            // Decoding checked the content against the checksum in the header: compare that.
            let mut stored = [0u8; 8];
            stored.copy_from_slice(&bytes[9..17]);
            if record.seq != place.seq
                || &record.object != object
                || Checksum(u64::from_le_bytes(stored)) != place.checksum
            {
                return Err(damaged(DecodeError::Malformed {
                    reason: format!("the index says record {} lies here", place.seq),
                }));
            }
            out.push(record);
        }
        Ok(out)
    }
}

impl Drop for LocalArchive {
    fn drop(&mut self) {
        // What is still pending is in the segments: the next open indexes it if this fails.
        let _ = flush_index(self.inner.get_mut().unwrap_or_else(|e| e.into_inner()));
    }
}

impl CommitLog for LocalArchive {
    fn append_encoded(&self, records: &[EncodedRecord]) -> Result<(), LogError> {
        LocalArchive::append_encoded(self, records).map_err(LogError::from)
    }

    fn idle(&self) -> Result<(), LogError> {
        self.flush_index().map_err(LogError::from)
    }

    fn head(&self, object: &ObjectName) -> Result<Head, LogError> {
        Ok(LocalArchive::head(self, object))
    }

    fn records(&self, object: &ObjectName, from: u64, to: u64) -> Result<Vec<LogRecord>, LogError> {
        LocalArchive::records(self, object, from, to).map_err(LogError::from)
    }

    fn record_at_time(
        &self,
        object: &ObjectName,
        time_ms: i64,
    ) -> Result<Option<RecordTime>, LogError> {
        if let Some(place) = self.place_at_time(object, time_ms)? {
            return Ok(Some(RecordTime {
                seq: place.seq,
                time_ms: place.time_ms,
                checksum: place.checksum,
            }));
        }
        // Before every retained record: the snapshot's, if it is old enough.
        Ok(self
            .snapshot_row(object)?
            .map(|(start, _)| start)
            .filter(|start| start.time_ms <= time_ms))
    }

    fn history_start(&self, object: &ObjectName) -> Result<Option<RecordTime>, LogError> {
        Ok(self.snapshot_row(object)?.map(|(start, _)| start))
    }

    fn snapshot(&self, object: &ObjectName) -> Result<Option<Snapshot>, LogError> {
        let Some((start, file)) = self.snapshot_row(object)? else {
            return Ok(None);
        };
        let snapshot = self.read_snapshot(&file)?;
        if snapshot.record_time() != start || snapshot.object() != object {
            return Err(LogError::Damaged(format!(
                "snapshot file {file} does not hold record {} of {}",
                start.seq, object.class
            )));
        }
        Ok(Some(snapshot))
    }

    fn put_snapshot(&self, snapshot: &Snapshot) -> Result<(), LogError> {
        LocalArchive::put_snapshot(self, snapshot).map_err(LogError::from)
    }

    fn reclaim(&self) -> Result<ReclaimReport, LogError> {
        LocalArchive::reclaim(self).map_err(LogError::from)
    }

    fn objects(&self) -> Result<Vec<ObjectName>, LogError> {
        Ok(LocalArchive::objects(self))
    }

    fn class_keys(&self) -> Result<Vec<(String, String)>, LogError> {
        let inner = self.lock();
        let mut statement = inner
            .index
            .prepare("SELECT class, key FROM class_keys ORDER BY class")
            .map_err(ArchiveError::from)?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(ArchiveError::from)?;
        Ok(rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(ArchiveError::from)?)
    }

    fn forget_class_key(&self, class: &str) -> Result<(), LogError> {
        self.lock()
            .index
            .execute("DELETE FROM class_keys WHERE class = ?1", params![class])
            .map_err(ArchiveError::from)?;
        Ok(())
    }

    fn put_class_key(&self, class: &str, key_hex: &str) -> Result<(), LogError> {
        let inner = self.lock();
        let stored: Option<String> = inner
            .index
            .query_row(
                "SELECT key FROM class_keys WHERE class = ?1",
                params![class],
                |row| row.get(0),
            )
            .optional()
            .map_err(ArchiveError::from)?;
        if crate::log::check_class_key(class, stored.as_deref(), key_hex)? {
            inner
                .index
                .execute(
                    "INSERT INTO class_keys (class, key) VALUES (?1, ?2)",
                    params![class, key_hex],
                )
                .map_err(ArchiveError::from)?;
        }
        Ok(())
    }
}

impl ArchiveError {
    /// True when the disk under the archive is full.
    pub fn is_no_space(&self) -> bool {
        match self {
            ArchiveError::Io { source, .. } => {
                source.kind() == std::io::ErrorKind::StorageFull
                    || source.kind() == std::io::ErrorKind::QuotaExceeded
            }
            ArchiveError::Index(error) => {
                error.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
            }
            _ => false,
        }
    }
}

impl From<ArchiveError> for LogError {
    fn from(error: ArchiveError) -> Self {
        if error.is_no_space() {
            return LogError::NoSpace(error.to_string());
        }
        match error {
            ArchiveError::Chain { class, seq, source } => LogError::Chain { class, seq, source },
            ArchiveError::Damaged { .. } => LogError::Damaged(error.to_string()),
            ArchiveError::Refused(reason) => LogError::Conflict(reason),
            other => LogError::Store(other.to_string()),
        }
    }
}

/// What [`scan`] found in an archive folder.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanReport {
    /// Segments read.
    pub segments: usize,
    /// Objects with records.
    pub objects: usize,
    /// Records read.
    pub records: u64,
    /// Their bytes.
    pub bytes: u64,
    /// A record cut short at the end of the last segment (segment number, byte): what a
    /// crash during an append leaves, never acknowledged; opening the archive cuts it.
    pub torn_tail: Option<(u64, u64)>,
    /// Snapshots read and checked (objects whose history starts at one).
    pub snapshots: usize,
}

/// Reads an archive folder without changing it (no index, no cut: safe beside a running
/// node) and checks every object's chain from its first retained record (its snapshot's,
/// whose file is checked whole), in segment order. Records a snapshot covers, still in a
/// segment shared with retained ones, are passed over.
pub fn scan(dir: &Path) -> Result<ScanReport, ArchiveError> {
    let segments_dir = dir.join("segments");
    let numbers = segment_numbers(&segments_dir)?;
    let mut report = ScanReport {
        segments: numbers.len(),
        ..ScanReport::default()
    };
    let starts = read_snapshot_heads(&dir.join("snapshots"))?;
    report.snapshots = starts.len();
    let mut heads: HashMap<ObjectName, Head> = starts.clone();
    for (position, &number) in numbers.iter().enumerate() {
        let path = segment_path(&segments_dir, number);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let (entries, end) = read_segment_entries(&bytes);
        for entry in &entries {
            let record = &entry.record;
            if starts
                .get(&record.object)
                .is_some_and(|start| record.seq <= start.seq)
            {
                continue;
            }
            let head = heads.get(&record.object).copied().unwrap_or(Head::EMPTY);
            let next =
                head.advance_to(record, entry.checksum)
                    .map_err(|source| ArchiveError::Chain {
                        class: record.object.class.clone(),
                        seq: record.seq,
                        source,
                    })?;
            heads.insert(record.object.clone(), next);
            report.records += 1;
            report.bytes += entry.len as u64;
        }
        match end {
            SegmentEnd::Clean => {}
            SegmentEnd::Torn { offset } if position + 1 == numbers.len() => {
                report.torn_tail = Some((number, offset as u64));
            }
            SegmentEnd::Torn { offset } => {
                return Err(ArchiveError::Damaged {
                    path,
                    offset: offset as u64,
                    error: DecodeError::Malformed {
                        reason: "a record cut short in a segment that is not the last".into(),
                    },
                });
            }
            SegmentEnd::Damaged { offset, error } => {
                return Err(ArchiveError::Damaged {
                    path,
                    offset: offset as u64,
                    error,
                });
            }
        }
    }
    report.objects = heads.len();
    Ok(report)
}

/// The head of each object's newest snapshot file in `dir` (every file read and checked).
fn read_snapshot_heads(dir: &Path) -> Result<HashMap<ObjectName, Head>, ArchiveError> {
    let mut starts: HashMap<ObjectName, Head> = HashMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(starts),
        Err(e) => return Err(io(dir)(e)),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "snap") {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let snapshot = Snapshot::decode(&bytes).map_err(|error| ArchiveError::Damaged {
            path: path.clone(),
            offset: 0,
            error,
        })?;
        let head = snapshot.head();
        let start = starts.entry(snapshot.record.object).or_insert(head);
        if head.seq > start.seq {
            *start = head;
        }
    }
    Ok(starts)
}

fn read_heads(index: &Connection) -> Result<HashMap<ObjectName, Head>, ArchiveError> {
    // An object whose records were all compacted away has its head in its snapshot.
    let mut statement = index.prepare(
        "SELECT class, id, max(seq), checksum FROM (
             SELECT class, id, seq, checksum FROM records
             UNION ALL SELECT class, id, seq, checksum FROM snapshots)
         GROUP BY class, id",
    )?;
    let rows = statement.query_map([], |row| {
        let class: String = row.get(0)?;
        let id: Vec<u8> = row.get(1)?;
        let seq: i64 = row.get(2)?;
        let checksum: i64 = row.get(3)?;
        Ok((class, id, seq as u64, Checksum(checksum as u64)))
    })?;
    let mut heads = HashMap::new();
    for row in rows {
        let (class, id, seq, checksum) = row?;
        let mut bytes = [0u8; 32];
        if id.len() == 32 {
            bytes.copy_from_slice(&id);
        }
        heads.insert(ObjectName { class, id: bytes }, Head { seq, checksum });
    }
    Ok(heads)
}

/// A record's place from a row of `SELECT seq, time_ms, checksum, segment, offset, len`.
fn place_of_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RecordPlace> {
    Ok(RecordPlace {
        seq: row.get::<_, i64>(0)? as u64,
        time_ms: row.get(1)?,
        checksum: Checksum(row.get::<_, i64>(2)? as u64),
        segment: row.get::<_, i64>(3)? as u64,
        offset: row.get::<_, i64>(4)? as u64,
        len: row.get::<_, i64>(5)? as u64,
    })
}

/// Indexes the records appended since the last time, in one transaction, every statement
/// prepared once per connection; on failure they stay pending.
fn flush_index(inner: &mut Inner) -> Result<(), ArchiveError> {
    if inner.pending.is_empty() {
        return Ok(());
    }
    let index = &inner.index;
    index.prepare_cached("BEGIN")?.execute([])?;
    let done = (|| -> Result<(), ArchiveError> {
        for (object, place) in &inner.pending {
            insert_place(index, object, place)?;
        }
        let mut statement = index.prepare_cached(
            "INSERT INTO segments (segment, indexed_len) VALUES (?1, ?2)
             ON CONFLICT (segment) DO UPDATE SET indexed_len = excluded.indexed_len",
        )?;
        for (segment, len) in &inner.pending_ends {
            statement.execute(params![*segment as i64, *len as i64])?;
        }
        index.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    })();
    if done.is_err() && !index.is_autocommit() {
        let _ = index.execute_batch("ROLLBACK");
    }
    done?;
    inner.pending.clear();
    inner.pending_ends.clear();
    Ok(())
}

fn insert_place(
    index: &Connection,
    object: &ObjectName,
    place: &RecordPlace,
) -> Result<(), ArchiveError> {
    // Cached: parsing the statement again for every record cost more than running it.
    index
        .prepare_cached(
            "INSERT OR REPLACE INTO records (class, id, seq, time_ms, checksum, segment, offset, len)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            object.class,
            object.id.as_slice(),
            place.seq as i64,
            place.time_ms,
            place.checksum.0 as i64,
            place.segment as i64,
            place.offset as i64,
            place.len as i64
        ])?;
    Ok(())
}

/// Indexes what segment `number` holds beyond the index (but the records a snapshot in
/// `starts` covers); on the last segment, a torn tail is cut off.
fn catch_up(
    index: &Connection,
    segments_dir: &Path,
    number: u64,
    last: bool,
    starts: &HashMap<ObjectName, u64>,
) -> Result<(), ArchiveError> {
    let path = segment_path(segments_dir, number);
    let indexed: u64 = index
        .query_row(
            "SELECT indexed_len FROM segments WHERE segment = ?1",
            [number as i64],
            |row| row.get::<_, i64>(0),
        )
        .optional()?
        .unwrap_or(0) as u64;
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    if bytes.len() as u64 <= indexed {
        return Ok(());
    }
    let (entries, end) = read_segment_entries(&bytes[indexed as usize..]);
    let mut offset = indexed;
    for entry in &entries {
        let place = RecordPlace {
            seq: entry.record.seq,
            time_ms: entry.record.time_ms,
            checksum: entry.checksum,
            segment: number,
            offset: indexed + entry.offset as u64,
            len: entry.len as u64,
        };
        offset = place.offset + place.len;
        if starts
            .get(&entry.record.object)
            .is_some_and(|start| entry.record.seq <= *start)
        {
            // Covered by the object's snapshot.
            continue;
        }
        insert_place(index, &entry.record.object, &place)?;
    }
    match end {
        SegmentEnd::Clean => {}
        SegmentEnd::Torn { offset: torn } if last => {
            let at = indexed + torn as u64;
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io(&path))?;
            file.set_len(at).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
            offset = at;
        }
        SegmentEnd::Torn { offset: at } | SegmentEnd::Damaged { offset: at, .. } => {
            let error = match end {
                SegmentEnd::Damaged { error, .. } => error,
                _ => DecodeError::Malformed {
                    reason: "a record cut short in a segment that is not the last".into(),
                },
            };
            return Err(ArchiveError::Damaged {
                path,
                offset: indexed + at as u64,
                error,
            });
        }
    }
    index.execute(
        "INSERT INTO segments (segment, indexed_len) VALUES (?1, ?2)
         ON CONFLICT (segment) DO UPDATE SET indexed_len = excluded.indexed_len",
        params![number as i64, offset as i64],
    )?;
    Ok(())
}

/// Brings the index in step with the snapshot files of `snapshots_dir`, before the segments
/// are caught up: each object's newest snapshot is its history's start. A newer file than the
/// index names (a compaction whose index transaction a crash took, or an index rebuilt from
/// nothing) is adopted, as that compaction would have: the records it covers are forgotten.
/// Every other file (replaced snapshots, temporary files cut short) is removed. Only each
/// file's record part is read: opening does not load images.
fn adopt_snapshots(index: &Connection, snapshots_dir: &Path) -> Result<(), ArchiveError> {
    let mut newest: HashMap<ObjectName, (RecordTime, String)> = HashMap::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(snapshots_dir)
        .map_err(io(snapshots_dir))?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        files.push(name.clone());
        if !name.ends_with(".snap") {
            continue;
        }
        let path = entry.path();
        let record = read_snapshot_record_at(&path)?;
        let at = RecordTime {
            seq: record.seq,
            time_ms: record.time_ms,
            checksum: record.checksum(),
        };
        match newest.get(&record.object) {
            Some((known, _)) if known.seq >= at.seq => {}
            _ => {
                newest.insert(record.object, (at, name));
            }
        }
    }
    let tx = index.unchecked_transaction()?;
    for (object, (at, file)) in &newest {
        let named: Option<i64> = tx
            .query_row(
                "SELECT seq FROM snapshots WHERE class = ?1 AND id = ?2",
                params![object.class, object.id.as_slice()],
                |row| row.get(0),
            )
            .optional()?;
        if named.is_some_and(|seq| seq as u64 >= at.seq) {
            continue;
        }
        start_history_at(&tx, object, *at, file)?;
    }
    tx.commit()?;
    let named: std::collections::HashSet<String> = {
        let mut statement = index.prepare("SELECT file FROM snapshots")?;
        let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut removed = false;
    for name in files.into_iter().filter(|name| !named.contains(name)) {
        remove_if_there(&snapshots_dir.join(name))?;
        removed = true;
    }
    if removed {
        sync_dir(snapshots_dir)?;
    }
    Ok(())
}

/// Makes the snapshot in `file` (of record `at`) the start of `object`'s history in the
/// index: its row names it, and the records it covers are forgotten.
fn start_history_at(
    index: &Connection,
    object: &ObjectName,
    at: RecordTime,
    file: &str,
) -> Result<(), ArchiveError> {
    index.execute(
        "INSERT INTO snapshots (class, id, seq, time_ms, checksum, file)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (class, id) DO UPDATE SET seq = excluded.seq,
             time_ms = excluded.time_ms, checksum = excluded.checksum, file = excluded.file",
        params![
            object.class,
            object.id.as_slice(),
            at.seq as i64,
            at.time_ms,
            at.checksum.0 as i64,
            file
        ],
    )?;
    index.execute(
        "DELETE FROM records WHERE class = ?1 AND id = ?2 AND seq <= ?3",
        params![object.class, object.id.as_slice(), at.seq as i64],
    )?;
    Ok(())
}

/// Where each object's history starts, by the index: the records a catch-up must not index
/// again (a segment may still hold records a snapshot covers).
fn snapshot_starts(index: &Connection) -> Result<HashMap<ObjectName, u64>, ArchiveError> {
    let mut statement = index.prepare("SELECT class, id, seq FROM snapshots")?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, Vec<u8>>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    let mut starts = HashMap::new();
    for row in rows {
        let (class, id, seq) = row?;
        if let Ok(id) = <[u8; 32]>::try_from(id.as_slice()) {
            starts.insert(ObjectName { class, id }, seq as u64);
        }
    }
    Ok(starts)
}

/// The record of the snapshot file at `path`, read without its image.
fn read_snapshot_record_at(path: &Path) -> Result<LogRecord, ArchiveError> {
    let mut reader = File::open(path).map_err(io(path))?;
    let mut header = [0u8; 9];
    let damaged = |error| ArchiveError::Damaged {
        path: path.to_path_buf(),
        offset: 0,
        error,
    };
    reader.read_exact(&mut header).map_err(|_| {
        damaged(DecodeError::Incomplete {
            needed: 9,
            available: 0,
        })
    })?;
    let len = Snapshot::record_part_len(&header).map_err(damaged)?;
    let mut bytes = header.to_vec();
    bytes.resize(len, 0);
    reader.read_exact(&mut bytes[9..]).map_err(|_| {
        damaged(DecodeError::Incomplete {
            needed: len,
            available: 0,
        })
    })?;
    Snapshot::decode_record(&bytes).map_err(damaged)
}

fn remove_if_there(path: &Path) -> Result<(), ArchiveError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.seg"))
}

fn segment_numbers(dir: &Path) -> Result<Vec<u64>, ArchiveError> {
    let mut numbers: Vec<u64> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            name.to_str()?.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

/// Creates segment `number`, its name synced into the folder.
fn create_segment(dir: &Path, number: u64) -> Result<PathBuf, ArchiveError> {
    let path = segment_path(dir, number);
    File::create(&path).map_err(io(&path))?;
    sync_dir(dir)?;
    Ok(path)
}

fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    File::open(dir)
        .and_then(|folder| folder.sync_all())
        .map_err(io(dir))
}

/// Creates `dir` and its missing parents, each one's name synced into its parent.
fn create_dir_durably(dir: &Path) -> Result<(), ArchiveError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durably(parent)?;
    }
    std::fs::create_dir(dir).map_err(io(dir))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// What [`copy_archive`] copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CopyReport {
    /// Segments copied.
    pub segments: usize,
    /// Snapshot files copied.
    pub snapshots: usize,
    /// Bytes copied (segments and snapshots).
    pub bytes: u64,
}

/// Copies the archive in `from` to `to` (which must not hold one) consistently while a node
/// may be appending to it: the index is copied first, as one SQLite snapshot (`VACUUM
/// INTO`, read-only), then each snapshot file it names, then every segment as far as it
/// holds whole records now (the node indexes its appends in batches, so the segments may hold
/// records the index does not yet: opening the copy indexes them, as after a crash). So the
/// copy holds every record appended before it started. A file that a compaction removed
/// meanwhile makes the copy start over (a few times at most). `progress` is told each file's
/// bytes.
pub fn copy_archive(
    from: &Path,
    to: &Path,
    mut progress: impl FnMut(u64),
) -> Result<CopyReport, ArchiveError> {
    let index_to = to.join("index.sqlite");
    if index_to.exists() {
        return Err(ArchiveError::Io {
            path: index_to,
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "an archive is already there",
            ),
        });
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        match copy_archive_once(from, to, &mut progress) {
            Err(ArchiveError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && attempt < 5 =>
            {
                for leftover in [
                    to.join("index.sqlite"),
                    to.join("index.sqlite-wal"),
                    to.join("index.sqlite-shm"),
                ] {
                    remove_if_there(&leftover)?;
                }
                for folder in [to.join("segments"), to.join("snapshots")] {
                    if folder.is_dir() {
                        std::fs::remove_dir_all(&folder).map_err(io(&folder))?;
                    }
                }
            }
            other => return other,
        }
    }
}

fn copy_archive_once(
    from: &Path,
    to: &Path,
    progress: &mut impl FnMut(u64),
) -> Result<CopyReport, ArchiveError> {
    let segments_to = to.join("segments");
    let snapshots_to = to.join("snapshots");
    create_dir_durably(&segments_to)?;
    create_dir_durably(&snapshots_to)?;
    let index_to = to.join("index.sqlite");
    let source = Connection::open_with_flags(
        from.join("index.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let target = index_to.to_string_lossy().into_owned();
    source.execute("VACUUM INTO ?1", params![target])?;
    drop(source);
    let index = Connection::open(&index_to)?;
    index.execute_batch("PRAGMA journal_mode = WAL;")?;
    let lengths: Vec<(u64, u64)> = {
        let mut statement =
            index.prepare("SELECT segment, indexed_len FROM segments ORDER BY segment")?;
        let rows = statement.query_map([], |row| {
            Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    // An archive written before snapshots existed has no such table.
    let snapshot_files: Vec<String> = match index.prepare("SELECT file FROM snapshots") {
        Ok(mut statement) => statement
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<_, _>>()?,
        Err(_) => Vec::new(),
    };
    drop(index);
    let mut report = CopyReport::default();
    for file in snapshot_files {
        let copied = copy_file(
            &from.join("snapshots").join(&file),
            &snapshots_to.join(&file),
        )?;
        report.snapshots += 1;
        report.bytes += copied;
        progress(copied);
    }
    // The segments the index names (each at least as long as it says), then any started
    // since (their records not indexed yet).
    let segments_from = from.join("segments");
    let newest_named = lengths.last().map_or(0, |(number, _)| *number);
    let newer = segment_numbers(&segments_from)?
        .into_iter()
        .filter(|number| *number > newest_named)
        .map(|number| (number, 0));
    for (number, indexed) in lengths.into_iter().chain(newer) {
        let copied = copy_whole_records(
            &segment_path(&segments_from, number),
            &segment_path(&segments_to, number),
            indexed,
        )?;
        report.segments += 1;
        report.bytes += copied;
        progress(copied);
    }
    sync_dir(&segments_to)?;
    sync_dir(&snapshots_to)?;
    Ok(report)
}

/// Copies the segment at `source` as far as it holds whole records (a record being
/// appended right now is left out), synced; the first `indexed` bytes must be there.
fn copy_whole_records(source: &Path, target: &Path, indexed: u64) -> Result<u64, ArchiveError> {
    let bytes = std::fs::read(source).map_err(io(source))?;
    if (bytes.len() as u64) < indexed {
        return Err(ArchiveError::Damaged {
            path: source.to_path_buf(),
            offset: bytes.len() as u64,
            error: DecodeError::Malformed {
                reason: format!("the index says the segment holds {indexed} bytes"),
            },
        });
    }
    let start = indexed as usize;
    let (_, end) = read_segment_entries(&bytes[start..]);
    let whole = match end {
        SegmentEnd::Clean => bytes.len(),
        SegmentEnd::Torn { offset } | SegmentEnd::Damaged { offset, .. } => start + offset,
    };
    let mut writer = File::create(target).map_err(io(target))?;
    writer
        .write_all(&bytes[..whole])
        .and_then(|()| writer.sync_all())
        .map_err(io(target))?;
    Ok(whole as u64)
}

/// Copies the file at `source` to `target`, synced.
fn copy_file(source: &Path, target: &Path) -> Result<u64, ArchiveError> {
    let mut reader = File::open(source).map_err(io(source))?;
    let mut writer = File::create(target).map_err(io(target))?;
    let copied = std::io::copy(&mut reader, &mut writer).map_err(io(target))?;
    writer.sync_all().map_err(io(target))?;
    Ok(copied)
}
