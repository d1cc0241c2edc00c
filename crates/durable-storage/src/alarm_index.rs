//! The node's alarm index: one row per object with a pending alarm, in `<data>/alarms.sqlite`.
//!
//! At start-up the runtime reads this index instead of opening every object's database. The
//! index is allowed to be *ahead* of the objects, never behind: an entry is written (and
//! fsynced, `synchronous=FULL`) before the object commits an alarm at that time or earlier,
//! and removed or moved later only after the object's commit is durable. So a crash can leave
//! an entry whose object has no alarm due (a spurious wake-up, filtered by reading the
//! object's stored alarm) but never an object alarm without an entry.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::Connection;

use crate::error::{AlarmIndexError, SqlError};

/// The persistent index of pending alarms.
#[derive(Debug)]
pub struct AlarmIndex {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// One entry of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmEntry {
    /// The object's class.
    pub class: String,
    /// The object's id, 64 hex digits.
    pub id: String,
    /// The alarm time, in milliseconds since the Unix epoch.
    pub time_ms: i64,
}

/// A change to the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexChange {
    /// Set the entry of (class, id) to a time.
    Upsert(String, String, i64),
    /// Remove the entry of (class, id).
    Remove(String, String),
}

const UPSERT: &str = "INSERT INTO alarms (class, id, time) VALUES (?1, ?2, ?3)
     ON CONFLICT (class, id) DO UPDATE SET time = excluded.time";
const REMOVE: &str = "DELETE FROM alarms WHERE class = ?1 AND id = ?2";

impl AlarmIndex {
    /// Opens (creating if needed) the index at `path`.
    pub fn open(path: &Path) -> Result<Self, AlarmIndexError> {
        let fail = |source: rusqlite::Error| AlarmIndexError {
            path: path.to_path_buf(),
            operation: "open",
            source: SqlError::from(source),
        };
        let conn = Connection::open(path).map_err(fail)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS alarms (
                 class TEXT NOT NULL, id TEXT NOT NULL, time INTEGER NOT NULL,
                 PRIMARY KEY (class, id)) WITHOUT ROWID;",
        )
        .map_err(fail)?;
        Ok(Self {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, AlarmIndexError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn).map_err(|source| AlarmIndexError {
            path: self.path.clone(),
            operation,
            source: SqlError::from(source),
        })
    }

    /// Moves every entry of class `from` to class `to` (a class rename). Durable when this
    /// returns.
    pub fn rename_class(&self, from: &str, to: &str) -> Result<(), AlarmIndexError> {
        self.with("rename a class", |conn| {
            let tx = conn.unchecked_transaction()?;
            tx.execute(
                "INSERT OR REPLACE INTO alarms (class, id, time)
                 SELECT ?2, id, time FROM alarms WHERE class = ?1",
                [from, to],
            )?;
            tx.execute("DELETE FROM alarms WHERE class = ?1", [from])?;
            tx.commit()
        })
    }

    /// Removes every entry of class `class` (a class deletion). Durable when this returns.
    pub fn remove_class(&self, class: &str) -> Result<(), AlarmIndexError> {
        self.with("remove a class", |conn| {
            conn.execute("DELETE FROM alarms WHERE class = ?1", [class])
        })
        .map(drop)
    }

    /// Every entry.
    pub fn load(&self) -> Result<Vec<AlarmEntry>, AlarmIndexError> {
        self.with("load", |conn| {
            let mut stmt = conn.prepare("SELECT class, id, time FROM alarms")?;
            let rows = stmt.query_map([], |row| {
                Ok(AlarmEntry {
                    class: row.get(0)?,
                    id: row.get(1)?,
                    time_ms: row.get(2)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Applies `changes` in order, in one transaction: one fsync for all of them. Durable when
    /// this returns.
    pub fn apply(&self, changes: &[IndexChange]) -> Result<(), AlarmIndexError> {
        self.with("apply changes", |conn| {
            conn.execute_batch("BEGIN")?;
            let applied = (|| {
                let mut upsert = conn.prepare_cached(UPSERT)?;
                let mut remove = conn.prepare_cached(REMOVE)?;
                for change in changes {
                    match change {
                        IndexChange::Upsert(class, id, time) => {
                            upsert.execute(rusqlite::params![class, id, time])?;
                        }
                        IndexChange::Remove(class, id) => {
                            remove.execute([class, id])?;
                        }
                    }
                }
                Ok(())
            })();
            match applied {
                Ok(()) => conn.execute_batch("COMMIT"),
                Err(err) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(err)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_in_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alarms.sqlite");
        let index = AlarmIndex::open(&path).unwrap();
        index
            .apply(&[
                IndexChange::Upsert("A".into(), "1".into(), 10),
                IndexChange::Upsert("A".into(), "2".into(), 20),
                IndexChange::Upsert("A".into(), "1".into(), 15),
                IndexChange::Remove("A".into(), "2".into()),
                IndexChange::Upsert("B".into(), "3".into(), 30),
            ])
            .unwrap();
        index.rename_class("B", "C").unwrap();
        drop(index);
        let index = AlarmIndex::open(&path).unwrap();
        let mut entries = index.load().unwrap();
        entries.sort_by(|a, b| a.class.cmp(&b.class));
        let entry = |class: &str, id: &str, time_ms| AlarmEntry {
            class: class.into(),
            id: id.into(),
            time_ms,
        };
        assert_eq!(entries, [entry("A", "1", 15), entry("C", "3", 30)]);
        index.remove_class("A").unwrap();
        assert_eq!(index.load().unwrap(), [entry("C", "3", 30)]);
    }

    #[test]
    fn a_damaged_file_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alarms.sqlite");
        std::fs::write(&path, vec![0x42; 8192]).unwrap();
        let err = AlarmIndex::open(&path).unwrap_err();
        assert_eq!(err.operation, "open");
        assert!(err.to_string().contains("alarms.sqlite"), "{err}");
    }
}
