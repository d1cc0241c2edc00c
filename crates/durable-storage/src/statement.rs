//! User SQL through SQLite's C API: the one module of the project with `unsafe` code.
//!
//! rusqlite covers everything else, but it hides two things user SQL needs:
//!
//! * the statement pointer, without which SQLite's per-statement step counters
//!   (`sqlite3_stmt_status`) cannot be read, and those counters are what `rows_read` is
//!   made of: the rows the statement's loops stepped through, not the rows it returned;
//! * the tail of `sqlite3_prepare_v3`, which cuts a multi-statement text exactly where SQLite
//!   itself ends each statement (no second tokenizer to drift from SQLite's).
//!
//! Every call is a thin, checked wrapper. Invariants that make them sound:
//!
//! * a [`Prepared`] statement belongs to the connection that prepared it and is only used
//!   through `&mut ObjectDatabase`, which owns that connection, so never from two threads at
//!   once (hence the `Send` impl);
//! * statements are finalized before their connection is closed: `ObjectDatabase` drops its
//!   statement cache first;
//! * a value read from a column is copied out before the next `step`, `reset` or
//!   `finalize`, which would invalidate SQLite's buffer.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr::NonNull;

use rusqlite::Connection;
use rusqlite::ffi;

use crate::error::SqlError;
use crate::value::SqlValue;

/// The error SQLite last reported on `db`, with `rc` as the fallback code.
fn last_error(db: *mut ffi::sqlite3, rc: c_int) -> SqlError {
    // SAFETY: `db` is a live connection handle; errmsg returns a NUL-terminated string owned
    // by SQLite, copied here before any other call on the connection.
    let (message, extended, offset) = unsafe {
        let message = ffi::sqlite3_errmsg(db);
        let message = if message.is_null() {
            String::from("unknown error")
        } else {
            CStr::from_ptr(message).to_string_lossy().into_owned()
        };
        (
            message,
            ffi::sqlite3_extended_errcode(db),
            ffi::sqlite3_error_offset(db),
        )
    };
    let extended = if extended == 0 { rc } else { extended };
    // The offset says where in the statement the error is; the statement itself is never
    // echoed (it may be long, and the caller has it).
    if offset >= 0 {
        SqlError::sqlite(format!("{message} at offset {offset}"), extended)
    } else {
        SqlError::sqlite(message, extended)
    }
}

fn handle(conn: &Connection) -> *mut ffi::sqlite3 {
    // SAFETY: the handle is only used while `conn` is borrowed, on its thread, and never
    // closed here.
    unsafe { conn.handle() }
}

/// One compiled statement of user SQL.
#[derive(Debug)]
pub(crate) struct Prepared {
    stmt: NonNull<ffi::sqlite3_stmt>,
    /// Bytes of the text this statement was compiled from (up to the tail).
    consumed: usize,
    /// The statement is SQLite's "simple count" (`SELECT count(*) FROM t`), which counts a
    /// table's rows from its b-tree without a loop the scan counters see: the rows it read
    /// are its result.
    pub(crate) simple_count: bool,
    /// The statement may make the database bigger (it inserts, updates or creates): refused
    /// while the disk is full.
    pub(crate) grows: bool,
}

// SAFETY: see the module invariants: a statement is used only through the `&mut` owner of
// its connection, which may move between threads but is never shared.
unsafe impl Send for Prepared {}

