//! [`ObjectDatabase`]: one object's SQLite database, its write batches and its commits.
//!
//! Writes are grouped in *batches* ([`BatchState`] holds the rules): the first write after a
//! commit opens a transaction (`BEGIN`), and the runtime commits it between turns, never in
//! the middle of one. A turn's writes therefore always commit together, possibly with the
//! writes of other turns that ran before the commit (write coalescing).
//!
//! [`ObjectDatabase::commit`] returns a [`CommitTicket`]: the commit's sequence number, the
//! WAL the durability worker must sync, the stored alarm if the batch changed it, and (when
//! the database was opened with `capture`) the WAL frames the commit wrote. The runtime's
//! commit pipeline takes it from there. Checkpoints are ours too: the database registers
//! its own WAL hook (which replaces SQLite's automatic checkpoint) and learns how many frames
//! the WAL holds after each commit; once it passes [`CHECKPOINT_FRAMES`] a checkpoint is
//! due ([`ObjectDatabase::checkpoint_due`]), and the runtime runs it
//! ([`ObjectDatabase::checkpoint`]) only when every commit in the WAL is durable and in the
//! object's log: the database file never holds a commit the log lacks.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use durable_core::limits;
use rusqlite::config::DbConfig;
use rusqlite::limits::Limit;
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, OpenFlags, params_from_iter};

use crate::authorizer::{self, Guard, Refusal, Rule};
use crate::batch::BatchState;
use crate::cursor::SqlCursor;
use crate::durability::{DurableCallback, WalFile};
use crate::error::{CommitError, KvError, OpenError, OpenFailure, SqlError, SqliteCode};
use crate::kv::{self, KV_TABLE, ListOptions};
use crate::layout::DataLayout;
use crate::program::{Program, ProgramCache};
use crate::space::DiskSpace;
use crate::statement::{self, Compiled, Prepared, Step};
use crate::value::SqlValue;
use crate::wal::{CommitFrames, WalReader};

/// The reserved table of per-object metadata; the alarm is its row `alarm`.
pub(crate) const META_TABLE: &str = "_cf_METADATA";

/// WAL frames after which a checkpoint of the WAL into the database is due (SQLite's own
/// automatic checkpoint uses the same threshold).
pub const CHECKPOINT_FRAMES: u32 = 1_000;

/// How commits become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DurabilityMode {
    /// Commits do not fsync; the durability worker fsyncs the WAL once for every commit made
    /// since its last sync (the default).
    #[default]
    GroupCommit,
    /// Every commit fsyncs the WAL itself, on the object's thread (`synchronous=FULL`). Slow;
    /// it exists to measure what group commit gains.
    FsyncEachCommit,
}

/// How to open an object database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DatabaseOptions {
    /// How commits become durable.
    pub mode: DurabilityMode,
    /// Largest size of the database; past it writes fail with `SQLITE_FULL`.
    pub max_bytes: u64,
    /// Read back the WAL frames of every commit into its ticket (for the capture point).
    pub capture: bool,
    /// Most bytes the rows of one `exec` result may hold; past it the call fails with
    /// [`SqlError::ResultTooLarge`].
    pub max_result_bytes: usize,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        Self {
            mode: DurabilityMode::GroupCommit,
            max_bytes: limits::DEFAULT_MAX_DATABASE_BYTES,
            capture: false,
            max_result_bytes: limits::DEFAULT_MAX_SQL_RESULT_BYTES,
        }
    }
}

/// What one commit produced: what the steps after it (durability, capture, the alarm
/// index, releasing outputs) need, so they do not reach back into the database.
#[derive(Debug)]
#[non_exhaustive]
pub struct CommitTicket {
    /// The commit's sequence number (1, 2, 3, ... per open database).
    pub seq: u64,
    /// The WAL to sync for it to become durable.
    pub wal: Arc<WalFile>,
    /// The stored alarm after the commit, if the batch changed it (`Some(None)`: removed).
    pub alarm: Option<Option<i64>>,
    /// False if the commit changed no page (its statements wrote nothing, such as a
    /// `CREATE TABLE IF NOT EXISTS` of a table that exists): SQLite wrote no frame for it.
    pub changed: bool,
    /// The WAL frames it wrote, if the database captures them and it changed a page.
    pub frames: Option<CommitFrames>,
}

/// What the WAL hook stores before a commit: "not called yet".
const HOOK_NOT_CALLED: u64 = u64::MAX;

fn sqlite_limit(bytes: usize) -> i32 {
    i32::try_from(bytes).unwrap_or(i32::MAX)
}

fn sqlite(err: rusqlite::Error) -> SqlError {
    SqlError::from_sqlite(&err)
}

/// The storage layer's own statements. Each starts with a comment holding a random token of
/// this connection: statements are cached by their text, and user SQL must never be handed a
/// cached statement that was compiled without the authorizer.
#[derive(Debug)]
struct InternalSql {
    token: String,
    begin: String,
    commit: String,
    savepoint: String,
    rollback_to: String,
    release: String,
    exec_savepoint: String,
    exec_rollback: String,
    exec_release: String,
    kv_exists: String,
    meta_create: String,
    alarm_get: String,
    alarm_set: String,
    alarm_delete: String,
    kv_get: String,
    kv_put: String,
    kv_delete: String,
}

