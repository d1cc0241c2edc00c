//! Errors of storage operations: one type per API or operation, each with typed fields and
//! each convertible into the public `Error`.
//!
//! * [`SqlError`]: a statement that could not run (SQLite's result code is a [`SqliteCode`]);
//! * [`KvError`]: a KV operation refused or failed;
//! * [`OpenError`]: an object database that could not be opened;
//! * [`CommitError`]: a commit, its capture or its fsync that failed (the object must reset);
//! * [`AlarmIndexError`]: the node's alarm index could not be read or written;
//! * [`WalError`]: the WAL frames of a commit could not be read back.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use durable_core::codec::CodecError;
use durable_core::{Error, ErrorDetail, ErrorKind, Limit};

use crate::authorizer::Refusal;

/// An SQLite result code, by its primary code (the extended code is kept beside it where a
/// program may branch on it, see [`SqlError::extended_name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SqliteCode {
    /// `SQLITE_ERROR`: a generic error (syntax, missing table, ...).
    Error,
    /// `SQLITE_INTERNAL`.
    Internal,
    /// `SQLITE_PERM`: access permission denied.
    Perm,
    /// `SQLITE_ABORT`.
    Abort,
    /// `SQLITE_BUSY`.
    Busy,
    /// `SQLITE_LOCKED`.
    Locked,
    /// `SQLITE_NOMEM`: out of memory.
    NoMem,
    /// `SQLITE_READONLY`.
    ReadOnly,
    /// `SQLITE_INTERRUPT`.
    Interrupt,
    /// `SQLITE_IOERR`: the disk or the operating system failed.
    IoErr,
    /// `SQLITE_CORRUPT`: the database file is damaged.
    Corrupt,
    /// `SQLITE_FULL`: the disk, or the object's size limit, is full.
    Full,
    /// `SQLITE_CANTOPEN`.
    CantOpen,
    /// `SQLITE_NOTADB`: the file is not an SQLite database.
    NotADatabase,
    /// `SQLITE_TOOBIG`: a string or blob is over the size limit.
    TooBig,
    /// `SQLITE_CONSTRAINT`: a constraint failed.
    Constraint,
    /// `SQLITE_MISMATCH`: a data type mismatch.
    Mismatch,
    /// `SQLITE_MISUSE`.
    Misuse,
    /// `SQLITE_AUTH`: the authorizer refused.
    Auth,
    /// `SQLITE_RANGE`: a parameter index out of range.
    Range,
    /// Any other primary code.
    Other(i32),
}

impl SqliteCode {
    /// The code of an (extended) SQLite result code.
    pub fn from_extended(extended: i32) -> Self {
        match extended & 0xff {
            1 => Self::Error,
            2 => Self::Internal,
            3 => Self::Perm,
            4 => Self::Abort,
            5 => Self::Busy,
            6 => Self::Locked,
            7 => Self::NoMem,
            8 => Self::ReadOnly,
            9 => Self::Interrupt,
            10 => Self::IoErr,
            11 => Self::Corrupt,
            13 => Self::Full,
            14 => Self::CantOpen,
            18 => Self::TooBig,
            19 => Self::Constraint,
            20 => Self::Mismatch,
            21 => Self::Misuse,
            23 => Self::Auth,
            25 => Self::Range,
            26 => Self::NotADatabase,
            other => Self::Other(other),
        }
    }

    /// The name of an extended result code a program may branch on: the constraint kinds
    /// (`SQLITE_CONSTRAINT_UNIQUE`, ...); other codes are named by their primary code.
    pub fn extended_name(extended: i32) -> String {
        let name = match extended {
            275 => "SQLITE_CONSTRAINT_CHECK",
            531 => "SQLITE_CONSTRAINT_COMMITHOOK",
            787 => "SQLITE_CONSTRAINT_FOREIGNKEY",
            1043 => "SQLITE_CONSTRAINT_FUNCTION",
            1299 => "SQLITE_CONSTRAINT_NOTNULL",
            1555 => "SQLITE_CONSTRAINT_PRIMARYKEY",
            1811 => "SQLITE_CONSTRAINT_TRIGGER",
            2067 => "SQLITE_CONSTRAINT_UNIQUE",
            2323 => "SQLITE_CONSTRAINT_VTAB",
            2579 => "SQLITE_CONSTRAINT_ROWID",
            2835 => "SQLITE_CONSTRAINT_PINNED",
            3091 => "SQLITE_CONSTRAINT_DATATYPE",
            other => return Self::from_extended(other).to_string(),
        };
        name.to_owned()
    }

