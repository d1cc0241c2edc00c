//! The node's alarm index: one row per object with a pending alarm, in `<data>/alarms.sqlite`.
//!
//! At start-up the runtime reads this index instead of opening every object's database. The
//! index is allowed to be *ahead* of the objects, never behind: an entry is written (and
//! fsynced, `synchronous=FULL`) before the object commits an alarm at that time or earlier,
//! and removed or moved later only after the object's commit is durable. So a crash can leave
//! an entry whose object has no alarm due (a spurious wake-up, filtered by reading the
//! object's stored alarm) but never an object alarm without an entry.
//!
//! The index is a cache of what the objects store, so it can be rebuilt from them:
//! [`AlarmIndex::rebuild`] reads the stored alarm of every object database in the data folder
//! (the runtime does so when the index is missing or damaged, see [`AlarmIndex::recover`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};

use crate::database::META_TABLE;
use crate::error::{AlarmIndexError, SqlError, SqliteCode};
use crate::layout::DataLayout;

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
        let created = !path.exists();
        let conn = Connection::open(path).map_err(fail)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS alarms (
                 class TEXT NOT NULL, id TEXT NOT NULL, time INTEGER NOT NULL,
                 PRIMARY KEY (class, id)) WITHOUT ROWID;",
        )
        .map_err(fail)?;
        if created && let Some(dir) = path.parent() {
            // SQLite syncs the folder for the WAL it creates, not for the database file.
            crate::dirs::sync_dir(dir).map_err(|err| AlarmIndexError {
                path: path.to_path_buf(),
                operation: "sync its folder",
                source: SqlError::sqlite(err.to_string(), 10),
            })?;
        }
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

    /// Opens the index of the data folder at `layout`, repairing what a damaged folder did to
    /// it: a file that is not a database (or is corrupt) is moved aside to
    /// `alarms.sqlite.damaged`, and an index that is missing or was moved aside is rebuilt
    /// from the objects' stored alarms. `progress` is told (scanned, total) as the rebuild
    /// goes. Returns the index and, if it was rebuilt, why and what was found.
    pub fn recover(
        layout: &DataLayout,
        progress: impl FnMut(usize, usize),
    ) -> Result<(Self, Option<Rebuilt>), AlarmIndexError> {
        let path = layout.alarm_index();
        let reason = if path.exists() {
            match Self::open(&path) {
                Ok(index) => return Ok((index, None)),
                Err(err) if err.is_damaged() => {
                    let aside = path.with_extension("sqlite.damaged");
                    move_aside(&path, &aside).map_err(|source| AlarmIndexError {
                        path: path.clone(),
                        operation: "move the damaged index aside",
                        source: SqlError::sqlite(source.to_string(), 10),
                    })?;
                    RebuildReason::Damaged(err.to_string())
                }
                Err(err) => return Err(err),
            }
        } else {
            // Stale WAL or shared memory of a deleted index must not be read into a new one.
            for stale in [DataLayout::wal_of(&path), DataLayout::shm_of(&path)] {
                let _ = std::fs::remove_file(stale);
            }
            RebuildReason::Missing
        };
        let index = Self::open(&path)?;
        let databases = object_databases(layout);
        if databases.is_empty() && reason == RebuildReason::Missing {
            // A new data folder: nothing to rebuild.
            return Ok((index, None));
        }
        let found = index.rebuild(&databases, progress)?;
        Ok((
            index,
            Some(Rebuilt {
                reason,
                objects: databases.len(),
                alarms: found,
            }),
        ))
    }

    /// Adds an entry for every database of `databases` (class, path) that stores an alarm;
    /// returns how many did. Databases that cannot be read are skipped with a warning.
    pub fn rebuild(
        &self,
        databases: &[(String, PathBuf)],
        mut progress: impl FnMut(usize, usize),
    ) -> Result<usize, AlarmIndexError> {
        let mut changes = Vec::new();
        for (scanned, (class, db)) in databases.iter().enumerate() {
            if scanned % 1000 == 0 {
                progress(scanned, databases.len());
            }
            let Some(id) = db.file_stem().and_then(|stem| stem.to_str()) else {
                continue;
            };
            match stored_alarm(db) {
                Ok(Some(time)) => {
                    changes.push(IndexChange::Upsert(class.clone(), id.to_owned(), time));
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(database = %db.display(), error = %err, "an object database could not be read while rebuilding the alarm index; its alarm, if any, is not scheduled");
                }
            }
        }
        progress(databases.len(), databases.len());
        self.apply(&changes)?;
        Ok(changes.len())
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

/// Why the index was rebuilt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebuildReason {
    /// The file was missing while objects exist.
    Missing,
    /// The file was damaged (moved aside); what opening it said.
    Damaged(String),
}

/// What a rebuild of the index did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    /// Why it was needed.
    pub reason: RebuildReason,
    /// Object databases scanned.
    pub objects: usize,
    /// Alarms found and indexed.
    pub alarms: usize,
}

impl AlarmIndexError {
    /// True when the file is not an index at all (not a database, or corrupt): it can be
    /// moved aside and rebuilt.
    pub fn is_damaged(&self) -> bool {
        matches!(
            self.source.sqlite_code(),
            Some(SqliteCode::NotADatabase | SqliteCode::Corrupt)
        )
    }
}

fn move_aside(path: &Path, aside: &Path) -> std::io::Result<()> {
    std::fs::rename(path, aside)?;
    for (from, to) in [
        (DataLayout::wal_of(path), DataLayout::wal_of(aside)),
        (DataLayout::shm_of(path), DataLayout::shm_of(aside)),
    ] {
        match std::fs::rename(from, to) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
    }
    Ok(())
}

/// Every object database of the data folder, with its class: `objects/<Class>/<fan>/<id>.sqlite`.
pub fn object_databases(layout: &DataLayout) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    for class_dir in entries(&layout.objects_dir()) {
        let Some(class) = class_dir.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        for db in class_databases(layout, class, usize::MAX) {
            found.push((class.to_owned(), db));
        }
    }
    found.sort();
    found
}

/// The object databases of class `class`, at most `limit` of them (in no set order).
pub fn class_databases(layout: &DataLayout, class: &str, limit: usize) -> Vec<PathBuf> {
    entries(&layout.class_dir(class))
        .into_iter()
        .filter(|fan| fan.is_dir())
        .flat_map(|fan| entries(&fan))
        .filter(|db| db.extension().is_some_and(|ext| ext == "sqlite"))
        .take(limit)
        .collect()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .collect()
}

/// The alarm an object database stores, read without the runtime's machinery.
pub fn stored_alarm(db: &Path) -> Result<Option<i64>, SqlError> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let has_meta: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [META_TABLE],
        |row| row.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_meta {
        return Ok(None);
    }
    let time = conn.query_row(
        &format!("SELECT value FROM {META_TABLE} WHERE key = 'alarm'"),
        [],
        |row| row.get::<_, Option<i64>>(0),
    );
    match time {
        Ok(time) => Ok(time),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(err) => Err(err.into()),
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
