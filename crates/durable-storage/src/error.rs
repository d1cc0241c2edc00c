//! Errors of storage operations, one enum per API, each convertible into the public `Error`.

use durable_core::codec::CodecError;
use durable_core::{Error, ErrorKind};

use crate::authorizer::Refusal;

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
    /// `one()` found no row or several.
    #[error("expected exactly one result from SQL query, but got {found}")]
    NotOneRow {
        /// "no results" or "multiple results".
        found: &'static str,
    },
    /// A column asked for by name does not exist in the result.
    #[error("no column named {name:?} in the result; the columns are {columns:?}")]
    NoSuchColumn {
        /// The name asked for.
        name: String,
        /// The columns of the result.
        columns: Vec<String>,
    },
    /// A value could not be converted into the requested type.
    #[error("column {column:?}: {reason}")]
    Conversion {
        /// The column.
        column: String,
        /// Why it does not convert.
        reason: String,
    },
    /// SQLite reported an error; the message ends with its result code (`SQLITE_ERROR`, ...).
    #[error("{message}: {code}")]
    Sqlite {
        /// SQLite's message.
        message: String,
        /// The symbolic result code.
        code: String,
    },
    /// The object's storage failed earlier and no longer accepts work.
    #[error("storage is unavailable: {0}")]
    Broken(String),
}

impl SqlError {
    pub(crate) fn from_sqlite(err: &rusqlite::Error) -> Self {
        match err {
            rusqlite::Error::SqliteFailure(failure, message) => SqlError::Sqlite {
                message: message.clone().unwrap_or_else(|| failure.to_string()),
                code: code_name(failure.extended_code),
            },
            rusqlite::Error::InvalidParameterCount(given, expected) => SqlError::ParameterCount {
                given: *given,
                expected: *expected,
            },
            rusqlite::Error::MultipleStatement => SqlError::Sqlite {
                message: "multiple statements where one was expected".to_owned(),
                code: "SQLITE_MISUSE".to_owned(),
            },
            other => SqlError::Sqlite {
                message: other.to_string(),
                code: "SQLITE_ERROR".to_owned(),
            },
        }
    }
}

/// The symbolic name of an SQLite result code, as Cloudflare prints them.
fn code_name(extended: i32) -> String {
    let primary = extended & 0xff;
    let name = match primary {
        1 => "SQLITE_ERROR",
        2 => "SQLITE_INTERNAL",
        3 => "SQLITE_PERM",
        4 => "SQLITE_ABORT",
        5 => "SQLITE_BUSY",
        6 => "SQLITE_LOCKED",
        7 => "SQLITE_NOMEM",
        8 => "SQLITE_READONLY",
        9 => "SQLITE_INTERRUPT",
        10 => "SQLITE_IOERR",
        11 => "SQLITE_CORRUPT",
        13 => "SQLITE_FULL",
        14 => "SQLITE_CANTOPEN",
        18 => "SQLITE_TOOBIG",
        19 => "SQLITE_CONSTRAINT",
        20 => "SQLITE_MISMATCH",
        21 => "SQLITE_MISUSE",
        23 => "SQLITE_AUTH",
        25 => "SQLITE_RANGE",
        _ => return format!("SQLITE_ERROR_{extended}"),
    };
    name.to_owned()
}

impl From<SqlError> for Error {
    fn from(err: SqlError) -> Self {
        let kind = match &err {
            SqlError::Sqlite { code, .. }
                if code == "SQLITE_IOERR"
                    || code == "SQLITE_CORRUPT"
                    || code == "SQLITE_FULL"
                    || code == "SQLITE_CANTOPEN"
                    || code == "SQLITE_NOMEM" =>
            {
                ErrorKind::Storage
            }
            SqlError::Broken(_) => ErrorKind::Storage,
            SqlError::Conversion { .. } => ErrorKind::Codec,
            _ => ErrorKind::InvalidInput,
        };
        Error::new(kind, err.to_string())
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
        match err {
            KvError::Codec(codec) => Error::from(codec),
            KvError::Sql(sql) => Error::from(sql),
            other => Error::new(ErrorKind::InvalidInput, other.to_string()),
        }
    }
}

/// The database of an object could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("open object database {path}: {reason}")]
pub struct OpenError {
    /// The database file.
    pub path: std::path::PathBuf,
    /// What failed.
    pub reason: String,
}

impl From<OpenError> for Error {
    fn from(err: OpenError) -> Self {
        Error::new(ErrorKind::Storage, err.to_string()).with_retryable(true)
    }
}

/// A commit or fsync failed: the writes since the last durable point may be lost, and the
/// object must be reset.
#[derive(Debug, Clone, thiserror::Error)]
#[error("commit failed: {reason}")]
pub struct CommitError {
    /// What failed.
    pub reason: String,
}

impl From<CommitError> for Error {
    fn from(err: CommitError) -> Self {
        Error::new(ErrorKind::Storage, err.to_string())
    }
}