    /// True for codes that mean the storage underneath failed, not the statement.
    pub fn is_storage_failure(self) -> bool {
        matches!(
            self,
            Self::IoErr | Self::Corrupt | Self::Full | Self::CantOpen | Self::NoMem
        )
    }
}

impl fmt::Display for SqliteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Error => "SQLITE_ERROR",
            Self::Internal => "SQLITE_INTERNAL",
            Self::Perm => "SQLITE_PERM",
            Self::Abort => "SQLITE_ABORT",
            Self::Busy => "SQLITE_BUSY",
            Self::Locked => "SQLITE_LOCKED",
            Self::NoMem => "SQLITE_NOMEM",
            Self::ReadOnly => "SQLITE_READONLY",
            Self::Interrupt => "SQLITE_INTERRUPT",
            Self::IoErr => "SQLITE_IOERR",
            Self::Corrupt => "SQLITE_CORRUPT",
            Self::Full => "SQLITE_FULL",
            Self::CantOpen => "SQLITE_CANTOPEN",
            Self::NotADatabase => "SQLITE_NOTADB",
            Self::TooBig => "SQLITE_TOOBIG",
            Self::Constraint => "SQLITE_CONSTRAINT",
            Self::Mismatch => "SQLITE_MISMATCH",
            Self::Misuse => "SQLITE_MISUSE",
            Self::Auth => "SQLITE_AUTH",
            Self::Range => "SQLITE_RANGE",
            Self::Other(code) => return write!(f, "SQLITE_ERROR_{code}"),
        };
        f.write_str(name)
    }
}

/// An SQL statement that could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// The authorizer refused the statement; the message names the rule.
    #[error("{0}")]
    Refused(Refusal),
    /// The query text holds no statement.
    #[error("SQL code did not contain a statement")]
    NoStatement,
    /// Text after the last statement is only a comment (SQLite would silently ignore it, and
    /// with it whatever the author meant to run).
    #[error(
        "SQL code after the last statement is only a comment: remove it, or put the comment before a statement"
    )]
    TrailingComment,
    /// The SQL text passed to one `exec` is longer than the limit.
    #[error(
        "SQL text is {len} bytes; the limit for one exec is {limit} bytes: split it into several calls"
    )]
    StatementTooLong {
        /// Length of the text in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A bound string or BLOB is larger than the value limit.
    #[error(
        "parameter {index} is {len} bytes; a string or BLOB value is at most {limit} bytes: store large data in pieces"
    )]
    ValueTooLarge {
        /// 1-based position of the parameter.
        index: usize,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The rows of a result would take more memory than the limit.
    #[error(
        "the result of the query is over {limit} bytes: select fewer rows or columns (use LIMIT and a WHERE on a key to page through it)"
    )]
    ResultTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The number of bound parameters does not match the last statement's placeholders.
    #[error(
        "wrong number of parameter bindings for SQL query: {given} given, the statement has {expected}"
    )]
    ParameterCount {
        /// Parameters passed.
        given: usize,
        /// Placeholders in the last statement.
        expected: usize,
    },
    /// `one()` found no row: use `one_or_none()` or `first()` when no row is a valid answer.
    #[error("expected exactly one result from SQL query, but got no results")]
    NoRows,
    /// `one()` found more than one row.
    #[error("expected exactly one result from SQL query, but got multiple results")]
    MultipleRows,
    /// A column asked for by name does not exist in the result.
    #[error("no column named {name:?} in the result; the columns are {columns:?}")]
    NoSuchColumn {
        /// The name asked for.
        name: String,
        /// The columns of the result.
        columns: Vec<String>,
    },
    /// A value could not be converted into the requested type.
    #[error("column {column:?}: {source}")]
    Conversion {
        /// The column.
        column: String,
        /// Why it does not convert.
        source: crate::value::ValueError,
    },
    /// SQLite reported an error; the message ends with its (extended) result code
    /// (`SQLITE_ERROR`, `SQLITE_CONSTRAINT_UNIQUE`, ...).
    #[error("{message}: {}", SqliteCode::extended_name(*extended))]
    Sqlite {
        /// SQLite's message.
        message: String,
        /// The primary result code.
        code: SqliteCode,
        /// The extended result code (equal to the primary one when SQLite has no finer code).
        extended: i32,
    },
    /// The object's storage failed earlier and no longer accepts work.
    #[error("storage is unavailable: {0}")]
    Broken(Box<CommitError>),
    /// The disk under the data folder is full: the write was refused (or failed) and nothing
    /// of it was kept. Reads and deletes still work.
    #[error(
        "the disk of the data folder is full: writes are refused until space is freed (reads and deletes still work)"
    )]
    DiskFull,
    /// The object's database reached its size limit: writes fail, deletes still work.
    #[error(
        "the object's database is full: it reached the limit of {limit} bytes; delete data to write again (SQLITE_FULL)"
    )]
    DatabaseFull {
        /// The limit.
        limit: u64,
    },
}