impl InternalSql {
    fn new() -> Self {
        let mut nonce = [0u8; 16];
        // Without randomness, fall back to the address of a stack value: still unknown to
        // user code, which never sees it.
        if getrandom::fill(&mut nonce).is_err() {
            let marker = Box::new(0u8);
            let address = std::ptr::from_ref::<u8>(&marker) as usize as u64;
            nonce[..8].copy_from_slice(&address.to_le_bytes());
        }
        let token: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let tag = |sql: &str| format!("/*{token}*/ {sql}");
        Self {
            begin: tag("BEGIN"),
            commit: tag("COMMIT"),
            savepoint: tag("SAVEPOINT _cf_txn"),
            rollback_to: tag("ROLLBACK TO _cf_txn"),
            release: tag("RELEASE _cf_txn"),
            exec_savepoint: tag("SAVEPOINT _cf_exec"),
            exec_rollback: tag("ROLLBACK TO _cf_exec"),
            exec_release: tag("RELEASE _cf_exec"),
            kv_exists: tag("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1"),
            kv_get: tag(&format!("SELECT value FROM {KV_TABLE} WHERE key = ?1")),
            kv_put: tag(&format!(
                "INSERT INTO {KV_TABLE} (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            )),
            kv_delete: tag(&format!("DELETE FROM {KV_TABLE} WHERE key = ?1")),
            meta_create: tag(&format!(
                "CREATE TABLE IF NOT EXISTS {META_TABLE} (key TEXT PRIMARY KEY, value) WITHOUT ROWID"
            )),
            alarm_get: tag(&format!(
                "SELECT value FROM {META_TABLE} WHERE key = 'alarm'"
            )),
            alarm_set: tag(&format!(
                "INSERT INTO {META_TABLE} (key, value) VALUES ('alarm', ?1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            )),
            alarm_delete: tag(&format!("DELETE FROM {META_TABLE} WHERE key = 'alarm'")),
            token,
        }
    }

    fn tag(&self, sql: &str) -> String {
        format!("/*{}*/ {sql}", self.token)
    }
}

/// A write that failed with "full" (or an I/O error) on a disk that is out of space is
/// [`SqlError::DiskFull`]; "full" on a disk with room is the database's own size limit.
/// SQLite reports both as `SQLITE_FULL`, so the free space decides: one write larger than
/// all the free space, on a disk with more than the low-water mark free, reads as the size
/// limit.
fn classify_full(err: SqlError, space: Option<&DiskSpace>, max_bytes: u64) -> SqlError {
    match err.sqlite_code() {
        Some(SqliteCode::Full) if space.is_some_and(DiskSpace::on_write_failure) => {
            SqlError::DiskFull
        }
        Some(SqliteCode::Full) => SqlError::DatabaseFull { limit: max_bytes },
        Some(SqliteCode::IoErr) if space.is_some_and(DiskSpace::on_write_failure) => {
            SqlError::DiskFull
        }
        _ => err,
    }
}

fn run(conn: &Connection, sql: &str) -> Result<(), SqlError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute([]))
        .map(drop)
        .map_err(sqlite)
}

fn begin_write(
    conn: &Connection,
    internal: &InternalSql,
    batch: &mut BatchState,
    confirmed: bool,
) -> Result<(), SqlError> {
    if batch.needs_begin() {
        run(conn, &internal.begin)?;
    }
    batch.wrote(confirmed);
    Ok(())
}

/// One object's database, open on the object's thread.
pub struct ObjectDatabase {
    /// Compiled user SQL. Declared before `conn`: statements are finalized before the
    /// connection closes.
    programs: ProgramCache,
    conn: Connection,
    guard: Arc<Guard>,
    internal: InternalSql,
    path: PathBuf,
    mode: DurabilityMode,
    batch: BatchState,
    kv_ready: bool,
    meta_ready: bool,
    wal: Arc<WalFile>,
    /// Frames in the WAL after the last commit, as the WAL hook reported it
    /// ([`HOOK_NOT_CALLED`] if SQLite wrote no frame for the last commit).
    wal_frames: Arc<AtomicU64>,
    /// The WAL passed [`CHECKPOINT_FRAMES`] since the last checkpoint.
    checkpoint_due: bool,
    /// Reads each commit's frames back, when the database captures them.
    reader: Option<WalReader>,
    broken: Option<CommitError>,
    max_result_bytes: usize,
    max_bytes: u64,
    /// The node's disk space: tells a full disk from a full database, and refuses growing
    /// writes while the disk is full.
    space: Option<Arc<DiskSpace>>,
}

impl std::fmt::Debug for ObjectDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectDatabase")
            .field("path", &self.path)
            .field("batch", &self.batch)
            .finish()
    }
}

impl ObjectDatabase {
    /// Opens (creating if needed) the database at `path` in WAL mode with the platform's
    /// limits and authorizer. `on_durable` is told whenever commits become durable.
    pub fn open(
        path: &Path,
        options: DatabaseOptions,
        on_durable: DurableCallback,
    ) -> Result<Self, OpenError> {
        Self::open_on(path, options, None, on_durable)
    }

