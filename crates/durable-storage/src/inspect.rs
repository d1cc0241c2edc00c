//! Looking at a data folder from outside the runtime, read-only: the objects it holds
//! ([`list_objects`], streamed, in constant memory) and one object's database
//! ([`ObjectReader`]: its SQL tables, KV entries and alarm).
//!
//! Everything here only reads, so it is safe beside a running node: SQLite's WAL mode lets
//! other processes read a database while its one writer commits, each read seeing one
//! consistent state. Nothing here writes an object (a write must go through the runtime, so
//! that it reaches the commit log and the alarm index).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::catalog::ObjectCatalog;
use crate::database::META_TABLE;
use crate::error::SqlError;
use crate::kv::KV_TABLE;
use crate::layout::DataLayout;
use crate::value::SqlValue;

/// Why the data folder or an object could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// A folder or file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// SQLite refused or failed.
    #[error("{0}")]
    Sql(#[from] SqlError),
    /// The catalog could not be read.
    #[error("{0}")]
    Catalog(#[from] crate::catalog::CatalogError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InspectError + '_ {
    move |source| InspectError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sql(error: rusqlite::Error) -> InspectError {
    InspectError::Sql(SqlError::from(error))
}

/// One object of the data folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectListing {
    /// Its class (namespace).
    pub class: String,
    /// Its id, 64 hex digits.
    pub id: String,
    /// The name its id was made from, if the catalog knows it.
    pub name: Option<String>,
    /// Its database's bytes on disk (with its WAL).
    pub bytes: u64,
    /// When it was last active (started, stopped, or wrote), in milliseconds since the Unix
    /// epoch.
    pub last_active_ms: Option<i64>,
    /// Its pending alarm, in milliseconds since the Unix epoch.
    pub alarm_ms: Option<i64>,
}

/// Which objects [`list_objects`] lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this class.
    pub class: Option<String>,
    /// Only objects whose name, or id, starts with this.
    pub prefix: Option<String>,
}

/// Lists the objects of the data folder at `layout`, class by class and by id, calling
/// `each` with every one that passes `filter` as it is found (the folder is read a directory
/// at a time: memory does not grow with the number of objects). Returns how many were
/// listed; `each` returning `false` stops the listing.
pub fn list_objects(
    layout: &DataLayout,
    filter: &ListFilter,
    mut each: impl FnMut(ObjectListing) -> bool,
) -> Result<u64, InspectError> {
    let catalog = ObjectCatalog::open_read_only(&layout.catalog())?;
    let alarms = open_read_only(&layout.alarm_index())?;
    let alarm_of = |class: &str, id: &str| -> Result<Option<i64>, InspectError> {
        let Some(alarms) = &alarms else {
            return Ok(None);
        };
        alarms
            .prepare_cached("SELECT time FROM alarms WHERE class = ?1 AND id = ?2")
            .and_then(|mut s| s.query_row(params![class, id], |row| row.get(0)).optional())
            .map_err(sql)
    };
    let mut listed = 0;
    for class in sorted_names(&layout.objects_dir(), true)? {
        if filter.class.as_ref().is_some_and(|only| *only != class) {
            continue;
        }
        let class_dir = layout.class_dir(&class);
        for fan in sorted_names(&class_dir, true)? {
            for file in sorted_names(&class_dir.join(&fan), false)? {
                let Some(id) = file.strip_suffix(".sqlite") else {
                    continue;
                };
                let db = class_dir.join(&fan).join(&file);
                let entry = match &catalog {
                    Some(catalog) => catalog.entry(&class, id)?,
                    None => None,
                };
                let name = entry.as_ref().and_then(|e| e.name.clone());
                if let Some(prefix) = &filter.prefix
                    && !id.starts_with(prefix.as_str())
                    && !name
                        .as_deref()
                        .is_some_and(|n| n.starts_with(prefix.as_str()))
                {
                    continue;
                }
                let (bytes, modified) = size_and_mtime(&db);
                let last_active_ms = match (entry.map(|e| e.last_active_ms), modified) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                let alarm_ms = alarm_of(&class, id)?;
                listed += 1;
                let go_on = each(ObjectListing {
                    class: class.clone(),
                    id: id.to_owned(),
                    name,
                    bytes,
                    last_active_ms,
                    alarm_ms,
                });
                if !go_on {
                    return Ok(listed);
                }
            }
        }
    }
    Ok(listed)
}