impl SqlError {
    /// An error SQLite reported with `extended` as its result code.
    pub(crate) fn sqlite(message: impl Into<String>, extended: i32) -> Self {
        SqlError::Sqlite {
            message: message.into(),
            code: SqliteCode::from_extended(extended),
            extended,
        }
    }

    pub(crate) fn from_sqlite(err: &rusqlite::Error) -> Self {
        match err {
            rusqlite::Error::SqliteFailure(failure, message) => SqlError::sqlite(
                message.clone().unwrap_or_else(|| failure.to_string()),
                failure.extended_code,
            ),
            // Never echo the statement: it may be long, and it is the caller's own text.
            rusqlite::Error::SqlInputError {
                error, msg, offset, ..
            } => SqlError::sqlite(format!("{msg} at offset {offset}"), error.extended_code),
            rusqlite::Error::InvalidParameterCount(given, expected) => SqlError::ParameterCount {
                given: *given,
                expected: *expected,
            },
            rusqlite::Error::MultipleStatement => {
                SqlError::sqlite("multiple statements where one was expected", 21)
            }
            other => SqlError::sqlite(other.to_string(), 1),
        }
    }

    /// SQLite's result code, for errors SQLite reported.
    pub fn sqlite_code(&self) -> Option<SqliteCode> {
        match self {
            SqlError::Sqlite { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The name of SQLite's extended result code (`SQLITE_CONSTRAINT_UNIQUE`, ...), for
    /// errors SQLite reported.
    pub fn extended_name(&self) -> Option<String> {
        match self {
            SqlError::Sqlite { extended, .. } => Some(SqliteCode::extended_name(*extended)),
            _ => None,
        }
    }

    /// The platform limit this error reports going over, with its value and the size asked
    /// for when known.
    pub fn exceeded_limit(&self) -> Option<(Limit, u64, Option<u64>)> {
        match self {
            SqlError::StatementTooLong { len, limit } => {
                Some((Limit::SqlStatementBytes, wide(*limit), Some(wide(*len))))
            }
            SqlError::ValueTooLarge { len, limit, .. } => {
                Some((Limit::SqlValueBytes, wide(*limit), Some(wide(*len))))
            }
            SqlError::ResultTooLarge { limit } => Some((Limit::SqlResultBytes, wide(*limit), None)),
            SqlError::Sqlite {
                code: SqliteCode::TooBig,
                ..
            } => Some((
                Limit::SqlRowBytes,
                wide(durable_core::limits::MAX_SQL_ROW_BYTES),
                None,
            )),
            SqlError::DatabaseFull { limit } => Some((Limit::DatabaseBytes, *limit, None)),
            SqlError::ParameterCount { given, .. } if *given > max_parameters() => Some((
                Limit::SqlParameters,
                wide(max_parameters()),
                Some(wide(*given)),
            )),
            _ => None,
        }
    }
}

fn max_parameters() -> usize {
    usize::try_from(durable_core::limits::MAX_SQL_PARAMETERS).unwrap_or(usize::MAX)
}

/// A size as the `u64` error details carry.
fn wide(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl From<rusqlite::Error> for SqlError {
    fn from(err: rusqlite::Error) -> Self {
        SqlError::from_sqlite(&err)
    }
}

impl From<SqlError> for Error {
    fn from(err: SqlError) -> Self {
        let kind = match &err {
            SqlError::Sqlite { code, .. } if code.is_storage_failure() => ErrorKind::Storage,
            SqlError::Broken(failure) if failure.is_disk_full() => ErrorKind::DiskFull,
            SqlError::Broken(_) => ErrorKind::Storage,
            SqlError::DiskFull => ErrorKind::DiskFull,
            SqlError::Conversion { .. } => ErrorKind::Codec,
            SqlError::NoRows => ErrorKind::NotFound,
            _ => ErrorKind::InvalidInput,
        };
        let detail = if let Some((limit, max, actual)) = err.exceeded_limit() {
            Some(ErrorDetail::Limit { limit, max, actual })
        } else {
            err.extended_name().map(|code| ErrorDetail::Sqlite { code })
        };
        let public = Error::new(kind, err.to_string());
        match detail {
            Some(detail) => public.with_detail(detail),
            None => public,
        }
    }
}

/// A KV operation that could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The key is longer than the limit.
    #[error("key is {len} bytes; the limit is {limit} bytes")]
    KeyTooLarge {
        /// Key length in UTF-8 bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Key and encoded value together exceed the limit.
    #[error(
        "value is {value_len} bytes encoded and its key {key_len} bytes; together the limit is {limit} bytes: store large data in pieces"
    )]
    EntryTooLarge {
        /// Key length.
        key_len: usize,
        /// Encoded value length.
        value_len: usize,
        /// The limit.
        limit: usize,
    },
    /// A batch operation named too many keys.
    #[error("a batch operation takes at most {limit} keys; {len} were given")]
    BatchTooLarge {
        /// Keys given.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// `list` with both `start` and `start_after`.
    #[error("list() cannot be called with both start and start_after values")]
    StartAndStartAfter,
    /// `list` with a limit of zero.
    #[error("list limit must be positive")]
    ZeroLimit,
    /// A value could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The database failed underneath.
    #[error(transparent)]
    Sql(#[from] SqlError),
}

impl From<KvError> for Error {
    fn from(err: KvError) -> Self {
        let message = err.to_string();
        match err {
            KvError::Codec(codec) => Error::from(codec),
            KvError::Sql(sql) => Error::from(sql),
            KvError::KeyTooLarge { len, limit } => {
                Error::limit_exceeded(Limit::KvKeyBytes, wide(limit), Some(wide(len)), message)
            }
            KvError::EntryTooLarge {
                key_len,
                value_len,
                limit,
            } => Error::limit_exceeded(
                Limit::KvEntryBytes,
                wide(limit),
                Some(wide(key_len + value_len)),
                message,
            ),
            KvError::BatchTooLarge { len, limit } => {
                Error::limit_exceeded(Limit::KvBatchKeys, wide(limit), Some(wide(len)), message)
            }
            KvError::StartAndStartAfter | KvError::ZeroLimit => {
                Error::new(ErrorKind::InvalidInput, message)
            }
        }
    }
}

impl From<rusqlite::Error> for KvError {
    fn from(err: rusqlite::Error) -> Self {
        KvError::Sql(SqlError::from_sqlite(&err))
    }
}

/// The database of an object could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("open object database {}: {failure}", path.display())]
pub struct OpenError {
    /// The database file.
    pub path: PathBuf,
    /// What failed.
    #[source]
    pub failure: OpenFailure,
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenFailure {
    /// Its folder could not be created.
    #[error("create its folder: {0}")]
    CreateFolder(#[source] std::io::Error),
    /// Its folder could not be synced after the database was created in it.
    #[error("sync its folder: {0}")]
    SyncFolder(#[source] std::io::Error),
    /// SQLite failed to open or configure it.
    #[error(transparent)]
    Sqlite(#[from] SqlError),
    /// The file exists but is not an SQLite database.
    #[error("the file is not an SQLite database ({0}); restore it from a backup or move it away")]
    NotADatabase(SqlError),
    /// SQLite would not switch the database to WAL mode.
    #[error("journal mode is {found:?}, not wal")]
    JournalMode {
        /// The mode SQLite reported.
        found: String,
    },
    /// The existing WAL could not be read to find where new commits start.
    #[error(transparent)]
    Wal(#[from] WalError),
}

impl OpenError {
    /// True when the database could not be created because the disk is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self.failure, OpenFailure::Sqlite(SqlError::DiskFull))
    }
}

impl From<OpenError> for Error {
    fn from(err: OpenError) -> Self {
        if err.is_disk_full() {
            return Error::disk_full(SqlError::DiskFull.to_string());
        }
        Error::new(ErrorKind::Storage, err.to_string()).with_retryable(true)
    }
}

/// An operating-system error that can be shared and compared (by its kind and OS code).
#[derive(Debug, Clone)]
pub struct IoFailure(Arc<std::io::Error>);

impl IoFailure {
    /// Wraps `error`.
    pub fn new(error: std::io::Error) -> Self {
        Self(Arc::new(error))
    }

    /// The kind of the error.
    pub fn kind(&self) -> std::io::ErrorKind {
        self.0.kind()
    }

    /// The operating system's error code, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.0.raw_os_error()
    }

    /// True for "no space left on device" and "disk quota exceeded".
    pub fn is_no_space(&self) -> bool {
        matches!(
            self.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        )
    }
}

impl PartialEq for IoFailure {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind() && self.raw_os_error() == other.raw_os_error()
    }
}

impl fmt::Display for IoFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for IoFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// A commit, its capture or its fsync failed: the writes since the last durable point may be
/// lost, and the object must be reset.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// SQLite refused the `COMMIT`.
    #[error("commit failed: {0}")]
    Sqlite(SqlError),
    /// SQLite rolled the open transaction back by itself after an earlier error (a full disk,
    /// an I/O error), so the batch's writes are gone.
    #[error("commit failed: SQLite rolled back the open transaction after an earlier error")]
    RolledBack,
    /// The WAL frames of the commit could not be read back for the capture point.
    #[error("commit capture failed: {0}")]
    Capture(WalError),
    /// The WAL could not be fsynced.
    #[error("fsync {}: {source}", path.display())]
    Sync {
        /// The WAL file.
        path: PathBuf,
        /// What the operating system said.
        source: IoFailure,
    },
}

impl CommitError {
    /// True when the commit failed because the disk is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, CommitError::Sqlite(SqlError::DiskFull))
            || matches!(self, CommitError::Sync { source, .. } if source.is_no_space())
    }
}

impl From<CommitError> for Error {
    fn from(err: CommitError) -> Self {
        let kind = if err.is_disk_full() {
            ErrorKind::DiskFull
        } else {
            ErrorKind::Storage
        };
        Error::new(kind, err.to_string())
    }
}

/// The node's alarm index could not be read or written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("alarm index {}: {operation}: {source}", path.display())]
pub struct AlarmIndexError {
    /// The index file.
    pub path: PathBuf,
    /// What was being done ("open", "apply changes", "load", ...).
    pub operation: &'static str,
    /// What SQLite said.
    #[source]
    pub source: SqlError,
}

/// The WAL frames of a commit could not be read back.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// Reading the WAL file failed.
    #[error("read {}: {source}", path.display())]
    Io {
        /// The WAL file.
        path: PathBuf,
        /// What the operating system said.
        source: IoFailure,
    },
    /// The WAL header is not one SQLite writes.
    #[error("{} has an invalid header: {reason}", path.display())]
    BadHeader {
        /// The WAL file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// No valid commit frame follows the last one read: the file does not hold the commit
    /// that was just made.
    #[error(
        "{} holds no valid commit frame after offset {offset}; the object's WAL does not match its commits",
        path.display()
    )]
    NoCommit {
        /// The WAL file.
        path: PathBuf,
        /// Where reading started.
        offset: u64,
    },
}
