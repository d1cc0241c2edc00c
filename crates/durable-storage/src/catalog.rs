//! The node's object catalog (`<data>/catalog.sqlite`): what the data folder alone does not
//! say about its objects. An object's id is derived from its name by a one-way function, so
//! the name is kept here when an object made from one starts; with it, when the object was
//! last active, and which binding names each class (`COUNTER` for `Counter`), so tools can
//! show `room-42` and accept the names a user knows.
//!
//! It is a convenience, not a source of truth: an object without a row is still listed (by
//! its files), only without a name. Rows are written in batches by a runtime thread, with
//! `synchronous=NORMAL` (a crash may lose the last few, never corrupt the file).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::error::SqlError;

/// What a catalog operation failed at.
#[derive(Debug, Clone, thiserror::Error)]
#[error("object catalog {}: {operation}: {source}", path.display())]
pub struct CatalogError {
    /// The catalog file.
    pub path: PathBuf,
    /// What was being done.
    pub operation: &'static str,
    /// What SQLite said.
    pub source: SqlError,
}

/// One object as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The name the object's id was made from, if it was made from one.
    pub name: Option<String>,
    /// When it last started or stopped, in milliseconds since the Unix epoch.
    pub last_active_ms: i64,
}

/// The object was active at `at_ms` (it started, or stopped); `name` if its id came from one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSeen {
    /// The object's class.
    pub class: String,
    /// Its id, 64 hex digits.
    pub id: String,
    /// The name its id was made from, if any.
    pub name: Option<String>,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
}

/// The catalog file.
#[derive(Debug)]
pub struct ObjectCatalog {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl ObjectCatalog {
    /// Opens (creating if needed) the catalog at `path`, for writing.
    pub fn open(path: &Path) -> Result<Self, CatalogError> {
        let catalog = Self::with_connection(path, Connection::open(path), "open")?;
        catalog.with("create its tables", |conn| {
            conn.execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
                 CREATE TABLE IF NOT EXISTS objects (
                     class TEXT NOT NULL, id TEXT NOT NULL, name TEXT,
                     last_active_ms INTEGER NOT NULL,
                     PRIMARY KEY (class, id)) WITHOUT ROWID;
                 CREATE TABLE IF NOT EXISTS bindings (
                     binding TEXT PRIMARY KEY, class TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS settings (
                     key TEXT PRIMARY KEY, value TEXT NOT NULL);",
            )
        })?;
        Ok(catalog)
    }