/// The entries of `dir` (folders if `folders`, else files), sorted; none if it is missing.
fn sorted_names(dir: &Path, folders: bool) -> Result<Vec<String>, InspectError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir() == folders))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort_unstable();
    Ok(names)
}

/// The bytes of a database and its WAL, and the later of their modification times (ms).
fn size_and_mtime(db: &Path) -> (u64, Option<i64>) {
    let mut bytes = 0;
    let mut modified = None;
    for file in [db.to_path_buf(), DataLayout::wal_of(db)] {
        if let Ok(meta) = std::fs::metadata(&file) {
            bytes += meta.len();
            let ms = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .and_then(|d| i64::try_from(d.as_millis()).ok());
            modified = modified.max(ms);
        }
    }
    (bytes, modified)
}

fn open_read_only(path: &Path) -> Result<Option<Connection>, InspectError> {
    if !path.exists() {
        return Ok(None);
    }
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map(Some)
    .map_err(sql)
}

/// The rows a query returned: column names, then each row's values.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The columns' names.
    pub columns: Vec<String>,
    /// The rows.
    pub rows: Vec<Vec<SqlValue>>,
}

/// One object's database, opened read-only.
#[derive(Debug)]
pub struct ObjectReader {
    conn: Connection,
}

impl ObjectReader {
    /// Opens the database at `db` read-only (`None` if the object has none: it never wrote).
    pub fn open(db: &Path) -> Result<Option<Self>, InspectError> {
        Ok(open_read_only(db)?.map(|conn| Self { conn }))
    }

