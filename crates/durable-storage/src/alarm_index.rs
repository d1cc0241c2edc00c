//! The node's alarm index: one row per object with a pending alarm, in `<data>/alarms.sqlite`.
//!
//! At start-up the runtime reads this index instead of opening every object's database. The
//! index is allowed to be *ahead* of the objects, never behind: an entry is written (and
//! fsynced, `synchronous=FULL`) before the object commits an alarm at that time or earlier,
//! and removed or moved later only after the object's commit is durable. So a crash can leave
//! an entry whose object has no alarm due (a spurious wake-up, filtered by reading the
//! object's stored alarm) but never an object alarm without an entry.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::Connection;

use crate::error::OpenError;

/// The persistent index of pending alarms.
#[derive(Debug)]
pub struct AlarmIndex {
    conn: Mutex<Connection>,
}

/// One entry: class name, object id (64 hex digits), alarm time in epoch milliseconds.
pub type AlarmEntry = (String, String, i64);

/// A change to the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexChange {
    /// Set the entry of (class, id) to a time.
    Upsert(String, String, i64),
    /// Remove the entry of (class, id).
    Remove(String, String),
}

impl AlarmIndex {
    /// Opens (creating if needed) the index at `path`.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let fail = |err: rusqlite::Error| OpenError {
            path: path.to_path_buf(),
            reason: err.to_string(),
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
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, String> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn).map_err(|err| format!("alarm index: {err}"))
    }

    /// Moves every entry of class `from` to class `to` (a class rename). Durable when this
    /// returns.
    pub fn rename_class(&self, from: &str, to: &str) -> Result<(), String> {
        self.with(|conn| {
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
    pub fn remove_class(&self, class: &str) -> Result<(), String> {
        self.with(|conn| conn.execute("DELETE FROM alarms WHERE class = ?1", [class]))
            .map(drop)
    }

    /// Every entry.
    pub fn load(&self) -> Result<Vec<AlarmEntry>, String> {
        self.with(|conn| {
            let mut stmt = conn.prepare("SELECT class, id, time FROM alarms")?;
            let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
            rows.collect()
        })
    }

    /// Applies `changes` in order, in one transaction: one fsync for all of them. Durable when
    /// this returns.
    pub fn apply(&self, changes: &[IndexChange]) -> Result<(), String> {
        self.with(|conn| {
            conn.execute_batch("BEGIN")?;
            let applied = (|| {
                let mut upsert = conn.prepare_cached(
                    "INSERT INTO alarms (class, id, time) VALUES (?1, ?2, ?3)
                     ON CONFLICT (class, id) DO UPDATE SET time = excluded.time",
                )?;
                let mut remove =
                    conn.prepare_cached("DELETE FROM alarms WHERE class = ?1 AND id = ?2")?;
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

    /// Sets the entry of an object; durable when this returns.
    pub fn upsert(&self, class: &str, id: &str, time: i64) -> Result<(), String> {
        self.with(|conn| {
            conn.prepare_cached(
                "INSERT INTO alarms (class, id, time) VALUES (?1, ?2, ?3)
                 ON CONFLICT (class, id) DO UPDATE SET time = excluded.time",
            )?
            .execute(rusqlite::params![class, id, time])
            .map(drop)
        })
    }

    /// Removes the entry of an object.
    pub fn remove(&self, class: &str, id: &str) -> Result<(), String> {
        self.with(|conn| {
            conn.prepare_cached("DELETE FROM alarms WHERE class = ?1 AND id = ?2")?
                .execute([class, id])
                .map(drop)
        })
    }
}
