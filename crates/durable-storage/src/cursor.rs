//! The result of `exec`: rows, column names and counters.
//!
//! A cursor holds its rows already read: SQLite statements are finished before `exec`
//! returns, so a cursor can be kept across awaits without pinning a statement (Cloudflare's
//! cursors are lazy and see later writes when consumed across an await; these never do).

use std::collections::VecDeque;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::error::SqlError;
use crate::value::{FromSqlValue, SqlValue};

/// The rows of the last statement of an `exec` call.
#[derive(Debug, Clone)]
pub struct SqlCursor {
    columns: Arc<[String]>,
    rows: VecDeque<Vec<SqlValue>>,
    rows_read: u64,
    rows_written: u64,
}

impl SqlCursor {
    pub(crate) fn new(
        columns: Vec<String>,
        rows: VecDeque<Vec<SqlValue>>,
        rows_read: u64,
        rows_written: u64,
    ) -> Self {
        Self {
            columns: columns.into(),
            rows,
            rows_read,
            rows_written,
        }
    }

    /// The names of the result columns, in order (duplicates possible; empty for statements
    /// without results).
    pub fn column_names(&self) -> &[String] {
        &self.columns
    }

    /// Rows the query *scanned* (what Cloudflare reports and bills), not rows returned: a
    /// `SELECT` that filters 100 rows down to 1 without an index reads 100; an `UPDATE` of 100
    /// rows reads 100; `count(*)` over 100 rows reads 100; a lookup by key reads 1. For a text
    /// of several statements, the counters are those of the last one.
    ///
    /// It is counted from SQLite's step counters, which SQLite keeps anyway, so counting
    /// costs nothing; two differences from Cloudflare's count follow from that: an index
    /// range scan also counts the entry past its last match (SQLite reads it to see the range
    /// end), and in a join the rows an inner loop reaches by a direct key lookup are not
    /// counted.
    pub fn rows_read(&self) -> u64 {
        self.rows_read
    }

    /// Rows the query inserted, updated or deleted, including rows its triggers changed.
    pub fn rows_written(&self) -> u64 {
        self.rows_written
    }

    /// The only remaining row. [`SqlError::NoRows`] if there is none (use
    /// [`one_or_none`](Self::one_or_none) or [`first`](Self::first) when that is a valid
    /// answer), [`SqlError::MultipleRows`] if there are more.
    pub fn one(self) -> Result<SqlRow, SqlError> {
        self.one_or_none()?.ok_or(SqlError::NoRows)
    }

    /// The only remaining row, or `None` if there is none; [`SqlError::MultipleRows`] if
    /// there are more.
    pub fn one_or_none(mut self) -> Result<Option<SqlRow>, SqlError> {
        match (self.rows.pop_front(), self.rows.is_empty()) {
            (Some(values), true) => Ok(Some(SqlRow {
                columns: self.columns,
                values,
            })),
            (None, _) => Ok(None),
            (Some(_), false) => Err(SqlError::MultipleRows),
        }
    }

    /// The first remaining row, if any; the others are dropped.
    pub fn first(mut self) -> Option<SqlRow> {
        self.next()
    }

    /// The only remaining row, deserialized into `T` (see [`SqlRow::deserialize`]).
    pub fn one_as<T: DeserializeOwned>(self) -> Result<T, SqlError> {
        self.one()?.deserialize()
    }

    /// Every remaining row, deserialized into `T`.
    pub fn to_vec<T: DeserializeOwned>(self) -> Result<Vec<T>, SqlError> {
        self.map(|row| row.deserialize()).collect()
    }

    /// Every remaining row as its values, in column order.
    pub fn raw(self) -> impl Iterator<Item = Vec<SqlValue>> {
        self.rows.into_iter()
    }
}

impl Iterator for SqlCursor {
    type Item = SqlRow;

    fn next(&mut self) -> Option<SqlRow> {
        self.rows.pop_front().map(|values| SqlRow {
            columns: Arc::clone(&self.columns),
            values,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.rows.len(), Some(self.rows.len()))
    }
}

/// One row of a result.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlRow {
    columns: Arc<[String]>,
    values: Vec<SqlValue>,
}

impl SqlRow {
    /// The value of `column` as a `T`. With duplicate column names the last one wins.
    pub fn get<T: FromSqlValue>(&self, column: &str) -> Result<T, SqlError> {
        let index = self
            .columns
            .iter()
            .rposition(|name| name == column)
            .ok_or_else(|| SqlError::NoSuchColumn {
                name: column.to_owned(),
                columns: self.columns.to_vec(),
            })?;
        self.get_index(index)
    }

    /// The value of the column at `index` as a `T`.
    pub fn get_index<T: FromSqlValue>(&self, index: usize) -> Result<T, SqlError> {
        let column = self
            .columns
            .get(index)
            .cloned()
            .unwrap_or_else(|| index.to_string());
        let value = self
            .values
            .get(index)
            .ok_or_else(|| SqlError::NoSuchColumn {
                name: column.clone(),
                columns: self.columns.to_vec(),
            })?;
        T::from_sql_value(value).map_err(|source| SqlError::Conversion { column, source })
    }

    /// The values, in column order.
    pub fn values(&self) -> &[SqlValue] {
        &self.values
    }

    /// The column names.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The row as a serde type whose fields are the column names. INTEGER, REAL and TEXT
    /// map to numbers and strings, NULL to `None`, and BLOB to bytes (use
    /// `serde_bytes::ByteBuf` or `#[serde(with = "serde_bytes")]` for a `Vec<u8>` field).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, SqlError> {
        let map = self
            .columns
            .iter()
            .zip(&self.values)
            .map(|(name, value)| (rmpv::Value::from(name.as_str()), value.to_rmpv()))
            .collect();
        rmpv::ext::from_value(rmpv::Value::Map(map)).map_err(|err| SqlError::Conversion {
            column: format!("row as {}", std::any::type_name::<T>()),
            source: crate::value::ValueError::Other(err.to_string()),
        })
    }
}