    /// Runs `query` (which may only read: the database is open read-only, so a statement
    /// that writes fails) and returns at most `limit` rows.
    pub fn query(&self, query: &str, limit: usize) -> Result<QueryResult, InspectError> {
        let mut statement = self.conn.prepare(query).map_err(sql)?;
        let columns: Vec<String> = statement.column_names().map(str::to_owned).collect();
        let width = columns.len();
        let mut rows = Vec::new();
        let mut cursor = statement.query([]).map_err(sql)?;
        while rows.len() < limit
            && let Some(row) = cursor.next().map_err(sql)?
        {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(value_of(row.get_ref(i).map_err(sql)?));
            }
            rows.push(values);
        }
        Ok(QueryResult { columns, rows })
    }

    /// The user's tables (not SQLite's, nor the platform's `_cf_` ones), by name.
    pub fn tables(&self) -> Result<Vec<String>, InspectError> {
        self.texts(
            "SELECT name FROM sqlite_master WHERE type = 'table'
               AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\'
             ORDER BY name",
        )
    }

    /// The first column of every row of `query`, where it is text.
    fn texts(&self, query: &str) -> Result<Vec<String>, InspectError> {
        Ok(self
            .query(query, usize::MAX)?
            .rows
            .into_iter()
            .filter_map(|row| match row.into_iter().next() {
                Some(SqlValue::Text(text)) => Some(text),
                _ => None,
            })
            .collect())
    }

    /// The `CREATE` statements of the user's tables and indexes, in creation order.
    pub fn schema(&self) -> Result<Vec<String>, InspectError> {
        self.texts(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL
               AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND tbl_name NOT LIKE '\\_cf\\_%' ESCAPE '\\'
             ORDER BY rowid",
        )
    }

    fn has_table(&self, table: &str) -> Result<bool, InspectError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(sql)
    }

    /// The stored bytes of KV entry `key` (encoded values: see `durable_core::codec`).
    pub fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, InspectError> {
        if !self.has_table(KV_TABLE)? {
            return Ok(None);
        }
        self.conn
            .query_row(
                &format!("SELECT value FROM {KV_TABLE} WHERE key = ?1"),
                [key],
                |row| row.get(0),
            )
            .optional()
            .map_err(sql)
    }

    /// KV entries in key order: those starting with `prefix`, after `start_after` if given,
    /// at most `limit`.
    pub fn kv_list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, InspectError> {
        if !self.has_table(KV_TABLE)? {
            return Ok(Vec::new());
        }
        let mut statement = self
            .conn
            .prepare(&format!(
                "SELECT key, value FROM {KV_TABLE}
                 WHERE key >= ?1 AND (?2 IS NULL OR key > ?2) AND substr(key, 1, length(?1)) = ?1
                 ORDER BY key LIMIT ?3"
            ))
            .map_err(sql)?;
        let rows = statement
            .query_map(
                params![
                    prefix,
                    start_after,
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map_err(sql)?;
        rows.collect::<Result<_, _>>().map_err(sql)
    }

    /// The object's stored alarm, in milliseconds since the Unix epoch.
    pub fn alarm(&self) -> Result<Option<i64>, InspectError> {
        if !self.has_table(META_TABLE)? {
            return Ok(None);
        }
        self.conn
            .query_row(
                &format!("SELECT value FROM {META_TABLE} WHERE key = 'alarm'"),
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(sql)
    }
}

/// A SQL value as JSON: numbers, text and null as themselves, blobs as `{"blob": "<hex>"}`.
pub fn sql_value_json(value: &SqlValue) -> serde_json::Value {
    match value {
        SqlValue::Null => serde_json::Value::Null,
        SqlValue::Integer(n) => serde_json::json!(n),
        SqlValue::Real(x) => serde_json::json!(x),
        SqlValue::Text(text) => serde_json::json!(text),
        SqlValue::Blob(bytes) => serde_json::json!({ "blob": hex(bytes) }),
    }
}

/// The SQL value a JSON value of [`sql_value_json`]'s form stands for (booleans as 1 and
/// 0); `None` for anything else.
pub fn sql_value_from_json(value: &serde_json::Value) -> Option<SqlValue> {
    use serde_json::Value;
    Some(match value {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(n) => SqlValue::Integer(n),
            None => SqlValue::Real(n.as_f64()?),
        },
        Value::String(text) => SqlValue::Text(text.clone()),
        Value::Object(map) => SqlValue::Blob(bytes_of_hex(map.get("blob")?.as_str()?)?),
        Value::Array(_) => return None,
    })
}

/// The bytes hex text stands for (`None` if it is not an even number of hex digits).
pub fn bytes_of_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What [`export_object`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportCounts {
    /// Lines written.
    pub lines: u64,
    /// Table rows.
    pub rows: u64,
    /// KV entries.
    pub kv_entries: u64,
}

/// Writes one object as the lines of an export (`durable export`'s format, one JSON value
/// per line): `object` (its namespace, id and name), then each `schema` statement, each
/// `row` of each table, each `kv` entry (decoded for people, and as stored in hex), and its
/// `alarm_ms`. Each table is read whole before its rows are written.
pub fn export_object(
    reader: &ObjectReader,
    object: serde_json::Value,
    mut line: impl FnMut(serde_json::Value) -> std::io::Result<()>,
) -> Result<ExportCounts, InspectError> {
    use serde_json::json;
    let mut counts = ExportCounts::default();
    let mut write = |value: serde_json::Value| -> Result<(), InspectError> {
        counts.lines += 1;
        line(value).map_err(|source| InspectError::Io {
            path: PathBuf::from("(export)"),
            source,
        })
    };
    write(json!({ "object": object }))?;
    for statement in reader.schema()? {
        write(json!({ "schema": statement }))?;
    }
    let mut rows = 0;
    for table in reader.tables()? {
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        let result = reader.query(
            &format!("SELECT * FROM {quoted} ORDER BY rowid"),
            usize::MAX,
        )?;
        for row in &result.rows {
            let values: Vec<serde_json::Value> = row.iter().map(sql_value_json).collect();
            write(json!({ "row": { "table": table, "values": values } }))?;
            rows += 1;
        }
    }
    let mut entries = 0;
    let mut after: Option<String> = None;
    loop {
        let batch = reader.kv_list("", after.as_deref(), 1000)?;
        let Some((last, _)) = batch.last() else { break };
        after = Some(last.clone());
        for (key, bytes) in &batch {
            write(json!({ "kv": {
                "key": key,
                "value": display_value(bytes),
                "raw": hex(bytes),
            } }))?;
            entries += 1;
        }
    }
    if let Some(alarm) = reader.alarm()? {
        write(json!({ "alarm_ms": alarm }))?;
    }
    counts.rows = rows;
    counts.kv_entries = entries;
    Ok(counts)
}

/// A stored KV value as JSON, for people: values are self-describing MessagePack, so maps,
/// arrays, text and numbers come out as they were stored; bytes come out as text when they
/// are UTF-8 (`{"hex": ...}` otherwise); bytes that are not MessagePack come out as
/// `{"undecodable": "<hex>"}`.
pub fn display_value(bytes: &[u8]) -> serde_json::Value {
    let mut rest = bytes;
    match rmpv::decode::read_value(&mut rest) {
        Ok(value) if rest.is_empty() => json_of(&value),
        _ => serde_json::json!({ "undecodable": hex(bytes) }),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn json_of(value: &rmpv::Value) -> serde_json::Value {
    use rmpv::Value;
    use serde_json::json;
    match value {
        Value::Nil => serde_json::Value::Null,
        Value::Boolean(b) => json!(b),
        Value::Integer(n) => n
            .as_i64()
            .map(|n| json!(n))
            .or_else(|| n.as_u64().map(|n| json!(n)))
            .unwrap_or(serde_json::Value::Null),
        Value::F32(x) => json!(x),
        Value::F64(x) => json!(x),
        Value::String(text) => match text.as_str() {
            Some(text) => json!(text),
            None => json!({ "hex": hex(text.as_bytes()) }),
        },
        Value::Binary(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => json!(text),
            Err(_) => json!({ "hex": hex(bytes) }),
        },
        Value::Array(items) => serde_json::Value::Array(items.iter().map(json_of).collect()),
        Value::Map(entries) => serde_json::Value::Object(
            entries
                .iter()
                .map(|(key, value)| {
                    let key = match key {
                        Value::String(text) => {
                            text.as_str().map_or_else(|| key.to_string(), str::to_owned)
                        }
                        other => other.to_string(),
                    };
                    (key, json_of(value))
                })
                .collect(),
        ),
        Value::Ext(kind, bytes) => json!({ "ext": kind, "hex": hex(bytes) }),
    }
}

fn value_of(value: rusqlite::types::ValueRef<'_>) -> SqlValue {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(n) => SqlValue::Integer(n),
        ValueRef::Real(x) => SqlValue::Real(x),
        ValueRef::Text(text) => SqlValue::Text(String::from_utf8_lossy(text).into_owned()),
        ValueRef::Blob(bytes) => SqlValue::Blob(bytes.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_values_show_as_json() {
        #[derive(serde::Serialize)]
        struct Topic {
            title: String,
            tags: Vec<u8>,
        }
        let encoded = rmp_serde::to_vec_named(&Topic {
            title: "launch".into(),
            tags: vec![1, 2],
        })
        .unwrap();
        assert_eq!(
            display_value(&encoded),
            json!({"title": "launch", "tags": [1, 2]})
        );
        let text_bytes = rmp_serde::to_vec(&serde_bytes::Bytes::new(b"\"dark\"")).unwrap();
        assert_eq!(display_value(&text_bytes), json!("\"dark\""));
        let raw = rmp_serde::to_vec(&serde_bytes::Bytes::new(&[0xff, 0x00])).unwrap();
        assert_eq!(display_value(&raw), json!({"hex": "ff00"}));
        assert_eq!(display_value(&[0x92, 0x01]), json!({"undecodable": "9201"}));
        assert_eq!(display_value(&[0x01, 0x02]), json!({"undecodable": "0102"}));
    }
}