impl Drop for Prepared {
    fn drop(&mut self) {
        // SAFETY: the statement is live and finalized exactly once, before its connection
        // closes (module invariants).
        unsafe {
            ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

/// What compiling the start of a text produced.
#[derive(Debug)]
pub(crate) enum Compiled {
    /// A statement, and how many bytes of the text it used.
    Statement(Prepared),
    /// The text held only whitespace, comments and semicolons.
    Nothing,
}

/// Compiles the first statement of `sql`.
pub(crate) fn prepare(conn: &Connection, sql: &str) -> Result<Compiled, SqlError> {
    let db = handle(conn);
    let Ok(len) = c_int::try_from(sql.len()) else {
        return Err(SqlError::sqlite("SQL text is too long", ffi::SQLITE_TOOBIG));
    };
    let mut stmt: *mut ffi::sqlite3_stmt = std::ptr::null_mut();
    let mut tail: *const c_char = std::ptr::null();
    let start = sql.as_ptr().cast::<c_char>();
    // SAFETY: `start..start+len` is the borrowed text; SQLite reads only that range (the
    // length is given, no NUL needed) and sets `tail` inside it or at its end.
    let rc = unsafe {
        ffi::sqlite3_prepare_v3(
            db,
            start,
            len,
            ffi::SQLITE_PREPARE_PERSISTENT,
            &raw mut stmt,
            &raw mut tail,
        )
    };
    if rc != ffi::SQLITE_OK {
        if !stmt.is_null() {
            // SAFETY: a statement returned with an error is still ours to finalize.
            unsafe { ffi::sqlite3_finalize(stmt) };
        }
        return Err(last_error(db, rc));
    }
    let consumed = if tail.is_null() {
        sql.len()
    } else {
        // SAFETY: `tail` points into the same text as `start`, at or after it.
        let offset = unsafe { tail.offset_from(start) };
        usize::try_from(offset).unwrap_or(sql.len()).min(sql.len())
    };
    Ok(match NonNull::new(stmt) {
        Some(stmt) => Compiled::Statement(Prepared {
            stmt,
            consumed,
            simple_count: false,
            grows: false,
        }),
        None => Compiled::Nothing,
    })
}

/// A step of a statement.
pub(crate) enum Step {
    /// A row is ready to be read.
    Row,
    /// The statement ran to its end.
    Done,
}

impl Prepared {
    fn ptr(&self) -> *mut ffi::sqlite3_stmt {
        self.stmt.as_ptr()
    }

    fn db(&self) -> *mut ffi::sqlite3 {
        // SAFETY: the statement is live.
        unsafe { ffi::sqlite3_db_handle(self.ptr()) }
    }

    /// Bytes of the text the statement was compiled from.
    pub(crate) fn consumed(&self) -> usize {
        self.consumed
    }

    /// True if the statement cannot change the database.
    pub(crate) fn readonly(&self) -> bool {
        // SAFETY: the statement is live.
        unsafe { ffi::sqlite3_stmt_readonly(self.ptr()) != 0 }
    }

    /// Placeholders of the statement.
    pub(crate) fn parameter_count(&self) -> usize {
        // SAFETY: the statement is live.
        let count = unsafe { ffi::sqlite3_bind_parameter_count(self.ptr()) };
        usize::try_from(count).unwrap_or(0)
    }

    /// Result columns of the statement.
    pub(crate) fn column_count(&self) -> usize {
        // SAFETY: the statement is live.
        let count = unsafe { ffi::sqlite3_column_count(self.ptr()) };
        usize::try_from(count).unwrap_or(0)
    }

    /// The name of result column `index`.
    pub(crate) fn column_name(&self, index: usize) -> String {
        let Ok(index) = c_int::try_from(index) else {
            return String::new();
        };
        // SAFETY: the statement is live; the name is copied before any other call on it.
        unsafe {
            let name = ffi::sqlite3_column_name(self.ptr(), index);
            if name.is_null() {
                String::new()
            } else {
                CStr::from_ptr(name).to_string_lossy().into_owned()
            }
        }
    }

    /// Binds `value` to placeholder `index` (1-based).
    pub(crate) fn bind(&mut self, index: usize, value: &SqlValue) -> Result<(), SqlError> {
        let position = c_int::try_from(index)
            .map_err(|_| SqlError::sqlite("parameter index out of range", ffi::SQLITE_RANGE))?;
        let stmt = self.ptr();
        // SAFETY: the statement is live; text and blob bytes are copied by SQLite
        // (SQLITE_TRANSIENT) before the call returns, so the borrows may end after it.
        let rc = unsafe {
            match value {
                SqlValue::Null => ffi::sqlite3_bind_null(stmt, position),
                SqlValue::Integer(i) => ffi::sqlite3_bind_int64(stmt, position, *i),
                SqlValue::Real(f) => ffi::sqlite3_bind_double(stmt, position, *f),
                SqlValue::Text(text) => ffi::sqlite3_bind_text64(
                    stmt,
                    position,
                    text.as_ptr().cast::<c_char>(),
                    text.len() as u64,
                    ffi::SQLITE_TRANSIENT(),
                    ffi::SQLITE_UTF8 as u8,
                ),
                SqlValue::Blob(bytes) => ffi::sqlite3_bind_blob64(
                    stmt,
                    position,
                    bytes.as_ptr().cast::<c_void>(),
                    bytes.len() as u64,
                    ffi::SQLITE_TRANSIENT(),
                ),
            }
        };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(last_error(self.db(), rc))
        }
    }

    /// Runs the statement to its next row or its end.
    pub(crate) fn step(&mut self) -> Result<Step, SqlError> {
        // SAFETY: the statement is live and used by one caller at a time.
        let rc = unsafe { ffi::sqlite3_step(self.ptr()) };
        match rc {
            ffi::SQLITE_ROW => Ok(Step::Row),
            ffi::SQLITE_DONE => Ok(Step::Done),
            rc => Err(last_error(self.db(), rc)),
        }
    }

    /// The value of column `index` of the current row, copied out.
    pub(crate) fn column(&self, index: usize) -> SqlValue {
        let Ok(column) = c_int::try_from(index) else {
            return SqlValue::Null;
        };
        let stmt = self.ptr();
        // SAFETY: called only after `step` returned a row; text and blob bytes are copied
        // before the next call on the statement. A NULL pointer with a zero length is an
        // empty value.
        unsafe {
            match ffi::sqlite3_column_type(stmt, column) {
                ffi::SQLITE_INTEGER => SqlValue::Integer(ffi::sqlite3_column_int64(stmt, column)),
                ffi::SQLITE_FLOAT => SqlValue::Real(ffi::sqlite3_column_double(stmt, column)),
                ffi::SQLITE_TEXT => {
                    let text = ffi::sqlite3_column_text(stmt, column);
                    let len = usize::try_from(ffi::sqlite3_column_bytes(stmt, column)).unwrap_or(0);
                    if text.is_null() || len == 0 {
                        SqlValue::Text(String::new())
                    } else {
                        let bytes = std::slice::from_raw_parts(text, len);
                        SqlValue::Text(String::from_utf8_lossy(bytes).into_owned())
                    }
                }
                ffi::SQLITE_BLOB => {
                    let blob = ffi::sqlite3_column_blob(stmt, column);
                    let len = usize::try_from(ffi::sqlite3_column_bytes(stmt, column)).unwrap_or(0);
                    if blob.is_null() || len == 0 {
                        SqlValue::Blob(Vec::new())
                    } else {
                        SqlValue::Blob(std::slice::from_raw_parts(blob.cast::<u8>(), len).to_vec())
                    }
                }
                _ => SqlValue::Null,
            }
        }
    }

    /// How many times the statement's loops stepped from one row to the next since it was
    /// last reset: SQLite's step counters of full-table scans and of index and rowid range
    /// scans (`sqlite3_stmt_status` 1, and 0, where SQLite counts the steps of loops that
    /// are not full scans). Always available, and free: SQLite counts them anyway.
    pub(crate) fn rows_stepped(&self) -> u64 {
        let stmt = self.ptr();
        // SAFETY: the statement is live; codes 0 and 1 index SQLite's counter array (0 is
        // where steps of non-full-scan loops land).
        let (other, full) = unsafe {
            (
                ffi::sqlite3_stmt_status(stmt, 0, 0),
                ffi::sqlite3_stmt_status(stmt, ffi::SQLITE_STMTSTATUS_FULLSCAN_STEP, 0),
            )
        };
        u64::try_from(other).unwrap_or(0) + u64::try_from(full).unwrap_or(0)
    }

    /// Makes the statement ready to run again: rewound, bindings cleared, counters zeroed.
    pub(crate) fn reset(&mut self) {
        let stmt = self.ptr();
        // SAFETY: the statement is live. `reset` repeats the last step's error, which the
        // step already reported; a status call with the reset flag zeroes that counter.
        unsafe {
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
            ffi::sqlite3_stmt_status(stmt, 0, 1);
            ffi::sqlite3_stmt_status(stmt, ffi::SQLITE_STMTSTATUS_FULLSCAN_STEP, 1);
        }
    }
}

/// Rows inserted, updated or deleted on `conn` so far, triggers included.
pub(crate) fn total_changes(conn: &Connection) -> u64 {
    // SAFETY: the handle is live while `conn` is borrowed.
    let changes = unsafe { ffi::sqlite3_total_changes64(handle(conn)) };
    u64::try_from(changes).unwrap_or(0)
}