    /// Opens the catalog at `path` to read it, beside a node that may be writing it;
    /// `None` when there is none (a data folder written before the catalog existed).
    pub fn open_read_only(path: &Path) -> Result<Option<Self>, CatalogError> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        );
        Self::with_connection(path, conn, "open").map(Some)
    }

    fn with_connection(
        path: &Path,
        conn: rusqlite::Result<Connection>,
        operation: &'static str,
    ) -> Result<Self, CatalogError> {
        let conn = conn.map_err(|source| CatalogError {
            path: path.to_path_buf(),
            operation,
            source: SqlError::from(source),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, CatalogError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn).map_err(|source| CatalogError {
            path: self.path.clone(),
            operation,
            source: SqlError::from(source),
        })
    }

    /// Records that objects were active, in one transaction: a name once known stays, and
    /// the last activity only moves forward.
    pub fn record(&self, seen: &[ObjectSeen]) -> Result<(), CatalogError> {
        self.with("record activity", |conn| {
            let tx = conn.unchecked_transaction()?;
            {
                let mut statement = tx.prepare_cached(
                    "INSERT INTO objects (class, id, name, last_active_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (class, id) DO UPDATE SET
                         name = coalesce(objects.name, excluded.name),
                         last_active_ms = max(objects.last_active_ms, excluded.last_active_ms)",
                )?;
                for s in seen {
                    statement.execute(params![s.class, s.id, s.name, s.at_ms])?;
                }
            }
            tx.commit()
        })
    }

    /// What the catalog knows of object `id` (64 hex digits) of `class`.
    pub fn entry(&self, class: &str, id: &str) -> Result<Option<CatalogEntry>, CatalogError> {
        self.with("read an object", |conn| {
            conn.prepare_cached(
                "SELECT name, last_active_ms FROM objects WHERE class = ?1 AND id = ?2",
            )?
            .query_row(params![class, id], |row| {
                Ok(CatalogEntry {
                    name: row.get(0)?,
                    last_active_ms: row.get(1)?,
                })
            })
            .optional()
        })
    }

    /// The id (64 hex digits) of the object of `class` called `name`, if one started.
    pub fn id_of_name(&self, class: &str, name: &str) -> Result<Option<String>, CatalogError> {
        self.with("find a name", |conn| {
            conn.query_row(
                "SELECT id FROM objects WHERE class = ?1 AND name = ?2",
                params![class, name],
                |row| row.get(0),
            )
            .optional()
        })
    }

    /// Sets the bindings of the node's classes (binding name, class), replacing the old ones.
    pub fn put_bindings(&self, bindings: &[(String, String)]) -> Result<(), CatalogError> {
        self.with("record the bindings", |conn| {
            let tx = conn.unchecked_transaction()?;
            tx.execute("DELETE FROM bindings", [])?;
            for (binding, class) in bindings {
                tx.execute(
                    "INSERT OR REPLACE INTO bindings (binding, class) VALUES (?1, ?2)",
                    params![binding, class],
                )?;
            }
            tx.commit()
        })
    }

    /// The bindings (binding name, class), by binding name.
    pub fn bindings(&self) -> Result<Vec<(String, String)>, CatalogError> {
        self.with("read the bindings", |conn| {
            let mut statement =
                conn.prepare("SELECT binding, class FROM bindings ORDER BY binding")?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        })
    }

    /// Records a setting of the node that tools must follow (`commit_log`: where the
    /// objects' history goes, so a tool writing into the folder writes it there too).
    pub fn put_setting(&self, key: &str, value: &str) -> Result<(), CatalogError> {
        self.with("record a setting", |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?1, ?2)",
                params![key, value],
            )
            .map(drop)
        })
    }

    /// A setting the node recorded (`None` if it never did: an older node).
    pub fn setting(&self, key: &str) -> Result<Option<String>, CatalogError> {
        self.with("read a setting", |conn| {
            // A catalog written before settings existed has no such table.
            let exists: i64 = conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'settings'",
                [],
                |row| row.get(0),
            )?;
            if exists == 0 {
                return Ok(None);
            }
            conn.query_row(
                "SELECT value FROM settings WHERE key = ?1",
                params![key],
                |row| row.get(0),
            )
            .optional()
        })
    }

    /// Moves the rows of class `from` to class `to` (a class rename).
    pub fn rename_class(&self, from: &str, to: &str) -> Result<(), CatalogError> {
        self.with("rename a class", |conn| {
            conn.execute(
                "UPDATE objects SET class = ?2 WHERE class = ?1",
                params![from, to],
            )
            .map(drop)
        })
    }

    /// Removes the rows of class `class` (a class deleted).
    pub fn remove_class(&self, class: &str) -> Result<(), CatalogError> {
        self.with("remove a class", |conn| {
            conn.execute("DELETE FROM objects WHERE class = ?1", params![class])
                .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(id: &str, name: Option<&str>, at_ms: i64) -> ObjectSeen {
        ObjectSeen {
            class: "Room".into(),
            id: id.into(),
            name: name.map(str::to_owned),
            at_ms,
        }
    }

    #[test]
    fn names_stay_and_activity_only_moves_forward() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        let catalog = ObjectCatalog::open(&path).unwrap();
        catalog
            .record(&[seen("aa", Some("room-1"), 10), seen("bb", None, 20)])
            .unwrap();
        // Seen again without its name (an id given as hex), and an older time.
        catalog.record(&[seen("aa", None, 5)]).unwrap();
        let entry = catalog.entry("Room", "aa").unwrap().unwrap();
        assert_eq!(entry.name.as_deref(), Some("room-1"));
        assert_eq!(entry.last_active_ms, 10);
        catalog.record(&[seen("bb", Some("late"), 30)]).unwrap();
        assert_eq!(
            catalog.entry("Room", "bb").unwrap().unwrap(),
            CatalogEntry {
                name: Some("late".into()),
                last_active_ms: 30
            }
        );
        assert_eq!(
            catalog.id_of_name("Room", "room-1").unwrap().as_deref(),
            Some("aa")
        );
        assert!(catalog.entry("Room", "cc").unwrap().is_none());

        catalog
            .put_bindings(&[("ROOMS".into(), "Room".into())])
            .unwrap();
        catalog.rename_class("Room", "Hall").unwrap();
        let reader = ObjectCatalog::open_read_only(&path).unwrap().unwrap();
        assert!(reader.entry("Hall", "aa").unwrap().is_some());
        assert_eq!(
            reader.bindings().unwrap(),
            [("ROOMS".into(), "Room".into())]
        );
        catalog.put_setting("commit_log", "local").unwrap();
        assert_eq!(
            reader.setting("commit_log").unwrap().as_deref(),
            Some("local")
        );
        assert_eq!(reader.setting("other").unwrap(), None);
        catalog.remove_class("Hall").unwrap();
        assert!(reader.entry("Hall", "aa").unwrap().is_none());
        assert!(
            ObjectCatalog::open_read_only(&dir.path().join("none"))
                .unwrap()
                .is_none()
        );
    }
}