    /// [`open`](Self::open), on a disk watched by `space`: a write that fails for lack of
    /// space is [`SqlError::DiskFull`], and growing writes are refused while the disk is full.
    /// A database this call created is removed again if opening it fails, so a full disk
    /// leaves no empty files behind.
    pub fn open_on(
        path: &Path,
        options: DatabaseOptions,
        space: Option<Arc<DiskSpace>>,
        on_durable: DurableCallback,
    ) -> Result<Self, OpenError> {
        let existed = path.exists();
        if !existed && space.as_ref().is_some_and(|space| space.is_full()) {
            // A new object has nothing to read or delete; creating its files would only eat
            // the reserve that deletes need.
            return Err(OpenError {
                path: path.to_path_buf(),
                failure: OpenFailure::Sqlite(SqlError::DiskFull),
            });
        }
        let mut opened = Self::open_inner(path, options, space.clone(), on_durable);
        if let (Ok(_), false, Some(dir)) = (&opened, existed, path.parent()) {
            // The new database's and WAL's names must survive a power cut with the first
            // commit that is synced: sync their folder now, before any write.
            if let Err(err) = crate::dirs::sync_dir(dir) {
                opened = Err(OpenError {
                    path: path.to_path_buf(),
                    failure: OpenFailure::SyncFolder(err),
                });
            }
        }
        if let Err(err) = &opened
            && !existed
        {
            for file in [
                path.to_path_buf(),
                DataLayout::wal_of(path),
                DataLayout::shm_of(path),
            ] {
                if let Err(remove) = std::fs::remove_file(&file)
                    && remove.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(path = %file.display(), error = %remove, open_error = %err, "a database that failed to open could not be removed");
                }
            }
        }
        opened
    }

    fn open_inner(
        path: &Path,
        options: DatabaseOptions,
        space: Option<Arc<DiskSpace>>,
        on_durable: DurableCallback,
    ) -> Result<Self, OpenError> {
        let fail = |failure: OpenFailure| OpenError {
            path: path.to_path_buf(),
            failure,
        };
        let sql_fail = |err: rusqlite::Error| {
            fail(OpenFailure::Sqlite(classify_full(
                sqlite(err),
                space.as_deref(),
                options.max_bytes,
            )))
        };
        if let Some(parent) = path.parent() {
            crate::dirs::create_dir_durably(parent)
                .map_err(|err| fail(OpenFailure::CreateFolder(err)))?;
        }
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql_fail)?;
        let synchronous = match options.mode {
            DurabilityMode::GroupCommit => "NORMAL",
            DurabilityMode::FsyncEachCommit => "FULL",
        };
        let journal: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
            .map_err(|err| {
                let err = sqlite(err);
                if err.sqlite_code() == Some(SqliteCode::NotADatabase) {
                    fail(OpenFailure::NotADatabase(err))
                } else {
                    fail(OpenFailure::Sqlite(classify_full(
                        err,
                        space.as_deref(),
                        options.max_bytes,
                    )))
                }
            })?;
        if !journal.eq_ignore_ascii_case("wal") {
            return Err(fail(OpenFailure::JournalMode { found: journal }));
        }
        // The page limit makes a full object answer SQLITE_FULL to writes while reads and
        // deletes keep working, as on Cloudflare at its 10 GB limit.
        let page_size: u64 = conn
            .query_row("PRAGMA page_size", [], |row| row.get::<_, i64>(0))
            .map(|size| u64::try_from(size).unwrap_or(4096))
            .map_err(sql_fail)?;
        conn.execute_batch(&format!(
            "PRAGMA synchronous={synchronous}; PRAGMA max_page_count={}",
            (options.max_bytes / page_size).max(2)
        ))
        .map_err(sql_fail)?;
        for (limit, value) in [
            (
                Limit::SQLITE_LIMIT_LENGTH,
                sqlite_limit(limits::MAX_SQL_ROW_BYTES),
            ),
            (
                Limit::SQLITE_LIMIT_SQL_LENGTH,
                sqlite_limit(limits::MAX_SQL_STATEMENT_BYTES),
            ),
            (Limit::SQLITE_LIMIT_COLUMN, limits::MAX_SQL_COLUMNS),
            (
                Limit::SQLITE_LIMIT_VARIABLE_NUMBER,
                limits::MAX_SQL_PARAMETERS,
            ),
            (
                Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH,
                limits::MAX_SQL_LIKE_PATTERN_BYTES,
            ),
            (
                Limit::SQLITE_LIMIT_FUNCTION_ARG,
                limits::MAX_SQL_FUNCTION_ARGS,
            ),
            (
                Limit::SQLITE_LIMIT_COMPOUND_SELECT,
                limits::MAX_SQL_COMPOUND_SELECT,
            ),
            (Limit::SQLITE_LIMIT_EXPR_DEPTH, limits::MAX_SQL_EXPR_DEPTH),
            (
                Limit::SQLITE_LIMIT_TRIGGER_DEPTH,
                limits::MAX_SQL_TRIGGER_DEPTH,
            ),
            (Limit::SQLITE_LIMIT_ATTACHED, 0),
        ] {
            conn.set_limit(limit, value).map_err(sql_fail)?;
        }
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
            .map_err(sql_fail)?;
        conn.set_prepared_statement_cache_capacity(64);
        // Our hook replaces SQLite's automatic checkpoint: the runtime checkpoints once the
        // commits in the WAL are durable and logged, so no frame is checkpointed before it
        // is captured and its commit acknowledged.
        let wal_frames = Arc::new(AtomicU64::new(HOOK_NOT_CALLED));
        let frames_seen = Arc::clone(&wal_frames);
        conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, frames: i32| {
            frames_seen.store(u64::try_from(frames).unwrap_or(0), Ordering::Relaxed);
            Ok(())
        }))
        .map_err(sql_fail)?;
        let guard = Guard::install(&mut conn).map_err(sql_fail)?;
        let wal_path = DataLayout::wal_of(path);
        // The WAL's descriptor is taken now, not at the first fsync: a node out of file
        // descriptors fails here, before any write, never after a commit it then could not
        // make durable.
        let wal = WalFile::open(wal_path.clone(), on_durable)
            .map_err(|err| fail(OpenFailure::Wal(err)))?;
        let reader = if options.capture {
            Some(
                WalReader::open_on(&wal_path, wal.shared_file())
                    .map_err(|err| fail(OpenFailure::Wal(err)))?,
            )
        } else {
            None
        };
        Ok(Self {
            programs: ProgramCache::default(),
            conn,
            guard,
            internal: InternalSql::new(),
            path: path.to_path_buf(),
            mode: options.mode,
            batch: BatchState::default(),
            kv_ready: false,
            meta_ready: false,
            wal: Arc::new(wal),
            wal_frames,
            checkpoint_due: false,
            reader,
            broken: None,
            max_result_bytes: options.max_result_bytes,
            max_bytes: options.max_bytes,
            space,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The WAL, for the durability worker.
    pub fn wal(&self) -> &Arc<WalFile> {
        &self.wal
    }

    /// The durability mode the database was opened with.
    pub fn mode(&self) -> DurabilityMode {
        self.mode
    }

    fn check_usable(&self) -> Result<(), SqlError> {
        match &self.broken {
            Some(failure) => Err(SqlError::Broken(Box::new(failure.clone()))),
            None => Ok(()),
        }
    }

    fn space_is_full(&self) -> bool {
        self.space.as_ref().is_some_and(|space| space.is_full())
    }

    /// Refuses a write that may grow the database while the disk is full.
    fn check_room(&self) -> Result<(), SqlError> {
        if self.space_is_full() {
            return Err(SqlError::DiskFull);
        }
        Ok(())
    }

    /// `err`, told apart: a full disk, a full database, or what SQLite said.
    fn classify(&self, err: SqlError) -> SqlError {
        classify_full(err, self.space.as_deref(), self.max_bytes)
    }

    fn classify_kv(&self, err: KvError) -> KvError {
        match err {
            KvError::Sql(sql) => KvError::Sql(self.classify(sql)),
            other => other,
        }
    }

    /// Copies the whole WAL into the database and truncates it to nothing, if no batch is
    /// open: what an idle object, or a full disk, gives back. True if it did. Like
    /// [`checkpoint`](Self::checkpoint), only when every commit is durable and acknowledged.
    pub fn truncate_wal(&mut self) -> bool {
        if self.broken.is_some()
            || self.batch.has_uncommitted()
            || !self.conn.is_autocommit()
            || self.space_is_full()
        {
            return false;
        }
        match self
            .conn
            .wal_checkpoint_v2(None::<&str>, CheckpointMode::TRUNCATE)
        {
            Ok(_) => {
                self.checkpoint_due = false;
                true
            }
            Err(err) => {
                tracing::warn!(database = %self.path.display(), error = %err, "truncating the WAL failed; it is tried again later");
                false
            }
        }
    }

    // ----- batches and commits -------------------------------------------------------------

    /// True when writes are waiting for a commit.
    pub fn has_uncommitted(&self) -> bool {
        self.batch.has_uncommitted()
    }

    /// True when the open batch may be committed now (no explicit transaction spans it).
    pub fn can_commit(&self) -> bool {
        self.batch.can_commit()
    }

    /// The commit sequence number a reply sent now must wait for: that of the open batch if
    /// it holds confirmed writes, else that of the last batch that did.
    pub fn required_seq(&self) -> u64 {
        self.batch.required_seq()
    }

    /// The sequence number every write so far belongs to, confirmed or not (for `sync()`).
    pub fn latest_seq(&self) -> u64 {
        self.batch.latest_seq()
    }

    /// The stored alarm as the open batch leaves it, if the batch changed it (`Some(None)`:
    /// the batch removes it); `None` if the batch did not touch the alarm.
    pub fn batch_alarm(&mut self) -> Result<Option<Option<i64>>, SqlError> {
        if !self.batch.alarm_touched() {
            return Ok(None);
        }
        self.alarm().map(Some)
    }

    /// Commits the open batch; returns its ticket, or `None` when there was nothing to commit
    /// (or an explicit transaction is still open). On failure the database is broken: the
    /// batch is lost (or, if only the capture failed, committed but never confirmed), and the
    /// object must be reset.
    pub fn commit(&mut self) -> Result<Option<CommitTicket>, CommitError> {
        if let Some(failure) = &self.broken {
            return Err(failure.clone());
        }
        if !self.batch.can_commit() {
            return Ok(None);
        }
        let alarm = match self.batch_alarm() {
            Ok(alarm) => alarm,
            Err(err) => return Err(self.break_with(CommitError::Sqlite(err))),
        };
        if self.conn.is_autocommit() {
            // SQLite rolled the transaction back itself after an error (disk full, I/O).
            if self.space_is_full() {
                return Err(self.break_with(CommitError::Sqlite(SqlError::DiskFull)));
            }
            return Err(self.break_with(CommitError::RolledBack));
        }
        self.wal_frames.store(HOOK_NOT_CALLED, Ordering::Relaxed);
        if let Err(err) = run(&self.conn, &self.internal.commit) {
            let _ = self.conn.execute_batch("ROLLBACK");
            let err = self.classify(err);
            return Err(self.break_with(CommitError::Sqlite(err)));
        }
        let committed = self.batch.committed();
        let seq = committed.seq;
        // SQLite calls the hook only for a commit that wrote frames.
        let wal_frames = match self.wal_frames.load(Ordering::Relaxed) {
            HOOK_NOT_CALLED => None,
            frames => Some(u32::try_from(frames).unwrap_or(u32::MAX)),
        };
        let frames = match (self.reader.as_mut(), wal_frames) {
            (Some(reader), Some(count)) => match reader.read_commit(count) {
                Ok(frames) => Some(frames),
                Err(err) => return Err(self.break_with(CommitError::Capture(err))),
            },
            _ => None,
        };
        self.wal.publish_commit(seq);
        if self.mode == DurabilityMode::FsyncEachCommit {
            // synchronous=FULL: the commit fsynced the WAL before returning.
            self.wal.mark_synced(seq);
        }
        if wal_frames.is_some_and(|count| count >= CHECKPOINT_FRAMES) {
            self.checkpoint_due = true;
        }
        Ok(Some(CommitTicket {
            seq,
            wal: Arc::clone(&self.wal),
            alarm,
            changed: wal_frames.is_some(),
            frames,
        }))
    }

    /// True when the WAL has grown past [`CHECKPOINT_FRAMES`] since the last checkpoint.
    pub fn checkpoint_due(&self) -> bool {
        self.checkpoint_due
    }

    /// Copies the WAL's commits into the database (a passive checkpoint). Call it only when
    /// every commit in the WAL is durable and acknowledged: the database file must never
    /// hold a commit its log lacks. With a batch open, the checkpoint runs on a second,
    /// short-lived connection (this one is inside a write transaction, and SQLite refuses a
    /// checkpoint there); the batch's own frames are not committed, so they are not copied.
    /// Not on a full disk (the database file would grow into the reserve). A failure is not
    /// an error of any commit: the frames stay in the WAL, durable, and the next due
    /// checkpoint tries again.
    pub fn checkpoint(&mut self) {
        if self.broken.is_some() || self.space_is_full() {
            return;
        }
        let result = if self.conn.is_autocommit() {
            self.conn
                .wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE)
                .map(drop)
        } else if std::fs::metadata(&self.path).is_ok_and(|meta| meta.len() > 0) {
            // (A database file of zero bytes would make a new connection discard the WAL;
            // ours always has its header, written when WAL mode was set.)
            Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .and_then(|other| {
                // A connection opens the WAL with its first read; a checkpoint before that
                // finds no WAL and does nothing.
                other.query_row("PRAGMA schema_version", [], |_| Ok(()))?;
                other
                    .wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE)
                    .map(drop)
            })
        } else {
            return;
        };
        match result {
            Ok(()) => self.checkpoint_due = false,
            Err(err) => {
                tracing::warn!(database = %self.path.display(), error = %err, "checkpoint failed; the WAL keeps growing until one succeeds");
            }
        }
    }

    fn break_with(&mut self, failure: CommitError) -> CommitError {
        self.batch.rolled_back();
        self.broken = Some(failure.clone());
        failure
    }

    /// After a failed statement: true if SQLite rolled the whole open batch back itself (it
    /// may, on SQLITE_FULL or an I/O error). The batch's writes are gone, so the database is
    /// marked broken and the object must be reset.
    pub fn lost_batch(&mut self) -> bool {
        if self.batch.has_uncommitted() && self.conn.is_autocommit() {
            let failure = if self.space_is_full() {
                CommitError::Sqlite(SqlError::DiskFull)
            } else {
                CommitError::RolledBack
            };
            self.break_with(failure);
            true
        } else {
            false
        }
    }

    /// Discards the open batch (a reset: panic, `abort()`): its writes never happened.
    pub fn rollback_uncommitted(&mut self) {
        if self.batch.has_uncommitted() {
            if let Err(err) = self.conn.execute_batch("ROLLBACK") {
                tracing::warn!(database = %self.path.display(), error = %err, "rollback failed");
            }
            self.batch.rolled_back();
            self.kv_ready = false;
            self.meta_ready = false;
        }
    }

    /// Closes the database. Call after the last commit; an open batch is rolled back.
    pub fn close(self) {
        self.close_with(true);
    }

    /// Closes the database without SQLite's checkpoint at close, which fsyncs: for a
    /// database whose disk stopped answering. The WAL stays; the next open reads it.
    pub fn close_without_checkpoint(self) {
        self.close_with(false);
    }

    fn close_with(mut self, checkpoint: bool) {
        self.rollback_uncommitted();
        self.programs.clear();
        if !checkpoint || self.space_is_full() {
            // SQLite checkpoints when the last connection closes, which makes the database
            // file grow by what the WAL holds: on a full disk that would eat the reserve the
            // deletes need. The WAL stays; the next open reads it.
            let _ = self
                .conn
                .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true);
        }
        if let Err((_, err)) = self.conn.close() {
            tracing::warn!(database = %self.path.display(), error = %err, "close failed");
        }
    }

    // ----- explicit transactions -----------------------------------------------------------

    /// Starts an explicit transaction (a savepoint inside the batch).
    pub fn begin_transaction(&mut self) -> Result<(), SqlError> {
        self.check_usable()?;
        begin_write(&self.conn, &self.internal, &mut self.batch, true)?;
        run(&self.conn, &self.internal.savepoint)?;
        self.batch.savepoint_opened();
        Ok(())
    }

    /// Explicit transactions open now.
    pub fn transaction_depth(&self) -> u32 {
        self.batch.savepoints()
    }

    /// Ends explicit transactions, innermost first, until `depth` remain open; each keeps
    /// (`rollback` false) or undoes its writes.
    pub fn end_transactions_to(&mut self, depth: u32, rollback: bool) -> Result<(), SqlError> {
        while self.batch.savepoints() > depth {
            self.end_transaction(rollback)?;
        }
        Ok(())
    }

    /// Ends the innermost explicit transaction, keeping (`rollback` false) or undoing its
    /// writes.
    pub fn end_transaction(&mut self, rollback: bool) -> Result<(), SqlError> {
        if !self.batch.savepoint_closed() {
            return Ok(());
        }
        if rollback {
            run(&self.conn, &self.internal.rollback_to)?;
            // Tables created inside may be gone again.
            self.kv_ready = false;
            self.meta_ready = false;
        }
        run(&self.conn, &self.internal.release)?;
        Ok(())
    }

    // ----- SQL -----------------------------------------------------------------------------

    /// Runs `sql` (one or more `;`-separated statements) with `params` bound to the last
    /// statement; returns the last statement's rows and counters.
    ///
    /// The call is atomic: if a statement fails, the writes of the statements before it in
    /// the same text are undone too. The whole text counts against the 100 KB statement
    /// limit; each bound string or BLOB against the 2 MiB value limit; the rows kept for the
    /// result against the result-size limit.
    pub fn exec(&mut self, sql: &str, params: Vec<SqlValue>) -> Result<SqlCursor, SqlError> {
        self.check_usable()?;
        if sql.len() > limits::MAX_SQL_STATEMENT_BYTES {
            return Err(SqlError::StatementTooLong {
                len: sql.len(),
                limit: limits::MAX_SQL_STATEMENT_BYTES,
            });
        }
        for (position, value) in params.iter().enumerate() {
            let len = value.byte_len();
            if len > limits::MAX_SQL_VALUE_BYTES {
                return Err(SqlError::ValueTooLarge {
                    index: position + 1,
                    len,
                    limit: limits::MAX_SQL_VALUE_BYTES,
                });
            }
        }
        if trivia(sql).is_some() {
            return Err(SqlError::NoStatement);
        }
        let (mut program, cached) = match self.programs.take(sql) {
            Some(program) => (program, true),
            None => (Program::default(), false),
        };
        let mut savepoint = false;
        let result = self.run_program(sql, &mut program, cached, &params, &mut savepoint);
        if savepoint {
            let end = if result.is_ok() {
                run(&self.conn, &self.internal.exec_release)
            } else {
                run(&self.conn, &self.internal.exec_rollback)
                    .and_then(|()| run(&self.conn, &self.internal.exec_release))
            };
            // A failed rollback means SQLite already rolled the whole batch back (full disk,
            // I/O error); `lost_batch` reports that to the runtime.
            if let Err(err) = end {
                tracing::debug!(database = %self.path.display(), error = %err, "ending the exec savepoint failed");
            }
        }
        if result.is_ok() {
            self.programs.put(sql, program);
        }
        result.map_err(|err| self.classify(err))
    }

    /// Runs the statements of `sql`, compiling those `program` does not hold yet.
    fn run_program(
        &mut self,
        sql: &str,
        program: &mut Program,
        cached: bool,
        params: &[SqlValue],
        savepoint: &mut bool,
    ) -> Result<SqlCursor, SqlError> {
        let mut position = 0;
        let mut index = 0;
        loop {
            if index == program.statements.len() {
                if cached {
                    return Err(SqlError::NoStatement);
                }
                let statement = self.compile_next(&sql[position..])?;
                position += statement.consumed();
                program.statements.push(statement);
            }
            let is_last = if cached {
                index + 1 == program.statements.len()
            } else {
                match trivia(&sql[position..]) {
                    Some(Trivia { comment: true }) => return Err(SqlError::TrailingComment),
                    Some(Trivia { comment: false }) => true,
                    None => false,
                }
            };
            let statement = &mut program.statements[index];
            if is_last && statement.parameter_count() != params.len() {
                return Err(SqlError::ParameterCount {
                    given: params.len(),
                    expected: statement.parameter_count(),
                });
            }
            if !statement.readonly() {
                if statement.grows {
                    self.check_room()?;
                }
                begin_write(&self.conn, &self.internal, &mut self.batch, true)?;
                let single = is_last && index == 0;
                if !single && !*savepoint {
                    run(&self.conn, &self.internal.exec_savepoint)?;
                    *savepoint = true;
                }
            }
            let bound = if is_last { params } else { &[] };
            let limit = if is_last {
                Some(self.max_result_bytes)
            } else {
                None
            };
            let changes_before = statement::total_changes(&self.conn);
            let (ran, refusal) = self
                .guard
                .checked(|| run_statement(statement, bound, limit));
            let rows_written = statement::total_changes(&self.conn) - changes_before;
            let stepped = statement.rows_stepped();
            statement.reset();
            if let Some(refusal) = refusal {
                return Err(SqlError::Refused(refusal));
            }
            let (columns, rows) = ran?;
            if is_last {
                let returned = rows.len() as u64;
                let rows_read = match rows.front().and_then(|row| row.first()) {
                    // SQLite's count(*) reads the row count from the b-tree, no loop.
                    Some(SqlValue::Integer(count)) if statement.simple_count => {
                        u64::try_from(*count).unwrap_or(0)
                    }
                    // Each step moves a loop from one row to the next; the row a loop starts
                    // on is not a step, so a scan of n rows makes n - 1 steps. Every row
                    // returned was read, too.
                    _ => {
                        let scanned = if stepped > 0 { stepped + 1 } else { 0 };
                        scanned.max(returned)
                    }
                };
                return Ok(SqlCursor::new(columns, rows, rows_read, rows_written));
            }
            index += 1;
        }
    }

    /// Compiles the first statement of `rest` under the authorizer.
    fn compile_next(&self, rest: &str) -> Result<Prepared, SqlError> {
        // SQLite's authorizer names the table being renamed, not its new name (checked before
        // SQLite's own checks, so the refusal is the error whatever else is wrong).
        if let Some(target) = authorizer::rename_target(rest)
            && authorizer::is_reserved_name(&target)
        {
            return Err(SqlError::Refused(Refusal {
                rule: Rule::ReservedName,
                detail: format!(
                    "renaming a table to {target} is prohibited: names starting with _cf_ are reserved for the platform"
                ),
            }));
        }
        self.guard.take_grows();
        let (compiled, refusal) = self.guard.checked(|| statement::prepare(&self.conn, rest));
        let grows = self.guard.take_grows();
        if let Some(refusal) = refusal {
            return Err(SqlError::Refused(refusal));
        }
        let mut statement = match compiled? {
            Compiled::Statement(statement) => statement,
            // `rest` held a statement (checked by the caller), so SQLite found one.
            Compiled::Nothing => return Err(SqlError::NoStatement),
        };
        statement.grows = grows;
        let text = &rest[..statement.consumed()];
        if statement.readonly() && text.to_ascii_lowercase().contains("count") {
            statement.simple_count = self.is_simple_count(text);
        }
        Ok(statement)
    }

    /// True if SQLite compiles `text` to its "simple count" program (an `OP_Count` that reads
    /// the row count from the b-tree, no loop).
    fn is_simple_count(&self, text: &str) -> bool {
        let explain = format!("EXPLAIN {text}");
        let (found, _) = self.guard.checked(|| -> Result<bool, rusqlite::Error> {
            let mut stmt = self.conn.prepare(&explain)?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                if row.get_ref(1)?.as_str().is_ok_and(|op| op == "Count")
                    && row.get::<_, i64>(4)? == 0
                {
                    return Ok(true);
                }
            }
            Ok(false)
        });
        found.unwrap_or(false)
    }

    /// Bytes the database uses: pages in use times the page size.
    pub fn database_size(&self) -> Result<u64, SqlError> {
        let pragma = |name: &str| -> Result<u64, SqlError> {
            self.conn
                .query_row(&format!("PRAGMA {name}"), [], |row| row.get::<_, i64>(0))
                .map(|v| u64::try_from(v).unwrap_or(0))
                .map_err(sqlite)
        };
        Ok((pragma("page_count")? - pragma("freelist_count")?) * pragma("page_size")?)
    }

    /// Deletes everything: every table, index, view and trigger, the KV entries and the
    /// alarm. Part of the current batch, so it commits atomically with the turn's writes.
    /// `confirmed` false marks an `allow_unconfirmed` write.
    pub fn delete_all(&mut self, confirmed: bool) -> Result<(), SqlError> {
        self.check_usable()?;
        self.drop_everything(confirmed)
            .map_err(|err| self.classify(err))
    }

    fn drop_everything(&mut self, confirmed: bool) -> Result<(), SqlError> {
        begin_write(&self.conn, &self.internal, &mut self.batch, confirmed)?;
        let schema = |conn: &Connection| -> Result<Vec<(String, String, String)>, SqlError> {
            let mut stmt = conn
                .prepare(
                    "SELECT type, name, coalesce(sql, '') FROM sqlite_master \
                     WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
                )
                .map_err(sqlite)?;
            let rows = stmt
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .map_err(sqlite)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(sqlite)
        };
        let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
        // Views and triggers first, then virtual tables (which drop their shadow tables),
        // then whatever tables remain.
        for (kind, name, sql) in schema(&self.conn)? {
            let statement = match kind.as_str() {
                "view" => format!("DROP VIEW IF EXISTS {}", quote(&name)),
                "trigger" => format!("DROP TRIGGER IF EXISTS {}", quote(&name)),
                "table" if sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL TABLE") => {
                    format!("DROP TABLE IF EXISTS {}", quote(&name))
                }
                _ => continue,
            };
            self.conn.execute_batch(&statement).map_err(sqlite)?;
        }
        for (kind, name, _) in schema(&self.conn)? {
            if kind == "table" {
                self.conn
                    .execute_batch(&format!("DROP TABLE IF EXISTS {}", quote(&name)))
                    .map_err(sqlite)?;
            }
        }
        self.conn.flush_prepared_statement_cache();
        self.programs.clear();
        self.kv_ready = false;
        self.meta_ready = false;
        self.batch.touched_alarm();
        Ok(())
    }

    // ----- alarm ---------------------------------------------------------------------------

    fn meta_exists(&mut self) -> Result<bool, SqlError> {
        if self.meta_ready {
            return Ok(true);
        }
        let exists = self
            .conn
            .prepare_cached(&self.internal.kv_exists)
            .and_then(|mut stmt| stmt.query_row([META_TABLE], |row| row.get::<_, i64>(0)))
            .map(|count| count > 0)
            .map_err(sqlite)?;
        self.meta_ready = exists;
        Ok(exists)
    }

    /// The stored alarm time, in milliseconds since the Unix epoch.
    pub fn alarm(&mut self) -> Result<Option<i64>, SqlError> {
        self.check_usable()?;
        if !self.meta_exists()? {
            return Ok(None);
        }
        let mut stmt = self
            .conn
            .prepare_cached(&self.internal.alarm_get)
            .map_err(sqlite)?;
        let mut rows = stmt.query([]).map_err(sqlite)?;
        match rows.next().map_err(sqlite)? {
            Some(row) => Ok(row.get::<_, Option<i64>>(0).map_err(sqlite)?),
            None => Ok(None),
        }
    }

    /// Stores the alarm time (`None` deletes it), as part of the open batch.
    pub fn set_alarm(&mut self, time_ms: Option<i64>, confirmed: bool) -> Result<(), SqlError> {
        self.check_usable()?;
        if time_ms.is_some() {
            self.check_room()?;
        }
        self.store_alarm(time_ms, confirmed)
            .map_err(|err| self.classify(err))
    }

    fn store_alarm(&mut self, time_ms: Option<i64>, confirmed: bool) -> Result<(), SqlError> {
        begin_write(&self.conn, &self.internal, &mut self.batch, confirmed)?;
        self.batch.touched_alarm();
        if !self.meta_exists()? {
            if time_ms.is_none() {
                return Ok(());
            }
            run(&self.conn, &self.internal.meta_create)?;
            self.meta_ready = true;
        }
        match time_ms {
            Some(time) => self
                .conn
                .prepare_cached(&self.internal.alarm_set)
                .and_then(|mut stmt| stmt.execute([time]))
                .map(drop)
                .map_err(sqlite),
            None => run(&self.conn, &self.internal.alarm_delete),
        }
    }

    // ----- KV ------------------------------------------------------------------------------

    /// Makes sure the KV table exists (`create`: creating it as part of the batch, as a write
    /// that is `confirmed` or not like the write that needs it).
    fn ensure_kv(&mut self, create: bool, confirmed: bool) -> Result<bool, SqlError> {
        if self.kv_ready {
            return Ok(true);
        }
        let exists: bool = self
            .conn
            .prepare_cached(&self.internal.kv_exists)
            .and_then(|mut stmt| stmt.query_row([KV_TABLE], |row| row.get::<_, i64>(0)))
            .map(|count| count > 0)
            .map_err(sqlite)?;
        if !exists {
            if !create {
                return Ok(false);
            }
            begin_write(&self.conn, &self.internal, &mut self.batch, confirmed)?;
            self.conn
                .execute_batch(&format!(
                    "CREATE TABLE {KV_TABLE} (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID"
                ))
                .map_err(sqlite)?;
        }
        self.kv_ready = true;
        Ok(true)
    }

    /// The stored bytes of `key`.
    pub fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.check_usable()?;
        kv::check_key(key)?;
        if !self.ensure_kv(false, true)? {
            return Ok(None);
        }
        let mut stmt = self
            .conn
            .prepare_cached(&self.internal.kv_get)
            .map_err(sqlite)?;
        let mut rows = stmt.query([key]).map_err(sqlite)?;
        match rows.next().map_err(sqlite)? {
            Some(row) => Ok(Some(row.get::<_, Vec<u8>>(0).map_err(sqlite)?)),
            None => Ok(None),
        }
    }

    /// The stored bytes of each of `keys` that exists, ordered by key.
    pub fn kv_get_many(&mut self, keys: &[&str]) -> Result<Vec<(String, Vec<u8>)>, KvError> {
        kv::check_batch(keys.len())?;
        let mut found = Vec::new();
        for key in keys {
            if let Some(value) = self.kv_get(key)? {
                found.push(((*key).to_owned(), value));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found.dedup_by(|a, b| a.0 == b.0);
        Ok(found)
    }

    /// Stores `value` under `key`. `confirmed` false marks an `allow_unconfirmed` write,
    /// which replies do not wait for.
    pub fn kv_put(&mut self, key: &str, value: &[u8], confirmed: bool) -> Result<(), KvError> {
        self.check_usable()?;
        kv::check_entry(key, value)?;
        self.check_room()?;
        self.put_entry(key, value, confirmed)
            .map_err(|err| self.classify_kv(err))
    }

    fn put_entry(&mut self, key: &str, value: &[u8], confirmed: bool) -> Result<(), KvError> {
        self.ensure_kv(true, confirmed)?;
        begin_write(&self.conn, &self.internal, &mut self.batch, confirmed)?;
        self.conn
            .prepare_cached(&self.internal.kv_put)
            .and_then(|mut stmt| stmt.execute(rusqlite::params![key, value]))
            .map_err(sqlite)?;
        Ok(())
    }

    /// Stores several entries; all or none are checked before any is written.
    pub fn kv_put_many(
        &mut self,
        entries: &[(String, Vec<u8>)],
        confirmed: bool,
    ) -> Result<(), KvError> {
        kv::check_batch(entries.len())?;
        for (key, value) in entries {
            kv::check_entry(key, value)?;
        }
        for (key, value) in entries {
            self.kv_put(key, value, confirmed)?;
        }
        Ok(())
    }

    /// Deletes `key`; true if it existed.
    pub fn kv_delete(&mut self, key: &str, confirmed: bool) -> Result<bool, KvError> {
        self.check_usable()?;
        kv::check_key(key)?;
        self.delete_entry(key, confirmed)
            .map_err(|err| self.classify_kv(err))
    }

    fn delete_entry(&mut self, key: &str, confirmed: bool) -> Result<bool, KvError> {
        if !self.ensure_kv(false, true)? {
            return Ok(false);
        }
        begin_write(&self.conn, &self.internal, &mut self.batch, confirmed)?;
        let deleted = self
            .conn
            .prepare_cached(&self.internal.kv_delete)
            .and_then(|mut stmt| stmt.execute([key]))
            .map_err(sqlite)?;
        Ok(deleted > 0)
    }

    /// Deletes several keys; returns how many existed.
    pub fn kv_delete_many(&mut self, keys: &[&str], confirmed: bool) -> Result<usize, KvError> {
        kv::check_batch(keys.len())?;
        for key in keys {
            kv::check_key(key)?;
        }
        let mut deleted = 0;
        for key in keys {
            deleted += usize::from(self.kv_delete(key, confirmed)?);
        }
        Ok(deleted)
    }

    /// The entries `options` selects, in order.
    pub fn kv_list(&mut self, options: &ListOptions) -> Result<Vec<(String, Vec<u8>)>, KvError> {
        self.check_usable()?;
        let (sql, params) = options.compile()?;
        if !self.ensure_kv(false, true)? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached(&self.internal.tag(&sql))
            .map_err(sqlite)?;
        let rows = stmt
            .query_map(params_from_iter(params.iter()), |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .map_err(sqlite)?;
        Ok(rows.collect::<Result<Vec<_>, _>>().map_err(sqlite)?)
    }
}

/// Runs `statement` to its end with `params` bound; keeps its rows when `limit` is given
/// (the last statement of a text), up to `limit` bytes.
fn run_statement(
    statement: &mut Prepared,
    params: &[SqlValue],
    limit: Option<usize>,
) -> Result<(Vec<String>, VecDeque<Vec<SqlValue>>), SqlError> {
    for (position, value) in params.iter().enumerate() {
        statement.bind(position + 1, value)?;
    }
    let width = statement.column_count();
    let columns = if limit.is_some() {
        (0..width).map(|i| statement.column_name(i)).collect()
    } else {
        Vec::new()
    };
    let mut rows = VecDeque::new();
    let mut held: usize = 0;
    while let Step::Row = statement.step()? {
        let Some(limit) = limit else { continue };
        let row: Vec<SqlValue> = (0..width).map(|i| statement.column(i)).collect();
        // What the row costs in memory: its values' bytes plus a fixed overhead per value.
        held += row
            .iter()
            .map(|value| value.byte_len() + std::mem::size_of::<SqlValue>())
            .sum::<usize>();
        if held > limit {
            return Err(SqlError::ResultTooLarge { limit });
        }
        rows.push_back(row);
    }
    Ok((columns, rows))
}

/// What a text holds when it holds no statement.
struct Trivia {
    /// It holds a comment (not only whitespace and semicolons).
    comment: bool,
}

/// `Some` if `text` is only whitespace, semicolons and comments (no statement).
fn trivia(text: &str) -> Option<Trivia> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut comment = false;
    while i < bytes.len() {
        match bytes[i] {
            b';' => i += 1,
            c if c.is_ascii_whitespace() => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                comment = true;
                i = text[i..].find('\n').map_or(bytes.len(), |p| i + p + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                comment = true;
                i = text[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |p| i + 2 + p + 2);
            }
            _ => return None,
        }
    }
    Some(Trivia { comment })
}
